//! The translation cache: one fixed host mapping that holds the common stubs and every
//! fragment's host code.
//!
//! The cache never moves, so rel32 jumps between fragments (chaining) stay valid until
//! a flush. Space is handed out by a bump pointer; invalidated fragments keep their space
//! until the cache fills, then everything after the stubs is flushed at once.

use std::fmt;

/// Why the cache could not be created.
#[derive(Debug)]
pub struct TcError(std::io::Error);

impl fmt::Display for TcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot allocate the translation cache: {}", self.0)
    }
}

impl std::error::Error for TcError {}

/// The code cache memory.
pub struct CodeCache {
    base: *mut u8,
    size: usize,
    /// End of the stubs: flushes reset `next` to here.
    stubs_end: usize,
    next: usize,
}

impl CodeCache {
    /// Maps `size` bytes readable, writable and executable.
    ///
    /// One RWX mapping keeps chaining (patching a jump while code runs in the same
    /// thread) to a plain store; guest code cannot reach it, because every guest access
    /// goes through the window.
    pub fn new(size: usize) -> Result<CodeCache, TcError> {
        // SAFETY: an anonymous private mapping at an address the kernel chooses; the
        // window and its guards are reserved before the cache is created.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(TcError(std::io::Error::last_os_error()));
        }
        Ok(CodeCache { base: p as *mut u8, size, stubs_end: 0, next: 0 })
    }

    /// Host address of the first byte.
    pub fn base(&self) -> u64 {
        self.base as u64
    }

    /// True if `addr` lies in the cache.
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.base() && addr < self.base() + self.size as u64
    }

    /// Host address where the next allocation will start.
    pub fn next_addr(&self) -> u64 {
        self.base() + self.next as u64
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Bytes in use.
    pub fn used(&self) -> usize {
        self.next
    }

    /// Bytes still free.
    pub fn free(&self) -> usize {
        self.size - self.next
    }

    /// Copies `code` to the next free address (which the code was assembled for) and
    /// returns that address, or None if the cache is full.
    pub fn append(&mut self, code: &[u8]) -> Option<u64> {
        let len = code.len().next_multiple_of(16);
        if len > self.free() {
            return None;
        }
        let addr = self.next_addr();
        // SAFETY: `[next, next + len)` is inside our mapping and not yet used by any code.
        unsafe {
            std::ptr::copy_nonoverlapping(code.as_ptr(), self.base.add(self.next), code.len());
            std::ptr::write_bytes(self.base.add(self.next + code.len()), 0xCC, len - code.len());
        }
        self.next += len;
        Some(addr)
    }

    /// Marks everything appended so far as the permanent stubs.
    pub fn seal_stubs(&mut self) {
        self.stubs_end = self.next;
    }

    /// Drops every fragment (keeps the stubs).
    pub fn flush(&mut self) {
        self.next = self.stubs_end;
    }

    /// Overwrites the 4-byte rel32 field at `field` so that the jump it belongs to (whose
    /// next instruction starts at `field + 4`) goes to `target`.
    pub fn patch_rel32(&mut self, field: u64, target: u64) {
        assert!(self.contains(field) && self.contains(field + 3), "patch outside the TC");
        let rel = target as i64 - (field as i64 + 4);
        let rel = i32::try_from(rel).expect("TC larger than 2 GiB");
        // SAFETY: `field` is inside our RWX mapping (checked above); the vCPU thread that
        // runs TC code is the one patching, so no instruction is executing it right now.
        unsafe { std::ptr::write_unaligned(field as *mut i32, rel) };
    }

    /// The bytes at `[addr, addr + len)`, for tracing.
    pub fn bytes(&self, addr: u64, len: usize) -> &[u8] {
        assert!(self.contains(addr) && addr + len as u64 <= self.base() + self.size as u64);
        // SAFETY: inside the mapping, checked above.
        unsafe { std::slice::from_raw_parts(addr as *const u8, len) }
    }
}

impl Drop for CodeCache {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly our mapping; no code runs from it after this.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.size) };
    }
}

/// The stack translated code runs on: guest `call`s push host return addresses here,
/// guest `ret`s pop them, so the CPU's return-stack predictor works for guest code. A
/// guard page below it turns an overflow (a guest that calls without returning, over and
/// over) into a fault the monitor recovers from by emptying the stack.
pub struct TcStack {
    base: *mut u8,
    size: usize,
}

impl TcStack {
    /// Maps `size` bytes plus a guard page.
    pub fn new(size: usize) -> Result<TcStack, TcError> {
        let total = size + 4096;
        // SAFETY: a fresh anonymous mapping; the guard page is made inaccessible below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(TcError(std::io::Error::last_os_error()));
        }
        // SAFETY: the lowest page of the mapping just made.
        if unsafe { libc::mprotect(p, 4096, libc::PROT_NONE) } != 0 {
            return Err(TcError(std::io::Error::last_os_error()));
        }
        Ok(TcStack { base: p as *mut u8, size: total })
    }

    /// The initial stack pointer (16-byte aligned).
    pub fn top(&self) -> u64 {
        self.base as u64 + self.size as u64
    }

    /// True if `addr` is in the guard page (a stack overflow).
    pub fn is_guard(&self, addr: u64) -> bool {
        (self.base as u64..self.base as u64 + 4096).contains(&addr)
    }
}

impl Drop for TcStack {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping; translated code no longer runs on it.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.size) };
    }
}
