//! Command-line errors of `bt86 run`: each bad input must end with exit status 2 and a
//! single line on stderr (no panic message, no backtrace), and nothing on stdout.
//!
//! The bad kernels are written by the test into Cargo's per-target temporary directory.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use bt86_guests::run_with_timeout;

const TIMEOUT: Duration = Duration::from_secs(20);

fn bt86<I: IntoIterator<Item = OsString>>(args: I) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bt86"));
    cmd.args(args);
    cmd
}

/// A file in the test's temporary directory holding `bytes`.
fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Runs bt86 with `args`, checks that it fails as a usage error should and returns its
/// message.
fn expect_usage_error(what: &str, args: Vec<OsString>) -> String {
    let run = run_with_timeout(bt86(args.clone()), TIMEOUT).unwrap_or_else(|e| panic!("{what}: cannot run bt86: {e}"));
    let stderr = String::from_utf8_lossy(&run.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let context = format!(
        "{what}: bt86 {:?}\n  {}\n  stderr: {stderr:?}\n  stdout: {:?}",
        args,
        run.describe_status(),
        String::from_utf8_lossy(&run.serial)
    );
    assert_eq!(run.status, Some(2), "expected exit status 2\n{context}");
    assert_eq!(lines.len(), 1, "expected exactly one line on stderr\n{context}");
    let lower = stderr.to_lowercase();
    assert!(!lower.contains("panicked") && !lower.contains("backtrace"), "a usage error must not panic\n{context}");
    assert!(run.serial.is_empty(), "nothing may be printed on stdout\n{context}");
    stderr.into_owned()
}

fn run_args(kernel: &std::path::Path, extra: &[&str]) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec!["run".into(), "--kernel".into(), kernel.into()];
    v.extend(extra.iter().map(OsString::from));
    v
}

/// The 12 bytes of a Multiboot v1 header asking for page-aligned modules and memory info.
fn multiboot_header() -> Vec<u8> {
    let magic: u32 = 0x1bad_b002;
    let flags: u32 = 3;
    let mut v = Vec::new();
    v.extend_from_slice(&magic.to_le_bytes());
    v.extend_from_slice(&flags.to_le_bytes());
    v.extend_from_slice(&(0u32.wrapping_sub(magic).wrapping_sub(flags)).to_le_bytes());
    v
}

