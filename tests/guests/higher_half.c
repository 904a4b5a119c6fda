/*
 * higher_half - a kernel linked at 0xC0000000 + its physical address, as Linux is.
 *
 * higher_half.ld links everything at 0xC0100000 and loads it at 0x100000 (p_vaddr =
 * p_paddr + 0xC0000000); the ELF entry point hh_start is a virtual address that the loader
 * turns into a physical one through the program headers.  hh_start runs at its physical
 * address with paging off, touching memory only at "symbol - 0xC0000000": it loads the
 * runtime's GDT through its physical address, builds a page directory mapping 0-4 MiB both
 * at 0 (identity) and at 0xC0000000 through one page table of 4 KiB pages, 4-16 MiB at
 * 0xC0400000 with 4 MiB pages and 0-4 MiB again at 0xC1000000 with one 4 MiB page, turns on
 * CR4.PSE and CR0.PG, jumps to the higher half, reloads the GDT at its virtual address,
 * clears the identity PDE and reloads CR3.  hh_main then copies the Multiboot information
 * to the higher half (rewriting its command-line pointer), runs the runtime's rt_init (IDT
 * at a higher-half address) and test_main.
 *
 * Checked from the higher half: EIP, ESP, the image and a function's address are above
 * 0xC0000000; the Multiboot magic; initialised data, read-only data, bss, a table of
 * function pointers, recursion; sgdt/sidt give the higher-half tables; #UD, #BP, #DE, #GP
 * and a hooked int 0x41 through the higher-half IDT (EIP and CS in the frame); a second IDT
 * and a second GDT loaded at other higher-half addresses; far jmp, far call/lret and iret
 * to higher-half offsets; #PF (CR2, error code, EIP) for reads, writes and instruction
 * fetches at the physical addresses the identity map used to cover; the identity PDE put
 * back (no invalidation needed for a not-present -> present change) and removed again
 * with invlpg and with a CR3 reload; 4 KiB higher-half pages: A/D bits in the PTE and the
 * PDE's A, unmapped + invlpg (#PF), remapped to another frame, write-protected with
 * CR0.WP; 4 MiB higher-half pages: an alias of the kernel's own memory, A/D bits in the
 * PDE, a remapped 4 MiB PDE, an unmapped one.
 */
#include "rt.h"

#define KOFF 0xC0000000u
#define PG_P 0x001u
#define PG_W 0x002u
#define PG_A 0x020u
#define PG_D 0x040u
#define PG_PS 0x080u

uint32_t hh_pd[1024] __attribute__((aligned(4096)));
uint32_t hh_pt_low[1024] __attribute__((aligned(4096)));
/* The GDT pseudo-descriptor for paging off: the runtime's GDT at its physical address. */
struct { uint16_t pad, limit; uint32_t base; } __attribute__((packed, aligned(4)))
    hh_boot_gdtr = { 0, GDT_ENTRIES * 8 - 1, (uint32_t)rt_gdt - KOFF };

/*
 * The entry point: physical addresses only until the jump to hh_high.  Multiboot state:
 * EAX = magic, EBX = physical address of the information, flat CS/DS, paging off.
 */
