//! [`TestContextBuilder`] and [`TestContext`].

use std::ffi::{c_char, CStr, CString};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use ash::vk;

use crate::messages::{self, MessageLog, VALIDATION_LAYER};

/// Environment variable: index into `vkEnumeratePhysicalDevices` of the device
/// to test on (default: the builder's preference, else device 0).
pub const DEVICE_ENV: &str = "GPUMEM_TEST_DEVICE";

/// Environment variable: when set (to anything), the messenger also receives
/// INFO and VERBOSE messages and prints them (never counted).
pub const VERBOSE_ENV: &str = "GPUMEM_TEST_VK_VERBOSE";

/// How long [`TestContext::one_shot`] waits for its fence before it panics.
/// lavapipe runs on the CPU; a minute is far beyond any test's copy.
const FENCE_TIMEOUT: Duration = Duration::from_secs(60);

/// Device features the context enables when the device supports them; each
/// field says whether it is enabled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EnabledFeatures {
    /// Vulkan 1.2 `timelineSemaphore`.
    pub timeline_semaphore: bool,
    /// Vulkan 1.2 `bufferDeviceAddress`.
    pub buffer_device_address: bool,
    /// Vulkan 1.3 `synchronization2`.
    pub synchronization2: bool,
    /// Vulkan 1.3 `maintenance4`.
    pub maintenance4: bool,
    /// `VkPhysicalDeviceHostImageCopyFeaturesEXT::hostImageCopy`; only when
    /// `VK_EXT_host_image_copy` was wanted and is enabled.
    pub host_image_copy: bool,
}

/// Builds a [`TestContext`]. Every setting has a default that suits a test on
/// lavapipe; see each method.
#[derive(Clone)]
#[must_use]
pub struct TestContextBuilder {
    api_version: u32,
    wanted_extensions: Vec<CString>,
    validation: bool,
    allocation_callbacks: Option<vk::AllocationCallbacks<'static>>,
    device_type: Option<vk::PhysicalDeviceType>,
    device_index: Option<usize>,
}

impl fmt::Debug for TestContextBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestContextBuilder")
            .field("api_version", &version_string(self.api_version))
            .field("wanted_extensions", &self.wanted_extensions)
            .field("validation", &self.validation)
            .field("allocation_callbacks", &self.allocation_callbacks.is_some())
            .field("device_type", &self.device_type)
            .field("device_index", &self.device_index)
            .finish()
    }
}

impl Default for TestContextBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl TestContextBuilder {
    /// The defaults: Vulkan 1.3, validation on, no extra extensions, no
    /// allocation callbacks, device from [`DEVICE_ENV`] or the first one.
    pub fn new() -> Self {
        Self {
            api_version: vk::API_VERSION_1_3,
            wanted_extensions: Vec::new(),
            validation: true,
            allocation_callbacks: None,
            device_type: None,
            device_index: None,
        }
    }

    /// The Vulkan version to ask for (default 1.3). The context uses the
    /// lowest of this, the loader's instance version and the device's version;
    /// [`build`](Self::build) panics if that is below 1.2. The patch number is
    /// ignored.
    pub fn api_version(mut self, version: u32) -> Self {
        self.api_version = version;
        self
    }

    /// Enables device extension `name` if the device supports it (and, on a
    /// Vulkan 1.2 device, the extensions it depends on that 1.3 made core).
    /// Check with [`TestContext::has_extension`]. For `VK_EXT_host_image_copy`
    /// the `hostImageCopy` feature is enabled too when supported.
    pub fn want_device_extension(mut self, name: &CStr) -> Self {
        if !self.wanted_extensions.iter().any(|e| e.as_c_str() == name) {
            self.wanted_extensions.push(name.to_owned());
        }
        self
    }

    /// Whether to enable `VK_LAYER_KHRONOS_validation` with synchronization
    /// validation (default true). With validation on, a missing layer is a
    /// panic, never a silent skip.
    pub fn validation(mut self, enabled: bool) -> Self {
        self.validation = enabled;
        self
    }

