//! The PC board: every device of this crate on one port-I/O bus, with the interrupt
//! lines wired as on QEMU's `pc` machine. This is what the monitor talks to.
//!
//! | ports         | device                          | IRQ |
//! |---------------|---------------------------------|-----|
//! | 0x20-0x21     | master 8259A                    |     |
//! | 0x40-0x43     | 8254 PIT                        | 0   |
//! | 0x60, 0x64    | i8042 (keyboard, mouse)         | 1, 12 |
//! | 0x61          | speaker / PIT channel 2 gate    |     |
//! | 0x70-0x71     | MC146818 RTC / CMOS             | 8   |
//! | 0x80          | POST code                       |     |
//! | 0xA0-0xA1     | slave 8259A (on master IRQ2)    |     |
//! | 0xF4-0xF7     | isa-debug-exit                  |     |
//! | 0x170-0x177, 0x376 | ATA secondary channel (no disks) | 15 |
//! | 0x1F0-0x1F7, 0x3F6 | ATA primary channel (master, slave) | 14 |
//! | 0x3C2, 0x3CC, 0x3D4-0x3D5, 0x3DA | CGA text screen (misc output, CRTC, status) | |
//! | 0x3F8-0x3FF   | COM1 16550A                     | 4   |
//! | 0x4D0, 0x4D1  | ELCR (master, slave)            |     |
//! | 0x510, 0x511  | QEMU fw_cfg (selector, data)    |     |
//! | 0x600-0x60B   | ACPI PM1a event/control, PM timer | (9: SCI, not generated) |
//!
//! | memory        | device                          |     |
//! |---------------|---------------------------------|-----|
//! | 0xFEC00000    | I/O APIC (24 pins)              |     |
//! | 0xFED00000    | HPET                            | GSI per timer; legacy: 0, 8 |
//! | 0xFEE00000    | local APIC of the CPU           |     |
//!
//! Devices drive their lines through the board's [`IrqSink`], which counts rising edges
//! per line for [`DeviceStats`] and forwards each line to the 8259A pair and to the I/O
//! APIC (ISA IRQ 0 on pin 2, the others on their own number), whose messages go to the
//! local APIC. The CPU takes its interrupts from the local APIC, which passes the
//! 8259A's through LINT0 (ExtINT) — so a guest that never touches an APIC sees the PICs
//! alone, as before.

use std::fmt;
use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::IoOutcome;
use crate::acpi_pm::{AcpiPm, PM_BASE, PM_LEN, PmAction};
use crate::ata::{ATA_BASE, ATA_CONTROL_PORT, ATA_IRQ, ATA_LEN, ATA_SECONDARY, AtaChannel, DiskBackend};
use crate::bus::PioBus;
use crate::cga::Cga;
use crate::cmos::{Cmos, RTC_IRQ};
use crate::debug_exit::{DEBUG_EXIT_BASE, DEBUG_EXIT_LEN, DebugExit};
use crate::fw_cfg::{FW_CFG_LEN, FW_CFG_PORT, FwCfg};
use crate::hpet::Hpet;
use crate::i8042::I8042;
use crate::ioapic::{IOAPIC_BASE, IOAPIC_LEN, IoApic, isa_irq_pin};
use crate::irq::IrqSink;
use crate::lapic::{Acknowledge, LAPIC_BASE, LAPIC_LEN, LocalApic};
use crate::pic::{Chip, PicPair};
use crate::pit::Pit;
use crate::post::{POST_PORT, PostCode};
use crate::serial::{COM1_BASE, COM1_IRQ, Uart};
use crate::speaker::SpeakerPort;

/// What the board is built from.
pub struct PlatformConfig {
    /// Guest RAM in bytes (for the CMOS memory-size bytes).
    pub ram_size: u64,
    /// Where COM1's output goes (the monitor passes stdout). Flushed after every byte
    /// by vm-superio, and again by [`Platform::flush`] and on a debug-exit request.
    pub serial_out: Box<dyn Write + Send>,
    /// The RTC's wall-clock time, UTC seconds since 1970, at virtual time `boot_ns`.
    pub wall_clock_unix_secs: i64,
    /// The monitor's virtual time (`now_ns`) at which the board powers on.
    pub boot_ns: u64,
}

impl PlatformConfig {
    /// A board powered on at virtual time 0 whose RTC starts at the host's current
    /// wall-clock time.
    pub fn with_host_clock(ram_size: u64, serial_out: Box<dyn Write + Send>) -> Self {
        let wall_clock_unix_secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        PlatformConfig { ram_size, serial_out, wall_clock_unix_secs, boot_ns: 0 }
    }
}

impl fmt::Debug for PlatformConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlatformConfig")
            .field("ram_size", &self.ram_size)
            .field("wall_clock_unix_secs", &self.wall_clock_unix_secs)
            .field("boot_ns", &self.boot_ns)
            .finish_non_exhaustive()
    }
}

/// Counters for the monitor's statistics output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// `in` accesses (any size).
    pub port_reads: u64,
    /// `out` accesses (any size).
    pub port_writes: u64,
    /// `in` accesses to a port no device claims.
    pub unclaimed_port_reads: u64,
    /// `out` accesses to a port no device claims.
    pub unclaimed_port_writes: u64,
    /// Rising edges driven on each ISA line (0-15) by the devices (the cascade line 2
    /// is the PIC's own business and stays 0).
    pub irqs_raised: [u64; 16],
    /// INTA cycles ([`Platform::acknowledge_interrupt`]).
    pub interrupts_acknowledged: u64,
    /// INTA cycles that found no request (IRQ7 / IRQ15 vectors).
    pub spurious_interrupts: u64,
    /// PIT channel 0 edges that became due together with another one and were delivered
    /// as a single edge (how late the monitor's timer ran).
    pub pit_edges_merged: u64,
    /// Bytes the guest sent out of COM1.
    pub serial_bytes_out: u64,
    /// The last POST code written to port 0x80.
    pub last_post_code: Option<u8>,
    /// 32-bit writes to the local APIC's registers (EOIs, timer, IPIs).
    pub apic_writes: u64,
}

impl fmt::Display for DeviceStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "port in {} (unclaimed {}), out {} (unclaimed {}); interrupts acknowledged {} \
             (spurious {}); PIT edges merged {}; serial bytes out {}; local APIC writes {}",
            self.port_reads,
            self.unclaimed_port_reads,
            self.port_writes,
            self.unclaimed_port_writes,
            self.interrupts_acknowledged,
            self.spurious_interrupts,
            self.pit_edges_merged,
            self.serial_bytes_out,
            self.apic_writes,
        )?;
        for (irq, &count) in self.irqs_raised.iter().enumerate() {
            if count != 0 {
                write!(f, "; IRQ{irq} {count}")?;
            }
        }
        if let Some(code) = self.last_post_code {
            write!(f, "; POST {code:#04x}")?;
        }
        Ok(())
    }
}

