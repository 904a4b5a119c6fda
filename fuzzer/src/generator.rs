//! Random sequences of unprivileged 32-bit instructions, encoded with iced-x86.
//!
//! Most instructions come from one generic path: for a mnemonic, every legacy encoding
//! (`Code`) valid in 32-bit mode whose operands are registers, memory or immediates is a
//! candidate, and operands are filled in at random. Stack, control-flow and string
//! instructions, and the few whose operands need a particular value, are built as small
//! constructs by hand.
//!
//! # Keeping memory accesses inside the data region
//!
//! The generator knows the initial value of every register and tracks which registers
//! still hold a value it knows (every instruction's written registers, from iced's
//! instruction info, become unknown; `mov r32, imm32` makes one known again). A memory
//! operand `[base + index*scale + disp]` uses known registers only and picks `disp` so that
//! the 32-bit (wrapping) effective address is the target it chose in the data region;
//! when no register is known it first emits `mov reg, imm32`. ESP is always known: only
//! the stack constructs change it, and they track it exactly. `a16` operands (`[bx+si]`
//! ...) need no tracking at all: every 16-bit effective address is inside the data region
//! (see [`super::engine`]). Live stack slots (return addresses, saved EBP, `ret imm16`
//! arguments) are protected from writes until their construct ends.
//!
//! Control flow stays forward inside the sequence, except bounded counted loops (`mov ecx,
//! k` ... `loop`) whose bodies start with no known registers. At the join point of a
//! forward branch only registers known with the same value on both paths stay known.
//!
//! Segment registers are read (`push sreg`) and CS reloaded (`retf` to the frame's own
//! code selector): both engines run with the same selector values (the native engine's
//! host LDT selectors), and what a 32-bit `push sreg` stores is the vendor's choice that
//! the host model reproduces (`bt86::harness::host_model`).

use std::sync::OnceLock;

use iced_x86::{
    BlockEncoder, BlockEncoderOptions, Code, Decoder, DecoderOptions, EncodingKind, Formatter, Instruction, InstructionBlock,
    InstructionInfoFactory, IntelFormatter, MemoryOperand, Mnemonic, OpAccess, OpCodeOperandKind as K, Register, RepPrefixKind,
};

use super::engine::{CODE_BASE, CODE_MAX, COMPARED_FLAGS, Case, CpuSnapshot, DATA_BASE, DATA_SIZE, FxArea, STACK_HI, STACK_LO};

// ---------------------------------------------------------------------------------------
// PRNG

/// SplitMix64: small, fast, and good enough to drive a fuzzer; fully determined by its
/// seed, so a seed reproduces a case.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// 32 random bits.
    pub fn u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    /// Uniform in `[0, n)` (0 if `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
    /// Uniform in `[lo, hi]`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    /// A random element.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
    /// An interesting 32-bit value: boundaries, small numbers, or random bits.
    pub fn value32(&mut self) -> u32 {
        match self.below(10) {
            0 => self.pick(&[0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF]),
            1 => self.range(-16, 16) as u32,
            2 => self.below(DATA_SIZE as u64) as u32,
            3 => self.u32() & 0xFF,
            4 => self.u32() & 0xFFFF,
            _ => self.u32(),
        }
    }
}

/// Derives the seed of case `index` of a campaign with seed `seed`.
pub fn case_seed(seed: u64, index: u64) -> u64 {
    Rng::new(seed ^ index.wrapping_mul(0xD6E8_FEB8_6659_FD93)).next_u64()
}

// ---------------------------------------------------------------------------------------
// Categories

/// Instruction categories, for weights and statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Category {
    /// Setup the generator inserts (pointer and counter loads, flag definers).
    Setup,
    /// add/or/adc/sbb/and/sub/xor/cmp/test/neg/not/inc/dec.
    Alu,
    /// Shifts and rotates, shld/shrd.
    Shift,
    /// mul/imul/div/idiv.
    MulDiv,
    /// lea.
    Lea,
    /// mov/movzx/movsx/xchg/cmpxchg/xadd/cmpxchg8b/bswap/cbw/cwde/cwd/cdq.
    Move,
    /// bt*/bsf/bsr/popcnt/setcc/cmovcc.
    Bits,
    /// lahf/sahf/clc/stc/cmc/cld/std/salc.
    Flags,
    /// push (including `push sreg`, both operand sizes)/pop/pusha/popa/pushf/popf/enter/leave.
    Stack,
    /// jmp/jcc/loop/jecxz/call/ret, direct and indirect; far returns (`retf`) through
    /// frames made with `push cs; call`.
    Branch,
    /// movs/stos/lods/cmps/scas with and without rep, xlat.
    String,
    /// daa/das/aaa/aas/aam/aad.
    Bcd,
    /// x87.
    X87,
    /// SSE/SSE2.
    Sse,
    /// Instructions that raise an exception at CPL 3 (ud2, hlt, cli, int n, in/out, into,
    /// bound).
    Trap,
}

impl Category {
    /// Every category, in [`Category::index`] order.
    pub const ALL: [Category; 15] = [
        Category::Setup,
        Category::Alu,
        Category::Shift,
        Category::MulDiv,
        Category::Lea,
        Category::Move,
        Category::Bits,
        Category::Flags,
        Category::Stack,
        Category::Branch,
        Category::String,
        Category::Bcd,
        Category::X87,
        Category::Sse,
        Category::Trap,
    ];
    /// Position in [`Category::ALL`].
    pub fn index(self) -> usize {
        Category::ALL.iter().position(|&c| c == self).unwrap()
    }
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Category::Setup => "setup",
            Category::Alu => "alu",
            Category::Shift => "shift",
            Category::MulDiv => "muldiv",
            Category::Lea => "lea",
            Category::Move => "move",
            Category::Bits => "bits",
            Category::Flags => "flags",
            Category::Stack => "stack",
            Category::Branch => "branch",
            Category::String => "string",
            Category::Bcd => "bcd",
            Category::X87 => "x87",
            Category::Sse => "sse",
            Category::Trap => "trap",
        }
    }
}

/// Instruction counts per category.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CategoryCounts(pub [u64; 15]);

impl CategoryCounts {
    /// Adds `other` to `self`.
    pub fn add(&mut self, other: &CategoryCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += b;
        }
    }
    /// The count of `c`.
    pub fn get(&self, c: Category) -> u64 {
        self.0[c.index()]
    }
}

/// Generator settings.
#[derive(Clone, Debug)]
pub struct GenConfig {
    /// Relative weight of each category (Setup's weight is ignored).
    pub weights: Vec<(Category, u32)>,
    /// After every instruction that leaves flags undefined, insert `cmp r32, r32` so that
    /// all arithmetic flags are defined again. For engines that emulate such instructions
    /// (BCD, shifts by more than one...) instead of running them on the host CPU.
    pub define_undefined_flags: bool,
}

