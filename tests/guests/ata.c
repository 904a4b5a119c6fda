/*
 * ata - the ATA disks on the primary IDE channel (ports 0x1f0-0x1f7, 0x3f6, IRQ 14), PIO.
 *
 * The harness gives it two fresh raw images (master 2 MiB, slave 256 KiB) filled with
 * the pattern disk_byte() below, under QEMU as `-drive if=ide,index=0/1` and under bt86
 * as `--disk`, and compares the images afterwards too: what this kernel writes must land
 * in both identically.
 *
 * Checks: SRST (signature, diagnostic code, status), IDENTIFY of both drives (the words a
 * driver reads, the strings, and a checksum of all 256 words), READ SECTORS (LBA28, one
 * and several sectors, status between sectors, 16- and 32-bit and byte data accesses),
 * WRITE SECTORS and read back, SET MULTIPLE MODE (and bad counts), READ/WRITE MULTIPLE in
 * blocks, READ/WRITE SECTORS EXT and MULTIPLE EXT (LBA48, HOB registers), CHS addressing,
 * FLUSH CACHE (EXT), reads and writes beyond the end (ERR, ABRT), unknown commands
 * (aborted), READ NATIVE MAX ADDRESS EXT, CHECK POWER MODE, polled transfers with nIEN
 * set, and interrupt-driven ones through the 8259A: one interrupt per sector or multiple
 * block, after IDENTIFY and FLUSH, none before a write's first sector, none with nIEN,
 * none at the end of a read; the line stays up until the status register is read (the
 * alternate status leaves it, a command write lowers it), so a second sector's interrupt
 * is a new edge only after that read.
 * Left out: DMA commands (QEMU starts a bus-master transfer and waits for it; bt86,
 * without PCI, aborts them), SMART.
 *
 * With "readonly" on the command line (tests/disk.rs, bt86 only: QEMU refuses read-only
 * IDE disks) it checks that writes to the master are aborted and change nothing.
 * With "writeloop" (tests/disk.rs) it writes sector after sector of the slave and says
 * on COM1 which one is written, for the test that kills bt86 mid-write.
 *
 * bt86-disk: 2048
 * bt86-disk: 256
 */
#include "rt.h"

#define DATA 0x1f0
#define ERROR 0x1f1
#define FEATURE 0x1f1
#define COUNT 0x1f2
#define LBA0 0x1f3
#define LBA1 0x1f4
#define LBA2 0x1f5
#define DEVICE 0x1f6
#define STATUS 0x1f7
#define COMMAND 0x1f7
#define CONTROL 0x3f6

#define ST_BSY 0x80
#define ST_DRDY 0x40
#define ST_DSC 0x10
#define ST_DRQ 0x08
#define ST_ERR 0x01

#define CTL_NIEN 0x02
#define CTL_SRST 0x04
#define CTL_HOB 0x80

#define MASTER_SECTORS 4096u
#define SLAVE_SECTORS 512u

/* The images' contents: byte i of sector s of disk d (0 master, 1 slave). Sector 0 does
 * not end in 0x55 0xaa, so neither QEMU nor bt86 takes a geometry from it. */
static uint8_t disk_byte(unsigned d, uint32_t s, unsigned i)
{
    return (uint8_t)(s * 7 + i * 13 + d * 0x5b + (s >> 8) * 3);
}

static uint16_t buf[4096];     /* 16 sectors */
static uint16_t expect[4096];

static void fill_expected(unsigned d, uint32_t lba, unsigned n)
{
    uint8_t *e = (uint8_t *)expect;
    for (unsigned s = 0; s < n; s++)
        for (unsigned i = 0; i < 512; i++)
            e[s * 512 + i] = disk_byte(d, lba + s, i);
}

static void fill_written(uint32_t seed, unsigned n)
{
    uint8_t *e = (uint8_t *)expect;
    for (unsigned i = 0; i < n * 512; i++)
        e[i] = (uint8_t)(seed + i * 29 + (i >> 9) * 101);
}

/* Waits (alternate status, interrupts untouched) until BSY is clear; the status. */
static uint8_t wait_not_busy(void)
{
    uint8_t st;
    for (uint32_t i = 0; i < 100000000u; i++) {
        st = inb(CONTROL);
        if (!(st & ST_BSY))
            return st;
    }
    rt_bail("the drive stays busy (status %x)", st);
}

