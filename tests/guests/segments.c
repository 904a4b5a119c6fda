/*
 * segments - segment registers, descriptors and far transfers at CPL 0.
 *
 * mov/push/pop of segment registers (mov to r32 zero-extends; a 32-bit push of a segment
 * register moves ESP by 4, only its low 16 bits are compared; pushw moves it by 2); loads
 * of DS/ES/FS/GS/SS with every architectural check: null, beyond the GDT limit, an empty
 * descriptor, system descriptors, execute-only code, not present, DPL/RPL against CPL, LDT
 * selectors with and without an LDT, for SS also read-only data and code; the error codes
 * of #GP/#NP/#SS; the accessed bit set in the GDT on a load; reloads of the selector a
 * register holds (a changed descriptor takes effect); FS and GS switched back and forth
 * between two selectors (each load its own base, a changed descriptor takes effect, a
 * null selector, mov from memory and pop, sgdt through FS afterwards); lds/les/lfs/lgs/lss (and
 * that a failing one changes nothing); segment bases for data, string source/destination
 * overrides and the stack; far jmp/call/ret (direct, indirect, ret imm16), a call gate, a
 * conforming code segment, iret to another code selector, a far call into a 16-bit code
 * segment; lar/lsl/verr/verw on valid and invalid selectors (ZF and results, destination
 * kept when ZF = 0); arpl.
 *
 * Segment limit checks on ordinary memory accesses are not tested: QEMU's TCG does not
 * enforce them.
 */
#include "rt.h"

/* Loads `sel` into segment register `sreg` (ds es fs gs ss) and reports the vector (or
 * -1) and error code; the register is reloaded with a flat selector afterwards. */
#define LOAD_SREG(sreg, sel, flat)                                                         \
    ({                                                                                      \
        rt_clear_last();                                                                    \
        asm volatile(CATCH("2f") "movw %w0, %%" #sreg "\n2:\t" UNCATCH "movw %w1, %%" #sreg \
                     :: "r"(sel), "r"(flat) : "memory");                                    \
        rt_last.count ? rt_last.vector : 0xffffffffu;                                        \
    })

static void check_load(const char *what, uint32_t vector, uint32_t err, uint32_t got_vec)
{
    (void)got_vec;
    if (vector == 0xffffffffu)
        is_trap(NO_TRAP, 0, 0, ~0u, "%s: loads", what);
    else
        is_trap(vector, 1, err, ~0u, "%s: vector %u error 0x%x", what, vector, err);
}

static void sreg_moves(void)
{
    uint32_t r;
    r = 0xffffffff; asm volatile("movl %%cs, %0" : "+r"(r)); is(r, SEL_KCODE, "mov r32, cs zero-extends");
    r = 0xffffffff; asm volatile("movl %%ds, %0" : "+r"(r)); is(r, SEL_KDATA, "mov r32, ds");
    r = 0xffffffff; asm volatile("movl %%ss, %0" : "+r"(r)); is(r, SEL_KDATA, "mov r32, ss");
    r = 0xffffffff; asm volatile("movl %%fs, %0" : "+r"(r)); is(r, SEL_KDATA, "mov r32, fs");
    uint32_t m = 0x77777777;
    asm volatile("movw %%es, %0" : "+m"(m));
    is(m, 0x77770000 | SEL_KDATA, "mov m16, es writes 16 bits");
    r = 0xffffffff; asm volatile("movw %%ss, %w0" : "+r"(r)); is(r, 0xffff0000 | SEL_KDATA, "mov r16, ss keeps the upper half");
    uint32_t d, v;
    asm volatile("pushl $0x55555555; movw %%ds, 2(%%esp); popl %0" : "=r"(v));
    is(v, ((uint32_t)SEL_KDATA << 16) | 0x5555, "mov m16, ds through ESP right after a push");
    asm volatile("mov %%esp, %0; pushl %%ds; sub %%esp, %0; popl %1" : "=&r"(d), "=r"(v));
    is(d, 4, "push ds (32-bit) moves ESP by 4");
    is(v & 0xffff, SEL_KDATA, "push ds: the selector in the low 16 bits");
    asm volatile("mov %%esp, %0; pushw %%gs; sub %%esp, %0; popw %w1" : "=&r"(d), "=r"(v));
    is(d, 2, "pushw gs moves ESP by 2");
    asm volatile("pushl %1; popl %%fs; movl %%fs, %0; movw %w2, %%fs" : "=r"(v) : "r"(0xabcd0000 | SEL_SMALL), "r"(SEL_KDATA));
    is(v, SEL_SMALL, "pop fs takes the low 16 bits");
    rt_clear_last();
    asm volatile(CATCH("2f") ".byte 0x8e, 0xc8\n2:" UNCATCH ::: "memory");    /* mov cs, ax */
    is(rt_last.vector, 6, "mov cs, r16 is #UD");
}

