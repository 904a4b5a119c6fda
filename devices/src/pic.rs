//! The 8259A programmable interrupt controller pair of a PC.
//!
//! The master sits at ports 0x20-0x21 and delivers vectors to the CPU; the slave sits at
//! 0xA0-0xA1 and is cascaded on the master's IRQ2. The edge/level control registers
//! (ELCR, from the PIIX south bridge) are at 0x4D0 (master) and 0x4D1 (slave).
//!
//! Every decision the datasheet leaves open is taken as QEMU's `hw/intc/i8259.c` takes
//! it, since guest tests compare bt86 with QEMU:
//! - Inputs are edge-triggered unless ELCR (or LTIM in ICW1) makes them level-triggered.
//!   An edge is a `false` → `true` transition of [`PicPair::set_irq`]'s level; it latches
//!   the IRR bit, which stays set until the interrupt is acknowledged even if the line
//!   drops (QEMU keeps the IRR bit too).
//! - Priorities rotate through `priority_add` (the lowest-priority line + 1); the
//!   in-service register blocks requests of equal or lower priority, except under
//!   special mask mode. Special fully nested mode (ICW4 bit 4) only affects the master.
//! - ICW1 resets the chip's state (IMR, ISR, IRR edges, priorities) but not ELCR; ICW3
//!   is accepted and ignored (the wiring is fixed); ICW4 bit 1 selects auto-EOI.
//! - OCW2 implements non-specific EOI, specific EOI, rotate on non-specific EOI,
//!   rotate on specific EOI, set priority and rotate-in-auto-EOI on/off.
//! - OCW3 selects IRR or ISR for reads of the command port, poll mode (the next read of
//!   either port acknowledges the highest request and returns `0x80 | irq`, or 0) and
//!   special mask mode.
//! - Acknowledge (the INTA cycle) with no request left returns the chip's IRQ7 vector
//!   (spurious) without setting ISR; a master IRQ2 whose slave request vanished yields
//!   the slave's IRQ7 vector, i.e. IRQ15 (and the master's IRQ2 is still put in
//!   service, as in QEMU).
//! - The ELCR masks are QEMU's PIIX values: 0xF8 for the master (IRQ0-2 always edge),
//!   0xDE for the slave (IRQ8 and IRQ13 always edge).

use crate::irq::IrqSink;

/// One of the two chips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chip {
    /// The master, ports 0x20-0x21, ELCR at 0x4D0, ISA IRQs 0-7.
    Master,
    /// The slave, ports 0xA0-0xA1, ELCR at 0x4D1, ISA IRQs 8-15, cascaded on IRQ2.
    Slave,
}

/// The result of an interrupt-acknowledge cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterruptAck {
    /// The vector the CPU must deliver.
    pub vector: u8,
    /// The ISA line (0-15) the vector stands for: 7 or 15 when spurious.
    pub irq: u8,
    /// True when no request was left to acknowledge (the vector is the IRQ7 or IRQ15
    /// vector and no in-service bit was set for it).
    pub spurious: bool,
}

/// The master's IRQ line the slave is cascaded on.
const CASCADE_IRQ: u8 = 2;

/// One 8259A chip, with QEMU's state variables.
#[derive(Debug, Clone)]
struct Pic {
    master: bool,
    /// Input levels as last seen, for edge detection.
    last_irr: u8,
    irr: u8,
    imr: u8,
    isr: u8,
    /// Lowest-priority IRQ + 1: priority `p` means IRQ `(p + priority_add) & 7`.
    priority_add: u8,
    irq_base: u8,
    read_isr: bool,
    poll: bool,
    special_mask: bool,
    /// 0 = operational; 1, 2, 3 = waiting for ICW2, ICW3, ICW4.
    init_state: u8,
    auto_eoi: bool,
    rotate_on_auto_eoi: bool,
    special_fully_nested: bool,
    init4: bool,
    single_mode: bool,
    /// ICW1 bit 3: all inputs level-triggered.
    ltim: bool,
    elcr: u8,
    elcr_mask: u8,
    /// Set whenever QEMU would recompute the chip's INT output (`pic_update_irq`): the
    /// pair then forwards the slave's output to the master's IRQ2 input.
    output_dirty: bool,
}

