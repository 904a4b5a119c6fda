//! Reading and writing an instruction's operands against the virtual CPU: registers of
//! every size, memory operands with their segment and address-size wrap, and the stack.

use bt86_translator::Seg;
use iced_x86::{Instruction, OpKind, Register};

use super::DataAccess;
use crate::cpu::{Cpu, Exception};

/// Index (0 = EAX .. 7 = EDI), byte shift and size of a general register.
fn gpr_slot(r: Register) -> Option<(usize, u32, u8)> {
    use Register as R;
    let (n, shift, size) = match r {
        R::AL => (0, 0, 1),
        R::CL => (1, 0, 1),
        R::DL => (2, 0, 1),
        R::BL => (3, 0, 1),
        R::AH => (0, 8, 1),
        R::CH => (1, 8, 1),
        R::DH => (2, 8, 1),
        R::BH => (3, 8, 1),
        _ if r.is_gpr16() => (r.number(), 0, 2),
        _ if r.is_gpr32() => (r.number(), 0, 4),
        _ => return None,
    };
    Some((n, shift, size))
}

/// Reads a general register.
pub fn read_reg(cpu: &Cpu, r: Register) -> u32 {
    let (n, shift, size) = gpr_slot(r).expect("general register");
    let v = cpu.gpr(n) >> shift;
    match size {
        1 => v & 0xFF,
        2 => v & 0xFFFF,
        _ => v,
    }
}

/// Writes a general register (8- and 16-bit writes keep the other bits).
pub fn write_reg(cpu: &mut Cpu, r: Register, v: u32) {
    let (n, shift, size) = gpr_slot(r).expect("general register");
    let old = cpu.gpr(n);
    let new = match size {
        1 => (old & !(0xFF << shift)) | ((v & 0xFF) << shift),
        2 => (old & !0xFFFF) | (v & 0xFFFF),
        _ => v,
    };
    cpu.set_gpr(n, new);
}

/// Offset (effective address, no segment) of the instruction's memory operand.
pub fn effective_address(cpu: &Cpu, ins: &Instruction) -> u32 {
    let base = match ins.memory_base() {
        Register::None => 0,
        r => read_reg(cpu, r),
    };
    let index = match ins.memory_index() {
        Register::None => 0,
        r => read_reg(cpu, r).wrapping_mul(ins.memory_index_scale()),
    };
    let ea = base.wrapping_add(index).wrapping_add(ins.memory_displacement32());
    let addr16 = ins.memory_base().is_gpr16()
        || ins.memory_index().is_gpr16()
        || (ins.memory_base() == Register::None && ins.memory_index() == Register::None && ins.memory_displ_size() == 2);
    if addr16 { ea & 0xFFFF } else { ea }
}

/// Segment of the instruction's memory operand.
pub fn memory_segment(ins: &Instruction) -> Seg {
    Seg::from_iced(ins.memory_segment()).unwrap_or(Seg::Ds)
}

/// Linear address of the instruction's memory operand plus `extra`.
pub fn memory_linear(cpu: &Cpu, ins: &Instruction, extra: u32) -> u32 {
    cpu.linear(memory_segment(ins), effective_address(cpu, ins).wrapping_add(extra))
}

/// Reads operand `op` (register, memory or immediate) of `size` bytes.
pub fn read_operand(cpu: &Cpu, mem: &mut dyn DataAccess, ins: &Instruction, op: u32, size: u8) -> Result<u32, Exception> {
    match ins.op_kind(op) {
        OpKind::Register => Ok(read_reg(cpu, ins.op_register(op))),
        OpKind::Memory => mem.load(memory_linear(cpu, ins, 0), size),
        _ => Ok(ins.immediate(op) as u32),
    }
}

/// Writes operand `op` of `size` bytes (a register operand gets the register's size).
pub fn write_operand(cpu: &mut Cpu, mem: &mut dyn DataAccess, ins: &Instruction, op: u32, size: u8, v: u32) -> Result<(), Exception> {
    match ins.op_kind(op) {
        OpKind::Register => {
            write_reg(cpu, ins.op_register(op), v);
            Ok(())
        }
        OpKind::Memory => mem.store(memory_linear(cpu, ins, 0), size, v),
        k => panic!("cannot write operand kind {k:?}"),
    }
}

/// The stack: SS:ESP with the stack size of SS.
pub struct Stack;

impl Stack {
    fn big(cpu: &Cpu) -> bool {
        cpu.segment(Seg::Ss).default_big()
    }