static void data_loads(void)
{
    /* DS, ES, FS, GS share the rules; test them on FS and a few on the others. */
    check_load("fs = null", 0xffffffff, 0, LOAD_SREG(fs, 0, SEL_KDATA));
    check_load("fs = null with RPL 3", 0xffffffff, 0, LOAD_SREG(fs, 3, SEL_KDATA));
    check_load("fs = 0x100 (beyond the GDT limit)", 13, 0x100, LOAD_SREG(fs, 0x100, SEL_KDATA));
    check_load("fs = 0x1f8 (beyond the GDT limit)", 13, 0x1f8, LOAD_SREG(fs, 0x1f8, SEL_KDATA));
    check_load("fs = empty descriptor", 13, SEL_SPARE0, LOAD_SREG(fs, SEL_SPARE0, SEL_KDATA));
    check_load("fs = LDT descriptor", 13, SEL_LDT, LOAD_SREG(fs, SEL_LDT, SEL_KDATA));
    check_load("fs = TSS descriptor", 13, SEL_TSS, LOAD_SREG(fs, SEL_TSS, SEL_KDATA));
    check_load("fs = execute-only code", 13, SEL_XOCODE, LOAD_SREG(fs, SEL_XOCODE, SEL_KDATA));
    check_load("fs = readable code", 0xffffffff, 0, LOAD_SREG(fs, SEL_KCODE, SEL_KDATA));
    check_load("fs = conforming readable code", 0xffffffff, 0, LOAD_SREG(fs, SEL_CONFCODE, SEL_KDATA));
    check_load("fs = not present", 11, SEL_NOTPRESENT, LOAD_SREG(fs, SEL_NOTPRESENT, SEL_KDATA));
    check_load("fs = DPL 3 data", 0xffffffff, 0, LOAD_SREG(fs, SEL_DATA3, SEL_KDATA));
    check_load("fs = DPL 0 data, RPL 3", 13, SEL_KDATA, LOAD_SREG(fs, SEL_KDATA | 3, SEL_KDATA));
    check_load("fs = read-only data", 0xffffffff, 0, LOAD_SREG(fs, SEL_RODATA, SEL_KDATA));
    asm volatile("lldt %w0" :: "r"(0));
    check_load("fs = LDT selector after lldt 0", 13, SEL_LDT_DATA & ~3, LOAD_SREG(fs, SEL_LDT_DATA, SEL_KDATA));
    asm volatile("lldt %w0" :: "r"(SEL_LDT));
    check_load("fs = LDT selector", 0xffffffff, 0, LOAD_SREG(fs, SEL_LDT_DATA, SEL_KDATA));
    check_load("fs = LDT selector beyond the LDT limit", 13, 0x24, LOAD_SREG(fs, 0x24, SEL_KDATA));
    check_load("ds = beyond the GDT limit", 13, 0x100, LOAD_SREG(ds, 0x100, SEL_KDATA));
    check_load("es = not present", 11, SEL_NOTPRESENT, LOAD_SREG(es, SEL_NOTPRESENT, SEL_KDATA));
    check_load("gs = execute-only code", 13, SEL_XOCODE, LOAD_SREG(gs, SEL_XOCODE, SEL_KDATA));
    check_load("ds = null", 0xffffffff, 0, LOAD_SREG(ds, 0, SEL_KDATA));

    /* the accessed bit */
    rt_gdt[SEL_SPARE0 >> 3] = rt_desc(0, 0xfffff, 0x92, 0xc);
    LOAD_SREG(gs, SEL_SPARE0, SEL_KDATA);
    is((uint32_t)(rt_gdt[SEL_SPARE0 >> 3] >> 40) & 0xff, 0x93, "loading gs sets the accessed bit in the GDT");
    rt_gdt[SEL_SPARE0 >> 3] = 0;
}

