//! Small inline sequences: the virtual interrupt flag, `salc`, `xlat`, and the one-byte
//! `inc`/`dec` forms that 64-bit mode took for REX prefixes.

use dynasmrt::{DynasmApi, dynasm};
use iced_x86::{Code, Instruction};

use super::{EmitError, EmitResult, Emitter, gpr_number};
use crate::context::{Seg, flags, off};

impl Emitter<'_> {
    pub(crate) fn emit_cli(&mut self) {
        dynasm!(self.ops ; .arch x64 ; mov DWORD [r15 + off::VIF], 0);
    }

    /// `sti`: IF = 1, and if an interrupt is pending, make the next fragment entry exit
    /// to the monitor. The translator keeps the following instruction in this fragment
    /// (the one-instruction interrupt shadow) and enters the next through its check.
    pub(crate) fn emit_sti(&mut self) {
        dynasm!(self.ops
            ; .arch x64
            ; mov DWORD [r15 + off::VIF], flags::IF as i32
            ; mov r13d, [r15 + off::IRQ_PENDING]
            ; mov [r15 + off::KICK_SYNC], r13d
        );
        self.force_checked = true;
    }

    /// `salc`: AL = CF ? 0xFF : 0x00, flags unchanged.
    pub(crate) fn emit_salc(&mut self) {
        dynasm!(self.ops
            ; .arch x64
            ; setc r13b
            ; movzx r13d, r13b
            ; lea r13d, [r13 - 1]
            ; not r13d
            ; mov al, r13b
        );
    }

    /// `rdtsc`: EDX:EAX = host TSC + the guest's offset. The 64-bit add needs the host
    /// flags, so they are saved around it.
    pub(crate) fn emit_rdtsc(&mut self) {
        dynasm!(self.ops
            ; .arch x64
            ; pushfq
            ; rdtsc
            ; shl rdx, 32
            ; or rax, rdx
            ; add rax, QWORD [r15 + off::TSC_OFFSET]
            ; mov rdx, rax
            ; shr rdx, 32
            ; mov eax, eax
            ; popfq
        );
    }

    /// `xlat`: AL = [seg:EBX + AL] (EBX + AL wraps at 4 GiB).
    pub(crate) fn emit_xlat(&mut self, ins: &Instruction) -> EmitResult {
        let seg = Seg::from_iced(ins.memory_segment()).ok_or_else(|| EmitError::Unsupported("xlat segment".into()))?;
        dynasm!(self.ops ; .arch x64 ; movzx r13d, al ; lea r13d, [rbx + r13]);
        if ins.code() == Code::Xlat_m8 && Self::is_addr16(ins) {
            dynasm!(self.ops ; .arch x64 ; movzx r13d, r13w);
        }
        if !self.mode.is_flat(seg) {
            self.add_segment_base_to_r13(seg);
        }
        dynasm!(self.ops ; .arch x64 ; gs mov al, BYTE [r13d]);
        Ok(())
    }

    /// `inc r32`/`dec r32` (0x40-0x4F) as their ModRM forms.
    pub(crate) fn emit_incdec_short(&mut self, ins: &Instruction) -> EmitResult {
        let code = match ins.code() {
            Code::Inc_r32 => Code::Inc_rm32,
            Code::Dec_r32 => Code::Dec_rm32,
            Code::Inc_r16 => Code::Inc_rm16,
            Code::Dec_r16 => Code::Dec_rm16,
            _ => return Err(EmitError::Unsupported("inc/dec form".into())),
        };
        gpr_number(ins.op0_register()).ok_or_else(|| EmitError::Unsupported("inc/dec register".into()))?;
        let mut i = Instruction::with1(code, ins.op0_register()).map_err(|e| EmitError::Unsupported(e.to_string()))?;
        Self::rename_esp(&mut i);
        self.encode(&i)
    }
}
