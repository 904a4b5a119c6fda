/*
 * pt.h - paging kernels (pt_alias, pt_writes, pt_modes, paging_user, mmio): a kernel whose
 * page tables are also its data, and one access at a time at CPL 0 or CPL 3, with its fault.
 *
 * Include it from exactly one source of a kernel, after nothing else of the runtime's
 * CPL 3 support (it includes user.h, which defines variables and code).
 *
 *   pt_setup(pd)     0-4 MiB (the kernel image) identity-mapped by pt_low, user-accessible
 *                    and writable; 4-128 MiB by 4 MiB supervisor pages; CR4.PSE on, CR3 =
 *                    pd, paging on, user.h set up. The caller adds its own PDEs before or
 *                    after (a PDE added after needs no invalidation: P goes 0 -> 1).
 *   probe(user, op, addr, val)
 *                    one read, write or call (RD, WR, EX) of `addr` at CPL 3 (user) or
 *                    CPL 0; the value read (or EAX returned by the call), and the fault
 *                    if any: vector, error code, CR2;
 *   is_pf / no_fault / reads
 *                    TAP checks of one probe (a failed one prints a "# " line with it);
 *   pt_paging_off()  the end of a kernel: paging off again, checked.
 *
 * Only what the architecture guarantees is checked (see each kernel's header): a changed
 * entry is looked at after invlpg of its page or a CR3 load (or a mode change that flushes
 * the TLB), or after a P 0 -> 1 change, which needs no invalidation; never whether a stale
 * translation survives.
 */
#ifndef BT86_PT_H
#define BT86_PT_H

#include <stdarg.h>

#include "rt.h"
#include "user.h"

#define PG_P 0x001u
#define PG_W 0x002u
#define PG_U 0x004u
#define PG_A 0x020u
#define PG_D 0x040u
#define PG_PS 0x080u
#define PG_G 0x100u
#define PG_AD (PG_A | PG_D)
#define PG_FRAME 0xfffff000u

#define PT_S_(x) #x
#define PT_S(x) PT_S_(x)
/* Helpers a kernel may leave unused. */
#define PT_FN static __attribute__((unused))

static uint32_t pt_low[1024] __attribute__((aligned(4096), unused));

static inline void invlpg(uint32_t a) { asm volatile("invlpg (%0)" :: "r"(a) : "memory"); }
static inline volatile uint32_t *lin(uint32_t a) { return (volatile uint32_t *)PHYS(a); }
static inline void reload_cr3(void) { write_cr3(read_cr3()); }

PT_FN void pt_setup(uint32_t *pd)
{
    if ((uint32_t)__image_end > 0x400000)
        rt_bail("the kernel image ends above 4 MiB");
    for (unsigned i = 0; i < 1024; i++)
        pt_low[i] = (i << 12) | PG_U | PG_W | PG_P;
    pd[0] = (uint32_t)pt_low | PG_U | PG_W | PG_P;
    for (unsigned i = 1; i < 32; i++)
        pd[i] = (i << 22) | PG_PS | PG_W | PG_P;
    write_cr4(read_cr4() | CR4_PSE);
    write_cr3((uint32_t)pd);
    write_cr0(read_cr0() | CR0_PG);
    user_setup();
}

/* The end of a kernel: paging off again, checked. */
PT_FN void pt_paging_off(void)
{
    write_cr0(read_cr0() & ~CR0_PG);
    ok(!(read_cr0() & CR0_PG), "paging off again");
}

/* ---- one access --------------------------------------------------------------------- */
volatile uint32_t pr_addr, pr_val;
uint32_t pr_saved_esp;
extern char pr_read[], pr_read_at[], pr_write[], pr_write_at[], pr_exec[];
asm(".pushsection .text\n"
    "pr_read:\n\tmovl pr_addr, %ebx\n\tmovl $0xdeadbeef, %eax\n"
    "pr_read_at:\n\tmovl (%ebx), %eax\n\tmovl %eax, pr_val\n\tret\n"
    "pr_write:\n\tmovl pr_addr, %ebx\n\tmovl pr_val, %eax\n"
    "pr_write_at:\n\tmovl %eax, (%ebx)\n\tret\n"
    "pr_exec:\n\tmovl pr_addr, %ebx\n\tcall *%ebx\n\tmovl %eax, pr_val\n\tret\n"
    ".popsection\n");

