//! bt86: a virtual machine monitor for 32-bit x86 guests (being written).

mod fuzz;
mod host;
mod native;

fn main() {}
