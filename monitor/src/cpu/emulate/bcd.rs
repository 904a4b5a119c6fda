//! The BCD adjustments (`daa`, `das`, `aaa`, `aas`, `aam`, `aad`) and `bound`, which
//! 64-bit mode no longer has. Flags the SDM leaves undefined are computed as this
//! project's host CPUs compute them, measured exhaustively over all inputs (AX, CF, AF):
//! DAA/DAS clear OF; AAA/AAS take SF/ZF/PF from the final AL and clear OF; AAM clears
//! CF/AF/OF; AAD sets CF/AF/OF as the 8-bit addition it performs. The differential fuzzer
//! checks these against the host on every run.

use bt86_translator::flags;
use iced_x86::{Instruction, Mnemonic};

use super::operands::{memory_linear, read_reg};
use super::{Env, Flow, set_flag};
use crate::cpu::{Cpu, Exception, Vector};

fn szp(cpu: &mut Cpu, v: u8) {
    set_flag(cpu, flags::SF, v & 0x80 != 0);
    set_flag(cpu, flags::ZF, v == 0);
    set_flag(cpu, flags::PF, v.count_ones().is_multiple_of(2));
}

pub(super) fn emulate_bcd(cpu: &mut Cpu, ins: &Instruction) -> Result<Flow, Exception> {
    let fl = cpu.eflags();
    let cf = fl & flags::CF != 0;
    let af = fl & flags::AF != 0;
    let eax = cpu.gpr(0);
    let mut al = eax as u8;
    let mut ah = (eax >> 8) as u8;
    use Mnemonic as M;
    match ins.mnemonic() {
        M::Daa | M::Das => {
            let old_al = al;
            let mut new_cf = false;
            let mut new_af = false;
            let add = ins.mnemonic() == M::Daa;
            if al & 0xF > 9 || af {
                al = if add { al.wrapping_add(6) } else { al.wrapping_sub(6) };
                new_cf = cf || if add { old_al > 0xF9 } else { old_al < 6 };
                new_af = true;
            }
            if old_al > 0x99 || cf {
                al = if add { al.wrapping_add(0x60) } else { al.wrapping_sub(0x60) };
                new_cf = true;
            }
            set_flag(cpu, flags::CF, new_cf);
            set_flag(cpu, flags::AF, new_af);
            set_flag(cpu, flags::OF, false);
            szp(cpu, al);
        }
        M::Aaa | M::Aas => {
            let add = ins.mnemonic() == M::Aaa;
            let adjust = al & 0xF > 9 || af;
            if adjust {
                if add {
                    let ax = ((ah as u16) << 8 | al as u16).wrapping_add(0x106);
                    al = ax as u8;
                    ah = (ax >> 8) as u8;
                } else {
                    let ax = ((ah as u16) << 8 | al as u16).wrapping_sub(6);
                    al = ax as u8;
                    ah = ((ax >> 8) as u8).wrapping_sub(1);
                }
            }
            al &= 0xF;
            set_flag(cpu, flags::CF, adjust);
            set_flag(cpu, flags::AF, adjust);
            set_flag(cpu, flags::OF, false);
            szp(cpu, al);
        }
        M::Aam => {
            let base = ins.immediate8();
            if base == 0 {
                return Err(Exception::plain(Vector::DE));
            }
            ah = al / base;
            al %= base;
            set_flag(cpu, flags::CF, false);
            set_flag(cpu, flags::AF, false);
            set_flag(cpu, flags::OF, false);
            szp(cpu, al);
        }
        M::Aad => {
            // The flags are those of the 8-bit addition AL + AH * imm8 (as measured on
            // the host CPU; the SDM leaves CF, AF and OF undefined).
            let base = ins.immediate8();
            let addend = ah.wrapping_mul(base);
            let (sum, carry) = al.overflowing_add(addend);
            set_flag(cpu, flags::CF, carry);
            set_flag(cpu, flags::AF, (al ^ addend ^ sum) & 0x10 != 0);
            set_flag(cpu, flags::OF, !(al ^ addend) & (al ^ sum) & 0x80 != 0);
            al = sum;
            ah = 0;
            szp(cpu, al);
        }
        _ => unreachable!(),
    }
    cpu.set_gpr(0, (eax & 0xFFFF_0000) | (ah as u32) << 8 | al as u32);
    Ok(Flow::Next)
}

pub(super) fn emulate_bound(cpu: &mut Cpu, env: &mut Env<'_>, ins: &Instruction) -> Result<Flow, Exception> {
    let r = ins.op0_register();
    let size = r.size() as u8;
    let addr = memory_linear(cpu, ins, 0);
    let lower = env.mem.read_uint(addr, size)?;
    let upper = env.mem.read_uint(addr.wrapping_add(size as u32), size)?;
    let idx = read_reg(cpu, r);
    let (i, lo, hi) =
        if size == 4 { (idx as i32, lower as i32, upper as i32) } else { (idx as i16 as i32, lower as i16 as i32, upper as i16 as i32) };
    if i < lo || i > hi {
        return Err(Exception::plain(Vector::BR));
    }
    Ok(Flow::Next)
}
