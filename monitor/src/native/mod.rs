//! Native execution of 32-bit guest code in compatibility mode.
//!
//! This is bt86's direct-execution engine in its first form: guest code runs on the host
//! CPU through a 32-bit code segment in the host LDT ([`ldt`]) whose base is the guest
//! window, entered from the monitor and left on the first host signal ([`runner`]). The
//! differential fuzzer uses it as the oracle for unprivileged instruction semantics.

pub mod ldt;
pub mod runner;

pub use ldt::{FlatSelectors, LdtError, install_flat};
pub use runner::{Exit, FxArea, GuestRegs, run};

use std::time::{Duration, Instant};

#[cfg_attr(not(test), allow(dead_code))]
/// Measures one native round trip: enter compatibility mode at `eip`, where the caller has
/// placed an `int3`, take the SIGTRAP and come back. Returns the mean over `iterations`.
///
/// # Safety
/// As [`run`]: `eip` must hold guest code (an `int3`) inside the guest window.
pub unsafe fn measure_round_trip(sel: FlatSelectors, eip: u32, esp: u32, iterations: u32) -> Duration {
    let regs = GuestRegs { gpr: [0, 0, 0, 0, esp, 0, 0, 0], eip, eflags: 0x202 };
    let fx = FxArea::default();
    let start = Instant::now();
    for _ in 0..iterations {
        // SAFETY: the caller's contract.
        let exit = unsafe { run(sel, &regs, &fx) };
        debug_assert_eq!(exit.signo, libc::SIGTRAP);
    }
    start.elapsed() / iterations.max(1)
}
