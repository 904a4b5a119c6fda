//! Fragments — translated guest basic blocks — and the table that finds them.
//!
//! A fragment is keyed by the guest linear address of its first instruction, the CS base
//! and the [`Mode`] it was translated for. It remembers where its host code lives, which
//! guest-physical pages its guest code came from (for self-modifying-code invalidation),
//! its exits (links), and a host-offset → guest-EIP table so that a host fault in the
//! middle of it is turned into a precise guest state.

use rustc_hash::FxHashMap as HashMap;

use iced_x86::Instruction;

use crate::context::Seg;
use crate::mode::Mode;

/// A fragment: its index in the [`FragmentTable`] and the cache generation it belongs to.
///
/// A whole-cache flush empties the table and starts a new generation, so an id held
/// across a flush (by the run loop, across a translation that filled the cache) names
/// nothing: every accessor compares the generation instead of indexing whatever now
/// sits at that index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragId {
    generation: u32,
    index: u32,
}

/// A link (a patchable direct-branch exit), generation-checked like [`FragId`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinkId {
    generation: u32,
    index: u32,
}

macro_rules! id_methods {
    ($t:ty) => {
        impl $t {
            pub(crate) fn new(generation: u32, index: u32) -> Self {
                Self { generation, index }
            }
            /// Index in its table (what translated code reports in `exit_arg`).
            pub fn index(self) -> u32 {
                self.index
            }
            /// The cache generation it belongs to.
            pub fn generation(self) -> u32 {
                self.generation
            }
            pub(crate) fn at(self) -> usize {
                self.index as usize
            }
        }
    };
}
id_methods!(FragId);
id_methods!(LinkId);

/// Index of a callout record. Callouts are read right after the exit that reports them
/// (no flush can come between), and the record copied out carries a [`FragId`].
pub type CalloutId = u32;

/// What the lookup of a fragment uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragKey {
    /// Guest linear address of the first instruction.
    pub linear: u32,
    /// Guest-physical address of the first instruction (the same linear address runs
    /// different code in different address spaces).
    pub phys: u64,
    /// CS base (EIP = linear - cs_base).
    pub cs_base: u32,
    /// Mode translated for.
    pub mode: Mode,
}

/// How to recover the guest state from the host state at a fault inside one stretch of
/// a fragment's host code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fixup {
    /// The host registers hold the guest registers as they were before the instruction.
    None,
    /// A string instruction runs with RSI/RDI rebased to host addresses: guest ESI/EDI =
    /// RSI/RDI - window base - segment base. `src` is the segment of the source operand
    /// (if the instruction has one), `dst` says whether RDI is rebased (ES).
    String {
        /// Segment of the DS:ESI operand, if any.
        src: Option<Seg>,
        /// True if the instruction has an ES:EDI operand.
        dst: bool,
    },
    /// A host `call` for a guest `call`: the guest call is complete (return address
    /// pushed) and the guest EIP is the target, held in R13D (indirect calls). A fault
    /// here is an overflow of the translated-code stack.
    TargetInR13,
    /// Byte registers were exchanged to avoid AH..BH next to a REX prefix: swap each
    /// pair (host register numbers of the low-byte register, high-byte register's full
    /// register) back.
    ByteSwap([(u8, u8); 2], u8),
}

/// One entry of the host → guest map.
#[derive(Clone, Copy, Debug)]
pub struct FaultPoint {
    /// Offset from the fragment's host start where this stretch begins.
    pub host_off: u32,
    /// Guest EIP of the instruction being executed there.
    pub eip: u32,
    /// How to reconstruct the guest state.
    pub fixup: Fixup,
    /// Guest ESP = R12D + this: stack adjustments the translation has not applied yet.
    pub esp_delta: i32,
}

/// A translated block.
#[derive(Debug)]
pub struct Fragment {
    /// Its key.
    pub key: FragKey,
    /// Guest EIP (offset in CS) of the first instruction.
    pub eip: u32,
    /// Guest bytes covered.
    pub guest_len: u32,
    /// Guest instructions covered.
    pub instructions: u32,
    /// Guest-physical page numbers (address >> 12) the guest code came from.
    pub pages: Vec<u64>,
    /// Linear page number of the page its last instruction runs into, if it crosses
    /// into the next page (its bytes depend on that page's translation too).
    pub straddles: Option<u32>,
    /// Guest-physical page number its straddling instruction's tail came from (with
    /// `straddles`).
    pub straddle_phys: Option<u64>,
    /// The translations of its code pages are global (survive CR3 writes).
    pub global: bool,
    /// Host address of the checked entry (pending-interrupt test first).
    pub entry: u64,
    /// Host address of the body (after the test).
    pub body: u64,
    /// Host code size in bytes.
    pub host_len: u32,
    /// Offset of the exit stubs (end of the translated body).
    pub stubs_off: u32,
    /// Host → guest map, sorted by `host_off`.
    pub faults: Vec<FaultPoint>,
    /// Outgoing links.
    pub exits: Vec<LinkId>,
    /// Links from other fragments on the same linear page patched to jump here.
    pub incoming: Vec<LinkId>,
    /// Links from code on other linear pages patched to jump here: they go stale when a
    /// TLB flush covers this fragment's page.
    pub cross_incoming: Vec<LinkId>,
    /// Indirect-branch table slots that point here.
    pub ibl_slots: Vec<u16>,
    /// False once invalidated.
    pub valid: bool,
    /// Set aside by a TLB flush ([`crate::reach`]): valid, but entered only after
    /// [`crate::Translator::unpark`] has checked its second page again.
    pub parked: bool,
    /// In the TLB-flush index ([`crate::reach`]): reached without a lookup.
    pub reached: bool,
    /// A one-shot translation, not entered in the lookup table.
    pub transient: bool,
}

