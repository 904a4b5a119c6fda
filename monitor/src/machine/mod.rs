//! The machine: guest memory, the virtual CPU, the devices and the translator, wired
//! together, and the run loop that drives them ([`run`]).

pub mod clock;
mod console;
mod device_access;
mod direct_exec;
pub mod disks;
mod display;
pub mod io;
pub mod memory;
pub(crate) mod run;
pub mod stats;
pub mod tc_signal;

use std::fmt;

use bt86_devices::{Platform, PlatformConfig};
use bt86_shadow_mmu::{GuestRam, Mmu, Window, WindowKind};
use bt86_translator::Translator;

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
    /// Kernel command line (None: the default for the kind of kernel — a Linux kernel's
    /// console on the serial port, nothing for a Multiboot kernel).
    pub append: Option<String>,
    /// Print every new fragment.
    pub trace_tc: bool,
    /// Write /tmp/perf-PID.map, naming each fragment for `perf`.
    pub perf_map: bool,
    /// Count fragment executions for `--stats`.
    pub count_fragments: bool,
    /// How guest user code (CPL 3) runs.
    pub user_exec: UserExec,
    /// Translation cache size in bytes.
    pub tc_size: usize,
    /// A machine reset ends the run instead of restarting the kernel.
    pub no_reboot: bool,
    /// Where the guest's text screen is shown.
    pub display: DisplayMode,
}

/// Where the guest's text screen is shown (`--display`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DisplayMode {
    /// Nowhere: COM1 is the console (standard output and input).
    #[default]
    None,
    /// Drawn on standard output with ANSI escapes; standard input is the keyboard, and
    /// COM1's output goes to standard error unless that is a terminal (then it is dropped).
    Text,
}

/// How guest user code (CPL 3) runs (`--user-exec`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum UserExec {
    /// Directly on the host CPU, in compatibility mode, whenever the state allows it.
    Direct,
    /// Always through the binary translator, like kernel code.
    Translate,
    /// Through the translator, except code that runs long between exits (each a host
    /// signal and a round trip to the sandbox's stub), which runs directly.
    #[default]
    Adaptive,
}

/// The local APIC and I/O APIC device models exist, so the firmware tables announce them
/// (MP table, ACPI MADT): Linux routes its interrupts through the I/O APIC.
const APIC_PRESENT: bool = true;
/// The HPET raises its timer interrupts, so ACPI announces it (Linux then moves its
/// tick to the HPET, in legacy-replacement mode, and uses its counter as clocksource).
const HPET_INTERRUPTS: bool = true;

