//! The guest CPU context that translated code reads and writes.
//!
//! Inside the translation cache guest EAX..EDI (but ESP) live in the low halves of the
//! host registers of the same name, guest ESP lives in R12D, and R15 points to this
//! [`Context`]. The guest's arithmetic flags and DF live in the host RFLAGS. Everything
//! else the TC needs — virtual EFLAGS bits, segment bases, exit information, the
//! indirect-branch table — is here, at fixed offsets the emitter uses.
//!
//! Outside the TC (in the monitor) the whole guest register file is in this struct:
//! [`Context::eflags`] combines the parts.

use std::alloc::{Layout, alloc_zeroed};
use std::mem::offset_of;

/// Guest general-purpose register numbers (x86 encoding order).
pub mod reg {
    /// EAX
    pub const EAX: usize = 0;
    /// ECX
    pub const ECX: usize = 1;
    /// EDX
    pub const EDX: usize = 2;
    /// EBX
    pub const EBX: usize = 3;
    /// ESP
    pub const ESP: usize = 4;
    /// EBP
    pub const EBP: usize = 5;
    /// ESI
    pub const ESI: usize = 6;
    /// EDI
    pub const EDI: usize = 7;
}

/// Segment register numbers (x86 encoding order), indexes of [`Context::seg_base`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Seg {
    /// ES
    Es = 0,
    /// CS
    Cs = 1,
    /// SS
    Ss = 2,
    /// DS
    Ds = 3,
    /// FS
    Fs = 4,
    /// GS
    Gs = 5,
}

impl Seg {
    /// All six, in encoding order.
    pub const ALL: [Seg; 6] = [Seg::Es, Seg::Cs, Seg::Ss, Seg::Ds, Seg::Fs, Seg::Gs];

    /// The segment named by an iced-x86 segment register.
    pub fn from_iced(r: iced_x86::Register) -> Option<Seg> {
        use iced_x86::Register as R;
        Some(match r {
            R::ES => Seg::Es,
            R::CS => Seg::Cs,
            R::SS => Seg::Ss,
            R::DS => Seg::Ds,
            R::FS => Seg::Fs,
            R::GS => Seg::Gs,
            _ => return None,
        })
    }

    /// Name for messages.
    pub fn name(self) -> &'static str {
        ["es", "cs", "ss", "ds", "fs", "gs"][self as usize]
    }
}

/// EFLAGS bits.
pub mod flags {
    /// Carry.
    pub const CF: u32 = 1 << 0;
    /// Always-one bit 1.
    pub const FIXED1: u32 = 1 << 1;
    /// Parity.
    pub const PF: u32 = 1 << 2;
    /// Auxiliary carry.
    pub const AF: u32 = 1 << 4;
    /// Zero.
    pub const ZF: u32 = 1 << 6;
    /// Sign.
    pub const SF: u32 = 1 << 7;
    /// Trap (single step).
    pub const TF: u32 = 1 << 8;
    /// Interrupt enable.
    pub const IF: u32 = 1 << 9;
    /// Direction.
    pub const DF: u32 = 1 << 10;
    /// Overflow.
    pub const OF: u32 = 1 << 11;
    /// I/O privilege level (two bits).
    pub const IOPL: u32 = 3 << 12;
    /// Nested task.
    pub const NT: u32 = 1 << 14;
    /// Resume.
    pub const RF: u32 = 1 << 16;
    /// Virtual-8086 mode.
    pub const VM: u32 = 1 << 17;
    /// Alignment check.
    pub const AC: u32 = 1 << 18;
    /// Virtual interrupt flag.
    pub const VIF: u32 = 1 << 19;
    /// Virtual interrupt pending.
    pub const VIP: u32 = 1 << 20;
    /// CPUID available.
    pub const ID: u32 = 1 << 21;
    /// The arithmetic flags.
    pub const ARITH: u32 = CF | PF | AF | ZF | SF | OF;
    /// The bits the host RFLAGS holds for the guest inside the TC.
    pub const HOST_HELD: u32 = ARITH | DF;
    /// Bits the guest can ever see set.
    pub const ALL_DEFINED: u32 = HOST_HELD | FIXED1 | TF | IF | IOPL | NT | RF | VM | AC | VIF | VIP | ID;
}

/// A 512-byte `fxsave` image.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
pub struct FxArea(pub [u8; 512]);

