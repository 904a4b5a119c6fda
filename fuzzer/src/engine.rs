//! What the fuzzer runs (a [`Case`]), what comes out (an [`Outcome`]), the [`Engine`]
//! interface every execution engine implements for it, and [`NativeEngine`], the host
//! CPU in compatibility mode.
//!
//! # Guest layout (paging off, flat segments)
//!
//! ```text
//!   0x0000_0000 .. 0x0001_1000   data region (DATA_SIZE), compared after every run;
//!                                 the stack lives inside it ([STACK_LO, STACK_HI))
//!   0x0010_0000 .. 0x0011_0000   code (CODE_BASE), ending in int3
//! ```
//!
//! The data region starts at 0 so that *every* 16-bit effective address (`a16`
//! forms such as `[bx+si]`, string instructions with SI/DI) lands in it whatever BX, BP,
//! SI and DI hold; it reaches 4 KiB past 64 KiB so that an access of up to 16 bytes at
//! address 0xFFFF stays inside too.

use std::fmt;

use bt86_shadow_mmu::{GuestRam, Mmu, Window, WindowKind};

use crate::generator::CategoryCounts;
use bt86::harness::Memory;
use bt86::harness::native::{self, FlatSelectors};
use bt86::harness::signals;

pub use bt86::harness::native::FxArea;

/// Guest address of the case's code.
pub const CODE_BASE: u32 = 0x0010_0000;
/// Largest code size of a case.
pub const CODE_MAX: usize = 0x1_0000;
/// Guest address of the data region.
pub const DATA_BASE: u32 = 0;
/// Size of the data region.
pub const DATA_SIZE: usize = 0x1_1000;
/// The stack's part of the data region: ESP stays in `[STACK_LO, STACK_HI]`.
pub const STACK_LO: u32 = 0x8000;
/// See [`STACK_LO`].
pub const STACK_HI: u32 = 0xC000;
/// Where the fuzzer puts the user window (see `Engine::new`).
pub const FUZZ_USER_WINDOW_BASE: u64 = 1 << 30;
/// Guest RAM size for fuzzing.
pub const RAM_SIZE: u64 = 2 << 20;

/// EFLAGS bits the fuzzer compares by default: CF PF AF ZF SF OF and DF.
pub const COMPARED_FLAGS: u32 = 0x0CD5;

/// Register state of the guest CPU that the fuzzer sets and compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuSnapshot {
    /// EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI.
    pub gpr: [u32; 8],
    /// EIP.
    pub eip: u32,
    /// EFLAGS.
    pub eflags: u32,
    /// x87/SSE state as an FXSAVE image (FIP, FDP, FCS, FDS and FOP are not compared).
    pub fx: FxArea,
}

/// Names of the GPRs in [`CpuSnapshot::gpr`] order.
pub const GPR_NAMES: [&str; 8] = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"];

/// One fuzz case: code and data to load, the initial CPU state, and a listing.
#[derive(Clone, Debug)]
pub struct Case {
    /// The seed this case was generated from (reproduces it with the same generator).
    pub seed: u64,
    /// Machine code loaded at [`CODE_BASE`]; ends with `int3`.
    pub code: Vec<u8>,
    /// Initial contents of the data region ([`DATA_SIZE`] bytes at [`DATA_BASE`]).
    pub data: Vec<u8>,
    /// Initial CPU state (EIP = [`CODE_BASE`]).
    pub init: CpuSnapshot,
    /// Disassembly, one line per instruction.
    pub listing: Vec<String>,
    /// Instructions in the case (not counting the final `int3`).
    pub instructions: u32,
    /// Instructions per category.
    pub categories: CategoryCounts,
    /// EFLAGS bits to compare at the end (normally [`COMPARED_FLAGS`]).
    pub flags_mask: u32,
}

impl Case {
    /// Guest address of the terminating `int3`.
    pub fn end_eip(&self) -> u32 {
        CODE_BASE + self.code.len() as u32 - 1
    }
}

/// How a case ended.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// The code reached its final `int3`. `state.eip` is the address *of* the `int3`
    /// ([`Case::end_eip`]).
    Finished {
        /// CPU state at the `int3`.
        state: CpuSnapshot,
        /// The data region.
        data: Vec<u8>,
    },
    /// An instruction raised an exception (a fault: state and `eip` are those before the
    /// faulting instruction; for traps such as `into`, after it).
    Exception {
        /// x86 exception vector (0 = #DE, 6 = #UD, 13 = #GP, 14 = #PF, ...).
        vector: u8,
        /// The error code, for the vectors that push one.
        error_code: Option<u32>,
        /// EIP the exception reports.
        eip: u32,
        /// For #PF, the guest linear fault address (CR2).
        fault_addr: Option<u32>,
        /// CPU state at the exception.
        state: CpuSnapshot,
        /// The data region.
        data: Vec<u8>,
    },
}

impl Outcome {
    /// The CPU state at the end.
    pub fn state(&self) -> &CpuSnapshot {
        match self {
            Outcome::Finished { state, .. } | Outcome::Exception { state, .. } => state,
        }
    }
    /// Mutable CPU state (for test engines that perturb it).
    pub fn state_mut(&mut self) -> &mut CpuSnapshot {
        match self {
            Outcome::Finished { state, .. } | Outcome::Exception { state, .. } => state,
        }
    }
    /// The data region at the end.
    pub fn data(&self) -> &[u8] {
        match self {
            Outcome::Finished { data, .. } | Outcome::Exception { data, .. } => data,
        }
    }
    /// Mutable data region.
    pub fn data_mut(&mut self) -> &mut Vec<u8> {
        match self {
            Outcome::Finished { data, .. } | Outcome::Exception { data, .. } => data,
        }
    }
    /// The exception vector, if the case ended in one.
    pub fn vector(&self) -> Option<u8> {
        match self {
            Outcome::Finished { .. } => None,
            Outcome::Exception { vector, .. } => Some(*vector),
        }
    }
}

