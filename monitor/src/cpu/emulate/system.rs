//! System instructions: `hlt`, the IF instructions above CPL 0, control and debug
//! registers, descriptor-table registers, `cpuid`, MSRs and the cache/TLB instructions.

use bt86_translator::flags;
use iced_x86::{Code, Instruction, Mnemonic, OpKind, Register};

use super::operands::{Stack, memory_linear, read_operand, read_reg, write_operand, write_reg};
use super::{Env, Flow, require_cpl0};
use crate::cpu::segments::SegmentCache;
use crate::cpu::{Cpu, Exception, TableReg, cpuid, cr0, cr4, msr};

pub(super) fn emulate_system(cpu: &mut Cpu, env: &mut Env<'_>, ins: &Instruction) -> Result<Flow, Exception> {
    use Mnemonic as M;
    match ins.mnemonic() {
        M::Hlt => {
            require_cpl0(cpu)?;
            Ok(Flow::Halt)
        }
        M::Cli | M::Sti => {
            if cpu.protected() && cpu.cpl > cpu.iopl() {
                return Err(Exception::gp(0));
            }
            let fl = cpu.eflags();
            if ins.mnemonic() == M::Cli {
                cpu.ctx.set_eflags(fl & !flags::IF);
                Ok(Flow::Next)
            } else {
                cpu.ctx.set_eflags(fl | flags::IF);
                Ok(if fl & flags::IF == 0 { Flow::Shadow } else { Flow::Next })
            }
        }
        M::Popf | M::Popfd => popf(cpu, env, ins),
        M::Mov => mov_special(cpu, env, ins),
        M::Lgdt | M::Lidt => {
            require_cpl0(cpu)?;
            if ins.op0_kind() != OpKind::Memory {
                return Err(Exception::ud());
            }
            let addr = memory_linear(cpu, ins, 0);
            let limit = env.mem.read_uint(addr, 2)? as u16;
            let mut base = env.mem.read_uint(addr.wrapping_add(2), 4)?;
            if matches!(ins.code(), Code::Lgdt_m1632_16 | Code::Lidt_m1632_16) {
                base &= 0x00FF_FFFF;
            }
            let t = TableReg { base, limit };
            if ins.mnemonic() == M::Lgdt {
                cpu.gdtr = t;
                cpu.descriptor_tables_changed();
            } else {
                cpu.idtr = t
            }
            Ok(Flow::Next)
        }
        M::Sgdt | M::Sidt => {
            if ins.op0_kind() != OpKind::Memory {
                return Err(Exception::ud());
            }
            let t = if ins.mnemonic() == M::Sgdt { cpu.gdtr } else { cpu.idtr };
            let addr = memory_linear(cpu, ins, 0);
            env.mem.write_uint(addr, 2, t.limit as u32)?;
            env.mem.write_uint(addr.wrapping_add(2), 4, t.base)?;
            Ok(Flow::Next)
        }
        M::Lldt => {
            require_protected(cpu)?;
            require_cpl0(cpu)?;
            let sel = read_operand(cpu, env.mem, ins, 0, 2)? as u16;
            if sel & !3 == 0 {
                cpu.ldtr = SegmentCache { selector: sel, ..SegmentCache::null() };
                cpu.descriptor_tables_changed();
                return Ok(Flow::Next);
            }
            let gp = Exception::gp(sel as u32 & 0xFFFC);
            if sel & 4 != 0 {
                return Err(gp);
            }
            let d = cpu.read_descriptor(env.mem, sel)?.ok_or(gp)?;
            let c = SegmentCache::from_descriptor(sel, d.raw);
            if c.is_code_or_data() || c.system_type() != 2 {
                return Err(gp);
            }
            if !c.present() {
                return Err(Exception::new(crate::cpu::Vector::NP, sel as u32 & 0xFFFC));
            }
            cpu.ldtr = c;
            cpu.descriptor_tables_changed();
            Ok(Flow::Next)
        }
        M::Ltr => {
            require_protected(cpu)?;
            require_cpl0(cpu)?;
            let sel = read_operand(cpu, env.mem, ins, 0, 2)? as u16;
            let gp = Exception::gp(sel as u32 & 0xFFFC);
            if sel & !3 == 0 {
                return Err(Exception::gp(0));
            }
            if sel & 4 != 0 {
                return Err(gp);
            }
            let d = cpu.read_descriptor(env.mem, sel)?.ok_or(gp)?;
            let c = SegmentCache::from_descriptor(sel, d.raw);
            if c.is_code_or_data() || !matches!(c.system_type(), 1 | 9) {
                return Err(gp);
            }
            if !c.present() {
                return Err(Exception::new(crate::cpu::Vector::NP, sel as u32 & 0xFFFC));
            }
            // Mark the TSS busy.
            use crate::cpu::segments::SystemMemory;
            env.mem.write_sys(d.addr + 5, &[c.access | 2])?;
            cpu.tr = SegmentCache { access: c.access | 2, ..c };
            Ok(Flow::Next)
        }
        M::Sldt | M::Str => {
            require_protected(cpu)?;
            let sel = if ins.mnemonic() == M::Sldt { cpu.ldtr.selector } else { cpu.tr.selector };
            store_selector(cpu, env, ins, sel)?;
            Ok(Flow::Next)
        }
        M::Smsw => {
            if ins.op0_kind() == OpKind::Register {
                // A register destination receives CR0 (upper bits as on P6+ CPUs).
                write_reg(cpu, ins.op0_register(), cpu.cr0);
            } else {
                write_operand(cpu, env.mem, ins, 0, 2, cpu.cr0 & 0xFFFF)?;
            }
            Ok(Flow::Next)
        }
        M::Lmsw => {
            require_cpl0(cpu)?;
            let v = read_operand(cpu, env.mem, ins, 0, 2)?;
            // Loads PE, MP, EM, TS; cannot clear PE.
            let new = (cpu.cr0 & !0xE) | (v & 0xF) | (cpu.cr0 & cr0::PE);
            cpu.cr0 = new;
            Ok(Flow::Next)
        }
        M::Clts => {
            require_cpl0(cpu)?;
            cpu.cr0 &= !cr0::TS;
            Ok(Flow::Next)
        }
        M::Invlpg => {
            require_cpl0(cpu)?;
            if ins.op0_kind() != OpKind::Memory {
                return Err(Exception::ud());
            }
            env.mem.invlpg(memory_linear(cpu, ins, 0));
            Ok(Flow::Next)
        }
        M::Invd | M::Wbinvd => {
            require_cpl0(cpu)?;
            Ok(Flow::Next)
        }
        M::Cpuid => {
            let mut r = cpuid::cpuid(cpu.gpr(0), cpu.gpr(1));
            let apic_base = cpu.msr.read(msr::APIC_BASE, 0).unwrap_or(0);
            if cpu.gpr(0) == 1 && apic_base & msr::APIC_BASE_ENABLE == 0 {
                r[3] &= !cpuid::edx::APIC;
            }
            cpu.set_gpr(0, r[0]);
            cpu.set_gpr(3, r[1]);
            cpu.set_gpr(1, r[2]);
            cpu.set_gpr(2, r[3]);
            Ok(Flow::Next)
        }
        M::Rdmsr => {
            require_cpl0(cpu)?;
            let v = cpu.msr.read(cpu.gpr(1), cpu.ctx.tsc_offset).ok_or(Exception::gp(0))?;
            cpu.set_gpr(0, v as u32);
            cpu.set_gpr(2, (v >> 32) as u32);
            Ok(Flow::Next)
        }
        M::Wrmsr => {
            require_cpl0(cpu)?;
            let v = (cpu.gpr(2) as u64) << 32 | cpu.gpr(0) as u64;
            if !cpu.msr.write(cpu.gpr(1), v, &mut cpu.ctx.tsc_offset) {
                return Err(Exception::gp(0));
            }
            if cpu.gpr(1) == msr::EFER {
                env.mem.paging_changed(cpu.paging_regs(), false);
            }
            if cpu.gpr(1) == msr::APIC_BASE {
                env.io.apic_base_written(v);
            }
            Ok(Flow::Next)
        }
        M::Rdtsc => {
            if cpu.cr4 & cr4::TSD != 0 && cpu.cpl > 0 && cpu.protected() {
                return Err(Exception::gp(0));
            }
            let v = cpu.msr.read(msr::TSC, cpu.ctx.tsc_offset).unwrap_or(0);
            cpu.set_gpr(0, v as u32);
            cpu.set_gpr(2, (v >> 32) as u32);
            Ok(Flow::Next)
        }
        M::Rdpmc => {
            if cpu.cr4 & cr4::PCE == 0 && cpu.cpl > 0 && cpu.protected() {
                return Err(Exception::gp(0));
            }
            let v = cpu.msr.read_pmc(cpu.gpr(1)).ok_or(Exception::gp(0))?;
            cpu.set_gpr(0, v as u32);
            cpu.set_gpr(2, (v >> 32) as u32);
            Ok(Flow::Next)
        }
        _ => unreachable!(),
    }
}