impl Pic {
    fn new(master: bool) -> Self {
        let mut pic = Pic {
            master,
            last_irr: 0,
            irr: 0,
            imr: 0,
            isr: 0,
            priority_add: 0,
            irq_base: 0,
            read_isr: false,
            poll: false,
            special_mask: false,
            init_state: 0,
            auto_eoi: false,
            rotate_on_auto_eoi: false,
            special_fully_nested: false,
            init4: false,
            single_mode: false,
            ltim: false,
            elcr: 0,
            elcr_mask: if master { 0xF8 } else { 0xDE },
            output_dirty: false,
        };
        pic.init_reset();
        pic
    }

    /// QEMU's `pic_init_reset`: everything but ELCR and LTIM.
    fn init_reset(&mut self) {
        self.last_irr = 0;
        self.irr &= self.elcr;
        self.imr = 0;
        self.isr = 0;
        self.priority_add = 0;
        self.irq_base = 0;
        self.read_isr = false;
        self.poll = false;
        self.special_mask = false;
        self.init_state = 0;
        self.auto_eoi = false;
        self.rotate_on_auto_eoi = false;
        self.special_fully_nested = false;
        self.init4 = false;
        self.single_mode = false;
        self.update_irq();
    }

    fn is_level(&self, mask: u8) -> bool {
        self.ltim || self.elcr & mask != 0
    }

    /// Highest priority present in `mask` (0 = highest), or 8 if none.
    fn priority(&self, mask: u8) -> u8 {
        if mask == 0 {
            return 8;
        }
        (0..8).find(|p| mask & (1 << ((p + self.priority_add) & 7)) != 0).unwrap_or(8)
    }

    /// The IRQ this chip wants to deliver, if any.
    fn pending_irq(&self) -> Option<u8> {
        let priority = self.priority(self.irr & !self.imr);
        if priority == 8 {
            return None;
        }
        let mut in_service = self.isr;
        if self.special_mask {
            in_service &= !self.imr;
        }
        if self.special_fully_nested && self.master {
            in_service &= !(1 << CASCADE_IRQ);
        }
        (priority < self.priority(in_service)).then_some((priority + self.priority_add) & 7)
    }

    fn output(&self) -> bool {
        self.pending_irq().is_some()
    }

    fn update_irq(&mut self) {
        self.output_dirty = true;
    }

    fn set_irq(&mut self, irq: u8, level: bool) {
        let mask = 1u8 << irq;
        if self.is_level(mask) {
            if level {
                self.irr |= mask;
                self.last_irr |= mask;
            } else {
                self.irr &= !mask;
                self.last_irr &= !mask;
            }
        } else if level {
            if self.last_irr & mask == 0 {
                self.irr |= mask;
            }
            self.last_irr |= mask;
        } else {
            self.last_irr &= !mask;
        }
        self.update_irq();
    }

    /// Acknowledge `irq`: into ISR (unless auto-EOI), out of IRR (unless level).
    fn intack(&mut self, irq: u8) {
        let mask = 1u8 << irq;
        if self.auto_eoi {
            if self.rotate_on_auto_eoi {
                self.priority_add = (irq + 1) & 7;
            }
        } else {
            self.isr |= mask;
        }
        if !self.is_level(mask) {
            self.irr &= !mask;
        }
        self.update_irq();
    }

    fn write(&mut self, offset: u16, val: u8) {
        if offset & 1 == 0 {
            self.write_command(val);
        } else {
            self.write_data(val);
        }
    }

    fn write_command(&mut self, val: u8) {
        if val & 0x10 != 0 {
            // ICW1
            self.init_reset();
            self.init_state = 1;
            self.init4 = val & 0x01 != 0;
            self.single_mode = val & 0x02 != 0;
            self.ltim = val & 0x08 != 0;
        } else if val & 0x08 != 0 {
            // OCW3
            if val & 0x04 != 0 {
                self.poll = true;
            }
            if val & 0x02 != 0 {
                self.read_isr = val & 0x01 != 0;
            }
            if val & 0x40 != 0 {
                self.special_mask = val & 0x20 != 0;
            }
        } else {
            // OCW2
            let irq = val & 7;
            match val >> 5 {
                0 | 4 => self.rotate_on_auto_eoi = val >> 5 == 4,
                cmd @ (1 | 5) => {
                    // Non-specific EOI (and rotate): the highest-priority in-service IRQ.
                    let priority = self.priority(self.isr);
                    if priority != 8 {
                        let irq = (priority + self.priority_add) & 7;
                        self.isr &= !(1 << irq);
                        if cmd == 5 {
                            self.priority_add = (irq + 1) & 7;
                        }
                        self.update_irq();
                    }
                }
                3 => {
                    self.isr &= !(1 << irq);
                    self.update_irq();
                }
                6 => {
                    self.priority_add = (irq + 1) & 7;
                    self.update_irq();
                }
                7 => {
                    self.isr &= !(1 << irq);
                    self.priority_add = (irq + 1) & 7;
                    self.update_irq();
                }
                _ => {} // 2: no operation
            }
        }
    }

