//! The shadow MMU: keeps the windows a faithful (virtual-TLB) image of the guest's page
//! tables, and gives the monitor guest-linear memory access with the same semantics.
//!
//! With paging off the user window and the kernel window in use map RAM one to one. With paging on they start empty; a
//! host fault on a window address ([`Mmu::on_host_fault`], called from the signal
//! handler) walks the guest's tables and, when they map the page for that window's
//! privilege, sets the accessed/dirty bits as hardware would and maps it ("hidden
//! fault") — read-only until the guest's dirty bit is set, and read-only for pages that
//! hold translated code or are mapped natively executable (W^X per frame, see
//! [`Mmu::prot_for`]) — then the faulting instruction simply runs again. Anything else (a
//! true guest #PF, a write to a code page or to a natively executable frame, unbacked
//! memory) is left to the run loop ([`Mmu::resolve_fault`]). Neighbouring pages of the
//! same page table that the guest has already accessed are mapped in the same host call.
//! `invlpg` drops one page (or one 4 MiB page); a switch to another address space parks
//! the non-global pages (inaccessible, their host mappings kept for a fault that finds the
//! same frame); a flush of the tables in use (a CR3 reload, a CR4.PGE or CR0.WP toggle)
//! takes away only what the guest changed in them, found by comparing the entries the
//! mappings were checked against (`derived`); other paging-mode changes check every
//! mapping with a walk ([`Mmu::revalidate`]).
//!
//! Kernel windows: a context switch back to a process used to refill, with a host fault
//! and usually a new mapping each, every page the kernel touched of it (its stack, the
//! buffers of its system calls) that the process in between mapped to other frames at
//! the same addresses. So each recently used address space (by CR3 value) keeps a kernel
//! window of its own ([`Mmu::add_kernel_windows`]): a CR3 write to another address space
//! makes its window the one in use (the monitor points GS there) and compares the tables
//! its mappings were derived from with the tables now (`derived`, one record per window),
//! keeping what is unchanged — it missed the `invlpg`s made meanwhile — or, when no window
//! holds it, takes the one that parked its pages when another address space took it over
//! (else the one used longest ago), parks what that one had of its old address space's
//! own pages (as a single window always did) and compares the rest. Translated user code
//! gets the same: a user window per address space that goes with its kernel window
//! ([`Mmu::add_translated_user_windows`]). With the sandbox, directly executed code runs
//! from those windows too, each copied by a stub process of its own, so a switch back to
//! a process finds its pages mapped there as well. Run in this process, directly executed
//! code needs the user window at host 0, which stays one; a switch parks its non-global
//! pages.
//!
//! The windows are a cache with a budget of host mappings (VMAs): the host allows a
//! process `vm.max_map_count` of them (65530 by default), read once when the MMU is made,
//! less those bt86 itself uses then and a margin for what it maps later (translation
//! cache, allocator). The shadow counts the VMAs the windows use as the host makes them
//! (a guest-contiguous run of pages that is contiguous in guest RAM and has one
//! permission is one VMA, however long: a 4 MiB page or a linear kernel map costs one,
//! not a thousand). Before a fill would go over the budget, the oldest fills are evicted
//! (a clock over fills in fill order; one the guest used since, by writing to it or
//! running code from it, gets a second chance) until an eighth of the budget is free
//! again, so the cost of touching more pages than fit grows with the pages touched, with
//! no cliff. If the host refuses a mapping anyway (`ENOMEM`: the limit was reached by
//! other means, or the host is out of memory), the budget is lowered to what the windows
//! use, half of that is evicted and the call retried; only if that fails too does the fill
//! fail, with [`WindowError::Exhausted`], which stops the guest with that message.
//!
//! `BT86_MAX_MAPPINGS=N` in the environment lowers the budget to `N` VMAs (at least
//! [`MIN_BUDGET`]), to test eviction, or to leave the host's mappings to others.
//! `BT86_CHECK_FLUSHES=1` checks every mapping a flush keeps with a walk (slow; a
//! debugging aid, see [`Mmu::check_kept`]).
//!
//! Eviction runs where fills run, in the signal handler of a hidden fault. Like the rest
//! of the fill path (the shadow's hash maps) it may free and allocate heap memory there;
//! that is safe here because the faults it handles come from guest code, never from the
//! monitor in the middle of an allocation. It makes only `mmap` calls otherwise.

use crate::derived::Source;
use crate::mirror::MirrorChanges;
use crate::ram::GuestRam;
use crate::shadow::{Entry, Fill, Shadow};
use crate::soft_tlb::SoftTlb;
use crate::walk::{self, Translation};
use crate::window::{Prot, Window, WindowError, WindowKind, WindowStats, locate};
use crate::{PAGE_SIZE, WINDOW_SIZE};

use crate::walk::PageFault;
pub use crate::walk::{Access, PagingRegs};

/// The smallest VMA budget of the windows (`BT86_MAX_MAPPINGS` cannot go lower): enough
/// for every page one instruction touches, many times over.
pub const MIN_BUDGET: usize = 64;
/// VMAs one fill may add at most: its run splits a reservation in three, the mirror of
/// page 0 does the same above the window, and a stand-in device page.
const FILL_HEADROOM: usize = 8;
/// Most neighbouring pages mapped along with a faulting one.
const BATCH: u32 = 256;
/// Most runs of neighbours elsewhere in guest RAM mapped along with a faulting page (a
/// host call each).
const SCATTER_RUNS: u32 = 15;

/// Shadow-MMU counters, for `--stats`.
#[derive(Clone, Copy, Debug, Default)]
pub struct MmuStats {
    /// Faults filled by a walk without guest involvement.
    pub hidden_faults: u64,
    /// Faults that were the guest's own (#PF delivered).
    pub true_faults: u64,
    /// Pages mapped by fills (including batched neighbours).
    pub pages_filled: u64,
    /// Read-only mappings made writable on the first write (dirty bit).
    pub dirty_upgrades: u64,
    /// `invlpg` flushes.
    pub invlpg_flushes: u64,
    /// CR3 writes (non-global flushes).
    pub cr3_flushes: u64,
    /// Flushes of everything, global pages too, with paging staying on (CR0.WP, CR4.PSE
    /// or PGE, EFER.NXE changed).
    pub mode_flushes: u64,
    /// Mappings flushes checked against the guest's tables one by one: at a flush of the
    /// tables in use (a CR3 reload, a CR4.PGE or CR0.WP toggle) only those whose guest
    /// entries changed (see `derived`), at other paging-mode changes all.
    pub flush_pages_checked: u64,
    /// Of those, the pages found still true and kept mapped.
    pub pages_revalidated: u64,
    /// Mappings found stale after a flush that kept them (counted with
    /// `BT86_CHECK_FLUSHES` only; never more than zero unless bt86 has a bug).
    pub stale_after_flush: u64,
    /// CR3 writes of the value it held (a TLB flush of the same address space), whose
    /// mappings were checked against the tables rather than all taken away.
    pub cr3_reloads_revalidated: u64,
    /// CR3 writes that switched back to an address space whose kernel window was kept:
    /// its mappings checked by comparing tables, not filled again.
    pub kernel_window_returns: u64,
    /// CR3 writes to an address space no kernel window held: the one used longest ago
    /// took it.
    pub kernel_window_reuses: u64,
    /// Whole-window flushes (paging-mode changes, window full).
    pub full_flushes: u64,
    /// Pages mapped ahead of an access, saving its hidden fault: at `invlpg` of a
    /// mapped page whose new translation is already accessed, and after a true #PF
    /// once the guest's handler has made the page present (see [`Mmu::prefill`]).
    pub prefills: u64,
    /// Pages a CR3 write parked (see [`crate::shadow::Shadow`]).
    pub parked: u64,
    /// Parked pages given their access back, mapping the same frame: an `mprotect`
    /// instead of a new mapping.
    pub unparked: u64,
    /// Evictions: times the windows reached their VMA budget and old fills were dropped.
    pub evictions: u64,
    /// Fills dropped by evictions.
    pub fills_evicted: u64,
    /// Pages dropped by evictions.
    pub pages_evicted: u64,
    /// Host calls refused for lack of memory or mappings (`ENOMEM`), each followed by an
    /// eviction and a retry.
    pub host_refusals: u64,
    /// The most host VMAs the windows used at once.
    pub vma_peak: u64,
    /// The windows' VMA budget (see the module comment).
    pub vma_budget: u64,
    /// Writable mappings made read-only because their frame was mapped natively
    /// executable elsewhere (W^X per frame).
    pub native_write_protects: u64,
    /// Writes to natively executable frames (through any mapping, or by the monitor):
    /// each took the frame's execute permission away, so its next native fetch checks
    /// its bytes again.
    pub native_code_writes: u64,
    /// The host's `vm.max_map_count`.
    pub max_map_count: u64,
}

/// What the signal handler should do about a host fault in a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostFault {
    /// The page was filled: run the faulting instruction again.
    Filled,
    /// The run loop must decide ([`Mmu::resolve_fault`]).
    Exit,
}

/// What a window fault turned out to be, in the run loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Filled now: run the instruction again.
    Handled,
    /// The guest's own page fault.
    GuestFault(PageFault),
    /// A write to a page that holds translated code (guest-physical page number).
    CodeWrite(u64),
    /// An instruction fetch by directly executed code from a page whose code must run
    /// through the translator (it holds an instruction of [`NEVER_NATIVE`], or is not
    /// RAM).
    Translate,
    /// An access the instruction cannot make natively, at this guest-physical address: to
    /// device memory, or a store to unbacked memory (which a PC drops). The instruction
    /// must be emulated.
    Emulate(u64),
}

/// The most mapped pages a paging-mode flush (CR0.WP, CR4.PGE, ...) checks against the
/// guest's tables one by one, keeping those still true ([`Mmu::revalidate`]); with more
/// it empties the windows, as refilling what the guest uses next costs less than walking
/// all of them. (A walk costs ~60 ns here, a refill a host signal and a mapping, ~8 µs.)
const REVALIDATE_MAX: usize = 4096;

/// The mappings of one window checked against the guest's tables by a flush (see
/// [`Mmu::revalidate`]): what stays, what goes.
struct Check {
    shift: u32,
    /// The regions visited, found through an index by region number (a hash lookup per
    /// page costs more than the rest of the check).
    regions: Vec<RegionSeen>,
    region_index: Vec<u16>,
    /// Pages whose mappings are no longer true.
    dropped: Vec<u32>,
    /// Pages kept whose G bit changed.
    flips: Vec<(u32, bool)>,
    /// Pages kept, and whether they are writable only because CR0.WP is clear (their
    /// entries may have changed since that was noted).
    wp: Vec<(u32, bool)>,
    /// Large pages seen (first page checked, its walk).
    large: Vec<(u32, Translation)>,
    /// Pages kept.
    kept: u64,
    /// Pages kept, with their walks, when the caller needs them.
    kept_walks: Vec<(u32, Translation)>,
    keep_walks: bool,
}

/// What [`Check`] found of a region at its first page.
#[derive(Clone, Copy)]
struct RegionSeen {
    /// The table its PDE points to now.
    table: u64,
    /// A large page: the page walked and its walk, which gives every other page's.
    large: Option<(u32, Translation)>,
    /// The PDE is accessed.
    pde_accessed: bool,
}

impl Check {
    fn new(shift: u32) -> Check {
        Check {
            shift,
            regions: Vec::new(),
            region_index: vec![u16::MAX; 1 << (20 - shift)],
            dropped: Vec::new(),
            flips: Vec::new(),
            wp: Vec::new(),
            large: Vec::new(),
            kept: 0,
            kept_walks: Vec::new(),
            keep_walks: false,
        }
    }

    /// Checks mapped page `p` of window `w` (entry `e`) against the guest's tables.
    fn page(&mut self, m: &Mmu, w: WindowKind, p: u32, e: &Entry) {
        let slot = &mut self.region_index[(p >> self.shift) as usize];
        let known = self.regions.get(*slot as usize).copied();
        if known.is_some_and(|r| r.table != e.table) {
            self.dropped.push(p);
            return;
        }
        let t = match known.and_then(|r| r.large) {
            Some((p0, t0)) => Translation { phys_page: t0.phys_page.wrapping_add((p.wrapping_sub(p0) as i32 as i64 as u64) << 12), ..t0 },
            None => match walk::walk(&m.ram, &m.regs, p << 12, Access::data(false, w.is_user())) {
                Ok(t) => t,
                Err(_) => {
                    self.dropped.push(p);
                    return;
                }
            },
        };
        let pde_accessed = match known {
            Some(r) => r.pde_accessed,
            None => {
                let accessed = t.large || m.ram.read_u32(t.pde_addr) & walk::pte::A != 0;
                *slot = self.regions.len() as u16;
                self.regions.push(RegionSeen { table: t.leaf_addr >> 12, large: t.large.then_some((p, t)), pde_accessed: accessed });
                if t.large {
                    self.large.push((p, t));
                }
                accessed
            }
        };
        if !pde_accessed || !m.still_true(w, e, &t) {
            self.dropped.push(p);
            return;
        }
        self.kept += 1;
        if t.g_bit != e.global {
            self.flips.push((p, t.g_bit));
        }
        self.wp.push((p, e.prot.writable() && !t.writable));
        if self.keep_walks {
            self.kept_walks.push((p, t));
        }
    }
}

/// Guest memory and the shadow MMU.
pub struct Mmu {
    /// Guest RAM.
    pub ram: GuestRam,
    /// The windows, by [`WindowKind::index`]: the user window, then the kernel windows.
    windows: Vec<Window>,
    /// The kernel window in use, the user window translated user code uses (one of those
    /// that go with the kernel windows, or the user window), and per kernel window the
    /// address space it holds.
    kernel: WindowKind,
    user: WindowKind,
    spaces: Vec<KernelSpace>,
    /// Counts CR3 writes, to find the kernel window used longest ago.
    clock: u64,
    /// Each address space has a user window of its own for translated user code
    /// ([`Mmu::add_translated_user_windows`]).
    translated_user_windows: bool,
    /// Those windows serve directly executed code too (in copies of them: the sandbox's
    /// stubs), and the user window at host 0 none.
    native_user_windows: bool,
    shadow: Shadow,
    regs: PagingRegs,
    /// The window and linear address of the last true #PF, for [`Mmu::prefill`].
    /// The last true #PF: window, linear address, whether it was a write, and CR3.
    faulted: Option<(WindowKind, u32, bool, u32)>,
    /// Translations of the monitor's own accesses.
    tlb: SoftTlb,
    /// Code pages the monitor (or the MMU's own A/D updates) wrote, for the run loop to
    /// invalidate.
    pub dirty_code: Vec<u64>,
    /// Code pages write-protected so far.
    pub pages_protected: u64,
    /// Guest-physical page numbers that belong to devices: never mapped.
    device_pages: rustc_hash::FxHashSet<u64>,
    /// The linear regions (page number >> [`PagingRegs::table_shift`]) where a large
    /// (4 MiB or 2 MiB) translation was used since the last flush that dropped it, by a
    /// fill or by the monitor's own accesses (code fetches for translation included), and
    /// whether one was global. An `invlpg` anywhere in such a region drops all of it, as
    /// it drops every TLB entry of the page on a CPU: the page's own 4 KiB piece may be
    /// unmapped while others are (a page holding translated code, or one with other
    /// permissions, splits a large page's fill), or only translated code may come from it.
    large_regions: rustc_hash::FxHashMap<u32, bool>,
    /// The second bytes of the `0F xx` instructions that must never run natively (see
    /// [`Mmu::set_never_native`]).
    never_native: Vec<u8>,
    /// The windows' VMA budget.
    budget: usize,
    /// `BT86_CHECK_FLUSHES`: after every flush that keeps mappings, walk all of them and
    /// report any the guest's tables no longer give (see [`Mmu::check_kept`]).
    check_flushes: bool,
    stats: MmuStats,
}