fn require_protected(cpu: &Cpu) -> Result<(), Exception> {
    if cpu.protected() { Ok(()) } else { Err(Exception::ud()) }
}

/// `sldt`/`str`/`mov r/m, sreg`: a register gets the selector zero-extended, memory gets
/// 16 bits.
pub(super) fn store_selector(cpu: &mut Cpu, env: &mut Env<'_>, ins: &Instruction, sel: u16) -> Result<(), Exception> {
    if ins.op0_kind() == OpKind::Register {
        let r = ins.op0_register();
        let v = if r.is_gpr32() { sel as u32 } else { sel as u32 & 0xFFFF };
        write_reg(cpu, r, v);
        Ok(())
    } else {
        write_operand(cpu, env.mem, ins, 0, 2, sel as u32)
    }
}

/// `popf` above CPL 0 (CPL 0 is translated inline).
fn popf(cpu: &mut Cpu, env: &mut Env<'_>, ins: &Instruction) -> Result<Flow, Exception> {
    let size: u8 = if ins.mnemonic() == Mnemonic::Popfd { 4 } else { 2 };
    let v = Stack::peek(cpu, env.mem, 0, size)?;
    let old = cpu.eflags();
    let mut changeable = flags::HOST_HELD | flags::TF | flags::NT;
    if size == 4 {
        changeable |= flags::AC | flags::ID;
    }
    if cpu.cpl == 0 || !cpu.protected() {
        changeable |= flags::IOPL;
    }
    if cpu.cpl <= cpu.iopl() || !cpu.protected() {
        changeable |= flags::IF;
    }
    let new = (old & !changeable) | (v & changeable);
    cpu.ctx.set_eflags(new & !flags::RF);
    let sp = Stack::moved(cpu, cpu.gpr(4), size as i32);
    cpu.set_gpr(4, sp);
    Ok(Flow::Next)
}

