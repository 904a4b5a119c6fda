/*
 * pt_writes - page-table entries written by every kind of store an OS (or the CPU itself)
 * makes, and the accessed and dirty bits: where a shadow MMU that traces guest page tables
 * must decode the write, and a flushing one must still see it after the invalidation.
 *
 * The kernel: pt.h's layout (0-4 MiB the kernel image, user-accessible; 4-128 MiB
 * supervisor 4 MiB pages) and
 *   WIN   0x40000000  ptW: pages 0-15 -> fr[0..15] (user, writable), page 32 (URW) -> ptW
 *                     itself (user, writable)
 *   WIN2  0x40400000  ptW2 (a copy of ptW made by rep movsd)
 *   STK   0x40800000  ptS: a page table used as a stack by interrupt delivery
 *   STA   0x40c00000  sts[0], STB 0x41000000 sts[1]: two page tables in adjacent frames
 * fr[] are 64 KiB aligned, so fr[i] and fr[i + 16] differ only in bits 16 and up.
 *
 * Checks (each entry looked at after invlpg or a CR3 load, or after a P 0 -> 1 change):
 *   stos     rep stosd clears all of ptW (CPL 0) or 16 entries (CPL 3, through URW): every
 *            page then faults; rep stosd fills 16 entries with one frame: all alias it
 *   atomics  cmpxchg8b (two entries at once; and one that fails and changes nothing), lock
 *            cmpxchg (CPL 0 and CPL 3), xchg (returns the entry with the A bit the walk
 *            set), lock or / lock and on R/W (with CR0.WP = 1), lock btr on A and D (as
 *            Linux's ptep_test_and_clear_young / clear_dirty) then the bits set again
 *   movs     rep movsd copies ptW to ptW2, which then maps the same pages under its own
 *            PDE and under WIN's; movsd of one entry
 *   io       rep insb from a port (the 16550's scratch register: the monitor emulates
 *            string I/O and stores through its own view of guest memory) clearing two
 *            entries and writing one byte by byte; a byte pattern that makes a global,
 *            read-only supervisor entry; the dirty bit of a page written by rep insb;
 *            movsd from a device register (the HPET's, which the monitor emulates too)
 *   frames   interrupt delivery pushing its frame into a page table: int from CPL 0 with
 *            ESP in ptS, int from CPL 3 with the TSS's ESP0 in ptS; the pushed EFLAGS,
 *            CS and SS then map pages as entries (phys 0: checked against the identity
 *            map), A and D set in them by the accesses
 *   straddle a misaligned dword store across two page tables (the last entry of one and
 *            the first of the next), and sidt storing 6 bytes across them (emulated by
 *            the monitor)
 *   ad       A and D cleared + invlpg: a read sets A only, a write D; D cleared alone
 *            (A kept): a read leaves it clear; a write first sets both; repeated; at CPL
 *            3 with the entries read back through URW; a neighbour left alone keeps A
 *            clear; the PDE's A bit
 *   retry    a #PF handler makes the page present and changes the faulting instruction's
 *            address register, so the retried write goes to another page: the page made
 *            present is never accessed, its A and D stay clear (CPL 0 and 3)
 *
 * Not checked: whether a stale entry is used before invalidation; A bits of pages never
 * accessed but near code (processors may set them speculatively).
 */
#include "pt.h"

#define WIN  0x40000000u
#define WIN2 0x40400000u
#define STK  0x40800000u
#define STA  0x40c00000u
#define STB  0x41000000u
#define URW_I 32u
#define URW (WIN + URW_I * 4096u)
#define PAGE(i) (WIN + (i) * 4096u)
#define SCR 0x3ff                      /* COM1's scratch register */
#define HPET_CMP2 (0xfed00000u + 0x148)  /* HPET timer 2's comparator (reads back) */

/* The page directory pd, page tables ptW, ptW2, ptS and sts[0], sts[1] (adjacent). */
static uint32_t tables[6][1024] __attribute__((aligned(4096)));
#define pd tables[0]
#define ptW tables[1]
#define ptW2 tables[2]
#define ptS tables[3]
#define sts (&tables[4])
static uint8_t fr[32][4096] __attribute__((aligned(65536)));

