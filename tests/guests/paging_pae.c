/*
 * paging_pae - PAE paging (CR4.PAE) and execute-disable (EFER.NXE) at CPL 0.
 *
 * CPUID: PAE (leaf 1) and NX (leaf 0x80000001); EFER (MSR 0xC0000080) reads 0 after reset,
 * NXE (bit 11) can be set and cleared.  PAE paging is enabled the way an OS does it (CR4.PAE
 * with paging off, CR3 = a 32-byte aligned PDPT of four 64-bit entries, then CR0.PG), with
 * the kernel identity-mapped by 2 MiB pages (CR4.PSE clear: PS works without it under PAE)
 * and a window of 4 KiB pages; a 4 KiB page at 0xC0000000 (PDPTE 3), a 2 MiB page at
 * 0x80000000 (PDPTE 2) aliasing one at 0x40200000, a 2 MiB page at the top of the address
 * space; two PDPTs in one page (CR3 with bit 5 set).  #PF error codes at CPL 0: not-present
 * PTE, PDE and PDPTE (read 0, write 2, fetch 0x10 with NXE = 1, 0 with NXE = 0), write to a
 * read-only page (R/W clear in the PTE, in the PDE only, in a 2 MiB PDE) with CR0.WP = 1 (3)
 * and not with WP = 0; reserved bits (RSVD, error 8|W|I/D): bits MAXPHYADDR, 51, 52 and 62 in
 * a PTE, bits 51 and 62 in a PDE that points to a page table, bits 13, 52 and 62 in a 2 MiB
 * PDE, and bit 63 (NX) in a PTE, a PDE and a 2 MiB PDE while EFER.NXE = 0.  NX: with
 * EFER.NXE = 1 a fetch from a page with bit 63 set in its PTE, in the PDE above it, or in a
 * 2 MiB PDE faults with error 0x11 (P|I/D), CR2 = EIP = the target, while reads, writes and
 * a stack on it work; an instruction straddling into an NX page (CR2 = the NX page, EIP =
 * the instruction) and code falling through into one; NX set, cleared and set again on a
 * page whose code already ran, made visible by invlpg and by a CR3 reload (translated code
 * must be dropped); a fetch fault's I/D bit (0x10) needs EFER.NXE = 1.  Accessed and dirty
 * bits in 64-bit entries: 4 KiB PTE (read, write, fetch) and the PDE above it, 2 MiB PDEs
 * (one at 0xFFE00000 too); setting them keeps the entry's high dword (NX).  Changes made
 * visible: a PTE by invlpg and by a CR3 reload, a PDE by invlpg of an address under it and by
 * a CR3 reload (and a 2 MiB page's data by invlpg of the address of its code), a PDPTE
 * by a CR3 reload; switching between two PDPTs; global pages (CR4.PGE,
 * 4 KiB and 2 MiB) remapped + invlpg and remapped + CR4.PGE toggled.  CR4.PSE set under PAE
 * changes nothing.  Demand paging: a #PF handler that sets P in a PTE (read, write, fetch) or
 * in a PDE, writing only the low dword, and returns to retry.  Back to 32-bit paging (paging
 * off, CR4.PAE clear, CR3 = a page directory, paging on): 32-bit entries again, and a fetch
 * fault has no I/D bit although EFER.NXE = 1 (I/D needs PAE); PAE on again; paging off.
 *
 * QEMU's default CPU (qemu32) has PAE but no NX: the oracle runs this kernel with
 * bt86-qemu-cpu: qemu32,+nx
 *
 * Not tested, because QEMU 7.2 differs from hardware or hardware is not deterministic:
 *  - PDPTEs: hardware loads the four PDPTEs into registers when CR3 is written (and when
 *    paging or CR4.PAE/PGE/PSE change), checks their reserved bits then (#GP on the mov to
 *    CR3) and does not see later changes to them in memory until CR3 is written again; QEMU
 *    reads them on every page walk, checks reserved bits there (#PF with RSVD) and even sets
 *    bit 5 (A) in them, which hardware does not have.  So a PDPTE is only ever changed
 *    followed by a CR3 write, only P and the address are used, and PDPTEs are never read back.
 *    A not-present PDPTE gives the same #PF on both (error code without P).
 *  - the P bit of a reserved-bit fault's error code: QEMU 7.x reports RSVD without P (a
 *    QEMU bug; hardware sets P, the entry being present), so P is not compared for those.
 *  - address bits 32-35: QEMU's qemu32 has no CPUID leaf 0x80000008 (its highest extended
 *    leaf is 0x80000004; asking for 0x80000008 returns leaf 4, EAX = 0x121), so MAXPHYADDR
 *    is 36, the value the SDM gives for a CPU with PAE and without that leaf, and bits 32-35
 *    of an entry are address bits.  QEMU 7.2 treats them as reserved all the same (RSVD
 *    fault: its physical address width is 32 for a CPU without PSE-36).  So the reserved-bit
 *    check uses bit MAXPHYADDR (CPUID leaf 0x80000008 if there is one, else 36: reserved on
 *    both), and no entry maps memory at or above 4 GiB.
 *  - writing EFER bits other than NXE (QEMU ignores reserved ones, hardware raises #GP);
 *    changing CR4.PAE with paging on (legal outside long mode, but not what OSes do).
 *  - whether stale TLB entries survive (global pages across CR3 writes, a PTE changed
 *    without invlpg): only changes the architecture says must become visible are checked.
 *  - whether accessed bits are set by an access that faults (model-specific).
 * A failed check prints a "# ..." line with what was seen.
 */
#include "rt.h"

typedef uint64_t pte_t;
#define PG_P   0x001ull
#define PG_W   0x002ull
#define PG_A   0x020ull
#define PG_D   0x040ull
#define PG_PS  0x080ull
#define PG_G   0x100ull
#define PG_PAGEABLE 0x200ull     /* available bit: the demand pager may set P */
#define PG_NX  (1ull << 63)
#define PG_RSVD51 (1ull << 51)   /* reserved for any MAXPHYADDR up to 51 */
#define PG_RSVD13 (1ull << 13)   /* reserved in a 2 MiB PDE (bit 12 is PAT) */

#define MSR_EFER 0xc0000080u
#define EFER_NXE 0x800u

/* Linear layout.  PDPTE 0: identity map 0-128 MiB (2 MiB pages); PDPTE 1 (pd1): the test
 * window; PDPTE 2 (pd2), PDPTE 3 (pd3): the 3rd and 4th GiB. */
