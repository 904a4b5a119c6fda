//! Stack instructions: every implicit use of the guest stack, expanded.
//!
//! In 64-bit mode `push`, `pop` and friends use RSP and 8-byte slots, so none of them can
//! be IDENT. The expansions store to / load from `gs:[r12d + disp]` (the guest stack in
//! the window; R12D is guest ESP) and then move R12D with `lea`. Memory is always accessed
//! before any guest register changes, so a fault leaves the guest state as it was before
//! the instruction (precise faults).

use dynasmrt::{DynasmApi, dynasm};
use iced_x86::{Code, Instruction, MemoryOperand, OpKind, Register};

use super::{EmitError, EmitResult, Emitter, gpr_number, host_reg};
use crate::context::{Seg, flags, off};
use crate::mode::Mode;

/// Where a stack slot is addressed from.
#[derive(Clone, Copy)]
pub(crate) enum Slot {
    /// `gs:[r12d + disp]` (flat SS).
    Esp(i32),
    /// `gs:[r14d]` (the linear address was computed into R14D).
    R14,
}

/// The memory operand of `ins` as a `MemoryOperand` (to rebuild it into another
/// instruction).
pub(crate) fn memory_operand(ins: &Instruction, extra_disp: i32) -> MemoryOperand {
    MemoryOperand::new(
        ins.memory_base(),
        ins.memory_index(),
        ins.memory_index_scale(),
        (ins.memory_displacement32() as i32).wrapping_add(extra_disp) as i64,
        if ins.memory_displ_size() == 0 && extra_disp != 0 { 4 } else { ins.memory_displ_size() },
        false,
        ins.segment_prefix(),
    )
}

