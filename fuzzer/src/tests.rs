//! Tests of the native runner, the signal handling and the fuzzer. The guest window is a
//! process-wide singleton, so every test that runs guest code takes it from one mutex.

use std::sync::{Mutex, MutexGuard};

use iced_x86::code_asm::*;

use super::compare::compare;
use super::engine::*;
use super::generator::{Category, GenConfig, case_seed, f64_to_f80, generate};
use super::*;
use bt86::harness::native;

static MEM: Mutex<Option<GuestMemory>> = Mutex::new(None);

fn memory() -> MutexGuard<'static, Option<GuestMemory>> {
    let mut g = MEM.lock().unwrap_or_else(|e| e.into_inner());
    if g.is_none() {
        // The probe first: it needs low memory that the window's guards then take.
        bt86::harness::host_model::get();
        *g = Some(GuestMemory::new().expect("guest memory"));
    }
    g
}

/// A case from hand-written code (int3 appended), with all-zero data.
fn hand_case(build: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>, gpr: [u32; 8], eflags: u32) -> Case {
    let mut a = CodeAssembler::new(32).unwrap();
    build(&mut a).unwrap();
    a.int3().unwrap();
    let code = a.assemble(CODE_BASE as u64).unwrap();
    Case {
        seed: 0,
        listing: generator::disassemble(&code),
        instructions: 0,
        code,
        data: vec![0; DATA_SIZE],
        init: CpuSnapshot { gpr, eip: CODE_BASE, eflags, fx: FxArea::default() },
        categories: Default::default(),
        flags_mask: COMPARED_FLAGS,
    }
}

/// Code for a hand-written case.
type Build = Box<dyn Fn(&mut CodeAssembler) -> Result<(), IcedError>>;

const REGS: [u32; 8] = [0, 0, 0, 0, 0xA000, 0, 0, 0];

fn run_native(case: &Case) -> Outcome {
    let mut g = memory();
    let mem = g.as_mut().unwrap();
    NativeEngine::new().unwrap().run(mem, case)
}

fn finished(o: &Outcome) -> &CpuSnapshot {
    match o {
        Outcome::Finished { state, .. } => state,
        other => panic!("expected the case to finish, got {other:?}"),
    }
}

#[test]
fn add_sets_value_and_flags() {
    // 0x7FFFFFFF + 1 = 0x80000000: signed overflow (OF), negative (SF), carry out of
    // bit 3 (AF), low byte 0x00 has even parity (PF); no carry out (CF = 0), not zero.
    let mut r = REGS;
    r[0] = 0x7FFF_FFFF;
    r[3] = 1;
    let case = hand_case(|a| a.add(eax, ebx), r, 0x202);
    let o = run_native(&case);
    let s = finished(&o);
    assert_eq!(s.gpr[0], 0x8000_0000);
    assert_eq!(s.eflags & 0x8D5, 0x800 | 0x80 | 0x10 | 0x4);
    assert_eq!(s.eip, case.end_eip());
    assert_eq!(s.gpr[4], 0xA000);

    // 0 - 1: borrow (CF), AF, SF, PF (0xFF has eight ones), no overflow.
    let case = hand_case(|a| a.sub(eax, 1), REGS, 0x202);
    let s = *finished(&run_native(&case));
    assert_eq!(s.gpr[0], 0xFFFF_FFFF);
    assert_eq!(s.eflags & 0x8D5, 0x1 | 0x4 | 0x10 | 0x80);
}

#[test]
fn initial_flags_and_df_are_loaded() {
    // adc with CF=1 in; pushfd shows the flags the guest sees: IF=1, bit 1, DF as given.
    let mut r = REGS;
    r[0] = 5;
    let case = hand_case(
        |a| {
            a.adc(eax, 0)?;
            a.pushfd()?;
            a.pop(ebx)
        },
        r,
        0x1 | 0x400 | 0x202,
    );
    let s = *finished(&run_native(&case));
    assert_eq!(s.gpr[0], 6);
    assert_eq!(s.gpr[3], 0x202 | 0x400 | 0x4, "IF, DF, PF (6 has even parity)");
}

