//! The ACPI power-management registers of QEMU's `pc` machine (its PIIX4 PM function,
//! I/O base 0x600 as SeaBIOS programs it), the fixed-hardware part the FADT announces:
//!
//! | port  | register | |
//! |-------|----------|-|
//! | 0x600 | PM1a_STS | 16 bits, write one to clear; TMR_STS (bit 0) is set each time bit 23 of the timer changes |
//! | 0x602 | PM1a_EN  | 16 bits, stored |
//! | 0x604 | PM1a_CNT | 16 bits: SCI_EN (bit 0) always set, SLP_TYP (bits 10-12), SLP_EN (bit 13, write-only) |
//! | 0x608 | PM_TMR   | 24-bit counter at 3.579545 MHz, read-only |
//!
//! The FADT declares no SMI command port, so the machine is always in ACPI mode (SCI_EN
//! set, no enable handshake). Writing SLP_EN with SLP_TYP 0 — the `\_S5` value of bt86's
//! DSDT — powers the machine off ([`PmAction::PowerOff`]); other sleep types are
//! ignored. The timer counts from the monitor's virtual time like every other device.
//! No SCI is generated: nothing here raises a status bit whose enable a guest would set
//! and expect an interrupt for, except the timer overflow, which Linux does not enable.
//!
//! Accesses of any size reach the bytes they cover (a byte read of 0x605 is the high
//! half of PM1a_CNT), as QEMU's models accept them.

/// First port of the block (QEMU's PIIX4 `PMBASE` under SeaBIOS).
pub const PM_BASE: u16 = 0x600;
/// Ports in the block: event (4), control (2), a hole (2), timer (4).
pub const PM_LEN: u16 = 12;
/// PM1a event block (status, enable).
pub const PM1A_EVT_BLK: u16 = PM_BASE;
/// PM1a control block.
pub const PM1A_CNT_BLK: u16 = PM_BASE + 4;
/// The PM timer.
pub const PM_TMR_BLK: u16 = PM_BASE + 8;
/// The timer's frequency in Hz.
pub const PM_TIMER_HZ: u64 = 3_579_545;
/// The SLP_TYP value of `\_S5` (soft off) in bt86's DSDT, as in QEMU's.
pub const SLP_TYP_S5: u16 = 0;

const STS_TMR: u16 = 1 << 0;
const CNT_SCI_EN: u16 = 1 << 0;
const CNT_SLP_EN: u16 = 1 << 13;
const CNT_SLP_TYP_SHIFT: u16 = 10;
const CNT_SLP_TYP_MASK: u16 = 7 << CNT_SLP_TYP_SHIFT;
/// PM1a_CNT bits that read back as written (BM_RLD, SLP_TYP).
const CNT_STORED: u16 = (1 << 1) | CNT_SLP_TYP_MASK;
const TIMER_MASK: u64 = 0xFF_FFFF;

/// What the monitor must do after a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PmAction {
    /// Nothing.
    None,
    /// The guest entered S5: turn the machine off.
    PowerOff,
}

/// The PM1a event and control registers and the PM timer.
#[derive(Debug, Clone)]
pub struct AcpiPm {
    /// Status bits other than TMR_STS (never set by bt86's hardware, kept for W1C).
    status: u16,
    enable: u16,
    control: u16,
    /// Timer ticks at which TMR_STS was last cleared.
    tmr_cleared_at: u64,
    /// Virtual time at which the timer read 0.
    boot_ns: u64,
}

impl AcpiPm {
    /// The registers after power-on at virtual time `boot_ns`: ACPI mode (SCI_EN),
    /// nothing enabled, the timer at 0.
    pub fn new(boot_ns: u64) -> AcpiPm {
        AcpiPm { status: 0, enable: 0, control: CNT_SCI_EN, tmr_cleared_at: 0, boot_ns }
    }

    /// Timer ticks since power-on (not yet cut to 24 bits).
    fn ticks(&self, now_ns: u64) -> u64 {
        (u128::from(now_ns.saturating_sub(self.boot_ns)) * u128::from(PM_TIMER_HZ) / 1_000_000_000) as u64
    }

    /// The 24-bit timer value at `now_ns`.
    pub fn timer(&self, now_ns: u64) -> u32 {
        (self.ticks(now_ns) & TIMER_MASK) as u32
    }

    fn status(&self, now_ns: u64) -> u16 {
        let overflowed = self.ticks(now_ns) >> 23 != self.tmr_cleared_at >> 23;
        self.status | if overflowed { STS_TMR } else { 0 }
    }

    /// The 16- or 32-bit register holding byte `offset` of the block, its first byte.
    fn register(&self, offset: u16, now_ns: u64) -> Option<(u32, u16)> {
        match offset {
            0..=1 => Some((u32::from(self.status(now_ns)), 0)),
            2..=3 => Some((u32::from(self.enable), 2)),
            4..=5 => Some((u32::from(self.control), 4)),
            8..=11 => Some((self.timer(now_ns), 8)),
            _ => None,
        }
    }

    /// A guest read of `size` bytes at `offset` in the block.
    pub fn read(&self, offset: u16, size: u8, now_ns: u64) -> u32 {
        (0..u16::from(size)).fold(0, |acc, i| {
            let byte = match self.register(offset + i, now_ns) {
                Some((value, start)) => (value >> (8 * (offset + i - start))) & 0xFF,
                None => 0,
            };
            acc | (byte << (8 * i))
        })
    }