impl Default for GenConfig {
    fn default() -> GenConfig {
        use Category::*;
        GenConfig {
            weights: vec![
                (Alu, 22),
                (Shift, 8),
                (MulDiv, 5),
                (Lea, 5),
                (Move, 14),
                (Bits, 8),
                (Flags, 3),
                (Stack, 8),
                (Branch, 7),
                (String, 5),
                (Bcd, 2),
                (X87, 7),
                (Sse, 8),
                (Trap, 1),
            ],
            define_undefined_flags: false,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Generic instruction tables

fn generic_mnemonics(c: Category) -> &'static [Mnemonic] {
    use Mnemonic::*;
    match c {
        Category::Alu => &[Add, Or, Adc, Sbb, And, Sub, Xor, Cmp, Test, Neg, Not, Inc, Dec],
        Category::Shift => &[Rol, Ror, Rcl, Rcr, Shl, Sal, Shr, Sar, Shld, Shrd],
        Category::MulDiv => &[Mul, Imul, Div, Idiv],
        Category::Lea => &[Lea],
        Category::Move => &[Mov, Movzx, Movsx, Xchg, Cmpxchg, Xadd, Cmpxchg8b, Bswap, Cbw, Cwde, Cwd, Cdq],
        Category::Bits => &[
            Bt, Bts, Btr, Btc, Bsf, Bsr, Seto, Setno, Setb, Setae, Sete, Setne, Setbe, Seta, Sets, Setns, Setp, Setnp, Setl, Setge, Setle,
            Setg, Cmovo, Cmovno, Cmovb, Cmovae, Cmove, Cmovne, Cmovbe, Cmova, Cmovs, Cmovns, Cmovp, Cmovnp, Cmovl, Cmovge, Cmovle, Cmovg,
        ],
        Category::Flags => &[Lahf, Sahf, Clc, Stc, Cmc, Cld, Std, Salc],
        Category::Bcd => &[Daa, Das, Aaa, Aas, Aam, Aad],
        Category::X87 => &[
            Fld, Fst, Fstp, Fild, Fist, Fistp, Fxch, Fldz, Fld1, Fldpi, Fldl2e, Fldl2t, Fldlg2, Fldln2, Fadd, Faddp, Fiadd, Fsub, Fsubp,
            Fsubr, Fsubrp, Fisub, Fisubr, Fmul, Fmulp, Fimul, Fdiv, Fdivp, Fdivr, Fdivrp, Fidiv, Fidivr, Fcom, Fcomp, Fcompp, Fucom,
            Fucomp, Fucompp, Fcomi, Fcomip, Fucomi, Fucomip, Ficom, Ficomp, Fchs, Fabs, Ftst, Fxam, Fsqrt, Frndint, Fnstsw, Fstsw, Fnstcw,
            Fstcw, Ffree, Fincstp, Fdecstp, Fcmovb, Fcmove, Fcmovbe, Fcmovu, Fcmovnb, Fcmovne, Fcmovnbe, Fcmovnu, Fnop, Fprem, Fprem1,
            Fscale, Fxtract, Fnclex, Wait,
        ],
        Category::Sse => &[
            Movaps, Movups, Movapd, Movupd, Movdqa, Movdqu, Movd, Movq, Movss, Movsd, Movlps, Movhps, Movlpd, Movhpd, Movhlps, Movlhps,
            Pxor, Por, Pand, Pandn, Paddb, Paddw, Paddd, Paddq, Psubb, Psubw, Psubd, Psubq, Paddusb, Paddsw, Psubusw, Pcmpeqb, Pcmpeqd,
            Pcmpgtw, Pmullw, Pmulhw, Pmuludq, Pmaddwd, Psllw, Pslld, Psllq, Psrlw, Psrld, Psrlq, Psraw, Psrad, Pslldq, Psrldq, Pshufd,
            Pshuflw, Pshufhw, Punpcklbw, Punpckldq, Punpckhqdq, Packsswb, Packuswb, Pmovmskb, Pextrw, Pinsrw, Pavgb, Pminub, Pmaxsw,
            Psadbw, Addps, Addss, Addpd, Addsd, Subps, Subss, Subpd, Subsd, Mulps, Mulss, Mulpd, Mulsd, Divps, Divss, Divpd, Divsd, Minps,
            Maxps, Minsd, Maxsd, Sqrtps, Sqrtss, Sqrtsd, Andps, Andnps, Orps, Xorps, Andpd, Xorpd, Unpcklps, Unpckhpd, Shufps, Shufpd,
            Cmpps, Cmpss, Cmppd, Cmpsd, Comiss, Ucomiss, Comisd, Ucomisd, Cvtsi2ss, Cvtsi2sd, Cvttss2si, Cvtss2si, Cvtsd2si, Cvttsd2si,
            Cvtdq2ps, Cvtps2dq, Cvttps2dq, Cvtps2pd, Cvtpd2ps, Cvtss2sd, Cvtsd2ss, Movmskps, Movmskpd, Stmxcsr,
        ],
        Category::Trap => &[Ud2, Into, Hlt, Cli, Sti, Bound, In, Out],
        _ => &[],
    }
}

fn supported_kind(k: K) -> bool {
    matches!(
        k,
        K::r8_or_mem
            | K::r16_or_mem
            | K::r32_or_mem
            | K::r8_reg
            | K::r8_opcode
            | K::r16_reg
            | K::r16_rm
            | K::r16_opcode
            | K::r32_reg
            | K::r32_rm
            | K::r32_opcode
            | K::xmm_or_mem
            | K::xmm_reg
            | K::xmm_rm
            | K::al
            | K::cl
            | K::ax
            | K::dx
            | K::eax
            | K::st0
            | K::sti_opcode
            | K::imm8
            | K::imm8_const_1
            | K::imm8sex16
            | K::imm8sex32
            | K::imm16
            | K::imm32
            | K::mem
            | K::mem_offs
    )
}

/// For each category, its mnemonics with their candidate `Code`s.
type Table = Vec<Vec<(Mnemonic, Vec<Code>)>>;

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        Category::ALL
            .iter()
            .map(|&c| {
                generic_mnemonics(c)
                    .iter()
                    .map(|&m| {
                        let codes: Vec<Code> = Code::values()
                            .filter(|code| {
                                let oc = code.op_code();
                                code.mnemonic() == m
                                    && oc.is_instruction()
                                    && oc.mode32()
                                    && oc.encoding() == EncodingKind::Legacy
                                    // not the encodings only some CPUs have (486 A-step
                                    // cmpxchg 0F A6/A7 and the like)
                                    && oc.decoder_option() == DecoderOptions::NONE
                                    // only what bt86's virtual CPU has (its CPUID)
                                    && code.cpuid_features().iter().all(|&f| bt86_translator::classify::feature_supported(f))
                                    && oc.op_kinds().iter().all(|&k| supported_kind(k))
                            })
                            .collect();
                        assert!(!codes.is_empty(), "no usable encoding of {m:?}");
                        (m, codes)
                    })
                    .collect()
            })
            .collect()
    })
}

// ---------------------------------------------------------------------------------------
// Registers

const R8: [Register; 8] = [Register::AL, Register::CL, Register::DL, Register::BL, Register::AH, Register::CH, Register::DH, Register::BH];
const R16: [Register; 8] = [Register::AX, Register::CX, Register::DX, Register::BX, Register::SP, Register::BP, Register::SI, Register::DI];
const R32: [Register; 8] =
    [Register::EAX, Register::ECX, Register::EDX, Register::EBX, Register::ESP, Register::EBP, Register::ESI, Register::EDI];
const XMM: [Register; 8] =
    [Register::XMM0, Register::XMM1, Register::XMM2, Register::XMM3, Register::XMM4, Register::XMM5, Register::XMM6, Register::XMM7];
const ESP: usize = 4;
const EBP: usize = 5;
const ECX: usize = 1;

/// Index 0..7 of the 32-bit register containing `r`, if it is a GPR.
/// How a generated call block calls and returns.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CallKind {
    /// `call rel32` ... `ret`.
    Near,
    /// `call r/m32` ... `ret`.
    Indirect,
    /// `push cs; call rel32` ... `retf`.
    Far,
}

/// `push sreg`: the register, its 16-bit and 32-bit forms.
const SREG_PUSHES: [(Register, Code, Code); 6] = [
    (Register::ES, Code::Pushw_ES, Code::Pushd_ES),
    (Register::CS, Code::Pushw_CS, Code::Pushd_CS),
    (Register::SS, Code::Pushw_SS, Code::Pushd_SS),
    (Register::DS, Code::Pushw_DS, Code::Pushd_DS),
    (Register::FS, Code::Pushw_FS, Code::Pushd_FS),
    (Register::GS, Code::Pushw_GS, Code::Pushd_GS),
];

fn gpr_index(r: Register) -> Option<usize> {
    let full = r.full_register32();
    R32.iter().position(|&x| x == full)
}

#[derive(Clone, Copy)]
enum Op {
    R(Register),
    M(MemoryOperand),
    I(i32),
}

fn build(code: Code, ops: &[Op]) -> Option<Instruction> {
    use Op::*;
    let r = match *ops {
        [] => Ok(Instruction::with(code)),
        [R(a)] => Instruction::with1(code, a),
        [M(a)] => Instruction::with1(code, a),
        [I(a)] => Instruction::with1(code, a),
        [R(a), R(b)] => Instruction::with2(code, a, b),
        [R(a), M(b)] => Instruction::with2(code, a, b),
        [R(a), I(b)] => Instruction::with2(code, a, b),
        [M(a), R(b)] => Instruction::with2(code, a, b),
        [M(a), I(b)] => Instruction::with2(code, a, b),
        [I(a), R(b)] => Instruction::with2(code, a, b),
        [I(a), I(b)] => Instruction::with2(code, a, b),
        [R(a), R(b), R(c)] => Instruction::with3(code, a, b, c),
        [R(a), R(b), I(c)] => Instruction::with3(code, a, b, c),
        [R(a), R(b), M(c)] => Instruction::with3(code, a, b, c),
        [R(a), M(b), R(c)] => Instruction::with3(code, a, b, c),
        [R(a), M(b), I(c)] => Instruction::with3(code, a, b, c),
        [M(a), R(b), R(c)] => Instruction::with3(code, a, b, c),
        [M(a), R(b), I(c)] => Instruction::with3(code, a, b, c),
        _ => return None,
    };
    r.ok()
}

