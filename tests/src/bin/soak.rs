//! `soak`: a long Linux run in each `--user-exec` mode, watching bt86's own resources.
//!
//! ```text
//! cargo run --release -p bt86-guests --bin soak -- [--seconds N] [--bt86 PATH]
//! ```
//!
//! Debian's i386 kernel boots with the busybox shell initramfs (as the default guest), and
//! a shell loop piped into its console forks, execs and maps memory for N seconds of guest
//! time (default 600): `dd` with a 4 MiB buffer (mmap, page faults, munmap), pipelines of
//! `cat`, `seq` under `sh -c` (fork+exec of busybox each time), then `poweroff -f`. The
//! three modes run at once. Every 30 s this program samples each bt86's resident set
//! (`VmRSS`) and its number of mappings (lines of `/proc/PID/maps`); at the end it takes
//! the translation-cache flushes, evictions and mapping peak from `--stats`. Nothing may
//! grow without bound: the table shows whether it does. A benchmark, not a test.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use bt86_guests::linux;

const MODES: [&str; 3] = ["direct", "translate", "adaptive"];
const SAMPLE: Duration = Duration::from_secs(30);

/// The shell loop: runs for `seconds` of guest uptime, prints a count every 200 rounds.
fn script(seconds: u64) -> String {
    format!(
        "end=$(( $(cut -d. -f1 /proc/uptime) + {seconds} )); i=0\n\
         while [ $(cut -d. -f1 /proc/uptime) -lt $end ]; do i=$((i+1)); \
         dd if=/dev/zero of=/dev/null bs=4M count=2 2>/dev/null; echo x | cat | cat >/dev/null; \
         sh -c 'a=$(seq 1 100)'; [ $((i % 200)) = 0 ] && echo soak-rounds $i; done; echo soak-done $i\n\
         poweroff -f\n"
    )
}

/// Resident set in KiB and number of mappings of process `pid`.
fn sample(pid: u32) -> Option<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok()?;
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?.lines().count();
    Some((rss, maps))
}

/// The value after `label` on a line of the `--stats` report.
fn stat<'a>(stats: &'a str, label: &str) -> &'a str {
    stats.lines().find_map(|l| l.trim().strip_prefix(label)).map(str::trim).unwrap_or("?")
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let seconds: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(600);
    let bt86 = arg("--bt86").map(PathBuf::from).unwrap_or_else(|| std::env::current_exe().expect("own path").with_file_name("bt86"));
    let (kernel, initrd) = match (linux::debian_kernel(), linux::shell_initramfs()) {
        (Ok(k), Ok(i)) => (k, i),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    let mut children: Vec<Child> = Vec::new();
    for mode in MODES {
        let mut cmd = Command::new(&bt86);
        cmd.args(["run", "--stats", "--user-exec", mode, "--append", "console=ttyS0 quiet panic=-1"]);
        cmd.arg("--kernel").arg(&kernel).arg("--initrd").arg(&initrd);
        let mut child = match cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("soak: cannot run {}: {e}", bt86.display());
                return ExitCode::from(2);
            }
        };
        let _ = child.stdin.take().unwrap().write_all(script(seconds).as_bytes());
        children.push(child);
    }
    let readers: Vec<_> = children
        .iter_mut()
        .map(|c| {
            let (mut out, mut err) = (c.stdout.take().unwrap(), c.stderr.take().unwrap());
            thread::spawn(move || {
                let (mut o, mut e) = (String::new(), String::new());
                let _ = out.read_to_string(&mut o);
                let _ = err.read_to_string(&mut e);
                (o, e)
            })
        })
        .collect();
    let start = Instant::now();
    let mut table =
        String::from("| time | direct RSS MiB / maps | translate RSS MiB / maps | adaptive RSS MiB / maps |\n|---:|---:|---:|---:|\n");
    loop {
        let samples: Vec<Option<(u64, usize)>> = children.iter().map(|c| sample(c.id())).collect();
        if samples.iter().all(Option::is_none) {
            break;
        }
        let _ = write!(table, "| {:>4} s |", start.elapsed().as_secs());
        for s in &samples {
            match s {
                Some((rss, maps)) => {
                    let _ = write!(table, " {:.0} / {maps} |", *rss as f64 / 1024.0);
                }
                None => table.push_str(" ended |"),
            }
        }
        table.push('\n');
        eprint!("{}", table.lines().last().unwrap_or_default().to_string() + "\n");
        let next = Instant::now() + SAMPLE;
        while Instant::now() < next && children.iter_mut().any(|c| matches!(c.try_wait(), Ok(None))) {
            thread::sleep(Duration::from_millis(200));
        }
    }
    println!("{table}");
    println!("| mode | status | guest rounds | TC invalidations / flushes | evictions | host mappings |\n|:--|--:|--:|--:|--:|--:|");
    for ((mode, child), reader) in MODES.iter().zip(children.iter_mut()).zip(readers) {
        let status = child.wait().map(|s| s.code().unwrap_or(-1)).unwrap_or(-1);
        let (out, err) = reader.join().unwrap_or_default();
        let rounds =
            out.lines().rev().find_map(|l| l.trim().strip_prefix("soak-done ").or(l.trim().strip_prefix("soak-rounds "))).unwrap_or("?");
        println!(
            "| {mode} | {status} | {rounds} | {} | {} | {} |",
            stat(&err, "invalidations / flushes"),
            stat(&err, "evictions"),
            stat(&err, "host mappings (VMAs)")
        );
    }
    ExitCode::SUCCESS
}
