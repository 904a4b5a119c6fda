//! Linux guests: Debian's i386 kernel and initramfs images to boot it with. The kernel
//! (package `linux-image-686:i386`, which depends on the current `linux-image-*-686`) and
//! busybox (`busybox-static:i386`) are fetched with `apt-get download`, unpacked with
//! `dpkg-deb` and kept in `$XDG_CACHE_HOME/bt86/linux` (else `~/.cache/bt86/linux`):
//! the first run downloads (apt shows its progress on stderr), every later one finds the
//! files there and asks apt nothing. Delete that folder to fetch the current versions.
//!
//! Two initramfs images: the test workload's (`tests/linux/workload.c` as `/init`, built
//! and packed by the build script, see [`test_initramfs`]) and a busybox shell's
//! ([`shell_initramfs`], packed here because it holds the downloaded busybox). Both are
//! uncompressed newc archives (see [`crate::cpio`]).

use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cpio;

include!(concat!(env!("OUT_DIR"), "/linux.rs"));

/// The Debian metapackage whose dependency is the current 686 kernel.
pub const KERNEL_METAPACKAGE: &str = "linux-image-686:i386";
/// The Debian package holding a statically linked busybox.
pub const BUSYBOX_PACKAGE: &str = "busybox-static:i386";
/// The command line Linux guests boot with: the console on COM1 (bt86's stdout, QEMU's
/// `-serial stdio`), and a panic reboots at once (which ends QEMU with `-no-reboot` and bt86
/// with `--no-reboot`) instead of hanging until a timeout.
pub const APPEND: &str = "console=ttyS0 panic=-1";
/// The options QEMU boots a Linux guest with (then `-kernel`, `-initrd`, `-append`): like
/// [`crate::QEMU_ARGS`] without the debug-exit device (Linux powers off through ACPI,
/// which ends QEMU with status 0), and a reset ends QEMU instead of rebooting.
pub const QEMU_LINUX_ARGS: &[&str] = &["-accel", "tcg", "-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot", "-m", "128"];

/// What to do when apt cannot fetch, in one line.
const APT_HINT: &str = "run `dpkg --add-architecture i386 && apt-get update` as root, or pass --kernel/--initrd of your own";

/// The folder the downloaded files are kept in (created if missing).
pub fn cache_dir() -> Result<PathBuf, String> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".cache"),
            None => return Err("neither XDG_CACHE_HOME nor HOME is set: no place for the Linux download cache".into()),
        },
    };
    let dir = base.join("bt86").join("linux");
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create the cache folder {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Debian's i386 kernel (a bzImage), downloaded on first use.
pub fn debian_kernel() -> Result<PathBuf, String> {
    cached("vmlinuz", "./boot/vmlinuz-*", || {
        let package = kernel_package()?;
        Ok((package, Box::new(find_kernel_image) as Pick))
    })
}

/// Debian's static i386 busybox, downloaded on first use.
pub fn debian_busybox() -> Result<PathBuf, String> {
    cached("busybox", "./bin/busybox", || Ok((BUSYBOX_PACKAGE.to_string(), Box::new(|root: &Path| Ok(root.join("bin/busybox"))) as Pick)))
}

/// The test workload's initramfs, built by the build script.
pub fn test_initramfs() -> Result<PathBuf, String> {
    LINUX_TEST_INITRAMFS.map(PathBuf::from).map_err(str::to_string)
}

/// The `/init` of the shell initramfs: busybox's applets as links, the usual file
/// systems, a banner, a shell on the console (`cttyhack` gives it the console as its
/// controlling terminal, so ^C works), and power-off when the shell exits.
const SHELL_INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
echo
echo "bt86: Linux $(uname -r) $(uname -m) with $(busybox | head -n 1 | cut -d ' ' -f 1-2)"
echo "bt86: exit the shell (or run poweroff -f) to end the machine"
setsid cttyhack sh
poweroff -f
"#;

/// An initramfs with Debian's busybox and [`SHELL_INIT`]; written into the cache folder
/// (again each time: it takes milliseconds, and so follows any change of the script).
pub fn shell_initramfs() -> Result<PathBuf, String> {
    let busybox = debian_busybox()?;
    let program = fs::read(&busybox).map_err(|e| format!("reading {}: {e}", busybox.display()))?;
    let mut a = cpio::Archive::new();
    for d in ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "root", "etc"] {
        a.dir(d, 0o755);
    }
    a.char_dev("dev/console", 0o600, 5, 1).file("bin/busybox", 0o755, &program).symlink("bin/sh", "busybox").file(
        "init",
        0o755,
        SHELL_INIT.as_bytes(),
    );
    let path = cache_dir()?.join("initramfs-shell.cpio");
    write_atomically(&path, &a.finish())?;
    Ok(path)
}

