//! Instructions that access device memory. Device pages are never mapped in a window,
//! so such an access faults and the run loop decodes the instruction at CS:EIP. The
//! moves and string instructions drivers use most are executed here, with the device
//! side routed to the device models. Any other instruction (read-modify-write ALU,
//! `xchg`/`cmpxchg`, MMX/SSE/x87 loads and stores, `push`/`call` through device memory)
//! runs natively: [`plan_device_access`] lists the device pieces it touches, the monitor
//! fills stand-in pages with the devices' values, runs the one instruction translated,
//! and hands the stores to the devices.

use bt86_shadow_mmu::Access;
use bt86_translator::Seg;
use iced_x86::{Instruction, InstructionInfoFactory, Mnemonic, OpAccess, OpKind, Register};

use super::DataAccess;
use super::Flow;
use super::operands::{memory_linear, read_reg, write_reg};
use super::string::{emulate_string, is_memory_string};
use crate::cpu::{Cpu, Exception};
use crate::machine::memory::Memory;

/// The devices' side of a device-memory access (guest-physical addresses).
pub trait DeviceMemory {
    /// Reads `size` bytes.
    fn read(&mut self, phys: u64, size: u8) -> u32;
    /// Writes `size` bytes.
    fn write(&mut self, phys: u64, size: u8, v: u32);
}

/// Where a guest-physical address leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// RAM.
    Ram,
    /// A device, at this guest-physical address.
    Device(u64),
    /// No RAM and no device: reads give all ones, writes are dropped.
    Unbacked,
}

/// Guest memory that knows the physical map: RAM accesses as [`DataAccess`], and where
/// any linear address leads.
pub trait MappedMemory: DataAccess {
    /// Where an access to `linear` goes, after the guest's page-permission checks (a
    /// refused access is its #PF).
    fn route(&mut self, linear: u32, write: bool) -> Result<Target, Exception>;
}

impl MappedMemory for Memory {
    fn route(&mut self, linear: u32, write: bool) -> Result<Target, Exception> {
        let phys = self.mmu.translate(linear, Access::data(write, self.user))?;
        Ok(if self.mmu.is_device(phys >> 12) {
            Target::Device(phys)
        } else if self.mmu.is_unbacked(phys >> 12) {
            Target::Unbacked
        } else {
            Target::Ram
        })
    }
}

/// RAM and device memory by linear address (an access that crosses out of a device page
/// is taken byte-wise from RAM and devices).
struct Routed<'a> {
    mem: &'a mut dyn MappedMemory,
    dev: &'a mut dyn DeviceMemory,
}

impl DataAccess for Routed<'_> {
    fn load(&mut self, linear: u32, size: u8) -> Result<u32, Exception> {
        match self.mem.route(linear, false)? {
            Target::Device(phys) => Ok(self.dev.read(phys, size)),
            Target::Unbacked => Ok(u32::MAX >> (32 - 8 * size as u32)),
            Target::Ram => self.mem.load(linear, size),
        }
    }

    fn store(&mut self, linear: u32, size: u8, v: u32) -> Result<(), Exception> {
        match self.mem.route(linear, true)? {
            Target::Device(phys) => {
                self.dev.write(phys, size, v);
                Ok(())
            }
            Target::Unbacked => Ok(()),
            Target::Ram => self.mem.store(linear, size, v),
        }
    }
}

/// The simple forms drivers use most — `mov`, `movzx`/`movsx` and the string
/// instructions — executed here against RAM and the devices. `Ok(None)`: not one of
/// them; the monitor runs the instruction natively against stand-in pages instead (see
/// [`plan_device_access`]).
pub fn emulate_mmio(
    cpu: &mut Cpu,
    mem: &mut dyn MappedMemory,
    dev: &mut dyn DeviceMemory,
    ins: &Instruction,
) -> Result<Option<Flow>, Exception> {
    let mut m = Routed { mem, dev };
    use Mnemonic as M;
    let mn = ins.mnemonic();
    if is_memory_string(ins) {
        return emulate_string(cpu, &mut m, ins).map(Some);
    }
    let general = |i: u32| ins.op_kind(i) == OpKind::Register && ins.op_register(i).is_gpr();
    let addr = || memory_linear(cpu, ins, 0);
    let msize = ins.memory_size().size() as u8;
    match mn {
        M::Mov if ins.op_count() == 2 && ins.op_kind(1) == OpKind::Memory && general(0) => {
            let v = m.load(addr(), msize)?;
            write_reg(cpu, ins.op0_register(), v);
        }
        M::Mov if ins.op_count() == 2 && ins.op_kind(0) == OpKind::Memory && (general(1) || ins.op_kind(1) != OpKind::Register) => {
            let v = match ins.op_kind(1) {
                OpKind::Register => read_reg(cpu, ins.op_register(1)),
                _ => ins.immediate(1) as u32,
            };
            m.store(addr(), msize, v)?;
        }
        M::Movzx | M::Movsx if ins.op_kind(1) == OpKind::Memory => {
            let v = m.load(addr(), msize)?;
            let v = match (mn, msize) {
                (M::Movsx, 1) => v as u8 as i8 as i32 as u32,
                (M::Movsx, _) => v as u16 as i16 as i32 as u32,
                _ => v,
            };
            write_reg(cpu, ins.op0_register(), v);
        }
        _ => return Ok(None),
    }
    Ok(Some(Flow::Next))
}

