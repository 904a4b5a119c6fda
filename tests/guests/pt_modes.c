/*
 * pt_modes - page-directory entries and paging modes changing under live mappings: 4 MiB
 * pages edited, a PDE switched between a page table and a 4 MiB page, CR0.WP and CR4.PGE
 * (and CR4.PSE) toggled while entries change. Where a shadow MMU that keeps shadows across
 * flushes (tracing the guest's tables instead) could keep a translation it must drop.
 *
 * The kernel: pt.h's layout (0-4 MiB the kernel image, user-accessible; 4-128 MiB
 * supervisor 4 MiB pages, which the kernel writes physical memory through) and
 *   BIG   0x40000000  a 4 MiB page (user, writable): phys 8 MiB, then 12 MiB
 *   LOW   0x40400000  a 4 MiB page: phys 0 (the kernel image, page tables included)
 *   SW    0x40800000  switched between ptL (4 KiB pages) and a 4 MiB page at 12 MiB
 *   RO    0x40c00000  ptR: read-only and writable pages for the CR0.WP toggles
 *   GL    0x41000000  ptG: global and non-global pages (4 KiB) for the CR4.PGE toggles
 *   GBIG  0x41400000  a global 4 MiB page
 * Physical pages at 8-16 MiB hold markers (phys ^ 0xa5000000) where the checks read.
 *
 * Checks, each after the invalidation the SDM asks for (and no more):
 *   large    a 4 MiB PDE's frame changed + invlpg of any one address in the page (which
 *            invalidates all of its TLB entries): every part of it maps the new frame,
 *            also when the invlpg'd address is the page's only code (translated, never
 *            read as data); U/S, R/W and P cleared + invlpg; A and D of the PDE; page
 *            tables written through a 4 MiB alias of the kernel image. (Code elsewhere
 *            in the page after such an invlpg: pt_large_code, which QEMU 7.2 fails.)
 *   switch   a PDE from a page table to a 4 MiB page and back (P cleared, invalidated,
 *            then set: the SDM's way), the page table rewritten while unused; once with a
 *            CR3 load, once with invlpg of every page.
 *   pse      CR4.PSE cleared: a PDE with PS set is a page-table pointer (bit 7 ignored);
 *            set again: a 4 MiB page.
 *   wp       CR0.WP toggled while read-only supervisor and user entries change (+ invlpg):
 *            WP = 0 lets CPL 0 write them (setting D) into the new frame, WP = 1 faults;
 *            CPL 3 writes fault whatever WP; a read-only 4 MiB page.
 *   pge      CR4.PGE: non-global entries changed + CR3 load; global ones changed + PGE
 *            toggled (either way), or + invlpg; with PGE = 0 a CR3 load flushes global
 *            ones; two directories sharing a global page; a global 4 MiB page; a global
 *            user code page rewritten + PGE toggled runs the new code at CPL 3;
 *            entries changed, used and written back before a PGE toggle or CR3 load
 *            (the old frame again, though the entries read as at the flush before); an
 *            entry read-only at a flush, made writable and written, then read-only again
 *            as it was, and flushed: a write faults.
 *   spaces   six directories, more than bt86 keeps windows for, each with a private page
 *            at one address, read at CPL 0 and 3 in turn: each reads its own; one's entry
 *            changed while another is in use: the new frame when switched back to; a
 *            global page all share, changed + invlpg in one: the new frame in all of them;
 *            a DPL 3 segment (FS at CPL 3) used in two directories, its descriptor's base
 *            changed while the second is in use: the first's accesses through it use the
 *            new base (a VMM that runs each address space's user code in a process of its
 *            own must give each the descriptors written while another ran).
 *   code     code run (and so reached from other pages without a lookup) before a switch
 *            to a directory whose entry maps the same frame with A clear: it runs, and
 *            its fetch sets A there; an entry of the directory switched away from
 *            changed meanwhile: the new code after the switch back (CPL 3 and 0).
 *
 * Not checked: whether a global translation survives a CR3 load, whether a stale one is
 * used before invalidation.
 */
#include "pt.h"

