//! `guest`: boots one of bt86's guest kernels under bt86.
//!
//! ```text
//! cargo run --release -p bt86-guests --bin guest -- [NAME] [BT86 RUN OPTIONS...]
//! cargo run --release -p bt86-guests --bin guest -- --list
//! ```
//!
//! NAME defaults to `linux`: Debian's i386 kernel with a busybox shell on the console
//! (both fetched with apt on first use and cached, see `bt86_guests::linux`); exiting the
//! shell powers the machine off. `linux-test` boots the same kernel with the test
//! workload (`tests/linux/`) as /init. Every other NAME is one of the test kernels in
//! `tests/guests/` (`hello` is the tour of what bt86 virtualizes), built from source by
//! this package's build script.
//!
//! When run through cargo, this program first builds `bt86` itself (`cargo build
//! --release -p bt86`, a no-op when it is up to date), then runs `bt86 run --kernel
//! <image>` with the guest's own command line (and initramfs) and any options given after
//! the name (`--stats`, `--trace-tc`, `--mem 64M`, `--user-exec translate`, ...), and
//! exits with bt86's status. For the Linux guests, `--kernel`, `--initrd` and `--append`
//! given after the name replace the fetched kernel, the initramfs and the command line.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use bt86_guests::linux;

const DEFAULT_GUEST: &str = "linux";

/// The Linux guests, besides the test kernels: name and what it boots.
const LINUX_GUESTS: &[(&str, &str)] =
    &[("linux", "Debian's i386 kernel and a busybox shell"), ("linux-test", "Debian's i386 kernel and the test workload")];

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "--list" || a == "-l") {
        for (name, _) in LINUX_GUESTS {
            println!("{name}");
        }
        for k in bt86_guests::kernels() {
            println!("{}", k.name);
        }
        return ExitCode::SUCCESS;
    }
    if args.first().is_some_and(|a| a == "--help" || a == "-h") {
        println!("usage: cargo run --release -p bt86-guests --bin guest -- [NAME] [BT86 RUN OPTIONS...]");
        println!("       cargo run --release -p bt86-guests --bin guest -- --list");
        println!("Boots guest NAME (default {DEFAULT_GUEST}) under bt86:");
        for (name, what) in LINUX_GUESTS {
            println!("  {name:<12} {what}");
        }
        println!("  or a test kernel of tests/guests/ (--list shows them all).");
        return ExitCode::SUCCESS;
    }
    let name = if args.first().is_some_and(|a| !a.starts_with('-')) { args.remove(0) } else { DEFAULT_GUEST.to_string() };
    let bt86 = match built_bt86() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("guest: {e}");
            return ExitCode::from(2);
        }
    };
    let cmd = if LINUX_GUESTS.iter().any(|(n, _)| *n == name) {
        linux_command(&bt86, &name, args)
    } else {
        match bt86_guests::kernels().into_iter().find(|k| k.name == name) {
            Some(kernel) => {
                let mut cmd = bt86_guests::bt86_command(&bt86, &kernel);
                cmd.args(&args);
                Ok(cmd)
            }
            None => Err(format!("no guest called {name:?} (--list shows them)")),
        }
    };
    let mut cmd = match cmd {
        Ok(c) => c,
        Err(e) => {
            eprintln!("guest: {e}");
            return ExitCode::from(2);
        }
    };
    match cmd.status() {
        Ok(s) => ExitCode::from(s.code().unwrap_or(70).clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("guest: cannot run {}: {e}", bt86.display());
            ExitCode::from(70)
        }
    }
}

/// The bt86 command line for a Linux guest: the fetched kernel, the guest's initramfs and
/// [`linux::APPEND`], each unless `args` (passed on as they are) give their own.
fn linux_command(bt86: &std::path::Path, name: &str, args: Vec<String>) -> Result<Command, String> {
    let given = |opt: &str| args.iter().any(|a| a == opt || a.starts_with(&format!("{opt}=")));
    let mut cmd = Command::new(bt86);
    cmd.arg("run");
    if !given("--kernel") {
        cmd.arg("--kernel").arg(linux::debian_kernel()?);
    }
    if !given("--initrd") {
        let initrd = if name == "linux-test" { linux::test_initramfs()? } else { linux::shell_initramfs()? };
        cmd.arg("--initrd").arg(initrd);
    }
    if !given("--append") {
        cmd.arg("--append").arg(linux::APPEND);
    }
    cmd.args(args);
    Ok(cmd)
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
