/*
 * paging_user - 32-bit paging (no PAE, no NX) seen from CPL 3, and from CPL 0 on user pages.
 *
 * #PF error codes: every combination 32-bit paging without NX, SMEP or SMAP produces -
 * 0 2 3 (supervisor: not present read/write, write to read-only with CR0.WP = 1) and
 * 4 5 6 7 (user: not present, protection, read and write) - for a not-present PTE and a
 * not-present PDE, for user reads, writes and instruction fetches of supervisor pages with
 * U/S clear in the PTE only or in the PDE only (4 KiB pages) or in a 4 MiB PDE, for user
 * writes to read-only pages with R/W clear in the PTE only, in the PDE only and in a
 * 4 MiB PDE, each with CR0.WP = 0 and 1 (WP does not matter at CPL 3); supervisor writes to
 * read-only user pages (4 KiB, R/W clear in the PDE, 4 MiB) work with WP = 0 and fault
 * with WP = 1; RSVD (error 8|...) for a 4 MiB PDE with bit 21 set, the one PDE bit that is
 * reserved both with PSE-36 (QEMU's qemu32) and without it (bt86): bits 13-20 are address
 * bits with PSE-36 and are not tested.  QEMU 7.x reports a RSVD fault without P (error 8|W|U,
 * a QEMU bug: hardware sets P, the entry being present, and QEMU before 7.0 did too), so P is
 * not compared for those.  CR2 and the EIP/CS pushed for faults at CPL 3,
 * dwords and instructions straddling into a faulting page (CR2 = the second page, no
 * partial write).  Accessed and dirty bits set by user reads, writes and fetches (4 KiB PTE
 * and PDE, 4 MiB PDE).  Permission changes made visible by invlpg: read-only -> writable,
 * writable -> read-only, user -> supervisor and back, present -> not present, a new frame;
 * stores by the kernel seen by user code and the other way round.  Demand paging: a #PF at
 * CPL 3 that the kernel fixes (setting P, no invlpg, which a 0 -> 1 change of P does not
 * need) and returns to retry, for data reads and writes, an instruction fetch from a
 * not-present page, an instruction straddling into one, and code falling through into one.
 * The straddling instruction after CR3 reloads, with its second page remapped to another
 * frame (the new bytes run) and back.
 * Two address spaces mapping the same user linear addresses (data and code) to different
 * frames, switched by a system call in the middle of a user program and by the kernel
 * between programs; code changed in the inactive space runs after the switch back.  Global
 * user pages (CR4.PGE): shared by both spaces across CR3 writes, remapped + invlpg, remapped
 * + CR4.PGE toggled; a non-global user page unmapped + CR3 reload faults.
 *
 * Not tested: whether accessed bits are set by an access that faults (model-specific);
 * whether a stale global or read-only TLB entry survives (architecturally optional: only
 * transitions the SDM says need no invalidation, or that are invalidated, are checked);
 * implicit supervisor accesses made from CPL 3 (descriptor tables), which fault into #DF.
 * A failed check prints a "# ..." line with what was seen.
 */
#include "pt.h"

#define PG_PAGEABLE 0x200u    /* available bit: the demand pager may set P */
#define PG_RSVD21 0x200000u   /* reserved in a 4 MiB PDE */

/* Linear layout (PDE index). */
#define W      0x40000000u    /* 256: ptw, PDE U W P              */
#define WSUPD  0x40400000u    /* 257: ptw again, PDE U/S clear    */
#define WROPD  0x40800000u    /* 258: ptw again, PDE R/W clear    */
#define BIG    0x40c00000u    /* 259: 4 MiB, user, writable       */
#define BIGS   0x41000000u    /* 260: 4 MiB, supervisor, writable */
#define BIGRO  0x41400000u    /* 261: 4 MiB, user, read-only      */
#define NOPDE  0x41800000u    /* 262: not present                 */
#define CODE   0x41c00000u    /* 263: ptc, user code pages        */
#define RSV    0x42000000u    /* 264: 4 MiB, user, bit 21 set     */
#define BIGPHYS  0x00800000u  /* what the 4 MiB pages map         */
#define BIGPHYS2 0x00c00000u

static uint32_t pdA[1024] __attribute__((aligned(4096)));
static uint32_t pdB[1024] __attribute__((aligned(4096)));
static uint32_t ptw[1024] __attribute__((aligned(4096)));
static uint32_t ptwB[1024] __attribute__((aligned(4096)));
static uint32_t ptc[1024] __attribute__((aligned(4096)));
static uint32_t ptcB[1024] __attribute__((aligned(4096)));
static uint8_t frames[13][4096] __attribute__((aligned(4096)));
static uint8_t cframes[8][4096] __attribute__((aligned(4096)));
static uint8_t other_tail[4096] __attribute__((aligned(4096))); /* another second page */
static uint8_t cframeB[4096] __attribute__((aligned(4096)));
static uint8_t frameB0[4096] __attribute__((aligned(4096)));

static inline uint32_t fr(unsigned i) { return (uint32_t)frames[i]; }

/* A reserved-bit fault: QEMU (7.x on) reports RSVD without P, hardware with P (the entry is
 * present); only the other bits are compared. */
