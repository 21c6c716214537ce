//! Creation of one resource or a batch, all or nothing: validate every
//! desc, create every object, allocate each one's memory from its
//! requirements, bind them all with one `vkBind*Memory2` call, name them,
//! and only then register them. A failure at any step destroys the objects
//! made so far and frees their memory, last made first, so nothing of the
//! call is left.
//!
//! Buffers and images take the same steps, written once here; what differs
//! (the Vulkan calls, the memory class, the resource handed out) is the
//! [`BatchDesc`] trait, implemented beside each kind.

use super::*;

/// What differs between a buffer and an image in a creation: the Vulkan
/// calls, the memory class and the resource handed out. Implemented by
/// [`BufferDesc`] (in `buffers`) and [`ImageDesc`] (in `images`); the steps
/// and their undo are [`ResourceManager::create_batch`], written once.
pub(super) trait BatchDesc: Sized {
    /// `vk::Buffer` or `vk::Image`.
    type Handle: vk::Handle + Copy;
    /// [`Buffer`] or [`Image`].
    type Resource;
    /// What the registry records.
    const KIND: ResourceKind;
    /// `vkBindBufferMemory2` or `vkBindImageMemory2`, for the error of a
    /// failed bind.
    const BIND_CALL: &'static str;

    /// The checks before Vulkan sees the desc.
    fn check(&self, manager: &ResourceManager) -> Result<(), ResourceError>;
    /// `vkCreate*` of a checked desc, through its fault point.
    fn create_object(&self, manager: &ResourceManager) -> Result<Self::Handle, ResourceError>;
    /// `vkGet*MemoryRequirements2` with the driver's dedicated hint.
    fn requirements(
        manager: &ResourceManager,
        handle: Self::Handle,
    ) -> (vk::MemoryRequirements, Dedicated);
    /// The memory's granularity class.
    fn class(&self) -> ResourceClass;
    /// The memory intent.
    fn memory_usage(&self) -> MemoryUsage;
    /// The debug name, if any.
    fn debug_name(&self) -> Option<&str>;
    /// Whether the desc asks for memory of its own.
    fn own_memory(&self) -> bool;
    /// One `vkBind*Memory2` call for every object, through its fault point.
    ///
    /// # Safety
    /// - every handle is a fresh object of the manager's device with no
    ///   memory bound, and its allocation was made from its own
    ///   requirements (same index in both slices).
    unsafe fn bind(
        manager: &ResourceManager,
        handles: &[Self::Handle],
        allocations: &[Allocation],
    ) -> Result<(), vk::Result>;
    /// `vkDestroy*`.
    ///
    /// # Safety
    /// - the object was created by the manager and no GPU work uses it.
    unsafe fn destroy_object(manager: &ResourceManager, handle: Self::Handle);
    /// The resource handed to the caller, once bound, named and registered.
    fn make_resource(
        &self,
        handle: Self::Handle,
        allocation: Allocation,
        owner: u64,
        slot: u32,
    ) -> Self::Resource;
}

/// Objects made so far in one creation call, undone on failure.
struct Pending<H> {
    handles: SmallVec<[H; 1]>,
    allocations: SmallVec<[Allocation; 1]>,
}

