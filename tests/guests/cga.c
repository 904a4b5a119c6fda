/*
 * cga - the colour text screen: text RAM at 0xB8000 and the CRTC, input status and misc
 * output registers, as QEMU's VGA leaves them after SeaBIOS sets mode 3.
 *
 * bt86-qemu-args: -vga std
 *
 * Checks: the CRTC index and data ports; the cursor shape, start address and cursor
 * location SeaBIOS leaves (row 2, below its two lines of messages: a kernel reads the
 * cursor back before its first write); the BIOS data area's video fields; misc output
 * (0x3CC) = 0x67, colour emulation; input status 1 (0x3DA) toggling retrace and display
 * enable as a driver polls it, so both "wait for retrace" loops end; registers 0-7
 * write-protected by register 0x11 bit 7; cursor moves with byte and word writes; text RAM
 * written and read back with byte, word, dword and string instructions, with `rep insb` /
 * `rep outsb` between text RAM and the CRTC (the monitor's emulation touches it), through a
 * second mapping with paging on, and from CPL 3 through a user mapping.
 *
 * The screen holds SeaBIOS's text under QEMU (nothing under bt86): the kernel clears it
 * before it reads any of it back.  At the end it leaves this screen (tests/display.rs
 * checks bt86's --display text drawing of it): row 0 "bt86 CGA test" white on blue, row 1
 * "colours:" and a bright-red-on-green "RG", every other cell blank; the cursor at row 3,
 * column 5.
 */
#include "rt.h"
#include "user.h"

#define TEXT 0xb8000u
#define CRTC 0x3d4
#define STATUS 0x3da
#define PG_P 0x001u
#define PG_W 0x002u
#define PG_U 0x004u
#define PG_PS 0x080u
#define ALIAS 0x40000000u /* a second mapping of text RAM's page */

static uint8_t crtc_rd(uint8_t i) { outb(CRTC, i); return inb(CRTC + 1); }
static void crtc_wr(uint8_t i, uint8_t v) { outb(CRTC, i); outb(CRTC + 1, v); }
static uint16_t cursor(void) { return (uint16_t)(crtc_rd(0x0e) << 8 | crtc_rd(0x0f)); }
static volatile uint16_t *cell(unsigned row, unsigned col) { return (volatile uint16_t *)PHYS(TEXT + 2 * (row * 80 + col)); }
static uint16_t rd16(uint32_t a) { return *(volatile uint16_t *)PHYS(a); }

static void bios_state(void)
{
    outb(CRTC, 0x0a);
    is(inb(CRTC), 0x0a, "the CRTC index reads back");
    is(crtc_rd(0x0a), 0x0d, "cursor start: line 13");
    is(crtc_rd(0x0b), 0x0e, "cursor end: line 14");
    is(crtc_rd(0x0c) << 8 | crtc_rd(0x0d), 0, "start address 0");
    is(cursor(), 0xa0, "cursor location 0xa0: row 2, column 0, below the BIOS's two lines");
    is(*PHYS(0x449), 3, "BDA: video mode 3");
    is(rd16(0x44a), 80, "BDA: 80 columns");
    is(*PHYS(0x484), 24, "BDA: 25 rows");
    is(rd16(0x463), 0x3d4, "BDA: CRTC at 0x3d4");
    is(rd16(0x450), 0x0200, "BDA: cursor at row 2, column 0");
    is(inb(0x3cc), 0x67, "misc output 0x67: colour emulation, CRTC at 0x3d4");
}

static void status_register(void)
{
    uint8_t a = inb(STATUS), b = inb(STATUS);
    is(a ^ b, 0x09, "input status 1: retrace and display enable change between reads");
    is((a | b) & ~0x09u, 0, "input status 1: no other bits");
    unsigned n = 0;
    while ((inb(STATUS) & 8) && n < 1000)
        n++;
    ok(n < 1000, "a driver's wait for the end of vertical retrace ends");
    n = 0;
    while (!(inb(STATUS) & 8) && n < 1000)
        n++;
    ok(n < 1000, "a driver's wait for vertical retrace ends");
}

static void crtc_registers(void)
{
    is(crtc_rd(0x11) & 0x80, 0x80, "register 0x11 bit 7: registers 0-7 locked");
    uint8_t h = crtc_rd(0x01);
    crtc_wr(0x01, h ^ 0x0f);
    is(crtc_rd(0x01), h, "a locked register ignores writes");
    crtc_wr(0x0e, 0x01);
    crtc_wr(0x0f, 0x2c);
    is(cursor(), 0x12c, "cursor location written bytewise and read back");
    outw(CRTC, 0x020e);
    outw(CRTC, 0x570f);
    is(cursor(), 0x257, "cursor location written with outw (index, then data)");
    outw(CRTC, 0x000d);
    is(inw(CRTC), 0x000d, "inw: the index and the register it names");
    crtc_wr(0x0a, 0x2d);
    is(crtc_rd(0x0a), 0x2d, "cursor disabled (register 0x0a bit 5)");
    crtc_wr(0x0a, 0x0d);
}

