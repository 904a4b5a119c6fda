//! Property tests for the loaders: valid Multiboot ELF, a.out kludge and bzImage
//! templates, mutated (header fields set to edge values, bytes changed, the file cut
//! short, long command lines, initrds of all sizes), are validated and loaded into a
//! 4 MiB guest RAM. The loaders must return `Ok` or `Err` — never panic — and what they
//! report as loaded must lie inside RAM.
//!
//! `cargo test` runs a few hundred cases in a few seconds. To search longer:
//! `PROPTEST_CASES=100000 cargo test --release -p bt86 --bin bt86 loader::fuzz_tests`.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use bt86_shadow_mmu::GuestRam;

use super::{linux, multiboot};

/// Guest RAM for each case.
const RAM: u64 = 4 << 20;
/// Cases per template when PROPTEST_CASES does not say.
const DEFAULT_CASES: u32 = 200;
/// Where the Multiboot header of the a.out kludge template starts in its file.
const AOUT_HEADER: usize = 0x40;

fn put32(f: &mut [u8], at: usize, v: u32) {
    if let Some(b) = f.get_mut(at..at + 4) {
        b.copy_from_slice(&v.to_le_bytes());
    }
}

fn multiboot_header(flags: u32, fields: &[u32]) -> Vec<u8> {
    let mut v = Vec::new();
    for w in [multiboot::HEADER_MAGIC, flags, 0u32.wrapping_sub(multiboot::HEADER_MAGIC).wrapping_sub(flags)].iter().chain(fields) {
        v.extend_from_slice(&w.to_le_bytes());
    }
    v
}

/// A Multiboot ELF: text at 1 MiB (header, `cli; hlt`) and a bss segment after it.
fn elf_template() -> Vec<u8> {
    let mut f = vec![0u8; 0x1000];
    f[..8].copy_from_slice(&[0x7f, b'E', b'L', b'F', 1, 1, 1, 0]);
    f[16..20].copy_from_slice(&[2, 0, 3, 0]); // ET_EXEC, EM_386
    put32(&mut f, 20, 1);
    put32(&mut f, 24, 0x10_000C); // entry
    put32(&mut f, 28, 52); // e_phoff
    f[40..46].copy_from_slice(&[52, 0, 32, 0, 2, 0]); // e_ehsize, e_phentsize, e_phnum
    let segments = [(0x1000, 0x10_0000, 14, 14), (0x1000 + 14, 0x10_1000, 0, 0x3000)];
    for (i, (off, addr, filesz, memsz)) in segments.into_iter().enumerate() {
        for (j, v) in [1, off, addr, addr, filesz, memsz, 7, 0x1000].into_iter().enumerate() {
            put32(&mut f, 52 + 32 * i + 4 * j, v);
        }
    }
    f.extend_from_slice(&multiboot_header(3, &[]));
    f.extend_from_slice(&[0xFA, 0xF4]);
    f
}

/// An a.out kludge kernel: the file from 1 MiB, its header at `AOUT_HEADER`, a bss.
fn aout_template() -> Vec<u8> {
    let mut f = vec![0u8; AOUT_HEADER];
    let base = 0x10_0000;
    f.extend_from_slice(&multiboot_header(1 << 16, &[base + AOUT_HEADER as u32, base, base + 0x100, base + 0x2000, base + 0x60]));
    f.resize(0x100, 0xF4);
    f
}

/// A bzImage with protocol 2.15, four setup sectors and a 4 KiB protected-mode kernel.
fn bzimage_template() -> Vec<u8> {
    let mut f = vec![0u8; 5 * 512];
    f[0x1F1] = 4;
    f[0x201] = 0x6A;
    f[0x202..0x206].copy_from_slice(b"HdrS");
    f[0x206..0x208].copy_from_slice(&0x020Fu16.to_le_bytes());
    f[0x211] = 1;
    put32(&mut f, 0x214, 0x10_0000);
    put32(&mut f, 0x22C, 0x37FF_FFFF);
    put32(&mut f, 0x238, 2048);
    put32(&mut f, 0x260, 0x8000);
    f.resize(5 * 512 + 4096, 0x90);
    f
}

/// The header fields worth setting to edge values, as file offsets, per template.
fn fields(template: usize) -> &'static [usize] {
    const ELF: &[usize] = &[24, 28, 42, 44, 52 + 4, 52 + 8, 52 + 12, 52 + 16, 52 + 20, 84 + 4, 84 + 12, 84 + 16, 84 + 20];
    const AOUT: &[usize] = &[AOUT_HEADER + 12, AOUT_HEADER + 16, AOUT_HEADER + 20, AOUT_HEADER + 24, AOUT_HEADER + 28];
    const BZ: &[usize] = &[0x1F0, 0x200, 0x206, 0x210, 0x214, 0x22C, 0x238, 0x260];
    [ELF, AOUT, BZ][template]
}

