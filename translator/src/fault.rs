//! Turning a host fault inside translated code back into a precise guest state.
//!
//! The monitor's signal handler calls these with the interrupted host registers. Each
//! fragment's host → guest map gives the guest EIP of the instruction whose host code
//! faulted and how to undo what the translation had changed so far ([`Fixup`]); since
//! translations access memory before they change guest registers, the result is the
//! guest state before the faulting instruction.

use crate::Translator;
use crate::context::{Context, Seg};
use crate::fragment::{Fixup, FragId};

/// Host registers at a fault, in guest register order: RAX, RCX, RDX, RBX, R12 (guest
/// ESP), RBP, RSI, RDI.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostRegs {
    /// The eight registers.
    pub gpr: [u64; 8],
    /// RFLAGS.
    pub rflags: u64,
    /// R13 (translation temporary; the target of an indirect call).
    pub r13: u64,
}

/// The guest state at a host fault.
#[derive(Clone, Copy, Debug)]
pub struct Recovered {
    /// EIP of the faulting guest instruction.
    pub eip: u32,
    /// Guest registers.
    pub gpr: [u32; 8],
    /// Guest arithmetic flags and DF.
    pub host_flags: u32,
    /// The fragment.
    pub fragment: FragId,
}

const SPAN: u64 = bt86_shadow_mmu::WINDOW_SIZE;

impl Translator {
    /// True if `addr` is in the guard page below the translated-code stack.
    pub fn is_stack_guard(&self, addr: u64) -> bool {
        self.stack.is_guard(addr)
    }

    /// True if `rip` is inside the translation cache.
    pub fn owns_rip(&self, rip: u64) -> bool {
        self.tc.contains(rip)
    }

    /// The guest state at host `rip`, if `rip` is inside a fragment's translated code.
    pub fn recover(&self, rip: u64, regs: &HostRegs, ctx: &Context) -> Option<Recovered> {
        let frag = self.table.by_host(rip)?;
        let f = self.table.frag(frag);
        let point = f.fault_point(rip)?;
        let mut gpr = regs.gpr.map(|r| r as u32);
        gpr[4] = gpr[4].wrapping_add(point.esp_delta as u32);
        let mut eip = point.eip;
        match point.fixup {
            Fixup::None => {}
            Fixup::TargetInR13 => eip = regs.r13 as u32,
            Fixup::String { src, dst } => {
                let wb = self.windows.for_mode(f.key.mode);
                let base = |s: Seg| {
                    if f.key.mode.is_flat(s) { 0 } else { ctx.seg_base[s as usize] as u64 }
                };
                if let Some(s) = src {
                    gpr[6] = regs.gpr[6].wrapping_sub(wb).wrapping_sub(base(s)) as u32;
                }
                if dst {
                    gpr[7] = regs.gpr[7].wrapping_sub(wb).wrapping_sub(base(Seg::Es)) as u32;
                }
            }
            Fixup::ByteSwap(pairs, n) => {
                for &(low, high) in pairs[..n as usize].iter().rev() {
                    let (l, h) = (low as usize, high as usize);
                    let lo = gpr[l] & 0xFF;
                    let hi = (gpr[h] >> 8) & 0xFF;
                    gpr[l] = (gpr[l] & !0xFF) | hi;
                    gpr[h] = (gpr[h] & !0xFF00) | (lo << 8);
                }
            }
        }
        Some(Recovered { eip, gpr, host_flags: regs.rflags as u32, fragment: frag })
    }

    /// Describes where host `rip` is, for debugging.
    pub fn describe_host(&self, rip: u64) -> String {
        match self.table.by_host(rip) {
            None => format!("no fragment (tc base {:#x}, {} fragments)", self.tc.base(), self.table.frags.len()),
            Some(id) => {
                let f = self.table.frag(id);
                format!("fragment {} entry {:#x} len {} points {:?}", id.index(), f.entry, f.host_len, f.faults)
            }
        }
    }

    /// A string instruction whose RSI/RDI ran off either end of the window (the guest's
    /// offset wrapped around 4 GiB): moves them back by 4 GiB and returns true, so the
    /// handler can simply resume the instruction. False if `rip` is not in a string
    /// stretch or the registers are inside the window.
    pub fn wrap_string_registers(&self, rip: u64, rsi: &mut u64, rdi: &mut u64) -> bool {
        let Some(frag) = self.table.by_host(rip) else {
            return false;
        };
        let f = self.table.frag(frag);
        let Some(point) = f.fault_point(rip) else {
            return false;
        };
        let Fixup::String { src, dst } = point.fixup else {
            return false;
        };
        let wb = self.windows.for_mode(f.key.mode);
        let mut changed = false;
        // The register's offset from the window base, signed: a string instruction that
        // ran below linear 0 has a negative one (for a window at 0, a host address near
        // 2^64).
        let mut wrap = |r: &mut u64| {
            let off = r.wrapping_sub(wb) as i64;
            if off >= SPAN as i64 {
                *r = r.wrapping_sub(SPAN);
                changed = true;
            } else if off < 0 {
                *r = r.wrapping_add(SPAN);
                changed = true;
            }
        };
        if src.is_some() {
            wrap(rsi);
        }
        if dst {
            wrap(rdi);
        }
        changed
    }
}
