/*
 * user - the guest kernel of bench-user: what user code (CPL 3) costs, in TSC cycles per
 * operation, under an OS-like set-up.  See README.md.
 *
 * The kernel turns on 32-bit paging (CR0.WP too): the first 8 MiB identity-mapped with
 * 4 KiB pages, supervisor-only (and global) except the user part of the image
 * (bench-user.ld: userland.o and workloads.o, code read-only, data writable, U/S = 1); the
 * rest of RAM with global 4 MiB supervisor pages; 4 MiB of user pages at 1 GiB for userpf,
 * backed by frames at 64 MiB.  GDT: DPL 3 flat code and data (0x90/0x98, RPL 3), after
 * kernel code and data copies at 0x80/0x88 as SYSENTER_CS (MSR 0x174) needs them; a TSS
 * with SS0:ESP0; IDT gates 0x80 and 0x81 with DPL 3 (0x81: back to the kernel).  It enters
 * user mode with iret (EFLAGS 0x202: IF = 1, IOPL 0) to run one round of one benchmark
 * (userland.c), which times itself with rdtsc at CPL 3 and returns through `int $0x81`.
 *
 *   syscall      `int $0x80` from CPL 3 to a handler that counts and irets at once
 *   sysenter     `sysenter` to a handler (MSRs 0x174-0x176) that counts and does
 *                `sti; sysexit` (IF = 1 again, as Linux did); skipped without CPUID.SEP
 *   userpf       a load from a not-present user page (its entry already accessed, as an
 *                OS makes it): the #PF handler (CR2 -> PTE index, set P in the PTE,
 *                count, pop the error code, iret; no invlpg, which a not-present ->
 *                present change does not need) and the retried load.  Each
 *                round touches UL_PF_PAGES pages once each, so that every load takes a true
 *                fault; the kernel clears their P bits and reloads CR3 between rounds
 *                (untimed).  Baseline: the same loads again, pages present.
 *   userde       `divl %ecx` with ECX = 0 at CPL 3: the #DE handler steps EIP over the
 *                2-byte instruction, counts and irets.  Baseline: ECX = 1.
 *   usercompute  intloop + crc32 of workloads.c at CPL 3 (bench_compute): total cycles.
 *
 * Each per-operation value is (loop with the event - the same loop without it) / operations,
 * taken ROUNDS times; the lowest is printed as "bench NAME CYCLES" (for usercompute the
 * fastest round).  The handlers count, and the kernel checks the counts and what the loads
 * read, so an engine that got something wrong bails out (status 127) instead of printing
 * numbers.  A command line naming benchmarks runs only those.
 *
 * Not a test kernel: build.rs builds it apart, and it is not in bt86_guests::kernels().
 */
#include "rt.h"
#include "bench.h"
#include "userland.h"

#define PTE_P 0x001u
#define PTE_W 0x002u
#define PTE_U 0x004u
#define PTE_A 0x020u
#define PDE_PS 0x080u
#define PTE_G 0x100u

#define ROUNDS 3

#define LOW_MAPPED 0x00800000u   /* 4 KiB pages: 8 MiB, two page tables */
#define RAM_MAPPED 0x08000000u   /* identity-mapped in all: 128 MiB */
#define PF_VA      0x40000000    /* userpf: UL_PF_PAGES user pages (no suffix: used in asm) */
#define PF_BYTES   0x00400000
#define PF_POOL    0x04000000u   /* their frames: 64 MiB */
_Static_assert(PF_BYTES == UL_PF_PAGES * 4096, "one page table for userpf");

/* GDT: kernel code/data for SYSENTER_CS, then user code/data at SYSENTER_CS + 16/24. */
#define SEL_SE_KCODE 0x80
#define SEL_SE_KDATA 0x88
#define SEL_UCODE    0x90
#define SEL_UDATA    0x98
#define UCS          0x93        /* SEL_UCODE | 3 */
#define UDS          0x9b        /* SEL_UDATA | 3 */
#define STR_(x) #x
#define STR(x) STR_(x)

uint32_t ub_pd[1024] __attribute__((aligned(4096)));
uint32_t ub_pt_low[2][1024] __attribute__((aligned(4096)));
uint32_t ub_pt_pf[1024] __attribute__((aligned(4096)));
static uint8_t kstack[8192] __attribute__((aligned(16)));   /* ESP0 and sysenter's ESP */
extern char __user_start[], __user_data_start[], __user_end[];

/* What the handlers count. */
volatile uint32_t sc_count, se_count, de_count, pf_count;
/* The runtime's stub for #PF: a fault the userpf handler does not expect bails out. */
uint32_t pf_unexpected;
uint32_t user_kernel_esp;

/* ---- entering and leaving CPL 3; the handlers ---------------------------------------------- */
/* void user_run(void (*fn)(void)): runs fn at CPL 3 on ul_stack; fn returns to ul_exit
 * (userland.c), whose `int $0x81` comes back to user_return, which returns from user_run. */
