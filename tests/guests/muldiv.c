/*
 * muldiv - multiplication, division and BCD arithmetic.
 *
 * mul/imul with one operand (8/16/32-bit, register and memory), imul r,r/m and
 * r,r/m,imm8/imm32 (16 and 32 bits); div/idiv (8/16/32-bit) over dividends that fit,
 * overflow or divide by zero: #DE (vector 0) must leave every register as it was (precise
 * fault, checked through the sweep hash) and points at the div; aam/aad (base 10, 16, 7;
 * aam 0 raises #DE); daa/das/aaa/aas over every AL with both AH extremes and each
 * combination of CF and AF.
 *
 * Only defined flags are compared: CF/OF after mul/imul; none after div/idiv; SF ZF PF after
 * aam/aad; CF AF SF ZF PF after daa/das; CF AF after aaa/aas.
 */
#include "sweep.h"

#define MULF (FL_CF | FL_OF)

STUB(mul8, "mul %bl")
STUB(mul8h, "mul %bh")
STUB(mul16, "mul %bx")
STUB(mul32, "mul %ebx")
STUB(mul32m, "mov %ebx, 4(%esi)\n\tmull 4(%esi)")
STUB(mul16m, "mov %ebx, 5(%esi)\n\tmulw 5(%esi)")
STUB(mul8m, "mov %ebx, 6(%esi)\n\tmulb 6(%esi)")
STUB(imul8, "imul %bl")
STUB(imul16, "imul %bx")
STUB(imul32, "imul %ebx")
STUB(imul32m, "mov %ebx, 4(%esi)\n\timull 4(%esi)")
STUB(imul8m, "mov %ebx, 6(%esi)\n\timulb 6(%esi)")
STUB(imul2_32, "imul %ebx, %eax")
STUB(imul2_16, "imul %bx, %ax")
STUB(imul2_32m, "mov %ebx, 4(%esi)\n\timul 4(%esi), %eax")
STUB(imul3_i8, "imul $-7, %ebx, %eax")
STUB(imul3_i8p, "imul $0x7f, %ebx, %ecx")
STUB(imul3_i32, "imul $0x12345, %ebx, %eax")
STUB(imul3_i16, "imul $0x1234, %bx, %ax")
STUB(imul3_i8_16, "imul $-128, %bx, %dx")
STUB(imul3_m_i32, "mov %ebx, 4(%esi)\n\timul $0x7654321, 4(%esi), %edx")

/* Division: any fault resumes after the instruction with the registers untouched; the
 * sweep hashes that a fault happened and its vector. */
#define DIV(name, body) STUB(name, "movl $1f, rt_resume_eip\n\t" body "\n1:\tmovl $0, rt_resume_eip")
DIV(div8, "div %bl")
DIV(div8h, "div %bh")
DIV(div16, "mov %ecx, %edx\n\tdiv %bx")
DIV(div16z, "xor %edx, %edx\n\tdiv %bx")
DIV(div32, "mov %ecx, %edx\n\tdiv %ebx")
DIV(div32z, "xor %edx, %edx\n\tdiv %ebx")
DIV(div32m, "xor %edx, %edx\n\tmov %ebx, 4(%esi)\n\tdivl 4(%esi)")
DIV(div8m, "mov %ebx, 4(%esi)\n\tdivb 4(%esi)")
DIV(idiv8, "idiv %bl")
DIV(idiv16, "mov %ecx, %edx\n\tidiv %bx")
DIV(idiv16s, "cwtd\n\tidiv %bx")
DIV(idiv32, "mov %ecx, %edx\n\tidiv %ebx")
DIV(idiv32s, "cltd\n\tidiv %ebx")
DIV(idiv32m, "cltd\n\tmov %ebx, 4(%esi)\n\tidivl 4(%esi)")
DIV(aam10, "aam")
DIV(aam16, "aam $16")
DIV(aam0, "aam $0")
STUB(aad10, "aad")
STUB(aad16, "aad $16")
STUB(aad7, "aad $7")
STUB(daa, "daa")
STUB(das, "das")
STUB(aaa, "aaa")
STUB(aas, "aas")

static struct sweep mul_sweeps[] = {
    { "mul r8", mul8, MULF, 0, 0 }, { "mul bh", mul8h, MULF, 0, 0 },
    { "mul r16", mul16, MULF, 0, 0 }, { "mul r32", mul32, MULF, 0, 0 },
    { "mul m32", mul32m, MULF, 0, 0 }, { "mul m16", mul16m, MULF, 0, 0 },
    { "mul m8", mul8m, MULF, 0, 0 },
    { "imul r8", imul8, MULF, 0, 0 }, { "imul r16", imul16, MULF, 0, 0 },
    { "imul r32", imul32, MULF, 0, 0 }, { "imul m32", imul32m, MULF, 0, 0 },
    { "imul m8", imul8m, MULF, 0, 0 },
    { "imul r32,r32", imul2_32, MULF, 0, 0 }, { "imul r16,r16", imul2_16, MULF, 0, 0 },
    { "imul r32,m32", imul2_32m, MULF, 0, 0 },
    { "imul r32,r32,imm8 (-7)", imul3_i8, MULF, 0, 0 },
    { "imul r32,r32,imm8 (0x7f)", imul3_i8p, MULF, 0, 0 },
    { "imul r32,r32,imm32", imul3_i32, MULF, 0, 0 },
    { "imul r16,r16,imm16", imul3_i16, MULF, 0, 0 },
    { "imul r16,r16,imm8", imul3_i8_16, MULF, 0, 0 },
    { "imul r32,m32,imm32", imul3_m_i32, MULF, 0, 0 },
};
/* QEMU 7.2 itself dies of SIGFPE on idiv r/m32 with EDX:EAX = 0x8000000000000000 and a
 * divisor of -1 (it divides INT64_MIN by -1 on the host); hardware raises #DE.  That one
 * input is left out. */
