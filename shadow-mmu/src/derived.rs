//! What the live mappings of the windows were derived from, so that a TLB flush of the same
//! tables (a CR3 reload, a CR4.PGE toggle) finds the few mappings whose guest entries
//! changed instead of walking every mapped page.
//!
//! Each window keeps its own record (a kernel window of an address space not in use keeps
//! the tables as they were when it was last used, for the comparison that makes it current
//! again). Each live (not parked) mapping was checked, when it was filled or last revalidated,
//! against two guest entries: the PDE of its *region* (the linear pages one page table
//! covers: 4 MiB, or 2 MiB with PAE) and its leaf entry (its PTE, or that PDE for a large
//! page). Per window and region this keeps the PDE value its mappings were checked against
//! and how many there are; per page table, the value of each PTE some mapping was checked
//! against. [`Derived::changed`] compares them with the guest's tables as they are now: a
//! region whose PDE changed must be checked page by page, and in a region whose PDE did
//! not, only the pages whose PTE changed; every other mapping is still exactly what a walk
//! would give, without one. This is the coherence VMware's monitor got from tracing page
//! tables with write protection, here by comparison at the flush, which a guest write
//! never pays for: on this kind of host a traced write costs a host signal and an
//! `mprotect`, a comparison one `memcmp` per recorded table.
//!
//! A value recorded for an entry stands for every live mapping derived from it. When a fill,
//! or a mapping's permission widened after a walk, finds an entry other than recorded (the
//! guest changed it without a flush since, and a mapping made before may still follow the
//! old value, as a TLB may), the entry is marked to be checked at the next flush instead;
//! one under a PDE other than recorded marks its whole region. Whatever makes or widens a
//! mapping must say so here ([`Derived::add`]): a mapping widened unrecorded would survive
//! a flush after its entry went back to the value recorded before the widening.

use rustc_hash::FxHashMap as HashMap;

use crate::ram::GuestRam;
use crate::window::WindowKind;

/// The guest entries one mapping was checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    /// The PDE of its region.
    pub pde: u64,
    /// For a 4 KiB page: the guest-physical page number of its page table, and its PTE.
    pub pte: Option<(u64, u64)>,
}

impl Source {
    /// R/W is set in the PDE and the PTE: the tables let supervisor code write whatever
    /// CR0.WP says.
    pub fn writable(&self) -> bool {
        const RW: u64 = 1 << 1;
        self.pde & RW != 0 && self.pte.is_none_or(|(_, v)| v & RW != 0)
    }
}

/// One region of one window with live mappings.
#[derive(Clone, Copy, Debug)]
struct Region {
    /// The PDE its mappings were checked against.
    pde: u64,
    /// The page table that PDE points to (none for a large page).
    table: Option<u64>,
    /// Live mappings in it.
    live: u32,
    /// Some mapping in it was checked against another PDE: check all of them.
    check_all: bool,
}

/// Entries per page table at most (1024 with 32-bit paging, 512 with PAE).
const ENTRIES: usize = 1024;
const WORDS: usize = ENTRIES / 64;
const PAGE: usize = 4096;

/// The PTE values one page table's mappings were checked against.
struct Table {
    /// The table as last compared by a flush, or before its first flush, the entries fills
    /// recorded (those of `known`).
    bytes: Box<[u8; PAGE]>,
    /// Before the table's first flush, the entries with a value recorded; after it, none:
    /// `bytes` is a copy of the whole table, which the next flush compares in one go.
    known: Option<[u64; WORDS]>,
    /// Entries found changed by a fill since their value was recorded.
    check: [u64; WORDS],
    /// Regions of the window whose PDE points here.
    users: u32,
}

impl Table {
    fn new() -> Table {
        Table { bytes: Box::new([0; PAGE]), known: Some([0; WORDS]), check: [0; WORDS], users: 0 }
    }

    fn known(&self, i: usize) -> bool {
        self.known.as_ref().is_none_or(|k| bit(k, i))
    }
}

