/*
 * escape - guest user code that far-jumps out of 32-bit mode must gain nothing.
 *
 * Why.  bt86 runs guest user code natively, in compatibility mode, on the host CPU.  The
 * host's GDT is not the guest's: on an x86-64 Linux host, selector 0x33 is the host's
 * 64-bit user code segment (0x23 its 32-bit one, 0x2b its user data), so a guest process
 * that does `ljmp $0x33, $x` becomes 64-bit code running as the host process that hosts
 * it, unless something stops it.  On a real PC (and under QEMU, and under `bt86
 * --user-exec translate`) the same instruction raises #GP(0x30) in the guest, because
 * this kernel's GDT entries 4, 5 and 6 are data descriptors, and nothing else happens.
 * This kernel plays the malicious user process: every attempt must end exactly as on a
 * PC - the process is stopped by an exception, no host system call succeeds, the
 * kernel's memory is unchanged - and then the kernel goes on with the next process.  See
 * issue 10 (the sandbox); until it exists, `--user-exec direct` and `adaptive` fail this
 * kernel (tests/oracle.rs runs it in a test of its own, ignored until then).
 *
 * The kernel.  The runtime's GDT (entries 4-6: data descriptors, checked first), paging
 * with 0-16 MiB identity-mapped by 4 MiB supervisor pages, and a page table for the user
 * pages at 0x40000000 (below).  A "secret" page of kernel memory (supervisor only, known
 * bytes, checksummed) and the process's own code page are checked after every process.
 * The PIT runs at 1 kHz and user code runs with IF = 1, IOPL 0, CPL 3 - what bt86 needs to
 * run it natively.  Every exception at CPL 3 ends the process; the timer's handler ends a
 * process still running after WATCHDOG ticks (a `not ok`: the escape was not stopped, but
 * the kernel got control back); an `int 0x80` ends it too (a `not ok`: the kernel must
 * never see a system call from escaped code).
 *
 * The process, one at a time, all with the same pages:
 *   0x40000000  code (user, read-only): u_code below, written to run at this address
 *   0x40001000  data (user, writable): what to try (the D_ offsets below), results, buffers
 *   0x40002000  stack (user, writable)
 *   0x40003000  "gadget" page (user, read-only and executable)
 *   0x40004000  the same frame again (user, writable)
 * Escaped code needs a `syscall` instruction to call the host, and bt86 never runs a page
 * natively that holds its bytes (0F 05): u_code holds none (checked, together with
 * sysenter and cpuid, and a 0F at the end of the page).  So the process first runs the
 * gadget page while it holds only `ret` (bt86 maps it executable), then writes `syscall;
 * jmp *%rbp` into it through its writable alias, and only then far-jumps: the escaped
 * code calls the host through the gadget.  (On a PC this is just self-modifying code; it
 * is never run, since the far jump faults first.)  The 64-bit code does one thing, stores
 * RAX (the host call's result) in `result`, and executes ud2.
 *
 * The attempts (each a process; "no host call succeeded": `result` still holds its
 * sentinel, or a negative errno, -4095..-1):
 *   write(1) and write(2) of a message: to bt86's output and diagnostics (on the serial
 *     port's stream: the oracle's byte comparison with QEMU sees it, if it appears);
 *   ioctl(0, 1, 2, TIOCSTI): typing a character into a terminal;
 *   pread64(3..6) and mmap(3..6, MAP_SHARED) at the secret page's physical address: guest
 *     RAM through a descriptor of the host process (a successful mmap is read, too);
 *   mmap of anonymous RWX memory; mprotect of its own code page to RWX and a write there;
 *   mprotect of the kernel window's copy of the secret page (bt86's kernel window is host
 *     32 GiB + guest linear) and a write there; a plain read from that address;
 *   kill(SIGTERM) and tgkill(SIGTERM) of a pid that cannot exist (0x7ffffff0, above any
 *     pid_max: harmless where escaped code runs unconfined, where it fails with ESRCH, so
 *     only a sandbox that refuses the call itself is seen), and kill(getppid(), 0)
 *     (signal 0 sends nothing: it only asks whether it could);
 *     prlimit64 reading its own RLIMIT_NOFILE, and setting it for a pid that cannot
 *     exist; getppid;
 *   rt_sigprocmask blocking every signal, then an endless loop: the host's timer signal
 *     cannot stop it, yet the kernel must get control back;
 *   an endless 64-bit loop; ud2 at once; int 0x80 (the i386 system call) from 64-bit code;
 *   ljmp to 0x23 (the host's 32-bit code) then ud2, or then int 0x80; ljmp to 0x2b (the
 *     host's data segment: not code there either).
 * Two controls run first, 32-bit only: the same prelude then ud2 (stopped by #UD), and an
 * endless 32-bit loop (ended by the watchdog: the timer does preempt user code, so the
 * escaped loops test something).
 *
 * Output: one line per attempt, the same on a PC and in every mode of bt86: no vector,
 * error code or EIP is printed (a sandbox that catches escaped code delivers #GP later
 * than the far jump, at the first exit).  A `not ok` line says what went wrong.  With
 * "verbose", `# ` lines show how each process ended; `only=N` runs only attempt N (N as
 * numbered in a full run; to look at one escape at a time).
 *
 * Not tested: what escaped code could reach with more work than one call (finding the
 * host's own code, sysenter through the same kind of gadget); a malicious guest kernel.
 * Where escaped code runs unconfined, running this kernel changes the host process
 * (mappings, its own code page, the secret) but nothing outside it, and types a blank at
 * most (TIOCSTI, if standard input is a terminal: run it with stdin from /dev/null).
 */
