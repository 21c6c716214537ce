//! A fake [`MemoryDevice`] that reproduces real GPUs' memory layouts, for
//! tests of everything above the device calls. Behind the `testing` feature
//! (off by default): tests enable it through a dev-dependency,
//! `mem-core = { workspace = true, features = ["testing"] }`.
//!
//! [`DeviceTable::parse`] reads the one-line-per-fact format of the
//! `device-tables/` folder (lavapipe, an H100, AMD/NVIDIA discrete GPUs with
//! and without ReBAR, Intel, Mali, Adreno, Apple): heaps, memory types, queue
//! families, limits and extensions. [`FakeDevice`] then serves allocations
//! from those heaps with:
//! - heap capacities that can be lowered ([`FakeDevice::set_heap_capacity`])
//!   to simulate a nearly full heap;
//! - fault injection: fail the nth `vkAllocateMemory` or `vkMapMemory` from
//!   now, counted as everywhere in gpumem (1 = the next call, 0 disarms)
//!   ([`FakeDevice::fail_allocate_at`], [`FakeDevice::fail_map_at`]);
//! - real host memory behind mapped objects, so tests can write and read;
//! - a log of flush/invalidate ranges checked against `nonCoherentAtomSize`;
//! - counts of live objects, for leak checks.

use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use ash::vk;
use ash::vk::Handle;
use parking_lot::Mutex;
use smallvec::SmallVec;

use crate::device::{
    DeviceError, DeviceMemoryProperties, HeapBudget, MappedRange, MemoryAllocateRequest,
    MemoryDevice, MemoryHeapInfo, MemoryTypeInfo,
};

/// The device tables shipped with mem-core (copies of the project's
/// `shared/device-tables/`), as `(file name, contents)`.
pub const DEVICE_TABLES: &[(&str, &str)] = &[
    (
        "adreno-750-android",
        include_str!("../device-tables/adreno-750-android.txt"),
    ),
    (
        "amd-rx6600-no-rebar",
        include_str!("../device-tables/amd-rx6600-no-rebar.txt"),
    ),
    (
        "amd-rx7800xt-radv-rebar",
        include_str!("../device-tables/amd-rx7800xt-radv-rebar.txt"),
    ),
    (
        "apple-m2-moltenvk",
        include_str!("../device-tables/apple-m2-moltenvk.txt"),
    ),
    (
        "intel-adl-gt2-mesa-uma",
        include_str!("../device-tables/intel-adl-gt2-mesa-uma.txt"),
    ),
    (
        "intel-arc-a770-mesa",
        include_str!("../device-tables/intel-arc-a770-mesa.txt"),
    ),
    (
        "lavapipe-mesa-22.3",
        include_str!("../device-tables/lavapipe-mesa-22.3.txt"),
    ),
    (
        "mali-g715-android",
        include_str!("../device-tables/mali-g715-android.txt"),
    ),
    (
        "nvidia-h100",
        include_str!("../device-tables/nvidia-h100.txt"),
    ),
    (
        "nvidia-rtx3060ti-linux-no-rebar",
        include_str!("../device-tables/nvidia-rtx3060ti-linux-no-rebar.txt"),
    ),
];

/// A parse failure in a device table, naming the line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("device table line {line}: {message}")]
pub struct TableError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// One queue family of a device table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFamilyTable {
    /// Number of queues.
    pub count: u32,
    /// Capabilities.
    pub flags: vk::QueueFlags,
    /// `minImageTransferGranularity`.
    pub min_image_transfer_granularity: vk::Extent3D,
    /// `timestampValidBits`.
    pub timestamp_valid_bits: u32,
}

/// A device's memory and queue layout, parsed from a device table.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceTable {
    /// The device name.
    pub name: String,
    /// The device type.
    pub device_type: vk::PhysicalDeviceType,
    /// Every `key=value` of the `limits:` line.
    pub limits: HashMap<String, f64>,
    /// Heaps in index order.
    pub heaps: Vec<MemoryHeapInfo>,
    /// Memory types in index order.
    pub types: Vec<MemoryTypeInfo>,
    /// Queue families in index order.
    pub queue_families: Vec<QueueFamilyTable>,
    /// Extensions of interest the device has.
    pub extensions: Vec<String>,
}

