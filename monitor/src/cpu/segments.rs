//! Segment descriptors and segment-register loads with the architectural checks.
//!
//! Protected-mode loads read the descriptor from the GDT or LDT through guest memory,
//! check type, privilege and presence in the order the SDM gives, raise #GP/#NP/#SS/#TS
//! with the selector as error code, set the accessed bit, and fill the register's cache.
//! Data accesses through a loaded segment are not limit-checked (QEMU's TCG does not
//! check them either, and guests do not rely on it).

use bt86_translator::Seg;

use super::{Cpu, Exception, Vector};

/// A segment register's visible selector and hidden descriptor cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentCache {
    /// Selector.
    pub selector: u16,
    /// Base address.
    pub base: u32,
    /// Limit in bytes (granularity applied).
    pub limit: u32,
    /// Access byte: P, DPL, S, type.
    pub access: u8,
    /// Flags nibble: G (bit 3), D/B (bit 2), L (bit 1), AVL (bit 0).
    pub flags: u8,
}

/// Access-byte bits.
pub mod acc {
    /// Present.
    pub const P: u8 = 0x80;
    /// Code/data (not system).
    pub const S: u8 = 0x10;
    /// Code (with S).
    pub const CODE: u8 = 0x08;
    /// Conforming (code) / expand-down (data).
    pub const CONFORMING: u8 = 0x04;
    /// Readable (code) / writable (data).
    pub const RW: u8 = 0x02;
    /// Accessed.
    pub const ACCESSED: u8 = 0x01;
}

impl SegmentCache {
    /// Decodes an 8-byte descriptor loaded with `selector`.
    pub fn from_descriptor(selector: u16, d: u64) -> SegmentCache {
        let lo = d as u32;
        let hi = (d >> 32) as u32;
        let base = (lo >> 16) | ((hi & 0xFF) << 16) | (hi & 0xFF00_0000);
        let raw_limit = (lo & 0xFFFF) | (hi & 0x000F_0000);
        let flags = ((hi >> 20) & 0xF) as u8;
        let limit = if flags & 0x8 != 0 { (raw_limit << 12) | 0xFFF } else { raw_limit };
        SegmentCache { selector, base, limit, access: (hi >> 8) as u8, flags }
    }

    /// A null selector's cache (unusable).
    pub fn null() -> SegmentCache {
        SegmentCache::default()
    }

    /// A flat 32-bit code segment (base 0, limit 4 GiB, execute/read, DPL 0).
    pub fn flat_code(selector: u16) -> SegmentCache {
        SegmentCache { selector, base: 0, limit: 0xFFFF_FFFF, access: 0x9B, flags: 0xC }
    }

    /// A flat 32-bit data segment (read/write, DPL 0).
    pub fn flat_data(selector: u16) -> SegmentCache {
        SegmentCache { selector, base: 0, limit: 0xFFFF_FFFF, access: 0x93, flags: 0xC }
    }

    /// The TR a CPU has before any `ltr`: a busy 32-bit TSS at 0.
    pub fn tss_default() -> SegmentCache {
        SegmentCache { selector: 0, base: 0, limit: 0xFFFF, access: 0x8B, flags: 0 }
    }

    /// D/B bit: 32-bit code / 32-bit stack.
    pub fn default_big(&self) -> bool {
        self.flags & 0x4 != 0
    }

    /// Descriptor privilege level.
    pub fn dpl(&self) -> u8 {
        (self.access >> 5) & 3
    }

    /// Present bit.
    pub fn present(&self) -> bool {
        self.access & acc::P != 0
    }

    /// A code or data segment (not a system descriptor).
    pub fn is_code_or_data(&self) -> bool {
        self.access & acc::S != 0
    }

    /// A code segment.
    pub fn is_code(&self) -> bool {
        self.is_code_or_data() && self.access & acc::CODE != 0
    }

    /// A conforming code segment.
    pub fn is_conforming(&self) -> bool {
        self.is_code() && self.access & acc::CONFORMING != 0
    }

    /// Readable (code) or always readable (data).
    pub fn readable(&self) -> bool {
        !self.is_code() || self.access & acc::RW != 0
    }

    /// A writable data segment.
    pub fn writable_data(&self) -> bool {
        self.is_code_or_data() && !self.is_code() && self.access & acc::RW != 0
    }

    /// System descriptor type (low 4 bits of the access byte) when S = 0.
    pub fn system_type(&self) -> u8 {
        self.access & 0xF
    }

    /// The descriptor's bytes 5-6 as `lar` reports them (bits 8..23 of the high dword,
    /// with the limit bits masked out).
    pub fn lar_bits(&self) -> u32 {
        ((self.access as u32) << 8) | ((self.flags as u32) << 20)
    }
}

/// Reads guest linear memory with supervisor privilege (descriptor tables, TSS, IDT).
pub trait SystemMemory {
    /// Reads `buf.len()` bytes at linear `addr`.
    fn read_sys(&mut self, addr: u32, buf: &mut [u8]) -> Result<(), Exception>;
    /// Writes `data` at linear `addr`.
    fn write_sys(&mut self, addr: u32, data: &[u8]) -> Result<(), Exception>;

