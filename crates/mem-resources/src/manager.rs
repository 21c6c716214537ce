//! [`ResourceManager`]: creates buffers and images with memory from mem-core,
//! destroys them now or after a timeline point, and keeps a registry of what
//! is alive for leak reports.
//!
//! # Creation, step by step
//! 1. The desc is validated ([`crate::validate`]); for images the format is
//!    checked with `vkGetPhysicalDeviceImageFormatProperties` (answers are
//!    cached per format/type/tiling/usage/flags).
//! 2. `vkCreateBuffer` / `vkCreateImage`.
//! 3. `vkGet*MemoryRequirements2` with `VkMemoryDedicatedRequirements`
//!    chained: the driver's dedicated preference or requirement becomes
//!    mem-core's [`Dedicated`] hint with the object as target.
//! 4. [`Allocator::allocate`] in the linear class (buffers, `LINEAR` images)
//!    or the optimal class (`OPTIMAL` images), so the two never share a
//!    `bufferImageGranularity` page.
//! 5. `vkBindBufferMemory2` / `vkBindImageMemory2`: one call for a whole
//!    batch.
//! 6. With `VK_EXT_debug_utils`, the object is named; so is its memory when
//!    the allocation is dedicated (a shared block belongs to many resources,
//!    and a name of one of them would mislead).
//! 7. The resource enters the registry.
//!
//! A failure at any step after 2 undoes the earlier ones in reverse: the
//! objects are destroyed, then their allocations freed. A batch is all or
//! nothing.
//!
//! # Destruction
//! [`ResourceManager::destroy_buffer`] (unsafe: the caller vouches that the
//! GPU is done) or, for engines with frames in flight,
//! [`ResourceManager::retire_buffer`] with a [`RetirePoint`] (one
//! [`TimelinePoint`], or several that must all be reached) and a periodic
//! [`ResourceManager::collect`]. `Drop` of a resource never calls
//! Vulkan: a [`Buffer`] or [`Image`] dropped without being destroyed leaks
//! until the manager reports it. A resource of another manager is refused
//! and handed back inside the [`Refused`] error, so it is not lost.

use std::collections::{HashMap, VecDeque};
use std::ffi::CString;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ash::vk;
use mem_core::{
    Allocation, AllocationDesc, Allocator, Dedicated, DedicatedTarget, Refused, ResourceClass,
};
use parking_lot::Mutex;
use smallvec::SmallVec;

use crate::desc::{BufferDesc, ImageDesc};
use crate::error::{ManagerValidationError, ResourceError};
use crate::fault::{FaultInjector, FaultPoint};
use crate::image_layouts::ImageLayouts;
use crate::retire::RetirePoint;
pub use crate::retire::TimelinePoint;
use crate::validate::{self, DeviceLimits};

static NEXT_MANAGER_ID: AtomicU64 = AtomicU64::new(1);

/// What the engine hands the manager: its own Vulkan objects, borrowed, and
/// the allocator to take memory from.
pub struct ResourceManagerDesc<'a> {
    /// The engine's instance (for format and limit queries).
    pub instance: &'a ash::Instance,
    /// The physical device `device` was created from.
    pub physical_device: vk::PhysicalDevice,
    /// The engine's device. Must be Vulkan 1.1 or later (the manager uses
    /// `vkGet*MemoryRequirements2` and `vkBind*Memory2`).
    pub device: &'a ash::Device,
    /// The allocator for the resources' memory, created over the same
    /// device.
    pub allocator: Arc<Allocator>,
    /// `VK_EXT_debug_utils` device functions when the engine enabled the
    /// extension: resources and their dedicated memory get their names.
    pub debug_utils: Option<ash::ext::debug_utils::Device>,
    /// Host allocation callbacks passed to every create and destroy call the
    /// manager makes.
    pub allocation_callbacks: Option<vk::AllocationCallbacks<'static>>,
}

impl<'a> ResourceManagerDesc<'a> {
    /// The engine's handles and the allocator, without debug names and
    /// host allocation callbacks.
    pub fn new(
        instance: &'a ash::Instance,
        physical_device: vk::PhysicalDevice,
        device: &'a ash::Device,
        allocator: Arc<Allocator>,
    ) -> Self {
        Self {
            instance,
            physical_device,
            device,
            allocator,
            debug_utils: None,
            allocation_callbacks: None,
        }
    }

    /// Names resources (and their dedicated memory) through
    /// `VK_EXT_debug_utils`, whose device functions the engine loaded.
    pub fn debug_utils(mut self, debug_utils: Option<ash::ext::debug_utils::Device>) -> Self {
        self.debug_utils = debug_utils;
        self
    }

    /// Sets the host allocation callbacks.
    pub fn allocation_callbacks(mut self, callbacks: vk::AllocationCallbacks<'static>) -> Self {
        self.allocation_callbacks = Some(callbacks);
        self
    }
}

