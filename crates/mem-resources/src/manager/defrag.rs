//! Resources recreated at a chosen place, for defragmentation: a buffer or
//! image made from an existing one's desc and bound to an allocation that
//! mem-core reserved at its planned place
//! ([`Allocator::begin_defragmentation_pass`](mem_core::Allocator::begin_defragmentation_pass)),
//! and the retirement of the resource it replaces, whose memory then goes
//! back to the device at once ([`Allocation::mark_moved`]).
//!
//! The copy of the data between the two is the staging belt's
//! (`mem_staging`'s defragmentation), which knows the transfer queue.

use super::batch::BatchDesc;
use super::*;

/// A buffer or an image, borrowed: what an engine offers to move.
#[derive(Clone, Copy, Debug)]
pub enum ResourceRef<'a> {
    /// A buffer.
    Buffer(&'a Buffer),
    /// An image.
    Image(&'a Image),
}

impl ResourceRef<'_> {
    /// The memory bound to it.
    pub fn allocation(&self) -> &Allocation {
        match self {
            ResourceRef::Buffer(b) => b.allocation(),
            ResourceRef::Image(i) => i.allocation(),
        }
    }

    /// The memory intent of its desc.
    pub fn memory_usage(&self) -> MemoryUsage {
        match self {
            ResourceRef::Buffer(b) => b.desc().memory,
            ResourceRef::Image(i) => i.desc().memory,
        }
    }

    /// Its debug name, if any.
    pub fn name(&self) -> Option<&str> {
        match self {
            ResourceRef::Buffer(b) => b.desc().name.as_deref(),
            ResourceRef::Image(i) => i.desc().name.as_deref(),
        }
    }

    /// Id of the manager that made it.
    pub fn owner(&self) -> u64 {
        match self {
            ResourceRef::Buffer(b) => b.owner(),
            ResourceRef::Image(i) => i.owner(),
        }
    }
}

/// A buffer or an image, owned.
#[derive(Debug)]
#[must_use = "a resource must be destroyed or retired through its ResourceManager"]
pub enum Resource {
    /// A buffer.
    Buffer(Buffer),
    /// An image.
    Image(Image),
}

impl Resource {
    /// Borrowed.
    pub fn as_ref(&self) -> ResourceRef<'_> {
        match self {
            Resource::Buffer(b) => ResourceRef::Buffer(b),
            Resource::Image(i) => ResourceRef::Image(i),
        }
    }

    /// The buffer, if it is one.
    pub fn into_buffer(self) -> Option<Buffer> {
        match self {
            Resource::Buffer(b) => Some(b),
            Resource::Image(_) => None,
        }
    }

    /// The image, if it is one.
    pub fn into_image(self) -> Option<Image> {
        match self {
            Resource::Image(i) => Some(i),
            Resource::Buffer(_) => None,
        }
    }

    fn allocation_mut(&mut self) -> &mut Allocation {
        match self {
            Resource::Buffer(b) => &mut b.allocation,
            Resource::Image(i) => &mut i.allocation,
        }
    }

    fn owner(&self) -> u64 {
        self.as_ref().owner()
    }
}

impl ResourceManager {
    /// Creates a buffer from `desc` and binds it to `allocation` (one of
    /// this manager's allocator's, reserved by a defragmentation pass),
    /// instead of allocating. All or nothing: on any failure the buffer is
    /// destroyed and `allocation` freed. The allocation must meet the new
    /// buffer's requirements ([`ResourceError::AllocationMismatch`]
    /// otherwise): made from the desc of a buffer it replaces, on the same
    /// device, it does.
    pub fn create_buffer_at(
        &self,
        desc: &BufferDesc,
        allocation: Allocation,
    ) -> Result<Buffer, ResourceError> {
        self.create_at(desc, allocation)
    }

    /// [`Self::create_buffer_at`] for an image; the new image's layouts
    /// start `UNDEFINED`, as for any new image.
    pub fn create_image_at(
        &self,
        desc: &ImageDesc,
        allocation: Allocation,
    ) -> Result<Image, ResourceError> {
        self.create_at(desc, allocation)
    }

