//! Direct execution in the run loop: when guest user code may run natively, running it,
//! and turning each exit back into guest events.
//!
//! The rule (VMware's, adapted; docs/architecture.md), checked at every entry to the run loop: CPL 3,
//! virtual IF = 1, IOPL < 3, protected mode with paging, CR0.TS and EM clear (the host
//! would not raise the guest's #NM), every segment representable in the host LDT, and the
//! `--user-exec` policy agreeing. Code pages that cannot run
//! natively (they hold `sysenter`, `syscall` or `cpuid`, whose host behaviour is not the
//! virtual CPU's, see `bt86_shadow_mmu::NEVER_NATIVE`) fault on the fetch and run through
//! the translator; while a frame is natively executable, no mapping of it (in either
//! window) is writable, so it stays as checked.
//!
//! Guest code runs in the sandbox's stub process (`direct::sandbox`), or with
//! `BT86_SANDBOX=off` in this process (`direct::enter`). An exit is a host signal. In this
//! process hidden page faults never get here (the signal handler fills them and the guest
//! goes on); from a stub they arrive as page faults the shadow MMU fills. What a stub
//! reports is untrusted: a code segment the monitor did not install or a signal no guest
//! code raises means the code escaped the virtual CPU, and the guest process gets #GP. Everything else is sorted by signal and trap number into
//! what the guest CPU would have done: a #PF with CR2, `int n` (#GP with the IDT error
//! code), `int 0x80` (SIGSYS from the seccomp filter), #DE, #BP, #DB, #OF,
//! #MF/#XM, #AC, or — for anything the host CPU did not do as the guest's would
//! (privileged instructions, segment loads, accesses the user window cannot hold, code
//! that must not run natively) — the translator, which has the architectural answer,
//! until its next exit to the run loop.

use std::collections::BTreeMap;

use bt86_shadow_mmu::{Resolution, locate};
use bt86_translator::{Seg, flags};
use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic};

use super::{Machine, Stop, UserExec};
use crate::cpu::exceptions::EventKind;
use crate::cpu::{Exception, Vector, cr0};
use crate::direct::enter::{self, Exit, Regs, Selectors};
use crate::direct::host_ldt::{HostLdt, HostSelector};
use crate::direct::policy::Policy;
use crate::direct::sandbox::{RunFailure, Sandbox};
use crate::host::cpuid_faulting;
use crate::host::signals::USER_CS64;

/// The host's 32-bit user code selector (`__USER32_CS`): the CS the host kernel returns
/// to from its 32-bit SYSENTER and SYSCALL entries, and a GDT selector guest code could
/// far-jump to.
const HOST_USER32_CS: u16 = 0x23;

/// EFLAGS bits the host CPU keeps for the guest while it runs natively.
const NATIVE_FLAGS: u32 = flags::HOST_HELD | flags::TF | flags::AC;

/// Direct-execution state and counters.
pub struct Direct {
    /// Why direct execution is unavailable on this host (None: available).
    pub unavailable: Option<String>,
    /// The host LDT's shadow descriptors.
    pub ldt: HostLdt,
    /// Slices of native execution.
    pub slices: u64,
    /// Exits by reason.
    pub exits: BTreeMap<&'static str, u64>,
    /// The next run-loop pass translates (the last exit needs the translator).
    pub translate_once: bool,
    /// Which user code runs translated.
    pub policy: Policy,
    /// The guest segment registers of the last entry and their host selectors.
    last_selectors: Option<([crate::cpu::SegmentCache; 6], Selectors)>,
    /// Nanoseconds of native execution (measured with `--stats` or `adaptive`).
    pub ns: u64,
    /// The host traps user-mode `cpuid` during native slices (else pages holding it
    /// never run natively).
    pub cpuid_faulting: bool,
    /// The sandbox that runs guest user code in a stub process (None: in this process,
    /// `BT86_SANDBOX=off`, for measurements only).
    pub sandbox: Option<Sandbox>,
    /// The guest-physical code page the last native slice began at (adaptive only).
    entry_page: Option<u64>,
    /// The last guest code run ran natively (not through the translator).
    pub native_last: bool,
    /// When the host timer fires next for the adaptive policy (`Machine::arm_host_timer`).
    pub policy_tick: u64,
}

