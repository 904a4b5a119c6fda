//! `in`, `out`, `ins`, `outs` (with `rep`).

use bt86_translator::{Seg, flags};
use iced_x86::{Instruction, Mnemonic, OpKind, Register};

use super::operands::{read_reg, write_reg};
use super::{Env, Flow, IoEffect};
use crate::cpu::{Cpu, Exception};

/// I/O is allowed at CPL <= IOPL; above it, only to ports whose bits in the TSS's I/O
/// permission bitmap are all clear (a bitmap beyond the TSS limit denies everything).
fn check_io(cpu: &Cpu, mem: &mut dyn super::CpuMemory, port: u16, size: u8) -> Result<(), Exception> {
    if !cpu.protected() || cpu.cpl <= cpu.iopl() {
        return Ok(());
    }
    let tr = cpu.tr;
    // Only a 32-bit TSS (type 9/11) has a bitmap, at the offset stored at 0x66.
    if tr.is_code_or_data() || tr.system_type() & 0x8 == 0 || tr.limit < 0x67 {
        return Err(Exception::gp(0));
    }
    // The TSS is read with supervisor rights whatever the CPL (an implicit access).
    let base = mem.read_sys_u16(tr.base.wrapping_add(0x66))? as u32;
    let byte = base + port as u32 / 8;
    if byte + 1 > tr.limit {
        return Err(Exception::gp(0));
    }
    let bits = mem.read_sys_u16(tr.base.wrapping_add(byte))? as u32;
    let mask = ((1u32 << size) - 1) << (port % 8);
    if bits & mask != 0 { Err(Exception::gp(0)) } else { Ok(()) }
}

/// The port of an `in`/`out`/`ins`/`outs` and its size.
fn port_and_size(cpu: &Cpu, ins: &Instruction) -> (u16, u8) {
    use Mnemonic as M;
    let size = match ins.mnemonic() {
        M::In => ins.op0_register().size() as u8,
        M::Out => ins.op1_register().size() as u8,
        M::Insb | M::Outsb => 1,
        M::Insw | M::Outsw => 2,
        _ => 4,
    };
    let port = match ins.mnemonic() {
        M::In if ins.op1_kind() != OpKind::Register => ins.immediate8() as u16,
        M::Out if ins.op0_kind() != OpKind::Register => ins.immediate8() as u16,
        _ => read_reg(cpu, Register::DX) as u16,
    };
    (port, size)
}

fn effect_flow(e: IoEffect) -> Option<Flow> {
    match e {
        IoEffect::None => None,
        IoEffect::Exit(s) => Some(Flow::Exit(s)),
        IoEffect::Reset => Some(Flow::Reset),
        IoEffect::PowerOff => Some(Flow::PowerOff),
    }
}

pub(super) fn emulate_io(cpu: &mut Cpu, env: &mut Env<'_>, ins: &Instruction) -> Result<Flow, Exception> {
    let (port, size) = port_and_size(cpu, ins);
    check_io(cpu, env.mem, port, size)?;
    use Mnemonic as M;
    match ins.mnemonic() {
        M::In => {
            let dst = ins.op0_register();
            let size = dst.size() as u8;
            let port = if ins.op1_kind() == OpKind::Register { read_reg(cpu, Register::DX) as u16 } else { ins.immediate8() as u16 };
            let v = env.io.io_in(port, size);
            write_reg(cpu, dst, v);
            Ok(Flow::Next)
        }
        M::Out => {
            let src = ins.op1_register();
            let size = src.size() as u8;
            let port = if ins.op0_kind() == OpKind::Register { read_reg(cpu, Register::DX) as u16 } else { ins.immediate8() as u16 };
            let v = read_reg(cpu, src);
            Ok(effect_flow(env.io.io_out(port, size, v)).unwrap_or(Flow::Next))
        }
        M::Insb | M::Insw | M::Insd | M::Outsb | M::Outsw | M::Outsd => string_io(cpu, env, ins),
        _ => unreachable!(),
    }
}

