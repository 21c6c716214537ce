//! The four allocators behind one small trait, each created fresh per run.

use ash::vk;

use crate::vkctx::VkCtx;

/// One request, from raw memory requirements.
#[derive(Clone, Copy, Debug)]
pub struct Req {
    pub size: u64,
    pub align: u64,
    /// Optimal (tiled) image; else linear (buffer).
    pub optimal: bool,
}

/// mem-core's defragmentation passes at the end of a trace, over the
/// allocations live then (allocator-level passes: destinations reserved
/// and sources freed; the bench has no data to copy).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct DefragOutcome {
    /// Requested bytes live at the end of the trace.
    pub live: u64,
    /// Committed bytes then, after `trim()` (kept empty blocks and cached
    /// memory given back), before the passes.
    pub committed_before: u64,
    /// Committed bytes after passes to a fixed point (64 MiB each), and
    /// `trim()`.
    pub committed_after: u64,
    pub passes: u32,
    pub moves: u64,
    pub bytes_moved: u64,
    pub blocks_created: u32,
    /// `vkAllocateMemory` calls the passes made (their new blocks).
    pub allocate_calls: u64,
    /// Wall ms of planning, reserving and committing all passes (no copy).
    pub ms: f64,
}

/// Runs defragmentation passes of the default budget over `slots` until one
/// moves nothing (at most 64), swapping each moved allocation in place.
pub fn defragment_mem_core(
    a: &mem_core::Allocator,
    slots: &mut [Option<mem_core::Allocation>],
) -> DefragOutcome {
    let budget = mem_core::DefragmentationBudget::default();
    let mut out = DefragOutcome {
        live: slots.iter().flatten().map(|x| x.reserved_size()).sum(),
        ..DefragOutcome::default()
    };
    a.trim();
    out.committed_before = a.stats().total.committed_bytes;
    let calls0 = a.stats().total.allocate_memory_calls;
    let t0 = std::time::Instant::now();
    while out.passes < 64 {
        let pass = a
            .begin_defragmentation_pass(
                slots
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| s.as_ref().map(|x| (i, x))),
                &budget,
            )
            .expect("own allocations");
        if pass.is_empty() {
            a.cancel_defragmentation_pass(pass);
            break;
        }
        let st = pass.stats();
        out.passes += 1;
        out.moves += u64::from(st.moves);
        out.bytes_moved += st.bytes_moved;
        out.blocks_created += st.blocks_created;
        a.commit_defragmentation_pass(pass, |k, new| {
            slots[k].replace(new).expect("a live slot moved")
        })
        .expect("own allocations");
    }
    out.ms = t0.elapsed().as_secs_f64() * 1e3;
    a.trim();
    out.committed_after = a.stats().total.committed_bytes;
    out.allocate_calls = a.stats().total.allocate_memory_calls - calls0;
    out
}

/// What each allocator says about itself (cross-check of the hook).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct SelfReport {
    /// Committed bytes by the allocator's own report API, `None` where it has
    /// none.
    pub committed: Option<u64>,
    /// `vkAllocateMemory` calls by its own count, where it keeps one.
    pub allocate_calls: Option<u64>,
}

pub trait Peer {
    type H;
    fn alloc(&mut self, r: &Req) -> Result<Self::H, String>;
    fn free(&mut self, h: Self::H);
    fn self_report(&self) -> SelfReport;
    /// Detailed state for a failure report (mem-core only).
    fn diag(&self) -> Option<serde_json::Value> {
        None
    }
    /// Frees what the allocator keeps cached (called after everything was
    /// freed, before drop).
    fn finish(&mut self) {}
    /// Defragmentation passes over what is live (mem-core only).
    fn defragment(&mut self, _slots: &mut [Option<Self::H>]) -> Option<DefragOutcome> {
        None
    }
}

pub const MEM_CORE: &str = "mem-core";
pub const GPU_ALLOCATOR: &str = "gpu-allocator";
pub const GPU_ALLOC: &str = "gpu-alloc";
pub const VMA: &str = "VMA (vk-mem)";
pub const ALL: [&str; 4] = [MEM_CORE, GPU_ALLOCATOR, GPU_ALLOC, VMA];

// `--variants`: other settings of the peers, shown beside the defaults but
// not counted as "best peer".
pub const GPU_ALLOCATOR_GROW: &str = "gpu-allocator 4-256 MB";
pub const GPU_ALLOC_TRANSIENT: &str = "gpu-alloc TRANSIENT";
pub const VMA_MIN_MEMORY: &str = "VMA min-memory";
pub const VMA_MIN_TIME: &str = "VMA min-time";
pub const MEM_CORE_BUDDY: &str = "mem-core buddy";
pub const MEM_CORE_OWN_MEMORY: &str = "mem-core own memory 1 MiB";
pub const VARIANTS: [&str; 6] = [
    MEM_CORE_BUDDY,
    MEM_CORE_OWN_MEMORY,
    GPU_ALLOCATOR_GROW,
    GPU_ALLOC_TRANSIENT,
    VMA_MIN_MEMORY,
    VMA_MIN_TIME,
];

