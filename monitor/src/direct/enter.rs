//! Running guest user code natively and getting back out on a host signal.
//!
//! # Entry
//! [`run`] saves the monitor's callee-saved registers, RSP, FPU/SSE state (`fxsave64`)
//! and FS/GS bases in a [`Frame`], loads the guest's FPU/SSE state (`fxrstor`, from the
//! context's image), DS/ES/FS/GS with host LDT selectors (loading FS and GS sets their
//! bases from the shadow descriptors), the guest's general registers, and `iretq`s to
//! the guest's SS:ESP, EFLAGS and CS:EIP: the CPU is now in compatibility mode running
//! guest code.
//!
//! # Exit
//! Guest code runs until a host signal: a fault or trap it raises, SIGSYS for a system
//! call (the seccomp filter), or the timer signal. The handler ([`handle_signal`], called
//! by `host::signals` after it restored the monitor's FS base) first fills hidden page
//! faults of the user window and resumes the guest without leaving. Anything else it
//! records in the frame — registers, the segment selectors as the CPU holds them, the
//! signal, trap number, error code and fault address — and rewrites the ucontext so that
//! `sigreturn` lands in 64-bit mode at the landing code inside [`run`]. `sigreturn`
//! restores the guest's FPU state with the rest, so the landing code saves it into the
//! context (`fxsave`), then restores the monitor's FPU state, null selectors and FS/GS
//! bases, and `run` returns the [`Exit`].

use std::cell::Cell;
use std::mem::offset_of;

use crate::host::signals::{USER_CS64, USER_DS};

/// The guest's integer state on entry and exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Regs {
    /// EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI.
    pub gpr: [u32; 8],
    /// EIP.
    pub eip: u32,
    /// EFLAGS as the host CPU runs them (IF set, IOPL 0).
    pub eflags: u32,
}

/// Host selectors of the six segment registers, in the order ES, CS, SS, DS, FS, GS
/// (the translator's `Seg` order).
pub type Selectors = [u16; 6];

/// How guest code stopped.
#[derive(Clone, Copy, Debug, Default)]
pub struct Exit {
    /// Registers at the signal (EIP: of the faulting instruction for faults, after the
    /// instruction for traps and system calls).
    pub regs: Regs,
    /// The selectors the CPU held (ES, CS, SS, DS, FS, GS).
    pub sel: Selectors,
    /// Host signal number.
    pub signo: i32,
    /// `si_code`.
    pub si_code: i32,
    /// The CPU exception vector the kernel reports (`trapno`).
    pub trapno: u32,
    /// The exception's error code as the kernel reports it.
    pub err: u32,
    /// `si_addr`: the host address of a faulting access (SIGSEGV/SIGBUS).
    pub fault_addr: u64,
}

/// Per-run state shared between [`run`], its assembly and the signal handler.
#[repr(C, align(64))]
struct Frame {
    host_fx: [u8; 512],
    /// The guest's FXSAVE image (the translator context's), loaded at entry and saved
    /// at the landing.
    guest_fx: u64,
    regs: Regs,
    sel: [u32; 6],
    host_rsp: u64,
    landing: u64,
    host_fs_base: u64,
    host_gs_base: u64,
    done: u32,
    exit: Exit,
}

thread_local! {
    /// The frame of the run in progress on this thread (null when none). Read by the
    /// signal handler after it has restored FS; const-initialized, no destructor.
    static CURRENT: Cell<*mut Frame> = const { Cell::new(std::ptr::null_mut()) };
}

