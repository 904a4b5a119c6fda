//! `--display text`: the guest's 80x25 text screen drawn on bt86's standard output with
//! ANSI escapes, for guests that never touch the serial port.
//!
//! Nothing traps the guest's writes: the run loop calls [`Display::refresh`] from its
//! timer tick (at most every [`REFRESH_NS`] of virtual time, 50 Hz) and once more when the
//! run ends; it reads text RAM (guest-physical memory at 0xB8000, from the CRTC's start
//! address, wrapping within 32 KiB), compares it with the frame it drew last and redraws
//! the rows that changed, then puts the terminal's cursor where the CRTC's is (hidden
//! when the guest turned it off or moved it off the screen). Attributes become ANSI
//! colours (the CGA palette in ANSI's order; bright foregrounds as 90-97; bit 7 blinks,
//! as the VGA's attribute controller leaves it), characters code page 437 in UTF-8.
//!
//! The output is the same whether standard output is a terminal or not (a pipe gets the
//! escape sequences, which is how the tests read the screen). The screen starts cleared;
//! at the end the colours are reset, the cursor shown and put below the screen
//! ([`crate::host::terminal::end_display`], which every way out of bt86 runs).

use std::io::Write;

use bt86_devices::cga::{COLUMNS, Cga, ROWS, TEXT_BASE, TEXT_LEN};
use bt86_shadow_mmu::GuestRam;

/// How often the screen is looked at while the guest runs, in virtual nanoseconds.
pub const REFRESH_NS: u64 = 20_000_000;

/// Bytes of one screen: character and attribute per cell.
const SCREEN_BYTES: usize = COLUMNS * ROWS * 2;

/// CGA colour number (blue = 1, green = 2, red = 4) to ANSI's (red = 1, green = 2,
/// blue = 4).
const ANSI_COLOUR: [u8; 8] = [0, 4, 2, 6, 1, 5, 3, 7];

/// Code page 437's glyphs for the control characters 0x00-0x1F.
const CP437_LOW: &str = " ☺☻♥♦♣♠•◘○◙♂♀♪♫☼►◄↕‼¶§▬↨↑↓→←∟↔▲▼";
/// Code page 437's glyphs for 0x80-0xFF.
const CP437_HIGH: &str = "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐\
                          └┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u{a0}";

/// The character a screen byte shows.
fn glyph(b: u8) -> char {
    match b {
        0x00..=0x1F => CP437_LOW.chars().nth(usize::from(b)).unwrap_or(' '),
        0x7F => '⌂',
        0x80..=0xFF => CP437_HIGH.chars().nth(usize::from(b - 0x80)).unwrap_or('?'),
        _ => char::from(b),
    }
}

/// The SGR sequence for a CGA attribute.
fn sgr(attr: u8, out: &mut Vec<u8>) {
    let fg = attr & 0x0F;
    let fg_code = if fg & 8 != 0 { 90 } else { 30 } + ANSI_COLOUR[usize::from(fg & 7)];
    let bg_code = 40 + ANSI_COLOUR[usize::from((attr >> 4) & 7)];
    let blink = if attr & 0x80 != 0 { ";5" } else { "" };
    let _ = write!(out, "\x1b[0;{fg_code};{bg_code}{blink}m");
}

/// Escape sequences that turn the frame `old` (None: nothing drawn yet) into `new`, and
/// put the cursor at `cursor` (row, column) or hide it.
pub fn render(old: Option<&[u8]>, new: &[u8], cursor: Option<Cell>) -> Vec<u8> {
    let mut out = Vec::new();
    for (row, cells) in new.chunks(COLUMNS * 2).enumerate() {
        if old.is_some_and(|o| o[row * COLUMNS * 2..(row + 1) * COLUMNS * 2] == *cells) {
            continue;
        }
        let _ = write!(out, "\x1b[{};1H", row + 1);
        let mut attr = None;
        for cell in cells.chunks(2) {
            if attr != Some(cell[1]) {
                attr = Some(cell[1]);
                sgr(cell[1], &mut out);
            }
            let mut utf8 = [0u8; 4];
            out.extend_from_slice(glyph(cell[0]).encode_utf8(&mut utf8).as_bytes());
        }
    }
    match cursor {
        Some((row, col)) => {
            let _ = write!(out, "\x1b[{};{}H\x1b[?25h", row + 1, col + 1);
        }
        None => out.extend_from_slice(b"\x1b[?25l"),
    }
    out
}