static void clear_screen(void)
{
    uint32_t d = TEXT, c = 80 * 25;
    asm volatile("cld; rep stosw" : "+D"(d), "+c"(c) : "a"(0x0720) : "memory");
    int blank = 1;
    for (unsigned i = 0; i < 80 * 25; i++)
        blank &= rd16(TEXT + 2 * i) == 0x0720;
    ok(blank, "rep stosw blanks the screen, read back cell by cell");
}

static void text_ram(void)
{
    *PHYS(TEXT + 2 * 81) = 'x';
    *PHYS(TEXT + 2 * 81 + 1) = 0x4e;
    is(*cell(1, 1), 0x4e78, "a character and an attribute written as bytes, read as a word");
    *cell(24, 79) = 0x1f41;
    is(*PHYS(TEXT + 3998), 'A', "the last cell, written as a word, read as a byte");
    *(volatile uint32_t *)PHYS(TEXT + 0x7ffc) = 0x12345678;
    is(*(volatile uint32_t *)PHYS(TEXT + 0x7ffc), 0x12345678, "the end of the 32 KiB of text RAM");
    static const char msg[] = "h\x07i\x07!\x07";
    uint32_t s = (uint32_t)msg, d = TEXT + 160 * 2, c = 6;
    asm volatile("cld; rep movsb" : "+S"(s), "+D"(d), "+c"(c) :: "memory");
    ok(*cell(2, 0) == 0x0768 && *cell(2, 1) == 0x0769 && *cell(2, 2) == 0x0721, "rep movsb into text RAM");

    /* The monitor's emulation of string I/O: bytes from the CRTC into text RAM and back. */
    crtc_wr(0x0e, 0x00);
    crtc_wr(0x0f, 0x5a);
    outb(CRTC, 0x0f);
    d = TEXT + 160 * 3;
    c = 2;
    asm volatile("cld; rep insb" : "+D"(d), "+c"(c) : "d"(CRTC + 1) : "memory");
    is(*cell(3, 0), 0x5a5a, "rep insb from the CRTC into text RAM");
    *PHYS(TEXT + 160 * 3 + 1) = 0x3c;
    s = TEXT + 160 * 3;
    c = 2;
    asm volatile("cld; rep outsb" : "+S"(s), "+c"(c) : "d"(CRTC + 1) : "memory");
    is(cursor(), 0x3c, "rep outsb from text RAM into the cursor register");
    *cell(3, 0) = 0x0720;
    *cell(1, 1) = 0x0720;
    *cell(24, 79) = 0x0720;
    *cell(2, 0) = *cell(2, 1) = *cell(2, 2) = 0x0720;
}

static uint32_t pd[1024] __attribute__((aligned(4096)));
static uint32_t pt[1024] __attribute__((aligned(4096)));
static volatile uint32_t user_read;

static void user_code(void)
{
    *(volatile uint16_t *)(ALIAS + 2 * 82) = 0x2a55;
    user_read = *(volatile uint16_t *)(TEXT + 2 * 82);
}

static void paging(void)
{
    pd[0] = (uint32_t)PG_PS | PG_U | PG_W | PG_P; /* identity, 4 MiB, user */
    pd[ALIAS >> 22] = (uint32_t)pt | PG_U | PG_W | PG_P;
    pt[0] = TEXT | PG_U | PG_W | PG_P;
    write_cr4(read_cr4() | CR4_PSE);
    write_cr3((uint32_t)pd);
    write_cr0(read_cr0() | CR0_PG);
    *(volatile uint16_t *)(ALIAS + 2 * 81) = 0x3b62;
    is(*cell(1, 1), 0x3b62, "paging on: a write through a second mapping of text RAM");
    user_setup();
    user_resume = 0;
    user_enter(user_code);
    is(user_read, 0x2a55, "CPL 3: a write through a user mapping, read through another");
    is(*cell(1, 2), 0x2a55, "and the kernel reads it");
    write_cr0(read_cr0() & ~CR0_PG);
    *cell(1, 1) = *cell(1, 2) = 0x0720;
}

static void final_screen(void)
{
    static const char title[] = "bt86 CGA test", colours[] = "colours:";
    for (unsigned i = 0; title[i]; i++)
        *cell(0, i) = 0x1f00 | (uint8_t)title[i];
    for (unsigned i = 0; colours[i]; i++)
        *cell(1, i) = 0x0700 | (uint8_t)colours[i];
    *cell(1, 9) = 0x2c00 | 'R';
    *cell(1, 10) = 0x2c00 | 'G';
    crtc_wr(0x0e, 0x00);
    crtc_wr(0x0f, 3 * 80 + 5);
    is(cursor(), 245, "cursor left at row 3, column 5");
}

void test_main(void)
{
    bios_state();
    status_register();
    crtc_registers();
    clear_screen();
    text_ram();
    paging();
    final_screen();
}
