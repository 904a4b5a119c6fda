//! Counters the monitor keeps for `--stats`.

use std::collections::BTreeMap;
use std::fmt::Write;

/// Monitor-side counters.
#[derive(Default, Debug)]
pub struct Stats {
    /// Exits from translated code by reason (a hash map: counted on every exit).
    pub exits: rustc_hash::FxHashMap<&'static str, u64>,
    /// Callouts by instruction mnemonic (index `mnemonic * 2 + device-memory access`);
    /// named only in the report, to keep formatting and lookups out of the exit path.
    pub callouts: Vec<u64>,
    /// Exceptions delivered to the guest, by vector.
    pub exceptions: BTreeMap<u8, u64>,
    /// External interrupts delivered, by vector.
    pub interrupts: BTreeMap<u8, u64>,
    /// Dispatches that entered translated code from the monitor.
    pub dispatches: u64,
    /// Fragments invalidated because their code page was written.
    pub smc_invalidations: u64,
    /// Writes to write-protected code pages (faults).
    pub smc_faults: u64,
    /// Nanoseconds spent halted.
    pub halted_ns: u64,
    /// Nanoseconds in translated code (measured with `--stats`).
    pub translated_ns: u64,
}

impl Stats {
    /// The exit counts, sorted by reason.
    pub fn exits_sorted(&self) -> Vec<(&'static str, u64)> {
        let mut v: Vec<_> = self.exits.iter().map(|(k, v)| (*k, *v)).collect();
        v.sort();
        v
    }

    /// Counts one exit.
    pub fn exit(&mut self, why: &'static str) {
        *self.exits.entry(why).or_default() += 1;
    }

    /// Counts one instruction the monitor executed (`device`: it touched device memory).
    pub fn callout(&mut self, mnemonic: iced_x86::Mnemonic, device: bool) {
        if self.callouts.is_empty() {
            self.callouts = vec![0; iced_x86::Mnemonic::values().count() * 2];
        }
        self.callouts[mnemonic as usize * 2 + device as usize] += 1;
    }

    /// The callout counts with readable names ("mov", "mov (device memory)"), sorted.
    pub fn callouts_by_name(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = iced_x86::Mnemonic::values()
            .flat_map(|m| [(m, false), (m, true)])
            .filter_map(|(m, device)| {
                let n = *self.callouts.get(m as usize * 2 + device as usize)?;
                let name = format!("{m:?}").to_lowercase();
                (n > 0).then(|| (if device { format!("{name} (device memory)") } else { name }, n))
            })
            .collect();
        v.sort();
        v
    }
}

/// Appends `name: value` lines for a map, indented.
pub fn write_map<K: std::fmt::Display>(out: &mut String, title: &str, map: impl IntoIterator<Item = (K, u64)>) {
    let items: Vec<(K, u64)> = map.into_iter().collect();
    if items.is_empty() {
        let _ = writeln!(out, "  {title}: none");
        return;
    }
    let _ = writeln!(out, "  {title}:");
    for (k, v) in items {
        let _ = writeln!(out, "    {k:<24} {v}");
    }
}
