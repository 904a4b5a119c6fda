/*
 * paging - 32-bit paging (no PAE) at CPL 0: what the shadow MMU must reproduce.
 *
 * 4 KiB pages through page tables and 4 MiB pages (CR4.PSE); #PF for not-present pages,
 * PDEs and instruction fetches, and for writes to read-only pages once CR0.WP = 1 (not
 * before), with the error code, CR2 (for a dword that runs into a not-present page: the
 * start of that page) and EIP of the faulting instruction; the accessed and dirty bits set
 * in PTEs and PDEs (4 KiB and 4 MiB); invlpg and CR3 reloads making a changed mapping
 * visible, toggling CR4.PGE flushing global pages; two linear pages aliasing one physical
 * page; switching between two page directories; a page-fault handler that maps the page
 * and retries (demand paging), also in the middle of a rep movsb crossing into the page
 * (the string instruction resumes where it stopped: ESI/EDI/ECX at the fault are checked);
 * self-modifying code written through an alias of the page it runs from; a live mapping
 * changed and invlpg'd with and without A/D preset (bt86 maps an already-accessed
 * translation at the invlpg, and the bits must still come out as hardware leaves them).
 */
#include "rt.h"

#define PTE_P 0x001u
#define PTE_W 0x002u
#define PTE_A 0x020u
#define PTE_D 0x040u
#define PDE_PS 0x080u
#define PTE_G 0x100u

static uint32_t pd[1024] __attribute__((aligned(4096)));
static uint32_t pd2[1024] __attribute__((aligned(4096)));
static uint32_t pt[1024] __attribute__((aligned(4096)));        /* linear 0x40000000.. */
static uint8_t frames[8][4096] __attribute__((aligned(4096)));  /* physical pages to map */

#define WIN 0x40000000u                    /* the test window: linear 1 GiB */
static inline volatile uint32_t *lin(uint32_t a) { return (volatile uint32_t *)PHYS(a); }
static inline void invlpg(uint32_t a) { asm volatile("invlpg (%0)" :: "r"(a) : "memory"); }

static void setup(void)
{
    for (unsigned i = 0; i < 32; i++)                 /* identity-map RAM with 4 MiB pages */
        pd[i] = (i << 22) | PDE_PS | PTE_W | PTE_P;
    pd[WIN >> 22] = (uint32_t)pt | PTE_W | PTE_P;
    for (unsigned i = 0; i < 8; i++)
        pt[i] = (uint32_t)frames[i] | PTE_W | PTE_P;  /* WIN + i*4K -> frames[i] */
    memcpy(pd2, pd, sizeof pd);
    write_cr4(read_cr4() | CR4_PSE);
    write_cr3((uint32_t)pd);
    write_cr0(read_cr0() | CR0_PG);
}

#define RUN(insn, ...)                                                                        \
    ({                                                                                        \
        uint32_t _at;                                                                         \
        rt_clear_last();                                                                      \
        asm volatile(CATCH("3f") "movl $1f, %0\n1:\t" insn "\n3:\t" UNCATCH                   \
                     : "=m"(_at) : __VA_ARGS__);                                               \
        at = _at;                                                                             \
    })
static uint32_t at;

static void basics(void)
{
    ok(read_cr0() & CR0_PG, "paging enabled, still running");
    frames[0][16] = 0x42;
    is(*(volatile uint8_t *)PHYS(WIN + 16), 0x42, "a 4 KiB page maps its frame");
    *lin(WIN + 0x1008) = 0xabcdef01;
    is(*(uint32_t *)&frames[1][8], 0xabcdef01, "a write through a 4 KiB page lands in its frame");
    is(read_cr3(), (uint32_t)pd, "CR3 reads back");
}

static uint32_t fetch_saved_esp __attribute__((used));