static uint32_t F(unsigned i) { return (uint32_t)fr[i]; }
static uint32_t tag(unsigned i) { return 0x01000000u * (i + 1) + 0x10000u; }
#define UPTE(i) (F(i) | PG_U | PG_W | PG_P)

static void map_win(void)
{
    memset(ptW, 0, sizeof ptW);
    for (unsigned i = 0; i < 16; i++)
        ptW[i] = UPTE(i);
    ptW[URW_I] = (uint32_t)ptW | PG_U | PG_W | PG_P;
    reload_cr3();
}

static void setup(void)
{
    for (unsigned i = 0; i < 32; i++)
        fill(fr[i], tag(i));
    pd[WIN >> 22] = (uint32_t)ptW | PG_U | PG_W | PG_P;
    pd[STK >> 22] = (uint32_t)ptS | PG_U | PG_W | PG_P;
    pd[STA >> 22] = (uint32_t)sts[0] | PG_U | PG_W | PG_P;
    pd[STB >> 22] = (uint32_t)sts[1] | PG_U | PG_W | PG_P;
    map_win();
    pt_setup(pd);
}

/* How many of pages [first, first + n) of WIN fault on a read at CPL 3 (user) or 0, with
 * the right error code and CR2. */
static unsigned faulting(int user, unsigned first, unsigned n)
{
    unsigned c = 0;
    for (unsigned i = first; i < first + n; i++) {
        struct probe p = probe(user, RD, PAGE(i) + 4 * i, 0);
        c += p.faulted == 1 && p.vector == 14 && p.err == (user ? 4u : 0u) && p.cr2 == PAGE(i) + 4 * i;
    }
    return c;
}

/* How many of pages [first, first + n) of WIN read fr[frame]'s word at 4 * i. */
static unsigned mapping(int user, unsigned first, unsigned n, unsigned frame)
{
    unsigned c = 0;
    for (unsigned i = first; i < first + n; i++) {
        struct probe p = probe(user, RD, PAGE(i) + 4 * i, 0);
        c += p.faulted == 0 && p.val == tag(frame) + 4 * i;
    }
    return c;
}

/* ---- stos ---------------------------------------------------------------------------- */
extern char u_stos[];
asm(".pushsection .text\n"
    "u_stos:\n\tcld\n\tmovl $" PT_S(URW) ", %edi\n\txorl %eax, %eax\n\tmovl $16, %ecx\n\trep stosl\n\tret\n"
    ".popsection\n");

static void stos(void)
{
    unsigned used = 0;
    for (unsigned i = 0; i < 16; i++)
        used += probe(i & 1, RD, PAGE(i) + 4 * i, 0).val == tag(i) + 4 * i;
    is(used, 16, "pages 0-15 map their frames (CPL 0 and 3)");
    uint32_t d = (uint32_t)ptW, c = 1024;
    asm volatile("cld; rep stosl" : "+D"(d), "+c"(c) : "a"(0) : "memory");
    reload_cr3();
    is(faulting(K, 0, 16), 16, "rep stosd cleared the table + CR3 load: every page faults (CPL 0)");
    is(faulting(U, 0, 16), 16, "and at CPL 3");
    d = (uint32_t)ptW, c = 16;
    asm volatile("cld; rep stosl" : "+D"(d), "+c"(c) : "a"(UPTE(5)) : "memory");
    for (unsigned i = 0; i < 16; i++)
        invlpg(PAGE(i));
    is(mapping(K, 0, 16, 5), 16, "rep stosd of one entry into 16 (P 0 -> 1): all map that frame");
    *lin(PAGE(3) + 0x100) = 0xa11a5;
    is(*lin(PAGE(12) + 0x100), 0xa11a5, "a write through one is read through another");
    *lin(PAGE(3) + 0x100) = tag(5) + 0x100;

    map_win();
    is(mapping(U, 0, 1, 0), 1, "remapped: page 0 (CPL 3)");
    user_enter((void (*)(void))u_stos);
    unsigned clear = 0;
    for (unsigned i = 0; i < 16; i++)
        clear += ptW[i] == 0;
    is(clear, 16, "CPL 3 rep stosd through its mapping of the table cleared 16 entries");
    invlpg(PAGE(0));
    reload_cr3();
    is(faulting(U, 0, 16), 16, "+ CR3 load: every page faults at CPL 3");
    is(faulting(K, 0, 16), 16, "and at CPL 0");
    map_win();
}

