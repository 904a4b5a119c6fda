//! What code outside the monitor may use of it: the pieces the differential fuzzer
//! (`bt86-fuzzer`) needs to run guest code without a `Machine`
//! — guest memory identity-mapped onto RAM, the native runner in compatibility mode (its
//! oracle), the virtual CPU and its instruction emulation (the translator engine's
//! callouts), the host-probed models of undefined results, and the signal plumbing both
//! engines run under. Nothing here is a stable API: it follows the fuzzer.

pub use crate::machine::memory::Memory;
pub use crate::machine::run::Code;
pub use crate::machine::window_bases;

/// The virtual CPU, its exceptions and the emulation of the instructions the translator
/// calls out for.
pub mod cpu {
    pub use crate::cpu::emulate::bcd::{BcdOp, adjust as bcd_adjust};
    pub use crate::cpu::emulate::{Env, Flow, IoEffect, PortIo, emulate};
    pub use crate::cpu::segments::SegmentCache;
    pub use crate::cpu::{Cpu, Exception, Vector, cr0, cr4};
}

/// The host's answers where the architecture leaves results undefined, probed by running
/// the instructions natively ([`get`] must run before any window is reserved).
pub mod host_model {
    pub use crate::cpu::host_model::{HostModel, get};
}

/// The process-wide signal handlers that end native runs and translated-code faults.
pub mod signals {
    pub use crate::host::signals::{SignalError, install, set_translator_hook};
}

/// Translated code's side of the signal handlers: [`on_signal`] is the hook to give
/// [`signals::set_translator_hook`]; [`register`] names the translator a run uses.
pub mod tc_signal {
    pub use crate::machine::tc_signal::{on_signal, register, unregister};
}

/// Guest code run natively in compatibility mode through flat host LDT segments.
pub mod native {
    pub use crate::native::{Exit, FlatSelectors, FxArea, GuestRegs, LdtError, install_flat, measure_round_trip, run};

    /// The host LDT slots of the flat segments and their selectors.
    pub mod ldt {
        pub use crate::native::ldt::{FLAT_CODE_INDEX, FLAT_DATA_INDEX, ldt_selector};
    }
}
