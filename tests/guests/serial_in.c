/*
 * serial_in - console input through COM1's receiver: every byte, in order.
 *
 * bt86-only: it reads bt86's standard input, which the QEMU comparison does not feed.
 *
 * With "expect=N" on the command line it first waits 100 ms (PIT ticks), then starts the
 * port as a driver does (FIFOs cleared, receiver drained), enables the received-data
 * interrupt (IER bit 0)
 * and the FIFO, unmasks IRQ4, and sleeps in hlt while the IRQ 4 handler drains RBR as long
 * as LSR says data is ready, until N bytes came: byte i must be (i * 7 + 3) & 0xff, so a
 * lost, doubled or reordered byte shows.  Without "expect=" there is nothing to check (the
 * run by tests/machine.rs's bt86-only pass, with no input); tests/cli.rs feeds it a pipe.
 */
#include "rt.h"

#define COM1 0x3f8
static volatile uint32_t received, wrong, first_wrong = 0xffffffffu, irqs;

static void on_irq4(struct trap_frame *f, uint32_t *eip)
{
    (void)f; (void)eip;
    irqs++;
    while (inb(COM1 + 5) & 1) {
        uint8_t b = inb(COM1);
        if (b != (uint8_t)(received * 7 + 3)) {
            if (!wrong)
                first_wrong = received;
            wrong++;
        }
        received++;
    }
    rt_eoi(4);
}

static volatile uint32_t ticks;
static void on_irq0(struct trap_frame *f, uint32_t *eip)
{
    (void)f; (void)eip;
    ticks++;
    rt_eoi(0);
}

void test_main(void)
{
    uint32_t n = rt_cmdline_number("expect=");
    if (!n) {
        ok(1, "no input expected (no expect=N on the command line)");
        return;
    }
    /* Let the input pile up first (100 ms of PIT ticks at 1 kHz), as when a script is
     * piped into a guest that is still booting. */
    rt_set_hook(IRQ_BASE + 0, on_irq0);
    outb(0x43, 0x34);
    outb(0x40, 1193 & 0xff);
    outb(0x40, 1193 >> 8);
    outb(0x21, inb(0x21) & ~0x01);
    while (ticks < 100)
        asm volatile("sti\n\thlt\n\tcli" ::: "memory");
    rt_set_hook(IRQ_BASE + 4, on_irq4);
    /* As drivers start a port: clear the FIFOs and drain the receiver.  Input sent before
     * the port listens must still arrive (bt86 holds it back until IER enables RDI). */
    outb(COM1 + 2, 0x07);          /* FCR: FIFO on, both FIFOs cleared */
    while (inb(COM1 + 5) & 1)
        inb(COM1);
    outb(COM1 + 4, 0x08);          /* MCR: OUT2 (the PC's IRQ gate) */
    outb(COM1 + 1, 0x01);          /* IER: received data */
    outb(0x21, inb(0x21) & ~0x10); /* unmask IRQ4 */
    /* Until all came, or nothing came for 2 s (a lost byte would otherwise hang it). */
    uint32_t seen = 0, since = ticks;
    while (received < n && ticks - since < 2000) {
        asm volatile("sti\n\thlt\n\tcli" ::: "memory");
        if (received != seen) {
            seen = received;
            since = ticks;
        }
    }
    outb(COM1 + 1, 0x00);
    outb(0x21, inb(0x21) | 0x11);
    is(received, n, "received the %u bytes sent", n);
    if (!is(wrong, 0, "every byte in order, none lost or doubled"))
        rt_printf("# first wrong byte at %u\n", first_wrong);
    ok(irqs > 0, "through the received-data interrupt (IRQ 4)");
}
