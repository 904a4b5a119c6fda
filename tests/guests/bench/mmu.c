/*
 * mmu - the guest kernel of bench-mmu: what the events a shadow MMU virtualizes cost, in
 * TSC cycles per operation, at CPL 0 with 32-bit paging (no PAE).  See README.md.
 *
 * Address space: RAM identity-mapped with global 4 MiB pages (CR4.PSE|PGE), so kernel
 * code, stack and data survive CR3 reloads the way an OS kernel's do; the benchmarks use
 * non-global 4 KiB pages at 1 GiB and up, backed by a pool of physical pages at 64 MiB.
 *
 *   pgfault     a true page fault round trip: a load from a not-present page, whose #PF
 *               handler (a few instructions: drop the error code, step EIP over the 2-byte
 *               load, count, iret) just skips it.  Adams & Agesen's "pgfault".
 *   hiddenfill  first touch (one load) of each of 1024 pages that the guest's page table
 *               maps, right after a switch to an address space not used for the last
 *               SPACES - 1 switches that maps them with the same page table (as processes
 *               that share memory, scheduled in turn): what the VMM pays to fill its
 *               shadow on a hidden fault (on hardware: a TLB miss and a page walk).
 *               (bt86 keeps the shadows of the last 4 address spaces; with 2 the switch
 *               back would find everything mapped.)
 *   ptemod      write a PTE of a mapped page (alternating between two frames), invlpg it,
 *               load from the page.  Adams & Agesen's "ptemod", plus the invlpg and the
 *               touch that makes the change visible.  The PTE has A and D set, as an OS
 *               writes the PTEs of pages in use.
 *   ptemod-cold the same with A and D clear: the load sets A.
 *   cr3switch   a CR3 write to the other of two address spaces followed by one load from
 *               each page of a 64-page working set that the two map to different frames
 *               (64 refills per switch where only one address space is cached).  Per
 *               switch.
 *   sweep-NM    a working set of N MiB of 4 KiB pages (1 to 96), swept SWEEP_REPS times
 *               with one load per page, starting after switches through SPACES - 1 other
 *               address spaces and back (as a process scheduled again after many others
 *               finds its memory): cycles per page
 *               touched, fills included.  No two neighbouring pages map neighbouring
 *               frames (as in an OS's user memory), so a shadow MMU cannot map them
 *               together; what it keeps mapped must hold the whole working set, or a
 *               sweep evicts what the next one needs.  The cost per page must not grow
 *               with the size: no capacity cliff.
 *   wptoggle    CR0.WP cleared and set again, then one load (per toggle pair; WP is set
 *               for the benchmark and cleared after it).
 *   pgetoggle   CR4.PGE cleared and set again (how an OS flushes its global pages), then
 *               one load (per toggle pair).
 *   apic-eoi    a store to the local APIC's EOI register (nothing in service): a kernel
 *               store to a device page, which a VMM must emulate.
 *   apic-ipi    an interrupt round trip through the local APIC: a self-IPI (one ICR store),
 *               its delivery through the IDT, a handler that stores to EOI and irets.
 *   apic-timer  a timer interrupt round trip: the one-shot timer programmed to expire at
 *               once (initial count 1), its interrupt, the handler's EOI and iret.
 *
 * Each value is the average over many iterations minus the same loop without the event
 * (the loop overhead, and for hiddenfill/cr3switch the warm touches; not for the sweeps,
 * whose loads are the point), measured ROUNDS
 * times; the minimum is printed as "bench NAME CYCLES".  Every benchmark checks what it
 * read, so an engine whose paging is broken bails out (status 127) instead of printing
 * numbers.
 *
 * Not a test kernel: build.rs builds it apart, and it is not in bt86_guests::kernels().
 */
#include "rt.h"
#include "bench.h"

#define PTE_P 0x001u
#define PTE_W 0x002u
#define PTE_A 0x020u
#define PTE_D 0x040u
#define PDE_PS 0x080u
#define PTE_G 0x100u
#define PTE_PCD 0x010u

#define LAPIC 0xfee00000u
#define APIC_OPS 10000u
#define APIC_VECTOR 0x50