/// 80-bit extended-precision encoding of an f64.
pub fn f64_to_f80(v: f64) -> [u8; 10] {
    let bits = v.to_bits();
    let sign = (bits >> 63) as u16;
    let exp = ((bits >> 52) & 0x7FF) as i32;
    let frac = bits & ((1 << 52) - 1);
    let (e, m): (u16, u64) = if exp == 0 && frac == 0 {
        (0, 0)
    } else if exp == 0x7FF {
        (0x7FFF, (1 << 63) | (frac << 11))
    } else if exp == 0 {
        // f64 subnormal: normalize.
        let shift = frac.leading_zeros() - 11;
        let m = frac << (shift + 11);
        ((15360 + 1 - shift as i32) as u16, m)
    } else {
        ((exp - 1023 + 16383) as u16, (1 << 63) | (frac << 11))
    };
    let mut out = [0u8; 10];
    out[..8].copy_from_slice(&m.to_le_bytes());
    out[8..].copy_from_slice(&((sign << 15) | e).to_le_bytes());
    out
}

// ---------------------------------------------------------------------------------------
// The generator

struct Gen<'a> {
    rng: Rng,
    cfg: &'a GenConfig,
    instrs: Vec<Instruction>,
    cats: Vec<Category>,
    next_label: u64,
    pending_label: Option<u64>,
    /// (instruction index, label): the instruction's imm32/disp is the label's address.
    fixups: Vec<(usize, u64)>,
    known: [Option<u32>; 8],
    esp: u32,
    /// Stack slots `[esp, protect)` are live and must not be written.
    protect: u32,
    /// Registers (bit i = R32[i]) that must not be written.
    reserved: u8,
    /// Registers that setup code must not load (they hold an operand's prepared value).
    locked: u8,
    /// > 0: inside a construct whose stack effect must be neutral.
    neutral: u32,
    depth: u32,
    info: InstructionInfoFactory,
    target: usize,
}

const MAX_ATTEMPTS: u32 = 64;

impl<'a> Gen<'a> {
    fn count(&self) -> usize {
        self.instrs.len()
    }

    fn budget(&self) -> usize {
        self.target.saturating_sub(self.count())
    }

    fn new_label(&mut self) -> u64 {
        self.next_label += 1;
        self.next_label
    }

    fn bind(&mut self, label: u64) {
        if self.pending_label.is_some() {
            self.push_raw(Instruction::with(Code::Nopd), Category::Setup);
        }
        self.pending_label = Some(label);
    }

    /// Registers an instruction writes (bit mask over R32), and whether it writes memory.
    fn writes(&mut self, instr: &Instruction) -> u8 {
        let info = self.info.info(instr);
        let mut mask = 0u8;
        for u in info.used_registers() {
            if matches!(u.access(), OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite)
                && let Some(i) = gpr_index(u.register())
            {
                mask |= 1 << i;
            }
        }
        mask
    }

    /// True if `instr` may be emitted here (it writes no reserved register, nor ESP
    /// unless `esp_ok`).
    fn allowed(&mut self, instr: &Instruction, esp_ok: bool) -> bool {
        let w = self.writes(instr);
        w & self.reserved == 0 && (esp_ok || w & (1 << ESP) == 0)
    }

    fn push_raw(&mut self, mut instr: Instruction, cat: Category) {
        if let Some(l) = self.pending_label.take() {
            instr.set_ip(l);
        }
        self.instrs.push(instr);
        self.cats.push(cat);
    }

    /// Appends an instruction, updating the known registers (ESP is the caller's job).
    fn emit(&mut self, instr: Instruction, cat: Category) {
        let w = self.writes(&instr);
        debug_assert!(w & self.reserved == 0, "{instr} writes a reserved register");
        for i in 0..8 {
            if w & (1 << i) != 0 && i != ESP {
                self.known[i] = None;
            }
        }
        if instr.code() == Code::Mov_r32_imm32
            && let Some(i) = gpr_index(instr.op0_register())
        {
            self.known[i] = Some(instr.immediate32());
        }
        let undefined = instr.rflags_undefined() != 0;
        self.push_raw(instr, cat);
        if undefined && self.cfg.define_undefined_flags {
            let a = self.rng.pick(&R32);
            let b = self.rng.pick(&R32);
            self.push_raw(Instruction::with2(Code::Cmp_rm32_r32, a, b).unwrap(), Category::Setup);
        }
    }

    fn mov_imm(&mut self, reg: usize, v: u32) {
        self.emit(Instruction::with2(Code::Mov_r32_imm32, R32[reg], v).unwrap(), Category::Setup);
    }

    /// A register setup code may load: not ESP, not reserved, not locked.
    fn free_reg(&mut self) -> Option<usize> {
        let free: Vec<usize> = (0..8).filter(|&i| i != ESP && (self.reserved | self.locked) & (1 << i) == 0).collect();
        if free.is_empty() { None } else { Some(self.rng.pick(&free)) }
    }

    // ---- memory operands ----

    fn protected(&self, addr: u32, size: u32) -> bool {
        self.protect > self.esp && addr < self.protect && addr + size > self.esp
    }

    /// A random target address for an access of `size` bytes aligned to `align`.
    fn target(&mut self, size: u32, align: u32) -> u32 {
        let size = size.max(1);
        loop {
            let t = match self.rng.below(4) {
                // near the stack pointer
                0 => (self.esp as i64 + self.rng.range(-96, 64)).clamp(0, (DATA_SIZE as u32 - size) as i64) as u32,
                _ => self.rng.below((DATA_SIZE as u32 - size + 1) as u64) as u32,
            };
            let t = t & !(align - 1);
            if !self.protected(t, size) {
                return DATA_BASE + t;
            }
        }
    }

    fn seg_override(&mut self) -> Register {
        if self.rng.chance(8) { self.rng.pick(&[Register::DS, Register::ES, Register::SS]) } else { Register::None }
    }

    /// A 32-bit-address memory operand for `size` bytes at a target in the data region.
    /// May emit setup instructions first.
    fn mem32(&mut self, size: u32, align: u32) -> MemoryOperand {
        let t = self.target(size, align);
        let seg = self.seg_override();
        let dsz = if self.rng.chance(15) { 4 } else { 1 };
        let mode = self.rng.below(100);
        if mode < 12 {
            return MemoryOperand::new(Register::None, Register::None, 1, t as i64, 4, false, seg);
        }
        // The index: a known register other than ESP, sometimes.
        let mut index = None;
        if self.rng.chance(35) {
            let cands: Vec<usize> = (0..8).filter(|&i| i != ESP && self.known[i].is_some()).collect();
            if !cands.is_empty() {
                index = Some(self.rng.pick(&cands));
            }
        }
        let scale = self.rng.pick(&[1u32, 2, 4, 8]);
        let base = if mode < 35 {
            Some(ESP)
        } else if mode < 45 {
            None
        } else {
            let cands: Vec<usize> = (0..8).filter(|&i| i != ESP && self.known[i].is_some()).collect();
            if cands.is_empty() || self.rng.chance(10) {
                match self.free_reg() {
                    Some(r) => {
                        let v = if self.rng.chance(70) { self.rng.below(DATA_SIZE as u64) as u32 } else { self.rng.u32() };
                        self.mov_imm(r, v);
                        Some(r)
                    }
                    None => Some(ESP),
                }
            } else {
                Some(self.rng.pick(&cands))
            }
        };
        if base.is_none() && index.is_none() {
            return MemoryOperand::new(Register::None, Register::None, 1, t as i64, 4, false, seg);
        }
        // The index may have been invalidated by the base's setup (same register).
        if let Some(i) = index
            && self.known[i].is_none()
        {
            index = None;
        }
        let bval = base.map_or(0, |b| if b == ESP { self.esp } else { self.known[b].unwrap() });
        let ival = index.map_or(0, |i| self.known[i].unwrap().wrapping_mul(scale));
        let disp = t.wrapping_sub(bval).wrapping_sub(ival) as i32 as i64;
        MemoryOperand::new(
            base.map_or(Register::None, |b| R32[b]),
            index.map_or(Register::None, |i| R32[i]),
            if index.is_some() { scale } else { 1 },
            disp,
            if disp == 0 && self.rng.chance(50) { 0 } else { dsz },
            false,
            seg,
        )
    }

