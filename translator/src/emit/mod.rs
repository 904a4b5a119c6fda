//! The translator's back end: host code for each classified guest instruction.
//!
//! One [`Emitter`] assembles one fragment with dynasmrt into a buffer whose final host
//! address is known in advance (the cache's next free address), so rel32 jumps to the
//! common stubs can be resolved at assembly time. Guest instructions re-encoded as they
//! are go through iced-x86's encoder ([`ident`]); the sequences the translator makes
//! up itself are written with `dynasm!` in the submodules:
//!
//! - `ident`: memory operands into the window, ESP → R12D, AH..BH next to REX;
//! - `stack`: push/pop/pusha/popa/enter/leave/pushf/popf;
//! - `branch`: direct branches and their exit stubs, indirect-branch lookup, calls;
//! - `string`: movs/stos/lods/cmps/scas with their registers rebased into the window;
//! - `misc`: cli/sti, salc, xlat, lea, the short inc/dec forms, callouts;
//! - `sreg`: segment-register loads at CPL 0 that reload what the register holds.
//!
//! Register use inside the TC: guest registers in host registers (ESP in R12D, see docs/architecture.md), R15 =
//! the [`Context`](crate::Context), R13 and R14 are per-instruction temporaries, R10
//! and R11 are used by the stubs' flag-free tests. Code between guest instructions must
//! not change the host flags, which hold the guest's: it uses `mov`, `lea`, `movzx`,
//! `not`, `xchg` and `jrcxz` only.

// dynasm's register macros (`Rd(n)`) expand to an `.into()` of a `u8`.
#![allow(clippy::useless_conversion)]

pub(crate) mod branch;
pub(crate) mod ident;
pub(crate) mod misc;
pub(crate) mod sreg;
pub(crate) mod stack;
pub(crate) mod string;

use dynasmrt::{DynamicLabel, DynasmApi, DynasmLabelApi, VecAssembler, dynasm, x64::X64Relocation};
use iced_x86::{Encoder, Instruction, Register};

use crate::context::off;
use crate::fragment::{CalloutKind, FaultPoint, Fixup};
use crate::mode::Mode;
use crate::stubs::Stubs;

/// Why an instruction could not be translated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EmitError {
    /// The instruction is valid but bt86 does not translate it (yet).
    Unsupported(String),
}

pub(crate) type EmitResult = Result<(), EmitError>;

/// A direct-branch exit waiting for its stub.
pub(crate) struct PendingExit {
    pub label: DynamicLabel,
    /// Offset of the rel32 field of the jump that goes to the stub.
    pub site_off: usize,
    pub target: u32,
    pub checked: bool,
    pub chainable: bool,
}

/// A callout emitted in this fragment.
pub(crate) struct PendingCallout {
    pub instr: Instruction,
    pub eip: u32,
    pub next_eip: u32,
    pub kind: CalloutKind,
    pub resume: Option<DynamicLabel>,
}

/// Host register number holding guest register `g` (0 = EAX .. 7 = EDI).
pub(crate) const fn host_reg(g: u8) -> u8 {
    if g == 4 { 12 } else { g }
}

/// Guest register number of a 32- or 16-bit general register.
pub(crate) fn gpr_number(r: Register) -> Option<u8> {
    use Register as R;
    Some(match r {
        R::EAX | R::AX => 0,
        R::ECX | R::CX => 1,
        R::EDX | R::DX => 2,
        R::EBX | R::BX => 3,
        R::ESP | R::SP => 4,
        R::EBP | R::BP => 5,
        R::ESI | R::SI => 6,
        R::EDI | R::DI => 7,
        _ => return None,
    })
}

/// Assembles one fragment.
pub(crate) struct Emitter<'a> {
    pub ops: VecAssembler<X64Relocation>,
    pub base: u64,
    pub stubs: &'a Stubs,
    pub mode: Mode,
    pub first_link: u32,
    pub first_callout: u32,
    pub faults: Vec<FaultPoint>,
    pub exits: Vec<PendingExit>,
    pub callouts: Vec<PendingCallout>,
    /// The guest FPU state is known to be loaded at this point of the code.
    pub fpu_ready: bool,
    /// An instruction that may enable interrupts (`sti`, `popf`) was translated: the
    /// fragment ends with an interrupt-window check.
    pub force_checked: bool,
    /// The instruction being emitted is the one after `sti` (its interrupt shadow) and
    /// is a branch: its exits go to the monitor, which delivers a pending interrupt.
    pub exits_via_monitor: bool,
    /// EIP of the instruction being emitted.
    pub eip: u32,
    /// Stack adjustment not yet applied to R12D (pushes and pops only move it, so a run
    /// of them costs one `lea` instead of one each); guest ESP = R12D + this.
    pub esp_delta: i32,
    /// What a 32-bit `push sreg` stores (the host CPU's behaviour).
    pub push_sreg: crate::model::PushSregModel,
    encoder: Encoder,
}

impl<'a> Emitter<'a> {
    pub fn new(base: u64, stubs: &'a Stubs, mode: Mode, first_link: u32, first_callout: u32) -> Self {
        Emitter {
            ops: VecAssembler::new(base as usize),
            base,
            stubs,
            mode,
            first_link,
            first_callout,
            faults: Vec::new(),
            exits: Vec::new(),
            callouts: Vec::new(),
            fpu_ready: false,
            force_checked: false,
            exits_via_monitor: false,
            eip: 0,
            esp_delta: 0,
            push_sreg: crate::model::PushSregModel::default(),
            encoder: Encoder::new(64),
        }
    }

