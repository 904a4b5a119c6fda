//! String instructions the translator leaves to the monitor: those with 16-bit
//! addressing (SI/DI/CX), which 64-bit mode cannot encode, and those that touch device
//! memory (through [`DataAccess`](super::DataAccess)).

use bt86_translator::{Seg, flags};
use iced_x86::{Instruction, Mnemonic, OpKind};

use super::{DataAccess, Flow, set_flag};
use crate::cpu::{Cpu, Exception};

/// True for the string instructions this module executes: movs, stos, lods, cmps, scas
/// (not SSE's `movsd`, and not ins/outs, which are port I/O).
pub(crate) fn is_memory_string(ins: &Instruction) -> bool {
    use Mnemonic as M;
    ins.is_string_instruction() && !matches!(ins.mnemonic(), M::Insb | M::Insw | M::Insd | M::Outsb | M::Outsw | M::Outsd)
}

/// Flags of `a - b` at `size` bytes, as `cmp` sets them.
fn sub_flags(cpu: &mut Cpu, a: u32, b: u32, size: u8) {
    let bits = size as u32 * 8;
    let mask = if bits == 32 { u32::MAX } else { (1 << bits) - 1 };
    let (a, b) = (a & mask, b & mask);
    let r = a.wrapping_sub(b) & mask;
    let sign = 1 << (bits - 1);
    set_flag(cpu, flags::CF, a < b);
    set_flag(cpu, flags::ZF, r == 0);
    set_flag(cpu, flags::SF, r & sign != 0);
    set_flag(cpu, flags::OF, (a ^ b) & (a ^ r) & sign != 0);
    set_flag(cpu, flags::AF, (a ^ b ^ r) & 0x10 != 0);
    set_flag(cpu, flags::PF, (r as u8).count_ones().is_multiple_of(2));
}

pub(crate) fn emulate_string(cpu: &mut Cpu, mem: &mut dyn DataAccess, ins: &Instruction) -> Result<Flow, Exception> {
    use Mnemonic as M;
    let mn = ins.mnemonic();
    let size: u8 = match mn {
        M::Movsb | M::Stosb | M::Lodsb | M::Cmpsb | M::Scasb => 1,
        M::Movsw | M::Stosw | M::Lodsw | M::Cmpsw | M::Scasw => 2,
        _ => 4,
    };
    let addr16 = (0..ins.op_count()).any(|i| matches!(ins.op_kind(i), OpKind::MemorySegSI | OpKind::MemoryESDI));
    let mask = if addr16 { 0xFFFF } else { u32::MAX };
    let src_seg = Seg::from_iced(ins.memory_segment()).unwrap_or(Seg::Ds);
    let rep = ins.has_rep_prefix() || ins.has_repne_prefix();
    let compares = matches!(mn, M::Cmpsb | M::Cmpsw | M::Cmpsd | M::Scasb | M::Scasw | M::Scasd);
    let step = if cpu.eflags() & flags::DF != 0 { (size as u32).wrapping_neg() } else { size as u32 };
    let bump = |cpu: &mut Cpu, r: usize| {
        let v = cpu.gpr(r);
        cpu.set_gpr(r, (v & !mask) | (v.wrapping_add(step) & mask));
    };
    let uses_src = matches!(mn, M::Movsb | M::Movsw | M::Movsd | M::Lodsb | M::Lodsw | M::Lodsd | M::Cmpsb | M::Cmpsw | M::Cmpsd);
    let uses_dst = !matches!(mn, M::Lodsb | M::Lodsw | M::Lodsd);
    loop {
        if rep && cpu.gpr(1) & mask == 0 {
            break;
        }
        let src = cpu.linear(src_seg, cpu.gpr(6) & mask);
        let dst = cpu.linear(Seg::Es, cpu.gpr(7) & mask);
        let acc_mask = if size == 4 { u32::MAX } else { (1u32 << (size * 8)) - 1 };
        match mn {
            M::Movsb | M::Movsw | M::Movsd => {
                let v = mem.load(src, size)?;
                mem.store(dst, size, v)?;
            }
            M::Stosb | M::Stosw | M::Stosd => mem.store(dst, size, cpu.gpr(0) & acc_mask)?,
            M::Lodsb | M::Lodsw | M::Lodsd => {
                let v = mem.load(src, size)?;
                cpu.set_gpr(0, (cpu.gpr(0) & !acc_mask) | v);
            }
            M::Cmpsb | M::Cmpsw | M::Cmpsd => {
                let a = mem.load(src, size)?;
                let b = mem.load(dst, size)?;
                sub_flags(cpu, a, b, size);
            }
            _ => {
                let b = mem.load(dst, size)?;
                sub_flags(cpu, cpu.gpr(0), b, size);
            }
        }
        if uses_src {
            bump(cpu, 6);
        }
        if uses_dst {
            bump(cpu, 7);
        }
        if !rep {
            break;
        }
        let c = cpu.gpr(1);
        cpu.set_gpr(1, (c & !mask) | (c.wrapping_sub(1) & mask));
        if compares {
            let zf = cpu.eflags() & flags::ZF != 0;
            if (ins.has_repe_prefix() && !zf) || (ins.has_repne_prefix() && zf) {
                break;
            }
        }
    }
    Ok(Flow::Next)
}

