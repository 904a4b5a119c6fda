//! TLB flushes cost what they invalidate, not the guest's history: after a long history
//! (thousands of global kernel code pages with cross-page links and indirect-branch
//! entries, and many address spaces' worth of user code forgotten by CR3 writes), a
//! fixed number of CR3 writes and `invlpg`s visits as many entries as on a fresh start.
//! Work is counted ([`TranslatorStats::tlb_flush_visits`]), not timed.

use bt86_shadow_mmu::GuestRam;
use bt86_translator::*;

/// Kernel code: linear 0xC0000000 + n pages → physical 16 MiB + n pages, global.
const KERNEL: u32 = 0xC000_0000;
const KERNEL_PHYS: u64 = 16 << 20;
/// User code: linear 0x08000000 + n pages → physical 4 MiB + n pages, not global.
const USER: u32 = 0x0800_0000;
const USER_PHYS: u64 = 4 << 20;
/// Where each page's `jmp` to the next page is.
const JMP_AT: u32 = 0x100;
/// Where each page's instruction that runs into the next page is.
const STRADDLE_AT: u32 = 0xFFE;

struct Paged<'a>(&'a GuestRam);

fn phys(linear: u32) -> (u64, bool) {
    if linear >= KERNEL { (KERNEL_PHYS + (linear - KERNEL) as u64, true) } else { (USER_PHYS + (linear - USER) as u64, false) }
}

impl CodeMemory for Paged<'_> {
    fn code_page(&mut self, linear: u32) -> Result<CodePage, FetchFault> {
        let (phys, global) = phys(linear);
        Ok(CodePage { phys, global })
    }
    fn read_phys(&self, phys: u64, buf: &mut [u8]) {
        self.0.read(phys, buf)
    }
}

/// Writes code page `linear`: at JMP_AT `jmp` to the next page's JMP_AT; at STRADDLE_AT
/// `mov eax, imm32` (running into the next page) and a `jmp` back to JMP_AT.
fn write_page(ram: &mut GuestRam, linear: u32) {
    let p = phys(linear).0;
    let jmp = |from: u32, to: u32| {
        let mut v = vec![0xE9];
        v.extend_from_slice(&to.wrapping_sub(from + 5).to_le_bytes());
        v
    };
    ram.write(p + JMP_AT as u64, &jmp(linear + JMP_AT, linear + 0x1000 + JMP_AT));
    ram.write(p + STRADDLE_AT as u64, &[0xB8, 1, 2, 3, 4]);
    let after = linear + STRADDLE_AT + 5;
    ram.write(phys(after).0, &jmp(after, linear + JMP_AT));
}

struct Guest {
    ram: GuestRam,
    t: Translator,
}

impl Guest {
    fn new() -> Guest {
        let mut ram = GuestRam::new(64 << 20).unwrap();
        for n in 0..3000 {
            write_page(&mut ram, USER + n * 0x1000);
        }
        for n in 0..6000 {
            write_page(&mut ram, KERNEL + n * 0x1000);
        }
        Guest {
            ram,
            t: Translator::new(
                DEFAULT_TC_SIZE,
                bt86_translator::WindowBases {
                    user: bt86_shadow_mmu::WindowKind::User.base(),
                    kernel: bt86_shadow_mmu::WindowKind::Kernel.base(),
                },
            )
            .unwrap(),
        }
    }

    /// The fragment at `linear`, as the monitor finds it: looked up, or translated.
    fn frag(&mut self, linear: u32) -> FragId {
        let mode = Mode::flat32();
        let key = FragKey { linear, phys: phys(linear).0, cs_base: 0, mode };
        match self.t.lookup(&key) {
            Some(id) => id,
            None => self.t.translate(&mut Paged(&self.ram), Request { linear, eip: linear, cs_base: 0, mode, transient: false }).unwrap(),
        }
    }

    /// Runs page `linear`'s `jmp` as a translated run would: chains it to the next page
    /// (a cross-page link) and enters the target through the indirect-branch table.
    fn run_page(&mut self, linear: u32) {
        let from = self.frag(linear + JMP_AT);
        let link = self.t.fragment(from).exits[0];
        let target = self.t.link_info(link).target_eip;
        let to = self.frag(target);
        self.t.link(link, to);
        self.t.ibl_insert(linear + JMP_AT, from);
        self.t.ibl_insert(target, to);
    }