#define WIN     0x40000000u   /* pd1[0]: pt, 4 KiB pages -> frames[i]           */
#define BIG     0x40200000u   /* pd1[1]: 2 MiB page -> BIGPHYS                  */
#define NOPDE   0x40400000u   /* pd1[2]: not present                            */
#define BIGNX   0x40600000u   /* pd1[3]: 2 MiB page, NX -> NXPHYS               */
#define BIGRSV  0x40800000u   /* pd1[4]: 2 MiB page, bit 13 set                 */
#define NXPT    0x40a00000u   /* pd1[5]: pt again, NX in the PDE                */
#define DPDE    0x40c00000u   /* pd1[6]: ptx, not present, pageable             */
#define BIGRO   0x40e00000u   /* pd1[7]: 2 MiB page, read-only -> BIGPHYS       */
#define ROPT    0x41000000u   /* pd1[8]: pt again, R/W clear in the PDE         */
#define RSVPT   0x41200000u   /* pd1[9]: pt again, bit 51 set in the PDE        */
#define HI2     0x80000000u   /* pd2[0]: 2 MiB page -> BIGPHYS (alias of BIG)   */
#define HI3     0xc0000000u   /* pd3[0]: pt3, 4 KiB pages                       */
#define TOP     0xffe00000u   /* pd3[511]: 2 MiB page -> TOPPHYS                */
#define BIGPHYS 0x00800000u
#define NXPHYS  0x00a00000u
#define TOPPHYS 0x00c00000u
#define ALTPHYS 0x00e00000u

static pte_t pdpts[4][4] __attribute__((aligned(4096)));   /* [0] at CR3 = ..000, [1] at ..020 */
static pte_t pd0[512] __attribute__((aligned(4096)));
static pte_t pd1[512] __attribute__((aligned(4096)));
static pte_t pd2[512] __attribute__((aligned(4096)));
static pte_t pd2b[512] __attribute__((aligned(4096)));
static pte_t pd3[512] __attribute__((aligned(4096)));
static pte_t pd3b[512] __attribute__((aligned(4096)));
static pte_t pt[512] __attribute__((aligned(4096)));
static pte_t ptb[512] __attribute__((aligned(4096)));
static pte_t pt3[512] __attribute__((aligned(4096)));
static pte_t pt3b[512] __attribute__((aligned(4096)));
static pte_t ptx[512] __attribute__((aligned(4096)));
static uint32_t pd32[1024] __attribute__((aligned(4096)));
static uint32_t pt32[1024] __attribute__((aligned(4096)));
static uint8_t frames[20][4096] __attribute__((aligned(4096)));

static inline void invlpg(uint32_t a) { asm volatile("invlpg (%0)" :: "r"(a) : "memory"); }
static inline volatile uint32_t *lin(uint32_t a) { return (volatile uint32_t *)PHYS(a); }
static inline uint32_t fr(unsigned i) { return (uint32_t)frames[i]; }
static inline void reload_cr3(void) { write_cr3(read_cr3()); }

static uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}
static void wrmsr(uint32_t msr, uint64_t v)
{
    asm volatile("wrmsr" :: "a"((uint32_t)v), "d"((uint32_t)(v >> 32)), "c"(msr) : "memory");
}
/* EFER.NXE changed: CR3 is reloaded as well, so that no translation made under the old
 * setting is used (none of the pages involved is global). */
static void set_nxe(int on)
{
    wrmsr(MSR_EFER, on ? EFER_NXE : 0);
    reload_cr3();
}

/* ---- one access at CPL 0, faults caught --------------------------------------------------- */
volatile uint32_t k_addr, k_val;
uint32_t k_saved_esp;
extern char k_read[], k_read_at[], k_write[], k_write_at[], k_exec[];
asm(".pushsection .text\n"
    "k_read:\n\tmovl k_addr, %ebx\n\tmovl $0xdeadbeef, %eax\n"
    "k_read_at:\n\tmovl (%ebx), %eax\n\tmovl %eax, k_val\n\tret\n"
    "k_write:\n\tmovl k_addr, %ebx\n\tmovl k_val, %eax\n"
    "k_write_at:\n\tmovl %eax, (%ebx)\n\tret\n"
    "k_exec:\n\tmovl k_addr, %ebx\n\tcall *%ebx\n\tmovl %eax, k_val\n\tret\n"
    ".popsection\n");

enum { RD, WR, EX };
struct acc {
    uint32_t faulted, vector, err, eip, cr2, val, at;
};

static struct acc access(int op, uint32_t addr, uint32_t val)
{
    struct acc a = { 0 };
    void (*stub)(void) = (void (*)(void))(op == RD ? k_read : op == WR ? k_write : k_exec);
    a.at = op == RD ? (uint32_t)k_read_at : op == WR ? (uint32_t)k_write_at : addr;
    k_addr = addr;
    k_val = val;
    write_cr2(0);
    rt_clear_last();
    /* the stub's call pushed a return address (and k_exec's a second one): ESP is put back */
    asm volatile(CATCH("1f") "movl %%esp, k_saved_esp\n\tcall *%0\n1:\tmovl k_saved_esp, %%esp\n\t" UNCATCH
                 :: "r"(stub) : "eax", "ebx", "ecx", "edx", "esi", "edi", "memory", "cc");
    a.faulted = rt_last.count;
    a.vector = rt_last.vector;
    a.err = rt_last.err;
    a.eip = rt_last.eip;
    a.cr2 = read_cr2();
    a.val = k_val;
    return a;
}

static void show(struct acc a)
{
    rt_printf("# got %u fault(s), vector %u error 0x%x CR2 0x%08x EIP 0x%08x, value 0x%08x; "
              "the access was at 0x%08x\n", a.faulted, a.vector, a.err, a.cr2, a.eip, a.val, a.at);
}

/* The access faulted once with #PF(err), CR2 = cr2, EIP = a.at. */
static void is_pf(struct acc a, uint32_t err, uint32_t cr2, const char *desc)
{
    int good = a.faulted == 1 && a.vector == 14 && a.err == err && a.cr2 == cr2 && a.eip == a.at;
    if (!ok(good, "%s: #PF, error 0x%x, CR2, EIP", desc, err))
        show(a);
}

/* A reserved-bit fault: QEMU (7.x on) reports RSVD without P, hardware with P (the entry is
 * present); only the other bits are compared. */
static void is_rsvd_pf(struct acc a, uint32_t err, uint32_t cr2, const char *desc)
{
    int good = a.faulted == 1 && a.vector == 14 && (a.err & ~1u) == err && a.cr2 == cr2 && a.eip == a.at;
    if (!ok(good, "%s: #PF, error 0x%x (P not compared), CR2, EIP", desc, err))
        show(a);
}

/* No fault, and (unless ~0u) the value read, or returned by the code. */
static void no_fault(struct acc a, uint32_t val, const char *desc)
{
    if (!ok(a.faulted == 0 && (val == ~0u || a.val == val), "%s", desc))
        show(a);
}

/* ---- setup ---------------------------------------------------------------------------------- */
static void fill(volatile uint8_t *p, uint32_t tag)
{
    for (unsigned i = 0; i < 4096; i += 4)
        *(volatile uint32_t *)(p + i) = tag + i;
}

/* `mov $v, %eax; ret` at p */
static void code_ret(volatile uint8_t *p, uint32_t v)
{
    p[0] = 0xb8;
    for (int i = 0; i < 4; i++)
        p[1 + i] = (uint8_t)(v >> (8 * i));
    p[5] = 0xc3;
}