static void select_drive(unsigned unit)
{
    outb(DEVICE, 0xe0 | (unit << 4));
    wait_not_busy();
}

static void task28(unsigned unit, uint32_t lba, uint8_t count)
{
    outb(DEVICE, 0xe0 | (unit << 4) | ((lba >> 24) & 0xf));
    outb(COUNT, count);
    outb(LBA0, lba & 0xff);
    outb(LBA1, (lba >> 8) & 0xff);
    outb(LBA2, (lba >> 16) & 0xff);
}

static void task48(unsigned unit, uint64_t lba, uint16_t count)
{
    outb(DEVICE, 0x40 | (unit << 4));
    outb(COUNT, count >> 8);
    outb(LBA0, (lba >> 24) & 0xff);
    outb(LBA1, (lba >> 32) & 0xff);
    outb(LBA2, (lba >> 40) & 0xff);
    outb(COUNT, count & 0xff);
    outb(LBA0, lba & 0xff);
    outb(LBA1, (lba >> 8) & 0xff);
    outb(LBA2, (lba >> 16) & 0xff);
}

static void pio_in(uint16_t *dst, unsigned words)
{
    asm volatile("cld; rep insw" : "+D"(dst), "+c"(words) : "d"(DATA) : "memory");
}

static void pio_out(const uint16_t *src, unsigned words)
{
    asm volatile("cld; rep outsw" : "+S"(src), "+c"(words) : "d"(DATA) : "memory");
}

/* ---- interrupts ------------------------------------------------------------------- */

static volatile uint32_t irqs;
static volatile uint8_t isr_status;
static int irq_reads_status = 1;

static void on_ide(struct trap_frame *f, uint32_t *eip)
{
    (void)f;
    (void)eip;
    irqs++;
    if (irq_reads_status)
        isr_status = inb(STATUS);
    rt_eoi(14);
}

/* Sleeps until the interrupt count passes `seen` (interrupts on while waiting). */
static void wait_irq(uint32_t seen)
{
    for (uint32_t i = 0; i < 1000000u && irqs == seen; i++)
        asm volatile("sti; hlt; cli" ::: "memory");
    if (irqs == seen)
        rt_bail("no IRQ 14");
}

/* Lets any pending interrupt in (a short window with IF set). */
static void settle(void)
{
    asm volatile("sti; nop; nop; nop; cli" ::: "memory");
}

/* ---- polled transfers ------------------------------------------------------------- */

/* A polled transfer of `n` sectors with command `cmd` in blocks of `block` sectors, into
 * buf (`dst`) or from `src`; checks the status before each block. Returns 1 if every
 * block came with DRDY|DSC|DRQ. */
static int polled(uint8_t cmd, uint16_t *dst, const uint16_t *src, unsigned n, unsigned block)
{
    int good = 1;
    outb(COMMAND, cmd);
    for (unsigned s = 0; s < n; s += block) {
        uint8_t st = wait_not_busy();
        if (st != (ST_DRDY | ST_DSC | ST_DRQ)) {
            rt_diag("status %x before sector %u", st, s);
            good = 0;
        }
        unsigned k = n - s < block ? n - s : block;
        if (dst)
            pio_in(dst + s * 256, k * 256);
        else
            pio_out(src + s * 256, k * 256);
    }
    wait_not_busy();
    return good;
}

static int polled_read(uint8_t cmd, unsigned n, unsigned block) { return polled(cmd, buf, 0, n, block); }

static int polled_write(uint8_t cmd, const uint16_t *src, unsigned n, unsigned block)
{
    return polled(cmd, 0, src, n, block);
}

static void read_back(unsigned unit, uint32_t lba, unsigned n)
{
    task28(unit, lba, n);
    polled_read(0x20, n, 1);
}

/* ---- the checks --------------------------------------------------------------------- */

static void check_reset(void)
{
    outb(CONTROL, CTL_NIEN | CTL_SRST);
    outb(CONTROL, CTL_NIEN);
    wait_not_busy();
    for (unsigned unit = 0; unit < 2; unit++) {
        outb(DEVICE, 0xa0 | (unit << 4));
        uint32_t regs = inb(ERROR) | inb(COUNT) << 8 | inb(LBA0) << 16 | (uint32_t)inb(LBA1) << 24;
        is(regs, 0x00010101, "SRST: unit %u diagnostic code 1, count 1, sector 1, cylinder low 0", unit);
        is(inb(LBA2), 0, "SRST: unit %u cylinder high 0 (an ATA device)", unit);
        is(inb(DEVICE), 0xa0 | (unit << 4), "SRST: unit %u device register", unit);
        is(inb(STATUS), ST_DRDY | ST_DSC, "SRST: unit %u status DRDY|DSC", unit);
    }
}

