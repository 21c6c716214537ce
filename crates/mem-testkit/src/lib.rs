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
//! Why: GENERAL-typed messages come from the loader (and drivers) about the
//! machine's setup, not from validation of our calls; everything the layer
//! says about our calls is VALIDATION or PERFORMANCE typed, so the filter
//! hides nothing real, and a loader *error* still counts.
//!
//! What was measured (Debian 12: loader 1.3.239, Mesa 22.3.6, validation
//! layer 1.3.239; `/usr/share/vulkan/icd.d` holds the intel, intel_hasvk,
//! radeon and lvp ICDs; no GPU): with a messenger for every severity, one
//! instance gets about 100 INFO/VERBOSE GENERAL loader messages (manifest
//! search, ICD and layer loading) and **no** WARNING or ERROR; the ICDs for
//! absent hardware drop out silently. The only loader warning on this machine
//! ("Unable to resolve symbol \"\" in implicit layer library
//! libVkLayer_MESA_device_select.so") is printed during
//! `vkEnumerateInstanceLayerProperties`, before any messenger exists, and
//! only with `VK_LOADER_DEBUG=warn`. So no ICD restriction is needed, and
//! the workspace sets no `VK_DRIVER_FILES` (which, through `[env]` in
//! `.cargo/config.toml`, would only reach `cargo test`/`cargo run`, not
//! binaries run directly, and would hide the NVIDIA driver on a GPU
//! machine). The GENERAL-warning exemption is kept for machines whose loader
//! or drivers do warn (other distributions, driver manifests left behind),
//! where it would otherwise fail every test for reasons outside gpumem.
//!
//! Set `GPUMEM_TEST_VK_VERBOSE=1` ([`VERBOSE_ENV`]) to also print INFO and
//! VERBOSE messages (never counted).

mod context;
mod messages;

pub use ash;
pub use context::{EnabledFeatures, TestContext, TestContextBuilder, DEVICE_ENV, VERBOSE_ENV};
