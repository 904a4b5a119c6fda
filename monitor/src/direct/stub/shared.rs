//! The pages the monitor and a stub share.
//!
//! One `memfd` holds two areas. The monitor maps both read-write; the stub maps them at
//! fixed addresses above 4 GiB:
//!
//! * [`Commands`] at [`STUB_COMMANDS`], **read-only** in the stub: what the monitor asks —
//!   the host calls its mapper thread makes, the guest state to run, the seccomp filters.
//!   Nothing in the stub can change it (the guest thread may not call `mprotect`, `mmap`
//!   or `munmap`), so the mapper thread, which acts on it, cannot be misled.
//! * [`Reports`] at [`STUB_REPORTS`], read-write: what the stub answers — the guest's
//!   exit, its FPU image, the results of host calls — and the words each side sleeps on.
//!   Everything here is untrusted: guest user code that escaped to 64-bit mode in the stub
//!   can write any bytes at any time. The monitor copies it out once and validates it.
//!
//! The protocol is sequence numbers and futexes: the monitor writes a command and bumps
//! `Commands::seq` (and, if it has host calls, `Commands::ops_seq`); the mapper makes the
//! host calls and sets `Reports::ops_done`; the guest thread waits for that, runs guest code (for
//! [`Command::Run`]), and when guest code exits (or at once for [`Command::Apply`]) writes
//! the exit and sets `Reports::done_seq`. Each waits by spinning briefly and then sleeping
//! on the futex, announcing the sleep in a `*_waiting` word so that it is woken only when
//! needed.

use std::mem::offset_of;
use std::sync::atomic::AtomicU32;

/// Where the stub's code is loaded (above the 4 GiB + 4 KiB that hold the user window
/// and its mirror page, out of reach of 32-bit code).
pub const STUB_CODE: u64 = 0x2_0000_0000;
/// The guest thread's signal stack and the mapper thread's stack (the stub ELF's one
/// writable segment).
pub const STUB_STACK: u64 = 0x2_0010_0000;
/// Size of the writable segment.
pub const STUB_STACK_SIZE: u64 = 64 * 1024;
/// Where the stub maps [`Reports`] (read-write).
pub const STUB_REPORTS: u64 = 0x2_0020_0000;
/// Where the stub maps [`Commands`] (read-only).
pub const STUB_COMMANDS: u64 = 0x2_0030_0000;
/// Bytes of the [`Reports`] area.
pub const REPORTS_SIZE: usize = 16 * 1024;
/// Bytes of the [`Commands`] area.
pub const COMMANDS_SIZE: usize = 64 * 1024;

/// Host system calls a command can carry.
pub const MAX_OPS: usize = 384;
/// LDT descriptors a command can carry (for its `modify_ldt` ops).
pub const MAX_DESCS: usize = 128;
/// Instructions in each seccomp filter.
pub const MAX_FILTER: usize = 48;

/// File descriptors the stub starts with (fixed numbers, set up before `exec`).
pub mod fds {
    /// The shared pages (closed once mapped).
    pub const SHARED: i32 = 3;
    /// Guest RAM, read-write: for pages the guest gives user code write access to (kept
    /// by the mapper thread only).
    pub const RAM_RW: i32 = 4;
    /// Guest RAM, read-only: every other page (kept by the mapper thread only).
    pub const RAM_RO: i32 = 5;
    /// The stub's own executable (closed at start).
    pub const EXE: i32 = 6;
}

/// What the monitor asks.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Make the host calls in `ops`, then run guest code from `entry` until it exits.
    Run = 1,
    /// Make the host calls in `ops` and report.
    Apply = 2,
    /// End the stub.
    Exit = 3,
}

/// Guest integer state and selectors going in.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Entry {
    /// EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI.
    pub gpr: [u32; 8],
    /// EIP.
    pub eip: u32,
    /// EFLAGS.
    pub eflags: u32,
    /// Host selectors: ES, CS, SS, DS, FS, GS.
    pub sel: [u32; 6],
}

/// How guest code stopped, as the stub's signal handler saw it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExitRecord {
    /// EAX..EDI (low halves of the host registers).
    pub gpr: [u32; 8],
    /// Low half of RIP.
    pub eip: u32,
    /// EFLAGS.
    pub eflags: u32,
    /// Selectors: ES, CS, SS, DS, FS, GS.
    pub sel: [u32; 6],
    /// Signal number.
    pub signo: u32,
    /// `si_code`.
    pub si_code: u32,
    /// Exception vector (`trapno`).
    pub trapno: u32,
    /// Error code.
    pub err: u32,
    /// `si_addr`.
    pub fault_addr: u64,
}

