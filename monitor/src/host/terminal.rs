//! The controlling terminal: raw mode while a guest runs with its serial console on the
//! terminal, and the terminal put back as it was on every way out — a normal exit, a
//! guest stop, an internal error, a fatal signal, or SIGINT/SIGTERM/SIGHUP from outside.
//! With `--display text` that includes the screen: colours reset, the cursor shown and
//! moved below the guest's 25 rows ([`end_display`]).
//!
//! The saved settings live in a static so that signal handlers can restore them:
//! `tcsetattr` is an `ioctl`, async-signal-safe.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// The terminal settings before raw mode (set once, read by signal handlers).
static SAVED: OnceLock<libc::termios> = OnceLock::new();
/// Raw mode is on (so there is something to restore).
static RAW: AtomicBool = AtomicBool::new(false);
/// The guest's screen is drawn on standard output (`--display text`).
static DISPLAY: AtomicBool = AtomicBool::new(false);
/// What leaves a drawn screen usable: default colours, the cursor shown, on the line
/// below the guest's 25 rows.
const DISPLAY_END: &[u8] = b"\x1b[0m\x1b[?25h\x1b[26;1H\r\n";

/// The guest's screen is being drawn on standard output: [`restore`] ends it.
pub fn start_display() {
    DISPLAY.store(true, Ordering::SeqCst);
    install_exit_signal_handlers();
}

/// Ends a drawn screen (once): colours reset, cursor shown, below the screen.
/// Async-signal-safe.
pub fn end_display() {
    if DISPLAY.swap(false, Ordering::SeqCst) {
        // SAFETY: write(2) of a static buffer to standard output; async-signal-safe.
        unsafe { libc::write(1, DISPLAY_END.as_ptr() as *const libc::c_void, DISPLAY_END.len()) };
    }
}

/// True if standard input is a terminal.
pub fn stdin_is_tty() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(0) == 1 }
}

/// True if standard error is a terminal.
pub fn stderr_is_tty() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(2) == 1 }
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

/// Puts the terminal back as it was before [`enter_raw_mode`] (and ends a drawn screen).
/// Async-signal-safe; idempotent.
pub fn restore() {
    end_display();
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

/// Installs the handlers for SIGINT, SIGTERM and SIGHUP (with raw mode, the text display,
/// and when disks are attached).
pub fn install_exit_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: installing an async-signal-safe handler for a signal bt86 does not
        // otherwise use.
        unsafe { libc::signal(sig, on_exit_signal as *const () as libc::sighandler_t) };
    }
}
