//! The seccomp filter that makes guest system calls exits.
//!
//! Directly executed guest code runs in compatibility mode inside this process, so its
//! `int 0x80` (and, on Intel, `sysenter`) would be a real 32-bit Linux system call of
//! bt86's own. The filter installed here answers every system call made through the
//! 32-bit ABI (`AUDIT_ARCH_I386`) with `SECCOMP_RET_TRAP`: the kernel does not run it but
//! raises SIGSYS, whose handler turns it into the guest's own interrupt 0x80 or SYSENTER
//! entry. bt86 itself is a 64-bit program and never makes a 32-bit system call, so every
//! call of its own passes (the whole test suite runs under the filter).
//!
//! The filter is irrevocable and covers every thread of the process (TSYNC); it needs
//! `no_new_privs`, which bt86 sets first.

use std::io;

/// `struct sock_filter`.
#[repr(C)]
#[derive(Clone, Copy)]
struct SockFilter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

/// `struct sock_fprog`.
#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;
/// Offset of `arch` in `struct seccomp_data`.
const SECCOMP_DATA_ARCH: u32 = 4;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const SECCOMP_RET_TRAP: u32 = 0x0003_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
const SECCOMP_FILTER_FLAG_TSYNC: libc::c_ulong = 1;

/// The program: 32-bit ABI → trap, anything else → allow.
const PROGRAM: [SockFilter; 4] = [
    SockFilter { code: BPF_LD_W_ABS, jt: 0, jf: 0, k: SECCOMP_DATA_ARCH },
    SockFilter { code: BPF_JEQ_K, jt: 0, jf: 1, k: AUDIT_ARCH_I386 },
    SockFilter { code: BPF_RET_K, jt: 0, jf: 0, k: SECCOMP_RET_TRAP },
    SockFilter { code: BPF_RET_K, jt: 0, jf: 0, k: SECCOMP_RET_ALLOW },
];

/// Installs the filter on every thread of the process. Idempotent in effect (a second
/// copy traps the same calls), but callers install it once.
pub fn trap_32bit_syscalls() -> io::Result<()> {
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1) only restricts this process.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let prog = SockFprog { len: PROGRAM.len() as u16, filter: PROGRAM.as_ptr() };
    // SAFETY: seccomp(SET_MODE_FILTER) reads the program through a valid pointer for the
    // duration of the call; the filter only adds SIGSYS for 32-bit system calls.
    let r = unsafe { libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog as *const SockFprog) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
