//! The MC146818 real-time clock and its 128 bytes of CMOS RAM (ports 0x70-0x71).
//!
//! Port 0x70 selects a register (bit 7 is the NMI-disable bit of the PC chipset, kept
//! but not part of the index); port 0x71 reads or writes it. Behaviour follows QEMU's
//! `hw/rtc/mc146818rtc.c` with the `pc` machine's settings (base year 2000, so the
//! century byte at 0x32 holds the real century):
//! - Reading port 0x70 returns 0xFF.
//! - Time registers (0x00-0x09, 0x32) are recomputed from the clock on every read while
//!   the clock runs, in BCD or binary (register B bit 2) and 12h (bit 7 of the hour =
//!   PM) or 24h (register B bit 1).
//! - The clock is the wall-clock time given at creation plus the virtual time elapsed
//!   since (`now_ns`), so it is deterministic. Writing a time register while the clock
//!   runs sets the clock from the registers; with register B's SET bit the registers
//!   freeze and the guest's values take effect when SET is cleared.
//! - Register A reads UIP (bit 7) during the last 244 µs of every second; writes keep
//!   UIP. Register B's SET bit clears UIE. Register C reads then clears. Registers C
//!   and D are read-only; D reads 0x80 (battery good).
//! - Index 0x37 (IBM PS/2 century byte) is an alias of 0x32.
//!
//! # Interrupts
//! The periodic interrupt: while register A's rate (low nibble) is non-zero and PIE or
//! SQWE is set in register B, PF is set in register C every period (32768 >> (rate - 1)
//! Hz; rates 1 and 2 mean 256 and 128 Hz, as in QEMU); with PIE, IRQF is set and IRQ8
//! ([`RTC_IRQ`]) goes high until the guest reads register C. [`Cmos::update`] and
//! [`Cmos::next_event_ns`] pace it like the PIT's pair. Update-ended and alarm
//! interrupts are not generated (no guest here uses them).

use crate::irq::IrqSink;

/// The RTC's ISA interrupt line.
pub const RTC_IRQ: u8 = 8;

const NS_PER_SEC: i128 = 1_000_000_000;
/// UIP is set for the last 8 cycles of the 32.768 kHz clock in every second.
const UIP_HOLD_NS: i128 = 8 * NS_PER_SEC / 32768;

// Register indexes.
const SECONDS: usize = 0x00;
const SECONDS_ALARM: usize = 0x01;
const MINUTES: usize = 0x02;
const MINUTES_ALARM: usize = 0x03;
const HOURS: usize = 0x04;
const HOURS_ALARM: usize = 0x05;
const DAY_OF_WEEK: usize = 0x06;
const DAY_OF_MONTH: usize = 0x07;
const MONTH: usize = 0x08;
const YEAR: usize = 0x09;
const REG_A: usize = 0x0A;
const REG_B: usize = 0x0B;
const REG_C: usize = 0x0C;
const REG_D: usize = 0x0D;
const CENTURY: usize = 0x32;
const IBM_PS2_CENTURY: usize = 0x37;

const REG_A_UIP: u8 = 0x80;
const REG_B_SET: u8 = 0x80;
const REG_B_PIE: u8 = 0x40;
const REG_B_AIE: u8 = 0x20;
const REG_B_UIE: u8 = 0x10;
const REG_B_SQWE: u8 = 0x08;
const REG_B_DM: u8 = 0x04;
const REG_B_24H: u8 = 0x02;
const REG_C_IRQF: u8 = 0x80;
const REG_C_PF: u8 = 0x40;
const REG_C_AF: u8 = 0x20;
const REG_C_UF: u8 = 0x10;
const REG_C_MASK: u8 = 0x70;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// A broken-down UTC time, as `struct tm` (year in full, month 1-12, weekday 0 =
/// Sunday).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tm {
    year: i64,
    month: i64,
    mday: i64,
    hour: i64,
    min: i64,
    sec: i64,
    wday: i64,
}