pub fn variant_settings() -> Vec<(&'static str, String)> {
    vec![
        (
            MEM_CORE_BUDDY,
            "as mem-core, with `AllocatorConfig::placement = BlockPlacement::Buddy` (the tail-trimmed buddy \
             inside blocks instead of TLSF, with its own block growth: half the pool from 1/8 of the preferred size)"
                .into(),
        ),
        (
            MEM_CORE_OWN_MEMORY,
            "as mem-core, with `AllocatorConfig::own_memory_threshold = 1 MiB` and \
             `max_empty_blocks_per_type = 1`, the defaults before large requests went to blocks: every request \
             of 1 MiB and more gets a `VkDeviceMemory` of its own (freed ones cached up to the heap's peak, \
             reused by requests up to 1/4 smaller), one empty block kept per type"
                .into(),
        ),
        (
            GPU_ALLOCATOR_GROW,
            "as gpu-allocator, with `AllocationSizes::new(4 MB, 4 MB)` grown to 256 MB (`with_max_*_memblock_size`): \
             blocks double from 4 MB as more are needed (PR #254)"
                .into(),
        ),
        (
            GPU_ALLOC_TRANSIENT,
            "as gpu-alloc, with `UsageFlags::FAST_DEVICE_ACCESS | TRANSIENT`: its free-list (bump) path instead \
             of the buddy, below `transient_dedicated_threshold` (128 MiB, capped at heap/32)"
                .into(),
        ),
        (VMA_MIN_MEMORY, "as VMA, with `AllocationCreateFlags::STRATEGY_MIN_MEMORY` (best fit)".into()),
        (VMA_MIN_TIME, "as VMA, with `AllocationCreateFlags::STRATEGY_MIN_TIME` (first fit)".into()),
    ]
}

/// Settings printed in the table footer.
pub fn settings() -> Vec<(&'static str, String)> {
    vec![
        (
            MEM_CORE,
            "mem-core (path dep, this tree): `Allocator::new` with `AllocatorConfig::default()` \
             (TLSF placement over each pool's blocks; 256 MiB preferred block; pools grow geometrically by 1/8 of their size, from 16 MiB (small requests) or 64 MiB (requests over 1 MiB, in a pool of their own, buffers and images together at a 4 KiB unit); 256 B min block; memory of its own only above a quarter block (64 MiB; freed ones cached up to the heap's peak, reused by requests up to 1/4 smaller); up to 8 empty blocks kept per type, freed before new memory would pass the heap's peak), \
             memory_budget false; `MemoryUsage::GpuOnly`, `ResourceClass::Linear/Optimal`"
                .into(),
        ),
        (
            GPU_ALLOCATOR,
            "gpu-allocator 0.28.0: `AllocationSizes::default()` (256 MB device / 64 MB host blocks; lavapipe's only \
             memory type is HOST_VISIBLE so the 64 MB host size applies), all `AllocatorDebugSettings` off \
             (no leak log, no stack traces, no alloc/free logging), buffer_device_address false; \
             `MemoryLocation::GpuOnly`, `linear` from the class, `AllocationScheme::GpuAllocatorManaged`, name \"\""
                .into(),
        ),
        (
            GPU_ALLOC,
            "gpu-alloc 0.6.2 + gpu-alloc-ash 0.7.1: `Config::i_am_prototyping()` (dedicated >= 32 MiB, \
             buddy chunks from 8 MiB, min buddy 1 KiB; chunk sizes capped at heap/32 = 64 MiB), \
             `UsageFlags::FAST_DEVICE_ACCESS` (buddy path, not TRANSIENT), `cleanup()` at the end"
                .into(),
        ),
        (
            VMA,
            "vk-mem 0.5.0 (VMA 3.3.0, C++ built with cc, NDEBUG): `AllocatorCreateFlags::EXTERNALLY_SYNCHRONIZED` \
             (no internal mutex: the bench is single-threaded), preferred block 0 = VMA default (256 MiB; first \
             blocks 1/8, 1/4, 1/2), vulkanApiVersion 1.3; `vmaAllocateMemory` with `MemoryUsage::GpuOnly`, \
             default (balanced) TLSF strategy, no flags"
                .into(),
        ),
    ]
}

// ---------------------------------------------------------------- mem-core

pub struct MemCore {
    a: mem_core::Allocator,
}

