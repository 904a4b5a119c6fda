//! The bt86 guest test kernels and the helpers that find and run them.
//!
//! `build.rs` builds every kernel in `guests/` (32-bit Multiboot ELF images, loaded at
//! 1 MiB) from source with the system's gcc -m32 and ld. Each kernel prints TAP lines on
//! COM1 and ends by writing to the isa-debug-exit port 0xf4; a kernel that ran all of its
//! checks writes 0, so the host exit status is 1 (failed checks are "not ok" lines, not a
//! different status). [`kernels`] lists them with what the harness must expect of each;
//! [`run_qemu`] runs one under QEMU, the oracle, whose serial output and exit status bt86
//! must reproduce byte for byte; [`bt86_command`] builds the matching bt86 command line.
//! The benchmarks (`guests/bench/`, run by hand with the `bench` program) are not test
//! kernels: [`bench`] finds them. [`linux`] fetches Debian's i386 kernel and busybox and
//! packs initramfs images ([`cpio`]) for the Linux guests.
#![deny(missing_docs)]

pub mod bench;
pub mod cpio;
pub mod linux;

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

include!(concat!(env!("OUT_DIR"), "/kernels.rs"));

/// A built guest test kernel and what the harness expects of it.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// Name: the stem of its source file in `tests/guests/`.
    pub name: &'static str,
    /// The Multiboot ELF image.
    pub path: PathBuf,
    /// The host exit status it ends with under QEMU: 1 normally (it wrote 0 to port 0xf4),
    /// 3 for the triple-fault kernel (it wrote 1 after the reset).
    pub exit_status: i32,
    /// The command line it wants (`bt86 --append` / `qemu -append`), if any.
    pub append: Option<&'static str>,
    /// The CPU model QEMU must emulate for it (`qemu -cpu`), if not QEMU's default: for
    /// features bt86 has and QEMU's default CPU lacks (NX).
    pub qemu_cpu: Option<&'static str>,
    /// An environment variable, `NAME=VALUE`, bt86 must run it with (`bt86-env:` in its
    /// source), if any.
    pub env: Option<&'static str>,
    /// Checked under bt86 only, not against QEMU (`bt86-only:` in its source).
    pub bt86_only: bool,
    /// The sizes in KiB of the disk images it wants (`bt86-disk:`): the primary channel's
    /// master, then its slave.
    pub disks_kib: &'static [u64],
    /// More QEMU options (`bt86-qemu-args:` in its source), e.g. `-vga std`.
    pub qemu_args: Option<&'static str>,
}

/// Every guest kernel, sorted by name.
pub fn kernels() -> Vec<Kernel> {
    KERNELS
        .iter()
        .map(|&(name, path, exit_status, append, qemu_cpu, env, bt86_only, qemu_args, disks_kib)| Kernel {
            name,
            path: PathBuf::from(path),
            exit_status,
            append,
            qemu_cpu,
            env,
            bt86_only,
            disks_kib,
            qemu_args,
        })
        .collect()
}

/// The image of the kernel called `name`; panics if there is none.
pub fn kernel(name: &str) -> PathBuf {
    kernels().into_iter().find(|k| k.name == name).unwrap_or_else(|| panic!("no guest kernel called {name:?}")).path
}

/// The options QEMU runs every kernel with (then `-kernel K` and, if wanted, `-append S`
/// and `-cpu C`).
/// No `-m`: QEMU's default RAM size for the pc machine, 128 MiB, is bt86's default too.
pub const QEMU_ARGS: &[&str] =
    &["-accel", "tcg", "-nodefaults", "-display", "none", "-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=4"];

/// `qemu-system-i386`: `$BT86_QEMU` if set, else the first one on `$PATH`.
pub fn qemu_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BT86_QEMU") {
        return Some(PathBuf::from(p));
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join("qemu-system-i386")).find(|p| p.is_file())
}

