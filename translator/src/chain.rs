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
        self.tc.patch_rel32(l.site, dest);
        self.table.links[link as usize].to = Some(to);
        self.table.frags[to as usize].incoming.push(link);
        self.stats.links_patched += 1;
    }

    /// Points every link into `frag` back at its exit stub.
    pub(crate) fn unlink_incoming(&mut self, frag: FragId) {
        let incoming = std::mem::take(&mut self.table.frags[frag as usize].incoming);
        for link in incoming {
            let l = self.table.links[link as usize];
            if l.to == Some(frag) {
                self.tc.patch_rel32(l.site, l.stub);
                self.table.links[link as usize].to = None;
                self.stats.links_unpatched += 1;
            }
        }
    }
}
