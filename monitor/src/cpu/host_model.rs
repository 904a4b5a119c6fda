//! Which vendor's answers the virtual CPU gives where the architecture leaves results
//! undefined, found by running the instructions on the host CPU.
//!
//! Guest user code that runs directly gets the host CPU's behaviour; the translator and
//! the monitor must give the same, or one guest would see two CPUs (and the differential
//! fuzzer would fail). Intel and AMD differ in the undefined flags of DAA/DAS/AAA/AAS
//! and in what a 32-bit `push sreg` writes, and a vendor string says nothing reliable
//! about either (other vendors, emulators and hypervisors report one vendor and behave
//! like another). So [`get`] runs the instructions once, natively in compatibility mode,
//! on inputs where the models disagree, and keeps the model that reproduces them. Only
//! where native execution is impossible does the vendor string decide (and that is
//! logged).
//!
//! The probe runs in a scratch mapping of its own below 4 GiB, through two host LDT
//! entries of its own ([`PROBE_CODE_SLOT`], [`PROBE_DATA_SLOT`]) that it empties
//! afterwards, so it needs no guest window. It must run *before* the guest windows are
//! reserved: their guard regions take the whole low 4 GiB (`Machine::new` and the
//! fuzzer's entry points call [`get`] first; if it runs too late, the mapping fails and
//! the vendor string decides, with a warning).
//!
//! Instructions bt86 emulates or expands whose results do *not* depend on the host:
//! see the review below.
//!
//! # Review: emulated or expanded instructions with undefined results
//!
//! Everything re-encoded as itself (IDENT: BSF/BSR with a zero source, SHLD/SHRD beyond
//! the operand size, MUL/IMUL/DIV flags, RCL/RCR OF, LAHF/SAHF, INC/DEC's short forms,
//! ...) runs on the host CPU and so already gives the host's answer. What bt86 computes
//! itself:
//!
//! - DAA/DAS/AAA/AAS: vendor-dependent flags, probed ([`BcdModel`]).
//! - AAM/AAD: CF/AF/OF undefined but the same on Intel and AMD (measured over every
//!   input on both); no model needed.
//! - `push sreg`: the upper word of a 32-bit push, probed ([`PushSregModel`]). 16-bit
//!   pushes store a word on every vendor (checked by the probe).
//! - `bound`, `into`, `pusha`/`popa`, `pushf`/`popf`, `enter`/`leave`, `salc`, `xlat`,
//!   the string instructions and `lea`: no undefined results (`pusha` stores the ESP of
//!   before the instruction, `popa` skips its slot, `salc` has no flags, `bound` and
//!   `into` raise or do nothing, the string instructions run as themselves).
//! - Far `call`, `int` and exception frames store CS zero-extended in a 32-bit slot;
//!   guest code that runs natively never builds those frames (they are segment loads or
//!   system transitions, which go through the monitor), so there is nothing to match.
//!   Far returns through frames guest code built itself are checked by the fuzzer.
//! - `mov r32, sreg`: the upper word is implementation-dependent in the SDM, but every
//!   P6-or-later Intel and every AMD CPU zero-extends, as the emulation does (a test
//!   checks this host).
//! - `smsw r32`, `sldt r32`, `str r32`: the emulation stores CR0 / the zero-extended
//!   selector, as P6+ and AMD CPUs do. They cannot be probed: with UMIP the host kernel
//!   answers them for 32-bit code, not the CPU.
//! - `lar`/`lsl`/`verr`/`verw`/`arpl` and the other system instructions: defined (LAR's
//!   bits 19:16 are those of the descriptor on both vendors; not probed here).

use std::fmt;
use std::sync::{Mutex, MutexGuard, OnceLock};

pub use bt86_translator::PushSregModel;

use crate::cpu::emulate::bcd::{BcdOp, adjust};
use crate::native::{self, FlatSelectors, FxArea, GuestRegs};

