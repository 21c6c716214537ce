//! Zero-copy sources for large buffer uploads: the caller's host memory
//! imported as `VkDeviceMemory` with `VK_EXT_external_memory_host`.
//!
//! The belt imports the page-aligned interior of an upload's slice (aligned
//! to `minImportedHostPointerAlignment` at both ends), binds it to a
//! temporary `TRANSFER_SRC` buffer and lets the GPU copy from it directly;
//! the unaligned head and tail still go through the ring. Because the slice
//! is only borrowed for the call, the belt waits for those copies before it
//! returns and then destroys the buffer and frees the memory (the host memory
//! must stay valid while it is imported).
//!
//! Imports bypass the `mem-core` allocator: each piece is one
//! `vkAllocateMemory` (counted against `maxMemoryAllocationCount` while it
//! lives, for the duration of one upload call).

use std::ffi::c_void;

use ash::vk;
use mem_core::host::HostCallbacks;

/// Handle type of every import made here.
const HANDLE_TYPE: vk::ExternalMemoryHandleTypeFlags =
    vk::ExternalMemoryHandleTypeFlags::HOST_ALLOCATION_EXT;

/// Imports host memory as buffers; created by the belt when the engine
/// enabled `VK_EXT_external_memory_host` and the device can import host
/// allocations into `TRANSFER_SRC` buffers.
pub struct HostImporter {
    fns: ash::ext::external_memory_host::Device,
    device: ash::Device,
    /// The engine's host allocation callbacks, for every buffer and memory
    /// object made and freed here.
    callbacks: HostCallbacks,
    alignment: u64,
    type_flags: Vec<vk::MemoryPropertyFlags>,
}

/// A piece of host memory imported and bound to a temporary buffer.
#[derive(Debug)]
pub struct ImportedBuffer {
    /// The `TRANSFER_SRC` buffer bound to the whole import.
    pub buffer: vk::Buffer,
    /// The imported memory.
    pub memory: vk::DeviceMemory,
}

/// Where the aligned interior of a host range lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interior {
    /// Bytes before the interior (staged through the ring).
    pub head: u64,
    /// Interior bytes (a multiple of the alignment; imported).
    pub len: u64,
}

/// The largest `alignment`-aligned range inside `[addr, addr + len)`, as
/// offsets from `addr`; `None` when it is empty.
pub fn aligned_interior(addr: usize, len: usize, alignment: u64) -> Option<Interior> {
    let a = alignment.max(1) as usize;
    let start = addr.checked_next_multiple_of(a)?;
    let end = addr.checked_add(len)? / a * a;
    (end > start).then(|| Interior {
        head: (start - addr) as u64,
        len: (end - start) as u64,
    })
}

impl HostImporter {
    /// Loads the extension's functions and reads the import alignment.
    /// Returns `None` when the device cannot import host allocations into
    /// `TRANSFER_SRC` buffers.
    ///
    /// # Safety
    /// - `device` was created from `physical_device` of `instance` with
    ///   `VK_EXT_external_memory_host` enabled; all are alive and outlive the
    ///   importer.
    pub unsafe fn new(
        instance: &ash::Instance,
        physical_device: vk::PhysicalDevice,
        device: &ash::Device,
        callbacks: HostCallbacks,
    ) -> Option<Self> {
        let mut host_props = vk::PhysicalDeviceExternalMemoryHostPropertiesEXT::default();
        let mut props2 = vk::PhysicalDeviceProperties2::default().push_next(&mut host_props);
        // SAFETY: the physical device belongs to the instance (contract); the
        // extension is enabled, so the chained struct is known.
        unsafe { instance.get_physical_device_properties2(physical_device, &mut props2) };
        let alignment = host_props.min_imported_host_pointer_alignment.max(1);
        if !alignment.is_power_of_two() {
            return None;
        }
        let info = vk::PhysicalDeviceExternalBufferInfo::default()
            .usage(vk::BufferUsageFlags::TRANSFER_SRC)
            .handle_type(HANDLE_TYPE);
        let mut ext_props = vk::ExternalBufferProperties::default();
        // SAFETY: as above (Vulkan 1.1 core query).
        unsafe {
            instance.get_physical_device_external_buffer_properties(
                physical_device,
                &info,
                &mut ext_props,
            )
        };
        if !ext_props
            .external_memory_properties
            .external_memory_features
            .contains(vk::ExternalMemoryFeatureFlags::IMPORTABLE)
        {
            return None;
        }
        // SAFETY: as above.
        let mem = unsafe { instance.get_physical_device_memory_properties(physical_device) };
        let type_flags = mem.memory_types[..mem.memory_type_count as usize]
            .iter()
            .map(|t| t.property_flags)
            .collect();
        Some(Self {
            fns: ash::ext::external_memory_host::Device::new(instance, device),
            device: device.clone(),
            callbacks,
            alignment,
            type_flags,
        })
    }

    /// `minImportedHostPointerAlignment`: pointer and size of every import
    /// are multiples of it.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Picks a memory type from `bits`, preferring one without `DEVICE_LOCAL`.
    fn pick_type(&self, bits: u32) -> Option<u32> {
        let candidates = || (0..self.type_flags.len() as u32).filter(move |i| bits & (1 << i) != 0);
        candidates()
            .find(|&i| !self.type_flags[i as usize].contains(vk::MemoryPropertyFlags::DEVICE_LOCAL))
            .or_else(|| candidates().next())
    }

