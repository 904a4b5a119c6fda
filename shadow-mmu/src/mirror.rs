//! What a user window holds, page by page, for a copy of it in another process.
//!
//! With the sandbox, directly executed guest user code runs in a stub process (the
//! monitor's `direct::stub`, one per address space that has a user window of its own),
//! whose address space must hold exactly what the window it copies holds: the same guest
//! frames at the same guest linear addresses with the same permissions, there at the user
//! window's place (host 0). The window records every change it makes here ([`Mirror`]):
//! the frame and permissions of each page, and which pages changed since the stub last
//! caught up. Before guest code runs in the stub, the monitor takes the changes
//! ([`Mirror::take_changes`]) as runs of pages ([`MirrorRun`]) and has the stub make the
//! same mappings.
//!
//! The table covers the window's 2^20 pages and the mirror page above it (4 MiB). Pages
//! are recorded in the order they first changed; a page that changes several times is
//! sent once, in its final state.

use crate::PAGE_SIZE;
use crate::window::Prot;

/// Pages the table covers: the 4 GiB window and the mirror page above it.
const PAGES: usize = (1 << 20) + 1;

/// A page's state: 0 for unmapped, else `(frame + 1) | prot << PROT_SHIFT`.
const PROT_SHIFT: u32 = 28;
const FRAME_MASK: u32 = (1 << PROT_SHIFT) - 1;

fn encode(frame: u64, prot: Prot) -> u32 {
    debug_assert!(frame + 1 < FRAME_MASK as u64);
    let p = match prot {
        Prot::None => return 0,
        Prot::Read => 1,
        Prot::ReadWrite => 2,
        Prot::ReadExec => 3,
        Prot::ReadWriteExec => 4,
    };
    (frame as u32 + 1) | p << PROT_SHIFT
}

fn decode(state: u32) -> Option<(u64, Prot)> {
    if state == 0 {
        return None;
    }
    let prot = match state >> PROT_SHIFT {
        1 => Prot::Read,
        2 => Prot::ReadWrite,
        3 => Prot::ReadExec,
        _ => Prot::ReadWriteExec,
    };
    Some(((state & FRAME_MASK) as u64 - 1, prot))
}

/// A run of pages to make the same in the copy: `pages` pages from offset `at` in the
/// window, mapping guest frames from byte `offset` of the RAM file on (consecutive) with
/// `prot`, or unmapped (`mapping` None).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MirrorRun {
    /// Where the first page lies from the window's base: its guest linear address, or 4
    /// GiB for the window's mirror page (guest page 0 again, above the window).
    pub at: u64,
    /// Number of pages.
    pub pages: u64,
    /// `(offset in the RAM file, permissions)`, or None for unmapped.
    pub mapping: Option<(u64, Prot)>,
}

/// What changed in the user window since the copy last caught up.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MirrorChanges {
    /// Everything was unmapped first (a full flush): the copy drops all its pages before
    /// applying `runs`.
    pub unmap_all: bool,
    /// The pages that changed since, in address order, coalesced into runs.
    pub runs: Vec<MirrorRun>,
}

/// The user window's pages as the copy must hold them.
pub struct Mirror {
    base: u64,
    state: Vec<u32>,
    /// Pages changed since the last [`Mirror::take_changes`] (each once: `queued`).
    changed: Vec<u32>,
    queued: Vec<u64>,
    unmap_all: bool,
}

impl Mirror {
    /// An empty mirror of a window at host address `base`.
    pub fn new(base: u64) -> Mirror {
        Mirror { base, state: vec![0; PAGES], changed: Vec::new(), queued: vec![0; PAGES.div_ceil(64)], unmap_all: true }
    }

    fn page_index(&self, host: u64) -> usize {
        ((host - self.base) / PAGE_SIZE) as usize
    }

    fn set(&mut self, index: usize, state: u32) {
        if self.state[index] == state {
            return;
        }
        self.state[index] = state;
        let (word, bit) = (index / 64, 1u64 << (index % 64));
        if self.queued[word] & bit == 0 {
            self.queued[word] |= bit;
            self.changed.push(index as u32);
        }
    }

    /// `pages` pages at `host` now map the RAM file from `offset` on with `prot`.
    pub fn mapped(&mut self, host: u64, offset: u64, pages: u64, prot: Prot) {
        let first = self.page_index(host);
        for i in 0..pages as usize {
            self.set(first + i, encode(offset / PAGE_SIZE + i as u64, prot));
        }
    }

    /// The mapped pages among `pages` pages at `host` now have permissions `prot`.
    pub fn protected(&mut self, host: u64, pages: u64, prot: Prot) {
        let first = self.page_index(host);
        for i in first..first + pages as usize {
            if let Some((frame, _)) = decode(self.state[i]) {
                self.set(i, encode(frame, prot));
            }
        }
    }

    /// Nothing is mapped any more: one instruction to the copy, not a million pages.
    pub fn unmapped_all(&mut self) {
        self.state.fill(0);
        self.queued.fill(0);
        self.changed.clear();
        self.unmap_all = true;
    }

