/*
 * common.c - output of the bt86 benchmark programs: the "bench", "check" and "clock" lines
 * of bench.h, formatted here (64-bit decimal included) so that the guest kernels and the
 * native program print byte-for-byte the same kind of line.  Freestanding: it only calls
 * bench_write(), which the program around it supplies.
 */
#include "bench.h"

static char *put_str(char *p, const char *s)
{
    while (*s)
        *p++ = *s++;
    return p;
}

static char *put_dec(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *put_hex(char *p, uint32_t v)
{
    p = put_str(p, "0x");
    for (int shift = 28; shift >= 0; shift -= 4)
        *p++ = "0123456789abcdef"[(v >> shift) & 15];
    return p;
}

/* Writes "KIND NAME " + the value + newline; names are short (truncated at 64 bytes). */
static void line(const char *kind, const char *name, uint64_t dec, int hex)
{
    char buf[128];
    char *p = put_str(buf, kind);
    *p++ = ' ';
    for (int i = 0; name[i] && i < 64; i++)
        *p++ = name[i];
    *p++ = ' ';
    p = hex ? put_hex(p, (uint32_t)dec) : put_dec(p, dec);
    *p++ = '\n';
    *p = 0;
    bench_write(buf);
}

void bench_report(const char *name, uint64_t value) { line("bench", name, value, 0); }
void bench_check(const char *name, uint32_t value) { line("check", name, value, 1); }
void bench_clock(const char *what) { line("clock", what, bench_rdtsc(), 0); }

void bench_best(const char *name, uint64_t (*bench)(void), int rounds)
{
    uint64_t best = ~0ull;
    for (int r = 0; r < rounds; r++) {
        uint64_t v = bench();
        if (v < best)
            best = v;
    }
    bench_report(name, best);
}

int bench_selected(const char *name, const char *const *all, unsigned n, int (*has)(const char *))
{
    for (unsigned i = 0; i < n; i++)
        if (has(all[i]))
            return has(name);
    return 1;
}
