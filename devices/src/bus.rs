//! Port-I/O and MMIO buses: address ranges mapped to devices.
//!
//! A bus does not own devices. It maps each range to a small `Copy` identifier `D`
//! chosen by the board (the [`crate::Platform`] uses an enum), and a read or write
//! calls back with `(device, offset within its range, size)`. That keeps every device a
//! plain struct the board can also reach directly (to wire interrupts), with no
//! `Rc<RefCell<..>>` anywhere.
//!
//! Access sizes are 1, 2 and 4 bytes. How an access is dispatched follows QEMU's memory
//! core, because guest tests compare bt86 against QEMU:
//! - An access that lies inside one range and is no wider than the range's
//!   `max_access` reaches the device as one access.
//! - Any other access is split into byte accesses, little-endian: byte `i` goes to
//!   address `addr + i`, whichever range (if any) holds it. So `inw` from the master PIC
//!   at 0x20 returns IRR in the low byte and IMR (port 0x21) in the high byte.
//! - A byte no range claims reads as 0xFF (so an unclaimed `inl` is 0xFFFF_FFFF) and a
//!   write to it is dropped, logged at debug level.

use std::fmt;

/// Why a range could not be added to a bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusError {
    /// The new range overlaps the range that starts at `existing_base`.
    Overlap {
        /// First address of the new range.
        base: u64,
        /// First address of the range already on the bus that it overlaps.
        existing_base: u64,
    },
    /// The range has length zero or runs past the end of the address space.
    BadRange {
        /// First address of the rejected range.
        base: u64,
        /// Its length.
        len: u64,
    },
    /// `max_access` was not 1, 2 or 4.
    BadMaxAccess(u8),
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusError::Overlap { base, existing_base } => {
                write!(f, "range at {base:#x} overlaps the range already registered at {existing_base:#x}")
            }
            BusError::BadRange { base, len } => write!(f, "range at {base:#x} of length {len:#x} is empty or leaves the address space"),
            BusError::BadMaxAccess(size) => {
                write!(f, "maximum access size {size} is not 1, 2 or 4")
            }
        }
    }
}

impl std::error::Error for BusError {}

/// True for the access sizes a bus accepts (1, 2, 4).
pub fn is_valid_size(size: u8) -> bool {
    matches!(size, 1 | 2 | 4)
}

/// All-ones of an access size: what a read of nothing returns (0xFF, 0xFFFF, 0xFFFF_FFFF).
pub fn all_ones(size: u8) -> u32 {
    match size {
        1 => 0xFF,
        2 => 0xFFFF,
        _ => 0xFFFF_FFFF,
    }
}

#[derive(Debug, Clone, Copy)]
struct Range<D> {
    base: u64,
    len: u64,
    max_access: u8,
    device: D,
}

impl<D> Range<D> {
    fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr - self.base < self.len
    }
}

/// The address-width-independent part of both buses. `limit` is the size of the
/// address space (0x1_0000 for ports).
#[derive(Debug, Clone)]
struct RangeMap<D> {
    /// Sorted by `base`, never overlapping.
    ranges: Vec<Range<D>>,
    limit: u128,
    name: &'static str,
}

impl<D: Copy> RangeMap<D> {
    fn new(limit: u128, name: &'static str) -> Self {
        RangeMap { ranges: Vec::new(), limit, name }
    }

    fn insert(&mut self, base: u64, len: u64, max_access: u8, device: D) -> Result<(), BusError> {
        if !is_valid_size(max_access) {
            return Err(BusError::BadMaxAccess(max_access));
        }
        if len == 0 || u128::from(base) + u128::from(len) > self.limit {
            return Err(BusError::BadRange { base, len });
        }
        let at = self.ranges.partition_point(|r| r.base < base);
        let overlapping = [at.checked_sub(1), Some(at)]
            .into_iter()
            .flatten()
            .filter_map(|i| self.ranges.get(i))
            .find(|r| r.base < base + len && base < r.base + r.len);
        if let Some(existing) = overlapping {
            return Err(BusError::Overlap { base, existing_base: existing.base });
        }
        self.ranges.insert(at, Range { base, len, max_access, device });
        Ok(())
    }