static void stack_loads(void)
{
    check_load("ss = null", 13, 0, LOAD_SREG(ss, 0, SEL_KDATA));
    check_load("ss = read-only data", 13, SEL_RODATA, LOAD_SREG(ss, SEL_RODATA, SEL_KDATA));
    check_load("ss = code", 13, SEL_KCODE, LOAD_SREG(ss, SEL_KCODE, SEL_KDATA));
    check_load("ss = DPL 3 data at CPL 0", 13, SEL_DATA3, LOAD_SREG(ss, SEL_DATA3, SEL_KDATA));
    check_load("ss = RPL 3 selector at CPL 0", 13, SEL_KDATA, LOAD_SREG(ss, SEL_KDATA | 3, SEL_KDATA));
    check_load("ss = beyond the GDT limit", 13, 0x100, LOAD_SREG(ss, 0x100, SEL_KDATA));
    check_load("ss = not present", 12, SEL_NOTPRESENT, LOAD_SREG(ss, SEL_NOTPRESENT, SEL_KDATA));
    check_load("ss = writable data", 0xffffffff, 0, LOAD_SREG(ss, SEL_KDATA, SEL_KDATA));
}

/* ---- lds and friends ------------------------------------------------------------------------ */
static void far_pointer_loads(void)
{
    struct { uint32_t off; uint16_t sel; } __attribute__((packed)) fp = { 0x12345678, SEL_SMALL };
    uint32_t r, s;
    asm volatile("lfs %2, %0; movl %%fs, %1; movw %w3, %%fs" : "=r"(r), "=r"(s) : "m"(fp), "r"(SEL_KDATA));
    ok(r == 0x12345678 && s == SEL_SMALL, "lfs loads offset and selector");
    asm volatile("push %%ds; lds (%2), %0; movl %%ds, %1; pop %%ds" : "=r"(r), "=r"(s) : "r"(&fp) : "memory");
    ok(r == 0x12345678 && s == SEL_SMALL, "lds");
    asm volatile("push %%es; les (%2), %0; movl %%es, %1; pop %%es" : "=r"(r), "=r"(s) : "r"(&fp) : "memory");
    ok(r == 0x12345678 && s == SEL_SMALL, "les");
    asm volatile("lgs %2, %0; movl %%gs, %1; movw %w3, %%gs" : "=r"(r), "=r"(s) : "m"(fp), "r"(SEL_KDATA));
    ok(r == 0x12345678 && s == SEL_SMALL, "lgs");
    struct { uint32_t off; uint16_t sel; } __attribute__((packed)) sp = { 0, SEL_KDATA };
    asm volatile("mov %%esp, %2; lss %3, %%esp; mov %%esp, %0; movl %%ss, %1; mov %2, %%esp"
                 : "=&r"(r), "=&r"(s), "=&r"(fp.off) : "m"(sp) : "memory");
    ok(r == 0 && s == SEL_KDATA, "lss loads ESP and SS");
    struct { uint16_t off; uint16_t sel; } __attribute__((packed)) fp16 = { 0x9abc, SEL_SMALL };
    r = 0x11110000;
    asm volatile("lfs %2, %w0; movl %%fs, %1; movw %w3, %%fs" : "+r"(r), "=r"(s) : "m"(fp16), "r"(SEL_KDATA));
    ok(r == 0x11119abc && s == SEL_SMALL, "lfs with a 16-bit operand (m16:16)");
    fp.sel = SEL_NOTPRESENT;
    r = 0xaaaaaaaa;
    rt_clear_last();
    asm volatile(CATCH("2f") "lgs %1, %0\n2:" UNCATCH : "+r"(r) : "m"(fp));
    ok(rt_last.vector == 11 && rt_last.err == SEL_NOTPRESENT && r == 0xaaaaaaaa,
       "lgs of a not-present segment: #NP, destination register untouched");
    asm volatile("movl %%gs, %0" : "=r"(s));
    is(s, SEL_KDATA, "lgs that faulted left GS alone");
}

/* ---- reloading the selector a register holds ------------------------------------------------
 * A load reads the descriptor again even when the selector is the one the register holds:
 * a changed descriptor takes effect, and a cleared accessed bit is set again (bt86 does such
 * reloads inline while the descriptor is unchanged). */
