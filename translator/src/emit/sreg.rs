//! Segment-register loads at CPL 0 (`mov ds/es/fs/gs, r` and `pop ds/es/fs/gs`) without
//! the monitor when they change nothing.
//!
//! Kernels reload data segment registers with the selector they already hold all the
//! time: Linux's system call entry loads `__USER_DS` into DS and ES, which user code left
//! there, and its exit pops DS, ES and GS back to the same values. Each such load was a
//! callout, several per system call. A load of the selector the register holds, from a
//! descriptor that still reads the same 8 bytes as when the monitor last loaded it
//! (accessed bit included, which the monitor set then), yields the same hidden cache,
//! passes the same checks (at CPL 0 they depend on the selector and the descriptor only)
//! and writes no memory: it is a no-op but for `pop`'s ESP. The monitor records per
//! register whether this holds and from where it loaded ([`crate::Context::sreg_reload`]);
//! loading GDTR or LDTR, which could make the same selector name another descriptor,
//! clears the record. Anything else — another selector, a changed descriptor — goes to
//! the monitor as a callout, which also covers every fault and check.
//!
//! The code between guest instructions must keep the host flags (the guest's); the
//! comparisons here need them, so they run between `pushfq` and `popfq`. The descriptor
//! is read through the CPL 0 window with the flags restored and nothing pushed: if the
//! read faults (a shadow page not filled yet, or a guest #PF as on hardware, whose
//! descriptor reads are supervisor reads too), the guest state is the one before the
//! instruction, as the fault map says.

use dynasmrt::{DynasmApi, DynasmLabelApi, dynasm};
use iced_x86::{Instruction, Mnemonic};

use super::{EmitError, EmitResult, Emitter, gpr_number, host_reg};
use crate::context::{SREG_RELOAD_NULL, Seg, off};
use crate::fragment::CalloutKind;

impl Emitter<'_> {
    /// `mov sreg, r` / `pop sreg` ([`crate::classify::Class::SregLoad`]): inline if it
    /// reloads what the register holds, else a callout.
    pub(crate) fn emit_sreg_load(&mut self, ins: &Instruction) -> EmitResult {
        debug_assert_eq!(self.esp_delta, 0, "segment load with a pending stack adjustment");
        let seg = Seg::from_iced(ins.op0_register()).ok_or_else(|| EmitError::Unsupported("segment load".into()))?;
        let pop = ins.mnemonic() == Mnemonic::Pop;
        // The new selector, zero-extended into R13D (a fault reading the stack leaves the
        // guest state before the instruction).
        if pop {
            let slot = self.slot(0);
            self.load_slot_r13_zx(slot, 2);
        } else {
            let g = gpr_number(ins.op1_register()).ok_or_else(|| EmitError::Unsupported("mov sreg from memory".into()))?;
            dynasm!(self.ops ; .arch x64 ; movzx r13d, Rw(host_reg(g)));
        }
        let (sel, reload, addr, desc) = (off::sel(seg), off::sreg_reload(seg), off::sreg_desc_addr(seg), off::sreg_desc(seg));
        let slow = self.ops.new_dynamic_label();
        let same = self.ops.new_dynamic_label();
        let done = self.ops.new_dynamic_label();
        dynasm!(self.ops
            ; .arch x64
            ; pushfq
            ; cmp r13d, DWORD [r15 + sel]
            ; jne =>slow
            ; cmp DWORD [r15 + reload], SREG_RELOAD_NULL as i32
            ; je =>same
            ; jb =>slow
            // SREG_RELOAD_DESCRIPTOR: compare the descriptor with what was loaded.
            ; popfq
            ; mov r14d, DWORD [r15 + addr]
            ; gs mov r14, QWORD [r14d]
            ; pushfq
            ; cmp r14, QWORD [r15 + desc]
            ; jne =>slow
            ; =>same
            ; popfq
        );
        if pop {
            let size = ins.stack_pointer_increment();
            dynasm!(self.ops ; .arch x64 ; lea r12d, [r12 + size]);
        }
        dynasm!(self.ops
            ; .arch x64
            ; jmp =>done
            ; =>slow
            ; popfq
        );
        self.callout(ins, CalloutKind::Emulate, true);
        dynasm!(self.ops ; .arch x64 ; =>done);
        Ok(())
    }
}