#define ROUNDS 3
#define PGFAULT_OPS 10000u
#define FILL_PAGES 1024u       /* one page table's worth: 4 MiB */
#define FILL_RELOADS 8u        /* CR3 switches (each followed by FILL_PAGES touches) per round */
#define SPACES 8u              /* address spaces hiddenfill and the sweeps switch through */
#define PTEMOD_OPS 10000u
#define SWITCH_PAGES 64u
#define SWITCH_PAIRS 200u      /* 2 * SWITCH_PAIRS switches per round */

/* Linear addresses (non-global 4 KiB pages) and the physical page pool. */
#define FILL_VA   0x40000000u  /* pt_fill: FILL_PAGES pages */
#define MISC_VA   0x40400000u  /* pt_misc: [0] not present, [1] ptemod page, [2] baseline */
#define SWITCH_VA 0x40800000u  /* pt_a in pd_a, pt_b in pd_b: SWITCH_PAGES pages each */
#define POOL      0x04000000u  /* 64 MiB */
#define POOL_FILL (POOL)                        /* FILL_PAGES frames */
#define POOL_A    (POOL + 0x400000u)            /* SWITCH_PAGES frames */
#define POOL_B    (POOL + 0x440000u)            /* SWITCH_PAGES frames */
#define POOL_MISC (POOL + 0x480000u)            /* 3 frames: X, Y, baseline */
#define POOL_END  (POOL + 0x500000u)
#define RAM_MAPPED 0x08000000u                  /* identity-mapped: 128 MiB */
#define SWEEP_VA  0x50000000u                   /* pt_sweep: SWEEP_MAX pages */
#define SWEEP_MAX 24576u                        /* 96 MiB */
#define SWEEP_REPS 4u
#define TOGGLE_OPS 2000u
/* The sweep's frames: [8 MiB, 64 MiB) then [72 MiB, 112 MiB), 96 MiB in all (the pool and
 * the kernel stay clear). */
#define SWEEP_LOW 0x00800000u
#define SWEEP_LOW_FRAMES ((POOL - SWEEP_LOW) / 4096u)
#define SWEEP_HIGH 0x04800000u
#define SWEEP_RAM 0x07000000u

static uint32_t pd_a[1024] __attribute__((aligned(4096)));
/* Copies of pd_a, other address spaces that share its page tables. */
static uint32_t pd_many[SPACES][1024] __attribute__((aligned(4096)));
static uint32_t pd_b[1024] __attribute__((aligned(4096)));
static uint32_t pt_fill[1024] __attribute__((aligned(4096)));
static uint32_t pt_misc[1024] __attribute__((aligned(4096)));
static uint32_t pt_a[1024] __attribute__((aligned(4096)));
static uint32_t pt_b[1024] __attribute__((aligned(4096)));
static volatile uint32_t dummy_pte[1024] __attribute__((aligned(4096)));
static uint32_t pt_sweep[SWEEP_MAX / 1024][1024] __attribute__((aligned(4096)));

static inline void invlpg(uint32_t a) { asm volatile("invlpg (%0)" :: "r"(a) : "memory"); }
static inline uint32_t peek(uint32_t a) { return *(volatile uint32_t *)PHYS(a); }
static inline void poke(uint32_t a, uint32_t v) { *(volatile uint32_t *)PHYS(a) = v; }
static inline uint32_t marker(uint32_t frame) { return frame ^ 0x5a5a0000u; }

/* ---- the #PF handler of pgfault ------------------------------------------------------- */
/* Entered through an interrupt gate with the error code on the stack; the faulting
 * instruction is the 2-byte `movl (%eax), %ecx` (8b 08) of pf_loop. */
volatile uint32_t pf_count;
void pf_skip(void);
asm(".text\n"
    ".globl pf_skip\n"
    "pf_skip:\n\t"
    "addl $4, %esp\n\t"          /* the error code */
    "addl $2, (%esp)\n\t"        /* EIP past the load */
    "incl pf_count\n\t"
    "iretl\n");

/* n loads from `addr`; each faults if the page is not present. */
__attribute__((noipa)) static void pf_loop(uint32_t addr, uint32_t n)
{
    asm volatile("1:\t.byte 0x8b, 0x08\n\t"  /* movl (%%eax), %%ecx */
                 "decl %%edx\n\t"
                 "jnz 1b"
                 : "+d"(n) : "a"(addr) : "ecx", "memory", "cc");
}

