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
            let limit = env.mem.load(addr, 2)? as u16;
            let mut base = env.mem.load(addr.wrapping_add(2), 4)?;
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
            env.mem.store(addr, 2, t.limit as u32)?;
            env.mem.store(addr.wrapping_add(2), 4, t.base)?;
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
                Register::CR2 => cpu.ctx.cr2,
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
        Register::CR2 => cpu.ctx.cr2 = v,
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

#[cfg(test)]
mod tests {
    //! System instructions against the SDM (Vol. 2 instruction pages, Vol. 3A 2.5 and
    //! 5.9): privileged ones fault with #GP(0) above CPL 0, IF changes need CPL <= IOPL.
    use iced_x86::code_asm::*;

    use super::super::testing::*;
    use crate::cpu::{Vector, cr0 as CR0, cr4 as CR4, msr as MSR};

    /// A user-mode machine (CPL 3).
    fn user() -> Machine {
        let mut m = Machine::with_gdt(&[]);
        m.enter_user();
        m
    }

    #[test]
    fn hlt_halts_at_cpl0_and_faults_above() {
        let mut m = Machine::new();
        assert_eq!(m.exec(|a| a.hlt()), Ok(Flow::Halt));
        assert_eq!(m.cpu.ctx.eip, CODE + 1, "EIP moves past hlt");
        assert_eq!(user().exec(|a| a.hlt()), gp(0));
    }

    #[test]
    fn cli_sti_need_cpl_at_most_iopl() {
        let mut m = Machine::new();
        assert_eq!(m.exec(|a| a.sti()), Ok(Flow::Shadow), "sti from IF = 0 inhibits interrupts for one instruction");
        assert_ne!(m.flags() & IF, 0);
        assert_eq!(m.exec(|a| a.sti()), Ok(Flow::Next), "no shadow when IF was already 1");
        assert_eq!(m.exec(|a| a.cli()), Ok(Flow::Next));
        assert_eq!(m.flags() & IF, 0);

        let mut u = user();
        u.set_flags(IF);
        assert_eq!(u.exec(|a| a.cli()), gp(0), "CPL 3 > IOPL 0");
        assert_ne!(u.flags() & IF, 0, "a faulting cli changes nothing");
        u.set_flags(IF | IOPL3);
        assert_eq!(u.exec(|a| a.cli()), Ok(Flow::Next), "IOPL 3 lets CPL 3 change IF");
        assert_eq!(u.flags() & IF, 0);
    }

    #[test]
    fn popf_at_cpl3_keeps_if_and_iopl_without_faulting() {
        let mut u = user();
        u.set_flags(IF);
        u.push(CF | ZF | IOPL3 | DF); // IF clear, IOPL 3 requested
        assert_eq!(u.exec(|a| a.popfd()), Ok(Flow::Next));
        assert_eq!(u.flags() & (CF | ZF | DF | IF | IOPL3), CF | ZF | DF | IF, "IF and IOPL are silently kept");
        assert_eq!(u.cpu.gpr(4), STACK, "ESP moved past the popped dword");

        let mut m = Machine::new();
        m.push(IOPL3 | IF | OF);
        assert_eq!(m.exec(|a| a.popfd()), Ok(Flow::Next));
        assert_eq!(m.flags() & (IOPL3 | IF | OF), IOPL3 | IF | OF, "CPL 0 loads IOPL and IF");
    }

    #[test]
    fn control_registers_check_their_values() {
        let mut m = Machine::new();
        // CR0.PG without PE, and NW without CD: #GP(0) (SDM Vol. 2, MOV-Move to/from Control Registers).
        m.cpu.set_gpr(0, CR0::PG | CR0::ET);
        assert_eq!(m.exec(|a| a.mov(cr0, eax)), gp(0));
        m.cpu.set_gpr(0, CR0::PE | CR0::NW);
        assert_eq!(m.exec(|a| a.mov(cr0, eax)), gp(0));
        assert_eq!(m.cpu.cr0 & (CR0::PG | CR0::NW), 0, "a faulting write changes nothing");
        // A reserved CR4 bit (VMXE, bit 13: the virtual CPU reports no VMX).
        m.cpu.set_gpr(0, 1 << 13);
        assert_eq!(m.exec(|a| a.mov(cr4, eax)), gp(0));
        m.cpu.set_gpr(0, CR4::PSE | CR4::PGE);
        assert_eq!(m.exec(|a| a.mov(cr4, eax)), Ok(Flow::Next));
        assert_eq!(m.cpu.cr4, CR4::PSE | CR4::PGE);
        // CR3: paging hears of it, as a CR3 load.
        m.cpu.set_gpr(0, 0x5000);
        assert_eq!(m.exec(|a| a.mov(cr3, eax)), Ok(Flow::Next));
        assert_eq!((m.cpu.cr3, m.mem.paging_changes.last()), (0x5000, Some(&true)));
        assert_eq!(m.exec(|a| a.mov(ebx, cr3)), Ok(Flow::Next));
        assert_eq!(m.cpu.gpr(3), 0x5000);
        // Any CR access at CPL 3: #GP(0).
        assert_eq!(user().exec(|a| a.mov(eax, cr0)), gp(0));
    }

