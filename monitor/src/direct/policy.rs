//! Which engine runs user code when both could: code pages that must be translated, and
//! the adaptive policy (`--user-exec adaptive`).
//!
//! Code pages that cannot run natively (they hold `sysenter`) are marked the same way,
//! in every mode, when a fetch from one faults; the mark expires like any other, so a
//! frame that later holds other code is tried natively again.
//!
//! Every exit from direct execution is a host signal and, in the sandbox, a round trip
//! to the stub (tens of microseconds on a virtual host), and every page a fresh address
//! space touches natively is such an exit too; a translated system call, exception or
//! fill is a callout or one signal in this process, and translated user code runs within
//! a few percent of native speed. Native execution therefore pays only for long stretches
//! of user computation. The adaptive policy translates user code first and *promotes* a
//! code page to native execution when a user slice — user time between two guest events
//! — ran long in translated code there ([`Policy::long_slice_ns`]); a promoted page whose
//! native slices then end in short event exits several times in a row is demoted again.
//! Promotions expire, so code that changes behaviour is re-measured. Short-lived
//! processes (fork, exec, page-fault storms, system-call loops) thus never pay for a
//! stub's exits, and compute loops run natively after their first long slice.

use rustc_hash::FxHashMap as HashMap;

/// A native slice shorter than this, ended by a guest event, counts as a sign that
/// translation would be faster (for direct execution in this process; with the sandbox
/// an exit costs a round trip to the stub as well, and the bound follows the measured
/// round trip: [`Policy::set_exit_cost`]).
pub const SHORT_SLICE_NS: u64 = 10_000;
/// A translated user slice at least this long makes its page native (in this process;
/// with the sandbox, see [`Policy::set_exit_cost`]). Native execution saves a few
/// percent of a slice's time, so it must be long against an exit's cost.
pub const LONG_SLICE_NS: u64 = 500_000;
/// Short native slices in a row that demote a promoted page.
pub const HOT_AFTER: u32 = 4;
/// Run-loop entries a page runs in its engine (natively after a promotion; translated
/// when it cannot run natively) before it is measured again.
pub const HOT_ENTRIES: u32 = 4096;
/// Pages tracked before the table starts afresh.
const MAX_TRACKED: usize = 4096;

#[derive(Clone, Copy, Debug, Default)]
struct Heat {
    short_slices: u32,
    /// Entries left that must run translated (the page cannot run natively).
    translated_entries_left: u32,
    /// Entries left that run natively (adaptive: the page was promoted).
    native_entries_left: u32,
}

/// The policy's state.
#[derive(Debug, Default)]
pub struct Policy {
    adaptive: bool,
    /// Native slices shorter than this count as short (see [`SHORT_SLICE_NS`]).
    short_slice_ns: u64,
    /// Translated user slices at least this long promote their page.
    long_slice_ns: u64,
    heat: HashMap<u64, Heat>,
    /// The CPU's count of user-caused events at the last pass.
    user_events: u64,
    /// The timer pass since which user code caused no event (None: none since then).
    quiet_since: Option<u64>,
    /// Run-loop entries that translated user code because of this policy.
    pub translated_entries: u64,
    /// Times a page was promoted to native execution.
    pub promotions: u64,
    /// Times a promoted page was demoted.
    pub demotions: u64,
    /// Pages promoted now (with native entries left).
    promoted_now: usize,
}

impl Policy {
    /// The policy for `--user-exec direct` (`adaptive` false) or `adaptive`.
    pub fn new(adaptive: bool) -> Policy {
        Policy { adaptive, short_slice_ns: SHORT_SLICE_NS, long_slice_ns: LONG_SLICE_NS, ..Policy::default() }
    }

    /// An exit costs `ns` more than in this process (the sandbox's round trip to its
    /// stub): a slice of native length L costs L + exit and translated about 1.2 L, so
    /// translation wins below L = 5 exits, and a measured slice (which includes the round
    /// trip) is short below 6 round trips. Translated code is slower than native by a
    /// few percent at most, so a slice must be worth many exits (and the fills a fresh
    /// native address space needs) to be worth promoting: 40 round trips.
    pub fn set_exit_cost(&mut self, ns: u64) {
        self.short_slice_ns = SHORT_SLICE_NS.max(6 * ns);
        self.long_slice_ns = LONG_SLICE_NS.max(40 * ns);
    }

