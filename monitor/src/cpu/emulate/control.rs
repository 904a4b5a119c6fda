//! Far control transfers, software interrupts, `iret`, `sysenter`/`sysexit`, and `enter`
//! with a nesting level.

use bt86_translator::{Seg, flags};
use iced_x86::{Code, Instruction, Mnemonic, OpKind};

use super::operands::{Stack, memory_linear, read_reg, write_reg};
use super::{Env, Flow};
use crate::cpu::exceptions::EventKind;
use crate::cpu::segments::{SegmentCache, real_mode_segment};
use crate::cpu::{Cpu, Exception, Vector};

pub(super) fn emulate_control(cpu: &mut Cpu, env: &mut Env<'_>, ins: &Instruction, next_eip: u32) -> Result<Flow, Exception> {
    use Mnemonic as M;
    match ins.mnemonic() {
        M::Int | M::Int3 | M::Into | M::Int1 => {
            let vector = match ins.mnemonic() {
                M::Int => ins.immediate8(),
                M::Int3 => Vector::BP,
                M::Int1 => Vector::DB,
                _ => {
                    if cpu.eflags() & flags::OF == 0 {
                        cpu.ctx.eip = next_eip;
                        return Ok(Flow::Next);
                    }
                    Vector::OF
                }
            };
            let kind = if ins.mnemonic() == M::Int1 { EventKind::Exception } else { EventKind::Software };
            Ok(Flow::Interrupt(vector, kind))
        }
        M::Jmp | M::Call => far_jmp_call(cpu, env, ins, next_eip),
        M::Retf => far_ret(cpu, env, ins),
        M::Iret | M::Iretd => iret(cpu, env, ins),
        M::Sysenter => sysenter(cpu),
        M::Sysexit => sysexit(cpu),
        M::Syscall | M::Sysret => Err(Exception::ud()),
        _ => unreachable!(),
    }
}

/// Operand size (2 or 4) of a far transfer.
fn far_size(ins: &Instruction) -> u8 {
    match ins.code() {
        Code::Jmp_ptr1616 | Code::Call_ptr1616 | Code::Jmp_m1616 | Code::Call_m1616 | Code::Retfw | Code::Retfw_imm16 | Code::Iretw => 2,
        _ => 4,
    }
}

fn far_jmp_call(cpu: &mut Cpu, env: &mut Env<'_>, ins: &Instruction, next_eip: u32) -> Result<Flow, Exception> {
    let size = far_size(ins);
    let (sel, off) = match ins.op0_kind() {
        OpKind::FarBranch16 | OpKind::FarBranch32 => {
            (ins.far_branch_selector(), if size == 4 { ins.far_branch32() } else { ins.far_branch16() as u32 })
        }
        OpKind::Memory => {
            let addr = memory_linear(cpu, ins, 0);
            let off = env.mem.load(addr, size)?;
            (env.mem.load(addr.wrapping_add(size as u32), 2)? as u16, off)
        }
        k => return Ok(Flow::Unsupported(format!("far branch operand {k:?}"))),
    };
    let is_call = ins.mnemonic() == Mnemonic::Call;
    if !cpu.protected() {
        if is_call {
            let cs = cpu.segment(Seg::Cs).selector as u32;
            Stack::push_all(cpu, env.mem, &[cs, next_eip], size)?;
        }
        let c = real_mode_segment(sel, *cpu.segment(Seg::Cs));
        cpu.set_segment(Seg::Cs, c);
        cpu.ctx.eip = if size == 4 { off } else { off & 0xFFFF };
        return Ok(Flow::Jump);
    }
    if sel & !3 != 0
        && let Some(d) = cpu.read_descriptor(env.mem, sel)?
        && !SegmentCache::from_descriptor(sel, d.raw).is_code_or_data()
    {
        let ty = SegmentCache::from_descriptor(sel, d.raw).system_type();
        if matches!(ty, 0x4 | 0xC) {
            return through_call_gate(cpu, env, sel, d.raw, is_call, next_eip, size);
        }
        return Ok(Flow::Unsupported(format!(
            "far {} to a task gate or TSS (selector {sel:#x}): task switches are not supported",
            if is_call { "call" } else { "jmp" }
        )));
    }
    let (c, d) = cpu.check_code_segment(env.mem, sel, false)?;
    if is_call {
        let cs = cpu.segment(Seg::Cs).selector as u32;
        Stack::push_all(cpu, env.mem, &[cs, next_eip], size)?;
    }
    let cpl = cpu.cpl;
    cpu.commit_code_segment(env.mem, c, &d, cpl)?;
    cpu.ctx.eip = if size == 4 { off } else { off & 0xFFFF };
    Ok(Flow::Jump)
}

