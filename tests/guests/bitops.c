/*
 * bitops - bit tests, bit scans and condition codes.
 *
 * bt/bts/btr/btc with register and immediate bit offsets on registers (16/32-bit) and
 * memory, where a register offset addresses bits outside the operand, below it too
 * (signed); bsf/bsr (16/32-bit, register and memory; the destination is undefined for a
 * zero source, so only ZF is compared then); setcc (to a low and a high byte register and
 * to memory), cmovcc (32/16-bit, register and memory source) and jcc (short and near forms)
 * for all 16 conditions under every combination of CF PF ZF SF OF; tzcnt/lzcnt encodings
 * (f3 0f bc / f3 0f bd), which a CPU without BMI1/LZCNT executes as bsf/bsr: the result
 * must match what CPUID says the CPU has.
 *
 * Defined flags: bt* set CF and leave ZF alone (OF SF AF PF undefined); bsf/bsr set ZF only.
 */
#include "sweep.h"

#define BT_FORMS(op)                                                                      \
    STUB(op##_r32, #op " %ebx, %eax")                                                     \
    STUB(op##_r16, #op " %bx, %ax")                                                       \
    STUB(op##_i32, #op " $13, %eax")                                                      \
    STUB(op##_i32b, #op " $45, %eax")                                                     \
    STUB(op##_i16, #op " $19, %ax")                                                       \
    STUB(op##_m32r, #op " %ebx, 32(%esi)")                                                \
    STUB(op##_m16r, #op " %bx, 32(%esi)")                                                 \
    STUB(op##_m32i, #op "l $35, 8(%esi)")                                                 \
    STUB(op##_m16i, #op "w $7, 9(%esi)")
#define BTF (FL_CF | FL_ZF)
#define BT_REG_TABLE(op)                                                                 \
    { #op " r32,r32", op##_r32, BTF, 0, 0 }, { #op " r16,r16", op##_r16, BTF, 0, 0 },     \
    { #op " r32,13", op##_i32, BTF, 0, 0 }, { #op " r32,45", op##_i32b, BTF, 0, 0 },      \
    { #op " r16,19", op##_i16, BTF, 0, 0 }, { #op " m32,35", op##_m32i, BTF, 0, 0 },      \
    { #op " m16,7", op##_m16i, BTF, 0, 0 },
#define BT_MEM_TABLE(op)                                                                 \
    { #op " m32,r32 (any bit offset)", op##_m32r, 0, bt_mem_mask, 32 },                  \
    { #op " m16,r16 (any bit offset)", op##_m16r, 0, bt_mem_mask, 16 },
/* Register bit offsets into memory are signed and may leave the operand; keep them
 * within the 64-byte scratch buffer (the operand is at its middle). */
static uint32_t bt_mem_mask(const struct sweep *s, const struct regs *in)
{
    int32_t off = s->arg == 16 ? (int16_t)in->ebx : (int32_t)in->ebx;
    return off >= -256 && off < 256 ? BTF : SWEEP_SKIP;
}
BT_FORMS(bt)
BT_FORMS(bts)
BT_FORMS(btr)
BT_FORMS(btc)

static struct sweep bt_reg_sweeps[] = {
    BT_REG_TABLE(bt) BT_REG_TABLE(bts) BT_REG_TABLE(btr) BT_REG_TABLE(btc)
};
static struct sweep bt_mem_sweeps[] = {
    BT_MEM_TABLE(bt) BT_MEM_TABLE(bts) BT_MEM_TABLE(btr) BT_MEM_TABLE(btc)
};

STUB(bsf32, "mov $0x5a5a5a5a, %ecx\n\tbsf %ebx, %ecx")
STUB(bsr32, "mov $0x5a5a5a5a, %ecx\n\tbsr %ebx, %ecx")
STUB(bsf16, "mov $0x5a5a5a5a, %ecx\n\tbsf %bx, %cx")
STUB(bsr16, "mov $0x5a5a5a5a, %ecx\n\tbsr %bx, %cx")
STUB(bsf32m, "mov %ebx, 4(%esi)\n\tbsf 4(%esi), %eax")
STUB(bsr32m, "mov %ebx, 4(%esi)\n\tbsr 4(%esi), %eax")
STUB(bsf_zf, "bsf %ebx, %ecx\n\tmov $0, %ecx")
STUB(bsr_zf, "bsr %ebx, %ecx\n\tmov $0, %ecx")
STUB(bsf16_zf, "bsf %bx, %cx\n\tmov $0, %ecx")
STUB(bsr16_zf, "bsr %bx, %cx\n\tmov $0, %ecx")

/* The destination of bsf/bsr is undefined for a zero source: leave those inputs out. */
static uint32_t scan_mask(const struct sweep *s, const struct regs *in)
{
    uint32_t src = s->arg == 16 ? (in->ebx & 0xffff) : in->ebx;
    return src ? FL_ZF : SWEEP_SKIP;
}
static struct sweep scan_sweeps[] = {
    { "bsf r32,r32", bsf32, 0, scan_mask, 32 }, { "bsr r32,r32", bsr32, 0, scan_mask, 32 },
    { "bsf r16,r16", bsf16, 0, scan_mask, 16 }, { "bsr r16,r16", bsr16, 0, scan_mask, 16 },
    { "bsf r32,m32", bsf32m, 0, scan_mask, 32 }, { "bsr r32,m32", bsr32m, 0, scan_mask, 32 },
    { "bsf ZF", bsf_zf, FL_ZF, 0, 0 }, { "bsr ZF", bsr_zf, FL_ZF, 0, 0 },
    { "bsf r16 ZF", bsf16_zf, FL_ZF, 0, 0 }, { "bsr r16 ZF", bsr16_zf, FL_ZF, 0, 0 },
};

/* Condition codes: every cc, with flags from the sweep. */
#define CC_FORMS(cc)                                                                     \
    STUB(set##cc##_al, "set" #cc " %al")                                                  \
    STUB(set##cc##_bh, "set" #cc " %bh")                                                  \
    STUB(set##cc##_m, "set" #cc " 5(%esi)")                                               \
    STUB(cmov##cc##_32, "cmov" #cc " %ebx, %eax")                                         \
    STUB(cmov##cc##_16, "cmov" #cc " %bx, %ax")                                           \
    STUB(cmov##cc##_m, "cmov" #cc " 4(%esi), %ecx")                                       \
    STUB(j##cc##_short, "j" #cc " 1f\n\tmov $1, %eax\n\tjmp 2f\n1:\tmov $2, %eax\n2:")    \
    STUB(j##cc##_near, "{disp32} j" #cc " 1f\n\tmov $1, %eax\n\tjmp 2f\n1:\tmov $2, %eax\n2:")
#define CC_TABLE(cc)                                                                     \
    { "set" #cc " al", set##cc##_al, FL_ARITH, 0, 0 },                                     \
    { "set" #cc " bh", set##cc##_bh, FL_ARITH, 0, 0 },                                     \
    { "set" #cc " m8", set##cc##_m, FL_ARITH, 0, 0 },                                      \
    { "cmov" #cc " r32", cmov##cc##_32, FL_ARITH, 0, 0 },                                  \
    { "cmov" #cc " r16", cmov##cc##_16, FL_ARITH, 0, 0 },                                  \
    { "cmov" #cc " r32,m32", cmov##cc##_m, FL_ARITH, 0, 0 },                               \
    { "j" #cc " short", j##cc##_short, FL_ARITH, 0, 0 },                                   \
    { "j" #cc " near", j##cc##_near, FL_ARITH, 0, 0 },
CC_FORMS(o) CC_FORMS(no) CC_FORMS(b) CC_FORMS(ae) CC_FORMS(e) CC_FORMS(ne) CC_FORMS(be)
CC_FORMS(a) CC_FORMS(s) CC_FORMS(ns) CC_FORMS(p) CC_FORMS(np) CC_FORMS(l) CC_FORMS(ge)
CC_FORMS(le) CC_FORMS(g)
static struct sweep cc_sweeps[] = {
    CC_TABLE(o) CC_TABLE(no) CC_TABLE(b) CC_TABLE(ae) CC_TABLE(e) CC_TABLE(ne) CC_TABLE(be)
    CC_TABLE(a) CC_TABLE(s) CC_TABLE(ns) CC_TABLE(p) CC_TABLE(np) CC_TABLE(l) CC_TABLE(ge)
    CC_TABLE(le) CC_TABLE(g)
};

static const uint32_t vals[] = {
    0, 1, 0x80, 0x8000, 0x12345678, 0x7fffffff, 0x80000000, 0xffffffff, 0xdeadbeef,
    0x00010000, 0x0000fff0, 0x55aa55aa,
};
static const uint32_t bit_offsets[] = {
    0, 1, 15, 16, 31, 32, 33, 63, 100, 255, 0xffffffff, 0xffffffe0, 0xffffffdf, 0xffffff00,
    0x0000ffff, 0x0000fff0,
};
static const uint32_t one[] = { 0x13579bdf };
static const uint32_t bt_flags[] = { 0, FL_ZF, FL_ARITH };
static uint32_t cc_flags[32];
static const uint32_t cc_vals[] = { 0x11111111 };
static const uint32_t cc_vals_b[] = { 0x22228222 };

STUB(tzcnt_stub, "mov $0x77, %ecx\n\t.byte 0xf3, 0x0f, 0xbc, 0xcb")   /* tzcnt ecx, ebx */
STUB(lzcnt_stub, "mov $0x77, %ecx\n\t.byte 0xf3, 0x0f, 0xbd, 0xcb")   /* lzcnt ecx, ebx */

static void tzcnt_lzcnt(void)
{
    uint32_t a, b, c, d, max, bmi1 = 0, lzcnt = 0;
    cpuid(0, &max, &b, &c, &d);
    if (max >= 7) {
        cpuid(7, &a, &b, &c, &d);
        bmi1 = (b >> 3) & 1;
    }
    cpuid(0x80000000, &max, &b, &c, &d);
    if (max >= 0x80000001) {
        cpuid(0x80000001, &a, &b, &c, &d);
        lzcnt = (c >> 5) & 1;
    }
    struct regs in = { 0, 0, 0, 0, 0, 0, 0, 0 }, out;
    in.ebx = 0x00f00000;
    rt_exec(&in, &out, tzcnt_stub);
    is(out.ecx, 20, "f3 0f bc on 0x00f00000 = 20 (tzcnt or bsf)");
    rt_exec(&in, &out, lzcnt_stub);
    is(out.ecx, lzcnt ? 8 : 23, "f3 0f bd on 0x00f00000: lzcnt 8 or bsr 23, as CPUID says");
    in.ebx = 0;
    rt_exec(&in, &out, tzcnt_stub);
    if (bmi1)
        ok(out.ecx == 32 && (out.eflags & FL_CF), "f3 0f bc on 0 as CPUID says");
    else
        ok(out.eflags & FL_ZF, "f3 0f bc on 0 as CPUID says");
    rt_exec(&in, &out, lzcnt_stub);
    if (lzcnt)
        ok(out.ecx == 32 && (out.eflags & FL_CF), "f3 0f bd on 0 as CPUID says");
    else
        ok(out.eflags & FL_ZF, "f3 0f bd on 0 as CPUID says");
}

static void known_answers(void)
{
    struct regs in = { 0x00000010, 4, 0, 0, 0, 0, 0, FL_ZF }, out;
    rt_exec(&in, &out, bt_r32);
    is(out.eflags & (FL_CF | FL_ZF), FL_CF | FL_ZF, "bt eax, 4: CF = 1, ZF unchanged");
    in.ebx = 36;
    rt_exec(&in, &out, btr_r32);
    is(out.eax, 0, "btr eax, 36 clears bit 4 (offset mod 32)");
    in.esi = (uint32_t)sweep_buf;
    in.ebx = 0xffffffff;            /* bit -1: bit 7 of the byte before */
    sweep_fill();
    sweep_buf[31] = 0x00;
    rt_exec(&in, &out, bts_m32r);
    is(sweep_buf[31], 0x80, "bts m32, -1 sets bit 7 of the byte before the operand");
    in.ebx = 0x80000000;
    rt_exec(&in, &out, bsr32);
    is(out.ecx, 31, "bsr 0x80000000 = 31");
    rt_exec(&in, &out, bsf32);
    is(out.ecx, 31, "bsf 0x80000000 = 31");
    in.ebx = 0;
    rt_exec(&in, &out, bsf_zf);
    is(out.eflags & FL_ZF, FL_ZF, "bsf 0 sets ZF");
}

void test_main(void)
{
    struct sweep_space bt_reg = { vals, N(vals), bit_offsets, N(bit_offsets), one, 1, bt_flags, N(bt_flags) };
    struct sweep_space bt_mem = { one, 1, bit_offsets, N(bit_offsets), one, 1, bt_flags, N(bt_flags) };
    struct sweep_space scan = { one, 1, vals, N(vals), one, 1, bt_flags, N(bt_flags) };
    static const uint32_t bits[5] = { FL_CF, FL_PF, FL_ZF, FL_SF, FL_OF };
    for (unsigned i = 0; i < 32; i++) {
        cc_flags[i] = 0;
        for (unsigned j = 0; j < 5; j++)
            if (i & (1u << j))
                cc_flags[i] |= bits[j];
    }
    struct sweep_space cc = { cc_vals, 1, cc_vals_b, 1, one, 1, cc_flags, 32 };
    sweep_all(bt_reg_sweeps, N(bt_reg_sweeps), &bt_reg);
    sweep_all(bt_mem_sweeps, N(bt_mem_sweeps), &bt_mem);
    static const uint32_t scan_vals[] = {
        0, 1, 2, 0x80, 0x8000, 0x10000, 0x12345678, 0x80000000, 0xffffffff, 0x00f00000,
        0x0000fff0, 0x00008001, 0x40000000, 0x80000001,
    };
    scan.b = scan_vals;
    scan.nb = N(scan_vals);
    sweep_all(scan_sweeps, N(scan_sweeps), &scan);
    sweep_all(cc_sweeps, N(cc_sweeps), &cc);
    tzcnt_lzcnt();
    known_answers();
}

/* BEGIN HASHES (recorded on hardware by host/record-hashes.py) */
const struct sweep_hash sweep_hashes[] = {
    { "bt r32,r32", 0x7e345000 },
    { "bt r16,r16", 0x74a82c80 },
    { "bt r32,13", 0x0cbe5eb9 },
    { "bt r32,45", 0x0cbe5eb9 },
    { "bt r16,19", 0x90c55679 },
    { "bt m32,35", 0xd83f7131 },
    { "bt m16,7", 0xd83f7131 },
    { "bts r32,r32", 0x193a1b30 },
    { "bts r16,r16", 0x0ab8ee68 },
    { "bts r32,13", 0x5e0007f9 },
    { "bts r32,45", 0x5e0007f9 },
    { "bts r16,19", 0x133c9129 },
    { "bts m32,35", 0xd83f7131 },
    { "bts m16,7", 0xd83f7131 },
    { "btr r32,r32", 0x13cdd500 },
    { "btr r16,r16", 0x1d9c1d88 },
    { "btr r32,13", 0x350f3e39 },
    { "btr r32,45", 0x350f3e39 },
    { "btr r16,19", 0x26db86c9 },
    { "btr m32,35", 0x4ea4b491 },
    { "btr m16,7", 0x9264c631 },
    { "btc r32,r32", 0x99537398 },
    { "btc r16,r16", 0x6191c7d0 },
    { "btc r32,13", 0xb7c12f79 },
    { "btc r32,45", 0xb7c12f79 },
    { "btc r16,19", 0x319a9079 },
    { "btc m32,35", 0x4ea4b491 },
    { "btc m16,7", 0x9264c631 },
    { "bt m32,r32 (any bit offset)", 0x58b52131 },
    { "bt m16,r16 (any bit offset)", 0x18e35b4e },
    { "bts m32,r32 (any bit offset)", 0xdef7bb4d },
    { "bts m16,r16 (any bit offset)", 0xb8812ef2 },
    { "btr m32,r32 (any bit offset)", 0xf49d0698 },
    { "btr m16,r16 (any bit offset)", 0x29f2a27a },
    { "btc m32,r32 (any bit offset)", 0xd7cdac94 },
    { "btc m16,r16 (any bit offset)", 0x5f0c81be },
    { "bsf r32,r32", 0x80e799e4 },
    { "bsr r32,r32", 0x51d55668 },
    { "bsf r16,r16", 0xc1cf734c },
    { "bsr r16,r16", 0xec87d9b2 },
    { "bsf r32,m32", 0x3f8696fb },
    { "bsr r32,m32", 0xa88a4d03 },
    { "bsf ZF", 0x1f3caa5e },
    { "bsr ZF", 0x1f3caa5e },
    { "bsf r16 ZF", 0xf03c88de },
    { "bsr r16 ZF", 0xf03c88de },
    { "seto al", 0x5e54d105 },
    { "seto bh", 0xb6f79065 },
    { "seto m8", 0x8e3e0545 },
    { "cmovo r32", 0xdd8ffda5 },
    { "cmovo r16", 0x86ff9305 },
    { "cmovo r32,m32", 0x8aeaaec5 },
    { "jo short", 0xee435385 },
    { "jo near", 0xee435385 },
    { "setno al", 0xe201cc85 },
    { "setno bh", 0x892fdae5 },
    { "setno m8", 0x9fc60a85 },
    { "cmovno r32", 0x789ce3e5 },
    { "cmovno r16", 0x40682985 },
    { "cmovno r32,m32", 0x0af48f05 },
    { "jno short", 0x2f0d4305 },
    { "jno near", 0x2f0d4305 },
    { "setb al", 0xf3bca605 },
    { "setb bh", 0x5fa03ce5 },
    { "setb m8", 0x7e907725 },
    { "cmovb r32", 0x2b9fa685 },
    { "cmovb r16", 0xe3588f65 },
    { "cmovb r32,m32", 0xe4182d25 },
    { "jb short", 0x10b6b785 },
    { "jb near", 0x10b6b785 },
    { "setae al", 0xce331a85 },
    { "setae bh", 0x31d07a65 },
    { "setae m8", 0xfdde4125 },
    { "cmovae r32", 0x02d53985 },
    { "cmovae r16", 0x61dd51a5 },
    { "cmovae r32,m32", 0xdc01be65 },
    { "jae short", 0xa7268245 },
    { "jae near", 0xa7268245 },
    { "sete al", 0x9025b405 },
    { "sete bh", 0xee09c865 },
    { "sete m8", 0x3b89fda5 },
    { "cmove r32", 0x37eb2c25 },
    { "cmove r16", 0x4c5cf045 },
    { "cmove r32,m32", 0xce914ee5 },
    { "je short", 0x08eae9a5 },
    { "je near", 0x08eae9a5 },
    { "setne al", 0x6968cf85 },
    { "setne bh", 0x17c10aa5 },
    { "setne m8", 0x3c5c8ba5 },
    { "cmovne r32", 0x30673b25 },
    { "cmovne r16", 0xca314b45 },
    { "cmovne r32,m32", 0x943f9765 },
    { "jne short", 0x63ab67e5 },
    { "jne near", 0x63ab67e5 },
    { "setbe al", 0x29874745 },
    { "setbe bh", 0x9be2ec45 },
    { "setbe m8", 0xc07b6d25 },
    { "cmovbe r32", 0x35c63b25 },
    { "cmovbe r16", 0x6884aa35 },
    { "cmovbe r32,m32", 0x61abbc15 },
    { "jbe short", 0x5b779a85 },
    { "jbe near", 0x5b779a85 },
    { "seta al", 0xedc1ecc5 },
    { "seta bh", 0x5aeb0ca5 },
    { "seta m8", 0x5ab25185 },
    { "cmova r32", 0x22b83ea5 },
    { "cmova r16", 0xc7f90f45 },
    { "cmova r32,m32", 0x75db0f15 },
    { "ja short", 0xc7513425 },
    { "ja near", 0xc7513425 },
    { "sets al", 0x2ba52405 },
    { "sets bh", 0x77a98425 },
    { "sets m8", 0xf14a1de5 },
    { "cmovs r32", 0x036dd085 },
    { "cmovs r16", 0x801822c5 },
    { "cmovs r32,m32", 0x8653ce25 },
    { "js short", 0x84208c85 },
    { "js near", 0x84208c85 },
    { "setns al", 0x14b17985 },
    { "setns bh", 0x0b622da5 },
    { "setns m8", 0x69a34e65 },
    { "cmovns r32", 0x310b9885 },
    { "cmovns r16", 0xa90e6bc5 },
    { "cmovns r32,m32", 0x835ec025 },
    { "jns short", 0x3f276705 },
    { "jns near", 0x3f276705 },
    { "setp al", 0x3296c305 },
    { "setp bh", 0x1b37a205 },
    { "setp m8", 0x04aca9a5 },
    { "cmovp r32", 0x47ba5bc5 },
    { "cmovp r16", 0xa3513b45 },
    { "cmovp r32,m32", 0x7f6685a5 },
    { "jp short", 0xb3a848a5 },
    { "jp near", 0xb3a848a5 },
    { "setnp al", 0xac672705 },
    { "setnp bh", 0xd5385785 },
    { "setnp m8", 0x56021425 },
    { "cmovnp r32", 0xecd53b05 },
    { "cmovnp r16", 0x380c7445 },
    { "cmovnp r32,m32", 0xb4f8ab25 },
    { "jnp short", 0x08e8c165 },
    { "jnp near", 0x08e8c165 },
    { "setl al", 0xcc87bb85 },
    { "setl bh", 0xb49edfa5 },
    { "setl m8", 0xec21dd65 },
    { "cmovl r32", 0x29de8285 },
    { "cmovl r16", 0x8cd849c5 },
    { "cmovl r32,m32", 0x80f60525 },
    { "jl short", 0x6c35b685 },
    { "jl near", 0x6c35b685 },
    { "setge al", 0x73cee205 },
    { "setge bh", 0xce6cd225 },
    { "setge m8", 0x6ecb8ee5 },
    { "cmovge r32", 0x0a9ae685 },
    { "cmovge r16", 0x9c4e44c5 },
    { "cmovge r32,m32", 0x88bc8925 },
    { "jge short", 0x2c40f305 },
    { "jge near", 0x2c40f305 },
    { "setle al", 0x1145ddc5 },
    { "setle bh", 0x473585a5 },
    { "setle m8", 0x0bd7afb5 },
    { "cmovle r32", 0x193d50e5 },
    { "cmovle r16", 0x93fd1d65 },
    { "cmovle r32,m32", 0xde147335 },
    { "jle short", 0xd30da3d5 },
    { "jle near", 0xd30da3d5 },
    { "setg al", 0x2a333ec5 },
    { "setg bh", 0x6eab76c5 },
    { "setg m8", 0x0172f715 },
    { "cmovg r32", 0xa8e297c5 },
    { "cmovg r16", 0x54eec7a5 },
    { "cmovg r32,m32", 0x509a35d5 },
    { "jg short", 0xe88d91b5 },
    { "jg near", 0xe88d91b5 },
};
const unsigned sweep_nhashes = N(sweep_hashes);
/* END HASHES */
