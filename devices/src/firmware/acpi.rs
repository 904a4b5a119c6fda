//! The ACPI tables, built with rust-vmm's `acpi_tables` where it has the table (FADT,
//! FACS, XSDT, the MADT's processor and I/O APIC entries, the generic table and AML for
//! the rest), with the values of QEMU's `pc` machine:
//!
//! - RSDP (revision 2, pointing to both the RSDT and the XSDT) in the BIOS area, 16-byte
//!   aligned, where operating systems scan for it;
//! - FADT: SCI on IRQ 9, no SMI command port (always in ACPI mode), PM1a event block at
//!   0x600, control block at 0x604, the 24-bit PM timer at 0x608 ([`crate::acpi_pm`]),
//!   the RTC century at CMOS 0x32, legacy devices and an i8042, and the flags of QEMU's
//!   (WBINVD, C1, no fixed sleep button, RTC wake from S4, platform clock);
//! - FACS, and a DSDT holding `\_S5` (SLP_TYP 0, so that the OS can power off) and the
//!   legacy devices (RTC, i8042 keyboard and mouse, COM1; the HPET with
//!   [`FirmwareConfig::hpet`]) as QEMU's declares them;
//! - with [`FirmwareConfig::apic`], the MADT: the local APIC at 0xFEE00000 (PC/AT
//!   compatible 8259s too), processor 0, the I/O APIC at 0xFEC00000 with GSI base 0,
//!   interrupt source overrides IRQ 0 → GSI 2 and IRQ 9 level/active high, and LINT1 as
//!   the NMI of every processor;
//! - with [`FirmwareConfig::hpet`], the HPET table for the HPET at 0xFED00000.

use acpi_tables::Aml;
use acpi_tables::aml;
use acpi_tables::facs::FACS;
use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::madt::{EnabledStatus, IoApic, ProcessorLocalApic};
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;

use super::{Area, FirmwareConfig, IOAPIC_BASE, IOAPIC_ID, LAPIC_BASE, SCI_IRQ, checksum};
use crate::acpi_pm::{PM_TMR_BLK, PM1A_CNT_BLK, PM1A_EVT_BLK, SLP_TYP_S5};

const OEM_ID: [u8; 6] = *b"BT86  ";
const OEM_TABLE_ID: [u8; 8] = *b"BT86PC  ";
const OEM_REVISION: u32 = 1;
/// A standard table header's length.
const HEADER_LEN: u32 = 36;
/// FADT IA-PC boot architecture flags: legacy (ISA) devices, an 8042.
const BOOT_ARCH_LEGACY_8042: u16 = 0x3;
/// The CMOS index of the RTC's century byte.
const RTC_CENTURY: u8 = 0x32;
/// MADT flags: PC/AT-compatible dual 8259 present.
const MADT_PCAT_COMPAT: u32 = 1;
/// MADT interrupt source override flags: active high, level triggered.
const MPS_LEVEL_HIGH: u16 = 0x000D;

fn table(signature: &[u8; 4], revision: u8) -> Sdt {
    Sdt::new(*signature, HEADER_LEN, revision, OEM_ID, OEM_TABLE_ID, OEM_REVISION)
}

fn bytes(t: &dyn Aml) -> Vec<u8> {
    let mut v = Vec::new();
    t.to_aml_bytes(&mut v);
    v
}

/// A legacy device of the DSDT: its name, PNP ID, I/O ranges `(base, length)` and IRQ.
struct IsaDevice {
    name: &'static str,
    pnp_id: &'static str,
    io: &'static [(u16, u8)],
    irq: Option<u32>,
}

/// The PC's legacy devices, as QEMU's DSDT declares them, so that the OS binds its
/// drivers through ACPI instead of probing.
const ISA_DEVICES: &[IsaDevice] = &[
    IsaDevice { name: "RTC_", pnp_id: "PNP0B00", io: &[(0x70, 2)], irq: Some(8) },
    IsaDevice { name: "KBD_", pnp_id: "PNP0303", io: &[(0x60, 1), (0x64, 1)], irq: Some(1) },
    IsaDevice { name: "MOU_", pnp_id: "PNP0F13", io: &[], irq: Some(12) },
    IsaDevice { name: "COM1", pnp_id: "PNP0501", io: &[(0x3F8, 8)], irq: Some(4) },
];