/// A far `call`/`jmp` through a call gate (32-bit type 0xC or 16-bit type 0x4): to the
/// same privilege level, or (calls only) to an inner level with the stack switch from the
/// TSS and the gate's parameters copied.
fn through_call_gate(
    cpu: &mut Cpu,
    env: &mut Env<'_>,
    gate_sel: u16,
    gate: u64,
    is_call: bool,
    next_eip: u32,
    _size: u8,
) -> Result<Flow, Exception> {
    let gate_err = gate_sel as u32 & 0xFFFC;
    let dpl = ((gate >> 45) & 3) as u8;
    if dpl < cpu.cpl || dpl < (gate_sel & 3) as u8 {
        return Err(Exception::gp(gate_err));
    }
    if gate & (1 << 47) == 0 {
        return Err(Exception::new(Vector::NP, gate_err));
    }
    let gate32 = (gate >> 40) & 0xF == 0xC;
    let offset = (gate as u32 & 0xFFFF) | if gate32 { (gate >> 32) as u32 & 0xFFFF_0000 } else { 0 };
    let target = (gate >> 16) as u16;
    let params = ((gate >> 32) & 0x1F) as u32;
    if target & !3 == 0 {
        return Err(Exception::gp(0));
    }
    let terr = target as u32 & 0xFFFC;
    let d = cpu.read_descriptor(env.mem, target)?.ok_or(Exception::gp(terr))?;
    let c = SegmentCache::from_descriptor(target, d.raw);
    if !c.is_code() || c.dpl() > cpu.cpl {
        return Err(Exception::gp(terr));
    }
    if !c.present() {
        return Err(Exception::new(Vector::NP, terr));
    }
    let word = if gate32 { 4u8 } else { 2 };
    let old_cs = cpu.segment(Seg::Cs).selector as u32;
    if !c.is_conforming() && c.dpl() < cpu.cpl {
        if !is_call {
            return Err(Exception::gp(terr));
        }
        // Inner privilege: new stack from the TSS, then SS, ESP, the parameters, CS, EIP.
        let new_cpl = c.dpl();
        let (ss_sel, esp0) = cpu.tss_stack(env.mem, new_cpl, 0)?;
        let ts = Exception::new(Vector::TS, ss_sel as u32 & 0xFFFC);
        if ss_sel & !3 == 0 || (ss_sel & 3) as u8 != new_cpl {
            return Err(ts);
        }
        let sd = cpu.read_descriptor(env.mem, ss_sel)?.ok_or(ts)?;
        let ss = SegmentCache::from_descriptor(ss_sel, sd.raw);
        if !ss.writable_data() || ss.dpl() != new_cpl {
            return Err(ts);
        }
        if !ss.present() {
            return Err(Exception::new(Vector::SS, ss_sel as u32 & 0xFFFC));
        }
        let mut args = Vec::with_capacity(params as usize);
        for i in (0..params).rev() {
            args.push(Stack::peek(cpu, env.mem, i * word as u32, word)?);
        }
        let old_ss = cpu.segment(Seg::Ss).selector as u32;
        let old_esp = cpu.gpr(4);
        let mut esp = esp0;
        let mut values = vec![old_ss, old_esp];
        values.extend(args);
        values.extend([old_cs, next_eip]);
        for v in values {
            esp = if ss.default_big() {
                esp.wrapping_sub(word as u32)
            } else {
                (esp & 0xFFFF_0000) | (esp.wrapping_sub(word as u32) & 0xFFFF)
            };
            let off = if ss.default_big() { esp } else { esp & 0xFFFF };
            env.mem.store(ss.base.wrapping_add(off), word, v)?;
        }
        cpu.commit_code_segment(env.mem, c, &d, new_cpl)?;
        cpu.set_segment(Seg::Ss, SegmentCache { access: ss.access | 1, ..ss });
        cpu.set_gpr(4, esp);
    } else {
        if is_call {
            Stack::push_all(cpu, env.mem, &[old_cs, next_eip], word)?;
        }
        let cpl = cpu.cpl;
        cpu.commit_code_segment(env.mem, c, &d, cpl)?;
    }
    cpu.ctx.eip = offset;
    Ok(Flow::Jump)
}

