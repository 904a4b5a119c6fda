//! The guest's serial console on bt86's own standard input and output.
//!
//! Output ([`Output`]): the UART's bytes go to standard output; if that fails (a closed
//! pipe: `bt86 run ... | head`), one line on stderr says so and the rest is dropped.
//!
//! Input ([`Console`]): what is typed (or piped in)
//! reaches COM1's receiver in order, with nothing lost — bytes the UART's FIFO has no
//! room for wait here until the guest reads — and at the end of input the console just
//! stops delivering.
//!
//! With `--display text` ([`Console::for_keyboard`]) the same input goes to the i8042's
//! keyboard instead: each key a terminal sends (ANSI cursor keys included) becomes a
//! [`bt86_devices::keys::KeyStroke`], offered whenever the keyboard can take one (see
//! `I8042::type_key`); bytes no key gives are dropped.
//!
//! On a terminal, QEMU's `-nographic` escape keys work: Ctrl-A x quits, Ctrl-A h lists the
//! keys, Ctrl-A Ctrl-A sends a Ctrl-A. Standard input is never made non-blocking (the
//! shell shares it); it is read only after `poll` says there is something to read.

use std::collections::VecDeque;
use std::io::Write;

use bt86_devices::Platform;

/// The escape key, Ctrl-A.
const ESCAPE: u8 = 0x01;
/// How often a running guest's input is looked at, in virtual nanoseconds.
const POLL_INTERVAL_NS: u64 = 1_000_000;

/// What the user asked for with an escape key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Ctrl-A x.
    Quit,
}

/// Standard input as the guest's serial line.
pub struct Console {
    /// Standard input may still deliver bytes.
    open: bool,
    /// Escape keys are interpreted (standard input is a terminal).
    escapes: bool,
    /// The last key was Ctrl-A.
    after_escape: bool,
    /// Bytes read but not yet taken by the UART, in order.
    pending: VecDeque<u8>,
    /// Virtual time of the last look at standard input.
    last_poll_ns: u64,
    /// Input goes to the keyboard, not COM1.
    keyboard: bool,
}

impl Console {
    /// A console on standard input; `escapes` when it is a terminal.
    pub fn new(escapes: bool) -> Console {
        Console { open: true, escapes, after_escape: false, pending: VecDeque::new(), last_poll_ns: 0, keyboard: false }
    }

    /// A console whose input is typed on the i8042's keyboard (`--display text`).
    pub fn for_keyboard(escapes: bool) -> Console {
        Console { keyboard: true, ..Console::new(escapes) }
    }

    /// True while input may still arrive or wait for the guest.
    pub fn live(&self) -> bool {
        self.open || !self.pending.is_empty()
    }

    /// Offers waiting bytes to the UART and, once they are all taken, reads what standard
    /// input has (at most once per [`POLL_INTERVAL_NS`] unless `now_ns` is `None`).
    pub fn pump(&mut self, platform: &mut Platform, now_ns: Option<u64>) -> Option<Request> {
        self.offer(platform);
        if !self.open || !self.pending.is_empty() {
            return None;
        }
        if let Some(now) = now_ns {
            if now.saturating_sub(self.last_poll_ns) < POLL_INTERVAL_NS {
                return None;
            }
            self.last_poll_ns = now;
        }
        let request = self.read_available();
        self.offer(platform);
        request
    }

    /// Waits until standard input has something to read or `timeout_ns` passes (None:
    /// no limit). Returns at once when there is nothing to wait for.
    pub fn wait(&self, timeout_ns: Option<u64>) {
        if self.keyboard && !self.pending.is_empty() {
            // Keys wait for the guest to read the last one: sleep, not spin.
            let ns = timeout_ns.unwrap_or(POLL_INTERVAL_NS).min(POLL_INTERVAL_NS);
            std::thread::sleep(std::time::Duration::from_nanos(ns));
            return;
        }
        if !self.open || !self.pending.is_empty() {
            return;
        }
        let ts = timeout_ns.map(|ns| libc::timespec { tv_sec: (ns / 1_000_000_000) as _, tv_nsec: (ns % 1_000_000_000) as _ });
        let mut fd = libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 };
        let tsp = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: ppoll on one valid pollfd with a valid (or null) timeout; a signal (the
        // guest's timer) ends it early, which the caller expects.
        unsafe { libc::ppoll(&mut fd, 1, tsp, std::ptr::null()) };
    }