/// Whose undefined DAA/DAS/AAA/AAS flags the virtual CPU computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BcdModel {
    /// Intel: DAA/DAS clear OF; AAA/AAS take SF/ZF/PF from the final AL and clear OF.
    Intel,
    /// AMD: DAA/DAS set OF as the addition of the correction; AAA/AAS set SF/ZF/PF/OF as
    /// a 16-bit `add/sub ax, 0x106` (or from the unchanged AX when they do not adjust).
    Amd,
}

/// The host CPU's behaviour wherever the virtual CPU must copy it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostModel {
    /// The BCD adjustments' undefined flags.
    pub bcd: BcdModel,
    /// What a 32-bit `push sreg` stores.
    pub push_sreg: PushSregModel,
}

impl HostModel {
    /// Intel's answers.
    pub const INTEL: HostModel = HostModel { bcd: BcdModel::Intel, push_sreg: PushSregModel::LowWord };
    /// AMD's answers.
    pub const AMD: HostModel = HostModel { bcd: BcdModel::Amd, push_sreg: PushSregModel::ZeroExtend };

    /// The model a CPUID vendor string suggests (AMD's for AMD and Hygon, else Intel's).
    pub fn for_vendor(vendor: &str) -> HostModel {
        match vendor {
            "AuthenticAMD" | "HygonGenuine" => HostModel::AMD,
            _ => HostModel::INTEL,
        }
    }
}

/// The host's model, probed on first use (see the module comment). Call it before
/// anything translates, and pass the result to what needs it. Not while holding a
/// [`ProbeSpace`] (the first call makes one).
pub fn get() -> HostModel {
    static MODEL: OnceLock<HostModel> = OnceLock::new();
    *MODEL.get_or_init(|| match probe() {
        Ok(m) => {
            log::info!("host CPU model (probed): {m:?}");
            m
        }
        Err(e) => {
            let vendor = host_vendor();
            let m = HostModel::for_vendor(&vendor);
            log::warn!("cannot probe the host CPU's undefined results ({e}); using the model of vendor {vendor:?}: {m:?}");
            m
        }
    })
}

/// The host's CPUID vendor string.
pub fn host_vendor() -> String {
    let r = std::arch::x86_64::__cpuid(0);
    let bytes: Vec<u8> = [r.ebx, r.edx, r.ecx].iter().flat_map(|v| v.to_le_bytes()).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Why the host could not be probed.
#[derive(Debug)]
pub enum ProbeError {
    /// User-mode FSGSBASE is missing: the native engine cannot run.
    NoFsgsbase,
    /// Signal handling could not be set up.
    Signals(String),
    /// The scratch mapping or the LDT entries could not be made.
    Setup(&'static str, std::io::Error),
    /// A probe instruction did not end at its `int3`.
    Exit {
        /// What ran.
        what: String,
        /// Host signal and trap number it ended with.
        signo: i32,
        /// See `signo`.
        trapno: u32,
    },
    /// No model reproduces what the host did.
    NoModel(String),
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::NoFsgsbase => write!(f, "the kernel does not allow FSGSBASE in user mode, so guest code cannot run natively"),
            ProbeError::Signals(e) => write!(f, "signal handling: {e}"),
            ProbeError::Setup(what, e) => write!(f, "{what}: {e}"),
            ProbeError::Exit { what, signo, trapno } => {
                write!(f, "`{what}` ended with signal {signo} (trap {trapno}) instead of its int3")
            }
            ProbeError::NoModel(why) => write!(f, "no known model matches the host: {why}"),
        }
    }
}

impl std::error::Error for ProbeError {}

/// Host LDT slot of the probe's code segment (far above those direct execution uses for
/// guest LDTs and the fuzzer's flat segments; emptied after the probe).
pub const PROBE_CODE_SLOT: u16 = 8190;
/// Host LDT slot of the probe's data and stack segment.
pub const PROBE_DATA_SLOT: u16 = 8191;
/// Size of the scratch area: code at 0, the stack below its end.
const SPACE: usize = 0x2000;
/// Initial ESP of every probe run (the top of the scratch area).
const STACK_TOP: u32 = SPACE as u32;

