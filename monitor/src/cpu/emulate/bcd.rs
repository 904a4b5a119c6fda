//! The BCD adjustments (`daa`, `das`, `aaa`, `aas`, `aam`, `aad`) and `bound`, which
//! 64-bit mode no longer has, so the monitor computes them.
//!
//! Guest user code that runs directly gets the host CPU's answers, including for the
//! flags the SDM leaves undefined, and those differ between vendors. So that one guest
//! sees one CPU, the emulation follows the model the host was probed to have at start-up
//! ([`crate::cpu::host_model`]), never a fixed vendor:
//!
//! - Intel: DAA/DAS clear OF; AAA/AAS take SF/ZF/PF from the final AL and clear OF.
//! - AMD: DAA/DAS set OF to the signed overflow of AL ± the correction (0x06, 0x60 or
//!   0x66); AAA/AAS set SF/ZF/PF/OF as a 16-bit `add`/`sub ax, 0x106` when they adjust,
//!   and otherwise from the unchanged AX (SF = bit 15, ZF = AX == 0, PF from AL, OF 0).
//! - Both (measured over every input): AAM clears CF/AF/OF; AAD sets CF/AF/OF as the
//!   8-bit addition AL + AH * imm8 it performs. These need no model.
//!
//! [`adjust`] is the pure arithmetic (tested with both vendors' answers); the
//! differential fuzzer checks the probed model against the host on every run.

use bt86_translator::flags;
use iced_x86::{Instruction, Mnemonic};

use super::operands::{memory_linear, read_reg};
use super::{Env, Flow, set_flag};
use crate::cpu::host_model::BcdModel;
use crate::cpu::{Cpu, Exception, Vector};

/// One BCD adjustment, with its immediate base for AAM/AAD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BcdOp {
    /// `daa`.
    Daa,
    /// `das`.
    Das,
    /// `aaa`.
    Aaa,
    /// `aas`.
    Aas,
    /// `aam imm8`.
    Aam(u8),
    /// `aad imm8`.
    Aad(u8),
}

impl BcdOp {
    /// The operation of a decoded instruction (None if it is not a BCD adjustment).
    pub fn of(ins: &Instruction) -> Option<BcdOp> {
        Some(match ins.mnemonic() {
            Mnemonic::Daa => BcdOp::Daa,
            Mnemonic::Das => BcdOp::Das,
            Mnemonic::Aaa => BcdOp::Aaa,
            Mnemonic::Aas => BcdOp::Aas,
            Mnemonic::Aam => BcdOp::Aam(ins.immediate8()),
            Mnemonic::Aad => BcdOp::Aad(ins.immediate8()),
            _ => return None,
        })
    }
}

/// AX and the six arithmetic flags after an adjustment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BcdResult {
    /// The new AX.
    pub ax: u16,
    /// CF, PF, AF, ZF, SF and OF (the other bits are 0).
    pub flags: u32,
}

/// The flag bits `on` says, for `bits`.
fn bit(on: bool, bits: u32) -> u32 {
    if on { bits } else { 0 }
}

/// SF, ZF and PF of an 8-bit result.
fn szp8(v: u8) -> u32 {
    bit(v & 0x80 != 0, flags::SF) | bit(v == 0, flags::ZF) | bit(v.count_ones().is_multiple_of(2), flags::PF)
}

/// SF, ZF and PF of a 16-bit result (PF, as always, from the low byte).
fn szp16(v: u16) -> u32 {
    bit(v & 0x8000 != 0, flags::SF) | bit(v == 0, flags::ZF) | bit((v as u8).count_ones().is_multiple_of(2), flags::PF)
}