/// A few windows (those in use, or an address space's), by value.
#[derive(Clone, Copy)]
struct Active {
    w: [WindowKind; 3],
    n: usize,
}

impl std::ops::Deref for Active {
    type Target = [WindowKind];
    fn deref(&self) -> &[WindowKind] {
        &self.w[..self.n]
    }
}

impl IntoIterator for Active {
    type Item = WindowKind;
    type IntoIter = std::iter::Take<std::array::IntoIter<WindowKind, 3>>;
    fn into_iter(self) -> Self::IntoIter {
        self.w.into_iter().take(self.n)
    }
}

/// What a kernel window holds: the mappings of the address space whose page directory
/// is at `cr3` (None: nothing of one), last used at CR3 write number `used`, and parked
/// pages of the address spaces it held before (the last few, most recent first).
#[derive(Clone, Copy, Debug, Default)]
struct KernelSpace {
    cr3: Option<u32>,
    used: u64,
    parked_from: [Option<u32>; 4],
}

/// The host's `vm.max_map_count`, the VMAs this process maps now, and the windows'
/// budget derived from them (and `BT86_MAX_MAPPINGS`). Reads `/proc`: never from the
/// signal handler.
fn mapping_budget() -> (usize, usize) {
    let max_map_count: usize =
        std::fs::read_to_string("/proc/sys/vm/max_map_count").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(65530);
    // What the process maps besides the windows (binary, libraries, heap, stacks,
    // translation cache), and room for more later: large allocations are mappings of
    // their own, and their number grows with the guest's (the shadow's tables, the
    // translator's).
    let own = std::fs::read_to_string("/proc/self/maps").map(|s| s.lines().count()).unwrap_or(1000);
    let derived = max_map_count.saturating_sub(own + 1024 + max_map_count / 16);
    let asked = std::env::var("BT86_MAX_MAPPINGS").ok().and_then(|s| s.trim().parse::<usize>().ok());
    (max_map_count, asked.map_or(derived, |n| n.min(derived)).max(MIN_BUDGET))
}

/// The instructions that directly executed code must never run on the host CPU unless the
/// host can be made to trap them, by their second byte after 0F: `sysenter` (0F 34: the
/// host kernel's SYSENTER path loses guest registers), `syscall` (0F 05: on AMD it enters
/// the host kernel from compatibility mode and ECX is lost, where the virtual CPU, which
/// has no SYSCALL, must raise #UD), and `cpuid` (0F A2: the host's answer, not the
/// virtual CPU's).
pub const NEVER_NATIVE: [u8; 3] = [second_byte::SYSENTER, second_byte::SYSCALL, second_byte::CPUID];

/// The second bytes (after 0F) of the instructions in [`NEVER_NATIVE`].
pub mod second_byte {
    /// `sysenter` (0F 34).
    pub const SYSENTER: u8 = 0x34;
    /// `syscall` (0F 05).
    pub const SYSCALL: u8 = 0x05;
    /// `cpuid` (0F A2).
    pub const CPUID: u8 = 0xA2;
}

fn page_of(linear: u32) -> u32 {
    linear >> 12
}

impl Mmu {
    /// Guest memory over `ram` with paging off (both windows map RAM one to one), with one
    /// kernel window (see [`Mmu::add_kernel_windows`]).
    pub fn new(ram: GuestRam, user: Window, kernel: Window) -> Result<Mmu, WindowError> {
        assert!(user.kind() == WindowKind::User && kernel.kind() == WindowKind::Kernel);
        let ram_pages = ram.size() / PAGE_SIZE;
        let mut m = Mmu {
            ram,
            windows: vec![user, kernel],
            kernel: WindowKind::Kernel,
            user: WindowKind::User,
            spaces: vec![KernelSpace::default()],
            clock: 0,
            translated_user_windows: false,
            native_user_windows: false,
            shadow: Shadow::new(ram_pages),
            regs: PagingRegs::default(),
            faulted: None,
            tlb: SoftTlb::default(),
            dirty_code: Vec::new(),
            pages_protected: 0,
            device_pages: Default::default(),
            large_regions: Default::default(),
            never_native: NEVER_NATIVE.to_vec(),
            budget: 0,
            check_flushes: std::env::var("BT86_CHECK_FLUSHES").is_ok_and(|v| !v.is_empty() && v != "0"),
            stats: MmuStats::default(),
        };
        let (max_map_count, budget) = mapping_budget();
        m.stats.max_map_count = max_map_count as u64;
        m.set_mapping_budget(budget);
        m.map_identity()?;
        Ok(m)
    }

    fn map_identity(&mut self) -> Result<(), WindowError> {
        for w in self.active() {
            self.windows[w.index()].map_identity(&self.ram)?;
        }
        let codes: Vec<u64> = self.shadow.code_pages.iter().copied().collect();
        for p in codes {
            self.protect_identity(p, false);
        }
        Ok(())
    }

    /// Paging off: makes identity-mapped page `page` writable or read-only.
    fn protect_identity(&mut self, page: u64, write: bool) {
        if page < self.ram.size() / PAGE_SIZE {
            for k in self.active() {
                let w = &mut self.windows[k.index()];
                let prot = w.identity_prot(write);
                if let Err(e) = w.protect((page << 12) as u32, 1, prot) {
                    log::error!("cannot change protection of page {page:#x}: {e}");
                }
            }
        }
    }

    /// The paging registers the MMU follows.
    pub fn regs(&self) -> PagingRegs {
        self.regs
    }

    /// Counters.
    pub fn stats(&self) -> MmuStats {
        self.stats
    }

    /// Sets the windows' VMA budget (at least [`MIN_BUDGET`]); evicts down to it.
    pub fn set_mapping_budget(&mut self, vmas: usize) {
        self.budget = vmas.max(MIN_BUDGET);
        self.stats.vma_budget = self.budget as u64;
        if self.shadow.vmas() + FILL_HEADROOM > self.budget {
            self.evict_to(self.low_water());
        }
    }

    /// The host VMAs the windows use now (as the shadow counts them).
    pub fn vmas(&self) -> usize {
        self.shadow.vmas()
    }

    /// What an eviction brings the windows' VMAs down to: an eighth of the budget free,
    /// so that evictions are rare and each drops many fills.
    fn low_water(&self) -> usize {
        (self.budget - self.budget / 8).saturating_sub(FILL_HEADROOM)
    }

    /// Evicts the oldest fills until the windows use at most `target` VMAs. A fill the
    /// guest used since its last pass gets a second chance (once per fill and pass). If
    /// that is not enough (a few long-lived fills split by many others), all windows are
    /// emptied.
    fn evict_to(&mut self, target: usize) {
        self.stats.evictions += 1;
        let mut second_chances = self.shadow.fill_count();
        while self.shadow.vmas() > target {
            let Some(mut f) = self.shadow.pop_fill() else { break };
            if f.referenced && second_chances > 0 {
                second_chances -= 1;
                f.referenced = false;
                self.shadow.push_fill(f);
                continue;
            }
            self.drop_fill(&f);
        }
        if self.shadow.vmas() > target {
            self.stats.full_flushes += 1;
            for w in self.all_windows() {
                let runs = self.shadow.take_all(w);
                self.unmap_runs(w, &runs);
            }
        }
    }

    /// Unmaps the pages of fill `f` that are still its own, in runs, without allocating.
    fn drop_fill(&mut self, f: &Fill) {
        self.stats.fills_evicted += 1;
        let mut run: Option<(u32, u64)> = None;
        for p in f.first..f.first + f.n {
            if self.shadow.stamp_of(f.w, p) == Some(f.stamp) {
                if self.shadow.remove(f.w, p).is_none() {
                    self.shadow.unpark(f.w, p);
                }
                self.stats.pages_evicted += 1;
                run = Some(run.map_or((p, 1), |(s, n)| (s, n + 1)));
            } else if let Some(r) = run.take() {
                self.unmap_runs(f.w, &[r]);
            }
        }
        if let Some(r) = run {
            self.unmap_runs(f.w, &[r]);
        }
    }

    /// Makes room for one more fill if the windows are at their budget.
    fn make_room(&mut self) {
        if self.shadow.vmas() + FILL_HEADROOM > self.budget {
            self.evict_to(self.low_water());
        }
    }

    /// After the host refused a mapping: the budget becomes three quarters of what the
    /// windows use now (the host's limit is lower than it was thought to be), and the
    /// windows are evicted down to half of that.
    fn host_refused(&mut self) {
        self.stats.host_refusals += 1;
        let vmas = self.shadow.vmas();
        self.budget = self.budget.min(vmas - vmas / 4).max(MIN_BUDGET);
        self.stats.vma_budget = self.budget as u64;
        self.evict_to((self.budget / 2).min(self.low_water()));
    }

    /// Host-call counters of all windows.
    pub fn window_stats(&self) -> WindowStats {
        let mut s = WindowStats::default();
        for w in &self.windows {
            s.add(&w.stats());
        }
        s
    }

    /// Counts a guest page fault (delivered by the monitor).
    pub fn count_true_fault(&mut self) {
        self.stats.true_faults += 1;
    }

    /// Follows a change of CR0, CR3 or CR4 (`cr3_written`: a CR3 load happened, which
    /// flushes even when the value is unchanged). Returns what was flushed, for the
    /// translator's cross-page links: `None`, `Some(false)` (non-global pages),
    /// `Some(true)` (everything).
    pub fn set_regs(&mut self, new: PagingRegs, cr3_written: bool) -> Option<bool> {
        let old = self.regs;
        self.regs = new;
        const CR0_BITS: u32 = (1 << 31) | (1 << 16);
        // PSE, PAE, PGE; and EFER.NXE, which changes what a fetch may do.
        const CR4_BITS: u32 = (1 << 4) | (1 << 5) | (1 << 7);
        const EFER_BITS: u32 = 1 << 11;
        if old.paging() != new.paging()
            || (old.cr0 ^ new.cr0) & CR0_BITS != 0
            || (old.cr4 ^ new.cr4) & CR4_BITS != 0
            || (old.efer ^ new.efer) & EFER_BITS != 0
        {
            self.tlb.flush(false);
            let same_tables = old.paging() && new.paging() && old.cr3 == new.cr3 && old.efer == new.efer;
            let only_pge = same_tables && old.cr0 == new.cr0 && old.cr4 ^ new.cr4 == 1 << 7;
            let only_wp = same_tables && old.cr4 == new.cr4 && old.cr0 ^ new.cr0 == 1 << 16;
            if only_pge || only_wp {
                // CR4.PGE or CR0.WP: a flush of everything, global pages too. Neither
                // changes a translation (entries keep the G bit itself), so only what the
                // guest changed since goes; and with WP set, kernel mappings made writable
                // through read-only entries while it was clear.
                self.stats.mode_flushes += 1;
                self.flush_changed(&self.active());
                if only_wp && new.write_protect() {
                    // (In every kernel window: a comparison of the tables would not find them.)
                    let pages = self.shadow.take_wp_writable();
                    for w in self.all_windows() {
                        let pages: Vec<u32> =
                            pages.iter().filter(|&&(pw, p)| pw == w && self.shadow.get(w, p).is_some()).map(|&(_, p)| p).collect();
                        self.park_or_drop(w, pages);
                    }
                }
                self.check_kept("a CR4.PGE or CR0.WP toggle", &self.active());
                return Some(true);
            }
            if old.paging() && new.paging() && old.pae() == new.pae() && self.shadow.mapped() <= REVALIDATE_MAX {
                // CR0.WP, CR4.PSE or PGE, EFER.NXE: a flush of everything, global pages
                // too, but mappings that are still true stay.
                self.stats.mode_flushes += 1;
                // (The large pages kept are noted again, as fills of now.)
                self.large_regions.clear();
                for w in self.active() {
                    self.revalidate(w, true);
                }
                self.empty_other_kernel_windows();
                return Some(true);
            }
            self.flush_all();
            self.shadow.derived.set_shift(new.table_shift());
            if new.paging() {
                self.spaces[self.kernel.index() - 1].cr3 = Some(new.cr3);
            }
            if !new.paging()
                && let Err(e) = self.map_identity()
            {
                log::error!("cannot map guest memory one to one: {e}");
            }
            return Some(true);
        }
        if new.paging() && cr3_written {
            self.tlb.flush(true);
            self.stats.cr3_flushes += 1;
            // (Without CR4.PGE no page is global.)
            let global = !new.pge();
            if old.cr3 == new.cr3 {
                // The same tables again (how an OS flushes its TLB): only what the guest
                // changed in them since goes.
                self.stats.cr3_reloads_revalidated += 1;
                self.flush_changed(&self.active());
                self.check_kept("a CR3 reload", &self.active());
                return Some(false);
            }
            if self.spaces.len() == 1 {
                // (With more kernel windows, one switched back to may hold large pages of
                // its address space: their regions stay noted.)
                self.large_regions.retain(|_, g| *g && !global);
            }
            // Another address space: its tables share little with the last one's but the
            // kernel's global pages, which stay, and a walk per page would cost a context
            // switch what its predecessor left mapped. The rest stays in the host's
            // mappings, inaccessible: parked (see `Shadow`).
            self.park_space(WindowKind::User, global);
            self.switch_kernel_window(new.cr3, global);
            return Some(false);
        }
        None
    }

    /// The windows guest code may use now: the user window, the kernel window in use and
    /// the user window of translated code that goes with it (if it is another).
    fn active(&self) -> Active {
        let n = if self.user == WindowKind::User { 2 } else { 3 };
        Active { w: [WindowKind::User, self.kernel, self.user], n }
    }

    /// The windows of address space number `i`: its kernel window and the user window of
    /// its translated user code (the user window itself if there are none).
    fn space_windows(&self, i: usize) -> Active {
        let k = WindowKind::kernel(i);
        if self.translated_user_windows {
            Active { w: [k, WindowKind::translated_user(i), k], n: 2 }
        } else {
            Active { w: [k, k, k], n: 1 }
        }
    }

    /// Every window reserved.
    fn all_windows(&self) -> Vec<WindowKind> {
        (0..self.windows.len()).map(|i| self.windows[i].kind()).collect()
    }

    /// The kernel window in use: translated kernel code must address it (GS base).
    pub fn kernel_window(&self) -> WindowKind {
        self.kernel
    }

