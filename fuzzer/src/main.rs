//! `bt86-fuzz`: runs the differential fuzzer. `bt86-fuzz N [--seed S]` runs a campaign of
//! N guest instructions and prints its counts (exit status 0 with no mismatch, 1 with
//! some); `bt86-fuzz --case SEED [--trace-tc]` replays one case by the seed a mismatch
//! report prints. 2 for a bad command line, 70 when the fuzzer cannot set itself up.

use std::process::exit;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "bt86-fuzz",
    version,
    about = "bt86's differential fuzzer: random unprivileged 32-bit instructions, natively and through the translator"
)]
struct Args {
    /// Run a campaign of this many guest instructions.
    #[arg(value_name = "N", required_unless_present = "case")]
    instructions: Option<u64>,
    /// Random seed of the campaign.
    #[arg(long, value_name = "S", default_value = "1", value_parser = parse_u64)]
    seed: u64,
    /// Replay one case by its case seed (as a mismatch report prints it).
    #[arg(long, value_name = "CASE_SEED", value_parser = parse_u64, conflicts_with = "instructions")]
    case: Option<u64>,
    /// With --case: print the translator's fragments.
    #[arg(long, requires = "case")]
    trace_tc: bool,
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("{s:?} is not a number"))
}

fn main() {
    let args = Args::parse();
    let result = match args.case {
        Some(case_seed) => bt86_fuzzer::replay(case_seed, args.trace_tc),
        None => bt86_fuzzer::run(args.instructions.unwrap_or(0), args.seed).map(|report| {
            print!("{report}");
            report.mismatches == 0
        }),
    };
    match result {
        Ok(same) => exit(if same { 0 } else { 1 }),
        Err(e) => {
            eprintln!("bt86-fuzz: {e}");
            exit(70)
        }
    }
}
