/*
 * atomic - exchange and locked read-modify-write instructions.
 *
 * xchg (with and without lock), cmpxchg (8/16/32-bit, memory and register destination,
 * success and failure), cmpxchg8b (success and failure: only ZF changes), xadd
 * (8/16/32-bit, memory and register), lock add/adc/sub/sbb/and/or/xor with register and
 * immediate sources, lock inc/dec/neg/not, lock bts/btr/btc with register and immediate
 * bit offsets; locked operations on a dword that crosses a page boundary.
 */
#include "sweep.h"

/* Memory operand at 4(%esi) is preset from ECX; EAX/EBX are the register operands. */
#define PRE "mov %ecx, 4(%esi)\n\t"
STUB(xchg_lock, PRE "lock xchg %ebx, 4(%esi)")
STUB(xchg_lock16, PRE "lock xchg %bx, 4(%esi)")
STUB(cmpxchg32, PRE "lock cmpxchg %ebx, 4(%esi)")
STUB(cmpxchg32_nolock, PRE "cmpxchg %ebx, 4(%esi)")
STUB(cmpxchg16, PRE "lock cmpxchg %bx, 4(%esi)")
STUB(cmpxchg8, PRE "lock cmpxchg %bl, 4(%esi)")
STUB(cmpxchg8h, PRE "lock cmpxchg %bh, 5(%esi)")
STUB(cmpxchg_rr, "cmpxchg %ebx, %ecx")
STUB(cmpxchg_rr8, "cmpxchg %bh, %cl")
STUB(cmpxchg8b, PRE "movl $0x0badf00d, 8(%esi)\n\tlock cmpxchg8b 4(%esi)")
STUB(cmpxchg8b_nolock, PRE "movl $0x0badf00d, 8(%esi)\n\tcmpxchg8b 4(%esi)")
STUB(xadd32, PRE "lock xadd %ebx, 4(%esi)")
STUB(xadd16, PRE "lock xadd %bx, 4(%esi)")
STUB(xadd8, PRE "lock xadd %bl, 4(%esi)")
STUB(xadd_rr, "xadd %ebx, %ecx")
STUB(xadd_rr8, "xadd %ah, %bl")
#define LOCKED(op)                                                                       \
    STUB(lock_##op##_r, PRE "lock " #op " %ebx, 4(%esi)")                                 \
    STUB(lock_##op##_i, PRE "lock " #op "l $0x80000001, 4(%esi)")                         \
    STUB(lock_##op##_b, PRE "lock " #op "b %bl, 5(%esi)")
LOCKED(add) LOCKED(adc) LOCKED(sub) LOCKED(sbb) LOCKED(and) LOCKED(or) LOCKED(xor)
STUB(lock_inc, PRE "lock incl 4(%esi)")
STUB(lock_dec, PRE "lock decw 4(%esi)")
STUB(lock_neg, PRE "lock negl 4(%esi)")
STUB(lock_not, PRE "lock notb 4(%esi)")
STUB(lock_bts, PRE "and $63, %ebx\n\tlock bts %ebx, 4(%esi)")
STUB(lock_btr, PRE "and $63, %ebx\n\tlock btr %ebx, 4(%esi)")
STUB(lock_btc, PRE "and $63, %ebx\n\tlock btc %ebx, 4(%esi)")
STUB(lock_bts_i, PRE "lock btsl $17, 4(%esi)")
STUB(lock_btr_i, PRE "lock btrw $3, 4(%esi)")

#define LOGIC (FL_ARITH & ~FL_AF)
#define LOCKED_TABLE(op, m)                                                              \
    { "lock " #op " m32,r32", lock_##op##_r, m, 0, 0 },                                   \
    { "lock " #op " m32,imm32", lock_##op##_i, m, 0, 0 },                                 \
    { "lock " #op " m8,r8", lock_##op##_b, m, 0, 0 },
static struct sweep sweeps[] = {
    { "lock xchg m32,r32", xchg_lock, FL_ARITH, 0, 0 },
    { "lock xchg m16,r16", xchg_lock16, FL_ARITH, 0, 0 },
    { "lock cmpxchg m32,r32", cmpxchg32, FL_ARITH, 0, 0 },
    { "cmpxchg m32,r32", cmpxchg32_nolock, FL_ARITH, 0, 0 },
    { "lock cmpxchg m16,r16", cmpxchg16, FL_ARITH, 0, 0 },
    { "lock cmpxchg m8,r8", cmpxchg8, FL_ARITH, 0, 0 },
    { "lock cmpxchg m8,bh", cmpxchg8h, FL_ARITH, 0, 0 },
    { "cmpxchg r32,r32", cmpxchg_rr, FL_ARITH, 0, 0 },
    { "cmpxchg cl,bh", cmpxchg_rr8, FL_ARITH, 0, 0 },
    { "lock cmpxchg8b", cmpxchg8b, FL_ARITH, 0, 0 },
    { "cmpxchg8b", cmpxchg8b_nolock, FL_ARITH, 0, 0 },
    { "lock xadd m32,r32", xadd32, FL_ARITH, 0, 0 },
    { "lock xadd m16,r16", xadd16, FL_ARITH, 0, 0 },
    { "lock xadd m8,r8", xadd8, FL_ARITH, 0, 0 },
    { "xadd r32,r32", xadd_rr, FL_ARITH, 0, 0 },
    { "xadd bl,ah", xadd_rr8, FL_ARITH, 0, 0 },
    LOCKED_TABLE(add, FL_ARITH) LOCKED_TABLE(adc, FL_ARITH) LOCKED_TABLE(sub, FL_ARITH)
    LOCKED_TABLE(sbb, FL_ARITH) LOCKED_TABLE(and, LOGIC) LOCKED_TABLE(or, LOGIC)
    LOCKED_TABLE(xor, LOGIC)
    { "lock inc m32", lock_inc, FL_ARITH, 0, 0 },
    { "lock dec m16", lock_dec, FL_ARITH, 0, 0 },
    { "lock neg m32", lock_neg, FL_ARITH, 0, 0 },
    { "lock not m8", lock_not, FL_ARITH, 0, 0 },
    { "lock bts m32,r32", lock_bts, FL_CF, 0, 0 },
    { "lock btr m32,r32", lock_btr, FL_CF, 0, 0 },
    { "lock btc m32,r32", lock_btc, FL_CF, 0, 0 },
    { "lock bts m32,imm", lock_bts_i, FL_CF | FL_ZF, 0, 0 },
    { "lock btr m16,imm", lock_btr_i, FL_CF | FL_ZF, 0, 0 },
};

static const uint32_t vals[] = {
    0, 1, 0x7f, 0x80, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, 0x12345678,
};
static const uint32_t flags_in[] = { 0, FL_ARITH };

/* A dword at the end of a page, crossing into the next. */
static uint8_t pages[2 * 4096] __attribute__((aligned(4096)));

static void page_crossing(void)
{
    volatile uint32_t *p = (volatile uint32_t *)(pages + 4096 - 2);
    *p = 0x1234fffe;
    asm volatile("lock addl $3, %0" : "+m"(*p) :: "cc");
    is(*p, 0x12350001, "lock add on a dword crossing a page boundary");
    uint32_t old = 0x12350001, new = 0xcafebabe, r;
    asm volatile("lock cmpxchg %2, %1" : "=a"(r), "+m"(*p) : "r"(new), "0"(old) : "cc");
    is(*p, 0xcafebabe, "lock cmpxchg across a page boundary stores");
    uint32_t add = 1;
    asm volatile("lock xadd %0, %1" : "+r"(add), "+m"(*p) :: "cc");
    is(add, 0xcafebabe, "lock xadd across a page boundary returns the old value");
    is(*p, 0xcafebabf, "lock xadd across a page boundary adds");
    volatile uint64_t *q = (volatile uint64_t *)(pages + 4096 - 4);
    *q = 0x1111111122222222ull;
    uint32_t lo = 0x22222222, hi = 0x11111111;
    asm volatile("lock cmpxchg8b %0" : "+m"(*q), "+a"(lo), "+d"(hi) : "b"(0x33333333), "c"(0x44444444) : "cc");
    is64(*q, 0x4444444433333333ull, "lock cmpxchg8b across a page boundary");
}

void test_main(void)
{
    struct sweep_space sp = { vals, N(vals), vals, N(vals), vals, N(vals), flags_in, N(flags_in) };
    sweep_all(sweeps, N(sweeps), &sp);
    page_crossing();
}

/* BEGIN HASHES (recorded on hardware by host/record-hashes.py) */
const struct sweep_hash sweep_hashes[] = {
    { "lock xchg m32,r32", 0xadd3961c },
    { "lock xchg m16,r16", 0x3d2b164c },
    { "lock cmpxchg m32,r32", 0x740459bd },
    { "cmpxchg m32,r32", 0x740459bd },
    { "lock cmpxchg m16,r16", 0xbf3de6b9 },
    { "lock cmpxchg m8,r8", 0xc7a8e739 },
    { "lock cmpxchg m8,bh", 0x2102c89d },
    { "cmpxchg r32,r32", 0x52c19e35 },
    { "cmpxchg cl,bh", 0x7e8faa09 },
    { "lock cmpxchg8b", 0x46f642a8 },
    { "cmpxchg8b", 0x46f642a8 },
    { "lock xadd m32,r32", 0xc613dbfd },
    { "lock xadd m16,r16", 0x342e1dcd },
    { "lock xadd m8,r8", 0x8e449e19 },
    { "xadd r32,r32", 0x9d51f565 },
    { "xadd bl,ah", 0x8da41a31 },
    { "lock add m32,r32", 0xf25b571d },
    { "lock add m32,imm32", 0xf285f6f9 },
    { "lock add m8,r8", 0xaa6fa131 },
    { "lock adc m32,r32", 0xe25db8c4 },
    { "lock adc m32,imm32", 0x98f5a8e4 },
    { "lock adc m8,r8", 0x8510994b },
    { "lock sub m32,r32", 0x35387495 },
    { "lock sub m32,imm32", 0x83db7001 },
    { "lock sub m8,r8", 0xfe062271 },
    { "lock sbb m32,r32", 0x9a26beec },
    { "lock sbb m32,imm32", 0x2488ff99 },
    { "lock sbb m8,r8", 0xff5d474d },
    { "lock and m32,r32", 0x66549a75 },
    { "lock and m32,imm32", 0xd15696f5 },
    { "lock and m8,r8", 0xa8ab397d },
    { "lock or m32,r32", 0xb524dc7d },
    { "lock or m32,imm32", 0x1f259d05 },
    { "lock or m8,r8", 0xe4cae12d },
    { "lock xor m32,r32", 0xd010fa59 },
    { "lock xor m32,imm32", 0x19b1d549 },
    { "lock xor m8,r8", 0xcdf4150d },
    { "lock inc m32", 0x20a645c8 },
    { "lock dec m16", 0xd52fff7c },
    { "lock neg m32", 0x01846e59 },
    { "lock not m8", 0xd238b148 },
    { "lock bts m32,r32", 0xcf683781 },
    { "lock btr m32,r32", 0x5c671e75 },
    { "lock btc m32,r32", 0xd95609fd },
    { "lock bts m32,imm", 0x651baf9d },
    { "lock btr m16,imm", 0x203a07e9 },
};
const unsigned sweep_nhashes = N(sweep_hashes);
/* END HASHES */
