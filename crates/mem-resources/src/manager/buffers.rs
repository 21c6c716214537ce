//! [`Buffer`] and its life: `vkCreateBuffer` and its memory requirements
//! for the batch creation, destruction now, and retirement to a timeline
//! point. A buffer's memory is always of the linear class; its handle,
//! allocation and slot stay together until it is destroyed by value.

use super::batch::{dedicated_hint, BatchDesc};
use super::*;

/// A buffer with its memory bound, made by [`ResourceManager::create_buffer`].
///
/// Not `Clone`: destroy it once, by value, with
/// [`ResourceManager::destroy_buffer`] or [`ResourceManager::retire_buffer`].
/// Dropping it does not destroy it (no Vulkan call in `Drop`); it then leaks
/// and the manager reports it.
#[derive(Debug)]
#[must_use = "a buffer must be destroyed or retired through its ResourceManager"]
pub struct Buffer {
    pub(super) handle: vk::Buffer,
    pub(super) allocation: Allocation,
    pub(super) desc: BufferDesc,
    pub(super) owner: u64,
    pub(super) slot: u32,
}

impl Buffer {
    /// The `VkBuffer`.
    pub fn handle(&self) -> vk::Buffer {
        self.handle
    }

    /// The memory bound to it (memory, offset, size, mapped pointer).
    pub fn allocation(&self) -> &Allocation {
        &self.allocation
    }

    /// The desc it was made from.
    pub fn desc(&self) -> &BufferDesc {
        &self.desc
    }

    /// The buffer's size in bytes as its desc asked for
    /// (`VkBufferCreateInfo::size`): what host access and copies may reach.
    /// The memory bound to it may be larger: [`Self::memory_size`].
    pub fn requested_size(&self) -> u64 {
        self.desc.size
    }

    /// Bytes of memory bound to it (`VkMemoryRequirements::size`, the
    /// allocation's [`Allocation::reserved_size`]); at least
    /// [`Self::requested_size`].
    pub fn memory_size(&self) -> u64 {
        self.allocation.reserved_size()
    }

    /// True when its memory is host-visible (persistently mapped):
    /// [`ResourceManager::write_buffer`] and [`ResourceManager::read_buffer`]
    /// work on it.
    pub fn is_host_visible(&self) -> bool {
        self.allocation.mapped_ptr().is_some()
    }

    /// Id of the [`ResourceManager`] that made it.
    pub fn owner(&self) -> u64 {
        self.owner
    }
}

impl ResourceManager {
    /// Creates a buffer, allocates and binds its memory, and names it.
    ///
    /// The desc is validated first; any failure after `vkCreateBuffer`
    /// destroys the buffer and frees its memory before returning.
    #[doc(alias = "vkCreateBuffer")]
    #[doc(alias = "vmaCreateBuffer")]
    pub fn create_buffer(&self, desc: &BufferDesc) -> Result<Buffer, ResourceError> {
        let mut v = self.create_batch(std::slice::from_ref(desc), false)?;
        Ok(v.pop().expect("one buffer per desc"))
    }

    /// Creates one buffer per desc with a single `vkBindBufferMemory2` call.
    /// All or nothing: on any failure nothing of the batch is left, and the
    /// error says which desc failed ([`ResourceError::Batch`]), except for
    /// the shared bind call, whose failure is reported as is.
    pub fn create_buffers(&self, descs: &[BufferDesc]) -> Result<Vec<Buffer>, ResourceError> {
        Ok(self.create_batch(descs, true)?.into_vec())
    }

    /// Destroys a buffer and frees its memory now.
    ///
    /// Fails only for a buffer of another manager: it is handed back
    /// unchanged inside the [`Refused`] ([`ResourceError::ForeignResource`]),
    /// for its own manager to destroy.
    ///
    /// # Safety
    /// - no pending or future GPU work uses the buffer (the engine waited for
    ///   every submission that referenced it);
    /// - no other object (view, descriptor in use) refers to it when used
    ///   afterwards.
    #[doc(alias = "vkDestroyBuffer")]
    pub unsafe fn destroy_buffer(
        &self,
        buffer: Buffer,
    ) -> Result<(), Refused<Buffer, ResourceError>> {
        if let Err(e) = self.check_owner(buffer.owner) {
            return Err(Refused::new(e, buffer));
        }
        self.registry.lock().remove(buffer.slot);
        // SAFETY: forwarded from this function's contract.
        unsafe { self.destroy_buffer_now(buffer) };
        Ok(())
    }

    /// # Safety
    /// - as for [`Self::destroy_buffer`]; the buffer is out of the registry.
    pub(super) unsafe fn destroy_buffer_now(&self, buffer: Buffer) {
        // SAFETY: the GPU is done with it (caller's contract); created by this
        // manager with these callbacks.
        unsafe {
            self.device
                .destroy_buffer(buffer.handle, self.callbacks.get())
        };
        let freed = self.allocator.free(buffer.allocation);
        debug_assert!(
            freed.is_ok(),
            "allocation from our own allocator: {freed:?}"
        );
    }