static void is_rsvd_pf(struct probe a, uint32_t err, uint32_t cr2, const char *desc)
{
    int good = a.faulted == 1 && a.vector == 14 && (a.err & ~1u) == err && a.cr2 == cr2 &&
               a.eip == a.at && a.cs == (a.user ? UCS : SEL_KCODE);
    if (!ok(good, "%s: #PF, error 0x%x (P not compared), CR2, EIP", desc, err))
        show(a);
}

/* ---- setup ----------------------------------------------------------------------------------- */
static void setup(void)
{
    pt_setup(pdA);             /* paging on: every entry below goes from P = 0 to 1 */
    pdA[W >> 22] = (uint32_t)ptw | PG_U | PG_W | PG_P;
    pdA[WSUPD >> 22] = (uint32_t)ptw | PG_W | PG_P;
    pdA[WROPD >> 22] = (uint32_t)ptw | PG_U | PG_P;
    pdA[BIG >> 22] = BIGPHYS | PG_PS | PG_U | PG_W | PG_P;
    pdA[BIGS >> 22] = BIGPHYS | PG_PS | PG_W | PG_P;
    pdA[BIGRO >> 22] = BIGPHYS | PG_PS | PG_U | PG_P;
    pdA[CODE >> 22] = (uint32_t)ptc | PG_U | PG_W | PG_P;
    pdA[RSV >> 22] = BIGPHYS | PG_RSVD21 | PG_PS | PG_U | PG_W | PG_P;

    for (unsigned i = 0; i < 13; i++)
        fill(frames[i], 0x01000000u * (i + 1));
    fill(frameB0, 0xb0000000u);
    for (uint32_t o = 0; o < 0x4000; o += 0x1000)
        fill(PHYS(BIGPHYS + o), 0x0b160000u + o);
    fill(PHYS(BIGPHYS + 0x3ff000), 0x0b16f000u);
    fill(PHYS(BIGPHYS2), 0x0b260000u);
    ptw[0] = fr(0) | PG_U | PG_W | PG_P;               /* user, writable */
    ptw[1] = fr(1) | PG_U | PG_P;                      /* user, read-only */
    ptw[2] = fr(2) | PG_W | PG_P;                      /* supervisor, writable */
    ptw[3] = fr(3) | PG_P;                             /* supervisor, read-only */
    ptw[4] = fr(4) | PG_U | PG_W;                      /* not present */
    ptw[5] = fr(5) | PG_U | PG_W | PG_P;               /* accessed / dirty */
    ptw[6] = fr(6) | PG_U | PG_P;                      /* permission changes */
    ptw[7] = fr(7) | PG_PAGEABLE | PG_U | PG_W;        /* demand paging */
    ptw[8] = fr(8) | PG_PAGEABLE | PG_U | PG_W;
    ptw[9] = fr(9) | PG_PAGEABLE | PG_U | PG_W;
    ptw[10] = fr(10) | PG_U | PG_W | PG_P;             /* global (set later) */
    ptw[11] = fr(11) | PG_U | PG_W | PG_P;             /* remapping */

    /* user code pages */
    code_ret(cframes[0], 1);                           /* AS A: returns 1 */
    code_ret(cframes[1], 0xc1c1c1c1);                  /* demand-paged code */
    memcpy(cframes[2] + 0xffd, "\xb8\x78\x56", 3);     /* mov $0x12345678, %eax; ret */
    memcpy(cframes[3], "\x34\x12\xc3", 3);             /*   straddling pages 2 and 3 */
    memcpy(other_tail, "\xcd\xab\xc3", 3);             /*   or: mov $0xabcd5678, %eax */
    memset(cframes[4] + 0xffc, 0x90, 4);               /* nops falling through into page 5 */
    code_ret(cframes[5], 0x55555555);
    memcpy(cframes[6] + 0xffd, "\xb8\x78\x56", 3);     /* straddling into a supervisor page */
    memcpy(cframes[7], "\x34\x12\xc3", 3);
    code_ret(cframeB, 2);                              /* AS B: returns 2 */
    ptc[0] = (uint32_t)cframes[0] | PG_U | PG_P;       /* user, read-only: fetch is fine */
    ptc[1] = (uint32_t)cframes[1] | PG_PAGEABLE | PG_U;
    ptc[2] = (uint32_t)cframes[2] | PG_U | PG_P;
    ptc[3] = (uint32_t)cframes[3] | PG_PAGEABLE | PG_U;
    ptc[4] = (uint32_t)cframes[4] | PG_U | PG_P;
    ptc[5] = (uint32_t)cframes[5] | PG_PAGEABLE | PG_U;
    ptc[6] = (uint32_t)cframes[6] | PG_U | PG_P;
    ptc[7] = (uint32_t)cframes[7] | PG_P;              /* supervisor */

    /* address space B: the same, but W+0 and CODE+0 map other frames */
    memcpy(pdB, pdA, sizeof pdA);
    memcpy(ptwB, ptw, sizeof ptw);
    memcpy(ptcB, ptc, sizeof ptc);
    ptwB[0] = (uint32_t)frameB0 | PG_U | PG_W | PG_P;
    ptcB[0] = (uint32_t)cframeB | PG_U | PG_P;
    pdB[W >> 22] = (uint32_t)ptwB | PG_U | PG_W | PG_P;
    pdB[CODE >> 22] = (uint32_t)ptcB | PG_U | PG_W | PG_P;

}

