//! A window: 4 GiB of host address space whose host page tables are one of the guest's
//! shadow page tables, plus the guard regions around it.
//!
//! Layout of the user window:
//!
//! ```text
//!   [0, mmap_min_addr)       unmappable (the host's NULL guard): guest user pages there
//!                            cannot be mapped
//!   [mmap_min_addr, 4 GiB)   window: guest linear v at host v
//!   [4 GiB, 8 GiB)           guard, PROT_NONE; its first page mirrors guest page 0
//! ```
//!
//! One window at 1 GiB with both halves of the guest would keep compatibility-mode code
//! from the guest kernel half by the wrap at 4 GiB. bt86 keeps two windows instead: this one maps only pages the
//! guest's tables give user code, so nothing else is there to reach, and at base 0 the
//! guest's flat segments run with segment base 0, which the CPU's fast load path needs.
//! A string instruction running below linear 0 forms a negative host address (the
//! canonical kernel half); [`locate`] treats the 4 GiB below 2^64 as the lower guard.
//!
//! The kernel windows are at 32 GiB, 44 GiB, ... ([`KERNEL_WINDOWS`] of them at most, one
//! per recently used address space), and after them the user windows of translated user
//! code (one per address space too), each with 4 GiB of guard on either side; they lie
//! above 4 GiB, out of reach of any compatibility-mode code.
//!
//! The mirror page makes an access that straddles the top of the 32-bit linear space
//! (a dword at 0xFFFFFFFE) touch guest linear 0..3 exactly as the guest's wrap-around
//! arithmetic says, without a fault; anything further into the upper guard faults.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::mirror::{Mirror, MirrorChanges};
use crate::ram::GuestRam;
use crate::{KERNEL_WINDOW_BASE, PAGE_SIZE, USER_WINDOW_BASE, WINDOW_SIZE};

/// Which window: the user window, one of the kernel windows (one per recently used guest
/// address space, see [`crate::Mmu`]; [`WindowKind::Kernel`] is the first), or one of the
/// user windows of translated user code that go with them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WindowKind(u8);

#[allow(non_upper_case_globals)]
impl WindowKind {
    /// What CPL 3 may touch (direct execution, translated user code).
    pub const User: WindowKind = WindowKind(0);
    /// What CPL 0 may touch (translated kernel code): the first kernel window.
    pub const Kernel: WindowKind = WindowKind(1);
    /// How many windows there can be: the user window, [`KERNEL_WINDOWS`] kernel ones and
    /// as many user windows for translated code.
    pub const COUNT: usize = 1 + 2 * KERNEL_WINDOWS;

    /// Kernel window number `i` (0 is [`WindowKind::Kernel`]).
    pub fn kernel(i: usize) -> WindowKind {
        assert!(i < KERNEL_WINDOWS);
        WindowKind(1 + i as u8)
    }

    /// The user window of translated user code of address space number `i` (its
    /// kernel window is [`WindowKind::kernel`]`(i)`).
    pub fn translated_user(i: usize) -> WindowKind {
        assert!(i < KERNEL_WINDOWS);
        WindowKind(1 + KERNEL_WINDOWS as u8 + i as u8)
    }

    /// Every window there can be.
    pub fn all() -> impl Iterator<Item = WindowKind> {
        (0..Self::COUNT as u8).map(WindowKind)
    }

    /// Its number: 0 for the user window, then the kernel windows.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// True for the windows of CPL 3: the user window, and those of translated user code.
    pub fn is_user(self) -> bool {
        self.0 == 0 || self.0 as usize > KERNEL_WINDOWS
    }

    /// Host address of guest linear 0 in this window.
    pub fn base(self) -> u64 {
        if self.0 == 0 { USER_BASE.load(Ordering::Relaxed) } else { KERNEL_WINDOW_BASE + (self.0 as u64 - 1) * KERNEL_WINDOW_STRIDE }
    }

    /// Host address of guest linear `linear` in this window.
    pub fn host_addr(self, linear: u32) -> u64 {
        self.base() + linear as u64
    }