/// A scratch area with its own code and data segments, in which one instruction at a
/// time runs natively in compatibility mode.
pub struct ProbeSpace {
    base: *mut u8,
    sel: FlatSelectors,
    /// The LDT is per process and the slots are fixed: one probe space at a time
    /// (released after `Drop` has emptied the slots).
    _only: MutexGuard<'static, ()>,
}

/// See [`ProbeSpace::_only`].
static PROBE_LOCK: Mutex<()> = Mutex::new(());

impl ProbeSpace {
    /// Maps the area below 4 GiB and installs its segments.
    pub fn new() -> Result<ProbeSpace, ProbeError> {
        if !bt86_translator::has_fsgsbase() {
            return Err(ProbeError::NoFsgsbase);
        }
        crate::host::signals::install().map_err(|e| ProbeError::Signals(e.to_string()))?;
        let only = PROBE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let p = map_below_4g().map_err(|e| ProbeError::Setup("scratch mapping below 4 GiB", e))?;
        // Dropping `space` unmaps the area (and empties the slots) on any error below.
        let mut space = ProbeSpace { base: p, sel: FlatSelectors { code: 0, data: 0 }, _only: only };
        space.sel = install_segments(p as u64 as u32)?;
        Ok(space)
    }

    /// Runs `code` (followed by an `int3`) from offset 0 with `regs` (EIP is set to 0, ESP
    /// defaults to the top of the area when 0) and returns the registers at the `int3`.
    pub fn run(&mut self, code: &[u8], regs: GuestRegs) -> Result<GuestRegs, ProbeError> {
        assert!(code.len() < 0x100, "probe code fits below the data it may use");
        self.bytes_mut()[..code.len()].copy_from_slice(code);
        self.bytes_mut()[code.len()] = 0xCC;
        let mut regs = GuestRegs { eip: 0, ..regs };
        if regs.gpr[4] == 0 {
            regs.gpr[4] = STACK_TOP;
        }
        // SAFETY: the selectors describe only this area (limit SPACE - 1), which holds
        // the code just written, ending in int3; this thread's signal handlers are
        // installed and FSGSBASE is available (checked in `new`).
        let exit = unsafe { native::run(self.sel, &regs, &FxArea::default()) };
        let at_int3 = exit.signo == libc::SIGTRAP && exit.trapno == 3 && exit.regs.eip == code.len() as u32 + 1;
        if !at_int3 {
            return Err(ProbeError::Exit { what: format!("{code:02x?}"), signo: exit.signo, trapno: exit.trapno });
        }
        Ok(exit.regs)
    }

    /// The data selector (what `push ds` pushes).
    pub fn data_selector(&self) -> u16 {
        self.sel.data
    }

    /// The dword at offset `off`.
    pub fn read_u32(&self, off: u32) -> u32 {
        let o = off as usize;
        u32::from_le_bytes(self.bytes()[o..o + 4].try_into().unwrap())
    }

    /// Writes the dword at offset `off`.
    pub fn write_u32(&mut self, off: u32, v: u32) {
        let o = off as usize;
        self.bytes_mut()[o..o + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `base` is a live SPACE-byte mapping owned by self.
        unsafe { std::slice::from_raw_parts(self.base, SPACE) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.base, SPACE) }
    }
}

impl Drop for ProbeSpace {
    fn drop(&mut self) {
        use crate::direct::host_ldt::{FLAG_NOT_PRESENT, FLAG_READ_EXEC_ONLY, write_entry};
        // Empty entries, so nothing can use the area's segments once it is gone.
        for slot in [PROBE_CODE_SLOT, PROBE_DATA_SLOT] {
            let _ = write_entry(slot, 0, 0, FLAG_READ_EXEC_ONLY | FLAG_NOT_PRESENT);
        }
        // SAFETY: the mapping made in `new`, no longer referenced.
        unsafe { libc::munmap(self.base.cast(), SPACE) };
    }
}