/// Seconds since 1970 of a broken-down UTC time: QEMU's `mktimegm`, including its
/// arithmetic on out-of-range fields.
fn mktimegm(tm: &Tm) -> i64 {
    let (mut y, mut m) = (tm.year, tm.month);
    if m < 3 {
        m += 12;
        y -= 1;
    }
    let days = tm.mday + (153 * m - 457) / 5 + 365 * y + y / 4 - y / 100 + y / 400 - 719469;
    86400 * days + 3600 * tm.hour + 60 * tm.min + tm.sec
}

/// The broken-down UTC time of `secs` since 1970 (`gmtime`).
fn gmtime(secs: i64) -> Tm {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil-from-days, H. Hinnant's algorithm.
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let mday = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Tm {
        year,
        month,
        mday,
        hour: rem / 3600,
        min: rem / 60 % 60,
        sec: rem % 60,
        wday: (days + 4).rem_euclid(7), // 1970-01-01 was a Thursday
    }
}

/// How a PC splits RAM around the 32-bit PCI hole (QEMU `pc-i440fx` with gigabyte
/// alignment): all of it below 4 GiB unless it reaches 3.5 GiB, then 3 GiB below and the
/// rest above.
fn split_ram(ram_size: u64) -> (u64, u64) {
    if ram_size >= 0xE000_0000 { (0xC000_0000, ram_size - 0xC000_0000) } else { (ram_size, 0) }
}

/// The RTC and CMOS RAM.
#[derive(Debug, Clone)]
pub struct Cmos {
    index: u8,
    nmi_disabled: bool,
    data: [u8; 128],
    /// The clock: `base_rtc` seconds at virtual time `last_update_ns`, plus
    /// `offset_ns`.
    base_rtc: i64,
    last_update_ns: u64,
    offset_ns: i128,
    /// When PF is next set (the periodic timer), if it runs.
    next_periodic_ns: Option<u64>,
}

impl Cmos {
    /// The RTC of a PC with `ram_size` bytes of RAM, whose clock reads
    /// `wall_clock_unix_secs` (UTC seconds since 1970) at virtual time `now_ns`.
    ///
    /// The CMOS RAM holds what QEMU's `pc_cmos_init` puts there: base memory (0x15-0x16,
    /// KiB, at most 640), extended memory above 1 MiB (0x17-0x18 and 0x30-0x31, KiB,
    /// at most 0xFFFF), memory above 16 MiB (0x34-0x35, 64 KiB units, at most 0xFFFF),
    /// memory above 4 GiB (0x5B-0x5D, 64 KiB units), the equipment byte 0x14 = 0x06 (FPU,
    /// PS/2 mouse) and 0x5F = 0 (one CPU). Registers A-D are 0x26, 0x02, 0x00, 0x80.
    pub fn new(ram_size: u64, wall_clock_unix_secs: i64, now_ns: u64) -> Self {
        let mut cmos = Cmos {
            index: 0,
            nmi_disabled: false,
            data: [0; 128],
            base_rtc: wall_clock_unix_secs,
            last_update_ns: now_ns,
            offset_ns: 0,
            next_periodic_ns: None,
        };
        cmos.data[REG_A] = 0x26;
        cmos.data[REG_B] = 0x02;
        cmos.data[REG_C] = 0x00;
        cmos.data[REG_D] = 0x80;
        cmos.set_cmos_time(&gmtime(wall_clock_unix_secs));

        let (below_4g, above_4g) = split_ram(ram_size);
        let base_kib = (below_4g / KIB).min(640);
        cmos.set_word(0x15, base_kib);
        let extended_kib = (below_4g.saturating_sub(MIB) / KIB).min(0xFFFF);
        cmos.set_word(0x17, extended_kib);
        cmos.set_word(0x30, extended_kib);
        let above_16m = (below_4g.saturating_sub(16 * MIB) / (64 * KIB)).min(0xFFFF);
        cmos.set_word(0x34, above_16m);
        let above_4g_units = above_4g / (64 * KIB);
        cmos.data[0x5B] = above_4g_units as u8;
        cmos.data[0x5C] = (above_4g_units >> 8) as u8;
        cmos.data[0x5D] = (above_4g_units >> 16) as u8;
        cmos.data[0x14] = 0x02 | 0x04;
        cmos.data[0x5F] = 0;
        cmos
    }

