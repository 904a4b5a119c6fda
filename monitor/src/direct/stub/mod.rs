//! The sandbox: guest user code runs natively in a stub process of its own.
//!
//! A stub ([`Stub`]) is a host process whose address space holds only the guest user
//! window (the same guest frames at the same addresses as the monitor's user window, with
//! the same permissions: `bt86_shadow_mmu`'s mirror), its own read-only code ([`code`]),
//! its signal stack, and the pages it shares with the monitor ([`shared`]). It has no
//! standard input, output or terminal (its own session), and its only descriptors are
//! the two views of guest RAM that its mappings come from. Its seccomp filter
//! ([`filter`]) kills it on any host call but its own; its `mmap` calls wait for the
//! monitor, which lets through exactly the calls it asked for (`approve`), so escaped code
//! cannot map a page the guest did not give user code. It dies with the monitor
//! (`PR_SET_PDEATHSIG`).
//!
//! The anchors are gVisor's systrap platform (application code in stub processes,
//! seccomp traps, state through shared memory with a futex handoff) and User-Mode
//! Linux's separate address spaces; unlike UML's seccomp stub, the permitted `mmap` is not
//! trusted by its instruction pointer but by the monitor knowing which call it asked for.
//!
//! What a stub writes is untrusted: [`Stub::run`] returns the raw exit, which the caller
//! validates. A stub that dies, does not answer within [`ANSWER_TIMEOUT`] of being asked
//! (or of the preemption signal), or makes a call it was not asked for is *failed*
//! ([`StubFailure`]); the caller kills it and starts a new one.

pub mod code;
pub mod filter;
pub mod shared;

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use shared::{Command, Entry, ExitRecord, MAX_DESCS, MAX_OPS, Op, SHARED_SIZE, STUB_SHARED, Shared, UserDesc, fds, off};

/// How long a stub may take to answer a command or the preemption signal.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the monitor spins for an answer before it sleeps.
const SPIN: Duration = Duration::from_micros(30);
/// The signal that ends a native slice in the stub.
pub const PREEMPT_SIGNAL: libc::c_int = libc::SIGALRM;

/// Why a stub could not be started.
#[derive(Debug)]
pub struct SpawnError(pub String);

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot start the sandbox process: {}", self.0)
    }
}

/// Why a stub can no longer be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StubFailure {
    /// It exited or was killed (by its filter: a host call outside its list).
    Died,
    /// It did not answer in time.
    Unresponsive,
    /// It made a host call the monitor did not ask for, or skipped one.
    Unexpected(String),
    /// One of the host calls the monitor asked for failed (`-errno`).
    CallFailed(u64, i64),
}

impl std::fmt::Display for StubFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StubFailure::Died => write!(f, "the stub process died"),
            StubFailure::Unresponsive => write!(f, "the stub process stopped answering"),
            StubFailure::Unexpected(what) => write!(f, "the stub process made an unexpected host call: {what}"),
            StubFailure::CallFailed(nr, e) => {
                write!(f, "host call {nr} in the stub failed: {}", std::io::Error::from_raw_os_error(-*e as i32))
            }
        }
    }
}

/// `struct seccomp_notif`.
#[repr(C)]
#[derive(Default)]
struct Notif {
    id: u64,
    pid: u32,
    flags: u32,
    nr: i32,
    arch: u32,
    ip: u64,
    args: [u64; 6],
}

/// `struct seccomp_notif_resp`.
#[repr(C)]
struct NotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

const SECCOMP_IOCTL_NOTIF_RECV: libc::c_ulong = 0xc050_2100;
const SECCOMP_IOCTL_NOTIF_SEND: libc::c_ulong = 0xc018_2101;
const SECCOMP_USER_NOTIF_FLAG_CONTINUE: u32 = 1;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn os_err(what: &str) -> SpawnError {
    SpawnError(format!("{what}: {}", std::io::Error::last_os_error()))
}

/// A new memfd of `len` bytes.
fn memfd(name: &str, len: usize) -> Result<OwnedFd, SpawnError> {
    let cname = CString::new(name).expect("no NUL in the name");
    // SAFETY: memfd_create with a valid C string; the result is checked.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(os_err("memfd_create"));
    }
    // SAFETY: a new descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ftruncate on our own memfd.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
        return Err(os_err("ftruncate"));
    }
    Ok(fd)
}