    fn find(&self, addr: u64) -> Option<&Range<D>> {
        let at = self.ranges.partition_point(|r| r.base <= addr);
        let range = self.ranges.get(at.checked_sub(1)?)?;
        range.contains(addr).then_some(range)
    }

    /// The range that takes this access whole, if one does.
    fn whole(&self, addr: u64, size: u8) -> Option<&Range<D>> {
        let range = self.find(addr)?;
        let fits = addr - range.base + u64::from(size) <= range.len;
        (fits && size <= range.max_access).then_some(range)
    }

    fn read(&self, addr: u64, size: u8, dev_read: &mut dyn FnMut(D, u64, u8) -> u32) -> u32 {
        if !is_valid_size(size) {
            log::warn!("{} read of invalid size {size} at {addr:#x}", self.name);
            return u32::MAX;
        }
        if let Some(range) = self.whole(addr, size) {
            return dev_read(range.device, addr - range.base, size) & all_ones(size);
        }
        let mut value = 0;
        for i in 0..u64::from(size) {
            let byte_addr = addr.checked_add(i).filter(|&a| u128::from(a) < self.limit);
            let byte = match byte_addr.and_then(|a| self.find(a).map(|r| (a, r))) {
                Some((a, range)) => dev_read(range.device, a - range.base, 1) & 0xFF,
                None => {
                    log::debug!("{} read from unclaimed {:#x}", self.name, addr + i);
                    0xFF
                }
            };
            value |= byte << (8 * i);
        }
        value
    }

    fn write(&self, addr: u64, size: u8, value: u32, dev_write: &mut dyn FnMut(D, u64, u8, u32)) {
        if !is_valid_size(size) {
            log::warn!("{} write of invalid size {size} at {addr:#x}", self.name);
            return;
        }
        let value = value & all_ones(size);
        if let Some(range) = self.whole(addr, size) {
            dev_write(range.device, addr - range.base, size, value);
            return;
        }
        for i in 0..u64::from(size) {
            let byte = (value >> (8 * i)) & 0xFF;
            let byte_addr = addr.checked_add(i).filter(|&a| u128::from(a) < self.limit);
            match byte_addr.and_then(|a| self.find(a).map(|r| (a, r))) {
                Some((a, range)) => dev_write(range.device, a - range.base, 1, byte),
                None => log::debug!("{} write of {byte:#04x} to unclaimed {:#x} ignored", self.name, addr + i),
            }
        }
    }
}

/// The port-I/O bus: 64 Ki ports, each range mapped to a device identifier `D`.
#[derive(Debug, Clone)]
pub struct PioBus<D> {
    map: RangeMap<D>,
}

impl<D: Copy> Default for PioBus<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: Copy> PioBus<D> {
    /// An empty bus: every port reads all-ones.
    pub fn new() -> Self {
        PioBus { map: RangeMap::new(0x1_0000, "port") }
    }

    /// Map ports `base .. base + len` to `device`. Accesses wider than `max_access`
    /// bytes (1, 2 or 4) are split into byte accesses before they reach the device.
    pub fn insert(&mut self, base: u16, len: u16, max_access: u8, device: D) -> Result<(), BusError> {
        self.map.insert(u64::from(base), u64::from(len), max_access, device)
    }

    /// The device that claims `port`, and the port's offset within its range.
    pub fn resolve(&self, port: u16) -> Option<(D, u16)> {
        let range = self.map.find(u64::from(port))?;
        Some((range.device, (u64::from(port) - range.base) as u16))
    }

    /// Read `size` bytes at `port`. `dev_read(device, offset, size)` is called once per
    /// device access (see the module docs for when an access is split); its result is
    /// truncated to `size` bytes.
    pub fn read(&self, port: u16, size: u8, mut dev_read: impl FnMut(D, u16, u8) -> u32) -> u32 {
        self.map.read(u64::from(port), size, &mut |d, off, sz| dev_read(d, off as u16, sz))
    }