static void check_identify(unsigned unit, uint32_t sectors, const char *serial)
{
    select_drive(unit);
    outb(COMMAND, 0xec);
    is(wait_not_busy(), ST_DRDY | ST_DSC | ST_DRQ, "IDENTIFY unit %u: DRQ", unit);
    pio_in(buf, 256);
    is(inb(STATUS), ST_DRDY | ST_DSC, "IDENTIFY unit %u: done", unit);
    char model[41], ser[21], fw[9];
    for (int i = 0; i < 20; i++) {
        model[2 * i] = buf[27 + i] >> 8;
        model[2 * i + 1] = buf[27 + i] & 0xff;
    }
    model[40] = 0;
    for (int i = 0; i < 10; i++) {
        ser[2 * i] = buf[10 + i] >> 8;
        ser[2 * i + 1] = buf[10 + i] & 0xff;
    }
    ser[20] = 0;
    for (int i = 0; i < 4; i++) {
        fw[2 * i] = buf[23 + i] >> 8;
        fw[2 * i + 1] = buf[23 + i] & 0xff;
    }
    fw[8] = 0;
    ok(strncmp(model, "QEMU HARDDISK                           ", 40) == 0, "IDENTIFY unit %u: model '%s'", unit, model);
    ok(strncmp(ser, serial, 20) == 0, "IDENTIFY unit %u: serial '%s'", unit, ser);
    ok(strncmp(fw, "2.5+    ", 8) == 0, "IDENTIFY unit %u: firmware '%s'", unit, fw);
    is(buf[0], 0x0040, "IDENTIFY unit %u: word 0, a fixed ATA device", unit);
    is(buf[60] | (uint32_t)buf[61] << 16, sectors, "IDENTIFY unit %u: LBA28 sectors", unit);
    is(buf[100] | (uint32_t)buf[101] << 16, sectors, "IDENTIFY unit %u: LBA48 sectors", unit);
    is(buf[102] | buf[103], 0, "IDENTIFY unit %u: LBA48 sectors high", unit);
    is(buf[83] & 0x0400, 0x0400, "IDENTIFY unit %u: LBA48 supported", unit);
    is(buf[86] & 0x3400, 0x3400, "IDENTIFY unit %u: LBA48, FLUSH CACHE (EXT) enabled", unit);
    is(buf[49] & 0x0200, 0x0200, "IDENTIFY unit %u: LBA supported", unit);
    is(buf[47], 0x8010, "IDENTIFY unit %u: READ/WRITE MULTIPLE up to 16 sectors", unit);
    is(buf[59], 0x0110, "IDENTIFY unit %u: multiple count 16", unit);
    is(buf[1] << 16 | buf[3] << 8 | buf[6], (sectors / (16 * 63) < 2 ? 2 : sectors / (16 * 63)) << 16 | 16 << 8 | 63,
       "IDENTIFY unit %u: geometry C/H/S", unit);
    uint32_t h = FNV_INIT;
    for (int i = 0; i < 256; i++) {
        rt_diag("word %d: %x", i, buf[i]);
        h = fnv32(h, buf[i]);
    }
    ok(1, "IDENTIFY unit %u: words hash %x", unit, h);
}