    /// A 16-bit-address (`a16`) memory operand: always inside the data region. Only
    /// where no stack slot is protected (its address is not known).
    fn mem16(&mut self) -> MemoryOperand {
        let (b, i) = self.rng.pick(&[
            (Register::BX, Register::SI),
            (Register::BX, Register::DI),
            (Register::BP, Register::SI),
            (Register::BP, Register::DI),
            (Register::SI, Register::None),
            (Register::DI, Register::None),
            (Register::BP, Register::None),
            (Register::BX, Register::None),
            (Register::None, Register::None),
        ]);
        let disp = self.rng.range(-200, 0xFFFF) as u16 as i64;
        let dsz = if b == Register::None {
            2
        } else if self.rng.chance(30) {
            0
        } else {
            self.rng.pick(&[1, 2])
        };
        let disp = if dsz == 0 { 0 } else { disp };
        MemoryOperand::new(b, i, 1, disp, dsz, false, self.seg_override())
    }

    /// A memory operand for `size` bytes: mostly 32-bit addressing, sometimes `a16`.
    fn mem(&mut self, size: u32, align: u32) -> MemoryOperand {
        // 16-bit addressing only for accesses of up to 8 bytes: the host splits larger
        // ones (an 80-bit x87 store) and wraps each piece at 64 KiB separately, which
        // bt86 does not model (no guest relies on it).
        if align == 1 && size <= 8 && self.protect <= self.esp && self.rng.chance(10) { self.mem16() } else { self.mem32(size, align) }
    }

    // ---- generic instructions ----

    fn imm_for(&mut self, k: K, mnemonic: Mnemonic) -> i32 {
        let shift = matches!(
            mnemonic,
            Mnemonic::Rol
                | Mnemonic::Ror
                | Mnemonic::Rcl
                | Mnemonic::Rcr
                | Mnemonic::Shl
                | Mnemonic::Sal
                | Mnemonic::Shr
                | Mnemonic::Sar
                | Mnemonic::Shld
                | Mnemonic::Shrd
                | Mnemonic::Psllw
                | Mnemonic::Pslld
                | Mnemonic::Psllq
                | Mnemonic::Psrlw
                | Mnemonic::Psrld
                | Mnemonic::Psrlq
                | Mnemonic::Psraw
                | Mnemonic::Psrad
                | Mnemonic::Pslldq
                | Mnemonic::Psrldq
        );
        match k {
            K::imm8_const_1 => 1,
            K::imm8 if mnemonic == Mnemonic::Aam && self.rng.chance(15) => 0,
            K::imm8 if shift => {
                if self.rng.chance(80) {
                    self.rng.range(0, 33) as i32
                } else {
                    self.rng.range(0, 255) as i32
                }
            }
            K::imm8 => self.rng.range(0, 255) as i32,
            K::imm8sex16 | K::imm8sex32 => self.rng.range(-128, 127) as i32,
            K::imm16 => self.rng.range(0, 0xFFFF) as i32,
            _ => self.rng.value32() as i32,
        }
    }

    fn needs_alignment(m: Mnemonic, size: u32) -> bool {
        size == 16 && !matches!(m, Mnemonic::Movups | Mnemonic::Movupd | Mnemonic::Movdqu)
    }

    /// Emits one instruction of `code` with random operands (plus setup). False if this
    /// code cannot be emitted here.
    fn generic(&mut self, code: Code, cat: Category) -> bool {
        let oc = code.op_code();
        let m = code.mnemonic();
        let kinds = oc.op_kinds();
        // Decide register or memory for each r/m operand; at most one memory operand.
        let mut ops: Vec<Op> = Vec::with_capacity(kinds.len());
        let mut mem_at = None;
        let want_mem = self.rng.chance(45);
        for (i, &k) in kinds.iter().enumerate() {
            let op = match k {
                K::r8_or_mem | K::r16_or_mem | K::r32_or_mem | K::xmm_or_mem if want_mem && mem_at.is_none() => {
                    mem_at = Some(i);
                    Op::M(MemoryOperand::with_base(Register::EAX))
                }
                K::mem | K::mem_offs => {
                    mem_at = Some(i);
                    Op::M(MemoryOperand::with_base(Register::EAX))
                }
                K::r8_or_mem | K::r8_reg | K::r8_opcode => Op::R(self.rng.pick(&R8)),
                K::r16_or_mem | K::r16_reg | K::r16_rm | K::r16_opcode => Op::R(self.rng.pick(&R16)),
                K::r32_or_mem | K::r32_reg | K::r32_rm | K::r32_opcode => Op::R(self.rng.pick(&R32)),
                K::xmm_or_mem | K::xmm_reg | K::xmm_rm => Op::R(self.rng.pick(&XMM)),
                K::al => Op::R(Register::AL),
                K::cl => Op::R(Register::CL),
                K::ax => Op::R(Register::AX),
                K::dx => Op::R(Register::DX),
                K::eax => Op::R(Register::EAX),
                K::st0 => Op::R(Register::ST0),
                K::sti_opcode => Op::R(self.rng.pick(&[
                    Register::ST0,
                    Register::ST1,
                    Register::ST2,
                    Register::ST3,
                    Register::ST4,
                    Register::ST5,
                    Register::ST6,
                    Register::ST7,
                ])),
                _ => Op::I(self.imm_for(k, m)),
            };
            ops.push(op);
        }
        let Some(probe) = build(code, &ops) else {
            return false;
        };
        if !self.allowed(&probe, false) {
            return false;
        }
        let size = probe.memory_size().size() as u32;
        let bit_ops = matches!(m, Mnemonic::Bt | Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc);
        self.locked = 0;
        // Prepare special operand values.
        match m {
            Mnemonic::Div | Mnemonic::Idiv if self.rng.chance(85) => {
                let setup = match (size.max(kinds_width(kinds)), m) {
                    (1, Mnemonic::Div) => Instruction::with2(Code::Mov_r8_imm8, Register::AH, 0u32),
                    (1, _) => Ok(Instruction::with(Code::Cbw)),
                    (2, Mnemonic::Div) => Instruction::with2(Code::Mov_r16_imm16, Register::DX, 0u32),
                    (2, _) => Ok(Instruction::with(Code::Cwd)),
                    (_, Mnemonic::Div) => Instruction::with2(Code::Mov_r32_imm32, Register::EDX, 0u32),
                    (_, _) => Ok(Instruction::with(Code::Cdq)),
                };
                let setup = setup.unwrap();
                if self.allowed(&setup, false) {
                    self.emit(setup, Category::Setup);
                }
            }
            _ => {}
        }
        if bit_ops
            && mem_at.is_some()
            && let Some(Op::R(r)) = ops.get(1).copied()
        {
            // Register bit offset with a memory operand: the offset reaches beyond the
            // operand (signed, in bits); give it a small known value.
            let i = gpr_index(r).unwrap();
            if i == ESP || self.reserved & (1 << i) != 0 {
                return false;
            }
            let v = self.rng.range(-256, 255) as u32;
            self.mov_imm(i, v);
            self.locked |= 1 << i;
        }
        if let Some(at) = mem_at {
            let align = if Self::needs_alignment(m, size) && !self.rng.chance(3) { 16 } else { 1 };
            let mop = if kinds[at] == K::mem_offs {
                let t = self.target(size, 1);
                MemoryOperand::new(Register::None, Register::None, 1, t as i64, 4, false, self.seg_override())
            } else if bit_ops {
                // Keep 32 bytes either side for the bit offset.
                let mut mo = self.mem32(size, align);
                let addr = self.eval32(&mo);
                let moved = addr.clamp(40, DATA_SIZE as u32 - 40);
                if self.protected(moved - 36, 72 + size) {
                    // The bit offset could reach a live stack slot.
                    return false;
                }
                mo.displacement = (mo.displacement as u32).wrapping_add(moved.wrapping_sub(addr)) as i32 as i64;
                if mo.displ_size == 0 {
                    mo.displ_size = 4;
                }
                mo
            } else if m == Mnemonic::Lea && self.rng.chance(40) {
                self.random_lea_operand()
            } else {
                self.mem(size, align)
            };
            ops[at] = Op::M(mop);
        }
        self.locked = 0;
        let Some(mut instr) = build(code, &ops) else {
            return false;
        };
        if mem_at.is_some() && oc.can_use_lock_prefix() && mem_at == Some(0) && self.rng.chance(10) {
            instr.set_has_lock_prefix(true);
        }
        if !self.allowed(&instr, false) {
            return false;
        }
        self.emit(instr, cat);
        true
    }

