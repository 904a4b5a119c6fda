/*
 * rt.c - the shared runtime of the bt86 guest test kernels: serial output, formatting,
 * TAP, the IDT and the common exception/interrupt handler, Multiboot access.
 * See rt.h for the conventions.
 */
#include "rt.h"

#define COM1 0x3f8

uint32_t rt_mb_magic, rt_mb_info;
int rt_verbose;
unsigned tap_count, tap_failed;
static int tap_planned;

volatile struct trap_info rt_last;
volatile uint32_t rt_resume_eip;
volatile uint32_t rt_irq_count[16];
static rt_hook hooks[256];

uint64_t rt_idt[256] __attribute__((aligned(8)));
uint32_t rt_tss[26] __attribute__((aligned(8)));
uint8_t rt_ldt_buf[4096] __attribute__((aligned(4096)));
uint8_t rt_small_seg[65536] __attribute__((aligned(4096)));
extern char rt_stubs[];

/* ---- small libc ---------------------------------------------------------------------- */
void *memset(void *d, int c, size_t n)
{
    void *r = d;
    asm volatile("cld; rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    return r;
}
void *memcpy(void *d, const void *s, size_t n)
{
    void *r = d;
    asm volatile("cld; rep movsb" : "+D"(d), "+S"(s), "+c"(n) :: "memory");
    return r;
}
int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *p = a, *q = b;
    for (size_t i = 0; i < n; i++)
        if (p[i] != q[i])
            return p[i] < q[i] ? -1 : 1;
    return 0;
}
size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}
int strncmp(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i])
            return (uint8_t)a[i] < (uint8_t)b[i] ? -1 : 1;
        if (!a[i])
            return 0;
    }
    return 0;
}

/* ---- serial ---------------------------------------------------------------------------- */
static void serial_init(void)
{
    outb(COM1 + 1, 0x00);   /* IER: no interrupts */
    outb(COM1 + 3, 0x80);   /* LCR: DLAB */
    outb(COM1 + 0, 0x01);   /* divisor 1: 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);   /* LCR: 8N1 */
    outb(COM1 + 2, 0x00);   /* FCR: FIFOs off (16450 mode) */
    outb(COM1 + 4, 0x03);   /* MCR: DTR | RTS */
}

#ifndef HOST
void rt_putc(char c)
{
    while (!(inb(COM1 + 5) & 0x20))   /* LSR.THRE */
        ;
    outb(COM1, (uint8_t)c);
}

void rt_puts(const char *s)
{
    while (*s)
        rt_putc(*s++);
}
#else /* HOST: see host/host.c */
extern int write(int fd, const void *buf, unsigned int n);
extern void _exit(int status) __attribute__((noreturn));
void rt_putc(char c) { write(1, &c, 1); }
void rt_puts(const char *s) { write(1, s, strlen(s)); }
#endif

/* ---- formatting -------------------------------------------------------------------------- */
struct out {
    char *buf;
    size_t size, len;
};

static void put(struct out *o, char c)
{
    if (o->len + 1 < o->size)
        o->buf[o->len] = c;
    o->len++;
}

static void put_num(struct out *o, uint64_t v, unsigned base, int width, char pad, int neg, int upper)
{
    char tmp[24];
    int n = 0;
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    if (base == 16) {
        do { tmp[n++] = digits[v & 15]; v >>= 4; } while (v);
    } else {
        uint32_t x = (uint32_t)v;   /* decimal is only used for 32-bit values */
        do { tmp[n++] = digits[x % 10]; x /= 10; } while (x);
    }
    if (neg)
        tmp[n++] = '-';
    while (n < width--)
        put(o, pad);
    while (n)
        put(o, tmp[--n]);
}

