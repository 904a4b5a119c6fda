//! The 16550A UART (COM1: ports 0x3F8-0x3FF, IRQ4), built on `vm_superio::Serial`.
//!
//! vm-superio owns the registers and writes every transmitted byte to the output
//! writer, flushing it byte by byte, so nothing the guest sent is lost if the monitor
//! exits right after. Its interrupt output is a push button (`Trigger`): it fires when
//! a THR-empty or received-data interrupt becomes pending in IIR. This wrapper turns
//! each press into a rising edge on the UART's IRQ line (high then low), which is what
//! the edge-triggered PIC latches. (QEMU holds IRQ4 high while IIR shows a pending
//! interrupt instead; the PIC sees an edge at the same moments in the common cases.)
//!
//! Two registers are adjusted to read as QEMU's `hw/char/serial.c` does: LCR resets to
//! 0 (vm-superio: 0x03), and IIR shows the FIFO-enabled bits (0xC0) only while FCR bit 0
//! is set (vm-superio always shows them; QEMU and a real 16550A start with FIFOs off).

use std::cell::Cell;
use std::convert::Infallible;
use std::io::{self, Write};

use vm_superio::serial::{Error as SerialError, NoEvents};
use vm_superio::{Serial, Trigger};

use crate::irq::{IrqSink, pulse};

/// COM1's first port.
pub const COM1_BASE: u16 = 0x3F8;

/// COM1's ISA interrupt line.
pub const COM1_IRQ: u8 = 4;

// Register offsets this wrapper looks at.
const IIR: u8 = 2;
const FCR: u8 = 2;
const LCR: u8 = 3;
const MCR: u8 = 4;
const IIR_FIFO_BITS: u8 = 0xC0;
/// IER: received-data interrupt enable.
const IER_RDI: u8 = 0x01;
/// FCR: clear the receive FIFO.
const FCR_CLEAR_RECEIVER: u8 = 0x02;
/// LSR register and its data-ready bit.
const LSR: u8 = 5;
const LSR_DR: u8 = 0x01;

/// The vm-superio `Trigger`: counts presses until the wrapper collects them.
#[derive(Debug, Default)]
pub struct EdgeTrigger {
    presses: Cell<u32>,
}

impl EdgeTrigger {
    fn take(&self) -> u32 {
        self.presses.take()
    }
}

impl Trigger for EdgeTrigger {
    type E = Infallible;

    fn trigger(&self) -> Result<(), Infallible> {
        self.presses.set(self.presses.get().saturating_add(1));
        Ok(())
    }
}

/// A 16550A whose transmitted bytes go to `W` and whose interrupt drives one ISA line.
#[derive(Debug)]
pub struct Uart<W: Write> {
    serial: Serial<EdgeTrigger, NoEvents, W>,
    irq: u8,
    /// FCR bit 0, which vm-superio ignores.
    fifo_enabled: bool,
    /// The last IER value written (vm-superio's cannot be read while DLAB is set).
    ier: u8,
    bytes_out: u64,
    /// Input the guest cleared from the receive FIFO unread (see [`Uart::take_returned_input`]).
    returned: Vec<u8>,
}

impl<W: Write> Uart<W> {
    /// A UART after reset (no interrupts enabled, 8N1, 9600 baud divisor) that writes the
    /// guest's output to `out` and raises interrupts on ISA line `irq`.
    pub fn new(irq: u8, out: W) -> Self {
        let mut serial = Serial::new(EdgeTrigger::default(), out);
        // QEMU resets LCR to 0; storing it has no other effect in vm-superio.
        serial.write(LCR, 0).unwrap_or_else(|err| unreachable!("an LCR write cannot fail: {err:?}"));
        Uart { serial, irq, fifo_enabled: false, ier: 0, bytes_out: 0, returned: Vec::new() }
    }