    /// Host allocation callbacks passed to `vkCreateInstance`,
    /// `vkCreateDevice`, every object the context creates, and every destroy
    /// (default none: the driver's allocator).
    ///
    /// # Safety
    ///
    /// - The callbacks must follow the spec's rules for `VkAllocationCallbacks`
    ///   and be callable from any thread, concurrently.
    /// - `pUserData` (and whatever the callbacks reach through it) must stay
    ///   valid until the built [`TestContext`] is finished or dropped, even
    ///   though the lifetime `'a` is not tracked past this call; e.g. keep the
    ///   `Arc` of a `mem_core::host::TrackingHostAllocator` alive for longer
    ///   than the context.
    pub unsafe fn allocation_callbacks(
        mut self,
        callbacks: Option<vk::AllocationCallbacks<'_>>,
    ) -> Self {
        // Erase the lifetime: the caller promised the pointers outlive the context.
        self.allocation_callbacks = callbacks.map(|c| vk::AllocationCallbacks {
            p_user_data: c.p_user_data,
            pfn_allocation: c.pfn_allocation,
            pfn_reallocation: c.pfn_reallocation,
            pfn_free: c.pfn_free,
            pfn_internal_allocation: c.pfn_internal_allocation,
            pfn_internal_free: c.pfn_internal_free,
            _marker: std::marker::PhantomData,
        });
        self
    }

    /// Prefer the first physical device of this type (e.g.
    /// `vk::PhysicalDeviceType::DISCRETE_GPU`); if none has it, fall back to
    /// the default choice. Overrides [`DEVICE_ENV`]; overridden by
    /// [`device_index`](Self::device_index).
    pub fn prefer_device_type(mut self, device_type: vk::PhysicalDeviceType) -> Self {
        self.device_type = Some(device_type);
        self
    }

    /// Use the physical device at this index of `vkEnumeratePhysicalDevices`
    /// (panics in [`build`](Self::build) if out of range). Overrides
    /// [`DEVICE_ENV`] and [`prefer_device_type`](Self::prefer_device_type).
    pub fn device_index(mut self, index: usize) -> Self {
        self.device_index = Some(index);
        self
    }

    /// Creates the instance, messenger and device.
    ///
    /// # Panics
    ///
    /// With a message that says what to install or change, when: the Vulkan
    /// loader is missing; validation is on and the layer is missing; there is
    /// no physical device; the selected device or instance is below Vulkan
    /// 1.2; or a Vulkan call fails.
    pub fn build(self) -> TestContext {
        // SAFETY: every Vulkan call below follows the spec's valid usage; the
        // callbacks' validity is the caller's promise (allocation_callbacks).
        unsafe { self.build_inner() }
    }

