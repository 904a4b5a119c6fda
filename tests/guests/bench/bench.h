/*
 * bench.h - the interface shared by the bt86 benchmark programs (see README.md here).
 *
 * The benchmarks print one line per result, in the same form under every engine:
 *
 *     bench NAME VALUE          a measurement (TSC cycles; for bench-mmu cycles per operation)
 *     check NAME 0xHEX          what a workload computed (must be equal on every engine)
 *     clock begin|end TSC       the TSC at the start and at the end of the program, so that
 *                               the runner can compare guest TSC ticks with wall-clock time
 *
 * common.c formats these lines; the program around it supplies bench_write(): the guest
 * runtime's serial output in a kernel, write(2) in the native program.
 */
#ifndef BT86_BENCH_H
#define BT86_BENCH_H

#include <stdint.h>

/* Writes a NUL-terminated string (supplied by the program that links common.o: host.c
 * for the programs that run as Linux processes). */
void bench_write(const char *s);
/* host.c: "Bail out! PROGRAM: WHAT" and exit status 127. */
void bench_bail_out(const char *program, const char *what);

/* The time stamp counter.  lfence keeps it from being read before earlier work is done. */
static inline uint64_t bench_rdtsc(void)
{
    uint32_t lo, hi;
    asm volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi) :: "memory");
    return ((uint64_t)hi << 32) | lo;
}

/* "bench NAME VALUE" */
void bench_report(const char *name, uint64_t value);
/* "check NAME 0xVALUE" */
void bench_check(const char *name, uint32_t value);
/* "clock WHAT TSC" with the current TSC. */
void bench_clock(const char *what);

/* Runs `bench` `rounds` times and reports the lowest value as NAME. */
void bench_best(const char *name, uint64_t (*bench)(void), int rounds);
/* True if benchmark `name` should run: when the command line (`has` tells whether a word
 * is on it) names any of the program's `n` benchmarks `all`, only those named run. */
int bench_selected(const char *name, const char *const *all, unsigned n, int (*has)(const char *));

/* The compute workloads (workloads.c): runs each one and reports it. */
void bench_cpu(void);
/* bench-user's compute workload (workloads.c): intloop(iters), then crc32 `passes` times
 * over a 64 KiB buffer; returns a hash of both results.  Call bench_compute_prepare() (the
 * crc32 table and buffer) once before. */
void bench_compute_prepare(void);
uint32_t bench_compute(uint32_t iters, uint32_t passes);

#endif
