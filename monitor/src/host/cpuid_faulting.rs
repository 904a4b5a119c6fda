//! CPUID faulting: making the host CPU trap `cpuid` in user mode, so that guest user code
//! running natively gets the virtual CPU's answer rather than the host's.
//!
//! Linux offers it per thread with `arch_prctl(ARCH_SET_CPUID, 0)` where the CPU can do
//! it (Intel since Ivy Bridge, AMD since Zen 2 with CpuidUserDis, and not under every
//! hypervisor). A faulting `cpuid` raises #GP, which direct execution hands to the
//! translator like any other instruction the host refuses. bt86 turns it on only for
//! the length of a native slice, so its own code (and the libraries it uses, which
//! may query CPUID lazily) never meets it.
//!
//! Without it, pages holding the bytes of `cpuid` never run natively (see
//! `bt86_shadow_mmu::NEVER_NATIVE`). `BT86_CPUID_FAULTING=off` chooses that way on a
//! host that has faulting, so both can be tested on one machine.

use std::sync::OnceLock;

const ARCH_GET_CPUID: libc::c_int = 0x1011;
const ARCH_SET_CPUID: libc::c_int = 0x1012;

fn arch_prctl(code: libc::c_int, arg: libc::c_ulong) -> libc::c_long {
    // SAFETY: ARCH_GET_CPUID and ARCH_SET_CPUID only read or set a flag of this thread;
    // they touch no memory of ours.
    unsafe { libc::syscall(libc::SYS_arch_prctl, code, arg) }
}

/// True if this host can make `cpuid` fault and the user has not turned it off.
pub fn usable() -> bool {
    static USABLE: OnceLock<bool> = OnceLock::new();
    *USABLE.get_or_init(|| {
        if std::env::var("BT86_CPUID_FAULTING").is_ok_and(|v| v == "off" || v == "0") {
            log::info!("CPUID faulting turned off by BT86_CPUID_FAULTING");
            return false;
        }
        let works = arch_prctl(ARCH_GET_CPUID, 0) >= 0 && arch_prctl(ARCH_SET_CPUID, 0) == 0;
        if works {
            set(false);
        }
        log::info!(
            "host CPUID faulting: {}",
            if works { "available; guest user-mode cpuid traps" } else { "not available; code pages holding cpuid run translated" }
        );
        works
    })
}

/// Turns CPUID faulting on or off for the calling thread (only after [`usable`] said
/// the host has it).
pub fn set(faulting: bool) {
    let r = arch_prctl(ARCH_SET_CPUID, if faulting { 0 } else { 1 });
    debug_assert_eq!(r, 0, "ARCH_SET_CPUID worked when probed");
}

#[cfg(test)]
mod tests {
    #[test]
    fn turning_it_on_and_off_leaves_cpuid_working() {
        // Whichever answer this host gives, the monitor's own cpuid works afterwards.
        if super::usable() {
            super::set(true);
            super::set(false);
        }
        let r = core::arch::x86_64::__cpuid(0);
        assert!(r.eax >= 1);
    }
}