/// Host allocation callbacks, shareable between threads.
#[derive(Clone, Copy)]
struct HostCallbacks(Option<vk::AllocationCallbacks<'static>>);

// SAFETY: `vk::AllocationCallbacks` holds function pointers and a user-data
// pointer. The spec lets Vulkan call them from any thread the application
// calls Vulkan from, and `ResourceManager::new` (unsafe) requires the
// engine's callbacks to be thread-safe.
unsafe impl Send for HostCallbacks {}
// SAFETY: see the `Send` impl; the value is never mutated after creation.
unsafe impl Sync for HostCallbacks {}

impl HostCallbacks {
    fn get(&self) -> Option<&vk::AllocationCallbacks<'static>> {
        self.0.as_ref()
    }
}

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

/// A buffer with its memory bound, made by [`ResourceManager::create_buffer`].
///
/// Not `Clone`: destroy it once, by value, with
/// [`ResourceManager::destroy_buffer`] or [`ResourceManager::retire_buffer`].
/// Dropping it does not destroy it (no Vulkan call in `Drop`); it then leaks
/// and the manager reports it.
#[derive(Debug)]
#[must_use = "a buffer must be destroyed or retired through its ResourceManager"]
pub struct Buffer {
    handle: vk::Buffer,
    allocation: Allocation,
    desc: BufferDesc,
    owner: u64,
    slot: u32,
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

/// An image with its memory bound, made by [`ResourceManager::create_image`].
///
/// Not `Clone`: destroy it once, by value, with
/// [`ResourceManager::destroy_image`] or [`ResourceManager::retire_image`].
#[derive(Debug)]
#[must_use = "an image must be destroyed or retired through its ResourceManager"]
pub struct Image {
    handle: vk::Image,
    allocation: Allocation,
    desc: ImageDesc,
    owner: u64,
    slot: u32,
    layouts: ImageLayouts,
}

impl Image {
    /// The `VkImage`.
    pub fn handle(&self) -> vk::Image {
        self.handle
    }

    /// The memory bound to it.
    pub fn allocation(&self) -> &Allocation {
        &self.allocation
    }

    /// The desc it was made from.
    pub fn desc(&self) -> &ImageDesc {
        &self.desc
    }

    /// Bytes of memory bound to it (`VkMemoryRequirements::size`, the
    /// allocation's [`Allocation::reserved_size`]). An image's texel bytes
    /// depend on the driver's layout; this is what it occupies.
    pub fn memory_size(&self) -> u64 {
        self.allocation.reserved_size()
    }

    /// The extent of level 0.
    pub fn extent(&self) -> vk::Extent3D {
        self.desc.extent
    }

    /// The format.
    pub fn format(&self) -> vk::Format {
        self.desc.format
    }

    /// True when its memory is host-visible (persistently mapped).
    pub fn is_host_visible(&self) -> bool {
        self.allocation.mapped_ptr().is_some()
    }

    /// Every mip level and layer, with the format's aspects.
    pub fn full_subresource_range(&self) -> vk::ImageSubresourceRange {
        self.desc.full_subresource_range()
    }

    /// The layout of each subresource after the work recorded so far (by
    /// the staging belt, or as the engine set it): see [`ImageLayouts`].
    pub fn layouts(&self) -> &ImageLayouts {
        &self.layouts
    }

    /// Id of the [`ResourceManager`] that made it.
    pub fn owner(&self) -> u64 {
        self.owner
    }
}

/// One tracked resource.
struct Entry {
    kind: ResourceKind,
    handle: u64,
    name: Option<String>,
    memory_size: u64,
    retired: Option<RetirePoint>,
}

/// Live and retired resources, by slot (the slot index is stored in the
/// resource, so removal is O(1)).
#[derive(Default)]
struct Registry {
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
    buffers_created: u64,
    images_created: u64,
}

impl Registry {
    fn insert(&mut self, entry: Entry) -> u32 {
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

    fn remove(&mut self, slot: u32) {
        let old = self.entries[slot as usize].take();
        debug_assert!(old.is_some(), "resource slots are unique");
        self.free.push(slot);
    }

    fn entry_mut(&mut self, slot: u32) -> &mut Entry {
        self.entries[slot as usize]
            .as_mut()
            .expect("resource slots are unique")
    }
}

/// A resource waiting in the retire queue.
enum RetiredResource {
    Buffer(Buffer),
    Image(Image),
}

impl RetiredResource {
    fn slot(&self) -> u32 {
        match self {
            RetiredResource::Buffer(b) => b.slot,
            RetiredResource::Image(i) => i.slot,
        }
    }
}

/// Key of the format-properties cache.
type FormatKey = (
    vk::Format,
    vk::ImageType,
    vk::ImageTiling,
    vk::ImageUsageFlags,
    vk::ImageCreateFlags,
);

/// Creates buffers and images with memory from a mem-core [`Allocator`],
/// destroys them now or after a timeline point, and reports leaks.
///
/// `Send + Sync`: create and destroy from any thread. Creation takes the
/// registry's lock once per call (per batch for `create_buffers`); the
/// allocator locks per memory type.
///
/// Drop it after the engine has idled the device (or at least passed every
/// retire point) and before the allocator's last `Arc` and the device go.
pub struct ResourceManager {
    id: u64,
    instance: ash::Instance,
    physical_device: vk::PhysicalDevice,
    device: ash::Device,
    allocator: Arc<Allocator>,
    debug_utils: Option<ash::ext::debug_utils::Device>,
    callbacks: HostCallbacks,
    limits: DeviceLimits,
    format_cache: Mutex<HashMap<FormatKey, vk::ImageFormatProperties>>,
    registry: Mutex<Registry>,
    retired: Mutex<VecDeque<(RetirePoint, RetiredResource)>>,
    faults: FaultInjector,
}

impl fmt::Debug for ResourceManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceManager")
            .field("id", &self.id)
            .field("limits", &self.limits)
            .field("debug_utils", &self.debug_utils.is_some())
            .field("report", &self.report())
            .finish_non_exhaustive()
    }
}