int rt_vformat(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct out o = { buf, size, 0 };
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            put(&o, *fmt);
            continue;
        }
        fmt++;
        char pad = ' ';
        int width = 0, longs = 0;
        if (*fmt == '0') {
            pad = '0';
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l') {
            longs++;
            fmt++;
        }
        switch (*fmt) {
        case 'd': {
            int32_t v = va_arg(ap, int32_t);
            put_num(&o, v < 0 ? (uint32_t)-v : (uint32_t)v, 10, width, pad, v < 0, 0);
            break;
        }
        case 'u':
            put_num(&o, va_arg(ap, uint32_t), 10, width, pad, 0, 0);
            break;
        case 'x':
        case 'X':
            if (longs >= 2)
                put_num(&o, va_arg(ap, uint64_t), 16, width, pad, 0, *fmt == 'X');
            else
                put_num(&o, va_arg(ap, uint32_t), 16, width, pad, 0, *fmt == 'X');
            break;
        case 'c':
            put(&o, (char)va_arg(ap, int));
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            int n = (int)strlen(s);
            while (n < width--)
                put(&o, ' ');
            while (*s)
                put(&o, *s++);
            break;
        }
        case '%':
            put(&o, '%');
            break;
        default:
            put(&o, '%');
            put(&o, *fmt);
            break;
        }
    }
    if (o.size)
        o.buf[o.len < o.size ? o.len : o.size - 1] = 0;
    return (int)o.len;
}