static uint32_t idiv32_mask(const struct sweep *s, const struct regs *in)
{
    if (in->ecx == 0x80000000 && in->eax == 0 && in->ebx == 0xffffffff)
        return SWEEP_SKIP;
    return 0;
}

static struct sweep div_sweeps[] = {
    { "div r8", div8, 0, 0, 0 }, { "div bh", div8h, 0, 0, 0 },
    { "div r16 (dx from ecx)", div16, 0, 0, 0 }, { "div r16 (dx = 0)", div16z, 0, 0, 0 },
    { "div r32 (edx from ecx)", div32, 0, 0, 0 }, { "div r32 (edx = 0)", div32z, 0, 0, 0 },
    { "div m32", div32m, 0, 0, 0 }, { "div m8", div8m, 0, 0, 0 },
    { "idiv r8", idiv8, 0, 0, 0 }, { "idiv r16 (dx from ecx)", idiv16, 0, 0, 0 },
    { "idiv r16 (cwd)", idiv16s, 0, 0, 0 }, { "idiv r32 (edx from ecx)", idiv32, 0, idiv32_mask, 0 },
    { "idiv r32 (cdq)", idiv32s, 0, 0, 0 }, { "idiv m32 (cdq)", idiv32m, 0, 0, 0 },
};
#define SZP (FL_SF | FL_ZF | FL_PF)
static struct sweep bcd_sweeps[] = {
    { "aam", aam10, SZP, 0, 0 }, { "aam 16", aam16, SZP, 0, 0 }, { "aam 0 (#DE)", aam0, 0, 0, 0 },
    { "aad", aad10, SZP, 0, 0 }, { "aad 16", aad16, SZP, 0, 0 }, { "aad 7", aad7, SZP, 0, 0 },
    { "daa", daa, FL_CF | FL_AF | SZP, 0, 0 }, { "das", das, FL_CF | FL_AF | SZP, 0, 0 },
    { "aaa", aaa, FL_CF | FL_AF, 0, 0 }, { "aas", aas, FL_CF | FL_AF, 0, 0 },
};

static const uint32_t vals[] = {
    0, 1, 2, 3, 7, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x12345678,
    0x7fffffff, 0x80000000, 0x80000001, 0xfffffffe, 0xffffffff, 0xdeadbeef, 0x00ff00ff,
    0xff00ff00,
};
static const uint32_t edx_vals[] = { 0, 1, 0x7fffffff, 0x80000000, 0xffffffff };
static const uint32_t one[] = { 0x13579bdf };
static const uint32_t flags0[] = { 0 };
static const uint32_t bcd_flags[] = { 0, FL_CF, FL_AF, FL_CF | FL_AF, FL_ARITH };
static uint32_t bcd_vals[512];

static struct regs run(void (*stub)(void), uint32_t eax, uint32_t ebx, uint32_t ecx, uint32_t fl)
{
    struct regs in = { eax, ebx, ecx, 0, 0, 0, 0, fl }, out;
    rt_clear_last();
    rt_exec(&in, &out, stub);
    return out;
}