#include "rt.h"
#include "user.h"

/* ---- layout ------------------------------------------------------------------------------- */
#define PG_P  0x001u
#define PG_W  0x002u
#define PG_U  0x004u
#define PG_PS 0x080u

#define UCODE  0x40000000    /* (no suffixes: the assembly uses these too)              */
#define UDATA  0x40001000
#define USTACK 0x40002000
#define UGX    0x40003000    /* the gadget frame, executable                             */
#define UGW    0x40004000    /* the same frame, writable                                 */
#define KWIN   0x800000000ull /* bt86's kernel window: host 32 GiB + guest linear        */

/* What the process is told to do (at UDATA; the assembly uses the D_ offsets). */
#define D_NR     0x00     /* u64: x86-64 system call number, or NO_CALL                  */
#define D_ARG    0x08     /* u64[6]: rdi rsi rdx r10 r8 r9 (for int 0x80: eax ebx ecx edx) */
#define D_THEN   0x38     /* u32: what to do after the call (T_...)                      */
#define D_ADDR   0x40     /* u64: the address T_WRITE and T_READ use                     */
#define D_RESULT 0x48     /* u64: RAX after the call (or what T_READ read)               */
#define D_LEAK   0x50     /* u64: what T_DEREF read through the returned address         */
#define D_HOW    0x58     /* u32: how the 32-bit code leaves (H_...)                     */
#define D_TOUCH  0x5c     /* u32: written first, so that the page is mapped writable     */
#define D_BUF    0x100    /* 256 bytes: buffers for the calls                            */
#define D_MSG    0x200    /* the message the writes try                                  */
#define D_CHAR   0x300    /* the character TIOCSTI tries to type                         */
#define D_MASK   0x308    /* u64: a signal mask with every signal                        */

#define NO_CALL  (~0ull)
#define SENTINEL 0x5e5e5e5e5e5e5e5eull

/* What the 64-bit code does after the call. */
#define T_NONE  0
#define T_DEREF 1     /* if the call returned an address, read a word there into D_LEAK */
#define T_WRITE 2     /* write "BAD!" at D_ADDR                                        */
#define T_READ  3     /* read a word at D_ADDR into D_RESULT                            */
#define T_KILL0 4     /* if the call returned a pid, kill(pid, 0)                       */
#define T_SPIN  5     /* loop forever                                                   */
#define T_INT80 6     /* int 0x80 with EAX..EDX = D_ARG[0..3]                           */
/* How the 32-bit code leaves. */
#define H_LJMP33       0   /* ljmp $0x33 to the 64-bit code                             */
#define H_LJMP23_UD2   1   /* ljmp $0x23 to ud2                                         */
#define H_LJMP23_INT80 2   /* ljmp $0x23 to int 0x80 with EAX..EDX = D_ARG[0..3]        */
#define H_LJMP2B       3   /* ljmp $0x2b to ud2                                         */
#define H_UD2          4   /* ud2 (a control)                                           */
#define H_SPIN         5   /* an endless loop (a control)                               */