/// A cell of the screen: (row, column).
type Cell = (usize, usize);

/// The screen on a writer (standard output).
pub struct Display<W: Write> {
    out: W,
    /// The frame drawn last and where its cursor was (None: nothing drawn yet).
    drawn: Option<(Vec<u8>, Option<Cell>)>,
    /// Virtual time of the last look at text RAM.
    last_ns: u64,
}

impl<W: Write> Display<W> {
    /// A display on `out`, its screen cleared.
    pub fn new(mut out: W) -> Display<W> {
        crate::host::terminal::start_display();
        let _ = out.write_all(b"\x1b[0m\x1b[2J").and_then(|()| out.flush());
        Display { out, drawn: None, last_ns: 0 }
    }

    /// Redraws what changed on the guest's screen; at most once per [`REFRESH_NS`] unless
    /// `now_ns` is None.
    pub fn refresh(&mut self, ram: &GuestRam, cga: &Cga, now_ns: Option<u64>) {
        if let Some(now) = now_ns {
            if now.saturating_sub(self.last_ns) < REFRESH_NS {
                return;
            }
            self.last_ns = now;
        }
        let mut text = vec![0u8; TEXT_LEN as usize];
        ram.read(TEXT_BASE, &mut text);
        let start = usize::from(cga.start_address()) * 2;
        let frame: Vec<u8> = (0..SCREEN_BYTES).map(|i| text[(start + i) % text.len()]).collect();
        let cursor = cga.cursor_cell();
        if self.drawn.as_ref().is_some_and(|(f, c)| *f == frame && *c == cursor) {
            return;
        }
        let bytes = render(self.drawn.as_ref().map(|(f, _)| f.as_slice()), &frame, cursor);
        // A closed output (a pipe whose reader left) just stops the drawing.
        let _ = self.out.write_all(&bytes).and_then(|()| self.out.flush());
        self.drawn = Some((frame, cursor));
    }

    /// The last frame, then the terminal left as it was: colours reset, cursor shown,
    /// below the screen.
    pub fn finish(&mut self, ram: &GuestRam, cga: &Cga) {
        self.refresh(ram, cga, None);
        let _ = self.out.flush();
        crate::host::terminal::end_display();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_page_437_tables_are_complete() {
        assert_eq!(CP437_LOW.chars().count(), 32);
        assert_eq!(CP437_HIGH.chars().count(), 128);
        assert_eq!(glyph(b'A'), 'A');
        assert_eq!(glyph(0xC4), '─');
        assert_eq!(glyph(0xDB), '█');
        assert_eq!(glyph(0x01), '☺');
        assert_eq!(glyph(0), ' ');
    }

    fn blank() -> Vec<u8> {
        [0x20, 0x07].repeat(COLUMNS * ROWS)
    }

    #[test]
    fn first_frame_draws_every_row_then_only_changes() {
        let mut screen = blank();
        let all = String::from_utf8(render(None, &screen, Some((2, 0)))).unwrap();
        assert_eq!(all.matches("\x1b[0;37;40m").count(), ROWS, "one colour change per row");
        assert!(all.starts_with("\x1b[1;1H\x1b[0;37;40m    "));
        assert!(all.ends_with("\x1b[3;1H\x1b[?25h"));
        // "Hi" on row 5, column 10, bright yellow on blue, blinking.
        let at = (4 * COLUMNS + 9) * 2;
        screen[at..at + 4].copy_from_slice(&[b'H', 0x9E, b'i', 0x9E]);
        let old = blank();
        let diff = String::from_utf8(render(Some(&old), &screen, None)).unwrap();
        assert_eq!(diff, format!("\x1b[5;1H\x1b[0;37;40m{}\x1b[0;93;44;5mHi\x1b[0;37;40m{}\x1b[?25l", " ".repeat(9), " ".repeat(69)));
    }
}
