//! The run loop: deliver pending interrupts, find (or translate) the code at CS:EIP,
//! run it, and handle whatever made it return — the data path of docs/architecture.md read in one
//! direction: exit → monitor handles the exit → back into the cache.

use std::fmt::Write;

use bt86_shadow_mmu::{Access, Mmu, Resolution, locate};
use bt86_translator::{CalloutKind, CodeMemory, CodePage, ExitReason, FetchFault, FragId, FragKey, Mode, Request, Seg, TranslateError};

use super::io::Ports;
use super::memory::TlbFlush;
use super::{Machine, Stop, stats};
use crate::cpu::emulate::{Env, Flow, emulate};
use crate::cpu::exceptions::EventKind;
use crate::cpu::{Exception, Vector};

/// Where to continue in the cache without a lookup. `host` lies in `fragment`, whose id
/// is checked before the run loop jumps there: a cache flush in between (any
/// translation may flush) makes the id, and with it `host`, stale.
#[derive(Clone, Copy)]
pub(super) struct Resume {
    pub(super) host: u64,
    pub(super) fragment: FragId,
}

/// Guest code as the translator reads it: fetched through the guest's page tables at
/// the privilege of the code.
pub struct Code<'a> {
    /// The guest's memory and page tables.
    pub mmu: &'a mut Mmu,
    /// Fetch as CPL 3 code (user pages only).
    pub user: bool,
}

impl CodeMemory for Code<'_> {
    fn code_page(&mut self, linear: u32) -> Result<CodePage, FetchFault> {
        let global = !self.mmu.regs().paging() || self.mmu.is_global(linear);
        match self.mmu.translate(linear, Access::fetch(self.user)) {
            Ok(phys) => Ok(CodePage { phys, global }),
            Err(_) => Err(FetchFault { linear }),
        }
    }

    fn read_phys(&self, phys: u64, buf: &mut [u8]) {
        self.mmu.ram.read(phys, buf)
    }
}

/// How often console input is looked at while the guest runs without a timer of its own.
const CONSOLE_POLL_NS: u64 = 20_000_000;

impl Machine {
    /// Runs the guest until it stops. A triple fault resets the machine, as on a PC
    /// (the CPU's shutdown cycle makes the chipset assert reset), unless `--no-reboot`
    /// asked for the run to end there; each such reset is one line on stderr, so a
    /// kernel that triple-faults at every boot shows as a stream of them.
    pub fn run(&mut self) -> Stop {
        // The signal handler finds the translator and context through these pointers;
        // `self` does not move while it runs.
        super::tc_signal::register(&self.translator, &mut self.cpu.ctx, Some(&mut self.mem.mmu));
        let stop = loop {
            match self.run_loop() {
                Stop::TripleFault(t, _) if !self.config.no_reboot => {
                    self.platform.flush();
                    let end = if crate::host::terminal::stdin_is_tty() { "\r\n" } else { "\n" };
                    eprint!("bt86: triple fault (the guest could not deliver {} even as a double fault): the machine resets{end}", t.last);
                    self.reset();
                }
                stop => break stop,
            }
        };
        super::tc_signal::unregister();
        if let Some(d) = &mut self.display {
            d.finish(&self.mem.mmu.ram, self.platform.cga());
        }
        stop
    }

