//! The local APIC (xAPIC) of the one virtual CPU, memory-mapped at 0xFEE00000.
//!
//! The CPU takes its interrupts from here: fixed interrupts in the IRR (from the timer,
//! self-IPIs and the I/O APIC's messages) by priority, and the 8259A's INTR through LINT0
//! when LINT0 is in ExtINT mode (virtual-wire mode, how the board comes up) or the APIC is
//! globally disabled. The model follows QEMU's `hw/intc/apic.c` (TCG), because guest tests
//! compare bt86 with QEMU:
//! - Reset: ID 0, version 0x00050014 (6 LVT entries), TPR 0, SVR 0xFF (software
//!   disabled), DFR all ones, LDR 0, every LVT entry masked except LINT0 = 0x700 (ExtINT,
//!   as the BIOS leaves the bootstrap processor), timer stopped, divide register 0.
//! - Registers are 32-bit accesses (narrower reads give 0, narrower writes are dropped,
//!   as in QEMU); an access to an offset with no register sets ESR bit 7 (illegal
//!   register address); ESR writes are ignored. LVT entries, SVR (9 bits) and the ICR keep
//!   what is written, except the ICR's delivery-status bit, which always reads 0 (an IPI is
//!   delivered at once).
//! - Priorities as the SDM says: PPR is TPR or the class of the highest in-service vector;
//!   an IRR vector is delivered only when its class is above PPR's. The PIC's ExtINT
//!   request goes before the IRR (QEMU: "ExtINT interrupts ignore the priority"). With SVR
//!   bit 8 clear nothing in the IRR is delivered (requests still collect there, as in
//!   QEMU) but the PIC still is.
//! - EOI clears the highest in-service bit; when that vector was level-triggered (TMR) it
//!   is broadcast to the I/O APIC ([`LocalApic::write`] returns it).
//! - The timer counts at 1 GHz (QEMU's APIC bus: one count per nanosecond of virtual time)
//!   divided by 1–128, in one-shot or periodic mode (LVT bit 17); the current count is
//!   computed from the time the initial count was written, as QEMU does, so changing the
//!   divide register while counting rescales the elapsed time. Periods that elapse unseen
//!   give one interrupt (the IRR holds one request per vector).
//! - ICR: fixed, lowest-priority and NMI IPIs to this APIC (by physical ID, logical
//!   flat/cluster destination, broadcast, or the self / all-including-self shorthands);
//!   INIT, SIPI and IPIs for other processors are accepted and ignored (there are none).
//! - IA32_APIC_BASE's global enable bit ([`LocalApic::set_global_enable`]): clearing it
//!   resets the APIC and lets the PIC reach the CPU directly; setting it again starts from
//!   the reset state. The registers stay at 0xFEE00000 whatever the MSR's base says (QEMU
//!   does not move them either).

/// Guest-physical base address of the registers.
pub const LAPIC_BASE: u64 = 0xFEE0_0000;
/// Size of the register page.
pub const LAPIC_LEN: u64 = 0x1000;
/// The version register: version 0x14, 6 LVT entries (QEMU's value).
pub const LAPIC_VERSION: u32 = 0x0005_0014;

/// LVT entries in register order (0x320 ... 0x370).
const LVT_TIMER: usize = 0;
const LVT_LINT0: usize = 3;
const LVT_COUNT: usize = 6;

const LVT_MASKED: u32 = 1 << 16;
const LVT_LEVEL: u32 = 1 << 15;
const LVT_TIMER_PERIODIC: u32 = 1 << 17;
const SVR_ENABLE: u32 = 1 << 8;
const ICR_DELIVERY_STATUS: u32 = 1 << 12;
/// ESR: illegal register address.
const ESR_ILLEGAL_ADDRESS: u32 = 1 << 7;

/// Delivery modes (LVT, ICR and I/O APIC redirection entries, bits 8-10).
pub mod delivery {
    /// The vector, as a normal interrupt.
    pub const FIXED: u8 = 0;
    /// The vector, to the lowest-priority processor of the destination (here: this one).
    pub const LOWEST_PRIORITY: u8 = 1;
    /// System management interrupt (not modelled: dropped).
    pub const SMI: u8 = 2;
    /// Non-maskable interrupt (vector 2).
    pub const NMI: u8 = 4;
    /// INIT (there are no other processors to start).
    pub const INIT: u8 = 5;
    /// Start-up IPI.
    pub const STARTUP: u8 = 6;
    /// External interrupt: the 8259A supplies the vector.
    pub const EXTINT: u8 = 7;
}

