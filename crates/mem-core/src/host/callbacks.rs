//! [`HostCallbacks`]: the engine's `VkAllocationCallbacks` held by an object
//! that several threads use (an allocator, a resource manager, a margin
//! checker), to pass to every Vulkan call it makes.

use std::fmt;

use ash::vk;

/// The host allocation callbacks an engine gave (or none), shareable between
/// threads: [`Self::get`] is the `pAllocator` argument of every Vulkan call
/// made with them.
///
/// `vk::AllocationCallbacks` holds function pointers and a `pUserData`
/// pointer, so it is neither `Send` nor `Sync`; this wrapper is both, on the
/// promise made to [`Self::new`]. The spec lets Vulkan call the callbacks
/// from any thread that calls Vulkan with them, so callbacks given to an
/// object used from several threads must already be thread-safe.
///
/// ```
/// use mem_core::host::HostCallbacks;
///
/// # fn f(engine_callbacks: ash::vk::AllocationCallbacks<'static>, device: &ash::Device) {
/// // SAFETY: the engine's callbacks are thread-safe and outlive every object
/// // created with them.
/// let callbacks = unsafe { HostCallbacks::new(Some(engine_callbacks)) };
/// let info = ash::vk::FenceCreateInfo::default();
/// // SAFETY: a valid device; the callbacks as promised above.
/// let fence = unsafe { device.create_fence(&info, callbacks.get()) };
/// # }
/// assert!(HostCallbacks::default().get().is_none());
/// ```
#[derive(Clone, Copy, Default)]
pub struct HostCallbacks(Option<vk::AllocationCallbacks<'static>>);

// SAFETY: the function pointers and `pUserData` are only passed to Vulkan,
// which may call them from any thread; `HostCallbacks::new`'s contract makes
// the callbacks thread-safe and keeps them (and their user data) alive while
// any copy is used. Nothing here reads or writes through the pointers.
unsafe impl Send for HostCallbacks {}
// SAFETY: see the `Send` impl; the value is never mutated after creation.
unsafe impl Sync for HostCallbacks {}

impl HostCallbacks {
    /// No callbacks: Vulkan uses its own host allocator.
    pub const NONE: Self = Self(None);

    /// Wraps the engine's callbacks (`None`: Vulkan's own allocator).
    ///
    /// # Safety
    /// - the callbacks, and whatever their `pUserData` points at, stay valid
    ///   for as long as this value or any copy of it is used, and until
    ///   every Vulkan object created with them is destroyed;
    /// - they are thread-safe: Vulkan may call them from any thread that
    ///   uses a copy, several at once (the spec's rules for
    ///   `VkAllocationCallbacks` otherwise).
    pub unsafe fn new(callbacks: Option<vk::AllocationCallbacks<'static>>) -> Self {
        Self(callbacks)
    }

    /// The callbacks to pass to a Vulkan call (`pAllocator`), or `None`.
    #[inline]
    pub fn get(&self) -> Option<&vk::AllocationCallbacks<'static>> {
        self.0.as_ref()
    }
}

impl fmt::Debug for HostCallbacks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("HostCallbacks(None)"),
            Some(c) => f
                .debug_struct("HostCallbacks")
                .field("user_data", &c.p_user_data)
                .finish_non_exhaustive(),
        }
    }
}
