//! The shadow state: which guest pages each window maps right now, with which host
//! permissions, and the reverse map from guest-physical pages to their window mappings.
//!
//! Entries are created by fills ([`Shadow::record`]) and removed by the flushes; the
//! window itself is edited by the caller ([`crate::Mmu`]), this module only keeps
//! account so that flushes know what to unmap (coalesced into ranges) and code-page
//! protection knows every mapping of a physical page.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use crate::window::{Prot, WindowKind};

/// One mapped guest linear page in one window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Guest-physical page number.
    pub phys_page: u64,
    /// Host permissions it is mapped with.
    pub prot: Prot,
    /// From a global translation: survives CR3 writes.
    pub global: bool,
    /// Part of a guest 4 MiB page: `invlpg` anywhere in it drops all of it.
    pub large: bool,
}

/// The mappings of both windows.
#[derive(Default)]
pub struct Shadow {
    maps: [HashMap<u32, Entry>; 2],
    /// The non-global pages of each window (what a CR3 write drops), kept apart so that
    /// a context switch does not walk the kernel's many global mappings.
    non_global: [HashSet<u32>; 2],
    rmap: HashMap<u64, Vec<(WindowKind, u32)>>,
    /// Guest-physical pages that hold translated code: never mapped writable.
    pub code_pages: HashSet<u64>,
}

/// A run of linear pages to unmap: (first page number, count).
pub type Run = (u32, u64);

impl Shadow {
    /// The entry for linear page `page` in window `w`.
    pub fn get(&self, w: WindowKind, page: u32) -> Option<Entry> {
        self.maps[w as usize].get(&page).copied()
    }

    /// Records that window `w` maps linear page `page` as `e`.
    pub fn record(&mut self, w: WindowKind, page: u32, e: Entry) {
        if e.global {
            self.non_global[w as usize].remove(&page);
        } else {
            self.non_global[w as usize].insert(page);
        }
        if let Some(old) = self.maps[w as usize].insert(page, e) {
            if old.phys_page == e.phys_page {
                return;
            }
            self.unlink(w, page, old.phys_page);
        }
        self.rmap.entry(e.phys_page).or_default().push((w, page));
    }

    /// Changes the recorded permission of a mapped page.
    pub fn set_prot(&mut self, w: WindowKind, page: u32, prot: Prot) {
        if let Some(e) = self.maps[w as usize].get_mut(&page) {
            e.prot = prot;
        }
    }

    fn unlink(&mut self, w: WindowKind, page: u32, phys: u64) {
        if let Some(v) = self.rmap.get_mut(&phys) {
            v.retain(|&m| m != (w, page));
            if v.is_empty() {
                self.rmap.remove(&phys);
            }
        }
    }

    /// Forgets linear page `page` of window `w`; true if it was mapped.
    pub fn remove(&mut self, w: WindowKind, page: u32) -> Option<Entry> {
        let e = self.maps[w as usize].remove(&page)?;
        self.non_global[w as usize].remove(&page);
        self.unlink(w, page, e.phys_page);
        Some(e)
    }

    /// Every mapping of guest-physical page `phys`.
    pub fn mappings_of(&self, phys: u64) -> Vec<(WindowKind, u32)> {
        self.rmap.get(&phys).cloned().unwrap_or_default()
    }

    /// Number of pages window `w` maps.
    pub fn len(&self, w: WindowKind) -> usize {
        self.maps[w as usize].len()
    }

    /// Forgets every page of window `w` and returns them as runs of consecutive pages
    /// (one host call each).
    pub fn take_all(&mut self, w: WindowKind) -> Vec<Run> {
        let pages: Vec<u32> = self.maps[w as usize].keys().copied().collect();
        self.take_pages(w, pages)
    }

    /// Forgets the non-global pages of window `w` (a CR3 write), as runs.
    pub fn take_non_global(&mut self, w: WindowKind) -> Vec<Run> {
        let pages: Vec<u32> = self.non_global[w as usize].iter().copied().collect();
        self.take_pages(w, pages)
    }

    fn take_pages(&mut self, w: WindowKind, mut pages: Vec<u32>) -> Vec<Run> {
        pages.sort_unstable();
        for &p in &pages {
            self.remove(w, p);
        }
        let mut runs: Vec<Run> = Vec::new();
        for p in pages {
            match runs.last_mut() {
                Some((start, n)) if *start as u64 + *n == p as u64 => *n += 1,
                _ => runs.push((p, 1)),
            }
        }
        runs
    }

    /// Forgets everything in window `w`.
    pub fn clear(&mut self, w: WindowKind) {
        let pages: Vec<u32> = self.maps[w as usize].keys().copied().collect();
        for p in pages {
            self.remove(w, p);
        }
    }
}
