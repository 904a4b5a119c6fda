//! The model-specific registers of the virtual CPU.
//!
//! The ones its CPUID advertises (TSC, SYSENTER, EFER for NX), and the ones a guest
//! kernel of the host's vendor touches while it sets up, whether or not CPUID mentions
//! them: IA32_APIC_BASE, PAT, the machine-check capability and status registers, and per
//! vendor the performance counters (Intel P6: PMC0/1 and PERFEVTSEL0/1; AMD K7/K8:
//! 0xC0010000–7), Intel's platform ID, microcode signature and MISC_ENABLE, AMD's HWCR
//! and CLK_CTL. Those hold what the guest writes and have no effect — except the counters
//! themselves, which read 0 whatever is written, as under a hypervisor that gives the
//! guest no PMU: Linux checks that a counter keeps a written value before it uses the
//! PMU, and with CPUID's hypervisor bit it then says "PMU not available due to
//! virtualization" and uses software events. Any other MSR raises #GP(0), as on hardware,
//! and so do the other vendor's.

use super::cpuid::{Identity, VendorClass};

/// IA32_TIME_STAMP_COUNTER.
pub const TSC: u32 = 0x10;
/// IA32_APIC_BASE.
pub const APIC_BASE: u32 = 0x1B;
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

/// IA32_APIC_BASE at reset: the xAPIC's default address, this processor the bootstrap
/// processor (bit 8), the APIC globally enabled (bit 11).
pub const APIC_BASE_RESET: u64 = 0xFEE0_0000 | APIC_BASE_BSP | APIC_BASE_ENABLE;
/// IA32_APIC_BASE bit 8: the bootstrap processor (read-only).
pub const APIC_BASE_BSP: u64 = 1 << 8;
/// IA32_APIC_BASE bit 11: the local APIC is globally enabled.
pub const APIC_BASE_ENABLE: u64 = 1 << 11;
/// IA32_APIC_BASE bits a write must leave 0 (#GP): 0-7, 9, 10 (x2APIC, which this CPU
/// lacks) and the base's bits above the 36-bit physical address width.
const APIC_BASE_RESERVED: u64 = 0xFF | 1 << 9 | 1 << 10 | !((1u64 << 36) - 1);

/// Which vendor's guests expect a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    Both,
    Intel,
    Amd,
}

/// What a write to a register may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Writes {
    /// Stored as written.
    Store,
    /// Accepted and dropped (the register reads its reset value).
    Ignore,
    /// #GP(0): the register is read-only.
    Fault,
}

/// A register without behaviour: an index, who has it, its reset value, its writes.
struct Plain {
    index: u32,
    owner: Owner,
    reset: u64,
    writes: Writes,
}

const fn plain(index: u32, owner: Owner, reset: u64, writes: Writes) -> Plain {
    Plain { index, owner, reset, writes }
}

/// The registers that only hold values.
const PLAIN: &[Plain] = &[
    plain(APIC_BASE, Owner::Both, APIC_BASE_RESET, Writes::Store),
    // IA32_PAT at its reset value (WB, WT, UC-, UC twice).
    plain(0x277, Owner::Both, 0x0007_0406_0007_0406, Writes::Store),
    // IA32_MCG_CAP: no banks. IA32_MCG_STATUS: nothing in progress.
    plain(0x179, Owner::Both, 0, Writes::Fault),
    plain(0x17A, Owner::Both, 0, Writes::Store),
    // Intel: IA32_PLATFORM_ID, IA32_BIOS_SIGN_ID (the microcode revision, 0: none),
    // IA32_MISC_ENABLE (fast strings on), and the P6 counters PMC0/1, PERFEVTSEL0/1.
    plain(0x17, Owner::Intel, 0, Writes::Fault),
    plain(0x8B, Owner::Intel, 0, Writes::Ignore),
    plain(0x1A0, Owner::Intel, 1, Writes::Store),
    plain(0xC1, Owner::Intel, 0, Writes::Ignore),
    plain(0xC2, Owner::Intel, 0, Writes::Ignore),
    plain(0x186, Owner::Intel, 0, Writes::Store),
    plain(0x187, Owner::Intel, 0, Writes::Store),
    // AMD: PERF_CTL0-3, PERF_CTR0-3, SYSCFG, HWCR, CLK_CTL (as a BIOS leaves it for
    // K7/K8 since model 8), the microcode patch level.
    plain(0xC001_0000, Owner::Amd, 0, Writes::Store),
    plain(0xC001_0001, Owner::Amd, 0, Writes::Store),
    plain(0xC001_0002, Owner::Amd, 0, Writes::Store),
    plain(0xC001_0003, Owner::Amd, 0, Writes::Store),
    plain(0xC001_0004, Owner::Amd, 0, Writes::Ignore),
    plain(0xC001_0005, Owner::Amd, 0, Writes::Ignore),
    plain(0xC001_0006, Owner::Amd, 0, Writes::Ignore),
    plain(0xC001_0007, Owner::Amd, 0, Writes::Ignore),
    plain(0xC001_0010, Owner::Amd, 0, Writes::Store),
    plain(0xC001_0015, Owner::Amd, 0, Writes::Store),
    plain(0xC001_001B, Owner::Amd, 0x2000_0000, Writes::Store),
    plain(0x8B, Owner::Amd, 0, Writes::Ignore),
];

