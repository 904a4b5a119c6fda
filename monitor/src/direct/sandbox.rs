//! Direct execution through the sandbox: keeping stubs ([`super::stub`]) in step with
//! the monitor's user windows and host LDT, and running guest code in them.
//!
//! There is a stub per window directly executed code runs from: with a user window per
//! guest address space (`Mmu::native_window`), a stub per address space, so a context
//! switch back to a process finds its stub holding what it held — the monitor enters
//! another stub instead of remapping one. Before each entry the stub is brought up to
//! date with host calls made inside it: its window's changes since its last entry
//! (`bt86_shadow_mmu`'s mirror: `mmap` of guest frames, from the read-write view of guest
//! RAM only for pages the guest lets user code write, `munmap` of the rest) and the LDT
//! descriptors the monitor wrote since (`modify_ldt`; the guest has one LDT and GDT for
//! all its processes, so every stub gets every write). They travel with the entry
//! command; when there are more than one command holds, the first batches go ahead on
//! their own.
//!
//! A stub that fails is dropped (killed) and a new one started at its next entry; a new
//! stub is sent everything its window maps and every descriptor installed.

use bt86_shadow_mmu::{MirrorChanges, Mmu, POPULATE_MAX_PAGES, WINDOW_SIZE, WindowKind};

use super::enter::{Exit, Regs, Selectors};
use super::host_ldt::HostLdt;
use super::stub::shared::{Entry, MAX_DESCS, MAX_OPS, Op, UserDesc, fds};
use super::stub::{SpawnError, Stub, StubFactory, StubFailure, desc_addr};

/// Counters for `--stats`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SandboxStats {
    /// Stubs started.
    pub stubs: u64,
    /// Entries into another stub than the last one's (guest context switches between
    /// processes that both ran natively).
    pub stub_switches: u64,
    /// Stubs dropped because guest code misbehaved in them (escaped, died, stopped
    /// answering).
    pub failures: u64,
    /// Commands sent (entries plus extra batches).
    pub commands: u64,
    /// `mmap` calls made in stubs (by their mapper threads).
    pub mmaps: u64,
    /// `munmap` calls made in stubs.
    pub munmaps: u64,
    /// `modify_ldt` calls made in stubs.
    pub ldt_writes: u64,
}

/// The sandbox: a factory of stubs and a stub per window directly executed code runs
/// from.
pub struct Sandbox {
    factory: StubFactory,
    /// By window index ([`WindowKind::index`]).
    slots: Vec<Slot>,
    /// The window of the slot in use.
    current: WindowKind,
    /// Counters.
    pub stats: SandboxStats,
}

/// A window's stub, if one runs, and the LDT descriptors it has yet to install.
#[derive(Default)]
struct Slot {
    stub: Option<Stub>,
    ldt: Vec<UserDesc>,
}

/// Why a run in the sandbox did not produce an exit.
#[derive(Debug)]
pub enum RunFailure {
    /// Guest code made the stub fail (the stub is gone; the guest process gets #GP).
    Guest(StubFailure),
    /// A host call the monitor asked for failed (the stub is gone; try again).
    Host(StubFailure),
}

impl Sandbox {
    /// Prepares stubs over guest RAM `ram_fd`.
    pub fn new(ram_fd: std::os::fd::RawFd, cpuid_faulting: bool) -> Result<Sandbox, SpawnError> {
        Ok(Sandbox {
            factory: StubFactory::new(ram_fd, cpuid_faulting)?,
            slots: (0..WindowKind::COUNT).map(|_| Slot::default()).collect(),
            current: WindowKind::User,
            stats: SandboxStats::default(),
        })
    }

    /// Makes sure the stub of the window directly executed code runs from now is running
    /// (a new one is sent everything its window maps and every descriptor installed).
    pub fn ensure_stub(&mut self, mmu: &mut Mmu, ldt: &mut HostLdt) -> Result<(), SpawnError> {
        let w = mmu.native_window();
        if w != self.current {
            self.stats.stub_switches += 1;
            self.current = w;
        }
        let slot = &mut self.slots[w.index()];
        if slot.stub.as_ref().is_some_and(|s| !s.failed()) {
            return Ok(());
        }
        slot.stub = None;
        let stub = self.factory.spawn()?;
        log::debug!("sandbox: stub process {} started for {w:?}", stub.pid());
        slot.stub = Some(stub);
        self.stats.stubs += 1;
        mmu.resend_mirror(w);
        self.spread_ldt_writes(ldt);
        self.slots[w.index()].ldt = ldt.installed();
        Ok(())
    }

    /// Queues the descriptors the monitor wrote since the last call for every stub (each
    /// installs them at its next entry; a descriptor written again replaces the queued one).
    fn spread_ldt_writes(&mut self, ldt: &mut HostLdt) {
        let written = ldt.take_pending();
        if written.is_empty() {
            return;
        }
        for slot in self.slots.iter_mut().filter(|s| s.stub.is_some()) {
            queue_ldt_writes(&mut slot.ldt, &written);
        }
    }

