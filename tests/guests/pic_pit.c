/*
 * pic_pit - the 8259A PIC pair, the 8254 PIT, port 0x61, hlt and timer interrupts.
 *
 * PIC: IMR read back, IRR/ISR through OCW3; PIT channel 0 in rate-generator mode (2) at
 * ~1 kHz with IRQ0 unmasked: `sti; hlt` loops woken by timer interrupts until 20 ticks
 * (only "ok" is printed, never a count), each interrupt taken right after the hlt (the STI
 * shadow covers the hlt) through an interrupt gate; without EOI no further IRQ0 arrives and
 * ISR bit 0 stays set, after the EOI ticks resume; a masked IRQ stays pending in the IRR
 * (one-shot mode 0) and is delivered once as soon as it is unmasked; an interrupt waiting
 * for `sti; ret` is taken at the return address (the STI shadow), and `sti; ret` to a
 * pushed address deep in nested calls returns right; PIT channel 2 gated and
 * polled through port 0x61 the way Linux calibrates the TSC (OUT2 low while counting, high
 * at terminal count); read-back command (status byte: access mode, mode, BCD, output),
 * counter latch (count within range, counting down); a 4 MiB rep movsb with timer
 * interrupts arriving meanwhile; the slave PIC through the RTC periodic interrupt (IRQ8,
 * register C).
 */
#include "rt.h"
#include "pit.h"

/* ---- helpers ------------------------------------------------------------------------------ */
static uint8_t read_irr(void) { outb(0x20, 0x0a); return inb(0x20); }
static uint8_t read_isr(void) { outb(0x20, 0x0b); return inb(0x20); }

/* ---- IRQ0 handlers -------------------------------------------------------------------------- */
static volatile uint32_t ticks, bad_eip, bad_if, do_eoi = 1;
static volatile uint32_t expect_eip;

static void on_irq0(struct trap_frame *f, uint32_t *eip)
{
    (void)f;
    ticks++;
    if (expect_eip && eip[0] != expect_eip)
        bad_eip++;
    if (read_eflags() & FL_IF)
        bad_if++;
    if (do_eoi)
        rt_eoi(0);
}

extern char after_hlt[];

static void timer_ticks(void)
{
    rt_set_hook(IRQ_BASE + 0, on_irq0);
    ticks = 0;
    pit0(0x34, PIT_HZ / 1000);         /* channel 0, lo/hi, mode 2, binary */
    outb(0x21, 0xfe);                  /* unmask IRQ0 */
    expect_eip = (uint32_t)after_hlt;
    uint32_t loops = 0;
    while (ticks < 20 && loops < 1000000) {
        asm volatile("sti\n\thlt\nafter_hlt:\n\tcli" ::: "memory");
        loops++;
    }
    expect_eip = 0;
    ok(ticks >= 20, "20 timer interrupts woke sti; hlt");
    is(bad_eip, 0, "every interrupt arrived right after the hlt (STI shadow)");
    is(bad_if, 0, "the handler ran with IF = 0 (interrupt gate)");
    is(inb(0x21), 0xfe, "IMR reads back 0xfe");

    /* no EOI: ISR bit 0 stays set and blocks further IRQ0 */
    do_eoi = 0;
    ticks = 0;
    asm volatile("sti\n\thlt\n\tcli" ::: "memory");
    ok(ticks == 1, "one tick without EOI");
    asm volatile("sti" ::: "memory");
    int pending = WAIT_UNTIL(read_irr() & 1, 500);   /* the next request arrives... */
    int waited = pit2_wait(PIT_HZ / 200);            /* ...and 5 ms more pass */
    cli();
    ok(waited && ticks == 1, "no further IRQ0 while it is in service");
    ok(read_isr() & 1, "ISR bit 0 set while in service");
    ok(pending && (read_irr() & 1), "IRR bit 0 set: the next request is pending");
    do_eoi = 1;
    rt_eoi(0);
    ok(!(read_isr() & 1), "EOI clears ISR bit 0");
    asm volatile("sti" ::: "memory");
    int resumed = WAIT_UNTIL(ticks >= 2, 500);
    cli();
    ok(resumed, "ticks resume after the EOI");
    outb(0x21, 0xff);
}

