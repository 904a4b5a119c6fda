//! Terminal bytes as PC key strokes, and key strokes as PS/2 scan codes.
//!
//! [`next_key`] reads what a terminal sends for one key — a printable ASCII character,
//! Enter (CR or LF), Backspace (DEL or BS), Tab, Escape, a control character (Ctrl +
//! letter), an ANSI cursor or editing key (`ESC [ A`, `ESC O A`, `ESC [ 3 ~`, ...) — as a
//! [`KeyStroke`]: a key of a US keyboard with Shift and Ctrl held or not.
//! [`KeyStroke::scan_codes`] turns it into the bytes a PS/2 keyboard sends for pressing
//! and releasing it, modifiers around it, in scan code set 1 (what the i8042 passes on
//! when it translates, command byte bit 6, as a BIOS leaves it) or set 2 (untranslated).
//! Set 2 breaks are `F0 code`; set 1 breaks are the make code with bit 7 set; extended
//! keys carry an `E0` prefix in both.

/// One key of a US PC keyboard by its scan codes: set 1 and set 2 make codes, and
/// whether it is an extended (`E0`) key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// Set 1 make code.
    pub set1: u8,
    /// Set 2 make code.
    pub set2: u8,
    /// Sent with an `E0` prefix.
    pub extended: bool,
}

const fn key(set1: u8, set2: u8) -> Key {
    Key { set1, set2, extended: false }
}

const fn ext(set1: u8, set2: u8) -> Key {
    Key { set1, set2, extended: true }
}

/// Left Shift.
pub const SHIFT: Key = key(0x2A, 0x12);
/// Left Ctrl.
pub const CTRL: Key = key(0x1D, 0x14);
/// Escape.
pub const ESCAPE: Key = key(0x01, 0x76);
/// Backspace.
pub const BACKSPACE: Key = key(0x0E, 0x66);
/// Tab.
pub const TAB: Key = key(0x0F, 0x0D);
/// Enter.
pub const ENTER: Key = key(0x1C, 0x5A);
/// Space.
pub const SPACE: Key = key(0x39, 0x29);
/// Cursor up.
pub const UP: Key = ext(0x48, 0x75);
/// Cursor down.
pub const DOWN: Key = ext(0x50, 0x72);
/// Cursor right.
pub const RIGHT: Key = ext(0x4D, 0x74);
/// Cursor left.
pub const LEFT: Key = ext(0x4B, 0x6B);
/// Home.
pub const HOME: Key = ext(0x47, 0x6C);
/// End.
pub const END: Key = ext(0x4F, 0x69);
/// Insert.
pub const INSERT: Key = ext(0x52, 0x70);
/// Delete.
pub const DELETE: Key = ext(0x53, 0x71);
/// Page up.
pub const PAGE_UP: Key = ext(0x49, 0x7D);
/// Page down.
pub const PAGE_DOWN: Key = ext(0x51, 0x7A);

/// The keys of the main block with the character each gives unshifted and shifted.
const CHARACTER_KEYS: [(u8, u8, Key); 47] = [
    (b'1', b'!', key(0x02, 0x16)),
    (b'2', b'@', key(0x03, 0x1E)),
    (b'3', b'#', key(0x04, 0x26)),
    (b'4', b'$', key(0x05, 0x25)),
    (b'5', b'%', key(0x06, 0x2E)),
    (b'6', b'^', key(0x07, 0x36)),
    (b'7', b'&', key(0x08, 0x3D)),
    (b'8', b'*', key(0x09, 0x3E)),
    (b'9', b'(', key(0x0A, 0x46)),
    (b'0', b')', key(0x0B, 0x45)),
    (b'-', b'_', key(0x0C, 0x4E)),
    (b'=', b'+', key(0x0D, 0x55)),
    (b'q', b'Q', key(0x10, 0x15)),
    (b'w', b'W', key(0x11, 0x1D)),
    (b'e', b'E', key(0x12, 0x24)),
    (b'r', b'R', key(0x13, 0x2D)),
    (b't', b'T', key(0x14, 0x2C)),
    (b'y', b'Y', key(0x15, 0x35)),
    (b'u', b'U', key(0x16, 0x3C)),
    (b'i', b'I', key(0x17, 0x43)),
    (b'o', b'O', key(0x18, 0x44)),
    (b'p', b'P', key(0x19, 0x4D)),
    (b'[', b'{', key(0x1A, 0x54)),
    (b']', b'}', key(0x1B, 0x5B)),
    (b'a', b'A', key(0x1E, 0x1C)),
    (b's', b'S', key(0x1F, 0x1B)),
    (b'd', b'D', key(0x20, 0x23)),
    (b'f', b'F', key(0x21, 0x2B)),
    (b'g', b'G', key(0x22, 0x34)),
    (b'h', b'H', key(0x23, 0x33)),
    (b'j', b'J', key(0x24, 0x3B)),
    (b'k', b'K', key(0x25, 0x42)),
    (b'l', b'L', key(0x26, 0x4B)),
    (b';', b':', key(0x27, 0x4C)),
    (b'\'', b'"', key(0x28, 0x52)),
    (b'`', b'~', key(0x29, 0x0E)),
    (b'\\', b'|', key(0x2B, 0x5D)),
    (b'z', b'Z', key(0x2C, 0x1A)),
    (b'x', b'X', key(0x2D, 0x22)),
    (b'c', b'C', key(0x2E, 0x21)),
    (b'v', b'V', key(0x2F, 0x2A)),
    (b'b', b'B', key(0x30, 0x32)),
    (b'n', b'N', key(0x31, 0x31)),
    (b'm', b'M', key(0x32, 0x3A)),
    (b',', b'<', key(0x33, 0x41)),
    (b'.', b'>', key(0x34, 0x49)),
    (b'/', b'?', key(0x35, 0x4A)),
];

