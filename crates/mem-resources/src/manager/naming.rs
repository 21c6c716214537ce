//! Names through `VK_EXT_debug_utils`, when the engine enabled it: every
//! named resource, and its memory when the allocation is dedicated (a
//! shared block belongs to many resources, and the name of one of them
//! would mislead). A name with a NUL byte is an error, not a truncation.

use super::*;

impl ResourceManager {
    pub(super) fn set_name<H: vk::Handle>(
        &self,
        handle: H,
        name: &str,
    ) -> Result<(), ResourceError> {
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

    pub(super) fn name_memory(
        &self,
        allocation: &Allocation,
        name: &str,
    ) -> Result<(), ResourceError> {
        if allocation.has_own_memory() {
            self.set_name(allocation.memory(), name)
        } else {
            Ok(())
        }
    }
}
