/*
 * host.c - runs the unprivileged parts of a guest test kernel as an ordinary 32-bit Linux
 * program, so that the host CPU (real hardware) can be the oracle for expected values and
 * sweep hashes.  See run-native.sh.  Not part of the build: build.rs only compiles the
 * files directly in tests/guests/ and tests/guests/lib/.
 *
 * Kernel code that is privileged is compiled out with `#ifndef HOST`.  Exceptions become
 * signals here; the handler records them in rt_last like the guest runtime does (vector
 * from the kernel's trap number) and resumes at rt_resume_eip.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>
#include "rt.h"

extern const char *rt_host_cmdline;

static void on_signal(int sig, siginfo_t *si, void *ctx)
{
    ucontext_t *uc = ctx;
    if (!rt_resume_eip) {
        static const char msg[] = "Bail out! unexpected signal\n";
        write(1, msg, sizeof msg - 1);
        _exit(127);
    }
    rt_last.count++;
    rt_last.vector = uc->uc_mcontext.gregs[REG_TRAPNO];
    rt_last.err = uc->uc_mcontext.gregs[REG_ERR];
    rt_last.has_err = 0;
    rt_last.eip = uc->uc_mcontext.gregs[REG_EIP];
    rt_last.eflags = uc->uc_mcontext.gregs[REG_EFL];
    uc->uc_mcontext.gregs[REG_EIP] = rt_resume_eip;
    rt_resume_eip = 0;
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    int sigs[] = { SIGFPE, SIGILL, SIGSEGV, SIGBUS, SIGTRAP };
    for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
    static char cmdline[1024];
    for (int i = 1; i < argc; i++) {
        strncat(cmdline, argv[i], sizeof cmdline - strlen(cmdline) - 2);
        strcat(cmdline, " ");
    }
    rt_host_cmdline = cmdline;
    rt_verbose = rt_cmdline_has("verbose");
    rt_clear_last();
    test_main();
    tap_done();
}
