/*
 * hello - the default guest: a short tour of what bt86 virtualizes, printed as TAP.
 *
 * Run it with `cargo run --release -p bt86-guests --bin guest` (see the README). It is a
 * test kernel like the others: its output under bt86 must equal QEMU's.
 *
 * The tour: the Multiboot handoff; turning on paging and seeing one page at two linear
 * addresses; a page fault delivered to the guest's handler; the PIT waking `hlt` with
 * timer interrupts; a breakpoint exception; a self-modifying function.
 */
#include "rt.h"

#define PTE_P 0x001u
#define PTE_W 0x002u
#define PDE_PS 0x080u
#define HIGH 0xC0000000u   /* where the greeting page is mapped a second time */

static uint32_t pd[1024] __attribute__((aligned(4096)));
static uint32_t pt[1024] __attribute__((aligned(4096)));
static char greeting[4096] __attribute__((aligned(4096)));

static volatile uint32_t fault_cr2;
static void on_page_fault(struct trap_frame *f, uint32_t *eip)
{
    (void)f;
    fault_cr2 = read_cr2();
    *eip += 2;   /* skip the 2-byte load that faulted */
}

static uint8_t code[16] __attribute__((aligned(16)));

void test_main(void)
{
    rt_puts("# Hello from a 32-bit guest kernel.\n");
    ok(rt_mb_magic == 0x2badb002 && (rt_entry_cr0 & (CR0_PE | CR0_PG)) == CR0_PE,
       "started by a Multiboot loader in protected mode, paging off");

    /* Paging: RAM identity-mapped with 4 MiB pages, plus the greeting page at HIGH. */
    for (unsigned i = 0; i < 32; i++)
        pd[i] = (i << 22) | PDE_PS | PTE_W | PTE_P;
    pd[HIGH >> 22] = (uint32_t)pt | PTE_W | PTE_P;
    pt[0] = (uint32_t)greeting | PTE_W | PTE_P;
    write_cr4(read_cr4() | CR4_PSE);
    write_cr3((uint32_t)pd);
    write_cr0(read_cr0() | CR0_PG);
    volatile uint8_t *alias = PHYS(HIGH);
    const char *msg = "one page, two addresses";
    for (unsigned i = 0; msg[i]; i++)
        alias[i] = (uint8_t)msg[i];
    ok(greeting[0] == 'o' && greeting[4] == 'p', "paging on: a write at 0xC0000000 lands in the kernel's page");

    /* A page fault: the page after the greeting page is not mapped. */
    rt_set_hook(14, on_page_fault);
    asm volatile(".byte 0x8b, 0x00" :: "a"(HIGH + 0x1000) : "memory");   /* movl (%eax), %eax */
    rt_set_hook(14, 0);
    is(fault_cr2, HIGH + 0x1000, "a load from an unmapped page: #PF, CR2 = its address");

    /* The PIT at 100 Hz wakes hlt ten times. */
    rt_irq_count[0] = 0;
    outb(0x43, 0x34);
    outb(0x40, (1193182 / 100) & 0xff);
    outb(0x40, (1193182 / 100) >> 8);
    outb(0x21, 0xfe);
    sti();
    while (rt_irq_count[0] < 10)
        asm volatile("hlt");
    cli();
    outb(0x21, 0xff);
    ok(rt_irq_count[0] >= 10, "timer interrupts woke hlt ten times");

    /* int3 goes through the guest's IDT. */
    rt_clear_last();
    asm volatile(CATCH("1f") "int3\n1:\t" UNCATCH ::: "memory");
    is(rt_last.vector, 3, "int3: #BP delivered through the IDT");

    /* Code that rewrites itself: the translator notices and translates it again. */
    const uint8_t body[] = {0xb8, 1, 0, 0, 0, 0xc3};   /* mov $1, %eax; ret */
    for (unsigned i = 0; i < sizeof body; i++)
        code[i] = body[i];
    uint32_t (*f)(void) = (uint32_t (*)(void))(uintptr_t)code;
    uint32_t first = f();
    code[1] = 2;
    is(first * 10 + f(), 12, "self-modifying code: the new instruction runs");

    write_cr0(read_cr0() & ~CR0_PG);
    rt_puts("# Goodbye.\n");
}
