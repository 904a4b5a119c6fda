/*
 * pt_alias - page tables that are also something else: written through aliases, shared
 * with data, mapping themselves, freed and reused as code (and code reused as a page
 * table). Where a shadow MMU that traces guest page tables (write-protects them and
 * follows the writes) can go wrong, and a flushing one must stay right.
 *
 * The kernel: pt.h's layout (0-4 MiB the kernel image, user-accessible, through pt_low;
 * 4-128 MiB supervisor 4 MiB pages) and
 *   WIN    0x40000000  ptA: pages 0-7 -> fr[0..7] (user, writable; 5 and 6 not present),
 *                      page 16 (SELF) -> ptA itself (supervisor, writable),
 *                      page 17 (URW) -> ptA (user, writable), page 18 (URO) -> ptA (user,
 *                      read-only); entries 512-1023 hold data, not mappings;
 *   ALIAS  0x40400000  ptB: page 0 -> ptA (supervisor, writable)
 *   REG    0x40800000  ptC (then nothing: ptC becomes code)
 *   REG2   0x40c00000  nothing (then cpage, a code page that ran, as its page table)
 *   REG3   0x41000000  ptM: a live page table whose upper half holds code that runs
 *   SHARED 0x41400000  ptA again: one entry maps two linear pages
 *   RECUR  0xbfc00000  the page directory itself (a recursive PDE)
 * and ptA is also reachable through the identity map, where the kernel's C code writes it.
 *
 * Checks:
 *   alias      a PTE written through each alias (another page table's mapping of ptA, the
 *              self-mapping, the user-writable mapping from CPL 3) is used after invlpg or
 *              a CR3 load; a not-present PTE made present through an alias is used with
 *              no invalidation (a P 0 -> 1 change needs none), at CPL 0 and CPL 3; every
 *              alias reads the same entry, with the accessed bit the walk set; the
 *              read-only user mapping faults on a write and changes nothing; an entry of
 *              a table under two PDEs changed + invlpg of both pages.
 *   data       data in the same page as live PTEs, written by the kernel and by user code
 *              (through the writable user mapping) while the live pages are used; data
 *              that happens to be a present PTE maps its page (P 0 -> 1).
 *   self       the self-mapping's own entry: A set by the read through it (and seen by
 *              that read), D by a write through it; the entry pointed elsewhere through
 *              itself; made read-only (CR0.WP = 1 faults, WP = 0 writes). A recursive PDE:
 *              ptA and the page directory written through it.
 *   reuse      ptC, used, dropped from its PDE, holds code run at CPL 0 and CPL 3 (and
 *              rewritten); cpage, code that ran at both levels, becomes a page table
 *              (mappings, A bits, a remap) and then code again; ptM runs code in its
 *              upper half at both levels while its lower half maps pages, and both halves
 *              change.
 *
 * Not checked (not architectural): whether a changed entry is used before invalidation
 * (other than P 0 -> 1), whether an entry is cached while not present.
 */
#include "pt.h"

#define WIN   0x40000000u
#define ALIAS 0x40400000u
#define REG   0x40800000u
#define REG2  0x40c00000u
#define REG3  0x41000000u
#define SHARED 0x41400000u
#define RECUR 0xbfc00000u
#define SELF_I 16u
#define URW_I 17u
#define URO_I 18u
#define SELF (WIN + SELF_I * 4096u)
#define URW  (WIN + URW_I * 4096u)
#define URO  (WIN + URO_I * 4096u)
#define PAGE(i) (WIN + (i) * 4096u)

/* The page directory pd, page tables ptA, ptB, ptC and ptM (see above). */
static uint32_t tables[5][1024] __attribute__((aligned(4096)));
#define pd tables[0]
#define ptA tables[1]
#define ptB tables[2]
#define ptC tables[3]
#define ptM tables[4]
static uint8_t cpage[4096] __attribute__((aligned(4096)));   /* code, then a page table */
static uint8_t fr[8][4096] __attribute__((aligned(4096)));   /* data frames */

static uint32_t F(unsigned i) { return (uint32_t)fr[i]; }
static uint32_t tag(unsigned i) { return 0x0f000000u * (i + 1) + 0x1000u; }
#define USER_PTE(i) (F(i) | PG_U | PG_W | PG_P)