static void check_reads(void)
{
    static const uint32_t lbas[] = { 0, 1, 255, 256, 2047, MASTER_SECTORS - 1 };
    for (unsigned i = 0; i < sizeof lbas / sizeof lbas[0]; i++) {
        task28(0, lbas[i], 1);
        int good = polled_read(0x20, 1, 1);
        fill_expected(0, lbas[i], 1);
        ok(good && memcmp(buf, expect, 512) == 0, "READ SECTORS master LBA %u", lbas[i]);
        is(inb(STATUS), ST_DRDY | ST_DSC, "READ SECTORS master LBA %u: done", lbas[i]);
    }
    task28(0, 100, 5);
    int good = polled_read(0x20, 5, 1);
    fill_expected(0, 100, 5);
    ok(good && memcmp(buf, expect, 5 * 512) == 0, "READ SECTORS 5 sectors, DRQ before each");
    uint32_t regs = inb(COUNT) | inb(LBA0) << 8 | inb(LBA1) << 16 | (uint32_t)inb(DEVICE) << 24;
    is(regs, 0xe0006900, "READ SECTORS: count 0, LBA 105 after");
    task28(1, 300, 2);
    good = polled_read(0x21, 2, 1);
    fill_expected(1, 300, 2);
    ok(good && memcmp(buf, expect, 2 * 512) == 0, "READ SECTORS (0x21) slave LBA 300");
    /* 32-bit data port reads. */
    task28(1, 17, 1);
    outb(COMMAND, 0x20);
    wait_not_busy();
    asm volatile("cld; rep insl" :: "D"(buf), "c"(128), "d"(DATA) : "memory");
    fill_expected(1, 17, 1);
    ok(memcmp(buf, expect, 512) == 0, "READ SECTORS with 32-bit data reads");
    /* A byte read of the data port takes a whole word (QEMU's port is 16 bits wide). */
    task28(0, 9, 1);
    outb(COMMAND, 0x20);
    wait_not_busy();
    is(inb(DATA), disk_byte(0, 9, 0), "byte read of the data port: the word's low byte");
    pio_in(buf, 255);
    fill_expected(0, 9, 1);
    ok(memcmp(buf, expect + 1, 510) == 0, "... and the next read is the next word");
    is(inw(DATA), 0, "data port without DRQ reads 0");
}

static void check_writes(void)
{
    fill_written(0x31, 3);
    task28(0, 1000, 3);
    int good = polled_write(0x30, expect, 3, 1);
    is(inb(STATUS), ST_DRDY | ST_DSC, "WRITE SECTORS 3 sectors: done");
    uint32_t regs = inb(COUNT) | inb(LBA0) << 8 | inb(LBA1) << 16;
    is(regs, 1003 << 8, "WRITE SECTORS: count 0, LBA 1003 after");
    read_back(0, 1000, 3);
    ok(good && memcmp(buf, expect, 3 * 512) == 0, "WRITE SECTORS then read back");
    read_back(0, 1003, 1);
    fill_expected(0, 1003, 1);
    ok(memcmp(buf, expect, 512) == 0, "the sector after is untouched");
    /* 32-bit data port writes. */
    fill_written(0x77, 1);
    task28(1, 40, 1);
    outb(COMMAND, 0x30);
    wait_not_busy();
    asm volatile("cld; rep outsl" :: "S"(expect), "c"(128), "d"(DATA) : "memory");
    is(wait_not_busy(), ST_DRDY | ST_DSC, "WRITE SECTORS with 32-bit writes: done");
    read_back(1, 40, 1);
    ok(memcmp(buf, expect, 512) == 0, "... read back from the slave");
}

static void check_multiple(void)
{
    select_drive(0);
    outb(COUNT, 3);
    outb(COMMAND, 0xc6);
    is(wait_not_busy(), ST_DRDY | ST_ERR, "SET MULTIPLE MODE 3: aborted");
    is(inb(ERROR), 0x04, "SET MULTIPLE MODE 3: ABRT");
    outb(COUNT, 32);
    outb(COMMAND, 0xc6);
    is(wait_not_busy(), ST_DRDY | ST_ERR, "SET MULTIPLE MODE 32: aborted");
    outb(COUNT, 4);
    outb(COMMAND, 0xc6);
    is(wait_not_busy(), ST_DRDY | ST_DSC, "SET MULTIPLE MODE 4");
    is(inb(ERROR), 0, "SET MULTIPLE MODE 4: no error");
    task28(0, 500, 10);
    int good = polled_read(0xc4, 10, 4);
    fill_expected(0, 500, 10);
    ok(good && memcmp(buf, expect, 10 * 512) == 0, "READ MULTIPLE 10 sectors in blocks of 4");
    fill_written(0x95, 6);
    task28(0, 1100, 6);
    good = polled_write(0xc5, expect, 6, 4);
    is(inb(STATUS), ST_DRDY | ST_DSC, "WRITE MULTIPLE 6 sectors: done");
    read_back(0, 1100, 6);
    ok(good && memcmp(buf, expect, 6 * 512) == 0, "WRITE MULTIPLE 6 sectors in blocks of 4, read back");
    outb(COUNT, 0);
    outb(COMMAND, 0xc6);
    is(wait_not_busy(), ST_DRDY | ST_DSC, "SET MULTIPLE MODE 0 (off)");
    task28(0, 500, 1);
    outb(COMMAND, 0xc4);
    is(wait_not_busy(), ST_DRDY | ST_ERR, "READ MULTIPLE with multiple mode off: aborted");
    outb(COUNT, 16);
    outb(COMMAND, 0xc6);
    is(wait_not_busy(), ST_DRDY | ST_DSC, "SET MULTIPLE MODE 16");
    outb(DEVICE, 0xa0);
    outb(COMMAND, 0xec);
    wait_not_busy();
    pio_in(buf, 256);
    is(buf[59], 0x0110, "IDENTIFY word 59 keeps the power-on multiple count");
}

