//! The part of host fault handling that runs inside the signal handler, for faults in
//! translated code.
//!
//! A string instruction that ran off either end of the 4 GiB guest space is fixed up in
//! place (its register moved by 4 GiB, the guest's wrap-around) and resumed. Any other
//! fault becomes a precise guest state in the context (via the translator's host→guest
//! map) and an [`ExitReason::Fault`] exit: the handler rewrites the signal context to
//! land in the translator's `fault_landing` stub, which returns from `enter` to the run
//! loop. Everything here is async-signal-safe: no allocation, no locks.

use std::sync::atomic::{AtomicPtr, Ordering};

use bt86_shadow_mmu::{Mmu, locate};
use bt86_translator::{Context, ExitReason, HostFault, HostRegs, Translator};

static TRANSLATOR: AtomicPtr<Translator> = AtomicPtr::new(std::ptr::null_mut());
static CONTEXT: AtomicPtr<Context> = AtomicPtr::new(std::ptr::null_mut());
static MMU: AtomicPtr<Mmu> = AtomicPtr::new(std::ptr::null_mut());

/// Makes the signal handler use this translator, context and MMU. They must stay at
/// their addresses, and the monitor must hold no reference into the MMU while
/// translated code runs, until [`unregister`].
pub fn register(t: &Translator, ctx: &mut Context, mmu: Option<&mut Mmu>) {
    TRANSLATOR.store(t as *const Translator as *mut Translator, Ordering::SeqCst);
    CONTEXT.store(ctx as *mut Context, Ordering::SeqCst);
    MMU.store(mmu.map_or(std::ptr::null_mut(), |m| m as *mut Mmu), Ordering::SeqCst);
}

/// Stops the handler from using them.
pub fn unregister() {
    TRANSLATOR.store(std::ptr::null_mut(), Ordering::SeqCst);
    CONTEXT.store(std::ptr::null_mut(), Ordering::SeqCst);
    MMU.store(std::ptr::null_mut(), Ordering::SeqCst);
}

const GUEST_ORDER: [libc::c_int; 8] =
    [libc::REG_RAX, libc::REG_RCX, libc::REG_RDX, libc::REG_RBX, libc::REG_R12, libc::REG_RBP, libc::REG_RSI, libc::REG_RDI];

/// The translator's signal hook: returns true if the signal came from translated code
/// and the context was rewritten to continue.
///
/// # Safety
/// Must be called from a signal handler with the kernel's `info` and `uc`.
pub unsafe fn on_signal(signo: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::ucontext_t) -> bool {
    let t = TRANSLATOR.load(Ordering::Relaxed);
    let ctx = CONTEXT.load(Ordering::Relaxed);
    if t.is_null() || ctx.is_null() {
        return false;
    }
    // SAFETY: registered pointers stay valid while registered; the run loop is inside
    // `Translator::run` (the signal interrupted translated code), so nothing mutates the
    // translator concurrently; `uc` and `info` come from the kernel.
    unsafe {
        let t = &*t;
        let gregs = &mut (*uc).uc_mcontext.gregs;
        let rip = gregs[libc::REG_RIP as usize] as u64;
        if !t.owns_rip(rip) {
            return false;
        }
        let addr = (*info).si_addr() as u64;
        let place = locate(addr);
        // A hidden fault: the guest's tables map the page; fill it and run on.
        let mmu = MMU.load(Ordering::Relaxed);
        if signo == libc::SIGSEGV
            && !mmu.is_null()
            && matches!(place, Some((_, _, false)))
            && (*mmu).on_host_fault(addr, gregs[libc::REG_ERR as usize] & 2 != 0, false) == bt86_shadow_mmu::HostFault::Filled
        {
            return true;
        }
        if signo == libc::SIGSEGV && matches!(place, Some((_, _, true))) {
            let (mut rsi, mut rdi) = (gregs[libc::REG_RSI as usize] as u64, gregs[libc::REG_RDI as usize] as u64);
            if t.wrap_string_registers(rip, &mut rsi, &mut rdi) {
                gregs[libc::REG_RSI as usize] = rsi as i64;
                gregs[libc::REG_RDI as usize] = rdi as i64;
                STRING_WRAPS.fetch_add(1, Ordering::Relaxed);
                return true;
            }
        }
        let mut regs = HostRegs { gpr: [0; 8], rflags: gregs[libc::REG_EFL as usize] as u64, r13: gregs[libc::REG_R13 as usize] as u64 };
        for (i, r) in GUEST_ORDER.iter().enumerate() {
            regs.gpr[i] = gregs[*r as usize] as u64;
        }
        // The load at a checked fragment entry hit the protected kick page: the monitor
        // wants control at this instruction boundary.
        let kick = addr == bt86_translator::kick_page_of(ctx) as u64;
        if kick {
            bt86_translator::disarm_kick(ctx);
        }
        let Some(rec) = t.recover(rip, &regs, &*ctx) else {
            if std::env::var_os("BT86_DEBUG_SIGNALS").is_some() {
                eprintln!("tc_signal: no recovery for rip {rip:#x}: {}", t.describe_host(rip));
            }
            return false;
        };
        std::ptr::addr_of_mut!((*ctx).gpr).write(rec.gpr);
        std::ptr::addr_of_mut!((*ctx).eip).write(rec.eip);
        std::ptr::addr_of_mut!((*ctx).host_flags).write(rec.host_flags);
        std::ptr::addr_of_mut!((*ctx).exit_arg).write(rec.fragment.index());
        std::ptr::addr_of_mut!((*ctx).fault).write(HostFault {
            signo,
            code: (*info).si_code,
            trapno: gregs[libc::REG_TRAPNO as usize] as u32,
            err: gregs[libc::REG_ERR as usize] as u32,
            addr,
            rip,
        });
        if kick {
            std::ptr::addr_of_mut!((*ctx).exit_eip).write(rec.eip);
            std::ptr::addr_of_mut!((*ctx).exit_reason).write(ExitReason::Kick as u32);
        } else {
            std::ptr::addr_of_mut!((*ctx).exit_reason).write(ExitReason::Fault as u32);
        }
        gregs[libc::REG_RIP as usize] = t.stubs().fault_landing as i64;
        gregs[libc::REG_RSP as usize] = std::ptr::addr_of!((*ctx).host_rsp).read() as i64;
        gregs[libc::REG_R15 as usize] = ctx as i64;
        // Leave with the host flags the landing stub expects (DF and TF clear).
        gregs[libc::REG_EFL as usize] = 0x202;
        true
    }
}

/// String instructions that wrapped around 4 GiB (fixed up in the handler).
pub static STRING_WRAPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Fills a hidden fault of directly executed guest code at window address `addr`
/// (`write`, `fetch`: the kind of access). True if the page is now mapped and the
/// instruction can simply run again.
///
/// # Safety
/// Must be called from a signal handler while the machine is registered (its MMU is not
/// otherwise in use: the run loop is blocked in guest code).
pub unsafe fn fill_hidden_fault(addr: u64, write: bool, fetch: bool) -> bool {
    let mmu = MMU.load(Ordering::Relaxed);
    if mmu.is_null() || !matches!(locate(addr), Some((_, _, false))) {
        return false;
    }
    // SAFETY: the registered MMU outlives the registration; nothing else uses it now.
    unsafe { (*mmu).on_host_fault(addr, write, fetch) == bt86_shadow_mmu::HostFault::Filled }
}
