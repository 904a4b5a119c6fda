/*
 * userprocs - a toy multi-process kernel: what a VMM that runs guest user code directly
 * must get right.
 *
 * The kernel.  Its GDT follows Linux's where the runtime leaves room: kernel code 0x60 and
 * data 0x68 (SYSENTER_CS and SYSENTER_CS + 8, in the runtime's LDT and TSS slots, unused
 * here), user code 0x73 and data 0x7b (SYSENTER_CS + 16 / + 24, RPL 3), the TSS at 0x80
 * (SS0:ESP0 = 0x68:kstack), and two DPL 3 TLS descriptors, 0x8b for %gs and 0x93 for %fs,
 * rewritten with the running process's bases at every switch (accessed bit clear).  The
 * IDT's gates use 0x60; int 0x80 is a DPL 3 trap gate (so the timer can interrupt a system
 * call; the kernel then switches on the way out), int3 and into have DPL 3 interrupt gates.
 * Paging: 0-16 MiB identity-mapped by 4 MiB supervisor pages (global if CPUID has PGE), one
 * supervisor page of kernel data at 0xC0000000 through a page table every address space
 * shares (getpid reads the current pid there), CR0.WP = 1.  The PIT (channel 0, 1 kHz)
 * preempts user code: the timer handler saves the user state, picks the next process round
 * robin and loads its registers, CR3 and TLS descriptors.  System calls by int 0x80 or by
 * sysenter (SYSENTER_CS/ESP/EIP MSRs; back by sysexit with EDX = EIP, ECX = ESP, or by iret
 * when the call switched processes), Linux's numbers: exit, read, write, getpid,
 * sched_yield, set_thread_area (simplified: slot, base -> selector).  A buffer is checked
 * against the current page tables (present, user, and writable for read()) before the
 * kernel touches it.  An exception at CPL 3 kills the process (the kernel records vector,
 * error code, EIP, CS and CR2) and the others go on; #BP and #OF are recorded and resumed.
 *
 * The processes, 33, each with its own page directory and frames behind the same user
 * layout: the user image (userprocs.ld links it at 0x08048000 for code and read-only data
 * and at 0x40000000 for data, as an i386 executable; each process gets its own copies, and
 * the immediate of `mov $imm, %eax` at u_tag is patched to its pid), TLS blocks at
 * 0x40007000, a read-only "kinfo" page at 0x40008000 (pid, role, timer preemptions so far),
 * nothing at 0x40009000 nor 0x50000000, two stack pages below 0xC0000000, and at 0xffffe000
 * a vDSO page (one frame shared by all, user read-only: the sysenter stub, as Linux 2.6's
 * vsyscall page).  Each starts through an iret with the kernel's values in EAX..EBP, ESP,
 * EFLAGS 0xad7 (IF, the arithmetic flags), CS 0x73, SS = DS = ES = 0x7b, FS = GS = 0.
 *
 *   pid 1 alpha, pid 2 beta: record the entry state (registers, EFLAGS, and the selectors
 *     as a system call's frame shows them), pushf (IF = 1, IOPL = 0), getpid via int 0x80
 *     and via sysenter, run u_tag (their own code); set up two TLS blocks (self-pointer at
 *     offset 0 as glibc's tcbhead, the pid at 4) with set_thread_area and load the
 *     selectors themselves (mov $0x8b, %ax; mov %ax, %gs; the same with 0x93 and %fs); a
 *     compute loop of 2^21 rounds with incl %gs:8 and addl to %fs:8 in each, checking the
 *     TLS words, %gs/%fs (through a system call) and u_tag every 4096 rounds, yielding every quarter
 *     (alpha's system calls use int 0x80, beta's sysenter), long enough to be preempted
 *     several times; then, bounded, until the timer has preempted them 3 times; write their
 *     checksum, exit.  The kernel checks checksum, counters, TLS words and selectors.  Before
 *     and after the computation they run cpuid (leaves 0, 1, 7, 0x80000000-2) from a code
 *     page of its own; the kernel checks that user mode saw what its own cpuid answers.
 *   pid 3 gamma: registers and flags kept by int 0x80 and by sysenter/sysexit through the
 *     vDSO stub (push ecx, edx, ebp; mov esp, ebp; sysenter; the landing pad pops them);
 *     write() from its read-only code pages, from the kernel image and 0xC0000000, from a
 *     range running into an unmapped page, of 0 bytes, with a length that wraps, to a bad
 *     fd; read() into its data, into its code, into the read-only kinfo page, into a range
 *     running into it, into the kernel; int3 (0xcc), int $3 (0xcd 03), into with OF = 0 and
 *     with OF = 1 (vector, EIP after the instruction, registers kept); a new TLS base from
 *     set_thread_area in %gs as soon as the call returns (the kernel pops %gs); the TLS
 *     descriptor's accessed bit set by the user's own load; yield both ways; ENOSYS; code
 *     it writes into a data page and runs: rewritten, with cpuid, storing into its own page.
 *   pids 4-33, one forbidden thing each, killed with the right vector, error code, EIP and
 *     CR2: cli, hlt, in, out to the isa-debug-exit port, mov from CR3, wrmsr, sysexit
 *     (#GP(0)); loads of the kernel's data selectors into DS and SS and of the TSS selector
 *     into ES, a far jmp / far call to the kernel's code segments, iret to CPL 0, int $0x30
 *     through a DPL 0 gate (#GP(selector), #GP(0x182)); reads of the kernel image and of
 *     0xC0000000, writes to a kernel variable, to its own code, to the kinfo page and to
 *     the vDSO page (#PF, error 5 / 7); reads, writes and a call to unmapped addresses, a
 *     jump into the kernel's code, a push below its stack (#PF 4 / 5 / 6 with CR2); div by
 *     zero, INT_MIN / -1 (#DE); ud2 (#UD); bound (#BR); syscall (#UD: the CPU has no SYSCALL,
 *     whatever the host does with it in compatibility mode).
 *
 * Output is deterministic: what the processes write() is buffered per process and printed
 * at the end in pid order (as "# pid N: ..." lines, always, not only with "verbose"); every
 * check is made by the kernel once all processes are gone, on what they left in their own
 * frames (their results at the same user address, 0x40000000, read through each process's
 * page tables).  No tick or preemption counts are printed ("verbose" prints them as "# "
 * lines).
 *
 * Not tested: x87/SSE state (not switched; the processes use none); the I/O bitmap and
 * LDTs (usermode and segments test them); %gs:0 with a null %gs, which must raise #GP(0)
 * but reads linear address 0 under QEMU's TCG, which does not check null selectors (nor
 * segment limits) on data accesses.
 */
#include "rt.h"

/* ---- selectors ---------------------------------------------------------------------------- */
#define KCS     0x60    /* GDT 12: flat code, DPL 0: SYSENTER_CS                     */
#define KDS     0x68    /* GDT 13: flat data, DPL 0: SYSENTER_CS + 8                 */
#define UCS     0x73    /* GDT 14: the runtime's SEL_CODE3: SYSENTER_CS + 16, RPL 3  */
#define UDS     0x7b    /* GDT 15: flat data, DPL 3: SYSENTER_CS + 24, RPL 3         */
#define TSSSEL  0x80    /* GDT 16: the TSS                                            */
#define GS_TLS  0x8b    /* GDT 17: TLS for %gs, DPL 3, the running process's base     */
#define FS_TLS  0x93    /* GDT 18: TLS for %fs                                        */
_Static_assert(UCS == (SEL_CODE3 | 3), "user code is the runtime's DPL 3 code descriptor");

/* ---- memory layout ------------------------------------------------------------------------- */
#define PG_P  0x001u
#define PG_W  0x002u
#define PG_U  0x004u
#define PG_PS 0x080u
#define PG_G  0x100u
#define KMAP_END    0x01000000u   /* 0-16 MiB: the kernel's RAM, identity, supervisor    */
#define FRAMES      0x00400000u   /* where frames are allocated from                     */
#define UTLS        0x40007000u   /* TLS blocks                                          */
#define UKINFO      0x40008000u   /* kinfo, user read-only                               */
#define UGUARD      0x40009000u   /* not mapped (the page table is there)                */
#define UNOPDE      0x50000000u   /* not mapped (no page table)                          */
#define USTACK_TOP  0xc0000000u   /* two stack pages below                               */
#define KHIGH       0xc0000000u   /* kernel data, supervisor, shared by every space      */
#define UVDSO       0xffffe000u   /* the system call stub: one frame, user read-only     */

/* ---- system calls (Linux's numbers; set_thread_area simplified) -------------------------- */
#define SYS_exit            1
#define SYS_read            3
#define SYS_write           4
#define SYS_getpid          20
#define SYS_sched_yield     158
#define SYS_set_thread_area 243     /* (slot 0 = %gs / 1 = %fs, base) -> selector      */
#define SYS_tls_access      500     /* private: the %gs TLS descriptor's access byte   */
#define SYS_segs            501     /* private: (ptr) -> gs << 16 | fs as the kernel sees
                                       them; with ptr (int 0x80 only), also stores CS, SS,
                                       DS, ES, FS, GS there                              */
#define EBADF  9
#define EFAULT 14
#define EINVAL 22
#define ENOSYS 38

#define NITER (1u << 21)            /* compute rounds of alpha and beta                 */
#define WANT_PREEMPTS 3
#define SPIN_LIMIT 30000000u        /* bound on the wait for preemptions                */
#define ENTRY_EFLAGS 0x0ad7u        /* CF PF AF ZF SF OF, IF, bit 1                     */

enum { ROLE_ALPHA = 1, ROLE_BETA, ROLE_GAMMA, ROLE_VICTIM };

