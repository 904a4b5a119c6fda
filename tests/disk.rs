//! The ATA disk's promises that the QEMU oracle cannot check: a guest's completed writes
//! are in the image even when bt86 is killed mid-write (SIGKILL) or terminated (SIGTERM,
//! which bt86 handles when disks are attached: it syncs them and dies of the signal), and
//! a read-only disk (`--disk FILE,readonly`, which QEMU refuses for IDE) aborts the
//! guest's writes and keeps the image unchanged. The guest is the `ata` test kernel with
//! `writeloop` (it writes slave sector after sector, each filled with its number plus
//! one, and prints "written N" after each) or `readonly` on its command line.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bt86_guests::{add_disks, bt86_command, kernels, make_disks, run_with_timeout};

fn ata_kernel() -> bt86_guests::Kernel {
    kernels().into_iter().find(|k| k.name == "ata").expect("the ata kernel")
}

fn temp_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("disk-{name}-{}", std::process::id()))
}

/// Starts the write loop on fresh images; returns the child and the images.
fn start_write_loop(dir: &Path, wrapper: Option<&[&str]>) -> (Child, Vec<PathBuf>) {
    let k = ata_kernel();
    let images = make_disks(&k, dir, "img").unwrap();
    let plain = bt86_command(&PathBuf::from(env!("CARGO_BIN_EXE_bt86")), &k);
    let mut cmd = match wrapper {
        Some(w) => {
            let mut c = Command::new(w[0]);
            c.args(&w[1..]).arg(plain.get_program()).args(plain.get_args());
            c
        }
        None => plain,
    };
    add_disks(&mut cmd, &images, false);
    cmd.args(["--append", "writeloop", "--user-exec", "translate"]);
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("cannot run bt86");
    (child, images)
}

/// Reads "written N" lines until `n` of them came, then sends `signal` to `pid`, then
/// reads to the end; the sectors reported written.
fn written_until_signal(child: &mut Child, n: usize, pid: i32, signal: i32) -> Vec<u64> {
    // A watchdog: a guest that stops printing must not hang the test.
    let (done, watch) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if watch.recv_timeout(Duration::from_secs(60)).is_err() {
            // SAFETY: kill(2) on the child this test started, which has not been reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut written = Vec::new();
    let mut signalled = false;
    let mut line = String::new();
    // Only whole lines count: the last one may be cut by the signal.
    while out.read_line(&mut line).is_ok_and(|n| n > 0) && line.ends_with('\n') {
        if let Some(s) = line.strip_prefix("written ") {
            written.push(s.trim().parse().unwrap());
        }
        line.clear();
        if written.len() == n && !signalled {
            // SAFETY: kill(2) on the child this test started.
            assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
            signalled = true;
        }
    }
    let _ = done.send(());
    watchdog.join().unwrap();
    assert!(signalled, "the guest stopped writing after {} sectors", written.len());
    written
}

/// Every sector the guest reported written holds its number plus one in each word.
fn check_written(slave: &Path, written: &[u64]) {
    let image = std::fs::read(slave).unwrap();
    for &s in written {
        let want = ((s + 1) as u16).to_le_bytes();
        let sector = &image[s as usize * 512..(s as usize + 1) * 512];
        assert!(sector.chunks(2).all(|w| w == want), "sector {s} was reported written but the image does not hold it");
    }
}

#[test]
fn sigkill_mid_write_keeps_every_completed_write() {
    let dir = temp_dir("kill");
    let (mut child, images) = start_write_loop(&dir, None);
    let pid = child.id() as i32;
    let written = written_until_signal(&mut child, 300, pid, libc::SIGKILL);
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert!(written.len() >= 300);
    check_written(&images[1], &written);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// With disks attached bt86 handles SIGTERM even without a terminal: it syncs the images
/// (seen with strace when it is installed) and dies of the signal.
#[test]
fn sigterm_syncs_the_disks_and_ends_bt86() {
    let dir = temp_dir("term");
    let strace = ["/usr/bin/strace", "-f", "-qq", "-e", "trace=fdatasync", "-o"];
    let log = dir.join("strace.log");
    let use_strace = Path::new(strace[0]).is_file();
    std::fs::create_dir_all(&dir).unwrap();
    let wrapper: Vec<&str> = strace.iter().copied().chain([log.to_str().unwrap()]).collect();
    let (mut child, images) = start_write_loop(&dir, use_strace.then_some(&wrapper[..]));
    // Under strace the child is strace: bt86 is its child, found through /proc.
    let pid = if use_strace { wait_for_child_of(child.id()) } else { child.id() as i32 };
    let mut stderr = child.stderr.take().unwrap();
    let written = written_until_signal(&mut child, 100, pid, libc::SIGTERM);
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut err).unwrap();
    if !use_strace {
        assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?} {err}");
    }
    check_written(&images[1], &written);
    if use_strace {
        let log = std::fs::read_to_string(&log).unwrap();
        let syncs = log.lines().filter(|l| l.contains("fdatasync(")).count();
        assert!(syncs >= 2, "both images synced on SIGTERM:\n{log}");
        assert!(log.contains("killed by SIGTERM"), "bt86 dies of the signal:\n{log}");
    } else {
        eprintln!("strace is not installed: the fdatasync calls are not checked");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The pid of `parent`'s child bt86 (under strace, which also forks short-lived children
/// of its own to probe ptrace).
fn wait_for_child_of(parent: u32) -> i32 {
    for _ in 0..500 {
        let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children")).unwrap_or_default();
        let bt86 = children
            .split_whitespace()
            .find(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == "bt86"));
        if let Some(pid) = bt86 {
            return pid.parse().unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("strace started no bt86");
}

#[test]
fn read_only_disk_refuses_writes() {
    let dir = temp_dir("ro");
    let k = ata_kernel();
    let images = make_disks(&k, &dir, "img").unwrap();
    let before = std::fs::read(&images[0]).unwrap();
    let mut cmd = bt86_command(&PathBuf::from(env!("CARGO_BIN_EXE_bt86")), &k);
    cmd.arg("--disk").arg(format!("{},readonly", images[0].display())).arg("--disk").arg(&images[1]);
    cmd.args(["--append", "readonly"]);
    let run = run_with_timeout(cmd, Duration::from_secs(60)).unwrap();
    let out = String::from_utf8_lossy(&run.serial);
    assert_eq!(run.status, Some(1), "{out}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(out.lines().filter(|l| l.starts_with("ok ")).count() >= 4 && !out.contains("not ok"), "{out}");
    assert_eq!(std::fs::read(&images[0]).unwrap(), before, "the read-only image is unchanged");
    std::fs::remove_dir_all(&dir).unwrap();
}
