/*
 * exceptions - exception and interrupt delivery through the IDT.
 *
 * Faults point at the faulting instruction (#DE, #UD, #GP, #NP, #SS, #BR), traps after it
 * (int3, int 3, into with OF = 1, int n); error codes are pushed for the
 * vectors that have them and not for software int n, even to such a vector; the pushed
 * CS/EFLAGS; interrupt gates clear IF, trap gates do not, both clear TF; iret restores
 * them.  #UD for ud0/ud1/ud2, lock prefixes where not allowed, lea with a register
 * operand, mov from CR1, syscall with EFER.SCE = 0, and instructions the virtual CPU does
 * not have: AVX (always #UD here: CR4.OSXSAVE is 0), xgetbv, and popcnt, movbe, crc32,
 * pshufb (SSSE3), pminsd (SSE4.1), rdrand, rdtscp, femms (3DNow!) — each either runs or
 * raises #UD exactly as CPUID says.  Event delivery problems: int n beyond the IDT limit
 * (#GP(n*8+2)), through a not-present gate (#NP(n*8+2)), a benign exception whose gate
 * is not present (#NP delivered), a contributory one whose gate is not present (#DF with
 * error code 0).  Single-stepping with EFLAGS.TF: a #DB trap after each instruction, the
 * first one after the instruction following the popf that set TF, the last one after the
 * popf that clears it, none after a mov to SS (the next instruction's covers it), DR6.BS.
 *
 * (A triple fault has its own kernel.)  Not tested because QEMU 7.2 differs from hardware:
 * int1/icebp (f1; QEMU raises #UD, hardware a #DB trap), the EXT bit of an error code for
 * a fault while delivering an exception (QEMU leaves it 0).
 */
#include "rt.h"

#define EXPECT_FAULT(desc, vec, has_error, error, at)                                       \
    is_trap(vec, has_error, error, at, "%s: vector %u, %s, EIP", desc, vec,                   \
            has_error ? "error code" : "no error code")

/* Runs `insn` (a string of instructions) and records where it started and where it ended. */
#define RUN(insn, ...)                                                                        \
    ({                                                                                        \
        uint32_t _at, _after;                                                                 \
        rt_clear_last();                                                                      \
        asm volatile(CATCH("3f") "movl $1f, %0\n\tmovl $2f, %1\n1:\t" insn "\n2:\tnop\n3:\t" UNCATCH \
                     : "=m"(_at), "=m"(_after) : __VA_ARGS__);                                 \
        at = _at;                                                                             \
        after = _after;                                                                       \
    })

static uint32_t at, after;

static void faults_and_traps(void)
{
    RUN("div %%ecx", "a"(1), "d"(0), "c"(0) : "memory");
    EXPECT_FAULT("div by 0", 0, 0, 0, at);
    RUN("ud2", "i"(0) : "memory");
    EXPECT_FAULT("ud2", 6, 0, 0, at);
    RUN("movw %w2, %%ds", "r"(0x100) : "memory");
    EXPECT_FAULT("mov ds, 0x100", 13, 1, 0x100, at);
    asm volatile("movw %w0, %%ds" :: "r"(SEL_KDATA));
    RUN("movw %w2, %%es", "r"(SEL_NOTPRESENT) : "memory");
    EXPECT_FAULT("mov es, not present", 11, 1, SEL_NOTPRESENT, at);
    asm volatile("movw %w0, %%es" :: "r"(SEL_KDATA));
    RUN("movw %w2, %%ss", "r"(SEL_NOTPRESENT) : "memory");
    EXPECT_FAULT("mov ss, not present", 12, 1, SEL_NOTPRESENT, at);
    static const int32_t bounds[2] = { 10, 20 };
    RUN("bound %2, (%3)", "r"(21), "r"(bounds) : "memory");
    EXPECT_FAULT("bound out of range", 5, 0, 0, at);
    RUN("bound %2, (%3)", "r"(20), "r"(bounds) : "memory");
    is(rt_last.count, 0, "bound in range: no exception");

    RUN("int3", "i"(0) : "memory");
    EXPECT_FAULT("int3", 3, 0, 0, after);
    RUN(".byte 0xcd, 0x03", "i"(0) : "memory");
    EXPECT_FAULT("int 3 (cd 03)", 3, 0, 0, after);
    RUN("pushl $0x802; popfl; into", "i"(0) : "memory", "cc");
    /* the frame's EIP is after into; `after` here is after the whole sequence */
    ok(rt_last.count == 1 && rt_last.vector == 4 && !rt_last.has_err && rt_last.eip == after,
       "into with OF = 1: vector 4, trap");
    RUN("pushl $0x002; popfl; into", "i"(0) : "memory", "cc");
    is(rt_last.count, 0, "into with OF = 0: nothing");
    RUN("int $0x30", "i"(0) : "memory");
    EXPECT_FAULT("int 0x30", 0x30, 0, 0, after);
    RUN("int $0x80", "i"(0) : "memory");
    EXPECT_FAULT("int 0x80", 0x80, 0, 0, after);
    RUN("int $0x0d", "i"(0) : "memory");
    EXPECT_FAULT("int 0x0d (software: no error code)", 13, 0, 0, after);
    RUN("int $0x0e", "i"(0) : "memory");
    EXPECT_FAULT("int 0x0e (software: no error code)", 14, 0, 0, after);
    RUN("int $0xff", "i"(0) : "memory");
    EXPECT_FAULT("int 0xff", 0xff, 0, 0, after);

    /* frame details */
    RUN("pushl $0x000008d7; popfl; int $0x31", "i"(0) : "memory", "cc");
    is(rt_last.eflags & 0x00000fff, 0x8d7 & ~0x100, "pushed EFLAGS: arithmetic flags and bit 1");
    asm volatile("pushl $2; popfl" ::: "cc");
}