/* ---- atomics ------------------------------------------------------------------------- */
extern char u_cmpxchg[];
volatile uint32_t u_old, u_new, u_zf;
asm(".pushsection .text\n"
    "u_cmpxchg:\n\tmovl u_old, %eax\n\tmovl u_new, %ecx\n"
    "\tlock cmpxchgl %ecx, " PT_S(URW) "+4*7\n\tsetz %al\n\tmovzbl %al, %eax\n\tmovl %eax, u_zf\n\tret\n"
    ".popsection\n");

static void atomics(void)
{
    /* cmpxchg8b: entries 4 and 5 at once, with the A bits the reads set. */
    is(mapping(K, 4, 1, 4) + mapping(K, 5, 1, 5), 2, "pages 4 and 5");
    uint32_t lo = ptW[4], hi = ptW[5];
    ok(lo == (UPTE(4) | PG_A) && hi == (UPTE(5) | PG_A), "their entries: accessed");
    uint32_t a = lo, dd = hi, zf;
    asm volatile("lock cmpxchg8b %2; setz %b3" : "+a"(a), "+d"(dd), "+m"(*(uint64_t *)&ptW[4]), "=q"(zf)
                 : "b"(UPTE(20)), "c"(UPTE(21)) : "memory", "cc");
    is(zf & 1, 1, "cmpxchg8b of two entries: ZF");
    invlpg(PAGE(4));
    invlpg(PAGE(5));
    is(mapping(K, 4, 1, 20) + mapping(U, 5, 1, 21), 2, "cmpxchg8b + invlpg: both pages map the new frames");
    a = lo, dd = hi;
    asm volatile("lock cmpxchg8b %2; setz %b3" : "+a"(a), "+d"(dd), "+m"(*(uint64_t *)&ptW[4]), "=q"(zf)
                 : "b"(UPTE(0)), "c"(UPTE(0)) : "memory", "cc");
    ok(!(zf & 1) && a == (UPTE(20) | PG_A) && dd == (UPTE(21) | PG_A), "a cmpxchg8b that fails: ZF clear, the entries in EDX:EAX");
    invlpg(PAGE(4));
    invlpg(PAGE(5));
    is(mapping(K, 4, 1, 20) + mapping(K, 5, 1, 21), 2, "and nothing changed");

    /* lock cmpxchg at CPL 0 and CPL 3 */
    a = ptW[6];
    asm volatile("lock cmpxchgl %2, %1; setz %b0" : "+a"(a), "+m"(ptW[6]) : "r"(UPTE(22)) : "memory", "cc");
    is(a & 1, 1, "lock cmpxchg of an entry: ZF");
    invlpg(PAGE(6));
    is(mapping(K, 6, 1, 22), 1, "lock cmpxchg + invlpg: the new frame");
    is(mapping(U, 7, 1, 7), 1, "page 7 at CPL 3");
    u_old = UPTE(7) | PG_A;
    u_new = UPTE(23);
    user_enter((void (*)(void))u_cmpxchg);
    is(u_zf, 1, "CPL 3 lock cmpxchg of an entry through its mapping of the table: ZF");
    invlpg(PAGE(7));
    is(mapping(U, 7, 1, 23), 1, "+ invlpg: the new frame at CPL 3");

    /* xchg: returns the entry with the A bit set */
    is(mapping(K, 8, 1, 8), 1, "page 8");
    uint32_t x = UPTE(24);
    asm volatile("xchgl %0, %1" : "+r"(x), "+m"(ptW[8]) :: "memory");
    is(x, UPTE(8) | PG_A, "xchg returns the entry, accessed");
    invlpg(PAGE(8));
    is(mapping(K, 8, 1, 24), 1, "xchg + invlpg: the new frame");

    /* lock or / lock and on R/W, CR0.WP = 1 */
    write_cr0(read_cr0() | CR0_WP);
    ptW[9] = F(9) | PG_U | PG_P;
    invlpg(PAGE(9));
    is_pf(probe(K, WR, PAGE(9) + 0x40, 1), 3, PAGE(9) + 0x40, "read-only entry, WP = 1: CPL 0 write");
    asm volatile("lock orl %1, %0" : "+m"(ptW[9]) : "i"(PG_W) : "memory", "cc");
    invlpg(PAGE(9));
    no_fault(probe(K, WR, PAGE(9) + 0x40, 0x909), "lock or sets R/W + invlpg: the write");
    is(*(uint32_t *)(fr[9] + 0x40), 0x909, "lands in the frame");
    no_fault(probe(U, WR, PAGE(9) + 0x44, 0x9009), "and a CPL 3 write");
    is(ptW[9], F(9) | PG_U | PG_W | PG_P | PG_AD, "the entry: accessed and dirty");
    asm volatile("lock andl %1, %0" : "+m"(ptW[9]) : "i"(~PG_W) : "memory", "cc");
    invlpg(PAGE(9));
    is_pf(probe(U, WR, PAGE(9) + 0x48, 1), 7, PAGE(9) + 0x48, "lock and clears R/W + invlpg: CPL 3 write");
    is_pf(probe(K, WR, PAGE(9) + 0x48, 1), 3, PAGE(9) + 0x48, "CPL 0 write");
    reads(probe(U, RD, PAGE(9) + 0x44, 0), 0x9009, "the page still reads");
    write_cr0(read_cr0() & ~CR0_WP);

    /* lock btr on A and D, as Linux clears them, then the CPU sets them again */
    ptW[10] = UPTE(10);
    invlpg(PAGE(10));
    no_fault(probe(K, WR, PAGE(10) + 0x50, 0x1010), "page 10 written");
    uint32_t cf;
    asm volatile("lock btrl $5, %0; setc %b1" : "+m"(ptW[10]), "=q"(cf) :: "memory", "cc");
    is(cf & 1, 1, "lock btr of A: it was set");
    asm volatile("lock btrl $6, %0; setc %b1" : "+m"(ptW[10]), "=q"(cf) :: "memory", "cc");
    is(cf & 1, 1, "lock btr of D: it was set");
    invlpg(PAGE(10));
    is(ptW[10] & PG_AD, 0, "A and D clear after invlpg");
    reads(probe(K, RD, PAGE(10) + 0x50, 0), 0x1010, "read");
    is(ptW[10] & PG_AD, PG_A, "the read set A, not D");
    no_fault(probe(U, WR, PAGE(10) + 0x54, 0x2020), "CPL 3 write");
    is(ptW[10] & PG_AD, PG_AD, "the write set D");
    asm volatile("lock andl %1, %0" : "+m"(ptW[10]) : "i"(~PG_D) : "memory", "cc");
    invlpg(PAGE(10));
    no_fault(probe(K, WR, PAGE(10) + 0x58, 0x3030), "lock and clears D + invlpg: write");
    is(ptW[10] & PG_AD, PG_AD, "D set again");
    is(*(uint32_t *)(fr[10] + 0x58), 0x3030, "and the write landed");
}