impl Direct {
    /// The state for `--user-exec` mode `mode`.
    pub fn new(mode: UserExec) -> Direct {
        Direct {
            unavailable: None,
            ldt: HostLdt::default(),
            slices: 0,
            exits: BTreeMap::new(),
            translate_once: false,
            policy: Policy::new(mode == UserExec::Adaptive),
            last_selectors: None,
            ns: 0,
            cpuid_faulting: false,
            sandbox: None,
            entry_page: None,
            native_last: false,
            policy_tick: 0,
        }
    }
}

/// What to do after an exit.
enum Next {
    /// A guest event (system call, exception) was delivered.
    Event,
    /// Back to the run loop, nothing for the guest (a timer, a page filled).
    Loop,
    /// Run the code at CS:EIP through the translator until it next exits to the run
    /// loop, then try natively again.
    Translate,
}

impl Machine {
    /// True if the current guest state may run natively.
    pub(super) fn direct_eligible(&mut self) -> bool {
        let c = &self.cpu;
        let want = self.config.user_exec != UserExec::Translate
            && self.direct.unavailable.is_none()
            && c.cpl == 3
            && c.protected()
            && c.cr0 & cr0::PG != 0
            // The host would not raise #NM for the guest's lazy FPU switching.
            && c.cr0 & (cr0::TS | cr0::EM) == 0
            && c.interrupts_enabled()
            && c.iopl() < 3
            && c.eflags() & flags::VM == 0
            && !c.halted;
        // A pass the last exit reserved for the translator.
        if !want || std::mem::take(&mut self.direct.translate_once) || self.direct.policy.translates_everything() {
            return false;
        }
        let page = self.code_page();
        self.direct.entry_page = page;
        match page {
            Some(page) => !self.direct.policy.translate_at(page),
            None => true,
        }
    }

    /// At the top of each run-loop pass, before interrupts are delivered: the adaptive
    /// policy measures user slices in translated code, and promotes the code page a long
    /// one is at (see `direct::policy`).
    pub(super) fn watch_user_slice(&mut self) {
        if !self.direct.policy.adaptive() {
            return;
        }
        let timer = self.cpu.ctx.kick_async != 0;
        let clock = &self.clock;
        if self.direct.policy.watch_slice(self.cpu.user_events, timer, self.cpu.cpl == 3, || clock.now())
            && let Some(page) = self.code_page()
        {
            log::debug!("adaptive: a long user slice at {:#x} (page {page:#x}) promotes it", self.cpu.linear_eip());
            self.direct.policy.promote(page);
        }
    }

    /// The guest-physical page of the code at CS:EIP (user fetch), if mapped.
    fn code_page(&mut self) -> Option<u64> {
        let linear = self.cpu.linear_eip();
        self.mem.mmu.code_phys(linear, true).ok().map(|p| p >> 12)
    }

