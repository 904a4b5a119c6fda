//! Deciding what each guest instruction becomes: the translator's front end.
//!
//! Every decoded instruction gets a [`Class`]: re-encoded as it is (IDENT, with its
//! memory operand redirected into the window), expanded into a short host sequence
//! (stack and branch instructions, which mean something else in 64-bit mode), handled
//! inline on the virtual CPU (`cli`, `sti`, `pushf`, `popf`), or a callout to the
//! monitor (privileged and sensitive instructions). The emitter turns classes into code.

use iced_x86::{Code, CpuidFeature, Instruction, Mnemonic, OpKind};

use crate::mode::Mode;

/// What an instruction becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Re-encoded for 64-bit mode with memory operands redirected into the window.
    Ident,
    /// Has no effect: emits nothing.
    Nop,
    /// `inc r32`/`dec r32` in their one-byte forms (REX prefixes in 64-bit mode).
    IncDecShort,
    /// `lea`: an address computation with no memory access and no segment.
    Lea,
    /// `xlat`: AL = [seg:EBX + AL].
    Xlat,
    /// `push` of a register, immediate or memory operand.
    Push,
    /// `push es/cs/ss/ds/fs/gs`.
    PushSreg,
    /// `mov r/m, sreg`: a selector read.
    SregRead,
    /// `mov r32, cr2` at CPL 0: CR2 is kept in the context.
    Cr2Read,
    /// `pop` into a register or memory.
    Pop,
    /// `pusha`/`pushad`.
    PushAll,
    /// `popa`/`popad`.
    PopAll,
    /// `pushf`/`pushfd`.
    PushFlags,
    /// `popf`/`popfd` at CPL 0 (elsewhere a callout).
    PopFlags,
    /// `enter n, 0` (nesting levels above 0 are callouts).
    Enter,
    /// `leave`.
    Leave,
    /// Direct near jump.
    Jmp,
    /// Conditional near jump.
    Jcc,
    /// `loop`, `loope`, `loopne`, `jcxz`, `jecxz`.
    Loop,
    /// Direct near call.
    Call,
    /// Near return (with or without an immediate).
    Ret,
    /// Near jump through a register or memory.
    JmpIndirect,
    /// Near call through a register or memory.
    CallIndirect,
    /// `movs`, `stos`, `lods`, `cmps`, `scas`, with or without a rep prefix.
    StringOp,
    /// `cli` at CPL 0.
    Cli,
    /// `sti` at CPL 0.
    Sti,
    /// `salc` (undocumented: AL = CF ? 0xFF : 0).
    Salc,
    /// `rdtsc` at CPL 0: the host TSC plus the guest's offset.
    Rdtsc,
    /// `mov ds/es/fs/gs, r/m` or `pop ds/es/fs/gs` at CPL 0 in protected mode: reloading
    /// the selector the register holds (for FS and GS, or the one it held before) is done
    /// inline, anything else is a callout.
    SregLoad,
    /// Executed by the monitor. `resumable`: translated code can continue after it.
    Callout {
        /// True if execution normally continues with the next instruction.
        resumable: bool,
    },
    /// Raises an exception (vector, error code) without executing.
    Raise(u8, Option<u32>),
}

/// Features of bt86's virtual CPU (the CPUID the monitor reports): instructions needing
/// anything else raise #UD, as on a CPU without them.
pub fn feature_supported(f: CpuidFeature) -> bool {
    use CpuidFeature as F;
    matches!(
        f,
        F::INTEL8086
            | F::INTEL186
            | F::INTEL286
            | F::INTEL386
            | F::INTEL486
            | F::FPU
            | F::FPU287
            | F::FPU387
            | F::CMOV
            | F::CX8
            | F::FXSR
            | F::MMX
            | F::SSE
            | F::SSE2
            | F::SSE3
            | F::TSC
            | F::MSR
            | F::CPUID
            | F::CLFSH
            | F::PAUSE
            | F::MULTIBYTENOP
            | F::SEP
    )
}