static unsigned maxphyaddr = 36;

static void cpu_features(void)
{
    uint32_t a, b, c, d;
    cpuid(1, &a, &b, &c, &d);
    ok(d & (1u << 6), "CPUID.1: PAE");
    cpuid(0x80000000, &a, &b, &c, &d);
    uint32_t xmax = a;
    ok(xmax >= 0x80000001 && xmax <= 0x800000ff, "CPUID.80000000h: leaf 0x80000001 exists");
    d = 0;
    if (xmax >= 0x80000001)
        cpuid(0x80000001, &a, &b, &c, &d);
    ok(d & (1u << 20), "CPUID.80000001h: NX");
    if (!(d & (1u << 20)))    /* the rest would triple-fault (a push onto an NX page) */
        rt_bail("no NX: QEMU must run this kernel with -cpu qemu32,+nx");
    if (xmax >= 0x80000008 && xmax <= 0x800000ff) {
        cpuid(0x80000008, &a, &b, &c, &d);
        maxphyaddr = a & 0xff;
    }
    rt_diag("MAXPHYADDR %u", maxphyaddr);
    ok(maxphyaddr >= 36 && maxphyaddr <= 51, "MAXPHYADDR (CPUID.80000008h, else 36) is 36..51");

    is64(rdmsr(MSR_EFER), 0, "EFER reads 0 after reset");
    wrmsr(MSR_EFER, EFER_NXE);
    is64(rdmsr(MSR_EFER), EFER_NXE, "EFER.NXE set: reads 0x800");
    wrmsr(MSR_EFER, 0);
    is64(rdmsr(MSR_EFER), 0, "EFER.NXE cleared: reads 0");
}

static void setup(void)
{
    if ((uint32_t)__image_end > BIGPHYS)
        rt_bail("the kernel image ends above 8 MiB");
    for (unsigned i = 0; i < 64; i++)                /* 0-128 MiB */
        pd0[i] = ((pte_t)i << 21) | PG_PS | PG_W | PG_P;
    for (unsigned i = 0; i < 20; i++)
        fill(frames[i], 0x01000000u * (i + 1));
    for (unsigned i = 0; i < 20; i++)
        pt[i] = fr(i) | PG_W | PG_P;
    pt[1] &= ~PG_W;                                  /* read-only */
    pt[2] &= ~PG_P;                                  /* not present */
    pt[4] |= PG_NX;                                  /* NX, code */
    pt[6] |= PG_NX;                                  /* NX, after an executable page */
    pt[7] |= PG_RSVD51;
    pt[8] |= 1ull << maxphyaddr;
    pt[10] = fr(10) | PG_PAGEABLE | PG_W;            /* demand paging */
    pt[11] = fr(11) | PG_PAGEABLE | PG_W;
    pt[14] |= PG_NX;                                 /* NX, after an executable page */
    pt[511] = fr(16) | PG_W | PG_P;                  /* the last page before BIG */
    memcpy(ptb, pt, sizeof pt);
    ptb[0] = fr(15) | PG_W | PG_P;                   /* differs from pt at WIN only */

    code_ret(frames[4], 0x44444444);
    code_ret(frames[5], 0x55555555);
    memset(frames[5] + 0xff0, 0x90, 16);             /* nops falling through into page 6 */
    code_ret(frames[6], 0x66666666);
    code_ret(frames[10] + 0x800, 0xa0a0a0a0);
    code_ret(frames[13], 0x13131313);
    memcpy(frames[13] + 0xffd, "\xb8\x78\x56", 3);   /* mov $0x12345678, %eax; ret */
    memcpy(frames[14], "\x34\x12\xc3", 3);           /*   straddling pages 13 and 14 */

    for (uint32_t o = 0; o < 0x200000; o += 0x1000)
        fill(PHYS(BIGPHYS + o), 0x0b000000u + o);
    fill(PHYS(NXPHYS), 0x0a000000u);
    code_ret(PHYS(NXPHYS + 0x100), 0xa0000100);
    fill(PHYS(TOPPHYS), 0x0c000000u);
    fill(PHYS(TOPPHYS + 0x1ff000), 0x0c1ff000u);
    fill(PHYS(ALTPHYS), 0x0e000000u);
    fill(PHYS(ALTPHYS + 0x1000), 0x0e001000u);

    pd1[0] = (uint32_t)pt | PG_W | PG_P;
    pd1[1] = BIGPHYS | PG_PS | PG_W | PG_P;
    pd1[2] = 0;
    pd1[3] = NXPHYS | PG_NX | PG_PS | PG_W | PG_P;
    pd1[4] = BIGPHYS | PG_RSVD13 | PG_PS | PG_W | PG_P;
    pd1[5] = (uint32_t)pt | PG_NX | PG_W | PG_P;
    pd1[6] = (uint32_t)ptx | PG_PAGEABLE | PG_W;
    pd1[7] = BIGPHYS | PG_PS | PG_P;
    pd1[8] = (uint32_t)pt | PG_P;
    pd1[9] = (uint32_t)pt | PG_RSVD51 | PG_W | PG_P;
    ptx[0] = fr(19) | PG_W | PG_P;
    pd2[0] = BIGPHYS | PG_PS | PG_W | PG_P;
    pd2b[0] = ALTPHYS | PG_PS | PG_W | PG_P;
    pd3[0] = (uint32_t)pt3 | PG_W | PG_P;
    pd3[511] = TOPPHYS | PG_PS | PG_W | PG_P;
    pt3[0] = fr(17) | PG_W | PG_P;
    pt3[1] = fr(18) | PG_W | PG_P;
    memcpy(pd3b, pd3, sizeof pd3);
    memcpy(pt3b, pt3, sizeof pt3);
    pd3b[0] = (uint32_t)pt3b | PG_W | PG_P;
    pt3b[0] = fr(16) | PG_W | PG_P;                  /* differs from pt3 at HI3 only */

    /* PDPTEs: P and the address only (bits 1, 2 and 5-8 are reserved) */
    pdpts[0][0] = (uint32_t)pd0 | PG_P;
    pdpts[0][1] = (uint32_t)pd1 | PG_P;
    pdpts[0][2] = (uint32_t)pd2 | PG_P;
    pdpts[0][3] = (uint32_t)pd3 | PG_P;
    memcpy(pdpts[1], pdpts[0], sizeof pdpts[0]);
    pdpts[1][3] = (uint32_t)pd3b | PG_P;

    wrmsr(MSR_EFER, EFER_NXE);
    write_cr4(CR4_PAE);
    write_cr3((uint32_t)pdpts[0]);
    write_cr0(read_cr0() | CR0_PG);
}

