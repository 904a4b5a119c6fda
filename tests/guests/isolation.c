/*
 * isolation - address arithmetic at the edges of the 4 GiB address space and of RAM.
 *
 * bt86 runs guest linear address v at host address 1 GiB + v; whatever the guest computes
 * must stay inside that window and wrap like the guest's arithmetic.  Only addresses whose
 * contents QEMU and a plain PC model agree on are ever read back (RAM); with paging off the
 * top of the address space is QEMU's BIOS ROM, so the wrap-around tests there run with
 * paging on and the top page mapped to RAM.
 *
 * Paging off: a displacement of 0x80000000 on a base of 0x80001000 (lands at 0x1000), a
 * scaled index that overflows, a negative displacement wrapping below 0 within a segment
 * whose base is 64 KiB, a segment base of 0xfffff000 plus an offset of 0x2000 (linear
 * 0x1000) and a dword across a page boundary through it, 16-bit addressing wrapping at
 * 64 KiB, rep stosb across the top of the address space (the bytes at 0..3 land in RAM),
 * the last dword of RAM and dwords straddling its end (only the RAM part compared),
 * writes above RAM and to unassigned space (0xe0000000) changing no RAM, reads from there
 * returning without a fault (their values are not compared: QEMU returns 0, real hardware
 * all ones).
 * Paging on (4 MiB pages for RAM, the last 4 KiB page mapped to a RAM page): a dword at
 * 0xfffffffe split between that page and linear 0, a negative displacement reaching it,
 * rep movsb/stosb running across the top in both directions, a push with ESP = 2, and
 * code running through the top: an instruction straddling 0xffffffff/0 and EIP wrapping
 * to 0.
 */
#include "rt.h"

static volatile uint32_t *phys32(uint32_t a) { return (volatile uint32_t *)PHYS(a); }

static void displacements(void)
{
    *phys32(0x1000) = 0xfeedface;
    uint32_t v;
    asm volatile("movl 0x80000000(%1), %0" : "=r"(v) : "r"(0x80001000) : "memory");
    is(v, 0xfeedface, "[ebx + 0x80000000], ebx = 0x80001000: reads 0x1000");
    asm volatile("movl $0x0badcafe, 0x80000000(%0)" :: "r"(0x80001004) : "memory");
    is(*phys32(0x1004), 0x0badcafe, "[ebx + 0x80000000]: writes 0x1004");
    asm volatile("movl (%1,%2,8), %0" : "=r"(v) : "r"(0x1000), "r"(0x20000000) : "memory");
    is(v, 0xfeedface, "[ebx + ecx*8], ecx*8 = 4 GiB: wraps to ebx");
    asm volatile("movl -0x1000(%1,%2,4), %0" : "=r"(v) : "r"(0x2000), "r"(0x40000000) : "memory");
    is(v, 0xfeedface, "base + index*4 + negative displacement, wrapping twice");

    /* a data segment with base 64 KiB and a 4 GiB limit: [ebx - 0x20], ebx = 0x10 */
    rt_gdt[SEL_SPARE0 >> 3] = rt_desc(0x10000, 0xfffff, 0x93, 0xc);
    *phys32(0xfff0) = 0x13572468;
    asm volatile("movw %w2, %%fs; movl %%fs:-0x20(%1), %0; movw %w3, %%fs"
                 : "=r"(v) : "r"(0x10), "r"(SEL_SPARE0), "r"(SEL_KDATA) : "memory");
    is(v, 0x13572468, "fs base 0x10000, [ebx - 0x20] with ebx = 0x10: linear 0xfff0");
    rt_gdt[SEL_SPARE0 >> 3] = 0;

    /* base 0xfffff000 + offset 0x2000 = linear 0x1000 */
    asm volatile("movw %w1, %%gs; movl %%gs:0x2000, %0; movw %w2, %%gs"
                 : "=r"(v) : "r"(SEL_WRAP), "r"(SEL_KDATA) : "memory");
    is(v, 0xfeedface, "gs base 0xfffff000, offset 0x2000: linear 0x1000");
    *phys32(0x2ffc) = 0x44332211;
    *phys32(0x3000) = 0x88776655;
    asm volatile("movw %w1, %%gs; movl %%gs:0x3ffe, %0; movw %w2, %%gs"
                 : "=r"(v) : "r"(SEL_WRAP), "r"(SEL_KDATA) : "memory");
    is(v, 0x66554433, "gs base 0xfffff000: a dword across a page boundary (linear 0x2ffe)");
    asm volatile("movw %w1, %%es; movl $0x3ff0, %%edi; movl $0xa5a5a5a5, %%eax; movl $4, %%ecx;"
                 "cld; rep stosl; movw %w2, %%es"
                 : "=D"(v) : "r"(SEL_WRAP), "r"(SEL_KDATA) : "eax", "ecx", "memory");
    ok(*phys32(0x2ff0) == 0xa5a5a5a5 && *phys32(0x2ffc) == 0xa5a5a5a5 && *phys32(0x3000) == 0x88776655,
       "rep stosd through es base 0xfffff000 lands at linear 0x2ff0");

    /* 16-bit addressing: [bx+si] wraps at 64 KiB */
    *PHYS(0x0001) = 0x5a;
    uint8_t b;
    asm volatile(".byte 0x67; movb (%%bx,%%si), %0" : "=q"(b) : "b"(0x1234ffff), "S"(0x00000002) : "memory");
    is(b, 0x5a, "16-bit address [bx+si] = 0xffff + 2 wraps to 0x0001");
    *phys32(0xfffc) = 0x44332211;
    *phys32(0x10000) = 0x88776655;
    asm volatile(".byte 0x67; movl (%%bx), %0" : "=r"(v) : "b"(0xfffe) : "memory");
    is(v, 0x66554433, "16-bit address [bx] = 0xfffe: the dword itself runs on to 0x10001");
}