    /// Offset of the stack top after moving it by `delta` (not stored).
    pub fn moved(cpu: &Cpu, sp: u32, delta: i32) -> u32 {
        if Self::big(cpu) { sp.wrapping_add(delta as u32) } else { (sp & 0xFFFF_0000) | (sp.wrapping_add(delta as u32) & 0xFFFF) }
    }

    /// Linear address of stack offset `sp`.
    pub fn linear(cpu: &Cpu, sp: u32) -> u32 {
        let off = if Self::big(cpu) { sp } else { sp & 0xFFFF };
        cpu.linear(Seg::Ss, off)
    }

    /// Reads `size` bytes at ESP + `at` without moving ESP.
    pub fn peek(cpu: &Cpu, mem: &mut dyn DataAccess, at: u32, size: u8) -> Result<u32, Exception> {
        let sp = Self::moved(cpu, cpu.gpr(4), at as i32);
        mem.load(Self::linear(cpu, sp), size)
    }

    /// Pushes a sequence of values (first pushed first); ESP moves only if all writes
    /// succeed.
    pub fn push_all(cpu: &mut Cpu, mem: &mut dyn DataAccess, values: &[u32], size: u8) -> Result<(), Exception> {
        let mut sp = cpu.gpr(4);
        for &v in values {
            sp = Self::moved(cpu, sp, -(size as i32));
            mem.store(Self::linear(cpu, sp), size, v)?;
        }
        cpu.set_gpr(4, sp);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! Operands against the SDM (Vol. 1, 3.7.5: effective addresses; Vol. 3A, 3.4: the
    //! segment base is added after the address-size wrap).
    use bt86_translator::Seg;
    use iced_x86::Register;

    use super::super::testing::*;
    use super::*;
    use crate::cpu::SegmentCache;

    #[test]
    fn sixteen_bit_addresses_wrap_before_the_segment_base() {
        let mut m = Machine::new();
        m.cpu.set_segment(Seg::Ds, SegmentCache { base: 0x1000, ..SegmentCache::flat_data(0x18) });
        m.cpu.set_gpr(3, 0xAAAA_FFF0); // BX
        m.cpu.set_gpr(6, 0x0000_0008); // SI
        let ins = decode(&[0x67, 0x8B, 0x40, 0x10]); // mov eax, [bx+si+0x10]
        assert_eq!(effective_address(&m.cpu, &ins), 0x0008);
        assert_eq!(memory_linear(&m.cpu, &ins, 0), 0x1008);
        // [bp+...] defaults to SS; 32-bit addresses wrap at 4 GiB.
        assert_eq!(memory_segment(&decode(&[0x67, 0x8B, 0x46, 0x00])), Seg::Ss);
        m.cpu.set_gpr(0, 0xFFFF_FFF0);
        let ins = decode(&[0x8B, 0x58, 0x20]); // mov ebx, [eax+0x20]
        assert_eq!(memory_linear(&m.cpu, &ins, 0), 0x1010);
    }

    #[test]
    fn partial_registers() {
        let mut m = Machine::new();
        m.cpu.set_gpr(0, 0x1122_3344);
        assert_eq!((read_reg(&m.cpu, Register::AH), read_reg(&m.cpu, Register::AX)), (0x33, 0x3344));
        write_reg(&mut m.cpu, Register::AH, 0xFFEE);
        assert_eq!(m.cpu.gpr(0), 0x1122_EE44, "an 8-bit write keeps the other bytes");
        write_reg(&mut m.cpu, Register::AX, 0x5_5555);
        assert_eq!(m.cpu.gpr(0), 0x1122_5555);
    }

    #[test]
    fn a_16_bit_stack_moves_sp_only() {
        let mut m = Machine::new();
        m.cpu.set_segment(Seg::Ss, SegmentCache { flags: 0, ..SegmentCache::flat_data(0x18) }); // B = 0
        m.cpu.set_gpr(4, 0xABCD_0002);
        Stack::push_all(&mut m.cpu, &mut m.mem, &[0x1111_2222, 0x3333_4444], 4).unwrap();
        assert_eq!(m.cpu.gpr(4), 0xABCD_FFFA, "SP wrapped below 0; ESP's upper half kept");
        assert_eq!(m.mem.read_u32(0xFFFE), 0x1111_2222);
        assert_eq!(m.mem.read_u32(0xFFFA), 0x3333_4444);
        assert_eq!(Stack::peek(&m.cpu, &mut m.mem, 4, 4), Ok(0x1111_2222));
    }
}