static void faults(void)
{
    uint32_t v;
    pt[2] &= ~PTE_P;
    invlpg(WIN + 0x2000);
    RUN("movl 0x40002010, %%eax", "i"(0) : "eax", "memory");
    is_trap(14, 1, 0x0, at, "read of a not-present page: #PF, error 0");
    is(read_cr2(), WIN + 0x2010, "CR2 = the address");
    RUN("movl $1, 0x40002ffc", "i"(0) : "memory");
    is_trap(14, 1, 0x2, at, "write to a not-present page: #PF, error 2");
    RUN("movl 0x40001ffe, %%eax", "i"(0) : "eax", "memory");
    is_trap(14, 1, 0x0, at, "a dword running into a not-present page: #PF");
    is(read_cr2(), WIN + 0x2000, "CR2 = the start of the not-present page");
    pt[2] |= PTE_P;
    invlpg(WIN + 0x2000);

    /* a not-present PDE */
    RUN("movl 0x40400000, %%eax", "i"(0) : "eax", "memory");
    is_trap(14, 1, 0x0, at, "read through a not-present PDE: #PF");
    is(read_cr2(), 0x40400000, "CR2 for the not-present PDE");

    /* read-only page: supervisor writes allowed while CR0.WP = 0 */
    pt[3] &= ~PTE_W;
    invlpg(WIN + 0x3000);
    RUN("movl $0x77, 0x40003000", "i"(0) : "memory");
    is(rt_last.count, 0, "CR0.WP = 0: a supervisor write to a read-only page works");
    write_cr0(read_cr0() | CR0_WP);
    RUN("movl $0x88, 0x40003000", "i"(0) : "memory");
    is_trap(14, 1, 0x3, at, "CR0.WP = 1: write to a read-only page: #PF, error 3");
    is(*(uint32_t *)frames[3], 0x77, "the faulting write changed nothing");
    RUN("movl 0x40003000, %%eax", "i"(0) : "eax", "memory");
    is(rt_last.count, 0, "reading the read-only page is fine");
    pt[3] |= PTE_W;
    invlpg(WIN + 0x3000);
    RUN("movl $0x99, 0x40003000", "i"(0) : "memory");
    ok(rt_last.count == 0 && *(uint32_t *)frames[3] == 0x99, "made writable + invlpg: the write works");
    write_cr0(read_cr0() & ~CR0_WP);

    /* instruction fetch from a not-present page: EIP and CR2 = the target */
    pt[4] &= ~PTE_P;
    invlpg(WIN + 0x4000);
    rt_clear_last();
    /* the call pushes before the fetch faults: ESP is put back by hand */
    asm volatile(CATCH("1f") "movl %%esp, fetch_saved_esp\n\tcall *%0\n1:\tmovl fetch_saved_esp, %%esp\n\t" UNCATCH
                 :: "r"(WIN + 0x4010) : "memory");
    ok(rt_last.vector == 14 && rt_last.err == 0 && rt_last.eip == WIN + 0x4010 && read_cr2() == WIN + 0x4010,
       "call into a not-present page: #PF at the target, error 0");
    pt[4] |= PTE_P;
    invlpg(WIN + 0x4000);
    (void)v;
}

static void accessed_dirty(void)
{
    pt[5] &= ~(PTE_A | PTE_D);
    pd[WIN >> 22] &= ~PTE_A;
    invlpg(WIN + 0x5000);
    (void)*lin(WIN + 0x5000);
    ok((pt[5] & (PTE_A | PTE_D)) == PTE_A, "a read sets PTE.A, not D");
    ok(pd[WIN >> 22] & PTE_A, "and the PDE's A");
    *lin(WIN + 0x5004) = 1;
    ok((pt[5] & (PTE_A | PTE_D)) == (PTE_A | PTE_D), "a write sets PTE.D");
    /* a 4 MiB page */
    pd[3] &= ~(PTE_A | PTE_D);
    invlpg(3u << 22);
    (void)*lin((3u << 22) + 0x100);
    ok((pd[3] & (PTE_A | PTE_D)) == PTE_A, "4 MiB page: a read sets A");
    *lin((3u << 22) + 0x100) = 5;
    ok((pd[3] & (PTE_A | PTE_D)) == (PTE_A | PTE_D), "4 MiB page: a write sets D");
}

