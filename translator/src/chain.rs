//! Linking: patching a fragment's direct-branch exit to jump straight to the target
//! fragment, and undoing that when the target goes away.

use crate::Translator;
use crate::fragment::{FragId, LinkId};

impl Translator {
    /// Patches link `link` to jump to fragment `to` (its checked entry or its body,
    /// as the link requires). Both must be valid and in the same mode.
    pub fn link(&mut self, link: LinkId, to: FragId) {
        let l = self.table.links[link as usize];
        let target = &self.table.frags[to as usize];
        debug_assert!(target.valid && !target.transient);
        let from = &self.table.frags[l.from as usize];
        if !from.valid || from.transient || !l.chainable || from.key.mode != target.key.mode || l.to.is_some() {
            return;
        }
        let dest = if l.checked { target.entry } else { target.body };
        // A link into code on a linear page the source does not cover goes stale when
        // that page's translation changes: remember it for TLB flushes.
        let from_pages = [Some(from.key.linear >> 12), from.straddles];
        let cross_page = [Some(target.key.linear >> 12), target.straddles].iter().flatten().any(|p| !from_pages.contains(&Some(*p)));
        self.tc.patch_rel32(l.site, dest);
        self.table.links[link as usize].to = Some(to);
        self.table.links[link as usize].cross_page = cross_page;
        if cross_page {
            self.table.cross_links.push(link);
        }
        self.table.frags[to as usize].incoming.push(link);
        self.stats.links_patched += 1;
    }

    /// Points link `link` back at its exit stub.
    fn unlink(&mut self, link: LinkId) {
        let l = self.table.links[link as usize];
        if l.to.is_some() {
            self.tc.patch_rel32(l.site, l.stub);
            self.table.links[link as usize].to = None;
            self.stats.links_unpatched += 1;
        }
    }

    /// The guest's TLB was flushed (`all`: global translations too): code reached
    /// without a lookup — cross-page links, indirect-branch entries, fragments whose
    /// last instruction runs into another page — may now be stale, so it goes.
    pub fn tlb_flush(&mut self, all: bool) {
        self.forget_translations(|f| all || !f.global);
    }

    /// `invlpg` of linear page `page`.
    pub fn tlb_flush_page(&mut self, page: u32) {
        self.forget_translations(|f| f.key.linear >> 12 == page || f.straddles == Some(page));
    }

    fn forget_translations(&mut self, stale: impl Fn(&crate::Fragment) -> bool) {
        let links = std::mem::take(&mut self.table.cross_links);
        let mut keep = Vec::with_capacity(links.len());
        for link in links {
            let l = self.table.links[link as usize];
            match l.to {
                Some(to) if stale(&self.table.frags[to as usize]) => self.unlink(link),
                Some(_) => keep.push(link),
                None => {}
            }
        }
        self.table.cross_links = keep;
        let with_ibl = std::mem::take(&mut self.table.ibl_frags);
        let mut keep = Vec::with_capacity(with_ibl.len());
        for id in with_ibl {
            if stale(&self.table.frags[id as usize]) {
                self.ibl_remove(id);
            } else if !self.table.frags[id as usize].ibl_slots.is_empty() {
                keep.push(id);
            }
        }
        self.table.ibl_frags = keep;
        let straddling = std::mem::take(&mut self.table.straddling);
        let mut keep = Vec::with_capacity(straddling.len());
        for id in straddling {
            if stale(&self.table.frags[id as usize]) {
                self.invalidate(id);
            } else if self.table.frags[id as usize].valid {
                keep.push(id);
            }
        }
        self.table.straddling = keep;
    }

    /// Points every link into `frag` back at its exit stub.
    pub(crate) fn unlink_incoming(&mut self, frag: FragId) {
        let incoming = std::mem::take(&mut self.table.frags[frag as usize].incoming);
        for link in incoming {
            if self.table.links[link as usize].to == Some(frag) {
                self.unlink(link);
            }
        }
    }
}