/* One load from the first dword of each of `n` pages from `va`; returns their sum. */
__attribute__((noipa)) static uint32_t touch(uint32_t va, uint32_t n)
{
    uint32_t sum = 0;
    for (uint32_t i = 0; i < n; i++)
        sum += peek(va + i * 4096);
    return sum;
}

static uint32_t per_op(uint64_t t, uint64_t base, uint32_t ops)
{
    return t > base ? (uint32_t)((t - base) / ops) : 0;
}

static void expect(uint32_t got, uint32_t want, const char *what)
{
    if (got != want)
        rt_bail("bench-mmu: %s: got 0x%x, expected 0x%x (paging does not work)", what, got, want);
}

/* ---- the interrupt handler of the APIC benchmarks --------------------------------------- */
volatile uint32_t apic_count;
void apic_isr(void);
asm(".text\n"
    ".globl apic_isr\n"
    "apic_isr:\n\t"
    "movl $0, 0xfee000b0\n\t"  /* EOI */
    "incl apic_count\n\t"
    "iretl\n");

/* n stores of `value` to `addr`. Inlined: each call has its own store instruction (bt86
 * turns a store that keeps hitting device memory into a callout; the RAM baseline's store
 * must not be that one). */
static inline __attribute__((always_inline)) void store_loop(uint32_t addr, uint32_t value, uint32_t n)
{
    asm volatile("1:\tmovl %%ecx, (%%eax)\n\t"
                 "decl %%edx\n\t"
                 "jnz 1b"
                 : "+d"(n) : "a"(addr), "c"(value) : "memory", "cc");
}

/* ---- set-up ----------------------------------------------------------------------------- */

/* The frame of sweep page i: the frames in an order where no two neighbouring pages have
 * neighbouring frames (7919 is prime, so i -> i * 7919 mod SWEEP_MAX is a permutation). */
static uint32_t sweep_frame(uint32_t i)
{
    uint32_t k = (uint32_t)(((uint64_t)i * 7919u) % SWEEP_MAX);
    return k < SWEEP_LOW_FRAMES ? SWEEP_LOW + k * 4096u : SWEEP_HIGH + (k - SWEEP_LOW_FRAMES) * 4096u;
}

static void setup(void)
{
    const uint32_t *mbi = (const uint32_t *)rt_mb_info;
    if (rt_mb_magic != 0x2badb002 || !(mbi[0] & 1) || 0x100000u + mbi[2] * 1024u < SWEEP_RAM)
        rt_bail("bench-mmu needs at least %u MiB of RAM", SWEEP_RAM >> 20);

    for (uint32_t i = 0; i < RAM_MAPPED >> 22; i++)
        pd_a[i] = (i << 22) | PDE_PS | PTE_G | PTE_W | PTE_P;
    for (uint32_t i = 0; i < FILL_PAGES; i++) {
        uint32_t frame = POOL_FILL + i * 4096;
        pt_fill[i] = frame | PTE_W | PTE_P;
        poke(frame, marker(frame));
    }
    for (uint32_t i = 0; i < 3; i++)
        poke(POOL_MISC + i * 4096, marker(POOL_MISC + i * 4096));
    pt_misc[0] = 0;                                   /* not present: pgfault */
    pt_misc[1] = POOL_MISC | PTE_W | PTE_P;           /* ptemod: X or Y */
    pt_misc[2] = (POOL_MISC + 0x2000) | PTE_W | PTE_P;/* present: the baselines */
    for (uint32_t i = 0; i < SWITCH_PAGES; i++) {
        pt_a[i] = (POOL_A + i * 4096) | PTE_W | PTE_P;
        pt_b[i] = (POOL_B + i * 4096) | PTE_W | PTE_P;
        poke(POOL_A + i * 4096, marker(POOL_A + i * 4096));
        poke(POOL_B + i * 4096, marker(POOL_B + i * 4096));
    }
    for (uint32_t i = 0; i < SWEEP_MAX; i++) {
        uint32_t frame = sweep_frame(i);
        pt_sweep[i / 1024][i % 1024] = frame | PTE_W | PTE_P;
        poke(frame, marker(frame));
    }
    for (uint32_t t = 0; t < SWEEP_MAX / 1024; t++)
        pd_a[(SWEEP_VA >> 22) + t] = (uint32_t)pt_sweep[t] | PTE_W | PTE_P;
    pd_a[FILL_VA >> 22] = (uint32_t)pt_fill | PTE_W | PTE_P;
    pd_a[MISC_VA >> 22] = (uint32_t)pt_misc | PTE_W | PTE_P;
    pd_a[LAPIC >> 22] = (LAPIC & 0xffc00000u) | PDE_PS | PTE_PCD | PTE_W | PTE_P;
    memcpy(pd_b, pd_a, sizeof pd_a);
    for (uint32_t i = 0; i < SPACES; i++)
        memcpy(pd_many[i], pd_a, sizeof pd_a);
    pd_a[SWITCH_VA >> 22] = (uint32_t)pt_a | PTE_W | PTE_P;
    pd_b[SWITCH_VA >> 22] = (uint32_t)pt_b | PTE_W | PTE_P;

    rt_idt_set(14, (uint32_t)pf_skip, SEL_KCODE, GATE_INT);
    rt_idt_set(APIC_VECTOR, (uint32_t)apic_isr, SEL_KCODE, GATE_INT);
    write_cr4(read_cr4() | CR4_PSE | CR4_PGE);
    write_cr3((uint32_t)pd_a);
    write_cr0(read_cr0() | CR0_PG);

    expect(peek(FILL_VA + 5 * 4096), marker(POOL_FILL + 5 * 4096), "a 4 KiB page after enabling paging");
}