/// An interrupt message on the APIC bus: what an I/O APIC redirection entry or an IPI
/// sends to the local APICs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApicMessage {
    /// Destination: an APIC ID (physical mode; 0xFF is everyone) or a logical mask.
    pub dest: u8,
    /// Logical destination mode.
    pub logical: bool,
    /// One of the [`delivery`] modes.
    pub delivery: u8,
    /// The vector (fixed and lowest-priority).
    pub vector: u8,
    /// Level-triggered (the vector's TMR bit is set, and its EOI is broadcast).
    pub level: bool,
}

/// Where interrupt messages go: the local APIC(s). The I/O APIC sends through this, so
/// it is tested with a recorder and no local APIC.
pub trait ApicBus {
    /// Deliver one message.
    fn deliver(&mut self, msg: ApicMessage);
}

/// What the CPU's interrupt-acknowledge cycle found ([`LocalApic::acknowledge`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acknowledge {
    /// A vector from the IRR (now in service).
    Vector(u8),
    /// The 8259A's request (through LINT0 or with the APIC disabled): run its INTA cycle.
    Pic,
    /// The request went away or lost to a priority change: the spurious vector.
    Spurious(u8),
}

/// A 256-bit register (IRR, ISR, TMR) as 8 words.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Bits256([u32; 8]);

impl Bits256 {
    fn set(&mut self, v: u8) {
        self.0[usize::from(v >> 5)] |= 1 << (v & 31);
    }
    fn clear(&mut self, v: u8) {
        self.0[usize::from(v >> 5)] &= !(1 << (v & 31));
    }
    fn get(&self, v: u8) -> bool {
        self.0[usize::from(v >> 5)] & (1 << (v & 31)) != 0
    }
    fn highest(&self) -> Option<u8> {
        (0..8).rev().find(|&i| self.0[i] != 0).map(|i| (i as u32 * 32 + 31 - self.0[i].leading_zeros()) as u8)
    }
}

/// The local APIC.
#[derive(Debug, Clone)]
pub struct LocalApic {
    /// IA32_APIC_BASE bit 11.
    global_enable: bool,
    id: u8,
    tpr: u8,
    svr: u32,
    ldr: u8,
    /// DFR's model nibble (0xF flat, 0 cluster).
    dfr_model: u8,
    isr: Bits256,
    tmr: Bits256,
    irr: Bits256,
    lvt: [u32; LVT_COUNT],
    esr: u32,
    icr: [u32; 2],
    divide: u32,
    count_shift: u32,
    initial_count: u32,
    load_ns: u64,
    /// When the timer next fires (None: stopped or masked).
    next_ns: Option<u64>,
    nmi_pending: bool,
}

impl Default for LocalApic {
    fn default() -> Self {
        LocalApic::new()
    }
}

impl LocalApic {
    /// The bootstrap processor's APIC after reset (see the module docs).
    pub fn new() -> LocalApic {
        let mut lvt = [LVT_MASKED; LVT_COUNT];
        lvt[LVT_LINT0] = u32::from(delivery::EXTINT) << 8;
        LocalApic {
            global_enable: true,
            id: 0,
            tpr: 0,
            svr: 0xFF,
            ldr: 0,
            dfr_model: 0xF,
            isr: Bits256::default(),
            tmr: Bits256::default(),
            irr: Bits256::default(),
            lvt,
            esr: 0,
            icr: [0; 2],
            divide: 0,
            count_shift: 0,
            initial_count: 0,
            load_ns: 0,
            next_ns: None,
            nmi_pending: false,
        }
    }

    /// IA32_APIC_BASE's enable bit was written (see the module docs).
    pub fn set_global_enable(&mut self, enable: bool) {
        if enable != self.global_enable {
            *self = LocalApic { global_enable: enable, ..LocalApic::new() };
        }
    }

    /// IA32_APIC_BASE bit 11.
    pub fn globally_enabled(&self) -> bool {
        self.global_enable
    }

    fn software_enabled(&self) -> bool {
        self.svr & SVR_ENABLE != 0
    }

    /// The 8259A's INTR reaches the CPU: the APIC is off, or LINT0 is an unmasked ExtINT.
    fn passes_pic(&self) -> bool {
        let lint0 = self.lvt[LVT_LINT0];
        !self.global_enable || (lint0 & LVT_MASKED == 0 && (lint0 >> 8) & 7 == u32::from(delivery::EXTINT))
    }