    /// Runs guest user code natively until an exit that needs the monitor. `Ok(false)`:
    /// the state cannot run natively (a segment has no host equivalent); the caller
    /// translates instead.
    pub(super) fn run_direct(&mut self) -> Result<bool, Stop> {
        if let Some(sandbox) = self.direct.sandbox.as_mut() {
            match sandbox.ensure_stub(&mut self.mem.mmu, &mut self.direct.ldt) {
                Ok(()) => {}
                Err(e) => {
                    log::warn!("{e}; guest user code is translated from now on");
                    self.direct.unavailable = Some(e.to_string());
                    return Ok(false);
                }
            }
        }
        let Some(sel) = self.host_selectors() else {
            return Ok(false);
        };
        let guest_flags = self.cpu.eflags();
        let mut native = guest_flags & NATIVE_FLAGS;
        if self.cpu.cr0 & cr0::AM == 0 {
            native &= !flags::AC;
        }
        let regs = Regs { gpr: self.cpu.ctx.gpr, eip: self.cpu.ctx.eip, eflags: native | flags::IF | flags::FIXED1 };
        // Only the adaptive policy and --stats need the slice's length.
        let timed = self.direct.policy.adaptive() || self.config.count_fragments;
        let start = if timed { self.clock.now() } else { 0 };
        self.direct.slices += 1;
        self.direct.native_last = true;
        let exit = if self.direct.sandbox.is_some() {
            match self.run_in_sandbox(&regs, &sel)? {
                Some(exit) => exit,
                None => return Ok(true),
            }
        } else {
            // The timer may have fired since the run loop looked: its signal found no guest
            // code to stop, and a slice entered now could run on unstopped.
            // SAFETY: a volatile read of the context's kick word (set by the timer's handler).
            if unsafe { std::ptr::read_volatile(std::ptr::addr_of!(self.cpu.ctx.kick_async)) } != 0 {
                return Ok(true);
            }
            let fx = std::ptr::addr_of_mut!(self.cpu.ctx.guest_fx) as *mut u8;
            // SAFETY: `install` ran on this thread (cli::run), FSGSBASE and the seccomp filter
            // were checked when direct execution was enabled (`unavailable` is None), `sel`
            // holds host LDT selectors of shadow descriptors (HostLdt: DPL 3, in the user
            // window), and the context's FXSAVE image is aligned and outlives the call.
            if self.direct.cpuid_faulting {
                cpuid_faulting::set(true);
            }
            let exit = unsafe { enter::run(&regs, &sel, fx) };
            if self.direct.cpuid_faulting {
                cpuid_faulting::set(false);
            }
            exit
        };
        let ns = if timed { self.clock.now().saturating_sub(start) } else { 0 };
        self.direct.ns += ns;
        self.take_exit(exit, &sel, guest_flags, ns)?;
        Ok(true)
    }

    /// One slice in the sandbox's stub. None when the stub failed: then the guest
    /// process got #GP if its code was to blame (it escaped the virtual CPU: only code
    /// running as 64-bit code in the stub can make a stub fail), and a new stub takes
    /// over at the next entry.
    fn run_in_sandbox(&mut self, regs: &Regs, sel: &Selectors) -> Result<Option<Exit>, Stop> {
        let kick = std::ptr::addr_of!(self.cpu.ctx.kick_async);
        // SAFETY: reads the context's kick word, which the timer's signal handler sets
        // (a volatile read of an aligned u32 that outlives the call).
        let kicked = || unsafe { std::ptr::read_volatile(kick) } != 0;
        let d = &mut self.direct;
        let sandbox = d.sandbox.as_mut().expect("sandboxed");
        match sandbox.run(&mut self.mem.mmu, &mut d.ldt, regs, sel, &mut self.cpu.ctx.guest_fx.0, &kicked) {
            Ok(exit) => Ok(Some(exit)),
            Err(RunFailure::Guest(why)) => self.sandbox_violation(&why.to_string()).map(|_| None),
            Err(RunFailure::Host(why)) => {
                log::warn!("sandbox: {why}; starting a new stub");
                Ok(None)
            }
        }
    }

    /// Guest user code did something no guest code can do on the virtual CPU (it ran as
    /// 64-bit code in the stub: a far jump to the host's code selector). The stub is
    /// gone; the guest process gets #GP(0) in the state it entered the slice with.
    fn sandbox_violation(&mut self, what: &str) -> Result<(), Stop> {
        log::warn!(
            "sandbox: guest user code at EIP {:#010x} escaped the virtual CPU ({what}); the guest process gets #GP",
            self.cpu.ctx.eip
        );
        self.count_exit("sandbox violation");
        if let Some(s) = self.direct.sandbox.as_mut() {
            s.drop_stub();
        }
        self.deliver(Exception::gp(0))
    }