/* x86-64 Linux system call numbers, and what they use. */
#define SYS_write          1
#define SYS_mmap           9
#define SYS_mprotect       10
#define SYS_rt_sigprocmask 14
#define SYS_ioctl          16
#define SYS_pread64        17
#define SYS_kill           62
#define SYS_getppid        110
#define SYS_tgkill         234
#define SYS_prlimit64      302
#define I386_write         4
#define TIOCSTI            0x5412
#define RLIMIT_NOFILE      7
#define SIGTERM            15
#define NO_PID             0x7ffffff0u   /* above any pid_max: cannot exist */

#define WATCHDOG 200      /* timer ticks (1 kHz) a process may run                        */

#define S_(x) #x
#define S(x) S_(x)

/* ==================================================================================== */
/* The user code: one page, run at UCODE (so it uses no symbol's address, only the     */
/* constants above and differences of its own labels).  It must hold no 0F 05, 0F 34,  */
/* 0F A2 (checked): immediates are built so that their bytes do not form them.         */
/* ==================================================================================== */
#define AT(label) "(" S(UCODE) " + (" #label " - u_code))"
asm(".pushsection .text.user, \"ax\"\n"
    ".balign 4096\n"
    ".globl u_code, u_code_end\n"
    "u_code:\n"
    ".code32\n"
    /* the prelude: touch the data page, run the gadget page while it is clean, then
       write the gadget (0F 05 FF E5: syscall; jmp *%rbp) through the writable alias */
    "\tmovl $" S(UDATA) ", %ebx\n"
    "\tmovl $1, " S(D_TOUCH) "(%ebx)\n"
    "\tmovl $" S(UGX) ", %eax\n"
    "\tcall *%eax\n"
    "\tmovl $0xe5ff050e, %eax\n"
    "\tincl %eax\n"
    "\tmovl %eax, " S(UGW) "\n"
    "\tmovl " S(D_HOW) "(%ebx), %eax\n"
    "\tcmpl $" S(H_LJMP33) ", %eax\n\tje 1f\n"
    "\tcmpl $" S(H_LJMP23_UD2) ", %eax\n\tje 2f\n"
    "\tcmpl $" S(H_LJMP23_INT80) ", %eax\n\tje 3f\n"
    "\tcmpl $" S(H_LJMP2B) ", %eax\n\tje 4f\n"
    "\tcmpl $" S(H_SPIN) ", %eax\n\tje 5f\n"
    "\tud2\n"                                   /* H_UD2: the control */
    "5:\tjmp 5b\n"                              /* H_SPIN: the other control */
    "1:\tljmp $0x33, $" AT(u64) "\n"
    "2:\tljmp $0x23, $" AT(u32_ud2) "\n"
    "3:\tljmp $0x23, $" AT(u32_int80) "\n"
    "4:\tljmp $0x2b, $" AT(u32_ud2) "\n"
    /* 32-bit code reached with a host selector in CS */
    "u32_ud2:\n"
    "\tud2\n"
    "u32_int80:\n"
    "\tmovl " S(D_ARG) "(%ebx), %eax\n"
    "\tmovl " S(D_ARG) "+16(%ebx), %ecx\n"
    "\tmovl " S(D_ARG) "+24(%ebx), %edx\n"
    "\tmovl " S(D_ARG) "+8(%ebx), %ebx\n"
    "\tint $0x80\n"
    "\tmovl $" S(UDATA) ", %ebx\n"
    "\tcltd\n"
    "\tmovl %eax, " S(D_RESULT) "(%ebx)\n"
    "\tmovl %edx, " S(D_RESULT) "+4(%ebx)\n"
    "\tud2\n"
    /* 64-bit code: one host call through the gadget, then what D_THEN says, then ud2 */
    ".code64\n"
    "u64:\n"
    "\tmovl $" S(UDATA) ", %ebx\n"
    "\tmovq " S(D_ARG) "(%rbx), %rdi\n"
    "\tmovq " S(D_ARG) "+8(%rbx), %rsi\n"
    "\tmovq " S(D_ARG) "+16(%rbx), %rdx\n"
    "\tmovq " S(D_ARG) "+24(%rbx), %r10\n"
    "\tmovq " S(D_ARG) "+32(%rbx), %r8\n"
    "\tmovq " S(D_ARG) "+40(%rbx), %r9\n"
    "\tmovq " S(D_NR) "(%rbx), %rax\n"
    "\tcmpq $-1, %rax\n"
    "\tje 2f\n"
    "\tmovl $" AT(1f) ", %ebp\n"
    "\tmovl $" S(UGX) ", %ecx\n"
    "\tjmp *%rcx\n"
    "1:\tmovq %rax, " S(D_RESULT) "(%rbx)\n"
    "2:\tmovl " S(D_THEN) "(%rbx), %ecx\n"
    "\tmovq " S(D_ADDR) "(%rbx), %rdx\n"
    "\tcmpl $" S(T_DEREF) ", %ecx\n\tje 3f\n"
    "\tcmpl $" S(T_WRITE) ", %ecx\n\tje 4f\n"
    "\tcmpl $" S(T_READ) ", %ecx\n\tje 5f\n"
    "\tcmpl $" S(T_KILL0) ", %ecx\n\tje 6f\n"
    "\tcmpl $" S(T_SPIN) ", %ecx\n\tje 7f\n"
    "\tcmpl $" S(T_INT80) ", %ecx\n\tje 8f\n"
    "\tud2\n"
    "3:\tcmpq $-4095, %rax\n"                    /* T_DEREF: read what mmap returned */
    "\tjae 9f\n"
    "\tmovq (%rax), %rax\n"
    "\tmovq %rax, " S(D_LEAK) "(%rbx)\n"
    "\tud2\n"
    "4:\tmovl $0x21444142, (%rdx)\n"            /* T_WRITE: "BAD!" */
    "\tud2\n"
    "5:\tmovq (%rdx), %rax\n"                   /* T_READ */
    "\tmovq %rax, " S(D_RESULT) "(%rbx)\n"
    "\tud2\n"
    "6:\tcmpq $-4095, %rax\n"                   /* T_KILL0: kill(rax, 0) */
    "\tjae 9f\n"
    "\tmovq %rax, %rdi\n"
    "\txorl %esi, %esi\n"
    "\tmovl $" S(SYS_kill) ", %eax\n"
    "\tmovl $" AT(10f) ", %ebp\n"
    "\tmovl $" S(UGX) ", %ecx\n"
    "\tjmp *%rcx\n"
    "10:\tmovq %rax, " S(D_RESULT) "(%rbx)\n"
    "\tud2\n"
    "7:\tjmp 7b\n"                              /* T_SPIN */
    "8:\tmovl " S(D_ARG) "(%rbx), %eax\n"       /* T_INT80: the i386 call, eax ebx ecx edx */
    "\tmovl " S(D_ARG) "+16(%rbx), %ecx\n"
    "\tmovl " S(D_ARG) "+24(%rbx), %edx\n"
    "\tmovl " S(D_ARG) "+8(%rbx), %ebx\n"
    "\tint $0x80\n"
    "\tmovl $" S(UDATA) ", %ebx\n"
    "\tmovq %rax, " S(D_RESULT) "(%rbx)\n"
    "9:\tud2\n"
    ".code32\n"
    "u_code_end:\n"
    ".balign 4096, 0xcc\n"
    ".popsection\n");
