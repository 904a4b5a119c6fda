/*
 * x87 - the floating-point unit.
 *
 * The kernel first enables the FPU as an OS does (CR0.EM = 0, CR0.MP = 1, CR0.NE = 1).
 * Sweeps over 30 double/single/int values (zeros, normals, denormals, huge, infinities,
 * quiet and signalling NaNs) in every rounding mode: loads and stores of every format
 * (m32/m64/m80, integers m16/m32/m64, BCD), fadd/fsub/fsubr/fmul/fdiv/fdivr with memory,
 * st(i) and popping forms, fsqrt fabs fchs frndint fxtract fscale fprem fprem1, compares
 * (fcom/fcomp/fucompp/ficom/ftst/fxam and fcomi/fucomip into EFLAGS), fcmovcc,
 * fist/fistp/fisttp with overflow, fincstp/fdecstp/ffree.  Results are taken as 80-bit
 * values.  Then known answers (constants, control word, tag word), fnstenv/fldenv and
 * fnsave/frstor images (without the instruction and operand pointer fields), MMX/x87
 * aliasing, unmasked exceptions raising #MF (vector 16) at the next waiting instruction, and
 * CR0.TS / CR0.EM raising #NM (vector 7).
 *
 * Left out because QEMU 7.2 differs from hardware there: the status word's DE flag
 * (denormal operand) and C1 round-up indicator; C0/C1/C3 (quotient bits) after fprem1;
 * which NaN results from a signalling and a quiet NaN operand; precision control
 * (PC = single/double); x87 stack overflow/underflow (QEMU raises no stack fault); the
 * fnstenv tag of MMX-written registers and the exponent an MMX write leaves in st(i).
 * Also left out: C0/C2/C3 after arithmetic (undefined), transcendental instructions.
 */
#include "sweep.h"

/* Buffer layout (prepare()): 0 double x, 8 double y, 16 control word, 24 single x,
 * 28 int32 x (its low half is the int16), 32 int64 x; results from 40 on. */
#define PRE "fninit\n\tfldcw 16(%esi)\n\t"
/* The status word without DE (QEMU does not raise the denormal-operand exception) and,
 * after arithmetic, without C0 C2 C3 (undefined) and C1 (the round-up indicator, which
 * QEMU does not set). */
#define ARITH_SW "fnstsw %ax\n\tand $0xb8fd, %eax\n\t"
#define FULL_SW "fnstsw %ax\n\tand $0xfffd, %eax\n\t"

#define BIN(name, op) STUB(name, PRE "fldl 0(%esi)\n\t" op " 8(%esi)\n\t" ARITH_SW "fstpt 40(%esi)")
BIN(fadd_m64, "faddl") BIN(fsub_m64, "fsubl") BIN(fsubr_m64, "fsubrl")
BIN(fmul_m64, "fmull") BIN(fdiv_m64, "fdivl") BIN(fdivr_m64, "fdivrl")
#define BINR(name, op) STUB(name, PRE "fldl 8(%esi)\n\tfldl 0(%esi)\n\t" op "\n\t" ARITH_SW \
                                 "fstpt 40(%esi)\n\tfstpt 50(%esi)")
BINR(fadd_st0, "fadd %st(1), %st") BINR(fadd_sti, "fadd %st, %st(1)")
BINR(fsub_st0, "fsub %st(1), %st") BINR(fsub_sti, "fsub %st, %st(1)")
BINR(fsubr_st0, "fsubr %st(1), %st") BINR(fmul_sti, "fmul %st, %st(1)")
BINR(fdiv_st0, "fdiv %st(1), %st") BINR(fdiv_sti, "fdiv %st, %st(1)")
BINR(fdivr_sti, "fdivr %st, %st(1)")
#define BINP(name, op) STUB(name, PRE "fldl 8(%esi)\n\tfldl 0(%esi)\n\t" op "\n\t" ARITH_SW "fstpt 40(%esi)")
BINP(faddp, "faddp") BINP(fsubp, "fsubp") BINP(fsubrp, "fsubrp") BINP(fmulp, "fmulp")
BINP(fdivp, "fdivp") BINP(fdivrp, "fdivrp")
BINP(fscale, "fscale")
STUB(fadd_m32, PRE "flds 24(%esi)\n\tfadds 24(%esi)\n\t" ARITH_SW "fstpt 40(%esi)")
STUB(fmul_m32, PRE "fldl 8(%esi)\n\tfmuls 24(%esi)\n\t" ARITH_SW "fstpt 40(%esi)")
STUB(fiadd_m32, PRE "fldl 8(%esi)\n\tfiaddl 28(%esi)\n\t" ARITH_SW "fstpt 40(%esi)")
STUB(fidiv_m16, PRE "fldl 8(%esi)\n\tfidivs 28(%esi)\n\t" ARITH_SW "fstpt 40(%esi)")
STUB(fisubr_m32, PRE "fldl 8(%esi)\n\tfisubrl 28(%esi)\n\t" ARITH_SW "fstpt 40(%esi)")
/* fprem/fprem1: C0 C1 C3 hold quotient bits, C2 = incomplete: all defined. */
STUB(fprem, PRE "fldl 8(%esi)\n\tfldl 0(%esi)\n\tfprem\n\t" FULL_SW "fstpt 40(%esi)\n\tfstpt 50(%esi)")
/* QEMU 7.2 gets the quotient bits (C0 C1 C3) of fprem1 wrong: left out. */
STUB(fprem1, PRE "fldl 8(%esi)\n\tfldl 0(%esi)\n\tfprem1\n\t" FULL_SW "and $0xbcff, %eax\n\t"
             "fstpt 40(%esi)\n\tfstpt 50(%esi)")