    /// Write the low `size` bytes of `value` at `port`, calling
    /// `dev_write(device, offset, size, value)` once per device access.
    pub fn write(&self, port: u16, size: u8, value: u32, mut dev_write: impl FnMut(D, u16, u8, u32)) {
        self.map.write(u64::from(port), size, value, &mut |d, off, sz, v| dev_write(d, off as u16, sz, v))
    }
}

/// The MMIO bus: guest-physical address ranges mapped to device identifiers `D`, with
/// the same dispatch rules as [`PioBus`]. The PC board's few MMIO devices (the I/O
/// APIC, the HPET, the local APIC) each take a fixed page that [`crate::Platform`]
/// dispatches by address, because their access-size rules are QEMU's and differ per
/// device; this bus is for ranges that come and go (PCI BARs).
#[derive(Debug, Clone)]
pub struct MmioBus<D> {
    map: RangeMap<D>,
}

impl<D: Copy> Default for MmioBus<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: Copy> MmioBus<D> {
    /// An empty bus over a 64-bit physical address space.
    pub fn new() -> Self {
        MmioBus { map: RangeMap::new(1 << 64, "mmio") }
    }

    /// Map `base .. base + len` to `device` (see [`PioBus::insert`]).
    pub fn insert(&mut self, base: u64, len: u64, max_access: u8, device: D) -> Result<(), BusError> {
        self.map.insert(base, len, max_access, device)
    }

    /// The device that claims `addr`, and the offset within its range.
    pub fn resolve(&self, addr: u64) -> Option<(D, u64)> {
        let range = self.map.find(addr)?;
        Some((range.device, addr - range.base))
    }

    /// Read `size` bytes at `addr` (see [`PioBus::read`]).
    pub fn read(&self, addr: u64, size: u8, mut dev_read: impl FnMut(D, u64, u8) -> u32) -> u32 {
        self.map.read(addr, size, &mut dev_read)
    }