    fn run_loop(&mut self) -> Stop {
        let mut resume: Option<Resume> = None;
        loop {
            self.watch_user_slice();
            if self.cpu.ctx.kick_async != 0 {
                self.cpu.ctx.kick_async = 0;
                self.cpu.ctx.disarm_kick();
                self.clock.fired();
                if let Some(stop) = self.service_devices() {
                    return stop;
                }
            }
            self.flush_dirty_code();
            if !self.cpu.nmi_blocked && self.platform.take_nmi() {
                // A non-maskable interrupt (from the local APIC): IF does not hold it.
                *self.stats.interrupts.entry(Vector::NMI).or_default() += 1;
                let eip = self.cpu.ctx.eip;
                if let Err(t) = self.cpu.raise(&mut self.mem, Exception::plain(Vector::NMI), EventKind::External, eip) {
                    return Stop::TripleFault(t, self.dump());
                }
                self.cpu.nmi_blocked = true;
                self.cpu.halted = false;
                resume = None;
            }
            if self.cpu.interrupt_shadow {
                self.cpu.interrupt_shadow = false;
            } else if self.cpu.interrupts_enabled() && self.platform.interrupt_pending() {
                let vector = self.platform.acknowledge_interrupt();
                *self.stats.interrupts.entry(vector).or_default() += 1;
                let eip = self.cpu.ctx.eip;
                if let Err(t) = self.cpu.raise(&mut self.mem, Exception::plain(vector), EventKind::External, eip) {
                    return Stop::TripleFault(t, self.dump());
                }
                self.cpu.halted = false;
                resume = None;
            }
            self.cpu.ctx.kick_sync = 0;
            self.cpu.ctx.irq_pending = self.platform.interrupt_pending() as u32;
            if self.cpu.halted {
                if let Some(stop) = self.wait_for_interrupt() {
                    return stop;
                }
                continue;
            }
            self.pass_on_tlb_flushes();
            if self.direct_eligible() {
                match self.run_direct() {
                    Ok(true) => {
                        resume = None;
                        continue;
                    }
                    Ok(false) => {}
                    Err(stop) => return stop,
                }
            }
            let mode = self.cpu.mode();
            self.translator.select_mode(&mut self.cpu.ctx, mode);
            let host = match resume.take() {
                Some(r) if self.resume_valid(r, mode) => r.host,
                _ => match self.dispatch(mode) {
                    Ok(Some(id)) => self.translator.fragment(id).body,
                    // The code fetch faulted: the #PF was delivered.
                    Ok(None) => continue,
                    Err(stop) => return stop,
                },
            };
            let start = if self.config.count_fragments { self.clock.now() } else { 0 };
            self.direct.native_last = false;
            let exit = self.translator.run(&mut self.cpu.ctx, host);
            self.cpu.sync_segment_swaps();
            if self.config.count_fragments {
                self.stats.translated_ns += self.clock.now().saturating_sub(start);
            }
            resume = match self.handle_exit(exit, mode) {
                Ok(r) => r,
                Err(stop) => return stop,
            };
        }
    }

    /// Tells the translator about changed guest translations (it drops what it reaches
    /// without a lookup: cross-page links, indirect-branch entries).
    fn pass_on_tlb_flushes(&mut self) {
        // (A CR3 write may have changed the windows in use.)
        let mmu = &self.mem.mmu;
        self.translator
            .set_windows(bt86_translator::WindowBases { user: mmu.translated_user_window().base(), kernel: mmu.kernel_window().base() });
        for f in std::mem::take(&mut self.mem.tlb_flushes) {
            match f {
                TlbFlush::All => self.translator.tlb_flush(true),
                TlbFlush::NonGlobal => {
                    // A CR3 write: what the new tables map to the same frames stays reachable.
                    let mmu = &self.mem.mmu;
                    self.translator.tlb_flush_keeping(false, |page, user| mmu.fetch_frame_cached(page, user))
                }
                TlbFlush::Page(p) => self.translator.tlb_flush_page(p),
                TlbFlush::Pages(first, n) => (first..first + n).for_each(|p| self.translator.tlb_flush_page(p)),
            }
        }
    }

    fn resume_valid(&self, r: Resume, mode: Mode) -> bool {
        self.translator.fragment_if_current(r.fragment).is_some_and(|f| f.valid && !f.parked && f.key.mode == mode)
    }

    /// The fragment for the current CS:EIP, translated if needed.
    fn dispatch(&mut self, mode: Mode) -> Result<Option<FragId>, Stop> {
        self.stats.dispatches += 1;
        self.fragment_at(mode, false)
    }

