/*
 * shift - shifts and rotates: shl/sal shr sar rol ror rcl rcr by 1 (d0/d1), by an
 * immediate (c0/c1, including the counts 0, 1, 31 and counts >= 32 that the CPU masks to
 * 5 bits), by CL (d2/d3, CL from 0 to 255), on 8/16/32-bit registers (AH too) and memory;
 * shld/shrd by immediate and CL in 16 and 32 bits.
 *
 * Flags are compared only where defined (SDM vol. 2): count 0 leaves all flags alone;
 * OF only for a (masked) count of 1; AF never after a shift; CF not for shl/shr of 8/16-bit
 * operands by >= their width; rol/ror/rcl/rcr never touch SF ZF AF PF.  16-bit shld/shrd
 * by more than 15 is undefined and left out.
 */
#include "sweep.h"

enum { K_SHL, K_SHR, K_SAR, K_ROL, K_ROR, K_RCL, K_RCR, K_SHLD, K_SHRD };
#define CL 0xff
#define ARG(kind, width, count) ((kind) | ((width) << 8) | ((uint32_t)(count) << 16))

static uint32_t shift_mask(const struct sweep *s, const struct regs *in)
{
    unsigned kind = s->arg & 0xff, width = (s->arg >> 8) & 0xff, count = (s->arg >> 16) & 0xff;
    if (count == CL)
        count = in->ecx & 0xff;
    count &= 31;
    if (count == 0)
        return FL_ARITH;                         /* nothing changes */
    uint32_t m;
    switch (kind) {
    case K_SHL: case K_SHR: case K_SAR:
        m = FL_CF | FL_SF | FL_ZF | FL_PF;
        if (kind != K_SAR && count >= width)
            m &= ~FL_CF;
        break;
    case K_SHLD: case K_SHRD:
        if (width == 16 && count > 15)
            return SWEEP_SKIP;
        m = FL_CF | FL_SF | FL_ZF | FL_PF;
        break;
    default:                                     /* rotates */
        m = FL_ARITH & ~FL_OF;
        break;
    }
    if (count == 1)
        m |= FL_OF;
    return m;
}

