//! The sandbox: guest user code runs natively in a stub process of its own.
//!
//! A stub ([`Stub`]) is a host process whose address space holds only the guest user
//! window (the same guest frames at the same addresses as the monitor's user window, with
//! the same permissions: `bt86_shadow_mmu`'s mirror), its own read-only code ([`code`]),
//! its stacks, and the pages it shares with the monitor ([`shared`]). It runs in a session
//! of its own, without standard input, output or a terminal, and dies with the monitor
//! (`PR_SET_PDEATHSIG`). It has two threads ([`code`]): the guest thread runs guest code,
//! holds no file descriptor and may make no host call but those of its handoff
//! ([`filter`]); the mapper thread holds the two views of guest RAM and makes the
//! mappings the monitor writes into a read-only command area, reading nothing else.
//! Guest code that escapes to 64-bit mode therefore cannot map a page the guest did not
//! give user code, reach a file, or call the host.
//!
//! The anchors are gVisor's systrap platform (application code in stub processes,
//! seccomp traps, state through shared memory with a futex handoff) and User-Mode
//! Linux's separate address spaces; unlike UML's seccomp stub, whose permitted calls
//! escaped code can reach with registers of its choosing, the calls that map memory are
//! made by a thread escaped code cannot steer.
//!
//! What a stub writes is untrusted: [`Stub::run`] returns the raw exit, which the caller
//! validates. A stub that dies or does not answer within [`ANSWER_TIMEOUT`] of being asked
//! (or of the preemption signal) is *failed* ([`StubFailure`]); the caller kills it and
//! starts a new one.

pub mod code;
pub mod filter;
pub mod shared;

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub use shared::desc_addr;
use shared::{
    COMMANDS_OFFSET, COMMANDS_SIZE, Command, Commands, Entry, ExitRecord, MAX_DESCS, MAX_OPS, Op, REPORTS_SIZE, Reports, UserDesc, fds,
};

/// How long a stub may take to answer a command or the preemption signal. On a loaded
/// host a stub may simply not have run: the time counts only while the stub uses at least
/// half of it on a CPU, up to [`STARVED_TIMEOUT`] (see [`Stub::wait_done`]).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a stub that does not answer but hardly runs is given (escaped code that
/// sleeps with every signal blocked, or a host too loaded to run it).
const STARVED_TIMEOUT: Duration = Duration::from_secs(4);
/// How long the monitor spins for an answer before it sleeps.
const SPIN: Duration = Duration::from_micros(30);
/// The signal that ends a native slice in the stub.
pub const PREEMPT_SIGNAL: libc::c_int = libc::SIGALRM;
/// Bytes of the shared memfd.
const SHARED_SIZE: usize = REPORTS_SIZE + COMMANDS_SIZE;

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
    /// One of the host calls the monitor asked for failed (`-errno`).
    CallFailed(u64, i64),
}

impl std::fmt::Display for StubFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StubFailure::Died => write!(f, "the stub process died"),
            StubFailure::Unresponsive => write!(f, "the stub process stopped answering"),
            StubFailure::CallFailed(nr, e) => {
                write!(f, "host call {nr} in the stub failed: {}", std::io::Error::from_raw_os_error(-*e as i32))
            }
        }
    }
}

