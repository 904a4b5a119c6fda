/*
 * mmio - device memory: the HPET of QEMU's pc machine at physical 0xFED00000.
 *
 * What QEMU's HPET (hw/timer/hpet.c, 1 KiB of registers, 3 timers) shows after reset:
 * capabilities 0x8086a201 (vendor 0x8086, LEG_RT_CAP, COUNT_SIZE_CAP, 3 timers, revision 1)
 * and 0x00989680 (period 10,000,000 fs = 10 ns); configuration 0; interrupt status 0; each
 * timer's configuration 0x00000030 (periodic- and 64-bit-capable) with 0x00000004 above
 * (may route to IRQ 2) and its comparator 0xffffffff_ffffffff.  Checked with paging off:
 * those values; the configuration register written (ENABLE_CNF, LEG_RT_CNF) and read back;
 * a timer's configuration (level-triggered, route 2) and comparator (both halves) written
 * and read back; the main counter written while the HPET is disabled, read back, constant
 * while disabled (two reads), increasing while enabled (two reads 1 ms of PIT channel 2
 * apart, only "ok" is printed) and constant again once disabled; 8-byte accesses (MMX
 * movq, SSE movq, fild/fistp) of 64-bit registers; rep movsd of the first 16 bytes into RAM
 * (only bytes 0-7 are compared: 8-15 are a reserved register), of timer 0's registers, from
 * RAM into a comparator and backwards (DF = 1); lods, stos, rep stos, scas and cmps; mov
 * with every addressing form (moffs, disp32, base, base+disp8/disp32, base+index*scale+disp,
 * index*scale+disp32, EBP and ESP bases, FS with the device as its base, GS wrapping
 * around 4 GiB, 16-bit addressing) for loads and stores; movzx/movsx from a device
 * register; and, or, xor, add, inc, bts, xchg, cmpxchg, lock or/and (read-modify-write),
 * ALU and cmp/test with a device operand, push/pop of device memory and an indirect call
 * through a device register.  With paging on, the same accesses (a subset) through a 4 KiB
 * mapping of the device page, through a 4 MiB page holding it, and through an identity
 * 4 MiB page; the accessed and dirty bits; a read-only mapping of the device with CR0.WP 1
 * (#PF, nothing written) and 0; a not-present one (#PF); the linear page remapped between
 * the device and RAM with invlpg; and at CPL 3 through a user mapping: reads, writes, rep
 * movsd, movq, or/and, a read-only user mapping (#PF 7) and a supervisor one (#PF 5), and a
 * read-only one made writable + invlpg.
 *
 * Left out (QEMU differs from real HPETs, or neither defines it): 1- and 2-byte accesses
 * read 0 and are ignored when written under QEMU (its HPET accepts only 4-byte accesses;
 * an Intel chipset HPET returns the addressed bytes), so movzx/movsx read only bytes that
 * are zero in the register (a comparator set to 0), where both agree; unaligned dwords
 * (QEMU combines the two aligned dwords around them); reserved offsets (QEMU reads 0) and
 * registers of timers that do not exist (QEMU 7.2 reads a fourth timer at 0x160 as zeros,
 * an off-by-one); writes to reserved or read-only bits, to the interrupt route of a timer
 * with a route its capabilities do not allow, to Tn_VAL_SET_CNF (QEMU reads it back as set
 * until the next comparator write); timer interrupts; the counter's rate.
 */
#include "rt.h"
#include "pit.h"
#include "pt.h"

#define HPET 0xfed00000u
#define CAP_LO 0x8086a201u
#define CAP_HI 0x00989680u
#define H_CAP 0x000
#define H_CFG 0x010
#define H_ISR 0x020
#define H_CNT 0x0f0
#define T_CFG(n) (0x100 + 0x20 * (n))
#define T_CMP(n) (0x108 + 0x20 * (n))

static inline uint32_t rd(uint32_t a) { return *(volatile uint32_t *)PHYS(a); }
static inline void wr(uint32_t a, uint32_t v) { *(volatile uint32_t *)PHYS(a) = v; }


static uint64_t counter(uint32_t h)
{
    uint32_t hi, lo;
    do {
        hi = rd(h + H_CNT + 4);
        lo = rd(h + H_CNT);
    } while (rd(h + H_CNT + 4) != hi);
    return ((uint64_t)hi << 32) | lo;
}

