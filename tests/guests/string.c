/*
 * string - string instructions.
 *
 * movs/stos/lods/cmps/scas in byte, word and dword forms; without prefix, with rep,
 * repe and repne; with DF = 0 and DF = 1; with ECX = 0 (no iteration, flags untouched);
 * stopping at the first (mis)match; overlapping movsb in both directions (must behave byte
 * by byte, not like memmove); rep ret and pause (f3 prefix on non-string instructions);
 * long rep movs/stos across many pages; and the 16-bit address-size forms (0x67: SI, DI
 * and CX, wrapping at 64 KiB, upper halves untouched).
 *
 * Flags: cmps/scas set all six arithmetic flags like cmp; the others change none.
 */
#include "sweep.h"

/* ESI = buf, EDI = buf + 32 on entry; backwards forms start at the last element. */
#define BWD_B "lea 31(%esi), %esi\n\tlea 31(%edi), %edi\n\tstd\n\t"
#define BWD_W "lea 30(%esi), %esi\n\tlea 30(%edi), %edi\n\tstd\n\t"
#define BWD_D "lea 28(%esi), %esi\n\tlea 28(%edi), %edi\n\tstd\n\t"
/* Setup code keeps the input flags (pushf/popf): with ECX = 0 they must come out as they
 * went in. */
#define SMALL "pushf\n\tand $7, %ecx\n\tpopf\n\t"     /* at most 7 dwords: stays in the buffer */
#define SMALLW "pushf\n\tand $15, %ecx\n\tpopf\n\t"   /* at most 15 words */

STUB(movsb1, "movsb\n\tmovsb")
STUB(movsw1, "movsw")
STUB(movsd1, "movsl")
STUB(rep_movsb, "rep movsb")
STUB(rep_movsw, SMALLW "rep movsw")
STUB(rep_movsd, SMALL "rep movsl")
STUB(rep_movsb_bwd, BWD_B "rep movsb\n\tcld")
STUB(rep_movsw_bwd, BWD_W SMALLW "rep movsw\n\tcld")
STUB(rep_movsd_bwd, BWD_D SMALL "rep movsl\n\tcld")
STUB(movsb_overlap_fwd, "lea 1(%esi), %edi\n\trep movsb")
STUB(movsb_overlap_bwd, "lea 31(%esi), %esi\n\tlea 1(%esi), %edi\n\tstd\n\trep movsb\n\tcld")
STUB(movsd_overlap_fwd, SMALL "lea 4(%esi), %edi\n\trep movsl")
STUB(stosb1, "stosb")
STUB(stosl1, "stosl")
STUB(rep_stosb, "rep stosb")
STUB(rep_stosw, SMALLW "rep stosw")
STUB(rep_stosd, SMALL "rep stosl")
STUB(rep_stosb_bwd, BWD_B "rep stosb\n\tcld")
STUB(rep_stosd_bwd, BWD_D SMALL "rep stosl\n\tcld")
STUB(lodsb1, "lodsb")
STUB(lodsw1, "lodsw")
STUB(lodsd1, "lodsl")
STUB(rep_lodsb, "rep lodsb")
STUB(rep_lodsd_bwd, BWD_D SMALL "rep lodsl\n\tcld")
/* cmps: the first 16 bytes of both halves are made equal, then byte AL&15 of the
 * destination is replaced by BL (equal again if BL happens to match). */
#define CMP_SETUP                                                                         \
    "pushf\n\tmov 0(%esi), %edx\n\tmov %edx, 0(%edi)\n\tmov 4(%esi), %edx\n\tmov %edx, 4(%edi)\n\t" \
    "mov 8(%esi), %edx\n\tmov %edx, 8(%edi)\n\tmov 12(%esi), %edx\n\tmov %edx, 12(%edi)\n\t" \
    "mov %eax, %edx\n\tand $15, %edx\n\tmov %bl, (%edi,%edx)\n\tpopf\n\t"
