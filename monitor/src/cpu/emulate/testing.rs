//! A small machine for the emulation's unit tests: a flat array as guest memory (paging
//! off), ports that record what they are told, and a CPU in the state Multiboot leaves.
//! Descriptors are built here from the SDM's layout (Vol. 3A, 3.4.5 and 6.14.1), not with
//! the code under test, and expected values in the tests come from the SDM.

use std::collections::HashMap;

use iced_x86::code_asm::{CodeAssembler, IcedError};
use iced_x86::{Decoder, DecoderOptions, Instruction};

use super::{CpuMemory, DataAccess, Env, PortIo, emulate};
pub use super::{Flow, IoEffect};
use crate::cpu::host_model::HostModel;
use crate::cpu::segments::SystemMemory;
use crate::cpu::{Cpu, Exception, SegmentCache, Vector};
use bt86_translator::Seg;

/// EFLAGS bits (SDM Vol. 1, 3.4.3).
pub const CF: u32 = 1 << 0;
pub const PF: u32 = 1 << 2;
pub const AF: u32 = 1 << 4;
pub const ZF: u32 = 1 << 6;
pub const SF: u32 = 1 << 7;
pub const IF: u32 = 1 << 9;
pub const DF: u32 = 1 << 10;
pub const OF: u32 = 1 << 11;
pub const IOPL3: u32 = 3 << 12;

/// Guest RAM size.
const RAM: usize = 1 << 20;
/// Where code is assembled (EIP of the instruction under test).
pub const CODE: u32 = 0x1_0000;
/// The GDT's base.
pub const GDT: u32 = 0x2000;
/// A TSS's base.
pub const TSS: u32 = 0x3000;
/// The IDT's base.
pub const IDT: u32 = 0x6000;
/// Initial ESP.
pub const STACK: u32 = 0x8000;

/// Guest memory: a flat array, linear = physical.
pub struct FlatMemory {
    pub ram: Vec<u8>,
    /// `invlpg` linear addresses, in order.
    pub invlpgs: Vec<u32>,
    /// Paging-register changes reported (with `cr3_written`).
    pub paging_changes: Vec<bool>,
}

impl FlatMemory {
    fn range(&self, addr: u32, len: usize) -> std::ops::Range<usize> {
        let a = addr as usize;
        assert!(a + len <= self.ram.len(), "test memory access at {addr:#x} beyond its RAM");
        a..a + len
    }
    pub fn write_u64(&mut self, addr: u32, v: u64) {
        let r = self.range(addr, 8);
        self.ram[r].copy_from_slice(&v.to_le_bytes());
    }
    pub fn read_u64(&self, addr: u32) -> u64 {
        u64::from_le_bytes(self.ram[self.range(addr, 8)].try_into().unwrap())
    }
    pub fn write_u32(&mut self, addr: u32, v: u32) {
        let r = self.range(addr, 4);
        self.ram[r].copy_from_slice(&v.to_le_bytes());
    }
    pub fn write_u16(&mut self, addr: u32, v: u16) {
        let r = self.range(addr, 2);
        self.ram[r].copy_from_slice(&v.to_le_bytes());
    }
    pub fn read_u32(&self, addr: u32) -> u32 {
        u32::from_le_bytes(self.ram[self.range(addr, 4)].try_into().unwrap())
    }
}

impl DataAccess for FlatMemory {
    fn load(&mut self, linear: u32, size: u8) -> Result<u32, Exception> {
        let mut b = [0u8; 4];
        b[..size as usize].copy_from_slice(&self.ram[self.range(linear, size as usize)]);
        Ok(u32::from_le_bytes(b))
    }
    fn store(&mut self, linear: u32, size: u8, v: u32) -> Result<(), Exception> {
        let r = self.range(linear, size as usize);
        self.ram[r].copy_from_slice(&v.to_le_bytes()[..size as usize]);
        Ok(())
    }
}

impl SystemMemory for FlatMemory {
    fn read_sys(&mut self, addr: u32, buf: &mut [u8]) -> Result<(), Exception> {
        buf.copy_from_slice(&self.ram[self.range(addr, buf.len())]);
        Ok(())
    }
    fn write_sys(&mut self, addr: u32, data: &[u8]) -> Result<(), Exception> {
        let r = self.range(addr, data.len());
        self.ram[r].copy_from_slice(data);
        Ok(())
    }
}

impl CpuMemory for FlatMemory {
    fn invlpg(&mut self, linear: u32) {
        self.invlpgs.push(linear);
    }
    fn paging_changed(&mut self, _regs: bt86_shadow_mmu::PagingRegs, cr3_written: bool) {
        self.paging_changes.push(cr3_written);
    }
}