/* ---- movs ---------------------------------------------------------------------------- */
static void movs(void)
{
    map_win();
    uint32_t s = (uint32_t)ptW, d = (uint32_t)ptW2, c = 1024;
    asm volatile("cld; rep movsl" : "+S"(s), "+D"(d), "+c"(c) :: "memory");
    pd[WIN2 >> 22] = (uint32_t)ptW2 | PG_U | PG_W | PG_P;
    unsigned same = 0;
    for (unsigned i = 0; i < 16; i++) {
        struct probe p = probe(i & 1, RD, WIN2 + i * 4096 + 4 * i, 0);
        same += !p.faulted && p.val == tag(i) + 4 * i;
    }
    is(same, 16, "a table copied by rep movsd maps the same pages under its own PDE");
    uint32_t e = UPTE(26);
    s = (uint32_t)&e, d = (uint32_t)&ptW2[3];
    asm volatile("cld; movsl" : "+S"(s), "+D"(d) :: "memory");
    pd[WIN >> 22] = (uint32_t)ptW2 | PG_U | PG_W | PG_P;
    reload_cr3();
    is(mapping(U, 3, 1, 26) + mapping(K, 2, 1, 2) + mapping(U, 4, 1, 4), 3,
       "WIN's PDE switched to the copy + CR3 load: movsd's entry and the copied ones");
    pd[WIN >> 22] = (uint32_t)ptW | PG_U | PG_W | PG_P;
    pd[WIN2 >> 22] = 0;
    reload_cr3();
    is(mapping(U, 3, 1, 3), 1, "and back");
}