    /// The host selectors for the guest's six segment registers (mirroring the guest's
    /// LDT first), or None if one has no host equivalent.
    fn host_selectors(&mut self) -> Option<Selectors> {
        let ldt = self.guest_ldt_entries();
        let ldt_changed = match self.direct.ldt.mirror_guest_ldt(&ldt) {
            Ok(changed) => changed,
            Err(e) => {
                log::debug!("direct execution: guest LDT not mirrored: {e:?}");
                return None;
            }
        };
        // The shadows of the last entry still stand unless a segment register or an LDT
        // slot changed since.
        if let Some((segs, sel)) = self.direct.last_selectors
            && !ldt_changed
            && segs == self.cpu.seg
        {
            return Some(sel);
        }
        let mut sel = [0u16; 6];
        for s in Seg::ALL {
            match self.direct.ldt.selector_for(self.cpu.segment(s)) {
                Ok(h) => sel[s as usize] = h,
                Err(e) => {
                    log::debug!("direct execution: {s:?} not reversible: {e:?}");
                    self.direct.last_selectors = None;
                    return None;
                }
            }
        }
        self.direct.last_selectors = Some((self.cpu.seg, sel));
        Some(sel)
    }

    /// The guest's LDT descriptors (empty if LDTR is null or the table unreadable).
    fn guest_ldt_entries(&mut self) -> Vec<u64> {
        let l = self.cpu.ldtr;
        if l.selector & !3 == 0 || !l.present() {
            return Vec::new();
        }
        let n = ((l.limit as usize + 1) / 8).min(crate::direct::host_ldt::GDT_SLOTS as usize);
        let mut bytes = vec![0u8; n * 8];
        if self.mem.mmu.read(l.base, &mut bytes, false).is_err() {
            return Vec::new();
        }
        bytes.chunks_exact(8).map(|b| u64::from_le_bytes(b.try_into().unwrap())).collect()
    }

    /// Takes the guest state back from an exit and acts on it.
    fn take_exit(&mut self, exit: Exit, entry_sel: &Selectors, guest_flags: u32, ns: u64) -> Result<(), Stop> {
        let cs = exit.sel[Seg::Cs as usize];
        if self.direct.sandbox.is_some() && !self.direct.ldt.is_installed_code(cs) {
            // What a stub reports is untrusted: a CS the monitor never installed means
            // the code ran as something else (the host's 64-bit or 32-bit selector).
            return self.sandbox_violation(&format!("it exited with host code selector {cs:#x}"));
        }
        self.cpu.ctx.gpr = exit.regs.gpr;
        self.cpu.ctx.eip = exit.regs.eip;
        let keep = if self.cpu.cr0 & cr0::AM == 0 { NATIVE_FLAGS & !flags::AC } else { NATIVE_FLAGS };
        self.cpu.ctx.set_eflags((guest_flags & !keep) | (exit.regs.eflags & keep));
        // Code pages holding `sysenter` or `syscall` never run natively (see
        // `bt86_shadow_mmu::NEVER_NATIVE`), so the host's 32-bit system-call entries
        // (which return with the host's CS 0x23 and guest registers lost) are never
        // reached by guest code that stayed guest code.
        if cs == HOST_USER32_CS || cs == USER_CS64 {
            return Err(Stop::Unsupported(
                format!(
                    "guest user code switched to host code segment {cs:#x} (a far transfer to a GDT selector); direct execution cannot continue it (try --user-exec translate)"
                ),
                self.dump(),
            ));
        }
        if let Err(e) = self.sync_segments(&exit.sel, entry_sel) {
            self.count_exit("segment load");
            return self.deliver(e);
        }
        // The adaptive policy judges the page the slice began at.
        let page = self.direct.entry_page.take();
        match self.classify_exit(&exit)? {
            Next::Event => {
                if let Some(page) = page {
                    self.direct.policy.event_exit(page, ns);
                }
            }
            // A page the monitor filled is an exit too (in the sandbox, a round trip to the
            // stub and a mapping made there): short slices ending so also make a page hot.
            // The timer's exits end long slices, which is what native execution is for.
            Next::Loop if exit.signo != libc::SIGALRM => {
                if let Some(page) = page {
                    self.direct.policy.event_exit(page, ns);
                }
            }
            Next::Loop => {}
            Next::Translate => self.direct.translate_once = true,
        }
        Ok(())
    }