static void masked_pending(void)
{
    /* Channel 0 one-shot: exactly one rising edge on IRQ0. */
    outb(0x21, 0xff);
    pit0(0x30, 0xffff);                /* mode 0, long count: OUT0 low for now */
    ticks = 0;
    outb(0x21, 0xfe);                  /* drain anything latched before */
    asm volatile("sti" ::: "memory");
    for (volatile int i = 0; i < 10000; i++)
        ;
    cli();
    outb(0x21, 0xff);
    ticks = 0;
    pit0(0x30, PIT_HZ / 1000);         /* 1 ms, then OUT0 rises once */
    int pending = WAIT_UNTIL(read_irr() & 1, 500);
    ok(pending, "masked IRQ0 shows up in the IRR");
    asm volatile("sti" ::: "memory");
    int waited = pit2_wait(PIT_HZ / 500);
    cli();
    ok(waited && ticks == 0, "masked IRQ0 is not delivered");
    asm volatile("sti" ::: "memory");
    outb(0x21, 0xfe);                  /* unmask: delivered right away */
    for (volatile int i = 0; i < 10000; i++)
        ;
    uint32_t seen = ticks;
    cli();
    is(seen, 1, "unmasking delivers the pending IRQ0");
    asm volatile("sti" ::: "memory");
    waited = pit2_wait(PIT_HZ / 200);
    cli();
    ok(waited && ticks == 1, "mode 0 raised IRQ0 only once");
    outb(0x21, 0xff);
}

/* `sti; ret` (how many kernel functions end) with an interrupt waiting for IF: the ret is
 * in the STI shadow, so the interrupt is taken at the return address. */
asm(".text\nsti_ret:\n\tsti\n\tret\n");
extern char after_sti_ret[];

static void sti_ret_shadow(void)
{
    outb(0x21, 0xff);
    pit0(0x30, 0xffff);                /* mode 0, long count: OUT0 low for now */
    outb(0x21, 0xfe);                  /* drain anything latched before */
    asm volatile("sti" ::: "memory");
    for (volatile int i = 0; i < 10000; i++)
        ;
    cli();
    ticks = 0;
    outb(0x21, 0xff);
    pit0(0x30, PIT_HZ / 1000);         /* 1 ms, then OUT0 rises once (masked) */
    int pending = WAIT_UNTIL(read_irr() & 1, 500);
    expect_eip = (uint32_t)after_sti_ret;
    bad_eip = 0;
    /* The same return twice with IRQ0 masked (a translator may learn the target), then
     * with it unmasked. */
    for (volatile int round = 0; round < 3; round++) { /* (volatile: one copy of the label) */
        if (round == 2)
            outb(0x21, 0xfe);
        asm volatile("call sti_ret\nafter_sti_ret:\n\tcli" ::: "memory");
    }
    expect_eip = 0;
    ok(pending && ticks == 1 && bad_eip == 0, "an interrupt waiting for `sti; ret`: taken at the return address");
    outb(0x21, 0xff);
}

/* `sti; ret` to an address pushed by hand, deep in nested calls: the ret has no
 * matching call, and every return around it must still land where it should. */
static __attribute__((noinline)) uint32_t pushed_ret(uint32_t x)
{
    /* (An out first: the monitor runs it, and translated code resumes with an empty
     * return stack.) */
    asm volatile("outb %%al, $0x80\n\tpushl $1f\n\tsti\n\tret\n1:\n\tcli" : : "a"(0) : "memory");
    return x + 1;
}

static __attribute__((noinline)) uint32_t nest(uint32_t depth, uint32_t x)
{
    if (!depth)
        return pushed_ret(x);
    uint32_t r = nest(depth - 1, x);
    asm volatile("" : "+r"(r));        /* (no loop made of the recursion) */
    return r + 1;
}

static void sti_ret_unmatched(void)
{
    outb(0x21, 0xff);
    uint32_t sum = 0;
    for (volatile uint32_t i = 0; i < 20; i++)
        sum += nest(5, i);
    is(sum, 20 * 6 + 190, "sti; ret to a pushed address inside nested calls: every return lands");
}

static void channel2(void)
{
    pit2_start(PIT_HZ / 1000);
    is(pit2_out(), 0, "port 0x61 bit 5 (OUT2) low while channel 2 counts");
    outb(0x43, 0xe8);                  /* read-back: status of channel 2 */
    uint8_t st = inb(0x42);
    is(st & 0x3f, 0x30, "read-back status of channel 2: lo/hi access, mode 0, binary");
    int done = 0;
    for (uint32_t i = 0; i < 100000000 && !done; i++)
        done = pit2_out();
    ok(done, "OUT2 goes high at terminal count");
    outb(0x43, 0xe8);
    st = inb(0x42);
    is(st, 0xb0, "read-back status after terminal count: OUT = 1, count loaded");
    is(inb(0x61) & 0x03, 0x01, "port 0x61: gate 2 on, speaker off read back");
    outb(0x61, inb(0x61) & ~0x03);
    is(inb(0x61) & 0x03, 0x00, "port 0x61: gate 2 off read back");

    /* counting down: latch the count twice, some time apart */
    pit2_start(0xffff);
    outb(0x43, 0x80);                  /* latch channel 2 */
    uint16_t c1 = inb(0x42);
    c1 |= inb(0x42) << 8;
    uint64_t t = rdtsc();
    while (rdtsc() - t < 20000000)
        ;
    outb(0x43, 0xd8);                  /* read-back: latch the count of channel 2 */
    uint16_t c2 = inb(0x42);
    c2 |= inb(0x42) << 8;
    ok(c2 < c1, "channel 2 counts down (latch command, read-back latch)");

    /* channel 0 in mode 2 */
    pit0(0x34, 5000);
    outb(0x43, 0xe2);                  /* read-back: status of channel 0 */
    st = inb(0x40);
    is(st & 0x3f, 0x34, "read-back status of channel 0: lo/hi access, mode 2, binary");
    outb(0x43, 0x00);                  /* latch channel 0 */
    uint16_t c0 = inb(0x40);
    c0 |= inb(0x40) << 8;
    ok(c0 >= 1 && c0 <= 5000, "channel 0 count within 1..5000");
    /* lobyte-only access mode */
    outb(0x43, 0x10 | 0x04);           /* channel 0, lobyte only, mode 2 */
    outb(0x40, 200);
    outb(0x43, 0xe2);
    st = inb(0x40);
    is(st & 0x3f, 0x14, "read-back status: lobyte-only access");
    pit0(0x34, 0);                     /* back to a full cycle */
}