struct kinfo {                      /* the read-only page at UKINFO                      */
    uint32_t pid, role, preempts;
};

/* What a process leaves in its data (at the same user address in every process). */
struct ures {
    uint32_t entry[15];             /* at u_start: eax ebx ecx edx esi edi ebp esp eflags
                                       cs ss ds es fs gs (the selectors as 16-bit stores) */
    uint32_t getpid80, getpidse, tag, pushf;
    uint32_t gs_sel, fs_sel, gs_self, fs_self, gs_pid, fs_pid;
    uint32_t tls_bad, sel_bad, tag_bad, sum, fs_sum, gs_count, ds_count, gs_after, preempted;
    uint32_t loop_preempts, spins;  /* for "verbose" diagnostics only: timing-dependent */
    /* gamma */
    uint32_t regs80[8], regsse[8];  /* eax ebx ecx edx esi edi ebp eflags after the call */
    uint32_t wr[8], rd[5];
    char rdbuf[32];
    uint32_t trapv[3];              /* eax after int3 and int $3, ebx after into         */
    uint32_t tls_first, tls_access, tls_new, tls_new_sel;
    uint32_t yield80, yieldse, enosys;
    /* alpha and beta: CPUID leaves 0, 1, 7, 0x80000000-2 in user mode, before and after
       their long computation */
    uint32_t cpuid_before[6][4], cpuid_after[6][4];
    uint32_t jit[4];                /* gamma: what the code it wrote returned            */
};

/* ==================================================================================== */
/* The user image: runs at CPL 3, in each process's copy.  Everything it uses must be  */
/* in these sections (no calls into the kernel's runtime, no string literals, no      */
/* switch tables: they would land in the kernel's supervisor pages).                    */
/* ==================================================================================== */
#define UTEXT __attribute__((section(".utext"), noinline, optimize("no-tree-loop-distribute-patterns")))
#define UDATA __attribute__((section(".udata")))
#define UINL static inline __attribute__((always_inline))
#define USTR(s) ({ static const char _s[] __attribute__((section(".urodata"))) = s; _s; })

struct ures ures UDATA;
/* gamma writes code here and runs it (a page of its own, user-writable and executable). */
static uint8_t u_jit[4096] __attribute__((section(".udata"), aligned(4096)));
/* The bytes of cpuid, from data: as immediates in gamma's code they could put 0F A2 on the
 * page (`mov $0xf, %al; mov %al, addr` is b0 0f a2 ...), which would make bt86 translate
 * the whole page instead of running it natively. */
static volatile uint8_t u_cpuid_op[2] UDATA = { 0x0f, 0xa2 };
uint32_t u_regs[8] UDATA;
static char u_line[64] UDATA;

extern char u_start[], u_tag_imm[], u_vsyscall[], u_sysenter_return[];
extern char u_int3_next[], u_int3b_next[], u_into_next[], v_survived[];
uint32_t u_tag(void);
void u_regs80(void);
void u_regsse(void);
void u_traps(void);

/* One round of alpha's and beta's computation (the kernel repeats it to know their
 * results). */
UINL uint32_t mix(uint32_t h, uint32_t i)
{
    h ^= i * 0x9e3779b9u;
    h *= 0x01000193u;
    return (h << 7) | (h >> 25);
}

UINL uint32_t sc80(uint32_t nr, uint32_t a, uint32_t b, uint32_t c)
{
    uint32_t r;
    asm volatile("int $0x80" : "=a"(r) : "0"(nr), "b"(a), "c"(b), "d"(c) : "memory", "cc");
    return r;
}

UINL uint32_t scse(uint32_t nr, uint32_t a, uint32_t b, uint32_t c)
{
    uint32_t r;
    asm volatile("call u_vsyscall" : "=a"(r) : "0"(nr), "b"(a), "c"(b), "d"(c) : "memory", "cc");
    return r;
}

UINL uint32_t usys(int se, uint32_t nr, uint32_t a, uint32_t b, uint32_t c)
{
    return se ? scse(nr, a, b, c) : sc80(nr, a, b, c);
}

UINL uint32_t u_pushf(void)
{
    uint32_t f;
    asm volatile("pushfl; popl %0" : "=r"(f));
    return f;
}

UTEXT static uint32_t u_strlen(const char *s)
{
    uint32_t n = 0;
    while (s[n])
        n++;
    return n;
}

UTEXT static char *u_cat(char *p, const char *s)
{
    while (*s)
        *p++ = *s++;
    return p;
}

UTEXT static char *u_hex(char *p, uint32_t v)
{
    *p++ = '0';
    *p++ = 'x';
    for (int i = 28; i >= 0; i -= 4) {
        uint32_t d = (v >> i) & 15;
        *p++ = (char)(d < 10 ? '0' + d : 'a' + d - 10);
    }
    return p;
}

UTEXT static void u_puts(int se, const char *s)
{
    usys(se, SYS_write, 1, (uint32_t)s, u_strlen(s));
}

/* The TLS words as they must be; returns the number that are not. */
UINL uint32_t tls_bad(uint32_t gsb, uint32_t fsb, uint32_t pid)
{
    uint32_t a, b, c, d;
    asm volatile("movl %%gs:0, %0\n\tmovl %%fs:0, %1" : "=r"(a), "=r"(b));
    asm volatile("movl %%gs:4, %0\n\tmovl %%fs:4, %1" : "=r"(c), "=r"(d));
    return (a != gsb) + (b != fsb) + (c != pid) + (d != ~pid);
}

/* Whether %gs and %fs hold the selectors loaded into them, as the kernel sees them at a
 * system call.  (Not read with mov from a segment register: a VMM that runs user code
 * natively without owning the GDT, as bt86 does, shows user code its own selector values
 * there.) */
UINL uint32_t sel_bad(int se)
{
    uint32_t v = usys(se, SYS_segs, 0, 0, 0);
    return ((v >> 16) != GS_TLS) + ((v & 0xffff) != FS_TLS);
}

/* CPUID at CPL 3, from a page of its own (.utext.nonnative, with the syscall victim: under
 * bt86 a page holding an instruction the host would run differently runs translated): a program that picks its code by
 * what CPUID says (glibc's string functions) must see the same CPU however its code runs;
 * the rest of the image runs natively meanwhile under bt86. */
UINL void u_cpuid1(uint32_t leaf, uint32_t *o)
{
    asm volatile("cpuid" : "=a"(o[0]), "=b"(o[1]), "=c"(o[2]), "=d"(o[3]) : "a"(leaf), "c"(0));
}
__attribute__((section(".utext.nonnative"), noinline)) void u_cpuid_all(uint32_t o[6][4])
{
    u_cpuid1(0, o[0]);
    u_cpuid1(1, o[1]);
    u_cpuid1(7, o[2]);
    u_cpuid1(0x80000000u, o[3]);
    u_cpuid1(0x80000001u, o[4]);
    u_cpuid1(0x80000002u, o[5]);
}

/* alpha and beta: TLS, a long computation, preemption, output. */
UTEXT static uint32_t u_compute(uint32_t pid, int se, uint32_t seed, const char *name)
{
    volatile struct kinfo *ki = (volatile struct kinfo *)UKINFO;
    uint32_t gsb = UTLS + pid * 0x40, fsb = UTLS + 0x800 + pid * 0x40;
    volatile uint32_t *g = (volatile uint32_t *)gsb, *f = (volatile uint32_t *)fsb;
    g[0] = gsb; g[1] = pid; g[2] = 0;                /* glibc's tcbhead: self-pointer first */
    f[0] = fsb; f[1] = ~pid; f[2] = 0;
    ures.gs_sel = usys(se, SYS_set_thread_area, 0, gsb, 0);
    ures.fs_sel = usys(se, SYS_set_thread_area, 1, fsb, 0);
    asm volatile("movw $0x8b, %%ax\n\tmovw %%ax, %%gs" ::: "eax");
    asm volatile("movw $0x93, %%ax\n\tmovw %%ax, %%fs" ::: "eax");
    asm volatile("movl %%gs:0, %0" : "=r"(ures.gs_self));
    asm volatile("movl %%fs:0, %0" : "=r"(ures.fs_self));
    asm volatile("movl %%gs:4, %0" : "=r"(ures.gs_pid));
    asm volatile("movl %%fs:4, %0" : "=r"(ures.fs_pid));

    u_cpuid_all(ures.cpuid_before);
    uint32_t h = seed, bad = 0, sbad = 0, tbad = 0, tag = pid * 0x01010101u;
    for (uint32_t i = 0; i < NITER; i++) {
        h = mix(h, i);
        asm volatile("incl %%gs:8\n\taddl %0, %%fs:8" :: "r"(h & 0xff) : "memory", "cc");
        if ((i & 0xfff) == 0) {
            bad += tls_bad(gsb, fsb, pid);
            sbad += sel_bad(se);
            tbad += u_tag() != tag;
        }
        if ((i & (NITER / 4 - 1)) == NITER / 4 - 1 && i != NITER - 1)
            usys(se, SYS_sched_yield, 0, 0, 0);
    }
    ures.loop_preempts = ki->preempts;
    uint32_t spins = 0;
    while (ki->preempts < WANT_PREEMPTS && spins < SPIN_LIMIT) {
        spins++;
        if ((spins & 0xfff) == 0) {
            bad += tls_bad(gsb, fsb, pid);
            sbad += sel_bad(se);
            tbad += u_tag() != tag;
        }
    }
    ures.preempted = ki->preempts >= WANT_PREEMPTS;
    ures.spins = spins;
    u_cpuid_all(ures.cpuid_after);
    bad += tls_bad(gsb, fsb, pid);
    sbad += sel_bad(se);
    ures.tls_bad = bad;
    ures.sel_bad = sbad;
    ures.tag_bad = tbad;
    ures.sum = h;
    asm volatile("movl %%gs:8, %0" : "=r"(ures.gs_count));
    asm volatile("movl %%fs:8, %0" : "=r"(ures.fs_sum));
    ures.ds_count = g[2];
    ures.gs_after = usys(se, SYS_segs, 0, 0, 0) >> 16;

    char *p = u_cat(u_line, name);
    p = u_cat(p, USTR(": sum "));
    p = u_hex(p, h);
    *p++ = '\n';
    *p = 0;
    u_puts(se, u_line);
    return 0x40 + pid;
}