/* compares: C0 C2 C3 defined, C1 = 0 */
STUB(fcom, PRE "fldl 8(%esi)\n\tfldl 0(%esi)\n\tfcom %st(1)\n\t" FULL_SW)
STUB(fcomp_m64, PRE "fldl 0(%esi)\n\tfcompl 8(%esi)\n\t" FULL_SW)
STUB(fcom_m32, PRE "fldl 0(%esi)\n\tfcoms 24(%esi)\n\t" FULL_SW)
STUB(fucompp, PRE "fldl 8(%esi)\n\tfldl 0(%esi)\n\tfucompp\n\t" FULL_SW)
STUB(ficom_m32, PRE "fldl 8(%esi)\n\tficoml 28(%esi)\n\t" FULL_SW)
STUB(fcomi, PRE "fldl 8(%esi)\n\tfldl 0(%esi)\n\tfcomi %st(1), %st\n\t" FULL_SW)
STUB(fucomip, PRE "fldl 8(%esi)\n\tfldl 0(%esi)\n\tfucomip %st(1), %st\n\t" FULL_SW)
#define UN(name, op) STUB(name, PRE "fldl 0(%esi)\n\t" op "\n\t" ARITH_SW "fstpt 40(%esi)")
UN(fsqrt, "fsqrt") UN(fabs_, "fabs") UN(fchs, "fchs") UN(frndint, "frndint")
STUB(fxtract, PRE "fldl 0(%esi)\n\tfxtract\n\t" ARITH_SW "fstpt 40(%esi)\n\tfstpt 50(%esi)")
STUB(ftst, PRE "fldl 0(%esi)\n\tftst\n\t" FULL_SW)
STUB(fxam, PRE "fldl 0(%esi)\n\tfxam\n\t" FULL_SW)
STUB(fxam_empty, PRE "fxam\n\t" FULL_SW)
/* loads and stores */
STUB(fld_m32, PRE "flds 24(%esi)\n\t" ARITH_SW "fstpt 40(%esi)")
STUB(fld_m64, PRE "fldl 0(%esi)\n\t" ARITH_SW "fstpt 40(%esi)")
STUB(fld_m80, PRE "fldl 0(%esi)\n\tfmull 8(%esi)\n\tfstpt 40(%esi)\n\tfldt 40(%esi)\n\t" ARITH_SW "fstpt 50(%esi)")
STUB(fst_m32, PRE "fldl 0(%esi)\n\tfsts 40(%esi)\n\t" ARITH_SW)
STUB(fstp_m64, PRE "fldl 0(%esi)\n\tfdivl 8(%esi)\n\tfstpl 40(%esi)\n\t" ARITH_SW)
STUB(fild_m16, PRE "filds 28(%esi)\n\t" ARITH_SW "fstpt 40(%esi)")
STUB(fild_m32, PRE "fildl 28(%esi)\n\t" ARITH_SW "fstpt 40(%esi)")
STUB(fild_m64, PRE "fildll 32(%esi)\n\t" ARITH_SW "fstpt 40(%esi)")
STUB(fist_m16, PRE "fldl 0(%esi)\n\tfists 40(%esi)\n\t" ARITH_SW)
STUB(fistp_m32, PRE "fldl 0(%esi)\n\tfistpl 40(%esi)\n\t" ARITH_SW)
STUB(fistp_m64, PRE "fldl 0(%esi)\n\tfistpll 40(%esi)\n\t" ARITH_SW)
STUB(fisttp_m32, PRE "fldl 0(%esi)\n\tfisttpl 40(%esi)\n\t" ARITH_SW)
STUB(fisttp_m16, PRE "fldl 0(%esi)\n\tfisttps 40(%esi)\n\t" ARITH_SW)
STUB(fbstp, PRE "fldl 0(%esi)\n\tfbstp 40(%esi)\n\t" ARITH_SW)
STUB(fbld, PRE "fldl 0(%esi)\n\tfrndint\n\tfbstp 40(%esi)\n\tfbld 40(%esi)\n\t" ARITH_SW "fstpt 50(%esi)")
/* the stack */
STUB(fxch, PRE "fldl 8(%esi)\n\tfldl 0(%esi)\n\tfxch\n\t" ARITH_SW "fstpt 40(%esi)\n\tfstpt 50(%esi)")
/* (x87 stack overflow and underflow are not tested: QEMU raises no stack fault.) */
STUB(incdec, PRE "fldl 0(%esi)\n\tfldl 8(%esi)\n\tfincstp\n\tffree %st(7)\n\tfdecstp\n\t"
             "fdecstp\n\t" FULL_SW "fincstp\n\tfincstp\n\tfstpt 40(%esi)")
