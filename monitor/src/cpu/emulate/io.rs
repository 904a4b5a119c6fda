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
