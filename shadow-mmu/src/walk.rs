//! Guest page walks: 32-bit paging (no PAE) with 4 KiB and 4 MiB pages, as the SDM
//! specifies it (Vol. 3, 4.3 and 4.6), for the monitor's own accesses and for filling the
//! windows.
//!
//! [`walk`] only reads the guest's tables and checks permissions; [`mark`] then sets the
//! accessed and dirty bits the access would set on hardware.

use crate::ram::GuestRam;

/// Page-table entry bits.
pub mod pte {
    /// Present.
    pub const P: u32 = 1 << 0;
    /// Writable.
    pub const RW: u32 = 1 << 1;
    /// User-accessible.
    pub const US: u32 = 1 << 2;
    /// Accessed.
    pub const A: u32 = 1 << 5;
    /// Dirty.
    pub const D: u32 = 1 << 6;
    /// Page size (in a PDE: a 4 MiB page).
    pub const PS: u32 = 1 << 7;
    /// Global.
    pub const G: u32 = 1 << 8;
}

/// #PF error-code bits.
pub mod pf {
    /// The page was present (a protection violation).
    pub const P: u32 = 1 << 0;
    /// A write.
    pub const W: u32 = 1 << 1;
    /// A user-mode access.
    pub const U: u32 = 1 << 2;
    /// A reserved bit was set in a paging-structure entry.
    pub const RSVD: u32 = 1 << 3;
}

/// The control-register bits paging depends on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PagingRegs {
    /// CR0 (PG, WP are used).
    pub cr0: u32,
    /// CR3 (the page directory).
    pub cr3: u32,
    /// CR4 (PSE, PGE are used).
    pub cr4: u32,
}

impl PagingRegs {
    /// CR0.PG.
    pub fn paging(&self) -> bool {
        self.cr0 & (1 << 31) != 0
    }
    /// CR0.WP: supervisor writes honour read-only pages.
    pub fn write_protect(&self) -> bool {
        self.cr0 & (1 << 16) != 0
    }
    /// CR4.PSE: 4 MiB pages.
    pub fn pse(&self) -> bool {
        self.cr4 & (1 << 4) != 0
    }
    /// CR4.PGE: global pages.
    pub fn pge(&self) -> bool {
        self.cr4 & (1 << 7) != 0
    }
}

/// What kind of access a walk is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// A write.
    pub write: bool,
    /// A user-mode (CPL 3, not implicit-supervisor) access.
    pub user: bool,
}

impl Access {
    /// A supervisor read.
    pub const SUPERVISOR_READ: Access = Access { write: false, user: false };
    /// A supervisor write.
    pub const SUPERVISOR_WRITE: Access = Access { write: true, user: false };
}

/// A page fault: the linear address (CR2) and the error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageFault {
    /// The faulting linear address.
    pub linear: u32,
    /// The #PF error code.
    pub error_code: u32,
}

/// The result of a successful walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// Physical address of the 4 KiB page that holds the linear address.
    pub phys_page: u64,
    /// Writable at every level (R/W = 1 in the PDE and the PTE).
    pub writable: bool,
    /// User-accessible at every level.
    pub user: bool,
    /// Global (G in the PTE or 4 MiB PDE, with CR4.PGE).
    pub global: bool,
    /// A 4 MiB page.
    pub large: bool,
    /// The dirty bit of the leaf entry is already set.
    pub dirty: bool,
    /// The accessed bit of the leaf entry is already set.
    pub accessed: bool,
    /// Physical address of the PDE.
    pub pde_addr: u64,
    /// Physical address of the leaf entry (the PTE, or the PDE of a 4 MiB page).
    pub leaf_addr: u64,
}

impl Translation {
    /// True if an access of kind `a` may write the page (for the window's permission):
    /// user writes need R/W; supervisor writes need it only with CR0.WP.
    pub fn write_allowed(&self, a_user: bool, regs: &PagingRegs) -> bool {
        if a_user { self.user && self.writable } else { self.writable || !regs.write_protect() }
    }
}

/// Walks the guest's tables for `linear` and checks `access` against them.
pub fn walk(ram: &GuestRam, regs: &PagingRegs, linear: u32, access: Access) -> Result<Translation, PageFault> {
    let fault = |present: bool, rsvd: bool| PageFault {
        linear,
        error_code: ((present as u32) * pf::P)
            | ((access.write as u32) * pf::W)
            | ((access.user as u32) * pf::U)
            | ((rsvd as u32) * (pf::RSVD | pf::P)),
    };
    let pde_addr = (regs.cr3 & 0xFFFF_F000) as u64 + ((linear >> 22) as u64) * 4;
    let pde = ram.read_u32(pde_addr);
    if pde & pte::P == 0 {
        return Err(fault(false, false));
    }
    let t = if pde & pte::PS != 0 && regs.pse() {
        // Without PSE-36 (not in this CPU's CPUID) bits 21:13 are reserved.
        if pde & 0x003F_E000 != 0 {
            return Err(fault(true, true));
        }
        Translation {
            phys_page: ((pde & 0xFFC0_0000) | (linear & 0x003F_F000)) as u64,
            writable: pde & pte::RW != 0,
            user: pde & pte::US != 0,
            global: pde & pte::G != 0 && regs.pge(),
            large: true,
            dirty: pde & pte::D != 0,
            accessed: pde & pte::A != 0,
            pde_addr,
            leaf_addr: pde_addr,
        }
    } else {
        let pte_addr = (pde & 0xFFFF_F000) as u64 + (((linear >> 12) & 0x3FF) as u64) * 4;
        let e = ram.read_u32(pte_addr);
        if e & pte::P == 0 {
            return Err(fault(false, false));
        }
        Translation {
            phys_page: (e & 0xFFFF_F000) as u64,
            writable: pde & e & pte::RW != 0,
            user: pde & e & pte::US != 0,
            global: e & pte::G != 0 && regs.pge(),
            large: false,
            dirty: e & pte::D != 0,
            accessed: e & pte::A != 0,
            pde_addr,
            leaf_addr: pte_addr,
        }
    };
    let allowed = if access.user { t.user && (!access.write || t.writable) } else { !access.write || t.writable || !regs.write_protect() };
    if !allowed {
        return Err(fault(true, false));
    }
    Ok(t)
}