/* fcmov: EFLAGS from the sweep select */
#define FCMOV(cc) STUB(fcmov##cc, PRE "fldl 8(%esi)\n\tfldl 0(%esi)\n\tfcmov" #cc " %st(1), %st\n\t" \
                                  ARITH_SW "fstpt 40(%esi)")
FCMOV(b) FCMOV(e) FCMOV(be) FCMOV(u) FCMOV(nb) FCMOV(ne) FCMOV(nbe) FCMOV(nu)

/* flags are not compared: the x87 leaves EFLAGS alone, except fcomi */
/* Two NaN operands: QEMU returns the one with the larger significand also when one is
 * signalling and the other quiet, where the x87 returns the quiet one.  Left out. */
static uint32_t not_two_nans(const struct sweep *s, const struct regs *in)
{
    return in->eax >= 27 && in->ebx >= 27 ? SWEEP_SKIP : s->fmask;
}
#undef SW
#define SW 0, not_two_nans
static struct sweep bin_sweeps[] = {
    { "fadd m64", fadd_m64, SW, 0 }, { "fsub m64", fsub_m64, SW, 0 },
    { "fsubr m64", fsubr_m64, SW, 0 }, { "fmul m64", fmul_m64, SW, 0 },
    { "fdiv m64", fdiv_m64, SW, 0 }, { "fdivr m64", fdivr_m64, SW, 0 },
    { "fadd st,st(1)", fadd_st0, SW, 0 }, { "fadd st(1),st", fadd_sti, SW, 0 },
    { "fsub st,st(1)", fsub_st0, SW, 0 }, { "fsub st(1),st", fsub_sti, SW, 0 },
    { "fsubr st,st(1)", fsubr_st0, SW, 0 }, { "fmul st(1),st", fmul_sti, SW, 0 },
    { "fdiv st,st(1)", fdiv_st0, SW, 0 }, { "fdiv st(1),st", fdiv_sti, SW, 0 },
    { "fdivr st(1),st", fdivr_sti, SW, 0 },
    { "faddp", faddp, SW, 0 }, { "fsubp (de e9)", fsubp, SW, 0 },
    { "fsubrp (de e1)", fsubrp, SW, 0 }, { "fmulp", fmulp, SW, 0 },
    { "fdivp (de f9)", fdivp, SW, 0 }, { "fdivrp (de f1)", fdivrp, SW, 0 },
    { "fscale", fscale, SW, 0 },
    { "fadd m32", fadd_m32, SW, 0 }, { "fmul m32", fmul_m32, SW, 0 },
    { "fiadd m32", fiadd_m32, SW, 0 }, { "fidiv m16", fidiv_m16, SW, 0 },
    { "fisubr m32", fisubr_m32, SW, 0 },
    { "fprem", fprem, SW, 0 }, { "fprem1", fprem1, SW, 0 },
    { "fcom st(1)", fcom, SW, 0 }, { "fcomp m64", fcomp_m64, SW, 0 },
    { "fcom m32", fcom_m32, SW, 0 }, { "fucompp", fucompp, SW, 0 },
    { "ficom m32", ficom_m32, SW, 0 },
    { "fcomi", fcomi, FL_ARITH, not_two_nans, 0 }, { "fucomip", fucomip, FL_ARITH, not_two_nans, 0 },
    { "fld m80 / fstp m80", fld_m80, SW, 0 }, { "fstp m64 (rounded)", fstp_m64, SW, 0 },
    { "fxch", fxch, SW, 0 },
    { "fincstp/fdecstp/ffree", incdec, SW, 0 },
};
#undef SW
#define SW 0, 0
static struct sweep un_sweeps[] = {
    { "fsqrt", fsqrt, SW, 0 }, { "fabs", fabs_, SW, 0 }, { "fchs", fchs, SW, 0 },
    { "frndint", frndint, SW, 0 }, { "fxtract", fxtract, SW, 0 },
    { "ftst", ftst, SW, 0 }, { "fxam", fxam, SW, 0 }, { "fxam empty", fxam_empty, SW, 0 },
    { "fld m32", fld_m32, SW, 0 }, { "fld m64", fld_m64, SW, 0 },
    { "fst m32", fst_m32, SW, 0 },
    { "fild m16", fild_m16, SW, 0 }, { "fild m32", fild_m32, SW, 0 },
    { "fild m64", fild_m64, SW, 0 }, { "fist m16", fist_m16, SW, 0 },
    { "fistp m32", fistp_m32, SW, 0 }, { "fistp m64", fistp_m64, SW, 0 },
    { "fisttp m32", fisttp_m32, SW, 0 }, { "fisttp m16", fisttp_m16, SW, 0 },
    { "fbstp", fbstp, SW, 0 }, { "fbld", fbld, SW, 0 },
};
static struct sweep fcmov_sweeps[] = {
    { "fcmovb", fcmovb, SW, 0 }, { "fcmove", fcmove, SW, 0 },
    { "fcmovbe", fcmovbe, SW, 0 }, { "fcmovu", fcmovu, SW, 0 },
    { "fcmovnb", fcmovnb, SW, 0 }, { "fcmovne", fcmovne, SW, 0 },
    { "fcmovnbe", fcmovnbe, SW, 0 }, { "fcmovnu", fcmovnu, SW, 0 },
};