extern const uint8_t u_code[], u_code_end[];

/* ---- kernel data ---------------------------------------------------------------------- */
static uint32_t pd[1024] __attribute__((aligned(4096)));
static uint32_t upt[1024] __attribute__((aligned(4096)));
static uint8_t secret[4096] __attribute__((aligned(4096)));
static uint8_t f_data[4096] __attribute__((aligned(4096)));
static uint8_t f_stack[4096] __attribute__((aligned(4096)));
static uint8_t f_gadget[4096] __attribute__((aligned(4096)));

enum ended { END_NONE, END_EXCEPTION, END_WATCHDOG, END_SYSCALL, END_RETURNED };
static volatile uint32_t ended, end_vector, end_err, end_eip, end_cs, end_cr2, proc_ticks;

static uint32_t checksum(const volatile uint8_t *p)
{
    uint32_t h = FNV_INIT;
    for (int i = 0; i < 4096; i += 4)
        h = fnv32(h, *(const volatile uint32_t *)(p + i));
    return h;
}

/* Leaves CPL 3 for good: the interrupted process resumes at user_return (user.h), at
 * CPL 0, which restores the kernel's stack of user_enter. */
static void end_process(uint32_t *eip, uint32_t how)
{
    ended = how;
    eip[0] = (uint32_t)user_return;
    eip[1] = SEL_KCODE;
    eip[2] = 0x002;
}

