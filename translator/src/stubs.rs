//! The common stubs at the start of the translation cache: entering translated code
//! from the monitor, the shared exit path back to it, and the lazy FPU switch.
//!
//! `enter` is an ordinary `sysv64` function: it saves the host's callee-saved registers,
//! remembers the host RSP in the context, switches to the translated-code stack (with
//! the return sentinel at its bottom), loads the guest registers and flags and jumps to
//! a fragment. Every exit stores its reason in the context and jumps to
//! `exit_common`, which saves the guest registers and flags, puts the guest FPU state
//! away if a fragment loaded it, and returns from `enter` with the exit reason.

use dynasmrt::{DynasmApi, DynasmLabelApi, VecAssembler, dynasm, x64::X64Relocation};

use crate::context::{ExitReason, flags, off};
use crate::tc::CodeCache;

/// Host addresses of the stubs.
#[derive(Clone, Copy, Debug)]
pub struct Stubs {
    /// `extern "sysv64" fn(ctx: *mut Context, target: u64) -> u32`.
    pub enter: u64,
    /// Saves guest state and returns to the monitor; `exit_reason` must be set.
    pub exit_common: u64,
    /// Like `exit_common` but for a context whose guest registers are already saved
    /// (the landing point of a host fault).
    pub fault_landing: u64,
    /// Exit for a direct branch whose link is not patched yet.
    pub chain_exit: u64,
    /// Exit for an indirect-branch lookup miss (target in R13D).
    pub ibl_miss: u64,
    /// Exit for a callout.
    pub callout_exit: u64,
    /// Exit for a kicked fragment entry.
    pub kick_exit: u64,
    /// Exit after `sti`/`popf` when an interrupt may be deliverable.
    pub interrupt_exit: u64,
    /// Loads the guest FPU state (called by fragments that use x87/SSE).
    pub fpu_load: u64,
    /// A bare `ret`: what `fpu_enter` points to once the guest FPU state is loaded.
    pub fpu_ret: u64,
    /// The indirect-branch lookup for the guest target in R13D, shared by return points
    /// whose check failed and by the stack sentinel.
    pub ibl_shared: u64,
    /// The return address at the bottom of the translated-code stack: a guest `ret` with
    /// no matching translated `call` lands here and looks its target up.
    pub ret_sentinel: u64,
}

/// The signature of the `enter` stub.
pub type EnterFn = unsafe extern "sysv64" fn(*mut crate::Context, u64) -> u32;