UTEXT static uint32_t u_gamma(uint32_t pid)
{
    /* registers and flags across the two kinds of system call */
    u_regs80();
    for (int i = 0; i < 8; i++)
        ures.regs80[i] = u_regs[i];
    u_regsse();
    for (int i = 0; i < 8; i++)
        ures.regsse[i] = u_regs[i];

    /* write(): copy_from_user's checks */
    const char *m1 = USTR("gamma: hello via int 0x80\n"), *m2 = USTR("gamma: hello via sysenter\n");
    ures.wr[0] = sc80(SYS_write, 1, (uint32_t)m1, u_strlen(m1));
    ures.wr[1] = scse(SYS_write, 1, (uint32_t)m2, u_strlen(m2));
    ures.wr[2] = sc80(SYS_write, 1, 0x00100000, 16);            /* the kernel image    */
    ures.wr[3] = scse(SYS_write, 1, KHIGH, 16);                 /* kernel data         */
    ures.wr[4] = sc80(SYS_write, 1, UKINFO + 0xff8, 16);        /* into UGUARD         */
    ures.wr[5] = sc80(SYS_write, 1, (uint32_t)m1, 0);           /* nothing             */
    ures.wr[6] = sc80(SYS_write, 1, (uint32_t)m1, 0xfffffff0u); /* wraps around        */
    ures.wr[7] = sc80(SYS_write, 2, (uint32_t)m1, 4);           /* no such fd          */
    /* read(): copy_to_user's checks */
    ures.rd[0] = sc80(SYS_read, 0, (uint32_t)ures.rdbuf, sizeof ures.rdbuf - 1);
    ures.rd[1] = sc80(SYS_read, 0, (uint32_t)u_start, 4);       /* own code: read-only */
    ures.rd[2] = scse(SYS_read, 0, UKINFO, 4);                  /* read-only           */
    ures.rd[3] = sc80(SYS_read, 0, UTLS + 0xff8, 16);           /* runs into UKINFO    */
    ures.rd[4] = scse(SYS_read, 0, 0x00200000, 4);              /* the kernel's        */
    char *p = u_cat(u_line, USTR("gamma: read "));
    p = u_cat(p, ures.rdbuf);
    *p = 0;
    u_puts(0, u_line);

    /* int3, int $3, into */
    u_traps();
    for (int i = 0; i < 3; i++)
        ures.trapv[i] = u_regs[i];

    /* TLS: a new base takes effect when the system call returns */
    uint32_t a = UTLS + pid * 0x40, b = UTLS + 0x400 + pid * 0x40;
    ((volatile uint32_t *)a)[0] = a;
    ((volatile uint32_t *)b)[0] = b;
    ures.gs_sel = sc80(SYS_set_thread_area, 0, a, 0);
    asm volatile("movw $0x8b, %%ax\n\tmovw %%ax, %%gs" ::: "eax");
    asm volatile("movl %%gs:0, %0" : "=r"(ures.tls_first));
    ures.tls_access = sc80(SYS_tls_access, 0, 0, 0);
    ures.tls_new_sel = scse(SYS_set_thread_area, 0, b, 0);
    asm volatile("movl %%gs:0, %0" : "=r"(ures.tls_new));

    ures.yield80 = sc80(SYS_sched_yield, 0, 0, 0);
    ures.yieldse = scse(SYS_sched_yield, 0, 0, 0);
    ures.enosys = sc80(0x7777, 0, 0, 0);

    /* Code written at run time: it runs, runs again as rewritten, cpuid in it answers as
     * the kernel's does, and a store into its own page completes. */
    volatile uint8_t *j = u_jit;
    uint32_t (*jit)(void) = (uint32_t (*)(void))u_jit;
    uint32_t at = (uint32_t)u_jit + 2048;
    j[0] = 0xb8; j[1] = j[2] = j[3] = j[4] = 0x11; j[5] = 0xc3;         /* mov $0x11111111, %eax; ret */
    asm volatile("" ::: "memory");
    ures.jit[0] = jit();
    j[1] = j[2] = j[3] = j[4] = 0x22;                                   /* mov $0x22222222, %eax */
    asm volatile("" ::: "memory");
    ures.jit[1] = jit();
    j[0] = 0x53; j[1] = 0xb8; j[2] = 1; j[3] = j[4] = j[5] = 0;         /* push %ebx; mov $1, %eax */
    j[6] = u_cpuid_op[0]; j[7] = u_cpuid_op[1];                         /* cpuid */
    j[8] = 0x89; j[9] = 0xc8; j[10] = 0x5b; j[11] = 0xc3;               /* mov %ecx, %eax; pop %ebx; ret */
    asm volatile("" ::: "memory");
    ures.jit[2] = jit();
    j[0] = 0xc7; j[1] = 0x05;                                           /* movl $0x33333333, (at) */
    for (int i = 0; i < 4; i++) {
        j[2 + i] = (uint8_t)(at >> (8 * i));
        j[6 + i] = 0x33;
        j[11 + i] = (uint8_t)(at >> (8 * i));
    }
    j[10] = 0xa1;                                                       /* movl (at), %eax */
    j[15] = 0xc3;                                                       /* ret */
    asm volatile("" ::: "memory");
    ures.jit[3] = jit();
    u_puts(1, USTR("gamma: done\n"));
    return 0x43;
}

/* Called by u_start with the entry state recorded; returns the exit code. */
UTEXT uint32_t u_main(void)
{
    volatile struct kinfo *ki = (volatile struct kinfo *)UKINFO;
    uint32_t pid = ki->pid, role = ki->role;
    ures.pushf = u_pushf();
    ures.getpid80 = sc80(SYS_getpid, 0, 0, 0);
    ures.getpidse = scse(SYS_getpid, 0, 0, 0);
    ures.tag = u_tag();
    if (role == ROLE_ALPHA)
        return u_compute(pid, 0, 0xa1fa, USTR("alpha"));
    if (role == ROLE_BETA)
        return u_compute(pid, 1, 0xbe7a, USTR("beta"));
    return u_gamma(pid);
}

/* A process's entry: record the registers the kernel's iret left, run u_main, exit with
 * its code (through sysenter for beta and gamma, int 0x80 for alpha). */
asm(".pushsection .utext,\"ax\",@progbits\n"
    ".globl u_start\n"
    "u_start:\n"
    "\tmovl %eax, ures+0\n"
    "\tmovl %ebx, ures+4\n"
    "\tmovl %ecx, ures+8\n"
    "\tmovl %edx, ures+12\n"
    "\tmovl %esi, ures+16\n"
    "\tmovl %edi, ures+20\n"
    "\tmovl %ebp, ures+24\n"
    "\tmovl %esp, ures+28\n"
    "\tpushfl\n"
    "\tpopl ures+32\n"
    "\tleal ures+36, %ebx\n"                /* the selectors, as the kernel sees them */
    "\tmovl $501, %eax\n"
    "\tint $0x80\n"
    "\tpushl $0x202\n"
    "\tpopfl\n"
    "\tcall u_main\n"
    "\tmovl %eax, %ebx\n"
    "\tcmpl $0x41, %eax\n"
    "\tmovl $1, %eax\n"                      /* SYS_exit */
    "\tje 1f\n"
    "\tcall u_vsyscall\n"
    "\tud2\n"
    "1:\tint $0x80\n"
    "\tud2\n"

    /* the vDSO's __kernel_vsyscall, on a page of its own: the kernel returns to
     * u_sysenter_return with ESP = the EBP it was entered with, and takes the caller's EBP
     * from the stack */
    ".pushsection .uvdso,\"ax\",@progbits\n"
    ".globl u_vsyscall, u_sysenter_return\n"
    "u_vsyscall:\n"
    "\tpushl %ecx\n"
    "\tpushl %edx\n"
    "\tpushl %ebp\n"
    "\tmovl %esp, %ebp\n"
    "\tsysenter\n"
    "u_sysenter_return:\n"
    "\tpopl %ebp\n"
    "\tpopl %edx\n"
    "\tpopl %ecx\n"
    "\tret\n"
    ".popsection\n"

    /* mov $imm32, %eax; ret - the kernel patches the immediate in each process's copy */
    "\t.balign 16\n"
    ".globl u_tag, u_tag_imm\n"
    "u_tag:\n"
    "\t.byte 0xb8\n"
    "u_tag_imm:\n"
    "\t.long 0\n"
    "\tret\n"

    /* registers and flags across a system call: getpid with every register set */
#define REGTEST(name, call)                                                                   \
    "\t.balign 16\n"                                                                          \
    ".globl " name "\n" name ":\n"                                                            \
    "\tpushl %ebp\n\tpushl %ebx\n\tpushl %esi\n\tpushl %edi\n"                                \
    "\tmovl $0x0b0b0b0b, %ebx\n"                                                              \
    "\tmovl $0x0c0c0c0c, %ecx\n"                                                              \
    "\tmovl $0x0d0d0d0d, %edx\n"                                                              \
    "\tmovl $0x05050505, %esi\n"                                                              \
    "\tmovl $0x0d1d1d1d, %edi\n"                                                              \
    "\tmovl $0x0b9b9b9b, %ebp\n"                                                              \
    "\tmovl $20, %eax\n"                                                                      \
    "\tpushl $0xad7\n\tpopfl\n"                                                               \
    "\t" call "\n"                                                                            \
    "\tpushfl\n\tpopl u_regs+28\n"                                                            \
    "\tmovl %eax, u_regs+0\n\tmovl %ebx, u_regs+4\n\tmovl %ecx, u_regs+8\n"                   \
    "\tmovl %edx, u_regs+12\n\tmovl %esi, u_regs+16\n\tmovl %edi, u_regs+20\n"                \
    "\tmovl %ebp, u_regs+24\n"                                                                \
    "\tpushl $0x202\n\tpopfl\n"                                                               \
    "\tpopl %edi\n\tpopl %esi\n\tpopl %ebx\n\tpopl %ebp\n"                                    \
    "\tret\n"
    REGTEST("u_regs80", "int $0x80")
    REGTEST("u_regsse", "call u_vsyscall")

    /* int3 (0xcc), int $3 (0xcd 0x03), into with OF = 0 and OF = 1 */
    "\t.balign 16\n"
    ".globl u_traps, u_int3_next, u_int3b_next, u_into_next\n"
    "u_traps:\n"
    "\tpushl %ebx\n"
    "\tmovl $0x12345678, %eax\n"
    "\tint3\n"
    "u_int3_next:\n"
    "\tmovl %eax, u_regs+0\n"
    "\tmovl $0x9abcdef0, %eax\n"
    "\t.byte 0xcd, 0x03\n"
    "u_int3b_next:\n"
    "\tmovl %eax, u_regs+4\n"
    "\txorl %ebx, %ebx\n"                    /* OF = 0: no trap */
    "\tinto\n"
    "\tmovl $0x7fffffff, %ebx\n"
    "\taddl $1, %ebx\n"                      /* OF = 1 */
    "\tinto\n"
    "u_into_next:\n"
    "\tmovl %ebx, u_regs+8\n"
    "\tpopl %ebx\n"
    "\tret\n"
    ".popsection\n");

