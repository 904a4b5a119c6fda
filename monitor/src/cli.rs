//! The command line: `bt86 run` boots a kernel. Exit statuses: the guest's own (isa-debug-exit), 0 when the guest
//! ends the machine (power-off, or a reset or triple fault with `--no-reboot`), 2 for bad
//! input, 3 when the guest stops abnormally (an instruction bt86 cannot run, a halt
//! nothing can end), 70 for an internal error. A triple fault otherwise resets the machine.

use std::process::exit;

use clap::{Parser, Subcommand};

use crate::machine::{Config, DisplayMode, Machine, SetupError, Stop, UserExec};

/// Exit status for bad input (options, kernel image).
pub const EXIT_USAGE: i32 = 2;
/// Exit status when the guest stops abnormally.
pub const EXIT_GUEST_STOPPED: i32 = 3;
/// Exit status for an internal error.
pub const EXIT_INTERNAL: i32 = 70;

#[derive(Parser)]
#[command(name = "bt86", version, about = "Run 32-bit x86 guests by binary translation, without hardware virtualization")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Boot a Linux bzImage or a 32-bit Multiboot kernel. Its serial port (COM1) is this
    /// process's stdout; it stops when the guest writes to the isa-debug-exit port 0xf4
    /// (exit status (value << 1) | 1), as under QEMU.
    Run(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Kernel image: a Linux bzImage, or a 32-bit ELF with a Multiboot header.
    #[arg(long, value_name = "FILE")]
    kernel: String,
    /// Initial RAM disk for a Linux kernel.
    #[arg(long, value_name = "FILE")]
    initrd: Option<String>,
    /// Guest RAM: a number with an optional K, M or G suffix (no suffix: MiB).
    #[arg(long, value_name = "SIZE", default_value = "128M", allow_hyphen_values = true)]
    mem: String,
    /// Kernel command line (default for Linux: console=ttyS0).
    #[arg(long, value_name = "STRING")]
    append: Option<String>,
    /// Print statistics (exits, translations, callouts, exceptions) at exit, on stderr.
    #[arg(long)]
    stats: bool,
    /// Print every new fragment, guest code beside the host code it became, on stderr.
    #[arg(long)]
    trace_tc: bool,
    /// Name translated code for `perf`: write /tmp/perf-PID.map, a line for each new
    /// fragment with its guest address, so `perf report` shows guest code, not "[JIT]".
    #[arg(long)]
    perf_map: bool,
    /// How guest user code (CPL 3) runs: directly on the CPU, through the translator, or
    /// (the default) translated except code that runs long between exits, which runs
    /// directly.
    #[arg(long, value_name = "MODE", value_enum, default_value_t = UserExec::Adaptive)]
    user_exec: UserExec,
    /// Translation cache size: a number with an optional K, M or G suffix (no suffix:
    /// MiB), 16K to 1G. When it fills, every translation is dropped and made again.
    #[arg(long, value_name = "SIZE", default_value = "64M", allow_hyphen_values = true)]
    tc_size: String,
    /// When the guest resets the machine (Linux's `reboot`, a triple fault), end bt86
    /// with status 0 instead of starting the kernel again, as QEMU's -no-reboot does (a
    /// triple fault also prints the guest's state).
    #[arg(long)]
    no_reboot: bool,
    /// A disk image on the primary ATA channel (the first is the master, the second the
    /// slave); `,readonly` refuses the guest's writes.
    #[arg(long, value_name = "FILE[,readonly]")]
    disk: Vec<String>,
    /// Where the guest's CGA text screen is shown: `none` (COM1 is the console), or
    /// `text`: drawn on stdout with ANSI escapes, stdin typed on the PS/2 keyboard, COM1's
    /// output on stderr (dropped if stderr is a terminal).
    #[arg(long, value_name = "MODE", value_enum, default_value_t = DisplayMode::None)]
    display: DisplayMode,
}

/// Parses a memory size: `128M`, `1G`, `65536K`, `256` (MiB).
fn parse_mem(s: &str) -> Result<u64, String> {
    let bytes = parse_size(s)?;
    if bytes < 2 << 20 {
        return Err(format!("{s:?} is too small: at least 2M (kernels load at 1 MiB)"));
    }
    if bytes > 3 << 30 {
        return Err(format!("{s:?} is too large: at most 3G"));
    }
    if bytes % 4096 != 0 {
        return Err(format!("{s:?} is not a multiple of 4K"));
    }
    Ok(bytes)
}

/// Parses a translation cache size (the syntax of `--mem`).
fn parse_tc_size(s: &str) -> Result<usize, String> {
    use bt86_translator::{MAX_TC_SIZE, MIN_TC_SIZE};
    let bytes = parse_size(s)?;
    if bytes < MIN_TC_SIZE as u64 {
        return Err(format!("{s:?} is too small: at least {}K", MIN_TC_SIZE >> 10));
    }
    if bytes > MAX_TC_SIZE as u64 {
        return Err(format!("{s:?} is too large: at most {}M", MAX_TC_SIZE >> 20));
    }
    Ok(bytes as usize)
}