/// A key pressed and released, with Shift and Ctrl held around it or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyStroke {
    /// The key.
    pub key: Key,
    /// Shift is held.
    pub shift: bool,
    /// Ctrl is held.
    pub ctrl: bool,
}

impl KeyStroke {
    fn plain(key: Key) -> KeyStroke {
        KeyStroke { key, shift: false, ctrl: false }
    }

    /// The bytes the keyboard sends: modifiers pressed, the key pressed and released,
    /// modifiers released (in the reverse order), in set 1 if `set1`, else set 2.
    pub fn scan_codes(&self, set1: bool) -> Vec<u8> {
        let mods: Vec<Key> = [(self.ctrl, CTRL), (self.shift, SHIFT)].into_iter().filter(|m| m.0).map(|m| m.1).collect();
        let mut out = Vec::new();
        let mut send = |k: Key, make: bool| {
            if k.extended {
                out.push(0xE0);
            }
            match (set1, make) {
                (true, true) => out.push(k.set1),
                (true, false) => out.push(k.set1 | 0x80),
                (false, true) => out.push(k.set2),
                (false, false) => out.extend([0xF0, k.set2]),
            }
        };
        for &m in &mods {
            send(m, true);
        }
        send(self.key, true);
        send(self.key, false);
        for &m in mods.iter().rev() {
            send(m, false);
        }
        out
    }
}

/// The key stroke at the start of `bytes` and how many bytes it took; `None` with the
/// count of bytes to skip for a byte no key gives (non-ASCII, an unknown escape
/// sequence). An escape sequence cut short at the end of `bytes` is an Escape key and
/// the bytes after it are keys of their own. `bytes` must not be empty.
pub fn next_key(bytes: &[u8]) -> (Option<KeyStroke>, usize) {
    let b = bytes[0];
    if b == 0x1B {
        if let Some(found) = escape_sequence(&bytes[1..]) {
            return (found.0.map(KeyStroke::plain), found.1 + 1);
        }
        return (Some(KeyStroke::plain(ESCAPE)), 1);
    }
    let stroke = match b {
        b'\r' | b'\n' => KeyStroke::plain(ENTER),
        0x7F | 0x08 => KeyStroke::plain(BACKSPACE),
        b'\t' => KeyStroke::plain(TAB),
        b' ' => KeyStroke::plain(SPACE),
        // Ctrl-@ and Ctrl-A .. Ctrl-Z (but the ones above), Ctrl-[ \ ] ^ _.
        0x00..=0x1F => {
            let Some(k) = character_key(b | 0x60).or_else(|| character_key(b | 0x40)) else {
                return (None, 1);
            };
            KeyStroke { ctrl: true, ..k }
        }
        _ => match character_key(b) {
            Some(k) => k,
            None => return (None, 1),
        },
    };
    (Some(stroke), 1)
}

/// The key for a printable character, shifted if it is a shifted one.
fn character_key(c: u8) -> Option<KeyStroke> {
    CHARACTER_KEYS.iter().find_map(|&(plain, shifted, key)| {
        (c == plain || c == shifted).then_some(KeyStroke { key, shift: c == shifted && plain != shifted, ctrl: false })
    })
}

