/*
 * user.h - running code at CPL 3 from a test kernel (paging_user, mmio).
 *
 * Include it from exactly one source of a kernel (it defines variables and code).  It uses
 * the runtime's DPL 3 descriptors: CS = SEL_CODE3|3, DS = ES = FS = GS = SS = SEL_DATA3|3.
 *
 *   user_setup()        TSS (ESP0 = a kernel stack of its own, ltr), a DPL 3 interrupt gate
 *                       for int 0x80, hooks for the faults that CPL 3 code can raise;
 *   user_enter(fn)      iret to fn at CPL 3 on the stack user_stack_top (which must be
 *                       mapped user-writable when paging is on), with FS = user_fs (UDS
 *                       unless the kernel sets another DPL 3 data selector); returns to
 *                       the caller at CPL 0 when fn returns (through user_exit: `int $0x80`
 *                       with EAX = 0);
 *   user_resume         where a fault at CPL 3 resumes (at CPL 3); 0: a fault there bails
 *                       out.  user_exit is a good value: it ends the user_enter;
 *   uf                  the last fault at CPL 3: vector, error code, EIP, CS, ESP, SS, CR2;
 *   user_syscall        called for int 0x80 with EAX != 0 (it may change f->eax);
 *   user_pf_fixup       called first for every #PF (CPL 0 or 3): returns 1 if it fixed the
 *                       cause, and the faulting instruction is retried.
 *
 * A fault at CPL 0 while user.h's hooks are installed behaves as the runtime's CATCH does
 * (rt_last is filled in and execution resumes at rt_resume_eip); uk_cr2 holds the CR2 of
 * the last #PF at either level.
 */
#ifndef BT86_USER_H
#define BT86_USER_H

#include "rt.h"

#define UCS (SEL_CODE3 | 3)
#define UDS (SEL_DATA3 | 3)

struct ufault {
    uint32_t count, vector, err, eip, cs, esp, ss, cr2;
};
volatile struct ufault uf;
volatile uint32_t user_resume;
volatile uint32_t uk_cr2;
uint32_t user_stack_top;
uint32_t user_eflags = 0x202;
uint16_t user_fs = UDS;
uint32_t user_kernel_esp;
void (*user_syscall)(struct trap_frame *f, uint32_t *eip);
int (*user_pf_fixup)(struct trap_frame *f, uint32_t *eip, uint32_t cr2);

static uint8_t user_kstack[8192] __attribute__((aligned(4096)));
static uint8_t user_default_stack[8192] __attribute__((aligned(4096)));

/* uint32_t user_enter(void (*fn)(void)): EAX at the exit is returned (always 0). */
extern uint32_t user_enter(void (*fn)(void));
extern char user_exit[], user_return[];
#define USER_STR_(x) #x
#define USER_STR(x) USER_STR_(x)
asm(".pushsection .text\n"
    ".globl user_enter, user_exit, user_return\n"
    "user_enter:\n"
    "\tpush %ebp\n\tpush %ebx\n\tpush %esi\n\tpush %edi\n"
    "\tmovl 20(%esp), %eax\n"
    "\tmovl %esp, user_kernel_esp\n"
    "\tmovl user_stack_top, %edx\n"
    "\tsubl $16, %edx\n"
    "\tmovl $user_exit, (%edx)\n"            /* fn returns to user_exit */
    "\tmovw $" USER_STR(0x43) ", %cx\n"      /* UDS */
    "\tmovw %cx, %ds\n\tmovw %cx, %es\n\tmovw %cx, %gs\n"
    "\tmovw user_fs, %cx\n\tmovw %cx, %fs\n"
    "\tpushl $" USER_STR(0x43) "\n"          /* SS */
    "\tpushl %edx\n"                         /* ESP */
    "\tpushl user_eflags\n"
    "\tpushl $" USER_STR(0x73) "\n"          /* CS = UCS */
    "\tpushl %eax\n"
    "\tiretl\n"
    "user_exit:\n"                           /* CPL 3: back to the kernel, EAX = 0 */
    "\txorl %eax, %eax\n"
    "\tint $0x80\n"
    "\tud2\n"
    "user_return:\n"                         /* CPL 0 again */
    "\tmovw $0x10, %cx\n"
    "\tmovw %cx, %ds\n\tmovw %cx, %es\n\tmovw %cx, %fs\n\tmovw %cx, %gs\n"
    "\tmovl user_kernel_esp, %esp\n"
    "\tpop %edi\n\tpop %esi\n\tpop %ebx\n\tpop %ebp\n"
    "\tret\n"
    ".popsection\n");