impl Stubs {
    /// Assembles the stubs into the start of an empty cache and seals them there.
    pub fn install(tc: &mut CodeCache) -> Stubs {
        let base = tc.next_addr() as usize;
        let mut ops: VecAssembler<X64Relocation> = VecAssembler::new(base);
        let exit_common = ops.new_dynamic_label();
        let exit_tail = ops.new_dynamic_label();
        let fpu_ret = ops.new_dynamic_label();
        let fpu_load = ops.new_dynamic_label();
        let no_fpu = ops.new_dynamic_label();
        let ibl_shared = ops.new_dynamic_label();
        let ret_sentinel = ops.new_dynamic_label();
        let ibl_miss = ops.new_dynamic_label();

        let enter_off = ops.offset().0;
        dynasm!(ops
            ; .arch x64
            ; push rbx
            ; push rbp
            ; push r12
            ; push r13
            ; push r14
            ; push r15
            ; sub rsp, 8
            ; mov [rdi + off::HOST_RSP], rsp
            ; mov rsp, [rdi + off::TC_STACK_TOP]
            ; lea rax, [=>ret_sentinel]
            ; push rax
            ; mov r15, rdi
            ; mov r11, rsi
            ; mov eax, [r15 + off::HOST_FLAGS]
            ; and eax, flags::HOST_HELD as i32
            ; or eax, 0x202
            ; push rax
            ; popfq
            ; mov eax, [r15 + off::gpr(0)]
            ; mov ecx, [r15 + off::gpr(1)]
            ; mov edx, [r15 + off::gpr(2)]
            ; mov ebx, [r15 + off::gpr(3)]
            ; mov r12d, [r15 + off::gpr(4)]
            ; mov ebp, [r15 + off::gpr(5)]
            ; mov esi, [r15 + off::gpr(6)]
            ; mov edi, [r15 + off::gpr(7)]
            ; jmp r11
        );

        let exit_common_off = ops.offset().0;
        dynasm!(ops
            ; =>exit_common
            ; mov [r15 + off::gpr(0)], eax
            ; mov [r15 + off::gpr(1)], ecx
            ; mov [r15 + off::gpr(2)], edx
            ; mov [r15 + off::gpr(3)], ebx
            ; mov [r15 + off::gpr(4)], r12d
            ; mov [r15 + off::gpr(5)], ebp
            ; mov [r15 + off::gpr(6)], esi
            ; mov [r15 + off::gpr(7)], edi
            ; pushfq
            ; pop rax
            ; mov [r15 + off::HOST_FLAGS], eax
            ; cld
        );
        let fault_landing_off = ops.offset().0;
        dynasm!(ops
            ; =>exit_tail
            ; cld
            ; cmp DWORD [r15 + off::FPU_LOADED], 0
            ; je =>no_fpu
            // Put the guest FPU/SSE state away and give the host its default control
            // words back (the SysV ABI's only callee-saved FPU state).
            ; fxsave [r15 + off::GUEST_FX]
            ; mov DWORD [r15 + off::FPU_LOADED], 0
            ; lea rax, [=>fpu_load]
            ; mov [r15 + off::FPU_ENTER], rax
            ; fninit
            ; sub rsp, 8
            ; mov DWORD [rsp], 0x1F80
            ; ldmxcsr [rsp]
            ; add rsp, 8
            ; =>no_fpu
            ; mov eax, [r15 + off::EXIT_REASON]
            ; mov rsp, [r15 + off::HOST_RSP]
            ; add rsp, 8
            ; pop r15
            ; pop r14
            ; pop r13
            ; pop r12
            ; pop rbp
            ; pop rbx
            ; ret
        );

        let reason_stub = |ops: &mut VecAssembler<X64Relocation>, reason: ExitReason| {
            let at = ops.offset().0;
            dynasm!(ops
                ; .arch x64
                ; mov DWORD [r15 + off::EXIT_REASON], reason as i32
                ; jmp =>exit_common
            );
            at
        };
        let chain_exit_off = reason_stub(&mut ops, ExitReason::Chain);
        let callout_exit_off = reason_stub(&mut ops, ExitReason::Callout);
        let kick_exit_off = reason_stub(&mut ops, ExitReason::Kick);
        let interrupt_exit_off = reason_stub(&mut ops, ExitReason::Interrupt);
        let ibl_miss_off = ops.offset().0;
        dynasm!(ops
            ; =>ibl_miss
            ; mov [r15 + off::EXIT_EIP], r13d
            ; mov DWORD [r15 + off::EXIT_REASON], ExitReason::IblMiss as i32
            ; jmp =>exit_common
        );

        let ibl_shared_off = ops.offset().0;
        dynasm!(ops ; =>ibl_shared);
        crate::emit::branch::ibl_sequence(&mut ops, crate::emit::branch::IblMiss::Label(ibl_miss), crate::emit::branch::IblHit::Jump);
        let ret_sentinel_off = ops.offset().0;
        dynasm!(ops
            ; =>ret_sentinel
            // Keep the sentinel at the bottom of the stack: it is still in memory below
            // RSP, so moving RSP back re-pushes it (lea: no flags change).
            ; lea rsp, [rsp - 8]
            ; jmp =>ibl_shared
        );

        let fpu_load_off = ops.offset().0;
        dynasm!(ops
            ; =>fpu_load
            // No flags or guest registers may change here: R11 is the TC's scratch.
            ; fxrstor [r15 + off::GUEST_FX]
            ; mov DWORD [r15 + off::FPU_LOADED], 1
            ; lea r11, [=>fpu_ret]
            ; mov [r15 + off::FPU_ENTER], r11
            ; ret
        );
        let fpu_ret_off = ops.offset().0;
        dynasm!(ops
            ; =>fpu_ret
            ; ret
        );

        let code = ops.finalize().expect("stub assembly");
        let at = tc.append(&code).expect("translation cache too small for the stubs") as usize;
        assert_eq!(at, base);
        tc.seal_stubs();
        let a = |o: usize| (base + o) as u64;
        Stubs {
            enter: a(enter_off),
            exit_common: a(exit_common_off),
            fault_landing: a(fault_landing_off),
            chain_exit: a(chain_exit_off),
            ibl_miss: a(ibl_miss_off),
            callout_exit: a(callout_exit_off),
            kick_exit: a(kick_exit_off),
            interrupt_exit: a(interrupt_exit_off),
            fpu_load: a(fpu_load_off),
            fpu_ret: a(fpu_ret_off),
            ibl_shared: a(ibl_shared_off),
            ret_sentinel: a(ret_sentinel_off),
        }
    }

    /// The `enter` stub as a callable function.
    pub fn enter_fn(&self) -> EnterFn {
        // SAFETY: `enter` was assembled above as a sysv64 function of this signature and
        // lives in the cache for the translator's lifetime.
        unsafe { std::mem::transmute::<u64, EnterFn>(self.enter) }
    }
}
