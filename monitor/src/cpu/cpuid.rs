//! CPUID of bt86's virtual CPU.
//!
//! The features are what the translator implements and nothing it does not (`classify`
//! raises #UD for instructions of other features): FPU, DE, PSE, TSC, MSR, PAE, MCE, CX8,
//! SEP, PGE, MCA, CMOV, CLFLUSH, MMX, FXSR, SSE, SSE2, SSE3 and NX. MCE and MCA are there
//! with no banks (MCG_CAP = 0), as on a CPU that never reports an error: without them
//! Linux logs "Unable to init MCE device", and QEMU's CPU has them too. SSE3 is there because QEMU's
//! default CPU has it too, and test kernels compare the two.
//!
//! The vendor string is the host's, as VMware and KVM report it: guests apply the quirks
//! of the CPU they really run on, and where bt86 emulates an instruction whose result the
//! architecture leaves undefined it follows the host (see `host_model`), so what the guest
//! believes it runs on and what it gets agree. The family/model/stepping is a plain one
//! of that vendor that had this feature set — a Pentium M (family 6) for Intel and any
//! other vendor, an Athlon 64 (family 15, "K8") for AMD-compatible vendors — so that a
//! guest kernel's vendor-specific set-up paths touch only MSRs the virtual CPU has (see
//! [`super::msr`]).

use std::sync::OnceLock;

/// Which family of vendor quirks the virtual CPU presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VendorClass {
    /// GenuineIntel, and any vendor not known to follow AMD.
    Intel,
    /// AuthenticAMD and HygonGenuine.
    Amd,
}

/// The virtual CPU's identity: vendor string and the vendor class it implies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The 12-byte vendor string of CPUID leaf 0 (EBX, EDX, ECX order).
    pub vendor: [u8; 12],
    /// Whose quirks (signature, MSRs) go with it.
    pub class: VendorClass,
}

impl Identity {
    /// An identity with vendor string `vendor`.
    pub fn with_vendor(vendor: [u8; 12]) -> Identity {
        let class = match &vendor {
            b"AuthenticAMD" | b"HygonGenuine" => VendorClass::Amd,
            _ => VendorClass::Intel,
        };
        Identity { vendor, class }
    }

    /// The host's identity, read once.
    pub fn host() -> Identity {
        static HOST: OnceLock<Identity> = OnceLock::new();
        *HOST.get_or_init(|| Identity::with_vendor(host_vendor()))
    }

    /// CPUID.1:EAX.
    pub fn signature(&self) -> u32 {
        match self.class {
            // Family 6, model 13, stepping 8 (Pentium M "Dothan").
            VendorClass::Intel => 0x0000_06D8,
            // Family 15, model 0x2F, stepping 2 (Athlon 64 "Venice", the first with SSE3).
            VendorClass::Amd => 0x0002_0FF2,
        }
    }
}

/// The host CPU's vendor string.
pub fn host_vendor() -> [u8; 12] {
    // CPUID leaf 0 exists on every x86-64 CPU and has no side effects. bt86 never
    // turns CPUID faulting on for its own thread outside native slices, so this does not
    // trap.
    let r = core::arch::x86_64::__cpuid(0);
    let mut v = [0u8; 12];
    v[0..4].copy_from_slice(&r.ebx.to_le_bytes());
    v[4..8].copy_from_slice(&r.edx.to_le_bytes());
    v[8..12].copy_from_slice(&r.ecx.to_le_bytes());
    v
}

/// CPUID.1:EDX feature bits.
pub mod edx {
    /// x87 FPU on chip.
    pub const FPU: u32 = 1 << 0;
    /// Debugging extensions (CR4.DE).
    pub const DE: u32 = 1 << 2;
    /// Page size extensions.
    pub const PSE: u32 = 1 << 3;
    /// Time stamp counter.
    pub const TSC: u32 = 1 << 4;
    /// RDMSR/WRMSR.
    pub const MSR: u32 = 1 << 5;
    /// Physical address extension (PAE paging).
    pub const PAE: u32 = 1 << 6;
    /// Machine-check exception (CR4.MCE); with MCA below, MCG_CAP says there are no banks.
    pub const MCE: u32 = 1 << 7;
    /// CMPXCHG8B.
    pub const CX8: u32 = 1 << 8;
    /// On-chip local APIC (cleared while IA32_APIC_BASE's global enable bit is clear).
    pub const APIC: u32 = 1 << 9;
    /// SYSENTER/SYSEXIT.
    pub const SEP: u32 = 1 << 11;
    /// Global pages.
    pub const PGE: u32 = 1 << 13;
    /// Machine-check architecture (the MCG MSRs).
    pub const MCA: u32 = 1 << 14;
    /// CMOVcc.
    pub const CMOV: u32 = 1 << 15;
    /// CLFLUSH.
    pub const CLFSH: u32 = 1 << 19;
    /// MMX.
    pub const MMX: u32 = 1 << 23;
    /// FXSAVE/FXRSTOR.
    pub const FXSR: u32 = 1 << 24;
    /// SSE.
    pub const SSE: u32 = 1 << 25;
    /// SSE2.
    pub const SSE2: u32 = 1 << 26;
}

