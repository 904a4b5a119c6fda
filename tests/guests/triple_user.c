/*
 * triple_user - a triple fault raised by user code, with paging on.
 *
 * bt86-exit-status: 3
 *
 * First boot: leave a marker in RAM at 9 MiB (as triple does at 8 MiB), turn paging on
 * (the first 16 MiB identity-mapped with 4 MiB user pages), empty the IDT entries of #UD,
 * #DF, #NP and #GP, and run `ud2` at CPL 3 with interrupts on: #UD's entry is no gate
 * (#GP(0x32)), nor is #GP's (a second contributory fault: #DF), nor #DF's (#GP(0x42)): a
 * triple fault.  Under bt86 the user code runs natively (direct execution: the fault
 * comes back from the host CPU) or through the translator, by --user-exec mode.
 *
 * The machine resets (QEMU and bt86, neither with -no-reboot / --no-reboot): paging is
 * off again, RAM kept; the second boot finds the marker and exits through port 0xf4 with
 * 1 (host status 3) without printing anything more.
 */
#include "rt.h"
#include "user.h"

#define MARK_AT 0x00900000u
#define MARK 0x5e7a17edu

static uint32_t pd[1024] __attribute__((aligned(4096)));

static void user_code(void)
{
    asm volatile("ud2");
}

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
    for (uint32_t i = 0; i < 4; i++)
        pd[i] = (i << 22) | 0x87;     /* 4 MiB page, user, writable, present */
    write_cr4(read_cr4() | CR4_PSE);
    write_cr3((uint32_t)pd);
    write_cr0(read_cr0() | CR0_PG);
    user_setup();
    static const unsigned missing[] = { 6, 8, 11, 13 };   /* #UD, #DF, #NP, #GP */
    for (unsigned i = 0; i < sizeof missing / sizeof missing[0]; i++)
        rt_idt_set(missing[i], 0, 0, 0);                   /* type 0, not present */
    ok(1, "paging on, marker written; user code triple-faults next");
    user_enter(user_code);
    rt_printf("not ok 3 - the triple fault did not reset the machine\n");
    m[0] = 0;
    rt_exit(EXIT_DONE);
}
