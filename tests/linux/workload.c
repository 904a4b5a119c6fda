/*
 * The Linux test workload: a static i386 program that is /init of the test initramfs
 * (built by ../build.rs with gcc -m32 -static, packed by src/cpio.rs). It mounts /proc,
 * /sys and a tmpfs, checks what a Linux guest needs of the machine under it — processes,
 * pipes, signals, memory mappings and copy-on-write, threads and TLS, files, the x87 and
 * SSE state across context switches, system calls through the vDSO, clocks, user-mode
 * cpuid — prints one TAP line per check on the console, then powers off.
 *
 * The TAP text must be the same on every machine and every run (tests/linux.rs compares
 * it byte for byte between QEMU and bt86): no PIDs, times, addresses or CPU names in it.
 * Diagnostics for a failed check go on "# " lines, only when it fails.
 *
 * Run as "/init exec-child hello-from-parent" it is the child of the exec check instead.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/klog.h>

#ifndef SYSLOG_ACTION_CONSOLE_LEVEL
#define SYSLOG_ACTION_CONSOLE_LEVEL 8 /* syslog(2): set the console log level */
#endif
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096

/* ---- output ---------------------------------------------------------------------- */

/* One write() per line, so that a kernel message cannot land inside a TAP line. */
static void say(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 1)
        n = sizeof buf - 1;
    ssize_t off = 0;
    while (off < n) {
        ssize_t w = write(1, buf + off, n - off);
        if (w <= 0)
            return;
        off += w;
    }
}

/* A failed check explains itself on a "# " line (never compared: only printed on failure). */
#define FAIL(...)                 \
    do {                          \
        say("# " __VA_ARGS__);    \
        say("\n");                \
        return 0;                 \
    } while (0)
#define CHECK(cond, ...)          \
    do {                          \
        if (!(cond))              \
            FAIL(__VA_ARGS__);    \
    } while (0)

/* Waits for `pid` and returns its exit status, or -1 (-2 - signal if it was killed). */
static int wait_exit(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return -2 - WTERMSIG(st);
    return -1;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static ssize_t read_all(int fd, void *p, size_t n)
{
    char *c = p;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, c + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* ---- mounts ---------------------------------------------------------------------- */

static int mount_on(const char *src, const char *dir, const char *type)
{
    mkdir(dir, 0755);
    CHECK(mount(src, dir, type, 0, NULL) == 0, "mount %s on %s: %s", type, dir, strerror(errno));
    return 1;
}

static int t_mount_proc(void)
{
    if (!mount_on("proc", "/proc", "proc"))
        return 0;
    CHECK(access("/proc/self/maps", R_OK) == 0, "/proc/self/maps: %s", strerror(errno));
    return 1;
}

static int t_mount_sys(void)
{
    if (!mount_on("sysfs", "/sys", "sysfs"))
        return 0;
    CHECK(access("/sys/kernel", F_OK) == 0, "/sys/kernel: %s", strerror(errno));
    return 1;
}

static int t_mount_tmp(void)
{
    return mount_on("tmpfs", "/tmp", "tmpfs");
}

static int t_pid1(void)
{
    CHECK(getpid() == 1, "getpid() is not 1");
    return 1;
}

/* ---- processes ------------------------------------------------------------------- */

static int t_fork_exec_wait(void)
{
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        char *argv[] = {"/init", "exec-child", "hello-from-parent", NULL};
        char *envp[] = {"BT86_TEST=1", NULL};
        execve("/init", argv, envp);
        _exit(127);
    }
    int st = wait_exit(pid);
    CHECK(st == 42, "the exec'd child ended with %d, not 42", st);
    return 1;
}

/* What the exec'd child checks: its arguments, environment and parent. */
static int exec_child(int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[2], "hello-from-parent") != 0)
        return 1;
    const char *v = getenv("BT86_TEST");
    if (!v || strcmp(v, "1") != 0)
        return 2;
    if (getppid() != 1)
        return 3;
    return 42;
}

static int t_wait_killed(void)
{
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        for (;;)
            pause();
    }
    sched_yield();
    kill(pid, SIGKILL);
    int st = wait_exit(pid);
    CHECK(st == -2 - SIGKILL, "waitpid status %d", st);
    return 1;
}

static int t_many_children(void)
{
    enum { N = 20 };
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        CHECK(pids[i] >= 0, "fork %d: %s", i, strerror(errno));
        if (pids[i] == 0)
            _exit(i + 1);
    }
    for (int i = 0; i < N; i++) {
        int st = wait_exit(pids[i]);
        CHECK(st == i + 1, "child %d ended with %d", i, st);
    }
    return 1;
}

/* ---- pipes ----------------------------------------------------------------------- */

static uint32_t pattern(uint32_t i)
{
    return i * 2654435761u ^ (i >> 7);
}

