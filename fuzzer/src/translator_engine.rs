//! The binary translator as a fuzzer engine: runs a case through `bt86-translator` at
//! CPL 3 (IF = 1, IOPL = 0), exactly as the native engine runs it in compatibility mode,
//! so the host CPU's results are the expected ones.
//!
//! A small run loop of its own (no devices, no interrupts): dispatch, chain, look up
//! indirect targets, emulate callouts. Every exception ends the case instead of being
//! delivered, and software interrupts follow the host kernel's IDT (only `int3` and
//! `into` are allowed at CPL 3, anything else is #GP((n << 3) | 2)).

use bt86_shadow_mmu::{PAGE_SIZE, locate};
use bt86_translator::{CalloutKind, DEFAULT_TC_SIZE, ExitReason, FragKey, Request, Seg, Translator, flags};

use super::engine::{CODE_BASE, CODE_MAX, Case, CpuSnapshot, Engine, GuestMemory, Outcome, has_error_code};
use bt86::harness::Code;
use bt86::harness::cpu::{Cpu, Env, Exception, Flow, IoEffect, PortIo, SegmentCache, Vector, cr0, cr4, emulate};
use bt86::harness::host_model::{self, HostModel};
use bt86::harness::native::{FlatSelectors, ldt};
use bt86::harness::{signals, tc_signal};

/// No devices: every port reads all-ones. (At CPL 3 with IOPL 0 the emulator raises #GP
/// before any port is touched.)
struct NoPorts;

impl PortIo for NoPorts {
    fn io_in(&mut self, _port: u16, _size: u8) -> u32 {
        u32::MAX
    }
    fn io_out(&mut self, _port: u16, _size: u8, _value: u32) -> IoEffect {
        IoEffect::None
    }
}

/// The selectors the native engine's guest code has ((`bt86::harness::native::install_flat`)).
const NATIVE_SELECTORS: FlatSelectors =
    FlatSelectors { code: ldt::ldt_selector(ldt::FLAT_CODE_INDEX), data: ldt::ldt_selector(ldt::FLAT_DATA_INDEX) };

/// Guest-physical address of the translator engine's guest LDT: in RAM, above the
/// case's code and outside the compared data region.
const GUEST_LDT: u32 = 0x0018_0000;
/// LDTR's selector: any non-null one (no GDT is ever read; LDTR's cache is set directly).
const GUEST_LDT_SELECTOR: u16 = 0x28;
/// A flat 4 GiB, 32-bit, DPL-3 execute/read code descriptor (accessed).
const FLAT_CODE_DPL3: u64 = 0x00CF_FB00_0000_FFFF;
/// A flat 4 GiB, 32-bit, DPL-3 read/write data descriptor (accessed).
const FLAT_DATA_DPL3: u64 = 0x00CF_F300_0000_FFFF;

/// The translator engine.
pub struct TranslatorEngine {
    translator: Box<Translator>,
    cpu: Cpu,
    /// The host's model (the native engine's behaviour), probed once.
    model: HostModel,
}

/// How many callouts/exits one case may take before it is declared hung.
const EXIT_LIMIT: u64 = 1_000_000;

impl TranslatorEngine {
    /// A translator with its own cache, and a CPU at CPL 3.
    pub fn new() -> Result<TranslatorEngine, bt86_translator::TcError> {
        TranslatorEngine::with_model(host_model::get())
    }

    /// Like [`TranslatorEngine::new`], with the given host model instead of the probed
    /// one (a wrong model must make the fuzzer fail).
    pub fn with_model(model: HostModel) -> Result<TranslatorEngine, bt86_translator::TcError> {
        let mut translator = Box::new(Translator::new(DEFAULT_TC_SIZE, bt86::harness::window_bases())?);
        translator.set_push_sreg_model(model.push_sreg);
        signals::set_translator_hook(tc_signal::on_signal);
        Ok(TranslatorEngine { translator, cpu: Cpu::multiboot(), model })
    }

    /// Prints every new fragment (guest beside host code) to stderr.
    pub fn set_trace(&mut self, on: bool) {
        self.translator.set_trace(on);
    }