    /// Queues a buffer for destruction once the GPU passes `after`: a
    /// [`TimelinePoint`], or a [`RetirePoint`] naming several that must all
    /// be reached ([`Self::collect`] destroys it then).
    ///
    /// Fails only for a buffer of another manager, handed back as in
    /// [`Self::destroy_buffer`].
    ///
    /// # Safety
    /// - every semaphore of `after` is a timeline semaphore of this device
    ///   that stays alive until the buffer is collected or the manager is
    ///   dropped;
    /// - every GPU use of the buffer completes before all of `after`'s
    ///   points are reached (e.g. the frame's submission signals its value;
    ///   a resource the staging belt also uses names the belt's ticket too).
    pub unsafe fn retire_buffer(
        &self,
        buffer: Buffer,
        after: impl Into<RetirePoint>,
    ) -> Result<(), Refused<Buffer, ResourceError>> {
        if let Err(e) = self.check_owner(buffer.owner) {
            return Err(Refused::new(e, buffer));
        }
        self.retire(RetiredResource::Buffer(buffer), after.into());
        Ok(())
    }
}

impl BatchDesc for BufferDesc {
    type Handle = vk::Buffer;
    type Resource = Buffer;
    const KIND: ResourceKind = ResourceKind::Buffer;
    const BIND_CALL: &'static str = "vkBindBufferMemory2";

    fn check(&self, manager: &ResourceManager) -> Result<(), ResourceError> {
        manager.validate_buffer_desc(self)
    }

    fn create_object(&self, manager: &ResourceManager) -> Result<vk::Buffer, ResourceError> {
        let families = self.sharing.distinct_families();
        let info = vk::BufferCreateInfo::default()
            .size(self.size)
            .usage(self.usage)
            .sharing_mode(self.sharing.mode())
            .queue_family_indices(&families);
        manager
            .faults
            .check(FaultPoint::CreateBuffer)
            .and_then(|()| {
                // SAFETY: the desc passed validation (non-zero size within
                // maxBufferSize, non-empty usage, valid distinct families for
                // concurrent sharing).
                unsafe { manager.device.create_buffer(&info, manager.callbacks.get()) }
            })
            .map_err(|result| ResourceError::Vulkan {
                call: "vkCreateBuffer",
                result,
            })
    }

    fn requirements(
        manager: &ResourceManager,
        buffer: vk::Buffer,
    ) -> (vk::MemoryRequirements, Dedicated) {
        let mut dedicated = vk::MemoryDedicatedRequirements::default();
        let mut req2 = vk::MemoryRequirements2::default().push_next(&mut dedicated);
        let info = vk::BufferMemoryRequirementsInfo2::default().buffer(buffer);
        // SAFETY: the buffer is a live object of this device; the chain is on
        // the stack.
        unsafe {
            manager
                .device
                .get_buffer_memory_requirements2(&info, &mut req2)
        };
        let requirements = req2.memory_requirements;
        (
            requirements,
            dedicated_hint(&dedicated, DedicatedTarget::Buffer(buffer)),
        )
    }

    fn class(&self) -> ResourceClass {
        ResourceClass::Linear
    }

    fn memory_usage(&self) -> MemoryUsage {
        self.memory
    }

    fn debug_name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn own_memory(&self) -> bool {
        self.own_memory
    }

    unsafe fn bind(
        manager: &ResourceManager,
        buffers: &[vk::Buffer],
        allocations: &[Allocation],
    ) -> Result<(), vk::Result> {
        let binds: SmallVec<[vk::BindBufferMemoryInfo<'_>; 1]> = buffers
            .iter()
            .zip(allocations)
            .map(|(&b, a)| {
                vk::BindBufferMemoryInfo::default()
                    .buffer(b)
                    .memory(a.memory())
                    .memory_offset(a.offset())
            })
            .collect();
        manager
            .faults
            .check(FaultPoint::BindBufferMemory)
            .and_then(|()| {
                // SAFETY: fresh buffers with allocations from their own
                // requirements (this function's contract).
                unsafe { manager.device.bind_buffer_memory2(&binds) }
            })
    }

    unsafe fn destroy_object(manager: &ResourceManager, buffer: vk::Buffer) {
        // SAFETY: made by this manager with these callbacks and unused by
        // the GPU (this function's contract).
        unsafe {
            manager
                .device
                .destroy_buffer(buffer, manager.callbacks.get())
        };
    }

    fn make_resource(
        &self,
        handle: vk::Buffer,
        allocation: Allocation,
        owner: u64,
        slot: u32,
    ) -> Buffer {
        Buffer {
            handle,
            allocation,
            desc: self.clone(),
            owner,
            slot,
        }
    }
}