/// Which device a port range belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortDevice {
    Pic(Chip),
    Elcr(Chip),
    Pit,
    Speaker,
    I8042Data,
    I8042Command,
    Cmos,
    Post,
    DebugExit,
    Com1,
    AcpiPm,
    FwCfg,
    /// An ATA channel's command block (0 primary, 1 secondary) and its control port.
    Ata(usize),
    AtaControl(usize),
    Cga(u16),
}

/// Line levels as last driven, and rising edges counted per line.
#[derive(Debug, Clone, Default)]
struct LineStats {
    levels: u16,
    raised: [u64; 16],
}

/// The interrupt controllers, and the [`IrqSink`] every device access gets: the ISA
/// lines, counted, to the PIC and the I/O APIC.
#[derive(Debug, Clone)]
struct Interrupts {
    pic: PicPair,
    ioapic: IoApic,
    lapic: LocalApic,
    lines: LineStats,
    /// Levels of GSIs 16-23 (driven by the HPET only).
    gsi_levels: u32,
    /// The HPET is in legacy-replacement mode.
    hpet_legacy: bool,
    /// The RTC's IRQ 8 output, as last driven.
    rtc_level: bool,
}

impl Interrupts {
    fn new() -> Interrupts {
        Interrupts {
            pic: PicPair::new(),
            ioapic: IoApic::new(),
            lapic: LocalApic::new(),
            lines: LineStats::default(),
            gsi_levels: 0,
            hpet_legacy: false,
            rtc_level: false,
        }
    }

    /// Drive global system interrupt `gsi` (QEMU's `gsi_handler`): 0-15 are the ISA
    /// lines, to the PIC and the I/O APIC (ISA IRQ 0 on pin 2), 16-23 I/O APIC pins only.
    fn drive(&mut self, gsi: u8, level: bool) {
        if gsi >= 16 {
            let bit = 1u32 << gsi;
            if gsi < 24 && (self.gsi_levels & bit != 0) != level {
                self.gsi_levels ^= bit;
                self.ioapic.set_irq(gsi, level, &mut self.lapic);
            }
            return;
        }
        let bit = 1u16 << gsi;
        let changed = (self.lines.levels & bit != 0) != level;
        if level && changed {
            self.lines.raised[usize::from(gsi)] += 1;
        }
        if level {
            self.lines.levels |= bit;
        } else {
            self.lines.levels &= !bit;
        }
        self.pic.set_irq(gsi, level);
        if changed {
            self.ioapic.set_irq(isa_irq_pin(gsi), level, &mut self.lapic);
        }
    }

    /// The HPET entered or left legacy-replacement mode: leaving it gives IRQ 0 back the
    /// PIT's OUT level (`pit_out`) and IRQ 8 the RTC's, as QEMU's HPET does when it turns
    /// the PIT's interrupt on again and passes the RTC's through.
    fn set_hpet_legacy(&mut self, legacy: bool, pit_out: bool) {
        if legacy != self.hpet_legacy {
            self.hpet_legacy = legacy;
            if !legacy {
                self.drive(0, pit_out);
                self.drive(RTC_IRQ, self.rtc_level);
            }
        }
    }
}

/// The devices' lines. While the HPET is in legacy-replacement mode, its timers own
/// IRQ 0 and IRQ 8: the PIT's and the RTC's outputs go nowhere (the RTC's level is kept
/// for when the mode ends), as on QEMU's board.
impl IrqSink for Interrupts {
    fn set_irq(&mut self, irq: u8, level: bool) {
        if irq == RTC_IRQ {
            self.rtc_level = level;
        }
        if self.hpet_legacy && (irq == 0 || irq == RTC_IRQ) {
            return;
        }
        self.drive(irq, level);
    }
}

/// The HPET's lines: global system interrupts, never cut off.
struct HpetLines<'a>(&'a mut Interrupts);

impl IrqSink for HpetLines<'_> {
    fn set_irq(&mut self, gsi: u8, level: bool) {
        self.0.drive(gsi, level);
    }
}

/// The devices themselves, apart from the bus so that a bus callback can borrow them.
struct Devices {
    irq: Interrupts,
    pit: Pit,
    speaker: SpeakerPort,
    i8042: I8042,
    cmos: Cmos,
    post: PostCode,
    hpet: Hpet,
    debug_exit: DebugExit,
    com1: Uart<Box<dyn Write + Send>>,
    acpi_pm: AcpiPm,
    fw_cfg: FwCfg,
    ata: [AtaChannel; 2],
    cga: Cga,
}

impl Devices {
    fn read(&mut self, dev: PortDevice, offset: u16, size: u8, now_ns: u64) -> u32 {
        let irqs = &mut self.irq;
        let byte = match dev {
            PortDevice::Pic(chip) => irqs.pic.read(chip, offset),
            PortDevice::Elcr(chip) => irqs.pic.read_elcr(chip),
            PortDevice::Pit => self.pit.read(offset, now_ns),
            PortDevice::Speaker => self.speaker.read(&self.pit, now_ns),
            PortDevice::I8042Data => self.i8042.read(0, irqs),
            PortDevice::I8042Command => self.i8042.read(4, irqs),
            PortDevice::Cmos => self.cmos.read(offset, now_ns, irqs),
            PortDevice::Post => self.post.read(),
            PortDevice::DebugExit => return self.debug_exit.read(offset, size),
            PortDevice::AcpiPm => return self.acpi_pm.read(offset, size, now_ns),
            PortDevice::FwCfg => return self.fw_cfg.read(offset, size),
            PortDevice::Com1 => self.com1.read(offset, irqs),
            PortDevice::Ata(n) => return self.ata[n].read(offset, size, irqs),
            PortDevice::AtaControl(n) => return self.ata[n].read_alt_status(size),
            PortDevice::Cga(base) => self.cga.read(base + offset),
        };
        u32::from(byte)
    }