static uint32_t sum_markers(uint32_t frames, uint32_t n)
{
    uint32_t s = 0;
    for (uint32_t i = 0; i < n; i++)
        s += marker(frames + i * 4096);
    return s;
}

/* ---- the benchmarks --------------------------------------------------------------------- */

static uint64_t bench_pgfault(void)
{
    pf_count = 0;
    uint64_t t0 = bench_rdtsc();
    pf_loop(MISC_VA, PGFAULT_OPS);
    uint64_t t1 = bench_rdtsc();
    pf_loop(MISC_VA + 0x2000, PGFAULT_OPS);
    uint64_t t2 = bench_rdtsc();
    expect(pf_count, PGFAULT_OPS, "pgfault: #PF count");
    expect(read_cr2(), MISC_VA, "pgfault: CR2");
    return per_op(t1 - t0, t2 - t1, PGFAULT_OPS);
}

static uint64_t bench_hiddenfill(void)
{
    uint64_t cold = 0, warm = 0;
    uint32_t want = sum_markers(POOL_FILL, FILL_PAGES);
    for (uint32_t k = 0; k < FILL_RELOADS; k++) {
        write_cr3((uint32_t)pd_many[k % SPACES]);
        uint64_t t0 = bench_rdtsc();
        uint32_t s0 = touch(FILL_VA, FILL_PAGES);
        uint64_t t1 = bench_rdtsc();
        uint32_t s1 = touch(FILL_VA, FILL_PAGES);
        uint64_t t2 = bench_rdtsc();
        cold += t1 - t0;
        warm += t2 - t1;
        expect(s0, want, "hiddenfill: cold touches");
        expect(s1, want, "hiddenfill: warm touches");
    }
    return per_op(cold, warm, FILL_RELOADS * FILL_PAGES);
}

/* The PTE is written with `extra` flags: A|D as an OS writes the PTEs of pages in use
 * (Linux's protections carry A, and D once written), or none ("cold": the load after the
 * invlpg must set A itself). */
static uint32_t ptemod(uint32_t extra)
{
    const uint32_t x = POOL_MISC, y = POOL_MISC + 0x1000, va = MISC_VA + 0x1000;
    uint32_t s0 = 0, s1 = 0;
    uint64_t t0 = bench_rdtsc();
    for (uint32_t i = 0; i < PTEMOD_OPS; i++) {
        pt_misc[1] = ((i & 1) ? y : x) | extra | PTE_W | PTE_P;
        invlpg(va);
        s0 += peek(va);
    }
    uint64_t t1 = bench_rdtsc();
    for (uint32_t i = 0; i < PTEMOD_OPS; i++) {
        dummy_pte[1] = ((i & 1) ? y : x) | extra | PTE_W | PTE_P;
        s1 += peek(MISC_VA + 0x2000);
    }
    uint64_t t2 = bench_rdtsc();
    expect(s0, (PTEMOD_OPS / 2) * (marker(x) + marker(y)), "ptemod: loads after the PTE writes");
    expect(s1, PTEMOD_OPS * marker(POOL_MISC + 0x2000), "ptemod: baseline loads");
    return per_op(t1 - t0, t2 - t1, PTEMOD_OPS);
}

