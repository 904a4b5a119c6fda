//! `bench`: runs the bt86 benchmarks (`tests/guests/bench/`) natively, under bt86 and under
//! QEMU (TCG), and prints a table to paste into the README.
//!
//! ```text
//! cargo run --release -p bt86-guests --bin bench -- [--runs N] [--only cpu|mmu|user|linux]
//!     [--bt86 PATH] [--qemu PATH]
//! ```
//!
//! Each benchmark program runs N times per engine (default 5), interleaved (native, bt86,
//! QEMU, native, ...) so that the slow drifts of a noisy shared machine hit every engine
//! alike; the table shows medians. bench-user runs under bt86 three times per round, once
//! per `--user-exec` mode (direct, translate, adaptive), each its own column. The programs
//! time themselves with rdtsc. Under bt86 the guest's TSC is the host's, and so is QEMU's
//! under TCG (QEMU reads the host TSC, plus an offset that makes it start near 0 at reset):
//! the runner checks this on every run by dividing the TSC ticks between the program's
//! `clock begin` and `clock end` lines by the wall time between their arrival, and compares
//! that with the host TSC frequency (measured here against CLOCK_MONOTONIC). Should QEMU's clock ever run at another rate, its values
//! are rescaled to host cycles with the measured rate (noted below the table).
//!
//! The Linux benchmark (`tests/linux/bench.c`) boots Debian's i386 kernel (fetched and
//! cached like the Linux test's, see `bt86_guests::linux`) with the benchmark as /init, under
//! bt86 in each `--user-exec` mode and under QEMU, and runs the same program natively. It
//! times itself with CLOCK_MONOTONIC (nanoseconds), checked against wall time like the TSC;
//! its first line as /init carries the guest's uptime, and the arrival of that line's first
//! byte here is the host wall time from starting the engine to /init.
//!
//! Standard library only. The benchmark images come from `build.rs` (see
//! `bt86_guests::bench`); bt86 is `target/release/bt86` next to this program unless
//! `--bt86` says otherwise.

use std::fmt::Write as _;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bt86_guests::bench::{Output, Suite};
use bt86_guests::{QEMU_ARGS, qemu_path};

/// How long one run of one program may take before it is killed.
const TIMEOUT: Duration = Duration::from_secs(600);

/// A guest TSC rate further than this from the host's is not the host TSC.
const RATE_TOLERANCE: f64 = 0.10;

/// Adams & Agesen, "A Comparison of Software and Hardware Techniques for x86
/// Virtualization", ASPLOS 2006: their nanobenchmarks under VMware's binary-translating
/// VMM, in cycles of their (2006 Intel) host. The paper's hardware-VMM values for the same
/// events are left out: no copy of it was at hand to check them against.
const VMWARE_BT_2006: &[(&str, u64)] = &[("pgfault", 3927), ("ptemod", 391)];

/// The Linux benchmark's command line: the console on COM1, few boot messages, and a panic
/// ends the machine at once.
const LINUX_APPEND: &str = "console=ttyS0 quiet panic=-1";

/// The Linux benchmark's marker line (its first as /init); its first byte's arrival is the
/// host wall time to /init, reported as `boot-wall`.
const BOOT_MARKER: &str = "bench boot-uptime ";

/// The Linux benchmark's goals (from the issue that asked for it), per row: the bound and
/// what it is relative to ("native" or "QEMU").
const LINUX_GOALS: &[(&str, f64, &str)] = &[
    ("boot-uptime", 0.5, "QEMU"),
    ("boot-wall", 0.5, "QEMU"),
    ("int80", 2.0, "native"),
    ("sysenter", 2.0, "native"),
    ("fork", 3.0, "native"),
    ("pagefault", 3.0, "native"),
    ("compute", 1.05, "native"),
];

/// bench-user's (and the Linux benchmark's) bt86 engines: column title and `bt86 run
/// --user-exec` mode.
const USER_EXEC_MODES: [(&str, &str); 3] = [("bt86 direct", "direct"), ("bt86 translate", "translate"), ("bt86 adaptive", "adaptive")];

/// The column that measures what the sandbox costs: `--user-exec direct` with guest user
/// code run inside bt86's own process (`BT86_SANDBOX=off`, through env(1)).
const IN_PROCESS: (&str, &str) = ("bt86 direct in-process", "BT86_SANDBOX=off");

/// `program args...` as `env BT86_SANDBOX=off program args...`.
fn in_process((program, args): (PathBuf, Vec<String>)) -> (PathBuf, Vec<String>) {
    let mut a = vec![IN_PROCESS.1.to_string(), program.to_string_lossy().into_owned()];
    a.extend(args);
    (PathBuf::from("env"), a)
}

const USAGE: &str = "\
usage: cargo run --release -p bt86-guests --bin bench -- [OPTIONS]

Runs the bt86 benchmarks natively, under bt86 and under QEMU (TCG) and prints a table.

options:
  --runs N         runs per engine, interleaved (default 5); the table shows medians
  --only cpu|mmu|user|linux
                   just one benchmark (default: all four)
  --bt86 PATH      the bt86 binary (default: target/release/bt86 beside this program)
  --qemu PATH      qemu-system-i386 (default: $BT86_QEMU, else the one on $PATH)
  -h, --help       this text";

