/*
 * rt.h - the shared runtime of the bt86 guest test kernels.
 *
 * A test kernel defines `void test_main(void)`.  The runtime (entry.S, rt.c) boots it from
 * the Multiboot machine state: it loads its own GDT and IDT, sets up a 64 KiB stack,
 * initialises the UART (COM1, polled, FIFOs off), remaps the PICs to vectors 0x20-0x2f
 * with every IRQ masked, sets CR0 = PE|MP|ET|NE and CR4 = 0, then calls test_main().  When
 * test_main() returns, the runtime prints the TAP plan "1..N" and exits through
 * isa-debug-exit.
 *
 * Exit convention (port 0xf4; QEMU's and bt86's host exit status is (value << 1) | 1):
 *   EXIT_DONE   (0, status 1)   every check ran; failures are "not ok" lines, never a
 *                               different status, so that outputs stay comparable;
 *   EXIT_REBOOT (1, status 3)   a triple-fault kernel found itself booted a second time;
 *   EXIT_BAIL   (0x3f, status 127)  the kernel could not go on ("Bail out!" printed).
 *
 * Output is TAP: "ok 3 - desc", "not ok 4 - desc # got 0x... expected 0x...", and the plan
 * "1..N" at the end.  Nothing timing-dependent, host-dependent or architecturally undefined
 * may be printed: the same kernel runs under bt86 and under QEMU and the serial bytes must be
 * identical.  Lines starting with "# " are diagnostics (printed only with "verbose" on the
 * command line, except where a kernel says otherwise).
 *
 * Exceptions: every vector has a stub; the common handler decides from the frame whether
 * the CPU pushed an error code (so a wrong frame shows up as a failed check).  A test
 * provokes a fault inside CATCH(label) ... and reads rt_last (is_trap() checks it), or
 * installs a hook for a vector (rt_set_hook).  Unexpected exceptions bail out.
 *
 * Built with -DHOST (see host/), the unprivileged parts run as a Linux program.
 */
#ifndef BT86_RT_H
#define BT86_RT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* ---- exit ---------------------------------------------------------------------------- */
#define EXIT_DONE   0x00
#define EXIT_REBOOT 0x01
#define EXIT_BAIL   0x3f

void rt_exit(uint8_t value) __attribute__((noreturn));
void rt_bail(const char *fmt, ...) __attribute__((noreturn));

/* ---- GDT layout (entry.S) -------------------------------------------------------------- */
#define SEL_NULL       0x00
#define SEL_KCODE      0x08  /* flat 32-bit code, DPL 0, readable                          */
#define SEL_KDATA      0x10  /* flat 32-bit data, DPL 0, writable                          */
#define SEL_KCODE2     0x18  /* a second flat code descriptor (far jmp/call targets)       */
#define SEL_WRAP       0x20  /* data, base 0xfffff000, limit 4 GiB (base + offset wraps)  */
#define SEL_RODATA     0x28  /* flat data, read-only                                       */
#define SEL_NOTPRESENT 0x30  /* flat data, writable, P = 0                                 */
#define SEL_XOCODE     0x38  /* flat code, execute-only                                    */
#define SEL_DATA3      0x40  /* flat data, writable, DPL 3                                 */
#define SEL_CONFCODE   0x48  /* flat conforming code, readable                             */
#define SEL_SMALL      0x50  /* data, base rt_small_seg, limit 0xffff bytes                */
#define SEL_EXPDOWN    0x58  /* data, expand-down, limit 0x0fff, B = 1                     */
#define SEL_LDT        0x60  /* LDT descriptor: rt_ldt, 4 entries                          */
#define SEL_TSS        0x68  /* 32-bit TSS (available until someone does ltr)             */
#define SEL_CODE3      0x70  /* flat code, DPL 3                                           */
#define SEL_SPARE0     0x78  /* spare entries 0x78..0xf8: null until a test fills them     */
#define GDT_ENTRIES    32    /* limit 0xff                                                 */
/* LDT (TI = 1): index 1 = data base rt_ldt_buf limit 0xfff, index 2 = flat code.          */
#define SEL_LDT_DATA   0x0c
#define SEL_LDT_CODE   0x14

