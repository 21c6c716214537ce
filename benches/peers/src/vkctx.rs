//! Vulkan setup on lavapipe (no layers) and the `vkAllocateMemory` /
//! `vkFreeMemory` hook that counts committed bytes and calls for every
//! allocator the same way.
//!
//! The hook replaces the two entries in the `ash::Device` function table.
//! mem-core, gpu-allocator and gpu-alloc call through that table (they clone
//! the `ash::Device`), and vk-mem hands the same table's pointers to VMA as its
//! `VmaVulkanFunctions`, so all four pay the same (tiny) hook cost on each
//! `vkAllocateMemory` and none on sub-allocations.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use ash::vk;

static REAL_ALLOCATE: OnceLock<vk::PFN_vkAllocateMemory> = OnceLock::new();
static REAL_FREE: OnceLock<vk::PFN_vkFreeMemory> = OnceLock::new();
static COUNTERS: Mutex<Option<Counters>> = Mutex::new(None);

#[derive(Default)]
struct Counters {
    live: HashMap<u64, u64>,
    current: u64,
    peak: u64,
    allocate_calls: u64,
    allocate_failures: u64,
    free_calls: u64,
}

/// A snapshot of the hook's counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemCount {
    /// Bytes of `VkDeviceMemory` live now.
    pub current: u64,
    /// Highest `current` since the last reset.
    pub peak: u64,
    /// `vkAllocateMemory` calls since the last reset (failed ones included).
    pub allocate_calls: u64,
    /// Of those, the ones that failed.
    pub allocate_failures: u64,
    /// `vkFreeMemory` calls since the last reset.
    pub free_calls: u64,
}

unsafe extern "system" fn hook_allocate_memory(
    device: vk::Device,
    info: *const vk::MemoryAllocateInfo<'_>,
    callbacks: *const vk::AllocationCallbacks<'_>,
    memory: *mut vk::DeviceMemory,
) -> vk::Result {
    let real = *REAL_ALLOCATE.get().expect("hook installed");
    // SAFETY: forwarded unchanged from the caller, who follows the Vulkan rules.
    let r = unsafe { real(device, info, callbacks, memory) };
    let mut g = COUNTERS.lock().unwrap();
    let c = g.get_or_insert_with(Counters::default);
    c.allocate_calls += 1;
    if r == vk::Result::SUCCESS {
        // SAFETY: on success `info` and `memory` are valid (Vulkan contract).
        let (size, handle) = unsafe { ((*info).allocation_size, *memory) };
        c.live.insert(vk::Handle::as_raw(handle), size);
        c.current += size;
        c.peak = c.peak.max(c.current);
    } else {
        c.allocate_failures += 1;
    }
    r
}

unsafe extern "system" fn hook_free_memory(
    device: vk::Device,
    memory: vk::DeviceMemory,
    callbacks: *const vk::AllocationCallbacks<'_>,
) {
    if memory != vk::DeviceMemory::null() {
        let mut g = COUNTERS.lock().unwrap();
        let c = g.get_or_insert_with(Counters::default);
        c.free_calls += 1;
        if let Some(size) = c.live.remove(&vk::Handle::as_raw(memory)) {
            c.current -= size;
        }
    }
    let real = *REAL_FREE.get().expect("hook installed");
    // SAFETY: forwarded unchanged.
    unsafe { real(device, memory, callbacks) }
}

/// Resets peak and call counters (the live set stays: `current` is what is
/// still allocated).
pub fn reset_counters() {
    let mut g = COUNTERS.lock().unwrap();
    let c = g.get_or_insert_with(Counters::default);
    c.peak = c.current;
    c.allocate_calls = 0;
    c.allocate_failures = 0;
    c.free_calls = 0;
}

/// Reads the counters.
pub fn counters() -> MemCount {
    let mut g = COUNTERS.lock().unwrap();
    let c = g.get_or_insert_with(Counters::default);
    MemCount {
        current: c.current,
        peak: c.peak,
        allocate_calls: c.allocate_calls,
        allocate_failures: c.allocate_failures,
        free_calls: c.free_calls,
    }
}