/// `mov` to/from control, debug and segment registers.
fn mov_special(cpu: &mut Cpu, env: &mut Env<'_>, ins: &Instruction) -> Result<Flow, Exception> {
    let (r0, r1) = (ins.op0_register(), ins.op1_register());
    if r0.is_segment_register() || (ins.op1_kind() == OpKind::Register && r1.is_segment_register()) {
        return super::descriptors::mov_sreg(cpu, env, ins);
    }
    if r0.is_tr() || r1.is_tr() {
        return Err(Exception::ud());
    }
    if r0.is_cr() || r1.is_cr() {
        require_cpl0(cpu)?;
        if r0.is_cr() {
            write_cr(cpu, r0, read_reg(cpu, r1))?;
            env.mem.paging_changed(cpu.paging_regs(), r0 == Register::CR3);
        } else {
            let v = match r1 {
                Register::CR0 => cpu.cr0,
                Register::CR2 => cpu.cr2,
                Register::CR3 => cpu.cr3,
                Register::CR4 => cpu.cr4,
                _ => return Err(Exception::ud()),
            };
            write_reg(cpu, r0, v);
        }
        return Ok(Flow::Next);
    }
    if r0.is_dr() || r1.is_dr() {
        require_cpl0(cpu)?;
        let dr = |r: Register, cpu: &Cpu| -> Result<usize, Exception> {
            let n = r.number();
            if (n == 4 || n == 5) && cpu.cr4 & cr4::DE != 0 {
                return Err(Exception::ud());
            }
            Ok(if n == 4 || n == 5 { n + 2 } else { n })
        };
        if r0.is_dr() {
            let n = dr(r0, cpu)?;
            let v = read_reg(cpu, r1);
            cpu.dr[n] = match n {
                6 => (v & 0x0000_E00F) | 0xFFFF_0FF0,
                7 => (v & 0xFFFF_2BFF) | 0x400,
                _ => v,
            };
            if n == 7 && v & 0xFF != 0 {
                log::warn!("guest enabled hardware breakpoints (DR7 = {v:#x}); bt86 does not implement them");
            }
        } else {
            let n = dr(r1, cpu)?;
            write_reg(cpu, r0, cpu.dr[n]);
        }
        return Ok(Flow::Next);
    }
    Ok(Flow::Unsupported(format!("mov form {:?}", ins.code())))
}

fn write_cr(cpu: &mut Cpu, r: Register, v: u32) -> Result<(), Exception> {
    match r {
        Register::CR0 => {
            if (v & cr0::PG != 0 && v & cr0::PE == 0) || (v & cr0::NW != 0 && v & cr0::CD == 0) {
                return Err(Exception::gp(0));
            }
            cpu.cr0 = (v & cr0::WRITABLE) | cr0::ET;
        }
        Register::CR2 => cpu.cr2 = v,
        Register::CR3 => cpu.cr3 = v,
        Register::CR4 => {
            if v & !cr4::SUPPORTED != 0 {
                return Err(Exception::gp(0));
            }
            cpu.cr4 = v;
        }
        _ => return Err(Exception::ud()),
    }
    Ok(())
}
