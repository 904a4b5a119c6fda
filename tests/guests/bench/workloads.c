/*
 * workloads.c - the compute workloads of bench-cpu, compiled ONCE (with the guest kernels'
 * freestanding flags) into one object file that is linked both into the guest kernel
 * bench-cpu.elf and into the static 32-bit Linux program bench-cpu-native, so that bt86,
 * QEMU and the host CPU run exactly the same machine code.
 *
 * Each workload is timed with rdtsc around it, REPS times, and the minimum is reported
 * ("bench NAME CYCLES"); its result goes out as "check NAME 0xHEX" so that the runner can
 * tell a fast wrong answer from a fast right one.  Sizes: 40-80 ms per repetition natively
 * on a 2.8 GHz Xeon.  Inputs come from volatile variables and results go to
 * volatile sinks, so the compiler can neither fold nor hoist the work; the functions are
 * `noipa` so that it cannot specialise them for their (constant) arguments either.
 *
 *   intloop   LCG + rotate/xor mixing, a long dependent chain of ALU ops (~4 cycles/iter)
 *   fib       naive recursive Fibonacci: call/ret and stack traffic (two real calls per
 *             level: sibling-call optimisation is off for it, or GCC turns one into a loop)
 *   bytecopy  a 64 KiB copy as the compiler's own byte loop (movzbl/mov, no memcpy call:
 *             -ffreestanding keeps GCC from pattern-matching it into memcpy)
 *   repmovsd  the same copy with `rep movsd`
 *   qsort     quicksort of 512 Ki LCG-random ints with the comparison called through a
 *             function pointer (indirect calls, unpredictable branches, 2 MiB of data)
 *   crc32     bytewise table-driven CRC-32 over the 64 KiB buffer (dependent loads)
 */
#include "bench.h"

#define REPS 3

/* Inputs the compiler cannot know, and sinks it must write. */
volatile uint32_t bench_seed = 0x12345678u;
volatile uint32_t intloop_iters = 40000000u;
volatile uint32_t fib_n = 35;
volatile uint32_t copy_passes = 1000;
volatile uint32_t movsd_passes = 30000;
volatile uint32_t crc_passes = 400;
volatile uint32_t bench_sink;

#define BUF_BYTES 65536u
#define SORT_N (512u * 1024u)
static uint8_t buf_a[BUF_BYTES] __attribute__((aligned(4096)));
static uint8_t buf_b[BUF_BYTES] __attribute__((aligned(4096)));
static int32_t sort_buf[SORT_N] __attribute__((aligned(4096)));
static uint32_t crc_table[256];

/* ---- the workloads -------------------------------------------------------------------- */

__attribute__((noipa)) static uint32_t intloop(uint32_t n, uint32_t x)
{
    uint32_t h = 0x9e3779b9u;
    for (uint32_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        h ^= x >> 7;
        h = ((h << 5) | (h >> 27)) + (x ^ i);
    }
    return h;
}