extern void user_run(void (*fn)(void));
void user_return(void), sc_entry(void), se_entry(void), de_entry(void), pf_entry(void);
asm(".text\n"
    ".globl user_run, user_return, sc_entry, se_entry, de_entry, pf_entry\n"
    "user_run:\n\t"
    "pushl %ebp\n\tpushl %ebx\n\tpushl %esi\n\tpushl %edi\n\t"
    "movl 20(%esp), %eax\n\t"
    "movl %esp, user_kernel_esp\n\t"
    "movl $ul_stack + " STR(UL_STACK_BYTES) " - 16, %edx\n\t"
    "movl $ul_exit, (%edx)\n\t"              /* fn's return address */
    "movw $" STR(UDS) ", %cx\n\t"
    "movw %cx, %ds\n\tmovw %cx, %es\n\tmovw %cx, %fs\n\tmovw %cx, %gs\n\t"
    "pushl $" STR(UDS) "\n\t"                /* SS */
    "pushl %edx\n\t"                         /* ESP */
    "pushl $0x202\n\t"                       /* EFLAGS: IF */
    "pushl $" STR(UCS) "\n\t"
    "pushl %eax\n\t"                         /* EIP */
    "iretl\n"
    "user_return:\n\t"                       /* int $0x81 from CPL 3 */
    "movw $" STR(SEL_KDATA) ", %cx\n\t"
    "movw %cx, %ds\n\tmovw %cx, %es\n\tmovw %cx, %fs\n\tmovw %cx, %gs\n\t"
    "movl user_kernel_esp, %esp\n\t"
    "popl %edi\n\tpopl %esi\n\tpopl %ebx\n\tpopl %ebp\n\t"
    "ret\n"

    "sc_entry:\n\t"                          /* int $0x80 */
    "incl sc_count\n\t"
    "iretl\n"

    "se_entry:\n\t"                          /* sysenter */
    "incl se_count\n\t"
    "sti\n\t"
    "sysexit\n"

    "de_entry:\n\t"                          /* #DE: skip the 2-byte divl */
    "addl $2, (%esp)\n\t"
    "incl de_count\n\t"
    "iretl\n"

    "pf_entry:\n\t"                          /* #PF: map the page */
    "pushl %eax\n\t"
    "movl %cr2, %eax\n\t"
    "subl $" STR(PF_VA) ", %eax\n\t"
    "cmpl $" STR(PF_BYTES) ", %eax\n\t"
    "jae 1f\n\t"
    "shrl $12, %eax\n\t"
    "orl $1, ub_pt_pf(, %eax, 4)\n\t"        /* PTE_P */
    "incl pf_count\n\t"
    "popl %eax\n\t"
    "addl $4, %esp\n\t"                      /* the error code */
    "iretl\n"
    "1:\tpopl %eax\n\t"
    "jmp *pf_unexpected\n");

/* ---- set-up ------------------------------------------------------------------------------- */

static inline uint32_t marker(uint32_t frame) { return frame ^ 0x5a5a0000u; }

static void expect(uint32_t got, uint32_t want, const char *what)
{
    if (got != want)
        rt_bail("bench-user: %s: got 0x%x, expected 0x%x", what, got, want);
}

static inline void wrmsr(uint32_t msr, uint32_t v) { asm volatile("wrmsr" :: "c"(msr), "a"(v), "d"(0)); }

static int have_sep;

static void setup(void)
{
    const uint32_t *mbi = (const uint32_t *)rt_mb_info;
    if (rt_mb_magic != 0x2badb002 || !(mbi[0] & 1) || 0x100000u + mbi[2] * 1024u < PF_POOL + PF_BYTES)
        rt_bail("bench-user needs at least %u MiB of RAM", (PF_POOL + PF_BYTES) >> 20);
    if ((uint32_t)__user_end > LOW_MAPPED)
        rt_bail("bench-user: the image ends at 0x%x, beyond the 4 KiB pages", (uint32_t)__user_end);

    /* GDT, TSS, IDT, sysenter. */
    rt_gdt[SEL_SE_KCODE >> 3] = rt_desc(0, 0xfffff, 0x9b, 0xc);
    rt_gdt[SEL_SE_KDATA >> 3] = rt_desc(0, 0xfffff, 0x93, 0xc);
    rt_gdt[SEL_UCODE >> 3] = rt_desc(0, 0xfffff, 0xfb, 0xc);
    rt_gdt[SEL_UDATA >> 3] = rt_desc(0, 0xfffff, 0xf3, 0xc);
    rt_tss[1] = (uint32_t)kstack + sizeof kstack;   /* ESP0 */
    rt_tss[2] = SEL_KDATA;                          /* SS0 */
    asm volatile("ltr %w0" :: "r"(SEL_TSS));
    rt_idt_set(0x80, (uint32_t)sc_entry, SEL_KCODE, GATE_INT | 0x60);
    rt_idt_set(0x81, (uint32_t)user_return, SEL_KCODE, GATE_INT | 0x60);
    rt_idt_set(0, (uint32_t)de_entry, SEL_KCODE, GATE_INT);
    rt_idt_set(14, (uint32_t)pf_entry, SEL_KCODE, GATE_INT);
    pf_unexpected = rt_stub(14);
    uint32_t a, b, c, d;
    cpuid(1, &a, &b, &c, &d);
    have_sep = (d >> 11) & 1;
    if (have_sep) {
        wrmsr(0x174, SEL_SE_KCODE);
        wrmsr(0x175, (uint32_t)kstack + sizeof kstack);
        wrmsr(0x176, (uint32_t)se_entry);
    }

    /* Page tables. */
    for (uint32_t i = 0; i < 2 * 1024; i++) {
        uint32_t page = i << 12, pte = page | PTE_W | PTE_P | PTE_G;
        if (page >= (uint32_t)__user_start && page < (uint32_t)__user_end) {
            pte = page | PTE_U | PTE_P;
            if (page >= (uint32_t)__user_data_start)
                pte |= PTE_W;
        }
        ub_pt_low[i >> 10][i & 1023] = pte;
    }
    ub_pd[0] = (uint32_t)ub_pt_low[0] | PTE_U | PTE_W | PTE_P;
    ub_pd[1] = (uint32_t)ub_pt_low[1] | PTE_U | PTE_W | PTE_P;
    for (uint32_t i = LOW_MAPPED >> 22; i < RAM_MAPPED >> 22; i++)
        ub_pd[i] = (i << 22) | PDE_PS | PTE_G | PTE_W | PTE_P;
    ub_pd[PF_VA >> 22] = (uint32_t)ub_pt_pf | PTE_U | PTE_W | PTE_P;
    for (uint32_t i = 0; i < UL_PF_PAGES; i++)
        *(volatile uint32_t *)PHYS(PF_POOL + i * 4096) = marker(PF_POOL + i * 4096);

    write_cr4(read_cr4() | CR4_PSE | CR4_PGE);
    write_cr3((uint32_t)ub_pd);
    write_cr0(read_cr0() | CR0_PG | CR0_WP);
}