/* One operation in every form. */
#define FORMS(op, digit)                                                                     \
    STUB(op##_1_32, #op " %eax")                                                          \
    STUB(op##_1_16, #op " %ax")                                                           \
    STUB(op##_1_8, #op " %al")                                                            \
    STUB(op##_1_8h, #op " %ah")                                                           \
    STUB(op##_1_m32, "mov %eax, 3(%esi)\n\t" #op "l 3(%esi)")                           \
    STUB(op##_1_m16, "mov %eax, 3(%esi)\n\t" #op "w 3(%esi)")                           \
    STUB(op##_1_m8, "mov %eax, 3(%esi)\n\t" #op "b 3(%esi)")                            \
    STUB(op##_cl_32, #op " %cl, %eax")                                                    \
    STUB(op##_cl_16, #op " %cl, %ax")                                                     \
    STUB(op##_cl_8, #op " %cl, %al")                                                      \
    STUB(op##_cl_8h, #op " %cl, %bh")                                                     \
    STUB(op##_cl_m32, "mov %eax, 3(%esi)\n\t" #op "l %cl, 3(%esi)")                     \
    STUB(op##_cl_m16, "mov %eax, 3(%esi)\n\t" #op "w %cl, 3(%esi)")                     \
    STUB(op##_cl_m8, "mov %eax, 3(%esi)\n\t" #op "b %cl, 3(%esi)")                      \
    STUB(op##_i0_32, #op " $0, %eax")                                                     \
    STUB(op##_i1_32, "mov %eax, %edx\n\t" #op " %edx\n\t.byte 0xc1, 0xc0 + 8 * " #digit ", 1") \
    STUB(op##_i5_32, #op " $5, %eax")                                                     \
    STUB(op##_i31_32, #op " $31, %eax")                                                   \
    STUB(op##_i33_32, #op " $33, %eax")                                                   \
    STUB(op##_i17_16, #op " $17, %ax")                                                    \
    STUB(op##_i9_8, #op " $9, %al")                                                       \
    STUB(op##_i7_m32, "mov %eax, 3(%esi)\n\t" #op "l $7, 3(%esi)")

#define TABLE(op, K)                                                                     \
    { #op " r32,1", op##_1_32, 0, shift_mask, ARG(K, 32, 1) },                           \
    { #op " r16,1", op##_1_16, 0, shift_mask, ARG(K, 16, 1) },                           \
    { #op " r8,1", op##_1_8, 0, shift_mask, ARG(K, 8, 1) },                              \
    { #op " ah,1", op##_1_8h, 0, shift_mask, ARG(K, 8, 1) },                             \
    { #op " m32,1", op##_1_m32, 0, shift_mask, ARG(K, 32, 1) },                          \
    { #op " m16,1", op##_1_m16, 0, shift_mask, ARG(K, 16, 1) },                          \
    { #op " m8,1", op##_1_m8, 0, shift_mask, ARG(K, 8, 1) },                             \
    { #op " r32,cl", op##_cl_32, 0, shift_mask, ARG(K, 32, CL) },                        \
    { #op " r16,cl", op##_cl_16, 0, shift_mask, ARG(K, 16, CL) },                        \
    { #op " r8,cl", op##_cl_8, 0, shift_mask, ARG(K, 8, CL) },                           \
    { #op " bh,cl", op##_cl_8h, 0, shift_mask, ARG(K, 8, CL) },                          \
    { #op " m32,cl", op##_cl_m32, 0, shift_mask, ARG(K, 32, CL) },                       \
    { #op " m16,cl", op##_cl_m16, 0, shift_mask, ARG(K, 16, CL) },                       \
    { #op " m8,cl", op##_cl_m8, 0, shift_mask, ARG(K, 8, CL) },                          \
    { #op " r32,0", op##_i0_32, 0, shift_mask, ARG(K, 32, 0) },                          \
    { #op " r32,imm 1 (c1 form)", op##_i1_32, 0, shift_mask, ARG(K, 32, 1) },            \
    { #op " r32,5", op##_i5_32, 0, shift_mask, ARG(K, 32, 5) },                          \
    { #op " r32,31", op##_i31_32, 0, shift_mask, ARG(K, 32, 31) },                       \
    { #op " r32,33", op##_i33_32, 0, shift_mask, ARG(K, 32, 33) },                       \
    { #op " r16,17", op##_i17_16, 0, shift_mask, ARG(K, 16, 17) },                       \
    { #op " r8,9", op##_i9_8, 0, shift_mask, ARG(K, 8, 9) },                             \
    { #op " m32,7", op##_i7_m32, 0, shift_mask, ARG(K, 32, 7) },

FORMS(shl, 4)
FORMS(shr, 5)
FORMS(sar, 7)
FORMS(rol, 0)
FORMS(ror, 1)
FORMS(rcl, 2)
FORMS(rcr, 3)
/* sal is shl (same opcode /4); the /6 alias is not used by assemblers and left out. */
STUB(sal_cl_32, "sal %cl, %eax")

STUB(shld_i0, "shld $0, %ebx, %eax")
STUB(shld_i1, "shld $1, %ebx, %eax")
STUB(shld_i12, "shld $12, %ebx, %eax")
STUB(shld_i31, "shld $31, %ebx, %eax")
STUB(shld_cl, "shld %cl, %ebx, %eax")
STUB(shld_cl16, "shld %cl, %bx, %ax")
STUB(shld_i5_16, "shld $5, %bx, %ax")
STUB(shld_cl_m32, "mov %eax, 3(%esi)\n\tshld %cl, %ebx, 3(%esi)")
STUB(shld_i9_m16, "mov %eax, 3(%esi)\n\tshld $9, %bx, 3(%esi)")
STUB(shrd_i0, "shrd $0, %ebx, %eax")
STUB(shrd_i1, "shrd $1, %ebx, %eax")
STUB(shrd_i12, "shrd $12, %ebx, %eax")
STUB(shrd_i31, "shrd $31, %ebx, %eax")
STUB(shrd_cl, "shrd %cl, %ebx, %eax")
STUB(shrd_cl16, "shrd %cl, %bx, %ax")
STUB(shrd_i5_16, "shrd $5, %bx, %ax")
STUB(shrd_cl_m32, "mov %eax, 3(%esi)\n\tshrd %cl, %ebx, 3(%esi)")
STUB(shrd_i9_m16, "mov %eax, 3(%esi)\n\tshrd $9, %bx, 3(%esi)")

static struct sweep sweeps[] = {
    TABLE(shl, K_SHL)
    TABLE(shr, K_SHR)
    TABLE(sar, K_SAR)
    TABLE(rol, K_ROL)
    TABLE(ror, K_ROR)
    TABLE(rcl, K_RCL)
    TABLE(rcr, K_RCR)
    { "sal r32,cl", sal_cl_32, 0, shift_mask, ARG(K_SHL, 32, CL) },
    { "shld r32,r32,0", shld_i0, 0, shift_mask, ARG(K_SHLD, 32, 0) },
    { "shld r32,r32,1", shld_i1, 0, shift_mask, ARG(K_SHLD, 32, 1) },
    { "shld r32,r32,12", shld_i12, 0, shift_mask, ARG(K_SHLD, 32, 12) },
    { "shld r32,r32,31", shld_i31, 0, shift_mask, ARG(K_SHLD, 32, 31) },
    { "shld r32,r32,cl", shld_cl, 0, shift_mask, ARG(K_SHLD, 32, CL) },
    { "shld r16,r16,cl", shld_cl16, 0, shift_mask, ARG(K_SHLD, 16, CL) },
    { "shld r16,r16,5", shld_i5_16, 0, shift_mask, ARG(K_SHLD, 16, 5) },
    { "shld m32,r32,cl", shld_cl_m32, 0, shift_mask, ARG(K_SHLD, 32, CL) },
    { "shld m16,r16,9", shld_i9_m16, 0, shift_mask, ARG(K_SHLD, 16, 9) },
    { "shrd r32,r32,0", shrd_i0, 0, shift_mask, ARG(K_SHRD, 32, 0) },
    { "shrd r32,r32,1", shrd_i1, 0, shift_mask, ARG(K_SHRD, 32, 1) },
    { "shrd r32,r32,12", shrd_i12, 0, shift_mask, ARG(K_SHRD, 32, 12) },
    { "shrd r32,r32,31", shrd_i31, 0, shift_mask, ARG(K_SHRD, 32, 31) },
    { "shrd r32,r32,cl", shrd_cl, 0, shift_mask, ARG(K_SHRD, 32, CL) },
    { "shrd r16,r16,cl", shrd_cl16, 0, shift_mask, ARG(K_SHRD, 16, CL) },
    { "shrd r16,r16,5", shrd_i5_16, 0, shift_mask, ARG(K_SHRD, 16, 5) },
    { "shrd m32,r32,cl", shrd_cl_m32, 0, shift_mask, ARG(K_SHRD, 32, CL) },
    { "shrd m16,r16,9", shrd_i9_m16, 0, shift_mask, ARG(K_SHRD, 16, 9) },
};

static const uint32_t vals[] = {
    0, 1, 0x80, 0xff, 0x8000, 0xffff, 0x12345678, 0x7fffffff, 0x80000000, 0x80000001,
    0xffffffff, 0xdeadbeef, 0x00ff00ff, 0x55aa55aa, 0x40000000, 0x00008001,
};
static const uint32_t vals_b[] = { 0, 0xffffffff, 0x9abcdef0 };
static const uint32_t counts[] = { 0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 18, 24, 31, 32, 33, 63, 64, 0x80, 0xff };
static const uint32_t one_count[] = { 0x05 };
static const uint32_t flags_in[] = { 0, FL_ARITH };

static struct regs run(void (*stub)(void), uint32_t eax, uint32_t ebx, uint32_t ecx, uint32_t fl)
{
    struct regs in = { eax, ebx, ecx, 0, 0, 0, 0, fl }, out;
    rt_exec(&in, &out, stub);
    return out;
}

static void known_answers(void)
{
    struct regs r;
    r = run(shl_cl_32, 0x80000001, 0, 32, FL_ARITH);
    is(r.eax, 0x80000001, "shl by cl=32: the count is masked to 0");
    is(r.eflags & FL_ARITH, FL_ARITH, "shl by 32: flags untouched");
    r = run(shl_1_32, 0xc0000000, 0, 0, 0);
    is(r.eax, 0x80000000, "shl 0xc0000000, 1");
    is(r.eflags & (FL_CF | FL_OF | FL_SF | FL_ZF | FL_PF), FL_CF | FL_SF | FL_PF, "shl 0xc0000000, 1: CF SF PF, OF clear");
    r = run(sar_cl_8, 0x1234, 0, 20, 0);
    is(r.eax, 0x1200, "sar al by 20 = 0 (positive)");
    r = run(shr_cl_16, 0xffff8000, 0, 15, 0);
    is(r.eax, 0xffff0001, "shr ax by 15");
    r = run(rcl_cl_8, 0x80, 0, 9, FL_CF);
    is(r.eax, 0x80, "rcl al by 9 rotates through 9 bits back to the start");
    r = run(rcr_1_32, 0x00000001, 0, 0, FL_CF);
    is(r.eax, 0x80000000, "rcr 1 with CF=1");
    is(r.eflags & (FL_CF | FL_OF), FL_CF | FL_OF, "rcr 1 with CF=1: CF OF");
    r = run(rol_cl_8h, 0, 0x8100, 4, 0);
    is(r.ebx, 0x1800, "rol bh by 4");
    r = run(shld_cl, 0x12345678, 0x9abcdef0, 8, 0);
    is(r.eax, 0x3456789a, "shld eax, ebx, 8");
    r = run(shrd_i12, 0x12345678, 0x9abcdef0, 0, 0);
    is(r.eax, 0xef012345, "shrd eax, ebx, 12");
}

void test_main(void)
{
    struct sweep_space cl_space = { vals, N(vals), vals_b, N(vals_b), counts, N(counts), flags_in, N(flags_in) };
    struct sweep_space imm_space = { vals, N(vals), vals_b, N(vals_b), one_count, 1, flags_in, N(flags_in) };
    for (unsigned i = 0; i < N(sweeps); i++) {
        unsigned count = (sweeps[i].arg >> 16) & 0xff;
        sweep_run(&sweeps[i], count == CL ? &cl_space : &imm_space);
    }
    known_answers();
}

/* BEGIN HASHES (recorded on hardware by host/record-hashes.py) */
const struct sweep_hash sweep_hashes[] = {
    { "shl r32,1", 0xb9a13b09 },
    { "shl r16,1", 0x86949971 },
    { "shl r8,1", 0x687175dd },
    { "shl ah,1", 0x1948f401 },
    { "shl m32,1", 0xeeaa17f5 },
    { "shl m16,1", 0x4309e445 },
    { "shl m8,1", 0x2786d4a5 },
    { "shl r32,cl", 0x13ea4965 },
    { "shl r16,cl", 0xbda60a8d },
    { "shl r8,cl", 0x37cab049 },
    { "shl bh,cl", 0xc69dab25 },
    { "shl m32,cl", 0x7945afc1 },
    { "shl m16,cl", 0x7862f685 },
    { "shl m8,cl", 0x83b17389 },
    { "shl r32,0", 0x473f6e55 },
    { "shl r32,imm 1 (c1 form)", 0x608f0cb1 },
    { "shl r32,5", 0xc0de7325 },
    { "shl r32,31", 0x66dc99ed },
    { "shl r32,33", 0xb9a13b09 },
    { "shl r16,17", 0xb6d6db41 },
    { "shl r8,9", 0x19c8e6d9 },
    { "shl m32,7", 0xe14aa645 },
    { "shr r32,1", 0x7d3f2659 },
    { "shr r16,1", 0x1f97ebe1 },
    { "shr r8,1", 0x0711c9f1 },
    { "shr ah,1", 0xa0734de5 },
    { "shr m32,1", 0x53e2e639 },
    { "shr m16,1", 0xc327eac9 },
    { "shr m8,1", 0xd1f55079 },
    { "shr r32,cl", 0x320f1209 },
    { "shr r16,cl", 0xccc7afe5 },
    { "shr r8,cl", 0x90b0b651 },
    { "shr bh,cl", 0x1c704e35 },
    { "shr m32,cl", 0x8e561a2d },
    { "shr m16,cl", 0x62b3aa05 },
    { "shr m8,cl", 0x597f41cd },
    { "shr r32,0", 0x473f6e55 },
    { "shr r32,imm 1 (c1 form)", 0x49953521 },
    { "shr r32,5", 0x981379bd },
    { "shr r32,31", 0xdf6301bd },
    { "shr r32,33", 0x7d3f2659 },
    { "shr r16,17", 0xb6d6db41 },
    { "shr r8,9", 0x19c8e6d9 },
    { "shr m32,7", 0xb6dc03e9 },
    { "sar r32,1", 0x6353e6d9 },
    { "sar r16,1", 0x46f5c211 },
    { "sar r8,1", 0xffc58f31 },
    { "sar ah,1", 0x161d06b5 },
    { "sar m32,1", 0xa2e87049 },
    { "sar m16,1", 0xa699b7c9 },
    { "sar m8,1", 0x038b1be9 },
    { "sar r32,cl", 0xe6377be9 },
    { "sar r16,cl", 0x111baf19 },
    { "sar r8,cl", 0xed42e811 },
    { "sar bh,cl", 0x42a1db25 },
    { "sar m32,cl", 0xdd2cfa5d },
    { "sar m16,cl", 0x8520b86d },
    { "sar m8,cl", 0x9de9cfb1 },
    { "sar r32,0", 0x473f6e55 },
    { "sar r32,imm 1 (c1 form)", 0x7159d081 },
    { "sar r32,5", 0x055caddd },
    { "sar r32,31", 0x7f5fbfed },
    { "sar r32,33", 0x6353e6d9 },
    { "sar r16,17", 0x12eaad8d },
    { "sar r8,9", 0x7e806709 },
    { "sar m32,7", 0x940b0aa9 },
    { "rol r32,1", 0x58b1f809 },
    { "rol r16,1", 0xe7698ec1 },
    { "rol r8,1", 0x6b7fc73d },
    { "rol ah,1", 0x7e8ef8a1 },
    { "rol m32,1", 0x27db5295 },
    { "rol m16,1", 0x43a1e1bd },
    { "rol m8,1", 0x6524303d },
    { "rol r32,cl", 0xf407be59 },
    { "rol r16,cl", 0xa6e69f9d },
    { "rol r8,cl", 0xf461bc89 },
    { "rol bh,cl", 0x8956fdad },
    { "rol m32,cl", 0xd14f4e95 },
    { "rol m16,cl", 0xc8f870b1 },
    { "rol m8,cl", 0x7df07d35 },
    { "rol r32,0", 0x473f6e55 },
    { "rol r32,imm 1 (c1 form)", 0x1af89cd9 },
    { "rol r32,5", 0x8d30a24d },
    { "rol r32,31", 0xa7eae1c1 },
    { "rol r32,33", 0x58b1f809 },
    { "rol r16,17", 0xdb6c2a71 },
    { "rol r8,9", 0x116fe7dd },
    { "rol m32,7", 0xf9cbf575 },
    { "ror r32,1", 0xa42451a1 },
    { "ror r16,1", 0x11e2dbf1 },
    { "ror r8,1", 0xd82370b1 },
    { "ror ah,1", 0x7bc6c525 },
    { "ror m32,1", 0x9ff7f609 },
    { "ror m16,1", 0x1a36a4e9 },
    { "ror m8,1", 0xa80e4ce9 },
    { "ror r32,cl", 0x51cb21f5 },
    { "ror r16,cl", 0xdd3c3041 },
    { "ror r8,cl", 0x4f18b149 },
    { "ror bh,cl", 0xeaed8505 },
    { "ror m32,cl", 0xb426c26d },
    { "ror m16,cl", 0xad8e523d },
    { "ror m8,cl", 0x6a56f46d },
    { "ror r32,0", 0x473f6e55 },
    { "ror r32,imm 1 (c1 form)", 0x5ab0de51 },
    { "ror r32,5", 0x0fdd91d5 },
    { "ror r32,31", 0x77ee0e41 },
    { "ror r32,33", 0xa42451a1 },
    { "ror r16,17", 0x50d1e271 },
    { "ror r8,9", 0x9bbccd31 },
    { "ror m32,7", 0xdf9f34fd },
    { "rcl r32,1", 0x805a85e9 },
    { "rcl r16,1", 0x13eed1d5 },
    { "rcl r8,1", 0x531c9f5d },
    { "rcl ah,1", 0xf21e87a9 },
    { "rcl m32,1", 0x0a800365 },
    { "rcl m16,1", 0xa7807c81 },
    { "rcl m8,1", 0xf94db415 },
    { "rcl r32,cl", 0xc0dac5b9 },
    { "rcl r16,cl", 0x2c526dd1 },
    { "rcl r8,cl", 0xac406965 },
    { "rcl bh,cl", 0x5030e4a9 },
    { "rcl m32,cl", 0xb6a0b715 },
    { "rcl m16,cl", 0xc94778c1 },
    { "rcl m8,cl", 0xc5f779f1 },
    { "rcl r32,0", 0x473f6e55 },
    { "rcl r32,imm 1 (c1 form)", 0x828aa469 },
    { "rcl r32,5", 0x01de5c29 },
    { "rcl r32,31", 0x81917469 },
    { "rcl r32,33", 0x805a85e9 },
    { "rcl r16,17", 0x58a7f9b5 },
    { "rcl r8,9", 0x58a7f9b5 },
    { "rcl m32,7", 0x65a4aaf9 },
    { "rcr r32,1", 0x7b646651 },
    { "rcr r16,1", 0x3c8e1041 },
    { "rcr r8,1", 0x83c5e241 },
    { "rcr ah,1", 0xb29b90b5 },
    { "rcr m32,1", 0xcb434269 },
    { "rcr m16,1", 0xcd3562c9 },
    { "rcr m8,1", 0x89e42749 },
    { "rcr r32,cl", 0xe6dd82a1 },
    { "rcr r16,cl", 0x070afdb5 },
    { "rcr r8,cl", 0xeda648c1 },
    { "rcr bh,cl", 0x79e5eccd },
    { "rcr m32,cl", 0xc922a905 },
    { "rcr m16,cl", 0x91e985dd },
    { "rcr m8,cl", 0x57cff5c9 },
    { "rcr r32,0", 0x473f6e55 },
    { "rcr r32,imm 1 (c1 form)", 0x17663851 },
    { "rcr r32,5", 0x887ed5d5 },
    { "rcr r32,31", 0xc0e0d589 },
    { "rcr r32,33", 0x7b646651 },
    { "rcr r16,17", 0x58a7f9b5 },
    { "rcr r8,9", 0x58a7f9b5 },
    { "rcr m32,7", 0x6b65a231 },
    { "sal r32,cl", 0x13ea4965 },
    { "shld r32,r32,0", 0x473f6e55 },
    { "shld r32,r32,1", 0xa424f8d1 },
    { "shld r32,r32,12", 0xa3ce7e4d },
    { "shld r32,r32,31", 0x63984941 },
    { "shld r32,r32,cl", 0x544f2325 },
    { "shld r16,r16,cl", 0xdedfc895 },
    { "shld r16,r16,5", 0x3f1412b1 },
    { "shld m32,r32,cl", 0x64c775fd },
    { "shld m16,r16,9", 0x41ec6c81 },
    { "shrd r32,r32,0", 0x473f6e55 },
    { "shrd r32,r32,1", 0xe9d07f39 },
    { "shrd r32,r32,12", 0x5ee03c45 },
    { "shrd r32,r32,31", 0x873056cd },
    { "shrd r32,r32,cl", 0x98eae1b9 },
    { "shrd r16,r16,cl", 0xcfc50641 },
    { "shrd r16,r16,5", 0xb66c90a1 },
    { "shrd m32,r32,cl", 0x968d4245 },
    { "shrd m16,r16,9", 0x37db9c05 },
};
const unsigned sweep_nhashes = N(sweep_hashes);
/* END HASHES */
