//! The stub's program: a few hundred bytes of position-independent machine code, and the
//! static ELF executable the monitor builds around them at run time.
//!
//! The code (assembled into the monitor's own text, between `bt86_stub_begin` and
//! `bt86_stub_end`, never run there) uses no library and no stack of the C kind:
//!
//! * `_start` maps the shared pages (fd 3) at [`STUB_SHARED`], closes its executable,
//!   takes its signal stack, installs one handler for the signals guest code raises
//!   (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS) and for the monitor's preemption
//!   signal (SIGALRM), all signals blocked while it runs; turns on CPUID faulting if asked;
//!   sets `no_new_privs` and installs the seccomp filter the monitor wrote into the shared
//!   pages, asking for a listener for user notifications; writes the listener's number,
//!   and executes `ud2`, which enters the handler for the first time.
//! * The handler writes the exit (registers from the signal frame, the data selectors as
//!   the CPU holds them, the FPU image, signal number, code, trap number, error code and
//!   fault address) — except for that first `ud2` — then reports `done_seq = cmd_seq`,
//!   waking the monitor if it sleeps, and waits for the next command (spinning briefly,
//!   then on a futex). A command's host calls run in order, each result written back.
//!   `Run` then writes the guest state into the signal frame (registers, CS and SS with
//!   `UC_STRICT_RESTORE_SS`, the FPU image with its x87 and SSE components marked present,
//!   an empty signal mask), loads DS, ES, FS and GS, and returns: `rt_sigreturn` enters
//!   guest code in compatibility mode. The next signal comes back here.
//!
//! Nothing here is trusted by the monitor: guest code that escapes to 64-bit mode can
//! jump anywhere in this code with registers of its choosing. What bounds it is the
//! seccomp filter and the monitor's approval of each `mmap`.

use std::mem::offset_of;

use super::shared::{Command, FX_BYTES, MAX_OPS, SHARED_SIZE, STUB_CODE, STUB_SHARED, STUB_STACK, STUB_STACK_SIZE, fds, off};

const UC_MCONTEXT: usize = offset_of!(libc::ucontext_t, uc_mcontext);
const fn greg(r: libc::c_int) -> usize {
    UC_MCONTEXT + r as usize * 8
}
const UC_FPREGS: usize = UC_MCONTEXT + offset_of!(libc::mcontext_t, fpregs);
const UC_SIGMASK: usize = offset_of!(libc::ucontext_t, uc_sigmask);
/// `uc_flags` bits (asm/ucontext.h).
const UC_FP_XSTATE: u64 = 1;
/// `SA_RESTORER` (asm/signal.h; the C library hides it).
const SA_RESTORER: libc::c_int = 0x0400_0000;
const UC_SIGCONTEXT_SS: u64 = 2;
const UC_STRICT_RESTORE_SS: u64 = 4;
/// Rounds of 32 `pause`s and a `sched_yield` before the stub sleeps on the futex (tens of
/// microseconds when it has a CPU to itself; when it shares one with the monitor, the
/// yield hands it over at once).
const SPIN: u32 = 64;

