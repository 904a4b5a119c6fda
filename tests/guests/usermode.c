/*
 * usermode - code at CPL 3 and the transitions to and from it.
 *
 * iret to CPL 3 (CS/SS with RPL 3), int 0x80 through a DPL 3 gate back to CPL 0 on the
 * TSS's SS0:ESP0 stack (the pushed SS:ESP are the user's), iret back; int n through a DPL 0
 * gate from CPL 3 raises #GP(n*8+2), int3 through a DPL 3 gate works; sensitive and
 * privileged instructions at CPL 3 with IOPL 0: cli, sti, hlt, in, out, ins, mov to/from
 * CR0, lgdt, lidt, ltr, lldt, invlpg, wbinvd, rdmsr, wrmsr, clts, mov to DR7 raise #GP(0);
 * popf changes neither IF nor IOPL there, silently; pushf shows them; rdtsc works unless
 * CR4.TSD; smsw, sgdt, sidt, str, sldt, mov from segment registers work (no UMIP); segment
 * loads of DPL 0 selectors raise #GP, lar/lsl/verr/verw see only what CPL 3 may see.
 * With IOPL 3: cli/sti and port I/O work.  With IOPL 0 and an I/O permission bitmap in the
 * TSS: only the ports it allows.  sysenter to CPL 0 and sysexit back (CPUID SEP).
 */
#include "rt.h"

/* GDT entries for sysenter/sysexit: kernel code, kernel data, user code, user data. */
#define SEL_SE_KCODE 0x80
#define SEL_SE_KDATA 0x88
#define SEL_UCODE 0x90
#define SEL_UDATA 0x98
#define UCS (SEL_UCODE | 3)
#define UDS (SEL_UDATA | 3)
#define SEL_IOTSS 0xa0

static uint8_t kstack[8192] __attribute__((aligned(16)));
static uint8_t ustack[8192] __attribute__((aligned(16)));

/* ---- entering and leaving CPL 3 ---------------------------------------------------------- */
uint32_t saved_kernel_esp, user_eflags = 0x202, user_resume;
extern uint32_t user_enter(void (*entry)(void));
asm(".pushsection .text\n"
    "user_enter:\n"
    "\tpush %ebp\n\tpush %ebx\n\tpush %esi\n\tpush %edi\n"
    "\tmovl 20(%esp), %eax\n"
    "\tmovl %esp, saved_kernel_esp\n"
    "\tmovw $0x9b, %cx\n"                     /* UDS */
    "\tmovw %cx, %ds\n\tmovw %cx, %es\n\tmovw %cx, %fs\n\tmovw %cx, %gs\n"
    "\tpushl $0x9b\n"                         /* SS */
    "\tpushl $ustack + 8192 - 16\n"           /* ESP: user_exit below is returned to */
    "\tpushl user_eflags\n"
    "\tpushl $0x93\n"                         /* CS = UCS */
    "\tpushl %eax\n"
    "\tmovl $user_exit, ustack + 8192 - 16\n" /* the entry function returns here */
    "\tiretl\n"
    "user_exit:\n"                            /* CPL 3: leave through int 0x80, EAX = 0 */
    "\txorl %eax, %eax\n"
    "\tint $0x80\n"
    "\tud2\n"
    ".globl user_return\n"
    "user_return:\n"                          /* CPL 0 again */
    "\tmovw $0x10, %cx\n"
    "\tmovw %cx, %ds\n\tmovw %cx, %es\n\tmovw %cx, %fs\n\tmovw %cx, %gs\n"
    "\tmovl saved_kernel_esp, %esp\n"
    "\tpop %edi\n\tpop %esi\n\tpop %ebx\n\tpop %ebp\n"
    "\tret\n"
    ".popsection\n");
extern char user_return[];

/* What CPL 3 saw, recorded for the kernel to report. */
struct fault { uint32_t count, vector, err, eip; };
static volatile struct fault uf;
static volatile uint32_t r[64];
static volatile uint32_t sc_frame_addr, sc_user_esp, sc_user_ss, sc_cs, sc_eflags;