/* The victims: each is the whole program of one process; v_NAME is its entry, v_NAME_at
 * the EIP of the fault (the instruction, or the target of a fetch that faults).  Should
 * nothing fault, the process exits with code 0xbad. */
#define VICTIMS(X)                                                                            \
    X(cli,       "cli",                                  13, 0,     0, "")                   \
    X(hlt,       "hlt",                                  13, 0,     0, "")                   \
    X(in,        "in from port 0x80",                    13, 0,     0, "")                   \
    X(out,       "out to the isa-debug-exit port",       13, 0,     0, "")                   \
    X(movcr3,    "mov from CR3",                         13, 0,     0, "")                   \
    X(wrmsr,     "wrmsr SYSENTER_EIP",                   13, 0,     0, "")                   \
    X(sysexit,   "sysexit",                              13, 0,     0, "")                   \
    X(ds_kernel, "mov to DS of the kernel's data 0x10",  13, 0x10,  0, "")                   \
    X(ss_kernel, "mov to SS of 0x6b (DPL 0 data)",       13, 0x68,  0, "")                   \
    X(es_tss,    "mov to ES of the TSS selector",        13, 0x80,  0, "")                   \
    X(ljmp,      "far jmp to the kernel's code 0x60",    13, 0x60,  0, "")                   \
    X(lcall,     "far call to the kernel's code 0x08",   13, 0x08,  0, "")                   \
    X(iret,      "iret to CPL 0",                        13, 0x08,  0, "")                   \
    X(int30,     "int $0x30 (DPL 0 gate)",               13, 0x182, 0, "")                   \
    X(rd_kimage, "read the kernel image",                14, 5,     0x00100000, "0x00100000") \
    X(rd_khigh,  "read kernel data at 0xC0000000",       14, 5,     KHIGH, "0xc0000000")     \
    X(wr_kvar,   "write a kernel variable",              14, 7,     (uint32_t)&k_secret, "its address") \
    X(wr_text,   "write its own code",                   14, 7,     (uint32_t)u_start, "its address") \
    X(wr_kinfo,  "write the read-only kinfo page",       14, 7,     UKINFO, "0x40008000")    \
    X(wr_vdso,   "write the shared vDSO page",           14, 7,     UVDSO + 0x10, "0xffffe010") \
    X(rd_nopde,  "read an address without page table",  14, 4,     UNOPDE, "0x50000000")    \
    X(wr_nopte,  "write a not-present page",             14, 6,     UGUARD + 0x10, "0x40009010") \
    X(call_nx,   "call an unmapped address",             14, 4,     UNOPDE + 0x1000, "0x50001000 = EIP") \
    X(jmp_kcode, "jump into the kernel's code",          14, 5,     (uint32_t)test_main, "the target = EIP") \
    X(push,      "push below its stack",                 14, 6,     USTACK_TOP - 0x2004, "0xbfffdffc") \
    X(div0,      "div by zero",                          0,  0,     0, "")                   \
    X(idiv,      "idiv 0x80000000 / -1",                 0,  0,     0, "")                   \
    X(ud2,       "ud2",                                  6,  0,     0, "")                   \
    X(bound,     "bound out of range",                   5,  0,     0, "")                   \
    X(syscall,   "syscall (the CPU has no SYSCALL)",     6,  0,     0, "")

asm(".pushsection .utext,\"ax\",@progbits\n"
    "v_survived:\n"
    "\tmovl $1, %eax\n"
    "\tmovl $0xbad, %ebx\n"
    "\tint $0x80\n"
    "\tud2\n"
#define VIC(n, body) "\t.balign 16\n.globl v_" #n ", v_" #n "_at\nv_" #n ":\n" body "\n\tjmp v_survived\n"
    VIC(cli,       "v_cli_at: cli")
    VIC(hlt,       "v_hlt_at: hlt")
    VIC(in,        "v_in_at: inb $0x80, %al")
    VIC(out,       "movb $0x3f, %al\nv_out_at: outb %al, $0xf4")
    VIC(movcr3,    "v_movcr3_at: movl %cr3, %eax")
    VIC(wrmsr,     "movl $0x176, %ecx\n\txorl %eax, %eax\n\txorl %edx, %edx\nv_wrmsr_at: wrmsr")
    VIC(sysexit,   "movl %esp, %ecx\n\tmovl $v_survived, %edx\nv_sysexit_at: sysexit")
    VIC(ds_kernel, "movw $0x10, %ax\nv_ds_kernel_at: movw %ax, %ds")
    VIC(ss_kernel, "movw $0x6b, %ax\nv_ss_kernel_at: movw %ax, %ss")
    VIC(es_tss,    "movw $0x83, %ax\nv_es_tss_at: movw %ax, %es")
    VIC(ljmp,      "v_ljmp_at: ljmp $0x60, $v_survived")
    VIC(lcall,     "v_lcall_at: lcall $0x08, $v_survived")
    VIC(iret,      "pushl $0x202\n\tpushl $0x08\n\tpushl $v_survived\nv_iret_at: iretl")
    VIC(int30,     "v_int30_at: int $0x30")
    VIC(rd_kimage, "v_rd_kimage_at: movl 0x00100000, %eax")
    VIC(rd_khigh,  "v_rd_khigh_at: movl 0xc0000000, %eax")
    VIC(wr_kvar,   "v_wr_kvar_at: movl $0x666, k_secret")
    VIC(wr_text,   "v_wr_text_at: movl %eax, u_start")
    VIC(wr_kinfo,  "v_wr_kinfo_at: movl %eax, 0x40008000")
    VIC(wr_vdso,   "v_wr_vdso_at: movl %eax, 0xffffe010")
    VIC(rd_nopde,  "v_rd_nopde_at: movl 0x50000000, %eax")
    VIC(wr_nopte,  "v_wr_nopte_at: movl %eax, 0x40009010")
    VIC(call_nx,   "movl $0x50001000, %eax\n\tcall *%eax\n\t.set v_call_nx_at, 0x50001000")
    VIC(jmp_kcode, "movl $test_main, %eax\n\tjmp *%eax\n\t.set v_jmp_kcode_at, test_main")
    VIC(push,      "movl $0xbfffe000, %esp\nv_push_at: pushl $1")
    VIC(div0,      "movl $1, %eax\n\txorl %edx, %edx\n\txorl %ecx, %ecx\nv_div0_at: divl %ecx")
    VIC(idiv,      "movl $0x80000000, %eax\n\tcltd\n\tmovl $-1, %ecx\nv_idiv_at: idivl %ecx")
    VIC(ud2,       "v_ud2_at: ud2")
    VIC(bound,     "movl $20, %eax\nv_bound_at: bound %eax, v_bounds")
    "\t.balign 8\n"
    "v_bounds: .long 0, 10\n"
    ".popsection\n"
    ".pushsection .utext.nonnative,\"ax\",@progbits\n"
    VIC(syscall,   "v_syscall_at: syscall")
    ".popsection\n");

/* ==================================================================================== */
/* The kernel.                                                                          */
/* ==================================================================================== */
extern char __utext_start[], __utext_end[], __utext_load[];
extern char __udata_start[], __udata_end[], __udata_load[];
extern char __uvdso_start[], __uvdso_end[], __uvdso_load[];
volatile uint32_t k_secret = 0x5ec2e7;

#define DECL_VICTIM(n, what, vec, err, cr2, cr2d) extern char v_##n[], v_##n##_at[];
VICTIMS(DECL_VICTIM)