asm(".pushsection .text\n"
    ".globl hh_start\n"
    "hh_start:\n"
    "\tcli\n"
    "\tmovl %eax, rt_mb_magic - 0xC0000000\n"
    "\tmovl %ebx, rt_mb_info - 0xC0000000\n"
    "\tmovl $rt_stack_top - 0xC0000000, %esp\n"
    "\tlgdt hh_boot_gdtr + 2 - 0xC0000000\n"
    "\tljmp $0x08, $1f - 0xC0000000\n"
    "1:\tmovw $0x10, %ax\n"
    "\tmovw %ax, %ds\n\tmovw %ax, %es\n\tmovw %ax, %fs\n\tmovw %ax, %gs\n\tmovw %ax, %ss\n"
    /* the page table for 0-4 MiB: 4 KiB pages, present + writable */
    "\tmovl $hh_pt_low - 0xC0000000, %edi\n"
    "\tmovl $0x003, %eax\n"
    "\tmovl $1024, %ecx\n"
    "2:\tmovl %eax, (%edi)\n"
    "\taddl $0x1000, %eax\n"
    "\taddl $4, %edi\n"
    "\tloop 2b\n"
    /* the page directory (zeroed, in .bss) */
    "\tmovl $hh_pd - 0xC0000000, %edi\n"
    "\tmovl $hh_pt_low - 0xC0000000 + 0x003, %eax\n"
    "\tmovl %eax, 0(%edi)\n"                 /* 0x00000000: identity, 4 KiB pages */
    "\tmovl %eax, 768*4(%edi)\n"             /* 0xC0000000: the same page table */
    "\tmovl $0x00400083, 769*4(%edi)\n"      /* 0xC0400000: 4 MiB pages, 4-16 MiB */
    "\tmovl $0x00800083, 770*4(%edi)\n"
    "\tmovl $0x00c00083, 771*4(%edi)\n"
    "\tmovl $0x00000083, 772*4(%edi)\n"      /* 0xC1000000: 0-4 MiB as one 4 MiB page */
    "\tmovl %cr4, %eax\n"
    "\torl $0x10, %eax\n"                    /* PSE */
    "\tmovl %eax, %cr4\n"
    "\tmovl %edi, %cr3\n"
    "\tmovl $0x80000033, %eax\n"             /* PG | NE | ET | MP | PE */
    "\tmovl %eax, %cr0\n"
    "\tmovl $hh_high, %eax\n"
    "\tjmp *%eax\n"
    "hh_high:\n"                             /* now at 0xC01xxxxx */
    "\tmovl $rt_stack_top, %esp\n"
    "\tlgdt rt_gdt_ptr\n"
    "\tljmp $0x08, $3f\n"
    "3:\tmovw $0x10, %ax\n"
    "\tmovw %ax, %ds\n\tmovw %ax, %es\n\tmovw %ax, %fs\n\tmovw %ax, %gs\n\tmovw %ax, %ss\n"
    "\tmovl $0, hh_pd\n"                     /* drop the identity mapping */
    "\tmovl %cr3, %eax\n"
    "\tmovl %eax, %cr3\n"
    "\tpushl $0x002\n"
    "\tpopfl\n"
    "\tcall hh_main\n"
    "4:\tcli\n\thlt\n\tjmp 4b\n"
    ".popsection\n");

void rt_init(void);
static uint32_t hh_mbi[32];
static uint32_t boot_mbi_phys, boot_esp;

void hh_main(void);
void hh_main(void)
{
    uint32_t esp;
    asm volatile("movl %%esp, %0" : "=r"(esp));
    boot_esp = esp;
    /* The boot information is at a physical address: read it through the higher half. */
    boot_mbi_phys = rt_mb_info;
    if (rt_mb_magic == 0x2badb002 && boot_mbi_phys && boot_mbi_phys < 0x400000 - sizeof hh_mbi) {
        memcpy(hh_mbi, (const void *)(boot_mbi_phys + KOFF), sizeof hh_mbi);
        if ((hh_mbi[0] & 4) && hh_mbi[4] && hh_mbi[4] < 0x3ff000)
            hh_mbi[4] += KOFF;
        else
            hh_mbi[0] &= ~4u;
        rt_mb_info = (uint32_t)hh_mbi;
    } else {
        rt_mb_info = 0;
    }
    rt_init();
    test_main();
    tap_done();
}

static inline void invlpg(uint32_t a) { asm volatile("invlpg (%0)" :: "r"(a) : "memory"); }
static inline volatile uint32_t *lin(uint32_t a) { return (volatile uint32_t *)PHYS(a); }

/* ---- running in the higher half ------------------------------------------------------------- */
static volatile uint32_t hh_data = 0x600df00d;
static const char hh_text[] = "read-only data in the higher half";
static uint32_t hh_zero[64];