fn far_ret(cpu: &mut Cpu, env: &mut Env<'_>, ins: &Instruction) -> Result<Flow, Exception> {
    let size = far_size(ins);
    let pop_extra = if matches!(ins.code(), Code::Retfw_imm16 | Code::Retfd_imm16) { ins.immediate16() as u32 } else { 0 };
    let off = Stack::peek(cpu, env.mem, 0, size)?;
    let sel = Stack::peek(cpu, env.mem, size as u32, 2)? as u16;
    if !cpu.protected() {
        let c = real_mode_segment(sel, *cpu.segment(Seg::Cs));
        cpu.set_segment(Seg::Cs, c);
        cpu.ctx.eip = off & if size == 4 { !0 } else { 0xFFFF };
        let sp = Stack::moved(cpu, cpu.gpr(4), 2 * size as i32 + pop_extra as i32);
        cpu.set_gpr(4, sp);
        return Ok(Flow::Jump);
    }
    let (c, d) = cpu.check_code_segment(env.mem, sel, true)?;
    let rpl = (sel & 3) as u8;
    if rpl > cpu.cpl {
        // Return to an outer privilege level: SS:ESP follow the pushed CS:EIP (after
        // the immediate).
        let at = 2 * size as u32 + pop_extra;
        let new_esp = Stack::peek(cpu, env.mem, at, size)?;
        let new_ss = Stack::peek(cpu, env.mem, at + size as u32, 2)? as u16;
        return_to_outer(cpu, env, c, &d, rpl, new_ss, new_esp.wrapping_add(pop_extra), off, size)?;
        return Ok(Flow::Jump);
    }
    let cpl = cpu.cpl;
    cpu.commit_code_segment(env.mem, c, &d, cpl)?;
    cpu.ctx.eip = if size == 4 { off } else { off & 0xFFFF };
    let sp = Stack::moved(cpu, cpu.gpr(4), 2 * size as i32 + pop_extra as i32);
    cpu.set_gpr(4, sp);
    Ok(Flow::Jump)
}

/// Completes a return (`retf`, `iret`) to the outer privilege level `rpl`: checks and
/// loads SS:ESP, then CS:EIP, then nulls data segments the new level may not use.
#[allow(clippy::too_many_arguments)]
fn return_to_outer(
    cpu: &mut Cpu,
    env: &mut Env<'_>,
    c: SegmentCache,
    d: &crate::cpu::segments::DescriptorRef,
    rpl: u8,
    ss_sel: u16,
    esp: u32,
    eip: u32,
    size: u8,
) -> Result<(), Exception> {
    let gp = Exception::gp(ss_sel as u32 & 0xFFFC);
    if ss_sel & !3 == 0 || (ss_sel & 3) as u8 != rpl {
        return Err(gp);
    }
    let sd = cpu.read_descriptor(env.mem, ss_sel)?.ok_or(gp)?;
    let ss = SegmentCache::from_descriptor(ss_sel, sd.raw);
    if !ss.writable_data() || ss.dpl() != rpl {
        return Err(gp);
    }
    if !ss.present() {
        return Err(Exception::new(Vector::SS, ss_sel as u32 & 0xFFFC));
    }
    cpu.commit_code_segment(env.mem, c, d, rpl)?;
    cpu.set_segment(Seg::Ss, SegmentCache { access: ss.access | 1, ..ss });
    cpu.set_gpr(4, if size == 4 { esp } else { (cpu.gpr(4) & 0xFFFF_0000) | (esp & 0xFFFF) });
    cpu.ctx.eip = if size == 4 { eip } else { eip & 0xFFFF };
    cpu.null_inaccessible_segments();
    Ok(())
}