    /// A guest read of register `offset` (0-7).
    pub fn read(&mut self, offset: u16, irqs: &mut dyn IrqSink) -> u8 {
        // IER, for IIR below (a read without side effects while DLAB is clear).
        let ier = if self.serial.read(LCR) & 0x80 == 0 { self.serial.read(1) } else { 0x0F };
        let mut value = self.serial.read(offset as u8);
        if offset == u16::from(IIR) {
            if !self.fifo_enabled {
                value &= !IIR_FIFO_BITS;
            }
            // vm-superio keeps a THR-empty interrupt pending after the guest disables
            // it in IER; a 16550 (and QEMU) report only enabled interrupts.
            let enable_bit = match value & 0x0F {
                0x02 => 0x02,
                0x04 | 0x0C => 0x01,
                0x06 => 0x04,
                0x00 => 0x08,
                _ => 0xFF,
            };
            if ier & enable_bit == 0 {
                value = (value & IIR_FIFO_BITS) | 0x01;
            }
        }
        self.deliver(irqs);
        value
    }

    /// A guest write of register `offset` (0-7). A failure of the output writer is
    /// logged and the byte is lost (the guest cannot be told; as on hardware, the
    /// THR-empty interrupt still comes).
    pub fn write(&mut self, offset: u16, value: u8, irqs: &mut dyn IrqSink) {
        // For the byte count: a THR write (DLAB clear in LCR) outside loopback mode
        // (MCR bit 4). Reading LCR and MCR has no side effects in vm-superio.
        let is_data = offset == 0 && self.serial.read(LCR) & 0x80 == 0;
        let is_loopback = self.serial.read(MCR) & 0x10 != 0;
        if offset == u16::from(FCR) {
            self.fifo_enabled = value & 0x01 != 0;
            if value & FCR_CLEAR_RECEIVER != 0 {
                // vm-superio ignores FCR: empty its receive FIFO as a 16550A does. Bytes
                // from the line (not looped back) go back to the console: a driver that
                // probes the UART (Linux's autoconfig sets every IER bit for a moment,
                // then clears the FIFO) must not eat a script piped in before the guest
                // reads it.
                while self.serial.read(LSR) & LSR_DR != 0 {
                    let b = self.serial.read(0);
                    if !is_loopback {
                        self.returned.push(b);
                    }
                }
            }
        }
        if offset == 1 && self.serial.read(LCR) & 0x80 == 0 {
            self.ier = value & 0x0F;
        }
        match self.serial.write(offset as u8, value) {
            Ok(()) => {
                if is_data && !is_loopback {
                    self.bytes_out += 1;
                }
            }
            Err(SerialError::IOError(err)) => log::warn!("serial output lost a byte: {err}"),
            Err(err) => log::warn!("serial write of register {offset}: {err:?}"),
        }
        self.deliver(irqs);
    }

    /// Queue bytes as received from the line, for the guest to read from RBR (raises
    /// the received-data interrupt). Returns how many fitted in the 64-byte FIFO; the
    /// rest must be offered again later.
    ///
    /// Nothing is taken while the received-data interrupt is disabled in IER: a driver
    /// enables it when someone opens the port (Linux: when the tty is opened) and clears
    /// the FIFO before that, so input that arrived earlier — a script piped in before
    /// the guest booted — would be lost. It waits instead. (A guest that only polls LSR
    /// therefore gets no input.)
    pub fn enqueue_input(&mut self, bytes: &[u8], irqs: &mut dyn IrqSink) -> usize {
        if self.ier & IER_RDI == 0 {
            return 0;
        }
        let taken = match self.serial.enqueue_raw_bytes(bytes) {
            Ok(n) => n,
            Err(SerialError::FullFifo) => 0,
            Err(err) => {
                log::warn!("serial input: {err:?}");
                0
            }
        };
        self.deliver(irqs);
        taken
    }