fn isa_device(d: &IsaDevice) -> Vec<u8> {
    let io: Vec<aml::IO> = d.io.iter().map(|&(base, len)| aml::IO::new(base, base, 1, len)).collect();
    let irq = d.irq.map(|n| aml::Interrupt::new(true, true, false, false, n));
    let mut resources: Vec<&dyn Aml> = io.iter().map(|r| r as &dyn Aml).collect();
    if let Some(irq) = &irq {
        resources.push(irq);
    }
    let hid = aml::EISAName::new(d.pnp_id);
    let crs = aml::ResourceTemplate::new(resources);
    let (hid, crs) = (aml::Name::new(aml::Path::new("_HID"), &hid), aml::Name::new(aml::Path::new("_CRS"), &crs));
    bytes(&aml::Device::new(aml::Path::new(d.name), vec![&hid, &crs]))
}

/// The HPET's device (PNP0103, its 1 KiB of registers).
fn hpet_device() -> Vec<u8> {
    let hid = aml::EISAName::new("PNP0103");
    let regs = aml::Memory32Fixed::new(false, crate::hpet::HPET_BASE as u32, 0x400);
    let crs = aml::ResourceTemplate::new(vec![&regs]);
    let (hid, crs) = (aml::Name::new(aml::Path::new("_HID"), &hid), aml::Name::new(aml::Path::new("_CRS"), &crs));
    bytes(&aml::Device::new(aml::Path::new("HPET"), vec![&hid, &crs]))
}

/// The DSDT: the legacy devices (and the HPET with [`FirmwareConfig::hpet`]) in `\_SB`,
/// and `Name (\_S5, Package () { SLP_TYP_S5, SLP_TYP_S5, 0, 0 })`.
fn dsdt(config: &FirmwareConfig) -> Sdt {
    let mut t = table(b"DSDT", 1);
    let mut devices: Vec<u8> = ISA_DEVICES.iter().flat_map(isa_device).collect();
    if config.hpet {
        devices.extend(hpet_device());
    }
    t.append_slice(&aml::Scope::raw(aml::Path::new("\\_SB_"), devices));
    let typ = aml::ZERO;
    debug_assert_eq!(SLP_TYP_S5, 0);
    aml::Name::new(aml::Path::new("_S5_"), &aml::Package::new(vec![&typ, &typ, &aml::ZERO, &aml::ZERO])).to_aml_bytes(&mut t);
    t.update_checksum();
    t
}

fn fadt(facs: u32, dsdt: u32) -> Vec<u8> {
    let mut f = FADTBuilder::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION)
        .firmware_ctrl_32(facs)
        .dsdt_32(dsdt)
        .flag(Flags::Wbinvd)
        .flag(Flags::ProcC1)
        .flag(Flags::SlpButton)
        .flag(Flags::RtcS4)
        .flag(Flags::UsePlatformClock);
    f.sci_int = u16::from(SCI_IRQ).into();
    f.pm1a_evt_blk = u32::from(PM1A_EVT_BLK).into();
    f.pm1a_cnt_blk = u32::from(PM1A_CNT_BLK).into();
    f.pm_tmr_blk = u32::from(PM_TMR_BLK).into();
    f.pm1_evt_len = 4;
    f.pm1_cnt_len = 2;
    f.pm_tmr_len = 4;
    // C2 and C3 are not supported (latencies above 100 and 1000 µs).
    f.p_lvl2_lat = 0x0FFF.into();
    f.p_lvl3_lat = 0x0FFF.into();
    f.century = RTC_CENTURY;
    f.iapc_boot_arch = BOOT_ARCH_LEGACY_8042.into();
    bytes(&f.finalize())
}

fn madt() -> Sdt {
    let mut t = table(b"APIC", 1);
    t.append_slice(&LAPIC_BASE.to_le_bytes());
    t.append_slice(&MADT_PCAT_COMPAT.to_le_bytes());
    ProcessorLocalApic::new(0, 0, EnabledStatus::Enabled).to_aml_bytes(&mut t);
    IoApic::new(IOAPIC_ID, IOAPIC_BASE, 0).to_aml_bytes(&mut t);
    for (irq, gsi, flags) in [(0u8, 2u32, 0u16), (SCI_IRQ, u32::from(SCI_IRQ), MPS_LEVEL_HIGH)] {
        // Interrupt source override: type 2, length 10, ISA bus 0.
        t.append_slice(&[2, 10, 0, irq]);
        t.append_slice(&gsi.to_le_bytes());
        t.append_slice(&flags.to_le_bytes());
    }
    // Local APIC NMI: type 4, length 6, all processors, flags 0, LINT1.
    t.append_slice(&[4, 6, 0xFF, 0, 0, 1]);
    t.update_checksum();
    t
}