    #[test]
    fn debug_registers() {
        let mut m = Machine::new();
        // DR4 aliases DR6 unless CR4.DE, which makes it #UD.
        m.cpu.set_gpr(0, 0);
        assert_eq!(m.exec(|a| a.mov(dr6, eax)), Ok(Flow::Next));
        assert_eq!(m.cpu.dr[6], 0xFFFF_0FF0, "DR6's reserved bits read as 1");
        assert_eq!(m.exec_bytes(&[0x0F, 0x21, 0xE3]), Ok(Flow::Next)); // mov ebx, dr4
        assert_eq!(m.cpu.gpr(3), 0xFFFF_0FF0);
        m.cpu.cr4 = CR4::DE;
        assert_eq!(m.exec_bytes(&[0x0F, 0x21, 0xE3]), ud());
        assert_eq!(user().exec(|a| a.mov(eax, dr7)), gp(0));
    }

    #[test]
    fn descriptor_table_registers() {
        let mut m = Machine::new();
        m.mem.write_u16(0x500, 0x1234);
        m.mem.write_u32(0x502, 0xAABB_CCDD);
        assert_eq!(m.exec(|a| a.lgdt(ptr(0x500))), Ok(Flow::Next));
        assert_eq!((m.cpu.gdtr.base, m.cpu.gdtr.limit), (0xAABB_CCDD, 0x1234));
        // With a 16-bit operand size only 24 bits of the base are loaded.
        assert_eq!(m.exec_bytes(&[0x66, 0x0F, 0x01, 0x1D, 0x00, 0x05, 0x00, 0x00]), Ok(Flow::Next)); // o16 lidt [0x500]
        assert_eq!((m.cpu.idtr.base, m.cpu.idtr.limit), (0x00BB_CCDD, 0x1234));
        assert_eq!(m.exec(|a| a.sgdt(ptr(0x600))), Ok(Flow::Next));
        assert_eq!((m.mem.read_u32(0x600) & 0xFFFF, m.mem.read_u32(0x602)), (0x1234, 0xAABB_CCDD));
        // lgdt is privileged; sgdt is not (no UMIP).
        let mut u = user();
        assert_eq!(u.exec(|a| a.lgdt(ptr(0x500))), gp(0));
        assert_eq!(u.exec(|a| a.sidt(ptr(0x600))), Ok(Flow::Next));
    }

    #[test]
    fn ltr_checks_and_marks_the_tss_busy() {
        let mut m = Machine::new();
        let avail_tss = seg_desc(TSS, 0x67, 0x89, 0); // present, DPL 0, 32-bit available TSS
        let not_present = seg_desc(TSS, 0x67, 0x09, 0);
        let (b, l, f) = FLAT;
        m.gdt(&[avail_tss, not_present, seg_desc(b, l, DATA_RW, f)]);
        m.cpu.set_gpr(0, 0);
        assert_eq!(m.exec(|a| a.ltr(ax)), gp(0), "null selector");
        m.cpu.set_gpr(0, 0x18);
        assert_eq!(m.exec(|a| a.ltr(ax)), gp(0x18), "a data segment is no TSS");
        m.cpu.set_gpr(0, 0x10);
        assert_eq!(m.exec(|a| a.ltr(ax)), fault(Vector::NP, 0x10));
        m.cpu.set_gpr(0, 0x40);
        assert_eq!(m.exec(|a| a.ltr(ax)), gp(0x40), "beyond the GDT limit");
        m.cpu.set_gpr(0, 0x0B); // RPL 3: ignored by ltr
        assert_eq!(m.exec(|a| a.ltr(ax)), Ok(Flow::Next));
        assert_eq!(m.gdt_entry(1) >> 40 & 0xF, 0xB, "the descriptor in memory is now a busy TSS");
        assert_eq!((m.cpu.tr.base, m.cpu.tr.limit), (TSS, 0x67));
        assert_eq!(m.exec(|a| a.str(bx)), Ok(Flow::Next));
        assert_eq!(m.cpu.gpr(3) & 0xFFFF, 0x0B);
        assert_eq!(m.exec(|a| a.ltr(ax)), gp(0x08), "a busy TSS cannot be loaded again");
        assert_eq!(user().exec(|a| a.ltr(ax)), gp(0));
    }