fn edge_value() -> impl Strategy<Value = u32> {
    prop_oneof![
        prop::sample::select(vec![
            0,
            1,
            4,
            0xFF,
            0x1FF,
            0x1000,
            0x8000,
            0x9000,
            0x10_0000,
            0x10_0040,
            0x3F_FFFF,
            0x40_0000,
            0x7FFF_FFFF,
            0x8000_0000,
            0xFFFF_F000,
            0xFFFF_FFF0,
            0xFFFF_FFFF,
        ]),
        any::<u32>(),
    ]
}

/// One mutated image and what to load it with.
#[derive(Debug)]
struct Input {
    image: Vec<u8>,
    cmdline: String,
    initrd: Option<Vec<u8>>,
}

fn input(template: usize) -> impl Strategy<Value = Input> {
    let sets = prop::collection::vec((prop::sample::select(fields(template)), edge_value()), 0..4);
    let flips = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6);
    let cut = prop::option::weighted(0.2, any::<prop::sample::Index>());
    let cmdline = prop_oneof![Just(0usize), 0..64usize, Just(4000usize), Just(3 << 20)];
    let initrd = prop::option::of(prop_oneof![Just(0usize), 1..64usize, Just(1 << 20), Just(3 << 20)]);
    (sets, any::<bool>(), flips, cut, cmdline, initrd).prop_map(move |(sets, fix_sum, flips, cut, cmdline, initrd)| {
        let mut image = [elf_template, aout_template, bzimage_template][template]();
        for (at, v) in sets {
            put32(&mut image, at, v);
        }
        if fix_sum && template == 1 {
            fix_multiboot_checksum(&mut image, AOUT_HEADER);
        }
        for (i, b) in flips {
            let at = i.index(image.len());
            image[at] = b;
        }
        if let Some(i) = cut {
            image.truncate(i.index(image.len()));
        }
        Input { image, cmdline: "x".repeat(cmdline), initrd: initrd.map(|n| vec![0xAB; n]) }
    })
}

fn fix_multiboot_checksum(image: &mut [u8], at: usize) {
    let word = |i: usize| u32::from_le_bytes([image[at + i], image[at + i + 1], image[at + i + 2], image[at + i + 3]]);
    let sum = 0u32.wrapping_sub(word(0)).wrapping_sub(word(4));
    put32(image, at + 8, sum);
}

/// Loads `input` as bt86 does and checks what the loader reports.
fn load(input: &Input) -> Result<(), TestCaseError> {
    let mut ram = GuestRam::new(RAM).map_err(|e| TestCaseError::fail(format!("guest RAM: {e}")))?;
    let inside = |what: &str, addr: u64| {
        prop_assert!(addr <= RAM, "{what} {addr:#x} lies outside the {RAM:#x}-byte RAM");
        Ok(())
    };
    if linux::is_bzimage(&input.image) {
        let early = linux::validate("k", &input.image);
        if let Ok(l) = linux::load("k", &input.image, input.initrd.as_deref(), &input.cmdline, &mut ram) {
            prop_assert!(early.is_ok(), "validate refused what load accepted: {early:?}");
            inside("entry", l.entry as u64)?;
            inside("the zero page", l.boot_params as u64 + 4096)?;
            let (rd, rd_len) = (ram.read_u32(l.boot_params as u64 + 0x218) as u64, ram.read_u32(l.boot_params as u64 + 0x21C) as u64);
            inside("the initrd's end", rd + rd_len)?;
        }
    } else {
        let early = multiboot::validate("k", &input.image);
        if let Ok(l) = multiboot::load("k", &input.image, &input.cmdline, &mut ram) {
            prop_assert!(early.is_ok(), "validate refused what load accepted: {early:?}");
            prop_assert!((l.entry as u64) < RAM, "entry {:#x} outside RAM", l.entry);
            inside("the image's end", l.image_end as u64)?;
            prop_assert!(l.info as u64 >= l.image_end as u64, "the information block is below the image's end");
            let cmd = ram.read_u32(l.info as u64 + 16) as u64;
            inside("the command line's end", cmd + input.cmdline.len() as u64 + 3)?;
        }
    }
    Ok(())
}

fn run(template: usize) {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_CASES);
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&input(template), |i| load(&i)) {
        panic!("{e}");
    }
}

#[test]
fn templates_load() {
    for (i, t) in [elf_template(), aout_template(), bzimage_template()].into_iter().enumerate() {
        let input = Input { image: t, cmdline: "console=ttyS0".into(), initrd: None };
        let mut ram = GuestRam::new(RAM).unwrap();
        let ok = if i == 2 {
            linux::load("k", &input.image, None, &input.cmdline, &mut ram).map(|_| ()).map_err(|e| e.to_string())
        } else {
            multiboot::load("k", &input.image, &input.cmdline, &mut ram).map(|_| ()).map_err(|e| e.to_string())
        };
        assert_eq!(ok, Ok(()), "template {i}");
    }
}

#[test]
fn mutated_multiboot_elf_never_panics() {
    run(0);
}

#[test]
fn mutated_aout_kludge_never_panics() {
    run(1);
}

#[test]
fn mutated_bzimage_never_panics() {
    run(2);
}
