//! Builds the guest test kernels in `guests/` into `$OUT_DIR/kernels/<name>.elf` with the
//! system's 32-bit toolchain (gcc -m32, GNU as --32 through gcc, ld -m elf_i386) and writes
//! `$OUT_DIR/kernels.rs`, the table that `src/lib.rs` includes.
//!
//! A kernel is `guests/<name>.c` and/or `guests/<name>.S`, linked with the runtime in
//! `guests/lib/` (every `.c`/`.S` directly in that folder) by `guests/lib/kernel.ld`, or by
//! `guests/<name>.ld` if the kernel has its own linker script (higher_half does).
//! A kernel's source may carry expectations for the harness, one per line, anywhere:
//!   `bt86-exit-status: 3`        host exit status (default 1: the kernel wrote 0 to 0xf4)
//!   `bt86-append: some words`    the command line to pass (bt86 --append / QEMU -append)
//!   `bt86-qemu-cpu: qemu32,+nx`  the CPU model QEMU runs it with (QEMU -cpu; default: QEMU's)
//!   `bt86-qemu-args: -vga std`   more QEMU options, split at blanks (a device the kernel
//!                                tests that QEMU's `-nodefaults` leaves out)
//!   `bt86-env: NAME=VALUE`       an environment variable bt86 runs it with (QEMU does not
//!                                need it: `BT86_FIRMWARE=full` for firmware tables a
//!                                built-in switch leaves out)
//!   `bt86-only: why`             not compared with QEMU (it checks what QEMU does
//!                                differently from a PC, e.g. unbacked memory); its checks
//!                                must pass under bt86 (tests/machine.rs)
//!   `bt86-disk: 2048`            a fresh disk image of that many KiB (repeatable: master,
//!                                slave), filled with `bt86_guests::disk_byte`
//!
//! The benchmarks in `guests/bench/` are built too, but apart: they are not test kernels
//! and are not in that table. See [`BENCH_KERNELS`]: each is linked from the runtime and
//! the objects listed there into `$OUT_DIR/bench/<name>.elf` (by `guests/bench/<name>.ld`
//! if there is one, else by `guests/lib/kernel.ld`); see [`BENCH_NATIVE`]: the objects
//! that run natively too (compiled once, with the kernels' flags) also go into static
//! 32-bit Linux programs `$OUT_DIR/bench/<name>-native`. The Linux benchmark
//! `linux/bench.c` is linked with bench-cpu's workloads into the static program
//! `$OUT_DIR/bench/linux-bench`, which is also `/init` of `$OUT_DIR/bench/initramfs-linux-bench.cpio`.
//! `$OUT_DIR/bench.rs` holds their paths.
//!
//! The C compiler is `gcc`, or the program `$BT86_CC` names (for tests of the toolchain
//! check: tests/toolchain.rs points it at a gcc without 32-bit support).
//!
//! The Linux test workload `linux/workload.c` is built as a static 32-bit Linux program
//! (gcc -m32 -static, glibc's libc.a from libc6-dev-i386) and packed, as `/init` beside
//! `/dev/console` and the mount points, into the initramfs
//! `$OUT_DIR/linux/initramfs-test.cpio` (by `src/cpio.rs`); `$OUT_DIR/linux.rs` holds its
//! path, or why it could not be built.

use std::collections::BTreeMap;
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, exit};
use std::sync::Mutex;

#[allow(dead_code)]
#[path = "src/cpio.rs"]
mod cpio;

const CFLAGS: &[&str] = &[
    "-m32",
    "-march=i686",
    "-std=gnu11",
    "-ffreestanding",
    "-nostdlib",
    "-fno-pic",
    "-fno-pie",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    "-fcf-protection=none",
    "-mgeneral-regs-only",
    "-fno-strict-aliasing",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
    "-Wno-missing-field-initializers",
];