#define BIG  0x40000000u
#define LOW  0x40400000u
#define SW   0x40800000u
#define RO   0x40c00000u
#define GL   0x41000000u
#define GBIG 0x41400000u
#define SP   0x41800000u  /* spaces: a private page per directory */
#define SG   0x41c00000u  /* spaces: a global page all directories share */
#define NSPACES 6u        /* more than bt86 keeps windows for (4) */
#define M8   0x00800000u
#define M12  0x00c00000u

/* Page directories pd and pd2, page tables ptL, ptR, ptG and ptH. */
static uint32_t tables[6][1024] __attribute__((aligned(4096)));
#define pd tables[0]
#define pd2 tables[1]
#define ptL tables[2]
#define ptR tables[3]
#define ptG tables[4]
#define ptH tables[5]
static uint8_t fr[8][4096] __attribute__((aligned(4096)));   /* data frames */
/* spaces: directories, their private page tables, and the shared global one. */
static uint32_t sp_pd[NSPACES][1024] __attribute__((aligned(4096)));
static uint32_t sp_pt[NSPACES][1024] __attribute__((aligned(4096)));
static uint32_t sp_ptg[1024] __attribute__((aligned(4096)));
static uint8_t cfr[2][4096] __attribute__((aligned(4096)));  /* code frames */

static uint32_t F(unsigned i) { return (uint32_t)fr[i]; }
static uint32_t tag(unsigned i) { return 0x01000000u * (i + 1) + 0x20000u; }
#define UPTE(i) (F(i) | PG_U | PG_W | PG_P)
static uint32_t mark(uint32_t phys) { return phys ^ 0xa5000000u; }
/* Writes phys's marker at phys (4-128 MiB: identity-mapped). */
static void put_mark(uint32_t phys) { *lin(phys) = mark(phys); }

static const uint32_t offs[] = { 0x1000, 0x2ff0, 0x123450, 0x200000, 0x3ff008 };
#define NOFFS (sizeof offs / sizeof offs[0])

/* How many of offs[] read, through the 4 MiB at `va`, the markers of phys `base`. */
static unsigned large_reads(int user, uint32_t va, uint32_t base)
{
    unsigned c = 0;
    for (unsigned i = 0; i < NOFFS; i++) {
        struct probe p = probe(user, RD, va + offs[i], 0);
        c += !p.faulted && p.val == mark(base + offs[i]);
    }
    return c;
}

static void setup(void)
{
    for (unsigned i = 0; i < 8; i++)
        fill(fr[i], tag(i));
    pt_setup(pd);
    for (unsigned i = 0; i < NOFFS; i++) {
        put_mark(M8 + offs[i]);
        put_mark(M12 + offs[i]);
    }
}

