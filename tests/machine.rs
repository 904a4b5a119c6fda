//! What bt86 does that the QEMU oracle cannot check, because QEMU does it differently
//! from a PC or because it is bt86's own behaviour:
//!
//! - the `bt86-only` guest kernels (unbacked memory reads all ones on a PC, 0 in QEMU) must
//!   pass all their checks under bt86 and end normally;
//! - a triple fault resets the machine with one line on stderr, again and again for a
//!   kernel that triple-faults at every boot; with `--no-reboot` it ends the run with status
//!   0, as QEMU's `-no-reboot` does, and a dump of the guest's state on stderr;
//! - direct execution runs user code natively and gets its system calls through the
//!   seccomp filter, which lets all of bt86's own system calls pass.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use bt86_guests::{bt86_command, kernels, log_tail, qemu_command, qemu_path, run_with_input, run_with_timeout};

const TIMEOUT: Duration = Duration::from_secs(60);

fn bt86() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bt86"))
}

#[test]
fn bt86_only_kernels_pass() {
    let only: Vec<_> = kernels().into_iter().filter(|k| k.bt86_only).collect();
    assert!(!only.is_empty(), "no bt86-only kernels were built");
    for k in only {
        let run = run_with_timeout(bt86_command(&bt86(), &k), TIMEOUT).expect("cannot run bt86");
        let out = String::from_utf8_lossy(&run.serial);
        let stderr = String::from_utf8_lossy(&run.stderr);
        let oks = out.lines().filter(|l| l.starts_with("ok ")).count();
        assert!(
            run.status == Some(k.exit_status) && oks > 0 && !out.lines().any(|l| l.starts_with("not ok")),
            "{}: {}\n{out}\n{stderr}",
            k.name,
            run.describe_status()
        );
        let plan = out.lines().find_map(|l| l.strip_prefix("1..")).and_then(|n| n.trim().parse::<usize>().ok());
        assert_eq!(plan, Some(oks), "{}: every planned check must have run\n{out}", k.name);
    }
}

/// The `triple` kernel triple-faults on its first boot and exits through port 0xf4 on
/// the second (it leaves a marker in RAM, which a reset keeps): bt86 must reset the
/// machine, as QEMU does (the oracle compares the two), and say so in one line.
#[test]
fn triple_fault_resets_the_machine() {
    let k = kernels().into_iter().find(|k| k.name == "triple").expect("the triple kernel");
    let mut cmd: Command = bt86_command(&bt86(), &k);
    cmd.env_remove("RUST_LOG");
    let run = run_with_timeout(cmd, TIMEOUT).expect("cannot run bt86");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status, Some(k.exit_status), "the second boot exits through port 0xf4\n{stderr}");
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        ["bt86: triple fault (the guest could not deliver #GP(0x42) even as a double fault): the machine resets"],
        "one line per reset, no dump"
    );
}

/// With `--no-reboot`, a triple fault ends the run with status 0 and the same serial
/// output as QEMU with `-no-reboot`, and bt86 also prints the reason and the guest state.
#[test]
fn triple_fault_with_no_reboot_ends_with_a_dump() {
    let k = kernels().into_iter().find(|k| k.name == "triple").expect("the triple kernel");
    let mut cmd: Command = bt86_command(&bt86(), &k);
    cmd.arg("--no-reboot").env_remove("RUST_LOG");
    let run = run_with_timeout(cmd, TIMEOUT).expect("cannot run bt86");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status, Some(0), "a triple fault with --no-reboot ends bt86 with status 0\n{stderr}");
    assert!(stderr.starts_with("bt86: triple fault: the guest could not deliver #GP(0x42) even as a double fault"), "{stderr}");
    for want in ["EAX=", "EIP=", "CS=0008", "GDTR base=", "IDTR base=", "CR0=", "bytes at CS:EIP:", "instruction:"] {
        assert!(stderr.contains(want), "the dump lacks {want:?}:\n{stderr}");
    }
    assert!(!stderr.contains("panicked"), "no Rust panic:\n{stderr}");
    let qemu = qemu_path().expect("qemu-system-i386 not found: install the Debian package qemu-system-x86");
    let mut q = qemu_command(&qemu, &k);
    q.arg("-no-reboot");
    let q = run_with_timeout(q, TIMEOUT).expect("cannot run QEMU");
    assert_eq!((q.status, String::from_utf8_lossy(&q.serial)), (run.status, String::from_utf8_lossy(&run.serial)), "QEMU -no-reboot");
}

