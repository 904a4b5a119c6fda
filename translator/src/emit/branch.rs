//! Branches: direct exits (chainable), conditional branches, loops, calls and returns,
//! and the inline indirect-branch lookup.
//!
//! A direct branch becomes a `jmp`/`jcc rel32` to a small exit stub at the end of the
//! fragment; the stub tells the monitor the guest target and the link id, and the monitor
//! later patches the rel32 to jump straight to the target's fragment (chaining). An
//! indirect branch looks its target up in the [`IblTable`](crate::context::IblTable)
//! of the current mode without touching the host flags, and exits only on a miss.

use dynasmrt::{DynamicLabel, DynasmApi, DynasmLabelApi, VecAssembler, dynasm, x64::X64Relocation};
use iced_x86::{Code, ConditionCode, Instruction, Mnemonic};

use super::{EmitError, EmitResult, Emitter, PendingExit};
use crate::context::off;
use crate::fragment::Fixup;

/// Which jump goes to an exit stub.
#[derive(Clone, Copy)]
pub(crate) enum ExitJump {
    Always,
    If(ConditionCode),
    /// A host `call` (a translated guest `call`).
    Call,
}

impl Emitter<'_> {
    /// Emits a jump (conditional or not) to an exit stub for guest `target`.
    pub(crate) fn exit_to(&mut self, target: u32, jump: ExitJump) {
        debug_assert_eq!(self.esp_delta, 0, "leaving a fragment with a pending stack adjustment");
        let label = self.ops.new_dynamic_label();
        match jump {
            ExitJump::Always => dynasm!(self.ops ; .arch x64 ; jmp =>label),
            ExitJump::Call => dynasm!(self.ops ; .arch x64 ; call =>label),
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
        // pending-interrupt check. Forward chains cannot loop without one. Calls need no
        // check either: a cycle of calls alone (unbounded recursion) fills the
        // translated-code stack, whose overflow exits to the monitor.
        let checked = target <= self.eip && !matches!(jump, ExitJump::Call);
        let chainable = !self.exits_via_monitor;
        self.exits.push(PendingExit { label, site_off, target, checked, chainable });
    }

    pub(crate) fn emit_jmp(&mut self, ins: &Instruction) -> EmitResult {
        self.flush_esp();
        self.exit_to(ins.near_branch_target() as u32, ExitJump::Always);
        Ok(())
    }

    /// A conditional branch: the taken side exits; the fragment continues with the
    /// fall-through (the driver translates it next, or ends the fragment there).
    pub(crate) fn emit_jcc(&mut self, ins: &Instruction) -> EmitResult {
        self.flush_esp();
        self.exit_to(ins.near_branch_target() as u32, ExitJump::If(ins.condition_code()));
        Ok(())
    }

    /// `loop`, `loope`, `loopne`, `jecxz`, `jcxz`. The count register is decremented
    /// with `lea` and tested with `jrcxz`, so the flags stay the guest's.
    pub(crate) fn emit_loop(&mut self, ins: &Instruction) -> EmitResult {
        let target = ins.near_branch_target() as u32;
        let next = ins.next_ip32();
        // 16-bit address size uses CX.
        let cx16 = matches!(
            ins.code(),
            Code::Loop_rel8_16_CX
                | Code::Loop_rel8_32_CX
                | Code::Loope_rel8_16_CX
                | Code::Loope_rel8_32_CX
                | Code::Loopne_rel8_16_CX
                | Code::Loopne_rel8_32_CX
                | Code::Jcxz_rel8_16
                | Code::Jcxz_rel8_32
        );
        let mn = ins.mnemonic();
        self.flush_esp();
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

    /// A direct `call`: push the return address, then a host `call` (chainable to the
    /// target) whose return point checks that the guest returned where it was expected.
    pub(crate) fn emit_call(&mut self, ins: &Instruction) -> EmitResult {
        let size = Self::branch_size(ins);
        self.push_imm(ins.next_ip32(), size);
        self.flush_esp();
        let target = ins.near_branch_target() as u32;
        if self.exits_via_monitor {
            self.exit_to(target, ExitJump::Always);
            return Ok(());
        }
        self.point_at(target, Fixup::None);
        self.exit_to(target, ExitJump::Call);
        self.return_point(ins.next_ip32());
        Ok(())
    }

    /// Where a translated guest `ret` lands (by a host `ret`) when the matching translated
    /// `call` is on the stack: R13D holds the guest target the `ret` popped. If it is the
    /// return address this call pushed, the fragment continues (the driver translates the
    /// code at the return address next); otherwise look the target up.
    fn return_point(&mut self, ret_eip: u32) {
        let shared = self.stubs.ibl_shared;
        let neg = (ret_eip as i32).wrapping_neg();
        self.point(Fixup::None);
        dynasm!(self.ops
            ; .arch x64
            ; mov r11, rcx
            ; lea ecx, [r13 + neg]
            ; jrcxz >same
            ; mov rcx, r11
            ; jmp extern shared as usize
            ; same:
            ; mov rcx, r11
        );
        self.eip = ret_eip;
        self.point(Fixup::None);
    }

    pub(crate) fn emit_call_indirect(&mut self, ins: &Instruction) -> EmitResult {
        let size = Self::branch_size(ins);
        // Read the target (using ESP before the push), then push, then branch.
        self.load_operand_r13(ins, 0, size)?;
        self.push_imm(ins.next_ip32(), size);
        self.flush_esp();
        if self.exits_via_monitor {
            self.exit_to_monitor_r13();
            return Ok(());
        }
        self.point(Fixup::TargetInR13);
        ibl_sequence(&mut self.ops, IblMiss::Extern(self.stubs.ibl_miss), IblHit::Call);
        self.return_point(ins.next_ip32());
        Ok(())
    }

    pub(crate) fn emit_jmp_indirect(&mut self, ins: &Instruction) -> EmitResult {
        let size = Self::branch_size(ins);
        self.load_operand_r13(ins, 0, size)?;
        self.flush_esp();
        if self.exits_via_monitor {
            self.exit_to_monitor_r13();
            return Ok(());
        }
        self.emit_ibl();
        Ok(())
    }

    /// A near `ret`: pop the guest target into R13D and return on the host stack to the
    /// return point of the matching translated `call` (which checks R13D).
    pub(crate) fn emit_ret(&mut self, ins: &Instruction) -> EmitResult {
        if ins.mnemonic() != Mnemonic::Ret {
            return Err(EmitError::Unsupported("far return".into()));
        }
        let size = Self::branch_size(ins);
        let pop = if matches!(ins.code(), Code::Retnd_imm16 | Code::Retnw_imm16) { ins.immediate16() as i32 } else { 0 };
        let s = self.slot(0);
        self.load_slot_r13_zx(s, size);
        self.adjust_esp(size as i32 + pop);
        self.flush_esp();
        if self.exits_via_monitor {
            self.emit_ret_in_interrupt_shadow();
        } else {
            dynasm!(self.ops ; .arch x64 ; ret);
        }
        Ok(())
    }

    /// The end of a `ret` that follows `sti` (`local_irq_enable(); return;` ends many
    /// kernel functions, some on every system call): a return point would continue
    /// in the caller without a pending-interrupt test, so, with no interrupt pending
    /// (`kick_sync`, which `sti` set, is 0), drop the caller's return point from the host
    /// stack (keeping the sentinel at its bottom) and look the target up: the table
    /// holds checked entries. With one pending, leave for the monitor, which delivers it.
    fn emit_ret_in_interrupt_shadow(&mut self) {
        let miss = self.stubs.ibl_miss;
        let minus_sentinel = (self.stubs.ret_sentinel as i64).wrapping_neg();
        dynasm!(self.ops
            ; .arch x64
            ; mov r11, rcx
            ; mov ecx, DWORD [r15 + off::KICK_SYNC]
            ; jrcxz >quiet
            ; mov rcx, r11
            ; jmp extern miss as usize
            ; quiet:
            // (lea and jrcxz: the guest's flags are the host's and must not change.)
            ; mov r14, QWORD [rsp]
            ; mov rcx, QWORD minus_sentinel
            ; lea rcx, [rcx + r14]
            ; jrcxz >bottom
            ; lea rsp, [rsp + 8]
            ; bottom:
            ; mov rcx, r11
        );
        self.emit_ibl();
    }

    /// Leaves for the monitor with the guest target in R13D (as a lookup miss would).
    fn exit_to_monitor_r13(&mut self) {
        let miss = self.stubs.ibl_miss;
        dynasm!(self.ops ; .arch x64 ; jmp extern miss as usize);
    }

    /// The inline indirect-branch lookup for the guest target in R13D (see
    /// [`ibl_sequence`]).
    pub(crate) fn emit_ibl(&mut self) {
        ibl_sequence(&mut self.ops, IblMiss::Extern(self.stubs.ibl_miss), IblHit::Jump);
    }
}

/// Where an indirect-branch lookup goes on a miss.
pub(crate) enum IblMiss {
    /// The miss stub at this host address.
    Extern(u64),
    /// The miss stub at this label (while assembling the stubs themselves).
    Label(DynamicLabel),
}

/// What an indirect-branch lookup does on a hit.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum IblHit {
    /// Jump to the fragment.
    Jump,
    /// Call it (an indirect guest `call`: the return point follows).
    Call,
}