    fn reset_cpu(&mut self, case: &Case) {
        let ctx = std::mem::replace(&mut self.cpu.ctx, bt86_translator::Context::new_boxed());
        let mut cpu = Cpu::multiboot_in(ctx);
        // User mode: flat DPL 3 segments, with the selectors the native engine runs
        // with (its host LDT entries; FS and GS null), which `push sreg` makes visible.
        cpu.set_segment(Seg::Cs, SegmentCache { access: 0xFB, ..SegmentCache::flat_code(NATIVE_SELECTORS.code) });
        for s in [Seg::Ss, Seg::Ds, Seg::Es] {
            cpu.set_segment(s, SegmentCache { access: 0xF3, ..SegmentCache::flat_data(NATIVE_SELECTORS.data) });
        }
        for s in [Seg::Fs, Seg::Gs] {
            cpu.set_segment(s, SegmentCache::null());
        }
        // A guest LDT with those two descriptors, for the far returns the monitor
        // emulates (`retf` to the code selector a case pushed with `push cs`).
        cpu.ldtr = SegmentCache { selector: GUEST_LDT_SELECTOR, base: GUEST_LDT, limit: 8 * 3 - 1, access: 0x82, flags: 0 };
        // No I/O permission bitmap (a TSS too short for one), as for a Linux process
        // that never called ioperm.
        cpu.tr.limit = 0x65;
        // The host kernel's settings: SSE enabled, x87 errors native.
        cpu.cr0 |= cr0::MP | cr0::NE;
        cpu.cr4 |= cr4::OSFXSR | cr4::OSXMMEXCPT;
        cpu.ctx.gpr = case.init.gpr;
        cpu.ctx.eip = case.init.eip;
        cpu.ctx.set_eflags((case.init.eflags & (flags::HOST_HELD | flags::TF | flags::AC)) | flags::IF);
        cpu.ctx.guest_fx.0 = case.init.fx.0;
        self.cpu = cpu;
    }

    /// Writes the guest LDT that `reset_cpu` points LDTR at (again for every case: a
    /// far return sets the accessed bit of the descriptor it loads).
    fn write_guest_ldt(mem: &mut GuestMemory) {
        let ram = mem.mem.mmu.ram.as_mut_slice();
        let at = |index: u16| GUEST_LDT as usize + 8 * index as usize;
        ram[at(ldt::FLAT_CODE_INDEX)..at(ldt::FLAT_CODE_INDEX) + 8].copy_from_slice(&FLAT_CODE_DPL3.to_le_bytes());
        ram[at(ldt::FLAT_DATA_INDEX)..at(ldt::FLAT_DATA_INDEX) + 8].copy_from_slice(&FLAT_DATA_DPL3.to_le_bytes());
    }

    fn snapshot(&self) -> CpuSnapshot {
        let fx = super::engine::FxArea(self.cpu.ctx.guest_fx.0);
        CpuSnapshot { gpr: self.cpu.ctx.gpr, eip: self.cpu.ctx.eip, eflags: self.cpu.eflags(), fx }
    }

    fn exception(&self, mem: &GuestMemory, e: Exception, eip: u32, fault_addr: Option<u32>) -> Outcome {
        let state = CpuSnapshot { eip, ..self.snapshot() };
        Outcome::Exception {
            vector: e.vector,
            error_code: if has_error_code(e.vector) { Some(e.error_code.unwrap_or(0)) } else { None },
            eip,
            fault_addr,
            state,
            data: mem.data(),
        }
    }