    /// The fragment for CS:EIP. `Ok(None)`: fetching the code faulted, and the #PF has
    /// been delivered.
    pub(super) fn fragment_at(&mut self, mode: Mode, transient: bool) -> Result<Option<FragId>, Stop> {
        let cs_base = self.cpu.segment(Seg::Cs).base;
        let linear = self.cpu.linear_eip();
        let user = self.cpu.cpl == 3;
        let phys = match self.mem.translate_fetch(linear, user) {
            Ok(p) => p,
            Err(pf) => return self.fault(pf.into()).map(|_| None),
        };
        let key = FragKey { linear, phys, cs_base, mode };
        if !transient && let Some(id) = self.translator.lookup(&key) {
            return Ok(Some(id));
        }
        if !transient && let Some(page) = self.translator.parked_second_page(&key) {
            // A straddling fragment a TLB flush set aside: still right if its last
            // instruction's tail comes from the same frame.
            let second = self.mem.mmu.code_phys(page.wrapping_mul(4096), user).ok().map(|p| p >> 12);
            if let Some(id) = self.translator.unpark(&key, second) {
                return Ok(Some(id));
            }
        }
        let req = Request { linear, eip: self.cpu.ctx.eip, cs_base, mode, transient };
        match self.translator.translate(&mut Code { mmu: &mut self.mem.mmu, user }, req) {
            Ok(id) => {
                if !transient {
                    let pages = self.translator.fragment(id).pages.clone();
                    for p in pages {
                        self.mem.mmu.protect_code_page(p);
                    }
                }
                Ok(Some(id))
            }
            Err(TranslateError::Fetch(f)) => {
                // The instruction runs into a page that is not mapped: #PF on its fetch.
                match self.mem.translate_fetch(f.linear, user) {
                    Err(pf) => self.fault(pf.into()).map(|_| None),
                    Ok(_) => Err(Stop::Unsupported(format!("cannot fetch code at linear {:#x}", f.linear), self.dump())),
                }
            }
            Err(TranslateError::Unsupported { eip, bytes, why }) => {
                let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
                Err(Stop::Unsupported(
                    format!("bt86 cannot translate the instruction at EIP {eip:#010x} ({}): {why}", hex.join(" ")),
                    self.dump(),
                ))
            }
        }
    }

    /// Invalidates translations of code pages the monitor itself wrote.
    fn flush_dirty_code(&mut self) {
        while let Some(p) = self.mem.mmu.dirty_code.pop() {
            self.stats.smc_invalidations += self.translator.invalidate_page(p) as u64;
            self.mem.mmu.unprotect_code_page(p);
        }
    }

    /// Lets the devices catch up with time, moves console input to the UART, and re-arms
    /// the host timer ([`Machine::arm_host_timer`]). A stop: the user quit.
    fn service_devices(&mut self) -> Option<Stop> {
        let now = self.clock.now();
        self.platform.update_timers(now);
        let request = self.console.pump(&mut self.platform, Some(now));
        if let Some(d) = &mut self.display {
            d.refresh(&self.mem.mmu.ram, self.platform.cga(), Some(now));
        }
        self.arm_host_timer(now);
        request.map(|super::console::Request::Quit| Stop::Ended("terminated (Ctrl-A x)".into()))
    }

    /// Arms the host timer for the devices' next deadline; at least every
    /// [`CONSOLE_POLL_NS`] while console input may come (so a busy guest without timers
    /// still gets it) or the text screen is drawn, and in `--user-exec adaptive` at least
    /// every long slice, so that the policy sees user code that runs long in a guest
    /// without timers (`direct::policy`).
    pub(super) fn arm_host_timer(&mut self, now: u64) {
        let mut deadline = self.platform.next_timer_deadline_ns();
        let mut at_least_every = |ns: u64| deadline = Some(deadline.map_or(now + ns, |d| d.min(now + ns)));
        if self.console.live() || self.display.is_some() {
            at_least_every(CONSOLE_POLL_NS);
        }
        // (Not while user code runs natively: there each tick would cost a round trip to
        // the stub, and the policy has nothing to promote; nor while the guest halts. The
        // tick's time moves on only once it has passed, so that re-arming for devices does
        // not move it, which would cost a host call each time.)
        if self.direct.policy.adaptive() && !self.direct.native_last && !self.cpu.halted {
            if self.direct.policy_tick <= now {
                self.direct.policy_tick = now + self.direct.policy.long_slice_ns();
            }
            let tick = self.direct.policy_tick;
            deadline = Some(deadline.map_or(tick, |d| d.min(tick)));
        }
        self.clock.arm(deadline);
    }