static void on_int80(struct trap_frame *f, uint32_t *eip)
{
    if (f->eax == 0) {                        /* exit: iret to user_return at CPL 0 */
        eip[0] = (uint32_t)user_return;
        eip[1] = SEL_KCODE;
        eip[2] = 0x002;
        return;
    }
    sc_frame_addr = (uint32_t)eip;
    sc_cs = eip[1];
    sc_eflags = eip[2];
    sc_user_esp = eip[3];
    sc_user_ss = eip[4];
    f->eax = f->ebx + 1;                      /* a "system call" result */
}

/* A fault at CPL 3: record it and resume at user_resume. */
static void on_user_fault(struct trap_frame *f, uint32_t *eip)
{
    uf.count++;
    uf.eip = eip[0];
    uf.err = (eip == &f->w[1]) ? f->w[0] : 0;
    if ((eip[1] & 3) != 3 || !user_resume)
        rt_bail("fault at CPL %u, EIP 0x%08x", eip[1] & 3, eip[0]);
    eip[0] = user_resume;
    user_resume = 0;
}
static void on_fault_vec(unsigned v, struct trap_frame *f, uint32_t *eip) { uf.vector = v; on_user_fault(f, eip); }
#define HOOK(v) static void on_fault_##v(struct trap_frame *f, uint32_t *e) { on_fault_vec(v, f, e); }
HOOK(0) HOOK(3) HOOK(6) HOOK(13) HOOK(14)

/* In user code: run `insn`; afterwards uf says whether it faulted. */
#define UTRY(insn, ...)                                                                      \
    do {                                                                                     \
        uf.count = 0; uf.vector = 0xff; uf.err = 0xffff;                                     \
        asm volatile("movl $1f, user_resume\n\t" insn "\n1:\tmovl $0, user_resume"           \
                     __VA_ARGS__);                                                           \
    } while (0)
#define REC_FAULT(i) (r[i] = uf.count ? (uf.vector << 16) | (uf.err & 0xffff) : 0xffffffff)
#define GP0 (13u << 16)

/* ---- the user-mode programs ------------------------------------------------------------------ */
static void user_basic(void)
{
    uint32_t v;
    asm volatile("movl %%cs, %0" : "=r"(v)); r[0] = v;
    asm volatile("movl %%ss, %0" : "=r"(v)); r[1] = v;
    asm volatile("pushfl; popl %0" : "=r"(v)); r[2] = v;
    /* a system call */
    uint32_t a;
    asm volatile("int $0x80" : "=a"(a) : "a"(1), "b"(41) : "memory");
    r[3] = a;
    /* popf cannot change IF or IOPL at CPL 3 with IOPL 0 */
    asm volatile("pushl $0x3002; popfl; pushfl; popl %0" : "=r"(v) :: "cc");
    r[4] = v;
    asm volatile("pushl $0x0ad7; popfl; pushfl; popl %0; pushl $0x202; popfl" : "=r"(v) :: "cc");
    r[5] = v;
}

