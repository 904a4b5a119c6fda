//! The oracle test: every guest test kernel must produce byte-identical serial output and
//! the same exit status under bt86 — in each `--user-exec` mode: direct execution of user
//! code (the default), translation only, adaptive — as under QEMU (`qemu-system-i386`,
//! TCG). Each kernel also runs translated with a translation cache so small that it is
//! flushed many times, which must change nothing the guest sees; and once more with the
//! shadow MMU's smallest budget of host mappings (`BT86_MAX_MAPPINGS=64`), where its
//! windows evict mappings all the time, which must change nothing either.
//!
//! bt86 prints the guest's COM1 output on stdout and its own diagnostics on stderr; QEMU
//! runs with `-serial stdio`. Both get stdin = /dev/null and a 60 s timeout. QEMU's own run
//! must be sane too: its exit status must be the one the kernel declares, and its output
//! must hold at least one "ok" line and no "not ok" line (otherwise the kernel, not bt86, is
//! wrong). Kernels run in parallel, two at a time by default.
//!
//! A kernel that declares disks (`bt86-disk:`) gets fresh images for every run (QEMU's
//! `-drive if=ide`, bt86's `--disk`), and after each bt86 run its images must hold the
//! same bytes as QEMU's.
//!
//! Environment: `BT86_ORACLE_KERNELS=alu,smc` runs only those kernels;
//! `BT86_ORACLE_JOBS=N` sets the parallelism; `BT86_QEMU` picks the QEMU binary.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use bt86_guests::{Kernel, Run, add_disks, bt86_command, kernels, log_tail, make_disks, qemu_command, qemu_path, run_with_timeout};

const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn guest_kernels_match_qemu() {
    let qemu = qemu_path().unwrap_or_else(|| {
        panic!(
            "qemu-system-i386 was not found on PATH: the oracle test needs it. Install the \
             Debian package qemu-system-x86 (apt-get install qemu-system-x86), or point \
             BT86_QEMU at the binary."
        )
    });
    let bt86 = PathBuf::from(env!("CARGO_BIN_EXE_bt86"));

    let mut selected: Vec<_> = kernels().into_iter().filter(|k| !k.bt86_only).collect();
    if let Ok(only) = std::env::var("BT86_ORACLE_KERNELS") {
        let names: Vec<&str> = only.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        for n in &names {
            assert!(selected.iter().any(|k| k.name == *n), "BT86_ORACLE_KERNELS: no kernel {n:?}");
        }
        selected.retain(|k| names.contains(&k.name));
    }
    assert!(!selected.is_empty(), "no guest kernels to run");
    let total = selected.len();

    let jobs = std::env::var("BT86_ORACLE_JOBS").ok().and_then(|s| s.parse::<usize>().ok()).unwrap_or(2).max(1);
    let filtered = std::env::var_os("BT86_ORACLE_KERNELS").is_some();
    let queue = Mutex::new(VecDeque::from(selected));
    let failures = Mutex::new(Vec::<(String, String)>::new());
    let flushes = Mutex::new(Vec::<(&'static str, u64)>::new());
    thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let Some(k) = queue.lock().unwrap().pop_front() else {
                        break;
                    };
                    let started = Instant::now();
                    let verdict = check_kernel(&qemu, &bt86, &k);
                    eprintln!(
                        "oracle: {:<12} {} ({:.1} s)",
                        k.name,
                        if verdict.is_ok() { "same" } else { "DIFFERENT" },
                        started.elapsed().as_secs_f64()
                    );
                    match verdict {
                        Ok(n) => flushes.lock().unwrap().push((k.name, n)),
                        Err(report) => failures.lock().unwrap().push((k.name.to_string(), report)),
                    }
                }
            });
        }
    });

    let mut failures = failures.into_inner().unwrap();
    if !failures.is_empty() {
        failures.sort();
        let mut msg = format!("{} of {} guest kernels do not match QEMU:\n", failures.len(), total);
        for (name, report) in &failures {
            msg.push_str(&format!("\n=== {name} ===\n{report}\n"));
        }
        panic!("{msg}");
    }
    // The small cache must really have been flushed, several times, in most kernels.
    let flushes = flushes.into_inner().unwrap();
    let flushed = flushes.iter().filter(|(_, n)| *n >= 2).count();
    assert!(
        filtered || flushed * 4 >= flushes.len() * 3,
        "--tc-size {SMALL_TC}: only {flushed} of {} kernels flushed the cache twice or more: {flushes:?}",
        flushes.len()
    );
}

