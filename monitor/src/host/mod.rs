//! Host process facilities: signal handling, the seccomp filter, CPUID faulting, the
//! terminal.

pub mod cpuid_faulting;
pub mod seccomp;
pub mod signals;
pub mod terminal;