STUB(cmpsb1, CMP_SETUP "cmpsb")
STUB(cmpsd1, CMP_SETUP "cmpsl")
STUB(repe_cmpsb, CMP_SETUP "repe cmpsb")
STUB(repe_cmpsw, CMP_SETUP SMALLW "repe cmpsw")
STUB(repe_cmpsd, CMP_SETUP SMALL "repe cmpsl")
STUB(repne_cmpsb, CMP_SETUP "repne cmpsb")
STUB(repne_cmpsd, CMP_SETUP SMALL "repne cmpsl")
STUB(repe_cmpsb_bwd, CMP_SETUP SMALLW "lea 15(%esi), %esi\n\tlea 15(%edi), %edi\n\tstd\n\trepe cmpsb\n\tcld")
STUB(repne_cmpsb_bwd, CMP_SETUP SMALLW "lea 15(%esi), %esi\n\tlea 15(%edi), %edi\n\tstd\n\trepne cmpsb\n\tcld")
/* scas: EAX is looked for in the destination half; for repe, 8 bytes of it are set to AL. */
STUB(scasb1, "scasb")
STUB(scasd1, "scasl")
STUB(repne_scasb, "repne scasb")
STUB(repne_scasw, SMALLW "repne scasw")
STUB(repne_scasd, SMALL "repne scasl")
STUB(repe_scasb, "mov %al, %dl\n\tmov %al, %dh\n\tmov %dx, (%edi)\n\tmov %dx, 2(%edi)\n\t"
                 "mov %dx, 4(%edi)\n\tmov %dx, 6(%edi)\n\trepe scasb")
STUB(repe_scasd, "mov %eax, (%edi)\n\tmov %eax, 4(%edi)\n\t" SMALL "repe scasl")
STUB(repne_scasb_bwd, BWD_B "repne scasb\n\tcld")
STUB(rep_ret, "mov $1, %eax\n\t.byte 0xf3, 0xc3")
STUB(pause, "pause")

#define CMPF FL_ARITH
static struct sweep sweeps[] = {
    { "movsb", movsb1, FL_ARITH, 0, 0 }, { "movsw", movsw1, FL_ARITH, 0, 0 },
    { "movsd", movsd1, FL_ARITH, 0, 0 },
    { "rep movsb", rep_movsb, FL_ARITH, 0, 0 }, { "rep movsw", rep_movsw, FL_ARITH, 0, 0 },
    { "rep movsd", rep_movsd, FL_ARITH, 0, 0 },
    { "rep movsb DF=1", rep_movsb_bwd, FL_ARITH, 0, 0 },
    { "rep movsw DF=1", rep_movsw_bwd, FL_ARITH, 0, 0 },
    { "rep movsd DF=1", rep_movsd_bwd, FL_ARITH, 0, 0 },
    { "rep movsb overlapping forward", movsb_overlap_fwd, FL_ARITH, 0, 0 },
    { "rep movsb overlapping DF=1", movsb_overlap_bwd, FL_ARITH, 0, 0 },
    { "rep movsd overlapping forward", movsd_overlap_fwd, FL_ARITH, 0, 0 },
    { "stosb", stosb1, FL_ARITH, 0, 0 }, { "stosd", stosl1, FL_ARITH, 0, 0 },
    { "rep stosb", rep_stosb, FL_ARITH, 0, 0 }, { "rep stosw", rep_stosw, FL_ARITH, 0, 0 },
    { "rep stosd", rep_stosd, FL_ARITH, 0, 0 },
    { "rep stosb DF=1", rep_stosb_bwd, FL_ARITH, 0, 0 },
    { "rep stosd DF=1", rep_stosd_bwd, FL_ARITH, 0, 0 },
    { "lodsb", lodsb1, FL_ARITH, 0, 0 }, { "lodsw", lodsw1, FL_ARITH, 0, 0 },
    { "lodsd", lodsd1, FL_ARITH, 0, 0 }, { "rep lodsb", rep_lodsb, FL_ARITH, 0, 0 },
    { "rep lodsd DF=1", rep_lodsd_bwd, FL_ARITH, 0, 0 },
    { "cmpsb", cmpsb1, CMPF, 0, 0 }, { "cmpsd", cmpsd1, CMPF, 0, 0 },
    { "repe cmpsb", repe_cmpsb, CMPF, 0, 0 }, { "repe cmpsw", repe_cmpsw, CMPF, 0, 0 },
    { "repe cmpsd", repe_cmpsd, CMPF, 0, 0 }, { "repne cmpsb", repne_cmpsb, CMPF, 0, 0 },
    { "repne cmpsd", repne_cmpsd, CMPF, 0, 0 },
    { "repe cmpsb DF=1", repe_cmpsb_bwd, CMPF, 0, 0 },
    { "repne cmpsb DF=1", repne_cmpsb_bwd, CMPF, 0, 0 },
    { "scasb", scasb1, CMPF, 0, 0 }, { "scasd", scasd1, CMPF, 0, 0 },
    { "repne scasb", repne_scasb, CMPF, 0, 0 }, { "repne scasw", repne_scasw, CMPF, 0, 0 },
    { "repne scasd", repne_scasd, CMPF, 0, 0 }, { "repe scasb", repe_scasb, CMPF, 0, 0 },
    { "repe scasd", repe_scasd, CMPF, 0, 0 },
    { "repne scasb DF=1", repne_scasb_bwd, CMPF, 0, 0 },
    { "rep ret (f3 c3)", rep_ret, FL_ARITH, 0, 0 }, { "pause (f3 90)", pause, FL_ARITH, 0, 0 },
};