#[test]
fn div_by_zero_is_de_at_the_div() {
    let mut r = REGS;
    r[0] = 1234;
    let case = hand_case(
        |a| {
            a.xor(ecx, ecx)?;
            a.div(ecx)
        },
        r,
        0x202,
    );
    match run_native(&case) {
        Outcome::Exception { vector, error_code, eip, state, .. } => {
            assert_eq!(vector, 0);
            assert_eq!(error_code, None);
            assert_eq!(eip, CODE_BASE + 2);
            assert_eq!(state.eip, CODE_BASE + 2);
            assert_eq!(state.gpr[0], 1234);
        }
        o => panic!("expected #DE, got {o:?}"),
    }
}

#[test]
fn exceptions_map_to_vectors() {
    let cases: Vec<(Build, u8, Option<u32>)> = vec![
        (Box::new(|a| a.ud2()), 6, None),
        (Box::new(|a| a.hlt()), 13, Some(0)),
        (Box::new(|a| a.cli()), 13, Some(0)),
        (Box::new(|a| a.int(0x21)), 13, Some(0x21 << 3 | 2)),
        (Box::new(|a| a.aam(0)), 0, None),
        // Beyond the 3 GiB - 1 segment limit: #GP(0), not a page fault.
        (Box::new(|a| a.mov(eax, dword_ptr(0xC000_0000u32))), 13, Some(0)),
        // Unbacked window memory: #PF, user-mode read of a not-present page.
        (Box::new(|a| a.mov(eax, dword_ptr(0x0030_0000))), 14, Some(4)),
        // Misaligned movaps: #GP(0).
        (Box::new(|a| a.movaps(xmm0, xmmword_ptr(0x101))), 13, Some(0)),
    ];
    for (build, vector, err) in cases {
        let case = hand_case(build, REGS, 0x202);
        match run_native(&case) {
            Outcome::Exception { vector: v, error_code, eip, fault_addr, .. } => {
                assert_eq!((v, error_code, eip), (vector, err, CODE_BASE), "{:?}", case.listing);
                if v == 14 {
                    assert_eq!(fault_addr, Some(0x0030_0000));
                }
            }
            o => panic!("{:?}: expected vector {vector}, got {o:?}", case.listing),
        }
    }
}

#[test]
fn memory_stack_fpu_sse() {
    let mut r = REGS;
    r[0] = 0x1234_5678;
    let case = hand_case(
        |a| {
            let mut f = a.create_label();
            let mut over = a.create_label();
            a.mov(dword_ptr(0x100), eax)?;
            a.push(0x55AA)?;
            a.call(f)?;
            a.jmp(over)?;
            a.set_label(&mut f)?;
            a.mov(ecx, dword_ptr(esp + 4))?;
            a.ret_1(4)?;
            a.set_label(&mut over)?;
            a.fld1()?;
            a.fadd_2(st0, st0)?;
            a.pcmpeqd(xmm1, xmm1)?;
            a.paddd(xmm1, xmm1)?;
            a.mov(bh, byte_ptr(esp - 3))?;
            Ok(())
        },
        r,
        0x202,
    );
    let o = run_native(&case);
    let s = finished(&o);
    assert_eq!(&o.data()[0x100..0x104], &0x1234_5678u32.to_le_bytes());
    assert_eq!(s.gpr[1], 0x55AA);
    assert_eq!(s.gpr[4], 0xA000);
    assert_eq!(s.gpr[3] >> 8 & 0xFF, 0x55, "bh = byte below esp = high byte of 0x55AA pushed");
    assert_eq!(s.fx.st(0), f64_to_f80(2.0));
    assert!(s.fx.st_valid(0));
    assert_eq!(s.fx.fsw() >> 11 & 7, 7);
    let mut x = [0u8; 16];
    for lane in 0..4 {
        x[lane * 4..lane * 4 + 4].copy_from_slice(&0xFFFF_FFFEu32.to_le_bytes());
    }
    assert_eq!(s.fx.xmm(1), x);
}