    /// The effective address of a 32-bit memory operand built by `mem32`.
    fn eval32(&self, m: &MemoryOperand) -> u32 {
        let reg = |r: Register| -> u32 {
            match gpr_index(r) {
                Some(ESP) => self.esp,
                Some(i) => self.known[i].unwrap_or(0),
                None => 0,
            }
        };
        reg(m.base).wrapping_add(reg(m.index).wrapping_mul(m.scale)).wrapping_add(m.displacement as u32)
    }

    /// A `lea` operand with any registers at all (lea does not access memory).
    fn random_lea_operand(&mut self) -> MemoryOperand {
        if self.rng.chance(30) {
            return self.mem16();
        }
        let base = if self.rng.chance(85) { self.rng.pick(&R32) } else { Register::None };
        let index = if self.rng.chance(50) {
            self.rng.pick(&[Register::EAX, Register::ECX, Register::EDX, Register::EBX, Register::EBP, Register::ESI, Register::EDI])
        } else {
            Register::None
        };
        let disp = self.rng.value32() as i32 as i64;
        let dsz = self.rng.pick(&[0, 1, 4]);
        let (disp, dsz) =
            if base == Register::None && index == Register::None { (disp, 4) } else { (if dsz == 0 { 0 } else { disp }, dsz) };
        MemoryOperand::new(base, index, self.rng.pick(&[1, 2, 4, 8]), disp, dsz, false, Register::None)
    }

    fn generic_item(&mut self, cat: Category) -> bool {
        let tbl = &table()[cat.index()];
        if tbl.is_empty() {
            return false;
        }
        let (_, codes) = &tbl[self.rng.below(tbl.len() as u64) as usize];
        let code = self.rng.pick(codes);
        self.generic(code, cat)
    }

    // ---- stack constructs ----

    fn can_push(&self, bytes: u32) -> bool {
        self.esp >= STACK_LO + bytes + 16
    }

    /// One push whose value comes from a register, a segment register, an immediate or
    /// memory.
    fn push_any(&mut self, word: bool) -> bool {
        let op = self.rng.below(6);
        let instr = match (word, op) {
            // A segment register: what the upper word of a 32-bit slot gets is the
            // vendor's choice (the host model's).
            (_, 5) => {
                let (sreg, w, d) = self.rng.pick(&SREG_PUSHES);
                Instruction::with1(if word { w } else { d }, sreg)
            }
            (false, 0) => Instruction::with1(Code::Push_r32, self.rng.pick(&R32)),
            (false, 1) => Instruction::with1(Code::Pushd_imm8, self.rng.range(-128, 127) as i32),
            (false, 2) => Instruction::with1(Code::Pushd_imm32, self.rng.value32()),
            (false, 3) => {
                let m = self.mem(4, 1);
                Instruction::with1(Code::Push_rm32, m)
            }
            (false, _) => Instruction::with1(Code::Push_rm32, self.rng.pick(&R32)),
            (true, 0) => Instruction::with1(Code::Push_r16, self.rng.pick(&R16)),
            (true, 1) => Instruction::with1(Code::Pushw_imm8, self.rng.range(-128, 127) as i32),
            (true, 2) => Instruction::with1(Code::Push_imm16, self.rng.range(0, 0xFFFF) as i32),
            (true, _) => {
                let m = self.mem(2, 1);
                Instruction::with1(Code::Push_rm16, m)
            }
        };
        self.emit(instr.unwrap(), Category::Stack);
        self.esp -= if word { 2 } else { 4 };
        true
    }

    /// One pop into a register or memory (possibly ESP-relative, addressed after the pop).
    fn pop_any(&mut self, word: bool) -> bool {
        let size = if word { 2 } else { 4 };
        let choice = self.rng.below(3);
        let instr = if choice == 0 {
            // A memory destination; its address is computed with ESP after the pop.
            self.esp += size;
            let m = self.mem32(size, 1);
            self.esp -= size;
            if m.base == Register::ESP || m.index == Register::ESP {
                // mem32 computed the displacement with the post-pop ESP already.
            }
            Instruction::with1(if word { Code::Pop_rm16 } else { Code::Pop_rm32 }, m).unwrap()
        } else {
            let regs: Vec<usize> = (0..8).filter(|&i| i != ESP && self.reserved & (1 << i) == 0).collect();
            if regs.is_empty() {
                return false;
            }
            let r = self.rng.pick(&regs);
            let code = match (word, choice) {
                (false, 1) => Code::Pop_r32,
                (false, _) => Code::Pop_rm32,
                (true, 1) => Code::Pop_r16,
                (true, _) => Code::Pop_rm16,
            };
            Instruction::with1(code, if word { R16[r] } else { R32[r] }).unwrap()
        };
        self.emit(instr, Category::Stack);
        self.esp += size;
        true
    }

    fn stack_item(&mut self) -> bool {
        match self.rng.below(10) {
            // push ... pop
            0..=2 => {
                let word = self.rng.chance(20);
                if !self.can_push(4) {
                    return false;
                }
                self.push_any(word);
                let n = self.rng.below(3) as usize;
                self.inner_items(n);
                self.pop_any(word)
            }
            // pushf / popf
            3 => {
                if !self.can_push(4) {
                    return false;
                }
                let word = self.rng.chance(20);
                if self.rng.chance(50) {
                    self.emit(Instruction::with(if word { Code::Pushfw } else { Code::Pushfd }), Category::Stack);
                    self.esp -= if word { 2 } else { 4 };
                    self.pop_any(word)
                } else {
                    // popf at CPL 3 ignores IF/IOPL; keep to arithmetic flags and DF.
                    let v = (self.rng.u32() & 0x0CD5) | 2;
                    let push = if word { Instruction::with1(Code::Push_imm16, v as i32) } else { Instruction::with1(Code::Pushd_imm32, v) };
                    self.emit(push.unwrap(), Category::Setup);
                    self.emit(Instruction::with(if word { Code::Popfw } else { Code::Popfd }), Category::Stack);
                    true
                }
            }
            // pusha ... popa
            4 => {
                let word = self.rng.chance(25);
                let bytes = if word { 16 } else { 32 };
                if !self.can_push(bytes) || self.reserved != 0 {
                    return false;
                }
                self.emit(Instruction::with(if word { Code::Pushaw } else { Code::Pushad }), Category::Stack);
                self.esp -= bytes;
                let n = self.rng.below(2) as usize;
                self.inner_items(n);
                self.emit(Instruction::with(if word { Code::Popaw } else { Code::Popad }), Category::Stack);
                self.esp += bytes;
                true
            }
            // enter ... leave
            5 => self.enter_leave(),
            // push esp / pop [esp+4]
            6 => {
                if !self.can_push(8) || self.protected(self.esp, 4) {
                    return false;
                }
                self.emit(Instruction::with1(Code::Push_r32, Register::ESP).unwrap(), Category::Stack);
                self.esp -= 4;
                let v = self.rng.value32();
                self.emit(Instruction::with1(Code::Pushd_imm32, v).unwrap(), Category::Stack);
                self.esp -= 4;
                // pop [esp+4]: overwrites the pushed ESP (ESP + 4 after the pop).
                // (The slot at the original ESP was checked above.)
                let m = MemoryOperand::new(Register::ESP, Register::None, 1, 4, 1, false, Register::None);
                self.emit(Instruction::with1(Code::Pop_rm32, m).unwrap(), Category::Stack);
                self.esp += 4;
                self.pop_any(false)
            }
            // a lone push or pop: ESP moves for the rest of the case
            _ => {
                if self.neutral > 0 {
                    return false;
                }
                if self.rng.chance(50) {
                    if !self.can_push(4) {
                        return false;
                    }
                    self.push_any(false)
                } else {
                    if self.esp + 4 > STACK_HI || self.protected(self.esp, 4) {
                        return false;
                    }
                    self.pop_any(false)
                }
            }
        }
    }