/// Parses a size with an optional K, M or G suffix (no suffix: MiB).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1 << 20),
    };
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a size (examples: 128M, 1G)"))?;
    n.checked_mul(mult).ok_or_else(|| format!("{s:?} is too large"))
}

/// Entry point.
pub fn main() {
    install_panic_hook();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).format_timestamp(None).init();
    let cli = parse_args();
    let status = match cli.command {
        Command::Run(args) => run(args),
    };
    exit(status)
}

/// Parses the command line; clap's own errors (several lines, with a usage block) become
/// one line and exit status 2, while `--help` and `--version` print and exit with 0.
fn parse_args() -> Cli {
    use clap::error::ErrorKind;
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            exit(0)
        }
        Err(e) => {
            let msg = match e.kind() {
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
                    "no command given: bt86 run --kernel FILE boots a kernel".into()
                }
                _ => one_line(&e.render().to_string()),
            };
            eprintln!("bt86: error: {msg} (see {} --help)", help_command());
            exit(EXIT_USAGE)
        }
    }
}

/// clap's error text in one line: the lines before its usage block, joined; "error: "
/// dropped, and a list after a line ending in ':' joined with ", ".
fn one_line(rendered: &str) -> String {
    let mut out = String::new();
    let lines = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:"))
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"));
    for line in lines {
        let line = line.strip_prefix("error: ").unwrap_or(line);
        let line = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')).unwrap_or(line);
        if !out.is_empty() {
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(line);
    }
    if out.is_empty() { "invalid command line".into() } else { out }
}

/// `bt86 run` when the command line names it, else `bt86`.
fn help_command() -> String {
    let sub = std::env::args_os().skip(1).find(|a| a == "run");
    match sub {
        Some(s) => format!("bt86 {}", s.to_string_lossy()),
        None => "bt86".into(),
    }
}

fn die(status: i32, msg: impl std::fmt::Display) -> ! {
    crate::host::terminal::restore();
    eprintln!("bt86: {msg}");
    exit(status)
}

fn run(args: RunArgs) -> i32 {
    let mem = parse_mem(&args.mem).unwrap_or_else(|e| die(EXIT_USAGE, format!("invalid --mem: {e}")));
    let tc_size = parse_tc_size(&args.tc_size).unwrap_or_else(|e| die(EXIT_USAGE, format!("invalid --tc-size: {e}")));
    let image = crate::loader::read_image(&args.kernel, "kernel image", mem).unwrap_or_else(|e| die(EXIT_USAGE, e));
    let initrd = args.initrd.as_ref().map(|p| crate::loader::read_image(p, "initrd", mem).unwrap_or_else(|e| die(EXIT_USAGE, e)));
    let disks = crate::machine::disks::open(&args.disk).unwrap_or_else(|e| die(EXIT_USAGE, e));
    if let Err(e) = crate::host::signals::install() {
        die(EXIT_INTERNAL, format!("cannot install signal handlers: {e}"));
    }
    crate::host::signals::set_translator_hook(crate::machine::tc_signal::on_signal);
    let config = Config {
        kernel: args.kernel,
        mem,
        append: args.append,
        trace_tc: args.trace_tc,
        perf_map: args.perf_map,
        count_fragments: args.stats,
        user_exec: args.user_exec,
        tc_size,
        no_reboot: args.no_reboot,
        display: args.display,
    };
    let mut machine = match Machine::new(config, image, initrd) {
        Ok(m) => m,
        Err(e @ SetupError::Load(_)) => die(EXIT_USAGE, e),
        Err(e @ SetupError::Host(_)) => die(EXIT_INTERNAL, e),
    };
    crate::machine::disks::attach(&mut machine.platform, disks);
    // The terminal is the guest's serial line while it runs (raw mode, Ctrl-A keys); every
    // way out puts it back (here, `die`, the panic hook, fatal and exit signals).
    if let Err(e) = crate::host::terminal::enter_raw_mode() {
        log::warn!("the terminal stays in line mode: {e}");
    }
    let stop = machine.run();
    crate::host::terminal::restore();
    machine.platform.flush();
    let status = match stop {
        Stop::Exit(status) => status,
        // Only with --no-reboot (otherwise the machine resets): the end of the run, as
        // QEMU's -no-reboot makes it (status 0), but with the reason and the guest's state.
        Stop::TripleFault(t, dump) => {
            eprintln!(
                "bt86: triple fault: the guest could not deliver {} even as a double fault; with --no-reboot the run ends here instead of a reset.\n{dump}",
                t.last
            );
            0
        }
        Stop::Unsupported(why, dump) => {
            eprintln!("bt86: {why}\n{dump}");
            EXIT_GUEST_STOPPED
        }
        Stop::Ended(why) => {
            eprintln!("bt86: {why}");
            0
        }
        Stop::Halted(why, dump) => {
            eprintln!("bt86: {why}\n{dump}");
            EXIT_GUEST_STOPPED
        }
    };
    if args.stats {
        eprint!("{}", machine.stats_report());
    }
    status
}

/// A bug in bt86 must not end in a Rust backtrace: one line saying what broke.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        crate::host::terminal::restore();
        crate::host::disk_sync::sync_all();
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("bt86: internal error: {msg}{at}. Please report this with the command line that caused it.");
        exit(EXIT_INTERNAL);
    }));
}