/* ---- the tests ----------------------------------------------------------------------------- */
static void basics(void)
{
    ok(read_cr0() & CR0_PG, "PAE paging on, still running");
    is(read_cr4(), CR4_PAE, "CR4 = PAE");
    is(read_cr3(), (uint32_t)pdpts[0], "CR3 = the PDPT");
    no_fault(access(RD, WIN + 0x10, 0), 0x01000010, "a 4 KiB page maps its frame");
    no_fault(access(WR, WIN + 0x3ffc, 0x600d0001), ~0u, "write to a 4 KiB page");
    is(*(uint32_t *)(frames[3] + 0xffc), 0x600d0001, "the write landed in the frame");
    no_fault(access(RD, WIN + 0x12344, 0), 0x13000344, "the 19th 4 KiB page");
    no_fault(access(RD, BIG + 0x123454, 0), 0x0b123454, "a 2 MiB page (CR4.PSE clear) maps its frame");
    no_fault(access(WR, BIG + 0x1ffffc, 0x600d0002), ~0u, "write to the last dword of a 2 MiB page");
    is(*(uint32_t *)PHYS(BIGPHYS + 0x1ffffc), 0x600d0002, "the write landed in the frame");
    no_fault(access(RD, HI2 + 0x1ffff8, 0), 0x0b1ffff8, "PDPTE 2: a 2 MiB page at 0x80000000");
    no_fault(access(RD, HI2 + 0x1ffffc, 0), 0x600d0002, "the same frame as at 0x40200000");
    no_fault(access(RD, HI3 + 0x0ff0, 0), 0x12000ff0, "PDPTE 3: a 4 KiB page at 0xC0000000");
    no_fault(access(WR, HI3 + 0x1ff0, 0x600d0003), ~0u, "write to a 4 KiB page at 0xC0001000");
    is(*(uint32_t *)(frames[18] + 0xff0), 0x600d0003, "the write landed in the frame");
    no_fault(access(RD, TOP + 0x1ffffc, 0), 0x0c1ffffc, "a 2 MiB page at 0xFFE00000: the last dword");
    no_fault(access(EX, WIN + 0x5000, 0), 0x55555555, "code in a 4 KiB page (NX clear) runs");
    no_fault(access(RD, WIN + 0x4ffe, 0), (0x555555b8u << 16) | (0x05000ffcu >> 16), "a dword across two 4 KiB pages");
    no_fault(access(RD, BIG - 2, 0), (0x0b000000u << 16) | (0x11000ffcu >> 16), "a dword across a 4 KiB and a 2 MiB page");

    /* two PDPTs in one page: CR3 bits 5-11 select the PDPT */
    write_cr3((uint32_t)pdpts[1]);
    is(read_cr3(), (uint32_t)pdpts[1], "CR3 = a PDPT at offset 0x20 of its page");
    no_fault(access(RD, HI3 + 0x20, 0), 0x11000020, "its PDPTE 3: another page directory");
    no_fault(access(RD, HI3 + 0x1ff0, 0), 0x600d0003, "which maps the next page as before");
    no_fault(access(RD, WIN + 0x24, 0), 0x01000024, "its PDPTE 1: the same window");
    write_cr3((uint32_t)pdpts[0]);
    no_fault(access(RD, HI3 + 0x20, 0), 0x12000020, "CR3 back to the first PDPT");

    /* CR4.PSE means nothing under PAE */
    write_cr4(CR4_PAE | CR4_PSE);
    no_fault(access(RD, BIG + 0x454, 0), 0x0b000454, "CR4.PSE set: 2 MiB pages as before");
    no_fault(access(RD, WIN + 0x454, 0), 0x01000454, "and 4 KiB pages");
    write_cr4(CR4_PAE);
}

static void not_present(void)
{
    is_pf(access(RD, WIN + 0x2010, 0), 0x0, WIN + 0x2010, "read, not-present PTE");
    is_pf(access(WR, WIN + 0x2014, 0), 0x2, WIN + 0x2014, "write, not-present PTE");
    is_pf(access(EX, WIN + 0x2018, 0), 0x10, WIN + 0x2018, "fetch, not-present PTE (NXE=1)");
    struct acc a = access(RD, WIN + 0x1ffe, 0);
    a.at = (uint32_t)k_read_at;
    is_pf(a, 0x0, WIN + 0x2000, "a dword read running into a not-present page");
    is_pf(access(RD, NOPDE + 0x12340, 0), 0x0, NOPDE + 0x12340, "read, not-present PDE");
    is_pf(access(WR, NOPDE + 0x12344, 0), 0x2, NOPDE + 0x12344, "write, not-present PDE");
    is_pf(access(EX, NOPDE + 0x12348, 0), 0x10, NOPDE + 0x12348, "fetch, not-present PDE (NXE=1)");

    /* hardware reads PDPTEs when CR3 is written: the change is followed by a CR3 write */
    pdpts[0][2] = 0;
    reload_cr3();
    is_pf(access(RD, HI2 + 0x100, 0), 0x0, HI2 + 0x100, "read, not-present PDPTE");
    is_pf(access(WR, HI2 + 0x3fff00, 0), 0x2, HI2 + 0x3fff00, "write, not-present PDPTE");
    is_pf(access(EX, HI2 + 0x100, 0), 0x10, HI2 + 0x100, "fetch, not-present PDPTE (NXE=1)");
    pdpts[0][2] = (uint32_t)pd2 | PG_P;
    reload_cr3();
    no_fault(access(RD, HI2 + 0x100, 0), 0x0b000100, "PDPTE present again + CR3 reload");
}

static void read_only(void)
{
    static const struct { uint32_t addr, phys; const char *what; } ro[] = {
        { WIN + 0x1400, 0, "read-only PTE" },
        { ROPT + 0x3400, 0, "R/W clear in the PDE only" },
        { BIGRO + 0x2400, BIGPHYS + 0x2400, "read-only 2 MiB page" },
    };
    for (unsigned i = 0; i < 3; i++) {
        volatile uint32_t *phys = ro[i].phys ? lin(ro[i].phys) : lin(i == 0 ? fr(1) + 0x400 : fr(3) + 0x400);
        write_cr0(read_cr0() & ~CR0_WP);
        no_fault(access(WR, ro[i].addr, 0x5a5a0000 + i), ~0u, ro[i].what);
        ok(*phys == 0x5a5a0000 + i, "write, %s, WP=0: works", ro[i].what);
        write_cr0(read_cr0() | CR0_WP);
        char d[80];
        rt_format(d, sizeof d, "write, %s, WP=1", ro[i].what);
        is_pf(access(WR, ro[i].addr, 0xa5a50000 + i), 0x3, ro[i].addr, d);
        ok(*phys == 0x5a5a0000 + i, "write, %s, WP=1: changed nothing", ro[i].what);
        no_fault(access(RD, ro[i].addr, 0), 0x5a5a0000 + i, "and it reads");
    }
    write_cr0(read_cr0() & ~CR0_WP);
}