fn err(line: usize, message: impl Into<String>) -> TableError {
    TableError {
        line,
        message: message.into(),
    }
}

fn parse_flags<F: Copy + std::ops::BitOr<Output = F>>(
    text: &str,
    empty: F,
    line: usize,
    lookup: impl Fn(&str) -> Option<F>,
) -> Result<F, TableError> {
    let mut flags = empty;
    for word in text.split('|').map(str::trim).filter(|w| !w.is_empty()) {
        flags = flags | lookup(word).ok_or_else(|| err(line, format!("unknown flag {word}")))?;
    }
    Ok(flags)
}

fn memory_flag(word: &str) -> Option<vk::MemoryPropertyFlags> {
    use vk::MemoryPropertyFlags as F;
    Some(match word {
        "DEVICE_LOCAL" => F::DEVICE_LOCAL,
        "HOST_VISIBLE" => F::HOST_VISIBLE,
        "HOST_COHERENT" => F::HOST_COHERENT,
        "HOST_CACHED" => F::HOST_CACHED,
        "LAZILY_ALLOCATED" => F::LAZILY_ALLOCATED,
        "PROTECTED" => F::PROTECTED,
        "DEVICE_COHERENT_AMD" => F::DEVICE_COHERENT_AMD,
        "DEVICE_UNCACHED_AMD" => F::DEVICE_UNCACHED_AMD,
        "RDMA_CAPABLE_NV" => F::RDMA_CAPABLE_NV,
        _ => return None,
    })
}

fn heap_flag(word: &str) -> Option<vk::MemoryHeapFlags> {
    Some(match word {
        "DEVICE_LOCAL" => vk::MemoryHeapFlags::DEVICE_LOCAL,
        "MULTI_INSTANCE" => vk::MemoryHeapFlags::MULTI_INSTANCE,
        _ => return None,
    })
}

fn queue_flag(word: &str) -> Option<vk::QueueFlags> {
    use vk::QueueFlags as F;
    Some(match word {
        "GRAPHICS" => F::GRAPHICS,
        "COMPUTE" => F::COMPUTE,
        "TRANSFER" => F::TRANSFER,
        "SPARSE_BINDING" => F::SPARSE_BINDING,
        "PROTECTED" => F::PROTECTED,
        "VIDEO_DECODE_KHR" => F::VIDEO_DECODE_KHR,
        "VIDEO_ENCODE_KHR" => F::VIDEO_ENCODE_KHR,
        "OPTICAL_FLOW_NV" => F::OPTICAL_FLOW_NV,
        // Bits vulkaninfo had no name for are written in hex.
        hex => F::from_raw(u32::from_str_radix(hex.strip_prefix("0x")?, 16).ok()?),
    })
}

/// `"key=value key2=value2"` → pairs; values stop at the next space.
fn key_values(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split_whitespace().filter_map(|kv| kv.split_once('='))
}

fn parse_index(text: &str, line: usize) -> Result<usize, TableError> {
    text.trim()
        .parse()
        .map_err(|_| err(line, format!("bad index {text:?}")))
}