    /// The bound below which a native slice counts as short.
    pub fn short_slice_ns(&self) -> u64 {
        self.short_slice_ns
    }

    /// The bound from which a translated user slice promotes its page.
    pub fn long_slice_ns(&self) -> u64 {
        self.long_slice_ns
    }

    /// Before running user code at guest-physical page `page`: true if it should run
    /// translated.
    pub fn translate_at(&mut self, page: u64) -> bool {
        let adaptive = self.adaptive;
        let Some(h) = self.heat.get_mut(&page) else {
            if adaptive {
                self.translated_entries += 1;
            }
            return adaptive;
        };
        if h.translated_entries_left > 0 {
            h.translated_entries_left -= 1;
            if h.translated_entries_left == 0 {
                h.short_slices = 0;
            }
            self.translated_entries += 1;
            return true;
        }
        if !adaptive {
            return false;
        }
        if h.native_entries_left > 0 {
            h.native_entries_left -= 1;
            if h.native_entries_left == 0 {
                self.promoted_now -= 1;
            }
            return false;
        }
        self.translated_entries += 1;
        true
    }

    /// True if no page is promoted now: in `adaptive`, all user code runs translated and
    /// the caller need not look up its page (this keeps a translated system call's return
    /// to user mode as cheap as in `translate`).
    pub fn translates_everything(&self) -> bool {
        self.adaptive && self.promoted_now == 0
    }

    /// True in `--user-exec adaptive`.
    pub fn adaptive(&self) -> bool {
        self.adaptive
    }

    /// A code page was found that cannot run natively: translate it for a while.
    pub fn must_translate(&mut self, page: u64) {
        let h = self.mark(page);
        let was_promoted = h.native_entries_left > 0;
        h.translated_entries_left = HOT_ENTRIES;
        h.native_entries_left = 0;
        self.promoted_now -= was_promoted as usize;
    }

    fn mark(&mut self, page: u64) -> &mut Heat {
        if self.heat.len() >= MAX_TRACKED && !self.heat.contains_key(&page) {
            self.heat.clear();
            self.promoted_now = 0;
        }
        self.heat.entry(page).or_default()
    }

    /// At the top of each run-loop pass, before interrupts are delivered: `user_events`
    /// is the CPU's count of events user code caused (system calls, exceptions), `timer`
    /// whether the host timer fired since the last pass (it stops translated code), and
    /// `user` whether the CPU is at CPL 3. Returns true if user code has run from one
    /// timer pass to this one, at least [`Policy::long_slice_ns`], without causing an
    /// event (interrupts do not count: they would stop native code just the same); the
    /// caller then promotes the code page it is at ([`Policy::promote`]). The clock is
    /// read (`now`) at timer passes only, so the policy costs translated system calls
    /// nothing but a comparison.
    pub fn watch_slice(&mut self, user_events: u64, timer: bool, user: bool, now: impl FnOnce() -> u64) -> bool {
        if !self.adaptive {
            return false;
        }
        if user_events != self.user_events {
            self.user_events = user_events;
            self.quiet_since = None;
        }
        if !(timer && user) {
            return false;
        }
        let now = now();
        match self.quiet_since {
            Some(start) if now.saturating_sub(start) >= self.long_slice_ns => {
                self.quiet_since = Some(now);
                true
            }
            Some(_) => false,
            None => {
                self.quiet_since = Some(now);
                false
            }
        }
    }