/// After an ESC: a CSI (`[`) or SS3 (`O`) sequence for a cursor or editing key, its key
/// (None: a complete sequence bt86 has no key for) and its length; None when `rest`
/// holds no complete sequence.
fn escape_sequence(rest: &[u8]) -> Option<(Option<Key>, usize)> {
    let (&intro, body) = rest.split_first()?;
    if intro != b'[' && intro != b'O' {
        return None;
    }
    // Parameters (digits and ';'), then the final byte.
    let params = body.iter().take_while(|c| c.is_ascii_digit() || **c == b';').count();
    let &last = body.get(params)?;
    if !(0x40..=0x7E).contains(&last) {
        return None;
    }
    let key = match (last, &body[..params]) {
        (b'A', _) => Some(UP),
        (b'B', _) => Some(DOWN),
        (b'C', _) => Some(RIGHT),
        (b'D', _) => Some(LEFT),
        (b'H', _) | (b'~', b"1") | (b'~', b"7") => Some(HOME),
        (b'F', _) | (b'~', b"4") | (b'~', b"8") => Some(END),
        (b'~', b"2") => Some(INSERT),
        (b'~', b"3") => Some(DELETE),
        (b'~', b"5") => Some(PAGE_UP),
        (b'~', b"6") => Some(PAGE_DOWN),
        _ => None,
    };
    Some((key, 2 + params))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(bytes: &[u8], set1: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let (k, n) = next_key(&bytes[at..]);
            if let Some(k) = k {
                out.extend(k.scan_codes(set1));
            }
            at += n;
        }
        out
    }

    #[test]
    fn letters_digits_and_capitals_in_set_1() {
        assert_eq!(keys(b"a", true), [0x1E, 0x9E]);
        assert_eq!(keys(b"A", true), [0x2A, 0x1E, 0x9E, 0xAA]);
        assert_eq!(keys(b"1!", true), [0x02, 0x82, 0x2A, 0x02, 0x82, 0xAA]);
        assert_eq!(keys(b"z ", true), [0x2C, 0xAC, 0x39, 0xB9]);
    }

    #[test]
    fn enter_backspace_tab_escape() {
        assert_eq!(keys(b"\r", true), [0x1C, 0x9C]);
        assert_eq!(keys(b"\n", true), [0x1C, 0x9C]);
        assert_eq!(keys(b"\x7f", true), [0x0E, 0x8E]);
        assert_eq!(keys(b"\x08", true), [0x0E, 0x8E]);
        assert_eq!(keys(b"\t", true), [0x0F, 0x8F]);
        assert_eq!(keys(b"\x1b", true), [0x01, 0x81]);
        assert_eq!(keys(b"\x1bx", true), [0x01, 0x81, 0x2D, 0xAD], "ESC then a key");
    }

    #[test]
    fn arrows_and_editing_keys_from_ansi_sequences() {
        assert_eq!(keys(b"\x1b[A", true), [0xE0, 0x48, 0xE0, 0xC8]);
        assert_eq!(keys(b"\x1bOB", true), [0xE0, 0x50, 0xE0, 0xD0]);
        assert_eq!(keys(b"\x1b[C\x1b[D", true), [0xE0, 0x4D, 0xE0, 0xCD, 0xE0, 0x4B, 0xE0, 0xCB]);
        assert_eq!(keys(b"\x1b[3~", true), [0xE0, 0x53, 0xE0, 0xD3]);
        assert_eq!(keys(b"\x1b[1;5A", true), [0xE0, 0x48, 0xE0, 0xC8], "modifiers are dropped");
        assert_eq!(keys(b"\x1b[99~", true), [], "a sequence with no key");
        assert_eq!(keys(b"\x1b[A", false), [0xE0, 0x75, 0xE0, 0xF0, 0x75]);
    }

    #[test]
    fn control_characters_are_ctrl_and_a_letter() {
        assert_eq!(keys(b"\x03", true), [0x1D, 0x2E, 0xAE, 0x9D]);
        assert_eq!(keys(b"\x03", false), [0x14, 0x21, 0xF0, 0x21, 0xF0, 0x14]);
    }

    #[test]
    fn set_2_breaks_and_shift() {
        assert_eq!(keys(b"a", false), [0x1C, 0xF0, 0x1C]);
        assert_eq!(keys(b"?", false), [0x12, 0x4A, 0xF0, 0x4A, 0xF0, 0x12]);
        assert_eq!(keys(&[0xC3, 0xA9], false), [], "non-ASCII is skipped");
    }

    /// The i8042's translation (QEMU's `translate_table`, from set 2 to set 1) for every
    /// key here: each pair must agree with it.
    #[test]
    fn set_1_and_set_2_codes_agree_with_the_controller_translation() {
        // A few rows of the translation (set 2 code -> set 1 code).
        let translation: &[(u8, u8)] = &[
            (0x0D, 0x0F),
            (0x0E, 0x29),
            (0x12, 0x2A),
            (0x14, 0x1D),
            (0x1C, 0x1E),
            (0x29, 0x39),
            (0x5A, 0x1C),
            (0x66, 0x0E),
            (0x6B, 0x4B),
            (0x72, 0x50),
            (0x74, 0x4D),
            (0x75, 0x48),
            (0x76, 0x01),
        ];
        for &(s2, s1) in translation {
            let all = CHARACTER_KEYS.iter().map(|c| c.2).chain([SHIFT, CTRL, ESCAPE, BACKSPACE, TAB, ENTER, SPACE, UP, DOWN, RIGHT, LEFT]);
            let k = all.clone().find(|k| k.set2 == s2).unwrap_or_else(|| panic!("no key with set 2 code {s2:#x}"));
            assert_eq!(k.set1, s1, "set 2 code {s2:#x}");
        }
    }
}
