//! The bt86 binary translator: runs 32-bit x86 guest code (kernel code, and any code
//! the monitor decides not to run directly) as x86-64 host code.
//!
//! Guest code is fetched through [`CodeMemory`], decoded with iced-x86
//! ([`decode`]), classified ([`classify`]: IDENT, expanded, inline, or callout to the
//! monitor) and emitted with dynasmrt ([`emit`]) into basic-block *fragments* in a
//! translation cache at a fixed host address ([`tc`]). Guest registers live in host
//! registers (ESP in R12D), guest flags in the host RFLAGS, and every guest memory access
//! goes through a window (the kernel window, or for user code the user window, of the
//! address space in use, see [`Translator::set_windows`]) via a GS segment
//! and 32-bit addressing, so it lands in the window whatever the guest computes (see
//! docs/architecture.md). Direct branches are chained by patching
//! rel32 jumps ([`chain`]); indirect branches consult a per-mode lookup table inline
//! ([`ibl`]). Translated code returns to the monitor only for callouts, lookup misses,
//! unlinked exits, pending interrupts ("kicks") and host faults ([`ExitReason`]); a
//! fault's guest state is reconstructed precisely ([`fault`]).
//!
//! The monitor owns the run loop: it looks fragments up ([`Translator::lookup`]),
//! translates misses ([`Translator::translate`]), enters them ([`Translator::run`]),
//! links exits ([`Translator::link`]), and invalidates fragments whose guest code
//! pages were written ([`Translator::invalidate_page`]). Guest TLB flushes drop what
//! translated code reaches without a lookup ([`reach`]). When the cache fills, it is
//! flushed whole and a new generation of ids begins ([`FragId`]).

#![deny(missing_docs)]

mod chain;
pub mod classify;
pub mod context;
pub mod decode;
mod emit;
pub mod fault;
pub mod fragment;
mod ibl;
pub mod mode;
pub mod model;
pub mod reach;
pub mod stats;
pub mod stubs;
pub mod tc;
pub mod trace;
mod translate;

use rustc_hash::FxHashMap as HashMap;

pub use context::{
    Context, ContextBox, ExitReason, FxArea, HostFault, IblTable, KICK_PAGE_OFFSET, SREG_RELOAD_DESCRIPTOR, SREG_RELOAD_NEVER,
    SREG_RELOAD_NULL, Seg, arm_kick, disarm_kick, flags, kick_page_of, reg,
};
pub use decode::{CodeMemory, CodePage, FetchFault};
pub use fault::{HostRegs, Recovered};
pub use fragment::{Callout, CalloutId, CalloutKind, FragId, FragKey, Fragment, Link, LinkId};
pub use mode::Mode;
pub use model::PushSregModel;
pub use stats::TranslatorStats;
pub use stubs::Stubs;
pub use tc::TcError;
pub use translate::{Request, TranslateError};

use fragment::FragmentTable;
use tc::CodeCache;

/// Default translation cache size.
pub const DEFAULT_TC_SIZE: usize = 64 << 20;
/// Smallest translation cache: the stubs plus room for several fragments of the longest
/// kind (a fragment too big for an empty cache is retranslated shorter).
pub const MIN_TC_SIZE: usize = 16 << 10;
/// Largest translation cache: chaining patches rel32 jumps, which reach ±2 GiB.
pub const MAX_TC_SIZE: usize = 1 << 30;
/// Size of the stack translated code runs on. Guest calls nest on it (each translated
/// `call` pushes a host return address), and every exit to the monitor empties it.
pub const TC_STACK_SIZE: usize = 64 << 20;

/// How many host faults on device memory one guest instruction takes before it is
/// translated as a [`CalloutKind::Device`] callout instead (a driver's EOI or timer
/// store: a callout costs a few hundred cycles, a host fault thousands).
pub const DEVICE_FAULTS_BEFORE_CALLOUT: u32 = 4;

