//! The virtual CPU: everything of the guest's processor state that is not in the
//! translator's [`Context`] — segment descriptor caches, descriptor-table registers,
//! control and debug registers, MSRs — and the rules that tie them together.
//!
//! The translator's [`Context`] (general registers, EIP, EFLAGS, segment bases) is
//! owned here too, so one struct is the whole register file. [`Cpu::mode`] condenses the
//! state into the translator's [`Mode`], the key under which translations are valid.

pub mod cpuid;
pub mod dump;
pub mod emulate;
pub mod exceptions;
pub mod host_model;
pub mod msr;
pub mod segments;

use bt86_translator::{Context, ContextBox, Mode, Seg, flags};

pub use exceptions::{Exception, Vector};
pub use segments::SegmentCache;

/// CR0 bits.
pub mod cr0 {
    /// Protection enable.
    pub const PE: u32 = 1 << 0;
    /// Monitor coprocessor.
    pub const MP: u32 = 1 << 1;
    /// FPU emulation.
    pub const EM: u32 = 1 << 2;
    /// Task switched.
    pub const TS: u32 = 1 << 3;
    /// Extension type (always 1 on a 387+).
    pub const ET: u32 = 1 << 4;
    /// Numeric error.
    pub const NE: u32 = 1 << 5;
    /// Write protect.
    pub const WP: u32 = 1 << 16;
    /// Alignment mask.
    pub const AM: u32 = 1 << 18;
    /// Not write-through.
    pub const NW: u32 = 1 << 29;
    /// Cache disable.
    pub const CD: u32 = 1 << 30;
    /// Paging.
    pub const PG: u32 = 1 << 31;
    /// Bits a guest can set.
    pub const WRITABLE: u32 = PE | MP | EM | TS | ET | NE | WP | AM | NW | CD | PG;
}

/// CR4 bits.
pub mod cr4 {
    /// Time stamp disable (RDTSC at CPL > 0 faults).
    pub const TSD: u32 = 1 << 2;
    /// Debugging extensions.
    pub const DE: u32 = 1 << 3;
    /// Page size extensions (4 MiB pages).
    pub const PSE: u32 = 1 << 4;
    /// Physical address extension (PAE paging).
    pub const PAE: u32 = 1 << 5;
    /// Machine-check exceptions enabled (none is ever raised: MCG_CAP reports no banks).
    pub const MCE: u32 = 1 << 6;
    /// Global pages.
    pub const PGE: u32 = 1 << 7;
    /// Performance-monitoring counters readable at any CPL.
    pub const PCE: u32 = 1 << 8;
    /// FXSAVE/FXRSTOR and SSE enabled by the OS.
    pub const OSFXSR: u32 = 1 << 9;
    /// Unmasked SSE exceptions enabled by the OS.
    pub const OSXMMEXCPT: u32 = 1 << 10;
    /// Bits the virtual CPU implements (matches CPUID).
    pub const SUPPORTED: u32 = TSD | DE | PSE | PAE | MCE | PGE | PCE | OSFXSR | OSXMMEXCPT;
}

/// A descriptor-table register (GDTR or IDTR).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableReg {
    /// Linear base address.
    pub base: u32,
    /// Limit (last valid byte offset).
    pub limit: u16,
}

/// The virtual CPU.
pub struct Cpu {
    /// General registers, EIP, EFLAGS and what translated code needs.
    pub ctx: ContextBox,
    /// Segment registers ES..GS with their descriptor caches.
    pub seg: [SegmentCache; 6],
    /// For FS and GS: the cache each held before the monitor last loaded another selector
    /// into it, which translated code may swap back in (`Context::sreg_alt_sel`).
    pub seg_alt: [SegmentCache; 6],
    /// LDTR.
    pub ldtr: SegmentCache,
    /// TR.
    pub tr: SegmentCache,
    /// GDTR.
    pub gdtr: TableReg,
    /// IDTR.
    pub idtr: TableReg,
    /// Control registers.
    pub cr0: u32,
    /// Page-directory base.
    pub cr3: u32,
    /// CR4.
    pub cr4: u32,
    /// Debug registers DR0..DR7 (DR4/DR5 alias DR6/DR7).
    pub dr: [u32; 8],
    /// Current privilege level.
    pub cpl: u8,
    /// The model-specific registers the virtual CPU has.
    pub msr: msr::Msrs,
    /// HLT executed; waiting for an interrupt.
    pub halted: bool,
    /// Interrupts are inhibited until after the next instruction (mov ss / pop ss).
    pub interrupt_shadow: bool,
    /// An NMI handler runs: further NMIs wait for the next `iret`.
    pub nmi_blocked: bool,
    /// Events user code caused: exceptions and software interrupts raised at CPL 3, and
    /// `sysenter`. The adaptive policy's user slices end at them (`direct::policy`).
    pub user_events: u64,
}

impl Cpu {
    /// A CPU in the state Multiboot hands over: protected mode, flat 4 GiB segments,
    /// paging and interrupts off.
    pub fn multiboot() -> Cpu {
        Cpu::multiboot_in(Context::new_boxed())
    }