/* ---- registers, paging off --------------------------------------------------------------- */
static void registers(void)
{
    uint32_t lo = rd(HPET + H_CAP), hi = rd(HPET + H_CAP + 4);
    is(lo, CAP_LO, "capabilities, low dword");
    is(hi, CAP_HI, "capabilities, high dword (period)");
    is(lo >> 16, 0x8086, "vendor id 0x8086");
    is(lo & 0xff, 1, "revision 1");
    is(((lo >> 8) & 0x1f) + 1, 3, "3 timers");
    is(lo & 0xa000, 0xa000, "LEG_RT_CAP and COUNT_SIZE_CAP");
    ok(hi && hi <= 100000000, "period: non-zero, at most 100 ns");
    is(rd(HPET + H_CFG), 0, "configuration after reset");
    is(rd(HPET + H_ISR), 0, "interrupt status after reset");
    for (unsigned n = 0; n < 3; n++) {
        ok(rd(HPET + T_CFG(n)) == 0x30 && rd(HPET + T_CFG(n) + 4) == 4, "timer %u: configuration and route capabilities", n);
        ok(rd(HPET + T_CMP(n)) == 0xffffffff && rd(HPET + T_CMP(n) + 4) == 0xffffffff, "timer %u: comparator after reset", n);
    }

    wr(HPET + H_CFG, 2);
    is(rd(HPET + H_CFG), 2, "configuration: LEG_RT_CNF written and read back");
    wr(HPET + H_CFG, 0);
    is(rd(HPET + H_CFG), 0, "configuration: cleared again");
    wr(HPET + T_CFG(1), 0x402);
    ok(rd(HPET + T_CFG(1)) == 0x432 && rd(HPET + T_CFG(1) + 4) == 4, "timer 1 configuration: level-triggered, route 2");
    wr(HPET + T_CFG(1), 0);
    is(rd(HPET + T_CFG(1)), 0x30, "timer 1 configuration: cleared again, capabilities kept");
    wr(HPET + T_CMP(1), 0x11223344);
    wr(HPET + T_CMP(1) + 4, 0x55667788);
    ok(rd(HPET + T_CMP(1)) == 0x11223344 && rd(HPET + T_CMP(1) + 4) == 0x55667788, "timer 1 comparator: both halves written");
    wr(HPET + T_CMP(2), 0x99aabbcc);
    ok(rd(HPET + T_CMP(2)) == 0x99aabbcc && rd(HPET + T_CMP(2) + 4) == 0xffffffff, "timer 2 comparator: the low half written");
    ok(rd(HPET + T_CMP(1)) == 0x11223344 && rd(HPET + T_CMP(0)) == 0xffffffff, "the other comparators unchanged");
}

static void main_counter(void)
{
    wr(HPET + H_CNT, 0x89abcdef);
    wr(HPET + H_CNT + 4, 0x01234567);
    ok(rd(HPET + H_CNT) == 0x89abcdef && rd(HPET + H_CNT + 4) == 0x01234567, "main counter written while disabled");
    uint64_t a = counter(HPET);
    pit2_wait(1193);
    uint64_t b = counter(HPET);
    is64(b, a, "disabled: the counter stands still (two reads 1 ms apart)");

    wr(HPET + H_CNT, 0x1000);
    wr(HPET + H_CNT + 4, 0);
    wr(HPET + H_CFG, 1);
    is(rd(HPET + H_CFG), 1, "configuration: ENABLE_CNF");
    a = counter(HPET);
    int waited = pit2_wait(1193);
    b = counter(HPET);
    ok(waited && a >= 0x1000 && b > a, "enabled: the counter increases (two reads 1 ms apart)");
    wr(HPET + H_CFG, 0);
    uint64_t c = counter(HPET);
    pit2_wait(1193);
    uint64_t d = counter(HPET);
    ok(c >= b && c == d, "disabled again: it stops where it was");
}

/* ---- 8-byte accesses ----------------------------------------------------------------------- */
static void wide(void)
{
    uint32_t lo, hi;
    asm volatile("movq (%2), %%mm0\n\tmovd %%mm0, %0\n\tpsrlq $32, %%mm0\n\tmovd %%mm0, %1\n\temms"
                 : "=r"(lo), "=r"(hi) : "r"(HPET + H_CAP) : "memory");
    ok(lo == CAP_LO && hi == CAP_HI, "8-byte read (MMX movq) of the capabilities");
    uint64_t q = 0x0123456789abcdefull;
    asm volatile("movq (%0), %%mm1\n\tmovq %%mm1, (%1)\n\temms" :: "r"(&q), "r"(HPET + T_CMP(2)) : "memory");
    ok(rd(HPET + T_CMP(2)) == 0x89abcdef && rd(HPET + T_CMP(2) + 4) == 0x01234567, "8-byte write (MMX movq) of a comparator");

    rt_enable_fpu_sse();
    asm volatile("movq (%2), %%xmm0\n\tmovd %%xmm0, %0\n\tpsrlq $32, %%xmm0\n\tmovd %%xmm0, %1"
                 : "=r"(lo), "=r"(hi) : "r"(HPET + T_CMP(2)) : "memory");
    ok(lo == 0x89abcdef && hi == 0x01234567, "8-byte read (SSE movq) of a comparator");
    q = 0x0fedcba987654321ull;
    asm volatile("movq (%0), %%xmm1\n\tmovq %%xmm1, (%1)" :: "r"(&q), "r"(HPET + T_CMP(1)) : "memory");
    ok(rd(HPET + T_CMP(1)) == 0x87654321 && rd(HPET + T_CMP(1) + 4) == 0x0fedcba9, "8-byte write (SSE movq) of a comparator");
    uint64_t f = 0;
    asm volatile("fildq (%1)\n\tfistpq %0" : "=m"(f) : "r"(HPET + H_CAP) : "memory");
    is64(f, ((uint64_t)CAP_HI << 32) | CAP_LO, "8-byte read (fild) of the capabilities");
}