/// Objects made so far in one creation call, undone on failure.
struct Pending<H> {
    handles: SmallVec<[H; 1]>,
    allocations: SmallVec<[Allocation; 1]>,
}

impl ResourceManager {
    /// Creates a manager over the engine's device, reading the limits the
    /// validation needs (`maxBufferSize`, queue family count).
    ///
    /// # Safety
    /// - `desc.instance`, `desc.physical_device` and `desc.device` are valid,
    ///   related, of Vulkan 1.1 or later, and outlive the manager;
    /// - `desc.allocator` was created over the same device;
    /// - `desc.debug_utils`, when given, was loaded for `desc.device`;
    /// - `desc.allocation_callbacks`, when given, stay valid (their user data
    ///   too) for the manager's lifetime and are thread-safe.
    pub unsafe fn new(desc: ResourceManagerDesc<'_>) -> Self {
        let pd = desc.physical_device;
        // SAFETY: the physical device belongs to the instance (contract).
        let props = unsafe { desc.instance.get_physical_device_properties(pd) };
        // SAFETY: as above.
        let extensions =
            unsafe { desc.instance.enumerate_device_extension_properties(pd) }.unwrap_or_default();
        let has_maintenance4 = extensions
            .iter()
            .any(|e| e.extension_name_as_c_str().ok() == Some(ash::khr::maintenance4::NAME));
        let max_buffer_size = if props.api_version >= vk::API_VERSION_1_3 || has_maintenance4 {
            let mut m4 = vk::PhysicalDeviceMaintenance4Properties::default();
            let mut p2 = vk::PhysicalDeviceProperties2::default().push_next(&mut m4);
            // SAFETY: the device supports Vulkan 1.3 or VK_KHR_maintenance4,
            // so the chained struct is allowed (physical-device-level
            // functionality follows the device's version and extensions).
            unsafe { desc.instance.get_physical_device_properties2(pd, &mut p2) };
            if m4.max_buffer_size == 0 {
                u64::MAX
            } else {
                m4.max_buffer_size
            }
        } else {
            u64::MAX
        };
        // SAFETY: as above.
        let queue_family_count = unsafe {
            desc.instance
                .get_physical_device_queue_family_properties(pd)
        }
        .len() as u32;
        Self {
            id: NEXT_MANAGER_ID.fetch_add(1, Ordering::Relaxed),
            instance: desc.instance.clone(),
            physical_device: pd,
            device: desc.device.clone(),
            allocator: desc.allocator,
            debug_utils: desc.debug_utils,
            callbacks: HostCallbacks(desc.allocation_callbacks),
            limits: DeviceLimits {
                api_version: props.api_version,
                max_buffer_size,
                queue_family_count,
            },
            format_cache: Mutex::new(HashMap::new()),
            registry: Mutex::new(Registry::default()),
            retired: Mutex::new(VecDeque::new()),
            faults: FaultInjector::default(),
        }
    }

    /// The limits the validation uses.
    pub fn limits(&self) -> &DeviceLimits {
        &self.limits
    }

    /// The allocator resources take their memory from.
    pub fn allocator(&self) -> &Arc<Allocator> {
        &self.allocator
    }

    /// The device.
    pub fn device(&self) -> &ash::Device {
        &self.device
    }

    /// Identifier of this manager: what [`Buffer::owner`] and
    /// [`Image::owner`] return for the resources it made.
    pub fn id(&self) -> u64 {
        self.id
    }

    fn check_owner(&self, owner: u64) -> Result<(), ResourceError> {
        if owner == self.id {
            Ok(())
        } else {
            Err(ResourceError::ForeignResource {
                owner,
                this: self.id,
            })
        }
    }

    // ---------------------------------------------------------------- faults

    /// Makes the `nth` call from now (0 = the next) of `point` fail once
    /// with `result`, as if Vulkan had returned it. For tests of the failure
    /// paths; costs nothing measurable when unused.
    pub fn set_fault(&self, point: FaultPoint, nth: u64, result: vk::Result) {
        self.faults.set(point, nth, result);
    }

    /// Disarms every fault set with [`Self::set_fault`].
    pub fn clear_faults(&self) {
        self.faults.clear();
    }

    /// How many calls `point` got since the manager was made (whether they
    /// were failed or not): run a scenario once to learn how many positions
    /// a failure sweep has.
    pub fn fault_calls(&self, point: FaultPoint) -> u64 {
        self.faults.calls(point)
    }

    // ------------------------------------------------------------ validation

    /// Checks `desc` as [`Self::create_buffer`] would, without creating
    /// anything.
    pub fn validate_buffer_desc(&self, desc: &BufferDesc) -> Result<(), ResourceError> {
        validate::buffer(desc, &self.limits)
    }

