//! Descriptor inspection (`lar`, `lsl`, `verr`, `verw`, `arpl`) and segment-register
//! loads (`mov sreg`, `pop sreg`, `lds`..`lss`).

use bt86_translator::Seg;
use iced_x86::{Instruction, Mnemonic, OpKind};

use super::operands::{Stack, memory_linear, read_operand, read_reg, write_operand, write_reg};
use super::{Env, Flow, set_zf};
use crate::cpu::segments::SegmentCache;
use crate::cpu::{Cpu, Exception};

pub(super) fn emulate_descriptor(cpu: &mut Cpu, env: &mut Env<'_>, ins: &Instruction) -> Result<Flow, Exception> {
    if !cpu.protected() {
        return Err(Exception::ud());
    }
    use Mnemonic as M;
    match ins.mnemonic() {
        M::Arpl => {
            let dst = read_operand(cpu, env.mem, ins, 0, 2)?;
            let src = read_reg(cpu, ins.op1_register());
            if dst & 3 < src & 3 {
                write_operand(cpu, env.mem, ins, 0, 2, (dst & !3) | (src & 3))?;
                set_zf(cpu, true);
            } else {
                set_zf(cpu, false);
            }
            Ok(Flow::Next)
        }
        M::Lar | M::Lsl => {
            let src_op = 1;
            let sel = read_operand(cpu, env.mem, ins, src_op, 2)? as u16;
            let ok = match visible_descriptor(cpu, env, sel)? {
                Some(c) => {
                    let system_ok = if ins.mnemonic() == M::Lar {
                        matches!(c.system_type(), 1 | 2 | 3 | 4 | 5 | 9 | 11 | 12)
                    } else {
                        matches!(c.system_type(), 1 | 2 | 3 | 9 | 11)
                    };
                    let type_ok = c.is_code_or_data() || system_ok;
                    if type_ok && privilege_ok(cpu, &c, sel) {
                        let dst = ins.op0_register();
                        let v = if ins.mnemonic() == M::Lar {
                            let bits = c.lar_bits();
                            if dst.is_gpr32() { bits & 0x00FF_FF00 } else { bits & 0xFF00 }
                        } else {
                            c.limit
                        };
                        write_reg(cpu, dst, v);
                        true
                    } else {
                        false
                    }
                }
                None => false,
            };
            set_zf(cpu, ok);
            Ok(Flow::Next)
        }
        M::Verr | M::Verw => {
            let sel = read_operand(cpu, env.mem, ins, 0, 2)? as u16;
            let ok = match visible_descriptor(cpu, env, sel)? {
                Some(c) if c.is_code_or_data() => {
                    let kind_ok = if ins.mnemonic() == M::Verr { c.readable() } else { c.writable_data() };
                    kind_ok && privilege_ok(cpu, &c, sel)
                }
                _ => false,
            };
            set_zf(cpu, ok);
            Ok(Flow::Next)
        }
        _ => unreachable!(),
    }
}

/// The descriptor of `sel` for the inspection instructions: None for null selectors and
/// selectors beyond the table.
fn visible_descriptor(cpu: &Cpu, env: &mut Env<'_>, sel: u16) -> Result<Option<SegmentCache>, Exception> {
    if sel & !3 == 0 {
        return Ok(None);
    }
    Ok(cpu.read_descriptor(env.mem, sel)?.map(|d| SegmentCache::from_descriptor(sel, d.raw)))
}

/// DPL >= CPL and DPL >= RPL, except for conforming code segments.
fn privilege_ok(cpu: &Cpu, c: &SegmentCache, sel: u16) -> bool {
    c.is_conforming() || (c.dpl() >= cpu.cpl && c.dpl() >= (sel & 3) as u8)
}

/// Loads segment register `s` with `sel`, with the checks of its kind.
pub(super) fn load_segment(cpu: &mut Cpu, env: &mut Env<'_>, s: Seg, sel: u16) -> Result<(), Exception> {
    match s {
        Seg::Ss => cpu.load_stack_segment(env.mem, sel),
        Seg::Cs => Err(Exception::ud()),
        _ => cpu.load_data_segment(env.mem, s, sel),
    }
}

/// `mov sreg, r/m16` and `mov r/m, sreg`.
pub(super) fn mov_sreg(cpu: &mut Cpu, env: &mut Env<'_>, ins: &Instruction) -> Result<Flow, Exception> {
    if ins.op0_kind() == OpKind::Register && ins.op0_register().is_segment_register() {
        let s = Seg::from_iced(ins.op0_register()).unwrap();
        let sel = read_operand(cpu, env.mem, ins, 1, 2)? as u16;
        load_segment(cpu, env, s, sel)?;
        Ok(if s == Seg::Ss { Flow::StackShadow } else { Flow::Next })
    } else {
        let s = Seg::from_iced(ins.op1_register()).unwrap();
        let sel = cpu.segment(s).selector;
        super::system::store_selector(cpu, env, ins, sel)?;
        Ok(Flow::Next)
    }
}