/// `qemu-system-i386` booting `kernel` with `initrd` and the command line `append`.
pub fn qemu_command(qemu: &Path, kernel: &Path, initrd: &Path, append: &str) -> Command {
    let mut cmd = Command::new(qemu);
    cmd.args(QEMU_LINUX_ARGS).arg("-kernel").arg(kernel).arg("-initrd").arg(initrd).arg("-append").arg(append);
    cmd
}

/// `bt86 run` booting `kernel` with `initrd` and the command line `append`.
pub fn bt86_command(bt86: &Path, kernel: &Path, initrd: &Path, append: &str) -> Command {
    let mut cmd = Command::new(bt86);
    cmd.arg("run").arg("--kernel").arg(kernel).arg("--initrd").arg(initrd).arg("--append").arg(append);
    cmd
}

/// Picks the file out of an unpacked package.
type Pick = Box<dyn FnOnce(&Path) -> Result<PathBuf, String>>;

/// `cache_dir()/name` if it is there; else asks `what` for the package and the file in
/// it, downloads the package, unpacks its files matching `member` and keeps that file
/// under `name`.
fn cached(name: &str, member: &str, what: impl FnOnce() -> Result<(String, Pick), String>) -> Result<PathBuf, String> {
    let dir = cache_dir()?;
    let path = dir.join(name);
    if path.is_file() {
        return Ok(path);
    }
    check_apt()?;
    let (package, pick) = what()?;
    let work = dir.join(format!("fetch-{name}-{}", std::process::id()));
    let result = fetch_into(&package, member, &work, pick).and_then(|file| {
        let data = fs::read(&file).map_err(|e| format!("reading {}: {e}", file.display()))?;
        write_atomically(&path, &data)?;
        fs::write(dir.join(format!("{name}.package")), format!("{package}\n")).map_err(|e| format!("writing to {}: {e}", dir.display()))
    });
    let _ = fs::remove_dir_all(&work);
    result.map(|()| path)
}

/// apt-get and dpkg-deb are there and apt knows i386 packages.
fn check_apt() -> Result<(), String> {
    for tool in ["apt-get", "apt-cache", "dpkg", "dpkg-deb"] {
        if !on_path(tool) {
            return Err(format!(
                "{tool} not found: fetching Debian's kernel needs Debian's apt and dpkg; or pass --kernel/--initrd of your own"
            ));
        }
    }
    let native = output(Command::new("dpkg").arg("--print-architecture"))?;
    let foreign = output(Command::new("dpkg").arg("--print-foreign-architectures"))?;
    if native.trim() != "i386" && !foreign.split_whitespace().any(|a| a == "i386") {
        return Err(format!("apt is not set up for i386 packages: {APT_HINT}"));
    }
    Ok(())
}

/// The kernel package `linux-image-686:i386` depends on, e.g. `linux-image-6.1.0-57-686:i386`.
fn kernel_package() -> Result<String, String> {
    let deps = output(Command::new("apt-cache").args(["depends", KERNEL_METAPACKAGE]))
        .map_err(|e| format!("apt does not know {KERNEL_METAPACKAGE} ({e}): {APT_HINT}"))?;
    deps.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(|d| d.trim().trim_matches(|c| c == '<' || c == '>'))
        .find(|d| d.starts_with("linux-image-"))
        .map(|d| if d.contains(':') { d.to_string() } else { format!("{d}:i386") })
        .ok_or_else(|| format!("apt-cache depends {KERNEL_METAPACKAGE} names no linux-image package: {APT_HINT}"))
}

