//! `bt86 run --display text`: the guest's text screen drawn on standard output with ANSI
//! escapes (also when standard output is a pipe, as here), COM1's output on standard
//! error, and standard input typed on the PS/2 keyboard. The `cga` kernel leaves a known
//! screen; the `kbd` kernel prints the scan codes it gets on IRQ 1.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use bt86_guests::{bt86_command, kernels, run_with_input, run_with_timeout};

const TIMEOUT: Duration = Duration::from_secs(60);

fn command(kernel: &str, extra: &[&str]) -> Command {
    let k = kernels().into_iter().find(|k| k.name == kernel).unwrap_or_else(|| panic!("no {kernel} kernel"));
    let mut cmd = bt86_command(&PathBuf::from(env!("CARGO_BIN_EXE_bt86")), &k);
    cmd.args(extra);
    cmd
}

/// A terminal of 26 rows, 80 columns fed with `bytes`: the text on each row and where the
/// cursor ended (row, column; 0-based). Knows what bt86 sends: cursor positioning,
/// clearing, colours (ignored), cursor on/off, CR and LF.
fn terminal(bytes: &[u8]) -> (Vec<String>, (usize, usize)) {
    let text = String::from_utf8(bytes.to_vec()).expect("the screen is UTF-8");
    let mut grid = vec![vec![' '; 80]; 26];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                assert_eq!(chars.next(), Some('['), "only CSI sequences");
                let mut params = String::new();
                let end = loop {
                    let c = chars.next().expect("a complete sequence");
                    if c.is_ascii_alphabetic() {
                        break c;
                    }
                    params.push(c);
                };
                match end {
                    'H' => {
                        let (r, c) = params.split_once(';').expect("row;column");
                        (row, col) = (r.parse::<usize>().unwrap() - 1, c.parse::<usize>().unwrap() - 1);
                    }
                    'J' => grid = vec![vec![' '; 80]; 26],
                    'm' | 'h' | 'l' => {}
                    _ => panic!("unexpected sequence ESC [ {params}{end}"),
                }
            }
            '\r' => col = 0,
            '\n' => row += 1,
            c => {
                grid[row][col] = c;
                col += 1;
            }
        }
    }
    let rows = grid.into_iter().map(|r| r.into_iter().collect::<String>().trim_end().to_string()).collect();
    (rows, (row, col))
}

#[test]
fn display_text_draws_the_screen_and_moves_serial_output_to_stderr() {
    let plain = run_with_timeout(command("cga", &[]), TIMEOUT).expect("cannot run bt86");
    assert!(!plain.serial.contains(&0x1b), "without --display, stdout is the serial port alone");
    let run = run_with_timeout(command("cga", &["--display", "text"]), TIMEOUT).expect("cannot run bt86");
    assert_eq!(run.status, Some(1), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(run.stderr, plain.serial, "COM1's output goes to stderr, unchanged");
    let screen = &run.serial;
    assert!(screen.starts_with(b"\x1b[0m\x1b[2J"), "the screen is cleared first");
    let end = b"\x1b[0m\x1b[?25h\x1b[26;1H\r\n";
    assert!(screen.ends_with(end), "the terminal is left usable: colours reset, cursor shown, below the screen");
    let last_frame = String::from_utf8_lossy(&screen[..screen.len() - end.len()]);
    assert!(last_frame.ends_with("\x1b[4;6H\x1b[?25h"), "the last frame puts the cursor at row 3, column 5");
    assert!(last_frame.contains("\x1b[0;97;44mbt86 CGA test\x1b[0;37;40m"), "white on blue");
    assert!(last_frame.contains("colours: \x1b[0;91;42mRG\x1b[0;37;40m"), "bright red on green");

    let (rows, cursor) = terminal(&screen[..screen.len() - end.len()]);
    assert_eq!(rows[0], "bt86 CGA test");
    assert_eq!(rows[1], "colours: RG");
    assert!(rows[2..].iter().all(|r| r.is_empty()), "the rest is blank: {rows:#?}");
    assert_eq!(cursor, (3, 5));
}

/// What the kbd kernel is typed, and the scan codes a PC keyboard sends for it.
const KEYS: &[u8] = b"aA1!\r\x7f\t\x1b[A\x1b[B\x1b[C\x1b[D\x03 \x1bz";
const SET1: &str = "1e 9e 2a 1e 9e aa 02 82 2a 02 82 aa 1c 9c 0e 8e 0f 8f e0 48 e0 c8 e0 50 e0 d0 e0 4d e0 cd \
                    e0 4b e0 cb 1d 2e ae 9d 39 b9 01 81 2c ac";
const SET2: &str = "1c f0 1c 12 1c f0 1c f0 12 16 f0 16 12 16 f0 16 f0 12 5a f0 5a 66 f0 66 0d f0 0d e0 75 e0 \
                    f0 75 e0 72 e0 f0 72 e0 74 e0 f0 74 e0 6b e0 f0 6b 14 21 f0 21 f0 14 29 f0 29 76 f0 76 \
                    1a f0 1a";

fn typed(set: &str, append: &str) {
    let n = set.split(' ').count();
    let args = ["--display", "text", "--append", &format!("keys={n} {append}")];
    let run = run_with_input(command("kbd", &args), Some(KEYS.to_vec()), TIMEOUT).expect("cannot run bt86");
    let serial = String::from_utf8_lossy(&run.stderr);
    assert!(run.status == Some(1) && !serial.contains("not ok") && serial.contains("ok 4"), "{}\n{serial}", run.describe_status());
    let line = serial.lines().find_map(|l| l.strip_prefix("# scan codes: ")).unwrap_or_default();
    assert_eq!(line, set, "letters, capitals with Shift, symbols, Enter, Backspace, Tab, arrows, Ctrl-C, Space, Escape");
}

#[test]
fn keys_reach_the_keyboard_in_set_1_through_the_controller_translation() {
    typed(SET1, "");
}

#[test]
fn keys_reach_the_keyboard_in_set_2_untranslated() {
    typed(SET2, "set2");
}

/// Ended from outside (SIGTERM) while the guest runs, bt86 still leaves the terminal
/// usable.
#[test]
fn a_signal_ends_the_display_too() {
    use std::io::Read;
    use std::process::Stdio;
    // kbd waits up to 5 s for keys that never come.
    let mut child = command("kbd", &["--display", "text", "--append", "keys=1000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("bt86");
    let mut stdout = child.stdout.take().unwrap();
    // The screen is cleared: the display is on.
    let mut screen = vec![0u8; 8];
    stdout.read_exact(&mut screen).unwrap();
    assert_eq!(screen, b"\x1b[0m\x1b[2J");
    std::thread::sleep(Duration::from_millis(100));
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    stdout.read_to_end(&mut screen).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "it dies of the signal");
    assert!(screen.ends_with(b"\x1b[0m\x1b[?25h\x1b[26;1H\r\n"), "{:?}", String::from_utf8_lossy(&screen));
}
