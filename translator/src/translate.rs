//! The translation driver: guest bytes → decode → classify → emit → cache.

use dynasmrt::DynasmApi;
use dynasmrt::dynasm;
use iced_x86::Instruction;

use crate::Translator;
use crate::classify::{Class, canonicalize, classify, ends_fragment};
use crate::context::off;
use crate::decode::{CodeMemory, CodeWindow, FetchFault, next_instruction};
use crate::emit::branch::ExitJump;
use crate::emit::{EmitError, Emitter};
use crate::fragment::{Callout, CalloutKind, FragId, FragKey, Fragment, Link};
use crate::mode::Mode;
use crate::trace;

/// What to translate.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    /// Guest linear address of the first instruction.
    pub linear: u32,
    /// Its EIP (offset in CS).
    pub eip: u32,
    /// CS base.
    pub cs_base: u32,
    /// Mode to translate for.
    pub mode: Mode,
    /// Translate exactly one instruction, make a one-shot fragment that is not entered in
    /// the lookup table, and do not report its code pages for write protection (used to
    /// re-execute a store that hit a write-protected code page).
    pub transient: bool,
}

/// Why a translation failed.
#[derive(Clone, Debug)]
pub enum TranslateError {
    /// Fetching the first instruction faults.
    Fetch(FetchFault),
    /// The first instruction cannot be translated.
    Unsupported {
        /// Its EIP.
        eip: u32,
        /// Its bytes.
        bytes: Vec<u8>,
        /// Why.
        why: String,
    },
}

/// Most guest instructions in one fragment.
const MAX_INSTRUCTIONS: usize = 64;

enum Attempt {
    Done(FragId),
    /// Instruction `index` (not the first) cannot be translated: retry with fewer.
    Shorten(usize),
    CacheFull,
}

impl Translator {
    /// Translates the block at `req` and returns the new fragment. The monitor looks up
    /// existing fragments first ([`Translator::lookup`]).
    pub fn translate(&mut self, mem: &mut dyn CodeMemory, req: Request) -> Result<FragId, TranslateError> {
        let window = CodeWindow::fetch(mem, req.linear, req.eip).map_err(TranslateError::Fetch)?;
        let mut limit = if req.transient || req.mode.has(Mode::TRAP_FLAG) { 1 } else { MAX_INSTRUCTIONS };
        let mut flushed = false;
        loop {
            match self.try_translate(&window, req, limit)? {
                Attempt::Done(id) => return Ok(id),
                Attempt::Shorten(n) => limit = n,
                Attempt::CacheFull if !flushed => {
                    self.flush();
                    flushed = true;
                }
                // Too big even for an empty cache (a small `--tc-size`): fewer
                // instructions. One instruction always fits in the smallest cache
                // allowed (MIN_TC_SIZE).
                Attempt::CacheFull if limit > 1 => limit = limit.div_ceil(2).min(limit - 1),
                Attempt::CacheFull => {
                    panic!("a single guest instruction does not fit in an empty translation cache")
                }
            }
        }
    }

