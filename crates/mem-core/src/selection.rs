//! Memory-type selection: from what the CPU and GPU will do with the memory
//! (a [`MemoryUsage`]) to a ranked list of memory types.
//!
//! Each usage scores a type by the flags it wants and the flags it would
//! rather avoid; lower cost ranks first, ties keep the driver's order (drivers
//! list faster types first). Types the allocator never hands out for a plain
//! usage are excluded: `LAZILY_ALLOCATED` (transient attachments only) and
//! `PROTECTED` (needs the protected-memory feature). AMD's
//! `DEVICE_COHERENT`/`DEVICE_UNCACHED` types rank last: they are slow and meant
//! for debugging markers.

use ash::vk;
use smallvec::SmallVec;

use crate::device::DeviceMemoryProperties;

/// What the CPU and the GPU will do with the memory: the allocator picks the
/// memory type from it (intent, not location).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "json", derive(serde::Serialize, serde::Deserialize))]
pub enum MemoryUsage {
    /// Only the GPU reads and writes it (textures, vertex buffers, render
    /// targets): device-local, not host-visible where possible.
    GpuOnly,
    /// The CPU writes it once, the GPU copies from it (staging): host-visible,
    /// coherent, preferably system RAM so VRAM is not spent on it.
    Upload,
    /// The CPU writes it often (every frame), the GPU reads it: device-local
    /// *and* host-visible where the device has it (ReBAR, UMA), else
    /// host-visible system RAM.
    Dynamic,
    /// The GPU writes it, the CPU reads it back: host-visible, preferably
    /// `HOST_CACHED` so reads are fast.
    Readback,
}

impl MemoryUsage {
    /// All usages, for tables and tests.
    pub const ALL: [MemoryUsage; 4] = [
        MemoryUsage::GpuOnly,
        MemoryUsage::Upload,
        MemoryUsage::Dynamic,
        MemoryUsage::Readback,
    ];

    /// Flags every acceptable type must have.
    pub fn required_flags(self) -> vk::MemoryPropertyFlags {
        match self {
            MemoryUsage::GpuOnly => vk::MemoryPropertyFlags::empty(),
            _ => vk::MemoryPropertyFlags::HOST_VISIBLE,
        }
    }

    /// Cost of a type with `flags` for this usage; lower is better.
    pub fn cost(self, flags: vk::MemoryPropertyFlags) -> u32 {
        use vk::MemoryPropertyFlags as F;
        let has = |f: F| flags.contains(f);
        let mut cost = match self {
            MemoryUsage::GpuOnly => {
                8 * u32::from(!has(F::DEVICE_LOCAL))
                    + 4 * u32::from(has(F::HOST_VISIBLE))
                    + u32::from(has(F::HOST_CACHED))
            }
            MemoryUsage::Upload => {
                4 * u32::from(has(F::DEVICE_LOCAL))
                    + 2 * u32::from(!has(F::HOST_COHERENT))
                    + u32::from(has(F::HOST_CACHED))
            }
            MemoryUsage::Dynamic => {
                8 * u32::from(!has(F::DEVICE_LOCAL))
                    + 2 * u32::from(!has(F::HOST_COHERENT))
                    + u32::from(has(F::HOST_CACHED))
            }
            MemoryUsage::Readback => {
                8 * u32::from(!has(F::HOST_CACHED))
                    + 2 * u32::from(!has(F::HOST_COHERENT))
                    + u32::from(has(F::DEVICE_LOCAL))
            }
        };
        if flags.intersects(F::DEVICE_COHERENT_AMD | F::DEVICE_UNCACHED_AMD) {
            cost += 100;
        }
        cost
    }

    /// True when a type with `flags` may serve this usage at all.
    pub fn accepts(self, flags: vk::MemoryPropertyFlags) -> bool {
        flags.contains(self.required_flags())
            && !flags.intersects(
                vk::MemoryPropertyFlags::LAZILY_ALLOCATED | vk::MemoryPropertyFlags::PROTECTED,
            )
    }
}

/// Memory type indices in the order the allocator tries them.
pub type RankedTypes = SmallVec<[u32; 16]>;

/// Every acceptable memory type of `props` for `usage`, best first.
pub fn rank_memory_types(props: &DeviceMemoryProperties, usage: MemoryUsage) -> RankedTypes {
    let mut ranked: RankedTypes = (0..props.memory_types.len() as u32)
        .filter(|&i| usage.accepts(props.memory_types[i as usize].flags))
        .collect();
    ranked.sort_by_key(|&i| usage.cost(props.memory_types[i as usize].flags));
    ranked
}

/// The ranked types of `usage` restricted to `memory_type_bits`.
pub fn candidate_types(
    ranked: &RankedTypes,
    memory_type_bits: u32,
) -> impl Iterator<Item = u32> + '_ {
    ranked
        .iter()
        .copied()
        .filter(move |&i| memory_type_bits & (1 << i) != 0)
}