fn main() -> ExitCode {
    let opts = match Options::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("bench: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if opts.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let bt86 = match opts.bt86.clone().map_or_else(default_bt86, Ok) {
        Ok(p) if p.is_file() => p,
        Ok(p) => {
            eprintln!(
                "bench: bt86 not found at {}: build it with `cargo build --release -p bt86` \
                 (or point --bt86 at a binary)",
                p.display()
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::from(2);
        }
    };
    let qemu = opts.qemu.clone().or_else(qemu_path);
    if let Some(q) = &qemu
        && !q.is_file()
    {
        eprintln!("bench: QEMU not found at {}", q.display());
        return ExitCode::from(2);
    }

    let host_mhz = measure_tsc_mhz();
    print_header(&opts, &bt86, qemu.as_deref(), host_mhz);

    let suites: Vec<Suite> = match opts.only {
        Some(s) => vec![s],
        None => Suite::ALL.to_vec(),
    };
    for suite in suites {
        let engines = engines_for(suite, &bt86, qemu.as_deref());
        let results = run_suite(suite, &engines, opts.runs);
        print_report(suite, &engines, &results, host_mhz);
    }
    ExitCode::SUCCESS
}

// ---- options -------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Options {
    runs: usize,
    only: Option<Suite>,
    bt86: Option<PathBuf>,
    qemu: Option<PathBuf>,
    help: bool,
    /// The arguments as given, for the header.
    argv: Vec<String>,
}

impl Options {
    fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
        let argv: Vec<String> = args.collect();
        let mut o = Options { runs: 5, argv: argv.clone(), ..Options::default() };
        let mut it = argv.into_iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
            match a.as_str() {
                "--runs" => o.runs = value("--runs")?.parse().ok().filter(|&n| n > 0).ok_or("--runs needs a positive number")?,
                "--only" => {
                    let name = value("--only")?;
                    o.only = Some(Suite::from_name(&name).ok_or(format!("--only {name}: expected cpu, mmu, user or linux"))?);
                }
                "--bt86" => o.bt86 = Some(PathBuf::from(value("--bt86")?)),
                "--qemu" => o.qemu = Some(PathBuf::from(value("--qemu")?)),
                "-h" | "--help" => o.help = true,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(o)
    }
}

/// `bt86` beside this program (both are in target/release after `cargo build --release`).
fn default_bt86() -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    Ok(me.with_file_name("bt86"))
}

// ---- engines and runs --------------------------------------------------------------------------

/// How a benchmark program is run.
#[derive(Clone, Debug)]
struct Engine {
    /// Column title: "native", "bt86" (or for bench-user "bt86 direct", "bt86 translate",
    /// "bt86 adaptive") or "QEMU".
    name: &'static str,
    /// The command, or why this engine cannot run (shown instead of its numbers).
    how: Result<(PathBuf, Vec<String>), String>,
    /// The exit status of a complete run.
    done_status: i32,
}

