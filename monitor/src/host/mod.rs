//! Host process facilities: signal handling, the seccomp filter, CPUID faulting.

pub mod cpuid_faulting;
pub mod seccomp;
pub mod signals;