    /// Starts a stub, measures a round trip to it that maps one page (what an exit for a
    /// page fault costs on top of the signal: the median of a few, in nanoseconds) and
    /// ends it: checks that this host can run stubs.
    pub fn probe(&mut self) -> Result<u64, SpawnError> {
        let mut stub = self.factory.spawn()?;
        let mut times = Vec::new();
        // Guest RAM's first page, read-only, somewhere in this throw-away stub's window.
        let flags = (libc::MAP_SHARED | libc::MAP_FIXED | libc::MAP_POPULATE) as u64;
        let map = Op { nr: libc::SYS_mmap as u64, args: [0x1000_0000, 4096, libc::PROT_READ as u64, flags, fds::RAM_RO as u64, 0] };
        for _ in 0..16 {
            let t = std::time::Instant::now();
            stub.apply(&[map], &[]).map_err(|f| SpawnError(f.to_string()))?;
            times.push(t.elapsed().as_nanos() as u64);
        }
        times.sort_unstable();
        log::debug!("sandbox: round trips to a new stub (ns): {times:?}");
        Ok(times[times.len() / 2])
    }

    /// Drops the stub in use (it is killed).
    pub fn drop_stub(&mut self) {
        self.slots[self.current.index()].stub = None;
    }

    /// The stub in use.
    fn stub(&mut self) -> &mut Stub {
        self.slots[self.current.index()].stub.as_mut().expect("ensure_stub ran")
    }

    /// Brings the stub up to date and runs guest code in it until its next exit.
    pub fn run(
        &mut self,
        mmu: &mut Mmu,
        ldt: &mut HostLdt,
        regs: &Regs,
        sel: &Selectors,
        fx: &mut [u8; 512],
        kicked: &dyn Fn() -> bool,
    ) -> Result<Exit, RunFailure> {
        let changes = mmu.take_mirror_changes(self.current).unwrap_or_default();
        let mut ops = self.window_calls(&changes);
        self.spread_ldt_writes(ldt);
        let descs = std::mem::take(&mut self.slots[self.current.index()].ldt);
        let mut desc_chunks: Vec<&[UserDesc]> = descs.chunks(MAX_DESCS).collect();
        let last_descs = desc_chunks.pop().unwrap_or(&[]);
        // What does not fit with the entry goes first, in commands of its own.
        if ops.len() + last_descs.len() > MAX_OPS {
            for chunk in ops.chunks(MAX_OPS) {
                self.apply(chunk, &[])?;
            }
            ops.clear();
        }
        for chunk in desc_chunks {
            let calls = self.ldt_calls(chunk.len());
            self.apply(&calls, chunk)?;
        }
        ops.extend(self.ldt_calls(last_descs.len()));
        let mut entry = Entry { gpr: regs.gpr, eip: regs.eip, eflags: regs.eflags, sel: [0; 6] };
        for (e, s) in entry.sel.iter_mut().zip(sel) {
            *e = *s as u32;
        }
        self.stats.commands += 1;
        let outcome = self.stub().run(&ops, last_descs, &entry, fx, kicked).map_err(|f| self.failed(f))?;
        if let Some((nr, e)) = outcome.failed_call {
            // The stub ran without a mapping the monitor believes it has: the exit stands
            // (guest code ran), and a new stub, in step again, takes over at the next entry.
            log::warn!("sandbox: {}; starting a new stub", StubFailure::CallFailed(nr, e));
            self.drop_stub();
        }
        let record = outcome.exit;
        let mut exit = Exit::default();
        exit.regs.gpr = record.gpr;
        exit.regs.eip = record.eip;
        exit.regs.eflags = record.eflags;
        for (e, s) in exit.sel.iter_mut().zip(record.sel) {
            // A selector wider than 16 bits cannot come from the CPU: make it one the
            // caller rejects (a host GDT selector).
            *e = u16::try_from(s).unwrap_or(0x33);
        }
        exit.signo = record.signo as i32;
        exit.si_code = record.si_code as i32;
        exit.trapno = record.trapno;
        exit.err = record.err;
        exit.fault_addr = record.fault_addr;
        sanitize_fx(fx);
        Ok(exit)
    }

    fn failed(&mut self, f: StubFailure) -> RunFailure {
        self.drop_stub();
        match f {
            StubFailure::CallFailed(..) => RunFailure::Host(f),
            f => {
                self.stats.failures += 1;
                RunFailure::Guest(f)
            }
        }
    }