static void top_of_memory_paging_off(void)
{
    /* rep stosb from 0xfffffffc, 8 bytes: 4 go to the BIOS area (ignored or ROM), 4 to 0..3 */
    *phys32(0) = 0;
    uint32_t d = 0xfffffffc, c = 8;
    asm volatile("cld; rep stosb" : "+D"(d), "+c"(c) : "a"(0x77) : "memory");
    ok(d == 4 && c == 0, "rep stosb across 4 GiB (paging off): EDI wraps to 4");
    is(*phys32(0), 0x77777777, "rep stosb across 4 GiB: bytes 0..3 written");
}

static void ram_edges(void)
{
    uint32_t end = 128u << 20;
    *phys32(end - 4) = 0xcafebabe;
    is(*phys32(end - 4), 0xcafebabe, "the last dword of RAM");
    *phys32(end - 8) = 0x11223344;
    uint32_t v = *(volatile uint32_t *)PHYS(end - 6);
    is(v & 0xffff, 0x1122, "a dword straddling the end of RAM: its RAM half");
    *(volatile uint16_t *)PHYS(end - 2) = 0x5566;
    *(volatile uint32_t *)PHYS(end - 2) = 0xaabbccdd;
    is(*(volatile uint16_t *)PHYS(end - 2), 0xccdd, "a dword written across the end of RAM: its RAM half");

    /* above RAM and unassigned space: writes change no RAM, reads do not fault */
    *phys32(0x1234) = 0x600df00d;
    *phys32(0x10001234) = 0x12345678;
    *phys32(end + 0x1234) = 0x12345678;
    *phys32(0xe0000000 + 0x1234) = 0x12345678;
    *phys32(0x40000000 + 0x1234) = 0x12345678;
    *phys32(0x80000000 + 0x1234) = 0x12345678;
    is(*phys32(0x1234), 0x600df00d, "writes above RAM and to unassigned space do not alias RAM");
    rt_clear_last();
    volatile uint32_t sink = 0;
    asm volatile(CATCH("2f") "movl 0xe0000000, %%eax; movl 0x09000000, %%eax; movl 0xc0000000, %%eax\n2:" UNCATCH
                 ::: "eax", "memory");
    (void)sink;
    is(rt_last.count, 0, "reads from unassigned space return (values not compared)");
    uint32_t buf[4];
    uint32_t s = 0xe0000000, d = (uint32_t)buf, c = 4;
    asm volatile("cld; rep movsl" : "+S"(s), "+D"(d), "+c"(c) :: "memory");
    ok(c == 0 && s == 0xe0000010, "rep movsd from unassigned space completes");
}

/* ---- paging on ------------------------------------------------------------------------------- */
static uint32_t pd[1024] __attribute__((aligned(4096)));
static uint32_t pt_top[1024] __attribute__((aligned(4096)));
static uint8_t top_page[4096] __attribute__((aligned(4096)));

static void paging_on(void)
{
    for (unsigned i = 0; i < 32; i++)
        pd[i] = (i << 22) | 0x83;            /* 4 MiB, present, writable */
    pd[1023] = (uint32_t)pt_top | 0x03;
    pt_top[1023] = (uint32_t)top_page | 0x03;  /* linear 0xfffff000 -> top_page */
    write_cr4(read_cr4() | CR4_PSE);
    write_cr3((uint32_t)pd);
    write_cr0(read_cr0() | CR0_PG);
}

