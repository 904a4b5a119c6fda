/*
 * code_alias - user code rewritten through another mapping of its frame runs as written.
 *
 * Why.  bt86 runs guest user code natively, and a page that holds `cpuid`, `syscall` or
 * `sysenter` must not run on the host CPU (their host behaviour is not the virtual
 * CPU's): it maps a code page executable only after checking its bytes, and never
 * writable while it is.  The page is a frame, and a frame can have other mappings: a
 * second, writable user mapping (an alias), and the kernel's own.  Code written through
 * any of them must run as on a PC: cpuid answers as the kernel's cpuid does (the virtual
 * CPU's answer, not the host's), and syscall raises #UD (the CPU has no SYSCALL enabled:
 * EFER.SCE is clear).
 *
 * The kernel.  The runtime's GDT and user.h's CPL 3 support; paging with 0-4 MiB
 * identity-mapped by a page table of user pages (the kernel image, which user code runs
 * from and reads), 4-128 MiB by 4 MiB supervisor pages, and one frame `code` mapped twice:
 *   0x40000000  X: user, read-only (executable: no NX)
 *   0x40001000  Y: user, writable
 * and a third time by the identity map, which the kernel writes it through; and another
 * frame the same way at 0x40002000 (X2) and 0x40003000 (Y2).
 *
 * User code runs from a page of its own (u_stubs: checked to hold no 0F 05, 0F 34 nor
 * 0F A2, so that bt86 runs it natively); it calls X, copies bytes into Y (rep movsb), or
 * calls X (or X2) with EAX = leaf, ECX = 0 and records EAX..EDX after the call.  The
 * checks:
 *   - first, code at X2 that stores `cpuid; ret` into its own frame through Y2 and
 *     calls it (a store into the frame of the storing instruction, through a mapping of
 *     another page);
 * then, each after X has run clean code (under bt86, natively: X is mapped executable):
 *   - code written through Y runs as written (mov $imm, %eax; ret);
 *   - `cpuid; ret` written through Y answers leaves 0 and 1 as the kernel's cpuid;
 *   - `syscall; ret` written through Y raises #UD at X;
 *   - the same two written by the kernel through its identity mapping of the frame;
 *   - after each of these, clean code at X returns what it should (runs natively again).
 *
 * Output is the same on a PC, under QEMU and in every mode of bt86: no CPUID values are
 * printed, only whether user mode saw the kernel's.
 */
#include "rt.h"
#include "user.h"

#define PG_P 0x001u
#define PG_W 0x002u
#define PG_U 0x004u
#define PG_PS 0x080u

#define X 0x40000000u           /* the frame, user read-only (run from here)  */
#define Y 0x40001000u           /* the same frame, user writable               */
#define X2 0x40002000u          /* another frame, user read-only               */
#define Y2 0x40003000u          /* the same frame, user writable               */

#define S_(x) #x
#define S(x) S_(x)

static uint32_t pd[1024] __attribute__((aligned(4096)));
static uint32_t pt0[1024] __attribute__((aligned(4096)));
static uint32_t ptx[1024] __attribute__((aligned(4096)));
static uint8_t code[4096] __attribute__((aligned(4096)));
static uint8_t code2[4096] __attribute__((aligned(4096)));

/* What the user stubs take and leave (kernel data, user-accessible). */
volatile uint32_t u_src, u_len, u_leaf, u_target = X;
volatile uint32_t u_out[4];

/* Code to put at X (kept as data; the bytes of cpuid and syscall only ever in data). */
static const uint8_t c_cpuid[] = { 0x0f, 0xa2, 0xc3 };          /* cpuid; ret   */
static const uint8_t c_syscall[] = { 0x0f, 0x05, 0xc3 };        /* syscall; ret */
/* `cpuid; ret` as a dword, for the code that writes it into its own frame. */
volatile uint32_t u_cpuid_word = 0x00c3a20f;