struct victim {
    const char *what;
    uint32_t entry, at, vector, err, cr2;
    const char *cr2_desc;
};
#define VICTIM_ROW(n, w, vec, e, c, cd) { w, (uint32_t)v_##n, (uint32_t)v_##n##_at, vec, e, c, cd },
static const struct victim victims[] = { VICTIMS(VICTIM_ROW) };
#define NVICTIMS (sizeof victims / sizeof victims[0])
#define NPROC (3 + NVICTIMS)

/* The user state the kernel keeps: what rt_trap_common and sysenter_entry push. */
struct uregs {
    uint32_t gs, fs, es, ds, edi, esi, ebp, ebx, edx, ecx, eax;
    uint32_t eip, cs, eflags, esp, ss;
};

enum { P_FREE, P_RUNNABLE, P_EXITED, P_KILLED };

struct proc {
    uint32_t state, pid, role, pd;
    volatile struct kinfo *kinfo;          /* its kinfo frame, through the identity map */
    struct uregs u;
    uint32_t tls[2], tls_set;
    uint32_t exit_code, exit_via_se;
    uint32_t kvec, kerr_has, kerr, keip, kcs, kcr2;
    uint32_t ntraps, trapv[4], trapeip[4];
    uint32_t preempts;
    uint32_t outlen;
    char out[256];
};

static struct proc procs[NPROC];
static struct proc *cur;
static volatile uint32_t need_resched;
static uint32_t ticks_user, ticks_kernel;    /* for "verbose" diagnostics only */
static uint32_t kernel_pd, khigh_pt, vdso_frame, frame_next = FRAMES, pg_global;
static uint8_t kstack[16384] __attribute__((aligned(16)));
#define KSTACK_TOP ((uint32_t)kstack + sizeof kstack)

struct khigh {
    uint32_t magic, current_pid;
};
#define KH ((volatile struct khigh *)KHIGH)
#define KHIGH_MAGIC 0x4b484947u

static const char kmsg[] = "kernel says hi\n";

/* ---- paging ---------------------------------------------------------------------------- */
static uint32_t alloc_frame(void)
{
    uint32_t f = frame_next;
    if (f >= KMAP_END)
        rt_bail("out of frames");
    frame_next += 4096;
    memset((void *)f, 0, 4096);
    return f;
}

static uint32_t *pt_of(uint32_t pd, uint32_t va, int create, uint32_t pde_flags)
{
    uint32_t *pdp = (uint32_t *)pd;
    uint32_t pde = pdp[va >> 22];
    if (!(pde & PG_P)) {
        if (!create)
            return 0;
        pde = alloc_frame() | pde_flags;
        pdp[va >> 22] = pde;
    }
    return (uint32_t *)(pde & ~0xfffu);
}

static void map(uint32_t pd, uint32_t va, uint32_t frame, uint32_t flags)
{
    pt_of(pd, va, 1, PG_U | PG_W | PG_P)[(va >> 12) & 1023] = frame | flags;
}

/* The physical address (= the kernel's address) of a process's user address, or 0. */
static uint32_t uphys(const struct proc *p, uint32_t va)
{
    uint32_t *pt = pt_of(p->pd, va, 0, 0);
    if (!pt || !(pt[(va >> 12) & 1023] & PG_P))
        return 0;
    return (pt[(va >> 12) & 1023] & ~0xfffu) | (va & 0xfff);
}

static void copy_from_proc(const struct proc *p, void *dst, uint32_t va, uint32_t len)
{
    uint8_t *d = dst;
    for (uint32_t i = 0; i < len; i++) {
        uint32_t pa = uphys(p, va + i);
        d[i] = pa ? *(volatile uint8_t *)pa : 0xee;
    }
}

/* Whether [a, a + len) is present and user-accessible (and writable) in the current
 * address space: what a system call checks before it touches a user buffer. */
static int user_ok(uint32_t a, uint32_t len, int write)
{
    if (len == 0)
        return 1;
    uint32_t last = a + len - 1;
    if (last < a)
        return 0;
    uint32_t need = PG_P | PG_U | (write ? PG_W : 0);
    const uint32_t *pd = (const uint32_t *)(read_cr3() & ~0xfffu);
    for (uint32_t pg = a & ~0xfffu;; pg += 0x1000) {
        uint32_t pde = pd[pg >> 22];
        if ((pde & need) != need)
            return 0;
        if (!(pde & PG_PS)) {
            uint32_t pte = ((const uint32_t *)(pde & ~0xfffu))[(pg >> 12) & 1023];
            if ((pte & need) != need)
                return 0;
        }
        if (pg == (last & ~0xfffu))
            return 1;
    }
}

/* A page directory with the kernel's half: 0-16 MiB and the page at KHIGH. */
static uint32_t new_pd(void)
{
    uint32_t pd = alloc_frame();
    for (uint32_t i = 0; i < KMAP_END >> 22; i++)
        ((uint32_t *)pd)[i] = (i << 22) | PG_PS | pg_global | PG_W | PG_P;
    ((uint32_t *)pd)[KHIGH >> 22] = khigh_pt | PG_W | PG_P;
    return pd;
}

/* ---- processes --------------------------------------------------------------------------- */
static void create(uint32_t pid, uint32_t role, uint32_t entry)
{
    struct proc *p = &procs[pid - 1];
    memset(p, 0, sizeof *p);
    p->pid = pid;
    p->role = role;
    p->pd = new_pd();
    /* the user image: own copies of its code and data */
    for (uint32_t va = (uint32_t)__utext_start; va < (uint32_t)__utext_end; va += 4096) {
        uint32_t f = alloc_frame();
        memcpy((void *)f, __utext_load + (va - (uint32_t)__utext_start), 4096);
        map(p->pd, va, f, PG_U | PG_P);
    }
    for (uint32_t va = (uint32_t)__udata_start; va < (uint32_t)__udata_end; va += 4096) {
        uint32_t f = alloc_frame();
        memcpy((void *)f, __udata_load + (va - (uint32_t)__udata_start), 4096);
        map(p->pd, va, f, PG_U | PG_W | PG_P);
    }
    map(p->pd, UVDSO, vdso_frame, PG_U | PG_P);        /* shared by all */
    map(p->pd, UTLS, alloc_frame(), PG_U | PG_W | PG_P);
    uint32_t ki = alloc_frame();
    map(p->pd, UKINFO, ki, PG_U | PG_P);
    map(p->pd, USTACK_TOP - 0x2000, alloc_frame(), PG_U | PG_W | PG_P);
    map(p->pd, USTACK_TOP - 0x1000, alloc_frame(), PG_U | PG_W | PG_P);
    p->kinfo = (volatile struct kinfo *)ki;
    p->kinfo->pid = pid;
    p->kinfo->role = role;
    *(volatile uint32_t *)uphys(p, (uint32_t)u_tag_imm) = pid * 0x01010101u;

    /* what the first iret loads */
    p->u = (struct uregs){
        .gs = 0, .fs = 0, .es = UDS, .ds = UDS,
        .eax = 0xa0000000u | pid, .ebx = 0xb0b0b0b0u, .ecx = 0xc0c0c0c0u, .edx = 0xd0d0d0d0u,
        .esi = 0x51515151u, .edi = 0xd1d1d1d1u, .ebp = 0xb9b9b9b9u,
        .eip = entry, .cs = UCS, .eflags = ENTRY_EFLAGS, .esp = USTACK_TOP, .ss = UDS,
    };
    p->state = P_RUNNABLE;
}

static uint64_t tls_desc(uint32_t base)
{
    return rt_desc(base, 0xfffff, 0xf2, 0xc);  /* data, writable, DPL 3, not yet accessed */
}

static void save(struct proc *p, const struct trap_frame *f, const uint32_t *w)
{
    p->u.gs = f->gs; p->u.fs = f->fs; p->u.es = f->es; p->u.ds = f->ds;
    p->u.edi = f->edi; p->u.esi = f->esi; p->u.ebp = f->ebp; p->u.ebx = f->ebx;
    p->u.edx = f->edx; p->u.ecx = f->ecx; p->u.eax = f->eax;
    p->u.eip = w[0]; p->u.cs = w[1]; p->u.eflags = w[2]; p->u.esp = w[3]; p->u.ss = w[4];
}

/* Makes p the running process: its address space, its TLS descriptors, and its registers
 * in the frame the kernel returns through. */
static void load(struct proc *p, struct trap_frame *f, uint32_t *w)
{
    write_cr3(p->pd);
    cur = p;
    KH->current_pid = p->pid;
    rt_gdt[GS_TLS >> 3] = (p->tls_set & 1) ? tls_desc(p->tls[0]) : 0;
    rt_gdt[FS_TLS >> 3] = (p->tls_set & 2) ? tls_desc(p->tls[1]) : 0;
    f->gs = p->u.gs; f->fs = p->u.fs; f->es = p->u.es; f->ds = p->u.ds;
    f->edi = p->u.edi; f->esi = p->u.esi; f->ebp = p->u.ebp; f->ebx = p->u.ebx;
    f->edx = p->u.edx; f->ecx = p->u.ecx; f->eax = p->u.eax;
    w[0] = p->u.eip; w[1] = p->u.cs; w[2] = p->u.eflags; w[3] = p->u.esp; w[4] = p->u.ss;
}

extern char sched_return[];
extern void sched_run(struct trap_frame *f);
uint32_t sched_saved_esp;

/* The current process has been saved (or is gone): load the next runnable one, round
 * robin, or return to the kernel's main context when there is none. */