/// Entry `i` (of `size` bytes) of a page table's bytes.
fn entry(bytes: &[u8], i: usize, size: usize) -> u64 {
    let mut v = [0u8; 8];
    v[..size].copy_from_slice(&bytes[i * size..(i + 1) * size]);
    u64::from_le_bytes(v)
}

fn bit(map: &[u64; WORDS], i: usize) -> bool {
    map[i / 64] & (1 << (i % 64)) != 0
}

fn set(map: &mut [u64; WORDS], i: usize) {
    map[i / 64] |= 1 << (i % 64);
}

/// What a flush must check: whole regions, and single pages.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changed {
    /// (window, region number): the PDE changed, or a mapping in it came from another.
    pub regions: Vec<(WindowKind, u32)>,
    /// (window, linear page number): its PTE changed.
    pub pages: Vec<(WindowKind, u32)>,
}

/// See the module comment.
pub struct Derived {
    /// log2 of the pages of a region (10, or 9 with PAE).
    shift: u32,
    regions: [HashMap<u32, Region>; WindowKind::COUNT],
    /// Per window: its page tables.
    tables: [HashMap<u64, Table>; WindowKind::COUNT],
}

impl Derived {
    /// Nothing recorded, for 32-bit paging.
    pub fn new() -> Derived {
        Derived { shift: 10, regions: Default::default(), tables: Default::default() }
    }

    /// Sets the region size (the paging mode changed: everything was flushed).
    pub fn set_shift(&mut self, shift: u32) {
        debug_assert!(self.regions.iter().all(|r| r.is_empty()));
        self.shift = shift;
    }

    /// Bytes per page-table entry: 4, or 8 with PAE.
    fn entry_size(&self) -> usize {
        PAGE >> self.shift
    }

    fn index(&self, page: u32) -> usize {
        (page & ((1 << self.shift) - 1)) as usize
    }