/// For a move [`emulate_mmio`] runs as one access (`mov`, `movzx`, `movsx` with a memory
/// operand; not a string instruction): whether that access goes to device memory now.
/// None for other instructions, and when the address does not translate.
pub fn device_move(cpu: &Cpu, mem: &mut Memory, ins: &Instruction) -> Option<bool> {
    if is_memory_string(ins) || !matches!(ins.mnemonic(), Mnemonic::Mov | Mnemonic::Movzx | Mnemonic::Movsx) {
        return None;
    }
    let operand = (0..ins.op_count()).find(|&i| ins.op_kind(i) == OpKind::Memory)?;
    let linear = memory_linear(cpu, ins, 0);
    let phys = mem.mmu.translate(linear, Access::data(operand == 0, mem.user)).ok()?;
    Some(mem.mmu.is_device(phys >> 12))
}

/// One piece of an instruction's access to device memory: 1, 2 or 4 bytes within one
/// page, as the device sees it (wider accesses are split into dwords, as QEMU does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceChunk {
    /// Guest linear address.
    pub linear: u32,
    /// Guest-physical address (in a device range).
    pub phys: u64,
    /// 1, 2 or 4.
    pub size: u8,
    /// The instruction reads it (the device is read before the instruction runs).
    pub read: bool,
    /// The instruction writes it (the device is written after the instruction ran).
    pub write: bool,
    /// No device is there but unbacked memory: it reads as all ones and takes no writes.
    pub unbacked: bool,
}

/// The value of a register in an address: general registers, and segment registers'
/// bases (as iced-x86's address computation asks for them).
fn address_register(cpu: &Cpu, r: Register) -> Option<u64> {
    if r.is_segment_register() {
        return Some(cpu.segment(Seg::from_iced(r)?).base as u64);
    }
    r.is_gpr().then(|| read_reg(cpu, r) as u64)
}

/// Splits an access into device-sized pieces that never cross a page.
fn split(linear: u32, size: usize) -> Vec<(u32, u8)> {
    let step = size.min(4);
    let mut out = Vec::new();
    let mut done = 0;
    while done < size {
        let n = step.min(size - done);
        let at = linear.wrapping_add(done as u32);
        if (at & 0xFFF) as usize + n > 0x1000 {
            out.extend((0..n as u32).map(|b| (at.wrapping_add(b), 1)));
        } else {
            out.push((at, n as u8));
        }
        done += n;
    }
    out
}