fn engines_for(suite: Suite, bt86: &Path, qemu: Option<&Path>) -> Vec<Engine> {
    let Some(kernel) = suite.kernel() else {
        return linux_engines(bt86, qemu, bt86_guests::linux::debian_kernel(), Suite::linux_initramfs());
    };
    let kernel = kernel.to_string_lossy().into_owned();
    let mut v = Vec::new();
    if let Some(native) = suite.native() {
        v.push(Engine { name: "native", how: native.map(|p| (p, Vec::new())).map_err(|e| format!("not built: {e}")), done_status: 0 });
    }
    let bt86_run = |extra: &[&str]| {
        let mut args: Vec<String> = vec!["run".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(["--kernel".to_string(), kernel.clone()]);
        Ok((bt86.to_path_buf(), args))
    };
    if suite == Suite::User {
        for (name, mode) in USER_EXEC_MODES {
            v.push(Engine { name, how: bt86_run(&["--user-exec", mode]), done_status: 1 });
        }
        v.push(Engine { name: IN_PROCESS.0, how: bt86_run(&["--user-exec", "direct"]).map(in_process), done_status: 1 });
    } else {
        v.push(Engine { name: "bt86", how: bt86_run(&[]), done_status: 1 });
    }
    let mut qemu_args: Vec<String> = QEMU_ARGS.iter().map(|s| s.to_string()).collect();
    qemu_args.extend(["-kernel".to_string(), kernel]);
    v.push(Engine {
        name: "QEMU",
        how: qemu
            .map(|q| (q.to_path_buf(), qemu_args))
            .ok_or_else(|| "not installed (qemu-system-i386; Debian: qemu-system-x86)".to_string()),
        done_status: 1,
    });
    v
}

/// The Linux benchmark's engines: the program natively, then Debian's `kernel` booting
/// `initrd` under bt86 (each `--user-exec` mode) and QEMU; all end with exit status 0.
fn linux_engines(bt86: &Path, qemu: Option<&Path>, kernel: Result<PathBuf, String>, initrd: Result<PathBuf, String>) -> Vec<Engine> {
    let native = Suite::Linux.native().expect("the Linux benchmark runs natively");
    let mut v =
        vec![Engine { name: "native", how: native.map(|p| (p, Vec::new())).map_err(|e| format!("not built: {e}")), done_status: 0 }];
    let files = kernel.map_err(|e| format!("no kernel: {e}")).and_then(|k| initrd.map(|i| (k, i)).map_err(|e| format!("not built: {e}")));
    // The options are spelled `--kernel` for bt86, `-kernel` for QEMU.
    let boot = |program: &Path, args: &[&str], dash: &str| {
        files.clone().map(|(k, i)| {
            let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            for (opt, value) in [("kernel", k.to_string_lossy()), ("initrd", i.to_string_lossy()), ("append", LINUX_APPEND.into())] {
                a.extend([format!("{dash}{opt}"), value.into_owned()]);
            }
            (program.to_path_buf(), a)
        })
    };
    for (name, mode) in USER_EXEC_MODES {
        v.push(Engine { name, how: boot(bt86, &["run", "--user-exec", mode], "--"), done_status: 0 });
    }
    v.push(Engine { name: IN_PROCESS.0, how: boot(bt86, &["run", "--user-exec", "direct"], "--").map(in_process), done_status: 0 });
    let how = match qemu {
        Some(q) => boot(q, bt86_guests::linux::QEMU_LINUX_ARGS, "-"),
        None => Err("not installed (qemu-system-i386; Debian: qemu-system-x86)".to_string()),
    };
    v.push(Engine { name: "QEMU", how, done_status: 0 });
    v
}

/// One successful run of a benchmark program.
#[derive(Clone, Debug)]
struct Sample {
    out: Output,
    /// Guest TSC ticks per microsecond of wall time between the clock lines.
    tsc_mhz: Option<f64>,
}

/// All runs of one engine: the samples, and the first failure (after which it is not run).
#[derive(Clone, Debug, Default)]
struct EngineResults {
    samples: Vec<Sample>,
    failure: Option<String>,
}

fn run_suite(suite: Suite, engines: &[Engine], runs: usize) -> Vec<EngineResults> {
    let mut results = vec![EngineResults::default(); engines.len()];
    for run in 1..=runs {
        let mut progress = format!("[{} {run}/{runs}]", suite.name());
        for (engine, res) in engines.iter().zip(results.iter_mut()) {
            let Ok((program, args)) = &engine.how else {
                continue;
            };
            if res.failure.is_some() {
                continue;
            }
            let mut cmd = Command::new(program);
            cmd.args(args);
            let started = Instant::now();
            match run_program(cmd, engine.done_status) {
                Ok(sample) => res.samples.push(sample),
                Err(why) => res.failure = Some(why),
            }
            let _ = write!(progress, "  {} {:.1} s", engine.name, started.elapsed().as_secs_f64());
            if res.failure.is_some() {
                progress.push_str(" (failed: not run again)");
            }
        }
        eprintln!("{progress}");
    }
    results
}

/// Runs one benchmark program to its end; Err says what went wrong ("failed (status 3): ...").
fn run_program(cmd: Command, done_status: i32) -> Result<Sample, String> {
    let run = run_timed(cmd, TIMEOUT).map_err(|e| format!("cannot run: {e}"))?;
    let mut out = Output::parse(&run.stdout);
    // The Linux benchmark's host wall time to /init: when its marker line began to arrive.
    if let Some(i) = run.stdout.lines().position(|l| l.starts_with(BOOT_MARKER))
        && let Some(at) = run.line_starts.get(i)
    {
        let after = out.values.iter().position(|(n, _)| n == "boot-uptime").map_or(0, |p| p + 1);
        out.values.insert(after, ("boot-wall".to_string(), at.as_nanos() as u64));
    }
    let first_err = run.stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    let why = if run.timed_out {
        Some(format!("failed (timed out after {} s)", TIMEOUT.as_secs()))
    } else if run.status != Some(done_status) {
        Some(match run.status {
            Some(s) => format!("failed (status {s})"),
            None => "failed (killed by a signal)".to_string(),
        })
    } else if !out.complete() {
        Some("failed (incomplete output)".to_string())
    } else {
        None
    };
    if let Some(why) = why {
        let bail = run.stdout.lines().find(|l| l.starts_with("Bail out!"));
        let detail = bail.unwrap_or(first_err);
        return Err(if detail.is_empty() { why } else { format!("{why}: {detail}") });
    }
    let tsc_mhz = match (out.clock, out.clock_lines) {
        ((Some(t0), Some(t1)), (Some(l0), Some(l1))) if t1 > t0 => match (run.line_times.get(l0), run.line_times.get(l1)) {
            (Some(&w0), Some(&w1)) if w1 > w0 + Duration::from_millis(20) => Some((t1 - t0) as f64 / (w1 - w0).as_secs_f64() / 1e6),
            _ => None,
        },
        _ => None,
    };
    Ok(Sample { out, tsc_mhz })
}

/// What a program printed, with the time (since it started) at which each line arrived.
struct TimedRun {
    stdout: String,
    line_times: Vec<Duration>,
    /// When the first byte of each line arrived.
    line_starts: Vec<Duration>,
    stderr: String,
    status: Option<i32>,
    timed_out: bool,
}

/// Runs `cmd` (stdin /dev/null), timestamping each stdout line as it arrives (its first byte
/// and its end); kills it after `timeout`.
fn run_timed(mut cmd: Command, timeout: Duration) -> io::Result<TimedRun> {
    let start = Instant::now();
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = thread::spawn(move || {
        let mut r = stdout;
        let (mut text, mut times, mut starts, mut line) = (String::new(), Vec::new(), Vec::new(), Vec::new());
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = r.read(&mut chunk) {
            let now = start.elapsed();
            for &b in &chunk[..n] {
                if line.is_empty() {
                    starts.push(now);
                }
                line.push(b);
                if b == b'\n' {
                    times.push(now);
                    text.push_str(&String::from_utf8_lossy(&line));
                    line.clear();
                }
            }
        }
        if !line.is_empty() {
            times.push(start.elapsed());
            text.push_str(&String::from_utf8_lossy(&line));
        }
        (text, times, starts)
    });
    let err_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    });
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() >= timeout {
            timed_out = true;
            let _ = child.kill();
            break child.wait()?;
        }
        thread::sleep(Duration::from_millis(5));
    };
    let (stdout, line_times, line_starts) = out_reader.join().unwrap_or_default();
    Ok(TimedRun {
        stdout,
        line_times,
        line_starts,
        stderr: err_reader.join().unwrap_or_default(),
        status: if timed_out { None } else { status.code() },
        timed_out,
    })
}

