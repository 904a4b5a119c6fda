//! Host process facilities: signal handling.

pub mod signals;
