/*
 * triple - a triple fault.
 *
 * bt86-exit-status: 3
 *
 * First boot: leave a marker in RAM at 8 MiB (outside the kernel image, which the loader
 * reloads, and outside what the firmware touches on a reset), print the plan and two "ok"
 * lines, then load an IDT with limit 0 and execute int3: the #GP for the missing gate cannot
 * be delivered either (#DF), nor the #DF: a triple fault.
 *
 * QEMU and bt86 reset the machine (neither runs with -no-reboot / --no-reboot); RAM
 * survives the reset, the kernel is loaded again, finds the marker and exits through port
 * 0xf4 with 1 (host status 3) without printing anything more.  bt86 also says on stderr
 * that the machine resets.  With -no-reboot / --no-reboot both end at the triple fault
 * with status 0 and the same serial output (bt86 then dumps the guest state on stderr);
 * tests/machine.rs checks that.
 */
#include "rt.h"

#define MARK_AT 0x00800000u
#define MARK 0x7219fa17u

void test_main(void)
{
    volatile uint32_t *m = (volatile uint32_t *)PHYS(MARK_AT);
    if (m[0] == MARK && m[1] == ~MARK) {
        m[0] = 0;                     /* a third boot would start afresh */
        rt_exit(EXIT_REBOOT);
    }
    tap_plan(2);
    ok(m[0] != MARK, "first boot: no reset marker in RAM");
    m[0] = MARK;
    m[1] = ~MARK;
    ok(1, "marker written; a triple fault comes next");
    struct { uint16_t pad, limit; uint32_t base; } __attribute__((packed)) idtr = { 0, 0, 0 };
    asm volatile("lidt %0; int3" :: "m"(idtr.limit) : "memory");
    rt_printf("not ok 3 - the triple fault did not stop or reset the machine\n");
    m[0] = 0;
    rt_exit(EXIT_DONE);
}