    /// The window translated code at privilege level `cpl` uses now.
    pub fn window_for_cpl(&self, cpl: u8) -> WindowKind {
        if cpl == 3 { self.user } else { self.kernel }
    }

    /// The user window translated user code uses now (its GS base).
    pub fn translated_user_window(&self) -> WindowKind {
        self.user
    }

    /// The window directly executed user code of the address space in use runs from:
    /// that of its translated user code when those serve directly executed code too
    /// ([`Mmu::add_translated_user_windows`]), else the user window at host 0.
    pub fn native_window(&self) -> WindowKind {
        if self.native_user_windows { self.user } else { WindowKind::User }
    }

    /// True if directly executed code may run from window `w`'s pages (see
    /// [`Mmu::native_window`]).
    fn serves_native_code(&self, w: WindowKind) -> bool {
        if self.native_user_windows { w.is_user() && w != WindowKind::User } else { w == WindowKind::User }
    }

    /// Adds kernel windows up to `n` (at most [`crate::window::KERNEL_WINDOWS`]), so that
    /// the kernel-window mappings of up to `n` address spaces are kept across CR3
    /// switches. Only while paging is off. On an error the windows reserved so far stay.
    pub fn add_kernel_windows(&mut self, n: usize) -> Result<(), WindowError> {
        assert!(!self.regs.paging());
        for i in self.spaces.len()..n.min(crate::window::KERNEL_WINDOWS) {
            self.windows.push(Window::reserve(WindowKind::kernel(i))?);
            self.spaces.push(KernelSpace::default());
            self.shadow.add_window();
        }
        Ok(())
    }

    /// Gives each address space a user window of its own for translated user code too,
    /// so that a process switched back to finds what its translated code touched still
    /// mapped. `native`: directly executed code runs from them too, in a copy of each made
    /// in another process (the sandbox's stub of that address space; each window records
    /// its changes for it, see `mirror`), and the user window at host 0 serves nothing;
    /// else directly executed code keeps that one (it runs in this process, whose segments
    /// are based at 0). After [`Mmu::add_kernel_windows`], while paging is off. On an
    /// error the user window serves all user code, as before.
    pub fn add_translated_user_windows(&mut self, native: bool) -> Result<(), WindowError> {
        assert!(!self.regs.paging() && !self.translated_user_windows);
        // (The windows are by index: the kernel windows' places are filled up to the
        // most there can be first, with windows that stay unused.)
        let mut reserved = Vec::new();
        for i in 0..self.spaces.len() {
            reserved.push(Window::reserve(WindowKind::translated_user(i))?);
        }
        while self.windows.len() < 1 + crate::window::KERNEL_WINDOWS {
            let i = self.windows.len() - 1;
            self.windows.push(Window::reserve(WindowKind::kernel(i))?);
            self.shadow.add_window();
        }
        for mut w in reserved {
            if native {
                // (From the start: the identity map below is a change like any other.)
                w.start_mirror();
            }
            self.windows.push(w);
            self.shadow.add_window();
        }
        if native {
            self.windows[WindowKind::User.index()].stop_mirror();
        }
        self.translated_user_windows = true;
        self.native_user_windows = native;
        self.user = WindowKind::translated_user(self.kernel.index() - 1);
        self.windows[self.user.index()].map_identity(&self.ram)
    }

    /// How many kernel windows there are.
    pub fn kernel_windows(&self) -> usize {
        self.spaces.len()
    }

    /// Parks the non-global pages of window `w` (all of them if `global`).
    fn park_space(&mut self, w: WindowKind, global: bool) {
        let mut pages: Vec<u32> = Vec::with_capacity(self.shadow.count(w, global));
        self.shadow.for_each(w, global, |p, _| pages.push(p));
        pages.sort_unstable();
        self.park_or_drop(w, pages);
    }

    /// A CR3 write switched to the address space at `cr3`: the kernel window that holds it
    /// becomes the one in use, checked against the tables as they are now (it missed the
    /// flushes made while another was in use), or the one used longest ago takes it,
    /// parking what its last address space had of its own (`global`: all of it).
    fn switch_kernel_window(&mut self, cr3: u32, global: bool) {
        self.clock += 1;
        let was = self.kernel;
        if let Some(i) = self.spaces.iter().position(|s| s.cr3 == Some(cr3)) {
            let ws = self.space_windows(i);
            self.spaces[i].used = self.clock;
            self.use_space(i);
            if ws[0] != was {
                self.stats.kernel_window_returns += 1;
                self.flush_changed(&ws);
                for &w in ws.iter() {
                    self.note_large_regions(w);
                }
                self.check_kept("a switch back to an address space's windows", &ws);
            }
            return;
        }
        // The window that parked this address space's pages when another took it over, so
        // that they come back with an `mprotect`; else the one used longest ago.
        let i =
            self.spaces.iter().position(|s| s.parked_from.contains(&Some(cr3))).unwrap_or_else(|| {
                (0..self.spaces.len()).min_by_key(|&i| (self.spaces[i].cr3.is_some(), self.spaces[i].used)).unwrap_or(0)
            });
        let ws = self.space_windows(i);
        let s = &mut self.spaces[i];
        if let Some(old) = s.cr3 {
            s.parked_from.copy_within(0..3, 1);
            s.parked_from[0] = Some(old);
        }
        s.parked_from.iter_mut().filter(|c| **c == Some(cr3)).for_each(|c| *c = None);
        s.cr3 = Some(cr3);
        s.used = self.clock;
        self.use_space(i);
        for &w in ws.iter() {
            self.park_space(w, global);
        }
        if ws[0] != was {
            // Its global pages missed the flushes made while another window was in use.
            self.flush_changed(&ws);
            for &w in ws.iter() {
                self.note_large_regions(w);
            }
            self.stats.kernel_window_reuses += 1;
            self.check_kept("a switch to another address space", &ws);
        }
    }

    /// Makes the windows of address space number `i` the ones in use.
    fn use_space(&mut self, i: usize) {
        let ws = self.space_windows(i);
        self.kernel = ws[0];
        self.user = if self.translated_user_windows { ws[1] } else { WindowKind::User };
    }

    /// Notes the large pages window `w` maps (see `large_regions`), as if global, so that
    /// an `invlpg` anywhere in one drops all of it.
    fn note_large_regions(&mut self, w: WindowKind) {
        for key in self.shadow.derived.large_regions(w) {
            self.large_regions.insert(key, true);
        }
    }

    /// Empties the kernel windows not in use (a paging-mode change no comparison of the
    /// tables would find).
    fn empty_other_kernel_windows(&mut self) {
        for i in 0..self.spaces.len() {
            if WindowKind::kernel(i) != self.kernel {
                for &w in self.space_windows(i).iter() {
                    let runs = self.shadow.take_all(w);
                    self.unmap_runs(w, &runs);
                }
                self.spaces[i] = KernelSpace::default();
            }
        }
    }

    /// Takes pages `pages` (ascending) of window `w` away: parked, so that a fault that
    /// finds the same frame there takes them back with one `mprotect`; a page 0 is
    /// unmapped instead (its mirror above the window would stay accessible).
    fn park_or_drop(&mut self, w: WindowKind, mut pages: Vec<u32>) {
        if pages.first() == Some(&0) {
            let runs = self.shadow.take_pages(w, &[0]);
            self.unmap_runs(w, &runs);
            pages.remove(0);
        }
        self.stats.parked += pages.len() as u64;
        let runs = self.shadow.park_pages(w, &pages);
        self.park_runs(w, &runs);
    }

    /// A TLB flush of the mapped pages of window `w` (`global`: all of them, else the
    /// non-global ones), against the guest's tables as they are now: what a new fill would
    /// map the same way stays mapped, the rest is parked (a later fault that finds the same
    /// frame, say with a permission changed, takes it back with one `mprotect`). After a
    /// flush, hardware walks the tables again at the next access, and sets accessed (and
    /// for a write, dirty) bits; a mapping kept is invisible to the guest only if that
    /// access would change nothing, so it stays only if its PDE and leaf entry are already
    /// accessed, a writable one only if the leaf is dirty, and never with wider permissions
    /// than the tables give now. Pages are visited in order, one region (a page table's
    /// worth) after the other: pages of a region whose PDE points to another table now are
    /// dropped without a walk, the pages of a large page share one walk, and the PDE's
    /// accessed bit is read once per region.
    fn revalidate(&mut self, w: WindowKind, global: bool) {
        let mut check = Check::new(self.regs.table_shift());
        self.shadow.for_each(w, global, |p, e| check.page(self, w, p, e));
        self.apply(w, check);
    }

    /// A TLB flush of the tables in use (a CR3 reload, a CR4.PGE toggle): checks, as
    /// [`Mmu::revalidate`] does, only the mappings whose guest entries changed since they
    /// were checked (see `derived`); the others are what a walk would give.
    fn flush_changed(&mut self, windows: &[WindowKind]) {
        let (ram, regs) = (&self.ram, self.regs);
        let changed = self.shadow.derived.changed(windows, |region| walk::pde_of_region(ram, &regs, region), ram);
        let mut pages: [Vec<u32>; WindowKind::COUNT] = Default::default();
        for &(w, p) in &changed.pages {
            pages[w.index()].push(p);
        }
        let mut whole: [Vec<u32>; WindowKind::COUNT] = Default::default();
        for &(w, key) in &changed.regions {
            // (Its pages that stay are recorded again below.)
            self.shadow.derived.forget_region(w, key);
            let region = self.shadow.derived.region_pages(key);
            whole[w.index()].extend(region.filter(|&p| self.shadow.get(w, p).is_some()));
        }
        for &w in windows {
            whole[w.index()].sort_unstable();
            let mut check = Check::new(self.regs.table_shift());
            check.keep_walks = true;
            for &p in pages[w.index()].iter().chain(&whole[w.index()]) {
                if let Some(e) = self.shadow.get(w, p) {
                    check.page(self, w, p, &e);
                }
            }
            let kept = std::mem::take(&mut check.kept_walks);
            self.apply(w, check);
            for (p, t) in kept {
                if whole[w.index()].binary_search(&p).is_ok() {
                    let src = self.source(p, &t);
                    self.shadow.derived.add(w, p, &src);
                }
            }
        }
    }

    /// With `BT86_CHECK_FLUSHES` set: walks every mapping a flush (`what`) kept and
    /// reports, as an error, each one a walk now would not give — another frame, no
    /// accessed bit, or writable where the entries are not (or not dirty). A debugging aid
    /// for the comparison in `derived`, whose mistakes show up in guests only as corrupted
    /// memory much later; `tests/linux.rs` runs Linux with it.
    fn check_kept(&mut self, what: &str, windows: &[WindowKind]) {
        if !self.check_flushes {
            return;
        }
        for &w in windows {
            let user = w.is_user();
            let mut stale = Vec::new();
            self.shadow.for_each(w, true, |p, e| {
                let fine = walk::walk(&self.ram, &self.regs, p << 12, Access::data(false, user)).is_ok_and(|t| {
                    t.phys_page >> 12 == e.phys_page
                        && t.accessed
                        && (!e.prot.writable() || (t.dirty && t.write_allowed(user, &self.regs)))
                        && (!e.prot.executable() || !t.no_execute)
                });
                if !fine {
                    stale.push((p, *e));
                }
            });
            for (p, e) in stale {
                self.stats.stale_after_flush += 1;
                log::error!(
                    "shadow MMU: after {what}, the {w:?} window still maps linear {:#x} to frame {:#x} ({:?}), which the guest's tables no longer give",
                    p << 12,
                    e.phys_page,
                    e.prot
                );
            }
        }
    }

    /// Applies what `check` found in window `w`: G bits noted, the rest parked.
    fn apply(&mut self, w: WindowKind, check: Check) {
        for (p, t) in check.large {
            self.note_large(p << 12, &t);
        }
        for (p, global) in check.flips {
            self.shadow.set_global(w, p, global);
        }
        for (p, wp) in check.wp {
            self.shadow.note_wp_writable(w, p, wp);
        }
        self.stats.pages_revalidated += check.kept;
        self.stats.flush_pages_checked += check.kept + check.dropped.len() as u64;
        let mut dropped = check.dropped;
        dropped.sort_unstable();
        self.park_or_drop(w, dropped);
    }

    /// True if mapping `e` of window `w` is what a fill of translation `t` (a read, whose
    /// PDE is accessed) could map now without the guest seeing a difference (see
    /// [`Mmu::revalidate`]).
    fn still_true(&self, w: WindowKind, e: &Entry, t: &Translation) -> bool {
        let phys = t.phys_page >> 12;
        phys == e.phys_page
            && t.leaf_addr >> 12 == e.table
            && t.large == e.large
            && t.accessed
            // (No `fillable`: the frame is the one filled, so neither device memory nor
            // unbacked, and a kept mapping needs no accessed or dirty bit written, which is
            // what watched page tables forbid.)
            && (!e.prot.writable() || (t.dirty && t.write_allowed(w.is_user(), &self.regs)))
            // (Its bytes were checked for instructions that must not run natively when it
            // was mapped executable, and cannot have changed since: W^X per frame.)
            && (!e.prot.executable() || !t.no_execute)
    }

    fn unmap_runs(&mut self, w: WindowKind, runs: &[(u32, u64)]) {
        // (Parked pages in them go too: the host forgets their mappings.)
        self.shadow.forget_parked_in(w, runs);
        for &(start, n) in runs {
            if let Err(e) = self.windows[w.index()].unmap(start << 12, n) {
                log::error!("cannot unmap window pages: {e}");
            }
        }
    }

    /// Takes the host's access to the pages of `runs` away, keeping their mappings.
    fn park_runs(&mut self, w: WindowKind, runs: &[(u32, u64)]) {
        for &(start, n) in runs {
            if let Err(e) = self.windows[w.index()].park(start << 12, n) {
                log::error!("cannot park window pages: {e}");
                // (Whatever the host did, unmapped is safe.)
                self.unmap_runs(w, &[(start, n)]);
            }
        }
    }

    /// What the copy of window `w` must change to be current (None: no copy kept; the
    /// windows directly executed code runs from keep one when the sandbox runs it: see
    /// [`Mmu::native_window`]).
    pub fn take_mirror_changes(&mut self, w: WindowKind) -> Option<MirrorChanges> {
        self.windows.get_mut(w.index())?.take_mirror_changes()
    }

    /// A new copy of window `w`, holding nothing: the next changes bring it every mapped
    /// page.
    pub fn resend_mirror(&mut self, w: WindowKind) {
        if let Some(w) = self.windows.get_mut(w.index()) {
            w.resend_mirror();
        }
    }

    /// Drops every mapping in every window.
    pub fn flush_all(&mut self) {
        self.tlb.flush(false);
        self.large_regions.clear();
        self.stats.full_flushes += 1;
        for w in self.all_windows() {
            self.shadow.clear(w);
            if let Err(e) = self.windows[w.index()].unmap_all() {
                log::error!("cannot empty the window: {e}");
            }
        }
        self.spaces.fill(KernelSpace::default());
    }