fn iret(cpu: &mut Cpu, env: &mut Env<'_>, ins: &Instruction) -> Result<Flow, Exception> {
    let size = far_size(ins);
    let eip = Stack::peek(cpu, env.mem, 0, size)?;
    let sel = Stack::peek(cpu, env.mem, size as u32, 2)? as u16;
    let popped_flags = Stack::peek(cpu, env.mem, 2 * size as u32, size)?;
    let old = cpu.eflags();
    if !cpu.protected() {
        let c = real_mode_segment(sel, *cpu.segment(Seg::Cs));
        cpu.set_segment(Seg::Cs, c);
        cpu.ctx.eip = eip & if size == 4 { !0 } else { 0xFFFF };
        let mask = if size == 4 { 0x0025_7FD5 } else { 0x7FD5 };
        cpu.ctx.set_eflags((old & !mask) | (popped_flags & mask));
        let sp = Stack::moved(cpu, cpu.gpr(4), 3 * size as i32);
        cpu.set_gpr(4, sp);
        return Ok(Flow::Jump);
    }
    if old & flags::NT != 0 {
        return Ok(Flow::Unsupported("iret with NT set (task return)".into()));
    }
    if size == 4 && popped_flags & flags::VM != 0 && cpu.cpl == 0 {
        return Ok(Flow::Unsupported("iret to virtual-8086 mode".into()));
    }
    let (c, d) = cpu.check_code_segment(env.mem, sel, true)?;
    let rpl = (sel & 3) as u8;
    // EFLAGS: IOPL only at CPL 0, IF only at CPL <= IOPL; VIF/VIP only at CPL 0.
    let mut changeable = flags::HOST_HELD | flags::TF | flags::NT | flags::RF;
    if size == 4 {
        changeable |= flags::AC | flags::ID;
    }
    if cpu.cpl == 0 {
        changeable |= flags::IOPL;
        if size == 4 {
            changeable |= flags::VIF | flags::VIP;
        }
    }
    if cpu.cpl <= cpu.iopl() {
        changeable |= flags::IF;
    }
    let new_flags = (old & !changeable) | (popped_flags & changeable);
    if rpl > cpu.cpl {
        let new_esp = Stack::peek(cpu, env.mem, 3 * size as u32, size)?;
        let new_ss = Stack::peek(cpu, env.mem, 4 * size as u32, 2)? as u16;
        return_to_outer(cpu, env, c, &d, rpl, new_ss, new_esp, eip, size)?;
    } else {
        let cpl = cpu.cpl;
        cpu.commit_code_segment(env.mem, c, &d, cpl)?;
        cpu.ctx.eip = if size == 4 { eip } else { eip & 0xFFFF };
        let sp = Stack::moved(cpu, cpu.gpr(4), 3 * size as i32);
        cpu.set_gpr(4, sp);
    }
    cpu.ctx.set_eflags(new_flags & !flags::RF);
    Ok(Flow::Jump)
}

pub(crate) fn sysenter(cpu: &mut Cpu) -> Result<Flow, Exception> {
    let cs = cpu.msr.sysenter_cs as u16;
    if !cpu.protected() || cs & !3 == 0 {
        return Err(Exception::gp(0));
    }
    let fl = cpu.eflags() & !(flags::VM | flags::IF | flags::RF);
    cpu.ctx.set_eflags(fl);
    if cpu.cpl == 3 {
        cpu.user_events += 1;
    }
    cpu.cpl = 0;
    cpu.set_segment(Seg::Cs, SegmentCache::flat_code(cs & !3));
    cpu.set_segment(Seg::Ss, SegmentCache::flat_data((cs & !3) + 8));
    cpu.set_gpr(4, cpu.msr.sysenter_esp);
    cpu.ctx.eip = cpu.msr.sysenter_eip;
    Ok(Flow::Jump)
}

fn sysexit(cpu: &mut Cpu) -> Result<Flow, Exception> {
    let cs = cpu.msr.sysenter_cs as u16;
    if !cpu.protected() || cpu.cpl != 0 || cs & !3 == 0 {
        return Err(Exception::gp(0));
    }
    let user_code = SegmentCache { access: 0xFB, ..SegmentCache::flat_code(((cs & !3) + 16) | 3) };
    let user_data = SegmentCache { access: 0xF3, ..SegmentCache::flat_data(((cs & !3) + 24) | 3) };
    cpu.cpl = 3;
    cpu.set_segment(Seg::Cs, user_code);
    cpu.set_segment(Seg::Ss, user_data);
    cpu.ctx.eip = cpu.gpr(2);
    cpu.set_gpr(4, cpu.gpr(1));
    Ok(Flow::Jump)
}