    /// Like [`Cpu::multiboot`], reusing (and resetting) an existing context allocation.
    pub fn multiboot_in(mut ctx: ContextBox) -> Cpu {
        ctx.reset_registers();
        let mut cpu = Cpu {
            ctx,
            seg: [SegmentCache::default(); 6],
            seg_alt: [SegmentCache::default(); 6],
            ldtr: SegmentCache::null(),
            tr: SegmentCache::tss_default(),
            gdtr: TableReg::default(),
            idtr: TableReg { base: 0, limit: 0x3FF },
            cr0: cr0::PE | cr0::ET,
            cr3: 0,
            cr4: 0,
            dr: [0, 0, 0, 0, 0xFFFF0FF0, 0x400, 0xFFFF0FF0, 0x400],
            cpl: 0,
            msr: msr::Msrs::default(),
            halted: false,
            interrupt_shadow: false,
            nmi_blocked: false,
            user_events: 0,
        };
        // Selectors as QEMU's Multiboot loader sets them: CS 0x10, data 0x18.
        cpu.set_segment(Seg::Cs, SegmentCache::flat_code(0x10));
        for s in [Seg::Ss, Seg::Ds, Seg::Es, Seg::Fs, Seg::Gs] {
            cpu.set_segment(s, SegmentCache::flat_data(0x18));
        }
        cpu.ctx.set_eflags(flags::FIXED1);
        cpu
    }

    /// Loads a segment register's cache (no checks) and mirrors base and selector into
    /// the translator's context.
    pub fn set_segment(&mut self, s: Seg, cache: SegmentCache) {
        self.seg[s as usize] = cache;
        self.ctx.seg_base[s as usize] = cache.base;
        self.ctx.sel[s as usize] = cache.selector as u32;
        // Translated code may reload it only if `load_data_segment` says so again.
        self.ctx.sreg_reload[s as usize] = bt86_translator::SREG_RELOAD_NEVER;
        if s == Seg::Cs && self.protected() {
            self.cpl = (cache.selector & 3) as u8;
        }
    }

    /// GDTR or LDTR changed: a selector may name another descriptor now, so no segment
    /// register may be reloaded by translated code without the monitor.
    pub fn descriptor_tables_changed(&mut self) {
        self.ctx.sreg_reload = [bt86_translator::SREG_RELOAD_NEVER; 6];
        self.ctx.sreg_alt_reload = [bt86_translator::SREG_RELOAD_NEVER; 6];
    }

    /// After translated code ran: where it swapped FS's or GS's state with the one kept
    /// beside it (its selector is the other one now), swaps the segment caches too.
    pub fn sync_segment_swaps(&mut self) {
        for s in [Seg::Fs, Seg::Gs] {
            let i = s as usize;
            if self.ctx.sel[i] != u32::from(self.seg[i].selector) {
                std::mem::swap(&mut self.seg[i], &mut self.seg_alt[i]);
                debug_assert_eq!(self.ctx.sel[i], u32::from(self.seg[i].selector));
                debug_assert_eq!(self.ctx.seg_base[i], self.seg[i].base);
            }
        }
    }

    /// CR0.PE.
    pub fn protected(&self) -> bool {
        self.cr0 & cr0::PE != 0
    }

    /// CR0.PG.
    pub fn paging(&self) -> bool {
        self.cr0 & cr0::PG != 0
    }

    /// The segment cache of `s`.
    pub fn segment(&self, s: Seg) -> &SegmentCache {
        &self.seg[s as usize]
    }

    /// Linear address of `offset` in segment `s` (wrapping at 4 GiB).
    pub fn linear(&self, s: Seg, offset: u32) -> u32 {
        self.seg[s as usize].base.wrapping_add(offset)
    }

    /// Linear address of the current instruction.
    pub fn linear_eip(&self) -> u32 {
        self.linear(Seg::Cs, self.ctx.eip)
    }

    /// Full EFLAGS.
    pub fn eflags(&self) -> u32 {
        self.ctx.eflags()
    }

    /// IOPL.
    pub fn iopl(&self) -> u8 {
        ((self.eflags() & flags::IOPL) >> 12) as u8
    }

    /// Virtual IF.
    pub fn interrupts_enabled(&self) -> bool {
        self.ctx.vif != 0
    }

    /// The registers guest paging depends on.
    pub fn paging_regs(&self) -> bt86_shadow_mmu::PagingRegs {
        bt86_shadow_mmu::PagingRegs { cr0: self.cr0, cr3: self.cr3, cr4: self.cr4, efer: self.msr.efer }
    }

    /// The translation mode of the current state.
    pub fn mode(&self) -> Mode {
        let mut m = 0u32;
        let cs = self.segment(Seg::Cs);
        if cs.default_big() {
            m |= Mode::CODE32;
        }
        if self.segment(Seg::Ss).default_big() {
            m |= Mode::STACK32;
        }
        for s in Seg::ALL {
            // At CPL 0, FS and GS may switch between two selectors inline (translated
            // code adds their bases whatever they are, see `sync_segment_swaps`).
            let switches = self.cpl == 0 && matches!(s, Seg::Fs | Seg::Gs);
            if self.seg[s as usize].base == 0 && !switches {
                m |= 1 << (Mode::FLAT_SHIFT + s as u32);
            }
        }
        m |= (self.cpl as u32 & 3) << Mode::CPL_SHIFT;
        if self.protected() {
            m |= Mode::PROTECTED;
        }
        if self.eflags() & flags::TF != 0 {
            m |= Mode::TRAP_FLAG;
        }
        if self.cr0 & cr0::TS != 0 {
            m |= Mode::FPU_TS;
        }
        if self.cr0 & cr0::EM != 0 {
            m |= Mode::FPU_EM;
        }
        if self.cr0 & cr0::MP != 0 {
            m |= Mode::FPU_MP;
        }
        if self.cr4 & cr4::OSFXSR != 0 {
            m |= Mode::OSFXSR;
        }
        if self.paging() {
            m |= Mode::PAGING;
        }
        Mode(m)
    }

    /// Guest register `n` (0 = EAX .. 7 = EDI).
    pub fn gpr(&self, n: usize) -> u32 {
        self.ctx.gpr[n]
    }

    /// Sets guest register `n`.
    pub fn set_gpr(&mut self, n: usize, v: u32) {
        self.ctx.gpr[n] = v;
    }
}
