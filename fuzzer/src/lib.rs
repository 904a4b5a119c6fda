//! bt86's differential fuzzer: random sequences of unprivileged 32-bit instructions run
//! on two execution engines must end in identical registers, flags, FPU/SSE state and
//! memory, with no masking.
//!
//! The host CPU is the oracle ([`engine::NativeEngine`]: compatibility mode through an
//! LDT code segment, the monitor's native runner); the translator is checked against it
//! ([`translator_engine::TranslatorEngine`]: `bt86-translator` with the monitor's
//! emulation of callouts). The pieces:
//!
//! - [`generator`]: seeded random cases ([`engine::Case`]);
//! - [`engine`]: the [`engine::Engine`] interface, guest memory layout, native engine;
//! - [`compare`]: outcome comparison and mismatch reports;
//! - [`campaign`]: the loop that runs cases until an instruction count is reached.
//!
//! [`run`] and [`replay`] are what the `bt86-fuzz` binary runs (`bt86-fuzz N [--seed S]`,
//! `bt86-fuzz --case SEED`).
//!
//! The fuzzer is a crate of its own, out of the production binary, and it depends on the
//! monitor (`bt86`, through its library's small `bt86::harness` module) rather than the
//! other way round: both of its engines are built from monitor internals (the native
//! runner, the virtual CPU, the instruction emulation, the signal handlers), so the monitor
//! cannot call into the fuzzer without a dependency cycle. Hence its own binary,
//! `bt86-fuzz`, instead of a `bt86` subcommand.

pub mod campaign;
pub mod compare;
pub mod engine;
pub mod generator;
pub mod translator_engine;

#[cfg(test)]
mod tests;

pub use campaign::{CampaignConfig, CampaignReport, run_campaign, run_campaign_with};
pub use engine::{Case, Engine, GuestMemory, NativeEngine, Outcome, SetupError};

/// A deliberately wrong engine: runs natively, then perturbs the result. A campaign of
/// the native engine against it must report every case as a mismatch; it proves that
/// the comparator can fail.
pub struct MutantEngine {
    inner: NativeEngine,
    mutation: Mutation,
}

/// What [`MutantEngine`] perturbs after each run.
#[derive(Clone, Copy, Debug)]
pub enum Mutation {
    /// XOR these bits into EFLAGS.
    Flags(u32),
    /// XOR 0x01 into this byte of the data region.
    DataByte(usize),
    /// XOR 0x01 into byte 0 of this XMM register.
    Xmm(usize),
    /// XOR 1 into this GPR.
    Gpr(usize),
}

impl MutantEngine {
    /// A mutant of the native engine.
    pub fn new(mutation: Mutation) -> Result<MutantEngine, SetupError> {
        Ok(MutantEngine { inner: NativeEngine::new()?, mutation })
    }
}

impl Engine for MutantEngine {
    fn name(&self) -> &str {
        "mutant"
    }

    fn run(&mut self, mem: &mut GuestMemory, case: &Case) -> Outcome {
        let mut o = self.inner.run(mem, case);
        match self.mutation {
            Mutation::Flags(bits) => o.state_mut().eflags ^= bits,
            Mutation::DataByte(i) => o.data_mut()[i] ^= 1,
            Mutation::Xmm(i) => {
                let mut x = o.state().fx.xmm(i);
                x[0] ^= 1;
                o.state_mut().fx.set_xmm(i, x);
            }
            Mutation::Gpr(i) => o.state_mut().gpr[i] ^= 1,
        }
        o
    }
}

/// `bt86-fuzz N --seed S`: a campaign of `instructions` instructions, native against the
/// translator, preceded by a short native-against-mutant campaign that must find
/// mismatches in every case (proof that the comparator can fail).
pub fn run(instructions: u64, seed: u64) -> Result<CampaignReport, Box<dyn std::error::Error>> {
    // Each case allocates a few 68 KiB buffers; keep glibc from returning the heap top to
    // the kernel after every case (brk and fresh zero pages cost more than the case).
    // SAFETY: mallopt only tunes the allocator.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 16 << 20);
    }
    // Probe the host model before the windows take their part of the low 4 GiB.
    bt86::harness::host_model::get();
    let mut mem = GuestMemory::new()?;
    let mut native = NativeEngine::new()?;
    let mut mutant = MutantEngine::new(Mutation::Flags(0x1))?;
    let check = run_campaign(200, seed, &mut native, &mut mutant, &mut mem);
    if check.mismatches != check.cases {
        return Err(format!(
            "fuzzer self-check failed: the comparator caught {} of {} cases of a deliberately wrong engine",
            check.mismatches, check.cases
        )
        .into());
    }
    let mut translator = translator_engine::TranslatorEngine::new()?;
    let cfg = CampaignConfig { print_mismatches: true, ..CampaignConfig::default() };
    Ok(run_campaign_with(&cfg, instructions, seed, &mut native, &mut translator, &mut mem))
}

/// `bt86-fuzz --case SEED`: replays one case (its seed as a mismatch report
/// prints it) on both engines, with the translator tracing its fragments, and prints the
/// comparison.
pub fn replay(case_seed: u64, trace: bool) -> Result<bool, Box<dyn std::error::Error>> {
    let cfg = CampaignConfig::default();
    let len = 1 + (case_seed % cfg.max_case_len.max(1));
    let case = generator::generate(case_seed, len as usize, &cfg.generator);
    bt86::harness::host_model::get();
    let mut mem = GuestMemory::new()?;
    let mut native = NativeEngine::new()?;
    let mut translator = translator_engine::TranslatorEngine::new()?;
    translator.set_trace(trace);
    let a = native.run(&mut mem, &case);
    let b = translator.run(&mut mem, &case);
    let diffs = compare::compare(&case, &a, &b);
    if diffs.is_empty() {
        for line in &case.listing {
            println!("  {line}");
        }
        println!("no difference");
    } else {
        print!("{}", compare::mismatch_report(0, 0, &case, native.name(), translator.name(), &diffs));
    }
    Ok(diffs.is_empty())
}