/// Ports: reads answer from `values` (all ones if absent), writes are recorded and
/// answered with `effect`.
#[derive(Default)]
pub struct Ports {
    pub values: HashMap<u16, u32>,
    pub writes: Vec<(u16, u8, u32)>,
    pub reads: Vec<(u16, u8)>,
    pub effect: Option<IoEffect>,
}

impl PortIo for Ports {
    fn io_in(&mut self, port: u16, size: u8) -> u32 {
        self.reads.push((port, size));
        let mask = if size == 4 { u32::MAX } else { (1 << (8 * size)) - 1 };
        self.values.get(&port).copied().unwrap_or(u32::MAX) & mask
    }
    fn io_out(&mut self, port: u16, size: u8, value: u32) -> IoEffect {
        self.writes.push((port, size, value));
        self.effect.unwrap_or(IoEffect::None)
    }
}

/// A code or data segment descriptor (SDM Vol. 3A, figure 3-8): `access` is byte 5 (P,
/// DPL, S, type), `flags` the high nibble of byte 6 (G, D/B, L, AVL).
pub fn seg_desc(base: u32, limit: u32, access: u8, flags: u8) -> u64 {
    let lo = (limit & 0xFFFF) | (base & 0xFFFF) << 16;
    let hi = (base >> 16) & 0xFF | (access as u32) << 8 | (limit & 0xF_0000) | ((flags as u32) & 0xF) << 20 | (base & 0xFF00_0000);
    lo as u64 | (hi as u64) << 32
}

/// A call gate (SDM Vol. 3A, figure 5-8): type 0xC (32-bit), present, with `dpl`.
pub fn call_gate(selector: u16, offset: u32, dpl: u8, params: u8) -> u64 {
    let lo = (offset & 0xFFFF) | (selector as u32) << 16;
    let hi = (params as u32 & 0x1F) | 0x8C00 | (dpl as u32) << 13 | (offset & 0xFFFF_0000);
    lo as u64 | (hi as u64) << 32
}

/// An interrupt gate (type 0xE) or trap gate (0xF), 32-bit and present (SDM Vol. 3A,
/// figure 6-2).
pub fn gate(selector: u16, offset: u32, dpl: u8, trap: bool) -> u64 {
    let lo = (offset & 0xFFFF) | (selector as u32) << 16;
    let hi = (offset & 0xFFFF_0000) | (0x80 | (dpl as u32) << 5 | if trap { 0xF } else { 0xE }) << 8;
    lo as u64 | (hi as u64) << 32
}

/// Flat 4 GiB, 32-bit (G = 1, D = 1).
pub const FLAT: (u32, u32, u8) = (0, 0xF_FFFF, 0xC);
/// Access bytes: present, S = 1, with DPL and type.
pub const CODE_XR: u8 = 0x9A;
pub const CODE_X: u8 = 0x98;
pub const CODE_CONFORMING_XR: u8 = 0x9E;
pub const DATA_RW: u8 = 0x92;
pub const DATA_RO: u8 = 0x90;
/// DPL 3 of an access byte.
pub const DPL3: u8 = 0x60;

/// The flat segments of [`Machine::with_gdt`]: kernel code and data (DPL 0), user code
/// and data (DPL 3).
pub const KCODE: u16 = 0x08;
pub const KDATA: u16 = 0x10;
pub const UCODE: u16 = 0x18;
pub const UDATA: u16 = 0x20;

/// The machine the tests run an instruction on.
pub struct Machine {
    pub cpu: Cpu,
    pub mem: FlatMemory,
    pub ports: Ports,
}

impl Machine {
    /// Protected mode, CPL 0, flat segments (Multiboot's state), ESP = [`STACK`].
    pub fn new() -> Machine {
        let mut cpu = Cpu::multiboot();
        cpu.set_gpr(4, STACK);
        Machine { cpu, mem: FlatMemory { ram: vec![0; RAM], invlpgs: Vec::new(), paging_changes: Vec::new() }, ports: Ports::default() }
    }

    /// A machine whose GDT holds flat kernel code, kernel data, user code and user data
    /// ([`KCODE`], [`KDATA`], [`UCODE`], [`UDATA`]), then `extra` (from selector 0x28 on);
    /// CS is [`KCODE`].
    pub fn with_gdt(extra: &[u64]) -> Machine {
        let mut m = Machine::new();
        let (b, l, f) = FLAT;
        let mut all = vec![
            seg_desc(b, l, CODE_XR, f),
            seg_desc(b, l, DATA_RW, f),
            seg_desc(b, l, CODE_XR | DPL3, f),
            seg_desc(b, l, DATA_RW | DPL3, f),
        ];
        all.extend_from_slice(extra);
        m.gdt(&all);
        m.cpu.set_segment(Seg::Cs, SegmentCache::from_descriptor(KCODE, m.gdt_entry(1)));
        m
    }

