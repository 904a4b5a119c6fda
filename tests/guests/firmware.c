/*
 * firmware - what a PC's BIOS leaves for the operating system, and QEMU's fw_cfg.
 *
 * BIOS data area: the COM and LPT port tables, the EBDA segment and its size, the base
 * memory size.  MP table: the floating pointer found where the specification says to look
 * (EBDA, then 0xF0000-0xFFFFF), its checksum and the configuration table's, one enabled
 * bootstrap processor with local APIC ID 0 whose signature and features are CPUID's, an
 * ISA bus, the I/O APIC (ID 0, version 0x11, at 0xFEC00000), the ISA IRQs routed to its
 * pins (IRQ 0 to pin 2, the others to their own pin, IRQ 9 somewhere on pin 9) and
 * ExtINT/NMI on LINT0/LINT1.  ACPI: the RSDP found in 0xE0000-0xFFFFF, the checksum of
 * every table the RSDT (and the XSDT, if the RSDP has one) lists, the FADT's fixed
 * hardware (SCI IRQ 9, PM1a event/control blocks 0x600/0x604, the 24-bit PM timer at
 * 0x608), the FACS, the DSDT's \_S5, the MADT (local APIC, I/O APIC with GSI base 0,
 * overrides IRQ 0 -> GSI 2 and IRQ 9 level/high, LINT1 NMI) and the HPET table against the
 * HPET's own ID register.  The PM timer after the ACPI enable handshake: it runs forward,
 * at roughly 3.58 MHz against the PIT (nothing timed is printed).  fw_cfg: signature, the
 * traditional interface bit, RAM size, CPU counts, etc/e820 in the file directory, no
 * command line for a Multiboot kernel.  At the end the kernel turns the machine off
 * through PM1a control with \_S5's sleep type (QEMU and bt86 exit with status 0).
 *
 * Left out, as QEMU's tables hold more or other values than a PC must: OEM IDs, table
 * revisions and lengths, QEMU's PCI bus and its PCI interrupt entries and overrides, the
 * SMI command port (0 on bt86: always in ACPI mode), fw_cfg's DMA bit and file keys.
 *
 * bt86's default tables are checked (the APICs and the HPET are announced now that those
 * devices are complete).
 *
 * bt86-exit-status: 0
 */
#include "rt.h"

static uint8_t rd8(uint32_t a) { return PHYS(a)[0]; }
static uint16_t rd16(uint32_t a) { return rd8(a) | (uint16_t)rd8(a + 1) << 8; }
static uint32_t rd32(uint32_t a) { return rd16(a) | (uint32_t)rd16(a + 2) << 16; }
static uint8_t sum(uint32_t a, uint32_t len)
{
    uint8_t s = 0;
    for (uint32_t i = 0; i < len; i++)
        s += rd8(a + i);
    return s;
}
static int sig(uint32_t a, const char *s) { return memcmp((const void *)a, s, strlen(s)) == 0; }

static uint32_t find16(uint32_t from, uint32_t to, const char *s)
{
    for (uint32_t a = from; a < to; a += 16)
        if (sig(a, s))
            return a;
    return 0;
}

/* ---- BIOS data area ---------------------------------------------------------------------- */
static void bda(void)
{
    is(rd16(0x400), 0x3f8, "BDA: COM1 at 0x3f8");
    is(rd16(0x402) | rd16(0x404) | rd16(0x406), 0, "BDA: no COM2-COM4");
    is(rd16(0x408) | rd16(0x40a) | rd16(0x40c), 0, "BDA: no LPT ports");
    is(rd16(0x40e), 0x9fc0, "BDA: EBDA segment");
    is(rd16(0x413), 639, "BDA: base memory 639 KiB");
    is(rd8(0x9fc00), 1, "EBDA: its size is 1 KiB");
}

