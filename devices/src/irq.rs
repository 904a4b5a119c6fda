//! Interrupt request lines between devices and the interrupt controller.
//!
//! A device never owns a reference to the PIC. Instead, every device method that can
//! change one of the device's IRQ outputs takes a `&mut dyn IrqSink` and drives the line
//! through it, with levels (`true` = asserted). The [`crate::Platform`] passes a sink
//! that forwards to the [`crate::PicPair`] (and counts edges); unit tests pass a
//! [`RecordingSink`] and look at the exact sequence of levels.

/// Where a device drives its interrupt request lines.
///
/// `irq` is the ISA line number (0-15). The sink receives levels, not events: an edge
/// is a `false` → `true` transition, and driving the same level twice is harmless, as on
/// a wire (the edge-triggered PIC only latches on the transition).
pub trait IrqSink {
    /// Drive ISA interrupt line `irq` to `level`.
    fn set_irq(&mut self, irq: u8, level: bool);
}

/// Drive `irq` high and then low again: one rising edge, for sources that signal
/// events rather than hold a level (the vm-superio UART's `Trigger`).
pub fn pulse(sink: &mut dyn IrqSink, irq: u8) {
    sink.set_irq(irq, true);
    sink.set_irq(irq, false);
}

/// An [`IrqSink`] that records every call, in order. For tests, and for whoever wants
/// to see what a device did with its lines.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecordingSink {
    /// Every `(irq, level)` the device drove, oldest first.
    pub calls: Vec<(u8, bool)>,
}

impl RecordingSink {
    /// Number of rising edges seen on `irq`, assuming the line started low.
    pub fn rising_edges(&self, irq: u8) -> usize {
        let mut level = false;
        let mut edges = 0;
        for &(line, new_level) in &self.calls {
            if line == irq {
                if new_level && !level {
                    edges += 1;
                }
                level = new_level;
            }
        }
        edges
    }

    /// The last level driven on `irq` (`false` if it was never driven).
    pub fn level(&self, irq: u8) -> bool {
        self.calls.iter().rev().find(|&&(line, _)| line == irq).is_some_and(|&(_, level)| level)
    }
}

impl IrqSink for RecordingSink {
    fn set_irq(&mut self, irq: u8, level: bool) {
        self.calls.push((irq, level));
    }
}

/// An [`IrqSink`] that drops everything (for device accesses that cannot raise
/// interrupts, or tests that do not care).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoIrq;

impl IrqSink for NoIrq {
    fn set_irq(&mut self, _irq: u8, _level: bool) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_sink_counts_edges_not_levels() {
        let mut sink = RecordingSink::default();
        sink.set_irq(3, true);
        sink.set_irq(3, true); // same level: no new edge
        sink.set_irq(4, true);
        sink.set_irq(3, false);
        pulse(&mut sink, 3);
        assert_eq!(sink.rising_edges(3), 2);
        assert_eq!(sink.rising_edges(4), 1);
        assert!(!sink.level(3));
        assert!(sink.level(4));
        assert!(!sink.level(5));
    }
}
