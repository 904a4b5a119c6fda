//! The port bus as the CPU emulation sees it: the devices' platform at the current
//! virtual time.

use bt86_devices::{IoOutcome, Platform};

use crate::cpu::emulate::{IoEffect, PortIo};

/// The platform plus "now".
pub struct Ports<'a> {
    /// The devices.
    pub platform: &'a mut Platform,
    /// The virtual clock (read only when a port is actually accessed: most callouts are
    /// not I/O).
    pub clock: &'a super::clock::Clock,
    /// A device was accessed (its next timer deadline may have changed).
    pub touched: bool,
}

impl<'a> Ports<'a> {
    /// The bus over `platform`, nothing accessed yet.
    pub fn new(platform: &'a mut Platform, clock: &'a super::clock::Clock) -> Ports<'a> {
        Ports { platform, clock, touched: false }
    }
}

impl PortIo for Ports<'_> {
    fn io_in(&mut self, port: u16, size: u8) -> u32 {
        self.touched = true;
        self.platform.io_in(port, size, self.clock.now())
    }

    fn io_out(&mut self, port: u16, size: u8, value: u32) -> IoEffect {
        self.touched = true;
        match self.platform.io_out(port, size, value, self.clock.now()) {
            IoOutcome::Continue => IoEffect::None,
            IoOutcome::Exit(s) => IoEffect::Exit(s),
            IoOutcome::Reset => IoEffect::Reset,
            IoOutcome::PowerOff => IoEffect::PowerOff,
        }
    }

    fn apic_base_written(&mut self, value: u64) {
        self.touched = true;
        self.platform.set_apic_base(value);
    }
}
