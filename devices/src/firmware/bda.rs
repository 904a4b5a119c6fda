//! The BIOS data area at 0x400 and the extended BIOS data area below 640 KiB, with the
//! values SeaBIOS leaves under QEMU's `pc` machine with one serial port: COM1 at 0x3F8
//! and no other serial or parallel port, the EBDA segment 0x9FC0 (1 KiB, its first byte
//! its size in KiB), the equipment word (x87, PS/2 mouse, one serial port), 639 KiB
//! of base memory and an empty keyboard buffer. Kernels that search for the MP or ACPI
//! tables find the EBDA here. The video fields are those SeaBIOS's VGA BIOS leaves after
//! setting mode 3 (80x25 colour text, CRTC at 0x3D4, the cursor on row 2 below its two
//! lines), with the screen ([`crate::cga`]) blank: [`text_screen`].

/// The BIOS data area.
pub const BDA: u64 = 0x400;
/// The EBDA's first byte (matches the e820 map's reserved 1 KiB below 640 KiB).
pub const EBDA: u64 = 0x9_FC00;
/// The EBDA's size in KiB.
const EBDA_KIB: u8 = 1;
/// How much of the BDA is written (through the video fields).
const BDA_LEN: usize = 0x8A;

/// The BDA and EBDA pieces (`_ram_size` does not change them: base memory is always 639
/// KiB, RAM being at least 2 MiB).
pub fn build(_ram_size: u64) -> Vec<(u64, Vec<u8>)> {
    // (offset, 16-bit value); everything else is 0: no COM2-COM4, no LPT ports.
    let fields = [
        (0x00, crate::serial::COM1_BASE),
        (0x0E, (EBDA >> 4) as u16),  // the EBDA segment
        (0x10, 0x0226),              // equipment: x87, PS/2 mouse, 80x25 colour, one serial port
        (0x13, (EBDA >> 10) as u16), // base memory in KiB
        (0x1A, 0x1E),                // keyboard buffer head and tail: empty
        (0x1C, 0x1E),
        (0x4A, 80),     // video: columns
        (0x4C, 0x1000), // page size
        (0x50, 0x0200), // cursor of page 0: row 2, column 0
        (0x60, 0x0607), // cursor shape
        (0x63, crate::cga::CRTC_PORT),
        (0x85, 16), // character height
    ];
    // Video bytes: mode 3, rows - 1, EGA/VGA feature bits and display data.
    let bytes = [(0x49, 3u8), (0x84, 24), (0x87, 0x60), (0x88, 0xF9), (0x89, 0x51)];
    let mut bda = vec![0u8; BDA_LEN];
    for (at, value) in fields {
        bda[at..at + 2].copy_from_slice(&u16::to_le_bytes(value));
    }
    for (at, value) in bytes {
        bda[at] = value;
    }
    let mut ebda = vec![0u8; usize::from(EBDA_KIB) << 10];
    ebda[0] = EBDA_KIB;
    vec![(BDA, bda), (EBDA, ebda), text_screen()]
}

/// Text RAM as a mode set leaves it: every cell a blank (0x20) in light grey on black.
pub fn text_screen() -> (u64, Vec<u8>) {
    (crate::cga::TEXT_BASE, [0x20, 0x07].repeat(crate::cga::TEXT_LEN as usize / 2))
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
        assert_eq!((mem[0x449], u16_at(&mem, 0x44A), u16_at(&mem, 0x463), mem[0x484]), (3, 80, 0x3D4, 24));
        assert_eq!(u16_at(&mem, 0xB_8000), 0x0720);
    }
}