pub(super) fn emulate_segment_load(cpu: &mut Cpu, env: &mut Env<'_>, ins: &Instruction) -> Result<Flow, Exception> {
    use Mnemonic as M;
    match ins.mnemonic() {
        M::Pop => {
            let s = Seg::from_iced(ins.op0_register()).ok_or_else(Exception::ud)?;
            let size = ins.stack_pointer_increment() as u8;
            let sel = Stack::peek(cpu, env.mem, 0, 2)? as u16;
            load_segment(cpu, env, s, sel)?;
            let sp = Stack::moved(cpu, cpu.gpr(4), size as i32);
            cpu.set_gpr(4, sp);
            Ok(if s == Seg::Ss { Flow::StackShadow } else { Flow::Next })
        }
        M::Lds | M::Les | M::Lfs | M::Lgs | M::Lss => {
            if ins.op1_kind() != OpKind::Memory {
                return Err(Exception::ud());
            }
            let dst = ins.op0_register();
            let size = dst.size() as u8;
            let addr = memory_linear(cpu, ins, 0);
            let off = env.mem.load(addr, size)?;
            let sel = env.mem.load(addr.wrapping_add(size as u32), 2)? as u16;
            let s = match ins.mnemonic() {
                M::Lds => Seg::Ds,
                M::Les => Seg::Es,
                M::Lfs => Seg::Fs,
                M::Lgs => Seg::Gs,
                _ => Seg::Ss,
            };
            load_segment(cpu, env, s, sel)?;
            write_reg(cpu, dst, off);
            Ok(Flow::Next)
        }
        _ => unreachable!(),
    }
}

#[cfg(test)]
mod tests {
    //! `lar`/`lsl`/`verr`/`verw`/`arpl` and segment-register loads against the SDM
    //! (Vol. 2 instruction pages; Vol. 3A 5.5-5.6 for the privilege checks).
    use iced_x86::code_asm::*;

    use super::super::testing::*;
    use crate::cpu::Vector;
    use bt86_translator::Seg;

    /// GDT selectors of [`machine`] after the four flat ones.
    const XONLY: u16 = 0x28;
    const CONFORMING: u16 = 0x30;
    const RODATA: u16 = 0x38;
    const ABSENT: u16 = 0x40;
    const PAGED: u16 = 0x48;
    const LDT: u16 = 0x50;
    const INTGATE: u16 = 0x58;
    const CALLGATE: u16 = 0x60;
    const BEYOND: u16 = 0x68;

    fn machine() -> Machine {
        let (b, l, f) = FLAT;
        Machine::with_gdt(&[
            seg_desc(b, l, CODE_X, f),
            seg_desc(b, l, CODE_CONFORMING_XR, f),
            seg_desc(0x1000, 0xFFF, DATA_RO | DPL3, 0x4),
            seg_desc(b, l, DATA_RW & 0x7F, f),
            seg_desc(0x10_0000, 0x2, DATA_RW | DPL3, 0xC), // G = 1: limit 0x2FFF
            seg_desc(0x4000, 0xFF, 0x82, 0),               // LDT
            0x0000_8E00_0008_0000,                         // 32-bit interrupt gate
            call_gate(KCODE, 0x1234, 3, 0),
        ])
    }

    fn user(m: &mut Machine) {
        m.enter_user();
    }

    #[test]
    fn lar_reports_access_rights_of_visible_descriptors() {
        let mut m = machine();
        m.cpu.set_gpr(1, RODATA as u32);
        m.cpu.set_gpr(0, 0xFFFF_FFFF);
        assert_eq!(m.exec(|a| a.lar(eax, ecx)), Ok(Flow::Next));
        // Bits 23:8 of the descriptor's second dword, masked with 00FxFF00H (x: the
        // limit's bits 19:16, 0 in this descriptor).
        assert_eq!((m.flags() & ZF, m.cpu.gpr(0)), (ZF, 0x0040_F000), "G=0 D=1, P DPL3 S type 0");
        m.cpu.set_gpr(0, 0xFFFF_FFFF);
        assert_eq!(m.exec(|a| a.lar(ax, cx)), Ok(Flow::Next));
        assert_eq!(m.cpu.gpr(0), 0xFFFF_F000, "16 bits: the access byte only, the upper half kept");
        // An LDT and a call gate are valid for lar; an interrupt gate is not.
        for (sel, valid) in [(LDT, true), (CALLGATE, true), (INTGATE, false), (0, false), (3, false), (BEYOND, false)] {
            m.cpu.set_gpr(1, sel as u32);
            m.cpu.set_gpr(0, 0x5A5A);
            assert_eq!(m.exec(|a| a.lar(eax, ecx)), Ok(Flow::Next));
            assert_eq!(m.flags() & ZF != 0, valid, "lar of {sel:#x}");
            if !valid {
                assert_eq!(m.cpu.gpr(0), 0x5A5A, "the destination is left alone");
            }
        }
    }