    /// # Safety
    ///
    /// - `self.allocation_callbacks` is valid per
    ///   [`allocation_callbacks`](Self::allocation_callbacks)' contract.
    unsafe fn build_inner(self) -> TestContext {
        // SAFETY: loading libvulkan runs its initialisers; the system loader is trusted.
        let entry = match unsafe { ash::Entry::load() } {
            Ok(entry) => entry,
            Err(err) => panic!(
                "the Vulkan loader (libvulkan.so.1) could not be loaded ({err}): \
                 apt-get install libvulkan1 mesa-vulkan-drivers (CI installs them)"
            ),
        };
        let alloc = self.allocation_callbacks;
        let alloc_ref = alloc.as_ref();

        // SAFETY: plain query, no preconditions.
        let loader_version = match unsafe { entry.try_enumerate_instance_version() } {
            Ok(Some(v)) => v,
            Ok(None) => vk::API_VERSION_1_0,
            Err(e) => panic!("vkEnumerateInstanceVersion failed: {e}"),
        };
        let requested = strip_patch(self.api_version);
        assert!(
            requested >= vk::API_VERSION_1_2,
            "mem-testkit needs Vulkan 1.2 or later; api_version({}) asked for less",
            version_string(requested)
        );
        let instance_version = requested.min(strip_patch(loader_version));
        assert!(
            instance_version >= vk::API_VERSION_1_2,
            "the Vulkan loader only supports Vulkan {}; mem-testkit needs 1.2: \
             install a newer libvulkan1",
            version_string(loader_version)
        );

        // Layers and instance extensions.
        // SAFETY: plain query, no preconditions.
        let layers = unsafe { entry.enumerate_instance_layer_properties() }
            .unwrap_or_else(|e| panic!("vkEnumerateInstanceLayerProperties failed: {e}"));
        let has_layer = layers
            .iter()
            .any(|l| l.layer_name_as_c_str().ok() == Some(VALIDATION_LAYER));
        if self.validation && !has_layer {
            panic!(
                "VK_LAYER_KHRONOS_validation is not installed: apt-get install \
                 vulkan-validationlayers (CI installs it)"
            );
        }
        // SAFETY: plain query, no preconditions.
        let mut instance_exts = unsafe { entry.enumerate_instance_extension_properties(None) }
            .unwrap_or_else(|e| panic!("vkEnumerateInstanceExtensionProperties failed: {e}"));
        if self.validation {
            // SAFETY: plain query; the layer exists (checked above).
            let layer_exts =
                unsafe { entry.enumerate_instance_extension_properties(Some(VALIDATION_LAYER)) }
                    .unwrap_or_else(|e| {
                        panic!("vkEnumerateInstanceExtensionProperties(validation) failed: {e}")
                    });
            instance_exts.extend(layer_exts);
        }
        let instance_has = |name: &CStr| {
            instance_exts
                .iter()
                .any(|e| e.extension_name_as_c_str().ok() == Some(name))
        };
        let debug_utils_available = instance_has(ash::ext::debug_utils::NAME);
        if self.validation {
            assert!(
                debug_utils_available,
                "VK_EXT_debug_utils is not available although the validation layer is; \
                 the layer install looks broken (reinstall vulkan-validationlayers)"
            );
            assert!(
                instance_has(ash::ext::validation_features::NAME),
                "VK_EXT_validation_features is not available from the validation layer \
                 (needed for synchronization validation): install a newer vulkan-validationlayers"
            );
        }

        let mut enabled_instance_exts: Vec<*const c_char> = Vec::new();
        if debug_utils_available {
            enabled_instance_exts.push(ash::ext::debug_utils::NAME.as_ptr());
        }
        if self.validation {
            enabled_instance_exts.push(ash::ext::validation_features::NAME.as_ptr());
        }
        let enabled_layers: Vec<*const c_char> = if self.validation {
            vec![VALIDATION_LAYER.as_ptr()]
        } else {
            Vec::new()
        };

        let log = Arc::new(MessageLog::default());
        let mut severity = vk::DebugUtilsMessageSeverityFlagsEXT::WARNING
            | vk::DebugUtilsMessageSeverityFlagsEXT::ERROR;
        if std::env::var_os(VERBOSE_ENV).is_some() {
            severity |= vk::DebugUtilsMessageSeverityFlagsEXT::INFO
                | vk::DebugUtilsMessageSeverityFlagsEXT::VERBOSE;
        }
        let messenger_info = vk::DebugUtilsMessengerCreateInfoEXT::default()
            .message_severity(severity)
            .message_type(
                vk::DebugUtilsMessageTypeFlagsEXT::GENERAL
                    | vk::DebugUtilsMessageTypeFlagsEXT::VALIDATION
                    | vk::DebugUtilsMessageTypeFlagsEXT::PERFORMANCE,
            )
            .pfn_user_callback(Some(messages::debug_callback))
            .user_data(Arc::as_ptr(&log) as *mut std::ffi::c_void);
        // A copy for vkCreateInstance's pNext, so messages during instance
        // creation and destruction are caught too (VK_EXT_debug_utils spec).
        let mut chained_messenger_info = messenger_info;

        let sync_validation = [vk::ValidationFeatureEnableEXT::SYNCHRONIZATION_VALIDATION];
        let mut validation_features =
            vk::ValidationFeaturesEXT::default().enabled_validation_features(&sync_validation);

        let app_info = vk::ApplicationInfo::default()
            .application_name(c"gpumem-tests")
            .application_version(1)
            .engine_name(c"gpumem")
            .engine_version(1)
            .api_version(instance_version);
        let mut instance_info = vk::InstanceCreateInfo::default()
            .application_info(&app_info)
            .enabled_layer_names(&enabled_layers)
            .enabled_extension_names(&enabled_instance_exts);
        if debug_utils_available {
            instance_info = instance_info.push_next(&mut chained_messenger_info);
        }
        if self.validation {
            instance_info = instance_info.push_next(&mut validation_features);
        }
        // SAFETY: create info is valid (layers/extensions checked above); the
        // log outlives the instance (the context holds the Arc).
        let instance = unsafe { entry.create_instance(&instance_info, alloc_ref) }
            .unwrap_or_else(|e| panic!("vkCreateInstance failed: {e}"));

        // From here on a panic would leak the instance; that only happens on a
        // broken setup, where the panic message matters more than the leak.
        let (debug_utils_instance, messenger) = if debug_utils_available {
            let du = ash::ext::debug_utils::Instance::new(&entry, &instance);
            // SAFETY: valid create info; the log outlives the messenger.
            let messenger = unsafe { du.create_debug_utils_messenger(&messenger_info, alloc_ref) }
                .unwrap_or_else(|e| panic!("vkCreateDebugUtilsMessengerEXT failed: {e}"));
            (Some(du), messenger)
        } else {
            (None, vk::DebugUtilsMessengerEXT::null())
        };

        // Physical device.
        // SAFETY: valid instance.
        let physical_devices = unsafe { instance.enumerate_physical_devices() }
            .unwrap_or_else(|e| panic!("vkEnumeratePhysicalDevices failed: {e}"));
        assert!(
            !physical_devices.is_empty(),
            "no Vulkan physical device: apt-get install mesa-vulkan-drivers (lavapipe; CI \
             installs it)"
        );
        let all_props: Vec<vk::PhysicalDeviceProperties> = physical_devices
            .iter()
            // SAFETY: handles come from this instance.
            .map(|&pd| unsafe { instance.get_physical_device_properties(pd) })
            .collect();
        let device_list = || {
            all_props
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    format!(
                        "{i}: {} ({:?})",
                        p.device_name_as_c_str().unwrap_or(c"?").to_string_lossy(),
                        p.device_type
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let env_index = std::env::var(DEVICE_ENV).ok().map(|v| {
            v.trim().parse::<usize>().unwrap_or_else(|_| {
                panic!(
                    "{DEVICE_ENV}={v:?} is not a device index; devices: {}",
                    device_list()
                )
            })
        });
        let index = if let Some(i) = self.device_index {
            i
        } else if let Some(i) = self
            .device_type
            .and_then(|t| all_props.iter().position(|p| p.device_type == t))
        {
            i
        } else {
            env_index.unwrap_or(0)
        };
        assert!(
            index < physical_devices.len(),
            "device index {index} is out of range; devices: {}",
            device_list()
        );
        let physical_device = physical_devices[index];
        let properties = all_props[index];
        let api_version = instance_version.min(strip_patch(properties.api_version));
        assert!(
            api_version >= vk::API_VERSION_1_2,
            "device {index} ({}) only supports Vulkan {}; mem-testkit needs 1.2",
            properties
                .device_name_as_c_str()
                .unwrap_or(c"?")
                .to_string_lossy(),
            version_string(properties.api_version)
        );
        // SAFETY: handle from this instance.
        let memory_properties =
            unsafe { instance.get_physical_device_memory_properties(physical_device) };

        // Device extensions: wanted ∩ supported, plus 1.3-core dependencies on 1.2.
        // SAFETY: handle from this instance.
        let device_exts =
            unsafe { instance.enumerate_device_extension_properties(physical_device) }
                .unwrap_or_else(|e| panic!("vkEnumerateDeviceExtensionProperties failed: {e}"));
        let device_has = |name: &CStr| {
            device_exts
                .iter()
                .any(|e| e.extension_name_as_c_str().ok() == Some(name))
        };
        let mut enabled_extensions: Vec<CString> = Vec::new();
        for wanted in &self.wanted_extensions {
            if !device_has(wanted) {
                continue;
            }
            let deps = extension_dependencies(wanted, api_version);
            if !deps.iter().all(|d| device_has(d)) {
                continue;
            }
            for dep in deps.iter().copied().chain([wanted.as_c_str()]) {
                if !enabled_extensions.iter().any(|e| e.as_c_str() == dep) {
                    enabled_extensions.push(dep.to_owned());
                }
            }
        }
        let ext_enabled = |name: &CStr| enabled_extensions.iter().any(|e| e.as_c_str() == name);
        let want_host_image_copy = ext_enabled(ash::ext::host_image_copy::NAME);

        // Features: query, then enable the ones we want that are supported.
        let mut v12 = vk::PhysicalDeviceVulkan12Features::default();
        let mut v13 = vk::PhysicalDeviceVulkan13Features::default();
        let mut hic = vk::PhysicalDeviceHostImageCopyFeaturesEXT::default();
        {
            let mut features2 = vk::PhysicalDeviceFeatures2::default().push_next(&mut v12);
            if api_version >= vk::API_VERSION_1_3 {
                features2 = features2.push_next(&mut v13);
            }
            if want_host_image_copy {
                features2 = features2.push_next(&mut hic);
            }
            // SAFETY: the chain only holds structs valid for this device's
            // version and enabled extensions.
            unsafe { instance.get_physical_device_features2(physical_device, &mut features2) };
        }
        let features = EnabledFeatures {
            timeline_semaphore: v12.timeline_semaphore == vk::TRUE,
            buffer_device_address: v12.buffer_device_address == vk::TRUE,
            synchronization2: api_version >= vk::API_VERSION_1_3
                && v13.synchronization2 == vk::TRUE,
            maintenance4: api_version >= vk::API_VERSION_1_3 && v13.maintenance4 == vk::TRUE,
            host_image_copy: want_host_image_copy && hic.host_image_copy == vk::TRUE,
        };
        let mut enable12 = vk::PhysicalDeviceVulkan12Features::default()
            .timeline_semaphore(features.timeline_semaphore)
            .buffer_device_address(features.buffer_device_address);
        let mut enable13 = vk::PhysicalDeviceVulkan13Features::default()
            .synchronization2(features.synchronization2)
            .maintenance4(features.maintenance4);
        let mut enable_hic =
            vk::PhysicalDeviceHostImageCopyFeaturesEXT::default().host_image_copy(true);

        // Queues: every family that can transfer (graphics and compute imply it).
        // SAFETY: handle from this instance.
        let family_props =
            unsafe { instance.get_physical_device_queue_family_properties(physical_device) };
        let queue_families: Vec<(u32, vk::QueueFamilyProperties)> = family_props
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.queue_count > 0
                    && p.queue_flags.intersects(
                        vk::QueueFlags::TRANSFER
                            | vk::QueueFlags::GRAPHICS
                            | vk::QueueFlags::COMPUTE,
                    )
            })
            .map(|(i, p)| (i as u32, *p))
            .collect();
        assert!(
            !queue_families.is_empty(),
            "device {index} has no queue family that supports transfers"
        );
        let priorities = [1.0f32];
        let queue_infos: Vec<vk::DeviceQueueCreateInfo<'_>> = queue_families
            .iter()
            .map(|(i, _)| {
                vk::DeviceQueueCreateInfo::default()
                    .queue_family_index(*i)
                    .queue_priorities(&priorities)
            })
            .collect();
        let ext_ptrs: Vec<*const c_char> = enabled_extensions.iter().map(|e| e.as_ptr()).collect();
        let mut device_info = vk::DeviceCreateInfo::default()
            .queue_create_infos(&queue_infos)
            .enabled_extension_names(&ext_ptrs)
            .push_next(&mut enable12);
        if api_version >= vk::API_VERSION_1_3 {
            device_info = device_info.push_next(&mut enable13);
        }
        if features.host_image_copy {
            device_info = device_info.push_next(&mut enable_hic);
        }
        // SAFETY: families, extensions and features were checked against the device.
        let device = unsafe { instance.create_device(physical_device, &device_info, alloc_ref) }
            .unwrap_or_else(|e| panic!("vkCreateDevice failed: {e}"));
        let queues = queue_families
            .iter()
            .map(|(i, _)| {
                // SAFETY: one queue (index 0) of family i was requested at device creation.
                let queue = unsafe { device.get_device_queue(*i, 0) };
                (*i, queue, Mutex::new(queue))
            })
            .collect();
        let debug_utils_device =
            debug_utils_available.then(|| ash::ext::debug_utils::Device::new(&instance, &device));

        eprintln!(
            "mem-testkit: device {index} of [{}], Vulkan {}, validation {}, extensions {:?}",
            device_list(),
            version_string(api_version),
            if self.validation { "on (+sync)" } else { "off" },
            enabled_extensions
        );

        TestContext {
            entry,
            instance,
            physical_device,
            device,
            debug_utils_instance,
            messenger,
            debug_utils_device,
            properties,
            memory_properties,
            queue_families,
            queues,
            enabled_extensions,
            features,
            api_version,
            validation: self.validation,
            allocation_callbacks: alloc,
            log,
            destroyed: false,
        }
    }
}

