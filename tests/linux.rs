//! The Linux test: Debian's i386 kernel boots with the test workload
//! (`tests/linux/workload.c`) as /init, under QEMU (TCG, the oracle) and under bt86 in
//! each `--user-exec` mode, and once more with the shadow MMU's smallest budget of host
//! mappings (`BT86_MAX_MAPPINGS=64`). The workload prints TAP lines on the console and powers off.
//! Every bt86 run also checks, after each flush that keeps mappings, that the guest's
//! tables still give every mapping kept (`BT86_CHECK_FLUSHES`), and must report none.
//! Only the TAP lines (`1..N`, `ok N ...`, `not ok N ...`) are compared, byte for byte:
//! the rest of the boot log holds timestamps and machine details that differ by nature.
//! Every run must end with exit status 0 (power-off) within the timeout, QEMU's run must
//! pass all its checks (else the workload, not bt86, is wrong), and bt86's TAP lines must
//! be QEMU's. A failure shows the first differing line and the tail of the boot log.
//!
//! The kernel is fetched with apt on the first run and cached (see
//! `bt86_guests::linux`); the machine needs the i386 architecture in dpkg (`.ci/run`
//! sets it up). Runs go two at a time. `BT86_QEMU` picks the QEMU binary.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use bt86_guests::{Run, linux, log_tail, qemu_path, run_with_input, run_with_timeout};

/// What bt86 prints, with `BT86_CHECK_FLUSHES`, for each mapping a flush kept wrongly.
const STALE_MAPPING: &str = "shadow MMU: after";

/// Per run: QEMU TCG boots and runs the workload in about 10 s, bt86 in a few.
const TIMEOUT: Duration = Duration::from_secs(120);
/// How many runs go at once (the CI machines have two cores).
const JOBS: usize = 2;

/// The `--user-exec` modes bt86 runs the workload in (None: the default, adaptive).
const USER_EXEC_MODES: [Option<&str>; 3] = [None, Some("direct"), Some("translate")];

