//! The `bt86` command: see the library's `cli` module.

fn main() {
    bt86::main()
}