    /// Reads a u64.
    fn read_sys_u64(&mut self, addr: u32) -> Result<u64, Exception> {
        let mut b = [0u8; 8];
        self.read_sys(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    /// Reads a u32.
    fn read_sys_u32(&mut self, addr: u32) -> Result<u32, Exception> {
        let mut b = [0u8; 4];
        self.read_sys(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    /// Reads a u16.
    fn read_sys_u16(&mut self, addr: u32) -> Result<u16, Exception> {
        let mut b = [0u8; 2];
        self.read_sys(addr, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }
}

/// Where a selector's descriptor lives.
pub struct DescriptorRef {
    /// Linear address of the 8-byte descriptor.
    pub addr: u32,
    /// The raw descriptor.
    pub raw: u64,
}

impl Cpu {
    /// Reads the descriptor for `selector` from the GDT or LDT. `Ok(None)` if the selector
    /// is beyond the table's limit (or the LDT is unusable); the caller decides which
    /// exception that is.
    pub fn read_descriptor(&self, mem: &mut dyn SystemMemory, selector: u16) -> Result<Option<DescriptorRef>, Exception> {
        let index = (selector & !7) as u32;
        let (base, limit) = if selector & 4 != 0 {
            if self.ldtr.selector & !3 == 0 || !self.ldtr.present() {
                return Ok(None);
            }
            (self.ldtr.base, self.ldtr.limit)
        } else {
            (self.gdtr.base, self.gdtr.limit as u32)
        };
        if index + 7 > limit {
            return Ok(None);
        }
        let addr = base.wrapping_add(index);
        Ok(Some(DescriptorRef { addr, raw: mem.read_sys_u64(addr)? }))
    }

    /// Sets the accessed bit of a code/data descriptor in memory if it is clear.
    fn mark_accessed(mem: &mut dyn SystemMemory, d: &DescriptorRef) -> Result<(), Exception> {
        let access = (d.raw >> 40) as u8;
        if access & acc::ACCESSED == 0 {
            mem.write_sys(d.addr + 5, &[access | acc::ACCESSED])?;
        }
        Ok(())
    }

    /// `mov sreg`, `pop sreg`, `lds`..`lgs` for DS, ES, FS, GS (protected mode). For FS
    /// and GS, a load of another selector keeps the state it replaces beside the new one
    /// (`Cpu::seg_alt`, `Context::sreg_alt_sel`): translated code may switch back to it.
    pub fn load_data_segment(&mut self, mem: &mut dyn SystemMemory, s: Seg, selector: u16) -> Result<(), Exception> {
        let i = s as usize;
        let (old, c) = (self.seg[i], &self.ctx);
        let old_record = (c.sreg_reload[i], c.sreg_desc_addr[i], c.sreg_desc[i]);
        self.load_data_segment_unkept(mem, s, selector)?;
        if matches!(s, Seg::Fs | Seg::Gs) && old.selector != selector {
            self.seg_alt[i] = old;
            let c = &mut self.ctx;
            c.sreg_alt_sel[i] = u32::from(old.selector);
            c.sreg_alt_base[i] = old.base;
            (c.sreg_alt_reload[i], c.sreg_alt_desc_addr[i], c.sreg_alt_desc[i]) = old_record;
        }
        Ok(())
    }

    fn load_data_segment_unkept(&mut self, mem: &mut dyn SystemMemory, s: Seg, selector: u16) -> Result<(), Exception> {
        if !self.protected() {
            self.set_segment(s, real_mode_segment(selector, self.seg[s as usize]));
            return Ok(());
        }
        if selector & !3 == 0 {
            self.set_segment(s, SegmentCache { selector, ..SegmentCache::null() });
            // Loading the same null selector again at CPL 0 changes nothing.
            self.ctx.sreg_reload[s as usize] = bt86_translator::SREG_RELOAD_NULL;
            return Ok(());
        }
        let gp = Exception::new(Vector::GP, selector as u32 & 0xFFFC);
        let d = self.read_descriptor(mem, selector)?.ok_or(gp)?;
        let c = SegmentCache::from_descriptor(selector, d.raw);
        let reloadable = self.load_data_checked(mem, s, selector, &d, c)?;
        if reloadable {
            // Loading the same selector again at CPL 0 while the descriptor reads the same
            // changes nothing (see the translator's emit/sreg.rs).
            let i = s as usize;
            self.ctx.sreg_reload[i] = bt86_translator::SREG_RELOAD_DESCRIPTOR;
            self.ctx.sreg_desc_addr[i] = d.addr;
            self.ctx.sreg_desc[i] = d.raw | (u64::from(acc::ACCESSED) << 40);
        }
        Ok(())
    }

    /// The checks and the load of `load_data_segment` for a non-null selector; true if
    /// translated code may repeat the load inline (the descriptor is in one piece in
    /// memory, not wrapping around 4 GiB).
    fn load_data_checked(
        &mut self,
        mem: &mut dyn SystemMemory,
        s: Seg,
        selector: u16,
        d: &DescriptorRef,
        c: SegmentCache,
    ) -> Result<bool, Exception> {
        let gp = Exception::new(Vector::GP, selector as u32 & 0xFFFC);
        if !c.is_code_or_data() || !c.readable() {
            return Err(gp);
        }
        let rpl = (selector & 3) as u8;
        if !c.is_conforming() && (rpl > c.dpl() || self.cpl > c.dpl()) {
            return Err(gp);
        }
        if !c.present() {
            return Err(Exception::new(Vector::NP, selector as u32 & 0xFFFC));
        }
        Self::mark_accessed(mem, d)?;
        self.set_segment(s, SegmentCache { access: c.access | acc::ACCESSED, ..c });
        Ok(d.addr.checked_add(7).is_some())
    }

    /// `mov ss`, `pop ss`, `lss` (protected mode).
    pub fn load_stack_segment(&mut self, mem: &mut dyn SystemMemory, selector: u16) -> Result<(), Exception> {
        if !self.protected() {
            self.set_segment(Seg::Ss, real_mode_segment(selector, self.seg[Seg::Ss as usize]));
            return Ok(());
        }
        let gp = Exception::new(Vector::GP, selector as u32 & 0xFFFC);
        if selector & !3 == 0 {
            return Err(Exception::new(Vector::GP, 0));
        }
        let d = self.read_descriptor(mem, selector)?.ok_or(gp)?;
        let c = SegmentCache::from_descriptor(selector, d.raw);
        if (selector & 3) as u8 != self.cpl || !c.writable_data() || c.dpl() != self.cpl {
            return Err(gp);
        }
        if !c.present() {
            return Err(Exception::new(Vector::SS, selector as u32 & 0xFFFC));
        }
        Self::mark_accessed(mem, &d)?;
        self.set_segment(Seg::Ss, SegmentCache { access: c.access | acc::ACCESSED, ..c });
        Ok(())
    }

    /// Checks a code segment for a far `jmp`/`call`/`ret`/`iret` to privilege `new_cpl`
    /// (CS.RPL for returns, CPL for jumps and calls) and returns its cache with RPL set.
    /// `is_return`: returns may go to an outer (numerically higher) privilege level.
    pub fn check_code_segment(
        &self,
        mem: &mut dyn SystemMemory,
        selector: u16,
        is_return: bool,
    ) -> Result<(SegmentCache, DescriptorRef), Exception> {
        let gp = Exception::new(Vector::GP, selector as u32 & 0xFFFC);
        if selector & !3 == 0 {
            return Err(Exception::new(Vector::GP, 0));
        }
        let d = self.read_descriptor(mem, selector)?.ok_or(gp)?;
        let c = SegmentCache::from_descriptor(selector, d.raw);
        if !c.is_code() {
            return Err(gp);
        }
        let rpl = (selector & 3) as u8;
        if is_return {
            if rpl < self.cpl || (c.is_conforming() && c.dpl() > rpl) || (!c.is_conforming() && c.dpl() != rpl) {
                return Err(gp);
            }
        } else if c.is_conforming() {
            if c.dpl() > self.cpl {
                return Err(gp);
            }
        } else if rpl > self.cpl || c.dpl() != self.cpl {
            return Err(gp);
        }
        if !c.present() {
            return Err(Exception::new(Vector::NP, selector as u32 & 0xFFFC));
        }
        Ok((c, d))
    }

    /// Loads CS after the checks of [`Cpu::check_code_segment`], with RPL = `cpl`.
    pub fn commit_code_segment(
        &mut self,
        mem: &mut dyn SystemMemory,
        c: SegmentCache,
        d: &DescriptorRef,
        cpl: u8,
    ) -> Result<(), Exception> {
        Self::mark_accessed(mem, d)?;
        let sel = (c.selector & !3) | cpl as u16;
        self.cpl = cpl;
        self.set_segment(Seg::Cs, SegmentCache { selector: sel, access: c.access | acc::ACCESSED, ..c });
        Ok(())
    }

    /// After a privilege change to an outer level: data segment registers whose DPL is
    /// below the new CPL (and that are not conforming code) become null.
    pub fn null_inaccessible_segments(&mut self) {
        for s in [Seg::Es, Seg::Ds, Seg::Fs, Seg::Gs] {
            let c = self.seg[s as usize];
            let data_or_nc = !c.is_code() || !c.is_conforming();
            if c.selector & !3 != 0 && data_or_nc && c.dpl() < self.cpl {
                self.set_segment(s, SegmentCache::null());
            }
        }
    }
}

/// A real-mode segment load: base = selector * 16, limit and attributes unchanged.
pub fn real_mode_segment(selector: u16, old: SegmentCache) -> SegmentCache {
    SegmentCache { selector, base: (selector as u32) << 4, ..old }
}