static void paging_off(void)
{
    write_cr0(read_cr0() & ~CR0_PG);
    write_cr4(read_cr4() & ~CR4_PSE);
}

extern char wrap_code_end[];

static void top_of_memory_paging_on(void)
{
    volatile uint8_t *top = top_page, *zero = PHYS(0);
    paging_on();
    volatile uint32_t *w = (volatile uint32_t *)PHYS(0xfffffffe);
    *w = 0x44332211;
    ok(top[0xffe] == 0x11 && top[0xfff] == 0x22 && zero[0] == 0x33 && zero[1] == 0x44,
       "paging on: a dword at 0xfffffffe is split between the last page and linear 0");
    is(*w, 0x44332211, "paging on: reading it back across the wrap");
    *(volatile uint32_t *)&top[0xff0] = 0x31415926;
    uint32_t v;
    asm volatile("movl -0x20(%1), %0" : "=r"(v) : "r"(0x10) : "memory");
    is(v, 0x31415926, "[ebx - 0x20] with ebx = 0x10: linear 0xfffffff0");

    for (unsigned i = 0; i < 8; i++) {
        top[0xff8 + i] = (uint8_t)(0xa0 + i);
        zero[i] = (uint8_t)(0xb0 + i);
    }
    uint8_t buf[16];
    uint32_t s = 0xfffffff8, d = (uint32_t)buf, c = 16;
    asm volatile("cld; rep movsb" : "+S"(s), "+D"(d), "+c"(c) :: "memory");
    ok(s == 8 && buf[7] == 0xa7 && buf[8] == 0xb0 && buf[15] == 0xb7, "rep movsb reading across the top");
    d = 0xfffffffc;
    c = 8;
    asm volatile("cld; rep stosb" : "+D"(d), "+c"(c) : "a"(0x5e) : "memory");
    ok(d == 4 && top[0xffc] == 0x5e && top[0xfff] == 0x5e && zero[0] == 0x5e && zero[3] == 0x5e && zero[4] == 0xb4,
       "rep stosb writing across the top");
    d = 3;
    c = 8;
    asm volatile("std; rep stosb; cld" : "+D"(d), "+c"(c) : "a"(0x6f) : "memory");
    ok(d == 0xfffffffb && zero[3] == 0x6f && zero[0] == 0x6f && top[0xfff] == 0x6f && top[0xffc] == 0x6f &&
       top[0xffb] == 0xa3, "rep stosb with DF = 1 running down through 0");

    /* a push with ESP = 2 */
    uint32_t esp_after;
    asm volatile("cli; mov %%esp, %%edx; mov $2, %%esp; pushl $0xd00dfeed; mov %%esp, %0; mov %%edx, %%esp"
                 : "=r"(esp_after) :: "edx", "memory");
    ok(esp_after == 0xfffffffe && top[0xffe] == 0xed && top[0xfff] == 0xfe && zero[0] == 0x0d && zero[1] == 0xd0,
       "push with ESP = 2 wraps to 0xfffffffe");

    /* code across the top: at 0xfffffffd a 5-byte mov runs on to linear 1, then at linear 2
     * `inc eax; ret`; EIP wraps from 0xffffffff to 0 */
    top[0xffd] = 0xb8;                   /* mov $0x44332211, %eax */
    top[0xffe] = 0x11;
    top[0xfff] = 0x22;
    zero[0] = 0x33;
    zero[1] = 0x44;
    zero[2] = 0x40;                      /* inc %eax */
    zero[3] = 0xc3;                      /* ret */
    uint32_t r = ((uint32_t (*)(void))0xfffffffd)();
    is(r, 0x44332212, "an instruction straddling 4 GiB, then EIP wraps to 0");
    top[0xffe] = 0x90;                   /* nop; nop; then at 0: inc; inc; ret */
    top[0xfff] = 0x90;
    zero[0] = 0x40;
    zero[1] = 0x40;
    zero[2] = 0xc3;
    uint32_t (*f)(uint32_t) = (uint32_t (*)(uint32_t))0xfffffffe;
    r = 0;
    asm volatile("call *%1" : "+a"(r) : "r"(f) : "memory");
    is(r, 2, "nops at 0xfffffffe..0xffffffff fall through to linear 0");
    paging_off();
    ok(!(read_cr0() & CR0_PG), "paging off again");
}

void test_main(void)
{
    displacements();
    top_of_memory_paging_off();
    ram_edges();
    top_of_memory_paging_on();
}