/* ---- string instructions ------------------------------------------------------------------- */
static void strings(void)
{
    uint32_t buf[4] = { 0xdddddddd, 0xdddddddd, 0xdddddddd, 0xdddddddd };
    uint32_t s = HPET, d = (uint32_t)buf, c = 4;
    asm volatile("cld\n\trep movsl" : "+S"(s), "+D"(d), "+c"(c) :: "memory");
    ok(buf[0] == CAP_LO && buf[1] == CAP_HI, "rep movsd: the first 16 bytes of the HPET into RAM (0-7 compared)");
    ok(s == HPET + 16 && d == (uint32_t)buf + 16 && c == 0, "rep movsd from the device: ESI, EDI, ECX after");

    uint32_t t0[4] = { 0 };
    s = HPET + T_CFG(0), d = (uint32_t)t0, c = 4;
    asm volatile("cld\n\trep movsl" : "+S"(s), "+D"(d), "+c"(c) :: "memory");
    ok(t0[0] == 0x30 && t0[1] == 4 && t0[2] == 0xffffffff && t0[3] == 0xffffffff, "rep movsd: timer 0's registers into RAM");

    uint32_t src[2] = { 0x01010101, 0x02020202 };
    s = (uint32_t)src, d = HPET + T_CMP(1), c = 2;
    asm volatile("cld\n\trep movsl" : "+S"(s), "+D"(d), "+c"(c) :: "memory");
    ok(rd(HPET + T_CMP(1)) == 0x01010101 && rd(HPET + T_CMP(1) + 4) == 0x02020202 && d == HPET + T_CMP(1) + 8,
       "rep movsd from RAM into a comparator");

    buf[0] = buf[1] = 0;
    s = HPET + 4, d = (uint32_t)&buf[1], c = 2;
    asm volatile("std\n\trep movsl\n\tcld" : "+S"(s), "+D"(d), "+c"(c) :: "memory");
    ok(buf[0] == CAP_LO && buf[1] == CAP_HI && s == HPET - 4, "rep movsd backwards (DF = 1) from the device");

    uint32_t a;
    s = HPET + 4;
    asm volatile("cld\n\tlodsl" : "=a"(a), "+S"(s) :: "memory");
    ok(a == CAP_HI && s == HPET + 8, "lodsd from the device");
    d = HPET + T_CMP(2);
    asm volatile("cld\n\tstosl" : "+D"(d) : "a"(0x5a5a5a5a) : "memory");
    ok(rd(HPET + T_CMP(2)) == 0x5a5a5a5a && d == HPET + T_CMP(2) + 4, "stosd into the device");
    d = HPET + T_CMP(2), c = 2;
    asm volatile("cld\n\trep stosl" : "+D"(d), "+c"(c) : "a"(0x6b6b6b6b) : "memory");
    ok(rd(HPET + T_CMP(2)) == 0x6b6b6b6b && rd(HPET + T_CMP(2) + 4) == 0x6b6b6b6b, "rep stosd into the device");
    uint32_t fl;
    d = HPET;
    asm volatile("cld\n\tscasl\n\tpushfl\n\tpopl %1" : "+D"(d), "=r"(fl) : "a"(CAP_LO) : "memory", "cc");
    ok((fl & FL_ZF) && d == HPET + 4, "scasd against the device: equal");
    uint32_t cmpbuf[2] = { CAP_LO, CAP_HI + 1 };
    s = (uint32_t)cmpbuf, d = HPET, c = 2;
    asm volatile("cld\n\trepe cmpsl\n\tpushfl\n\tpopl %3" : "+S"(s), "+D"(d), "+c"(c), "=r"(fl) :: "memory", "cc");
    ok(c == 0 && !(fl & FL_ZF) && !(fl & FL_CF) && d == HPET + 8, "repe cmpsd RAM against the device: stops at the difference");
}

