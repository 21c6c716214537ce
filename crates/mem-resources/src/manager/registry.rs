//! The registry: one slot per resource the manager still tracks (alive, or
//! retired and waiting for its timeline points), and the leak report made
//! from it.
//!
//! Invariants: a slot index lives in exactly one resource ([`Buffer`] or
//! [`Image`]) while its entry is `Some`; freed slots are on the free list
//! and reused before the table grows; an entry is marked retired exactly
//! when its resource sits in the retire queue (checked by
//! [`ResourceManager::validate`]). Dropping the manager reports every entry
//! left, quietly while panicking.

use super::*;

/// Buffer or image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// A `VkBuffer`.
    Buffer,
    /// A `VkImage`.
    Image,
}

/// A resource the manager still tracks: alive, or retired and waiting for
/// its timeline points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveResource {
    /// Buffer or image.
    pub kind: ResourceKind,
    /// The name from its desc.
    pub name: Option<String>,
    /// Bytes of memory bound to it (`VkMemoryRequirements::size`).
    pub memory_size: u64,
    /// The raw `VkBuffer` / `VkImage` handle.
    pub handle: u64,
    /// What it was retired to wait for, if it was.
    pub retired: Option<RetirePoint>,
}

/// One tracked resource.
pub(super) struct Entry {
    pub(super) kind: ResourceKind,
    pub(super) handle: u64,
    pub(super) name: Option<String>,
    pub(super) memory_size: u64,
    pub(super) retired: Option<RetirePoint>,
}

/// Live and retired resources, by slot (the slot index is stored in the
/// resource, so removal is O(1)).
#[derive(Default)]
pub(super) struct Registry {
    pub(super) entries: Vec<Option<Entry>>,
    pub(super) free: Vec<u32>,
    pub(super) buffers_created: u64,
    pub(super) images_created: u64,
}

impl Registry {
    pub(super) fn insert(&mut self, entry: Entry) -> u32 {
        match entry.kind {
            ResourceKind::Buffer => self.buffers_created += 1,
            ResourceKind::Image => self.images_created += 1,
        }
        match self.free.pop() {
            Some(slot) => {
                self.entries[slot as usize] = Some(entry);
                slot
            }
            None => {
                self.entries.push(Some(entry));
                (self.entries.len() - 1) as u32
            }
        }
    }

    pub(super) fn remove(&mut self, slot: u32) {
        let old = self.entries[slot as usize].take();
        debug_assert!(old.is_some(), "resource slots are unique");
        self.free.push(slot);
    }

    pub(super) fn entry_mut(&mut self, slot: u32) -> &mut Entry {
        self.entries[slot as usize]
            .as_mut()
            .expect("resource slots are unique")
    }
}

impl ResourceManager {
    /// Every resource the manager still tracks: live ones and retired ones
    /// not collected yet. Empty when nothing would leak.
    pub fn leak_report(&self) -> Vec<LiveResource> {
        let registry = self.registry.lock();
        registry
            .entries
            .iter()
            .flatten()
            .map(|e| LiveResource {
                kind: e.kind,
                name: e.name.clone(),
                memory_size: e.memory_size,
                handle: e.handle,
                retired: e.retired.clone(),
            })
            .collect()
    }
}

impl Drop for ResourceManager {
    /// Destroys the retired resources whose timeline point the GPU has
    /// passed and reports what is left, as one `log` warning (target
    /// `mem_resources::manager::registry`): live resources (the engine still
    /// holds them: leaked) and retired ones whose point is not reached
    /// (destroying those could pull memory from under running GPU work, so
    /// they are leaked too). Quiet while panicking.
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        if let Err(e) = self.collect() {
            if !panicking {
                log::warn!(
                    "ResourceManager #{} dropped: collect failed ({e}); retired resources leak",
                    self.id
                );
            }
        }
        let left = self.leak_report();
        if left.is_empty() || panicking || !log::log_enabled!(log::Level::Warn) {
            return;
        }
        let live = left.iter().filter(|r| r.retired.is_none()).count();
        let mut report = format!(
            "ResourceManager #{} dropped with {live} live and {} unfinished retired resource(s) (leaked):",
            self.id,
            left.len() - live
        );
        for r in left.iter().take(LEAKS_LISTED) {
            report.push_str(&format!(
                "\n  {:?} {:?}, {} bytes, handle {:#x}",
                r.kind,
                r.name.as_deref().unwrap_or("<unnamed>"),
                r.memory_size,
                r.handle,
            ));
            if let Some(after) = &r.retired {
                report.push_str(&format!(", retired until {after}"));
            }
        }
        if left.len() > LEAKS_LISTED {
            report.push_str(&format!("\n  ... and {} more", left.len() - LEAKS_LISTED));
        }
        log::warn!("{report}");
    }
}

/// Leaked resources listed one by one in the drop report; the rest are
/// counted ([`ResourceManager::leak_report`] has them all).
const LEAKS_LISTED: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_reuses_slots() {
        let mut r = Registry::default();
        let e = |n: &str| Entry {
            kind: ResourceKind::Buffer,
            handle: 1,
            name: Some(n.into()),
            memory_size: 4,
            retired: None,
        };
        let a = r.insert(e("a"));
        let b = r.insert(e("b"));
        r.remove(a);
        let c = r.insert(e("c"));
        assert_eq!(c, a);
        assert_ne!(b, c);
        assert_eq!(r.buffers_created, 3);
        assert_eq!(r.entries.iter().flatten().count(), 2);
    }
}
