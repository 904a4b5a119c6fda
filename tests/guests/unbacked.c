/*
 * unbacked - physical addresses with neither RAM nor a device behind them.
 *
 * bt86-only: QEMU reads unassigned memory as 0; a PC (and bt86) reads all ones.
 *
 * With 128 MiB of RAM: dword, word and byte reads at the end of RAM and in unassigned space
 * (0xE0000000) return all ones, with paging off and through a 4 KiB page mapped there with
 * paging on; writes there are dropped (reading back still gives all ones) and change no
 * RAM; a dword straddling the end of RAM reads RAM bytes and ones; rep stosd across the end
 * of RAM fills the RAM part only; an instruction fetch from unbacked memory runs 0xFF bytes
 * (an invalid opcode: #UD).
 */
#include "rt.h"

#define PTE_P 0x001u
#define PTE_W 0x002u
#define PDE_PS 0x080u
#define RAM_END 0x08000000u            /* 128 MiB, bt86's and QEMU's default */
#define NOWHERE 0xE0000000u

static uint32_t pd[1024] __attribute__((aligned(4096)));
static uint32_t pt[1024] __attribute__((aligned(4096)));

static uint32_t saved_esp __attribute__((used));

static uint32_t rd32(uint32_t a) { return *(volatile uint32_t *)PHYS(a); }
static uint32_t rd16(uint32_t a) { return *(volatile uint16_t *)PHYS(a); }
static uint32_t rd8(uint32_t a) { return *PHYS(a); }
static void wr32(uint32_t a, uint32_t v) { *(volatile uint32_t *)PHYS(a) = v; }

static void reads_and_writes(const char *where, uint32_t base)
{
    ok(rd32(base) == 0xffffffffu && rd16(base + 6) == 0xffffu && rd8(base + 9) == 0xffu,
       "%s: dword, word and byte reads give all ones", where);
    wr32(base + 0x10, 0x12345678u);
    is(rd32(base + 0x10), 0xffffffffu, "%s: a write is dropped", where);
}

void test_main(void)
{
    reads_and_writes("end of RAM, paging off", RAM_END);
    reads_and_writes("unassigned space, paging off", NOWHERE);

    wr32(RAM_END - 4, 0xa1b2c3d4u);
    is(rd32(RAM_END - 2), 0xffffa1b2u, "a dword straddling the end of RAM: RAM bytes, then ones");
    uint32_t d = RAM_END - 8, c = 4;
    asm volatile("cld; rep stosl" : "+D"(d), "+c"(c) : "a"(0x55555555u) : "memory");
    ok(rd32(RAM_END - 8) == 0x55555555u && rd32(RAM_END - 4) == 0x55555555u && rd32(RAM_END) == 0xffffffffu,
       "rep stosd across the end of RAM fills the RAM part");

    rt_clear_last();
    /* the call pushes before the fetch faults: ESP is put back by hand */
    asm volatile(CATCH("1f") "movl %%esp, saved_esp\n\tcall *%0\n1:\tmovl saved_esp, %%esp\n\t" UNCATCH
                 :: "r"(NOWHERE + 0x100) : "memory");
    ok(rt_last.vector == 6 && rt_last.eip == NOWHERE + 0x100, "fetching from unassigned space runs 0xff bytes: #UD");

    for (unsigned i = 0; i < 32; i++)
        pd[i] = (i << 22) | PDE_PS | PTE_W | PTE_P;
    pd[0x40000000u >> 22] = (uint32_t)pt | PTE_W | PTE_P;
    pt[0] = RAM_END | PTE_W | PTE_P;
    pt[1] = NOWHERE | PTE_W | PTE_P;
    write_cr4(read_cr4() | CR4_PSE);
    write_cr3((uint32_t)pd);
    write_cr0(read_cr0() | CR0_PG);
    reads_and_writes("a page mapped to the end of RAM", 0x40000000u);
    reads_and_writes("a page mapped to unassigned space", 0x40001000u);
    write_cr0(read_cr0() & ~CR0_PG);
}