static void on_fault(unsigned v, struct trap_frame *f, uint32_t *eip)
{
    int has_err = eip == &f->w[1];
    if ((eip[1] & 3) != 3)
        rt_bail("vector %u at CPL 0 (error 0x%x) at EIP 0x%08x", v, has_err ? f->w[0] : 0, eip[0]);
    end_vector = v;
    end_err = has_err ? f->w[0] : 0;
    end_eip = eip[0];
    end_cs = eip[1];
    end_cr2 = v == 14 ? read_cr2() : 0;
    end_process(eip, END_EXCEPTION);
}
#define HOOK(v) static void on_fault_##v(struct trap_frame *f, uint32_t *e) { on_fault(v, f, e); }
#define HOOKS(X) X(0) X(1) X(3) X(4) X(5) X(6) X(7) X(10) X(11) X(12) X(13) X(14) X(16) X(17) X(19)
HOOKS(HOOK)

static void on_timer(struct trap_frame *f, uint32_t *eip)
{
    rt_eoi(0);
    if ((eip[1] & 3) == 3 && ++proc_ticks > WATCHDOG) {
        end_cs = eip[1];
        end_eip = eip[0];
        end_process(eip, END_WATCHDOG);
    }
}

static void on_int80(struct trap_frame *f, uint32_t *eip)
{
    if ((eip[1] & 3) != 3)
        rt_bail("int 0x80 at CPL 0");
    end_cs = eip[1];
    end_eip = eip[0];
    end_process(eip, f->eax == 0 ? END_RETURNED : END_SYSCALL);
}

static void setup(void)
{
    user_setup();   /* TSS with ESP0, the DPL 3 gate for int 0x80; the hooks are replaced: */
#define SET(v) rt_set_hook(v, on_fault_##v);
    HOOKS(SET)
    rt_set_hook(0x80, on_int80);
    rt_set_hook(IRQ_BASE, on_timer);

    for (uint32_t i = 0; i < 4; i++)
        pd[i] = (i << 22) | PG_P | PG_W | PG_PS;
    pd[UCODE >> 22] = (uint32_t)upt | PG_P | PG_W | PG_U;
    upt[0] = (uint32_t)u_code | PG_P | PG_U;
    upt[1] = (uint32_t)f_data | PG_P | PG_W | PG_U;
    upt[2] = (uint32_t)f_stack | PG_P | PG_W | PG_U;
    upt[3] = (uint32_t)f_gadget | PG_P | PG_U;
    upt[4] = (uint32_t)f_gadget | PG_P | PG_W | PG_U;
    write_cr4(read_cr4() | CR4_PSE);
    write_cr3((uint32_t)pd);
    write_cr0(read_cr0() | CR0_PG | CR0_WP);

    outb(0x43, 0x34);                       /* PIT channel 0: mode 2, 1 kHz */
    outb(0x40, (1193182 / 1000) & 0xff);
    outb(0x40, (1193182 / 1000) >> 8);
    outb(0x21, inb(0x21) & ~1);             /* IRQ 0 on (taken only at CPL 3: IF = 1 there) */

    for (int i = 0; i < 4096; i++)          /* "SECRET!!" then a pattern */
        secret[i] = i < 8 ? (uint8_t)"SECRET!!"[i] : (uint8_t)(i * 7 + 0x5a);
}