/// The benchmark kernels: name and sources in `guests/bench/` (besides the runtime). A
/// source shared by several of them is compiled once. bench-user has its own linker
/// script (`bench-user.ld`), which puts userland.c's and workloads.c's objects on the
/// pages it runs at CPL 3.
const BENCH_KERNELS: &[(&str, &[&str])] = &[
    ("bench-cpu", &["cpu.c", "workloads.c", "common.c"]),
    ("bench-mmu", &["mmu.c", "common.c"]),
    ("bench-user", &["user.c", "userland.c", "workloads.c", "common.c"]),
];
/// The native benchmarks: the benchmark kernel they stand beside (`<name>-native` is
/// built), their own `main` (compiled for Linux, hosted) and the very same objects that
/// kernel links, and the machine flag: 32-bit programs, as the guest's code is. bench-mmu's
/// native program measures instead the host operations its rows need, as bt86 makes them:
/// from a 64-bit process (a 32-bit one's signals cost twice as much), so it links only its
/// own copy of the output format.
const BENCH_NATIVE: &[(&str, &str, &[&str], &str)] = &[
    ("bench-cpu", "native.c", &["workloads.c", "common.c"], "-m32"),
    ("bench-mmu", "native-mmu.c", &[], "-m64"),
    ("bench-user", "native-user.c", &["userland.c", "workloads.c", "common.c"], "-m32"),
];

const TOOLCHAIN_HINT: &str = "install the Debian package gcc-multilib \
     (apt-get install gcc-multilib; it provides gcc -m32 and the 32-bit libgcc)";

/// One kernel: its name and its source files.
struct KernelSrc {
    sources: Vec<PathBuf>,
    exit_status: i32,
    append: Option<String>,
    qemu_cpu: Option<String>,
    env: Option<String>,
    bt86_only: bool,
    disks_kib: Vec<u64>,
    qemu_args: Option<String>,
}

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let guests = manifest.join("guests");
    let lib = guests.join("lib");
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=guests");
    println!("cargo:rerun-if-changed=linux");
    println!("cargo:rerun-if-changed=src/cpio.rs");
    println!("cargo:rerun-if-env-changed=BT86_CC");

    let libgcc = check_toolchain(&out);

    let lib_sources = sources_in(&lib);
    let mut kernels: BTreeMap<String, KernelSrc> = BTreeMap::new();
    for src in sources_in(&guests) {
        let name = src.file_stem().unwrap().to_string_lossy().into_owned();
        let k = kernels.entry(name).or_insert(KernelSrc {
            sources: Vec::new(),
            exit_status: 1,
            append: None,
            qemu_cpu: None,
            env: None,
            bt86_only: false,
            disks_kib: Vec::new(),
            qemu_args: None,
        });
        read_expectations(&src, k);
        k.sources.push(src);
    }
    if kernels.is_empty() {
        fail(&format!("no guest kernels found in {}", guests.display()));
    }

    let obj_dir = out.join("obj");
    let kdir = out.join("kernels");
    fs::create_dir_all(obj_dir.join("lib")).unwrap();
    fs::create_dir_all(&kdir).unwrap();

    // Compile everything (two at a time: the machines have few cores).
    let mut jobs: Vec<(PathBuf, PathBuf)> = Vec::new();
    let lib_objs: Vec<PathBuf> = lib_sources
        .iter()
        .map(|s| {
            let o = obj_dir.join("lib").join(obj_name(s));
            jobs.push((s.clone(), o.clone()));
            o
        })
        .collect();
    let bench_dir = guests.join("bench");
    let bench_obj_dir = obj_dir.join("bench");
    fs::create_dir_all(&bench_obj_dir).unwrap();
    let mut bench_sources: Vec<&str> = BENCH_KERNELS.iter().flat_map(|(_, srcs)| srcs.iter().copied()).collect();
    bench_sources.sort();
    bench_sources.dedup();
    for src in &bench_sources {
        jobs.push((bench_dir.join(src), bench_obj_dir.join(obj_name(Path::new(src)))));
    }
    let mut kernel_objs: BTreeMap<&str, Vec<PathBuf>> = BTreeMap::new();
    for (name, k) in &kernels {
        for s in &k.sources {
            let o = obj_dir.join(format!("{name}-{}", obj_name(s)));
            jobs.push((s.clone(), o.clone()));
            kernel_objs.entry(name).or_default().push(o);
        }
    }
    let queue = Mutex::new(jobs);
    let errors = Mutex::new(Vec::<String>::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let job = queue.lock().unwrap().pop();
                    let Some((src, obj)) = job else { break };
                    if let Err(e) = compile(&src, &obj, &lib) {
                        errors.lock().unwrap().push(e);
                    }
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap();
    if !errors.is_empty() {
        fail(&errors.join("\n"));
    }

    // Link each kernel and write the table.
    let mut table = String::new();
    table.push_str(
        "/// Generated by build.rs: (name, path, exit status, command line, QEMU CPU model, bt86 environment, bt86 only, QEMU options, disk sizes in KiB).\n",
    );
    table.push_str(
        "type KernelRow = (&'static str, &'static str, i32, Option<&'static str>, Option<&'static str>, Option<&'static str>, bool, Option<&'static str>, &'static [u64]);\n",
    );
    table.push_str("const KERNELS: &[KernelRow] = &[\n");
    for (name, k) in &kernels {
        let elf = kdir.join(format!("{name}.elf"));
        let own_script = guests.join(format!("{name}.ld"));
        let script = if own_script.is_file() { own_script } else { lib.join("kernel.ld") };
        let mut cmd = Command::new("ld");
        cmd.args(["-m", "elf_i386", "-nostdlib", "--build-id=none", "-z", "max-page-size=0x1000"])
            .arg("-T")
            .arg(&script)
            .arg("-o")
            .arg(&elf)
            .args(&lib_objs)
            .args(&kernel_objs[name.as_str()])
            .arg(&libgcc);
        run(&mut cmd, &format!("linking kernel {name}"));
        let path = elf.to_str().expect("OUT_DIR is not UTF-8");
        let (status, append, cpu, env, only, qemu_args, disks) =
            (k.exit_status, &k.append, &k.qemu_cpu, &k.env, k.bt86_only, &k.qemu_args, &k.disks_kib);
        writeln!(table, "    ({name:?}, {path:?}, {status}, {append:?}, {cpu:?}, {env:?}, {only}, {qemu_args:?}, &{disks:?}),").unwrap();
    }
    table.push_str("];\n");
    fs::write(out.join("kernels.rs"), table).unwrap();

    build_benchmarks(&bench_dir, &bench_obj_dir, &lib, &lib_objs, &libgcc, &out);
    build_linux_workload(&manifest.join("linux"), &out);
}