/* ---- the tests ---------------------------------------------------------------------------- */
static void basics(void)
{
    struct probe a = probe(U, RD, W + 0x10, 0);
    no_fault(a, "CPL 3 read of a user page");
    is(a.val, 0x01000010, "CPL 3 read: the frame's contents");
    a = probe(U, WR, W + 0x20, 0x600dcafe);
    no_fault(a, "CPL 3 write to a user page");
    is(*(uint32_t *)(frames[0] + 0x20), 0x600dcafe, "CPL 3 write: lands in the frame");
    a = probe(U, RD, W + 0x1010, 0);
    ok(!a.faulted && a.val == 0x02000010, "CPL 3 read of a read-only user page");
    a = probe(U, EX, CODE, 0);
    ok(!a.faulted && a.val == 1, "CPL 3 fetch from a read-only user page: the code ran");
    a = probe(U, RD, BIG + 0x454, 0);
    ok(!a.faulted && a.val == 0x0b160454, "CPL 3 read of a 4 MiB user page");
    a = probe(U, WR, BIG + 0x3ff000, 0x4b4b4b4b);
    ok(!a.faulted && *(uint32_t *)PHYS(BIGPHYS + 0x3ff000) == 0x4b4b4b4b, "CPL 3 write to a 4 MiB user page");
}

static void user_error_codes(void)
{
    for (int wp = 0; wp < 2; wp++) {
        write_cr0(wp ? read_cr0() | CR0_WP : read_cr0() & ~CR0_WP);
        char d[80];
#define WPD(s) (rt_format(d, sizeof d, "%s (WP=%d)", s, wp), d)
        is_pf(probe(U, RD, W + 0x4008, 0), 4, W + 0x4008, WPD("CPL 3 read, not-present PTE"));
        is_pf(probe(U, WR, W + 0x400c, 0), 6, W + 0x400c, WPD("CPL 3 write, not-present PTE"));
        is_pf(probe(U, EX, W + 0x4010, 0), 4, W + 0x4010, WPD("CPL 3 fetch, not-present PTE"));
        is_pf(probe(U, RD, NOPDE + 0x1234, 0), 4, NOPDE + 0x1234, WPD("CPL 3 read, not-present PDE"));
        is_pf(probe(U, WR, NOPDE + 0x2344, 0), 6, NOPDE + 0x2344, WPD("CPL 3 write, not-present PDE"));
        is_pf(probe(U, EX, NOPDE + 0x3450, 0), 4, NOPDE + 0x3450, WPD("CPL 3 fetch, not-present PDE"));
        is_pf(probe(U, RD, W + 0x2100, 0), 5, W + 0x2100, WPD("CPL 3 read, supervisor PTE"));
        is_pf(probe(U, WR, W + 0x2104, 0), 7, W + 0x2104, WPD("CPL 3 write, supervisor PTE"));
        is_pf(probe(U, EX, W + 0x2000, 0), 5, W + 0x2000, WPD("CPL 3 fetch, supervisor PTE"));
        is_pf(probe(U, RD, W + 0x3100, 0), 5, W + 0x3100, WPD("CPL 3 read, supervisor read-only PTE"));
        is_pf(probe(U, WR, W + 0x3104, 0), 7, W + 0x3104, WPD("CPL 3 write, supervisor read-only PTE"));
        is_pf(probe(U, RD, WSUPD + 0x0200, 0), 5, WSUPD + 0x0200, WPD("CPL 3 read, U/S clear in the PDE only"));
        is_pf(probe(U, WR, WSUPD + 0x0204, 0), 7, WSUPD + 0x0204, WPD("CPL 3 write, U/S clear in the PDE only"));
        is_pf(probe(U, EX, WSUPD + 0x0000, 0), 5, WSUPD + 0x0000, WPD("CPL 3 fetch, U/S clear in the PDE only"));
        is_pf(probe(U, RD, BIGS + 0x2ffffc, 0), 5, BIGS + 0x2ffffc, WPD("CPL 3 read, 4 MiB supervisor page"));
        is_pf(probe(U, WR, BIGS + 0x300000, 0), 7, BIGS + 0x300000, WPD("CPL 3 write, 4 MiB supervisor page"));
        is_pf(probe(U, EX, BIGS + 0x10, 0), 5, BIGS + 0x10, WPD("CPL 3 fetch, 4 MiB supervisor page"));
        is_pf(probe(U, WR, W + 0x1200, 0x11), 7, W + 0x1200, WPD("CPL 3 write, read-only PTE"));
        is_pf(probe(U, WR, WROPD + 0x0300, 0x11), 7, WROPD + 0x0300, WPD("CPL 3 write, R/W clear in the PDE only"));
        is_pf(probe(U, WR, BIGRO + 0x1000, 0x11), 7, BIGRO + 0x1000, WPD("CPL 3 write, 4 MiB read-only page"));
        struct probe a = probe(U, RD, WROPD + 0x0304, 0);
        ok(!a.faulted && a.val == 0x01000304, "%s", WPD("CPL 3 read, R/W clear in the PDE only: fine"));
        a = probe(U, RD, BIGRO + 0x1004, 0);
        ok(!a.faulted && a.val == 0x0b161004, "%s", WPD("CPL 3 read, 4 MiB read-only page: fine"));
        ok(*(uint32_t *)(frames[1] + 0x200) == 0x02000200 && *(uint32_t *)(frames[0] + 0x300) == 0x01000300 &&
           *(uint32_t *)PHYS(BIGPHYS + 0x1000) == 0x0b161000, "%s", WPD("the faulting CPL 3 writes changed nothing"));
#undef WPD
    }
    write_cr0(read_cr0() & ~CR0_WP);
}