    /// The lowest guest linear address this window can map (no host mapping can lie
    /// below the host's `mmap_min_addr`).
    pub fn first_mappable(self) -> u32 {
        mmap_min_addr().saturating_sub(self.base()) as u32
    }

    /// Where an address of a copy of this window lies in the window itself: the host
    /// address, or None where the copy holds nothing. A copy (the sandbox's stub, see
    /// `mirror`) is made at the user window's place, so it holds nothing below the host's
    /// `mmap_min_addr` — for the user window itself neither does the window — and nothing
    /// directly executed code can fault at above the window but the mirror page, whose
    /// faults the translator takes, as the guards'.
    pub fn from_copy(self, addr: u64) -> Option<u64> {
        let user = WindowKind::User;
        let linear = addr.checked_sub(user.base())?;
        (linear >= user.first_mappable() as u64 && linear < WINDOW_SIZE).then(|| self.base() + linear)
    }

    /// The reserved range: the window and its guards.
    pub(crate) fn reservation(self) -> (u64, u64) {
        if self.0 == 0 {
            (self.base().saturating_sub(WINDOW_SIZE).max(mmap_min_addr()), self.base() + 2 * WINDOW_SIZE)
        } else {
            (self.base() - WINDOW_SIZE, self.base() + 2 * WINDOW_SIZE)
        }
    }
}

/// Where a host address lies relative to the windows: `(window, linear, in_guard)`.
/// `linear` is the guest linear address the host address stands for (for the mirror page
/// above the window, the wrapped-around address); `in_guard` is true for guard-region
/// addresses (a string instruction that ran off the end, or the mirror page).
pub fn locate(host: u64) -> Option<(WindowKind, u32, bool)> {
    for w in WindowKind::all() {
        if !TAKEN[w.index()].load(Ordering::Relaxed) {
            continue;
        }
        let b = w.base();
        if (b..b + WINDOW_SIZE).contains(&host) {
            // The user window's unmappable bottom counts as guard.
            return Some((w, (host - b) as u32, host - b < w.first_mappable() as u64));
        }
        if (b + WINDOW_SIZE..b + 2 * WINDOW_SIZE).contains(&host) {
            return Some((w, (host - b - WINDOW_SIZE) as u32, true));
        }
        // The 4 GiB below the window are its lower guard; for a window at 0 they are the
        // top of the 64-bit space, where window + (a negative offset) lands.
        if host.wrapping_sub(b.wrapping_sub(WINDOW_SIZE)) < WINDOW_SIZE {
            return Some((w, host.wrapping_sub(b) as u32, true));
        }
    }
    None
}

/// The most kernel windows (guest address spaces whose kernel-window mappings are kept).
pub const KERNEL_WINDOWS: usize = 4;
/// Host distance between kernel windows: each has 4 GiB of guard on either side.
const KERNEL_WINDOW_STRIDE: u64 = 3 * WINDOW_SIZE;

static TAKEN: [AtomicBool; WindowKind::COUNT] = [const { AtomicBool::new(false) }; WindowKind::COUNT];

/// The user window's base (see [`crate::USER_WINDOW_BASE`]).
static USER_BASE: AtomicU64 = AtomicU64::new(USER_WINDOW_BASE);

/// Puts the user window at host address `base` (0 or 1 GiB in practice) instead of
/// [`crate::USER_WINDOW_BASE`]. The differential fuzzer
/// uses 1 GiB, so that its guest code may use linear addresses below `mmap_min_addr`
/// (16-bit addressing). Only before the user window is reserved.
pub fn set_user_window_base(base: u64) -> Result<(), WindowError> {
    if TAKEN[WindowKind::User.index()].load(Ordering::SeqCst) {
        return Err(WindowError::AlreadyExists);
    }
    assert!(base.is_multiple_of(PAGE_SIZE) && base + 2 * WINDOW_SIZE <= KERNEL_WINDOW_BASE - WINDOW_SIZE, "user window base {base:#x}");
    USER_BASE.store(base, Ordering::SeqCst);
    Ok(())
}