/* ---- large --------------------------------------------------------------------------- */
static void large(void)
{
    pd[BIG >> 22] = M8 | PG_PS | PG_U | PG_W | PG_P;
    is(large_reads(K, BIG, M8), NOFFS, "a 4 MiB page at 8 MiB (CPL 0)");
    is(large_reads(U, BIG, M8), NOFFS, "and at CPL 3");
    no_fault(probe(K, WR, BIG + 0x2ff4, 0x2ff4), "written");
    pd[BIG >> 22] = M12 | PG_PS | PG_U | PG_W | PG_P | PG_AD;
    invlpg(BIG + 0x345000);
    is(large_reads(K, BIG, M12), NOFFS, "its frame changed + invlpg of another address in it (CPL 0)");
    is(large_reads(U, BIG, M12), NOFFS, "and at CPL 3");

    /* The invlpg'd address is the page's only code: never read or written as data. */
    code_ret(PHYS(M12 + 0x100000), 0xc0de0100);
    code_ret(PHYS(M8 + 0x100000), 0xc0de8100);
    reload_cr3();
    reads(probe(K, EX, BIG + 0x100000, 0), 0xc0de0100, "code in the 4 MiB page runs");
    is(large_reads(K, BIG, M12), NOFFS, "the page around it (CPL 0)");
    is(large_reads(U, BIG, M12), NOFFS, "and at CPL 3");
    pd[BIG >> 22] = M8 | PG_PS | PG_U | PG_W | PG_P | PG_AD;
    invlpg(BIG + 0x100000);
    is(large_reads(K, BIG, M8), NOFFS, "frame changed + invlpg of the code's address: the data maps the new frame");
    is(large_reads(U, BIG, M8), NOFFS, "and at CPL 3");
    reads(probe(K, EX, BIG + 0x100000, 0), 0xc0de8100, "and the new frame's code runs");
    reads(probe(U, EX, BIG + 0x100000, 0), 0xc0de8100, "and at CPL 3");
    pd[BIG >> 22] = M12 | PG_PS | PG_U | PG_W | PG_P | PG_AD;
    invlpg(BIG + 0x3ff000);
    is(large_reads(K, BIG, M12), NOFFS, "frame changed + invlpg of another address: the data");

    /* permissions */
    pd[BIG >> 22] &= ~PG_U;
    invlpg(BIG + 0x3ff000);
    is_pf(probe(U, RD, BIG + 0x1000, 0), 5, BIG + 0x1000, "U/S cleared + invlpg: CPL 3 read");
    reads(probe(K, RD, BIG + 0x1000, 0), mark(M12 + 0x1000), "CPL 0 read");
    pd[BIG >> 22] = (pd[BIG >> 22] | PG_U) & ~PG_W;
    invlpg(BIG);
    write_cr0(read_cr0() | CR0_WP);
    is_pf(probe(K, WR, BIG + 0x200000, 1), 3, BIG + 0x200000, "R/W cleared + invlpg, WP = 1: CPL 0 write");
    is_pf(probe(U, WR, BIG + 0x2ff0, 1), 7, BIG + 0x2ff0, "CPL 3 write");
    write_cr0(read_cr0() & ~CR0_WP);
    pd[BIG >> 22] &= ~PG_P;
    invlpg(BIG + 0x2ff0);
    is_pf(probe(K, RD, BIG + 0x123450, 0), 0, BIG + 0x123450, "P cleared + invlpg: CPL 0 read");
    is_pf(probe(U, RD, BIG + 0x1000, 0), 4, BIG + 0x1000, "CPL 3 read");

    /* A and D of the PDE */
    pd[BIG >> 22] = M8 | PG_PS | PG_U | PG_W | PG_P;
    reads(probe(U, RD, BIG + 0x200000, 0), mark(M8 + 0x200000), "A and D cleared (P 0 -> 1): read");
    is(pd[BIG >> 22] & PG_AD, PG_A, "the read sets A, not D");
    no_fault(probe(K, WR, BIG + 0x200004, 4), "write");
    is(pd[BIG >> 22] & PG_AD, PG_AD, "the write sets D");
    pd[BIG >> 22] &= ~PG_D;
    invlpg(BIG + 0x1000);
    reads(probe(K, RD, BIG + 0x1000, 0), mark(M8 + 0x1000), "D cleared + invlpg: read");
    is(pd[BIG >> 22] & PG_AD, PG_A, "D still clear");
    no_fault(probe(U, WR, BIG + 0x3ff00c, 0xc), "CPL 3 write elsewhere in the page");
    is(pd[BIG >> 22] & PG_AD, PG_AD, "sets D");

    /* Page tables written through a 4 MiB alias of the kernel image. */
    pd[LOW >> 22] = PG_PS | PG_W | PG_P;
    ptR[5] = UPTE(5);
    pd[RO >> 22] = (uint32_t)ptR | PG_U | PG_W | PG_P;
    reads(probe(U, RD, RO + 0x5000, 0), tag(5), "a page of ptR");
    is(*lin(LOW + (uint32_t)&ptR[5]), UPTE(5) | PG_A, "its entry read through the 4 MiB alias: A set");
    *lin(LOW + (uint32_t)&ptR[5]) = UPTE(6);
    invlpg(RO + 0x5000);
    reads(probe(U, RD, RO + 0x5000, 0), tag(6), "the entry written through the 4 MiB alias + invlpg");
    *lin(LOW + (uint32_t)&pd[RO >> 22]) = 0;
    invlpg(RO + 0x5000);
    is_pf(probe(U, RD, RO + 0x5000, 0), 4, RO + 0x5000, "the PDE cleared through it + invlpg");
    ok(pd[LOW >> 22] & PG_AD, "the alias's own PDE: accessed and dirty");
    ptR[5] = 0;
}

