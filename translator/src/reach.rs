//! Code that translated code reaches without a lookup — fragments with cross-page links
//! into them, with indirect-branch table entries, or whose last instruction runs into the
//! next page — indexed by guest linear page and by global bit, so that a TLB flush finds
//! exactly the fragments it makes stale.
//!
//! A lookup checks a fragment's key (linear and physical address) against the guest's
//! current translation; a chained jump, an indirect-branch hit or the second page of a
//! straddling fragment do not. So when the guest's translation of a linear page may
//! change (`invlpg`, a CR3 write, a paging-mode change), what reaches code on that page
//! without a lookup must go. An `invlpg` visits only its page's bucket, a CR3 write only
//! the non-global set, and a fragment leaves every bucket when it is forgotten or
//! invalidated, so a flush costs what it invalidates, never the guest's whole history.
//!
//! A CR3 write need not drop everything non-global, though: a process switched to runs
//! much of the same code as the one before it (shared libraries, the same program after
//! `fork`, the same binary's page-cache frames after `exec`), and what its tables map to
//! the same frames is still right. So the non-global set is kept by *code page* (linear
//! page, frame, privilege), and [`Translator::tlb_flush_keeping`] asks the guest's new
//! tables once per code page: the fragments on pages that still map the same frame, with
//! the accessed bits already set (so no walk the guest could see is skipped), keep their
//! links and table entries; a CPU could have cached those translations the moment CR3
//! was loaded. Without that, every context switch cost dozens of exits to relink the
//! code both processes run.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use crate::Translator;
use crate::fragment::{FragId, FragKey, Fragment};

/// The index. Members are fragment indices of the current cache generation (a
/// whole-cache flush replaces the index with the table).
#[derive(Default)]
pub struct ReachIndex {
    /// Linear page number → fragments with code on it.
    by_page: HashMap<u32, HashSet<u32>>,
    /// Fragments whose code pages are all global (they survive CR3 writes).
    global: HashSet<u32>,
    /// The others, under each code page they are on (one or two).
    nonglobal: HashMap<CodePage, HashSet<u32>>,
    /// How many fragments `nonglobal` holds.
    nonglobal_len: usize,
}

/// A page of code as the translation of a fragment saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct CodePage {
    /// Linear page number.
    page: u32,
    /// Guest-physical page number it mapped.
    frame: u64,
    /// Fetched at CPL 3.
    user: bool,
}

/// The code pages of a fragment.
fn code_pages(f: &Fragment) -> impl Iterator<Item = CodePage> + use<> {
    let user = f.key.mode.cpl() == 3;
    let first = CodePage { page: f.key.linear >> 12, frame: f.key.phys >> 12, user };
    let second = f.straddles.zip(f.straddle_phys).map(|(page, frame)| CodePage { page, frame, user });
    std::iter::once(first).chain(second)
}

/// The linear pages a fragment's code is on.
fn pages(f: &Fragment) -> impl Iterator<Item = u32> + use<> {
    std::iter::once(f.key.linear >> 12).chain(f.straddles)
}

impl ReachIndex {
    /// How many fragments are indexed.
    pub fn len(&self) -> usize {
        self.global.len() + self.nonglobal_len
    }

    /// True if no fragment is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Translator {
    /// Puts fragment `id` in the index (it is now reached without a lookup).
    pub(crate) fn reach_add(&mut self, id: FragId) {
        let f = self.table.frag_mut(id);
        if f.reached || !f.valid {
            return;
        }
        f.reached = true;
        let (idx, global, ps, cps) = (id.index(), f.global, pages(f), code_pages(f));
        let r = &mut self.table.reach;
        for p in ps {
            r.by_page.entry(p).or_default().insert(idx);
        }
        if global {
            r.global.insert(idx);
        } else {
            for cp in cps {
                r.nonglobal.entry(cp).or_default().insert(idx);
            }
            r.nonglobal_len += 1;
        }
    }

    /// Takes fragment `id` out of the index (forgotten or invalidated).
    pub(crate) fn reach_remove(&mut self, id: FragId) {
        let f = self.table.frag_mut(id);
        if !f.reached {
            return;
        }
        f.reached = false;
        let (idx, ps, cps) = (id.index(), pages(f), code_pages(f));
        let r = &mut self.table.reach;
        for p in ps {
            if let Some(b) = r.by_page.get_mut(&p) {
                b.remove(&idx);
                if b.is_empty() {
                    r.by_page.remove(&p);
                }
            }
        }
        if !r.global.remove(&idx) {
            let mut was_there = false;
            for cp in cps {
                if let Some(set) = r.nonglobal.get_mut(&cp) {
                    was_there |= set.remove(&idx);
                    if set.is_empty() {
                        r.nonglobal.remove(&cp);
                    }
                }
            }
            r.nonglobal_len -= was_there as usize;
        }
    }