    #[test]
    fn lldt_accepts_null_and_ldt_descriptors_only() {
        let mut m = Machine::new();
        let ldt = seg_desc(0x4000, 0xFF, 0x82, 0);
        let (b, l, f) = FLAT;
        m.gdt(&[ldt, seg_desc(b, l, DATA_RW, f)]);
        m.cpu.set_gpr(0, 0);
        assert_eq!(m.exec(|a| a.lldt(ax)), Ok(Flow::Next), "a null selector makes LDTR unusable, without a fault");
        m.cpu.set_gpr(0, 0x10);
        assert_eq!(m.exec(|a| a.lldt(ax)), gp(0x10));
        m.cpu.set_gpr(0, 0x0C); // TI = 1: an LDT selector cannot name the LDT
        assert_eq!(m.exec(|a| a.lldt(ax)), gp(0x0C));
        m.cpu.set_gpr(0, 0x08);
        assert_eq!(m.exec(|a| a.lldt(ax)), Ok(Flow::Next));
        assert_eq!((m.cpu.ldtr.base, m.cpu.ldtr.limit, m.cpu.ldtr.selector), (0x4000, 0xFF, 0x08));
        m.cpu.cr0 &= !CR0::PE;
        assert_eq!(m.exec(|a| a.lldt(ax)), ud(), "not in real mode");
    }

    #[test]
    fn msw_and_ts() {
        let mut m = Machine::new();
        m.cpu.set_gpr(0, CR0::TS | CR0::MP); // PE clear: lmsw cannot clear it
        assert_eq!(m.exec(|a| a.lmsw(ax)), Ok(Flow::Next));
        assert_eq!(m.cpu.cr0 & 0xF, CR0::PE | CR0::MP | CR0::TS);
        assert_eq!(m.exec(|a| a.smsw(ebx)), Ok(Flow::Next));
        assert_eq!(m.cpu.gpr(3), m.cpu.cr0);
        assert_eq!(m.exec(|a| a.clts()), Ok(Flow::Next));
        assert_eq!(m.cpu.cr0 & CR0::TS, 0);
        let mut u = user();
        assert_eq!(u.exec(|a| a.clts()), gp(0));
        assert_eq!(u.exec(|a| a.lmsw(ax)), gp(0));
        assert_eq!(u.exec(|a| a.smsw(eax)), Ok(Flow::Next), "smsw is not privileged");
    }

    #[test]
    fn time_stamp_and_performance_counters() {
        let mut u = user();
        assert_eq!(u.exec(|a| a.rdtsc()), Ok(Flow::Next));
        u.cpu.cr4 |= CR4::TSD;
        assert_eq!(u.exec(|a| a.rdtsc()), gp(0), "CR4.TSD: rdtsc only at CPL 0");
        assert_eq!(u.exec(|a| a.rdpmc()), gp(0), "rdpmc above CPL 0 needs CR4.PCE");
        let mut m = Machine::new();
        m.cpu.cr4 |= CR4::TSD;
        assert_eq!(m.exec(|a| a.rdtsc()), Ok(Flow::Next));
    }

    #[test]
    fn msrs() {
        let mut m = Machine::new();
        m.cpu.set_gpr(1, 0xDEAD);
        assert_eq!(m.exec(|a| a.rdmsr()), gp(0), "an MSR the CPU does not have");
        assert_eq!(m.exec(|a| a.wrmsr()), gp(0));
        m.cpu.set_gpr(1, MSR::SYSENTER_ESP);
        m.cpu.set_gpr(0, 0x1234_5678);
        m.cpu.set_gpr(2, 0);
        assert_eq!(m.exec(|a| a.wrmsr()), Ok(Flow::Next));
        m.cpu.set_gpr(0, 0);
        assert_eq!(m.exec(|a| a.rdmsr()), Ok(Flow::Next));
        assert_eq!((m.cpu.gpr(0), m.cpu.gpr(2)), (0x1234_5678, 0));
        // EFER.NXE changes paging.
        m.cpu.set_gpr(1, MSR::EFER);
        m.cpu.set_gpr(0, MSR::EFER_NXE);
        assert_eq!(m.exec(|a| a.wrmsr()), Ok(Flow::Next));
        assert_eq!(m.mem.paging_changes, [false]);
        let mut u = user();
        u.cpu.set_gpr(1, MSR::SYSENTER_ESP);
        assert_eq!(u.exec(|a| a.rdmsr()), gp(0));
    }

    #[test]
    fn invlpg_flushes_the_linear_page() {
        let mut m = Machine::new();
        m.cpu.set_gpr(3, 0x40_1000);
        assert_eq!(m.exec(|a| a.invlpg(ptr(ebx + 0x10))), Ok(Flow::Next));
        assert_eq!(m.mem.invlpgs, [0x40_1010]);
        assert_eq!(user().exec(|a| a.invlpg(ptr(ebx))), gp(0));
        assert_eq!(user().exec(|a| a.wbinvd()), gp(0));
    }

    #[test]
    fn cpuid_leaf_0_names_the_vendor() {
        let mut m = Machine::new();
        m.cpu.set_gpr(0, 0);
        assert_eq!(m.exec(|a| a.cpuid()), Ok(Flow::Next));
        let vendor: Vec<u8> = [3, 2, 1].iter().flat_map(|&r| m.cpu.gpr(r).to_le_bytes()).collect();
        assert!(vendor.iter().all(u8::is_ascii_graphic), "EBX, EDX, ECX spell a vendor: {vendor:?}");
        assert!(m.cpu.gpr(0) >= 1, "leaf 1 exists");
    }
}
