//! Host-CPU behaviours the translator must reproduce where the architecture lets vendors
//! differ, chosen by the monitor (which probes the host CPU once at start-up) and passed
//! in explicitly through [`crate::Translator::set_push_sreg_model`].
//!
//! Directly executed guest user code gets the host CPU's behaviour whatever bt86 does; a
//! translated instruction must give the same answer, or one guest would see two CPUs.

/// What a 32-bit `push` of a segment register writes into its 4-byte stack slot (the
/// SDM allows either; ESP moves by 4 in both).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PushSregModel {
    /// Only the low word (a 16-bit store; the upper word keeps what was there): Intel
    /// Core and Atom processors.
    #[default]
    LowWord,
    /// The selector zero-extended to a dword: AMD processors.
    ZeroExtend,
}

impl PushSregModel {
    /// How many bytes a push of `size` bytes (2 or 4) actually stores. A 16-bit push
    /// (`66` prefix) stores the word on every vendor.
    pub fn stored_bytes(self, size: u8) -> u8 {
        match (self, size) {
            (PushSregModel::ZeroExtend, 4) => 4,
            _ => 2,
        }
    }

    /// The stack slot after a `push` of `selector` with operand size `size` over a slot
    /// that held `old` (the low `size` bytes are the slot).
    pub fn slot_after(self, old: u32, selector: u16, size: u8) -> u32 {
        match self.stored_bytes(size) {
            4 => selector as u32,
            _ => (old & 0xFFFF_0000) | selector as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PushSregModel;

    #[test]
    fn intel_writes_the_low_word_only() {
        assert_eq!(PushSregModel::LowWord.slot_after(0xDEAD_BEEF, 0x17, 4), 0xDEAD_0017);
        assert_eq!(PushSregModel::LowWord.slot_after(0xDEAD_BEEF, 0x17, 2), 0xDEAD_0017);
    }

    #[test]
    fn amd_zero_extends_32_bit_pushes() {
        assert_eq!(PushSregModel::ZeroExtend.slot_after(0xDEAD_BEEF, 0x17, 4), 0x0000_0017);
        // 16-bit pushes store a word on both.
        assert_eq!(PushSregModel::ZeroExtend.slot_after(0xDEAD_BEEF, 0x17, 2), 0xDEAD_0017);
    }
}