static void remapping(void)
{
    frames[6][0] = 0x66;
    frames[7][0] = 0x77;
    pt[6] = (uint32_t)frames[6] | PTE_W | PTE_P;
    invlpg(WIN + 0x6000);
    is(*(volatile uint8_t *)PHYS(WIN + 0x6000), 0x66, "before remapping");
    pt[6] = (uint32_t)frames[7] | PTE_W | PTE_P;
    invlpg(WIN + 0x6000);
    is(*(volatile uint8_t *)PHYS(WIN + 0x6000), 0x77, "remapped + invlpg: the new frame");
    pt[6] = (uint32_t)frames[6] | PTE_W | PTE_P;
    write_cr3(read_cr3());
    is(*(volatile uint8_t *)PHYS(WIN + 0x6000), 0x66, "remapped + CR3 reload: the new frame");

    /* global pages: toggling CR4.PGE flushes them */
    write_cr4(read_cr4() | CR4_PGE);
    pt[6] = (uint32_t)frames[6] | PTE_G | PTE_W | PTE_P;
    invlpg(WIN + 0x6000);
    is(*(volatile uint8_t *)PHYS(WIN + 0x6000), 0x66, "global page");
    pt[6] = (uint32_t)frames[7] | PTE_G | PTE_W | PTE_P;
    write_cr4(read_cr4() & ~CR4_PGE);
    write_cr4(read_cr4() | CR4_PGE);
    is(*(volatile uint8_t *)PHYS(WIN + 0x6000), 0x77, "global page remapped + CR4.PGE toggled");
    pt[6] = (uint32_t)frames[6] | PTE_G | PTE_W | PTE_P;
    invlpg(WIN + 0x6000);
    is(*(volatile uint8_t *)PHYS(WIN + 0x6000), 0x66, "global page remapped + invlpg");
    write_cr4(read_cr4() & ~CR4_PGE);

    /* aliases */
    pt[7] = (uint32_t)frames[6] | PTE_W | PTE_P;      /* WIN+0x7000 and WIN+0x6000 -> frames[6] */
    invlpg(WIN + 0x7000);
    *lin(WIN + 0x6100) = 0x12121212;
    is(*lin(WIN + 0x7100), 0x12121212, "two linear pages, one frame: write one, read the other");
    *lin(WIN + 0x7104) = 0x34343434;
    is(*lin(WIN + 0x6104), 0x34343434, "and the other way round");
    pt[7] = (uint32_t)frames[7] | PTE_W | PTE_P;
    invlpg(WIN + 0x7000);

    /* two page directories */
    static uint32_t pt2[1024] __attribute__((aligned(4096)));
    memcpy(pt2, pt, sizeof pt2);
    pt2[6] = (uint32_t)frames[7] | PTE_W | PTE_P;
    pd2[WIN >> 22] = (uint32_t)pt2 | PTE_W | PTE_P;
    write_cr3((uint32_t)pd2);
    uint8_t b2 = *(volatile uint8_t *)PHYS(WIN + 0x6000);
    write_cr3((uint32_t)pd);
    uint8_t b1 = *(volatile uint8_t *)PHYS(WIN + 0x6000);
    ok(b2 == 0x77 && b1 == 0x66, "switching CR3 between two page directories");
}

/* ---- invlpg of a live mapping: A/D exactly as hardware leaves them ------------------------- */
static void invlpg_live(void)
{
    volatile uint8_t *p = PHYS(WIN + 0x6000);
    frames[6][0] = 0x66;
    frames[7][0] = 0x77;
    pt[6] = (uint32_t)frames[6] | PTE_W | PTE_P;
    invlpg(WIN + 0x6000);
    is(p[0], 0x66, "live page: mapped and read");
    pt[6] = (uint32_t)frames[7] | PTE_A | PTE_W | PTE_P;          /* accessed, not dirty */
    invlpg(WIN + 0x6000);
    is(p[0], 0x77, "accessed PTE changed + invlpg: the new frame");
    ok((pt[6] & (PTE_A | PTE_D)) == PTE_A, "the read leaves D clear");
    p[1] = 0x11;
    ok((pt[6] & (PTE_A | PTE_D)) == (PTE_A | PTE_D) && frames[7][1] == 0x11, "the first write sets D and lands in the new frame");
    pt[6] = (uint32_t)frames[6] | PTE_W | PTE_P;                  /* not accessed */
    invlpg(WIN + 0x6000);
    ok(!(pt[6] & PTE_A), "invlpg alone does not set A");
    is(p[0], 0x66, "unaccessed PTE changed + invlpg: the new frame");
    ok((pt[6] & (PTE_A | PTE_D)) == PTE_A, "the read sets A");
    pt[6] = (uint32_t)frames[7] | PTE_A | PTE_D | PTE_W | PTE_P;  /* accessed and dirty */
    invlpg(WIN + 0x6000);
    p[2] = 0x22;
    ok(frames[7][2] == 0x22 && p[0] == 0x77, "accessed+dirty PTE changed + invlpg: writes reach the new frame");
    pt[6] = (uint32_t)frames[7] | PTE_A | PTE_D | PTE_P;          /* read-only now */
    invlpg(WIN + 0x6000);
    write_cr0(read_cr0() | CR0_WP);
    RUN("movb $0x33, 0x40006003", "i"(0) : "memory");
    is_trap(14, 1, 0x3, at, "made read-only + invlpg (WP=1): the write faults");
    write_cr0(read_cr0() & ~CR0_WP);
    pt[6] = (uint32_t)frames[7] | PTE_A | PTE_W;                  /* not present, A kept */
    invlpg(WIN + 0x6000);
    RUN("movb 0x40006000, %%al", "i"(0) : "eax", "memory");
    is_trap(14, 1, 0x0, at, "made not present + invlpg: the read faults");
    pt[6] = (uint32_t)frames[6] | PTE_W | PTE_P;
    invlpg(WIN + 0x6000);
}