/* ---- addressing forms ------------------------------------------------------------------------ */
static uint32_t pushed __attribute__((used));
static uint32_t target_hits;
static void __attribute__((used)) call_target(void) { target_hits++; }

static void set_fs_base(uint32_t base)
{
    rt_gdt[SEL_SPARE0 >> 3] = rt_desc(base, 0xfff, 0x93, 0x4);
    asm volatile("movw %w0, %%fs" :: "r"(SEL_SPARE0) : "memory");
}

/* Loads and stores of every addressing form through the device page at linear B. */
#define DEFINE_FORMS(fname, B)                                                                 \
static void fname(const char *w)                                                               \
{                                                                                              \
    uint32_t v, x, b = (B);                                                                    \
    asm volatile("movl %c1, %0" : "=a"(v) : "i"((B) + 4) : "memory");                          \
    is(v, CAP_HI, "%s: mov eax, [moffs32]", w);                                                \
    asm volatile("movl %c1, %0" : "=c"(v) : "i"(B) : "memory");                                \
    is(v, CAP_LO, "%s: mov ecx, [disp32]", w);                                                 \
    asm volatile("movl (%1), %0" : "=r"(v) : "r"(b) : "memory");                               \
    is(v, CAP_LO, "%s: mov r32, [base]", w);                                                   \
    asm volatile("movl 4(%1), %0" : "=r"(v) : "r"(b) : "memory");                              \
    is(v, CAP_HI, "%s: mov r32, [base+disp8]", w);                                             \
    asm volatile("movl 0x104(%1), %0" : "=r"(v) : "r"(b) : "memory");                          \
    is(v, 4, "%s: mov r32, [base+disp32]", w);                                                 \
    asm volatile("movl (%1,%2,4), %0" : "=r"(v) : "r"(b), "r"(1) : "memory");                  \
    is(v, CAP_HI, "%s: mov r32, [base+index*4]", w);                                           \
    asm volatile("movl 0x100(%1,%2,8), %0" : "=r"(v) : "r"(b), "r"(1) : "memory");             \
    is(v, 0xffffffff, "%s: mov r32, [base+index*8+disp32]", w);                                \
    asm volatile("movl %c1(,%2,4), %0" : "=r"(v) : "i"(B), "r"(1) : "memory");                 \
    is(v, CAP_HI, "%s: mov r32, [index*4+disp32]", w);                                         \
    asm volatile("pushl %%ebp\n\tmovl %1, %%ebp\n\tmovl -4(%%ebp), %0\n\tpopl %%ebp"           \
                 : "=a"(v) : "c"(b + 8) : "memory");                                           \
    is(v, CAP_HI, "%s: mov r32, [ebp+disp8]", w);                                              \
    asm volatile("movl %%esp, %%edx\n\tmovl %1, %%esp\n\tmovl 4(%%esp), %0\n\tmovl %%edx, %%esp" \
                 : "=a"(v) : "c"(b) : "edx", "memory");                                        \
    is(v, CAP_HI, "%s: mov r32, [esp+disp8] (ESP pointing at the device)", w);                \
    set_fs_base(b);                                                                            \
    asm volatile("movl %%fs:4, %0" : "=r"(v) :: "memory");                                     \
    is(v, CAP_HI, "%s: mov r32, fs:[disp32] (FS base = the device)", w);                       \
    asm volatile("movl %%fs:(%1), %0" : "=r"(v) : "r"(0x104) : "memory");                      \
    is(v, 4, "%s: mov r32, fs:[base]", w);                                                     \
    asm volatile("movl %%fs:(%%bx,%%si), %0" : "=a"(v) : "b"(0x100), "S"(8) : "memory");       \
    is(v, 0xffffffff, "%s: mov r32, fs:[bx+si] (16-bit addressing)", w);                       \
    asm volatile("movw %w2, %%gs\n\tmovl %%gs:(%1), %0" : "=r"(v) : "r"(b + 0x1000), "r"(SEL_WRAP) : "memory"); \
    is(v, CAP_LO, "%s: mov r32, gs:[base] wrapping around 4 GiB", w);                          \
    asm volatile("movl %0, %%eax\n\tmovl %%eax, %c1" :: "i"(0x0a0a0001), "i"((B) + T_CMP(1)) : "eax", "memory"); \
    is(rd(b + T_CMP(1)), 0x0a0a0001, "%s: mov [moffs32], eax", w);                             \
    asm volatile("movl $0x0a0a0002, 0x12c(%0)" :: "r"(b) : "memory");                         \
    is(rd(b + T_CMP(1) + 4), 0x0a0a0002, "%s: mov [base+disp32], imm32", w);                   \
    asm volatile("movl %0, (%1,%2,8)" :: "r"(0x0a0a0003), "r"(b + 0x108), "r"(4) : "memory");  \
    is(rd(b + T_CMP(1)), 0x0a0a0003, "%s: mov [base+index*8], r32", w);                        \
    asm volatile("movl %0, %%fs:0x148" :: "r"(0x0a0a0004) : "memory");                         \
    is(rd(b + T_CMP(2)), 0x0a0a0004, "%s: mov fs:[disp32], r32", w);                           \
    asm volatile("movl %%fs:(%%bx,%%si), %0\n\tmovl %1, %%fs:(%%bx,%%si)"                      \
                 : "=&r"(x) : "r"(0x0a0a0005), "b"(0x12c), "S"(0x20) : "memory");              \
    is(rd(b + T_CMP(2) + 4), 0x0a0a0005, "%s: mov fs:[bx+si], r32 (16-bit addressing)", w);    \
    asm volatile("movw %w0, %%fs\n\tmovw %w0, %%gs" :: "r"(SEL_KDATA));                       \
    uint32_t lo, hi;                                                                           \
    asm volatile("movq (%2), %%mm0\n\tmovd %%mm0, %0\n\tpsrlq $32, %%mm0\n\tmovd %%mm0, %1\n\temms" \
                 : "=r"(lo), "=r"(hi) : "r"(b) : "memory");                                    \
    ok(lo == CAP_LO && hi == CAP_HI, "%s: movq mm0, [base] (8 bytes)", w);                     \
    uint32_t t0[4] = { 0 }, s = b + T_CFG(0), d = (uint32_t)t0, c = 4;                         \
    asm volatile("cld\n\trep movsl" : "+S"(s), "+D"(d), "+c"(c) :: "memory");                  \
    ok(t0[0] == 0x30 && t0[1] == 4 && t0[2] == 0xffffffff && t0[3] == 0xffffffff && c == 0,    \
       "%s: rep movsd of timer 0's registers", w);                                             \
    asm volatile("orl $2, 0x10(%0)" :: "r"(b) : "memory", "cc");                              \
    is(rd(b + H_CFG), 2, "%s: or [base+disp8], imm8 (read-modify-write)", w);                  \
    asm volatile("andl $~2, 0x10(%0)" :: "r"(b) : "memory", "cc");                            \
    is(rd(b + H_CFG), 0, "%s: and [base+disp8], imm8", w);                                     \
}