static void switch_next(struct trap_frame *f, uint32_t *w)
{
    /* A system call runs with IF = 1 (int 0x80 is a trap gate); from here on the GDT's TLS
     * descriptors may no longer match the %gs/%fs still loaded: a timer interrupt nested
     * now would reload them on its way out and fault.  The iret sets IF again. */
    cli();
    unsigned start = cur ? cur->pid % NPROC : 0;
    for (unsigned i = 0; i < NPROC; i++) {
        struct proc *p = &procs[(start + i) % NPROC];
        if (p->state == P_RUNNABLE) {
            load(p, f, w);
            return;
        }
    }
    cur = 0;
    write_cr3(kernel_pd);
    f->gs = f->fs = f->es = f->ds = SEL_KDATA;
    w[0] = (uint32_t)sched_return;
    w[1] = SEL_KCODE;
    w[2] = 0x002;
}

/* ---- system calls ------------------------------------------------------------------------ */
static uint32_t sys_write(struct proc *p, uint32_t fd, uint32_t buf, uint32_t len)
{
    if (fd != 1)
        return -EBADF;
    if (!user_ok(buf, len, 0))
        return -EFAULT;
    for (uint32_t i = 0; i < len && p->outlen < sizeof p->out - 1; i++)
        p->out[p->outlen++] = ((const volatile char *)buf)[i];
    return len;
}

static uint32_t sys_read(uint32_t fd, uint32_t buf, uint32_t len)
{
    if (fd != 0)
        return -EBADF;
    if (!user_ok(buf, len, 1))
        return -EFAULT;
    uint32_t n = len < sizeof kmsg - 1 ? len : sizeof kmsg - 1;
    for (uint32_t i = 0; i < n; i++)
        ((volatile char *)buf)[i] = kmsg[i];
    return n;
}

/* Returns 1 if the frame now holds another process's state (or the kernel's). */
static int do_syscall(struct trap_frame *f, uint32_t *w, int via_se)
{
    struct proc *p = cur;
    uint32_t nr = f->eax, a = f->ebx, b = f->ecx, c = f->edx, r;
    if (nr == SYS_exit) {
        p->state = P_EXITED;
        p->exit_code = a;
        p->exit_via_se = via_se;
        switch_next(f, w);
        return 1;
    }
    if (nr == SYS_sched_yield) {
        f->eax = 0;
        save(p, f, w);
        switch_next(f, w);
        return 1;
    }
    if (nr == SYS_write) {
        r = sys_write(p, a, b, c);
    } else if (nr == SYS_read) {
        r = sys_read(a, b, c);
    } else if (nr == SYS_getpid) {
        r = KH->current_pid;
    } else if (nr == SYS_set_thread_area) {
        if (a > 1) {
            r = -EINVAL;
        } else {
            p->tls[a] = b;
            p->tls_set |= 1u << a;
            uint32_t fl = read_eflags();
            cli();                      /* no interrupt sees a half-written descriptor */
            rt_gdt[(a ? FS_TLS : GS_TLS) >> 3] = tls_desc(b);
            write_eflags(fl);
            r = a ? FS_TLS : GS_TLS;
        }
    } else if (nr == SYS_segs) {
        if (a && !via_se && user_ok(a, 24, 1)) {
            volatile uint32_t *d = (volatile uint32_t *)a;
            d[0] = w[1] & 0xffff; d[1] = w[4] & 0xffff; d[2] = f->ds & 0xffff;
            d[3] = f->es & 0xffff; d[4] = f->fs & 0xffff; d[5] = f->gs & 0xffff;
        }
        r = (f->gs & 0xffff) << 16 | (f->fs & 0xffff);
    } else if (nr == SYS_tls_access) {
        r = (uint32_t)(rt_gdt[GS_TLS >> 3] >> 40) & 0xff;
    } else {
        r = -ENOSYS;
    }
    f->eax = r;
    if (need_resched) {                 /* the timer fired during the system call */
        need_resched = 0;
        save(p, f, w);
        switch_next(f, w);
        return 1;
    }
    return 0;
}

static void on_int80(struct trap_frame *f, uint32_t *w)
{
    if ((w[1] & 3) != 3 || !cur)
        rt_bail("int 0x80 from CPL %u", w[1] & 3);
    do_syscall(f, w, 0);
}

/* sysenter_entry's C half; returns 1 to leave through sysexit, 0 through iret. */
uint32_t sysenter_c(struct trap_frame *f)
{
    uint32_t *w = f->w;
    struct proc *p = cur;
    if (!p)
        rt_bail("sysenter with no process");
    if (!user_ok(w[3], 4, 0)) {         /* the caller's EBP is on its stack */
        p->state = P_KILLED;
        p->kvec = 0x100;
        switch_next(f, w);
        return 0;
    }
    f->ebp = *(volatile uint32_t *)w[3];
    return !do_syscall(f, w, 1);
}

asm(".pushsection .text\n"
    ".globl sysenter_entry\n"
    "sysenter_entry:\n"                      /* CS 0x60, SS 0x68, ESP = SYSENTER_ESP, IF = 0 */
    "\tpushl $0x7b\n"                        /* SS */
    "\tpushl %ebp\n"                         /* ESP: u_vsyscall left it in EBP */
    "\tpushfl\n"
    "\torl $0x200, (%esp)\n"                 /* IF was set at CPL 3 */
    "\tpushl $0x73\n"                        /* CS */
    "\tpushl $u_sysenter_return\n"           /* EIP: the vDSO's landing pad */
    "\tpushl $0x100\n"                       /* in place of the vector */
    "\tpushal\n"
    "\tpushl %ds\n\tpushl %es\n\tpushl %fs\n\tpushl %gs\n"
    "\tmovw $0x68, %ax\n"
    "\tmovw %ax, %ds\n\tmovw %ax, %es\n"
    "\tcld\n"
    "\tpushl %esp\n"
    "\tcall sysenter_c\n"
    "\taddl $4, %esp\n"
    "\ttestl %eax, %eax\n"
    "\tpopl %gs\n\tpopl %fs\n\tpopl %es\n\tpopl %ds\n"
    "\tpopal\n"
    "\tjz 1f\n"
    "\tmovl 4(%esp), %edx\n"                 /* EIP */
    "\tmovl 16(%esp), %ecx\n"                /* ESP */
    "\tandl $~0x200, 12(%esp)\n"
    "\taddl $12, %esp\n"
    "\tpopfl\n"                              /* the user's flags, IF = 0 ... */
    "\tsti\n"                                /* ... set in sysexit's STI shadow */
    "\tsysexit\n"
    "1:\taddl $4, %esp\n"
    "\tiretl\n"

    /* void sched_run(struct trap_frame *f): run the process whose state is in f until
     * no process is left, then come back at sched_return */
    ".globl sched_run, sched_return\n"
    "sched_run:\n"
    "\tpushl %ebp\n\tpushl %ebx\n\tpushl %esi\n\tpushl %edi\n"
    "\tmovl %esp, sched_saved_esp\n"
    "\tmovl 20(%esp), %esp\n"
    "\tpopl %gs\n\tpopl %fs\n\tpopl %es\n\tpopl %ds\n"
    "\tpopal\n"
    "\taddl $4, %esp\n"
    "\tiretl\n"
    "sched_return:\n"
    "\tmovw $0x10, %cx\n"
    "\tmovw %cx, %ds\n\tmovw %cx, %es\n\tmovw %cx, %fs\n\tmovw %cx, %gs\n"
    "\tmovw %cx, %ss\n"
    "\tmovl sched_saved_esp, %esp\n"
    "\tpopl %edi\n\tpopl %esi\n\tpopl %ebx\n\tpopl %ebp\n"
    "\tret\n"
    ".popsection\n");
extern char sysenter_entry[];

/* ---- interrupts and exceptions ------------------------------------------------------------- */
static void on_timer(struct trap_frame *f, uint32_t *w)
{
    rt_eoi(0);
    if ((w[1] & 3) != 3 || !cur) {      /* in the kernel: switch on the way out */
        ticks_kernel++;
        need_resched = 1;
        return;
    }
    ticks_user++;
    cur->preempts++;
    cur->kinfo->preempts = cur->preempts;
    save(cur, f, w);
    switch_next(f, w);
}

/* An exception at CPL 3 kills the process (int3 and into are resumed). */
static void on_exception(unsigned v, struct trap_frame *f, uint32_t *w)
{
    int has_err = w == &f->w[1];
    uint32_t err = has_err ? f->w[0] : 0;
    uint32_t cr2 = v == 14 ? read_cr2() : 0;
    if ((w[1] & 3) != 3 || !cur)
        rt_bail("vector %u at CPL %u (error 0x%x) at EIP 0x%08x, CR2 0x%08x", v, w[1] & 3, err, w[0], cr2);
    struct proc *p = cur;
    if (v == 3 || v == 4) {
        if (p->ntraps < 4) {
            p->trapv[p->ntraps] = v;
            p->trapeip[p->ntraps] = w[0];
        }
        p->ntraps++;
        return;
    }
    p->state = P_KILLED;
    p->kvec = v;
    p->kerr_has = has_err;
    p->kerr = err;
    p->keip = w[0];
    p->kcs = w[1];
    p->kcr2 = cr2;
    switch_next(f, w);
}

#define EXC(v) static void on_exc_##v(struct trap_frame *f, uint32_t *w) { on_exception(v, f, w); }
EXC(0) EXC(1) EXC(3) EXC(4) EXC(5) EXC(6) EXC(7) EXC(8) EXC(10) EXC(11) EXC(12) EXC(13)
EXC(14) EXC(16) EXC(17) EXC(18) EXC(19)
static const rt_hook exc_hooks[20] = {
    on_exc_0, on_exc_1, 0, on_exc_3, on_exc_4, on_exc_5, on_exc_6, on_exc_7, on_exc_8, 0,
    on_exc_10, on_exc_11, on_exc_12, on_exc_13, on_exc_14, 0, on_exc_16, on_exc_17,
    on_exc_18, on_exc_19,
};