    fn try_translate(&mut self, window: &CodeWindow, req: Request, limit: usize) -> Result<Attempt, TranslateError> {
        let frag_id = self.table.frag_id(self.table.frags.len() as u32);
        let base = self.tc.next_addr();
        let stubs = self.stubs;
        let mut em = Emitter::new(base, &stubs, req.mode, self.table.links.len() as u32, self.table.callouts.len() as u32);
        em.push_sreg = self.push_sreg;
        em.prologue(req.eip);
        let body_off = em.offset();
        if self.count_entries {
            dynasm!(em.ops
                ; .arch x64
                ; mov r11, QWORD [r15 + off::FRAGMENT_ENTRIES]
                ; lea r11, [r11 + 1]
                ; mov QWORD [r15 + off::FRAGMENT_ENTRIES], r11
            );
        }
        let mut dec = window.decoder(req.mode);
        let mut traced: Vec<(usize, Instruction)> = Vec::new();
        let mut pages = vec![window.pages[0].phys >> 12];
        let mut global = window.pages[0].global;
        let mut straddles = None;
        let mut straddle_phys = None;
        let mut shadow_pending = false; // after sti: one more instruction, then end
        let mut n = 0usize;
        let mut eip = req.eip;
        loop {
            let pos = window.offset_of(eip);
            if n > 0 && window.starts_past_first_page(pos) {
                em.flush_esp();
                em.exit_to(eip, ExitJump::Always);
                break;
            }
            let Some(mut ins) = next_instruction(&mut dec) else {
                if n == 0 {
                    return Err(TranslateError::Fetch(FetchFault { linear: window.linear_at(window.bytes().len()) }));
                }
                em.flush_esp();
                em.exit_to(eip, ExitJump::Always);
                break;
            };
            canonicalize(&mut ins);
            // An instruction that keeps faulting on device memory becomes a callout (not in
            // a one-shot translation: that is how the monitor runs it when it is not a move).
            let device = !req.transient && self.is_device_instruction(window.linear_at(pos));
            let class = if device { Class::Callout { resumable: true } } else { classify(&ins, req.mode) };
            em.exits_via_monitor =
                shadow_pending && (ends_fragment(class) || matches!(class, Class::Jcc | Class::Call | Class::CallIndirect));
            if needs_real_esp(class, &ins) {
                em.flush_esp();
            }
            em.begin(eip);
            traced.push((em.offset(), ins));
            let emitted = if device {
                em.callout(&ins, CalloutKind::Device, true);
                Ok(())
            } else {
                self.emit_instruction(&mut em, &ins, class)
            };
            if let Err(EmitError::Unsupported(why)) = emitted {
                if n == 0 {
                    let len = ins.len().max(1);
                    let bytes = window.bytes()[pos..(pos + len).min(window.bytes().len())].to_vec();
                    return Err(TranslateError::Unsupported { eip, bytes, why });
                }
                return Ok(Attempt::Shorten(n));
            }
            n += 1;
            if window.crosses_page(pos, ins.len()) && window.pages.len() > 1 {
                let second = window.pages[1];
                if !pages.contains(&(second.phys >> 12)) {
                    pages.push(second.phys >> 12);
                }
                global &= second.global;
                straddles = Some((req.linear >> 12).wrapping_add(1));
                straddle_phys = Some(second.phys >> 12);
            }
            eip = ins.next_ip32();
            // After `sti`, a call's exits go to the monitor and nothing returns here.
            let call_via_monitor = em.exits_via_monitor && matches!(class, Class::Call | Class::CallIndirect);
            if ends_fragment(class) || call_via_monitor {
                break;
            }
            if req.mode.has(Mode::TRAP_FLAG) {
                // Single-stepping: after the instruction, trap.
                em.flush_esp();
                em.begin(eip);
                em.callout(&ins, CalloutKind::SingleStep, false);
                break;
            }
            if class == Class::Sti && !shadow_pending {
                shadow_pending = true;
                continue;
            }
            let must_end = shadow_pending || class == Class::PopFlags || n >= limit || straddles.is_some();
            if must_end {
                em.flush_esp();
                if em.force_checked {
                    em.interrupt_window(eip);
                }
                em.exit_to(eip, ExitJump::Always);
                break;
            }
        }
        let guest_len = eip.wrapping_sub(req.eip);
        let stubs_off = em.offset() as u32;
        em.emit_exit_stubs();
        let faults = std::mem::take(&mut em.faults);
        let exits = std::mem::take(&mut em.exits);
        let callouts = std::mem::take(&mut em.callouts);
        let mut resume_offsets = Vec::with_capacity(callouts.len());
        for c in &callouts {
            resume_offsets.push(c.resume.map(|l| em.ops.labels().resolve_dynamic(l).map(|o| o.0).expect("resume label")));
        }
        let code = em.ops.finalize().expect("fragment assembly");
        if code.len() > self.tc.free() {
            return Ok(Attempt::CacheFull);
        }
        let at = self.tc.append(&code).expect("checked free space");
        debug_assert_eq!(at, base);

        let first_link = self.table.links.len() as u32;
        let exit_ids: Vec<_> = (0..exits.len() as u32).map(|i| self.table.link_id(first_link + i)).collect();
        for e in &exits {
            let stub = base + code_label_offset(&code, base, e.site_off);
            self.table.links.push(Link {
                site: base + e.site_off as u64,
                stub,
                from: frag_id,
                target_eip: e.target,
                checked: e.checked,
                to: None,
                chainable: e.chainable,
                cross_page: false,
            });
        }
        for (c, resume) in callouts.iter().zip(resume_offsets) {
            self.table.callouts.push(Callout {
                eip: c.eip,
                next_eip: c.next_eip,
                instr: c.instr,
                kind: c.kind,
                fragment: frag_id,
                resume: resume.map(|o| base + o as u64),
            });
        }
        let key = FragKey { linear: req.linear, phys: window.pages[0].phys, cs_base: req.cs_base, mode: req.mode };
        let frag = Fragment {
            key,
            eip: req.eip,
            guest_len,
            instructions: n as u32,
            pages: pages.clone(),
            straddles,
            straddle_phys,
            global,
            entry: base,
            body: base + body_off as u64,
            host_len: code.len() as u32,
            stubs_off,
            faults,
            exits: exit_ids,
            incoming: Vec::new(),
            cross_incoming: Vec::new(),
            ibl_slots: Vec::new(),
            valid: true,
            parked: false,
            reached: false,
            transient: req.transient,
        };
        if self.trace {
            eprint!("{}", trace::format_fragment(frag_id, &frag, &traced, &code, base));
        }
        if let Some(map) = &mut self.perf_map {
            use std::io::Write;
            let name = format!("guest cpl{} {:#010x}", req.mode.cpl(), req.linear);
            // A profiling aid: a failed write costs only names in perf's report.
            let _ = writeln!(map, "{base:x} {:x} {name}", code.len());
        }
        self.table.frags.push(frag);
        if straddles.is_some() {
            self.reach_add(frag_id);
        }
        if !req.transient {
            self.table.by_key.insert(key, frag_id);
            for p in &pages {
                self.table.by_page.entry(*p).or_default().push(frag_id);
            }
        }
        self.stats.fragments += 1;
        self.stats.guest_instructions += n as u64;
        self.stats.tc_bytes += code.len() as u64;
        Ok(Attempt::Done(frag_id))
    }