impl DeviceTable {
    /// Looks a shipped table up by file name (without `.txt`).
    pub fn builtin(name: &str) -> Option<Self> {
        DEVICE_TABLES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, text)| Self::parse(text).expect("shipped device tables parse"))
    }

    /// Every shipped table, parsed, with its file name.
    pub fn all_builtin() -> Vec<(&'static str, Self)> {
        DEVICE_TABLES
            .iter()
            .map(|(n, text)| (*n, Self::parse(text).expect("shipped device tables parse")))
            .collect()
    }

    /// Parses a table. Lines starting with `#` are comments.
    pub fn parse(text: &str) -> Result<Self, TableError> {
        let mut table = DeviceTable {
            name: String::new(),
            device_type: vk::PhysicalDeviceType::OTHER,
            limits: HashMap::new(),
            heaps: Vec::new(),
            types: Vec::new(),
            queue_families: Vec::new(),
            extensions: Vec::new(),
        };
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix("== device") {
                let name_start = rest
                    .find('"')
                    .ok_or_else(|| err(n, "device name missing"))?;
                let name_end = rest[name_start + 1..]
                    .find('"')
                    .ok_or_else(|| err(n, "device name unterminated"))?;
                table.name = rest[name_start + 1..name_start + 1 + name_end].to_owned();
                for (k, v) in key_values(&rest[name_start + name_end + 2..]) {
                    if k == "type" {
                        table.device_type = match v {
                            "DISCRETE_GPU" => vk::PhysicalDeviceType::DISCRETE_GPU,
                            "INTEGRATED_GPU" => vk::PhysicalDeviceType::INTEGRATED_GPU,
                            "VIRTUAL_GPU" => vk::PhysicalDeviceType::VIRTUAL_GPU,
                            "CPU" => vk::PhysicalDeviceType::CPU,
                            _ => vk::PhysicalDeviceType::OTHER,
                        };
                    }
                }
            } else if let Some(rest) = line.strip_prefix("limits:") {
                for (k, v) in key_values(rest) {
                    let value = v
                        .parse()
                        .map_err(|_| err(n, format!("bad limit {k}={v}")))?;
                    table.limits.insert(k.to_owned(), value);
                }
            } else if let Some(rest) = line.strip_prefix("heap ") {
                let (idx, rest) = rest
                    .split_once(':')
                    .ok_or_else(|| err(n, "heap: missing ':'"))?;
                if parse_index(idx, n)? != table.heaps.len() {
                    return Err(err(n, "heaps out of order"));
                }
                let rest = rest.trim();
                let (mib, flags) = rest
                    .split_once("MiB")
                    .ok_or_else(|| err(n, "heap size not in MiB"))?;
                let mib: u64 = mib.trim().parse().map_err(|_| err(n, "bad heap size"))?;
                let flags = parse_flags(flags, vk::MemoryHeapFlags::empty(), n, heap_flag)?;
                table.heaps.push(MemoryHeapInfo {
                    size: mib << 20,
                    flags,
                });
            } else if let Some(rest) = line.strip_prefix("type ") {
                let (idx, rest) = rest
                    .split_once(':')
                    .ok_or_else(|| err(n, "type: missing ':'"))?;
                if parse_index(idx, n)? != table.types.len() {
                    return Err(err(n, "types out of order"));
                }
                let rest = rest
                    .trim()
                    .strip_prefix("heap ")
                    .ok_or_else(|| err(n, "type: no heap"))?;
                let (heap, flags) = rest.split_once(' ').unwrap_or((rest, ""));
                let heap_index = parse_index(heap, n)? as u32;
                let flags = parse_flags(flags, vk::MemoryPropertyFlags::empty(), n, memory_flag)?;
                table.types.push(MemoryTypeInfo { flags, heap_index });
            } else if let Some(rest) = line.strip_prefix("queue family ") {
                let (idx, rest) = rest
                    .split_once(':')
                    .ok_or_else(|| err(n, "queue: missing ':'"))?;
                if parse_index(idx, n)? != table.queue_families.len() {
                    return Err(err(n, "queue families out of order"));
                }
                let count = rest
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("count="))
                    .ok_or_else(|| err(n, "queue: no count"))?;
                let count = count.parse().map_err(|_| err(n, "bad queue count"))?;
                let flags_text = rest
                    .split_once("flags=")
                    .and_then(|(_, r)| r.split_once("granularity="))
                    .map(|(f, _)| f)
                    .ok_or_else(|| err(n, "queue: no flags/granularity"))?;
                let flags = parse_flags(flags_text, vk::QueueFlags::empty(), n, queue_flag)?;
                let gran = rest
                    .split_once('{')
                    .and_then(|(_, r)| r.split_once('}'))
                    .map(|(g, _)| g)
                    .ok_or_else(|| err(n, "queue: no granularity"))?;
                let mut extent = [0u32; 3];
                for (slot, part) in extent.iter_mut().zip(gran.split(',')) {
                    let value = part.split_once(':').map(|(_, v)| v.trim()).unwrap_or("");
                    *slot = value.parse().map_err(|_| err(n, "bad granularity"))?;
                }
                let ts = rest
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("tsbits="))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                table.queue_families.push(QueueFamilyTable {
                    count,
                    flags,
                    min_image_transfer_granularity: vk::Extent3D {
                        width: extent[0],
                        height: extent[1],
                        depth: extent[2],
                    },
                    timestamp_valid_bits: ts,
                });
            } else if let Some(rest) = line.strip_prefix("extensions of interest:") {
                table.extensions = rest
                    .split('"')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_owned)
                    .collect();
            } else {
                return Err(err(n, format!("unrecognised line {line:?}")));
            }
        }
        if table.types.is_empty() || table.heaps.is_empty() {
            return Err(err(0, "table has no memory types or heaps"));
        }
        if let Some(t) = table
            .types
            .iter()
            .find(|t| t.heap_index as usize >= table.heaps.len())
        {
            return Err(err(
                0,
                format!("memory type names missing heap {}", t.heap_index),
            ));
        }
        Ok(table)
    }

    /// A limit by its Vulkan name, e.g. `"nonCoherentAtomSize"`.
    pub fn limit(&self, name: &str) -> Option<f64> {
        self.limits.get(name).copied()
    }

    /// True when the device has the extension.
    pub fn has_extension(&self, name: &str) -> bool {
        self.extensions.iter().any(|e| e == name)
    }

    /// The memory properties the allocator would read from this device.
    pub fn memory_properties(&self) -> DeviceMemoryProperties {
        let limit = |name: &str, default: u64| self.limit(name).map_or(default, |v| v as u64);
        DeviceMemoryProperties {
            memory_types: self.types.clone(),
            memory_heaps: self.heaps.clone(),
            buffer_image_granularity: limit("bufferImageGranularity", 1).max(1),
            non_coherent_atom_size: limit("nonCoherentAtomSize", 1).max(1),
            max_memory_allocation_count: limit("maxMemoryAllocationCount", u32::MAX as u64) as u32,
            max_memory_allocation_size: u64::MAX,
            device_type: self.device_type,
            memory_budget: self.has_extension("VK_EXT_memory_budget"),
        }
    }
}