static void setup(void)
{
    for (unsigned i = 0; i < 8; i++) {
        fill(fr[i], tag(i));
        ptA[i] = USER_PTE(i);
    }
    ptA[5] &= ~PG_P;
    ptA[6] &= ~PG_P;
    ptA[SELF_I] = (uint32_t)ptA | PG_W | PG_P;
    ptA[URW_I] = (uint32_t)ptA | PG_U | PG_W | PG_P;
    ptA[URO_I] = (uint32_t)ptA | PG_U | PG_P;
    ptB[0] = (uint32_t)ptA | PG_W | PG_P;
    pd[WIN >> 22] = (uint32_t)ptA | PG_U | PG_W | PG_P;
    pd[ALIAS >> 22] = (uint32_t)ptB | PG_W | PG_P;
    pd[RECUR >> 22] = (uint32_t)pd | PG_W | PG_P;
    pt_setup(pd);
}

/* ---- alias --------------------------------------------------------------------------- */
static void alias(void)
{
    reads(probe(K, RD, PAGE(0) + 0x10, 0), tag(0) + 0x10, "page 0 maps fr0");
    *lin(ALIAS + 0) = USER_PTE(1);
    invlpg(PAGE(0));
    reads(probe(K, RD, PAGE(0) + 0x10, 0), tag(1) + 0x10, "PTE written through another page table's alias + invlpg");
    *lin(SELF + 0) = USER_PTE(2);
    reload_cr3();
    reads(probe(K, RD, PAGE(0) + 0x10, 0), tag(2) + 0x10, "PTE written through the self-mapping + CR3 load");
    no_fault(probe(U, WR, URW + 0, USER_PTE(3)), "CPL 3 writes a PTE through its writable mapping");
    invlpg(PAGE(0));
    reads(probe(U, RD, PAGE(0) + 0x14, 0), tag(3) + 0x14, "that PTE + invlpg, read at CPL 3");
    reads(probe(K, RD, PAGE(0) + 0x18, 0), tag(3) + 0x18, "and at CPL 0");
    no_fault(probe(U, WR, URW + 0, USER_PTE(4)), "CPL 3 writes it again");
    reload_cr3();
    reads(probe(U, RD, PAGE(0) + 0x1c, 0), tag(4) + 0x1c, "that PTE + CR3 load, read at CPL 3");

    /* P 0 -> 1 needs no invalidation. */
    is_pf(probe(K, RD, PAGE(5) + 0x20, 0), 0, PAGE(5) + 0x20, "not-present page 5 at CPL 0");
    *lin(ALIAS + 4 * 5) = USER_PTE(5);
    reads(probe(K, RD, PAGE(5) + 0x20, 0), tag(5) + 0x20, "made present through an alias, no invlpg: used");
    is_pf(probe(U, RD, PAGE(6) + 0x24, 0), 4, PAGE(6) + 0x24, "not-present page 6 at CPL 3");
    no_fault(probe(U, WR, URW + 4 * 6, USER_PTE(6)), "CPL 3 makes it present through its writable mapping");
    reads(probe(U, RD, PAGE(6) + 0x24, 0), tag(6) + 0x24, "used at CPL 3 with no invalidation");

    /* Every alias reads the same entry, with the A bit the walks set (no write: no D). */
    uint32_t want5 = USER_PTE(5) | PG_A, want6 = USER_PTE(6) | PG_A;
    is(*lin(ALIAS + 4 * 5), want5, "PTE 5 through the other table's alias: A set, D clear");
    is(*lin(SELF + 4 * 5), want5, "PTE 5 through the self-mapping");
    is(ptA[5], want5, "PTE 5 through the identity map");
    reads(probe(U, RD, URO + 4 * 5, 0), want5, "PTE 5 through the read-only user mapping");
    reads(probe(U, RD, URW + 4 * 6, 0), want6, "PTE 6 through the writable user mapping");
    no_fault(probe(U, WR, PAGE(6) + 0x28, 0x600d), "CPL 3 writes page 6");
    reads(probe(U, RD, URO + 4 * 6, 0), want6 | PG_D, "PTE 6 through the read-only user mapping: D set");
    is_pf(probe(U, WR, URO + 4 * 6, 0), 7, URO + 4 * 6, "CPL 3 write through the read-only mapping");
    is(ptA[6], want6 | PG_D, "the faulting write changed nothing");

    /* ptA under a second PDE: entry 7 maps two linear pages */
    pd[SHARED >> 22] = (uint32_t)ptA | PG_U | PG_W | PG_P;
    reads(probe(U, RD, PAGE(7) + 0x2c, 0), tag(7) + 0x2c, "page 7");
    reads(probe(K, RD, SHARED + 0x702c, 0), tag(7) + 0x2c, "the same entry under a second PDE");
    *lin(SELF + 4 * 7) = USER_PTE(1);
    invlpg(PAGE(7));
    invlpg(SHARED + 0x7000);
    reads(probe(K, RD, PAGE(7) + 0x2c, 0), tag(1) + 0x2c, "entry changed + invlpg of both pages: the first");
    reads(probe(U, RD, SHARED + 0x702c, 0), tag(1) + 0x2c, "and the second");
    pd[SHARED >> 22] = 0;
    ptA[7] = USER_PTE(7);
    reload_cr3();
}

