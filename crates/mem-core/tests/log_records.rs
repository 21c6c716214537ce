//! The allocator speaks through the `log` crate, never stderr: a damaged
//! debug margin is one error record, and dropping the allocator with live
//! allocations is one warning listing the first 32 and counting the rest.
//! (Its own test binary: the logger is process-wide.)

use std::sync::Mutex;

use ash::vk;
use mem_core::fake::FakeDevice;
use mem_core::{AllocationDesc, Allocator, AllocatorConfig, MemoryUsage};

static RECORDS: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        RECORDS
            .lock()
            .unwrap()
            .push((record.level(), record.args().to_string()));
    }

    fn flush(&self) {}
}

static LOGGER: Capture = Capture;

#[test]
fn corruption_is_an_error_and_leaks_one_warning() {
    log::set_logger(&LOGGER).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let device = FakeDevice::builtin("lavapipe-mesa-22.3").unwrap();
    let config = AllocatorConfig {
        debug_margin: 16,
        ..Default::default()
    };
    let alloc = Allocator::with_device(Box::new(device), config);
    let request = |size| {
        AllocationDesc::new(
            vk::MemoryRequirements {
                size,
                alignment: 16,
                memory_type_bits: 1,
            },
            MemoryUsage::Upload,
        )
    };

    let overrun = alloc.allocate(&request(100).name("overrun")).unwrap();
    // SAFETY: byte 100 is the first byte of the back margin, inside the
    // mapped block; nothing else uses it.
    unsafe { overrun.mapped_ptr().unwrap().as_ptr().add(100).write(0) };
    alloc.free(overrun).unwrap();
    let errors: Vec<String> = RECORDS
        .lock()
        .unwrap()
        .iter()
        .filter(|(level, _)| *level == log::Level::Error)
        .map(|(_, text)| text.clone())
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("overrun") && errors[0].contains("after"));

    let live: Vec<_> = (0..40)
        .map(|i| {
            let name = format!("leak {i}");
            alloc.allocate(&request(64).name(&name)).unwrap()
        })
        .collect();
    drop(alloc);
    let warnings: Vec<String> = RECORDS
        .lock()
        .unwrap()
        .iter()
        .filter(|(level, _)| *level == log::Level::Warn)
        .map(|(_, text)| text.clone())
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let report = &warnings[0];
    assert!(report.contains("40 live allocation(s)"), "{report}");
    assert!(report.contains("\"leak 0\" 64 bytes"), "{report}");
    assert!(report.contains("and 8 more"), "{report}");
    assert_eq!(report.lines().count(), 1 + 32 + 1, "{report}");
    drop(live);
}