// ---- the report ----------------------------------------------------------------------------------

/// One benchmark's results, reduced to what the table shows.
struct Summary<'a> {
    engines: &'a [Engine],
    results: &'a [EngineResults],
    /// The rows: value names in the order the programs printed them.
    names: Vec<String>,
    /// `medians[row][engine]`, in host TSC cycles.
    medians: Vec<Vec<Option<f64>>>,
    /// Per engine, the median guest TSC rate against wall time (MHz).
    rates: Vec<Option<f64>>,
    /// Remarks to print below the table.
    notes: Vec<String>,
}

impl<'a> Summary<'a> {
    /// `host_mhz`: the rate the engines' clocks should tick at against wall time (the host
    /// TSC's; 1000 for the Linux benchmark's nanoseconds). QEMU's values are rescaled if its
    /// clock is a TSC (not for the Linux benchmark: its boot-wall row is the host's own).
    fn new(engines: &'a [Engine], results: &'a [EngineResults], host_mhz: f64) -> Summary<'a> {
        Summary::with_clock(engines, results, host_mhz, true)
    }

    fn with_clock(engines: &'a [Engine], results: &'a [EngineResults], host_mhz: f64, rescale_qemu: bool) -> Summary<'a> {
        let rates: Vec<Option<f64>> = results.iter().map(|r| median_f64(r.samples.iter().filter_map(|s| s.tsc_mhz).collect())).collect();
        // QEMU's values are rescaled only if its clock provably does not tick at the host rate.
        let mut notes = Vec::new();
        let mut scale = vec![1.0; engines.len()];
        for (i, e) in engines.iter().enumerate() {
            let Some(rate) = rates[i] else { continue };
            if (rate / host_mhz - 1.0).abs() <= RATE_TOLERANCE {
                continue;
            }
            if !rescale_qemu {
                notes.push(format!(
                    "{}: its clock ran {:.3}x as fast as wall time (between the clock lines); its values are as it measured them.",
                    e.name,
                    rate / host_mhz
                ));
            } else if e.name == "QEMU" {
                scale[i] = host_mhz / rate;
                notes.push(format!(
                    "QEMU's guest TSC ticked at {rate:.0} MHz, not the host's {host_mhz:.0} MHz: \
                     its values were converted to host cycles (x {:.3}).",
                    scale[i]
                ));
            } else {
                notes.push(format!(
                    "{}: its TSC seemed to tick at {rate:.0} MHz (host {host_mhz:.0} MHz); its \
                     output may be buffered, which spoils this check, not the values.",
                    e.name
                ));
            }
        }

        let mut names: Vec<String> = Vec::new();
        for s in results.iter().flat_map(|r| &r.samples) {
            for (n, _) in &s.out.values {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
        }
        let medians = names
            .iter()
            .map(|n| {
                results
                    .iter()
                    .zip(&scale)
                    .map(|(r, k)| {
                        let values = r.samples.iter().filter_map(|s| s.out.values.iter().find(|(m, _)| m == n)).map(|(_, v)| *v as f64 * k);
                        median_f64(values.collect())
                    })
                    .collect()
            })
            .collect();
        Summary { engines, results, names, medians, rates, notes }
    }

    /// The median of row `row` on the engine called `engine`, if it has one.
    fn value(&self, row: usize, engine: &str) -> Option<f64> {
        let e = self.engines.iter().position(|e| e.name == engine)?;
        self.medians[row][e]
    }

    /// The table cell for row `row` on the engine called `engine`.
    fn cell(&self, row: usize, engine: &str) -> String {
        let Some(e) = self.engines.iter().position(|e| e.name == engine) else {
            return "n/a".into();
        };
        match (self.medians[row][e], &self.engines[e].how) {
            (Some(v), _) => format!("{v:.0}"),
            (None, Err(_)) => "n/a".into(),
            (None, Ok(_)) if self.results[e].samples.is_empty() => "failed".into(),
            (None, Ok(_)) => "-".into(),
        }
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or("-".to_string(), |r| format!("{r:.2}x"))
}

