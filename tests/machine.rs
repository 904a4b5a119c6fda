//! What bt86 does that the QEMU oracle cannot check, because QEMU does it differently
//! from a PC or because it is bt86's own behaviour:
//!
//! - the `bt86-only` guest kernels (unbacked memory reads all ones on a PC, 0 in QEMU) must
//!   pass all their checks under bt86 and end normally;
//! - a triple fault stops the guest with exit status 3 and a dump of the guest's state on
//!   stderr (QEMU resets instead);
//! - direct execution runs user code natively and gets its system calls through the
//!   seccomp filter, which lets all of bt86's own system calls pass.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use bt86_guests::{bt86_command, kernels, run_with_timeout};

const TIMEOUT: Duration = Duration::from_secs(60);

fn bt86() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bt86"))
}

#[test]
fn bt86_only_kernels_pass() {
    let only: Vec<_> = kernels().into_iter().filter(|k| k.bt86_only).collect();
    assert!(!only.is_empty(), "no bt86-only kernels were built");
    for k in only {
        let run = run_with_timeout(bt86_command(&bt86(), &k), TIMEOUT).expect("cannot run bt86");
        let out = String::from_utf8_lossy(&run.serial);
        let stderr = String::from_utf8_lossy(&run.stderr);
        let oks = out.lines().filter(|l| l.starts_with("ok ")).count();
        assert!(
            run.status == Some(k.exit_status) && oks > 0 && !out.lines().any(|l| l.starts_with("not ok")),
            "{}: {}\n{out}\n{stderr}",
            k.name,
            run.describe_status()
        );
        let plan = out.lines().find_map(|l| l.strip_prefix("1..")).and_then(|n| n.trim().parse::<usize>().ok());
        assert_eq!(plan, Some(oks), "{}: every planned check must have run\n{out}", k.name);
    }
}

#[test]
fn triple_fault_stops_with_a_dump() {
    let k = kernels().into_iter().find(|k| k.name == "triple").expect("the triple kernel");
    let mut cmd: Command = bt86_command(&bt86(), &k);
    cmd.env_remove("RUST_LOG");
    let run = run_with_timeout(cmd, TIMEOUT).expect("cannot run bt86");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status, Some(3), "a triple fault ends bt86 with status 3\n{stderr}");
    for want in ["triple fault", "EAX=", "EIP=", "CS=0008", "GDTR base=", "IDTR base=", "CR0=", "bytes at CS:EIP:", "instruction:"] {
        assert!(stderr.contains(want), "the dump lacks {want:?}:\n{stderr}");
    }
    assert!(!stderr.contains("panicked"), "no Rust panic:\n{stderr}");
}

/// Direct execution really runs user code natively, and its system calls come back
/// through the seccomp filter (SIGSYS), while every system call of bt86's own passes the
/// filter: the run must end normally with the guest's checks passing.
#[test]
fn user_code_runs_natively_and_its_system_calls_are_trapped() {
    let k = kernels().into_iter().find(|k| k.name == "userprocs").expect("the userprocs kernel");
    let mut cmd: Command = bt86_command(&bt86(), &k);
    cmd.args(["--user-exec", "direct", "--stats"]);
    let run = run_with_timeout(cmd, TIMEOUT).expect("cannot run bt86");
    let out = String::from_utf8_lossy(&run.serial);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status == Some(k.exit_status) && !out.contains("not ok"), "{}\n{out}\n{stderr}", run.describe_status());
    let count = |label: &str| -> u64 {
        stderr.lines().find_map(|l| l.trim().strip_prefix(label).and_then(|r| r.split_whitespace().next()?.parse().ok())).unwrap_or(0)
    };
    assert!(count("direct execution:") > 0, "no native slices:\n{stderr}");
    assert!(count("int 0x80") > 0, "no int 0x80 came back through SIGSYS:\n{stderr}");
}
