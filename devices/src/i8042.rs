//! The i8042 PS/2 controller (data port 0x60, status/command port 0x64), with just
//! enough of a PS/2 keyboard (IRQ1) and mouse (IRQ12) behind it to answer a kernel's
//! probe, and the reset line a kernel pulses to reboot.
//!
//! vm-superio's `I8042Device` only knows the reset command (every read returns 0, so
//! a probing kernel would see a controller that never answers), hence this model,
//! which follows QEMU's `hw/input/pckbd.c` and the command subset of `hw/input/ps2.c`:
//! - Controller commands: 0x20 read command byte, 0x60 write command byte, 0xA7/0xA8
//!   disable/enable mouse, 0xA9 mouse test (0x00), 0xAA self test (0x55, sets the
//!   status self-test bit), 0xAB keyboard test (0x00), 0xAD/0xAE disable/enable
//!   keyboard, 0xC0 read input port (0x80), 0xD0/0xD1 read/write output port, 0xD2/0xD3
//!   write the keyboard/mouse output buffer, 0xD4 write to the mouse, 0xDD/0xDF A20
//!   off/on, 0xF0-0xFF pulse output bits (bit 0 clear, e.g. 0xFE, resets the machine).
//!   Writing the output port with bit 0 clear also resets.
//! - Status register: bit 0 output buffer full, bit 2 self-test passed, bit 3 last
//!   write was a command (always set, as QEMU), bit 4 keyboard unlocked, bit 5 the
//!   byte in the output buffer is from the mouse.
//! - Keyboard and mouse data share the output buffer, keyboard first. IRQ1 is high
//!   while a keyboard byte waits and command byte bit 0 is set (and the keyboard is
//!   not disabled); IRQ12 while a mouse byte waits and bit 1 is set. Reading port 0x60
//!   drops the line and raises it again if more bytes wait: one edge per byte.
//!   Reading with nothing waiting returns the last byte again.
//!
//! The keyboard answers 0xFF reset (ACK, 0xAA), 0xF2 identify (ACK, 0xAB, 0x83 or
//! 0x41 when translating), 0xEE echo, 0xF4/0xF5/0xF6 enable/disable/defaults, and the
//! two-byte commands 0xED, 0xF0, 0xF3, 0xFC (ACK each byte); anything else gets 0xFE
//! (resend). The mouse answers 0xFF reset (ACK, 0xAA, 0x00), 0xF2 identify (ACK, 0x00),
//! 0xE9 status (ACK + 3 bytes), 0xEB poll (ACK + an empty packet) and ACKs the mode
//! commands. Keys typed on the console ([`I8042::type_key`]) become scan codes in set 1
//! when the controller translates (command byte bit 6, as SeaBIOS leaves it: see
//! [`I8042::bios_init`]) or the keyboard is in set 1, else in set 2 (set 3 gets set 2's
//! codes). No mouse movements are ever generated.

use std::collections::VecDeque;

use crate::IoOutcome;
use crate::irq::IrqSink;
use crate::keys::KeyStroke;

/// The keyboard's ISA interrupt line.
pub const KBD_IRQ: u8 = 1;
/// The mouse's ISA interrupt line.
pub const AUX_IRQ: u8 = 12;

// Status register bits.
const STAT_OBF: u8 = 0x01;
const STAT_SELFTEST: u8 = 0x04;
const STAT_CMD: u8 = 0x08;
const STAT_UNLOCKED: u8 = 0x10;
const STAT_MOUSE_OBF: u8 = 0x20;

// Command byte ("mode") bits.
const MODE_KBD_INT: u8 = 0x01;
const MODE_MOUSE_INT: u8 = 0x02;
const MODE_DISABLE_KBD: u8 = 0x10;
const MODE_DISABLE_MOUSE: u8 = 0x20;
const MODE_KCC: u8 = 0x40;

// Output port bits.
const OUT_RESET: u8 = 0x01;
const OUT_A20: u8 = 0x02;
const OUT_OBF: u8 = 0x10;
const OUT_MOUSE_OBF: u8 = 0x20;
/// QEMU keeps these output port bits set by default.
const OUT_ONES: u8 = 0xCC;

