//! The one small trait under the pools: every Vulkan call mem-core makes
//! (allocate, free, map, unmap, flush, invalidate, budget) goes through
//! [`MemoryDevice`].
//!
//! [`AshMemoryDevice`] implements it over the engine's `ash::Device`; the
//! fake device (`mem_core::fake::FakeDevice`, behind the `testing` feature)
//! implements it over a memory table of a real GPU with fault injection, so
//! the pools' logic is tested on layouts that CI has no hardware for.

use std::ffi::CStr;
use std::ptr::NonNull;

use ash::vk;
use smallvec::SmallVec;

use crate::host::HostCallbacks;

/// One memory type as the allocator sees it (`VkMemoryType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "json", derive(serde::Serialize))]
pub struct MemoryTypeInfo {
    /// `VkMemoryType::propertyFlags` (in JSON, their names).
    #[cfg_attr(feature = "json", serde(serialize_with = "ser_type_flags"))]
    pub flags: vk::MemoryPropertyFlags,
    /// Index of the heap this type allocates from.
    pub heap_index: u32,
}

/// One memory heap (`VkMemoryHeap`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "json", derive(serde::Serialize))]
pub struct MemoryHeapInfo {
    /// Heap size in bytes as the driver reports it.
    pub size: u64,
    /// `VkMemoryHeap::flags` (in JSON, their names).
    #[cfg_attr(feature = "json", serde(serialize_with = "ser_heap_flags"))]
    pub flags: vk::MemoryHeapFlags,
}

/// Memory property flags in JSON: their names as `ash` prints them
/// (`"DEVICE_LOCAL | HOST_VISIBLE"`), which readers of the dump (the memory
/// viewer) show as they are.
#[cfg(feature = "json")]
pub(crate) fn ser_type_flags<S: serde::Serializer>(
    f: &vk::MemoryPropertyFlags,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{f:?}"))
}

/// Heap flags in JSON, as [`ser_type_flags`] writes memory property flags.
#[cfg(feature = "json")]
pub(crate) fn ser_heap_flags<S: serde::Serializer>(
    f: &vk::MemoryHeapFlags,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{f:?}"))
}

/// What the allocator needs to know about a device's memory, read once at
/// creation. Plain data, so the fake device can build one from a table.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceMemoryProperties {
    /// Memory types, indexed by memory type index.
    pub memory_types: Vec<MemoryTypeInfo>,
    /// Memory heaps, indexed by heap index.
    pub memory_heaps: Vec<MemoryHeapInfo>,
    /// `VkPhysicalDeviceLimits::bufferImageGranularity`: linear and optimal
    /// resources closer than this may alias in the page tables.
    pub buffer_image_granularity: u64,
    /// `VkPhysicalDeviceLimits::nonCoherentAtomSize`: flush/invalidate
    /// granularity for memory without `HOST_COHERENT`.
    pub non_coherent_atom_size: u64,
    /// `VkPhysicalDeviceLimits::maxMemoryAllocationCount`.
    pub max_memory_allocation_count: u32,
    /// `VkPhysicalDeviceMaintenance3Properties::maxMemoryAllocationSize`, or
    /// `u64::MAX` when the device does not report it.
    pub max_memory_allocation_size: u64,
    /// The kind of device (discrete, integrated, CPU, ...).
    pub device_type: vk::PhysicalDeviceType,
    /// `VK_EXT_memory_budget` is enabled on the device: [`MemoryDevice::heap_budgets`]
    /// reports the driver's view; otherwise the allocator counts on its own.
    pub memory_budget: bool,
}