    /// `invlpg`: drops the translation of `linear`, or all of the large page it lies in
    /// (whether or not that piece of it is mapped), whose linear pages are returned then
    /// (first page number, count): whatever else reaches them (translated code) must go
    /// too.
    pub fn invlpg(&mut self, linear: u32) -> Option<(u32, u32)> {
        if !self.regs.paging() {
            return None;
        }
        self.stats.invlpg_flushes += 1;
        // (All of it: cheaper than finding a large page's entries.)
        self.tlb.flush(false);
        let page = page_of(linear);
        let shift = self.regs.table_shift();
        let (first, n) = ((page >> shift) << shift, 1u32 << shift);
        let large = self.large_regions.remove(&(page >> shift)).is_some()
            || self.active().iter().any(|&w| self.shadow.get(w, page).is_some_and(|e| e.large));
        for w in self.active() {
            if large {
                // The whole large page goes, in one host call.
                for p in first..first + n {
                    self.shadow.remove(w, p);
                }
                self.unmap_runs(w, &[(first, n as u64)]);
            } else if self.shadow.remove(w, page).is_some() {
                // The guest changed this PTE and is about to use it again (an OS
                // invlpg's after editing a live mapping): map the new translation
                // right away, replacing the old one in the same host call, when that
                // needs no accessed/dirty bit the guest's access would have set.
                if !self.map_ahead(w, linear) {
                    self.unmap_runs(w, &[(page, 1)]);
                }
            }
        }
        large.then_some((first, n))
    }

    /// Notes a large translation `t` of `linear` in use (see `large_regions`).
    fn note_large(&mut self, linear: u32, t: &Translation) {
        if t.large {
            let global = self.large_regions.entry(page_of(linear) >> self.regs.table_shift()).or_insert(t.global);
            *global |= t.global;
        }
    }

    /// Maps `linear` in window `w` before the guest touches it, if its translation is
    /// ordinary RAM whose PDE and leaf entry are already marked accessed (the mapping is
    /// writable only if the leaf is already dirty). Mapping it earlier is then invisible
    /// to the guest; otherwise the access's hidden fault sets the bits as hardware would.
    fn map_ahead(&mut self, w: WindowKind, linear: u32) -> bool {
        let Ok(t) = walk::walk(&self.ram, &self.regs, linear, Access::data(false, w.is_user())) else { return false };
        if !t.accessed || self.ram.read_u32(t.pde_addr) & walk::pte::A == 0 || !self.fillable(w, &t, false, false) {
            return false;
        }
        match self.fill(w, linear, &t, false, false) {
            Ok(()) => {
                self.stats.prefills += 1;
                true
            }
            Err(e) => {
                log::error!("map ahead of {linear:#x}: {e}");
                false
            }
        }
    }

    /// After a true #PF, once the guest's handler returns (`iret`) to retry the access
    /// (`retry`: to the faulting instruction, at its privilege level) in the same address
    /// space: if the handler made the page present for the access that faulted, with the
    /// accessed bit (and for a write, the dirty bit) already set, as an OS makes its
    /// entries, maps it now, so that the retry does not fault a second time — in the
    /// sandbox that saves an exit to the monitor per page fault. Bits the guest left clear
    /// are not set here: the retried instruction need not touch the page at all (the
    /// handler may have changed its address registers), and an access that does sets them
    /// through its own hidden fault.
    pub fn prefill(&mut self, retry: bool) {
        let Some((w, linear, write, cr3)) = self.faulted.take() else { return };
        if !retry || !self.regs.paging() || self.regs.cr3 != cr3 || self.shadow.get(w, page_of(linear)).is_some() {
            return;
        }
        let access = Access::data(write, w.is_user());
        let Ok(t) = walk::walk(&self.ram, &self.regs, linear, access) else { return };
        let marked = t.accessed && (t.dirty || !write) && self.ram.read_u32(t.pde_addr) & walk::pte::A != 0;
        if !marked || !self.fillable(w, &t, write, false) {
            return;
        }
        match self.fill(w, linear, &t, write, false) {
            Ok(()) => self.stats.prefills += 1,
            Err(e) => log::error!("map ahead of {linear:#x}: {e}"),
        }
    }

    /// Translates `linear` for a software access of kind `access`, setting the accessed
    /// and dirty bits as hardware would. Physical addresses beyond RAM are returned as
    /// they are (reads see all ones, writes are dropped).
    pub fn translate(&mut self, linear: u32, access: Access) -> Result<u64, PageFault> {
        if !self.regs.paging() {
            return Ok(linear as u64);
        }
        if let Some(page) = self.tlb.get(linear, access) {
            return Ok(page | (linear & 0xFFF) as u64);
        }
        let t = walk::walk(&self.ram, &self.regs, linear, access)?;
        self.mark(&t, access.write);
        self.note_large(linear, &t);
        self.tlb.insert(linear, access, t.phys_page, t.global);
        Ok(t.phys_page | (linear & 0xFFF) as u64)
    }

    fn mark(&mut self, t: &Translation, write: bool) {
        for a in walk::mark(&mut self.ram, t, write).into_iter().flatten() {
            self.note_write(a >> 12);
        }
    }

    fn note_write(&mut self, page: u64) {
        if self.shadow.code_pages.contains(&page) && !self.dirty_code.contains(&page) {
            self.dirty_code.push(page);
        }
        if self.shadow.is_native(page) {
            self.drop_native(page);
        }
    }

    /// Reads guest linear memory (software access, any alignment, page by page).
    pub fn read(&mut self, linear: u32, buf: &mut [u8], user: bool) -> Result<(), PageFault> {
        let mut done = 0usize;
        while done < buf.len() {
            let a = linear.wrapping_add(done as u32);
            let chunk = ((0x1000 - (a & 0xFFF)) as usize).min(buf.len() - done);
            let phys = self.translate(a, Access::data(false, user))?;
            self.ram.read(phys, &mut buf[done..done + chunk]);
            done += chunk;
        }
        Ok(())
    }

    /// Writes guest linear memory (software access). All pages are translated before any
    /// byte is written, so a fault leaves memory unchanged.
    pub fn write(&mut self, linear: u32, data: &[u8], user: bool) -> Result<(), PageFault> {
        let mut pieces: [(u64, usize, usize); 3] = [(0, 0, 0); 3];
        let mut n = 0;
        let mut done = 0usize;
        while done < data.len() {
            let a = linear.wrapping_add(done as u32);
            let chunk = ((0x1000 - (a & 0xFFF)) as usize).min(data.len() - done);
            if n == pieces.len() {
                // A long write: do it in parts.
                self.write(a, &data[done..], user)?;
                break;
            }
            pieces[n] = (self.translate(a, Access::data(true, user))?, done, chunk);
            n += 1;
            done += chunk;
        }
        for &(phys, off, len) in &pieces[..n] {
            self.note_write(phys >> 12);
            self.ram.write(phys, &data[off..off + len]);
        }
        Ok(())
    }

    /// Guest-physical address of the code byte at `linear`, fetched at CPL 3 (`user`) or
    /// supervisor.
    pub fn code_phys(&mut self, linear: u32, user: bool) -> Result<u64, PageFault> {
        self.translate(linear, Access::fetch(user))
    }

    /// The frame (page number) linear page `page` maps for an instruction fetch at CPL 3
    /// (`user`) or 0, if fetching there now would set no accessed bit: what a CPU may
    /// have cached since the last TLB flush without the guest seeing it. A pure walk.
    pub fn fetch_frame_cached(&self, page: u32, user: bool) -> Option<u64> {
        let t = walk::walk(&self.ram, &self.regs, page << 12, Access::fetch(user)).ok()?;
        let pde_accessed = t.large || self.ram.read_u32(t.pde_addr) & walk::pte::A != 0;
        (t.accessed && pde_accessed).then_some(t.phys_page / PAGE_SIZE)
    }

    /// True if the guest's translation of `linear` is global (false if not mapped).
    pub fn is_global(&self, linear: u32) -> bool {
        walk::walk(&self.ram, &self.regs, linear, Access::SUPERVISOR_READ).is_ok_and(|t| t.global)
    }

    /// True if guest-physical page `page` has no RAM (and no device) behind it.
    pub fn is_unbacked(&self, page: u64) -> bool {
        page >= self.ram.size() / PAGE_SIZE && !self.device_pages.contains(&page)
    }

    /// Declares device memory `[base, base + len)` (page aligned): never mapped, every
    /// access is emulated.
    pub fn add_device_range(&mut self, base: u64, len: u64) {
        for p in base / PAGE_SIZE..(base + len).div_ceil(PAGE_SIZE) {
            self.device_pages.insert(p);
        }
    }

    /// True if guest-physical page `page` is device memory.
    pub fn is_device(&self, page: u64) -> bool {
        self.device_pages.contains(&page)
    }

    /// The signal handler's part of a host fault at `host` (a window address): fill the
    /// page if the guest's tables map it for that window (`fetch`: an instruction fetch
    /// by directly executed code). Everything that needs the monitor (a true fault, a
    /// code page, unbacked memory, paging off, code that must be translated) is an
    /// `Exit`.
    pub fn on_host_fault(&mut self, host: u64, write: bool, fetch: bool) -> HostFault {
        let Some((w, linear, false)) = locate(host) else {
            return HostFault::Exit;
        };
        if !self.regs.paging() {
            return HostFault::Exit;
        }
        let access = Access { write, user: w.is_user(), fetch };
        let Ok(t) = walk::walk(&self.ram, &self.regs, linear, access) else {
            return HostFault::Exit;
        };
        // (A write to a natively executable frame, through any mapping of it, is not
        // fillable: the run loop takes its execute permission away and makes it writable,
        // and runs the writing instruction through the translator if it is on that frame.)
        if !self.fillable(w, &t, write, fetch) {
            return HostFault::Exit;
        }
        self.stats.hidden_faults += 1;
        walk::mark(&mut self.ram, &t, write);
        match self.fill(w, linear, &t, write, fetch) {
            Ok(()) => HostFault::Filled,
            Err(e) => {
                log::error!("fill of {linear:#x}: {e}");
                HostFault::Exit
            }
        }
    }

    /// The run loop's part of a window fault at `host` that the signal handler left.
    pub fn resolve_fault(&mut self, host: u64, write: bool, fetch: bool) -> Result<Resolution, WindowError> {
        let Some((w, linear, _)) = locate(host) else {
            return Ok(Resolution::Handled);
        };
        let (phys, t) = if self.regs.paging() {
            let access = Access { write, user: w.is_user(), fetch };
            let t = match walk::walk(&self.ram, &self.regs, linear, access) {
                Ok(t) => t,
                Err(pf) => {
                    self.stats.true_faults += 1;
                    self.faulted = Some((w, linear, write, self.regs.cr3));
                    return Ok(Resolution::GuestFault(pf));
                }
            };
            (t.phys_page >> 12, Some(t))
        } else {
            (linear as u64 >> 12, None)
        };
        if linear < w.first_mappable() {
            return Err(WindowError::BelowMmapMin(linear));
        }
        if fetch && !t.as_ref().is_some_and(|t| !self.is_device(phys) && !self.is_unbacked(phys) && self.may_execute(w, t, phys)) {
            return Ok(Resolution::Translate);
        }
        if self.is_device(phys) {
            if let Some(t) = &t {
                self.mark(t, write);
            }
            return Ok(Resolution::Emulate((phys << 12) | (linear & 0xFFF) as u64));
        }
        if write && self.shadow.is_native(phys) {
            self.drop_native(phys);
        }
        if write && self.shadow.code_pages.contains(&phys) {
            return Ok(Resolution::CodeWrite(phys));
        }
        if self.is_unbacked(phys) {
            if let Some(t) = &t {
                self.mark(t, write);
            }
            if write {
                return Ok(Resolution::Emulate((phys << 12) | (linear & 0xFFF) as u64));
            }
            self.map_unbacked(w, linear, phys, t.as_ref())?;
            return Ok(Resolution::Handled);
        }
        if let Some(t) = t {
            self.stats.hidden_faults += 1;
            self.mark(&t, write);
            self.fill(w, linear, &t, write, fetch)?;
        }
        Ok(Resolution::Handled)
    }

    /// Maps the shared all-ones page, read-only, where the guest reads unbacked memory
    /// (its stores fault and are emulated: dropped).
    /// (`t`: the translation that gave the page, with paging on.)
    fn map_unbacked(&mut self, w: WindowKind, linear: u32, phys: u64, t: Option<&Translation>) -> Result<(), WindowError> {
        let at = linear & !0xFFF;
        if t.is_some() {
            self.make_room();
        }
        self.windows[w.index()].map(&self.ram, at, phys << 12, 1, Prot::Read)?;
        if let Some(t) = t {
            let stamp = self.shadow.begin_fill(w, at >> 12, 1);
            let src = self.source(at >> 12, t);
            self.shadow.record(
                w,
                at >> 12,
                Entry { phys_page: phys, prot: Prot::Read, global: false, large: false, table: u64::MAX, stamp },
                &src,
            );
        }
        Ok(())
    }

    /// The guest entries a mapping of linear page `page` by translation `t` (of a page in
    /// the same region) is checked against, as they are now.
    fn source(&self, page: u32, t: &Translation) -> Source {
        let entry = |a: u64| {
            if self.regs.pae() {
                self.ram.read_u32(a) as u64 | (self.ram.read_u32(a + 4) as u64) << 32
            } else {
                self.ram.read_u32(a) as u64
            }
        };
        let pte = (!t.large).then(|| {
            let table = t.leaf_addr >> 12;
            let index = (page & ((1 << self.regs.table_shift()) - 1)) as usize;
            (table, walk::table_entry(&self.ram, &self.regs, table, index))
        });
        Source { pde: entry(t.pde_addr), pte }
    }

    /// Sets which `0F xx` instructions pages must be free of to run natively, by their
    /// second byte: [`NEVER_NATIVE`] by default; without `cpuid` when the host traps it
    /// (CPUID faulting). Takes effect for pages mapped from now on.
    pub fn set_never_native(&mut self, second_bytes: &[u8]) {
        self.never_native = second_bytes.to_vec();
    }

    /// Maps a stand-in for the device page at `linear` in window `w` (see
    /// [`Window::map_stand_in`]); returns its host address.
    pub fn map_stand_in(&mut self, w: WindowKind, linear: u32) -> Result<u64, WindowError> {
        // (It replaces whatever the host maps there.)
        self.shadow.forget_parked_in(w, &[(page_of(linear), 1)]);
        self.windows[w.index()].map_stand_in(linear)
    }

    /// Removes a stand-in: the device page is unmapped again, so its next access faults.
    pub fn unmap_stand_in(&mut self, w: WindowKind, linear: u32) -> Result<(), WindowError> {
        self.windows[w.index()].unmap(linear & !0xFFF, 1)
    }