    fn ppr(&self) -> u8 {
        let isr_class = self.isr.highest().unwrap_or(0) >> 4;
        if self.tpr >> 4 >= isr_class { self.tpr } else { isr_class << 4 }
    }

    /// QEMU's `apic_irq_pending`: Ok(vector) deliverable, Err(()) a request PPR blocks,
    /// Ok(None) nothing.
    fn irr_pending(&self) -> Result<Option<u8>, ()> {
        if !self.software_enabled() || !self.global_enable {
            return Ok(None);
        }
        let Some(v) = self.irr.highest() else {
            return Ok(None);
        };
        let ppr = self.ppr();
        if ppr != 0 && v & 0xF0 <= ppr & 0xF0 {
            return Err(());
        }
        Ok(Some(v))
    }

    /// The CPU's INTR input: something to deliver when IF allows. `pic_output` is the
    /// 8259A's INTR.
    pub fn interrupt_pending(&self, pic_output: bool) -> bool {
        matches!(self.irr_pending(), Ok(Some(_))) || (pic_output && self.passes_pic())
    }

    /// The interrupt-acknowledge cycle (call when [`LocalApic::interrupt_pending`] said
    /// yes and the CPU takes it).
    pub fn acknowledge(&mut self, pic_output: bool) -> Acknowledge {
        // As QEMU's `cpu_get_pic_interrupt`: ExtINT first, then the IRR, and with
        // nothing in either the PIC's INTA cycle (its spurious IRQ7) if it is connected.
        if !(pic_output && self.passes_pic()) {
            match self.irr_pending() {
                Ok(Some(v)) => {
                    self.irr.clear(v);
                    self.isr.set(v);
                    return Acknowledge::Vector(v);
                }
                Err(()) => return Acknowledge::Spurious(self.svr as u8),
                Ok(None) => {}
            }
        }
        if self.passes_pic() { Acknowledge::Pic } else { Acknowledge::Spurious(self.svr as u8) }
    }

    /// An NMI is waiting (from the ICR, an I/O APIC entry or LINT1); taking it clears it.
    pub fn take_nmi(&mut self) -> bool {
        std::mem::take(&mut self.nmi_pending)
    }

    /// An NMI is waiting.
    pub fn nmi_pending(&self) -> bool {
        self.nmi_pending
    }

    fn set_irq(&mut self, vector: u8, level: bool) {
        self.irr.set(vector);
        if level {
            self.tmr.set(vector);
        } else {
            self.tmr.clear(vector);
        }
    }

    /// QEMU's `apic_local_deliver`: what an LVT entry does when its source fires.
    fn local_deliver(&mut self, entry: usize) {
        let lvt = self.lvt[entry];
        if lvt & LVT_MASKED != 0 || !self.global_enable {
            return;
        }
        match ((lvt >> 8) & 7) as u8 {
            delivery::NMI => self.nmi_pending = true,
            delivery::FIXED => {
                let lint = entry == LVT_LINT0 || entry == LVT_LINT0 + 1;
                let level = lint && lvt & LVT_LEVEL != 0;
                self.set_irq(lvt as u8, level);
            }
            _ => {}
        }
    }

    /// Is this APIC a destination of `dest` in the given mode?
    fn is_destination(&self, dest: u8, logical: bool) -> bool {
        if !logical {
            return dest == 0xFF || dest == self.id;
        }
        match self.dfr_model {
            0xF => dest & self.ldr != 0,
            0x0 => dest & 0xF0 == self.ldr & 0xF0 && dest & self.ldr & 0x0F != 0,
            _ => false,
        }
    }

    /// An interrupt message for the processors in `msg.dest` (QEMU's `apic_bus_deliver`
    /// with this APIC the only one on the bus).
    fn accept(&mut self, msg: ApicMessage, to_self: bool) {
        if !to_self {
            return;
        }
        match msg.delivery {
            delivery::FIXED | delivery::LOWEST_PRIORITY => self.set_irq(msg.vector, msg.level),
            delivery::NMI => self.nmi_pending = true,
            mode => log::debug!("local APIC: message with delivery mode {mode} ignored"),
        }
    }