static void user_privileged(void)
{
    unsigned i = 8;
    UTRY("cli", ::: "memory"); REC_FAULT(i); i++;
    UTRY("sti", ::: "memory"); REC_FAULT(i); i++;
    UTRY("hlt", ::: "memory"); REC_FAULT(i); i++;
    UTRY("inb $0x80, %%al", ::: "eax", "memory"); REC_FAULT(i); i++;
    UTRY("outb %%al, $0x80", ::: "memory"); REC_FAULT(i); i++;
    UTRY("movw $0x3ff, %%dx; insb", :: "D"(ustack) : "edx", "memory"); REC_FAULT(i); i++;
    UTRY("movl %%cr0, %%eax", ::: "eax", "memory"); REC_FAULT(i); i++;
    UTRY("movl %%eax, %%cr0", :: "a"(0x33) : "memory"); REC_FAULT(i); i++;
    UTRY("lgdt (%%esp)", ::: "memory"); REC_FAULT(i); i++;
    UTRY("lidt (%%esp)", ::: "memory"); REC_FAULT(i); i++;
    UTRY("ltr %%ax", :: "a"(SEL_TSS) : "memory"); REC_FAULT(i); i++;
    UTRY("lldt %%ax", :: "a"(0) : "memory"); REC_FAULT(i); i++;
    UTRY("invlpg (%%esp)", ::: "memory"); REC_FAULT(i); i++;
    UTRY("wbinvd", ::: "memory"); REC_FAULT(i); i++;
    UTRY("rdmsr", :: "c"(0x174) : "eax", "edx", "memory"); REC_FAULT(i); i++;
    UTRY("wrmsr", :: "c"(0x174), "a"(0), "d"(0) : "memory"); REC_FAULT(i); i++;
    UTRY("clts", ::: "memory"); REC_FAULT(i); i++;
    UTRY("movl %%eax, %%dr7", :: "a"(0x400) : "memory"); REC_FAULT(i); i++;
    UTRY("int $0x30", ::: "memory"); REC_FAULT(i); i++;              /* DPL 0 gate */
    UTRY("int3", ::: "memory"); REC_FAULT(i); i++;                   /* DPL 3 gate: #BP */
    UTRY("movw %%ax, %%ds", :: "a"(SEL_KDATA) : "memory"); REC_FAULT(i); i++;
    UTRY("movw %%ax, %%es", :: "a"(SEL_DATA3 | 3) : "memory"); REC_FAULT(i); i++;   /* fine */
    UTRY("movw %%ax, %%ss", :: "a"(SEL_KDATA | 3) : "memory"); REC_FAULT(i); i++;
    asm volatile("movw %w0, %%es" :: "r"(UDS));
    /* allowed */
    uint32_t lo, hi;
    UTRY("rdtsc", : "=a"(lo), "=d"(hi) :: "memory"); REC_FAULT(i); i++;
    uint32_t m = 0;
    UTRY("smsw %0", : "=r"(m) :: "memory"); REC_FAULT(i); i++;
    r[40] = m & 0xffff;
    struct { uint16_t pad, limit; uint32_t base; } __attribute__((packed)) d = { 0, 0, 0 };
    UTRY("sgdt %0", : "=m"(d.limit) :: "memory"); REC_FAULT(i); i++;
    r[41] = d.limit;
    uint32_t t = 0xffffffff;
    UTRY("str %0", : "+r"(t) :: "memory"); REC_FAULT(i); i++;
    r[42] = t;
    uint8_t zr, zw;
    asm volatile("verr %w2; setz %0; verw %w2; setz %1" : "=q"(zr), "=q"(zw) : "r"(SEL_KDATA) : "cc");
    r[43] = zr | (zw << 1);
    asm volatile("verr %w2; setz %0; verw %w2; setz %1" : "=q"(zr), "=q"(zw) : "r"(UDS) : "cc");
    r[44] = zr | (zw << 1);
    uint32_t ar = 0x12345678;
    asm volatile("lar %1, %0" : "+r"(ar) : "r"(SEL_KDATA) : "cc");
    r[45] = ar;
}

static void user_iopl3(void)
{
    uint32_t v;
    UTRY("cli; sti", ::: "memory"); REC_FAULT(48);
    outb(0x3ff, 0x6b);
    r[49] = inb(0x3ff);
    asm volatile("pushfl; popl %0" : "=r"(v));
    r[50] = v;
}

static void user_iobitmap(void)
{
    UTRY("inb %%dx, %%al", :: "d"(0x3ff) : "eax", "memory"); REC_FAULT(52);
    UTRY("inb %%dx, %%al", :: "d"(0x3fe) : "eax", "memory"); REC_FAULT(53);
    UTRY("outb %%al, %%dx", :: "d"(0x3ff), "a"(0x7c) : "memory"); REC_FAULT(54);
    UTRY("inw %%dx, %%ax", :: "d"(0x3fe) : "eax", "memory"); REC_FAULT(55);   /* 0x3fe denied */
    UTRY("inb %%dx, %%al", :: "d"(0x80) : "eax", "memory"); REC_FAULT(56);
}