static void reserved_bits(void)
{
    is_rsvd_pf(access(RD, WIN + 0x7000, 0), 0x8, WIN + 0x7000, "read, PTE with bit 51 set (RSVD)");
    is_rsvd_pf(access(WR, WIN + 0x7004, 0), 0xa, WIN + 0x7004, "write, PTE with bit 51 set (RSVD)");
    is_rsvd_pf(access(EX, WIN + 0x7008, 0), 0x18, WIN + 0x7008, "fetch, PTE with bit 51 set (RSVD, NXE=1)");
    is_rsvd_pf(access(RD, WIN + 0x8000, 0), 0x8, WIN + 0x8000, "read, PTE with bit MAXPHYADDR set (RSVD)");
    static const unsigned hi[] = { 52, 62 };
    for (unsigned i = 0; i < 2; i++) {
        pt[15] |= 1ull << hi[i];
        invlpg(WIN + 0xf000);
        char d[80];
        rt_format(d, sizeof d, "read, PTE with bit %u set (RSVD)", hi[i]);
        is_rsvd_pf(access(RD, WIN + 0xf000, 0), 0x8, WIN + 0xf000, d);
        pt[15] &= ~(1ull << hi[i]);
        invlpg(WIN + 0xf000);
    }
    no_fault(access(RD, WIN + 0xf000, 0), 0x10000000, "the PTE with those bits clear again: reads");
    is_rsvd_pf(access(RD, RSVPT + 0x10, 0), 0x8, RSVPT + 0x10, "read, PDE (to a page table) with bit 51 set (RSVD)");
    is_rsvd_pf(access(WR, RSVPT + 0x14, 0), 0xa, RSVPT + 0x14, "write, PDE (to a page table) with bit 51 set (RSVD)");
    pd1[9] ^= PG_RSVD51 | (1ull << 62);
    invlpg(RSVPT);
    is_rsvd_pf(access(RD, RSVPT + 0x18, 0), 0x8, RSVPT + 0x18, "read, PDE (to a page table) with bit 62 set (RSVD)");
    pd1[9] ^= PG_RSVD51 | (1ull << 62);
    invlpg(RSVPT);
    is_rsvd_pf(access(RD, BIGRSV + 0x100, 0), 0x8, BIGRSV + 0x100, "read, 2 MiB PDE with bit 13 set (RSVD)");
    is_rsvd_pf(access(WR, BIGRSV + 0x104, 0), 0xa, BIGRSV + 0x104, "write, 2 MiB PDE with bit 13 set (RSVD)");
    is_rsvd_pf(access(EX, BIGRSV + 0x108, 0), 0x18, BIGRSV + 0x108, "fetch, 2 MiB PDE with bit 13 set (RSVD, NXE=1)");
    pd1[4] = BIGPHYS | (1ull << 62) | PG_PS | PG_W | PG_P;
    invlpg(BIGRSV);
    is_rsvd_pf(access(RD, BIGRSV + 0x10c, 0), 0x8, BIGRSV + 0x10c, "read, 2 MiB PDE with bit 62 set (RSVD)");
    pd1[4] = BIGPHYS | (1ull << 52) | PG_PS | PG_W | PG_P;
    invlpg(BIGRSV);
    is_rsvd_pf(access(RD, BIGRSV + 0x110, 0), 0x8, BIGRSV + 0x110, "read, 2 MiB PDE with bit 52 set (RSVD)");
    pd1[4] = BIGPHYS | PG_RSVD13 | PG_PS | PG_W | PG_P;
    invlpg(BIGRSV);
    ok(*(uint32_t *)(frames[7] + 4) == 0x08000004 && *(uint32_t *)PHYS(BIGPHYS + 0x104) == 0x0b000104,
       "the faulting writes changed nothing");
}

static uint32_t saved_esp __attribute__((used));