static void reloads(void)
{
    volatile uint64_t *e = &rt_gdt[SEL_SPARE0 >> 3];
    const uint64_t first = rt_desc((uint32_t)rt_small_seg, 0xff, 0x93, 0x4);
    const uint64_t moved = rt_desc((uint32_t)rt_small_seg + 0x40, 0xff, 0x93, 0x4);
    const uint32_t *at10 = (const uint32_t *)&rt_small_seg[0x10], *at50 = (const uint32_t *)&rt_small_seg[0x50];
    uint32_t v;
    *e = first;
    asm volatile("movw %w1, %%fs; movl %%fs:0x10, %0" : "=r"(v) : "r"(SEL_SPARE0));
    is(v, *at10, "fs loaded from a spare descriptor");
    asm volatile("movw %w1, %%fs; movl %%fs:0x10, %0" : "=r"(v) : "r"(SEL_SPARE0));
    is(v, *at10, "reloading the selector fs holds keeps its base");
    *e = moved;
    asm volatile("movw %w1, %%fs; movl %%fs:0x10, %0" : "=r"(v) : "r"(SEL_SPARE0));
    is(v, *at50, "reloading it after its descriptor changed takes the new base");
    *e = first;
    asm volatile("pushl %%fs; popl %%fs; movl %%fs:0x10, %0" : "=r"(v));
    is(v, *at10, "pop fs of the selector it holds after the descriptor changed back");
    *e = first & ~(1ull << 40);
    asm volatile("movw %w0, %%fs" : : "r"(SEL_SPARE0) : "memory");
    is((uint32_t)(*e >> 40) & 0xff, 0x93, "reloading the selector fs holds sets a cleared accessed bit");
    asm volatile("movw %w0, %%fs" : : "r"(SEL_KDATA));
    asm volatile("movw %w0, %%fs; movw %w0, %%fs; pushl %%fs; popl %%fs" : : "r"(0));
    asm volatile("movl %%fs, %0" : "=r"(v));
    is(v, 0, "reloading a null selector into fs");
    asm volatile("movw %w0, %%fs" : : "r"(SEL_KDATA));
    *e = 0;
}

/* ---- FS and GS switched between two selectors ---------------------------------------------- */
#define SEL_SPARE1 (SEL_SPARE0 + 8)

static __attribute__((noinline)) uint32_t fs_read(uint16_t sel)
{
    uint32_t v;
    asm volatile("movw %w1, %%fs; movl %%fs:0x10, %0" : "=r"(v) : "r"(sel));
    return v;
}

static __attribute__((noinline)) uint32_t gs_read(uint16_t sel)
{
    uint32_t v;
    asm volatile("movw %w1, %%gs; movl %%gs:0x10, %0" : "=r"(v) : "r"(sel));
    return v;
}

static void switches(void)
{
    volatile uint64_t *a = &rt_gdt[SEL_SPARE0 >> 3], *b = &rt_gdt[SEL_SPARE1 >> 3];
    for (unsigned i = 0; i < 256; i++)
        rt_small_seg[i] = (uint8_t)(i * 7 + 1);
    uint32_t at10, at50, at90, v;
    memcpy(&at10, rt_small_seg + 0x10, 4);
    memcpy(&at50, rt_small_seg + 0x50, 4);
    memcpy(&at90, rt_small_seg + 0x90, 4);
    *a = rt_desc((uint32_t)rt_small_seg, 0xff, 0x93, 0x4);
    *b = rt_desc((uint32_t)rt_small_seg + 0x40, 0xff, 0x93, 0x4);
    unsigned bad = 0, gbad = 0;
    for (volatile int i = 0; i < 16; i++) {
        bad += fs_read(SEL_SPARE0) != at10;
        bad += fs_read(SEL_SPARE1) != at50;
        gbad += gs_read(SEL_SPARE1) != at50;
        gbad += gs_read(SEL_SPARE0) != at10;
    }
    is(bad, 0, "fs switched between two selectors 16 times: each load takes its own base");
    is(gbad, 0, "gs switched between two selectors 16 times: each load takes its own base");
    *b = rt_desc((uint32_t)rt_small_seg + 0x80, 0xff, 0x93, 0x4);
    is(fs_read(SEL_SPARE0), at10, "fs back on the first selector");
    is(fs_read(SEL_SPARE1), at90, "the second selector's descriptor changed meanwhile: its new base");
    /* a null selector as one of the two; mov from memory and pop as the loads */
    bad = 0;
    for (volatile int i = 0; i < 16; i++) {
        asm volatile("movw %w0, %%fs" : : "r"(0));
        bad += fs_read(SEL_SPARE0) != at10;
        uint16_t saved = SEL_SPARE1;
        asm volatile("movw %1, %%fs; movl %%fs:0x10, %0" : "=r"(v) : "m"(saved));
        bad += v != at90;
        asm volatile("pushl %1; popl %%fs; movl %%fs:0x10, %0" : "=r"(v) : "i"(SEL_SPARE0));
        bad += v != at10;
    }
    is(bad, 0, "fs switched by mov from a register, from memory and pop, and with a null selector");
    /* what the CPU does with fs after a switch: sgdt to fs: writes at its base */
    struct __attribute__((packed)) { uint16_t limit; uint32_t base; } g;
    asm volatile("sgdt %0" : "=m"(g));
    asm volatile("movw %w0, %%fs" : : "r"(SEL_KDATA));
    (void)fs_read(SEL_SPARE0);
    (void)fs_read(SEL_SPARE1);         /* a third selector since KDATA: not a switch */
    (void)fs_read(SEL_SPARE0);         /* a switch back */
    asm volatile("sgdt %%fs:0x20" ::: "memory");
    ok(!memcmp(rt_small_seg + 0x20, &g, 6), "sgdt to fs: after a switch writes at fs's base");
    asm volatile("movw %w0, %%fs; movw %w0, %%gs" : : "r"(SEL_KDATA));
    *a = 0;
    *b = 0;
}