/// True if the instruction touches x87, MMX or SSE state.
pub fn uses_fpu(ins: &Instruction) -> bool {
    use CpuidFeature as F;
    if ins.mnemonic() == Mnemonic::Wait {
        return true;
    }
    ins.cpuid_features().iter().any(|f| matches!(f, F::FPU | F::FPU287 | F::FPU387 | F::MMX | F::SSE | F::SSE2 | F::SSE3 | F::FXSR))
        || (0..ins.op_count()).any(|i| {
            ins.op_kind(i) == OpKind::Register && {
                let r = ins.op_register(i);
                r.is_xmm() || r.is_mm() || r.is_st()
            }
        })
}

/// True for SSE/MMX/FXSR instructions (as opposed to x87), which CR0.EM makes #UD.
fn is_simd(ins: &Instruction) -> bool {
    use CpuidFeature as F;
    ins.cpuid_features().iter().any(|f| matches!(f, F::MMX | F::SSE | F::SSE2 | F::SSE3 | F::FXSR))
}

/// True for SSE instructions, which need CR4.OSFXSR.
fn is_sse(ins: &Instruction) -> bool {
    use CpuidFeature as F;
    ins.cpuid_features().iter().any(|f| matches!(f, F::SSE | F::SSE2 | F::SSE3))
        && !matches!(
            ins.mnemonic(),
            Mnemonic::Prefetchnta
                | Mnemonic::Prefetcht0
                | Mnemonic::Prefetcht1
                | Mnemonic::Prefetcht2
                | Mnemonic::Sfence
                | Mnemonic::Lfence
                | Mnemonic::Mfence
                | Mnemonic::Clflush
        )
}

const UD: Class = Class::Raise(6, None);
const NM: Class = Class::Raise(7, None);

/// Rewrites instructions into the equivalent form the translator handles: on our
/// virtual CPU (no LZCNT/BMI1) `lzcnt` and `tzcnt` are `rep bsr` and `rep bsf`, and the
/// 32-bit-only opcode 0x82 is 0x80.
pub fn canonicalize(ins: &mut Instruction) {
    let code = match ins.code() {
        Code::Lzcnt_r32_rm32 => Code::Bsr_r32_rm32,
        Code::Lzcnt_r16_rm16 => Code::Bsr_r16_rm16,
        Code::Tzcnt_r32_rm32 => Code::Bsf_r32_rm32,
        Code::Tzcnt_r16_rm16 => Code::Bsf_r16_rm16,
        // The moffs forms of mov cannot take a base register, which a segment with a
        // non-zero base needs: use the ModRM forms.
        Code::Mov_AL_moffs8 => Code::Mov_r8_rm8,
        Code::Mov_AX_moffs16 => Code::Mov_r16_rm16,
        Code::Mov_EAX_moffs32 => Code::Mov_r32_rm32,
        Code::Mov_moffs8_AL => Code::Mov_rm8_r8,
        Code::Mov_moffs16_AX => Code::Mov_rm16_r16,
        Code::Mov_moffs32_EAX => Code::Mov_rm32_r32,
        // Opcode 0x82 is a 32-bit-only alias of 0x80.
        Code::Add_rm8_imm8_82 => Code::Add_rm8_imm8,
        Code::Or_rm8_imm8_82 => Code::Or_rm8_imm8,
        Code::Adc_rm8_imm8_82 => Code::Adc_rm8_imm8,
        Code::Sbb_rm8_imm8_82 => Code::Sbb_rm8_imm8,
        Code::And_rm8_imm8_82 => Code::And_rm8_imm8,
        Code::Sub_rm8_imm8_82 => Code::Sub_rm8_imm8,
        Code::Xor_rm8_imm8_82 => Code::Xor_rm8_imm8,
        Code::Cmp_rm8_imm8_82 => Code::Cmp_rm8_imm8,
        _ => return,
    };
    if matches!(ins.code(), Code::Lzcnt_r32_rm32 | Code::Lzcnt_r16_rm16 | Code::Tzcnt_r32_rm32 | Code::Tzcnt_r16_rm16) {
        ins.set_has_rep_prefix(false);
    }
    let moffs = matches!(
        ins.code(),
        Code::Mov_AL_moffs8
            | Code::Mov_AX_moffs16
            | Code::Mov_EAX_moffs32
            | Code::Mov_moffs8_AL
            | Code::Mov_moffs16_AX
            | Code::Mov_moffs32_EAX
    );
    if moffs {
        // Same operands (the accumulator and a displacement-only memory operand), now
        // described by the ModRM form.
        let to_mem = matches!(ins.code(), Code::Mov_moffs8_AL | Code::Mov_moffs16_AX | Code::Mov_moffs32_EAX);
        let reg = if to_mem { ins.op1_register() } else { ins.op0_register() };
        let mem = iced_x86::MemoryOperand::new(
            iced_x86::Register::None,
            iced_x86::Register::None,
            1,
            ins.memory_displacement32() as i32 as i64,
            4,
            false,
            ins.segment_prefix(),
        );
        let rebuilt = if to_mem { Instruction::with2(code, mem, reg) } else { Instruction::with2(code, reg, mem) };
        if let Ok(mut r) = rebuilt {
            r.set_ip(ins.ip());
            r.set_len(ins.len());
            r.set_next_ip(ins.next_ip());
            r.set_has_lock_prefix(ins.has_lock_prefix());
            *ins = r;
        }
        return;
    }
    ins.set_code(code);
}

