//! Fetching guest code and decoding it with iced-x86.
//!
//! The translator reads guest code through [`CodeMemory`], which the monitor implements
//! (paging off: linear = physical; later a guest page walk). A fragment covers guest code
//! of one page, plus the tail of an instruction that straddles into the next page.

use iced_x86::{Decoder, DecoderError, DecoderOptions, Instruction};

use crate::mode::Mode;

/// Fetching guest code at `linear` would fault (the monitor raises #PF or stops).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchFault {
    /// The linear address whose fetch faults.
    pub linear: u32,
}

/// Where a guest code page lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodePage {
    /// Guest-physical address of the byte asked for.
    pub phys: u64,
    /// Its translation is global (survives CR3 writes); always true with paging off.
    pub global: bool,
}

/// Guest memory as the translator needs it.
pub trait CodeMemory {
    /// Where the code byte at guest linear `linear` is, or the fault fetching it raises.
    fn code_page(&mut self, linear: u32) -> Result<CodePage, FetchFault>;
    /// Reads guest-physical memory; bytes beyond RAM read as 0xFF.
    fn read_phys(&self, phys: u64, buf: &mut [u8]);
}

const PAGE: u32 = 4096;

/// Guest code bytes of a fragment's page (and the first bytes of the next page if that
/// page can be fetched), and the physical pages they came from.
pub struct CodeWindow {
    bytes: Vec<u8>,
    /// Linear address of `bytes[0]`.
    linear: u32,
    /// EIP of `bytes[0]`.
    eip: u32,
    /// Bytes before the end of the first page.
    first_page_len: usize,
    /// The first page, and the second if it was read (physical page numbers inside).
    pub pages: Vec<CodePage>,
}

impl CodeWindow {
    /// Reads the code from `linear` (EIP `eip`) to the end of its page, plus up to 15
    /// bytes of the following page when that page is fetchable.
    pub fn fetch(mem: &mut dyn CodeMemory, linear: u32, eip: u32) -> Result<CodeWindow, FetchFault> {
        let first = mem.code_page(linear)?;
        let first_page_len = (PAGE - (linear % PAGE)) as usize;
        let mut bytes = vec![0u8; first_page_len];
        mem.read_phys(first.phys, &mut bytes);
        let mut pages = vec![first];
        let next = linear.wrapping_add(first_page_len as u32);
        if let Ok(second) = mem.code_page(next) {
            let mut tail = [0u8; 15];
            mem.read_phys(second.phys, &mut tail);
            bytes.extend_from_slice(&tail);
            pages.push(second);
        }
        Ok(CodeWindow { bytes, linear, eip, first_page_len, pages })
    }

    /// True if the second page's bytes are present.
    pub fn has_second_page(&self) -> bool {
        self.bytes.len() > self.first_page_len
    }

    /// A decoder positioned at the start, with IP = guest EIP.
    pub fn decoder(&self, mode: Mode) -> Decoder<'_> {
        Decoder::with_ip(mode.bitness(), &self.bytes, self.eip as u64, DecoderOptions::NONE)
    }

    /// Offset from the start of the window of the instruction with EIP `eip`.
    pub fn offset_of(&self, eip: u32) -> usize {
        eip.wrapping_sub(self.eip) as usize
    }

    /// True if the instruction at window offset `off` starts beyond the first page.
    pub fn starts_past_first_page(&self, off: usize) -> bool {
        off >= self.first_page_len
    }

    /// True if an instruction at `off` of `len` bytes ends in the second page.
    pub fn crosses_page(&self, off: usize, len: usize) -> bool {
        off + len > self.first_page_len
    }

    /// Linear address of window offset `off`.
    pub fn linear_at(&self, off: usize) -> u32 {
        self.linear.wrapping_add(off as u32)
    }

    /// Raw bytes of the window.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Decodes the next instruction. `Ok(None)` means the instruction needs bytes that are
/// not available (its tail lies in an unfetchable page).
pub fn next_instruction(dec: &mut Decoder<'_>) -> Option<Instruction> {
    if !dec.can_decode() {
        return None;
    }
    let pos = dec.position();
    let ins = dec.decode();
    if dec.last_error() == DecoderError::NoMoreBytes {
        dec.set_position(pos).ok();
        return None;
    }
    Some(ins)
}