/// MSR values.
#[derive(Clone, Copy, Debug)]
pub struct Msrs {
    /// SYSENTER_CS.
    pub sysenter_cs: u32,
    /// SYSENTER_ESP.
    pub sysenter_esp: u32,
    /// SYSENTER_EIP.
    pub sysenter_eip: u32,
    /// EFER.
    pub efer: u32,
    /// Whose registers the CPU has.
    class: VendorClass,
    /// The values of [`PLAIN`]'s registers, in its order.
    plain: [u64; PLAIN.len()],
}

impl Default for Msrs {
    /// The registers at reset of a CPU with the host's identity.
    fn default() -> Msrs {
        Msrs::for_class(Identity::host().class)
    }
}

/// The host's time stamp counter.
pub fn host_tsc() -> u64 {
    // SAFETY: rdtsc has no memory effects; user-mode rdtsc is allowed on Linux.
    unsafe { core::arch::x86_64::_rdtsc() }
}

impl Msrs {
    /// The registers at reset of a CPU of vendor class `class`.
    pub fn for_class(class: VendorClass) -> Msrs {
        let mut plain = [0; PLAIN.len()];
        for (v, p) in plain.iter_mut().zip(PLAIN) {
            *v = p.reset;
        }
        Msrs { sysenter_cs: 0, sysenter_esp: 0, sysenter_eip: 0, efer: 0, class, plain }
    }

    /// The position in [`PLAIN`] of register `index` if this CPU has it.
    fn plain_slot(&self, index: u32) -> Option<usize> {
        PLAIN.iter().position(|p| {
            p.index == index
                && match p.owner {
                    Owner::Both => true,
                    Owner::Intel => self.class == VendorClass::Intel,
                    Owner::Amd => self.class == VendorClass::Amd,
                }
        })
    }

    /// rdpmc of counter `index` (ECX); None means #GP(0): the vendor's counter registers
    /// (Intel P6: 0-1, AMD K7: 0-3), which never count.
    pub fn read_pmc(&self, index: u32) -> Option<u64> {
        let counters = match self.class {
            VendorClass::Intel => 2,
            VendorClass::Amd => 4,
        };
        (index < counters).then_some(0)
    }