    /// `hlt`: sleeps until an interrupt can be delivered.
    fn wait_for_interrupt(&mut self) -> Option<Stop> {
        let start = self.clock.now();
        loop {
            if let Some(stop) = self.service_devices() {
                return Some(stop);
            }
            let nmi = !self.cpu.nmi_blocked && self.platform.nmi_pending();
            if nmi || (self.cpu.interrupts_enabled() && self.platform.interrupt_pending()) {
                self.cpu.halted = false;
                self.stats.halted_ns += self.clock.now() - start;
                return None;
            }
            if !self.cpu.interrupts_enabled() {
                if crate::loader::linux::is_bzimage(&self.image) {
                    // How Linux ends `halt` and `poweroff` on a PC it cannot power off.
                    return Some(Stop::Ended("the guest halted the CPU with interrupts off (Linux: halt or power-off)".into()));
                }
                return Some(Stop::Halted("the guest executed hlt with interrupts disabled; nothing can wake it".into(), self.dump()));
            }
            match self.platform.next_timer_deadline_ns() {
                Some(d) if self.console.live() => self.console.wait(Some(d.saturating_sub(self.clock.now()))),
                Some(d) => self.clock.sleep_until(d),
                // Console input may still come (its interrupt can wake the guest); the
                // host timer set by `service_devices` ends the wait to look again.
                None if self.console.live() => self.console.wait(None),
                None => {
                    return Some(Stop::Halted("the guest halted and no timer is running; nothing can wake it".into(), self.dump()));
                }
            }
            self.cpu.ctx.kick_async = 0;
        }
    }

    /// Delivers an exception raised by the instruction at EIP (a fault).
    pub(super) fn fault(&mut self, e: Exception) -> Result<Option<Resume>, Stop> {
        *self.stats.exceptions.entry(e.vector).or_default() += 1;
        let eip = self.cpu.ctx.eip;
        if e.vector == Vector::PF {
            // Where the handler's iret returns to retry the access (see `prefill`).
            self.page_fault_at = Some((eip, self.cpu.cpl));
        }
        match self.cpu.raise(&mut self.mem, e, EventKind::Exception, eip) {
            Ok(()) => Ok(None),
            Err(t) => Err(Stop::TripleFault(t, self.dump())),
        }
    }

    /// After an instruction completed under EFLAGS.TF: the single-step trap.
    pub(super) fn single_step_trap(&mut self) -> Result<Option<Resume>, Stop> {
        self.cpu.dr[6] |= 1 << 14;
        self.fault(Exception::plain(Vector::DB))
    }