    fn set_word(&mut self, index: usize, value: u64) {
        self.data[index] = value as u8;
        self.data[index + 1] = (value >> 8) as u8;
    }

    /// The period of the periodic interrupt, if it runs.
    fn period_ns(&self) -> Option<u64> {
        let mut code = u32::from(self.data[REG_A] & 0x0F);
        if code == 0 || self.data[REG_B] & (REG_B_PIE | REG_B_SQWE) == 0 {
            return None;
        }
        if code <= 2 {
            code += 7;
        }
        // (1 << (code - 1)) cycles of the 32.768 kHz clock.
        Some(((1u64 << (code - 1)) * 1_000_000_000) / 32768)
    }

    /// Restarts the periodic timer after register A or B changed.
    fn reschedule(&mut self, now_ns: u64) {
        self.next_periodic_ns = self.period_ns().map(|p| now_ns + p);
    }

    /// Sets PF for every period that ended by `now_ns`, and with PIE raises IRQF and
    /// IRQ8 (one edge however many periods passed, as the PIC latches one).
    pub fn update(&mut self, now_ns: u64, irqs: &mut dyn IrqSink) {
        let (Some(next), Some(period)) = (self.next_periodic_ns, self.period_ns()) else {
            return;
        };
        if now_ns < next {
            return;
        }
        let periods = (now_ns - next) / period + 1;
        self.next_periodic_ns = Some(next + periods * period);
        self.data[REG_C] |= REG_C_PF;
        if self.data[REG_B] & REG_B_PIE != 0 && self.data[REG_C] & REG_C_IRQF == 0 {
            self.data[REG_C] |= REG_C_IRQF;
            irqs.set_irq(RTC_IRQ, true);
        }
    }

    /// When [`Cmos::update`] next has an interrupt to raise.
    pub fn next_event_ns(&self) -> Option<u64> {
        if self.data[REG_B] & REG_B_PIE == 0 {
            return None;
        }
        self.next_periodic_ns
    }

    /// A guest read of port `0x70 + offset`.
    pub fn read(&mut self, offset: u16, now_ns: u64, irqs: &mut dyn IrqSink) -> u8 {
        if offset & 1 == 0 {
            return 0xFF;
        }
        let mut index = usize::from(self.index);
        match index {
            IBM_PS2_CENTURY | CENTURY | SECONDS | MINUTES | HOURS | DAY_OF_WEEK | DAY_OF_MONTH | MONTH | YEAR => {
                if index == IBM_PS2_CENTURY {
                    self.index = CENTURY as u8;
                    index = CENTURY;
                }
                if self.running() {
                    self.update_time(now_ns);
                }
                self.data[index]
            }
            REG_A => {
                let mut value = self.data[REG_A];
                if self.update_in_progress(now_ns) {
                    value |= REG_A_UIP;
                }
                value
            }
            REG_C => {
                self.update(now_ns, irqs);
                irqs.set_irq(RTC_IRQ, false);
                std::mem::take(&mut self.data[REG_C])
            }
            _ => self.data[index],
        }
    }

    /// A guest write of port `0x70 + offset`.
    pub fn write(&mut self, offset: u16, value: u8, now_ns: u64) {
        if offset & 1 == 0 {
            self.index = value & 0x7F;
            self.nmi_disabled = value & 0x80 != 0;
            return;
        }
        let mut index = usize::from(self.index);
        match index {
            SECONDS_ALARM | MINUTES_ALARM | HOURS_ALARM => self.data[index] = value,
            IBM_PS2_CENTURY | CENTURY | SECONDS | MINUTES | HOURS | DAY_OF_WEEK | DAY_OF_MONTH | MONTH | YEAR => {
                if index == IBM_PS2_CENTURY {
                    self.index = CENTURY as u8;
                    index = CENTURY;
                }
                self.data[index] = value;
                if self.running() {
                    self.set_time_from_cmos(now_ns);
                }
            }
            REG_A => {
                self.write_reg_a(value, now_ns);
                self.reschedule(now_ns);
            }
            REG_B => {
                self.write_reg_b(value, now_ns);
                self.reschedule(now_ns);
            }
            REG_C | REG_D => {} // read-only
            _ => self.data[index] = value,
        }
    }