extern uint64_t rt_gdt[GDT_ENTRIES];
extern uint64_t rt_ldt[4];
extern uint8_t rt_ldt_buf[4096];
extern uint8_t rt_small_seg[65536];
extern uint32_t rt_tss[26];
extern uint64_t rt_idt[256];

/* Builds a code/data/system descriptor.  access = P|DPL|S|type byte, flags = G|D/B|L|AVL. */
static inline uint64_t rt_desc(uint32_t base, uint32_t limit, uint8_t access, uint8_t flags)
{
    return (uint64_t)(limit & 0xffff) | ((uint64_t)(base & 0xffffff) << 16) |
           ((uint64_t)access << 40) | ((uint64_t)((limit >> 16) & 0xf) << 48) |
           ((uint64_t)(flags & 0xf) << 52) | ((uint64_t)(base >> 24) << 56);
}
/* Interrupt gate (type 0x8e), trap gate (0x8f); DPL in bits 5-6 of type_attr. */
void rt_idt_set(unsigned vector, uint32_t handler, uint16_t selector, uint8_t type_attr);
/* The address of the runtime's stub for a vector (what rt_idt_set installs by default). */
uint32_t rt_stub(unsigned vector);
#define GATE_INT  0x8e
#define GATE_TRAP 0x8f

/* ---- exceptions and interrupts ------------------------------------------------------- */
/* What the common stub saves.  w[] are the words the CPU pushed: [error code,] EIP, CS,
 * EFLAGS.  Whether an error code is present is decided by looking at the frame (w[1] is a
 * code selector only if there is none), so a wrong frame shows up as a failed check and
 * not as a crash. */
struct trap_frame {
    uint32_t gs, fs, es, ds;
    uint32_t edi, esi, ebp, esp0, ebx, edx, ecx, eax;
    uint32_t vector;   /* out: 4 if an error code must be popped before iret, else 0 */
    uint32_t w[6];     /* from a lower privilege level also ESP and SS */
};

/* The last exception or interrupt the runtime handled (other than IRQs). */
struct trap_info {
    uint32_t count;          /* incremented by every recorded exception            */
    uint32_t vector;
    uint32_t has_err;
    uint32_t err;
    uint32_t eip;            /* EIP pushed by the CPU                              */
    uint32_t cs;
    uint32_t eflags;         /* EFLAGS pushed by the CPU                           */
    uint32_t handler_eflags; /* EFLAGS while the handler ran (IF/TF cleared?)      */
    uint32_t esp;            /* ESP at the interrupted instruction (after popping) */
};
extern volatile struct trap_info rt_last;

/*
 * Catching an exception from inline assembly:
 *
 *     asm volatile(CATCH("2f") "1: ud2\n2:" ...);
 *
 * CATCH(label) stores the resume address; when any exception or software interrupt
 * arrives, the handler records it in rt_last and resumes at `label` (ESP as at the
 * interrupted instruction), then disarms.  UNCATCH disarms when nothing happened.
 */
extern volatile uint32_t rt_resume_eip;
#define CATCH(label) "movl $" label ", rt_resume_eip\n\t"
#define UNCATCH "movl $0, rt_resume_eip\n\t"
static inline void rt_clear_last(void)
{
    rt_last.count = 0; rt_last.vector = 0xffffffff; rt_last.has_err = 0; rt_last.err = 0;
    rt_last.eip = 0; rt_last.cs = 0; rt_last.eflags = 0; rt_last.handler_eflags = 0;
}

/* A hook for one vector: called instead of the default handling (catch / bail).  It may
 * change f->w[] (for example the EIP to resume at). */