    pub(super) fn handle_exit(&mut self, exit: ExitReason, mode: Mode) -> Result<Option<Resume>, Stop> {
        let ctx = &mut self.cpu.ctx;
        match exit {
            ExitReason::Kick => {
                self.stats.exit("kick");
                ctx.eip = ctx.exit_eip;
                let id = self.translator.fragment_of_exit(ctx);
                Ok(Some(Resume { host: self.translator.fragment(id).body, fragment: id }))
            }
            ExitReason::Chain => {
                self.stats.exit("unchained branch");
                ctx.eip = ctx.exit_eip;
                // Translating the target may flush the cache: `link` then names nothing
                // and linking it does nothing.
                let link = self.translator.link_of_exit(ctx);
                if mode.has(Mode::TRAP_FLAG) {
                    return self.single_step_trap();
                }
                let Some(id) = self.dispatch(mode)? else {
                    return Ok(None);
                };
                self.translator.link(link, id);
                Ok(Some(Resume { host: self.translator.fragment(id).body, fragment: id }))
            }
            ExitReason::IblMiss => {
                self.stats.exit("indirect-branch miss");
                ctx.eip = ctx.exit_eip;
                if mode.has(Mode::TRAP_FLAG) {
                    return self.single_step_trap();
                }
                let Some(id) = self.dispatch(mode)? else {
                    return Ok(None);
                };
                let eip = self.cpu.ctx.eip;
                self.translator.ibl_insert(eip, id);
                Ok(Some(Resume { host: self.translator.fragment(id).body, fragment: id }))
            }
            ExitReason::Callout => {
                self.stats.exit("callout");
                let c = *self.translator.callout(ctx.exit_arg);
                ctx.eip = c.eip;
                self.stats.callout(c.instr.mnemonic(), false);
                match c.kind {
                    CalloutKind::Raise(v, code) => self.fault(Exception { vector: v, error_code: code, cr2: None }),
                    CalloutKind::SingleStep => self.single_step_trap(),
                    CalloutKind::Emulate => self.emulate_callout(&c, mode),
                    CalloutKind::Device => self.device_callout(&c, mode),
                }
            }
            ExitReason::Interrupt => {
                self.stats.exit("interrupt window");
                ctx.eip = ctx.exit_eip;
                Ok(None)
            }
            ExitReason::Fault => {
                self.stats.exit("host fault");
                self.host_fault()
            }
        }
    }

    fn emulate_callout(&mut self, c: &bt86_translator::Callout, mode: Mode) -> Result<Option<Resume>, Stop> {
        self.mem.user = self.cpu.cpl == 3;
        let mut ports = Ports::new(&mut self.platform, &self.clock);
        let mut env = Env { mem: &mut self.mem, io: &mut ports, model: self.host_model };
        let result = emulate(&mut self.cpu, &mut env, &c.instr, c.next_eip);
        let devices_touched = ports.touched;
        if matches!(c.instr.mnemonic(), iced_x86::Mnemonic::Iret | iced_x86::Mnemonic::Iretd) {
            // The end of an NMI handler (if one ran) lets the next NMI in.
            self.cpu.nmi_blocked = false;
            // Returning from a #PF handler to retry the access, perhaps: map the page it
            // made present.
            let retry = self.page_fault_at.take() == Some((self.cpu.ctx.eip, self.cpu.cpl));
            self.mem.mmu.prefill(retry);
        }
        if devices_touched {
            // A device may have a new deadline (the PIT reprogrammed, the RTC's rate).
            self.arm_host_timer(self.clock.now());
        }
        let flow = match result {
            Ok(f) => f,
            Err(e) => return self.fault(e),
        };
        let continue_here = match flow {
            Flow::Next => true,
            Flow::Shadow => {
                self.cpu.interrupt_shadow = true;
                true
            }
            Flow::StackShadow => {
                self.cpu.interrupt_shadow = true;
                if mode.has(Mode::TRAP_FLAG) {
                    // The single-step trap waits for the next instruction too (and a
                    // single-step fragment of its own runs it).
                    return Ok(None);
                }
                true
            }
            Flow::Jump => false,
            Flow::Interrupt(vector, kind) => {
                *self.stats.exceptions.entry(vector).or_default() += 1;
                if let Err(t) = self.cpu.raise(&mut self.mem, Exception::plain(vector), kind, c.next_eip) {
                    return Err(Stop::TripleFault(t, self.dump()));
                }
                false
            }
            Flow::Halt => {
                self.cpu.halted = true;
                false
            }
            Flow::Exit(status) => return Err(Stop::Exit(status)),
            Flow::Reset if self.config.no_reboot => {
                return Err(Stop::Ended("the guest reset the machine (--no-reboot)".into()));
            }
            Flow::PowerOff => return Err(Stop::Ended("the guest powered the machine off (ACPI S5)".into())),
            Flow::Reset => {
                self.reset();
                return Ok(None);
            }
            Flow::Unsupported(why) => {
                return Err(Stop::Unsupported(format!("bt86 cannot execute the instruction at EIP {:#010x}: {why}", c.eip), self.dump()));
            }
        };
        if mode.has(Mode::TRAP_FLAG) && !matches!(flow, Flow::Jump | Flow::Interrupt(..)) {
            return self.single_step_trap();
        }
        Ok(match c.resume {
            Some(host) if continue_here && self.cpu.ctx.eip == c.next_eip => Some(Resume { host, fragment: c.fragment }),
            _ => None,
        })
    }