/// The QEMU command line for `k` (stdin/stdout are left to the caller).
pub fn qemu_command(qemu: &Path, k: &Kernel) -> Command {
    let mut cmd = Command::new(qemu);
    cmd.args(QEMU_ARGS).arg("-kernel").arg(&k.path);
    if let Some(append) = k.append {
        cmd.arg("-append").arg(append);
    }
    if let Some(cpu) = k.qemu_cpu {
        cmd.arg("-cpu").arg(cpu);
    }
    cmd.args(k.qemu_args.unwrap_or_default().split_whitespace());
    cmd
}

/// The bt86 command line for `k`: `bt86 run --kernel K [--append S]`, with the kernel's
/// environment variable if it has one.
pub fn bt86_command(bt86: &Path, k: &Kernel) -> Command {
    let mut cmd = Command::new(bt86);
    cmd.arg("run").arg("--kernel").arg(&k.path);
    if let Some(append) = k.append {
        cmd.arg("--append").arg(append);
    }
    if let Some((name, value)) = k.env.and_then(|e| e.split_once('=')) {
        cmd.env(name, value);
    }
    cmd
}

/// Byte `offset` of disk `unit`'s image as the harness makes it (`tests/guests/ata.c`'s
/// `disk_byte`).
pub fn disk_byte(unit: usize, offset: u64) -> u8 {
    let (s, i) = (offset / 512, offset % 512);
    (s * 7 + i * 13 + unit as u64 * 0x5b + (s >> 8) * 3) as u8
}

/// Makes `k`'s disk images afresh in `dir`, as `{prefix}-{unit}.img`, filled by
/// [`disk_byte`]; their paths, master first.
pub fn make_disks(k: &Kernel, dir: &Path, prefix: &str) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut paths = Vec::new();
    for (unit, &kib) in k.disks_kib.iter().enumerate() {
        let path = dir.join(format!("{prefix}-{unit}.img"));
        std::fs::write(&path, (0..kib * 1024).map(|o| disk_byte(unit, o)).collect::<Vec<u8>>())?;
        paths.push(path);
    }
    Ok(paths)
}

/// Adds disk images to a command line: QEMU's `-drive file=F,format=raw,if=ide,index=N`
/// or bt86's `--disk F`.
pub fn add_disks(cmd: &mut Command, images: &[PathBuf], qemu: bool) {
    for (unit, image) in images.iter().enumerate() {
        if qemu {
            cmd.arg("-drive").arg(format!("file={},format=raw,if=ide,index={unit}", image.display()));
        } else {
            cmd.arg("--disk").arg(image);
        }
    }
}

/// What a finished (or timed-out) run produced.
#[derive(Clone, Debug)]
pub struct Run {
    /// Standard output: the guest's serial port (COM1).
    pub serial: Vec<u8>,
    /// Standard error: the monitor's own diagnostics.
    pub stderr: Vec<u8>,
    /// The exit status, or `None` if the process was killed by a signal (or by the timeout).
    pub status: Option<i32>,
    /// True if the run did not end within the timeout and was killed.
    pub timed_out: bool,
}

impl Run {
    /// "exit status N", "killed by signal S" or "timed out", for reports.
    pub fn describe_status(&self) -> String {
        match (self.timed_out, self.status) {
            (true, _) => "timed out (killed)".to_string(),
            (false, Some(s)) => format!("exit status {s}"),
            (false, None) => "killed by a signal".to_string(),
        }
    }
}

/// Runs `cmd` with stdin = /dev/null, collecting stdout and stderr, and kills it after
/// `timeout`.
pub fn run_with_timeout(cmd: Command, timeout: Duration) -> io::Result<Run> {
    run_with_input(cmd, None, timeout)
}

/// Like [`run_with_timeout`], with `input` (if any) written to the command's standard
/// input from a thread of its own, which then closes it (what the guest never reads may
/// make the write fail: the caller's checks decide).
pub fn run_with_input(mut cmd: Command, input: Option<Vec<u8>>, timeout: Duration) -> io::Result<Run> {
    let stdin = if input.is_some() { Stdio::piped() } else { Stdio::null() };
    let mut child = cmd.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    if let (Some(data), Some(mut pipe)) = (input, child.stdin.take()) {
        thread::spawn(move || {
            use std::io::Write;
            let _ = pipe.write_all(&data);
        });
    }
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait()?;
        }
        thread::sleep(Duration::from_millis(5));
    };
    Ok(Run {
        serial: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
        status: if timed_out { None } else { status.code() },
        timed_out,
    })
}