    /// Write the low `size` bytes of `value` at `addr` (see [`PioBus::write`]).
    pub fn write(&self, addr: u64, size: u8, value: u32, mut dev_write: impl FnMut(D, u64, u8, u32)) {
        self.map.write(addr, size, value, &mut dev_write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Dev {
        A,
        B,
        Wide,
    }

    fn bus() -> PioBus<Dev> {
        let mut bus = PioBus::new();
        bus.insert(0x20, 2, 1, Dev::A).unwrap();
        bus.insert(0x22, 1, 1, Dev::B).unwrap();
        bus.insert(0xF4, 4, 4, Dev::Wide).unwrap();
        bus
    }

    #[test]
    fn unclaimed_reads_are_all_ones_of_the_access_size() {
        let bus = bus();
        let mut called = false;
        assert_eq!(
            bus.read(0x300, 1, |_, _, _| {
                called = true;
                0
            }),
            0xFF
        );
        assert_eq!(bus.read(0x300, 2, |_, _, _| 0), 0xFFFF);
        assert_eq!(bus.read(0x300, 4, |_, _, _| 0), 0xFFFF_FFFF);
        assert!(!called);
        // A word at the very top of the port space: the byte past 0xFFFF is nothing.
        assert_eq!(bus.read(0xFFFF, 2, |_, _, _| 0), 0xFFFF);
    }

    #[test]
    fn unclaimed_writes_are_dropped() {
        let bus = bus();
        let mut calls = 0;
        bus.write(0x300, 4, 0x1234_5678, |_, _, _, _| calls += 1);
        assert_eq!(calls, 0);
    }

    #[test]
    fn resolve_gives_device_and_offset() {
        let bus = bus();
        assert_eq!(bus.resolve(0x21), Some((Dev::A, 1)));
        assert_eq!(bus.resolve(0x22), Some((Dev::B, 0)));
        assert_eq!(bus.resolve(0xF7), Some((Dev::Wide, 3)));
        assert_eq!(bus.resolve(0x23), None);
        assert_eq!(bus.resolve(0x1F), None);
    }

    #[test]
    fn wide_access_to_byte_device_is_split_little_endian_across_ranges() {
        let bus = bus();
        let mut seen = Vec::new();
        // 0x21 (A, offset 1), 0x22 (B), 0x23 (nothing), 0x24 (nothing)
        let v = bus.read(0x21, 4, |d, off, size| {
            seen.push((d, off, size));
            match d {
                Dev::A => 0x11,
                Dev::B => 0x22,
                Dev::Wide => unreachable!(),
            }
        });
        assert_eq!(v, 0xFFFF_2211);
        assert_eq!(seen, vec![(Dev::A, 1, 1), (Dev::B, 0, 1)]);

        let mut writes = Vec::new();
        bus.write(0x20, 2, 0xBEEF, |d, off, size, v| writes.push((d, off, size, v)));
        assert_eq!(writes, vec![(Dev::A, 0, 1, 0xEF), (Dev::A, 1, 1, 0xBE)]);
    }

    #[test]
    fn access_within_max_size_reaches_device_whole() {
        let bus = bus();
        let mut writes = Vec::new();
        bus.write(0xF4, 4, 0xDEAD_BEEF, |d, off, size, v| writes.push((d, off, size, v)));
        bus.write(0xF4, 2, 0xFFFF_0102, |d, off, size, v| writes.push((d, off, size, v)));
        assert_eq!(writes, vec![(Dev::Wide, 0, 4, 0xDEAD_BEEF), (Dev::Wide, 0, 2, 0x0102)]);
        // Runs off the end of the range: split, last byte unclaimed.
        let v = bus.read(0xF6, 4, |_, off, size| {
            assert_eq!(size, 1);
            u32::from(off as u8 + 0x40)
        });
        assert_eq!(v, 0xFFFF_4342);
    }

    #[test]
    fn device_results_are_truncated_to_the_access_size() {
        let bus = bus();
        assert_eq!(bus.read(0xF4, 1, |_, _, _| 0x1234_5678), 0x78);
    }

    #[test]
    fn overlapping_and_bad_ranges_are_rejected() {
        let mut bus = bus();
        assert_eq!(bus.insert(0x21, 2, 1, Dev::B), Err(BusError::Overlap { base: 0x21, existing_base: 0x20 }));
        assert_eq!(bus.insert(0x1F, 2, 1, Dev::B), Err(BusError::Overlap { base: 0x1F, existing_base: 0x20 }));
        assert_eq!(bus.insert(0x10, 0, 1, Dev::B), Err(BusError::BadRange { base: 0x10, len: 0 }));
        assert_eq!(bus.insert(0x10, 1, 3, Dev::B), Err(BusError::BadMaxAccess(3)));
        // Adjacent ranges are fine.
        bus.insert(0x1F, 1, 1, Dev::B).unwrap();
        bus.insert(0x23, 1, 1, Dev::B).unwrap();
    }

    #[test]
    fn invalid_sizes_read_all_ones_and_write_nothing() {
        let bus = bus();
        assert_eq!(bus.read(0x20, 3, |_, _, _| 0), 0xFFFF_FFFF);
        let mut calls = 0;
        bus.write(0x20, 8, 0, |_, _, _, _| calls += 1);
        assert_eq!(calls, 0);
    }

    #[test]
    fn mmio_bus_has_the_same_shape() {
        let mut bus: MmioBus<Dev> = MmioBus::new();
        assert_eq!(bus.read(0xFEE0_0000, 4, |_, _, _| 0), 0xFFFF_FFFF);
        bus.insert(0xFEC0_0000, 0x1000, 4, Dev::Wide).unwrap();
        assert_eq!(bus.resolve(0xFEC0_0010), Some((Dev::Wide, 0x10)));
        let v = bus.read(0xFEC0_0010, 4, |d, off, size| {
            assert_eq!((d, off, size), (Dev::Wide, 0x10, 4));
            0xAABB_CCDD
        });
        assert_eq!(v, 0xAABB_CCDD);
        assert_eq!(bus.insert(u64::MAX, 2, 4, Dev::A), Err(BusError::BadRange { base: u64::MAX, len: 2 }));
    }
}
