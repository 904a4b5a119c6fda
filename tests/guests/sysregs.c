/*
 * sysregs - sensitive and privileged instructions at CPL 0, and what they let the guest see.
 *
 * cli/sti/pushf/popf: IF, IOPL, NT, AC, ID through pushf, the bits popf cannot change
 * (VM, RF, reserved); sgdt/sidt/sldt/str/smsw return what lgdt/lidt/lldt/ltr/CR0 hold
 * (register forms zero-extend, memory forms write 16 bits), lgdt/lidt with a 16-bit
 * operand (24-bit base), a GDT moved to another address with every segment reloaded;
 * lldt/ltr checks (busy TSS, wrong type, not present, null) and the busy bit ltr sets;
 * mov to/from CR0 (ET hardwired, TS/MP/EM/WP/AM/CD), CR2, CR3, CR4 (only bits CPUID
 * says exist); lmsw (cannot clear PE) and clts; DR0-DR3, DR6/DR7 fixed bits, DR4/DR5
 * aliasing; cpuid leaf 0/1 feature bits TSC CX8 CMOV PSE PGE FXSR SSE SSE2 MSR (never the
 * vendor or model); rdtsc monotonic (also with CR4.TSD at CPL 0); the SYSENTER MSRs
 * 0x174-0x176; wbinvd, invd, invlpg.
 *
 * Not tested, because QEMU 7.2 differs from hardware: rdmsr/wrmsr of unknown MSRs (QEMU
 * returns 0 / ignores the write, hardware raises #GP), the TSC MSR 0x10 (QEMU's TCG reads
 * it as 0 and ignores writes), ltr of the null selector (QEMU loads it, hardware #GP(0)),
 * mov to CR4 of an unsupported bit (QEMU livelocks instead of raising #GP), CR0.NW without
 * CR0.CD (no #GP under QEMU), sgdt with a 16-bit operand (QEMU stores a 24-bit base).
 */
#include "rt.h"

struct dtr {
    uint16_t pad;
    uint16_t limit;
    uint32_t base;
} __attribute__((packed, aligned(4)));

static void eflags(void)
{
    cli();
    ok(!(read_eflags() & FL_IF), "cli: pushf shows IF = 0");
    sti();
    ok(read_eflags() & FL_IF, "sti: pushf shows IF = 1");
    cli();
    write_eflags(0x00000202);
    ok(read_eflags() & FL_IF, "popf sets IF at CPL 0");
    write_eflags(0x00000002);
    ok(!(read_eflags() & FL_IF), "popf clears IF at CPL 0");
    for (uint32_t iopl = 0; iopl < 4; iopl++) {
        write_eflags(0x00000002 | (iopl << 12));
        is((read_eflags() >> 12) & 3, iopl, "popf/pushf: IOPL %u", iopl);
    }
    /* every bit: only the writable ones stick (not TF or IF here, not VM/RF/VIF/VIP) */
    uint32_t f;
    asm volatile("pushl $0xfffffcff; popfl; pushfl; popl %0; pushl $2; popfl" : "=r"(f) :: "cc", "memory");
    is(f, 0x00247cd7, "popf of all ones (but TF, IF): pushf shows the writable bits");
    asm volatile("pushl $0x00044000; popfl; pushfl; popl %0; pushl $2; popfl" : "=r"(f) :: "cc", "memory");
    is(f & (FL_AC | FL_NT), FL_AC | FL_NT, "AC and NT can be set");
    asm volatile("pushl $0x00010000; popfl; pushfl; popl %0; pushl $2; popfl" : "=r"(f) :: "cc", "memory");
    is(f & 0x30000, 0, "popf cannot set RF or VM");
    uint32_t a, b;
    asm volatile("pushfl; popl %0; xorl $0x200000, %0; pushl %0; popfl; pushfl; popl %1; pushl $2; popfl"
                 : "=&r"(a), "=&r"(b) :: "cc", "memory");
    is(b & FL_ID, a & FL_ID, "EFLAGS.ID toggles (CPUID exists)");
    /* 16-bit pushf/popf */
    uint16_t w;
    asm volatile("pushl $0x3002; popfl; pushfw; popw %0; pushw $0x0202; popfw; pushfl; popl %1; pushl $2; popfl"
                 : "=r"(w), "=r"(f) :: "cc", "memory");
    is(w, 0x3002, "pushfw shows IOPL 3");
    is(f, 0x00000202, "popfw loads the low 16 bits (IOPL 0, IF 1)");
    cli();
}