/// Runs one kernel under QEMU and bt86; Ok holds how often the small cache was flushed,
/// Err a report of what differs.
fn check_kernel(qemu: &Path, bt86: &Path, k: &Kernel) -> Result<u64, String> {
    let disk_dir = std::env::temp_dir().join(format!("bt86-oracle-{}-{}", std::process::id(), k.name));
    let result = check_kernel_with_disks(qemu, bt86, k, &disk_dir);
    let _ = std::fs::remove_dir_all(&disk_dir);
    result
}

fn check_kernel_with_disks(qemu: &Path, bt86: &Path, k: &Kernel, disk_dir: &Path) -> Result<u64, String> {
    let fresh_disks = |prefix: &str| make_disks(k, disk_dir, prefix).map_err(|e| format!("cannot make disk images: {e}"));
    let qemu_disks = fresh_disks("qemu")?;
    let mut q = qemu_command(qemu, k);
    add_disks(&mut q, &qemu_disks, true);
    let q = run_with_timeout(q, TIMEOUT).map_err(|e| format!("cannot run QEMU ({}): {e}", qemu.display()))?;
    check_qemu_sane(k, &q)?;
    let mut flushes = 0;
    // Every engine for user code must agree with QEMU: the default (the adaptive mix),
    // direct execution, and the translator alone; the translator with a tiny cache; and
    // direct execution with the shadow MMU's smallest budget of host mappings, where the
    // windows evict all the time.
    let runs = USER_EXEC_MODES.iter().map(|&m| (m, false, false)).chain([(Some("translate"), true, false), (Some("direct"), false, true)]);
    for (mode, small_tc, few_mappings) in runs {
        let mut cmd = bt86_command(bt86, k);
        let disks = fresh_disks("bt86")?;
        add_disks(&mut cmd, &disks, false);
        if let Some(m) = mode {
            cmd.args(["--user-exec", m]);
        }
        if small_tc {
            cmd.args(["--tc-size", SMALL_TC, "--stats"]);
        }
        if few_mappings {
            cmd.env("BT86_MAX_MAPPINGS", FEW_MAPPINGS);
        }
        let b = run_with_timeout(cmd, TIMEOUT).map_err(|e| format!("cannot run bt86 ({}): {e}", bt86.display()))?;
        if small_tc {
            flushes = cache_flushes(&b);
        }
        let mut report = String::new();
        if b.status != q.status || b.timed_out {
            report.push_str(&format!("exit status: QEMU {}, bt86 {}\n", q.describe_status(), b.describe_status()));
        }
        if b.serial != q.serial {
            report.push_str(&first_difference(&q.serial, &b.serial));
        }
        for (unit, (theirs, ours)) in qemu_disks.iter().zip(&disks).enumerate() {
            let (theirs, ours) = (std::fs::read(theirs).unwrap_or_default(), std::fs::read(ours).unwrap_or_default());
            if let Some(at) = theirs.iter().zip(&ours).position(|(a, b)| a != b).or((theirs.len() != ours.len()).then_some(0)) {
                report.push_str(&format!("disk {unit}: the images differ first at byte {at} (sector {})\n", at / 512));
            }
        }
        if !report.is_empty() {
            let tc = if small_tc { format!(" --tc-size {SMALL_TC}") } else { String::new() };
            let env = if few_mappings { format!("BT86_MAX_MAPPINGS={FEW_MAPPINGS} ") } else { String::new() };
            report.insert_str(0, &format!("{env}bt86 --user-exec {}{tc}:\n", mode.unwrap_or("adaptive (the default)")));
            report.push_str(&stderr_tail(&b, 15));
            return Err(report);
        }
    }
    Ok(flushes)
}