/// The monitor's side of a running stub.
pub struct Stub {
    pid: libc::pid_t,
    pidfd: OwnedFd,
    /// The seccomp listener (None until the stub has installed its filter).
    listener: Option<OwnedFd>,
    shared: *mut Shared,
    /// The stub's own copy of the listener, closed with the next command.
    listener_in_stub: Option<i32>,
    failed: bool,
}

/// What is needed to start stubs, prepared once.
pub struct StubFactory {
    ram_rw: RawFd,
    ram_ro: OwnedFd,
    image: Vec<u8>,
    cpuid_faulting: bool,
}

impl StubFactory {
    /// Prepares stubs mapping guest RAM from `ram_fd` (read-write), with CPUID faulting
    /// turned on inside them if `cpuid_faulting`.
    pub fn new(ram_fd: RawFd, cpuid_faulting: bool) -> Result<StubFactory, SpawnError> {
        let path = CString::new(format!("/proc/self/fd/{ram_fd}")).expect("no NUL");
        // SAFETY: open with a valid path; the result is checked.
        let ro = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if ro < 0 {
            return Err(os_err("opening guest RAM read-only"));
        }
        // SAFETY: a new descriptor we own.
        let ram_ro = unsafe { OwnedFd::from_raw_fd(ro) };
        Ok(StubFactory { ram_rw: ram_fd, ram_ro, image: code::elf_image(), cpuid_faulting })
    }

    /// Starts a stub and waits until it is ready for commands.
    pub fn spawn(&self) -> Result<Stub, SpawnError> {
        let exe = memfd("bt86-stub", 0)?;
        // SAFETY: writing our buffer to our memfd.
        let n = unsafe { libc::write(exe.as_raw_fd(), self.image.as_ptr() as *const libc::c_void, self.image.len()) };
        if n != self.image.len() as isize {
            return Err(os_err("writing the stub's executable"));
        }
        let shared_fd = memfd("bt86-stub-shared", SHARED_SIZE)?;
        // SAFETY: a new shared mapping of our own memfd, at an address the kernel picks.
        let p = unsafe {
            libc::mmap(std::ptr::null_mut(), SHARED_SIZE, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, shared_fd.as_raw_fd(), 0)
        };
        if p == libc::MAP_FAILED {
            return Err(os_err("mmap of the shared pages"));
        }
        let shared = p as *mut Shared;
        // SAFETY: the mapping is SHARED_SIZE bytes, page aligned, zero-filled (a valid
        // Shared: integers and atomics), and nothing else uses it before the stub runs.
        let s = unsafe { &mut *shared };
        s.cmd_seq.store(1, Ordering::SeqCst);
        s.setup_flags = self.cpuid_faulting as u32;
        let prog = filter::program();
        s.filter[..prog.len()].copy_from_slice(&prog);
        s.filter_len = prog.len() as u32;
        let started = self.fork_exec(shared_fd.as_raw_fd(), exe.as_raw_fd());
        let (pid, pidfd) = match started {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: unmapping the mapping made above, which nothing else uses.
                unsafe { libc::munmap(p, SHARED_SIZE) };
                return Err(e);
            }
        };
        let mut stub = Stub { pid, pidfd, listener: None, shared, listener_in_stub: None, failed: true };
        stub.wait_done(1, &|| false, Some(Instant::now() + 5 * ANSWER_TIMEOUT))
            .map_err(|f| SpawnError(format!("the stub did not start ({f})")))?;
        let fd = stub.shared().listener_fd;
        if fd < 0 {
            return Err(SpawnError(format!("the stub could not install its seccomp filter: {}", std::io::Error::from_raw_os_error(-fd))));
        }
        // SAFETY: pidfd_getfd on our own child's descriptor; the result is checked.
        let listener = unsafe { libc::syscall(libc::SYS_pidfd_getfd, stub.pidfd.as_raw_fd(), fd, 0) } as i32;
        if listener < 0 {
            return Err(os_err("pidfd_getfd of the stub's seccomp listener"));
        }
        // SAFETY: a new descriptor we own.
        stub.listener = Some(unsafe { OwnedFd::from_raw_fd(listener) });
        stub.listener_in_stub = Some(fd);
        stub.failed = false;
        Ok(stub)
    }

    /// Forks and, in the child, executes the stub with descriptors 3 to 6 as it expects
    /// them and nothing else.
    fn fork_exec(&self, shared_fd: RawFd, exe_fd: RawFd) -> Result<(libc::pid_t, OwnedFd), SpawnError> {
        let parent = std::process::id() as libc::pid_t;
        let empty = c"";
        let argv: [*const libc::c_char; 1] = [std::ptr::null()];
        let sources = [shared_fd, self.ram_rw, self.ram_ro.as_raw_fd(), exe_fd];
        let targets = [fds::SHARED, fds::RAM_RW, fds::RAM_RO, fds::EXE];
        // SAFETY: fork; the child below makes only async-signal-safe system calls (no
        // allocation, no locks) and ends in execveat or _exit.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(os_err("fork"));
        }
        if pid == 0 {
            // SAFETY: raw system calls in the forked child, on values prepared before the
            // fork; every path ends in execveat or _exit.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                libc::setsid();
                let mut high = [0; 4];
                for (h, &s) in high.iter_mut().zip(&sources) {
                    *h = libc::fcntl(s, libc::F_DUPFD, 16);
                    if *h < 0 {
                        libc::_exit(126);
                    }
                }
                for (&h, &t) in high.iter().zip(&targets) {
                    if libc::dup2(h, t) != t {
                        libc::_exit(126);
                    }
                }
                libc::syscall(libc::SYS_close_range, 0, 2, 0);
                libc::syscall(libc::SYS_close_range, fds::EXE + 1, u32::MAX, 0);
                let mut none: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut none);
                libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
                libc::syscall(libc::SYS_execveat, fds::EXE, empty.as_ptr(), argv.as_ptr(), argv.as_ptr(), libc::AT_EMPTY_PATH);
                libc::_exit(127);
            }
        }
        // SAFETY: pidfd_open on our own child; the result is checked.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
        if pidfd < 0 {
            let e = os_err("pidfd_open");
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            return Err(e);
        }
        // SAFETY: a new descriptor we own.
        Ok((pid, unsafe { OwnedFd::from_raw_fd(pidfd) }))
    }
}