const ACK: u8 = 0xFA;
const RESEND: u8 = 0xFE;
const POWER_ON_RESET_OK: u8 = 0xAA;

/// Bytes a PS/2 device can hold before it drops more.
const QUEUE_CAPACITY: usize = 16;

/// Which device's bytes wait in the controller.
const PENDING_KBD: u8 = 1;
const PENDING_AUX: u8 = 2;

/// A PS/2 device's output queue.
#[derive(Debug, Clone, Default)]
struct Ps2Queue {
    bytes: VecDeque<u8>,
    /// The last byte read, returned again when the queue is empty (QEMU does this
    /// for EMM386).
    last: u8,
}

impl Ps2Queue {
    fn push(&mut self, byte: u8) {
        if self.bytes.len() < QUEUE_CAPACITY {
            self.bytes.push_back(byte);
        } else {
            log::debug!("i8042: PS/2 queue full, byte {byte:#04x} dropped");
        }
    }
}

/// The PS/2 keyboard's command interpreter.
#[derive(Debug, Clone)]
struct Keyboard {
    queue: Ps2Queue,
    /// A two-byte command waiting for its parameter.
    pending_cmd: Option<u8>,
    scan_enabled: bool,
    scancode_set: u8,
}

impl Keyboard {
    fn new() -> Self {
        Keyboard { queue: Ps2Queue::default(), pending_cmd: None, scan_enabled: true, scancode_set: 2 }
    }

    fn reset(&mut self) {
        self.pending_cmd = None;
        self.scan_enabled = true;
        self.scancode_set = 2;
    }

    fn write(&mut self, byte: u8, translate: bool) {
        if let Some(cmd) = self.pending_cmd.take() {
            match cmd {
                0xF0 if byte == 0 => {
                    self.queue.push(ACK);
                    let set = if translate { [0x43, 0x41, 0x3F][usize::from(self.scancode_set - 1)] } else { self.scancode_set };
                    self.queue.push(set);
                }
                0xF0 if (1..=3).contains(&byte) => {
                    self.scancode_set = byte;
                    self.queue.push(ACK);
                }
                0xF0 => self.queue.push(RESEND),
                _ => self.queue.push(ACK), // LEDs, typematic rate, make/break
            }
            return;
        }
        match byte {
            0x00 => self.queue.push(ACK),
            0xF2 => {
                self.queue.push(ACK);
                self.queue.push(0xAB);
                self.queue.push(if translate { 0x41 } else { 0x83 });
            }
            0xEE => self.queue.push(0xEE),
            0xF4 => {
                self.scan_enabled = true;
                self.queue.push(ACK);
            }
            0xED | 0xF0 | 0xF3 | 0xFC => {
                self.pending_cmd = Some(byte);
                self.queue.push(ACK);
            }
            0xF5 | 0xF6 => {
                self.reset();
                self.scan_enabled = byte == 0xF6;
                self.queue.push(ACK);
            }
            0xFF => {
                self.reset();
                self.queue.push(ACK);
                self.queue.push(POWER_ON_RESET_OK);
            }
            0xFA => self.queue.push(ACK),
            _ => self.queue.push(RESEND),
        }
    }
}

/// The PS/2 mouse's command interpreter.
#[derive(Debug, Clone)]
struct Mouse {
    queue: Ps2Queue,
    pending_cmd: Option<u8>,
    reporting: bool,
    remote: bool,
    scaling_2to1: bool,
    resolution: u8,
    sample_rate: u8,
}

impl Mouse {
    fn new() -> Self {
        Mouse {
            queue: Ps2Queue::default(),
            pending_cmd: None,
            reporting: false,
            remote: false,
            scaling_2to1: false,
            resolution: 2,
            sample_rate: 100,
        }
    }

    fn set_defaults(&mut self) {
        self.pending_cmd = None;
        self.reporting = false;
        self.remote = false;
        self.scaling_2to1 = false;
        self.resolution = 2;
        self.sample_rate = 100;
    }