/// `enter` with a nesting level (or a 16-bit operand size): the general algorithm.
pub(super) fn emulate_enter(cpu: &mut Cpu, env: &mut Env<'_>, ins: &Instruction) -> Result<Flow, Exception> {
    let size: u8 = if ins.code() == Code::Enterw_imm16_imm8 { 2 } else { 4 };
    let alloc = ins.immediate16() as u32;
    let level = (ins.immediate8_2nd() % 32) as u32;
    let big = cpu.segment(Seg::Ss).default_big();
    let bp_reg = if big { iced_x86::Register::EBP } else { iced_x86::Register::BP };
    // Pushes and reads interleave as on hardware (a read may see an earlier push); the
    // registers change only once everything succeeded.
    let ebp = cpu.gpr(5);
    let mut sp = cpu.gpr(4);
    let push = |cpu: &Cpu, env: &mut Env<'_>, sp: &mut u32, v: u32| -> Result<(), Exception> {
        *sp = Stack::moved(cpu, *sp, -(size as i32));
        env.mem.store(Stack::linear(cpu, *sp), size, v)
    };
    push(cpu, env, &mut sp, if size == 4 { ebp } else { ebp & 0xFFFF })?;
    let frame_temp = sp;
    let mut frame_bp = read_reg(cpu, bp_reg);
    if level > 0 {
        for _ in 1..level {
            frame_bp = frame_bp.wrapping_sub(size as u32);
            let v = env.mem.load(Stack::linear(cpu, frame_bp), size)?;
            push(cpu, env, &mut sp, v)?;
        }
        push(cpu, env, &mut sp, frame_temp)?;
    }
    cpu.set_gpr(4, sp);
    if size == 4 {
        cpu.set_gpr(5, frame_temp);
    } else {
        write_reg(cpu, iced_x86::Register::BP, frame_temp);
    }
    let sp = Stack::moved(cpu, cpu.gpr(4), -(alloc as i32));
    cpu.set_gpr(4, sp);
    Ok(Flow::Next)
}

#[cfg(test)]
mod tests {
    //! Far transfers, software interrupts, `iret`, the fast system calls and `enter`
    //! against the SDM (Vol. 2 instruction pages; Vol. 3A 5.8 for call gates).

    use super::super::testing::*;
    use crate::cpu::Vector;
    use crate::cpu::exceptions::EventKind;
    use bt86_translator::Seg;

    const DATA_SEL: u16 = KDATA;
    const ABSENT_CODE: u16 = 0x28;
    const GATE3: u16 = 0x30;
    const GATE0: u16 = 0x38;
    const TSS_SEL: u16 = 0x40;

    fn machine() -> Machine {
        let (b, l, f) = FLAT;
        let mut m = Machine::with_gdt(&[
            seg_desc(b, l, CODE_XR & 0x7F, f),
            call_gate(KCODE, 0x0040_1000, 3, 1),
            call_gate(KCODE, 0x0040_2000, 0, 0),
            seg_desc(TSS, 0x67, 0x89, 0),
        ]);
        // The TSS's ring-0 stack: SS0 = KDATA, ESP0 = 0x9000.
        m.mem.write_u32(TSS + 4, 0x9000);
        m.mem.write_u16(TSS + 8, KDATA);
        m.cpu.tr = crate::cpu::SegmentCache::from_descriptor(TSS_SEL, m.gdt_entry(8));
        m
    }

    /// `jmp far sel:off` / `call far sel:off` (ptr16:32).
    fn far(op: u8, sel: u16, off: u32) -> Vec<u8> {
        let mut v = vec![op];
        v.extend_from_slice(&off.to_le_bytes());
        v.extend_from_slice(&sel.to_le_bytes());
        v
    }
    const JMP: u8 = 0xEA;
    const CALL: u8 = 0x9A;

    #[test]
    fn software_interrupts_are_handed_to_the_caller() {
        let mut m = machine();
        assert_eq!(m.exec(|a| a.int(0x80)), Ok(Flow::Interrupt(0x80, EventKind::Software)));
        assert_eq!(m.cpu.ctx.eip, CODE, "EIP stays at the int for the caller to deliver");
        assert_eq!(m.exec(|a| a.int3()), Ok(Flow::Interrupt(Vector::BP, EventKind::Software)));
        assert_eq!(m.exec(|a| a.int1()), Ok(Flow::Interrupt(Vector::DB, EventKind::Exception)), "icebp is a #DB, not a software int");
        assert_eq!(m.exec(|a| a.into()), Ok(Flow::Next), "into with OF = 0 does nothing");
        assert_eq!(m.cpu.ctx.eip, CODE + 1);
        m.set_flags(OF);
        assert_eq!(m.exec(|a| a.into()), Ok(Flow::Interrupt(Vector::OF, EventKind::Software)));
    }

