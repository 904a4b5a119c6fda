//! The 8254 programmable interval timer (ports 0x40-0x43), three channels at
//! 1.193182 MHz. Channel 0's OUT drives IRQ0; channel 2's gate and OUT are wired to port
//! 0x61 (see [`crate::speaker`]); channel 1 (DRAM refresh) is counted but drives nothing.
//!
//! # Time
//! The model never reads a host clock. Each channel remembers the virtual time
//! (`now_ns`, the monitor's monotonic clock) at which its count was loaded; counts and
//! OUT levels are computed from the time elapsed since then, exactly as QEMU's
//! `hw/timer/i8254.c` does (`ticks = floor(elapsed_ns * 1193182 / 10^9)`), so a guest that
//! reads the counter sees the same values bt86 and QEMU would at the same virtual time.
//!
//! # IRQ0
//! [`Pit::next_event_ns`] is the virtual time of channel 0's next rising edge, for the
//! monitor's host timer, and [`Pit::update`] delivers what became due. When more than one
//! rising edge became due since the last update (the guest did not run for a while),
//! the PIC gets **one** edge, followed by the line's current level: QEMU's timer callback
//! would also replay every transition at once when it catches up, and the PIC's IRR
//! latches only one of them, so one edge is what the guest can see. `update` returns how
//! many were due so the monitor can count the merged ones.
//!
//! # QEMU behaviours matched on purpose (they differ from the 8254 datasheet)
//! - Writing a control word does not stop the counter or change OUT; only loading a
//!   count restarts it (from the time of the write that completes the count).
//! - The gate only matters for its rising edge in modes 1, 2, 3 and 5 (restart); a low
//!   gate does not stop counting in any mode.
//! - OUT in mode 1 is high while counting and low after terminal count, and in modes 4
//!   and 5 it is high for the one tick at terminal count (the datasheet's strobe is low).
//! - Mode 3 counts down by two per tick (odd counts are not special-cased).
//! - BCD counting (control word bit 0) is remembered and reported in the read-back
//!   status but the counter counts in binary.
//! - The read-back status has the null-count bit (6) always clear; reading port 0x43
//!   returns 0.
//!
//! Modes 6 and 7 behave as modes 2 and 3, as on the datasheet (QEMU treats them as a
//! mix of mode 0 and mode 2, which no guest relies on); the status reports the mode
//! bits as written.

use crate::irq::IrqSink;

/// The PIT's input clock, in Hz.
pub const PIT_FREQ_HZ: u64 = 1_193_182;

/// The ISA line channel 0 drives.
pub const PIT_IRQ: u8 = 0;

const NS_PER_SEC: u64 = 1_000_000_000;

// Read/write states, with QEMU's numbering: 1 = LSB only (also what 0, never
// programmed, behaves as), 2 = MSB only, 3/4 = LSB then MSB, at the LSB/MSB.
const RW_MSB: u8 = 2;
const RW_WORD0: u8 = 3;
const RW_WORD1: u8 = 4;

/// One counter.
#[derive(Debug, Clone)]
struct Channel {
    /// The count loaded, 1..=0x10000 (a written 0 means 0x10000).
    count: u32,
    latched_count: u16,
    /// 0, or the read state the latched count is read back with.
    count_latched: u8,
    status_latched: bool,
    status: u8,
    read_state: u8,
    write_state: u8,
    write_latch: u8,
    /// Access mode from the control word (1 = LSB, 2 = MSB, 3 = LSB then MSB).
    rw_mode: u8,
    /// Mode bits as written (0-7).
    mode: u8,
    bcd: bool,
    gate: bool,
    /// Virtual time the count was loaded (or the counter restarted by the gate).
    load_ns: u64,
}

impl Channel {
    fn new(gate: bool, now_ns: u64) -> Self {
        Channel {
            count: 0x1_0000,
            latched_count: 0,
            count_latched: 0,
            status_latched: false,
            status: 0,
            read_state: 0,
            write_state: 0,
            write_latch: 0,
            rw_mode: 0,
            mode: 3,
            bcd: false,
            gate,
            load_ns: now_ns,
        }
    }