    /// True if an access of this kind through translation `t` can be served by mapping
    /// the page, without the monitor: RAM (not unbacked, not a device), not a write to a
    /// page holding translated code or natively executable, page tables on neither kind
    /// of page (their A/D updates are writes the monitor must see), and for a fetch, code
    /// that may run natively.
    fn fillable(&self, w: WindowKind, t: &Translation, write: bool, fetch: bool) -> bool {
        let phys = t.phys_page >> 12;
        let code = &self.shadow.code_pages;
        let watched = |p: u64| code.contains(&p) || self.shadow.is_native(p);
        !(self.is_unbacked(phys)
            || self.is_device(phys)
            || (write && watched(phys))
            || watched(t.pde_addr >> 12)
            || watched(t.leaf_addr >> 12)
            || (fetch && !self.may_execute(w, t, phys)))
    }

    /// The host permission window `w` may give the page of `t` now. `exec`: the access
    /// that faulted was an instruction fetch by directly executed code (a window that
    /// serves it, [`Mmu::native_window`]).
    ///
    /// W^X holds per frame, in both windows: while a frame is mapped natively executable
    /// anywhere, no mapping of it is writable. Its bytes were checked for instructions
    /// that must not run natively when it was mapped, and must stay as checked, whichever
    /// mapping the guest writes through (an alias of the frame in the user window, or the
    /// kernel window's). A write to one takes its execute permission away
    /// ([`Mmu::drop_native`]); the next fetch checks the bytes again. (The other
    /// mappings of a frame mapped executable are made read-only by [`Mmu::map_run`] and
    /// [`Mmu::try_fill`].)
    fn prot_for(&self, w: WindowKind, t: &Translation, phys: u64, exec: bool) -> Prot {
        let exec = exec && self.may_execute(w, t, phys);
        let write = !exec
            && t.write_allowed(w.is_user(), &self.regs)
            && t.dirty
            && !self.shadow.code_pages.contains(&phys)
            && !self.shadow.is_native(phys);
        Prot::readable(write, exec)
    }

    /// True if directly executed code may run page `phys` (of translation `t`) natively:
    /// in a window that serves it ([`Mmu::native_window`]), not execute-disabled by the
    /// guest, and free of the
    /// instructions the host would run differently from the virtual CPU
    /// ([`NEVER_NATIVE`]); such a page's code runs through the translator instead.
    fn may_execute(&self, w: WindowKind, t: &Translation, phys: u64) -> bool {
        self.serves_native_code(w) && !t.no_execute && !self.holds_never_native(phys)
    }

    /// True if guest-physical page `phys` holds the bytes of an instruction that must not
    /// run natively (0F followed by one of `never_native`), or ends with a 0F that could
    /// start one on the next page. The bytes need not be an instruction at all (a false
    /// positive only costs translation), but every real one is found.
    fn holds_never_native(&self, phys: u64) -> bool {
        let start = (phys * PAGE_SIZE) as usize;
        let Some(page) = self.ram.as_slice().get(start..start + PAGE_SIZE as usize) else {
            return false;
        };
        memchr::memchr_iter(0x0F, page).any(|i| page.get(i + 1).is_none_or(|b| self.never_native.contains(b)))
    }

    /// Maps the page of `linear` in window `w` (its A/D bits already set), with
    /// neighbours the guest has already accessed; executable if `fetch` asked for it
    /// and the page may run natively.
    fn fill(&mut self, w: WindowKind, linear: u32, t: &Translation, write: bool, fetch: bool) -> Result<(), WindowError> {
        self.note_large(linear, t);
        self.make_room();
        let r = match self.try_fill(w, linear, t, write, fetch) {
            Err(e) if e.host_refused() => {
                log::debug!("host refused a window mapping ({e}) with {} VMAs: evicting", self.shadow.vmas());
                self.host_refused();
                self.try_fill(w, linear, t, write, fetch).map_err(|e| {
                    if e.host_refused() {
                        WindowError::Exhausted {
                            vmas: self.shadow.vmas(),
                            budget: self.budget,
                            max_map_count: self.stats.max_map_count as usize,
                        }
                    } else {
                        e
                    }
                })
            }
            r => r,
        };
        self.stats.vma_peak = self.stats.vma_peak.max(self.shadow.vmas() as u64);
        r
    }

    /// [`Mmu::fill`] without the retry: a failed host call leaves the page unmapped.
    fn try_fill(&mut self, w: WindowKind, linear: u32, t: &Translation, write: bool, fetch: bool) -> Result<(), WindowError> {
        let page = page_of(linear);
        let phys = t.phys_page >> 12;
        let t = Translation { dirty: t.dirty || write, accessed: true, ..*t };
        let prot = self.prot_for(w, &t, phys, fetch);
        if let Some(e) = self.shadow.get(w, page)
            && e.phys_page == phys
        {
            // Mapped already (read-only until the dirty bit, not executable until code
            // runs there): just widen it — in the user window, to writable or
            // executable, never both (see `prot_for`).
            let widened = match w {
                _ if !self.serves_native_code(w) => Prot::readable(prot.writable(), prot.executable() || e.prot.executable()),
                _ if fetch => prot,
                _ if write => Prot::readable(prot.writable(), false),
                _ => e.prot,
            };
            if e.prot != widened {
                if widened.executable() && !e.prot.executable() {
                    self.write_protect_frame(phys, Some((w, page)), true);
                }
                if let Err(err) = self.windows[w.index()].protect(page << 12, 1, widened) {
                    // (The host may have changed part of it: drop it altogether.)
                    self.shadow.remove(w, page);
                    let _ = self.windows[w.index()].unmap(page << 12, 1);
                    return Err(err);
                }
                self.shadow.set_prot(w, page, widened);
                self.shadow.note_wp_writable(w, page, widened.writable() && !t.writable);
                // (Widened as the entries give it now: what it was checked against.)
                let src = self.source(page, &t);
                self.shadow.rederive(w, page, &src);
                self.shadow.reference(w, page);
                if widened.writable() && !e.prot.writable() {
                    self.stats.dirty_upgrades += 1;
                }
            }
            return Ok(());
        }
        // Neighbours in the same page table (or large page) with the same permission,
        // already accessed by the guest, not mapped yet: mapping them now is invisible to
        // the guest. Their guest-physical page, if so.
        let shift = self.regs.table_shift();
        let table = page >> shift;
        let neighbour = |me: &Mmu, p: u32| -> Option<u64> {
            if p >> shift != table || me.shadow.get(w, p).is_some() {
                return None;
            }
            let n = walk::walk(&me.ram, &me.regs, p << 12, Access::data(false, w.is_user())).ok()?;
            let ph = n.phys_page >> 12;
            let plain = !(me.is_unbacked(ph) || me.is_device(ph) || me.shadow.code_pages.contains(&ph));
            (plain && n.accessed && n.global == t.global && me.prot_for(w, &n, ph, fetch) == prot).then_some(ph)
        };
        let same = |me: &Mmu, p: u32, ph: u64| neighbour(me, p) == Some(ph);
        if self.shadow.parked_frame(w, page) == Some(phys) && !self.is_unbacked(phys) {
            // Parked by a CR3 write with this frame: give it its access back, and its
            // parked neighbours whose frames are still theirs, in one call.
            let batch = if t.large { 1 << shift } else { BATCH };
            let parked_same = |me: &Mmu, p: u32| neighbour(me, p).is_some_and(|ph| me.shadow.parked_frame(w, p) == Some(ph));
            let (mut first, mut last) = (page, page);
            while last - page < batch - 1 && last + 1 < (1 << 20) && parked_same(self, last + 1) {
                last += 1;
            }
            while page - first < batch - 1 && first > 1 && parked_same(self, first - 1) {
                first -= 1;
            }
            let frames: Vec<u64> = (first..=last).map(|p| self.shadow.parked_frame(w, p).expect("parked")).collect();
            return self.unpark(w, first, &frames, prot, &t);
        }
        // The run around the page that is contiguous in guest RAM too: one host call.
        let (mut first, mut last) = (page, page);
        // A large page is filled whole when nothing in it is special.
        let batch = if t.large { 1 << shift } else { BATCH };
        while last - page < batch - 1 && last + 1 < (1 << 20) && same(self, last + 1, phys + (last + 1 - page) as u64) {
            last += 1;
        }
        while page - first < batch - 1 && first > 0 && same(self, first - 1, phys - (page - first + 1) as u64) {
            first -= 1;
        }
        let first_phys = phys - (page - first) as u64;
        if let Err(err) = self.map_run(w, first, first_phys, last - first + 1, prot, &t) {
            // The page itself may have been mapped before: leave it unmapped.
            self.shadow.remove(w, page);
            self.unmap_runs(w, &[(page, 1)]);
            return Err(err);
        }
        // Accessed neighbours whose frames lie elsewhere (as an OS's user memory does):
        // mapped in the same fault, a host call per contiguous run, while the budget has
        // room, so that a sweep over them takes a hidden fault per SCATTER_RUNS runs, not
        // per page. They are evicted like any fill.
        let mut runs = 0;
        for up in [true, false] {
            let mut edge = if up { last } else { first };
            while runs < SCATTER_RUNS && self.shadow.vmas() + FILL_HEADROOM + 2 <= self.budget {
                let next = if up { edge.checked_add(1).filter(|&p| p < 1 << 20) } else { edge.checked_sub(1) };
                let Some(next) = next.filter(|&p| p.abs_diff(page) < batch) else { break };
                let Some(ph) = neighbour(self, next) else { break };
                let (mut a, mut b) = (next, next);
                if up {
                    while b + 1 < (1 << 20) && (b + 1).abs_diff(page) < batch && same(self, b + 1, ph + (b + 1 - a) as u64) {
                        b += 1;
                    }
                } else {
                    while a > 0 && (a - 1).abs_diff(page) < batch && same(self, a - 1, ph - (b - a + 1) as u64) {
                        a -= 1;
                    }
                }
                let a_phys = if up { ph } else { ph - (b - a) as u64 };
                if self.map_run(w, a, a_phys, b - a + 1, prot, &t).is_err() {
                    break;
                }
                runs += 1;
                edge = if up { b } else { a };
            }
        }
        Ok(())
    }

    /// Gives the parked pages from `first` on in window `w`, which map guest RAM pages
    /// `frames` (as the guest's tables do again), access `prot` for translation `t`'s
    /// kind: one fill without a new host mapping.
    fn unpark(&mut self, w: WindowKind, first: u32, frames: &[u64], prot: Prot, t: &Translation) -> Result<(), WindowError> {
        let n = frames.len() as u32;
        for p in first..first + n {
            self.shadow.unpark(w, p);
        }
        if prot.executable() {
            // W^X per frame, as for any fill.
            for &f in frames {
                self.write_protect_frame(f, None, true);
            }
        }
        if let Err(err) = self.windows[w.index()].unpark(first << 12, frames, prot) {
            self.unmap_runs(w, &[(first, n as u64)]);
            return Err(err);
        }
        let stamp = self.shadow.begin_fill(w, first, n);
        for (i, &f) in frames.iter().enumerate() {
            let e = Entry { phys_page: f, prot, global: t.g_bit, large: t.large, table: t.leaf_addr >> 12, stamp };
            let src = self.source(first + i as u32, t);
            self.shadow.record(w, first + i as u32, e, &src);
        }
        self.stats.pages_filled += n as u64;
        self.stats.unparked += n as u64;
        Ok(())
    }

    /// Maps `n` linear pages from `first` in window `w` to guest RAM from page
    /// `first_phys`, as one fill of translation `t`'s kind. On failure nothing of it is
    /// mapped (as far as the host lets it be undone).
    fn map_run(&mut self, w: WindowKind, first: u32, first_phys: u64, n: u32, prot: Prot, t: &Translation) -> Result<(), WindowError> {
        if prot.executable() {
            // W^X per frame: no other mapping of these frames stays writable.
            for i in 0..n {
                self.write_protect_frame(first_phys + i as u64, None, true);
            }
        }
        if let Err(err) = self.windows[w.index()].map(&self.ram, first << 12, first_phys << 12, n as u64, prot) {
            // Part of the run (or the mirror of page 0) may be mapped.
            self.unmap_runs(w, &[(first, n as u64)]);
            return Err(err);
        }
        let stamp = self.shadow.begin_fill(w, first, n);
        for i in 0..n {
            let e = Entry { phys_page: first_phys + i as u64, prot, global: t.g_bit, large: t.large, table: t.leaf_addr >> 12, stamp };
            let src = self.source(first + i, t);
            self.shadow.record(w, first + i, e, &src);
        }
        self.stats.pages_filled += n as u64;
        Ok(())
    }

    /// Write-protects every window mapping of guest-physical page `page`, because
    /// translated code came from it.
    pub fn protect_code_page(&mut self, page: u64) {
        if self.is_unbacked(page) || !self.shadow.code_pages.insert(page) {
            return;
        }
        self.pages_protected += 1;
        if !self.regs.paging() {
            self.protect_identity(page, false);
            return;
        }
        self.write_protect_frame(page, None, false);
    }

    /// Makes every window mapping of guest-physical page `page` read-only, but `except`
    /// (`native`: because the frame is being mapped natively executable, for the stats).
    fn write_protect_frame(&mut self, page: u64, except: Option<(WindowKind, u32)>, native: bool) {
        for (w, lp) in self.shadow.mappings_of(page) {
            if let Some(e) = self.shadow.get(w, lp)
                && e.prot.writable()
                && Some((w, lp)) != except
            {
                if let Err(err) = self.windows[w.index()].protect(lp << 12, 1, e.prot.read_only()) {
                    log::error!("cannot write-protect page {page:#x}: {err}");
                }
                self.shadow.set_prot(w, lp, e.prot.read_only());
                if native {
                    self.stats.native_write_protects += 1;
                }
            }
        }
    }

    /// A write to natively executable guest-physical page `page` (through any mapping,
    /// or by the monitor): its mappings lose their execute permission (they become
    /// read-only; a write widens them through the fault path), so that its next native
    /// fetch checks its bytes again.
    fn drop_native(&mut self, page: u64) {
        self.stats.native_code_writes += 1;
        for (w, lp) in self.shadow.mappings_of(page) {
            if let Some(e) = self.shadow.get(w, lp)
                && e.prot.executable()
            {
                if let Err(err) = self.windows[w.index()].protect(lp << 12, 1, Prot::Read) {
                    // (The host may have changed part of it: drop it altogether.)
                    log::error!("cannot take execute permission from page {page:#x}: {err}");
                    self.shadow.remove(w, lp);
                    let _ = self.windows[w.index()].unmap(lp << 12, 1);
                    continue;
                }
                self.shadow.set_prot(w, lp, Prot::Read);
            }
        }
    }

    /// The guest-physical page linear address `linear` maps to now (paging off: the same
    /// page), without setting accessed bits; None if the guest's tables do not map it.
    pub fn frame_of(&self, linear: u32) -> Option<u64> {
        if !self.regs.paging() {
            return Some(linear as u64 >> 12);
        }
        walk::walk(&self.ram, &self.regs, linear, Access::SUPERVISOR_READ).ok().map(|t| t.phys_page >> 12)
    }

    /// Lets a code page be written again (its translations are gone). Mappings stay
    /// read-only; the next write widens them through the normal fault path.
    pub fn unprotect_code_page(&mut self, page: u64) {
        if !self.shadow.code_pages.remove(&page) {
            return;
        }
        if !self.regs.paging() {
            self.protect_identity(page, true);
        }
    }