static void supervisor_error_codes(void)
{
    is_pf(probe(K, RD, W + 0x4020, 0), 0, W + 0x4020, "CPL 0 read, not-present PTE");
    is_pf(probe(K, WR, W + 0x4024, 0), 2, W + 0x4024, "CPL 0 write, not-present PTE");
    is_pf(probe(K, RD, NOPDE + 0x20, 0), 0, NOPDE + 0x20, "CPL 0 read, not-present PDE");
    is_pf(probe(K, WR, NOPDE + 0x24, 0), 2, NOPDE + 0x24, "CPL 0 write, not-present PDE");
    struct probe a = probe(K, RD, W + 0x1040, 0);
    ok(!a.faulted && a.val == 0x02000040, "CPL 0 read of a user page (no SMAP)");
    a = probe(K, EX, CODE, 0);
    ok(!a.faulted && a.val == 1, "CPL 0 fetch from a user page (no SMEP)");

    static const struct { uint32_t addr; const char *what; } ro[] = {
        { W + 0x1400, "read-only user PTE" },
        { W + 0x3400, "read-only supervisor PTE" },
        { WROPD + 0x0400, "R/W clear in the PDE only" },
        { BIGRO + 0x2400, "4 MiB read-only user page" },
    };
    for (unsigned i = 0; i < 4; i++) {
        write_cr0(read_cr0() & ~CR0_WP);
        a = probe(K, WR, ro[i].addr, 0x5a5a0000 + i);
        ok(!a.faulted && *lin(ro[i].addr) == 0x5a5a0000 + i, "CPL 0 write, %s, WP=0: works", ro[i].what);
        write_cr0(read_cr0() | CR0_WP);
        a = probe(K, WR, ro[i].addr, 0xa5a50000 + i);
        char d[80];
        rt_format(d, sizeof d, "CPL 0 write, %s, WP=1", ro[i].what);
        is_pf(a, 3, ro[i].addr, d);
        is(*lin(ro[i].addr), 0x5a5a0000 + i, "CPL 0 write, %s, WP=1: changed nothing", ro[i].what);
    }
    write_cr0(read_cr0() & ~CR0_WP);
    a = probe(K, WR, W + 0x2400, 0x77);
    ok(!a.faulted && *(uint32_t *)(frames[2] + 0x400) == 0x77, "CPL 0 write to a supervisor page");
}

static void reserved_bit(void)
{
    is_rsvd_pf(probe(U, RD, RSV + 0x100, 0), 0xc, RSV + 0x100, "CPL 3 read, 4 MiB PDE with bit 21 set (RSVD)");
    is_rsvd_pf(probe(U, WR, RSV + 0x104, 0), 0xe, RSV + 0x104, "CPL 3 write, 4 MiB PDE with bit 21 set (RSVD)");
    is_rsvd_pf(probe(U, EX, RSV + 0x108, 0), 0xc, RSV + 0x108, "CPL 3 fetch, 4 MiB PDE with bit 21 set (RSVD)");
    is_rsvd_pf(probe(K, RD, RSV + 0x10c, 0), 0x8, RSV + 0x10c, "CPL 0 read, 4 MiB PDE with bit 21 set (RSVD)");
    is_rsvd_pf(probe(K, WR, RSV + 0x110, 0), 0xa, RSV + 0x110, "CPL 0 write, 4 MiB PDE with bit 21 set (RSVD)");
}

static void straddles(void)
{
    struct probe a = probe(U, RD, W + 0x0ffe, 0);
    ok(!a.faulted && a.val == ((0x02000000u << 16) | (0x01000ffcu >> 16)), "CPL 3 dword read across two user pages");
    is_pf(probe(U, RD, W + 0x1ffd, 0), 5, W + 0x2000, "CPL 3 dword read running into a supervisor page");
    is_pf(probe(U, RD, W + 0x6fff, 0), 4, W + 0x7000, "CPL 3 dword read running into a not-present page");
    uint32_t before = *(uint32_t *)(frames[0] + 0xffc);
    a = probe(U, WR, W + 0x0ffe, 0x12345678);
    is_pf(a, 7, W + 0x1000, "CPL 3 dword write running into a read-only page");
    is(*(uint32_t *)(frames[0] + 0xffc), before, "the straddling write wrote nothing to the first page");
    write_cr0(read_cr0() | CR0_WP);
    is_pf(probe(K, WR, W + 0x0fff, 0), 3, W + 0x1000, "CPL 0 dword write running into a read-only page (WP=1)");
    write_cr0(read_cr0() & ~CR0_WP);
    is(*(uint32_t *)(frames[0] + 0xffc), before, "and that wrote nothing either");
    is_pf(probe(U, EX, CODE + 0x6ffd, 0), 5, CODE + 0x7000, "CPL 3 instruction straddling into a supervisor page");
}