static const uint64_t dv[] = {
    0x0000000000000000ull, 0x8000000000000000ull, 0x3ff0000000000000ull, 0xbff0000000000000ull,
    0x3ff8000000000000ull, 0x4004000000000000ull, 0xc004000000000000ull, 0x400c000000000000ull,
    0x3fb999999999999aull, 0x3fd5555555555555ull, 0x4202a05f20000000ull, 0xc202a05f20000000ull,
    0x7e37e43c8800759cull, 0x01a56e1fc2f8f359ull, 0x0000000000000001ull, 0x7fefffffffffffffull,
    0x7ff0000000000000ull, 0xfff0000000000000ull, 0x41e0000000000000ull, 0xc1e0000000200000ull,
    0x40fe240c9fbe76c9ull, 0x3fe0000000000000ull, 0x43e0000000000000ull, 0x4059000000000000ull,
    0xc01c000000000000ull, 0x3fe8000000000000ull, 0x37a16c262777579cull, 0x7ff8000000000000ull,
    0xfff8000000000123ull, 0x7ff0000000000001ull,
};
static const uint32_t sv[] = {
    0x00000000, 0x80000000, 0x3f800000, 0xbf800000, 0x3fc00000, 0x40200000, 0xc0200000,
    0x40600000, 0x3dcccccd, 0x3eaaaaab, 0x501502f9, 0xd01502f9, 0x7f7fffff, 0x00800000,
    0x00000001, 0x000116c2, 0x7f800000, 0xff800000, 0x4f000000, 0xcf000000, 0x47f12065,
    0x3f000000, 0x5f000000, 0x42c80000, 0xc0e00000, 0x3f400000, 0x00400000, 0x7fc00000,
    0xffc00123, 0x7f800001,
};
static const uint32_t iv[] = {
    0, 1, 2, 0xffffffff, 3, 7, 0xfffffff9, 100, 0x7fffffff, 0x80000000, 0x00012345,
    0xfffe0000, 0x00008000, 0x0000ffff, 0x00007fff, 0x12345678, 10, 0xfffffff6, 1000000007,
    0x40000000, 0xc0000000, 5, 0xfffffffb, 64, 0x7ffffffe, 0x80000001, 9, 0x10000, 0x1ffff, 0xff,
};
static const uint64_t lv[] = {
    0, 1, 0xffffffffffffffffull, 0x0020000000000001ull, 0x7fffffffffffffffull,
    0x8000000000000000ull, 0x0de0b6b3a7640000ull, 0xfffff4c6f1e13c1eull, 0x123456789abcdef0ull,
    2, 3, 0x100000000ull, 0xffffffff00000000ull, 0x0000000080000000ull, 12345678901234ull,
    0x4000000000000000ull, 0xc000000000000000ull, 0x000fffffffffffffull, 0x001fffffffffffffull,
    0x0040000000000001ull, 10, 100, 1000, 0xfffffffffffffc18ull, 7, 0x7ffffffffffffc00ull,
    0x8000000000000400ull, 0xfffffffffffffffeull, 0x5555555555555555ull, 0xaaaaaaaaaaaaaaaaull,
};