    /// True if `page` is write-protected for holding code.
    pub fn is_code_page(&self, page: u64) -> bool {
        self.shadow.code_pages.contains(&page)
    }

    /// Forgets all code pages (after the translation cache was flushed).
    pub fn unprotect_all_code(&mut self) {
        let pages: Vec<u64> = self.shadow.code_pages.iter().copied().collect();
        for p in pages {
            self.unprotect_code_page(p);
        }
    }

    /// The guest-linear span a window can map, for bounds checks.
    pub const SPAN: u64 = WINDOW_SIZE;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KERNEL_WINDOW_BASE;
    use crate::walk::pte;
    use crate::window::KERNEL_WINDOWS;
    use std::collections::BTreeMap;
    use std::sync::atomic::Ordering;

    /// The VMAs the host has in the windows' reservations, from `/proc/self/maps`.
    fn host_vmas() -> usize {
        let ranges: Vec<(u64, u64)> = WindowKind::all().map(|w| w.reservation()).collect();
        std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .filter(|l| {
                let start = u64::from_str_radix(l.split('-').next().unwrap(), 16).unwrap();
                ranges.iter().any(|&(lo, hi)| (lo..hi).contains(&start))
            })
            .count()
    }

    const PD: u64 = 0x1000;
    /// Other address spaces: copies of `PD` (see [`other_space`]).
    const PD2: u64 = 0x2000;
    const PD3: u64 = 0x3000;
    const PD4: u64 = 0x4000;
    /// Page tables for linear 4 MiB regions 1.. (one each).
    const PT: u64 = 0x10_0000;
    const PAGES: u32 = 3 * 1024;

    /// 32 MiB of RAM; linear 4 MiB .. 16 MiB in 4 KiB pages (kernel-only), where runs
    /// of 8 pages are contiguous in RAM and the runs are scattered; linear 16 MiB one
    /// 4 MiB page.
    fn mmu() -> Mmu {
        mmu_with(1)
    }

    /// [`mmu`] with `kernel_windows` kernel windows.
    fn mmu_with(kernel_windows: usize) -> Mmu {
        mmu_built(kernel_windows, false)
    }

    /// [`mmu_with`], its user windows per address space serving directly executed code
    /// (`native`), copied elsewhere (see `mirror`).
    fn mmu_built(kernel_windows: usize, native: bool) -> Mmu {
        let mut ram = GuestRam::new(32 << 20).unwrap();
        for i in 0..PAGES {
            let region = 1 + i / 1024;
            let pt = PT + (region as u64 - 1) * 4096;
            ram.write_u32(PD + 4 * region as u64, pt as u32 | pte::P | pte::RW);
            // Runs of 8 frames, the runs in a scattered order.
            let frame = 0x200 + (((i / 8) * 37) % (PAGES / 8)) * 8 + i % 8;
            ram.write_u32(pt + 4 * (i % 1024) as u64, (frame << 12) | pte::P | pte::RW | pte::A);
        }
        ram.write_u32(PD + 4 * 4, 0x0100_0000 | pte::PS | pte::P | pte::RW);
        let mut m = Mmu::new(ram, Window::reserve(WindowKind::User).unwrap(), Window::reserve(WindowKind::Kernel).unwrap()).unwrap();
        m.add_kernel_windows(kernel_windows).unwrap();
        if kernel_windows > 1 {
            m.add_translated_user_windows(native).unwrap();
        }
        m.set_regs(PagingRegs { cr0: 0x8000_0001, cr3: PD as u32, cr4: 0x10, efer: 0 }, true);
        m
    }

    /// Linear address of the `i`th 4 KiB page of [`mmu`]'s page tables.
    fn page(i: u32) -> u32 {
        (4 << 20) + i * 4096
    }

    /// Guest-physical address of the PTE of [`page`]`(i)`.
    fn pte_of(i: u32) -> u64 {
        PT + 4 * i as u64
    }

    /// The paging registers of `m` with CR3 at a copy of its page directory: a switch to
    /// another address space that maps the same.
    fn other_space(m: &mut Mmu) -> PagingRegs {
        copy_space(m, PD2)
    }

    /// The paging registers of `m` with CR3 at a copy of its page directory made at `at`.
    fn copy_space(m: &mut Mmu, at: u64) -> PagingRegs {
        for i in 0..1024 {
            let pde = m.ram.read_u32(PD + 4 * i);
            m.ram.write_u32(at + 4 * i, pde);
        }
        PagingRegs { cr3: at as u32, ..m.regs() }
    }

    fn touch(m: &mut Mmu, linear: u32, write: bool) {
        let r = m.resolve_fault(m.kernel_window().host_addr(linear), write, false).unwrap();
        assert_eq!(r, Resolution::Handled);
    }

    /// Touches every page (a write to every `write_every`th), checking that the windows
    /// never use more than `budget` VMAs.
    fn sweep_within(m: &mut Mmu, budget: usize, write_every: u32) {
        for i in 0..PAGES {
            touch(m, (4 << 20) + i * 4096, i % write_every == 0);
            assert!(m.vmas() <= budget, "over budget: {}", m.vmas());
        }
    }

    /// The windows exist once per process: the tests that make them take turns.
    static WINDOWS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// A paging-mode flush (here CR0.WP and CR4.PGE toggles) keeps exactly the mappings
    /// a fresh walk would make the same way without setting a bit: a rewritten PTE, a
    /// cleared accessed bit, a write permission WP takes away, are dropped; the rest,
    /// large pages included, stays.
    #[test]
    fn mode_flushes_keep_what_is_still_true() {
        let _turn = WINDOWS.lock().unwrap_or_else(|e| e.into_inner());
        let mut m = mmu();
        let regs = m.regs();
        for i in [0, 8, 16, 24, 32] {
            touch(&mut m, page(i), false);
        }
        touch(&mut m, page(40), true);
        touch(&mut m, 16 << 20, false);
        let mapped = |m: &Mmu, linear: u32| m.shadow.get(WindowKind::Kernel, linear >> 12);
        let frame_0 = mapped(&m, page(0)).unwrap().phys_page;
        // The guest rewrites one PTE, clears another's accessed bit, and makes the
        // dirty page read-only.
        let pte8 = m.ram.read_u32(pte_of(8));
        m.ram.write_u32(pte_of(8), pte8 ^ 0x1000);
        let pte16 = m.ram.read_u32(pte_of(16));
        m.ram.write_u32(pte_of(16), pte16 & !pte::A);
        let pte40 = m.ram.read_u32(pte_of(40));
        m.ram.write_u32(pte_of(40), pte40 & !pte::RW);
        let pte24 = m.ram.read_u32(pte_of(24));
        m.ram.write_u32(pte_of(24), pte24 | pte::G);
        // CR4.PGE on (CR0.WP is off: a supervisor write may still write the read-only page).
        let pge = PagingRegs { cr4: regs.cr4 | (1 << 7), ..regs };
        assert_eq!(m.set_regs(pge, false), Some(true));
        assert_eq!(mapped(&m, page(0)).map(|e| e.phys_page), Some(frame_0), "unchanged: kept");
        assert!(mapped(&m, page(8)).is_none(), "rewritten: dropped");
        assert!(mapped(&m, page(16)).is_none(), "not accessed: the next access must set A");
        assert!(mapped(&m, page(40)).is_some_and(|e| e.prot.writable()), "WP off: still writable");
        assert!(mapped(&m, 16 << 20).is_some(), "the large page stays");
        assert!(mapped(&m, page(24)).is_some_and(|e| e.global) && mapped(&m, page(32)).is_some_and(|e| !e.global), "G noted");
        // CR0.WP on: the read-only page's writable mapping goes, found without a walk.
        let walked = m.stats().flush_pages_checked;
        m.set_regs(PagingRegs { cr0: regs.cr0 | (1 << 16), ..pge }, false);
        assert!(mapped(&m, page(40)).is_none(), "WP on: a read-only page is not writable at CPL 0");
        assert_eq!(m.stats().flush_pages_checked, walked);
        assert!(mapped(&m, page(24)).is_some() && mapped(&m, page(32)).is_some());
        let other = other_space(&mut m);
        m.set_regs(other, true);
        assert!(mapped(&m, page(24)).is_some() && mapped(&m, page(32)).is_none(), "a CR3 write drops only non-global pages");
        // CR4.PGE off: nothing is global any more; the mappings stay until a CR3 write.
        m.set_regs(PagingRegs { cr4: regs.cr4, ..m.regs() }, false);
        assert!(mapped(&m, page(24)).is_some());
        m.set_regs(PagingRegs { cr3: PD as u32, ..m.regs() }, true);
        assert!(mapped(&m, page(24)).is_none(), "without PGE a CR3 write drops G pages too");
        assert_eq!(m.vmas(), host_vmas());
    }

    /// The shadow counts VMAs as the host makes them, through fills, merges, permission
    /// changes and evictions; and a sweep larger than the budget stays within it.
    #[test]
    fn vma_count_follows_the_host_and_eviction_keeps_the_budget() {
        let _turn = WINDOWS.lock().unwrap_or_else(|e| e.into_inner());
        let mut m = mmu();
        assert_eq!(m.vmas(), host_vmas(), "empty windows");
        // Reads: each fault maps the run of 8 contiguous frames around it.
        for i in (0..64).step_by(3) {
            touch(&mut m, (4 << 20) + i * 4096, false);
        }
        assert_eq!(m.vmas(), host_vmas(), "read fills");
        // Writes split runs (read-write next to read-only).
        for i in [5, 17, 40, 41] {
            touch(&mut m, (4 << 20) + i * 4096, true);
        }
        assert_eq!(m.vmas(), host_vmas(), "dirty upgrades");
        // The 4 MiB page: one fill, one VMA.
        let before = m.vmas();
        touch(&mut m, 16 << 20, false);
        assert_eq!(m.vmas(), before + 2, "a 4 MiB page is one VMA (and the reservation piece after it)");
        assert_eq!(m.vmas(), host_vmas(), "large page");
        m.invlpg((4 << 20) + 17 * 4096);
        assert_eq!(m.vmas(), host_vmas(), "invlpg");

        // A small budget: sweeps over all 3072 pages, twice.
        m.set_mapping_budget(100);
        assert_eq!(m.vmas(), host_vmas(), "evicted to the new budget");
        for _ in 0..2 {
            sweep_within(&mut m, 100, 5);
        }
        assert_eq!(m.vmas(), host_vmas(), "after the sweeps");
        let s = m.stats();
        assert!(s.evictions > 0 && s.fills_evicted > 0 && s.full_flushes <= 1, "{s:?}");
        // Every page still reads what the guest's tables say.
        for i in (0..PAGES).step_by(97) {
            let t = walk::walk(&m.ram, &m.regs, (4 << 20) + i * 4096, Access::SUPERVISOR_READ).unwrap();
            m.ram.write_u32(t.phys_page, 0xC0DE_0000 | i);
            touch(&mut m, (4 << 20) + i * 4096, false);
            // SAFETY: the page was just mapped in the kernel window, readable.
            let v = unsafe { std::ptr::read_volatile((KERNEL_WINDOW_BASE + (4 << 20) + i as u64 * 4096) as *const u32) };
            assert_eq!(v, 0xC0DE_0000 | i);
        }
        m.flush_all();
        assert_eq!(m.vmas(), 2);
        assert_eq!(host_vmas(), 2);
    }

    /// A flush of the tables in use (here CR4.PGE toggles) walks only the mappings whose
    /// guest entries changed since they were checked, and still finds every change: a PTE
    /// rewritten, one rewritten and written back after a fill saw the other value (the
    /// fill must not take the old value as checked), and a PDE pointed at another table.
    #[test]
    fn flushes_of_the_same_tables_check_only_what_changed() {
        let _turn = WINDOWS.lock().unwrap_or_else(|e| e.into_inner());
        let mut m = mmu();
        let mapped = |m: &Mmu, i: u32| m.shadow.get(WindowKind::Kernel, page(i) >> 12).map(|e| e.phys_page);
        let frame = |m: &Mmu, i: u32| (m.ram.read_u32(pte_of(i)) >> 12) as u64;
        for i in (0..2048).step_by(16) {
            touch(&mut m, page(i), false);
        }
        touch(&mut m, 16 << 20, false);
        let live = m.shadow.mapped();
        let regs = m.regs();
        let toggle = |m: &mut Mmu| {
            let on = PagingRegs { cr4: m.regs().cr4 ^ (1 << 7), ..m.regs() };
            assert_eq!(m.set_regs(on, false), Some(true));
            assert_eq!(m.shadow.derived.live() as usize, m.shadow.mapped(), "every live mapping recorded once");
        };
        toggle(&mut m);
        assert_eq!((m.stats().flush_pages_checked, m.shadow.mapped()), (0, live), "nothing changed: nothing walked, all kept");

        // One PTE rewritten: one walk, that page goes.
        let other = (0x1F00 << 12) | pte::P | pte::RW | pte::A;
        let old16 = m.ram.read_u32(pte_of(16));
        m.ram.write_u32(pte_of(16), other);
        toggle(&mut m);
        assert_eq!(m.stats().flush_pages_checked, 1);
        assert!(mapped(&m, 16).is_none() && mapped(&m, 32).is_some());
        touch(&mut m, page(16), false);
        assert_eq!(mapped(&m, 16), Some(0x1F00));

        // Written back without a flush after the fill saw the other value: the mapping of
        // 0x1F00 must not survive the next flush although the entry reads as recorded.
        m.ram.write_u32(pte_of(16), old16);
        let old48 = m.ram.read_u32(pte_of(48));
        m.ram.write_u32(pte_of(48), other);
        m.invlpg(page(48));
        touch(&mut m, page(48), false);
        assert_eq!(mapped(&m, 48), Some(0x1F00));
        m.ram.write_u32(pte_of(48), old48);
        toggle(&mut m);
        assert_eq!(mapped(&m, 16), None, "the page rewritten back");
        assert_eq!(mapped(&m, 48), None, "filled from a value since replaced");

        // A mapping widened (written) after the flush that recorded its entry read-only,
        // the entry then made read-only again as recorded: it must not stay writable.
        let pte_ro = m.ram.read_u32(pte_of(64)) & !pte::RW;
        m.ram.write_u32(pte_of(64), pte_ro);
        toggle(&mut m);
        assert!(mapped(&m, 64).is_some());
        m.ram.write_u32(pte_of(64), pte_ro | pte::RW);
        touch(&mut m, page(64), true);
        assert!(m.shadow.get(WindowKind::Kernel, page(64) >> 12).is_some_and(|e| e.prot.writable()));
        m.ram.write_u32(pte_of(64), pte_ro);
        toggle(&mut m);
        assert!(!m.shadow.get(WindowKind::Kernel, page(64) >> 12).is_some_and(|e| e.prot.writable()), "read-only again");

        // A PDE pointed at a copy of its page table: every page of the region is walked,
        // and goes (its table is another).
        let checked = m.stats().flush_pages_checked;
        let in_region = (1024..2048).filter(|&i| mapped(&m, i).is_some()).count() as u64;
        let copy = PT + 8 * 4096;
        for i in 0..1024 {
            let e = m.ram.read_u32(PT + 4096 + 4 * i);
            m.ram.write_u32(copy + 4 * i, e);
        }
        m.ram.write_u32(PD + 4 * 2, copy as u32 | pte::P | pte::RW | pte::A);
        toggle(&mut m);
        assert_eq!(m.stats().flush_pages_checked - checked, in_region);
        assert!((1024..2048).all(|i| mapped(&m, i).is_none()));
        assert!(mapped(&m, 0).is_some_and(|f| f == frame(&m, 0)) && m.shadow.get(WindowKind::Kernel, 16 << 8).is_some());
        // The region filled again from the new table is checked by its entries again.
        touch(&mut m, page(1024 + 5), false);
        let checked = m.stats().flush_pages_checked;
        m.set_regs(regs, true);
        assert_eq!(m.stats().flush_pages_checked, checked, "a CR3 reload with nothing changed walks nothing");
        m.ram.write_u32(copy + 4 * 5, other);
        m.set_regs(regs, true);
        assert_eq!((m.stats().flush_pages_checked - checked, mapped(&m, 1024 + 5)), (1, None));
        assert_eq!(m.shadow.derived.live() as usize, m.shadow.mapped());
        assert_eq!(m.vmas(), host_vmas());
    }

