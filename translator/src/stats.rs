//! Translator counters, printed by the monitor's `--stats`.

/// What the translator has done.
#[derive(Clone, Copy, Debug, Default)]
pub struct TranslatorStats {
    /// Guest instructions translated.
    pub guest_instructions: u64,
    /// Fragments made.
    pub fragments: u64,
    /// Host code bytes emitted (all fragments, before any flush).
    pub tc_bytes: u64,
    /// Direct-branch links patched (chained).
    pub links_patched: u64,
    /// Links undone because their target was invalidated.
    pub links_unpatched: u64,
    /// Fragments invalidated (self-modifying code, flushes excluded).
    pub invalidations: u64,
    /// Whole-cache flushes.
    pub flushes: u64,
    /// Indirect-branch table entries written.
    pub ibl_inserts: u64,
    /// Entries TLB flushes visited (fragments reached without a lookup and their
    /// cross-page links): the work of `invlpg` and CR3 writes.
    pub tlb_flush_visits: u64,
    /// Fragments a CR3 write kept reachable (their code pages map the same frames in the
    /// new address space).
    pub tlb_flush_kept: u64,
    /// Page-straddling fragments set aside by TLB flushes ([`crate::reach`]).
    pub straddlers_parked: u64,
    /// Of those, taken back because their second page still held the same code.
    pub straddlers_reused: u64,
}
