//! The stub's seccomp filters: what each of its two threads may ask of the host kernel.
//!
//! * The **guest thread** (guest code runs in it): every 32-bit system call (the guest's
//!   `int 0x80`) is `SECCOMP_RET_TRAP`: the kernel does not run it but raises SIGSYS, which
//!   the stub reports as an exit. Of the 64-bit calls only `rt_sigreturn` (entering guest
//!   code), `futex` (waits and wakes on the shared pages), `sched_yield` and `exit` are
//!   allowed: nothing that reaches beyond the stub, nothing that maps, unmaps or protects
//!   memory. It holds no file descriptors.
//! * The **mapper thread** makes the host calls the monitor writes into the read-only
//!   commands area: `mmap`, `munmap` and `modify_ldt`, and `futex`, `sched_yield` and
//!   `exit` for itself.
//! * Anything else — other numbers, x32 calls, other architectures, other futex
//!   operations — kills the stub at once.
//!
//! Filters are per thread (installed without `SECCOMP_FILTER_FLAG_TSYNC`), so escaped code
//! in the guest thread has only the guest thread's.

use super::shared::{MAX_FILTER, SockFilter};

/// `BPF_LD | BPF_W | BPF_ABS`.
pub const BPF_LD_W_ABS: u16 = 0x20;
/// `BPF_JMP | BPF_JEQ | BPF_K`.
pub const BPF_JEQ_K: u16 = 0x15;
const BPF_JGE_K: u16 = 0x35;
/// `BPF_RET | BPF_K`.
pub const BPF_RET_K: u16 = 0x06;

/// `seccomp_data.nr` (offsets in `struct seccomp_data`).
pub const DATA_NR: u32 = 0;
/// `seccomp_data.arch`.
pub const DATA_ARCH: u32 = 4;
const fn data_arg_low(i: u32) -> u32 {
    16 + 8 * i
}

/// `AUDIT_ARCH_*`.
pub const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
/// `AUDIT_ARCH_I386`.
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `SECCOMP_RET_*` actions.
pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
/// Raise SIGSYS.
pub const RET_TRAP: u32 = 0x0003_0000;
/// Run the call.
pub const RET_ALLOW: u32 = 0x7fff_0000;

const FUTEX_WAIT: u32 = 0;
const FUTEX_WAKE: u32 = 1;

/// The guest thread's 64-bit calls.
const GUEST_ALLOWED: [libc::c_long; 4] = [libc::SYS_rt_sigreturn, libc::SYS_sched_yield, libc::SYS_exit, libc::SYS_exit_group];
/// The mapper thread's 64-bit calls.
const MAPPER_ALLOWED: [libc::c_long; 6] =
    [libc::SYS_mmap, libc::SYS_munmap, libc::SYS_modify_ldt, libc::SYS_sched_yield, libc::SYS_exit, libc::SYS_exit_group];

fn ins(code: u16, jt: u8, jf: u8, k: u32) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// A filter: 32-bit calls get `i386` (TRAP for the guest thread, KILL for the mapper),
/// 64-bit ones in `allowed` and `futex` waits and wakes are allowed, the rest kill.
fn program(i386: u32, allowed: &[libc::c_long]) -> Vec<SockFilter> {
    let mut p = vec![
        ins(BPF_LD_W_ABS, 0, 0, DATA_ARCH),
        ins(BPF_JEQ_K, 3, 0, AUDIT_ARCH_X86_64),
        ins(BPF_JEQ_K, 0, 1, AUDIT_ARCH_I386),
        ins(BPF_RET_K, 0, 0, i386),
        ins(BPF_RET_K, 0, 0, RET_KILL_PROCESS),
        ins(BPF_LD_W_ABS, 0, 0, DATA_NR),
        ins(BPF_JGE_K, 0, 1, X32_SYSCALL_BIT),
        ins(BPF_RET_K, 0, 0, RET_KILL_PROCESS),
    ];
    for &nr in allowed {
        p.push(ins(BPF_JEQ_K, 0, 1, nr as u32));
        p.push(ins(BPF_RET_K, 0, 0, RET_ALLOW));
    }
    p.extend([
        ins(BPF_JEQ_K, 0, 5, libc::SYS_futex as u32),
        ins(BPF_LD_W_ABS, 0, 0, data_arg_low(1)),
        ins(BPF_JEQ_K, 2, 0, FUTEX_WAIT),
        ins(BPF_JEQ_K, 1, 0, FUTEX_WAKE),
        ins(BPF_RET_K, 0, 0, RET_KILL_PROCESS),
        ins(BPF_RET_K, 0, 0, RET_ALLOW),
        ins(BPF_RET_K, 0, 0, RET_KILL_PROCESS),
    ]);
    assert!(p.len() <= MAX_FILTER);
    p
}

/// The guest thread's filter.
pub fn guest_program() -> Vec<SockFilter> {
    program(RET_TRAP, &GUEST_ALLOWED)
}

/// The mapper thread's filter.
pub fn mapper_program() -> Vec<SockFilter> {
    program(RET_KILL_PROCESS, &MAPPER_ALLOWED)
}