/// The firmware tables for `mem` bytes of RAM. `BT86_FIRMWARE=full` announces
/// everything whatever the switches above say (for the guest test that reads the tables).
fn firmware_config(mem: u64) -> bt86_devices::firmware::FirmwareConfig {
    let full = std::env::var_os("BT86_FIRMWARE").is_some_and(|v| v == "full");
    let leaf1 = crate::cpu::cpuid::cpuid(1, 0);
    bt86_devices::firmware::FirmwareConfig {
        ram_size: mem,
        apic: APIC_PRESENT || full,
        hpet: HPET_INTERRUPTS || full,
        cpu_signature: leaf1[0],
        cpu_features: leaf1[3],
    }
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

/// Where the shadow MMU puts the first windows (the user window and the first kernel
/// window), for a translator over an MMU without more.
pub fn window_bases() -> bt86_translator::WindowBases {
    bt86_translator::WindowBases { user: WindowKind::User.base(), kernel: WindowKind::Kernel.base() }
}

/// How many address spaces keep their kernel-window mappings across CR3 switches:
/// `BT86_KERNEL_WINDOWS` (1 to the most there can be), by default all.
fn kernel_windows() -> usize {
    let most = bt86_shadow_mmu::KERNEL_WINDOWS;
    std::env::var("BT86_KERNEL_WINDOWS").ok().and_then(|v| v.trim().parse::<usize>().ok()).map_or(most, |n| n.clamp(1, most))
}

/// Why the guest stopped.
#[derive(Debug)]
pub enum Stop {
    /// The guest asked to exit (isa-debug-exit) with this host status.
    Exit(i32),
    /// A triple fault shut the virtual CPU down, and `--no-reboot` keeps the machine
    /// from resetting (`Machine::run` resets it otherwise); what happened and the dump.
    TripleFault(TripleFault, String),
    /// The guest did something bt86 cannot do (yet); message and register dump.
    Unsupported(String, String),
    /// The guest halted with no way to wake up.
    Halted(String, String),
    /// A normal end that is not the guest's exit port: it turned the machine off, or the
    /// user quit; what happened.
    Ended(String),
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
    initrd: Option<Vec<u8>>,
    /// Standard input as the serial line (or the keyboard).
    console: console::Console,
    /// The text screen on standard output (`--display text`).
    display: Option<display::Display<std::io::Stdout>>,
    /// EIP and CPL of the instruction whose #PF was delivered last (an `iret` back there
    /// retries it).
    page_fault_at: Option<(u32, u8)>,
}

impl Machine {
    /// Builds a machine with `config`, the kernel `image` (and the initrd) already read
    /// from disk.
    pub fn new(config: Config, image: Vec<u8>, initrd: Option<Vec<u8>>) -> Result<Machine, SetupError> {
        let host = |what: &str, e: &dyn fmt::Display| SetupError::Host(format!("{what}: {e}"));
        if loader::linux::is_bzimage(&image) {
            loader::linux::validate(&config.kernel, &image).map_err(SetupError::Load)?;
        } else {
            loader::multiboot::validate(&config.kernel, &image).map_err(SetupError::Load)?;
        }
        // Before the windows exist: the probe maps a scratch area of its own below 4 GiB.
        let host_model = host_model::get();
        let mut user = Window::reserve(WindowKind::User).map_err(|e| host("guest window", &e))?;
        let sandboxed = config.user_exec != UserExec::Translate && direct_exec::sandbox_wanted();
        if sandboxed {
            // The stub's copy of the user window follows every change from the start.
            user.start_mirror();
        }
        let kernel = Window::reserve(WindowKind::Kernel).map_err(|e| host("guest window", &e))?;
        let ram = GuestRam::new(config.mem).map_err(|e| host("guest memory", &e))?;
        let mut mmu = Mmu::new(ram, user, kernel).map_err(|e| host("guest window", &e))?;
        if let Err(e) = mmu.add_kernel_windows(kernel_windows()) {
            // (Fewer kernel windows only cost speed: say so and go on with those there are.)
            log::warn!("kernel windows: {e}; going on with {}", mmu.kernel_windows());
        }
        // With `--user-exec direct` in the sandbox, directly executed code runs from them
        // too, in a stub per address space: a context switch between native processes
        // is then an entry into another stub. (`adaptive` keeps one stub, copying the
        // user window at host 0, which only native code fills: there native code is the
        // exception, context switches between native processes are rare, and on a loaded
        // host stubs per address space did not help it: the soak, in the README. Without the sandbox, `--user-exec direct` has none:
        // directly executed code then needs the user window at host 0, translated user
        // code is the exception, and sharing that window with it saves fills.)
        let stub_per_space = sandboxed && config.user_exec == UserExec::Direct;
        if mmu.kernel_windows() > 1
            && (stub_per_space || config.user_exec != UserExec::Direct)
            && let Err(e) = mmu.add_translated_user_windows(stub_per_space)
        {
            log::warn!("user windows per address space: {e}; user code uses the user window");
        }
        let mem = Memory::new(mmu);
        // (The windows in use: the translated-user window may not be the user window.)
        let bases = bt86_translator::WindowBases { user: mem.mmu.translated_user_window().base(), kernel: mem.mmu.kernel_window().base() };
        let mut translator = Translator::new(config.tc_size, bases).map_err(|e| host("translation cache", &e))?;
        translator.set_trace(config.trace_tc);
        translator.set_count_entries(config.count_fragments);
        if config.perf_map {
            let path = format!("/tmp/perf-{}.map", std::process::id());
            // (Not through a link someone else left at that name in the shared /tmp.)
            use std::os::unix::fs::OpenOptionsExt;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(libc::O_NOFOLLOW)
                .mode(0o644)
                .open(&path)
                .map_err(|e| host(&format!("--perf-map: {path}"), &e))?;
            translator.set_perf_map(file);
        }
        translator.set_push_sreg_model(host_model.push_sreg);
        let mut cpu = Cpu::multiboot();
        let clock = Clock::new(&mut cpu.ctx).map_err(|e| host("host timer", &e))?;
        let text = config.display == DisplayMode::Text;
        let serial_out: Box<dyn std::io::Write + Send> = match text {
            false => Box::new(console::Output::new(std::io::stdout())),
            // On a terminal it would garble the screen.
            true if crate::host::terminal::stderr_is_tty() => Box::new(std::io::sink()),
            true => Box::new(console::Output::new(std::io::stderr())),
        };
        let platform = Platform::new(PlatformConfig::with_host_clock(config.mem, serial_out));
        let mut mem = mem;
        for (base, len) in platform.device_ranges() {
            mem.mmu.add_device_range(base, len);
        }
        let mut direct = direct_exec::Direct::new(config.user_exec);
        if sandboxed {
            direct.cpuid_faulting = crate::host::cpuid_faulting::usable();
            match direct_exec::prepare_sandbox(&mem.mmu, direct.cpuid_faulting, &mut direct.policy) {
                Ok(sandbox) => {
                    direct.sandbox = Some(sandbox);
                    direct.ldt.write_remotely();
                }
                Err(why) => direct.unavailable = Some(why),
            }
            if let Some(why) = &direct.unavailable {
                log::warn!("direct execution of guest user code is not available: {why}; user code is translated");
            }
            if direct.cpuid_faulting {
                mem.mmu.set_never_native(&[bt86_shadow_mmu::second_byte::SYSENTER, bt86_shadow_mmu::second_byte::SYSCALL]);
            }
        } else if config.user_exec != UserExec::Translate {
            direct.unavailable = direct_exec::prepare_host();
            if let Some(why) = &direct.unavailable {
                log::warn!("direct execution of guest user code is not available: {why}; user code is translated");
            }
            direct.cpuid_faulting = crate::host::cpuid_faulting::usable();
            if direct.cpuid_faulting {
                // The host traps `cpuid`: only sysenter and syscall keep pages translated.
                mem.mmu.set_never_native(&[bt86_shadow_mmu::second_byte::SYSENTER, bt86_shadow_mmu::second_byte::SYSCALL]);
            }
        }
        let mut m = Machine {
            clock,
            cpu,
            mem,
            platform,
            translator,
            stats: Stats::default(),
            host_model,
            direct,
            config,
            image,
            initrd,
            console: match text {
                false => console::Console::new(crate::host::terminal::stdin_is_tty()),
                true => console::Console::for_keyboard(crate::host::terminal::stdin_is_tty()),
            },
            display: text.then(|| display::Display::new(std::io::stdout())),
            page_fault_at: None,
        };
        m.boot().map_err(SetupError::Load)?;
        let mode = m.cpu.mode();
        m.translator.attach(&mut m.cpu.ctx, mode);
        Ok(m)
    }

    /// Loads the kernel and puts the CPU in its boot protocol's entry state: both
    /// protocols start in protected mode with flat segments (CS 0x10, data 0x18), paging
    /// and interrupts off.
    fn boot(&mut self) -> Result<(), LoadError> {
        // Keep the context's allocation: the timer and signal handlers point to it.
        let ctx = std::mem::replace(&mut self.cpu.ctx, bt86_translator::Context::new_boxed());
        self.cpu = Cpu::multiboot_in(ctx);
        self.mem.paging_changed(self.cpu.paging_regs(), false);
        let path = &self.config.kernel;
        let ram = &mut self.mem.mmu.ram;
        // The tables a BIOS leaves, first: in the BIOS areas, which no loader writes.
        for (addr, bytes) in bt86_devices::firmware::build(&firmware_config(self.config.mem)).pieces {
            ram.write(addr, &bytes);
        }
        self.platform.bios_init();
        if loader::linux::is_bzimage(&self.image) {
            let cmdline = self.config.append.as_deref().unwrap_or(loader::linux::DEFAULT_CMDLINE);
            let loaded = loader::linux::load(path, &self.image, self.initrd.as_deref(), cmdline, ram)?;
            self.platform.set_kernel_cmdline(loader::linux::CMDLINE_ADDR as u32, cmdline);
            self.cpu.ctx.eip = loaded.entry;
            // ESI: the zero page; EBP, EDI, EBX: 0 (the 32-bit boot protocol).
            self.cpu.ctx.gpr = [0; 8];
            self.cpu.set_gpr(6, loaded.boot_params);
            if self.config.display == DisplayMode::Text {
                loader::linux::announce_text_screen(ram, loaded.boot_params);
            }
        } else {
            if self.initrd.is_some() {
                return Err(LoadError::Malformed(
                    path.clone(),
                    "--initrd is for Linux kernels (bzImage); this is a Multiboot kernel".into(),
                ));
            }
            let loaded = loader::multiboot::load(path, &self.image, self.config.append.as_deref().unwrap_or(""), ram)?;
            self.cpu.ctx.eip = loaded.entry;
            self.cpu.set_gpr(0, loader::multiboot::BOOTLOADER_MAGIC);
            self.cpu.set_gpr(3, loaded.info);
            log::info!("kernel {path} loaded: entry {:#x}, image ends at {:#x}", loaded.entry, loaded.image_end);
        }
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