    #[test]
    fn far_jmp_loads_cs_after_its_checks() {
        let mut m = machine();
        assert_eq!(m.exec_bytes(&far(JMP, 0, 0x1000)), gp(0), "null selector");
        assert_eq!(m.exec_bytes(&far(JMP, DATA_SEL, 0x1000)), gp(DATA_SEL as u32), "not code");
        assert_eq!(m.exec_bytes(&far(JMP, ABSENT_CODE, 0x1000)), fault(Vector::NP, ABSENT_CODE as u32));
        assert_eq!(m.exec_bytes(&far(JMP, UCODE, 0x1000)), gp(UCODE as u32), "nonconforming DPL 3 code from CPL 0");
        assert_eq!(m.exec_bytes(&far(JMP, 0x48, 0x1000)), gp(0x48), "beyond the GDT limit");
        assert_eq!(m.cpu.ctx.eip, CODE, "EIP unchanged by the faults");
        assert_eq!(m.exec_bytes(&far(JMP, KCODE | 3, 0x0012_3456)), gp(KCODE as u32), "RPL 3 > CPL 0 for nonconforming code");
        m.mem.write_u64(GDT + 8, m.gdt_entry(1) & !(1 << 40));
        assert_eq!(m.exec_bytes(&far(JMP, KCODE, 0x0012_3456)), Ok(Flow::Jump));
        assert_eq!((m.cpu.segment(Seg::Cs).selector, m.cpu.ctx.eip, m.cpu.cpl), (KCODE, 0x0012_3456, 0));
        assert_eq!(m.gdt_entry(1) >> 40 & 1, 1, "the accessed bit is set");
    }

    #[test]
    fn far_call_pushes_cs_and_the_return_address() {
        let mut m = machine();
        let call = far(CALL, KCODE, 0x0020_0000);
        assert_eq!(m.exec_bytes(&call), Ok(Flow::Jump));
        assert_eq!(m.cpu.gpr(4), STACK - 8);
        assert_eq!((m.mem.read_u32(STACK - 8), m.mem.read_u32(STACK - 4)), (CODE + call.len() as u32, KCODE as u32), "EIP below CS");
        // retf pops them back.
        m.cpu.ctx.eip = 0x0020_0000;
        assert_eq!(m.exec(|a| a.retf()), Ok(Flow::Jump));
        assert_eq!((m.cpu.ctx.eip, m.cpu.segment(Seg::Cs).selector, m.cpu.gpr(4)), (CODE + 7, KCODE, STACK));
    }

    #[test]
    fn retf_to_an_outer_level_switches_stacks_and_nulls_inner_data_segments() {
        let mut m = machine();
        m.cpu.set_segment(Seg::Ds, crate::cpu::SegmentCache::from_descriptor(KDATA, m.gdt_entry(2)));
        for v in [(UDATA | 3) as u32, 0x7000, (UCODE | 3) as u32, 0x0804_8000] {
            m.push(v); // SS, ESP, CS, EIP
        }
        assert_eq!(m.exec_bytes(&[0xCA, 0x00, 0x00]), Ok(Flow::Jump)); // retf 0
        assert_eq!(m.cpu.cpl, 3);
        assert_eq!((m.cpu.ctx.eip, m.cpu.gpr(4)), (0x0804_8000, 0x7000));
        assert_eq!(m.cpu.segment(Seg::Ss).selector, UDATA | 3);
        assert_eq!(m.cpu.segment(Seg::Ds).selector, 0, "DS held DPL 0 data: nulled");
        // Returning inward is a #GP(selector).
        let mut m = machine();
        m.enter_user();
        m.push(KCODE as u32);
        m.push(0x1000);
        assert_eq!(m.exec(|a| a.retf()), gp(KCODE as u32));
        assert_eq!(m.cpu.cpl, 3);
    }

    #[test]
    fn iret_at_cpl3_keeps_if_and_iopl() {
        let mut m = machine();
        m.enter_user();
        m.set_flags(IF);
        for v in [CF | IOPL3, (UCODE | 3) as u32, 0x0804_9000] {
            m.push(v); // EFLAGS, CS, EIP
        }
        assert_eq!(m.exec(|a| a.iretd()), Ok(Flow::Jump));
        assert_eq!(m.flags() & (CF | IF | IOPL3), CF | IF, "CF popped; IF and IOPL kept above CPL 0");
        assert_eq!((m.cpu.ctx.eip, m.cpu.gpr(4)), (0x0804_9000, STACK));
    }