static int t_pipe_bulk(void)
{
    enum { WORDS = 256 * 1024 }; /* 1 MiB: many times the pipe's buffer */
    int down[2], up[2];
    CHECK(pipe(down) == 0 && pipe(up) == 0, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        close(down[1]);
        close(up[0]);
        uint32_t sum = 0, buf[1024], n = 0, bad = 0;
        for (;;) {
            ssize_t r = read_all(down[0], buf, sizeof buf);
            if (r <= 0)
                break;
            for (ssize_t k = 0; k < r / 4; k++, n++) {
                bad |= buf[k] != pattern(n);
                sum += buf[k];
            }
        }
        uint32_t reply[3] = {sum, n, bad};
        write_all(up[1], reply, sizeof reply);
        _exit(0);
    }
    close(down[0]);
    close(up[1]);
    uint32_t buf[1024], sum = 0;
    for (uint32_t i = 0; i < WORDS; i += 1024) {
        for (uint32_t k = 0; k < 1024; k++) {
            buf[k] = pattern(i + k);
            sum += buf[k];
        }
        CHECK(write_all(down[1], buf, sizeof buf) == 0, "write: %s", strerror(errno));
    }
    close(down[1]);
    uint32_t reply[3] = {0, 0, 1};
    ssize_t r = read_all(up[0], reply, sizeof reply);
    close(up[0]);
    int st = wait_exit(pid);
    CHECK(r == sizeof reply, "reply: %zd bytes", r);
    CHECK(st == 0, "child ended with %d", st);
    CHECK(reply[1] == WORDS, "child read %u words", reply[1]);
    CHECK(!reply[2] && reply[0] == sum, "data differs (sum %08x vs %08x)", reply[0], sum);
    return 1;
}

static int t_pipe_eof_epipe(void)
{
    int p[2];
    char c;
    CHECK(pipe(p) == 0, "pipe: %s", strerror(errno));
    CHECK(write(p[1], "x", 1) == 1, "write");
    close(p[1]);
    CHECK(read(p[0], &c, 1) == 1 && c == 'x', "read the byte");
    CHECK(read(p[0], &c, 1) == 0, "no EOF after the writer closed");
    close(p[0]);
    CHECK(pipe(p) == 0, "pipe: %s", strerror(errno));
    close(p[0]);
    signal(SIGPIPE, SIG_IGN);
    ssize_t w = write(p[1], "x", 1);
    int e = errno;
    signal(SIGPIPE, SIG_DFL);
    close(p[1]);
    CHECK(w == -1 && e == EPIPE, "write without reader: %zd, %s", w, strerror(e));
    return 1;
}

/* ---- signals --------------------------------------------------------------------- */

static volatile sig_atomic_t usr1_hits;
static volatile pid_t usr1_from;

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    if (sig == SIGUSR1 && si->si_signo == SIGUSR1) {
        usr1_hits++;
        usr1_from = si->si_pid;
    }
}

static void catch_signal(int sig, void (*fn)(int, siginfo_t *, void *))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fn;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

static int t_kill_self(void)
{
    catch_signal(SIGUSR1, on_usr1);
    usr1_hits = 0;
    CHECK(kill(getpid(), SIGUSR1) == 0, "kill: %s", strerror(errno));
    CHECK(usr1_hits == 1, "handler ran %d times", (int)usr1_hits);
    CHECK(usr1_from == getpid(), "si_pid is not the sender");
    return 1;
}

static int t_kill_child(void)
{
    int ready[2];
    CHECK(pipe(ready) == 0, "pipe: %s", strerror(errno));
    catch_signal(SIGUSR1, on_usr1);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, &old);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        usr1_hits = 0;
        close(ready[0]);
        write_all(ready[1], "r", 1);
        sigset_t none;
        sigemptyset(&none);
        while (usr1_hits == 0)
            sigsuspend(&none);
        _exit(usr1_from == getppid() ? 0 : 1);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(ready[1]);
    char c;
    CHECK(read_all(ready[0], &c, 1) == 1, "child never got ready");
    close(ready[0]);
    kill(pid, SIGUSR1);
    int st = wait_exit(pid);
    CHECK(st == 0, "child ended with %d", st);
    return 1;
}

static sigjmp_buf recover;
static volatile void *fault_addr;
static volatile int fault_sig;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    fault_sig = sig;
    fault_addr = si->si_addr;
    siglongjmp(recover, 1);
}

/* Stores `v` at `p` and returns the signal that stopped it (0: none). */
static int try_store(volatile uint32_t *p, uint32_t v)
{
    fault_sig = 0;
    fault_addr = NULL;
    if (sigsetjmp(recover, 1) == 0)
        *p = v;
    return fault_sig;
}

static int try_load(volatile uint32_t *p, uint32_t *v)
{
    fault_sig = 0;
    if (sigsetjmp(recover, 1) == 0)
        *v = *p;
    return fault_sig;
}

static int t_segv_readonly(void)
{
    catch_signal(SIGSEGV, on_fault);
    uint32_t *page = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(page != MAP_FAILED, "mmap: %s", strerror(errno));
    int sig = try_store(page + 3, 1);
    void *at = (void *)fault_addr;
    munmap(page, PAGE);
    CHECK(sig == SIGSEGV, "the store raised signal %d", sig);
    CHECK(at == (void *)(page + 3), "si_addr is not the faulting address");
    return 1;
}

static int t_segv_null_twice(void)
{
    catch_signal(SIGSEGV, on_fault);
    uint32_t v;
    for (int i = 0; i < 2; i++) {
        int sig = try_load((volatile uint32_t *)16, &v);
        CHECK(sig == SIGSEGV, "load %d from address 16 raised signal %d", i, sig);
        CHECK(fault_addr == (void *)16, "si_addr of load %d", i);
    }
    sigset_t now;
    sigprocmask(SIG_SETMASK, NULL, &now);
    CHECK(!sigismember(&now, SIGSEGV), "SIGSEGV left blocked after siglongjmp");
    return 1;
}