    /// Input bytes the guest cleared from the receive FIFO without reading them (FCR), in
    /// order: the console offers them again, first.
    pub fn take_returned_input(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.returned)
    }

    /// Flush the output writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.serial.writer_mut().flush()
    }

    /// Bytes the guest transmitted so far (not counting loopback mode).
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out
    }

    /// The output writer.
    pub fn writer(&self) -> &W {
        self.serial.writer()
    }

    /// Take the output writer back (the UART is gone).
    pub fn into_writer(self) -> W {
        self.serial.into_writer()
    }

    fn deliver(&mut self, irqs: &mut dyn IrqSink) {
        if self.serial.interrupt_evt().take() > 0 {
            pulse(irqs, self.irq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::RecordingSink;

    // 16550A register offsets and bits (National Semiconductor PC16550D datasheet).
    const THR: u16 = 0;
    const IER: u16 = 1;
    const IIR: u16 = 2;
    const FCR: u16 = 2;
    const LCR: u16 = 3;
    const MCR: u16 = 4;
    const LSR: u16 = 5;
    const SCR: u16 = 7;
    const LSR_DR: u8 = 0x01;
    const LSR_THRE: u8 = 0x20;
    const LSR_TEMT: u8 = 0x40;
    const IER_RDI: u8 = 0x01;
    const IER_THRI: u8 = 0x02;
    const IIR_NO_INT: u8 = 0x01;
    const IIR_THRI: u8 = 0x02;
    const IIR_RDI: u8 = 0x04;
    const IIR_FIFO: u8 = 0xC0;

    fn uart() -> Uart<Vec<u8>> {
        Uart::new(COM1_IRQ, Vec::new())
    }

    #[test]
    fn transmitted_bytes_reach_the_writer() {
        let mut uart = uart();
        let mut irqs = RecordingSink::default();
        for &b in b"ok 1\n" {
            // Polled transmit as a kernel console does it: wait for THRE, write THR.
            assert_ne!(uart.read(LSR, &mut irqs) & LSR_THRE, 0);
            uart.write(THR, b, &mut irqs);
        }
        assert_eq!(uart.writer().as_slice(), b"ok 1\n");
        assert_eq!(uart.bytes_out(), 5);
        assert!(irqs.calls.is_empty(), "no interrupt without IER");
    }

    #[test]
    fn reset_registers_read_as_in_qemu() {
        let mut uart = uart();
        let mut irqs = RecordingSink::default();
        assert_eq!(uart.read(LSR, &mut irqs), LSR_THRE | LSR_TEMT);
        assert_eq!(uart.read(IIR, &mut irqs), IIR_NO_INT, "FIFOs off after reset");
        assert_eq!(uart.read(LCR, &mut irqs), 0x00);
        assert_eq!(uart.read(MCR, &mut irqs), 0x08); // OUT2
        assert_eq!(uart.read(IER, &mut irqs), 0x00);
        assert_eq!(uart.read(6, &mut irqs), 0xB0); // MSR: DCD, DSR, CTS
    }

    #[test]
    fn fcr_fifo_enable_shows_in_iir() {
        let mut uart = uart();
        let mut irqs = RecordingSink::default();
        uart.write(FCR, 0x07, &mut irqs); // enable and clear FIFOs
        assert_eq!(uart.read(IIR, &mut irqs), IIR_FIFO | IIR_NO_INT);
        uart.write(FCR, 0x00, &mut irqs);
        assert_eq!(uart.read(IIR, &mut irqs), IIR_NO_INT);
    }

    #[test]
    fn divisor_latch_writes_do_not_transmit() {
        let mut uart = uart();
        let mut irqs = RecordingSink::default();
        uart.write(LCR, 0x83, &mut irqs); // DLAB
        uart.write(THR, 0x01, &mut irqs); // DLL: 115200 baud
        uart.write(IER, 0x00, &mut irqs); // DLM
        assert_eq!(uart.read(THR, &mut irqs), 0x01);
        uart.write(LCR, 0x03, &mut irqs);
        assert!(uart.writer().is_empty());
        assert_eq!(uart.bytes_out(), 0);
        uart.write(SCR, 0x5A, &mut irqs);
        assert_eq!(uart.read(SCR, &mut irqs), 0x5A);
    }

    #[test]
    fn thre_interrupt_on_enable_and_after_each_transmit() {
        let mut uart = uart();
        let mut irqs = RecordingSink::default();
        // Enabling THRI with THR already empty raises the interrupt at once.
        uart.write(IER, IER_THRI, &mut irqs);
        assert_eq!(irqs.rising_edges(COM1_IRQ), 1);
        assert!(!irqs.level(COM1_IRQ), "a pulse: the line is low again");
        assert_eq!(uart.read(IIR, &mut irqs), IIR_THRI);
        // Reading IIR acknowledged it.
        assert_eq!(uart.read(IIR, &mut irqs), IIR_NO_INT);
        uart.write(THR, b'x', &mut irqs);
        assert_eq!(irqs.rising_edges(COM1_IRQ), 2);
        uart.write(FCR, 0x01, &mut irqs);
        assert_eq!(uart.read(IIR, &mut irqs), IIR_FIFO | IIR_THRI);
    }

    #[test]
    fn received_bytes_set_data_ready_and_interrupt() {
        let mut uart = uart();
        let mut irqs = RecordingSink::default();
        assert_eq!(uart.enqueue_input(b"hi", &mut irqs), 0, "nobody listens before RDI is enabled: the input waits");
        assert_eq!(uart.read(LSR, &mut irqs) & LSR_DR, 0);
        uart.write(IER, IER_RDI, &mut irqs);
        assert!(irqs.calls.is_empty(), "no data yet");
        assert_eq!(uart.enqueue_input(b"hi", &mut irqs), 2);
        assert_eq!(irqs.rising_edges(COM1_IRQ), 1, "received data with RDI enabled");
        assert_eq!(uart.read(LSR, &mut irqs) & LSR_DR, LSR_DR);
        assert_eq!(uart.read(IIR, &mut irqs), IIR_RDI);
        assert_eq!(uart.read(THR, &mut irqs), b'h');
        assert_eq!(uart.read(THR, &mut irqs), b'i');
        assert_eq!(uart.read(LSR, &mut irqs) & LSR_DR, 0);
        // The FIFO holds 64 bytes.
        assert_eq!(uart.enqueue_input(&[0u8; 100], &mut irqs), 64);
        assert_eq!(uart.enqueue_input(b"z", &mut irqs), 0);
    }

    /// Linux's 8250 driver probes the UART by setting every IER bit for a moment and
    /// later clears the FIFO: input taken in that moment goes back to the console, in
    /// order, and a byte the guest read or looped back does not.
    #[test]
    fn input_cleared_unread_is_returned() {
        let mut uart = uart();
        let mut irqs = RecordingSink::default();
        uart.write(IER, 0x0F, &mut irqs);
        assert_eq!(uart.enqueue_input(b"echo hi\n", &mut irqs), 8);
        uart.write(IER, 0, &mut irqs);
        assert_eq!(uart.read(THR, &mut irqs), b'e', "one byte read by the guest");
        uart.write(FCR, 0x07, &mut irqs);
        assert_eq!(uart.read(LSR, &mut irqs) & LSR_DR, 0, "the FIFO is empty");
        assert_eq!(uart.take_returned_input(), b"cho hi\n");
        assert!(uart.take_returned_input().is_empty(), "once");
        uart.write(MCR, 0x10, &mut irqs); // loopback
        uart.write(THR, b'L', &mut irqs);
        assert_eq!(uart.read(LSR, &mut irqs) & LSR_DR, LSR_DR);
        uart.write(FCR, 0x03, &mut irqs);
        assert!(uart.take_returned_input().is_empty(), "looped-back bytes are the guest's own");
    }

    #[test]
    fn loopback_mode_echoes_without_output() {
        let mut uart = uart();
        let mut irqs = RecordingSink::default();
        uart.write(MCR, 0x10, &mut irqs);
        uart.write(THR, 0xAE, &mut irqs);
        assert_eq!(uart.read(THR, &mut irqs), 0xAE);
        assert!(uart.writer().is_empty());
        assert_eq!(uart.bytes_out(), 0);
    }

    #[test]
    fn writer_errors_lose_the_byte_but_not_the_interrupt() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("closed"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut uart = Uart::new(COM1_IRQ, Broken);
        let mut irqs = RecordingSink::default();
        uart.write(IER, IER_THRI, &mut irqs);
        uart.read(IIR, &mut irqs);
        uart.write(THR, b'a', &mut irqs);
        assert_eq!(irqs.rising_edges(COM1_IRQ), 2);
        assert_eq!(uart.bytes_out(), 0);
    }
}
