/*
 * userland.c - the CPL 3 code of bench-user (see userland.h and README.md), compiled ONCE
 * with the guest kernels' freestanding flags and linked both into the guest kernel
 * bench-user.elf, whose linker script (bench-user.ld) puts this object's code and data (and
 * workloads.o's) on the user pages, and into the static 32-bit Linux program
 * bench-user-native.  So the loops timed under bt86, under QEMU and natively are the very
 * same machine code.
 *
 * Everything here runs at CPL 3 in the guest: it may touch only its own data and
 * workloads.o's, and call only workloads.o (no runtime, no libgcc: no 64-bit division).
 * Times are taken with rdtsc at CPL 3 and only their differences are kept.
 */
#include "bench.h"
#include "userland.h"

volatile struct ul_job ul_job;
uint8_t ul_stack[UL_STACK_BYTES] __attribute__((aligned(16)));

/* What the loops use as divisors (opaque to the compiler). */
static volatile uint32_t zero = 0, one = 1;

asm(".pushsection .text\n"
    ".globl ul_exit\n"
    "ul_exit:\n\t"
    "int $0x81\n\t"
    "ud2\n"
    ".popsection\n");

void ul_syscall(void)
{
    uint32_t n = UL_SYSCALL_OPS;
    uint64_t t0 = bench_rdtsc();
    asm volatile("1:\n\t"
                 "movl %1, %%eax\n\t"
                 "int $0x80\n\t"
                 "decl %0\n\t"
                 "jnz 1b"
                 : "+r"(n) : "i"(UL_NR_GETPPID) : "eax", "memory", "cc");
    uint64_t t1 = bench_rdtsc();
    n = UL_SYSCALL_OPS;
    asm volatile("1:\n\t"
                 "movl %1, %%eax\n\t"
                 ".byte 0x66, 0x90\n\t"          /* xchg %ax, %ax: as long as int $0x80 */
                 "decl %0\n\t"
                 "jnz 1b"
                 : "+r"(n) : "i"(UL_NR_GETPPID) : "eax", "memory", "cc");
    uint64_t t2 = bench_rdtsc();
    ul_job.t_event = t1 - t0;
    ul_job.t_base = t2 - t1;
}

/* The way into the kernel through sysenter, as Linux's vDSO has it (__kernel_vsyscall):
 * on a page of its own (.text.vdso, placed apart by bench-user.ld), saving ECX, EDX and
 * EBP and passing ESP in EBP; the kernel's sysexit returns to the label after sysenter
 * (EDX) with ESP from ECX.  Keeping sysenter off the pages of ordinary code matters to a
 * VMM that runs user code natively but cannot run sysenter natively (bt86). */
#define VSYSCALL(name, enter)                                                                    \
    ".globl " name "\n" name ":\n\t"                                                            \
    "pushl %ecx\n\tpushl %edx\n\tpushl %ebp\n\t"                                              \
    "movl %esp, %ebp\n\tmovl %esp, %ecx\n\tmovl $1f, %edx\n\t"                                \
    enter "\n"                                                                                 \
    "1:\n\tpopl %ebp\n\tpopl %edx\n\tpopl %ecx\n\tret\n"
asm(".pushsection .text.vdso, \"ax\"\n"
    VSYSCALL("ul_vsyscall", "sysenter")
    /* The baseline: the same instructions with a 2-byte nop for sysenter. */
    VSYSCALL("ul_vsyscall_nop", ".byte 0x66, 0x90")
    ".popsection\n");

void ul_sysenter(void)
{
    uint32_t n = UL_SYSENTER_OPS;
    uint64_t t0 = bench_rdtsc();
    asm volatile("1:\n\t"
                 "movl %1, %%eax\n\t"
                 "call ul_vsyscall\n\t"
                 "decl %0\n\t"
                 "jnz 1b"
                 : "+r"(n) : "i"(UL_NR_GETPPID) : "eax", "memory", "cc");
    uint64_t t1 = bench_rdtsc();
    n = UL_SYSENTER_OPS;
    asm volatile("1:\n\t"
                 "movl %1, %%eax\n\t"
                 "call ul_vsyscall_nop\n\t"
                 "decl %0\n\t"
                 "jnz 1b"
                 : "+r"(n) : "i"(UL_NR_GETPPID) : "eax", "memory", "cc");
    uint64_t t2 = bench_rdtsc();
    ul_job.t_event = t1 - t0;
    ul_job.t_base = t2 - t1;
}

/* One load from the first dword of each of `n` pages from `va`; returns their sum. */
__attribute__((noipa)) static uint32_t touch(uint32_t va, uint32_t n)
{
    uint32_t sum = 0;
    for (uint32_t i = 0; i < n; i++)
        sum += *(volatile uint32_t *)(va + i * 4096);
    return sum;
}

void ul_userpf(void)
{
    uint32_t va = ul_job.va;
    uint64_t t0 = bench_rdtsc();
    uint32_t cold = touch(va, UL_PF_PAGES);
    uint64_t t1 = bench_rdtsc();
    uint32_t warm = touch(va, UL_PF_PAGES);
    uint64_t t2 = bench_rdtsc();
    ul_job.t_event = t1 - t0;
    ul_job.t_base = t2 - t1;
    ul_job.sum_event = cold;
    ul_job.sum_base = warm;
}

/* n divisions of 1 by `divisor`: 2-byte `divl %ecx` (f7 f1), which the #DE handler skips. */
__attribute__((noipa)) static void divide(uint32_t n, uint32_t divisor)
{
    asm volatile("1:\n\t"
                 "xorl %%edx, %%edx\n\t"
                 "movl $1, %%eax\n\t"
                 ".byte 0xf7, 0xf1\n\t"          /* divl %ecx */
                 "decl %0\n\t"
                 "jnz 1b"
                 : "+r"(n) : "c"(divisor) : "eax", "edx", "memory", "cc");
}

void ul_userde(void)
{
    uint32_t z = zero, o = one;
    uint64_t t0 = bench_rdtsc();
    divide(UL_DE_OPS, z);
    uint64_t t1 = bench_rdtsc();
    divide(UL_DE_OPS, o);
    uint64_t t2 = bench_rdtsc();
    ul_job.t_event = t1 - t0;
    ul_job.t_base = t2 - t1;
}

void ul_compute(void)
{
    static int prepared;
    if (!prepared) {
        bench_compute_prepare();
        prepared = 1;
    }
    uint64_t t0 = bench_rdtsc();
    uint32_t r = bench_compute(UL_COMPUTE_ITERS, UL_COMPUTE_PASSES);
    uint64_t t1 = bench_rdtsc();
    ul_job.t_event = t1 - t0;
    ul_job.t_base = 0;
    ul_job.sum_event = r;
}