static void nx(void)
{
    /* NX in the PTE */
    is_pf(access(EX, WIN + 0x4000, 0), 0x11, WIN + 0x4000, "fetch, NX PTE (NXE=1)");
    no_fault(access(RD, WIN + 0x4000, 0), 0x444444b8, "read, NX PTE: works");
    no_fault(access(WR, WIN + 0x4800, 0x4848), ~0u, "write, NX PTE: works");
    is(*(uint32_t *)(frames[4] + 0x800), 0x4848, "the write landed in the frame");
    is64(pt[4], fr(4) | PG_NX | PG_D | PG_A | PG_W | PG_P, "A and D set in an NX PTE: the high dword kept");
    pt[4] &= ~PG_NX;
    invlpg(WIN + 0x4000);
    no_fault(access(EX, WIN + 0x4000, 0), 0x44444444, "NX cleared + invlpg: the code runs");
    pt[4] |= PG_NX;
    invlpg(WIN + 0x4000);
    is_pf(access(EX, WIN + 0x4000, 0), 0x11, WIN + 0x4000, "NX set + invlpg: the fetch faults again");

    /* NX in the PDE above an executable PTE (NXPT maps the same page table as WIN) */
    is_pf(access(EX, NXPT + 0x5000, 0), 0x11, NXPT + 0x5000, "fetch, NX in the PDE only");
    no_fault(access(RD, NXPT + 0x5008, 0), 0x06000008, "read, NX in the PDE only: works");
    no_fault(access(EX, WIN + 0x5000, 0), 0x55555555, "the same code through a PDE without NX runs");

    /* a 2 MiB NX page */
    is_pf(access(EX, BIGNX + 0x100, 0), 0x11, BIGNX + 0x100, "fetch, 2 MiB NX page");
    no_fault(access(RD, BIGNX + 0x104, 0), 0x0a00c3a0, "read, 2 MiB NX page: works");
    pd1[3] &= ~PG_NX;
    invlpg(BIGNX + 0x100);
    no_fault(access(EX, BIGNX + 0x100, 0), 0xa0000100, "2 MiB page, NX cleared + invlpg: the code runs");
    pd1[3] |= PG_NX;
    invlpg(BIGNX + 0x100);
    is_pf(access(EX, BIGNX + 0x100, 0), 0x11, BIGNX + 0x100, "2 MiB page, NX set + invlpg: faults again");

    /* code falling through into an NX page */
    struct acc a = access(EX, WIN + 0x5ff0, 0);
    a.at = WIN + 0x6000;
    is_pf(a, 0x11, WIN + 0x6000, "code falling through into an NX page: at the page");
    pt[6] &= ~PG_NX;
    invlpg(WIN + 0x6000);
    no_fault(access(EX, WIN + 0x5ff0, 0), 0x66666666, "its NX cleared + invlpg: the code runs on");
    pt[6] |= PG_NX;
    invlpg(WIN + 0x6000);
    a = access(EX, WIN + 0x5ff0, 0);
    a.at = WIN + 0x6000;
    is_pf(a, 0x11, WIN + 0x6000, "NX set again + invlpg: faults again");

    /* an instruction straddling into an NX page */
    a = access(EX, WIN + 0xdffd, 0);
    a.at = WIN + 0xdffd;
    is_pf(a, 0x11, WIN + 0xe000, "an instruction straddling into an NX page: CR2 = the page, EIP = the insn");
    pt[14] &= ~PG_NX;
    invlpg(WIN + 0xe000);
    no_fault(access(EX, WIN + 0xdffd, 0), 0x12345678, "its NX cleared + invlpg: it runs");
    pt[14] |= PG_NX;
    invlpg(WIN + 0xe000);
    a = access(EX, WIN + 0xdffd, 0);
    a.at = WIN + 0xdffd;
    is_pf(a, 0x11, WIN + 0xe000, "NX set again + invlpg: faults again");

    /* code that ran, then NX: invlpg and CR3 reloads */
    no_fault(access(EX, WIN + 0xd000, 0), 0x13131313, "code runs");
    no_fault(access(EX, WIN + 0xd000, 0), 0x13131313, "and runs again");
    pt[13] |= PG_NX;
    invlpg(WIN + 0xd000);
    is_pf(access(EX, WIN + 0xd000, 0), 0x11, WIN + 0xd000, "its page made NX + invlpg");
    pt[13] &= ~PG_NX;
    invlpg(WIN + 0xd000);
    no_fault(access(EX, WIN + 0xd000, 0), 0x13131313, "NX cleared + invlpg: runs");
    pt[13] |= PG_NX;
    reload_cr3();
    is_pf(access(EX, WIN + 0xd000, 0), 0x11, WIN + 0xd000, "made NX + CR3 reload");
    pt[13] &= ~PG_NX;
    reload_cr3();
    no_fault(access(EX, WIN + 0xd000, 0), 0x13131313, "NX cleared + CR3 reload: runs");

    /* the stack on an NX page works (data accesses only) */
    rt_clear_last();
    uint32_t v;
    asm volatile(CATCH("1f") "movl %%esp, saved_esp\n\tmovl %2, %%esp\n\tpushl $0x4d4d4d4d\n\tpopl %0\n"
                 "1:\tmovl saved_esp, %%esp\n\t" UNCATCH : "=r"(v) : "0"(0), "i"(WIN + 0x4f00) : "memory");
    ok(rt_last.count == 0 && v == 0x4d4d4d4d, "push and pop on an NX page work");

    /* EFER.NXE = 0: bit 63 is reserved, and fetch faults have no I/D */
    set_nxe(0);
    is_rsvd_pf(access(RD, WIN + 0x4000, 0), 0x8, WIN + 0x4000, "NXE=0: read, PTE with bit 63 set (RSVD)");
    is_rsvd_pf(access(WR, WIN + 0x4004, 0), 0xa, WIN + 0x4004, "NXE=0: write, PTE with bit 63 set (RSVD)");
    is_rsvd_pf(access(EX, WIN + 0x4000, 0), 0x8, WIN + 0x4000, "NXE=0: fetch, PTE with bit 63 set (RSVD, no I/D)");
    is_rsvd_pf(access(RD, NXPT + 0x5000, 0), 0x8, NXPT + 0x5000, "NXE=0: read, PDE (to a page table) with bit 63 set (RSVD)");
    is_rsvd_pf(access(RD, BIGNX + 0x100, 0), 0x8, BIGNX + 0x100, "NXE=0: read, 2 MiB PDE with bit 63 set (RSVD)");
    is_pf(access(EX, WIN + 0x2000, 0), 0x0, WIN + 0x2000, "NXE=0: fetch, not-present PTE: error 0 (no I/D)");
    is_pf(access(EX, NOPDE, 0), 0x0, NOPDE, "NXE=0: fetch, not-present PDE: error 0");
    is_rsvd_pf(access(EX, WIN + 0x7000, 0), 0x8, WIN + 0x7000, "NXE=0: fetch, PTE with bit 51 set (RSVD, no I/D)");
    no_fault(access(EX, WIN + 0x5000, 0), 0x55555555, "NXE=0: code in a page without bit 63 runs");
    no_fault(access(RD, WIN + 0x5010, 0), 0x06000010, "NXE=0: and reads");
    set_nxe(1);
    is_pf(access(EX, WIN + 0x4000, 0), 0x11, WIN + 0x4000, "NXE=1 again: fetch, NX PTE");
    no_fault(access(RD, WIN + 0x4000, 0), 0x444444b8, "NXE=1 again: read, NX PTE: works");
}

static void accessed_dirty(void)
{
    pt[3] &= ~(PG_A | PG_D);
    pd1[0] &= ~PG_A;
    invlpg(WIN + 0x3000);
    no_fault(access(RD, WIN + 0x3000, 0), 0x04000000, "read of an untouched page");
    ok((pt[3] & (PG_A | PG_D)) == PG_A, "a read sets the PTE's A, not D");
    ok(pd1[0] & PG_A, "and the PDE's A");
    no_fault(access(WR, WIN + 0x3004, 0x3d), ~0u, "write");
    ok((pt[3] & (PG_A | PG_D)) == (PG_A | PG_D), "a write sets D");
    pt[3] &= ~(PG_A | PG_D);
    invlpg(WIN + 0x3000);
    no_fault(access(WR, WIN + 0x3008, 0x3e), ~0u, "write to an untouched page");
    ok((pt[3] & (PG_A | PG_D)) == (PG_A | PG_D), "sets A and D");
    pt[3] |= PG_NX;
    pt[3] &= ~(PG_A | PG_D);
    invlpg(WIN + 0x3000);
    no_fault(access(WR, WIN + 0x300c, 0x3f), ~0u, "write to an untouched NX page");
    is64(pt[3], fr(3) | PG_NX | PG_D | PG_A | PG_W | PG_P, "sets A and D, NX kept");
    pt[3] &= ~PG_NX;
    invlpg(WIN + 0x3000);

    pt[5] &= ~(PG_A | PG_D);
    invlpg(WIN + 0x5000);
    no_fault(access(EX, WIN + 0x5000, 0), 0x55555555, "fetch from an untouched page");
    ok((pt[5] & (PG_A | PG_D)) == PG_A, "a fetch sets the PTE's A, not D");

    pd1[1] &= ~(PG_A | PG_D);
    invlpg(BIG);
    no_fault(access(RD, BIG + 0x100000, 0), 0x0b100000, "read of an untouched 2 MiB page");
    ok((pd1[1] & (PG_A | PG_D)) == PG_A, "a read of a 2 MiB page sets A, not D");
    no_fault(access(WR, BIG + 0x100004, 0x2d), ~0u, "write to it");
    ok((pd1[1] & (PG_A | PG_D)) == (PG_A | PG_D), "a write to a 2 MiB page sets D");
    pd3[511] &= ~(PG_A | PG_D);
    invlpg(TOP + 0x1ff000);
    no_fault(access(WR, TOP + 0x1ffff0, 0x2e), ~0u, "write to an untouched 2 MiB page at 0xFFE00000");
    ok((pd3[511] & (PG_A | PG_D)) == (PG_A | PG_D), "sets A and D");
    pd1[3] &= ~(PG_A | PG_D);
    invlpg(BIGNX);
    no_fault(access(WR, BIGNX + 0x800, 0x2f), ~0u, "write to an untouched 2 MiB NX page");
    is64(pd1[3], NXPHYS | PG_NX | PG_PS | PG_D | PG_A | PG_W | PG_P, "sets A and D, NX kept");

    pt3[1] &= ~(PG_A | PG_D);
    pd3[0] &= ~PG_A;
    invlpg(HI3 + 0x1000);
    no_fault(access(RD, HI3 + 0x1000, 0), 0x13000000, "read of an untouched page at 0xC0001000");
    ok((pt3[1] & (PG_A | PG_D)) == PG_A && (pd3[0] & PG_A), "sets the PTE's A (not D) and the PDE's A");
}

