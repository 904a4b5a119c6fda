//! Exceptions and interrupts: delivery through the guest's IDT (or the real-mode IVT),
//! with the double-fault and triple-fault rules.

use std::fmt;

use bt86_translator::{Seg, flags};

use super::Cpu;
use super::segments::{SegmentCache, SystemMemory};

/// Exception vectors (all of them, for reference; not every one is raised yet).
#[allow(missing_docs, dead_code)]
pub struct Vector;

#[allow(missing_docs, dead_code)]
impl Vector {
    pub const DE: u8 = 0;
    pub const DB: u8 = 1;
    pub const NMI: u8 = 2;
    pub const BP: u8 = 3;
    pub const OF: u8 = 4;
    pub const BR: u8 = 5;
    pub const UD: u8 = 6;
    pub const NM: u8 = 7;
    pub const DF: u8 = 8;
    pub const TS: u8 = 10;
    pub const NP: u8 = 11;
    pub const SS: u8 = 12;
    pub const GP: u8 = 13;
    pub const PF: u8 = 14;
    pub const MF: u8 = 16;
    pub const AC: u8 = 17;
    pub const MC: u8 = 18;
    pub const XM: u8 = 19;
}

/// A processor exception: vector and error code (for the vectors that have one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exception {
    /// Vector.
    pub vector: u8,
    /// Error code, pushed for #DF, #TS, #NP, #SS, #GP, #PF, #AC.
    pub error_code: Option<u32>,
    /// For #PF: the faulting linear address, loaded into CR2 when the fault is raised.
    pub cr2: Option<u32>,
}

impl Exception {
    /// An exception with an error code.
    pub fn new(vector: u8, code: u32) -> Exception {
        Exception { vector, error_code: Some(code), cr2: None }
    }

    /// An exception without an error code.
    pub fn plain(vector: u8) -> Exception {
        Exception { vector, error_code: None, cr2: None }
    }

    /// #GP(code).
    pub fn gp(code: u32) -> Exception {
        Exception::new(Vector::GP, code)
    }

    /// #UD.
    pub fn ud() -> Exception {
        Exception::plain(Vector::UD)
    }

    fn contributory(self) -> bool {
        matches!(self.vector, Vector::DE | Vector::TS | Vector::NP | Vector::SS | Vector::GP)
    }

    /// Short name, for messages.
    pub fn name(self) -> &'static str {
        const NAMES: [&str; 20] = [
            "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "#15", "#MF", "#AC",
            "#MC", "#XM",
        ];
        NAMES.get(self.vector as usize).copied().unwrap_or("interrupt")
    }
}

impl fmt::Display for Exception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error_code {
            Some(c) => write!(f, "{}({:#x})", self.name(), c),
            None => write!(f, "{} (vector {})", self.name(), self.vector),
        }
    }
}

/// What is being delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A processor exception.
    Exception,
    /// `int n`, `int3`, `into`: the gate's DPL is checked against CPL.
    Software,
    /// An external (hardware) interrupt: error codes of faults during delivery get EXT.
    External,
}

/// The guest could not deliver an exception even through #DF: the CPU shuts down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TripleFault {
    /// The exception that could not be delivered.
    pub last: Exception,
}

impl Cpu {
    /// Delivers an event through the IDT; on a fault during delivery applies the
    /// double-fault rules. `return_eip` is the EIP pushed (the faulting instruction for
    /// faults, the next one for traps and software interrupts).
    pub fn raise(&mut self, mem: &mut dyn SystemMemory, e: Exception, kind: EventKind, return_eip: u32) -> Result<(), TripleFault> {
        if kind != EventKind::External && self.cpl == 3 {
            self.user_events += 1;
        }
        let mut first = e;
        let mut kind = kind;
        // A fault while delivering is reported at the instruction (EIP has not moved
        // yet): for a software interrupt, at the `int`, not after it.
        let fault_eip = self.ctx.eip;
        let mut return_eip = return_eip;
        for _ in 0..3 {
            if let Some(addr) = first.cr2 {
                self.ctx.cr2 = addr;
            }
            match self.deliver(mem, first.vector, first.error_code, kind, return_eip) {
                Ok(()) => return Ok(()),
                Err(second) => {
                    if first.vector == Vector::DF {
                        return Err(TripleFault { last: second });
                    }
                    let df = (first.contributory() && second.contributory())
                        || (first.vector == Vector::PF && (second.contributory() || second.vector == Vector::PF));
                    first = if df { Exception::new(Vector::DF, 0) } else { second };
                    kind = EventKind::Exception;
                    return_eip = fault_eip;
                }
            }
        }
        Err(TripleFault { last: first })
    }

