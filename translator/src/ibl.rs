//! The indirect-branch lookup tables, one per mode, that translated `ret`, `jmp reg`
//! and `call [mem]` consult inline.

use crate::Translator;
use crate::context::{Context, IblEntry, IblTable};
use crate::fragment::FragId;
use crate::mode::Mode;

impl Translator {
    /// Makes `mode`'s table the one translated code uses. Cheap when the mode is
    /// unchanged; call it before entering translated code.
    pub fn select_mode(&mut self, ctx: &mut Context, mode: Mode) {
        if self.ibl_mode == Some(mode) {
            return;
        }
        let base = self.windows.for_mode(mode);
        if self.gs_base != Some(base) {
            crate::set_gs_base(base);
            self.gs_base = Some(base);
        }
        ctx.window_base = base;
        ctx.window_base_neg = base.wrapping_neg();
        let miss = self.stubs.ibl_miss;
        let t = self.ibl.entry(mode).or_insert_with(|| IblTable::new_boxed(miss));
        ctx.ibl_table = &**t as *const IblTable as u64;
        self.ibl_mode = Some(mode);
    }

    /// Records that guest `eip` in the fragment's mode runs fragment `frag`. Does nothing
    /// for an id from before a cache flush.
    pub fn ibl_insert(&mut self, eip: u32, frag: FragId) {
        if !self.table.current(frag) {
            return;
        }
        let f = self.table.frag(frag);
        if !f.valid || f.transient || f.key.mode.has(Mode::TRAP_FLAG) {
            return;
        }
        let (mode, entry) = (f.key.mode, f.entry);
        let miss = self.stubs.ibl_miss;
        let t = self.ibl.entry(mode).or_insert_with(|| IblTable::new_boxed(miss));
        let slot = IblTable::slot(eip);
        let old = t.0[slot];
        // The tables hold plain indices: they are emptied with the fragment table, so an
        // index in them always belongs to the current generation.
        t.0[slot] = IblEntry { neg_eip: eip.wrapping_neg(), fragment: frag.index(), host: entry };
        if old.fragment != u32::MAX && (old.fragment as usize) < self.table.frags.len() {
            self.table.frags[old.fragment as usize].ibl_slots.retain(|&s| s as usize != slot);
        }
        self.table.frag_mut(frag).ibl_slots.push(slot as u16);
        self.reach_add(frag);
        self.stats.ibl_inserts += 1;
    }

    /// Clears the table entries that point to `frag`.
    pub(crate) fn ibl_remove(&mut self, frag: FragId) {
        let f = self.table.frag_mut(frag);
        let slots = std::mem::take(&mut f.ibl_slots);
        let miss = self.stubs.ibl_miss;
        if let Some(t) = self.ibl.get_mut(&f.key.mode) {
            for s in slots {
                if t.0[s as usize].fragment == frag.index() {
                    t.0[s as usize] = IblEntry { neg_eip: 0, fragment: u32::MAX, host: miss };
                }
            }
        }
    }

    /// Empties every table (after a flush).
    pub(crate) fn ibl_clear_all(&mut self) {
        let miss = self.stubs.ibl_miss;
        for t in self.ibl.values_mut() {
            t.clear(miss);
        }
    }
}