impl DeviceMemoryProperties {
    /// Reads the properties of `physical_device` through `instance`.
    /// `memory_budget` says whether the engine enabled `VK_EXT_memory_budget`.
    ///
    /// # Safety
    /// - `physical_device` must have been enumerated from `instance`, which
    ///   must be alive.
    pub unsafe fn query(
        instance: &ash::Instance,
        physical_device: vk::PhysicalDevice,
        memory_budget: bool,
    ) -> Self {
        // SAFETY: the caller guarantees the handles are valid.
        let mem = unsafe { instance.get_physical_device_memory_properties(physical_device) };
        let mut maint3 = vk::PhysicalDeviceMaintenance3Properties::default();
        let mut props2 = vk::PhysicalDeviceProperties2::default().push_next(&mut maint3);
        // SAFETY: as above; vkGetPhysicalDeviceProperties2 is core in 1.1,
        // which every device gpumem supports.
        unsafe { instance.get_physical_device_properties2(physical_device, &mut props2) };
        let limits = props2.properties.limits;
        let device_type = props2.properties.device_type;
        let max_alloc = maint3.max_memory_allocation_size;
        Self {
            memory_types: mem
                .memory_types_as_slice()
                .iter()
                .map(|t| MemoryTypeInfo {
                    flags: t.property_flags,
                    heap_index: t.heap_index,
                })
                .collect(),
            memory_heaps: mem
                .memory_heaps_as_slice()
                .iter()
                .map(|h| MemoryHeapInfo {
                    size: h.size,
                    flags: h.flags,
                })
                .collect(),
            buffer_image_granularity: limits.buffer_image_granularity.max(1),
            non_coherent_atom_size: limits.non_coherent_atom_size.max(1),
            max_memory_allocation_count: limits.max_memory_allocation_count,
            max_memory_allocation_size: if max_alloc == 0 { u64::MAX } else { max_alloc },
            device_type,
            memory_budget,
        }
    }

    /// True when memory type `index` has every flag in `flags`.
    pub fn type_has(&self, index: u32, flags: vk::MemoryPropertyFlags) -> bool {
        self.memory_types
            .get(index as usize)
            .is_some_and(|t| t.flags.contains(flags))
    }
}

/// The resource a dedicated allocation is made for
/// (`VkMemoryDedicatedAllocateInfo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DedicatedTarget {
    /// The allocation backs exactly this buffer.
    Buffer(vk::Buffer),
    /// The allocation backs exactly this image.
    Image(vk::Image),
}

/// One `vkAllocateMemory` request.
#[derive(Clone, Copy, Debug)]
pub struct MemoryAllocateRequest {
    /// Memory type index.
    pub memory_type_index: u32,
    /// Size in bytes.
    pub size: u64,
    /// Chained as `VkMemoryDedicatedAllocateInfo` when set.
    pub dedicated: Option<DedicatedTarget>,
    /// Chains `VkMemoryAllocateFlagsInfo` with `DEVICE_ADDRESS` (the engine
    /// enabled `bufferDeviceAddress`).
    pub device_address: bool,
}

/// Heap budget as `VK_EXT_memory_budget` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "json", derive(serde::Serialize))]
pub struct HeapBudget {
    /// Bytes the process may use from this heap before trouble.
    pub budget: u64,
    /// Bytes the process uses from this heap now (all allocators together).
    pub usage: u64,
}

/// A failure of a device call, kept apart by cause so the pools can fall back
/// (out of device memory) or give up (out of host memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// `VK_ERROR_OUT_OF_DEVICE_MEMORY`.
    #[error("the device is out of memory (VK_ERROR_OUT_OF_DEVICE_MEMORY)")]
    OutOfDeviceMemory,
    /// `VK_ERROR_OUT_OF_HOST_MEMORY`.
    #[error("the host is out of memory (VK_ERROR_OUT_OF_HOST_MEMORY)")]
    OutOfHostMemory,
    /// `VK_ERROR_TOO_MANY_OBJECTS`: `maxMemoryAllocationCount` reached.
    #[error("too many device memory objects (VK_ERROR_TOO_MANY_OBJECTS)")]
    TooManyObjects,
    /// `VK_ERROR_MEMORY_MAP_FAILED`.
    #[error("mapping device memory failed (VK_ERROR_MEMORY_MAP_FAILED)")]
    MemoryMapFailed,
    /// `VK_ERROR_DEVICE_LOST`.
    #[error("the device was lost (VK_ERROR_DEVICE_LOST)")]
    DeviceLost,
    /// Any other result code.
    #[error("Vulkan call failed: {0:?}")]
    Other(vk::Result),
}