struct attempt {
    const char *what;
    uint32_t how;           /* H_...: how the 32-bit code leaves (H_LJMP33 by default) */
    uint64_t nr;            /* the host call; NO_CALL for none (0 is read: never wanted) */
    uint64_t a[6];
    uint32_t then;
    uint64_t addr;
    uint32_t expect_end;    /* END_EXCEPTION by default (0: see run) */
};

static const char MSG[] = "escape: escaped guest code wrote this through the host\n";

/* Runs one process; returns how it ended. */
static uint32_t run(const struct attempt *at)
{
    volatile uint8_t *d = f_data;
    memset(f_data, 0, sizeof f_data);
    memset(f_stack, 0, sizeof f_stack);
    memset(f_gadget, 0xc3, sizeof f_gadget);   /* ret */
    *(volatile uint64_t *)(d + D_NR) = at->nr;
    for (int i = 0; i < 6; i++)
        *(volatile uint64_t *)(d + D_ARG + 8 * i) = at->a[i];
    *(volatile uint32_t *)(d + D_THEN) = at->then;
    *(volatile uint64_t *)(d + D_ADDR) = at->addr;
    *(volatile uint64_t *)(d + D_RESULT) = SENTINEL;
    *(volatile uint64_t *)(d + D_LEAK) = SENTINEL;
    *(volatile uint32_t *)(d + D_HOW) = at->how;
    memcpy(f_data + D_MSG, MSG, sizeof MSG);
    d[D_CHAR] = ' ';
    *(volatile uint64_t *)(d + D_MASK) = ~0ull;

    ended = END_NONE;
    end_vector = end_err = end_eip = end_cs = end_cr2 = 0;
    proc_ticks = 0;
    write_cr3((uint32_t)pd);                   /* a new process: flush the TLB */
    user_stack_top = USTACK + 4096;
    user_enter((void (*)(void))UCODE);
    rt_diag("%s: ended %u, vector %u error 0x%x at %04x:%08x, CR2 0x%08x, result 0x%llx, leak 0x%llx",
            at->what, ended, end_vector, end_err, end_cs, end_eip, end_cr2,
            *(volatile uint64_t *)(d + D_RESULT), *(volatile uint64_t *)(d + D_LEAK));
    return ended;
}

static const char *describe_end(uint32_t e)
{
    switch (e) {
    case END_EXCEPTION: return "stopped by an exception";
    case END_WATCHDOG: return "still running after " S(WATCHDOG) " timer ticks (ended by the kernel's watchdog)";
    case END_SYSCALL: return "made a system call to the guest kernel (int 0x80) instead of faulting";
    case END_RETURNED: return "returned to the kernel normally";
    default: return "ended in no known way";
    }
}

static uint32_t secret_sum, code_sum;
static unsigned only, number;

static void attempt(struct attempt at)
{
    number++;
    if (only && number != only)
        return;
    uint32_t e = run(&at);
    uint64_t r = *(volatile uint64_t *)(f_data + D_RESULT);
    int64_t sr = (int64_t)r;
    int ended_ok = e == END_EXCEPTION;
    int result_ok = r == SENTINEL || (sr >= -4095 && sr <= -1);
    int secret_ok = checksum(secret) == secret_sum;
    int code_ok = checksum(u_code) == code_sum;

    tap_count++;
    if (ended_ok && result_ok && secret_ok && code_ok) {
        rt_printf("ok %u - %s: process stopped by an exception, no host call succeeded, kernel memory intact\n",
                  tap_count, at.what);
        return;
    }
    tap_failed++;
    rt_printf("not ok %u - %s:", tap_count, at.what);
    const char *sep = " ";
    if (!ended_ok) {
        rt_printf("%sthe process %s", sep, describe_end(e));
        sep = "; ";
    }
    if (!result_ok) {
        rt_printf("%s%s 0x%llx, not an error", sep, at.then == T_READ ? "the read got" : "the host call returned", r);
        sep = "; ";
    }
    if (!secret_ok) {
        rt_printf("%sthe kernel's secret page changed", sep);
        sep = "; ";
    }
    if (!code_ok)
        rt_printf("%sthe process's read-only code page changed", sep);
    rt_printf("\n");
    /* The next attempts are judged on their own. */
    secret_sum = checksum(secret);
    code_sum = checksum(u_code);
}

