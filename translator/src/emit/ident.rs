//! IDENT translation: the guest instruction re-encoded for 64-bit mode, with its memory
//! operand redirected into the window.
//!
//! The isolation rule lives here. A memory operand becomes `gs:[addr32]`: GS's base is
//! the window base, and the 0x67 prefix makes the CPU wrap the effective address at
//! 4 GiB *before* adding it, exactly as the guest's own address arithmetic wraps. When
//! the segment has a non-zero base, or the address is 16-bit, the linear address is first
//! computed into R13D with flag-free `lea`/`movzx` (wrapping at 32 bits), and the
//! operand becomes `gs:[r13d]`. Either way no translated access can reach outside
//! `[window, window + 4 GiB + 16)`; the bytes past 4 GiB are the mirror of guest page 0.

use dynasmrt::{DynasmApi, dynasm};
use iced_x86::{Code, Instruction, InstructionInfoFactory, MemoryOperand, OpKind, Register};

use super::{EmitError, EmitResult, Emitter};
use crate::context::{Seg, off};
use crate::fragment::Fixup;

/// True if `r` needs a REX prefix (so AH..BH cannot appear beside it).
fn needs_rex(r: Register) -> bool {
    use Register as R;
    matches!(r, R::SPL | R::BPL | R::SIL | R::DIL) || (r.is_gpr() && r.number() >= 8 && !matches!(r, R::AH | R::CH | R::DH | R::BH))
}

/// Guest register number of a high byte register.
fn high_byte(r: Register) -> Option<u8> {
    use Register as R;
    Some(match r {
        R::AH => 0,
        R::CH => 1,
        R::DH => 2,
        R::BH => 3,
        _ => return None,
    })
}