    fn write(&mut self, byte: u8) {
        if let Some(cmd) = self.pending_cmd.take() {
            if cmd == 0xE8 {
                self.resolution = byte;
            } else {
                self.sample_rate = byte;
            }
            self.queue.push(ACK);
            return;
        }
        match byte {
            0xE6 | 0xE7 => {
                self.scaling_2to1 = byte == 0xE7;
                self.queue.push(ACK);
            }
            0xE8 | 0xF3 => {
                self.pending_cmd = Some(byte);
                self.queue.push(ACK);
            }
            0xE9 => {
                let status = u8::from(self.remote) << 6 | u8::from(self.reporting) << 5 | u8::from(self.scaling_2to1) << 4;
                for b in [ACK, status, self.resolution, self.sample_rate] {
                    self.queue.push(b);
                }
            }
            0xEA | 0xF0 => {
                self.remote = byte == 0xF0;
                self.queue.push(ACK);
            }
            0xEB => {
                for b in [ACK, 0x08, 0x00, 0x00] {
                    self.queue.push(b);
                }
            }
            0xEC | 0xEE => self.queue.push(ACK),
            0xF2 => {
                self.queue.push(ACK);
                self.queue.push(0x00);
            }
            0xF4 | 0xF5 => {
                self.reporting = byte == 0xF4;
                self.queue.push(ACK);
            }
            0xF6 => {
                self.set_defaults();
                self.queue.push(ACK);
            }
            0xFF => {
                self.set_defaults();
                self.queue.push(ACK);
                self.queue.push(POWER_ON_RESET_OK);
                self.queue.push(0x00);
            }
            _ => log::debug!("i8042: mouse command {byte:#04x} ignored"),
        }
    }
}

/// The controller with its keyboard and mouse.
#[derive(Debug, Clone)]
pub struct I8042 {
    /// The controller command whose data byte port 0x60 expects, or 0.
    write_cmd: u8,
    status: u8,
    mode: u8,
    outport: u8,
    pending: u8,
    kbd: Keyboard,
    mouse: Mouse,
}

impl Default for I8042 {
    fn default() -> Self {
        Self::new()
    }
}

impl I8042 {
    /// A controller as after reset: command byte 0x03 (both interrupts enabled),
    /// status 0x18, output port 0xCF (A20 on, not in reset).
    pub fn new() -> Self {
        I8042 {
            write_cmd: 0,
            status: STAT_CMD | STAT_UNLOCKED,
            mode: MODE_KBD_INT | MODE_MOUSE_INT,
            outport: OUT_RESET | OUT_A20 | OUT_ONES,
            pending: 0,
            kbd: Keyboard::new(),
            mouse: Mouse::new(),
        }
    }

    /// A machine reset (drops waiting bytes; the caller lowers IRQ1 and IRQ12 with the
    /// rest of the board).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// A guest read: offset 0 is port 0x60 (data), 4 is port 0x64 (status).
    pub fn read(&mut self, offset: u16, irqs: &mut dyn IrqSink) -> u8 {
        if offset != 0 {
            return self.status;
        }
        let (queue, flag) =
            if self.pending == PENDING_AUX { (&mut self.mouse.queue, PENDING_AUX) } else { (&mut self.kbd.queue, PENDING_KBD) };
        let Some(byte) = queue.bytes.pop_front() else {
            return queue.last;
        };
        queue.last = byte;
        let more = !queue.bytes.is_empty();
        // Reading deasserts the IRQ, then reasserts it if bytes are left.
        self.pending &= !flag;
        self.update_irq(irqs);
        if more {
            self.pending |= flag;
            self.update_irq(irqs);
        }
        byte
    }

    /// A guest write: offset 0 is port 0x60 (data), 4 is port 0x64 (command).
    /// Returns [`IoOutcome::Reset`] when the guest pulsed the reset line.
    pub fn write(&mut self, offset: u16, value: u8, irqs: &mut dyn IrqSink) -> IoOutcome {
        if offset == 0 { self.write_data(value, irqs) } else { self.write_command(value, irqs) }
    }

