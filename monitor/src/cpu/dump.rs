//! A human-readable dump of the guest CPU state, printed when the guest stops abnormally
//! (triple fault, an instruction bt86 cannot run).

use std::fmt::Write;

use bt86_translator::{Seg, flags};
use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};

use super::Cpu;

fn flag_names(fl: u32) -> String {
    let names = [
        (flags::CF, "CF"),
        (flags::PF, "PF"),
        (flags::AF, "AF"),
        (flags::ZF, "ZF"),
        (flags::SF, "SF"),
        (flags::TF, "TF"),
        (flags::IF, "IF"),
        (flags::DF, "DF"),
        (flags::OF, "OF"),
        (flags::NT, "NT"),
        (flags::RF, "RF"),
        (flags::VM, "VM"),
        (flags::AC, "AC"),
        (flags::ID, "ID"),
    ];
    let mut s: Vec<&str> = names.iter().filter(|(b, _)| fl & b != 0).map(|(_, n)| *n).collect();
    let iopl = format!("IOPL={}", (fl >> 12) & 3);
    s.push(&iopl);
    s.join(" ")
}

/// Formats the register file, descriptor tables, control registers and the bytes at
/// CS:EIP (disassembled). `code` holds up to 16 bytes read from CS:EIP, if readable.
pub fn format(cpu: &Cpu, code: Option<&[u8]>) -> String {
    let c = &cpu.ctx;
    let g = &c.gpr;
    let mut o = String::new();
    let _ = writeln!(o, "  EAX={:08x} EBX={:08x} ECX={:08x} EDX={:08x}", g[0], g[3], g[1], g[2]);
    let _ = writeln!(o, "  ESI={:08x} EDI={:08x} EBP={:08x} ESP={:08x}", g[6], g[7], g[5], g[4]);
    let fl = cpu.eflags();
    let _ = writeln!(o, "  EIP={:08x} EFLAGS={:08x} [{}] CPL={}", c.eip, fl, flag_names(fl), cpu.cpl);
    for s in Seg::ALL {
        let sc = cpu.segment(s);
        let _ = writeln!(
            o,
            "  {}={:04x} base={:08x} limit={:08x} access={:02x} flags={:x}",
            s.name().to_uppercase(),
            sc.selector,
            sc.base,
            sc.limit,
            sc.access,
            sc.flags
        );
    }
    let _ = writeln!(
        o,
        "  LDTR={:04x} base={:08x} limit={:08x}  TR={:04x} base={:08x} limit={:08x}",
        cpu.ldtr.selector, cpu.ldtr.base, cpu.ldtr.limit, cpu.tr.selector, cpu.tr.base, cpu.tr.limit
    );
    let _ = writeln!(
        o,
        "  GDTR base={:08x} limit={:04x}  IDTR base={:08x} limit={:04x}",
        cpu.gdtr.base, cpu.gdtr.limit, cpu.idtr.base, cpu.idtr.limit
    );
    let _ = writeln!(o, "  CR0={:08x} CR2={:08x} CR3={:08x} CR4={:08x}", cpu.cr0, cpu.ctx.cr2, cpu.cr3, cpu.cr4);
    match code {
        Some(bytes) if !bytes.is_empty() => {
            let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let _ = writeln!(o, "  bytes at CS:EIP: {}", hex.join(" "));
            let bitness = if cpu.segment(Seg::Cs).default_big() { 32 } else { 16 };
            let mut d = Decoder::with_ip(bitness, bytes, c.eip as u64, DecoderOptions::NONE);
            let ins = d.decode();
            let mut s = String::new();
            IntelFormatter::new().format(&ins, &mut s);
            let _ = writeln!(o, "  instruction:     {s}");
        }
        _ => {
            let _ = writeln!(o, "  bytes at CS:EIP: (not readable)");
        }
    }
    o
}