static int t_sigfpe(void)
{
    catch_signal(SIGFPE, on_fault);
    volatile int zero = 0, r = 0;
    fault_sig = 0;
    if (sigsetjmp(recover, 1) == 0)
        r = 100 / zero;
    (void)r;
    CHECK(fault_sig == SIGFPE, "division by zero raised signal %d", fault_sig);
    return 1;
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)si;
    (void)uc;
    alarms++;
}

static int t_sigalrm(void)
{
    catch_signal(SIGALRM, on_alarm);
    alarms = 0;
    struct itimerval it = {.it_value = {.tv_sec = 0, .tv_usec = 20000}};
    CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0, "setitimer: %s", strerror(errno));
    while (alarms == 0) {
        int r = pause();
        CHECK(r == -1 && errno == EINTR, "pause returned %d", r);
    }
    CHECK(alarms == 1, "%d alarms", (int)alarms);
    return 1;
}

/* ---- memory ---------------------------------------------------------------------- */

static int t_mmap_munmap(void)
{
    catch_signal(SIGSEGV, on_fault);
    size_t size = 4 << 20;
    uint32_t *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED, "mmap: %s", strerror(errno));
    size_t words = size / 4;
    for (size_t i = 0; i < words; i += PAGE / 4)
        CHECK(m[i] == 0, "fresh anonymous memory is not zero");
    for (size_t i = 0; i < words; i += 256)
        m[i] = pattern(i);
    for (size_t i = 0; i < words; i += 256)
        CHECK(m[i] == pattern(i), "word %zu lost its value", i);
    CHECK(munmap(m, size) == 0, "munmap: %s", strerror(errno));
    uint32_t v;
    int sig = try_load(m + words / 2, &v);
    CHECK(sig == SIGSEGV, "a load after munmap raised signal %d", sig);
    return 1;
}

static int t_mprotect(void)
{
    catch_signal(SIGSEGV, on_fault);
    uint32_t *m = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED, "mmap: %s", strerror(errno));
    m[1024] = 7;
    CHECK(mprotect(m, 4 * PAGE, PROT_READ) == 0, "mprotect: %s", strerror(errno));
    CHECK(try_store(m + 1024, 8) == SIGSEGV, "a store to a read-only page succeeded");
    CHECK(m[1024] == 7, "the read-only page changed");
    CHECK(mprotect(m, 4 * PAGE, PROT_READ | PROT_WRITE) == 0, "mprotect: %s", strerror(errno));
    CHECK(try_store(m + 1024, 9) == 0, "a store to a writable page faulted");
    CHECK(m[1024] == 9, "the store was lost");
    CHECK(mprotect(m, 4 * PAGE, PROT_NONE) == 0, "mprotect: %s", strerror(errno));
    uint32_t v;
    CHECK(try_load(m + 1024, &v) == SIGSEGV, "a load from a PROT_NONE page succeeded");
    munmap(m, 4 * PAGE);
    return 1;
}

static int t_cow(void)
{
    enum { PAGES = 64 };
    uint32_t *m = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED, "mmap: %s", strerror(errno));
    for (int p = 0; p < PAGES; p++)
        m[p * 1024] = 1000 + p;
    /* One pipe each way: with a single pipe the child could read back its own "w". */
    int up[2], down[2];
    CHECK(pipe(up) == 0 && pipe(down) == 0, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int bad = 0;
        for (int p = 0; p < PAGES; p++) {
            bad |= m[p * 1024] != (uint32_t)(1000 + p);
            m[p * 1024] = 2000 + p;
        }
        for (int p = 0; p < PAGES; p++)
            bad |= m[p * 1024] != (uint32_t)(2000 + p);
        /* Then the parent writes its copy: ours must not change. */
        write_all(up[1], "w", 1);
        char c;
        read_all(down[0], &c, 1);
        for (int p = 0; p < PAGES; p++)
            bad |= m[p * 1024] != (uint32_t)(2000 + p);
        _exit(bad);
    }
    char c;
    CHECK(read_all(up[0], &c, 1) == 1, "child never wrote");
    int lost = 0;
    for (int p = 0; p < PAGES; p++) {
        lost |= m[p * 1024] != (uint32_t)(1000 + p);
        m[p * 1024] = 3000 + p;
    }
    write_all(down[1], "p", 1);
    int st = wait_exit(pid);
    close(up[0]);
    close(up[1]);
    close(down[0]);
    close(down[1]);
    munmap(m, PAGES * PAGE);
    CHECK(!lost, "the child's writes reached the parent");
    CHECK(st == 0, "the child saw wrong data (status %d)", st);
    return 1;
}

static int t_shared_anon(void)
{
    volatile uint32_t *m = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED, "mmap: %s", strerror(errno));
    m[0] = 1;
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        m[1] = m[0] + 41;
        _exit(0);
    }
    int st = wait_exit(pid);
    uint32_t got = m[1];
    munmap((void *)m, PAGE);
    CHECK(st == 0 && got == 42, "the parent sees %u", got);
    return 1;
}

/* ---- threads --------------------------------------------------------------------- */

enum { THREADS = 4, ADDS = 20000 };
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t counter;
static __thread uint32_t mine;
static __thread uint32_t tls_init = 0x5eed;

struct worker {
    int index;
    pid_t tid, pid;
    int ok;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    w->tid = (pid_t)syscall(SYS_gettid);
    w->pid = getpid();
    w->ok = tls_init == 0x5eed;
    for (int i = 0; i < ADDS; i++) {
        mine += (uint32_t)w->index + 1;
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
        if (i % 1000 == 0)
            sched_yield();
    }
    w->ok &= mine == (uint32_t)(w->index + 1) * ADDS;
    return (void *)(intptr_t)(w->index + 100);
}

