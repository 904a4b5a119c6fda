//! `in`, `out`, `ins`, `outs` (with `rep`).

use bt86_translator::{Seg, flags};
use iced_x86::{Instruction, Mnemonic, OpKind, Register};

use super::operands::{read_reg, write_reg};
use super::{Env, Flow, IoEffect};
use crate::cpu::{Cpu, Exception};

/// I/O is allowed at CPL <= IOPL (there is no TSS I/O permission bitmap).
fn check_io(cpu: &Cpu) -> Result<(), Exception> {
    if cpu.protected() && cpu.cpl > cpu.iopl() { Err(Exception::gp(0)) } else { Ok(()) }
}

fn effect_flow(e: IoEffect) -> Option<Flow> {
    match e {
        IoEffect::None => None,
        IoEffect::Exit(s) => Some(Flow::Exit(s)),
        IoEffect::Reset => Some(Flow::Reset),
    }
}

pub(super) fn emulate_io(cpu: &mut Cpu, env: &mut Env<'_>, ins: &Instruction) -> Result<Flow, Exception> {
    check_io(cpu)?;
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
            env.mem.write_uint(addr, size, v)?;
            cpu.set_gpr(7, (edi & !mask) | (edi.wrapping_add(step) & mask));
        } else {
            let esi = cpu.gpr(6);
            let addr = cpu.linear(src_seg, esi & mask);
            let v = env.mem.read_uint(addr, size)?;
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
