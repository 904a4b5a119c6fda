/*
 * working_set - more pages than a shadow MMU can keep mapped at once: a guest touching
 * them all, again and again, must see what the page tables say every time, with the
 * accessed and dirty bits set exactly as hardware sets them.
 *
 * 6144 4 KiB pages (24 MiB) at linear 1 GiB whose frames are scattered (no two
 * neighbouring pages have neighbouring frames, so each page is a separate host mapping in
 * bt86); 8 4 MiB pages at linear 2 GiB. The oracle runs this kernel (and all others) once
 * more with BT86_MAX_MAPPINGS set to bt86's minimum, where every sweep evicts.
 *
 *   sweeps       each page written with its own marker, then read back, three times over
 *   ad_bits      A and D cleared (CR3 reload), then a third of the pages read, a third
 *                written, a third left alone: A and D in every PTE as hardware leaves them
 *   remap        the PTEs pointed at other frames (CR3 reload): the data follows the frames
 *   large        4 MiB pages written and read back, one dword per 4 KiB
 *   user         the same at CPL 3 (the pages are user pages; under bt86's direct
 *                execution, user code reaches them through a process of its own, whose
 *                copy of the user window follows every fill and eviction): sweeps
 *                written and read back twice, then A and D cleared (CR3 reload) and a
 *                third of the pages read, a third written, and the bits checked
 */
#include "rt.h"
#include "user.h"

#define PTE_P 0x001u
#define PTE_W 0x002u
#define PTE_U 0x004u
#define PTE_A 0x020u
#define PTE_D 0x040u
#define PDE_PS 0x080u
#define PTE_G 0x100u

#define WS_VA 0x40000000u
#define WS_PAGES 6144u
#define WS_FRAMES 0x01000000u      /* frames: [16 MiB, 40 MiB) */
#define LARGE_VA 0x80000000u
#define LARGE_PHYS 0x03000000u     /* [48 MiB, 80 MiB) */
#define LARGE_PAGES 8u

static uint32_t pd[1024] __attribute__((aligned(4096)));
static uint32_t pt[WS_PAGES / 1024][1024] __attribute__((aligned(4096)));

static inline volatile uint32_t *lin(uint32_t a) { return (volatile uint32_t *)PHYS(a); }

/* The frame of page i under permutation `mul` (prime, so a permutation of 0..WS_PAGES). */
static uint32_t frame(uint32_t i, uint32_t mul) { return WS_FRAMES + ((i * mul) % WS_PAGES) * 4096u; }
static uint32_t *pte(uint32_t i) { return &pt[i / 1024][i % 1024]; }
static uint32_t marker(uint32_t i, uint32_t round) { return (i * 2654435761u) ^ (round << 24) ^ 0x5a5a5a5au; }
/* Where in its page page i keeps its marker: a different dword in each. */
static uint32_t slot(uint32_t i) { return WS_VA + i * 4096u + (i * 4u) % 4096u; }

static void map_all(uint32_t mul)
{
    for (uint32_t i = 0; i < WS_PAGES; i++)
        *pte(i) = frame(i, mul) | PTE_U | PTE_W | PTE_P;
    write_cr3((uint32_t)pd);
}

static void setup(void)
{
    for (uint32_t i = 0; i < 4; i++)                  /* the kernel: 16 MiB, global */
        pd[i] = (i << 22) | PDE_PS | PTE_G | PTE_W | PTE_P;
    pd[0] |= PTE_U;                                   /* user code runs from the image */
    for (uint32_t t = 0; t < WS_PAGES / 1024; t++)
        pd[(WS_VA >> 22) + t] = (uint32_t)pt[t] | PTE_U | PTE_W | PTE_P;
    for (uint32_t i = 0; i < LARGE_PAGES; i++)
        pd[(LARGE_VA >> 22) + i] = (LARGE_PHYS + (i << 22)) | PDE_PS | PTE_W | PTE_P;
    map_all(389);
    write_cr4(read_cr4() | CR4_PSE | CR4_PGE);
    write_cr0(read_cr0() | CR0_PG | CR0_WP);
    user_setup();
}

static void sweeps(void)
{
    for (uint32_t round = 1; round <= 3; round++) {
        for (uint32_t i = 0; i < WS_PAGES; i++)
            *lin(slot(i)) = marker(i, round);
        uint32_t bad = 0, first_bad = ~0u;
        for (uint32_t i = 0; i < WS_PAGES; i++)
            if (*lin(slot(i)) != marker(i, round) && bad++ == 0)
                first_bad = i;
        is(bad, 0, "sweep %u: every page reads back its marker (first bad page %d)", round, (int)first_bad);
    }
}

static void ad_bits(void)
{
    for (uint32_t i = 0; i < WS_PAGES; i++)
        *pte(i) &= ~(PTE_A | PTE_D);
    write_cr3((uint32_t)pd);
    uint32_t sum = 0;
    for (uint32_t i = 0; i < WS_PAGES; i++) {
        if (i % 3 == 0)
            sum += *lin(slot(i));
        else if (i % 3 == 1)
            *lin(slot(i)) = marker(i, 4);
    }
    uint32_t want = 0;
    for (uint32_t i = 0; i < WS_PAGES; i += 3)
        want += marker(i, 3);
    is(sum, want, "a third of the pages read: their markers");
    uint32_t bad_a = 0, bad_d = 0;
    for (uint32_t i = 0; i < WS_PAGES; i++) {
        uint32_t e = *pte(i);
        bad_a += !!(e & PTE_A) != (i % 3 != 2);
        bad_d += !!(e & PTE_D) != (i % 3 == 1);
    }
    is(bad_a, 0, "accessed bits: set in exactly the pages touched");
    is(bad_d, 0, "dirty bits: set in exactly the pages written");
    /* Sweep again (everything accessed now) and check nothing else changed. */
    for (uint32_t i = 2; i < WS_PAGES; i += 3)
        sum += *lin(slot(i));
    bad_d = 0;
    for (uint32_t i = 0; i < WS_PAGES; i++)
        bad_d += !!(*pte(i) & PTE_D) != (i % 3 == 1);
    is(bad_d, 0, "reads after that set no dirty bit");
}

