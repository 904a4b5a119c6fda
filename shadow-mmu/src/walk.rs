//! Guest page walks as the SDM specifies them (Vol. 3, 4.3-4.6): 32-bit paging with
//! 4 KiB and 4 MiB pages, and PAE paging (CR4.PAE: a 4-entry PDPT, 64-bit entries, 4 KiB
//! and 2 MiB pages, execute-disable with EFER.NXE), for the monitor's own accesses and
//! for filling the windows.
//!
//! [`walk`] only reads the guest's tables and checks permissions; [`mark`] then sets the
//! accessed and dirty bits the access would set on hardware (they live in the low dword
//! of a 64-bit entry too).

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
    /// Execute-disable (bit 63 of a PAE entry, with EFER.NXE).
    pub const XD: u64 = 1 << 63;
}

/// Physical-address width of the virtual CPU (no CPUID leaf 0x80000008: 36, as the SDM
/// specifies for PAE-capable processors, and as QEMU's 32-bit CPUs have it). PAE entry
/// bits from here to 62 are reserved.
pub const MAX_PHYS_ADDR_BITS: u32 = 36;

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
    /// An instruction fetch (reported with PAE and EFER.NXE).
    pub const ID: u32 = 1 << 4;
}

/// The control-register bits paging depends on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PagingRegs {
    /// CR0 (PG, WP are used).
    pub cr0: u32,
    /// CR3 (the page directory).
    pub cr3: u32,
    /// CR4 (PSE, PAE, PGE are used).
    pub cr4: u32,
    /// IA32_EFER (NXE is used).
    pub efer: u32,
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
    /// CR4.PAE: PAE paging.
    pub fn pae(&self) -> bool {
        self.cr4 & (1 << 5) != 0
    }
    /// EFER.NXE with PAE: the XD bit is honoured (and no longer reserved).
    pub fn nx(&self) -> bool {
        self.pae() && self.efer & (1 << 11) != 0
    }
    /// log2 of the 4 KiB pages a page table (or a large page) covers: 10 (4 MiB) for
    /// 32-bit paging, 9 (2 MiB) for PAE.
    pub fn table_shift(&self) -> u32 {
        if self.pae() { 9 } else { 10 }
    }
}

/// What kind of access a walk is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// A write.
    pub write: bool,
    /// A user-mode (CPL 3, not implicit-supervisor) access.
    pub user: bool,
    /// An instruction fetch (checked against execute-disable).
    pub fetch: bool,
}

impl Access {
    /// A supervisor read.
    pub const SUPERVISOR_READ: Access = Access { write: false, user: false, fetch: false };
    /// A supervisor write.
    pub const SUPERVISOR_WRITE: Access = Access { write: true, user: false, fetch: false };

    /// A data access: a read or a write, user-mode or not.
    pub const fn data(write: bool, user: bool) -> Access {
        Access { write, user, fetch: false }
    }

    /// An instruction fetch.
    pub const fn fetch(user: bool) -> Access {
        Access { write: false, user, fetch: true }
    }
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
    /// G set in the leaf entry, whatever CR4.PGE says.
    pub g_bit: bool,
    /// A large page (4 MiB, or 2 MiB with PAE).
    pub large: bool,
    /// Execute-disable at some level (PAE with EFER.NXE).
    pub no_execute: bool,
    /// The dirty bit of the leaf entry is already set.
    pub dirty: bool,
    /// The accessed bit of the leaf entry is already set.
    pub accessed: bool,
    /// Physical address of the PDE.
    pub pde_addr: u64,
    /// Physical address of the leaf entry (the PTE, or the PDE of a large page).
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
            | ((rsvd as u32) * (pf::RSVD | pf::P))
            | ((access.fetch && regs.nx()) as u32 * pf::ID),
    };
    let t = if regs.pae() { walk_pae(ram, regs, linear) } else { walk_32(ram, regs, linear) }.map_err(|(p, r)| fault(p, r))?;
    let allowed = if access.user { t.user && (!access.write || t.writable) } else { !access.write || t.writable || !regs.write_protect() };
    if !allowed || (access.fetch && t.no_execute) {
        return Err(fault(true, false));
    }
    Ok(t)
}