/// The system instructions: they read or change the virtual CPU's system state
/// (descriptor-table registers, CR0's low word, caches and TLB, CPUID, MSRs, performance
/// counters). Each is a callout, which the monitor's system-instruction emulation
/// implements: the one list both sides use.
pub const SYSTEM_INSTRUCTIONS: &[Mnemonic] = &[
    Mnemonic::Lgdt,
    Mnemonic::Lidt,
    Mnemonic::Lldt,
    Mnemonic::Ltr,
    Mnemonic::Sgdt,
    Mnemonic::Sidt,
    Mnemonic::Sldt,
    Mnemonic::Str,
    Mnemonic::Smsw,
    Mnemonic::Lmsw,
    Mnemonic::Clts,
    Mnemonic::Invlpg,
    Mnemonic::Invd,
    Mnemonic::Wbinvd,
    Mnemonic::Cpuid,
    Mnemonic::Rdmsr,
    Mnemonic::Wrmsr,
    Mnemonic::Rdpmc,
];

/// Classifies one decoded instruction for `mode`.
pub fn classify(ins: &Instruction, mode: Mode) -> Class {
    use Mnemonic as M;
    if ins.is_invalid() {
        return UD;
    }
    let cpl0 = mode.cpl() == 0;
    let mn = ins.mnemonic();
    if ins.is_jcc_short_or_near() {
        return Class::Jcc;
    }

    // FPU/SIMD availability (CR0.EM/TS/MP, CR4.OSFXSR) comes first, as on hardware.
    if uses_fpu(ins)
        && !matches!(mn, M::Prefetchnta | M::Prefetcht0 | M::Prefetcht1 | M::Prefetcht2 | M::Sfence | M::Lfence | M::Mfence | M::Clflush)
    {
        if mn == M::Wait {
            if mode.has(Mode::FPU_TS) && mode.has(Mode::FPU_MP) {
                return NM;
            }
        } else if (is_simd(ins) && mode.has(Mode::FPU_EM)) || (is_sse(ins) && !mode.has(Mode::OSFXSR)) {
            return UD;
        } else if mode.has(Mode::FPU_EM) || mode.has(Mode::FPU_TS) {
            return NM;
        }
    }

    match mn {
        M::Nop | M::Pause | M::Endbr32 | M::Endbr64 | M::Prefetchnta | M::Prefetcht0 | M::Prefetcht1 | M::Prefetcht2 => {
            return Class::Nop;
        }
        M::Reservednop => return Class::Nop,
        M::Lea => return Class::Lea,
        M::Xlatb => return Class::Xlat,
        M::Inc | M::Dec if matches!(ins.code(), Code::Inc_r32 | Code::Dec_r32 | Code::Inc_r16 | Code::Dec_r16) => {
            return Class::IncDecShort;
        }
        M::Push => {
            return match ins.op0_kind() {
                OpKind::Register if ins.op0_register().is_segment_register() => Class::PushSreg,
                _ => Class::Push,
            };
        }
        M::Pop => {
            return match ins.op0_kind() {
                OpKind::Register if ins.op0_register().is_segment_register() => sreg_load(ins, mode),
                _ => Class::Pop,
            };
        }
        M::Pusha | M::Pushad => return Class::PushAll,
        M::Popa | M::Popad => return Class::PopAll,
        M::Pushf | M::Pushfd => return Class::PushFlags,
        M::Popf | M::Popfd => {
            return if cpl0 { Class::PopFlags } else { Class::Callout { resumable: true } };
        }
        M::Enter => {
            return if ins.immediate8_2nd() == 0 && ins.code() == Code::Enterd_imm16_imm8 {
                Class::Enter
            } else {
                Class::Callout { resumable: true }
            };
        }
        M::Leave => return Class::Leave,
        M::Cli => {
            return if cpl0 { Class::Cli } else { Class::Callout { resumable: true } };
        }
        M::Sti => {
            return if cpl0 { Class::Sti } else { Class::Callout { resumable: true } };
        }
        M::Salc => return Class::Salc,
        M::Jmp => {
            return if ins.is_jmp_short_or_near() {
                Class::Jmp
            } else if ins.is_jmp_near_indirect() {
                Class::JmpIndirect
            } else {
                Class::Callout { resumable: false }
            };
        }
        M::Call => {
            return if ins.is_call_near() {
                Class::Call
            } else if ins.is_call_near_indirect() {
                Class::CallIndirect
            } else {
                Class::Callout { resumable: false }
            };
        }
        M::Ret => return Class::Ret,
        M::Loop | M::Loope | M::Loopne | M::Jcxz | M::Jecxz => return Class::Loop,
        M::Movsb
        | M::Movsw
        | M::Movsd
        | M::Stosb
        | M::Stosw
        | M::Stosd
        | M::Lodsb
        | M::Lodsw
        | M::Lodsd
        | M::Cmpsb
        | M::Cmpsw
        | M::Cmpsd
        | M::Scasb
        | M::Scasw
        | M::Scasd
            if ins.is_string_instruction() =>
        {
            // 16-bit addressing (SI/DI/CX) has no 64-bit form: the monitor runs it.
            let addr16 = (0..ins.op_count()).any(|i| matches!(ins.op_kind(i), OpKind::MemorySegSI | OpKind::MemoryESDI));
            return if addr16 { Class::Callout { resumable: true } } else { Class::StringOp };
        }
        M::Ud0 | M::Ud1 | M::Ud2 => return UD,
        // Control transfers the monitor performs.
        M::Retf | M::Iret | M::Iretd | M::Int | M::Int1 | M::Int3 | M::Sysenter | M::Sysexit | M::Syscall | M::Sysret => {
            return Class::Callout { resumable: false };
        }
        // Instructions that read or change virtual CPU state, or are I/O.
        M::Hlt
        | M::Into
        | M::In
        | M::Out
        | M::Insb
        | M::Insw
        | M::Insd
        | M::Outsb
        | M::Outsw
        | M::Outsd
        | M::Lar
        | M::Lsl
        | M::Verr
        | M::Verw
        | M::Arpl
        | M::Lds
        | M::Les
        | M::Lfs
        | M::Lgs
        | M::Lss
        | M::Bound
        | M::Daa
        | M::Das
        | M::Aaa
        | M::Aas
        | M::Aam
        | M::Aad => return Class::Callout { resumable: true },
        m if SYSTEM_INSTRUCTIONS.contains(&m) => return Class::Callout { resumable: true },
        M::Rdtsc => {
            return if cpl0 { Class::Rdtsc } else { Class::Callout { resumable: true } };
        }
        M::Mov => {
            let sreg_or_ctrl = (0..ins.op_count()).any(|i| {
                ins.op_kind(i) == OpKind::Register && {
                    let r = ins.op_register(i);
                    r.is_segment_register() || r.is_cr() || r.is_dr() || r.is_tr()
                }
            });
            if ins.op0_kind() == OpKind::Register && ins.op0_register().is_segment_register() {
                return sreg_load(ins, mode);
            }
            // A selector read (Linux's exception entry checks SS on every fault): the
            // selectors live in the context.
            if ins.op1_kind() == OpKind::Register && ins.op1_register().is_segment_register() {
                return Class::SregRead;
            }
            // CR2 read by a page-fault handler, once per fault.
            if cpl0
                && ins.op0_kind() == OpKind::Register
                && ins.op1_kind() == OpKind::Register
                && ins.op1_register() == iced_x86::Register::CR2
            {
                return Class::Cr2Read;
            }
            if sreg_or_ctrl {
                return Class::Callout { resumable: true };
            }
        }
        _ => {}
    }

    // Everything else is re-encoded, provided the virtual CPU has it, it means the same
    // in 64-bit mode, and it is not privileged.
    if !ins.cpuid_features().iter().all(|&f| feature_supported(f)) {
        return UD;
    }
    if ins.is_privileged() {
        return Class::Callout { resumable: true };
    }
    if ins.is_stack_instruction() || !ins.op_code().mode64() {
        // Not expected to reach here: every stack and 32-bit-only instruction is
        // classified above. The monitor reports it as unsupported.
        return Class::Callout { resumable: true };
    }
    for i in 0..ins.op_count() {
        match ins.op_kind(i) {
            OpKind::Register => {
                let r = ins.op_register(i);
                if r.is_segment_register() || r.is_cr() || r.is_dr() || r.is_tr() {
                    return Class::Callout { resumable: true };
                }
            }
            OpKind::Memory
            | OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8_2nd => {}
            // maskmovq/maskmovdqu store through DS:EDI; a GS prefix redirects it.
            OpKind::MemorySegEDI if crate::Seg::from_iced(ins.memory_segment()).is_some_and(|s| mode.is_flat(s)) => {}
            _ => return Class::Callout { resumable: true },
        }
    }
    Class::Ident
}

/// A load of segment register operand 0 (`mov sreg, r/m`, `pop sreg`): [`Class::SregLoad`]
/// where its inline fast path applies (DS, ES, FS, GS at CPL 0 in protected mode, not
/// single-stepping, 32-bit stack), else a callout.
fn sreg_load(ins: &Instruction, mode: Mode) -> Class {
    use iced_x86::Register as R;
    let data = matches!(ins.op0_register(), R::DS | R::ES | R::FS | R::GS);
    if data && mode.cpl() == 0 && mode.has(Mode::PROTECTED) && mode.has(Mode::STACK32) && !mode.has(Mode::TRAP_FLAG) {
        Class::SregLoad
    } else {
        Class::Callout { resumable: true }
    }
}

/// True if a class always ends the fragment (control leaves the straight line for
/// good). Conditional branches and calls do not: the fragment goes on with the
/// fall-through and with the code after the call (where the call returns).
pub fn ends_fragment(c: Class) -> bool {
    matches!(c, Class::Jmp | Class::Loop | Class::Ret | Class::JmpIndirect | Class::Raise(..) | Class::Callout { resumable: false })
}
