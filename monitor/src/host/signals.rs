//! The process's handlers for synchronous signals, and the per-thread signal stacks.
//!
//! Every exit from guest code is a host signal: directly executed guest code (compatibility
//! mode) faults or traps, and translated code faults in the translation cache. One handler
//! serves SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP and SIGSYS, always on a sigaltstack
//! (the guest's ESP is not a host stack). It
//!
//! 1. restores the monitor's FS base (the thread's TLS) from the value saved when the
//!    thread's signal stack was set up, *before any code that could touch TLS*: guest code
//!    may one day have its own FS base loaded;
//! 2. if the interrupted code was compatibility-mode code (CS is not the 64-bit user code
//!    selector 0x33), hands the signal to direct execution ([`crate::direct::enter`]),
//!    which also runs the fuzzer's native cases, and puts the guest's FS base back if
//!    the guest goes on;
//! 3. else asks the translator's hook, which claims faults in its translation cache;
//! 4. anything else is a bug in the monitor: one line on stderr, written with `write(2)`
//!    only, and `_exit(70)`.
//!
//! Signals are not deferred-off (`SA_NODEFER` is *not* used): while the handler runs, all
//! signals are blocked, so a fault inside the handler itself is fatal at once (the kernel
//! kills the process with the default action) instead of recursing until the signal stack
//! overflows. The mask in force before the signal comes back with `sigreturn`.

use std::cell::RefCell;
use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// The signals the monitor handles.
pub const HANDLED_SIGNALS: [libc::c_int; 6] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE, libc::SIGILL, libc::SIGTRAP, libc::SIGSYS];

/// The 64-bit user code selector of x86-64 Linux (`__USER_CS`).
pub const USER_CS64: u16 = 0x33;
/// The user data/stack selector of x86-64 Linux (`__USER_DS`).
pub const USER_DS: u16 = 0x2b;

/// Exit status of the process after an internal error in a signal handler.
pub const INTERNAL_ERROR_EXIT: i32 = 70;

/// Usable size of each thread's signal stack.
const ALT_STACK_SIZE: usize = 256 * 1024;
const PAGE: usize = 4096;

/// A translator's claim on a signal: returns true when the faulting RIP is in its
/// translation cache and it has rewritten the ucontext (for `sigreturn` to resume there).
/// Runs in signal context on the signal stack: async-signal-safe code only.
pub type TranslatorHook = unsafe fn(signo: i32, info: *mut libc::siginfo_t, uc: *mut libc::ucontext_t) -> bool;

/// Why the handlers could not be installed.
#[derive(Debug, Clone)]
pub enum SignalError {
    /// A host call failed.
    Host(&'static str, i32),
    /// More threads than the fixed table of signal stacks holds run guests at once.
    TooManyThreads,
}

impl fmt::Display for SignalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignalError::Host(what, errno) => {
                write!(f, "cannot set up signal handling: {what}: {}", std::io::Error::from_raw_os_error(*errno))
            }
            SignalError::TooManyThreads => {
                write!(f, "cannot set up signal handling: more than {MAX_THREADS} threads run guests")
            }
        }
    }
}

impl std::error::Error for SignalError {}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// Per-thread signal stacks and saved FS bases.
//
// The handler finds the FS base to restore without touching TLS: it looks its own stack
// pointer up in a fixed table of (signal stack range, FS base) filled by `install`.

const MAX_THREADS: usize = 256;

struct StackSlot {
    lo: AtomicU64,
    hi: AtomicU64,
    fs_base: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_SLOT: StackSlot = StackSlot { lo: AtomicU64::new(0), hi: AtomicU64::new(0), fs_base: AtomicU64::new(0) };
static STACK_SLOTS: [StackSlot; MAX_THREADS] = [EMPTY_SLOT; MAX_THREADS];

/// True when the CPU and kernel allow `rdfsbase`/`wrfsbase` in user mode.
static FSGSBASE: AtomicBool = AtomicBool::new(false);

/// The translator's hook, as a function pointer (0 = none).
static HOOK: AtomicUsize = AtomicUsize::new(0);

/// A thread's signal stack: `[guard page][stack]`, registered with `sigaltstack`.
struct AltStack {
    map: *mut libc::c_void,
    map_len: usize,
    slot: usize,
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let disable = libc::stack_t { ss_sp: std::ptr::null_mut(), ss_flags: libc::SS_DISABLE, ss_size: 0 };
        // SAFETY: disables this thread's signal stack (ours) before unmapping it; no
        // handler can be running on it while the thread is in its TLS destructors.
        unsafe { libc::sigaltstack(&disable, std::ptr::null_mut()) };
        STACK_SLOTS[self.slot].lo.store(0, Ordering::SeqCst);
        STACK_SLOTS[self.slot].hi.store(0, Ordering::SeqCst);
        // SAFETY: unmapping exactly the mapping made in `AltStack::new`.
        unsafe { libc::munmap(self.map, self.map_len) };
    }
}