fn hpet() -> Sdt {
    let mut t = table(b"HPET", 1);
    t.append_slice(&(crate::hpet::Hpet::capabilities() as u32).to_le_bytes());
    // Base address: generic address structure, system memory, 0xFED00000.
    t.append_slice(&[0, 0, 0, 0]);
    t.append_slice(&crate::hpet::HPET_BASE.to_le_bytes());
    t.append_slice(&[0]); // HPET number
    t.append_slice(&0u16.to_le_bytes()); // minimum clock tick in periodic mode
    t.append_slice(&[0]); // page protection
    t.update_checksum();
    t
}

/// The RSDP, revision 2: its first 20 bytes are an ACPI 1.0 RSDP (RSDT only).
fn rsdp(rsdt: u32, xsdt: u32) -> Vec<u8> {
    let mut r = Vec::with_capacity(36);
    r.extend_from_slice(b"RSD PTR ");
    r.push(0);
    r.extend_from_slice(&OEM_ID);
    r.push(2);
    r.extend_from_slice(&rsdt.to_le_bytes());
    r.extend_from_slice(&36u32.to_le_bytes());
    r.extend_from_slice(&u64::from(xsdt).to_le_bytes());
    r.extend_from_slice(&[0; 4]);
    r[8] = checksum(&r[..20]);
    r[32] = checksum(&r);
    r
}