static void gates(void)
{
    rt_idt_set(0x31, rt_stub(0x31), SEL_KCODE, GATE_TRAP);
    RUN("sti; int $0x30; cli", "i"(0) : "memory");
    ok(!(rt_last.handler_eflags & FL_IF) && (rt_last.eflags & FL_IF), "interrupt gate clears IF (pushed IF = 1)");
    RUN("sti; int $0x31; cli", "i"(0) : "memory");
    ok((rt_last.handler_eflags & FL_IF) && (rt_last.eflags & FL_IF), "trap gate leaves IF set");
    RUN("cli; int $0x31", "i"(0) : "memory");
    ok(!(rt_last.handler_eflags & FL_IF), "trap gate with IF = 0: stays 0");
    uint32_t f;
    rt_clear_last();
    asm volatile(CATCH("1f") "sti\n\tint $0x30\n1:\tpushfl\n\tpopl %0\n\tcli" : "=r"(f) :: "memory");
    ok(f & FL_IF, "iret from an interrupt gate restores IF = 1");
    rt_idt_set(0x31, rt_stub(0x31), SEL_KCODE, GATE_INT);
    /* the gate's selector decides CS in the handler */
    rt_idt_set(0x32, rt_stub(0x32), SEL_KCODE2, GATE_INT);
    rt_clear_last();
    uint32_t cs;
    asm volatile(CATCH("1f") "int $0x32\n1:\tmovl %%cs, %0" : "=r"(cs) :: "memory");
    ok(rt_last.vector == 0x32 && rt_last.cs == SEL_KCODE && cs == SEL_KCODE,
       "gate with CS = 0x18: handler ran, iret back to CS = 0x08");
    rt_idt_set(0x32, rt_stub(0x32), SEL_KCODE, GATE_INT);
}

static int has(uint32_t reg, unsigned bit) { return (reg >> bit) & 1; }