    /// `pages` pages at `host` are no longer mapped.
    pub fn unmapped(&mut self, host: u64, pages: u64) {
        let first = self.page_index(host);
        for i in first..(first + pages as usize).min(PAGES) {
            if self.state[i] != 0 {
                self.set(i, 0);
            }
        }
    }

    /// True if nothing changed since the last [`Mirror::take_changes`].
    pub fn is_current(&self) -> bool {
        !self.unmap_all && self.changed.is_empty()
    }

    /// The changes since the last call, as runs of pages in address order (the copy is
    /// then taken to be current).
    pub fn take_changes(&mut self) -> MirrorChanges {
        let mut pages = std::mem::take(&mut self.changed);
        pages.sort_unstable();
        let mut runs: Vec<MirrorRun> = Vec::new();
        for &i in &pages {
            let i = i as usize;
            self.queued[i / 64] &= !(1 << (i % 64));
            let at = i as u64 * PAGE_SIZE;
            let mapping = decode(self.state[i]).map(|(frame, prot)| (frame * PAGE_SIZE, prot));
            if let Some(last) = runs.last_mut() {
                let next = last.at + last.pages * PAGE_SIZE;
                let continues = match (last.mapping, mapping) {
                    (None, None) => true,
                    (Some((off, p)), Some((o, q))) => p == q && off + last.pages * PAGE_SIZE == o,
                    _ => false,
                };
                if next == at && continues {
                    last.pages += 1;
                    continue;
                }
            }
            runs.push(MirrorRun { at, pages: 1, mapping });
        }
        pages.clear();
        self.changed = pages;
        MirrorChanges { unmap_all: std::mem::take(&mut self.unmap_all), runs }
    }

    /// Forgets what the copy holds: the next changes start with `unmap_all` and every
    /// mapped page (for a new copy).
    pub fn resend_all(&mut self) {
        self.queued.fill(0);
        self.changed.clear();
        self.unmap_all = true;
        for i in 0..PAGES {
            if self.state[i] != 0 {
                self.queued[i / 64] |= 1 << (i % 64);
                self.changed.push(i as u32);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_coalesce_into_runs_in_their_final_state() {
        let mut m = Mirror::new(0);
        assert_eq!(m.take_changes(), MirrorChanges { unmap_all: true, runs: vec![] });
        assert!(m.is_current());
        // Three pages of consecutive frames, one of them written afterwards.
        m.mapped(0x1000, 0x50000, 3, Prot::Read);
        m.protected(0x2000, 1, Prot::ReadWrite);
        m.mapped(0x8000, 0x9000, 1, Prot::ReadExec);
        m.unmapped(0x8000, 1);
        let c = m.take_changes();
        assert!(!c.unmap_all);
        assert_eq!(
            c.runs,
            vec![
                MirrorRun { at: 0x1000, pages: 1, mapping: Some((0x50000, Prot::Read)) },
                MirrorRun { at: 0x2000, pages: 1, mapping: Some((0x51000, Prot::ReadWrite)) },
                MirrorRun { at: 0x3000, pages: 1, mapping: Some((0x52000, Prot::Read)) },
                MirrorRun { at: 0x8000, pages: 1, mapping: None },
            ]
        );
        assert!(m.is_current());
        // Protecting an unmapped page changes nothing; unmapping a mapped one does.
        m.protected(0x9000, 1, Prot::ReadWrite);
        assert!(m.is_current());
        m.unmapped(0x1000, 2);
        assert_eq!(m.take_changes().runs, vec![MirrorRun { at: 0x1000, pages: 2, mapping: None }]);
    }

    #[test]
    fn a_full_unmap_is_one_instruction_and_a_new_copy_gets_everything() {
        let mut m = Mirror::new(0);
        m.take_changes();
        m.mapped(0x10000, 0, 2, Prot::ReadWrite);
        m.unmapped_all();
        m.mapped(0x20000, 0x3000, 1, Prot::Read);
        let c = m.take_changes();
        assert!(c.unmap_all);
        assert_eq!(c.runs, vec![MirrorRun { at: 0x20000, pages: 1, mapping: Some((0x3000, Prot::Read)) }]);
        m.resend_all();
        let c = m.take_changes();
        assert!(c.unmap_all);
        assert_eq!(c.runs, vec![MirrorRun { at: 0x20000, pages: 1, mapping: Some((0x3000, Prot::Read)) }]);
        // The mirror page above the window is a page like the others.
        m.mapped(1 << 32, 0x5000, 1, Prot::Read);
        assert_eq!(m.take_changes().runs, vec![MirrorRun { at: 1 << 32, pages: 1, mapping: Some((0x5000, Prot::Read)) }]);
    }

    #[test]
    fn runs_are_where_pages_lie_in_the_window_not_in_this_process() {
        let base = 80 << 30;
        let mut m = Mirror::new(base);
        m.take_changes();
        m.mapped(base + 0x7000, 0x3000, 2, Prot::ReadExec);
        m.mapped(base + (1 << 32), 0x9000, 1, Prot::Read);
        assert_eq!(
            m.take_changes().runs,
            vec![
                MirrorRun { at: 0x7000, pages: 2, mapping: Some((0x3000, Prot::ReadExec)) },
                MirrorRun { at: 1 << 32, pages: 1, mapping: Some((0x9000, Prot::Read)) },
            ]
        );
    }
}
