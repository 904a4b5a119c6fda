//! The I/O APIC at 0xFEC00000: 24 interrupt pins, each with a redirection entry that
//! turns its requests into messages for the local APIC ([`ApicBus`]).
//!
//! The board wires the ISA lines as a PC does (and as QEMU's `pc` machine): ISA IRQ 0
//! (the PIT) to pin 2, every other ISA IRQ n to pin n, so each interrupt source reaches
//! both the 8259A and this. Behaviour follows QEMU's `hw/intc/ioapic.c`:
//! - IOREGSEL at offset 0x00 (8 bits), IOWIN at 0x10 (32-bit accesses only; narrower ones
//!   read 0 and are dropped), the EOI register at 0x40 (version 0x20); the page repeats
//!   every 256 bytes.
//! - Registers: ID (bits 24-27 writable; also read at the arbitration register), version
//!   0x00170020 (24 entries; version 0x20, what QEMU 7.2's `pc` machine reports), and
//!   the redirection entries at 0x10 + 2n (low word) and 0x11 + 2n (high word).
//!   Delivery status and remote IRR are read-only; entries reset masked.
//! - Edge-triggered pins latch a rising edge only while unmasked (82093AA: "edge requests
//!   on a masked pin are ignored"); level-triggered pins hold their request while the line
//!   is high, send one message and set remote IRR until the local APIC's EOI for that
//!   vector ([`IoApic::eoi`]), then send again if the line is still high. Changing an
//!   entry to edge-triggered clears its remote IRR. Polarity is stored and not applied
//!   (QEMU's lines are active-high).
//! - ExtINT entries are not delivered (the 8259A reaches the CPU through the local APIC's
//!   LINT0 instead).

use crate::lapic::{ApicBus, ApicMessage, delivery};

/// Guest-physical base address.
pub const IOAPIC_BASE: u64 = 0xFEC0_0000;
/// Size of the register page.
pub const IOAPIC_LEN: u64 = 0x1000;
/// Number of pins (redirection entries).
pub const IOAPIC_PINS: usize = 24;
/// The version register: 24 entries (23 in bits 16-23), version 0x20.
pub const IOAPIC_VERSION: u32 = ((IOAPIC_PINS as u32 - 1) << 16) | 0x20;

const MASKED: u64 = 1 << 16;
const LEVEL: u64 = 1 << 15;
const REMOTE_IRR: u64 = 1 << 14;
const DELIVERY_STATUS: u64 = 1 << 12;
const READ_ONLY: u64 = REMOTE_IRR | DELIVERY_STATUS;

/// The I/O APIC pin an ISA IRQ line drives on a PC.
pub fn isa_irq_pin(irq: u8) -> u8 {
    if irq == 0 { 2 } else { irq }
}

/// The I/O APIC.
#[derive(Debug, Clone)]
pub struct IoApic {
    id: u8,
    ioregsel: u8,
    /// Requests waiting to be sent, one bit per pin.
    irr: u32,
    redirection: [u64; IOAPIC_PINS],
}

impl Default for IoApic {
    fn default() -> Self {
        IoApic::new()
    }
}

impl IoApic {
    /// An I/O APIC after reset: ID 0, every entry masked.
    pub fn new() -> IoApic {
        IoApic { id: 0, ioregsel: 0, irr: 0, redirection: [MASKED; IOAPIC_PINS] }
    }

    /// Redirection entry `pin` is masked (pins past the last one count as masked).
    pub fn masked(&self, pin: u8) -> bool {
        self.redirection.get(usize::from(pin)).is_none_or(|&e| e & MASKED != 0)
    }

    /// Drive input `pin` to `level`. As in QEMU, an edge-triggered pin takes every
    /// assertion as an edge: the caller drives a pin only when one of its sources changes
    /// (pin 2 has two, ISA IRQ 0 and GSI 2, and each one's rising edge counts).
    pub fn set_irq(&mut self, pin: u8, level: bool, bus: &mut dyn ApicBus) {
        let Some(&entry) = self.redirection.get(usize::from(pin)) else {
            return;
        };
        let mask = 1u32 << pin;
        let rising = level;
        if entry & LEVEL != 0 {
            if level {
                self.irr |= mask;
                if entry & REMOTE_IRR == 0 {
                    self.service(bus);
                }
            } else {
                self.irr &= !mask;
            }
        } else if rising && entry & MASKED == 0 {
            self.irr |= mask;
            self.service(bus);
        }
    }

