//! The shadow state: which guest pages each window maps right now, with which host
//! permissions, and the reverse map from guest-physical pages to their window mappings.
//!
//! Entries are created by fills ([`Shadow::record`]) and removed by the flushes and by
//! eviction; the window itself is edited by the caller ([`crate::Mmu`]), this module only
//! keeps account so that flushes know what to unmap (coalesced into ranges), code-page
//! protection knows every mapping of a physical page, and eviction knows what is cheap to
//! drop and how many host mappings (VMAs) the windows use. It also counts, per
//! guest-physical page, the mappings that let guest code run it natively (executable):
//! W^X holds per frame, so while there is one, no window maps that frame writable.
//!
//! The windows are a cache: the host allows a process only so many VMAs
//! (`vm.max_map_count`), and every separately mapped run of pages is one, plus one more
//! for the piece of reservation it splits off. The shadow counts them as the host does:
//! neighbouring pages share a VMA when both are unmapped (the `PROT_NONE` reservation
//! merges), or both map consecutive RAM offsets with the same permission (the host merges
//! such file mappings). Every fill is remembered in fill order ([`Fill`]), each page
//! stamped with its fill, so that eviction can drop the oldest fills first (a clock with a
//! second chance for fills the guest has used since: written or executed, see
//! [`Shadow::reference`]).

use std::collections::VecDeque;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use crate::derived::{Derived, Source};
use crate::window::{Prot, WindowKind};

/// One mapped guest linear page in one window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Guest-physical page number.
    pub phys_page: u64,
    /// Host permissions it is mapped with.
    pub prot: Prot,
    /// G set in its leaf entry: with CR4.PGE it survives CR3 writes. (The bit, not the
    /// translation's globalness, so that toggling CR4.PGE changes no entry.)
    pub global: bool,
    /// Part of a guest 4 MiB page: `invlpg` anywhere in it drops all of it.
    pub large: bool,
    /// Guest-physical page number of the table that held its leaf entry (the page
    /// table, or the page directory for a large page): a TLB flush that finds another
    /// table for its region drops it without walking ([`crate::Mmu`]'s revalidation).
    pub table: u64,
    /// The fill that mapped it ([`Fill::stamp`]).
    pub stamp: u32,
}

/// One fill: a run of pages mapped by one host call, the unit of eviction.
#[derive(Clone, Copy, Debug)]
pub struct Fill {
    /// The window.
    pub w: WindowKind,
    /// First linear page number.
    pub first: u32,
    /// Number of pages.
    pub n: u32,
    /// Stamp of its pages' entries: those of its pages that still carry it are its own
    /// (a page unmapped and filled again belongs to the later fill).
    pub stamp: u32,
    /// Used since it was filled or last passed over by eviction: gets a second chance.
    pub referenced: bool,
}

/// The mappings of all windows.
pub struct Shadow {
    maps: [HashMap<u32, Entry>; WindowKind::COUNT],
    /// Pages a CR3 write took away but left in the host's mappings, inaccessible
    /// (`PROT_NONE`), as they were: if the guest's tables map the same frame there when it
    /// is next touched (the same process again, or one sharing its frames), giving the
    /// access back is one `mprotect` instead of a new mapping ([`crate::Mmu`]). Not in
    /// `maps`, the reverse map or the native counts: nothing can reach them.
    parked: [HashMap<u32, Entry>; WindowKind::COUNT],
    /// The pages of each window whose entries lack G (what a CR3 write drops while
    /// CR4.PGE is set), kept apart so that a context switch does not look at the kernel's
    /// many global mappings.
    non_global: [HashSet<u32>; WindowKind::COUNT],
    rmap: HashMap<u64, Vec<(WindowKind, u32)>>,
    /// Guest-physical pages that hold translated code: never mapped writable.
    pub code_pages: HashSet<u64>,
    /// Guest-physical pages mapped executable (natively runnable) somewhere, with the
    /// number of such mappings: never mapped writable anywhere (W^X per frame).
    native: HashMap<u64, u32>,
    /// Per window, the page boundaries where the host VMA changes (one mapped page next
    /// to an unmapped one, or two mapped pages the host cannot merge): the window holds
    /// that many VMAs besides its reservation.
    boundaries: [usize; WindowKind::COUNT],
    /// Windows reserved (each one VMA at least).
    windows: usize,
    /// Pages of guest RAM: mappings of pages beyond it all map the same all-ones page,
    /// so never merge.
    ram_pages: u64,
    /// Fills in the order they were made (oldest first), for eviction.
    fills: VecDeque<Fill>,
    next_stamp: u32,
    /// Length of `fills` after its last compaction.
    compacted_len: usize,
    /// What the live mappings were derived from (see `derived`).
    pub derived: Derived,
    /// Kernel-window pages mapped writable although their tables make them read-only
    /// (CR0.WP is clear): what setting WP must take away.
    wp_writable: HashSet<(WindowKind, u32)>,
}

