//! A fuzzing campaign: generate cases, run each on two engines, compare.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::compare::{compare, mismatch_report};
use super::engine::{Engine, GuestMemory, Outcome};
use super::generator::{Category, CategoryCounts, GenConfig, case_seed, generate};

/// Campaign settings.
#[derive(Clone, Debug)]
pub struct CampaignConfig {
    /// Each case has 1..=`max_case_len` instructions (before setup is counted in).
    pub max_case_len: u64,
    /// Stop after this many mismatches (0 = never stop early).
    pub stop_after_mismatches: u64,
    /// Mismatch reports kept in the [`CampaignReport`].
    pub keep_reports: usize,
    /// Print each mismatch report to stderr as it is found.
    pub print_mismatches: bool,
    /// Generator settings.
    pub generator: GenConfig,
    /// If one case runs longer than this, the campaign prints its seed and exits the
    /// process (an engine that loops forever cannot be interrupted otherwise).
    pub hang_timeout: Duration,
}

impl Default for CampaignConfig {
    fn default() -> CampaignConfig {
        CampaignConfig {
            max_case_len: 24,
            stop_after_mismatches: 0,
            keep_reports: 10,
            print_mismatches: false,
            generator: GenConfig::default(),
            hang_timeout: Duration::from_secs(20),
        }
    }
}

/// What a campaign did and found.
#[derive(Clone, Debug, Default)]
pub struct CampaignReport {
    /// Campaign seed.
    pub seed: u64,
    /// Cases run.
    pub cases: u64,
    /// Instructions generated in all cases (each case's code counted once).
    pub instructions: u64,
    /// Instructions per category.
    pub categories: CategoryCounts,
    /// Cases ending in each exception vector (by engine A).
    pub exceptions: [u64; 32],
    /// Cases where the engines disagreed.
    pub mismatches: u64,
    /// The first mismatch reports.
    pub reports: Vec<String>,
    /// Time spent in engine A's and B's `run`.
    pub time_a: Duration,
    /// See `time_a`.
    pub time_b: Duration,
    /// Wall-clock time of the whole campaign (generation included).
    pub elapsed: Duration,
    /// Engine names.
    pub engines: (String, String),
}

impl CampaignReport {
    /// Cases that ended in an exception.
    pub fn exception_cases(&self) -> u64 {
        self.exceptions.iter().sum()
    }
}

fn per_second(n: u64, d: Duration) -> f64 {
    if d.is_zero() { 0.0 } else { n as f64 / d.as_secs_f64() }
}

impl fmt::Display for CampaignReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "fuzz campaign seed {}: {} vs {}: {} cases, {} instructions, {} mismatches",
            self.seed, self.engines.0, self.engines.1, self.cases, self.instructions, self.mismatches
        )?;
        let cats: Vec<String> = Category::ALL
            .iter()
            .filter(|c| self.categories.get(**c) > 0)
            .map(|c| format!("{} {}", c.name(), self.categories.get(*c)))
            .collect();
        writeln!(f, "  instructions by category: {}", cats.join(", "))?;
        let exc: Vec<String> =
            self.exceptions.iter().enumerate().filter(|(_, n)| **n > 0).map(|(v, n)| format!("#{} {}", vector_name(v as u8), n)).collect();
        writeln!(
            f,
            "  cases ending in an exception: {} ({})",
            self.exception_cases(),
            if exc.is_empty() { "none".to_string() } else { exc.join(", ") }
        )?;
        writeln!(
            f,
            "  time: {:.2} s; {}: {:.0} instructions/s ({:.1} us/case), {}: {:.0} instructions/s ({:.1} us/case)",
            self.elapsed.as_secs_f64(),
            self.engines.0,
            per_second(self.instructions, self.time_a),
            self.time_a.as_secs_f64() * 1e6 / self.cases.max(1) as f64,
            self.engines.1,
            per_second(self.instructions, self.time_b),
            self.time_b.as_secs_f64() * 1e6 / self.cases.max(1) as f64,
        )
    }
}