/// Where the windows are: the host address of guest linear 0 in the window for CPL 3
/// code and in the one for CPL 0-2 code. Translated code reaches guest memory only
/// through them (GS base + 32-bit address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowBases {
    /// The user window's base.
    pub user: u64,
    /// The kernel window's base.
    pub kernel: u64,
}

impl WindowBases {
    /// The base of the window code of `mode` runs in.
    pub fn for_mode(&self, mode: Mode) -> u64 {
        if mode.cpl() == 3 { self.user } else { self.kernel }
    }
}

/// The translator and its cache.
pub struct Translator {
    tc: CodeCache,
    stack: tc::TcStack,
    stubs: Stubs,
    table: FragmentTable,
    ibl: HashMap<Mode, Box<IblTable>>,
    ibl_mode: Option<Mode>,
    stats: TranslatorStats,
    trace: bool,
    count_entries: bool,
    /// Where new fragments are named for `perf` (`--perf-map`), if anywhere.
    perf_map: Option<std::io::LineWriter<std::fs::File>>,
    /// What a 32-bit `push sreg` stores (the host CPU's choice, see [`model`]).
    push_sreg: PushSregModel,
    /// The GS base this thread has now (the window of the current privilege level).
    gs_base: Option<u64>,
    /// The windows translated code addresses.
    windows: WindowBases,
    /// Device-memory faults per guest instruction (linear address); at
    /// [`DEVICE_FAULTS_BEFORE_CALLOUT`] the instruction is translated as a callout.
    device_faults: HashMap<u32, u32>,
}

impl Translator {
    /// A translator with a cache of `tc_size` bytes ([`MIN_TC_SIZE`] to [`MAX_TC_SIZE`])
    /// whose code addresses guest memory through `windows`.
    pub fn new(tc_size: usize, windows: WindowBases) -> Result<Translator, TcError> {
        assert!((MIN_TC_SIZE..=MAX_TC_SIZE).contains(&tc_size), "translation cache size {tc_size} out of range");
        let mut tc = CodeCache::new(tc_size)?;
        let stack = tc::TcStack::new(TC_STACK_SIZE)?;
        let stubs = Stubs::install(&mut tc);
        Ok(Translator {
            tc,
            stack,
            stubs,
            table: FragmentTable::default(),
            ibl: HashMap::default(),
            ibl_mode: None,
            stats: TranslatorStats::default(),
            trace: false,
            count_entries: false,
            perf_map: None,
            push_sreg: PushSregModel::default(),
            gs_base: None,
            windows,
            device_faults: HashMap::default(),
        })
    }

    /// Counts a host fault on device memory by the guest instruction at `linear`. True
    /// when it has taken [`DEVICE_FAULTS_BEFORE_CALLOUT`] of them: from now on it is
    /// translated as a [`CalloutKind::Device`] callout, and the caller must invalidate
    /// its present translations. (Keyed by linear address: should other code come to be
    /// there, the monitor's device callout still executes it correctly, only slower.)
    pub fn note_device_fault(&mut self, linear: u32) -> bool {
        let n = self.device_faults.entry(linear).or_default();
        *n += 1;
        *n == DEVICE_FAULTS_BEFORE_CALLOUT
    }

    /// The instruction at `linear` no longer touches device memory: translate it as
    /// itself again (the caller invalidates its translations), and count its device
    /// faults from zero.
    pub fn forget_device_instruction(&mut self, linear: u32) {
        self.device_faults.remove(&linear);
    }

    /// True if the instruction at `linear` is translated as a device callout.
    fn is_device_instruction(&self, linear: u32) -> bool {
        self.device_faults.get(&linear).is_some_and(|&n| n >= DEVICE_FAULTS_BEFORE_CALLOUT)
    }

    /// Prints every new fragment (guest beside host code) to stderr.
    pub fn set_trace(&mut self, on: bool) {
        self.trace = on;
    }

    /// Names every new fragment in `file` in the perf map format (`START SIZE name`, one
    /// line each, the name giving the privilege level and the guest's linear address),
    /// so that `perf report` attributes time in translated code to guest code. perf
    /// reads `/tmp/perf-PID.map`; a line per fragment costs a host write, so this is for
    /// profiling, not for measuring.
    pub fn set_perf_map(&mut self, file: std::fs::File) {
        self.perf_map = Some(std::io::LineWriter::new(file));
    }