/* ---- io ------------------------------------------------------------------------------ */
static void insb(uint32_t to, uint32_t n)
{
    asm volatile("cld; rep insb" : "+D"(to), "+c"(n) : "d"(SCR) : "memory");
}

static void io(void)
{
    map_win();
    is(mapping(K, 11, 1, 11) + mapping(K, 12, 1, 12), 2, "pages 11 and 12");
    outb(SCR, 0);
    insb((uint32_t)&ptW[11], 8);
    invlpg(PAGE(11));
    invlpg(PAGE(12));
    is(faulting(K, 11, 2) + faulting(U, 11, 2), 4, "rep insb of zeros into two entries + invlpg: both fault");
    uint32_t v = UPTE(27);
    for (unsigned j = 0; j < 4; j++) {
        outb(SCR, v >> (8 * j));
        insb((uint32_t)&ptW[11] + j, 1);
    }
    is(ptW[11], UPTE(27), "an entry written by insb, byte by byte");
    is(mapping(U, 11, 1, 27), 1, "used (P 0 -> 1)");
    /* 0x01010101: present, read-only, supervisor, global; frame 0x01010000 */
    *lin(0x01010000 + 0x30) = 0x0101c0de;
    outb(SCR, 1);
    insb((uint32_t)&ptW[12], 4);
    is(ptW[12], 0x01010101, "rep insb of 0x01 bytes");
    reads(probe(K, RD, PAGE(12) + 0x30, 0), 0x0101c0de, "that entry maps frame 0x01010000 (P 0 -> 1)");
    is_pf(probe(U, RD, PAGE(12) + 0x30, 0), 5, PAGE(12) + 0x30, "supervisor: CPL 3 read");
    write_cr0(read_cr0() | CR0_WP);
    is_pf(probe(K, WR, PAGE(12) + 0x30, 0), 3, PAGE(12) + 0x30, "read-only: CPL 0 write with WP = 1");
    write_cr0(read_cr0() & ~CR0_WP);
    /* movsd from device memory: the HPET's timer 2 comparator, which reads back what was
     * written (the HPET stays disabled), into an entry */
    pd[HPET_CMP2 >> 22] = (HPET_CMP2 & 0xffc00000u) | PG_PS | 0x10 | PG_W | PG_P;  /* PCD */
    *lin(HPET_CMP2) = UPTE(28);
    uint32_t s = HPET_CMP2, d = (uint32_t)&ptW[11];
    asm volatile("cld; movsl" : "+S"(s), "+D"(d) :: "memory");
    is(ptW[11], UPTE(28), "movsd from a device register into an entry");
    invlpg(PAGE(11));
    is(mapping(U, 11, 1, 28), 1, "+ invlpg: used");
    pd[HPET_CMP2 >> 22] = 0;
    invlpg(HPET_CMP2);
    /* D of a page written by rep insb */
    ptW[13] = UPTE(13);
    invlpg(PAGE(13));
    outb(SCR, 0x5a);
    insb(PAGE(13) + 0x100, 16);
    is(ptW[13] & PG_AD, PG_AD, "rep insb into a page sets its A and D");
    is(*(uint32_t *)(fr[13] + 0x10c), 0x5a5a5a5a, "and lands");
    map_win();
}

/* ---- frames -------------------------------------------------------------------------- */
uint32_t k_saved_esp, k_saved_esp0;
extern char k_int_ret[], u_int_ret[], int_iret[], int_iret_user[], u_int[];
volatile uint32_t u_int_esp;
asm(".pushsection .text\n"
    "int_iret:\n\tiret\n"
    "int_iret_user:\n"                 /* restore the TSS's ESP0 first */
    "\tpushl %eax\n\tmovl k_saved_esp0, %eax\n\tmovl %eax, rt_tss+4\n\tpopl %eax\n\tiret\n"
    "u_int:\n"
    "\tpushl $0x203\n\tpopfl\n"
    "\tmovl $0x12345678, %eax\n"
    "\tmovl %esp, u_int_esp\n"
    "\tint $0x82\n"
    "u_int_ret:\n"
    "\tret\n"
    ".popsection\n");

