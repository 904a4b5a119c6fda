//! The High Precision Event Timer at 0xFED00000, as QEMU's `pc` machine has it: three
//! timers, a 64-bit main counter at 100 MHz (10 ns period), legacy-replacement capable.
//!
//! The registers behave as QEMU's `hw/timer/hpet.c` (32-bit accesses; a 64-bit register
//! is two halves): capabilities and period read-only, the configuration register's
//! enable and legacy-route bits writable, the interrupt status register
//! write-one-to-clear, the main counter writable while the HPET is disabled and counting
//! from virtual time while enabled, and each timer's configuration, comparator and FSB
//! route registers stored. Timer interrupts are not generated (no bt86 guest uses the
//! HPET as an interrupt source yet; Linux finds it only through ACPI).

/// Guest-physical base address.
pub const HPET_BASE: u64 = 0xFED0_0000;
/// Size of the register block.
pub const HPET_LEN: u64 = 0x400;

const TIMERS: usize = 3;
/// Main counter period in femtoseconds (10 ns).
const PERIOD_FS: u64 = 10_000_000;
const NS_PER_TICK: u64 = 10;

const CFG_ENABLE: u64 = 1 << 0;
const CFG_WRITABLE: u64 = 0x3;

/// Timer N configuration: periodic-capable, 64-bit-capable, interrupt routing
/// capabilities (IRQ 2 on QEMU's board) in the upper half.
const TN_CAPS: u64 = (1 << 4) | (1 << 5) | (0x0000_0004 << 32);
/// Writable timer configuration bits: level, enable, periodic, set-value, 32-bit mode,
/// route, FSB enable.
const TN_WRITABLE: u64 = 0x7F4E;

#[derive(Debug, Clone, Copy)]
struct Timer {
    config: u64,
    cmp: u64,
    fsb: u64,
}

/// The HPET.
#[derive(Debug, Clone)]
pub struct Hpet {
    config: u64,
    isr: u64,
    /// The counter while disabled; while enabled, the counter at `enabled_at_ns`.
    counter: u64,
    enabled_at_ns: u64,
    timers: [Timer; TIMERS],
}

impl Default for Hpet {
    fn default() -> Self {
        Hpet::new()
    }
}

impl Hpet {
    /// An HPET after reset: disabled, counter 0, comparators all ones.
    pub fn new() -> Hpet {
        Hpet { config: 0, isr: 0, counter: 0, enabled_at_ns: 0, timers: [Timer { config: TN_CAPS, cmp: u64::MAX, fsb: 0 }; TIMERS] }
    }

    /// The capabilities and ID register (its low half is the ACPI HPET table's event timer
    /// block ID).
    pub fn capabilities() -> u64 {
        let rev = 1u64;
        let last_timer = (TIMERS as u64 - 1) << 8;
        let counter_64 = 1 << 13;
        let legacy_route = 1 << 15;
        let vendor = 0x8086u64 << 16;
        rev | last_timer | counter_64 | legacy_route | vendor | (PERIOD_FS << 32)
    }

    fn enabled(&self) -> bool {
        self.config & CFG_ENABLE != 0
    }

    fn main_counter(&self, now_ns: u64) -> u64 {
        if self.enabled() { self.counter.wrapping_add(now_ns.saturating_sub(self.enabled_at_ns) / NS_PER_TICK) } else { self.counter }
    }

    /// The 64-bit register containing `offset` (aligned down to 8), or None.
    fn read64(&self, reg: u64, now_ns: u64) -> Option<u64> {
        Some(match reg {
            0x000 => Self::capabilities(),
            0x010 => self.config,
            0x020 => self.isr,
            0x0F0 => self.main_counter(now_ns),
            0x100..=0x3FF => {
                let t = self.timers.get(((reg - 0x100) / 0x20) as usize)?;
                match reg & 0x1F {
                    0x00 => t.config,
                    0x08 => t.cmp,
                    0x10 => t.fsb,
                    _ => return None,
                }
            }
            _ => return None,
        })
    }

    /// A 32-bit read at `offset` (invalid offsets read 0).
    pub fn read(&mut self, offset: u64, now_ns: u64) -> u32 {
        let shift = (offset & 4) * 8;
        self.read64(offset & !7, now_ns).map_or(0, |v| (v >> shift) as u32)
    }

    /// A 32-bit write at `offset` (read-only and invalid offsets ignore it).
    pub fn write(&mut self, offset: u64, value: u32, now_ns: u64) {
        let reg = offset & !7;
        let shift = (offset & 4) * 8;
        let merge = |old: u64| (old & !(0xFFFF_FFFFu64 << shift)) | ((value as u64) << shift);
        match reg {
            0x010 => {
                let was = self.enabled();
                let counter = self.main_counter(now_ns);
                self.config = merge(self.config) & CFG_WRITABLE;
                if was != self.enabled() {
                    // Freeze or restart the count at its present value.
                    self.counter = counter;
                    self.enabled_at_ns = now_ns;
                }
            }
            0x020 => self.isr &= !((value as u64) << shift),
            0x0F0 if !self.enabled() => self.counter = merge(self.counter),
            0x100..=0x3FF => {
                let Some(t) = self.timers.get_mut(((reg - 0x100) / 0x20) as usize) else {
                    return;
                };
                match reg & 0x1F {
                    0x00 => t.config = (merge(t.config) & TN_WRITABLE) | TN_CAPS,
                    0x08 => t.cmp = merge(t.cmp),
                    0x10 => t.fsb = merge(t.fsb),
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_as_qemu_reports_them() {
        let mut h = Hpet::new();
        // rev 1, timers 0..2, 64-bit counter, legacy route, vendor 0x8086.
        assert_eq!(h.read(0, 0), 0x8086_A201);
        assert_eq!(h.read(4, 0), 10_000_000);
        // Read-only.
        h.write(0, 0, 0);
        assert_eq!(h.read(0, 0), 0x8086_A201);
    }

    #[test]
    fn counter_stops_while_disabled_and_counts_at_100_mhz() {
        let mut h = Hpet::new();
        h.write(0xF0, 1000, 0);
        assert_eq!(h.read(0xF0, 5_000), 1000, "disabled: the counter holds");
        h.write(0x10, 1, 10_000);
        assert_eq!(h.read(0x10, 10_000), 1);
        assert_eq!(h.read(0xF0, 20_000), 1000 + 1000, "10 us = 1000 ticks");
        h.write(0xF0, 0, 20_000);
        assert_eq!(h.read(0xF0, 20_000), 2000, "the counter is read-only while enabled");
        h.write(0x10, 0, 30_000);
        assert_eq!(h.read(0xF0, 90_000), 3000, "disabling freezes it");
    }

    #[test]
    fn timer_registers_and_status() {
        let mut h = Hpet::new();
        assert_eq!(h.read(0x108, 0), 0xFFFF_FFFF);
        h.write(0x108, 0x1234, 0);
        assert_eq!(h.read(0x108, 0), 0x1234);
        h.write(0x100, 0xFFFF_FFFF, 0);
        assert_eq!(h.read(0x100, 0), (TN_WRITABLE | TN_CAPS) as u32);
        assert_eq!(h.read(0x104, 0), 4, "route capability: IRQ 2");
        assert_eq!(h.read(0x160, 0), 0, "timer 3 does not exist");
    }
}
