/*
 * userland.h - the CPL 3 side of bench-user (userland.c), shared by the guest kernel
 * (user.c), which runs it at CPL 3, and the native program (native-user.c), which runs it
 * as an ordinary 32-bit Linux process.  See README.md.
 *
 * Each ul_* function runs one round of one benchmark: the loop with the event, timed with
 * rdtsc at CPL 3, then the same loop without the event (the baseline), and leaves both
 * times in ul_job.  The caller (kernel or native main) turns them into cycles per operation.
 */
#ifndef BT86_USERLAND_H
#define BT86_USERLAND_H

#include <stdint.h>

/* Operations per round. */
#define UL_SYSCALL_OPS  10000u
#define UL_SYSENTER_OPS 10000u
#define UL_DE_OPS       10000u
#define UL_PF_PAGES     1024u      /* one page table's worth: 4 MiB */
/* usercompute: intloop iterations and crc32 passes over 64 KiB (workloads.c). */
#define UL_COMPUTE_ITERS  20000000u
#define UL_COMPUTE_PASSES 100u

/* EAX for `int $0x80` and sysenter: Linux i386's getppid (the native reference; and should
 * a guest system call ever reach the host's kernel, a harmless one); the guest ignores it. */
#define UL_NR_GETPPID 64

/* The guest's user stack (the native program does not use it). */
#define UL_STACK_BYTES 16384       /* no suffix: user.c uses it in assembly */

struct ul_job {
    uint32_t va;         /* in:  userpf: the first of UL_PF_PAGES pages                 */
    uint64_t t_event;    /* out: TSC cycles of the loop with the event                  */
    uint64_t t_base;     /* out: TSC cycles of the same loop without it                 */
    uint32_t sum_event;  /* out: userpf: the sum of what the cold loads read;
                                 usercompute: the workloads' result                     */
    uint32_t sum_base;   /* out: userpf: the sum of what the warm loads read            */
};
extern volatile struct ul_job ul_job;
extern uint8_t ul_stack[UL_STACK_BYTES];

/* int $0x80 (EAX = UL_NR_GETPPID) UL_SYSCALL_OPS times; baseline: a 2-byte nop instead. */
void ul_syscall(void);
/* sysenter (EAX = UL_NR_GETPPID, ECX = ESP, EDX = the next instruction, as sysexit wants
 * them) UL_SYSENTER_OPS times; baseline: a 2-byte nop.  Guest only. */
void ul_sysenter(void);
/* One load from each of UL_PF_PAGES pages from ul_job.va (not present: each faults once),
 * then the same loads again (now present); sum_event/sum_base are what they read. */
void ul_userpf(void);
/* `divl %ecx` (2 bytes) with ECX = 0, UL_DE_OPS times (the #DE handler must step EIP over
 * it); baseline: with ECX = 1. */
void ul_userde(void);
/* bench_compute(UL_COMPUTE_ITERS, UL_COMPUTE_PASSES) (workloads.c), timed; its inputs are
 * prepared (untimed) on the first call.  t_base = 0. */
void ul_compute(void);

/* Guest only: where the ul_* functions return to: `int $0x81` (the kernel's exit gate). */
extern char ul_exit[];

#endif
