//! The tables a PC BIOS leaves in memory for the operating system, as SeaBIOS leaves them
//! under QEMU's `pc` machine: the BIOS data area ([`bda`]), the Intel MultiProcessor
//! table ([`mptable`]) and the ACPI tables ([`acpi`]). bt86 has no BIOS; the monitor
//! writes what [`build`] returns into guest RAM before it loads the kernel.
//!
//! Everything but the BIOS data area, the EBDA and the blank text screen goes into the BIOS area at 0xF0000
//! ([`TABLE_AREA`]), which the e820 map reports reserved and where operating systems
//! look for the MP floating pointer and the ACPI RSDP. Kernels are loaded at 1 MiB and
//! the Multiboot information after them, so nothing the loaders write overlaps it.
//!
//! What announces an interrupt controller bt86 does not have yet is left out unless
//! [`FirmwareConfig::apic`] says the local APIC and I/O APIC exist (the MP table, the
//! MADT), and the HPET table unless [`FirmwareConfig::hpet`] says the HPET raises its
//! timer interrupts (it does now): an operating system that finds them moves its
//! interrupts there.

pub mod acpi;
pub mod bda;
pub mod mptable;

/// The BIOS area holding the MP and ACPI tables: base and length.
pub const TABLE_AREA: (u64, u64) = (0xF_0000, 0x1_0000);
/// The local APIC's MMIO base.
pub const LAPIC_BASE: u32 = 0xFEE0_0000;
/// The I/O APIC's MMIO base.
pub const IOAPIC_BASE: u32 = 0xFEC0_0000;
/// The I/O APIC's ID, as QEMU's `pc` machine numbers it.
pub const IOAPIC_ID: u8 = 0;
/// The I/O APIC's version register (82093AA), as QEMU's.
pub const IOAPIC_VERSION: u8 = 0x11;
/// The local APIC's version, as QEMU's.
pub const LAPIC_VERSION: u8 = 0x14;
/// The ACPI system control interrupt (PIIX4 PM on QEMU's `pc` machine).
pub const SCI_IRQ: u8 = 9;

/// What the tables describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirmwareConfig {
    /// Guest RAM in bytes.
    pub ram_size: u64,
    /// The local APIC and I/O APIC exist: write the MP table and the MADT.
    pub apic: bool,
    /// The HPET raises timer interrupts: write the ACPI HPET table.
    pub hpet: bool,
    /// CPUID leaf 1 EAX (family, model, stepping), for the MP table's processor entry.
    pub cpu_signature: u32,
    /// CPUID leaf 1 EDX (feature flags), for the MP table's processor entry.
    pub cpu_features: u32,
}

/// Bytes to write into guest RAM: `(physical address, bytes)`.
#[derive(Debug, Clone, Default)]
pub struct Firmware {
    /// The pieces, in no particular order; none overlaps another.
    pub pieces: Vec<(u64, Vec<u8>)>,
    /// Where the ACPI RSDP is (for tests and logs).
    pub rsdp: u64,
    /// Where the MP floating pointer is, if there is an MP table.
    pub mp_floating_pointer: Option<u64>,
}

/// The 8-bit checksum byte that makes `bytes` (with it) sum to 0.
pub fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b)))
}

/// A region of guest memory being filled from its start, each piece aligned.
#[derive(Debug)]
pub(crate) struct Area {
    base: u64,
    bytes: Vec<u8>,
    limit: usize,
}

impl Area {
    pub(crate) fn new(base: u64, limit: u64) -> Area {
        Area { base, bytes: Vec::new(), limit: limit as usize }
    }

    /// Puts `data` at the next `align`-byte boundary and returns its address.
    pub(crate) fn place(&mut self, data: &[u8], align: usize) -> u32 {
        let at = self.bytes.len().next_multiple_of(align);
        assert!(at + data.len() <= self.limit, "the firmware tables outgrew their {:#x}-byte area", self.limit);
        self.bytes.resize(at, 0);
        self.bytes.extend_from_slice(data);
        (self.base + at as u64) as u32
    }
}

/// Builds the BIOS data area, the EBDA, the MP table (with `config.apic`) and the ACPI
/// tables for `config`.
pub fn build(config: &FirmwareConfig) -> Firmware {
    let mut area = Area::new(TABLE_AREA.0, TABLE_AREA.1);
    let mp_floating_pointer = config.apic.then(|| u64::from(mptable::build(config, &mut area)));
    let rsdp = u64::from(acpi::build(config, &mut area));
    let mut pieces = bda::build(config.ram_size);
    pieces.push((area.base, area.bytes));
    Firmware { pieces, rsdp, mp_floating_pointer }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn config(apic: bool) -> FirmwareConfig {
        FirmwareConfig { ram_size: 128 << 20, apic, hpet: apic, cpu_signature: 0x663, cpu_features: 0x0781_ABFD }
    }

    /// Guest memory as the pieces leave it.
    pub(crate) fn memory(fw: &Firmware) -> Vec<u8> {
        let mut mem = vec![0u8; 0x10_0000];
        for (addr, bytes) in &fw.pieces {
            mem[*addr as usize..*addr as usize + bytes.len()].copy_from_slice(bytes);
        }
        mem
    }

    pub(crate) fn u16_at(mem: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(mem[at..at + 2].try_into().unwrap())
    }

    pub(crate) fn u32_at(mem: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(mem[at..at + 4].try_into().unwrap())
    }

    pub(crate) fn sums_to_zero(bytes: &[u8]) -> bool {
        checksum(bytes) == 0
    }

    #[test]
    fn pieces_do_not_overlap_and_stay_in_the_bios_and_video_areas() {
        for apic in [false, true] {
            let fw = build(&config(apic));
            let mut ranges: Vec<_> = fw.pieces.iter().map(|(a, b)| (*a, *a + b.len() as u64)).collect();
            ranges.sort();
            assert!(ranges.windows(2).all(|w| w[0].1 <= w[1].0), "{ranges:?}");
            for (start, end) in ranges {
                let in_bda = (0x400..=0x500).contains(&start) && end <= 0x500;
                let in_ebda = start >= 0x9_FC00 && end <= 0xA_0000;
                let in_area = start >= TABLE_AREA.0 && end <= TABLE_AREA.0 + TABLE_AREA.1;
                let in_text = start >= crate::cga::TEXT_BASE && end <= crate::cga::TEXT_BASE + crate::cga::TEXT_LEN;
                assert!(in_bda || in_ebda || in_area || in_text, "{start:#x}..{end:#x}");
            }
            assert_eq!(fw.mp_floating_pointer.is_some(), apic);
        }
    }

    #[test]
    fn checksum_makes_the_sum_zero() {
        let mut bytes = vec![1, 2, 3, 250, 0];
        bytes[4] = checksum(&bytes);
        assert!(sums_to_zero(&bytes));
    }
}