std::arch::global_asm!(
    ".pushsection .text.bt86_stub, \"ax\", @progbits",
    ".p2align 12",
    ".globl bt86_stub_begin",
    "bt86_stub_begin:",
    // ---- _start ------------------------------------------------------------------
    "mov eax, {SYS_mmap}",
    "movabs rdi, {SHARED}",
    "mov esi, {SHARED_SIZE}",
    "mov edx, 3",
    "mov r10d, 0x11",
    "mov r8d, {FD_SHARED}",
    "xor r9d, r9d",
    "syscall",
    "cmp rax, rdi",
    "jne bt86_stub_die",
    "mov eax, {SYS_close}",
    "mov edi, {FD_SHARED}",
    "syscall",
    "mov eax, {SYS_close}",
    "mov edi, {FD_EXE}",
    "syscall",
    "movabs r15, {SHARED}",
    "and rsp, -16",
    "sub rsp, 64",
    // sigaltstack({STACK, 0, STACK_SIZE}, NULL)
    "movabs rax, {STACK}",
    "mov [rsp], rax",
    "mov qword ptr [rsp + 8], 0",
    "mov qword ptr [rsp + 16], {STACK_SIZE}",
    "mov eax, {SYS_sigaltstack}",
    "mov rdi, rsp",
    "xor esi, esi",
    "syscall",
    "test rax, rax",
    "jnz bt86_stub_die",
    // struct kernel_sigaction { handler, flags, restorer, mask }
    "lea rax, [rip + bt86_stub_handler]",
    "mov [rsp], rax",
    "mov qword ptr [rsp + 8], {SA_FLAGS}",
    "lea rax, [rip + bt86_stub_restorer]",
    "mov [rsp + 16], rax",
    "mov qword ptr [rsp + 24], -1",
    "lea rbx, [rip + bt86_stub_signals]",
    "2:",
    "movzx edi, byte ptr [rbx]",
    "test edi, edi",
    "jz 3f",
    "mov eax, {SYS_rt_sigaction}",
    "mov rsi, rsp",
    "xor edx, edx",
    "mov r10d, 8",
    "syscall",
    "test rax, rax",
    "jnz bt86_stub_die",
    "inc rbx",
    "jmp 2b",
    "3:",
    "test dword ptr [r15 + {SETUP_FLAGS}], 1",
    "jz 4f",
    "mov eax, {SYS_arch_prctl}",
    "mov edi, 0x1012", // ARCH_SET_CPUID
    "xor esi, esi",
    "syscall",
    "test rax, rax",
    "jnz bt86_stub_die",
    "4:",
    "mov eax, {SYS_prctl}",
    "mov edi, 38", // PR_SET_NO_NEW_PRIVS
    "mov esi, 1",
    "xor edx, edx",
    "xor r10d, r10d",
    "xor r8d, r8d",
    "syscall",
    "test rax, rax",
    "jnz bt86_stub_die",
    // struct sock_fprog { u16 len; struct sock_filter *filter; }
    "mov eax, dword ptr [r15 + {FILTER_LEN}]",
    "mov [rsp], rax",
    "lea rax, [r15 + {FILTER}]",
    "mov [rsp + 8], rax",
    "mov eax, {SYS_seccomp}",
    "mov edi, 1", // SECCOMP_SET_MODE_FILTER
    "mov esi, 8", // SECCOMP_FILTER_FLAG_NEW_LISTENER
    "mov rdx, rsp",
    "syscall",
    "mov dword ptr [r15 + {LISTENER_FD}], eax",
    "test rax, rax",
    "js bt86_stub_die",
    ".globl bt86_stub_first_trap",
    "bt86_stub_first_trap:",
    "ud2",
    "bt86_stub_die:",
    "mov eax, {SYS_exit_group}",
    "mov edi, 127",
    "syscall",
    "ud2",
    "bt86_stub_exit:",
    "mov eax, {SYS_exit_group}",
    "xor edi, edi",
    "syscall",
    "ud2",
    "bt86_stub_signals:",
    ".byte 11, 7, 8, 4, 5, 31, 14, 0",
    ".p2align 4",
    "bt86_stub_restorer:",
    "mov eax, {SYS_rt_sigreturn}",
    "syscall",
    "ud2",
    // ---- the handler: rdi = signo, rsi = siginfo, rdx = ucontext -------------------
    ".p2align 4",
    "bt86_stub_handler:",
    "movabs r15, {SHARED}",
    "mov rbx, rdx",
    "lea rax, [rip + bt86_stub_first_trap]",
    "cmp rax, [rbx + {RIP}]",
    "je 5f",
    "mov [r15 + {EXIT_SIGNO}], edi",
    "mov eax, [rsi + 8]",
    "mov [r15 + {EXIT_SI_CODE}], eax",
    "mov rax, [rsi + 16]",
    "mov [r15 + {EXIT_FAULT_ADDR}], rax",
    "mov rax, [rbx + {RAX}]",
    "mov [r15 + {EXIT_GPR}], eax",
    "mov rax, [rbx + {RCX}]",
    "mov [r15 + {EXIT_GPR} + 4], eax",
    "mov rax, [rbx + {RDX}]",
    "mov [r15 + {EXIT_GPR} + 8], eax",
    "mov rax, [rbx + {RBX}]",
    "mov [r15 + {EXIT_GPR} + 12], eax",
    "mov rax, [rbx + {RSP}]",
    "mov [r15 + {EXIT_GPR} + 16], eax",
    "mov rax, [rbx + {RBP}]",
    "mov [r15 + {EXIT_GPR} + 20], eax",
    "mov rax, [rbx + {RSI}]",
    "mov [r15 + {EXIT_GPR} + 24], eax",
    "mov rax, [rbx + {RDI}]",
    "mov [r15 + {EXIT_GPR} + 28], eax",
    "mov rax, [rbx + {RIP}]",
    "mov [r15 + {EXIT_EIP}], eax",
    "mov rax, [rbx + {EFL}]",
    "mov [r15 + {EXIT_EFLAGS}], eax",
    "mov rax, [rbx + {TRAPNO}]",
    "mov [r15 + {EXIT_TRAPNO}], eax",
    "mov rax, [rbx + {ERR}]",
    "mov [r15 + {EXIT_ERR}], eax",
    "mov rax, [rbx + {CSGSFS}]",
    "movzx ecx, ax",
    "mov [r15 + {EXIT_SEL} + 4], ecx",
    "shr rax, 48",
    "mov [r15 + {EXIT_SEL} + 8], eax",
    "mov eax, es",
    "movzx eax, ax",
    "mov [r15 + {EXIT_SEL}], eax",
    "mov eax, ds",
    "movzx eax, ax",
    "mov [r15 + {EXIT_SEL} + 12], eax",
    "mov eax, fs",
    "movzx eax, ax",
    "mov [r15 + {EXIT_SEL} + 16], eax",
    "mov eax, gs",
    "movzx eax, ax",
    "mov [r15 + {EXIT_SEL} + 20], eax",
    "mov rsi, [rbx + {FPREGS}]",
    "test rsi, rsi",
    "jz 5f",
    "lea rdi, [r15 + {FX}]",
    "mov ecx, {FX_BYTES}",
    "rep movsb",
    // ---- report and wait --------------------------------------------------------------
    "5:",
    "mov eax, [r15 + {CMD_SEQ}]",
    "xchg [r15 + {DONE_SEQ}], eax",
    "cmp dword ptr [r15 + {MONITOR_WAITING}], 0",
    "je 6f",
    "mov eax, {SYS_futex}",
    "lea rdi, [r15 + {DONE_SEQ}]",
    "mov esi, 1", // FUTEX_WAKE
    "mov edx, 1",
    "syscall",
    "6:",
    "mov r12d, {SPIN}",
    "7:",
    "mov ecx, 32",
    "29:",
    "mov eax, [r15 + {CMD_SEQ}]",
    "cmp eax, [r15 + {DONE_SEQ}]",
    "jne 9f",
    "pause",
    "dec ecx",
    "jnz 29b",
    // The monitor may be waiting for this CPU: let it run.
    "mov eax, {SYS_sched_yield}",
    "syscall",
    "dec r12d",
    "jnz 7b",
    "mov eax, 1",
    "xchg [r15 + {STUB_WAITING}], eax",
    "mov edx, [r15 + {DONE_SEQ}]",
    "cmp edx, [r15 + {CMD_SEQ}]",
    "jne 8f",
    "mov eax, {SYS_futex}",
    "lea rdi, [r15 + {CMD_SEQ}]",
    "xor esi, esi", // FUTEX_WAIT, value edx
    "xor r10d, r10d",
    "syscall",
    "8:",
    "mov dword ptr [r15 + {STUB_WAITING}], 0",
    "jmp 6b",
    // ---- a command ----------------------------------------------------------------------
    "9:",
    "mov eax, [r15 + {CMD}]",
    "cmp eax, {CMD_EXIT}",
    "je bt86_stub_exit",
    "mov r12d, [r15 + {N_OPS}]",
    "cmp r12d, {MAX_OPS}",
    "jbe 25f",
    "mov r12d, {MAX_OPS}",
    "25:",
    "lea r13, [r15 + {OPS}]",
    "26:",
    "test r12d, r12d",
    "jz 27f",
    "mov rax, [r13]",
    "mov rdi, [r13 + 8]",
    "mov rsi, [r13 + 16]",
    "mov rdx, [r13 + 24]",
    "mov r10, [r13 + 32]",
    "mov r8, [r13 + 40]",
    "mov r9, [r13 + 48]",
    "syscall",
    "mov [r13 + 56], rax",
    "add r13, 64",
    "dec r12d",
    "jmp 26b",
    "27:",
    "cmp dword ptr [r15 + {CMD}], {CMD_RUN}",
    "jne 5b",
    // ---- Run: the guest state into the frame --------------------------------------------
    "mov eax, [r15 + {ENTRY_GPR}]",
    "mov [rbx + {RAX}], rax",
    "mov eax, [r15 + {ENTRY_GPR} + 4]",
    "mov [rbx + {RCX}], rax",
    "mov eax, [r15 + {ENTRY_GPR} + 8]",
    "mov [rbx + {RDX}], rax",
    "mov eax, [r15 + {ENTRY_GPR} + 12]",
    "mov [rbx + {RBX}], rax",
    "mov eax, [r15 + {ENTRY_GPR} + 16]",
    "mov [rbx + {RSP}], rax",
    "mov eax, [r15 + {ENTRY_GPR} + 20]",
    "mov [rbx + {RBP}], rax",
    "mov eax, [r15 + {ENTRY_GPR} + 24]",
    "mov [rbx + {RSI}], rax",
    "mov eax, [r15 + {ENTRY_GPR} + 28]",
    "mov [rbx + {RDI}], rax",
    "mov eax, [r15 + {ENTRY_EIP}]",
    "mov [rbx + {RIP}], rax",
    "mov eax, [r15 + {ENTRY_EFLAGS}]",
    "mov [rbx + {EFL}], rax",
    "xor eax, eax",
    "mov [rbx + {R8}], rax",
    "mov [rbx + {R8} + 8], rax",
    "mov [rbx + {R8} + 16], rax",
    "mov [rbx + {R8} + 24], rax",
    "mov [rbx + {R8} + 32], rax",
    "mov [rbx + {R8} + 40], rax",
    "mov [rbx + {R8} + 48], rax",
    "mov [rbx + {R8} + 56], rax",
    "mov [rbx + {SIGMASK}], rax",
    "movzx eax, word ptr [r15 + {ENTRY_SEL} + 4]",
    "movzx ecx, word ptr [r15 + {ENTRY_SEL} + 8]",
    "shl rcx, 48",
    "or rax, rcx",
    "mov [rbx + {CSGSFS}], rax",
    "or qword ptr [rbx], {UC_SS_FLAGS}",
    "mov rdi, [rbx + {FPREGS}]",
    "test rdi, rdi",
    "jz 28f",
    "lea rsi, [r15 + {FX}]",
    "mov ecx, {FX_BYTES}",
    "rep movsb",
    "test qword ptr [rbx], {UC_FP_XSTATE}",
    "jz 28f",
    "mov rdi, [rbx + {FPREGS}]",
    "or qword ptr [rdi + 512], 3",
    "28:",
    "mov eax, [r15 + {ENTRY_SEL} + 12]",
    "mov ds, eax",
    "mov eax, [r15 + {ENTRY_SEL}]",
    "mov es, eax",
    "mov eax, [r15 + {ENTRY_SEL} + 16]",
    "mov fs, eax",
    "mov eax, [r15 + {ENTRY_SEL} + 20]",
    "mov gs, eax",
    "ret",
    ".globl bt86_stub_end",
    "bt86_stub_end:",
    ".popsection",
    SYS_mmap = const libc::SYS_mmap,
    SYS_close = const libc::SYS_close,
    SYS_sigaltstack = const libc::SYS_sigaltstack,
    SYS_rt_sigaction = const libc::SYS_rt_sigaction,
    SYS_rt_sigreturn = const libc::SYS_rt_sigreturn,
    SYS_arch_prctl = const libc::SYS_arch_prctl,
    SYS_prctl = const libc::SYS_prctl,
    SYS_seccomp = const libc::SYS_seccomp,
    SYS_futex = const libc::SYS_futex,
    SYS_sched_yield = const libc::SYS_sched_yield,
    SYS_exit_group = const libc::SYS_exit_group,
    SHARED = const STUB_SHARED,
    SHARED_SIZE = const SHARED_SIZE,
    STACK = const STUB_STACK,
    STACK_SIZE = const STUB_STACK_SIZE,
    FD_SHARED = const fds::SHARED,
    FD_EXE = const fds::EXE,
    SA_FLAGS = const (libc::SA_SIGINFO | libc::SA_ONSTACK | SA_RESTORER),
    SETUP_FLAGS = const off::SETUP_FLAGS,
    FILTER_LEN = const off::FILTER_LEN,
    FILTER = const off::FILTER,
    LISTENER_FD = const off::LISTENER_FD,
    CMD_SEQ = const off::CMD_SEQ,
    DONE_SEQ = const off::DONE_SEQ,
    STUB_WAITING = const off::STUB_WAITING,
    MONITOR_WAITING = const off::MONITOR_WAITING,
    CMD = const off::CMD,
    N_OPS = const off::N_OPS,
    OPS = const off::OPS,
    MAX_OPS = const MAX_OPS,
    CMD_EXIT = const Command::Exit as u32,
    CMD_RUN = const Command::Run as u32,
    ENTRY_GPR = const off::ENTRY_GPR,
    ENTRY_EIP = const off::ENTRY_EIP,
    ENTRY_EFLAGS = const off::ENTRY_EFLAGS,
    ENTRY_SEL = const off::ENTRY_SEL,
    EXIT_GPR = const off::EXIT_GPR,
    EXIT_EIP = const off::EXIT_EIP,
    EXIT_EFLAGS = const off::EXIT_EFLAGS,
    EXIT_SEL = const off::EXIT_SEL,
    EXIT_SIGNO = const off::EXIT_SIGNO,
    EXIT_SI_CODE = const off::EXIT_SI_CODE,
    EXIT_TRAPNO = const off::EXIT_TRAPNO,
    EXIT_ERR = const off::EXIT_ERR,
    EXIT_FAULT_ADDR = const off::EXIT_FAULT_ADDR,
    FX = const off::FX,
    FX_BYTES = const FX_BYTES,
    SPIN = const SPIN,
    RAX = const greg(libc::REG_RAX),
    RCX = const greg(libc::REG_RCX),
    RDX = const greg(libc::REG_RDX),
    RBX = const greg(libc::REG_RBX),
    RSP = const greg(libc::REG_RSP),
    RBP = const greg(libc::REG_RBP),
    RSI = const greg(libc::REG_RSI),
    RDI = const greg(libc::REG_RDI),
    R8 = const greg(libc::REG_R8),
    RIP = const greg(libc::REG_RIP),
    EFL = const greg(libc::REG_EFL),
    CSGSFS = const greg(libc::REG_CSGSFS),
    ERR = const greg(libc::REG_ERR),
    TRAPNO = const greg(libc::REG_TRAPNO),
    FPREGS = const UC_FPREGS,
    SIGMASK = const UC_SIGMASK,
    UC_SS_FLAGS = const UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS,
    UC_FP_XSTATE = const UC_FP_XSTATE,
);

