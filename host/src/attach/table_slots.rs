//! Who holds each slot of the probes' offsets table (`OFFSETS_TABLE`). A process gets the slot
//! its pid maps to when no other traced process holds it; otherwise the probes find its offsets
//! in the `OFFSETS` hash map, which has every process.
use std::collections::HashMap;

use http_autoinstrument_common::OffsetsSlot;

#[derive(Debug, Default)]
pub struct TableSlots {
    /// Slot index -> the pid holding it.
    owners: HashMap<u32, u32>,
}

impl TableSlots {
    /// The slot `pid` may write its offsets to, or `None` when another process holds it.
    pub fn claim(&mut self, pid: u32) -> Option<u32> {
        let index = OffsetsSlot::index(pid);
        match self.owners.get(&index) {
            Some(&owner) if owner != pid => None,
            _ => {
                self.owners.insert(index, pid);
                Some(index)
            }
        }
    }

    /// The slot `pid` held, now free (to be cleared), or `None` when it held none.
    pub fn release(&mut self, pid: u32) -> Option<u32> {
        let index = OffsetsSlot::index(pid);
        if self.owners.get(&index) != Some(&pid) {
            return None;
        }
        self.owners.remove(&index);
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_autoinstrument_common::OFFSETS_SLOTS;

    #[test]
    fn a_slot_goes_to_the_first_process_and_is_free_again_when_it_leaves() {
        let mut slots = TableSlots::default();
        let (first, colliding) = (4242, 4242 + OFFSETS_SLOTS);
        let index = slots.claim(first).expect("a free slot");
        assert_eq!(slots.claim(first), Some(index), "attaching again keeps it");
        assert_eq!(slots.claim(colliding), None, "held: the hash map serves it");
        assert_eq!(slots.release(colliding), None, "it held nothing to free");
        assert_eq!(slots.claim(4243).map(|i| i != index), Some(true));
        assert_eq!(slots.release(first), Some(index));
        assert_eq!(slots.release(first), None);
        assert_eq!(slots.claim(colliding), Some(index));
    }
}