impl From<vk::Result> for DeviceError {
    fn from(r: vk::Result) -> Self {
        match r {
            vk::Result::ERROR_OUT_OF_DEVICE_MEMORY => Self::OutOfDeviceMemory,
            vk::Result::ERROR_OUT_OF_HOST_MEMORY => Self::OutOfHostMemory,
            vk::Result::ERROR_TOO_MANY_OBJECTS => Self::TooManyObjects,
            vk::Result::ERROR_MEMORY_MAP_FAILED => Self::MemoryMapFailed,
            vk::Result::ERROR_DEVICE_LOST => Self::DeviceLost,
            other => Self::Other(other),
        }
    }
}

/// A range of mapped memory to flush or invalidate, already rounded to
/// `nonCoherentAtomSize` and clamped to the memory object's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappedRange {
    /// The memory object.
    pub memory: vk::DeviceMemory,
    /// Offset in bytes from the start of the memory object.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
}

/// The device-memory calls the pools make. Implemented over `ash` by
/// [`AshMemoryDevice`] and, for tests, by `mem_core::fake::FakeDevice`
/// (`testing` feature).
pub trait MemoryDevice: Send + Sync {
    /// The device's memory layout and limits.
    fn properties(&self) -> &DeviceMemoryProperties;

    /// `vkAllocateMemory`.
    ///
    /// # Safety
    /// - a dedicated target in `request` must be a live object of this device
    ///   that has no memory bound yet.
    unsafe fn allocate_memory(
        &self,
        request: &MemoryAllocateRequest,
    ) -> Result<vk::DeviceMemory, DeviceError>;

    /// `vkFreeMemory`.
    ///
    /// # Safety
    /// - `memory` was returned by [`Self::allocate_memory`] on this device and
    ///   is not freed yet; no GPU work that uses it is pending; it is unmapped.
    unsafe fn free_memory(&self, memory: vk::DeviceMemory);

    /// `vkMapMemory` of the whole object (`size` bytes); returns the host
    /// pointer to offset 0.
    ///
    /// # Safety
    /// - `memory` is a live allocation of this device of `size` bytes in a
    ///   `HOST_VISIBLE` type, not mapped yet.
    unsafe fn map_memory(
        &self,
        memory: vk::DeviceMemory,
        size: u64,
    ) -> Result<NonNull<u8>, DeviceError>;

    /// `vkUnmapMemory`.
    ///
    /// # Safety
    /// - `memory` is live and mapped; no host pointer into it is used after.
    unsafe fn unmap_memory(&self, memory: vk::DeviceMemory);

    /// `vkFlushMappedMemoryRanges`.
    ///
    /// # Safety
    /// - every range lies in a live, mapped memory object of this device and is
    ///   rounded to `nonCoherentAtomSize` (or reaches the end of the object).
    unsafe fn flush_ranges(&self, ranges: &[MappedRange]) -> Result<(), DeviceError>;

    /// `vkInvalidateMappedMemoryRanges`.
    ///
    /// # Safety
    /// - as for [`Self::flush_ranges`].
    unsafe fn invalidate_ranges(&self, ranges: &[MappedRange]) -> Result<(), DeviceError>;

    /// Per-heap budget and usage from `VK_EXT_memory_budget`, or `None` when
    /// the extension is not enabled (the allocator then counts on its own).
    fn heap_budgets(&self) -> Option<SmallVec<[HeapBudget; 4]>>;
}