/* ---- demand paging ------------------------------------------------------------------------- */
static volatile uint32_t pf_count, pf_esi, pf_edi, pf_ecx, pf_cr2;
static void on_pf(struct trap_frame *f, uint32_t *eip)
{
    (void)eip;
    pf_count++;
    pf_cr2 = read_cr2();
    pf_esi = f->esi;
    pf_edi = f->edi;
    pf_ecx = f->ecx;
    uint32_t i = (pf_cr2 - WIN) >> 12;
    pt[i] |= PTE_P;
    invlpg(pf_cr2);
}

static void demand_paging(void)
{
    rt_set_hook(14, on_pf);
    pt[2] &= ~(PTE_P | PTE_A | PTE_D);
    invlpg(WIN + 0x2000);
    frames[2][0x123] = 0x5c;
    pf_count = 0;
    uint8_t b = *(volatile uint8_t *)PHYS(WIN + 0x2123);
    ok(pf_count == 1 && b == 0x5c, "#PF handler maps the page, the read is retried");
    ok((pt[2] & (PTE_A | PTE_D)) == PTE_A, "the retried read set A, not D");
    pt[2] &= ~PTE_P;                                  /* A and D set this time */
    pt[2] |= PTE_A | PTE_D;
    invlpg(WIN + 0x2000);
    pf_count = 0;
    *(volatile uint8_t *)PHYS(WIN + 0x2124) = 0x5d;
    ok(pf_count == 1 && frames[2][0x124] == 0x5d, "#PF handler maps an accessed, dirty page: the write is retried");

    /* rep movsb from frames[1] (mapped) into WIN+0x2000.. where page 2 is not present */
    pt[2] &= ~PTE_P;
    invlpg(WIN + 0x2000);
    for (unsigned i = 0; i < 4096; i++)
        frames[0][i] = (uint8_t)(i * 7);
    memset(frames[1], 0, 4096);
    memset(frames[2], 0, 4096);
    pf_count = 0;
    uint32_t s = WIN + 0x0000, d = WIN + 0x1800, c = 0x1000;
    asm volatile("cld; rep movsb" : "+S"(s), "+D"(d), "+c"(c) :: "memory");
    rt_set_hook(14, 0);
    is(pf_count, 1, "rep movsb into a not-present page: one #PF");
    is(pf_cr2, WIN + 0x2000, "#PF in rep movsb: CR2 = the first byte of the page");
    ok(pf_esi == WIN + 0x800 && pf_edi == WIN + 0x2000 && pf_ecx == 0x800,
       "#PF in rep movsb: ESI/EDI/ECX show the bytes already copied");
    ok(c == 0 && !memcmp(frames[1] + 0x800, frames[0], 0x800) && !memcmp(frames[2], frames[0] + 0x800, 0x800),
       "rep movsb resumed after the #PF and finished");
}

/* ---- self-modifying code through an alias ------------------------------------------------- */
static void smc_alias(void)
{
    /* frames[5] holds `mov $imm32, %eax; ret`, run at WIN+0x5000, written at WIN+0x7000 */
    pt[7] = (uint32_t)frames[5] | PTE_W | PTE_P;
    invlpg(WIN + 0x7000);
    volatile uint8_t *code = PHYS(WIN + 0x5000), *alias = PHYS(WIN + 0x7000);
    code[0x40] = 0xb8;
    *(volatile uint32_t *)&code[0x41] = 0x11111111;
    code[0x45] = 0xc3;
    uint32_t (*f)(void) = (uint32_t (*)(void))(WIN + 0x5040);
    is(f(), 0x11111111, "code run through one mapping");
    *(volatile uint32_t *)&alias[0x41] = 0x22222222;
    is(f(), 0x22222222, "rewritten through an alias of its page: the new code runs");
    alias[0x40] = 0x31;                 /* xor eax,eax; inc eax; ret */
    alias[0x41] = 0xc0;
    alias[0x42] = 0x40;
    alias[0x43] = 0xc3;
    is(f(), 1, "rewritten again through the alias");
    pt[7] = (uint32_t)frames[7] | PTE_W | PTE_P;
    invlpg(WIN + 0x7000);
}

void test_main(void)
{
    setup();
    basics();
    faults();
    accessed_dirty();
    remapping();
    invlpg_live();
    demand_paging();
    smc_alias();
    write_cr0(read_cr0() & ~CR0_PG);
    ok(!(read_cr0() & CR0_PG), "paging off again");
}
