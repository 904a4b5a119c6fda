//! Host process facilities: signal handling and the seccomp filter.

pub mod seccomp;
pub mod signals;
