//! Runs small guest programs through the translator with a minimal run loop.

use bt86_shadow_mmu::{GuestRam, Window};
use bt86_translator::*;
use iced_x86::code_asm::*;

struct Identity<'a>(&'a GuestRam);

impl CodeMemory for Identity<'_> {
    fn code_page(&mut self, linear: u32) -> Result<CodePage, FetchFault> {
        Ok(CodePage { phys: linear as u64, global: true })
    }
    fn read_phys(&self, phys: u64, buf: &mut [u8]) {
        self.0.read(phys, buf)
    }
}

/// Runs from `eip` until a `hlt`; returns the context.
fn run(ram: &mut GuestRam, t: &mut Translator, ctx: &mut Context, eip: u32) -> u32 {
    let mode = Mode::flat32();
    t.attach(ctx, mode);
    ctx.eip = eip;
    let mut exits = 0;
    let mut host = None;
    loop {
        let h = match host.take() {
            Some(h) => h,
            None => {
                let key = FragKey { linear: ctx.eip, phys: ctx.eip as u64, cs_base: 0, mode };
                let id = match t.lookup(&key) {
                    Some(id) => id,
                    None => t
                        .translate(&mut Identity(ram), Request { linear: ctx.eip, eip: ctx.eip, cs_base: 0, mode, transient: false })
                        .unwrap(),
                };
                t.fragment(id).body
            }
        };
        let r = t.run(ctx, h);
        exits += 1;
        match r {
            ExitReason::Chain => {
                let link = t.link_of_exit(ctx);
                ctx.eip = ctx.exit_eip;
                let key = FragKey { linear: ctx.eip, phys: ctx.eip as u64, cs_base: 0, mode };
                let id = match t.lookup(&key) {
                    Some(id) => id,
                    None => t
                        .translate(&mut Identity(ram), Request { linear: ctx.eip, eip: ctx.eip, cs_base: 0, mode, transient: false })
                        .unwrap(),
                };
                t.link(link, id);
                host = Some(t.fragment(id).body);
            }
            ExitReason::IblMiss => {
                ctx.eip = ctx.exit_eip;
                let key = FragKey { linear: ctx.eip, phys: ctx.eip as u64, cs_base: 0, mode };
                let id = match t.lookup(&key) {
                    Some(id) => id,
                    None => t
                        .translate(&mut Identity(ram), Request { linear: ctx.eip, eip: ctx.eip, cs_base: 0, mode, transient: false })
                        .unwrap(),
                };
                t.ibl_insert(ctx.eip, id);
                host = Some(t.fragment(id).body);
            }
            ExitReason::Callout => {
                let c = *t.callout(ctx.exit_arg);
                ctx.eip = c.eip;
                assert_eq!(c.instr.mnemonic(), iced_x86::Mnemonic::Hlt, "unexpected callout");
                return exits;
            }
            r => panic!("unexpected exit {r:?}"),
        }
    }
}

#[test]
fn straight_line_calls_loops_and_memory() {
    let mut window = Window::reserve(bt86_shadow_mmu::WindowKind::Kernel).unwrap();
    let mut ram = GuestRam::new(16 << 20).unwrap();
    window.map_identity(&ram).unwrap();
    let mut t = Translator::new(
        8 << 20,
        bt86_translator::WindowBases { user: bt86_shadow_mmu::WindowKind::User.base(), kernel: bt86_shadow_mmu::WindowKind::Kernel.base() },
    )
    .unwrap();
    let mut ctx = Context::new_boxed();

    let mut a = CodeAssembler::new(32).unwrap();
    let mut f = a.create_label();
    let mut lp = a.create_label();
    let mut end = a.create_label();
    a.mov(esp, 0x9000u32).unwrap();
    a.mov(eax, 5u32).unwrap();
    a.add(eax, ebx).unwrap();
    a.mov(dword_ptr(0x2000), eax).unwrap();
    a.push(eax).unwrap();
    a.pop(ecx).unwrap();
    a.call(f).unwrap();
    a.mov(ecx, 10u32).unwrap();
    a.xor(edx, edx).unwrap();
    a.set_label(&mut lp).unwrap();
    a.add(edx, ecx).unwrap();
    a.dec(ecx).unwrap();
    a.jnz(lp).unwrap();
    a.mov(ah, byte_ptr(esp - 4)).unwrap();
    a.jmp(end).unwrap();
    a.set_label(&mut f).unwrap();
    a.inc(eax).unwrap();
    a.ret().unwrap();
    a.set_label(&mut end).unwrap();
    a.mov(esi, 0x2000u32).unwrap();
    a.mov(edi, 0x3000u32).unwrap();
    a.mov(ecx, 4u32).unwrap();
    a.rep().movsb().unwrap();
    a.hlt().unwrap();
    let code = a.assemble(0x1000).unwrap();
    ram.write(0x1000, &code);
    ctx.gpr[reg::EBX] = 7;
    run(&mut ram, &mut t, &mut ctx, 0x1000);
    assert_eq!(ram.read_u32(0x2000), 12);
    assert_eq!(ram.read_u32(0x3000), 12);
    assert_eq!(ctx.gpr[reg::EDX], 55);
    assert_eq!(ctx.gpr[reg::EAX] & 0xFF, 13);
    // The last thing written below ESP was the call's return address.
    assert_eq!(ctx.gpr[reg::EAX] >> 8 & 0xFF, ram.read_u32(0x8FFC) & 0xFF);
    assert_eq!(ram.read_u32(0x8FFC) & 0xFFFF_0000, 0, "return address is near 0x1000");
    assert_eq!(ctx.gpr[reg::ESP], 0x9000);
    assert_eq!(ctx.gpr[reg::ESI], 0x2004);
    assert_eq!(ctx.gpr[reg::EDI], 0x3004);
    assert_eq!(ctx.eip as usize, 0x1000 + code.len() - 1);
}
