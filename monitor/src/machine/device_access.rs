//! Guest instructions that touch device memory, or store to unbacked memory. Device pages
//! are never mapped in a window and unbacked ones only read-only, so the access faults and
//! lands here with CS:EIP at the instruction.
//!
//! Two ways to execute it. The moves and string instructions drivers use all the time
//! are emulated in Rust against the devices (`cpu::emulate::mmio`). Anything else runs
//! natively, so its semantics (flags, MMX/SSE/x87 loads, `cmpxchg8b`, ...) are the host
//! CPU's own: the device pages it touches get private stand-in pages holding the
//! devices' current values, the instruction runs as a one-instruction translation, the
//! bytes it stored go to the devices, and the stand-ins are unmapped again.

use bt86_shadow_mmu::WindowKind;
use bt86_translator::{Callout, CalloutKind, ExitReason, Mode, Seg};
use iced_x86::{Decoder, DecoderOptions, Instruction};

use super::run::Resume;
use super::{Machine, Stop};
use crate::cpu::emulate::Flow;
use crate::cpu::emulate::mmio::{DeviceChunk, DeviceMemory, device_move, emulate_mmio, plan_device_access};

/// The devices as device memory, at the current virtual time.
struct DevicePorts<'a> {
    platform: &'a mut bt86_devices::Platform,
    now_ns: u64,
}

impl DeviceMemory for DevicePorts<'_> {
    fn read(&mut self, phys: u64, size: u8) -> u32 {
        self.platform.mmio_read(phys, size, self.now_ns)
    }
    fn write(&mut self, phys: u64, size: u8, v: u32) {
        self.platform.mmio_write(phys, size, v, self.now_ns)
    }
}

impl Machine {
    /// The instruction at CS:EIP touched device memory: execute it against the devices.
    pub(super) fn device_access(&mut self, mode: Mode) -> Result<Option<Resume>, Stop> {
        let eip = self.cpu.ctx.eip;
        let Some(ins) = self.device_instruction() else {
            let at = self.cpu.linear_eip();
            return Err(Stop::Unsupported(format!("cannot read the instruction at {at:#x} that touched device memory"), self.dump()));
        };
        self.stats.callout(ins.mnemonic(), true);
        self.mem.user = self.cpu.cpl == 3;
        let mut dev = DevicePorts { platform: &mut self.platform, now_ns: self.clock.now() };
        match emulate_mmio(&mut self.cpu, &mut self.mem, &mut dev, &ins) {
            Ok(Some(Flow::Next)) => {
                self.cpu.ctx.eip = ins.next_ip32();
                self.devices_touched();
                if mode.has(Mode::TRAP_FLAG) {
                    return self.single_step_trap();
                }
                Ok(None)
            }
            Ok(Some(Flow::Unsupported(why))) => {
                Err(Stop::Unsupported(format!("bt86 cannot emulate the instruction at EIP {eip:#010x}: {why}"), self.dump()))
            }
            Ok(Some(_)) => Ok(None),
            Ok(None) => self.run_against_stand_ins(&ins, mode),
            Err(e) => self.fault(e),
        }
    }

    /// After a device access: a timer it programmed that is already due (the APIC timer
    /// with a tiny count) raises its interrupt now rather than through the host timer's
    /// signal; the host timer is armed for the next deadline.
    fn devices_touched(&mut self) {
        let now = self.clock.now();
        if self.platform.next_timer_deadline_ns().is_some_and(|d| d <= now) {
            self.platform.update_timers(now);
        }
        self.arm_host_timer(now);
    }

    /// The instruction at CS:EIP that touched device memory, decoded (None if its bytes
    /// cannot be read).
    fn device_instruction(&mut self) -> Option<Instruction> {
        let mut bytes = [0u8; 15];
        if !self.mem.peek(self.cpu.linear_eip(), &mut bytes) {
            return None;
        }
        let bitness = if self.cpu.segment(Seg::Cs).default_big() { 32 } else { 16 };
        Some(Decoder::with_ip(bitness, &bytes, u64::from(self.cpu.ctx.eip), DecoderOptions::NONE).decode())
    }

