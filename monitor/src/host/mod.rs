//! Host process facilities: signal handling, the seccomp filter, CPUID faulting, the
//! terminal, syncing the disk images on the way out.

pub mod cpuid_faulting;
pub mod disk_sync;
pub mod seccomp;
pub mod signals;
pub mod terminal;