static int t_threads(void)
{
    pthread_t th[THREADS];
    struct worker w[THREADS];
    counter = 0;
    mine = 77;
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.index = i};
        int e = pthread_create(&th[i], NULL, work, &w[i]);
        CHECK(e == 0, "pthread_create %d: %s", i, strerror(e));
    }
    for (int i = 0; i < THREADS; i++) {
        void *ret;
        CHECK(pthread_join(th[i], &ret) == 0, "pthread_join %d", i);
        CHECK(ret == (void *)(intptr_t)(i + 100), "thread %d returned the wrong value", i);
    }
    CHECK(counter == THREADS * ADDS, "counter %u", counter);
    for (int i = 0; i < THREADS; i++) {
        CHECK(w[i].pid == getpid(), "thread %d has another pid", i);
        CHECK(w[i].tid != getpid(), "thread %d has the process's tid", i);
        for (int j = 0; j < i; j++)
            CHECK(w[i].tid != w[j].tid, "threads %d and %d share a tid", i, j);
    }
    return 1;
}

static int t_tls(void)
{
    /* t_threads ran the workers: each __thread copy was its own, ours is untouched. */
    pthread_t th[THREADS];
    struct worker w[THREADS];
    mine = 77;
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.index = i};
        int e = pthread_create(&th[i], NULL, work, &w[i]);
        CHECK(e == 0, "pthread_create %d: %s", i, strerror(e));
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    CHECK(mine == 77, "the main thread's __thread variable changed");
    for (int i = 0; i < THREADS; i++)
        CHECK(w[i].ok, "thread %d's __thread variables were wrong", i);
    return 1;
}

/* ---- files ----------------------------------------------------------------------- */

static int t_tmpfs_file(void)
{
    enum { WORDS = 64 * 1024 }; /* 256 KiB */
    static uint32_t buf[WORDS];
    for (uint32_t i = 0; i < WORDS; i++)
        buf[i] = pattern(i + 7);
    int fd = open("/tmp/data", O_CREAT | O_TRUNC | O_WRONLY, 0644);
    CHECK(fd >= 0, "create /tmp/data: %s", strerror(errno));
    CHECK(write_all(fd, buf, sizeof buf) == 0, "write: %s", strerror(errno));
    CHECK(fsync(fd) == 0 && close(fd) == 0, "fsync/close: %s", strerror(errno));
    struct stat st;
    CHECK(stat("/tmp/data", &st) == 0 && st.st_size == sizeof buf, "stat size");
    memset(buf, 0, sizeof buf);
    fd = open("/tmp/data", O_RDONLY);
    CHECK(fd >= 0, "open /tmp/data: %s", strerror(errno));
    CHECK(read_all(fd, buf, sizeof buf) == sizeof buf, "short read");
    close(fd);
    for (uint32_t i = 0; i < WORDS; i++)
        CHECK(buf[i] == pattern(i + 7), "word %u differs", i);
    return 1;
}

static int t_tmpfs_rename_unlink(void)
{
    CHECK(rename("/tmp/data", "/tmp/renamed") == 0, "rename: %s", strerror(errno));
    CHECK(access("/tmp/data", F_OK) == -1 && errno == ENOENT, "the old name is still there");
    CHECK(unlink("/tmp/renamed") == 0, "unlink: %s", strerror(errno));
    CHECK(access("/tmp/renamed", F_OK) == -1 && errno == ENOENT, "the unlinked name is still there");
    return 1;
}

static int t_mmap_file(void)
{
    int fd = open("/tmp/mapped", O_CREAT | O_RDWR | O_TRUNC, 0644);
    CHECK(fd >= 0, "create: %s", strerror(errno));
    CHECK(ftruncate(fd, 2 * PAGE) == 0, "ftruncate: %s", strerror(errno));
    volatile uint32_t *m = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(m != MAP_FAILED, "mmap: %s", strerror(errno));
    uint32_t v = 0x600dcafe, got = 0;
    CHECK(pwrite(fd, &v, 4, PAGE + 8) == 4, "pwrite");
    CHECK(m[1024 + 2] == v, "the mapping does not see write()");
    m[5] = 0x12345678;
    CHECK(pread(fd, &got, 4, 20) == 4 && got == 0x12345678, "read() does not see the mapping's store");
    munmap((void *)m, 2 * PAGE);
    close(fd);
    unlink("/tmp/mapped");
    return 1;
}

/* ---- FPU state across context switches ------------------------------------------- */

enum { FP_ROUNDS = 500 };

/* Loads 8 x87 registers and the control word, lets the other process run
 * (sched_yield through int $0x80), stores them back: counts rounds that lost anything. */
