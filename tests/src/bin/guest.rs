//! `guest`: boots one of bt86's guest kernels under bt86.
//!
//! ```text
//! cargo run --release -p bt86-guests --bin guest -- [NAME] [BT86 RUN OPTIONS...]
//! cargo run --release -p bt86-guests --bin guest -- --list
//! ```
//!
//! NAME defaults to `hello`, the tour of what bt86 virtualizes. The kernels are built from
//! source by this package's build script; when run through cargo, this program first
//! builds `bt86` itself (`cargo build --release -p bt86`, a no-op when it is up to date),
//! then runs `bt86 run --kernel <image>` with the kernel's own command line and any
//! options given after the name (`--stats`, `--trace-tc`, `--mem 64M`, ...), and exits
//! with bt86's status.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

const DEFAULT_GUEST: &str = "hello";

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "--list" || a == "-l") {
        for k in bt86_guests::kernels() {
            println!("{}", k.name);
        }
        return ExitCode::SUCCESS;
    }
    if args.first().is_some_and(|a| a == "--help" || a == "-h") {
        println!("usage: cargo run --release -p bt86-guests --bin guest -- [NAME] [BT86 RUN OPTIONS...]");
        println!("       cargo run --release -p bt86-guests --bin guest -- --list");
        println!("Boots guest kernel NAME (default {DEFAULT_GUEST}) under bt86.");
        return ExitCode::SUCCESS;
    }
    let name = if args.first().is_some_and(|a| !a.starts_with('-')) { args.remove(0) } else { DEFAULT_GUEST.to_string() };
    let Some(kernel) = bt86_guests::kernels().into_iter().find(|k| k.name == name) else {
        eprintln!("guest: no guest kernel called {name:?} (--list shows them)");
        return ExitCode::from(2);
    };
    let bt86 = match built_bt86() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("guest: {e}");
            return ExitCode::from(2);
        }
    };
    let mut cmd = bt86_guests::bt86_command(&bt86, &kernel);
    cmd.args(&args);
    match cmd.status() {
        Ok(s) => ExitCode::from(s.code().unwrap_or(70).clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("guest: cannot run {}: {e}", bt86.display());
            ExitCode::from(70)
        }
    }
}

/// `target/release/bt86` (beside this program), built first when cargo is at hand.
fn built_bt86() -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let bt86 = me.with_file_name("bt86");
    if let Some(cargo) = std::env::var_os("CARGO") {
        let status = Command::new(cargo)
            .args(["build", "--release", "--quiet", "-p", "bt86"])
            .status()
            .map_err(|e| format!("cannot run cargo to build bt86: {e}"))?;
        if !status.success() {
            return Err("building bt86 failed".into());
        }
    }
    if bt86.exists() {
        Ok(bt86)
    } else {
        Err(format!("bt86 not found at {}: build it with `cargo build --release -p bt86`", bt86.display()))
    }
}