/* ---- switch -------------------------------------------------------------------------- */
static void sw(void)
{
    for (unsigned i = 0; i < 8; i++)
        ptL[i] = UPTE(i);
    pd[SW >> 22] = (uint32_t)ptL | PG_U | PG_W | PG_P;
    unsigned n = 0;
    for (unsigned i = 0; i < 8; i++)
        n += probe(i & 1, RD, SW + i * 4096 + 8, 0).val == tag(i) + 8;
    is(n, 8, "SW through ptL");

    pd[SW >> 22] &= ~PG_P;
    reload_cr3();
    pd[SW >> 22] = M12 | PG_PS | PG_U | PG_W | PG_P;
    is(large_reads(K, SW, M12) + large_reads(U, SW, M12), 2 * NOFFS, "switched to a 4 MiB page (P off, CR3 load, on)");
    for (unsigned i = 0; i < 8; i++)
        ptL[i] = UPTE(7 - i);
    pd[SW >> 22] &= ~PG_P;
    invlpg(SW + 0x3ff000);
    pd[SW >> 22] = (uint32_t)ptL | PG_U | PG_W | PG_P;
    n = 0;
    for (unsigned i = 0; i < 8; i++)
        n += probe(i & 1, RD, SW + i * 4096 + 12, 0).val == tag(7 - i) + 12;
    is(n, 8, "back to ptL, rewritten meanwhile (P off, invlpg of one address of the 4 MiB page, on)");

    pd[SW >> 22] &= ~PG_P;
    for (unsigned i = 0; i < 1024; i++)
        invlpg(SW + i * 4096);
    pd[SW >> 22] = M8 | PG_PS | PG_U | PG_W | PG_P;
    is(large_reads(U, SW, M8) + large_reads(K, SW, M8), 2 * NOFFS, "to a 4 MiB page again (P off, invlpg of every page, on)");
    pd[SW >> 22] = 0;
    invlpg(SW);
}

/* ---- pse ----------------------------------------------------------------------------- */
static void pse(void)
{
    *lin(M8 + 4 * 1) = UPTE(4);                     /* entry 1 of a "page table" at 8 MiB */
    pd[BIG >> 22] = M8 | PG_PS | PG_U | PG_W | PG_P;
    reload_cr3();
    reads(probe(U, RD, BIG + 0x1000, 0), mark(M8 + 0x1000), "with CR4.PSE: a 4 MiB page");
    write_cr4(read_cr4() & ~CR4_PSE);
    reads(probe(U, RD, BIG + 0x1000 + 16, 0), tag(4) + 16, "CR4.PSE cleared: the PDE points to a page table");
    reads(probe(K, RD, BIG + 0x1000 + 20, 0), tag(4) + 20, "(CPL 0)");
    write_cr4(read_cr4() | CR4_PSE);
    reads(probe(U, RD, BIG + 0x1000, 0), mark(M8 + 0x1000), "CR4.PSE set again: the 4 MiB page");
    *lin(M8 + 4 * 1) = 0;
}