static void check_lba48(void)
{
    task48(0, 3000, 2);
    int good = polled_read(0x24, 2, 1);
    fill_expected(0, 3000, 2);
    ok(good && memcmp(buf, expect, 2 * 512) == 0, "READ SECTORS EXT 2 sectors at 3000");
    is(inb(LBA0) | inb(LBA1) << 8, 3002, "READ SECTORS EXT: LBA low bytes after");
    outb(CONTROL, CTL_NIEN | CTL_HOB);
    is(inb(LBA0) | inb(LBA1) << 8 | inb(COUNT) << 16, 0, "READ SECTORS EXT: HOB bytes after");
    outb(CONTROL, CTL_NIEN);
    fill_written(0x4d, 2);
    task48(0, 3500, 2);
    good = polled_write(0x34, expect, 2, 1);
    is(inb(STATUS), ST_DRDY | ST_DSC, "WRITE SECTORS EXT: done");
    read_back(0, 3500, 2);
    ok(good && memcmp(buf, expect, 2 * 512) == 0, "WRITE SECTORS EXT, read back");
    task48(0, 3600, 3);
    good = polled_read(0x29, 3, 16);
    fill_expected(0, 3600, 3);
    ok(good && memcmp(buf, expect, 3 * 512) == 0, "READ MULTIPLE EXT 3 sectors, one block");
    fill_written(0x11, 2);
    task48(0, 3700, 2);
    good = polled_write(0x39, expect, 2, 16);
    read_back(0, 3700, 2);
    ok(good && memcmp(buf, expect, 2 * 512) == 0, "WRITE MULTIPLE EXT, read back");
    task48(0, (uint64_t)1 << 32, 1);
    outb(COMMAND, 0x24);
    is(wait_not_busy(), ST_DRDY | ST_ERR, "READ SECTORS EXT at 2^32: beyond the end");
    is(inb(ERROR), 0x04, "... ABRT");
    select_drive(0);
    outb(COMMAND, 0x27);
    is(wait_not_busy(), ST_DRDY | ST_DSC, "READ NATIVE MAX ADDRESS EXT");
    is(inb(LBA0) | inb(LBA1) << 8 | inb(LBA2) << 16, MASTER_SECTORS - 1, "... the last sector");
}

static void check_chs(void)
{
    /* 16 heads, 63 sectors: cylinder 1, head 2, sector 5 is LBA 1008 + 126 + 4. */
    outb(DEVICE, 0xa0 | 2);
    outb(COUNT, 2);
    outb(LBA0, 5);
    outb(LBA1, 1);
    outb(LBA2, 0);
    int good = polled_read(0x20, 2, 1);
    fill_expected(0, 1138, 2);
    ok(good && memcmp(buf, expect, 2 * 512) == 0, "READ SECTORS by CHS 1/2/5");
    is(inb(LBA0) | inb(LBA1) << 8 | (inb(DEVICE) & 0xf) << 16, 0x20107, "... CHS 1/2/7 after");
}