static uint32_t a_vals[8];
static const uint32_t b_vals[] = { 0x00000000, 0x12345678 };
static const uint32_t counts[] = { 0, 1, 2, 3, 5, 7, 16, 31 };
static const uint32_t flags_in[] = { 0, FL_ARITH };

/* ---- long string operations ---------------------------------------------------------- */
static uint8_t big_src[5 * 4096 + 64] __attribute__((aligned(4096)));
static uint8_t big_dst[5 * 4096 + 64] __attribute__((aligned(4096)));

static void long_strings(void)
{
    for (unsigned i = 0; i < sizeof big_src; i++)
        big_src[i] = (uint8_t)(i * 7 + (i >> 8));
    uint32_t s = (uint32_t)big_src + 3, d = (uint32_t)big_dst + 1, c = 5 * 4096 / 4;
    asm volatile("cld; rep movsl" : "+S"(s), "+D"(d), "+c"(c) :: "memory");
    ok(c == 0 && s == (uint32_t)big_src + 3 + 5 * 4096 && d == (uint32_t)big_dst + 1 + 5 * 4096,
       "rep movsd of 20 KiB, unaligned: registers");
    ok(!memcmp(big_dst + 1, big_src + 3, 5 * 4096), "rep movsd of 20 KiB, unaligned: data");
    /* backwards stosb over 3 pages and a bit */
    memset(big_dst, 0x11, sizeof big_dst);
    d = (uint32_t)big_dst + 3 * 4096 + 100;
    c = 3 * 4096 + 1;
    asm volatile("std; rep stosb; cld" : "+D"(d), "+c"(c) : "a"(0xa5) : "memory");
    ok(d == (uint32_t)big_dst + 99 && c == 0, "rep stosb DF=1 over 3 pages: registers");
    int good = big_dst[99] == 0x11 && big_dst[3 * 4096 + 101] == 0x11;
    for (unsigned i = 100; i <= 3 * 4096 + 100; i++)
        good &= big_dst[i] == 0xa5;
    ok(good, "rep stosb DF=1 over 3 pages: data");
    /* repne scasb over a long run that finds its byte on the 4th page */
    memset(big_dst, 0, sizeof big_dst);
    big_dst[3 * 4096 + 5] = 0x42;
    d = (uint32_t)big_dst;
    c = sizeof big_dst;
    asm volatile("cld; repne scasb" : "+D"(d), "+c"(c) : "a"(0x42) : "memory", "cc");
    is(d - (uint32_t)big_dst, 3 * 4096 + 6, "repne scasb over pages stops after the match");
    is(c, sizeof big_dst - (3 * 4096 + 6), "repne scasb: ecx counts down");
}