static uint32_t idx[30];
static const uint32_t cws[] = { 0x037f, 0x077f, 0x0b7f, 0x0f7f };   /* every rounding mode */
static const uint32_t cw_nearest[] = { 0x037f, 0x0f7f };
static const uint32_t no_flags[] = { 0 };
static const uint32_t fcmov_flags[] = { 0, FL_CF, FL_ZF, FL_PF, FL_CF | FL_ZF | FL_PF };

static void prepare(const struct regs *in)
{
    uint32_t a = in->eax, b = in->ebx;
    memcpy(sweep_buf + 0, &dv[a], 8);
    memcpy(sweep_buf + 8, &dv[b], 8);
    uint16_t cw = (uint16_t)in->ecx;
    memcpy(sweep_buf + 16, &cw, 2);
    memcpy(sweep_buf + 24, &sv[a], 4);
    memcpy(sweep_buf + 28, &iv[a], 4);
    memcpy(sweep_buf + 32, &lv[a], 8);
}

/* ---- known answers and system behaviour -------------------------------------------------- */
static uint8_t save[512] __attribute__((aligned(16)));

static void known_answers(void)
{
    uint16_t cw, sw;
    uint32_t env[7];
    uint8_t t[10];
    asm volatile("fninit; fnstcw %0; fnstsw %1" : "=m"(cw), "=m"(sw));
    is(cw, 0x037f, "fninit: control word 0x037f");
    is(sw, 0, "fninit: status word 0");
    asm volatile("fnstenv %0" : "=m"(env));
    is(env[2] & 0xffff, 0xffff, "fninit: tag word all empty");
    static const uint8_t pi[10] = { 0x35, 0xc2, 0x68, 0x21, 0xa2, 0xda, 0x0f, 0xc9, 0x00, 0x40 };
    asm volatile("fldpi; fstpt %0" : "=m"(t));
    is_mem(t, pi, 10, "fldpi");
    static const uint8_t one[10] = { 0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f };
    asm volatile("fld1; fstpt %0" : "=m"(t));
    is_mem(t, one, 10, "fld1");
    static const uint8_t l2t[10] = { 0xfe, 0x8a, 0x1b, 0xcd, 0x4b, 0x78, 0x9a, 0xd4, 0x00, 0x40 };
    asm volatile("fldl2t; fstpt %0" : "=m"(t));
    is_mem(t, l2t, 10, "fldl2t");
    static const uint8_t ln2[10] = { 0xac, 0x79, 0xcf, 0xd1, 0xf7, 0x17, 0x72, 0xb1, 0xfe, 0x3f };
    asm volatile("fldln2; fstpt %0" : "=m"(t));
    is_mem(t, ln2, 10, "fldln2");

    /* 1.5 + 2.25 = 3.75; sqrt(2) in double */
    static const uint64_t a = 0x3ff8000000000000ull, b = 0x4002000000000000ull, two = 0x4000000000000000ull;
    uint64_t r;
    asm volatile("fninit; fldl %1; faddl %2; fstpl %0" : "=m"(r) : "m"(a), "m"(b));
    is64(r, 0x400e000000000000ull, "1.5 + 2.25 = 3.75");
    asm volatile("fninit; fldl %1; fsqrt; fstpl %0" : "=m"(r) : "m"(two));
    is64(r, 0x3ff6a09e667f3bcdull, "sqrt(2)");
    int32_t i;
    static const uint64_t m25 = 0xc004000000000000ull;   /* -2.5 */
    static const uint16_t rc[4] = { 0x037f, 0x077f, 0x0b7f, 0x0f7f };
    static const int32_t want[4] = { -2, -3, -2, -2 };
    static const char *names[4] = { "nearest", "down", "up", "chop" };
    for (unsigned k = 0; k < 4; k++) {
        asm volatile("fninit; fldcw %2; fldl %1; fistpl %0" : "=m"(i) : "m"(m25), "m"(rc[k]));
        is((uint32_t)i, (uint32_t)want[k], "fistp -2.5 rounding %s", names[k]);
    }
    /* stack: TOP after two pushes is 6, tag word shows two valid registers */
    asm volatile("fninit; fld1; fldz; fnstsw %0; fnstenv %1" : "=m"(sw), "=m"(env));
    is((sw >> 11) & 7, 6, "TOP = 6 after two pushes");
    is(env[2] & 0xffff, 0x1fff, "tag word: st0 (register 6) zero, st1 (7) valid, rest empty");
    asm volatile("fninit");
}