/// Builds the Linux test workload and its initramfs and writes `$OUT_DIR/linux.rs`.
/// Without the static 32-bit C library only the Linux test is lost: warn, do not fail.
fn build_linux_workload(src_dir: &Path, out: &Path) {
    let dir = out.join("linux");
    fs::create_dir_all(&dir).unwrap();
    let konst = match link_workload(src_dir, &dir) {
        Ok(cpio) => format!("Ok({:?})", cpio.to_str().expect("OUT_DIR is not UTF-8")),
        Err(why) => {
            println!("cargo:warning=the Linux test workload was not built: {why}");
            format!("Err({why:?})")
        }
    };
    let table = format!(
        "// Generated by build.rs: the Linux test workload's initramfs (or why it is missing).\n\
         const LINUX_TEST_INITRAMFS: Result<&str, &str> = {konst};\n"
    );
    fs::write(out.join("linux.rs"), table).unwrap();
}

/// Links a minimal static 32-bit C program, so that a missing 32-bit C library (glibc's
/// libc.a from libc6-dev-i386) gives the hint instead of a linker error.
fn check_static_link(dir: &Path) -> Result<(), String> {
    let probe = dir.join("probe-static.c");
    fs::write(&probe, "#include <stdio.h>\n#include <stdint.h>\nint main(int c, char **v) { printf(\"%llu\", (unsigned long long)(uint64_t)c / (uint64_t)(uintptr_t)v); return 0; }\n")
        .map_err(|e| format!("writing {}: {e}", probe.display()))?;
    let linked = Command::new(cc())
        .args(["-m32", "-static", "-o"])
        .arg(dir.join("probe-static"))
        .arg(&probe)
        .output()
        .map_err(|e| format!("cannot run gcc: {e}"))?;
    if !linked.status.success() {
        return Err(format!("gcc -m32 -static cannot link a 32-bit C program ({}); {TOOLCHAIN_HINT}", first_error(&linked.stderr)));
    }
    Ok(())
}