/// The device-memory (and unbacked-memory) pieces every memory access of `ins` (explicit operands and the
/// stack alike) touches, after the guest's page-permission checks: an access the guest's
/// tables forbid raises its #PF here, before any device sees it. Pieces whose page does
/// not translate are left out; running the instruction raises their #PF.
pub fn plan_device_access(cpu: &Cpu, mem: &mut Memory, ins: &Instruction) -> Result<Vec<DeviceChunk>, Exception> {
    let mut factory = InstructionInfoFactory::new();
    let info = factory.info(ins);
    let user = cpu.cpl == 3;
    let mut chunks = Vec::new();
    for used in info.used_memory() {
        let (read, write) = match used.access() {
            OpAccess::Read | OpAccess::CondRead => (true, false),
            OpAccess::Write | OpAccess::CondWrite => (false, true),
            OpAccess::ReadWrite | OpAccess::ReadCondWrite => (true, true),
            _ => continue,
        };
        let size = used.memory_size().size();
        let Some(linear) = used.virtual_address(0, |r, _, _| address_register(cpu, r)) else {
            continue;
        };
        for (at, n) in split(linear as u32, size) {
            let Ok(phys) = mem.mmu.translate(at, Access::data(false, user)) else {
                continue;
            };
            let unbacked = mem.mmu.is_unbacked(phys >> 12);
            if !mem.mmu.is_device(phys >> 12) && !unbacked {
                continue;
            }
            let phys = mem.mmu.translate(at, Access::data(write, user))?;
            chunks.push(DeviceChunk { linear: at, phys, size: n, read, write, unbacked });
        }
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn wide_accesses_split_into_dwords_and_page_crossings_into_bytes() {
        assert_eq!(split(0x1000, 4), vec![(0x1000, 4)]);
        assert_eq!(split(0x1000, 8), vec![(0x1000, 4), (0x1004, 4)]);
        assert_eq!(split(0x1000, 10), vec![(0x1000, 4), (0x1004, 4), (0x1008, 2)]);
        assert_eq!(split(0x1FFE, 4), vec![(0x1FFE, 1), (0x1FFF, 1), (0x2000, 1), (0x2001, 1)]);
        assert_eq!(split(0xFFFF_FFFF, 2), vec![(0xFFFF_FFFF, 1), (0, 1)]);
    }
}

#[cfg(test)]
mod emulation_tests {
    //! The device-memory forms drivers use, against a fake physical map: devices at
    //! [`DEVICE`] and up, nothing at [`UNBACKED`] and up, RAM below.
    use std::collections::HashMap;

    use iced_x86::code_asm::*;

    use super::super::testing::*;
    use super::*;

    const DEVICE: u32 = 0xFED0_0000;
    const UNBACKED: u32 = 0xE000_0000;

    impl MappedMemory for FlatMemory {
        fn route(&mut self, linear: u32, _write: bool) -> Result<Target, Exception> {
            Ok(if linear >= DEVICE {
                Target::Device(linear as u64)
            } else if linear >= UNBACKED {
                Target::Unbacked
            } else {
                Target::Ram
            })
        }
    }

    /// A device of registers: reads answer from `regs` (0 if absent), writes are kept.
    #[derive(Default)]
    struct Regs {
        regs: HashMap<u64, u32>,
        writes: Vec<(u64, u8, u32)>,
    }

    impl DeviceMemory for Regs {
        fn read(&mut self, phys: u64, size: u8) -> u32 {
            let v = self.regs.get(&phys).copied().unwrap_or(0);
            if size == 4 { v } else { v & ((1 << (8 * size)) - 1) }
        }
        fn write(&mut self, phys: u64, size: u8, v: u32) {
            self.writes.push((phys, size, v));
        }
    }

    fn run(
        m: &mut Machine,
        dev: &mut Regs,
        build: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
    ) -> Result<Option<Flow>, Exception> {
        let ins = asm(build);
        emulate_mmio(&mut m.cpu, &mut m.mem, dev, &ins)
    }

    #[test]
    fn mov_movzx_movsx_reach_the_device_with_the_operand_size() {
        let (mut m, mut dev) = (Machine::new(), Regs::default());
        dev.regs.insert(DEVICE as u64 + 0x10, 0x8765_F0E1);
        assert_eq!(run(&mut m, &mut dev, |a| a.mov(eax, dword_ptr(DEVICE + 0x10))), Ok(Some(Flow::Next)));
        assert_eq!(m.cpu.gpr(0), 0x8765_F0E1);
        assert_eq!(run(&mut m, &mut dev, |a| a.movsx(ebx, byte_ptr(DEVICE + 0x10))), Ok(Some(Flow::Next)));
        assert_eq!(m.cpu.gpr(3), 0xFFFF_FFE1, "sign-extended byte");
        assert_eq!(run(&mut m, &mut dev, |a| a.movzx(ecx, word_ptr(DEVICE + 0x10))), Ok(Some(Flow::Next)));
        assert_eq!(m.cpu.gpr(1), 0xF0E1);
        m.cpu.set_gpr(2, 0x1234_5678);
        assert_eq!(run(&mut m, &mut dev, |a| a.mov(word_ptr(DEVICE + 4), dx)), Ok(Some(Flow::Next)));
        assert_eq!(run(&mut m, &mut dev, |a| a.mov(byte_ptr(DEVICE + 8), 0x5A)), Ok(Some(Flow::Next)));
        assert_eq!(dev.writes, [(DEVICE as u64 + 4, 2, 0x5678), (DEVICE as u64 + 8, 1, 0x5A)]);
    }

    #[test]
    fn unbacked_memory_reads_all_ones_and_drops_writes() {
        let (mut m, mut dev) = (Machine::new(), Regs::default());
        assert_eq!(run(&mut m, &mut dev, |a| a.mov(ax, word_ptr(UNBACKED))), Ok(Some(Flow::Next)));
        assert_eq!(m.cpu.gpr(0) & 0xFFFF, 0xFFFF);
        assert_eq!(run(&mut m, &mut dev, |a| a.mov(dword_ptr(UNBACKED), eax)), Ok(Some(Flow::Next)));
        assert!(dev.writes.is_empty());
    }

    #[test]
    fn string_copies_between_ram_and_devices() {
        let (mut m, mut dev) = (Machine::new(), Regs::default());
        m.mem.write_u32(0x500, 0xAAAA_0001);
        m.mem.write_u32(0x504, 0xBBBB_0002);
        m.cpu.set_gpr(6, 0x500);
        m.cpu.set_gpr(7, DEVICE);
        m.cpu.set_gpr(1, 2);
        assert_eq!(run(&mut m, &mut dev, |a| a.rep().movsd()), Ok(Some(Flow::Next)));
        assert_eq!(dev.writes, [(DEVICE as u64, 4, 0xAAAA_0001), (DEVICE as u64 + 4, 4, 0xBBBB_0002)]);
        assert_eq!((m.cpu.gpr(6), m.cpu.gpr(7), m.cpu.gpr(1)), (0x508, DEVICE + 8, 0));
    }

    #[test]
    fn other_forms_are_left_to_native_execution() {
        let (mut m, mut dev) = (Machine::new(), Regs::default());
        assert_eq!(run(&mut m, &mut dev, |a| a.add(dword_ptr(DEVICE), eax)), Ok(None));
        assert!(dev.writes.is_empty(), "nothing touched");
    }
}