    fn emit_instruction(&mut self, em: &mut Emitter<'_>, ins: &Instruction, class: Class) -> Result<(), EmitError> {
        match class {
            Class::Ident => em.emit_ident(ins),
            Class::Nop => Ok(()),
            Class::IncDecShort => em.emit_incdec_short(ins),
            Class::Lea => em.emit_lea(ins),
            Class::Xlat => em.emit_xlat(ins),
            Class::Push => em.emit_push(ins),
            Class::PushSreg => em.emit_push_sreg(ins),
            Class::SregRead => em.emit_sreg_read(ins),
            Class::Cr2Read => em.emit_cr2_read(ins),
            Class::Pop => em.emit_pop(ins),
            Class::PushAll => em.emit_pusha(ins),
            Class::PopAll => em.emit_popa(ins),
            Class::PushFlags => em.emit_pushf(ins),
            Class::PopFlags => em.emit_popf(ins),
            Class::Enter => em.emit_enter(ins),
            Class::Leave => em.emit_leave(ins),
            Class::Jmp => em.emit_jmp(ins),
            Class::Jcc => em.emit_jcc(ins),
            Class::Loop => em.emit_loop(ins),
            Class::Call => em.emit_call(ins),
            Class::Ret => em.emit_ret(ins),
            Class::JmpIndirect => em.emit_jmp_indirect(ins),
            Class::CallIndirect => em.emit_call_indirect(ins),
            Class::StringOp => em.emit_string(ins),
            Class::Cli => {
                em.emit_cli();
                Ok(())
            }
            Class::Sti => {
                em.emit_sti();
                Ok(())
            }
            Class::Salc => {
                em.emit_salc();
                Ok(())
            }
            Class::Rdtsc => {
                em.emit_rdtsc();
                Ok(())
            }
            Class::SregLoad => em.emit_sreg_load(ins),
            Class::Callout { resumable } => {
                em.callout(ins, CalloutKind::Emulate, resumable);
                Ok(())
            }
            Class::Raise(vector, err) => {
                em.callout(ins, CalloutKind::Raise(vector, err), false);
                Ok(())
            }
        }
    }
}

/// True if the instruction needs R12D to be the guest's ESP (the pending lazy stack
/// adjustment applied first): it reads or writes ESP as a register, or it is handled
/// by the monitor. Pushes, pops and ESP-based memory operands take the pending
/// adjustment into account themselves; branches apply it before they leave.
fn needs_real_esp(class: Class, ins: &Instruction) -> bool {
    let esp_operand = (0..ins.op_count()).any(|i| {
        ins.op_kind(i) == iced_x86::OpKind::Register && matches!(ins.op_register(i), iced_x86::Register::ESP | iced_x86::Register::SP)
    });
    match class {
        Class::Push | Class::Pop | Class::Ident | Class::Lea | Class::IncDecShort | Class::SregRead | Class::Cr2Read => esp_operand,
        Class::Nop
        | Class::Cli
        | Class::Sti
        | Class::Salc
        | Class::Rdtsc
        | Class::Xlat
        | Class::StringOp
        | Class::PushFlags
        | Class::PopFlags
        | Class::PushSreg
        | Class::PopAll => false,
        Class::Jmp | Class::Jcc | Class::Loop | Class::Call | Class::Ret | Class::JmpIndirect | Class::CallIndirect => false,
        Class::PushAll | Class::Enter | Class::Leave | Class::SregLoad | Class::Callout { .. } | Class::Raise(..) => true,
    }
}

/// Host offset of the exit stub that the rel32 at `site_off` currently points to.
fn code_label_offset(code: &[u8], base: u64, site_off: usize) -> u64 {
    let rel = i32::from_le_bytes(code[site_off..site_off + 4].try_into().unwrap()) as i64;
    let _ = base;
    (site_off as i64 + 4 + rel) as u64
}