/// A host system call for the mapper thread to make: `nr(args...)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Op {
    /// System call number (x86-64).
    pub nr: u64,
    /// Arguments.
    pub args: [u64; 6],
}

/// `struct user_desc` for `modify_ldt`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserDesc {
    /// Entry number.
    pub entry_number: u32,
    /// Base.
    pub base_addr: u32,
    /// Limit.
    pub limit: u32,
    /// Flag bits (see `host_ldt`).
    pub flags: u32,
}

/// `struct sock_filter`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockFilter {
    /// Opcode.
    pub code: u16,
    /// Jump if true.
    pub jt: u8,
    /// Jump if false.
    pub jf: u8,
    /// Operand.
    pub k: u32,
}

/// `struct sock_fprog` as the stub's `seccomp` call reads it (the filter's address is the
/// stub's).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Fprog {
    /// Instructions.
    pub len: u64,
    /// Their address in the stub.
    pub filter: u64,
}

/// An FXSAVE image.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub struct Fx(pub [u8; 512]);

/// Bytes of the FXSAVE image exchanged: the architectural part (the rest is the
/// kernel's `sw_reserved`, which must stay as it wrote it).
pub const FX_BYTES: usize = 464;

/// What the monitor asks (read-only in the stub).
#[repr(C, align(4096))]
pub struct Commands {
    /// Bumped by the monitor for each command (both stub threads sleep on it).
    pub seq: AtomicU32,
    /// A [`Command`].
    pub cmd: u32,
    /// Entries of `ops` in use.
    pub n_ops: u32,
    /// Bit 0: turn on CPUID faulting at start.
    pub setup_flags: u32,
    /// Bumped for each command that has host calls (the mapper sleeps on it). The monitor
    /// writes `ops` only while the mapper is idle (`Reports::ops_done == ops_seq`).
    pub ops_seq: AtomicU32,
    _pad: [u32; 3],
    /// The guest thread's filter.
    pub guest_fprog: Fprog,
    /// The mapper thread's filter.
    pub mapper_fprog: Fprog,
    /// The guest state to run.
    pub entry: Entry,
    /// The guest's FXSAVE image going in.
    pub fx: Fx,
    /// Host calls, for the mapper thread.
    pub ops: [Op; MAX_OPS],
    /// Descriptors that `modify_ldt` ops point to.
    pub descs: [UserDesc; MAX_DESCS],
    /// The guest thread's seccomp filter.
    pub guest_filter: [SockFilter; MAX_FILTER],
    /// The mapper thread's seccomp filter.
    pub mapper_filter: [SockFilter; MAX_FILTER],
}

/// What the stub answers (read-write in the stub: untrusted).
#[repr(C, align(4096))]
pub struct Reports {
    /// Set by the guest thread to `Commands::seq` when a command is done (the monitor
    /// sleeps on it).
    pub done_seq: AtomicU32,
    /// Set by the mapper thread to `Commands::ops_seq` once the command's host calls are
    /// made (the guest thread sleeps on it).
    pub ops_done: AtomicU32,
    /// The guest thread sleeps on `Commands::seq`.
    pub guest_waiting: AtomicU32,
    /// The mapper thread sleeps on `Commands::ops_seq`.
    pub mapper_waiting: AtomicU32,
    /// The guest thread sleeps on `ops_done`.
    pub guest_waiting_ops: AtomicU32,
    /// The monitor sleeps on `done_seq`.
    pub monitor_waiting: AtomicU32,
    _pad: [u32; 10],
    /// The last exit.
    pub exit: ExitRecord,
    /// The guest's FXSAVE image at the exit (the first [`FX_BYTES`] bytes are used).
    pub fx: Fx,
    /// What each host call returned (`-errno` on failure).
    pub results: [i64; MAX_OPS],
}

/// Offset of [`Commands`] in the shared memfd.
pub const COMMANDS_OFFSET: usize = REPORTS_SIZE;

const _: () = assert!(std::mem::size_of::<Reports>() <= REPORTS_SIZE);
const _: () = assert!(std::mem::size_of::<Commands>() <= COMMANDS_SIZE);