static int x87_rounds(double base, uint16_t cw)
{
    int bad = 0;
    for (int r = 0; r < FP_ROUNDS; r++) {
        double in[8], out[8];
        uint16_t cw_out = 0, def = 0x037f;
        for (int k = 0; k < 8; k++)
            in[k] = base + r * 8 + k + 0.25;
        __asm__ volatile("fldcw %[cw]\n\t"
                         "fldl 0(%[in])\n\tfldl 8(%[in])\n\tfldl 16(%[in])\n\tfldl 24(%[in])\n\t"
                         "fldl 32(%[in])\n\tfldl 40(%[in])\n\tfldl 48(%[in])\n\tfldl 56(%[in])\n\t"
                         "movl %[nr], %%eax\n\tint $0x80\n\t"
                         "fstpl 56(%[out])\n\tfstpl 48(%[out])\n\tfstpl 40(%[out])\n\tfstpl 32(%[out])\n\t"
                         "fstpl 24(%[out])\n\tfstpl 16(%[out])\n\tfstpl 8(%[out])\n\tfstpl 0(%[out])\n\t"
                         "fnstcw %[cwo]\n\tfldcw %[def]"
                         : [cwo] "=m"(cw_out)
                         : [cw] "m"(cw), [def] "m"(def), [in] "r"(in), [out] "r"(out), [nr] "i"(SYS_sched_yield)
                         : "eax", "memory", "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)");
        bad += memcmp(in, out, sizeof in) != 0 || cw_out != cw;
    }
    return bad;
}

/* The same with the 8 XMM registers and MXCSR. */
static int sse_rounds(uint32_t base, uint32_t mxcsr)
{
    int bad = 0;
    for (int r = 0; r < FP_ROUNDS; r++) {
        uint32_t in[32], out[32], mx_out = 0, def = 0x1f80;
        for (int k = 0; k < 32; k++)
            in[k] = pattern(base + r * 32 + k);
        __asm__ volatile("ldmxcsr %[mx]\n\t"
                         "movdqu 0(%[in]), %%xmm0\n\tmovdqu 16(%[in]), %%xmm1\n\t"
                         "movdqu 32(%[in]), %%xmm2\n\tmovdqu 48(%[in]), %%xmm3\n\t"
                         "movdqu 64(%[in]), %%xmm4\n\tmovdqu 80(%[in]), %%xmm5\n\t"
                         "movdqu 96(%[in]), %%xmm6\n\tmovdqu 112(%[in]), %%xmm7\n\t"
                         "movl %[nr], %%eax\n\tint $0x80\n\t"
                         "movdqu %%xmm0, 0(%[out])\n\tmovdqu %%xmm1, 16(%[out])\n\t"
                         "movdqu %%xmm2, 32(%[out])\n\tmovdqu %%xmm3, 48(%[out])\n\t"
                         "movdqu %%xmm4, 64(%[out])\n\tmovdqu %%xmm5, 80(%[out])\n\t"
                         "movdqu %%xmm6, 96(%[out])\n\tmovdqu %%xmm7, 112(%[out])\n\t"
                         "stmxcsr %[mxo]\n\tldmxcsr %[def]"
                         : [mxo] "=m"(mx_out)
                         : [mx] "m"(mxcsr), [def] "m"(def), [in] "r"(in), [out] "r"(out), [nr] "i"(SYS_sched_yield)
                         : "eax", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7");
        bad += memcmp(in, out, sizeof in) != 0 || mx_out != mxcsr;
    }
    return bad;
}

/* Runs `rounds` in a child and in this process at once (they alternate at each
 * sched_yield on the one CPU), each with its own values and control word. */
static int fp_lockstep(int (*rounds)(int who))
{
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0)
        _exit(rounds(1) ? 1 : 0);
    int bad = rounds(0);
    int st = wait_exit(pid);
    CHECK(bad == 0, "the parent lost its state in %d of %d rounds", bad, FP_ROUNDS);
    CHECK(st == 0, "the child lost its state (status %d)", st);
    return 1;
}

static int x87_who(int who)
{
    /* Round to nearest / round toward zero, with different precision control. */
    return x87_rounds(who ? 1.0e6 : -3.0e3, who ? 0x0f7f : 0x037f);
}

static int sse_who(int who)
{
    /* Default MXCSR / flush-to-zero with round toward zero. */
    return sse_rounds(who ? 0x10000 : 0, who ? 0xff80 : 0x1f80);
}

static int t_x87_switch(void)
{
    return fp_lockstep(x87_who);
}

static int t_sse_switch(void)
{
    return fp_lockstep(sse_who);
}

/* Arithmetic that depends on every bit: the same sum with and without another process
 * computing in between. */
static double fp_series(int yield_every)
{
    volatile double acc = 0;
    for (int i = 1; i <= 2000; i++) {
        acc += 1.0 / ((double)i * i) + __builtin_sqrt((double)i) * 1e-9;
        if (yield_every && i % yield_every == 0)
            sched_yield();
    }
    return acc;
}

static int t_fp_series(void)
{
    double alone = fp_series(0);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0)
        _exit(fp_series(7) == alone ? 0 : 1);
    double mixed = fp_series(5);
    int st = wait_exit(pid);
    CHECK(mixed == alone && st == 0, "the sums differ (parent %s, child status %d)", mixed == alone ? "same" : "different", st);
    return 1;
}

/* ---- vDSO and sysenter ----------------------------------------------------------- */

static long vsyscall0(uintptr_t entry, long nr)
{
    long ret;
    __asm__ volatile("call *%[fn]" : "=a"(ret) : "a"(nr), [fn] "r"(entry) : "memory", "cc");
    return ret;
}

static long int80_0(long nr)
{
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr) : "memory", "cc");
    return ret;
}