/// workload | native | bt86 | QEMU | bt86/native | QEMU/bt86, and a geometric-mean row.
fn cpu_table(sum: &Summary) -> Vec<Vec<String>> {
    let mut table = vec![["workload", "native", "bt86", "QEMU", "bt86/native", "QEMU/bt86"].map(String::from).to_vec()];
    let (mut slowdowns, mut speedups) = (Vec::new(), Vec::new());
    for (row, name) in sum.names.iter().enumerate() {
        let slowdown = ratio(sum.value(row, "bt86"), sum.value(row, "native"));
        let speedup = ratio(sum.value(row, "QEMU"), sum.value(row, "bt86"));
        slowdowns.extend(slowdown);
        speedups.extend(speedup);
        table.push(vec![
            name.clone(),
            sum.cell(row, "native"),
            sum.cell(row, "bt86"),
            sum.cell(row, "QEMU"),
            fmt_ratio(slowdown),
            fmt_ratio(speedup),
        ]);
    }
    let geomean =
        |v: &[f64]| (!v.is_empty() && v.len() == sum.names.len()).then(|| (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp());
    let mut last = vec![String::from("geomean"), String::new(), String::new(), String::new()];
    last.push(fmt_ratio(geomean(&slowdowns)));
    last.push(fmt_ratio(geomean(&speedups)));
    table.push(last);
    table
}

/// operation | bt86 | QEMU | QEMU/bt86 | VMware BT 2006.
fn mmu_table(sum: &Summary) -> Vec<Vec<String>> {
    let head = ["operation", "bt86", "QEMU", "host ops", "QEMU/bt86", "bt86/host ops", "VMware BT 2006"];
    let mut table = vec![head.map(String::from).to_vec()];
    for (row, name) in sum.names.iter().enumerate() {
        let reference = VMWARE_BT_2006.iter().find(|(m, _)| m == name);
        let bt86 = sum.value(row, "bt86");
        table.push(vec![
            name.clone(),
            sum.cell(row, "bt86"),
            sum.cell(row, "QEMU"),
            sum.cell(row, "native"),
            fmt_ratio(ratio(sum.value(row, "QEMU"), bt86)),
            fmt_ratio(ratio(bt86, sum.value(row, "native"))),
            reference.map_or("-".into(), |(_, v)| v.to_string()),
        ]);
    }
    table
}

/// operation | native | the three bt86 modes | direct in-process | QEMU | direct/native |
/// direct/translate | adaptive/best | QEMU/adaptive | sandbox cost (direct/in-process).
fn user_table(sum: &Summary) -> Vec<Vec<String>> {
    let [direct, translate, adaptive] = USER_EXEC_MODES.map(|(name, _)| name);
    let mut head = vec!["operation".to_string(), "native".to_string()];
    head.extend([direct, translate, adaptive, IN_PROCESS.0].map(String::from));
    head.extend(["QEMU", "direct/native", "direct/translate", "adaptive/best", "QEMU/adaptive", "sandbox cost"].map(String::from));
    let mut table = vec![head];
    for (row, name) in sum.names.iter().enumerate() {
        let (d, t, a) = (sum.value(row, direct), sum.value(row, translate), sum.value(row, adaptive));
        let best = d.zip(t).map(|(d, t)| d.min(t));
        table.push(vec![
            name.clone(),
            sum.cell(row, "native"),
            sum.cell(row, direct),
            sum.cell(row, translate),
            sum.cell(row, adaptive),
            sum.cell(row, IN_PROCESS.0),
            sum.cell(row, "QEMU"),
            fmt_ratio(ratio(d, sum.value(row, "native"))),
            fmt_ratio(ratio(d, t)),
            fmt_ratio(ratio(a, best)),
            fmt_ratio(ratio(sum.value(row, "QEMU"), a)),
            fmt_ratio(ratio(d, sum.value(row, IN_PROCESS.0))),
        ]);
    }
    table
}

/// The Linux benchmark's rows: how to show a row's nanoseconds (unit and divisor).
fn linux_unit(name: &str) -> (&'static str, f64) {
    match name {
        "boot-uptime" | "boot-wall" | "compute" => ("ms", 1e6),
        "fork" | "exec" => ("us", 1e3),
        _ => ("ns", 1.0),
    }
}

/// measurement | unit | native | the three bt86 modes | direct in-process | QEMU | each
/// mode/native | QEMU/best bt86 | sandbox cost (direct/in-process) | goal (and which modes
/// meet it).
fn linux_table(sum: &Summary) -> Vec<Vec<String>> {
    let modes = USER_EXEC_MODES.map(|(name, _)| name);
    let mut head: Vec<String> = ["measurement", "unit", "native"].map(String::from).to_vec();
    head.extend(modes.map(String::from));
    head.push(IN_PROCESS.0.into());
    head.push("QEMU".into());
    head.extend(USER_EXEC_MODES.map(|(_, mode)| format!("{mode}/native")));
    head.extend(["QEMU/best bt86", "sandbox cost", "goal: met by"].map(String::from));
    let mut table = vec![head];
    // The boot rows first (only the guests have them, so they are not the native run's first).
    let mut rows: Vec<(usize, &String)> = sum.names.iter().enumerate().collect();
    rows.sort_by_key(|(_, n)| !n.starts_with("boot-"));
    for (row, name) in rows {
        let (unit, div) = linux_unit(name);
        let show = |engine: &str| match sum.value(row, engine) {
            Some(v) if div > 1.0 => format!("{:.2}", v / div),
            Some(v) => format!("{v:.0}"),
            None => sum.cell(row, engine),
        };
        let mut line = vec![name.clone(), unit.to_string(), show("native")];
        line.extend(modes.map(show));
        line.push(show(IN_PROCESS.0));
        line.push(show("QEMU"));
        let native = sum.value(row, "native");
        line.extend(modes.map(|m| fmt_ratio(ratio(sum.value(row, m), native))));
        let best = modes.iter().filter_map(|m| sum.value(row, m)).min_by(f64::total_cmp);
        line.push(fmt_ratio(ratio(sum.value(row, "QEMU"), best)));
        line.push(fmt_ratio(ratio(sum.value(row, modes[0]), sum.value(row, IN_PROCESS.0))));
        line.push(match LINUX_GOALS.iter().find(|(n, _, _)| n == name) {
            None => "-".into(),
            Some(&(_, bound, against)) => {
                let reference = sum.value(row, against);
                let met: Vec<&str> = USER_EXEC_MODES
                    .iter()
                    .filter(|(m, _)| ratio(sum.value(row, m), reference).is_some_and(|r| r <= bound))
                    .map(|(_, mode)| *mode)
                    .collect();
                format!("<= {bound}x {against}: {}", if met.is_empty() { "none".to_string() } else { met.join(", ") })
            }
        });
        table.push(line);
    }
    table
}

fn print_report(suite: Suite, engines: &[Engine], results: &[EngineResults], host_mhz: f64) {
    println!();
    match suite {
        Suite::Cpu => println!("## bench-cpu: TSC cycles per workload (median of runs; each run: fastest of 3 repetitions)"),
        Suite::Mmu => println!(
            "## bench-mmu: TSC cycles per operation (median of runs; each run: lowest of 3 rounds, \
             each the average over many operations minus the same loop without them)"
        ),
        Suite::User => println!(
            "## bench-user: TSC cycles per operation at CPL 3 (median of runs; each run: lowest of 3 \
             rounds, each the average over many operations minus the same loop without them; \
             usercompute: cycles per workload, fastest of 3)"
        ),
        Suite::Linux => println!(
            "## Linux: Debian 12's i386 kernel with tests/linux/bench.c as /init (median of runs; \
             boot: power-on to /init; the others per operation, each run the lowest of 3 rounds \
             timed with CLOCK_MONOTONIC; compute: one workload)"
        ),
    }
    println!();
    let mut sum = match suite {
        Suite::Linux => Summary::with_clock(engines, results, 1000.0, false),
        _ => Summary::new(engines, results, host_mhz),
    };
    if sum.names.is_empty() {
        println!("(no engine completed a run)");
    } else {
        print_table(&match suite {
            Suite::Cpu => cpu_table(&sum),
            Suite::Mmu => mmu_table(&sum),
            Suite::User => user_table(&sum),
            Suite::Linux => linux_table(&sum),
        });
    }
    println!();
    match suite {
        Suite::Cpu => {}
        Suite::Mmu => sum.notes.extend([
            "VMware BT 2006: Adams & Agesen, \"A Comparison of Software and Hardware Techniques \
             for x86 Virtualization\", ASPLOS 2006 (cycles on their 2006 host, for scale)."
                .to_string(),
            "host ops (the \"native\" program, tests/guests/bench/native-mmu.c): the fewest host \
             operations a shadow page table made of host mappings needs for the row, made alone by a \
             64-bit process on this host: pgfault = one SIGSEGV and sigreturn; hiddenfill = a fault \
             whose handler maps 256 pages in one mmap, per page; ptemod = one mmap(MAP_FIXED) over a \
             mapped page and a load; ptemod-cold = the page reserved again, a fault, a mmap; \
             cr3switch = 64 pages reserved again, a fault, one mmap of all 64; sweep = one mmap per \
             scattered page, per page touched. bt86/host ops is what bt86 adds to them."
                .to_string(),
        ]),
        Suite::User => sum.notes.extend([
            "bt86 direct, translate, adaptive: `bt86 run --user-exec direct|translate|adaptive`. \
                 direct/translate below 1: direct execution is the faster; adaptive/best: adaptive \
                 against the faster of direct and translate (1.00x: it chose well)."
                .to_string(),
            "native: the same user-mode machine code as a 32-bit Linux process, with Linux as the \
                 kernel. Only usercompute is the same operation; the others are references: syscall \
                 = getppid through int 0x80 (a real system call, not a null handler), sysenter = \
                 getppid through the vDSO's __kernel_vsyscall (sysenter on Intel), userpf = a minor \
                 fault on untouched anonymous memory (Linux maps its zero page), userde = a SIGFPE \
                 signal delivered to a handler that steps over the divl, and sigreturn."
                .to_string(),
        ]),
        Suite::Linux => sum.notes.extend([
            format!(
                "bt86 direct, translate, adaptive: `bt86 run --user-exec MODE --kernel vmlinuz --initrd \
                 initramfs --append \"{LINUX_APPEND}\"`; QEMU: `qemu-system-i386 {} -kernel ... -initrd ... \
                 -append ...`; native: the same static program as a 32-bit process on this host.",
                bt86_guests::linux::QEMU_LINUX_ARGS.join(" ")
            ),
            "boot-uptime: the guest's /proc/uptime read first thing in /init; boot-wall: host wall time \
                 from starting the engine to the first byte of /init's first line. int80, sysenter: \
                 getppid through int $0x80 and through the vDSO's __kernel_vsyscall; fork: \
                 fork+_exit+waitpid; exec: fork+exec of a static program+waitpid; pipe: a one-byte round \
                 trip between two processes over two pipes (natively both pinned to one CPU); pagefault: per page \
                 of mmap 16 MiB, write each page, munmap; compute: bench-user's usercompute workload."
                .to_string(),
        ]),
    }

    // Runs per engine, failures, clock rates, notes, and whether the results agree.
    for (i, (e, r)) in engines.iter().zip(results).enumerate() {
        let runs = plural(r.samples.len(), "run");
        let state = match (&e.how, &r.failure) {
            (Err(why), _) => why.clone(),
            (Ok(_), Some(f)) if r.samples.is_empty() => f.clone(),
            (Ok(_), Some(f)) => format!("{runs}, then {f}"),
            (Ok(_), None) => runs,
        };
        let rate = match (suite, sum.rates[i]) {
            (_, None) => String::new(),
            (Suite::Linux, Some(m)) => format!("; its clock {:.3}x wall time", m / 1000.0),
            (_, Some(m)) => format!("; guest TSC {m:.0} MHz against wall time"),
        };
        println!("- {}: {state}{rate}", e.name);
    }
    for n in &sum.notes {
        println!("- {n}");
    }
    check_results(engines, results);
}

/// Every engine must have computed what the others computed (`check` lines).
fn check_results(engines: &[Engine], results: &[EngineResults]) {
    let mut reference: Vec<(String, u32, &str)> = Vec::new();
    let mut bad = Vec::new();
    for (e, r) in engines.iter().zip(results) {
        for s in &r.samples {
            for (n, v) in &s.out.checks {
                match reference.iter().find(|(m, _, _)| m == n) {
                    None => reference.push((n.clone(), *v, e.name)),
                    Some((_, w, by)) if w != v => bad.push(format!("{n}: {} computed {v:#010x}, {by} {w:#010x}", e.name)),
                    Some(_) => {}
                }
            }
        }
    }
    bad.dedup();
    if bad.is_empty() {
        if !reference.is_empty() {
            println!("- results (check lines): identical on every engine and run");
        }
    } else {
        println!("- WRONG RESULTS: {}", bad.join("; "));
    }
}

fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols).map(|c| rows.iter().filter_map(|r| r.get(c)).map(String::len).max().unwrap_or(0)).collect();
    for (i, row) in rows.iter().enumerate() {
        let mut line = String::from("|");
        for (c, text) in row.iter().enumerate() {
            if c == 0 {
                let _ = write!(line, " {text:<w$} |", w = width[c]);
            } else {
                let _ = write!(line, " {text:>w$} |", w = width[c]);
            }
        }
        println!("{line}");
        if i == 0 {
            let mut sep = String::from("|");
            for (c, w) in width.iter().enumerate() {
                sep.push_str(&if c == 0 { format!(":{}|", "-".repeat(w + 1)) } else { format!("{}:|", "-".repeat(w + 1)) });
            }
            println!("{sep}");
        }
    }
}