impl Stub {
    fn shared(&self) -> &Shared {
        // SAFETY: the mapping lives as long as self; the stub writes to it concurrently,
        // which is why every field the monitor reads is an atomic or copied out once.
        unsafe { &*self.shared }
    }

    fn shared_mut(&mut self) -> &mut Shared {
        // SAFETY: as in `shared`; the stub does not read the fields the monitor writes
        // until `cmd_seq` changes.
        unsafe { &mut *self.shared }
    }

    /// True once the stub has failed; it must be replaced.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The stub's process id.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Makes host calls `ops` in the stub (`descs`: the LDT descriptors their
    /// `modify_ldt` calls point to, see [`desc_addr`]) and then, with `entry` and the FPU
    /// image `fx`, runs guest code until its next exit, which it returns with `fx` updated.
    /// `kicked` says whether the monitor's timer fired meanwhile: the stub then gets the
    /// preemption signal.
    pub fn run(
        &mut self,
        ops: &[Op],
        descs: &[UserDesc],
        entry: &Entry,
        fx: &mut [u8; 512],
        kicked: &dyn Fn() -> bool,
    ) -> Result<ExitRecord, StubFailure> {
        {
            let s = self.shared_mut();
            s.entry = *entry;
            s.fx.0[..shared::FX_BYTES].copy_from_slice(&fx[..shared::FX_BYTES]);
        }
        self.command(Command::Run, ops, descs, kicked)?;
        let s = self.shared();
        // One copy of what the stub wrote; the caller validates it.
        // SAFETY: reading plain integers the stub may be rewriting: any value is valid.
        let exit = unsafe { std::ptr::read_volatile(&s.exit) };
        fx[..shared::FX_BYTES].copy_from_slice(&s.fx.0[..shared::FX_BYTES]);
        Ok(exit)
    }