/* ---- MP table ------------------------------------------------------------------------------ */
static void mptable(void)
{
    uint32_t ebda = (uint32_t)rd16(0x40e) << 4;
    uint32_t fp = find16(ebda, ebda + 1024, "_MP_");
    ok(fp == 0, "MP floating pointer not in the EBDA's first KiB");
    fp = find16(0xf0000, 0x100000, "_MP_");
    if (!ok(fp != 0, "MP floating pointer in 0xF0000-0xFFFFF"))
        return;
    is(sum(fp, 16), 0, "MP floating pointer checksum");
    is(rd8(fp + 8), 1, "MP floating pointer length (16 bytes)");
    is(rd8(fp + 9), 4, "MP specification revision 1.4");
    is(rd8(fp + 11), 0, "MP feature byte 1: a configuration table is present");
    uint32_t t = rd32(fp + 4);
    if (!ok(sig(t, "PCMP"), "MP configuration table signature"))
        return;
    uint32_t len = rd16(t + 4), count = rd16(t + 34);
    is(sum(t, len), 0, "MP configuration table checksum");
    is(rd8(t + 6), 4, "MP configuration table revision");
    is(rd32(t + 36), 0xfee00000, "MP: local APIC at 0xFEE00000");

    uint32_t a, b, c, d;
    cpuid(1, &a, &b, &c, &d);
    unsigned cpus = 0, isa = 0xff, ioapics = 0, extint = 0, nmi = 0, irq9 = 0, isa_irqs = 0;
    uint32_t ioapic_id = 0xff, at = t + 44;
    for (uint32_t i = 0; i < count && at < t + len; i++) {
        uint8_t type = rd8(at);
        if (type == 0) {
            cpus++;
            is(rd8(at + 1), 0, "MP processor: local APIC ID 0");
            is(rd8(at + 2), 0x14, "MP processor: local APIC version 0x14");
            is(rd8(at + 3), 3, "MP processor: enabled, bootstrap processor");
            is(rd32(at + 4), a, "MP processor: signature is CPUID 1 EAX");
            is(rd32(at + 8), d, "MP processor: features are CPUID 1 EDX");
            at += 20;
            continue;
        }
        if (type == 1 && sig(at + 2, "ISA   "))
            isa = rd8(at + 1);
        if (type == 2) {
            ioapics++;
            ioapic_id = rd8(at + 1);
            is(rd8(at + 1), 0, "MP I/O APIC: ID 0");
            is(rd8(at + 2), 0x11, "MP I/O APIC: version 0x11");
            is(rd8(at + 3), 1, "MP I/O APIC: enabled");
            is(rd32(at + 4), 0xfec00000, "MP I/O APIC: at 0xFEC00000");
        }
        if (type == 3 && rd8(at + 7) == 9 && rd8(at + 6) == ioapic_id)
            irq9 = 1;
        if (type == 3 && rd8(at + 4) == isa && rd8(at + 1) == 0) {
            uint8_t irq = rd8(at + 5), pin = rd8(at + 7);
            if (irq == 9)
                ;
            else if (irq == 2 || irq > 15)
                ok(0, "MP: no interrupt entry for ISA IRQ %u", irq);
            else if (irq != 5 && irq != 10 && irq != 11 && rd16(at + 2) == 0 && rd8(at + 6) == ioapic_id &&
                     pin == (irq == 0 ? 2 : irq))
                isa_irqs |= 1u << irq;
        }
        if (type == 4 && rd8(at + 1) == 3 && rd8(at + 7) == 0)
            extint++;
        if (type == 4 && rd8(at + 1) == 1 && rd8(at + 7) == 1)
            nmi++;
        at += 8;
    }
    is(at, t + len, "MP: the entries fill the table exactly");
    is(cpus, 1, "MP: one processor");
    ok(isa != 0xff, "MP: an ISA bus");
    is(ioapics, 1, "MP: one I/O APIC");
    is(isa_irqs, 0xf1db, "MP: ISA IRQs 0,1,3,4,6-8,12-15 to I/O APIC pins (IRQ 0 to pin 2), conforming");
    ok(irq9, "MP: IRQ 9 (the SCI) to I/O APIC pin 9");
    is(extint, 1, "MP: ExtINT to LINT0");
    is(nmi, 1, "MP: NMI to LINT1");
}