#[test]
fn untouched_fpu_reads_back_as_loaded() {
    // The x87/SSE state may be in its init configuration at exit; the frame then holds
    // no x87 bytes and the runner must supply the init values.
    let case = hand_case(|a| a.nop(), REGS, 0x202);
    let s = *finished(&run_native(&case));
    assert_eq!(s.fx.fcw(), 0x037F);
    assert_eq!(s.fx.fsw(), 0);
    assert_eq!(s.fx.ftw(), 0);
    assert_eq!(s.fx.mxcsr(), 0x1F80);
}

#[test]
fn f80_encoding() {
    assert_eq!(f64_to_f80(1.0), [0, 0, 0, 0, 0, 0, 0, 0x80, 0xFF, 0x3F]);
    assert_eq!(f64_to_f80(-2.0), [0, 0, 0, 0, 0, 0, 0, 0x80, 0x00, 0xC0]);
    assert_eq!(f64_to_f80(0.0), [0; 10]);
}

#[test]
fn generator_is_deterministic_and_varied() {
    let cfg = GenConfig::default();
    let a = generate(42, 20, &cfg);
    let b = generate(42, 20, &cfg);
    assert_eq!(a.code, b.code);
    assert_eq!(a.data, b.data);
    assert_eq!(a.init, b.init);
    assert_ne!(generate(43, 20, &cfg).code, a.code);
    let mut total = CategoryCounts::default();
    let mut high8_with_esp = 0;
    let mut a16 = 0;
    for i in 0..2000 {
        let c = generate(case_seed(7, i), 24, &cfg);
        assert_eq!(*c.code.last().unwrap(), 0xCC);
        total.add(&c.categories);
        for l in &c.listing {
            if (l.contains("ah") || l.contains("bh") || l.contains("ch") || l.contains("dh")) && l.contains("[esp") {
                high8_with_esp += 1;
            }
            if l.contains("[bx") || l.contains("[bp") || l.contains("[si") || l.contains("[di") {
                a16 += 1;
            }
        }
    }
    for c in Category::ALL {
        assert!(total.get(c) > 0, "no {c:?} instructions generated");
    }
    assert!(high8_with_esp > 20, "AH..BH with ESP-based operands: {high8_with_esp}");
    assert!(a16 > 20, "a16 operands: {a16}");
}

use super::generator::CategoryCounts;

#[test]
fn native_vs_native_agrees_and_stays_in_bounds() {
    let mut g = memory();
    let mem = g.as_mut().unwrap();
    let mut a = NativeEngine::new().unwrap();
    let mut b = NativeEngine::new().unwrap();
    let cfg = CampaignConfig { print_mismatches: true, ..CampaignConfig::default() };
    let r = run_campaign_with(&cfg, 30_000, 0x5EED, &mut a, &mut b, mem);
    println!("{r}");
    assert_eq!(r.mismatches, 0, "{}", r.reports.join("\n"));
    // Every memory access of a generated case stays inside the mapped data region, so no
    // case may end in a page fault, a stack fault or an alignment check.
    assert_eq!(r.exceptions[14] + r.exceptions[12] + r.exceptions[17], 0, "{r}");
    assert!(r.exception_cases() < r.cases / 4, "{r}");
}

