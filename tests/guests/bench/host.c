/*
 * host.c - bench_write() for the benchmark programs that run as Linux processes (the
 * native programs, and the Linux benchmark, natively and as a guest's /init): write(2)
 * to standard output, the whole string. A failed write loses the output, which the runner
 * notices (a missing line), rather than ending the program (as /init it must not).
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
            return;
        s += w;
        n -= (size_t)w;
    }
}

void bench_bail_out(const char *program, const char *what)
{
    bench_write("Bail out! ");
    bench_write(program);
    bench_write(": ");
    bench_write(what);
    bench_write("\n");
    _exit(127);
}