    /// The mode the counter behaves as: 6 and 7 are aliases of 2 and 3.
    fn behaviour(&self) -> u8 {
        match self.mode {
            6 => 2,
            7 => 3,
            m => m,
        }
    }

    /// Input clock ticks since the count was loaded.
    fn ticks(&self, now_ns: u64) -> u64 {
        let elapsed = u128::from(now_ns.saturating_sub(self.load_ns));
        (elapsed * u128::from(PIT_FREQ_HZ) / u128::from(NS_PER_SEC)) as u64
    }

    /// The first virtual time at which `ticks` reaches `tick`.
    fn time_of_tick(&self, tick: u64) -> u64 {
        let ns = (u128::from(tick) * u128::from(NS_PER_SEC)).div_ceil(u128::from(PIT_FREQ_HZ));
        self.load_ns.saturating_add(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// The current count (QEMU's `pit_get_count`), 1..=0x10000 in the periodic modes.
    fn current_count(&self, now_ns: u64) -> u32 {
        let d = self.ticks(now_ns);
        let count = u64::from(self.count);
        let value = match self.behaviour() {
            0 | 1 | 4 | 5 => count.wrapping_sub(d) & 0xFFFF,
            3 => count - (d.wrapping_mul(2) % count),
            _ => count - (d % count),
        };
        value as u32
    }

    /// OUT after `d` ticks (QEMU's `pit_get_out`).
    fn out_at(&self, d: u64) -> bool {
        let count = u64::from(self.count);
        match self.behaviour() {
            0 => d >= count,
            1 => d < count,
            2 => d.is_multiple_of(count) && d != 0,
            3 => d % count < count.div_ceil(2),
            _ => d == count,
        }
    }

    fn out(&self, now_ns: u64) -> bool {
        self.out_at(self.ticks(now_ns))
    }

    /// The first tick after `after` at which OUT rises.
    fn next_rise(&self, after: u64) -> Option<u64> {
        let count = u64::from(self.count);
        match self.behaviour() {
            0 | 4 | 5 => (after < count).then_some(count),
            1 => None,
            // With a count of 1, mode 2's OUT stays high after the first tick and mode
            // 3's OUT never goes low.
            2 if count == 1 => (after < 1).then_some(1),
            3 if count == 1 => None,
            _ => Some((after / count + 1) * count),
        }
    }

    /// How many times OUT rose in the ticks `(from, to]`.
    fn rises_between(&self, from: u64, to: u64) -> u64 {
        if to <= from {
            return 0;
        }
        let count = u64::from(self.count);
        match self.behaviour() {
            0 | 4 | 5 => u64::from(from < count && count <= to),
            1 => 0,
            2 if count == 1 => u64::from(from < 1),
            3 if count == 1 => 0,
            _ => to / count - from / count,
        }
    }

    fn load(&mut self, value: u32, now_ns: u64) {
        self.count = if value == 0 { 0x1_0000 } else { value };
        self.load_ns = now_ns;
    }

    /// The counter-latch command: a second latch before the first is read is ignored.
    fn latch(&mut self, now_ns: u64) {
        if self.count_latched == 0 {
            self.latched_count = self.current_count(now_ns) as u16;
            self.count_latched = self.rw_mode;
        }
    }

    fn read(&mut self, now_ns: u64) -> u8 {
        if self.status_latched {
            self.status_latched = false;
            return self.status;
        }
        if self.count_latched != 0 {
            let [lo, hi] = self.latched_count.to_le_bytes();
            return match self.count_latched {
                RW_MSB => {
                    self.count_latched = 0;
                    hi
                }
                RW_WORD0 => {
                    self.count_latched = RW_MSB;
                    lo
                }
                _ => {
                    self.count_latched = 0;
                    lo
                }
            };
        }
        let count = self.current_count(now_ns);
        let (lo, hi) = (count as u8, (count >> 8) as u8);
        match self.read_state {
            RW_MSB => hi,
            RW_WORD0 => {
                self.read_state = RW_WORD1;
                lo
            }
            RW_WORD1 => {
                self.read_state = RW_WORD0;
                hi
            }
            _ => lo,
        }
    }

    /// A write of the data port. Returns true when it completed a count (the counter
    /// restarted).
    fn write(&mut self, value: u8, now_ns: u64) -> bool {
        match self.write_state {
            RW_MSB => self.load(u32::from(value) << 8, now_ns),
            RW_WORD0 => {
                self.write_latch = value;
                self.write_state = RW_WORD1;
                return false;
            }
            RW_WORD1 => {
                self.load(u32::from(self.write_latch) | u32::from(value) << 8, now_ns);
                self.write_state = RW_WORD0;
            }
            _ => self.load(u32::from(value), now_ns),
        }
        true
    }
}

/// The three-channel 8254.
#[derive(Debug, Clone)]
pub struct Pit {
    channels: [Channel; 3],
    /// The level last driven on IRQ0.
    irq0_level: bool,
    /// Channel 0's edges up to this virtual time have been delivered.
    irq0_checked_ns: u64,
}

impl Pit {
    /// A PIT as after reset at virtual time `now_ns` (QEMU's `pit_reset_common`): every
    /// channel in mode 3 with count 0x10000 (18.2 Hz), running; gates high except
    /// channel 2's. IRQ0 is low until channel 0's first transition.
    pub fn new(now_ns: u64) -> Self {
        Pit {
            channels: [Channel::new(true, now_ns), Channel::new(true, now_ns), Channel::new(false, now_ns)],
            irq0_level: false,
            irq0_checked_ns: now_ns,
        }
    }

    /// A guest read of port `0x40 + offset`.
    pub fn read(&mut self, offset: u16, now_ns: u64) -> u8 {
        match offset & 3 {
            3 => 0, // the control register is write-only
            ch => self.channels[usize::from(ch)].read(now_ns),
        }
    }

    /// A guest write of port `0x40 + offset`. Loading channel 0 drives IRQ0 to its new
    /// OUT level right away (high at once in mode 3, as in QEMU).
    pub fn write(&mut self, offset: u16, value: u8, now_ns: u64, irqs: &mut dyn IrqSink) {
        self.update(now_ns, irqs);
        match offset & 3 {
            3 => self.write_control(value, now_ns),
            ch => {
                let ch = usize::from(ch);
                if self.channels[ch].write(value, now_ns) && ch == 0 {
                    self.restart_irq0(now_ns, irqs);
                }
            }
        }
    }

    fn write_control(&mut self, value: u8, now_ns: u64) {
        let select = value >> 6;
        if select == 3 {
            // Read-back: bit 5 clear = latch count, bit 4 clear = latch status,
            // bits 1-3 select channels 0-2.
            for (i, ch) in self.channels.iter_mut().enumerate() {
                if value & (2 << i) == 0 {
                    continue;
                }
                if value & 0x20 == 0 {
                    ch.latch(now_ns);
                }
                if value & 0x10 == 0 && !ch.status_latched {
                    ch.status = u8::from(ch.out(now_ns)) << 7 | ch.rw_mode << 4 | ch.mode << 1 | u8::from(ch.bcd);
                    ch.status_latched = true;
                }
            }
            return;
        }
        let ch = &mut self.channels[usize::from(select)];
        let access = (value >> 4) & 3;
        if access == 0 {
            ch.latch(now_ns);
            return;
        }
        ch.rw_mode = access;
        ch.read_state = access;
        ch.write_state = access;
        ch.mode = (value >> 1) & 7;
        ch.bcd = value & 1 != 0;
        if ch.bcd {
            log::debug!("PIT channel {select}: BCD mode requested, counting in binary (as QEMU)");
        }
    }

    /// Set a channel's gate input (channel 2's comes from port 0x61 bit 0). A rising
    /// edge restarts the count in modes 1, 2, 3 and 5.
    pub fn set_gate(&mut self, channel: usize, level: bool, now_ns: u64, irqs: &mut dyn IrqSink) {
        self.update(now_ns, irqs);
        let ch = &mut self.channels[channel];
        if level && !ch.gate && matches!(ch.behaviour(), 1 | 2 | 3 | 5) {
            ch.load_ns = now_ns;
            if channel == 0 {
                self.restart_irq0(now_ns, irqs);
            }
        }
        self.channels[channel].gate = level;
    }

    /// A channel's gate input.
    pub fn gate(&self, channel: usize) -> bool {
        self.channels[channel].gate
    }

    /// A channel's OUT pin at `now_ns`.
    pub fn out(&self, channel: usize, now_ns: u64) -> bool {
        self.channels[channel].out(now_ns)
    }

    /// The virtual time of channel 0's next rising edge not yet delivered by
    /// [`Pit::update`], or `None` if OUT will not rise again (one-shot modes after terminal
    /// count). The monitor arms its host timer for it.
    pub fn next_event_ns(&self) -> Option<u64> {
        let ch = &self.channels[0];
        let delivered = ch.ticks(self.irq0_checked_ns);
        ch.next_rise(delivered).map(|tick| ch.time_of_tick(tick))
    }

    /// Deliver channel 0's IRQ0 transitions due by `now_ns`: one rising edge if OUT rose
    /// at least once since the last update, then OUT's level at `now_ns`. Returns the
    /// number of rising edges that were due (more than 1 means some were merged).
    pub fn update(&mut self, now_ns: u64, irqs: &mut dyn IrqSink) -> u64 {
        if now_ns <= self.irq0_checked_ns {
            return 0;
        }
        let ch = &self.channels[0];
        let from = ch.ticks(self.irq0_checked_ns);
        let to = ch.ticks(now_ns);
        let rises = ch.rises_between(from, to);
        let level = ch.out_at(to);
        if rises > 0 {
            if self.irq0_level {
                irqs.set_irq(PIT_IRQ, false);
            }
            irqs.set_irq(PIT_IRQ, true);
            self.irq0_level = true;
        }
        if level != self.irq0_level {
            irqs.set_irq(PIT_IRQ, level);
            self.irq0_level = level;
        }
        self.irq0_checked_ns = now_ns;
        rises
    }

    /// Channel 0 was (re)started at `now_ns`: drive IRQ0 to OUT's level at tick 0.
    fn restart_irq0(&mut self, now_ns: u64, irqs: &mut dyn IrqSink) {
        let level = self.channels[0].out_at(0);
        irqs.set_irq(PIT_IRQ, level);
        self.irq0_level = level;
        self.irq0_checked_ns = now_ns;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::{NoIrq, RecordingSink};

    /// Virtual time of `ticks` input clocks after `start` (first ns at which the counter
    /// has seen them).
    fn at(start: u64, ticks: u64) -> u64 {
        start + (ticks * NS_PER_SEC).div_ceil(PIT_FREQ_HZ)
    }

    /// Program `channel` with a control word for lobyte/hibyte access in `mode`, then
    /// load `count`, at `now`.
    fn program(pit: &mut Pit, channel: u8, mode: u8, count: u16, now: u64, irqs: &mut dyn IrqSink) {
        pit.write(3, channel << 6 | 0x30 | mode << 1, now, irqs);
        pit.write(u16::from(channel), count as u8, now, irqs);
        pit.write(u16::from(channel), (count >> 8) as u8, now, irqs);
    }

    fn read_word(pit: &mut Pit, channel: u16, now: u64) -> u16 {
        let lo = pit.read(channel, now);
        let hi = pit.read(channel, now);
        u16::from_le_bytes([lo, hi])
    }

    #[test]
    fn tick_arithmetic_is_qemus() {
        // 1 ms is 1193.182 ticks: QEMU's muldiv64 floors to 1193.
        let ch = Channel::new(true, 0);
        assert_eq!(ch.ticks(1_000_000), 1193);
        assert_eq!(ch.ticks(838), 0);
        assert_eq!(ch.ticks(839), 1); // 1 tick = 838.0953 ns
        assert_eq!(ch.time_of_tick(1), 839);
        assert_eq!(ch.time_of_tick(1193182), NS_PER_SEC);
    }

    #[test]
    fn mode0_counts_down_and_raises_out_at_terminal_count() {
        let mut pit = Pit::new(0);
        let t0 = 1_000;
        program(&mut pit, 0, 0, 1000, t0, &mut NoIrq);
        assert_eq!(read_word(&mut pit, 0, t0), 1000);
        assert!(!pit.out(0, t0));
        assert_eq!(read_word(&mut pit, 0, at(t0, 1)), 999);
        assert_eq!(read_word(&mut pit, 0, at(t0, 999)), 1);
        assert!(!pit.out(0, at(t0, 999)));
        assert_eq!(read_word(&mut pit, 0, at(t0, 1000)), 0);
        assert!(pit.out(0, at(t0, 1000)));
        // Keeps counting through 0 and wraps to 0xFFFF; OUT stays high.
        assert_eq!(read_word(&mut pit, 0, at(t0, 1001)), 0xFFFF);
        assert!(pit.out(0, at(t0, 5000)));
    }

    #[test]
    fn mode2_reloads_and_pulses_out_for_one_tick() {
        let mut pit = Pit::new(0);
        program(&mut pit, 0, 2, 100, 0, &mut NoIrq);
        assert_eq!(read_word(&mut pit, 0, 0), 100);
        assert_eq!(read_word(&mut pit, 0, at(0, 1)), 99);
        assert_eq!(read_word(&mut pit, 0, at(0, 99)), 1);
        // At the reload the count is back to 100 and OUT is high for that tick.
        assert_eq!(read_word(&mut pit, 0, at(0, 100)), 100);
        assert!(pit.out(0, at(0, 100)));
        assert!(!pit.out(0, at(0, 101)));
        assert!(!pit.out(0, at(0, 199)));
        assert!(pit.out(0, at(0, 200)));
        assert_eq!(read_word(&mut pit, 0, at(0, 250)), 50);
    }

    #[test]
    fn mode3_counts_by_two_with_a_square_out() {
        let mut pit = Pit::new(0);
        program(&mut pit, 0, 3, 10, 0, &mut NoIrq);
        let counts: Vec<u16> = (0..7).map(|t| read_word(&mut pit, 0, at(0, t))).collect();
        assert_eq!(counts, [10, 8, 6, 4, 2, 10, 8]);
        let outs: Vec<bool> = (0..12).map(|t| pit.out(0, at(0, t))).collect();
        let high = [true; 5];
        let low = [false; 5];
        assert_eq!(outs[..5], high);
        assert_eq!(outs[5..10], low);
        assert!(outs[10] && outs[11]);
        // An odd count: high for (n + 1) / 2 ticks.
        program(&mut pit, 0, 3, 5, 0, &mut NoIrq);
        let outs: Vec<bool> = (0..5).map(|t| pit.out(0, at(0, t))).collect();
        assert_eq!(outs, [true, true, true, false, false]);
    }

    #[test]
    fn mode4_out_is_high_only_at_terminal_count_as_in_qemu() {
        let mut pit = Pit::new(0);
        program(&mut pit, 0, 4, 50, 0, &mut NoIrq);
        assert!(!pit.out(0, at(0, 49)));
        assert!(pit.out(0, at(0, 50)));
        assert!(!pit.out(0, at(0, 51)));
    }

    #[test]
    fn count_of_zero_means_65536() {
        let mut pit = Pit::new(0);
        program(&mut pit, 0, 2, 0, 0, &mut NoIrq);
        // 0x10000 reads back as 0 in both bytes.
        assert_eq!(read_word(&mut pit, 0, 0), 0);
        assert_eq!(read_word(&mut pit, 0, at(0, 1)), 0xFFFF);
        assert!(pit.out(0, at(0, 0x10000)));
    }

    #[test]
    fn lobyte_only_and_hibyte_only_access() {
        let mut pit = Pit::new(0);
        pit.write(3, 0x50, 0, &mut NoIrq); // channel 1, LSB only, mode 0
        pit.write(1, 0x80, 0, &mut NoIrq);
        assert_eq!(pit.read(1, at(0, 0x10)), 0x70);
        assert_eq!(pit.read(1, at(0, 0x10)), 0x70, "LSB-only reads never toggle");
        pit.write(3, 0x60, 0, &mut NoIrq); // channel 1, MSB only, mode 0
        pit.write(1, 0x12, 0, &mut NoIrq); // count 0x1200
        assert_eq!(pit.read(1, at(0, 0x100)), 0x11);
    }

    #[test]
    fn counter_latch_freezes_the_value_until_both_bytes_are_read() {
        let mut pit = Pit::new(0);
        program(&mut pit, 2, 0, 0x4000, 0, &mut NoIrq);
        pit.write(3, 0x80, at(0, 0x100), &mut NoIrq); // latch channel 2
        // Reading much later still returns the latched 0x3F00.
        assert_eq!(pit.read(2, at(0, 0x2000)), 0x00);
        // A second latch before the high byte is read is ignored.
        pit.write(3, 0x80, at(0, 0x2000), &mut NoIrq);
        assert_eq!(pit.read(2, at(0, 0x2000)), 0x3F);
        // Now live again.
        assert_eq!(read_word(&mut pit, 2, at(0, 0x3000)), 0x1000);
    }

    #[test]
    fn read_back_latches_status_then_count() {
        let mut pit = Pit::new(0);
        program(&mut pit, 0, 2, 0x1234, 0, &mut NoIrq);
        program(&mut pit, 2, 0, 300, 0, &mut NoIrq);
        // Read-back, status and count, channels 0 and 2: 11 0 0 1 0 1 0.
        pit.write(3, 0xC0 | 0x08 | 0x02, at(0, 0x34), &mut NoIrq);
        // Status: OUT low, access 3, mode 2, binary = 0b0_0_11_010_0.
        assert_eq!(pit.read(0, at(0, 0x500)), 0x34);
        assert_eq!(read_word(&mut pit, 0, at(0, 0x500)), 0x1200);
        // Channel 2: mode 0, 52 ticks into a count of 300: OUT still low.
        assert_eq!(pit.read(2, at(0, 0x500)), 0x30);
        assert_eq!(read_word(&mut pit, 2, at(0, 0x500)), 300 - 0x34);
        // Status only (bit 5 set = don't latch count), channel 1 still in reset state:
        // mode 3, access 0 (never programmed), OUT high at tick 0.
        pit.write(3, 0xE0 | 0x04, 0, &mut NoIrq);
        assert_eq!(pit.read(1, 0), 0x80 | 3 << 1);
    }

    #[test]
    fn read_back_reports_bcd_and_mode_bits_as_written() {
        let mut pit = Pit::new(0);
        pit.write(3, 0x40 | 0x30 | 7 << 1 | 1, 0, &mut NoIrq);
        pit.write(3, 0xE4, 0, &mut NoIrq);
        assert_eq!(pit.read(1, 0) & 0x3F, 0x30 | 7 << 1 | 1);
    }

    #[test]
    fn control_port_reads_zero() {
        let mut pit = Pit::new(0);
        assert_eq!(pit.read(3, 12345), 0);
    }

    #[test]
    fn reset_state_is_mode3_count_65536_gate2_low() {
        let mut pit = Pit::new(5_000);
        assert!(pit.gate(0) && pit.gate(1) && !pit.gate(2));
        // Unprogrammed channels read the low byte of the count.
        assert_eq!(pit.read(0, 5_000), 0x00);
        // Mode 3 from 0x10000: after one tick, 0x10000 - 2.
        assert_eq!(pit.read(0, at(5_000, 1)), 0xFE);
        // First IRQ0 edge after a whole period (54.9 ms).
        assert_eq!(pit.next_event_ns(), Some(at(5_000, 0x10000)));
    }

    #[test]
    fn mode2_irq0_rises_once_per_period() {
        let mut pit = Pit::new(0);
        let mut irqs = RecordingSink::default();
        program(&mut pit, 0, 2, 1193, 0, &mut irqs); // ~1 kHz, as Linux HZ=1000
        assert_eq!(irqs.calls, [(0, false)], "loading mode 2 drives OUT low");
        let first = pit.next_event_ns().unwrap();
        assert_eq!(first, at(0, 1193));
        assert_eq!(first, 999_848);
        // Nothing before it.
        assert_eq!(pit.update(first - 1, &mut irqs), 0);
        assert_eq!(irqs.rising_edges(0), 0);
        assert_eq!(pit.update(first, &mut irqs), 1);
        assert_eq!(irqs.rising_edges(0), 1);
        assert_eq!(pit.next_event_ns(), Some(at(0, 2 * 1193)));
        // Half a period later the line is low again, ready for the next edge.
        pit.update(at(0, 1193 + 600), &mut irqs);
        assert!(!irqs.level(0));
        assert_eq!(pit.update(at(0, 2 * 1193), &mut irqs), 1);
        assert_eq!(irqs.rising_edges(0), 2);
    }

    #[test]
    fn missed_periods_are_merged_into_one_edge() {
        let mut pit = Pit::new(0);
        let mut irqs = RecordingSink::default();
        program(&mut pit, 0, 2, 100, 0, &mut irqs);
        irqs.calls.clear();
        // Ten periods pass unseen (the guest was not running).
        assert_eq!(pit.update(at(0, 1050), &mut irqs), 10);
        assert_eq!(irqs.rising_edges(0), 1);
        assert!(!irqs.level(0), "mode 2's OUT is low again at tick 1050");
        // The next deadline is the next future period, not a backlog.
        assert_eq!(pit.next_event_ns(), Some(at(0, 1100)));
    }

    #[test]
    fn mode3_irq0_edge_when_the_line_is_still_high() {
        // Updating only at rising-edge deadlines never sees the low half of the square
        // wave; each update must still produce a fresh edge.
        let mut pit = Pit::new(0);
        let mut irqs = RecordingSink::default();
        program(&mut pit, 0, 3, 1000, 0, &mut irqs);
        assert_eq!(irqs.calls, [(0, true)], "mode 3 starts with OUT high: immediate edge");
        for k in 1..=3 {
            let deadline = pit.next_event_ns().unwrap();
            assert_eq!(deadline, at(0, 1000 * k));
            assert_eq!(pit.update(deadline, &mut irqs), 1);
        }
        assert_eq!(irqs.rising_edges(0), 4);
        assert!(irqs.level(0));
    }

    #[test]
    fn one_shot_mode0_and_mode4_fire_once() {
        let mut pit = Pit::new(0);
        let mut irqs = RecordingSink::default();
        program(&mut pit, 0, 0, 500, 0, &mut irqs);
        assert_eq!(pit.next_event_ns(), Some(at(0, 500)));
        assert_eq!(pit.update(at(0, 10_000), &mut irqs), 1);
        assert_eq!(pit.next_event_ns(), None);
        assert!(irqs.level(0), "mode 0's OUT stays high after terminal count");
        // Linux's one-shot clockevent: mode 4 (control word 0x38).
        irqs.calls.clear();
        program(&mut pit, 0, 4, 300, at(0, 10_000), &mut irqs);
        let t = at(0, 10_000);
        assert_eq!(pit.next_event_ns(), Some(at(t, 300)));
        assert_eq!(pit.update(at(t, 300), &mut irqs), 1);
        assert_eq!(irqs.rising_edges(0), 1);
        pit.update(at(t, 301), &mut irqs);
        assert!(!irqs.level(0));
        assert_eq!(pit.next_event_ns(), None);
    }

    #[test]
    fn channel2_gate_rising_edge_restarts_periodic_modes_only() {
        let mut pit = Pit::new(0);
        program(&mut pit, 2, 2, 100, 0, &mut NoIrq);
        assert_eq!(read_word(&mut pit, 2, at(0, 30)), 70);
        pit.set_gate(2, true, at(0, 30), &mut NoIrq);
        assert_eq!(read_word(&mut pit, 2, at(0, 30)), 100);
        assert_eq!(read_word(&mut pit, 2, at(0, 40)), 90);
        // Mode 0: the gate does not restart (nor, as in QEMU, stop) the count.
        pit.set_gate(2, false, at(0, 40), &mut NoIrq);
        program(&mut pit, 2, 0, 100, at(0, 40), &mut NoIrq);
        pit.set_gate(2, true, at(0, 60), &mut NoIrq);
        assert_eq!(read_word(&mut pit, 2, at(0, 60)), 80);
    }
}