/* ==================================================================================== */
/* The user stubs: a page of their own (no 0F 05 / 0F 34 / 0F A2 on it: checked).      */
/* ==================================================================================== */
extern char u_stubs[], u_stubs_end[], u_call[], u_poke[], u_cpuid[];
asm(".pushsection .text.code_alias_user, \"ax\"\n"
    ".balign 4096\n"
    "u_stubs:\n"
    /* call X; EAX -> u_out[0] */
    "u_call:\n"
    "\tmovl $" S(X) ", %edx\n"
    "\tcall *%edx\n"
    "\tmovl %eax, u_out\n"
    "\tret\n"
    /* copy u_len bytes from u_src to Y */
    "u_poke:\n"
    "\tmovl u_src, %esi\n"
    "\tmovl $" S(Y) ", %edi\n"
    "\tmovl u_len, %ecx\n"
    "\tcld\n"
    "\trep movsb\n"
    "\tret\n"
    /* call u_target with EAX = u_leaf, ECX = 0; EAX..EDX -> u_out */
    "u_cpuid:\n"
    "\tmovl u_leaf, %eax\n"
    "\txorl %ecx, %ecx\n"
    "\tcall *u_target\n"
    "\tmovl %eax, u_out\n"
    "\tmovl %ebx, u_out+4\n"
    "\tmovl %ecx, u_out+8\n"
    "\tmovl %edx, u_out+12\n"
    "\tret\n"
    "u_stubs_end:\n"
    ".balign 4096\n"
    ".popsection\n");

/* Code that stores `cpuid; ret` at X2 + 0x40 through Y2 and calls it with EAX = u_leaf:
 * copied to X2 (position-dependent only through the constants X2 and Y2). */
extern char t_self[], t_self_end[];
asm(".pushsection .rodata\n"
    "t_self:\n"
    "\tmovl u_cpuid_word, %eax\n"
    "\tmovl %eax, " S(Y2) " + 0x40\n"
    "\tmovl u_leaf, %eax\n"
    "\txorl %ecx, %ecx\n"
    "\tmovl $" S(X2) " + 0x40, %edx\n"
    "\tcall *%edx\n"
    "\tret\n"
    "t_self_end:\n"
    ".popsection\n");

/* The page holds none of 0F 05, 0F 34, 0F A2, and no 0F at its end. */
static int clean(const uint8_t *p)
{
    for (unsigned i = 0; i < 4096; i++)
        if (p[i] == 0x0f && (i == 4095 || p[i + 1] == 0x05 || p[i + 1] == 0x34 || p[i + 1] == 0xa2))
            return 0;
    return 1;
}

static void setup(void)
{
    if ((uint32_t)__image_end > 0x400000)
        rt_bail("the kernel image ends above 4 MiB");
    for (unsigned i = 0; i < 1024; i++)
        pt0[i] = (i << 12) | PG_U | PG_W | PG_P;       /* 0-4 MiB: the kernel, user-accessible */
    pd[0] = (uint32_t)pt0 | PG_U | PG_W | PG_P;
    for (unsigned i = 1; i < 32; i++)
        pd[i] = (i << 22) | PG_PS | PG_W | PG_P;       /* 4-128 MiB: supervisor only */
    ptx[0] = (uint32_t)code | PG_U | PG_P;             /* X: read-only */
    ptx[1] = (uint32_t)code | PG_U | PG_W | PG_P;      /* Y: writable */
    ptx[2] = (uint32_t)code2 | PG_U | PG_P;            /* X2: read-only */
    ptx[3] = (uint32_t)code2 | PG_U | PG_W | PG_P;     /* Y2: writable */
    pd[X >> 22] = (uint32_t)ptx | PG_U | PG_W | PG_P;
    write_cr4(read_cr4() | CR4_PSE);
    write_cr3((uint32_t)pd);
    write_cr0(read_cr0() | CR0_PG);
    user_setup();
}

/* Runs stub at CPL 3; returns the vector of the fault that ended it, or -1. */
static int run(char *stub)
{
    uf.count = 0;
    user_resume = (uint32_t)user_exit;
    user_enter((void (*)(void))stub);
    return uf.count ? (int)uf.vector : -1;
}