/// Computes `op` on `ax` with input flags `eflags` (CF and AF are read) under `model`.
/// None: the instruction raises #DE (`aam 0`).
pub fn adjust(model: BcdModel, op: BcdOp, ax: u16, eflags: u32) -> Option<BcdResult> {
    let cf = eflags & flags::CF != 0;
    let af = eflags & flags::AF != 0;
    Some(match op {
        BcdOp::Daa => decimal(model, true, ax, cf, af),
        BcdOp::Das => decimal(model, false, ax, cf, af),
        BcdOp::Aaa => ascii(model, true, ax, af),
        BcdOp::Aas => ascii(model, false, ax, af),
        BcdOp::Aam(base) => {
            let al = ax as u8;
            let (q, r) = (al.checked_div(base)?, al % base);
            // CF, AF and OF are cleared on both vendors.
            BcdResult { ax: (q as u16) << 8 | r as u16, flags: szp8(r) }
        }
        BcdOp::Aad(base) => {
            // The flags are those of the 8-bit addition AL + AH * imm8, on both vendors.
            let (al, ah) = (ax as u8, (ax >> 8) as u8);
            let addend = ah.wrapping_mul(base);
            let (sum, carry) = al.overflowing_add(addend);
            let f = bit(carry, flags::CF)
                | bit((al ^ addend ^ sum) & 0x10 != 0, flags::AF)
                | bit(!(al ^ addend) & (al ^ sum) & 0x80 != 0, flags::OF);
            BcdResult { ax: sum as u16, flags: f | szp8(sum) }
        }
    })
}

/// DAA (`add`) or DAS: AL ± a correction of 0x06, 0x60 or 0x66.
fn decimal(model: BcdModel, add: bool, ax: u16, cf: bool, af: bool) -> BcdResult {
    let al = ax as u8;
    let (mut correction, mut new_cf, mut new_af) = (0u8, false, false);
    if al & 0xF > 9 || af {
        correction = 6;
        new_cf = cf || if add { al > 0xF9 } else { al < 6 };
        new_af = true;
    }
    if al > 0x99 || cf {
        correction += 0x60;
        new_cf = true;
    }
    let res = if add { al.wrapping_add(correction) } else { al.wrapping_sub(correction) };
    let of = match model {
        BcdModel::Intel => false,
        // The signed overflow of the one addition/subtraction of the whole correction.
        BcdModel::Amd if add => !(al ^ correction) & (al ^ res) & 0x80 != 0,
        BcdModel::Amd => (al ^ correction) & (al ^ res) & 0x80 != 0,
    };
    let f = bit(new_cf, flags::CF) | bit(new_af, flags::AF) | bit(of, flags::OF) | szp8(res);
    BcdResult { ax: (ax & 0xFF00) | res as u16, flags: f }
}

/// AAA (`add`) or AAS: AX ± 0x106 if AL's low digit is over 9 or AF, then AL &= 0x0F.
fn ascii(model: BcdModel, add: bool, ax: u16, af: bool) -> BcdResult {
    let adjust = ax & 0xF > 9 || af;
    let sum = match (adjust, add) {
        (false, _) => ax,
        (true, true) => ax.wrapping_add(0x106),
        (true, false) => ax.wrapping_sub(0x106),
    };
    let out = sum & 0xFF0F;
    let szpo = match model {
        BcdModel::Intel => szp8(out as u8),
        // The flags of the 16-bit `add/sub ax, 0x106` (of nothing: AX unchanged).
        BcdModel::Amd => {
            let of = match (adjust, add) {
                (false, _) => false,
                (true, true) => !ax & sum & 0x8000 != 0,
                (true, false) => ax & !sum & 0x8000 != 0,
            };
            szp16(sum) | bit(of, flags::OF)
        }
    };
    BcdResult { ax: out, flags: bit(adjust, flags::CF | flags::AF) | szpo }
}

pub(super) fn emulate_bcd(cpu: &mut Cpu, model: BcdModel, ins: &Instruction) -> Result<Flow, Exception> {
    let op = BcdOp::of(ins).expect("emulate_bcd called for a BCD instruction");
    let eax = cpu.gpr(0);
    let r = adjust(model, op, eax as u16, cpu.eflags()).ok_or(Exception::plain(Vector::DE))?;
    for f in [flags::CF, flags::PF, flags::AF, flags::ZF, flags::SF, flags::OF] {
        set_flag(cpu, f, r.flags & f != 0);
    }
    cpu.set_gpr(0, (eax & 0xFFFF_0000) | r.ax as u32);
    Ok(Flow::Next)
}