static void save_images(void)
{
    static const uint64_t x = 0x400921fb54442d18ull, y = 0xc05edd2f1a9fbe77ull; /* pi, -123.456 */
    uint16_t cw;
    asm volatile("fninit; fldcw %0" :: "m"((uint16_t){ 0x0e7f }));
    asm volatile("fldl %0; fldl %1; fnsave %2" :: "m"(x), "m"(y), "m"(save) : "memory");
    asm volatile("fnstcw %0" : "=m"(cw));
    is(cw, 0x037f, "fnsave reinitializes the FPU");
    uint32_t *w = (uint32_t *)save;
    is(w[0] & 0xffff, 0x0e7f, "fnsave image: control word");
    is(w[1] & 0xffff, 0x3000, "fnsave image: status word (TOP = 6)");
    is(w[2] & 0xffff, 0x0fff, "fnsave image: tag word");
    static const uint8_t st0[10] = { 0x00, 0xb8, 0xf3, 0xfd, 0xd4, 0x78, 0xe9, 0xf6, 0x05, 0xc0 };
    is_mem(save + 28, st0, 10, "fnsave image: st0 = -123.456");
    static const uint8_t st1[10] = { 0x00, 0xc0, 0x68, 0x21, 0xa2, 0xda, 0x0f, 0xc9, 0x00, 0x40 };
    is_mem(save + 38, st1, 10, "fnsave image: st1 = pi (as a double)");
    uint64_t r;
    asm volatile("frstor %1; fstpl %0" : "=m"(r) : "m"(save));
    is64(r, y, "frstor brings the stack back");
    asm volatile("fstpl %0; fnstcw %1" : "=m"(r), "=m"(cw));
    is64(r, x, "frstor: second register");
    is(cw, 0x0e7f, "frstor: control word");
    uint32_t env[7];
    asm volatile("fninit; fldcw %1; fld1; fnstenv %0; fninit; fldenv %0; fnstcw %2"
                 : "=m"(env), "+m"((uint16_t){ 0x027f }), "=m"(cw));
    is(cw, 0x027f, "fnstenv/fldenv round trip: control word");
    uint16_t sw;
    asm volatile("fnstsw %0; fninit" : "=m"(sw));
    is((sw >> 11) & 7, 7, "fnstenv/fldenv round trip: TOP");
}

static void mmx(void)
{
    static const uint64_t a = 0x0102030405060708ull, b = 0x10ff10ff10ff10ffull;
    uint64_t r;
    uint32_t env[7];
    asm volatile("fninit; movq %1, %%mm0; paddb %2, %%mm0; movq %%mm0, %0; fnstenv %3"
                 : "=m"(r) : "m"(a), "m"(b), "m"(env));
    is64(r, 0x1101130315051707ull, "MMX paddb");
    /* fnstenv tags MMX-written registers "special" on hardware, "valid" under QEMU: only
     * check that none is empty */
    uint32_t tw = env[2] & 0xffff;
    ok(!(tw & (tw >> 1) & 0x5555), "after an MMX instruction no register is empty");
    is((env[1] >> 11) & 7, 0, "after an MMX instruction TOP = 0");
    uint8_t t[10];
    asm volatile("fnstenv %0; fldenv %0; fstpt %1" : "=m"(env), "=m"(t));   /* st0 aliases mm0 */
    is_mem(t, &r, 8, "mm0 is the significand of st0");
    asm volatile("emms; fnstenv %0" : "=m"(env));
    is(env[2] & 0xffff, 0xffff, "emms empties the tag word");
}