    fn write_data(&mut self, val: u8) {
        match self.init_state {
            0 => {
                // OCW1
                self.imr = val;
                self.update_irq();
            }
            1 => {
                self.irq_base = val & 0xF8;
                self.init_state = match (self.single_mode, self.init4) {
                    (true, true) => 3,
                    (true, false) => 0,
                    (false, _) => 2,
                };
            }
            2 => self.init_state = if self.init4 { 3 } else { 0 },
            _ => {
                self.special_fully_nested = val & 0x10 != 0;
                self.auto_eoi = val & 0x02 != 0;
                self.init_state = 0;
            }
        }
    }

    fn read(&mut self, offset: u16) -> u8 {
        if self.poll {
            self.poll = false;
            return match self.pending_irq() {
                Some(irq) => {
                    self.intack(irq);
                    0x80 | irq
                }
                None => 0,
            };
        }
        match (offset & 1, self.read_isr) {
            (0, true) => self.isr,
            (0, false) => self.irr,
            _ => self.imr,
        }
    }
}

/// The cascaded master/slave pair, as wired on a PC.
#[derive(Debug, Clone)]
pub struct PicPair {
    master: Pic,
    slave: Pic,
}

impl Default for PicPair {
    fn default() -> Self {
        Self::new()
    }
}

impl PicPair {
    /// Both chips as after a machine reset (QEMU's `pic_reset`): vector base 0, nothing
    /// masked, ELCR 0. Firmware or the guest is expected to initialize them.
    pub fn new() -> Self {
        let mut pair = PicPair { master: Pic::new(true), slave: Pic::new(false) };
        pair.master.output_dirty = false;
        pair.slave.output_dirty = false;
        pair
    }

    /// Drive ISA line `irq` (0-15) to `level`. Lines 8-15 go to the slave. Line 2 is the
    /// cascade input and is driven by the slave only; external devices never use it.
    pub fn set_irq(&mut self, irq: u8, level: bool) {
        match irq {
            0..=7 => self.master.set_irq(irq, level),
            8..=15 => {
                self.slave.set_irq(irq - 8, level);
                self.cascade();
            }
            _ => log::warn!("PIC: IRQ {irq} does not exist"),
        }
    }

    /// The INTR output to the CPU: true while the master has a request it would deliver.
    pub fn interrupt_pending(&self) -> bool {
        self.master.output()
    }

    /// The INTA cycle: returns the vector to deliver and moves the request from IRR to
    /// ISR (on both chips for a slave interrupt). See [`PicPair::intack`] for details.
    pub fn acknowledge(&mut self) -> u8 {
        self.intack().vector
    }

    /// The INTA cycle with the details: which line was acknowledged and whether it
    /// was spurious (QEMU's `pic_read_irq`).
    pub fn intack(&mut self) -> InterruptAck {
        let Some(irq) = self.master.pending_irq() else {
            return InterruptAck { vector: self.master.irq_base + 7, irq: 7, spurious: true };
        };
        if irq != CASCADE_IRQ {
            self.master.intack(irq);
            return InterruptAck { vector: self.master.irq_base + irq, irq, spurious: false };
        }
        let (slave_irq, spurious) = match self.slave.pending_irq() {
            Some(slave_irq) => {
                self.slave.intack(slave_irq);
                self.cascade();
                (slave_irq, false)
            }
            None => (7, true),
        };
        self.master.intack(CASCADE_IRQ);
        InterruptAck { vector: self.slave.irq_base + slave_irq, irq: 8 + slave_irq, spurious }
    }

    /// A guest read of the chip's port at `offset` (0 = command, 1 = data).
    pub fn read(&mut self, chip: Chip, offset: u16) -> u8 {
        match chip {
            Chip::Master => self.master.read(offset),
            Chip::Slave => {
                let value = self.slave.read(offset);
                self.cascade();
                value
            }
        }
    }