/// A flush or invalidate the fake saw, for tests to inspect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeOp {
    /// `vkFlushMappedMemoryRanges`.
    Flush(MappedRange),
    /// `vkInvalidateMappedMemoryRanges`.
    Invalidate(MappedRange),
}

struct FakeMemory {
    type_index: u32,
    size: u64,
    mapped: bool,
    backing: Option<Vec<u8>>,
}

#[derive(Default)]
struct FakeState {
    memories: HashMap<u64, FakeMemory>,
    heap_used: Vec<u64>,
    heap_capacity: Vec<u64>,
    allocate_calls: u64,
    map_calls: u64,
    fail_allocate_at: Option<(u64, DeviceError)>,
    fail_map_at: Option<u64>,
    range_log: Vec<RangeOp>,
    range_violations: Vec<String>,
    allocate_log: Vec<(u32, u64)>,
}

/// A [`MemoryDevice`] over a [`DeviceTable`], with fault injection.
pub struct FakeDevice {
    table: DeviceTable,
    properties: DeviceMemoryProperties,
    state: Mutex<FakeState>,
    next_handle: AtomicU64,
}

impl FakeDevice {
    /// A fake of the given table.
    pub fn new(table: DeviceTable) -> Self {
        let properties = table.memory_properties();
        let state = FakeState {
            heap_used: vec![0; table.heaps.len()],
            heap_capacity: table.heaps.iter().map(|h| h.size).collect(),
            ..FakeState::default()
        };
        Self {
            table,
            properties,
            state: Mutex::new(state),
            next_handle: AtomicU64::new(1),
        }
    }

    /// A fake of a shipped table (see [`DEVICE_TABLES`]); `None` for an unknown name.
    pub fn builtin(name: &str) -> Option<Self> {
        DeviceTable::builtin(name).map(Self::new)
    }

    /// The table this fake reproduces.
    pub fn table(&self) -> &DeviceTable {
        &self.table
    }

