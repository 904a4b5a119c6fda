/*
 * native.c - the native program of bench-cpu: runs the very same workloads.o as the guest
 * kernel cpu.c, as a static 32-bit Linux program (gcc -m32 -static), and prints the same
 * "bench"/"check"/"clock" lines on stdout.  Built by build.rs; see README.md.
 */
#include <string.h>
#include <unistd.h>
#include "bench.h"

void bench_write(const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t w = write(1, s, n);
        if (w <= 0)
            _exit(2);
        s += w;
        n -= (size_t)w;
    }
}

int main(void)
{
    bench_clock("begin");
    bench_cpu();
    bench_clock("end");
    return 0;
}
