//! The monitor's half of the translator's callouts: instructions executed against the
//! virtual CPU instead of the host CPU — privileged and sensitive instructions, I/O,
//! segment loads, far control transfers, software interrupts, and the few unprivileged
//! instructions 64-bit mode lost (BCD arithmetic, `bound`, `arpl`).
//!
//! [`emulate`] decodes nothing: it gets the iced-x86 instruction the translator decoded,
//! reads and writes its operands through [`operands`], and returns what happened as a
//! [`Flow`], or the exception the instruction raises (delivered by the caller as a fault
//! at the instruction).

pub(crate) mod bcd;
mod control;
mod descriptors;
mod io;
pub(crate) mod mmio;
pub mod operands;
mod string;
mod system;
#[cfg(test)]
pub(crate) mod testing;

use bt86_translator::classify::SYSTEM_INSTRUCTIONS;
use bt86_translator::flags;
use iced_x86::{Instruction, Mnemonic};

use super::segments::SystemMemory;
use super::{Cpu, Exception};

/// What an I/O port access asked for, beyond its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoEffect {
    /// Nothing special.
    None,
    /// The guest asked to stop with this host exit status (isa-debug-exit).
    Exit(i32),
    /// The guest asked for a machine reset.
    Reset,
    /// The guest turned the machine off (ACPI S5).
    PowerOff,
}

/// The port-I/O side of the machine, as the emulator sees it.
pub trait PortIo {
    /// `in` of `size` bytes.
    fn io_in(&mut self, port: u16, size: u8) -> u32;
    /// `out` of `size` bytes.
    fn io_out(&mut self, port: u16, size: u8, value: u32) -> IoEffect;
    /// IA32_APIC_BASE was written with `value` (the local APIC follows its enable bit).
    fn apic_base_written(&mut self, _value: u64) {}
}

/// Guest data accesses by linear address, at the current privilege: RAM (or, for
/// device-memory emulation, RAM and devices).
pub trait DataAccess {
    /// Reads `size` (1, 2, 4) bytes, little-endian.
    fn load(&mut self, linear: u32, size: u8) -> Result<u32, Exception>;
    /// Writes `size` (1, 2, 4) bytes, little-endian.
    fn store(&mut self, linear: u32, size: u8, v: u32) -> Result<(), Exception>;
}

/// Guest memory as the emulation sees it: data accesses ([`DataAccess`]), the implicit
/// supervisor accesses to descriptor tables and the TSS ([`SystemMemory`]), and what
/// paging must hear of. The machine's is its `Memory` (through the shadow MMU); the unit
/// tests use a flat array.
pub trait CpuMemory: DataAccess + SystemMemory {
    /// `invlpg` of the page holding `linear`.
    fn invlpg(&mut self, linear: u32);
    /// CR0, CR3, CR4 or EFER changed (`cr3_written`: CR3 was loaded, even with the same
    /// value).
    fn paging_changed(&mut self, regs: bt86_shadow_mmu::PagingRegs, cr3_written: bool);
}

/// The machine around the CPU.
pub struct Env<'a> {
    /// Guest memory.
    pub mem: &'a mut dyn CpuMemory,
    /// Ports.
    pub io: &'a mut dyn PortIo,
    /// The host CPU's answers where the architecture leaves results undefined.
    pub model: crate::cpu::host_model::HostModel,
}

/// How an emulated instruction ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Completed; EIP is the next instruction.
    Next,
    /// Completed and transferred control (EIP, maybe CS, changed).
    Jump,
    /// `hlt`: wait for an interrupt (EIP is the next instruction).
    Halt,
    /// A software interrupt (`int n`, `int3`, `into` with OF, `int1`) for the caller to
    /// deliver, with the next instruction's EIP as the return address. EIP is still
    /// the instruction's.
    Interrupt(u8, super::exceptions::EventKind),
    /// Completed; maskable interrupts stay inhibited for one instruction (`sti`).
    Shadow,
    /// Completed; interrupts and debug traps (single-step too) stay inhibited for one
    /// instruction (`mov ss`, `pop ss`).
    StackShadow,
    /// The guest asked the VM to stop with this exit status.
    Exit(i32),
    /// The guest asked for a reset.
    Reset,
    /// The guest turned the machine off.
    PowerOff,
    /// bt86 cannot execute this instruction.
    Unsupported(String),
}

/// Executes `ins` (at `cpu.ctx.eip`; the next instruction at `next_eip`).
pub fn emulate(cpu: &mut Cpu, env: &mut Env<'_>, ins: &Instruction, next_eip: u32) -> Result<Flow, Exception> {
    use Mnemonic as M;
    let flow = match ins.mnemonic() {
        M::In | M::Out | M::Insb | M::Insw | M::Insd | M::Outsb | M::Outsw | M::Outsd => io::emulate_io(cpu, env, ins)?,
        M::Hlt | M::Cli | M::Sti | M::Popf | M::Popfd | M::Mov | M::Rdtsc => system::emulate_system(cpu, env, ins)?,
        m if SYSTEM_INSTRUCTIONS.contains(&m) => system::emulate_system(cpu, env, ins)?,
        M::Lar | M::Lsl | M::Verr | M::Verw | M::Arpl => descriptors::emulate_descriptor(cpu, env, ins)?,
        M::Pop | M::Lds | M::Les | M::Lfs | M::Lgs | M::Lss => descriptors::emulate_segment_load(cpu, env, ins)?,
        M::Jmp
        | M::Call
        | M::Retf
        | M::Iret
        | M::Iretd
        | M::Int
        | M::Int1
        | M::Int3
        | M::Into
        | M::Sysenter
        | M::Sysexit
        | M::Syscall
        | M::Sysret => {
            return control::emulate_control(cpu, env, ins, next_eip);
        }
        M::Daa | M::Das | M::Aaa | M::Aas | M::Aam | M::Aad => bcd::emulate_bcd(cpu, env.model.bcd, ins)?,
        M::Bound => bcd::emulate_bound(cpu, env, ins)?,
        M::Enter => control::emulate_enter(cpu, env, ins)?,
        _ if string::is_memory_string(ins) => string::emulate_string(cpu, env.mem, ins)?,
        _ => {
            return Ok(Flow::Unsupported(format!("no emulation for {:?}", ins.mnemonic())));
        }
    };
    if matches!(flow, Flow::Next | Flow::Halt | Flow::Shadow | Flow::StackShadow | Flow::Exit(_) | Flow::Reset | Flow::PowerOff) {
        cpu.ctx.eip = next_eip;
    }
    Ok(flow)
}

/// Sets or clears an arithmetic flag in the saved guest flags.
pub(crate) fn set_flag(cpu: &mut Cpu, flag: u32, on: bool) {
    if on {
        cpu.ctx.host_flags |= flag;
    } else {
        cpu.ctx.host_flags &= !flag;
    }
}

/// Sets ZF.
pub(crate) fn set_zf(cpu: &mut Cpu, on: bool) {
    set_flag(cpu, flags::ZF, on);
}

/// #GP(0) unless CPL is 0.
pub(crate) fn require_cpl0(cpu: &Cpu) -> Result<(), Exception> {
    if cpu.cpl == 0 { Ok(()) } else { Err(Exception::gp(0)) }
}