fn rdgsbase() -> u64 {
    let v: u64;
    // SAFETY: FSGSBASE is enabled for user mode (checked by the caller of `run`).
    unsafe { core::arch::asm!("rdgsbase {}", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Runs guest code in compatibility mode until the first host signal that needs the
/// monitor.
///
/// # Safety
/// The signal handlers must be installed on this thread (`host::signals::install`),
/// FSGSBASE must be usable in user mode, the seccomp filter must trap 32-bit system
/// calls, `sel` must hold loadable DPL-3 host LDT selectors whose segments lie in the
/// user window (base = window + guest base, 32-bit wrap-around landing in the guard), and
/// `guest_fx` must point to a valid, 16-byte aligned FXSAVE image that stays valid
/// during the call.
pub unsafe fn run(regs: &Regs, sel: &Selectors, guest_fx: *mut u8) -> Exit {
    let mut frame = Box::new(Frame {
        host_fx: [0; 512],
        guest_fx: guest_fx as u64,
        regs: *regs,
        sel: sel.map(u32::from),
        host_rsp: 0,
        landing: 0,
        host_fs_base: crate::host::signals::fs_base(),
        host_gs_base: rdgsbase(),
        done: 0,
        exit: Exit::default(),
    });
    let fp: *mut Frame = &mut *frame;
    CURRENT.with(|c| c.set(fp));
    // SAFETY: `fp` points to a live, aligned Frame. The asm saves and restores every
    // register the ABI requires (RBX and RBP by hand, R12-R15 and the caller-saved ones
    // declared clobbered), restores the FS/GS bases and null selectors before any code
    // that could use TLS, and comes back through the landing label with RSP restored.
    unsafe { enter(fp) };
    CURRENT.with(|c| c.set(std::ptr::null_mut()));
    assert_eq!(frame.done, 1, "direct execution returned without a guest exit");
    frame.exit
}

/// The entry/exit trampoline. `frame` is passed in RDI.
#[inline(never)]
unsafe fn enter(frame: *mut Frame) {
    // SAFETY: see `run`.
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
            "mov rax, [rdi + {guest_fx}]",
            "fxrstor [rax]",
            // iretq frame: SS, RSP, RFLAGS, CS, RIP.
            "mov eax, [rdi + {sel} + 8]",
            "push rax",
            "mov eax, [rdi + {gpr} + 16]",
            "push rax",
            "mov eax, [rdi + {eflags}]",
            "push rax",
            "mov eax, [rdi + {sel} + 4]",
            "push rax",
            "mov eax, [rdi + {eip}]",
            "push rax",
            // From here until the landing nothing may use TLS: FS is the guest's.
            "mov eax, [rdi + {sel} + 12]",
            "mov ds, eax",
            "mov eax, [rdi + {sel}]",
            "mov es, eax",
            "mov eax, [rdi + {sel} + 16]",
            "mov fs, eax",
            "mov eax, [rdi + {sel} + 20]",
            "mov gs, eax",
            "mov eax, [rdi + {gpr}]",
            "mov ecx, [rdi + {gpr} + 4]",
            "mov edx, [rdi + {gpr} + 8]",
            "mov ebx, [rdi + {gpr} + 12]",
            "mov ebp, [rdi + {gpr} + 20]",
            "mov esi, [rdi + {gpr} + 24]",
            "mov edi, [rdi + {gpr} + 28]",
            "iretq",
            // Landing: sigreturn put us here in 64-bit mode with RSP = host_rsp and the
            // guest's FPU state in the registers.
            "2:",
            "xor eax, eax",
            "mov ds, eax",
            "mov es, eax",
            "mov fs, eax",
            "mov gs, eax",
            "add rsp, 8",
            "pop rdi",
            "mov rax, [rdi + {host_fs_base}]",
            "wrfsbase rax",
            "mov rax, [rdi + {host_gs_base}]",
            "wrgsbase rax",
            "mov rax, [rdi + {guest_fx}]",
            "fxsave [rax]",
            "fxrstor64 [rdi + {host_fx}]",
            "pop rbx",
            "pop rbp",
            host_rsp = const offset_of!(Frame, host_rsp),
            landing = const offset_of!(Frame, landing),
            host_fx = const offset_of!(Frame, host_fx),
            guest_fx = const offset_of!(Frame, guest_fx),
            host_fs_base = const offset_of!(Frame, host_fs_base),
            host_gs_base = const offset_of!(Frame, host_gs_base),
            sel = const offset_of!(Frame, sel),
            gpr = const offset_of!(Frame, regs) + offset_of!(Regs, gpr),
            eip = const offset_of!(Frame, regs) + offset_of!(Regs, eip),
            eflags = const offset_of!(Frame, regs) + offset_of!(Regs, eflags),
            inout("rdi") frame => _,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
            clobber_abi("sysv64"),
        );
    }
}

/// Reads DS, ES, FS and GS as the interrupted code left them (signal delivery to a
/// 64-bit handler does not reload them).
fn data_selectors() -> [u16; 4] {
    let (ds, es, fs, gs): (u16, u16, u16, u16);
    // SAFETY: reading segment selectors has no side effects.
    unsafe {
        core::arch::asm!(
            "mov {0:x}, ds",
            "mov {1:x}, es",
            "mov {2:x}, fs",
            "mov {3:x}, gs",
            out(reg) ds, out(reg) es, out(reg) fs, out(reg) gs,
            options(nomem, nostack, preserves_flags),
        )
    };
    [ds, es, fs, gs]
}

/// What [`handle_signal`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    /// Filled a hidden fault: `sigreturn` goes back to the guest code (whose FS base the
    /// caller must put back).
    Resume,
    /// Recorded the exit: `sigreturn` goes to the landing code.
    Exit,
    /// No direct run is in progress on this thread.
    NotMine,
}