static void frames(void)
{
    rt_idt_set(0x81, (uint32_t)int_iret, SEL_KCODE, GATE_INT);
    rt_idt_set(0x82, (uint32_t)int_iret_user, SEL_KCODE, GATE_INT | 0x60);
    memset(ptS, 0, sizeof ptS);
    reload_cr3();
    /* CPL 0: EFLAGS 0x47 (CF PF ZF), CS 0x08, EIP pushed into ptS[10], [9], [8] */
    uint32_t top = (uint32_t)&ptS[11];
    asm volatile("pushl $0x47\n\tpopfl\n\t"
                 "movl %%esp, k_saved_esp\n\tmovl %0, %%esp\n\t"
                 "int $0x81\n"
                 "k_int_ret:\n\t"
                 "movl k_saved_esp, %%esp\n\t"
                 "pushl $2\n\tpopfl" :: "r"(top) : "memory", "cc");
    ok(ptS[10] == 0x47 && ptS[9] == SEL_KCODE && ptS[8] == (uint32_t)k_int_ret,
       "int at CPL 0 pushed EFLAGS, CS, EIP into a page table");
    /* The EFLAGS entry: phys 0, present, writable, user, dirty (P 0 -> 1) */
    uint32_t at = STK + 10 * 4096 + 0xf00;
    reads(probe(K, RD, at, 0), *(volatile uint32_t *)PHYS(0xf00), "the pushed EFLAGS as an entry maps phys 0");
    no_fault(probe(U, WR, at, 0xf00d0f00), "CPL 3 writes through it");
    is(*(volatile uint32_t *)PHYS(0xf00), 0xf00d0f00, "into phys 0");
    is(ptS[10], 0x47 | PG_A, "A set in the pushed EFLAGS");
    is_pf(probe(K, RD, STK + 9 * 4096, 0), 0, STK + 9 * 4096, "the pushed CS as an entry: not present");

    /* CPL 3: int $0x82 with ESP0 = &ptS[25]: SS, ESP, EFLAGS, CS, EIP into ptS[24..20] */
    k_saved_esp0 = rt_tss[1];
    rt_tss[1] = (uint32_t)&ptS[25];
    user_enter((void (*)(void))u_int);
    ok(rt_tss[1] == k_saved_esp0, "the handler restored ESP0");
    is(ptS[24], UDS, "int at CPL 3 pushed SS into a page table");
    is(ptS[23], u_int_esp, "ESP");
    is(ptS[22], 0x203, "EFLAGS");
    is(ptS[21], UCS, "CS");
    is(ptS[20], (uint32_t)u_int_ret, "EIP");
    is(ptS[19], 0x12345678, "and the handler's push of EAX");
    /* SS 0x43: phys 0, present, writable, supervisor, dirty; EFLAGS 0x203 likewise, clean */
    reads(probe(K, RD, STK + 24 * 4096 + 0xf04, 0), *(volatile uint32_t *)PHYS(0xf04), "the pushed SS as an entry maps phys 0");
    is_pf(probe(U, RD, STK + 24 * 4096 + 0xf04, 0), 5, STK + 24 * 4096 + 0xf04, "supervisor: CPL 3 read");
    no_fault(probe(K, WR, STK + 22 * 4096 + 0xf08, 0x0203f08), "the pushed EFLAGS as an entry: CPL 0 write");
    is(*(volatile uint32_t *)PHYS(0xf08), 0x0203f08, "into phys 0");
    is(ptS[22], 0x203 | PG_AD, "A and D set in it");
    is(ptS[24], UDS | PG_A, "A set in the SS entry");
    memset(ptS, 0, sizeof ptS);
    reload_cr3();
}