impl ResourceManager {
    /// Creates one resource per desc, all or nothing (the module docs list
    /// the steps). With `batch`, an error of one desc is wrapped in
    /// [`ResourceError::Batch`] with its index; the shared bind call's
    /// failure is reported as is.
    pub(super) fn create_batch<D: BatchDesc>(
        &self,
        descs: &[D],
        batch: bool,
    ) -> Result<SmallVec<[D::Resource; 1]>, ResourceError> {
        let wrap = |index: usize, e: ResourceError| {
            if batch {
                ResourceError::Batch {
                    index,
                    source: Box::new(e),
                }
            } else {
                e
            }
        };
        for (i, d) in descs.iter().enumerate() {
            d.check(self).map_err(|e| wrap(i, e))?;
        }
        if descs.is_empty() {
            // vkBind*Memory2 needs bindInfoCount > 0.
            return Ok(SmallVec::new());
        }
        let mut p: Pending<D::Handle> = Pending {
            handles: SmallVec::with_capacity(descs.len()),
            allocations: SmallVec::with_capacity(descs.len()),
        };
        for (i, d) in descs.iter().enumerate() {
            match d.create_object(self) {
                Ok(h) => p.handles.push(h),
                Err(e) => return Err(wrap(i, self.undo::<D>(p, e))),
            }
        }
        for (i, d) in descs.iter().enumerate() {
            let (requirements, mut dedicated) = D::requirements(self, p.handles[i]);
            if d.own_memory() {
                dedicated = match dedicated {
                    // Memory of its own without a dedicated target: a plain
                    // `VkDeviceMemory` of its size (reusable from the cache).
                    Dedicated::No => Dedicated::Required(None),
                    // The driver's preference becomes a requirement.
                    Dedicated::Preferred(t) => Dedicated::Required(t),
                    required => required,
                };
            }
            let mut adesc = AllocationDesc::new(requirements, d.memory_usage())
                .class(d.class())
                .dedicated(dedicated);
            if let Some(n) = d.debug_name() {
                adesc = adesc.name(n);
            }
            match self.allocator.allocate(&adesc) {
                Ok(a) => p.allocations.push(a),
                Err(e) => return Err(wrap(i, self.undo::<D>(p, e.into()))),
            }
        }
        // SAFETY: each object is fresh (no memory bound) and its allocation
        // was made from its own requirements, so size, alignment and memory
        // type satisfy the bind's valid usage.
        if let Err(result) = unsafe { D::bind(self, &p.handles, &p.allocations) } {
            // If the bind failed, spec: the objects' memory binding state is
            // undefined, but destroying them and freeing the memory is valid.
            let e = ResourceError::Vulkan {
                call: D::BIND_CALL,
                result,
            };
            return Err(self.undo::<D>(p, e));
        }
        for (i, d) in descs.iter().enumerate() {
            if let Some(name) = d.debug_name() {
                let named = self
                    .set_name(p.handles[i], name)
                    .and_then(|()| self.name_memory(&p.allocations[i], name));
                if let Err(e) = named {
                    return Err(wrap(i, self.undo::<D>(p, e)));
                }
            }
        }
        let mut out = SmallVec::with_capacity(descs.len());
        let mut registry = self.registry.lock();
        for ((d, handle), allocation) in descs.iter().zip(p.handles).zip(p.allocations) {
            let slot = registry.insert(Entry {
                kind: D::KIND,
                handle: vk::Handle::as_raw(handle),
                name: d.debug_name().map(str::to_owned),
                memory_size: allocation.reserved_size(),
                retired: None,
            });
            out.push(d.make_resource(handle, allocation, self.id, slot));
        }
        Ok(out)
    }

    /// Destroys the objects and frees the allocations of a failed creation,
    /// objects first, each in reverse order of creation, and returns
    /// `error`.
    fn undo<D: BatchDesc>(&self, p: Pending<D::Handle>, error: ResourceError) -> ResourceError {
        for &h in p.handles.iter().rev() {
            // SAFETY: the object was created by this call and never handed
            // out, so no GPU work can use it.
            unsafe { D::destroy_object(self, h) };
        }
        for a in p.allocations.into_iter().rev() {
            let freed = self.allocator.free(a);
            debug_assert!(
                freed.is_ok(),
                "allocation from our own allocator: {freed:?}"
            );
        }
        error
    }
}

/// mem-core's dedicated hint from the driver's answer, with the object as
/// the dedicated allocation's target.
pub(super) fn dedicated_hint(
    req: &vk::MemoryDedicatedRequirements<'_>,
    target: DedicatedTarget,
) -> Dedicated {
    if req.requires_dedicated_allocation == vk::TRUE {
        Dedicated::Required(Some(target))
    } else if req.prefers_dedicated_allocation == vk::TRUE {
        Dedicated::Preferred(Some(target))
    } else {
        Dedicated::No
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedicated_hints() {
        let t = DedicatedTarget::Buffer(vk::Buffer::null());
        let mut req = vk::MemoryDedicatedRequirements::default();
        assert_eq!(dedicated_hint(&req, t), Dedicated::No);
        req.prefers_dedicated_allocation = vk::TRUE;
        assert_eq!(dedicated_hint(&req, t), Dedicated::Preferred(Some(t)));
        req.requires_dedicated_allocation = vk::TRUE;
        assert_eq!(dedicated_hint(&req, t), Dedicated::Required(Some(t)));
    }
}