    /// Checks `desc` as [`Self::create_image`] would (format support
    /// included), without creating anything.
    pub fn validate_image_desc(&self, desc: &ImageDesc) -> Result<(), ResourceError> {
        validate::image_shape(desc, &self.limits)?;
        let props = self.image_format_properties(desc)?;
        validate::image_format_limits(desc, &props)
    }

    /// `vkGetPhysicalDeviceImageFormatProperties` for the desc's format,
    /// type, tiling, usage and flags, cached. `FORMAT_NOT_SUPPORTED` becomes
    /// [`ResourceError::FormatNotSupported`] with the format's features.
    #[doc(alias = "vkGetPhysicalDeviceImageFormatProperties")]
    pub fn image_format_properties(
        &self,
        desc: &ImageDesc,
    ) -> Result<vk::ImageFormatProperties, ResourceError> {
        let key = (
            desc.format,
            desc.kind.image_type(),
            desc.tiling,
            desc.usage,
            desc.create_flags(),
        );
        if let Some(p) = self.format_cache.lock().get(&key) {
            return Ok(*p);
        }
        // SAFETY: valid instance and physical device (constructor contract);
        // the arguments are plain enums and flags, checked by image_shape.
        let result = unsafe {
            self.instance.get_physical_device_image_format_properties(
                self.physical_device,
                key.0,
                key.1,
                key.2,
                key.3,
                key.4,
            )
        };
        match result {
            Ok(p) => {
                self.format_cache.lock().insert(key, p);
                Ok(p)
            }
            Err(vk::Result::ERROR_FORMAT_NOT_SUPPORTED) => {
                let features = self.format_features(desc.format, desc.tiling);
                Err(ResourceError::FormatNotSupported {
                    format: key.0,
                    image_type: key.1,
                    tiling: key.2,
                    usage: key.3,
                    flags: key.4,
                    features,
                })
            }
            // Out of memory is not an answer about the format: not cached.
            Err(result) => Err(ResourceError::Vulkan {
                call: "vkGetPhysicalDeviceImageFormatProperties",
                result,
            }),
        }
    }

    /// The features of `format` for `tiling`
    /// (`vkGetPhysicalDeviceFormatProperties`).
    #[doc(alias = "vkGetPhysicalDeviceFormatProperties")]
    pub fn format_features(
        &self,
        format: vk::Format,
        tiling: vk::ImageTiling,
    ) -> vk::FormatFeatureFlags {
        // SAFETY: valid instance and physical device (constructor contract).
        let p = unsafe {
            self.instance
                .get_physical_device_format_properties(self.physical_device, format)
        };
        if tiling == vk::ImageTiling::LINEAR {
            p.linear_tiling_features
        } else {
            p.optimal_tiling_features
        }
    }

    // --------------------------------------------------------------- buffers

    /// Creates a buffer, allocates and binds its memory, and names it.
    ///
    /// The desc is validated first; any failure after `vkCreateBuffer`
    /// destroys the buffer and frees its memory before returning.
    #[doc(alias = "vkCreateBuffer")]
    #[doc(alias = "vmaCreateBuffer")]
    pub fn create_buffer(&self, desc: &BufferDesc) -> Result<Buffer, ResourceError> {
        let mut v = self.create_buffers_inner(std::slice::from_ref(desc), false)?;
        Ok(v.pop().expect("one buffer per desc"))
    }

    /// Creates one buffer per desc with a single `vkBindBufferMemory2` call.
    /// All or nothing: on any failure nothing of the batch is left, and the
    /// error says which desc failed ([`ResourceError::Batch`]), except for
    /// the shared bind call, whose failure is reported as is.
    pub fn create_buffers(&self, descs: &[BufferDesc]) -> Result<Vec<Buffer>, ResourceError> {
        Ok(self.create_buffers_inner(descs, true)?.into_vec())
    }