/// A headless Vulkan instance + device for tests, with validation messages
/// counted. See the crate docs for the lifecycle and the message policy.
pub struct TestContext {
    entry: ash::Entry,
    instance: ash::Instance,
    physical_device: vk::PhysicalDevice,
    device: ash::Device,
    debug_utils_instance: Option<ash::ext::debug_utils::Instance>,
    messenger: vk::DebugUtilsMessengerEXT,
    debug_utils_device: Option<ash::ext::debug_utils::Device>,
    properties: vk::PhysicalDeviceProperties,
    memory_properties: vk::PhysicalDeviceMemoryProperties,
    queue_families: Vec<(u32, vk::QueueFamilyProperties)>,
    /// (family, queue, submission lock holding the same queue).
    queues: Vec<(u32, vk::Queue, Mutex<vk::Queue>)>,
    enabled_extensions: Vec<CString>,
    features: EnabledFeatures,
    api_version: u32,
    validation: bool,
    allocation_callbacks: Option<vk::AllocationCallbacks<'static>>,
    log: Arc<MessageLog>,
    destroyed: bool,
}

impl fmt::Debug for TestContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestContext")
            .field(
                "device_name",
                &self.properties.device_name_as_c_str().unwrap_or(c"?"),
            )
            .field("api_version", &version_string(self.api_version))
            .field("queue_families", &self.queue_families.len())
            .field("enabled_extensions", &self.enabled_extensions)
            .field("features", &self.features)
            .field("validation", &self.validation)
            .field("messages", &self.log.len())
            .finish_non_exhaustive()
    }
}