/// Downloads `package` into `work`, unpacks the files matching `member` there and returns
/// the file `pick` finds.
fn fetch_into(package: &str, member: &str, work: &Path, pick: Pick) -> Result<PathBuf, String> {
    let _ = fs::remove_dir_all(work);
    fs::create_dir_all(work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    eprintln!("bt86-guests: downloading {package} into {}", work.display());
    // apt prints its progress on stdout; send it to stderr, which is not the guest's console.
    let progress = io::stderr().as_fd().try_clone_to_owned().map(Stdio::from).unwrap_or_else(|_| Stdio::inherit());
    let mut apt = Command::new("apt-get");
    apt.args(["download", "-q"]);
    if running_as_root() {
        // apt's download user cannot write into root's cache folder: download as root
        // (what apt falls back to anyway, after a warning).
        apt.args(["-o", "APT::Sandbox::User=root"]);
    }
    let status = apt
        .arg(package)
        .current_dir(work)
        .stdin(Stdio::null())
        .stdout(progress)
        .status()
        .map_err(|e| format!("cannot run apt-get: {e}"))?;
    if !status.success() {
        return Err(format!("apt-get download {package} failed ({status}): {APT_HINT}"));
    }
    let deb = fs::read_dir(work)
        .map_err(|e| format!("reading {}: {e}", work.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| format!("apt-get download {package} left no .deb in {}", work.display()))?;
    let root = work.join("root");
    unpack(&deb, &root, member)?;
    let file = pick(&root)?;
    if file.is_file() { Ok(file) } else { Err(format!("{package} holds no {}", file.strip_prefix(&root).unwrap_or(&file).display())) }
}

/// Unpacks from `deb` into `root` only the files matching the tar pattern `member` (a
/// kernel package holds hundreds of MiB of modules that are not needed):
/// `dpkg-deb --fsys-tarfile DEB | tar -x -C ROOT --wildcards MEMBER`.
fn unpack(deb: &Path, root: &Path, member: &str) -> Result<(), String> {
    fs::create_dir_all(root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run dpkg-deb: {e}"))?;
    let tar_input = dpkg.stdout.take().map(Stdio::from).ok_or("dpkg-deb has no stdout")?;
    let tar = Command::new("tar").arg("-x").arg("-C").arg(root).args(["--wildcards", member]).stdin(tar_input).status();
    let dpkg_status = dpkg.wait().map_err(|e| format!("waiting for dpkg-deb: {e}"))?;
    let tar_status = tar.map_err(|e| format!("cannot run tar: {e}"))?;
    if !dpkg_status.success() || !tar_status.success() {
        return Err(format!("unpacking {} failed (dpkg-deb {dpkg_status}, tar {tar_status})", deb.display()));
    }
    Ok(())
}

/// The bzImage in an unpacked kernel package: `boot/vmlinuz-*`.
fn find_kernel_image(root: &Path) -> Result<PathBuf, String> {
    let boot = root.join("boot");
    fs::read_dir(&boot)
        .map_err(|e| format!("the kernel package has no boot/ folder: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-")))
        .ok_or_else(|| "the kernel package has no boot/vmlinuz-*".to_string())
}

/// Writes through a temporary file and a rename, so that a run going on at the same time
/// sees the old file or the whole new one.
fn write_atomically(path: &Path, data: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, data).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    fs::rename(&tmp, path).map_err(|e| format!("renaming {} to {}: {e}", tmp.display(), path.display()))
}

/// Runs `cmd`, returns its stdout; its stderr's first line says why when it fails.
fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            why.lines().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_initramfs_was_built() {
        if let Ok(p) = test_initramfs() {
            let b = fs::read(&p).unwrap();
            assert_eq!(&b[..6], b"070701", "{} is a newc archive", p.display());
        }
    }

    #[test]
    fn shell_init_powers_off_after_the_shell() {
        assert!(SHELL_INIT.starts_with("#!/bin/busybox sh\n"));
        assert!(SHELL_INIT.trim_end().ends_with("poweroff -f"));
    }
}