static void control(const char *what, uint32_t how, uint32_t want_end, uint32_t want_vector)
{
    number++;
    if (only)
        return;
    struct attempt at = { .what = what, .how = how, .nr = NO_CALL };
    uint32_t e = run(&at);
    if (!ok(e == want_end && (e != END_EXCEPTION || end_vector == want_vector), "%s", what))
        rt_printf("# the process %s (vector %u)\n", describe_end(e), end_vector);
}

/* The user code page must run natively under bt86: no instruction it never runs natively. */
static int never_native_free(const uint8_t *p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (p[i] == 0x0f && (i + 1 == n || p[i + 1] == 0x05 || p[i + 1] == 0x34 || p[i + 1] == 0xa2))
            return 0;
    return 1;
}

static unsigned parse_only(void)
{
    const char *s = rt_cmdline();
    for (; *s; s++) {
        if (!strncmp(s, "only=", 5) && (s == rt_cmdline() || s[-1] == ' ')) {
            unsigned n = 0;
            for (s += 5; *s >= '0' && *s <= '9'; s++)
                n = n * 10 + (unsigned)(*s - '0');
            return n;
        }
    }
    return 0;
}

void test_main(void)
{
    only = parse_only();
    int gdt_ok = 1;
    for (int i = 4; i <= 6; i++)
        gdt_ok &= ((rt_gdt[i] >> 40) & 0x18) != 0x18;   /* S = 1 and code: not wanted */
    ok(gdt_ok, "GDT entries 4-6 (selectors 0x23, 0x2b, 0x33) are not code segments");
    ok(never_native_free(u_code, 4096) && u_code_end - u_code <= 4096,
       "the user code page holds no syscall, sysenter or cpuid bytes (bt86 runs it natively)");

    number = tap_count;   /* attempts are numbered as their TAP lines in a full run */
    setup();
    secret_sum = checksum(secret);
    code_sum = checksum(u_code);

    control("control: the prelude, then ud2 at CPL 3: stopped by #UD", H_UD2, END_EXCEPTION, 6);
    control("control: an endless 32-bit loop at CPL 3: the timer preempts it, the watchdog ends it", H_SPIN,
            END_WATCHDOG, 0);

    const uint64_t msg = UDATA + D_MSG, buf = UDATA + D_BUF, n = sizeof MSG - 1;
    const uint64_t phys = (uint32_t)secret, kwin = KWIN + (uint32_t)secret;
    attempt((struct attempt){ "write(1, msg) to bt86's standard output", .nr = SYS_write, .a = { 1, msg, n } });
    attempt((struct attempt){ "write(2, msg) to bt86's standard error", .nr = SYS_write, .a = { 2, msg, n } });
    for (uint64_t fd = 0; fd <= 2; fd++)
        attempt((struct attempt){ fd == 0   ? "ioctl(0, TIOCSTI, \" \"): type into a terminal"
                                  : fd == 1 ? "ioctl(1, TIOCSTI, \" \"): type into a terminal"
                                            : "ioctl(2, TIOCSTI, \" \"): type into a terminal",
                                  .nr = SYS_ioctl, .a = { fd, TIOCSTI, UDATA + D_CHAR } });
    static const char *const pread_what[] = {
        "pread64(3) of the secret page's guest-physical address", "pread64(4) of the secret page's guest-physical address",
        "pread64(5) of the secret page's guest-physical address", "pread64(6) of the secret page's guest-physical address",
    };
    static const char *const mmap_what[] = {
        "mmap(fd 3, MAP_SHARED) of the secret page's guest-physical address, then read it",
        "mmap(fd 4, MAP_SHARED) of the secret page's guest-physical address, then read it",
        "mmap(fd 5, MAP_SHARED) of the secret page's guest-physical address, then read it",
        "mmap(fd 6, MAP_SHARED) of the secret page's guest-physical address, then read it",
    };
    for (uint64_t fd = 3; fd <= 6; fd++)
        attempt((struct attempt){ pread_what[fd - 3], .nr = SYS_pread64, .a = { fd, buf, 64, phys } });
    for (uint64_t fd = 3; fd <= 6; fd++)
        attempt((struct attempt){ mmap_what[fd - 3], .nr = SYS_mmap, .a = { 0, 4096, 1 /* PROT_READ */, 1 /* MAP_SHARED */, fd, phys },
                                  .then = T_DEREF });
    attempt((struct attempt){ "mmap of anonymous read-write-execute memory", .nr = SYS_mmap,
                              .a = { 0, 4096, 7, 0x22 /* MAP_PRIVATE | MAP_ANONYMOUS */, ~0ull, 0 } });
    attempt((struct attempt){ "mprotect(own code page, RWX), then write to it", .nr = SYS_mprotect,
                              .a = { UCODE, 4096, 7 }, .then = T_WRITE, .addr = UCODE + 4092 });
    attempt((struct attempt){ "mprotect(host 32 GiB + the secret page, RW), then write to it", .nr = SYS_mprotect,
                              .a = { kwin, 4096, 3 }, .then = T_WRITE, .addr = kwin });
    attempt((struct attempt){ "read host 32 GiB + the secret page (bt86's kernel window)", .nr = NO_CALL, .then = T_READ,
                              .addr = kwin });
    attempt((struct attempt){ "kill(a pid that cannot exist, SIGTERM)", .nr = SYS_kill, .a = { NO_PID, SIGTERM } });
    attempt((struct attempt){ "tgkill(a pid that cannot exist, SIGTERM)", .nr = SYS_tgkill, .a = { NO_PID, NO_PID, SIGTERM } });
    attempt((struct attempt){ "getppid, then kill(the parent, 0)", .nr = SYS_getppid, .then = T_KILL0 });
    attempt((struct attempt){ "prlimit64(0, RLIMIT_NOFILE) read", .nr = SYS_prlimit64, .a = { 0, RLIMIT_NOFILE, 0, buf } });
    attempt((struct attempt){ "prlimit64(a pid that cannot exist, RLIMIT_NOFILE) set", .nr = SYS_prlimit64,
                              .a = { NO_PID, RLIMIT_NOFILE, buf, 0 } });
    attempt((struct attempt){ "getppid", .nr = SYS_getppid });
    attempt((struct attempt){ "rt_sigprocmask(block every signal), then an endless loop", .nr = SYS_rt_sigprocmask,
                              .a = { 0 /* SIG_BLOCK */, UDATA + D_MASK, 0, 8 }, .then = T_SPIN });
    attempt((struct attempt){ "an endless 64-bit loop", .nr = NO_CALL, .then = T_SPIN });
    attempt((struct attempt){ "ud2 in 64-bit mode", .nr = NO_CALL });
    attempt((struct attempt){ "int 0x80 write(1, msg) from 64-bit mode", .nr = NO_CALL, .then = T_INT80,
                              .a = { I386_write, 1, msg, n } });
    attempt((struct attempt){ "ljmp to 0x23 (the host's 32-bit code), then ud2", .how = H_LJMP23_UD2, .nr = NO_CALL });
    attempt((struct attempt){ "ljmp to 0x23, then int 0x80 write(1, msg)", .how = H_LJMP23_INT80, .nr = NO_CALL,
                              .a = { I386_write, 1, msg, n } });
    attempt((struct attempt){ "ljmp to 0x2b (the host's user data selector)", .how = H_LJMP2B, .nr = NO_CALL });
    tap_done();
}