/* ---- segment bases ------------------------------------------------------------------------- */
static void bases(void)
{
    for (unsigned i = 0; i < 256; i++)
        rt_small_seg[i] = (uint8_t)(i ^ 0xa5);
    uint32_t v;
    asm volatile("movw %w1, %%fs; movl %%fs:0x10, %0; movw %w2, %%fs" : "=r"(v) : "r"(SEL_SMALL), "r"(SEL_KDATA));
    is(v, *(uint32_t *)&rt_small_seg[0x10], "fs-based load adds the segment base");
    asm volatile("movw %w1, %%gs; movl $0x11223344, %%gs:(%0); movw %w2, %%gs" :: "r"(0x20), "r"(SEL_SMALL), "r"(SEL_KDATA) : "memory");
    is(*(uint32_t *)&rt_small_seg[0x20], 0x11223344, "gs-based store adds the segment base");
    asm volatile("push %%ds; movw %w1, %%ds; movl 0x30, %0; pop %%ds" : "=r"(v) : "r"(SEL_SMALL));
    is(v, *(uint32_t *)&rt_small_seg[0x30], "ds-based moffs load");
    uint32_t a;
    asm volatile("push %%ds; movw %w2, %%ds; leal 0x40(%1), %0; pop %%ds" : "=r"(a) : "r"(0x8), "r"(SEL_SMALL));
    is(a, 0x48, "lea ignores the segment base");
    /* string op: source fs-based, destination es (flat) */
    static uint8_t dst[16];
    uint32_t s = 0x50, d = (uint32_t)dst, c = 16;
    asm volatile("movw %w3, %%fs; rep movsb %%fs:(%%esi), %%es:(%%edi); movw %w4, %%fs"
                 : "+S"(s), "+D"(d), "+c"(c) : "r"(SEL_SMALL), "r"(SEL_KDATA) : "memory");
    ok(!memcmp(dst, rt_small_seg + 0x50, 16) && s == 0x60, "rep movsb with an fs: source");
    /* string op: destination es-based */
    s = (uint32_t)dst; d = 0x80; c = 16;
    asm volatile("push %%es; movw %w3, %%es; rep movsb; pop %%es" : "+S"(s), "+D"(d), "+c"(c) : "r"(SEL_SMALL) : "memory");
    ok(!memcmp(dst, rt_small_seg + 0x80, 16) && d == 0x90, "rep movsb into an es with a base");
    /* the stack in a segment with a base */
    uint32_t out;
    asm volatile("cli; mov %%esp, %%edx; mov %%ss, %%ecx\n\t"
                 "movw %w1, %%ss; mov $0x100, %%esp\n\t"
                 "pushl $0xcafef00d; pushl $0x12345678; popl %%eax; mov %%esp, %0\n\t"
                 "movw %%cx, %%ss; mov %%edx, %%esp"
                 : "=r"(out) : "r"(SEL_SMALL) : "eax", "ecx", "edx", "memory");
    is(out, 0xfc, "push/pop with SS based: ESP is an offset");
    is(*(uint32_t *)&rt_small_seg[0xfc], 0xcafef00d, "push with SS based writes at base + ESP");
    /* LDT-based data segment */
    rt_ldt_buf[0x44] = 0x99;
    uint8_t b;
    asm volatile("movw %w1, %%gs; movb %%gs:0x44, %0; movw %w2, %%gs" : "=q"(b) : "r"(SEL_LDT_DATA), "r"(SEL_KDATA));
    is(b, 0x99, "gs from the LDT: base from the LDT descriptor");
}

