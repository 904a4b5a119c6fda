//! The stub's program: a few hundred bytes of position-independent machine code, and the
//! static ELF executable the monitor builds around them at run time.
//!
//! The code (assembled into the monitor's own text, between `bt86_stub_begin` and
//! `bt86_stub_end`, never run there) uses no library. The stub has two threads:
//!
//! * the **guest thread** runs guest code and owns nothing: no file descriptors, and a
//!   seccomp filter that allows it only `rt_sigreturn`, `futex` (wait and wake),
//!   `sched_yield` and `exit` (its 32-bit calls, the guest's `int 0x80`, trap);
//! * the **mapper thread** makes the host calls the monitor asks for (`mmap` of guest RAM,
//!   `munmap`, `modify_ldt`). It alone holds the two descriptors of guest RAM (it is
//!   created without `CLONE_FILES`, and the guest thread then closes its copies), runs
//!   with every signal blocked, keeps all its state in registers (it has no stack that the
//!   guest thread could write) and reads its orders only from the read-only
//!   [`super::shared::Commands`] area. Guest code that escapes to 64-bit mode in the
//!   guest thread can jump anywhere in this code and write any writable page of the stub,
//!   but cannot make the mapper map anything the monitor did not ask for.
//!
//! `_start` (one thread yet) maps the two shared areas, closes what it no longer needs,
//! takes its signal stack, installs one handler for the signals guest code raises (SIGSEGV,
//! SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS) and for the monitor's preemption signal
//! (SIGALRM), all signals blocked while it runs; sets `no_new_privs`, blocks every
//! signal and starts the mapper thread, which installs its filter and waits for commands.
//! The guest thread closes its copies of the guest-RAM descriptors, unblocks signals,
//! turns on CPUID faulting if asked, installs its filter and executes `ud2`, which enters
//! the handler for the first time.
//!
//! The handler writes the exit (registers from the signal frame, the data selectors as the
//! CPU holds them, the FPU image, signal number, code, trap number, error code and fault
//! address) — except for that first `ud2` — then reports `done_seq = seq`, waking the
//! monitor if it sleeps, and waits for the next command (spinning briefly, then on a
//! futex). For a command with host calls it wakes the mapper and waits until the mapper
//! has made them. `Run` then writes the guest state into the signal frame (registers, CS
//! and SS with `UC_STRICT_RESTORE_SS`, the FPU image with its x87 and SSE components marked
//! present, an empty signal mask), loads DS, ES, FS and GS, and returns: `rt_sigreturn`
//! enters guest code in compatibility mode. The next signal comes back here.

use std::mem::offset_of;

use super::shared::{
    COMMANDS_OFFSET, COMMANDS_SIZE, Command, FX_BYTES, MAX_OPS, REPORTS_SIZE, STUB_CODE, STUB_COMMANDS, STUB_REPORTS, STUB_STACK,
    STUB_STACK_SIZE, fds, off,
};

const UC_MCONTEXT: usize = offset_of!(libc::ucontext_t, uc_mcontext);
const fn greg(r: libc::c_int) -> usize {
    UC_MCONTEXT + r as usize * 8
}
const UC_FPREGS: usize = UC_MCONTEXT + offset_of!(libc::mcontext_t, fpregs);
const UC_SIGMASK: usize = offset_of!(libc::ucontext_t, uc_sigmask);
/// `uc_flags` bits (asm/ucontext.h).
const UC_FP_XSTATE: u64 = 1;
const UC_SIGCONTEXT_SS: u64 = 2;
const UC_STRICT_RESTORE_SS: u64 = 4;
/// `SA_RESTORER` (asm/signal.h; the C library hides it).
const SA_RESTORER: libc::c_int = 0x0400_0000;
/// The mapper thread: a thread of the same process and signal handlers, with a file table
/// of its own (no `CLONE_FILES`).
const MAPPER_CLONE_FLAGS: i32 = libc::CLONE_VM | libc::CLONE_SIGHAND | libc::CLONE_THREAD | libc::CLONE_SYSVSEM;
/// The guest thread's signal stack: the lower part of the writable segment (the upper
/// part is the mapper's stack, which only `clone` uses: the mapper pushes nothing).
const ALT_STACK_SIZE: u64 = STUB_STACK_SIZE - 4096;
/// Rounds of 32 `pause`s and a `sched_yield` before a stub thread sleeps on a futex (tens
/// of microseconds when it has a CPU to itself; when it shares one, the yield hands it
/// over at once).
const SPIN: u32 = 64;