enum { RD, WR, EX };
#define U 1
#define K 0
struct probe {
    uint32_t user, faulted, vector, err, eip, cs, cr2, val, at;
};

/* The fault a probe took (count 0: none). */
PT_FN void took(struct probe *p, uint32_t count, uint32_t vector, uint32_t err, uint32_t eip, uint32_t cs)
{
    *p = (struct probe){ .user = p->user, .at = p->at, .faulted = count, .vector = vector, .err = err, .eip = eip, .cs = cs };
}

PT_FN struct probe probe(int user, int op, uint32_t addr, uint32_t val)
{
    struct probe p = { .user = user };
    void (*stub)(void) = (void (*)(void))(op == RD ? pr_read : op == WR ? pr_write : pr_exec);
    p.at = op == RD ? (uint32_t)pr_read_at : op == WR ? (uint32_t)pr_write_at : addr;
    pr_addr = addr;
    pr_val = val;
    uk_cr2 = 0;
    if (user) {
        uf.count = 0;
        uf.vector = 0xff;
        user_resume = (uint32_t)user_exit;
        user_enter(stub);
        took(&p, uf.count, uf.vector, uf.err, uf.eip, uf.cs);
    } else {
        rt_clear_last();
        asm volatile(CATCH("1f") "movl %%esp, pr_saved_esp\n\tcall *%0\n1:\tmovl pr_saved_esp, %%esp\n\t" UNCATCH
                     :: "r"(stub) : "eax", "ebx", "ecx", "edx", "esi", "edi", "memory", "cc");
        took(&p, rt_last.count, rt_last.vector, rt_last.err, rt_last.eip, rt_last.cs);
    }
    p.cr2 = uk_cr2;
    p.val = pr_val;
    return p;
}

PT_FN void show(struct probe p)
{
    rt_printf("# %s: %u fault(s), vector %u error 0x%x CR2 0x%08x EIP 0x%08x CS 0x%x, value 0x%08x (access at 0x%08x)\n",
              p.user ? "CPL 3" : "CPL 0", p.faulted, p.vector, p.err, p.cr2, p.eip, p.cs, p.val, p.at);
}

/* Each check's description is a format, as ok()'s. */
#define PT_DESC(desc)                                                                        \
    char desc[160];                                                                          \
    va_list ap;                                                                              \
    va_start(ap, fmt);                                                                       \
    rt_vformat(desc, sizeof desc, fmt, ap);                                                  \
    va_end(ap)

/* The probe faulted once with #PF(err) at the access, CR2 = cr2. */
PT_FN __attribute__((format(printf, 4, 5))) int is_pf(struct probe p, uint32_t err, uint32_t cr2, const char *fmt, ...)
{
    PT_DESC(desc);
    int good = p.faulted == 1 && p.vector == 14 && p.err == err && p.cr2 == cr2 && p.eip == p.at &&
               p.cs == (p.user ? UCS : SEL_KCODE);
    if (!ok(good, "%s: #PF, error 0x%x, CR2, EIP", desc, err))
        show(p);
    return good;
}

PT_FN __attribute__((format(printf, 2, 3))) int no_fault(struct probe p, const char *fmt, ...)
{
    PT_DESC(desc);
    int good = p.faulted == 0;
    if (!ok(good, "%s: no fault", desc))
        show(p);
    return good;
}

/* The probe did not fault and read (or returned) `want`. */
PT_FN __attribute__((format(printf, 3, 4))) int reads(struct probe p, uint32_t want, const char *fmt, ...)
{
    PT_DESC(desc);
    int good = p.faulted == 0 && p.val == want;
    if (!ok(good, "%s", desc)) {
        rt_printf("# expected 0x%08x\n", want);
        show(p);
    }
    return good;
}

/* Fills a frame with words tag + offset, so that any dword tells where it came from. */
PT_FN void fill(volatile void *frame, uint32_t tag)
{
    for (unsigned i = 0; i < 4096; i += 4)
        *(volatile uint32_t *)((volatile uint8_t *)frame + i) = tag + i;
}

/* `mov $v, %eax; ret` at p */
PT_FN void code_ret(volatile uint8_t *p, uint32_t v)
{
    p[0] = 0xb8;
    p[1] = v;
    p[2] = v >> 8;
    p[3] = v >> 16;
    p[4] = v >> 24;
    p[5] = 0xc3;
}

#endif