#[test]
fn comparator_catches_a_wrong_engine() {
    let mut g = memory();
    let mem = g.as_mut().unwrap();
    let mut native = NativeEngine::new().unwrap();
    for mutation in [Mutation::Flags(0x1), Mutation::Flags(0x400), Mutation::DataByte(0x1234), Mutation::Xmm(3), Mutation::Gpr(7)] {
        let mut mutant = MutantEngine::new(mutation).unwrap();
        let r = run_campaign(300, 99, &mut native, &mut mutant, mem);
        assert!(r.cases > 0);
        assert_eq!(r.mismatches, r.cases, "{mutation:?} went unnoticed in some cases");
        assert!(r.reports[0].contains("MISMATCH: campaign seed 99"), "{}", r.reports[0]);
    }
    // And one perturbed case shows the differing value in the report.
    let case = generate(1, 5, &GenConfig::default());
    let o = NativeEngine::new().unwrap().run(mem, &case);
    let mut p = o.clone();
    p.state_mut().gpr[2] ^= 0x10;
    let d = compare(&case, &o, &p);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].what, "edx");
}

/// Cases whose results differ between the vendors: BCD adjustments on inputs where
/// their undefined flags disagree, and 32-bit `push sreg` over a non-zero slot.
fn vendor_cases() -> Vec<Case> {
    let bcd: [(Build, u32, u32); 4] = [
        (Box::new(|a| a.daa()), 0x7A, 0),
        (Box::new(|a| a.das()), 0x80, 0x10),
        (Box::new(|a| a.aaa()), 0x7FFA, 0),
        (Box::new(|a| a.aas()), 0x8003, 0),
    ];
    let mut cases: Vec<Case> = bcd.into_iter().map(|(b, v, f)| hand_case(|a| b(a), [v, 0, 0, 0, 0xA000, 0, 0, 0], f | 2)).collect();
    // push ds over a slot holding all ones, then read the whole slot back.
    let sregs: [Build; 3] = [Box::new(|a| a.push(ds)), Box::new(|a| a.push(cs)), Box::new(|a| a.push(fs))];
    for push in sregs {
        let build = move |a: &mut CodeAssembler| {
            a.push(-1i32)?;
            a.pop(eax)?;
            push(a)?;
            a.pop(ebx)
        };
        cases.push(hand_case(build, REGS, 2));
    }
    cases
}

#[test]
fn host_model_is_what_the_fuzzer_needs() {
    let mut g = memory();
    let mem = g.as_mut().unwrap();
    let mut native = NativeEngine::new().unwrap();
    let probed = bt86::harness::host_model::get();
    let wrong = if probed == bt86::harness::host_model::HostModel::AMD {
        bt86::harness::host_model::HostModel::INTEL
    } else {
        bt86::harness::host_model::HostModel::AMD
    };
    let mut right_engine = translator_engine::TranslatorEngine::with_model(probed).unwrap();
    let mut wrong_engine = translator_engine::TranslatorEngine::with_model(wrong).unwrap();
    for case in vendor_cases() {
        let n = native.run(mem, &case);
        let r = right_engine.run(mem, &case);
        assert!(compare(&case, &n, &r).is_empty(), "probed model {probed:?} differs from the host:\n{}", case.listing.join("\n"));
        let w = wrong_engine.run(mem, &case);
        assert!(!compare(&case, &n, &w).is_empty(), "the wrong model {wrong:?} went unnoticed:\n{}", case.listing.join("\n"));
    }
}