    /// Translates page `linear`'s instruction that straddles into the next page.
    fn straddle(&mut self, linear: u32) {
        self.frag(linear + STRADDLE_AT);
    }

    fn visits(&self) -> u64 {
        self.t.stats().tlb_flush_visits
    }
}

/// A fixed workload of CR3 writes and `invlpg`s over code pages no history touched;
/// returns the entries the flushes visited.
fn measured_flushes(g: &mut Guest) -> u64 {
    let before = g.visits();
    let kernel = KERNEL + 5000 * 0x1000;
    let user = USER + 2900 * 0x1000;
    for n in 0..8 {
        g.run_page(kernel + n * 0x1000);
    }
    for _ in 0..10 {
        // A process runs its code, then the kernel switches address spaces.
        for n in 0..8 {
            g.run_page(user + n * 0x1000);
        }
        g.straddle(user);
        g.t.tlb_flush(false);
    }
    for n in 0..8 {
        g.t.tlb_flush_page((kernel >> 12) + n);
    }
    g.visits() - before
}

#[test]
fn flushes_cost_the_same_after_a_long_history() {
    let mut fresh = Guest::new();
    let fresh_work = measured_flushes(&mut fresh);
    assert!(fresh_work > 0, "the workload must find entries to forget");

    let mut old = Guest::new();
    // Thousands of kernel pages chained to each other and entered indirectly (global:
    // CR3 writes keep them) ...
    for n in 0..4000 {
        old.run_page(KERNEL + n * 0x1000);
        old.straddle(KERNEL + n * 0x1000);
    }
    // ... and many processes' user code, each forgotten by a CR3 write, and `invlpg`s of
    // pages that held nothing.
    for p in 0..100 {
        for n in 0..25 {
            old.run_page(USER + (p * 25 + n) * 0x1000);
        }
        old.t.tlb_flush(false);
        old.t.tlb_flush_page(0x1234 + p);
    }
    let s = old.t.stats();
    assert!(s.ibl_inserts >= 10_000 && s.links_patched >= 6000 && s.fragments >= 10_000, "history too short: {s:?}");
    assert_eq!(s.flushes, 0, "the history must stay in the cache");

    let old_work = measured_flushes(&mut old);
    eprintln!("TLB-flush entries visited: {fresh_work} fresh, {old_work} after the history");
    assert!(old_work <= 2 * fresh_work, "the same flushes visited {old_work} entries after a long history, {fresh_work} on a fresh start");
}

/// A full flush (CR4.PGE toggled, paging turned off) forgets global code too, and leaves
/// nothing behind for later flushes to visit.
#[test]
fn full_flush_forgets_everything_once() {
    let mut g = Guest::new();
    for n in 0..100 {
        g.run_page(KERNEL + n * 0x1000);
        g.run_page(USER + n * 0x1000);
    }
    g.t.tlb_flush(false);
    let cr3 = g.visits();
    assert!(cr3 > 0 && cr3 < 400, "a CR3 write visits the user entries only: {cr3}");
    g.t.tlb_flush(true);
    let full = g.visits() - cr3;
    assert!(full >= 100, "a full flush visits the global entries: {full}");
    g.t.tlb_flush(true);
    g.t.tlb_flush_page(KERNEL >> 12);
    assert_eq!(g.visits() - cr3 - full, 0, "forgotten entries must leave the index");
}