    /// Overrides a reported property (e.g. `max_memory_allocation_size`).
    pub fn with_properties(mut self, edit: impl FnOnce(&mut DeviceMemoryProperties)) -> Self {
        edit(&mut self.properties);
        self
    }

    /// Lowers (or raises) how many bytes heap `heap` can hold, to simulate a
    /// nearly full heap. Allocations beyond it fail with out-of-device-memory.
    pub fn set_heap_capacity(&self, heap: u32, bytes: u64) {
        self.state.lock().heap_capacity[heap as usize] = bytes;
    }

    /// Makes the `n`th `vkAllocateMemory` from now (1 = the next one) fail
    /// once with `error`; later calls succeed again. Replaces the fault armed
    /// before; `n == 0` disarms it.
    pub fn fail_allocate_at(&self, n: u64, error: DeviceError) {
        let mut s = self.state.lock();
        let at = s.allocate_calls + n;
        s.fail_allocate_at = (n > 0).then_some((at, error));
    }

    /// Makes the `n`th `vkMapMemory` from now (1 = the next one) fail once
    /// with `MEMORY_MAP_FAILED`. Replaces the fault armed before; `n == 0`
    /// disarms it.
    pub fn fail_map_at(&self, n: u64) {
        let mut s = self.state.lock();
        let at = s.map_calls + n;
        s.fail_map_at = (n > 0).then_some(at);
    }

    /// Number of `vkAllocateMemory` calls made so far (failed ones included).
    pub fn allocate_calls(&self) -> u64 {
        self.state.lock().allocate_calls
    }

    /// Number of live memory objects (a leak check expects 0 at the end).
    pub fn live_memory_objects(&self) -> usize {
        self.state.lock().memories.len()
    }

    /// Number of live memory objects that are still mapped.
    pub fn mapped_memory_objects(&self) -> usize {
        self.state
            .lock()
            .memories
            .values()
            .filter(|m| m.mapped)
            .count()
    }

    /// Bytes in use on each heap.
    pub fn heap_used(&self) -> Vec<u64> {
        self.state.lock().heap_used.clone()
    }

    /// `(memory type, size)` of every successful `vkAllocateMemory`, in order.
    pub fn allocate_log(&self) -> Vec<(u32, u64)> {
        self.state.lock().allocate_log.clone()
    }

    /// Every flush and invalidate seen, in order.
    pub fn range_log(&self) -> Vec<RangeOp> {
        self.state.lock().range_log.clone()
    }

    /// Flush/invalidate ranges that broke the spec's rules (not a multiple of
    /// `nonCoherentAtomSize`, past the end, unmapped memory). Tests expect none.
    pub fn range_violations(&self) -> Vec<String> {
        self.state.lock().range_violations.clone()
    }

    fn check_ranges(&self, ranges: &[MappedRange], flush: bool) {
        let atom = self.properties.non_coherent_atom_size;
        let mut s = self.state.lock();
        for r in ranges {
            let op = if flush {
                RangeOp::Flush(*r)
            } else {
                RangeOp::Invalidate(*r)
            };
            s.range_log.push(op);
            let problem = match s.memories.get(&r.memory.as_raw()) {
                None => Some("memory is not live".to_owned()),
                Some(m) if !m.mapped => Some("memory is not mapped".to_owned()),
                Some(m) if r.offset % atom != 0 => Some(format!(
                    "offset {} not a multiple of atom {atom} (size {})",
                    r.offset, m.size
                )),
                Some(m) if r.offset + r.size > m.size => Some(format!(
                    "range {}+{} past the end {}",
                    r.offset, r.size, m.size
                )),
                Some(m) if r.size % atom != 0 && r.offset + r.size != m.size => Some(format!(
                    "size {} not a multiple of atom {atom} and not reaching the end {}",
                    r.size, m.size
                )),
                Some(_) => None,
            };
            if let Some(p) = problem {
                s.range_violations.push(format!("{op:?}: {p}"));
            }
        }
    }
}

impl MemoryDevice for FakeDevice {
    fn properties(&self) -> &DeviceMemoryProperties {
        &self.properties
    }