static void check_errors(void)
{
    task28(0, MASTER_SECTORS, 1);
    outb(COMMAND, 0x20);
    is(wait_not_busy(), ST_DRDY | ST_ERR, "READ SECTORS at the end: ERR");
    is(inb(ERROR), 0x04, "READ SECTORS at the end: ABRT");
    task28(0, MASTER_SECTORS - 1, 2);
    outb(COMMAND, 0x20);
    is(wait_not_busy(), ST_DRDY | ST_DSC | ST_DRQ, "READ 2 sectors from the last: the first comes");
    pio_in(buf, 256);
    is(wait_not_busy(), ST_DRDY | ST_ERR, "... the second is an error");
    is(inb(ERROR), 0x04, "... ABRT");
    fill_expected(0, MASTER_SECTORS - 1, 1);
    ok(memcmp(buf, expect, 512) == 0, "... and the first was right");
    task28(1, SLAVE_SECTORS, 1);
    outb(COMMAND, 0x30);
    is(wait_not_busy(), ST_DRDY | ST_DSC | ST_DRQ, "WRITE at the end: data asked for");
    pio_out(expect, 256);
    is(wait_not_busy(), ST_DRDY | ST_ERR, "WRITE at the end: ERR");
    is(inb(ERROR), 0x04, "WRITE at the end: ABRT");
    task28(0, 0, 1);
    outb(COMMAND, 0x20);
    is(wait_not_busy(), ST_DRDY | ST_DSC | ST_DRQ, "a read after the errors works");
    pio_in(buf, 256);
    is(inb(ERROR), 0, "... error register cleared");
    static const uint8_t bad[] = { 0xa1, 0xa0, 0x00, 0x50 };
    for (unsigned i = 0; i < sizeof bad; i++) {
        select_drive(0);
        outb(COMMAND, bad[i]);
        uint8_t st = wait_not_busy();
        is(st | inb(ERROR) << 8, 0x0400 | ST_DRDY | ST_ERR, "command %x aborted", bad[i]);
    }
    select_drive(0);
    outb(COMMAND, 0xe7);
    is(wait_not_busy(), ST_DRDY | ST_DSC, "FLUSH CACHE");
    outb(COMMAND, 0xea);
    is(wait_not_busy(), ST_DRDY | ST_DSC, "FLUSH CACHE EXT");
    outb(COMMAND, 0xe5);
    is(wait_not_busy(), ST_DRDY | ST_DSC, "CHECK POWER MODE");
    is(inb(COUNT), 0xff, "... active or idle");
}

