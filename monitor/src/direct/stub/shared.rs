//! The pages the monitor and a stub share: commands one way, guest exits the other.
//!
//! Both sides see one `memfd` mapped shared; the stub at [`STUB_SHARED`], the monitor
//! wherever its mmap put it. The protocol is two sequence numbers and a futex each way:
//! the monitor writes a command and bumps `cmd_seq`; the stub executes it and, once guest
//! code exits (or at once for [`Command::Apply`]), writes the exit and sets `done_seq =
//! cmd_seq`. Each side spins briefly and then sleeps on the other's word, announcing the
//! sleep in `*_waiting` so that the other wakes it only when needed.
//!
//! Everything the stub writes here is untrusted: guest user code that escaped to 64-bit
//! mode in the stub can write any bytes at any time. The monitor copies the exit out once
//! and validates it before use.

use std::mem::offset_of;
use std::sync::atomic::AtomicU32;

/// Where the stub's code is loaded (above the 4 GiB + 4 KiB that hold the user window
/// and its mirror page, out of reach of 32-bit code).
pub const STUB_CODE: u64 = 0x2_0000_0000;
/// The stub's signal stack (its ELF's one writable segment).
pub const STUB_STACK: u64 = 0x2_0010_0000;
/// Size of the signal stack.
pub const STUB_STACK_SIZE: u64 = 64 * 1024;
/// Where the stub maps the shared pages.
pub const STUB_SHARED: u64 = 0x2_0020_0000;
/// Size of the shared pages.
pub const SHARED_SIZE: usize = 64 * 1024;

/// Host system calls a command can carry.
pub const MAX_OPS: usize = 384;
/// LDT descriptors a command can carry (for its `modify_ldt` ops).
pub const MAX_DESCS: usize = 128;
/// Instructions in the stub's seccomp filter.
pub const MAX_FILTER: usize = 64;

/// File descriptors the stub starts with (fixed numbers, set up before `exec`).
pub mod fds {
    /// The shared pages (closed once mapped).
    pub const SHARED: i32 = 3;
    /// Guest RAM, read-write: for pages the guest gives user code write access to.
    pub const RAM_RW: i32 = 4;
    /// Guest RAM, read-only: every other page, so that `mprotect` cannot widen them.
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

/// A host system call for the stub to make: `nr(args...)`, its result written back.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Op {
    /// System call number (x86-64).
    pub nr: u64,
    /// Arguments.
    pub args: [u64; 6],
    /// What it returned (`-errno` on failure), written by the stub.
    pub result: i64,
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

/// The shared pages.
#[repr(C, align(4096))]
pub struct Shared {
    /// Bumped by the monitor for each command (the stub's futex).
    pub cmd_seq: AtomicU32,
    /// Set by the stub to `cmd_seq` when a command is done (the monitor's futex).
    pub done_seq: AtomicU32,
    /// The stub sleeps on `cmd_seq`.
    pub stub_waiting: AtomicU32,
    /// The monitor sleeps on `done_seq`.
    pub monitor_waiting: AtomicU32,
    /// A [`Command`].
    pub cmd: u32,
    /// Entries of `ops` in use.
    pub n_ops: u32,
    /// Bit 0: turn on CPUID faulting at start.
    pub setup_flags: u32,
    /// The seccomp listener's descriptor in the stub (written at start).
    pub listener_fd: i32,
    /// Instructions in `filter`.
    pub filter_len: u32,
    _pad: [u32; 7],
    /// The guest state to run.
    pub entry: Entry,
    /// The last exit.
    pub exit: ExitRecord,
    /// The guest's FXSAVE image, both ways (the first 464 bytes are used).
    pub fx: Fx,
    /// Host calls.
    pub ops: [Op; MAX_OPS],
    /// Descriptors that `modify_ldt` ops point to.
    pub descs: [UserDesc; MAX_DESCS],
    /// The stub's seccomp filter (read once at start).
    pub filter: [SockFilter; MAX_FILTER],
}

/// An FXSAVE image.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub struct Fx(pub [u8; 512]);

/// Bytes of the FXSAVE image exchanged: the architectural part (the rest is the
/// kernel's `sw_reserved`, which must stay as it wrote it).
pub const FX_BYTES: usize = 464;

const _: () = assert!(std::mem::size_of::<Shared>() <= SHARED_SIZE);

/// Offsets the stub's assembly uses.
pub mod off {
    use super::*;
    /// `cmd_seq`.
    pub const CMD_SEQ: usize = offset_of!(Shared, cmd_seq);
    /// `done_seq`.
    pub const DONE_SEQ: usize = offset_of!(Shared, done_seq);
    /// `stub_waiting`.
    pub const STUB_WAITING: usize = offset_of!(Shared, stub_waiting);
    /// `monitor_waiting`.
    pub const MONITOR_WAITING: usize = offset_of!(Shared, monitor_waiting);
    /// `cmd`.
    pub const CMD: usize = offset_of!(Shared, cmd);
    /// `n_ops`.
    pub const N_OPS: usize = offset_of!(Shared, n_ops);
    /// `setup_flags`.
    pub const SETUP_FLAGS: usize = offset_of!(Shared, setup_flags);
    /// `listener_fd`.
    pub const LISTENER_FD: usize = offset_of!(Shared, listener_fd);
    /// `filter_len`.
    pub const FILTER_LEN: usize = offset_of!(Shared, filter_len);
    /// `entry.gpr`.
    pub const ENTRY_GPR: usize = offset_of!(Shared, entry) + offset_of!(Entry, gpr);
    /// `entry.eip`.
    pub const ENTRY_EIP: usize = offset_of!(Shared, entry) + offset_of!(Entry, eip);
    /// `entry.eflags`.
    pub const ENTRY_EFLAGS: usize = offset_of!(Shared, entry) + offset_of!(Entry, eflags);
    /// `entry.sel`.
    pub const ENTRY_SEL: usize = offset_of!(Shared, entry) + offset_of!(Entry, sel);
    /// `exit.gpr`.
    pub const EXIT_GPR: usize = offset_of!(Shared, exit) + offset_of!(ExitRecord, gpr);
    /// `exit.eip`.
    pub const EXIT_EIP: usize = offset_of!(Shared, exit) + offset_of!(ExitRecord, eip);
    /// `exit.eflags`.
    pub const EXIT_EFLAGS: usize = offset_of!(Shared, exit) + offset_of!(ExitRecord, eflags);
    /// `exit.sel`.
    pub const EXIT_SEL: usize = offset_of!(Shared, exit) + offset_of!(ExitRecord, sel);
    /// `exit.signo`.
    pub const EXIT_SIGNO: usize = offset_of!(Shared, exit) + offset_of!(ExitRecord, signo);
    /// `exit.si_code`.
    pub const EXIT_SI_CODE: usize = offset_of!(Shared, exit) + offset_of!(ExitRecord, si_code);
    /// `exit.trapno`.
    pub const EXIT_TRAPNO: usize = offset_of!(Shared, exit) + offset_of!(ExitRecord, trapno);
    /// `exit.err`.
    pub const EXIT_ERR: usize = offset_of!(Shared, exit) + offset_of!(ExitRecord, err);
    /// `exit.fault_addr`.
    pub const EXIT_FAULT_ADDR: usize = offset_of!(Shared, exit) + offset_of!(ExitRecord, fault_addr);
    /// `fx`.
    pub const FX: usize = offset_of!(Shared, fx);
    /// `ops`.
    pub const OPS: usize = offset_of!(Shared, ops);
    /// `filter`.
    pub const FILTER: usize = offset_of!(Shared, filter);
}