impl FxArea {
    /// The state `fninit` plus the default MXCSR leave: FCW 0x037F, all registers empty.
    pub fn initial() -> FxArea {
        let mut a = FxArea([0; 512]);
        a.0[0..2].copy_from_slice(&0x037Fu16.to_le_bytes());
        a.0[24..28].copy_from_slice(&0x1F80u32.to_le_bytes());
        a.0[28..32].copy_from_slice(&0xFFFFu32.to_le_bytes()); // MXCSR_MASK
        a
    }
}

/// Why translated code returned to the monitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitReason {
    /// A fragment's entry check saw a pending kick; `exit_arg` is the fragment id.
    Kick = 1,
    /// A direct branch reached an unlinked exit; `exit_eip` is the target, `exit_arg` the link.
    Chain = 2,
    /// An indirect branch missed the lookup table; `exit_eip` is the target.
    IblMiss = 3,
    /// An instruction needs the monitor; `exit_arg` is the callout id.
    Callout = 4,
    /// A host signal (fault) in translated code; see [`Context::fault`].
    Fault = 5,
    /// After `sti`/`popf`: an interrupt may be deliverable (or single-stepping began);
    /// continue at `exit_eip`.
    Interrupt = 6,
}

impl ExitReason {
    /// Decodes the value the stubs store.
    pub fn from_u32(v: u32) -> Option<ExitReason> {
        Some(match v {
            1 => ExitReason::Kick,
            2 => ExitReason::Chain,
            3 => ExitReason::IblMiss,
            4 => ExitReason::Callout,
            5 => ExitReason::Fault,
            6 => ExitReason::Interrupt,
            _ => return None,
        })
    }
}

/// What a host fault in translated code was.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct HostFault {
    /// Signal number.
    pub signo: i32,
    /// `si_code`.
    pub code: i32,
    /// Hardware trap number from the signal context (13 = #GP, 14 = #PF, ...).
    pub trapno: u32,
    /// Hardware error code from the signal context.
    pub err: u32,
    /// Faulting host address (`si_addr`).
    pub addr: u64,
    /// Host RIP of the faulting instruction.
    pub rip: u64,
}

/// Number of entries of the indirect-branch lookup table (indexed by the low 16 bits of
/// the guest target).
pub const IBL_ENTRIES: usize = 1 << 16;

/// One indirect-branch lookup entry: a guest EIP (stored negated, so that a flag-free
/// `lea` tests equality) and the host code to run for it.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct IblEntry {
    /// `0 - guest_eip`.
    pub neg_eip: u32,
    /// Fragment id, for invalidation.
    pub fragment: u32,
    /// Host address to jump to.
    pub host: u64,
}

