/*
 * multiboot - the Multiboot (v1) handoff.
 *
 * bt86-append: mbtest alpha=1 beta=two,three
 *
 * The machine state at entry (EAX magic, EFLAGS.IF and VM clear, CR0.PE set and PG clear,
 * A20 enabled), the info structure (in RAM, not overlapping the kernel image), its flags
 * (memory, command line and memory map present), mem_lower/mem_upper, the memory map and
 * the command line.
 *
 * What is compared, so that any correct loader for a 128 MiB PC agrees with QEMU:
 *  - mem_lower is 639 (KiB: 640 KiB less the 1 KiB EBDA, as on a PC BIOS), and the map
 *    has an available entry at 0 of exactly mem_lower KiB;
 *  - the map has an available entry starting at 1 MiB whose end lies between 127 MiB and
 *    128 MiB (QEMU's SeaBIOS keeps the top 128 KiB: it ends at 0x7fe0000), and mem_upper is
 *    its length in KiB;
 *  - no available entry touches 640 KiB..1 MiB or lies between 128 MiB and 4 GiB;
 *  - every entry's size field is at least 20 and the entries fill mmap_length exactly.
 *  The command line must end with this kernel's "bt86-append" string, after nothing or
 *  after a blank (QEMU passes "KERNEL-PATH APPEND"; printing the path would be
 *  host-dependent, so it is never printed).
 */
#include "rt.h"

#define APPEND "mbtest alpha=1 beta=two,three"

struct mbi {
    uint32_t flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
    uint32_t syms[4];
    uint32_t mmap_length, mmap_addr;
};

static int overlaps_image(uint32_t a, uint32_t len)
{
    return a < (uint32_t)__image_end && a + len > (uint32_t)__image_start;
}

void test_main(void)
{
    is(rt_mb_magic, 0x2badb002, "EAX = 0x2badb002");
    is(rt_entry_eflags & (FL_IF | 0x20000), 0, "entry: EFLAGS.IF and VM clear");
    is(rt_entry_cr0 & (CR0_PE | CR0_PG), CR0_PE, "entry: CR0.PE set, PG clear");
    volatile uint32_t *lo = (volatile uint32_t *)PHYS(0x200000), *hi = (volatile uint32_t *)PHYS(0x300000);
    *lo = 0x11111111;
    *hi = 0x22222222;
    ok(*lo == 0x11111111, "A20 enabled: 3 MiB does not alias 2 MiB");

    const struct mbi *m = (const struct mbi *)rt_mb_info;
    ok(rt_mb_info >= 0x1000 && rt_mb_info < 0x8000000 && !overlaps_image(rt_mb_info, sizeof *m),
       "info structure in RAM, outside the kernel image");
    is(m->flags & 0x45, 0x45, "flags: mem_*, cmdline and mmap present");
    is(m->mem_lower, 639, "mem_lower = 639 KiB");

    /* the memory map */
    uint32_t p = m->mmap_addr, end = m->mmap_addr + m->mmap_length;
    ok(m->mmap_length >= 2 * 24 && !overlaps_image(m->mmap_addr, m->mmap_length), "mmap outside the kernel image");
    int low_ok = 0, high_ok = 0, hole_ok = 1, above_ok = 1, sizes_ok = 1;
    uint32_t high_len = 0;
    while (p < end) {
        const uint32_t *e = (const uint32_t *)p;
        uint32_t size = e[0];
        uint64_t base = e[1] | ((uint64_t)e[2] << 32), len = e[3] | ((uint64_t)e[4] << 32);
        uint32_t type = e[5];
        if (size < 20)
            sizes_ok = 0;
        rt_diag("mmap: base 0x%llx length 0x%llx type %u", base, len, type);
        if (type == 1) {
            if (base == 0 && len == (uint64_t)m->mem_lower * 1024)
                low_ok = 1;
            if (base == 0x100000 && base + len >= 127u << 20 && base + len <= 128u << 20) {
                high_ok = 1;
                high_len = (uint32_t)len;
            }
            if (base < 0x100000 && base + len > 0xa0000)
                hole_ok = 0;
            if (base + len > 128u << 20 && base < 0x100000000ull)
                above_ok = 0;
        }
        p += size + 4;
    }
    ok(sizes_ok && p == end, "mmap entries: size fields >= 20, filling mmap_length");
    ok(low_ok, "mmap: available RAM at 0, mem_lower KiB long");
    ok(high_ok, "mmap: available RAM from 1 MiB up to between 127 and 128 MiB");
    is(m->mem_upper, high_len / 1024, "mem_upper = that RAM in KiB");
    ok(hole_ok, "mmap: nothing available between 640 KiB and 1 MiB");
    ok(above_ok, "mmap: nothing available above 128 MiB");

    /* the command line */
    const char *c = (const char *)m->cmdline;
    size_t n = strlen(c), k = strlen(APPEND);
    ok(!overlaps_image(m->cmdline, n + 1), "command line outside the kernel image");
    ok(n >= k && !strncmp(c + n - k, APPEND, k) && (n == k || c[n - k - 1] == ' '),
       "command line ends with \"" APPEND "\"");
    ok(rt_cmdline_has("alpha=1") && rt_cmdline_has("beta=two,three") && !rt_cmdline_has("alpha"),
       "command line words");
}