    /// A guest write of the low `size` bytes of `value` at `offset` in the block.
    pub fn write(&mut self, offset: u16, size: u8, value: u32, now_ns: u64) -> PmAction {
        let mut action = PmAction::None;
        let mut i = 0;
        while i < u16::from(size) {
            let at = offset + i;
            let byte = (value >> (8 * i)) as u8;
            // Bytes of one 16-bit register written together are applied together.
            let (word, mask, step) = if at.is_multiple_of(2) && i + 1 < u16::from(size) {
                (u16::from(byte) | u16::from((value >> (8 * (i + 1))) as u8) << 8, 0xFFFF, 2)
            } else if at.is_multiple_of(2) {
                (u16::from(byte), 0x00FF, 1)
            } else {
                (u16::from(byte) << 8, 0xFF00, 1)
            };
            match at & !1 {
                0 => self.clear_status(word & mask, now_ns),
                2 => self.enable = (self.enable & !mask) | (word & mask),
                4 => {
                    let new = (self.control & !mask) | (word & mask);
                    self.control = CNT_SCI_EN | (new & CNT_STORED);
                    if word & mask & CNT_SLP_EN != 0 {
                        action = self.sleep((new & CNT_SLP_TYP_MASK) >> CNT_SLP_TYP_SHIFT);
                    }
                }
                _ => {}
            }
            i += step;
        }
        action
    }

    fn clear_status(&mut self, bits: u16, now_ns: u64) {
        if bits & STS_TMR != 0 {
            self.tmr_cleared_at = self.ticks(now_ns);
        }
        self.status &= !bits;
    }

    fn sleep(&self, slp_typ: u16) -> PmAction {
        if slp_typ == SLP_TYP_S5 {
            PmAction::PowerOff
        } else {
            log::debug!("ACPI sleep type {slp_typ} requested: bt86 has only S5 (soft off); ignored");
            PmAction::None
        }
    }

    /// Back to the power-on state at `now_ns` (a machine reset).
    pub fn reset(&mut self, now_ns: u64) {
        *self = AcpiPm::new(now_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn timer_counts_at_3_579545_mhz_and_wraps_at_24_bits() {
        let pm = AcpiPm::new(1000);
        assert_eq!(pm.read(8, 4, 1000), 0);
        assert_eq!(pm.read(8, 4, 1000 + SEC), 3_579_545);
        // 2^24 ticks are 4.687 s: 5 s later it has wrapped.
        assert_eq!(pm.read(8, 4, 1000 + 5 * SEC), ((5 * PM_TIMER_HZ) & TIMER_MASK) as u32);
        // Byte reads see the same bits; the fourth byte is 0.
        let now = 1000 + SEC;
        assert_eq!(pm.read(8, 1, now), 3_579_545 & 0xFF);
        assert_eq!(pm.read(10, 1, now), 3_579_545 >> 16);
        assert_eq!(pm.read(11, 1, now), 0);
    }

    #[test]
    fn sci_en_is_always_set_and_s5_powers_off() {
        let mut pm = AcpiPm::new(0);
        assert_eq!(pm.read(4, 2, 0), 1);
        // SLP_TYP alone reads back; SLP_EN reads 0.
        assert_eq!(pm.write(4, 2, 5 << 10, 0), PmAction::None);
        assert_eq!(pm.read(4, 2, 0), (5 << 10) | 1);
        // S1..S4 sleep types are ignored; S5 (SLP_TYP 0) turns the machine off.
        assert_eq!(pm.write(4, 2, (5 << 10) | CNT_SLP_EN as u32, 0), PmAction::None);
        assert_eq!(pm.read(4, 2, 0) & u32::from(CNT_SLP_EN), 0);
        assert_eq!(pm.write(4, 2, u32::from(CNT_SLP_EN), 0), PmAction::PowerOff);
        // A byte write of the high half (as `outb 0x605`) works too.
        assert_eq!(pm.write(5, 1, u32::from(CNT_SLP_EN >> 8), 0), PmAction::PowerOff);
        // SCI_EN cannot be cleared.
        pm.write(4, 2, 0, 0);
        assert_eq!(pm.read(4, 2, 0), 1);
    }

    #[test]
    fn tmr_sts_is_set_when_bit_23_changes_and_cleared_by_writing_one() {
        let mut pm = AcpiPm::new(0);
        assert_eq!(pm.read(0, 2, 0), 0);
        let overflow = (1u64 << 23) * SEC / PM_TIMER_HZ + 1;
        assert_eq!(pm.read(0, 2, overflow), 1);
        // Writing 0 changes nothing; writing 1 clears it until the next change.
        pm.write(0, 2, 0, overflow);
        assert_eq!(pm.read(0, 2, overflow), 1);
        pm.write(0, 2, 1, overflow);
        assert_eq!(pm.read(0, 2, overflow), 0);
        assert_eq!(pm.read(0, 2, 2 * overflow), 1);
        // PM1a_EN is stored.
        pm.write(2, 2, 0x0120, 0);
        assert_eq!(pm.read(2, 2, 0), 0x0120);
        assert_eq!(pm.read(0, 4, 0), 0x0120_0000 | pm.read(0, 2, 0));
    }

    #[test]
    fn reset_restarts_the_timer() {
        let mut pm = AcpiPm::new(0);
        pm.write(2, 2, 0x100, 0);
        pm.reset(SEC);
        assert_eq!(pm.read(8, 4, SEC), 0);
        assert_eq!(pm.read(2, 2, SEC), 0);
    }
}