    /// Brings the guest's segment registers up to date with what the host CPU holds:
    /// registers guest code reloaded natively are loaded again, against the guest's own
    /// tables.
    fn sync_segments(&mut self, now: &Selectors, entry: &Selectors) -> Result<(), Exception> {
        for s in Seg::ALL {
            let h = now[s as usize];
            if h == entry[s as usize] || s == Seg::Cs {
                continue;
            }
            self.mem.user = false;
            let guest = match self.direct.ldt.classify(h) {
                HostSelector::Null(g) | HostSelector::GuestLdt(g) | HostSelector::GuestGdt(g) | HostSelector::HostGdt(g) => g,
            };
            if s == Seg::Ss {
                self.cpu.load_stack_segment(&mut self.mem, guest)?;
            } else {
                self.cpu.load_data_segment(&mut self.mem, s, guest)?;
            }
        }
        Ok(())
    }

    fn count_exit(&mut self, why: &'static str) {
        *self.direct.exits.entry(why).or_default() += 1;
    }

    /// Delivers exception `e` raised by the instruction at EIP.
    fn deliver(&mut self, e: Exception) -> Result<(), Stop> {
        self.fault(e).map(|_| ())
    }

    /// A software interrupt (`int n`, `int3`, `into`) whose instruction ends at EIP.
    fn software_interrupt(&mut self, vector: u8, len: u32) -> Result<(), Stop> {
        let next = self.cpu.ctx.eip;
        self.cpu.ctx.eip = next.wrapping_sub(len);
        *self.stats.exceptions.entry(vector).or_default() += 1;
        match self.cpu.raise(&mut self.mem, Exception::plain(vector), EventKind::Software, next) {
            Ok(()) => Ok(()),
            Err(t) => Err(Stop::TripleFault(t, self.dump())),
        }
    }

    /// The length of the instruction before EIP that raised `vector` as a trap: `int n`
    /// (CD n, 2 bytes) or the one-byte `int3`/`into`.
    fn software_interrupt_length(&mut self, vector: u8) -> u32 {
        let mut b = [0u8; 2];
        let at = self.cpu.linear_eip().wrapping_sub(2);
        if self.mem.peek(at, &mut b) && b == [0xCD, vector] { 2 } else { 1 }
    }

    /// Sorts an exit by what the guest CPU would have done.
    fn classify_exit(&mut self, e: &Exit) -> Result<Next, Stop> {
        use libc::{SIGALRM, SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGSYS, SIGTRAP};
        Ok(match (e.signo, e.trapno) {
            (SIGALRM, _) => {
                self.count_exit("timer");
                Next::Loop
            }
            (SIGSYS, _) => {
                // int 0x80 (the instruction is behind EIP; EAX still holds the number).
                self.count_exit("int 0x80");
                self.software_interrupt(0x80, 2)?;
                Next::Event
            }
            (SIGSEGV, 14) => return self.page_fault_exit(e),
            (SIGSEGV, 13) if e.err & 2 != 0 => {
                // #GP with an IDT error code: `int n` through a gate the host forbids.
                self.count_exit("int n");
                let vector = (e.err >> 3) as u8;
                self.cpu.ctx.eip = self.cpu.ctx.eip.wrapping_add(2);
                self.software_interrupt(vector, 2)?;
                Next::Event
            }
            (SIGSEGV, 4) => {
                self.count_exit("into");
                let len = self.software_interrupt_length(Vector::OF);
                self.software_interrupt(Vector::OF, len)?;
                Next::Event
            }
            (SIGSEGV, 5) => {
                self.count_exit("bound");
                self.deliver(Exception::plain(Vector::BR))?;
                Next::Event
            }
            (SIGTRAP, 3) => {
                self.count_exit("int3");
                let len = self.software_interrupt_length(Vector::BP);
                self.software_interrupt(Vector::BP, len)?;
                Next::Event
            }
            (SIGTRAP, 1) => {
                self.count_exit("single step");
                self.single_step_trap()?;
                Next::Event
            }
            (SIGFPE, 0) => {
                self.count_exit("divide error");
                self.deliver(Exception::plain(Vector::DE))?;
                Next::Event
            }
            (SIGFPE, 16) => {
                self.count_exit("x87 exception");
                self.deliver(Exception::plain(Vector::MF))?;
                Next::Event
            }
            (SIGFPE, 19) => {
                self.count_exit("SIMD exception");
                let v = if self.cpu.cr4 & crate::cpu::cr4::OSXMMEXCPT != 0 { Exception::plain(Vector::XM) } else { Exception::ud() };
                self.deliver(v)?;
                Next::Event
            }
            (SIGBUS, 17) if self.cpu.cr0 & cr0::AM != 0 => {
                self.count_exit("alignment check");
                self.deliver(Exception::new(Vector::AC, 0))?;
                Next::Event
            }
            (SIGSEGV | SIGBUS | SIGILL, _) => {
                // Privileged instructions, segment loads and limits, #UD: the translator
                // knows what the guest CPU does with this instruction.
                self.count_exit(match e.signo {
                    SIGILL => "invalid opcode",
                    _ => "general protection",
                });
                Next::Translate
            }
            _ if self.direct.sandbox.is_some() => {
                self.sandbox_violation(&format!("signal {}", e.signo))?;
                Next::Event
            }
            _ => {
                return Err(Stop::Unsupported(
                    format!("unexpected signal {} (trap {}) from directly executed guest code", e.signo, e.trapno),
                    self.dump(),
                ));
            }
        })
    }