    /// Makes host calls `ops` in the stub without running guest code.
    pub fn apply(&mut self, ops: &[Op], descs: &[UserDesc]) -> Result<(), StubFailure> {
        self.command(Command::Apply, ops, descs, &|| false)
    }

    fn command(&mut self, cmd: Command, ops: &[Op], descs: &[UserDesc], kicked: &dyn Fn() -> bool) -> Result<(), StubFailure> {
        if self.failed {
            return Err(StubFailure::Died);
        }
        let r = self.try_command(cmd, ops, descs, kicked);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn try_command(&mut self, cmd: Command, ops: &[Op], descs: &[UserDesc], kicked: &dyn Fn() -> bool) -> Result<(), StubFailure> {
        let close = self.listener_in_stub.take().map(|fd| Op { nr: libc::SYS_close as u64, args: [fd as u64, 0, 0, 0, 0, 0], result: 0 });
        let all: Vec<Op> = close.into_iter().chain(ops.iter().copied()).collect();
        assert!(all.len() <= MAX_OPS && descs.len() <= MAX_DESCS, "too many host calls for one command");
        let seq = {
            let s = self.shared_mut();
            s.ops[..all.len()].copy_from_slice(&all);
            s.descs[..descs.len()].copy_from_slice(descs);
            s.n_ops = all.len() as u32;
            s.cmd = cmd as u32;
            let seq = s.cmd_seq.load(Ordering::Relaxed).wrapping_add(1);
            s.cmd_seq.store(seq, Ordering::SeqCst);
            seq
        };
        if self.shared().stub_waiting.load(Ordering::SeqCst) != 0 {
            self.futex_wake(off::CMD_SEQ);
        }
        for op in all.iter().filter(|o| o.nr == libc::SYS_mmap as u64) {
            self.approve(op)?;
        }
        // Guest code may run as long as the monitor's timer lets it; host calls alone must
        // be done promptly.
        let deadline = (cmd != Command::Run).then(|| Instant::now() + ANSWER_TIMEOUT);
        self.wait_done(seq, kicked, deadline)?;
        let s = self.shared();
        for (i, want) in all.iter().enumerate() {
            // SAFETY: plain integers; any value is valid.
            let got = unsafe { std::ptr::read_volatile(&s.ops[i]) };
            if got.nr != want.nr || got.args != want.args {
                return Err(StubFailure::Unexpected("its list of host calls changed".into()));
            }
            if got.result < 0 && got.result > -4096 {
                return Err(StubFailure::CallFailed(want.nr, got.result));
            }
        }
        Ok(())
    }

    fn futex_wake(&self, offset: usize) {
        // SAFETY: FUTEX_WAKE on a word of our shared mapping.
        unsafe { libc::syscall(libc::SYS_futex, (self.shared as *mut u8).add(offset), libc::FUTEX_WAKE, 1) };
    }

    /// True if the stub has ended.
    fn dead(&self) -> bool {
        let mut p = libc::pollfd { fd: self.pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: poll on one valid pollfd, no waiting.
        unsafe { libc::poll(&mut p, 1, 0) > 0 }
    }

    fn preempt(&self) {
        // SAFETY: pidfd_send_signal to our own child through its pidfd.
        unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, self.pidfd.as_raw_fd(), PREEMPT_SIGNAL, std::ptr::null::<libc::siginfo_t>(), 0)
        };
    }