/* ---- ACPI ---------------------------------------------------------------------------------- */
static uint32_t facp, madt, hpet;

static void rsdp_and_tables(void)
{
    uint32_t r = find16(0xe0000, 0x100000, "RSD PTR ");
    if (!ok(r != 0, "ACPI RSDP in 0xE0000-0xFFFFF"))
        return;
    is(sum(r, 20), 0, "RSDP checksum");
    ok(rd8(r + 15) < 2 || sum(r, rd32(r + 20)) == 0, "RSDP extended checksum (revision 2 and later)");
    uint32_t rsdt = rd32(r + 16);
    if (!ok(sig(rsdt, "RSDT"), "RSDT signature"))
        return;
    uint32_t n = (rd32(rsdt + 4) - 36) / 4, bad = 0;
    is(sum(rsdt, rd32(rsdt + 4)), 0, "RSDT checksum");
    for (uint32_t i = 0; i < n; i++) {
        uint32_t t = rd32(rsdt + 36 + 4 * i);
        bad += sum(t, rd32(t + 4)) != 0;
        if (sig(t, "FACP"))
            facp = t;
        if (sig(t, "APIC"))
            madt = t;
        if (sig(t, "HPET"))
            hpet = t;
    }
    is(bad, 0, "the checksum of every table the RSDT lists");
    if (rd8(r + 15) >= 2 && rd32(r + 24)) {
        uint32_t x = rd32(r + 24), same = sig(x, "XSDT") && sum(x, rd32(x + 4)) == 0 && (rd32(x + 4) - 36) / 8 == n;
        for (uint32_t i = 0; same && i < n; i++)
            same = rd32(x + 36 + 8 * i) == rd32(rsdt + 36 + 4 * i) && rd32(x + 40 + 8 * i) == 0;
        ok(same, "XSDT (revision 2 RSDP): checksum, the RSDT's tables");
    } else {
        ok(1, "XSDT (revision 2 RSDP): checksum, the RSDT's tables");
    }
}

/* The SLP_TYPa value of \_S5 in the DSDT, or -1. */
static int s5_slp_typ(uint32_t dsdt)
{
    uint32_t len = rd32(dsdt + 4);
    for (uint32_t a = dsdt + 36; a + 8 < dsdt + len; a++) {
        if (rd8(a) != 0x08 || !sig(a + 1, "_S5_") || rd8(a + 5) != 0x12)
            continue;
        uint32_t e = a + 6 + 1 + ((rd8(a + 6) >> 6) & 3) + 1; /* PkgLength, NumElements */
        switch (rd8(e)) {
        case 0x00: return 0;
        case 0x01: return 1;
        case 0x0a: return rd8(e + 1);
        default: return -1;
        }
    }
    return -1;
}

static int slp_typ = -1;

static void fadt(void)
{
    if (!ok(facp != 0, "FADT present"))
        return;
    is(rd16(facp + 46), 9, "FADT: SCI on IRQ 9");
    is(rd32(facp + 56), 0x600, "FADT: PM1a event block at 0x600");
    is(rd32(facp + 64), 0x604, "FADT: PM1a control block at 0x604");
    is(rd32(facp + 76), 0x608, "FADT: PM timer at 0x608");
    is(rd8(facp + 88), 4, "FADT: PM1 event block length 4");
    is(rd8(facp + 89), 2, "FADT: PM1 control block length 2");
    is(rd8(facp + 91), 4, "FADT: PM timer block length 4");
    is(rd32(facp + 112), 0x80a5, "FADT flags: WBINVD, C1, no sleep button, RTC S4, platform clock; 24-bit timer");
    is(rd8(facp + 108), 0x32, "FADT: RTC century at CMOS 0x32");
    uint32_t facs = rd32(facp + 36);
    ok(sig(facs, "FACS") && rd32(facs + 4) == 64 && facs % 64 == 0, "FACS: signature, 64 bytes, 64-byte aligned");
    uint32_t dsdt = rd32(facp + 40);
    ok(sig(dsdt, "DSDT") && sum(dsdt, rd32(dsdt + 4)) == 0, "DSDT: signature and checksum");
    slp_typ = s5_slp_typ(dsdt);
    is(slp_typ, 0, "DSDT: \\_S5 with SLP_TYP 0");
}