impl TestContext {
    /// A context with the [`TestContextBuilder`] defaults.
    ///
    /// # Panics
    ///
    /// See [`TestContextBuilder::build`].
    pub fn new() -> Self {
        TestContextBuilder::new().build()
    }

    /// Same as [`TestContextBuilder::new`].
    pub fn builder() -> TestContextBuilder {
        TestContextBuilder::new()
    }

    /// The loaded Vulkan entry points.
    pub fn entry(&self) -> &ash::Entry {
        &self.entry
    }

    /// The instance.
    pub fn instance(&self) -> &ash::Instance {
        &self.instance
    }

    /// The selected physical device.
    pub fn physical_device(&self) -> vk::PhysicalDevice {
        self.physical_device
    }

    /// The device.
    pub fn device(&self) -> &ash::Device {
        &self.device
    }

    /// The allocation callbacks given to the builder, to pass to objects the
    /// test creates itself (they must be destroyed with the same callbacks).
    pub fn allocation_callbacks(&self) -> Option<&vk::AllocationCallbacks<'static>> {
        self.allocation_callbacks.as_ref()
    }

    /// The physical device's properties.
    pub fn properties(&self) -> vk::PhysicalDeviceProperties {
        self.properties
    }

    /// The physical device's memory heaps and types.
    pub fn memory_properties(&self) -> vk::PhysicalDeviceMemoryProperties {
        self.memory_properties
    }

    /// The queue families the device was created with (one queue each,
    /// index 0): every family that supports transfers.
    pub fn queue_families(&self) -> Vec<(u32, vk::QueueFamilyProperties)> {
        self.queue_families.clone()
    }

    /// The queue of `family`, if the device was created with it. Submitting
    /// is externally synchronized: hold [`lock_queue`](Self::lock_queue)
    /// when other threads (or [`one_shot`](Self::one_shot)) may submit too.
    pub fn queue(&self, family: u32) -> Option<vk::Queue> {
        self.queues
            .iter()
            .find(|(i, _, _)| *i == family)
            .map(|(_, q, _)| *q)
    }

    /// Locks the queue of `family` for submission (the same lock
    /// [`one_shot`](Self::one_shot) takes).
    pub fn lock_queue(&self, family: u32) -> Option<MutexGuard<'_, vk::Queue>> {
        self.queues
            .iter()
            .find(|(i, _, _)| *i == family)
            .map(|(_, _, q)| q.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// A family with GRAPHICS (else COMPUTE, else the first) and its queue.
    pub fn graphics_queue(&self) -> (u32, vk::Queue) {
        let family = self
            .find_family(|f| f.contains(vk::QueueFlags::GRAPHICS))
            .or_else(|| self.find_family(|f| f.contains(vk::QueueFlags::COMPUTE)))
            .unwrap_or(self.queue_families[0].0);
        (family, self.queue(family).expect("family was created"))
    }

    /// A dedicated transfer family (TRANSFER without GRAPHICS or COMPUTE) if
    /// the device has one, else [`graphics_queue`](Self::graphics_queue).
    pub fn transfer_queue(&self) -> (u32, vk::Queue) {
        match self.find_family(|f| {
            f.contains(vk::QueueFlags::TRANSFER)
                && !f.intersects(vk::QueueFlags::GRAPHICS | vk::QueueFlags::COMPUTE)
        }) {
            Some(family) => (family, self.queue(family).expect("family was created")),
            None => self.graphics_queue(),
        }
    }

    fn find_family(&self, pred: impl Fn(vk::QueueFlags) -> bool) -> Option<u32> {
        self.queue_families
            .iter()
            .find(|(_, p)| pred(p.queue_flags))
            .map(|(i, _)| *i)
    }

    /// `VK_EXT_debug_utils` device functions (object names, labels), when the
    /// instance has the extension (always with validation on).
    pub fn debug_utils(&self) -> Option<&ash::ext::debug_utils::Device> {
        self.debug_utils_device.as_ref()
    }

    /// Names `handle` for validation messages and tools; does nothing without
    /// `VK_EXT_debug_utils`.
    ///
    /// # Panics
    ///
    /// If `name` contains a NUL byte or the call fails.
    pub fn set_name<H: vk::Handle>(&self, handle: H, name: &str) {
        let Some(du) = &self.debug_utils_device else {
            return;
        };
        let name = CString::new(name).expect("object name without NUL bytes");
        let info = vk::DebugUtilsObjectNameInfoEXT::default()
            .object_handle(handle)
            .object_name(&name);
        // SAFETY: the handle type and value come from the caller's object of this device.
        unsafe { du.set_debug_utils_object_name(&info) }
            .unwrap_or_else(|e| panic!("vkSetDebugUtilsObjectNameEXT failed: {e}"));
    }

    /// Whether device extension `name` is enabled.
    pub fn has_extension(&self, name: &CStr) -> bool {
        self.enabled_extensions.iter().any(|e| e.as_c_str() == name)
    }

    /// The enabled device extensions.
    pub fn enabled_extensions(&self) -> Vec<&CStr> {
        self.enabled_extensions
            .iter()
            .map(|e| e.as_c_str())
            .collect()
    }

    /// The enabled optional features.
    pub fn features(&self) -> EnabledFeatures {
        self.features
    }

    /// The Vulkan version in use: the lowest of the requested, the loader's
    /// and the device's, without patch number (`vk::make_api_version` form).
    pub fn api_version(&self) -> u32 {
        self.api_version
    }

    /// Whether `VK_LAYER_KHRONOS_validation` (with synchronization
    /// validation) is enabled.
    pub fn is_validation_enabled(&self) -> bool {
        self.validation
    }

    /// Records commands with `record` into a fresh command buffer, submits it
    /// on `family`'s queue (under [`lock_queue`](Self::lock_queue)), waits for
    /// it with a fence, frees it, and returns what `record` returned.
    ///
    /// # Panics
    ///
    /// If `family` has no queue, a Vulkan call fails, or the GPU does not
    /// finish within a minute.
    pub fn one_shot<R>(&self, family: u32, record: impl FnOnce(vk::CommandBuffer) -> R) -> R {
        assert!(
            self.queues.iter().any(|(i, _, _)| *i == family),
            "one_shot: queue family {family} was not created"
        );
        let alloc = self.allocation_callbacks.as_ref();
        let d = &self.device;

        /// Destroys the pool (and its command buffer) and the fence even if
        /// `record` panics, so a failing test does not add a leak report.
        struct Cleanup<'a> {
            device: &'a ash::Device,
            alloc: Option<&'a vk::AllocationCallbacks<'static>>,
            pool: vk::CommandPool,
            fence: vk::Fence,
        }
        impl Drop for Cleanup<'_> {
            fn drop(&mut self) {
                // SAFETY: both objects belong to this device and are not in
                // use: the fence was waited on or the buffer never submitted.
                unsafe {
                    self.device.destroy_fence(self.fence, self.alloc);
                    self.device.destroy_command_pool(self.pool, self.alloc);
                }
            }
        }

        let pool_info = vk::CommandPoolCreateInfo::default()
            .flags(vk::CommandPoolCreateFlags::TRANSIENT)
            .queue_family_index(family);
        // SAFETY: valid create info for a family of this device.
        let pool = unsafe { d.create_command_pool(&pool_info, alloc) }
            .unwrap_or_else(|e| panic!("vkCreateCommandPool failed: {e}"));
        let mut cleanup = Cleanup {
            device: d,
            alloc,
            pool,
            fence: vk::Fence::null(),
        };
        // SAFETY: valid create info.
        cleanup.fence = unsafe { d.create_fence(&vk::FenceCreateInfo::default(), alloc) }
            .unwrap_or_else(|e| panic!("vkCreateFence failed: {e}"));
        let alloc_info = vk::CommandBufferAllocateInfo::default()
            .command_pool(pool)
            .level(vk::CommandBufferLevel::PRIMARY)
            .command_buffer_count(1);
        // SAFETY: the pool is ours and not used by another thread.
        let cmd = unsafe { d.allocate_command_buffers(&alloc_info) }
            .unwrap_or_else(|e| panic!("vkAllocateCommandBuffers failed: {e}"))[0];
        let begin = vk::CommandBufferBeginInfo::default()
            .flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT);
        // SAFETY: fresh command buffer in the initial state.
        unsafe { d.begin_command_buffer(cmd, &begin) }
            .unwrap_or_else(|e| panic!("vkBeginCommandBuffer failed: {e}"));
        let result = record(cmd);
        // SAFETY: the buffer is recording.
        unsafe { d.end_command_buffer(cmd) }
            .unwrap_or_else(|e| panic!("vkEndCommandBuffer failed: {e}"));
        let cmds = [cmd];
        let submit = vk::SubmitInfo::default().command_buffers(&cmds);
        {
            let queue = self.lock_queue(family).expect("checked above");
            // SAFETY: the queue is externally synchronized by the lock; the
            // command buffer is executable; the fence is unsignaled.
            unsafe { d.queue_submit(*queue, &[submit], cleanup.fence) }
                .unwrap_or_else(|e| panic!("vkQueueSubmit failed: {e}"));
        }
        let timeout = FENCE_TIMEOUT.as_nanos() as u64;
        // SAFETY: the fence belongs to this device.
        match unsafe { d.wait_for_fences(&[cleanup.fence], true, timeout) } {
            Ok(()) => {}
            Err(vk::Result::TIMEOUT) => {
                // Destroying the pool while the GPU still runs would be a
                // second error; leak it instead and report the hang.
                std::mem::forget(cleanup);
                panic!("one_shot: the submission did not finish in {FENCE_TIMEOUT:?}");
            }
            Err(e) => panic!("vkWaitForFences failed: {e}"),
        }
        drop(cleanup);
        result
    }

    /// A snapshot of the counted validation messages since the last
    /// [`clear_messages`](Self::clear_messages).
    pub fn messages(&self) -> Vec<String> {
        self.log.snapshot()
    }

    /// How many counted validation messages were recorded since the last
    /// [`clear_messages`](Self::clear_messages).
    pub fn message_count(&self) -> usize {
        self.log.len()
    }

    /// Forgets the counted messages so far (after a test provoked them on
    /// purpose) and returns them.
    pub fn clear_messages(&self) -> Vec<String> {
        self.log.take()
    }

    /// How many messages the messenger received in total, counted or not
    /// (printed-only loader warnings included).
    pub fn messages_seen(&self) -> usize {
        self.log.seen()
    }

    /// Waits for the device, destroys everything (the layer reports objects
    /// the test leaked at `vkDestroyDevice`), and checks the messages.
    ///
    /// # Panics
    ///
    /// If any counted message was recorded (and not cleared), including those
    /// reported during destruction: "N validation messages: ...".
    pub fn finish(mut self) {
        self.teardown();
        let messages = self.log.take();
        drop(self);
        if !messages.is_empty() {
            panic!("{}", messages::render(&messages));
        }
    }

    /// Destroys device, messenger and instance, once.
    fn teardown(&mut self) {
        if self.destroyed {
            return;
        }
        self.destroyed = true;
        let alloc = self.allocation_callbacks.as_ref();
        // SAFETY: the objects were created by this context with these
        // callbacks, are destroyed once (the `destroyed` flag), children
        // before parents, after the device is idle. Objects the test leaked
        // are the layer's to report.
        unsafe {
            if let Err(e) = self.device.device_wait_idle() {
                eprintln!("mem-testkit: vkDeviceWaitIdle failed during teardown: {e}");
            }
            self.device.destroy_device(alloc);
            if let Some(du) = &self.debug_utils_instance {
                du.destroy_debug_utils_messenger(self.messenger, alloc);
            }
            self.instance.destroy_instance(alloc);
        }
    }
}