    /// Waits until the stub reports command `seq` done: spins briefly, then sleeps on the
    /// futex; passes the monitor's timer on as the preemption signal; gives up when the
    /// stub dies, or does not answer by `deadline` or within [`ANSWER_TIMEOUT`] of the
    /// preemption signal.
    fn wait_done(&self, seq: u32, kicked: &dyn Fn() -> bool, deadline: Option<Instant>) -> Result<(), StubFailure> {
        let s = self.shared();
        let start = Instant::now();
        let mut deadline = deadline;
        let mut preempted = false;
        let mut check_kick = |deadline: &mut Option<Instant>| {
            if !preempted && kicked() {
                self.preempt();
                preempted = true;
                let answer_by = Instant::now() + ANSWER_TIMEOUT;
                *deadline = Some(deadline.map_or(answer_by, |d| d.min(answer_by)));
            }
        };
        while start.elapsed() < SPIN {
            for _ in 0..32 {
                if s.done_seq.load(Ordering::Acquire) == seq {
                    return Ok(());
                }
                std::hint::spin_loop();
            }
            // The stub may be waiting for this CPU: let it run.
            std::thread::yield_now();
        }
        loop {
            check_kick(&mut deadline);
            s.monitor_waiting.store(1, Ordering::SeqCst);
            let done = s.done_seq.load(Ordering::SeqCst);
            if done == seq {
                s.monitor_waiting.store(0, Ordering::SeqCst);
                return Ok(());
            }
            let ts = libc::timespec { tv_sec: 0, tv_nsec: 50_000_000 };
            // SAFETY: FUTEX_WAIT on a word of our shared mapping with a timeout; a
            // signal (the monitor's timer) ends it early with EINTR.
            let r = unsafe { libc::syscall(libc::SYS_futex, &s.done_seq as *const _ as *const u32, libc::FUTEX_WAIT, done, &ts) };
            s.monitor_waiting.store(0, Ordering::SeqCst);
            if s.done_seq.load(Ordering::SeqCst) == seq {
                return Ok(());
            }
            if r != 0 && errno() == libc::ETIMEDOUT && self.dead() {
                return Err(StubFailure::Died);
            }
            if deadline.is_some_and(|d| Instant::now() > d) {
                return Err(StubFailure::Unresponsive);
            }
        }
    }

    /// Waits for the stub's next `mmap` and lets it run if it is `want`.
    fn approve(&self, want: &Op) -> Result<(), StubFailure> {
        let Some(listener) = self.listener.as_ref().map(|l| l.as_raw_fd()) else {
            return Err(StubFailure::Died);
        };
        let start = Instant::now();
        let deadline = start + ANSWER_TIMEOUT;
        loop {
            // The stub makes its calls as soon as it sees the command: look (and yield
            // the CPU, which it may need) for a moment before sleeping in poll.
            let wait_ms = if start.elapsed() < SPIN { 0 } else { 100 };
            let mut p = libc::pollfd { fd: listener, events: libc::POLLIN, revents: 0 };
            // SAFETY: poll on one valid pollfd.
            let r = unsafe { libc::poll(&mut p, 1, wait_ms) };
            if r > 0 {
                break;
            }
            if wait_ms == 0 {
                std::thread::yield_now();
                continue;
            }
            if Instant::now() > deadline || self.dead() {
                return Err(if self.dead() { StubFailure::Died } else { StubFailure::Unresponsive });
            }
        }
        let mut n = Notif::default();
        // SAFETY: NOTIF_RECV writes one seccomp_notif into our buffer.
        if unsafe { libc::ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &mut n) } != 0 {
            return Err(StubFailure::Died);
        }
        let expected =
            n.arch == filter::AUDIT_ARCH_X86_64 && n.nr as i64 == libc::SYS_mmap && n.args == want.args && n.pid as i32 == self.pid;
        let resp = if expected {
            NotifResp { id: n.id, val: 0, error: 0, flags: SECCOMP_USER_NOTIF_FLAG_CONTINUE }
        } else {
            NotifResp { id: n.id, val: 0, error: -libc::EPERM, flags: 0 }
        };
        // SAFETY: NOTIF_SEND reads one seccomp_notif_resp from our buffer.
        if unsafe { libc::ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp) } != 0 && errno() != libc::ENOENT {
            return Err(StubFailure::Died);
        }
        if expected { Ok(()) } else { Err(StubFailure::Unexpected(format!("mmap{:x?}", n.args))) }
    }
}

/// The stub's address of `descs[i]` (for a `modify_ldt` op).
pub fn desc_addr(i: usize) -> u64 {
    STUB_SHARED + (std::mem::offset_of!(Shared, descs) + i * std::mem::size_of::<UserDesc>()) as u64
}

impl Drop for Stub {
    fn drop(&mut self) {
        if self.pid > 0 {
            // SAFETY: killing and reaping our own child (its pid cannot have been reused:
            // it is unreaped until here).
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
        // SAFETY: unmapping exactly our mapping of the shared pages.
        unsafe { libc::munmap(self.shared as *mut libc::c_void, SHARED_SIZE) };
    }
}