/// `ins`/`outs`, all repetitions at once.
fn string_io(cpu: &mut Cpu, env: &mut Env<'_>, ins: &Instruction) -> Result<Flow, Exception> {
    use Mnemonic as M;
    let size: u8 = match ins.mnemonic() {
        M::Insb | M::Outsb => 1,
        M::Insw | M::Outsw => 2,
        _ => 4,
    };
    let is_in = matches!(ins.mnemonic(), M::Insb | M::Insw | M::Insd);
    let addr16 = (0..ins.op_count()).any(|i| matches!(ins.op_kind(i), OpKind::MemoryESDI | OpKind::MemorySegSI));
    let mask = if addr16 { 0xFFFF } else { 0xFFFF_FFFF };
    let rep = ins.has_rep_prefix() || ins.has_repne_prefix();
    let step = if cpu.eflags() & flags::DF != 0 { (size as u32).wrapping_neg() } else { size as u32 };
    let port = read_reg(cpu, Register::DX) as u16;
    let src_seg = Seg::from_iced(ins.memory_segment()).unwrap_or(Seg::Ds);
    let mut count = if rep { cpu.gpr(1) & mask } else { 1 };
    while count > 0 {
        if is_in {
            let edi = cpu.gpr(7);
            let addr = cpu.linear(Seg::Es, edi & mask);
            let v = env.io.io_in(port, size);
            env.mem.store(addr, size, v)?;
            cpu.set_gpr(7, (edi & !mask) | (edi.wrapping_add(step) & mask));
        } else {
            let esi = cpu.gpr(6);
            let addr = cpu.linear(src_seg, esi & mask);
            let v = env.mem.load(addr, size)?;
            cpu.set_gpr(6, (esi & !mask) | (esi.wrapping_add(step) & mask));
            count -= 1;
            if rep {
                let ecx = cpu.gpr(1);
                cpu.set_gpr(1, (ecx & !mask) | (ecx.wrapping_sub(1) & mask));
            }
            if let Some(f) = effect_flow(env.io.io_out(port, size, v)) {
                return Ok(f);
            }
            continue;
        }
        count -= 1;
        if rep {
            let ecx = cpu.gpr(1);
            cpu.set_gpr(1, (ecx & !mask) | (ecx.wrapping_sub(1) & mask));
        }
    }
    Ok(Flow::Next)
}

#[cfg(test)]
mod tests {
    //! Port I/O against the SDM (Vol. 1, 19.5: I/O privilege level and the I/O permission
    //! bitmap): free at CPL <= IOPL, else every bit of the accessed ports must be clear in
    //! the TSS's bitmap, which must lie inside the TSS limit.
    use iced_x86::code_asm::*;

    use super::super::testing::*;

    /// CPL 3 with IOPL 0 and a 32-bit TSS whose I/O bitmap (at offset 0x68) allows ports
    /// 0x3F8-0x3FF and denies the rest of the first 0x800 ports; the TSS limit ends with
    /// the byte after the bitmap's 0x100 bytes.
    fn user_with_bitmap() -> Machine {
        let mut m = Machine::with_gdt(&[seg_desc(TSS, 0x68 + 0x100, 0x8B, 0)]);
        m.enter_user();
        m.cpu.tr = crate::cpu::SegmentCache::from_descriptor(0x28, m.gdt_entry(5));
        m.mem.write_u16(TSS + 0x66, 0x68);
        for i in 0..0x100 {
            m.mem.ram[(TSS + 0x68 + i) as usize] = 0xFF;
        }
        m.mem.ram[(TSS + 0x68 + 0x3F8 / 8) as usize] = 0x00;
        m
    }

    #[test]
    fn in_and_out_at_cpl0() {
        let mut m = Machine::new();
        m.ports.values.insert(0x71, 0x5A);
        assert_eq!(m.exec(|a| a.in_(al, 0x71)), Ok(Flow::Next));
        assert_eq!(m.cpu.gpr(0) & 0xFF, 0x5A);
        m.cpu.set_gpr(2, 0x3F8);
        m.cpu.set_gpr(0, 0x1234_5678);
        assert_eq!(m.exec(|a| a.out(dx, ax)), Ok(Flow::Next));
        assert_eq!(m.ports.writes, [(0x3F8, 2, 0x5678)]);
        assert_eq!(m.exec(|a| a.in_(eax, dx)), Ok(Flow::Next));
        assert_eq!((m.cpu.gpr(0), m.ports.reads.last()), (0xFFFF_FFFF, Some(&(0x3F8, 4))), "nothing there: all ones");
    }

