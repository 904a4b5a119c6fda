/*
 * native-mmu.c - the native program of bench-mmu: what the host operations that bt86's
 * shadow MMU is built from cost on this host, done by an ordinary static 64-bit Linux
 * process as bt86 is one (a 32-bit process's signals cost about twice as much), so that
 * each bench-mmu row has a floor beside it.  bt86's windows are the
 * host's page tables, edited with mmap, and every fault the guest must see, or that fills
 * a page, is a host signal: no engine built that way can do an operation for less than
 * the host operations it needs.  Built by build.rs; see README.md.  The rows:
 *
 *   pgfault     a load from a PROT_NONE page: SIGSEGV, a handler that steps EIP over the
 *               2-byte load, sigreturn (what a true guest page fault costs bt86 before any
 *               of its own work)
 *   hiddenfill  loads from 1024 PROT_NONE pages; the first load of each 256 faults, and
 *               the handler maps all 256 from a memfd with one mmap(MAP_FIXED) (the
 *               guest's pages are contiguous in its RAM, and bt86 maps up to 256 of them
 *               in one call): per page
 *   ptemod      mmap(MAP_FIXED) of a memfd page over a mapped one (alternating between
 *               two offsets), then a load (bt86's invlpg that maps the new translation)
 *   ptemod-cold the page made PROT_NONE again (mmap over it), then a load that faults and
 *               maps it in its handler (the accessed bit must be set by the access)
 *   cr3switch   one mmap(PROT_NONE) over 64 pages, then a load from each: the first
 *               faults, and its handler maps all 64 in one call (contiguous in the guest's
 *               RAM): per switch
 *   sweep-NM    N MiB of pages mapped one mmap(MAP_FIXED) each to scattered memfd offsets
 *               (no two neighbours contiguous: the host cannot map them together), then
 *               swept SWEEP_REPS times, one load per page: cycles per page touched, with no
 *               signal at all
 *
 * These are the fewest host operations a shadow made of host mappings needs for each
 * row, not what bt86 does: it adds its own work (walking the guest's tables, its
 * bookkeeping) and some host calls the rows here leave out.
 *
 * The memfd's pages are written once before anything is timed, as guest RAM is.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <stdint.h>
#include <unistd.h>
#include "bench.h"

#define ROUNDS 3
#define PAGE 4096u
#define FAULT_OPS 5000u
#define FILL_PAGES 1024u
#define FILL_BLOCK 256u
#define FILL_RELOADS 8u
#define SWITCH_PAGES 64u
#define SWITCH_OPS 100u
#define SWEEP_MAX 24576u /* 96 MiB */
#define SWEEP_REPS 4u
#define FRAMES (SWEEP_MAX + 2u)

static void fail(const char *what)
{
    bench_bail_out("bench-mmu-native", what);
}

static int ram_fd;
static uint8_t *area; /* SWEEP_MAX pages of address space, PROT_NONE unless mapped */

/* The handler's job: 0 skips the faulting 2-byte load, N maps the N-page block around the
 * faulting address. */
static volatile uint32_t fault_maps;
static volatile uint32_t faults;

static void map_pages(void *at, uint32_t frame, uint32_t pages)
{
    if (mmap(at, (size_t)pages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, ram_fd, (off_t)frame * PAGE) != at)
        fail("mmap of memfd pages");
}

static void map_page(void *at, uint32_t frame)
{
    map_pages(at, frame, 1);
}

static void unmap_pages(void *at, uint32_t pages)
{
    if (mmap(at, (size_t)pages * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) != at)
        fail("mmap(PROT_NONE)");
}

static void on_segv(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    faults++;
    if (fault_maps) {
        uint32_t page = (uint32_t)(((uint8_t *)si->si_addr - area) / PAGE);
        uint32_t first = page - page % fault_maps;
        map_pages(area + (size_t)first * PAGE, first, fault_maps);
    } else {
        ((ucontext_t *)ctx)->uc_mcontext.gregs[REG_RIP] += 2; /* movl (%rdx), %eax */
    }
}

static inline uint32_t load(const void *p)
{
    uint32_t v;
    asm volatile("movl (%1), %0" : "=a"(v) : "d"(p) : "memory"); /* 8b 02: 2 bytes */
    return v;
}

static uint64_t bench_pgfault(void)
{
    fault_maps = 0;
    unmap_pages(area, 1);
    uint64_t t0 = bench_rdtsc();
    for (uint32_t i = 0; i < FAULT_OPS; i++)
        load(area);
    return (bench_rdtsc() - t0) / FAULT_OPS;
}

