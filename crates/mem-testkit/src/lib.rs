//! mem-testkit: a headless Vulkan context for gpumem's tests, examples and
//! benches, with every validation message counted so that a test fails on
//! any of them.
//!
//! # Quick start
//!
//! ```no_run
//! use mem_testkit::TestContext;
//!
//! let ctx = TestContext::new(); // validation + synchronization validation on
//! let (family, _queue) = ctx.transfer_queue();
//! ctx.one_shot(family, |_cmd| {
//!     // record commands into `_cmd`
//! });
//! ctx.finish(); // destroys everything; panics if the layer said anything
//! ```
//!
//! # What it builds
//!
//! - An instance (Vulkan 1.3 by default, at least 1.2) with
//!   `VK_LAYER_KHRONOS_validation` and `VkValidationFeaturesEXT` enabling
//!   synchronization validation. A missing layer is a panic that says
//!   `apt-get install vulkan-validationlayers`, never a silent skip; a missing
//!   loader names `libvulkan1` and `mesa-vulkan-drivers`.
//! - A `VK_EXT_debug_utils` messenger, created after the instance and also
//!   chained into `VkInstanceCreateInfo::pNext` so messages from
//!   `vkCreateInstance`/`vkDestroyInstance` are caught.
//! - A device on physical device [`DEVICE_ENV`] (`GPUMEM_TEST_DEVICE`, an
//!   index) or the first one (lavapipe's CPU device here), with one queue
//!   (index 0) of every family that can transfer, and, when supported:
//!   `timelineSemaphore`, `bufferDeviceAddress` (1.2), `synchronization2`,
//!   `maintenance4` (1.3), plus any extension asked for with
//!   [`TestContextBuilder::want_device_extension`] that the device has.
//! - Optional host allocation callbacks used for every create and destroy
//!   ([`TestContextBuilder::allocation_callbacks`]).
//!
//! # Lifecycle
//!
//! End a test with [`TestContext::finish`]: it waits for the device, destroys
//! the device (the layer reports objects the test leaked as errors there),
//! the messenger and the instance, then panics with "N validation messages:
//! ..." if any counted message was recorded at any point and not cleared with
//! [`TestContext::clear_messages`]. Dropping the context without `finish` does
//! the same (so a test cannot forget), except while already panicking, where
//! it only prints the messages.
//!
//! # Which messages count
//!
//! Counted (fail the test): WARNING or ERROR severity whose type includes
//! VALIDATION or PERFORMANCE, and GENERAL messages at ERROR severity.
//! Printed to stderr but not counted: GENERAL messages at WARNING severity.
//!
//! Why: GENERAL messages come from the loader, not from the validation of
//! our calls. On Debian 12 with mesa-vulkan-drivers installed, the loader
//! reads the intel, intel_hasvk, radeon and lvp ICD manifests; drivers for
//! absent hardware report `VK_ERROR_INCOMPATIBLE_DRIVER`, and the loader
//! LOADER_NOISE_PLACEHOLDER
//! Counting them would fail every test on a
//! machine that merely has extra drivers installed, while hiding them by
//! restricting the ICD list (`VK_DRIVER_FILES`) only works under `cargo`
//! (`[env]` in `.cargo/config.toml` does not reach binaries run directly) and
//! would break the lent NVIDIA machine's driver. Everything the layer says
//! about our calls is VALIDATION or PERFORMANCE typed, so nothing real is
//! lost; a loader *error* still counts.
//!
//! Set `GPUMEM_TEST_VK_VERBOSE=1` ([`VERBOSE_ENV`]) to also print INFO and
//! VERBOSE messages (never counted).

mod context;
mod messages;

pub use ash;
pub use context::{EnabledFeatures, TestContext, TestContextBuilder, DEVICE_ENV, VERBOSE_ENV};