static void accessed_dirty(void)
{
    ptw[5] &= ~(PG_A | PG_D);
    pdA[W >> 22] &= ~PG_A;
    invlpg(W + 0x5000);
    struct probe a = probe(U, RD, W + 0x5000, 0);
    ok(!a.faulted && (ptw[5] & (PG_A | PG_D)) == PG_A, "CPL 3 read sets the PTE's A, not D");
    ok(pdA[W >> 22] & PG_A, "CPL 3 read sets the PDE's A");
    a = probe(U, RD, W + 0x5004, 0);
    ok((ptw[5] & (PG_A | PG_D)) == PG_A, "a second CPL 3 read: still not D");
    a = probe(U, WR, W + 0x5008, 0x99);
    ok(!a.faulted && (ptw[5] & (PG_A | PG_D)) == (PG_A | PG_D), "CPL 3 write after a read sets D");
    ptw[5] &= ~(PG_A | PG_D);
    invlpg(W + 0x5000);
    a = probe(U, WR, W + 0x500c, 0x98);
    ok(!a.faulted && (ptw[5] & (PG_A | PG_D)) == (PG_A | PG_D), "CPL 3 write to an untouched page sets A and D");

    pdA[BIG >> 22] &= ~(PG_A | PG_D);
    invlpg(BIG);
    a = probe(U, RD, BIG + 0x200000, 0);
    ok(!a.faulted && (pdA[BIG >> 22] & (PG_A | PG_D)) == PG_A, "CPL 3 read of a 4 MiB page sets A, not D");
    a = probe(U, WR, BIG + 0x200004, 0x97);
    ok(!a.faulted && (pdA[BIG >> 22] & (PG_A | PG_D)) == (PG_A | PG_D), "CPL 3 write to a 4 MiB page sets D");

    ptc[0] &= ~(PG_A | PG_D);
    invlpg(CODE);
    a = probe(U, EX, CODE, 0);
    ok(!a.faulted && a.val == 1 && (ptc[0] & (PG_A | PG_D)) == PG_A, "CPL 3 fetch sets the PTE's A, not D");

    ptw[1] &= ~(PG_A | PG_D);
    invlpg(W + 0x1000);
    a = probe(K, WR, W + 0x1500, 0x96);
    ok(!a.faulted && (ptw[1] & (PG_A | PG_D)) == (PG_A | PG_D), "CPL 0 write to a read-only user page (WP=0) sets A and D");
}

static void changes(void)
{
    struct probe a;
    /* read-only -> writable */
    is_pf(probe(U, WR, W + 0x6000, 0x61), 7, W + 0x6000, "CPL 3 write to a read-only page");
    ptw[6] |= PG_W;
    invlpg(W + 0x6000);
    a = probe(U, WR, W + 0x6000, 0x62);
    ok(!a.faulted && *(uint32_t *)frames[6] == 0x62, "made writable + invlpg: the CPL 3 write works");
    /* writable -> read-only */
    ptw[6] &= ~PG_W;
    invlpg(W + 0x6000);
    is_pf(probe(U, WR, W + 0x6004, 0x63), 7, W + 0x6004, "made read-only + invlpg: the CPL 3 write faults");
    a = probe(U, RD, W + 0x6000, 0);
    ok(!a.faulted && a.val == 0x62, "and reading it still works");
    /* user -> supervisor and back */
    ptw[6] &= ~PG_U;
    invlpg(W + 0x6000);
    is_pf(probe(U, RD, W + 0x6008, 0), 5, W + 0x6008, "made supervisor + invlpg: the CPL 3 read faults");
    a = probe(K, RD, W + 0x6000, 0);
    ok(!a.faulted && a.val == 0x62, "and CPL 0 reads it");
    ptw[6] |= PG_U;
    invlpg(W + 0x6000);
    a = probe(U, RD, W + 0x6000, 0);
    ok(!a.faulted && a.val == 0x62, "made user again + invlpg: the CPL 3 read works");
    /* present -> not present */
    ptw[6] &= ~PG_P;
    invlpg(W + 0x6000);
    is_pf(probe(U, RD, W + 0x600c, 0), 4, W + 0x600c, "made not present + invlpg: the CPL 3 read faults");
    ptw[6] |= PG_P;
    a = probe(U, RD, W + 0x6000, 0);
    ok(!a.faulted && a.val == 0x62, "present again (no invlpg needed): the CPL 3 read works");
    /* another frame */
    a = probe(U, RD, W + 0xb000, 0);
    ok(!a.faulted && a.val == 0x0c000000, "before remapping");
    ptw[11] = fr(12) | PG_U | PG_W | PG_P;
    invlpg(W + 0xb000);
    a = probe(U, RD, W + 0xb000, 0);
    ok(!a.faulted && a.val == 0x0d000000, "remapped + invlpg: CPL 3 reads the new frame");
    ptw[11] = fr(11) | PG_U | PG_W | PG_P;
    write_cr3(read_cr3());
    a = probe(U, RD, W + 0xb000, 0);
    ok(!a.faulted && a.val == 0x0c000000, "remapped + CR3 reload: CPL 3 reads the new frame");
    /* 4 MiB page remapped */
    pdA[BIG >> 22] = BIGPHYS2 | PG_PS | PG_U | PG_W | PG_P;
    invlpg(BIG + 0x10);
    a = probe(U, RD, BIG + 0x10, 0);
    ok(!a.faulted && a.val == 0x0b260010, "4 MiB page remapped + invlpg: CPL 3 reads the new frame");
    pdA[BIG >> 22] = BIGPHYS | PG_PS | PG_U | PG_W | PG_P;
    invlpg(BIG + 0x10);

    /* kernel and user see the same memory */
    *(volatile uint32_t *)(frames[0] + 0x40) = 0xfeed0001;   /* through the identity map */
    a = probe(U, RD, W + 0x40, 0);
    is(a.val, 0xfeed0001, "a kernel store through another mapping, read at CPL 3");
    *lin(W + 0x44) = 0xfeed0002;                              /* the same linear address */
    a = probe(U, RD, W + 0x44, 0);
    is(a.val, 0xfeed0002, "a kernel store through the user mapping, read at CPL 3");
    a = probe(U, WR, W + 0x48, 0xfeed0003);
    is(*(volatile uint32_t *)(frames[0] + 0x48), 0xfeed0003, "a CPL 3 store, read by the kernel through another mapping");
    is(*lin(W + 0x48), 0xfeed0003, "and through the user mapping");
}

