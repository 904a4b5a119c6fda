//! Running a fuzz case natively: guest code in compatibility mode through the flat LDT
//! segments of [`super::ldt`], until the first host signal (the case ends with `int3`).
//!
//! The mechanics are direct execution's ([`crate::direct::enter`]): the same trampoline
//! and signal handling run the fuzzer's cases and a guest's user code, so the fuzzer's
//! native engine also exercises the code that direct execution relies on.

use super::ldt::FlatSelectors;
use crate::direct::enter;

/// A 512-byte FXSAVE image (16-byte aligned, as `fxsave`/`fxrstor` require).
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C, align(16))]
pub struct FxArea(pub [u8; 512]);

impl Default for FxArea {
    /// The x87/SSE state after `finit` and with MXCSR at its reset value: FCW 0x037F,
    /// empty x87 stack, MXCSR 0x1F80, all registers zero.
    fn default() -> FxArea {
        let mut fx = FxArea([0; 512]);
        fx.set_fcw(0x037F);
        fx.set_mxcsr(0x1F80);
        fx
    }
}

impl std::fmt::Debug for FxArea {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FxArea {{ fcw: {:#06x}, fsw: {:#06x}, ftw: {:#04x}, mxcsr: {:#010x}, .. }}",
            self.fcw(),
            self.fsw(),
            self.ftw(),
            self.mxcsr()
        )
    }
}

impl FxArea {
    /// Offset of ST(0) in the image (ST(i) at `ST0 + 16 * i`, 10 bytes used).
    pub const ST0: usize = 32;
    /// Offset of XMM0 (XMMi at `XMM0 + 16 * i`).
    pub const XMM0: usize = 160;

    fn u16_at(&self, off: usize) -> u16 {
        u16::from_le_bytes([self.0[off], self.0[off + 1]])
    }
    /// x87 control word.
    pub fn fcw(&self) -> u16 {
        self.u16_at(0)
    }
    /// Sets the x87 control word.
    pub fn set_fcw(&mut self, v: u16) {
        self.0[0..2].copy_from_slice(&v.to_le_bytes());
    }
    /// x87 status word (TOP in bits 11-13).
    pub fn fsw(&self) -> u16 {
        self.u16_at(2)
    }
    /// Sets the x87 status word.
    pub fn set_fsw(&mut self, v: u16) {
        self.0[2..4].copy_from_slice(&v.to_le_bytes());
    }
    /// Abridged x87 tag word: bit i set = physical register i holds a value.
    pub fn ftw(&self) -> u8 {
        self.0[4]
    }
    /// Sets the abridged tag word.
    pub fn set_ftw(&mut self, v: u8) {
        self.0[4] = v;
    }
    /// MXCSR.
    pub fn mxcsr(&self) -> u32 {
        u32::from_le_bytes(self.0[24..28].try_into().unwrap())
    }
    /// Sets MXCSR.
    pub fn set_mxcsr(&mut self, v: u32) {
        self.0[24..28].copy_from_slice(&v.to_le_bytes());
    }
    /// The 80-bit contents of ST(i) (stack order, as FXSAVE stores them).
    pub fn st(&self, i: usize) -> [u8; 10] {
        self.0[Self::ST0 + 16 * i..Self::ST0 + 16 * i + 10].try_into().unwrap()
    }
    /// Sets ST(i).
    pub fn set_st(&mut self, i: usize, v: [u8; 10]) {
        self.0[Self::ST0 + 16 * i..Self::ST0 + 16 * i + 10].copy_from_slice(&v);
    }
    /// XMMi.
    pub fn xmm(&self, i: usize) -> [u8; 16] {
        self.0[Self::XMM0 + 16 * i..Self::XMM0 + 16 * i + 16].try_into().unwrap()
    }
    /// Sets XMMi.
    pub fn set_xmm(&mut self, i: usize, v: [u8; 16]) {
        self.0[Self::XMM0 + 16 * i..Self::XMM0 + 16 * i + 16].copy_from_slice(&v);
    }
    /// True if ST(i) holds a value (its physical register's abridged tag bit is set).
    pub fn st_valid(&self, i: usize) -> bool {
        let top = (self.fsw() >> 11) & 7;
        self.ftw() & (1 << ((top as usize + i) & 7)) != 0
    }
}

/// The guest's integer state on entry and exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct GuestRegs {
    /// EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI.
    pub gpr: [u32; 8],
    /// EIP (an offset in the code segment, which for flat segments is the guest linear
    /// address).
    pub eip: u32,
    /// EFLAGS.
    pub eflags: u32,
}

/// EFLAGS bits guest code may have on entry: CF PF AF ZF SF OF and DF. (IF is always 1
/// in the host, bit 1 always 1; TF, AC, NT, IOPL and the rest are not the guest's to set.)
pub const ENTRY_EFLAGS_MASK: u32 = 0x0CD5;

/// How guest code stopped: the signal and what the CPU reported.
#[derive(Clone, Copy, Debug)]
pub struct Exit {
    /// Guest registers at the signal (EIP: of the faulting instruction for faults, after
    /// the instruction for traps such as `int3`).
    pub regs: GuestRegs,
    /// FPU/SSE state at the signal (FIP/FDP are host-format and meaningless).
    pub fx: FxArea,
    /// Host signal number.
    pub signo: i32,
    /// `si_code`.
    #[allow(dead_code)] // reported for the run loop (SIGTRAP: TRAP_BRKPT vs SI_KERNEL)
    pub si_code: i32,
    /// The CPU exception vector the kernel reports (`trapno`).
    pub trapno: u32,
    /// The exception's error code as the kernel reports it.
    pub err: u32,
    /// `si_addr`: the host address of a faulting access (for SIGSEGV/SIGBUS).
    pub fault_addr: u64,
}

/// Runs guest code natively in compatibility mode until the first host signal it raises.
///
/// The caller must have called [`crate::host::signals::install`] on this thread and
/// installed the guest segments in the LDT (`sel`). The guest state is `regs` (EFLAGS
/// masked by [`ENTRY_EFLAGS_MASK`]) and `fx`.
///
/// # Safety
/// The guest code runs with the host process's privileges inside the segments `sel`
/// describe: everything it can address there (the guest window) must be guest memory.
/// User-mode FSGSBASE must be available (`bt86_translator::has_fsgsbase`).
pub unsafe fn run(sel: FlatSelectors, regs: &GuestRegs, fx: &FxArea) -> Exit {
    let mut image = *fx;
    // Reserved MXCSR_MASK-side fields must not reach fxrstor; FIP/FDP do not matter.
    image.0[6..24].fill(0);
    image.0[28..32].fill(0);
    let r = enter::Regs { gpr: regs.gpr, eip: regs.eip, eflags: (regs.eflags & ENTRY_EFLAGS_MASK) | 0x202 };
    let (code, data) = (sel.code, sel.data);
    // SAFETY: the caller's contract; `image` is an aligned FXSAVE image that lives
    // through the call.
    let e = unsafe { enter::run(&r, &[data, code, data, data, 0, 0], image.0.as_mut_ptr()) };
    Exit {
        regs: GuestRegs { gpr: e.regs.gpr, eip: e.regs.eip, eflags: e.regs.eflags },
        fx: image,
        signo: e.signo,
        si_code: e.si_code,
        trapno: e.trapno,
        err: e.err,
        fault_addr: e.fault_addr,
    }
}
