//! mem-core on real Vulkan (lavapipe) under validation: allocate many sizes,
//! write a distinct pattern through each mapped pointer, read everything back
//! and check that nothing overlapped; zero validation messages.

use ash::vk;
use mem_core::{
    AllocationDesc, Allocator, AllocatorConfig, AllocatorCreateInfo, Dedicated, MemoryUsage,
    ResourceClass,
};
use mem_testkit::TestContext;

fn allocator(ctx: &TestContext) -> Allocator {
    // SAFETY: the context's handles are valid and outlive the allocator,
    // which every test drops before `ctx.finish()`.
    unsafe {
        Allocator::new(AllocatorCreateInfo {
            instance: ctx.instance(),
            physical_device: ctx.physical_device(),
            device: ctx.device(),
            memory_budget: false,
            allocation_callbacks: None,
            config: AllocatorConfig::default(),
        })
    }
    .unwrap()
}

#[test]
fn many_sizes_patterns_do_not_overlap() {
    let ctx = TestContext::new();
    let alloc = allocator(&ctx);
    let mut live = Vec::new();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for i in 0..3000u32 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let size = match i % 4 {
            0 => 1 + rng % 300,
            1 => 256 + rng % 70_000,
            2 => 1 << (8 + rng % 12),
            _ => 1 + rng % (4 << 20),
        };
        let usage = MemoryUsage::ALL[(rng >> 33) as usize % 4];
        let class = if rng & 1 == 0 {
            ResourceClass::Linear
        } else {
            ResourceClass::Optimal
        };
        let req = vk::MemoryRequirements {
            size,
            alignment: 1 << ((rng >> 40) % 13),
            memory_type_bits: 1,
        };
        let mut a = alloc
            .allocate(&AllocationDesc::new(req, usage).class(class))
            .unwrap();
        assert_eq!(a.offset() % req.alignment, 0);
        let fill: Vec<u8> = (0..size).map(|b| (i as u64 * 31 + b) as u8).collect();
        alloc.write(&mut a, 0, &fill).unwrap();
        live.push((a, i));
        if i % 7 == 3 {
            // Free one in the middle: holes get reused.
            let (a, _) = live.swap_remove((rng >> 20) as usize % live.len());
            alloc.free(a).unwrap();
        }
    }
    // One dedicated allocation too.
    let req = vk::MemoryRequirements {
        size: 1 << 20,
        alignment: 256,
        memory_type_bits: 1,
    };
    let mut d = alloc
        .allocate(
            &AllocationDesc::new(req, MemoryUsage::Upload).dedicated(Dedicated::Required(None)),
        )
        .unwrap();
    alloc.write(&mut d, 0, &vec![0xEE; 1 << 20]).unwrap();
    alloc.validate().unwrap();
    for (a, i) in &live {
        let mut back = vec![0u8; a.reserved_size() as usize];
        alloc.read(a, 0, &mut back).unwrap();
        let expected: Vec<u8> = (0..a.reserved_size())
            .map(|b| (*i as u64 * 31 + b) as u8)
            .collect();
        assert!(
            back == expected,
            "allocation {i} was overwritten by a neighbour"
        );
    }
    let mut back = vec![0u8; 1 << 20];
    alloc.read(&d, 0, &mut back).unwrap();
    assert!(back.iter().all(|&b| b == 0xEE));
    let stats = alloc.stats();
    assert!(stats.total.efficiency > 0.0);
    for (a, _) in live {
        alloc.free(a).unwrap();
    }
    alloc.free(d).unwrap();
    alloc.validate().unwrap();
    assert!(alloc.leak_report().is_empty());
    drop(alloc);
    ctx.finish();
}

#[test]
fn memory_is_bindable_by_real_buffers() {
    let ctx = TestContext::new();
    let alloc = allocator(&ctx);
    let d = ctx.device();
    let mut bound = Vec::new();
    for size in [1u64, 100, 4096, 65_536, 3 << 20, 200 << 20] {
        let info = vk::BufferCreateInfo::default()
            .size(size)
            .usage(vk::BufferUsageFlags::TRANSFER_DST);
        // SAFETY: valid device; the buffer is destroyed below.
        let buffer = unsafe { d.create_buffer(&info, None) }.unwrap();
        // SAFETY: as above.
        let req = unsafe { d.get_buffer_memory_requirements(buffer) };
        let a = alloc
            .allocate(&AllocationDesc::new(req, MemoryUsage::GpuOnly).name("bound"))
            .unwrap();
        // SAFETY: memory from this device, range inside it, buffer unbound.
        unsafe { d.bind_buffer_memory(buffer, a.memory(), a.offset()) }.unwrap();
        bound.push((buffer, a));
    }
    assert!(
        bound.last().unwrap().1.has_own_memory(),
        "200 MiB > half a block: dedicated"
    );
    for (buffer, a) in bound {
        // SAFETY: never used by the GPU.
        unsafe { d.destroy_buffer(buffer, None) };
        alloc.free(a).unwrap();
    }
    drop(alloc);
    ctx.finish();
}
