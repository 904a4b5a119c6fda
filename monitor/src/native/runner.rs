//! Entering guest code in compatibility mode and getting back out on a host signal.
//!
//! # Entry
//! [`run`] saves the monitor's callee-saved registers, RSP and FPU/SSE state (`fxsave64`)
//! in a [`RunFrame`], loads the guest's FPU/SSE state (`fxrstor64`), guest EAX..EDI,
//! DS/ES = the guest data selector, and `iretq`s to the guest's SS:ESP, EFLAGS and CS:EIP
//! (the CS an LDT 32-bit code selector: the CPU is now in compatibility mode).
//!
//! # Exit
//! Guest code runs until it faults or traps (the fuzzer ends its code with `int3`). The
//! signal arrives on the thread's signal stack ([`crate::host::signals`]), whose handler
//! calls [`handle_signal`] for compatibility-mode contexts. That copies the guest state
//! out of the ucontext (GPRs, EIP, EFLAGS, the 512-byte FXSAVE image behind
//! `uc_mcontext.fpregs`, signal number and code, trap number, error code, fault address)
//! into the frame, and rewrites the ucontext so that `sigreturn` lands in 64-bit mode
//! (CS 0x33, SS 0x2b) at the landing code inside [`run`] with RSP = the saved host RSP.
//! The landing code resets DS/ES to 0, restores the monitor's FPU/SSE state and its
//! callee-saved registers, and `run` returns the [`Exit`].
//!
//! `sigreturn` restores the signal mask the thread had before the signal, so guest exits
//! leave no signal blocked.

use std::cell::Cell;
use std::mem::offset_of;

use super::ldt::FlatSelectors;
use crate::host::signals::{USER_CS64, USER_DS};

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

/// Per-run state shared between [`run`], its assembly and the signal handler.
#[repr(C, align(64))]
struct RunFrame {
    host_fx: FxArea,
    guest_fx: FxArea,
    regs: GuestRegs,
    code_sel: u32,
    data_sel: u32,
    host_rsp: u64,
    landing: u64,
    // Filled in by the signal handler.
    done: u32,
    signo: i32,
    si_code: i32,
    trapno: u32,
    err: u32,
    fault_addr: u64,
    exit_regs: GuestRegs,
    exit_fx: FxArea,
}