/// A run of linear pages to unmap: (first page number, count).
pub type Run = (u32, u64);

/// Fill records that may pile up before stale ones (all of whose pages were dropped) are
/// removed.
const FILLS_SLACK: usize = 4096;

impl Shadow {
    /// An empty shadow for a guest with `ram_pages` pages of RAM.
    pub fn new(ram_pages: u64) -> Shadow {
        Shadow {
            maps: Default::default(),
            parked: Default::default(),
            non_global: Default::default(),
            rmap: Default::default(),
            code_pages: Default::default(),
            native: Default::default(),
            boundaries: [0; WindowKind::COUNT],
            windows: 2,
            ram_pages,
            fills: VecDeque::new(),
            next_stamp: 0,
            compacted_len: 0,
            derived: Derived::new(),
            wp_writable: Default::default(),
        }
    }

    /// True if the host maps linear pages `page` and `page + 1` (entries `a` and `b`) with
    /// one VMA.
    fn same_vma(&self, a: Option<Entry>, b: Option<Entry>) -> bool {
        match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => a.prot == b.prot && b.phys_page == a.phys_page + 1 && b.phys_page < self.ram_pages,
            _ => false,
        }
    }

    /// What the host maps at linear page `page` of window `w`: the entry, or a parked
    /// one's frame without access.
    fn host_view(&self, w: WindowKind, page: u32) -> Option<Entry> {
        self.get(w, page).or_else(|| self.parked[w.index()].get(&page).map(|e| Entry { prot: Prot::None, ..*e }))
    }

    /// The VMA boundaries on either side of linear page `page` if it were mapped as `mid`.
    fn boundaries_around(&self, w: WindowKind, page: u32, mid: Option<Entry>) -> usize {
        let before = page.checked_sub(1).and_then(|p| self.host_view(w, p));
        let after = if page < (1 << 20) - 1 { self.host_view(w, page + 1) } else { None };
        (page > 0 && !self.same_vma(before, mid)) as usize + (page < (1 << 20) - 1 && !self.same_vma(mid, after)) as usize
    }

    /// Updates the boundary count for linear page `page` going from `old` to `new`.
    fn rebound(&mut self, w: WindowKind, page: u32, old: Option<Entry>, new: Option<Entry>) {
        let (b0, b1) = (self.boundaries_around(w, page, old), self.boundaries_around(w, page, new));
        self.boundaries[w.index()] = self.boundaries[w.index()] + b1 - b0;
    }

    /// The host VMAs the windows use now: each window's reservation, split at every
    /// boundary (see [`Shadow::boundaries_around`]).
    pub fn vmas(&self) -> usize {
        self.windows + self.boundaries.iter().sum::<usize>()
    }

    /// Counts a window more (reserved, empty).
    pub fn add_window(&mut self) {
        self.windows += 1;
    }

    /// Starts a fill of `n` pages from linear page `first` in window `w`: returns the stamp
    /// its entries must carry.
    pub fn begin_fill(&mut self, w: WindowKind, first: u32, n: u32) -> u32 {
        if self.fills.len() > 2 * self.compacted_len + FILLS_SLACK {
            self.compact();
        }
        let stamp = self.next_stamp;
        self.next_stamp = stamp.wrapping_add(1);
        self.fills.push_back(Fill { w, first, n, stamp, referenced: false });
        stamp
    }

    /// True if some page of fill `f` is still its own.
    fn live(&self, f: &Fill) -> bool {
        (f.first..f.first + f.n).any(|p| self.stamp_of(f.w, p) == Some(f.stamp))
    }

    /// The fill stamp of linear page `page` of window `w`, mapped or parked.
    pub fn stamp_of(&self, w: WindowKind, page: u32) -> Option<u32> {
        self.maps[w.index()].get(&page).or_else(|| self.parked[w.index()].get(&page)).map(|e| e.stamp)
    }

    /// Drops the records of fills none of whose pages remain.
    fn compact(&mut self) {
        let mut fills = std::mem::take(&mut self.fills);
        fills.retain(|f| self.live(f));
        self.fills = fills;
        self.compacted_len = self.fills.len();
    }

    /// Notes that the guest used the page `page` of window `w` again since it was
    /// filled (a write or an instruction fetch widened it): its fill gets a second chance.
    pub fn reference(&mut self, w: WindowKind, page: u32) {
        let Some(e) = self.get(w, page) else { return };
        let Some(front) = self.fills.front().map(|f| f.stamp) else { return };
        let age = |s: u32| s.wrapping_sub(front);
        let i = self.fills.partition_point(|f| age(f.stamp) < age(e.stamp));
        if let Some(f) = self.fills.get_mut(i)
            && f.stamp == e.stamp
        {
            f.referenced = true;
        }
    }

    /// The oldest fill, removed from the record (eviction decides what to do with it).
    pub fn pop_fill(&mut self) -> Option<Fill> {
        let f = self.fills.pop_front()?;
        self.compacted_len = self.compacted_len.min(self.fills.len());
        Some(f)
    }

    /// Puts fill `f` back as the newest (its second chance).
    pub fn push_fill(&mut self, f: Fill) {
        self.fills.push_back(f);
    }

    /// Number of fill records.
    pub fn fill_count(&self) -> usize {
        self.fills.len()
    }

    /// The entry for linear page `page` in window `w`.
    pub fn get(&self, w: WindowKind, page: u32) -> Option<Entry> {
        self.maps[w.index()].get(&page).copied()
    }

    /// Records that window `w` maps linear page `page` as `e` (replacing a parked page
    /// there, if any), checked against the guest entries `src`.
    pub fn record(&mut self, w: WindowKind, page: u32, e: Entry, src: &Source) {
        if self.maps[w.index()].contains_key(&page) {
            self.derived.remove(w, page);
        }
        self.derived.add(w, page, src);
        self.note_wp_writable(w, page, e.prot.writable() && !src.writable());
        if e.global {
            self.non_global[w.index()].remove(&page);
        } else {
            self.non_global[w.index()].insert(page);
        }
        let old = self.host_view(w, page);
        self.parked[w.index()].remove(&page);
        self.rebound(w, page, old, Some(e));
        self.count_native(e.phys_page, e.prot, true);
        if let Some(old) = self.maps[w.index()].insert(page, e) {
            self.count_native(old.phys_page, old.prot, false);
            if old.phys_page == e.phys_page {
                return;
            }
            self.unlink(w, page, old.phys_page);
        }
        self.rmap.entry(e.phys_page).or_default().push((w, page));
    }

    /// Notes whether mapped page `page` of window `w` is writable only because CR0.WP is
    /// clear (`wp`): writable in the kernel window through read-only entries.
    pub fn note_wp_writable(&mut self, w: WindowKind, page: u32, wp: bool) {
        if !w.is_user() && wp {
            self.wp_writable.insert((w, page));
        } else if !w.is_user() && !self.wp_writable.is_empty() {
            self.wp_writable.remove(&(w, page));
        }
    }

    /// The kernel-window pages writable only because CR0.WP was clear, in ascending order
    /// (by window, then page), forgotten as such.
    pub fn take_wp_writable(&mut self) -> Vec<(WindowKind, u32)> {
        let mut pages: Vec<(WindowKind, u32)> = self.wp_writable.drain().collect();
        pages.sort_unstable();
        pages
    }

    /// Records that mapped page `page` of window `w` was checked again, against `src` (its
    /// permission widened after a walk).
    pub fn rederive(&mut self, w: WindowKind, page: u32, src: &Source) {
        if self.maps[w.index()].contains_key(&page) {
            self.derived.remove(w, page);
            self.derived.add(w, page, src);
        }
    }

    /// Changes the recorded permission of a mapped page.
    pub fn set_prot(&mut self, w: WindowKind, page: u32, prot: Prot) {
        if !prot.writable() {
            self.note_wp_writable(w, page, false);
        }
        if let Some(e) = self.get(w, page) {
            self.rebound(w, page, Some(e), Some(Entry { prot, ..e }));
            self.count_native(e.phys_page, prot, true);
            self.count_native(e.phys_page, e.prot, false);
            if let Some(e) = self.maps[w.index()].get_mut(&page) {
                e.prot = prot;
            }
        }
    }

    /// Counts a mapping of `phys` with permission `prot` in (`add`) or out of the
    /// natively executable mappings, if it is one.
    fn count_native(&mut self, phys: u64, prot: Prot, add: bool) {
        if !prot.executable() {
            return;
        }
        if add {
            *self.native.entry(phys).or_default() += 1;
        } else if let Some(n) = self.native.get_mut(&phys) {
            *n -= 1;
            if *n == 0 {
                self.native.remove(&phys);
            }
        }
    }

    /// True if some window maps guest-physical page `phys` executable: its code runs
    /// natively, as it was checked, so no mapping of it may be writable.
    pub fn is_native(&self, phys: u64) -> bool {
        self.native.contains_key(&phys)
    }

    fn unlink(&mut self, w: WindowKind, page: u32, phys: u64) {
        if let Some(v) = self.rmap.get_mut(&phys) {
            v.retain(|&m| m != (w, page));
            if v.is_empty() {
                self.rmap.remove(&phys);
            }
        }
    }

    /// Forgets mapped linear page `page` of window `w`; its entry if it was mapped.
    pub fn remove(&mut self, w: WindowKind, page: u32) -> Option<Entry> {
        let e = self.get(w, page)?;
        self.rebound(w, page, Some(e), None);
        self.forget(w, page, e);
        Some(e)
    }

    /// Parks mapped pages `pages` (ascending) of window `w` (see `parked`; the caller
    /// takes the host's access away) and returns them as runs.
    pub fn park_pages(&mut self, w: WindowKind, pages: &[u32]) -> Vec<Run> {
        for &p in pages {
            let Some(e) = self.get(w, p) else { continue };
            self.rebound(w, p, Some(e), Some(Entry { prot: Prot::None, ..e }));
            self.forget(w, p, e);
            self.parked[w.index()].insert(p, e);
        }
        runs_of(pages)
    }

    /// The parked page at `page` of window `w`, taken out of the parked set (the caller
    /// maps it, or unmaps it).
    pub fn unpark(&mut self, w: WindowKind, page: u32) -> Option<Entry> {
        let e = *self.parked[w.index()].get(&page)?;
        self.rebound(w, page, Some(Entry { prot: Prot::None, ..e }), None);
        self.parked[w.index()].remove(&page);
        Some(e)
    }

    /// The frame parked at `page` of window `w`, if any.
    pub fn parked_frame(&self, w: WindowKind, page: u32) -> Option<u64> {
        self.parked[w.index()].get(&page).map(|e| e.phys_page)
    }

    /// Forgets the parked pages in runs `runs` of window `w` (unmapped wholesale).
    pub fn forget_parked_in(&mut self, w: WindowKind, runs: &[Run]) {
        let parked = &self.parked[w.index()];
        if parked.is_empty() {
            return;
        }
        let inside = |p: u32| runs.iter().any(|&(s, n)| p >= s && (p as u64) < s as u64 + n);
        let total: u64 = runs.iter().map(|r| r.1).sum();
        let pages: Vec<u32> = if total > parked.len() as u64 {
            parked.keys().copied().filter(|&p| inside(p)).collect()
        } else {
            runs.iter().flat_map(|&(s, n)| (0..n).map(move |i| s + i as u32)).filter(|p| parked.contains_key(p)).collect()
        };
        for p in pages {
            self.unpark(w, p);
        }
    }

    /// [`Shadow::remove`] without the boundary count, for removals that empty the window.
    fn forget(&mut self, w: WindowKind, page: u32, e: Entry) {
        self.maps[w.index()].remove(&page);
        self.derived.remove(w, page);
        self.note_wp_writable(w, page, false);
        self.count_native(e.phys_page, e.prot, false);
        self.non_global[w.index()].remove(&page);
        self.unlink(w, page, e.phys_page);
    }

    /// Every mapping of guest-physical page `phys`.
    pub fn mappings_of(&self, phys: u64) -> Vec<(WindowKind, u32)> {
        self.rmap.get(&phys).cloned().unwrap_or_default()
    }

    /// Forgets every page of window `w` and returns them as runs of consecutive pages
    /// (one host call each).
    pub fn take_all(&mut self, w: WindowKind) -> Vec<Run> {
        let mut pages: Vec<u32> = self.maps[w.index()].keys().copied().collect();
        pages.sort_unstable();
        self.clear(w);
        runs_of(&pages)
    }

    /// The number of mapped pages in all windows.
    pub fn mapped(&self) -> usize {
        self.maps.iter().map(|m| m.len()).sum()
    }

    /// Calls `f` with each mapped page of window `w` and its entry (`global`: all of them,
    /// else only the non-global ones), in no order.
    pub fn for_each(&self, w: WindowKind, global: bool, mut f: impl FnMut(u32, &Entry)) {
        let map = &self.maps[w.index()];
        if global {
            map.iter().for_each(|(&p, e)| f(p, e));
        } else {
            for &p in &self.non_global[w.index()] {
                if let Some(e) = map.get(&p) {
                    f(p, e);
                }
            }
        }
    }

    /// The number of mapped pages of window `w` (`global`: all, else the non-global ones).
    pub fn count(&self, w: WindowKind, global: bool) -> usize {
        if global { self.maps[w.index()].len() } else { self.non_global[w.index()].len() }
    }

    /// Forgets pages `pages` (ascending) of window `w`, and returns them as runs.
    pub fn take_pages(&mut self, w: WindowKind, pages: &[u32]) -> Vec<Run> {
        for &p in pages {
            self.remove(w, p);
        }
        runs_of(pages)
    }

    /// Records that mapped page `page` of window `w` now has the G bit or not (the guest
    /// changed it; the mapping itself did not).
    pub fn set_global(&mut self, w: WindowKind, page: u32, global: bool) {
        if let Some(e) = self.maps[w.index()].get_mut(&page) {
            e.global = global;
            if global {
                self.non_global[w.index()].remove(&page);
            } else {
                self.non_global[w.index()].insert(page);
            }
        }
    }

    /// Forgets everything in window `w`.
    pub fn clear(&mut self, w: WindowKind) {
        self.fills.retain(|f| f.w != w);
        self.compacted_len = self.compacted_len.min(self.fills.len());
        // The window ends up empty: its boundary count is zero, no need to follow it.
        let entries: Vec<(u32, Entry)> = self.maps[w.index()].iter().map(|(&p, &e)| (p, e)).collect();
        for (p, e) in entries {
            self.forget(w, p, e);
        }
        self.parked[w.index()].clear();
        self.boundaries[w.index()] = 0;
        self.derived.clear(w);
    }
}

/// Sorted page numbers as runs of consecutive pages (one host call each).
fn runs_of(pages: &[u32]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for &p in pages {
        match runs.last_mut() {
            Some((start, n)) if *start as u64 + *n == p as u64 => *n += 1,
            _ => runs.push((p, 1)),
        }
    }
    runs
}
