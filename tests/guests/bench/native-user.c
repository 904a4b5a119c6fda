/*
 * native-user.c - the native program of bench-user: runs the very same userland.o (and
 * workloads.o) as the guest kernel user.c, as a static 32-bit Linux program (gcc -m32
 * -static), with Linux as the kernel, and prints the same "bench"/"check"/"clock" lines on
 * stdout.  Built by build.rs; see README.md.  The native values are references, not the
 * same operation for every row:
 *
 *   syscall      ul_syscall: `int $0x80` with EAX = 64, Linux's getppid (a real system
 *                call: Linux's entry and exit, not a null handler)
 *   sysenter     getppid through the vDSO's __kernel_vsyscall (AT_SYSINFO), which enters
 *                with sysenter on Intel hosts (syscall on AMD); Linux returns from it with
 *                sysexit or iret as it sees fit.  Baseline: the loop without the call.
 *   userpf       ul_userpf on a fresh anonymous PROT_READ mapping (no huge pages): each
 *                first load is a minor fault that maps the shared zero page; unmapped again
 *                between rounds with madvise(MADV_DONTNEED)
 *   userde       ul_userde with a SIGFPE handler that steps EIP over the divl: a signal
 *                delivery and sigreturn, much more than a kernel's #DE handler (loose)
 *   usercompute  ul_compute: the same machine code as in the guest
 */
#define _GNU_SOURCE
#include <signal.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>
#include "bench.h"
#include "userland.h"

#define ROUNDS 3

static void fail(const char *what)
{
    bench_bail_out("bench-user-native", what);
}

static uint64_t per_op(uint64_t t, uint64_t base, uint32_t ops)
{
    return t > base ? (t - base) / ops : 0;
}

static void report_min(const char *name, const uint64_t *v)
{
    uint64_t best = ~0ull;
    for (int r = 0; r < ROUNDS; r++)
        if (v[r] < best)
            best = v[r];
    bench_report(name, best);
}

/* ---- sysenter: through the vDSO ------------------------------------------------------------ */
static void vsyscall_loop(uint32_t vsyscall)
{
    uint32_t n = UL_SYSENTER_OPS;
    uint64_t t0 = bench_rdtsc();
    asm volatile("1:\n\t"
                 "movl %2, %%eax\n\t"
                 "call *%1\n\t"
                 "decl %0\n\t"
                 "jnz 1b"
                 : "+r"(n) : "r"(vsyscall), "i"(UL_NR_GETPPID) : "eax", "memory", "cc");
    uint64_t t1 = bench_rdtsc();
    n = UL_SYSENTER_OPS;
    asm volatile("1:\n\t"
                 "movl %1, %%eax\n\t"
                 "decl %0\n\t"
                 "jnz 1b"
                 : "+r"(n) : "i"(UL_NR_GETPPID) : "eax", "memory", "cc");
    uint64_t t2 = bench_rdtsc();
    ul_job.t_event = t1 - t0;
    ul_job.t_base = t2 - t1;
}

/* ---- userde: SIGFPE ------------------------------------------------------------------------ */
static volatile uint32_t fpe_count;

static void on_fpe(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)si;
    ((ucontext_t *)ctx)->uc_mcontext.gregs[REG_EIP] += 2;     /* divl %ecx */
    fpe_count++;
}

int main(void)
{
    uint64_t v[ROUNDS];
    bench_clock("begin");

    for (int r = 0; r < ROUNDS; r++) {
        ul_syscall();
        v[r] = per_op(ul_job.t_event, ul_job.t_base, UL_SYSCALL_OPS);
    }
    report_min("syscall", v);

    uint32_t vsyscall = (uint32_t)getauxval(AT_SYSINFO);
    if (vsyscall) {
        for (int r = 0; r < ROUNDS; r++) {
            vsyscall_loop(vsyscall);
            v[r] = per_op(ul_job.t_event, ul_job.t_base, UL_SYSENTER_OPS);
        }
        report_min("sysenter", v);
    }

    size_t bytes = (size_t)UL_PF_PAGES * 4096;
    void *region = mmap(NULL, bytes, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED)
        fail("mmap");
    madvise(region, bytes, MADV_NOHUGEPAGE);
    for (int r = 0; r < ROUNDS; r++) {
        if (madvise(region, bytes, MADV_DONTNEED))
            fail("madvise(MADV_DONTNEED)");
        ul_job.va = (uint32_t)region;
        ul_userpf();
        if (ul_job.sum_event || ul_job.sum_base)
            fail("userpf: fresh anonymous pages are not zero");
        v[r] = per_op(ul_job.t_event, ul_job.t_base, UL_PF_PAGES);
    }
    report_min("userpf", v);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fpe;
    sa.sa_flags = SA_SIGINFO;
    if (sigaction(SIGFPE, &sa, NULL))
        fail("sigaction");
    for (int r = 0; r < ROUNDS; r++) {
        fpe_count = 0;
        ul_userde();
        if (fpe_count != UL_DE_OPS)
            fail("userde: SIGFPE count");
        v[r] = per_op(ul_job.t_event, ul_job.t_base, UL_DE_OPS);
    }
    report_min("userde", v);

    uint32_t result = 0;
    for (int r = 0; r < ROUNDS; r++) {
        ul_compute();
        if (r && ul_job.sum_event != result)
            fail("usercompute: results differ");
        result = ul_job.sum_event;
        v[r] = ul_job.t_event;
    }
    report_min("usercompute", v);
    bench_check("usercompute", result);

    bench_clock("end");
    return 0;
}
