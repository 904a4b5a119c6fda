/*
 * The Linux benchmark: a static i386 program (built by ../build.rs with gcc -m32 -static,
 * linked with bench-cpu's workloads.o and common.o) that is /init of the benchmark
 * initramfs, and that also runs natively on the host as an ordinary 32-bit process.
 * `bench --only linux` (tests/src/bin/bench.rs) runs it both ways.
 *
 * As /init (pid 1) it first reads the guest's uptime (/proc/uptime: how long the kernel
 * took from power-on to starting /init) and prints it as the marker line
 * "bench boot-uptime NS", whose first byte the runner also timestamps (host wall time to
 * /init). Then, in every setting, it times each workload with clock_gettime
 * (CLOCK_MONOTONIC) and prints "bench NAME NS" (nanoseconds per operation, the lowest of
 * ROUNDS rounds) and for the compute workload "check NAME 0xHEX", between
 * "clock begin NS" and "clock end NS" lines (CLOCK_MONOTONIC: the runner compares their
 * difference with its own wall time, to catch a guest clock that does not keep time).
 * As /init it powers the machine off at the end. Words on its command line (as /init:
 * after "--" on the kernel's) pick workloads by name; without any, all run.
 *
 *   int80      getppid through int $0x80
 *   sysenter   getppid through the vDSO's __kernel_vsyscall (AT_SYSINFO: sysenter on
 *              Intel), which is also what glibc's syscall() uses in a static program
 *   fork       fork, the child _exits at once, waitpid
 *   exec       fork, the child execs this program ("exec-child": it exits at once), waitpid
 *   pipe       a round trip of one byte between two processes over two pipes (two context
 *              switches, four system calls), both on one CPU as in the one-CPU guest
 *   pagefault  per page: mmap 16 MiB of anonymous memory, write one byte per page, munmap
 *   compute    bench-user's compute workload (intloop, then crc32 over 64 KiB, the
 *              machine code bench-cpu times), once
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#ifndef SYSLOG_ACTION_CONSOLE_LEVEL
#define SYSLOG_ACTION_CONSOLE_LEVEL 8 /* syslog(2): set the console log level */
#endif

#define ROUNDS 3
#define SYSCALL_OPS 200000u
#define FORK_OPS 300u
#define EXEC_OPS 100u
#define PIPE_OPS 2000u
#define PF_BYTES (16u << 20)
#define COMPUTE_ITERS 20000000u
#define COMPUTE_PASSES 100u

static int is_init;

/* One write per line, so that a kernel message cannot land inside it. */
static void say(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    bench_write(buf);
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void finish(int status)
{
    if (is_init) {
        sync();
        reboot(RB_POWER_OFF);
        for (;;)
            pause();
    }
    _exit(status);
}

static void fail(const char *what)
{
    say("Bail out! %s failed\n", what);
    finish(3);
}

/* ---- the workloads: each returns nanoseconds per operation ------------------------- */

static uint64_t b_int80(void)
{
    uint64_t t0 = now_ns();
    for (uint32_t i = 0; i < SYSCALL_OPS; i++) {
        long r;
        __asm__ volatile("int $0x80" : "=a"(r) : "a"(SYS_getppid) : "memory", "cc");
    }
    return (now_ns() - t0) / SYSCALL_OPS;
}

static uintptr_t vsyscall_entry;

static uint64_t b_sysenter(void)
{
    uint64_t t0 = now_ns();
    for (uint32_t i = 0; i < SYSCALL_OPS; i++) {
        long r;
        __asm__ volatile("call *%[fn]" : "=a"(r) : "a"(SYS_getppid), [fn] "r"(vsyscall_entry) : "memory", "cc");
    }
    return (now_ns() - t0) / SYSCALL_OPS;
}

static void wait_ok(pid_t pid, const char *what)
{
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail(what);
}

static uint64_t b_fork(void)
{
    uint64_t t0 = now_ns();
    for (uint32_t i = 0; i < FORK_OPS; i++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        wait_ok(pid, "fork");
    }
    return (now_ns() - t0) / FORK_OPS;
}

static uint64_t b_exec(void)
{
    uint64_t t0 = now_ns();
    for (uint32_t i = 0; i < EXEC_OPS; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            execl("/proc/self/exe", "bench", "exec-child", (char *)NULL);
            _exit(127);
        }
        wait_ok(pid, "fork+exec");
    }
    return (now_ns() - t0) / EXEC_OPS;
}