/// Page permissions a window mapping may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prot {
    /// Not accessible.
    None,
    /// Readable; writes and instruction fetches fault.
    Read,
    /// Readable and writable; instruction fetches fault.
    ReadWrite,
    /// Readable and executable, writes fault.
    ReadExec,
    /// Readable, writable and executable.
    ReadWriteExec,
}

impl Prot {
    /// The `PROT_*` bits of `mmap`/`mprotect`.
    pub fn bits(self) -> libc::c_int {
        match self {
            Prot::None => libc::PROT_NONE,
            Prot::Read => libc::PROT_READ,
            Prot::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
            Prot::ReadExec => libc::PROT_READ | libc::PROT_EXEC,
            Prot::ReadWriteExec => libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
        }
    }

    /// Readable (and maybe writable / executable) with the given rights.
    pub fn readable(write: bool, exec: bool) -> Prot {
        match (write, exec) {
            (false, false) => Prot::Read,
            (true, false) => Prot::ReadWrite,
            (false, true) => Prot::ReadExec,
            (true, true) => Prot::ReadWriteExec,
        }
    }

    /// Writes allowed.
    pub fn writable(self) -> bool {
        matches!(self, Prot::ReadWrite | Prot::ReadWriteExec)
    }

    /// Instruction fetches allowed.
    pub fn executable(self) -> bool {
        matches!(self, Prot::ReadExec | Prot::ReadWriteExec)
    }

    /// The same without write access.
    pub fn read_only(self) -> Prot {
        if self == Prot::None { Prot::None } else { Prot::readable(false, self.executable()) }
    }
}

/// Why a window could not be set up or edited.
#[derive(Debug)]
pub enum WindowError {
    /// That window already exists in this process (it lives at fixed addresses).
    AlreadyExists,
    /// Something else already occupies the window or its guards.
    AddressInUse(u64, u64),
    /// A host call failed.
    Host(&'static str, std::io::Error),
    /// The guest maps a user page below the host's `vm.mmap_min_addr`, where the user
    /// window cannot map anything (guest linear address).
    BelowMmapMin(u32),
    /// The host refused a mapping for lack of memory or of mappings (`ENOMEM`) even after
    /// the shadow MMU evicted what it had mapped: the VMAs the windows used, their budget,
    /// the host's `vm.max_map_count`.
    Exhausted {
        /// VMAs the windows used.
        vmas: usize,
        /// Their budget.
        budget: usize,
        /// The host's limit per process.
        max_map_count: usize,
    },
}

impl WindowError {
    /// True if a host call failed for lack of memory or of mappings (`ENOMEM`: the host
    /// also says so when a process reaches `vm.max_map_count`), which evicting mappings
    /// may cure.
    pub fn host_refused(&self) -> bool {
        match self {
            WindowError::Host(_, e) => e.raw_os_error() == Some(libc::ENOMEM),
            WindowError::Exhausted { .. } => true,
            _ => false,
        }
    }
}

impl fmt::Display for WindowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowError::AlreadyExists => {
                write!(f, "a guest memory window already exists in this process")
            }
            WindowError::AddressInUse(a, b) => {
                write!(f, "host addresses {a:#x}..{b:#x} are already in use; bt86 needs them for the guest window")
            }
            WindowError::Host(what, e) => write!(f, "guest memory window: {what}: {e}"),
            WindowError::BelowMmapMin(linear) => write!(
                f,
                "guest user code uses linear address {linear:#x}, below the host's vm.mmap_min_addr ({:#x}), where bt86 cannot map guest pages",
                mmap_min_addr()
            ),
            WindowError::Exhausted { vmas, budget, max_map_count } => write!(
                f,
                "the host refuses to map more guest memory (out of memory, or out of mappings: vm.max_map_count is {max_map_count}) \
                 even after the shadow MMU evicted its mappings down to {vmas} (its budget: {budget}); \
                 free host memory or raise vm.max_map_count"
            ),
        }
    }
}