/// A minimal ELF32 i386 executable: one PT_LOAD at 1 MiB whose contents are `payload`
/// (at file offset 0x1000) followed by `cli; hlt`.
fn elf32(payload: &[u8]) -> Vec<u8> {
    let mut body = payload.to_vec();
    body.extend_from_slice(&[0xfa, 0xf4]);
    let mut f = vec![0u8; 0x1000];
    f[..16].copy_from_slice(&[0x7f, b'E', b'L', b'F', 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let put16 = |f: &mut Vec<u8>, at: usize, v: u16| f[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put32 = |f: &mut Vec<u8>, at: usize, v: u32| f[at..at + 4].copy_from_slice(&v.to_le_bytes());
    put16(&mut f, 16, 2); // ET_EXEC
    put16(&mut f, 18, 3); // EM_386
    put32(&mut f, 20, 1);
    put32(&mut f, 24, 0x10_0000 + payload.len() as u32); // entry: the cli; hlt
    put32(&mut f, 28, 52); // e_phoff
    put16(&mut f, 40, 52); // e_ehsize
    put16(&mut f, 42, 32); // e_phentsize
    put16(&mut f, 44, 1); // e_phnum
    let ph = 52;
    put32(&mut f, ph, 1); // PT_LOAD
    put32(&mut f, ph + 4, 0x1000); // p_offset
    put32(&mut f, ph + 8, 0x10_0000); // p_vaddr
    put32(&mut f, ph + 12, 0x10_0000); // p_paddr
    put32(&mut f, ph + 16, body.len() as u32); // p_filesz
    put32(&mut f, ph + 20, body.len() as u32); // p_memsz
    put32(&mut f, ph + 24, 5); // R X
    put32(&mut f, ph + 28, 0x1000);
    f.extend_from_slice(&body);
    f
}

/// A minimal ELF64 x86-64 executable laid out like `elf32`, with a Multiboot header, so
/// that its class is the only thing wrong with it.
fn elf64(payload: &[u8]) -> Vec<u8> {
    let mut body = payload.to_vec();
    body.extend_from_slice(&[0xfa, 0xf4]);
    let mut f = vec![0u8; 0x1000];
    f[..16].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let put16 = |f: &mut Vec<u8>, at: usize, v: u16| f[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put32 = |f: &mut Vec<u8>, at: usize, v: u32| f[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let put64 = |f: &mut Vec<u8>, at: usize, v: u64| f[at..at + 8].copy_from_slice(&v.to_le_bytes());
    put16(&mut f, 16, 2); // ET_EXEC
    put16(&mut f, 18, 62); // EM_X86_64
    put32(&mut f, 20, 1);
    put64(&mut f, 24, 0x10_0000 + payload.len() as u64);
    put64(&mut f, 32, 64); // e_phoff
    put16(&mut f, 52, 64); // e_ehsize
    put16(&mut f, 54, 56); // e_phentsize
    put16(&mut f, 56, 1); // e_phnum
    let ph = 64;
    put32(&mut f, ph, 1); // PT_LOAD
    put32(&mut f, ph + 4, 5); // R X
    put64(&mut f, ph + 8, 0x1000); // p_offset
    put64(&mut f, ph + 16, 0x10_0000); // p_vaddr
    put64(&mut f, ph + 24, 0x10_0000); // p_paddr
    put64(&mut f, ph + 32, body.len() as u64); // p_filesz
    put64(&mut f, ph + 40, body.len() as u64); // p_memsz
    put64(&mut f, ph + 48, 0x1000);
    f.extend_from_slice(&body);
    f
}

#[test]
fn missing_kernel_file() {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-such-dir/no-such-kernel.elf");
    expect_usage_error("missing kernel file", run_args(&path, &[]));
}

#[test]
fn kernel_is_not_elf() {
    let path = temp_file("not-elf.bin", b"this is a text file, not an ELF image\n");
    expect_usage_error("non-ELF kernel", run_args(&path, &[]));
}

#[test]
fn kernel_is_empty() {
    let path = temp_file("empty.elf", b"");
    expect_usage_error("empty kernel file", run_args(&path, &[]));
}

#[test]
fn kernel_is_64_bit_elf() {
    let path = temp_file("elf64.elf", &elf64(&multiboot_header()));
    expect_usage_error("64-bit ELF kernel", run_args(&path, &[]));
}

#[test]
fn kernel_without_multiboot_header() {
    let path = temp_file("no-multiboot.elf", &elf32(&[0x90; 64]));
    expect_usage_error("ELF kernel without a Multiboot header", run_args(&path, &[]));
}

#[test]
fn bad_mem_values() {
    // A kernel that is fine, so that --mem is the only problem.
    let kernel = bt86_guests::kernel("alu");
    for bad in ["abc", "0", "12Q", "-5", "", "M", "1.5.3M"] {
        expect_usage_error(&format!("--mem {bad:?}"), run_args(&kernel, &["--mem", bad]));
    }
}

/// The hand-made ELF32 image with a Multiboot header is otherwise valid: a sanity check of
/// the generator (the Multiboot header must sit in the first 8 KiB, 4-byte aligned).
#[test]
fn generated_images_are_well_formed() {
    let good = elf32(&multiboot_header());
    assert_eq!(&good[0x1000..0x1004], &0x1bad_b002u32.to_le_bytes());
    let sum = (0..3).fold(0u32, |s, i| s.wrapping_add(u32::from_le_bytes(good[0x1000 + 4 * i..0x1004 + 4 * i].try_into().unwrap())));
    assert_eq!(sum, 0, "Multiboot checksum");
    assert_eq!(elf64(&[])[4], 2, "ELF class 64");
}

#[test]
fn bad_tc_size_values() {
    let kernel = bt86_guests::kernel("alu");
    for bad in ["abc", "0", "15K", "12Q", "-5", "", "2G", "1.5M"] {
        expect_usage_error(&format!("--tc-size {bad:?}"), run_args(&kernel, &["--tc-size", bad]));
    }
}

// ---------------------------------------------------------------------------------------
// Malformed and hostile kernel images: a table of images generated here, each of which
// must be refused with one line and exit status 2, quickly.

/// How long refusing a bad image may take (bt86 has not started the guest yet).
const REFUSE_WITHIN: Duration = Duration::from_secs(5);

/// An ELF32 image, field by field, so that each case can break one thing.
#[derive(Clone)]
struct ElfSpec {
    class: u8,
    data: u8,
    machine: u16,
    kind: u16,
    entry: u32,
    phoff: u32,
    phentsize: u16,
    phnum: Option<u16>,
    /// PT_LOAD segments: (p_offset, p_vaddr, p_paddr, p_filesz, p_memsz).
    segments: Vec<(u32, u32, u32, u32, u32)>,
    /// The file from offset 0x1000 on.
    body: Vec<u8>,
}

/// The code a valid test kernel runs: `cli; hlt`.
const CLI_HLT: [u8; 2] = [0xfa, 0xf4];

impl ElfSpec {
    /// A valid Multiboot kernel: one segment at 1 MiB holding the header, then `cli; hlt`.
    fn multiboot() -> ElfSpec {
        let mut body = multiboot_header();
        body.extend_from_slice(&CLI_HLT);
        let len = body.len() as u32;
        ElfSpec {
            class: 1,
            data: 1,
            machine: 3,
            kind: 2,
            entry: 0x10_0000 + 12,
            phoff: 52,
            phentsize: 32,
            phnum: None,
            segments: vec![(0x1000, 0x10_0000, 0x10_0000, len, len)],
            body,
        }
    }

    fn with(mut self, f: impl FnOnce(&mut ElfSpec)) -> ElfSpec {
        f(&mut self);
        self
    }

    fn build(&self) -> Vec<u8> {
        let mut f = vec![0u8; 0x1000];
        f[..8].copy_from_slice(&[0x7f, b'E', b'L', b'F', self.class, self.data, 1, 0]);
        put16(&mut f, 16, self.kind);
        put16(&mut f, 18, self.machine);
        put32(&mut f, 20, 1);
        put32(&mut f, 24, self.entry);
        put32(&mut f, 28, self.phoff);
        put16(&mut f, 40, 52);
        put16(&mut f, 42, self.phentsize);
        put16(&mut f, 44, self.phnum.unwrap_or(self.segments.len() as u16));
        for (i, &(off, vaddr, paddr, filesz, memsz)) in self.segments.iter().enumerate() {
            let ph = 52 + 32 * i;
            for (j, v) in [1, off, vaddr, paddr, filesz, memsz, 7, 0x1000].into_iter().enumerate() {
                put32(&mut f, ph + 4 * j, v);
            }
        }
        f.extend_from_slice(&self.body);
        f
    }
}

fn put16(f: &mut [u8], at: usize, v: u16) {
    f[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put32(f: &mut [u8], at: usize, v: u32) {
    f[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// A Multiboot header with the a.out kludge fields (header_addr, load_addr, load_end_addr,
/// bss_end_addr, entry_addr) at `offset` in a file of `len` bytes.
fn aout(offset: usize, len: usize, fields: [u32; 5]) -> Vec<u8> {
    let mut f = vec![0u8; len.max(offset + 34)];
    let flags: u32 = 1 << 16;
    put32(&mut f, offset, 0x1bad_b002);
    put32(&mut f, offset + 4, flags);
    put32(&mut f, offset + 8, 0u32.wrapping_sub(0x1bad_b002).wrapping_sub(flags));
    for (i, v) in fields.into_iter().enumerate() {
        put32(&mut f, offset + 12 + 4 * i, v);
    }
    f[offset + 32..offset + 34].copy_from_slice(&CLI_HLT);
    f.truncate(len);
    f
}

/// A valid a.out kludge kernel: the whole 256-byte file at 1 MiB, entry after the header.
fn aout_valid() -> [u32; 5] {
    [0x10_0000, 0x10_0000, 0, 0, 0x10_0000 + 32]
}

/// A bzImage: 4 sectors of setup after the boot sector, the setup header with `version`,
/// then `body` as the protected-mode kernel.
fn bzimage(version: u16, body_len: usize) -> Vec<u8> {
    let mut img = vec![0u8; 5 * 512];
    img[0x1f1] = 4; // setup_sects
    img[0x201] = 0x6a; // the header runs to 0x26c
    img[0x202..0x206].copy_from_slice(b"HdrS");
    put16(&mut img, 0x206, version);
    img[0x211] = 1; // LOADED_HIGH
    put32(&mut img, 0x214, 0x10_0000); // code32_start
    put32(&mut img, 0x22c, 0x37ff_ffff); // initrd_addr_max
    put32(&mut img, 0x238, 2048); // cmdline_size
    img.resize(5 * 512 + body_len, 0xf4);
    img
}

fn bz_with(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut img = bzimage(0x020f, 4096);
    f(&mut img);
    img
}

/// One bad image: a name, the file, extra options, a word its message must contain.
struct Case {
    name: &'static str,
    image: Vec<u8>,
    args: Vec<String>,
    says: &'static str,
}

fn case(name: &'static str, image: Vec<u8>, args: &[&str], says: &'static str) -> Case {
    Case { name, image, args: args.iter().map(|s| s.to_string()).collect(), says }
}

fn elf_cases() -> Vec<Case> {
    let mb = ElfSpec::multiboot();
    let good = mb.build();
    let mut v = Vec::new();
    for (name, len) in [("truncated ELF: 4 bytes", 4), ("truncated ELF: 5 bytes", 5), ("truncated ELF: 6 bytes", 6)] {
        v.push(case(name, good[..len].to_vec(), &[], "ELF header"));
    }
    for (name, len) in [("truncated ELF: 16 bytes", 16), ("truncated ELF: 20 bytes", 20), ("truncated ELF: 51 bytes", 51)] {
        v.push(case(name, good[..len].to_vec(), &[], "ELF header"));
    }
    v.push(case("truncated ELF: program headers cut", good[..60].to_vec(), &[], "program header table"));
    v.push(case("ELF for ARM", mb.clone().with(|s| s.machine = 40).build(), &[], "machine"));
    v.push(case("ELF class 3", mb.clone().with(|s| s.class = 3).build(), &[], "class"));
    v.push(case("big-endian ELF", mb.clone().with(|s| s.data = 2).build(), &[], "big-endian"));
    v.push(case("ELF shared object", mb.clone().with(|s| s.kind = 3).build(), &[], "DYN"));
    v.push(case("program headers past the end", mb.clone().with(|s| s.phoff = 0xffff_fff0).build(), &[], "program header table"));
    v.push(case("no program headers", mb.clone().with(|s| s.phnum = Some(0)).build(), &[], "no program headers"));
    v.push(case("tiny e_phentsize", mb.clone().with(|s| s.phentsize = 8).build(), &[], "e_phentsize"));
    v.push(case("65535 program headers", mb.clone().with(|s| s.phnum = Some(0xffff)).build(), &[], "program header"));
    let overlap = mb.clone().with(|s| s.segments.push((0x1000, 0x10_0008, 0x10_0008, 4, 0x100)));
    v.push(case("overlapping segments", overlap.build(), &[], "overlap"));
    let wrap = mb.clone().with(|s| s.segments.push((0x1000, 0xffff_f000, 0xffff_f000, 4, 0x2000)));
    v.push(case("segment wrapping at 4 GiB", wrap.build(), &[], "wrap"));
    let high = mb.clone().with(|s| s.segments.push((0x1000, 0x0100_0000, 0x0100_0000, 4, 0x1000)));
    v.push(case("segment beyond RAM", high.build(), &["--mem", "16M"], "does not fit"));
    v.push(case("huge p_memsz", mb.clone().with(|s| s.segments[0].4 = 0xf000_0000).build(), &[], "does not fit"));
    v.push(case("p_filesz > p_memsz", mb.clone().with(|s| s.segments[0].4 = 4).build(), &[], "p_memsz"));
    v.push(case("p_offset + p_filesz wraps", mb.clone().with(|s| s.segments[0].0 = 0xffff_fff0).build(), &[], "end of the file"));
    v.push(case("p_filesz past the end", mb.clone().with(|s| s.segments[0].3 = 0x10_0000).build(), &[], "end of the file"));
    v.push(case("entry beyond RAM", mb.clone().with(|s| s.entry = 0x0100_0000).build(), &["--mem", "16M"], "entry point"));
    v.push(case("only empty segments", mb.clone().with(|s| s.segments[0].3 = 0).with(|s| s.segments[0].4 = 0).build(), &[], "no loadable"));
    v.push(case("65534 segments, entry beyond RAM", many_segments(), &[], "entry point"));
    let mut bad_sum = good.clone();
    bad_sum[0x1008] ^= 1;
    v.push(case("bad Multiboot checksum", bad_sum, &[], "checksum"));
    v.push(case("Multiboot kernel with --initrd", good.clone(), &["--initrd", "INITRD"], "initrd"));
    v
}

/// An ELF file with the most program headers it can have, each a 16-byte segment of its
/// own, and its entry beyond RAM: refused, and quickly.
fn many_segments() -> Vec<u8> {
    const N: u32 = 65534;
    let spec = ElfSpec::multiboot().with(|s| {
        s.segments.clear();
        s.phnum = Some(N as u16);
        s.phoff = 0x2000;
        s.entry = 0xf000_0000;
    });
    let mut f = spec.build();
    f.resize(0x2000, 0);
    for i in 0..N {
        let addr = 0x10_0000 + 16 * i;
        for v in [1, 0x1000, addr, addr, 0, 16, 6, 0x1000] {
            f.extend_from_slice(&v.to_le_bytes());
        }
    }
    f
}

fn aout_cases() -> Vec<Case> {
    let [h, l, _, _, e] = aout_valid();
    vec![
        case("a.out: header_addr - load_addr beyond the file offset", aout(8, 256, [h + 0x100, l, 0, 0, e]), &[], "before the file"),
        case("a.out: load_addr above header_addr", aout(0, 256, [h, l + 4, 0, 0, e]), &[], "load_addr"),
        case("a.out: load_end_addr below load_addr", aout(0, 256, [h, l, l - 4, 0, e]), &[], "load_end_addr"),
        case("a.out: load_end_addr past the file", aout(0, 256, [h, l, l + 0x10_0000, 0, e]), &[], "end of the file"),
        case("a.out: bss_end_addr below load_end_addr", aout(0, 256, [h, l, l + 0x80, l + 0x40, e]), &[], "bss_end_addr"),
        case("a.out: fields cut by the end of the file", aout(0, 20, [h, l, 0, 0, e]), &[], "a.out kludge"),
        case("a.out: huge bss", aout(0, 256, [h, l, 0, 0xffff_f000, e]), &[], "does not fit"),
        case("a.out: load at the top of 4 GiB", aout(0, 256, [0xffff_ff80, 0xffff_ff80, 0, 0, 0xffff_ffa0]), &[], "does not fit"),
        case("a.out: entry beyond RAM", aout(0, 256, [h, l, 0, 0, 0xf000_0000]), &[], "entry point"),
        case("a.out: nothing to load", aout(0, 256, [h, l, l, 0, e]), &[], "loads nothing"),
        case(
            "a.out: command line does not fit after the image",
            aout(0, 256, [h, l, 0, 0x1f_f000, e]),
            &["--mem", "2M", "--append", &"x".repeat(0x2000)],
            "command line",
        ),
    ]
}

fn bzimage_cases() -> Vec<Case> {
    vec![
        case("bzImage: boot protocol 2.01", bzimage(0x0201, 4096), &[], "older than 2.02"),
        case("zImage", bz_with(|i| i[0x211] = 0), &[], "zImage"),
        case("bzImage: setup_sects 255, short file", bz_with(|i| i[0x1f1] = 255), &[], "setup code"),
        case("bzImage: setup_sects 0, nothing after the setup", bzimage(0x020f, 0), &[], "setup code"),
        case(
            "bzImage: setup_sects 0 (means 4), nothing after",
            bz_with(|i| {
                i[0x1f1] = 0;
                i.truncate(5 * 512)
            }),
            &[],
            "setup code",
        ),
        case("bzImage: setup header too short", bz_with(|i| i[0x201] = 0x20), &[], "too short"),
        case("bzImage: setup header cut", bzimage(0x020f, 0)[..0x230].to_vec(), &[], "setup header"),
        case(
            "bzImage: command line longer than cmdline_size",
            bz_with(|i| put32(i, 0x238, 16)),
            &["--append", &"y".repeat(17)],
            "at most 16",
        ),
        case("bzImage: init_size 4 GiB", bz_with(|i| put32(i, 0x260, 0xffff_ffff)), &[], "beyond 4 GiB"),
        case("bzImage: init_size above RAM", bz_with(|i| put32(i, 0x260, 0x1000_0000)), &[], "does not fit"),
        case("bzImage: initrd larger than RAM allows", bzimage(0x020f, 4096), &["--mem", "4M", "--initrd", "BIG_INITRD"], "initrd"),
        case("bzImage: initrd_addr_max 4 KiB", bz_with(|i| put32(i, 0x22c, 0xfff)), &["--initrd", "INITRD"], "initrd"),
    ]
}

/// Writes `case`'s image (and any initrd it names) and runs bt86 on it.
fn refuse(c: &Case) {
    let file = c.name.replace(|ch: char| !ch.is_ascii_alphanumeric(), "_");
    let kernel = temp_file(&format!("{file}.img"), &c.image);
    let mut args = run_args(&kernel, &[]);
    for a in &c.args {
        let a = match a.as_str() {
            "INITRD" => temp_file("initrd.img", b"an initrd").into_os_string(),
            "BIG_INITRD" => temp_file("big-initrd.img", &vec![0; 3 << 20]).into_os_string(),
            _ => OsString::from(a),
        };
        args.push(a);
    }
    let started = Instant::now();
    let stderr = expect_usage_error(c.name, args);
    assert!(started.elapsed() < REFUSE_WITHIN, "{}: refusing took {:?}", c.name, started.elapsed());
    assert!(stderr.contains(c.says), "{}: the message should mention {:?}: {stderr}", c.name, c.says);
}

#[test]
fn malformed_elf_images() {
    elf_cases().iter().for_each(refuse);
}

#[test]
fn malformed_aout_kludge_images() {
    aout_cases().iter().for_each(refuse);
}

#[test]
fn malformed_bzimages() {
    bzimage_cases().iter().for_each(refuse);
}

/// The generators make valid images when nothing is broken: they boot (to `cli; hlt`,
/// which bt86 reports as a halt nothing can end, status 3).
#[test]
fn valid_generated_images_boot() {
    for (name, image) in [("valid-elf", ElfSpec::multiboot().build()), ("valid-aout", aout(0, 256, aout_valid()))] {
        let kernel = temp_file(&format!("{name}.img"), &image);
        let run = run_with_timeout(bt86(run_args(&kernel, &[])), TIMEOUT).unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status, Some(3), "{name}: {}\n{stderr}", run.describe_status());
        assert!(!stderr.contains("malformed"), "{name}: {stderr}");
    }
}

// ---------------------------------------------------------------------------------------
// Kernel files that are not files.

#[test]
fn kernel_is_not_a_regular_file() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("kernel.fifo");
    let _ = std::fs::remove_file(&fifo);
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success(), "mkfifo failed");
    for (what, path) in [("/dev/zero", PathBuf::from("/dev/zero")), ("a FIFO", fifo.clone()), ("a directory", dir.clone())] {
        let started = Instant::now();
        let stderr = expect_usage_error(what, run_args(&path, &[]));
        assert!(started.elapsed() < REFUSE_WITHIN, "{what}: took {:?}", started.elapsed());
        assert!(stderr.contains("not a regular file"), "{what}: {stderr}");
    }
    let initrd_fifo = run_args(&bt86_guests::kernel("alu"), &["--initrd", fifo.to_str().unwrap()]);
    expect_usage_error("--initrd FIFO", initrd_fifo);
}

#[test]
fn kernel_is_unreadable() {
    use std::os::unix::fs::PermissionsExt;
    // Root reads files whatever their mode: then there is nothing to test.
    let path = temp_file("unreadable.elf", &ElfSpec::multiboot().build());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read(&path).is_ok() {
        eprintln!("skipped: running as root (or with CAP_DAC_OVERRIDE), every file is readable");
        return;
    }
    let stderr = expect_usage_error("unreadable kernel", run_args(&path, &[]));
    assert!(stderr.contains("ermission"), "{stderr}");
}

// ---------------------------------------------------------------------------------------
// Valid kernels the loader used to refuse or cut.

/// A Multiboot ELF kernel linked at `addr` (one segment, 8 KiB of memory, so that at
/// 0x8000 it covers where bt86 used to put the information block) that writes "ok\n" and
/// its command line to COM1 and exits with status 1 (it writes 0 to port 0xf4).
fn echo_kernel(addr: u32) -> Vec<u8> {
    let mut body = multiboot_header();
    #[rustfmt::skip]
    body.extend_from_slice(&[
        0x66, 0xba, 0xf8, 0x03,       // mov dx, 0x3f8
        0xb0, b'o', 0xee,             // mov al, 'o'; out dx, al
        0xb0, b'k', 0xee,             // mov al, 'k'; out dx, al
        0xb0, b'\n', 0xee,            // mov al, '\n'; out dx, al
        0x8b, 0x73, 0x10,             // mov esi, [ebx + 16]  (cmdline)
        0xac,                         // 1: lodsb
        0x84, 0xc0,                   // test al, al
        0x74, 0x03,                   // jz 2f
        0xee,                         // out dx, al
        0xeb, 0xf8,                   // jmp 1b
        0xb0, 0x00, 0xe6, 0xf4,       // 2: mov al, 0; out 0xf4, al
        0xfa, 0xf4,                   // cli; hlt
    ]);
    let len = body.len() as u32;
    ElfSpec::multiboot()
        .with(|s| {
            s.entry = addr + 12;
            s.segments = vec![(0x1000, addr, addr, len, 0x2000)];
            s.body = body;
        })
        .build()
}

#[test]
fn multiboot_kernel_linked_at_0x8000_boots() {
    let kernel = temp_file("at-0x8000.elf", &echo_kernel(0x8000));
    let run = run_with_timeout(bt86(run_args(&kernel, &["--append", "hello"])), TIMEOUT).unwrap();
    let out = String::from_utf8_lossy(&run.serial);
    assert_eq!(run.status, Some(1), "{}\nstderr: {}", run.describe_status(), String::from_utf8_lossy(&run.stderr));
    assert_eq!(out, format!("ok\n{} hello", kernel.display()));
}

/// A 100 KiB command line reaches a Multiboot kernel whole: the protocol passes a pointer
/// to a NUL-terminated string, and bt86 puts it after the image, so only RAM limits it.
#[test]
fn long_append_reaches_multiboot_kernel_intact() {
    let kernel = temp_file("echo.elf", &echo_kernel(0x10_0000));
    let append: String = (0..100 * 1024).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let run = run_with_timeout(bt86(run_args(&kernel, &["--append", &append])), TIMEOUT).unwrap();
    let out = String::from_utf8_lossy(&run.serial);
    assert_eq!(run.status, Some(1), "{}\nstderr: {}", run.describe_status(), String::from_utf8_lossy(&run.stderr));
    assert!(out == format!("ok\n{} {append}", kernel.display()), "the command line arrived cut or changed ({} bytes of output)", out.len());
}

// ---------------------------------------------------------------------------------------
// clap's own errors: one line, a pointer to --help, status 2.

#[test]
fn option_errors_are_one_line() {
    let cases: &[&[&str]] = &[
        &[],
        &["run"],
        &["run", "--kernel"],
        &["run", "--kernel", "k.elf", "--user-exec", "bogus"],
        &["run", "--kernel", "k.elf", "--frobnicate"],
        &["run", "--kernl", "k.elf"],
        &["run", "--kernel", "k.elf", "--stats=yes"],
        &["frobnicate"],
        &["selftest"],
    ];
    for args in cases {
        let stderr = expect_usage_error(&format!("bt86 {}", args.join(" ")), args.iter().map(OsString::from).collect());
        assert!(stderr.starts_with("bt86: error: ") && stderr.contains("--help"), "bt86 {args:?}: {stderr}");
    }
}

#[test]
fn help_and_version_exit_0() {
    for args in [&["--help"][..], &["--version"], &["run", "--help"]] {
        let run = run_with_timeout(bt86(args.iter().map(OsString::from)), TIMEOUT).unwrap();
        assert_eq!(run.status, Some(0), "bt86 {args:?}: {}", run.describe_status());
        assert!(!run.serial.is_empty(), "bt86 {args:?} prints on stdout");
    }
}

#[test]
fn bad_disk_options() {
    let kernel = bt86_guests::kernel("alu");
    let disk = temp_file("disk.img", &[0; 4096]);
    let tiny = temp_file("tiny.img", &[0; 100]);
    let (d, tiny) = (disk.to_str().unwrap(), tiny.to_str().unwrap());
    let (missing, dir, option) = (format!("{d}.missing"), disk.parent().unwrap().to_str().unwrap(), format!("{d},cache=none"));
    let cases: [(&str, &[&str], &str); 6] = [
        ("missing disk image", &["--disk", &missing], "No such file"),
        ("a directory", &["--disk", dir], "cannot use disk image"),
        ("three disks", &["--disk", d, "--disk", d, "--disk", d], "at most 2"),
        ("unknown option", &["--disk", &option], "unknown option"),
        ("no file name", &["--disk", ",readonly"], "no file name"),
        ("smaller than a sector", &["--disk", tiny], "smaller than one"),
    ];
    for (what, args, says) in cases {
        let stderr = expect_usage_error(what, run_args(&kernel, args));
        assert!(stderr.contains(says), "{what}: {stderr}");
    }
}

/// `--perf-map` writes /tmp/perf-PID.map, one `START SIZE guest cplN 0xLINEAR` line per
/// fragment (perf's format), naming the kernel's own code by its linear addresses.
#[test]
fn perf_map_names_each_fragment_by_its_guest_address() {
    let k = bt86_guests::kernels().into_iter().find(|k| k.name == "hello").expect("the hello kernel");
    let mut cmd = bt86_guests::bt86_command(std::path::Path::new(env!("CARGO_BIN_EXE_bt86")), &k);
    cmd.arg("--perf-map").stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("bt86 starts");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            panic!("hello did not end within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let path = format!("/tmp/perf-{}.map", child.id());
    let map = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let _ = std::fs::remove_file(&path);
    let lines: Vec<&str> = map.lines().collect();
    assert!(lines.len() > 10, "only {} fragments named", lines.len());
    let mut kernel_code = 0;
    for l in &lines {
        let f: Vec<&str> = l.split(' ').collect();
        assert_eq!(f.len(), 5, "{l:?}");
        assert!(u64::from_str_radix(f[0], 16).is_ok() && u64::from_str_radix(f[1], 16).is_ok_and(|n| n > 0), "{l:?}");
        assert!(f[2] == "guest" && (f[3] == "cpl0" || f[3] == "cpl3"), "{l:?}");
        let linear = u32::from_str_radix(f[4].trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("{l:?}"));
        // (Multiboot kernels load at 1 MiB.)
        kernel_code += (f[3] == "cpl0" && (0x10_0000..0x80_0000).contains(&linear)) as usize;
    }
    assert!(kernel_code > 10, "the kernel's code is named by its addresses: {map}");
}
