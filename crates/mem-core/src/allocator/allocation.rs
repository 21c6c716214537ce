//! [`Allocation`]: what [`Allocator::allocate`] hands out and
//! [`Allocator::free`] takes back by value. It records where its range lies
//! (a block's placer slot and handle, or a slot of memory of its own) and
//! the allocator that made it, so a free never searches and a foreign
//! allocation is refused.

use std::ptr::NonNull;

use ash::vk;

#[cfg(doc)]
use super::{AllocationDesc, Allocator, AllocatorConfig, Dedicated};
use super::{AllocationFlags, ResourceClass};

/// A host pointer into persistently mapped memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct MappedPtr(pub(super) NonNull<u8>);

// SAFETY: the pointer points into a persistently mapped VkDeviceMemory that
// lives as long as the allocator; sending the address between threads is
// harmless, and every access through it goes through methods that take
// `&mut Allocation` for writes (exclusive) or are `unsafe` for the caller.
unsafe impl Send for MappedPtr {}
// SAFETY: as above.
unsafe impl Sync for MappedPtr {}

/// Where an allocation's range lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Placement {
    /// A range of block `block` of class pool `class`; `handle` is the
    /// placer's.
    Block { class: u8, block: u32, handle: u32 },
    /// Memory of its own, in slot `slot` of its memory type's pool.
    OwnMemory { slot: u32 },
}

/// Memory handed out by [`Allocator::allocate`]: a range of a
/// `VkDeviceMemory`. Free it with [`Allocator::free`] (by value); dropping it
/// without freeing leaks the range until the allocator is dropped, which
/// reports it.
#[derive(Debug)]
#[must_use = "an allocation must be freed with Allocator::free"]
pub struct Allocation {
    pub(super) memory: vk::DeviceMemory,
    pub(super) offset: u64,
    pub(super) size: u64,
    pub(super) memory_size: u64,
    pub(super) memory_type_index: u32,
    pub(super) mapped: Option<MappedPtr>,
    pub(super) coherent: bool,
    pub(super) allocator_id: u64,
    pub(super) placement: Placement,
    /// Bytes of debug margin before `offset` (0 without margins).
    pub(super) margin_front: u64,
    /// What defragmentation needs to place it again: the alignment asked
    /// for, the resource class, and the flags (`PINNED`).
    pub(super) alignment: u64,
    pub(super) class: ResourceClass,
    pub(super) flags: AllocationFlags,
    /// Its data lives elsewhere now ([`Self::mark_moved`]).
    pub(super) moved: bool,
}

impl Allocation {
    /// The `VkDeviceMemory` to bind.
    pub fn memory(&self) -> vk::DeviceMemory {
        self.memory
    }

    /// Offset of the allocation inside [`Self::memory`].
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes reserved for the caller at [`Self::offset`] of [`Self::memory`]:
    /// [`AllocationDesc::size`] as asked for (for a resource, its
    /// `VkMemoryRequirements::size`, which may exceed the resource's own
    /// size). Host access ([`Allocator::write`], [`Self::mapped_slice_mut`])
    /// is checked against it. The allocator may keep a few more bytes
    /// behind it (rounding to the minimum block, debug margins); those are
    /// not the caller's.
    pub fn reserved_size(&self) -> u64 {
        self.size
    }

    /// The memory type index.
    pub fn memory_type_index(&self) -> u32 {
        self.memory_type_index
    }

    /// Host pointer to the first byte when the memory is host-visible
    /// (persistently mapped), else `None`.
    pub fn mapped_ptr(&self) -> Option<NonNull<u8>> {
        self.mapped.map(|p| p.0)
    }

    /// True when the memory is `HOST_COHERENT` (no flush/invalidate needed).
    pub fn is_coherent(&self) -> bool {
        self.coherent
    }

    /// True when this allocation has a `VkDeviceMemory` of its own (at
    /// offset 0): a request over a quarter of a block, of at least
    /// [`AllocatorConfig::own_memory_threshold`] (off by default), or a
    /// dedicated allocation ([`Dedicated`]). False for a range of a
    /// shared block.
    pub fn has_own_memory(&self) -> bool {
        matches!(self.placement, Placement::OwnMemory { .. })
    }

    /// The alignment it was asked with ([`AllocationDesc::alignment`], at
    /// least 1); a defragmentation move keeps it.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Linear or optimal, as asked ([`AllocationDesc::class`]).
    pub fn resource_class(&self) -> ResourceClass {
        self.class
    }

    /// The flags it was asked with ([`AllocationDesc::flags`]).
    pub fn flags(&self) -> AllocationFlags {
        self.flags
    }

    /// True when defragmentation never moves it
    /// ([`AllocationFlags::PINNED`]).
    pub fn is_pinned(&self) -> bool {
        self.flags.contains(AllocationFlags::PINNED)
    }

    /// Records that the allocation's data now lives elsewhere (a
    /// defragmentation move copied it): when it is freed, its memory goes
    /// back to the device at once. A block it leaves empty is released even
    /// if the type keeps empty blocks
    /// ([`AllocatorConfig::max_empty_blocks_per_type`]), and memory of its
    /// own skips the reuse cache. [`Allocator::commit_defragmentation_pass`]
    /// marks the sources it frees; a layer that frees them itself (after
    /// the GPU's copy, through deferred destruction) marks them first.
    pub fn mark_moved(&mut self) {
        self.moved = true;
    }

    /// True once [`Self::mark_moved`] was called.
    pub fn is_moved(&self) -> bool {
        self.moved
    }

    /// The mapped bytes, for writing.
    ///
    /// Returns `None` when the memory is not host-visible.
    ///
    /// # Safety
    /// - no GPU work may read or write the range while the slice is in use;
    /// - for non-coherent memory, call [`Allocator::flush`] after writing.
    pub unsafe fn mapped_slice_mut(&mut self) -> Option<&mut [u8]> {
        let ptr = self.mapped?.0;
        let len = usize::try_from(self.size).ok()?;
        // SAFETY: the pointer is valid for `size` bytes of mapped memory for as
        // long as the allocation lives; `&mut self` makes the host access
        // exclusive; the caller guarantees the GPU is not using it.
        Some(unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), len) })
    }
}