pub(super) fn emulate_bound(cpu: &mut Cpu, env: &mut Env<'_>, ins: &Instruction) -> Result<Flow, Exception> {
    let r = ins.op0_register();
    let size = r.size() as u8;
    let addr = memory_linear(cpu, ins, 0);
    let lower = env.mem.load(addr, size)?;
    let upper = env.mem.load(addr.wrapping_add(size as u32), size)?;
    let idx = read_reg(cpu, r);
    let (i, lo, hi) =
        if size == 4 { (idx as i32, lower as i32, upper as i32) } else { (idx as i16 as i32, lower as i16 as i32, upper as i16 as i32) };
    if i < lo || i > hi {
        return Err(Exception::plain(Vector::BR));
    }
    Ok(Flow::Next)
}

#[cfg(test)]
mod tests {
    //! Both vendors' answers, as measured on an Intel and an AMD host, fixed per model.
    use super::*;

    const CF: u32 = flags::CF;
    const AF: u32 = flags::AF;
    const OF: u32 = flags::OF;
    const SF: u32 = flags::SF;
    const ZF: u32 = flags::ZF;
    const PF: u32 = flags::PF;

    fn run(model: BcdModel, op: BcdOp, ax: u16, fl: u32) -> (u16, u32) {
        let r = adjust(model, op, ax, fl).unwrap();
        (r.ax, r.flags)
    }

    #[test]
    fn daa_overflow_differs() {
        // 0x7A + 6 = 0x80: a signed overflow AMD reports and Intel does not.
        assert_eq!(run(BcdModel::Intel, BcdOp::Daa, 0x7A, 0), (0x80, AF | SF));
        assert_eq!(run(BcdModel::Amd, BcdOp::Daa, 0x7A, 0), (0x80, AF | SF | OF));
        // The whole correction 0x66 at once: 0x1A + 0x66 = 0x80 overflows.
        assert_eq!(run(BcdModel::Amd, BcdOp::Daa, 0x1A, CF), (0x80, CF | AF | SF | OF));
        // No correction: no overflow on either.
        assert_eq!(run(BcdModel::Amd, BcdOp::Daa, 0x12, 0), (0x12, PF));
        assert_eq!(run(BcdModel::Intel, BcdOp::Daa, 0x12, 0), (0x12, PF));
    }

    #[test]
    fn das_overflow_differs() {
        // 0x80 - 6 = 0x7A: overflow on AMD only.
        assert_eq!(run(BcdModel::Intel, BcdOp::Das, 0x80, AF), (0x7A, AF));
        assert_eq!(run(BcdModel::Amd, BcdOp::Das, 0x80, AF), (0x7A, AF | OF));
        // 0x10 - 0x60 = 0xB0: positive minus positive, no overflow.
        assert_eq!(run(BcdModel::Amd, BcdOp::Das, 0x10, CF), (0xB0, CF | SF));
    }

    #[test]
    fn aaa_flags_differ() {
        // Adjusting: AX 0x7FFA + 0x106 = 0x8100, AL masked to 0.
        assert_eq!(run(BcdModel::Intel, BcdOp::Aaa, 0x7FFA, 0), (0x8100, CF | AF | ZF | PF));
        assert_eq!(run(BcdModel::Amd, BcdOp::Aaa, 0x7FFA, 0), (0x8100, CF | AF | SF | OF | PF));
        // Not adjusting: AMD's SF/ZF come from the unchanged AX.
        assert_eq!(run(BcdModel::Intel, BcdOp::Aaa, 0x8003, 0), (0x8003, PF));
        assert_eq!(run(BcdModel::Amd, BcdOp::Aaa, 0x8003, 0), (0x8003, SF | PF));
        assert_eq!(run(BcdModel::Intel, BcdOp::Aaa, 0x0100, 0), (0x0100, ZF | PF));
        assert_eq!(run(BcdModel::Amd, BcdOp::Aaa, 0x0100, 0), (0x0100, PF));
    }

    #[test]
    fn aas_flags_differ() {
        // AX 0x8005 - 0x106 = 0x7EFF: AL masked to 0x0F.
        assert_eq!(run(BcdModel::Intel, BcdOp::Aas, 0x8005, AF), (0x7E0F, CF | AF | PF));
        assert_eq!(run(BcdModel::Amd, BcdOp::Aas, 0x8005, AF), (0x7E0F, CF | AF | OF | PF));
        assert_eq!(run(BcdModel::Amd, BcdOp::Aas, 0x0000, 0), (0x0000, ZF | PF));
    }