/* ---- demand paging ----------------------------------------------------------------------- */
static volatile uint32_t pg_count, pg_cr2[4], pg_err[4], pg_eip[4], pg_cs[4];

static uint32_t *pte_of(uint32_t *pd, uint32_t addr)
{
    uint32_t pde = pd[addr >> 22];
    if (!(pde & PG_P) || (pde & PG_PS))
        return 0;
    return (uint32_t *)(pde & ~0xfffu) + ((addr >> 12) & 1023);
}

static int pager(struct trap_frame *f, uint32_t *eip, uint32_t cr2)
{
    uint32_t *pte = pte_of((uint32_t *)read_cr3(), cr2);
    if (!pte || (*pte & PG_P) || !(*pte & PG_PAGEABLE))
        return 0;
    if (pg_count < 4) {
        pg_cr2[pg_count] = cr2;
        pg_err[pg_count] = f->w[0];
        pg_eip[pg_count] = eip[0];
        pg_cs[pg_count] = eip[1];
    }
    pg_count++;
    *pte |= PG_P;        /* P 0 -> 1: no invalidation needed */
    return 1;
}

static void unpage(uint32_t addr)
{
    uint32_t *pte = pte_of(pdA, addr);
    *pte &= ~(PG_P | PG_A | PG_D);
    invlpg(addr);
}

static volatile uint32_t dp_sum;
static void user_touch_three(void)
{
    uint32_t s = *lin(W + 0x7ff0);
    *lin(W + 0x8010) = 0xd00d0008;
    s += *lin(W + 0x9020);
    *lin(W + 0x9024) = s;
    dp_sum = s;
}