static void undefined(void)
{
    RUN(".byte 0x0f, 0xb9, 0xc0", "i"(0) : "memory");
    EXPECT_FAULT("ud1", 6, 0, 0, at);
    RUN(".byte 0x0f, 0xff, 0xc0", "i"(0) : "memory");
    EXPECT_FAULT("ud0", 6, 0, 0, at);
    RUN(".byte 0xf0, 0x90", "i"(0) : "memory");
    EXPECT_FAULT("lock nop", 6, 0, 0, at);
    RUN(".byte 0xf0, 0x01, 0xd8", "i"(0) : "memory", "eax");
    EXPECT_FAULT("lock add eax, ebx (register destination)", 6, 0, 0, at);
    RUN(".byte 0x8d, 0xc0", "i"(0) : "memory", "eax");
    EXPECT_FAULT("lea eax, eax", 6, 0, 0, at);
    RUN(".byte 0x0f, 0x20, 0xc8", "i"(0) : "memory", "eax");
    EXPECT_FAULT("mov eax, cr1", 6, 0, 0, at);
    RUN(".byte 0x0f, 0x05", "i"(0) : "memory", "ecx");
    EXPECT_FAULT("syscall (EFER.SCE = 0)", 6, 0, 0, at);
    RUN(".byte 0xc5, 0xf8, 0x58, 0xc1", "i"(0) : "memory");          /* vaddps xmm0, xmm0, xmm1 */
    EXPECT_FAULT("vaddps with CR4.OSXSAVE = 0", 6, 0, 0, at);
    RUN(".byte 0xc4, 0xe2, 0x79, 0x18, 0x06", "S"(0x1000) : "memory");  /* vbroadcastss xmm0, [esi] */
    EXPECT_FAULT("vbroadcastss (c4 form) with CR4.OSXSAVE = 0", 6, 0, 0, at);
    RUN(".byte 0x0f, 0x01, 0xd0", "c"(0) : "memory", "eax", "edx");    /* xgetbv */
    EXPECT_FAULT("xgetbv with CR4.OSXSAVE = 0", 6, 0, 0, at);

    uint32_t a, b, c, d, xa, xb, xc, xd;
    cpuid(1, &a, &b, &c, &d);
    cpuid(0x80000000, &xa, &xb, &xc, &xd);
    xd = 0;
    if (xa >= 0x80000001)
        cpuid(0x80000001, &xa, &xb, &xc, &xd);
    static uint8_t mem[16] __attribute__((aligned(16)));
    struct { const char *name; int present; } f[] = {
        { "popcnt", has(c, 23) }, { "movbe", has(c, 22) }, { "crc32 (SSE4.2)", has(c, 20) },
        { "pshufb (SSSE3)", has(c, 9) }, { "pminsd (SSE4.1)", has(c, 19) },
        { "rdrand", has(c, 30) }, { "rdtscp", has(xd, 27) }, { "femms (3DNow!)", has(xd, 31) },
    };
    for (unsigned i = 0; i < sizeof f / sizeof f[0]; i++) {
        switch (i) {
        case 0: RUN(".byte 0xf3, 0x0f, 0xb8, 0xc1", "c"(7) : "memory", "eax"); break;
        case 1: RUN(".byte 0x0f, 0x38, 0xf0, 0x06", "S"(mem) : "memory", "eax"); break;
        case 2: RUN(".byte 0xf2, 0x0f, 0x38, 0xf1, 0xc1", "a"(0), "c"(0) : "memory"); break;
        case 3: RUN(".byte 0x66, 0x0f, 0x38, 0x00, 0xc1", "i"(0) : "memory"); break;
        case 4: RUN(".byte 0x66, 0x0f, 0x38, 0x39, 0xc1", "i"(0) : "memory"); break;
        case 5: RUN(".byte 0x0f, 0xc7, 0xf0", "i"(0) : "memory", "eax", "cc"); break;
        case 6: RUN(".byte 0x0f, 0x01, 0xf9", "i"(0) : "memory", "eax", "ecx", "edx"); break;
        case 7: RUN(".byte 0x0f, 0x0e", "i"(0) : "memory"); break;
        }
        if (f[i].present)
            is(rt_last.count, 0, "%s: runs, as CPUID says", f[i].name);
        else
            EXPECT_FAULT(f[i].name, 6, 0, 0, at);
    }
}

struct dtr {
    uint16_t pad, limit;
    uint32_t base;
} __attribute__((packed, aligned(4)));

static void load_idt(uint16_t limit)
{
    struct dtr d = { 0, limit, (uint32_t)rt_idt };
    asm volatile("lidt %0" :: "m"(d.limit) : "memory");
}