/// CPUID.1:ECX: SSE3, and bit 31, "running under a hypervisor" (as QEMU and every VMM
/// sets it): guests then skip what only real hardware has (Linux: the PMU, which reads as
/// absent, see `msr`).
pub const FEATURES_ECX: u32 = 1 << 0 | 1 << 31;

/// CPUID.80000001h:EDX: execute-disable (EFER.NXE).
pub const EXT_FEATURES_EDX: u32 = 1 << 20;

/// Feature bits reported in CPUID.1:EDX.
pub const FEATURES_EDX: u32 = edx::FPU
    | edx::DE
    | edx::PSE
    | edx::TSC
    | edx::MSR
    | edx::PAE
    | edx::MCE
    | edx::CX8
    | edx::APIC
    | edx::SEP
    | edx::PGE
    | edx::MCA
    | edx::CMOV
    | edx::CLFSH
    | edx::MMX
    | edx::FXSR
    | edx::SSE
    | edx::SSE2;

const BRAND: &[u8; 48] = b"bt86 virtual CPU (binary translation)\0\0\0\0\0\0\0\0\0\0\0";

fn dwords(b: &[u8]) -> [u32; 4] {
    let d = |i: usize| u32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap());
    [d(0), d(1), d(2), d(3)]
}

/// The (EAX, EBX, ECX, EDX) CPUID returns for leaf `eax`, subleaf `ecx`, on the host's
/// identity.
pub fn cpuid(eax: u32, ecx: u32) -> [u32; 4] {
    cpuid_as(&Identity::host(), eax, ecx)
}

/// The (EAX, EBX, ECX, EDX) CPUID returns for leaf `eax` as a CPU of identity `id`.
pub fn cpuid_as(id: &Identity, eax: u32, _ecx: u32) -> [u32; 4] {
    let word = |i: usize| u32::from_le_bytes(id.vendor[i * 4..i * 4 + 4].try_into().unwrap());
    match eax {
        0 => [1, word(0), word(2), word(1)],
        // EBX: CLFLUSH line size 8 qwords (64 bytes), one logical processor.
        1 => [id.signature(), 0x0000_0800, FEATURES_ECX, FEATURES_EDX],
        // AMD repeats the vendor string in the extended range's first leaf.
        0x8000_0000 => match id.class {
            VendorClass::Intel => [0x8000_0004, 0, 0, 0],
            VendorClass::Amd => [0x8000_0004, word(0), word(2), word(1)],
        },
        0x8000_0001 => [0, 0, 0, EXT_FEATURES_EDX],
        0x8000_0002..=0x8000_0004 => dwords(&BRAND[(eax - 0x8000_0002) as usize * 16..][..16]),
        _ => [0, 0, 0, 0],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vendor_of(r: [u32; 4]) -> Vec<u8> {
        [r[1], r[3], r[2]].iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn the_vendor_string_is_the_hosts() {
        let r = cpuid(0, 0);
        assert_eq!(vendor_of(r), host_vendor());
        assert_eq!(r[0], 1, "highest basic leaf");
    }

    #[test]
    fn intel_identity() {
        let id = Identity::with_vendor(*b"GenuineIntel");
        assert_eq!(id.class, VendorClass::Intel);
        assert_eq!(vendor_of(cpuid_as(&id, 0, 0)), b"GenuineIntel");
        assert_eq!(cpuid_as(&id, 1, 0)[0] >> 8 & 0xF, 6, "family 6");
        assert_eq!(cpuid_as(&id, 0x8000_0000, 0), [0x8000_0004, 0, 0, 0]);
    }

    #[test]
    fn amd_identity() {
        for v in [*b"AuthenticAMD", *b"HygonGenuine"] {
            let id = Identity::with_vendor(v);
            assert_eq!(id.class, VendorClass::Amd);
            assert_eq!(vendor_of(cpuid_as(&id, 0, 0)), v);
            assert_eq!(vendor_of(cpuid_as(&id, 0x8000_0000, 0)), v);
            assert_eq!(cpuid_as(&id, 1, 0)[0] >> 8 & 0xF, 15, "family 15 (K8)");
        }
    }

    #[test]
    fn other_vendors_get_the_intel_quirks() {
        let id = Identity::with_vendor(*b"CentaurHauls");
        assert_eq!(id.class, VendorClass::Intel);
        assert_eq!(vendor_of(cpuid_as(&id, 0, 0)), b"CentaurHauls");
    }

    #[test]
    fn features_are_the_same_for_every_vendor() {
        for v in [*b"GenuineIntel", *b"AuthenticAMD"] {
            let id = Identity::with_vendor(v);
            let r = cpuid_as(&id, 1, 0);
            assert_eq!((r[2], r[3]), (FEATURES_ECX, FEATURES_EDX));
            assert_eq!(cpuid_as(&id, 0x8000_0001, 0)[3], EXT_FEATURES_EDX);
        }
    }
}