    fn write(&mut self, dev: PortDevice, offset: u16, size: u8, value: u32, now_ns: u64) -> IoOutcome {
        let irqs = &mut self.irq;
        let byte = value as u8;
        match dev {
            PortDevice::Pic(chip) => irqs.pic.write(chip, offset, byte),
            PortDevice::Elcr(chip) => irqs.pic.write_elcr(chip, byte),
            PortDevice::Pit => self.pit.write(offset, byte, now_ns, irqs),
            PortDevice::Speaker => self.speaker.write(byte, &mut self.pit, now_ns, irqs),
            PortDevice::I8042Data => return self.i8042.write(0, byte, irqs),
            PortDevice::I8042Command => return self.i8042.write(4, byte, irqs),
            PortDevice::Cmos => self.cmos.write(offset, byte, now_ns),
            PortDevice::Post => self.post.write(byte),
            PortDevice::DebugExit => {
                return IoOutcome::Exit(self.debug_exit.write(offset, size, value));
            }
            PortDevice::Com1 => self.com1.write(offset, byte, irqs),
            PortDevice::AcpiPm => {
                if self.acpi_pm.write(offset, size, value, now_ns) == PmAction::PowerOff {
                    return IoOutcome::PowerOff;
                }
            }
            PortDevice::FwCfg => self.fw_cfg.write(offset, size, value),
            PortDevice::Ata(n) => self.ata[n].write(offset, size, value, irqs),
            PortDevice::AtaControl(n) if size <= 2 => self.ata[n].write_control(byte, irqs),
            PortDevice::AtaControl(_) => {}
            PortDevice::Cga(base) => self.cga.write(base + offset, byte),
        }
        IoOutcome::Continue
    }
}