/// Sets the accessed bits (and, for a write, the dirty bit) that an access through `t`
/// sets on hardware. Returns the physical addresses of the entries it changed.
pub fn mark(ram: &mut GuestRam, t: &Translation, write: bool) -> [Option<u64>; 2] {
    let mut changed = [None, None];
    let pde = ram.read_u32(t.pde_addr);
    if pde & pte::A == 0 {
        ram.write_u32(t.pde_addr, pde | pte::A);
        changed[0] = Some(t.pde_addr);
    }
    let leaf = ram.read_u32(t.leaf_addr);
    let want = leaf | pte::A | if write { pte::D } else { 0 };
    if want != leaf {
        ram.write_u32(t.leaf_addr, want);
        changed[1] = Some(t.leaf_addr);
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ram_with(entries: &[(u64, u32)]) -> GuestRam {
        let mut ram = GuestRam::new(4 << 20).unwrap();
        for &(a, v) in entries {
            ram.write_u32(a, v);
        }
        ram
    }

    const PD: u64 = 0x1000;
    const PT: u64 = 0x2000;
    const REGS: PagingRegs = PagingRegs { cr0: 0x8001_0001, cr3: PD as u32, cr4: 0x10 };

    #[test]
    fn four_kib_page_and_error_codes() {
        // linear 0x00403000 -> PD[1] -> PT[3] = frame 0x5000, read-only, supervisor.
        let ram = ram_with(&[(PD + 4, PT as u32 | pte::P | pte::RW | pte::US), (PT + 12, 0x5000 | pte::P)]);
        let t = walk(&ram, &REGS, 0x0040_3123, Access::SUPERVISOR_READ).unwrap();
        assert_eq!(t.phys_page, 0x5000);
        assert!(!t.writable && !t.user && !t.large);
        // Supervisor write to a read-only page with WP: P | W.
        assert_eq!(walk(&ram, &REGS, 0x0040_3000, Access::SUPERVISOR_WRITE), Err(PageFault { linear: 0x0040_3000, error_code: 0b011 }));
        // Without WP it is allowed.
        let no_wp = PagingRegs { cr0: 0x8000_0001, ..REGS };
        assert!(walk(&ram, &no_wp, 0x0040_3000, Access::SUPERVISOR_WRITE).is_ok());
        // User read of a supervisor page: P | U.
        assert_eq!(walk(&ram, &REGS, 0x0040_3000, Access { write: false, user: true }).unwrap_err().error_code, 0b101);
        // Not-present PTE, user write: W | U.
        assert_eq!(walk(&ram, &REGS, 0x0040_4000, Access { write: true, user: true }).unwrap_err().error_code, 0b110);
        // Not-present PDE, supervisor read: 0.
        assert_eq!(walk(&ram, &REGS, 0x0080_0000, Access::SUPERVISOR_READ).unwrap_err().error_code, 0);
    }

    #[test]
    fn four_mib_page_reserved_bits_and_marking() {
        let mut ram = ram_with(&[(PD + 8, 0x0080_0000 | pte::PS | pte::P | pte::RW | pte::US | pte::G)]);
        let t = walk(&ram, &REGS, 0x0085_6789, Access { write: true, user: true }).unwrap();
        assert_eq!(t.phys_page, 0x0085_6000);
        assert!(t.large && t.user && t.writable && !t.global, "G needs CR4.PGE");
        mark(&mut ram, &t, true);
        assert_eq!(ram.read_u32(PD + 8) & (pte::A | pte::D), pte::A | pte::D);
        // Bit 13 set in a 4 MiB PDE without PSE-36: reserved.
        ram.write_u32(PD + 8, 0x0080_2000 | pte::PS | pte::P);
        assert_eq!(walk(&ram, &REGS, 0x0080_0000, Access::SUPERVISOR_READ).unwrap_err().error_code, pf::RSVD | pf::P);
        // Without CR4.PSE the PS bit is ignored: the PDE points to a page table.
        let no_pse = PagingRegs { cr4: 0, ..REGS };
        ram.write_u32(PD + 8, PT as u32 | pte::PS | pte::P);
        ram.write_u32(PT, 0x7000 | pte::P);
        assert_eq!(walk(&ram, &no_pse, 0x0080_0000, Access::SUPERVISOR_READ).unwrap().phys_page, 0x7000);
    }
}