/// The direct-execution part of the signal handler: for a signal raised while guest
/// code runs natively on this thread, fills hidden faults of the user window in place,
/// or records the exit and redirects `sigreturn` to the landing code.
///
/// # Safety
/// Must be called from the signal handler (FS base already restored) with the
/// kernel's `info` and `uc`.
pub unsafe fn handle_signal(signo: i32, info: *mut libc::siginfo_t, uc: *mut libc::ucontext_t) -> Handled {
    let fp = CURRENT.with(|c| c.get());
    if fp.is_null() {
        return Handled::NotMine;
    }
    // SAFETY: `fp` is the live frame of the run on this thread (set by `run`, which is
    // blocked in the guest); `info` and `uc` are the kernel's, valid during the handler.
    let (frame, uc, info) = unsafe { (&mut *fp, &mut *uc, &*info) };
    if frame.done != 0 {
        return Handled::NotMine;
    }
    let g = &mut uc.uc_mcontext.gregs;
    let trapno = g[libc::REG_TRAPNO as usize] as u32;
    let err = g[libc::REG_ERR as usize] as u32;
    // SAFETY: si_addr is valid to read for every signal (meaningful for faults).
    let fault_addr = unsafe { info.si_addr() } as u64;
    // A hidden fault: the guest's tables map the page for user code; fill it and go on.
    // SAFETY: called in signal context while the machine's MMU is registered.
    if signo == libc::SIGSEGV
        && trapno == 14
        && unsafe { crate::machine::tc_signal::fill_hidden_fault(fault_addr, err & 2 != 0, err & 0x10 != 0) }
    {
        return Handled::Resume;
    }
    use libc::{REG_RAX, REG_RBP, REG_RBX, REG_RCX, REG_RDI, REG_RDX, REG_RSI, REG_RSP};
    let order = [REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI];
    let e = &mut frame.exit;
    for (i, r) in order.iter().enumerate() {
        e.regs.gpr[i] = g[*r as usize] as u32;
    }
    e.regs.eip = g[libc::REG_RIP as usize] as u32;
    e.regs.eflags = g[libc::REG_EFL as usize] as u32;
    let csgsfs = g[libc::REG_CSGSFS as usize] as u64;
    let [ds, es, fs, gs] = data_selectors();
    e.sel = [es, csgsfs as u16, (csgsfs >> 48) as u16, ds, fs, gs];
    e.signo = signo;
    e.si_code = info.si_code;
    e.trapno = trapno;
    e.err = err;
    e.fault_addr = fault_addr;
    frame.done = 1;
    // Resume in 64-bit mode at the landing code on the monitor's stack.
    g[libc::REG_RIP as usize] = frame.landing as i64;
    g[libc::REG_RSP as usize] = frame.host_rsp as i64;
    g[libc::REG_EFL as usize] = 0x202;
    g[libc::REG_CSGSFS as usize] = (USER_CS64 as i64) | ((USER_DS as i64) << 48);
    Handled::Exit
}