/// `gcc -m32 -static` of workload.c, then the initramfs around it; returns its path.
fn link_workload(src_dir: &Path, dir: &Path) -> Result<PathBuf, String> {
    check_static_link(dir)?;
    let init = dir.join("init");
    let linked = Command::new(cc())
        .args(["-m32", "-march=i686", "-msse2", "-O2", "-static", "-pthread", "-Wall", "-Wextra"])
        .arg("-o")
        .arg(&init)
        .arg(src_dir.join("workload.c"))
        .arg("-lm")
        .output()
        .map_err(|e| format!("cannot run gcc: {e}"))?;
    if !linked.status.success() {
        return Err(format!("gcc -m32 -static failed ({}); {TOOLCHAIN_HINT}", first_error(&linked.stderr)));
    }
    for line in String::from_utf8_lossy(&linked.stderr).lines() {
        println!("cargo:warning={line}");
    }
    let program = fs::read(&init).map_err(|e| format!("reading {}: {e}", init.display()))?;
    let mut archive = cpio::Archive::new();
    archive.dir("dev", 0o755).char_dev("dev/console", 0o600, 5, 1);
    for d in ["proc", "sys", "tmp"] {
        archive.dir(d, 0o755);
    }
    archive.file("init", 0o755, &program);
    let cpio = dir.join("initramfs-test.cpio");
    fs::write(&cpio, archive.finish()).map_err(|e| format!("writing {}: {e}", cpio.display()))?;
    Ok(cpio)
}

/// Links the benchmark kernels and the native compute benchmark (their objects are
/// compiled by now) and writes `$OUT_DIR/bench.rs`.
fn build_benchmarks(bench_dir: &Path, obj_dir: &Path, lib: &Path, lib_objs: &[PathBuf], libgcc: &Path, out: &Path) {
    let dir = out.join("bench");
    fs::create_dir_all(&dir).unwrap();
    let obj = |src: &str| obj_dir.join(obj_name(Path::new(src)));
    let mut table = String::from("// Generated by build.rs: where the benchmarks were built.\n");
    for (name, srcs) in BENCH_KERNELS {
        let elf = dir.join(format!("{name}.elf"));
        let own_script = bench_dir.join(format!("{name}.ld"));
        let script = if own_script.is_file() { own_script } else { lib.join("kernel.ld") };
        let mut cmd = Command::new("ld");
        cmd.args(["-m", "elf_i386", "-nostdlib", "--build-id=none", "-z", "max-page-size=0x1000"])
            .arg("-T")
            .arg(&script)
            .arg("-o")
            .arg(&elf)
            .args(lib_objs)
            .args(srcs.iter().map(|s| obj(s)))
            .arg(libgcc);
        run(&mut cmd, &format!("linking benchmark kernel {name}"));
        let konst = name.to_uppercase().replace('-', "_");
        writeln!(table, "const {konst}_KERNEL: &str = {:?};", elf.to_str().expect("OUT_DIR is not UTF-8")).unwrap();
    }

    // The native programs need the 32-bit C library (libc6-dev-i386, part of gcc-multilib).
    // Without it only the native columns of the benchmarks are lost: warn, do not fail.
    for (name, main, objs, machine) in BENCH_NATIVE {
        let native = dir.join(format!("{name}-native"));
        let mut cmd = Command::new(cc());
        cmd.args([machine, "-O2", "-static", "-Wall"]).arg("-I").arg(bench_dir).arg("-o").arg(&native).arg(bench_dir.join(main));
        cmd.arg(bench_dir.join("host.c"));
        if objs.is_empty() {
            // (Its own build of the output format, for its machine.)
            cmd.arg(bench_dir.join("common.c"));
        }
        let linked = cmd.args(objs.iter().map(|s| obj(s))).output();
        let native_const = match linked {
            Ok(o) if o.status.success() => {
                for line in String::from_utf8_lossy(&o.stderr).lines() {
                    println!("cargo:warning={line}");
                }
                format!("Ok({:?})", native.to_str().expect("OUT_DIR is not UTF-8"))
            }
            Ok(o) => {
                let why = format!(
                    "gcc {machine} -static failed: {}; {TOOLCHAIN_HINT}",
                    String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or("").trim()
                );
                println!("cargo:warning={name}-native not built: {why}");
                format!("Err({why:?})")
            }
            Err(e) => format!("Err({:?})", format!("cannot run gcc: {e}")),
        };
        let konst = name.to_uppercase().replace('-', "_");
        writeln!(table, "const {konst}_NATIVE: Result<&str, &str> = {native_const};").unwrap();
    }
    let linux = match link_linux_bench(bench_dir, &[obj("workloads.c"), obj("common.c")], &dir) {
        Ok(cpio) => format!(
            "Ok(({:?}, {:?}))",
            dir.join("linux-bench").to_str().expect("OUT_DIR is not UTF-8"),
            cpio.to_str().expect("OUT_DIR is not UTF-8")
        ),
        Err(why) => {
            println!("cargo:warning=the Linux benchmark was not built: {why}");
            format!("Err({why:?})")
        }
    };
    writeln!(table, "const LINUX_BENCH: Result<(&str, &str), &str> = {linux};").unwrap();
    fs::write(out.join("bench.rs"), table).unwrap();
}

