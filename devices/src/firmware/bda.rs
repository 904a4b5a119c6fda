//! The BIOS data area at 0x400 and the extended BIOS data area below 640 KiB, with the
//! values SeaBIOS leaves under QEMU's `pc` machine with one serial port: COM1 at 0x3F8
//! and no other serial or parallel port, the EBDA segment 0x9FC0 (1 KiB, its first byte
//! its size in KiB), the equipment word (x87, PS/2 mouse, one serial port), 639 KiB
//! of base memory and an empty keyboard buffer. Kernels that search for the MP or ACPI tables find the EBDA here.

/// The BIOS data area.
pub const BDA: u64 = 0x400;
/// The EBDA's first byte (matches the e820 map's reserved 1 KiB below 640 KiB).
pub const EBDA: u64 = 0x9_FC00;
/// The EBDA's size in KiB.
const EBDA_KIB: u8 = 1;
/// The equipment word (INT 11h): x87 (bit 1), PS/2 mouse (bit 2), one serial port
/// (bits 9-11).
const EQUIPMENT: u16 = 0x0206;
/// Offsets in the BDA.
const COM_PORTS: usize = 0x00;
const LPT_PORTS: usize = 0x08;
const EBDA_SEGMENT: usize = 0x0E;
const EQUIPMENT_WORD: usize = 0x10;
const BASE_MEMORY_KIB: usize = 0x13;
/// The keyboard buffer's head and tail (empty: both at its start, 0x1E).
const KBD_HEAD: usize = 0x1A;
const KBD_TAIL: usize = 0x1C;
const KBD_BUFFER: u16 = 0x1E;
/// How much of the BDA is written.
const BDA_LEN: usize = 0x20;

/// The BDA and EBDA pieces (`_ram_size` does not change them: base memory is always 639
/// KiB, RAM being at least 2 MiB).
pub fn build(_ram_size: u64) -> Vec<(u64, Vec<u8>)> {
    let mut bda = vec![0u8; BDA_LEN];
    let mut put16 = |at: usize, v: u16| bda[at..at + 2].copy_from_slice(&v.to_le_bytes());
    put16(COM_PORTS, crate::serial::COM1_BASE);
    put16(LPT_PORTS, 0);
    put16(EBDA_SEGMENT, (EBDA >> 4) as u16);
    put16(EQUIPMENT_WORD, EQUIPMENT);
    put16(BASE_MEMORY_KIB, (EBDA >> 10) as u16);
    put16(KBD_HEAD, KBD_BUFFER);
    put16(KBD_TAIL, KBD_BUFFER);
    let mut ebda = vec![0u8; usize::from(EBDA_KIB) << 10];
    ebda[0] = EBDA_KIB;
    vec![(BDA, bda), (EBDA, ebda)]
}

#[cfg(test)]
mod tests {
    use super::super::build;
    use super::super::tests::{config, memory, u16_at};

    #[test]
    fn values_as_seabios_leaves_them() {
        let mem = memory(&build(&config(false)));
        assert_eq!([0x400, 0x402, 0x404, 0x406].map(|a| u16_at(&mem, a)), [0x3F8, 0, 0, 0]);
        assert_eq!([0x408, 0x40A, 0x40C].map(|a| u16_at(&mem, a)), [0, 0, 0]);
        assert_eq!(u16_at(&mem, 0x40E), 0x9FC0);
        assert_eq!(u16_at(&mem, 0x413), 639);
        assert_eq!(mem[0x9_FC00], 1);
    }
}
