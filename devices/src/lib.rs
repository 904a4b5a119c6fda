//! bt86's PC device models: the port-I/O (and, for later, MMIO) bus, the 8259A PIC
//! pair, the local APIC and the I/O APIC, the 8254 PIT with port 0x61, the 16550A UART
//! (vm-superio), the MC146818 RTC/CMOS, the i8042 controller with its reset line and typed
//! keys ([`keys`]), the CGA text screen's registers, the HPET, the ACPI PM registers and
//! timer, QEMU's fw_cfg, the ATA disk channels, port 0x80 and QEMU's isa-debug-exit; and
//! the tables a BIOS leaves in memory ([`firmware`]: BIOS data area, MP table, ACPI tables).
//! Each device is a plain struct with `read`/`write` methods that takes
//! the virtual time and an [`IrqSink`] as arguments, so it is unit-tested with no VM
//! running; the [`Platform`] owns them all, maps them on a [`PioBus`] at the ports of
//! QEMU's `pc` machine and forwards their interrupt lines to the PIC.
//!
//! # How the monitor uses it
//! ```
//! use bt86_devices::{IoOutcome, Platform, PlatformConfig};
//!
//! let config = PlatformConfig {
//!     ram_size: 64 << 20,
//!     serial_out: Box::new(std::io::sink()), // the monitor passes stdout
//!     wall_clock_unix_secs: 1_700_000_000,
//!     boot_ns: 0,
//! };
//! let mut board = Platform::new(config);
//! let now_ns = 1_000; // the monitor's virtual clock
//!
//! // A guest `in` / `out` (size 1, 2 or 4):
//! let value = board.io_in(0x64, 1, now_ns);
//! assert_eq!(value, 0x18);
//! match board.io_out(0xF4, 1, 0x10, now_ns) {
//!     IoOutcome::Continue => {}
//!     IoOutcome::Exit(status) => assert_eq!(status, 33), // stop the VM, exit(status)
//!     IoOutcome::Reset => {}                             // reset the CPU, board.reset(now)
//!     IoOutcome::PowerOff => {}                          // ACPI S5: stop the VM, exit(0)
//! }
//!
//! // Timers: arm a host timer for the deadline, then catch up when it fires (and
//! // before deciding whether to inject an interrupt).
//! if let Some(deadline_ns) = board.next_timer_deadline_ns() {
//!     board.update_timers(deadline_ns);
//! }
//! // Interrupts: when the guest's IF is set and INTR is high, run an INTA cycle.
//! if board.interrupt_pending() {
//!     let vector = board.acknowledge_interrupt();
//!     # let _ = vector;
//! }
//! board.flush();
//! println!("{}", board.stats());
//! ```
//!
//! # Time
//! Nothing here reads a host clock (except [`PlatformConfig::with_host_clock`], which
//! only picks the RTC's starting date). `now_ns` is the monitor's monotonic virtual
//! time in nanoseconds; counters and the RTC are computed from it, so a test that
//! passes the same times gets the same answers, and a guest sees time stand still while
//! it is not running. Every port access first delivers the PIT edges due by its
//! `now_ns`. When several PIT periods elapsed unseen, IRQ0 gets one edge, not a burst
//! (see [`pit`]); [`DeviceStats::pit_edges_merged`] counts the merged ones.
//!
//! # QEMU compatibility
//! Guest tests compare bt86's serial output with QEMU's byte for byte, so wherever
//! the datasheets leave room (and in a few places where QEMU departs from them), the
//! devices do what QEMU's models do; each module lists the behaviours it matched. The
//! board starts as QEMU's does before firmware runs (PIC vector base 0, PIT at 18.2 Hz):
//! bt86 has no BIOS, so guest tests must initialize what they use.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod acpi_pm;
pub mod ata;
pub mod bus;
pub mod cga;
pub mod cmos;
pub mod debug_exit;
pub mod firmware;
pub mod fw_cfg;
pub mod hpet;
pub mod i8042;
pub mod ioapic;
pub mod irq;
pub mod keys;
pub mod lapic;
pub mod pic;
pub mod pit;
pub mod platform;
pub mod post;
pub mod serial;
pub mod speaker;

pub use bus::{BusError, MmioBus, PioBus};
pub use hpet::Hpet;
pub use ioapic::IoApic;
pub use irq::IrqSink;
pub use lapic::LocalApic;
pub use pic::{Chip, InterruptAck, PicPair};
pub use pit::Pit;
pub use platform::{DeviceStats, Platform, PlatformConfig};

/// What the monitor must do after a guest port write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoOutcome {
    /// Nothing special: resume the guest.
    Continue,
    /// The guest asked the VM to stop (isa-debug-exit) with this host exit status.
    /// Serial output has been flushed.
    Exit(i32),
    /// The guest asked for a machine reset (i8042 reset line). The monitor resets the
    /// CPU and calls [`Platform::reset`].
    Reset,
    /// The guest turned the machine off (ACPI S5 through PM1a control). Serial output
    /// has been flushed.
    PowerOff,
}
