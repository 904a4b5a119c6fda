//! Command-line errors of `bt86 run`: each bad input must end with exit status 2 and a
//! single line on stderr (no panic message, no backtrace), and nothing on stdout.
//!
//! The bad kernels are written by the test into Cargo's per-target temporary directory.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

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

/// Runs bt86 with `args` and checks that it fails as a usage error should.
fn expect_usage_error(what: &str, args: Vec<OsString>) {
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