impl Emitter<'_> {
    /// Renames ESP/SP to R12D/R12W in register operands and the memory base.
    pub(crate) fn rename_esp(ins: &mut Instruction) {
        for i in 0..ins.op_count() {
            if ins.op_kind(i) == OpKind::Register {
                match ins.op_register(i) {
                    Register::ESP => ins.set_op_register(i, Register::R12D),
                    Register::SP => ins.set_op_register(i, Register::R12W),
                    _ => {}
                }
            }
        }
        if ins.memory_base() == Register::ESP {
            ins.set_memory_base(Register::R12D);
        }
    }

    /// Makes an ESP-based memory operand R12D-based, folding in the pending stack
    /// adjustment.
    pub(crate) fn rebase_on_r12(&self, ins: &mut Instruction) {
        ins.set_memory_base(Register::R12D);
        if self.esp_delta != 0 {
            ins.set_memory_displacement32((ins.memory_displacement32() as i32).wrapping_add(self.esp_delta) as u32);
            ins.set_memory_displ_size(4);
        }
    }

    /// True if the instruction's memory operand uses 16-bit addressing.
    pub(crate) fn is_addr16(ins: &Instruction) -> bool {
        ins.memory_base().is_gpr16()
            || ins.memory_index().is_gpr16()
            || (ins.memory_base() == Register::None && ins.memory_index() == Register::None && ins.memory_displ_size() == 2)
    }

    /// Emits code leaving in R13D the offset (no segment base) of `ins`'s memory
    /// operand, wrapped like the guest's address size.
    pub(crate) fn effective_address_to_r13(&mut self, ins: &Instruction) -> EmitResult {
        if Self::is_addr16(ins) {
            let disp = ins.memory_displacement32() as i32;
            match gpr16(ins.memory_base()) {
                Some(b) => dynasm!(self.ops ; .arch x64 ; movzx r13d, Rw(b)),
                None => dynasm!(self.ops ; .arch x64 ; mov r13d, 0),
            }
            match gpr16(ins.memory_index()) {
                Some(x) => {
                    dynasm!(self.ops ; .arch x64 ; movzx r14d, Rw(x) ; lea r13d, [r13 + r14 + disp])
                }
                None => dynasm!(self.ops ; .arch x64 ; lea r13d, [r13 + disp]),
            }
            dynasm!(self.ops ; .arch x64 ; movzx r13d, r13w);
            return Ok(());
        }
        let (base, delta) = match ins.memory_base() {
            Register::ESP => (Register::R12D, self.esp_delta),
            r => (r, 0),
        };
        let mem = MemoryOperand::new(
            base,
            ins.memory_index(),
            ins.memory_index_scale(),
            (ins.memory_displacement32() as i32).wrapping_add(delta) as i64,
            if ins.memory_displ_size() == 0 && base == Register::None && ins.memory_index() == Register::None {
                4
            } else {
                ins.memory_displ_size().min(4)
            },
            false,
            Register::None,
        );
        let lea = Instruction::with2(Code::Lea_r32_m, Register::R13D, mem).map_err(|e| EmitError::Unsupported(e.to_string()))?;
        self.encode(&lea)
    }

    /// Adds segment `seg`'s base to R13D (flag-free, wrapping at 4 GiB).
    pub(crate) fn add_segment_base_to_r13(&mut self, seg: Seg) {
        let o = off::seg_base(seg);
        dynasm!(self.ops ; .arch x64 ; mov r14d, [r15 + o] ; lea r13d, [r13 + r14]);
    }

    /// Redirects the instruction's `OpKind::Memory` operand into the window, emitting
    /// the address computation first when the segment is not flat or the addressing is
    /// 16-bit. `adjust` is added to the offset first (for `pop [esp+n]`).
    pub(crate) fn lower_memory(&mut self, ins: &mut Instruction) -> EmitResult {
        let seg = Seg::from_iced(ins.memory_segment()).ok_or_else(|| EmitError::Unsupported("memory operand without segment".into()))?;
        if self.mode.is_flat(seg) && !Self::is_addr16(ins) && !Self::address_uses_swapped_register(ins) {
            ins.set_segment_prefix(Register::GS);
            if ins.memory_base() == Register::ESP {
                self.rebase_on_r12(ins);
            }
            if ins.memory_base() == Register::None && ins.memory_index() == Register::None {
                // A bare displacement: force the 32-bit form (67 prefix), never a
                // sign-extended 64-bit address.
                ins.set_memory_displ_size(4);
            }
            return Ok(());
        }
        self.effective_address_to_r13(ins)?;
        if !self.mode.is_flat(seg) {
            self.add_segment_base_to_r13(seg);
        }
        ins.set_memory_base(Register::R13D);
        ins.set_memory_index(Register::None);
        ins.set_memory_index_scale(1);
        ins.set_memory_displacement32(0);
        ins.set_memory_displ_size(0);
        ins.set_segment_prefix(Register::GS);
        Ok(())
    }

    /// True if the instruction has an AH..BH operand whose full register is also a base
    /// or index of its memory operand: exchanging that byte register (see
    /// [`Emitter::emit_with_byte_fix`]) would change the address, so the address is
    /// computed into R13D first.
    fn address_uses_swapped_register(ins: &Instruction) -> bool {
        let addr_regs = [ins.memory_base(), ins.memory_index()];
        (0..ins.op_count()).any(|i| {
            ins.op_kind(i) == OpKind::Register
                && high_byte(ins.op_register(i))
                    .is_some_and(|g| addr_regs.iter().any(|r| r.is_gpr() && r.full_register32().number() == g as usize))
        })
    }

    /// Emits an instruction that has at most one memory operand, after lowering it.
    /// Handles AH..BH beside REX by exchanging them with a free low byte register.
    pub(crate) fn emit_lowered(&mut self, mut ins: Instruction) -> EmitResult {
        if (0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::Memory) {
            self.lower_memory(&mut ins)?;
        } else if (0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::MemorySegEDI) {
            // maskmovq/maskmovdqu: implicit DS:EDI, flat (checked by the classifier).
            ins.set_segment_prefix(Register::GS);
        }
        Self::rename_esp(&mut ins);
        self.emit_with_byte_fix(ins)
    }

    /// Encodes `ins`, first swapping AH..BH operands into free low byte registers if the
    /// instruction needs a REX prefix.
    pub(crate) fn emit_with_byte_fix(&mut self, mut ins: Instruction) -> EmitResult {
        let regs: Vec<Register> = (0..ins.op_count())
            .filter(|&i| ins.op_kind(i) == OpKind::Register)
            .map(|i| ins.op_register(i))
            .chain([ins.memory_base(), ins.memory_index()])
            .collect();
        let highs: Vec<u8> = regs.iter().filter_map(|&r| high_byte(r)).collect();
        if highs.is_empty() || !regs.iter().any(|&r| needs_rex(r)) {
            return self.encode(&ins);
        }
        // Full registers the instruction uses, explicitly or implicitly, other than
        // through its high byte registers.
        let mut info = InstructionInfoFactory::new();
        let mut used = [false; 16];
        for u in info.info(&ins).used_registers() {
            let r = u.register();
            if high_byte(r).is_some() {
                continue;
            }
            if r.is_gpr() {
                used[r.full_register().number()] = true;
            }
        }
        let mut pairs = [(0u8, 0u8); 2];
        let mut n = 0usize;
        for i in 0..ins.op_count() {
            if ins.op_kind(i) != OpKind::Register {
                continue;
            }
            let Some(h) = high_byte(ins.op_register(i)) else {
                continue;
            };
            // Prefer the same register's low byte, then any other unused one.
            let cand = std::iter::once(h).chain(0..4).find(|&c| !used[c as usize] && !pairs[..n].iter().any(|p| p.0 == c));
            let Some(l) = cand else {
                return Err(EmitError::Unsupported("no free byte register for AH..BH beside a REX prefix".into()));
            };
            used[l as usize] = true;
            pairs[n] = (l, h);
            n += 1;
            let low = [Register::AL, Register::CL, Register::DL, Register::BL][l as usize];
            ins.set_op_register(i, low);
        }
        for p in &pairs[..n] {
            self.xchg_low_high(p.0, p.1);
        }
        self.point(Fixup::ByteSwap(pairs, n as u8));
        self.encode(&ins)?;
        for p in pairs[..n].iter().rev() {
            self.xchg_low_high(p.0, p.1);
        }
        self.point(Fixup::None);
        Ok(())
    }

    fn xchg_low_high(&mut self, low: u8, high: u8) {
        // `xchg r8, r8` with legacy registers: no REX, no flags.
        let modrm = 0xC0 | ((4 + high) << 3) | low;
        self.ops.extend([0x86u8, modrm]);
    }

    /// IDENT: the instruction as it is, memory redirected.
    pub(crate) fn emit_ident(&mut self, ins: &Instruction) -> EmitResult {
        if crate::classify::uses_fpu(ins) {
            self.ensure_fpu();
        }
        self.emit_lowered(*ins)
    }

    /// `lea`: address arithmetic only; no segment, no access.
    pub(crate) fn emit_lea(&mut self, ins: &Instruction) -> EmitResult {
        let dst = ins.op0_register();
        if !Self::is_addr16(ins) {
            let mut i = *ins;
            i.set_segment_prefix(Register::None);
            if i.memory_base() == Register::None && i.memory_index() == Register::None {
                i.set_memory_displ_size(4);
            }
            if i.memory_base() == Register::ESP {
                self.rebase_on_r12(&mut i);
            }
            Self::rename_esp(&mut i);
            return self.encode(&i);
        }
        self.effective_address_to_r13(ins)?;
        let d = super::host_reg(super::gpr_number(dst).ok_or_else(|| EmitError::Unsupported("lea destination".into()))?);
        if dst.is_gpr16() {
            dynasm!(self.ops ; .arch x64 ; mov Rw(d), r13w);
        } else {
            dynasm!(self.ops ; .arch x64 ; mov Rd(d), r13d);
        }
        Ok(())
    }
}

/// Host register number of a 16-bit address register.
fn gpr16(r: Register) -> Option<u8> {
    if r == Register::None { None } else { super::gpr_number(r).map(super::host_reg) }
}