    /// Random guest behaviour — entries rewritten (frames from a small pool, so that old
    /// values come back), PDEs pointed at other tables or made large pages, accesses from
    /// both windows, and every kind of flush — never leaves a mapping that the guest's
    /// tables no longer give after a flush that keeps mappings, never loses count of the
    /// live ones, and never panics.
    #[test]
    fn random_table_changes_never_leave_stale_mappings() {
        let _turn = WINDOWS.lock().unwrap_or_else(|e| e.into_inner());
        for seed in 1..=16u64 {
            // A kernel window for all, for two, or for one of the four address spaces.
            let mut m = mmu_with([1, KERNEL_WINDOWS, 1, 2][seed as usize % 4]);
            m.check_flushes = true;
            let spaces = four_spaces(&mut m);
            let mut next = xorshift(seed);
            // Few pages, frames and entry values, so that values come back often (the
            // cases a comparison at the flush can miss).
            const FLAGS: [u32; 6] = [
                pte::P | pte::RW | pte::A | pte::D,
                pte::P | pte::A,
                pte::P | pte::RW | pte::US | pte::A | pte::D,
                pte::P | pte::US | pte::A,
                pte::P | pte::RW | pte::US | pte::A | pte::G,
                0,
            ];
            for _ in 0..3000 {
                match next(10) {
                    0..=3 => {
                        let i = next(8) as u32 + 1024 * next(2) as u32;
                        let (write, user) = (next(2) == 1, next(3) == 0);
                        let host = m.window_for_cpl(if user { 3 } else { 0 }).host_addr(page(i));
                        let _ = m.resolve_fault(host, write, false);
                    }
                    4..=5 => {
                        let i = next(8) as u32 + 1024 * next(2) as u32;
                        m.ram.write_u32(pte_of(i), ((0x300 + next(2) as u32) << 12) | FLAGS[next(6) as usize]);
                    }
                    6 => {
                        let region = 1 + next(4);
                        let pde = match next(3) {
                            0 => (PT + 4096 * next(3)) as u32 | pte::P | pte::RW | pte::US | pte::A,
                            1 => (0x0100_0000 + 0x0040_0000 * next(2) as u32) | pte::PS | pte::P | pte::RW | pte::A | pte::D,
                            _ => (PT + 4096 * (region - 1)) as u32 | pte::P | pte::RW | pte::US | pte::A,
                        };
                        m.ram.write_u32(PD + 4 * region, pde);
                    }
                    7 => {
                        let r = m.regs();
                        let bit = if next(2) == 0 { 1 << 7 } else { 1 << 16 };
                        let r = if bit == 1 << 7 { PagingRegs { cr4: r.cr4 ^ bit, ..r } } else { PagingRegs { cr0: r.cr0 ^ bit, ..r } };
                        m.set_regs(r, false);
                    }
                    8 => {
                        let r = m.regs();
                        let cr3 = if next(3) == 0 { spaces[next(4) as usize] } else { r.cr3 };
                        m.set_regs(PagingRegs { cr3, ..r }, true);
                    }
                    _ => {
                        m.invlpg(page(next(8) as u32 + 1024 * next(2) as u32));
                    }
                }
                assert_eq!(m.shadow.derived.live() as usize, m.shadow.mapped(), "seed {seed:#x}: live mappings recorded once");
                assert_eq!(m.stats().stale_after_flush, 0, "seed {seed:#x}: a flush kept a stale mapping");
            }
            if m.kernel_windows() > 1 {
                assert!(m.stats().kernel_window_returns > 10, "seed {seed:#x}: switches back to a kept kernel window");
            }
            if m.kernel_windows() == 2 {
                assert!(m.stats().kernel_window_reuses > 10, "seed {seed:#x}: kernel windows taken over by another address space");
            }
            // The other address spaces' directories were copied before any change.
            m.flush_all();
        }
    }

