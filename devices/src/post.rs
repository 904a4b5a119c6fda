//! Port 0x80, the POST-code / I/O-delay port. Guests write progress codes to it (and
//! Linux's `outb_p` writes it just to wait). As QEMU's `ioport80` in hw/i386/pc.c,
//! writes are accepted and ignored and reads return 0xFF; bt86 keeps the last code
//! written for debugging.

/// The POST-code port.
pub const POST_PORT: u16 = 0x80;

/// Port 0x80.
#[derive(Debug, Clone, Default)]
pub struct PostCode {
    last: Option<u8>,
    writes: u64,
}

impl PostCode {
    /// A port nothing was written to yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A guest read: 0xFF, as QEMU.
    pub fn read(&self) -> u8 {
        0xFF
    }

    /// A guest write: remembered, otherwise ignored.
    pub fn write(&mut self, value: u8) {
        self.last = Some(value);
        self.writes += 1;
    }

    /// The last code written, if any.
    pub fn last(&self) -> Option<u8> {
        self.last
    }

    /// How many writes the port received.
    pub fn writes(&self) -> u64 {
        self.writes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ff_and_remembers_the_last_write() {
        let mut port = PostCode::new();
        assert_eq!(port.last(), None);
        assert_eq!(port.read(), 0xFF);
        port.write(0x12);
        port.write(0x34);
        assert_eq!(port.read(), 0xFF);
        assert_eq!(port.last(), Some(0x34));
        assert_eq!(port.writes(), 2);
    }
}