#[cfg(test)]
mod tests {
    //! The string instructions with 16- and 32-bit addressing against the SDM (Vol. 2,
    //! MOVS/CMPS/SCAS/LODS and REP): 16-bit addressing uses SI/DI/CX and leaves the upper
    //! halves alone; REPE/REPNE stop on ZF after the count.
    use super::super::testing::*;

    #[test]
    fn a16_movsb_wraps_si_and_keeps_the_upper_half() {
        let mut m = Machine::new();
        m.mem.ram[0xFFFF] = 0x11;
        m.mem.ram[0x0000] = 0x22;
        m.cpu.set_gpr(6, 0x1234_FFFF);
        m.cpu.set_gpr(7, 0x5678_0100);
        m.cpu.set_gpr(1, 0xABCD_0002);
        assert_eq!(m.exec_bytes(&[0x67, 0xF3, 0xA4]), Ok(Flow::Next)); // a16 rep movsb
        assert_eq!(&m.mem.ram[0x100..0x102], &[0x11, 0x22]);
        assert_eq!((m.cpu.gpr(6), m.cpu.gpr(7), m.cpu.gpr(1)), (0x1234_0001, 0x5678_0102, 0xABCD_0000));
    }

    #[test]
    fn cmpsb_sets_the_flags_of_a_subtraction() {
        let mut m = Machine::new();
        m.mem.ram[0x100] = 0x01;
        m.mem.ram[0x200] = 0x02;
        m.cpu.set_gpr(6, 0x100);
        m.cpu.set_gpr(7, 0x200);
        assert_eq!(m.exec_bytes(&[0xA6]), Ok(Flow::Next)); // cmpsb: [esi] - [edi] = 01H - 02H = FFH
        assert_eq!(m.flags() & (SF | ZF | AF | PF | CF | OF), SF | AF | PF | CF);
        assert_eq!((m.cpu.gpr(6), m.cpu.gpr(7)), (0x101, 0x201));
    }

    #[test]
    fn repe_and_repne_stop_on_zf() {
        let mut m = Machine::new();
        m.mem.ram[0x100..0x104].copy_from_slice(b"abcd");
        m.mem.ram[0x200..0x204].copy_from_slice(b"abXd");
        m.cpu.set_gpr(6, 0x100);
        m.cpu.set_gpr(7, 0x200);
        m.cpu.set_gpr(1, 4);
        assert_eq!(m.exec_bytes(&[0xF3, 0xA6]), Ok(Flow::Next)); // repe cmpsb
        assert_eq!((m.cpu.gpr(1), m.cpu.gpr(6), m.flags() & ZF), (1, 0x103, 0), "stopped after the third byte");
        // repne scasb finds AL = 'd'.
        m.cpu.set_gpr(0, b'd' as u32);
        m.cpu.set_gpr(7, 0x100);
        m.cpu.set_gpr(1, 10);
        assert_eq!(m.exec_bytes(&[0xF2, 0xAE]), Ok(Flow::Next));
        assert_eq!((m.cpu.gpr(1), m.cpu.gpr(7), m.flags() & ZF), (6, 0x104, ZF));
    }

    #[test]
    fn df_makes_the_index_registers_go_down() {
        let mut m = Machine::new();
        m.mem.write_u32(0x300, 0xCAFE_BABE);
        m.cpu.set_gpr(6, 0x300);
        m.set_flags(DF);
        assert_eq!(m.exec_bytes(&[0xAD]), Ok(Flow::Next)); // lodsd
        assert_eq!((m.cpu.gpr(0), m.cpu.gpr(6)), (0xCAFE_BABE, 0x2FC));
        m.cpu.set_gpr(7, 0x400);
        m.cpu.set_gpr(0, 0x0000_BEEF);
        assert_eq!(m.exec_bytes(&[0x66, 0xAB]), Ok(Flow::Next)); // stosw
        assert_eq!((m.mem.read_u32(0x400) & 0xFFFF, m.cpu.gpr(7)), (0xBEEF, 0x3FE));
    }
}