/* ---- far transfers --------------------------------------------------------------------------- */
extern void far_callee(void), far_callee_imm(void), gate_target(void), code16_start(void);
asm(".pushsection .text\n"
    "far_callee:\n\tmovl 4(%esp), %eax\n\tmovl %cs, %ecx\n\tlret\n"
    "far_callee_imm:\n\tmovl 8(%esp), %eax\n\tlret $8\n"
    "gate_target:\n\tmovl %cs, %ecx\n\tmovl 4(%esp), %eax\n\tlret\n"
    ".code16\n.balign 16\n"
    "code16_start:\n"
    "\tmovw $0x1234, %ax\n\taddw %bx, %ax\n"        /* 16-bit operations by default */
    "\tmovl $0xabcd0000, %edx\n\torw %ax, %dx\n"    /* movl: 66-prefixed in 16-bit code */
    "\tmovl %cs, %ecx\n"
    "\tlretl\n"
    ".code32\n"
    ".popsection\n");

static void far_transfers(void)
{
    uint32_t a, c, d;
    asm volatile("lcall $0x18, $far_callee" : "=a"(a), "=c"(c) :: "memory");
    ok((a & 0xffff) == SEL_KCODE, "lcall pushes the caller's CS (low 16 bits of the slot)");
    is(c, SEL_KCODE2, "lcall loads CS");
    struct { uint32_t off; uint16_t sel; } __attribute__((packed)) fp = { (uint32_t)far_callee, SEL_KCODE2 };
    asm volatile("lcall *%2" : "=a"(a), "=c"(c) : "m"(fp) : "memory");
    is(c, SEL_KCODE2, "indirect lcall through m16:32");
    uint32_t before, after;
    asm volatile("mov %%esp, %0; pushl $0x5555; pushl $0x7777; lcall $0x08, $far_callee_imm; mov %%esp, %1"
                 : "=&r"(before), "=&r"(after), "=a"(a) :: "memory");
    is(a, 0x7777, "far callee reads its argument");
    is(before - after, 0, "lret 8 pops the arguments");
    uint32_t cs;
    asm volatile("ljmp $0x18, $1f\n1:\tmovl %%cs, %0\n\tljmp $0x08, $2f\n2:" : "=r"(cs));
    is(cs, SEL_KCODE2, "direct ljmp loads CS");
    fp.off = 0;
    asm volatile("movl $1f, %1\n\tljmp *%1\n1:\tmovl %%cs, %0\n\tljmp $0x08, $2f\n2:" : "=r"(cs), "+m"(fp));
    is(cs, SEL_KCODE2, "indirect ljmp through m16:32");
    asm volatile("ljmp $0x48, $1f\n1:\tmovl %%cs, %0\n\tljmp $0x08, $2f\n2:" : "=r"(cs));
    is(cs, SEL_CONFCODE, "ljmp to a conforming code segment");
    /* iret to another code selector */
    asm volatile("pushfl; pushl $0x18; pushl $1f; iretl\n1:\tmovl %%cs, %0\n\tljmp $0x08, $2f\n2:" : "=r"(cs));
    is(cs, SEL_KCODE2, "iret to CS = 0x18");
    /* far transfers that fault */
    rt_clear_last();
    asm volatile(CATCH("2f") "ljmp $0x10, $1f\n1:\tnop\n2:" UNCATCH ::: "memory");
    ok(rt_last.vector == 13 && rt_last.err == SEL_KDATA, "ljmp to a data segment: #GP(selector)");
    rt_clear_last();
    asm volatile(CATCH("2f") "ljmp $0x70, $1f\n1:\tnop\n2:" UNCATCH ::: "memory");
    ok(rt_last.vector == 13 && rt_last.err == SEL_CODE3, "ljmp to DPL 3 non-conforming code: #GP(selector)");
    rt_gdt[SEL_SPARE0 >> 3] = rt_desc(0, 0xfffff, 0x1b, 0xc);    /* code, not present */
    rt_clear_last();
    asm volatile(CATCH("2f") "ljmp $0x78, $1f\n1:\tnop\n2:" UNCATCH ::: "memory");
    ok(rt_last.vector == 11 && rt_last.err == SEL_SPARE0, "ljmp to not-present code: #NP(selector)");
    rt_clear_last();
    asm volatile(CATCH("2f") "lcall $0x100, $1f\n1:\tnop\n2:" UNCATCH ::: "memory");
    ok(rt_last.vector == 13 && rt_last.err == 0x100, "lcall beyond the GDT limit: #GP(selector)");

    /* a 386 call gate (same privilege) to gate_target in SEL_KCODE */
    uint32_t t = (uint32_t)gate_target;
    rt_gdt[SEL_SPARE0 >> 3] = (uint64_t)(t & 0xffff) | ((uint64_t)SEL_KCODE << 16) |
                              ((uint64_t)0x8c << 40) | ((uint64_t)(t >> 16) << 48);
    asm volatile("lcall $0x78, $0x12345" : "=a"(a), "=c"(c) :: "memory");
    ok((a & 0xffff) == SEL_KCODE, "call gate: caller CS pushed");
    is(c, SEL_KCODE, "call gate: CS from the gate");
    uint32_t ar = 0;
    asm volatile("lar %1, %0" : "=r"(ar) : "r"(SEL_SPARE0));
    is(ar & 0x0000ff00, 0x00008c00, "lar of a call gate");
    rt_gdt[SEL_SPARE0 >> 3] = 0;

    /* a far call into 16-bit code */
    uint32_t base = (uint32_t)code16_start;
    rt_gdt[SEL_SPARE0 >> 3] = rt_desc(base, 0xffff, 0x9b, 0x0);   /* D = 0 */
    asm volatile("lcall $0x78, $0" : "=a"(a), "=c"(c), "=d"(d) : "a"(0xffff0000), "b"(0x00001111) : "memory");
    is(a, 0xffff2345, "16-bit code: add ax, bx keeps the upper half of EAX");
    is(d, 0xabcd2345, "16-bit code: 0x66 prefix gives 32-bit operations");
    is(c & 0xffff, SEL_SPARE0, "16-bit code: CS");
    rt_gdt[SEL_SPARE0 >> 3] = 0;
}