/* ---- data ---------------------------------------------------------------------------- */
static uint32_t datum(unsigned i, unsigned round) { return (i * 0x9e3779b8u + round * 0x1000u) & ~PG_P; }

extern char u_data[];
asm(".pushsection .text\n"
    /* CPL 3: entries 768-1023 of ptA := datum(i, 2) through URW, reading page 1 between */
    "u_data:\n"
    "\tmovl $768, %ecx\n"
    "1:\tmovl %ecx, %eax\n"
    "\timull $0x9e3779b8, %eax\n"
    "\taddl $0x2000, %eax\n"
    "\tandl $0xfffffffe, %eax\n"
    "\tmovl %eax, " PT_S(URW) "(,%ecx,4)\n"
    "\tmovl " PT_S(WIN) "+0x1000(,%ecx,4), %eax\n"
    "\tincl %ecx\n"
    "\tcmpl $1024, %ecx\n"
    "\tjb 1b\n"
    "\tret\n"
    ".popsection\n");

static void data(void)
{
    ptA[1] = USER_PTE(1);
    ptA[2] = USER_PTE(2);
    invlpg(PAGE(1));
    invlpg(PAGE(2));
    uint32_t sum = 0, want = 0;
    for (unsigned i = 512; i < 1024; i++) {
        ptA[i] = datum(i, 1);
        sum += *lin(PAGE(1 + i % 2) + (i % 1024) * 4);
        want += tag(1 + i % 2) + (i % 1024) * 4;
    }
    is(sum, want, "data written beside live PTEs while their pages are read");
    unsigned bad = 0;
    for (unsigned i = 512; i < 1024; i++)
        bad += *lin(SELF + 4 * i) != datum(i, 1) || *lin(ALIAS + 4 * i) != datum(i, 1);
    is(bad, 0, "the data reads back through both aliases");
    ok((ptA[1] & PG_AD) == PG_A && (ptA[2] & PG_AD) == PG_A, "the live PTEs beside it: A set, D clear");

    user_enter((void (*)(void))u_data);
    bad = 0;
    for (unsigned i = 512; i < 1024; i++)
        bad += ptA[i] != datum(i, i < 768 ? 1 : 2);
    is(bad, 0, "CPL 3 wrote data beside live PTEs through its writable mapping");
    reads(probe(U, RD, URO + 4 * 1000, 0), datum(1000, 2), "and reads it through the read-only one");
    reads(probe(U, RD, PAGE(1) + 0x30, 0), tag(1) + 0x30, "the live pages still map their frames");

    /* Data that is a present PTE maps its page (P 0 -> 1: no invalidation needed). */
    is_pf(probe(K, RD, PAGE(600) + 0x34, 0), 0, PAGE(600) + 0x34, "page 600 (a datum) is not present");
    *lin(SELF + 4 * 600) = USER_PTE(7);
    reads(probe(U, RD, PAGE(600) + 0x34, 0), tag(7) + 0x34, "a datum made a present PTE maps its page");
    ptA[600] = 0;
    invlpg(PAGE(600));
}