impl Emitter<'_> {
    fn require_stack32(&self) -> EmitResult {
        if self.mode.has(Mode::STACK32) { Ok(()) } else { Err(EmitError::Unsupported("16-bit stack segment (SS.B = 0)".into())) }
    }

    /// The stack slot at ESP + `disp`.
    pub(crate) fn slot(&mut self, disp: i32) -> Slot {
        let disp = disp + self.esp_delta;
        if self.mode.is_flat(Seg::Ss) {
            return Slot::Esp(disp);
        }
        let o = off::seg_base(Seg::Ss);
        dynasm!(self.ops
            ; .arch x64
            ; lea r14d, [r12 + disp]
            ; mov r11d, [r15 + o]
            ; lea r14d, [r14 + r11]
        );
        Slot::R14
    }

    /// Stores host register `src` (low `size` bytes) to `slot`.
    pub(crate) fn store_slot(&mut self, slot: Slot, src: u8, size: u8) {
        match (slot, size) {
            (Slot::Esp(d), 4) => dynasm!(self.ops ; .arch x64 ; gs mov DWORD [r12d + d], Rd(src)),
            (Slot::Esp(d), _) => dynasm!(self.ops ; .arch x64 ; gs mov WORD [r12d + d], Rw(src)),
            (Slot::R14, 4) => dynasm!(self.ops ; .arch x64 ; gs mov DWORD [r14d], Rd(src)),
            (Slot::R14, _) => dynasm!(self.ops ; .arch x64 ; gs mov WORD [r14d], Rw(src)),
        }
    }

    /// Stores an immediate to `slot`.
    fn store_slot_imm(&mut self, slot: Slot, imm: u32, size: u8) {
        match (slot, size) {
            (Slot::Esp(d), 4) => {
                dynasm!(self.ops ; .arch x64 ; gs mov DWORD [r12d + d], imm as i32)
            }
            (Slot::Esp(d), _) => dynasm!(self.ops ; .arch x64 ; gs mov WORD [r12d + d], imm as i16),
            (Slot::R14, 4) => dynasm!(self.ops ; .arch x64 ; gs mov DWORD [r14d], imm as i32),
            (Slot::R14, _) => dynasm!(self.ops ; .arch x64 ; gs mov WORD [r14d], imm as i16),
        }
    }

    /// Loads `size` bytes from `slot` into host register `dst` (16-bit loads leave the
    /// upper half of the register alone, as a 16-bit `pop` does).
    pub(crate) fn load_slot(&mut self, dst: u8, slot: Slot, size: u8) {
        match (slot, size) {
            (Slot::Esp(d), 4) => dynasm!(self.ops ; .arch x64 ; gs mov Rd(dst), DWORD [r12d + d]),
            (Slot::Esp(d), _) => dynasm!(self.ops ; .arch x64 ; gs mov Rw(dst), WORD [r12d + d]),
            (Slot::R14, 4) => dynasm!(self.ops ; .arch x64 ; gs mov Rd(dst), DWORD [r14d]),
            (Slot::R14, _) => dynasm!(self.ops ; .arch x64 ; gs mov Rw(dst), WORD [r14d]),
        }
    }

    /// Loads `size` bytes from `slot` zero-extended into R13D.
    pub(crate) fn load_slot_r13_zx(&mut self, slot: Slot, size: u8) {
        match (slot, size) {
            (Slot::Esp(d), 4) => dynasm!(self.ops ; .arch x64 ; gs mov r13d, DWORD [r12d + d]),
            (Slot::Esp(d), _) => dynasm!(self.ops ; .arch x64 ; gs movzx r13d, WORD [r12d + d]),
            (Slot::R14, 4) => dynasm!(self.ops ; .arch x64 ; gs mov r13d, DWORD [r14d]),
            (Slot::R14, _) => dynasm!(self.ops ; .arch x64 ; gs movzx r13d, WORD [r14d]),
        }
    }

    /// ESP += `delta`, applied lazily (see [`Emitter::flush_esp`]).
    pub(crate) fn adjust_esp(&mut self, delta: i32) {
        self.esp_delta += delta;
    }

    /// Pushes R13 (low `size` bytes).
    pub(crate) fn push_r13(&mut self, size: u8) {
        let s = self.slot(-(size as i32));
        self.store_slot(s, 13, size);
        self.adjust_esp(-(size as i32));
    }

    /// Pushes an immediate.
    pub(crate) fn push_imm(&mut self, imm: u32, size: u8) {
        let s = self.slot(-(size as i32));
        self.store_slot_imm(s, imm, size);
        self.adjust_esp(-(size as i32));
    }

    /// Loads a register or memory operand (operand 0 of `ins` unless `op` says otherwise)
    /// zero-extended into R13D.
    pub(crate) fn load_operand_r13(&mut self, ins: &Instruction, op: u32, size: u8) -> EmitResult {
        match ins.op_kind(op) {
            OpKind::Register => {
                let g = gpr_number(ins.op_register(op)).ok_or_else(|| EmitError::Unsupported("operand register".into()))?;
                let h = host_reg(g);
                if size == 4 {
                    dynasm!(self.ops ; .arch x64 ; mov r13d, Rd(h));
                } else {
                    dynasm!(self.ops ; .arch x64 ; movzx r13d, Rw(h));
                }
                Ok(())
            }
            OpKind::Memory => {
                let code = if size == 4 { Code::Mov_r32_rm32 } else { Code::Movzx_r32_rm16 };
                let i =
                    Instruction::with2(code, Register::R13D, memory_operand(ins, 0)).map_err(|e| EmitError::Unsupported(e.to_string()))?;
                self.emit_lowered(i)
            }
            k => Err(EmitError::Unsupported(format!("operand kind {k:?}"))),
        }
    }

    pub(crate) fn emit_push(&mut self, ins: &Instruction) -> EmitResult {
        self.require_stack32()?;
        let size = (-ins.stack_pointer_increment()) as u8;
        match ins.op0_kind() {
            OpKind::Register => {
                let g = gpr_number(ins.op0_register()).ok_or_else(|| EmitError::Unsupported("push register".into()))?;
                let s = self.slot(-(size as i32));
                self.store_slot(s, host_reg(g), size);
                self.adjust_esp(-(size as i32));
            }
            OpKind::Memory => {
                self.load_operand_r13(ins, 0, size)?;
                self.push_r13(size);
            }
            _ => self.push_imm(ins.immediate(0) as u32, size),
        }
        Ok(())
    }

    pub(crate) fn emit_push_sreg(&mut self, ins: &Instruction) -> EmitResult {
        self.require_stack32()?;
        let size = -ins.stack_pointer_increment();
        let seg = Seg::from_iced(ins.op0_register()).ok_or_else(|| EmitError::Unsupported("push sreg".into()))?;
        let o = off::sel(seg);
        // Zero-extended, for the models that store the whole slot.
        dynasm!(self.ops ; .arch x64 ; movzx r13d, WORD [r15 + o]);
        // A 32-bit push of a segment register moves ESP by 4 but writes either the low
        // word only (Intel) or the zero-extended selector (AMD): the host CPU's choice,
        // so that translated code agrees with directly executed code.
        let s = self.slot(-size);
        self.store_slot(s, 13, self.push_sreg.stored_bytes(size as u8));
        self.adjust_esp(-size);
        Ok(())
    }

    /// `mov r/m, sreg`: the selector from the context, zero-extended into a 32-bit
    /// register (as the monitor's emulation and P6-and-later CPUs do), into the low word
    /// of a 16-bit one, or stored as a word.
    pub(crate) fn emit_sreg_read(&mut self, ins: &Instruction) -> EmitResult {
        let seg = Seg::from_iced(ins.op1_register()).ok_or_else(|| EmitError::Unsupported("mov r/m, sreg".into()))?;
        let o = off::sel(seg);
        dynasm!(self.ops ; .arch x64 ; movzx r13d, WORD [r15 + o]);
        match ins.op0_kind() {
            OpKind::Register => {
                let r = ins.op0_register();
                let d = host_reg(gpr_number(r).ok_or_else(|| EmitError::Unsupported("mov r, sreg".into()))?);
                if r.size() == 4 {
                    dynasm!(self.ops ; .arch x64 ; mov Rd(d), r13d);
                } else {
                    dynasm!(self.ops ; .arch x64 ; mov Rw(d), r13w);
                }
            }
            OpKind::Memory => {
                let i = Instruction::with2(Code::Mov_rm16_r16, memory_operand(ins, 0), Register::R13W)
                    .map_err(|e| EmitError::Unsupported(e.to_string()))?;
                self.emit_lowered(i)?;
            }
            k => return Err(EmitError::Unsupported(format!("mov sreg operand {k:?}"))),
        }
        Ok(())
    }

    /// `mov r32, cr2` at CPL 0: from the context.
    pub(crate) fn emit_cr2_read(&mut self, ins: &Instruction) -> EmitResult {
        let d = host_reg(gpr_number(ins.op0_register()).ok_or_else(|| EmitError::Unsupported("mov r, cr2".into()))?);
        dynasm!(self.ops ; .arch x64 ; mov Rd(d), DWORD [r15 + off::CR2]);
        Ok(())
    }

    pub(crate) fn emit_pop(&mut self, ins: &Instruction) -> EmitResult {
        self.require_stack32()?;
        let size = ins.stack_pointer_increment() as u8;
        match ins.op0_kind() {
            OpKind::Register => {
                let g = gpr_number(ins.op0_register()).ok_or_else(|| EmitError::Unsupported("pop register".into()))?;
                let s = self.slot(0);
                if g == 4 {
                    // pop esp: ESP gets the value read (the slot included any pending
                    // adjustment, which the new value replaces).
                    self.load_slot(12, s, size);
                    self.esp_delta = 0;
                } else {
                    self.load_slot(host_reg(g), s, size);
                    self.adjust_esp(size as i32);
                }
            }
            OpKind::Memory => {
                let s = self.slot(0);
                self.load_slot_r13_zx(s, size);
                // The destination address is computed with ESP already incremented.
                let extra = if ins.memory_base() == Register::ESP { size as i32 } else { 0 };
                let code = if size == 4 { Code::Mov_rm32_r32 } else { Code::Mov_rm16_r16 };
                let src = if size == 4 { Register::R13D } else { Register::R13W };
                let i = Instruction::with2(code, memory_operand(ins, extra), src).map_err(|e| EmitError::Unsupported(e.to_string()))?;
                self.emit_lowered(i)?;
                self.adjust_esp(size as i32);
            }
            k => return Err(EmitError::Unsupported(format!("pop operand {k:?}"))),
        }
        Ok(())
    }

    pub(crate) fn emit_pusha(&mut self, ins: &Instruction) -> EmitResult {
        self.require_stack32()?;
        let size: u8 = if ins.code() == Code::Pushad { 4 } else { 2 };
        for g in 0..8u8 {
            let s = self.slot(-((g as i32 + 1) * size as i32));
            self.store_slot(s, host_reg(g), size);
        }
        self.adjust_esp(-8 * size as i32);
        Ok(())
    }

    pub(crate) fn emit_popa(&mut self, ins: &Instruction) -> EmitResult {
        self.require_stack32()?;
        let size: u8 = if ins.code() == Code::Popad { 4 } else { 2 };
        // Touch both ends first: after that no load can fault, so the registers are
        // only written once the whole instruction is sure to complete.
        let s = self.slot(0);
        self.load_slot_r13_zx(s, size);
        let s = self.slot(7 * size as i32);
        self.load_slot_r13_zx(s, size);
        for g in (0..8u8).rev() {
            if g == 4 {
                continue;
            }
            let s = self.slot((7 - g as i32) * size as i32);
            self.load_slot(host_reg(g), s, size);
        }
        self.adjust_esp(8 * size as i32);
        Ok(())
    }

    pub(crate) fn emit_pushf(&mut self, ins: &Instruction) -> EmitResult {
        self.require_stack32()?;
        let size = (-ins.stack_pointer_increment()) as u8;
        // Host RFLAGS holds the guest's arithmetic flags and DF, plus IF and bit 1,
        // which are always set in user mode and never anything else: replace those two
        // with the virtual bits.
        dynasm!(self.ops
            ; .arch x64
            ; pushfq
            ; pop r13
            ; mov r14d, [r15 + off::VFLAGS]
            ; lea r13d, [r13 + r14 - 0x202]
            ; mov r14d, [r15 + off::VIF]
            ; lea r13d, [r13 + r14]
        );
        self.push_r13(size);
        Ok(())
    }

    pub(crate) fn emit_popf(&mut self, ins: &Instruction) -> EmitResult {
        self.require_stack32()?;
        let size = ins.stack_pointer_increment() as u8;
        let s = self.slot(0);
        self.load_slot_r13_zx(s, size);
        self.adjust_esp(size as i32);
        // CPL 0: every flag but VM, RF, VIF and VIP can change. The host flags are free
        // to clobber until the final popfq.
        let virt_mask = if size == 4 {
            (flags::TF | flags::IOPL | flags::NT | flags::AC | flags::ID) as i32
        } else {
            (flags::TF | flags::IOPL | flags::NT) as i32
        };
        dynasm!(self.ops
            ; .arch x64
            ; mov r14d, r13d
            ; and r14d, flags::IF as i32
            ; mov [r15 + off::VIF], r14d
            ; mov r14d, r13d
            ; and r14d, virt_mask
            ; or r14d, flags::FIXED1 as i32
        );
        if size == 2 {
            dynasm!(self.ops
                ; .arch x64
                ; mov r11d, [r15 + off::VFLAGS]
                ; and r11d, 0xFFFF_0000u32 as i32
                ; or r14d, r11d
            );
        }
        dynasm!(self.ops
            ; .arch x64
            ; mov [r15 + off::VFLAGS], r14d
            // Exit at the next fragment entry if an interrupt may now be deliverable
            // or single-stepping begins.
            ; and r14d, flags::TF as i32
            ; or r14d, [r15 + off::IRQ_PENDING]
            ; mov [r15 + off::KICK_SYNC], r14d
            ; and r13d, flags::HOST_HELD as i32
            ; or r13d, 0x202
            ; push r13
            ; popfq
        );
        self.force_checked = true;
        Ok(())
    }

    pub(crate) fn emit_enter(&mut self, ins: &Instruction) -> EmitResult {
        self.require_stack32()?;
        let frame = ins.immediate16() as i32;
        self.flush_esp();
        let s = self.slot(-4);
        self.store_slot(s, 5, 4);
        dynasm!(self.ops
            ; .arch x64
            ; lea r12d, [r12 - 4]
            ; mov ebp, r12d
        );
        self.adjust_esp(-frame);
        Ok(())
    }

    pub(crate) fn emit_leave(&mut self, ins: &Instruction) -> EmitResult {
        self.require_stack32()?;
        let size: u8 = if ins.code() == Code::Leaved { 4 } else { 2 };
        self.flush_esp();
        // Read the saved EBP at SS:EBP before changing anything.
        if self.mode.is_flat(Seg::Ss) {
            if size == 4 {
                dynasm!(self.ops ; .arch x64 ; gs mov r13d, DWORD [ebp]);
            } else {
                dynasm!(self.ops ; .arch x64 ; gs movzx r13d, WORD [ebp]);
            }
        } else {
            let o = off::seg_base(Seg::Ss);
            dynasm!(self.ops ; .arch x64 ; mov r11d, [r15 + o] ; lea r14d, [rbp + r11]);
            if size == 4 {
                dynasm!(self.ops ; .arch x64 ; gs mov r13d, DWORD [r14d]);
            } else {
                dynasm!(self.ops ; .arch x64 ; gs movzx r13d, WORD [r14d]);
            }
        }
        let sz = size as i32;
        dynasm!(self.ops ; .arch x64 ; lea r12d, [rbp + sz]);
        if size == 4 {
            dynasm!(self.ops ; .arch x64 ; mov ebp, r13d);
        } else {
            dynasm!(self.ops ; .arch x64 ; mov bp, r13w);
        }
        Ok(())
    }
}