    /// The ICR's low word was written: send the IPI.
    fn send_ipi(&mut self) {
        let low = self.icr[0];
        let dest = (self.icr[1] >> 24) as u8;
        let logical = low & (1 << 11) != 0;
        let mode = ((low >> 8) & 7) as u8;
        let to_self = match (low >> 18) & 3 {
            0 => self.is_destination(dest, logical),
            1 | 2 => true,
            _ => false,
        };
        if matches!(mode, delivery::INIT | delivery::STARTUP) {
            // No other processor to start; this one is running (an INIT to itself would
            // reset it, which no guest of bt86's asks for).
            log::debug!("local APIC: {} IPI ignored", if mode == delivery::INIT { "INIT" } else { "start-up" });
            return;
        }
        let msg = ApicMessage { dest, logical, delivery: mode, vector: low as u8, level: low & (1 << 15) != 0 };
        self.accept(msg, to_self);
    }

    fn current_count(&self, now_ns: u64) -> u32 {
        let d = now_ns.saturating_sub(self.load_ns) >> self.count_shift;
        let initial = u64::from(self.initial_count);
        if self.lvt[LVT_TIMER] & LVT_TIMER_PERIODIC != 0 {
            (initial - d % (initial + 1)) as u32
        } else if d >= initial {
            0
        } else {
            (initial - d) as u32
        }
    }

    /// QEMU's `apic_next_timer`: when the timer fires next after `now_ns`.
    fn rearm(&mut self, now_ns: u64) {
        self.next_ns = None;
        let lvt = self.lvt[LVT_TIMER];
        if lvt & LVT_MASKED != 0 || !self.global_enable {
            return;
        }
        let d = now_ns.saturating_sub(self.load_ns) >> self.count_shift;
        let period = u64::from(self.initial_count) + 1;
        let ticks = if lvt & LVT_TIMER_PERIODIC != 0 {
            if self.initial_count == 0 {
                return;
            }
            (d / period + 1) * period
        } else {
            if d >= u64::from(self.initial_count) {
                return;
            }
            period
        };
        self.next_ns = Some(self.load_ns + (ticks << self.count_shift));
    }

    /// When [`LocalApic::update`] will next have a timer interrupt to raise.
    pub fn next_event_ns(&self) -> Option<u64> {
        self.next_ns
    }

    /// Let the timer catch up with `now_ns`: one interrupt if it expired (however many
    /// periods passed).
    pub fn update(&mut self, now_ns: u64) {
        if self.next_ns.is_some_and(|t| t <= now_ns) {
            self.local_deliver(LVT_TIMER);
            self.rearm(now_ns);
        }
    }

    /// A 32-bit read of the register at `offset` within the page.
    pub fn read(&mut self, offset: u64, now_ns: u64) -> u32 {
        let index = (offset >> 4) & 0xFF;
        match index {
            0x02 => u32::from(self.id) << 24,
            0x03 => LAPIC_VERSION,
            0x08 => u32::from(self.tpr),
            0x09 => 0,
            0x0A => u32::from(self.ppr()),
            0x0B => 0,
            0x0D => u32::from(self.ldr) << 24,
            0x0E => (u32::from(self.dfr_model) << 28) | 0x0FFF_FFFF,
            0x0F => self.svr,
            0x10..=0x17 => self.isr.0[(index & 7) as usize],
            0x18..=0x1F => self.tmr.0[(index & 7) as usize],
            0x20..=0x27 => self.irr.0[(index & 7) as usize],
            0x28 => self.esr,
            0x30 | 0x31 => self.icr[(index & 1) as usize],
            0x32..=0x37 => self.lvt[(index - 0x32) as usize],
            0x38 => self.initial_count,
            0x39 => self.current_count(now_ns),
            0x3E => self.divide,
            _ => {
                self.esr |= ESR_ILLEGAL_ADDRESS;
                0
            }
        }
    }

    /// A 32-bit write of the register at `offset`. Returns the vector of a
    /// level-triggered interrupt this EOI ended, for the I/O APIC.
    pub fn write(&mut self, offset: u64, value: u32, now_ns: u64) -> Option<u8> {
        let index = (offset >> 4) & 0xFF;
        match index {
            0x02 => self.id = (value >> 24) as u8,
            0x08 => self.tpr = value as u8,
            0x0B => return self.eoi(),
            0x0D => self.ldr = (value >> 24) as u8,
            0x0E => self.dfr_model = (value >> 28) as u8,
            0x0F => self.svr = value & 0x1FF,
            0x03 | 0x09 | 0x0A | 0x10..=0x28 | 0x39 => {}
            0x30 => {
                self.icr[0] = value & !ICR_DELIVERY_STATUS;
                self.send_ipi();
            }
            0x31 => self.icr[1] = value,
            0x32..=0x37 => {
                let n = (index - 0x32) as usize;
                self.lvt[n] = value;
                if n == LVT_TIMER {
                    self.rearm(now_ns);
                }
            }
            0x38 => {
                self.initial_count = value;
                self.load_ns = now_ns;
                self.rearm(now_ns);
            }
            0x3E => {
                self.divide = value & 0xB;
                let v = (self.divide & 3) | ((self.divide >> 1) & 4);
                self.count_shift = (v + 1) & 7;
            }
            _ => self.esr |= ESR_ILLEGAL_ADDRESS,
        }
        None
    }