/* ---- self ---------------------------------------------------------------------------- */
static void self(void)
{
    ptA[SELF_I] &= ~PG_AD;
    invlpg(SELF);
    uint32_t e = *lin(SELF + 4 * SELF_I);
    is(e & PG_AD, PG_A, "the self-entry read through itself: A already set (by the walk), D clear");
    is(ptA[SELF_I] & PG_AD, PG_A, "and in memory");
    *lin(SELF + 4 * 700) = 0x700;
    is(ptA[SELF_I] & PG_AD, PG_AD, "a write through the self-mapping sets its D");
    is(ptA[700], 0x700, "and lands in the table");

    *lin(SELF + 4 * SELF_I) = F(7) | PG_W | PG_P;
    invlpg(SELF);
    is(*lin(SELF + 0x10), tag(7) + 0x10, "the self-entry pointed elsewhere through itself + invlpg");
    ptA[SELF_I] = (uint32_t)ptA | PG_W | PG_P;
    invlpg(SELF);
    is(*lin(SELF + 4 * 3), ptA[3], "pointed back through the identity map + invlpg");

    ptA[SELF_I] = (uint32_t)ptA | PG_P;
    invlpg(SELF);
    write_cr0(read_cr0() | CR0_WP);
    is_pf(probe(K, WR, SELF + 4 * 701, 1), 3, SELF + 4 * 701, "read-only self-mapping, CR0.WP = 1: write");
    is(ptA[701], datum(701, 1), "the write changed nothing");
    write_cr0(read_cr0() & ~CR0_WP);
    no_fault(probe(K, WR, SELF + 4 * 701, 0x701 << 1), "CR0.WP = 0: the write goes through");
    is(ptA[701], 0x701 << 1, "and lands in the table");
    ptA[SELF_I] = (uint32_t)ptA | PG_W | PG_P;
    invlpg(SELF);

    /* The recursive PDE: RECUR + 4K * i maps the page table of PDE i. */
    uint32_t rA = RECUR + (WIN >> 22) * 4096u, rD = RECUR + (RECUR >> 22) * 4096u;
    is(*lin(rA + 4 * 3), ptA[3], "recursive PDE: ptA read through it");
    is(*lin(rD + 4 * (RECUR >> 22)) & PG_FRAME, (uint32_t)pd, "recursive PDE: the directory maps itself");
    *lin(rA + 4 * 3) = USER_PTE(0);
    invlpg(PAGE(3));
    reads(probe(U, RD, PAGE(3) + 0x38, 0), tag(0) + 0x38, "a PTE written through the recursive PDE + invlpg");
    is_pf(probe(K, RD, REG3 + 0x3c, 0), 0, REG3 + 0x3c, "REG3 has no PDE yet");
    ptM[0] = USER_PTE(2);
    *lin(rD + 4 * (REG3 >> 22)) = (uint32_t)ptM | PG_U | PG_W | PG_P;
    reads(probe(K, RD, REG3 + 0x3c, 0), tag(2) + 0x3c, "a PDE made present through the recursive mapping");
    ok(pd[REG3 >> 22] & PG_A, "its A bit set by the walk, seen through the identity map");
    is(*lin(rD + 4 * (REG3 >> 22)), pd[REG3 >> 22], "and through the recursive mapping");
    pd[REG3 >> 22] = 0;
    reload_cr3();
    is_pf(probe(K, RD, REG3 + 0x3c, 0), 0, REG3 + 0x3c, "PDE dropped + CR3 load: REG3 faults");
}