    /// Current offset in the fragment.
    pub fn offset(&self) -> usize {
        self.ops.offset().0
    }

    /// Starts a new stretch of the host → guest map at the current offset.
    pub fn point(&mut self, fixup: Fixup) {
        let eip = self.eip;
        self.point_at(eip, fixup);
    }

    /// Like [`Emitter::point`], for guest EIP `eip`.
    pub fn point_at(&mut self, eip: u32, fixup: Fixup) {
        let host_off = self.offset() as u32;
        let p = FaultPoint { host_off, eip, fixup, esp_delta: self.esp_delta };
        if let Some(last) = self.faults.last_mut()
            && last.host_off == host_off
        {
            *last = p;
            return;
        }
        self.faults.push(p);
    }

    /// Applies the pending stack adjustment to R12D (before anything that needs the
    /// real ESP: a branch out of the fragment, a callout, an instruction that reads ESP).
    pub fn flush_esp(&mut self) {
        if self.esp_delta != 0 {
            let d = self.esp_delta;
            dynasm!(self.ops ; .arch x64 ; lea r12d, [r12 + d]);
            self.esp_delta = 0;
            let fixup = self.faults.last().map(|p| p.fixup).unwrap_or(Fixup::None);
            self.point(fixup);
        }
    }

    /// Begins guest instruction `eip`.
    pub fn begin(&mut self, eip: u32) {
        self.eip = eip;
        self.point(Fixup::None);
    }

    /// Encodes a (64-bit mode) instruction with iced-x86 and appends it.
    pub fn encode(&mut self, ins: &Instruction) -> EmitResult {
        let ip = self.base + self.offset() as u64;
        self.encoder.encode(ins, ip).map_err(|e| EmitError::Unsupported(format!("cannot re-encode for 64-bit mode: {e}")))?;
        let bytes = self.encoder.take_buffer();
        self.ops.extend(bytes.iter().copied());
        Ok(())
    }

    /// The fragment's checked entry: one load from the context's kick page, which faults
    /// (and becomes an [`crate::ExitReason::Kick`]) while the monitor has the page
    /// protected; the body starts where this returns.
    pub fn prologue(&mut self, eip: u32) {
        self.eip = eip;
        self.point(Fixup::None);
        let kick = crate::context::KICK_PAGE_OFFSET as i32;
        dynasm!(self.ops ; .arch x64 ; mov r11d, DWORD [r15 + kick]);
    }

    /// After `sti`/`popf`: if they set the context's `kick_sync` (an interrupt is
    /// pending, or single-stepping begins), exit to the monitor before `next`.
    pub fn interrupt_window(&mut self, next: u32) {
        let exit = self.stubs.interrupt_exit;
        dynasm!(self.ops
            ; .arch x64
            ; mov r11, rcx
            ; mov ecx, DWORD [r15 + off::KICK_SYNC]
            ; jrcxz >none
            ; mov rcx, r11
            ; mov DWORD [r15 + off::EXIT_EIP], next as i32
            ; jmp extern exit as usize
            ; none:
            ; mov rcx, r11
        );
    }

    /// Loads the guest FPU state if this point of the code cannot know it is loaded.
    pub fn ensure_fpu(&mut self) {
        if !self.fpu_ready {
            dynasm!(self.ops ; .arch x64 ; call QWORD [r15 + off::FPU_ENTER]);
            self.fpu_ready = true;
        }
    }

    /// Emits a callout: the monitor handles the instruction. Returns nothing; if
    /// `resumable`, the code after this point is where the fragment continues.
    pub fn callout(&mut self, instr: &Instruction, kind: CalloutKind, resumable: bool) {
        debug_assert_eq!(self.esp_delta, 0, "callout with a pending stack adjustment");
        let id = self.first_callout + self.callouts.len() as u32;
        let exit = self.stubs.callout_exit;
        dynasm!(self.ops
            ; .arch x64
            ; mov DWORD [r15 + off::EXIT_ARG], id as i32
            ; jmp extern exit as usize
        );
        let resume = resumable.then(|| {
            let l = self.ops.new_dynamic_label();
            self.ops.dynamic_label(l);
            l
        });
        if resumable {
            // Entered afresh from the monitor: the FPU state is not loaded there.
            self.fpu_ready = false;
        }
        self.callouts.push(PendingCallout { instr: *instr, eip: self.eip, next_eip: instr.next_ip32(), kind, resume });
    }

    /// Appends the exit stubs of every pending direct-branch exit.
    pub fn emit_exit_stubs(&mut self) {
        let chain_exit = self.stubs.chain_exit;
        for i in 0..self.exits.len() {
            let (label, target) = (self.exits[i].label, self.exits[i].target);
            let link = (self.first_link + i as u32) as i32;
            dynasm!(self.ops
                ; .arch x64
                ; =>label
                ; mov DWORD [r15 + off::EXIT_EIP], target as i32
                ; mov DWORD [r15 + off::EXIT_ARG], link
                ; jmp extern chain_exit as usize
            );
        }
    }
}
