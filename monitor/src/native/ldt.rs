//! The host LDT: 32-bit code and data segments through which guest code runs natively
//! in compatibility mode.
//!
//! Linux lets a process install descriptors in its own LDT with `modify_ldt`. A 32-bit
//! code descriptor there is a compatibility-mode segment: a far return (or `iretq`) to
//! its selector switches the CPU from 64-bit mode to 32-bit code without any kernel help.
//!
//! # Base and limit
//!
//! Every segment installed here has base = the user window's base (1 GiB, where the
//! differential fuzzer puts it; the guest's own user window is at 0, see
//! docs/architecture.md), so guest linear address `v` (segment offset `v` of a
//! flat guest segment) is host address `1 GiB + v`: the window of `bt86-shadow-mmu`.
//!
//! Compatibility mode forms *32-bit* linear addresses: `base + offset` is truncated to 32
//! bits. With base 1 GiB an offset of 3 GiB or more would wrap around to host
//! `[0, 1 GiB)` (the low guard) instead of reaching host 4 GiB and above. The limit is
//! therefore at most `3 GiB - 1` ([`MAX_LIMIT`]): offsets `[0, 3 GiB)` reach host
//! `[1 GiB, 4 GiB)` = guest linear `[0, 3 GiB)`, the usual user half of a 32-bit guest,
//! and any larger offset raises #GP(0) (#SS(0) for stack accesses) before the address is
//! formed. Directly executed guest code can thus never reach the guest's kernel half
//! (host `[4, 5) GiB`) nor wrap into the low guard, whatever selector it loads.

use std::fmt;

use bt86_shadow_mmu::WindowKind;

/// Largest segment limit (byte granular value): offsets up to 3 GiB - 1.
pub const MAX_LIMIT: u32 = 0xBFFF_FFFF;

/// LDT index of the flat 32-bit code segment used by [`install_flat`].
pub const FLAT_CODE_INDEX: u16 = 1;
/// LDT index of the flat 32-bit data segment used by [`install_flat`].
pub const FLAT_DATA_INDEX: u16 = 2;

/// The selector of LDT entry `index` at RPL 3: `index << 3 | TI (4) | RPL 3`.
pub const fn ldt_selector(index: u16) -> u16 {
    index << 3 | 4 | 3
}

/// Why a descriptor could not be installed.
#[derive(Debug)]
pub enum LdtError {
    /// `modify_ldt` failed (the kernel may be built without `CONFIG_MODIFY_LDT_SYSCALL`).
    ModifyLdt(std::io::Error),
    /// The requested limit exceeds [`MAX_LIMIT`].
    LimitTooLarge(u32),
}

impl fmt::Display for LdtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LdtError::ModifyLdt(e) => write!(
                f,
                "cannot install a segment in the host LDT (modify_ldt: {e}); direct execution needs a kernel with CONFIG_MODIFY_LDT_SYSCALL"
            ),
            LdtError::LimitTooLarge(l) => {
                write!(f, "segment limit {l:#x} is above {MAX_LIMIT:#x}: it would wrap below the guest window")
            }
        }
    }
}

impl std::error::Error for LdtError {}

/// What kind of segment a descriptor describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentKind {
    /// Execute/read, non-conforming, 32-bit code.
    Code32,
    /// Read/write, expand-up, 32-bit (B = 1) data and stack.
    Data32,
}

/// Installs LDT entry `index` as a present DPL-3 segment of `kind` with base
/// `user window base + guest_base` and byte-granular limit `limit` (rounded up to whole pages:
/// the descriptor uses page granularity, so its low 12 bits become all ones).
pub fn set_descriptor(index: u16, kind: SegmentKind, guest_base: u32, limit: u32) -> Result<u16, LdtError> {
    if limit > MAX_LIMIT || guest_base as u64 + limit as u64 > MAX_LIMIT as u64 {
        return Err(LdtError::LimitTooLarge(limit));
    }
    use crate::direct::host_ldt::{FLAG_32BIT, FLAG_CONTENTS_SHIFT, FLAG_LIMIT_IN_PAGES, FLAG_USEABLE, write_entry};
    let contents = match kind {
        SegmentKind::Data32 => 0u32, // data, expand-up
        SegmentKind::Code32 => 2u32, // code, non-conforming
    };
    // Writable data, readable code (read_exec_only clear), 32-bit, page granular.
    let flags = FLAG_32BIT | contents << FLAG_CONTENTS_SHIFT | FLAG_LIMIT_IN_PAGES | FLAG_USEABLE;
    let base = (WindowKind::User.base() + guest_base as u64) as u32;
    write_entry(index, base, limit >> 12, flags).map_err(LdtError::ModifyLdt)?;
    Ok(ldt_selector(index))
}

/// The selectors of the flat guest segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlatSelectors {
    /// 32-bit code segment: guest CS.
    pub code: u16,
    /// 32-bit data segment: guest DS, ES and SS.
    pub data: u16,
}

/// Installs (idempotently) the flat guest code and data segments: base = guest linear 0,
/// limit = 3 GiB - 1.
pub fn install_flat() -> Result<FlatSelectors, LdtError> {
    let code = set_descriptor(FLAT_CODE_INDEX, SegmentKind::Code32, 0, MAX_LIMIT)?;
    let data = set_descriptor(FLAT_DATA_INDEX, SegmentKind::Data32, 0, MAX_LIMIT)?;
    Ok(FlatSelectors { code, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        assert_eq!(ldt_selector(1), 0x0F);
        assert_eq!(ldt_selector(2), 0x17);
    }

    #[test]
    fn limit_checked() {
        assert!(matches!(set_descriptor(5, SegmentKind::Data32, 0, 0xC000_0000), Err(LdtError::LimitTooLarge(_))));
        assert!(matches!(set_descriptor(5, SegmentKind::Data32, 0x1000, MAX_LIMIT), Err(LdtError::LimitTooLarge(_))));
    }

    #[test]
    fn install_is_idempotent() {
        let a = install_flat().expect("modify_ldt");
        let b = install_flat().expect("modify_ldt");
        assert_eq!(a, b);
        assert_eq!(a, FlatSelectors { code: 0x0F, data: 0x17 });
    }
}