    /// Sets what translated 32-bit `push sreg` instructions store: the host CPU's
    /// behaviour, so that translated and directly executed code agree. Applies to
    /// fragments translated from now on (set it before translating anything).
    pub fn set_push_sreg_model(&mut self, model: PushSregModel) {
        self.push_sreg = model;
    }

    /// Makes new fragments count their executions in [`Context::fragment_entries`]
    /// (costs three instructions per fragment; for `--stats`).
    pub fn set_count_entries(&mut self, on: bool) {
        self.count_entries = on;
    }

    /// Prepares `ctx` for running translated code: the lazy FPU switch, the lookup table
    /// for `mode`, the window (GS base) for its privilege level. Must be called on the
    /// thread that will run the guest.
    pub fn attach(&mut self, ctx: &mut Context, mode: Mode) {
        ctx.fpu_enter = self.stubs.fpu_load;
        ctx.tc_stack_top = self.stack.top();
        ctx.fpu_loaded = 0;
        self.ibl_mode = None;
        self.gs_base = None;
        self.select_mode(ctx, mode);
    }

    /// Translated code addresses the windows at `windows` from now on (the shadow MMU
    /// keeps a kernel window, and a user window for translated code, per recently used
    /// address space; a CR3 write may change them). Takes effect at the next
    /// [`Translator::select_mode`].
    pub fn set_windows(&mut self, windows: WindowBases) {
        if self.windows != windows {
            self.windows = windows;
            self.ibl_mode = None;
        }
    }

    /// The stubs' addresses.
    pub fn stubs(&self) -> &Stubs {
        &self.stubs
    }

    /// Counters.
    pub fn stats(&self) -> TranslatorStats {
        self.stats
    }

    /// Size of the cache in bytes.
    pub fn tc_size(&self) -> usize {
        self.tc.size()
    }

    /// Bytes of the cache in use.
    pub fn tc_used(&self) -> usize {
        self.tc.used()
    }

    /// The valid fragment for `key`, if there is one.
    pub fn lookup(&self, key: &FragKey) -> Option<FragId> {
        self.table.lookup(key)
    }

    /// A fragment. `id` must be current: use it right after [`Translator::lookup`] or
    /// [`Translator::translate`] returned it; for an id held across anything that may
    /// translate (and so flush the cache), use [`Translator::fragment_if_current`].
    pub fn fragment(&self, id: FragId) -> &Fragment {
        self.table.frag(id)
    }

    /// The fragment `id`, or None if a cache flush has dropped it since the id was made.
    pub fn fragment_if_current(&self, id: FragId) -> Option<&Fragment> {
        self.table.current(id).then(|| self.table.frag(id))
    }

    /// The current cache generation: it changes at every whole-cache flush.
    pub fn generation(&self) -> u32 {
        self.table.generation
    }

    /// The fragment a [`ExitReason::Kick`] or [`ExitReason::Fault`] exit names in
    /// `exit_arg`, in the generation of the code that exited.
    pub fn fragment_of_exit(&self, ctx: &Context) -> FragId {
        FragId::new(ctx.exit_generation, ctx.exit_arg)
    }

    /// The link an [`ExitReason::Chain`] exit names in `exit_arg`, in the generation of
    /// the code that exited: if translating its target flushes the cache, the id names
    /// nothing and [`Translator::link`] ignores it.
    pub fn link_of_exit(&self, ctx: &Context) -> LinkId {
        LinkId::new(ctx.exit_generation, ctx.exit_arg)
    }

    /// A link (current ids only).
    pub fn link_info(&self, id: LinkId) -> &Link {
        self.table.link(id)
    }

    /// A callout record.
    pub fn callout(&self, id: CalloutId) -> &Callout {
        &self.table.callouts[id as usize]
    }