    /// The instruction at CS:EIP in translated code faulted on device memory: if it is a
    /// move (one access, which a device callout runs without the stand-in pages), count
    /// it, and once it has done so often, drop its translations so that it is translated
    /// again as a device callout ([`Machine::device_callout`]).
    pub(super) fn note_device_fault(&mut self) {
        let linear = self.cpu.linear_eip();
        self.mem.user = self.cpu.cpl == 3;
        let Some(ins) = self.device_instruction() else {
            return;
        };
        if device_move(&self.cpu, &mut self.mem, &ins) == Some(true) && self.translator.note_device_fault(linear) {
            self.drop_translations_at(linear);
        }
    }

    /// Drops the translations of the code page holding `linear`.
    fn drop_translations_at(&mut self, linear: u32) {
        if let Ok(phys) = self.mem.translate_fetch(linear, self.cpu.cpl == 3) {
            self.translator.invalidate_page(phys >> 12);
        }
    }

    /// A device callout: the instruction is executed against the devices (or RAM, where
    /// its operand now points) without the host fault; resumes in the fragment.
    pub(super) fn device_callout(&mut self, c: &Callout, mode: Mode) -> Result<Option<Resume>, Stop> {
        self.mem.user = self.cpu.cpl == 3;
        if device_move(&self.cpu, &mut self.mem, &c.instr) == Some(false) {
            // Its operand is in RAM now: a native store is cheaper again. (Counted afresh
            // from here: a few device faults make it a callout once more.)
            let linear = self.cpu.linear_eip();
            self.translator.forget_device_instruction(linear);
            self.drop_translations_at(linear);
        }
        let mut dev = DevicePorts { platform: &mut self.platform, now_ns: self.clock.now() };
        match emulate_mmio(&mut self.cpu, &mut self.mem, &mut dev, &c.instr) {
            Ok(Some(Flow::Next)) => {
                self.cpu.ctx.eip = c.next_eip;
                self.devices_touched();
                if mode.has(Mode::TRAP_FLAG) {
                    return self.single_step_trap();
                }
                Ok(c.resume.map(|host| Resume { host, fragment: c.fragment }))
            }
            // Not a move or string instruction: the general way (natively, on stand-ins).
            Ok(None) => self.device_access(mode),
            Ok(Some(Flow::Unsupported(why))) => {
                Err(Stop::Unsupported(format!("bt86 cannot emulate the instruction at EIP {:#010x}: {why}", c.eip), self.dump()))
            }
            Ok(Some(_)) => Ok(None),
            Err(e) => self.fault(e),
        }
    }