/// What [`Stub::run`] saw.
#[derive(Clone, Copy, Debug)]
pub struct RunOutcome {
    /// The exit as the stub wrote it (untrusted).
    pub exit: ExitRecord,
    /// A host call the monitor asked for failed (`(nr, -errno)`): the stub lacks a mapping
    /// the monitor believes it has, and must be brought back in step.
    pub failed_call: Option<(u64, i64)>,
}

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
    /// The monitor's mapping of the shared memfd: [`Reports`] then [`Commands`].
    shared: *mut u8,
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
        let shared = p as *mut u8;
        {
            // SAFETY: the mapping holds both areas, page aligned and zero-filled (valid
            // values of their integer and atomic fields), and nothing else uses it before
            // the stub runs.
            let c = unsafe { &mut *(shared.add(COMMANDS_OFFSET) as *mut Commands) };
            c.seq.store(1, Ordering::SeqCst);
            c.setup_flags = self.cpuid_faulting as u32;
            let (guest_addr, mapper_addr) = shared::filter_addrs();
            let (guest, mapper) = (filter::guest_program(), filter::mapper_program());
            c.guest_filter[..guest.len()].copy_from_slice(&guest);
            c.mapper_filter[..mapper.len()].copy_from_slice(&mapper);
            c.guest_fprog = shared::Fprog { len: guest.len() as u64, filter: guest_addr };
            c.mapper_fprog = shared::Fprog { len: mapper.len() as u64, filter: mapper_addr };
        }
        let started = self.fork_exec(shared_fd.as_raw_fd(), exe.as_raw_fd());
        let (pid, pidfd) = match started {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: unmapping the mapping made above, which nothing else uses.
                unsafe { libc::munmap(p, SHARED_SIZE) };
                return Err(e);
            }
        };
        let mut stub = Stub { pid, pidfd, shared, failed: true };
        stub.wait_done(1, &|| false, Some(Instant::now() + 5 * ANSWER_TIMEOUT))
            .map_err(|f| SpawnError(format!("the stub did not start ({f})")))?;
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
    fn commands(&mut self) -> &mut Commands {
        // SAFETY: the mapping lives as long as self; the stub only reads this area (it
        // maps it read-only), and the monitor writes it only between commands.
        unsafe { &mut *(self.shared.add(COMMANDS_OFFSET) as *mut Commands) }
    }

    fn reports(&self) -> &Reports {
        // SAFETY: the mapping lives as long as self; the stub writes this area at any
        // time, which is why every field the monitor reads is an atomic or copied out
        // once with a volatile read.
        unsafe { &*(self.shared as *const Reports) }
    }

    /// True once the stub has failed; it must be replaced.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The stub's process id.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Has the mapper make host calls `ops` (`descs`: the LDT descriptors their
    /// `modify_ldt` calls point to, see [`desc_addr`]) and then runs guest code with
    /// `entry` and the FPU image `fx` until its next exit, which it returns with `fx`
    /// updated. `kicked` says whether the monitor's timer fired meanwhile: the stub then
    /// gets the preemption signal.
    pub fn run(
        &mut self,
        ops: &[Op],
        descs: &[UserDesc],
        entry: &Entry,
        fx: &mut [u8; 512],
        kicked: &dyn Fn() -> bool,
    ) -> Result<RunOutcome, StubFailure> {
        {
            let c = self.commands();
            c.entry = *entry;
            c.fx.0[..shared::FX_BYTES].copy_from_slice(&fx[..shared::FX_BYTES]);
        }
        let failed_call = self.command(Command::Run, ops, descs, kicked)?;
        let r = self.reports();
        // One copy of what the stub wrote; the caller validates it.
        // SAFETY: reading plain integers the stub may be rewriting: any value is valid.
        let exit = unsafe { std::ptr::read_volatile(&r.exit) };
        // SAFETY: as above, bytes.
        let out = unsafe { std::ptr::read_volatile(&r.fx) };
        fx[..shared::FX_BYTES].copy_from_slice(&out.0[..shared::FX_BYTES]);
        Ok(RunOutcome { exit, failed_call })
    }

    /// Has the mapper make host calls `ops` without running guest code.
    pub fn apply(&mut self, ops: &[Op], descs: &[UserDesc]) -> Result<(), StubFailure> {
        match self.command(Command::Apply, ops, descs, &|| false)? {
            None => Ok(()),
            Some((nr, e)) => {
                self.failed = true;
                Err(StubFailure::CallFailed(nr, e))
            }
        }
    }

    fn command(
        &mut self,
        cmd: Command,
        ops: &[Op],
        descs: &[UserDesc],
        kicked: &dyn Fn() -> bool,
    ) -> Result<Option<(u64, i64)>, StubFailure> {
        if self.failed {
            return Err(StubFailure::Died);
        }
        let r = self.try_command(cmd, ops, descs, kicked);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn try_command(
        &mut self,
        cmd: Command,
        ops: &[Op],
        descs: &[UserDesc],
        kicked: &dyn Fn() -> bool,
    ) -> Result<Option<(u64, i64)>, StubFailure> {
        assert!(ops.len() <= MAX_OPS && descs.len() <= MAX_DESCS, "too many host calls for one command");
        let seq = {
            let c = self.commands();
            c.ops[..ops.len()].copy_from_slice(ops);
            c.descs[..descs.len()].copy_from_slice(descs);
            c.n_ops = ops.len() as u32;
            c.cmd = cmd as u32;
            if !ops.is_empty() {
                // The mapper is idle: the last command's calls were made before it ended.
                c.ops_seq.fetch_add(1, Ordering::SeqCst);
            }
            let seq = c.seq.load(Ordering::Relaxed).wrapping_add(1);
            c.seq.store(seq, Ordering::SeqCst);
            seq
        };
        if self.reports().guest_waiting.load(Ordering::SeqCst) != 0 {
            // SAFETY: FUTEX_WAKE on a word of our shared mapping.
            unsafe { libc::syscall(libc::SYS_futex, self.shared.add(COMMANDS_OFFSET + shared::off::C_SEQ), libc::FUTEX_WAKE, 1) };
        }
        // Guest code may run as long as the monitor's timer lets it; host calls alone must
        // be done promptly.
        let deadline = (cmd != Command::Run).then(|| Instant::now() + ANSWER_TIMEOUT);
        self.wait_done(seq, kicked, deadline)?;
        let r = self.reports();
        for (i, op) in ops.iter().enumerate() {
            // SAFETY: a plain integer the stub may be rewriting: any value is valid.
            let result = unsafe { std::ptr::read_volatile(&r.results[i]) };
            if (-4095..0).contains(&result) {
                return Ok(Some((op.nr, result)));
            }
        }
        Ok(None)
    }

    /// True if the stub has ended.
    fn dead(&self) -> bool {
        let mut p = libc::pollfd { fd: self.pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: poll on one valid pollfd, no waiting.
        unsafe { libc::poll(&mut p, 1, 0) > 0 }
    }

    /// The CPU time the stub's threads have used (None: the host cannot tell).
    fn cpu_time(&self) -> Option<Duration> {
        let mut clock: libc::clockid_t = 0;
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: the CPU clock of our own child, read into a local timespec.
        let ok = unsafe { libc::clock_getcpuclockid(self.pid, &mut clock) == 0 && libc::clock_gettime(clock, &mut ts) == 0 };
        ok.then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
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
    /// preemption signal — unless the stub has used less than half of that time on a
    /// CPU since it was asked (a loaded host did not run it), then the deadline moves on,
    /// up to [`STARVED_TIMEOUT`] after the ask.
    fn wait_done(&self, seq: u32, kicked: &dyn Fn() -> bool, deadline: Option<Instant>) -> Result<(), StubFailure> {
        let r = self.reports();
        let start = Instant::now();
        let mut deadline = deadline;
        // When the stub was asked (the command, or the preemption signal), and its CPU
        // time then.
        let mut asked = deadline.map(|_| (start, self.cpu_time()));
        let mut preempted = false;
        let mut check_kick = |deadline: &mut Option<Instant>, asked: &mut Option<(Instant, Option<Duration>)>| {
            if !preempted && kicked() {
                self.preempt();
                preempted = true;
                let now = Instant::now();
                let answer_by = now + ANSWER_TIMEOUT;
                if deadline.is_none_or(|d| answer_by < d) {
                    *deadline = Some(answer_by);
                    *asked = Some((now, self.cpu_time()));
                }
            }
        };
        while start.elapsed() < SPIN {
            for _ in 0..32 {
                if r.done_seq.load(Ordering::Acquire) == seq {
                    return Ok(());
                }
                std::hint::spin_loop();
            }
            // The stub may be waiting for this CPU: let it run.
            std::thread::yield_now();
        }
        loop {
            check_kick(&mut deadline, &mut asked);
            r.monitor_waiting.store(1, Ordering::SeqCst);
            let done = r.done_seq.load(Ordering::SeqCst);
            if done == seq {
                r.monitor_waiting.store(0, Ordering::SeqCst);
                return Ok(());
            }
            let ts = libc::timespec { tv_sec: 0, tv_nsec: 50_000_000 };
            // SAFETY: FUTEX_WAIT on a word of our shared mapping with a timeout; a
            // signal (the monitor's timer) ends it early with EINTR.
            let rc = unsafe { libc::syscall(libc::SYS_futex, &r.done_seq as *const _ as *const u32, libc::FUTEX_WAIT, done, &ts) };
            r.monitor_waiting.store(0, Ordering::SeqCst);
            if r.done_seq.load(Ordering::SeqCst) == seq {
                return Ok(());
            }
            if rc != 0 && errno() == libc::ETIMEDOUT && self.dead() {
                return Err(StubFailure::Died);
            }
            if let Some(d) = deadline
                && Instant::now() > d
            {
                if self.dead() {
                    return Err(StubFailure::Died);
                }
                let starved = asked.is_some_and(|(when, cpu)| {
                    let used = cpu.zip(self.cpu_time()).map(|(a, b)| b.saturating_sub(a));
                    used.is_some_and(|u| u < ANSWER_TIMEOUT / 2) && when.elapsed() < STARVED_TIMEOUT
                });
                if !starved {
                    return Err(StubFailure::Unresponsive);
                }
                deadline = Some(Instant::now() + ANSWER_TIMEOUT / 4);
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direct::host_ldt::{FLAG_32BIT, FLAG_CONTENTS_SHIFT, FLAG_LIMIT_IN_PAGES, host_selector};

    const CODE_AT: u64 = 0x10_0000;

    /// A stub over one page of "guest RAM" holding `code`, mapped at [`CODE_AT`], with a
    /// flat 32-bit code segment in LDT slot 1 and data in slot 2; runs it.
    fn run_code(code: &[u8], kicked: &dyn Fn() -> bool) -> Result<ExitRecord, StubFailure> {
        run_code_with(code, kicked).map(|o| o.exit)
    }

    fn run_code_with(code: &[u8], kicked: &dyn Fn() -> bool) -> Result<RunOutcome, StubFailure> {
        let ram = memfd("bt86-test-ram", 4096).unwrap();
        // SAFETY: pwrite of our buffer into our memfd.
        assert_eq!(unsafe { libc::pwrite(ram.as_raw_fd(), code.as_ptr() as *const libc::c_void, code.len(), 0) }, code.len() as isize);
        let factory = StubFactory::new(ram.as_raw_fd(), false).unwrap();
        let mut stub = factory.spawn().unwrap();
        let flat = |slot: u32, contents: u32| UserDesc {
            entry_number: slot,
            base_addr: 0,
            limit: 0xF_FFFF,
            flags: FLAG_32BIT | contents << FLAG_CONTENTS_SHIFT | FLAG_LIMIT_IN_PAGES,
        };
        let descs = [flat(1, 2), flat(2, 0)];
        let op = |nr: libc::c_long, args: [u64; 6]| Op { nr: nr as u64, args };
        let prot = (libc::PROT_READ | libc::PROT_EXEC) as u64;
        let ops = [
            op(libc::SYS_mmap, [CODE_AT, 4096, prot, (libc::MAP_SHARED | libc::MAP_FIXED) as u64, fds::RAM_RO as u64, 0]),
            op(libc::SYS_modify_ldt, [0x11, desc_addr(0), 16, 0, 0, 0]),
            op(libc::SYS_modify_ldt, [0x11, desc_addr(1), 16, 0, 0, 0]),
        ];
        let (cs, ds) = (host_selector(1) as u32, host_selector(2) as u32);
        let entry = Entry { gpr: [0; 8], eip: CODE_AT as u32, eflags: 0x202, sel: [ds, cs, ds, ds, 0, 0] };
        let mut fx = [0u8; 512];
        fx[0..2].copy_from_slice(&0x037Fu16.to_le_bytes());
        fx[24..28].copy_from_slice(&0x1F80u32.to_le_bytes());
        stub.run(&ops, &descs, &entry, &mut fx, kicked)
    }

    #[test]
    fn guest_code_runs_in_a_stub_and_its_system_call_is_an_exit() {
        // mov eax, 42; int 0x80
        let exit = run_code(&[0xB8, 42, 0, 0, 0, 0xCD, 0x80], &|| false).unwrap();
        assert_eq!(exit.signo, libc::SIGSYS as u32);
        assert_eq!(exit.gpr[0], 42);
        assert_eq!(exit.eip, CODE_AT as u32 + 7);
        assert_eq!(exit.sel[1], host_selector(1) as u32);
    }

    #[test]
    fn escaped_code_that_calls_the_host_kills_its_stub() {
        // ljmp $0x33, $CODE_AT+7; then 64-bit: mov eax, 39 (getpid); syscall
        let mut code = vec![0xEA];
        code.extend_from_slice(&(CODE_AT as u32 + 7).to_le_bytes());
        code.extend_from_slice(&0x33u16.to_le_bytes());
        code.extend_from_slice(&[0xB8, 39, 0, 0, 0, 0x0F, 0x05]);
        assert_eq!(run_code(&code, &|| false).unwrap_err(), StubFailure::Died);
    }

    #[test]
    fn a_host_call_that_fails_is_reported_and_fails_the_stub() {
        let ram = memfd("bt86-test-ram", 4096).unwrap();
        let factory = StubFactory::new(ram.as_raw_fd(), false).unwrap();
        let mut stub = factory.spawn().unwrap();
        // An unaligned address: EINVAL. The monitor must learn it and replace the stub,
        // which now lacks a mapping the monitor believes it made.
        let bad = Op {
            nr: libc::SYS_mmap as u64,
            args: [0x10_0001, 4096, 1, (libc::MAP_SHARED | libc::MAP_FIXED) as u64, fds::RAM_RO as u64, 0],
        };
        assert_eq!(stub.apply(&[bad], &[]), Err(StubFailure::CallFailed(libc::SYS_mmap as u64, -(libc::EINVAL as i64))));
        assert!(stub.failed());
        assert_eq!(stub.apply(&[], &[]), Err(StubFailure::Died), "a failed stub takes no more commands");
    }

    #[test]
    fn an_endless_loop_ends_at_the_preemption_signal() {
        // jmp $ (32-bit): the stub answers the monitor's timer with an exit.
        let exit = run_code(&[0xEB, 0xFE], &|| true).unwrap();
        assert_eq!(exit.signo, PREEMPT_SIGNAL as u32);
        assert_eq!(exit.eip, CODE_AT as u32);
    }

    /// Escaped code that blocks every signal (`rt_sigreturn` with a frame of its own: the
    /// filter allows it, and the frame may lie on its read-only code page) and then spins
    /// (`sleeps`: false) or waits on a futex for ever (true). Returns how the stub ended and
    /// how long the monitor waited for it after its timer fired.
    fn escape_with_signals_blocked(sleeps: bool) -> (Result<ExitRecord, StubFailure>, Duration) {
        const KICK_AFTER: Duration = Duration::from_secs(1);
        const FRAME: usize = 0x400;
        const SPIN: usize = 0x100;
        const SLEEP: usize = 0x120;
        const ZERO: usize = 0x800;
        let at = |off: usize| (CODE_AT as u32 + off as u32).to_le_bytes();
        let mut code = vec![0u8; 4096];
        // ljmp $0x33, $CODE_AT+7
        code[..7].copy_from_slice(&[0xEA, 0, 0, 0, 0, 0x33, 0]);
        code[1..5].copy_from_slice(&at(7));
        // 64-bit: mov esp, FRAME; mov eax, 15 (rt_sigreturn); syscall
        let sigreturn = [&[0xBC][..], &at(FRAME), &[0xB8, 15, 0, 0, 0, 0x0F, 0x05]].concat();
        code[7..7 + sigreturn.len()].copy_from_slice(&sigreturn);
        code[SPIN..SPIN + 2].copy_from_slice(&[0xEB, 0xFE]);
        // mov edi, ZERO; xor esi, esi (FUTEX_WAIT); xor edx, edx; xor r10d, r10d;
        // mov eax, 202 (futex); syscall; jmp back
        let wait =
            [&[0xBF][..], &at(ZERO), &[0x31, 0xF6, 0x31, 0xD2, 0x45, 0x31, 0xD2, 0xB8, 202, 0, 0, 0, 0x0F, 0x05, 0xEB, 0xEB]].concat();
        code[SLEEP..SLEEP + wait.len()].copy_from_slice(&wait);
        // The frame (a struct ucontext): RSP, RIP, EFLAGS, CS in uc_mcontext, every
        // signal in uc_sigmask.
        let mut put = |off: usize, v: u64| code[FRAME + off..FRAME + off + 8].copy_from_slice(&v.to_le_bytes());
        put(160, CODE_AT + 0xF00);
        put(168, CODE_AT + if sleeps { SLEEP } else { SPIN } as u64);
        put(176, 0x202);
        put(184, 0x33);
        put(296, u64::MAX);
        // The monitor's timer fires once the code has had time to block the signal that
        // passes it on (before that, the signal would just end the slice).
        let start = Instant::now();
        let r = run_code(&code, &|| start.elapsed() > KICK_AFTER);
        (r, start.elapsed() - KICK_AFTER)
    }

    #[test]
    fn escaped_code_that_blocks_signals_and_spins_is_given_up_after_a_second_of_cpu() {
        let (r, waited) = escape_with_signals_blocked(false);
        assert_eq!(r.unwrap_err(), StubFailure::Unresponsive);
        assert!(waited >= ANSWER_TIMEOUT && waited < STARVED_TIMEOUT, "{waited:?}");
    }

    #[test]
    fn escaped_code_that_blocks_signals_and_sleeps_is_given_up_at_the_starved_bound() {
        // It uses no CPU, as a stub the host has not run would not: the monitor waits the
        // longer bound, and not longer.
        let (r, waited) = escape_with_signals_blocked(true);
        assert_eq!(r.unwrap_err(), StubFailure::Unresponsive);
        assert!(waited >= STARVED_TIMEOUT && waited < STARVED_TIMEOUT + ANSWER_TIMEOUT, "{waited:?}");
    }

    #[test]
    fn a_stub_holds_only_its_own_pages_and_its_mapper_the_two_views_of_guest_ram() {
        let ram = memfd("bt86-test-ram", 4096).unwrap();
        let factory = StubFactory::new(ram.as_raw_fd(), false).unwrap();
        let mut stub = factory.spawn().unwrap();
        stub.apply(&[], &[]).unwrap();
        let fds_of = |dir: String| -> Vec<i32> {
            let mut v: Vec<i32> =
                std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap().parse().unwrap()).collect();
            v.sort_unstable();
            v
        };
        // The guest thread (the thread group's leader) has no descriptor at all; the
        // mapper thread, with a file table of its own, the two views of guest RAM.
        let pid = stub.pid();
        assert_eq!(fds_of(format!("/proc/{pid}/task/{pid}/fd")), Vec::<i32>::new(), "the guest thread's descriptors");
        let tasks: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap().parse().unwrap())
            .collect();
        assert_eq!(tasks.len(), 2, "two threads");
        let mapper = tasks.iter().find(|&&t| t != pid).unwrap();
        assert_eq!(fds_of(format!("/proc/{pid}/task/{mapper}/fd")), [fds::RAM_RW, fds::RAM_RO], "the mapper thread's descriptors");
        let maps = std::fs::read_to_string(format!("/proc/{}/maps", stub.pid())).unwrap();
        for line in maps.lines() {
            let mut f = line.split_whitespace();
            let range = f.next().unwrap();
            let perms = f.next().unwrap();
            let start = u64::from_str_radix(range.split('-').next().unwrap(), 16).unwrap();
            let name = line.split_whitespace().nth(5).unwrap_or("");
            let known = start == shared::STUB_CODE && perms == "r-xp"
                || start == shared::STUB_STACK && perms == "rw-p"
                || start == shared::STUB_REPORTS && perms == "rw-s"
                || start == shared::STUB_COMMANDS && perms == "r--s"
                || ["[stack]", "[vvar]", "[vvar_vclock]", "[vdso]", "[vsyscall]"].contains(&name);
            assert!(known, "unexpected mapping in the stub: {line}\n{maps}");
        }
    }
}
/// A measurement, not a check (`cargo test --release -p bt86 --lib round_trips -- --ignored
/// --nocapture`): the time of a command without and with one `mmap` by the mapper.
#[cfg(test)]
mod timing {
    use super::*;

    /// A stub over 1 MiB of guest RAM (the RAM's descriptor must outlive it).
    fn stub() -> (OwnedFd, Stub) {
        let ram = memfd("bt86-test-ram", 1 << 20).unwrap();
        let stub = StubFactory::new(ram.as_raw_fd(), false).unwrap().spawn().unwrap();
        (ram, stub)
    }

    #[test]
    #[ignore = "a measurement"]
    fn round_trips() {
        let (_ram, mut stub) = stub();
        let mut t_empty = Vec::new();
        let mut t_map = Vec::new();
        for i in 0..200u64 {
            let t = Instant::now();
            stub.apply(&[], &[]).unwrap();
            t_empty.push(t.elapsed().as_nanos());
            let op = Op {
                nr: libc::SYS_mmap as u64,
                args: [
                    0x100000 + (i % 64) * 4096,
                    4096,
                    1,
                    (libc::MAP_SHARED | libc::MAP_FIXED | libc::MAP_POPULATE) as u64,
                    fds::RAM_RO as u64,
                    (i % 64) * 4096,
                ],
            };
            let t = Instant::now();
            stub.apply(&[op], &[]).unwrap();
            t_map.push(t.elapsed().as_nanos());
            std::thread::sleep(Duration::from_micros(20));
        }
        t_empty.sort();
        t_map.sort();
        eprintln!("empty: median {} p10 {} p90 {}", t_empty[100], t_empty[20], t_empty[180]);
        eprintln!("mmap:  median {} p10 {} p90 {}", t_map[100], t_map[20], t_map[180]);
    }

    /// What stopping an idle stub costs (`SIGSTOP`, a wait until it has stopped, and
    /// `SIGCONT`): what a stub that cannot run while its address space is not in use
    /// would add to every context switch (see the README's "Known gap").
    #[test]
    #[ignore = "a measurement"]
    fn stop_and_continue() {
        let (_ram, mut stub) = stub();
        stub.apply(&[], &[]).unwrap();
        let mut times = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            // SAFETY: signals to our own child, and a wait for its stop (it stays unreaped).
            unsafe {
                libc::kill(stub.pid, libc::SIGSTOP);
                let mut info: libc::siginfo_t = std::mem::zeroed();
                libc::waitid(libc::P_PID, stub.pid as libc::id_t, &mut info, libc::WSTOPPED);
                libc::kill(stub.pid, libc::SIGCONT);
            }
            times.push(t.elapsed().as_nanos());
            stub.apply(&[], &[]).unwrap();
        }
        times.sort();
        eprintln!("stop, wait, continue (ns): median {} p10 {} p90 {}", times[100], times[20], times[180]);
    }
}
