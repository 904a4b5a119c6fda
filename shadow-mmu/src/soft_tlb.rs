//! A small software TLB for the monitor's own accesses to guest memory: the IDT, GDT and
//! TSS reads and the stack pushes of an interrupt delivery, `iret`'s pops, emulated
//! instructions' operands. Without it each of those dwords costs a full guest page walk
//! (and an accessed/dirty-bit check); a system call makes dozens.
//!
//! It caches successful translations only, per kind of access (read/write, user or
//! supervisor, fetch), so it never remembers a fault, and a write entry exists only once
//! the dirty bit is set. It is flushed exactly when the host windows are (CR3 writes keep
//! global entries; `invlpg`, paging-mode and CR0.WP/CR4/EFER changes drop everything), so
//! it behaves like the hardware TLB the guest programs against.

use crate::walk::Access;

const ENTRIES: usize = 64;

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    /// Linear page number << 3 | access kind, + 1 (0 = empty).
    tag: u64,
    phys_page: u64,
    global: bool,
}

/// The cache.
#[derive(Debug)]
pub struct SoftTlb {
    entries: [Entry; ENTRIES],
}

impl Default for SoftTlb {
    fn default() -> Self {
        SoftTlb { entries: [Entry::default(); ENTRIES] }
    }
}

fn tag(linear: u32, access: Access) -> u64 {
    let kind = access.write as u64 | (access.user as u64) << 1 | (access.fetch as u64) << 2;
    ((linear as u64 >> 12) << 3 | kind) + 1
}

fn slot(tag: u64) -> usize {
    ((tag ^ (tag >> 9)) as usize) % ENTRIES
}

impl SoftTlb {
    /// The physical page (address) `linear` translates to for `access`, if cached.
    pub fn get(&self, linear: u32, access: Access) -> Option<u64> {
        let t = tag(linear, access);
        let e = &self.entries[slot(t)];
        (e.tag == t).then_some(e.phys_page)
    }

    /// Remembers a successful translation (its A/D bits set for this access).
    pub fn insert(&mut self, linear: u32, access: Access, phys_page: u64, global: bool) {
        let t = tag(linear, access);
        self.entries[slot(t)] = Entry { tag: t, phys_page, global };
    }

    /// Forgets everything, or everything but global translations.
    pub fn flush(&mut self, keep_global: bool) {
        for e in &mut self.entries {
            if !(keep_global && e.global) {
                *e = Entry::default();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_access_kind_and_flushes() {
        let mut t = SoftTlb::default();
        let read = Access::SUPERVISOR_READ;
        let write = Access::SUPERVISOR_WRITE;
        t.insert(0x1234_5678, read, 0x9000, false);
        t.insert(0x0040_0000, read, 0xA000, true);
        assert_eq!(t.get(0x1234_5000, read), Some(0x9000));
        assert_eq!(t.get(0x1234_5000, write), None, "a read entry does not serve writes");
        assert_eq!(t.get(0x1234_5000, Access::data(false, true)), None, "nor user reads");
        t.flush(true);
        assert_eq!(t.get(0x1234_5000, read), None);
        assert_eq!(t.get(0x0040_0FFF, read), Some(0xA000), "global entries survive a CR3 write");
        t.flush(false);
        assert_eq!(t.get(0x0040_0000, read), None);
    }
}