thread_local! {
    static ALT_STACK: RefCell<Option<AltStack>> = const { RefCell::new(None) };
}

/// This thread's FS base (`rdfsbase`, or `arch_prctl` where user mode may not use it).
/// Async-signal-safe.
pub(crate) fn fs_base() -> u64 {
    if FSGSBASE.load(Ordering::Relaxed) {
        let v: u64;
        // SAFETY: rdfsbase is enabled in user mode (checked via AT_HWCAP2); reads a register.
        unsafe { core::arch::asm!("rdfsbase {}", out(reg) v, options(nomem, nostack, preserves_flags)) };
        v
    } else {
        let mut v: u64 = 0;
        // SAFETY: arch_prctl(ARCH_GET_FS) writes one u64 to a valid pointer.
        unsafe {
            libc::syscall(libc::SYS_arch_prctl, 0x1003 /* ARCH_GET_FS */, &mut v as *mut u64)
        };
        v
    }
}

/// Sets this thread's FS base. Async-signal-safe; touches no TLS.
#[inline(always)]
fn set_fs_base(v: u64) {
    if FSGSBASE.load(Ordering::Relaxed) {
        // SAFETY: wrfsbase is enabled in user mode; the caller passes the base the code
        // it returns to must have.
        unsafe { core::arch::asm!("wrfsbase {}", in(reg) v, options(nomem, nostack, preserves_flags)) };
    } else {
        // SAFETY: arch_prctl(ARCH_SET_FS) is a plain, async-signal-safe syscall.
        unsafe {
            libc::syscall(libc::SYS_arch_prctl, 0x1002 /* ARCH_SET_FS */, v)
        };
    }
}

impl AltStack {
    fn new() -> Result<AltStack, SignalError> {
        let map_len = PAGE + ALT_STACK_SIZE;
        // SAFETY: a fresh anonymous mapping at an address the kernel chooses.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(SignalError::Host("mmap of a signal stack", last_errno()));
        }
        // SAFETY: the first page of our own mapping becomes the overflow guard.
        unsafe { libc::mprotect(map, PAGE, libc::PROT_NONE) };
        let lo = map as u64 + PAGE as u64;
        let hi = lo + ALT_STACK_SIZE as u64;
        let fs_base = fs_base();
        let slot = STACK_SLOTS.iter().position(|s| s.lo.compare_exchange(0, lo, Ordering::SeqCst, Ordering::SeqCst).is_ok());
        let Some(slot) = slot else {
            // SAFETY: unmapping the mapping just made.
            unsafe { libc::munmap(map, map_len) };
            return Err(SignalError::TooManyThreads);
        };
        STACK_SLOTS[slot].fs_base.store(fs_base, Ordering::SeqCst);
        STACK_SLOTS[slot].hi.store(hi, Ordering::SeqCst);
        let alt = AltStack { map, map_len, slot };
        let ss = libc::stack_t { ss_sp: lo as *mut libc::c_void, ss_flags: 0, ss_size: ALT_STACK_SIZE };
        // SAFETY: registers our mapping as this thread's signal stack; it stays mapped
        // until `Drop` disables it again.
        if unsafe { libc::sigaltstack(&ss, std::ptr::null_mut()) } != 0 {
            return Err(SignalError::Host("sigaltstack", last_errno()));
        }
        Ok(alt)
    }
}