/// The `--user-exec` modes every kernel runs in (None: the default).
const USER_EXEC_MODES: [Option<&str>; 3] = [None, Some("direct"), Some("translate")];

/// The shadow MMU's smallest budget of host mappings (`BT86_MAX_MAPPINGS`; its
/// `MIN_BUDGET`): the windows evict all the time, and the guests must not notice.
const FEW_MAPPINGS: &str = "64";

/// The smallest translation cache bt86 accepts: every kernel but the shortest fills it
/// several times (the test checks that most do).
const SMALL_TC: &str = "16K";

/// Whole-cache flushes, from the `--stats` report ("invalidations / flushes  I / F").
fn cache_flushes(run: &Run) -> u64 {
    String::from_utf8_lossy(&run.stderr)
        .lines()
        .find_map(|l| l.trim().strip_prefix("invalidations / flushes")?.split('/').nth(1)?.trim().parse().ok())
        .unwrap_or(0)
}

/// The kernel itself must behave under QEMU, or comparing is pointless.
fn check_qemu_sane(k: &Kernel, q: &Run) -> Result<(), String> {
    let text = String::from_utf8_lossy(&q.serial);
    let mut problems = Vec::new();
    if q.timed_out || q.status != Some(k.exit_status) {
        problems.push(format!("QEMU ended with {}, the kernel declares exit status {}", q.describe_status(), k.exit_status));
    }
    let not_ok: Vec<&str> = text.lines().filter(|l| l.starts_with("not ok")).collect();
    if !not_ok.is_empty() {
        problems.push(format!("the kernel fails under QEMU ({} \"not ok\" lines), first: {}", not_ok.len(), not_ok[0]));
    }
    if !text.lines().any(|l| l.starts_with("ok ")) {
        problems.push("QEMU's output has no \"ok\" line".to_string());
    }
    if let Some(bail) = text.lines().find(|l| l.starts_with("Bail out!")) {
        problems.push(format!("the kernel bailed out under QEMU: {bail}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the test kernel is broken under QEMU (not a bt86 problem):\n  {}\n{}",
            problems.join("\n  "),
            log_tail("QEMU serial output", &text, 10)
        ))
    }
}

/// A diff-like report of the first line where the outputs differ.
fn first_difference(expected: &[u8], got: &[u8]) -> String {
    let e: Vec<&[u8]> = expected.split_inclusive(|&c| c == b'\n').collect();
    let g: Vec<&[u8]> = got.split_inclusive(|&c| c == b'\n').collect();
    let i = e.iter().zip(g.iter()).take_while(|(a, b)| a == b).count();
    let show = |l: Option<&&[u8]>| match l {
        Some(l) => format!("{:?}", String::from_utf8_lossy(l)),
        None => "<end of output>".to_string(),
    };
    let mut r = format!(
        "serial output differs at line {} (QEMU {} lines / {} bytes, bt86 {} lines / {} bytes):\n",
        i + 1,
        e.len(),
        expected.len(),
        g.len(),
        got.len()
    );
    for l in &e[i.saturating_sub(3)..i] {
        r.push_str(&format!("    {:?}\n", String::from_utf8_lossy(l)));
    }
    r.push_str(&format!("  - QEMU: {}\n", show(e.get(i))));
    r.push_str(&format!("  + bt86: {}\n", show(g.get(i))));
    r
}

fn stderr_tail(run: &Run, n: usize) -> String {
    log_tail("bt86 stderr", &String::from_utf8_lossy(&run.stderr), n)
}