static void check_interrupts(void)
{
    rt_set_hook(IRQ_BASE + 14, on_ide);
    outb(0x21, inb(0x21) & ~0x04);       /* cascade */
    outb(0xa1, inb(0xa1) & ~0x40);       /* IRQ 14 */
    select_drive(0);
    inb(STATUS);
    outb(CONTROL, 0);
    settle();
    irqs = 0;

    task28(0, 200, 3);
    outb(COMMAND, 0x20);
    for (unsigned s = 0; s < 3; s++) {
        wait_irq(s);
        if (isr_status != (ST_DRDY | ST_DSC | ST_DRQ))
            rt_diag("ISR status %x", isr_status);
        pio_in(buf + 256 * s, 256);
    }
    settle();
    fill_expected(0, 200, 3);
    ok(memcmp(buf, expect, 3 * 512) == 0, "IRQ-driven READ SECTORS 3 sectors");
    is(irqs, 3, "... one interrupt per sector, none at the end");

    irqs = 0;
    fill_written(0x5a, 2);
    task28(0, 1200, 2);
    outb(COMMAND, 0x30);
    is(wait_not_busy(), ST_DRDY | ST_DSC | ST_DRQ, "IRQ-driven WRITE: data asked for");
    settle();
    is(irqs, 0, "... without an interrupt");
    for (unsigned s = 0; s < 2; s++) {
        pio_out(expect + 256 * s, 256);
        wait_irq(s);
    }
    is(isr_status, ST_DRDY | ST_DSC, "... status after the last sector");
    is(irqs, 2, "... one interrupt per sector written");
    read_back(0, 1200, 2);
    settle();
    ok(memcmp(buf, expect, 2 * 512) == 0, "... read back");

    select_drive(0);
    outb(COUNT, 2);
    outb(COMMAND, 0xc6);
    wait_irq(irqs);
    irqs = 0;
    task28(0, 700, 5);
    outb(COMMAND, 0xc4);
    for (unsigned b = 0; b < 3; b++) {
        wait_irq(b);
        pio_in(buf + 512 * b, b == 2 ? 256 : 512);
    }
    settle();
    fill_expected(0, 700, 5);
    ok(memcmp(buf, expect, 5 * 512) == 0, "IRQ-driven READ MULTIPLE 5 sectors");
    is(irqs, 3, "... one interrupt per block of 2");

    irqs = 0;
    select_drive(1);
    outb(COMMAND, 0xec);
    wait_irq(0);
    pio_in(buf, 256);
    outb(COMMAND, 0xe7);
    wait_irq(1);
    outb(COMMAND, 0xea);
    wait_irq(2);
    settle();
    is(irqs, 3, "IDENTIFY, FLUSH CACHE, FLUSH CACHE EXT: an interrupt each");
    is(isr_status, ST_DRDY | ST_DSC, "... status DRDY|DSC");

    /* The line is a level: without a status read the next sector's interrupt is no new
     * edge, and the alternate status does not lower it; a command write does. */
    irq_reads_status = 0;
    irqs = 0;
    task28(1, 1, 2);
    outb(COMMAND, 0x20);
    wait_irq(0);
    pio_in(buf, 256);
    is(wait_not_busy(), ST_DRDY | ST_DSC | ST_DRQ, "no status read: the second sector is ready");
    settle();
    is(irqs, 1, "... without a new interrupt");
    inb(STATUS);
    pio_in(buf + 256, 256);
    outb(COMMAND, 0xe7);
    wait_irq(1);
    inb(CONTROL);
    outb(COMMAND, 0xe7);
    wait_irq(2);
    settle();
    is(irqs, 3, "the command register lowers the line, the alternate status does not");
    irq_reads_status = 1;
    inb(STATUS);

    /* nIEN: no interrupt at all. */
    outb(CONTROL, CTL_NIEN);
    irqs = 0;
    task28(0, 10, 2);
    polled_read(0x20, 2, 1);
    outb(COMMAND, 0xe7);
    wait_not_busy();
    settle();
    is(irqs, 0, "nIEN: no interrupts");
    fill_expected(0, 10, 2);
    ok(memcmp(buf, expect, 2 * 512) == 0, "nIEN: the polled read worked");
    /* SRST interrupts unless nIEN. */
    outb(CONTROL, CTL_SRST);
    outb(CONTROL, 0);
    wait_not_busy();
    settle();
    inb(STATUS);
    is(irqs, 1, "SRST without nIEN interrupts");
    outb(CONTROL, CTL_NIEN);
    outb(0xa1, inb(0xa1) | 0x40);
}

static void check_readonly(void)
{
    fill_written(0xee, 1);
    task28(0, 5, 1);
    outb(COMMAND, 0x30);
    uint8_t st = wait_not_busy();
    if (st & ST_DRQ)
        pio_out(expect, 256);
    is(wait_not_busy(), ST_DRDY | ST_ERR, "read-only disk: WRITE SECTORS aborted");
    is(inb(ERROR), 0x04, "... ABRT");
    read_back(0, 5, 1);
    fill_expected(0, 5, 1);
    ok(memcmp(buf, expect, 512) == 0, "... the sector is unchanged");
    outb(COMMAND, 0xe7);
    is(wait_not_busy(), ST_DRDY | ST_DSC, "read-only disk: FLUSH CACHE works");
}

/* Writes slave sectors 0, 1, 2, ... for ever, each with its number in every word, and
 * says on COM1 when each is written. */
static void write_loop(void)
{
    for (uint32_t s = 0;; s = (s + 1) % SLAVE_SECTORS) {
        for (int i = 0; i < 256; i++)
            buf[i] = (uint16_t)(s + 1);
        task28(1, s, 1);
        outb(COMMAND, 0x30);
        wait_not_busy();
        pio_out(buf, 256);
        if (wait_not_busy() != (ST_DRDY | ST_DSC))
            rt_bail("write of sector %u failed", s);
        rt_printf("written %u\n", s);
    }
}

void test_main(void)
{
    check_reset();
    if (rt_cmdline_has("writeloop"))
        write_loop();
    if (rt_cmdline_has("readonly")) {
        check_readonly();
        return;
    }
    check_identify(0, MASTER_SECTORS, "QM00001             ");
    check_identify(1, SLAVE_SECTORS, "QM00002             ");
    check_reads();
    check_writes();
    check_multiple();
    check_lba48();
    check_chs();
    check_errors();
    check_interrupts();
}