static void demand_paging(void)
{
    user_pf_fixup = pager;
    pg_count = 0;
    struct probe a = probe(U, RD, W + 0x7abc, 0);
    ok(!a.faulted && a.val == 0x08000abc && pg_count == 1, "CPL 3 read of a not-present page: paged in, retried");
    ok(pg_cr2[0] == W + 0x7abc && pg_err[0] == 4 && pg_eip[0] == (uint32_t)pr_read_at && pg_cs[0] == UCS,
       "the pager saw CR2, error 4 and the EIP at CPL 3");
    unpage(W + 0x7000);

    pg_count = 0;
    a = probe(U, WR, W + 0x8ab0, 0xcafe0008);
    ok(!a.faulted && pg_count == 1 && *(uint32_t *)(frames[8] + 0xab0) == 0xcafe0008,
       "CPL 3 write to a not-present page: paged in, retried");
    ok(pg_err[0] == 6 && pg_eip[0] == (uint32_t)pr_write_at, "the pager saw error 6");
    ok((ptw[8] & (PG_A | PG_D)) == (PG_A | PG_D), "the retried write set A and D");
    unpage(W + 0x8000);

    pg_count = 0;
    uf.count = 0;
    user_resume = 0;
    user_enter(user_touch_three);
    is(pg_count, 3, "a user program touching three not-present pages: three faults");
    ok(dp_sum == 0x08000ff0 + 0x0a000020 && *(uint32_t *)(frames[9] + 0x24) == dp_sum &&
       *(uint32_t *)(frames[8] + 0x10) == 0xd00d0008, "and it ran to the end with the right data");
    unpage(W + 0x7000);
    unpage(W + 0x8000);
    unpage(W + 0x9000);

    /* code */
    pg_count = 0;
    a = probe(U, EX, CODE + 0x1000, 0);
    ok(!a.faulted && pg_count == 1 && a.val == 0xc1c1c1c1, "CPL 3 call into a not-present page: paged in, the code ran");
    ok(pg_cr2[0] == CODE + 0x1000 && pg_eip[0] == CODE + 0x1000 && pg_err[0] == 4, "the fetch fault: CR2 = EIP = the target, error 4");
    pg_count = 0;
    a = probe(U, EX, CODE + 0x2ffd, 0);
    ok(!a.faulted && pg_count == 1 && a.val == 0x12345678, "CPL 3 instruction straddling into a not-present page: paged in, ran");
    ok(pg_cr2[0] == CODE + 0x3000 && pg_eip[0] == CODE + 0x2ffd && pg_err[0] == 4,
       "the straddling fetch: CR2 = the second page, EIP = the instruction");
    pg_count = 0;
    a = probe(U, EX, CODE + 0x4ffc, 0);
    ok(!a.faulted && pg_count == 1 && a.val == 0x55555555, "CPL 3 code falling through into a not-present page: paged in, ran");
    ok(pg_cr2[0] == CODE + 0x5000 && pg_eip[0] == CODE + 0x5000 && pg_err[0] == 4,
       "the fall-through fault: CR2 = EIP = the page");
    /* and again, now present: no faults */
    pg_count = 0;
    a = probe(U, EX, CODE + 0x2ffd, 0);
    ok(!a.faulted && pg_count == 0 && a.val == 0x12345678, "the straddling instruction again: no fault");
    /* unmapped again: faults again */
    unpage(CODE + 0x3000);
    pg_count = 0;
    a = probe(U, EX, CODE + 0x2ffd, 0);
    ok(!a.faulted && pg_count == 1 && a.val == 0x12345678, "its second page unmapped + invlpg: paged in again");
    /* CR3 reloads: the same second page, then another frame there, then the first again */
    write_cr3(read_cr3());
    a = probe(U, EX, CODE + 0x2ffd, 0);
    ok(!a.faulted && a.val == 0x12345678, "the straddling instruction after a CR3 reload");
    ptc[3] = (uint32_t)other_tail | PG_U | PG_P;
    write_cr3(read_cr3());
    a = probe(U, EX, CODE + 0x2ffd, 0);
    ok(!a.faulted && a.val == 0xabcd5678, "its second page remapped + CR3 reload: the new tail runs");
    ptc[3] = (uint32_t)cframes[3] | PG_PAGEABLE | PG_U | PG_P;
    write_cr3(read_cr3());
    a = probe(U, EX, CODE + 0x2ffd, 0);
    ok(!a.faulted && a.val == 0x12345678, "remapped back + CR3 reload: the first tail runs");

    /* the kernel pages too (CPL 0 #PF, same handler) */
    pg_count = 0;
    a = probe(K, RD, W + 0x7ff8, 0);
    ok(!a.faulted && pg_count == 1 && a.val == 0x08000ff8 && pg_err[0] == 0 && pg_cs[0] == SEL_KCODE,
       "CPL 0 read of a not-present page: paged in, retried");
    unpage(W + 0x7000);
    user_pf_fixup = 0;
}

/* ---- two address spaces --------------------------------------------------------------------- */
static volatile uint32_t as_code[6], as_data[6], as_glob[6];
static void as_switch(struct trap_frame *f, uint32_t *eip)
{
    if (f->eax == 1)
        write_cr3(read_cr3() == (uint32_t)pdA ? (uint32_t)pdB : (uint32_t)pdA);
    f->eax = read_cr3();
}

static void user_two_spaces(void)
{
    for (int i = 0; i < 6; i++) {
        as_code[i] = ((uint32_t (*)(void))CODE)();
        as_data[i] = *lin(W);
        as_glob[i] = *lin(W + 0xa000);
        *lin(W + 0xa000) = i;
        uint32_t r;
        asm volatile("int $0x80" : "=a"(r) : "a"(1) : "memory");
    }
}