static void delivery(void)
{
    load_idt(0x30 * 8 - 1);     /* vectors 0..0x2f */
    RUN("int $0x30", "i"(0) : "memory");
    EXPECT_FAULT("int 0x30 beyond the IDT limit: #GP(0x30*8+2)", 13, 1, 0x30 * 8 + 2, at);
    load_idt(0x7ff);

    uint64_t saved = rt_idt[0x40];
    rt_idt[0x40] &= ~(1ull << 47);      /* P = 0 */
    RUN("int $0x40", "i"(0) : "memory");
    EXPECT_FAULT("int 0x40 through a not-present gate: #NP(0x40*8+2)", 11, 1, 0x40 * 8 + 2, at);
    rt_idt[0x40] = saved;

    /* benign #UD whose gate is not present: the #NP is delivered normally */
    saved = rt_idt[6];
    rt_idt[6] &= ~(1ull << 47);
    RUN("ud2", "i"(0) : "memory");
    /* the EXT bit (0) is left out: hardware sets it (the #NP happened while delivering an
     * exception), QEMU 7.2 does not */
    ok(rt_last.count == 1 && rt_last.vector == 11 && rt_last.has_err && (rt_last.err & ~1u) == 6 * 8 + 2 &&
       rt_last.eip == at, "ud2 with the #UD gate not present: #NP(6*8+2), at the ud2");
    rt_idt[6] = saved;

    /* contributory #GP whose gate is not present: #NP during delivery is a double fault */
    saved = rt_idt[13];
    rt_idt[13] &= ~(1ull << 47);
    RUN("movw %w2, %%fs", "r"(0x100) : "memory");
    ok(rt_last.count == 1 && rt_last.vector == 8 && rt_last.has_err && rt_last.err == 0,
       "#GP with its gate not present: #DF, error code 0");
    rt_idt[13] = saved;
    asm volatile("movw %w0, %%fs" :: "r"(SEL_KDATA));
    saved = rt_idt[0];
    rt_idt[0] &= ~(1ull << 47);
    RUN("div %%ecx", "a"(1), "d"(0), "c"(0) : "memory");
    ok(rt_last.count == 1 && rt_last.vector == 8 && rt_last.err == 0,
       "#DE with its gate not present: #DF");
    rt_idt[0] = saved;
}

/* ---- single-step ------------------------------------------------------------------------------ */
static volatile uint32_t steps, step_eip[16], step_dr6;
static void on_db(struct trap_frame *f, uint32_t *eip)
{
    (void)f;
    if (steps < 16)
        step_eip[steps] = eip[0];
    steps++;
    uint32_t dr6;
    asm volatile("mov %%dr6, %0" : "=r"(dr6));
    step_dr6 |= dr6;
    asm volatile("mov %0, %%dr6" :: "r"(0));
}

extern char ss_begin[], ss_1[], ss_2[], ss_3[], ss_4[], ss_5[], ss_6[], ms_1[], ms_3[];
static void single_step(void)
{
    rt_set_hook(1, on_db);
    steps = 0;
    step_dr6 = 0;
    asm volatile("mov %0, %%dr6" :: "r"(0));
    asm volatile("pushfl\n\torl $0x100, (%%esp)\n\tpopfl\n"
                 "ss_begin:\tnop\n"
                 "ss_1:\tnop\n"
                 "ss_2:\tmovl $5, %%eax\n"
                 "ss_3:\tpushfl\n"
                 "ss_4:\tandl $~0x100, (%%esp)\n"
                 "ss_5:\tpopfl\n"
                 "ss_6:\tnop"
                 ::: "eax", "memory", "cc");
    rt_set_hook(1, 0);
    is(steps, 6, "TF: one #DB after each of 6 instructions (none after the popf that set it)");
    const char *expect[6] = { ss_1, ss_2, ss_3, ss_4, ss_5, ss_6 };
    int good = 1;
    for (unsigned i = 0; i < 6 && i < steps; i++)
        good &= step_eip[i] == (uint32_t)expect[i];
    ok(good, "TF: each #DB points after its instruction");
    rt_set_hook(1, on_db);
    steps = 0;
    asm volatile("movw %%ss, %%ax\n\tpushfl\n\torl $0x100, (%%esp)\n\tpopfl\n"
                 "\tnop\nms_1:\tmovw %%ax, %%ss\n\tnop\nms_3:\tpushfl\n\tandl $~0x100, (%%esp)\n\tpopfl"
                 ::: "eax", "memory", "cc");
    rt_set_hook(1, 0);
    ok(steps == 5 && step_eip[0] == (uint32_t)ms_1 && step_eip[1] == (uint32_t)ms_3,
       "TF: no #DB right after mov ss, one after the next instruction");
    ok(step_dr6 & (1u << 14), "TF: DR6.BS set");
    ok(!(read_eflags() & FL_TF), "TF clear afterwards");
}

void test_main(void)
{
    faults_and_traps();
    gates();
    undefined();
    delivery();
    single_step();
}