/// Mnemonic of an exception vector.
pub fn vector_name(v: u8) -> &'static str {
    const NAMES: [&str; 21] =
        ["DE", "DB", "NMI", "BP", "OF", "BR", "UD", "NM", "DF", "CSO", "TS", "NP", "SS", "GP", "PF", "15", "MF", "AC", "MC", "XM", "VE"];
    NAMES.get(v as usize).copied().unwrap_or("?")
}

/// Runs cases of 1..=24 instructions on `a` and `b` until `instructions` instructions
/// have been generated, comparing every outcome.
pub fn run_campaign(instructions: u64, seed: u64, a: &mut dyn Engine, b: &mut dyn Engine, mem: &mut GuestMemory) -> CampaignReport {
    run_campaign_with(&CampaignConfig::default(), instructions, seed, a, b, mem)
}

/// [`run_campaign`] with explicit settings.
pub fn run_campaign_with(
    cfg: &CampaignConfig,
    instructions: u64,
    seed: u64,
    a: &mut dyn Engine,
    b: &mut dyn Engine,
    mem: &mut GuestMemory,
) -> CampaignReport {
    let start = Instant::now();
    let mut report = CampaignReport { seed, engines: (a.name().to_string(), b.name().to_string()), ..CampaignReport::default() };
    let watchdog = Watchdog::start(cfg.hang_timeout, seed);
    let mut index = 0u64;
    while report.instructions < instructions {
        let cs = case_seed(seed, index);
        watchdog.progress(index);
        let len = 1 + (cs % cfg.max_case_len.max(1));
        let case = generate(cs, len as usize, &cfg.generator);
        let t0 = Instant::now();
        let oa = a.run(mem, &case);
        let t1 = Instant::now();
        let ob = b.run(mem, &case);
        report.time_a += t1 - t0;
        report.time_b += t1.elapsed();
        report.cases += 1;
        report.instructions += case.instructions as u64;
        report.categories.add(&case.categories);
        if let Outcome::Exception { vector, .. } = oa {
            report.exceptions[(vector & 31) as usize] += 1;
        }
        let diffs = compare(&case, &oa, &ob);
        if !diffs.is_empty() {
            report.mismatches += 1;
            let text = mismatch_report(seed, index, &case, a.name(), b.name(), &diffs);
            if cfg.print_mismatches {
                eprintln!("{text}");
            }
            if report.reports.len() < cfg.keep_reports {
                report.reports.push(text);
            }
            if cfg.stop_after_mismatches != 0 && report.mismatches >= cfg.stop_after_mismatches {
                break;
            }
        }
        index += 1;
    }
    report.elapsed = start.elapsed();
    report
}

/// A thread that ends the process if the campaign makes no progress for `timeout`.
struct Watchdog {
    state: Arc<(AtomicU64, AtomicBool)>,
}

impl Watchdog {
    fn start(timeout: Duration, seed: u64) -> Watchdog {
        let state = Arc::new((AtomicU64::new(u64::MAX), AtomicBool::new(false)));
        let s = state.clone();
        std::thread::spawn(move || {
            let tick = Duration::from_millis(200).min(timeout);
            let mut last = u64::MAX;
            let mut since = Instant::now();
            while !s.1.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                let now = s.0.load(Ordering::Relaxed);
                if now != last {
                    last = now;
                    since = Instant::now();
                } else if since.elapsed() > timeout {
                    eprintln!(
                        "bt86: fuzz campaign seed {seed}: case {now} (case seed {:#018x}) did not finish within {} s",
                        case_seed(seed, now),
                        timeout.as_secs()
                    );
                    std::process::exit(1);
                }
            }
        });
        Watchdog { state }
    }

    fn progress(&self, index: u64) {
        self.state.0.store(index, Ordering::Relaxed);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.state.1.store(true, Ordering::Relaxed);
    }
}