static uint64_t bench_hiddenfill(void)
{
    fault_maps = FILL_BLOCK;
    uint64_t t = 0;
    for (uint32_t i = 0; i < FILL_RELOADS; i++) {
        unmap_pages(area, FILL_PAGES);
        uint64_t t0 = bench_rdtsc();
        for (uint32_t p = 0; p < FILL_PAGES; p++)
            load(area + (size_t)p * PAGE);
        t += bench_rdtsc() - t0;
    }
    return t / (FILL_RELOADS * FILL_PAGES);
}

static uint64_t bench_ptemod(void)
{
    map_page(area, 0);
    uint64_t t0 = bench_rdtsc();
    for (uint32_t i = 0; i < FAULT_OPS; i++) {
        map_page(area, i & 1);
        load(area);
    }
    return (bench_rdtsc() - t0) / FAULT_OPS;
}

static uint64_t bench_ptemod_cold(void)
{
    fault_maps = 1;
    uint64_t t0 = bench_rdtsc();
    for (uint32_t i = 0; i < FAULT_OPS; i++) {
        unmap_pages(area, 1);
        load(area);
    }
    return (bench_rdtsc() - t0) / FAULT_OPS;
}

static uint64_t bench_cr3switch(void)
{
    fault_maps = SWITCH_PAGES;
    uint64_t t0 = bench_rdtsc();
    for (uint32_t i = 0; i < SWITCH_OPS; i++) {
        unmap_pages(area, SWITCH_PAGES);
        for (uint32_t p = 0; p < SWITCH_PAGES; p++)
            load(area + (size_t)p * PAGE);
    }
    return (bench_rdtsc() - t0) / SWITCH_OPS;
}

/* The sweep's size in pages. */
static uint32_t sweep_pages;

/* Maps `sweep_pages` pages to scattered frames, sweeps them SWEEP_REPS times: cycles per
 * page touched. */
static uint64_t sweep(void)
{
    uint32_t pages = sweep_pages;
    unmap_pages(area, SWEEP_MAX);
    uint32_t sum = 0;
    uint64_t t0 = bench_rdtsc();
    for (uint32_t p = 0; p < pages; p++)
        map_page(area + (size_t)p * PAGE, (p * 7919u) % FRAMES);
    for (uint32_t r = 0; r < SWEEP_REPS; r++)
        for (uint32_t p = 0; p < pages; p++)
            sum += load(area + (size_t)p * PAGE);
    uint64_t t = bench_rdtsc() - t0;
    if (sum != 0)
        fail("sweep: memfd pages are not zero");
    return t / ((uint64_t)pages * SWEEP_REPS);
}

int main(void)
{
    bench_clock("begin");
    ram_fd = memfd_create("bench-mmu-native", 0);
    if (ram_fd < 0 || ftruncate(ram_fd, (off_t)FRAMES * PAGE))
        fail("memfd");
    /* Write every frame once, as guest RAM is written before it is used. */
    uint8_t *all = mmap(NULL, (size_t)FRAMES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, ram_fd, 0);
    if (all == MAP_FAILED)
        fail("mmap of the memfd");
    for (uint32_t f = 0; f < FRAMES; f++)
        all[(size_t)f * PAGE] = 0;
    munmap(all, (size_t)FRAMES * PAGE);
    area = mmap(NULL, (size_t)SWEEP_MAX * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (area == MAP_FAILED)
        fail("address space");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    if (sigaction(SIGSEGV, &sa, NULL))
        fail("sigaction");

    static const struct {
        const char *name;
        uint64_t (*run)(void);
    } rows[] = {
        {"pgfault", bench_pgfault},
        {"hiddenfill", bench_hiddenfill},
        {"ptemod", bench_ptemod},
        {"ptemod-cold", bench_ptemod_cold},
        {"cr3switch", bench_cr3switch},
    };
    for (unsigned i = 0; i < sizeof rows / sizeof rows[0]; i++)
        bench_best(rows[i].name, rows[i].run, ROUNDS);
    static const struct {
        const char *name;
        uint32_t mib;
    } sweeps[] = {{"sweep-1M", 1}, {"sweep-8M", 8}, {"sweep-32M", 32}, {"sweep-64M", 64}, {"sweep-96M", 96}};
    for (unsigned i = 0; i < sizeof sweeps / sizeof sweeps[0]; i++) {
        sweep_pages = sweeps[i].mib * 256u;
        bench_best(sweeps[i].name, sweep, ROUNDS);
    }
    if (!faults)
        fail("no fault was taken");
    bench_clock("end");
    return 0;
}
