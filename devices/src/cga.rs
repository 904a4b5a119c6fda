//! The colour text screen as QEMU's VGA presents it in mode 3 after SeaBIOS: text RAM at
//! 0xB8000 (ordinary guest RAM in bt86, 80x25 cells of character and attribute, which the
//! monitor's display reads) and the few I/O registers text-mode kernels touch:
//!
//! | port  | register |
//! |-------|----------|
//! | 0x3D4 | CRTC index (reads back) |
//! | 0x3D5 | CRTC data: the register the index names (256 of them, as QEMU keeps) |
//! | 0x3DA | input status 1: reads toggle vertical retrace and display enable (bits 3, 0) |
//! | 0x3C2 | misc output (write); input status 0 (read: 0) |
//! | 0x3CC | misc output (read): 0x67 — colour emulation, so the CRTC is at 0x3D4 |
//!
//! What matches QEMU's `hw/display/vga.c` (with its default "dumb" retrace): the CRTC
//! values SeaBIOS's mode 3 leaves (cursor shape 0x0D-0x0E, start address 0, cursor at
//! 0x00A0, i.e. row 2 below SeaBIOS's two lines), CRTC registers 0-7 write-protected
//! while register 0x11 bit 7 is set (but bit 4 of register 7), 0x3DA answering 0x09
//! and 0x00 in turn. Word accesses are split into bytes (index, then data), as QEMU's
//! byte-wide ports do. Not modelled: the attribute controller, sequencer, graphics
//! controller and DAC (their ports are unclaimed), the monochrome ports, graphics modes.

/// Text RAM: the first byte of the screen's memory.
pub const TEXT_BASE: u64 = 0xB_8000;
/// Text RAM's size (32 KiB: 0xB8000-0xBFFFF).
pub const TEXT_LEN: u64 = 0x8000;
/// Characters per row in mode 3.
pub const COLUMNS: usize = 80;
/// Rows in mode 3.
pub const ROWS: usize = 25;
/// The CRTC's index and data ports.
pub const CRTC_PORT: u16 = 0x3D4;
/// Input status register 1.
pub const STATUS_PORT: u16 = 0x3DA;
/// The misc output register's write port (input status 0 when read).
pub const MISC_WRITE_PORT: u16 = 0x3C2;
/// The misc output register's read port.
pub const MISC_READ_PORT: u16 = 0x3CC;

/// CRTC registers 0x00-0x18 as SeaBIOS's mode 3 sets them (QEMU 7.2 with SeaBIOS 1.16,
/// read back from a guest), cursor location included.
const MODE3_CRTC: [u8; 0x19] = [
    0x5F, 0x4F, 0x50, 0x82, 0x55, 0x81, 0xBF, 0x1F, 0x00, 0x4F, 0x0D, 0x0E, 0x00, 0x00, 0x00, 0xA0, 0x9C, 0x8E, 0x8F, 0x28, 0x1F, 0x96,
    0xB9, 0xA3, 0xFF,
];
/// Misc output in mode 3: colour emulation, RAM enabled, 28 MHz clock, sync polarities.
const MODE3_MISC: u8 = 0x67;
const CRTC_CURSOR_START: usize = 0x0A;
const CRTC_CURSOR_END: usize = 0x0B;
const CRTC_START_HI: usize = 0x0C;
const CRTC_START_LO: usize = 0x0D;
const CRTC_CURSOR_HI: usize = 0x0E;
const CRTC_CURSOR_LO: usize = 0x0F;
const CRTC_OVERFLOW: usize = 0x07;
const CRTC_VSYNC_END: usize = 0x11;
/// Register 0x11 bit 7: registers 0-7 are write-protected.
const LOCK_CR0_CR7: u8 = 0x80;
/// Input status 1: vertical retrace and display enable (QEMU toggles both per read).
const ST01_TOGGLE: u8 = 0x08 | 0x01;

/// The text screen's registers.
#[derive(Debug, Clone)]
pub struct Cga {
    index: u8,
    crtc: [u8; 256],
    misc: u8,
    st01: u8,
}

impl Default for Cga {
    fn default() -> Self {
        Self::new()
    }
}

impl Cga {
    /// The registers as SeaBIOS leaves them after setting mode 3 (and at every reset,
    /// which runs the BIOS again).
    pub fn new() -> Cga {
        let mut crtc = [0u8; 256];
        crtc[..MODE3_CRTC.len()].copy_from_slice(&MODE3_CRTC);
        Cga { index: (MODE3_CRTC.len() - 1) as u8, crtc, misc: MODE3_MISC, st01: 0 }
    }

    /// A guest `in` from `port`.
    pub fn read(&mut self, port: u16) -> u8 {
        match port {
            CRTC_PORT => self.index,
            p if p == CRTC_PORT + 1 => self.crtc[usize::from(self.index)],
            STATUS_PORT => {
                self.st01 ^= ST01_TOGGLE;
                self.st01
            }
            MISC_READ_PORT => self.misc,
            _ => 0, // input status 0
        }
    }

