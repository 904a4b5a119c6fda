//! The High Precision Event Timer at 0xFED00000, as QEMU's `pc` machine has it: three
//! timers, a 64-bit main counter at 100 MHz (10 ns period), legacy-replacement capable.
//!
//! The registers and the timers behave as QEMU 7.2's `hw/timer/hpet.c` (32-bit accesses;
//! a 64-bit register is two halves): capabilities and period read-only, the
//! configuration register's enable and legacy-route bits writable, the main counter
//! writable while the HPET is disabled and counting from virtual time while enabled.
//!
//! Each timer has a comparator; while the HPET and the timer are enabled, the comparator
//! matching the counter raises the timer's interrupt:
//! - one-shot once (in 32-bit mode also when the counter's low half wraps first, as the
//!   spec and QEMU have it), periodic every `period` ticks: the period is the last value
//!   written to the comparator, the comparator itself only written with Tn_VAL_SET (which
//!   then clears) and advanced past the counter on each interrupt;
//! - edge-triggered (Tn_INT_TYPE 0): a pulse; level-triggered: the line stays high and the
//!   timer's bit in the general interrupt status register is set until the guest writes
//!   one to it (or disables the timer or the HPET);
//! - on the line Tn_INT_ROUTE_CNF names (GSI 0-23; the capability bits advertise only
//!   GSI 2, as on QEMU's `pc`, but QEMU takes any route, and so does bt86), or with
//!   LEG_RT_CNF timer 0 on IRQ 0 (I/O APIC pin 2) and timer 1 on IRQ 8. In legacy mode
//!   the PIT's and the RTC's own interrupts are cut off (the board does that; see
//!   [`Hpet::legacy_mode`]). FSB (MSI) delivery is not advertised and not done.
//!
//! The board calls [`Hpet::update`] with the virtual time before any device access and
//! when the host timer fires at [`Hpet::next_event_ns`]; a timer that became due several
//! times since raises one interrupt, as QEMU's late timer callback does.

use crate::irq::IrqSink;

/// Guest-physical base address.
pub const HPET_BASE: u64 = 0xFED0_0000;
/// Size of the register block.
pub const HPET_LEN: u64 = 0x400;

const TIMERS: usize = 3;
/// Main counter period in femtoseconds (10 ns).
const PERIOD_FS: u64 = 10_000_000;
const NS_PER_TICK: u64 = 10;

const CFG_ENABLE: u64 = 1 << 0;
const CFG_LEGACY: u64 = 1 << 1;
const CFG_WRITABLE: u64 = 0x3;

const TN_LEVEL: u64 = 1 << 1;
const TN_ENABLE: u64 = 1 << 2;
const TN_PERIODIC: u64 = 1 << 3;
const TN_SETVAL: u64 = 1 << 6;
const TN_32BIT: u64 = 1 << 8;
const TN_ROUTE_SHIFT: u32 = 9;
const TN_ROUTE_MASK: u64 = 0x1F << TN_ROUTE_SHIFT;
const TN_FSB_ENABLE: u64 = 1 << 14;

/// Timer N configuration: periodic-capable, 64-bit-capable, interrupt routing
/// capabilities (IRQ 2 on QEMU's board) in the upper half.
const TN_CAPS: u64 = (1 << 4) | (1 << 5) | (0x0000_0004 << 32);
/// Writable timer configuration bits: level, enable, periodic, set-value, 32-bit mode,
/// route, FSB enable.
const TN_WRITABLE: u64 = 0x7F4E;

/// The ISA IRQ of the RTC, timer 1's line in legacy-replacement mode.
const RTC_IRQ: u8 = 8;

#[derive(Debug, Clone, Copy)]
struct Timer {
    config: u64,
    cmp: u64,
    fsb: u64,
    /// The period of a periodic timer (the last value written to the comparator).
    period: u64,
    /// A 32-bit one-shot timer is armed for the counter's wrap, not its comparator.
    wrap_flag: bool,
    /// When the timer next expires (QEMU's armed `QEMUTimer`), virtual ns.
    deadline_ns: Option<u64>,
}