static uint64_t bench_ptemod(void) { return ptemod(PTE_A | PTE_D); }
static uint64_t bench_ptemod_cold(void) { return ptemod(0); }

static uint64_t bench_cr3switch(void)
{
    uint32_t sa = 0, sb = 0, sw = 0;
    uint64_t t0 = bench_rdtsc();
    for (uint32_t i = 0; i < SWITCH_PAIRS; i++) {
        write_cr3((uint32_t)pd_b);
        sb += touch(SWITCH_VA, SWITCH_PAGES);
        write_cr3((uint32_t)pd_a);
        sa += touch(SWITCH_VA, SWITCH_PAGES);
    }
    uint64_t t1 = bench_rdtsc();
    for (uint32_t i = 0; i < 2 * SWITCH_PAIRS; i++)
        sw += touch(SWITCH_VA, SWITCH_PAGES);
    uint64_t t2 = bench_rdtsc();
    expect(sa, SWITCH_PAIRS * sum_markers(POOL_A, SWITCH_PAGES), "cr3switch: address space A");
    expect(sb, SWITCH_PAIRS * sum_markers(POOL_B, SWITCH_PAGES), "cr3switch: address space B");
    expect(sw, 2 * SWITCH_PAIRS * sum_markers(POOL_A, SWITCH_PAGES), "cr3switch: baseline");
    return per_op(t1 - t0, t2 - t1, 2 * SWITCH_PAIRS);
}

/* SWEEP_REPS sweeps over the first `pages` sweep pages, from cold: cycles per page. */
static uint64_t sweep(uint32_t pages)
{
    uint32_t want = 0, s = 0;
    for (uint32_t i = 0; i < pages; i++)
        want += marker(sweep_frame(i));
    for (uint32_t i = 0; i < SPACES; i++)
        write_cr3((uint32_t)pd_many[i]);
    write_cr3((uint32_t)pd_a);
    uint64_t t0 = bench_rdtsc();
    for (uint32_t r = 0; r < SWEEP_REPS; r++)
        s += touch(SWEEP_VA, pages);
    uint64_t t1 = bench_rdtsc();
    expect(s, SWEEP_REPS * want, "sweep: the markers of the working set");
    return (t1 - t0) / ((uint64_t)pages * SWEEP_REPS);
}

static uint64_t bench_sweep1(void) { return sweep(256); }
static uint64_t bench_sweep8(void) { return sweep(8 * 256); }
static uint64_t bench_sweep32(void) { return sweep(32 * 256); }
static uint64_t bench_sweep64(void) { return sweep(64 * 256); }
static uint64_t bench_sweep96(void) { return sweep(96 * 256); }

/* TOGGLE_OPS times: clear and set `bit` of CR0 (cr == 0) or CR4 (cr == 4), then one load. */
static uint64_t toggle(int cr, uint32_t bit)
{
    uint32_t s0 = 0, s1 = 0;
    uint32_t v = (cr == 0 ? read_cr0() : read_cr4()) | bit;
    if (cr == 0)
        write_cr0(v);
    else
        write_cr4(v);
    uint64_t t0 = bench_rdtsc();
    for (uint32_t i = 0; i < TOGGLE_OPS; i++) {
        if (cr == 0) {
            write_cr0(v & ~bit);
            write_cr0(v);
        } else {
            write_cr4(v & ~bit);
            write_cr4(v);
        }
        s0 += peek(FILL_VA);
    }
    uint64_t t1 = bench_rdtsc();
    for (uint32_t i = 0; i < TOGGLE_OPS; i++)
        s1 += peek(FILL_VA);
    uint64_t t2 = bench_rdtsc();
    if (cr == 0)
        write_cr0(v & ~bit);
    expect(s0, TOGGLE_OPS * marker(POOL_FILL), "toggle: loads after the toggles");
    expect(s1, TOGGLE_OPS * marker(POOL_FILL), "toggle: baseline loads");
    return per_op(t1 - t0, t2 - t1, TOGGLE_OPS);
}

