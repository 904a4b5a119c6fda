//! Comparing two engines' [`Outcome`]s of the same [`Case`], and reporting mismatches.
//!
//! Compared: how the case ended (finished, or which exception with which error code, EIP
//! and #PF address), the eight GPRs, EIP, the EFLAGS bits in [`Case::flags_mask`], the
//! x87 control word, status word, abridged tag word and the contents of every *valid*
//! x87 register (an empty register's bits cannot be observed without FXSAVE), MXCSR,
//! XMM0-7, and every byte of the data region. FIP, FDP, FCS, FDS and FOP are not
//! compared: they are host addresses in one engine and translation-cache addresses in
//! another.

use std::fmt::Write;

use super::engine::{Case, GPR_NAMES, Outcome};

/// One difference between two outcomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// What differs ("eax", "eflags", "data[0x1234]", ...).
    pub what: String,
    /// Engine A's value.
    pub a: String,
    /// Engine B's value.
    pub b: String,
}

fn diff(out: &mut Vec<Difference>, what: impl Into<String>, a: impl ToString, b: impl ToString) {
    out.push(Difference { what: what.into(), a: a.to_string(), b: b.to_string() });
}

fn hex_bytes(b: &[u8]) -> String {
    b.iter().rev().map(|x| format!("{x:02x}")).collect()
}

fn describe_end(o: &Outcome) -> String {
    match o {
        Outcome::Finished { .. } => "finished".to_string(),
        Outcome::Exception { vector, error_code, eip, fault_addr, .. } => {
            let mut s = format!("exception {vector} at {eip:#010x}");
            if let Some(e) = error_code {
                let _ = write!(s, ", error code {e:#x}");
            }
            if let Some(a) = fault_addr {
                let _ = write!(s, ", address {a:#010x}");
            }
            s
        }
    }
}

/// Maximum number of differing data bytes listed individually.
const MAX_DATA_DIFFS: usize = 16;

/// The differences between `a` and `b` (empty if they agree).
pub fn compare(case: &Case, a: &Outcome, b: &Outcome) -> Vec<Difference> {
    let mut out = Vec::new();
    let (ea, eb) = (describe_end(a), describe_end(b));
    if ea != eb {
        diff(&mut out, "end", ea, eb);
    }
    let (sa, sb) = (a.state(), b.state());
    for (i, name) in GPR_NAMES.iter().enumerate() {
        if sa.gpr[i] != sb.gpr[i] {
            diff(&mut out, *name, format!("{:#010x}", sa.gpr[i]), format!("{:#010x}", sb.gpr[i]));
        }
    }
    if sa.eip != sb.eip {
        diff(&mut out, "eip", format!("{:#010x}", sa.eip), format!("{:#010x}", sb.eip));
    }
    let m = case.flags_mask;
    if sa.eflags & m != sb.eflags & m {
        diff(
            &mut out,
            format!("eflags (mask {m:#x})"),
            format!("{:#010x} {}", sa.eflags & m, flag_names(sa.eflags & m)),
            format!("{:#010x} {}", sb.eflags & m, flag_names(sb.eflags & m)),
        );
    }
    let (fa, fb) = (&sa.fx, &sb.fx);
    if fa.fcw() != fb.fcw() {
        diff(&mut out, "fcw", format!("{:#06x}", fa.fcw()), format!("{:#06x}", fb.fcw()));
    }
    if fa.fsw() != fb.fsw() {
        diff(&mut out, "fsw", format!("{:#06x}", fa.fsw()), format!("{:#06x}", fb.fsw()));
    }
    if fa.ftw() != fb.ftw() {
        diff(&mut out, "ftw (abridged)", format!("{:#04x}", fa.ftw()), format!("{:#04x}", fb.ftw()));
    }
    for i in 0..8 {
        let (va, vb) = (fa.st_valid(i), fb.st_valid(i));
        if (va || vb) && fa.st(i) != fb.st(i) {
            diff(&mut out, format!("st({i})"), hex_bytes(&fa.st(i)), hex_bytes(&fb.st(i)));
        }
    }
    if fa.mxcsr() != fb.mxcsr() {
        diff(&mut out, "mxcsr", format!("{:#010x}", fa.mxcsr()), format!("{:#010x}", fb.mxcsr()));
    }
    for i in 0..8 {
        if fa.xmm(i) != fb.xmm(i) {
            diff(&mut out, format!("xmm{i}"), hex_bytes(&fa.xmm(i)), hex_bytes(&fb.xmm(i)));
        }
    }
    let (da, db) = (a.data(), b.data());
    if da.len() != db.len() {
        diff(&mut out, "data length", da.len(), db.len());
    } else if da != db {
        let differing: Vec<usize> = (0..da.len()).filter(|&i| da[i] != db[i]).collect();
        for &i in differing.iter().take(MAX_DATA_DIFFS) {
            diff(&mut out, format!("data[{i:#07x}]"), format!("{:#04x}", da[i]), format!("{:#04x}", db[i]));
        }
        if differing.len() > MAX_DATA_DIFFS {
            diff(&mut out, "data", format!("{} bytes differ in all", differing.len()), "");
        }
    }
    out
}

/// Names of the set flags among CF PF AF ZF SF DF OF.
pub fn flag_names(f: u32) -> String {
    let names = [(0, "CF"), (2, "PF"), (4, "AF"), (6, "ZF"), (7, "SF"), (10, "DF"), (11, "OF")];
    let set: Vec<&str> = names.iter().filter(|(b, _)| f & (1 << b) != 0).map(|(_, n)| *n).collect();
    format!("[{}]", set.join(" "))
}

/// A report of a mismatch: the seeds to reproduce it, the case's listing and initial
/// registers, and the differing values.
pub fn mismatch_report(campaign_seed: u64, case_index: u64, case: &Case, a_name: &str, b_name: &str, diffs: &[Difference]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "MISMATCH: campaign seed {campaign_seed}, case {case_index} (case seed {:#018x}), {} instructions",
        case.seed, case.instructions
    );
    let init = &case.init;
    let regs: Vec<String> = (0..8).map(|i| format!("{}={:08x}", GPR_NAMES[i], init.gpr[i])).collect();
    let _ = writeln!(s, "  initial: {} eflags={:08x} {}", regs.join(" "), init.eflags, flag_names(init.eflags));
    let _ = writeln!(
        s,
        "  initial fpu: fcw={:04x} fsw={:04x} ftw={:02x} mxcsr={:08x}",
        init.fx.fcw(),
        init.fx.fsw(),
        init.fx.ftw(),
        init.fx.mxcsr()
    );
    let _ = writeln!(s, "  code:");
    for line in &case.listing {
        let _ = writeln!(s, "    {line}");
    }
    let w = a_name.len().max(b_name.len()).max(8);
    let _ = writeln!(s, "  {:<24} {:<w$} {}", "differs", a_name, b_name, w = w.max(34));
    for d in diffs {
        let _ = writeln!(s, "  {:<24} {:<w$} {}", d.what, d.a, d.b, w = w.max(34));
    }
    s
}
