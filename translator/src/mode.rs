//! The execution mode a translation was made for.
//!
//! A fragment is valid only in the mode it was translated in: the same code bytes become
//! different host code when, say, DS has a non-zero base (the base is added explicitly)
//! or the FPU is disabled (x87 instructions raise #NM). The mode is part of the
//! fragment's key; the monitor computes it from the vCPU state at every dispatch.

use crate::context::Seg;

/// Mode bits; see the constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Mode(pub u32);

impl Mode {
    /// CS.D: 32-bit default operand and address size.
    pub const CODE32: u32 = 1 << 0;
    /// SS.B: 32-bit stack pointer.
    pub const STACK32: u32 = 1 << 1;
    /// Bit `FLAT_SHIFT + seg`: that segment's base is 0, so accesses need no explicit add.
    pub const FLAT_SHIFT: u32 = 2; // bits 2..=7
    /// CPL, two bits.
    pub const CPL_SHIFT: u32 = 8;
    /// Protected mode (CR0.PE).
    pub const PROTECTED: u32 = 1 << 10;
    /// EFLAGS.TF: one instruction per fragment, then a #DB trap.
    pub const TRAP_FLAG: u32 = 1 << 11;
    /// CR0.TS: x87/SSE instructions raise #NM (and `wait` when CR0.MP).
    pub const FPU_TS: u32 = 1 << 12;
    /// CR0.EM: x87 instructions raise #NM, SSE instructions raise #UD.
    pub const FPU_EM: u32 = 1 << 13;
    /// CR4.OSFXSR: SSE instructions are allowed.
    pub const OSFXSR: u32 = 1 << 14;
    /// CR0.MP: `wait`/`fwait` honours TS.
    pub const FPU_MP: u32 = 1 << 15;
    /// Guest paging is on (CR0.PG): direct branches chain only within a page.
    pub const PAGING: u32 = 1 << 16;

    /// True if segment `s` is flat (base 0) in this mode.
    pub fn is_flat(self, s: Seg) -> bool {
        self.0 & (1 << (Self::FLAT_SHIFT + s as u32)) != 0
    }

    /// Sets or clears the flat bit of `s`.
    pub fn with_flat(self, s: Seg, flat: bool) -> Mode {
        let bit = 1 << (Self::FLAT_SHIFT + s as u32);
        Mode(if flat { self.0 | bit } else { self.0 & !bit })
    }

    /// True if `bit` (one of the constants) is set.
    pub fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }

    /// Current privilege level.
    pub fn cpl(self) -> u8 {
        ((self.0 >> Self::CPL_SHIFT) & 3) as u8
    }

    /// Decoder bitness for code of this mode.
    pub fn bitness(self) -> u32 {
        if self.has(Self::CODE32) { 32 } else { 16 }
    }

    /// The mode Multiboot leaves a kernel in: 32-bit flat protected mode at CPL 0.
    pub fn flat32() -> Mode {
        Mode(Self::CODE32 | Self::STACK32 | Self::PROTECTED | (0x3F << Self::FLAT_SHIFT))
    }
}