#[test]
fn linux_workload_matches_qemu() {
    let qemu = qemu_path().unwrap_or_else(|| {
        panic!("qemu-system-i386 was not found on PATH: install the Debian package qemu-system-x86, or point BT86_QEMU at it")
    });
    let bt86 = PathBuf::from(env!("CARGO_BIN_EXE_bt86"));
    let kernel = linux::debian_kernel().unwrap_or_else(|e| panic!("cannot get Debian's i386 kernel: {e}"));
    let initrd = linux::test_initramfs().unwrap_or_else(|e| panic!("the test workload was not built: {e}"));

    let mut runs: Vec<(String, Command)> = vec![("QEMU".to_string(), linux::qemu_command(&qemu, &kernel, &initrd, linux::APPEND))];
    for mode in USER_EXEC_MODES {
        let mut cmd = linux::bt86_command(&bt86, &kernel, &initrd, linux::APPEND);
        // A panic reboots (panic=-1): the run ends there, as QEMU's with -no-reboot.
        cmd.arg("--no-reboot");
        cmd.env("BT86_CHECK_FLUSHES", "1");
        if let Some(m) = mode {
            cmd.args(["--user-exec", m]);
        }
        runs.push((format!("bt86 --user-exec {}", mode.unwrap_or("adaptive")), cmd));
    }
    // And with the shadow MMU's smallest budget of host mappings: its windows evict all
    // the time, which Linux must not notice.
    let mut cmd = linux::bt86_command(&bt86, &kernel, &initrd, linux::APPEND);
    cmd.args(["--no-reboot", "--user-exec", "direct"]);
    cmd.env("BT86_MAX_MAPPINGS", "64");
    cmd.env("BT86_CHECK_FLUSHES", "1");
    runs.push(("BT86_MAX_MAPPINGS=64 bt86 --user-exec direct".to_string(), cmd));
    let bt86_runs = runs.len() - 1;
    let results = run_all(runs);

    let (_, qemu_run) = &results[0];
    let expected = check_qemu(qemu_run).unwrap_or_else(|report| panic!("{report}"));
    let mut failures = Vec::new();
    for (label, run) in &results[1..] {
        if let Err(report) = check_bt86(run, &expected) {
            failures.push(format!("=== {label} ===\n{report}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bt86 runs differ from QEMU (kernel {}, initrd {}):\n\n{}",
        failures.len(),
        bt86_runs,
        kernel.display(),
        initrd.display(),
        failures.join("\n")
    );
}

/// Runs the commands, [`JOBS`] at a time, and returns (label, run) in their order.
fn run_all(runs: Vec<(String, Command)>) -> Vec<(String, Run)> {
    let count = runs.len();
    let queue = Mutex::new(runs.into_iter().enumerate().collect::<VecDeque<_>>());
    let done = Mutex::new(Vec::new());
    thread::scope(|s| {
        for _ in 0..JOBS {
            s.spawn(|| {
                loop {
                    let Some((i, (label, cmd))) = queue.lock().unwrap().pop_front() else { break };
                    let program = PathBuf::from(cmd.get_program());
                    let started = Instant::now();
                    let run = run_with_timeout(cmd, TIMEOUT).unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
                    eprintln!("linux: {label:<26} {} ({:.1} s)", run.describe_status(), started.elapsed().as_secs_f64());
                    done.lock().unwrap().push((i, label, run));
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap();
    assert_eq!(done.len(), count, "every run finished");
    done.sort_by_key(|(i, _, _)| *i);
    done.into_iter().map(|(_, label, run)| (label, run)).collect()
}

/// The TAP lines of a boot log, without their line ends.
fn tap_lines(serial: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(serial).lines().map(|l| l.trim_end_matches('\r')).filter(|l| is_tap(l)).map(str::to_string).collect()
}

/// `^(not )?ok \d+` or `^1\.\.\d+`.
fn is_tap(line: &str) -> bool {
    let digits_follow = |rest: &str| rest.starts_with(|c: char| c.is_ascii_digit());
    line.strip_prefix("not ok ").or_else(|| line.strip_prefix("ok ")).or_else(|| line.strip_prefix("1..")).is_some_and(digits_follow)
}

/// QEMU's run must power off and pass every planned check; returns its TAP lines.
fn check_qemu(q: &Run) -> Result<Vec<String>, String> {
    let tap = tap_lines(&q.serial);
    let mut problems = Vec::new();
    if q.timed_out || q.status != Some(0) {
        problems.push(format!("QEMU ended with {}, not exit status 0 (power-off)", q.describe_status()));
    }
    problems.extend(tap_problems(&tap));
    if problems.is_empty() {
        Ok(tap)
    } else {
        Err(format!(
            "the Linux workload is broken under QEMU (not a bt86 problem):\n  {}\n{}",
            problems.join("\n  "),
            log_tail("QEMU boot log", &String::from_utf8_lossy(&q.serial), 25)
        ))
    }
}

/// What is wrong with a TAP stream on its own: no plan, checks missing, checks failing.
fn tap_problems(tap: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    let plan = tap.first().and_then(|l| l.strip_prefix("1..")).and_then(|n| n.parse::<usize>().ok());
    let results = tap.iter().filter(|l| !l.starts_with("1..")).count();
    match plan {
        None => problems.push("no TAP plan (1..N) first: the workload did not start".to_string()),
        Some(n) if n != results => problems.push(format!("{results} of {n} planned checks ran")),
        Some(_) => {}
    }
    let not_ok: Vec<&String> = tap.iter().filter(|l| l.starts_with("not ok")).collect();
    if let Some(first) = not_ok.first() {
        problems.push(format!("{} checks fail, first: {first}", not_ok.len()));
    }
    problems
}

/// bt86 must power off with status 0 and print exactly QEMU's TAP lines.
fn check_bt86(b: &Run, expected: &[String]) -> Result<(), String> {
    let tap = tap_lines(&b.serial);
    let mut report = String::new();
    if b.timed_out || b.status != Some(0) {
        report.push_str(&format!("ended with {}, not exit status 0 (power-off) as under QEMU\n", b.describe_status()));
    }
    if tap != expected {
        report.push_str(&first_difference(expected, &tap));
    }
    let stderr = String::from_utf8_lossy(&b.stderr);
    let stale = stderr.lines().filter(|l| l.contains(STALE_MAPPING)).count();
    if stale > 0 {
        report.push_str(&format!("{stale} mappings kept by flushes that the guest's tables no longer gave (BT86_CHECK_FLUSHES)\n"));
    }
    for p in tap_problems(&tap) {
        report.push_str(&format!("{p}\n"));
    }
    if report.is_empty() {
        return Ok(());
    }
    report.push_str(&log_tail("bt86 boot log (stdout)", &String::from_utf8_lossy(&b.serial), 25));
    report.push_str(&log_tail("bt86 stderr", &String::from_utf8_lossy(&b.stderr), 10));
    Err(report)
}

/// The first TAP line where bt86 differs from QEMU, with the lines before it.
fn first_difference(expected: &[String], got: &[String]) -> String {
    let i = expected.iter().zip(got).take_while(|(a, b)| a == b).count();
    let show = |l: Option<&String>| l.map_or("<no more TAP lines>".to_string(), |l| format!("{l:?}"));
    let mut r = format!("TAP line {} differs (QEMU {} TAP lines, bt86 {}):\n", i + 1, expected.len(), got.len());
    for l in &expected[i.saturating_sub(2)..i] {
        r.push_str(&format!("    {l:?}\n"));
    }
    r.push_str(&format!("  - QEMU: {}\n  + bt86: {}\n", show(expected.get(i)), show(got.get(i))));
    r
}

#[test]
fn tap_lines_are_recognized() {
    let log = b"[    1.0] Run /init as init process\r\n1..3\r\nok 1 - a\r\nnot ok 2 - b\r\nok 3 - c\r\n# note\r\nokay\r\nok x\r\n";
    assert_eq!(tap_lines(log), ["1..3", "ok 1 - a", "not ok 2 - b", "ok 3 - c"]);
    assert_eq!(tap_problems(&tap_lines(log)), ["1 checks fail, first: not ok 2 - b"]);
    assert!(!tap_problems(&["1..2".to_string(), "ok 1 - a".to_string()]).is_empty());
}

/// Boots Debian's kernel with the busybox shell initramfs and `extra` options, `input`
/// piped into bt86's standard input.
fn shell_run(extra: &[&str], input: &[u8]) -> Run {
    let bt86 = PathBuf::from(env!("CARGO_BIN_EXE_bt86"));
    let kernel = linux::debian_kernel().unwrap_or_else(|e| panic!("cannot get Debian's i386 kernel: {e}"));
    let initrd = linux::shell_initramfs().unwrap_or_else(|e| panic!("cannot build the shell initramfs: {e}"));
    let mut cmd = linux::bt86_command(&bt86, &kernel, &initrd, "console=ttyS0 quiet panic=-1");
    cmd.args(extra);
    run_with_input(cmd, Some(input.to_vec()), TIMEOUT).expect("cannot run bt86")
}

/// The console drives a shell: commands piped into bt86's standard input reach Debian's
/// busybox shell (the default guest's initramfs) in order, their output comes back, and
/// `poweroff -f` ends bt86 with status 0. They are all sent at once, long before the
/// shell reads: nothing may be lost or reordered.
#[test]
fn a_shell_driven_through_a_pipe() {
    let script = b"echo one-$((6*7))\nfor i in a b c; do echo word-$i; done\ncat /proc/cpuinfo | grep -c ^processor\npoweroff -f\n";
    let run = shell_run(&[], script);
    let serial = String::from_utf8_lossy(&run.serial);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let want = ["one-42", "word-a", "word-b", "word-c", "1"];
    let got: Vec<&str> = serial.lines().map(|l| l.trim_end_matches('\r')).filter(|l| want.contains(l)).collect();
    assert_eq!(got, want, "the shell's answers, in order\n{serial}\n{stderr}");
    assert_eq!(run.status, Some(0), "poweroff -f ends bt86 with status 0 ({})\n{serial}\n{stderr}", run.describe_status());
}

/// `reboot -f` with `--no-reboot` ends bt86 with status 0 and one line, as QEMU's
/// `-no-reboot` does (without it the machine starts the kernel again).
#[test]
fn reboot_with_no_reboot_ends_the_run() {
    let run = shell_run(&["--no-reboot"], b"reboot -f\n");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status, Some(0), "{} {stderr}\n{}", run.describe_status(), String::from_utf8_lossy(&run.serial));
    assert_eq!(stderr.lines().collect::<Vec<_>>(), ["bt86: the guest reset the machine (--no-reboot)"]);
}