/// Where [`map_below_4g`] tries first: below 1 GiB, which the fuzzer's windows (from
/// 1 GiB up) leave free, so that a probe never blocks their reservation; then `MAP_32BIT`
/// (1-2 GiB on Linux) and a few places above.
const LOW_HINTS: [u64; 4] = [0x1000_0000, 0x2000_0000, 0x0100_0000, 0x3000_0000];
/// See [`LOW_HINTS`].
const HIGH_HINTS: [u64; 2] = [0xA000_0000, 0xE000_0000];

/// A fresh read/write/execute area of [`SPACE`] bytes below 4 GiB (compatibility mode
/// forms 32-bit linear addresses: a segment cannot reach higher).
fn map_below_4g() -> std::io::Result<*mut u8> {
    let prot = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;
    let anon = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    let fixed = |a: &u64| (*a, libc::MAP_FIXED_NOREPLACE);
    let tries = LOW_HINTS.iter().map(fixed).chain([(0, libc::MAP_32BIT)]).chain(HIGH_HINTS.iter().map(fixed));
    let mut last = std::io::Error::from_raw_os_error(libc::ENOMEM);
    for (addr, how) in tries {
        // SAFETY: a new private anonymous mapping; MAP_FIXED_NOREPLACE never replaces an
        // existing one, so nothing else is affected.
        let p = unsafe { libc::mmap(addr as *mut libc::c_void, SPACE, prot, anon | how, -1, 0) };
        if p != libc::MAP_FAILED && (p as u64) + SPACE as u64 <= 1 << 32 {
            return Ok(p.cast());
        }
        if p == libc::MAP_FAILED {
            last = std::io::Error::last_os_error();
        } else {
            // SAFETY: the mapping just made (too high to use), referenced by nothing.
            unsafe { libc::munmap(p, SPACE) };
        }
    }
    Err(last)
}

/// Byte-granular 32-bit code and data segments over `[base, base + SPACE)`.
fn install_segments(base: u32) -> Result<FlatSelectors, ProbeError> {
    use crate::direct::host_ldt::{FLAG_32BIT, FLAG_CONTENTS_SHIFT, FLAG_USEABLE, host_selector, write_entry};
    let limit = SPACE as u32 - 1;
    let data_flags = FLAG_32BIT | FLAG_USEABLE;
    let code_flags = FLAG_32BIT | 2 << FLAG_CONTENTS_SHIFT | FLAG_USEABLE;
    // These two segments lie outside the guest windows: they cover only the probe's own
    // scratch area, and only the probe's code runs through them.
    write_entry(PROBE_CODE_SLOT, base, limit, code_flags).map_err(|e| ProbeError::Setup("probe code segment (modify_ldt)", e))?;
    write_entry(PROBE_DATA_SLOT, base, limit, data_flags).map_err(|e| ProbeError::Setup("probe data segment (modify_ldt)", e))?;
    Ok(FlatSelectors { code: host_selector(PROBE_CODE_SLOT), data: host_selector(PROBE_DATA_SLOT) })
}

/// EFLAGS bits a BCD probe compares: CF PF AF ZF SF OF.
const ARITH: u32 = bt86_translator::flags::ARITH;

/// Inputs (opcode, op, AX, input flags) on which the BCD models disagree.
const BCD_CASES: [(u8, BcdOp, u16, u32); 6] = [
    (0x27, BcdOp::Daa, 0x007A, 0),
    (0x2F, BcdOp::Das, 0x0080, 0x10),
    (0x37, BcdOp::Aaa, 0x7FFA, 0),
    (0x37, BcdOp::Aaa, 0x0100, 0),
    (0x3F, BcdOp::Aas, 0x8005, 0x10),
    (0x3F, BcdOp::Aas, 0x8003, 0),
];