    /// Writes `descriptors` as GDT entries 1.. (entry 0 is the null descriptor) and
    /// points GDTR at them.
    pub fn gdt(&mut self, descriptors: &[u64]) {
        self.mem.write_u64(GDT, 0);
        for (i, d) in descriptors.iter().enumerate() {
            self.mem.write_u64(GDT + 8 * (i as u32 + 1), *d);
        }
        self.cpu.gdtr = crate::cpu::TableReg { base: GDT, limit: (8 * (descriptors.len() + 1) - 1) as u16 };
    }

    /// An IDT of 256 empty entries at [`IDT`] with `gates` filled in.
    pub fn idt(&mut self, gates: &[(u8, u64)]) {
        for v in 0..256 {
            self.mem.write_u64(IDT + 8 * v, 0);
        }
        for &(v, g) in gates {
            self.mem.write_u64(IDT + 8 * v as u32, g);
        }
        self.cpu.idtr = crate::cpu::TableReg { base: IDT, limit: 256 * 8 - 1 };
    }

    /// GDT entry `index`'s descriptor as memory holds it now.
    pub fn gdt_entry(&self, index: u16) -> u64 {
        self.mem.read_u64(GDT + 8 * index as u32)
    }

    /// Runs in user mode: CS = [`UCODE`] and SS = [`UDATA`] with RPL 3 (the GDT of
    /// [`Machine::with_gdt`]), CPL 3.
    pub fn enter_user(&mut self) {
        let c = SegmentCache { access: 0xFB, ..SegmentCache::flat_code(UCODE | 3) };
        let s = SegmentCache { access: 0xF3, ..SegmentCache::flat_data(UDATA | 3) };
        self.cpu.set_segment(Seg::Cs, c);
        self.cpu.set_segment(Seg::Ss, s);
        self.cpu.cpl = 3;
    }

    /// Sets EFLAGS (bit 1 is always 1).
    pub fn set_flags(&mut self, v: u32) {
        self.cpu.ctx.set_eflags(v | 2);
    }

    /// Full EFLAGS.
    pub fn flags(&self) -> u32 {
        self.cpu.eflags()
    }

    /// Pushes a dword on the guest stack.
    pub fn push(&mut self, v: u32) {
        let sp = self.cpu.gpr(4) - 4;
        self.mem.write_u32(sp, v);
        self.cpu.set_gpr(4, sp);
    }

    /// Executes `ins` (at its IP).
    pub fn run(&mut self, ins: &Instruction) -> Result<Flow, Exception> {
        self.cpu.ctx.eip = ins.ip32();
        let mut env = Env { mem: &mut self.mem, io: &mut self.ports, model: HostModel::INTEL };
        emulate(&mut self.cpu, &mut env, ins, ins.next_ip32())
    }

    /// Assembles one instruction at [`CODE`] and executes it.
    pub fn exec(&mut self, build: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Result<Flow, Exception> {
        self.run(&asm(build))
    }

    /// Decodes `bytes` at [`CODE`] and executes the instruction.
    pub fn exec_bytes(&mut self, bytes: &[u8]) -> Result<Flow, Exception> {
        self.run(&decode(bytes))
    }
}

/// One instruction assembled at [`CODE`], as the decoder (and so the translator) sees it.
pub fn asm(build: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Instruction {
    let mut a = CodeAssembler::new(32).unwrap();
    build(&mut a).unwrap();
    decode(&a.assemble(CODE as u64).unwrap())
}

/// The first instruction of `bytes`, decoded at [`CODE`] in 32-bit mode.
pub fn decode(bytes: &[u8]) -> Instruction {
    let ins = Decoder::with_ip(32, bytes, CODE as u64, DecoderOptions::NONE).decode();
    assert!(!ins.is_invalid(), "cannot decode {bytes:02x?}");
    ins
}

/// #GP(code).
pub fn gp(code: u32) -> Result<Flow, Exception> {
    Err(Exception::new(Vector::GP, code))
}

/// An exception with an error code.
pub fn fault(vector: u8, code: u32) -> Result<Flow, Exception> {
    Err(Exception::new(vector, code))
}

/// #UD.
pub fn ud() -> Result<Flow, Exception> {
    Err(Exception::plain(Vector::UD))
}