/// The probed BCD model reproduces the host on every AL, CF and AF, with AH values that
/// reach the sign, zero and carry edges of the 16-bit forms; AAM/AAD too.
#[test]
fn probed_bcd_model_matches_host() {
    use bt86::harness::cpu::{BcdOp, bcd_adjust as adjust};
    let model = bt86::harness::host_model::get().bcd;
    let ops: [(Build, BcdOp); 6] = [
        (Box::new(|a| a.daa()), BcdOp::Daa),
        (Box::new(|a| a.das()), BcdOp::Das),
        (Box::new(|a| a.aaa()), BcdOp::Aaa),
        (Box::new(|a| a.aas()), BcdOp::Aas),
        (Box::new(|a| a.aam(10)), BcdOp::Aam(10)),
        (Box::new(|a| a.aad(7)), BcdOp::Aad(7)),
    ];
    let mut g = memory();
    let mem = g.as_mut().unwrap();
    let mut native = NativeEngine::new().unwrap();
    let arith = bt86_translator::flags::ARITH;
    for (build, op) in &ops {
        let mut case = hand_case(|a| build(a), REGS, 2);
        for v in [0x00u32, 0x01, 0x7F, 0x80, 0xFE, 0xFF].iter().flat_map(|hi| (0..=0xFF).map(move |lo| hi << 8 | lo)) {
            for f in [0, 0x01, 0x10, 0x11] {
                case.init.gpr[0] = v;
                case.init.eflags = f | 2;
                let s = *finished(&native.run(mem, &case));
                let want = adjust(model, *op, v as u16, f).unwrap();
                assert_eq!((s.gpr[0] as u16, s.eflags & arith), (want.ax, want.flags), "{op:?} AX={v:#06x} flags={f:#x} under {model:?}");
            }
        }
    }
}

/// The probed push-sreg model is what the host stores, and 16-bit pushes store a word;
/// `mov r32, sreg` zero-extends, as the emulation assumes (the SDM calls the upper word
/// implementation-dependent).
#[test]
fn probed_push_sreg_model_matches_host() {
    let model = bt86::harness::host_model::get().push_sreg;
    let ds_sel = NativeEngine::new().unwrap().selectors().data;
    let case32 = hand_case(
        |a| {
            a.push(-1i32)?;
            a.pop(eax)?;
            a.push(ds)?;
            a.pop(ebx)
        },
        REGS,
        2,
    );
    let s = *finished(&run_native(&case32));
    assert_eq!(s.gpr[3], model.slot_after(0xFFFF_FFFF, ds_sel, 4));
    // 16-bit: the word lands in the upper half of the dword below ESP.
    let case16 = hand_case(
        |a| {
            a.push(-1i32)?;
            a.pop(eax)?;
            a.db(&[0x66, 0x1E])?; // push ds (o16)
            a.pop(bx)?;
            a.mov(cx, word_ptr(esp - 4))
        },
        REGS,
        2,
    );
    let s = *finished(&run_native(&case16));
    assert_eq!((s.gpr[3] & 0xFFFF, s.gpr[1] & 0xFFFF), (ds_sel as u32, 0xFFFF));
    let mov = hand_case(|a| a.mov(eax, ds), [0xDEAD_BEEF, 0, 0, 0, 0xA000, 0, 0, 0], 2);
    assert_eq!(finished(&run_native(&mov)).gpr[0], ds_sel as u32);
}

#[test]
fn flag_definers_follow_undefined_flags() {
    let cfg = GenConfig { define_undefined_flags: true, ..GenConfig::default() };
    let mut g = memory();
    let mem = g.as_mut().unwrap();
    let mut a = NativeEngine::new().unwrap();
    let mut checked = 0;
    for i in 0..300 {
        let c = generate(case_seed(3, i), 16, &cfg);
        let decoded: Vec<iced_x86::Instruction> =
            iced_x86::Decoder::with_ip(32, &c.code, CODE_BASE as u64, iced_x86::DecoderOptions::NONE).into_iter().collect();
        for w in decoded.windows(2) {
            if w[0].rflags_undefined() != 0 {
                assert_eq!(w[1].mnemonic(), iced_x86::Mnemonic::Cmp, "{}", c.listing.join("\n"));
                checked += 1;
            }
        }
        let o = a.run(mem, &c);
        // With every undefined flag redefined at once, the final flags are all defined.
        let _ = o;
    }
    assert!(checked > 100, "only {checked} instructions with undefined flags");
}