static uint8_t big_src[4 << 20] __attribute__((aligned(4096)));
static uint8_t big_dst[4 << 20] __attribute__((aligned(4096)));

static void copy_with_interrupts(void)
{
    for (uint32_t i = 0; i < sizeof big_src; i += 4)
        *(uint32_t *)&big_src[i] = i * 2654435761u;
    ticks = 0;
    pit0(0x34, PIT_HZ / 4000);         /* 4 kHz */
    outb(0x21, 0xfe);
    uint32_t s = (uint32_t)big_src, d = (uint32_t)big_dst, c = sizeof big_src;
    asm volatile("sti; cld; rep movsb; cli" : "+S"(s), "+D"(d), "+c"(c) :: "memory");
    outb(0x21, 0xff);
    ok(c == 0 && s == (uint32_t)big_src + sizeof big_src, "4 MiB rep movsb with timer interrupts: registers");
    ok(!memcmp(big_dst, big_src, sizeof big_src), "4 MiB rep movsb with timer interrupts: data");
    pit0(0x34, 0);
}

/* ---- slave PIC through the RTC periodic interrupt ------------------------------------------- */
static volatile uint32_t rtc_irqs, rtc_bad_c;
static void on_irq8(struct trap_frame *f, uint32_t *eip)
{
    (void)f; (void)eip;
    outb(0x70, 0x0c);
    uint8_t c = inb(0x71);           /* reading C acknowledges the RTC */
    if ((c & 0xc0) != 0xc0)
        rtc_bad_c++;
    rtc_irqs++;
    rt_eoi(8);
}

static void rtc_periodic(void)
{
    rt_set_hook(IRQ_BASE + 8, on_irq8);
    outb(0x70, 0x0c);
    (void)inb(0x71);
    outb(0x70, 0x0a);
    uint8_t a = inb(0x71);
    outb(0x70, 0x0a);
    outb(0x71, (a & 0xf0) | 0x06);    /* 1024 Hz */
    outb(0x70, 0x0b);
    uint8_t b = inb(0x71);
    outb(0x70, 0x0b);
    outb(0x71, b | 0x40);            /* PIE */
    /* the PIT keeps ticking at 1 kHz so that hlt always wakes up: give up after 500 ms */
    do_eoi = 1;
    ticks = 0;
    pit0(0x34, PIT_HZ / 1000);
    outb(0xa1, 0xfe);                /* unmask IRQ8 */
    outb(0x21, 0xfa);                /* unmask the cascade (IRQ2) and IRQ0 */
    rtc_irqs = 0;
    while (rtc_irqs < 5 && ticks < 500)
        asm volatile("sti\n\thlt\n\tcli" ::: "memory");
    ok(rtc_irqs >= 5, "RTC periodic interrupts arrive through the slave PIC (IRQ8)");
    is(rtc_bad_c, 0, "RTC register C shows IRQF and PF");
    outb(0xa1, 0xff);
    outb(0x21, 0xff);
    outb(0x70, 0x0b);
    outb(0x71, b);
    outb(0x70, 0x0a);
    outb(0x71, a);
    outb(0x70, 0x0c);
    (void)inb(0x71);
    is(inb(0xa1), 0xff, "slave IMR reads back");
}

void test_main(void)
{
    is(inb(0x21), 0xff, "master IMR: all masked");
    outb(0x21, 0x5a);
    is(inb(0x21), 0x5a, "master IMR write / read");
    outb(0x21, 0xff);
    outb(0xa1, 0xa5);
    is(inb(0xa1), 0xa5, "slave IMR write / read");
    outb(0xa1, 0xff);
    timer_ticks();
    masked_pending();
    sti_ret_shadow();
    sti_ret_unmatched();
    channel2();
    copy_with_interrupts();
    rtc_periodic();
}