impl MemCore {
    pub fn new(ctx: &VkCtx, config: mem_core::AllocatorConfig) -> Self {
        // SAFETY: the context's objects are valid and outlive the allocator.
        let a = unsafe {
            mem_core::Allocator::new(mem_core::AllocatorCreateInfo {
                instance: &ctx.instance,
                physical_device: ctx.physical_device,
                device: &ctx.device,
                memory_budget: false,
                allocation_callbacks: None,
                config,
            })
        }
        .expect("mem-core allocator");
        Self { a }
    }
}

impl Peer for MemCore {
    type H = mem_core::Allocation;
    #[inline]
    fn alloc(&mut self, r: &Req) -> Result<Self::H, String> {
        let req = vk::MemoryRequirements {
            size: r.size,
            alignment: r.align,
            memory_type_bits: !0,
        };
        let class = if r.optimal {
            mem_core::ResourceClass::Optimal
        } else {
            mem_core::ResourceClass::Linear
        };
        self.a
            .allocate(
                &mem_core::AllocationDesc::new(req, mem_core::MemoryUsage::GpuOnly).class(class),
            )
            .map_err(|e| e.to_string())
    }
    #[inline]
    fn free(&mut self, h: Self::H) {
        self.a.free(h).expect("mem-core free");
    }
    fn defragment(&mut self, slots: &mut [Option<Self::H>]) -> Option<DefragOutcome> {
        Some(defragment_mem_core(&self.a, slots))
    }
    fn self_report(&self) -> SelfReport {
        let s = self.a.stats();
        SelfReport {
            committed: Some(s.total.committed_bytes),
            allocate_calls: Some(s.total.allocate_memory_calls),
        }
    }
    fn diag(&self) -> Option<serde_json::Value> {
        let s = self.a.stats();
        let types: Vec<serde_json::Value> = s
            .memory_types
            .iter()
            .filter(|t| t.committed_bytes > 0)
            .map(|t| {
                serde_json::json!({
                    "memory_type_index": t.memory_type_index,
                    "block_count": t.block_count,
                    "empty_block_count": t.empty_block_count,
                    "dedicated_count": t.own_memory_count,
                    "committed_bytes": t.committed_bytes,
                    "allocated_bytes": t.allocated_bytes,
                    "requested_bytes": t.requested_bytes,
                    "allocation_count": t.allocation_count,
                    "largest_free_block": t.largest_free_block,
                    "free_block_histogram": t.free_block_histogram,
                })
            })
            .collect();
        let blocks: Vec<serde_json::Value> = self
            .a
            .block_maps()
            .iter()
            .map(|b| {
                let used: u64 = b
                    .ranges
                    .iter()
                    .filter(|r| r.kind == mem_core::stats::RangeKind::Allocated)
                    .map(|r| r.size)
                    .sum();
                let requested: u64 = b.ranges.iter().map(|r| r.requested).sum();
                serde_json::json!({
                    "class": b.class,
                    "dedicated": b.own_memory,
                    "size": b.size,
                    "allocated": used,
                    "requested": requested,
                    "allocations": b.ranges.iter().filter(|r| r.kind == mem_core::stats::RangeKind::Allocated).count(),
                })
            })
            .collect();
        Some(serde_json::json!({ "total": s.total, "memory_types": types, "blocks": blocks }))
    }
}

// ----------------------------------------------------------- gpu-allocator

pub struct GpuAllocator {
    a: gpu_allocator::vulkan::Allocator,
}

impl GpuAllocator {
    pub fn new(ctx: &VkCtx, allocation_sizes: gpu_allocator::AllocationSizes) -> Self {
        let mut debug_settings = gpu_allocator::AllocatorDebugSettings::default();
        debug_settings.log_memory_information = false;
        debug_settings.log_leaks_on_shutdown = false;
        debug_settings.store_stack_traces = false;
        debug_settings.log_allocations = false;
        debug_settings.log_frees = false;
        debug_settings.log_stack_traces = false;
        let a =
            gpu_allocator::vulkan::Allocator::new(&gpu_allocator::vulkan::AllocatorCreateDesc {
                instance: ctx.instance.clone(),
                device: ctx.device.clone(),
                physical_device: ctx.physical_device,
                debug_settings,
                buffer_device_address: false,
                allocation_sizes,
            })
            .expect("gpu-allocator");
        Self { a }
    }
}