DEFINE_FORMS(forms_identity, HPET)

static void read_modify_write(void)
{
    uint32_t b = HPET, v, fl;
    asm volatile("lock orl $2, 0x10(%0)" :: "r"(b) : "memory", "cc");
    is(rd(b + H_CFG), 2, "lock or to the device");
    asm volatile("lock andl $0, 0x10(%0)" :: "r"(b) : "memory", "cc");
    is(rd(b + H_CFG), 0, "lock and to the device");
    wr(b + T_CMP(1), 0xf0f0f0f0);
    asm volatile("xorl $0xff00ff00, %c0" :: "i"(HPET + T_CMP(1)) : "memory", "cc");
    is(rd(b + T_CMP(1)), 0x0ff00ff0, "xor [disp32], imm32");
    asm volatile("addl %1, (%0)" :: "r"(b + T_CMP(1)), "r"(0x10) : "memory", "cc");
    is(rd(b + T_CMP(1)), 0x0ff01000, "add [base], r32");
    asm volatile("incl (%0)" :: "r"(b + T_CMP(1)) : "memory", "cc");
    is(rd(b + T_CMP(1)), 0x0ff01001, "inc [base]");
    asm volatile("btsl $31, (%1)\n\tpushfl\n\tpopl %0" : "=r"(fl) : "r"(b + T_CMP(1)) : "memory", "cc");
    ok(rd(b + T_CMP(1)) == 0x8ff01001 && !(fl & FL_CF), "bts [base], 31: set, CF = the old bit");
    v = 0x12121212;
    asm volatile("xchgl %0, (%1)" : "+r"(v) : "r"(b + T_CMP(1)) : "memory");
    ok(v == 0x8ff01001 && rd(b + T_CMP(1)) == 0x12121212, "xchg r32, [base]: both ways");
    uint32_t old = 0x12121212;
    asm volatile("cmpxchgl %2, (%3)\n\tpushfl\n\tpopl %1" : "+a"(old), "=r"(fl) : "r"(0x34343434), "r"(b + T_CMP(1)) : "memory", "cc");
    ok((fl & FL_ZF) && rd(b + T_CMP(1)) == 0x34343434, "cmpxchg [base], r32: equal, stored");
    old = 0;
    asm volatile("cmpxchgl %2, (%3)\n\tpushfl\n\tpopl %1" : "+a"(old), "=r"(fl) : "r"(0x56565656), "r"(b + T_CMP(1)) : "memory", "cc");
    ok(!(fl & FL_ZF) && old == 0x34343434 && rd(b + T_CMP(1)) == 0x34343434, "cmpxchg [base], r32: different, loaded");

    v = 5;
    asm volatile("addl 4(%1), %0" : "+r"(v) : "r"(b) : "memory", "cc");
    is(v, CAP_HI + 5, "add r32, [base+disp8]");
    v = 3;
    asm volatile("imull 4(%1), %0" : "+r"(v) : "r"(b) : "memory", "cc");
    is(v, CAP_HI * 3, "imul r32, [base+disp8]");
    asm volatile("cmpl %2, (%1)\n\tpushfl\n\tpopl %0" : "=r"(fl) : "r"(b), "i"(CAP_LO) : "memory", "cc");
    ok(fl & FL_ZF, "cmp [base], imm32: equal");
    asm volatile("testl $0x8000, (%1)\n\tpushfl\n\tpopl %0" : "=r"(fl) : "r"(b) : "memory", "cc");
    ok(!(fl & FL_ZF), "test [base], imm32: LEG_RT_CAP set");
    asm volatile("btl $0, (%1)\n\tpushfl\n\tpopl %0" : "=r"(fl) : "r"(b) : "memory", "cc");
    ok(fl & FL_CF, "bt [base], 0: CF = bit 0 of the capabilities");

    asm volatile("pushl 4(%1)\n\tpopl %0" : "=r"(v) : "r"(b) : "memory");
    is(v, CAP_HI, "push [base+disp8] (a device read onto the stack)");
    asm volatile("pushl %0\n\tpopl 0x128(%1)" :: "r"(0x78787878), "r"(b) : "memory");
    is(rd(b + T_CMP(1)), 0x78787878, "pop [base+disp32] (the stack into a device register)");
    wr(b + T_CMP(1), (uint32_t)call_target);
    target_hits = 0;
    asm volatile("call *0x128(%0)" :: "r"(b) : "eax", "ecx", "edx", "memory", "cc");
    is(target_hits, 1, "call through a device register");

    /* movzx/movsx: a comparator set to 0 (byte and word reads of zero bytes; see above) */
    wr(b + T_CMP(1), 0);
    wr(b + T_CMP(1) + 4, 0);
    uint32_t z1 = ~0u, z2 = ~0u, z3 = ~0u, z4 = ~0u;
    asm volatile("movzbl 0x129(%4), %0\n\tmovzwl 0x12a(%4), %1\n\tmovsbl 0x12c(%4), %2\n\tmovswl 0x12e(%4), %3"
                 : "=&r"(z1), "=&r"(z2), "=&r"(z3), "=&r"(z4) : "r"(b) : "memory");
    ok(z1 == 0 && z2 == 0 && z3 == 0 && z4 == 0, "movzx/movsx r32, byte/word of a device register");
    wr(b + T_CMP(1), 0xffffffff);
    wr(b + T_CMP(1) + 4, 0xffffffff);
}