    #[test]
    fn lar_and_lsl_check_privilege() {
        let mut m = machine();
        user(&mut m);
        for (sel, visible) in [(KDATA, false), (KCODE, false), (CONFORMING, true), (UDATA, true), (UDATA & !3, true)] {
            m.cpu.set_gpr(1, sel as u32);
            assert_eq!(m.exec(|a| a.lsl(eax, ecx)), Ok(Flow::Next));
            assert_eq!(m.flags() & ZF != 0, visible, "lsl of {sel:#x} at CPL 3");
        }
        // RPL above DPL hides a descriptor too (DPL 0 data with RPL 3 at CPL 0).
        let mut m = machine();
        m.cpu.set_gpr(1, (KDATA | 3) as u32);
        assert_eq!(m.exec(|a| a.lar(eax, ecx)), Ok(Flow::Next));
        assert_eq!(m.flags() & ZF, 0);
    }

    #[test]
    fn lsl_gives_the_byte_granular_limit() {
        let mut m = machine();
        m.cpu.set_gpr(1, PAGED as u32);
        assert_eq!(m.exec(|a| a.lsl(eax, ecx)), Ok(Flow::Next));
        assert_eq!((m.flags() & ZF, m.cpu.gpr(0)), (ZF, 0x2FFF));
        m.cpu.set_gpr(1, CALLGATE as u32);
        assert_eq!(m.exec(|a| a.lsl(eax, ecx)), Ok(Flow::Next));
        assert_eq!(m.flags() & ZF, 0, "a gate has no limit");
        m.cpu.set_gpr(1, LDT as u32);
        assert_eq!(m.exec(|a| a.lsl(eax, ecx)), Ok(Flow::Next));
        assert_eq!((m.flags() & ZF, m.cpu.gpr(0)), (ZF, 0xFF));
    }

    #[test]
    fn verr_and_verw() {
        let mut m = machine();
        for (sel, readable, writable) in [
            (KCODE, true, false),
            (XONLY, false, false),
            (KDATA, true, true),
            (RODATA, true, false),
            (LDT, false, false),
            (0, false, false),
        ] {
            m.cpu.set_gpr(0, sel as u32);
            assert_eq!(m.exec(|a| a.verr(ax)), Ok(Flow::Next));
            assert_eq!(m.flags() & ZF != 0, readable, "verr {sel:#x}");
            assert_eq!(m.exec(|a| a.verw(ax)), Ok(Flow::Next));
            assert_eq!(m.flags() & ZF != 0, writable, "verw {sel:#x}");
        }
        user(&mut m);
        m.cpu.set_gpr(0, KDATA as u32);
        assert_eq!(m.exec(|a| a.verw(ax)), Ok(Flow::Next));
        assert_eq!(m.flags() & ZF, 0, "DPL 0 data is not writable from CPL 3");
    }

    #[test]
    fn arpl_raises_rpl() {
        let mut m = machine();
        m.cpu.set_gpr(0, 0x1230);
        m.cpu.set_gpr(1, 0x0003);
        assert_eq!(m.exec(|a| a.arpl(ax, cx)), Ok(Flow::Next));
        assert_eq!((m.cpu.gpr(0), m.flags() & ZF), (0x1233, ZF));
        m.cpu.set_gpr(1, 0x0001);
        assert_eq!(m.exec(|a| a.arpl(ax, cx)), Ok(Flow::Next));
        assert_eq!((m.cpu.gpr(0), m.flags() & ZF), (0x1233, 0), "RPL already >= the source's: unchanged, ZF = 0");
        m.cpu.cr0 &= !crate::cpu::cr0::PE;
        assert_eq!(m.exec(|a| a.arpl(ax, cx)), ud(), "arpl is #UD in real mode");
    }

