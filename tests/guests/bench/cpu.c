/*
 * cpu - the guest kernel of bench-cpu: runs the compute workloads of workloads.c at CPL 0
 * (paging off, interrupts off) and prints their "bench"/"check" lines on COM1; see
 * README.md.  The same workloads.o is linked into the native program (native.c).
 * Not a test kernel: build.rs builds it apart, and it is not in bt86_guests::kernels().
 */
#include "rt.h"
#include "bench.h"

void bench_write(const char *s) { rt_puts(s); }

void test_main(void)
{
    bench_clock("begin");
    bench_cpu();
    bench_clock("end");
}