/// "1 run", "5 runs".
fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn median_f64(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 })
}

// ---- the machine -------------------------------------------------------------------------------

fn print_header(opts: &Options, bt86: &Path, qemu: Option<&Path>, host_mhz: f64) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        cpuinfo
            .lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    let kernel_tsc = command_output("dmesg", &[])
        .and_then(|t| t.lines().find_map(|l| l.split_once("tsc: Detected ").map(|(_, r)| r.trim().to_string())));
    let first_line =
        |program: &Path, arg: &str| command_output(&program.to_string_lossy(), &[arg]).and_then(|t| t.lines().next().map(str::to_string));

    println!("# bt86 benchmarks");
    println!();
    println!(
        "- command: `cargo run --release -p bt86-guests --bin bench{}`",
        if opts.argv.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = opts.argv.iter().map(|a| shell_quote(a)).collect();
            format!(" -- {}", quoted.join(" "))
        }
    );
    println!("- date: {}", utc_now());
    println!(
        "- machine: {} ({cpus} CPUs), TSC {host_mhz:.1} MHz measured{}",
        field("model name").unwrap_or_else(|| "unknown CPU".into()),
        kernel_tsc.map_or(String::new(), |k| format!(" (kernel: {k})"))
    );
    if let Some(rev) = command_output("git", &["-C", env!("CARGO_MANIFEST_DIR"), "describe", "--always", "--dirty"]) {
        println!("- source: {}", rev.trim());
    }
    println!("- bt86: {}{}", bt86.display(), first_line(bt86, "--version").map_or(String::new(), |v| format!(" ({v})")));
    match qemu {
        Some(q) => println!("- QEMU: {}{}, TCG", q.display(), first_line(q, "--version").map_or(String::new(), |v| format!(" ({v})"))),
        None => println!("- QEMU: not installed"),
    }
    println!("- runs: {} per engine, interleaved", opts.runs);
}