    fn create_buffers_inner(
        &self,
        descs: &[BufferDesc],
        batch: bool,
    ) -> Result<SmallVec<[Buffer; 1]>, ResourceError> {
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
            validate::buffer(d, &self.limits).map_err(|e| wrap(i, e))?;
        }
        if descs.is_empty() {
            // vkBindBufferMemory2 needs bindInfoCount > 0.
            return Ok(SmallVec::new());
        }
        let mut p: Pending<vk::Buffer> = Pending {
            handles: SmallVec::with_capacity(descs.len()),
            allocations: SmallVec::with_capacity(descs.len()),
        };
        for (i, d) in descs.iter().enumerate() {
            match self.create_buffer_object(d) {
                Ok(h) => p.handles.push(h),
                Err(e) => return Err(wrap(i, self.undo_buffers(p, e))),
            }
        }
        for (i, d) in descs.iter().enumerate() {
            let handle = p.handles[i];
            let (requirements, dedicated) = self.buffer_requirements(handle);
            let mut adesc = AllocationDesc::new(requirements, d.memory)
                .class(ResourceClass::Linear)
                .dedicated(dedicated);
            if let Some(n) = &d.name {
                adesc = adesc.name(n);
            }
            match self.allocator.allocate(&adesc) {
                Ok(a) => p.allocations.push(a),
                Err(e) => return Err(wrap(i, self.undo_buffers(p, e.into()))),
            }
        }
        let binds: SmallVec<[vk::BindBufferMemoryInfo<'_>; 1]> = p
            .handles
            .iter()
            .zip(&p.allocations)
            .map(|(&b, a)| {
                vk::BindBufferMemoryInfo::default()
                    .buffer(b)
                    .memory(a.memory())
                    .memory_offset(a.offset())
            })
            .collect();
        let bound = self
            .faults
            .check(FaultPoint::BindBufferMemory)
            .and_then(|()| {
                // SAFETY: each buffer is fresh (no memory bound) and its
                // allocation was made from its own requirements, so size,
                // alignment and memory type satisfy the bind's valid usage.
                unsafe { self.device.bind_buffer_memory2(&binds) }
            });
        drop(binds);
        if let Err(result) = bound {
            // If the bind failed, spec: the buffers' memory binding state is
            // undefined, but destroying them and freeing the memory is valid.
            return Err(self.undo_buffers(
                p,
                ResourceError::Vulkan {
                    call: "vkBindBufferMemory2",
                    result,
                },
            ));
        }
        for (i, d) in descs.iter().enumerate() {
            if let Some(name) = &d.name {
                let named = self
                    .set_name(p.handles[i], name)
                    .and_then(|()| self.name_memory(&p.allocations[i], name));
                if let Err(e) = named {
                    return Err(wrap(i, self.undo_buffers(p, e)));
                }
            }
        }
        let mut out = SmallVec::with_capacity(descs.len());
        let mut registry = self.registry.lock();
        for ((d, handle), allocation) in descs.iter().zip(p.handles).zip(p.allocations) {
            let slot = registry.insert(Entry {
                kind: ResourceKind::Buffer,
                handle: vk::Handle::as_raw(handle),
                name: d.name.clone(),
                memory_size: allocation.reserved_size(),
                retired: None,
            });
            out.push(Buffer {
                handle,
                allocation,
                desc: d.clone(),
                owner: self.id,
                slot,
            });
        }
        Ok(out)
    }

    fn create_buffer_object(&self, d: &BufferDesc) -> Result<vk::Buffer, ResourceError> {
        let families = d.sharing.distinct_families();
        let info = vk::BufferCreateInfo::default()
            .size(d.size)
            .usage(d.usage)
            .sharing_mode(d.sharing.mode())
            .queue_family_indices(&families);
        self.faults
            .check(FaultPoint::CreateBuffer)
            .and_then(|()| {
                // SAFETY: the desc passed validation (non-zero size within
                // maxBufferSize, non-empty usage, valid distinct families for
                // concurrent sharing).
                unsafe { self.device.create_buffer(&info, self.callbacks.get()) }
            })
            .map_err(|result| ResourceError::Vulkan {
                call: "vkCreateBuffer",
                result,
            })
    }

    fn buffer_requirements(&self, buffer: vk::Buffer) -> (vk::MemoryRequirements, Dedicated) {
        let mut dedicated = vk::MemoryDedicatedRequirements::default();
        let mut req2 = vk::MemoryRequirements2::default().push_next(&mut dedicated);
        let info = vk::BufferMemoryRequirementsInfo2::default().buffer(buffer);
        // SAFETY: the buffer is a live object of this device; the chain is on
        // the stack.
        unsafe {
            self.device
                .get_buffer_memory_requirements2(&info, &mut req2)
        };
        let requirements = req2.memory_requirements;
        (
            requirements,
            dedicated_hint(&dedicated, DedicatedTarget::Buffer(buffer)),
        )
    }

    /// Frees the allocations of a failed creation, last made first.
    fn free_in_reverse(&self, allocations: impl DoubleEndedIterator<Item = Allocation>) {
        for a in allocations.rev() {
            let freed = self.allocator.free(a);
            debug_assert!(
                freed.is_ok(),
                "allocation from our own allocator: {freed:?}"
            );
        }
    }