static void two_spaces(void)
{
    int pge = 0;
    uint32_t a_, b, c, d;
    cpuid(1, &a_, &b, &c, &d);
    if (d & (1u << 13)) {
        write_cr4(read_cr4() | CR4_PGE);
        pge = 1;
    }
    ok(pge, "CPUID: PGE");
    ptw[10] |= PG_G;
    ptwB[10] = ptw[10];
    invlpg(W + 0xa000);
    *(uint32_t *)frames[10] = 0xaaaa;

    user_syscall = as_switch;
    user_resume = 0;
    write_cr3((uint32_t)pdA);
    user_enter(user_two_spaces);
    ok(as_code[0] == 1 && as_code[1] == 2 && as_code[2] == 1 && as_code[3] == 2 && as_code[4] == 1 && as_code[5] == 2,
       "code at one user address, two spaces switched by a system call: the right code runs");
    ok(as_data[0] == 0x01000000 && as_data[1] == 0xb0000000 && as_data[2] == 0x01000000 && as_data[3] == 0xb0000000,
       "data at one user address, two spaces: the right frame after each switch");
    ok(as_glob[0] == 0xaaaa && as_glob[1] == 0 && as_glob[2] == 1 && as_glob[3] == 2 && as_glob[4] == 3 && as_glob[5] == 4,
       "a global user page in both spaces: one frame throughout");
    is(read_cr3(), (uint32_t)pdA, "back in space A");

    /* switched by the kernel between user programs */
    write_cr3((uint32_t)pdB);
    struct probe a = probe(U, EX, CODE, 0);
    ok(!a.faulted && a.val == 2, "CR3 = B, then a user program: B's code");
    a = probe(U, RD, W, 0);
    is(a.val, 0xb0000000, "CR3 = B: B's data");
    code_ret(cframes[0], 3);            /* A's code changed while B is active */
    write_cr3((uint32_t)pdA);
    a = probe(U, EX, CODE, 0);
    ok(!a.faulted && a.val == 3, "A's code rewritten while B was active: the new code runs in A");
    write_cr3((uint32_t)pdB);
    a = probe(U, EX, CODE, 0);
    ok(!a.faulted && a.val == 2, "and B's is unchanged");
    write_cr3((uint32_t)pdA);

    /* a non-global user page unmapped, then CR3 reloaded */
    a = probe(U, RD, W + 0xb004, 0);
    ptw[11] &= ~PG_P;
    write_cr3(read_cr3());
    is_pf(probe(U, RD, W + 0xb004, 0), 4, W + 0xb004, "a non-global user page unmapped + CR3 reload");
    ptw[11] |= PG_P;

    /* global pages: remapped + invlpg, remapped + CR4.PGE toggled */
    a = probe(U, RD, W + 0xa004, 0);
    is(a.val, 0x0b000004, "global user page");
    ptw[10] = fr(12) | PG_G | PG_U | PG_W | PG_P;
    ptwB[10] = ptw[10];
    invlpg(W + 0xa000);
    a = probe(U, RD, W + 0xa004, 0);
    is(a.val, 0x0d000004, "global user page remapped + invlpg: CPL 3 reads the new frame");
    ptw[10] = fr(10) | PG_G | PG_U | PG_W | PG_P;
    ptwB[10] = ptw[10];
    write_cr4(read_cr4() & ~CR4_PGE);
    write_cr4(read_cr4() | CR4_PGE);
    a = probe(U, RD, W + 0xa004, 0);
    is(a.val, 0x0b000004, "global user page remapped + CR4.PGE toggled: CPL 3 reads the new frame");
    write_cr3((uint32_t)pdB);
    a = probe(U, RD, W + 0xa004, 0);
    is(a.val, 0x0b000004, "and in space B too");
    write_cr3((uint32_t)pdA);
    /* a global 4 MiB user page */
    pdA[BIG >> 22] |= PG_G;
    pdB[BIG >> 22] = pdA[BIG >> 22];
    invlpg(BIG);
    a = probe(U, RD, BIG + 0x8, 0);
    is(a.val, 0x0b160008, "global 4 MiB user page");
    pdA[BIG >> 22] = BIGPHYS2 | PG_G | PG_PS | PG_U | PG_W | PG_P;
    pdB[BIG >> 22] = pdA[BIG >> 22];
    invlpg(BIG);
    a = probe(U, RD, BIG + 0x8, 0);
    is(a.val, 0x0b260008, "global 4 MiB user page remapped + invlpg: the new frame");
    pdA[BIG >> 22] = BIGPHYS | PG_PS | PG_U | PG_W | PG_P;
    pdB[BIG >> 22] = pdA[BIG >> 22];
    invlpg(BIG);
    user_syscall = 0;
}

/* ---- the frame of a #PF from CPL 3 --------------------------------------------------------- */
static volatile uint32_t fr_esp;
static void user_fault_frame(void)
{
    asm volatile("movl %%esp, fr_esp\n\tmovl $1f, user_resume\n\t"
                 "movl %0, %%eax\n1:" :: "m"(*lin(W + 0x4000)) : "eax", "memory");
}

static void fault_frame(void)
{
    uf.count = 0;
    user_enter(user_fault_frame);
    ok(uf.count == 1 && uf.vector == 14 && uf.err == 4 && uf.cs == UCS && uf.ss == UDS && uf.esp == fr_esp,
       "#PF from CPL 3: the frame holds the user's CS, SS and ESP");
    ok(uf.eip >= (uint32_t)user_fault_frame && uf.eip < (uint32_t)user_fault_frame + 64 && uf.cr2 == W + 0x4000,
       "#PF from CPL 3: EIP in the user program, CR2 the address");
}

void test_main(void)
{
    setup();
    ok(read_cr0() & CR0_PG, "paging on");
    basics();
    user_error_codes();
    supervisor_error_codes();
    reserved_bit();
    straddles();
    accessed_dirty();
    changes();
    demand_paging();
    two_spaces();
    fault_frame();
    write_cr0(read_cr0() & ~CR0_PG);
    ok(!(read_cr0() & CR0_PG), "paging off again");
}