    fn enter_leave(&mut self) -> bool {
        let level = self.rng.below(4) as u32;
        let size = self.rng.range(0, 64) as u32;
        let bytes = 4 + 4 * level + size;
        if !self.can_push(bytes + 8) || self.reserved & (1 << EBP) != 0 {
            return false;
        }
        if level > 0 {
            // enter copies level-1 frame pointers from [ebp-4], [ebp-8], ...: EBP must
            // point into the data region.
            let v = self.rng.range(64, DATA_SIZE as i64 - 1) as u32;
            self.mov_imm(EBP, v);
        }
        let old_ebp = self.known[EBP];
        let esp_before = self.esp;
        let saved_protect = self.protect;
        self.emit(Instruction::with2(Code::Enterd_imm16_imm8, size, level).unwrap(), Category::Stack);
        let frame = esp_before - 4;
        self.esp = frame - 4 * level - size;
        self.known[EBP] = Some(frame);
        self.protect = self.protect.max(esp_before);
        self.reserved |= 1 << EBP;
        let n = self.rng.below(4) as usize;
        self.inner_items(n);
        self.reserved &= !(1 << EBP);
        self.emit(Instruction::with(Code::Leaved), Category::Stack);
        self.esp = esp_before;
        self.protect = saved_protect;
        self.known[EBP] = old_ebp;
        true
    }

    /// Up to `n` items, each stack-neutral.
    fn inner_items(&mut self, n: usize) {
        self.neutral += 1;
        self.depth += 1;
        for _ in 0..n {
            if self.budget() == 0 {
                break;
            }
            self.item();
        }
        self.depth -= 1;
        self.neutral -= 1;
    }

    // ---- control flow ----

    fn branch_item(&mut self) -> bool {
        match self.rng.below(10) {
            0..=3 => self.forward_branch(),
            4 => self.call_block(CallKind::Near),
            5 => self.call_block(CallKind::Far),
            6 => self.call_block(CallKind::Indirect),
            7 => self.indirect_jump(),
            _ => self.counted_loop(),
        }
    }

    /// Known registers after a join: those known with the same value on both paths.
    fn join(&mut self, other: &[Option<u32>; 8]) {
        for (k, o) in self.known.iter_mut().zip(other.iter()) {
            if k != o {
                *k = None;
            }
        }
    }

    fn forward_branch(&mut self) -> bool {
        let l = self.new_label();
        let kind = self.rng.below(10);
        let (code, writes_ecx) = match kind {
            0..=5 => {
                let cc = self.rng.pick(&[
                    Code::Jo_rel8_32,
                    Code::Jno_rel8_32,
                    Code::Jb_rel8_32,
                    Code::Jae_rel8_32,
                    Code::Je_rel8_32,
                    Code::Jne_rel8_32,
                    Code::Jbe_rel8_32,
                    Code::Ja_rel8_32,
                    Code::Js_rel8_32,
                    Code::Jns_rel8_32,
                    Code::Jp_rel8_32,
                    Code::Jnp_rel8_32,
                    Code::Jl_rel8_32,
                    Code::Jge_rel8_32,
                    Code::Jle_rel8_32,
                    Code::Jg_rel8_32,
                ]);
                // The block encoder picks rel8 or rel32; ask for rel32 sometimes.
                let cc = if self.rng.chance(30) { to_near(cc) } else { cc };
                (cc, false)
            }
            6 => (if self.rng.chance(50) { Code::Jmp_rel8_32 } else { Code::Jmp_rel32_32 }, false),
            7 => (Code::Jecxz_rel8_32, false),
            8 => (self.rng.pick(&[Code::Loop_rel8_32_ECX, Code::Loope_rel8_32_ECX, Code::Loopne_rel8_32_ECX]), true),
            _ => (Code::Jcxz_rel8_32, false),
        };
        if writes_ecx && self.reserved & (1 << ECX) != 0 {
            return false;
        }
        let instr = Instruction::with_branch(code, l).unwrap();
        self.emit(instr, Category::Branch);
        if writes_ecx {
            self.known[ECX] = None;
        }
        let before = self.known;
        let n = self.rng.range(1, 4) as usize;
        self.inner_items(n);
        self.join(&before);
        self.bind(l);
        true
    }

    /// `[push imm]*k; call L1; jmp L2; L1: body; ret 4k; L2:`, the call direct or through
    /// a register or memory; or, for a far return, `[push imm]*k; push cs; call L1; jmp
    /// L2; L1: body; retf 4k; L2:` (a same-privilege far frame the native engine can run:
    /// the CS pushed is the code segment's own selector).
    fn call_block(&mut self, kind: CallKind) -> bool {
        let k = self.rng.below(3) as u32;
        if !self.can_push(4 * k + 8 + 64) {
            return false;
        }
        let l1 = self.new_label();
        let l2 = self.new_label();
        let esp_start = self.esp;
        let saved_protect = self.protect;
        for _ in 0..k {
            let v = self.rng.value32();
            self.emit(Instruction::with1(Code::Pushd_imm32, v).unwrap(), Category::Stack);
            self.esp -= 4;
        }
        if kind == CallKind::Far {
            self.emit(Instruction::with1(Code::Pushd_CS, Register::CS).unwrap(), Category::Stack);
            self.esp -= 4;
        }
        if kind == CallKind::Indirect {
            if self.rng.chance(50) {
                let Some(r) = self.free_reg() else {
                    return self.undo_pushes(esp_start);
                };
                self.mov_imm(r, 0);
                self.fixups.push((self.instrs.len() - 1, l1));
                self.known[r] = None;
                self.emit(Instruction::with1(Code::Call_rm32, R32[r]).unwrap(), Category::Branch);
            } else {
                // The pointer's slot may be anywhere, even where the call pushes its
                // return address: the CPU reads the operand before pushing.
                let m = self.mem32(4, 1);
                self.store_label(m, l1);
                self.emit(Instruction::with1(Code::Call_rm32, m).unwrap(), Category::Branch);
            }
        } else {
            self.emit(Instruction::with_branch(Code::Call_rel32_32, l1).unwrap(), Category::Branch);
        }
        self.esp -= 4;
        self.protect = self.protect.max(esp_start);
        let after_call = self.known;
        self.emit(Instruction::with_branch(Code::Jmp_rel32_32, l2).unwrap(), Category::Branch);
        self.bind(l1);
        self.known = after_call;
        let n = self.rng.range(0, 4) as usize;
        self.inner_items(n);
        let imm = k > 0 || self.rng.chance(20);
        let ret = match (kind, imm) {
            (CallKind::Far, true) => Instruction::with1(Code::Retfd_imm16, 4 * k).unwrap(),
            (CallKind::Far, false) => Instruction::with(Code::Retfd),
            (_, true) => Instruction::with1(Code::Retnd_imm16, 4 * k).unwrap(),
            (_, false) => Instruction::with(Code::Retnd),
        };
        self.emit(ret, Category::Branch);
        self.esp = esp_start;
        self.protect = saved_protect;
        self.bind(l2);
        true
    }

    fn undo_pushes(&mut self, esp_start: u32) -> bool {
        // Pop what was pushed into a free register... or just re-balance with lea.
        let bytes = esp_start - self.esp;
        if bytes > 0 {
            let m = MemoryOperand::new(Register::ESP, Register::None, 1, bytes as i64, 1, false, Register::None);
            self.emit(Instruction::with2(Code::Lea_r32_m, Register::ESP, m).unwrap(), Category::Setup);
            self.esp = esp_start;
        }
        true
    }

    /// `mov dword [m], label` (the address is fixed up after encoding).
    fn store_label(&mut self, m: MemoryOperand, label: u64) {
        self.emit(Instruction::with2(Code::Mov_rm32_imm32, m, 0u32).unwrap(), Category::Setup);
        self.fixups.push((self.instrs.len() - 1, label));
    }