static uint32_t leaf1(uint32_t x) { return x + 1; }
static uint32_t leaf2(uint32_t x) { return x * 3; }
static uint32_t leaf3(uint32_t x) { return x ^ 0x5a; }
static uint32_t (*const hh_table[])(uint32_t) = { leaf1, leaf2, leaf3 };
static uint32_t __attribute__((noinline)) fib(uint32_t n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

static void running(void)
{
    uint32_t eip, esp;
    asm volatile("call 1f\n1:\tpopl %0" : "=r"(eip));
    asm volatile("movl %%esp, %0" : "=r"(esp));
    ok(eip >= KOFF, "EIP is in the higher half");
    ok(esp >= KOFF && boot_esp >= KOFF, "ESP is in the higher half");
    is((uint32_t)__image_start, 0xC0100000, "the image is linked at 0xC0100000");
    ok((uint32_t)test_main >= KOFF && (uint32_t)rt_printf >= KOFF, "functions have higher-half addresses");
    is(rt_mb_magic, 0x2badb002, "the Multiboot magic, saved by the physical-address entry code");
    ok(boot_mbi_phys && boot_mbi_phys < KOFF && rt_mb_info == (uint32_t)hh_mbi && (hh_mbi[0] & 1) && hh_mbi[1] == 639,
       "the Multiboot information read through the higher half (mem_lower = 639)");
    is(hh_pd[0], 0, "the identity PDE is gone");
    is(read_cr3(), (uint32_t)hh_pd - KOFF, "CR3 holds the page directory's physical address");
}

static void data(void)
{
    is(hh_data, 0x600df00d, "initialised data");
    hh_data = 0x12345678;
    is(hh_data, 0x12345678, "written and read back");
    ok(!memcmp(hh_text, "read-only data in the higher half", sizeof hh_text), "read-only data");
    uint32_t z = 0;
    for (unsigned i = 0; i < 64; i++)
        z |= hh_zero[i];
    is(z, 0, "bss is zero");
    uint32_t v = 10;
    for (unsigned i = 0; i < 3; i++)
        v = hh_table[i](v);
    is(v, ((10 + 1) * 3) ^ 0x5a, "calls through a table of function pointers");
    is(fib(15), 610, "recursion on the higher-half stack");
}

/* ---- descriptor tables and exceptions ------------------------------------------------------ */
static uint64_t hh_idt2[256] __attribute__((aligned(8)));
static uint64_t hh_gdt2[GDT_ENTRIES] __attribute__((aligned(8)));
static volatile uint32_t hook_hits, hook_eip;

static void on_int41(struct trap_frame *f, uint32_t *eip)
{
    hook_hits++;
    hook_eip = eip[0];
    f->eax = f->ebx * 2;
}

struct dtr { uint16_t limit; uint32_t base; } __attribute__((packed));
#define AT(label) ({ uint32_t _a; asm("movl $" label ", %0" : "=r"(_a)); _a; })

static void tables(void)
{
    struct dtr g, i;
    asm volatile("sgdt %0" : "=m"(g));
    asm volatile("sidt %0" : "=m"(i));
    ok(g.base == (uint32_t)rt_gdt && g.base >= KOFF, "sgdt: the GDT at its higher-half address");
    ok(i.base == (uint32_t)rt_idt && i.base >= KOFF, "sidt: the IDT at its higher-half address");
    uint64_t gate = rt_idt[6];
    ok(((uint32_t)(gate & 0xffff) | (uint32_t)((gate >> 32) & 0xffff0000)) == rt_stub(6) && rt_stub(6) >= KOFF,
       "IDT gates point at higher-half handlers");

    rt_clear_last();
    asm volatile(CATCH("2f") "hh_ud:\tud2\n2:" UNCATCH ::: "memory");
    is_trap(6, 0, 0, AT("hh_ud"), "#UD through the higher-half IDT");
    ok(rt_last.cs == SEL_KCODE && rt_last.eip >= KOFF, "#UD frame: CS and a higher-half EIP");
    rt_clear_last();
    asm volatile(CATCH("2f") "int3\nhh_bp:\n2:" UNCATCH ::: "memory");
    is_trap(3, 0, 0, AT("hh_bp"), "#BP through the higher-half IDT");
    rt_clear_last();
    uint32_t q, r;
    asm volatile(CATCH("2f") "hh_de:\tdivl %2\n2:" UNCATCH : "=a"(q), "=d"(r) : "r"(0), "a"(1), "d"(0) : "memory");
    is_trap(0, 0, 0, AT("hh_de"), "#DE through the higher-half IDT");
    rt_clear_last();
    asm volatile(CATCH("2f") "hh_gp:\tmovw %w0, %%ds\n2:" UNCATCH "movw %w1, %%ds" :: "r"(0x1230), "r"(SEL_KDATA) : "memory");
    is_trap(13, 1, 0x1230, AT("hh_gp"), "#GP(selector) through the higher-half IDT");

    rt_set_hook(0x41, on_int41);
    uint32_t a;
    asm volatile("int $0x41\nhh_int41:" : "=a"(a) : "b"(21) : "memory");
    ok(a == 42 && hook_hits == 1 && hook_eip == AT("hh_int41"), "int 0x41 through the higher-half IDT, hooked");
    rt_set_hook(0x41, 0);

    /* a second IDT elsewhere in the higher half */
    memcpy(hh_idt2, rt_idt, sizeof hh_idt2);
    rt_idt_set(6, rt_stub(7), SEL_KCODE, GATE_INT);         /* the old IDT would say 7 now */
    struct dtr ni = { sizeof hh_idt2 - 1, (uint32_t)hh_idt2 };
    asm volatile("lidt %0" :: "m"(ni));
    rt_clear_last();
    asm volatile(CATCH("2f") "ud2\n2:" UNCATCH ::: "memory");
    ok(rt_last.count == 1 && rt_last.vector == 6, "a second IDT at another higher-half address: #UD through it");
    asm volatile("lidt %0" :: "m"(i));
    rt_clear_last();
    asm volatile(CATCH("2f") "ud2\n2:" UNCATCH ::: "memory");
    ok(rt_last.count == 1 && rt_last.vector == 7, "the first IDT again (its #UD gate now points at vector 7's stub)");
    rt_idt_set(6, rt_stub(6), SEL_KCODE, GATE_INT);

    /* a second GDT */
    memcpy(hh_gdt2, rt_gdt, sizeof hh_gdt2);
    struct dtr ng = { sizeof hh_gdt2 - 1, (uint32_t)hh_gdt2 };
    uint32_t cs;
    hh_gdt2[SEL_SPARE0 >> 3] = rt_desc(0, 0xfffff, 0x93, 0xc);   /* only in the second GDT */
    asm volatile("lgdt %1\n\tljmp $0x18, $1f\n1:\tmovl %%cs, %0\n\t"
                 "movw %3, %%ax\n\tmovw %%ax, %%fs\n\tmovw $0x10, %%ax\n\tmovw %%ax, %%ds\n\t"
                 "lgdt %2\n\tljmp $0x08, $2f\n2:\tmovw %%ax, %%ds\n\tmovw %%ax, %%fs"
                 : "=&r"(cs) : "m"(ng), "m"(g), "i"(SEL_SPARE0) : "eax", "memory");
    ok(cs == 0x18, "a second GDT at another higher-half address: far jump and segment loads through it");

    /* far transfers and iret to higher-half offsets */
    uint32_t c1, c2;
    asm volatile("ljmp $0x18, $1f\n1:\tmovl %%cs, %0\n\tljmp $0x08, $2f\n2:" : "=r"(c1));
    ok(c1 == 0x18, "far jump to a higher-half offset");
    asm volatile("lcall $0x18, $hh_far\n\tjmp 1f\n"
                 "hh_far:\tmovl %%cs, %0\n\tlret\n1:" : "=r"(c2));
    ok(c2 == 0x18, "far call and far return");
    uint32_t c3;
    asm volatile("pushfl\n\tpushl $0x18\n\tpushl $1f\n\tiretl\n1:\tmovl %%cs, %0\n\tljmp $0x08, $2f\n2:" : "=r"(c3));
    ok(c3 == 0x18, "iret to a higher-half offset");
}

/* ---- the identity mapping is gone -------------------------------------------------------- */
#define RUN(insn, ...)                                                                        \
    ({                                                                                        \
        uint32_t _at;                                                                         \
        rt_clear_last();                                                                      \
        asm volatile(CATCH("3f") "movl $1f, %0\n1:\t" insn "\n3:\t" UNCATCH                   \
                     : "=m"(_at) : __VA_ARGS__);                                               \
        _at;                                                                                  \
    })
static uint32_t saved_esp __attribute__((used));

static void identity_gone(void)
{
    uint32_t phys = (uint32_t)&hh_data - KOFF;
    uint32_t at = RUN("movl (%2), %%eax", "i"(0), "r"(phys) : "eax", "memory");
    is_trap(14, 1, 0, at, "read at a formerly identity-mapped address: #PF, error 0");
    is(read_cr2(), phys, "CR2 = that address");
    at = RUN("movl $1, (%2)", "i"(0), "r"(phys) : "memory");
    is_trap(14, 1, 2, at, "write there: #PF, error 2");
    uint32_t target = (uint32_t)leaf1 - KOFF;
    rt_clear_last();
    asm volatile(CATCH("1f") "movl %%esp, saved_esp\n\tcall *%0\n1:\tmovl saved_esp, %%esp\n\t" UNCATCH
                 :: "r"(target) : "eax", "ecx", "edx", "memory");
    ok(rt_last.count == 1 && rt_last.vector == 14 && rt_last.err == 0 && rt_last.eip == target && read_cr2() == target,
       "call to a function's physical address: #PF at the target, error 0");
    at = RUN("movl (%2), %%eax", "i"(0), "r"(0x1000) : "eax", "memory");
    is_trap(14, 1, 0, at, "read at 0x1000: #PF");

    /* put the identity PDE back: no invalidation is needed for not present -> present */
    hh_pd[0] = (uint32_t)hh_pt_low - KOFF + (PG_W | PG_P);
    hh_data = 0xabcd0001;
    ok(*lin(phys) == 0xabcd0001, "the identity PDE put back: the physical address reads the variable");
    *lin(phys) = 0xabcd0002;
    is(hh_data, 0xabcd0002, "and writes through it land in the variable");
    hh_pd[0] = 0;
    invlpg(phys);
    at = RUN("movl (%2), %%eax", "i"(0), "r"(phys) : "eax", "memory");
    is_trap(14, 1, 0, at, "removed again + invlpg: #PF");
    hh_pd[0] = (uint32_t)hh_pt_low - KOFF + (PG_W | PG_P);
    ok(*lin(phys + 4) == *(volatile uint32_t *)((uint32_t)&hh_data + 4), "back once more");
    hh_pd[0] = 0;
    write_cr3(read_cr3());
    at = RUN("movl (%2), %%eax", "i"(0), "r"(phys + 4) : "eax", "memory");
    is_trap(14, 1, 0, at, "removed again + CR3 reload: #PF");
}

/* ---- 4 KiB pages in the higher half ---------------------------------------------------------- */
static uint8_t spare[2][4096] __attribute__((aligned(4096)));

static void small_pages(void)
{
    uint32_t va = (uint32_t)spare[0], pa = va - KOFF;
    uint32_t *pte = &hh_pt_low[pa >> 12];
    spare[0][0x10] = 0x11;
    spare[1][0x10] = 0x22;
    ok(va >= KOFF && va < KOFF + 0x400000 && (*pte & ~0xfffu) == pa, "a bss page: a 4 KiB higher-half page");

    *pte &= ~(PG_A | PG_D);
    hh_pd[768] &= ~PG_A;
    invlpg(va);
    (void)*(volatile uint8_t *)&spare[0][0x20];
    ok((*pte & (PG_A | PG_D)) == PG_A, "a read sets the PTE's A, not D");
    ok(hh_pd[768] & PG_A, "and the PDE's A");
    *(volatile uint8_t *)&spare[0][0x24] = 1;
    ok((*pte & (PG_A | PG_D)) == (PG_A | PG_D), "a write sets D");

    *pte &= ~PG_P;
    invlpg(va);
    uint32_t at = RUN("movl (%2), %%eax", "i"(0), "r"(va + 0x30) : "eax", "memory");
    is_trap(14, 1, 0, at, "unmapped + invlpg: a read faults");
    is(read_cr2(), va + 0x30, "CR2 = the higher-half address");
    at = RUN("movl $5, (%2)", "i"(0), "r"(va + 0x34) : "memory");
    is_trap(14, 1, 2, at, "unmapped: a write faults, error 2");
    *pte = (pa + 0x1000) | PG_W | PG_P;                  /* -> spare[1]'s frame */
    invlpg(va);
    is(*(volatile uint8_t *)&spare[0][0x10], 0x22, "remapped to another frame + invlpg");
    *pte = pa | PG_P;                                    /* back, read-only */
    invlpg(va);
    is(*(volatile uint8_t *)&spare[0][0x10], 0x11, "back to its frame, read-only");
    write_cr0(read_cr0() | CR0_WP);
    at = RUN("movb $7, (%2)", "i"(0), "r"(va + 0x10) : "memory");
    is_trap(14, 1, 3, at, "read-only with CR0.WP = 1: a write faults, error 3");
    write_cr0(read_cr0() & ~CR0_WP);
    at = RUN("movb $7, (%2)", "i"(0), "r"(va + 0x10) : "memory");
    ok(rt_last.count == 0 && spare[0][0x10] == 7, "read-only with CR0.WP = 0: the write works");
    (void)at;
    *pte = pa | PG_W | PG_P;
    invlpg(va);
}

/* ---- 4 MiB pages in the higher half --------------------------------------------------------- */
static void large_pages(void)
{
    /* 0xC1000000 maps physical 0-4 MiB with one 4 MiB page: an alias of the kernel image */
    uint32_t alias = 0xC1000000u + ((uint32_t)&hh_data - KOFF);
    hh_data = 0x44440001;
    is(*lin(alias), 0x44440001, "the kernel's memory through a 4 MiB higher-half alias");
    *lin(alias) = 0x44440002;
    is(hh_data, 0x44440002, "written through the alias");

    /* 0xC0400000-0xC0FFFFFF: physical 4-16 MiB in 4 MiB pages */
    *lin(0xC0400000u + 0x1230) = 0x4a4a0004;
    *lin(0xC0800000u + 0x1230) = 0x4a4a0008;
    *lin(0xC0C00000u + 0x1230) = 0x4a4a000c;
    hh_pd[773] = 0x00400000 | PG_PS | PG_W | PG_P;       /* 0xC1400000: physical 4 MiB again */
    is(*lin(0xC1400000u + 0x1230), 0x4a4a0004, "two 4 MiB higher-half pages, one frame");
    hh_pd[773] = 0x00800000 | PG_PS | PG_W | PG_P;
    invlpg(0xC1400000u + 0x1230);
    is(*lin(0xC1400000u + 0x1230), 0x4a4a0008, "the 4 MiB PDE remapped + invlpg");

    hh_pd[770] &= ~(PG_A | PG_D);
    invlpg(0xC0800000u);
    (void)*lin(0xC0800000u + 0x3ffffc);
    ok((hh_pd[770] & (PG_A | PG_D)) == PG_A, "4 MiB higher-half page: a read sets A, not D");
    *lin(0xC0800000u + 0x200000) = 9;
    ok((hh_pd[770] & (PG_A | PG_D)) == (PG_A | PG_D), "4 MiB higher-half page: a write sets D");

    hh_pd[771] &= ~PG_P;
    invlpg(0xC0C00000u + 0x1230);
    uint32_t at = RUN("movl (%2), %%eax", "i"(0), "r"(0xC0C01230u) : "eax", "memory");
    is_trap(14, 1, 0, at, "a 4 MiB higher-half page unmapped + invlpg: #PF");
    is(read_cr2(), 0xC0C01230u, "CR2 = the higher-half address");
    hh_pd[771] |= PG_P;
    is(*lin(0xC0C00000u + 0x1230), 0x4a4a000c, "mapped again");
    hh_pd[773] = 0;
    invlpg(0xC1400000u);
}

void test_main(void)
{
    running();
    data();
    tables();
    identity_gone();
    small_pages();
    large_pages();
    ok(read_cr0() & CR0_PG, "still paging, still in the higher half");
}