/// The guest CPU state shared between translated code and the monitor.
#[repr(C, align(64))]
pub struct Context {
    /// EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI.
    pub gpr: [u32; 8],
    /// Guest EIP (valid outside the TC).
    pub eip: u32,
    /// Arithmetic flags and DF (the bits the host RFLAGS holds inside the TC).
    pub host_flags: u32,
    /// Virtual EFLAGS bits: everything but the host-held bits and IF; bit 1 always set.
    pub vflags: u32,
    /// IF as 0 or 0x200 (a separate word so translated `cli`/`sti` are single stores).
    pub vif: u32,
    /// Set by asynchronous events (the host timer signal): exit at the next fragment entry.
    pub kick_async: u32,
    /// Set by the monitor and by translated `sti`/`popf`: an interrupt may be deliverable.
    pub kick_sync: u32,
    /// The interrupt controller has an interrupt for the CPU (1) or not (0).
    pub irq_pending: u32,
    /// Last [`ExitReason`] as u32.
    pub exit_reason: u32,
    /// Guest target EIP of a chain or IBL exit, or the EIP of a kicked fragment.
    pub exit_eip: u32,
    /// Link id, callout id or fragment id, by exit reason.
    pub exit_arg: u32,
    /// Segment bases of ES, CS, SS, DS, FS, GS, for segments the TC adds explicitly.
    pub seg_base: [u32; 6],
    /// Host RSP inside `enter`, restored by every exit.
    pub host_rsp: u64,
    /// Top of the stack translated code runs on (see `stubs`: guest `call`/`ret` become
    /// host `call`/`ret` on it, so the CPU's return predictor works for the guest).
    pub tc_stack_top: u64,
    /// Called at the start of fragments that use x87/SSE: loads the guest FPU state once.
    pub fpu_enter: u64,
    /// 1 while the guest FPU/SSE state is in the host registers.
    pub fpu_loaded: u32,
    /// The translation-cache generation of the code last entered: the ids in `exit_arg`
    /// belong to it (see [`crate::FragId`]), whatever the monitor translates afterwards.
    pub exit_generation: u32,
    /// The indirect-branch lookup table of the current mode ([`IblTable`]).
    pub ibl_table: u64,
    /// Guest segment selectors ES..GS, for translated `push sreg`.
    pub sel: [u32; 6],
    /// Per segment register ES..GS: whether translated code at CPL 0 may reload the
    /// selector it holds without the monitor ([`SREG_RELOAD_NEVER`], [`SREG_RELOAD_NULL`]
    /// or [`SREG_RELOAD_DESCRIPTOR`]; see `emit/sreg.rs`). Set by the monitor when it
    /// loads a data segment from a descriptor, cleared by every other change of the
    /// register and by loading GDTR or LDTR.
    pub sreg_reload: [u32; 6],
    /// For [`SREG_RELOAD_DESCRIPTOR`]: the linear address of the descriptor loaded.
    pub sreg_desc_addr: [u32; 6],
    /// For [`SREG_RELOAD_DESCRIPTOR`]: its 8 bytes after the load (accessed bit set).
    pub sreg_desc: [u64; 6],
    /// FS and GS also keep the state they held before the monitor last loaded another
    /// selector into them — selector, `sreg_reload` kind, descriptor address and bytes,
    /// base — so that translated code at CPL 0 can switch between two selectors without
    /// the monitor (a kernel's per-CPU segment on entry, the user's on exit): loading the
    /// other selector swaps the two states (`emit/sreg.rs`), and the monitor swaps its
    /// full segment caches after the exit ([`Context::sel`] tells it).
    pub sreg_alt_sel: [u32; 6],
    /// See `sreg_alt_sel`.
    pub sreg_alt_reload: [u32; 6],
    /// See `sreg_alt_sel`.
    pub sreg_alt_desc_addr: [u32; 6],
    /// See `sreg_alt_sel`.
    pub sreg_alt_base: [u32; 6],
    /// See `sreg_alt_sel`.
    pub sreg_alt_desc: [u64; 6],
    /// Fragment bodies entered (counted only when the translator is built for
    /// statistics).
    pub fragment_entries: u64,
    /// Added to the host TSC to make the guest's (wrmsr to IA32_TIME_STAMP_COUNTER).
    pub tsc_offset: u64,
    /// The guest's CR2 (the last #PF's linear address), here so that translated code at
    /// CPL 0 reads it inline: an OS's page-fault handler reads it on every fault.
    pub cr2: u32,
    /// The host address of the window translated code uses now (its GS base), for string
    /// instructions, which address it with 64-bit registers.
    pub window_base: u64,
    /// Its negation (to go back to guest offsets with `lea`, which leaves the flags a
    /// `cmps` or `scas` set alone).
    pub window_base_neg: u64,
    /// Details of the last [`ExitReason::Fault`].
    pub fault: HostFault,
    /// Guest x87/SSE state while it is not in the host registers.
    pub guest_fx: FxArea,
}

/// [`Context::sreg_reload`]: the monitor must perform every load of this register.
pub const SREG_RELOAD_NEVER: u32 = 0;
/// [`Context::sreg_reload`]: the register holds a null selector, loaded at CPL 0 or 3.
pub const SREG_RELOAD_NULL: u32 = 1;
/// [`Context::sreg_reload`]: the register was loaded from the descriptor at
/// [`Context::sreg_desc_addr`], which then read [`Context::sreg_desc`].
pub const SREG_RELOAD_DESCRIPTOR: u32 = 2;

/// An indirect-branch lookup table: one per [`crate::Mode`], because a table entry
/// jumps straight into a fragment, which is only valid in its own mode.
#[repr(C, align(64))]
pub struct IblTable(pub [IblEntry; IBL_ENTRIES]);

impl IblTable {
    /// A table whose every entry sends lookups to `miss` (the IBL miss stub).
    pub fn new_boxed(miss: u64) -> Box<IblTable> {
        let layout = Layout::new::<IblTable>();
        // SAFETY: IblTable is plain old data, valid when zeroed; allocated with its layout.
        let mut t = unsafe {
            let p = alloc_zeroed(layout) as *mut IblTable;
            if p.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            Box::from_raw(p)
        };
        t.clear(miss);
        t
    }

    /// Empties the table.
    pub fn clear(&mut self, miss: u64) {
        for e in self.0.iter_mut() {
            *e = IblEntry { neg_eip: 0, fragment: u32::MAX, host: miss };
        }
    }

    /// The slot for `eip`.
    pub fn slot(eip: u32) -> usize {
        (eip & 0xFFFF) as usize
    }
}