    /// Runs until the case ends.
    fn execute(&mut self, mem: &mut GuestMemory, case: &Case) -> Outcome {
        let mut resume: Option<u64> = None;
        for _ in 0..EXIT_LIMIT {
            let mode = self.cpu.mode();
            self.translator.select_mode(&mut self.cpu.ctx, mode);
            let host = match resume.take() {
                Some(h) => h,
                None => {
                    let linear = self.cpu.linear_eip();
                    let key = FragKey { linear, phys: linear as u64, cs_base: 0, mode };
                    let id = match self.translator.lookup(&key) {
                        Some(id) => id,
                        None => {
                            let req = Request { linear, eip: self.cpu.ctx.eip, cs_base: 0, mode, transient: false };
                            match self.translator.translate(&mut Code { mmu: &mut mem.mem.mmu, user: true }, req) {
                                Ok(id) => id,
                                Err(e) => panic!("the translator rejected fuzz case code at {linear:#x}: {e:?}"),
                            }
                        }
                    };
                    self.translator.fragment(id).body
                }
            };
            let exit = self.translator.run(&mut self.cpu.ctx, host);
            let ctx = &mut self.cpu.ctx;
            match exit {
                ExitReason::Kick => {
                    ctx.kick_async = 0;
                    ctx.eip = ctx.exit_eip;
                }
                ExitReason::Chain | ExitReason::IblMiss | ExitReason::Interrupt => {
                    ctx.eip = ctx.exit_eip;
                }
                ExitReason::Callout => {
                    let c = *self.translator.callout(ctx.exit_arg);
                    ctx.eip = c.eip;
                    match c.kind {
                        CalloutKind::Raise(v, code) => {
                            return self.exception(mem, Exception { vector: v, error_code: code, cr2: None }, c.eip, None);
                        }
                        CalloutKind::SingleStep => {
                            return self.exception(mem, Exception::plain(Vector::DB), c.eip, None);
                        }
                        CalloutKind::Emulate | CalloutKind::Device => {}
                    }
                    let mut ports = NoPorts;
                    let mut env = Env { mem: &mut mem.mem, io: &mut ports, model: self.model };
                    match emulate(&mut self.cpu, &mut env, &c.instr, c.next_eip) {
                        Ok(Flow::Next) | Ok(Flow::Shadow) | Ok(Flow::StackShadow) => resume = c.resume,
                        Ok(Flow::Jump) => {}
                        Ok(Flow::Interrupt(vector, _)) => {
                            if vector == Vector::BP && c.eip == case.end_eip() {
                                return Outcome::Finished {
                                    state: CpuSnapshot { eip: case.end_eip(), ..self.snapshot() },
                                    data: mem.data(),
                                };
                            }
                            // The host kernel's IDT: the gates of #BP and #OF (int3, into,
                            // int 3, int 4) are user-callable traps, icebp raises #DB; an
                            // `int n` on any other gate is #GP((n << 3) | 2).
                            let user_gate = matches!(vector, Vector::BP | Vector::OF) || c.instr.mnemonic() == iced_x86::Mnemonic::Int1;
                            return if user_gate {
                                self.exception(mem, Exception::plain(vector), c.next_eip, None)
                            } else {
                                self.exception(mem, Exception::gp(((vector as u32) << 3) | 2), c.eip, None)
                            };
                        }
                        Ok(other) => panic!("fuzz case callout `{}` ({:?}) ended in {other:?}", c.instr, c.instr.code()),
                        Err(e) => return self.exception(mem, e, c.eip, None),
                    }
                }
                ExitReason::Fault if self.translator.is_stack_guard(ctx.fault.addr) => {}
                ExitReason::Fault => {
                    let f = ctx.fault;
                    let eip = ctx.eip;
                    let (e, addr) = match (f.signo, f.trapno) {
                        (libc::SIGSEGV, 14) => {
                            let linear = locate(f.addr).map_or(0, |(_, l, _)| l);
                            (Exception::new(Vector::PF, f.err & 0x7 | 4), Some(linear))
                        }
                        (libc::SIGSEGV, 13) => (Exception::gp(0), None),
                        (libc::SIGBUS, 17) => (Exception::new(Vector::AC, 0), None),
                        (libc::SIGFPE, 0) => (Exception::plain(Vector::DE), None),
                        (libc::SIGFPE, t) => (Exception::plain(t as u8), None),
                        (libc::SIGILL, _) => (Exception::ud(), None),
                        (s, t) => {
                            panic!("fuzz case: unexpected signal {s} (trap {t}) in translated code")
                        }
                    };
                    return self.exception(mem, e, eip, addr);
                }
            }
        }
        panic!("fuzz case did not finish within {EXIT_LIMIT} exits");
    }
}

impl Engine for TranslatorEngine {
    fn name(&self) -> &str {
        "translator"
    }

    fn run(&mut self, mem: &mut GuestMemory, case: &Case) -> Outcome {
        mem.load(case);
        // The previous case's code is gone: drop its translations.
        for p in (CODE_BASE as u64 / PAGE_SIZE)..((CODE_BASE as u64 + CODE_MAX as u64) / PAGE_SIZE) {
            self.translator.invalidate_page(p);
        }
        self.reset_cpu(case);
        Self::write_guest_ldt(mem);
        let mode = self.cpu.mode();
        self.translator.attach(&mut self.cpu.ctx, mode);
        tc_signal::register(&self.translator, &mut self.cpu.ctx, None);
        let outcome = self.execute(mem, case);
        tc_signal::unregister();
        outcome
    }
}