    #[test]
    fn port_effects_become_flows() {
        let mut m = Machine::new();
        m.ports.effect = Some(IoEffect::Exit(3));
        assert_eq!(m.exec(|a| a.out(0xF4, al)), Ok(Flow::Exit(3)));
        m.ports.effect = Some(IoEffect::Reset);
        assert_eq!(m.exec(|a| a.out(0x64, al)), Ok(Flow::Reset));
    }

    #[test]
    fn the_bitmap_decides_above_iopl() {
        let mut m = user_with_bitmap();
        m.cpu.set_gpr(2, 0x3F8);
        assert_eq!(m.exec(|a| a.out(dx, al)), Ok(Flow::Next), "port 0x3F8's bit is clear");
        assert_eq!(m.exec(|a| a.in_(eax, dx)), Ok(Flow::Next), "0x3F8-0x3FB: all clear");
        m.cpu.set_gpr(2, 0x3FE);
        assert_eq!(m.exec(|a| a.in_(eax, dx)), gp(0), "0x3FE-0x401: 0x400's bit is set");
        assert_eq!(m.exec(|a| a.in_(ax, dx)), Ok(Flow::Next), "0x3FE-0x3FF: clear");
        m.cpu.set_gpr(2, 0x3F7);
        assert_eq!(m.exec(|a| a.out(dx, al)), gp(0));
        assert_eq!(m.ports.writes.len(), 1, "a denied access never reaches the port");
        // Beyond the TSS limit: denied, whatever the bits.
        m.cpu.set_gpr(2, 0x800);
        assert_eq!(m.exec(|a| a.in_(al, dx)), gp(0));
        // IOPL 3: no bitmap check at all.
        m.set_flags(IOPL3);
        assert_eq!(m.exec(|a| a.in_(al, dx)), Ok(Flow::Next));
    }

    #[test]
    fn without_a_32_bit_tss_above_iopl_everything_is_denied() {
        let mut m = user_with_bitmap();
        m.cpu.tr.access = 0x83; // a busy 16-bit TSS: no bitmap
        m.cpu.set_gpr(2, 0x3F8);
        assert_eq!(m.exec(|a| a.in_(al, dx)), gp(0));
        let mut m = user_with_bitmap();
        m.cpu.tr.limit = 0x65; // too short to hold the bitmap offset
        assert_eq!(m.exec(|a| a.in_(al, dx)), gp(0));
    }

    #[test]
    fn string_io_repeats_and_moves_the_index_registers() {
        let mut m = Machine::new();
        m.mem.ram[0x900..0x903].copy_from_slice(b"abc");
        m.cpu.set_gpr(6, 0x900);
        m.cpu.set_gpr(1, 3);
        m.cpu.set_gpr(2, 0xE9);
        assert_eq!(m.exec(|a| a.rep().outsb()), Ok(Flow::Next));
        assert_eq!(m.ports.writes, [(0xE9, 1, b'a' as u32), (0xE9, 1, b'b' as u32), (0xE9, 1, b'c' as u32)]);
        assert_eq!((m.cpu.gpr(6), m.cpu.gpr(1)), (0x903, 0));
        // insw with DF = 1: EDI goes down by 2 per word.
        m.ports.values.insert(0x60, 0xBEEF);
        m.set_flags(DF);
        m.cpu.set_gpr(7, 0xA02);
        m.cpu.set_gpr(1, 2);
        m.cpu.set_gpr(2, 0x60);
        assert_eq!(m.exec(|a| a.rep().insw()), Ok(Flow::Next));
        assert_eq!((m.mem.read_u32(0xA00), m.cpu.gpr(7), m.cpu.gpr(1)), (0xBEEF_BEEF, 0x9FE, 0));
        // With a count of 0 nothing happens.
        let before = m.ports.reads.len();
        assert_eq!(m.exec(|a| a.rep().insw()), Ok(Flow::Next));
        assert_eq!(m.ports.reads.len(), before);
    }
}