static void known_answers(void)
{
    struct regs r;
    r = run(mul32, 0xffffffff, 0xffffffff, 0, 0);
    is(r.eax, 0x00000001, "mul 0xffffffff * 0xffffffff: low");
    is(r.edx, 0xfffffffe, "mul 0xffffffff * 0xffffffff: high");
    is(r.eflags & MULF, MULF, "mul with a high half: CF OF");
    r = run(imul32, 0xffffffff, 0xffffffff, 0, 0);
    is(r.edx, 0, "imul -1 * -1: edx = 0");
    is(r.eflags & MULF, 0, "imul -1 * -1: CF OF clear");
    r = run(imul2_16, 0x12344000, 0x00000002, 0, 0);
    is(r.eax, 0x12348000, "imul ax, bx keeps the upper half");
    is(r.eflags & MULF, MULF, "imul ax: 0x4000 * 2 overflows 16 bits");
    r = run(imul2_16, 0x1234c000, 0x00000002, 0, 0);
    is(r.eflags & MULF, 0, "imul ax: 0xc000 * 2 = -32768 fits");
    r = run(div32, 0x00000001, 0x00000010, 0x00000001, 0);
    is(r.eax, 0x10000000, "div (1:1) / 16 quotient");
    is(r.edx, 0x00000001, "div (1:1) / 16 remainder");
    r = run(div32z, 1234, 0, 0, 0);
    is(rt_last.vector, 0, "div by 0 raises #DE");
    is(r.eax, 1234, "div by 0: eax untouched");
    r = run(idiv32s, 0x80000000, 0xffffffff, 0, 0);
    is(rt_last.vector, 0, "idiv 0x80000000 / -1 raises #DE");
    r = run(idiv8, 0xff85, 0x10, 0, 0);     /* -123 / 16 = -7 rem -11 */
    is(r.eax & 0xffff, 0xf5f9, "idiv -123 / 16: quotient -7, remainder -11");
    r = run(aam10, 0x0000004f, 0, 0, 0);
    is(r.eax, 0x00000709, "aam 79 = 7:9");
    r = run(aad10, 0x00000709, 0, 0, 0);
    is(r.eax, 0x0000004f, "aad 7:9 = 79");
    r = run(daa, 0x0000009a, 0, 0, 0);
    is(r.eax & 0xff, 0x00, "daa 0x9a = 0x00");
    is(r.eflags & (FL_CF | FL_AF | FL_ZF), FL_CF | FL_AF | FL_ZF, "daa 0x9a: CF AF ZF");
    r = run(aaa, 0x0000000b, 0, 0, 0);
    is(r.eax & 0xffff, 0x0101, "aaa 0x0b = 0x0101");
}

void test_main(void)
{
    struct sweep_space mul_space = { vals, N(vals), vals, N(vals), one, 1, flags0, 1 };
    struct sweep_space div_space = { vals, N(vals), vals, N(vals), edx_vals, N(edx_vals), flags0, 1 };
    for (unsigned i = 0; i < 512; i++)
        bcd_vals[i] = (i & 0xff) | (i & 0x100 ? 0x1234ff00 : 0x56780000);
    struct sweep_space bcd_space = { bcd_vals, 512, one, 1, one, 1, bcd_flags, N(bcd_flags) };
    sweep_all(mul_sweeps, N(mul_sweeps), &mul_space);
    sweep_all(div_sweeps, N(div_sweeps), &div_space);
    sweep_all(bcd_sweeps, N(bcd_sweeps), &bcd_space);
    known_answers();
}

/* BEGIN HASHES (recorded on hardware by host/record-hashes.py) */
const struct sweep_hash sweep_hashes[] = {
    { "mul r8", 0x1f887bb8 },
    { "mul bh", 0xed5b6c86 },
    { "mul r16", 0xc6837119 },
    { "mul r32", 0x654dbe28 },
    { "mul m32", 0xa78cbd78 },
    { "mul m16", 0x9fd89a85 },
    { "mul m8", 0x86c93fb4 },
    { "imul r8", 0xd327749b },
    { "imul r16", 0xa490b895 },
    { "imul r32", 0xfe5def30 },
    { "imul m32", 0x14ee65fc },
    { "imul m8", 0x20087937 },
    { "imul r32,r32", 0x12a1fccc },
    { "imul r16,r16", 0x8ef34659 },
    { "imul r32,m32", 0x1d717d90 },
    { "imul r32,r32,imm8 (-7)", 0xade7951d },
    { "imul r32,r32,imm8 (0x7f)", 0x4bca9249 },
    { "imul r32,r32,imm32", 0xc2eb4839 },
    { "imul r16,r16,imm16", 0x4d65cb49 },
    { "imul r16,r16,imm8", 0xc52254b9 },
    { "imul r32,m32,imm32", 0x88d94999 },
    { "div r8", 0x015fa2e8 },
    { "div bh", 0x5f551dfd },
    { "div r16 (dx from ecx)", 0xdb823a46 },
    { "div r16 (dx = 0)", 0x0f68e692 },
    { "div r32 (edx from ecx)", 0x17121251 },
    { "div r32 (edx = 0)", 0x7a6a5526 },
    { "div m32", 0x7ec5b3da },
    { "div m8", 0xf4087ed4 },
    { "idiv r8", 0xafdcd9de },
    { "idiv r16 (dx from ecx)", 0x57e84278 },
    { "idiv r16 (cwd)", 0x654a5dae },
    { "idiv r32 (edx from ecx)", 0xce2384d5 },
    { "idiv r32 (cdq)", 0x29f2c6dd },
    { "idiv m32 (cdq)", 0x46a32811 },
    { "aam", 0x61f60af1 },
    { "aam 16", 0xe5fe3345 },
    { "aam 0 (#DE)", 0xec91e9c5 },
    { "aad", 0x43dcaa45 },
    { "aad 16", 0x2387a745 },
    { "aad 7", 0xce73bac5 },
    { "daa", 0x832e93e5 },
    { "das", 0x20cd6005 },
    { "aaa", 0x218099c5 },
    { "aas", 0xb1030205 },
};
const unsigned sweep_nhashes = N(sweep_hashes);
/* END HASHES */