static void descriptor_tables(void)
{
    struct dtr d = { 0, 0, 0 };
    asm volatile("sgdt %0" : "=m"(d.limit));
    is(d.limit, GDT_ENTRIES * 8 - 1, "sgdt: limit");
    is(d.base, (uint32_t)rt_gdt, "sgdt: base");
    asm volatile("sidt %0" : "=m"(d.limit));
    is(d.limit, 0x7ff, "sidt: limit");
    is(d.base, (uint32_t)rt_idt, "sidt: base");

    /* 16-bit lgdt: 24-bit base.  No segment load or interrupt happens meanwhile. */
    struct dtr n = { 0, 0x1234, 0xab345678 };
    asm volatile("cli; .byte 0x66; lgdt %1; sgdt %0" : "=m"(d.limit) : "m"(n.limit) : "memory");
    is(d.base, 0x00345678, "lgdt with a 16-bit operand loads a 24-bit base");
    is(d.limit, 0x1234, "lgdt with a 16-bit operand: limit");
    struct dtr g = { 0, GDT_ENTRIES * 8 - 1, (uint32_t)rt_gdt };
    asm volatile("lgdt %0" :: "m"(g.limit) : "memory");

    /* A copy of the GDT elsewhere, every segment register reloaded from it. */
    static uint64_t copy[GDT_ENTRIES] __attribute__((aligned(8)));
    memcpy(copy, rt_gdt, sizeof copy);
    struct dtr c = { 0, 8 * 8 - 1, (uint32_t)copy };
    uint32_t cs, ds;
    asm volatile("lgdt %2\n\t"
                 "ljmp $0x18, $1f\n1:\t"
                 "movw $0x10, %%ax; movw %%ax, %%ds; movw %%ax, %%es; movw %%ax, %%ss\n\t"
                 "movl %%cs, %0; movl %%ds, %1\n\t"
                 "sgdt %3\n\t"
                 "ljmp $0x08, $2f\n2:"
                 : "=r"(cs), "=r"(ds), "+m"(c.limit), "=m"(d.limit) : : "eax", "memory");
    is(cs, 0x18, "far jmp through a moved GDT");
    is(d.base, (uint32_t)copy, "sgdt after lgdt of the copy");
    is(d.limit, 63, "sgdt: limit of the copy");
    asm volatile("lgdt %0\n\tmovw $0x10, %%ax; movw %%ax, %%ds; movw %%ax, %%es; movw %%ax, %%ss"
                 :: "m"(g.limit) : "eax", "memory");

    /* lidt round trip */
    static uint64_t idt2[64] __attribute__((aligned(8)));
    struct dtr i2 = { 0, sizeof idt2 - 1, (uint32_t)idt2 }, i1 = { 0, 0x7ff, (uint32_t)rt_idt };
    asm volatile("lidt %1; sidt %0; lidt %2" : "=m"(d.limit) : "m"(i2.limit), "m"(i1.limit) : "memory");
    ok(d.limit == sizeof idt2 - 1 && d.base == (uint32_t)idt2, "lidt / sidt");
}

static void ldt_tr(void)
{
    /* (the Multiboot spec says nothing about LDTR and TR at entry: not checked) */
    uint32_t r;
    asm volatile("lldt %w0" :: "r"(SEL_LDT));
    r = 0xffffffff;
    asm volatile("sldt %0" : "+r"(r));
    is(r, SEL_LDT, "sldt r32 after lldt (zero-extended)");
    uint32_t m = 0xaaaaaaaa;
    asm volatile("sldt %0" : "+m"(m));
    is(m, 0xaaaa0000 | SEL_LDT, "sldt m16 writes 16 bits");
    /* the LDT works: a data segment from it */
    rt_ldt_buf[16] = 0x5a;
    uint8_t v;
    asm volatile("movw %w1, %%fs; movb %%fs:16, %0; movw %w2, %%fs" : "=q"(v) : "r"(SEL_LDT_DATA), "r"(SEL_KDATA));
    is(v, 0x5a, "read through an LDT data segment (base = the LDT's buffer)");
    rt_clear_last();
    asm volatile(CATCH("2f") "lldt %w0\n2:" UNCATCH :: "r"(SEL_KDATA));
    ok(rt_last.vector == 13 && rt_last.err == SEL_KDATA, "lldt of a data descriptor: #GP(selector)");
    r = 0;
    asm volatile("lldt %w0; movl $0xffffffff, %0; sldt %0" : "+r"(r));
    is(r, 0, "lldt 0 (null) is allowed, sldt then reads 0");

    rt_clear_last();
    asm volatile(CATCH("2f") "ltr %w0\n2:" UNCATCH :: "r"(SEL_LDT));
    ok(rt_last.vector == 13 && rt_last.err == SEL_LDT, "ltr of an LDT descriptor: #GP(selector)");
    asm volatile("ltr %w0" :: "r"(SEL_TSS));
    r = 0xffffffff;
    asm volatile("str %0" : "+r"(r));
    is(r, SEL_TSS, "str after ltr");
    is((uint32_t)(rt_gdt[SEL_TSS >> 3] >> 40) & 0xff, 0x8b, "ltr marks the TSS busy in the GDT");
    rt_clear_last();
    asm volatile(CATCH("2f") "ltr %w0\n2:" UNCATCH :: "r"(SEL_TSS));
    ok(rt_last.vector == 13 && rt_last.err == SEL_TSS, "ltr of a busy TSS: #GP(selector)");
    /* not present */
    uint64_t saved = rt_gdt[SEL_SPARE0 >> 3];
    rt_gdt[SEL_SPARE0 >> 3] = rt_desc((uint32_t)rt_tss, 103, 0x09, 0);   /* P = 0 */
    rt_clear_last();
    asm volatile(CATCH("2f") "ltr %w0\n2:" UNCATCH :: "r"(SEL_SPARE0));
    ok(rt_last.vector == 11 && rt_last.err == SEL_SPARE0, "ltr of a not-present TSS: #NP(selector)");
    rt_gdt[SEL_SPARE0 >> 3] = saved;
}