/* ---- the benchmarks ------------------------------------------------------------------------ */

static uint32_t per_op(uint64_t t, uint64_t base, uint32_t ops)
{
    return t > base ? (uint32_t)((t - base) / ops) : 0;
}

static uint64_t bench_syscall(void)
{
    sc_count = 0;
    user_run(ul_syscall);
    expect(sc_count, UL_SYSCALL_OPS, "syscall: int 0x80 count");
    return per_op(ul_job.t_event, ul_job.t_base, UL_SYSCALL_OPS);
}

static uint64_t bench_sysenter(void)
{
    se_count = 0;
    user_run(ul_sysenter);
    expect(se_count, UL_SYSENTER_OPS, "sysenter: sysenter count");
    return per_op(ul_job.t_event, ul_job.t_base, UL_SYSENTER_OPS);
}

static uint64_t bench_userpf(void)
{
    uint32_t want = 0;
    for (uint32_t i = 0; i < UL_PF_PAGES; i++) {
        /* not present; accessed already, as an OS makes its entries (Linux's page
         * protections include A), so that the retried load sets no bit */
        ub_pt_pf[i] = (PF_POOL + i * 4096) | PTE_A | PTE_U;
        want += marker(PF_POOL + i * 4096);
    }
    write_cr3(read_cr3());
    pf_count = 0;
    ul_job.va = PF_VA;
    user_run(ul_userpf);
    expect(pf_count, UL_PF_PAGES, "userpf: #PF count");
    expect(ul_job.sum_event, want, "userpf: what the faulting loads read");
    expect(ul_job.sum_base, want, "userpf: what the loads of present pages read");
    return per_op(ul_job.t_event, ul_job.t_base, UL_PF_PAGES);
}

static uint64_t bench_userde(void)
{
    de_count = 0;
    user_run(ul_userde);
    expect(de_count, UL_DE_OPS, "userde: #DE count");
    return per_op(ul_job.t_event, ul_job.t_base, UL_DE_OPS);
}

static int computed;
static uint32_t compute_result;

static uint64_t bench_usercompute(void)
{
    user_run(ul_compute);
    if (computed && ul_job.sum_event != compute_result)
        rt_bail("bench-user: usercompute: 0x%x, then 0x%x", compute_result, ul_job.sum_event);
    computed = 1;
    compute_result = ul_job.sum_event;
    return ul_job.t_event;
}

/* A command line naming benchmarks runs only those (for profiling one of them). */
static void run(const char *name, uint64_t (*bench)(void))
{
    static const char *const all[] = {"syscall", "sysenter", "userpf", "userde", "usercompute"};
    if (bench_selected(name, all, sizeof all / sizeof all[0], rt_cmdline_has))
        bench_best(name, bench, ROUNDS);
}

void bench_write(const char *s) { rt_puts(s); }

void test_main(void)
{
    bench_clock("begin");
    setup();
    run("syscall", bench_syscall);
    if (have_sep)
        run("sysenter", bench_sysenter);
    run("userpf", bench_userpf);
    run("userde", bench_userde);
    run("usercompute", bench_usercompute);
    if (computed)
        bench_check("usercompute", compute_result);
    write_cr0(read_cr0() & ~CR0_PG);
    bench_clock("end");
}