#ifndef HOST
static void exceptions(void)
{
    /* Unmasked zero-divide: fdiv leaves it pending, the next waiting instruction raises #MF. */
    static const uint64_t one = 0x3ff0000000000000ull, zero = 0;
    uint32_t at;
    rt_clear_last();
    asm volatile("fninit; fldcw %2\n\t"
                 "fldl %3; fdivl %4\n\t"
                 CATCH("2f")
                 "movl $1f, %0\n"
                 "1:\tfwait\n"
                 "2:\t" UNCATCH
                 : "=m"(at), "=m"(rt_last) : "m"((uint16_t){ 0x037b }), "m"(one), "m"(zero) : "memory");
    is(rt_last.vector, 16, "unmasked zero-divide: #MF at the next fwait");
    is(rt_last.eip, at, "#MF points at the waiting instruction");
    uint16_t sw;
    asm volatile("fnstsw %0; fnclex; fninit" : "=m"(sw));
    is(sw & 0x80bf, 0x8084, "status word: ZE, ES and B set");

    /* CR0.TS: the first x87 instruction raises #NM; clts clears TS. */
    write_cr0(read_cr0() | CR0_TS);
    rt_clear_last();
    asm volatile(CATCH("2f") "movl $1f, %0\n1:\tfninit\n2:\t" UNCATCH : "=m"(at) :: "memory");
    is(rt_last.vector, 7, "CR0.TS = 1: fninit raises #NM");
    is(rt_last.eip, at, "#NM points at the instruction");
    rt_clear_last();
    asm volatile(CATCH("2f") "1:\tfwait\n2:\t" UNCATCH ::: "memory");
    is(rt_last.vector, 7, "CR0.TS = 1 and CR0.MP = 1: fwait raises #NM");
    asm volatile("clts");
    ok(!(read_cr0() & CR0_TS), "clts clears CR0.TS");
    rt_clear_last();
    asm volatile(CATCH("2f") "fninit\n2:\t" UNCATCH ::: "memory");
    is(rt_last.count, 0, "after clts the FPU works");
    write_cr0((read_cr0() | CR0_TS) & ~CR0_MP);
    rt_clear_last();
    asm volatile(CATCH("2f") "fwait\n2:\t" UNCATCH ::: "memory");
    is(rt_last.count, 0, "CR0.TS = 1 and CR0.MP = 0: fwait does not fault");
    asm volatile("clts");
    write_cr0(read_cr0() | CR0_EM | CR0_MP);
    rt_clear_last();
    asm volatile(CATCH("2f") "fldz\n2:\t" UNCATCH ::: "memory");
    is(rt_last.vector, 7, "CR0.EM = 1: fldz raises #NM");
    write_cr0(read_cr0() & ~CR0_EM);
    asm volatile("fninit");
}
#endif

void test_main(void)
{
    rt_enable_fpu_sse();
    for (unsigned i = 0; i < 30; i++)
        idx[i] = i;
    struct sweep_space bin = { idx, 30, idx, 30, cw_nearest, N(cw_nearest), no_flags, 1, prepare };
    struct sweep_space un = { idx, 30, idx, 1, cws, N(cws), no_flags, 1, prepare };
    struct sweep_space fc = { idx, 30, idx + 2, 1, cw_nearest, 1, fcmov_flags, N(fcmov_flags), prepare };
    sweep_all(bin_sweeps, N(bin_sweeps), &bin);
    /* every rounding mode for the arithmetic that rounds (precision control is not tested:
     * QEMU rounds differently from hardware with PC = single or double) */
    struct sweep_space binr = { idx, 30, idx, 30, cws, N(cws), no_flags, 1, prepare };
    static struct sweep rounding[] = {
        { "fadd m64, all rounding modes", fadd_m64, 0, not_two_nans, 0 },
        { "fmul m64, all rounding modes", fmul_m64, 0, not_two_nans, 0 },
        { "fdiv m64, all rounding modes", fdiv_m64, 0, not_two_nans, 0 },
        { "fsubr st(1), all rounding modes", fsubr_st0, 0, not_two_nans, 0 },
        { "fstp m64, all rounding modes", fstp_m64, 0, not_two_nans, 0 },
    };
    sweep_all(rounding, N(rounding), &binr);
    sweep_all(un_sweeps, N(un_sweeps), &un);
    sweep_all(fcmov_sweeps, N(fcmov_sweeps), &fc);
    known_answers();
    save_images();
    mmx();
#ifndef HOST
    exceptions();
#endif
}