static void madt_table(void)
{
    if (!ok(madt != 0, "MADT present"))
        return;
    is(rd32(madt + 36), 0xfee00000, "MADT: local APIC at 0xFEE00000");
    is(rd32(madt + 40) & 1, 1, "MADT: PC/AT-compatible 8259s");
    unsigned lapics = 0, ioapics = 0, iso0 = 0, iso9 = 0, nmi = 0;
    uint32_t end = madt + rd32(madt + 4), at = madt + 44;
    while (at < end && rd8(at + 1)) {
        switch (rd8(at)) {
        case 0:
            lapics++;
            is(rd8(at + 3) | (rd32(at + 4) & 1) << 8, 0x100, "MADT: processor with local APIC ID 0, enabled");
            break;
        case 1:
            ioapics++;
            is(rd8(at + 2), 0, "MADT I/O APIC: ID 0");
            is(rd32(at + 4), 0xfec00000, "MADT I/O APIC: at 0xFEC00000");
            is(rd32(at + 8), 0, "MADT I/O APIC: GSI base 0");
            break;
        case 2:
            if (rd8(at + 3) == 0)
                iso0 = rd8(at + 2) == 0 && rd32(at + 4) == 2 && rd16(at + 8) == 0;
            if (rd8(at + 3) == 9)
                iso9 = rd8(at + 2) == 0 && rd32(at + 4) == 9 && rd16(at + 8) == 0x000d;
            break;
        case 4:
            nmi += rd8(at + 2) == 0xff && rd8(at + 5) == 1;
            break;
        }
        at += rd8(at + 1);
    }
    is(at, end, "MADT: the entries fill the table exactly");
    is(lapics, 1, "MADT: one processor");
    is(ioapics, 1, "MADT: one I/O APIC");
    ok(iso0, "MADT: override ISA IRQ 0 -> GSI 2, bus default flags");
    ok(iso9, "MADT: override ISA IRQ 9 -> GSI 9, level, active high");
    is(nmi, 1, "MADT: NMI on LINT1 of every processor");
}

static void hpet_table(void)
{
    if (!ok(hpet != 0, "HPET table present"))
        return;
    is(rd32(hpet + 36), *(volatile uint32_t *)PHYS(0xfed00000), "HPET table: event timer block ID is the HPET's ID register");
    is(rd8(hpet + 40), 0, "HPET table: base address in system memory");
    is(rd32(hpet + 44) | rd32(hpet + 48), 0xfed00000, "HPET table: base address 0xFED00000");
    is(rd8(hpet + 52), 0, "HPET table: HPET number 0");
}