/* ---- lar / lsl / verr / verw --------------------------------------------------------------- */
static void access_checks(void)
{
    struct { uint32_t sel; uint32_t zf, ar, limit; const char *name; } t[] = {
        { SEL_KCODE, 1, 0x00cf9b00, 0xffffffff, "flat code" },
        { SEL_KDATA, 1, 0x00cf9300, 0xffffffff, "flat data" },
        { SEL_SMALL, 1, 0x00409300, 0x0000ffff, "byte-granular data" },
        { SEL_EXPDOWN, 1, 0x00409700, 0x00000fff, "expand-down data" },
        { SEL_XOCODE, 1, 0x00cf9900, 0xffffffff, "execute-only code" },
        { SEL_NOTPRESENT, 1, 0x00cf1300, 0xffffffff, "not-present data" },
        { SEL_DATA3, 1, 0x00cff300, 0xffffffff, "DPL 3 data" },
        { SEL_LDT, 1, 0x00008200, 31, "LDT descriptor" },
        { SEL_TSS, 1, 0x00008900, 103, "available TSS" },
    };
    for (unsigned i = 0; i < sizeof t / sizeof t[0]; i++) {
        uint32_t ar = 0x5a5a5a5a, lim = 0x5a5a5a5a, zf1, zf2;
        asm volatile("lar %2, %0; setz %b1" : "+r"(ar), "=q"(zf1) : "r"(t[i].sel) : "cc");
        asm volatile("lsl %2, %0; setz %b1" : "+r"(lim), "=q"(zf2) : "r"(t[i].sel) : "cc");
        ok((zf1 & 1) == t[i].zf && (ar & 0x00f0ff00) == (t[i].ar & 0x00f0ff00), "lar %s", t[i].name);
        ok((zf2 & 1) == t[i].zf && lim == t[i].limit, "lsl %s", t[i].name);
    }
    /* invalid selectors: ZF = 0, destination untouched */
    static const uint32_t bad[] = { 0, 0x100, SEL_SPARE0, SEL_KDATA | 3 /* RPL 3 > DPL 0 */ };
    static const char *bad_names[] = { "null", "beyond the limit", "empty descriptor", "RPL 3 on DPL 0" };
    for (unsigned i = 0; i < 4; i++) {
        uint32_t ar = 0x5a5a5a5a, lim = 0xa5a5a5a5, zf1, zf2;
        asm volatile("lar %2, %0; setz %b1" : "+r"(ar), "=q"(zf1) : "r"(bad[i]) : "cc");
        asm volatile("lsl %2, %0; setz %b1" : "+r"(lim), "=q"(zf2) : "r"(bad[i]) : "cc");
        ok(!(zf1 & 1) && ar == 0x5a5a5a5a && !(zf2 & 1) && lim == 0xa5a5a5a5,
           "lar/lsl %s: ZF = 0, destination kept", bad_names[i]);
    }
    /* lar accepts call gates, lsl does not */
    rt_gdt[SEL_SPARE0 >> 3] = ((uint64_t)SEL_KCODE << 16) | ((uint64_t)0x8c << 40);
    uint32_t lim = 0x12345678, zf;
    asm volatile("lsl %2, %0; setz %b1" : "+r"(lim), "=q"(zf) : "r"(SEL_SPARE0) : "cc");
    ok(!(zf & 1) && lim == 0x12345678, "lsl of a call gate: ZF = 0");
    rt_gdt[SEL_SPARE0 >> 3] = 0;
    /* 16-bit lsl */
    lim = 0xffffffff;
    asm volatile("lsl %w1, %w0" : "+r"(lim) : "r"(SEL_EXPDOWN) : "cc");
    is(lim, 0xffff0fff, "lsl r16 writes 16 bits");

    struct { uint32_t sel, r, w; const char *name; } v[] = {
        { SEL_KCODE, 1, 0, "readable code" }, { SEL_XOCODE, 0, 0, "execute-only code" },
        { SEL_KDATA, 1, 1, "writable data" }, { SEL_RODATA, 1, 0, "read-only data" },
        { SEL_DATA3, 1, 1, "DPL 3 data" }, { SEL_CONFCODE, 1, 0, "conforming code" },
        { SEL_KDATA | 3, 0, 0, "RPL 3 on DPL 0 data" }, { SEL_CONFCODE | 3, 1, 0, "RPL 3 on conforming code" },
        { 0, 0, 0, "null" }, { 0x100, 0, 0, "beyond the limit" }, { SEL_TSS, 0, 0, "TSS" },
    };
    for (unsigned i = 0; i < sizeof v / sizeof v[0]; i++) {
        uint8_t zr, zw;
        asm volatile("verr %w2; setz %0; verw %w2; setz %1" : "=q"(zr), "=q"(zw) : "r"(v[i].sel) : "cc");
        ok(zr == v[i].r && zw == v[i].w, "verr/verw %s: %u/%u", v[i].name, v[i].r, v[i].w);
    }
}

static void arpl(void)
{
    uint16_t dst = 0x0010;
    uint8_t zf;
    asm volatile("arpl %w2, %0; setz %1" : "+r"(dst), "=q"(zf) : "r"(0x0003) : "cc");
    ok(dst == 0x0013 && zf, "arpl raises RPL 0 to 3, ZF = 1");
    dst = 0x0012;
    asm volatile("arpl %w2, %0; setz %1" : "+r"(dst), "=q"(zf) : "r"(0x0001) : "cc");
    ok(dst == 0x0012 && !zf, "arpl keeps a higher RPL, ZF = 0");
    uint32_t mem = 0xbbbb0008;
    asm volatile("arpl %w1, %0" : "+m"(mem) : "r"(0x0002) : "cc");
    is(mem, 0xbbbb000a, "arpl m16");
}

void test_main(void)
{
    sreg_moves();
    data_loads();
    stack_loads();
    far_pointer_loads();
    bases();
    reloads();
    switches();
    far_transfers();
    access_checks();
    arpl();
}