    /// `jmp reg` / `jmp [mem]` / `push label; ret` over a few dead instructions.
    fn indirect_jump(&mut self) -> bool {
        let l = self.new_label();
        match self.rng.below(3) {
            0 => {
                let Some(r) = self.free_reg() else {
                    return false;
                };
                self.mov_imm(r, 0);
                self.fixups.push((self.instrs.len() - 1, l));
                self.known[r] = None;
                self.emit(Instruction::with1(Code::Jmp_rm32, R32[r]).unwrap(), Category::Branch);
            }
            1 => {
                let m = self.mem32(4, 1);
                self.store_label(m, l);
                self.emit(Instruction::with1(Code::Jmp_rm32, m).unwrap(), Category::Branch);
            }
            _ => {
                if !self.can_push(4) {
                    return false;
                }
                self.emit(Instruction::with1(Code::Pushd_imm32, 0u32).unwrap(), Category::Setup);
                self.fixups.push((self.instrs.len() - 1, l));
                self.emit(Instruction::with(Code::Retnd), Category::Branch);
            }
        }
        // Dead code up to the label.
        let before = self.known;
        let saved_esp = self.esp;
        let n = self.rng.range(0, 2) as usize;
        self.inner_items(n);
        self.known = before;
        self.esp = saved_esp;
        self.bind(l);
        true
    }

    /// `mov ecx, k; L: body; loop L` (or `dec ecx; jnz L`), k in 1..=3.
    fn counted_loop(&mut self) -> bool {
        if self.reserved & (1 << ECX) != 0 || self.depth > 1 {
            return false;
        }
        let k = self.rng.range(1, 3) as u32;
        self.mov_imm(ECX, k);
        let l = self.new_label();
        self.bind(l);
        self.known = [None; 8];
        self.reserved |= 1 << ECX;
        let n = self.rng.range(1, 4) as usize;
        self.inner_items(n);
        self.reserved &= !(1 << ECX);
        if self.rng.chance(60) {
            self.emit(Instruction::with_branch(Code::Loop_rel8_32_ECX, l).unwrap(), Category::Branch);
        } else {
            self.emit(Instruction::with1(Code::Dec_r32, Register::ECX).unwrap(), Category::Setup);
            self.emit(Instruction::with_branch(Code::Jne_rel32_32, l).unwrap(), Category::Branch);
        }
        self.known[ECX] = Some(0);
        true
    }

    // ---- strings ----

    fn string_item(&mut self) -> bool {
        if self.rng.chance(12) {
            return self.xlat();
        }
        let regs_needed = (1 << ECX) | (1 << 6) | (1 << 7);
        if self.reserved & regs_needed != 0 {
            return false;
        }
        let a16 = self.rng.chance(15);
        let asz = if a16 { 16 } else { 32 };
        let width = self.rng.pick(&[1u32, 2, 4]);
        let n = self.rng.range(0, 12) as u32;
        let down = self.rng.chance(35);
        let span = width * (n + 1) + 8;
        // Source anywhere; destination away from the stack.
        let pick = |rng: &mut Rng, avoid_stack: bool| -> u32 {
            loop {
                let lo = span + 16;
                let hi = if a16 { 0xFFFF - span } else { DATA_SIZE as u32 - span - 16 };
                let t = rng.range(lo as i64, hi as i64) as u32;
                if !avoid_stack || t + span < STACK_LO - 16 || t > STACK_HI + span + 16 {
                    return t;
                }
            }
        };
        let src = pick(&mut self.rng, false);
        let dst = pick(&mut self.rng, true);
        let hi_junk = |rng: &mut Rng| if a16 { rng.u32() & 0xFFFF_0000 } else { 0 };
        let (s, d, c) = (src | hi_junk(&mut self.rng), dst | hi_junk(&mut self.rng), n | hi_junk(&mut self.rng));
        self.mov_imm(6, s);
        self.mov_imm(7, d);
        self.mov_imm(ECX, c);
        self.emit(Instruction::with(if down { Code::Std } else { Code::Cld }), Category::Setup);
        let op = self.rng.below(5);
        let rep = match (op, self.rng.below(3)) {
            (_, 0) => RepPrefixKind::None,
            (3 | 4, 1) => RepPrefixKind::Repe,
            (3 | 4, _) => RepPrefixKind::Repne,
            _ => RepPrefixKind::Repe, // plain rep
        };
        let seg = if self.rng.chance(10) { self.rng.pick(&[Register::ES, Register::SS, Register::CS]) } else { Register::None };
        let instr = match (op, width) {
            (0, 1) => Instruction::with_movsb(asz, seg, rep),
            (0, 2) => Instruction::with_movsw(asz, seg, rep),
            (0, _) => Instruction::with_movsd(asz, seg, rep),
            (1, 1) => Instruction::with_stosb(asz, rep),
            (1, 2) => Instruction::with_stosw(asz, rep),
            (1, _) => Instruction::with_stosd(asz, rep),
            (2, 1) => Instruction::with_lodsb(asz, seg, rep),
            (2, 2) => Instruction::with_lodsw(asz, seg, rep),
            (2, _) => Instruction::with_lodsd(asz, seg, rep),
            (3, 1) => Instruction::with_cmpsb(asz, seg, rep),
            (3, 2) => Instruction::with_cmpsw(asz, seg, rep),
            (3, _) => Instruction::with_cmpsd(asz, seg, rep),
            (_, 1) => Instruction::with_scasb(asz, rep),
            (_, 2) => Instruction::with_scasw(asz, rep),
            (_, _) => Instruction::with_scasd(asz, rep),
        };
        self.emit(instr.unwrap(), Category::String);
        true
    }

    fn xlat(&mut self) -> bool {
        if self.reserved & (1 << 3) != 0 {
            return false;
        }
        let t = self.rng.range(0, DATA_SIZE as i64 - 256) as u32;
        self.mov_imm(3, t);
        let m = MemoryOperand::new(Register::EBX, Register::AL, 1, 0, 0, false, Register::None);
        self.emit(Instruction::with1(Code::Xlat_m8, m).unwrap(), Category::String);
        true
    }

    // ---- special x87/SSE/trap items ----

    fn control_word_item(&mut self) -> bool {
        let t = self.target(4, 4);
        let m = MemoryOperand::new(Register::None, Register::None, 1, t as i64, 4, false, Register::None);
        if self.rng.chance(50) {
            // Exceptions stay masked; precision and rounding vary (PC = 1 is reserved).
            let pc = self.rng.pick(&[0u32, 2, 3]);
            let rc = self.rng.below(4) as u32;
            let cw = 0x007F | pc << 8 | rc << 10;
            self.emit(Instruction::with2(Code::Mov_rm16_imm16, m, cw).unwrap(), Category::Setup);
            self.emit(Instruction::with1(Code::Fldcw_m2byte, m).unwrap(), Category::X87);
        } else {
            // MXCSR: exceptions masked, no DAZ/FTZ, random rounding and sticky flags.
            let v = 0x1F80 | (self.rng.below(4) as u32) << 13 | (self.rng.u32() & 0x3F);
            self.emit(Instruction::with2(Code::Mov_rm32_imm32, m, v).unwrap(), Category::Setup);
            self.emit(Instruction::with1(Code::Ldmxcsr_m32, m).unwrap(), Category::Sse);
        }
        true
    }

    fn int_n(&mut self) -> bool {
        // Vectors 3, 4 and 0x80 have DPL 3 on Linux (int3, into, the 32-bit syscall gate).
        let n = loop {
            let n = self.rng.below(256) as u32;
            if !matches!(n, 3 | 4 | 0x80) {
                break n;
            }
        };
        self.emit(Instruction::with1(Code::Int_imm8, n).unwrap(), Category::Trap);
        true
    }

    /// One item of a category chosen by weight.
    fn item(&mut self) {
        for _ in 0..MAX_ATTEMPTS {
            let total: u32 = self.cfg.weights.iter().map(|w| w.1).sum();
            let mut r = self.rng.below(total as u64) as u32;
            let mut cat = Category::Alu;
            for &(c, w) in &self.cfg.weights {
                if r < w {
                    cat = c;
                    break;
                }
                r -= w;
            }
            // Constructs nest only a little.
            let nested = self.depth >= 2;
            let ok = match cat {
                Category::Stack if nested => false,
                Category::Branch if nested => false,
                Category::Stack => self.stack_item(),
                Category::Branch => self.branch_item(),
                Category::String => self.string_item(),
                Category::X87 | Category::Sse if self.rng.chance(4) => self.control_word_item(),
                // An exception ends the case: keep them to a few percent of cases.
                Category::Trap if !self.rng.chance(25) => false,
                Category::Trap if self.rng.chance(20) => self.int_n(),
                Category::Setup => false,
                c => self.generic_item(c),
            };
            if ok {
                return;
            }
        }
        // Fall back on something always possible.
        self.emit(Instruction::with(Code::Nopd), Category::Setup);
    }
}