/// The PDE that maps region `region` (a linear page number shifted right by
/// [`PagingRegs::table_shift`]) now, as a 64-bit value; none if, with PAE, its PDPTE is
/// not present or not valid.
pub fn pde_of_region(ram: &GuestRam, regs: &PagingRegs, region: u32) -> Option<u64> {
    if !regs.pae() {
        return Some(ram.read_u32((regs.cr3 & 0xFFFF_F000) as u64 + region as u64 * 4) as u64);
    }
    let read = |a: u64| ram.read_u32(a) as u64 | (ram.read_u32(a + 4) as u64) << 32;
    let pdpte = read((regs.cr3 & 0xFFFF_FFE0) as u64 + (region >> 9) as u64 * 8);
    if pdpte & pte::P as u64 == 0 || pdpte & (pae_reserved(regs) | pte::XD) != 0 {
        return None;
    }
    Some(read((pdpte & PAE_ADDR) + (region & 0x1FF) as u64 * 8))
}

/// Entry `index` of the page table at guest-physical page `table`, as a 64-bit value.
pub fn table_entry(ram: &GuestRam, regs: &PagingRegs, table: u64, index: usize) -> u64 {
    let base = table << 12;
    if regs.pae() {
        let a = base + index as u64 * 8;
        ram.read_u32(a) as u64 | (ram.read_u32(a + 4) as u64) << 32
    } else {
        ram.read_u32(base + index as u64 * 4) as u64
    }
}

/// A walk that found no translation: (the entry was present, a reserved bit was set).
type NoTranslation = (bool, bool);

/// 32-bit paging: a page directory of 1024 4-byte entries at CR3.
fn walk_32(ram: &GuestRam, regs: &PagingRegs, linear: u32) -> Result<Translation, NoTranslation> {
    let pde_addr = (regs.cr3 & 0xFFFF_F000) as u64 + ((linear >> 22) as u64) * 4;
    let pde = ram.read_u32(pde_addr);
    if pde & pte::P == 0 {
        return Err((false, false));
    }
    if pde & pte::PS != 0 && regs.pse() {
        // Without PSE-36 (not in this CPU's CPUID) bits 21:13 are reserved.
        if pde & 0x003F_E000 != 0 {
            return Err((true, true));
        }
        return Ok(Translation {
            phys_page: ((pde & 0xFFC0_0000) | (linear & 0x003F_F000)) as u64,
            writable: pde & pte::RW != 0,
            user: pde & pte::US != 0,
            global: pde & pte::G != 0 && regs.pge(),
            g_bit: pde & pte::G != 0,
            large: true,
            no_execute: false,
            dirty: pde & pte::D != 0,
            accessed: pde & pte::A != 0,
            pde_addr,
            leaf_addr: pde_addr,
        });
    }
    let pte_addr = (pde & 0xFFFF_F000) as u64 + (((linear >> 12) & 0x3FF) as u64) * 4;
    let e = ram.read_u32(pte_addr);
    if e & pte::P == 0 {
        return Err((false, false));
    }
    Ok(Translation {
        phys_page: (e & 0xFFFF_F000) as u64,
        writable: pde & e & pte::RW != 0,
        user: pde & e & pte::US != 0,
        global: e & pte::G != 0 && regs.pge(),
        g_bit: e & pte::G != 0,
        large: false,
        no_execute: false,
        dirty: e & pte::D != 0,
        accessed: e & pte::A != 0,
        pde_addr,
        leaf_addr: pte_addr,
    })
}

/// Bits 62:MAXPHYADDR of a PAE entry, and bit 63 unless EFER.NXE makes it XD.
fn pae_reserved(regs: &PagingRegs) -> u64 {
    let high = !((1u64 << MAX_PHYS_ADDR_BITS) - 1);
    if regs.nx() { high & !pte::XD } else { high }
}