    /// Runs `ins` natively with stand-in pages in place of the device pages it touches.
    fn run_against_stand_ins(&mut self, ins: &Instruction, mode: Mode) -> Result<Option<Resume>, Stop> {
        let chunks = match plan_device_access(&self.cpu, &mut self.mem, ins) {
            Ok(c) => c,
            Err(e) => return self.fault(e),
        };
        let window = self.mem.mmu.window_for_cpl(self.cpu.cpl);
        let eip_before = self.cpu.ctx.eip;
        let mut pages: Vec<u32> = chunks.iter().map(|c| c.linear & !0xFFF).collect();
        pages.sort_unstable();
        pages.dedup();
        for &p in &pages {
            if let Err(e) = self.mem.mmu.map_stand_in(window, p) {
                return Err(Stop::Unsupported(format!("internal error: {e}"), self.dump()));
            }
        }
        let now_ns = self.clock.now();
        for c in chunks.iter().filter(|c| c.read || c.unbacked) {
            let v = if c.unbacked { u32::MAX } else { self.platform.mmio_read(c.phys, c.size, now_ns) };
            stand_in_store(window, c, v);
        }
        // The window of the instruction's privilege level (the caller may come from
        // direct execution, which leaves the translator's GS base as it found it).
        self.translator.select_mode(&mut self.cpu.ctx, mode);
        let exit = match self.fragment_at(mode, true) {
            Ok(Some(id)) => {
                let body = self.translator.fragment(id).body;
                let exit = self.translator.run(&mut self.cpu.ctx, body);
                self.cpu.sync_segment_swaps();
                Some(exit)
            }
            // The code fetch faulted (the #PF was delivered) or cannot be translated.
            Ok(None) => None,
            Err(stop) => {
                self.drop_stand_ins(window, &pages);
                return Err(stop);
            }
        };
        let callout = (exit == Some(ExitReason::Callout)).then(|| self.translator.callout(self.cpu.ctx.exit_arg).kind);
        // The instruction completed unless a fault left it undone or it is a callout
        // (the single-step trap after it is fine; a system instruction with a device
        // operand would need the monitor to emulate it, which it cannot).
        let completed = match exit {
            Some(ExitReason::Chain | ExitReason::IblMiss | ExitReason::Interrupt) => true,
            Some(ExitReason::Callout) => callout == Some(CalloutKind::SingleStep),
            _ => false,
        };
        if completed {
            for c in chunks.iter().filter(|c| c.write && !c.unbacked) {
                let v = stand_in_load(window, c);
                self.platform.mmio_write(c.phys, c.size, v, now_ns);
            }
            self.devices_touched();
        }
        self.drop_stand_ins(window, &pages);
        if exit == Some(ExitReason::Fault) && self.cpu.ctx.eip == eip_before && self.device_fault_again(window, &pages) {
            return Err(Stop::Unsupported(
                format!(
                    "internal error: the instruction at EIP {eip_before:#010x} faulted on device memory again while running against stand-in pages"
                ),
                self.dump(),
            ));
        }
        match exit {
            None => Ok(None),
            Some(ExitReason::Callout) if callout == Some(CalloutKind::Emulate) => {
                let eip = self.cpu.ctx.eip;
                Err(Stop::Unsupported(
                    format!("bt86 cannot emulate the instruction at EIP {eip:#010x}: {:?} with a device-memory operand", ins.mnemonic()),
                    self.dump(),
                ))
            }
            Some(exit) => self.handle_exit(exit, mode),
        }
    }

    /// True if the last host fault was in one of the stand-in pages' places again.
    fn device_fault_again(&self, window: WindowKind, pages: &[u32]) -> bool {
        let f = self.cpu.ctx.fault;
        f.signo == libc::SIGSEGV && pages.iter().any(|&p| (window.host_addr(p)..window.host_addr(p) + 4096).contains(&f.addr))
    }

    fn drop_stand_ins(&mut self, window: WindowKind, pages: &[u32]) {
        for &p in pages {
            if let Err(e) = self.mem.mmu.unmap_stand_in(window, p) {
                log::error!("cannot unmap a device stand-in page: {e}");
            }
        }
    }
}

/// Writes a device value into the stand-in page of `c`.
fn stand_in_store(window: WindowKind, c: &DeviceChunk, v: u32) {
    let host = window.host_addr(c.linear) as *mut u8;
    let bytes = v.to_le_bytes();
    // SAFETY: `c` lies within one page (DeviceChunk never crosses a page), which
    // run_against_stand_ins has just mapped read-write as a private stand-in.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), host, c.size as usize) };
}

/// Reads what the instruction left in the stand-in page at `c`.
fn stand_in_load(window: WindowKind, c: &DeviceChunk) -> u32 {
    let host = window.host_addr(c.linear) as *const u8;
    let mut bytes = [0u8; 4];
    // SAFETY: as in stand_in_store; the stand-in is still mapped.
    unsafe { std::ptr::copy_nonoverlapping(host, bytes.as_mut_ptr(), c.size as usize) };
    u32::from_le_bytes(bytes)
}
