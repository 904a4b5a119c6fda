/*
 * io - port I/O instructions at CPL 0.
 *
 * in/out with immediate and DX ports in 8, 16 and 32 bits: wide accesses to byte devices
 * split into consecutive ports (outw to the CMOS index/data pair, outl across the UART's
 * MCR/LSR/MSR/SCR, inw of MSR and SCR); unassigned ports read as all ones in every width;
 * ins/outs without and with rep, DF = 0 and 1, ECX = 0, a segment override on the source
 * of outs: rep outsb into the UART transmit FIFO (a line of output), rep insb from the
 * scratch register, rep outsw into CMOS RAM through the index/data pair, rep insw/insd
 * from an unassigned port.
 */
#include "rt.h"

#define COM1 0x3f8
#define NOWHERE 0x100      /* no device on either machine */

static uint8_t cmos(uint8_t reg)
{
    outb(0x70, reg);
    return inb(0x71);
}

static void widths(void)
{
    uint8_t b;
    asm volatile("inb $0xff, %0" : "=a"(b));      /* imm8 port (0xff: nothing there) */
    is(b, 0xff, "inb imm8 from an unassigned port: 0xff");
    is(inb(NOWHERE), 0xff, "inb dx from an unassigned port: 0xff");
    is(inw(NOWHERE), 0xffff, "inw from an unassigned port: 0xffff");
    is(inl(NOWHERE), 0xffffffff, "inl from an unassigned port: 0xffffffff");
    outb(NOWHERE, 0x12);
    outw(NOWHERE, 0x1234);
    outl(NOWHERE, 0x12345678);
    ok(1, "writes to an unassigned port are ignored");
    asm volatile("outb %0, $0xf0" :: "a"((uint8_t)0));  /* imm8 port out (0xf0: nothing there) */

    outw(0x70, 0xc356);                 /* index 0x56, data 0xc3 */
    is(cmos(0x56), 0xc3, "outw to 0x70 writes index then data (0x71)");
    outb(COM1 + 7, 0x00);
    outl(COM1 + 4, 0x9e000003);         /* MCR = 3, LSR/MSR ignored, SCR = 0x9e */
    is(inb(COM1 + 7), 0x9e, "outl to 0x3fc reaches the scratch register at 0x3ff");
    is(inb(COM1 + 4), 0x03, "outl to 0x3fc: MCR = 3");
    is(inw(COM1 + 6) >> 8, 0x9e, "inw of 0x3fe: high byte is the scratch register");
    uint32_t v = 0xdeadbeef;
    asm volatile("inb %w1, %b0" : "+a"(v) : "d"(COM1 + 7));
    is(v, 0xdeadbe9e, "inb only replaces AL");
    v = 0xdeadbeef;
    asm volatile("inw %w1, %w0" : "+a"(v) : "d"(NOWHERE));
    is(v, 0xdeadffff, "inw only replaces AX");
}

static uint8_t buf[64];

static void strings(void)
{
    /* rep outsb into the transmit FIFO: after TEMT, 16 bytes fit without polling */
    static const char line[] = "# rep outsb ok\n";
    for (uint32_t i = 0; i < 10000000 && (inb(COM1 + 5) & 0x40) == 0; i++)
        ;
    outb(COM1 + 2, 0x07);
    uint32_t s = (uint32_t)line, c = sizeof line - 1;
    asm volatile("cld; rep outsb" : "+S"(s), "+c"(c) : "d"(COM1) : "memory");
    ok(c == 0 && s == (uint32_t)line + sizeof line - 1, "rep outsb: registers");
    for (uint32_t i = 0; i < 10000000 && (inb(COM1 + 5) & 0x40) == 0; i++)
        ;
    outb(COM1 + 2, 0x00);

    /* rep insb from the scratch register, forwards and backwards */
    outb(COM1 + 7, 0x42);
    memset(buf, 0, sizeof buf);
    uint32_t d = (uint32_t)buf + 4;
    c = 8;
    asm volatile("cld; rep insb" : "+D"(d), "+c"(c) : "d"(COM1 + 7) : "memory");
    ok(c == 0 && d == (uint32_t)buf + 12 && buf[3] == 0 && buf[4] == 0x42 && buf[11] == 0x42 && buf[12] == 0,
       "rep insb: 8 bytes, EDI advanced");
    outb(COM1 + 7, 0x24);
    d = (uint32_t)buf + 30;
    c = 5;
    asm volatile("std; rep insb; cld" : "+D"(d), "+c"(c) : "d"(COM1 + 7) : "memory");
    ok(c == 0 && d == (uint32_t)buf + 25 && buf[25] == 0 && buf[26] == 0x24 && buf[30] == 0x24,
       "rep insb with DF = 1");
    d = (uint32_t)buf;
    c = 0;
    buf[0] = 0x77;
    asm volatile("cld; rep insb" : "+D"(d), "+c"(c) : "d"(COM1 + 7) : "memory");
    ok(d == (uint32_t)buf && buf[0] == 0x77, "rep insb with ECX = 0 does nothing");
    d = (uint32_t)buf;
    asm volatile("cld; insb; insb" : "+D"(d) : "d"(COM1 + 7) : "memory");
    ok(d == (uint32_t)buf + 2 && buf[1] == 0x24, "insb without rep");

    /* rep outsw through the CMOS index/data pair: each word is index, data */
    static const uint16_t words[3] = { 0x1157, 0x2258, 0x3359 };
    s = (uint32_t)words;
    c = 3;
    asm volatile("cld; rep outsw" : "+S"(s), "+c"(c) : "d"(0x70) : "memory");
    ok(cmos(0x57) == 0x11 && cmos(0x58) == 0x22 && cmos(0x59) == 0x33 && s == (uint32_t)words + 6,
       "rep outsw to 0x70: three CMOS bytes written");
    /* outs with an fs: source */
    static const uint16_t w2 = 0x445a;
    s = (uint32_t)&w2;
    asm volatile("movw %w2, %%fs; outsw %%fs:(%%esi), (%%dx); movw %w3, %%fs"
                 : "+S"(s) : "d"(0x70), "r"(SEL_KDATA), "r"(SEL_KDATA) : "memory");
    is(cmos(0x5a), 0x44, "outsw with an fs: override");

    /* unassigned: all ones */
    memset(buf, 0, sizeof buf);
    d = (uint32_t)buf;
    c = 4;
    asm volatile("cld; rep insw" : "+D"(d), "+c"(c) : "d"(NOWHERE) : "memory");
    ok(*(uint32_t *)buf == 0xffffffff && *(uint32_t *)(buf + 4) == 0xffffffff && buf[8] == 0 &&
       d == (uint32_t)buf + 8, "rep insw from an unassigned port");
    d = (uint32_t)buf + 16;
    c = 2;
    asm volatile("cld; rep insl" : "+D"(d), "+c"(c) : "d"(NOWHERE) : "memory");
    ok(*(uint32_t *)(buf + 16) == 0xffffffff && *(uint32_t *)(buf + 20) == 0xffffffff && d == (uint32_t)buf + 24,
       "rep insd from an unassigned port");
}

void test_main(void)
{
    widths();
    strings();
}
