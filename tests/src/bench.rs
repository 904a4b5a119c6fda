//! The benchmarks in `tests/guests/bench/` (run by hand with the `bench` program, never by
//! `cargo test`): where `build.rs` put them, and how to read what they print.
//!
//! There are four: `bench-cpu` (compute workloads, as a guest kernel and as a native 32-bit
//! Linux program built from the same object file), `bench-mmu` (paging events, guest only),
//! `bench-user` (user-mode code and its exits to the guest kernel, as a guest kernel and
//! as a native program running the same user-mode object under Linux) and the Linux
//! benchmark (`tests/linux/bench.c`: boot time to /init, then system calls, processes, page
//! faults and compute, as /init of Debian's kernel and as a native program; its values are
//! nanoseconds of CLOCK_MONOTONIC). They are not test kernels and are not in
//! [`crate::kernels`]. Every program prints
//! lines of three kinds (see `guests/bench/bench.h`), which [`Output::parse`] collects:
//!
//! ```text
//! clock begin 11414369389493
//! bench intloop 82160848
//! check intloop 0xbb87348e
//! clock end 11419237546826
//! ```

use std::path::PathBuf;

include!(concat!(env!("OUT_DIR"), "/bench.rs"));

/// One of the four benchmark programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suite {
    /// `bench-cpu`: compute workloads; values are TSC cycles per workload.
    Cpu,
    /// `bench-mmu`: paging events; values are TSC cycles per operation.
    Mmu,
    /// `bench-user`: CPL 3 code and its exits (system calls, faults); values are TSC cycles
    /// per operation (for `usercompute`, per workload).
    User,
    /// The Linux benchmark: Debian's kernel booting `tests/linux/bench.c` as /init; values
    /// are nanoseconds (boot time to /init, then per operation).
    Linux,
}

impl Suite {
    /// Every benchmark program, in the order the runner runs them.
    pub const ALL: [Suite; 4] = [Suite::Cpu, Suite::Mmu, Suite::User, Suite::Linux];

    /// Its name, as on the runner's command line (`--only cpu|mmu|user`).
    pub fn name(self) -> &'static str {
        match self {
            Suite::Cpu => "cpu",
            Suite::Mmu => "mmu",
            Suite::User => "user",
            Suite::Linux => "linux",
        }
    }

    /// The suite called `name` (as [`Suite::name`] spells it).
    pub fn from_name(name: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The guest kernel (Multiboot ELF, run like the test kernels; exit status 1 when done);
    /// `None` for the Linux benchmark (Debian's kernel, see [`Suite::linux_initramfs`]).
    pub fn kernel(self) -> Option<PathBuf> {
        match self {
            Suite::Cpu => Some(BENCH_CPU_KERNEL),
            Suite::Mmu => Some(BENCH_MMU_KERNEL),
            Suite::User => Some(BENCH_USER_KERNEL),
            Suite::Linux => None,
        }
        .map(PathBuf::from)
    }

    /// The Linux benchmark's initramfs (the native program as `/init`), or why it was not
    /// built.
    pub fn linux_initramfs() -> Result<PathBuf, String> {
        LINUX_BENCH.map(|(_, cpio)| PathBuf::from(cpio)).map_err(str::to_string)
    }

    /// The native program running the same workloads (exit status 0 when done; for the
    /// MMU benchmark, which needs ring 0, the host operations each row needs instead),
    /// `Some(Err(why))` if it could not be built.
    pub fn native(self) -> Option<Result<PathBuf, String>> {
        let built = match self {
            Suite::Cpu => BENCH_CPU_NATIVE,
            Suite::Mmu => BENCH_MMU_NATIVE,
            Suite::User => BENCH_USER_NATIVE,
            Suite::Linux => LINUX_BENCH.map(|(native, _)| native),
        };
        Some(built.map(PathBuf::from).map_err(str::to_string))
    }
}

/// What one run of a benchmark program printed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Output {
    /// `bench NAME VALUE` lines, in order.
    pub values: Vec<(String, u64)>,
    /// `check NAME 0xHEX` lines, in order.
    pub checks: Vec<(String, u32)>,
    /// The TSC of `clock begin` and `clock end`.
    pub clock: (Option<u64>, Option<u64>),
    /// The index (in the text's lines) of the `clock begin` and `clock end` lines, so that a
    /// caller who timestamped the lines can find their arrival times.
    pub clock_lines: (Option<usize>, Option<usize>),
}

impl Output {
    /// Collects the benchmark lines of `text`; every other line is ignored.
    pub fn parse(text: &str) -> Output {
        let mut out = Output::default();
        for (i, line) in text.lines().enumerate() {
            let mut words = line.split_whitespace();
            let (Some(kind), Some(name), Some(value), None) = (words.next(), words.next(), words.next(), words.next()) else {
                continue;
            };
            match kind {
                "bench" => {
                    if let Ok(v) = value.parse() {
                        out.values.push((name.to_string(), v));
                    }
                }
                "check" => {
                    if let Some(Ok(v)) = value.strip_prefix("0x").map(|h| u32::from_str_radix(h, 16)) {
                        out.checks.push((name.to_string(), v));
                    }
                }
                "clock" => {
                    let Ok(v) = value.parse() else { continue };
                    match name {
                        "begin" => (out.clock.0, out.clock_lines.0) = (Some(v), Some(i)),
                        "end" => (out.clock.1, out.clock_lines.1) = (Some(v), Some(i)),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// True if the program got to its end (`clock end`) and reported something.
    pub fn complete(&self) -> bool {
        self.clock.1.is_some() && !self.values.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benchmarks_were_built() {
        for suite in Suite::ALL {
            assert_eq!(Suite::from_name(suite.name()), Some(suite));
            let Some(k) = suite.kernel() else { continue };
            assert!(k.is_file(), "{}: {} missing", suite.name(), k.display());
            assert!(crate::kernels().iter().all(|t| t.path != k), "benchmark kernels must not be test kernels");
            if let Some(Ok(native)) = suite.native() {
                assert!(native.is_file());
            }
        }
        assert!(Suite::Mmu.native().is_some());
        assert!(Suite::User.native().is_some());
        assert_eq!(Suite::from_name("gpu"), None);
    }

    #[test]
    fn parse_output() {
        let o = Output::parse("clock begin 100\nbench fib 1234\ncheck fib 0x000cb228\nnoise\nbench x y\n1..0\nclock end 900\n");
        assert_eq!(o.values, vec![("fib".to_string(), 1234)]);
        assert_eq!(o.checks, vec![("fib".to_string(), 0xcb228)]);
        assert_eq!(o.clock, (Some(100), Some(900)));
        assert_eq!(o.clock_lines, (Some(0), Some(6)));
        assert!(o.complete());
        assert!(!Output::parse("clock begin 1\nBail out! no\n").complete());
    }
}
