//! The controlling terminal: raw mode while a guest runs with its serial console on the
//! terminal, and the terminal put back as it was on every way out — a normal exit, a
//! guest stop, an internal error, a fatal signal, or SIGINT/SIGTERM/SIGHUP from outside.
//!
//! The saved settings live in a static so that signal handlers can restore them:
//! `tcsetattr` is an `ioctl`, async-signal-safe.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// The terminal settings before raw mode (set once, read by signal handlers).
static SAVED: OnceLock<libc::termios> = OnceLock::new();
/// Raw mode is on (so there is something to restore).
static RAW: AtomicBool = AtomicBool::new(false);

/// True if standard input is a terminal.
pub fn stdin_is_tty() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(0) == 1 }
}

/// Puts the terminal on standard input in raw mode (no echo, no line editing, no
/// signals from keys: Ctrl-C goes to the guest, as with QEMU's `-nographic`), after
/// installing the handlers that restore it. Does nothing if stdin is not a terminal.
pub fn enter_raw_mode() -> std::io::Result<()> {
    if !stdin_is_tty() {
        return Ok(());
    }
    // SAFETY: a zeroed termios is a valid buffer for tcgetattr to fill.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: tcgetattr writes the termios we pass.
    if unsafe { libc::tcgetattr(0, &mut t) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let saved = *SAVED.get_or_init(|| t);
    install_exit_signal_handlers();
    let mut raw = saved;
    // SAFETY: cfmakeraw edits the termios we pass.
    unsafe { libc::cfmakeraw(&mut raw) };
    // Output stays raw too: a serial console sends "\r\n" itself, as on a real line.
    // SAFETY: tcsetattr with a valid termios.
    if unsafe { libc::tcsetattr(0, libc::TCSANOW, &raw) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    RAW.store(true, Ordering::SeqCst);
    Ok(())
}

/// Puts the terminal back as it was before [`enter_raw_mode`]. Async-signal-safe;
/// idempotent.
pub fn restore() {
    if RAW.swap(false, Ordering::SeqCst)
        && let Some(t) = SAVED.get()
    {
        // SAFETY: tcsetattr with the termios tcgetattr gave us.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
    }
}

/// SIGINT, SIGTERM, SIGHUP: restore the terminal and sync the disk images, then die of
/// the signal as if bt86 had no handler (the parent sees the signal).
extern "C" fn on_exit_signal(sig: libc::c_int) {
    restore();
    super::disk_sync::sync_all();
    // SAFETY: signal and raise are async-signal-safe; the default action ends the
    // process (the signal is blocked while this handler runs and delivered on return).
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Installs the handlers for SIGINT, SIGTERM and SIGHUP (done with raw mode, and when
/// disks are attached).
pub fn install_exit_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: installing an async-signal-safe handler for a signal bt86 does not
        // otherwise use.
        unsafe { libc::signal(sig, on_exit_signal as *const () as libc::sighandler_t) };
    }
}