    /// Delivers one event; an `Err` is a new exception raised while delivering.
    fn deliver(
        &mut self,
        mem: &mut dyn SystemMemory,
        vector: u8,
        error_code: Option<u32>,
        kind: EventKind,
        return_eip: u32,
    ) -> Result<(), Exception> {
        if !self.protected() {
            return self.deliver_real_mode(mem, vector, return_eip);
        }
        let ext = if kind == EventKind::External { 1 } else { 0 };
        let idt_err = (vector as u32) * 8 + 2 + ext;
        if (vector as u32) * 8 + 7 > self.idtr.limit as u32 {
            return Err(Exception::gp(idt_err));
        }
        let gate = mem.read_sys_u64(self.idtr.base.wrapping_add(vector as u32 * 8))?;
        let offset = (gate as u32 & 0xFFFF) | ((gate >> 32) as u32 & 0xFFFF_0000);
        let selector = (gate >> 16) as u16;
        let attr = (gate >> 40) as u8;
        let gate_type = attr & 0x1F;
        let gate_dpl = (attr >> 5) & 3;
        let is32 = match gate_type {
            0x0E | 0x0F => true,
            0x06 | 0x07 => false,
            0x05 => {
                log::warn!("task gates are not supported (vector {vector})");
                return Err(Exception::gp(idt_err));
            }
            _ => return Err(Exception::gp(idt_err)),
        };
        let trap_gate = gate_type & 1 != 0;
        if kind == EventKind::Software && gate_dpl < self.cpl {
            return Err(Exception::gp(idt_err));
        }
        if attr & 0x80 == 0 {
            return Err(Exception::new(super::Vector::NP, idt_err));
        }
        // Target code segment.
        let sel_err = (selector as u32 & 0xFFFC) | ext;
        if selector & !3 == 0 {
            return Err(Exception::gp(ext));
        }
        let d = self.read_descriptor(mem, selector)?.ok_or(Exception::gp(sel_err))?;
        let cs = SegmentCache::from_descriptor(selector, d.raw);
        if !cs.is_code() || cs.dpl() > self.cpl {
            return Err(Exception::gp(sel_err));
        }
        if !cs.present() {
            return Err(Exception::new(Vector::NP, sel_err));
        }
        let new_cpl = if cs.is_conforming() { self.cpl } else { cs.dpl() };
        let old_eflags = self.eflags();
        let old_cs = self.segment(Seg::Cs).selector;
        let old_ss = self.segment(Seg::Ss).selector;
        let old_esp = self.gpr(4);
        let size = if is32 { 4 } else { 2 };

        let (ss_cache, mut esp, outer) = if new_cpl < self.cpl {
            // Inner privilege: the stack comes from the TSS.
            let (ss_sel, esp0) = self.tss_stack(mem, new_cpl, ext)?;
            let ss_err = (ss_sel as u32 & 0xFFFC) | ext;
            if ss_sel & !3 == 0 {
                return Err(Exception::new(Vector::TS, ext));
            }
            let sd = self.read_descriptor(mem, ss_sel)?.ok_or(Exception::new(Vector::TS, ss_err))?;
            let ss = SegmentCache::from_descriptor(ss_sel, sd.raw);
            if (ss_sel & 3) as u8 != new_cpl || ss.dpl() != new_cpl || !ss.writable_data() {
                return Err(Exception::new(Vector::TS, ss_err));
            }
            if !ss.present() {
                return Err(Exception::new(Vector::SS, ss_err));
            }
            (ss, esp0, true)
        } else {
            (*self.segment(Seg::Ss), old_esp, false)
        };
        let ss_base = ss_cache.base;
        let big_stack = ss_cache.default_big();
        let mut push = |mem: &mut dyn SystemMemory, v: u32| -> Result<(), Exception> {
            esp = if big_stack { esp.wrapping_sub(size) } else { (esp & 0xFFFF_0000) | (esp.wrapping_sub(size) & 0xFFFF) };
            let off = if big_stack { esp } else { esp & 0xFFFF };
            let addr = ss_base.wrapping_add(off);
            let r = if size == 4 { mem.write_sys(addr, &v.to_le_bytes()) } else { mem.write_sys(addr, &(v as u16).to_le_bytes()) };
            r.map_err(|e| if e.vector == Vector::PF { e } else { Exception::new(Vector::SS, ext) })
        };
        if outer {
            push(mem, old_ss as u32)?;
            push(mem, old_esp)?;
        }
        push(mem, old_eflags)?;
        push(mem, old_cs as u32)?;
        push(mem, return_eip)?;
        if let Some(code) = error_code {
            push(mem, code)?;
        }
        // Committed: nothing below can fault.
        if outer {
            self.set_segment(Seg::Ss, SegmentCache { access: ss_cache.access | 1, ..ss_cache });
        }
        self.cpl = new_cpl;
        self.set_segment(Seg::Cs, SegmentCache { selector: (selector & !3) | new_cpl as u16, access: cs.access | 1, ..cs });
        self.set_gpr(4, esp);
        let mut fl = old_eflags & !(flags::TF | flags::NT | flags::RF | flags::VM);
        if !trap_gate {
            fl &= !flags::IF;
        }
        self.ctx.set_eflags(fl);
        self.ctx.eip = if is32 { offset } else { offset & 0xFFFF };
        if outer {
            self.null_inaccessible_segments();
        }
        self.halted = false;
        Ok(())
    }