static void changes(void)
{
    /* a PTE */
    no_fault(access(RD, WIN + 0x9000, 0), 0x0a000000, "before remapping");
    pt[9] = fr(15) | PG_W | PG_P;
    invlpg(WIN + 0x9000);
    no_fault(access(RD, WIN + 0x9000, 0), 0x10000000, "PTE remapped + invlpg: the new frame");
    pt[9] = fr(9) | PG_W | PG_P;
    reload_cr3();
    no_fault(access(RD, WIN + 0x9000, 0), 0x0a000000, "PTE remapped + CR3 reload: the new frame");
    pt[9] = fr(9) | PG_W;
    invlpg(WIN + 0x9000);
    is_pf(access(RD, WIN + 0x9000, 0), 0x0, WIN + 0x9000, "made not present + invlpg");
    pt[9] = fr(9) | PG_P;
    invlpg(WIN + 0x9000);
    write_cr0(read_cr0() | CR0_WP);
    is_pf(access(WR, WIN + 0x9000, 0), 0x3, WIN + 0x9000, "made read-only + invlpg (WP=1)");
    write_cr0(read_cr0() & ~CR0_WP);
    pt[9] = fr(9) | PG_W | PG_P;
    invlpg(WIN + 0x9000);

    /* a PDE */
    pd1[0] = (uint32_t)ptb | PG_W | PG_P;
    invlpg(WIN);
    no_fault(access(RD, WIN + 0x10, 0), 0x10000010, "PDE to another page table + invlpg: its page");
    pd1[0] = (uint32_t)pt | PG_W | PG_P;
    reload_cr3();
    no_fault(access(RD, WIN + 0x10, 0), 0x01000010, "PDE back + CR3 reload: the first page table");
    pd1[1] = ALTPHYS | PG_PS | PG_W | PG_P;
    invlpg(BIG + 0x1000);
    no_fault(access(RD, BIG + 0x1000, 0), 0x0e001000, "2 MiB page remapped + invlpg");
    pd1[1] = BIGPHYS | PG_PS | PG_W | PG_P;
    invlpg(BIG + 0x1000);
    no_fault(access(RD, BIG + 0x1000, 0), 0x0b001000, "and back + invlpg");
    /* a 2 MiB page whose only code is at the address invalidated (translated, never
     * accessed as data): invlpg there drops all of the page */
    code_ret(PHYS(BIGPHYS + 0x180000), 0xb0180000);
    code_ret(PHYS(ALTPHYS + 0x180000), 0xe0180000);
    reload_cr3();
    no_fault(access(EX, BIG + 0x180000, 0), 0xb0180000, "code in a 2 MiB page");
    no_fault(access(RD, BIG + 0x1004, 0), 0x0b001004, "data in it");
    pd1[1] = ALTPHYS | PG_PS | PG_W | PG_P;
    invlpg(BIG + 0x180000);
    no_fault(access(RD, BIG + 0x1004, 0), 0x0e001004, "2 MiB page remapped + invlpg of its code's address: the data");
    no_fault(access(EX, BIG + 0x180000, 0), 0xe0180000, "and the code");
    pd1[1] = BIGPHYS | PG_PS | PG_W | PG_P;
    invlpg(BIG + 0x180000);
    pd1[1] = (uint32_t)pt | PG_W | PG_P;             /* a 2 MiB page becomes a page table */
    invlpg(BIG + 0x3000);
    no_fault(access(RD, BIG + 0x3000, 0), 0x04000000, "2 MiB page -> page table + invlpg");
    pd1[1] = BIGPHYS | PG_PS | PG_W | PG_P;
    invlpg(BIG + 0x3000);
    no_fault(access(RD, BIG + 0x3000, 0), 0x0b003000, "page table -> 2 MiB page + invlpg");

    /* a PDPTE: only a CR3 write makes the change visible on hardware */
    pdpts[0][2] = (uint32_t)pd2b | PG_P;
    reload_cr3();
    no_fault(access(RD, HI2 + 0x10, 0), 0x0e000010, "PDPTE to another page directory + CR3 reload");
    pdpts[0][2] = (uint32_t)pd2 | PG_P;
    reload_cr3();
    no_fault(access(RD, HI2 + 0x10, 0), 0x0b000010, "and back + CR3 reload");

    /* global pages */
    uint32_t a_, b, c, d;
    cpuid(1, &a_, &b, &c, &d);
    ok(d & (1u << 13), "CPUID.1: PGE");
    write_cr4(CR4_PAE | CR4_PGE);
    is(read_cr4(), CR4_PAE | CR4_PGE, "CR4 = PAE|PGE");
    pt[12] = fr(12) | PG_G | PG_W | PG_P;
    invlpg(WIN + 0xc000);
    no_fault(access(RD, WIN + 0xc000, 0), 0x0d000000, "global page");
    pt[12] = fr(16) | PG_G | PG_W | PG_P;
    invlpg(WIN + 0xc000);
    no_fault(access(RD, WIN + 0xc000, 0), 0x11000000, "global page remapped + invlpg: the new frame");
    pt[12] = fr(12) | PG_G | PG_W | PG_P;
    write_cr4(CR4_PAE);
    write_cr4(CR4_PAE | CR4_PGE);
    no_fault(access(RD, WIN + 0xc000, 0), 0x0d000000, "global page remapped + CR4.PGE toggled: the new frame");
    pd1[1] = BIGPHYS | PG_G | PG_PS | PG_W | PG_P;
    invlpg(BIG);
    no_fault(access(RD, BIG + 0x8, 0), 0x0b000008, "global 2 MiB page");
    pd1[1] = ALTPHYS | PG_G | PG_PS | PG_W | PG_P;
    invlpg(BIG);
    no_fault(access(RD, BIG + 0x8, 0), 0x0e000008, "global 2 MiB page remapped + invlpg: the new frame");
    pd1[1] = BIGPHYS | PG_G | PG_PS | PG_W | PG_P;
    write_cr4(CR4_PAE);
    write_cr4(CR4_PAE | CR4_PGE);
    no_fault(access(RD, BIG + 0x8, 0), 0x0b000008, "global 2 MiB page remapped + CR4.PGE toggled: the new frame");
    pd1[1] = BIGPHYS | PG_PS | PG_W | PG_P;
    pt[12] = fr(12) | PG_W | PG_P;
    write_cr4(CR4_PAE);
}

/* ---- demand paging -------------------------------------------------------------------------- */
static volatile uint32_t pg_count, pg_err, pg_cr2, pg_eip;