    /// A guest write of the chip's port at `offset` (0 = command, 1 = data).
    pub fn write(&mut self, chip: Chip, offset: u16, value: u8) {
        match chip {
            Chip::Master => self.master.write(offset, value),
            Chip::Slave => {
                self.slave.write(offset, value);
                self.cascade();
            }
        }
    }

    /// A guest read of the chip's ELCR (0x4D0 / 0x4D1).
    pub fn read_elcr(&self, chip: Chip) -> u8 {
        self.chip(chip).elcr
    }

    /// A guest write of the chip's ELCR (0x4D0 / 0x4D1): bit n set makes line n
    /// level-triggered. Bits the board hard-wires to edge are ignored.
    pub fn write_elcr(&mut self, chip: Chip, value: u8) {
        let pic = match chip {
            Chip::Master => &mut self.master,
            Chip::Slave => &mut self.slave,
        };
        pic.elcr = value & pic.elcr_mask;
    }

    /// The chip's interrupt mask register (for debugging and tests).
    pub fn imr(&self, chip: Chip) -> u8 {
        self.chip(chip).imr
    }

    /// The chip's interrupt request register.
    pub fn irr(&self, chip: Chip) -> u8 {
        self.chip(chip).irr
    }

    /// The chip's in-service register.
    pub fn isr(&self, chip: Chip) -> u8 {
        self.chip(chip).isr
    }

    /// The chip's vector base (ICW2 & 0xF8).
    pub fn vector_base(&self, chip: Chip) -> u8 {
        self.chip(chip).irq_base
    }

    fn chip(&self, chip: Chip) -> &Pic {
        match chip {
            Chip::Master => &self.master,
            Chip::Slave => &self.slave,
        }
    }

    /// Forward the slave's INT output to the master's IRQ2 input, whenever QEMU would.
    fn cascade(&mut self) {
        if std::mem::take(&mut self.slave.output_dirty) {
            let level = self.slave.output();
            self.master.set_irq(CASCADE_IRQ, level);
        }
    }
}