/// The indirect-branch lookup for the guest target in R13D. The table entry holds
/// `-eip`, so `lea ecx, [entry + target]` is zero exactly on a hit and `jrcxz` tests it:
/// no flags change. A miss (or an empty entry, whose host address is the miss stub) goes
/// to the miss stub with the target in R13D.
pub(crate) fn ibl_sequence(ops: &mut VecAssembler<X64Relocation>, miss: IblMiss, hit: IblHit) {
    dynasm!(ops
        ; .arch x64
        ; movzx r14d, r13w
        ; lea r14, [r14 + r14]
        ; mov r11, QWORD [r15 + off::IBL_TABLE]
        ; mov r10, rcx
        ; mov ecx, DWORD [r11 + r14 * 8]
        ; lea ecx, [rcx + r13]
        ; jrcxz >hit
        ; mov rcx, r10
    );
    match miss {
        IblMiss::Extern(a) => dynasm!(ops ; .arch x64 ; jmp extern a as usize),
        IblMiss::Label(l) => dynasm!(ops ; .arch x64 ; jmp =>l),
    }
    dynasm!(ops ; .arch x64 ; hit: ; mov rcx, r10);
    match hit {
        IblHit::Jump => dynasm!(ops ; .arch x64 ; jmp QWORD [r11 + r14 * 8 + 8]),
        IblHit::Call => dynasm!(ops ; .arch x64 ; call QWORD [r11 + r14 * 8 + 8]),
    }
}