    #[test]
    fn aam_aad_agree() {
        for model in [BcdModel::Intel, BcdModel::Amd] {
            assert_eq!(run(model, BcdOp::Aam(10), 0x0063, CF | AF | OF), (0x0909, PF));
            assert_eq!(adjust(model, BcdOp::Aam(0), 0x63, 0), None);
            // 0x70 + 0x09 * 0x10 = 0x100: carry, and AL 0.
            assert_eq!(run(model, BcdOp::Aad(0x10), 0x0970, 0), (0x0000, CF | ZF | PF));
            assert_eq!(run(model, BcdOp::Aad(10), 0x0909, 0), (0x0063, AF | PF));
        }
    }
}

#[cfg(test)]
mod emulation_tests {
    //! The BCD instructions and `bound` as the emulator runs them: the SDM's own examples
    //! (Vol. 2, DAA and DAS) and its faults (AAM with 0: #DE; BOUND: #BR).
    use super::super::testing::*;
    use crate::cpu::Vector;
    use iced_x86::code_asm::*;

    const SZAPC: u32 = SF | ZF | AF | PF | CF;

    #[test]
    fn daa_and_das_follow_the_sdm_examples() {
        let mut m = Machine::new();
        // add al, bl with AL = 79H, BL = 35H left AL = AEH, OSZAPC = 110000.
        m.cpu.set_gpr(0, 0xAE);
        m.set_flags(OF | SF);
        assert_eq!(m.exec(|a| a.daa()), Ok(Flow::Next));
        assert_eq!((m.cpu.gpr(0), m.flags() & SZAPC), (0x14, AF | PF | CF), "DAA: AL = 14H, SZAPC = 00111");
        // sub al, bl with AL = 35H, BL = 47H left AL = EEH, OSZAPC = 010111.
        m.cpu.set_gpr(0, 0xEE);
        m.set_flags(SF | AF | PF | CF);
        assert_eq!(m.exec(|a| a.das()), Ok(Flow::Next));
        assert_eq!((m.cpu.gpr(0), m.flags() & SZAPC), (0x88, SF | AF | PF | CF), "DAS: AL = 88H, SZAPC = 10111");
    }

    #[test]
    fn aam_by_zero_is_a_divide_error() {
        let mut m = Machine::new();
        m.cpu.set_gpr(0, 0xDEAD_0063);
        assert_eq!(m.exec_bytes(&[0xD4, 0x00]), Err(crate::cpu::Exception::plain(Vector::DE)));
        assert_eq!(m.cpu.gpr(0), 0xDEAD_0063, "AX unchanged");
        // aam (base 10): AH = AL / 10, AL = AL % 10; the upper half of EAX is kept.
        assert_eq!(m.exec(|a| a.aam(10)), Ok(Flow::Next));
        assert_eq!(m.cpu.gpr(0), 0xDEAD_0909);
        // aad (base 10): AL = AH * 10 + AL, AH = 0.
        assert_eq!(m.exec(|a| a.aad(10)), Ok(Flow::Next));
        assert_eq!(m.cpu.gpr(0), 0xDEAD_0063);
    }

    #[test]
    fn bound_faults_outside_signed_inclusive_bounds() {
        let mut m = Machine::new();
        m.mem.write_u32(0x800, -5i32 as u32);
        m.mem.write_u32(0x804, 20);
        for (index, inside) in [(-5i32, true), (20, true), (-2, true), (21, false), (-6, false), (i32::MIN, false)] {
            m.cpu.set_gpr(0, index as u32);
            let want = if inside { Ok(Flow::Next) } else { Err(crate::cpu::Exception::plain(Vector::BR)) };
            assert_eq!(m.exec(|a| a.bound(eax, ptr(0x800))), want, "index {index}");
        }
        // 16-bit: bounds are words, compared signed.
        m.mem.write_u32(0x810, 0x7FFF_8000); // lower -32768, upper 32767
        m.cpu.set_gpr(0, 0x1234_8000);
        assert_eq!(m.exec_bytes(&[0x66, 0x62, 0x05, 0x10, 0x08, 0x00, 0x00]), Ok(Flow::Next)); // bound ax, [0x810]
    }
}