/* `mov $v, %eax; ret` as bytes. */
static const uint8_t *mov_ret(uint32_t v)
{
    static uint8_t b[6];
    b[0] = 0xb8;
    memcpy(b + 1, &v, 4);
    b[5] = 0xc3;
    return b;
}

/* Writes n bytes into the frame: through Y at CPL 3, or by the kernel (identity map). */
static void put(int user, const uint8_t *bytes, uint32_t n)
{
    if (user) {
        u_src = (uint32_t)bytes;
        u_len = n;
        int v = run(u_poke);
        if (v >= 0)
            rt_bail("writing through Y raised vector %d", v);
    } else {
        memcpy(code, bytes, n);
    }
}

/* Clean code at X returns v (under bt86 it runs natively: X is executable again). */
static void runs_clean(int user, uint32_t v, const char *after)
{
    put(user, mov_ret(v), 6);
    u_out[0] = 0;
    int vec = run(u_call);
    if (!ok(vec < 0 && u_out[0] == v, "%s: code written %s runs as written", after, user ? "through Y" : "by the kernel"))
        rt_printf("# vector %d, EAX 0x%08x\n", vec, u_out[0]);
}

/* User code called at target (with EAX = leaf, ECX = 0) answered leaf as the kernel's
 * cpuid. */
static void answers_cpuid(uint32_t target, uint32_t leaf, const char *desc)
{
    uint32_t k[4];
    cpuid(leaf, &k[0], &k[1], &k[2], &k[3]);
    u_leaf = leaf;
    u_target = target;
    memset((void *)u_out, 0, sizeof u_out);
    int vec = run(u_cpuid);
    int same = vec < 0 && u_out[0] == k[0] && u_out[1] == k[1] && u_out[2] == k[2] && u_out[3] == k[3];
    if (!ok(same, "%s: cpuid leaf %u answers as the kernel's", desc, leaf))
        rt_printf("# vector %d; user %08x %08x %08x %08x, kernel %08x %08x %08x %08x\n", vec, u_out[0], u_out[1],
                  u_out[2], u_out[3], k[0], k[1], k[2], k[3]);
}

static void raises_ud(const char *desc)
{
    int vec = run(u_call);
    int good = vec == 6 && uf.eip == X && uf.cs == UCS;
    if (!ok(good, "%s: syscall raises #UD at X", desc))
        rt_printf("# vector %d at EIP 0x%08x CS 0x%x\n", vec, uf.eip, uf.cs);
}

void test_main(void)
{
    setup();
    ok(clean((const uint8_t *)u_stubs) && u_stubs_end - u_stubs < 4096,
       "the user stubs' page holds no syscall, sysenter or cpuid bytes");
    ok(clean(mov_ret(0x11111111)), "nor does the clean code");

    /* Code at X2 that writes cpuid into its own frame through Y2 (not touched before),
     * then calls it. */
    memset(code2, 0x90, 0x80);
    memcpy(code2, t_self, t_self_end - t_self);
    ok(clean(code2), "the self-writing code is clean before it runs");
    answers_cpuid(X2, 1, "cpuid stored by code into its own frame through another mapping");

    for (int user = 1; user >= 0; user--) {
        const char *how = user ? "written through a writable alias" : "written by the kernel";
        char desc[64];
        runs_clean(user, user ? 0x11111111 : 0x55555555, "first");
        put(user, c_cpuid, sizeof c_cpuid);
        rt_format(desc, sizeof desc, "cpuid %s", how);
        answers_cpuid(X, 0, desc);
        answers_cpuid(X, 1, desc);
        runs_clean(user, user ? 0x22222222 : 0x66666666, "after cpuid");
        put(user, c_syscall, sizeof c_syscall);
        rt_format(desc, sizeof desc, "syscall %s", how);
        raises_ud(desc);
        runs_clean(user, user ? 0x33333333 : 0x77777777, "after syscall");
    }

}