_Static_assert(UCS == 0x73 && UDS == 0x43, "user.h's assembly spells out UCS and UDS");

static void user_on_int80(struct trap_frame *f, uint32_t *eip)
{
    if ((eip[1] & 3) == 3 && f->eax == 0) {   /* leave CPL 3: iret to user_return */
        eip[0] = (uint32_t)user_return;
        eip[1] = SEL_KCODE;
        eip[2] = 0x002;
        return;
    }
    if (!user_syscall)
        rt_bail("int 0x80 with EAX 0x%x and no user_syscall", f->eax);
    user_syscall(f, eip);
}

static void user_on_fault(unsigned v, struct trap_frame *f, uint32_t *eip)
{
    int has_err = eip == &f->w[1];
    uint32_t err = has_err ? f->w[0] : 0;
    uint32_t cr2 = v == 14 ? read_cr2() : 0;
    if (v == 14) {
        uk_cr2 = cr2;
        if (user_pf_fixup && user_pf_fixup(f, eip, cr2))
            return;
    }
    if ((eip[1] & 3) == 3) {
        uf.count++;
        uf.vector = v;
        uf.err = err;
        uf.eip = eip[0];
        uf.cs = eip[1];
        uf.esp = eip[3];
        uf.ss = eip[4];
        uf.cr2 = cr2;
        if (!user_resume)
            rt_bail("vector %u at CPL 3 (error 0x%x) at EIP 0x%08x, CR2 0x%08x", v, err, eip[0], cr2);
        eip[0] = user_resume;
        return;
    }
    if (rt_resume_eip) {                      /* CPL 0: what the runtime's CATCH does */
        rt_last.count++;
        rt_last.vector = v;
        rt_last.has_err = has_err;
        rt_last.err = err;
        rt_last.eip = eip[0];
        rt_last.cs = eip[1];
        rt_last.eflags = eip[2];
        rt_last.handler_eflags = read_eflags();
        rt_last.esp = (uint32_t)(eip + 3);
        eip[0] = rt_resume_eip;
        rt_resume_eip = 0;
        return;
    }
    rt_bail("unexpected vector %u at CPL 0 (error 0x%x) at EIP 0x%08x, CR2 0x%08x", v, err, eip[0], cr2);
}
#define USER_HOOK(v) \
    static void user_on_fault_##v(struct trap_frame *f, uint32_t *e) { user_on_fault(v, f, e); }
USER_HOOK(0) USER_HOOK(6) USER_HOOK(13) USER_HOOK(14)

static void user_setup(void)
{
    rt_tss[1] = (uint32_t)user_kstack + sizeof user_kstack;   /* ESP0 */
    rt_tss[2] = SEL_KDATA;                                     /* SS0 */
    asm volatile("ltr %w0" :: "r"(SEL_TSS));
    rt_idt_set(0x80, rt_stub(0x80), SEL_KCODE, GATE_INT | 0x60);
    rt_set_hook(0x80, user_on_int80);
    rt_set_hook(0, user_on_fault_0);
    rt_set_hook(6, user_on_fault_6);
    rt_set_hook(13, user_on_fault_13);
    rt_set_hook(14, user_on_fault_14);
    user_stack_top = (uint32_t)user_default_stack + sizeof user_default_stack;
}

#endif