impl std::error::Error for WindowError {}

/// Counters of host calls made on the windows.
#[derive(Clone, Copy, Debug, Default)]
pub struct WindowStats {
    /// `mmap` calls that mapped guest pages.
    pub mmap_calls: u64,
    /// `mprotect` calls.
    pub mprotect_calls: u64,
    /// Unmaps (re-reserving a range as `PROT_NONE`).
    pub unmap_calls: u64,
    /// Pages mapped in total.
    pub pages_mapped: u64,
}

impl WindowStats {
    /// Adds another window's counters.
    pub fn add(&mut self, o: &WindowStats) {
        self.mmap_calls += o.mmap_calls;
        self.mprotect_calls += o.mprotect_calls;
        self.unmap_calls += o.unmap_calls;
        self.pages_mapped += o.pages_mapped;
    }
}

/// One reserved window and its guards. Each window exists at most once per process.
pub struct Window {
    kind: WindowKind,
    stats: WindowStats,
    /// Every change, for a copy of the window in another process (the sandbox's stub).
    mirror: Option<Box<Mirror>>,
}

/// The largest fill mapped with MAP_POPULATE (a small fill is about to be used; a large
/// one, the identity map, would allocate all of RAM up front).
pub const POPULATE_MAX_PAGES: u64 = 16;

/// The lowest address a host mapping may have (`vm.mmap_min_addr`), read once: the
/// signal handler asks for it (through [`locate`]) and must not touch the file system.
fn mmap_min_addr() -> u64 {
    static CACHED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *CACHED.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/vm/mmap_min_addr").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(65536).max(PAGE_SIZE)
    })
}