    /// Runs translated code from host address `host` (a fragment's entry or body, or a
    /// callout's resume point) until it exits.
    pub fn run(&self, ctx: &mut Context, host: u64) -> ExitReason {
        assert!(self.tc.contains(host), "entering translated code outside the cache");
        ctx.exit_generation = self.table.generation;
        // SAFETY: `enter` is the stub assembled for this signature; it saves and restores
        // the host's callee-saved registers and stack, and the code it jumps to was
        // emitted by this translator: it touches guest memory only through GS (the
        // window, which `attach` pointed GS at on this thread), the context through R15,
        // and returns through the exit stubs.
        let r = unsafe { (self.stubs.enter_fn())(ctx as *mut Context, host) };
        ExitReason::from_u32(r).expect("translated code returned an unknown exit reason")
    }

    /// Invalidates every fragment made from guest-physical page `page` (address >> 12).
    /// Returns how many there were.
    pub fn invalidate_page(&mut self, page: u64) -> usize {
        let Some(ids) = self.table.by_page.remove(&page) else {
            return 0;
        };
        let mut n = 0;
        for id in ids {
            if self.table.frag(id).valid {
                self.invalidate(id);
                n += 1;
            }
        }
        n
    }

    /// True if some valid fragment was made from guest-physical page `page`.
    pub fn has_code_on_page(&self, page: u64) -> bool {
        self.table.by_page.get(&page).is_some_and(|v| v.iter().any(|&id| self.table.frag(id).valid))
    }

    /// Invalidates one fragment: nothing will enter it again. Does nothing for an id from
    /// before a cache flush (the flush dropped the fragment already).
    pub fn invalidate(&mut self, id: FragId) {
        if !self.table.current(id) {
            return;
        }
        let f = self.table.frag_mut(id);
        if !f.valid {
            return;
        }
        f.valid = false;
        let key = f.key;
        if self.table.by_key.get(&key) == Some(&id) {
            self.table.by_key.remove(&key);
        }
        if self.table.parked.get(&key) == Some(&id) {
            self.table.parked.remove(&key);
        }
        self.unlink_incoming(id);
        self.ibl_remove(id);
        self.reach_remove(id);
        self.stats.invalidations += 1;
    }

    /// Drops every fragment and empties the cache. Every id handed out before names
    /// nothing afterwards (a new generation); host addresses into the cache held outside
    /// the translator are stale too — the run loop holds them only with the id of their
    /// fragment and checks it ([`Translator::fragment_if_current`]). Translated code
    /// keeps none: each entry starts on an empty stack (the return-address stack), and
    /// the indirect-branch tables are emptied here.
    pub fn flush(&mut self) {
        self.table.clear();
        self.tc.flush();
        self.ibl_clear_all();
        self.stats.flushes += 1;
    }
}

/// Points this thread's GS base at `base` (with `wrgsbase` where the kernel allows it:
/// privilege changes switch windows often).
fn set_gs_base(base: u64) {
    if has_fsgsbase() {
        // SAFETY: wrgsbase changes only this thread's GS base (nothing else in the process
        // uses GS on x86-64 Linux); the kernel enabled the instruction (HWCAP2_FSGSBASE).
        unsafe { std::arch::asm!("wrgsbase {}", in(reg) base, options(nostack, preserves_flags)) };
        return;
    }
    const ARCH_SET_GS: libc::c_int = 0x1001;
    // SAFETY: arch_prctl(ARCH_SET_GS) changes only this thread's GS base, which nothing
    // else in the process uses on x86-64 Linux.
    let r = unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_SET_GS, base) };
    assert_eq!(r, 0, "arch_prctl(ARCH_SET_GS) failed");
}

/// True if user mode may use `rdfsbase`/`wrgsbase` (Linux 5.9+ on CPUs with FSGSBASE).
pub fn has_fsgsbase() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    const HWCAP2_FSGSBASE: u64 = 1 << 1;
    // SAFETY: getauxval only reads the process's auxiliary vector.
    *HAS.get_or_init(|| unsafe { libc::getauxval(libc::AT_HWCAP2) } & HWCAP2_FSGSBASE != 0)
}