static void pager(struct trap_frame *f, uint32_t *eip)
{
    uint32_t cr2 = read_cr2();
    pg_count++;
    pg_err = f->w[0];
    pg_cr2 = cr2;
    pg_eip = eip[0];
    /* 64-bit entries, but P is in the low dword: that is all the pager writes */
    volatile uint32_t *e = 0;
    if (cr2 >= DPDE && cr2 < DPDE + 0x200000 && !(pd1[6] & PG_P))
        e = (volatile uint32_t *)&pd1[6];
    else if (cr2 >= WIN && cr2 < WIN + 0x200000)
        e = (volatile uint32_t *)&pt[(cr2 - WIN) >> 12];
    if (!e || !(e[0] & PG_PAGEABLE) || (e[0] & PG_P) || pg_count > 4)
        rt_bail("unexpected #PF: error 0x%x CR2 0x%08x EIP 0x%08x", f->w[0], cr2, eip[0]);
    e[0] |= (uint32_t)PG_P;
}

static void unpage(uint32_t a)
{
    pt[(a - WIN) >> 12] &= ~(PG_P | PG_A | PG_D);
    invlpg(a);
}

static void demand_paging(void)
{
    rt_set_hook(14, pager);

    pg_count = 0;
    struct acc a = access(RD, WIN + 0xb010, 0);
    ok(a.faulted == 0 && pg_count == 1 && a.val == 0x0c000010, "read of a not-present page: paged in, retried");
    ok(pg_err == 0 && pg_cr2 == WIN + 0xb010 && pg_eip == (uint32_t)k_read_at, "the pager saw error 0, CR2, EIP");
    ok((pt[11] & (PG_A | PG_D)) == PG_A, "the retried read set A");
    unpage(WIN + 0xb000);

    pg_count = 0;
    a = access(WR, WIN + 0xb020, 0xb0b0b0b0);
    ok(a.faulted == 0 && pg_count == 1 && *(uint32_t *)(frames[11] + 0x20) == 0xb0b0b0b0,
       "write to a not-present page: paged in, retried");
    ok(pg_err == 2 && pg_cr2 == WIN + 0xb020 && pg_eip == (uint32_t)k_write_at, "the pager saw error 2");
    ok((pt[11] & (PG_A | PG_D)) == (PG_A | PG_D), "the retried write set A and D");
    unpage(WIN + 0xb000);

    pg_count = 0;
    a = access(EX, WIN + 0xa800, 0);
    ok(a.faulted == 0 && pg_count == 1 && a.val == 0xa0a0a0a0, "call into a not-present page: paged in, the code ran");
    ok(pg_err == 0x10 && pg_cr2 == WIN + 0xa800 && pg_eip == WIN + 0xa800, "the pager saw error 0x10, CR2 = EIP = the target");
    unpage(WIN + 0xa000);

    pg_count = 0;
    a = access(RD, DPDE + 0x44, 0);
    ok(a.faulted == 0 && pg_count == 1 && a.val == 0x14000044, "read through a not-present PDE: paged in, retried");
    ok(pg_err == 0 && pg_cr2 == DPDE + 0x44, "the pager saw error 0 and CR2");
    ok((pd1[6] & PG_A) && (ptx[0] & PG_A), "the retried read set the PDE's and the PTE's A");

    /* two faults in one instruction: a dword across two not-present pages */
    pg_count = 0;
    a = access(RD, WIN + 0xaffe, 0);
    ok(a.faulted == 0 && pg_count == 2 && a.val == ((0x0c000000u << 16) | (0x0b000ffcu >> 16)),
       "a dword across two not-present pages: two faults, then the read");
    unpage(WIN + 0xa000);
    unpage(WIN + 0xb000);
    rt_set_hook(14, 0);
}

/* ---- back to 32-bit paging --------------------------------------------------------------- */
static void legacy_again(void)
{
    for (unsigned i = 0; i < 32; i++)
        pd32[i] = (i << 22) | (uint32_t)PG_PS | (uint32_t)PG_W | (uint32_t)PG_P;
    pd32[WIN >> 22] = (uint32_t)pt32 | (uint32_t)PG_W | (uint32_t)PG_P;
    pd32[(WIN >> 22) + 1] = BIGPHYS | (uint32_t)PG_PS | (uint32_t)PG_W | (uint32_t)PG_P;
    for (unsigned i = 0; i < 16; i++)
        pt32[i] = fr(i) | (uint32_t)PG_W | (uint32_t)PG_P;
    pt32[2] = 0;
    pt32[1] = fr(5) | (uint32_t)PG_W | (uint32_t)PG_P;   /* 32-bit: 1024 entries of 4 bytes */

    write_cr0(read_cr0() & ~CR0_PG);
    ok(!(read_cr0() & CR0_PG), "paging off");
    write_cr4(CR4_PSE);
    write_cr3((uint32_t)pd32);
    write_cr0(read_cr0() | CR0_PG);
    ok(read_cr0() & CR0_PG, "32-bit paging on (CR4.PAE clear), still running");
    is(read_cr4(), CR4_PSE, "CR4 = PSE");
    no_fault(access(RD, WIN + 0x10, 0), 0x01000010, "32-bit paging: a 4 KiB page maps its frame");
    no_fault(access(RD, WIN + 0x1010, 0), 0x06000010, "32-bit paging: 4-byte PTEs");
    no_fault(access(RD, WIN + 0x400010, 0), 0x0b000010, "32-bit paging: the 4 MiB page at 0x40400000");
    is64(rdmsr(MSR_EFER), EFER_NXE, "EFER.NXE still set");
    is_pf(access(RD, WIN + 0x2000, 0), 0x0, WIN + 0x2000, "32-bit paging: read, not-present PTE");
    is_pf(access(EX, WIN + 0x2000, 0), 0x0, WIN + 0x2000, "32-bit paging, NXE=1: fetch, not-present PTE: no I/D");
    no_fault(access(EX, WIN + 0x1000, 0), 0x55555555, "32-bit paging: code runs");

    write_cr0(read_cr0() & ~CR0_PG);
    write_cr4(CR4_PAE);
    write_cr3((uint32_t)pdpts[0]);
    write_cr0(read_cr0() | CR0_PG);
    ok(read_cr0() & CR0_PG, "PAE paging on again");
    no_fault(access(RD, WIN + 0x1010, 0), 0x02000010, "PAE again: 8-byte PTEs");
    is_pf(access(EX, WIN + 0x4000, 0), 0x11, WIN + 0x4000, "PAE again: fetch, NX PTE");

    write_cr0(read_cr0() & ~CR0_PG);
    ok(!(read_cr0() & CR0_PG), "paging off again");
    write_cr4(0);
    wrmsr(MSR_EFER, 0);
    is64(rdmsr(MSR_EFER), 0, "EFER = 0 again");
}

void test_main(void)
{
    cpu_features();
    setup();
    basics();
    not_present();
    read_only();
    reserved_bits();
    nx();
    accessed_dirty();
    changes();
    demand_paging();
    legacy_again();
}
