//! Direct execution of guest user code: CPL 3 code runs on the host CPU in
//! compatibility mode, through shadow descriptors in the host LDT ([`host_ldt`]), entered
//! from the monitor and left on the first host signal that needs it ([`enter`]); which
//! engine runs which user code is [`policy`]. The run
//! loop's side — when to run natively and what each exit means for the guest — is in
//! `machine::direct_exec`.

pub mod enter;
pub mod host_ldt;
pub mod policy;
pub mod sandbox;
pub mod stub;