/* ---- setup -------------------------------------------------------------------------------- */
static void wrmsr(uint32_t msr, uint32_t v)
{
    asm volatile("wrmsr" :: "c"(msr), "a"(v), "d"(0));
}

static void setup(void)
{
    if ((uint32_t)__image_end > FRAMES)
        rt_bail("the kernel image ends above 4 MiB");
    if ((uint32_t)__udata_end > UTLS)
        rt_bail("the user image's data reaches the TLS page");
    if ((uint32_t)__uvdso_start != UVDSO || (uint32_t)__uvdso_end - UVDSO != 4096)
        rt_bail("the vDSO is not one page at 0xffffe000");
    uint32_t a, b, c, d;
    cpuid(1, &a, &b, &c, &d);
    if (!(d & (1u << 11)))
        rt_bail("no sysenter (CPUID SEP)");
    pg_global = (d & (1u << 13)) ? PG_G : 0;

    /* GDT, TSS */
    rt_gdt[KCS >> 3] = rt_desc(0, 0xfffff, 0x9b, 0xc);
    rt_gdt[KDS >> 3] = rt_desc(0, 0xfffff, 0x93, 0xc);
    rt_gdt[UDS >> 3] = rt_desc(0, 0xfffff, 0xf3, 0xc);
    rt_gdt[TSSSEL >> 3] = rt_desc((uint32_t)rt_tss, 103, 0x89, 0);
    rt_tss[1] = KSTACK_TOP;                       /* ESP0 */
    rt_tss[2] = KDS;                              /* SS0 */
    asm volatile("ltr %w0" :: "r"(TSSSEL));
    wrmsr(0x174, KCS);
    wrmsr(0x175, KSTACK_TOP);
    wrmsr(0x176, (uint32_t)sysenter_entry);

    /* IDT */
    for (unsigned v = 0; v < 20; v++) {
        if (!exc_hooks[v])
            continue;
        rt_idt_set(v, rt_stub(v), KCS, GATE_INT | (v == 3 || v == 4 ? 0x60 : 0));
        rt_set_hook(v, exc_hooks[v]);
    }
    rt_idt_set(IRQ_BASE, rt_stub(IRQ_BASE), KCS, GATE_INT);
    rt_set_hook(IRQ_BASE, on_timer);
    rt_idt_set(0x80, rt_stub(0x80), KCS, GATE_TRAP | 0x60);
    rt_set_hook(0x80, on_int80);

    /* paging */
    khigh_pt = alloc_frame();
    uint32_t kh = alloc_frame();
    ((uint32_t *)khigh_pt)[0] = kh | pg_global | PG_W | PG_P;
    kernel_pd = new_pd();
    vdso_frame = alloc_frame();
    memcpy((void *)vdso_frame, __uvdso_load, (uint32_t)__uvdso_end - (uint32_t)__uvdso_start);
    write_cr4(read_cr4() | CR4_PSE | (pg_global ? CR4_PGE : 0));
    write_cr3(kernel_pd);
    write_cr0(read_cr0() | CR0_PG | CR0_WP);
    KH->magic = KHIGH_MAGIC;
}

/* ---- the report ----------------------------------------------------------------------------- */
static const char *const names[4] = { "", "alpha", "beta", "gamma" };

static void show_output(const struct proc *p)
{
    const char *s = p->out, *e = p->out + p->outlen;
    while (s < e) {
        const char *nl = s;
        while (nl < e && *nl != '\n')
            nl++;
        rt_printf("# pid %u: ", p->pid);
        for (; s < nl; s++)
            rt_putc(*s);
        rt_putc('\n');
        s = nl + 1;
    }
}

/* How a process ended, after a failed check. */
static void show_end(const struct proc *p)
{
    rt_printf("# state %u exit code 0x%x; vector %u error %s0x%x EIP 0x%08x CS 0x%x CR2 0x%08x\n", p->state,
              p->exit_code, p->kvec, p->kerr_has ? "" : "none, ", p->kerr, p->keip, p->kcs, p->kcr2);
}

static void check_entry(const struct proc *p, const struct ures *r)
{
    const char *n = names[p->role];
    uint32_t want[8] = { 0xa0000000u | p->pid, 0xb0b0b0b0u, 0xc0c0c0c0u, 0xd0d0d0d0u,
                         0x51515151u, 0xd1d1d1d1u, 0xb9b9b9b9u, USTACK_TOP };
    int regs_ok = 1;
    for (int i = 0; i < 8; i++)
        regs_ok &= r->entry[i] == want[i];
    if (!ok(regs_ok, "pid %u (%s): started by iret with the kernel's EAX..EBP and ESP", p->pid, n))
        rt_printf("# got %08x %08x %08x %08x %08x %08x %08x %08x\n", r->entry[0], r->entry[1],
                  r->entry[2], r->entry[3], r->entry[4], r->entry[5], r->entry[6], r->entry[7]);
    is(r->entry[8], ENTRY_EFLAGS, "pid %u (%s): EFLAGS at entry: the kernel's, IF = 1, IOPL = 0", p->pid, n);
    if (!ok(r->entry[9] == UCS && r->entry[10] == UDS && r->entry[11] == UDS && r->entry[12] == UDS &&
            r->entry[13] == 0 && r->entry[14] == 0,
            "pid %u (%s): CS, SS, DS, ES, FS, GS at entry, as a system call sees them: 0x73, 0x7b, 0x7b, 0x7b, 0, 0", p->pid, n))
        rt_printf("# got 0x%x 0x%x 0x%x 0x%x 0x%x 0x%x\n", r->entry[9], r->entry[10], r->entry[11],
                  r->entry[12], r->entry[13], r->entry[14]);
    is(r->pushf & (FL_IF | FL_IOPL), FL_IF, "pid %u (%s): pushf in user mode: IF = 1, IOPL = 0", p->pid, n);
    ok(r->getpid80 == p->pid && r->getpidse == p->pid, "pid %u (%s): getpid via int 0x80 and via sysenter", p->pid, n);
    is(r->tag, p->pid * 0x01010101u, "pid %u (%s): the code at u_tag is this process's own copy", p->pid, n);
}

static void check_compute(const struct proc *p, const struct ures *r, uint32_t seed)
{
    const char *n = names[p->role];
    rt_diag("pid %u: %u preemptions, %u during the loop, %u spins after it", p->pid, p->preempts,
            r->loop_preempts, r->spins);
    uint32_t gsb = UTLS + p->pid * 0x40, fsb = UTLS + 0x800 + p->pid * 0x40;
    uint32_t h = seed, fsum = 0;
    for (uint32_t i = 0; i < NITER; i++) {
        h = mix(h, i);
        fsum += h & 0xff;
    }
    ok(r->gs_sel == GS_TLS && r->fs_sel == FS_TLS, "pid %u (%s): set_thread_area: selectors 0x8b, 0x93", p->pid, n);
    ok(r->gs_self == gsb && r->gs_pid == p->pid, "pid %u (%s): %%gs:0 is its TLS block's address, %%gs:4 its pid", p->pid, n);
    ok(r->fs_self == fsb && r->fs_pid == ~p->pid, "pid %u (%s): %%fs:0 is its other block's address, %%fs:4 ~pid", p->pid, n);
    is(r->tls_bad, 0, "pid %u (%s): %%gs:0, %%gs:4, %%fs:0, %%fs:4 right at every check, across preemptions", p->pid, n);
    is(r->sel_bad, 0, "pid %u (%s): %%gs, %%fs as system calls see them: 0x8b, 0x93 at every check", p->pid, n);
    is(r->tag_bad, 0, "pid %u (%s): its own code at u_tag at every check, across preemptions", p->pid, n);
    is(r->sum, h, "pid %u (%s): checksum", p->pid, n);
    ok(r->gs_count == NITER && r->ds_count == NITER, "pid %u (%s): incl %%gs:8 counted every round (read via %%gs and %%ds)", p->pid, n);
    is(r->fs_sum, fsum, "pid %u (%s): addl to %%fs:8 every round", p->pid, n);
    is(r->gs_after, GS_TLS, "pid %u (%s): %%gs still 0x8b at the end", p->pid, n);
    ok(r->preempted, "pid %u (%s): preempted by the timer at least %u times", p->pid, n, WANT_PREEMPTS);
    char want[64];
    rt_format(want, sizeof want, "%s: sum 0x%08x\n", n, h);
    ok(p->outlen == strlen(want) && !memcmp(p->out, want, p->outlen), "pid %u (%s): its output", p->pid, n);
    if (!ok(p->state == P_EXITED && p->exit_code == 0x40 + p->pid && p->exit_via_se == (p->role == ROLE_BETA),
            "pid %u (%s): exited with code 0x%x via %s", p->pid, n, 0x40 + p->pid,
            p->role == ROLE_BETA ? "sysenter" : "int 0x80"))
        show_end(p);
    is(p->ntraps, 0, "pid %u (%s): no traps", p->pid, n);
    static const uint32_t leaves[6] = { 0, 1, 7, 0x80000000u, 0x80000001u, 0x80000002u };
    int before = 1, after = 1;
    for (int i = 0; i < 6; i++) {
        uint32_t k[4];
        cpuid(leaves[i], &k[0], &k[1], &k[2], &k[3]);
        for (int j = 0; j < 4; j++) {
            before &= r->cpuid_before[i][j] == k[j];
            after &= r->cpuid_after[i][j] == k[j];
        }
    }
    ok(before, "pid %u (%s): cpuid in user mode (leaves 0, 1, 7, 0x80000000-2) answers as in the kernel", p->pid, n);
    ok(after, "pid %u (%s): and again after its long computation and preemptions", p->pid, n);
}