/* ---- PM registers ---------------------------------------------------------------------- */
static void pm(void)
{
    if (!facp)
        return;
    uint32_t smi = rd32(facp + 48);
    if (smi && !(inw(0x604) & 1))
        outb(smi, rd8(facp + 52)); /* ACPI_ENABLE */
    for (int i = 0; i < 1000000 && !(inw(0x604) & 1); i++)
        ;
    is(inw(0x604) & 1, 1, "PM1a control: SCI_EN after the ACPI enable handshake");

    uint32_t prev = inl(0x608), back = 0, high = 0;
    for (int i = 0; i < 1000; i++) {
        uint32_t v = inl(0x608);
        high |= v >> 24;
        back += ((v - prev) & 0xffffff) > 0x800000;
        prev = v;
    }
    is(high, 0, "PM timer: 24 bits");
    is(back, 0, "PM timer: never goes back");

    /* Against PIT channel 2 counting 0xffff ticks (54.9 ms): 196,600 PM timer ticks.  A
     * busy host can delay the polling loop: the best of five tries counts. */
    uint8_t p61 = inb(0x61);
    int close = 0;
    for (int try = 0; try < 5 && !close; try++) {
        outb(0x61, (p61 & ~0x02) | 0x01);
        outb(0x43, 0xb0);
        outb(0x42, 0xff);
        uint32_t start = inl(0x608), spins = 0;
        outb(0x42, 0xff);
        while (!(inb(0x61) & 0x20) && spins < 100000000)
            spins++;
        uint32_t ticks = (inl(0x608) - start) & 0xffffff;
        rt_diag("PM timer ticks in 0xffff PIT ticks: %u", ticks);
        close = ticks > 176940 && ticks < 216260;
        outb(0x61, p61);
    }
    ok(close, "PM timer: 3.58 MHz against the PIT, within 10%%");
}

/* ---- fw_cfg ---------------------------------------------------------------------------- */
static void fw_select(uint16_t key) { outw(0x510, key); }
static uint32_t fw_le(int n)
{
    uint32_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint32_t)inb(0x511) << (8 * i);
    return v;
}
static uint32_t fw_be(int n)
{
    uint32_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | inb(0x511);
    return v;
}

static void fw_cfg(void)
{
    fw_select(0x00);
    is(fw_le(4), 0x554d4551, "fw_cfg: signature \"QEMU\"");
    fw_select(0x01);
    is(fw_le(4) & 1, 1, "fw_cfg: ID has the traditional interface");
    fw_select(0x03);
    uint32_t lo = fw_le(4), hi = fw_le(4);
    is64((uint64_t)hi << 32 | lo, 128u << 20, "fw_cfg: RAM size 128 MiB");
    fw_select(0x05);
    is(fw_le(2), 1, "fw_cfg: one CPU");
    fw_select(0x0f);
    is(fw_le(2), 1, "fw_cfg: at most one CPU");
    fw_select(0x14);
    is(fw_le(4), 0, "fw_cfg: no command line for a Multiboot kernel");

    fw_select(0x19);
    uint32_t files = fw_be(4), e820_key = 0, e820_size = 0;
    for (uint32_t i = 0; i < files && i < 64; i++) {
        uint32_t size = fw_be(4), key = fw_be(2);
        fw_be(2);
        char name[56];
        for (int j = 0; j < 56; j++)
            name[j] = inb(0x511);
        if (!strncmp(name, "etc/e820", 9)) {
            e820_key = key;
            e820_size = size;
        }
    }
    if (!ok(e820_key != 0, "fw_cfg: etc/e820 in the file directory"))
        return;
    is(e820_size, 20, "fw_cfg etc/e820: one entry");
    fw_select(e820_key);
    uint32_t a_lo = fw_le(4), a_hi = fw_le(4), l_lo = fw_le(4), l_hi = fw_le(4), type = fw_le(4);
    is64((uint64_t)a_hi << 32 | a_lo, 0, "fw_cfg etc/e820: RAM from 0");
    is64((uint64_t)l_hi << 32 | l_lo, 128u << 20, "fw_cfg etc/e820: 128 MiB");
    is(type, 1, "fw_cfg etc/e820: usable RAM");
}

void test_main(void)
{
    bda();
    mptable();
    rsdp_and_tables();
    fadt();
    madt_table();
    hpet_table();
    pm();
    fw_cfg();
    tap_plan(tap_count);
    if (slp_typ >= 0) {
        /* \_S5: SLP_TYP | SLP_EN, as an OS powers off. */
        outw(0x604, (inw(0x604) & 1) | (uint16_t)(slp_typ << 10) | (1 << 13));
        for (volatile int i = 0; i < 1000000; i++)
            ;
    }
    rt_printf("# still running after the S5 request\n");
    rt_exit(EXIT_DONE);
}
