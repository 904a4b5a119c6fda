//! The Intel MultiProcessor Specification 1.4 table, as SeaBIOS writes it for QEMU's
//! `pc` machine, less the PCI bus bt86 does not have: a floating pointer in the BIOS
//! area pointing to a configuration table with one processor (local APIC ID 0, enabled,
//! bootstrap), the ISA bus (ID 0), the I/O APIC, an I/O interrupt assignment for each
//! ISA IRQ but the cascade (IRQ 0 to pin 2, IRQ N to pin N; the SCI, IRQ 9, level and
//! active high, the rest as the bus conforms), and the local interrupts: the 8259's
//! ExtINT to LINT0 and NMI to LINT1 of every processor.

use super::{Area, FirmwareConfig, IOAPIC_BASE, IOAPIC_ID, IOAPIC_VERSION, LAPIC_BASE, LAPIC_VERSION, SCI_IRQ, checksum};

const SPEC_REV: u8 = 4;
const ISA_BUS: u8 = 0;
const ENTRY_PROCESSOR: u8 = 0;
const ENTRY_BUS: u8 = 1;
const ENTRY_IOAPIC: u8 = 2;
const ENTRY_IO_INTERRUPT: u8 = 3;
const ENTRY_LOCAL_INTERRUPT: u8 = 4;
const INT_VECTORED: u8 = 0;
const INT_NMI: u8 = 1;
const INT_EXTINT: u8 = 3;
/// Interrupt flags: polarity active high (1), trigger level (3 << 2).
const FLAGS_LEVEL_HIGH: u16 = 0x000D;
const PROCESSOR_ENABLED_BSP: u8 = 0x03;
const HEADER_LEN: usize = 44;

/// Writes the configuration table and the floating pointer into `area`; returns the
/// floating pointer's address.
pub(crate) fn build(config: &FirmwareConfig, area: &mut Area) -> u32 {
    let mut entries = Vec::new();
    let mut count = 0u16;
    let mut entry = |bytes: &[u8]| {
        entries.extend_from_slice(bytes);
        count += 1;
    };
    let mut cpu = vec![ENTRY_PROCESSOR, 0, LAPIC_VERSION, PROCESSOR_ENABLED_BSP];
    cpu.extend_from_slice(&config.cpu_signature.to_le_bytes());
    cpu.extend_from_slice(&config.cpu_features.to_le_bytes());
    cpu.extend_from_slice(&[0; 8]);
    entry(&cpu);
    entry(&[ENTRY_BUS, ISA_BUS, b'I', b'S', b'A', b' ', b' ', b' ']);
    let mut ioapic = vec![ENTRY_IOAPIC, IOAPIC_ID, IOAPIC_VERSION, 1];
    ioapic.extend_from_slice(&IOAPIC_BASE.to_le_bytes());
    entry(&ioapic);
    for irq in (0..16u8).filter(|&irq| irq != 2) {
        let pin = if irq == 0 { 2 } else { irq };
        let flags = if irq == SCI_IRQ { FLAGS_LEVEL_HIGH } else { 0 };
        let [lo, hi] = flags.to_le_bytes();
        entry(&[ENTRY_IO_INTERRUPT, INT_VECTORED, lo, hi, ISA_BUS, irq, IOAPIC_ID, pin]);
    }
    entry(&[ENTRY_LOCAL_INTERRUPT, INT_EXTINT, 0, 0, ISA_BUS, 0, 0, 0]);
    entry(&[ENTRY_LOCAL_INTERRUPT, INT_NMI, 0, 0, ISA_BUS, 0, 0xFF, 1]);

    let mut table = Vec::with_capacity(HEADER_LEN + entries.len());
    table.extend_from_slice(b"PCMP");
    table.extend_from_slice(&((HEADER_LEN + entries.len()) as u16).to_le_bytes());
    table.push(SPEC_REV);
    table.push(0); // checksum
    table.extend_from_slice(b"BT86    ");
    table.extend_from_slice(b"PC          ");
    table.extend_from_slice(&0u32.to_le_bytes()); // OEM table
    table.extend_from_slice(&0u16.to_le_bytes()); // its size
    table.extend_from_slice(&count.to_le_bytes());
    table.extend_from_slice(&LAPIC_BASE.to_le_bytes());
    table.extend_from_slice(&[0; 4]); // extended table length, checksum, reserved
    table.extend_from_slice(&entries);
    table[7] = checksum(&table);
    let config_addr = area.place(&table, 16);

    let mut fp = Vec::with_capacity(16);
    fp.extend_from_slice(b"_MP_");
    fp.extend_from_slice(&config_addr.to_le_bytes());
    fp.extend_from_slice(&[1, SPEC_REV, 0, 0, 0, 0, 0, 0]); // 16 bytes, rev, checksum, features
    fp[10] = checksum(&fp);
    area.place(&fp, 16)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{config, memory, sums_to_zero, u16_at, u32_at};
    use super::super::{TABLE_AREA, build};

    #[test]
    fn floating_pointer_and_table_check_out() {
        let fw = build(&config(true));
        let mem = memory(&fw);
        let fp = fw.mp_floating_pointer.unwrap() as usize;
        assert!(fp as u64 >= TABLE_AREA.0 && fp.is_multiple_of(16));
        assert_eq!(&mem[fp..fp + 4], b"_MP_");
        assert!(sums_to_zero(&mem[fp..fp + 16]));
        assert_eq!((mem[fp + 8], mem[fp + 9], mem[fp + 11]), (1, 4, 0));
        let t = u32_at(&mem, fp + 4) as usize;
        assert_eq!(&mem[t..t + 4], b"PCMP");
        let len = u16_at(&mem, t + 4) as usize;
        assert!(sums_to_zero(&mem[t..t + len]));
        assert_eq!(u32_at(&mem, t + 36), 0xFEE0_0000);
        // Walk the entries: one CPU, ISA, the I/O APIC, 15 IRQs, 2 local interrupts.
        let count = u16_at(&mem, t + 34);
        let (mut at, mut kinds) = (t + 44, Vec::new());
        for _ in 0..count {
            kinds.push(mem[at]);
            if mem[at] == 3 && mem[at + 5] == 0 {
                assert_eq!(mem[at + 7], 2, "IRQ 0 goes to pin 2");
            }
            if mem[at] == 2 {
                assert_eq!((mem[at + 2], u32_at(&mem, at + 4)), (0x11, 0xFEC0_0000));
            }
            at += if mem[at] == 0 { 20 } else { 8 };
        }
        assert_eq!(at, t + len);
        assert_eq!(kinds.iter().filter(|&&k| k == 3).count(), 15);
        assert_eq!(&kinds[..3], &[0, 1, 2]);
    }
}