    /// Send a message for every pin with a request its entry lets through.
    fn service(&mut self, bus: &mut dyn ApicBus) {
        for pin in 0..IOAPIC_PINS {
            let mask = 1u32 << pin;
            let entry = self.redirection[pin];
            if self.irr & mask == 0 || entry & MASKED != 0 {
                continue;
            }
            if entry & LEVEL == 0 {
                self.irr &= !mask;
            } else if entry & REMOTE_IRR != 0 {
                continue; // the last one is still being handled
            } else {
                self.redirection[pin] |= REMOTE_IRR;
            }
            let mode = ((entry >> 8) & 7) as u8;
            if mode == delivery::EXTINT {
                log::debug!("I/O APIC: ExtINT entry {pin} not delivered");
                continue;
            }
            bus.deliver(ApicMessage {
                dest: (entry >> 56) as u8,
                logical: entry & (1 << 11) != 0,
                delivery: mode,
                vector: entry as u8,
                level: entry & LEVEL != 0,
            });
        }
    }

    /// The local APIC ended level-triggered `vector` (or the guest wrote the EOI
    /// register): clear remote IRR of the level-triggered entries with that vector, and
    /// send again for those whose line is still high.
    pub fn eoi(&mut self, vector: u8, bus: &mut dyn ApicBus) {
        let mut again = false;
        for pin in 0..IOAPIC_PINS {
            let entry = self.redirection[pin];
            if entry as u8 != vector || entry & LEVEL == 0 || entry & REMOTE_IRR == 0 {
                continue;
            }
            self.redirection[pin] = entry & !REMOTE_IRR;
            again |= entry & MASKED == 0 && self.irr & (1 << pin) != 0;
        }
        if again {
            self.service(bus);
        }
    }

    /// A read of `size` bytes at `offset` within the page.
    pub fn read(&self, offset: u64, size: u8) -> u32 {
        match offset & 0xFF {
            0x00 => u32::from(self.ioregsel),
            0x10 if size == 4 => match self.ioregsel {
                0x00 | 0x02 => u32::from(self.id) << 24,
                0x01 => IOAPIC_VERSION,
                sel => {
                    let index = usize::from(sel.wrapping_sub(0x10) >> 1);
                    match self.redirection.get(index) {
                        Some(&e) if sel >= 0x10 => (if sel & 1 != 0 { e >> 32 } else { e }) as u32,
                        _ => 0,
                    }
                }
            },
            _ => 0,
        }
    }

