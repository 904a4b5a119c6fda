//! Linking: patching a fragment's direct-branch exit to jump straight to the target
//! fragment, and undoing that when the target goes away.

use crate::Translator;
use crate::fragment::{FragId, LinkId};

impl Translator {
    /// Patches link `link` to jump to fragment `to` (its checked entry or its body,
    /// as the link requires). Does nothing if either id is from before a cache flush
    /// (the run loop holds a link across the translation of its target, which may have
    /// flushed the cache and with it the link's code), if the source is gone or the
    /// modes differ.
    pub fn link(&mut self, link: LinkId, to: FragId) {
        if link.generation() != self.table.generation || !self.table.current(to) {
            return;
        }
        let l = *self.table.link(link);
        let target = self.table.frag(to);
        debug_assert!(target.valid && !target.transient);
        let from = self.table.frag(l.from);
        if !from.valid || from.transient || !l.chainable || from.key.mode != target.key.mode || l.to.is_some() {
            return;
        }
        let dest = if l.checked { target.entry } else { target.body };
        // A link into code on a linear page the source does not cover goes stale when
        // that page's translation changes: the TLB-flush index must find it.
        let from_pages = [Some(from.key.linear >> 12), from.straddles];
        let cross_page = [Some(target.key.linear >> 12), target.straddles].iter().flatten().any(|p| !from_pages.contains(&Some(*p)));
        self.tc.patch_rel32(l.site, dest);
        let lm = self.table.link_mut(link);
        lm.to = Some(to);
        lm.cross_page = cross_page;
        if cross_page {
            self.table.frag_mut(to).cross_incoming.push(link);
            self.reach_add(to);
        } else {
            self.table.frag_mut(to).incoming.push(link);
        }
        self.stats.links_patched += 1;
    }

    /// Points link `link` back at its exit stub.
    pub(crate) fn unlink(&mut self, link: LinkId) {
        let l = *self.table.link(link);
        if l.to.is_some() {
            self.tc.patch_rel32(l.site, l.stub);
            self.table.link_mut(link).to = None;
            self.stats.links_unpatched += 1;
        }
    }

    /// Points every link into `frag` back at its exit stub.
    pub(crate) fn unlink_incoming(&mut self, frag: FragId) {
        let f = self.table.frag_mut(frag);
        let mut incoming = std::mem::take(&mut f.incoming);
        incoming.append(&mut f.cross_incoming);
        for link in incoming {
            if self.table.link(link).to == Some(frag) {
                self.unlink(link);
            }
        }
    }
}