/// Offset functions of element `s` of the context's per-segment-register arrays.
macro_rules! per_segment_offsets {
    ($($name:ident: $elem:ty),* $(,)?) => {$(
        #[doc = concat!("Of `", stringify!($name), "[s]`.")]
        pub const fn $name(s: Seg) -> i32 {
            (offset_of!(Context, $name) + std::mem::size_of::<$elem>() * s as usize) as i32
        }
    )*};
}

/// Offsets of [`Context`] fields, for the emitter.
pub mod off {
    use super::*;
    per_segment_offsets!(
        seg_base: u32,
        sel: u32,
        sreg_reload: u32,
        sreg_desc_addr: u32,
        sreg_desc: u64,
        sreg_alt_sel: u32,
        sreg_alt_reload: u32,
        sreg_alt_desc_addr: u32,
        sreg_alt_base: u32,
        sreg_alt_desc: u64,
    );
    /// Of `gpr[n]`.
    pub const fn gpr(n: usize) -> i32 {
        (offset_of!(Context, gpr) + 4 * n) as i32
    }
    /// Of `eip`.
    pub const EIP: i32 = offset_of!(Context, eip) as i32;
    /// Of `cr2`.
    pub const CR2: i32 = offset_of!(Context, cr2) as i32;
    /// Of `window_base`.
    pub const WINDOW_BASE: i32 = offset_of!(Context, window_base) as i32;
    /// Of `window_base_neg`.
    pub const WINDOW_BASE_NEG: i32 = offset_of!(Context, window_base_neg) as i32;
    /// Of `host_flags`.
    pub const HOST_FLAGS: i32 = offset_of!(Context, host_flags) as i32;
    /// Of `vflags`.
    pub const VFLAGS: i32 = offset_of!(Context, vflags) as i32;
    /// Of `vif`.
    pub const VIF: i32 = offset_of!(Context, vif) as i32;
    /// Of `kick_async` (the u64 `kick_async | kick_sync << 32` starts here).
    pub const KICK: i32 = offset_of!(Context, kick_async) as i32;
    /// Of `kick_sync`.
    pub const KICK_SYNC: i32 = offset_of!(Context, kick_sync) as i32;
    /// Of `irq_pending`.
    pub const IRQ_PENDING: i32 = offset_of!(Context, irq_pending) as i32;
    /// Of `exit_reason`.
    pub const EXIT_REASON: i32 = offset_of!(Context, exit_reason) as i32;
    /// Of `exit_eip`.
    pub const EXIT_EIP: i32 = offset_of!(Context, exit_eip) as i32;
    /// Of `exit_arg`.
    pub const EXIT_ARG: i32 = offset_of!(Context, exit_arg) as i32;
    /// Of `host_rsp`.
    pub const HOST_RSP: i32 = offset_of!(Context, host_rsp) as i32;
    /// Of `tc_stack_top`.
    pub const TC_STACK_TOP: i32 = offset_of!(Context, tc_stack_top) as i32;
    /// Of `fpu_enter`.
    pub const FPU_ENTER: i32 = offset_of!(Context, fpu_enter) as i32;
    /// Of `fpu_loaded`.
    pub const FPU_LOADED: i32 = offset_of!(Context, fpu_loaded) as i32;
    /// Of `guest_fx`.
    pub const GUEST_FX: i32 = offset_of!(Context, guest_fx) as i32;
    /// Of `fragment_entries`.
    pub const FRAGMENT_ENTRIES: i32 = offset_of!(Context, fragment_entries) as i32;
    /// Of `tsc_offset`.
    pub const TSC_OFFSET: i32 = offset_of!(Context, tsc_offset) as i32;
    /// Of `ibl_table`.
    pub const IBL_TABLE: i32 = offset_of!(Context, ibl_table) as i32;
}

const _: () = assert!(off::KICK % 8 == 0 && off::KICK_SYNC == off::KICK + 4);
const _: () = assert!(off::GUEST_FX % 16 == 0);

/// Offset from a context's address of its *kick page*: a page that translated code reads
/// at every checked fragment entry (one load, no branch, no flags). To make translated
/// code stop at the next checked entry, the monitor makes the page inaccessible
/// ([`ContextBox::arm_kick`]); the load then faults, and the fault handler turns the fault
/// into an [`ExitReason::Kick`].
pub const KICK_PAGE_OFFSET: usize = std::mem::size_of::<Context>().next_multiple_of(4096);

/// A [`Context`] in a mapping of its own, followed by its kick page.
pub struct ContextBox {
    ptr: std::ptr::NonNull<Context>,
}

// SAFETY: the mapping is owned by this value alone; moving it between threads moves the
// ownership (the translator runs a context on one thread at a time).
unsafe impl Send for ContextBox {}