static int t_auxv_vdso(void)
{
    uintptr_t entry = getauxval(AT_SYSINFO);
    const unsigned char *ehdr = (const unsigned char *)getauxval(AT_SYSINFO_EHDR);
    CHECK(entry != 0, "no AT_SYSINFO");
    CHECK(ehdr != NULL && memcmp(ehdr, "\177ELF\1\1", 6) == 0, "AT_SYSINFO_EHDR is not an ELF32 image");
    CHECK(entry > (uintptr_t)ehdr && entry < (uintptr_t)ehdr + 2 * PAGE, "AT_SYSINFO is outside the vDSO");
    return 1;
}

static int t_vsyscall_sysenter(void)
{
    /* __kernel_vsyscall is "push ecx; push edx; push ebp; mov ebp,esp; sysenter; ..." when
     * the CPU has SEP (the kernel patches the instruction in at boot). */
    const unsigned char *p = (const unsigned char *)getauxval(AT_SYSINFO);
    CHECK(p, "no AT_SYSINFO");
    for (int i = 0; i < 32 && p[i] != 0xc3; i++)
        if (p[i] == 0x0f && p[i + 1] == 0x34)
            return 1;
    FAIL("no sysenter before the first ret of __kernel_vsyscall");
}

static int t_vsyscall_call(void)
{
    uintptr_t entry = getauxval(AT_SYSINFO);
    CHECK(entry, "no AT_SYSINFO");
    long a = vsyscall0(entry, SYS_getpid), b = int80_0(SYS_getpid);
    CHECK(a == b && a == getpid(), "getpid through __kernel_vsyscall differs from int $0x80");
    /* A system call with arguments in ebx/ecx/edx: write to a pipe and read it back. */
    int p[2];
    CHECK(pipe(p) == 0, "pipe: %s", strerror(errno));
    long w;
    __asm__ volatile("call *%[fn]" : "=a"(w) : "a"(SYS_write), "b"(p[1]), "c"("vdso"), "d"(4), [fn] "S"(entry) : "memory", "cc");
    char got[4] = {0};
    ssize_t r = read(p[0], got, 4);
    close(p[0]);
    close(p[1]);
    CHECK(w == 4 && r == 4 && memcmp(got, "vdso", 4) == 0, "write through __kernel_vsyscall: %ld", w);
    return 1;
}

/* A system call with six arguments (ebx, ecx, edx, esi, edi, ebp) through `entry`
 * (__kernel_vsyscall), or through int $0x80 when entry is 0. */
static long syscall6(uintptr_t entry, long nr, long a, long b, long c, long d, long e, long f)
{
    long args[8] = {nr, a, b, c, d, e, f, (long)entry}, ret;
    if (entry)
        __asm__ volatile("push %%ebp\n\tpush %%ebx\n\t"
                         "mov 4(%%eax), %%ebx\n\tmov 8(%%eax), %%ecx\n\tmov 12(%%eax), %%edx\n\t"
                         "mov 16(%%eax), %%esi\n\tmov 20(%%eax), %%edi\n\tmov 24(%%eax), %%ebp\n\t"
                         "push 28(%%eax)\n\tmov 0(%%eax), %%eax\n\tcall *(%%esp)\n\t"
                         "add $4, %%esp\n\tpop %%ebx\n\tpop %%ebp"
                         : "=a"(ret)
                         : "a"(args)
                         : "ecx", "edx", "esi", "edi", "memory", "cc");
    else
        __asm__ volatile("push %%ebp\n\tpush %%ebx\n\t"
                         "mov 4(%%eax), %%ebx\n\tmov 8(%%eax), %%ecx\n\tmov 12(%%eax), %%edx\n\t"
                         "mov 16(%%eax), %%esi\n\tmov 20(%%eax), %%edi\n\tmov 24(%%eax), %%ebp\n\t"
                         "mov 0(%%eax), %%eax\n\tint $0x80\n\t"
                         "pop %%ebx\n\tpop %%ebp"
                         : "=a"(ret)
                         : "a"(args)
                         : "ecx", "edx", "esi", "edi", "memory", "cc");
    return ret;
}

static int t_vsyscall_six_args(void)
{
    uintptr_t entry = getauxval(AT_SYSINFO);
    CHECK(entry, "no AT_SYSINFO");
    int fd = open("/tmp/args", O_CREAT | O_RDWR | O_TRUNC, 0644);
    CHECK(fd >= 0, "create: %s", strerror(errno));
    static uint32_t data[2 * PAGE / 4];
    for (uint32_t i = 0; i < 2 * PAGE / 4; i++)
        data[i] = pattern(i + 99);
    CHECK(write_all(fd, data, sizeof data) == 0, "write: %s", strerror(errno));
    const uintptr_t gates[2] = {0, entry};
    for (int g = 0; g < 2; g++) {
        const char *how = g ? "__kernel_vsyscall" : "int $0x80";
        /* pread64(fd, buf, count, pos_lo = esi, pos_hi = edi) */
        uint32_t got[2] = {0, 0};
        long r = syscall6(gates[g], SYS_pread64, fd, (long)got, 8, PAGE + 16, 0, 0);
        CHECK(r == 8 && got[0] == data[PAGE / 4 + 4] && got[1] == data[PAGE / 4 + 5], "pread64 through %s: %ld", how, r);
        /* mmap2(addr, len, prot, flags, fd = edi, pgoff = ebp) */
        long m = syscall6(gates[g], SYS_mmap2, 0, PAGE, PROT_READ, MAP_SHARED, fd, 1);
        CHECK((unsigned long)m < (unsigned long)-4095, "mmap2 through %s: %ld", how, m);
        uint32_t first = *(volatile uint32_t *)m;
        munmap((void *)m, PAGE);
        CHECK(first == data[PAGE / 4], "mmap2 through %s mapped the wrong page", how);
    }
    close(fd);
    unlink("/tmp/args");
    return 1;
}

