//! bt86: a virtual machine monitor for 32-bit x86 guests that needs no hardware
//! virtualization and no kernel module, in the style of the original VMware Workstation.
//!
//! Guest kernel code runs through the binary translator (`bt86-translator`), guest memory
//! lives in a window of this process's address space (`bt86-shadow-mmu`), devices are in
//! `bt86-devices`. This crate is the monitor: the command line ([`cli`]), kernel loading
//! ([`loader`]), the virtual CPU and the instructions it emulates ([`cpu`]), the machine
//! and its run loop ([`machine`]), host signals ([`host`]), native execution in
//! compatibility mode ([`native`]) and the differential fuzzer ([`fuzz`]).

mod cli;
mod cpu;
mod direct;
mod fuzz;
mod host;
mod loader;
mod machine;
mod native;

fn main() {
    cli::main()
}
