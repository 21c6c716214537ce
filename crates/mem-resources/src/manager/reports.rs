//! Plain-data counters of a manager ([`ResourceReport`]) and the check of
//! its invariants ([`ResourceManager::validate`]), both read from the
//! registry and the retire queue under their locks (registry first).

use super::*;

/// Plain-data counters of a [`ResourceManager`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResourceReport {
    /// Buffers alive (not retired).
    pub live_buffers: u64,
    /// Images alive (not retired).
    pub live_images: u64,
    /// Resources retired and not collected yet.
    pub retired: u64,
    /// Bytes of memory bound to live buffers.
    pub buffer_memory_bytes: u64,
    /// Bytes of memory bound to live images.
    pub image_memory_bytes: u64,
    /// Buffers created since the manager was made.
    pub buffers_created: u64,
    /// Images created since the manager was made.
    pub images_created: u64,
}

impl ResourceManager {
    /// Counters of live and retired resources.
    pub fn report(&self) -> ResourceReport {
        let registry = self.registry.lock();
        let mut r = ResourceReport {
            buffers_created: registry.buffers_created,
            images_created: registry.images_created,
            ..ResourceReport::default()
        };
        for e in registry.entries.iter().flatten() {
            match (&e.retired, e.kind) {
                (Some(_), _) => r.retired += 1,
                (None, ResourceKind::Buffer) => {
                    r.live_buffers += 1;
                    r.buffer_memory_bytes += e.memory_size;
                }
                (None, ResourceKind::Image) => {
                    r.live_images += 1;
                    r.image_memory_bytes += e.memory_size;
                }
            }
        }
        r
    }

    /// Checks the manager's invariants: the registry's free list and slots
    /// agree, every queued retired resource is registered as retired to the
    /// same point, and no registered retired resource is missing from the
    /// queue; then the allocator's own ([`Allocator::validate`]).
    pub fn validate(&self) -> Result<(), ManagerValidationError> {
        {
            let registry = self.registry.lock();
            let retired = self.retired.lock();
            let used = registry.entries.iter().filter(|e| e.is_some()).count();
            if used + registry.free.len() != registry.entries.len() {
                return Err(ManagerValidationError::SlotCount {
                    slots: registry.entries.len(),
                    used,
                    free: registry.free.len(),
                });
            }
            for &slot in &registry.free {
                if registry
                    .entries
                    .get(slot as usize)
                    .is_none_or(Option::is_some)
                {
                    return Err(ManagerValidationError::FreeSlotInUse { slot });
                }
            }
            for (after, r) in retired.iter() {
                let registered = registry
                    .entries
                    .get(r.slot() as usize)
                    .and_then(Option::as_ref)
                    .map(|e| e.retired.clone());
                if registered.as_ref().and_then(Option::as_ref) != Some(after) {
                    return Err(ManagerValidationError::RetiredMismatch {
                        slot: r.slot(),
                        queued: after.clone(),
                        registered,
                    });
                }
            }
            let registered_retired = registry
                .entries
                .iter()
                .flatten()
                .filter(|e| e.retired.is_some())
                .count();
            if registered_retired != retired.len() {
                return Err(ManagerValidationError::RetiredCount {
                    registered: registered_retired,
                    queued: retired.len(),
                });
            }
        }
        Ok(self.allocator.validate()?)
    }
}