/* ---- wp ------------------------------------------------------------------------------ */
static void wp(void)
{
    ptR[0] = F(0) | PG_P;                           /* supervisor, read-only */
    ptR[1] = F(1) | PG_U | PG_P;                    /* user, read-only */
    ptR[2] = F(4) | PG_W | PG_P;                    /* supervisor, writable */
    pd[RO >> 22] = (uint32_t)ptR | PG_U | PG_W | PG_P;
    reload_cr3();
    no_fault(probe(K, WR, RO + 0x10, 0x1010), "WP = 0: CPL 0 writes a read-only page");
    is(*(uint32_t *)(fr[0] + 0x10), 0x1010, "into its frame");
    is(ptR[0] & PG_AD, PG_AD, "setting A and D");
    ptR[0] = F(2) | PG_P;
    invlpg(RO);
    write_cr0(read_cr0() | CR0_WP);
    is_pf(probe(K, WR, RO + 0x14, 0x1414), 3, RO + 0x14, "entry changed + invlpg, WP = 1: CPL 0 write");
    reads(probe(K, RD, RO + 0x14, 0), tag(2) + 0x14, "the read: the new frame");
    no_fault(probe(K, WR, RO + 0x2018, 0x2018), "the writable page at WP = 1");
    write_cr0(read_cr0() & ~CR0_WP);
    no_fault(probe(K, WR, RO + 0x18, 0x1818), "WP = 0 again: the write");
    ok(*(uint32_t *)(fr[2] + 0x18) == 0x1818 && *(uint32_t *)(fr[0] + 0x18) == tag(0) + 0x18, "into the new frame only");
    ptR[0] = F(3) | PG_P;
    invlpg(RO);
    write_cr0(read_cr0() | CR0_WP);
    write_cr0(read_cr0() & ~CR0_WP);
    no_fault(probe(K, WR, RO + 0x1c, 0x1c1c), "entry changed + invlpg, WP toggled twice: the write");
    is(*(uint32_t *)(fr[3] + 0x1c), 0x1c1c, "into the new frame");
    is(*(uint32_t *)(fr[4] + 0x18), 0x2018, "the writable page's write landed");

    /* a read-only user page */
    is_pf(probe(U, WR, RO + 0x1020, 1), 7, RO + 0x1020, "read-only user page, WP = 0: CPL 3 write");
    no_fault(probe(K, WR, RO + 0x1020, 0x2020), "CPL 0 write");
    ptR[1] = F(5) | PG_U | PG_P;
    invlpg(RO + 0x1000);
    write_cr0(read_cr0() | CR0_WP);
    is_pf(probe(K, WR, RO + 0x1024, 1), 3, RO + 0x1024, "entry changed + invlpg, WP = 1: CPL 0 write");
    is_pf(probe(U, WR, RO + 0x1024, 1), 7, RO + 0x1024, "CPL 3 write");
    reads(probe(U, RD, RO + 0x1024, 0), tag(5) + 0x24, "CPL 3 read: the new frame");
    write_cr0(read_cr0() & ~CR0_WP);
    ptR[1] &= ~PG_D;
    invlpg(RO + 0x1000);
    no_fault(probe(K, WR, RO + 0x1028, 0x2828), "WP = 0: CPL 0 write");
    ok(*(uint32_t *)(fr[5] + 0x28) == 0x2828 && (ptR[1] & PG_AD) == PG_AD, "into the new frame, D set");

    /* a read-only 4 MiB page */
    pd[BIG >> 22] = M8 | PG_PS | PG_U | PG_P;
    invlpg(BIG);
    no_fault(probe(K, WR, BIG + 0x2ff0, mark(M8 + 0x2ff0)), "read-only 4 MiB page, WP = 0: CPL 0 write");
    write_cr0(read_cr0() | CR0_WP);
    is_pf(probe(K, WR, BIG + 0x2ff0, 0), 3, BIG + 0x2ff0, "WP = 1: CPL 0 write");
    pd[BIG >> 22] = M12 | PG_PS | PG_U | PG_P;
    invlpg(BIG + 0x2ff0);
    write_cr0(read_cr0() & ~CR0_WP);
    no_fault(probe(K, WR, BIG + 0x3ff008, 0x3ff008), "frame changed + invlpg, WP = 0: CPL 0 write");
    is(*lin(M12 + 0x3ff008), 0x3ff008, "into the new frame");
    put_mark(M12 + 0x3ff008);
}

