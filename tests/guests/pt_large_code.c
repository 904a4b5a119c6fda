/*
 * pt_large_code - code in a 4 MiB page after its PDE changed and an invlpg of another
 * address in the page: it must run from the new frame.
 *
 * bt86-only: QEMU 7.2 keeps translated code of the page's other 4 KiB pieces (its jump
 * cache is cleared for the invlpg'd page only), so it may run the old frame's code; a CPU
 * drops every TLB entry of a large page at an invlpg of any address in it.
 *
 * The kernel: pt.h's layout and BIG (0x40000000), a user 4 MiB page at 8 MiB and then at
 * 12 MiB, holding code (`mov $imm, %eax; ret`) at offset 1 MiB in both frames and data
 * elsewhere. The code runs at CPL 0 and at CPL 3 (through an indirect call, as pt.h's
 * probes make it), the PDE changes, invlpg of an address 3 MiB away, and the code runs
 * again, several times back and forth; the data is checked too.
 */
#include "pt.h"

#define BIG 0x40000000u
#define M8  0x00800000u
#define M12 0x00c00000u
#define CODE 0x100000u
#define DATA 0x3ff008u

static uint32_t pd[1024] __attribute__((aligned(4096)));

static uint32_t code_of(uint32_t frame) { return 0xc0de0000u | (frame >> 20); }

void test_main(void)
{
    pt_setup(pd);
    for (uint32_t f = M8; f <= M12; f += M12 - M8) {
        code_ret(PHYS(f + CODE), code_of(f));
        *lin(f + DATA) = f ^ 0xda7a;
    }
    uint32_t frame = M8;
    pd[BIG >> 22] = frame | PG_PS | PG_U | PG_W | PG_P;
    for (unsigned round = 0; round < 4; round++) {
        for (int user = 0; user < 2; user++)
            reads(probe(user, EX, BIG + CODE, 0), code_of(frame), "round %u, %s: the code of frame %u MiB", round,
                  user ? "CPL 3" : "CPL 0", frame >> 20);
        reads(probe(round & 1, RD, BIG + DATA, 0), frame ^ 0xda7a, "round %u: the data", round);
        frame = frame == M8 ? M12 : M8;
        pd[BIG >> 22] = frame | PG_PS | PG_U | PG_W | PG_P;
        invlpg(BIG + 0x3ff000 - round * 0x1000);
    }
    pt_paging_off();
}