    /// A write of `size` bytes at `offset` within the page.
    pub fn write(&mut self, offset: u64, size: u8, value: u32, bus: &mut dyn ApicBus) {
        match offset & 0xFF {
            0x00 => self.ioregsel = value as u8,
            0x10 if size == 4 => match self.ioregsel {
                0x00 => self.id = ((value >> 24) & 0xF) as u8,
                0x01 | 0x02 => {}
                sel => {
                    let index = usize::from(sel.wrapping_sub(0x10) >> 1);
                    if sel < 0x10 || index >= IOAPIC_PINS {
                        return;
                    }
                    let old = self.redirection[index];
                    let new =
                        if sel & 1 != 0 { (old & 0xFFFF_FFFF) | (u64::from(value) << 32) } else { (old & !0xFFFF_FFFF) | u64::from(value) };
                    let mut entry = (new & !READ_ONLY) | (old & READ_ONLY);
                    if entry & LEVEL == 0 {
                        entry &= !REMOTE_IRR;
                    }
                    self.redirection[index] = entry;
                    self.service(bus);
                }
            },
            0x40 if size == 4 => self.eoi(value as u8, bus),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder(Vec<ApicMessage>);

    impl ApicBus for Recorder {
        fn deliver(&mut self, msg: ApicMessage) {
            self.0.push(msg);
        }
    }

    fn write_entry(io: &mut IoApic, pin: u8, entry: u64, bus: &mut Recorder) {
        io.write(0, 1, 0x11 + 2 * u32::from(pin), bus);
        io.write(0x10, 4, (entry >> 32) as u32, bus);
        io.write(0, 1, 0x10 + 2 * u32::from(pin), bus);
        io.write(0x10, 4, entry as u32, bus);
    }

    fn read_low(io: &mut IoApic, pin: u8) -> u32 {
        io.write(0, 1, 0x10 + 2 * u32::from(pin), &mut Recorder::default());
        io.read(0x10, 4)
    }

    #[test]
    fn id_version_and_reset_entries() {
        let mut io = IoApic::new();
        let mut bus = Recorder::default();
        io.write(0, 1, 1, &mut bus);
        assert_eq!(io.read(0x10, 4), 0x0017_0020);
        assert_eq!(io.read(0, 1), 1);
        assert_eq!(io.read(0x10, 2), 0, "IOWIN is 32-bit only");
        io.write(0, 1, 0, &mut bus);
        io.write(0x10, 4, 0xFF00_0000, &mut bus);
        assert_eq!(io.read(0x10, 4), 0x0F00_0000);
        assert_eq!(read_low(&mut io, 23), 0x1_0000);
        io.write(0, 1, 0x40, &mut bus);
        assert_eq!(io.read(0x10, 4), 0, "no entry 24");
    }

    #[test]
    fn edge_pin_delivers_assertions_while_unmasked() {
        let mut io = IoApic::new();
        let mut bus = Recorder::default();
        io.set_irq(2, true, &mut bus);
        io.set_irq(2, false, &mut bus);
        write_entry(&mut io, 2, 0x0000_0000_0000_0030, &mut bus);
        assert!(bus.0.is_empty(), "an edge on a masked pin is dropped");
        io.set_irq(2, true, &mut bus);
        assert_eq!(bus.0, [ApicMessage { dest: 0, logical: false, delivery: 0, vector: 0x30, level: false }]);
        // As in QEMU, every assertion is an edge (the board filters each source's level).
        io.set_irq(2, true, &mut bus);
        assert_eq!(bus.0.len(), 2);
    }

    #[test]
    fn level_pin_remote_irr_until_eoi() {
        let mut io = IoApic::new();
        let mut bus = Recorder::default();
        write_entry(&mut io, 9, LEVEL | 0x41 | (1 << 56) | (1 << 11), &mut bus);
        io.set_irq(9, true, &mut bus);
        assert_eq!(bus.0.len(), 1);
        assert_eq!(bus.0[0], ApicMessage { dest: 1, logical: true, delivery: 0, vector: 0x41, level: true });
        assert_eq!(read_low(&mut io, 9) as u64 & REMOTE_IRR, REMOTE_IRR);
        io.set_irq(9, false, &mut bus);
        io.set_irq(9, true, &mut bus);
        assert_eq!(bus.0.len(), 1, "remote IRR holds the next one back");
        io.eoi(0x41, &mut bus);
        assert_eq!(bus.0.len(), 2, "still high after EOI: sent again");
        io.set_irq(9, false, &mut bus);
        io.eoi(0x41, &mut bus);
        assert_eq!(bus.0.len(), 2);
        assert_eq!(read_low(&mut io, 9) as u64 & REMOTE_IRR, 0);
    }

    #[test]
    fn remote_irr_is_read_only_and_cleared_by_edge_mode() {
        let mut io = IoApic::new();
        let mut bus = Recorder::default();
        write_entry(&mut io, 5, LEVEL | 0x50, &mut bus);
        io.set_irq(5, true, &mut bus);
        write_entry(&mut io, 5, LEVEL | 0x50 & !REMOTE_IRR, &mut bus);
        assert_ne!(read_low(&mut io, 5) as u64 & REMOTE_IRR, 0);
        write_entry(&mut io, 5, 0x50, &mut bus);
        assert_eq!(read_low(&mut io, 5) as u64 & REMOTE_IRR, 0);
    }

    #[test]
    fn isa_wiring() {
        assert_eq!(isa_irq_pin(0), 2);
        assert_eq!(isa_irq_pin(4), 4);
        assert_eq!(isa_irq_pin(14), 14);
    }
}