/// The last `n` lines of `text` (a run's output called `what`), indented, for failure
/// reports.
pub fn log_tail(what: &str, text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return format!("({what}: empty)\n");
    }
    let from = lines.len().saturating_sub(n);
    let mut r = format!("{what} (last {} of {} lines):\n", lines.len() - from, lines.len());
    for l in &lines[from..] {
        r.push_str(&format!("    {}\n", l.trim_end_matches('\r')));
    }
    r
}

/// Runs `k` under QEMU (see [`QEMU_ARGS`]) and returns its serial output and exit status.
/// Fails if QEMU is not installed.
pub fn run_qemu(k: &Kernel, timeout: Duration) -> io::Result<Run> {
    let qemu = qemu_path()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "qemu-system-i386 not found: install the Debian package qemu-system-x86"))?;
    run_with_timeout(qemu_command(&qemu, k), timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
    }
    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// Every kernel is an ELF32 i386 image with a Multiboot header in its first 8 KiB, and
    /// no page holds both code and writable data.
    #[test]
    fn kernels_are_well_formed() {
        let ks = kernels();
        assert!(ks.len() >= 16, "only {} kernels", ks.len());
        for k in &ks {
            let b = std::fs::read(&k.path).unwrap_or_else(|e| panic!("{}: {e}", k.path.display()));
            assert_eq!(&b[..7], &[0x7f, b'E', b'L', b'F', 1, 1, 1], "{}: ELF32 LSB", k.name);
            assert_eq!(u16_at(&b, 18), 3, "{}: EM_386", k.name);
            let mb = (0..8192.min(b.len() - 12))
                .step_by(4)
                .find(|&i| u32_at(&b, i) == 0x1bad_b002)
                .unwrap_or_else(|| panic!("{}: no Multiboot header in the first 8 KiB", k.name));
            let sum = u32_at(&b, mb).wrapping_add(u32_at(&b, mb + 4)).wrapping_add(u32_at(&b, mb + 8));
            assert_eq!(sum, 0, "{}: Multiboot checksum", k.name);
            let (phoff, phnum) = (u32_at(&b, 28) as usize, u16_at(&b, 44) as usize);
            let mut pages: Vec<(u32, u32, u32)> = Vec::new(); // (first page, last page, flags)
            for i in 0..phnum {
                let ph = phoff + 32 * i;
                if u32_at(&b, ph) != 1 || u32_at(&b, ph + 20) == 0 {
                    continue;
                }
                let (vaddr, memsz, flags) = (u32_at(&b, ph + 8), u32_at(&b, ph + 20), u32_at(&b, ph + 24));
                assert!(vaddr >= 0x10_0000, "{}: segment below 1 MiB", k.name);
                pages.push((vaddr >> 12, (vaddr + memsz - 1) >> 12, flags));
            }
            for a in &pages {
                for c in &pages {
                    let shared = a.0 <= c.1 && c.0 <= a.1;
                    let mixed = (a.2 & 1 != 0) && (c.2 & 2 != 0);
                    assert!(!(shared && mixed), "{}: code and writable data share a page", k.name);
                }
            }
        }
    }

    #[test]
    fn kernel_lookup() {
        assert!(kernel("alu").is_file());
        let triple = kernels().into_iter().find(|k| k.name == "triple").unwrap();
        assert_eq!(triple.exit_status, 3);
        let mb = kernels().into_iter().find(|k| k.name == "multiboot").unwrap();
        assert!(mb.append.is_some());
        let pae = kernels().into_iter().find(|k| k.name == "paging_pae").unwrap();
        assert_eq!(pae.qemu_cpu, Some("qemu32,+nx"));
    }
}