/* ---- straddle ------------------------------------------------------------------------ */
static void straddle(void)
{
    sts[0][1023] = UPTE(16);
    sts[1][0] = UPTE(1);
    reads(probe(K, RD, STA + 1023 * 4096 + 0x60, 0), tag(16) + 0x60, "last entry of one table");
    reads(probe(U, RD, STB + 0x64, 0), tag(1) + 0x64, "first entry of the next");
    /* fr[0] and fr[16] differ in bits 16+, fr[1] and fr[2] in bits 12-15 */
    uint32_t v = (F(0) >> 16) | (((F(2) & 0xf000) | (sts[1][0] & 0xfff)) << 16);
    asm volatile("movl %1, %0" : "=m"(*(uint32_t *)((uint8_t *)&sts[0][1023] + 2)) : "r"(v) : "memory");
    ok(sts[0][1023] == (UPTE(0) | PG_A) && sts[1][0] == (UPTE(2) | PG_A), "a dword stored across two page tables");
    invlpg(STA + 1023 * 4096);
    invlpg(STB);
    reads(probe(U, RD, STA + 1023 * 4096 + 0x68, 0), tag(0) + 0x68, "+ invlpg: the first table's entry");
    reads(probe(K, RD, STB + 0x6c, 0), tag(2) + 0x6c, "the second table's entry");

    /* sidt: 6 bytes across them, limit into the first, base into the second */
    struct __attribute__((packed)) { uint16_t limit; uint32_t base; } saved, fake = { F(16) >> 16, UPTE(3) };
    asm volatile("sidt %0" : "=m"(saved));
    asm volatile("lidt %1\n\tsidt %0\n\tlidt %2"
                 : "=m"(*(uint8_t (*)[6])((uint8_t *)&sts[0][1023] + 2)) : "m"(fake), "m"(saved) : "memory");
    ok(sts[0][1023] == (UPTE(16) | PG_A) && sts[1][0] == UPTE(3), "sidt stored across two page tables");
    invlpg(STA + 1023 * 4096);
    invlpg(STB);
    reads(probe(K, RD, STA + 1023 * 4096 + 0x70, 0), tag(16) + 0x70, "+ invlpg: the first table's entry");
    reads(probe(U, RD, STB + 0x74, 0), tag(3) + 0x74, "the second table's entry");
}

/* ---- ad ------------------------------------------------------------------------------ */
extern char u_ad[];
volatile uint32_t u_ad_out[6];
/* CPL 3: read page 14, entry via URW; write page 14, entry; read page 15 twice */
asm(".pushsection .text\n"
    "u_ad:\n"
    "\tmovl " PT_S(WIN) "+14*4096, %eax\n"
    "\tmovl " PT_S(URW) "+4*14, %eax\n\tmovl %eax, u_ad_out\n"
    "\tmovl " PT_S(URW) "+4*15, %eax\n\tmovl %eax, u_ad_out+4\n"
    "\tmovl $1, " PT_S(WIN) "+14*4096+4\n"
    "\tmovl " PT_S(URW) "+4*14, %eax\n\tmovl %eax, u_ad_out+8\n"
    "\tmovl " PT_S(WIN) "+15*4096, %eax\n"
    "\tmovl " PT_S(URW) "+4*15, %eax\n\tmovl %eax, u_ad_out+12\n"
    "\tmovl " PT_S(URW) "+4*13, %eax\n\tmovl %eax, u_ad_out+16\n"
    "\tret\n"
    ".popsection\n");