    /// The guest's TLB was flushed (`all`: global translations too), with nothing known
    /// about the new translations: everything non-global goes.
    pub fn tlb_flush(&mut self, all: bool) {
        self.tlb_flush_keeping(all, |_, _| None)
    }

    /// The guest's TLB was flushed (`all`: global translations too). `maps(page, user)`
    /// gives the frame (page number) linear page `page` maps for an instruction fetch
    /// at CPL 3 (`user`) or 0 now, if the walk there needs to set no accessed bit
    /// (otherwise None). Non-global fragments on pages that still map their frames stay
    /// reachable; the rest are forgotten. One call of `maps` per code page.
    pub fn tlb_flush_keeping(&mut self, all: bool, mut maps: impl FnMut(u32, bool) -> Option<u64>) {
        let r = &mut self.table.reach;
        // Taking the sets leaves fresh ones behind, so the capacity a burst of entries
        // grew is not scanned again by later flushes.
        let mut stale: HashSet<u32> = HashSet::default();
        if all {
            stale.extend(std::mem::take(&mut r.global));
            stale.extend(std::mem::take(&mut r.nonglobal).into_values().flatten());
            r.nonglobal_len = 0;
            r.by_page = HashMap::default();
        } else {
            for (cp, set) in &r.nonglobal {
                self.stats.tlb_flush_visits += 1;
                if maps(cp.page, cp.user) != Some(cp.frame) {
                    stale.extend(set);
                }
            }
            self.stats.tlb_flush_kept += (r.nonglobal_len - stale.len()) as u64;
            if stale.len() == r.nonglobal_len {
                r.nonglobal = HashMap::default();
                r.nonglobal_len = 0;
            }
        }
        self.forget_all(stale.into_iter().collect());
    }

    /// `invlpg` of linear page `page`.
    pub fn tlb_flush_page(&mut self, page: u32) {
        let Some(bucket) = self.table.reach.by_page.remove(&page) else {
            return;
        };
        self.forget_all(bucket.into_iter().collect());
    }

    fn forget_all(&mut self, stale: Vec<u32>) {
        for idx in stale {
            let id = self.table.frag_id(idx);
            self.forget(id);
        }
    }

    /// Drops whatever reaches fragment `id` without a lookup: links from other pages,
    /// indirect-branch entries, and, if it straddles a page boundary (its bytes depend on
    /// a second translation no lookup checks), the fragment itself: it is parked.
    fn forget(&mut self, id: FragId) {
        self.stats.tlb_flush_visits += 1;
        self.reach_remove(id);
        let cross = std::mem::take(&mut self.table.frag_mut(id).cross_incoming);
        self.stats.tlb_flush_visits += cross.len() as u64;
        for link in cross {
            if self.table.link(link).to == Some(id) {
                self.unlink(link);
            }
        }
        self.ibl_remove(id);
        if self.table.frag(id).straddles.is_some() {
            self.park(id);
        }
    }

    /// Takes straddling fragment `id` out of reach (the lookup table, every link into
    /// it) but keeps it, under its key, for [`Translator::unpark`]: code that ends on a
    /// page boundary runs again after every context switch, and translating it again
    /// each time would make a CR3 write cost what it drops.
    fn park(&mut self, id: FragId) {
        let f = self.table.frag(id);
        if !f.valid || f.transient {
            if f.valid {
                self.invalidate(id);
            }
            return;
        }
        let key = f.key;
        if self.table.by_key.get(&key) == Some(&id) {
            self.table.by_key.remove(&key);
        }
        self.unlink_incoming(id);
        self.ibl_remove(id);
        self.reach_remove(id);
        self.table.frag_mut(id).parked = true;
        if let Some(old) = self.table.parked.insert(key, id)
            && old != id
        {
            self.invalidate(old);
        }
        self.stats.straddlers_parked += 1;
    }

    /// The linear page number the parked fragment for `key` runs into, if there is one:
    /// the caller translates that page and passes its frame to [`Translator::unpark`].
    pub fn parked_second_page(&self, key: &FragKey) -> Option<u32> {
        let id = *self.table.parked.get(key)?;
        self.table.frag(id).straddles
    }

    /// Takes back the parked fragment for `key` if its second page is still frame
    /// `second` (a page number; None: not fetchable now), and returns it; otherwise
    /// invalidates it. Its code pages are write-protected like any fragment's, so its
    /// bytes are unchanged if it is still valid.
    pub fn unpark(&mut self, key: &FragKey, second: Option<u64>) -> Option<FragId> {
        let id = self.table.parked.remove(key)?;
        let f = self.table.frag_mut(id);
        if !f.valid {
            return None;
        }
        if second.is_none() || f.straddle_phys != second {
            self.invalidate(id);
            return None;
        }
        // The second page's translation may have stopped being global: count the
        // fragment as non-global, which a CR3 write parks again, at worst.
        f.global = false;
        f.parked = false;
        self.table.by_key.insert(*key, id);
        self.reach_add(id);
        self.stats.straddlers_reused += 1;
        Some(id)
    }
}