    unsafe fn allocate_memory(
        &self,
        request: &MemoryAllocateRequest,
    ) -> Result<vk::DeviceMemory, DeviceError> {
        let mut s = self.state.lock();
        s.allocate_calls += 1;
        if let Some((at, error)) = s.fail_allocate_at {
            if at == s.allocate_calls {
                s.fail_allocate_at = None;
                return Err(error);
            }
        }
        let ty = self
            .properties
            .memory_types
            .get(request.memory_type_index as usize)
            .ok_or(DeviceError::Other(vk::Result::ERROR_UNKNOWN))?;
        let heap = ty.heap_index as usize;
        if request.size == 0 || request.size > self.properties.max_memory_allocation_size {
            return Err(DeviceError::OutOfDeviceMemory);
        }
        if s.memories.len() as u64 >= u64::from(self.properties.max_memory_allocation_count) {
            return Err(DeviceError::TooManyObjects);
        }
        if s.heap_used[heap] + request.size > s.heap_capacity[heap] {
            return Err(DeviceError::OutOfDeviceMemory);
        }
        s.heap_used[heap] += request.size;
        let raw = self.next_handle.fetch_add(1, Ordering::Relaxed);
        s.memories.insert(
            raw,
            FakeMemory {
                type_index: request.memory_type_index,
                size: request.size,
                mapped: false,
                backing: None,
            },
        );
        s.allocate_log
            .push((request.memory_type_index, request.size));
        Ok(vk::DeviceMemory::from_raw(raw))
    }

    unsafe fn free_memory(&self, memory: vk::DeviceMemory) {
        let mut s = self.state.lock();
        let m = s
            .memories
            .remove(&memory.as_raw())
            .unwrap_or_else(|| panic!("fake device: freeing unknown memory {memory:?}"));
        assert!(!m.mapped, "fake device: freeing mapped memory {memory:?}");
        let heap = self.properties.memory_types[m.type_index as usize].heap_index as usize;
        s.heap_used[heap] -= m.size;
    }

    unsafe fn map_memory(
        &self,
        memory: vk::DeviceMemory,
        size: u64,
    ) -> Result<NonNull<u8>, DeviceError> {
        let mut s = self.state.lock();
        s.map_calls += 1;
        if s.fail_map_at == Some(s.map_calls) {
            s.fail_map_at = None;
            return Err(DeviceError::MemoryMapFailed);
        }
        let m = s
            .memories
            .get_mut(&memory.as_raw())
            .expect("fake device: mapping unknown memory");
        let flags = self.properties.memory_types[m.type_index as usize].flags;
        assert!(
            flags.contains(vk::MemoryPropertyFlags::HOST_VISIBLE),
            "mapping non-host-visible memory"
        );
        assert!(!m.mapped, "fake device: memory mapped twice");
        assert_eq!(size, m.size, "fake device: partial map");
        let len = usize::try_from(size).map_err(|_| DeviceError::MemoryMapFailed)?;
        let backing = m.backing.get_or_insert_with(|| vec![0u8; len]);
        m.mapped = true;
        NonNull::new(backing.as_mut_ptr()).ok_or(DeviceError::MemoryMapFailed)
    }

    unsafe fn unmap_memory(&self, memory: vk::DeviceMemory) {
        let mut s = self.state.lock();
        let m = s
            .memories
            .get_mut(&memory.as_raw())
            .expect("fake device: unmapping unknown memory");
        assert!(m.mapped, "fake device: unmapping memory that is not mapped");
        m.mapped = false;
    }

    unsafe fn flush_ranges(&self, ranges: &[MappedRange]) -> Result<(), DeviceError> {
        self.check_ranges(ranges, true);
        Ok(())
    }

    unsafe fn invalidate_ranges(&self, ranges: &[MappedRange]) -> Result<(), DeviceError> {
        self.check_ranges(ranges, false);
        Ok(())
    }