/* ---- reuse --------------------------------------------------------------------------- */
static void reuse(void)
{
    /* ptC: a page table in use, then dropped and filled with code. */
    for (unsigned i = 0; i < 3; i++)
        ptC[i] = USER_PTE(i);
    pd[REG >> 22] = (uint32_t)ptC | PG_U | PG_W | PG_P;
    reads(probe(K, RD, REG + 0x40, 0), tag(0) + 0x40, "ptC maps page 0 (CPL 0)");
    reads(probe(U, RD, REG + 0x1040, 0), tag(1) + 0x40, "ptC maps page 1 (CPL 3)");
    no_fault(probe(U, WR, REG + 0x2040, 0x1234), "ptC maps page 2 (CPL 3 write)");
    pd[REG >> 22] = 0;
    reload_cr3();
    is_pf(probe(K, RD, REG + 0x40, 0), 0, REG + 0x40, "ptC dropped from its PDE + CR3 load (CPL 0)");
    is_pf(probe(U, RD, REG + 0x2040, 0), 4, REG + 0x2040, "and at CPL 3");
    memset(ptC, 0xcc, 4096);
    code_ret((uint8_t *)ptC, 0xc0de0000);
    code_ret((uint8_t *)ptC + 0x808, 0xc0de0808);
    reads(probe(K, EX, (uint32_t)ptC, 0), 0xc0de0000, "the freed page table runs as code at CPL 0");
    reads(probe(U, EX, (uint32_t)ptC + 0x808, 0), 0xc0de0808, "and at CPL 3");
    code_ret((uint8_t *)ptC + 0x808, 0xc0de1808);
    reads(probe(U, EX, (uint32_t)ptC + 0x808, 0), 0xc0de1808, "rewritten: CPL 3 runs the new code");
    reads(probe(K, EX, (uint32_t)ptC + 0x808, 0), 0xc0de1808, "and CPL 0");

    /* cpage: code that ran at both levels becomes a page table. */
    memset(cpage, 0xcc, 4096);
    code_ret(cpage + 0x40, 0xc0de0040);
    reads(probe(K, EX, (uint32_t)cpage + 0x40, 0), 0xc0de0040, "cpage runs as code at CPL 0");
    reads(probe(U, EX, (uint32_t)cpage + 0x40, 0), 0xc0de0040, "and at CPL 3");
    uint32_t *cpt = (uint32_t *)cpage;
    memset(cpage, 0, 4096);
    for (unsigned i = 0; i < 4; i++)
        cpt[i] = USER_PTE(4 + i);
    pd[REG2 >> 22] = (uint32_t)cpage | PG_U | PG_W | PG_P;
    reads(probe(K, RD, REG2 + 0x44, 0), tag(4) + 0x44, "code page turned page table: page 0 (CPL 0)");
    reads(probe(U, RD, REG2 + 0x3044, 0), tag(7) + 0x44, "page 3 (CPL 3)");
    no_fault(probe(U, WR, REG2 + 0x1048, 0x77), "page 1 written at CPL 3");
    ok((cpt[0] & PG_AD) == PG_A && (cpt[1] & PG_AD) == PG_AD && (cpt[2] & PG_AD) == 0 && (cpt[3] & PG_AD) == PG_A,
       "its A and D bits as the accesses set them");
    cpt[0] = USER_PTE(6);
    invlpg(REG2);
    reads(probe(U, RD, REG2 + 0x4c, 0), tag(6) + 0x4c, "a PTE in it changed + invlpg");
    pd[REG2 >> 22] = 0;
    reload_cr3();
    memset(cpage, 0xcc, 4096);
    code_ret(cpage + 0x10, 0xc0de0010);
    reads(probe(U, EX, (uint32_t)cpage + 0x10, 0), 0xc0de0010, "and back to code: runs at CPL 3");
    reads(probe(K, EX, (uint32_t)cpage + 0x10, 0), 0xc0de0010, "and at CPL 0");
    is_pf(probe(U, RD, REG2 + 0x44, 0), 4, REG2 + 0x44, "its old mappings are gone");

    /* ptM: a live page table with code in its upper half (entries there: not present). */
    for (unsigned i = 0; i < 4; i++)
        ptM[i] = USER_PTE(i);
    uint8_t *mcode = (uint8_t *)&ptM[512];
    code_ret(mcode, 0x00de0800);                     /* 0x00: entry 513 stays not present */
    pd[REG3 >> 22] = (uint32_t)ptM | PG_U | PG_W | PG_P;
    reload_cr3();
    reads(probe(U, EX, (uint32_t)mcode, 0), 0x00de0800, "code in a live page table runs at CPL 3");
    reads(probe(U, RD, REG3 + 0x1050, 0), tag(1) + 0x50, "while it maps pages (CPL 3)");
    reads(probe(K, EX, (uint32_t)mcode, 0), 0x00de0800, "the code at CPL 0");
    reads(probe(K, RD, REG3 + 0x2050, 0), tag(2) + 0x50, "the mappings at CPL 0");
    ok((ptM[1] & PG_AD) == PG_A && (ptM[2] & PG_AD) == PG_A, "A set in the page that also holds code");
    reads(probe(U, EX, (uint32_t)mcode, 0), 0x00de0800, "the code again at CPL 3 after the A bits");
    ptM[1] = USER_PTE(5);
    invlpg(REG3 + 0x1000);
    reads(probe(U, RD, REG3 + 0x1054, 0), tag(5) + 0x54, "a PTE beside the code changed + invlpg");
    code_ret(mcode, 0x02de0800);
    reads(probe(U, EX, (uint32_t)mcode, 0), 0x02de0800, "the code beside the PTEs rewritten: CPL 3 runs it");
    reads(probe(K, EX, (uint32_t)mcode, 0), 0x02de0800, "and CPL 0");
    reads(probe(U, RD, REG3 + 0x3058, 0), tag(3) + 0x58, "the mappings still hold");
}

void test_main(void)
{
    setup();
    alias();
    data();
    self();
    reuse();
    pt_paging_off();
}
