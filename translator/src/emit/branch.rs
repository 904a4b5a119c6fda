//! Branches: direct exits (chainable), conditional branches, loops, calls and returns,
//! and the inline indirect-branch lookup.
//!
//! A direct branch becomes a `jmp`/`jcc rel32` to a small exit stub at the end of the
//! fragment; the stub tells the monitor the guest target and the link id, and the monitor
//! later patches the rel32 to jump straight to the target's fragment (chaining). An
//! indirect branch looks its target up in the [`IblTable`](crate::context::IblTable)
//! of the current mode without touching the host flags, and exits only on a miss.

use dynasmrt::{DynasmApi, DynasmLabelApi, dynasm};
use iced_x86::{Code, ConditionCode, Instruction, Mnemonic};

use super::{EmitError, EmitResult, Emitter, PendingExit};
use crate::context::off;

/// Which jump goes to an exit stub.
#[derive(Clone, Copy)]
pub(crate) enum ExitJump {
    Always,
    If(ConditionCode),
}

impl Emitter<'_> {
    /// Emits a jump (conditional or not) to an exit stub for guest `target`.
    pub(crate) fn exit_to(&mut self, target: u32, jump: ExitJump) {
        let label = self.ops.new_dynamic_label();
        match jump {
            ExitJump::Always => dynasm!(self.ops ; .arch x64 ; jmp =>label),
            ExitJump::If(cc) => {
                use ConditionCode as C;
                match cc {
                    C::o => dynasm!(self.ops ; .arch x64 ; jo =>label),
                    C::no => dynasm!(self.ops ; .arch x64 ; jno =>label),
                    C::b => dynasm!(self.ops ; .arch x64 ; jb =>label),
                    C::ae => dynasm!(self.ops ; .arch x64 ; jae =>label),
                    C::e => dynasm!(self.ops ; .arch x64 ; je =>label),
                    C::ne => dynasm!(self.ops ; .arch x64 ; jne =>label),
                    C::be => dynasm!(self.ops ; .arch x64 ; jbe =>label),
                    C::a => dynasm!(self.ops ; .arch x64 ; ja =>label),
                    C::s => dynasm!(self.ops ; .arch x64 ; js =>label),
                    C::ns => dynasm!(self.ops ; .arch x64 ; jns =>label),
                    C::p => dynasm!(self.ops ; .arch x64 ; jp =>label),
                    C::np => dynasm!(self.ops ; .arch x64 ; jnp =>label),
                    C::l => dynasm!(self.ops ; .arch x64 ; jl =>label),
                    C::ge => dynasm!(self.ops ; .arch x64 ; jge =>label),
                    C::le => dynasm!(self.ops ; .arch x64 ; jle =>label),
                    C::g => dynasm!(self.ops ; .arch x64 ; jg =>label),
                    C::None => dynasm!(self.ops ; .arch x64 ; jmp =>label),
                }
            }
        }
        let site_off = self.offset() - 4;
        // Backward branches may close a loop: their targets are entered through the
        // pending-interrupt check. Forward chains cannot loop without one.
        let checked = self.force_checked || target <= self.eip;
        self.exits.push(PendingExit { label, site_off, target, checked });
    }

    pub(crate) fn emit_jmp(&mut self, ins: &Instruction) -> EmitResult {
        self.exit_to(ins.near_branch_target() as u32, ExitJump::Always);
        Ok(())
    }

    pub(crate) fn emit_jcc(&mut self, ins: &Instruction) -> EmitResult {
        self.exit_to(ins.near_branch_target() as u32, ExitJump::If(ins.condition_code()));
        self.exit_to(ins.next_ip32(), ExitJump::Always);
        Ok(())
    }

    /// `loop`, `loope`, `loopne`, `jecxz`, `jcxz`. The count register is decremented
    /// with `lea` and tested with `jrcxz`, so the flags stay the guest's.
    pub(crate) fn emit_loop(&mut self, ins: &Instruction) -> EmitResult {
        let target = ins.near_branch_target() as u32;
        let next = ins.next_ip32();
        // 16-bit address size uses CX.
        let cx16 = matches!(ins.code(), Code::Loop_rel8_16_CX | Code::Loop_rel8_32_CX | Code::Loope_rel8_16_CX | Code::Loope_rel8_32_CX | Code::Loopne_rel8_16_CX | Code::Loopne_rel8_32_CX | Code::Jcxz_rel8_16 | Code::Jcxz_rel8_32);
        let mn = ins.mnemonic();
        if mn != Mnemonic::Jcxz && mn != Mnemonic::Jecxz {
            if cx16 {
                dynasm!(self.ops ; .arch x64 ; lea cx, [rcx - 1]);
            } else {
                dynasm!(self.ops ; .arch x64 ; lea ecx, [rcx - 1]);
            }
        }
        // R11 keeps RCX; RCX becomes the (zero-extended) count for jrcxz.
        dynasm!(self.ops ; .arch x64 ; mov r11, rcx);
        if cx16 {
            dynasm!(self.ops ; .arch x64 ; movzx ecx, cx);
        }
        let zero = self.ops.new_dynamic_label();
        let nonzero = self.ops.new_dynamic_label();
        dynasm!(self.ops
            ; .arch x64
            ; jrcxz =>zero
            ; jmp =>nonzero
            ; =>zero
            ; mov rcx, r11
        );
        // Count reached zero: loops fall through, jecxz jumps.
        if mn == Mnemonic::Jcxz || mn == Mnemonic::Jecxz {
            self.exit_to(target, ExitJump::Always);
        } else {
            self.exit_to(next, ExitJump::Always);
        }
        dynasm!(self.ops ; .arch x64 ; =>nonzero ; mov rcx, r11);
        match mn {
            Mnemonic::Loop => self.exit_to(target, ExitJump::Always),
            Mnemonic::Loope => {
                self.exit_to(target, ExitJump::If(ConditionCode::e));
                self.exit_to(next, ExitJump::Always);
            }
            Mnemonic::Loopne => {
                self.exit_to(target, ExitJump::If(ConditionCode::ne));
                self.exit_to(next, ExitJump::Always);
            }
            _ => self.exit_to(next, ExitJump::Always),
        }
        Ok(())
    }

    /// Operand size of a near call/ret/indirect jump: 4 or 2 bytes.
    fn branch_size(ins: &Instruction) -> u8 {
        match ins.code() {
            Code::Call_rel16 | Code::Call_rm16 | Code::Retnw | Code::Retnw_imm16 | Code::Jmp_rm16 => 2,
            _ => 4,
        }
    }

    pub(crate) fn emit_call(&mut self, ins: &Instruction) -> EmitResult {
        let size = Self::branch_size(ins);
        self.push_imm(ins.next_ip32(), size);
        self.exit_to(ins.near_branch_target() as u32, ExitJump::Always);
        Ok(())
    }

    pub(crate) fn emit_call_indirect(&mut self, ins: &Instruction) -> EmitResult {
        let size = Self::branch_size(ins);
        // Read the target (using ESP before the push), then push, then branch.
        self.load_operand_r13(ins, 0, size)?;
        let s = self.slot(-(size as i32));
        match (s, size) {
            (super::stack::Slot::Esp(d), 4) => dynasm!(self.ops ; .arch x64 ; gs mov DWORD [r12d + d], ins.next_ip32() as i32),
            (super::stack::Slot::Esp(d), _) => dynasm!(self.ops ; .arch x64 ; gs mov WORD [r12d + d], ins.next_ip32() as i16),
            (super::stack::Slot::R14, 4) => dynasm!(self.ops ; .arch x64 ; gs mov DWORD [r14d], ins.next_ip32() as i32),
            (super::stack::Slot::R14, _) => dynasm!(self.ops ; .arch x64 ; gs mov WORD [r14d], ins.next_ip32() as i16),
        }
        self.adjust_esp(-(size as i32));
        self.emit_ibl();
        Ok(())
    }

    pub(crate) fn emit_jmp_indirect(&mut self, ins: &Instruction) -> EmitResult {
        let size = Self::branch_size(ins);
        self.load_operand_r13(ins, 0, size)?;
        self.emit_ibl();
        Ok(())
    }

    pub(crate) fn emit_ret(&mut self, ins: &Instruction) -> EmitResult {
        if ins.mnemonic() != Mnemonic::Ret {
            return Err(EmitError::Unsupported("far return".into()));
        }
        let size = Self::branch_size(ins);
        let pop = if matches!(ins.code(), Code::Retnd_imm16 | Code::Retnw_imm16) { ins.immediate16() as i32 } else { 0 };
        let s = self.slot(0);
        self.load_slot_r13_zx(s, size);
        self.adjust_esp(size as i32 + pop);
        self.emit_ibl();
        Ok(())
    }

    /// The inline indirect-branch lookup for the guest target in R13D. The table entry
    /// holds `-eip`, so `lea ecx, [entry + target]` is zero exactly on a hit and `jrcxz`
    /// tests it: no flags change. A miss (or an empty entry, whose host address is the
    /// miss stub) exits to the monitor with the target in R13D.
    pub(crate) fn emit_ibl(&mut self) {
        let miss = self.stubs.ibl_miss;
        dynasm!(self.ops
            ; .arch x64
            ; movzx r14d, r13w
            ; lea r14, [r14 + r14]
            ; mov r11, QWORD [r15 + off::IBL_TABLE]
            ; mov r10, rcx
            ; mov ecx, DWORD [r11 + r14 * 8]
            ; lea ecx, [rcx + r13]
            ; jrcxz >hit
            ; mov rcx, r10
            ; jmp extern miss as usize
            ; hit:
            ; mov rcx, r10
            ; jmp QWORD [r11 + r14 * 8 + 8]
        );
    }
}