impl Timer {
    fn enabled(&self) -> bool {
        self.config & TN_ENABLE != 0
    }

    fn periodic(&self) -> bool {
        self.config & TN_PERIODIC != 0
    }

    fn is_32bit(&self) -> bool {
        self.config & TN_32BIT != 0
    }

    /// Ticks from `cur` to the comparator, at least 1 (in the timer's width).
    fn diff(&self, cur: u64) -> u64 {
        if self.is_32bit() {
            let d = (self.cmp as u32).wrapping_sub(cur as u32);
            if (d as i32) > 0 { u64::from(d) } else { 1 }
        } else {
            let d = self.cmp.wrapping_sub(cur);
            if (d as i64) > 0 { d } else { 1 }
        }
    }
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
        let timer = Timer { config: TN_CAPS, cmp: u64::MAX, fsb: 0, period: 0, wrap_flag: false, deadline_ns: None };
        Hpet { config: 0, isr: 0, counter: 0, enabled_at_ns: 0, timers: [timer; TIMERS] }
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

    /// LEG_RT_CNF is set: timers 0 and 1 own IRQ 0 and IRQ 8, and the board must cut
    /// the PIT's and the RTC's interrupts off (as QEMU's HPET does with its `pit_enabled`
    /// line and the RTC interrupt it passes through).
    pub fn legacy_mode(&self) -> bool {
        self.config & CFG_LEGACY != 0
    }

    fn main_counter(&self, now_ns: u64) -> u64 {
        if self.enabled() { self.counter.wrapping_add(now_ns.saturating_sub(self.enabled_at_ns) / NS_PER_TICK) } else { self.counter }
    }

    /// When [`Hpet::update`] next has an interrupt to raise (enabled timers only: a
    /// disabled one raises nothing when it expires).
    pub fn next_event_ns(&self) -> Option<u64> {
        if !self.enabled() {
            return None;
        }
        self.timers.iter().filter(|t| t.enabled()).filter_map(|t| t.deadline_ns).min()
    }

    /// Let the timers catch up with `now_ns`: each expired timer interrupts once (however
    /// many of its periods passed) and is rearmed if periodic.
    pub fn update(&mut self, now_ns: u64, irqs: &mut dyn IrqSink) {
        for n in 0..TIMERS {
            if self.timers[n].deadline_ns.is_some_and(|d| d <= now_ns) {
                self.expire(n, now_ns, irqs);
            }
        }
    }

    /// The line timer `n` interrupts on: GSI 0-31 (the board has 0-23; ISA IRQ 0 is I/O
    /// APIC pin 2, as for the PIT).
    fn route(&self, n: usize) -> u8 {
        if n <= 1 && self.legacy_mode() {
            if n == 0 { 0 } else { RTC_IRQ }
        } else {
            ((self.timers[n].config & TN_ROUTE_MASK) >> TN_ROUTE_SHIFT) as u8
        }
    }

    /// QEMU's `update_irq`: assert (`set`) or withdraw timer `n`'s interrupt.
    fn update_irq(&mut self, n: usize, set: bool, irqs: &mut dyn IrqSink) {
        let route = self.route(n);
        let mask = 1u64 << n;
        let t = self.timers[n];
        if !set || !t.enabled() || !self.enabled() {
            self.isr &= !mask;
            if t.config & TN_FSB_ENABLE == 0 {
                irqs.set_irq(route, false);
            }
        } else if t.config & TN_FSB_ENABLE != 0 {
            // FSB (MSI) delivery is not advertised (Tn_FSB_INT_DEL_CAP is 0).
        } else if t.config & TN_LEVEL != 0 {
            self.isr |= mask;
            irqs.set_irq(route, true);
        } else {
            self.isr &= !mask;
            irqs.set_irq(route, true);
            irqs.set_irq(route, false);
        }
    }

