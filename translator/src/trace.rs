//! `--trace-tc`: each new fragment as guest code beside the host code it became, for
//! teaching (and debugging) the translator.

use std::fmt::Write;

use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter};

use crate::fragment::{FragId, Fragment};

/// Formats a fragment: every guest instruction followed by its host instructions, then
/// the exit stubs.
pub fn format_fragment(id: FragId, frag: &Fragment, guest: &[(usize, Instruction)], code: &[u8], base: u64) -> String {
    let mut out = String::new();
    let mut fmt = IntelFormatter::new();
    fmt.options_mut().set_hex_prefix("0x");
    fmt.options_mut().set_hex_suffix("");
    fmt.options_mut().set_first_operand_char_index(8);
    let _ = writeln!(
        out,
        "== fragment {}: guest {:#010x} ({} instructions, {} bytes, mode {:#x}) -> host {:#x} ({} bytes)",
        id.index(),
        frag.key.linear,
        frag.instructions,
        frag.guest_len,
        frag.key.mode.0,
        base,
        code.len()
    );
    let host = |out: &mut String, fmt: &mut IntelFormatter, from: usize, to: usize| {
        let mut dec = Decoder::with_ip(64, &code[from..to], base + from as u64, DecoderOptions::NONE);
        let mut s = String::new();
        while dec.can_decode() {
            let i = dec.decode();
            s.clear();
            fmt.format(&i, &mut s);
            let _ = writeln!(out, "      {:>#14x}  {s}", i.ip());
        }
    };
    let body = (frag.body - base) as usize;
    let _ = writeln!(out, "  (entry: pending-interrupt check)");
    host(&mut out, &mut fmt, 0, body);
    let stubs_start = guest.first().map(|g| g.0).unwrap_or(body);
    if stubs_start > body {
        host(&mut out, &mut fmt, body, stubs_start);
    }
    let mut s = String::new();
    for (k, (start, ins)) in guest.iter().enumerate() {
        s.clear();
        fmt.format(ins, &mut s);
        let _ = writeln!(out, "  {:08x}  {s}", ins.ip32());
        let end = guest.get(k + 1).map(|g| g.0).unwrap_or_else(|| stub_start(frag, base, code.len()));
        host(&mut out, &mut fmt, *start, end.max(*start));
    }
    let st = stub_start(frag, base, code.len());
    if st < code.len() {
        let _ = writeln!(out, "  (exit stubs)");
        host(&mut out, &mut fmt, st, code.len());
    }
    out
}

/// Where the exit stubs begin: the host offset of the last fault point's successor is not
/// recorded, so use the lowest stub address any exit jumps to.
fn stub_start(frag: &Fragment, base: u64, len: usize) -> usize {
    let _ = (frag, base);
    len.min(frag.stubs_off as usize)
}