    #[test]
    fn call_gates_check_dpl_and_switch_to_the_inner_stack() {
        let mut m = machine();
        m.enter_user();
        assert_eq!(m.exec_bytes(&far(CALL, GATE0, 0)), gp(GATE0 as u32), "gate DPL 0 < CPL 3");
        m.push(0xA1A1_A1A1); // the gate's one parameter
        let esp3 = m.cpu.gpr(4);
        let call = far(CALL, GATE3 | 3, 0xFFFF_FFFF); // the offset is ignored: the gate's counts
        assert_eq!(m.exec_bytes(&call), Ok(Flow::Jump));
        assert_eq!((m.cpu.cpl, m.cpu.ctx.eip, m.cpu.segment(Seg::Cs).selector), (0, 0x0040_1000, KCODE));
        assert_eq!(m.cpu.segment(Seg::Ss).selector, KDATA, "SS0 from the TSS");
        // The new stack holds, from ESP0 down: SS, ESP, the parameter, CS, EIP.
        let top = m.cpu.gpr(4);
        assert_eq!(top, 0x9000 - 20);
        let stack: Vec<u32> = (0..5).map(|i| m.mem.read_u32(top + 4 * i)).collect();
        assert_eq!(stack, [CODE + call.len() as u32, (UCODE | 3) as u32, 0xA1A1_A1A1, esp3, (UDATA | 3) as u32]);
        // A jmp through a gate cannot go inward.
        let mut m = machine();
        m.enter_user();
        assert_eq!(m.exec_bytes(&far(JMP, GATE3, 0)), gp(KCODE as u32));
    }

    #[test]
    fn sysenter_and_sysexit() {
        let mut m = machine();
        m.enter_user();
        assert_eq!(m.exec(|a| a.sysenter()), gp(0), "IA32_SYSENTER_CS = 0");
        m.cpu.msr.sysenter_cs = KCODE as u32;
        m.cpu.msr.sysenter_esp = 0x9000;
        m.cpu.msr.sysenter_eip = 0xC000_1000;
        m.set_flags(IF | CF);
        assert_eq!(m.exec(|a| a.sysenter()), Ok(Flow::Jump));
        assert_eq!((m.cpu.cpl, m.cpu.segment(Seg::Cs).selector, m.cpu.segment(Seg::Ss).selector), (0, KCODE, KCODE + 8));
        assert_eq!((m.cpu.ctx.eip, m.cpu.gpr(4)), (0xC000_1000, 0x9000));
        assert_eq!(m.flags() & (IF | CF), CF, "IF cleared, the rest kept");
        // sysexit: CS = SYSENTER_CS + 16, SS = + 24, both RPL 3; EIP = EDX, ESP = ECX.
        m.cpu.set_gpr(2, 0x0804_8123);
        m.cpu.set_gpr(1, 0xBFFF_F000);
        assert_eq!(m.exec(|a| a.sysexit()), Ok(Flow::Jump));
        assert_eq!((m.cpu.cpl, m.cpu.segment(Seg::Cs).selector, m.cpu.segment(Seg::Ss).selector), (3, UCODE | 3, UDATA | 3));
        assert_eq!((m.cpu.ctx.eip, m.cpu.gpr(4)), (0x0804_8123, 0xBFFF_F000));
        assert_eq!(m.exec(|a| a.sysexit()), gp(0), "sysexit at CPL 3");
        assert_eq!(m.exec(|a| a.syscall()), ud(), "the virtual CPU has no syscall");
    }

    #[test]
    fn enter_with_nesting_copies_frame_pointers() {
        let mut m = machine();
        // An outer frame at EBP = 0x7F00 whose display holds one pointer, 0x7E00, below it.
        m.cpu.set_gpr(5, 0x7F00);
        m.mem.write_u32(0x7F00 - 4, 0x7E00);
        assert_eq!(m.exec(|a| a.enter(16, 2)), Ok(Flow::Next));
        // push EBP; push [EBP-4]; push frame_temp; EBP = frame_temp; ESP -= 16.
        let frame = STACK - 4;
        assert_eq!(m.cpu.gpr(5), frame);
        assert_eq!(m.cpu.gpr(4), STACK - 12 - 16);
        assert_eq!([m.mem.read_u32(STACK - 4), m.mem.read_u32(STACK - 8), m.mem.read_u32(STACK - 12)], [0x7F00, 0x7E00, frame]);
    }
}