#[test]
fn round_trip_cost() {
    let mut g = memory();
    let mem = g.as_mut().unwrap();
    let e = NativeEngine::new().unwrap();
    mem.mem.mmu.ram.as_mut_slice()[CODE_BASE as usize] = 0xCC;
    // SAFETY: guest code is one int3 in the mapped window.
    let warm = unsafe { native::measure_round_trip(e.selectors(), CODE_BASE, 0xA000, 1000) };
    // SAFETY: as above.
    let t = unsafe { native::measure_round_trip(e.selectors(), CODE_BASE, 0xA000, 20000) };
    println!(
        "native round trip (enter, int3, SIGTRAP, back): {:.2} us (warm-up {:.2} us)",
        t.as_secs_f64() * 1e6,
        warm.as_secs_f64() * 1e6
    );
    assert!(t.as_micros() < 1000);
}

#[test]
fn unclaimed_signal_is_an_internal_error() {
    bt86::harness::signals::install().unwrap();
    // SAFETY: fork in a test process; the child only faults and the handler then calls
    // write and _exit, both async-signal-safe.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: deliberately faulting (address 8 is in the unmapped first page).
        unsafe { std::ptr::write_volatile(8 as *mut u8, 1) };
        // SAFETY: not reached; exit without running destructors.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status), "status {status:#x}");
    assert_eq!(libc::WEXITSTATUS(status), 70);
}

#[test]
#[ignore]
fn exception_census() {
    // Lists which instruction raised each exception (diagnostic: cargo test -- --ignored).
    let mut g = memory();
    let mem = g.as_mut().unwrap();
    let mut a = NativeEngine::new().unwrap();
    let cfg = GenConfig::default();
    let mut seen = std::collections::BTreeMap::<String, u32>::new();
    for i in 0..5000 {
        let c = generate(case_seed(11, i), 24, &cfg);
        if let Outcome::Exception { vector, eip, .. } = a.run(mem, &c) {
            let line = c.listing.iter().find(|l| l.starts_with(&format!("{eip:08x}"))).cloned().unwrap_or_default();
            let text: String = line.split_whitespace().skip(2).take(1).collect();
            *seen.entry(format!("#{vector} {text}")).or_default() += 1;
            if vector == 14 || vector == 12 || text.contains("bad") || text.is_empty() {
                println!("{}", c.listing.join("\n"));
            }
        }
    }
    for (k, v) in seen {
        println!("{v:6} {k}");
    }
}

