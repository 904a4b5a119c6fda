//! The machine: guest memory, the virtual CPU, the devices and the translator, wired
//! together, and the run loop that drives them ([`run`]).

pub mod clock;
mod device_access;
mod direct_exec;
pub mod io;
pub mod memory;
pub(crate) mod run;
pub mod stats;
pub mod tc_signal;

use std::fmt;

use bt86_devices::{Platform, PlatformConfig};
use bt86_shadow_mmu::{GuestRam, Mmu, Window, WindowKind};
use bt86_translator::{DEFAULT_TC_SIZE, Translator};

use crate::cpu::Cpu;
use crate::cpu::exceptions::TripleFault;
use crate::cpu::host_model::{self, HostModel};
use crate::loader::{self, LoadError};
use clock::Clock;
use memory::Memory;
use stats::Stats;

/// What the user asked to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Kernel path, as given on the command line (it is also part of the guest's
    /// Multiboot command line, as with QEMU).
    pub kernel: String,
    /// Guest RAM in bytes.
    pub mem: u64,
    /// Kernel command line.
    pub append: String,
    /// Print every new fragment.
    pub trace_tc: bool,
    /// Count fragment executions for `--stats`.
    pub count_fragments: bool,
    /// How guest user code (CPL 3) runs.
    pub user_exec: UserExec,
}

/// How guest user code (CPL 3) runs (`--user-exec`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum UserExec {
    /// Directly on the host CPU, in compatibility mode, whenever the state allows it.
    #[default]
    Direct,
    /// Always through the binary translator, like kernel code.
    Translate,
    /// Directly, except code whose exits (each a host signal) make translation cheaper.
    Adaptive,
}

/// Why the machine could not be built.
#[derive(Debug)]
pub enum SetupError {
    /// The kernel image is unusable (the user's input).
    Load(LoadError),
    /// The host refused something (memory, mappings, timers).
    Host(String),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Load(e) => write!(f, "{e}"),
            SetupError::Host(e) => write!(f, "{e}"),
        }
    }
}

/// Why the guest stopped.
#[derive(Debug)]
pub enum Stop {
    /// The guest asked to exit (isa-debug-exit) with this host status.
    Exit(i32),
    /// A triple fault shut the virtual CPU down.
    TripleFault(TripleFault, String),
    /// The guest did something bt86 cannot do (yet); message and register dump.
    Unsupported(String, String),
    /// The guest halted with no way to wake up.
    Halted(String, String),
}

/// The whole virtual machine.
pub struct Machine {
    /// Virtual time and the host timer. First, so that it is dropped first: its signal
    /// handler writes to the CPU's context.
    pub clock: Clock,
    /// The virtual CPU.
    pub cpu: Cpu,
    /// Guest memory.
    pub mem: Memory,
    /// Devices.
    pub platform: Platform,
    /// The binary translator.
    pub translator: Translator,
    /// Counters.
    pub stats: Stats,
    /// The host CPU's answers where the architecture leaves results undefined (probed
    /// before anything translates: direct execution gives the host's answers, so the
    /// translator and the emulation must too).
    host_model: HostModel,
    /// Direct execution of guest user code.
    direct: direct_exec::Direct,
    config: Config,
    image: Vec<u8>,
}

impl Machine {
    /// Builds a machine with `config`, the kernel `image` already read from disk.
    pub fn new(config: Config, image: Vec<u8>) -> Result<Machine, SetupError> {
        let host = |what: &str, e: &dyn fmt::Display| SetupError::Host(format!("{what}: {e}"));
        loader::multiboot::validate(&config.kernel, &image).map_err(SetupError::Load)?;
        // Before the windows exist: the probe maps a scratch area of its own below 4 GiB.
        let host_model = host_model::get();
        let user = Window::reserve(WindowKind::User).map_err(|e| host("guest window", &e))?;
        let kernel = Window::reserve(WindowKind::Kernel).map_err(|e| host("guest window", &e))?;
        let ram = GuestRam::new(config.mem).map_err(|e| host("guest memory", &e))?;
        let mem = Memory::new(Mmu::new(ram, user, kernel).map_err(|e| host("guest window", &e))?);
        let mut translator = Translator::new(DEFAULT_TC_SIZE).map_err(|e| host("translation cache", &e))?;
        translator.set_trace(config.trace_tc);
        translator.set_count_entries(config.count_fragments);
        translator.set_push_sreg_model(host_model.push_sreg);
        let mut cpu = Cpu::multiboot();
        let clock = Clock::new(&mut cpu.ctx).map_err(|e| host("host timer", &e))?;
        let platform = Platform::new(PlatformConfig::with_host_clock(config.mem, Box::new(std::io::stdout())));
        let mut mem = mem;
        for (base, len) in platform.device_ranges() {
            mem.mmu.add_device_range(base, len);
        }
        let mut direct = direct_exec::Direct::new(config.user_exec);
        if config.user_exec != UserExec::Translate {
            direct.unavailable = direct_exec::prepare_host();
            if let Some(why) = &direct.unavailable {
                log::warn!("direct execution of guest user code is not available: {why}; user code is translated");
            }
        }
        let mut m = Machine { clock, cpu, mem, platform, translator, stats: Stats::default(), host_model, direct, config, image };
        m.boot().map_err(SetupError::Load)?;
        let mode = m.cpu.mode();
        m.translator.attach(&mut m.cpu.ctx, mode);
        Ok(m)
    }

    /// Loads the kernel and puts the CPU in the Multiboot entry state.
    fn boot(&mut self) -> Result<(), LoadError> {
        let loaded = loader::multiboot::load(&self.config.kernel, &self.image, &self.config.append, &mut self.mem.mmu.ram)?;
        // Keep the context's allocation: the timer and signal handlers point to it.
        let ctx = std::mem::replace(&mut self.cpu.ctx, bt86_translator::Context::new_boxed());
        self.cpu = Cpu::multiboot_in(ctx);
        self.mem.paging_changed(self.cpu.paging_regs(), false);
        self.cpu.ctx.eip = loaded.entry;
        self.cpu.set_gpr(0, loader::multiboot::BOOTLOADER_MAGIC);
        self.cpu.set_gpr(3, loaded.info);
        log::info!("kernel {} loaded: entry {:#x}, image ends at {:#x}", self.config.kernel, loaded.entry, loaded.image_end);
        Ok(())
    }

    /// A register dump with the bytes at CS:EIP, for stop messages.
    pub fn dump(&mut self) -> String {
        let mut code = [0u8; 16];
        let at = self.cpu.linear_eip();
        let readable = self.mem.peek(at, &mut code);
        crate::cpu::dump::format(&self.cpu, readable.then_some(&code[..]))
    }

    /// The statistics report.
    pub fn stats_report(&self) -> String {
        run::stats_report(self)
    }
}
