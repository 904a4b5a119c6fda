//! The seccomp filter that makes guest system calls exits, for direct execution inside
//! bt86's own process (`BT86_SANDBOX=off`; the sandbox's stubs have a filter of their own,
//! `direct::stub::filter`).
//!
//! Directly executed guest code then runs in compatibility mode inside this process, so its
//! `int 0x80` (and, on Intel, `sysenter`) would be a real 32-bit Linux system call of
//! bt86's own. The filter installed here answers every system call made through the
//! 32-bit ABI (`AUDIT_ARCH_I386`) with `SECCOMP_RET_TRAP`: the kernel does not run it but
//! raises SIGSYS, whose handler turns it into the guest's own interrupt 0x80 or SYSENTER
//! entry. bt86 itself is a 64-bit program and never makes a 32-bit system call, so every
//! call of its own passes (the whole test suite runs under the filter).
//!
//! It also bounds what guest code could do if it ever ran as bt86 itself (user code can
//! far-jump to the host's 64-bit code selector, which no host mechanism forbids): of the
//! 64-bit system calls only those bt86 makes once the machine is built are allowed —
//! memory mappings, signals, the timer, writing its output, the LDT — and every other
//! (opening files, executing programs, sockets, processes) fails with EPERM.
//!
//! The filter is irrevocable and covers every thread of the process (TSYNC); it needs
//! `no_new_privs`, which bt86 sets first. Every test runs bt86 under it.

use std::io;

// The BPF vocabulary is the sandbox's (`direct::stub::filter`): one copy of it.
use crate::direct::stub::filter::{
    AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, BPF_JEQ_K, BPF_LD_W_ABS, BPF_RET_K, DATA_ARCH as SECCOMP_DATA_ARCH, DATA_NR as SECCOMP_DATA_NR,
    RET_ALLOW as SECCOMP_RET_ALLOW, RET_KILL_PROCESS as SECCOMP_RET_KILL_PROCESS, RET_TRAP as SECCOMP_RET_TRAP,
};
use crate::direct::stub::shared::SockFilter;

/// `struct sock_fprog`.
#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
const SECCOMP_FILTER_FLAG_TSYNC: libc::c_ulong = 1;

/// The 64-bit system calls bt86 makes after the filter is installed (and the C library's
/// and Rust runtime's own: futex, rseq, tgkill for abort, ...).
const ALLOWED: &[libc::c_long] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_close,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_lseek,
    libc::SYS_ioctl,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_mmap,
    libc::SYS_mprotect,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_brk,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_restart_syscall,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_nanosleep,
    libc::SYS_clock_nanosleep,
    libc::SYS_clock_gettime,
    libc::SYS_gettimeofday,
    libc::SYS_timer_settime,
    libc::SYS_timer_gettime,
    libc::SYS_timer_delete,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_tgkill,
    libc::SYS_getrandom,
    libc::SYS_rseq,
    libc::SYS_sched_getaffinity,
    libc::SYS_prlimit64,
    libc::SYS_modify_ldt,
    libc::SYS_arch_prctl,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// The program: 32-bit ABI → trap (the guest's system call); another non-x86-64 ABI →
/// kill; an allowed 64-bit call → allow; anything else → EPERM.
fn program() -> Vec<SockFilter> {
    let stmt = |code, k| SockFilter { code, jt: 0, jf: 0, k };
    let n = ALLOWED.len() as u8;
    let mut p = vec![
        stmt(BPF_LD_W_ABS, SECCOMP_DATA_ARCH),
        SockFilter { code: BPF_JEQ_K, jt: 0, jf: 1, k: AUDIT_ARCH_I386 },
        stmt(BPF_RET_K, SECCOMP_RET_TRAP),
        SockFilter { code: BPF_JEQ_K, jt: 1, jf: 0, k: AUDIT_ARCH_X86_64 },
        stmt(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, SECCOMP_DATA_NR),
    ];
    // Each allowed number jumps forward to the ALLOW at the end; no match falls through
    // to EPERM (x32 calls, with bit 30 set, match nothing).
    for (i, &nr) in ALLOWED.iter().enumerate() {
        p.push(SockFilter { code: BPF_JEQ_K, jt: n - i as u8, jf: 0, k: nr as u32 });
    }
    p.push(stmt(BPF_RET_K, SECCOMP_RET_ERRNO | libc::EPERM as u32));
    p.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    p
}

/// Installs the filter on every thread of the process. Call it once, after the last
/// system call outside [`ALLOWED`] (files opened, threads made).
pub fn install() -> io::Result<()> {
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1) only restricts this process.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let program = program();
    let prog = SockFprog { len: program.len() as u16, filter: program.as_ptr() };
    // SAFETY: seccomp(SET_MODE_FILTER) reads the program through a valid pointer for the
    // duration of the call; the filter only restricts this process.
    let r = unsafe { libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog as *const SockFprog) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a child process: with the filter, an allowed call works, opening a file fails
    /// with EPERM.
    #[test]
    fn allows_bt86_calls_and_refuses_the_rest() {
        // SAFETY: the child makes only async-signal-safe calls (no allocation: the
        // program is built before the fork) and leaves with _exit.
        let program = program();
        assert!(program.len() < 255, "jump offsets fit in a u8");
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let status = unsafe {
                let prog = SockFprog { len: program.len() as u16, filter: program.as_ptr() };
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                    || libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0 as libc::c_ulong, &prog as *const SockFprog) != 0
                {
                    10
                } else if libc::getpid() <= 0 {
                    11
                } else if libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) != -1 || *libc::__errno_location() != libc::EPERM {
                    12
                } else {
                    0
                }
            };
            unsafe { libc::_exit(status) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "the child was killed: {status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), 0, "10: no filter, 11: getpid refused, 12: open allowed");
    }
}