/// `struct seccomp_data`, for running the filter in tests.
#[cfg(test)]
#[derive(Clone, Copy, Default)]
struct Data {
    nr: i32,
    arch: u32,
    args: [u64; 6],
}

/// Runs a classic BPF program the way the kernel does for seccomp (the subset the filter
/// uses: absolute word loads, JEQ/JGE with constants, returns).
#[cfg(test)]
fn run(p: &[SockFilter], d: &Data) -> u32 {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&d.nr.to_le_bytes());
    bytes.extend_from_slice(&d.arch.to_le_bytes());
    bytes.extend_from_slice(&0u64.to_le_bytes());
    for a in d.args {
        bytes.extend_from_slice(&a.to_le_bytes());
    }
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let i = p[pc];
        pc += 1;
        match i.code {
            BPF_LD_W_ABS => acc = u32::from_le_bytes(bytes[i.k as usize..i.k as usize + 4].try_into().unwrap()),
            BPF_JEQ_K => pc += if acc == i.k { i.jt } else { i.jf } as usize,
            BPF_JGE_K => pc += if acc >= i.k { i.jt } else { i.jf } as usize,
            BPF_RET_K => return i.k,
            c => panic!("instruction {c:#x} not modelled"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x64(nr: i64, args: [u64; 6]) -> Data {
        Data { nr: nr as i32, arch: AUDIT_ARCH_X86_64, args }
    }

    /// What the filter must answer for x86-64 call `nr` (futex: with FUTEX_WAIT).
    fn expected(allowed: &[libc::c_long], nr: i64) -> u32 {
        if nr == libc::SYS_futex || allowed.contains(&nr) { RET_ALLOW } else { RET_KILL_PROCESS }
    }

    #[test]
    fn every_call_outside_each_threads_list_kills_the_stub() {
        for (p, allowed) in [(guest_program(), &GUEST_ALLOWED[..]), (mapper_program(), &MAPPER_ALLOWED[..])] {
            for nr in 0..1024i64 {
                assert_eq!(run(&p, &x64(nr, [0; 6])), expected(allowed, nr), "x86-64 system call {nr}");
            }
        }
        // The guest thread may not touch memory mappings at all, nor anything escaped code
        // wants most.
        let guest = guest_program();
        for nr in [
            libc::SYS_mmap,
            libc::SYS_munmap,
            libc::SYS_mprotect,
            libc::SYS_modify_ldt,
            libc::SYS_write,
            libc::SYS_read,
            libc::SYS_pread64,
            libc::SYS_ioctl,
            libc::SYS_close,
            libc::SYS_kill,
            libc::SYS_tgkill,
            libc::SYS_prlimit64,
            libc::SYS_getppid,
            libc::SYS_rt_sigprocmask,
            libc::SYS_rt_sigaction,
            libc::SYS_sigaltstack,
            libc::SYS_mremap,
            libc::SYS_madvise,
            libc::SYS_clone,
            libc::SYS_clone3,
            libc::SYS_execve,
            libc::SYS_execveat,
            libc::SYS_openat,
            libc::SYS_ptrace,
            libc::SYS_process_vm_writev,
            libc::SYS_pidfd_getfd,
            libc::SYS_sendmsg,
            libc::SYS_dup,
            libc::SYS_seccomp,
            libc::SYS_prctl,
            libc::SYS_arch_prctl,
        ] {
            assert_eq!(run(&guest, &x64(nr, [0; 6])), RET_KILL_PROCESS, "system call {nr} from the guest thread");
        }
    }

    #[test]
    fn futex_only_waits_and_wakes() {
        for p in [guest_program(), mapper_program()] {
            let futex = |op: u64| run(&p, &x64(libc::SYS_futex, [0, op, 0, 0, 0, 0]));
            assert_eq!(futex(0), RET_ALLOW);
            assert_eq!(futex(1), RET_ALLOW);
            for op in [2, 3, 4, 5, 6, 9, 10, 128, 129] {
                assert_eq!(futex(op), RET_KILL_PROCESS, "futex op {op:#x}");
            }
            // The kernel reads the operation as an int: the high half is ignored.
            assert_eq!(futex(0x1_0000_0000), RET_ALLOW);
        }
    }

    #[test]
    fn other_abis_trap_or_kill() {
        let (guest, mapper) = (guest_program(), mapper_program());
        // int 0x80 from guest code: the guest's system call.
        assert_eq!(run(&guest, &Data { nr: 4, arch: AUDIT_ARCH_I386, args: [0; 6] }), RET_TRAP);
        assert_eq!(run(&mapper, &Data { nr: 4, arch: AUDIT_ARCH_I386, args: [0; 6] }), RET_KILL_PROCESS);
        for p in [guest, mapper] {
            assert_eq!(run(&p, &x64(0x4000_0000 | libc::SYS_munmap, [0; 6])), RET_KILL_PROCESS);
            assert_eq!(run(&p, &Data { nr: 0, arch: 0x4000_0028, args: [0; 6] }), RET_KILL_PROCESS);
        }
    }
}