/* ---- pge ----------------------------------------------------------------------------- */
static void pge(void)
{
    code_ret(cfr[0], 0xc0de000a);
    code_ret(cfr[1], 0xc0de000b);
    ptG[0] = F(0) | PG_G | PG_U | PG_W | PG_P;
    ptG[1] = F(1) | PG_U | PG_W | PG_P;
    ptG[2] = (uint32_t)cfr[0] | PG_G | PG_U | PG_P;
    pd[GL >> 22] = (uint32_t)ptG | PG_U | PG_W | PG_P;
    pd[GBIG >> 22] = M8 | PG_G | PG_PS | PG_W | PG_P;
    memcpy(pd2, pd, sizeof pd);
    write_cr4(read_cr4() | CR4_PGE);
    reads(probe(K, RD, GL + 0x30, 0), tag(0) + 0x30, "PGE on: a global page");
    reads(probe(U, RD, GL + 0x1030, 0), tag(1) + 0x30, "a non-global one");
    reads(probe(U, EX, GL + 0x2000, 0), 0xc0de000a, "global user code");
    is(large_reads(K, GBIG, M8), NOFFS, "a global 4 MiB page");

    ptG[1] = F(3) | PG_U | PG_W | PG_P;
    reload_cr3();
    reads(probe(U, RD, GL + 0x1034, 0), tag(3) + 0x34, "non-global entry changed + CR3 load: the new frame");
    write_cr3((uint32_t)pd2);
    reads(probe(K, RD, GL + 0x38, 0), tag(0) + 0x38, "another directory: the shared global page");
    reads(probe(U, RD, GL + 0x1038, 0), tag(3) + 0x38, "the shared non-global one");
    ptG[1] = F(4) | PG_U | PG_W | PG_P;
    write_cr3((uint32_t)pd);
    reads(probe(U, RD, GL + 0x103c, 0), tag(4) + 0x3c, "changed + switch back: the new frame");

    ptG[0] = F(2) | PG_G | PG_U | PG_W | PG_P;
    ptG[2] = (uint32_t)cfr[1] | PG_G | PG_U | PG_P;
    pd[GBIG >> 22] = M12 | PG_G | PG_PS | PG_W | PG_P;
    reload_cr3();
    write_cr4(read_cr4() & ~CR4_PGE);
    reads(probe(U, RD, GL + 0x40, 0), tag(2) + 0x40, "global entry changed + PGE cleared: the new frame");
    reads(probe(U, EX, GL + 0x2000, 0), 0xc0de000b, "global code entry changed + PGE cleared: the new code");
    is(large_reads(K, GBIG, M12), NOFFS, "global 4 MiB page changed + PGE cleared: the new frame");

    ptG[0] = F(5) | PG_G | PG_U | PG_W | PG_P;
    reload_cr3();
    reads(probe(K, RD, GL + 0x44, 0), tag(5) + 0x44, "PGE = 0: G ignored, changed + CR3 load: the new frame");

    ptG[0] = F(6) | PG_G | PG_U | PG_W | PG_P;
    ptG[2] = (uint32_t)cfr[0] | PG_G | PG_U | PG_P;
    write_cr4(read_cr4() | CR4_PGE);
    reads(probe(U, RD, GL + 0x48, 0), tag(6) + 0x48, "changed + PGE set: the new frame");
    reads(probe(U, EX, GL + 0x2000, 0), 0xc0de000a, "code changed + PGE set: the new code");

    ptG[0] = F(7) | PG_G | PG_U | PG_W | PG_P;
    invlpg(GL);
    reads(probe(U, RD, GL + 0x4c, 0), tag(7) + 0x4c, "global entry changed + invlpg: the new frame");
    pd[GBIG >> 22] = M8 | PG_G | PG_PS | PG_W | PG_P;
    invlpg(GBIG + 0x200000);
    is(large_reads(K, GBIG, M8), NOFFS, "global 4 MiB page changed + invlpg: the new frame");

    ptG[2] = (uint32_t)cfr[1] | PG_G | PG_U | PG_P;
    write_cr4(read_cr4() & ~CR4_PGE);
    write_cr4(read_cr4() | CR4_PGE);
    reads(probe(U, EX, GL + 0x2000, 0), 0xc0de000b, "code changed + PGE toggled: the new code at CPL 3");

    /* Entries changed, used, and written back before the flush: after it the old frame
     * again, although each entry reads as it did at the flush before (A set by the reads
     * before it). */
    ptG[0] = F(1) | PG_G | PG_U | PG_W | PG_P;
    invlpg(GL);
    reads(probe(K, RD, GL + 0x50, 0), tag(1) + 0x50, "global entry changed + invlpg: the new frame");
    ptG[0] = F(7) | PG_G | PG_A | PG_U | PG_W | PG_P;
    write_cr4(read_cr4() & ~CR4_PGE);
    reads(probe(K, RD, GL + 0x54, 0), tag(7) + 0x54, "written back + PGE cleared: the old frame again");
    ptG[1] = F(5) | PG_U | PG_W | PG_P;
    invlpg(GL + 0x1000);
    reads(probe(U, RD, GL + 0x1058, 0), tag(5) + 0x58, "entry changed + invlpg: the new frame");
    ptG[1] = F(4) | PG_A | PG_U | PG_W | PG_P;
    reload_cr3();
    reads(probe(U, RD, GL + 0x105c, 0), tag(4) + 0x5c, "written back + CR3 load: the old frame again");

    /* Read-only at a flush, made writable without one (as a copy-on-write fault that
     * keeps its frame) and written, then read-only again exactly as at the flush, and
     * flushed: a write must fault again. */
    ptG[1] = F(4) | PG_A | PG_U | PG_P;
    reload_cr3();
    reads(probe(U, RD, GL + 0x1060, 0), tag(4) + 0x60, "read-only + CR3 load: readable");
    ptG[1] = F(4) | PG_AD | PG_U | PG_W | PG_P;
    no_fault(probe(U, WR, GL + 0x1064, 0x64), "made writable: CPL 3 write");
    ptG[1] = F(4) | PG_A | PG_U | PG_P;
    reload_cr3();
    is_pf(probe(U, WR, GL + 0x1068, 0x68), 7, GL + 0x1068, "read-only again + CR3 load: CPL 3 write");
}

