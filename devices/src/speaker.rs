//! Port 0x61, "system control port B": PIT channel 2's gate and OUT, and the speaker
//! enable. Linux calibrates its TSC through it (`pit_calibrate_tsc` and
//! `quick_pit_calibrate` in arch/x86/kernel/tsc.c): it raises the gate with bit 0,
//! programs channel 2 in mode 0 and polls bit 5 until OUT goes high.
//!
//! As QEMU's `hw/audio/pcspk.c`:
//! - read: bit 0 = channel 2 gate, bit 1 = speaker data enable, bit 4 = refresh toggle
//!   (flips on every read, starting with 1 on the first), bit 5 = channel 2 OUT; other
//!   bits 0;
//! - write: bit 0 = channel 2 gate, bit 1 = speaker data enable; other bits ignored.

use crate::irq::IrqSink;
use crate::pit::Pit;

const GATE: u8 = 0x01;
const DATA_ON: u8 = 0x02;
const REFRESH: u8 = 0x10;
const OUT2: u8 = 0x20;

/// The speaker / system control port B. It has no state of channel 2 of its own: the
/// gate and OUT live in the [`Pit`], which the board passes in.
#[derive(Debug, Clone, Default)]
pub struct SpeakerPort {
    data_on: bool,
    refresh: bool,
}

impl SpeakerPort {
    /// Port state after reset: speaker off, refresh bit 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// A guest read of port 0x61.
    pub fn read(&mut self, pit: &Pit, now_ns: u64) -> u8 {
        self.refresh = !self.refresh;
        let mut value = 0;
        if pit.gate(2) {
            value |= GATE;
        }
        if self.data_on {
            value |= DATA_ON;
        }
        if self.refresh {
            value |= REFRESH;
        }
        if pit.out(2, now_ns) {
            value |= OUT2;
        }
        value
    }

    /// A guest write of port 0x61.
    pub fn write(&mut self, value: u8, pit: &mut Pit, now_ns: u64, irqs: &mut dyn IrqSink) {
        self.data_on = value & DATA_ON != 0;
        pit.set_gate(2, value & GATE != 0, now_ns, irqs);
    }

    /// Whether the guest enabled the speaker output (bit 1).
    pub fn speaker_enabled(&self) -> bool {
        self.data_on
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::NoIrq;
    use crate::pit::PIT_FREQ_HZ;

    #[test]
    fn refresh_bit_toggles_on_every_read() {
        let pit = Pit::new(0);
        let mut port = SpeakerPort::new();
        let reads: Vec<u8> = (0..4).map(|_| port.read(&pit, 0) & REFRESH).collect();
        assert_eq!(reads, [0x10, 0x00, 0x10, 0x00]);
    }

    #[test]
    fn gate_and_speaker_bits_read_back() {
        let mut pit = Pit::new(0);
        let mut port = SpeakerPort::new();
        port.write(0xFF, &mut pit, 0, &mut NoIrq);
        assert!(pit.gate(2));
        assert!(port.speaker_enabled());
        // Channel 2 is in mode 3 from reset, OUT high at tick 0: 0x20 | 0x10 | 0x02 | 0x01.
        assert_eq!(port.read(&pit, 0), 0x33);
        port.write(0x00, &mut pit, 0, &mut NoIrq);
        assert!(!pit.gate(2));
        assert_eq!(port.read(&pit, 0), 0x20);
    }

    /// Linux's `pit_calibrate_tsc(latch = 1193182 / 20, ms = 50, loopmin)`.
    #[test]
    fn linux_pit_calibrate_tsc_loop_sees_out_rise_after_50ms() {
        let mut pit = Pit::new(0);
        let mut port = SpeakerPort::new();
        let mut now = 1_000_000u64;
        let latch: u16 = (PIT_FREQ_HZ / 20) as u16; // 59659
        // outb((inb(0x61) & ~0x02) | 0x01, 0x61);
        let v = port.read(&pit, now);
        port.write((v & !0x02) | 0x01, &mut pit, now, &mut NoIrq);
        // outb(0xb0, 0x43); outb(latch & 0xff, 0x42); outb(latch >> 8, 0x42);
        pit.write(3, 0xB0, now, &mut NoIrq);
        pit.write(2, latch as u8, now, &mut NoIrq);
        pit.write(2, (latch >> 8) as u8, now, &mut NoIrq);
        let start = now;
        // while ((inb(0x61) & 0x20) == 0) { ... } polling every 10 us.
        let mut polls = 0;
        while port.read(&pit, now) & 0x20 == 0 {
            polls += 1;
            now += 10_000;
            assert!(polls < 100_000, "OUT never rose");
        }
        // 59659 ticks = 49.99992 ms: OUT is high on the first poll at or after that.
        let expected_ns = (u64::from(latch) * 1_000_000_000).div_ceil(PIT_FREQ_HZ);
        assert_eq!(expected_ns, 49_999_917);
        assert!(now - start >= expected_ns && now - start < expected_ns + 10_000);
        assert_eq!(polls, 5000);
    }

    /// Linux's `quick_pit_calibrate`: mode 0 from 0xFFFF, reading the MSB with
    /// `inb(0x42); inb(0x42)` (LSB then MSB) and expecting it to step down by one every
    /// 256 ticks.
    #[test]
    fn linux_quick_pit_calibrate_msb_steps_down() {
        let mut pit = Pit::new(0);
        let mut port = SpeakerPort::new();
        let t0 = 0;
        let v = port.read(&pit, t0);
        port.write((v & !0x02) | 0x01, &mut pit, t0, &mut NoIrq);
        pit.write(3, 0xB0, t0, &mut NoIrq);
        pit.write(2, 0xFF, t0, &mut NoIrq);
        pit.write(2, 0xFF, t0, &mut NoIrq);
        let msb_at = |pit: &mut Pit, ticks: u64| {
            let now = (ticks * 1_000_000_000).div_ceil(PIT_FREQ_HZ);
            pit.read(2, now);
            pit.read(2, now)
        };
        assert_eq!(msb_at(&mut pit, 0), 0xFF);
        assert_eq!(msb_at(&mut pit, 255), 0xFF); // 0xFF00
        assert_eq!(msb_at(&mut pit, 256), 0xFE); // 0xFEFF
        assert_eq!(msb_at(&mut pit, 256 * 10 + 5), 0xF5);
    }
}