    fn heap_budgets(&self) -> Option<SmallVec<[HeapBudget; 4]>> {
        if !self.properties.memory_budget {
            return None;
        }
        let s = self.state.lock();
        Some(
            s.heap_capacity
                .iter()
                .zip(&s.heap_used)
                .map(|(&cap, &used)| HeapBudget {
                    budget: cap,
                    usage: used,
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_table_parses() {
        let all = DeviceTable::all_builtin();
        assert_eq!(all.len(), 10);
        for (name, t) in &all {
            assert!(!t.name.is_empty(), "{name}");
            assert!(!t.queue_families.is_empty(), "{name}");
            assert!(t.limit("nonCoherentAtomSize").is_some(), "{name}");
        }
    }

    #[test]
    fn h100_layout() {
        let t = DeviceTable::builtin("nvidia-h100").unwrap();
        assert_eq!(t.types.len(), 5);
        assert_eq!(t.heaps[0].size, 81559 << 20);
        assert_eq!(
            t.types[4].flags,
            vk::MemoryPropertyFlags::DEVICE_LOCAL
                | vk::MemoryPropertyFlags::HOST_VISIBLE
                | vk::MemoryPropertyFlags::HOST_COHERENT
        );
        assert_eq!(
            t.queue_families[1].flags,
            vk::QueueFlags::TRANSFER | vk::QueueFlags::SPARSE_BINDING
        );
        assert!(t.memory_properties().memory_budget);
        assert_eq!(t.memory_properties().buffer_image_granularity, 1024);
    }

    #[test]
    fn rx6600_transfer_granularity() {
        let t = DeviceTable::builtin("amd-rx6600-no-rebar").unwrap();
        let g = t.queue_families[2].min_image_transfer_granularity;
        assert_eq!((g.width, g.height, g.depth), (16, 16, 8));
        assert_eq!(t.memory_properties().max_memory_allocation_count, 4096);
    }

    #[test]
    fn bad_lines_are_errors() {
        assert!(DeviceTable::parse("heap 0: lots DEVICE_LOCAL").is_err());
        assert!(DeviceTable::parse("type 0: heap 0 SHINY").is_err());
        assert!(DeviceTable::parse("what is this").is_err());
        assert!(DeviceTable::parse("").is_err());
        assert!(DeviceTable::parse("heap 0: 16 MiB\ntype 0: heap 3 DEVICE_LOCAL").is_err());
    }

    #[test]
    fn shipped_tables_match_shared_copy_when_present() {
        let shared =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/device-tables");
        for (name, text) in DEVICE_TABLES {
            if let Ok(original) = std::fs::read_to_string(shared.join(format!("{name}.txt"))) {
                assert_eq!(&original, text, "{name} differs from shared/device-tables");
            }
        }
    }

    #[test]
    fn fault_injection_and_capacity() {
        let dev = FakeDevice::builtin("lavapipe-mesa-22.3").unwrap();
        let req = MemoryAllocateRequest {
            memory_type_index: 0,
            size: 1 << 20,
            dedicated: None,
            device_address: false,
        };
        dev.fail_allocate_at(2, DeviceError::OutOfDeviceMemory);
        // SAFETY: fake device, no real handles.
        unsafe {
            let a = dev.allocate_memory(&req).unwrap();
            assert_eq!(
                dev.allocate_memory(&req),
                Err(DeviceError::OutOfDeviceMemory)
            );
            let b = dev.allocate_memory(&req).unwrap();
            dev.set_heap_capacity(0, 2 << 20);
            assert_eq!(
                dev.allocate_memory(&req),
                Err(DeviceError::OutOfDeviceMemory)
            );
            dev.fail_map_at(1);
            assert_eq!(
                dev.map_memory(a, 1 << 20),
                Err(DeviceError::MemoryMapFailed)
            );
            let p = dev.map_memory(a, 1 << 20).unwrap();
            p.as_ptr().write(7);
            dev.flush_ranges(&[MappedRange {
                memory: a,
                offset: 3,
                size: 64,
            }])
            .unwrap();
            assert_eq!(dev.range_violations().len(), 1);
            dev.unmap_memory(a);
            dev.free_memory(a);
            dev.free_memory(b);
        }
        assert_eq!(dev.live_memory_objects(), 0);
        assert_eq!(dev.heap_used(), vec![0]);
    }
}