static void control_registers(void)
{
    uint32_t cr0 = read_cr0();
    is(cr0, CR0_PE | CR0_MP | CR0_ET | CR0_NE, "CR0 as the runtime set it");
    uint32_t r = 0xffffffff;
    asm volatile("smsw %0" : "+r"(r));
    is(r & 0xffff, 0x0033, "smsw r32: low half of CR0");
    uint32_t m = 0x5a5a5a5a;
    asm volatile("smsw %0" : "+m"(m));
    is(m, 0x5a5a0033, "smsw m16 writes 16 bits");
    write_cr0(cr0 & ~CR0_ET);
    ok(read_cr0() & CR0_ET, "CR0.ET is hardwired to 1");
    static const uint32_t bits[] = { CR0_TS, CR0_EM, CR0_WP, CR0_AM, CR0_CD };
    static const char *names[] = { "TS", "EM", "WP", "AM", "CD" };
    for (unsigned i = 0; i < 5; i++) {
        write_cr0(cr0 | bits[i]);
        is(read_cr0(), cr0 | bits[i], "CR0.%s set and read back", names[i]);
        write_cr0(cr0);
    }
    is(read_cr0(), cr0, "CR0 restored");
    write_cr0(cr0 | CR0_TS);
    asm volatile("clts");
    is(read_cr0(), cr0, "clts clears TS only");

    /* lmsw: PE MP EM TS; cannot clear PE */
    asm volatile("lmsw %w0" :: "r"(0x000e));
    r = 0;
    asm volatile("smsw %0" : "=r"(r));
    is(r & 0xf, 0xf, "lmsw 0xe: MP EM TS set, PE stays 1");
    asm volatile("lmsw %w0" :: "r"(0x0003));
    is(read_cr0(), (cr0 & ~0xfu) | 0x3, "lmsw 3: EM TS clear again, the rest of CR0 kept");
    write_cr0(cr0);

    write_cr2(0xdeadbeef);
    is(read_cr2(), 0xdeadbeef, "CR2 write / read");
    write_cr2(0);
    uint32_t cr3 = read_cr3();
    write_cr3(0x00123018);
    is(read_cr3(), 0x00123018, "CR3 write / read (paging off), PWT and PCD");
    write_cr3(cr3);

    uint32_t a, b, c, d;
    cpuid(1, &a, &b, &c, &d);
    uint32_t want = CR4_TSD | (1u << 8) /* PCE */;
    if (d & (1u << 2)) want |= CR4_DE;
    if (d & (1u << 3)) want |= CR4_PSE;
    if (d & (1u << 6)) want |= CR4_PAE;
    if (d & (1u << 7)) want |= 1u << 6;    /* MCE */
    if (d & (1u << 13)) want |= CR4_PGE;
    if (d & (1u << 24)) want |= CR4_OSFXSR;
    if (d & (1u << 25)) want |= CR4_OSXMMEXCPT;
    uint32_t cr4 = read_cr4();
    write_cr4(want);
    is(read_cr4(), want, "CR4: every bit CPUID allows can be set");
    write_cr4(cr4);
    is(read_cr4(), cr4, "CR4 restored");
}

