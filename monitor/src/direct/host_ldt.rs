//! Shadow descriptors: the guest's segments as entries of the host LDT.
//!
//! Directly executed code uses host selectors, so every guest segment it runs with needs
//! a host descriptor that behaves the same: the host LDT (`modify_ldt`), the only
//! descriptor table a Linux process can write. A guest segment of base `b` becomes a host
//! segment of base `window + b` (32-bit arithmetic) with the guest's limit, type and size.
//! Compatibility mode wraps `base + offset` at 4 GiB, so an access lands in the user
//! window exactly where guest linear `b + offset` lives, or — for guest linear addresses
//! of 3 GiB and up, which the user window cannot hold — in the guard below the window,
//! where it faults and the monitor takes over. No limit needs truncating.
//!
//! With the user window at host 0 (bt86's default) the shadow has the guest's own base,
//! and flat guest segments run with base 0, as fast as on hardware.
//!
//! Slots: guest LDT entry `i` is host LDT entry `i` (so that guest code loading an LDT
//! selector natively gets the right descriptor: the guest LDT is mirrored at every entry
//! to direct execution). Guest GDT entry `i` is host LDT entry `i` too when the guest LDT
//! has no entry `i`, and host LDT entry [`GDT_SLOTS`]` + i` when it has. The same index
//! matters because programs compute with selectors they read: glibc's `pthread_create`
//! passes `%gs >> 3` to `clone` as the TLS entry number, and natively `%gs` holds the
//! host selector (`i << 3 | 7`, where the guest has `i << 3 | 3`). The price: a native
//! load of an LDT selector beyond the guest LDT's limit that should raise #GP loads the
//! GDT entry of that index instead, when one is in use. A guest descriptor the host cannot
//! represent — not DPL 3, conforming code, a system descriptor — is installed as an empty
//! entry, so a native load of it faults and the translator handles the load.

use std::collections::HashMap;

use bt86_shadow_mmu::WindowKind;

use crate::cpu::SegmentCache;

/// Host LDT entries from here on hold guest GDT descriptors.
pub const GDT_SLOTS: u16 = 4096;

/// Linux's `struct user_desc` (asm/ldt.h); `flags` packs the bitfield (see the FLAG_
/// constants).
pub use super::stub::shared::UserDesc;

/// `user_desc` flag bits.
pub const FLAG_32BIT: u32 = 1 << 0;
/// Contents (2 bits): 0 data, 1 expand-down data, 2 code.
pub const FLAG_CONTENTS_SHIFT: u32 = 1;
/// Read-only data / execute-only code.
pub const FLAG_READ_EXEC_ONLY: u32 = 1 << 3;
/// The limit counts 4 KiB pages.
pub const FLAG_LIMIT_IN_PAGES: u32 = 1 << 4;
/// Not present.
pub const FLAG_NOT_PRESENT: u32 = 1 << 5;
/// The AVL bit.
pub const FLAG_USEABLE: u32 = 1 << 6;

/// The empty entry (Linux's "clear this descriptor" form).
const EMPTY_FLAGS: u32 = FLAG_READ_EXEC_ONLY | FLAG_NOT_PRESENT;

/// Why a guest segment cannot run natively.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotReversible {
    /// The descriptor has no host equivalent (not DPL 3, conforming, system, ...).
    Descriptor(u16),
    /// The selector's index is beyond the slots the host LDT has for it.
    Index(u16),
    /// `modify_ldt` failed.
    Host(i32),
}

/// The host LDT as the monitor set it up.
#[derive(Default)]
pub struct HostLdt {
    installed: HashMap<u16, UserDesc>,
    /// The guest LDT entries mirrored into slots `0..guest_ldt.len()`.
    guest_ldt: Vec<u64>,
    /// Slots below [`GDT_SLOTS`] that hold a guest GDT entry of the same index.
    gdt_in_low_slots: std::collections::HashSet<u16>,
    /// `modify_ldt` calls made.
    pub writes: u64,
    /// With the sandbox: the descriptors written since the sandbox last took them (a
    /// stub's LDT is written by the stub itself). None: this process's LDT is written.
    remote: Option<Vec<UserDesc>>,
}

/// The host descriptor for a guest segment register's cache, or None if it has none.
fn shadow_of(c: &SegmentCache) -> Option<(u32, u32, u32)> {
    if !c.present() || !c.is_code_or_data() || c.dpl() != 3 || c.is_conforming() {
        return None;
    }
    let contents = if c.is_code() {
        2
    } else if c.access & crate::cpu::segments::acc::CONFORMING != 0 {
        1 // expand-down data
    } else {
        0
    };
    let read_exec_only = if c.is_code() { !c.readable() } else { !c.writable_data() } as u32;
    let (limit, pages) = if c.flags & 0x8 != 0 { (c.limit >> 12, 1) } else { (c.limit & 0xF_FFFF, 0) };
    let flags = (c.default_big() as u32 * FLAG_32BIT)
        | (contents << FLAG_CONTENTS_SHIFT)
        | (read_exec_only * FLAG_READ_EXEC_ONLY)
        | (pages * FLAG_LIMIT_IN_PAGES)
        | ((c.flags & 1) as u32 * FLAG_USEABLE);
    Some(((WindowKind::User.base() as u32).wrapping_add(c.base), limit, flags))
}