unsafe extern "C" {
    static bt86_stub_begin: u8;
    static bt86_stub_end: u8;
}

/// The stub's machine code.
fn code() -> &'static [u8] {
    // SAFETY: the two symbols delimit the assembly above, in this binary's text, which is
    // mapped readable for the life of the process.
    unsafe {
        let begin = &raw const bt86_stub_begin;
        let end = &raw const bt86_stub_end;
        std::slice::from_raw_parts(begin, end as usize - begin as usize)
    }
}

/// The stub as a static ELF executable: its code read-execute at [`STUB_CODE`], its
/// signal stack read-write at [`STUB_STACK`], a non-executable process stack.
pub fn elf_image() -> Vec<u8> {
    const PT_LOAD: u32 = 1;
    const PT_GNU_STACK: u32 = 0x6474_e551;
    const CODE_OFFSET: u64 = 0x1000;
    let code = code();
    let mut f = Vec::with_capacity(CODE_OFFSET as usize + code.len());
    // ELF header.
    f.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&STUB_CODE.to_le_bytes()); // entry: _start is the first byte
    f.extend_from_slice(&64u64.to_le_bytes()); // phoff
    f.extend_from_slice(&0u64.to_le_bytes()); // shoff
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&64u16.to_le_bytes());
    f.extend_from_slice(&56u16.to_le_bytes());
    f.extend_from_slice(&3u16.to_le_bytes());
    f.extend_from_slice(&[0; 6]);
    let mut phdr = |ty: u32, flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64| {
        f.extend_from_slice(&ty.to_le_bytes());
        f.extend_from_slice(&flags.to_le_bytes());
        f.extend_from_slice(&offset.to_le_bytes());
        f.extend_from_slice(&vaddr.to_le_bytes());
        f.extend_from_slice(&vaddr.to_le_bytes());
        f.extend_from_slice(&filesz.to_le_bytes());
        f.extend_from_slice(&memsz.to_le_bytes());
        f.extend_from_slice(&0x1000u64.to_le_bytes());
    };
    phdr(PT_LOAD, 5, CODE_OFFSET, STUB_CODE, code.len() as u64, code.len() as u64);
    phdr(PT_LOAD, 6, 0, STUB_STACK, 0, STUB_STACK_SIZE);
    phdr(PT_GNU_STACK, 6, 0, 0, 0, 0);
    f.resize(CODE_OFFSET as usize, 0);
    f.extend_from_slice(code);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_is_an_elf_that_goblin_reads() {
        let img = elf_image();
        let elf = goblin::elf::Elf::parse(&img).expect("the stub's ELF parses");
        assert_eq!(elf.entry, STUB_CODE);
        let loads: Vec<_> = elf.program_headers.iter().filter(|p| p.p_type == goblin::elf::program_header::PT_LOAD).collect();
        assert_eq!(loads.len(), 2);
        assert!(loads[0].is_executable() && !loads[0].is_write());
        assert!(loads[1].is_write() && !loads[1].is_executable());
        assert!(code().len() > 100 && code().len() < 4096, "{} bytes of stub code", code().len());
    }
}