    /// The instruction at CS:EIP, if its bytes can be read.
    fn instruction_at_eip(&mut self) -> Option<Instruction> {
        let at = self.cpu.linear_eip();
        let mut bytes = [0u8; 15];
        // An instruction may end just before an unmapped page: read what there is.
        let len = (1..=bytes.len()).rev().find(|&n| self.mem.peek(at, &mut bytes[..n]))?;
        let bitness = if self.cpu.segment(Seg::Cs).default_big() { 32 } else { 16 };
        let ins = Decoder::with_ip(bitness, &bytes[..len], self.cpu.ctx.eip as u64, DecoderOptions::NONE).decode();
        (!ins.is_invalid()).then_some(ins)
    }

    /// True if the instruction at CS:EIP transfers control to another code segment
    /// (`iret`, `retf`, far `jmp`/`call`). Hosts disagree on the order of such an
    /// instruction's checks — an AMD CPU reads the outer SS:ESP of an IRET frame before it
    /// checks the new CS's privilege, and so reports a page fault where Intel reports the
    /// #GP the guest's CPU must raise — so a fault of one is decided by the translator,
    /// which has the architectural order.
    fn far_transfer_at_eip(&mut self) -> bool {
        self.instruction_at_eip().is_some_and(|i| {
            matches!(i.mnemonic(), Mnemonic::Iret | Mnemonic::Iretd | Mnemonic::Retf)
                || i.is_jmp_far()
                || i.is_jmp_far_indirect()
                || i.is_call_far()
                || i.is_call_far_indirect()
        })
    }

    /// True if the instruction at CS:EIP may have its bytes on user page `page`, or on
    /// the guest-physical page `page` maps to (through another mapping of that frame).
    fn runs_from_page(&self, page: u32) -> bool {
        let at = self.cpu.linear_eip();
        let mmu = &self.mem.mmu;
        let frame = mmu.frame_of(page << 12);
        [at, at.wrapping_add(14)].into_iter().any(|a| a >> 12 == page || (frame.is_some() && mmu.frame_of(a) == frame))
    }