/// The host selector of host LDT slot `slot` (RPL 3).
pub const fn host_selector(slot: u16) -> u16 {
    slot << 3 | 4 | 3
}

/// Writes host LDT entry `slot`: base, limit (in pages if `flags` says so) and the
/// `user_desc` flag bits. The one place bt86 calls `modify_ldt`.
pub fn write_entry(slot: u16, base: u32, limit: u32, flags: u32) -> std::io::Result<()> {
    let d = UserDesc { entry_number: slot as u32, base_addr: base, limit, flags };
    // SAFETY: modify_ldt(0x11 = write, new format) reads one user_desc from a valid
    // pointer and changes only this process's LDT. Callers keep every entry inside the
    // user window (base = window + guest base, see the module comment) or empty.
    let r = unsafe { libc::syscall(libc::SYS_modify_ldt, 0x11, &d as *const UserDesc, std::mem::size_of::<UserDesc>()) };
    if r != 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

impl HostLdt {
    fn write(&mut self, slot: u16, base: u32, limit: u32, flags: u32) -> Result<(), NotReversible> {
        let d = UserDesc { entry_number: slot as u32, base_addr: base, limit, flags };
        if self.installed.get(&slot) == Some(&d) {
            return Ok(());
        }
        self.writes += 1;
        if let Some(pending) = self.remote.as_mut() {
            pending.retain(|p| p.entry_number != slot as u32);
            pending.push(d);
            self.installed.insert(slot, d);
            return Ok(());
        }
        if let Err(e) = write_entry(slot, base, limit, flags) {
            self.installed.remove(&slot);
            return Err(NotReversible::Host(e.raw_os_error().unwrap_or(0)));
        }
        self.installed.insert(slot, d);
        Ok(())
    }

    /// Writes go to a stub's LDT from now on ([`HostLdt::take_pending`] takes them).
    pub fn write_remotely(&mut self) {
        self.remote = Some(Vec::new());
    }

    /// The descriptors written since the last call, for the stub to install.
    pub fn take_pending(&mut self) -> Vec<UserDesc> {
        self.remote.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Every descriptor installed, in slot order (for a new stub, whose LDT is empty).
    pub fn installed(&self) -> Vec<UserDesc> {
        let mut all: Vec<UserDesc> = self.installed.values().copied().collect();
        all.sort_unstable_by_key(|d| d.entry_number);
        all
    }

    /// True if host selector `h` can be a guest code segment natively: an LDT slot the
    /// monitor wrote (what a stub reports in CS is checked against this).
    pub fn is_installed_code(&self, h: u16) -> bool {
        h & 4 != 0
            && h & 3 == 3
            && self.installed.get(&(h >> 3)).is_some_and(|d| (d.flags >> FLAG_CONTENTS_SHIFT) & 3 == 2 && d.flags & FLAG_NOT_PRESENT == 0)
    }

    /// The host LDT slot of a guest selector (see the module comment).
    fn slot_of(&self, selector: u16) -> Result<u16, NotReversible> {
        let index = selector >> 3;
        if index >= GDT_SLOTS {
            return Err(NotReversible::Index(selector));
        }
        Ok(if selector & 4 != 0 || index as usize >= self.guest_ldt.len() { index } else { GDT_SLOTS + index })
    }

    /// The host selector that runs guest segment register `c` natively (installing its
    /// shadow descriptor). A null guest selector is the host null selector.
    pub fn selector_for(&mut self, c: &SegmentCache) -> Result<u16, NotReversible> {
        if c.selector & !3 == 0 {
            return Ok(0);
        }
        let slot = self.slot_of(c.selector)?;
        let (base, limit, flags) = shadow_of(c).ok_or(NotReversible::Descriptor(c.selector))?;
        self.write(slot, base, limit, flags)?;
        if c.selector & 4 == 0 && slot < GDT_SLOTS {
            self.gdt_in_low_slots.insert(slot);
        }
        Ok(host_selector(slot))
    }

    /// Classifies host selector `h`, found in a segment register at an exit.
    pub fn classify(&self, h: u16) -> HostSelector {
        let index = h >> 3;
        if h & 4 == 0 {
            if index == 0 { HostSelector::Null(h) } else { HostSelector::HostGdt(h) }
        } else if index >= GDT_SLOTS {
            HostSelector::GuestGdt(((index - GDT_SLOTS) << 3) | (h & 3))
        } else if self.gdt_in_low_slots.contains(&index) {
            HostSelector::GuestGdt((index << 3) | (h & 3))
        } else {
            HostSelector::GuestLdt(h)
        }
    }

    /// Mirrors the guest's LDT (its raw descriptors, `ldt[i]` for selector `i << 3 | 4`)
    /// into host slots `0..`, and empties slots of entries the guest no longer has.
    /// Returns true if any slot changed.
    pub fn mirror_guest_ldt(&mut self, ldt: &[u64]) -> Result<bool, NotReversible> {
        let n = ldt.len().min(GDT_SLOTS as usize);
        if self.guest_ldt.as_slice() == &ldt[..n] {
            return Ok(false);
        }
        for (i, &raw) in ldt[..n].iter().enumerate() {
            if self.guest_ldt.get(i) == Some(&raw) {
                continue;
            }
            let selector = (i as u16) << 3 | 4 | 3;
            self.gdt_in_low_slots.remove(&(i as u16));
            let c = SegmentCache::from_descriptor(selector, raw);
            match shadow_of(&c) {
                Some((base, limit, flags)) => self.write(i as u16, base, limit, flags)?,
                None => self.write(i as u16, 0, 0, EMPTY_FLAGS)?,
            }
        }
        for i in n..self.guest_ldt.len() {
            self.write(i as u16, 0, 0, EMPTY_FLAGS)?;
        }
        self.guest_ldt.clear();
        self.guest_ldt.extend_from_slice(&ldt[..n]);
        Ok(true)
    }
}

/// Checks that this process may write its LDT (some kernels are built without
/// `modify_ldt`): writes the last slot empty.
pub fn probe() -> std::io::Result<()> {
    write_entry(8191, 0, 0, EMPTY_FLAGS)
}

/// What a host selector found in a segment register at an exit means for the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostSelector {
    /// The null selector (RPL kept).
    Null(u16),
    /// A guest LDT selector, loaded natively from the mirrored LDT.
    GuestLdt(u16),
    /// A slot the monitor loaded for a guest GDT selector.
    GuestGdt(u16),
    /// A host GDT selector: guest code loaded one of its GDT selectors natively and got
    /// the host's descriptor; the load must be redone against the guest GDT.
    HostGdt(u16),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadows_of_common_segments() {
        // Linux's user code and data (flat, DPL 3) and a TLS segment with a base.
        let code = SegmentCache { selector: 0x73, base: 0, limit: 0xFFFF_FFFF, access: 0xFB, flags: 0xC };
        let data = SegmentCache { selector: 0x7B, base: 0, limit: 0xFFFF_FFFF, access: 0xF3, flags: 0xC };
        let tls = SegmentCache { selector: 0x33, base: 0xB7F0_0000, limit: 0xFFFF_FFFF, access: 0xF3, flags: 0xC };
        let w = WindowKind::User.base() as u32;
        assert_eq!(shadow_of(&code), Some((w, 0xF_FFFF, 1 | 2 << 1 | 1 << 4)));
        assert_eq!(shadow_of(&data), Some((w, 0xF_FFFF, 1 | 1 << 4)));
        // The base wraps at 4 GiB: guest linear b + off is host window + (b + off) mod 4G.
        assert_eq!(shadow_of(&tls).unwrap().0, w.wrapping_add(0xB7F0_0000));
        // DPL 0 and conforming code have no shadow.
        assert_eq!(shadow_of(&SegmentCache { access: 0x93, ..data }), None);
        assert_eq!(shadow_of(&SegmentCache { access: 0xFF, ..code }), None);
    }

    #[test]
    fn gdt_selectors_keep_their_index_unless_the_guest_ldt_has_it() {
        let mut l = HostLdt::default();
        // No guest LDT: GDT entry 15 in slot 15, LDT entry 1 in slot 1.
        assert_eq!(l.slot_of(0x7B), Ok(15));
        assert_eq!(l.slot_of(0x0F), Ok(1));
        // A guest LDT of 16 entries takes slots 0..16: GDT entry 15 moves up.
        l.guest_ldt = vec![0; 16];
        assert_eq!(l.slot_of(0x7B), Ok(GDT_SLOTS + 15));
        assert_eq!(l.slot_of(0x7F), Ok(15));
    }

    #[test]
    fn host_selectors_classified() {
        let mut l = HostLdt::default();
        l.gdt_in_low_slots.insert(6);
        assert_eq!(l.classify(0), HostSelector::Null(0));
        assert_eq!(l.classify(0x33), HostSelector::HostGdt(0x33));
        assert_eq!(l.classify(host_selector(GDT_SLOTS + 15)), HostSelector::GuestGdt(0x7B));
        assert_eq!(l.classify(host_selector(6)), HostSelector::GuestGdt(0x33), "glibc's TLS: %gs >> 3 is 6 natively too");
        assert_eq!(l.classify(0x0F), HostSelector::GuestLdt(0x0F));
    }
}
