//! Ids held across a whole-cache flush name nothing: linking, inserting, invalidating
//! with them does nothing, and the checked accessor says they are gone — however many
//! fragments the new generation has made at the same indices.

use bt86_shadow_mmu::GuestRam;
use bt86_translator::*;

struct Flat<'a>(&'a GuestRam);

impl CodeMemory for Flat<'_> {
    fn code_page(&mut self, linear: u32) -> Result<CodePage, FetchFault> {
        Ok(CodePage { phys: linear as u64, global: true })
    }
    fn read_phys(&self, phys: u64, buf: &mut [u8]) {
        self.0.read(phys, buf)
    }
}

/// `jmp` from every 16-byte slot in [0x10000, 0x10000 + n * 16) to the next slot.
fn jump_chain(n: u32) -> GuestRam {
    let mut ram = GuestRam::new(4 << 20).unwrap();
    for i in 0..n {
        let at = 0x10000 + i * 16;
        let mut jmp = vec![0xE9];
        jmp.extend_from_slice(&11u32.to_le_bytes()); // to at + 16
        ram.write(at as u64, &jmp);
    }
    ram
}

fn translate(t: &mut Translator, ram: &GuestRam, linear: u32) -> FragId {
    let req = Request { linear, eip: linear, cs_base: 0, mode: Mode::flat32(), transient: false };
    t.translate(&mut Flat(ram), req).unwrap()
}

#[test]
fn ids_from_before_a_flush_name_nothing() {
    let ram = jump_chain(4096);
    let mut t = Translator::new(
        MIN_TC_SIZE,
        bt86_translator::WindowBases { user: bt86_shadow_mmu::WindowKind::User.base(), kernel: bt86_shadow_mmu::WindowKind::Kernel.base() },
    )
    .unwrap();
    let first = translate(&mut t, &ram, 0x10000);
    let held_link = t.fragment(first).exits[0];
    let generation = t.generation();
    // Translate the chain until the cache has been flushed (the run loop does this while
    // it holds the link of the exit that led to the translation).
    let mut i = 1;
    let mut last = first;
    while t.stats().flushes == 0 {
        last = translate(&mut t, &ram, 0x10000 + i * 16);
        t.ibl_insert(0x10000 + i * 16, last);
        i += 1;
        assert!(i < 4096, "a {MIN_TC_SIZE}-byte cache never filled");
    }
    assert_ne!(t.generation(), generation);
    assert!(t.fragment_if_current(first).is_none(), "a fragment id from before the flush");
    // Refill the new generation past the held ids' indices, so a plain index would hit
    // a live fragment and link.
    let mut fresh = vec![last];
    for j in 0..8 {
        fresh.push(translate(&mut t, &ram, 0x10000 + (i + j) * 16));
    }
    assert!(fresh.iter().any(|f| f.index() == first.index()));
    let before = t.stats();
    t.link(held_link, fresh[2]);
    t.ibl_insert(0x10000, first);
    t.invalidate(first);
    let after = t.stats();
    assert_eq!(after.links_patched, before.links_patched, "a stale link id must not patch anything");
    assert_eq!(after.ibl_inserts, before.ibl_inserts, "a stale fragment id must not enter the lookup table");
    assert_eq!(after.invalidations, before.invalidations, "a stale fragment id must not invalidate a new fragment");
    assert!(fresh.iter().all(|&f| t.fragment_if_current(f).is_some_and(|f| f.valid)));
    // The current ids work.
    let link = t.fragment(fresh[1]).exits[0];
    t.link(link, fresh[2]);
    assert_eq!(t.stats().links_patched, before.links_patched + 1);
}