/* sysenter: EIP/ESP from the MSRs, CS/SS from SYSENTER_CS; sysexit: EIP = EDX, ESP = ECX */
uint32_t se_cs, se_ss, se_esp_seen;
extern void sysenter_target(void);
asm(".pushsection .text\n"
    "sysenter_target:\n"
    "\tmovl %cs, %eax\n\tmovl %eax, se_cs\n"
    "\tmovl %ss, %eax\n\tmovl %eax, se_ss\n"
    "\tmovl %esp, se_esp_seen\n"
    "\tsysexit\n"
    ".popsection\n");
static void user_sysenter(void)
{
    uint32_t cs, ss;
    asm volatile("movl %%esp, %%ecx\n\tmovl $1f, %%edx\n\tsysenter\n1:\tmovl %%cs, %0\n\tmovl %%ss, %1"
                 : "=r"(cs), "=r"(ss) :: "ecx", "edx", "eax", "memory");
    r[60] = cs;
    r[61] = ss;
}

static void check_fault(unsigned i, uint32_t want, const char *what)
{
    if (want == 0xffffffff)
        is(r[i], want, "CPL 3: %s works", what);
    else
        is(r[i], want, "CPL 3: %s raises vector %u (error 0x%x)", what, want >> 16, want & 0xffff);
}

