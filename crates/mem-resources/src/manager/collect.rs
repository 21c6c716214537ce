//! Deferred destruction: the retire queue of resources waiting for their
//! [`RetirePoint`], and [`ResourceManager::collect`], which destroys those
//! whose points the GPU has all passed.
//!
//! Invariants: a queued resource's registry entry is marked retired to the
//! same point; lock order is registry, then queue, and `collect` never
//! holds both while it reads semaphores, so creation on other threads is
//! not blocked by a device call.

use super::*;

/// A resource waiting in the retire queue.
pub(super) enum RetiredResource {
    Buffer(Buffer),
    Image(Image),
}

impl RetiredResource {
    pub(super) fn slot(&self) -> u32 {
        match self {
            RetiredResource::Buffer(b) => b.slot,
            RetiredResource::Image(i) => i.slot,
        }
    }
}

impl ResourceManager {
    pub(super) fn retire(&self, resource: RetiredResource, after: RetirePoint) {
        let mut registry = self.registry.lock();
        registry.entry_mut(resource.slot()).retired = Some(after.clone());
        // Lock order: registry, then retired (collect never holds both).
        self.retired.lock().push_back((after, resource));
    }

    /// Resources retired and not collected yet.
    pub fn pending_retired(&self) -> usize {
        self.retired.lock().len()
    }

    /// Destroys every retired resource whose timeline points the GPU has
    /// all passed, in retire order, and returns how many it destroyed.
    ///
    /// Reads each distinct semaphore's counter once per call
    /// (`vkGetSemaphoreCounterValue`); resources retired while it runs wait
    /// for the next call. On a failed read (device lost) nothing is
    /// destroyed and the error is returned.
    #[doc(alias = "vkGetSemaphoreCounterValue")]
    pub fn collect(&self) -> Result<usize, ResourceError> {
        let semaphores: SmallVec<[vk::Semaphore; 4]> = {
            let retired = self.retired.lock();
            if retired.is_empty() {
                return Ok(0);
            }
            let mut s = SmallVec::new();
            for point in retired.iter().flat_map(|(after, _)| after.points()) {
                if !s.contains(&point.semaphore) {
                    s.push(point.semaphore);
                }
            }
            s
        };
        let mut values: SmallVec<[(vk::Semaphore, u64); 4]> = SmallVec::new();
        for s in semaphores {
            // SAFETY: retire's contract keeps the semaphore alive and of
            // timeline type until its resources are collected.
            let value =
                unsafe { self.device.get_semaphore_counter_value(s) }.map_err(|result| {
                    ResourceError::Vulkan {
                        call: "vkGetSemaphoreCounterValue",
                        result,
                    }
                })?;
            values.push((s, value));
        }
        // A semaphore first named after the values were read counts as 0:
        // its resources wait for the next call (unless they wait for 0).
        let passed = |after: &RetirePoint| {
            after.is_reached(|semaphore| {
                values
                    .iter()
                    .find(|&&(s, _)| s == semaphore)
                    .map_or(0, |&(_, v)| v)
            })
        };
        let done: Vec<RetiredResource> = {
            let mut retired = self.retired.lock();
            let mut done = Vec::new();
            let mut keep = VecDeque::with_capacity(retired.len());
            for (after, r) in retired.drain(..) {
                if passed(&after) {
                    done.push(r);
                } else {
                    keep.push_back((after, r));
                }
            }
            *retired = keep;
            done
        };
        let n = done.len();
        self.destroy_retired(done);
        Ok(n)
    }

    fn destroy_retired(&self, done: Vec<RetiredResource>) {
        {
            let mut registry = self.registry.lock();
            for r in &done {
                registry.remove(r.slot());
            }
        }
        for r in done {
            // SAFETY: the GPU passed the resource's timeline point, after
            // which retire's contract says it is unused.
            unsafe {
                match r {
                    RetiredResource::Buffer(b) => self.destroy_buffer_now(b),
                    RetiredResource::Image(i) => self.destroy_image_now(i),
                }
            }
        }
    }
}