    /// A fault in translated code, its guest state already in the context.
    fn host_fault(&mut self) -> Result<Option<Resume>, Stop> {
        let f = self.cpu.ctx.fault;
        let internal = |m: &mut Machine, what: &str| {
            Stop::Unsupported(
                format!(
                    "internal error: {what} in translated code (signal {}, trap {}, error {:#x}, address {:#x}, host RIP {:#x})",
                    f.signo, f.trapno, f.err, f.addr, f.rip
                ),
                m.dump(),
            )
        };
        if f.signo == libc::SIGSEGV && self.translator.is_stack_guard(f.addr) {
            // The translated-code stack overflowed (guest calls that never return); the
            // exit emptied it, and the guest state is that after the call.
            self.stats.exit("translated-code stack overflow");
            return Ok(None);
        }
        match (f.signo, f.trapno) {
            (libc::SIGSEGV, 14) => {
                let write = f.err & 2 != 0;
                if locate(f.addr).is_none() {
                    return Err(internal(self, "page fault outside the guest windows"));
                }
                let resolution = match self.mem.mmu.resolve_fault(f.addr, write, false) {
                    Ok(r) => r,
                    // The host is out of memory or mappings: not a bug of bt86's.
                    Err(e) if e.host_refused() => return Err(Stop::Unsupported(format!("guest memory: {e}"), self.dump())),
                    Err(e) => return Err(internal(self, &format!("window: {e}"))),
                };
                match resolution {
                    Resolution::Handled => Ok(None),
                    Resolution::GuestFault(pf) => self.fault(pf.into()),
                    // Translated code never faults on a fetch from the window.
                    Resolution::Translate => Err(internal(self, "instruction fetch from the window")),
                    Resolution::Emulate(_) => {
                        self.stats.exit("device memory");
                        self.note_device_fault();
                        self.device_access(self.cpu.mode())
                    }
                    Resolution::CodeWrite(page) => {
                        // Self-modifying code: drop the page's translations, let the page
                        // be written, and run the store itself from a one-shot translation
                        // (a normal one would write-protect the page again).
                        self.stats.smc_faults += 1;
                        self.stats.smc_invalidations += self.translator.invalidate_page(page) as u64;
                        self.mem.mmu.unprotect_code_page(page);
                        let mode = self.cpu.mode();
                        self.translator.select_mode(&mut self.cpu.ctx, mode);
                        // User code: the one-shot runs before direct execution is tried
                        // again (natively, the store would find its frame executable once
                        // more, and fault back into translation, for ever).
                        self.direct.translate_once |= self.cpu.cpl == 3;
                        let Some(id) = self.fragment_at(mode, true)? else {
                            return Ok(None);
                        };
                        Ok(Some(Resume { host: self.translator.fragment(id).body, fragment: id }))
                    }
                }
            }
            (libc::SIGSEGV, 13) => self.fault(Exception::gp(0)),
            (libc::SIGBUS, 17) => self.fault(Exception::new(Vector::AC, 0)),
            (libc::SIGFPE, 0) => self.fault(Exception::plain(Vector::DE)),
            (libc::SIGFPE, 16) => self.fault(Exception::plain(Vector::MF)),
            (libc::SIGFPE, 19) => {
                if self.cpu.cr4 & crate::cpu::cr4::OSXMMEXCPT != 0 {
                    self.fault(Exception::plain(Vector::XM))
                } else {
                    self.fault(Exception::ud())
                }
            }
            (libc::SIGILL, _) => self.fault(Exception::ud()),
            _ => Err(internal(self, "unexpected signal")),
        }
    }