/// Restores the FS base saved for the signal stack we are running on, if any.
///
/// Must run before anything that may touch TLS; it reads only statics.
#[inline(always)]
fn restore_fs_base() {
    let sp: u64;
    // SAFETY: reads the stack pointer.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    for slot in STACK_SLOTS.iter() {
        let lo = slot.lo.load(Ordering::Relaxed);
        if lo != 0 && sp >= lo && sp < slot.hi.load(Ordering::Relaxed) {
            set_fs_base(slot.fs_base.load(Ordering::Relaxed));
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The handler.

extern "C" fn on_signal(signo: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // The FS base of the interrupted code: guest code running natively may have its own,
    // which must be back in place if the handler returns to it.
    let interrupted_fs = fs_base();
    restore_fs_base();
    let uc = ctx as *mut libc::ucontext_t;
    // SAFETY: the kernel passes a valid ucontext for SA_SIGINFO handlers.
    let cs = unsafe { (*uc).uc_mcontext.gregs[libc::REG_CSGSFS as usize] } as u16;
    if cs != USER_CS64 {
        // SAFETY: called from the signal handler with the kernel's info and ucontext.
        match unsafe { crate::direct::enter::handle_signal(signo, info, uc) } {
            crate::direct::enter::Handled::Resume => {
                set_fs_base(interrupted_fs);
                return;
            }
            crate::direct::enter::Handled::Exit => return,
            crate::direct::enter::Handled::NotMine => {}
        }
    } else {
        let hook = HOOK.load(Ordering::Acquire);
        if hook != 0 {
            // SAFETY: HOOK only ever holds a `TranslatorHook` stored by `set_translator_hook`.
            let hook: TranslatorHook = unsafe { std::mem::transmute::<usize, TranslatorHook>(hook) };
            // SAFETY: the hook's contract: called in signal context with the kernel's args.
            if unsafe { hook(signo, info, uc) } {
                return;
            }
        }
    }
    // SAFETY: as above; `internal_error` never returns.
    unsafe { internal_error(signo, info, uc) }
}

/// For a handler of another signal (the timer's) that interrupted compatibility-mode
/// code: restores the monitor's FS base and lets direct execution take the exit. True if
/// it did.
///
/// # Safety
/// Must be called from a signal handler running on the thread's signal stack, with the
/// kernel's `info` and `uc`.
pub unsafe fn divert_guest_code(signo: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::ucontext_t) -> bool {
    // SAFETY: the kernel passes a valid ucontext for SA_SIGINFO handlers.
    let cs = unsafe { (*uc).uc_mcontext.gregs[libc::REG_CSGSFS as usize] } as u16;
    if cs == USER_CS64 {
        return false;
    }
    let interrupted_fs = fs_base();
    restore_fs_base();
    // SAFETY: FS restored; the caller's contract.
    match unsafe { crate::direct::enter::handle_signal(signo, info, uc) } {
        crate::direct::enter::Handled::Resume => {
            set_fs_base(interrupted_fs);
            true
        }
        crate::direct::enter::Handled::Exit => true,
        crate::direct::enter::Handled::NotMine => {
            set_fs_base(interrupted_fs);
            false
        }
    }
}

/// A fixed buffer for formatting without allocation (async-signal-safe).
struct LineBuf {
    buf: [u8; 256],
    len: usize,
}

impl LineBuf {
    fn push(&mut self, s: &[u8]) {
        for &b in s {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
    }
    fn hex(&mut self, v: u64) {
        self.push(b"0x");
        let mut started = false;
        for i in (0..16).rev() {
            let d = ((v >> (i * 4)) & 0xF) as u8;
            if d != 0 || started || i == 0 {
                started = true;
                self.push(&[if d < 10 { b'0' + d } else { b'a' + d - 10 }]);
            }
        }
    }
    fn dec(&mut self, v: u64) {
        let mut digits = [0u8; 20];
        let mut n = 0;
        let mut v = v;
        loop {
            digits[n] = b'0' + (v % 10) as u8;
            n += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        digits[..n].reverse();
        self.push(&digits[..n]);
    }
}

/// Formats the internal-error line (kept apart from the handler so it can be tested).
fn format_internal_error(out: &mut LineBuf, signo: i32, rip: u64, cs: u16, addr: u64, trapno: u64, err: u64) {
    out.push(b"bt86: internal error: signal ");
    out.dec(signo as u64);
    out.push(b" at RIP ");
    out.hex(rip);
    out.push(b" (CS ");
    out.hex(cs as u64);
    out.push(b"), address ");
    out.hex(addr);
    out.push(b", trap ");
    out.dec(trapno);
    out.push(b", error code ");
    out.hex(err);
    out.push(b"\n");
}

/// Reports a signal nobody claimed and exits. Async-signal-safe: `write` and `_exit` only.
unsafe fn internal_error(signo: i32, info: *mut libc::siginfo_t, uc: *mut libc::ucontext_t) -> ! {
    // SAFETY: the kernel's siginfo and ucontext are valid for the handler's duration.
    let (addr, gregs) = unsafe { ((*info).si_addr() as u64, &(*uc).uc_mcontext.gregs) };
    let mut line = LineBuf { buf: [0; 256], len: 0 };
    format_internal_error(
        &mut line,
        signo,
        gregs[libc::REG_RIP as usize] as u64,
        gregs[libc::REG_CSGSFS as usize] as u16,
        addr,
        gregs[libc::REG_TRAPNO as usize] as u64,
        gregs[libc::REG_ERR as usize] as u64,
    );
    crate::host::terminal::restore();
    crate::host::disk_sync::sync_all();
    // SAFETY: write(2) and _exit(2) are async-signal-safe; the buffer is valid.
    unsafe {
        libc::write(2, line.buf.as_ptr() as *const libc::c_void, line.len);
        libc::_exit(INTERNAL_ERROR_EXIT)
    }
}

// ---------------------------------------------------------------------------------------
// Installation.

static INSTALLED: OnceLock<Result<(), SignalError>> = OnceLock::new();

fn install_handlers() -> Result<(), SignalError> {
    // AT_HWCAP2 bit 1: the kernel enabled FSGSBASE for user mode.
    // SAFETY: getauxval only reads the auxiliary vector.
    let hwcap2 = unsafe { libc::getauxval(libc::AT_HWCAP2) };
    FSGSBASE.store(hwcap2 & 2 != 0, Ordering::SeqCst);
    for &sig in HANDLED_SIGNALS.iter() {
        // SAFETY: a zeroed sigaction is a valid starting value; every field we rely on
        // is set below.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_signal as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: sigfillset on a valid sigset_t; sigaction with a valid action. The
        // handler is async-signal-safe (see the module comment).
        unsafe {
            libc::sigfillset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(SignalError::Host("sigaction", last_errno()));
            }
        }
    }
    Ok(())
}

/// Installs the process's signal handlers (once) and gives the calling thread its signal
/// stack (once per thread). Call it on every thread that runs guest code; it is cheap
/// after the first time.
pub fn install() -> Result<(), SignalError> {
    INSTALLED.get_or_init(install_handlers).clone()?;
    ALT_STACK.with(|cell| {
        let mut alt = cell.borrow_mut();
        if alt.is_none() {
            *alt = Some(AltStack::new()?);
        }
        Ok(())
    })
}

/// Registers the translator's hook (replacing any previous one).
pub fn set_translator_hook(hook: TranslatorHook) {
    HOOK.store(hook as usize, Ordering::Release);
}

/// Removes the translator's hook.
#[allow(dead_code)] // for tests and teardown paths that want no hook
pub fn clear_translator_hook() {
    HOOK.store(0, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_twice_and_fs_base_kept() {
        install().unwrap();
        install().unwrap();
        let fs = fs_base();
        assert_ne!(fs, 0);
        ALT_STACK.with(|c| {
            let alt = c.borrow();
            let slot = &STACK_SLOTS[alt.as_ref().unwrap().slot];
            assert_eq!(slot.fs_base.load(Ordering::SeqCst), fs);
        });
    }

    #[test]
    fn error_line() {
        let mut line = LineBuf { buf: [0; 256], len: 0 };
        format_internal_error(&mut line, 11, 0x5555_0000_1234, 0x33, 0, 14, 6);
        assert_eq!(
            std::str::from_utf8(&line.buf[..line.len]).unwrap(),
            "bt86: internal error: signal 11 at RIP 0x555500001234 (CS 0x33), address 0x0, trap 14, error code 0x6\n"
        );
    }
}
