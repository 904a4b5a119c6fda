/*
 * apic.h - the local APIC's and the I/O APIC's registers, and waiting for interrupts, for
 * the test kernels that take their interrupts through the APICs (apic, hpet).
 */
#ifndef BT86_APIC_H
#define BT86_APIC_H

#include "rt.h"

#define LAPIC 0xfee00000u
#define IOAPIC 0xfec00000u

#define L_TPR 0x080
#define L_EOI 0x0b0
#define L_SVR 0x0f0
#define L_LVT_TIMER 0x320
#define L_LVT_LINT0 0x350
#define L_LVT_LINT1 0x360
#define L_LVT_ERROR 0x370
#define MASKED 0x10000u

static inline uint32_t lapic_read(uint32_t reg) { return *(volatile uint32_t *)PHYS(LAPIC + reg); }
static inline void lapic_write(uint32_t reg, uint32_t v) { *(volatile uint32_t *)PHYS(LAPIC + reg) = v; }

/* The local APIC software-enabled (spurious vector 0xff), TPR 0, its timer (vector 0x40)
 * and error LVT masked, LINT0 ExtINT (the 8259A, virtual wire) and LINT1 NMI. */
static inline void lapic_enable(void)
{
    lapic_write(L_SVR, 0x1ff);
    lapic_write(L_TPR, 0);
    lapic_write(L_LVT_TIMER, MASKED | 0x40);
    lapic_write(L_LVT_LINT0, 0x700);
    lapic_write(L_LVT_LINT1, 0x400);
    lapic_write(L_LVT_ERROR, MASKED | 0xfe);
}

static inline uint32_t ioapic_read(uint8_t reg)
{
    *(volatile uint32_t *)PHYS(IOAPIC) = reg;
    return *(volatile uint32_t *)PHYS(IOAPIC + 0x10);
}
static inline void ioapic_write(uint8_t reg, uint32_t v)
{
    *(volatile uint32_t *)PHYS(IOAPIC) = reg;
    *(volatile uint32_t *)PHYS(IOAPIC + 0x10) = v;
}
/* Redirection entry `pin`: `low` (vector, mode, mask) for the APIC with ID `dest`. */
static inline void ioapic_entry(unsigned pin, uint32_t low, uint8_t dest)
{
    ioapic_write(0x11 + 2 * pin, (uint32_t)dest << 24);
    ioapic_write(0x10 + 2 * pin, low);
}

/* Lets pending interrupts in: sti, a few instructions (and branches), cli. */
static inline void window(void)
{
    asm volatile("sti" ::: "memory");
    for (volatile int i = 0; i < 1000; i++)
        ;
    cli();
}
/* `sti; hlt` until `cond` or `max` wake-ups. */
#define HLT_UNTIL(cond, max)                                                                  \
    ({                                                                                        \
        uint32_t _n = 0;                                                                      \
        while (!(cond) && _n < (max)) {                                                       \
            asm volatile("sti\n\thlt\n\tcli" ::: "memory");                                   \
            _n++;                                                                             \
        }                                                                                     \
        (cond);                                                                               \
    })

#endif