/// The physical address bits of a PAE entry (12 to MAXPHYADDR - 1).
const PAE_ADDR: u64 = ((1u64 << MAX_PHYS_ADDR_BITS) - 1) & !0xFFF;

/// PAE paging: CR3 points to 4 PDPTEs, each to a directory of 512 8-byte PDEs (2 MiB
/// pages or page tables of 512 PTEs). The PDPTEs are read at each walk, as QEMU does
/// (hardware loads them at CR3 writes; a guest that edits them must reload CR3 anyway).
fn walk_pae(ram: &GuestRam, regs: &PagingRegs, linear: u32) -> Result<Translation, NoTranslation> {
    let read = |a: u64| ram.read_u32(a) as u64 | (ram.read_u32(a + 4) as u64) << 32;
    let reserved = pae_reserved(regs);
    let pdpte = read((regs.cr3 & 0xFFFF_FFE0) as u64 + ((linear >> 30) as u64) * 8);
    if pdpte & pte::P as u64 == 0 {
        return Err((false, false));
    }
    // A PDPTE has no R/W, U/S or XD: bit 63 is reserved even with NXE.
    if pdpte & (reserved | pte::XD) != 0 {
        return Err((true, true));
    }
    let pde_addr = (pdpte & PAE_ADDR) + (((linear >> 21) & 0x1FF) as u64) * 8;
    let pde = read(pde_addr);
    if pde & pte::P as u64 == 0 {
        return Err((false, false));
    }
    let low = |e: u64, bit: u32| e as u32 & bit != 0;
    if low(pde, pte::PS) {
        // Bits 20:13 of a 2 MiB PDE are reserved (bit 12 is PAT).
        if pde & (reserved | 0x001F_E000) != 0 {
            return Err((true, true));
        }
        return Ok(Translation {
            phys_page: (pde & PAE_ADDR & !0x1F_FFFF) | (linear & 0x001F_F000) as u64,
            writable: low(pde, pte::RW),
            user: low(pde, pte::US),
            global: low(pde, pte::G) && regs.pge(),
            g_bit: low(pde, pte::G),
            large: true,
            no_execute: regs.nx() && pde & pte::XD != 0,
            dirty: low(pde, pte::D),
            accessed: low(pde, pte::A),
            pde_addr,
            leaf_addr: pde_addr,
        });
    }
    if pde & reserved != 0 {
        return Err((true, true));
    }
    let pte_addr = (pde & PAE_ADDR) + (((linear >> 12) & 0x1FF) as u64) * 8;
    let e = read(pte_addr);
    if e & pte::P as u64 == 0 {
        return Err((false, false));
    }
    if e & reserved != 0 {
        return Err((true, true));
    }
    Ok(Translation {
        phys_page: e & PAE_ADDR,
        writable: low(pde, pte::RW) && low(e, pte::RW),
        user: low(pde, pte::US) && low(e, pte::US),
        global: low(e, pte::G) && regs.pge(),
        g_bit: low(e, pte::G),
        large: false,
        no_execute: regs.nx() && (pde | e) & pte::XD != 0,
        dirty: low(e, pte::D),
        accessed: low(e, pte::A),
        pde_addr,
        leaf_addr: pte_addr,
    })
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
    const REGS: PagingRegs = PagingRegs { cr0: 0x8001_0001, cr3: PD as u32, cr4: 0x10, efer: 0 };

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
        assert_eq!(walk(&ram, &REGS, 0x0040_3000, Access::data(false, true)).unwrap_err().error_code, 0b101);
        // Not-present PTE, user write: W | U.
        assert_eq!(walk(&ram, &REGS, 0x0040_4000, Access::data(true, true)).unwrap_err().error_code, 0b110);
        // Not-present PDE, supervisor read: 0.
        assert_eq!(walk(&ram, &REGS, 0x0080_0000, Access::SUPERVISOR_READ).unwrap_err().error_code, 0);
    }

    #[test]
    fn four_mib_page_reserved_bits_and_marking() {
        let mut ram = ram_with(&[(PD + 8, 0x0080_0000 | pte::PS | pte::P | pte::RW | pte::US | pte::G)]);
        let t = walk(&ram, &REGS, 0x0085_6789, Access::data(true, true)).unwrap();
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

    /// Writes a 64-bit PAE entry.
    fn put64(ram: &mut GuestRam, a: u64, v: u64) {
        ram.write_u32(a, v as u32);
        ram.write_u32(a + 4, (v >> 32) as u32);
    }

    #[test]
    fn pae_pages_nx_and_reserved_bits() {
        const PDPT: u64 = 0x3000;
        const PD2: u64 = 0x4000;
        const PT2: u64 = 0x5000;
        let mut ram = GuestRam::new(4 << 20).unwrap();
        let regs = PagingRegs { cr0: 0x8001_0001, cr3: PDPT as u32, cr4: 1 << 5, efer: 0 };
        let nxe = PagingRegs { efer: 1 << 11, ..regs };
        // linear 0xC0201000: PDPT[3] -> PD2[1] -> PT2[1] = frame 0x9000, XD.
        put64(&mut ram, PDPT + 24, PD2 | 1);
        put64(&mut ram, PD2 + 8, PT2 | 0x7);
        put64(&mut ram, PT2 + 8, 0x9000 | 0x7 | pte::XD);
        // linear 0xC0000000: PD2[0] = 2 MiB page at 0x200000.
        put64(&mut ram, PD2, 0x20_0000 | pte::PS as u64 | 0x3);
        let t = walk(&ram, &nxe, 0xC020_1234, Access::SUPERVISOR_READ).unwrap();
        assert_eq!(t.phys_page, 0x9000);
        assert!(t.no_execute && t.user && t.writable && !t.large);
        assert_eq!(walk(&ram, &nxe, 0xC020_1234, Access::fetch(false)).unwrap_err().error_code, pf::P | pf::ID);
        // Without NXE, bit 63 is reserved; a fetch fault has no I/D bit.
        assert_eq!(walk(&ram, &regs, 0xC020_1234, Access::fetch(false)).unwrap_err().error_code, pf::RSVD | pf::P);
        let big = walk(&ram, &regs, 0xC01F_F000, Access::SUPERVISOR_WRITE).unwrap();
        assert_eq!(big.phys_page, 0x3F_F000);
        assert!(big.large && !big.user);
        // Not-present PDPTE, PDE; a not-present fetch with NXE reports I/D.
        assert_eq!(walk(&ram, &nxe, 0x0000_1000, Access::fetch(false)).unwrap_err().error_code, pf::ID);
        assert_eq!(walk(&ram, &regs, 0xC040_0000, Access::SUPERVISOR_WRITE).unwrap_err().error_code, pf::W);
        // Bit 40 (above MAXPHYADDR) in a PTE, bit 13 in a 2 MiB PDE: reserved.
        put64(&mut ram, PT2 + 8, 0x9000 | 0x7 | 1 << 40);
        assert_eq!(walk(&ram, &nxe, 0xC020_1000, Access::SUPERVISOR_READ).unwrap_err().error_code, pf::RSVD | pf::P);
        put64(&mut ram, PD2, 0x20_2000 | pte::PS as u64 | 0x3);
        assert_eq!(walk(&ram, &nxe, 0xC000_0000, Access::SUPERVISOR_READ).unwrap_err().error_code, pf::RSVD | pf::P);
        // XD in a PDPTE is reserved even with NXE.
        put64(&mut ram, PDPT + 24, PD2 | 1 | pte::XD);
        assert_eq!(walk(&ram, &nxe, 0xC000_0000, Access::SUPERVISOR_READ).unwrap_err().error_code, pf::RSVD | pf::P);
    }
}
