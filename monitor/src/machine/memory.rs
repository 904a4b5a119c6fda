//! Guest memory as the monitor's CPU emulation sees it: linear addresses through the
//! shadow MMU ([`Mmu`]), with page faults turned into guest exceptions.
//!
//! Data accesses take the privilege of the current CPL ([`Memory::user`], kept in step by
//! the run loop); descriptor-table and TSS accesses ([`SystemMemory`]) are implicit
//! supervisor accesses. Stores the monitor makes to pages that hold translated code are
//! queued in the MMU's `dirty_code` for the run loop to invalidate.

use bt86_shadow_mmu::{Access, Mmu, PageFault};

use crate::cpu::emulate::{CpuMemory, DataAccess};
use crate::cpu::segments::SystemMemory;
use crate::cpu::{Exception, Vector};

/// A change of the guest's translations the translator must hear about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlbFlush {
    /// Everything (paging-mode change).
    All,
    /// Non-global translations (CR3 write).
    NonGlobal,
    /// One linear page (`invlpg`; page number).
    Page(u32),
    /// The linear pages of a large page (`invlpg` in it): first page number, count.
    Pages(u32, u32),
}

/// Guest memory.
pub struct Memory {
    /// The shadow MMU, which owns RAM and the windows.
    pub mmu: Mmu,
    /// Data accesses are user-mode accesses (CPL 3).
    pub user: bool,
    /// Flushes since the run loop last passed them on to the translator.
    pub tlb_flushes: Vec<TlbFlush>,
}

impl From<PageFault> for Exception {
    fn from(pf: PageFault) -> Exception {
        Exception { vector: Vector::PF, error_code: Some(pf.error_code), cr2: Some(pf.linear) }
    }
}

impl Memory {
    /// Guest memory over an MMU, supervisor accesses.
    pub fn new(mmu: Mmu) -> Memory {
        Memory { mmu, user: false, tlb_flushes: Vec::new() }
    }

    /// CR0, CR3, CR4 or EFER changed (`cr3_written`: CR3 was loaded, even with the same
    /// value).
    pub fn paging_changed(&mut self, regs: bt86_shadow_mmu::PagingRegs, cr3_written: bool) {
        match self.mmu.set_regs(regs, cr3_written) {
            Some(true) => self.tlb_flushes.push(TlbFlush::All),
            Some(false) => self.tlb_flushes.push(TlbFlush::NonGlobal),
            None => {}
        }
    }

    /// `invlpg`.
    pub fn invlpg(&mut self, linear: u32) {
        if self.mmu.regs().paging() {
            let flush = match self.mmu.invlpg(linear) {
                Some((first, n)) => TlbFlush::Pages(first, n),
                None => TlbFlush::Page(linear >> 12),
            };
            self.tlb_flushes.push(flush);
        }
    }

    /// Reads guest linear memory (a data access at the current privilege).
    pub fn read(&mut self, addr: u32, buf: &mut [u8]) -> Result<(), Exception> {
        let user = self.user;
        Ok(self.mmu.read(addr, buf, user)?)
    }

    /// Writes guest linear memory (a data access at the current privilege).
    pub fn write(&mut self, addr: u32, data: &[u8]) -> Result<(), Exception> {
        let user = self.user;
        Ok(self.mmu.write(addr, data, user)?)
    }

    /// Reads a little-endian value of 1, 2 or 4 bytes.
    pub fn read_uint(&mut self, addr: u32, size: u8) -> Result<u32, Exception> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b[..size as usize])?;
        Ok(u32::from_le_bytes(b))
    }

    /// Writes a little-endian value of 1, 2 or 4 bytes.
    pub fn write_uint(&mut self, addr: u32, size: u8, v: u32) -> Result<(), Exception> {
        self.write(addr, &v.to_le_bytes()[..size as usize])
    }

    /// Reads with supervisor privilege whatever the CPL (for dumps and tracing), without
    /// faulting into the guest.
    pub fn peek(&mut self, addr: u32, buf: &mut [u8]) -> bool {
        self.mmu.read(addr, buf, false).is_ok()
    }

    /// Translates a linear address for an instruction fetch (at CPL 3 if `user`).
    pub fn translate_fetch(&mut self, addr: u32, user: bool) -> Result<u64, PageFault> {
        self.mmu.translate(addr, Access::fetch(user))
    }
}

impl SystemMemory for Memory {
    fn read_sys(&mut self, addr: u32, buf: &mut [u8]) -> Result<(), Exception> {
        Ok(self.mmu.read(addr, buf, false)?)
    }

    fn write_sys(&mut self, addr: u32, data: &[u8]) -> Result<(), Exception> {
        Ok(self.mmu.write(addr, data, false)?)
    }
}

impl DataAccess for Memory {
    fn load(&mut self, linear: u32, size: u8) -> Result<u32, Exception> {
        self.read_uint(linear, size)
    }

    fn store(&mut self, linear: u32, size: u8, v: u32) -> Result<(), Exception> {
        self.write_uint(linear, size, v)
    }
}

impl CpuMemory for Memory {
    fn invlpg(&mut self, linear: u32) {
        Memory::invlpg(self, linear)
    }

    fn paging_changed(&mut self, regs: bt86_shadow_mmu::PagingRegs, cr3_written: bool) {
        Memory::paging_changed(self, regs, cr3_written)
    }
}
