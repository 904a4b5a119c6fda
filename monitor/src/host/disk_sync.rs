//! The disk images' file descriptors, so that the ways out that never return through
//! `main` — SIGINT, SIGTERM, SIGHUP, a fatal signal in bt86 itself, a panic — still sync
//! them. Every completed guest write is already in the host's page cache (`pwrite`), so
//! this is about durability, not about losing data when bt86 dies. Async-signal-safe.

use std::sync::atomic::{AtomicI32, Ordering};

/// One slot per ATA drive position (master, slave); -1 when empty.
static FDS: [AtomicI32; 2] = [AtomicI32::new(-1), AtomicI32::new(-1)];

/// Remembers `fd` as the image of drive `unit` (0 or 1).
pub fn register(unit: usize, fd: i32) {
    FDS[unit].store(fd, Ordering::SeqCst);
}

/// `fdatasync` on every registered image; errors are ignored (there is nobody left to
/// tell). Async-signal-safe.
pub fn sync_all() {
    for slot in &FDS {
        let fd = slot.load(Ordering::SeqCst);
        if fd >= 0 {
            // SAFETY: fdatasync(2) takes a plain descriptor and is async-signal-safe; the
            // descriptor is the image's, open for bt86's whole life.
            unsafe { libc::fdatasync(fd) };
        }
    }
}