/// A kernel that triple-faults at once at every boot (`ud2` with no IDT) is reset again
/// and again, as under QEMU without `-no-reboot`, each reset a line on stderr, until it is
/// killed; it must not stop, crash or go quiet.
#[test]
fn a_kernel_that_always_triple_faults_reboots_until_killed() {
    let k = temp_kernel("ud2.elf", &multiboot_elf(&[0x0f, 0x0b], None));
    let mut cmd = Command::new(bt86());
    cmd.arg("run").arg("--kernel").arg(&k).env_remove("RUST_LOG");
    let run = run_with_timeout(cmd, Duration::from_secs(3)).expect("cannot run bt86");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.timed_out, "it reboots until killed: {}\n{}", run.describe_status(), log_tail("stderr", &stderr, 5));
    // The kill may cut the last line short.
    let stderr = &stderr[..stderr.rfind('\n').map_or(0, |i| i + 1)];
    let resets = stderr.lines().filter(|l| l.starts_with("bt86: triple fault (") && l.ends_with("the machine resets")).count();
    let others: Vec<_> = stderr.lines().filter(|l| !l.ends_with("the machine resets")).collect();
    assert!(resets >= 3 && others.is_empty(), "{resets} resets; other lines: {others:?}");
}

/// Direct execution really runs user code natively, and its system calls come back
/// through the seccomp filter (SIGSYS), while every system call of bt86's own passes the
/// filter: the run must end normally with the guest's checks passing.
#[test]
fn user_code_runs_natively_and_its_system_calls_are_trapped() {
    let k = kernels().into_iter().find(|k| k.name == "userprocs").expect("the userprocs kernel");
    let mut cmd: Command = bt86_command(&bt86(), &k);
    cmd.args(["--user-exec", "direct", "--stats"]);
    let run = run_with_timeout(cmd, TIMEOUT).expect("cannot run bt86");
    let out = String::from_utf8_lossy(&run.serial);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status == Some(k.exit_status) && !out.contains("not ok"), "{}\n{out}\n{stderr}", run.describe_status());
    let count = |label: &str| -> u64 {
        stderr.lines().find_map(|l| l.trim().strip_prefix(label).and_then(|r| r.split_whitespace().next()?.parse().ok())).unwrap_or(0)
    };
    assert!(count("direct execution:") > 0, "no native slices:\n{stderr}");
    assert!(count("int 0x80") > 0, "no int 0x80 came back through SIGSYS:\n{stderr}");
}

