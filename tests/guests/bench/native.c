/*
 * native.c - the native program of bench-cpu: runs the very same workloads.o as the guest
 * kernel cpu.c, as a static 32-bit Linux program (gcc -m32 -static), and prints the same
 * "bench"/"check"/"clock" lines on stdout.  Built by build.rs; see README.md.
 */
#include "bench.h"

int main(void)
{
    bench_clock("begin");
    bench_cpu();
    bench_clock("end");
    return 0;
}
