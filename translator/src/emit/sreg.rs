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
//! clears the record.
//!
//! FS and GS also switch between two selectors: Linux loads its per-CPU segment into FS on
//! every entry from user mode and the user's selector back on the way out, two callouts
//! per system call or user fault. The monitor keeps, with the record of the current load,
//! the one it replaced ([`crate::Context::sreg_alt_sel`]); a load of that selector whose
//! descriptor still reads the same swaps the two records (and the bases) here, and the
//! monitor swaps its segment caches when it next sees the context. (At CPL 0, FS and GS
//! are never "flat" in the [`crate::Mode`], so such a swap changes no translation.)
//! Anything else — a third selector, a changed descriptor — goes to the monitor as a
//! callout, which also covers every fault and check.
//!
//! The code between guest instructions must keep the host flags (the guest's); the
//! comparisons here need them, so they run between `pushfq` and `popfq`. The descriptor
//! is read through the CPL 0 window with the flags restored and nothing pushed: if the
//! read faults (a shadow page not filled yet, or a guest #PF as on hardware, whose
//! descriptor reads are supervisor reads too), the guest state is the one before the
//! instruction, as the fault map says.

use dynasmrt::{DynamicLabel, DynasmApi, DynasmLabelApi, dynasm};
use iced_x86::{Instruction, Mnemonic};

use super::{EmitError, EmitResult, Emitter};
use crate::context::{SREG_RELOAD_NULL, Seg, off};
use crate::fragment::CalloutKind;

impl Emitter<'_> {
    /// `mov sreg, r/m` / `pop sreg` ([`crate::classify::Class::SregLoad`]): inline if it
    /// reloads what the register holds (or, for FS and GS, swaps back the state it held
    /// before), else a callout.
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
            // `mov sreg, r16` or `mov sreg, m16` (Linux's system call exit reloads FS from
            // its saved registers).
            self.load_operand_r13(ins, 1, 2)?;
        }
        let (sel, reload, addr, desc) = (off::sel(seg), off::sreg_reload(seg), off::sreg_desc_addr(seg), off::sreg_desc(seg));
        let alternate = matches!(seg, Seg::Fs | Seg::Gs);
        let slow = self.ops.new_dynamic_label();
        let other = if alternate { self.ops.new_dynamic_label() } else { slow };
        let same = self.ops.new_dynamic_label();
        let done = self.ops.new_dynamic_label();
        dynasm!(self.ops
            ; .arch x64
            ; pushfq
            ; cmp r13d, DWORD [r15 + sel]
            ; jne =>other
        );
        self.reload_checks(reload, addr, desc, same, slow);
        dynasm!(self.ops ; .arch x64 ; =>same ; popfq);
        self.pop_sreg_esp(ins, pop);
        dynasm!(self.ops ; .arch x64 ; jmp =>done);
        if alternate {
            // The selector the register held before its last load by the monitor: swap
            // that state in (see `Context::sreg_alt_sel`).
            let swap = self.ops.new_dynamic_label();
            let (alt_sel, alt_reload) = (off::sreg_alt_sel(seg), off::sreg_alt_reload(seg));
            let (alt_addr, alt_desc) = (off::sreg_alt_desc_addr(seg), off::sreg_alt_desc(seg));
            dynasm!(self.ops
                ; .arch x64
                ; =>other
                ; cmp r13d, DWORD [r15 + alt_sel]
                ; jne =>slow
            );
            self.reload_checks(alt_reload, alt_addr, alt_desc, swap, slow);
            dynasm!(self.ops ; .arch x64 ; =>swap ; popfq);
            for (a, b) in [(sel, alt_sel), (reload, alt_reload), (addr, alt_addr), (off::seg_base(seg), off::sreg_alt_base(seg))] {
                dynasm!(self.ops
                    ; .arch x64
                    ; mov r14d, DWORD [r15 + a]
                    ; mov r13d, DWORD [r15 + b]
                    ; mov DWORD [r15 + a], r13d
                    ; mov DWORD [r15 + b], r14d
                );
            }
            // (The descriptors are 8 bytes: two dword swaps.)
            for half in [0, 4] {
                dynasm!(self.ops
                    ; .arch x64
                    ; mov r14d, DWORD [r15 + desc + half]
                    ; mov r13d, DWORD [r15 + alt_desc + half]
                    ; mov DWORD [r15 + desc + half], r13d
                    ; mov DWORD [r15 + alt_desc + half], r14d
                );
            }
            self.pop_sreg_esp(ins, pop);
            dynasm!(self.ops ; .arch x64 ; jmp =>done);
        }
        dynasm!(self.ops
            ; .arch x64
            ; =>slow
            ; popfq
        );
        self.callout(ins, CalloutKind::Emulate, true);
        dynasm!(self.ops ; .arch x64 ; =>done);
        Ok(())
    }

    /// With the flags pushed: goes to `ok` if a load of the selector whose reload kind,
    /// descriptor address and bytes are at these context offsets changes nothing (a
    /// null selector, or a descriptor that still reads the same), else to `slow`. The
    /// descriptor is read with the flags popped (it may fault: see the module comment).
    fn reload_checks(&mut self, reload: i32, addr: i32, desc: i32, ok: DynamicLabel, slow: DynamicLabel) {
        dynasm!(self.ops
            ; .arch x64
            ; cmp DWORD [r15 + reload], SREG_RELOAD_NULL as i32
            ; je =>ok
            ; jb =>slow
            // SREG_RELOAD_DESCRIPTOR: compare the descriptor with what was loaded.
            ; popfq
            ; mov r14d, DWORD [r15 + addr]
            ; gs mov r14, QWORD [r14d]
            ; pushfq
            ; cmp r14, QWORD [r15 + desc]
            ; jne =>slow
        );
    }

    /// `pop sreg`'s stack pointer increment.
    fn pop_sreg_esp(&mut self, ins: &Instruction, pop: bool) {
        if pop {
            let size = ins.stack_pointer_increment();
            dynasm!(self.ops ; .arch x64 ; lea r12d, [r12 + size]);
        }
    }
}
