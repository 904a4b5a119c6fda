//! Runs small guest programs through the translator with a minimal run loop.

use bt86_shadow_mmu::{GuestRam, Window};
use bt86_translator::*;
use iced_x86::code_asm::*;

/// The kernel window sits at a fixed address: one test at a time may hold it.
static WINDOW: std::sync::Mutex<()> = std::sync::Mutex::new(());

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

/// 16 MiB of RAM identity-mapped in the kernel window (held until the guard drops), a
/// translator and a context.
fn machine() -> (std::sync::MutexGuard<'static, ()>, Window, GuestRam, Translator, ContextBox) {
    let held = WINDOW.lock().unwrap_or_else(|e| e.into_inner());
    let mut window = Window::reserve(bt86_shadow_mmu::WindowKind::Kernel).unwrap();
    let ram = GuestRam::new(16 << 20).unwrap();
    window.map_identity(&ram).unwrap();
    let t = Translator::new(
        8 << 20,
        bt86_translator::WindowBases { user: bt86_shadow_mmu::WindowKind::User.base(), kernel: bt86_shadow_mmu::WindowKind::Kernel.base() },
    )
    .unwrap();
    (held, window, ram, t, Context::new_boxed())
}

#[test]
fn straight_line_calls_loops_and_memory() {
    let (_held, _window, mut ram, mut t, mut ctx) = machine();

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

#[test]
fn an_instruction_that_keeps_faulting_on_device_memory_becomes_a_device_callout() {
    let (_held, _window, mut ram, mut t, mut ctx) = machine();
    let mut a = CodeAssembler::new(32).unwrap();
    a.mov(eax, 5u32).unwrap();
    a.mov(dword_ptr(0x2000), eax).unwrap(); // at 0x1005: the "EOI store"
    a.add(eax, 1u32).unwrap();
    a.hlt().unwrap();
    ram.write(0x1000, &a.assemble(0x1000).unwrap());
    for n in 1..=DEVICE_FAULTS_BEFORE_CALLOUT {
        assert_eq!(t.note_device_fault(0x1005), n == DEVICE_FAULTS_BEFORE_CALLOUT);
    }
    let mode = Mode::flat32();
    t.attach(&mut ctx, mode);
    let id = t.translate(&mut Identity(&ram), Request { linear: 0x1000, eip: 0x1000, cs_base: 0, mode, transient: false }).unwrap();
    assert_eq!(t.run(&mut ctx, t.fragment(id).body), ExitReason::Callout);
    let c = *t.callout(ctx.exit_arg);
    assert_eq!((c.kind, c.eip, c.next_eip), (CalloutKind::Device, 0x1005, 0x100A));
    assert_eq!(ctx.gpr[reg::EAX], 5, "registers are the guest's at the callout");
    // The monitor would store to the device; the fragment goes on after it.
    assert_eq!(t.run(&mut ctx, c.resume.unwrap()), ExitReason::Callout);
    assert_eq!(t.callout(ctx.exit_arg).instr.mnemonic(), iced_x86::Mnemonic::Hlt);
    assert_eq!(ctx.gpr[reg::EAX], 6);
    assert_eq!(ram.read_u32(0x2000), 0, "the store itself is the monitor's");
    // Forgotten (its operand went back to RAM): a plain store again.
    t.forget_device_instruction(0x1005);
    t.invalidate_page(1);
    let id = t.translate(&mut Identity(&ram), Request { linear: 0x1000, eip: 0x1000, cs_base: 0, mode, transient: false }).unwrap();
    assert_eq!(t.run(&mut ctx, t.fragment(id).body), ExitReason::Callout);
    assert_eq!(t.callout(ctx.exit_arg).instr.mnemonic(), iced_x86::Mnemonic::Hlt);
    assert_eq!(ram.read_u32(0x2000), 5);
}
