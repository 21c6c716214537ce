//! The `VK_EXT_debug_utils` messenger callback and the shared message log.
//!
//! Which messages count (fail a test) and which are only printed is decided by
//! [`counts`]; the crate docs explain the choice.

use std::ffi::{c_void, CStr};
use std::fmt::Write as _;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use ash::vk;

/// Messages recorded by the messenger, shared between the context and the
/// callback (which may run on any thread the driver or layer uses).
#[derive(Debug, Default)]
pub(crate) struct MessageLog {
    /// Counted messages (see [`counts`]), formatted, since the last clear.
    counted: Mutex<Vec<String>>,
    /// Every message the callback saw, counted or not, since creation.
    seen: AtomicUsize,
}

impl MessageLog {
    pub(crate) fn record(&self, message: String) {
        self.counted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(message);
    }

    pub(crate) fn snapshot(&self) -> Vec<String> {
        self.counted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn len(&self) -> usize {
        self.counted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub(crate) fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.counted.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn seen(&self) -> usize {
        self.seen.load(Ordering::Relaxed)
    }
}

/// Whether a message fails the test.
///
/// Counted: WARNING or ERROR severity whose type includes VALIDATION or
/// PERFORMANCE, and GENERAL messages at ERROR severity. Not counted (printed
/// only): GENERAL warnings, which on Linux come from the loader about the
/// machine's setup (ICD/layer manifests, implicit layers), not from the code
/// under test; INFO and VERBOSE (only requested with `GPUMEM_TEST_VK_VERBOSE`).
pub(crate) fn counts(
    severity: vk::DebugUtilsMessageSeverityFlagsEXT,
    types: vk::DebugUtilsMessageTypeFlagsEXT,
) -> bool {
    use vk::DebugUtilsMessageSeverityFlagsEXT as S;
    use vk::DebugUtilsMessageTypeFlagsEXT as T;
    if severity.contains(S::ERROR) {
        return true;
    }
    severity.contains(S::WARNING) && types.intersects(T::VALIDATION | T::PERFORMANCE)
}

fn severity_name(severity: vk::DebugUtilsMessageSeverityFlagsEXT) -> &'static str {
    use vk::DebugUtilsMessageSeverityFlagsEXT as S;
    if severity.contains(S::ERROR) {
        "ERROR"
    } else if severity.contains(S::WARNING) {
        "WARNING"
    } else if severity.contains(S::INFO) {
        "INFO"
    } else {
        "VERBOSE"
    }
}

fn type_names(types: vk::DebugUtilsMessageTypeFlagsEXT) -> String {
    use vk::DebugUtilsMessageTypeFlagsEXT as T;
    let mut names = Vec::new();
    for (flag, name) in [
        (T::GENERAL, "GENERAL"),
        (T::VALIDATION, "VALIDATION"),
        (T::PERFORMANCE, "PERFORMANCE"),
        (T::DEVICE_ADDRESS_BINDING, "DEVICE_ADDRESS_BINDING"),
    ] {
        if types.contains(flag) {
            names.push(name);
        }
    }
    names.join("|")
}

/// Formats one callback's data as a single line: severity, type, message id
/// name, message text, and the objects it names.
///
/// # Safety
///
/// - `data` is null or points to a valid `VkDebugUtilsMessengerCallbackDataEXT`
///   whose strings and `pObjects` array are valid for the duration of the call
///   (the spec guarantees this inside the messenger callback).
unsafe fn format_message(
    severity: vk::DebugUtilsMessageSeverityFlagsEXT,
    types: vk::DebugUtilsMessageTypeFlagsEXT,
    data: *const vk::DebugUtilsMessengerCallbackDataEXT<'_>,
) -> String {
    let mut out = format!("[{} {}]", severity_name(severity), type_names(types));
    // SAFETY: null or valid for the call, by this function's contract.
    let Some(data) = (unsafe { data.as_ref() }) else {
        out.push_str(" (no callback data)");
        return out;
    };
    // SAFETY: pMessageIdName is null or a NUL-terminated string valid during the callback.
    if let Some(id) = unsafe { data.message_id_name_as_c_str() } {
        let _ = write!(out, " {}", id.to_string_lossy());
    }
    // SAFETY: pMessage is null or a NUL-terminated string valid during the callback.
    if let Some(message) = unsafe { data.message_as_c_str() } {
        let _ = write!(out, ": {}", message.to_string_lossy());
    }
    if data.object_count > 0 && !data.p_objects.is_null() {
        // SAFETY: pObjects points to objectCount valid elements during the callback.
        let objects =
            unsafe { std::slice::from_raw_parts(data.p_objects, data.object_count as usize) };
        out.push_str(" [objects:");
        for object in objects {
            let _ = write!(
                out,
                " {:?} 0x{:x}",
                object.object_type, object.object_handle
            );
            // SAFETY: pObjectName is null or a NUL-terminated string valid during the callback.
            if let Some(name) = unsafe { object.object_name_as_c_str() } {
                let _ = write!(out, " '{}'", name.to_string_lossy());
            }
        }
        out.push(']');
    }
    out
}

/// The messenger callback: prints every message it receives to stderr and
/// records the counted ones in the [`MessageLog`] behind `user_data`.
///
/// Never unwinds into the driver: the body runs under `catch_unwind`.
///
/// # Safety
///
/// - `user_data` is a pointer obtained from `Arc::<MessageLog>::as_ptr` whose
///   `Arc` outlives the messenger (the context holds it until after
///   `vkDestroyInstance`).
/// - `data` follows the spec's rules for `pCallbackData`.
pub(crate) unsafe extern "system" fn debug_callback(
    severity: vk::DebugUtilsMessageSeverityFlagsEXT,
    types: vk::DebugUtilsMessageTypeFlagsEXT,
    data: *const vk::DebugUtilsMessengerCallbackDataEXT<'_>,
    user_data: *mut c_void,
) -> vk::Bool32 {
    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `data` is valid for this call (spec; this function's contract).
        let text = unsafe { format_message(severity, types, data) };
        let counted = counts(severity, types);
        eprintln!(
            "mem-testkit: {}{}",
            if counted { "" } else { "(not counted) " },
            text
        );
        // SAFETY: user_data is null or points to a live MessageLog (this function's contract).
        if let Some(log) = unsafe { (user_data as *const MessageLog).as_ref() } {
            log.seen.fetch_add(1, Ordering::Relaxed);
            if counted {
                log.record(text);
            }
        }
    }));
    // The spec: the application should always return VK_FALSE.
    vk::FALSE
}

/// Renders a list of counted messages for a panic message.
pub(crate) fn render(messages: &[String]) -> String {
    let mut out = format!("{} validation messages:", messages.len());
    for (i, m) in messages.iter().enumerate() {
        let _ = write!(out, "\n  {}. {}", i + 1, m);
    }
    out
}

/// Returns the name of `VK_LAYER_KHRONOS_validation`.
pub(crate) const VALIDATION_LAYER: &CStr = c"VK_LAYER_KHRONOS_validation";

#[cfg(test)]
mod tests {
    use super::*;
    use vk::DebugUtilsMessageSeverityFlagsEXT as S;
    use vk::DebugUtilsMessageTypeFlagsEXT as T;

    #[test]
    fn filter() {
        assert!(counts(S::ERROR, T::GENERAL));
        assert!(counts(S::ERROR, T::VALIDATION));
        assert!(counts(S::WARNING, T::VALIDATION));
        assert!(counts(S::WARNING, T::PERFORMANCE));
        assert!(!counts(S::WARNING, T::GENERAL));
        assert!(!counts(S::INFO, T::VALIDATION));
        assert!(!counts(S::VERBOSE, T::GENERAL));
    }
}