    /// The state SeaBIOS leaves the controller in under QEMU: command byte 0x61
    /// (translation to set 1, keyboard interrupt on, mouse disabled) and the self-test
    /// bit set. Kernels that rely on the BIOS (xv6's keyboard driver) expect set 1.
    pub fn bios_init(&mut self) {
        self.mode = MODE_KCC | MODE_DISABLE_MOUSE | MODE_KBD_INT;
        self.status |= STAT_SELFTEST;
    }

    /// The keyboard takes a typed key now: scanning is enabled, its interface is not
    /// disabled (command byte bit 4), and nothing waits in its queue — no reply to a
    /// command, no earlier key — so keys never mix with replies and none is dropped.
    pub fn keyboard_ready(&self) -> bool {
        self.kbd.scan_enabled && self.kbd.pending_cmd.is_none() && self.kbd.queue.bytes.is_empty() && self.mode & MODE_DISABLE_KBD == 0
    }

    /// A key typed on the console: its scan codes (make and break, with Shift and Ctrl
    /// around it) join the keyboard's queue, raising IRQ 1 as each byte reaches the
    /// output buffer. False, and nothing queued, unless [`I8042::keyboard_ready`].
    pub fn type_key(&mut self, stroke: &KeyStroke, irqs: &mut dyn IrqSink) -> bool {
        if !self.keyboard_ready() {
            return false;
        }
        let set1 = self.kbd.scancode_set == 1 || self.mode & MODE_KCC != 0;
        for b in stroke.scan_codes(set1) {
            self.kbd.queue.push(b);
        }
        self.after_kbd_queue(irqs);
        true
    }

    /// The A20 gate as set through the output port (0xD1, 0xDD, 0xDF).
    pub fn a20_enabled(&self) -> bool {
        self.outport & OUT_A20 != 0
    }

    fn write_command(&mut self, value: u8, irqs: &mut dyn IrqSink) -> IoOutcome {
        // 0xF0-0xFF pulse output port bits 3-0 where the command has a 0; only bit 0
        // (reset) does anything.
        let cmd = match value {
            0xF0..=0xFF if value & 1 == 0 => 0xFE,
            0xF0..=0xFF => 0xFF,
            _ => value,
        };
        match cmd {
            0x20 => self.queue_kbd(self.mode, irqs),
            0x60 | 0xD1 | 0xD2 | 0xD3 | 0xD4 => self.write_cmd = cmd,
            0xA7 => self.mode |= MODE_DISABLE_MOUSE,
            0xA8 => self.mode &= !MODE_DISABLE_MOUSE,
            0xA9 | 0xAB => self.queue_kbd(0x00, irqs),
            0xAA => {
                self.status |= STAT_SELFTEST;
                self.queue_kbd(0x55, irqs);
            }
            0xAD => {
                self.mode |= MODE_DISABLE_KBD;
                self.update_irq(irqs);
            }
            0xAE => {
                self.mode &= !MODE_DISABLE_KBD;
                self.update_irq(irqs);
            }
            0xC0 => self.queue_kbd(0x80, irqs),
            0xD0 => self.queue_kbd(self.outport, irqs),
            0xDD => self.outport &= !OUT_A20,
            0xDF => self.outport |= OUT_A20,
            0xFE => {
                log::debug!("i8042: reset pulsed (command {value:#04x})");
                return IoOutcome::Reset;
            }
            0xFF => {}
            _ => log::debug!("i8042: unsupported controller command {value:#04x}"),
        }
        IoOutcome::Continue
    }

    fn write_data(&mut self, value: u8, irqs: &mut dyn IrqSink) -> IoOutcome {
        let cmd = std::mem::take(&mut self.write_cmd);
        match cmd {
            0x60 => {
                self.mode = value;
                self.update_irq(irqs);
            }
            0xD1 => {
                self.outport = value;
                if value & OUT_RESET == 0 {
                    log::debug!("i8042: output port {value:#04x} asserts reset");
                    return IoOutcome::Reset;
                }
            }
            0xD2 => self.queue_kbd(value, irqs),
            0xD3 => self.queue_aux(|mouse| mouse.queue.push(value), irqs),
            0xD4 => self.queue_aux(|mouse| mouse.write(value), irqs),
            _ => {
                let translate = self.mode & MODE_KCC != 0;
                self.kbd.write(value, translate);
                self.after_kbd_queue(irqs);
            }
        }
        IoOutcome::Continue
    }