/* ---- paging ------------------------------------------------------------------------------------ */
#define DEV4K   0x50000000u   /* ptd[0]: the device, supervisor, writable */
#define DEV4KRO 0x50001000u   /* ptd[1]: read-only */
#define DEVU    0x50002000u   /* ptd[2]: user, writable */
#define DEVURO  0x50003000u   /* ptd[3]: user, read-only */
#define DEVNP   0x50004000u   /* ptd[4]: not present */
#define SWAP    0x50005000u   /* ptd[5]: the device or RAM */
#define DEV4M   0x50400000u   /* a 4 MiB page at 0xFEC00000: the HPET at +1 MiB */
#define DEV4M_HPET (DEV4M + 0x100000u)

static uint32_t pd[1024] __attribute__((aligned(4096)));
static uint32_t pt0[1024] __attribute__((aligned(4096)));
static uint32_t ptd[1024] __attribute__((aligned(4096)));
static uint8_t ram_page[4096] __attribute__((aligned(4096)));


static void paging_on(void)
{
    for (unsigned i = 0; i < 1024; i++)
        pt0[i] = (i << 12) | PG_U | PG_W | PG_P;
    pd[0] = (uint32_t)pt0 | PG_U | PG_W | PG_P;
    for (unsigned i = 1; i < 32; i++)
        pd[i] = (i << 22) | PG_PS | PG_W | PG_P;
    pd[HPET >> 22] = (HPET & 0xffc00000u) | PG_PS | PG_W | PG_P;   /* identity, 4 MiB */
    pd[DEV4K >> 22] = (uint32_t)ptd | PG_U | PG_W | PG_P;
    pd[DEV4M >> 22] = (HPET & 0xffc00000u) | PG_PS | PG_W | PG_P;
    ptd[0] = HPET | PG_W | PG_P;
    ptd[1] = HPET | PG_P;
    ptd[2] = HPET | PG_U | PG_W | PG_P;
    ptd[3] = HPET | PG_U | PG_P;
    ptd[4] = HPET | PG_U | PG_W;
    ptd[5] = (uint32_t)ram_page | PG_W | PG_P;
    for (unsigned i = 0; i < 4096; i += 4)
        *(uint32_t *)(ram_page + i) = 0x7a000000 + i;
    write_cr4(read_cr4() | CR4_PSE);
    write_cr3((uint32_t)pd);
    write_cr0(read_cr0() | CR0_PG);
}

