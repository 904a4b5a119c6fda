/*
 * kbd - keys typed on bt86's standard input reach the i8042's keyboard as scan codes on
 * IRQ 1 (with `bt86 run --display text`).
 *
 * bt86-only: the keys come from bt86's standard input, which the QEMU comparison does not
 * feed (QEMU would need its monitor's sendkey); tests/display.rs feeds them and checks the
 * scan codes against the ones a PC keyboard sends.
 *
 * Checks: the controller as SeaBIOS leaves it (command byte 0x61: translation to set 1,
 * keyboard interrupt on, mouse off); then it initialises the keyboard as a driver does
 * (interface disabled, output buffer drained, command byte written, interface enabled,
 * 0xF4 enable scanning: ACK).  With "keys=N" on the command line it unmasks IRQ 1 and
 * sleeps in hlt while the IRQ 1 handler reads port 0x60 as long as the status register's
 * OBF bit says a byte waits, until N bytes came (or 5 s of PIT ticks passed), and prints
 * them: "# scan codes: 2a 1e 9e aa ...".  With "set2" as well, the command byte turns
 * translation off, so the bytes are scan code set 2's.
 */
#include "rt.h"

#define DATA 0x60
#define STATUS 0x64
#define OBF 0x01
#define IBF 0x02

static volatile uint8_t codes[256];
static volatile uint32_t received, irqs, ticks;

static void on_irq1(struct trap_frame *f, uint32_t *eip)
{
    (void)f; (void)eip;
    irqs++;
    while (inb(STATUS) & OBF) {
        uint8_t b = inb(DATA);
        if (received < sizeof codes)
            codes[received] = b;
        received++;
    }
    rt_eoi(1);
}

static void on_irq0(struct trap_frame *f, uint32_t *eip)
{
    (void)f; (void)eip;
    ticks++;
    rt_eoi(0);
}

static void wait_input_empty(void)
{
    for (unsigned i = 0; i < 100000 && (inb(STATUS) & IBF); i++)
        ;
}

/* The next byte of the output buffer, or -1 if none comes. */
static int read_byte(void)
{
    for (unsigned i = 0; i < 100000; i++)
        if (inb(STATUS) & OBF)
            return inb(DATA);
    return -1;
}

static void command(uint8_t cmd)
{
    wait_input_empty();
    outb(STATUS, cmd);
}

void test_main(void)
{
    command(0x20);
    is(read_byte(), 0x61, "command byte as the BIOS leaves it: translation, keyboard interrupt, mouse off");

    command(0xad);
    while (inb(STATUS) & OBF)
        (void)inb(DATA);
    command(0x60);
    wait_input_empty();
    outb(DATA, rt_cmdline_has("set2") ? 0x21 : 0x61);
    command(0xae);
    wait_input_empty();
    outb(DATA, 0xf4);
    is(read_byte(), 0xfa, "enable scanning: ACK");

    uint32_t n = rt_cmdline_number("keys=");
    if (!n)
        return;
    rt_set_hook(IRQ_BASE + 0, on_irq0);
    rt_set_hook(IRQ_BASE + 1, on_irq1);
    outb(0x43, 0x34);
    outb(0x40, 1193 & 0xff);
    outb(0x40, 1193 >> 8);
    outb(0x21, inb(0x21) & ~0x03);
    while (received < n && ticks < 5000)
        asm volatile("sti\n\thlt\n\tcli" ::: "memory");
    outb(0x21, inb(0x21) | 0x03);
    rt_printf("# scan codes:");
    for (uint32_t i = 0; i < received && i < sizeof codes; i++)
        rt_printf(" %02x", codes[i]);
    rt_printf("\n");
    is(received, n, "scan code bytes received on IRQ 1");
    ok(irqs >= 1, "through the IRQ 1 handler");
}
