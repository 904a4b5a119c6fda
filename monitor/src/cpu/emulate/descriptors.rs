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