    fn queue_kbd(&mut self, byte: u8, irqs: &mut dyn IrqSink) {
        self.kbd.queue.push(byte);
        self.after_kbd_queue(irqs);
    }

    fn after_kbd_queue(&mut self, irqs: &mut dyn IrqSink) {
        if !self.kbd.queue.bytes.is_empty() {
            self.pending |= PENDING_KBD;
            self.update_irq(irqs);
        }
    }

    fn queue_aux(&mut self, f: impl FnOnce(&mut Mouse), irqs: &mut dyn IrqSink) {
        f(&mut self.mouse);
        if !self.mouse.queue.bytes.is_empty() {
            self.pending |= PENDING_AUX;
            self.update_irq(irqs);
        }
    }

    /// Recompute the OBF status bits and drive IRQ1 / IRQ12 (QEMU's `kbd_update_irq`).
    fn update_irq(&mut self, irqs: &mut dyn IrqSink) {
        let mut kbd_level = false;
        let mut aux_level = false;
        self.status &= !(STAT_OBF | STAT_MOUSE_OBF);
        self.outport &= !(OUT_OBF | OUT_MOUSE_OBF);
        if self.pending != 0 {
            self.status |= STAT_OBF;
            self.outport |= OUT_OBF;
            if self.pending == PENDING_AUX {
                self.status |= STAT_MOUSE_OBF;
                self.outport |= OUT_MOUSE_OBF;
                aux_level = self.mode & MODE_MOUSE_INT != 0;
            } else {
                kbd_level = self.mode & MODE_KBD_INT != 0 && self.mode & MODE_DISABLE_KBD == 0;
            }
        }
        irqs.set_irq(KBD_IRQ, kbd_level);
        irqs.set_irq(AUX_IRQ, aux_level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::{NoIrq, RecordingSink};

    const DATA: u16 = 0;
    const CMD: u16 = 4;

    fn command(kbc: &mut I8042, cmd: u8) -> IoOutcome {
        kbc.write(CMD, cmd, &mut NoIrq)
    }

    fn read_data(kbc: &mut I8042) -> u8 {
        kbc.read(DATA, &mut NoIrq)
    }

    #[test]
    fn typed_keys_in_set_1_after_the_bios_and_set_2_untranslated() {
        let mut kbc = I8042::new();
        let mut irqs = RecordingSink::default();
        kbc.bios_init();
        command(&mut kbc, 0x20);
        assert_eq!(read_data(&mut kbc), 0x61);
        let a = crate::keys::next_key(b"A").0.unwrap();
        assert!(kbc.type_key(&a, &mut irqs));
        assert!(!kbc.type_key(&a, &mut irqs), "held until the first is read");
        let got: Vec<u8> = (0..4).map(|_| kbc.read(DATA, &mut irqs)).collect();
        assert_eq!(got, [0x2A, 0x1E, 0x9E, 0xAA]);
        assert_eq!(irqs.rising_edges(KBD_IRQ), 4, "one IRQ 1 edge per byte");
        // Untranslated: set 2.
        command(&mut kbc, 0x60);
        kbc.write(DATA, 0x01, &mut irqs);
        assert!(kbc.type_key(&a, &mut irqs));
        let got: Vec<u8> = (0..6).map(|_| kbc.read(DATA, &mut irqs)).collect();
        assert_eq!(got, [0x12, 0x1C, 0xF0, 0x1C, 0xF0, 0x12]);
        // Scanning disabled (0xF5), or the interface disabled (0xAD): held.
        kbc.write(DATA, 0xF5, &mut irqs);
        read_data(&mut kbc);
        assert!(!kbc.type_key(&a, &mut irqs));
        kbc.write(DATA, 0xF4, &mut irqs);
        read_data(&mut kbc);
        command(&mut kbc, 0xAD);
        assert!(!kbc.type_key(&a, &mut irqs));
        command(&mut kbc, 0xAE);
        assert!(kbc.keyboard_ready());
    }

    #[test]
    fn reset_state_matches_qemu() {
        let mut kbc = I8042::new();
        assert_eq!(kbc.read(CMD, &mut NoIrq), 0x18);
        command(&mut kbc, 0x20);
        assert_eq!(kbc.read(CMD, &mut NoIrq), 0x19, "OBF after a read-command-byte");
        assert_eq!(read_data(&mut kbc), 0x03);
        // The output port as it was when the command came (output buffer empty).
        command(&mut kbc, 0xD0);
        assert_eq!(read_data(&mut kbc), 0xCF);
        assert!(kbc.a20_enabled());
    }

    #[test]
    fn self_test_returns_0x55_and_sets_the_status_bit() {
        let mut kbc = I8042::new();
        assert_eq!(command(&mut kbc, 0xAA), IoOutcome::Continue);
        assert_eq!(kbc.read(CMD, &mut NoIrq), 0x18 | 0x04 | 0x01);
        assert_eq!(read_data(&mut kbc), 0x55);
        assert_eq!(kbc.read(CMD, &mut NoIrq) & 0x01, 0, "output buffer drained");
        // Reading again with nothing waiting repeats the last byte.
        assert_eq!(read_data(&mut kbc), 0x55);
    }

    #[test]
    fn interface_tests_return_zero() {
        let mut kbc = I8042::new();
        command(&mut kbc, 0xAB);
        assert_eq!(read_data(&mut kbc), 0x00);
        command(&mut kbc, 0xA9);
        assert_eq!(read_data(&mut kbc), 0x00);
    }

    #[test]
    fn command_byte_write_then_read() {
        let mut kbc = I8042::new();
        command(&mut kbc, 0x60);
        kbc.write(DATA, 0x55, &mut NoIrq);
        command(&mut kbc, 0x20);
        assert_eq!(read_data(&mut kbc), 0x55);
        // 0xAD / 0xAE and 0xA7 / 0xA8 set / clear the disable bits (4 and 5).
        command(&mut kbc, 0xAE);
        command(&mut kbc, 0xA7);
        command(&mut kbc, 0x20);
        assert_eq!(read_data(&mut kbc), 0x65);
        command(&mut kbc, 0xAD);
        command(&mut kbc, 0xA8);
        command(&mut kbc, 0x20);
        assert_eq!(read_data(&mut kbc), 0x55);
    }

    #[test]
    fn reset_command_and_pulse_variants() {
        let mut kbc = I8042::new();
        assert_eq!(command(&mut kbc, 0xFE), IoOutcome::Reset);
        assert_eq!(command(&mut kbc, 0xF0), IoOutcome::Reset, "bit 0 pulsed");
        assert_eq!(command(&mut kbc, 0xFC), IoOutcome::Reset);
        assert_eq!(command(&mut kbc, 0xFF), IoOutcome::Continue);
        assert_eq!(command(&mut kbc, 0xFD), IoOutcome::Continue, "bit 0 not pulsed");
    }

    #[test]
    fn output_port_write_with_bit0_clear_resets() {
        let mut kbc = I8042::new();
        command(&mut kbc, 0xD1);
        assert_eq!(kbc.write(DATA, 0xDF, &mut NoIrq), IoOutcome::Continue);
        command(&mut kbc, 0xD1);
        assert_eq!(kbc.write(DATA, 0xDD, &mut NoIrq), IoOutcome::Continue);
        assert!(!kbc.a20_enabled());
        command(&mut kbc, 0xD1);
        assert_eq!(kbc.write(DATA, 0xDE, &mut NoIrq), IoOutcome::Reset);
        // A20 commands.
        command(&mut kbc, 0xDD);
        assert!(!kbc.a20_enabled());
        command(&mut kbc, 0xDF);
        assert!(kbc.a20_enabled());
    }

    #[test]
    fn keyboard_reset_and_identify() {
        let mut kbc = I8042::new();
        kbc.write(DATA, 0xFF, &mut NoIrq);
        assert_eq!(read_data(&mut kbc), 0xFA);
        assert_eq!(read_data(&mut kbc), 0xAA);
        kbc.write(DATA, 0xF2, &mut NoIrq);
        assert_eq!([read_data(&mut kbc), read_data(&mut kbc), read_data(&mut kbc)], [0xFA, 0xAB, 0x83]);
        // With translation (command byte bit 6) the ID is 0x41.
        command(&mut kbc, 0x60);
        kbc.write(DATA, 0x43, &mut NoIrq);
        kbc.write(DATA, 0xF2, &mut NoIrq);
        assert_eq!([read_data(&mut kbc), read_data(&mut kbc), read_data(&mut kbc)], [0xFA, 0xAB, 0x41]);
        // LEDs: ACK for the command and for its parameter.
        kbc.write(DATA, 0xED, &mut NoIrq);
        kbc.write(DATA, 0x07, &mut NoIrq);
        assert_eq!([read_data(&mut kbc), read_data(&mut kbc)], [0xFA, 0xFA]);
        kbc.write(DATA, 0xEE, &mut NoIrq);
        assert_eq!(read_data(&mut kbc), 0xEE);
        kbc.write(DATA, 0x42, &mut NoIrq);
        assert_eq!(read_data(&mut kbc), 0xFE);
    }

    #[test]
    fn keyboard_bytes_raise_irq1_once_per_byte() {
        let mut kbc = I8042::new();
        let mut irqs = RecordingSink::default();
        kbc.write(DATA, 0xFF, &mut irqs); // ACK + 0xAA
        assert_eq!(irqs.rising_edges(KBD_IRQ), 1);
        kbc.read(DATA, &mut irqs);
        assert_eq!(irqs.rising_edges(KBD_IRQ), 2, "the second byte is a new edge");
        kbc.read(DATA, &mut irqs);
        assert!(!irqs.level(KBD_IRQ));
        assert_eq!(irqs.rising_edges(AUX_IRQ), 0);
        // With the keyboard interrupt disabled in the command byte: OBF but no IRQ.
        command(&mut kbc, 0x60);
        kbc.write(DATA, 0x00, &mut irqs);
        kbc.write(CMD, 0xAA, &mut irqs);
        assert_eq!(irqs.rising_edges(KBD_IRQ), 2);
        assert_eq!(kbc.read(CMD, &mut irqs) & 0x01, 0x01);
    }

    #[test]
    fn mouse_bytes_come_through_the_aux_path() {
        let mut kbc = I8042::new();
        let mut irqs = RecordingSink::default();
        // Linux's i8042_check_aux: loop a byte back through the mouse output buffer.
        kbc.write(CMD, 0xD3, &mut irqs);
        kbc.write(DATA, 0x5A, &mut irqs);
        assert_eq!(kbc.read(CMD, &mut irqs), 0x18 | 0x20 | 0x01);
        assert_eq!(irqs.rising_edges(AUX_IRQ), 1);
        assert_eq!(kbc.read(DATA, &mut irqs), 0x5A);
        assert!(!irqs.level(AUX_IRQ));
        // Mouse reset via 0xD4.
        kbc.write(CMD, 0xD4, &mut irqs);
        kbc.write(DATA, 0xFF, &mut irqs);
        let reply: Vec<u8> = (0..3).map(|_| kbc.read(DATA, &mut irqs)).collect();
        assert_eq!(reply, [0xFA, 0xAA, 0x00]);
        kbc.write(CMD, 0xD4, &mut irqs);
        kbc.write(DATA, 0xF2, &mut irqs);
        assert_eq!([kbc.read(DATA, &mut irqs), kbc.read(DATA, &mut irqs)], [0xFA, 0x00]);
    }

    #[test]
    fn keyboard_bytes_take_priority_over_mouse_bytes() {
        let mut kbc = I8042::new();
        kbc.write(CMD, 0xD3, &mut NoIrq);
        kbc.write(DATA, 0x11, &mut NoIrq);
        kbc.write(CMD, 0xD2, &mut NoIrq);
        kbc.write(DATA, 0x22, &mut NoIrq);
        assert_eq!(kbc.read(CMD, &mut NoIrq) & 0x21, 0x01);
        assert_eq!(read_data(&mut kbc), 0x22);
        assert_eq!(kbc.read(CMD, &mut NoIrq) & 0x21, 0x21);
        assert_eq!(read_data(&mut kbc), 0x11);
    }
}