/// `a` as a shell word: as it is if it is plain, else in single quotes.
fn shell_quote(a: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !a.is_empty() && a.chars().all(plain) { a.to_string() } else { format!("'{}'", a.replace('\'', r"'\''")) }
}

/// The host TSC frequency in MHz, measured against the monotonic clock over 200 ms.
fn measure_tsc_mhz() -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no memory effects, and Linux allows it in user mode.
        let tsc = || unsafe { std::arch::x86_64::_rdtsc() };
        let (t0, c0) = (Instant::now(), tsc());
        thread::sleep(Duration::from_millis(200));
        let (t1, c1) = (Instant::now(), tsc());
        (c1 - c0) as f64 / (t1 - t0).as_secs_f64() / 1e6
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        f64::NAN
    }
}

/// The stdout of a short command, if it ran and succeeded.
fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// "YYYY-MM-DD HH:MM UTC" without a date library (days to civil date: H. Hinnant's method).
fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let o = Options::parse(["--runs", "3", "--only", "mmu"].map(String::from).into_iter()).unwrap();
        assert_eq!((o.runs, o.only), (3, Some(Suite::Mmu)));
        assert!(Options::parse(["--runs", "0"].map(String::from).into_iter()).is_err());
        assert!(Options::parse(["--only", "gpu"].map(String::from).into_iter()).is_err());
        let o = Options::parse(["--only", "user"].map(String::from).into_iter()).unwrap();
        assert_eq!(o.only, Some(Suite::User));
        assert!(Options::parse(["--bt86"].map(String::from).into_iter()).is_err());
    }

    fn engine(name: &'static str, runs: bool) -> Engine {
        Engine { name, how: if runs { Ok((PathBuf::from("x"), Vec::new())) } else { Err("missing".into()) }, done_status: 0 }
    }

    fn sample(values: &[(&str, u64)]) -> Sample {
        let out = Output { values: values.iter().map(|(n, v)| (n.to_string(), *v)).collect(), ..Output::default() };
        Sample { out, tsc_mhz: Some(1000.0) }
    }

    #[test]
    fn tables() {
        let engines = [engine("native", true), engine("bt86", true), engine("QEMU", false)];
        let results = [
            EngineResults { samples: vec![sample(&[("a", 100), ("b", 10)]), sample(&[("a", 300), ("b", 30)])], failure: None },
            EngineResults { samples: vec![sample(&[("a", 400), ("b", 10)])], failure: Some("failed (status 3)".into()) },
            EngineResults::default(),
        ];
        let sum = Summary::new(&engines, &results, 1000.0);
        assert_eq!(sum.names, ["a", "b"]);
        let t = cpu_table(&sum);
        assert_eq!(t[1], ["a", "200", "400", "n/a", "2.00x", "-"]);
        assert_eq!(t[2], ["b", "20", "10", "n/a", "0.50x", "-"]);
        assert_eq!(t[3][4], "1.00x");
        let failed = [EngineResults::default(), EngineResults::default()];
        let engines = [engine("bt86", true), engine("QEMU", true)];
        let sum = Summary::new(&engines, &failed, 1000.0);
        assert!(sum.names.is_empty());
        let ok = [EngineResults::default(), EngineResults { samples: vec![sample(&[("pgfault", 900)])], failure: None }];
        let sum = Summary::new(&engines, &ok, 1000.0);
        assert_eq!(mmu_table(&sum)[1], ["pgfault", "failed", "900", "n/a", "-", "-", "3927"]);
    }

    #[test]
    fn user_tables() {
        let engines = engines_for(Suite::User, Path::new("bt86"), None);
        let names: Vec<&str> = engines.iter().map(|e| e.name).collect();
        assert_eq!(names, ["native", "bt86 direct", "bt86 translate", "bt86 adaptive", "bt86 direct in-process", "QEMU"]);
        let (_, args) = engines[2].how.as_ref().unwrap();
        assert_eq!(args[..3], ["run", "--user-exec", "translate"]);
        let (program, args) = engines[4].how.as_ref().unwrap();
        assert_eq!(
            (program.to_str().unwrap(), &args[..5]),
            ("env", &["BT86_SANDBOX=off", "bt86", "run", "--user-exec", "direct"].map(String::from)[..])
        );
        assert_eq!(engines_for(Suite::Mmu, Path::new("bt86"), None).iter().map(|e| e.name).collect::<Vec<_>>(), ["native", "bt86", "QEMU"]);

        let results = [
            EngineResults { samples: vec![sample(&[("syscall", 500), ("usercompute", 1000)])], failure: None },
            EngineResults { samples: vec![sample(&[("syscall", 8000), ("usercompute", 1020)])], failure: None },
            EngineResults { samples: vec![sample(&[("syscall", 400), ("usercompute", 1500)])], failure: None },
            EngineResults { samples: vec![sample(&[("syscall", 400), ("usercompute", 1020)])], failure: None },
            EngineResults { samples: vec![sample(&[("syscall", 4000), ("usercompute", 1010)])], failure: None },
            EngineResults::default(),
        ];
        let sum = Summary::new(&engines, &results, 1000.0);
        let t = user_table(&sum);
        assert_eq!(t[0].len(), 12);
        assert_eq!(t[1], ["syscall", "500", "8000", "400", "400", "4000", "n/a", "16.00x", "20.00x", "1.00x", "-", "2.00x"]);
        assert_eq!(t[2], ["usercompute", "1000", "1020", "1500", "1020", "1010", "n/a", "1.02x", "0.68x", "1.00x", "-", "1.01x"]);
    }

    #[test]
    fn linux_tables() {
        let engines = linux_engines(Path::new("bt86"), Some(Path::new("qemu")), Ok("vmlinuz".into()), Ok("initrd".into()));
        let names: Vec<&str> = engines.iter().map(|e| e.name).collect();
        assert_eq!(names, ["native", "bt86 direct", "bt86 translate", "bt86 adaptive", "bt86 direct in-process", "QEMU"]);
        let (_, args) = engines[1].how.as_ref().unwrap();
        assert_eq!(args[..5], ["run", "--user-exec", "direct", "--kernel", "vmlinuz"]);
        let (_, args) = engines[5].how.as_ref().unwrap();
        assert!(args.ends_with(&["-kernel", "vmlinuz", "-initrd", "initrd", "-append", LINUX_APPEND].map(String::from)));

        let guest = |boot: u64, int80: u64| sample(&[("boot-uptime", boot), ("boot-wall", boot), ("int80", int80)]);
        let results = [
            EngineResults { samples: vec![sample(&[("int80", 100)])], failure: None },
            EngineResults { samples: vec![guest(1_000_000_000, 150)], failure: None },
            EngineResults { samples: vec![guest(2_000_000_000, 300)], failure: None },
            EngineResults { samples: vec![guest(1_500_000_000, 150)], failure: None },
            EngineResults { samples: vec![guest(1_000_000_000, 100)], failure: None },
            EngineResults { samples: vec![guest(3_000_000_000, 90)], failure: None },
        ];
        let sum = Summary::with_clock(&engines, &results, 1000.0, false);
        let t = linux_table(&sum);
        assert_eq!(t[1][..3], ["boot-uptime", "ms", "-"]);
        assert_eq!(t[1][3], "1000.00");
        assert_eq!(t[1][13], "<= 0.5x QEMU: direct, adaptive");
        assert_eq!(t[3][0], "int80");
        assert_eq!(t[3][8..], ["1.50x", "3.00x", "1.50x", "0.60x", "1.50x", "<= 2x native: direct, adaptive"]);
    }

    #[test]
    fn medians() {
        assert_eq!(median_f64(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median_f64(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median_f64(vec![]), None);
    }
}