    /// A guest `out` to `port`.
    pub fn write(&mut self, port: u16, value: u8) {
        match port {
            CRTC_PORT => self.index = value,
            p if p == CRTC_PORT + 1 => {
                let i = usize::from(self.index);
                if self.crtc[CRTC_VSYNC_END] & LOCK_CR0_CR7 != 0 && i <= CRTC_OVERFLOW {
                    if i == CRTC_OVERFLOW {
                        self.crtc[i] = (self.crtc[i] & !0x10) | (value & 0x10);
                    }
                    return;
                }
                self.crtc[i] = value;
            }
            MISC_WRITE_PORT => self.misc = value & !0x10,
            _ => {}
        }
    }

    /// The cursor location register (0x0E/0x0F): a cell index in text RAM.
    pub fn cursor_location(&self) -> u16 {
        u16::from_be_bytes([self.crtc[CRTC_CURSOR_HI], self.crtc[CRTC_CURSOR_LO]])
    }

    /// The start address register (0x0C/0x0D): the cell shown at the top left.
    pub fn start_address(&self) -> u16 {
        u16::from_be_bytes([self.crtc[CRTC_START_HI], self.crtc[CRTC_START_LO]])
    }

    /// The cursor is shown: register 0x0A's "cursor off" bit (5) is clear and its start
    /// line is not below its end line (register 0x0B), as QEMU draws it.
    pub fn cursor_visible(&self) -> bool {
        let start = self.crtc[CRTC_CURSOR_START];
        start & 0x20 == 0 && start & 0x1F <= self.crtc[CRTC_CURSOR_END] & 0x1F
    }

    /// The screen's cursor as `(row, column)` if it is shown and on the screen.
    pub fn cursor_cell(&self) -> Option<(usize, usize)> {
        let at = usize::from(self.cursor_location().wrapping_sub(self.start_address()));
        (self.cursor_visible() && at < COLUMNS * ROWS).then_some((at / COLUMNS, at % COLUMNS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crtc(c: &mut Cga, index: u8) -> u8 {
        c.write(CRTC_PORT, index);
        c.read(CRTC_PORT + 1)
    }

    #[test]
    fn mode3_values_after_seabios() {
        let mut c = Cga::new();
        assert_eq!(c.read(CRTC_PORT), 0x18, "the index SeaBIOS wrote last");
        assert_eq!((crtc(&mut c, 0x0A), crtc(&mut c, 0x0B)), (0x0D, 0x0E));
        assert_eq!((crtc(&mut c, 0x0C), crtc(&mut c, 0x0D)), (0, 0));
        assert_eq!((crtc(&mut c, 0x0E), crtc(&mut c, 0x0F)), (0x00, 0xA0));
        assert_eq!(c.cursor_cell(), Some((2, 0)));
        assert_eq!(crtc(&mut c, 0x40), 0, "registers SeaBIOS leaves alone read 0");
        assert_eq!(c.read(MISC_READ_PORT), 0x67);
        assert_eq!(c.read(MISC_WRITE_PORT), 0);
    }

    #[test]
    fn cursor_and_start_address_round_trip() {
        let mut c = Cga::new();
        for (i, v) in [(0x0E, 0x03), (0x0F, 0x2A), (0x0C, 0x00), (0x0D, 0x50)] {
            c.write(CRTC_PORT, i);
            c.write(CRTC_PORT + 1, v);
        }
        assert_eq!(c.cursor_location(), 0x032A);
        assert_eq!(c.start_address(), 80);
        assert_eq!(c.cursor_cell(), Some((0x32A / 80 - 1, 0x32A % 80)));
        c.write(CRTC_PORT, 0x0A);
        c.write(CRTC_PORT + 1, 0x20);
        assert!(!c.cursor_visible());
        assert_eq!(c.cursor_cell(), None);
    }

    #[test]
    fn status_toggles_retrace_and_display_enable() {
        let mut c = Cga::new();
        let reads: Vec<u8> = (0..4).map(|_| c.read(STATUS_PORT)).collect();
        assert_eq!(reads, [0x09, 0x00, 0x09, 0x00]);
    }

    #[test]
    fn registers_0_to_7_are_write_protected_by_register_0x11() {
        let mut c = Cga::new();
        c.write(CRTC_PORT, 0x01);
        c.write(CRTC_PORT + 1, 0x55);
        assert_eq!(c.read(CRTC_PORT + 1), 0x4F, "0x11 bit 7 is set in mode 3");
        c.write(CRTC_PORT, 0x07);
        c.write(CRTC_PORT + 1, 0x00);
        assert_eq!(c.read(CRTC_PORT + 1), 0x0F, "only bit 4 of register 7 is writable");
        c.write(CRTC_PORT, 0x11);
        c.write(CRTC_PORT + 1, 0x0E);
        c.write(CRTC_PORT, 0x01);
        c.write(CRTC_PORT + 1, 0x55);
        assert_eq!(c.read(CRTC_PORT + 1), 0x55);
    }
}