int rt_format(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = rt_vformat(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

void rt_printf(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    rt_vformat(buf, sizeof buf, fmt, ap);
    va_end(ap);
    rt_puts(buf);
}

void rt_diag(const char *fmt, ...)
{
    if (!rt_verbose)
        return;
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    rt_vformat(buf, sizeof buf, fmt, ap);
    va_end(ap);
    rt_puts("# ");
    rt_puts(buf);
    rt_putc('\n');
}

/* ---- exit ------------------------------------------------------------------------------- */
void rt_exit(uint8_t value)
{
#ifdef HOST
    _exit(value);
#endif
    outb(0xf4, value);
    /* isa-debug-exit stops the machine; if we get here, it does not exist. */
    rt_puts("Bail out! port 0xf4 did not stop the machine\n");
    for (;;)
        asm volatile("cli; hlt");
}

void rt_bail(const char *fmt, ...)
{
    char buf[200];
    va_list ap;
    va_start(ap, fmt);
    rt_vformat(buf, sizeof buf, fmt, ap);
    va_end(ap);
    rt_puts("Bail out! ");
    rt_puts(buf);
    rt_putc('\n');
    rt_exit(EXIT_BAIL);
}

/* ---- TAP ---------------------------------------------------------------------------------- */
void tap_plan(unsigned n)
{
    tap_planned = 1;
    rt_printf("1..%u\n", n);
}

void tap_ok(unsigned n, const char *desc)
{
    rt_printf("ok %u - %s\n", n, desc);
}

void tap_not_ok(unsigned n, const char *desc, uint32_t got, uint32_t expected)
{
    rt_printf("not ok %u - %s # got 0x%08x expected 0x%08x\n", n, desc, got, expected);
}

static int report(int pass, const char *fmt, va_list ap, const char *why)
{
    char desc[160];
    rt_vformat(desc, sizeof desc, fmt, ap);
    tap_count++;
    if (pass) {
        tap_ok(tap_count, desc);
    } else {
        tap_failed++;
        rt_printf("not ok %u - %s%s\n", tap_count, desc, why);
    }
    return pass;
}

int ok(int cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = report(cond, fmt, ap, "");
    va_end(ap);
    return r;
}

int is(uint32_t got, uint32_t expected, const char *fmt, ...)
{
    char why[64];
    rt_format(why, sizeof why, " # got 0x%08x expected 0x%08x", got, expected);
    va_list ap;
    va_start(ap, fmt);
    int r = report(got == expected, fmt, ap, why);
    va_end(ap);
    return r;
}

int is64(uint64_t got, uint64_t expected, const char *fmt, ...)
{
    char why[80];
    rt_format(why, sizeof why, " # got 0x%016llx expected 0x%016llx", got, expected);
    va_list ap;
    va_start(ap, fmt);
    int r = report(got == expected, fmt, ap, why);
    va_end(ap);
    return r;
}

int is_mem(const void *got, const void *expected, size_t len, const char *fmt, ...)
{
    const uint8_t *g = got, *e = expected;
    size_t i = 0;
    while (i < len && g[i] == e[i])
        i++;
    char why[80] = "";
    if (i < len)
        rt_format(why, sizeof why, " # byte %u: got 0x%02x expected 0x%02x", (uint32_t)i, g[i], e[i]);
    va_list ap;
    va_start(ap, fmt);
    int r = report(i == len, fmt, ap, why);
    va_end(ap);
    return r;
}

int is_trap(uint32_t vector, int has_err, uint32_t err, uint32_t eip, const char *fmt, ...)
{
    int pass;
    char why[120];
    if (vector == NO_TRAP) {
        pass = rt_last.count == 0;
        rt_format(why, sizeof why, " # got vector %u expected none", rt_last.vector);
    } else {
        pass = rt_last.count == 1 && rt_last.vector == vector && rt_last.has_err == (uint32_t)has_err &&
               (!has_err || rt_last.err == err) && (eip == ~0u || rt_last.eip == eip);
        if (!rt_last.count)
            rt_format(why, sizeof why, " # got no exception expected vector %u", vector);
        else
            rt_format(why, sizeof why,
                      " # got %u x vector %u %s0x%x at 0x%08x expected vector %u %s0x%x at 0x%08x",
                      rt_last.count, rt_last.vector, rt_last.has_err ? "error " : "no error, word ",
                      rt_last.err, rt_last.eip, vector, has_err ? "error " : "no error ", err, eip);
    }
    va_list ap;
    va_start(ap, fmt);
    int r = report(pass, fmt, ap, why);
    va_end(ap);
    return r;
}

void tap_done(void)
{
    if (!tap_planned)
        tap_plan(tap_count);
    rt_exit(EXIT_DONE);
}

/* ---- IDT and traps -------------------------------------------------------------------------- */
#ifndef HOST
uint32_t rt_stub(unsigned vector)
{
    return (uint32_t)rt_stubs + 16 * vector;
}

void rt_idt_set(unsigned vector, uint32_t handler, uint16_t selector, uint8_t type_attr)
{
    rt_idt[vector] = (uint64_t)(handler & 0xffff) | ((uint64_t)selector << 16) |
                     ((uint64_t)type_attr << 40) | ((uint64_t)(handler >> 16) << 48);
}

void rt_set_hook(unsigned vector, rt_hook hook)
{
    hooks[vector & 255] = hook;
}

void rt_eoi(unsigned irq)
{
    if (irq >= 8)
        outb(0xa0, 0x20);
    outb(0x20, 0x20);
}

/* A selector names a code segment (so the frame word holding it is CS, not an EIP). */
static int is_code_selector(uint32_t sel)
{
    if (sel == 0 || sel > 0xffff)
        return 0;
    uint64_t d;
    if (sel & 4) {
        if ((sel >> 3) >= 4)
            return 0;
        d = rt_ldt[sel >> 3];
    } else {
        if ((sel >> 3) >= GDT_ENTRIES)
            return 0;
        d = rt_gdt[sel >> 3];
    }
    uint8_t access = (uint8_t)(d >> 40);
    return (access & 0x18) == 0x18;   /* S = 1, code */
}

void rt_trap(struct trap_frame *f)
{
    uint32_t v = f->vector;
    int has_err = !is_code_selector(f->w[1]);
    uint32_t *eip_slot = &f->w[has_err ? 1 : 0];
    f->vector = has_err ? 4 : 0;

    if (v >= IRQ_BASE && v < IRQ_BASE + 16 && !hooks[v]) {
        rt_irq_count[v - IRQ_BASE]++;
        rt_eoi(v - IRQ_BASE);
        return;
    }
    if (hooks[v]) {
        hooks[v](f, eip_slot);
        return;
    }
    if (rt_resume_eip) {
        rt_last.count++;
        rt_last.vector = v;
        rt_last.has_err = has_err;
        rt_last.err = has_err ? f->w[0] : 0;
        rt_last.eip = eip_slot[0];
        rt_last.cs = eip_slot[1];
        rt_last.eflags = eip_slot[2];
        rt_last.handler_eflags = read_eflags();
        rt_last.esp = (uint32_t)(eip_slot + 3);
        eip_slot[0] = rt_resume_eip;
        rt_resume_eip = 0;
        return;
    }
    rt_bail("unexpected vector %u (error code %s0x%x) at EIP 0x%08x", v,
            has_err ? "" : "none, word ", f->w[0], eip_slot[0]);
}

#endif /* !HOST */

/* ---- FPU / SSE ------------------------------------------------------------------------------ */
void rt_enable_fpu_sse(void)
{
#ifdef HOST
    asm volatile("fninit");
    return;
#endif
    write_cr0((read_cr0() & ~(CR0_EM | CR0_TS)) | CR0_MP | CR0_NE);
    write_cr4(read_cr4() | CR4_OSFXSR | CR4_OSXMMEXCPT);
    uint32_t mxcsr = 0x1f80;
    asm volatile("fninit; ldmxcsr %0" :: "m"(mxcsr));
}

/* ---- Multiboot -------------------------------------------------------------------------------- */
#ifdef HOST
const char *rt_host_cmdline = "";
#endif
const char *rt_cmdline(void)
{
#ifdef HOST
    return rt_host_cmdline;
#endif
    if (rt_mb_magic != 0x2badb002 || !rt_mb_info)
        return "";
    const uint32_t *mbi = (const uint32_t *)rt_mb_info;
    if (!(mbi[0] & (1u << 2)) || !mbi[4])
        return "";
    return (const char *)mbi[4];
}

int rt_cmdline_has(const char *word)
{
    const char *s = rt_cmdline();
    size_t n = strlen(word);
    while (*s) {
        while (*s == ' ')
            s++;
        const char *e = s;
        while (*e && *e != ' ')
            e++;
        if ((size_t)(e - s) == n && !strncmp(s, word, n))
            return 1;
        s = e;
    }
    return 0;
}

uint32_t rt_cmdline_number(const char *prefix)
{
    const char *s = rt_cmdline();
    size_t n = strlen(prefix);
    for (; *s; s++) {
        if (strncmp(s, prefix, n))
            continue;
        uint32_t v = 0;
        for (const char *p = s + n; *p >= '0' && *p <= '9'; p++)
            v = v * 10 + (uint32_t)(*p - '0');
        return v;
    }
    return 0;
}

/* ---- init ------------------------------------------------------------------------------------- */
#ifndef HOST
static void set_base(uint64_t *d, uint32_t base)
{
    *d &= ~0xff0000ffffff0000ull;
    *d |= ((uint64_t)(base & 0xffffff) << 16) | ((uint64_t)(base >> 24) << 56);
}

static void pic_init(void)
{
    outb(0x20, 0x11);  outb(0xa0, 0x11);   /* ICW1: edge, cascade, ICW4 */
    outb(0x21, IRQ_BASE);  outb(0xa1, IRQ_BASE + 8);
    outb(0x21, 0x04);  outb(0xa1, 0x02);   /* ICW3 */
    outb(0x21, 0x01);  outb(0xa1, 0x01);   /* ICW4: 8086 mode */
    outb(0x21, 0xff);  outb(0xa1, 0xff);   /* mask everything */
}

void rt_init(void)
{
    set_base(&rt_gdt[SEL_SMALL >> 3], (uint32_t)rt_small_seg);
    set_base(&rt_gdt[SEL_LDT >> 3], (uint32_t)rt_ldt);
    set_base(&rt_gdt[SEL_TSS >> 3], (uint32_t)rt_tss);
    set_base(&rt_ldt[SEL_LDT_DATA >> 3], (uint32_t)rt_ldt_buf);
    rt_tss[1] = 0x10000;   /* ESP0: unused until a test switches privilege */
    rt_tss[2] = SEL_KDATA; /* SS0 */
    rt_tss[25] = 104u << 16; /* I/O map base beyond the limit: no I/O bitmap */

    for (unsigned v = 0; v < 256; v++)
        rt_idt_set(v, rt_stub(v), SEL_KCODE, GATE_INT);
    struct { uint16_t pad, limit; uint32_t base; } __attribute__((packed)) idtr = {
        0, sizeof rt_idt - 1, (uint32_t)rt_idt };
    asm volatile("lidt %0" :: "m"(idtr.limit));

    serial_init();
    pic_init();
    rt_clear_last();
    rt_verbose = rt_cmdline_has("verbose");
}
#endif /* !HOST */