    /// Machine reset (the i8042 reset line, a triple fault): reload the kernel, restart
    /// the CPU; RAM keeps its contents, as on QEMU.
    fn reset(&mut self) {
        log::info!("machine reset: rebooting the kernel");
        self.translator.flush();
        self.mem.mmu.unprotect_all_code();
        let now = self.clock.now();
        self.platform.reset(now);
        if let Err(e) = self.boot() {
            log::error!("reset: {e}");
        }
        let mode = self.cpu.mode();
        self.translator.attach(&mut self.cpu.ctx, mode);
    }
}

/// The `--stats` report.
pub(super) fn stats_report(m: &Machine) -> String {
    let mut o = String::new();
    let t = m.translator.stats();
    let s = &m.stats;
    let _ = writeln!(o, "bt86 statistics");
    let _ = writeln!(o, "  translator:");
    let _ = writeln!(o, "    guest instructions translated {}", t.guest_instructions);
    let _ = writeln!(o, "    fragments                     {}", t.fragments);
    let _ =
        writeln!(o, "    TC bytes emitted              {} (in use {} of {})", t.tc_bytes, m.translator.tc_used(), m.translator.tc_size());
    let _ = writeln!(o, "    links patched (chained)       {}", t.links_patched);
    let _ = writeln!(o, "    indirect-branch inserts       {}", t.ibl_inserts);
    let _ = writeln!(o, "    invalidations / flushes       {} / {}", t.invalidations, t.flushes);
    let _ = writeln!(o, "    TLB-flush entries visited     {} (fragments kept by CR3 writes: {})", t.tlb_flush_visits, t.tlb_flush_kept);
    let _ = writeln!(o, "    straddling fragments parked   {} (taken back untranslated {})", t.straddlers_parked, t.straddlers_reused);
    let entries = m.cpu.ctx.fragment_entries;
    if entries > 0 {
        let unchained = s.dispatches;
        let _ = writeln!(
            o,
            "    fragment entries              {entries} ({} chained or looked up inline, {unchained} from the monitor)",
            entries.saturating_sub(unchained)
        );
    }
    let total: u64 = s.exits.values().sum();
    let _ = writeln!(o, "  exits to the monitor: {total}");
    stats::write_map(&mut o, "exits by reason", s.exits_sorted());
    stats::write_map(&mut o, "callouts by instruction", s.callouts_by_name());
    stats::write_map(&mut o, "exceptions delivered (vector)", s.exceptions.iter().map(|(k, v)| (*k, *v)));
    stats::write_map(&mut o, "interrupts delivered (vector)", s.interrupts.iter().map(|(k, v)| (*k, *v)));
    let _ = writeln!(o, "  self-modifying code: {} write faults, {} fragments invalidated", s.smc_faults, s.smc_invalidations);
    let _ = writeln!(o, "  string wrap-arounds fixed up: {}", super::tc_signal::STRING_WRAPS.load(std::sync::atomic::Ordering::Relaxed));
    let ms = m.mem.mmu.stats();
    let _ = writeln!(o, "  shadow MMU:");
    let _ = writeln!(o, "    hidden faults (filled)        {}", ms.hidden_faults);
    let _ = writeln!(o, "    true faults (#PF delivered)   {}", ms.true_faults);
    let _ = writeln!(o, "    pages filled                  {} (dirty-bit upgrades {})", ms.pages_filled, ms.dirty_upgrades);
    let _ = writeln!(
        o,
        "    flushes: invlpg {}, CR3 {} (of the value it held: {}), paging mode {}, full {}",
        ms.invlpg_flushes, ms.cr3_flushes, ms.cr3_reloads_revalidated, ms.mode_flushes, ms.full_flushes
    );
    let _ = writeln!(
        o,
        "    flushes that kept mappings    pages walked {} (guest entries changed, or a mode change), kept by the walks {}",
        ms.flush_pages_checked, ms.pages_revalidated
    );
    let _ = writeln!(o, "    pages mapped ahead            {} (after invlpg or a true fault)", ms.prefills);
    let _ = writeln!(
        o,
        "    address spaces kept           {} ({}; CR3 switches back to one kept: {}, to one not kept: {})",
        m.mem.mmu.kernel_windows(),
        match (m.mem.mmu.translated_user_window().index(), m.mem.mmu.native_window().index()) {
            (0, _) => "a kernel window each",
            (_, 0) => "a kernel window and a user window for translated code each",
            _ => "a kernel window and a user window each, the user window copied by a stub when code runs natively",
        },
        ms.kernel_window_returns,
        ms.kernel_window_reuses
    );
    let _ = writeln!(o, "    pages parked at flushes       {} (given back by mprotect, same frame: {})", ms.parked, ms.unparked);
    let _ = writeln!(
        o,
        "    host mappings (VMAs)          peak {} of a budget of {} (vm.max_map_count {})",
        ms.vma_peak, ms.vma_budget, ms.max_map_count
    );
    let _ = writeln!(
        o,
        "    evictions                     {} ({} fills, {} pages; {} host refusals)",
        ms.evictions, ms.fills_evicted, ms.pages_evicted, ms.host_refusals
    );
    let _ = writeln!(
        o,
        "    native code (W^X per frame)   {} writable mappings write-protected, {} writes took execute away (re-scanned at the next fetch)",
        ms.native_write_protects, ms.native_code_writes
    );
    let ws = m.mem.mmu.window_stats();
    let _ = writeln!(
        o,
        "    host calls: {} mmap, {} mprotect, {} unmap; {} code pages protected",
        ws.mmap_calls, ws.mprotect_calls, ws.unmap_calls, m.mem.mmu.pages_protected
    );
    let d = &m.direct;
    match &d.unavailable {
        Some(why) if m.config.user_exec != super::UserExec::Translate => {
            let _ = writeln!(o, "  direct execution: unavailable ({why})");
        }
        Some(_) => {
            let _ = writeln!(o, "  direct execution: off (--user-exec translate)");
        }
        None => {
            let exits: u64 = d.exits.values().sum();
            let _ = writeln!(
                o,
                "  direct execution: {} slices, {:.3} s native, {} shadow descriptor writes; user code translated at {} run-loop entries (pages promoted to native {}, demoted {})",
                d.slices,
                d.ns as f64 / 1e9,
                d.ldt.writes,
                d.policy.translated_entries,
                d.policy.promotions,
                d.policy.demotions
            );
            stats::write_map(&mut o, &format!("direct-execution exits ({exits}) by reason"), d.exits.iter().map(|(k, v)| (*k, *v)));
            match &d.sandbox {
                Some(sb) => {
                    let st = sb.stats;
                    let _ = writeln!(
                        o,
                        "  sandbox: {} stub processes started ({}), {} dropped for guest misbehaviour; {} switches between stubs; {} commands; host calls in stubs: {} mmap, {} munmap, {} modify_ldt",
                        st.stubs,
                        if m.mem.mmu.native_window().index() == 0 { "one at a time" } else { "one per address space kept" },
                        st.failures,
                        st.stub_switches,
                        st.commands,
                        st.mmaps,
                        st.munmaps,
                        st.ldt_writes
                    );
                }
                None => {
                    let _ = writeln!(o, "  sandbox: off (BT86_SANDBOX=off: guest user code runs inside bt86's own process)");
                }
            }
        }
    }
    let _ = writeln!(o, "  time in translated code: {:.3} s", s.translated_ns as f64 / 1e9);
    let _ = writeln!(o, "  time halted: {:.3} s", s.halted_ns as f64 / 1e9);
    let _ = writeln!(o, "  devices: {}", m.platform.stats());
    o
}
