/*
 * alu - integer moves and ALU instructions with their flags.
 *
 * add adc sub sbb cmp and or xor test (register, memory, immediate forms in 8/16/32 bits,
 * AH..BH byte registers, the accumulator short forms), neg not inc dec (including the
 * one-byte inc/dec r32 and r16 forms 0x40-0x4f and the long ff /0 forms), mov in every
 * form (moffs too), movzx/movsx, xchg, lea (32- and 16-bit addressing, 16-bit operand),
 * cbw/cwde/cwd/cdq, bswap, xlat, lahf/sahf, clc/stc/cmc/std.
 *
 * Each instruction form is swept over operand values and both states of the input flags
 * (see lib/sweep.h); only architecturally defined flags are compared (AF after logic ops
 * is undefined and masked).  A few known answers are spelled out at the end.
 */
#include "sweep.h"

/* ---- binary ALU ops ----------------------------------------------------------------- */
#define BIN_FORMS(op)                                                                     \
    STUB(op##_rr32, #op " %ebx, %eax")                                                    \
    STUB(op##_rr32r, "{load} " #op " %ebx, %eax")                                         \
    STUB(op##_rr16, #op " %bx, %ax")                                                      \
    STUB(op##_rr8, #op " %bl, %al")                                                       \
    STUB(op##_rrh, #op " %bh, %ah")                                                       \
    STUB(op##_rrh2, #op " %al, %bh")                                                      \
    STUB(op##_rrh3, #op " %dh, %cl")                                                      \
    STUB(op##_mr32, #op " %ebx, 5(%esi)")                                                 \
    STUB(op##_rm32, #op " 7(%esi), %eax")                                                 \
    STUB(op##_mr16, #op " %bx, 3(%esi)")                                                  \
    STUB(op##_rm16, #op " 9(%esi), %ax")                                                  \
    STUB(op##_mr8, #op " %bh, 1(%esi)")                                                   \
    STUB(op##_rm8, #op " 2(%esi), %al")                                                   \
    STUB(op##_i8s32, #op " $0x7f, %eax")                                                  \
    STUB(op##_i8s32b, #op " $-128, %eax")                                                 \
    STUB(op##_i8s32c, "mov %eax, %ecx\n\t" #op " $-1, %ecx")                             \
    STUB(op##_i32acc, #op " $0x12345678, %eax")                                           \
    STUB(op##_i32c, "mov %eax, %ecx\n\t" #op " $0x87654321, %ecx")                       \
    STUB(op##_i8acc, #op " $0x5a, %al")                                                   \
    STUB(op##_i8c, "mov %eax, %ecx\n\t" #op " $0xa5, %cl")                               \
    STUB(op##_i8h, #op " $0x81, %ah")                                                     \
    STUB(op##_i16acc, #op " $0x8001, %ax")                                                \
    STUB(op##_i8s16c, "mov %eax, %ecx\n\t" #op " $-3, %cx")                              \
    STUB(op##_mi32, "mov %eax, 3(%esi)\n\t" #op "l $0x01234567, 3(%esi)")               \
    STUB(op##_mi8s32, "mov %eax, 3(%esi)\n\t" #op "l $-5, 3(%esi)")                     \
    STUB(op##_mi16, "mov %eax, 3(%esi)\n\t" #op "w $0x8001, 3(%esi)")                   \
    STUB(op##_mi8, "mov %eax, 3(%esi)\n\t" #op "b $0x80, 3(%esi)")

#define BIN_TABLE(op, m)                                                                 \
    { #op " r32,r32", op##_rr32, m, 0 }, { #op " r32,r32 (reg form)", op##_rr32r, m, 0 },  \
    { #op " r16,r16", op##_rr16, m, 0 }, { #op " r8,r8", op##_rr8, m, 0 },                \
    { #op " ah,bh", op##_rrh, m, 0 }, { #op " bh,al", op##_rrh2, m, 0 },                  \
    { #op " cl,dh", op##_rrh3, m, 0 },                                                    \
    { #op " m32,r32", op##_mr32, m, 0 }, { #op " r32,m32", op##_rm32, m, 0 },             \
    { #op " m16,r16", op##_mr16, m, 0 }, { #op " r16,m16", op##_rm16, m, 0 },             \
    { #op " m8,r8", op##_mr8, m, 0 }, { #op " r8,m8", op##_rm8, m, 0 },                   \
    { #op " eax,imm8 (0x7f)", op##_i8s32, m, 0 }, { #op " eax,imm8 (-128)", op##_i8s32b, m, 0 }, \
    { #op " ecx,imm8 (-1)", op##_i8s32c, m, 0 }, { #op " eax,imm32", op##_i32acc, m, 0 }, \
    { #op " ecx,imm32", op##_i32c, m, 0 }, { #op " al,imm8", op##_i8acc, m, 0 },          \
    { #op " cl,imm8", op##_i8c, m, 0 }, { #op " ah,imm8", op##_i8h, m, 0 },               \
    { #op " ax,imm16", op##_i16acc, m, 0 }, { #op " cx,imm8", op##_i8s16c, m, 0 },        \
    { #op " m32,imm32", op##_mi32, m, 0 }, { #op " m32,imm8", op##_mi8s32, m, 0 },        \
    { #op " m16,imm16", op##_mi16, m, 0 }, { #op " m8,imm8", op##_mi8, m, 0 },

BIN_FORMS(add)
BIN_FORMS(adc)
BIN_FORMS(sub)
BIN_FORMS(sbb)
BIN_FORMS(cmp)
BIN_FORMS(and)
BIN_FORMS(or)
BIN_FORMS(xor)
/* test has no reg,mem direction and no sign-extended imm8 form */
STUB(test_rr32, "test %ebx, %eax")
STUB(test_rr16, "test %bx, %ax")
STUB(test_rr8, "test %bl, %al")
STUB(test_rrh, "test %bh, %ah")
STUB(test_mr32, "test %ebx, 5(%esi)")
STUB(test_mr16, "test %bx, 3(%esi)")
STUB(test_mr8, "test %bh, 1(%esi)")
STUB(test_i32acc, "test $0x80000001, %eax")
STUB(test_i32c, "mov %eax, %ecx\n\ttest $0x00ff00ff, %ecx")
STUB(test_i8acc, "test $0x81, %al")
STUB(test_i8h, "test $0x81, %ah")
STUB(test_i16acc, "test $0x8000, %ax")
STUB(test_mi32, "mov %eax, 3(%esi)\n\ttestl $0x80000080, 3(%esi)")
STUB(test_mi8, "mov %eax, 3(%esi)\n\ttestb $0x81, 3(%esi)")

#define LOGIC (FL_ARITH & ~FL_AF)

static struct sweep bin_sweeps[] = {
    BIN_TABLE(add, FL_ARITH)
    BIN_TABLE(adc, FL_ARITH)
    BIN_TABLE(sub, FL_ARITH)
    BIN_TABLE(sbb, FL_ARITH)
    BIN_TABLE(cmp, FL_ARITH)
    BIN_TABLE(and, LOGIC)
    BIN_TABLE(or, LOGIC)
    BIN_TABLE(xor, LOGIC)
    { "test r32,r32", test_rr32, LOGIC, 0 }, { "test r16,r16", test_rr16, LOGIC, 0 },
    { "test r8,r8", test_rr8, LOGIC, 0 }, { "test ah,bh", test_rrh, LOGIC, 0 },
    { "test m32,r32", test_mr32, LOGIC, 0 }, { "test m16,r16", test_mr16, LOGIC, 0 },
    { "test m8,r8", test_mr8, LOGIC, 0 }, { "test eax,imm32", test_i32acc, LOGIC, 0 },
    { "test ecx,imm32", test_i32c, LOGIC, 0 }, { "test al,imm8", test_i8acc, LOGIC, 0 },
    { "test ah,imm8", test_i8h, LOGIC, 0 }, { "test ax,imm16", test_i16acc, LOGIC, 0 },
    { "test m32,imm32", test_mi32, LOGIC, 0 }, { "test m8,imm8", test_mi8, LOGIC, 0 },
};

/* ---- unary ops ------------------------------------------------------------------------- */
#define UN_FORMS(op)                                                                     \
    STUB(op##_r32, #op " %eax")                                                           \
    STUB(op##_r16, #op " %ax")                                                            \
    STUB(op##_r8, #op " %al")                                                             \
    STUB(op##_rh, #op " %ah")                                                             \
    STUB(op##_rbh, #op " %bh")                                                            \
    STUB(op##_m32, "mov %eax, 3(%esi)\n\t" #op "l 3(%esi)")                             \
    STUB(op##_m16, "mov %eax, 3(%esi)\n\t" #op "w 3(%esi)")                             \
    STUB(op##_m8, "mov %eax, 3(%esi)\n\t" #op "b 3(%esi)")
#define UN_TABLE(op, m)                                                                  \
    { #op " r32", op##_r32, m, 0 }, { #op " r16", op##_r16, m, 0 },                       \
    { #op " r8", op##_r8, m, 0 }, { #op " ah", op##_rh, m, 0 }, { #op " bh", op##_rbh, m, 0 }, \
    { #op " m32", op##_m32, m, 0 }, { #op " m16", op##_m16, m, 0 }, { #op " m8", op##_m8, m, 0 },
UN_FORMS(neg)
UN_FORMS(not)
UN_FORMS(inc)
UN_FORMS(dec)

/* inc/dec r32: the one-byte forms 0x40+r / 0x48+r (what GNU as emits in 32-bit code) for
 * every register but ESP, the ff /0 and ff /1 two-byte forms, and 16-bit 66 40+r. */
#define SHORT(op, reg)                                                                   \
    STUB(op##_short_##reg, "mov %eax, %" #reg "\n\t" #op " %" #reg "\n\tmov %" #reg ", %eax\n\t" \
                           "lea sweep_buf, %esi\n\tlea sweep_buf+32, %edi")
SHORT(inc, ecx) SHORT(inc, edx) SHORT(inc, ebx) SHORT(inc, esi) SHORT(inc, edi) SHORT(inc, ebp)
SHORT(dec, ecx) SHORT(dec, edx) SHORT(dec, ebx) SHORT(dec, esi) SHORT(dec, edi) SHORT(dec, ebp)
STUB(inc_short_eax, ".byte 0x40")
STUB(dec_short_eax, ".byte 0x48")
STUB(inc_long_ecx, "mov %eax, %ecx\n\t.byte 0xff, 0xc1")
STUB(dec_long_ecx, "mov %eax, %ecx\n\t.byte 0xff, 0xc9")
STUB(inc_short16_dx, "mov %eax, %edx\n\t.byte 0x66, 0x42")
STUB(dec_short16_di, "mov %eax, %edi\n\t.byte 0x66, 0x4f\n\tmov %edi, %eax\n\tlea sweep_buf+32, %edi")
STUB(inc_dec_esp, "mov %esp, %ecx\n\t.byte 0x44, 0x44, 0x4c, 0x4c, 0x4c, 0x44\n\tsub %esp, %ecx")

static struct sweep un_sweeps[] = {
    UN_TABLE(neg, FL_ARITH)
    UN_TABLE(not, FL_ARITH)
    UN_TABLE(inc, FL_ARITH)
    UN_TABLE(dec, FL_ARITH)
    { "inc ecx (0x41)", inc_short_ecx, FL_ARITH, 0 }, { "inc edx (0x42)", inc_short_edx, FL_ARITH, 0 },
    { "inc ebx (0x43)", inc_short_ebx, FL_ARITH, 0 }, { "inc esi (0x46)", inc_short_esi, FL_ARITH, 0 },
    { "inc edi (0x47)", inc_short_edi, FL_ARITH, 0 }, { "inc ebp (0x45)", inc_short_ebp, FL_ARITH, 0 },
    { "dec ecx (0x49)", dec_short_ecx, FL_ARITH, 0 }, { "dec edx (0x4a)", dec_short_edx, FL_ARITH, 0 },
    { "dec ebx (0x4b)", dec_short_ebx, FL_ARITH, 0 }, { "dec esi (0x4e)", dec_short_esi, FL_ARITH, 0 },
    { "dec edi (0x4f)", dec_short_edi, FL_ARITH, 0 }, { "dec ebp (0x4d)", dec_short_ebp, FL_ARITH, 0 },
    { "inc eax (0x40)", inc_short_eax, FL_ARITH, 0 }, { "dec eax (0x48)", dec_short_eax, FL_ARITH, 0 },
    { "inc ecx (ff /0)", inc_long_ecx, FL_ARITH, 0 }, { "dec ecx (ff /1)", dec_long_ecx, FL_ARITH, 0 },
    { "inc dx (66 42)", inc_short16_dx, FL_ARITH, 0 }, { "dec di (66 4f)", dec_short16_di, FL_ARITH, 0 },
    { "inc/dec esp (0x44/0x4c)", inc_dec_esp, 0, 0 },
};

/* ---- moves and friends (flags must be left alone) --------------------------------------- */
STUB(mov_rr32, "mov %ebx, %ecx")
STUB(mov_rr16, "mov %bx, %ax")
STUB(mov_rr8, "mov %bl, %ah")
STUB(mov_rr8h, "mov %bh, %al")
STUB(mov_mr32, "mov %ebx, 3(%esi)")
STUB(mov_rm32, "mov 5(%esi), %eax")
STUB(mov_mr16, "mov %bx, 7(%esi)")
STUB(mov_rm16, "mov 1(%esi), %ax")
STUB(mov_mr8, "mov %bh, 9(%esi)")
STUB(mov_rm8, "mov 11(%esi), %ah")
STUB(mov_mi32, "movl $0xdeadbeef, 13(%esi)")
STUB(mov_mi16, "movw $0xbeef, 13(%esi)")
STUB(mov_mi8, "movb $0xa5, 13(%esi)")
STUB(mov_ri32, "mov $0x12345678, %ecx")
STUB(mov_ri16, "mov $0x5678, %ax")
STUB(mov_ri8, "mov $0x78, %ah")
STUB(mov_moffs_load32, "mov sweep_buf+4, %eax")
STUB(mov_moffs_store32, "mov %eax, sweep_buf+6")
STUB(mov_moffs_load8, "mov sweep_buf+1, %al")
STUB(mov_moffs_store16, "mov %ax, sweep_buf+2")
STUB(mov_sib, "mov %ebx, %ecx\n\tand $7, %ecx\n\tmov 8(%esi,%ecx,4), %eax\n\tmov %ebx, -4(%edi,%ecx,2)")
STUB(movzx_b32, "movzbl %bl, %eax")
STUB(movzx_bh32, "movzbl %bh, %eax")
STUB(movzx_w32, "movzwl %bx, %eax")
STUB(movzx_b16, "movzbw %bl, %ax")
STUB(movzx_m8, "movzbl 3(%esi), %eax")
STUB(movzx_m16, "movzwl 3(%esi), %eax")
STUB(movsx_b32, "movsbl %bl, %eax")
STUB(movsx_bh32, "movsbl %bh, %eax")
STUB(movsx_w32, "movswl %bx, %eax")
STUB(movsx_b16, "movsbw %bl, %ax")
STUB(movsx_m8, "movsbl 3(%esi), %eax")
STUB(movsx_m16, "movswl 3(%esi), %eax")
STUB(xchg_acc, "xchg %ebx, %eax")
STUB(xchg_rr32, "xchg %ebx, %ecx")
STUB(xchg_rr16, "xchg %bx, %ax")
STUB(xchg_rr8, "xchg %bl, %ah")
STUB(xchg_m32, "xchg %eax, 3(%esi)")
STUB(xchg_m8, "xchg %bh, 1(%esi)")
STUB(nop_90, "nop\n\t.byte 0x66, 0x90")
STUB(lea_sib, "lea 0x12345678(%eax,%ebx,4), %ecx")
STUB(lea_bi, "lea (%eax,%ebx), %ecx")
STUB(lea_neg, "lea -1(%ebx), %eax")
STUB(lea_big, "lea 0x80000000(%eax,%eax,8), %ecx")
STUB(lea_noBase, "lea 0x10(,%ebx,2), %ecx")
STUB(lea_16op, "lea 1(%eax,%ebx), %ax")
STUB(lea_a16_bp, "mov $0xffffffff, %ecx\n\t.byte 0x67, 0x8d, 0x8e, 0x34, 0x12")   /* lea ecx,[bp+0x1234] */
STUB(lea_a16_bx, "mov $0xffffffff, %ecx\n\t.byte 0x67, 0x8d, 0x4f, 0x80")         /* lea ecx,[bx-0x80]   */
STUB(lea_a16_abs, "mov $0xffffffff, %ecx\n\t.byte 0x67, 0x8d, 0x0e, 0xfe, 0xff")  /* lea ecx,[0xfffe]    */
STUB(cbw, "cbtw")
STUB(cwde, "cwtl")
STUB(cwd, "cwtd")
STUB(cdq, "cltd")
STUB(bswap_eax, "bswap %eax")
STUB(bswap_ebx, "bswap %ebx")
STUB(bswap_ebp, "bswap %ebp")
STUB(xlat, "mov %esi, %ebx\n\tand $0x3f, %eax\n\txlat\n\txor %ebx, %ebx")
STUB(lahf, "lahf")
STUB(sahf, "mov %bh, %ah\n\tsahf")
STUB(clc, "clc")
STUB(stc, "stc")
STUB(cmc, "cmc")
STUB(std_, "std")

static struct sweep mov_sweeps[] = {
    { "mov r32,r32", mov_rr32, FL_ARITH, 0 }, { "mov r16,r16", mov_rr16, FL_ARITH, 0 },
    { "mov ah,bl", mov_rr8, FL_ARITH, 0 }, { "mov al,bh", mov_rr8h, FL_ARITH, 0 },
    { "mov m32,r32", mov_mr32, FL_ARITH, 0 }, { "mov r32,m32", mov_rm32, FL_ARITH, 0 },
    { "mov m16,r16", mov_mr16, FL_ARITH, 0 }, { "mov r16,m16", mov_rm16, FL_ARITH, 0 },
    { "mov m8,bh", mov_mr8, FL_ARITH, 0 }, { "mov ah,m8", mov_rm8, FL_ARITH, 0 },
    { "mov m32,imm32", mov_mi32, FL_ARITH, 0 }, { "mov m16,imm16", mov_mi16, FL_ARITH, 0 },
    { "mov m8,imm8", mov_mi8, FL_ARITH, 0 }, { "mov r32,imm32", mov_ri32, FL_ARITH, 0 },
    { "mov r16,imm16", mov_ri16, FL_ARITH, 0 }, { "mov ah,imm8", mov_ri8, FL_ARITH, 0 },
    { "mov eax,moffs32", mov_moffs_load32, FL_ARITH, 0 },
    { "mov moffs32,eax", mov_moffs_store32, FL_ARITH, 0 },
    { "mov al,moffs8", mov_moffs_load8, FL_ARITH, 0 },
    { "mov moffs16,ax", mov_moffs_store16, FL_ARITH, 0 },
    { "mov with SIB index", mov_sib, 0, 0 },
    { "movzx r32,r8", movzx_b32, FL_ARITH, 0 }, { "movzx r32,bh", movzx_bh32, FL_ARITH, 0 },
    { "movzx r32,r16", movzx_w32, FL_ARITH, 0 }, { "movzx r16,r8", movzx_b16, FL_ARITH, 0 },
    { "movzx r32,m8", movzx_m8, FL_ARITH, 0 }, { "movzx r32,m16", movzx_m16, FL_ARITH, 0 },
    { "movsx r32,r8", movsx_b32, FL_ARITH, 0 }, { "movsx r32,bh", movsx_bh32, FL_ARITH, 0 },
    { "movsx r32,r16", movsx_w32, FL_ARITH, 0 }, { "movsx r16,r8", movsx_b16, FL_ARITH, 0 },
    { "movsx r32,m8", movsx_m8, FL_ARITH, 0 }, { "movsx r32,m16", movsx_m16, FL_ARITH, 0 },
    { "xchg eax,r32 (short)", xchg_acc, FL_ARITH, 0 }, { "xchg r32,r32", xchg_rr32, FL_ARITH, 0 },
    { "xchg r16,r16", xchg_rr16, FL_ARITH, 0 }, { "xchg ah,bl", xchg_rr8, FL_ARITH, 0 },
    { "xchg m32,r32", xchg_m32, FL_ARITH, 0 }, { "xchg m8,bh", xchg_m8, FL_ARITH, 0 },
    { "nop / 66 nop", nop_90, FL_ARITH, 0 },
    { "lea base+index*4+disp32", lea_sib, FL_ARITH, 0 }, { "lea base+index", lea_bi, FL_ARITH, 0 },
    { "lea disp8 negative", lea_neg, FL_ARITH, 0 }, { "lea wraps at 4 GiB", lea_big, FL_ARITH, 0 },
    { "lea index*2+disp, no base", lea_noBase, FL_ARITH, 0 },
    { "lea with 16-bit operand size", lea_16op, FL_ARITH, 0 },
    { "lea [bp+disp16] (16-bit address)", lea_a16_bp, FL_ARITH, 0 },
    { "lea [bx+disp8] (16-bit address)", lea_a16_bx, FL_ARITH, 0 },
    { "lea [disp16] (16-bit address)", lea_a16_abs, FL_ARITH, 0 },
    { "cbw", cbw, FL_ARITH, 0 }, { "cwde", cwde, FL_ARITH, 0 },
    { "cwd", cwd, FL_ARITH, 0 }, { "cdq", cdq, FL_ARITH, 0 },
    { "bswap eax", bswap_eax, FL_ARITH, 0 }, { "bswap ebx", bswap_ebx, FL_ARITH, 0 },
    { "bswap ebp", bswap_ebp, FL_ARITH, 0 },
    { "xlat", xlat, FL_ARITH, 0 }, { "lahf", lahf, FL_ARITH, 0 }, { "sahf", sahf, FL_ARITH, 0 },
    { "clc", clc, FL_ARITH, 0 }, { "stc", stc, FL_ARITH, 0 }, { "cmc", cmc, FL_ARITH, 0 },
    { "std", std_, FL_ARITH | FL_DF, 0 },
};

static const uint32_t vals[] = {
    0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x12345678,
    0x7fffffff, 0x80000000, 0x80000001, 0xfffffffe, 0xffffffff, 0xdeadbeef, 0x00ff00ff,
    0x55aa55aa,
};
static const uint32_t one_c[] = { 0x13579bdf };
static const uint32_t flags_in[] = { 0, FL_ARITH };

/* ---- known answers ----------------------------------------------------------------------- */
static struct regs run(void (*stub)(void), uint32_t eax, uint32_t ebx, uint32_t fl)
{
    struct regs in = { eax, ebx, 0, 0, 0, 0, 0, fl }, out;
    rt_exec(&in, &out, stub);
    return out;
}

static void known_answers(void)
{
    struct regs r;
    r = run(add_rr32, 0x7fffffff, 1, 0);
    is(r.eax, 0x80000000, "add 0x7fffffff + 1 = 0x80000000");
    is(r.eflags & FL_ARITH, FL_OF | FL_SF | FL_AF | FL_PF, "add 0x7fffffff + 1: OF SF AF PF");
    r = run(sub_rr32, 0, 1, 0);
    is(r.eax, 0xffffffff, "sub 0 - 1 = 0xffffffff");
    is(r.eflags & FL_ARITH, FL_CF | FL_SF | FL_AF | FL_PF, "sub 0 - 1: CF SF AF PF");
    r = run(adc_rr32, 0xffffffff, 0, FL_CF);
    is(r.eax, 0, "adc 0xffffffff + 0 + CF = 0");
    is(r.eflags & FL_ARITH, FL_CF | FL_ZF | FL_AF | FL_PF, "adc 0xffffffff + 0 + CF: CF ZF AF PF");
    r = run(sbb_rr32, 0x80000000, 0, FL_CF);
    is(r.eax, 0x7fffffff, "sbb 0x80000000 - 0 - CF = 0x7fffffff");
    is(r.eflags & FL_ARITH, FL_OF | FL_AF | FL_PF, "sbb 0x80000000 - 0 - CF: OF AF PF");
    r = run(inc_r32, 0xffffffff, 0, FL_CF);
    is(r.eax, 0, "inc 0xffffffff = 0");
    is(r.eflags & FL_ARITH, FL_CF | FL_ZF | FL_AF | FL_PF, "inc keeps CF set");
    r = run(dec_r32, 0, 0, 0);
    is(r.eflags & FL_ARITH, FL_SF | FL_AF | FL_PF, "dec 0 leaves CF clear");
    r = run(neg_r32, 0x80000000, 0, 0);
    is(r.eax, 0x80000000, "neg 0x80000000 = 0x80000000");
    is(r.eflags & FL_ARITH, FL_OF | FL_SF | FL_CF | FL_PF, "neg 0x80000000: OF SF CF PF");
    r = run(neg_r32, 0, 0, FL_ARITH);
    is(r.eflags & FL_ARITH, FL_ZF | FL_PF, "neg 0: CF clear");
    r = run(xor_rr8, 0x12345603, 0x00000000, 0);
    is(r.eflags & (FL_ARITH & ~FL_AF), FL_PF, "xor al: PF from the low byte (0x03: even)");
    r = run(add_rr16, 0xabcdffff, 0x00000001, 0);
    is(r.eax, 0xabcd0000, "add ax: upper half of eax kept");
    is(r.eflags & FL_ARITH, FL_CF | FL_ZF | FL_AF | FL_PF, "add ax 0xffff + 1: CF ZF AF PF");
    r = run(add_rrh, 0x00007f00, 0x00000100, 0);
    is(r.eax, 0x00008000, "add ah,bh = 0x80");
    is(r.eflags & FL_ARITH, FL_OF | FL_SF | FL_AF, "add ah,bh 0x7f + 1: OF SF AF");
    r = run(movsx_bh32, 0, 0x8000, FL_ARITH);
    is(r.eax, 0xffffff80, "movsx eax, bh");
    r = run(lea_a16_bx, 0, 0x12340010, 0);
    is(r.ecx, 0x0000ff90, "lea ecx, [bx-0x80] wraps at 64 KiB");
    r = run(cdq, 0x80000000, 0, 0);
    is(r.edx, 0xffffffff, "cdq of a negative eax");
    r = run(bswap_eax, 0x12345678, 0, 0);
    is(r.eax, 0x78563412, "bswap eax");
}

void test_main(void)
{
    struct sweep_space sp = { vals, N(vals), vals, N(vals), one_c, 1, flags_in, N(flags_in) };
    sweep_all(bin_sweeps, N(bin_sweeps), &sp);
    sweep_all(un_sweeps, N(un_sweeps), &sp);
    sweep_all(mov_sweeps, N(mov_sweeps), &sp);
    known_answers();
}

/* BEGIN HASHES (recorded on hardware by host/record-hashes.py) */
const struct sweep_hash sweep_hashes[] = {
    { "add r32,r32", 0x09e399b9 },
    { "add r32,r32 (reg form)", 0x09e399b9 },
    { "add r16,r16", 0x9bf47339 },
    { "add r8,r8", 0x1338289d },
    { "add ah,bh", 0x266803cd },
    { "add bh,al", 0xd515fb99 },
    { "add cl,dh", 0xc95aec15 },
    { "add m32,r32", 0x17fb14c5 },
    { "add r32,m32", 0x1a0df4b5 },
    { "add m16,r16", 0xbc3810bd },
    { "add r16,m16", 0x23ed3921 },
    { "add m8,r8", 0x8aa2db15 },
    { "add r8,m8", 0x25727a09 },
    { "add eax,imm8 (0x7f)", 0x6e69b8d1 },
    { "add eax,imm8 (-128)", 0x1e574e41 },
    { "add ecx,imm8 (-1)", 0x1de67d25 },
    { "add eax,imm32", 0xa28e9781 },
    { "add ecx,imm32", 0xc4f20845 },
    { "add al,imm8", 0x35418901 },
    { "add cl,imm8", 0xec8484dd },
    { "add ah,imm8", 0x0ce62931 },
    { "add ax,imm16", 0xe0322c51 },
    { "add cx,imm8", 0x7f558d75 },
    { "add m32,imm32", 0x42ea1cf9 },
    { "add m32,imm8", 0x569f6111 },
    { "add m16,imm16", 0x1a1863d5 },
    { "add m8,imm8", 0x4a2ed899 },
    { "adc r32,r32", 0x7d094075 },
    { "adc r32,r32 (reg form)", 0x7d094075 },
    { "adc r16,r16", 0x6903e261 },
    { "adc r8,r8", 0x0ce56395 },
    { "adc ah,bh", 0xde0baf91 },
    { "adc bh,al", 0xa7c0f4b9 },
    { "adc cl,dh", 0x8a2a57f5 },
    { "adc m32,r32", 0x05c6c3d5 },
    { "adc r32,m32", 0x54751ea5 },
    { "adc m16,r16", 0x0bac3e4d },
    { "adc r16,m16", 0xda8930d1 },
    { "adc m8,r8", 0x2116cee5 },
    { "adc r8,m8", 0x419e9211 },
    { "adc eax,imm8 (0x7f)", 0xbbaf1d71 },
    { "adc eax,imm8 (-128)", 0x0d4443f1 },
    { "adc ecx,imm8 (-1)", 0x8a351de5 },
    { "adc eax,imm32", 0x655e4981 },
    { "adc ecx,imm32", 0x540900b5 },
    { "adc al,imm8", 0xe9feede1 },
    { "adc cl,imm8", 0x473decc5 },
    { "adc ah,imm8", 0xe84f8c09 },
    { "adc ax,imm16", 0xf55d83a1 },
    { "adc cx,imm8", 0x1b78939d },
    { "adc m32,imm32", 0x3e587851 },
    { "adc m32,imm8", 0x31dfd801 },
    { "adc m16,imm16", 0x7bc10745 },
    { "adc m8,imm8", 0xa78a8579 },
    { "sub r32,r32", 0xf8ff3a9d },
    { "sub r32,r32 (reg form)", 0xf8ff3a9d },
    { "sub r16,r16", 0x81f019c5 },
    { "sub r8,r8", 0xa3594ddd },
    { "sub ah,bh", 0x47884345 },
    { "sub bh,al", 0xb6c31401 },
    { "sub cl,dh", 0xeb60a0b5 },
    { "sub m32,r32", 0x6ac5e545 },
    { "sub r32,m32", 0xca36ba7d },
    { "sub m16,r16", 0x55c0e45d },
    { "sub r16,m16", 0xcc1d83d5 },
    { "sub m8,r8", 0xa1d8114d },
    { "sub r8,m8", 0x319e7d95 },
    { "sub eax,imm8 (0x7f)", 0x1e4bc5c5 },
    { "sub eax,imm8 (-128)", 0xa4becb21 },
    { "sub ecx,imm8 (-1)", 0x752c77d5 },
    { "sub eax,imm32", 0xfc38c4d5 },
    { "sub ecx,imm32", 0xde21c69d },
    { "sub al,imm8", 0x2285d7bd },
    { "sub cl,imm8", 0x3aced7e9 },
    { "sub ah,imm8", 0x570c2239 },
    { "sub ax,imm16", 0x880d1191 },
    { "sub cx,imm8", 0xf39821a5 },
    { "sub m32,imm32", 0x49c0de1d },
    { "sub m32,imm8", 0xd2ebece9 },
    { "sub m16,imm16", 0x9645c2b1 },
    { "sub m8,imm8", 0x73221221 },
    { "sbb r32,r32", 0xdb9fa271 },
    { "sbb r32,r32 (reg form)", 0xdb9fa271 },
    { "sbb r16,r16", 0x91955c19 },
    { "sbb r8,r8", 0x01a2469d },
    { "sbb ah,bh", 0xc2da5c21 },
    { "sbb bh,al", 0x9df43931 },
    { "sbb cl,dh", 0x6408aee5 },
    { "sbb m32,r32", 0x263d5955 },
    { "sbb r32,m32", 0xc8cb9635 },
    { "sbb m16,r16", 0x5575db4d },
    { "sbb r16,m16", 0xb8c5b70d },
    { "sbb m8,r8", 0x29f7325d },
    { "sbb r8,m8", 0xdaac3f55 },
    { "sbb eax,imm8 (0x7f)", 0x52675675 },
    { "sbb eax,imm8 (-128)", 0x91cf29b1 },
    { "sbb ecx,imm8 (-1)", 0x9a8031ad },
    { "sbb eax,imm32", 0x77925835 },
    { "sbb ecx,imm32", 0x2b4a93ed },
    { "sbb al,imm8", 0x1ae4cdad },
    { "sbb cl,imm8", 0x8b4b8169 },
    { "sbb ah,imm8", 0x180acb01 },
    { "sbb ax,imm16", 0x140d8ab9 },
    { "sbb cx,imm8", 0x64f92a0d },
    { "sbb m32,imm32", 0xc7965f3d },
    { "sbb m32,imm8", 0x80db44b1 },
    { "sbb m16,imm16", 0x99fc7759 },
    { "sbb m8,imm8", 0xe3c36ea1 },
    { "cmp r32,r32", 0xaeef017d },
    { "cmp r32,r32 (reg form)", 0xaeef017d },
    { "cmp r16,r16", 0xd90ea6e5 },
    { "cmp r8,r8", 0x3b9aa00d },
    { "cmp ah,bh", 0x955687ad },
    { "cmp bh,al", 0x9a5de631 },
    { "cmp cl,dh", 0x710c5795 },
    { "cmp m32,r32", 0x18f023cd },
    { "cmp r32,m32", 0x107fd00d },
    { "cmp m16,r16", 0x061dc165 },
    { "cmp r16,m16", 0xf5829425 },
    { "cmp m8,r8", 0x435d3d45 },
    { "cmp r8,m8", 0xb023fe2d },
    { "cmp eax,imm8 (0x7f)", 0x71264109 },
    { "cmp eax,imm8 (-128)", 0x86945c95 },
    { "cmp ecx,imm8 (-1)", 0xa8fc64b1 },
    { "cmp eax,imm32", 0x0ad93b7d },
    { "cmp ecx,imm32", 0x31d36091 },
    { "cmp al,imm8", 0xb9d4ae35 },
    { "cmp cl,imm8", 0x07e5a3c9 },
    { "cmp ah,imm8", 0xa6237bd1 },
    { "cmp ax,imm16", 0x4dde1f11 },
    { "cmp cx,imm8", 0xfac86ffd },
    { "cmp m32,imm32", 0x165a6ae1 },
    { "cmp m32,imm8", 0x0b0b0889 },
    { "cmp m16,imm16", 0xb9f0f3d5 },
    { "cmp m8,imm8", 0x2f827321 },
    { "and r32,r32", 0x2b7c9595 },
    { "and r32,r32 (reg form)", 0x2b7c9595 },
    { "and r16,r16", 0xc28274b5 },
    { "and r8,r8", 0xebc81e05 },
    { "and ah,bh", 0xe99e2565 },
    { "and bh,al", 0xe9f656f1 },
    { "and cl,dh", 0x8ca8cc45 },
    { "and m32,r32", 0xfad372ad },
    { "and r32,m32", 0x9f291719 },
    { "and m16,r16", 0xad9fa1e5 },
    { "and r16,m16", 0xfb7d1a99 },
    { "and m8,r8", 0x045dfe1d },
    { "and r8,m8", 0x35363695 },
    { "and eax,imm8 (0x7f)", 0x905ee8f1 },
    { "and eax,imm8 (-128)", 0xfc5bc659 },
    { "and ecx,imm8 (-1)", 0x2b7120e5 },
    { "and eax,imm32", 0xfe6512c5 },
    { "and ecx,imm32", 0x338773ed },
    { "and al,imm8", 0xe5241375 },
    { "and cl,imm8", 0xc592b371 },
    { "and ah,imm8", 0x89c129bd },
    { "and ax,imm16", 0xe5167c79 },
    { "and cx,imm8", 0x47f21d59 },
    { "and m32,imm32", 0xaf3ef7b9 },
    { "and m32,imm8", 0xc87bfaa1 },
    { "and m16,imm16", 0x821ed009 },
    { "and m8,imm8", 0xcf213a01 },
    { "or r32,r32", 0x37c59575 },
    { "or r32,r32 (reg form)", 0x37c59575 },
    { "or r16,r16", 0x64a11251 },
    { "or r8,r8", 0x1423bd51 },
    { "or ah,bh", 0x4c872255 },
    { "or bh,al", 0xedf76671 },
    { "or cl,dh", 0xd7fae785 },
    { "or m32,r32", 0xba276355 },
    { "or r32,m32", 0x5346b491 },
    { "or m16,r16", 0xadd06ab5 },
    { "or r16,m16", 0x832800bd },
    { "or m8,r8", 0xb8c2f18d },
    { "or r8,m8", 0x1bbd4ad1 },
    { "or eax,imm8 (0x7f)", 0x329da551 },
    { "or eax,imm8 (-128)", 0x7ba47099 },
    { "or ecx,imm8 (-1)", 0x6b2eae15 },
    { "or eax,imm32", 0x77e03555 },
    { "or ecx,imm32", 0x2285cefd },
    { "or al,imm8", 0x01056609 },
    { "or cl,imm8", 0x79045cc5 },
    { "or ah,imm8", 0xc503d3fd },
    { "or ax,imm16", 0xa6c3db4d },
    { "or cx,imm8", 0xb6cb6aa5 },
    { "or m32,imm32", 0xc72041ad },
    { "or m32,imm8", 0x6520425d },
    { "or m16,imm16", 0x355b7761 },
    { "or m8,imm8", 0x86655101 },
    { "xor r32,r32", 0x8d739045 },
    { "xor r32,r32 (reg form)", 0x8d739045 },
    { "xor r16,r16", 0x3d8dbda5 },
    { "xor r8,r8", 0x08a68a15 },
    { "xor ah,bh", 0x65c2d78d },
    { "xor bh,al", 0x05c22ed5 },
    { "xor cl,dh", 0x04d74e15 },
    { "xor m32,r32", 0xcc4618ed },
    { "xor r32,m32", 0x6c6a1e05 },
    { "xor m16,r16", 0xc88689d5 },
    { "xor r16,m16", 0x1092aa4d },
    { "xor m8,r8", 0x9fe63e15 },
    { "xor r8,m8", 0xc6905365 },
    { "xor eax,imm8 (0x7f)", 0x1556c7e5 },
    { "xor eax,imm8 (-128)", 0x0f4296bd },
    { "xor ecx,imm8 (-1)", 0x923847bd },
    { "xor eax,imm32", 0xf95cc44d },
    { "xor ecx,imm32", 0x956b76a5 },
    { "xor al,imm8", 0xd8d22905 },
    { "xor cl,imm8", 0x68c69bfd },
    { "xor ah,imm8", 0x3b3d1a55 },
    { "xor ax,imm16", 0x3e106ee5 },
    { "xor cx,imm8", 0xaa2a699d },
    { "xor m32,imm32", 0xedd1a0b1 },
    { "xor m32,imm8", 0x76254051 },
    { "xor m16,imm16", 0x52756f31 },
    { "xor m8,imm8", 0xfb13cd41 },
    { "test r32,r32", 0xaaee4dc5 },
    { "test r16,r16", 0xac53e745 },
    { "test r8,r8", 0x51135345 },
    { "test ah,bh", 0x8115fa25 },
    { "test m32,r32", 0x4ffadf9d },
    { "test m16,r16", 0xc781c35d },
    { "test m8,r8", 0xff83f93d },
    { "test eax,imm32", 0x1ea0d2fd },
    { "test ecx,imm32", 0xce0b29e5 },
    { "test al,imm8", 0x1d5caced },
    { "test ah,imm8", 0x14764075 },
    { "test ax,imm16", 0x0c839685 },
    { "test m32,imm32", 0x63c509b1 },
    { "test m8,imm8", 0xfe25b649 },
    { "neg r32", 0x5f70d70d },
    { "neg r16", 0x95024c11 },
    { "neg r8", 0xa0f57ac9 },
    { "neg ah", 0xc62df765 },
    { "neg bh", 0x2507d315 },
    { "neg m32", 0x5a811c09 },
    { "neg m16", 0x61e96bc1 },
    { "neg m8", 0x33c4db2d },
    { "not r32", 0x3a73721d },
    { "not r16", 0x636b1685 },
    { "not r8", 0x6b8ce6a5 },
    { "not ah", 0xd3153385 },
    { "not bh", 0xcaf9301d },
    { "not m32", 0xa17e02f9 },
    { "not m16", 0x8fb45aa1 },
    { "not m8", 0x7d275059 },
    { "inc r32", 0xee81ab01 },
    { "inc r16", 0x127e0915 },
    { "inc r8", 0x45f8a335 },
    { "inc ah", 0xf85bb7b5 },
    { "inc bh", 0x01e48ac5 },
    { "inc m32", 0xa627e929 },
    { "inc m16", 0xcc51a099 },
    { "inc m8", 0x3d3a7e99 },
    { "dec r32", 0x22592559 },
    { "dec r16", 0x3c54be5d },
    { "dec r8", 0xdd8e7b6d },
    { "dec ah", 0x88a8f295 },
    { "dec bh", 0xb080b685 },
    { "dec m32", 0x1517f955 },
    { "dec m16", 0xb266a355 },
    { "dec m8", 0xe0143a11 },
    { "inc ecx (0x41)", 0xaa990c7d },
    { "inc edx (0x42)", 0xfdf927b5 },
    { "inc ebx (0x43)", 0x279f7945 },
    { "inc esi (0x46)", 0xee81ab01 },
    { "inc edi (0x47)", 0xee81ab01 },
    { "inc ebp (0x45)", 0x22fc3b15 },
    { "dec ecx (0x49)", 0xe19d69ad },
    { "dec edx (0x4a)", 0x5e874dcd },
    { "dec ebx (0x4b)", 0x7f950715 },
    { "dec esi (0x4e)", 0x22592559 },
    { "dec edi (0x4f)", 0x22592559 },
    { "dec ebp (0x4d)", 0x18eaa6f5 },
    { "inc eax (0x40)", 0xee81ab01 },
    { "dec eax (0x48)", 0x22592559 },
    { "inc ecx (ff /0)", 0x8bbc4469 },
    { "dec ecx (ff /1)", 0xc71f2b11 },
    { "inc dx (66 42)", 0x967aacad },
    { "dec di (66 4f)", 0x3c54be5d },
    { "inc/dec esp (0x44/0x4c)", 0x3333f155 },
    { "mov r32,r32", 0xb4a5a9c5 },
    { "mov r16,r16", 0xc4f951a9 },
    { "mov ah,bl", 0x6344e085 },
    { "mov al,bh", 0xee3b34a9 },
    { "mov m32,r32", 0x9951dea5 },
    { "mov r32,m32", 0x79dc43cd },
    { "mov m16,r16", 0xdc5f00fd },
    { "mov r16,m16", 0xefa863d1 },
    { "mov m8,bh", 0x89977d35 },
    { "mov ah,m8", 0xfeddf99d },
    { "mov m32,imm32", 0x08274d65 },
    { "mov m16,imm16", 0x99a3e8b5 },
    { "mov m8,imm8", 0x08587f85 },
    { "mov r32,imm32", 0x7785d3f5 },
    { "mov r16,imm16", 0x4f7023a1 },
    { "mov ah,imm8", 0x99c81035 },
    { "mov eax,moffs32", 0x695e506d },
    { "mov moffs32,eax", 0xeb007dcd },
    { "mov al,moffs8", 0x135e7179 },
    { "mov moffs16,ax", 0xcbdecbb1 },
    { "mov with SIB index", 0xce594b11 },
    { "movzx r32,r8", 0x379e97f1 },
    { "movzx r32,bh", 0x343ec06d },
    { "movzx r32,r16", 0xf367ae01 },
    { "movzx r16,r8", 0xde6256c5 },
    { "movzx r32,m8", 0x77129a55 },
    { "movzx r32,m16", 0x341f62b5 },
    { "movsx r32,r8", 0x918b2651 },
    { "movsx r32,bh", 0x01e95f75 },
    { "movsx r32,r16", 0x3739de41 },
    { "movsx r16,r8", 0x75aa533d },
    { "movsx r32,m8", 0x77129a55 },
    { "movsx r32,m16", 0x341f62b5 },
    { "xchg eax,r32 (short)", 0xdbeb49e5 },
    { "xchg r32,r32", 0xcc257c15 },
    { "xchg r16,r16", 0xa05bc675 },
    { "xchg ah,bl", 0xbb9b2245 },
    { "xchg m32,r32", 0x5e5e0331 },
    { "xchg m8,bh", 0xb01cb7e5 },
    { "nop / 66 nop", 0x722b40e5 },
    { "lea base+index*4+disp32", 0x8214a891 },
    { "lea base+index", 0x4fdfac51 },
    { "lea disp8 negative", 0xd43af291 },
    { "lea wraps at 4 GiB", 0x0fe84e01 },
    { "lea index*2+disp, no base", 0x83bcf8ed },
    { "lea with 16-bit operand size", 0xa1ad0cb9 },
    { "lea [bp+disp16] (16-bit address)", 0x93271579 },
    { "lea [bx+disp8] (16-bit address)", 0xcd1ff005 },
    { "lea [disp16] (16-bit address)", 0xaaca334d },
    { "cbw", 0x0bd696b5 },
    { "cwde", 0x3bfef201 },
    { "cwd", 0x99b552dd },
    { "cdq", 0x924b7c5d },
    { "bswap eax", 0x03b049b1 },
    { "bswap ebx", 0x840f7fad },
    { "bswap ebp", 0x187edda1 },
    { "xlat", 0xbf99f1e5 },
    { "lahf", 0xd1dec72d },
    { "sahf", 0xe3c7a525 },
    { "clc", 0x7897b715 },
    { "stc", 0xba12a3c5 },
    { "cmc", 0x0da951f5 },
    { "std", 0xa3775bb5 },
};
const unsigned sweep_nhashes = N(sweep_hashes);
/* END HASHES */