    /// Imports `[ptr, ptr + size)` and binds it to a new `TRANSFER_SRC`
    /// buffer. On failure everything created is destroyed and the Vulkan
    /// result is returned (the caller falls back to the ring).
    ///
    /// # Safety
    /// - `ptr` and `size` are multiples of [`Self::alignment`], `size > 0`;
    /// - the range is readable host memory that stays valid, and that nobody
    ///   writes, until [`Self::destroy`] is called on the result; the GPU only
    ///   reads it.
    pub unsafe fn import(&self, ptr: *const u8, size: u64) -> Result<ImportedBuffer, vk::Result> {
        debug_assert!(size > 0 && size % self.alignment == 0 && (ptr as u64) % self.alignment == 0);
        let mut host_props = vk::MemoryHostPointerPropertiesEXT::default();
        // SAFETY: the device is alive with the extension enabled; `ptr` is an
        // aligned host pointer (contract).
        unsafe {
            (self.fns.fp().get_memory_host_pointer_properties_ext)(
                self.device.handle(),
                HANDLE_TYPE,
                ptr.cast::<c_void>(),
                &mut host_props,
            )
        }
        .result()?;
        let mut external = vk::ExternalMemoryBufferCreateInfo::default().handle_types(HANDLE_TYPE);
        let buffer_info = vk::BufferCreateInfo::default()
            .size(size)
            .usage(vk::BufferUsageFlags::TRANSFER_SRC)
            .sharing_mode(vk::SharingMode::EXCLUSIVE)
            .push_next(&mut external);
        // SAFETY: valid device and create info.
        let buffer = unsafe {
            self.device
                .create_buffer(&buffer_info, self.callbacks.get())
        }?;
        // SAFETY: the buffer was just created.
        let req = unsafe { self.device.get_buffer_memory_requirements(buffer) };
        let type_index = if req.size <= size {
            self.pick_type(host_props.memory_type_bits & req.memory_type_bits)
        } else {
            None
        };
        let Some(type_index) = type_index else {
            // SAFETY: never bound or used.
            unsafe { self.device.destroy_buffer(buffer, self.callbacks.get()) };
            return Err(vk::Result::ERROR_INVALID_EXTERNAL_HANDLE);
        };
        let mut import = vk::ImportMemoryHostPointerInfoEXT::default()
            .handle_type(HANDLE_TYPE)
            // The GPU only reads the import (a TRANSFER_SRC buffer); the
            // type asks for `*mut`.
            .host_pointer(ptr.cast_mut().cast::<c_void>());
        let alloc = vk::MemoryAllocateInfo::default()
            .allocation_size(size)
            .memory_type_index(type_index)
            .push_next(&mut import);
        // SAFETY: pointer and size aligned (contract), type from the pointer's
        // memoryTypeBits.
        let memory = match unsafe { self.device.allocate_memory(&alloc, self.callbacks.get()) } {
            Ok(m) => m,
            Err(e) => {
                // SAFETY: never bound or used.
                unsafe { self.device.destroy_buffer(buffer, self.callbacks.get()) };
                return Err(e);
            }
        };
        // SAFETY: the buffer's handle type matches the import; the memory
        // covers the buffer's requirements at offset 0.
        if let Err(e) = unsafe { self.device.bind_buffer_memory(buffer, memory, 0) } {
            // SAFETY: neither was used by the GPU.
            unsafe {
                self.device.destroy_buffer(buffer, self.callbacks.get());
                self.device.free_memory(memory, self.callbacks.get());
            }
            return Err(e);
        }
        Ok(ImportedBuffer { buffer, memory })
    }

    /// Destroys the buffer and frees the imported memory.
    ///
    /// # Safety
    /// - no pending GPU work uses the buffer, and no command buffer that
    ///   records it will be submitted again.
    pub unsafe fn destroy(&self, imported: ImportedBuffer) {
        // SAFETY: forwarded from the contract.
        unsafe {
            self.device
                .destroy_buffer(imported.buffer, self.callbacks.get());
            self.device
                .free_memory(imported.memory, self.callbacks.get());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interior_is_aligned_and_inside() {
        assert_eq!(
            aligned_interior(4096, 8192, 4096),
            Some(Interior { head: 0, len: 8192 })
        );
        assert_eq!(
            aligned_interior(4101, 8192, 4096),
            Some(Interior {
                head: 4091,
                len: 4096
            })
        );
        assert_eq!(aligned_interior(4101, 4096, 4096), None);
        assert_eq!(aligned_interior(5, 3, 4096), None);
        assert_eq!(aligned_interior(0, 4095, 4096), None);
        for addr in [1usize, 4095, 4096, 12_345, 1 << 30] {
            for len in [1usize, 4096, 10_000, 1 << 20] {
                if let Some(i) = aligned_interior(addr, len, 4096) {
                    assert_eq!((addr as u64 + i.head) % 4096, 0);
                    assert_eq!(i.len % 4096, 0);
                    assert!(i.head + i.len <= len as u64);
                }
            }
        }
    }
}