/// Offsets the stub's assembly uses: `C_*` in [`Commands`], `R_*` in [`Reports`].
pub mod off {
    use super::*;
    /// `Commands::seq`.
    pub const C_SEQ: usize = offset_of!(Commands, seq);
    /// `Commands::cmd`.
    pub const C_CMD: usize = offset_of!(Commands, cmd);
    /// `Commands::n_ops`.
    pub const C_N_OPS: usize = offset_of!(Commands, n_ops);
    /// `Commands::ops_seq`.
    pub const C_OPS_SEQ: usize = offset_of!(Commands, ops_seq);
    /// `Commands::setup_flags`.
    pub const C_SETUP_FLAGS: usize = offset_of!(Commands, setup_flags);
    /// `Commands::guest_fprog`.
    pub const C_GUEST_FPROG: usize = offset_of!(Commands, guest_fprog);
    /// `Commands::mapper_fprog`.
    pub const C_MAPPER_FPROG: usize = offset_of!(Commands, mapper_fprog);
    /// `Commands::entry.gpr`.
    pub const C_ENTRY_GPR: usize = offset_of!(Commands, entry) + offset_of!(Entry, gpr);
    /// `Commands::entry.eip`.
    pub const C_ENTRY_EIP: usize = offset_of!(Commands, entry) + offset_of!(Entry, eip);
    /// `Commands::entry.eflags`.
    pub const C_ENTRY_EFLAGS: usize = offset_of!(Commands, entry) + offset_of!(Entry, eflags);
    /// `Commands::entry.sel`.
    pub const C_ENTRY_SEL: usize = offset_of!(Commands, entry) + offset_of!(Entry, sel);
    /// `Commands::fx`.
    pub const C_FX: usize = offset_of!(Commands, fx);
    /// `Commands::ops`.
    pub const C_OPS: usize = offset_of!(Commands, ops);
    /// `Reports::done_seq`.
    pub const R_DONE_SEQ: usize = offset_of!(Reports, done_seq);
    /// `Reports::ops_done`.
    pub const R_OPS_DONE: usize = offset_of!(Reports, ops_done);
    /// `Reports::guest_waiting`.
    pub const R_GUEST_WAITING: usize = offset_of!(Reports, guest_waiting);
    /// `Reports::mapper_waiting`.
    pub const R_MAPPER_WAITING: usize = offset_of!(Reports, mapper_waiting);
    /// `Reports::guest_waiting_ops`.
    pub const R_GUEST_WAITING_OPS: usize = offset_of!(Reports, guest_waiting_ops);
    /// `Reports::monitor_waiting`.
    pub const R_MONITOR_WAITING: usize = offset_of!(Reports, monitor_waiting);
    /// `Reports::exit.gpr`.
    pub const R_EXIT_GPR: usize = offset_of!(Reports, exit) + offset_of!(ExitRecord, gpr);
    /// `Reports::exit.eip`.
    pub const R_EXIT_EIP: usize = offset_of!(Reports, exit) + offset_of!(ExitRecord, eip);
    /// `Reports::exit.eflags`.
    pub const R_EXIT_EFLAGS: usize = offset_of!(Reports, exit) + offset_of!(ExitRecord, eflags);
    /// `Reports::exit.sel`.
    pub const R_EXIT_SEL: usize = offset_of!(Reports, exit) + offset_of!(ExitRecord, sel);
    /// `Reports::exit.signo`.
    pub const R_EXIT_SIGNO: usize = offset_of!(Reports, exit) + offset_of!(ExitRecord, signo);
    /// `Reports::exit.si_code`.
    pub const R_EXIT_SI_CODE: usize = offset_of!(Reports, exit) + offset_of!(ExitRecord, si_code);
    /// `Reports::exit.trapno`.
    pub const R_EXIT_TRAPNO: usize = offset_of!(Reports, exit) + offset_of!(ExitRecord, trapno);
    /// `Reports::exit.err`.
    pub const R_EXIT_ERR: usize = offset_of!(Reports, exit) + offset_of!(ExitRecord, err);
    /// `Reports::exit.fault_addr`.
    pub const R_EXIT_FAULT_ADDR: usize = offset_of!(Reports, exit) + offset_of!(ExitRecord, fault_addr);
    /// `Reports::fx`.
    pub const R_FX: usize = offset_of!(Reports, fx);
    /// `Reports::results`.
    pub const R_RESULTS: usize = offset_of!(Reports, results);
}

/// The stub's address of `Commands::descs[i]` (for a `modify_ldt` op).
pub fn desc_addr(i: usize) -> u64 {
    STUB_COMMANDS + (offset_of!(Commands, descs) + i * std::mem::size_of::<UserDesc>()) as u64
}

/// The stub's addresses of the two filters.
pub fn filter_addrs() -> (u64, u64) {
    (STUB_COMMANDS + offset_of!(Commands, guest_filter) as u64, STUB_COMMANDS + offset_of!(Commands, mapper_filter) as u64)
}
