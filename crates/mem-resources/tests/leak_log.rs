//! The manager's leak report on drop goes through the `log` crate as one
//! warning, and says nothing while the thread panics.

mod common;

use std::panic::AssertUnwindSafe;

use common::{manager, Gpu};
use mem_resources::BufferDesc;
use parking_lot::Mutex;

/// Keeps every record at warn level or above.
struct Capture(Mutex<Vec<(log::Level, String, String)>>);

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            self.0.lock().push((
                record.level(),
                record.target().to_owned(),
                record.args().to_string(),
            ));
        }
    }

    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

fn manager_records() -> Vec<(log::Level, String, String)> {
    CAPTURE
        .0
        .lock()
        .iter()
        .filter(|(_, target, _)| target.starts_with("mem_resources"))
        .cloned()
        .collect()
}

#[test]
fn leak_report_is_one_warning_and_quiet_while_panicking() {
    log::set_logger(&CAPTURE).expect("the only logger of this test binary");
    log::set_max_level(log::LevelFilter::Warn);

    let Gpu {
        resources,
        allocator,
        ctx,
    } = Gpu::new();
    let rm = resources.expect("manager");
    let allocator = allocator.expect("allocator");
    let leaked = rm
        .create_buffer(&BufferDesc::staging(256).name("leaked on purpose"))
        .unwrap();
    let leaked_handle = leaked.handle();
    drop(leaked);
    drop(rm);
    let records = manager_records();
    assert_eq!(records.len(), 1, "{records:?}");
    let (level, _, text) = &records[0];
    assert_eq!(*level, log::Level::Warn);
    assert!(text.contains("1 live"), "{text}");
    assert!(text.contains("\"leaked on purpose\", 256 bytes"), "{text}");

    let rm = manager(&ctx, allocator.clone());
    let during_panic = rm
        .create_buffer(&BufferDesc::staging(64).name("dropped while panicking"))
        .unwrap();
    let panic_handle = during_panic.handle();
    let unwound = std::panic::catch_unwind(AssertUnwindSafe(move || {
        let _rm = rm;
        let _buffer = during_panic;
        panic!("unwinding through a manager with a live buffer");
    }));
    assert!(unwound.is_err());
    assert_eq!(manager_records().len(), 1, "nothing more while panicking");

    // Destroy the two leaked buffers by hand (their memory goes with the
    // allocator), so the device ends with no object left.
    // SAFETY: no GPU work used them; their managers are gone.
    unsafe {
        ctx.device().destroy_buffer(leaked_handle, None);
        ctx.device().destroy_buffer(panic_handle, None);
    }
    drop(allocator);
    ctx.finish();
}