    fn offer(&mut self, platform: &mut Platform) {
        if self.keyboard {
            while !self.pending.is_empty() {
                let (stroke, len) = bt86_devices::keys::next_key(self.pending.make_contiguous());
                if stroke.is_some_and(|k| !platform.type_key(&k)) {
                    break;
                }
                self.pending.drain(..len);
            }
            return;
        }
        // What the guest's driver cleared from the FIFO unread comes first again.
        for b in platform.take_returned_serial_input().into_iter().rev() {
            self.pending.push_front(b);
        }
        while !self.pending.is_empty() {
            let (a, _) = self.pending.as_slices();
            let offered = a.len();
            let taken = platform.enqueue_serial_input(a);
            self.pending.drain(..taken);
            if taken < offered {
                break;
            }
        }
    }

    /// Reads what standard input has now, without blocking.
    fn read_available(&mut self) -> Option<Request> {
        let mut fd = libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 };
        // SAFETY: poll on one valid pollfd, no waiting.
        let ready = unsafe { libc::poll(&mut fd, 1, 0) };
        if ready <= 0 || fd.revents == 0 {
            return None;
        }
        let mut buf = [0u8; 256];
        // SAFETY: reading into a buffer we own; poll said a read will not block.
        let n = unsafe { libc::read(0, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if n <= 0 {
            // End of input (or an error, which ends it too): stop delivering.
            if n < 0 {
                log::info!("console input ends: {}", std::io::Error::last_os_error());
            }
            self.open = false;
            return None;
        }
        self.take_keys(&buf[..n as usize])
    }

    /// Queues `bytes` for the guest, acting on escape keys when they are interpreted.
    fn take_keys(&mut self, bytes: &[u8]) -> Option<Request> {
        if !self.escapes {
            self.pending.extend(bytes);
            return None;
        }
        for &b in bytes {
            if std::mem::take(&mut self.after_escape) {
                match b {
                    b'x' | b'X' => return Some(Request::Quit),
                    b'h' | b'H' | b'?' => eprint!("\r\nC-a h    print this help\r\nC-a x    exit bt86\r\nC-a C-a  sends C-a\r\n"),
                    // Ctrl-A Ctrl-A, or an unknown key: the key itself.
                    _ => self.pending.push_back(b),
                }
            } else if b == ESCAPE {
                self.after_escape = true;
            } else {
                self.pending.push_back(b);
            }
        }
        None
    }
}

/// Standard output as the serial line's far end.
pub struct Output<W: Write> {
    out: W,
    /// Writing failed once: the rest is dropped.
    broken: bool,
}

impl<W: Write> Output<W> {
    /// The serial output writer over `out` (standard output).
    pub fn new(out: W) -> Output<W> {
        Output { out, broken: false }
    }

    fn failed(&mut self, err: std::io::Error) {
        if !self.broken {
            self.broken = true;
            eprintln!("bt86: the guest's serial output stops here: cannot write to standard output: {err}");
        }
    }
}

impl<W: Write> Write for Output<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.broken
            && let Err(e) = self.out.write_all(buf)
        {
            self.failed(e);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.broken
            && let Err(e) = self.out.flush()
        {
            self.failed(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_keys_on_a_terminal() {
        let mut c = Console::new(true);
        assert_eq!(c.take_keys(b"ls\x01\x01a"), None);
        assert_eq!(c.pending.iter().copied().collect::<Vec<u8>>(), b"ls\x01a");
        assert_eq!(c.take_keys(b"\x01h"), None, "help is printed, nothing sent");
        assert_eq!(c.pending.len(), 4);
        assert_eq!(c.take_keys(b"\x01"), None);
        assert_eq!(c.take_keys(b"x"), Some(Request::Quit), "Ctrl-A split across reads");
    }

    #[test]
    fn output_after_a_failure_is_dropped_quietly() {
        struct Closed(u32);
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                self.0 += 1;
                Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut o = Output::new(Closed(0));
        for _ in 0..100 {
            assert_eq!(o.write(b"x").unwrap(), 1);
        }
        assert_eq!(o.out.0, 1, "one attempt, then nothing");
    }

    #[test]
    fn piped_input_passes_through_unchanged() {
        let mut c = Console::new(false);
        assert_eq!(c.take_keys(b"\x01x\n"), None);
        assert_eq!(c.pending.iter().copied().collect::<Vec<u8>>(), b"\x01x\n");
    }
}