/// A Multiboot ELF32 image: one PT_LOAD at 1 MiB holding the Multiboot header followed
/// by `code`; the entry point is `entry`, or the first byte of `code`.
fn multiboot_elf(code: &[u8], entry: Option<u32>) -> Vec<u8> {
    let magic: u32 = 0x1bad_b002;
    let mut body = Vec::with_capacity(code.len() + 12);
    for v in [magic, 3, 0u32.wrapping_sub(magic + 3)] {
        body.extend_from_slice(&v.to_le_bytes());
    }
    body.extend_from_slice(code);
    let mut f = vec![0u8; 0x1000];
    f[..7].copy_from_slice(&[0x7f, b'E', b'L', b'F', 1, 1, 1]);
    let put16 = |f: &mut Vec<u8>, at: usize, v: u16| f[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put32 = |f: &mut Vec<u8>, at: usize, v: u32| f[at..at + 4].copy_from_slice(&v.to_le_bytes());
    put16(&mut f, 16, 2); // ET_EXEC
    put16(&mut f, 18, 3); // EM_386
    put32(&mut f, 20, 1);
    put32(&mut f, 24, entry.unwrap_or(0x10_0000 + 12));
    put32(&mut f, 28, 52); // e_phoff
    put16(&mut f, 40, 52); // e_ehsize
    put16(&mut f, 42, 32); // e_phentsize
    put16(&mut f, 44, 1); // e_phnum
    for (i, v) in [1, 0x1000, 0x10_0000, 0x10_0000, body.len() as u32, body.len() as u32, 7, 0x1000].into_iter().enumerate() {
        put32(&mut f, 52 + 4 * i, v); // PT_LOAD, offset, vaddr, paddr, filesz, memsz, RWX, align
    }
    f.extend_from_slice(&body);
    f
}

fn temp_kernel(name: &str, image: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("machine-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, image).unwrap();
    path
}

/// A count from the `--stats` report: the number after `label`'s last `/`, or after it.
fn stat(stderr: &str, label: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix(label)?.rsplit('/').next()?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in the statistics:\n{stderr}"))
}

/// A kernel that is a 4 MiB `nop` sled ending in `out 0xf4` translates to far more code
/// than a 16 KiB cache holds: the cache is flushed hundreds of times, and the run must
/// end as under QEMU (exit status (0x2a << 1) | 1), not with an internal error.
#[test]
fn nop_sled_overflows_a_small_cache_many_times() {
    let mut code = vec![0x90; 4 << 20];
    code.extend_from_slice(&[0xb0, 0x2a, 0xe6, 0xf4]); // mov al, 0x2a; out 0xf4, al
    let k = temp_kernel("nop-sled.elf", &multiboot_elf(&code, None));
    let mut cmd = Command::new(bt86());
    cmd.arg("run").arg("--kernel").arg(&k).args(["--tc-size", "16K", "--stats"]);
    let run = run_with_timeout(cmd, TIMEOUT).expect("cannot run bt86");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status, Some(85), "{}\n{stderr}", run.describe_status());
    assert!(stat(&stderr, "invalidations / flushes") >= 100, "the cache must have been flushed many times:\n{stderr}");
}

/// A kernel whose entry point is in zeroed RAM: `00 00` is `add [eax], al`, so the CPU
/// runs through the rest of RAM (EAX = 0x2BADB002, beyond RAM: the writes go nowhere).
/// QEMU does that too and then keeps executing unassigned memory, which it reads as 0,
/// until the test's timeout; on a PC memory beyond RAM reads as all ones (`ff ff`, an
/// invalid opcode with no IDT), so bt86 stops there with a triple fault (`--no-reboot`) — after running
/// all of it through a cache far too small for it, without an internal error.
#[test]
fn entry_in_zeroed_ram_runs_to_the_end_of_ram() {
    // 64 KiB of zeros below the end of a 2 MiB RAM.
    let k = temp_kernel("zero-entry.elf", &multiboot_elf(&[0xfa, 0xf4], Some(0x1f_0000)));
    let mut cmd = Command::new(bt86());
    cmd.arg("run").arg("--kernel").arg(&k).args(["--mem", "2M", "--tc-size", "16K", "--stats", "--no-reboot"]);
    cmd.env_remove("RUST_LOG");
    let run = run_with_timeout(cmd, TIMEOUT).expect("cannot run bt86");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status, Some(0), "{}\n{stderr}", run.describe_status());
    assert!(stderr.contains("triple fault") && stderr.contains("EIP=00200000"), "it must stop at the end of RAM:\n{stderr}");
    assert!(stat(&stderr, "invalidations / flushes") >= 10, "the cache must have been flushed many times:\n{stderr}");
}

/// The `serial_in` kernel with "expect=N": N bytes piped into bt86's standard input.
fn serial_in_command(n: usize) -> Command {
    let k = kernels().into_iter().find(|k| k.name == "serial_in").expect("the serial_in kernel");
    let mut cmd = Command::new(bt86());
    cmd.args(["run", "--kernel"]).arg(&k.path).args(["--append", &format!("expect={n}")]);
    cmd
}

/// Console input from a pipe reaches the guest whole and in order, even when it is all
/// there before the guest listens and far more than the UART's FIFO holds.
#[test]
fn piped_console_input_arrives_in_order() {
    const N: usize = 64 * 1024;
    let input: Vec<u8> = (0..N).map(|i| (i * 7 + 3) as u8).collect();
    let run = run_with_input(serial_in_command(N), Some(input), TIMEOUT).expect("cannot run bt86");
    let serial = String::from_utf8_lossy(&run.serial);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status == Some(1) && !serial.contains("not ok") && serial.contains("ok 2"),
        "{}\n{serial}\n{stderr}",
        run.describe_status()
    );
}

/// With standard output closed, the guest's output stops with one line on stderr and the
/// guest runs to its end.
#[test]
fn closed_stdout_gives_one_message() {
    use std::process::Stdio;
    let k = kernels().into_iter().find(|k| k.name == "hello").expect("the hello kernel");
    let mut child = bt86_command(&bt86(), &k).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("bt86");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("bt86 output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(out.status.code(), Some(k.exit_status), "{stderr}");
    assert_eq!(lines.len(), 1, "one line on stderr:\n{stderr}");
    assert!(lines[0].contains("serial output stops"), "{stderr}");
}