/// The PC board. See the crate docs for how the monitor drives it.
pub struct Platform {
    bus: PioBus<PortDevice>,
    devices: Devices,
    stats: DeviceStats,
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Platform")
            .field("pic", &self.devices.irq.pic)
            .field("pit", &self.devices.pit)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Platform {
    /// The board as after power-on at virtual time `config.boot_ns`: PICs with vector
    /// base 0 and nothing masked, the PIT running at 18.2 Hz on all channels, CMOS filled
    /// as QEMU's `pc` machine fills it. No firmware has run.
    pub fn new(config: PlatformConfig) -> Platform {
        let boot = config.boot_ns;
        let devices = Devices {
            irq: Interrupts::new(),
            pit: Pit::new(boot),
            speaker: SpeakerPort::new(),
            i8042: I8042::new(),
            cmos: Cmos::new(config.ram_size, config.wall_clock_unix_secs, boot),
            post: PostCode::new(),
            hpet: Hpet::new(),
            debug_exit: DebugExit::new(),
            com1: Uart::new(COM1_IRQ, config.serial_out),
            acpi_pm: AcpiPm::new(boot),
            fw_cfg: FwCfg::new(config.ram_size, 1),
            ata: [AtaChannel::new(ATA_IRQ), AtaChannel::new(ATA_SECONDARY.2)],
            cga: Cga::new(),
        };
        let mut bus = PioBus::new();
        let ranges = [
            (0x20, 2, 1, PortDevice::Pic(Chip::Master)),
            (0xA0, 2, 1, PortDevice::Pic(Chip::Slave)),
            (0x4D0, 1, 1, PortDevice::Elcr(Chip::Master)),
            (0x4D1, 1, 1, PortDevice::Elcr(Chip::Slave)),
            (0x40, 4, 1, PortDevice::Pit),
            (0x61, 1, 1, PortDevice::Speaker),
            (0x60, 1, 1, PortDevice::I8042Data),
            (0x64, 1, 1, PortDevice::I8042Command),
            (0x70, 2, 1, PortDevice::Cmos),
            (POST_PORT, 1, 1, PortDevice::Post),
            (DEBUG_EXIT_BASE, DEBUG_EXIT_LEN, 4, PortDevice::DebugExit),
            (COM1_BASE, 8, 1, PortDevice::Com1),
            (PM_BASE, PM_LEN, 4, PortDevice::AcpiPm),
            (FW_CFG_PORT, FW_CFG_LEN, 2, PortDevice::FwCfg),
            (ATA_BASE, ATA_LEN, 4, PortDevice::Ata(0)),
            (ATA_CONTROL_PORT, 1, 4, PortDevice::AtaControl(0)),
            (ATA_SECONDARY.0, ATA_LEN, 4, PortDevice::Ata(1)),
            (ATA_SECONDARY.1, 1, 4, PortDevice::AtaControl(1)),
        ];
        let cga =
            [(crate::cga::CRTC_PORT, 2), (crate::cga::STATUS_PORT, 1), (crate::cga::MISC_WRITE_PORT, 1), (crate::cga::MISC_READ_PORT, 1)];
        let ranges = ranges.into_iter().chain(cga.map(|(base, len)| (base, len, 1, PortDevice::Cga(base))));
        for (base, len, max_access, dev) in ranges {
            bus.insert(base, len, max_access, dev).expect("the PC port map has no overlaps");
        }
        Platform { bus, devices, stats: DeviceStats::default() }
    }

    /// Guest-physical ranges that belong to devices, `(base, length)`, page aligned:
    /// the MMU never maps them, so every access faults and comes to [`Platform::mmio_read`]
    /// or [`Platform::mmio_write`].
    pub fn device_ranges(&self) -> Vec<(u64, u64)> {
        vec![(IOAPIC_BASE, IOAPIC_LEN), (crate::hpet::HPET_BASE, 0x1000), (LAPIC_BASE, LAPIC_LEN)]
    }

    /// A guest read of `size` bytes (1, 2, 4) of device memory at `addr`. As in QEMU,
    /// only aligned 32-bit accesses reach the HPET's registers and 32-bit accesses the
    /// local APIC's; the I/O APIC's IOREGSEL takes any size. Anything else reads 0.
    pub fn mmio_read(&mut self, addr: u64, size: u8, now_ns: u64) -> u32 {
        self.update_timers(now_ns);
        let hpet = crate::hpet::HPET_BASE;
        if (hpet..hpet + 0x1000).contains(&addr) && size == 4 && addr.is_multiple_of(4) && addr < hpet + crate::hpet::HPET_LEN {
            return self.devices.hpet.read(addr - hpet, now_ns);
        }
        if (LAPIC_BASE..LAPIC_BASE + LAPIC_LEN).contains(&addr) && size == 4 {
            return self.devices.irq.lapic.read(addr - LAPIC_BASE, now_ns);
        }
        if (IOAPIC_BASE..IOAPIC_BASE + IOAPIC_LEN).contains(&addr) {
            return self.devices.irq.ioapic.read(addr - IOAPIC_BASE, size);
        }
        log::debug!("MMIO read of {size} bytes at {addr:#x}: no register");
        0
    }

    /// A guest write of `size` bytes of device memory at `addr` (see
    /// [`Platform::mmio_read`] for which accesses reach a register).
    pub fn mmio_write(&mut self, addr: u64, size: u8, value: u32, now_ns: u64) {
        self.update_timers(now_ns);
        let hpet = crate::hpet::HPET_BASE;
        if (hpet..hpet + 0x1000).contains(&addr) && size == 4 && addr.is_multiple_of(4) && addr < hpet + crate::hpet::HPET_LEN {
            let Devices { irq, hpet: dev, pit, .. } = &mut self.devices;
            dev.write(addr - hpet, value, now_ns, &mut HpetLines(irq));
            irq.set_hpet_legacy(dev.legacy_mode(), pit.out(0, now_ns));
            return;
        }
        let Interrupts { ioapic, lapic, .. } = &mut self.devices.irq;
        if (LAPIC_BASE..LAPIC_BASE + LAPIC_LEN).contains(&addr) && size == 4 {
            self.stats.apic_writes += 1;
            if let Some(vector) = lapic.write(addr - LAPIC_BASE, value, now_ns) {
                // The EOI of a level-triggered interrupt: the I/O APIC may send again.
                ioapic.eoi(vector, lapic);
            }
            return;
        }
        if (IOAPIC_BASE..IOAPIC_BASE + IOAPIC_LEN).contains(&addr) {
            ioapic.write(addr - IOAPIC_BASE, size, value, lapic);
            return;
        }
        log::debug!("MMIO write of {size} bytes at {addr:#x}: no register");
    }

    /// IA32_APIC_BASE was written: its global enable bit (bit 11) turns the local APIC
    /// on or off (off resets it and lets the PIC reach the CPU directly). The registers
    /// stay at 0xFEE00000 whatever the base field says, as in QEMU.
    pub fn set_apic_base(&mut self, value: u64) {
        self.devices.irq.lapic.set_global_enable(value & (1 << 11) != 0);
    }

    /// A guest `in` of `size` bytes (1, 2, 4) from `port` at virtual time `now_ns`.
    /// PIT edges due by `now_ns` are delivered first.
    pub fn io_in(&mut self, port: u16, size: u8, now_ns: u64) -> u32 {
        self.update_timers(now_ns);
        self.stats.port_reads += 1;
        if self.bus.resolve(port).is_none() {
            self.stats.unclaimed_port_reads += 1;
        }
        let devices = &mut self.devices;
        self.bus.read(port, size, |dev, offset, sz| devices.read(dev, offset, sz, now_ns))
    }

    /// A guest `out` of the low `size` bytes of `value` to `port` at virtual time
    /// `now_ns`. Returns what the monitor must do next: go on, stop the VM with an exit
    /// status (isa-debug-exit; COM1's output is flushed first), or reset the machine
    /// (i8042 reset line; the monitor resets the CPU and calls [`Platform::reset`]), or
    /// turn it off (ACPI S5; COM1's output is flushed first).
    pub fn io_out(&mut self, port: u16, size: u8, value: u32, now_ns: u64) -> IoOutcome {
        self.update_timers(now_ns);
        self.stats.port_writes += 1;
        if self.bus.resolve(port).is_none() {
            self.stats.unclaimed_port_writes += 1;
        }
        let devices = &mut self.devices;
        let mut outcome = IoOutcome::Continue;
        self.bus.write(port, size, value, |dev, offset, sz, v| {
            let result = devices.write(dev, offset, sz, v, now_ns);
            if outcome == IoOutcome::Continue {
                outcome = result;
            }
        });
        match outcome {
            IoOutcome::Exit(status) => log::debug!("guest requested exit with status {status}"),
            IoOutcome::PowerOff => log::debug!("guest powered the machine off (ACPI S5)"),
            _ => return outcome,
        }
        self.flush();
        outcome
    }

    /// Let the PIT catch up to `now_ns`: raises IRQ0 if channel 0's OUT rose since the
    /// last call (once, however many periods passed; see [`Pit::update`]).
    pub fn update_timers(&mut self, now_ns: u64) {
        let Devices { irq, pit, cmos, hpet, .. } = &mut self.devices;
        let due = pit.update(now_ns, irq);
        self.stats.pit_edges_merged += due.saturating_sub(1);
        cmos.update(now_ns, irq);
        hpet.update(now_ns, &mut HpetLines(irq));
        irq.lapic.update(now_ns);
    }

    /// The virtual time at which [`Platform::update_timers`] will next have an interrupt
    /// to raise, for the monitor's host timer; `None` if no timer is armed.
    pub fn next_timer_deadline_ns(&self) -> Option<u64> {
        let d = &self.devices;
        // In the HPET's legacy-replacement mode the PIT's and the RTC's interrupts go
        // nowhere: no need to wake for them.
        let legacy = d.irq.hpet_legacy;
        let pit = if legacy { None } else { d.pit.next_event_ns() };
        let cmos = if legacy { None } else { d.cmos.next_event_ns() };
        [pit, cmos, d.hpet.next_event_ns(), d.irq.lapic.next_event_ns()].into_iter().flatten().min()
    }

    /// The CPU's INTR input (from the local APIC, which passes the PIC's): an interrupt
    /// is waiting for the CPU (when its IF allows).
    pub fn interrupt_pending(&self) -> bool {
        let irq = &self.devices.irq;
        irq.lapic.interrupt_pending(irq.pic.interrupt_pending())
    }

    /// The INTA cycle: the vector to deliver, from the local APIC or, through it, the
    /// PIC. Call it only when [`Platform::interrupt_pending`] is true and the CPU takes
    /// the interrupt; without a request it returns a spurious vector (the PIC's IRQ7 or
    /// the APIC's spurious vector).
    pub fn acknowledge_interrupt(&mut self) -> u8 {
        self.stats.interrupts_acknowledged += 1;
        let irq = &mut self.devices.irq;
        match irq.lapic.acknowledge(irq.pic.interrupt_pending()) {
            Acknowledge::Vector(v) => v,
            Acknowledge::Spurious(v) => {
                self.stats.spurious_interrupts += 1;
                v
            }
            Acknowledge::Pic => {
                let ack = irq.pic.intack();
                if ack.spurious {
                    self.stats.spurious_interrupts += 1;
                }
                ack.vector
            }
        }
    }

    /// A non-maskable interrupt is waiting for the CPU (sent by the local APIC).
    pub fn nmi_pending(&self) -> bool {
        self.devices.irq.lapic.nmi_pending()
    }

    /// Takes the waiting NMI (the CPU delivers vector 2); false if there is none.
    pub fn take_nmi(&mut self) -> bool {
        self.devices.irq.lapic.take_nmi()
    }

    /// Offer bytes to COM1's receiver, as typed on its line. Returns how many it took
    /// (its FIFO holds 64); the rest must be offered again once the guest read some.
    pub fn enqueue_serial_input(&mut self, bytes: &[u8]) -> usize {
        let Devices { irq, com1, .. } = &mut self.devices;
        com1.enqueue_input(bytes, irq)
    }

    /// Input COM1's driver cleared from the receive FIFO unread, for the console to offer
    /// again ([`Uart::take_returned_input`]).
    pub fn take_returned_serial_input(&mut self) -> Vec<u8> {
        self.devices.com1.take_returned_input()
    }

    /// What SeaBIOS leaves in the devices under QEMU, for a kernel booted without a BIOS
    /// (at power-on and after every reset): the i8042 translating to scan code set 1
    /// ([`I8042::bios_init`]) and the text screen in mode 3 ([`Cga::new`]).
    pub fn bios_init(&mut self) {
        self.devices.i8042.bios_init();
        self.devices.cga = Cga::new();
    }

    /// A key typed on the console for the i8042's keyboard: false (nothing taken) until
    /// the guest's driver is ready for it — IRQ 1 unmasked at the I/O APIC, or at an 8259A
    /// the guest has programmed (its power-on vector base 0 changed), and the keyboard
    /// able to take a key ([`I8042::type_key`]); offer it again later. So keys typed
    /// early wait for the driver instead of disturbing its set-up.
    pub fn type_key(&mut self, stroke: &crate::keys::KeyStroke) -> bool {
        let Devices { irq, i8042, .. } = &mut self.devices;
        let irq1 = crate::i8042::KBD_IRQ;
        let pic = irq.pic.vector_base(Chip::Master) != 0 && irq.pic.imr(Chip::Master) & (1 << irq1) == 0;
        let unmasked = pic || !irq.ioapic.masked(isa_irq_pin(irq1));
        unmasked && i8042.type_key(stroke, irq)
    }

    /// The text screen's registers (cursor, start address), for the monitor's display.
    pub fn cga(&self) -> &Cga {
        &self.devices.cga
    }

    /// Flush COM1's output writer and sync the disks (errors are logged: there is
    /// nobody to tell).
    pub fn flush(&mut self) {
        if let Err(err) = self.devices.com1.flush() {
            log::warn!("flushing serial output: {err}");
        }
        if let Err(err) = self.devices.ata[0].sync() {
            log::warn!("syncing a disk image: {err}");
        }
    }

    /// Puts a disk on the primary ATA channel: `unit` 0 is the master, 1 the slave.
    pub fn attach_disk(&mut self, unit: usize, disk: Box<dyn DiskBackend>) {
        self.devices.ata[0].attach(unit, disk);
    }

    /// Reset the board's devices as a machine reset does (after an
    /// [`IoOutcome::Reset`]): PICs (including ELCR), PIT, speaker port, i8042 and UART
    /// return to their power-on state; CMOS RAM and the RTC keep their contents except
    /// what QEMU's reset clears; COM1 keeps its output writer.
    pub fn reset(&mut self, now_ns: u64) {
        let d = &mut self.devices;
        let raised = d.irq.lines.raised;
        d.irq = Interrupts::new();
        d.irq.lines.raised = raised;
        d.pit = Pit::new(now_ns);
        d.speaker = SpeakerPort::new();
        d.i8042.reset();
        d.cmos.reset();
        d.hpet = Hpet::new();
        d.acpi_pm.reset(now_ns);
        d.ata.iter_mut().for_each(AtaChannel::reset);
        let old = std::mem::replace(&mut d.com1, Uart::new(COM1_IRQ, Box::new(io::sink())));
        self.stats.serial_bytes_out += old.bytes_out();
        d.com1 = Uart::new(COM1_IRQ, old.into_writer());
    }

    /// Gives QEMU's fw_cfg command-line items, as QEMU does for a Linux kernel's
    /// `-append`: `cmdline` as the loader put it at `addr`.
    pub fn set_kernel_cmdline(&mut self, addr: u32, cmdline: &str) {
        self.devices.fw_cfg.set_cmdline(addr, cmdline);
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> DeviceStats {
        DeviceStats {
            irqs_raised: self.devices.irq.lines.raised,
            serial_bytes_out: self.stats.serial_bytes_out + self.devices.com1.bytes_out(),
            last_post_code: self.devices.post.last(),
            ..self.stats.clone()
        }
    }

    /// The interrupt controllers (read-only, for debugging).
    pub fn pic(&self) -> &PicPair {
        &self.devices.irq.pic
    }

    /// The RTC / CMOS (read-only, for debugging).
    pub fn cmos(&self) -> &Cmos {
        &self.devices.cmos
    }

    /// The A20 gate as the guest set it through the i8042 (bt86 itself always runs with
    /// A20 enabled).
    pub fn a20_enabled(&self) -> bool {
        self.devices.i8042.a20_enabled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A `Write` whose bytes and flushes the test can look at after handing it over.
    #[derive(Clone, Default)]
    struct SharedOut {
        inner: Arc<Mutex<(Vec<u8>, usize)>>,
    }

    impl SharedOut {
        fn bytes(&self) -> Vec<u8> {
            self.inner.lock().unwrap().0.clone()
        }
        fn flushes(&self) -> usize {
            self.inner.lock().unwrap().1
        }
    }

    impl Write for SharedOut {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.inner.lock().unwrap().0.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            self.inner.lock().unwrap().1 += 1;
            Ok(())
        }
    }

    const MIB: u64 = 1 << 20;

    fn platform() -> (Platform, SharedOut) {
        let out = SharedOut::default();
        let config =
            PlatformConfig { ram_size: 64 * MIB, serial_out: Box::new(out.clone()), wall_clock_unix_secs: 1_709_214_356, boot_ns: 0 };
        (Platform::new(config), out)
    }

    /// Program the PICs as Linux does: vectors 0x30 / 0x38.
    fn init_pics(p: &mut Platform) {
        for (port, value) in [
            (0x20, 0x11),
            (0x21, 0x30),
            (0x21, 0x04),
            (0x21, 0x01),
            (0xA0, 0x11),
            (0xA1, 0x38),
            (0xA1, 0x02),
            (0xA1, 0x01),
            (0x21, 0x00),
            (0xA1, 0x00),
        ] {
            assert_eq!(p.io_out(port, 1, value, 0), IoOutcome::Continue);
        }
    }

    #[test]
    fn platform_can_move_to_another_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<Platform>();
    }

    #[test]
    fn unclaimed_ports_read_all_ones_and_are_counted() {
        let (mut p, _) = platform();
        assert_eq!(p.io_in(0x1234, 1, 0), 0xFF);
        assert_eq!(p.io_in(0xCF8, 4, 0), 0xFFFF_FFFF);
        assert_eq!(p.io_out(0x1234, 2, 0xABCD, 0), IoOutcome::Continue);
        let stats = p.stats();
        assert_eq!((stats.port_reads, stats.unclaimed_port_reads), (2, 2));
        assert_eq!((stats.port_writes, stats.unclaimed_port_writes), (1, 1));
    }

    #[test]
    fn acpi_poweroff_flushes_serial_output() {
        let (mut p, out) = platform();
        p.io_out(0x3F8, 1, u32::from(b'z'), 0);
        let flushes_before = out.flushes();
        // PM1a_CNT: SLP_TYP 0 (S5) | SLP_EN, as Linux's acpi_power_off writes it.
        assert_eq!(p.io_in(0x604, 2, 0), 1, "SCI_EN");
        assert_eq!(p.io_out(0x604, 2, 0x2001, 0), IoOutcome::PowerOff);
        assert!(out.flushes() > flushes_before);
        // The PM timer counts from virtual time, 24 bits.
        assert_eq!(p.io_in(0x608, 4, 1_000_000_000), 3_579_545);
    }

    #[test]
    fn fw_cfg_signature_through_the_ports() {
        let (mut p, _) = platform();
        p.io_out(0x510, 2, 0, 0);
        let sig: Vec<u8> = (0..4).map(|_| p.io_in(0x511, 1, 0) as u8).collect();
        assert_eq!(sig, b"QEMU");
        p.set_kernel_cmdline(0x2_0000, "quiet");
        p.io_out(0x510, 2, 0x14, 0);
        assert_eq!(p.io_in(0x511, 1, 0), 6);
    }

    #[test]
    fn post_port_and_debug_exit_reads() {
        let (mut p, _) = platform();
        p.io_out(0x80, 1, 0x42, 0);
        assert_eq!(p.io_in(0x80, 1, 0), 0xFF);
        assert_eq!(p.stats().last_post_code, Some(0x42));
        assert_eq!(p.io_in(0xF4, 1, 0), 0);
        assert_eq!(p.io_in(0xF4, 4, 0), 0);
    }

    #[test]
    fn debug_exit_flushes_serial_output_and_reports_status() {
        let (mut p, out) = platform();
        for &b in b"ok\n" {
            p.io_out(0x3F8, 1, u32::from(b), 0);
        }
        let flushes_before = out.flushes();
        assert_eq!(p.io_out(0xF4, 1, 0x10, 0), IoOutcome::Exit(33));
        assert!(out.flushes() > flushes_before);
        assert_eq!(out.bytes(), b"ok\n");
        assert_eq!(p.stats().serial_bytes_out, 3);
        // Word and dword writes carry the whole value; any port of the four works.
        assert_eq!(p.io_out(0xF4, 4, 0x100, 0), IoOutcome::Exit(0x201));
        assert_eq!(p.io_out(0xF6, 2, 0x3, 0), IoOutcome::Exit(7));
    }

    #[test]
    fn i8042_reset_command_resets_the_machine() {
        let (mut p, _) = platform();
        assert_eq!(p.io_in(0x64, 1, 0), 0x18);
        assert_eq!(p.io_out(0x64, 1, 0xFE, 0), IoOutcome::Reset);
        // Self test through the ports.
        p.io_out(0x64, 1, 0xAA, 0);
        assert_eq!(p.io_in(0x60, 1, 0), 0x55);
    }

    #[test]
    fn cmos_through_ports() {
        let (mut p, _) = platform();
        p.io_out(0x70, 1, 0x15, 0);
        assert_eq!(p.io_in(0x71, 1, 0), 0x80);
        p.io_out(0x70, 1, 0x16, 0);
        assert_eq!(p.io_in(0x71, 1, 0), 0x02);
        p.io_out(0x70, 1, 0x80 | 0x04, 0);
        assert_eq!(p.io_in(0x71, 1, 0), 0x13);
        assert!(p.cmos().nmi_disabled());
    }

    #[test]
    fn word_access_to_the_pic_is_split_like_qemu() {
        let (mut p, _) = platform();
        init_pics(&mut p);
        p.io_out(0x21, 1, 0xA5, 0);
        // inw 0x20: IRR (0) in the low byte, IMR in the high byte.
        assert_eq!(p.io_in(0x20, 2, 0), 0xA500);
        // outw 0x20, 0xFF0B: OCW3 (read ISR) to 0x20, mask 0xFF to 0x21.
        p.io_out(0x20, 2, 0xFF0B, 0);
        assert_eq!(p.io_in(0x21, 1, 0), 0xFF);
    }

    #[test]
    fn pit_periodic_timer_interrupts_through_the_pic() {
        let (mut p, _) = platform();
        init_pics(&mut p);
        // Linux's periodic PIT: mode 2, LATCH = 1193 (HZ=1000).
        p.io_out(0x43, 1, 0x34, 0);
        p.io_out(0x40, 1, 1193 & 0xFF, 0);
        p.io_out(0x40, 1, 1193 >> 8, 0);
        let deadline = p.next_timer_deadline_ns().unwrap();
        assert_eq!(deadline, 999_848);
        p.update_timers(deadline - 1);
        assert!(!p.interrupt_pending());
        p.update_timers(deadline);
        assert!(p.interrupt_pending());
        assert_eq!(p.acknowledge_interrupt(), 0x30);
        assert!(!p.interrupt_pending());
        p.io_out(0x20, 1, 0x20, deadline); // EOI
        // The sixth period's edge, with nothing seen in between: one interrupt, four
        // merged edges.
        let sixth = (6 * 1193 * 1_000_000_000u64).div_ceil(1_193_182);
        p.update_timers(sixth);
        assert_eq!(p.acknowledge_interrupt(), 0x30);
        p.io_out(0x20, 1, 0x20, sixth);
        assert!(!p.interrupt_pending());
        let stats = p.stats();
        assert_eq!(stats.irqs_raised[0], 2);
        assert_eq!(stats.pit_edges_merged, 4);
        assert_eq!(stats.interrupts_acknowledged, 2);
    }

    #[test]
    fn port_accesses_deliver_due_timer_edges_first() {
        let (mut p, _) = platform();
        init_pics(&mut p);
        p.io_out(0x43, 1, 0x34, 0);
        p.io_out(0x40, 1, 100, 0);
        p.io_out(0x40, 1, 0, 0);
        // The guest polls IRR without the monitor's timer having fired.
        p.io_out(0x20, 1, 0x0A, 0);
        assert_eq!(p.io_in(0x20, 1, 100_000) & 1, 1);
    }

    #[test]
    fn uart_thre_interrupt_reaches_the_cpu_as_irq4() {
        let (mut p, out) = platform();
        init_pics(&mut p);
        p.io_out(0x3F9, 1, 0x02, 0); // IER: THRI
        assert!(p.interrupt_pending());
        assert_eq!(p.acknowledge_interrupt(), 0x34);
        assert_eq!(p.io_in(0x3FA, 1, 0), 0x02); // IIR: THRI (FIFOs off)
        p.io_out(0x3F8, 1, u32::from(b'Z'), 0);
        p.io_out(0x20, 1, 0x20, 0);
        assert!(p.interrupt_pending(), "the THR write raised IRQ4 again");
        assert_eq!(p.acknowledge_interrupt(), 0x34);
        assert_eq!(out.bytes(), b"Z");
        assert_eq!(p.stats().irqs_raised[4], 2);
    }

    #[test]
    fn serial_input_raises_irq4_when_enabled() {
        let (mut p, _) = platform();
        init_pics(&mut p);
        p.io_out(0x3F9, 1, 0x01, 0); // IER: RDI
        assert!(!p.interrupt_pending());
        assert_eq!(p.enqueue_serial_input(b"a"), 1);
        assert_eq!(p.acknowledge_interrupt(), 0x34);
        assert_eq!(p.io_in(0x3FD, 1, 0) & 1, 1);
        assert_eq!(p.io_in(0x3F8, 1, 0), u32::from(b'a'));
    }

    #[test]
    fn typed_keys_wait_for_irq1_then_interrupt() {
        let (mut p, _) = platform();
        p.bios_init();
        let a = crate::keys::next_key(b"a").0.unwrap();
        assert!(!p.type_key(&a), "the PIC is not programmed yet");
        init_pics(&mut p);
        p.io_out(0x21, 1, 0x02, 0); // IRQ 1 masked
        assert!(!p.type_key(&a));
        p.io_out(0x21, 1, 0x00, 0);
        assert!(p.type_key(&a));
        assert_eq!(p.acknowledge_interrupt(), 0x31);
        assert_eq!(p.io_in(0x64, 1, 0) & 1, 1, "OBF");
        assert_eq!(p.io_in(0x60, 1, 0), 0x1E);
        assert_eq!(p.io_in(0x60, 1, 0), 0x9E);
        // The CRTC through the ports: outw writes the index, then the data.
        p.io_out(0x3D4, 2, 0x070E, 0);
        p.io_out(0x3D4, 2, 0xD00F, 0);
        assert_eq!(p.cga().cursor_location(), 0x07D0);
        assert_eq!(p.io_in(0x3CC, 1, 0), 0x67);
    }

    #[test]
    fn mouse_byte_interrupts_through_the_slave() {
        let (mut p, _) = platform();
        init_pics(&mut p);
        p.io_out(0x64, 1, 0xD3, 0);
        p.io_out(0x60, 1, 0x5A, 0);
        assert!(p.interrupt_pending());
        assert_eq!(p.acknowledge_interrupt(), 0x3C); // IRQ12 = slave line 4
        assert_eq!(p.io_in(0x60, 1, 0), 0x5A);
        let stats = p.stats();
        assert_eq!(stats.irqs_raised[12], 1);
        assert_eq!(stats.irqs_raised[2], 0);
    }

    /// Writes I/O APIC redirection entry `pin` (low word; destination APIC 0).
    fn ioapic_entry(p: &mut Platform, pin: u32, low: u32) {
        p.mmio_write(IOAPIC_BASE, 4, 0x11 + 2 * pin, 0);
        p.mmio_write(IOAPIC_BASE + 0x10, 4, 0, 0);
        p.mmio_write(IOAPIC_BASE, 4, 0x10 + 2 * pin, 0);
        p.mmio_write(IOAPIC_BASE + 0x10, 4, low, 0);
    }

    #[test]
    fn pit_reaches_the_cpu_through_the_io_apic_pin_2() {
        let (mut p, _) = platform();
        init_pics(&mut p);
        p.io_out(0x21, 1, 0xFF, 0); // every PIC line masked
        p.mmio_write(LAPIC_BASE + 0xF0, 4, 0x1FF, 0); // SVR: enabled
        ioapic_entry(&mut p, 2, 0x48);
        p.io_out(0x43, 1, 0x34, 0);
        p.io_out(0x40, 1, 1193 & 0xFF, 0);
        p.io_out(0x40, 1, 1193 >> 8, 0);
        let deadline = p.next_timer_deadline_ns().unwrap();
        p.update_timers(deadline);
        assert!(p.interrupt_pending());
        assert_eq!(p.acknowledge_interrupt(), 0x48);
        assert!(!p.interrupt_pending());
        p.mmio_write(LAPIC_BASE + 0xB0, 4, 0, deadline); // EOI
        ioapic_entry(&mut p, 2, 0x1_0048); // masked
        p.update_timers(deadline * 3);
        assert!(!p.interrupt_pending());
    }

    #[test]
    fn hpet_legacy_timer_0_replaces_the_pit_on_pin_2() {
        let (mut p, _) = platform();
        init_pics(&mut p);
        p.io_out(0x21, 1, 0xFF, 0);
        p.mmio_write(LAPIC_BASE + 0xF0, 4, 0x1FF, 0);
        ioapic_entry(&mut p, 2, 0x48);
        let hpet = crate::hpet::HPET_BASE;
        // Periodic, 1 ms, legacy replacement; the PIT keeps running at 1 kHz too.
        p.io_out(0x43, 1, 0x34, 0);
        p.io_out(0x40, 1, 1193 & 0xFF, 0);
        p.io_out(0x40, 1, 1193 >> 8, 0);
        p.mmio_write(hpet + 0x100, 4, 0x4C, 0); // enable, periodic, set value
        p.mmio_write(hpet + 0x108, 4, 100_000, 0);
        p.mmio_write(hpet + 0x100, 4, 0x4C, 0);
        p.mmio_write(hpet + 0x10C, 4, 0, 0);
        p.mmio_write(hpet + 0x10, 4, 3, 0); // enable, legacy
        assert_eq!(p.next_timer_deadline_ns(), Some(1_000_000), "the PIT's deadline does not count");
        for ms in 1..=3u64 {
            p.update_timers(ms * 1_000_000);
            assert!(p.interrupt_pending());
            assert_eq!(p.acknowledge_interrupt(), 0x48);
            p.mmio_write(LAPIC_BASE + 0xB0, 4, 0, ms * 1_000_000);
            assert!(!p.interrupt_pending(), "one interrupt per period: the PIT is cut off");
        }
        assert_eq!(p.stats().irqs_raised[0], 3);
        assert_eq!(p.mmio_read(hpet + 0x108, 4, 3_000_000), 400_000);
        // Leaving legacy mode gives IRQ 0 back to the PIT.
        p.mmio_write(hpet + 0x10, 4, 1, 3_000_000);
        p.mmio_write(hpet + 0x100, 4, 0, 3_000_000);
        let due = p.next_timer_deadline_ns().unwrap();
        assert!(due < 4_000_000, "the PIT's next edge");
        p.update_timers(due);
        assert_eq!(p.acknowledge_interrupt(), 0x48);
    }

    #[test]
    fn level_triggered_rtc_interrupt_and_eoi() {
        let (mut p, _) = platform();
        p.io_out(0x21, 1, 0xFF, 0);
        p.io_out(0xA1, 1, 0xFF, 0);
        p.mmio_write(LAPIC_BASE + 0xF0, 4, 0x1FF, 0);
        ioapic_entry(&mut p, 8, 0x8049); // level, vector 0x49
        p.io_out(0x70, 1, 0x0B, 0);
        p.io_out(0x71, 1, 0x42, 0); // PIE, 24-hour
        let due = p.next_timer_deadline_ns().unwrap();
        p.update_timers(due);
        assert_eq!(p.acknowledge_interrupt(), 0x49);
        p.mmio_write(LAPIC_BASE + 0xB0, 4, 0, due); // EOI with the line still high
        assert!(p.interrupt_pending(), "sent again: the line is high");
        assert_eq!(p.acknowledge_interrupt(), 0x49);
        p.io_out(0x70, 1, 0x0C, due);
        p.io_in(0x71, 1, due); // register C: the line drops
        p.mmio_write(LAPIC_BASE + 0xB0, 4, 0, due);
        assert!(!p.interrupt_pending());
    }

    #[test]
    fn apic_globally_disabled_passes_the_pic_and_reads_its_registers() {
        let (mut p, _) = platform();
        init_pics(&mut p);
        p.mmio_write(LAPIC_BASE + 0x350, 4, 0x1_0700, 0); // LINT0 masked
        p.io_out(0x3F9, 1, 0x02, 0); // COM1 THRI: IRQ4
        assert!(!p.interrupt_pending());
        p.set_apic_base(0xFEE0_0100);
        assert!(p.interrupt_pending());
        assert_eq!(p.acknowledge_interrupt(), 0x34);
        assert_eq!(p.mmio_read(LAPIC_BASE + 0x30, 4, 0), 0x0005_0014);
        assert_eq!(p.mmio_read(LAPIC_BASE + 0x30, 2, 0), 0, "narrow reads give 0");
    }

    #[test]
    fn ata_disk_through_the_ports_interrupts_on_irq14() {
        let (mut p, _) = platform();
        init_pics(&mut p);
        assert_eq!((p.io_in(0x1F7, 1, 0), p.io_in(0x3F6, 1, 0)), (0, 0), "no disks: an empty channel");
        assert_eq!((p.io_in(0x177, 1, 0), p.io_in(0x376, 1, 0)), (0, 0), "the secondary channel, always empty");
        let path = std::env::temp_dir().join(format!("bt86-platform-ata-{}.img", std::process::id()));
        std::fs::write(&path, (0..4096).map(|i| (i / 512) as u8).collect::<Vec<u8>>()).unwrap();
        p.attach_disk(0, Box::new(crate::ata::FileDisk::open(&path, false).unwrap()));
        std::fs::remove_file(&path).unwrap();
        for (port, value) in [(0x1F6, 0xE0), (0x1F2, 1), (0x1F3, 3), (0x1F4, 0), (0x1F5, 0), (0x1F7, 0x20)] {
            p.io_out(port, 1, value, 0);
        }
        assert!(p.interrupt_pending());
        assert_eq!(p.acknowledge_interrupt(), 0x3E, "IRQ 14 = slave line 6");
        assert_eq!(p.io_in(0x1F7, 1, 0), 0x58);
        assert_eq!(p.io_in(0x1F0, 4, 0), 0x0303_0303);
        assert_eq!(p.io_in(0x1F0, 2, 0), 0x0303);
        assert_eq!(p.stats().irqs_raised[14], 1);
    }

    #[test]
    fn spurious_acknowledge_is_counted() {
        let (mut p, _) = platform();
        init_pics(&mut p);
        assert_eq!(p.acknowledge_interrupt(), 0x37);
        assert_eq!(p.stats().spurious_interrupts, 1);
    }

    #[test]
    fn channel2_calibration_through_port_0x61() {
        let (mut p, _) = platform();
        let v = p.io_in(0x61, 1, 0);
        p.io_out(0x61, 1, (v & !0x02) | 0x01, 0);
        p.io_out(0x43, 1, 0xB0, 0);
        p.io_out(0x42, 1, 0xFF, 0);
        p.io_out(0x42, 1, 0xFF, 0);
        assert_eq!(p.io_in(0x61, 1, 1_000) & 0x21, 0x01);
        // 0xFFFF ticks = 54.925 ms.
        assert_eq!(p.io_in(0x61, 1, 54_925_000) & 0x21, 0x21);
    }

    #[test]
    fn reset_restores_power_on_state_but_keeps_the_serial_writer() {
        let (mut p, out) = platform();
        init_pics(&mut p);
        p.io_out(0x4D1, 1, 0x08, 0);
        p.io_out(0x3F8, 1, u32::from(b'1'), 0);
        p.reset(1_000_000);
        assert_eq!(p.pic().vector_base(Chip::Master), 0);
        assert_eq!(p.io_in(0x4D1, 1, 1_000_000), 0);
        p.io_out(0x3F8, 1, u32::from(b'2'), 1_000_000);
        assert_eq!(out.bytes(), b"12");
        assert_eq!(p.stats().serial_bytes_out, 2);
        // The PIT restarted at the reset time.
        assert_eq!(p.next_timer_deadline_ns(), Some(1_000_000 + (0x10000u64 * 1_000_000_000).div_ceil(1_193_182)));
    }
}