    fn write_reg_a(&mut self, value: u8, now_ns: u64) {
        let a = self.data[REG_A];
        if value & 0x60 == 0x60 {
            // Divider chain held in reset: the clock stops.
            if self.running() {
                self.update_time(now_ns);
            }
            self.data[REG_A] &= !REG_A_UIP;
        } else if a & 0x60 == 0x60 && value & 0x70 <= 0x20 {
            // Leaving divider reset: the first update comes half a second later.
            if self.data[REG_B] & REG_B_SET == 0 {
                self.offset_ns = NS_PER_SEC / 2;
                self.set_time_from_cmos(now_ns);
            }
            self.data[REG_A] &= !REG_A_UIP;
        }
        self.data[REG_A] = (value & !REG_A_UIP) | (self.data[REG_A] & REG_A_UIP);
    }

    fn write_reg_b(&mut self, mut value: u8, now_ns: u64) {
        if value & REG_B_SET != 0 {
            // Entering set mode: freeze the registers at the current time.
            if self.running() {
                self.update_time(now_ns);
            }
            self.data[REG_A] &= !REG_A_UIP;
            value &= !REG_B_UIE;
        } else if self.data[REG_B] & REG_B_SET != 0 && self.data[REG_A] & 0x70 <= 0x20 {
            // Leaving set mode: the guest's registers become the time.
            self.offset_ns = self.guest_rtc_ns(now_ns).rem_euclid(NS_PER_SEC);
            self.set_time_from_cmos(now_ns);
        }
        // An interrupt flag already set when its enable is turned on raises IRQF (IRQ8
        // would be raised here; see the module docs).
        if value & self.data[REG_C] & REG_C_MASK != 0 {
            self.data[REG_C] |= REG_C_IRQF;
        } else {
            self.data[REG_C] &= !REG_C_IRQF;
        }
        self.data[REG_B] = value;
    }

    /// The NMI-disable bit last written to port 0x70 (bit 7).
    pub fn nmi_disabled(&self) -> bool {
        self.nmi_disabled
    }

    /// CMOS byte `index` (0-127) as stored, without a guest access's side effects (time
    /// registers hold the time of the last update).
    pub fn memory(&self, index: u8) -> u8 {
        self.data[usize::from(index & 0x7F)]
    }

    /// Store CMOS byte `index` (0-127), as firmware set-up would.
    pub fn set_memory(&mut self, index: u8, value: u8) {
        self.data[usize::from(index & 0x7F)] = value;
    }

    /// A machine reset (QEMU's `rtc_reset_enter`): the shutdown status byte 0x0F is
    /// cleared (unless it holds 0xFE, S3 resume), interrupt enables and flags cleared;
    /// the time and the rest of the RAM survive.
    pub fn reset(&mut self) {
        if self.data[0x0F] != 0xFE {
            self.data[0x0F] = 0;
        }
        self.data[REG_B] &= !(REG_B_PIE | REG_B_AIE | REG_B_SQWE);
        self.data[REG_C] &= !(REG_C_UF | REG_C_IRQF | REG_C_PF | REG_C_AF);
        self.next_periodic_ns = None;
    }

    /// The clock runs unless SET is on or the divider chain is not at 32.768 kHz.
    fn running(&self) -> bool {
        self.data[REG_B] & REG_B_SET == 0 && self.data[REG_A] & 0x70 <= 0x20
    }