    #[test]
    fn data_segment_loads_check_type_privilege_and_presence() {
        let mut m = machine();
        for (sel, want) in [
            (BEYOND, gp(BEYOND as u32)),
            (BEYOND | 3, gp(BEYOND as u32)), // the error code drops the RPL
            (LDT, gp(LDT as u32)),
            (XONLY, gp(XONLY as u32)),
            (ABSENT, fault(Vector::NP, ABSENT as u32)),
            (0x04, gp(0x04)), // an LDT selector while LDTR is null
        ] {
            m.cpu.set_gpr(0, sel as u32);
            assert_eq!(m.exec(|a| a.mov(ds, ax)), want, "mov ds, {sel:#x}");
            assert_eq!(m.cpu.segment(Seg::Ds).selector, 0x18, "a faulting load leaves DS alone");
        }
        m.cpu.set_gpr(0, 0);
        assert_eq!(m.exec(|a| a.mov(es, ax)), Ok(Flow::Next), "a null selector loads into a data segment register");
        m.cpu.set_gpr(0, KCODE as u32);
        assert_eq!(m.exec(|a| a.mov(fs, ax)), Ok(Flow::Next), "readable code is fine for a data register");
        // The accessed bit is set in the descriptor.
        assert_eq!(m.gdt_entry(3) >> 40 & 1, 0);
        m.cpu.set_gpr(0, UDATA as u32);
        assert_eq!(m.exec(|a| a.mov(gs, ax)), Ok(Flow::Next));
        assert_eq!(m.gdt_entry(4) >> 40 & 1, 1);
        assert_eq!(m.cpu.segment(Seg::Gs).selector, UDATA);
        // CPL 3 cannot load DPL 0 data; RPL 3 cannot either, at CPL 0.
        m.cpu.set_gpr(0, (KDATA | 3) as u32);
        assert_eq!(m.exec(|a| a.mov(ds, ax)), gp(KDATA as u32));
        user(&mut m);
        m.cpu.set_gpr(0, KDATA as u32);
        assert_eq!(m.exec(|a| a.mov(ds, ax)), gp(KDATA as u32));
        m.cpu.set_gpr(0, CONFORMING as u32);
        assert_eq!(m.exec(|a| a.mov(ds, ax)), Ok(Flow::Next), "conforming code skips the privilege check");
    }

    #[test]
    fn stack_segment_loads() {
        let mut m = machine();
        m.cpu.set_gpr(0, 0);
        assert_eq!(m.exec(|a| a.mov(ss, ax)), gp(0), "SS cannot be null");
        m.cpu.set_gpr(0, (KDATA | 3) as u32);
        assert_eq!(m.exec(|a| a.mov(ss, ax)), gp(KDATA as u32), "RPL must be CPL");
        m.cpu.set_gpr(0, UDATA as u32);
        assert_eq!(m.exec(|a| a.mov(ss, ax)), gp(UDATA as u32), "DPL must be CPL");
        m.cpu.set_gpr(0, KCODE as u32);
        assert_eq!(m.exec(|a| a.mov(ss, ax)), gp(KCODE as u32), "code is not a writable data segment");
        m.cpu.set_gpr(0, ABSENT as u32);
        assert_eq!(m.exec(|a| a.mov(ss, ax)), fault(Vector::SS, ABSENT as u32), "not present: #SS, not #NP");
        m.cpu.set_gpr(0, KDATA as u32);
        assert_eq!(m.exec(|a| a.mov(ss, ax)), Ok(Flow::StackShadow), "mov ss inhibits interrupts for one instruction");
    }

    #[test]
    fn pop_sreg_and_far_pointer_loads() {
        let mut m = machine();
        m.push(UDATA as u32);
        assert_eq!(m.exec(|a| a.pop(ds)), Ok(Flow::Next));
        assert_eq!((m.cpu.segment(Seg::Ds).selector, m.cpu.gpr(4)), (UDATA, STACK));
        m.push(ABSENT as u32);
        assert_eq!(m.exec(|a| a.pop(es)), fault(Vector::NP, ABSENT as u32));
        assert_eq!(m.cpu.gpr(4), STACK - 4, "a faulting pop leaves ESP alone");
        // les ebx, [0x700]: offset dword, then selector.
        m.mem.write_u32(0x700, 0xCAFE_F00D);
        m.mem.write_u16(0x704, KDATA);
        assert_eq!(m.exec(|a| a.les(ebx, ptr(0x700))), Ok(Flow::Next));
        assert_eq!((m.cpu.gpr(3), m.cpu.segment(Seg::Es).selector), (0xCAFE_F00D, KDATA));
        m.mem.write_u16(0x704, KCODE);
        m.cpu.set_gpr(4, 0x1234);
        assert_eq!(m.exec(|a| a.lss(esp, ptr(0x700))), gp(KCODE as u32));
        assert_eq!(m.cpu.gpr(4), 0x1234, "the offset register changes only after the segment loaded");
        // mov r32, sreg zero-extends; mov m16, sreg stores a word.
        m.cpu.set_gpr(0, 0xFFFF_FFFF);
        assert_eq!(m.exec(|a| a.mov(eax, es)), Ok(Flow::Next));
        assert_eq!(m.cpu.gpr(0), KDATA as u32);
        m.mem.write_u32(0x710, 0xFFFF_FFFF);
        assert_eq!(m.exec(|a| a.mov(word_ptr(0x710), es)), Ok(Flow::Next));
        assert_eq!(m.mem.read_u32(0x710), 0xFFFF_0000 | KDATA as u32);
    }
}