thread_local! {
    /// The frame of the run in progress on this thread (null when none). Read by the signal
    /// handler after it has restored FS. Const-initialized and without a destructor, so an
    /// access is a plain FS-relative load.
    static CURRENT: Cell<*mut RunFrame> = const { Cell::new(std::ptr::null_mut()) };
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
pub unsafe fn run(sel: FlatSelectors, regs: &GuestRegs, fx: &FxArea) -> Exit {
    let mut frame = Box::new(RunFrame {
        host_fx: FxArea([0; 512]),
        guest_fx: *fx,
        regs: GuestRegs { eflags: (regs.eflags & ENTRY_EFLAGS_MASK) | 0x202, ..*regs },
        code_sel: sel.code as u32,
        data_sel: sel.data as u32,
        host_rsp: 0,
        landing: 0,
        done: 0,
        signo: 0,
        si_code: 0,
        trapno: 0,
        err: 0,
        fault_addr: 0,
        exit_regs: GuestRegs::default(),
        exit_fx: FxArea([0; 512]),
    });
    // The MXCSR_MASK field must not be loaded with reserved bits set by fxrstor; only the
    // fields that fxrstor actually loads matter, so clear FIP/FDP/MXCSR_MASK-side fields.
    frame.guest_fx.0[6..24].fill(0);
    frame.guest_fx.0[28..32].fill(0);
    let fp: *mut RunFrame = &mut *frame;
    CURRENT.with(|c| c.set(fp));
    // SAFETY: `fp` points to a live, 64-byte aligned RunFrame; the asm saves and restores
    // every register the ABI requires (RBX and RBP by hand, R12-R15 and all caller-saved
    // registers declared clobbered) and comes back through the landing label with RSP
    // restored. The guest runs in a 32-bit segment that covers only the guest window.
    unsafe { enter(fp) };
    CURRENT.with(|c| c.set(std::ptr::null_mut()));
    assert_eq!(frame.done, 1, "native run returned without a guest exit");
    Exit {
        regs: frame.exit_regs,
        fx: frame.exit_fx,
        signo: frame.signo,
        si_code: frame.si_code,
        trapno: frame.trapno,
        err: frame.err,
        fault_addr: frame.fault_addr,
    }
}

/// The entry/exit trampoline. `frame` is passed in RDI.
#[inline(never)]
unsafe fn enter(frame: *mut RunFrame) {
    // SAFETY: see `run`. DS/ES are loaded with the guest data selector and reset to 0 (the
    // 64-bit null selector Linux gives user processes) before returning.
    unsafe {
        core::arch::asm!(
            "push rbp",
            "push rbx",
            "push rdi",
            "sub rsp, 8",
            "mov [rdi + {host_rsp}], rsp",
            "lea rax, [rip + 2f]",
            "mov [rdi + {landing}], rax",
            "fxsave64 [rdi + {host_fx}]",
            "fxrstor64 [rdi + {guest_fx}]",
            // iretq frame: SS, RSP, RFLAGS, CS, RIP.
            "mov eax, [rdi + {data_sel}]",
            "push rax",
            "mov eax, [rdi + {gpr} + 16]",
            "push rax",
            "mov eax, [rdi + {eflags}]",
            "push rax",
            "mov eax, [rdi + {code_sel}]",
            "push rax",
            "mov eax, [rdi + {eip}]",
            "push rax",
            "mov eax, [rdi + {data_sel}]",
            "mov ds, eax",
            "mov es, eax",
            "mov eax, [rdi + {gpr}]",
            "mov ecx, [rdi + {gpr} + 4]",
            "mov edx, [rdi + {gpr} + 8]",
            "mov ebx, [rdi + {gpr} + 12]",
            "mov ebp, [rdi + {gpr} + 20]",
            "mov esi, [rdi + {gpr} + 24]",
            "mov edi, [rdi + {gpr} + 28]",
            "iretq",
            // Landing: sigreturn put us here in 64-bit mode with RSP = host_rsp.
            "2:",
            "xor eax, eax",
            "mov ds, eax",
            "mov es, eax",
            "add rsp, 8",
            "pop rdi",
            "fxrstor64 [rdi + {host_fx}]",
            "pop rbx",
            "pop rbp",
            host_rsp = const offset_of!(RunFrame, host_rsp),
            landing = const offset_of!(RunFrame, landing),
            host_fx = const offset_of!(RunFrame, host_fx),
            guest_fx = const offset_of!(RunFrame, guest_fx),
            data_sel = const offset_of!(RunFrame, data_sel),
            code_sel = const offset_of!(RunFrame, code_sel),
            gpr = const offset_of!(RunFrame, regs) + offset_of!(GuestRegs, gpr),
            eip = const offset_of!(RunFrame, regs) + offset_of!(GuestRegs, eip),
            eflags = const offset_of!(RunFrame, regs) + offset_of!(GuestRegs, eflags),
            inout("rdi") frame => _,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
            clobber_abi("sysv64"),
        );
    }
}

/// XSAVE header offset and the magic that marks an XSAVE-format signal frame.
const XSTATE_BV_OFFSET: usize = 512;
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
const SW_RESERVED_OFFSET: usize = 464;

/// The native runner's part of the signal handler: for a signal raised by compatibility-
/// mode code during [`run`] on this thread, records the exit in the run's frame and
/// redirects `sigreturn` to the landing code. Returns false if no run is in progress.
///
/// # Safety
/// Must be called from the signal handler (FS already restored) with the kernel's
/// `info` and `uc`.
pub unsafe fn handle_signal(signo: i32, info: *mut libc::siginfo_t, uc: *mut libc::ucontext_t) -> bool {
    let fp = CURRENT.with(|c| c.get());
    if fp.is_null() {
        return false;
    }
    // SAFETY: `fp` is the live frame of the run on this thread (set by `run`, which is
    // blocked in the guest); `info` and `uc` are the kernel's, valid during the handler.
    let (frame, uc, info) = unsafe { (&mut *fp, &mut *uc, &*info) };
    if frame.done != 0 {
        return false;
    }
    let g = &mut uc.uc_mcontext.gregs;
    use libc::{REG_RAX, REG_RBP, REG_RBX, REG_RCX, REG_RDI, REG_RDX, REG_RSI, REG_RSP};
    let order = [REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI];
    for (i, r) in order.iter().enumerate() {
        frame.exit_regs.gpr[i] = g[*r as usize] as u32;
    }
    frame.exit_regs.eip = g[libc::REG_RIP as usize] as u32;
    frame.exit_regs.eflags = g[libc::REG_EFL as usize] as u32;
    frame.signo = signo;
    frame.si_code = info.si_code;
    frame.trapno = g[libc::REG_TRAPNO as usize] as u32;
    frame.err = g[libc::REG_ERR as usize] as u32;
    // SAFETY: si_addr is valid to read for every signal (meaningful for faults).
    frame.fault_addr = unsafe { info.si_addr() } as u64;
    let fpregs = uc.uc_mcontext.fpregs as *const u8;
    if !fpregs.is_null() {
        // SAFETY: fpregs points to the FXSAVE/XSAVE image in the signal frame: at least
        // 512 bytes, plus the XSAVE header when the software-reserved magic says so.
        unsafe {
            std::ptr::copy_nonoverlapping(fpregs, frame.exit_fx.0.as_mut_ptr(), 512);
            let magic = std::ptr::read_unaligned(fpregs.add(SW_RESERVED_OFFSET) as *const u32);
            if magic == FP_XSTATE_MAGIC1 {
                let bv = std::ptr::read_unaligned(fpregs.add(XSTATE_BV_OFFSET) as *const u64);
                fix_init_components(&mut frame.exit_fx, bv);
            }
        }
    }
    frame.done = 1;
    // Resume in 64-bit mode at the landing code on the monitor's stack.
    g[libc::REG_RIP as usize] = frame.landing as i64;
    g[libc::REG_RSP as usize] = frame.host_rsp as i64;
    g[libc::REG_EFL as usize] = 0x202;
    g[libc::REG_CSGSFS as usize] = (USER_CS64 as i64) | ((USER_DS as i64) << 48);
    true
}

/// XSAVE leaves components in their initial configuration unwritten (XSTATE_BV bit
/// clear); the legacy area then holds stale bytes. Put the architectural init values in.
fn fix_init_components(fx: &mut FxArea, xstate_bv: u64) {
    if xstate_bv & 1 == 0 {
        fx.0[0..24].fill(0);
        fx.set_fcw(0x037F);
        fx.0[FxArea::ST0..FxArea::XMM0].fill(0);
    }
    if xstate_bv & 2 == 0 {
        fx.0[FxArea::XMM0..FxArea::XMM0 + 16 * 16].fill(0);
    }
}

#[cfg(test)]
pub(crate) fn fix_init_components_for_test(fx: &mut FxArea, bv: u64) {
    fix_init_components(fx, bv)
}