void test_main(void)
{
    rt_gdt[SEL_SE_KCODE >> 3] = rt_desc(0, 0xfffff, 0x9b, 0xc);
    rt_gdt[SEL_SE_KDATA >> 3] = rt_desc(0, 0xfffff, 0x93, 0xc);
    rt_gdt[SEL_UCODE >> 3] = rt_desc(0, 0xfffff, 0xfb, 0xc);
    rt_gdt[SEL_UDATA >> 3] = rt_desc(0, 0xfffff, 0xf3, 0xc);
    rt_tss[1] = (uint32_t)kstack + sizeof kstack;
    rt_tss[2] = SEL_KDATA;
    asm volatile("ltr %w0" :: "r"(SEL_TSS));
    rt_idt_set(0x80, rt_stub(0x80), SEL_KCODE, GATE_INT | 0x60);   /* DPL 3 */
    rt_idt_set(3, rt_stub(3), SEL_KCODE, GATE_INT | 0x60);
    rt_set_hook(0x80, on_int80);
    rt_set_hook(0, on_fault_0);
    rt_set_hook(3, on_fault_3);
    rt_set_hook(6, on_fault_6);
    rt_set_hook(13, on_fault_13);
    rt_set_hook(14, on_fault_14);

    user_enter(user_basic);
    is(r[0], UCS, "CPL 3: CS has RPL 3");
    is(r[1], UDS, "CPL 3: SS has RPL 3");
    is(r[2] & (FL_IF | FL_IOPL), FL_IF, "CPL 3: pushf shows IF = 1, IOPL = 0");
    is(r[3], 42, "int 0x80 through a DPL 3 gate and back");
    ok(sc_frame_addr >= (uint32_t)kstack && sc_frame_addr < (uint32_t)kstack + sizeof kstack,
       "the handler ran on the TSS's ESP0 stack");
    ok(sc_cs == UCS && sc_user_ss == UDS && sc_user_esp > (uint32_t)ustack &&
       sc_user_esp <= (uint32_t)ustack + sizeof ustack, "the frame holds the user's CS, SS and ESP");
    is(r[4] & (FL_IF | FL_IOPL), FL_IF, "CPL 3, IOPL 0: popf changes neither IF nor IOPL");
    is(r[5] & FL_ARITH, 0x8d5, "CPL 3: popf changes the arithmetic flags");

    user_enter(user_privileged);
    static const char *names[] = {
        "cli", "sti", "hlt", "in", "out", "ins", "mov from cr0", "mov to cr0", "lgdt", "lidt",
        "ltr", "lldt", "invlpg", "wbinvd", "rdmsr", "wrmsr", "clts", "mov to dr7",
        "int 0x30 (DPL 0 gate)", "int3 (DPL 3 gate)", "mov ds, DPL 0 selector",
        "mov es, DPL 3 data", "mov ss, RPL 3 on DPL 0", "rdtsc", "smsw", "sgdt", "str",
    };
    static const uint32_t want[] = {
        GP0, GP0, GP0, GP0, GP0, GP0, GP0, GP0, GP0, GP0, GP0, GP0, GP0, GP0, GP0, GP0, GP0,
        GP0, (13u << 16) | (0x30 * 8 + 2), (3u << 16), (13u << 16) | SEL_KDATA, 0xffffffff,
        (13u << 16) | SEL_KDATA, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
    };
    for (unsigned i = 0; i < sizeof want / sizeof want[0]; i++)
        check_fault(8 + i, want[i], names[i]);
    is(r[40], 0x0033, "CPL 3: smsw reads CR0's low bits");
    is(r[41], GDT_ENTRIES * 8 - 1, "CPL 3: sgdt reads the GDT limit");
    is(r[42], SEL_TSS, "CPL 3: str reads TR");
    is(r[43], 0, "CPL 3: verr/verw of a DPL 0 segment: ZF = 0");
    is(r[44], 3, "CPL 3: verr/verw of a DPL 3 data segment: ZF = 1");
    is(r[45], 0x12345678, "CPL 3: lar of a DPL 0 segment fails, destination kept");

    write_cr4(read_cr4() | CR4_TSD);
    user_enter(user_privileged);
    check_fault(8 + 23, GP0, "rdtsc with CR4.TSD = 1");
    write_cr4(read_cr4() & ~CR4_TSD);

    user_eflags = 0x3202;
    user_enter(user_iopl3);
    user_eflags = 0x202;
    check_fault(48, 0xffffffff, "cli; sti with IOPL 3");
    is(r[49], 0x6b, "CPL 3, IOPL 3: port I/O works");
    is(r[50] & (FL_IF | FL_IOPL), FL_IF | FL_IOPL, "CPL 3, IOPL 3: pushf shows IOPL 3 and IF");

    /* a TSS with an I/O permission bitmap allowing only port 0x3ff */
    static uint8_t iotss[104 + 128 + 1] __attribute__((aligned(8)));
    memcpy(iotss, rt_tss, 104);
    *(uint16_t *)(iotss + 102) = 104;
    memset(iotss + 104, 0xff, 129);
    iotss[104 + 0x3ff / 8] &= ~(1u << (0x3ff % 8));
    rt_gdt[SEL_IOTSS >> 3] = rt_desc((uint32_t)iotss, sizeof iotss - 1, 0x89, 0);
    asm volatile("ltr %w0" :: "r"(SEL_IOTSS));
    user_enter(user_iobitmap);
    check_fault(52, 0xffffffff, "in from 0x3ff (allowed by the I/O bitmap)");
    check_fault(53, GP0, "in from 0x3fe (denied by the I/O bitmap)");
    check_fault(54, 0xffffffff, "out to 0x3ff (allowed by the I/O bitmap)");
    check_fault(55, GP0, "inw from 0x3fe (one of its ports denied)");
    check_fault(56, GP0, "in from 0x80 (denied by the I/O bitmap)");
    is(inb(0x3ff), 0x7c, "the allowed out reached the port");

    uint32_t a, b, c, d;
    cpuid(1, &a, &b, &c, &d);
    if (d & (1u << 11)) {
        asm volatile("wrmsr" :: "c"(0x174), "a"(SEL_SE_KCODE), "d"(0));
        asm volatile("wrmsr" :: "c"(0x175), "a"((uint32_t)kstack + 4096), "d"(0));
        asm volatile("wrmsr" :: "c"(0x176), "a"((uint32_t)sysenter_target), "d"(0));
        user_enter(user_sysenter);
        ok(se_cs == SEL_SE_KCODE && se_ss == SEL_SE_KDATA && se_esp_seen == (uint32_t)kstack + 4096,
           "sysenter: CS, SS and ESP from the SYSENTER MSRs");
        ok(r[60] == UCS && r[61] == UDS, "sysexit: back at CPL 3 with CS/SS = SYSENTER_CS + 16/24, RPL 3");
    } else {
        ok(1, "sysenter: CS, SS and ESP from the SYSENTER MSRs");
        ok(1, "sysexit: back at CPL 3 with CS/SS = SYSENTER_CS + 16/24, RPL 3");
    }
    ok(1, "back at CPL 0");
}
