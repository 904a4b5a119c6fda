//! QEMU's `isa-debug-exit` device as bt86's guests use it: `-device
//! isa-debug-exit,iobase=0xf4,iosize=0x04`, ports 0xF4-0xF7.
//!
//! A write of value `v` (of the access size: `outb` gives 8 bits, `outl` 32) asks the
//! VM to stop with host exit status `(v << 1) | 1`, as QEMU's `debug_exit_write`
//! (`(val << 1) | 1`, truncated to a C `int`; the host process status keeps the low 8
//! bits, so `outb 0x10` exits with 33). Odd statuses never collide with a clean
//! shutdown (0). Reads return 0 (`debug_exit_read`).

/// The port QEMU guests conventionally use.
pub const DEBUG_EXIT_BASE: u16 = 0xF4;
/// Number of ports (QEMU's `iosize`).
pub const DEBUG_EXIT_LEN: u16 = 4;

/// The exit status QEMU gives for a write of `value`.
pub fn exit_status(value: u32) -> i32 {
    ((u64::from(value) << 1) | 1) as i32
}

/// The isa-debug-exit device. Stateless, apart from remembering the last request for
/// whoever wants to know after the fact.
#[derive(Debug, Clone, Default)]
pub struct DebugExit {
    requested: Option<i32>,
}

impl DebugExit {
    /// A device that has not been written.
    pub fn new() -> Self {
        Self::default()
    }

    /// A guest read: always 0.
    pub fn read(&self, _offset: u16, _size: u8) -> u32 {
        0
    }

    /// A guest write of `value` (already truncated to the access size): returns the
    /// exit status the VM must stop with.
    pub fn write(&mut self, _offset: u16, _size: u8, value: u32) -> i32 {
        let status = exit_status(value);
        self.requested = Some(status);
        status
    }

    /// The exit status of the last write, if any.
    pub fn requested(&self) -> Option<i32> {
        self.requested
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_is_value_shifted_left_plus_one() {
        let mut dev = DebugExit::new();
        assert_eq!(dev.requested(), None);
        assert_eq!(dev.write(0, 1, 0x00), 1);
        assert_eq!(dev.write(0, 1, 0x10), 33);
        assert_eq!(dev.write(0, 1, 0x7F), 255);
        assert_eq!(dev.requested(), Some(255));
        // The host keeps 8 bits: 0x80 gives 0x101, i.e. status 1.
        assert_eq!(dev.write(0, 1, 0x80) & 0xFF, 1);
        // 32-bit writes use the whole value, as a C int.
        assert_eq!(dev.write(0, 4, 0x1234_5678), 0x2468_ACF1);
        assert_eq!(dev.write(0, 4, 0xFFFF_FFFF), -1);
    }

    #[test]
    fn reads_return_zero() {
        let dev = DebugExit::new();
        assert_eq!(dev.read(0, 1), 0);
        assert_eq!(dev.read(0, 4), 0);
    }
}