/// The Linux benchmark `linux/bench.c` (next to `guests/bench/`), linked with bench-cpu's
/// compute workloads (`objs`) as the static 32-bit program `dir/linux-bench`, which runs
/// natively, and packed as `/init` into `dir/initramfs-linux-bench.cpio`; returns the
/// initramfs's path.
fn link_linux_bench(bench_dir: &Path, objs: &[PathBuf], dir: &Path) -> Result<PathBuf, String> {
    let program = dir.join("linux-bench");
    let src = bench_dir.parent().and_then(Path::parent).expect("tests/guests/bench").join("linux").join("bench.c");
    let linked = Command::new(cc())
        .args(["-m32", "-march=i686", "-O2", "-static", "-Wall", "-Wextra"])
        .arg("-I")
        .arg(bench_dir)
        .arg("-o")
        .arg(&program)
        .arg(&src)
        .arg(bench_dir.join("host.c"))
        .args(objs)
        .output()
        .map_err(|e| format!("cannot run gcc: {e}"))?;
    if !linked.status.success() {
        let first = String::from_utf8_lossy(&linked.stderr).lines().find(|l| l.contains("error")).unwrap_or("").trim().to_string();
        return Err(format!("gcc -m32 -static failed ({first}); {TOOLCHAIN_HINT}"));
    }
    for line in String::from_utf8_lossy(&linked.stderr).lines() {
        println!("cargo:warning={line}");
    }
    let init = fs::read(&program).map_err(|e| format!("reading {}: {e}", program.display()))?;
    let mut archive = cpio::Archive::new();
    archive.dir("dev", 0o755).char_dev("dev/console", 0o600, 5, 1).dir("proc", 0o755).file("init", 0o755, &init);
    let cpio = dir.join("initramfs-linux-bench.cpio");
    fs::write(&cpio, archive.finish()).map_err(|e| format!("writing {}: {e}", cpio.display()))?;
    Ok(cpio)
}

/// The `.c` and `.S` files directly in `dir`, sorted.
fn sources_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("c" | "S")))
        .collect();
    v.sort();
    v
}

fn obj_name(src: &Path) -> String {
    let ext = src.extension().unwrap().to_string_lossy();
    format!("{}-{}.o", src.file_stem().unwrap().to_string_lossy(), ext)
}

fn read_expectations(src: &Path, k: &mut KernelSrc) {
    let text = fs::read_to_string(src).unwrap_or_else(|e| panic!("reading {}: {e}", src.display()));
    for line in text.lines() {
        if let Some((_, v)) = line.split_once("bt86-exit-status:") {
            let v = v.trim().trim_end_matches("*/").trim();
            k.exit_status = v.parse().unwrap_or_else(|_| fail(&format!("{}: bad bt86-exit-status {v:?}", src.display())));
        }
        if let Some((_, v)) = line.split_once("bt86-append:") {
            k.append = Some(v.trim().trim_end_matches("*/").trim().to_string());
        }
        if let Some((_, v)) = line.split_once("bt86-env:") {
            k.env = Some(v.trim().trim_end_matches("*/").trim().to_string());
        }
        if let Some((_, v)) = line.split_once("bt86-disk:") {
            let v = v.trim().trim_end_matches("*/").trim();
            k.disks_kib.push(v.parse().unwrap_or_else(|_| fail(&format!("{}: bad bt86-disk {v:?} (a size in KiB)", src.display()))));
        }
        if line.contains("bt86-only:") {
            k.bt86_only = true;
        }
        if let Some((_, v)) = line.split_once("bt86-qemu-args:") {
            k.qemu_args = Some(v.trim().trim_end_matches("*/").trim().to_string());
        }
        if let Some((_, v)) = line.split_once("bt86-qemu-cpu:") {
            k.qemu_cpu = Some(v.trim().trim_end_matches("*/").trim().to_string());
        }
    }
}