/// An execution engine under test (or the oracle).
pub trait Engine {
    /// Short name for reports ("native", "translator", ...).
    fn name(&self) -> &str;
    /// Runs `case` in `mem` (which it may reload as it likes) and returns how it ended.
    fn run(&mut self, mem: &mut GuestMemory, case: &Case) -> Outcome;
}

/// Why the fuzzer's guest memory or the native engine could not be set up.
#[derive(Debug)]
pub enum SetupError {
    /// The guest window could not be reserved.
    Window(bt86_shadow_mmu::WindowError),
    /// Guest RAM could not be created.
    Ram(bt86_shadow_mmu::RamError),
    /// Signal handling could not be set up.
    Signals(signals::SignalError),
    /// The LDT segments could not be installed.
    Ldt(native::LdtError),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Window(e) => e.fmt(f),
            SetupError::Ram(e) => e.fmt(f),
            SetupError::Signals(e) => e.fmt(f),
            SetupError::Ldt(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SetupError {}

/// The guest memory the fuzzer runs in: the monitor's guest memory (the window,
/// identity-mapped onto RAM: paging off).
pub struct GuestMemory {
    /// Window and RAM.
    pub mem: Memory,
}

impl GuestMemory {
    /// Reserves the window, creates RAM and maps it one to one.
    pub fn new() -> Result<GuestMemory, SetupError> {
        // Guest data at linear 0 (16-bit addressing reaches only the first 64 KiB) must
        // be mappable: the user window goes at 1 GiB, above mmap_min_addr.
        bt86_shadow_mmu::set_user_window_base(FUZZ_USER_WINDOW_BASE).map_err(SetupError::Window)?;
        let user = Window::reserve(WindowKind::User).map_err(SetupError::Window)?;
        let kernel = Window::reserve(WindowKind::Kernel).map_err(SetupError::Window)?;
        let ram = GuestRam::new(RAM_SIZE).map_err(SetupError::Ram)?;
        let mmu = Mmu::new(ram, user, kernel).map_err(SetupError::Window)?;
        Ok(GuestMemory { mem: Memory::new(mmu) })
    }

    /// Writes the case's code and data into guest memory.
    pub fn load(&mut self, case: &Case) {
        assert!(case.code.len() <= CODE_MAX && case.data.len() == DATA_SIZE);
        let mem = self.mem.mmu.ram.as_mut_slice();
        let code = CODE_BASE as usize;
        mem[code..code + case.code.len()].copy_from_slice(&case.code);
        let data = DATA_BASE as usize;
        mem[data..data + DATA_SIZE].copy_from_slice(&case.data);
    }

    /// A copy of the data region.
    pub fn data(&self) -> Vec<u8> {
        let data = DATA_BASE as usize;
        self.mem.mmu.ram.as_slice()[data..data + DATA_SIZE].to_vec()
    }
}

/// The host CPU: runs cases natively in compatibility mode.
pub struct NativeEngine {
    sel: FlatSelectors,
}

impl NativeEngine {
    /// Installs the signal handlers and the flat LDT segments.
    pub fn new() -> Result<NativeEngine, SetupError> {
        signals::install().map_err(SetupError::Signals)?;
        let sel = native::install_flat().map_err(SetupError::Ldt)?;
        Ok(NativeEngine { sel })
    }

    /// The LDT selectors guest code runs with.
    pub fn selectors(&self) -> FlatSelectors {
        self.sel
    }
}

/// Whether exception `vector` pushes an error code.
pub fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21)
}

/// Turns a native exit into an [`Outcome`].
pub fn outcome_from_exit(case: &Case, exit: &native::Exit, data: Vec<u8>) -> Outcome {
    let state = CpuSnapshot { gpr: exit.regs.gpr, eip: exit.regs.eip, eflags: exit.regs.eflags, fx: exit.fx };
    // int3 is a trap: EIP is past it.
    if exit.signo == libc::SIGTRAP && exit.trapno == 3 && exit.regs.eip.wrapping_sub(1) == case.end_eip() {
        return Outcome::Finished { state: CpuSnapshot { eip: case.end_eip(), ..state }, data };
    }
    let vector = match exit.signo {
        libc::SIGSEGV | libc::SIGBUS | libc::SIGFPE | libc::SIGILL | libc::SIGTRAP if exit.trapno < 32 => exit.trapno as u8,
        libc::SIGFPE => 0,
        libc::SIGILL => 6,
        libc::SIGTRAP => 1,
        libc::SIGBUS => 17,
        _ => 13,
    };
    let fault_addr = (vector == 14).then(|| exit.fault_addr.wrapping_sub(WindowKind::User.base()) as u32);
    Outcome::Exception { vector, error_code: has_error_code(vector).then_some(exit.err), eip: exit.regs.eip, fault_addr, state, data }
}

impl Engine for NativeEngine {
    fn name(&self) -> &str {
        "native"
    }

    fn run(&mut self, mem: &mut GuestMemory, case: &Case) -> Outcome {
        signals::install().expect("signal handling on this thread");
        mem.load(case);
        let regs = native::GuestRegs { gpr: case.init.gpr, eip: case.init.eip, eflags: case.init.eflags };
        // SAFETY: the selectors cover only the guest window, which `mem` maps to guest
        // RAM; the case's code ends in int3 and touches nothing outside the window.
        let exit = unsafe { native::run(self.sel, &regs, &case.init.fx) };
        outcome_from_exit(case, &exit, mem.data())
    }
}