impl Fragment {
    /// The fault point covering host address `rip`, if it is inside this fragment.
    pub fn fault_point(&self, rip: u64) -> Option<FaultPoint> {
        if rip < self.entry || rip >= self.entry + self.host_len as u64 {
            return None;
        }
        let off = (rip - self.entry) as u32;
        let i = self.faults.partition_point(|p| p.host_off <= off);
        if i == 0 { None } else { Some(self.faults[i - 1]) }
    }
}

/// A patchable direct-branch exit.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    /// Host address of the jump's rel32 field.
    pub site: u64,
    /// Host address of the exit stub the jump goes to while unlinked.
    pub stub: u64,
    /// Fragment the jump is in.
    pub from: FragId,
    /// Guest EIP the branch goes to.
    pub target_eip: u32,
    /// True if the target must be entered through its pending-interrupt test (backward
    /// branches, and exits after instructions that may enable interrupts).
    pub checked: bool,
    /// Fragment currently linked to, if any.
    pub to: Option<FragId>,
    /// False for exits that must reach the monitor every time (after `sti`).
    pub chainable: bool,
    /// Patched to a fragment on another linear page: undone when that page's
    /// translation may have changed (TLB flushes).
    pub cross_page: bool,
}

/// What the monitor must do for a callout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CalloutKind {
    /// Emulate the instruction against the virtual CPU.
    Emulate,
    /// Raise this exception (vector, error code) at the instruction.
    Raise(u8, Option<u32>),
    /// The instruction executed; now deliver the single-step #DB trap (EFLAGS.TF).
    SingleStep,
    /// The instruction keeps touching device memory: the monitor executes it against the
    /// devices at once instead of letting it fault (see [`crate::Translator::note_device_fault`]).
    Device,
}

/// A guest instruction that exits to the monitor.
#[derive(Clone, Copy, Debug)]
pub struct Callout {
    /// Guest EIP of the instruction.
    pub eip: u32,
    /// Guest EIP of the next instruction.
    pub next_eip: u32,
    /// The decoded instruction (32- or 16-bit decoder).
    pub instr: Instruction,
    /// What to do.
    pub kind: CalloutKind,
    /// Fragment it belongs to.
    pub fragment: FragId,
    /// Host address where the fragment continues after the instruction, if it does.
    pub resume: Option<u64>,
}

/// All fragments, links and callouts since the last flush.
#[derive(Default)]
pub struct FragmentTable {
    /// The cache generation: how many whole-cache flushes came before these entries.
    pub generation: u32,
    /// Fragments by id.
    pub frags: Vec<Fragment>,
    /// Links by id.
    pub links: Vec<Link>,
    /// Callouts by id.
    pub callouts: Vec<Callout>,
    /// Lookup by key (valid, non-transient fragments only).
    pub by_key: HashMap<FragKey, FragId>,
    /// Fragments by guest-physical page number.
    pub by_page: HashMap<u64, Vec<FragId>>,
    /// Fragments reached without a lookup, for TLB flushes.
    pub reach: crate::reach::ReachIndex,
    /// Valid page-straddling fragments a TLB flush took out of `by_key`: taken back
    /// (without translating again) when their second page still maps the same frame.
    pub parked: HashMap<FragKey, FragId>,
}

impl FragmentTable {
    /// True if `id` belongs to the current generation.
    pub fn current(&self, id: FragId) -> bool {
        id.generation == self.generation
    }

    /// The fragment `id` (which must be current: ids are only ever made by this table).
    pub fn frag(&self, id: FragId) -> &Fragment {
        assert_eq!(id.generation, self.generation, "fragment id from before a translation-cache flush");
        &self.frags[id.at()]
    }

    /// The fragment `id`, mutably (current ids only).
    pub fn frag_mut(&mut self, id: FragId) -> &mut Fragment {
        assert_eq!(id.generation, self.generation, "fragment id from before a translation-cache flush");
        &mut self.frags[id.at()]
    }

    /// The link `id` (current ids only).
    pub fn link(&self, id: LinkId) -> &Link {
        assert_eq!(id.generation, self.generation, "link id from before a translation-cache flush");
        &self.links[id.at()]
    }

    /// The link `id`, mutably (current ids only).
    pub fn link_mut(&mut self, id: LinkId) -> &mut Link {
        assert_eq!(id.generation, self.generation, "link id from before a translation-cache flush");
        &mut self.links[id.at()]
    }

    /// The id of the fragment at `index` in the current generation.
    pub fn frag_id(&self, index: u32) -> FragId {
        FragId::new(self.generation, index)
    }

    /// The id of the link at `index` in the current generation.
    pub fn link_id(&self, index: u32) -> LinkId {
        LinkId::new(self.generation, index)
    }

    /// Finds the valid fragment for `key`.
    pub fn lookup(&self, key: &FragKey) -> Option<FragId> {
        self.by_key.get(key).copied()
    }

    /// The fragment whose host code contains `rip`. Fragments are appended in host
    /// address order between flushes, so this is a binary search.
    pub fn by_host(&self, rip: u64) -> Option<FragId> {
        let i = self.frags.partition_point(|f| f.entry <= rip);
        if i == 0 {
            return None;
        }
        let f = &self.frags[i - 1];
        (rip < f.entry + f.host_len as u64).then_some(self.frag_id((i - 1) as u32))
    }

    /// Forgets everything and starts a new generation: ids handed out before name nothing.
    pub fn clear(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        self.frags.clear();
        self.links.clear();
        self.callouts.clear();
        self.by_key.clear();
        self.by_page.clear();
        self.reach = Default::default();
        self.parked.clear();
    }
}