    /// Nanoseconds since 1970 of the RTC at `now_ns`.
    fn guest_rtc_ns(&self, now_ns: u64) -> i128 {
        i128::from(self.base_rtc) * NS_PER_SEC + i128::from(now_ns) - i128::from(self.last_update_ns) + self.offset_ns
    }

    fn update_in_progress(&self, now_ns: u64) -> bool {
        self.running() && self.guest_rtc_ns(now_ns).rem_euclid(NS_PER_SEC) >= NS_PER_SEC - UIP_HOLD_NS
    }

    /// Refresh the time registers from the clock (QEMU's `rtc_update_time`).
    fn update_time(&mut self, now_ns: u64) {
        let secs = self.guest_rtc_ns(now_ns).div_euclid(NS_PER_SEC);
        if self.data[REG_B] & REG_B_SET == 0 {
            self.set_cmos_time(&gmtime(secs as i64));
        }
    }

    /// Set the clock from the time registers (QEMU's `rtc_set_time`).
    fn set_time_from_cmos(&mut self, now_ns: u64) {
        let tm = self.cmos_time();
        self.base_rtc = mktimegm(&tm);
        self.last_update_ns = now_ns;
    }

    /// A time value as register B's data mode stores it (BCD unless DM is set).
    fn encode(&self, value: i64) -> u8 {
        if self.data[REG_B] & REG_B_DM != 0 { value as u8 } else { (((value / 10) << 4) | (value % 10)) as u8 }
    }

    /// A time register's value in the current data mode; -1 for the "don't care"
    /// pattern 0b11xx_xxxx (used by the alarm registers).
    fn decode(&self, value: u8) -> i64 {
        if value & 0xC0 == 0xC0 {
            return -1;
        }
        if self.data[REG_B] & REG_B_DM != 0 { i64::from(value) } else { i64::from(value >> 4) * 10 + i64::from(value & 0x0F) }
    }

    fn set_cmos_time(&mut self, tm: &Tm) {
        self.data[SECONDS] = self.encode(tm.sec);
        self.data[MINUTES] = self.encode(tm.min);
        self.data[HOURS] = if self.data[REG_B] & REG_B_24H != 0 {
            self.encode(tm.hour)
        } else {
            let h = if tm.hour % 12 == 0 { 12 } else { tm.hour % 12 };
            self.encode(h) | if tm.hour >= 12 { 0x80 } else { 0 }
        };
        self.data[DAY_OF_WEEK] = self.encode(tm.wday + 1);
        self.data[DAY_OF_MONTH] = self.encode(tm.mday);
        self.data[MONTH] = self.encode(tm.month);
        self.data[YEAR] = self.encode(tm.year.rem_euclid(100));
        self.data[CENTURY] = self.encode(tm.year.div_euclid(100));
    }