impl Peer for GpuAllocator {
    type H = gpu_allocator::vulkan::Allocation;
    #[inline]
    fn alloc(&mut self, r: &Req) -> Result<Self::H, String> {
        self.a
            .allocate(&gpu_allocator::vulkan::AllocationCreateDesc {
                name: "",
                requirements: vk::MemoryRequirements {
                    size: r.size,
                    alignment: r.align,
                    memory_type_bits: !0,
                },
                location: gpu_allocator::MemoryLocation::GpuOnly,
                linear: !r.optimal,
                allocation_scheme: gpu_allocator::vulkan::AllocationScheme::GpuAllocatorManaged,
            })
            .map_err(|e| e.to_string())
    }
    #[inline]
    fn free(&mut self, h: Self::H) {
        self.a.free(h).expect("gpu-allocator free");
    }
    fn self_report(&self) -> SelfReport {
        let r = self.a.generate_report();
        SelfReport {
            committed: Some(r.total_capacity_bytes),
            allocate_calls: None,
        }
    }
}

// --------------------------------------------------------------- gpu-alloc

pub struct GpuAlloc {
    a: gpu_alloc::GpuAllocator<vk::DeviceMemory>,
    device: ash::Device,
    usage: gpu_alloc::UsageFlags,
}

impl GpuAlloc {
    pub fn new(ctx: &VkCtx, usage: gpu_alloc::UsageFlags) -> Self {
        // SAFETY: the physical device belongs to the instance; BDA is off.
        let mut props = unsafe {
            gpu_alloc_ash::device_properties(&ctx.instance, ctx.api_version, ctx.physical_device)
        }
        .expect("gpu-alloc device properties");
        props.buffer_device_address = false;
        let a = gpu_alloc::GpuAllocator::new(gpu_alloc::Config::i_am_prototyping(), props);
        Self {
            a,
            device: ctx.device.clone(),
            usage,
        }
    }
}

impl Peer for GpuAlloc {
    type H = gpu_alloc::MemoryBlock<vk::DeviceMemory>;
    #[inline]
    fn alloc(&mut self, r: &Req) -> Result<Self::H, String> {
        let dev = gpu_alloc_ash::AshMemoryDevice::wrap(&self.device);
        // SAFETY: same device every call.
        unsafe {
            self.a.alloc(
                dev,
                gpu_alloc::Request {
                    size: r.size,
                    align_mask: r.align - 1,
                    usage: self.usage,
                    memory_types: !0,
                },
            )
        }
        .map_err(|e| e.to_string())
    }
    #[inline]
    fn free(&mut self, h: Self::H) {
        let dev = gpu_alloc_ash::AshMemoryDevice::wrap(&self.device);
        // SAFETY: the block came from this allocator and device.
        unsafe { self.a.dealloc(dev, h) }
    }
    fn self_report(&self) -> SelfReport {
        // gpu-alloc has no committed-bytes report; the hook's count is the
        // only one.
        SelfReport::default()
    }
    fn finish(&mut self) {
        let dev = gpu_alloc_ash::AshMemoryDevice::wrap(&self.device);
        // SAFETY: same device.
        unsafe { self.a.cleanup(dev) }
    }
}

// --------------------------------------------------------------------- VMA

pub struct Vma {
    a: vk_mem::Allocator,
    info: vk_mem::AllocationCreateInfo,
}

impl Vma {
    pub fn new(ctx: &VkCtx, flags: vk_mem::AllocationCreateFlags) -> Self {
        let mut ci =
            vk_mem::AllocatorCreateInfo::new(&ctx.instance, &ctx.device, ctx.physical_device);
        ci.flags = vk_mem::AllocatorCreateFlags::EXTERNALLY_SYNCHRONIZED;
        ci.vulkan_api_version = ctx.api_version;
        // SAFETY: valid objects that outlive the allocator.
        let a = unsafe { vk_mem::Allocator::new(ci) }.expect("VMA allocator");
        let info = vk_mem::AllocationCreateInfo {
            // GPU_ONLY is deprecated in VMA 3 in favour of AUTO*, but AUTO needs a
            // buffer/image create info, which raw requirements do not have.
            #[allow(deprecated)]
            usage: vk_mem::MemoryUsage::GpuOnly,
            flags,
            ..Default::default()
        };
        Self { a, info }
    }
}

impl Peer for Vma {
    type H = vk_mem::Allocation;
    #[inline]
    fn alloc(&mut self, r: &Req) -> Result<Self::H, String> {
        use vk_mem::Alloc;
        let req = vk::MemoryRequirements {
            size: r.size,
            alignment: r.align,
            memory_type_bits: !0,
        };
        // SAFETY: valid requirements; allocator alive.
        unsafe { self.a.allocate_memory(&req, &self.info) }.map_err(|e| e.to_string())
    }
    #[inline]
    fn free(&mut self, mut h: Self::H) {
        // SAFETY: the allocation came from this allocator.
        unsafe { self.a.free_memory(&mut h) }
    }
    fn self_report(&self) -> SelfReport {
        let s = self.a.calculate_statistics().expect("VMA statistics");
        SelfReport {
            committed: Some(s.total.statistics.blockBytes),
            allocate_calls: None,
        }
    }
}