__attribute__((noipa, optimize("no-optimize-sibling-calls"))) static uint32_t fib(uint32_t n)
{
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

__attribute__((noipa)) static void copy_bytes(uint8_t *d, const uint8_t *s, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        d[i] = s[i];
}

__attribute__((noipa)) static void copy_movsd(void *d, const void *s, uint32_t n)
{
    uint32_t dwords = n / 4;
    asm volatile("cld; rep movsl" : "+D"(d), "+S"(s), "+c"(dwords) :: "memory");
}

typedef int (*cmp_fn)(const void *, const void *);

__attribute__((noipa)) static int cmp_int(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Quicksort (median of three, insertion sort for short runs), recursing on the smaller
 * part.  The comparison always goes through `cmp`. */
__attribute__((noipa)) static void quicksort(int32_t *v, int32_t n, cmp_fn cmp)
{
    while (n > 12) {
        int32_t mid = n / 2, last = n - 1, t;
        if (cmp(&v[mid], &v[0]) < 0) { t = v[mid]; v[mid] = v[0]; v[0] = t; }
        if (cmp(&v[last], &v[0]) < 0) { t = v[last]; v[last] = v[0]; v[0] = t; }
        if (cmp(&v[last], &v[mid]) < 0) { t = v[last]; v[last] = v[mid]; v[mid] = t; }
        int32_t pivot = v[mid];
        int32_t i = 0, j = last;
        for (;;) {
            while (cmp(&v[i], &pivot) < 0)
                i++;
            while (cmp(&pivot, &v[j]) < 0)
                j--;
            if (i >= j)
                break;
            t = v[i]; v[i] = v[j]; v[j] = t;
            i++;
            j--;
        }
        int32_t left = j + 1;                 /* v[0..left) <= pivot <= v[left..n) */
        if (left < n - left) {
            quicksort(v, left, cmp);
            v += left;
            n -= left;
        } else {
            quicksort(v + left, n - left, cmp);
            n = left;
        }
    }
    for (int32_t i = 1; i < n; i++) {
        int32_t x = v[i], j = i - 1;
        while (j >= 0 && cmp(&v[j], &x) > 0) {
            v[j + 1] = v[j];
            j--;
        }
        v[j + 1] = x;
    }
}

__attribute__((noipa)) static uint32_t crc32(uint32_t crc, const uint8_t *p, uint32_t n)
{
    crc = ~crc;
    for (uint32_t i = 0; i < n; i++)
        crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---- set-up and checks (untimed) ------------------------------------------------------ */

static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s ^ (*s >> 16);
}

static void fill_buffers(void)
{
    uint32_t s = bench_seed;
    for (uint32_t i = 0; i < BUF_BYTES; i++) {
        buf_a[i] = (uint8_t)lcg(&s);
        buf_b[i] = 0;
    }
}

static void fill_sort(void)
{
    uint32_t s = bench_seed ^ 0xa5a5a5a5u;
    for (uint32_t i = 0; i < SORT_N; i++)
        sort_buf[i] = (int32_t)lcg(&s);
}

/* 1 if sort_buf is in order; also folds it into a hash. */
static uint32_t sorted_hash(void)
{
    uint32_t h = 0x811c9dc5u;
    for (uint32_t i = 0; i < SORT_N; i++) {
        if (i && sort_buf[i - 1] > sort_buf[i])
            return 0xbad50e7u;
        h = (h ^ (uint32_t)sort_buf[i]) * 0x01000193u;
    }
    return h;
}

static uint32_t buf_hash(const uint8_t *b)
{
    uint32_t h = 0x811c9dc5u;
    for (uint32_t i = 0; i < BUF_BYTES; i++)
        h = (h ^ b[i]) * 0x01000193u;
    return h;
}

static void make_crc_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

/* ---- the driver ------------------------------------------------------------------------ */

/* Runs `body` REPS times (preceded by `prep`, untimed) and reports the fastest. */
#define TIMED(name, prep, ...)                                                            \
    do {                                                                                  \
        uint64_t best = ~0ull;                                                            \
        for (int rep = 0; rep < REPS; rep++) {                                            \
            prep;                                                                         \
            uint64_t t0 = bench_rdtsc();                                                  \
            __VA_ARGS__;                                                                  \
            uint64_t t1 = bench_rdtsc();                                                  \
            if (t1 - t0 < best)                                                           \
                best = t1 - t0;                                                           \
        }                                                                                 \
        bench_report(name, best);                                                         \
    } while (0)

void bench_cpu(void)
{
    uint32_t r = 0;
    make_crc_table();

    TIMED("intloop", , r = intloop(intloop_iters, bench_seed));
    bench_check("intloop", r);
    bench_sink = r;

    TIMED("fib", , r = fib(fib_n));
    bench_check("fib", r);
    bench_sink = r;

    fill_buffers();
    TIMED("bytecopy", , {
        uint32_t n = copy_passes;
        for (uint32_t i = 0; i < n; i += 2) {
            copy_bytes(buf_b, buf_a, BUF_BYTES);
            copy_bytes(buf_a, buf_b, BUF_BYTES);
        }
    });
    bench_check("bytecopy", buf_hash(buf_b));

    fill_buffers();
    TIMED("repmovsd", , {
        uint32_t n = movsd_passes;
        for (uint32_t i = 0; i < n; i += 2) {
            copy_movsd(buf_b, buf_a, BUF_BYTES);
            copy_movsd(buf_a, buf_b, BUF_BYTES);
        }
    });
    bench_check("repmovsd", buf_hash(buf_b));

    TIMED("qsort", fill_sort(), quicksort(sort_buf, SORT_N, cmp_int));
    bench_check("qsort", sorted_hash());

    fill_buffers();
    TIMED("crc32", , {
        uint32_t n = crc_passes, c = 0;
        for (uint32_t i = 0; i < n; i++)
            c = crc32(c, buf_a, BUF_BYTES);
        r = c;
    });
    bench_check("crc32", r);
    bench_sink = r;
}

/* ---- bench-user's compute workload ------------------------------------------------------ */
/* bench-user (userland.c) runs two of the workloads above at CPL 3, and natively: intloop,
 * then crc32 over the 64 KiB buffer, the very machine code that bench-cpu times.  These two
 * come last in this file so that adding them left the code above as it was. */

void bench_compute_prepare(void)
{
    make_crc_table();
    fill_buffers();
}

uint32_t bench_compute(uint32_t iters, uint32_t passes)
{
    uint32_t h = intloop(iters, bench_seed), c = 0;
    for (uint32_t i = 0; i < passes; i++)
        c = crc32(c, buf_a, BUF_BYTES);
    return h ^ c;
}