fn kinds_width(kinds: &[K]) -> u32 {
    match kinds.first() {
        Some(K::r8_or_mem) => 1,
        Some(K::r16_or_mem) => 2,
        _ => 4,
    }
}

fn to_near(c: Code) -> Code {
    let mut i = Instruction::with_branch(c, 0).unwrap();
    i.as_near_branch();
    i.code()
}

/// The random initial state: registers, flags, x87 and SSE state.
fn initial_state(rng: &mut Rng) -> (CpuSnapshot, u32) {
    let mut gpr = [0u32; 8];
    for g in gpr.iter_mut() {
        *g = rng.value32();
    }
    let esp = (rng.range(0x9800, 0xA800) as u32) & if rng.chance(90) { !3 } else { !0 };
    gpr[ESP] = esp;
    let eflags = (rng.u32() & 0x08D5) | if rng.chance(15) { 0x400 } else { 0 } | 0x202;
    let mut fx = FxArea::default();
    // x87: k values on the stack (TOP = 8 - k), FCW with varying rounding/precision.
    let k = rng.below(9) as usize;
    let top = (8 - k) & 7;
    fx.set_fsw((top as u16) << 11);
    let mut tags = 0u8;
    for i in 0..k {
        let v = match rng.below(8) {
            0 => 0.0,
            1 => rng.range(-1000, 1000) as f64,
            2 => f64::from_bits(rng.next_u64()),
            3 => (rng.u32() as f64) * 1e-3,
            4 => -(rng.value32() as f64),
            _ => (rng.u32() as i32 as f64) / ((rng.u32() | 1) as f64),
        };
        let v = if v.is_nan() { 1.5 } else { v };
        fx.set_st(i, f64_to_f80(v));
        tags |= 1 << ((top + i) & 7);
    }
    fx.set_ftw(tags);
    if rng.chance(30) {
        let pc = rng.pick(&[0u16, 2, 3]);
        fx.set_fcw(0x007F | pc << 8 | (rng.below(4) as u16) << 10);
    }
    for i in 0..8 {
        let mut x = [0u8; 16];
        match rng.below(4) {
            0 => {
                for lane in 0..4 {
                    let f = (rng.range(-100_000, 100_000) as f32) / (rng.range(1, 1000) as f32);
                    x[lane * 4..lane * 4 + 4].copy_from_slice(&f.to_le_bytes());
                }
            }
            1 => {
                for lane in 0..2 {
                    let f = (rng.u32() as i32 as f64) / (rng.range(1, 1 << 20) as f64);
                    x[lane * 8..lane * 8 + 8].copy_from_slice(&f.to_le_bytes());
                }
            }
            _ => {
                for b in x.iter_mut() {
                    *b = rng.u32() as u8;
                }
            }
        }
        fx.set_xmm(i, x);
    }
    if rng.chance(25) {
        fx.set_mxcsr(0x1F80 | (rng.below(4) as u32) << 13);
    }
    (CpuSnapshot { gpr, eip: CODE_BASE, eflags, fx }, esp)
}

/// 256-byte blocks of zeros, small values, interesting dwords or random bytes.
fn random_block(block: &mut [u8], kind: u64, bulk: &mut impl FnMut() -> u64) {
    const V: [u32; 16] =
        [0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0xFFFF_FFFE, 3, 0x100, 0x1_0000];
    for w in block.chunks_exact_mut(8) {
        let v = match kind {
            0 => 0,
            1 => bulk() & 0x0F0F_0F0F_0F0F_0F0F,
            2 => {
                let r = bulk();
                let d = |x: u64| {
                    if x & 16 == 0 { V[(x & 15) as usize] } else { (x >> 8) as u32 & 0x3FF }
                };
                d(r) as u64 | (d(r >> 32) as u64) << 32
            }
            _ => bulk(),
        };
        w.copy_from_slice(&v.to_le_bytes());
    }
}

fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// A data region: a rotation of a fixed random template (made once; filling 68 KiB per
/// case from scratch would cost more than running it), with a few blocks made afresh.
fn initial_data(rng: &mut Rng) -> Vec<u8> {
    static TEMPLATE: OnceLock<Vec<u8>> = OnceLock::new();
    let template = TEMPLATE.get_or_init(|| {
        let mut t = vec![0u8; DATA_SIZE];
        let mut r = Rng::new(0x7E5A_1A7E);
        let mut bulk = xorshift(r.next_u64());
        for block in t.chunks_exact_mut(256) {
            random_block(block, r.below(6), &mut bulk);
        }
        t
    });
    let blocks = DATA_SIZE / 256;
    let rot = 256 * rng.below(blocks as u64) as usize;
    let mut data = Vec::with_capacity(DATA_SIZE);
    data.extend_from_slice(&template[rot..]);
    data.extend_from_slice(&template[..rot]);
    let mut bulk = xorshift(rng.next_u64());
    for _ in 0..24 {
        let at = 256 * rng.below(blocks as u64) as usize;
        random_block(&mut data[at..at + 256], rng.below(6), &mut bulk);
    }
    data
}

#[cfg(test)]
pub(crate) fn initial_data_for_bench(rng: &mut Rng) -> Vec<u8> {
    initial_data(rng)
}

/// Generates the case for `seed` with about `len` instructions (setup included).
pub fn generate(seed: u64, len: usize, cfg: &GenConfig) -> Case {
    let mut rng = Rng::new(seed);
    let (init, esp) = initial_state(&mut rng);
    let data = initial_data(&mut rng);
    let mut known: [Option<u32>; 8] = init.gpr.map(Some);
    known[ESP] = None;
    let mut g = Gen {
        rng,
        cfg,
        instrs: Vec::new(),
        cats: Vec::new(),
        next_label: 0,
        pending_label: None,
        fixups: Vec::new(),
        known,
        esp,
        protect: 0,
        reserved: 0,
        locked: 0,
        neutral: 0,
        depth: 0,
        info: InstructionInfoFactory::new(),
        target: len.max(1),
    };
    while g.count() < g.target {
        g.item();
    }
    g.push_raw(Instruction::with(Code::Int3), Category::Setup);
    let instructions = g.instrs.len() as u32 - 1;
    let mut categories = CategoryCounts::default();
    for c in &g.cats[..g.cats.len() - 1] {
        categories.0[c.index()] += 1;
    }
    let code = encode(&mut g.instrs, &g.fixups);
    assert!(code.len() <= CODE_MAX, "case code too large");
    let listing = disassemble(&code);
    Case { seed, code, data, init, listing, instructions, categories, flags_mask: COMPARED_FLAGS }
}

/// Encodes the instructions at [`CODE_BASE`], resolving labels and label-address fixups.
fn encode(instrs: &mut [Instruction], fixups: &[(usize, u64)]) -> Vec<u8> {
    let run = |instrs: &[Instruction]| {
        BlockEncoder::encode(32, InstructionBlock::new(instrs, CODE_BASE as u64), BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS)
            .expect("block encoder")
    };
    let first = run(instrs);
    if fixups.is_empty() {
        return first.code_buffer;
    }
    for &(at, label) in fixups {
        let target = instrs.iter().position(|i| i.ip() == label).expect("label bound");
        let addr = CODE_BASE + first.new_instruction_offsets[target];
        instrs[at].set_immediate32(addr);
    }
    let second = run(instrs);
    assert_eq!(first.new_instruction_offsets, second.new_instruction_offsets, "fixups moved code");
    second.code_buffer
}

/// One line per instruction: address, bytes, Intel syntax.
pub fn disassemble(code: &[u8]) -> Vec<String> {
    let mut decoder = Decoder::with_ip(32, code, CODE_BASE as u64, DecoderOptions::NONE);
    let mut fmt = IntelFormatter::new();
    let mut out = Vec::new();
    let mut text = String::new();
    for instr in &mut decoder {
        text.clear();
        fmt.format(&instr, &mut text);
        let start = (instr.ip() - CODE_BASE as u64) as usize;
        let bytes: String = code[start..start + instr.len()].iter().map(|b| format!("{b:02x}")).collect();
        out.push(format!("{:08x}  {:<26} {}", instr.ip(), bytes, text));
    }
    out
}