    /// Destroys the objects and frees the allocations of a failed creation,
    /// objects first (reverse of creation), and returns `error`.
    fn undo_buffers(&self, p: Pending<vk::Buffer>, error: ResourceError) -> ResourceError {
        for &b in p.handles.iter().rev() {
            // SAFETY: the buffer was created by this call and never handed out,
            // so no GPU work can use it.
            unsafe { self.device.destroy_buffer(b, self.callbacks.get()) };
        }
        self.free_in_reverse(p.allocations.into_iter());
        error
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
    unsafe fn destroy_buffer_now(&self, buffer: Buffer) {
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

    // ---------------------------------------------------------------- images

    /// Creates an image, allocates and binds its memory, and names it.
    ///
    /// The desc is validated first, format support included; any failure
    /// after `vkCreateImage` destroys the image and frees its memory before
    /// returning.
    #[doc(alias = "vkCreateImage")]
    #[doc(alias = "vmaCreateImage")]
    pub fn create_image(&self, desc: &ImageDesc) -> Result<Image, ResourceError> {
        let mut v = self.create_images_inner(std::slice::from_ref(desc), false)?;
        Ok(v.pop().expect("one image per desc"))
    }

    /// Creates one image per desc with a single `vkBindImageMemory2` call;
    /// all or nothing, like [`Self::create_buffers`].
    pub fn create_images(&self, descs: &[ImageDesc]) -> Result<Vec<Image>, ResourceError> {
        Ok(self.create_images_inner(descs, true)?.into_vec())
    }

    fn create_images_inner(
        &self,
        descs: &[ImageDesc],
        batch: bool,
    ) -> Result<SmallVec<[Image; 1]>, ResourceError> {
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
            self.validate_image_desc(d).map_err(|e| wrap(i, e))?;
        }
        if descs.is_empty() {
            // vkBindImageMemory2 needs bindInfoCount > 0.
            return Ok(SmallVec::new());
        }
        let mut p: Pending<vk::Image> = Pending {
            handles: SmallVec::with_capacity(descs.len()),
            allocations: SmallVec::with_capacity(descs.len()),
        };
        for (i, d) in descs.iter().enumerate() {
            match self.create_image_object(d) {
                Ok(h) => p.handles.push(h),
                Err(e) => return Err(wrap(i, self.undo_images(p, e))),
            }
        }
        for (i, d) in descs.iter().enumerate() {
            let handle = p.handles[i];
            let (requirements, dedicated) = self.image_requirements(handle);
            let class = if d.tiling == vk::ImageTiling::OPTIMAL {
                ResourceClass::Optimal
            } else {
                ResourceClass::Linear
            };
            let mut adesc = AllocationDesc::new(requirements, d.memory)
                .class(class)
                .dedicated(dedicated);
            if let Some(n) = &d.name {
                adesc = adesc.name(n);
            }
            match self.allocator.allocate(&adesc) {
                Ok(a) => p.allocations.push(a),
                Err(e) => return Err(wrap(i, self.undo_images(p, e.into()))),
            }
        }
        let binds: SmallVec<[vk::BindImageMemoryInfo<'_>; 1]> = p
            .handles
            .iter()
            .zip(&p.allocations)
            .map(|(&img, a)| {
                vk::BindImageMemoryInfo::default()
                    .image(img)
                    .memory(a.memory())
                    .memory_offset(a.offset())
            })
            .collect();
        let bound = self
            .faults
            .check(FaultPoint::BindImageMemory)
            .and_then(|()| {
                // SAFETY: each image is fresh, not disjoint (refused by
                // validation), and its allocation satisfies its requirements.
                unsafe { self.device.bind_image_memory2(&binds) }
            });
        drop(binds);
        if let Err(result) = bound {
            return Err(self.undo_images(
                p,
                ResourceError::Vulkan {
                    call: "vkBindImageMemory2",
                    result,
                },
            ));
        }
        for (i, d) in descs.iter().enumerate() {
            if let Some(name) = &d.name {
                let named = self
                    .set_name(p.handles[i], name)
                    .and_then(|()| self.name_memory(&p.allocations[i], name));
                if let Err(e) = named {
                    return Err(wrap(i, self.undo_images(p, e)));
                }
            }
        }
        let mut out = SmallVec::with_capacity(descs.len());
        let mut registry = self.registry.lock();
        for ((d, handle), allocation) in descs.iter().zip(p.handles).zip(p.allocations) {
            let slot = registry.insert(Entry {
                kind: ResourceKind::Image,
                handle: vk::Handle::as_raw(handle),
                name: d.name.clone(),
                memory_size: allocation.reserved_size(),
                retired: None,
            });
            out.push(Image {
                handle,
                allocation,
                desc: d.clone(),
                owner: self.id,
                slot,
                layouts: ImageLayouts::new(d.mip_levels, d.array_layers),
            });
        }
        Ok(out)
    }

    fn create_image_object(&self, d: &ImageDesc) -> Result<vk::Image, ResourceError> {
        let families = d.sharing.distinct_families();
        let info = vk::ImageCreateInfo::default()
            .flags(d.create_flags())
            .image_type(d.kind.image_type())
            .format(d.format)
            .extent(d.extent)
            .mip_levels(d.mip_levels)
            .array_layers(d.array_layers)
            .samples(d.samples)
            .tiling(d.tiling)
            .usage(d.usage)
            .sharing_mode(d.sharing.mode())
            .queue_family_indices(&families)
            .initial_layout(d.initial_layout);
        self.faults
            .check(FaultPoint::CreateImage)
            .and_then(|()| {
                // SAFETY: the desc passed validation, including the format
                // properties for exactly this format/type/tiling/usage/flags.
                unsafe { self.device.create_image(&info, self.callbacks.get()) }
            })
            .map_err(|result| ResourceError::Vulkan {
                call: "vkCreateImage",
                result,
            })
    }

    fn image_requirements(&self, image: vk::Image) -> (vk::MemoryRequirements, Dedicated) {
        let mut dedicated = vk::MemoryDedicatedRequirements::default();
        let mut req2 = vk::MemoryRequirements2::default().push_next(&mut dedicated);
        let info = vk::ImageMemoryRequirementsInfo2::default().image(image);
        // SAFETY: the image is a live, non-disjoint object of this device.
        unsafe { self.device.get_image_memory_requirements2(&info, &mut req2) };
        let requirements = req2.memory_requirements;
        (
            requirements,
            dedicated_hint(&dedicated, DedicatedTarget::Image(image)),
        )
    }

    fn undo_images(&self, p: Pending<vk::Image>, error: ResourceError) -> ResourceError {
        for &img in p.handles.iter().rev() {
            // SAFETY: created by this call, never handed out.
            unsafe { self.device.destroy_image(img, self.callbacks.get()) };
        }
        self.free_in_reverse(p.allocations.into_iter());
        error
    }

    /// Destroys an image and frees its memory now.
    ///
    /// Fails only for an image of another manager: it is handed back
    /// unchanged inside the [`Refused`] ([`ResourceError::ForeignResource`]).
    ///
    /// # Safety
    /// - no pending or future GPU work uses the image;
    /// - every view of it has been destroyed.
    #[doc(alias = "vkDestroyImage")]
    pub unsafe fn destroy_image(&self, image: Image) -> Result<(), Refused<Image, ResourceError>> {
        if let Err(e) = self.check_owner(image.owner) {
            return Err(Refused::new(e, image));
        }
        self.registry.lock().remove(image.slot);
        // SAFETY: forwarded from this function's contract.
        unsafe { self.destroy_image_now(image) };
        Ok(())
    }

    /// # Safety
    /// - as for [`Self::destroy_image`]; the image is out of the registry.
    unsafe fn destroy_image_now(&self, image: Image) {
        // SAFETY: the GPU is done with it (caller's contract).
        unsafe {
            self.device
                .destroy_image(image.handle, self.callbacks.get())
        };
        let freed = self.allocator.free(image.allocation);
        debug_assert!(
            freed.is_ok(),
            "allocation from our own allocator: {freed:?}"
        );
    }

    /// Queues an image for destruction once the GPU passes `after` (one
    /// [`TimelinePoint`] or a [`RetirePoint`]). Fails only for an image of
    /// another manager, handed back as in [`Self::destroy_image`].
    ///
    /// # Safety
    /// - as for [`Self::retire_buffer`]; views of the image must be destroyed
    ///   by the time it is collected.
    pub unsafe fn retire_image(
        &self,
        image: Image,
        after: impl Into<RetirePoint>,
    ) -> Result<(), Refused<Image, ResourceError>> {
        if let Err(e) = self.check_owner(image.owner) {
            return Err(Refused::new(e, image));
        }
        self.retire(RetiredResource::Image(image), after.into());
        Ok(())
    }

    // ---------------------------------------------------- deferred destruction

    fn retire(&self, resource: RetiredResource, after: RetirePoint) {
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

    // ---------------------------------------------------------------- naming

    fn set_name<H: vk::Handle>(&self, handle: H, name: &str) -> Result<(), ResourceError> {
        let Some(du) = &self.debug_utils else {
            return Ok(());
        };
        let cname = CString::new(name).map_err(|_| ResourceError::InvalidName {
            name: name.to_owned(),
        })?;
        let info = vk::DebugUtilsObjectNameInfoEXT::default()
            .object_handle(handle)
            .object_name(&cname);
        self.faults
            .check(FaultPoint::SetObjectName)
            .and_then(|()| {
                // SAFETY: the handle is a live object of this device and
                // debug_utils was loaded for it (constructor contract).
                unsafe { du.set_debug_utils_object_name(&info) }
            })
            .map_err(|result| ResourceError::Vulkan {
                call: "vkSetDebugUtilsObjectNameEXT",
                result,
            })
    }

    fn name_memory(&self, allocation: &Allocation, name: &str) -> Result<(), ResourceError> {
        if allocation.is_dedicated() {
            self.set_name(allocation.memory(), name)
        } else {
            Ok(())
        }
    }

    // ----------------------------------------------------------- host access

    /// Copies `data` into the buffer at `offset` through its persistent
    /// mapping, flushing when the memory is not coherent.
    ///
    /// The GPU must not be using the range (a data race on device memory is
    /// not undefined behaviour for Rust, but gives garbage); `&mut Buffer`
    /// keeps host writers exclusive.
    pub fn write_buffer(
        &self,
        buffer: &mut Buffer,
        offset: u64,
        data: &[u8],
    ) -> Result<(), ResourceError> {
        self.check_owner(buffer.owner)?;
        check_host_range(
            &buffer.allocation,
            buffer.desc.name.as_deref(),
            offset,
            data.len() as u64,
            buffer.desc.size,
        )?;
        self.allocator.write(&mut buffer.allocation, offset, data)?;
        Ok(())
    }

    /// Invalidates (when not coherent) and copies `out.len()` bytes of the
    /// buffer at `offset` into `out`. The GPU must have finished writing the
    /// range (wait for its submission first).
    pub fn read_buffer(
        &self,
        buffer: &Buffer,
        offset: u64,
        out: &mut [u8],
    ) -> Result<(), ResourceError> {
        self.check_owner(buffer.owner)?;
        check_host_range(
            &buffer.allocation,
            buffer.desc.name.as_deref(),
            offset,
            out.len() as u64,
            buffer.desc.size,
        )?;
        self.allocator.read(&buffer.allocation, offset, out)?;
        Ok(())
    }

    /// Where a subresource of a `LINEAR` image lies in its memory
    /// (`vkGetImageSubresourceLayout`), for [`Self::write_image`] and
    /// [`Self::read_image`]. `aspect` is one aspect of the format.
    #[doc(alias = "vkGetImageSubresourceLayout")]
    pub fn image_subresource_layout(
        &self,
        image: &Image,
        aspect: vk::ImageAspectFlags,
        mip_level: u32,
        array_layer: u32,
    ) -> Result<vk::SubresourceLayout, ResourceError> {
        self.check_owner(image.owner)?;
        if image.desc.tiling != vk::ImageTiling::LINEAR {
            return Err(ResourceError::NotLinear {
                tiling: image.desc.tiling,
            });
        }
        if mip_level >= image.desc.mip_levels || array_layer >= image.desc.array_layers {
            return Err(ResourceError::SubresourceOutOfRange {
                mip_level,
                array_layer,
                mip_levels: image.desc.mip_levels,
                array_layers: image.desc.array_layers,
            });
        }
        let sub = vk::ImageSubresource {
            aspect_mask: aspect,
            mip_level,
            array_layer,
        };
        // SAFETY: a live LINEAR image of this device, subresource in range.
        Ok(unsafe { self.device.get_image_subresource_layout(image.handle, sub) })
    }

    /// Copies `data` into a host-visible `LINEAR` image's memory at byte
    /// `offset` (see [`Self::image_subresource_layout`] for where texels
    /// go), flushing when needed. The image should be in `PREINITIALIZED`
    /// or `GENERAL` layout and unused by the GPU.
    pub fn write_image(
        &self,
        image: &mut Image,
        offset: u64,
        data: &[u8],
    ) -> Result<(), ResourceError> {
        self.check_owner(image.owner)?;
        if image.desc.tiling != vk::ImageTiling::LINEAR {
            return Err(ResourceError::NotLinear {
                tiling: image.desc.tiling,
            });
        }
        let size = image.allocation.reserved_size();
        check_host_range(
            &image.allocation,
            image.desc.name.as_deref(),
            offset,
            data.len() as u64,
            size,
        )?;
        self.allocator.write(&mut image.allocation, offset, data)?;
        Ok(())
    }

    /// Reads bytes of a host-visible `LINEAR` image's memory at `offset`,
    /// invalidating when needed.
    pub fn read_image(
        &self,
        image: &Image,
        offset: u64,
        out: &mut [u8],
    ) -> Result<(), ResourceError> {
        self.check_owner(image.owner)?;
        if image.desc.tiling != vk::ImageTiling::LINEAR {
            return Err(ResourceError::NotLinear {
                tiling: image.desc.tiling,
            });
        }
        let size = image.allocation.reserved_size();
        check_host_range(
            &image.allocation,
            image.desc.name.as_deref(),
            offset,
            out.len() as u64,
            size,
        )?;
        self.allocator.read(&image.allocation, offset, out)?;
        Ok(())
    }

    // --------------------------------------------------------------- insight

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

fn dedicated_hint(req: &vk::MemoryDedicatedRequirements<'_>, target: DedicatedTarget) -> Dedicated {
    if req.requires_dedicated_allocation == vk::TRUE {
        Dedicated::Required(Some(target))
    } else if req.prefers_dedicated_allocation == vk::TRUE {
        Dedicated::Preferred(Some(target))
    } else {
        Dedicated::No
    }
}

fn check_host_range(
    allocation: &Allocation,
    name: Option<&str>,
    offset: u64,
    len: u64,
    size: u64,
) -> Result<(), ResourceError> {
    if allocation.mapped_ptr().is_none() {
        return Err(ResourceError::NotHostVisible {
            name: name.map(str::to_owned),
            memory_type_index: allocation.memory_type_index(),
        });
    }
    if offset.checked_add(len).is_none_or(|end| end > size) {
        return Err(ResourceError::OutOfRange { offset, len, size });
    }
    Ok(())
}

impl Drop for ResourceManager {
    /// Destroys the retired resources whose timeline point the GPU has
    /// passed and reports what is left: live resources (the engine still
    /// holds them: leaked) and retired ones whose point is not reached
    /// (destroying those could pull memory from under running GPU work, so
    /// they are leaked too). Quiet while panicking.
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        if let Err(e) = self.collect() {
            if !panicking {
                eprintln!(
                    "gpumem: ResourceManager dropped: collect failed ({e}); retired resources leak"
                );
            }
        }
        let left = self.leak_report();
        if left.is_empty() || panicking {
            return;
        }
        let live = left.iter().filter(|r| r.retired.is_none()).count();
        eprintln!(
            "gpumem: ResourceManager dropped with {live} live and {} unfinished retired resource(s) (leaked):",
            left.len() - live
        );
        for r in left.iter().take(32) {
            eprintln!(
                "  {:?} {:?}, {} bytes, handle {:#x}{}",
                r.kind,
                r.name.as_deref().unwrap_or("<unnamed>"),
                r.memory_size,
                r.handle,
                match &r.retired {
                    Some(after) => format!(", retired until {after}"),
                    None => String::new(),
                }
            );
        }
        if left.len() > 32 {
            eprintln!("  ... and {} more", left.len() - 32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manager_and_resources_are_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<ResourceManager>();
        check::<Buffer>();
        check::<Image>();
    }

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