/* BEGIN HASHES (recorded on hardware by host/record-hashes.py) */
const struct sweep_hash sweep_hashes[] = {
    { "fadd m64", 0x273178c9 },
    { "fsub m64", 0x12aabcb9 },
    { "fsubr m64", 0x92f9edb9 },
    { "fmul m64", 0xd94461e8 },
    { "fdiv m64", 0x25aa69b8 },
    { "fdivr m64", 0xb4acb3b8 },
    { "fadd st,st(1)", 0xdf92dffd },
    { "fadd st(1),st", 0xfcf927d1 },
    { "fsub st,st(1)", 0xed7cf299 },
    { "fsub st(1),st", 0x530fce7d },
    { "fsubr st,st(1)", 0x3b080799 },
    { "fmul st(1),st", 0x78c54ebc },
    { "fdiv st,st(1)", 0x25aaec54 },
    { "fdiv st(1),st", 0x809bf04c },
    { "fdivr st(1),st", 0x843fb5b8 },
    { "faddp", 0x273178c9 },
    { "fsubp (de e9)", 0x12aabcb9 },
    { "fsubrp (de e1)", 0x92f9edb9 },
    { "fmulp", 0xd94461e8 },
    { "fdivp (de f9)", 0x25aa69b8 },
    { "fdivrp (de f1)", 0xb4acb3b8 },
    { "fscale", 0x0e782655 },
    { "fadd m32", 0x5d450fb1 },
    { "fmul m32", 0xf557b16a },
    { "fiadd m32", 0xc0cd0363 },
    { "fidiv m16", 0x9a112e4c },
    { "fisubr m32", 0xa05f605c },
    { "fprem", 0x2abf85b9 },
    { "fprem1", 0xa1c9b7d5 },
    { "fcom st(1)", 0xf1d831f9 },
    { "fcomp m64", 0x500e5d99 },
    { "fcom m32", 0xa7d4bb7d },
    { "fucompp", 0x70b370f5 },
    { "ficom m32", 0xf706bc2d },
    { "fcomi", 0x2aafa775 },
    { "fucomip", 0x63be4fd1 },
    { "fld m80 / fstp m80", 0xf1cfe689 },
    { "fstp m64 (rounded)", 0x7cb697bd },
    { "fxch", 0x37bca441 },
    { "fincstp/fdecstp/ffree", 0xef89a3a5 },
    { "fadd m64, all rounding modes", 0xb4304df5 },
    { "fmul m64, all rounding modes", 0xb0089d55 },
    { "fdiv m64, all rounding modes", 0x6764aded },
    { "fsubr st(1), all rounding modes", 0x12d9a701 },
    { "fstp m64, all rounding modes", 0x98d2de37 },
    { "fsqrt", 0xadbc24a1 },
    { "fabs", 0xd2eb483d },
    { "fchs", 0xdfc7c73d },
    { "frndint", 0x3ab18245 },
    { "fxtract", 0xd07dc555 },
    { "ftst", 0xcedcfb55 },
    { "fxam", 0x24e2d0e5 },
    { "fxam empty", 0xcc93aead },
    { "fld m32", 0xc3a9db7d },
    { "fld m64", 0xc603d13d },
    { "fst m32", 0xec2c34b5 },
    { "fild m16", 0x3fac525d },
    { "fild m32", 0x7012c845 },
    { "fild m64", 0xc1348b05 },
    { "fist m16", 0x8fe30b8b },
    { "fistp m32", 0x5a270ac3 },
    { "fistp m64", 0x9ad3f4bf },
    { "fisttp m32", 0x59374695 },
    { "fisttp m16", 0x6a85cae5 },
    { "fbstp", 0xef3eb705 },
    { "fbld", 0x761ee7cd },
    { "fcmovb", 0x4c01b399 },
    { "fcmove", 0x2be94285 },
    { "fcmovbe", 0x4d78152d },
    { "fcmovu", 0x08bc2089 },
    { "fcmovnb", 0x4362bcbd },
    { "fcmovne", 0x52fa2071 },
    { "fcmovnbe", 0xcaf400b9 },
    { "fcmovnu", 0xd1b1126d },
};
const unsigned sweep_nhashes = N(sweep_hashes);
/* END HASHES */