DEFINE_FORMS(forms_4k, DEV4K)
DEFINE_FORMS(forms_4m, DEV4M_HPET)
DEFINE_FORMS(forms_identity_paged, HPET)

#define RUN(insn, ...)                                                                        \
    ({                                                                                        \
        uint32_t _at;                                                                         \
        rt_clear_last();                                                                      \
        asm volatile(CATCH("3f") "movl $1f, %0\n1:\t" insn "\n3:\t" UNCATCH                   \
                     : "=m"(_at) : __VA_ARGS__);                                               \
        _at;                                                                                  \
    })

static void paged(void)
{
    forms_4k("4 KiB page");
    forms_4m("4 MiB page");
    forms_identity_paged("identity 4 MiB page");

    wr(DEV4K + T_CMP(2), 0x4d4d0001);
    is(rd(DEV4M_HPET + T_CMP(2)), 0x4d4d0001, "written through the 4 KiB page, read through the 4 MiB page");
    is(rd(SWAP + 0x10), 0x7a000010, "a linear page mapping RAM");
    ptd[5] = HPET | PG_W | PG_P;
    invlpg(SWAP);
    is(rd(SWAP + H_CAP), CAP_LO, "remapped to the device + invlpg: the device");
    ptd[5] = (uint32_t)ram_page | PG_W | PG_P;
    invlpg(SWAP);
    is(rd(SWAP + H_CAP), 0x7a000000, "remapped to RAM + invlpg: RAM");
    ptd[5] = HPET | PG_W | PG_P;
    write_cr3(read_cr3());
    is(rd(SWAP + H_CAP + 4), CAP_HI, "remapped to the device + CR3 reload: the device");

    ptd[0] &= ~(PG_A | PG_D);
    invlpg(DEV4K);
    (void)rd(DEV4K + H_CAP);
    ok((ptd[0] & (PG_A | PG_D)) == PG_A, "a device read through a 4 KiB page sets A, not D");
    wr(DEV4K + T_CMP(2), 1);
    ok((ptd[0] & (PG_A | PG_D)) == (PG_A | PG_D), "a device write sets D");
    pd[DEV4M >> 22] &= ~(PG_A | PG_D);
    invlpg(DEV4M_HPET);
    (void)rd(DEV4M_HPET + H_CAP);
    ok((pd[DEV4M >> 22] & (PG_A | PG_D)) == PG_A, "a device read through a 4 MiB page sets A, not D");
    wr(DEV4M_HPET + T_CMP(2), 2);
    ok((pd[DEV4M >> 22] & (PG_A | PG_D)) == (PG_A | PG_D), "a device write through a 4 MiB page sets D");

    wr(HPET + T_CMP(2), 0x2e2e2e2e);
    write_cr0(read_cr0() | CR0_WP);
    uint32_t at = RUN("movl $0x3f3f3f3f, (%2)", "i"(0), "r"(DEV4KRO + T_CMP(2)) : "memory");
    is_trap(14, 1, 3, at, "a read-only device mapping, CR0.WP = 1: a write faults, error 3");
    is(read_cr2(), DEV4KRO + T_CMP(2), "CR2 = the address");
    is(rd(HPET + T_CMP(2)), 0x2e2e2e2e, "and the register is unchanged");
    is(rd(DEV4KRO + H_CAP), CAP_LO, "reading through the read-only mapping works");
    write_cr0(read_cr0() & ~CR0_WP);
    at = RUN("movl $0x3f3f3f3f, (%2)", "i"(0), "r"(DEV4KRO + T_CMP(2)) : "memory");
    ok(rt_last.count == 0 && rd(HPET + T_CMP(2)) == 0x3f3f3f3f, "CR0.WP = 0: the write reaches the device");
    at = RUN("movl (%2), %%eax", "i"(0), "r"(DEVNP + H_CAP) : "eax", "memory");
    is_trap(14, 1, 0, at, "a not-present device mapping: a read faults, error 0");
    at = RUN("movl $1, (%2)", "i"(0), "r"(DEVNP + T_CMP(2)) : "memory");
    is_trap(14, 1, 2, at, "a not-present device mapping: a write faults, error 2");
    is(read_cr2(), DEVNP + T_CMP(2), "CR2 = the address");
    uint32_t buf[4] = { 0 }, s = DEVNP, d = (uint32_t)buf, c = 4;
    rt_clear_last();
    asm volatile(CATCH("2f") "cld\n1:\trep movsl\n2:\t" UNCATCH "movl $1b, %3"
                 : "+S"(s), "+D"(d), "+c"(c), "=m"(at) :: "memory");
    ok(rt_last.count == 1 && rt_last.vector == 14 && rt_last.err == 0 && rt_last.eip == at && c == 4 && s == DEVNP,
       "rep movsd from a not-present device mapping: #PF before the first dword");
}