static int t_gs_sysinfo(void)
{
    uintptr_t slot;
    __asm__ volatile("movl %%gs:0x10, %0" : "=r"(slot));
    CHECK(slot == getauxval(AT_SYSINFO), "%%gs:0x10 does not hold AT_SYSINFO");
    long ppid;
    __asm__ volatile("call *%%gs:0x10" : "=a"(ppid) : "a"(SYS_getppid) : "memory", "cc");
    CHECK(ppid == 0, "getppid of init through call *%%gs:0x10 is %ld", ppid);
    return 1;
}

static int t_vsyscall_loop(void)
{
    /* Many sysenter round trips in a row, each checked. */
    uintptr_t entry = getauxval(AT_SYSINFO);
    CHECK(entry, "no AT_SYSINFO");
    long pid = getpid();
    for (int i = 0; i < 20000; i++)
        CHECK(vsyscall0(entry, SYS_getpid) == pid, "round %d: wrong getpid", i);
    return 1;
}

/* ---- time ------------------------------------------------------------------------ */

static int64_t ns(const struct timespec *t)
{
    return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

static int t_nanosleep(void)
{
    struct timespec a, b, d = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
    CHECK(clock_gettime(CLOCK_MONOTONIC, &a) == 0, "clock_gettime: %s", strerror(errno));
    CHECK(nanosleep(&d, NULL) == 0, "nanosleep: %s", strerror(errno));
    CHECK(clock_gettime(CLOCK_MONOTONIC, &b) == 0, "clock_gettime: %s", strerror(errno));
    CHECK(ns(&b) - ns(&a) >= 10 * 1000 * 1000, "only %lld ns passed", (long long)(ns(&b) - ns(&a)));
    return 1;
}

static int t_monotonic(void)
{
    struct timespec prev, now;
    clock_gettime(CLOCK_MONOTONIC, &prev);
    for (int i = 0; i < 20000; i++) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        CHECK(ns(&now) >= ns(&prev), "CLOCK_MONOTONIC went back at read %d", i);
        prev = now;
    }
    return 1;
}

static int t_realtime(void)
{
    struct timespec rt;
    struct timeval tv;
    CHECK(clock_gettime(CLOCK_REALTIME, &rt) == 0 && gettimeofday(&tv, NULL) == 0, "reading the clock");
    /* 2024-01-01: the RTC was read at boot (QEMU and bt86 give the host's time). */
    CHECK(rt.tv_sec > 1704067200, "CLOCK_REALTIME is %lld", (long long)rt.tv_sec);
    CHECK(tv.tv_sec - rt.tv_sec <= 1 && tv.tv_sec >= rt.tv_sec, "gettimeofday disagrees");
    return 1;
}

/* ---- cpuid ----------------------------------------------------------------------- */

/* The value of field `key` in /proc/cpuinfo, into `out`. */
static int cpuinfo(const char *key, char *out, size_t size)
{
    static char text[8192];
    int fd = open("/proc/cpuinfo", O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read_all(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return 0;
    text[n] = 0;
    size_t klen = strlen(key);
    for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, key, klen) != 0 || (line[klen] != ' ' && line[klen] != '\t'))
            continue;
        char *v = strchr(line, ':');
        if (!v)
            return 0;
        v += 2;
        size_t len = strcspn(v, "\n");
        if (len >= size)
            len = size - 1;
        memcpy(out, v, len);
        out[len] = 0;
        return 1;
    }
    return 0;
}

static void cpuid(uint32_t leaf, uint32_t r[4])
{
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(0));
}

static int t_cpuid_vendor(void)
{
    uint32_t r[4];
    char vendor[13], proc[64];
    cpuid(0, r);
    memcpy(vendor, &r[1], 4);
    memcpy(vendor + 4, &r[3], 4);
    memcpy(vendor + 8, &r[2], 4);
    vendor[12] = 0;
    CHECK(cpuinfo("vendor_id", proc, sizeof proc), "no vendor_id in /proc/cpuinfo");
    CHECK(strcmp(vendor, proc) == 0, "cpuid says %s, /proc/cpuinfo %s", vendor, proc);
    return 1;
}

static int t_cpuid_family(void)
{
    uint32_t r[4];
    char fam[32], mod[32];
    cpuid(1, r);
    /* As the kernel computes them (x86_family, x86_model). */
    uint32_t family = (r[0] >> 8) & 0xf, model = (r[0] >> 4) & 0xf;
    if (family == 0xf)
        family += (r[0] >> 20) & 0xff;
    if (family >= 6)
        model += ((r[0] >> 16) & 0xf) << 4;
    CHECK(cpuinfo("cpu family", fam, sizeof fam) && cpuinfo("model", mod, sizeof mod), "no family/model in /proc/cpuinfo");
    CHECK((uint32_t)atoi(fam) == family && (uint32_t)atoi(mod) == model, "cpuid says %u/%u, /proc/cpuinfo %s/%s", family,
          model, fam, mod);
    return 1;
}

/* ---- main ------------------------------------------------------------------------ */

