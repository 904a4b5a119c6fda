//! The differential fuzzer as a test: a campaign of random unprivileged instructions run
//! natively (the host CPU in compatibility mode) and through the translator must end in
//! identical registers, flags, FPU/SSE state and memory. `bt86-fuzz` (the `bt86-fuzzer`
//! crate) first checks that its comparator catches a deliberately wrong engine.

use std::process::Command;

fn campaign(instructions: u64, seed: u64) {
    let out = Command::new(env!("CARGO_BIN_EXE_bt86-fuzz"))
        .args([&instructions.to_string(), "--seed", &seed.to_string()])
        .output()
        .expect("run bt86-fuzz");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(" 0 mismatches"),
        "fuzz campaign (seed {seed}) failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    eprint!("{stdout}");
}

#[test]
fn translator_matches_the_host_cpu() {
    // 150,000 instructions in all, two seeds (a different seed every day would make
    // failures hard to reproduce; `bt86-fuzz N --seed S` runs longer ones).
    campaign(100_000, 0x5eed_0001);
    campaign(50_000, 0x5eed_0002);
}