/// Instance, physical device and (hooked) device on the first CPU device
/// (lavapipe), else the first device.
pub struct VkCtx {
    pub _entry: ash::Entry,
    pub instance: ash::Instance,
    pub physical_device: vk::PhysicalDevice,
    pub device: ash::Device,
    pub api_version: u32,
    pub device_name: String,
    pub driver_info: String,
    pub heap_sizes: Vec<u64>,
    pub memory_types: Vec<String>,
    pub buffer_image_granularity: u64,
}

impl VkCtx {
    pub fn new() -> Result<Self, String> {
        // SAFETY: loads the system Vulkan loader.
        let entry = unsafe { ash::Entry::load() }.map_err(|e| format!("Vulkan loader: {e}"))?;
        let api_version = vk::API_VERSION_1_3;
        let app = vk::ApplicationInfo::default()
            .application_name(c"gpumem-peers")
            .api_version(api_version);
        let ici = vk::InstanceCreateInfo::default().application_info(&app);
        // SAFETY: valid create info, no layers or extensions.
        let instance = unsafe { entry.create_instance(&ici, None) }
            .map_err(|e| format!("vkCreateInstance: {e}"))?;
        // SAFETY: valid instance.
        let pds = unsafe { instance.enumerate_physical_devices() }
            .map_err(|e| format!("enumerate: {e}"))?;
        let pick = pds
            .iter()
            .copied()
            // SAFETY: valid handles from the instance.
            .find(|&pd| unsafe { instance.get_physical_device_properties(pd) }.device_type
                == vk::PhysicalDeviceType::CPU)
            .or_else(|| pds.first().copied())
            .ok_or("no Vulkan device")?;
        let mut driver = vk::PhysicalDeviceDriverProperties::default();
        let mut props2 = vk::PhysicalDeviceProperties2::default().push_next(&mut driver);
        // SAFETY: valid handle and chain.
        unsafe { instance.get_physical_device_properties2(pick, &mut props2) };
        let props = props2.properties;
        let device_name = props
            .device_name_as_c_str()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let driver_info = driver
            .driver_info_as_c_str()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let api_version = api_version.min(props.api_version);
        // SAFETY: valid handle.
        let mp = unsafe { instance.get_physical_device_memory_properties(pick) };
        let heap_sizes = mp.memory_heaps[..mp.memory_heap_count as usize]
            .iter()
            .map(|h| h.size)
            .collect();
        let memory_types = mp.memory_types[..mp.memory_type_count as usize]
            .iter()
            .map(|t| format!("heap {} {:?}", t.heap_index, t.property_flags))
            .collect();

        let prio = [1.0f32];
        let qci = [vk::DeviceQueueCreateInfo::default()
            .queue_family_index(0)
            .queue_priorities(&prio)];
        let dci = vk::DeviceCreateInfo::default().queue_create_infos(&qci);
        // SAFETY: valid physical device and create info.
        let base = unsafe { instance.create_device(pick, &dci, None) }
            .map_err(|e| format!("vkCreateDevice: {e}"))?;
        let mut f0 = base.fp_v1_0().clone();
        let _ = REAL_ALLOCATE.set(f0.allocate_memory);
        let _ = REAL_FREE.set(f0.free_memory);
        f0.allocate_memory = hook_allocate_memory;
        f0.free_memory = hook_free_memory;
        let device = ash::Device::from_parts_1_3(
            base.handle(),
            f0,
            base.fp_v1_1().clone(),
            base.fp_v1_2().clone(),
            base.fp_v1_3().clone(),
        );
        Ok(Self {
            _entry: entry,
            instance,
            physical_device: pick,
            device,
            api_version,
            device_name,
            driver_info,
            heap_sizes,
            memory_types,
            buffer_image_granularity: props.limits.buffer_image_granularity,
        })
    }
}

impl Drop for VkCtx {
    fn drop(&mut self) {
        // SAFETY: every allocator over the device was dropped before.
        unsafe {
            self.device.destroy_device(None);
            self.instance.destroy_instance(None);
        }
    }
}