    /// QEMU's `hpet_set_timer`: arm timer `n` for its comparator (or, 32-bit one-shot,
    /// for the counter's wrap if that comes first).
    fn set_timer(&mut self, n: usize, now_ns: u64) {
        let cur = self.main_counter(now_ns);
        let t = &mut self.timers[n];
        t.wrap_flag = false;
        let mut diff = t.diff(cur);
        if t.is_32bit() && !t.periodic() {
            let wrap_diff = 0xFFFF_FFFF - cur as u32;
            if wrap_diff < diff as u32 {
                diff = u64::from(wrap_diff);
                t.wrap_flag = true;
            }
        }
        t.deadline_ns = Some(now_ns + diff * NS_PER_TICK);
    }

    /// QEMU's `hpet_del_timer`.
    fn del_timer(&mut self, n: usize, irqs: &mut dyn IrqSink) {
        self.timers[n].deadline_ns = None;
        self.update_irq(n, false, irqs);
    }

    /// QEMU's `hpet_timer`, the expiry callback, run late at `now_ns`.
    fn expire(&mut self, n: usize, now_ns: u64, irqs: &mut dyn IrqSink) {
        let cur = self.main_counter(now_ns);
        let t = &mut self.timers[n];
        t.deadline_ns = None;
        if t.periodic() && t.period != 0 {
            // Advance the comparator past the counter, by whole periods.
            if t.is_32bit() {
                let behind = (cur as u32).wrapping_sub(t.cmp as u32) as i32;
                if behind >= 0 {
                    let k = u64::from(behind as u32) / t.period + 1;
                    t.cmp = u64::from((t.cmp as u32).wrapping_add((k * t.period) as u32));
                }
            } else {
                let behind = cur.wrapping_sub(t.cmp) as i64;
                if behind >= 0 {
                    let k = behind as u64 / t.period + 1;
                    t.cmp = t.cmp.wrapping_add(k.wrapping_mul(t.period));
                }
            }
            t.deadline_ns = Some(now_ns + t.diff(cur) * NS_PER_TICK);
        } else if t.is_32bit() && !t.periodic() && t.wrap_flag {
            t.wrap_flag = false;
            t.deadline_ns = Some(now_ns + t.diff(cur) * NS_PER_TICK);
        }
        if t.enabled() {
            self.update_irq(n, true, irqs);
        } else {
            // QEMU withdraws the interrupt of a disabled timer that expires; its line
            // was lowered already when the timer was disabled.
            self.isr &= !(1 << n);
        }
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

    /// A 32-bit write at `offset` (read-only and invalid offsets ignore it). Timer
    /// interrupts it withdraws go to `irqs`; it never raises one itself.
    pub fn write(&mut self, offset: u64, value: u32, now_ns: u64, irqs: &mut dyn IrqSink) {
        let reg = offset & !7;
        let high = offset & 4 != 0;
        let shift = (offset & 4) * 8;
        let merge = |old: u64| (old & !(0xFFFF_FFFFu64 << shift)) | ((value as u64) << shift);
        let value = u64::from(value);
        match reg {
            0x010 if !high => {
                let old = self.config;
                let counter = self.main_counter(now_ns);
                self.config = (old & !CFG_WRITABLE) | (value & CFG_WRITABLE);
                let new = self.config;
                if old & CFG_ENABLE == 0 && new & CFG_ENABLE != 0 {
                    // Start counting from the present value; arm the timers.
                    self.counter = counter;
                    self.enabled_at_ns = now_ns;
                    for n in 0..TIMERS {
                        if self.timers[n].cmp != u64::MAX {
                            self.set_timer(n, now_ns);
                        }
                    }
                } else if old & CFG_ENABLE != 0 && new & CFG_ENABLE == 0 {
                    self.counter = counter;
                    for n in 0..TIMERS {
                        self.del_timer(n, irqs);
                    }
                }
                // Entering or leaving legacy mode lowers IRQ 0 (and entering it IRQ 8;
                // the board restores the RTC's level when leaving it).
                if (old ^ new) & CFG_LEGACY != 0 {
                    irqs.set_irq(0, false);
                    if new & CFG_LEGACY != 0 {
                        irqs.set_irq(RTC_IRQ, false);
                    }
                }
            }
            0x020 => {
                let cleared = (value << shift) & self.isr;
                for n in 0..TIMERS {
                    if cleared & (1 << n) != 0 {
                        self.update_irq(n, false, irqs);
                    }
                }
            }
            0x0F0 if !self.enabled() => self.counter = merge(self.counter),
            0x100..=0x3FF => {
                let n = ((reg - 0x100) / 0x20) as usize;
                if n >= TIMERS {
                    return;
                }
                match reg & 0x1F {
                    0x00 if !high => {
                        let old = self.timers[n].config;
                        let new = (old & !TN_WRITABLE) | (value & TN_WRITABLE);
                        if old & TN_FSB_ENABLE == 0 && new & TN_FSB_ENABLE != 0 {
                            self.update_irq(n, false, irqs);
                        }
                        let t = &mut self.timers[n];
                        t.config = new;
                        if new & TN_32BIT != 0 {
                            t.cmp = u64::from(t.cmp as u32);
                            t.period = u64::from(t.period as u32);
                        }
                        if old & TN_ENABLE == 0 && new & TN_ENABLE != 0 {
                            if self.enabled() {
                                self.set_timer(n, now_ns);
                            }
                        } else if old & TN_ENABLE != 0 && new & TN_ENABLE == 0 {
                            self.del_timer(n, irqs);
                        }
                    }
                    0x08 => {
                        let t = &mut self.timers[n];
                        let value = if !high && t.is_32bit() { u64::from(value as u32) } else { value };
                        let set_cmp = !t.periodic() || t.config & TN_SETVAL != 0;
                        if set_cmp {
                            t.cmp = merge(t.cmp);
                        }
                        // A periodic timer's period: the low half from any write (at
                        // most 2^31 - 1 in 32-bit mode), the high half (at most 2^31 - 1)
                        // from a write that did not set the comparator.
                        if t.periodic() && (!high || !set_cmp) {
                            let v = if high || t.is_32bit() { value & 0x7FFF_FFFF } else { value };
                            t.period = (t.period & !(0xFFFF_FFFFu64 << shift)) | (v << shift);
                        }
                        t.config &= !TN_SETVAL;
                        if self.enabled() {
                            self.set_timer(n, now_ns);
                        }
                    }
                    0x10 => self.timers[n].fsb = merge(self.timers[n].fsb),
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
    use crate::irq::{NoIrq, RecordingSink};

    const T0_CFG: u64 = 0x100;
    const T0_CMP: u64 = 0x108;

    #[test]
    fn capabilities_as_qemu_reports_them() {
        let mut h = Hpet::new();
        // rev 1, timers 0..2, 64-bit counter, legacy route, vendor 0x8086.
        assert_eq!(h.read(0, 0), 0x8086_A201);
        assert_eq!(h.read(4, 0), 10_000_000);
        // Read-only.
        h.write(0, 0, 0, &mut NoIrq);
        assert_eq!(h.read(0, 0), 0x8086_A201);
    }

    #[test]
    fn counter_stops_while_disabled_and_counts_at_100_mhz() {
        let mut h = Hpet::new();
        h.write(0xF0, 1000, 0, &mut NoIrq);
        assert_eq!(h.read(0xF0, 5_000), 1000, "disabled: the counter holds");
        h.write(0x10, 1, 10_000, &mut NoIrq);
        assert_eq!(h.read(0x10, 10_000), 1);
        assert_eq!(h.read(0xF0, 20_000), 1000 + 1000, "10 us = 1000 ticks");
        h.write(0xF0, 0, 20_000, &mut NoIrq);
        assert_eq!(h.read(0xF0, 20_000), 2000, "the counter is read-only while enabled");
        h.write(0x10, 0, 30_000, &mut NoIrq);
        assert_eq!(h.read(0xF0, 90_000), 3000, "disabling freezes it");
    }

    #[test]
    fn timer_registers_and_status() {
        let mut h = Hpet::new();
        assert_eq!(h.read(0x108, 0), 0xFFFF_FFFF);
        h.write(0x108, 0x1234, 0, &mut NoIrq);
        assert_eq!(h.read(0x108, 0), 0x1234);
        h.write(0x100, 0xFFFF_FFFF, 0, &mut NoIrq);
        assert_eq!(h.read(0x100, 0), (TN_WRITABLE | TN_CAPS) as u32, "Tn_VAL_SET reads back until a comparator write");
        assert_eq!(h.read(0x104, 0), 4, "route capability: IRQ 2");
        assert_eq!(h.read(0x160, 0), 0, "timer 3 does not exist");
    }

    #[test]
    fn one_shot_legacy_timer_0_pulses_irq_0_once() {
        let mut h = Hpet::new();
        let mut irqs = RecordingSink::default();
        h.write(T0_CMP, 1000, 0, &mut irqs);
        h.write(T0_CMP + 4, 0, 0, &mut irqs);
        h.write(T0_CFG, TN_ENABLE as u32, 0, &mut irqs);
        assert_eq!(h.next_event_ns(), None, "the HPET is disabled");
        h.write(0x10, 3, 0, &mut irqs); // enable, legacy route
        assert_eq!(h.next_event_ns(), Some(10_000));
        h.update(9_999, &mut irqs);
        assert_eq!(irqs.rising_edges(0), 0);
        h.update(10_000, &mut irqs);
        assert_eq!(irqs.rising_edges(0), 1);
        assert!(!irqs.level(0), "edge: a pulse");
        assert_eq!(h.read(0x20, 10_000), 0, "edge interrupts leave no status");
        assert_eq!(h.next_event_ns(), None, "one-shot");
        h.update(1_000_000_000, &mut irqs);
        assert_eq!(irqs.rising_edges(0), 1);
    }

    #[test]
    fn periodic_timer_uses_the_written_period_and_merges_missed_ones() {
        let mut h = Hpet::new();
        let mut irqs = RecordingSink::default();
        h.write(0x10, 1, 0, &mut irqs);
        // Route GSI 2, periodic, set value: the comparator is 500, the period 500.
        h.write(T0_CFG, (TN_ENABLE | TN_PERIODIC | TN_SETVAL | (2 << TN_ROUTE_SHIFT)) as u32, 0, &mut irqs);
        h.write(T0_CMP, 500, 0, &mut irqs);
        assert_eq!(h.read(T0_CFG, 0) & TN_SETVAL as u32, 0, "Tn_VAL_SET clears");
        assert_eq!(h.read(T0_CMP + 4, 0), 0xFFFF_FFFF, "the high half is the reset value");
        h.write(T0_CFG, (TN_ENABLE | TN_PERIODIC | TN_SETVAL | (2 << TN_ROUTE_SHIFT)) as u32, 0, &mut irqs);
        h.write(T0_CMP + 4, 0, 0, &mut irqs);
        assert_eq!(h.next_event_ns(), Some(5_000));
        h.update(5_000, &mut irqs);
        assert_eq!(irqs.rising_edges(2), 1);
        assert_eq!(h.read(T0_CMP, 5_000), 1000, "the comparator advances by the period");
        assert_eq!(h.next_event_ns(), Some(10_000));
        // Three periods late: one interrupt, the comparator past the counter.
        h.update(26_000, &mut irqs);
        assert_eq!(irqs.rising_edges(2), 2);
        assert_eq!(h.read(T0_CMP, 26_000), 3000);
        assert_eq!(h.next_event_ns(), Some(30_000));
        // A write without Tn_VAL_SET changes the period only.
        h.write(T0_CMP, 100, 26_000, &mut irqs);
        assert_eq!(h.read(T0_CMP, 26_000), 3000);
        h.update(30_000, &mut irqs);
        assert_eq!(h.read(T0_CMP, 30_000), 3100);
        // Disabling the timer stops it.
        h.write(T0_CFG, 0, 30_000, &mut irqs);
        assert_eq!(h.next_event_ns(), None);
    }

    #[test]
    fn level_interrupt_holds_the_line_and_the_status_bit_until_cleared() {
        let mut h = Hpet::new();
        let mut irqs = RecordingSink::default();
        h.write(0x10, 1, 0, &mut irqs);
        h.write(0x120, (TN_ENABLE | TN_LEVEL | (2 << TN_ROUTE_SHIFT)) as u32, 0, &mut irqs); // timer 1
        h.write(0x128, 100, 0, &mut irqs);
        h.write(0x12C, 0, 0, &mut irqs);
        h.update(1_000, &mut irqs);
        assert!(irqs.level(2));
        assert_eq!(h.read(0x20, 1_000), 2);
        h.write(0x20, 1, 1_000, &mut irqs); // another timer's bit: no effect
        assert!(irqs.level(2));
        h.write(0x20, 2, 1_000, &mut irqs);
        assert!(!irqs.level(2));
        assert_eq!(h.read(0x20, 1_000), 0);
    }

    #[test]
    fn thirty_two_bit_one_shot_fires_at_the_wrap_and_at_the_match() {
        let mut h = Hpet::new();
        let mut irqs = RecordingSink::default();
        h.write(0xF0, 0xFFFF_FF00, 0, &mut irqs);
        h.write(T0_CFG, (TN_ENABLE | TN_32BIT | (2 << TN_ROUTE_SHIFT)) as u32, 0, &mut irqs);
        h.write(T0_CMP, 0x100, 0, &mut irqs);
        assert_eq!(h.read(T0_CMP + 4, 0), 0, "32-bit mode: the high half is zero");
        h.write(0x10, 1, 0, &mut irqs);
        // The wrap comes first (0xFF ticks away), then the match.
        assert_eq!(h.next_event_ns(), Some(0xFF * 10));
        h.update(0xFF * 10, &mut irqs);
        assert_eq!(irqs.rising_edges(2), 1);
        let next = h.next_event_ns().unwrap();
        h.update(next, &mut irqs);
        assert_eq!(irqs.rising_edges(2), 2);
        assert_eq!(h.next_event_ns(), None);
    }

    #[test]
    fn disabling_the_hpet_stops_the_timers_and_reenabling_rearms_them() {
        let mut h = Hpet::new();
        let mut irqs = RecordingSink::default();
        h.write(T0_CFG, TN_ENABLE as u32, 0, &mut irqs);
        h.write(T0_CMP, 1000, 0, &mut irqs);
        h.write(T0_CMP + 4, 0, 0, &mut irqs);
        h.write(0x10, 1, 0, &mut irqs);
        h.write(0x10, 0, 5_000, &mut irqs);
        assert_eq!(h.next_event_ns(), None);
        h.update(20_000, &mut irqs);
        assert_eq!(irqs.rising_edges(0), 0);
        h.write(0x10, 1, 20_000, &mut irqs);
        assert_eq!(h.next_event_ns(), Some(25_000), "500 ticks to go");
        h.update(25_000, &mut irqs);
        assert_eq!(irqs.rising_edges(0), 1, "route 0 without legacy mode: GSI 0");
    }

    #[test]
    fn legacy_mode_routes_timer_1_to_irq_8() {
        let mut h = Hpet::new();
        let mut irqs = RecordingSink::default();
        h.write(0x10, 3, 0, &mut irqs);
        assert!(h.legacy_mode());
        h.write(0x120, (TN_ENABLE | (2 << TN_ROUTE_SHIFT)) as u32, 0, &mut irqs);
        h.write(0x128, 10, 0, &mut irqs);
        h.write(0x12C, 0, 0, &mut irqs);
        h.update(100, &mut irqs);
        assert_eq!(irqs.rising_edges(8), 1);
        assert_eq!(irqs.rising_edges(2), 0);
    }
}