    fn cmos_time(&self) -> Tm {
        let mut hour = self.decode(self.data[HOURS] & 0x7F);
        if self.data[REG_B] & REG_B_24H == 0 {
            hour %= 12;
            if self.data[HOURS] & 0x80 != 0 {
                hour += 12;
            }
        }
        Tm {
            sec: self.decode(self.data[SECONDS]),
            min: self.decode(self.data[MINUTES]),
            hour,
            wday: self.decode(self.data[DAY_OF_WEEK]) - 1,
            mday: self.decode(self.data[DAY_OF_MONTH]),
            month: self.decode(self.data[MONTH]),
            year: self.decode(self.data[YEAR]) + self.decode(self.data[CENTURY]) * 100,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::{NoIrq, RecordingSink};

    #[test]
    fn periodic_interrupt_at_the_register_a_rate() {
        let mut cmos = Cmos::new(128 * MIB, LEAP_DAY, 0);
        let mut irqs = RecordingSink::default();
        // Rate 6: 1024 Hz, a period of 976562 ns (32 cycles of 32.768 kHz).
        write_reg(&mut cmos, 0x0A, 0x26, 0);
        write_reg(&mut cmos, 0x0B, 0x02 | 0x40, 0);
        assert_eq!(cmos.next_event_ns(), Some(976_562));
        cmos.update(976_561, &mut irqs);
        assert_eq!(irqs.rising_edges(RTC_IRQ), 0);
        cmos.update(976_562, &mut irqs);
        assert_eq!(irqs.rising_edges(RTC_IRQ), 1);
        // Several periods unseen: still one edge, IRQ8 stays high until C is read.
        cmos.update(10_000_000, &mut irqs);
        assert_eq!(irqs.rising_edges(RTC_IRQ), 1);
        assert!(irqs.level(RTC_IRQ));
        cmos.write(0, 0x0C, 10_000_000);
        assert_eq!(cmos.read(1, 10_000_000, &mut irqs), 0x80 | 0x40);
        assert!(!irqs.level(RTC_IRQ));
        // Ten full periods have passed by 10 ms: the next is the eleventh.
        assert_eq!(cmos.next_event_ns(), Some(11 * 976_562));
        // PIE off: no more events.
        write_reg(&mut cmos, 0x0B, 0x02, 10_000_000);
        assert_eq!(cmos.next_event_ns(), None);
    }

    /// 2024-02-29 13:45:56 UTC, a Thursday.
    const LEAP_DAY: i64 = 1_709_214_356;

    fn read_reg(cmos: &mut Cmos, index: u8, now: u64) -> u8 {
        cmos.write(0, index, now);
        cmos.read(1, now, &mut NoIrq)
    }

    fn write_reg(cmos: &mut Cmos, index: u8, value: u8, now: u64) {
        cmos.write(0, index, now);
        cmos.write(1, value, now);
    }

    fn time_regs(cmos: &mut Cmos, now: u64) -> [u8; 8] {
        [0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32].map(|i| read_reg(cmos, i, now))
    }

    #[test]
    fn calendar_conversions() {
        let tm = gmtime(LEAP_DAY);
        assert_eq!(tm, Tm { year: 2024, month: 2, mday: 29, hour: 13, min: 45, sec: 56, wday: 4 });
        assert_eq!(mktimegm(&tm), LEAP_DAY);
        assert_eq!(gmtime(0).wday, 4);
        assert_eq!(gmtime(-1).year, 1969);
        let y2k = gmtime(946_684_800);
        assert_eq!((y2k.year, y2k.month, y2k.mday, y2k.wday), (2000, 1, 1, 6));
    }

    #[test]
    fn memory_size_bytes_for_128_mib() {
        let cmos = Cmos::new(128 * MIB, LEAP_DAY, 0);
        // Base 640 KiB = 0x0280.
        assert_eq!((cmos.memory(0x15), cmos.memory(0x16)), (0x80, 0x02));
        // Extended: 127 MiB = 130048 KiB, capped at 0xFFFF.
        assert_eq!((cmos.memory(0x17), cmos.memory(0x18)), (0xFF, 0xFF));
        assert_eq!((cmos.memory(0x30), cmos.memory(0x31)), (0xFF, 0xFF));
        // Above 16 MiB: 112 MiB / 64 KiB = 1792 = 0x0700.
        assert_eq!((cmos.memory(0x34), cmos.memory(0x35)), (0x00, 0x07));
        assert_eq!([cmos.memory(0x5B), cmos.memory(0x5C), cmos.memory(0x5D)], [0, 0, 0]);
        assert_eq!(cmos.memory(0x14), 0x06);
    }

    #[test]
    fn memory_size_bytes_for_small_and_huge_ram() {
        // 32 MiB: extended 31 MiB = 31744 KiB = 0x7C00, above 16 MiB = 256 = 0x0100.
        let cmos = Cmos::new(32 * MIB, 0, 0);
        assert_eq!((cmos.memory(0x17), cmos.memory(0x18)), (0x00, 0x7C));
        assert_eq!((cmos.memory(0x34), cmos.memory(0x35)), (0x00, 0x01));
        // 512 KiB: base is the RAM size, nothing extended.
        let cmos = Cmos::new(512 * KIB, 0, 0);
        assert_eq!((cmos.memory(0x15), cmos.memory(0x16)), (0x00, 0x02));
        assert_eq!((cmos.memory(0x17), cmos.memory(0x18)), (0, 0));
        assert_eq!((cmos.memory(0x34), cmos.memory(0x35)), (0, 0));
        // 4 GiB: 3 GiB below the hole, 1 GiB above (0x4000 units of 64 KiB); above 16 MiB
        // is (3 GiB - 16 MiB) / 64 KiB = 0xBF00.
        let cmos = Cmos::new(4096 * MIB, 0, 0);
        assert_eq!((cmos.memory(0x34), cmos.memory(0x35)), (0x00, 0xBF));
        assert_eq!([cmos.memory(0x5B), cmos.memory(0x5C), cmos.memory(0x5D)], [0x00, 0x40, 0x00]);
    }

    #[test]
    fn status_registers_default_values() {
        let mut cmos = Cmos::new(64 * MIB, LEAP_DAY, 0);
        assert_eq!(read_reg(&mut cmos, 0x0A, 0), 0x26);
        assert_eq!(read_reg(&mut cmos, 0x0B, 0), 0x02);
        assert_eq!(read_reg(&mut cmos, 0x0C, 0), 0x00);
        assert_eq!(read_reg(&mut cmos, 0x0D, 0), 0x80);
        // The index port reads 0xFF.
        assert_eq!(cmos.read(0, 0, &mut NoIrq), 0xFF);
    }

    #[test]
    fn time_reads_bcd_24h_and_advances_with_virtual_time() {
        let mut cmos = Cmos::new(64 * MIB, LEAP_DAY, 1_000);
        // sec min hour wday mday month year century
        assert_eq!(time_regs(&mut cmos, 1_000), [0x56, 0x45, 0x13, 0x05, 0x29, 0x02, 0x24, 0x20]);
        // 4.5 s later: 13:46:00.
        let later = 1_000 + 4_500_000_000;
        assert_eq!(time_regs(&mut cmos, later)[..3], [0x00, 0x46, 0x13]);
        // One day later: Friday 2024-03-01.
        let tomorrow = 1_000 + 86_400 * 1_000_000_000;
        assert_eq!(time_regs(&mut cmos, tomorrow), [0x56, 0x45, 0x13, 0x06, 0x01, 0x03, 0x24, 0x20]);
    }

    #[test]
    fn binary_and_12_hour_modes() {
        let mut cmos = Cmos::new(64 * MIB, LEAP_DAY, 0);
        write_reg(&mut cmos, 0x0B, 0x04, 0); // binary, 12h
        assert_eq!(time_regs(&mut cmos, 0), [56, 45, 0x80 | 1, 5, 29, 2, 24, 20]);
        write_reg(&mut cmos, 0x0B, 0x00, 0); // BCD, 12h
        assert_eq!(read_reg(&mut cmos, 0x04, 0), 0x81);
        // Midnight is 12 AM, noon is 12 PM.
        let mut midnight = Cmos::new(0, 1_709_164_800, 0);
        write_reg(&mut midnight, 0x0B, 0x00, 0);
        assert_eq!(read_reg(&mut midnight, 0x04, 0), 0x12);
    }

    #[test]
    fn set_bit_freezes_registers_and_applies_new_time_on_release() {
        let mut cmos = Cmos::new(64 * MIB, LEAP_DAY, 0);
        let s = 1_000_000_000u64;
        write_reg(&mut cmos, 0x0B, 0x82, 0); // SET, 24h, BCD
        write_reg(&mut cmos, 0x04, 0x08, 0); // 08 h
        write_reg(&mut cmos, 0x02, 0x30, 0); // 30 min
        write_reg(&mut cmos, 0x00, 0x00, 0); // 00 s
        // Frozen while SET: time does not advance.
        assert_eq!(time_regs(&mut cmos, 10 * s)[..3], [0x00, 0x30, 0x08]);
        write_reg(&mut cmos, 0x0B, 0x02, 10 * s);
        assert_eq!(time_regs(&mut cmos, 10 * s)[..3], [0x00, 0x30, 0x08]);
        assert_eq!(time_regs(&mut cmos, 13 * s)[..3], [0x03, 0x30, 0x08]);
        // The date was kept.
        assert_eq!(time_regs(&mut cmos, 13 * s)[4..], [0x29, 0x02, 0x24, 0x20]);
    }

    #[test]
    fn writing_a_time_register_while_running_sets_the_clock() {
        let mut cmos = Cmos::new(64 * MIB, LEAP_DAY, 0);
        write_reg(&mut cmos, 0x09, 0x30, 0); // year 2030
        assert_eq!(read_reg(&mut cmos, 0x09, 0), 0x30);
        assert_eq!(read_reg(&mut cmos, 0x09, 2_000_000_000), 0x30);
        assert_eq!(read_reg(&mut cmos, 0x00, 2_000_000_000), 0x58);
    }

    #[test]
    fn uip_is_set_in_the_last_244_us_of_a_second() {
        let mut cmos = Cmos::new(64 * MIB, LEAP_DAY, 0);
        let second = 1_000_000_000u64;
        assert_eq!(read_reg(&mut cmos, 0x0A, second - 244_141), 0x26);
        assert_eq!(read_reg(&mut cmos, 0x0A, second - 244_140), 0xA6);
        assert_eq!(read_reg(&mut cmos, 0x0A, second), 0x26);
        // A write cannot set UIP.
        write_reg(&mut cmos, 0x0A, 0xA6, 0);
        assert_eq!(read_reg(&mut cmos, 0x0A, 0), 0x26);
    }

    #[test]
    fn registers_c_and_d_are_read_only_and_c_clears_on_read() {
        let mut cmos = Cmos::new(64 * MIB, LEAP_DAY, 0);
        write_reg(&mut cmos, 0x0D, 0x00, 0);
        assert_eq!(read_reg(&mut cmos, 0x0D, 0), 0x80);
        cmos.set_memory(0x0C, 0x90);
        assert_eq!(read_reg(&mut cmos, 0x0C, 0), 0x90);
        assert_eq!(read_reg(&mut cmos, 0x0C, 0), 0x00);
    }

    #[test]
    fn set_bit_clears_update_interrupt_enable() {
        let mut cmos = Cmos::new(64 * MIB, LEAP_DAY, 0);
        write_reg(&mut cmos, 0x0B, 0x80 | 0x10 | 0x02, 0);
        assert_eq!(read_reg(&mut cmos, 0x0B, 0), 0x82);
    }

    #[test]
    fn index_keeps_nmi_bit_separately_and_ram_is_plain_storage() {
        let mut cmos = Cmos::new(64 * MIB, LEAP_DAY, 0);
        cmos.write(0, 0x80 | 0x40, 0);
        assert!(cmos.nmi_disabled());
        cmos.write(1, 0xA5, 0);
        assert_eq!(cmos.memory(0x40), 0xA5);
        cmos.write(0, 0x40, 0);
        assert!(!cmos.nmi_disabled());
        assert_eq!(cmos.read(1, 0, &mut NoIrq), 0xA5);
        // 0x37 aliases the century byte.
        assert_eq!(read_reg(&mut cmos, 0x37, 0), 0x20);
    }

    #[test]
    fn reset_clears_shutdown_byte_and_interrupt_enables() {
        let mut cmos = Cmos::new(64 * MIB, LEAP_DAY, 0);
        write_reg(&mut cmos, 0x0F, 0x0A, 0);
        write_reg(&mut cmos, 0x0B, 0x02 | 0x40 | 0x20 | 0x08, 0);
        cmos.reset();
        assert_eq!(cmos.memory(0x0F), 0);
        assert_eq!(cmos.memory(0x0B), 0x02);
        write_reg(&mut cmos, 0x0F, 0xFE, 0);
        cmos.reset();
        assert_eq!(cmos.memory(0x0F), 0xFE);
    }
}
