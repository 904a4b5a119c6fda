//! bt86: a virtual machine monitor for 32-bit x86 guests that needs no hardware
//! virtualization and no kernel module, in the style of the original VMware Workstation.
//!
//! Guest kernel code runs through the binary translator (`bt86-translator`), guest memory
//! lives in a window of this process's address space (`bt86-shadow-mmu`), devices are in
//! `bt86-devices`. This crate is the monitor: the command line (`cli`, whose entry point
//! is [`main`]), kernel loading (`loader`), the virtual CPU and the instructions it
//! emulates (`cpu`), the machine and its run loop (`machine`), host signals and the
//! terminal (`host`), direct execution of guest user code (`direct`) and native execution
//! in compatibility mode (`native`). The `bt86` binary is [`main`] and nothing else.
//!
//! The modules are private; [`harness`] is the one door for code outside the crate: the
//! pieces the differential fuzzer (`bt86-fuzzer`, which checks the translator against the
//! host CPU) needs to run guest code outside a `Machine`.

mod cli;
mod cpu;
mod direct;
pub mod harness;
mod host;
mod loader;
mod machine;
mod native;

pub use cli::main;