static void remap(void)
{
    /* Record what each frame holds now, then map page i to the frame of page j. */
    map_all(1031);
    uint32_t bad = 0;
    for (uint32_t i = 0; i < WS_PAGES; i++) {
        /* Page i now maps frame(i, 1031), which under 389 was page j's: find j. */
        uint32_t k = (i * 1031u) % WS_PAGES, j = 0;
        while ((j * 389u) % WS_PAGES != k)
            j++;
        uint32_t want = j % 3 == 1 ? marker(j, 4) : marker(j, 3);
        if (*lin(WS_VA + i * 4096u + (j * 4u) % 4096u) != want)
            bad++;
    }
    is(bad, 0, "remapped pages show their new frames' data");
}

static void large(void)
{
    for (uint32_t round = 0; round < 2; round++) {
        for (uint32_t p = 0; p < LARGE_PAGES * 1024; p++)
            *lin(LARGE_VA + p * 4096u + 8) = marker(p, round + 8);
        uint32_t bad = 0;
        for (uint32_t p = 0; p < LARGE_PAGES * 1024; p++)
            bad += *lin(LARGE_VA + p * 4096u + 8) != marker(p, round + 8);
        is(bad, 0, "4 MiB pages, round %u: every 4 KiB reads back", round);
    }
    uint32_t dirty = 0;
    for (uint32_t i = 0; i < LARGE_PAGES; i++)
        dirty += (pd[(LARGE_VA >> 22) + i] & (PTE_A | PTE_D)) == (PTE_A | PTE_D);
    is(dirty, LARGE_PAGES, "4 MiB pages accessed and dirty");
}

/* CPL 3: round u_round's markers written into every page, then read back; u_bad counts
 * the pages that differ, u_first_bad is the first. With u_round = 0: pages i % 3 == 0 read
 * (summed into u_sum), i % 3 == 1 written with round 7's marker, the rest left alone. */
volatile uint32_t u_round, u_bad, u_first_bad, u_sum;
static void u_sweep(void)
{
    uint32_t round = u_round, bad = 0, first_bad = ~0u, sum = 0;
    if (round == 0) {
        for (uint32_t i = 0; i < WS_PAGES; i++) {
            if (i % 3 == 0)
                sum += *lin(slot(i));
            else if (i % 3 == 1)
                *lin(slot(i)) = marker(i, 7);
        }
        u_sum = sum;
        return;
    }
    for (uint32_t i = 0; i < WS_PAGES; i++)
        *lin(slot(i)) = marker(i, round);
    for (uint32_t i = 0; i < WS_PAGES; i++)
        if (*lin(slot(i)) != marker(i, round) && bad++ == 0)
            first_bad = i;
    u_bad = bad;
    u_first_bad = first_bad;
}

static void user(void)
{
    map_all(389);
    for (uint32_t round = 5; round <= 6; round++) {
        u_round = round;
        user_enter(u_sweep);
        is(u_bad, 0, "CPL 3 sweep %u: every page reads back its marker (first bad page %d)", round, (int)u_first_bad);
        uint32_t bad = 0;
        for (uint32_t i = 0; i < WS_PAGES; i++)
            bad += *lin(slot(i)) != marker(i, round);
        is(bad, 0, "CPL 3 sweep %u: and the kernel reads them", round);
    }
    for (uint32_t i = 0; i < WS_PAGES; i++)
        *pte(i) &= ~(PTE_A | PTE_D);
    write_cr3((uint32_t)pd);
    u_round = 0;
    user_enter(u_sweep);
    uint32_t want = 0;
    for (uint32_t i = 0; i < WS_PAGES; i += 3)
        want += marker(i, 6);
    is(u_sum, want, "CPL 3: a third of the pages read: their markers");
    uint32_t bad_a = 0, bad_d = 0, bad_w = 0;
    for (uint32_t i = 0; i < WS_PAGES; i++) {
        uint32_t e = *pte(i);
        bad_a += !!(e & PTE_A) != (i % 3 != 2);
        bad_d += !!(e & PTE_D) != (i % 3 == 1);
        bad_w += *lin(slot(i)) != marker(i, i % 3 == 1 ? 7 : 6);
    }
    is(bad_a, 0, "CPL 3: accessed bits set in exactly the pages touched");
    is(bad_d, 0, "CPL 3: dirty bits set in exactly the pages written");
    is(bad_w, 0, "CPL 3: the writes landed");
}

void test_main(void)
{
    setup();
    sweeps();
    ad_bits();
    remap();
    large();
    user();
    write_cr0(read_cr0() & ~CR0_PG);
    ok(!(read_cr0() & CR0_PG), "paging off again");
}
