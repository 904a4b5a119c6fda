//! Which engine runs user code when both could: code pages that must be translated, and
//! the adaptive policy (`--user-exec adaptive`).
//!
//! Code pages that cannot run natively (they hold `sysenter`) are marked the same way,
//! in every mode, when a fetch from one faults; the mark expires like any other, so a
//! frame that later holds other code is tried natively again.
//!
//! Every exit from direct execution is a host signal (a few microseconds here), while a
//! translated system call or exception is a callout (well under one). Code that exits
//! often — a loop making system calls, a page-fault storm — is therefore faster
//! translated. The adaptive policy watches where direct execution exits: when slices
//! ending in a guest event (system call, exception) at one code page are short several
//! times in a row, that page runs translated for a while; then it is tried natively
//! again, so code that changes behaviour is re-measured.

use rustc_hash::FxHashMap as HashMap;

/// A slice of native execution shorter than this, ended by a guest event, counts as a
/// sign that translation would be faster: translated code runs at ~1.2x native time and
/// handles the event without the host signal's cost. (For direct execution in this
/// process; with the sandbox an exit costs a round trip to the stub as well, and the
/// bound follows the measured round trip: [`Policy::set_exit_cost`].)
pub const SHORT_SLICE_NS: u64 = 10_000;
/// Short slices in a row that make a page hot.
pub const HOT_AFTER: u32 = 4;
/// Run-loop entries a hot page then runs translated before it is measured again (each
/// measurement costs a few host signals, spread over this many entries).
pub const HOT_ENTRIES: u32 = 4096;
/// Pages tracked before the table starts afresh.
const MAX_TRACKED: usize = 4096;

#[derive(Clone, Copy, Debug, Default)]
struct Heat {
    short_slices: u32,
    translated_entries_left: u32,
}

/// The policy's state.
#[derive(Debug, Default)]
pub struct Policy {
    adaptive: bool,
    /// Slices shorter than this count as short (see [`SHORT_SLICE_NS`]).
    short_slice_ns: u64,
    heat: HashMap<u64, Heat>,
    /// Run-loop entries that translated user code because of this policy.
    pub translated_entries: u64,
    /// Times a page became hot.
    pub hot_marks: u64,
}

impl Policy {
    /// The policy for `--user-exec direct` (`adaptive` false) or `adaptive`.
    pub fn new(adaptive: bool) -> Policy {
        Policy { adaptive, short_slice_ns: SHORT_SLICE_NS, ..Policy::default() }
    }

    /// An exit costs `ns` more than in this process (the sandbox's round trip to its
    /// stub): a slice of native length L costs L + exit and translated about 1.2 L, so
    /// translation wins below L = 5 exits, and a measured slice (which includes the round
    /// trip) is short below 6 round trips.
    pub fn set_exit_cost(&mut self, ns: u64) {
        self.short_slice_ns = SHORT_SLICE_NS.max(6 * ns);
    }

    /// The bound below which a slice counts as short.
    pub fn short_slice_ns(&self) -> u64 {
        self.short_slice_ns
    }

    /// Before running user code at guest-physical page `page`: true if it should run
    /// translated.
    pub fn translate_at(&mut self, page: u64) -> bool {
        if let Some(h) = self.heat.get_mut(&page)
            && h.translated_entries_left > 0
        {
            h.translated_entries_left -= 1;
            if h.translated_entries_left == 0 {
                h.short_slices = 0;
            }
            self.translated_entries += 1;
            return true;
        }
        false
    }

    /// True in `--user-exec adaptive`.
    pub fn adaptive(&self) -> bool {
        self.adaptive
    }

    /// A code page was found that cannot run natively: translate it for a while.
    pub fn must_translate(&mut self, page: u64) {
        self.mark(page).translated_entries_left = HOT_ENTRIES;
    }

    fn mark(&mut self, page: u64) -> &mut Heat {
        if self.heat.len() >= MAX_TRACKED && !self.heat.contains_key(&page) {
            self.heat.clear();
        }
        self.heat.entry(page).or_default()
    }

    /// A slice of `ns` nanoseconds of native execution ended in a guest event at code
    /// page `page`.
    pub fn event_exit(&mut self, page: u64, ns: u64) {
        if !self.adaptive {
            return;
        }
        let short = self.short_slice_ns;
        let h = self.mark(page);
        if ns >= short {
            h.short_slices = 0;
            return;
        }
        h.short_slices += 1;
        if h.short_slices >= HOT_AFTER && h.translated_entries_left == 0 {
            h.translated_entries_left = HOT_ENTRIES;
            self.hot_marks += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_slices_make_a_page_hot_for_a_while() {
        let mut p = Policy::new(true);
        for _ in 0..HOT_AFTER - 1 {
            p.event_exit(7, 1_000);
        }
        assert!(!p.translate_at(7), "not hot yet");
        p.event_exit(7, 1_000);
        assert!(p.translate_at(7));
        assert!(!p.translate_at(8), "other pages are not affected");
        for _ in 1..HOT_ENTRIES {
            assert!(p.translate_at(7));
        }
        assert!(!p.translate_at(7), "measured natively again");
    }

    #[test]
    fn long_slices_reset_and_direct_mode_never_adapts() {
        let mut p = Policy::new(true);
        for _ in 0..10 {
            p.event_exit(1, 1_000);
            p.event_exit(1, 1_000);
            p.event_exit(1, 50_000);
        }
        assert!(!p.translate_at(1));
        let mut d = Policy::new(false);
        for _ in 0..10 {
            d.event_exit(1, 1);
        }
        assert!(!d.translate_at(1));
        d.must_translate(2);
        for _ in 0..HOT_ENTRIES {
            assert!(d.translate_at(2), "pages that cannot run natively are translated in every mode");
        }
        assert!(!d.translate_at(2), "and tried natively again later");
    }
}