    /// Code page `page` ran a long user slice: it runs natively for a while.
    pub fn promote(&mut self, page: u64) {
        let h = self.mark(page);
        if h.translated_entries_left == 0 && h.native_entries_left == 0 {
            h.native_entries_left = HOT_ENTRIES;
            h.short_slices = 0;
            self.promotions += 1;
            self.promoted_now += 1;
        }
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
        if h.short_slices >= HOT_AFTER && h.native_entries_left > 0 {
            h.native_entries_left = 0;
            h.short_slices = 0;
            self.demotions += 1;
            self.promoted_now -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_translates_first_and_promotes_after_a_long_slice() {
        let mut p = Policy::new(true);
        assert!(p.translate_at(7), "unmeasured code runs translated");
        assert!(p.translates_everything());
        assert!(!p.watch_slice(0, true, true, || 0));
        assert!(!p.watch_slice(0, false, true, || unreachable!("the clock is read at timer passes only")));
        assert!(!p.watch_slice(0, false, false, || unreachable!()), "the timer's interrupt does not end a slice");
        assert!(!p.watch_slice(0, true, true, || LONG_SLICE_NS - 1));
        assert!(p.watch_slice(0, true, true, || LONG_SLICE_NS), "a long user slice");
        p.promote(7);
        assert!(!p.translates_everything());
        assert!(!p.translate_at(7), "a promoted page runs natively");
        assert!(p.translate_at(8), "other pages are not affected");
        for _ in 1..HOT_ENTRIES {
            assert!(!p.translate_at(7));
        }
        assert!(p.translate_at(7), "measured again when the promotion expires");
        assert!(p.translates_everything());
        assert_eq!(p.promotions, 1);
    }

    #[test]
    fn user_events_end_a_slice() {
        let mut p = Policy::new(true);
        assert!(!p.watch_slice(0, true, true, || 0));
        assert!(!p.watch_slice(1, false, false, || 0), "a system call at half the bound");
        assert!(!p.watch_slice(1, true, true, || LONG_SLICE_NS));
        assert!(!p.watch_slice(1, true, false, || 2 * LONG_SLICE_NS - 1), "timer passes in the kernel do not count");
        assert!(p.watch_slice(1, true, true, || 2 * LONG_SLICE_NS), "counted from the first timer pass after it");
        assert!(!p.watch_slice(1, true, true, || 2 * LONG_SLICE_NS + 1), "and afresh after a promotion");
    }

    #[test]
    fn short_native_slices_demote() {
        let mut p = Policy::new(true);
        p.promote(3);
        for _ in 0..HOT_AFTER - 1 {
            p.event_exit(3, 1_000);
        }
        p.event_exit(3, SHORT_SLICE_NS);
        for _ in 0..HOT_AFTER - 1 {
            p.event_exit(3, 1_000);
        }
        assert!(!p.translate_at(3), "a long slice in between resets the count");
        p.event_exit(3, 1_000);
        assert!(p.translate_at(3), "demoted");
        assert!(p.translates_everything());
        assert_eq!(p.demotions, 1);
    }

    #[test]
    fn the_sandbox_raises_both_bounds() {
        let mut p = Policy::new(true);
        p.set_exit_cost(30_000);
        assert_eq!(p.short_slice_ns(), 180_000);
        assert_eq!(p.long_slice_ns(), 1_200_000);
        p.set_exit_cost(100);
        assert_eq!((p.short_slice_ns(), p.long_slice_ns()), (SHORT_SLICE_NS, LONG_SLICE_NS));
    }

    #[test]
    fn direct_mode_never_adapts_but_translates_what_cannot_run_natively() {
        let mut d = Policy::new(false);
        assert!(!d.translate_at(1));
        for _ in 0..10 {
            d.event_exit(1, 1);
        }
        assert!(!d.translate_at(1));
        assert!(!d.watch_slice(0, true, true, || 0) && !d.watch_slice(0, true, true, || u64::MAX));
        d.must_translate(2);
        for _ in 0..HOT_ENTRIES {
            assert!(d.translate_at(2), "pages that cannot run natively are translated in every mode");
        }
        assert!(!d.translate_at(2), "and tried natively again later");
        let mut a = Policy::new(true);
        a.promote(2);
        a.must_translate(2);
        assert!(a.translate_at(2), "cannot run natively overrides a promotion");
    }
}