fn compile(src: &Path, obj: &Path, lib: &Path) -> Result<(), String> {
    let mut cmd = Command::new(cc());
    cmd.args(CFLAGS).arg("-I").arg(lib).arg("-c").arg(src).arg("-o").arg(obj);
    let out = cmd.output().map_err(|e| format!("running gcc: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("compiling {}:\n{stderr}", src.display()));
    }
    for line in stderr.lines() {
        println!("cargo:warning={line}");
    }
    Ok(())
}

/// The C compiler: `$BT86_CC`, else `gcc`.
fn cc() -> std::ffi::OsString {
    env::var_os("BT86_CC").filter(|v| !v.is_empty()).unwrap_or_else(|| "gcc".into())
}

/// Checks that gcc can build 32-bit code and returns the 32-bit libgcc.a (for 64-bit
/// division and the like in C guest code).
fn check_toolchain(out: &Path) -> PathBuf {
    let probe = out.join("probe.c");
    fs::write(&probe, "#include <stdint.h>\nuint64_t f(uint64_t a, uint64_t b) { return a / b; }\n").unwrap();
    let compiled = Command::new(cc()).args(CFLAGS).arg("-c").arg(&probe).arg("-o").arg(out.join("probe.o")).output();
    match compiled {
        Err(e) => fail(&format!("cannot run gcc ({e}); {TOOLCHAIN_HINT}")),
        Ok(o) if !o.status.success() => {
            fail(&format!("gcc -m32 cannot compile 32-bit code ({}); {TOOLCHAIN_HINT}", String::from_utf8_lossy(&o.stderr).trim()))
        }
        Ok(_) => {}
    }
    let libgcc = Command::new(cc())
        .args(["-m32", "-print-libgcc-file-name"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.is_absolute() && p.is_file());
    let Some(libgcc) = libgcc else {
        fail(&format!("the 32-bit libgcc.a (gcc -m32 -print-libgcc-file-name) is missing; {TOOLCHAIN_HINT}"))
    };
    if Command::new("ld")
        .arg("-V")
        .output()
        .map_or(true, |o| !o.status.success() || !String::from_utf8_lossy(&o.stdout).contains("elf_i386"))
    {
        fail("ld (GNU binutils) with the elf_i386 emulation is missing; install the Debian package binutils");
    }
    check_link(out, &libgcc);
    libgcc
}

/// Links the probe (a 64-bit division: `__udivdi3`) as the kernels are linked, so that a
/// 32-bit libgcc that is missing or unusable gives the hint instead of a linker error.
fn check_link(out: &Path, libgcc: &Path) {
    let linked = Command::new("ld")
        .args(["-m", "elf_i386", "-nostdlib", "-e", "f", "-o"])
        .arg(out.join("probe.elf"))
        .arg(out.join("probe.o"))
        .arg(libgcc)
        .output();
    match linked {
        Err(e) => fail(&format!("cannot run ld ({e}); install the Debian package binutils")),
        Ok(o) if !o.status.success() => fail(&format!(
            "ld -m elf_i386 cannot link 32-bit code with {} ({}); {TOOLCHAIN_HINT}",
            libgcc.display(),
            first_error(&o.stderr)
        )),
        Ok(_) => {}
    }
}

/// The first line of a tool's stderr that says "error" or "undefined" (else the first).
fn first_error(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let line = text.lines().find(|l| l.contains("error") || l.contains("undefined")).or_else(|| text.lines().next());
    line.unwrap_or("").trim().to_string()
}

fn run(cmd: &mut Command, what: &str) {
    match cmd.output() {
        Err(e) => fail(&format!("{what}: cannot run {:?}: {e}", cmd.get_program())),
        Ok(o) if !o.status.success() => {
            fail(&format!("{what} failed:\n{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
        }
        Ok(o) => {
            for line in String::from_utf8_lossy(&o.stderr).lines() {
                println!("cargo:warning={line}");
            }
        }
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: bt86-guests: {msg}");
    exit(1)
}
