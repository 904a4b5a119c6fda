//! Guest memory as the monitor sees it: the RAM, the window, and the bookkeeping that
//! keeps translated code coherent with writes to it.
//!
//! Paging is off for now, so guest linear addresses are physical addresses. Pages that
//! hold translated code are write-protected in the window: a guest store to one faults,
//! and the run loop invalidates that page's fragments. Stores the monitor makes itself
//! (exception frames, `ins`, emulated instructions) do not go through the window, so
//! they are checked here and the written code pages are queued in `dirty_code`.

use std::collections::HashSet;

use bt86_shadow_mmu::{GuestRam, Prot, Window, WindowError};

use crate::cpu::Exception;
use crate::cpu::segments::SystemMemory;

/// Guest memory.
pub struct Memory {
    /// Guest RAM.
    pub ram: GuestRam,
    /// The window (shadow page table).
    pub window: Window,
    /// Guest-physical page numbers that hold translated code and are write-protected.
    code_pages: HashSet<u64>,
    /// Code pages the monitor wrote since the run loop last collected them.
    pub dirty_code: Vec<u64>,
    /// Pages write-protected so far.
    pub pages_protected: u64,
    /// Unbacked physical pages currently mapped to a private scratch copy (absorbing a
    /// store); they go back to the shared all-ones page once the store has executed.
    scratch: Vec<u64>,
}

impl Memory {
    /// Guest memory over `ram`, identity-mapped in `window` (paging off).
    pub fn new(ram: GuestRam, mut window: Window) -> Result<Memory, WindowError> {
        window.map_identity(&ram)?;
        Ok(Memory { ram, window, code_pages: HashSet::new(), dirty_code: Vec::new(), pages_protected: 0, scratch: Vec::new() })
    }

    /// Guest-physical address of linear `addr` (paging off: the same).
    pub fn translate(&self, addr: u32) -> u64 {
        addr as u64
    }

    /// Reads guest linear memory.
    pub fn read(&self, addr: u32, buf: &mut [u8]) -> Result<(), Exception> {
        // Byte by byte where the access wraps around 4 GiB.
        if (addr as u64) + buf.len() as u64 > 1 << 32 {
            for (i, b) in buf.iter_mut().enumerate() {
                let mut one = [0u8];
                self.ram.read(self.translate(addr.wrapping_add(i as u32)), &mut one);
                *b = one[0];
            }
            return Ok(());
        }
        self.ram.read(self.translate(addr), buf);
        Ok(())
    }

    /// Writes guest linear memory, noting code pages it hits.
    pub fn write(&mut self, addr: u32, data: &[u8]) -> Result<(), Exception> {
        for (i, b) in data.iter().enumerate() {
            let phys = self.translate(addr.wrapping_add(i as u32));
            if self.code_pages.contains(&(phys >> 12)) && !self.dirty_code.contains(&(phys >> 12)) {
                self.dirty_code.push(phys >> 12);
            }
            self.ram.write(phys, std::slice::from_ref(b));
        }
        Ok(())
    }

    /// Reads a little-endian value of 1, 2 or 4 bytes.
    pub fn read_uint(&self, addr: u32, size: u8) -> Result<u32, Exception> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b[..size as usize])?;
        Ok(u32::from_le_bytes(b))
    }

    /// Writes a little-endian value of 1, 2 or 4 bytes.
    pub fn write_uint(&mut self, addr: u32, size: u8, v: u32) -> Result<(), Exception> {
        self.write(addr, &v.to_le_bytes()[..size as usize])
    }

    /// Write-protects guest-physical page `page` in the window because translated code
    /// came from it.
    pub fn protect_code_page(&mut self, page: u64) {
        if page >= self.ram.size() >> 12 || !self.code_pages.insert(page) {
            return;
        }
        // Paging off: the page's only window mapping is at the same linear address.
        if let Err(e) = self.window.protect((page << 12) as u32, 1, Prot::ReadExec) {
            log::error!("cannot write-protect code page {page:#x}: {e}");
        }
        self.pages_protected += 1;
    }

    /// Makes a code page writable again after its fragments were invalidated.
    pub fn unprotect_code_page(&mut self, page: u64) {
        if !self.code_pages.remove(&page) {
            return;
        }
        if let Err(e) = self.window.protect((page << 12) as u32, 1, Prot::ReadWriteExec) {
            log::error!("cannot unprotect code page {page:#x}: {e}");
        }
    }

    /// True if guest-physical page `page` has no RAM behind it (device or unassigned
    /// space: reads see all ones, writes vanish, as on a PC).
    pub fn is_unbacked(&self, page: u64) -> bool {
        page >= self.ram.size() >> 12
    }

    /// Maps unbacked page `page` (paging off: at the same linear address) for a guest
    /// access: the shared all-ones page for reads, a scratch copy for a store.
    pub fn map_unbacked(&mut self, page: u64, write: bool) -> Result<(), WindowError> {
        let linear = (page << 12) as u32;
        if write {
            self.window.map_scratch(&self.ram, linear)?;
            if !self.scratch.contains(&page) {
                self.scratch.push(page);
            }
            Ok(())
        } else {
            self.window.map(&self.ram, linear, page << 12, 1, Prot::ReadExec)
        }
    }

    /// Drops what stores to unbacked memory left in scratch pages.
    pub fn drop_scratch(&mut self) {
        for page in std::mem::take(&mut self.scratch) {
            if let Err(e) = self.window.map(&self.ram, (page << 12) as u32, page << 12, 1, Prot::ReadExec) {
                log::error!("cannot restore unbacked page {page:#x}: {e}");
            }
        }
    }

    /// True while a scratch page is mapped.
    pub fn has_scratch(&self) -> bool {
        !self.scratch.is_empty()
    }

    /// True if `page` is write-protected for holding code.
    pub fn is_code_page(&self, page: u64) -> bool {
        self.code_pages.contains(&page)
    }
}

impl SystemMemory for Memory {
    fn read_sys(&mut self, addr: u32, buf: &mut [u8]) -> Result<(), Exception> {
        self.read(addr, buf)
    }

    fn write_sys(&mut self, addr: u32, data: &[u8]) -> Result<(), Exception> {
        self.write(addr, data)
    }
}
