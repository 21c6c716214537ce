//! The block-map picture: layout, colours, and a real allocator's maps.

use mem_core::fake::FakeDevice;
use mem_core::stats::{BlockMap, RangeKind, RangeMap};
use mem_core::{AllocationDesc, Allocator, AllocatorConfig, MemoryUsage};
use mem_demo::memory_map::{allocation_color, render_block_map, BAND_GAP, BAND_HEIGHT};

fn range(offset: u64, size: u64, requested: u64, name: Option<&str>) -> RangeMap {
    RangeMap {
        offset,
        size,
        requested,
        kind: if requested > 0 {
            RangeKind::Allocated
        } else {
            RangeKind::Free
        },
        name: name.map(str::to_owned),
    }
}

fn rgb(p: Option<[u8; 4]>) -> [u8; 3] {
    let p = p.expect("inside the picture");
    [p[0], p[1], p[2]]
}

#[test]
fn bands_ranges_separators_and_free_space() {
    let maps = vec![
        BlockMap {
            memory_type_index: 0,
            class: "any",
            own_memory: false,
            size: 1024,
            ranges: vec![
                range(0, 256, 256, Some("texture bricks")),
                range(256, 256, 128, Some("vertex sphere")),
                range(512, 512, 0, None),
            ],
        },
        BlockMap {
            memory_type_index: 1,
            class: "dedicated",
            own_memory: true,
            size: 4096,
            ranges: vec![range(0, 4096, 4096, None)],
        },
    ];
    let img = render_block_map(&maps, 267); // 11 columns of strip + 256 of map
    assert_eq!(
        (img.width, img.height),
        (267, BAND_GAP + 2 * (BAND_HEIGHT + BAND_GAP))
    );
    assert_eq!(img.rgba.len(), (img.width * img.height * 4) as usize);
    let y = BAND_GAP + BAND_HEIGHT / 2;
    let background = rgb(img.pixel(100, 0));
    // First allocation: separator, then its colour.
    let tex = allocation_color(Some("texture bricks"));
    assert_eq!(rgb(img.pixel(11 + 30, y)), tex);
    assert_ne!(rgb(img.pixel(11, y)), tex, "separator");
    // Second: requested half in colour, the rounded-up rest darker.
    let vtx = allocation_color(Some("vertex sphere"));
    assert_eq!(rgb(img.pixel(11 + 64 + 10, y)), vtx);
    let waste = rgb(img.pixel(11 + 64 + 50, y));
    assert!(
        waste.iter().zip(vtx).all(|(w, c)| *w < c || c == 0),
        "{waste:?} vs {vtx:?}"
    );
    // Free half: grey, not background.
    let free = rgb(img.pixel(11 + 200, y));
    assert!(free[0] == free[1] && free != background);
    // Gap between the bands is background; the second band is drawn.
    assert_eq!(rgb(img.pixel(100, BAND_GAP + BAND_HEIGHT + 1)), background);
    assert_ne!(
        rgb(img.pixel(100, 2 * BAND_GAP + BAND_HEIGHT + 2)),
        background
    );
    // Same kind, same hue family; different kinds differ.
    assert_ne!(
        allocation_color(Some("texture a")),
        allocation_color(Some("vertex a"))
    );
    assert_eq!(allocation_color(None), allocation_color(None));
}

#[test]
fn tiny_allocations_stay_visible_and_empty_input_is_fine() {
    let maps = vec![BlockMap {
        memory_type_index: 2,
        class: "linear",
        own_memory: false,
        size: 1 << 28,
        ranges: vec![
            range(0, 256, 256, Some("tiny")),
            range(256, (1 << 28) - 256, 0, None),
        ],
    }];
    let img = render_block_map(&maps, 128);
    assert_eq!(
        rgb(img.pixel(11, BAND_GAP + 3)),
        allocation_color(Some("tiny"))
    );
    let empty = render_block_map(&[], 10);
    assert_eq!((empty.width, empty.height), (64, BAND_GAP));
}

#[test]
fn a_real_allocators_blocks_render() {
    let device = FakeDevice::builtin("nvidia-h100").expect("built-in table");
    let allocator = Allocator::with_device(Box::new(device), AllocatorConfig::default());
    let mut live = Vec::new();
    for i in 0..200u64 {
        let size = 1024 * (1 + (i * 7919) % 300);
        let reqs = ash::vk::MemoryRequirements {
            size,
            alignment: 256,
            memory_type_bits: !0,
        };
        let name = format!("{} {i}", if i % 3 == 0 { "texture" } else { "mesh" });
        let desc = AllocationDesc::new(reqs, MemoryUsage::GpuOnly).name(&name);
        live.push(allocator.allocate(&desc).unwrap());
    }
    // Free every other one: fragmentation to look at.
    let mut keep = Vec::new();
    for (i, a) in live.into_iter().enumerate() {
        if i % 2 == 0 {
            allocator.free(a).unwrap();
        } else {
            keep.push(a);
        }
    }
    let maps = allocator.block_maps();
    assert!(!maps.is_empty());
    let img = render_block_map(&maps, 512);
    assert_eq!(
        img.height,
        BAND_GAP + maps.len() as u32 * (BAND_HEIGHT + BAND_GAP)
    );
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("mem-demo-block-map.png");
    img.save_png(&out).unwrap();
    assert!(std::fs::metadata(&out).unwrap().len() > 100);
    for a in keep {
        allocator.free(a).unwrap();
    }
}

#[test]
fn save_png_checks_the_size() {
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("mem-demo-bad.png");
    assert!(matches!(
        mem_demo::save_png(&out, 2, 2, &[0; 15]),
        Err(mem_demo::DemoError::InvalidPixels { .. })
    ));
    mem_demo::save_png(&out, 2, 2, &[128; 16]).unwrap();
    let back = image::open(&out).unwrap().to_rgba8();
    assert_eq!(back.dimensions(), (2, 2));
    assert_eq!(back.into_raw(), vec![128; 16]);
}