#ifndef HOST
/* ---- 16-bit address size: SI, DI, CX ------------------------------------------------------ */
static void addr16(void)
{
    volatile uint8_t *low = PHYS(0);
    low[0xfffe] = 0xa1; low[0xffff] = 0xa2; low[0x0000] = 0xa3; low[0x0001] = 0xa4;
    for (unsigned i = 0; i < 8; i++)
        low[0x3000 + i] = 0;
    uint32_t s = 0xabcdfffe, d = 0x12343000, c = 0x77770004;
    asm volatile(".byte 0x67, 0xf3, 0xa4" : "+S"(s), "+D"(d), "+c"(c) :: "memory");  /* rep movsb, a16 */
    is(s, 0xabcd0002, "a16 rep movsb: SI wraps at 64 KiB, upper ESI kept");
    is(d, 0x12343004, "a16 rep movsb: DI advanced, upper EDI kept");
    is(c, 0x77770000, "a16 rep movsb: CX counted, upper ECX kept");
    is(*(volatile uint32_t *)0x3000, 0xa4a3a2a1, "a16 rep movsb copied across the wrap");
    d = 0x5555ffff;
    c = 0x00000002;
    asm volatile("std; .byte 0x67; stosb; .byte 0x67; stosb; cld" : "+D"(d) : "a"(0x5b) : "memory");
    is(d, 0x5555fffd, "a16 stosb DF=1 decrements DI only");
    is(low[0xfffe], 0x5b, "a16 stosb wrote at DI");
    (void)c;
}
#endif

void test_main(void)
{
    /* EAX: indices / search values: some bytes of the destination half, one that is not. */
    for (unsigned i = 0; i < 7; i++) {
        static const unsigned pos[7] = { 32, 33, 35, 40, 47, 52, 63 };
        uint32_t b = (uint8_t)(pos[i] * 0x3b + 0x91);
        uint32_t b2 = (uint8_t)((pos[i] + 1) * 0x3b + 0x91);
        a_vals[i] = b | (b2 << 8) | (0x5a << 16) | (i << 24);   /* AL = the byte at pos */
    }
    a_vals[7] = 0x00000000;
    struct sweep_space sp = { a_vals, N(a_vals), b_vals, N(b_vals), counts, N(counts), flags_in, N(flags_in) };
    sweep_all(sweeps, N(sweeps), &sp);
    long_strings();
#ifndef HOST
    addr16();
#endif
}

/* BEGIN HASHES (recorded on hardware by host/record-hashes.py) */
const struct sweep_hash sweep_hashes[] = {
    { "movsb", 0x4ba3f80d },
    { "movsw", 0x4ba3f80d },
    { "movsd", 0x48e19d0d },
    { "rep movsb", 0x768c3985 },
    { "rep movsw", 0xfeb521c5 },
    { "rep movsd", 0x0e07db85 },
    { "rep movsb DF=1", 0xbef6b785 },
    { "rep movsw DF=1", 0xb66c6845 },
    { "rep movsd DF=1", 0xa548b1c5 },
    { "rep movsb overlapping forward", 0xbfb071f5 },
    { "rep movsb overlapping DF=1", 0x097805e5 },
    { "rep movsd overlapping forward", 0x4e2b4c65 },
    { "stosb", 0x57d51ae5 },
    { "stosd", 0x60dcc79d },
    { "rep stosb", 0x59bb0525 },
    { "rep stosw", 0x6ca4e54d },
    { "rep stosd", 0x47d17c9d },
    { "rep stosb DF=1", 0x3d94bfdd },
    { "rep stosd DF=1", 0x875aa52d },
    { "lodsb", 0x7cc4ac5d },
    { "lodsw", 0x778a1695 },
    { "lodsd", 0x91e1f9f5 },
    { "rep lodsb", 0x68c02915 },
    { "rep lodsd DF=1", 0xf4909c75 },
    { "cmpsb", 0x46f09cfd },
    { "cmpsd", 0x57eab85d },
    { "repe cmpsb", 0x22fca45d },
    { "repe cmpsw", 0x88ae2515 },
    { "repe cmpsd", 0x99262ff5 },
    { "repne cmpsb", 0xaa7e7d15 },
    { "repne cmpsd", 0x18309e95 },
    { "repe cmpsb DF=1", 0x233451ed },
    { "repne cmpsb DF=1", 0xdc9f71dd },
    { "scasb", 0xc3c4d87d },
    { "scasd", 0x62c3e2ad },
    { "repne scasb", 0x25e28555 },
    { "repne scasw", 0x5c13bded },
    { "repne scasd", 0x571db445 },
    { "repe scasb", 0x86d1761d },
    { "repe scasd", 0xcd4fea95 },
    { "repne scasb DF=1", 0xbc828acd },
    { "rep ret (f3 c3)", 0x6e154215 },
    { "pause (f3 90)", 0xd660d4cd },
};
const unsigned sweep_nhashes = N(sweep_hashes);
/* END HASHES */