    /// A page fault the signal handler did not fill.
    fn page_fault_exit(&mut self, e: &Exit) -> Result<Next, Stop> {
        let (write, fetch) = (e.err & 2 != 0, e.err & 0x10 != 0);
        // Where the fault lies in the window the code runs from (the stub holds a copy of
        // it at the user window's place).
        let window = self.mem.mmu.native_window();
        let located = window.from_copy(e.fault_addr).map(|host| (host, locate(host)));
        let (host, linear) = match located {
            Some((host, Some((w, linear, false)))) if w == window => (host, linear),
            // Below what the host maps (guest linear 0 and up), the guard above the window
            // (the mirror page, or a host GDT segment guest code loaded natively), or
            // below it (guest linear 3 GiB and up, which the user window does not hold).
            _ => {
                self.count_exit("outside the user window");
                return Ok(Next::Translate);
            }
        };

        let resolution = match self.mem.mmu.resolve_fault(host, write, fetch) {
            Ok(r) => r,
            Err(err) if err.host_refused() => return Err(Stop::Unsupported(format!("guest memory: {err}"), self.dump())),
            Err(err) => return Err(Stop::Unsupported(format!("internal error: window: {err}"), self.dump())),
        };
        Ok(match resolution {
            Resolution::Handled if write && self.runs_from_page(linear >> 12) => {
                // A store into the page of its own instruction, or into its frame through
                // another mapping: the frame is writable now and no longer executable
                // (W^X per frame), so the store runs translated.
                self.count_exit("write to its own code page");
                Next::Translate
            }
            Resolution::Handled => {
                self.count_exit("page fault (filled)");
                Next::Loop
            }
            Resolution::GuestFault(_) if self.far_transfer_at_eip() => {
                self.count_exit("far transfer fault");
                Next::Translate
            }
            Resolution::GuestFault(pf) => {
                self.count_exit("page fault");
                self.deliver(pf.into())?;
                Next::Event
            }
            Resolution::Translate => {
                self.count_exit("code to translate");
                if let Some(page) = self.code_page() {
                    self.direct.policy.must_translate(page);
                }
                Next::Translate
            }
            Resolution::Emulate(_) => {
                self.count_exit("device memory");
                self.device_access(self.cpu.mode())?;
                Next::Loop
            }
            Resolution::CodeWrite(page) => {
                // Guest user code wrote a page holding translations: drop them and let
                // the write run again natively.
                self.count_exit("write to translated code");
                self.stats.smc_faults += 1;
                self.stats.smc_invalidations += self.translator.invalidate_page(page) as u64;
                self.mem.mmu.unprotect_code_page(page);
                Next::Loop
            }
        })
    }
}

/// True unless `BT86_SANDBOX=off` asks for direct execution inside this process (for
/// measuring what the sandbox costs; guest user code can then escape into bt86).
pub fn sandbox_wanted() -> bool {
    std::env::var("BT86_SANDBOX").map(|v| v != "off").unwrap_or(true)
}

/// Prepares the sandbox and starts one stub to see that this host can run it. Returns
/// why not, if it cannot.
pub fn prepare_sandbox(mmu: &bt86_shadow_mmu::Mmu, cpuid_faulting: bool, policy: &mut Policy) -> Result<Sandbox, String> {
    let mut sandbox = Sandbox::new(mmu.ram.fd(), cpuid_faulting).map_err(|e| e.to_string())?;
    let round_trip = sandbox.probe().map_err(|e| e.to_string())?;
    policy.set_exit_cost(round_trip);
    log::debug!(
        "sandbox: a round trip to a stub takes {round_trip} ns; adaptive native slices are short below {} ns, translated ones long from {} ns",
        policy.short_slice_ns(),
        policy.long_slice_ns()
    );
    Ok(sandbox)
}

/// Checks that this host can run guest code natively in this process and installs what
/// it needs (the seccomp filter). Returns why not, if it cannot.
pub fn prepare_host() -> Option<String> {
    if !bt86_translator::has_fsgsbase() {
        return Some("the host kernel does not allow rdfsbase/wrfsbase in user mode (FSGSBASE, Linux 5.9+)".into());
    }
    if let Err(e) = crate::direct::host_ldt::probe() {
        return Some(format!("the host LDT cannot be written (modify_ldt: {e})"));
    }
    if let Err(e) = crate::host::seccomp::install() {
        return Some(format!("the seccomp filter for guest system calls cannot be installed: {e}"));
    }
    None
}
