//! Guest memory for bt86: the guest's RAM, the *windows* through which translated (and
//! later directly executed) guest code reaches it, and the shadow MMU that keeps the
//! windows in step with the guest's page tables.
//!
//! Guest RAM is one `memfd` ([`GuestRam`]). The monitor reads and writes it through a
//! view of its own; guest code reaches it only through a window ([`Window`]): 4 GiB of host
//! address space where guest linear address `v` lives at `base + v`. A window is a shadow
//! page table: the host kernel's page tables for it are what the CPU walks, and this crate
//! edits them with `mmap(MAP_FIXED)`, `mprotect` and re-reservation. Guard regions around
//! each window are reserved `PROT_NONE`, so no monitor allocation can ever sit where a
//! guest-computed address can reach (see docs/architecture.md).
//!
//! There are two kinds of window ([`WindowKind`]): the *user* window at host 0 holds only
//! what the guest's page tables let CPL 3 touch (it is the one direct execution reaches,
//! through LDT segments based at 0; the fuzzer moves it to 1 GiB); a *kernel* window (at
//! 32 GiB, the next ones 12 GiB apart) holds what CPL 0 may touch (translated kernel code
//! addresses it through GS). There is a kernel window per recently used address space (up
//! to [`KERNEL_WINDOWS`]), and with it a user window of its own for translated user code
//! (which also reaches memory through GS; the user window at 0 stays for direct
//! execution): a CR3 switch back to one is a change of GS base and a comparison of its
//! recorded tables, not a refill. Each is a virtual TLB ([`Mmu`]): filled lazily on host faults ("hidden
//! faults") after a walk of the guest's tables ([`walk`]), with permissions never wider
//! than the guest's, and flushed by `invlpg`, CR3 writes and paging-mode changes, which
//! keep what the guest's tables still give (a flush of the tables in use finds what
//! changed by comparing entries, see `derived`). With paging off, both map guest physical
//! memory one to one.

#![deny(missing_docs)]

mod derived;
mod mirror;
mod mmu;
mod ram;
mod shadow;
mod soft_tlb;
pub mod walk;
mod window;

pub use mirror::{MirrorChanges, MirrorRun};
pub use mmu::{Access, HostFault, Mmu, MmuStats, NEVER_NATIVE, PagingRegs, Resolution, second_byte};
pub use ram::{GuestRam, MAX_RAM, RamError};
pub use walk::{PageFault, Translation};
pub use window::{KERNEL_WINDOWS, POPULATE_MAX_PAGES, Prot, Window, WindowError, WindowKind, WindowStats, locate, set_user_window_base};

/// Size of a window: the whole 32-bit guest linear address space.
pub const WINDOW_SIZE: u64 = 1 << 32;
/// Guest page size (4 MiB guest pages are mapped as 4 KiB host pages).
pub const PAGE_SIZE: u64 = 4096;
/// Host address of guest linear 0 in the user window (`B` in docs/architecture.md) unless
/// [`window::set_user_window_base`] chose another. Zero, so that directly executed guest
/// code runs with segment base 0 for the guest's flat segments: a non-zero base costs
/// every load the CPU's fast address path (measured here: a pointer chase 35% slower at
/// base 1 GiB). The user window maps only pages the guest's tables give user code, so
/// guest kernel memory stays out of reach all the same.
pub const USER_WINDOW_BASE: u64 = 0;
/// Host address of guest linear 0 in the kernel window.
pub const KERNEL_WINDOW_BASE: u64 = 32 << 30;