/// Runs one BCD instruction natively on `ax` and `flags`: the new AX and arithmetic flags.
pub fn native_bcd(space: &mut ProbeSpace, code: &[u8], ax: u16, flags: u32) -> Result<(u16, u32), ProbeError> {
    let regs = GuestRegs { gpr: [ax as u32, 0, 0, 0, 0, 0, 0, 0], eip: 0, eflags: flags & ARITH };
    let out = space.run(code, regs)?;
    Ok((out.gpr[0] as u16, out.eflags & ARITH))
}

/// The BCD model that reproduces the host on [`BCD_CASES`].
fn probe_bcd(space: &mut ProbeSpace) -> Result<BcdModel, ProbeError> {
    let mut seen = Vec::new();
    for (opcode, op, ax, fl) in BCD_CASES {
        seen.push((op, ax, fl, native_bcd(space, &[opcode], ax, fl)?));
    }
    let matches = |m: BcdModel| seen.iter().all(|&(op, ax, fl, got)| adjust(m, op, ax, fl).is_some_and(|r| (r.ax, r.flags) == got));
    [BcdModel::Intel, BcdModel::Amd]
        .into_iter()
        .find(|&m| matches(m))
        .ok_or_else(|| ProbeError::NoModel(format!("BCD (op, AX, flags in, (AX, flags) out): {seen:x?}")))
}

/// What the host stores for `push ds` with operand size `size` over a slot holding
/// `0xDEADBEEF`: the slot (the dword below the initial ESP) and how far ESP moved.
pub fn native_push_ds(space: &mut ProbeSpace, size: u8) -> Result<(u32, u32), ProbeError> {
    let slot = STACK_TOP - 4;
    space.write_u32(slot, 0xDEAD_BEEF);
    let code: &[u8] = if size == 2 { &[0x66, 0x1E] } else { &[0x1E] };
    let out = space.run(code, GuestRegs::default())?;
    Ok((space.read_u32(slot), STACK_TOP - out.gpr[4]))
}

/// The `push sreg` model that reproduces the host, for both operand sizes.
fn probe_push_sreg(space: &mut ProbeSpace) -> Result<PushSregModel, ProbeError> {
    let sel = space.data_selector();
    // The 16-bit push fills the upper half of the dword slot (ESP - 2).
    let (slot16, moved16) = native_push_ds(space, 2)?;
    let (slot32, moved32) = native_push_ds(space, 4)?;
    let fits = |m: PushSregModel| {
        moved16 == 2 && moved32 == 4 && slot32 == m.slot_after(0xDEAD_BEEF, sel, 4) && slot16 == (sel as u32) << 16 | 0xBEEF
    };
    [PushSregModel::LowWord, PushSregModel::ZeroExtend].into_iter().find(|&m| fits(m)).ok_or_else(|| {
        ProbeError::NoModel(format!(
            "push ds ({sel:#x}): 32-bit slot {slot32:#010x} (ESP -{moved32}), 16-bit slot {slot16:#010x} (ESP -{moved16})"
        ))
    })
}

/// Runs the probe instructions natively and picks the model that reproduces them.
pub fn probe() -> Result<HostModel, ProbeError> {
    let mut space = ProbeSpace::new()?;
    Ok(HostModel { bcd: probe_bcd(&mut space)?, push_sreg: probe_push_sreg(&mut space)? })
}

#[cfg(test)]
mod tests {
    //! The probe against the host: run in the differential fuzzer's tests
    //! (`bt86-fuzzer`'s `tests.rs`), which own the process's guest window (it and the probe's scratch
    //! area cannot both exist: the window's guards cover the low 4 GiB).
    use super::*;

    #[test]
    fn vendor_fallback() {
        assert_eq!(HostModel::for_vendor("AuthenticAMD"), HostModel::AMD);
        assert_eq!(HostModel::for_vendor("HygonGenuine"), HostModel::AMD);
        assert_eq!(HostModel::for_vendor("GenuineIntel"), HostModel::INTEL);
    }
}
