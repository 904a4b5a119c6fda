/*
 * pit.h - the 8254 PIT as a test kernel's stopwatch: channel 0 programming, and channel 2
 * gated and polled through port 0x61 the way Linux calibrates the TSC (OUT2 low while
 * counting, high at terminal count). Time measured this way is the machine's own, under
 * bt86 and QEMU alike.
 */
#ifndef BT86_PIT_H
#define BT86_PIT_H

#include "rt.h"

#define PIT_HZ 1193182u

/* Channel 0: mode command, then the count low byte, high byte. */
static inline void pit0(uint8_t mode_cmd, uint16_t count)
{
    outb(0x43, mode_cmd);
    outb(0x40, count & 0xff);
    outb(0x40, count >> 8);
}

/* Channel 2, mode 0 (interrupt on terminal count), gate on, speaker off. */
static inline void pit2_start(uint16_t count)
{
    outb(0x61, (inb(0x61) & ~0x02) | 0x01);
    outb(0x43, 0xb0);
    outb(0x42, count & 0xff);
    outb(0x42, count >> 8);
}

static inline int pit2_out(void)
{
    return (inb(0x61) >> 5) & 1;
}

/* Waits for channel 2 to count `count` ticks (838 ns each); 0 if it never finished. */
static inline int pit2_wait(uint16_t count)
{
    pit2_start(count);
    for (uint32_t i = 0; i < 50000000; i++)
        if (pit2_out())
            return 1;
    return 0;
}

/* Polls `cond` for up to `ms` milliseconds of PIT time (interrupts as the caller left
 * them).  Timer interrupts may come late when the host is busy, so every wait for an
 * event is generous. */
#define WAIT_UNTIL(cond, ms)                                                                  \
    ({                                                                                        \
        int _done = (cond);                                                                   \
        for (uint32_t _i = 0; _i < (ms) && !_done; _i++) {                                    \
            pit2_start(PIT_HZ / 1000);                                                        \
            for (uint32_t _j = 0; _j < 50000000 && !_done && !pit2_out(); _j++)               \
                _done = (cond);                                                               \
            _done = _done || (cond);                                                          \
        }                                                                                     \
        _done;                                                                                \
    })

#endif