static void debug_registers(void)
{
    static const uint32_t v[4] = { 0x00100000, 0x12345678, 0xfffffff0, 0x00000001 };
    uint32_t r[4];
    asm volatile("mov %2, %%dr0; mov %3, %%dr1; mov %%dr0, %0; mov %%dr1, %1"
                 : "=&r"(r[0]), "=&r"(r[1]) : "r"(v[0]), "r"(v[1]));
    asm volatile("mov %2, %%dr2; mov %3, %%dr3; mov %%dr2, %0; mov %%dr3, %1"
                 : "=&r"(r[2]), "=&r"(r[3]) : "r"(v[2]), "r"(v[3]));
    ok(r[0] == v[0] && r[1] == v[1] && r[2] == v[2] && r[3] == v[3], "DR0-DR3 write / read");
    uint32_t x = 0;
    asm volatile("mov %0, %%dr6; mov %%dr6, %0" : "+r"(x));
    is(x, 0xffff0ff0, "DR6 after writing 0: the fixed bits read as 1");
    x = 0;
    asm volatile("mov %0, %%dr7; mov %%dr7, %0" : "+r"(x));
    is(x, 0x00000400, "DR7 after writing 0: bit 10 reads as 1");
    x = 0;
    asm volatile("mov %%dr4, %0" : "+r"(x));
    is(x, 0xffff0ff0, "DR4 is DR6 when CR4.DE = 0");
    x = 0;
    asm volatile("mov %%dr5, %0" : "+r"(x));
    is(x, 0x00000400, "DR5 is DR7 when CR4.DE = 0");
    write_cr4(read_cr4() | CR4_DE);
    rt_clear_last();
    asm volatile(CATCH("2f") "mov %%dr4, %0\n2:" UNCATCH : "+r"(x));
    is(rt_last.vector, 6, "mov from DR4 with CR4.DE = 1: #UD");
    write_cr4(read_cr4() & ~CR4_DE);
    asm volatile("mov %0, %%dr0; mov %0, %%dr1; mov %0, %%dr2; mov %0, %%dr3" :: "r"(0));
}

static void cpuid_bits(void)
{
    uint32_t max, b, c, d, a;
    cpuid(0, &max, &b, &c, &d);
    ok(max >= 1, "cpuid leaf 0: leaf 1 exists");
    cpuid(1, &a, &b, &c, &d);
    static const struct { unsigned bit; const char *name; } f[] = {
        { 3, "PSE" }, { 4, "TSC" }, { 5, "MSR" }, { 8, "CX8" }, { 13, "PGE" }, { 15, "CMOV" },
        { 24, "FXSR" }, { 25, "SSE" }, { 26, "SSE2" },
    };
    for (unsigned i = 0; i < sizeof f / sizeof f[0]; i++)
        ok(d & (1u << f[i].bit), "cpuid leaf 1: %s", f[i].name);
}

static uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}
static void wrmsr(uint32_t msr, uint64_t v)
{
    asm volatile("wrmsr" :: "a"((uint32_t)v), "d"((uint32_t)(v >> 32)), "c"(msr));
}

static void time_and_msrs(void)
{
    uint64_t t1 = rdtsc();
    for (volatile int i = 0; i < 1000; i++)
        ;
    uint64_t t2 = rdtsc();
    uint64_t t3 = rdtsc();
    ok(t1 < t2 && t2 < t3, "rdtsc increases");
    write_cr4(read_cr4() | CR4_TSD);
    uint64_t t4 = rdtsc();
    ok(t4 >= t3, "rdtsc at CPL 0 with CR4.TSD = 1");
    write_cr4(read_cr4() & ~CR4_TSD);

    wrmsr(0x174, 0x0008);
    wrmsr(0x175, 0x12345678);
    wrmsr(0x176, 0x9abcdef0);
    is64(rdmsr(0x174), 0x0008, "SYSENTER_CS write / read");
    is64(rdmsr(0x175), 0x12345678, "SYSENTER_ESP write / read");
    is64(rdmsr(0x176), 0x9abcdef0, "SYSENTER_EIP write / read");
    wrmsr(0x174, 0);
    wrmsr(0x175, 0);
    wrmsr(0x176, 0);
    is64(rdmsr(0x174) | rdmsr(0x175) | rdmsr(0x176), 0, "SYSENTER MSRs cleared again");

    /* MSRs every vendor's guest kernels touch at boot, whatever CPUID says. */
    is64(rdmsr(0x1b), 0xfee00900, "IA32_APIC_BASE: 0xFEE00000, BSP, enabled");
    is64(rdmsr(0x277), 0x0007040600070406ull, "IA32_PAT at its reset value");
    wrmsr(0x277, 0x0007010600070106ull);
    is64(rdmsr(0x277), 0x0007010600070106ull, "IA32_PAT write / read");
    wrmsr(0x277, 0x0007040600070406ull);
}

static void caches(void)
{
    static volatile uint32_t word = 0x12345678;
    rt_clear_last();
    asm volatile(CATCH("2f") "wbinvd\n\tinvd\n\tinvlpg (%0)\n\tinvlpg 0x7ffff000\n2:" UNCATCH
                 :: "r"(&word) : "memory");
    is(rt_last.count, 0, "wbinvd, invd, invlpg run at CPL 0");
    is(word, 0x12345678, "memory intact after wbinvd; invd");
}

void test_main(void)
{
    eflags();
    descriptor_tables();
    ldt_tr();
    control_registers();
    debug_registers();
    cpuid_bits();
    time_and_msrs();
    caches();
}