    /// Records that linear page `page` of window `w` is now mapped, as checked against
    /// `src`.
    pub fn add(&mut self, w: WindowKind, page: u32, src: &Source) {
        let table = src.pte.map(|(t, _)| t);
        let index = self.index(page);
        let region = match self.regions[w.index()].entry(page >> self.shift) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                if let Some(t) = table {
                    self.tables[w.index()].entry(t).or_insert_with(Table::new).users += 1;
                }
                v.insert(Region { pde: src.pde, table, live: 0, check_all: false })
            }
        };
        region.live += 1;
        if region.pde != src.pde || region.table != table {
            region.check_all = true;
            return;
        }
        if let Some((t, value)) = src.pte {
            let size = self.entry_size();
            let table = self.tables[w.index()].get_mut(&t).expect("a region's table is recorded");
            if !table.known(index) {
                table.bytes[index * size..(index + 1) * size].copy_from_slice(&value.to_le_bytes()[..size]);
                if let Some(known) = table.known.as_mut() {
                    set(known, index);
                }
            } else if entry(&table.bytes[..], index, size) != value {
                set(&mut table.check, index);
            }
        }
    }

    /// Records that linear page `page` of window `w` is no longer mapped (or parked).
    pub fn remove(&mut self, w: WindowKind, page: u32) {
        let key = page >> self.shift;
        let Some(region) = self.regions[w.index()].get_mut(&key) else { return };
        region.live -= 1;
        if region.live > 0 {
            return;
        }
        let table = region.table;
        self.regions[w.index()].remove(&key);
        if let Some(t) = table
            && let Some(tab) = self.tables[w.index()].get_mut(&t)
        {
            tab.users -= 1;
            if tab.users == 0 {
                self.tables[w.index()].remove(&t);
            }
        }
    }

    /// Forgets window `w` (emptied).
    pub fn clear(&mut self, w: WindowKind) {
        for (_, r) in std::mem::take(&mut self.regions[w.index()]) {
            if let Some(t) = r.table
                && let Some(tab) = self.tables[w.index()].get_mut(&t)
            {
                tab.users -= 1;
                if tab.users == 0 {
                    self.tables[w.index()].remove(&t);
                }
            }
        }
    }

    /// What changed in the guest's tables since the live mappings of `windows` were
    /// checked: `pde_now(region)` gives a region's PDE now (none if its PDPTE is not
    /// present), and `ram` the page tables. Records the tables as they are now as checked:
    /// the caller must check (and drop or keep) every page returned, and for a region
    /// returned, [`Derived::forget_region`] it first and record the pages that stay again.
    pub fn changed(&mut self, windows: &[WindowKind], pde_now: impl Fn(u32) -> Option<u64>, ram: &GuestRam) -> Changed {
        static ONES: [u8; PAGE] = [0xFF; PAGE];
        let mut out = Changed::default();
        let size = self.entry_size();
        for &w in windows {
            // Regions whose PDE changed go whole; the tables only they use need no
            // comparison (a table compared late is only checked more, see `add`).
            let mut needed: rustc_hash::FxHashSet<u64> = Default::default();
            for (&key, region) in self.regions[w.index()].iter() {
                if region.check_all || pde_now(key) != Some(region.pde) {
                    out.regions.push((w, key));
                } else if let Some(t) = region.table {
                    needed.insert(t);
                }
            }
            // Per page table: the entries changed since checked.
            let mut changed_entries: HashMap<u64, Vec<usize>> = HashMap::default();
            for (&t, tab) in self.tables[w.index()].iter_mut() {
                if !needed.contains(&t) {
                    continue;
                }
                // (Beyond RAM a table reads as all ones.)
                let now = if ram.contains(t << 12, PAGE as u64) { &ram.as_slice()[(t as usize) << 12..][..PAGE] } else { &ONES[..] };
                let checks = tab.check.iter().any(|&w| w != 0);
                if tab.known.is_none() && !checks && tab.bytes[..] == *now {
                    continue;
                }
                let list: Vec<usize> = tab
                    .bytes
                    .chunks_exact(size)
                    .zip(now.chunks_exact(size))
                    .enumerate()
                    .filter(|&(i, (was, is))| tab.known(i) && (was != is || bit(&tab.check, i)))
                    .map(|(i, _)| i)
                    .collect();
                tab.bytes.copy_from_slice(now);
                tab.known = None;
                tab.check = [0; WORDS];
                if !list.is_empty() {
                    changed_entries.insert(t, list);
                }
            }
            for (&key, region) in self.regions[w.index()].iter() {
                if region.check_all || pde_now(key) != Some(region.pde) {
                    continue;
                }
                if let Some(list) = region.table.and_then(|t| changed_entries.get(&t)) {
                    out.pages.extend(list.iter().map(|&i| (w, (key << self.shift) | i as u32)));
                }
            }
        }
        out
    }

    /// Forgets region `key` of window `w`: its pages are about to be checked one by one,
    /// and those that stay are recorded again ([`Derived::add`]).
    pub fn forget_region(&mut self, w: WindowKind, key: u32) {
        let Some(r) = self.regions[w.index()].remove(&key) else { return };
        if let Some(t) = r.table
            && let Some(tab) = self.tables[w.index()].get_mut(&t)
        {
            tab.users -= 1;
            if tab.users == 0 {
                self.tables[w.index()].remove(&t);
            }
        }
    }

    /// The regions of window `w` whose mappings come from large pages.
    pub fn large_regions(&self, w: WindowKind) -> Vec<u32> {
        self.regions[w.index()].iter().filter(|(_, r)| r.table.is_none()).map(|(&k, _)| k).collect()
    }

    /// The pages of a region.
    pub fn region_pages(&self, key: u32) -> std::ops::Range<u32> {
        key << self.shift..(key + 1) << self.shift
    }

    /// Live mappings recorded (for tests).
    #[cfg(test)]
    pub fn live(&self) -> u32 {
        self.regions.iter().flat_map(|r| r.values()).map(|r| r.live).sum()
    }
}