/// Reserves `[start, end)` as inaccessible, failing if anything is there already.
fn reserve(start: u64, end: u64) -> Result<(), WindowError> {
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; the ranges are
    // ones the monitor's own allocations do not use.
    let p = unsafe {
        libc::mmap(
            start as *mut libc::c_void,
            (end - start) as usize,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        let e = std::io::Error::last_os_error();
        return Err(if e.raw_os_error() == Some(libc::EEXIST) {
            WindowError::AddressInUse(start, end)
        } else {
            WindowError::Host("reserving address space", e)
        });
    }
    if p as u64 != start {
        // Old kernels ignore MAP_FIXED_NOREPLACE and return another address.
        // SAFETY: unmapping the mapping we just made.
        unsafe { libc::munmap(p, (end - start) as usize) };
        return Err(WindowError::AddressInUse(start, end));
    }
    Ok(())
}

impl Window {
    /// Reserves the window of `kind` and its guard regions.
    pub fn reserve(kind: WindowKind) -> Result<Window, WindowError> {
        if TAKEN[kind.index()].swap(true, Ordering::SeqCst) {
            return Err(WindowError::AlreadyExists);
        }
        let (lo, hi) = kind.reservation();
        if let Err(e) = reserve(lo, hi) {
            TAKEN[kind.index()].store(false, Ordering::SeqCst);
            return Err(e);
        }
        Ok(Window { kind, stats: WindowStats::default(), mirror: None })
    }

    /// Which window this is.
    pub fn kind(&self) -> WindowKind {
        self.kind
    }

    /// Counters of host calls so far.
    pub fn stats(&self) -> WindowStats {
        self.stats
    }

    /// Starts recording every change for a copy of this window in another process,
    /// which is taken to hold nothing yet.
    pub fn start_mirror(&mut self) {
        let mut m = Mirror::new(self.kind.base());
        m.unmapped_all();
        self.mirror = Some(Box::new(m));
    }

    /// Stops recording changes: no copy of this window is kept any more.
    pub fn stop_mirror(&mut self) {
        self.mirror = None;
    }

    /// The changes since the copy last caught up (None: no copy is kept).
    pub fn take_mirror_changes(&mut self) -> Option<MirrorChanges> {
        self.mirror.as_mut().map(|m| m.take_changes())
    }

    /// True if a kept copy needs no changes.
    pub fn mirror_is_current(&self) -> bool {
        self.mirror.as_ref().is_none_or(|m| m.is_current())
    }

    /// A new copy (it holds nothing): the next changes bring it everything.
    pub fn resend_mirror(&mut self) {
        if let Some(m) = self.mirror.as_mut() {
            m.resend_all();
        }
    }

    /// Maps `pages` guest pages starting at guest linear `linear` to guest physical
    /// `phys` with permissions `prot`. Physical pages beyond RAM map the all-ones page
    /// read-only. Page 0 is also mapped at the mirror just above the window.
    pub fn map(&mut self, ram: &GuestRam, linear: u32, phys: u64, pages: u64, prot: Prot) -> Result<(), WindowError> {
        debug_assert!((linear as u64).is_multiple_of(PAGE_SIZE) && phys.is_multiple_of(PAGE_SIZE));
        assert!(linear as u64 + pages * PAGE_SIZE <= WINDOW_SIZE, "window mapping past 4 GiB");
        let skip = self.unmappable_pages(linear, pages);
        if skip > 0 {
            // The part the host cannot map stays unmapped (its accesses fault); the
            // mirror of page 0 above the window can be mapped.
            if linear == 0 {
                let (off, p) = if phys < ram.size() { (phys, prot) } else { (ram.ones_page_offset(), prot.read_only()) };
                self.map_fd(ram, self.kind.base() + WINDOW_SIZE, off, 1, p)?;
            }
            if skip == pages {
                return Ok(());
            }
            return self.map(ram, linear + (skip * PAGE_SIZE) as u32, phys + skip * PAGE_SIZE, pages - skip, prot);
        }
        let ram_pages = (ram.size() / PAGE_SIZE).saturating_sub(phys / PAGE_SIZE).min(pages);
        if ram_pages > 0 {
            self.map_fd(ram, self.kind.host_addr(linear), phys, ram_pages, prot)?;
        }
        for i in ram_pages..pages {
            let prot = prot.read_only();
            self.map_fd(ram, self.kind.host_addr(linear) + i * PAGE_SIZE, ram.ones_page_offset(), 1, prot)?;
        }
        if linear == 0 && pages > 0 {
            let (off, prot) = if phys < ram.size() { (phys, prot) } else { (ram.ones_page_offset(), prot.read_only()) };
            self.map_fd(ram, self.kind.base() + WINDOW_SIZE, off, 1, prot)?;
        }
        Ok(())
    }

    fn map_fd(&mut self, ram: &GuestRam, host: u64, offset: u64, pages: u64, prot: Prot) -> Result<(), WindowError> {
        // Small fills are about to be used (a hidden fault asked for one of their pages):
        // populating the host page table now saves a host page fault per page. Large ones
        // (the identity map) are not, which would allocate all of RAM up front.
        #[cfg(test)]
        if tests::REFUSE_MAPS.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(WindowError::Host("mmap into the window", std::io::Error::from_raw_os_error(libc::ENOMEM)));
        }
        let populate = if pages <= POPULATE_MAX_PAGES { libc::MAP_POPULATE } else { 0 };
        // SAFETY: `host..host + pages*4K` lies in the window or its mirror page, which this
        // Window reserved and owns; MAP_FIXED replaces only our own reservation there.
        let p = unsafe {
            libc::mmap(
                host as *mut libc::c_void,
                (pages * PAGE_SIZE) as usize,
                prot.bits(),
                libc::MAP_SHARED | libc::MAP_FIXED | populate,
                ram.fd(),
                offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(WindowError::Host("mmap into the window", std::io::Error::last_os_error()));
        }
        self.stats.mmap_calls += 1;
        self.stats.pages_mapped += pages;
        if let Some(m) = self.mirror.as_mut() {
            m.mapped(host, offset, pages, prot);
        }
        Ok(())
    }

    /// Maps at `linear` a private zero-filled read-write page: the stand-in for a device
    /// page while one instruction runs against it natively (the monitor copies the
    /// device's registers in first and the stores out after). Returns its host address.
    pub fn map_stand_in(&mut self, linear: u32) -> Result<u64, WindowError> {
        let host = self.kind.host_addr(linear & !0xFFF);
        // SAFETY: one page of the window, which this Window owns; anonymous memory that
        // nothing else refers to.
        let p = unsafe {
            libc::mmap(
                host as *mut libc::c_void,
                PAGE_SIZE as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(WindowError::Host("mmap of a device stand-in page", std::io::Error::last_os_error()));
        }
        self.stats.mmap_calls += 1;
        // A copy never holds a stand-in (only translated code runs against one).
        if let Some(m) = self.mirror.as_mut() {
            m.unmapped(host, 1);
        }
        Ok(host)
    }

    /// How many of `pages` pages from `linear` lie below what this window can map.
    fn unmappable_pages(&self, linear: u32, pages: u64) -> u64 {
        let first = self.kind.first_mappable();
        if linear < first { (((first - linear) as u64).div_ceil(PAGE_SIZE)).min(pages) } else { 0 }
    }

    /// Changes the permissions of mapped window pages.
    pub fn protect(&mut self, linear: u32, pages: u64, prot: Prot) -> Result<(), WindowError> {
        let host = self.kind.host_addr(linear);
        // SAFETY: the range lies in the window, which this Window owns.
        if unsafe { libc::mprotect(host as *mut libc::c_void, (pages * PAGE_SIZE) as usize, prot.bits()) } != 0 {
            return Err(WindowError::Host("mprotect in the window", std::io::Error::last_os_error()));
        }
        self.stats.mprotect_calls += 1;
        if let Some(m) = self.mirror.as_mut() {
            m.protected(host, pages, prot);
        }
        if linear == 0 && pages > 0 {
            // SAFETY: the mirror page belongs to this Window too.
            unsafe { libc::mprotect((self.kind.base() + WINDOW_SIZE) as *mut libc::c_void, PAGE_SIZE as usize, prot.bits()) };
            self.stats.mprotect_calls += 1;
            if let Some(m) = self.mirror.as_mut() {
                m.protected(self.kind.base() + WINDOW_SIZE, 1, prot);
            }
        }
        Ok(())
    }

    /// Takes all access to `pages` mapped pages at `linear` away but keeps their mappings,
    /// for [`Window::unpark`] (`Mmu`'s parked pages). A copy drops them.
    pub fn park(&mut self, linear: u32, pages: u64) -> Result<(), WindowError> {
        debug_assert!(linear != 0, "page 0 has a mirror above the window: unmap it");
        let host = self.kind.host_addr(linear);
        // SAFETY: the range lies in the window, which this Window owns.
        if unsafe { libc::mprotect(host as *mut libc::c_void, (pages * PAGE_SIZE) as usize, libc::PROT_NONE) } != 0 {
            return Err(WindowError::Host("mprotect in the window", std::io::Error::last_os_error()));
        }
        self.stats.mprotect_calls += 1;
        if let Some(m) = self.mirror.as_mut() {
            m.unmapped(host, pages);
        }
        Ok(())
    }

    /// Gives the parked pages from `linear` on, whose mappings are of the guest-physical
    /// pages `frames` (page numbers, one per page; the caller knows), access `prot` again:
    /// one host call.
    pub fn unpark(&mut self, linear: u32, frames: &[u64], prot: Prot) -> Result<(), WindowError> {
        let host = self.kind.host_addr(linear);
        let len = frames.len() as u64 * PAGE_SIZE;
        // SAFETY: pages of the window, which this Window owns.
        if unsafe { libc::mprotect(host as *mut libc::c_void, len as usize, prot.bits()) } != 0 {
            return Err(WindowError::Host("mprotect in the window", std::io::Error::last_os_error()));
        }
        self.stats.mprotect_calls += 1;
        if let Some(m) = self.mirror.as_mut() {
            for (i, &f) in frames.iter().enumerate() {
                m.mapped(host + i as u64 * PAGE_SIZE, f << 12, 1, prot);
            }
        }
        Ok(())
    }

    /// Drops the mapping of `pages` pages at `linear`; later accesses fault.
    pub fn unmap(&mut self, linear: u32, pages: u64) -> Result<(), WindowError> {
        if linear == 0 && pages > 0 {
            self.rereserve(self.kind.base() + WINDOW_SIZE, 1)?;
        }
        let skip = self.unmappable_pages(linear, pages);
        if skip < pages {
            self.rereserve(self.kind.host_addr(linear) + skip * PAGE_SIZE, pages - skip)?;
        }
        Ok(())
    }

    fn rereserve(&mut self, host: u64, pages: u64) -> Result<(), WindowError> {
        if let Some(m) = self.mirror.as_mut() {
            if host == self.kind.host_addr(self.kind.first_mappable()) && pages * PAGE_SIZE >= WINDOW_SIZE - host + self.kind.base() {
                m.unmapped_all();
            } else {
                m.unmapped(host, pages);
            }
        }
        // SAFETY: replaces part of our own window with an inaccessible reservation, so the
        // range never becomes free for other host allocations.
        let p = unsafe {
            libc::mmap(
                host as *mut libc::c_void,
                (pages * PAGE_SIZE) as usize,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(WindowError::Host("unmapping window pages", std::io::Error::last_os_error()));
        }
        self.stats.unmap_calls += 1;
        Ok(())
    }

    /// Paging off: maps guest physical memory one to one over the whole RAM, writable;
    /// executable in the user window only (code runs natively from there, never from
    /// the kernel window, which only translated code's data accesses use).
    pub fn map_identity(&mut self, ram: &GuestRam) -> Result<(), WindowError> {
        self.map(ram, 0, 0, ram.size() / PAGE_SIZE, self.identity_prot(true))
    }

    /// What a page of the identity map is mapped with (`write`: writable).
    pub fn identity_prot(&self, write: bool) -> Prot {
        Prot::readable(write, self.kind == WindowKind::User)
    }

    /// Drops every mapping in the window.
    pub fn unmap_all(&mut self) -> Result<(), WindowError> {
        self.unmap(0, WINDOW_SIZE / PAGE_SIZE)
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        let (lo, hi) = self.kind.reservation();
        // SAFETY: releasing exactly the range reserved in `reserve`.
        unsafe { libc::munmap(lo as *mut libc::c_void, (hi - lo) as usize) };
        TAKEN[self.kind.index()].store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::AtomicU64;

    /// The next this many guest-page mappings fail with `ENOMEM`, as when the host is out
    /// of memory or of mappings.
    pub static REFUSE_MAPS: AtomicU64 = AtomicU64::new(0);

    use super::*;

    /// A stub's fault address comes from guest code: whatever it is, it either lies in
    /// the window the stub copies, at the same guest linear address, or is refused (the
    /// copy holds nothing there, and the translator takes the access).
    #[test]
    fn fault_addresses_in_a_copy_map_into_its_window_or_nowhere() {
        let user = WindowKind::User;
        let low = user.base() + user.first_mappable() as u64;
        for w in [user, WindowKind::kernel(0), WindowKind::translated_user(2)] {
            assert_eq!(w.from_copy(low), Some(w.base() + low - user.base()));
            assert_eq!(w.from_copy(user.base() + 0xbfff_f004), Some(w.host_addr(0xbfff_f004)));
            assert_eq!(w.from_copy(user.base() + 0xffff_ffff), Some(w.host_addr(0xffff_ffff)));
            // Below what the host maps, the mirror page above the window, beyond it, and
            // addresses a 64-bit register could hold.
            for refused in [0, low - 1, user.base() + WINDOW_SIZE, user.base() + WINDOW_SIZE + 0x800, 1 << 47, u64::MAX] {
                assert_eq!(w.from_copy(refused), None, "{w:?} {refused:#x}");
            }
        }
    }
}