static uint64_t bench_wptoggle(void) { return toggle(0, CR0_WP); }
static uint64_t bench_pgetoggle(void) { return toggle(4, CR4_PGE); }

static uint64_t bench_apic_eoi(void)
{
    poke(LAPIC + 0xf0, 0x1ff);                         /* SVR: software enabled */
    uint64_t t0 = bench_rdtsc();
    store_loop(LAPIC + 0xb0, 0, APIC_OPS);
    uint64_t t1 = bench_rdtsc();
    store_loop((uint32_t)&dummy_pte[0], 0, APIC_OPS);
    uint64_t t2 = bench_rdtsc();
    return per_op(t1 - t0, t2 - t1, APIC_OPS);
}

static uint64_t bench_apic_ipi(void)
{
    poke(LAPIC + 0xf0, 0x1ff);
    apic_count = 0;
    sti();
    uint64_t t0 = bench_rdtsc();
    store_loop(LAPIC + 0x300, (1u << 18) | APIC_VECTOR, APIC_OPS);  /* self, fixed */
    uint64_t t1 = bench_rdtsc();
    store_loop((uint32_t)&dummy_pte[0], 0, APIC_OPS);
    uint64_t t2 = bench_rdtsc();
    cli();
    expect(apic_count, APIC_OPS, "apic-ipi: interrupts taken");
    return per_op(t1 - t0, t2 - t1, APIC_OPS);
}

static uint64_t bench_apic_timer(void)
{
    poke(LAPIC + 0xf0, 0x1ff);
    poke(LAPIC + 0x3e0, 0xb);                          /* divide by 1 */
    poke(LAPIC + 0x320, APIC_VECTOR);                  /* one-shot, unmasked */
    apic_count = 0;
    sti();
    uint64_t t0 = bench_rdtsc();
    for (uint32_t i = 0; i < APIC_OPS; i++) {
        poke(LAPIC + 0x380, 1);
        for (uint32_t spin = 0; apic_count == i && spin < 100000000u; spin++)
            ;
    }
    uint64_t t1 = bench_rdtsc();
    cli();
    poke(LAPIC + 0x320, 0x10000 | APIC_VECTOR);
    expect(apic_count, APIC_OPS, "apic-timer: interrupts taken");
    return (t1 - t0) / APIC_OPS;
}

/* A command line naming benchmarks runs only those (for profiling one of them). */
static void run(const char *name, uint64_t (*bench)(void))
{
    static const char *const all[] = {"pgfault", "hiddenfill", "ptemod", "ptemod-cold", "cr3switch", "sweep-1M", "sweep-8M",
                                      "sweep-32M", "sweep-64M", "sweep-96M", "wptoggle", "pgetoggle",
                                      "apic-eoi", "apic-ipi", "apic-timer"};
    if (bench_selected(name, all, sizeof all / sizeof all[0], rt_cmdline_has))
        bench_best(name, bench, ROUNDS);
}

void bench_write(const char *s) { rt_puts(s); }

void test_main(void)
{
    bench_clock("begin");
    setup();
    run("pgfault", bench_pgfault);
    run("hiddenfill", bench_hiddenfill);
    run("ptemod", bench_ptemod);
    run("ptemod-cold", bench_ptemod_cold);
    run("cr3switch", bench_cr3switch);
    run("sweep-1M", bench_sweep1);
    run("sweep-8M", bench_sweep8);
    run("sweep-32M", bench_sweep32);
    run("sweep-64M", bench_sweep64);
    run("sweep-96M", bench_sweep96);
    run("wptoggle", bench_wptoggle);
    run("pgetoggle", bench_pgetoggle);
    run("apic-eoi", bench_apic_eoi);
    run("apic-ipi", bench_apic_ipi);
    run("apic-timer", bench_apic_timer);
    write_cr0(read_cr0() & ~CR0_PG);
    bench_clock("end");
}
