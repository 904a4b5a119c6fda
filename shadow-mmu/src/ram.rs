//! Guest physical RAM: one memfd, and the monitor's own read/write view of it.

use std::ffi::CString;
use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Why guest RAM could not be created.
#[derive(Debug)]
pub enum RamError {
    /// The requested size is zero, not page aligned, or does not fit below 4 GiB.
    BadSize(u64),
    /// A host call failed.
    Host(&'static str, std::io::Error),
}

impl fmt::Display for RamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RamError::BadSize(s) => {
                write!(f, "guest memory size {s} bytes is invalid: it must be a multiple of 4 KiB, at least 1 MiB and at most 3 GiB")
            }
            RamError::Host(what, e) => write!(f, "cannot create guest memory: {what}: {e}"),
        }
    }
}

impl std::error::Error for RamError {}

/// Guest physical RAM `[0, size)`, backed by one memfd.
///
/// The memfd holds one extra page after the RAM, filled with `0xFF`: the page that
/// reads of unbacked guest-physical addresses see, as on a PC.
pub struct GuestRam {
    fd: OwnedFd,
    view: *mut u8,
    size: u64,
}

// SAFETY: the view is a shared mapping owned by this struct; the monitor runs each vCPU
// on one thread and hands the RAM between threads only by moving it.
unsafe impl Send for GuestRam {}

/// Largest RAM bt86 accepts: the guest's physical address space below 3 GiB, leaving room
/// for device memory above.
pub const MAX_RAM: u64 = 3 << 30;

impl GuestRam {
    /// Creates zeroed guest RAM of `size` bytes.
    pub fn new(size: u64) -> Result<GuestRam, RamError> {
        if !((1 << 20)..=MAX_RAM).contains(&size) || !size.is_multiple_of(crate::PAGE_SIZE) {
            return Err(RamError::BadSize(size));
        }
        let name = CString::new("bt86-guest-ram").unwrap();
        // SAFETY: memfd_create with a valid C string; the result is checked.
        let raw = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(RamError::Host("memfd_create", std::io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let total = size + crate::PAGE_SIZE;
        // SAFETY: ftruncate on our own descriptor.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), total as libc::off_t) } != 0 {
            return Err(RamError::Host("ftruncate", std::io::Error::last_os_error()));
        }
        // SAFETY: a new shared mapping of the memfd at an address the kernel chooses;
        // the window and its guards are already reserved, so it cannot land there.
        let view = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_NORESERVE,
                fd.as_raw_fd(),
                0,
            )
        };
        if view == libc::MAP_FAILED {
            return Err(RamError::Host("mmap of guest RAM", std::io::Error::last_os_error()));
        }
        let ram = GuestRam { fd, view: view as *mut u8, size };
        // SAFETY: the last page is inside the mapping just made.
        unsafe { std::ptr::write_bytes(ram.view.add(size as usize), 0xFF, crate::PAGE_SIZE as usize) };
        Ok(ram)
    }

    /// RAM size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The memfd, for mapping RAM pages into the window.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// File offset of the all-ones page that stands for unbacked physical memory.
    pub fn ones_page_offset(&self) -> u64 {
        self.size
    }

    /// True if `[paddr, paddr + len)` is RAM.
    pub fn contains(&self, paddr: u64, len: u64) -> bool {
        paddr.checked_add(len).is_some_and(|end| end <= self.size)
    }

    /// The whole RAM as a byte slice.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the view maps `size` bytes for the lifetime of `self`.
        unsafe { std::slice::from_raw_parts(self.view, self.size as usize) }
    }

    /// The whole RAM as a mutable byte slice.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` makes this the only monitor reference. Guest
        // code may write the same memory through the window concurrently only while it
        // runs, which is never while the monitor holds this slice (one vCPU thread).
        unsafe { std::slice::from_raw_parts_mut(self.view, self.size as usize) }
    }

    /// Reads physical memory; bytes beyond RAM read as `0xFF`.
    pub fn read(&self, paddr: u64, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().enumerate() {
            let a = paddr + i as u64;
            *b = if a < self.size { self.as_slice()[a as usize] } else { 0xFF };
        }
    }

    /// Writes physical memory; bytes beyond RAM are dropped.
    pub fn write(&mut self, paddr: u64, data: &[u8]) {
        let size = self.size;
        let mem = self.as_mut_slice();
        for (i, b) in data.iter().enumerate() {
            let a = paddr + i as u64;
            if a < size {
                mem[a as usize] = *b;
            }
        }
    }

    /// Reads a little-endian u32 (unbacked bytes read as `0xFF`).
    pub fn read_u32(&self, paddr: u64) -> u32 {
        let mut b = [0u8; 4];
        self.read(paddr, &mut b);
        u32::from_le_bytes(b)
    }

    /// Reads a little-endian u16.
    pub fn read_u16(&self, paddr: u64) -> u16 {
        let mut b = [0u8; 2];
        self.read(paddr, &mut b);
        u16::from_le_bytes(b)
    }

    /// Writes a little-endian u32.
    pub fn write_u32(&mut self, paddr: u64, v: u32) {
        self.write(paddr, &v.to_le_bytes());
    }

    /// Writes a little-endian u16.
    pub fn write_u16(&mut self, paddr: u64, v: u16) {
        self.write(paddr, &v.to_le_bytes());
    }

    /// Zeroes all of RAM (used between fuzzer runs).
    pub fn clear(&mut self) {
        self.as_mut_slice().fill(0);
    }
}

impl Drop for GuestRam {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the view we mapped.
        unsafe { libc::munmap(self.view as *mut libc::c_void, (self.size + crate::PAGE_SIZE) as usize) };
    }
}