/* ---- CPL 3 --------------------------------------------------------------------------------- */
static volatile uint32_t ur[16];
static void user_mmio(void)
{
    ur[0] = rd(DEVU + H_CAP);
    ur[1] = rd(DEVU + H_CAP + 4);
    wr(DEVU + T_CMP(2), 0x3a3a0001);
    ur[2] = rd(DEVU + T_CMP(2));
    uint32_t s = DEVU + T_CFG(0), d = (uint32_t)&ur[4], c = 4;
    asm volatile("cld\n\trep movsl" : "+S"(s), "+D"(d), "+c"(c) :: "memory");
    uint32_t lo, hi;
    asm volatile("movq (%2), %%mm0\n\tmovd %%mm0, %0\n\tpsrlq $32, %%mm0\n\tmovd %%mm0, %1\n\temms"
                 : "=r"(lo), "=r"(hi) : "r"(DEVU) : "memory");
    ur[8] = lo;
    ur[9] = hi;
    asm volatile("orl $2, %c0" :: "i"(DEVU + H_CFG) : "memory", "cc");
    ur[10] = rd(DEVU + H_CFG);
    asm volatile("andl $0, %c0" :: "i"(DEVU + H_CFG) : "memory", "cc");
    ur[11] = rd(DEVU + H_CFG);
    ur[12] = rd(DEVURO + H_CAP + 4);
}

static void user_write_ro(void)
{
    asm volatile("movl $user_exit, user_resume\n\tmovl $0x3b3b3b3b, %c0" :: "i"(DEVURO + T_CMP(2)) : "memory");
}

static void user_read_supervisor(void)
{
    asm volatile("movl $user_exit, user_resume\n\tmovl %c0, %%eax" :: "i"(DEV4K + H_CAP) : "eax", "memory");
}

static void user_mode(void)
{
    user_setup();
    user_resume = 0;
    user_enter(user_mmio);
    ok(ur[0] == CAP_LO && ur[1] == CAP_HI, "CPL 3: reads through a user mapping of the device");
    is(ur[2], 0x3a3a0001, "CPL 3: a write and a read back");
    ok(ur[4] == 0x30 && ur[5] == 4 && ur[6] == 0xffffffff && ur[7] == 0xffffffff, "CPL 3: rep movsd from the device");
    ok(ur[8] == CAP_LO && ur[9] == CAP_HI, "CPL 3: movq (8 bytes) from the device");
    ok(ur[10] == 2 && ur[11] == 0, "CPL 3: or/and to a device register");
    is(ur[12], CAP_HI, "CPL 3: a read through a read-only user mapping");

    wr(HPET + T_CMP(2), 0x2c2c2c2c);
    uf.count = 0;
    user_enter(user_write_ro);
    ok(uf.count == 1 && uf.vector == 14 && uf.err == 7 && uf.cr2 == DEVURO + T_CMP(2) && uf.cs == UCS,
       "CPL 3: a write through a read-only user mapping of the device: #PF, error 7");
    is(rd(HPET + T_CMP(2)), 0x2c2c2c2c, "and the register is unchanged");
    uf.count = 0;
    user_enter(user_read_supervisor);
    ok(uf.count == 1 && uf.vector == 14 && uf.err == 5 && uf.cr2 == DEV4K + H_CAP,
       "CPL 3: a read through a supervisor mapping of the device: #PF, error 5");
    ptd[3] |= PG_W;
    invlpg(DEVURO);
    uf.count = 0;
    user_enter(user_write_ro);
    ok(uf.count == 0 && rd(HPET + T_CMP(2)) == 0x3b3b3b3b, "CPL 3: the mapping made writable + invlpg: the write works");
    ptd[3] &= ~PG_W;
    invlpg(DEVURO);
}

void test_main(void)
{
    registers();
    main_counter();
    wide();
    strings();
    forms_identity("identity");
    read_modify_write();
    paging_on();
    paged();
    user_mode();
    write_cr0(read_cr0() & ~CR0_PG);
    is(rd(HPET + H_CAP), CAP_LO, "paging off again: the device");
}