impl Default for TestContext {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestContext {
    /// Destroys everything if [`TestContext::finish`] was not called, and then
    /// panics if counted messages were recorded, unless already panicking.
    fn drop(&mut self) {
        self.teardown();
        let messages = self.log.take();
        if !messages.is_empty() {
            if std::thread::panicking() {
                eprintln!(
                    "mem-testkit: (while panicking) {}",
                    messages::render(&messages)
                );
            } else {
                panic!(
                    "{} (TestContext dropped without finish())",
                    messages::render(&messages)
                );
            }
        }
    }
}

/// Dependencies of a wanted extension that must be enabled with it on a
/// device below Vulkan 1.3 (where they are not core). Only the extensions
/// gpumem uses are listed; the others' dependencies are all core in 1.2.
fn extension_dependencies(name: &CStr, api_version: u32) -> Vec<&'static CStr> {
    if api_version >= vk::API_VERSION_1_3 {
        return Vec::new();
    }
    if name == ash::ext::host_image_copy::NAME {
        vec![
            ash::khr::copy_commands2::NAME,
            ash::khr::format_feature_flags2::NAME,
        ]
    } else {
        Vec::new()
    }
}

fn strip_patch(version: u32) -> u32 {
    vk::make_api_version(
        0,
        vk::api_version_major(version),
        vk::api_version_minor(version),
        0,
    )
}

fn version_string(version: u32) -> String {
    format!(
        "{}.{}.{}",
        vk::api_version_major(version),
        vk::api_version_minor(version),
        vk::api_version_patch(version)
    )
}
