/*
 * devices - the registers of the PC devices a driver touches.
 *
 * 16550A UART (COM1): LSR THRE/TEMT when idle, the scratch register, LCR and the DLAB
 * divisor latch round trip (and that offsets 0/1 are RBR/IER again afterwards), IER,
 * IIR with FIFOs on and off (no interrupt, THRE interrupt pending after IER.ETBEI, cleared
 * by reading IIR, back after a character is sent), FCR FIFO bits seen in IIR, loopback
 * (MCR bit 4): MSR mirrors MCR, a byte written comes back in RBR with LSR.DR.  Port 0x80
 * takes writes.  CMOS (with the NMI bit in the index or not): base memory 640 KiB
 * (0x15/0x16), extended memory (0x17/0x18 and 0x30/0x31: 65535 KiB, the cap), memory above
 * 16 MiB in 64 KiB units (0x34/0x35: 0x0700 for QEMU's and bt86's default 128 MiB),
 * status registers A (rate bits), B and D, a read/write byte of CMOS RAM, the seconds
 * register being BCD.  i8042: status with empty buffers, command 0x20 fills the output
 * buffer, reading port 0x60 empties it.
 */
#include "rt.h"

#define COM1 0x3f8
enum { RBR = 0, THR = 0, IER = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

static uint8_t in(int reg) { return inb(COM1 + reg); }
static void out(int reg, uint8_t v) { outb(COM1 + reg, v); }

static void wait_idle(void)
{
    for (uint32_t i = 0; i < 10000000 && (in(LSR) & 0x60) != 0x60; i++)
        ;
}

static void uart(void)
{
    wait_idle();
    is(in(LSR), 0x60, "LSR idle: THRE and TEMT, no data");
    out(SCR, 0x5a);
    is(in(SCR), 0x5a, "scratch register 0x5a");
    out(SCR, 0xa5);
    is(in(SCR), 0xa5, "scratch register 0xa5");
    is(in(LCR), 0x03, "LCR as the runtime set it (8N1)");
    out(LCR, 0x1b);
    is(in(LCR), 0x1b, "LCR write / read (8E1)");
    /* (nothing can be printed while DLAB is set or in loopback: read first, report after) */
    out(LCR, 0x83);
    out(0, 0x34);
    out(1, 0x12);
    uint8_t dll = in(0), dlm = in(1);
    out(LCR, 0x03);
    uint8_t ier = in(IER);
    out(LCR, 0x83);
    out(0, 0x01);
    out(1, 0x00);
    uint32_t div = in(0) | (in(1) << 8);
    out(LCR, 0x03);
    is(dll, 0x34, "DLAB: divisor latch low");
    is(dlm, 0x12, "DLAB: divisor latch high");
    is(ier, 0x00, "DLAB off: offset 1 is IER again");
    is(div, 0x0001, "divisor back to 1 (115200)");
    out(IER, 0x0f);
    is(in(IER), 0x0f, "IER write / read");
    out(IER, 0x00);

    /* IIR, FIFOs off */
    is(in(IIR), 0x01, "IIR, FIFOs off, nothing enabled: no interrupt");
    /* (printing a TAP line sends characters, which raises THRE again: read first, then
     * report) */
    out(IER, 0x02);
    uint8_t i1 = in(IIR), i2 = in(IIR);
    out(IER, 0x00);
    is(i1, 0x02, "IER.ETBEI with THR empty: THRE interrupt pending");
    is(i2, 0x01, "reading IIR cleared the THRE interrupt");
    /* FIFOs on */
    out(FCR, 0x07);
    is(in(IIR), 0xc1, "IIR, FIFOs on: FIFO bits, no interrupt");
    out(IER, 0x02);
    i1 = in(IIR);
    i2 = in(IIR);
    const char *s = "# THR\n";
    for (; *s; s++) {
        wait_idle();
        out(THR, (uint8_t)*s);
    }
    wait_idle();
    uint8_t i3 = in(IIR);
    out(IER, 0x00);
    is(i1, 0xc2, "FIFOs on, ETBEI: THRE interrupt pending");
    is(i2, 0xc1, "reading IIR cleared it");
    is(i3, 0xc2, "after sending, THR empty again: THRE interrupt pending again");
    is(in(IIR) & 0x0f, 0x01, "ETBEI off: no interrupt");
    out(FCR, 0x00);
    is(in(IIR), 0x01, "FIFOs off again");

    /* loopback */
    wait_idle();
    out(MCR, 0x1f);
    uint8_t msr1 = in(MSR);
    out(MCR, 0x10);
    uint8_t msr2 = in(MSR);
    out(THR, 'Z');
    int dr = 0;
    for (uint32_t i = 0; i < 1000000 && !dr; i++)
        dr = in(LSR) & 1;
    uint8_t rbr = in(RBR), lsr = in(LSR);
    out(MCR, 0x03);
    (void)in(MSR);
    is(msr1 & 0xf0, 0xf0, "loopback: MSR mirrors DTR RTS OUT1 OUT2");
    is(msr2 & 0xf0, 0x00, "loopback with the outputs off");
    ok(dr, "loopback: LSR.DR after writing THR");
    is(rbr, 'Z', "loopback: the byte comes back in RBR");
    is(lsr & 1, 0, "reading RBR clears LSR.DR");
}

static uint8_t cmos(uint8_t reg)
{
    outb(0x70, reg);
    return inb(0x71);
}

static void cmos_tests(void)
{
    is(cmos(0x15) | (cmos(0x16) << 8), 640, "CMOS 0x15/0x16: 640 KiB base memory");
    is(cmos(0x17) | (cmos(0x18) << 8), 0xffff, "CMOS 0x17/0x18: extended memory (capped)");
    is(cmos(0x30) | (cmos(0x31) << 8), 0xffff, "CMOS 0x30/0x31: extended memory (capped)");
    is(cmos(0x34) | (cmos(0x35) << 8), 0x0700, "CMOS 0x34/0x35: 112 MiB above 16 MiB (128 MiB of RAM)");
    is(cmos(0x80 | 0x15), 0x80, "CMOS index with the NMI-disable bit selects the same register");
    is(cmos(0x0a) & 0x7f, 0x26, "CMOS status A: 32.768 kHz, 1024 Hz rate");
    is(cmos(0x0b), 0x02, "CMOS status B: 24-hour BCD, no interrupts");
    is(cmos(0x0d), 0x80, "CMOS status D: valid RAM and time");
    outb(0x70, 0x55);
    outb(0x71, 0x5a);
    is(cmos(0x55), 0x5a, "CMOS RAM byte 0x55 write / read");
    outb(0x70, 0x55);
    outb(0x71, 0xa5);
    is(cmos(0x55), 0xa5, "CMOS RAM byte 0x55 write / read again");
    uint8_t sec = cmos(0x00);
    ok((sec & 0x0f) <= 9 && sec <= 0x59, "RTC seconds register holds a BCD value 00-59");
}

static void i8042(void)
{
    is(inb(0x64) & 0x03, 0x00, "i8042 status: output and input buffers empty");
    outb(0x64, 0x20);                  /* read the controller configuration byte */
    int full = 0;
    for (uint32_t i = 0; i < 1000000 && !full; i++)
        full = inb(0x64) & 1;
    ok(full, "i8042 command 0x20: output buffer full");
    (void)inb(0x60);
    is(inb(0x64) & 0x01, 0x00, "reading port 0x60 empties the output buffer");
}

void test_main(void)
{
    uart();
    outb(0x80, 0x12);
    outb(0x80, 0x34);
    ok(1, "port 0x80 takes writes");
    cmos_tests();
    i8042();
}