/// A shared device is a device: tests keep an `Arc` to inspect the fake while
/// the allocator owns another, and engines can share one wrapper between
/// several allocators.
impl<T: MemoryDevice + ?Sized> MemoryDevice for std::sync::Arc<T> {
    fn properties(&self) -> &DeviceMemoryProperties {
        (**self).properties()
    }

    unsafe fn allocate_memory(
        &self,
        request: &MemoryAllocateRequest,
    ) -> Result<vk::DeviceMemory, DeviceError> {
        // SAFETY: forwarded from the trait's contract.
        unsafe { (**self).allocate_memory(request) }
    }

    unsafe fn free_memory(&self, memory: vk::DeviceMemory) {
        // SAFETY: forwarded from the trait's contract.
        unsafe { (**self).free_memory(memory) }
    }

    unsafe fn map_memory(
        &self,
        memory: vk::DeviceMemory,
        size: u64,
    ) -> Result<NonNull<u8>, DeviceError> {
        // SAFETY: forwarded from the trait's contract.
        unsafe { (**self).map_memory(memory, size) }
    }

    unsafe fn unmap_memory(&self, memory: vk::DeviceMemory) {
        // SAFETY: forwarded from the trait's contract.
        unsafe { (**self).unmap_memory(memory) }
    }

    unsafe fn flush_ranges(&self, ranges: &[MappedRange]) -> Result<(), DeviceError> {
        // SAFETY: forwarded from the trait's contract.
        unsafe { (**self).flush_ranges(ranges) }
    }

    unsafe fn invalidate_ranges(&self, ranges: &[MappedRange]) -> Result<(), DeviceError> {
        // SAFETY: forwarded from the trait's contract.
        unsafe { (**self).invalidate_ranges(ranges) }
    }

    fn heap_budgets(&self) -> Option<SmallVec<[HeapBudget; 4]>> {
        (**self).heap_budgets()
    }
}

/// [`MemoryDevice`] over the engine's `ash::Device`.
pub struct AshMemoryDevice {
    instance: ash::Instance,
    physical_device: vk::PhysicalDevice,
    device: ash::Device,
    properties: DeviceMemoryProperties,
    callbacks: HostCallbacks,
}

impl AshMemoryDevice {
    /// Wraps the engine's device.
    ///
    /// `memory_budget` says whether `VK_EXT_memory_budget` is enabled on the
    /// device; `allocation_callbacks`, when given, are passed to every
    /// `vkAllocateMemory` / `vkFreeMemory` call (as VMA's
    /// `pAllocationCallbacks`).
    ///
    /// # Safety
    /// - `instance`, `physical_device` and `device` are valid, related, and
    ///   outlive the returned value;
    /// - `allocation_callbacks`, when given, stay valid (their user data too)
    ///   for as long as the returned value lives, and are thread-safe.
    pub unsafe fn new(
        instance: &ash::Instance,
        physical_device: vk::PhysicalDevice,
        device: &ash::Device,
        memory_budget: bool,
        allocation_callbacks: Option<vk::AllocationCallbacks<'static>>,
    ) -> Self {
        // SAFETY: forwarded from this function's contract.
        let properties =
            unsafe { DeviceMemoryProperties::query(instance, physical_device, memory_budget) };
        Self {
            instance: instance.clone(),
            physical_device,
            device: device.clone(),
            properties,
            // SAFETY: valid and thread-safe for this value's life (this
            // function's contract).
            callbacks: unsafe { HostCallbacks::new(allocation_callbacks) },
        }
    }

    /// The wrapped device.
    pub fn device(&self) -> &ash::Device {
        &self.device
    }

    fn to_vk_ranges(ranges: &[MappedRange]) -> SmallVec<[vk::MappedMemoryRange<'static>; 4]> {
        ranges
            .iter()
            .map(|r| {
                vk::MappedMemoryRange::default()
                    .memory(r.memory)
                    .offset(r.offset)
                    .size(r.size)
            })
            .collect()
    }
}

