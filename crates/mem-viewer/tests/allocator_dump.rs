//! A dump from mem-core's real allocator (over the fake device with an
//! NVIDIA H100's memory table) drawn in headless Chromium: the page finds
//! every block and allocation the allocator reports, and the leak report.

mod common;

use std::time::Duration;

use ash::vk;
use common::{assert_ready, body_attr, browser, file_url, test_dir};
use mem_core::fake::FakeDevice;
use mem_core::{AllocationDesc, Allocator, AllocatorConfig, MemoryUsage, ResourceClass};
use mem_viewer::{write_html_report, ReportOptions, Timeline};

#[test]
fn the_page_counts_what_the_allocator_holds() {
    let device = FakeDevice::builtin("nvidia-h100").expect("the H100 table ships");
    let allocator = Allocator::with_device(Box::new(device), AllocatorConfig::default());
    let mut timeline = Timeline::new();
    let mut live = Vec::new();
    let kinds = [
        (
            "vertex",
            MemoryUsage::GpuOnly,
            ResourceClass::Linear,
            64 << 10,
        ),
        (
            "texture",
            MemoryUsage::GpuOnly,
            ResourceClass::Optimal,
            3 << 20,
        ),
        (
            "uniform",
            MemoryUsage::Dynamic,
            ResourceClass::Linear,
            4 << 10,
        ),
        (
            "staging",
            MemoryUsage::Upload,
            ResourceClass::Linear,
            512 << 10,
        ),
    ];
    for i in 0..400u64 {
        let (kind, usage, class, size) = kinds[(i % 4) as usize];
        let req = vk::MemoryRequirements {
            size: size + (i * 4096) % size,
            alignment: 256,
            memory_type_bits: u32::MAX,
        };
        let name = format!("{kind} #{i}");
        let desc = AllocationDesc::new(req, usage).class(class).name(&name);
        live.push(allocator.allocate(&desc).expect("fits the H100's heaps"));
        // Free every third one again: free ranges between allocations.
        if i % 3 == 2 {
            allocator.free(live.swap_remove(live.len() / 2)).unwrap();
        }
        let t = allocator.stats().total;
        timeline.sample(t.committed_bytes, t.requested_bytes);
    }
    allocator.validate().unwrap();
    let stats = allocator.stats();
    let leaks = serde_json::to_value(allocator.leak_report()).unwrap();
    let options = ReportOptions::new()
        .title("fake H100")
        .timeline(timeline)
        .leaks(leaks);
    let dir = test_dir("allocator");
    let page = dir.join("report.html");
    let counts = write_html_report(&page, &allocator.dump_json(true), &options).unwrap();
    let blocks = (stats.total.block_count + stats.total.own_memory_count) as usize;
    assert_eq!(counts.blocks, blocks);
    assert_eq!(counts.allocations, stats.total.allocation_count as usize);
    assert_eq!(counts.allocations, live.len());
    assert!(counts.free_ranges > 0);
    for a in live.drain(..) {
        allocator.free(a).unwrap();
    }
    let Some(browser) = browser() else { return };
    let (dom, _) = browser.dump_dom(&dir, &file_url(&page), 3_000, Duration::from_secs(120));
    assert_ready(&dom);
    assert_eq!(
        body_attr(&dom, "data-blocks").as_deref(),
        Some(blocks.to_string().as_str())
    );
    assert_eq!(
        body_attr(&dom, "data-allocations").as_deref(),
        Some(counts.allocations.to_string().as_str())
    );
    assert_eq!(
        body_attr(&dom, "data-leaks").as_deref(),
        Some(counts.allocations.to_string().as_str()),
        "the leak report taken with every allocation alive lists them all"
    );
    assert_eq!(
        body_attr(&dom, "data-timeline-samples").as_deref(),
        Some("400")
    );
}
