//! Without gcc-multilib, building the guests (the README's first command builds them)
//! must fail with one line that says what to install, not with a linker error.
//!
//! The build script's C compiler can be overridden (`BT86_CC`): here it is a wrapper
//! around gcc that answers as gcc does on a machine without the 32-bit libgcc, and the
//! guests are built in a target folder of their own, so that nothing has to be
//! uninstalled and the real build is left alone.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A `gcc` that runs the real one, except that `-print-libgcc-file-name` prints `libgcc`.
fn fake_gcc(dir: &Path, name: &str, libgcc: &str) -> PathBuf {
    let path = dir.join(name);
    let script = format!(
        "#!/bin/sh\nfor a in \"$@\"; do\n  if [ \"$a\" = -print-libgcc-file-name ]; then {libgcc}; exit 0; fi\ndone\nexec gcc \"$@\"\n"
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Builds bt86-guests with `cc` as its C compiler; returns whether it succeeded and
/// cargo's standard error.
fn build_guests(cc: &Path, target: &Path) -> (bool, String) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--quiet", "--offline", "--lib", "-p", "bt86-guests", "--manifest-path"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target)
        .env("BT86_CC", cc)
        .output()
        .expect("run cargo");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn without_the_32_bit_libgcc_the_build_says_what_to_install() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("toolchain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        // gcc without multilib finds no 32-bit libgcc and prints the bare name.
        ("no-libgcc-gcc", "echo libgcc.a", "the 32-bit libgcc.a (gcc -m32 -print-libgcc-file-name) is missing"),
        // A libgcc that exists but cannot link 32-bit code (the 64-bit one): the check's
        // link of a 64-bit division (`__udivdi3`) fails.
        ("wrong-libgcc-gcc", "exec gcc -print-libgcc-file-name", "ld -m elf_i386 cannot link 32-bit code with"),
    ];
    for (name, libgcc, reason) in cases {
        let cc = fake_gcc(&dir, name, libgcc);
        let (ok, stderr) = build_guests(&cc, &dir.join("target"));
        assert!(!ok, "{name}: the build must fail\n{stderr}");
        let ours: Vec<&str> = stderr.lines().map(str::trim).filter(|l| l.contains("bt86-guests: ")).collect();
        assert_eq!(ours.len(), 1, "{name}: one line from the build script\n{stderr}");
        assert!(
            ours[0].starts_with("error: bt86-guests: ")
                && ours[0].contains(reason)
                && ours[0].ends_with(
                    "install the Debian package gcc-multilib (apt-get install gcc-multilib; it provides gcc -m32 and the 32-bit libgcc)"
                ),
            "{name}: {}",
            ours[0]
        );
        let noise: Vec<&str> = stderr.lines().filter(|l| l.contains("undefined reference") && !l.contains("bt86-guests: ")).collect();
        assert!(noise.is_empty(), "{name}: the linker's own errors must not reach the user:\n{stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