/// Name of `VK_EXT_memory_budget`, for engines checking what to enable.
pub const MEMORY_BUDGET_EXTENSION: &CStr = ash::ext::memory_budget::NAME;

impl MemoryDevice for AshMemoryDevice {
    fn properties(&self) -> &DeviceMemoryProperties {
        &self.properties
    }

    unsafe fn allocate_memory(
        &self,
        request: &MemoryAllocateRequest,
    ) -> Result<vk::DeviceMemory, DeviceError> {
        let mut info = vk::MemoryAllocateInfo::default()
            .allocation_size(request.size)
            .memory_type_index(request.memory_type_index);
        let mut dedicated = vk::MemoryDedicatedAllocateInfo::default();
        match request.dedicated {
            Some(DedicatedTarget::Buffer(b)) => dedicated = dedicated.buffer(b),
            Some(DedicatedTarget::Image(i)) => dedicated = dedicated.image(i),
            None => {}
        }
        if request.dedicated.is_some() {
            info = info.push_next(&mut dedicated);
        }
        let mut flags =
            vk::MemoryAllocateFlagsInfo::default().flags(vk::MemoryAllocateFlags::DEVICE_ADDRESS);
        if request.device_address {
            info = info.push_next(&mut flags);
        }
        // SAFETY: the device is valid (constructor contract); the dedicated
        // target is valid (this fn's contract); the chain lives on the stack.
        unsafe { self.device.allocate_memory(&info, self.callbacks.get()) }
            .map_err(DeviceError::from)
    }

    unsafe fn free_memory(&self, memory: vk::DeviceMemory) {
        // SAFETY: forwarded from this fn's contract.
        unsafe { self.device.free_memory(memory, self.callbacks.get()) }
    }

    unsafe fn map_memory(
        &self,
        memory: vk::DeviceMemory,
        size: u64,
    ) -> Result<NonNull<u8>, DeviceError> {
        // SAFETY: forwarded from this fn's contract.
        let ptr = unsafe {
            self.device
                .map_memory(memory, 0, size, vk::MemoryMapFlags::empty())
        }?;
        NonNull::new(ptr.cast()).ok_or(DeviceError::MemoryMapFailed)
    }

    unsafe fn unmap_memory(&self, memory: vk::DeviceMemory) {
        // SAFETY: forwarded from this fn's contract.
        unsafe { self.device.unmap_memory(memory) }
    }

    unsafe fn flush_ranges(&self, ranges: &[MappedRange]) -> Result<(), DeviceError> {
        let vk_ranges = Self::to_vk_ranges(ranges);
        // SAFETY: forwarded from this fn's contract.
        unsafe { self.device.flush_mapped_memory_ranges(&vk_ranges) }.map_err(DeviceError::from)
    }

    unsafe fn invalidate_ranges(&self, ranges: &[MappedRange]) -> Result<(), DeviceError> {
        let vk_ranges = Self::to_vk_ranges(ranges);
        // SAFETY: forwarded from this fn's contract.
        unsafe { self.device.invalidate_mapped_memory_ranges(&vk_ranges) }
            .map_err(DeviceError::from)
    }

    fn heap_budgets(&self) -> Option<SmallVec<[HeapBudget; 4]>> {
        if !self.properties.memory_budget {
            return None;
        }
        let mut budget = vk::PhysicalDeviceMemoryBudgetPropertiesEXT::default();
        let mut props = vk::PhysicalDeviceMemoryProperties2::default().push_next(&mut budget);
        // SAFETY: instance and physical device are valid (constructor
        // contract) and VK_EXT_memory_budget is enabled, so the chained struct
        // is allowed.
        unsafe {
            self.instance
                .get_physical_device_memory_properties2(self.physical_device, &mut props)
        };
        let n = self.properties.memory_heaps.len();
        Some(
            (0..n)
                .map(|i| HeapBudget {
                    budget: budget.heap_budget[i],
                    usage: budget.heap_usage[i],
                })
                .collect(),
        )
    }
}