    /// SS:ESP for privilege level `cpl` from the current 32-bit TSS.
    pub fn tss_stack(&self, mem: &mut dyn SystemMemory, cpl: u8, ext: u32) -> Result<(u16, u32), Exception> {
        let off = 4 + 8 * cpl as u32;
        if off + 5 > self.tr.limit {
            return Err(Exception::new(Vector::TS, (self.tr.selector as u32 & 0xFFFC) | ext));
        }
        let esp = mem.read_sys_u32(self.tr.base.wrapping_add(off))?;
        let ss = mem.read_sys_u16(self.tr.base.wrapping_add(off + 4))?;
        Ok((ss, esp))
    }

    fn deliver_real_mode(&mut self, mem: &mut dyn SystemMemory, vector: u8, return_eip: u32) -> Result<(), Exception> {
        if vector as u32 * 4 + 3 > self.idtr.limit as u32 {
            return Err(Exception::gp(0));
        }
        let ent = mem.read_sys_u32(self.idtr.base.wrapping_add(vector as u32 * 4))?;
        let fl = self.eflags();
        let ss_base = self.segment(Seg::Ss).base;
        let mut sp = self.gpr(4) as u16;
        for v in [fl as u16, self.segment(Seg::Cs).selector, return_eip as u16] {
            sp = sp.wrapping_sub(2);
            mem.write_sys(ss_base.wrapping_add(sp as u32), &v.to_le_bytes())?;
        }
        self.set_gpr(4, (self.gpr(4) & 0xFFFF_0000) | sp as u32);
        self.ctx.set_eflags(fl & !(flags::IF | flags::TF | flags::AC));
        let cs = super::segments::real_mode_segment((ent >> 16) as u16, *self.segment(Seg::Cs));
        self.set_segment(Seg::Cs, cs);
        self.ctx.eip = ent & 0xFFFF;
        self.halted = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! Event delivery against the SDM (Vol. 3A, 6.12 "Exception and interrupt handling",
    //! 6.13 error codes, 6.15 interrupt 8 with table 6-5 for which pairs make a double
    //! fault, and the shutdown after a fault during a double fault's delivery).
    use super::*;
    use crate::cpu::emulate::testing::*;

    const HANDLER: u32 = 0x4000;
    const ESP0: u32 = 0x9000;

    /// Kernel state with IF = 1, a TSS whose ring-0 stack is KDATA:ESP0, and an IDT with
    /// the given vectors' interrupt gates (DPL 0, to HANDLER + vector).
    fn machine(vectors: &[u8]) -> Machine {
        let mut m = Machine::with_gdt(&[seg_desc(TSS, 0x67, 0x8B, 0)]);
        m.cpu.tr = SegmentCache::from_descriptor(0x28, m.gdt_entry(5));
        m.mem.write_u32(TSS + 4, ESP0);
        m.mem.write_u16(TSS + 8, KDATA);
        let gates: Vec<(u8, u64)> = vectors.iter().map(|&v| (v, gate(KCODE, HANDLER + v as u32, 0, false))).collect();
        m.idt(&gates);
        m.set_flags(IF | CF);
        m
    }

    /// Raises `e` as the instruction at CODE does (its return address: CODE too).
    fn raise(m: &mut Machine, e: Exception, kind: EventKind) -> Result<(), TripleFault> {
        m.cpu.ctx.eip = CODE;
        m.cpu.raise(&mut m.mem, e, kind, CODE)
    }

    fn stack(m: &Machine, n: u32) -> Vec<u32> {
        (0..n).map(|i| m.mem.read_u32(m.cpu.gpr(4) + 4 * i)).collect()
    }

    #[test]
    fn a_fault_at_cpl0_pushes_flags_cs_eip_and_the_error_code() {
        let mut m = machine(&[Vector::GP]);
        assert_eq!(raise(&mut m, Exception::gp(0x10), EventKind::Exception), Ok(()));
        assert_eq!((m.cpu.ctx.eip, m.cpu.segment(Seg::Cs).selector), (HANDLER + 13, KCODE));
        assert_eq!(m.cpu.gpr(4), STACK - 16, "no stack switch at the same privilege");
        assert_eq!(stack(&m, 4), [0x10, CODE, KCODE as u32, IF | CF | 2]);
        assert_eq!(m.flags() & (IF | CF), CF, "an interrupt gate clears IF");
    }

    #[test]
    fn from_cpl3_the_tss_gives_the_stack_and_a_trap_gate_keeps_if() {
        let mut m = machine(&[]);
        m.idt(&[(0x80, gate(KCODE, HANDLER, 3, true))]);
        m.enter_user();
        m.set_flags(IF);
        m.cpu.set_gpr(4, 0x7000);
        assert_eq!(raise(&mut m, Exception::plain(0x80), EventKind::Software), Ok(()));
        assert_eq!((m.cpu.cpl, m.cpu.segment(Seg::Ss).selector, m.cpu.gpr(4)), (0, KDATA, ESP0 - 20));
        assert_eq!(stack(&m, 5), [CODE, (UCODE | 3) as u32, IF | 2, 0x7000, (UDATA | 3) as u32], "EIP CS EFLAGS ESP SS");
        assert_ne!(m.flags() & IF, 0);
    }

    #[test]
    fn int_n_through_a_more_privileged_gate_is_gp_with_the_idt_bit() {
        let mut m = machine(&[Vector::GP, 0x30]);
        m.enter_user();
        assert_eq!(raise(&mut m, Exception::plain(0x30), EventKind::Software), Ok(()));
        assert_eq!(m.cpu.ctx.eip, HANDLER + 13);
        assert_eq!(stack(&m, 1), [0x30 * 8 + 2], "error code: vector << 3 | IDT");
        // An exception through the same DPL 0 gate is fine (the DPL check is for int n).
        let mut m = machine(&[0x30]);
        m.enter_user();
        assert_eq!(raise(&mut m, Exception::plain(0x30), EventKind::Exception), Ok(()));
        assert_eq!(m.cpu.ctx.eip, HANDLER + 0x30);
    }

    #[test]
    fn missing_beyond_limit_and_absent_gates() {
        // An entry that holds no gate: #GP(vector << 3 | IDT | EXT).
        let mut m = machine(&[Vector::GP]);
        assert_eq!(raise(&mut m, Exception::plain(0x21), EventKind::External), Ok(()));
        assert_eq!(stack(&m, 1), [0x21 * 8 + 2 + 1], "an external interrupt sets EXT");
        // Beyond the IDT's limit: the same #GP.
        let mut m = machine(&[Vector::GP]);
        m.cpu.idtr.limit = 0x7F; // vectors 0..15
        assert_eq!(raise(&mut m, Exception::plain(0x20), EventKind::Software), Ok(()));
        assert_eq!(stack(&m, 1), [0x20 * 8 + 2]);
        // A gate with P = 0: #NP(vector << 3 | IDT).
        let mut m = machine(&[Vector::NP]);
        m.mem.write_u64(IDT + 8 * 0x40, gate(KCODE, HANDLER, 0, false) & !(0x80 << 40));
        assert_eq!(raise(&mut m, Exception::plain(0x40), EventKind::Exception), Ok(()));
        assert_eq!((m.cpu.ctx.eip, stack(&m, 1)[0]), (HANDLER + 11, 0x40 * 8 + 2));
    }

    #[test]
    fn a_benign_fault_then_a_contributory_one_is_no_double_fault() {
        // #UD (benign) cannot be delivered: the #GP it raises is delivered as itself.
        let mut m = machine(&[Vector::GP, Vector::DF]);
        assert_eq!(raise(&mut m, Exception::ud(), EventKind::Exception), Ok(()));
        assert_eq!((m.cpu.ctx.eip, stack(&m, 1)[0]), (HANDLER + 13, 6 * 8 + 2));
    }

    #[test]
    fn two_contributory_faults_make_a_double_fault_with_error_code_0() {
        let mut m = machine(&[Vector::DF]);
        assert_eq!(raise(&mut m, Exception::gp(0), EventKind::Exception), Ok(()));
        assert_eq!(m.cpu.ctx.eip, HANDLER + 8);
        assert_eq!(stack(&m, 2), [0, CODE], "#DF pushes 0, and reports the faulting instruction");
    }

    #[test]
    fn a_fault_while_delivering_a_double_fault_is_a_triple_fault() {
        let mut m = machine(&[]);
        let esp = m.cpu.gpr(4);
        assert_eq!(raise(&mut m, Exception::gp(0), EventKind::Exception), Err(TripleFault { last: Exception::gp(8 * 8 + 2) }));
        assert_eq!((m.cpu.ctx.eip, m.cpu.gpr(4)), (CODE, esp), "no frame was committed");
    }
}