    /// The host calls that bring the stub's window up to date. The stub's window is at
    /// the user window's place, where the host maps nothing below `mmap_min_addr`: what
    /// the window maps there stays out of the stub (its faults run translated, see
    /// [`WindowKind::from_copy`]).
    fn window_calls(&mut self, changes: &MirrorChanges) -> Vec<Op> {
        let mut ops = Vec::new();
        let op = |nr: libc::c_long, args: [u64; 6]| Op { nr: nr as u64, args };
        let base = WindowKind::User.base();
        let lowest = base + WindowKind::User.first_mappable() as u64;
        if changes.unmap_all {
            // The window and its mirror page above 4 GiB.
            ops.push(op(libc::SYS_munmap, [lowest, base + WINDOW_SIZE + 4096 - lowest, 0, 0, 0, 0]));
            self.stats.munmaps += 1;
        }
        for run in &changes.runs {
            let (mut host, mut pages, mut offset) = (base + run.at, run.pages, 0);
            if host < lowest {
                let skip = (lowest - host).div_ceil(4096).min(pages);
                (host, pages, offset) = (host + skip * 4096, pages - skip, skip * 4096);
            }
            if pages == 0 {
                continue;
            }
            let len = pages * 4096;
            match run.mapping {
                None => {
                    ops.push(op(libc::SYS_munmap, [host, len, 0, 0, 0, 0]));
                    self.stats.munmaps += 1;
                }
                Some((file_offset, prot)) => {
                    let fd = if prot.writable() { fds::RAM_RW } else { fds::RAM_RO };
                    let populate = if pages <= POPULATE_MAX_PAGES { libc::MAP_POPULATE } else { 0 };
                    let flags = libc::MAP_SHARED | libc::MAP_FIXED | populate;
                    ops.push(op(libc::SYS_mmap, [host, len, prot.bits() as u64, flags as u64, fd as u64, file_offset + offset]));
                    self.stats.mmaps += 1;
                }
            }
        }
        ops
    }

    /// The `modify_ldt` calls for `n` descriptors (which travel with their command).
    fn ldt_calls(&mut self, n: usize) -> Vec<Op> {
        self.stats.ldt_writes += n as u64;
        (0..n)
            .map(|i| Op { nr: libc::SYS_modify_ldt as u64, args: [0x11, desc_addr(i), std::mem::size_of::<UserDesc>() as u64, 0, 0, 0] })
            .collect()
    }

    /// Makes host calls in the stub without running guest code.
    fn apply(&mut self, ops: &[Op], descs: &[UserDesc]) -> Result<(), RunFailure> {
        self.stats.commands += 1;
        self.stub().apply(ops, descs).map_err(|f| self.failed(f))
    }
}

/// Adds descriptors `written` to a stub's queue `queue`, keeping only the last write of
/// each entry (so a queue never holds more than one descriptor per host LDT slot, however
/// often the guest rewrites its tables while the stub waits), in the order written.
fn queue_ldt_writes(queue: &mut Vec<UserDesc>, written: &[UserDesc]) {
    queue.extend_from_slice(written);
    let mut seen = std::collections::HashSet::new();
    let mut last: Vec<UserDesc> = queue.drain(..).rev().filter(|d| seen.insert(d.entry_number)).collect();
    last.reverse();
    *queue = last;
}

/// The MXCSR bits this host's `fxrstor` accepts.
fn mxcsr_mask() -> u32 {
    static MASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *MASK.get_or_init(|| {
        #[repr(C, align(16))]
        struct Area([u8; 512]);
        let mut a = Area([0; 512]);
        // SAFETY: fxsave64 writes 512 bytes to a 16-byte aligned buffer of ours.
        unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) a.0.as_mut_ptr(), options(nostack)) };
        let m = u32::from_le_bytes(a.0[28..32].try_into().unwrap());
        if m == 0 { 0xFFBF } else { m }
    })
}

/// Makes an FXSAVE image from the stub safe for the monitor's `fxrstor` (a reserved
/// MXCSR bit would raise #GP in the monitor).
fn sanitize_fx(fx: &mut [u8; 512]) {
    let mxcsr = u32::from_le_bytes(fx[24..28].try_into().unwrap()) & mxcsr_mask();
    fx[24..28].copy_from_slice(&mxcsr.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(slot: u32, base: u32) -> UserDesc {
        UserDesc { entry_number: slot, base_addr: base, limit: 0xfffff, flags: 0 }
    }

    #[test]
    fn a_stub_s_queue_holds_the_last_write_of_each_slot() {
        let mut q = vec![desc(1, 0x1000), desc(2, 0x2000)];
        queue_ldt_writes(&mut q, &[desc(3, 0x3000), desc(1, 0x1111)]);
        assert_eq!(q, vec![desc(2, 0x2000), desc(3, 0x3000), desc(1, 0x1111)]);
        // A guest rewriting the same slots over and over leaves one entry per slot.
        for round in 0..1000 {
            queue_ldt_writes(&mut q, &[desc(2, round), desc(3, round)]);
        }
        assert_eq!(q, vec![desc(1, 0x1111), desc(2, 999), desc(3, 999)]);
    }
}