impl IrqSink for PicPair {
    fn set_irq(&mut self, irq: u8, level: bool) {
        PicPair::set_irq(self, irq, level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Chip::{Master, Slave};

    /// The sequence Linux (`init_8259A`) and SeaBIOS use: ICW1 0x11, ICW2 base, ICW3
    /// 0x04 / 0x02, ICW4 0x01, then the masks.
    fn init(pic: &mut PicPair, master_base: u8, slave_base: u8, icw4: u8) {
        pic.write(Master, 0, 0x11);
        pic.write(Master, 1, master_base);
        pic.write(Master, 1, 0x04);
        pic.write(Master, 1, icw4);
        pic.write(Slave, 0, 0x11);
        pic.write(Slave, 1, slave_base);
        pic.write(Slave, 1, 0x02);
        pic.write(Slave, 1, icw4);
        pic.write(Master, 1, 0x00);
        pic.write(Slave, 1, 0x00);
    }

    fn ready() -> PicPair {
        let mut pic = PicPair::new();
        init(&mut pic, 0x20, 0x28, 0x01);
        pic
    }

    fn eoi(pic: &mut PicPair, chip: Chip) {
        pic.write(chip, 0, 0x20);
    }

    #[test]
    fn initialization_sets_vector_base_and_clears_masks() {
        let mut pic = PicPair::new();
        pic.write(Master, 1, 0xFF); // OCW1 before init
        init(&mut pic, 0x30 | 0x05, 0x78, 0x01); // low three bits of ICW2 are ignored
        assert_eq!(pic.vector_base(Master), 0x30);
        assert_eq!(pic.vector_base(Slave), 0x78);
        assert_eq!(pic.read(Master, 1), 0x00);
        // After init the data port is OCW1 again.
        pic.write(Master, 1, 0xFB);
        pic.write(Slave, 1, 0xFF);
        assert_eq!(pic.read(Master, 1), 0xFB);
        assert_eq!(pic.read(Slave, 1), 0xFF);
    }

    #[test]
    fn icw1_without_icw4_skips_it() {
        let mut pic = PicPair::new();
        pic.write(Master, 0, 0x10); // ICW1: cascade, no ICW4
        pic.write(Master, 1, 0x40); // ICW2
        pic.write(Master, 1, 0x04); // ICW3
        pic.write(Master, 1, 0xA5); // OCW1 already
        assert_eq!(pic.imr(Master), 0xA5);
        // Single mode without ICW4: ICW2 is the last word.
        pic.write(Slave, 0, 0x12);
        pic.write(Slave, 1, 0x50);
        pic.write(Slave, 1, 0x3C);
        assert_eq!(pic.imr(Slave), 0x3C);
    }

    #[test]
    fn edge_latches_irr_once_until_the_line_drops() {
        let mut pic = ready();
        pic.set_irq(3, true);
        assert!(pic.interrupt_pending());
        assert_eq!(pic.acknowledge(), 0x23);
        eoi(&mut pic, Master);
        // The line is still high: no new edge, nothing pending.
        pic.set_irq(3, true);
        assert!(!pic.interrupt_pending());
        pic.set_irq(3, false);
        pic.set_irq(3, true);
        assert_eq!(pic.acknowledge(), 0x23);
    }

    #[test]
    fn irr_stays_latched_after_the_line_drops() {
        let mut pic = ready();
        pic.set_irq(5, true);
        pic.set_irq(5, false);
        assert_eq!(pic.irr(Master), 0x20);
        assert_eq!(pic.acknowledge(), 0x25);
        assert_eq!(pic.irr(Master), 0x00);
        assert_eq!(pic.isr(Master), 0x20);
    }

    #[test]
    fn lower_irq_number_wins_and_isr_blocks_lower_priorities() {
        let mut pic = ready();
        pic.set_irq(4, true);
        pic.set_irq(1, true);
        assert_eq!(pic.acknowledge(), 0x21);
        // IRQ1 in service blocks IRQ4.
        assert!(!pic.interrupt_pending());
        // A higher-priority IRQ0 nests.
        pic.set_irq(0, true);
        assert!(pic.interrupt_pending());
        assert_eq!(pic.acknowledge(), 0x20);
        assert_eq!(pic.isr(Master), 0x03);
        // Non-specific EOI ends IRQ0 (highest in service), IRQ1 still blocks IRQ4.
        eoi(&mut pic, Master);
        assert_eq!(pic.isr(Master), 0x02);
        assert!(!pic.interrupt_pending());
        eoi(&mut pic, Master);
        assert_eq!(pic.acknowledge(), 0x24);
    }

    #[test]
    fn masked_requests_stay_in_irr_until_unmasked() {
        let mut pic = ready();
        pic.write(Master, 1, 0x01);
        pic.set_irq(0, true);
        assert!(!pic.interrupt_pending());
        assert_eq!(pic.irr(Master), 0x01);
        pic.write(Master, 1, 0x00);
        assert!(pic.interrupt_pending());
        assert_eq!(pic.acknowledge(), 0x20);
    }

    #[test]
    fn specific_eoi_clears_only_the_named_line() {
        let mut pic = ready();
        pic.set_irq(6, true);
        assert_eq!(pic.acknowledge(), 0x26);
        pic.set_irq(3, true); // IRQ3 nests above IRQ6
        assert_eq!(pic.acknowledge(), 0x23);
        assert_eq!(pic.isr(Master), 0x48);
        pic.write(Master, 0, 0x60 | 6); // specific EOI for IRQ6
        assert_eq!(pic.isr(Master), 0x08);
    }

    #[test]
    fn ocw3_selects_irr_or_isr_for_command_port_reads() {
        let mut pic = ready();
        pic.set_irq(7, true);
        pic.set_irq(4, true);
        assert_eq!(pic.acknowledge(), 0x24);
        // Default after init: IRR.
        assert_eq!(pic.read(Master, 0), 0x80);
        pic.write(Master, 0, 0x0B); // read ISR
        assert_eq!(pic.read(Master, 0), 0x10);
        assert_eq!(pic.read(Master, 0), 0x10);
        pic.write(Master, 0, 0x0A); // read IRR
        assert_eq!(pic.read(Master, 0), 0x80);
        // The data port always reads IMR.
        assert_eq!(pic.read(Master, 1), 0x00);
    }

    #[test]
    fn poll_mode_acknowledges_on_read() {
        let mut pic = ready();
        pic.set_irq(5, true);
        pic.write(Master, 0, 0x0C); // OCW3 poll
        assert_eq!(pic.read(Master, 0), 0x85);
        assert_eq!(pic.isr(Master), 0x20);
        assert_eq!(pic.irr(Master), 0x00);
        pic.write(Master, 0, 0x0C);
        assert_eq!(pic.read(Master, 1), 0x00, "poll with nothing pending reads 0");
        // Poll is one-shot: the next read is IMR again.
        pic.write(Master, 1, 0x5A);
        assert_eq!(pic.read(Master, 1), 0x5A);
    }

    #[test]
    fn slave_interrupt_cascades_through_irq2() {
        let mut pic = ready();
        pic.set_irq(12, true);
        assert!(pic.interrupt_pending());
        assert_eq!(pic.irr(Master), 0x04);
        let ack = pic.intack();
        assert_eq!(ack, InterruptAck { vector: 0x2C, irq: 12, spurious: false });
        assert_eq!(pic.isr(Slave), 0x10);
        assert_eq!(pic.isr(Master), 0x04);
        // Both chips need an EOI; the master's alone leaves the slave in service.
        eoi(&mut pic, Slave);
        eoi(&mut pic, Master);
        assert_eq!(pic.isr(Slave), 0);
        assert_eq!(pic.isr(Master), 0);
        assert!(!pic.interrupt_pending());
    }

    #[test]
    fn slave_priority_sits_at_irq2_of_the_master() {
        let mut pic = ready();
        pic.set_irq(3, true);
        pic.set_irq(9, true);
        pic.set_irq(1, true);
        assert_eq!(pic.acknowledge(), 0x21); // IRQ1 beats the cascade
        eoi(&mut pic, Master);
        assert_eq!(pic.acknowledge(), 0x29); // IRQ9 (via IRQ2) beats IRQ3
        eoi(&mut pic, Slave);
        eoi(&mut pic, Master);
        assert_eq!(pic.acknowledge(), 0x23);
    }

    #[test]
    fn masking_the_slave_line_cascades_the_drop() {
        let mut pic = ready();
        pic.write(Slave, 1, 0x01);
        pic.set_irq(8, true);
        assert!(!pic.interrupt_pending());
        pic.write(Slave, 1, 0x00);
        assert!(pic.interrupt_pending());
        assert_eq!(pic.acknowledge(), 0x28);
    }

    #[test]
    fn spurious_master_interrupt_is_irq7_without_isr() {
        let mut pic = ready();
        let ack = pic.intack();
        assert_eq!(ack, InterruptAck { vector: 0x27, irq: 7, spurious: true });
        assert_eq!(pic.isr(Master), 0);
    }

    #[test]
    fn request_masked_on_slave_after_cascade_edge_is_spurious_irq15() {
        let mut pic = ready();
        pic.set_irq(10, true);
        assert_eq!(pic.irr(Master), 0x04);
        // The slave's request vanishes (masked) but the master already latched IRQ2.
        pic.write(Slave, 1, 0x04);
        assert!(pic.interrupt_pending());
        let ack = pic.intack();
        assert_eq!(ack, InterruptAck { vector: 0x2F, irq: 15, spurious: true });
        assert_eq!(pic.isr(Slave), 0, "no slave ISR bit for a spurious IRQ15");
        assert_eq!(pic.isr(Master), 0x04, "QEMU still puts the cascade in service");
    }

    #[test]
    fn auto_eoi_leaves_isr_clear() {
        let mut pic = PicPair::new();
        init(&mut pic, 0x08, 0x70, 0x03); // ICW4: 8086 mode + auto-EOI
        pic.set_irq(0, true);
        assert_eq!(pic.acknowledge(), 0x08);
        assert_eq!(pic.isr(Master), 0);
        // With nothing in service, a lower-priority request is delivered right away.
        pic.set_irq(6, true);
        assert_eq!(pic.acknowledge(), 0x0E);
        pic.set_irq(14, true);
        assert_eq!(pic.acknowledge(), 0x76);
        assert_eq!(pic.isr(Slave), 0);
        assert_eq!(pic.isr(Master), 0);
    }

    #[test]
    fn rotate_on_non_specific_eoi_makes_the_served_line_lowest() {
        let mut pic = ready();
        pic.set_irq(1, true);
        assert_eq!(pic.acknowledge(), 0x21);
        pic.write(Master, 0, 0xA0); // rotate on non-specific EOI: IRQ1 becomes lowest
        pic.set_irq(0, true);
        pic.set_irq(1, false);
        pic.set_irq(1, true);
        pic.set_irq(5, true);
        // Priority order is now 2,3,4,5,6,7,0,1.
        assert_eq!(pic.acknowledge(), 0x25);
        pic.write(Master, 0, 0x20);
        assert_eq!(pic.acknowledge(), 0x20);
        pic.write(Master, 0, 0x20);
        assert_eq!(pic.acknowledge(), 0x21);
    }

    #[test]
    fn set_priority_command_rotates_explicitly() {
        let mut pic = ready();
        pic.write(Master, 0, 0xC0 | 4); // IRQ4 lowest, IRQ5 highest
        pic.set_irq(3, true);
        pic.set_irq(6, true);
        assert_eq!(pic.acknowledge(), 0x26);
    }

    #[test]
    fn icw1_clears_requests_masks_and_service_but_not_elcr() {
        let mut pic = ready();
        pic.write_elcr(Master, 0x08);
        pic.set_irq(4, true);
        pic.set_irq(3, true);
        pic.write(Master, 1, 0x10);
        assert_eq!(pic.acknowledge(), 0x23);
        pic.write(Master, 0, 0x11);
        assert_eq!(pic.isr(Master), 0);
        assert_eq!(pic.imr(Master), 0);
        // Edge request dropped, level request (ELCR) kept.
        assert_eq!(pic.irr(Master), 0x08);
        assert_eq!(pic.read_elcr(Master), 0x08);
    }

    #[test]
    fn elcr_level_lines_follow_the_level_and_survive_ack() {
        let mut pic = ready();
        pic.write_elcr(Slave, 0xFF);
        assert_eq!(pic.read_elcr(Slave), 0xDE, "IRQ8 and IRQ13 are edge-only");
        pic.write_elcr(Master, 0xFF);
        assert_eq!(pic.read_elcr(Master), 0xF8, "IRQ0-2 are edge-only");
        pic.set_irq(11, true);
        assert_eq!(pic.acknowledge(), 0x2B);
        assert_eq!(pic.irr(Slave), 0x08, "a level request is not cleared by INTA");
        eoi(&mut pic, Slave);
        eoi(&mut pic, Master);
        // Still asserted: delivered again.
        assert_eq!(pic.acknowledge(), 0x2B);
        // The handler quiets the device before its EOIs: nothing more.
        pic.set_irq(11, false);
        assert_eq!(pic.irr(Slave), 0);
        eoi(&mut pic, Slave);
        eoi(&mut pic, Master);
        assert!(!pic.interrupt_pending());
    }

    #[test]
    fn level_line_still_high_at_slave_eoi_relatches_the_cascade() {
        // QEMU: the slave's EOI re-raises its output, which is a new edge on the
        // master's IRQ2; if the device drops its line afterwards, the master still
        // delivers, and the acknowledge finds nothing on the slave: IRQ15 spurious.
        let mut pic = ready();
        pic.write_elcr(Slave, 0x08);
        pic.set_irq(11, true);
        assert_eq!(pic.acknowledge(), 0x2B);
        eoi(&mut pic, Slave);
        eoi(&mut pic, Master);
        pic.set_irq(11, false);
        assert!(pic.interrupt_pending());
        assert_eq!(pic.intack().vector, 0x2F);
    }

    #[test]
    fn special_mask_mode_lets_lower_priorities_through() {
        let mut pic = ready();
        pic.set_irq(3, true);
        assert_eq!(pic.acknowledge(), 0x23);
        pic.write(Master, 1, 0x08); // mask IRQ3 while it is in service
        pic.write(Master, 0, 0x68); // OCW3: set special mask
        pic.set_irq(6, true);
        assert!(pic.interrupt_pending());
        assert_eq!(pic.acknowledge(), 0x26);
        pic.write(Master, 0, 0x48); // reset special mask
        pic.set_irq(7, true);
        assert!(!pic.interrupt_pending(), "IRQ3 and IRQ6 in service block IRQ7 again");
    }

    #[test]
    fn reset_state_matches_qemu() {
        let mut pic = PicPair::new();
        assert_eq!(pic.read(Master, 1), 0x00);
        assert_eq!(pic.read(Slave, 1), 0x00);
        assert_eq!(pic.read(Master, 0), 0x00);
        assert_eq!(pic.read_elcr(Master), 0x00);
        // Vector base 0 until initialized.
        pic.set_irq(1, true);
        assert_eq!(pic.acknowledge(), 0x01);
    }
}