/// A flush parks a straddling fragment instead of dropping it: it comes back, untranslated,
/// when its second page still maps the same frame, and is dropped when it does not (or
/// when its code is written).
#[test]
fn straddlers_come_back_only_onto_the_same_frame() {
    let mut g = Guest::new();
    let at = USER + STRADDLE_AT;
    let key = FragKey { linear: at, phys: phys(at).0, cs_base: 0, mode: Mode::flat32() };
    let second_page = (USER >> 12) + 1;
    let frame = phys(USER + 0x1000).0 >> 12;
    let first = g.frag(at);
    assert_eq!(g.t.fragment(first).straddles, Some(second_page));

    g.t.tlb_flush(false);
    assert_eq!(g.t.lookup(&key), None, "a CR3 write takes it out of the lookup");
    assert_eq!(g.t.parked_second_page(&key), Some(second_page));
    assert_eq!(g.t.unpark(&key, Some(frame)), Some(first), "same second frame: the same fragment");
    assert_eq!(g.t.lookup(&key), Some(first));
    assert_eq!(g.t.stats().fragments, 1);

    g.t.tlb_flush(false);
    assert_eq!(g.t.unpark(&key, Some(frame + 1)), None, "another second frame: not taken back");
    assert!(!g.t.fragment(first).valid, "and invalidated");
    assert_eq!(g.t.parked_second_page(&key), None);

    let again = g.frag(at);
    assert_ne!(again, first);
    g.t.tlb_flush_page(second_page);
    assert_eq!(g.t.parked_second_page(&key), Some(second_page), "an invlpg of its second page parks it");
    assert_eq!(g.t.unpark(&key, None), None, "a second page that cannot be fetched: not taken back");
    assert!(!g.t.fragment(again).valid);

    let third = g.frag(at);
    g.t.tlb_flush(false);
    g.t.invalidate_page(frame);
    assert_eq!(g.t.parked_second_page(&key), None, "a write to its code drops it from the parked set too");
    assert_eq!(g.t.unpark(&key, Some(frame)), None);
    assert!(!g.t.fragment(third).valid);
}

/// A CR3 write keeps what reaches code on pages the new address space maps to the same
/// frames (another process running the same program or library), checking each code page
/// once, and forgets exactly the code on pages that map other frames now.
#[test]
fn cr3_writes_keep_code_whose_pages_map_the_same_frames() {
    let mut g = Guest::new();
    for n in 0..10 {
        g.run_page(USER + n * 0x1000);
    }
    let at = USER + 3 * 0x1000 + STRADDLE_AT;
    let straddler = g.frag(at);
    let key = FragKey { linear: at, phys: phys(at).0, cs_base: 0, mode: Mode::flat32() };
    let same = |page: u32, user: bool| {
        assert!(!user, "the guest's code runs at CPL 0");
        Some(phys(page << 12).0 >> 12)
    };
    let before = g.t.stats();
    g.t.tlb_flush_keeping(false, same);
    let s = g.t.stats();
    assert_eq!(s.links_unpatched, before.links_unpatched, "no link undone");
    assert_eq!(s.straddlers_parked, before.straddlers_parked, "no straddler parked");
    // The jmp fragments of pages 0-10 (linked or entered through the table) and the
    // straddler.
    assert_eq!(s.tlb_flush_kept - before.tlb_flush_kept, 12);
    let checked = s.tlb_flush_visits - before.tlb_flush_visits;
    assert!(checked <= 12, "one check per code page (11 pages), {checked} visits");
    assert_eq!(g.t.lookup(&key), Some(straddler));

    // Page 5 maps another frame now: the link from page 4's jmp into it goes, and the
    // straddler (pages 3 and 4) stays.
    let from_4 = g.frag(USER + 4 * 0x1000 + JMP_AT);
    let into_5 = g.t.fragment(from_4).exits[0];
    assert!(g.t.link_info(into_5).to.is_some());
    let moved = (USER >> 12) + 5;
    g.t.tlb_flush_keeping(false, |page, user| if page == moved { Some(0x7777) } else { same(page, user) });
    assert!(g.t.link_info(into_5).to.is_none(), "the link into the remapped page is undone");
    let from_3 = g.frag(USER + 3 * 0x1000 + JMP_AT);
    let into_4 = g.t.fragment(from_3).exits[0];
    assert!(g.t.link_info(into_4).to.is_some(), "the others stay");
    assert_eq!(g.t.lookup(&key), Some(straddler));

    // A page whose fetch would set an accessed bit (or faults) now: forgotten as well.
    g.t.tlb_flush_keeping(false, |page, user| if page == (USER >> 12) + 4 { None } else { same(page, user) });
    assert!(g.t.link_info(into_4).to.is_none());
    assert_eq!(g.t.lookup(&key), None, "the straddler runs into that page: parked");
    assert_eq!(g.t.parked_second_page(&key), Some((USER >> 12) + 4));
}
