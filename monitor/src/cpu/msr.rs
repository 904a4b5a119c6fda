//! The model-specific registers of the virtual CPU: the ones its CPUID advertises (TSC,
//! SYSENTER, and EFER for NX). Any other MSR raises #GP(0), as on hardware.

/// IA32_TIME_STAMP_COUNTER.
pub const TSC: u32 = 0x10;
/// IA32_SYSENTER_CS.
pub const SYSENTER_CS: u32 = 0x174;
/// IA32_SYSENTER_ESP.
pub const SYSENTER_ESP: u32 = 0x175;
/// IA32_SYSENTER_EIP.
pub const SYSENTER_EIP: u32 = 0x176;

/// IA32_EFER.
pub const EFER: u32 = 0xC000_0080;
/// EFER.NXE: execute-disable in PAE entries. The only EFER bit this CPU has (no long
/// mode, no SYSCALL); writes to the others are ignored, as QEMU does.
pub const EFER_NXE: u32 = 1 << 11;

/// MSR values.
#[derive(Clone, Copy, Debug, Default)]
pub struct Msrs {
    /// SYSENTER_CS.
    pub sysenter_cs: u32,
    /// SYSENTER_ESP.
    pub sysenter_esp: u32,
    /// SYSENTER_EIP.
    pub sysenter_eip: u32,
    /// EFER.
    pub efer: u32,
}

/// The host's time stamp counter.
pub fn host_tsc() -> u64 {
    // SAFETY: rdtsc has no memory effects; user-mode rdtsc is allowed on Linux.
    unsafe { core::arch::x86_64::_rdtsc() }
}

impl Msrs {
    /// rdmsr; None means #GP(0). `tsc_offset` is the context's (translated `rdtsc`
    /// adds it too).
    pub fn read(&self, index: u32, tsc_offset: u64) -> Option<u64> {
        Some(match index {
            TSC => host_tsc().wrapping_add(tsc_offset),
            SYSENTER_CS => self.sysenter_cs as u64,
            SYSENTER_ESP => self.sysenter_esp as u64,
            SYSENTER_EIP => self.sysenter_eip as u64,
            EFER => self.efer as u64,
            _ => return None,
        })
    }

    /// wrmsr; false means #GP(0).
    pub fn write(&mut self, index: u32, value: u64, tsc_offset: &mut u64) -> bool {
        match index {
            TSC => *tsc_offset = value.wrapping_sub(host_tsc()),
            SYSENTER_CS => self.sysenter_cs = value as u32,
            SYSENTER_ESP => self.sysenter_esp = value as u32,
            SYSENTER_EIP => self.sysenter_eip = value as u32,
            EFER => self.efer = value as u32 & EFER_NXE,
            _ => return false,
        }
        true
    }
}