/// Writes the tables into `area`; returns the RSDP's address.
pub(crate) fn build(config: &FirmwareConfig, area: &mut Area) -> u32 {
    let facs = area.place(&bytes(&FACS::new()), 64);
    let dsdt = area.place(dsdt(config).as_slice(), 16);
    let mut entries = vec![area.place(&fadt(facs, dsdt), 16)];
    if config.apic {
        entries.push(area.place(madt().as_slice(), 16));
    }
    if config.hpet {
        entries.push(area.place(hpet().as_slice(), 16));
    }
    let mut rsdt = table(b"RSDT", 1);
    let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    for &e in &entries {
        rsdt.append_slice(&e.to_le_bytes());
        xsdt.add_entry(u64::from(e));
    }
    rsdt.update_checksum();
    let rsdt = area.place(rsdt.as_slice(), 16);
    let xsdt = area.place(&bytes(&xsdt), 16);
    area.place(&rsdp(rsdt, xsdt), 16)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{config, memory, sums_to_zero, u16_at, u32_at};
    use super::super::{TABLE_AREA, build};

    /// The tables the RSDT lists, by signature, after checking each checksum.
    fn tables(mem: &[u8], rsdp: usize) -> Vec<(String, usize)> {
        assert_eq!(&mem[rsdp..rsdp + 8], b"RSD PTR ");
        assert!(sums_to_zero(&mem[rsdp..rsdp + 20]));
        assert!(sums_to_zero(&mem[rsdp..rsdp + 36]));
        let rsdt = u32_at(mem, rsdp + 16) as usize;
        let xsdt = u32_at(mem, rsdp + 24) as usize;
        let len = |t: usize| u32_at(mem, t + 4) as usize;
        assert_eq!(&mem[rsdt..rsdt + 4], b"RSDT");
        assert_eq!(&mem[xsdt..xsdt + 4], b"XSDT");
        assert!(sums_to_zero(&mem[rsdt..rsdt + len(rsdt)]));
        assert!(sums_to_zero(&mem[xsdt..xsdt + len(xsdt)]));
        let n = (len(rsdt) - 36) / 4;
        assert_eq!((len(xsdt) - 36) / 8, n);
        (0..n)
            .map(|i| {
                let t = u32_at(mem, rsdt + 36 + 4 * i) as usize;
                assert_eq!(u32_at(mem, xsdt + 36 + 8 * i) as usize, t);
                assert!(sums_to_zero(&mem[t..t + len(t)]), "checksum of {:?}", &mem[t..t + 4]);
                (String::from_utf8_lossy(&mem[t..t + 4]).into_owned(), t)
            })
            .collect()
    }

    #[test]
    fn rsdp_tables_and_checksums() {
        for apic in [false, true] {
            let fw = build(&config(apic));
            let mem = memory(&fw);
            let rsdp = fw.rsdp as usize;
            assert!(rsdp as u64 >= TABLE_AREA.0 && rsdp.is_multiple_of(16));
            let names: Vec<String> = tables(&mem, rsdp).into_iter().map(|(n, _)| n).collect();
            let expected: &[&str] = if apic { &["FACP", "APIC", "HPET"] } else { &["FACP"] };
            assert_eq!(names, expected);
        }
    }

    #[test]
    fn fadt_fields_as_qemu_pc() {
        let fw = build(&config(false));
        let mem = memory(&fw);
        let fadt = tables(&mem, fw.rsdp as usize)[0].1;
        assert_eq!(u16_at(&mem, fadt + 46), 9, "SCI_INT");
        assert_eq!(u32_at(&mem, fadt + 48), 0, "SMI_CMD");
        assert_eq!(u32_at(&mem, fadt + 56), 0x600, "PM1a_EVT_BLK");
        assert_eq!(u32_at(&mem, fadt + 64), 0x604, "PM1a_CNT_BLK");
        assert_eq!(u32_at(&mem, fadt + 76), 0x608, "PM_TMR_BLK");
        assert_eq!((mem[fadt + 88], mem[fadt + 89], mem[fadt + 91]), (4, 2, 4));
        assert_eq!(u32_at(&mem, fadt + 112), 0x80A5, "flags: no TMR_VAL_EXT (24-bit timer)");
        let facs = u32_at(&mem, fadt + 36) as usize;
        assert_eq!(&mem[facs..facs + 4], b"FACS");
        assert!(facs.is_multiple_of(64));
        let dsdt = u32_at(&mem, fadt + 40) as usize;
        assert_eq!(&mem[dsdt..dsdt + 4], b"DSDT");
        let len = u32_at(&mem, dsdt + 4) as usize;
        assert!(sums_to_zero(&mem[dsdt..dsdt + len]));
        // Scope (\_SB) { the devices }, then Name (_S5, Package (4) { 0, 0, 0, 0 }).
        assert_eq!(&mem[dsdt + 36..dsdt + 37], &[0x10]);
        for name in [b"RTC_", b"KBD_", b"MOU_", b"COM1"] {
            assert!(mem[dsdt..dsdt + len].windows(4).any(|w| w == name));
        }
        assert_eq!(&mem[dsdt + len - 12..dsdt + len], &[0x08, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0, 0, 0, 0]);
    }

    #[test]
    fn madt_and_hpet_as_qemu_pc() {
        let fw = build(&config(true));
        let mem = memory(&fw);
        let t = tables(&mem, fw.rsdp as usize);
        let madt = t[1].1;
        assert_eq!((u32_at(&mem, madt + 36), u32_at(&mem, madt + 40)), (0xFEE0_0000, 1));
        let end = madt + u32_at(&mem, madt + 4) as usize;
        let mut at = madt + 44;
        let mut entries = Vec::new();
        while at < end {
            entries.push(mem[at..at + mem[at + 1] as usize].to_vec());
            at += mem[at + 1] as usize;
        }
        assert_eq!(at, end);
        assert_eq!(entries[0], [0, 8, 0, 0, 1, 0, 0, 0]);
        assert_eq!(entries[1], [1, 12, 0, 0, 0, 0, 0xC0, 0xFE, 0, 0, 0, 0]);
        assert_eq!(entries[2], [2, 10, 0, 0, 2, 0, 0, 0, 0, 0]);
        assert_eq!(entries[3], [2, 10, 0, 9, 9, 0, 0, 0, 0x0D, 0]);
        assert_eq!(entries[4], [4, 6, 0xFF, 0, 0, 1]);
        let hpet = t[2].1;
        assert_eq!(u32_at(&mem, hpet + 4), 56);
        assert_eq!(u32_at(&mem, hpet + 36), 0x8086_A201);
        assert_eq!(u32_at(&mem, hpet + 44), 0xFED0_0000);
    }
}