static void check_gamma(const struct proc *p, const struct ures *r)
{
    static const uint32_t want[7] = { 3, 0x0b0b0b0b, 0x0c0c0c0c, 0x0d0d0d0d, 0x05050505, 0x0d1d1d1d, 0x0b9b9b9b };
    int ok80 = r->regs80[7] == ENTRY_EFLAGS, okse = r->regsse[7] == ENTRY_EFLAGS;
    for (int i = 0; i < 7; i++) {
        ok80 &= r->regs80[i] == want[i];
        okse &= r->regsse[i] == want[i];
    }
    if (!ok(ok80, "pid 3 (gamma): int 0x80 returns EAX, keeps EBX ECX EDX ESI EDI EBP and the flags"))
        rt_printf("# got %08x %08x %08x %08x %08x %08x %08x flags %08x\n", r->regs80[0], r->regs80[1],
                  r->regs80[2], r->regs80[3], r->regs80[4], r->regs80[5], r->regs80[6], r->regs80[7]);
    if (!ok(okse, "pid 3 (gamma): sysenter/sysexit (vDSO stub) returns EAX, keeps EBX ECX EDX ESI EDI EBP and the flags"))
        rt_printf("# got %08x %08x %08x %08x %08x %08x %08x flags %08x\n", r->regsse[0], r->regsse[1],
                  r->regsse[2], r->regsse[3], r->regsse[4], r->regsse[5], r->regsse[6], r->regsse[7]);
    uint32_t v0, vb, vc, vd;
    cpuid(1, &v0, &vb, &vc, &vd);
    ok(r->jit[0] == 0x11111111u && r->jit[1] == 0x22222222u, "pid 3 (gamma): code it wrote runs, and runs as rewritten");
    ok(r->jit[2] == vc, "pid 3 (gamma): cpuid in code it wrote answers as in the kernel (leaf 1 ECX)");
    ok(r->jit[3] == 0x33333333u, "pid 3 (gamma): code that stores into its own page");
    is(r->wr[0], 26, "pid 3 (gamma): write() from its read-only code pages via int 0x80");
    is(r->wr[1], 26, "pid 3 (gamma): write() via sysenter");
    is(r->wr[2], -EFAULT, "pid 3 (gamma): write() from the kernel image: EFAULT");
    is(r->wr[3], -EFAULT, "pid 3 (gamma): write() from kernel data at 0xC0000000: EFAULT");
    is(r->wr[4], -EFAULT, "pid 3 (gamma): write() from a range running into an unmapped page: EFAULT");
    is(r->wr[5], 0, "pid 3 (gamma): write() of 0 bytes");
    is(r->wr[6], -EFAULT, "pid 3 (gamma): write() with a length that wraps around: EFAULT");
    is(r->wr[7], -EBADF, "pid 3 (gamma): write() to fd 2: EBADF");
    ok(r->rd[0] == sizeof kmsg - 1 && !memcmp(r->rdbuf, kmsg, sizeof kmsg), "pid 3 (gamma): read() into its data");
    is(r->rd[1], -EFAULT, "pid 3 (gamma): read() into its read-only code: EFAULT");
    is(r->rd[2], -EFAULT, "pid 3 (gamma): read() into the read-only kinfo page: EFAULT");
    is(r->rd[3], -EFAULT, "pid 3 (gamma): read() into a range running into a read-only page: EFAULT");
    is(r->rd[4], -EFAULT, "pid 3 (gamma): read() into the kernel: EFAULT");
    ok(p->ntraps == 3 && p->trapv[0] == 3 && p->trapeip[0] == (uint32_t)u_int3_next &&
       r->trapv[0] == 0x12345678, "pid 3 (gamma): int3: vector 3, EIP after it, resumed with EAX kept");
    ok(p->ntraps == 3 && p->trapv[1] == 3 && p->trapeip[1] == (uint32_t)u_int3b_next &&
       r->trapv[1] == 0x9abcdef0, "pid 3 (gamma): int $3: vector 3, EIP after it, resumed");
    ok(p->ntraps == 3 && p->trapv[2] == 4 && p->trapeip[2] == (uint32_t)u_into_next && r->trapv[2] == 0x80000000u,
       "pid 3 (gamma): into with OF = 0 does nothing, with OF = 1 vector 4, EIP after it, resumed");
    if (p->ntraps != 3)
        rt_printf("# %u traps\n", p->ntraps);
    uint32_t a = UTLS + p->pid * 0x40, b = UTLS + 0x400 + p->pid * 0x40;
    ok(r->gs_sel == GS_TLS && r->tls_first == a, "pid 3 (gamma): set_thread_area, mov to %%gs, %%gs:0");
    is(r->tls_access, 0xf3, "pid 3 (gamma): loading %%gs set the TLS descriptor's accessed bit");
    ok(r->tls_new_sel == GS_TLS && r->tls_new == b, "pid 3 (gamma): a new TLS base is in %%gs when set_thread_area returns");
    ok(r->yield80 == 0 && r->yieldse == 0, "pid 3 (gamma): sched_yield via int 0x80 and sysenter");
    is(r->enosys, -ENOSYS, "pid 3 (gamma): an unknown system call: ENOSYS");
    static const char want_out[] = "gamma: hello via int 0x80\ngamma: hello via sysenter\n"
                                   "gamma: read kernel says hi\ngamma: done\n";
    ok(p->outlen == sizeof want_out - 1 && !memcmp(p->out, want_out, p->outlen), "pid 3 (gamma): its output");
    if (!ok(p->state == P_EXITED && p->exit_code == 0x43 && p->exit_via_se, "pid 3 (gamma): exited with code 0x43 via sysenter"))
        show_end(p);
}

static const char *vname(uint32_t v)
{
    return v == 0 ? "#DE" : v == 5 ? "#BR" : v == 6 ? "#UD" : v == 13 ? "#GP" : v == 14 ? "#PF" : "?";
}

static void check_victim(const struct proc *p, const struct victim *v)
{
    int has_err = v->vector == 13 || v->vector == 14;
    int good = p->state == P_KILLED && p->kvec == v->vector && p->kerr_has == (uint32_t)has_err &&
               p->kerr == v->err && p->keip == v->at && p->kcs == UCS && p->kcr2 == v->cr2;
    char desc[128];
    if (v->vector == 14)
        rt_format(desc, sizeof desc, "error 0x%x, CR2 %s", v->err, v->cr2_desc);
    else if (has_err)
        rt_format(desc, sizeof desc, "error 0x%x", v->err);
    else
        rt_format(desc, sizeof desc, "no error code");
    if (!ok(good, "pid %u: %s: killed by %s, %s, at its EIP", p->pid, v->what, vname(v->vector), desc))
        show_end(p);
}

void test_main(void)
{
    setup();
    create(1, ROLE_ALPHA, (uint32_t)u_start);
    create(2, ROLE_BETA, (uint32_t)u_start);
    create(3, ROLE_GAMMA, (uint32_t)u_start);
    for (unsigned i = 0; i < NVICTIMS; i++)
        create(4 + i, ROLE_VICTIM, victims[i].entry);

    /* PIT channel 0: rate generator at 1 kHz; only IRQ0 unmasked */
    outb(0x43, 0x34);
    outb(0x40, (1193182 / 1000) & 0xff);
    outb(0x40, (1193182 / 1000) >> 8);
    outb(0x21, 0xfe);

    struct trap_frame *f = (struct trap_frame *)(KSTACK_TOP - offsetof(struct trap_frame, w) - 20);
    f->vector = 0;
    load(&procs[0], f, f->w);
    sched_run(f);

    outb(0x21, 0xff);
    ok(cur == 0 && read_cr3() == kernel_pd, "all processes gone: back in the kernel's address space");

    rt_diag("timer interrupts: %u at CPL 3, %u at CPL 0", ticks_user, ticks_kernel);
    for (unsigned i = 0; i < 3; i++)
        show_output(&procs[i]);
    for (unsigned i = 0; i < 3; i++) {
        struct proc *p = &procs[i];
        struct ures r;
        copy_from_proc(p, &r, (uint32_t)&ures, sizeof r);
        check_entry(p, &r);
        if (p->role == ROLE_GAMMA)
            check_gamma(p, &r);
        else
            check_compute(p, &r, p->role == ROLE_ALPHA ? 0xa1fa : 0xbe7a);
    }
    unsigned exited = 0, killed = 0;
    for (unsigned i = 0; i < NVICTIMS; i++)
        check_victim(&procs[3 + i], &victims[i]);
    for (unsigned i = 0; i < NPROC; i++) {
        exited += procs[i].state == P_EXITED;
        killed += procs[i].state == P_KILLED;
    }
    ok(exited == 3 && killed == NVICTIMS, "%u processes: 3 exited, %u killed", (unsigned)NPROC, (unsigned)NVICTIMS);
    is(k_secret, 0x5ec2e7, "the kernel variable a process tried to write is unchanged");
    ok(KH->magic == KHIGH_MAGIC, "the kernel's data at 0xC0000000 is intact");
    uint32_t a0 = 0, a1 = 0;
    copy_from_proc(&procs[0], &a0, (uint32_t)&ures.getpid80, 4);
    copy_from_proc(&procs[1], &a1, (uint32_t)&ures.getpid80, 4);
    ok(a0 == 1 && a1 == 2, "the same user address holds each process's own data");
    write_cr0(read_cr0() & ~CR0_PG);
}