/* ---- spaces ------------------------------------------------------------------------- */
#define SEL_FS3 (SEL_SPARE0 | 3)   /* spaces: a DPL 3 data segment FS is loaded with */
extern char pr_read_fs[];
asm(".pushsection .text\n"
    "pr_read_fs:\n\tmovl pr_addr, %ebx\n\tmovl $0xdeadbeef, %eax\n"
    "\tmovl %fs:(%ebx), %eax\n\tmovl %eax, pr_val\n\tret\n"
    ".popsection\n");

/* What CPL 3 code reads at FS:off with FS = SEL_FS3 of base `base` (in the directory in
 * use; the kernel loads FS before the iret). */
static uint32_t fs_read(uint32_t base, uint32_t off)
{
    rt_gdt[SEL_FS3 >> 3] = rt_desc(base, 0xfffff, 0xf3, 0xc);
    user_fs = SEL_FS3;
    pr_addr = off;
    pr_val = 0;
    uf.count = 0;
    user_resume = (uint32_t)user_exit;
    user_enter((void (*)(void))pr_read_fs);
    user_fs = UDS;
    return uf.count ? 0xfa017 : pr_val;
}
/* How many of the NSPACES directories, switched to in turn, read (at CPL `user`) their
 * private page as frame want[i] and the shared global page as frame g. */
static unsigned spaces_read(int user, const unsigned *want, unsigned g, uint32_t off)
{
    unsigned n = 0;
    for (unsigned i = 0; i < NSPACES; i++) {
        write_cr3((uint32_t)sp_pd[i]);
        n += probe(user, RD, SP + off, 0).val == tag(want[i]) + off;
        n += probe(user, RD, SG + off, 0).val == tag(g) + off;
    }
    return n;
}