    fn create_at<D: BatchDesc>(
        &self,
        desc: &D,
        allocation: Allocation,
    ) -> Result<D::Resource, ResourceError> {
        let give_back = |allocation: Allocation, e: ResourceError| {
            // Only an allocation of another allocator is refused: it stays
            // live in its own allocator, which reports it as leaked.
            if let Err(refused) = self.allocator.free(allocation) {
                log::error!("create_*_at: {}", refused.error());
            }
            e
        };
        if let Err(e) = desc.check(self) {
            return Err(give_back(allocation, e));
        }
        let handle = match desc.create_object(self) {
            Ok(h) => h,
            Err(e) => return Err(give_back(allocation, e)),
        };
        let undo = |allocation: Allocation, e: ResourceError| {
            // SAFETY: made by this call, never handed out or used by the GPU.
            unsafe { D::destroy_object(self, handle) };
            give_back(allocation, e)
        };
        let (req, dedicated) = D::requirements(self, handle);
        let type_ok = req.memory_type_bits & (1 << allocation.memory_type_index()) != 0;
        let required = matches!(dedicated, Dedicated::Required(_));
        if !type_ok
            || allocation.reserved_size() < req.size
            || allocation.offset() % req.alignment.max(1) != 0
            || required
        {
            let e = ResourceError::AllocationMismatch {
                size: allocation.reserved_size(),
                offset: allocation.offset(),
                memory_type_index: allocation.memory_type_index(),
                required_size: req.size,
                required_alignment: req.alignment,
                memory_type_bits: req.memory_type_bits,
                dedicated: required,
            };
            return Err(undo(allocation, e));
        }
        let allocations = [allocation];
        // SAFETY: the object is fresh; the allocation meets its
        // requirements (checked above).
        if let Err(result) = unsafe { D::bind(self, &[handle], &allocations) } {
            let [allocation] = allocations;
            let e = ResourceError::Vulkan {
                call: D::BIND_CALL,
                result,
            };
            return Err(undo(allocation, e));
        }
        let [allocation] = allocations;
        if let Some(name) = desc.debug_name() {
            if let Err(e) = self.set_name(handle, name) {
                return Err(undo(allocation, e));
            }
        }
        let slot = self.registry.lock().insert(Entry {
            kind: D::KIND,
            handle: vk::Handle::as_raw(handle),
            name: desc.debug_name().map(str::to_owned),
            memory_size: allocation.reserved_size(),
            retired: None,
        });
        Ok(desc.make_resource(handle, allocation, self.id, slot))
    }

    /// Retires a resource whose data a defragmentation move copied to its
    /// replacement: as [`Self::retire_buffer`] / [`Self::retire_image`],
    /// and its memory goes back to the device as soon as it is collected
    /// (a block it empties is released, memory of its own skips the reuse
    /// cache; see [`Allocation::mark_moved`]).
    ///
    /// # Safety
    /// - as for [`Self::retire_buffer`]: the semaphores of `after` stay
    ///   alive until it is collected, and every GPU use of the resource
    ///   (the move's copy included) completes before all of `after`'s
    ///   points are reached.
    pub unsafe fn retire_moved(
        &self,
        mut resource: Resource,
        after: impl Into<RetirePoint>,
    ) -> Result<(), Refused<Resource, ResourceError>> {
        if let Err(e) = self.check_owner(resource.owner()) {
            return Err(Refused::new(e, resource));
        }
        resource.allocation_mut().mark_moved();
        let retired = match resource {
            Resource::Buffer(b) => RetiredResource::Buffer(b),
            Resource::Image(i) => RetiredResource::Image(i),
        };
        self.retire(retired, after.into());
        Ok(())
    }

    /// Destroys a resource now, by kind.
    ///
    /// # Safety
    /// - as for [`Self::destroy_buffer`] / [`Self::destroy_image`].
    pub unsafe fn destroy_resource(
        &self,
        resource: Resource,
    ) -> Result<(), Refused<Resource, ResourceError>> {
        // SAFETY: forwarded from this function's contract.
        unsafe {
            match resource {
                Resource::Buffer(b) => self.destroy_buffer(b).map_err(|r| {
                    let (e, b) = r.into_parts();
                    Refused::new(e, Resource::Buffer(b))
                }),
                Resource::Image(i) => self.destroy_image(i).map_err(|r| {
                    let (e, i) = r.into_parts();
                    Refused::new(e, Resource::Image(i))
                }),
            }
        }
    }
}
