//! String instructions: `movs`, `stos`, `lods`, `cmps`, `scas` (with `rep`/`repe`/`repne`).
//!
//! They address ES:EDI, which no prefix can redirect in 64-bit mode, so they run in
//! 64-bit addressing with RSI/RDI rebased to host addresses (window base + segment base +
//! offset, the sum wrapped at 4 GiB first) and are rebased back afterwards. If a string
//! runs off the top (or, going down, the bottom) of the 4 GiB guest space, its next access
//! lands in a guard region; the fault handler sees the [`Fixup::String`] of this stretch,
//! moves the register by 4 GiB — the guest's wrap-around — and resumes.

use dynasmrt::{DynasmApi, dynasm};
use iced_x86::{Instruction, Mnemonic, OpKind};

use super::{EmitError, EmitResult, Emitter};
use crate::context::{Seg, off};
use crate::fragment::Fixup;

impl Emitter<'_> {
    pub(crate) fn emit_string(&mut self, ins: &Instruction) -> EmitResult {
        if Self::string_addr16(ins) {
            return Err(EmitError::Unsupported("string instruction with 16-bit addressing".into()));
        }
        let has_src = (0..ins.op_count()).any(|i| matches!(ins.op_kind(i), OpKind::MemorySegESI));
        let has_dst = (0..ins.op_count()).any(|i| matches!(ins.op_kind(i), OpKind::MemoryESEDI));
        let src_seg = if has_src { Seg::from_iced(ins.memory_segment()) } else { None };
        if has_src && src_seg.is_none() {
            return Err(EmitError::Unsupported("string source segment".into()));
        }
        // Rebase: RSI = window + ((seg base + ESI) mod 4 GiB). The window is the one in
        // use (kernel windows change with the address space), read from the context; R14
        // holds its base, later its negation.
        let wb = off::WINDOW_BASE;
        dynasm!(self.ops ; .arch x64 ; mov r14, [r15 + wb]);
        if let Some(seg) = src_seg {
            if !self.mode.is_flat(seg) {
                let o = off::seg_base(seg);
                dynasm!(self.ops ; .arch x64 ; mov r13d, [r15 + o] ; lea esi, [rsi + r13]);
            }
            dynasm!(self.ops ; .arch x64 ; lea rsi, [rsi + r14]);
        }
        if has_dst {
            if !self.mode.is_flat(Seg::Es) {
                let o = off::seg_base(Seg::Es);
                dynasm!(self.ops ; .arch x64 ; mov r13d, [r15 + o] ; lea edi, [rdi + r13]);
            }
            dynasm!(self.ops ; .arch x64 ; lea rdi, [rdi + r14]);
        }
        self.point(Fixup::String { src: src_seg, dst: has_dst });
        self.emit_string_op(ins);
        // Back to guest offsets: ESI = (RSI - window - seg base) mod 4 GiB.
        let neg = off::WINDOW_BASE_NEG;
        dynasm!(self.ops ; .arch x64 ; mov r14, [r15 + neg]);
        if let Some(seg) = src_seg {
            if self.mode.is_flat(seg) {
                dynasm!(self.ops ; .arch x64 ; lea esi, [rsi + r14]);
            } else {
                let o = off::seg_base(seg);
                dynasm!(self.ops ; .arch x64 ; lea rsi, [rsi + r14] ; mov r13d, [r15 + o] ; not r13d ; lea esi, [rsi + r13 + 1]);
            }
        }
        if has_dst {
            if self.mode.is_flat(Seg::Es) {
                dynasm!(self.ops ; .arch x64 ; lea edi, [rdi + r14]);
            } else {
                let o = off::seg_base(Seg::Es);
                dynasm!(self.ops ; .arch x64 ; lea rdi, [rdi + r14] ; mov r13d, [r15 + o] ; not r13d ; lea edi, [rdi + r13 + 1]);
            }
        }
        self.point(Fixup::None);
        Ok(())
    }

    fn string_addr16(ins: &Instruction) -> bool {
        (0..ins.op_count()).any(|i| matches!(ins.op_kind(i), OpKind::MemorySegSI | OpKind::MemoryESDI))
    }

    /// The string instruction itself, 64-bit addressing (no 0x67), no segment prefix
    /// (DS and ES have base 0 in 64-bit mode).
    fn emit_string_op(&mut self, ins: &Instruction) {
        let mut bytes: Vec<u8> = Vec::with_capacity(3);
        if ins.has_rep_prefix() {
            bytes.push(0xF3);
        } else if ins.has_repne_prefix() {
            bytes.push(0xF2);
        }
        use Mnemonic as M;
        let (op8, size) = match ins.mnemonic() {
            M::Movsb => (0xA4, 1),
            M::Movsw => (0xA4, 2),
            M::Movsd => (0xA4, 4),
            M::Cmpsb => (0xA6, 1),
            M::Cmpsw => (0xA6, 2),
            M::Cmpsd => (0xA6, 4),
            M::Stosb => (0xAA, 1),
            M::Stosw => (0xAA, 2),
            M::Stosd => (0xAA, 4),
            M::Lodsb => (0xAC, 1),
            M::Lodsw => (0xAC, 2),
            M::Lodsd => (0xAC, 4),
            M::Scasb => (0xAE, 1),
            M::Scasw => (0xAE, 2),
            M::Scasd => (0xAE, 4),
            _ => unreachable!("classified as a string instruction"),
        };
        if size == 2 {
            bytes.insert(0, 0x66);
        }
        bytes.push(if size == 1 { op8 } else { op8 + 1 });
        self.ops.extend(bytes);
    }
}