static void spaces(void)
{
    unsigned want[NSPACES];
    uint32_t cr4 = read_cr4();
    write_cr4(cr4 | CR4_PGE);
    sp_ptg[0] = F(0) | PG_G | PG_U | PG_W | PG_P | PG_AD;
    for (unsigned i = 0; i < NSPACES; i++) {
        memcpy(sp_pd[i], pd, sizeof pd);
        want[i] = 1 + i % 7;
        sp_pt[i][0] = F(want[i]) | PG_U | PG_W | PG_P | PG_AD;
        sp_pd[i][SP >> 22] = (uint32_t)sp_pt[i] | PG_U | PG_W | PG_P;
        sp_pd[i][SG >> 22] = (uint32_t)sp_ptg | PG_U | PG_W | PG_P;
    }
    is(spaces_read(K, want, 0, 0x810) + spaces_read(U, want, 0, 0x814), 4 * NSPACES,
       "six directories in turn: each reads its own page and the shared global one (CPL 0, 3)");
    is(spaces_read(K, want, 0, 0x818) + spaces_read(U, want, 0, 0x81c), 4 * NSPACES, "and again");
    write_cr3((uint32_t)sp_pd[0]);
    sp_pt[3][0] = F(7) | PG_U | PG_W | PG_P | PG_AD;
    sp_pt[4][0] = 0;
    write_cr3((uint32_t)sp_pd[3]);
    reads(probe(U, RD, SP + 0x820, 0), tag(7) + 0x820, "an entry changed while another directory was in use: the new frame (CPL 3)");
    reads(probe(K, RD, SP + 0x824, 0), tag(7) + 0x824, "(CPL 0)");
    write_cr3((uint32_t)sp_pd[4]);
    is_pf(probe(U, RD, SP + 0x828, 0), 4, SP + 0x828, "one made not present meanwhile: CPL 3 read");
    is_pf(probe(K, RD, SP + 0x82c, 0), 0, SP + 0x82c, "CPL 0 read");
    sp_pt[4][0] = F(want[4]) | PG_U | PG_W | PG_P | PG_AD;
    want[3] = 7;
    write_cr3((uint32_t)sp_pd[1]);
    sp_ptg[0] = F(6) | PG_G | PG_U | PG_W | PG_P | PG_AD;
    invlpg(SG);
    is(spaces_read(K, want, 6, 0x830) + spaces_read(U, want, 6, 0x834), 4 * NSPACES,
       "the shared global entry changed + invlpg in one directory: the new frame in all (CPL 0, 3)");
    write_cr3((uint32_t)sp_pd[0]);
    is(fs_read(SP, 0x840), tag(want[0]) + 0x840, "CPL 3 through FS (a DPL 3 segment of base 0x%x)", SP);
    write_cr3((uint32_t)sp_pd[2]);
    is(fs_read(SG, 0x844), tag(6) + 0x844, "another directory, its base changed to 0x%x: the new base", SG);
    write_cr3((uint32_t)sp_pd[0]);
    is(fs_read(SG, 0x848), tag(6) + 0x848, "the first directory again: the new base too");
    rt_gdt[SEL_FS3 >> 3] = 0;
    write_cr3((uint32_t)pd);
    write_cr4(cr4);
}

/* ---- code across CR3 switches -------------------------------------------------------- */
static void code_switch(int user)
{
    const char *cpl = user ? "CPL 3" : "CPL 0";
    code_ret(cfr[0], 0xc0de00c0);
    code_ret(cfr[1], 0xc0de00c1);
    ptL[0] = (uint32_t)cfr[0] | PG_U | PG_P;
    pd[SW >> 22] = (uint32_t)ptL | PG_U | PG_W | PG_P;
    memcpy(pd2, pd, sizeof pd);
    ptH[0] = (uint32_t)cfr[0] | PG_U | PG_P;
    pd2[SW >> 22] = (uint32_t)ptH | PG_U | PG_W | PG_P | PG_A;
    reload_cr3();
    unsigned n = 0;
    for (unsigned i = 0; i < 4; i++)
        n += probe(user, EX, SW, 0).val == 0xc0de00c0;
    is(n, 4, "%s: code on a non-global page, run 4 times", cpl);
    write_cr3((uint32_t)pd2);
    reads(probe(user, EX, SW, 0), 0xc0de00c0, "%s: another directory, the same frame, A clear: the code runs", cpl);
    is(ptH[0] & PG_AD, PG_A, "%s: and its fetch set A in that directory's entry", cpl);
    ptL[0] = (uint32_t)cfr[1] | PG_U | PG_P;
    write_cr3((uint32_t)pd);
    reads(probe(user, EX, SW, 0), 0xc0de00c1, "%s: the first directory's entry changed meanwhile: its new code", cpl);
    write_cr3((uint32_t)pd2);
    reads(probe(user, EX, SW, 0), 0xc0de00c0, "%s: the second's, unchanged: its code", cpl);
    write_cr3((uint32_t)pd);
    pd[SW >> 22] = 0;
    invlpg(SW);
}

void test_main(void)
{
    setup();
    large();
    sw();
    pse();
    wp();
    pge();
    spaces();
    code_switch(U);
    code_switch(K);
    pt_paging_off();
}