static const struct {
    int (*fn)(void);
    const char *what;
} tests[] = {
    {t_mount_proc, "mount proc on /proc (/proc/self/maps readable)"},
    {t_mount_sys, "mount sysfs on /sys (/sys/kernel exists)"},
    {t_mount_tmp, "mount tmpfs on /tmp"},
    {t_pid1, "/init runs as pid 1"},
    {t_fork_exec_wait, "fork, execve /init with arguments and environment, waitpid: the child sees them and exits 42"},
    {t_wait_killed, "waitpid reports a paused child killed by SIGKILL"},
    {t_many_children, "20 forked children exit with their own statuses, reaped in order"},
    {t_pipe_bulk, "1 MiB through a pipe to a child, its checksum back through another pipe"},
    {t_pipe_eof_epipe, "a pipe gives EOF once its writer closed; writing with no reader fails with EPIPE"},
    {t_kill_self, "kill(getpid(), SIGUSR1) runs the SA_SIGINFO handler once, with si_pid of the sender"},
    {t_kill_child, "SIGUSR1 sent to a child waiting in sigsuspend runs its handler; the child exits 0"},
    {t_segv_readonly, "a store to a read-only page raises SIGSEGV with si_addr; the handler recovers by siglongjmp"},
    {t_segv_null_twice, "two loads from address 16 each raise SIGSEGV and recover; siglongjmp unblocks SIGSEGV"},
    {t_sigfpe, "integer division by zero raises SIGFPE and recovers by siglongjmp"},
    {t_sigalrm, "setitimer(ITIMER_REAL, 20 ms) delivers one SIGALRM that interrupts pause()"},
    {t_mmap_munmap, "mmap 4 MiB anonymous: zero-filled, keeps stores; a load after munmap raises SIGSEGV"},
    {t_mprotect, "mprotect: PROT_READ faults stores, PROT_READ|PROT_WRITE allows them, PROT_NONE faults loads"},
    {t_cow, "copy-on-write after fork: 64 private pages, each side sees only its own stores"},
    {t_shared_anon, "MAP_SHARED anonymous memory: the parent sees the child's store"},
    {t_threads, "4 pthreads (clone) add to a mutex-protected counter; pid shared, tids distinct, join values"},
    {t_tls, "__thread variables are per thread (initialized copies; the main thread's unchanged)"},
    {t_tmpfs_file, "a 256 KiB file on the tmpfs is written, fsync'ed, stat'ed and read back identical"},
    {t_tmpfs_rename_unlink, "rename and unlink on the tmpfs: the old names are gone (ENOENT)"},
    {t_mmap_file, "a MAP_SHARED mapping of a tmpfs file and write()/read() see each other"},
    {t_x87_switch, "x87 registers and control word survive sched_yield, two processes alternating 500 times"},
    {t_sse_switch, "XMM0-7 and MXCSR survive sched_yield, two processes alternating 500 times"},
    {t_fp_series, "a floating-point series gives the same sum alone and with another process computing between"},
    {t_auxv_vdso, "AT_SYSINFO is set and lies in the vDSO that AT_SYSINFO_EHDR points at"},
    {t_vsyscall_sysenter, "__kernel_vsyscall enters the kernel with sysenter"},
    {t_vsyscall_call, "getpid and write through the AT_SYSINFO entry give what int $0x80 gives"},
    {t_vsyscall_six_args, "pread64 (esi, edi) and mmap2 (edi, ebp) work through int $0x80 and __kernel_vsyscall"},
    {t_gs_sysinfo, "%gs:0x10 (glibc's TCB) holds AT_SYSINFO; call *%gs:0x10 runs getppid"},
    {t_vsyscall_loop, "20000 getpid calls through __kernel_vsyscall all return the pid"},
    {t_nanosleep, "CLOCK_MONOTONIC advances at least 10 ms across nanosleep(10 ms)"},
    {t_monotonic, "CLOCK_MONOTONIC never goes back over 20000 reads"},
    {t_realtime, "CLOCK_REALTIME is past 2024 and gettimeofday agrees with it"},
    {t_cpuid_vendor, "user-mode cpuid leaf 0 gives the vendor /proc/cpuinfo shows"},
    {t_cpuid_family, "user-mode cpuid leaf 1 gives the family and model /proc/cpuinfo shows"},
};

/* Stdout and stderr on the console, whatever the kernel left open. */
static void console_stdio(void)
{
    if (fcntl(1, F_GETFD) != -1 && fcntl(2, F_GETFD) != -1)
        return;
    int fd = open("/dev/console", O_RDWR | O_NOCTTY);
    if (fd < 0)
        return;
    for (int i = 0; i < 3; i++)
        if (fcntl(i, F_GETFD) == -1)
            dup2(fd, i);
    if (fd > 2)
        close(fd);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "exec-child") == 0)
        return exec_child(argc, argv);
    console_stdio();
    /* Only errors and worse from the kernel on the console from now on: notices (such as
     * the random pool's) could otherwise fall between TAP lines differently per machine. */
    klogctl(SYSLOG_ACTION_CONSOLE_LEVEL, NULL, 4);

    int n = (int)(sizeof tests / sizeof tests[0]), failed = 0;
    say("1..%d\n", n);
    for (int i = 0; i < n; i++) {
        int ok = tests[i].fn();
        failed += !ok;
        say("%sok %d - %s\n", ok ? "" : "not ", i + 1, tests[i].what);
    }
    say("# %d of %d checks failed\n", failed, n);
    sync();
    reboot(RB_POWER_OFF);
    say("# reboot(RB_POWER_OFF): %s\n", strerror(errno));
    for (;;)
        pause();
}