    /// rdmsr; None means #GP(0). `tsc_offset` is the context's (translated `rdtsc`
    /// adds it too).
    pub fn read(&self, index: u32, tsc_offset: u64) -> Option<u64> {
        Some(match index {
            TSC => host_tsc().wrapping_add(tsc_offset),
            SYSENTER_CS => self.sysenter_cs as u64,
            SYSENTER_ESP => self.sysenter_esp as u64,
            SYSENTER_EIP => self.sysenter_eip as u64,
            EFER => self.efer as u64,
            _ => self.plain[self.plain_slot(index)?],
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
            APIC_BASE => {
                // The SDM's rules: reserved bits fault, BSP is read-only; the global
                // enable bit and the base are the guest's (the device follows the enable
                // bit through the machine; its registers do not move).
                if value & APIC_BASE_RESERVED != 0 {
                    return false;
                }
                let Some(slot) = self.plain_slot(APIC_BASE) else {
                    return false;
                };
                self.plain[slot] = (value & !APIC_BASE_BSP) | (self.plain[slot] & APIC_BASE_BSP);
            }
            _ => {
                let Some(slot) = self.plain_slot(index) else {
                    return false;
                };
                match PLAIN[slot].writes {
                    Writes::Store => self.plain[slot] = value,
                    Writes::Ignore => {}
                    Writes::Fault => return false,
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(m: &Msrs, i: u32) -> Option<u64> {
        m.read(i, 0)
    }

    #[test]
    fn registers_every_guest_touches_exist_for_both_vendors() {
        for class in [VendorClass::Intel, VendorClass::Amd] {
            let mut m = Msrs::for_class(class);
            assert_eq!(read(&m, APIC_BASE), Some(0xFEE0_0900));
            assert_eq!(read(&m, 0x277), Some(0x0007_0406_0007_0406));
            assert_eq!(read(&m, 0x179), Some(0), "MCG_CAP: no banks");
            assert!(!m.write(0x179, 1, &mut 0), "MCG_CAP is read-only");
            assert!(m.write(0x277, 0x0106, &mut 0));
            assert_eq!(read(&m, 0x277), Some(0x0106));
            assert_eq!(read(&m, 0x8B), Some(0), "microcode revision");
            assert!(m.write(0x8B, 0, &mut 0));
        }
    }

    #[test]
    fn apic_base_follows_the_sdm() {
        let mut m = Msrs::for_class(VendorClass::Intel);
        assert!(m.write(APIC_BASE, 0xFEE0_0000, &mut 0), "clearing the enable bit");
        assert_eq!(read(&m, APIC_BASE), Some(0xFEE0_0100), "BSP stays set");
        assert!(m.write(APIC_BASE, 0xFED0_0800, &mut 0), "moved and enabled again");
        assert_eq!(read(&m, APIC_BASE), Some(0xFED0_0900));
        assert!(!m.write(APIC_BASE, 0xFEE0_0C00, &mut 0), "x2APIC enable is reserved");
        assert!(!m.write(APIC_BASE, 0x1_0000_0000_0800, &mut 0), "beyond 36 bits");
        assert!(!m.write(APIC_BASE, 0xFEE0_0801, &mut 0));
        assert_eq!(read(&m, APIC_BASE), Some(0xFED0_0900));
    }

    #[test]
    fn intel_registers() {
        let mut m = Msrs::for_class(VendorClass::Intel);
        assert_eq!(read(&m, 0x1A0), Some(1), "MISC_ENABLE: fast strings");
        assert!(m.write(0x186, 0x43_003C, &mut 0));
        assert_eq!(read(&m, 0x186), Some(0x43_003C));
        assert_eq!(read(&m, 0xC001_0000), None, "no AMD counters on Intel");
        assert!(m.write(0xC1, 0xFFFF, &mut 0));
        assert_eq!(read(&m, 0xC1), Some(0), "a counter keeps nothing: no PMU");
        assert_eq!((m.read_pmc(1), m.read_pmc(2)), (Some(0), None));
        assert!(!m.write(0xC001_0015, 0, &mut 0));
    }

    #[test]
    fn amd_registers() {
        let mut m = Msrs::for_class(VendorClass::Amd);
        for i in 0xC001_0000..=0xC001_0003 {
            assert!(m.write(i, i as u64, &mut 0), "K7 event select {i:#x}");
            assert_eq!(read(&m, i), Some(i as u64));
        }
        for i in 0xC001_0004..=0xC001_0007 {
            assert!(m.write(i, 0xFFFF, &mut 0), "K7 counter {i:#x}");
            assert_eq!(read(&m, i), Some(0), "a counter keeps nothing: no PMU");
        }
        assert_eq!((m.read_pmc(3), m.read_pmc(4)), (Some(0), None));
        assert_eq!(read(&m, 0xC001_001B), Some(0x2000_0000), "CLK_CTL");
        assert!(m.write(0xC001_0015, 1 << 6, &mut 0), "HWCR.FFDIS");
        assert_eq!(read(&m, 0x1A0), None, "no MISC_ENABLE on AMD");
    }

    #[test]
    fn unknown_registers_fault() {
        for class in [VendorClass::Intel, VendorClass::Amd] {
            let mut m = Msrs::for_class(class);
            assert_eq!(read(&m, 0x1234), None);
            assert!(!m.write(0x1234, 0, &mut 0));
        }
    }

    #[test]
    fn efer_keeps_only_nxe() {
        let mut m = Msrs::default();
        assert!(m.write(EFER, 0xFFFF_FFFF, &mut 0));
        assert_eq!(read(&m, EFER), Some(EFER_NXE as u64));
    }
}
