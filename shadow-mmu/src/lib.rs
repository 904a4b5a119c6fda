//! Guest memory for bt86: the guest's RAM, and the *window* through which translated
//! (and later directly executed) guest code reaches it.
//!
//! Guest RAM is one `memfd` ([`GuestRam`]). The monitor reads and writes it through a
//! private view of its own; guest code reaches it only through the window
//! ([`Window`]): host virtual addresses `[WINDOW_BASE, WINDOW_BASE + 4 GiB)`, where guest
//! linear address `v` lives at host address `WINDOW_BASE + v`. The window is the shadow
//! page table: the host kernel's page tables for it are what the CPU walks, and this
//! crate edits them with `mmap(MAP_FIXED|MAP_SHARED)`, `mprotect` and `munmap`. Guard
//! regions below and above the window are reserved `PROT_NONE`, so no monitor allocation
//! can ever sit where a guest-computed address can reach (see `shared/DESIGN.md`).
//!
//! While guest paging is off the window maps guest physical memory one to one
//! ([`Window::map_identity`]).

#![deny(missing_docs)]

mod ram;
mod window;

pub use ram::{GuestRam, RamError};
pub use window::{Prot, Window, WindowError, WindowStats};

/// Host virtual address of guest linear address 0.
pub const WINDOW_BASE: u64 = 1 << 30;
/// Size of the window: the whole 32-bit guest linear address space.
pub const WINDOW_SIZE: u64 = 1 << 32;
/// Guest page size (4 KiB pages; 4 MiB guest pages are filled 4 KiB at a time).
pub const PAGE_SIZE: u64 = 4096;

/// Host address of guest linear address `linear`.
#[inline]
pub fn host_addr(linear: u32) -> u64 {
    WINDOW_BASE + linear as u64
}

/// True if `host` lies in the window proper (not in a guard region).
#[inline]
pub fn in_window(host: u64) -> bool {
    (WINDOW_BASE..WINDOW_BASE + WINDOW_SIZE).contains(&host)
}

/// True if `host` lies in the window or in one of its guard regions: the range a
/// translated guest instruction can possibly address.
#[inline]
pub fn in_guest_reach(host: u64) -> bool {
    host < WINDOW_BASE + 2 * WINDOW_SIZE
}