std::arch::global_asm!(
    ".pushsection .text.bt86_stub, \"ax\", @progbits",
    ".p2align 12",
    ".globl bt86_stub_begin",
    "bt86_stub_begin:",
    // ---- _start ------------------------------------------------------------------
    // mmap(REPORTS, REPORTS_SIZE, RW, MAP_SHARED|MAP_FIXED, 3, 0)
    "mov eax, {SYS_mmap}",
    "movabs rdi, {REPORTS}",
    "mov esi, {REPORTS_SIZE}",
    "mov edx, 3",
    "mov r10d, 0x11",
    "mov r8d, {FD_SHARED}",
    "xor r9d, r9d",
    "syscall",
    "cmp rax, rdi",
    "jne bt86_stub_die",
    // mmap(COMMANDS, COMMANDS_SIZE, R, MAP_SHARED|MAP_FIXED, 3, COMMANDS_OFFSET)
    "mov eax, {SYS_mmap}",
    "movabs rdi, {COMMANDS}",
    "mov esi, {COMMANDS_SIZE}",
    "mov edx, 1",
    "mov r10d, 0x11",
    "mov r8d, {FD_SHARED}",
    "mov r9d, {COMMANDS_OFFSET}",
    "syscall",
    "cmp rax, rdi",
    "jne bt86_stub_die",
    "mov eax, {SYS_close}",
    "mov edi, {FD_SHARED}",
    "syscall",
    "mov eax, {SYS_close}",
    "mov edi, {FD_EXE}",
    "syscall",
    "movabs r15, {REPORTS}",
    "movabs r14, {COMMANDS}",
    "and rsp, -16",
    "sub rsp, 64",
    // sigaltstack({STACK, 0, ALT_STACK_SIZE}, NULL)
    "movabs rax, {STACK}",
    "mov [rsp], rax",
    "mov qword ptr [rsp + 8], 0",
    "mov qword ptr [rsp + 16], {ALT_STACK_SIZE}",
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
    "mov eax, {SYS_prctl}",
    "mov edi, 38", // PR_SET_NO_NEW_PRIVS
    "mov esi, 1",
    "xor edx, edx",
    "xor r10d, r10d",
    "xor r8d, r8d",
    "syscall",
    "test rax, rax",
    "jnz bt86_stub_die",
    // Every signal blocked: the mapper thread inherits that and keeps it.
    "mov eax, {SYS_rt_sigprocmask}",
    "mov edi, 2", // SIG_SETMASK
    "lea rsi, [rip + bt86_stub_all_signals]",
    "xor edx, edx",
    "mov r10d, 8",
    "syscall",
    "test rax, rax",
    "jnz bt86_stub_die",
    // clone(flags, stack, 0, 0, 0): the mapper starts at 4: with its own file table.
    "mov eax, {SYS_clone}",
    "mov edi, {CLONE_FLAGS}",
    "movabs rsi, {MAPPER_STACK_TOP}",
    "xor edx, edx",
    "xor r10d, r10d",
    "xor r8d, r8d",
    "syscall",
    "test rax, rax",
    "jz bt86_stub_mapper",
    "js bt86_stub_die",
    // ---- the guest thread's setup -------------------------------------------------
    "mov eax, {SYS_close}",
    "mov edi, {FD_RAM_RW}",
    "syscall",
    "mov eax, {SYS_close}",
    "mov edi, {FD_RAM_RO}",
    "syscall",
    "mov eax, {SYS_rt_sigprocmask}",
    "mov edi, 2", // SIG_SETMASK
    "lea rsi, [rip + bt86_stub_no_signals]",
    "xor edx, edx",
    "mov r10d, 8",
    "syscall",
    "test rax, rax",
    "jnz bt86_stub_die",
    "test dword ptr [r14 + {C_SETUP_FLAGS}], 1",
    "jz 4f",
    "mov eax, {SYS_arch_prctl}",
    "mov edi, 0x1012", // ARCH_SET_CPUID
    "xor esi, esi",
    "syscall",
    "test rax, rax",
    "jnz bt86_stub_die",
    "4:",
    "mov eax, {SYS_seccomp}",
    "mov edi, 1", // SECCOMP_SET_MODE_FILTER, this thread only
    "xor esi, esi",
    "lea rdx, [r14 + {C_GUEST_FPROG}]",
    "syscall",
    "test rax, rax",
    "jnz bt86_stub_die",
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
    ".p2align 3",
    "bt86_stub_all_signals:",
    ".quad -1",
    "bt86_stub_no_signals:",
    ".quad 0",
    ".p2align 4",
    "bt86_stub_restorer:",
    "mov eax, {SYS_rt_sigreturn}",
    "syscall",
    "ud2",
    // ---- the mapper thread: registers only (r15 reports, r14 commands, r13d the last
    // command seen); it reads only the read-only commands area ------------------------
    ".p2align 4",
    "bt86_stub_mapper:",
    "movabs r15, {REPORTS}",
    "movabs r14, {COMMANDS}",
    "mov eax, {SYS_seccomp}",
    "mov edi, 1",
    "xor esi, esi",
    "lea rdx, [r14 + {C_MAPPER_FPROG}]",
    "syscall",
    "test rax, rax",
    "jnz bt86_stub_die",
    // The last host calls made (none yet): commands may have come before this thread ran.
    "mov r13d, [r15 + {R_OPS_DONE}]",
    "40:",
    "mov r12d, {SPIN} * 16",
    "41:",
    "mov ecx, 32",
    "42:",
    "mov eax, [r14 + {C_OPS_SEQ}]",
    "cmp eax, r13d",
    "jne 44f",
    "pause",
    "dec ecx",
    "jnz 42b",
    "mov eax, {SYS_sched_yield}",
    "syscall",
    "dec r12d",
    "jnz 41b",
    "mov eax, 1",
    "xchg [r15 + {R_MAPPER_WAITING}], eax",
    "cmp r13d, [r14 + {C_OPS_SEQ}]",
    "jne 43f",
    "mov eax, {SYS_futex}",
    "lea rdi, [r14 + {C_OPS_SEQ}]",
    "xor esi, esi", // FUTEX_WAIT while ops_seq == r13d
    "mov edx, r13d",
    "xor r10d, r10d",
    "syscall",
    "43:",
    "mov dword ptr [r15 + {R_MAPPER_WAITING}], 0",
    "jmp 40b",
    "44:",
    "mov r13d, eax",
    "mov r12d, [r14 + {C_N_OPS}]",
    "cmp r12d, {MAX_OPS}",
    "jbe 45f",
    "mov r12d, {MAX_OPS}",
    "45:",
    "lea rbx, [r14 + {C_OPS}]",
    "lea rbp, [r15 + {R_RESULTS}]",
    "46:",
    "test r12d, r12d",
    "jz 47f",
    "mov rax, [rbx]",
    "mov rdi, [rbx + 8]",
    "mov rsi, [rbx + 16]",
    "mov rdx, [rbx + 24]",
    "mov r10, [rbx + 32]",
    "mov r8, [rbx + 40]",
    "mov r9, [rbx + 48]",
    "syscall",
    "mov [rbp], rax",
    "add rbx, 56",
    "add rbp, 8",
    "dec r12d",
    "jmp 46b",
    "47:",
    "mov eax, r13d",
    "xchg [r15 + {R_OPS_DONE}], eax",
    "cmp dword ptr [r15 + {R_GUEST_WAITING_OPS}], 0",
    "je 40b",
    "mov eax, {SYS_futex}",
    "lea rdi, [r15 + {R_OPS_DONE}]",
    "mov esi, 1", // FUTEX_WAKE
    "mov edx, 1",
    "syscall",
    "jmp 40b",
    // ---- the guest thread's handler: rdi = signo, rsi = siginfo, rdx = ucontext --------
    ".p2align 4",
    "bt86_stub_handler:",
    "movabs r15, {REPORTS}",
    "movabs r14, {COMMANDS}",
    "mov rbx, rdx",
    "lea rax, [rip + bt86_stub_first_trap]",
    "cmp rax, [rbx + {RIP}]",
    "je 5f",
    "mov [r15 + {R_EXIT_SIGNO}], edi",
    "mov eax, [rsi + 8]",
    "mov [r15 + {R_EXIT_SI_CODE}], eax",
    "mov rax, [rsi + 16]",
    "mov [r15 + {R_EXIT_FAULT_ADDR}], rax",
    "mov rax, [rbx + {RAX}]",
    "mov [r15 + {R_EXIT_GPR}], eax",
    "mov rax, [rbx + {RCX}]",
    "mov [r15 + {R_EXIT_GPR} + 4], eax",
    "mov rax, [rbx + {RDX}]",
    "mov [r15 + {R_EXIT_GPR} + 8], eax",
    "mov rax, [rbx + {RBX}]",
    "mov [r15 + {R_EXIT_GPR} + 12], eax",
    "mov rax, [rbx + {RSP}]",
    "mov [r15 + {R_EXIT_GPR} + 16], eax",
    "mov rax, [rbx + {RBP}]",
    "mov [r15 + {R_EXIT_GPR} + 20], eax",
    "mov rax, [rbx + {RSI}]",
    "mov [r15 + {R_EXIT_GPR} + 24], eax",
    "mov rax, [rbx + {RDI}]",
    "mov [r15 + {R_EXIT_GPR} + 28], eax",
    "mov rax, [rbx + {RIP}]",
    "mov [r15 + {R_EXIT_EIP}], eax",
    "mov rax, [rbx + {EFL}]",
    "mov [r15 + {R_EXIT_EFLAGS}], eax",
    "mov rax, [rbx + {TRAPNO}]",
    "mov [r15 + {R_EXIT_TRAPNO}], eax",
    "mov rax, [rbx + {ERR}]",
    "mov [r15 + {R_EXIT_ERR}], eax",
    "mov rax, [rbx + {CSGSFS}]",
    "movzx ecx, ax",
    "mov [r15 + {R_EXIT_SEL} + 4], ecx",
    "shr rax, 48",
    "mov [r15 + {R_EXIT_SEL} + 8], eax",
    "mov eax, es",
    "movzx eax, ax",
    "mov [r15 + {R_EXIT_SEL}], eax",
    "mov eax, ds",
    "movzx eax, ax",
    "mov [r15 + {R_EXIT_SEL} + 12], eax",
    "mov eax, fs",
    "movzx eax, ax",
    "mov [r15 + {R_EXIT_SEL} + 16], eax",
    "mov eax, gs",
    "movzx eax, ax",
    "mov [r15 + {R_EXIT_SEL} + 20], eax",
    "mov rsi, [rbx + {FPREGS}]",
    "test rsi, rsi",
    "jz 5f",
    "lea rdi, [r15 + {R_FX}]",
    "mov ecx, {FX_BYTES}",
    "rep movsb",
    // ---- report and wait ----------------------------------------------------------------
    "5:",
    "mov eax, [r14 + {C_SEQ}]",
    "xchg [r15 + {R_DONE_SEQ}], eax",
    "cmp dword ptr [r15 + {R_MONITOR_WAITING}], 0",
    "je 6f",
    "mov eax, {SYS_futex}",
    "lea rdi, [r15 + {R_DONE_SEQ}]",
    "mov esi, 1", // FUTEX_WAKE
    "mov edx, 1",
    "syscall",
    "6:",
    "mov r12d, {SPIN}",
    "7:",
    "mov ecx, 32",
    "29:",
    "mov eax, [r14 + {C_SEQ}]",
    "cmp eax, [r15 + {R_DONE_SEQ}]",
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
    "xchg [r15 + {R_GUEST_WAITING}], eax",
    "mov edx, [r15 + {R_DONE_SEQ}]",
    "cmp edx, [r14 + {C_SEQ}]",
    "jne 8f",
    "mov eax, {SYS_futex}",
    "lea rdi, [r14 + {C_SEQ}]",
    "xor esi, esi", // FUTEX_WAIT, value edx
    "xor r10d, r10d",
    "syscall",
    "8:",
    "mov dword ptr [r15 + {R_GUEST_WAITING}], 0",
    "jmp 6b",
    // ---- a command ----------------------------------------------------------------------
    "9:",
    "cmp dword ptr [r14 + {C_CMD}], {CMD_EXIT}",
    "je bt86_stub_exit",
    "cmp dword ptr [r14 + {C_N_OPS}], 0",
    "je 27f",
    // Host calls: the mapper makes them; wake it if it sleeps, then wait for it.
    "mov r13d, [r14 + {C_OPS_SEQ}]",
    "cmp dword ptr [r15 + {R_MAPPER_WAITING}], 0",
    "je 24f",
    "mov eax, {SYS_futex}",
    "lea rdi, [r14 + {C_OPS_SEQ}]",
    "mov esi, 1", // FUTEX_WAKE
    "mov edx, 1",
    "syscall",
    "24:",
    "mov r12d, {SPIN}",
    "25:",
    "mov ecx, 32",
    "26:",
    "cmp [r15 + {R_OPS_DONE}], r13d",
    "je 27f",
    "pause",
    "dec ecx",
    "jnz 26b",
    "mov eax, {SYS_sched_yield}",
    "syscall",
    "dec r12d",
    "jnz 25b",
    "mov eax, 1",
    "xchg [r15 + {R_GUEST_WAITING_OPS}], eax",
    "mov edx, [r15 + {R_OPS_DONE}]",
    "cmp edx, r13d",
    "je 30f",
    "mov eax, {SYS_futex}",
    "lea rdi, [r15 + {R_OPS_DONE}]",
    "xor esi, esi", // FUTEX_WAIT while ops_done == edx
    "xor r10d, r10d",
    "syscall",
    "30:",
    "mov dword ptr [r15 + {R_GUEST_WAITING_OPS}], 0",
    "jmp 24b",
    "27:",
    "cmp dword ptr [r14 + {C_CMD}], {CMD_RUN}",
    "jne 5b",
    // ---- Run: the guest state into the frame --------------------------------------------
    "mov eax, [r14 + {C_ENTRY_GPR}]",
    "mov [rbx + {RAX}], rax",
    "mov eax, [r14 + {C_ENTRY_GPR} + 4]",
    "mov [rbx + {RCX}], rax",
    "mov eax, [r14 + {C_ENTRY_GPR} + 8]",
    "mov [rbx + {RDX}], rax",
    "mov eax, [r14 + {C_ENTRY_GPR} + 12]",
    "mov [rbx + {RBX}], rax",
    "mov eax, [r14 + {C_ENTRY_GPR} + 16]",
    "mov [rbx + {RSP}], rax",
    "mov eax, [r14 + {C_ENTRY_GPR} + 20]",
    "mov [rbx + {RBP}], rax",
    "mov eax, [r14 + {C_ENTRY_GPR} + 24]",
    "mov [rbx + {RSI}], rax",
    "mov eax, [r14 + {C_ENTRY_GPR} + 28]",
    "mov [rbx + {RDI}], rax",
    "mov eax, [r14 + {C_ENTRY_EIP}]",
    "mov [rbx + {RIP}], rax",
    "mov eax, [r14 + {C_ENTRY_EFLAGS}]",
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
    "movzx eax, word ptr [r14 + {C_ENTRY_SEL} + 4]",
    "movzx ecx, word ptr [r14 + {C_ENTRY_SEL} + 8]",
    "shl rcx, 48",
    "or rax, rcx",
    "mov [rbx + {CSGSFS}], rax",
    "or qword ptr [rbx], {UC_SS_FLAGS}",
    "mov rdi, [rbx + {FPREGS}]",
    "test rdi, rdi",
    "jz 28f",
    "lea rsi, [r14 + {C_FX}]",
    "mov ecx, {FX_BYTES}",
    "rep movsb",
    "test qword ptr [rbx], {UC_FP_XSTATE}",
    "jz 28f",
    "mov rdi, [rbx + {FPREGS}]",
    "or qword ptr [rdi + 512], 3",
    "28:",
    "mov eax, [r14 + {C_ENTRY_SEL} + 12]",
    "mov ds, eax",
    "mov eax, [r14 + {C_ENTRY_SEL}]",
    "mov es, eax",
    "mov eax, [r14 + {C_ENTRY_SEL} + 16]",
    "mov fs, eax",
    "mov eax, [r14 + {C_ENTRY_SEL} + 20]",
    "mov gs, eax",
    "ret",
    ".globl bt86_stub_end",
    "bt86_stub_end:",
    ".popsection",
    SYS_mmap = const libc::SYS_mmap,
    SYS_close = const libc::SYS_close,
    SYS_sigaltstack = const libc::SYS_sigaltstack,
    SYS_rt_sigaction = const libc::SYS_rt_sigaction,
    SYS_rt_sigprocmask = const libc::SYS_rt_sigprocmask,
    SYS_rt_sigreturn = const libc::SYS_rt_sigreturn,
    SYS_arch_prctl = const libc::SYS_arch_prctl,
    SYS_prctl = const libc::SYS_prctl,
    SYS_seccomp = const libc::SYS_seccomp,
    SYS_futex = const libc::SYS_futex,
    SYS_sched_yield = const libc::SYS_sched_yield,
    SYS_clone = const libc::SYS_clone,
    SYS_exit_group = const libc::SYS_exit_group,
    REPORTS = const STUB_REPORTS,
    REPORTS_SIZE = const REPORTS_SIZE,
    COMMANDS = const STUB_COMMANDS,
    COMMANDS_SIZE = const COMMANDS_SIZE,
    COMMANDS_OFFSET = const COMMANDS_OFFSET,
    STACK = const STUB_STACK,
    ALT_STACK_SIZE = const ALT_STACK_SIZE,
    MAPPER_STACK_TOP = const STUB_STACK + STUB_STACK_SIZE,
    CLONE_FLAGS = const MAPPER_CLONE_FLAGS,
    FD_SHARED = const fds::SHARED,
    FD_EXE = const fds::EXE,
    FD_RAM_RW = const fds::RAM_RW,
    FD_RAM_RO = const fds::RAM_RO,
    SA_FLAGS = const (libc::SA_SIGINFO | libc::SA_ONSTACK | SA_RESTORER),
    C_SEQ = const off::C_SEQ,
    C_CMD = const off::C_CMD,
    C_N_OPS = const off::C_N_OPS,
    C_SETUP_FLAGS = const off::C_SETUP_FLAGS,
    C_OPS_SEQ = const off::C_OPS_SEQ,
    C_GUEST_FPROG = const off::C_GUEST_FPROG,
    C_MAPPER_FPROG = const off::C_MAPPER_FPROG,
    C_ENTRY_GPR = const off::C_ENTRY_GPR,
    C_ENTRY_EIP = const off::C_ENTRY_EIP,
    C_ENTRY_EFLAGS = const off::C_ENTRY_EFLAGS,
    C_ENTRY_SEL = const off::C_ENTRY_SEL,
    C_FX = const off::C_FX,
    C_OPS = const off::C_OPS,
    R_DONE_SEQ = const off::R_DONE_SEQ,
    R_OPS_DONE = const off::R_OPS_DONE,
    R_GUEST_WAITING = const off::R_GUEST_WAITING,
    R_MAPPER_WAITING = const off::R_MAPPER_WAITING,
    R_GUEST_WAITING_OPS = const off::R_GUEST_WAITING_OPS,
    R_MONITOR_WAITING = const off::R_MONITOR_WAITING,
    R_EXIT_GPR = const off::R_EXIT_GPR,
    R_EXIT_EIP = const off::R_EXIT_EIP,
    R_EXIT_EFLAGS = const off::R_EXIT_EFLAGS,
    R_EXIT_SEL = const off::R_EXIT_SEL,
    R_EXIT_SIGNO = const off::R_EXIT_SIGNO,
    R_EXIT_SI_CODE = const off::R_EXIT_SI_CODE,
    R_EXIT_TRAPNO = const off::R_EXIT_TRAPNO,
    R_EXIT_ERR = const off::R_EXIT_ERR,
    R_EXIT_FAULT_ADDR = const off::R_EXIT_FAULT_ADDR,
    R_FX = const off::R_FX,
    R_RESULTS = const off::R_RESULTS,
    MAX_OPS = const MAX_OPS,
    CMD_EXIT = const Command::Exit as u32,
    CMD_RUN = const Command::Run as u32,
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