    /// A xorshift generator from `seed`: `next(n)` is in `0..n`.
    fn xorshift(seed: u64) -> impl FnMut(u64) -> u64 {
        let mut x = seed;
        move |n| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        }
    }

    /// The CR3 values of `m`'s directory and of three copies of it.
    fn four_spaces(m: &mut Mmu) -> [u32; 4] {
        [m.regs().cr3, other_space(m).cr3, copy_space(m, PD3).cr3, copy_space(m, PD4).cr3]
    }

    /// The pages the host gives access to in window `w` (from `/proc/self/maps`): by
    /// offset in the window, the RAM file offset and permissions of each.
    fn host_pages(w: WindowKind) -> BTreeMap<u64, (u64, Prot)> {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let (lo, hi) = (w.base(), w.base() + WINDOW_SIZE + PAGE_SIZE);
        let mut pages = BTreeMap::new();
        for line in maps.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (start, end) = f[0].split_once('-').unwrap();
            let (start, end) = (u64::from_str_radix(start, 16).unwrap(), u64::from_str_radix(end, 16).unwrap());
            let perms = f[1].as_bytes();
            if end <= lo || start >= hi || perms[0] != b'r' {
                continue;
            }
            let prot = Prot::readable(perms[1] == b'w', perms[2] == b'x');
            let offset = u64::from_str_radix(f[2], 16).unwrap();
            for a in (start.max(lo)..end.min(hi)).step_by(PAGE_SIZE as usize) {
                pages.insert(a - lo, (offset + (a - start), prot));
            }
        }
        pages
    }

    /// Random accesses (fetches among them), table changes, flushes and switches between
    /// four address spaces, with the user windows per address space serving directly
    /// executed code: a copy of the window in use that takes its changes (as the
    /// sandbox's stub of that address space does before it runs guest code) holds exactly
    /// what the host maps in the window — a page the window maps and the copy lacks would
    /// fault in the copy forever (the monitor finds nothing to fill), one the copy keeps
    /// after the window dropped it is a stale mapping.
    #[test]
    fn copies_of_the_windows_native_code_runs_from_stay_exact() {
        let _turn = WINDOWS.lock().unwrap_or_else(|e| e.into_inner());
        for seed in 1..=8u64 {
            let mut m = mmu_built([KERNEL_WINDOWS, 2][seed as usize % 2], true);
            // User code may use the first two regions (before the copies are made).
            for region in 1..=2u64 {
                m.ram.write_u32(PD + 4 * region, (PT + 4096 * (region - 1)) as u32 | pte::P | pte::RW | pte::US | pte::A);
            }
            let spaces = four_spaces(&mut m);
            let mut copies: Vec<BTreeMap<u64, (u64, Prot)>> = vec![BTreeMap::new(); WindowKind::COUNT];
            let mut next = xorshift(seed);
            const FLAGS: [u32; 4] =
                [pte::P | pte::RW | pte::US | pte::A | pte::D, pte::P | pte::US | pte::A, pte::P | pte::RW | pte::US | pte::A | pte::G, 0];
            let (mut compared, mut executable) = (0, 0);
            for step in 0..1500 {
                match next(10) {
                    0..=4 => {
                        let i = next(8) as u32 + 1024 * next(2) as u32;
                        let (write, fetch) = (next(3) == 0, next(3) == 0);
                        let _ = m.resolve_fault(m.native_window().host_addr(page(i)), write && !fetch, fetch);
                    }
                    5 => {
                        let i = next(8) as u32 + 1024 * next(2) as u32;
                        m.ram.write_u32(pte_of(i), ((0x300 + next(2) as u32) << 12) | FLAGS[next(4) as usize]);
                    }
                    6 | 7 => {
                        let r = m.regs();
                        let cr3 = if next(2) == 0 { spaces[next(4) as usize] } else { r.cr3 };
                        m.set_regs(PagingRegs { cr3, ..r }, true);
                    }
                    _ => {
                        m.invlpg(page(next(8) as u32 + 1024 * next(2) as u32));
                    }
                }
                if next(4) == 0 || step == 1499 {
                    let w = m.native_window();
                    assert!(w.is_user() && w != WindowKind::User, "directly executed code runs from the address space's own window");
                    let copy = &mut copies[w.index()];
                    let changes = m.take_mirror_changes(w).expect("the window is copied");
                    if changes.unmap_all {
                        copy.clear();
                    }
                    for run in changes.runs {
                        for i in 0..run.pages {
                            let at = run.at + i * PAGE_SIZE;
                            match run.mapping {
                                Some((offset, prot)) => copy.insert(at, (offset + i * PAGE_SIZE, prot)),
                                None => copy.remove(&at),
                            };
                        }
                    }
                    assert_eq!(*copy, host_pages(w), "seed {seed:#x} step {step}: the copy of {w:?}");
                    compared += 1;
                    executable += copy.values().filter(|(_, p)| p.executable()).count();
                }
            }
            assert!(
                compared > 100 && copies.iter().filter(|c| !c.is_empty()).count() >= 2,
                "seed {seed:#x}: copies of several windows checked"
            );
            assert!(executable > 0, "seed {seed:#x}: native code's pages copied");
            m.flush_all();
        }
    }

    /// A CR3 write of the value it holds (an OS flushing its own TLB) checks the mappings
    /// against the tables: those still true stay, with no host call; one whose PTE the
    /// guest changed is parked, and a fault that finds the same frame takes it back with
    /// the new permission; one not accessed any more is parked until an access sets A.
    #[test]
    fn cr3_reloads_keep_what_the_tables_still_give() {
        let _turn = WINDOWS.lock().unwrap_or_else(|e| e.into_inner());
        let mut m = mmu();
        // (CR0.WP on: a read-only page is read-only at CPL 0 too.)
        let regs = PagingRegs { cr0: m.regs().cr0 | (1 << 16), ..m.regs() };
        m.set_regs(regs, false);
        let host = |i: u32| KERNEL_WINDOW_BASE + page(i) as u64;
        for i in [0, 100, 200] {
            touch(&mut m, page(i), true);
        }
        let mapped = m.shadow.mapped();
        assert!(mapped >= 3);
        m.set_regs(regs, true);
        let s = m.stats();
        assert_eq!((m.shadow.mapped(), s.parked, s.cr3_reloads_revalidated), (mapped, 0, 1), "nothing changed: all kept");
        assert_eq!(host_perms(host(100)), "rw-");

        // The guest write-protects page 100 (as for copy-on-write) and clears page 200's
        // accessed bit, then flushes.
        let pte100 = m.ram.read_u32(pte_of(100));
        m.ram.write_u32(pte_of(100), pte100 & !pte::RW);
        let pte200 = m.ram.read_u32(pte_of(200));
        m.ram.write_u32(pte_of(200), pte200 & !pte::A);
        m.set_regs(regs, true);
        assert_eq!(m.shadow.mapped(), mapped - 2);
        assert_eq!((host_perms(host(0)), host_perms(host(100)), host_perms(host(200))), ("rw-".into(), "---".into(), "---".into()));
        assert_eq!(m.stats().parked, 2);
        assert_eq!(m.vmas(), host_vmas(), "parked at a reload");
        touch(&mut m, page(100), false);
        assert_eq!((host_perms(host(100)), m.stats().unparked), ("r--".into(), 1), "the same frame, read-only now");
        touch(&mut m, page(200), false);
        assert!(m.ram.read_u32(pte_of(200)) & pte::A != 0, "the access set A again");
        assert_eq!(m.vmas(), host_vmas());
    }

    /// A CR3 write parks the non-global pages: they stay in the host's mappings without
    /// access, counted as the VMAs they are; a fill of the same frame gives the access back
    /// (one `mprotect`), a fill after the guest remapped the page maps the new frame, and
    /// a full flush drops parked pages with the rest.
    #[test]
    fn cr3_writes_park_pages_that_same_frame_fills_take_back() {
        let _turn = WINDOWS.lock().unwrap_or_else(|e| e.into_inner());
        let mut m = mmu();
        let regs = m.regs();
        let host = |i: u32| KERNEL_WINDOW_BASE + page(i) as u64;
        // SAFETY: reads of kernel-window pages the caller has just filled.
        let read = |i: u32| unsafe { std::ptr::read_volatile(host(i) as *const u32) };
        for i in [0, 9, 20] {
            touch(&mut m, page(i), false);
        }
        let mapped = m.shadow.mapped() as u64;
        assert!(mapped >= 3);
        let other = other_space(&mut m);
        m.set_regs(other, true);
        assert_eq!((m.shadow.mapped(), m.stats().parked), (0, mapped), "a CR3 write parks every page");
        assert_eq!(host_perms(host(9)), "---", "a parked page is not accessible");
        assert_eq!(m.vmas(), host_vmas(), "parked pages");

        // The guest maps page 20 to another frame while it is parked.
        let pte20 = PT + 4 * 20;
        let old = m.ram.read_u32(pte20);
        m.ram.write_u32(pte20, (0x1F00 << 12) | pte::P | pte::RW | pte::A);
        m.ram.write_u32(0x1F00 << 12, 0x0F1E_0020);

        let t = walk::walk(&m.ram, &m.regs, page(9), Access::SUPERVISOR_READ).unwrap();
        m.ram.write_u32(t.phys_page, 0x5A4E_0009);
        touch(&mut m, page(9), false);
        let unparked = m.stats().unparked;
        assert!(unparked > 1, "the same frame: taken back, with its parked neighbours");
        assert_eq!((host_perms(host(9)), read(9)), ("r--".to_string(), 0x5A4E_0009));
        assert_eq!(host_perms(host(20)), "---", "not a neighbour whose frame changed");
        assert_eq!(m.vmas(), host_vmas(), "pages taken back");

        touch(&mut m, page(20), false);
        assert_eq!(m.stats().unparked, unparked, "another frame: mapped anew");
        assert_eq!(read(20), 0x0F1E_0020);
        assert_eq!(m.vmas(), host_vmas(), "a parked page mapped over");
        m.ram.write_u32(pte20, old);

        // Parked pages hold VMAs: eviction drops them like mapped ones.
        for i in 0..200 {
            touch(&mut m, page(i * 5), false);
        }
        m.set_regs(regs, true);
        m.set_mapping_budget(100);
        sweep_within(&mut m, 100, u32::MAX);
        assert_eq!(m.vmas(), host_vmas(), "after evictions of parked pages");

        m.set_regs(other, true);
        m.flush_all();
        assert_eq!((m.vmas(), host_vmas()), (2, 2), "a full flush drops parked pages too");
    }

    /// `invlpg` anywhere in a 4 MiB page drops every piece of it, also where that piece is
    /// not mapped: a page of translated code splits the large page's fill, and its address
    /// is the one invalidated (the `pt_modes` guest kernel's case).
    #[test]
    fn invlpg_in_a_large_page_drops_all_of_it() {
        let _turn = WINDOWS.lock().unwrap_or_else(|e| e.into_inner());
        let mut m = mmu();
        let big = 16u32 << 20;
        let code = big + 0x10_0000;
        let code_frame = m.frame_of(code).unwrap();
        m.protect_code_page(code_frame);
        touch(&mut m, big + 0x1000, false);
        touch(&mut m, big + 0x20_0000, false);
        let mapped = |m: &Mmu, l: u32| m.shadow.get(WindowKind::Kernel, l >> 12).is_some();
        assert!(!mapped(&m, code) && mapped(&m, big + 0x1000) && mapped(&m, big + 0x20_0000), "the code page is a hole");
        assert_eq!(m.invlpg(code), Some((big >> 12, 1024)));
        assert!(!mapped(&m, big + 0x1000) && !mapped(&m, big + 0x20_0000), "the whole large page is gone");
        assert_eq!(m.vmas(), host_vmas());
        // The same after a mode flush (CR4.PGE on) that kept the pieces.
        touch(&mut m, big + 0x1000, false);
        let regs = m.regs();
        assert_eq!(m.set_regs(PagingRegs { cr4: regs.cr4 | (1 << 7), ..regs }, false), Some(true));
        assert!(mapped(&m, big + 0x1000), "kept by the mode flush");
        assert_eq!(m.invlpg(code), Some((big >> 12, 1024)));
        assert!(!mapped(&m, big + 0x1000), "dropped by an invlpg in the hole");
        m.set_regs(regs, false);
        // Used only by the monitor's own accesses (as code fetches are): still large.
        m.translate(big + 0x3000, Access::SUPERVISOR_READ).unwrap();
        assert_eq!(m.invlpg(big + 0x5000), Some((big >> 12, 1024)));
        assert_eq!(m.invlpg(big + 0x5000), None, "nothing of it used since");
        m.flush_all();
    }

    /// A mapping the host refuses (`ENOMEM`) is retried after an eviction, with a lower
    /// budget; one it keeps refusing fails the fill with `Exhausted`, leaving nothing of it
    /// mapped.
    /// A host that will not give the address space for more windows (something else is
    /// there) leaves the MMU with those it has, working: an error, no panic.
    #[test]
    fn windows_the_host_will_not_give_leave_a_working_mmu() {
        let _turn = WINDOWS.lock().unwrap_or_else(|e| e.into_inner());
        let (lo, hi) = WindowKind::kernel(2).reservation();
        // SAFETY: an anonymous mapping at an address no window holds now (the windows take
        // turns under WINDOWS), removed below.
        let blocker = unsafe {
            libc::mmap(
                lo as *mut libc::c_void,
                4096,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        assert_eq!(blocker as u64, lo, "the test needs {lo:#x}..{hi:#x} free");
        let ram = GuestRam::new(32 << 20).unwrap();
        let mut m = Mmu::new(ram, Window::reserve(WindowKind::User).unwrap(), Window::reserve(WindowKind::Kernel).unwrap()).unwrap();
        let e = m.add_kernel_windows(KERNEL_WINDOWS).unwrap_err();
        assert!(matches!(e, WindowError::AddressInUse(..)), "{e}");
        assert_eq!(m.kernel_windows(), 2, "the windows reserved before the refusal stay");
        assert!(m.add_translated_user_windows(true).is_err(), "it needs every kernel window's place");
        assert_eq!(m.native_window(), WindowKind::User, "directly executed code keeps the user window");
        assert_eq!(m.translated_user_window(), WindowKind::User, "translated user code keeps the user window");
        drop(m);
        // SAFETY: unmapping the page mapped above.
        unsafe { libc::munmap(blocker, 4096) };
        // And with the place free again, all of them.
        let mut m = mmu_with(KERNEL_WINDOWS);
        assert_eq!(m.kernel_windows(), KERNEL_WINDOWS);
        touch(&mut m, page(3), false);
    }

    #[test]
    fn host_refusals_evict_and_retry_then_fail_cleanly() {
        use crate::window::tests::REFUSE_MAPS;
        let _turn = WINDOWS.lock().unwrap_or_else(|e| e.into_inner());
        let mut m = mmu();
        for i in 0..400 {
            touch(&mut m, (4 << 20) + i * 4096, false);
        }
        let (used, budget) = (m.vmas(), m.stats().vma_budget as usize);
        REFUSE_MAPS.store(1, Ordering::SeqCst);
        touch(&mut m, (8 << 20) + 5 * 4096, false);
        let s = m.stats();
        assert_eq!(s.host_refusals, 1);
        assert!((s.vma_budget as usize) < budget && (s.vma_budget as usize) <= used, "budget lowered: {s:?}");
        assert!(m.vmas() < used && m.vmas() <= s.vma_budget as usize, "evicted: {} VMAs of {used}", m.vmas());
        assert_eq!(m.vmas(), host_vmas());
        // Refused again after the retry: the fill fails, with the message for the user.
        REFUSE_MAPS.store(2, Ordering::SeqCst);
        let linear = (12 << 20) + 7 * 4096;
        let e = m.resolve_fault(KERNEL_WINDOW_BASE + linear as u64, false, false).unwrap_err();
        assert!(matches!(e, WindowError::Exhausted { .. }) && e.to_string().contains("vm.max_map_count"), "{e}");
        assert_eq!(REFUSE_MAPS.load(Ordering::SeqCst), 0);
        assert!(m.shadow.get(WindowKind::Kernel, linear >> 12).is_none());
        assert_eq!(m.vmas(), host_vmas());
        // The host relents: the guest goes on.
        touch(&mut m, linear, false);
        assert_eq!(m.vmas(), host_vmas());
    }

    /// The host's permissions (`/proc/self/maps`, as "rwx" with dashes) at `addr`.
    fn host_perms(addr: u64) -> String {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let line = maps
            .lines()
            .find(|l| {
                let range = l.split(' ').next().unwrap();
                let (lo, hi) = range.split_once('-').unwrap();
                (u64::from_str_radix(lo, 16).unwrap()..u64::from_str_radix(hi, 16).unwrap()).contains(&addr)
            })
            .unwrap();
        line.split(' ').nth(1).unwrap()[..3].to_string()
    }

    /// Makes linear page `i` of the first 4 MiB region (4 MiB + 4 KiB * i) map `frame`,
    /// writable, accessed and dirty; a user page if `user`.
    fn map_page(m: &mut Mmu, i: u32, frame: u32, user: bool) {
        let us = if user { pte::US } else { 0 };
        let pde = m.ram.read_u32(PD + 4);
        m.ram.write_u32(PD + 4, pde | pte::US);
        m.ram.write_u32(PT + 4 * i as u64, (frame << 12) | pte::P | pte::RW | pte::A | pte::D | us);
    }

    /// W^X holds per frame: a frame mapped executable at one user address is read-only at
    /// every other (a writable user alias, the kernel window); a write through any of them
    /// (or by the monitor) takes the execute permission away and then goes through; the
    /// next fetch checks the bytes again and refuses to map `syscall` executable.
    #[test]
    fn native_code_is_write_protected_in_every_mapping_of_its_frame() {
        let _turn = WINDOWS.lock().unwrap_or_else(|e| e.into_inner());
        let mut m = mmu();
        const FRAME: u32 = 0x1800;
        let (x, y, k) = ((4 << 20) as u32, (4 << 20) + 2 * 4096, (4 << 20) + 4 * 4096);
        map_page(&mut m, 0, FRAME, true);
        map_page(&mut m, 2, FRAME, true);
        map_page(&mut m, 4, FRAME, false);
        m.ram.write(FRAME as u64 * PAGE_SIZE, &[0xC3]);
        let user = |l: u32| WindowKind::User.host_addr(l);
        let kernel = |l: u32| WindowKind::Kernel.host_addr(l);
        let prot = |m: &Mmu, w: WindowKind, l: u32| m.shadow.get(w, l >> 12).unwrap().prot;
        let resolve = |m: &mut Mmu, host: u64, write: bool, fetch: bool| m.resolve_fault(host, write, fetch).unwrap();

        // The alias is written first (writable), then the frame runs at x: the alias
        // becomes read-only.
        assert_eq!(resolve(&mut m, user(y), true, false), Resolution::Handled);
        assert_eq!(prot(&m, WindowKind::User, y), Prot::ReadWrite);
        assert_eq!(m.on_host_fault(user(x), false, true), HostFault::Filled);
        assert_eq!(prot(&m, WindowKind::User, x), Prot::ReadExec);
        assert_eq!(prot(&m, WindowKind::User, y), Prot::Read);
        assert_eq!((host_perms(user(x)), host_perms(user(y))), ("r-x".into(), "r--".into()));
        assert_eq!(m.stats().native_write_protects, 1);

        // A write through the alias is the run loop's: x loses execute, y is writable.
        assert_eq!(m.on_host_fault(user(y), true, false), HostFault::Exit);
        assert_eq!(resolve(&mut m, user(y), true, false), Resolution::Handled);
        assert_eq!(prot(&m, WindowKind::User, x), Prot::Read);
        assert_eq!(prot(&m, WindowKind::User, y), Prot::ReadWrite);
        assert_eq!((host_perms(user(x)), host_perms(user(y))), ("r--".into(), "rw-".into()));
        assert_eq!(m.stats().native_code_writes, 1);
        // It writes `syscall` there: the next fetch checks the frame again and refuses.
        // SAFETY: y is mapped writable in the user window (checked above).
        unsafe { std::ptr::copy_nonoverlapping([0x0F, 0x05, 0xC3].as_ptr(), user(y) as *mut u8, 3) };
        assert_eq!(m.on_host_fault(user(x), false, true), HostFault::Exit);
        assert_eq!(resolve(&mut m, user(x), false, true), Resolution::Translate);
        assert_eq!(prot(&m, WindowKind::User, x), Prot::Read);
        assert_eq!(prot(&m, WindowKind::User, y), Prot::ReadWrite);

        // Clean code again (a store the monitor makes, through y): x runs natively again.
        m.write(y, &[0xC3, 0xC3], true).unwrap();
        assert_eq!(resolve(&mut m, user(x), false, true), Resolution::Handled);
        assert_eq!(prot(&m, WindowKind::User, x), Prot::ReadExec);
        assert_eq!(prot(&m, WindowKind::User, y), Prot::Read);

        // The kernel window's mapping of the frame: read-only while x is executable; a
        // write through it (the guest kernel's) takes execute away, then goes through.
        assert_eq!(m.on_host_fault(kernel(k), false, false), HostFault::Filled);
        assert_eq!(prot(&m, WindowKind::Kernel, k), Prot::Read);
        assert_eq!(m.on_host_fault(kernel(k), true, false), HostFault::Exit);
        assert_eq!(resolve(&mut m, kernel(k), true, false), Resolution::Handled);
        assert_eq!(prot(&m, WindowKind::Kernel, k), Prot::ReadWrite);
        assert_eq!(prot(&m, WindowKind::User, x), Prot::Read);
        assert_eq!(host_perms(kernel(k)), "rw-");
        // SAFETY: k is mapped writable in the kernel window (checked above).
        unsafe { std::ptr::copy_nonoverlapping([0x90, 0x0F, 0xA2].as_ptr(), kernel(k) as *mut u8, 3) };
        assert_eq!(resolve(&mut m, user(x), false, true), Resolution::Translate);
        // And back: clean code runs natively, and the kernel's mapping is read-only again.
        m.write(k, &[0xC3, 0xC3, 0xC3], false).unwrap();
        assert_eq!(resolve(&mut m, user(x), false, true), Resolution::Handled);
        assert_eq!(prot(&m, WindowKind::Kernel, k), Prot::Read);
        assert_eq!(host_perms(kernel(k)), "r--");
        // A monitor store through x itself (an emulated instruction's) takes execute too.
        m.write(x + 8, &[0x90], true).unwrap();
        assert_eq!(prot(&m, WindowKind::User, x), Prot::Read);
        let s = m.stats();
        assert_eq!((s.native_write_protects, s.native_code_writes), (3, 3), "{s:?}");
        assert_eq!(m.vmas(), host_vmas());
        m.flush_all();
        assert!(!m.shadow.is_native(FRAME as u64));
    }

    /// What parking saves, measured on the windows themselves (a measurement, not a test:
    /// `cargo test --release -p bt86-shadow-mmu --lib parking_costs -- --ignored
    /// --nocapture`): a page mapped, touched and reserved again, against a mapped page
    /// whose access is taken away and given back, touched.
    #[test]
    #[ignore = "a measurement"]
    fn parking_costs() {
        let _turn = WINDOWS.lock().unwrap_or_else(|e| e.into_inner());
        let mut m = mmu();
        const N: u32 = 2000;
        let w = &mut m.windows[WindowKind::Kernel.index()];
        let host = |linear: u32| KERNEL_WINDOW_BASE + linear as u64;
        // SAFETY: a read of a window page mapped (or given access) just before.
        let touch_host = |linear: u32| unsafe { std::ptr::read_volatile(host(linear) as *const u8) };
        for round in 0..3 {
            let t = std::time::Instant::now();
            for i in 0..N {
                let linear = (64 << 20) + (i % 512) * 2 * 4096;
                w.map(&m.ram, linear, ((i % 1000) as u64) << 12, 1, Prot::ReadWrite).unwrap();
                touch_host(linear);
                w.unmap(linear, 1).unwrap();
            }
            let mapped = t.elapsed().as_nanos() / N as u128;
            for i in 0..512 {
                w.map(&m.ram, (80 << 20) + i * 2 * 4096, (i as u64) << 12, 1, Prot::ReadWrite).unwrap();
            }
            let t = std::time::Instant::now();
            for i in 0..N {
                let linear = (80 << 20) + (i % 512) * 2 * 4096;
                w.park(linear, 1).unwrap();
                w.unpark(linear, &[(i % 512) as u64], Prot::ReadWrite).unwrap();
                touch_host(linear);
            }
            let parked = t.elapsed().as_nanos() / N as u128;
            eprintln!("round {round}: map + touch + unmap {mapped} ns; park + unpark + touch {parked} ns");
        }
        w.unmap_all().unwrap();
    }
}