typedef void (*rt_hook)(struct trap_frame *f, uint32_t *eip_slot);
void rt_set_hook(unsigned vector, rt_hook hook);

/* IRQs arrive at 0x20 + irq.  Without a hook, an IRQ is counted in rt_irq_count[] and
 * acknowledged with a non-specific EOI. */
extern volatile uint32_t rt_irq_count[16];
#define IRQ_BASE 0x20
void rt_eoi(unsigned irq);

/* ---- port I/O and system registers ----------------------------------------------------- */
static inline void outb(uint16_t port, uint8_t v) { asm volatile("outb %0, %1" :: "a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { asm volatile("outw %0, %1" :: "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { asm volatile("outl %0, %1" :: "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint16_t inw(uint16_t port) { uint16_t v; asm volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint32_t inl(uint16_t port) { uint32_t v; asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline void cli(void) { asm volatile("cli" ::: "memory"); }
static inline void sti(void) { asm volatile("sti" ::: "memory"); }
static inline uint32_t read_eflags(void) { uint32_t f; asm volatile("pushfl; popl %0" : "=r"(f) :: "memory"); return f; }
static inline void write_eflags(uint32_t f) { asm volatile("pushl %0; popfl" :: "r"(f) : "memory", "cc"); }
static inline uint32_t read_cr0(void) { uint32_t v; asm volatile("mov %%cr0, %0" : "=r"(v)); return v; }
static inline uint32_t read_cr2(void) { uint32_t v; asm volatile("mov %%cr2, %0" : "=r"(v)); return v; }
static inline uint32_t read_cr3(void) { uint32_t v; asm volatile("mov %%cr3, %0" : "=r"(v)); return v; }
static inline uint32_t read_cr4(void) { uint32_t v; asm volatile("mov %%cr4, %0" : "=r"(v)); return v; }
static inline void write_cr0(uint32_t v) { asm volatile("mov %0, %%cr0" :: "r"(v) : "memory"); }
static inline void write_cr2(uint32_t v) { asm volatile("mov %0, %%cr2" :: "r"(v) : "memory"); }
static inline void write_cr3(uint32_t v) { asm volatile("mov %0, %%cr3" :: "r"(v) : "memory"); }
static inline void write_cr4(uint32_t v) { asm volatile("mov %0, %%cr4" :: "r"(v) : "memory"); }
static inline uint64_t rdtsc(void) { uint32_t lo, hi; asm volatile("rdtsc" : "=a"(lo), "=d"(hi)); return ((uint64_t)hi << 32) | lo; }
static inline void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d)
{
    asm volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}
#define CR0_PE 0x00000001u
#define CR0_MP 0x00000002u
#define CR0_EM 0x00000004u
#define CR0_TS 0x00000008u
#define CR0_ET 0x00000010u
#define CR0_NE 0x00000020u
#define CR0_WP 0x00010000u
#define CR0_AM 0x00040000u
#define CR0_NW 0x20000000u
#define CR0_CD 0x40000000u
#define CR0_PG 0x80000000u
#define CR4_TSD        0x004u
#define CR4_DE         0x008u
#define CR4_PSE        0x010u
#define CR4_PAE        0x020u
#define CR4_PGE        0x080u
#define CR4_OSFXSR     0x200u
#define CR4_OSXMMEXCPT 0x400u
#define FL_CF 0x0001u
#define FL_PF 0x0004u
#define FL_AF 0x0010u
#define FL_ZF 0x0040u
#define FL_SF 0x0080u
#define FL_TF 0x0100u
#define FL_IF 0x0200u
#define FL_DF 0x0400u
#define FL_OF 0x0800u
#define FL_IOPL 0x3000u
#define FL_NT 0x4000u
#define FL_AC 0x40000u
#define FL_ID 0x200000u
#define FL_ARITH (FL_CF | FL_PF | FL_AF | FL_ZF | FL_SF | FL_OF)

/* Enables x87 + SSE the way an OS does: CR0.EM = 0, CR0.MP = 1, CR0.TS = 0,
 * CR4.OSFXSR = CR4.OSXMMEXCPT = 1, then fninit and MXCSR = 0x1f80. */
void rt_enable_fpu_sse(void);

/* ---- Multiboot ------------------------------------------------------------------------- */
extern uint32_t rt_mb_magic;      /* EAX at entry */
extern uint32_t rt_mb_info;       /* EBX at entry */
extern uint32_t rt_entry_eflags;  /* EFLAGS at entry */
extern uint32_t rt_entry_cr0;     /* CR0 at entry */
extern char __image_start[], __image_end[];   /* the kernel image, bss included */
/* The command line from the Multiboot info ("" if none). */
const char *rt_cmdline(void);
/* True if the command line has `word` as a whole blank-separated word. */
int rt_cmdline_has(const char *word);
/* The decimal number after the first `prefix` ("keys=") on the command line (0 if none). */
uint32_t rt_cmdline_number(const char *prefix);
/* "verbose" on the command line: kernels print "# ..." diagnostics. */
extern int rt_verbose;

/* ---- output ------------------------------------------------------------------------------ */
void rt_putc(char c);
void rt_puts(const char *s);
int rt_vformat(char *buf, size_t size, const char *fmt, va_list ap);
int rt_format(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* %s %c %d %u %x %X with width/zero pad, %llx for 64-bit hex, %%. */
void rt_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "# ..." + newline only when rt_verbose. */
void rt_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- TAP --------------------------------------------------------------------------------- */
void tap_plan(unsigned n);                     /* "1..n"                                   */
void tap_ok(unsigned n, const char *desc);      /* "ok n - desc"                            */
void tap_not_ok(unsigned n, const char *desc, uint32_t got, uint32_t expected);
                                                /* "not ok n - desc # got X expected Y"     */
/* Auto-numbered checks; each returns 1 if it passed.  The description is a format. */
int ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int is(uint32_t got, uint32_t expected, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int is64(uint64_t got, uint64_t expected, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int is_mem(const void *got, const void *expected, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Checks rt_last against one expected exception: vector, whether an error code was pushed
 * (and its value), and the EIP in the frame (~0u: any).  vector ~0u expects none at all. */
int is_trap(uint32_t vector, int has_err, uint32_t err, uint32_t eip, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
#define NO_TRAP 0xffffffffu
/* The number of checks so far, and of failed ones. */
extern unsigned tap_count, tap_failed;
/* Ends the run: prints "1..N" (unless tap_plan was called before) and exits EXIT_DONE. */
void tap_done(void) __attribute__((noreturn));

/* A pointer to a fixed (physical, with paging off) address that the compiler cannot reason
 * about (GCC turns stores through a constant null pointer into ud2). */
static inline volatile uint8_t *PHYS(uint32_t addr)
{
    asm("" : "+r"(addr));
    return (volatile uint8_t *)addr;
}

/* ---- small helpers ----------------------------------------------------------------------- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);
/* FNV-1a, for sweeps whose full output would be long: the kernels print "ok" against a hash
 * recorded on real hardware (and checked under QEMU). */
#define FNV_INIT 0x811c9dc5u
static inline uint32_t fnv32(uint32_t h, uint32_t v)
{
    for (int i = 0; i < 4; i++) { h ^= (v >> (8 * i)) & 0xff; h *= 0x01000193u; }
    return h;
}

/*
 * rt_exec: runs a small code stub with given registers and flags and captures what it
 * leaves in them.  The stub is called with EAX..EDI, EBP and the arithmetic flags + DF from
 * `in` (IF and the rest are kept) and must return with `ret`, with ESP balanced.
 */
struct regs {
    uint32_t eax, ebx, ecx, edx, esi, edi, ebp, eflags;
};
void rt_exec(const struct regs *in, struct regs *out, void (*stub)(void));

/* The kernel's entry point. */
void test_main(void);

#endif