static void ad(void)
{
    map_win();
    pd[WIN >> 22] &= ~PG_A;
    reload_cr3();
    reads(probe(K, RD, PAGE(0), 0), tag(0), "page 0");
    ok(pd[WIN >> 22] & PG_A, "the PDE's A set by the walk");
    for (unsigned step = 0; step < 6; step++) {
        int user = step & 1;                         /* odd steps: D cleared alone, CPL 3 */
        uint32_t off = 0x80 + 8 * user;
        const char *how = user ? "D cleared alone + invlpg, CPL 3" : "A and D cleared + invlpg, CPL 0";
        ptW[12] &= user ? ~PG_D : ~PG_AD;
        invlpg(PAGE(12));
        reads(probe(user, RD, PAGE(12) + off, 0), tag(12) + off, "%s (round %u): read", how, step / 2);
        is(ptW[12] & PG_AD, PG_A, "%s (round %u): A set, D clear", how, step / 2);
        no_fault(probe(user, WR, PAGE(12) + off, tag(12) + off), "%s (round %u): write", how, step / 2);
        is(ptW[12] & PG_AD, PG_AD, "%s (round %u): D set", how, step / 2);
    }
    ptW[12] &= ~PG_AD;
    invlpg(PAGE(12));
    no_fault(probe(K, WR, PAGE(12) + 0x8c, tag(12) + 0x8c), "A and D cleared + invlpg: a write first");
    is(ptW[12] & PG_AD, PG_AD, "sets both");
    ptW[12] = (ptW[12] & ~PG_A) | PG_D;
    invlpg(PAGE(12));
    reads(probe(K, RD, PAGE(12) + 0x8c, 0), tag(12) + 0x8c, "A cleared, D kept + invlpg: read");
    is(ptW[12] & PG_AD, PG_AD, "A set, D still set");

    /* CPL 3, reading the entries back through its mapping of the table */
    for (unsigned i = 13; i < 16; i++)
        ptW[i] = UPTE(i) | PG_A;
    invlpg(PAGE(13));
    reads(probe(U, RD, PAGE(13), 0), tag(13), "page 13 (accessed)");
    reads(probe(U, RD, PAGE(15), 0), tag(15), "page 15 (accessed)");
    ptW[14] &= ~PG_AD;
    ptW[15] &= ~PG_AD;
    invlpg(PAGE(14));
    invlpg(PAGE(15));
    user_enter((void (*)(void))u_ad);
    is(u_ad_out[0], UPTE(14) | PG_A, "CPL 3 read its page, then its entry: A");
    is(u_ad_out[1], UPTE(15), "a neighbour it did not touch: A clear");
    is(u_ad_out[2], UPTE(14) | PG_AD, "wrote the page: D");
    is(u_ad_out[3], UPTE(15) | PG_A, "read the neighbour: A");
    is(u_ad_out[4], UPTE(13) | PG_A, "page 13: A, no D");
    map_win();
}

/* ---- retry --------------------------------------------------------------------------- */
/* A #PF handler that makes the page present and sends the access elsewhere (EBX, the
 * address register of pt.h's probes, to page 15): the retried instruction never touches
 * the page it made present, whose A and D bits must stay clear. */
static volatile uint32_t redirects;
static int redirect(struct trap_frame *f, uint32_t *eip, uint32_t cr2)
{
    if ((cr2 & ~0xfffu) != PAGE(14))
        return 0;
    ptW[14] |= PG_P;
    f->ebx = PAGE(15) + (cr2 & 0xfff);
    redirects++;
    return 1;
}

static void retry(void)
{
    map_win();
    user_pf_fixup = redirect;
    for (int user = 0; user < 2; user++) {
        ptW[14] = UPTE(14) & ~PG_P;
        invlpg(PAGE(14));
        redirects = 0;
        no_fault(probe(user, WR, PAGE(14) + 0x90 + 4 * user, 0x1490 + user), "%s write to a page the #PF handler makes present, "
                 "sending the retried write elsewhere", user ? "CPL 3" : "CPL 0");
        ok(redirects == 1 && *(uint32_t *)(fr[15] + 0x90 + 4 * user) == 0x1490u + user &&
           *(uint32_t *)(fr[14] + 0x90 + 4 * user) == tag(14) + 0x90 + 4 * user, "%s: the write went elsewhere",
           user ? "CPL 3" : "CPL 0");
        is(ptW[14] & PG_AD, 0, "%s: the page made present: A and D clear", user ? "CPL 3" : "CPL 0");
        reads(probe(user, RD, PAGE(14) + 0x90, 0), tag(14) + 0x90, "%s: then read", user ? "CPL 3" : "CPL 0");
        is(ptW[14] & PG_AD, PG_A, "%s: A set, D clear", user ? "CPL 3" : "CPL 0");
    }
    user_pf_fixup = 0;
    map_win();
}

void test_main(void)
{
    setup();
    stos();
    atomics();
    movs();
    io();
    frames();
    straddle();
    ad();
    retry();
    pt_paging_off();
}
