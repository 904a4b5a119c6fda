//! CPUID of bt86's virtual CPU: a vendor-neutral Pentium-class (family 6) processor with
//! FPU, DE, PSE, TSC, MSR, PAE, CX8, SEP, PGE, CMOV, CLFLUSH, MMX, FXSR, SSE, SSE2, SSE3
//! and NX —
//! what the translator implements, and nothing it does not (`classify` raises #UD for
//! instructions of other features). SSE3 is there because QEMU's default CPU has it too,
//! and test kernels compare the two.

/// The vendor string (12 bytes).
pub const VENDOR: &[u8; 12] = b"bt86VirtCPU!";
/// CPUID.1:EAX — family 6, model 13, stepping 8.
pub const SIGNATURE: u32 = 0x0000_06D8;

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
    /// CMPXCHG8B.
    pub const CX8: u32 = 1 << 8;
    /// SYSENTER/SYSEXIT.
    pub const SEP: u32 = 1 << 11;
    /// Global pages.
    pub const PGE: u32 = 1 << 13;
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

/// CPUID.1:ECX: SSE3.
pub const FEATURES_ECX: u32 = 1 << 0;

/// CPUID.80000001h:EDX: execute-disable (EFER.NXE).
pub const EXT_FEATURES_EDX: u32 = 1 << 20;

/// Feature bits reported in CPUID.1:EDX.
pub const FEATURES_EDX: u32 = edx::FPU
    | edx::DE
    | edx::PSE
    | edx::TSC
    | edx::MSR
    | edx::PAE
    | edx::CX8
    | edx::SEP
    | edx::PGE
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

/// The (EAX, EBX, ECX, EDX) CPUID returns for leaf `eax`, subleaf `ecx`.
pub fn cpuid(eax: u32, _ecx: u32) -> [u32; 4] {
    let v = VENDOR;
    let word = |i: usize| u32::from_le_bytes(v[i * 4..i * 4 + 4].try_into().unwrap());
    match eax {
        0 => [1, word(0), word(2), word(1)],
        // EBX: CLFLUSH line size 8 qwords (64 bytes), one logical processor.
        1 => [SIGNATURE, 0x0000_0800, FEATURES_ECX, FEATURES_EDX],
        0x8000_0000 => [0x8000_0004, 0, 0, 0],
        0x8000_0001 => [0, 0, 0, EXT_FEATURES_EDX],
        0x8000_0002..=0x8000_0004 => dwords(&BRAND[(eax - 0x8000_0002) as usize * 16..][..16]),
        _ => [0, 0, 0, 0],
    }
}