#[test]
#[ignore]
fn host_facts() {
    // Diagnostic (cargo test -- --ignored --nocapture): how the host treats instructions
    // that matter for direct execution, run natively in compatibility mode.
    let probes: Vec<(&str, Build)> = vec![
        ("sgdt [0x100]", Box::new(|a| a.sgdt(ptr(0x100)))),
        ("sidt [0x100]", Box::new(|a| a.sidt(ptr(0x100)))),
        ("smsw eax", Box::new(|a| a.smsw(eax))),
        ("sldt ax", Box::new(|a| a.sldt(ax))),
        ("str ax", Box::new(|a| a.str(ax))),
        ("cpuid", Box::new(|a| a.cpuid())),
        ("rdtsc", Box::new(|a| a.rdtsc())),
        (
            "pushfd; pop eax",
            Box::new(|a| {
                a.pushfd()?;
                a.pop(eax)
            }),
        ),
        ("mov eax, cs", Box::new(|a| a.mov(eax, cs))),
        ("mov eax, ss", Box::new(|a| a.mov(eax, ss))),
        ("mov eax, fs", Box::new(|a| a.mov(eax, fs))),
        (
            "lar eax, ecx (ecx=0x0f)",
            Box::new(|a| {
                a.mov(ecx, 0x0F)?;
                a.lar(eax, ecx)
            }),
        ),
        ("int 0x03", Box::new(|a| a.int(3))),
        (
            "into (OF=1)",
            Box::new(|a| {
                a.mov(al, 0x7F)?;
                a.add(al, 1)?;
                a.into()
            }),
        ),
        ("icebp", Box::new(|a| a.int1())),
        ("mov eax, fs:[0]", Box::new(|a| a.mov(eax, dword_ptr(0).fs()))),
    ];
    let mut g = memory();
    let mem = g.as_mut().unwrap();
    let mut e = NativeEngine::new().unwrap();
    for (name, build) in probes {
        let case = hand_case(build, REGS, 0x202);
        let o = e.run(mem, &case);
        let s = o.state();
        let d = &o.data()[0x100..0x106];
        println!(
            "{name:28} -> {} eax={:08x} edx={:08x} mem[0x100]={:02x?}",
            match &o {
                Outcome::Finished { .. } => "finished".to_string(),
                Outcome::Exception { vector, error_code, eip, .. } => format!("#{vector} err {error_code:?} at +{:#x}", eip - CODE_BASE),
            },
            s.gpr[0],
            s.gpr[2],
            d
        );
    }
    let mut v: libc::c_ulong = 0;
    // SAFETY: arch_prctl(ARCH_GET_CPUID) returns a value; no pointer is written.
    let r = unsafe { libc::syscall(libc::SYS_arch_prctl, 0x1011, &mut v as *mut libc::c_ulong) };
    println!("arch_prctl(ARCH_GET_CPUID) = {r} (1 = cpuid executes; -1 = no CPUID faulting support)");
    // SAFETY: ARCH_SET_CPUID(0) only changes this process's CPUID behaviour; restore below.
    let r = unsafe { libc::syscall(libc::SYS_arch_prctl, 0x1012, 0) };
    println!("arch_prctl(ARCH_SET_CPUID, 0) = {r} errno {}", std::io::Error::last_os_error());
    if r == 0 {
        let case = hand_case(|a| a.cpuid(), REGS, 0x202);
        let o = e.run(mem, &case);
        println!("cpuid with CPUID faulting on -> {:?}", o.vector());
        // SAFETY: restores normal CPUID.
        unsafe { libc::syscall(libc::SYS_arch_prctl, 0x1012, 1) };
    }
}

#[test]
#[ignore]
fn native_speed() {
    // Benchmark (cargo test --release -- --ignored --nocapture native_speed).
    let mut g = memory();
    let mem = g.as_mut().unwrap();
    let mut e = NativeEngine::new().unwrap();
    let cfg = GenConfig::default();
    let cases: Vec<Case> = (0..20_000).map(|i| generate(case_seed(5, i), 1 + (i % 24) as usize, &cfg)).collect();
    let instrs: u64 = cases.iter().map(|c| c.instructions as u64).sum();
    for round in 0..2 {
        let t = std::time::Instant::now();
        for c in &cases {
            let _ = e.run(mem, c);
        }
        let d = t.elapsed();
        println!(
            "round {round}: {} cases, {instrs} instructions in {:.3} s: {:.2} us/case, {:.0} instructions/s",
            cases.len(),
            d.as_secs_f64(),
            d.as_secs_f64() * 1e6 / cases.len() as f64,
            instrs as f64 / d.as_secs_f64()
        );
    }
    let t = std::time::Instant::now();
    for i in 0..20_000u64 {
        std::hint::black_box(generate(case_seed(5, i), 1 + (i % 24) as usize, &cfg));
    }
    println!("generation: {:.2} us/case", t.elapsed().as_secs_f64() * 1e6 / 20_000.0);
    let t = std::time::Instant::now();
    for i in 0..2_000u64 {
        let mut rng = super::generator::Rng::new(i);
        std::hint::black_box(super::generator::initial_data_for_bench(&mut rng));
    }
    println!("  of which data: {:.2} us/case", t.elapsed().as_secs_f64() * 1e6 / 2_000.0);
    let t = std::time::Instant::now();
    for _ in 0..2_000u64 {
        std::hint::black_box(generator::disassemble(&cases[7].code));
    }
    println!("  disassembly of a {}-instruction case: {:.2} us", cases[7].listing.len(), t.elapsed().as_secs_f64() * 1e6 / 2_000.0);
}
