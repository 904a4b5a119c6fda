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

use super::Flow;
use super::operands::{memory_linear, read_reg, write_reg};
use super::string::{DataAccess, emulate_string, is_memory_string};
use crate::cpu::{Cpu, Exception};
use crate::machine::memory::Memory;

/// The devices' side of a device-memory access (guest-physical addresses).
pub trait DeviceMemory {
    /// Reads `size` bytes.
    fn read(&mut self, phys: u64, size: u8) -> u32;
    /// Writes `size` bytes.
    fn write(&mut self, phys: u64, size: u8, v: u32);
}

/// RAM and device memory by linear address.
struct Routed<'a> {
    mem: &'a mut Memory,
    dev: &'a mut dyn DeviceMemory,
}

/// Where a guest-physical address leads.
enum Target {
    Ram,
    Device(u64),
    /// No RAM and no device: reads give all ones, writes are dropped.
    Unbacked,
}

impl Routed<'_> {
    /// Where the access to `linear` goes (an access that crosses out of a device page is
    /// taken byte-wise from RAM and devices).
    fn target(&mut self, linear: u32, write: bool) -> Result<Target, Exception> {
        let user = self.mem.user;
        let phys = self.mem.mmu.translate(linear, Access::data(write, user))?;
        Ok(if self.mem.mmu.is_device(phys >> 12) {
            Target::Device(phys)
        } else if self.mem.mmu.is_unbacked(phys >> 12) {
            Target::Unbacked
        } else {
            Target::Ram
        })
    }
}

impl DataAccess for Routed<'_> {
    fn load(&mut self, linear: u32, size: u8) -> Result<u32, Exception> {
        match self.target(linear, false)? {
            Target::Device(phys) => Ok(self.dev.read(phys, size)),
            Target::Unbacked => Ok(u32::MAX >> (32 - 8 * size as u32)),
            Target::Ram => self.mem.read_uint(linear, size),
        }
    }

    fn store(&mut self, linear: u32, size: u8, v: u32) -> Result<(), Exception> {
        match self.target(linear, true)? {
            Target::Device(phys) => {
                self.dev.write(phys, size, v);
                Ok(())
            }
            Target::Unbacked => Ok(()),
            Target::Ram => self.mem.write_uint(linear, size, v),
        }
    }
}

/// The simple forms drivers use most — `mov`, `movzx`/`movsx` and the string
/// instructions — executed here against RAM and the devices. `Ok(None)`: not one of
/// them; the monitor runs the instruction natively against stand-in pages instead (see
/// [`plan_device_access`]).
pub fn emulate_mmio(cpu: &mut Cpu, mem: &mut Memory, dev: &mut dyn DeviceMemory, ins: &Instruction) -> Result<Option<Flow>, Exception> {
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
