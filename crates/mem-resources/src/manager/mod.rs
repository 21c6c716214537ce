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
//!
//! # Where each part lives
//! One module per concern, each an `impl ResourceManager` block (or the
//! types it owns): `registry` (slots of live and retired resources, the
//! leak report on drop), `faults` (test hooks, feature `testing`),
//! `formats` (desc checks and cached format queries), `buffers` and
//! `images` (the resource types, their single creation, destruction and
//! retirement), `batch` (the all-or-nothing creation every path goes
//! through), `collect` (the retire queue and `collect`), `defrag` (resources
//! recreated at an allocation a defragmentation pass reserved, and the
//! retirement of those they replace), `naming`
//! (`VK_EXT_debug_utils` names), `host_io` (reads and writes through
//! persistent mappings) and `reports` (counters and `validate`). This file
//! holds the manager itself: what it is built from, its fields and its
//! accessors.

mod batch;
mod buffers;
mod collect;
mod defrag;
#[cfg(feature = "testing")]
mod faults;
mod formats;
mod host_io;
mod images;
mod naming;
mod registry;
mod reports;

use std::collections::{HashMap, VecDeque};
use std::ffi::CString;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ash::vk;
use mem_core::host::HostCallbacks;
use mem_core::{
    Allocation, AllocationDesc, Allocator, Dedicated, DedicatedTarget, MemoryUsage, Refused,
    ResourceClass,
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

pub use self::buffers::Buffer;
pub use self::defrag::{Resource, ResourceRef};
pub use self::images::Image;
pub use self::registry::{LiveResource, ResourceKind};
pub use self::reports::ResourceReport;

use self::collect::RetiredResource;
use self::formats::FormatKey;
use self::registry::{Entry, Registry};

static NEXT_MANAGER_ID: AtomicU64 = AtomicU64::new(1);

/// What a [`ResourceManager`] is built from: the engine's Vulkan objects,
/// borrowed, the allocator to take memory from, and options. A
/// `*CreateInfo`, as `VkDeviceCreateInfo` or VMA's `VmaAllocatorCreateInfo`:
/// consumed by [`ResourceManager::new`], unlike a `*Desc`, which describes
/// one resource to create (see the [crate docs](crate#naming)).
pub struct ResourceManagerCreateInfo<'a> {
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
    /// manager makes, and handed to the layers above
    /// ([`ResourceManager::allocation_callbacks`]). Default `None`.
    pub allocation_callbacks: Option<vk::AllocationCallbacks<'static>>,
}

impl<'a> ResourceManagerCreateInfo<'a> {
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

impl ResourceManager {
    /// Creates a manager over the engine's device, reading the limits the
    /// validation needs (`maxBufferSize`, queue family count).
    ///
    /// # Safety
    /// - `info.instance`, `info.physical_device` and `info.device` are valid,
    ///   related, of Vulkan 1.1 or later, and outlive the manager;
    /// - `info.allocator` was created over the same device;
    /// - `info.debug_utils`, when given, was loaded for `info.device`;
    /// - `info.allocation_callbacks`, when given, stay valid (their user data
    ///   too) while the manager lives and until every object created with
    ///   them is destroyed (including objects of layers above that use
    ///   [`Self::allocation_callbacks`]), and are thread-safe.
    pub unsafe fn new(info: ResourceManagerCreateInfo<'_>) -> Self {
        let pd = info.physical_device;
        // SAFETY: the physical device belongs to the instance (contract).
        let props = unsafe { info.instance.get_physical_device_properties(pd) };
        // SAFETY: as above.
        let extensions =
            unsafe { info.instance.enumerate_device_extension_properties(pd) }.unwrap_or_default();
        let has_maintenance4 = extensions
            .iter()
            .any(|e| e.extension_name_as_c_str().ok() == Some(ash::khr::maintenance4::NAME));
        let max_buffer_size = if props.api_version >= vk::API_VERSION_1_3 || has_maintenance4 {
            let mut m4 = vk::PhysicalDeviceMaintenance4Properties::default();
            let mut p2 = vk::PhysicalDeviceProperties2::default().push_next(&mut m4);
            // SAFETY: the device supports Vulkan 1.3 or VK_KHR_maintenance4,
            // so the chained struct is allowed (physical-device-level
            // functionality follows the device's version and extensions).
            unsafe { info.instance.get_physical_device_properties2(pd, &mut p2) };
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
            info.instance
                .get_physical_device_queue_family_properties(pd)
        }
        .len() as u32;
        Self {
            id: NEXT_MANAGER_ID.fetch_add(1, Ordering::Relaxed),
            instance: info.instance.clone(),
            physical_device: pd,
            device: info.device.clone(),
            allocator: info.allocator,
            debug_utils: info.debug_utils,
            // SAFETY: valid and thread-safe for the manager's lifetime (this
            // function's contract).
            callbacks: unsafe { HostCallbacks::new(info.allocation_callbacks) },
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

    /// The host allocation callbacks the manager was given
    /// ([`ResourceManagerCreateInfo::allocation_callbacks`]), or `None`.
    /// Layers above pass them to every Vulkan object they create and
    /// destroy for the same engine (the staging belt does), so all of
    /// gpumem's host memory goes through the engine's allocator.
    #[doc(alias = "pAllocator")]
    pub fn allocation_callbacks(&self) -> Option<&vk::AllocationCallbacks<'static>> {
        self.callbacks.get()
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
}
