//! Virtual time and the host timer that drives the guest's timer interrupts.
//!
//! Guest time is host `CLOCK_MONOTONIC` time since power-on. When a device (the PIT)
//! has a next event, a POSIX timer aimed at the vCPU thread fires a signal at that moment;
//! its handler sets the context's `kick_async` word, so the running fragment exits to
//! the monitor at its next entry check (or, for guest code running natively, ends the
//! slice at once), and the run loop updates the devices.

use std::sync::atomic::{AtomicPtr, Ordering};

use bt86_translator::Context;

/// The signal the host timer raises.
pub const TIMER_SIGNAL: libc::c_int = libc::SIGALRM;

/// The context whose `kick_async` the timer signal sets.
static KICK_TARGET: AtomicPtr<Context> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn on_timer_signal(sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    let ctx = KICK_TARGET.load(Ordering::Relaxed);
    if !ctx.is_null() {
        // SAFETY: KICK_TARGET points to the running machine's context (cleared before
        // that is dropped); the handler stores one aligned u32 and protects the kick page
        // (one mprotect), both async-signal-safe.
        unsafe { std::ptr::write_volatile(std::ptr::addr_of_mut!((*ctx).kick_async), 1) };
        bt86_translator::arm_kick(ctx);
    }
    // Guest code running natively: end its slice so the run loop sees the timer.
    // SAFETY: a signal handler on the signal stack (SA_ONSTACK), the kernel's arguments.
    unsafe { crate::host::signals::divert_guest_code(sig, info, uc as *mut libc::ucontext_t) };
}

fn now_timespec() -> libc::timespec {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts
}

fn ts_ns(ts: &libc::timespec) -> u64 {
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn ns_ts(ns: u64) -> libc::timespec {
    libc::timespec { tv_sec: (ns / 1_000_000_000) as libc::time_t, tv_nsec: (ns % 1_000_000_000) as libc::c_long }
}

/// The virtual clock and the host timer.
pub struct Clock {
    start_ns: u64,
    timer: libc::timer_t,
    armed_for: Option<u64>,
    /// Times the host timer was (re)armed.
    pub arms: u64,
}

impl Clock {
    /// Starts the clock and creates the host timer for the calling thread, which will
    /// set `ctx.kick_async` when it fires.
    pub fn new(ctx: &mut Context) -> std::io::Result<Clock> {
        KICK_TARGET.store(ctx as *mut Context, Ordering::SeqCst);
        // SAFETY: installs a handler that only performs a volatile store (async-signal
        // safe); SA_RESTART keeps the monitor's own system calls from failing with EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_timer_signal as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize;
            sa.sa_flags = libc::SA_RESTART | libc::SA_ONSTACK | libc::SA_SIGINFO;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(TIMER_SIGNAL, &sa, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        let mut timer: libc::timer_t = std::ptr::null_mut();
        // SAFETY: a zeroed sigevent is valid; we fill the fields the kernel reads for
        // SIGEV_THREAD_ID and pass out-pointers to locals.
        unsafe {
            let mut sev: libc::sigevent = std::mem::zeroed();
            sev.sigev_notify = libc::SIGEV_THREAD_ID;
            sev.sigev_signo = TIMER_SIGNAL;
            sev.sigev_notify_thread_id = libc::gettid();
            if libc::timer_create(libc::CLOCK_MONOTONIC, &mut sev, &mut timer) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(Clock { start_ns: ts_ns(&now_timespec()), timer, armed_for: None, arms: 0 })
    }

    /// Nanoseconds since power-on.
    pub fn now(&self) -> u64 {
        ts_ns(&now_timespec()).saturating_sub(self.start_ns)
    }

    /// Makes the host timer fire at virtual time `deadline` (None: disarm).
    pub fn arm(&mut self, deadline: Option<u64>) {
        if self.armed_for == deadline {
            return;
        }
        self.armed_for = deadline;
        let value = match deadline {
            // A zero it_value disarms; a deadline already past fires at once.
            Some(d) => ns_ts((self.start_ns + d).max(1)),
            None => libc::timespec { tv_sec: 0, tv_nsec: 0 },
        };
        let spec = libc::itimerspec { it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 }, it_value: value };
        // SAFETY: our timer, a valid itimerspec.
        unsafe { libc::timer_settime(self.timer, libc::TIMER_ABSTIME, &spec, std::ptr::null_mut()) };
        self.arms += 1;
    }

    /// Forgets what the timer was armed for (after it fired).
    pub fn fired(&mut self) {
        self.armed_for = None;
    }

    /// Sleeps until virtual time `deadline` or until a signal arrives.
    pub fn sleep_until(&self, deadline: u64) {
        let ts = ns_ts(self.start_ns + deadline);
        // SAFETY: clock_nanosleep with an absolute time and no remainder pointer.
        unsafe { libc::clock_nanosleep(libc::CLOCK_MONOTONIC, libc::TIMER_ABSTIME, &ts, std::ptr::null_mut()) };
    }
}

impl Drop for Clock {
    fn drop(&mut self) {
        KICK_TARGET.store(std::ptr::null_mut(), Ordering::SeqCst);
        // SAFETY: deleting our own timer.
        unsafe { libc::timer_delete(self.timer) };
    }
}