static uint64_t b_pipe(void)
{
    /* Natively, parent and child on one CPU (the guest has one): a round trip is two
     * context switches, not two wake-ups across CPUs. */
    cpu_set_t old, one;
    int pinned = sched_getaffinity(0, sizeof old, &old) == 0;
    if (pinned) {
        CPU_ZERO(&one);
        CPU_SET(sched_getcpu() < 0 ? 0 : sched_getcpu(), &one);
        pinned = sched_setaffinity(0, sizeof one, &one) == 0;
    }
    int there[2], back[2];
    if (pipe(there) != 0 || pipe(back) != 0)
        fail("pipe");
    char c = 'x';
    uint64_t t0 = now_ns();
    pid_t pid = fork();
    if (pid == 0) {
        for (uint32_t i = 0; i < PIPE_OPS; i++)
            if (read(there[0], &c, 1) != 1 || write(back[1], &c, 1) != 1)
                _exit(1);
        _exit(0);
    }
    for (uint32_t i = 0; i < PIPE_OPS; i++)
        if (write(there[1], &c, 1) != 1 || read(back[0], &c, 1) != 1)
            fail("pipe round trip");
    wait_ok(pid, "pipe");
    uint64_t ns = (now_ns() - t0) / PIPE_OPS;
    close(there[0]), close(there[1]), close(back[0]), close(back[1]);
    if (pinned)
        sched_setaffinity(0, sizeof old, &old);
    return ns;
}

static uint64_t b_pagefault(void)
{
    uint64_t t0 = now_ns();
    volatile uint8_t *p = mmap(NULL, PF_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        fail("mmap");
    for (uint32_t off = 0; off < PF_BYTES; off += 4096)
        p[off] = 1;
    munmap((void *)p, PF_BYTES);
    return (now_ns() - t0) / (PF_BYTES / 4096);
}

static uint32_t compute_result;

static uint64_t b_compute(void)
{
    uint64_t t0 = now_ns();
    compute_result = bench_compute(COMPUTE_ITERS, COMPUTE_PASSES);
    return now_ns() - t0;
}

/* The workloads named on the command line (as /init: after "--" on the kernel's), or all. */
static int argc_;
static char **argv_;

static int selected(const char *name)
{
    if (argc_ <= 1)
        return 1;
    for (int i = 1; i < argc_; i++)
        if (strcmp(argv_[i], name) == 0)
            return 1;
    return 0;
}

static void best(const char *name, uint64_t (*fn)(void))
{
    if (!selected(name))
        return;
    uint64_t low = UINT64_MAX;
    for (int r = 0; r < ROUNDS; r++) {
        uint64_t v = fn();
        if (v < low)
            low = v;
    }
    say("bench %s %llu\n", name, (unsigned long long)low);
}

/* ---- as /init ---------------------------------------------------------------------- */

/* The marker line: the guest's uptime (seconds with two decimals in /proc/uptime). */
static void report_uptime(void)
{
    if (mount("proc", "/proc", "proc", 0, NULL) != 0)
        fail("mount /proc");
    char text[64] = {0};
    int fd = open("/proc/uptime", O_RDONLY);
    if (fd < 0 || read(fd, text, sizeof text - 1) <= 0)
        fail("reading /proc/uptime");
    close(fd);
    unsigned long secs = 0, hundredths = 0;
    if (sscanf(text, "%lu.%lu", &secs, &hundredths) != 2)
        fail("parsing /proc/uptime");
    say("bench boot-uptime %llu\n", (unsigned long long)secs * 1000000000ull + hundredths * 10000000ull);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "exec-child") == 0)
        return 0;
    argc_ = argc;
    argv_ = argv;
    is_init = getpid() == 1;
    if (is_init) {
        report_uptime();
        /* Only errors and worse from the kernel on the console from now on. */
        klogctl(SYSLOG_ACTION_CONSOLE_LEVEL, NULL, 4);
    }
    say("clock begin %llu\n", (unsigned long long)now_ns());
    best("int80", b_int80);
    vsyscall_entry = getauxval(AT_SYSINFO);
    if (vsyscall_entry)
        best("sysenter", b_sysenter);
    best("fork", b_fork);
    best("exec", b_exec);
    best("pipe", b_pipe);
    best("pagefault", b_pagefault);
    if (selected("compute")) {
        bench_compute_prepare();
        best("compute", b_compute);
        bench_check("compute", compute_result);
    }
    say("clock end %llu\n", (unsigned long long)now_ns());
    finish(0);
}