const CONTEXT_MAPPING: usize = KICK_PAGE_OFFSET + 4096;

impl ContextBox {
    /// Maps a zeroed context with EFLAGS = 0x2 and the initial FPU state.
    pub fn new() -> ContextBox {
        // SAFETY: a fresh anonymous mapping, zero-filled by the kernel; all-zero bytes are
        // a valid Context (plain old data).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                CONTEXT_MAPPING,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(p != libc::MAP_FAILED, "cannot map the guest context: {}", std::io::Error::last_os_error());
        let mut b = ContextBox { ptr: std::ptr::NonNull::new(p as *mut Context).expect("mmap returned null") };
        b.vflags = flags::FIXED1;
        b.guest_fx = FxArea::initial();
        b
    }

    /// Address of the kick page.
    pub fn kick_page(&self) -> *mut libc::c_void {
        kick_page_of(self.ptr.as_ptr())
    }

    /// Makes the next checked fragment entry exit ([`ExitReason::Kick`]).
    pub fn arm_kick(&self) {
        arm_kick(self.ptr.as_ptr());
    }

    /// Undoes [`ContextBox::arm_kick`].
    pub fn disarm_kick(&self) {
        disarm_kick(self.ptr.as_ptr());
    }
}

/// The kick page of the context at `ctx`.
pub fn kick_page_of(ctx: *mut Context) -> *mut libc::c_void {
    (ctx as usize + KICK_PAGE_OFFSET) as *mut libc::c_void
}

/// Makes the kick page of `ctx` inaccessible (async-signal-safe: one system call).
pub fn arm_kick(ctx: *mut Context) {
    // SAFETY: the kick page belongs to the context's own mapping (ContextBox).
    unsafe { libc::mprotect(kick_page_of(ctx), 4096, libc::PROT_NONE) };
}

/// Makes the kick page of `ctx` readable again (async-signal-safe).
pub fn disarm_kick(ctx: *mut Context) {
    // SAFETY: as in `arm_kick`.
    unsafe { libc::mprotect(kick_page_of(ctx), 4096, libc::PROT_READ) };
}

impl Default for ContextBox {
    fn default() -> Self {
        ContextBox::new()
    }
}

impl std::ops::Deref for ContextBox {
    type Target = Context;
    fn deref(&self) -> &Context {
        // SAFETY: the mapping holds a valid Context for our lifetime.
        unsafe { self.ptr.as_ref() }
    }
}

impl std::ops::DerefMut for ContextBox {
    fn deref_mut(&mut self) -> &mut Context {
        // SAFETY: as above; &mut self makes this the only reference.
        unsafe { self.ptr.as_mut() }
    }
}

impl Drop for ContextBox {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly our mapping; nothing uses the context afterwards.
        unsafe { libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, CONTEXT_MAPPING) };
    }
}

impl Context {
    /// A new context in its own mapping (see [`ContextBox`]).
    pub fn new_boxed() -> ContextBox {
        ContextBox::new()
    }

    /// Resets the guest registers (as at power-on: all zero, EFLAGS = 2, FPU initial)
    /// and the exit state, keeping what ties the context to the translator.
    pub fn reset_registers(&mut self) {
        self.gpr = [0; 8];
        self.eip = 0;
        self.set_eflags(flags::FIXED1);
        self.kick_async = 0;
        self.kick_sync = 0;
        self.irq_pending = 0;
        self.seg_base = [0; 6];
        self.sel = [0; 6];
        self.sreg_reload = [SREG_RELOAD_NEVER; 6];
        self.sreg_alt_sel = [0; 6];
        self.sreg_alt_reload = [SREG_RELOAD_NEVER; 6];
        self.cr2 = 0;
        self.guest_fx = FxArea::initial();
    }

    /// The guest's full EFLAGS.
    pub fn eflags(&self) -> u32 {
        (self.host_flags & flags::HOST_HELD) | (self.vflags & !(flags::HOST_HELD | flags::IF)) | (self.vif & flags::IF) | flags::FIXED1
    }

    /// Sets the guest's full EFLAGS (all bits as given; callers apply privilege rules).
    pub fn set_eflags(&mut self, v: u32) {
        let v = (v & flags::ALL_DEFINED) | flags::FIXED1;
        self.host_flags = v & flags::HOST_HELD;
        self.vflags = v & !(flags::HOST_HELD | flags::IF);
        self.vif = v & flags::IF;
    }

    /// Guest ESP.
    pub fn esp(&self) -> u32 {
        self.gpr[reg::ESP]
    }
}