    fn eoi(&mut self) -> Option<u8> {
        let v = self.isr.highest()?;
        self.isr.clear(v);
        self.tmr.get(v).then_some(v)
    }
}

impl ApicBus for LocalApic {
    fn deliver(&mut self, msg: ApicMessage) {
        let to_self = self.is_destination(msg.dest, msg.logical);
        self.accept(msg, to_self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TPR: u64 = 0x80;
    const EOI: u64 = 0xB0;
    const SVR: u64 = 0xF0;
    const ISR: u64 = 0x100;
    const TMR: u64 = 0x180;
    const IRR: u64 = 0x200;
    const ICR_LO: u64 = 0x300;
    const ICR_HI: u64 = 0x310;
    const LVT_T: u64 = 0x320;
    const INITIAL: u64 = 0x380;
    const CURRENT: u64 = 0x390;
    const DIVIDE: u64 = 0x3E0;

    fn enabled() -> LocalApic {
        let mut a = LocalApic::new();
        a.write(SVR, 0x1FF, 0);
        a
    }

    fn self_ipi(a: &mut LocalApic, vector: u8) {
        a.write(ICR_LO, (1 << 18) | u32::from(vector), 0);
    }

    #[test]
    fn reset_values_as_qemu() {
        let mut a = LocalApic::new();
        assert_eq!(a.read(0x20, 0), 0);
        assert_eq!(a.read(0x30, 0), 0x0005_0014);
        assert_eq!(a.read(SVR, 0), 0xFF);
        assert_eq!(a.read(0xE0, 0), 0xFFFF_FFFF, "DFR: flat");
        assert_eq!(a.read(0x350, 0), 0x700, "LINT0: ExtINT");
        assert_eq!(a.read(0x360, 0), LVT_MASKED);
        assert_eq!(a.read(LVT_T, 0), LVT_MASKED);
        assert_eq!(a.read(0x280, 0), 0, "ESR");
        assert_eq!(a.read(0x40, 0), 0, "no register at 0x40");
        assert_eq!(a.read(0x280, 0), ESR_ILLEGAL_ADDRESS);
    }

    #[test]
    fn pic_passes_through_lint0_until_masked() {
        let mut a = LocalApic::new();
        assert!(a.interrupt_pending(true));
        assert_eq!(a.acknowledge(true), Acknowledge::Pic);
        a.write(0x350, LVT_MASKED | 0x700, 0);
        assert!(!a.interrupt_pending(true));
        a.set_global_enable(false);
        assert!(a.interrupt_pending(true), "a disabled APIC lets the PIC through");
        assert!(!a.interrupt_pending(false));
    }

    #[test]
    fn priority_classes_tpr_and_eoi_order() {
        let mut a = enabled();
        self_ipi(&mut a, 0x41);
        self_ipi(&mut a, 0x52);
        self_ipi(&mut a, 0x53);
        assert_eq!(a.read(IRR + 0x20, 0), (1 << 1) | (1 << 0x12) | (1 << 0x13));
        a.write(TPR, 0x50, 0);
        assert!(!a.interrupt_pending(false), "class 5 is not above TPR 0x50");
        a.write(TPR, 0x4F, 0);
        assert_eq!(a.acknowledge(false), Acknowledge::Vector(0x53));
        assert_eq!(a.read(0xA0, 0), 0x50, "PPR: the in-service class");
        assert!(!a.interrupt_pending(false), "0x52 is in the same class as 0x53");
        a.write(TPR, 0, 0);
        assert_eq!(a.read(ISR + 0x20, 0), 1 << 0x13);
        assert_eq!(a.write(EOI, 0, 0), None);
        assert_eq!(a.acknowledge(false), Acknowledge::Vector(0x52));
        assert!(!a.interrupt_pending(false), "0x41 waits for 0x52's EOI");
        a.write(EOI, 0, 0);
        assert_eq!(a.acknowledge(false), Acknowledge::Vector(0x41));
        a.write(EOI, 0, 0);
        assert_eq!(a.read(ISR + 0x20, 0), 0);
        assert_eq!(a.read(IRR + 0x20, 0), 0);
    }

    #[test]
    fn software_disabled_apic_collects_but_does_not_deliver() {
        let mut a = LocalApic::new();
        self_ipi(&mut a, 0x40);
        assert!(!a.interrupt_pending(false));
        a.write(SVR, 0x1FF, 0);
        assert!(a.interrupt_pending(false));
        assert_eq!(a.acknowledge(true), Acknowledge::Pic, "ExtINT goes first");
    }

    #[test]
    fn icr_destinations_and_nmi() {
        let mut a = enabled();
        a.write(ICR_HI, 1 << 24, 0);
        a.write(ICR_LO, 0x4000 | 0x45, 0);
        assert!(!a.interrupt_pending(false), "APIC 1 does not exist");
        a.write(ICR_HI, 0, 0);
        a.write(ICR_LO, 0x45 | ICR_DELIVERY_STATUS, 0);
        assert_eq!(a.read(ICR_LO, 0), 0x45, "delivery status reads idle");
        assert_eq!(a.acknowledge(false), Acknowledge::Vector(0x45));
        // Logical flat: LDR bit 0 set.
        a.write(0xD0, 1 << 24, 0);
        a.write(ICR_HI, 3 << 24, 0);
        a.write(ICR_LO, (1 << 11) | 0x46, 0);
        assert!(a.irr.get(0x46));
        // All excluding self: nobody.
        a.write(ICR_LO, (3 << 18) | 0x47, 0);
        assert!(!a.irr.get(0x47));
        // NMI to self; INIT and SIPI ignored.
        a.write(ICR_LO, (1 << 18) | 0x400, 0);
        assert!(a.take_nmi());
        assert!(!a.take_nmi());
        a.write(ICR_LO, (3 << 18) | 0x4500, 0);
        a.write(ICR_LO, (3 << 18) | 0x4608, 0);
        assert!(!a.nmi_pending());
    }

    #[test]
    fn one_shot_timer_with_divide() {
        let mut a = enabled();
        a.write(DIVIDE, 0x3, 0); // divide by 16
        a.write(LVT_T, 0x30, 0);
        a.write(INITIAL, 1000, 100);
        assert_eq!(a.next_event_ns(), Some(100 + 1001 * 16));
        assert_eq!(a.read(CURRENT, 100 + 160), 990);
        a.update(100 + 1001 * 16 - 1);
        assert!(!a.interrupt_pending(false));
        a.update(100 + 1001 * 16);
        assert_eq!(a.acknowledge(false), Acknowledge::Vector(0x30));
        assert_eq!(a.next_event_ns(), None);
        assert_eq!(a.read(CURRENT, 1_000_000), 0);
    }

    #[test]
    fn periodic_timer_merges_missed_periods() {
        let mut a = enabled();
        a.write(DIVIDE, 0xB, 0); // divide by 1
        a.write(LVT_T, LVT_TIMER_PERIODIC | 0x31, 0);
        a.write(INITIAL, 99, 0);
        assert_eq!(a.next_event_ns(), Some(100));
        assert_eq!(a.read(CURRENT, 150), 49);
        a.update(1050);
        assert_eq!(a.next_event_ns(), Some(1100));
        assert_eq!(a.acknowledge(false), Acknowledge::Vector(0x31));
        assert!(!a.interrupt_pending(false));
        a.write(LVT_T, LVT_MASKED | LVT_TIMER_PERIODIC | 0x31, 1060);
        assert_eq!(a.next_event_ns(), None);
    }

    #[test]
    fn level_triggered_eoi_is_broadcast() {
        let mut a = enabled();
        a.deliver(ApicMessage { dest: 0, logical: false, delivery: delivery::FIXED, vector: 0x60, level: true });
        assert_eq!(a.read(TMR + 0x30, 0), 1);
        assert_eq!(a.acknowledge(false), Acknowledge::Vector(0x60));
        assert_eq!(a.write(EOI, 0, 0), Some(0x60));
        assert_eq!(a.write(EOI, 0, 0), None, "nothing in service");
    }

    #[test]
    fn global_disable_resets() {
        let mut a = enabled();
        self_ipi(&mut a, 0x40);
        a.set_global_enable(false);
        assert!(!a.globally_enabled());
        assert_eq!(a.read(SVR, 0), 0xFF);
        assert_eq!(a.read(IRR + 0x20, 0), 0);
        a.set_global_enable(true);
        assert_eq!(a.read(0x350, 0), 0x700);
    }
}
