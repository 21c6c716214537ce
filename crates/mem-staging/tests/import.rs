//! Zero-copy imports of large upload sources (`VK_EXT_external_memory_host`)
//! on real Vulkan (lavapipe), under validation with synchronization
//! validation: every test ends with `ctx.finish()`, which fails on any
//! warning or error message.

mod common;

use ash::vk;
use common::{pattern, Setup, MIB};
use mem_core::MemoryUsage;
use mem_resources::BufferDesc;
use mem_staging::belt::StagingBeltConfig;
use mem_testkit::TestContext;
const EXT: &std::ffi::CStr = ash::ext::external_memory_host::NAME;

/// A belt on a context that enabled `VK_EXT_external_memory_host` when
/// `want_ext`; `desc` gets whether the extension is there.
fn setup(want_ext: bool, desc: impl FnOnce(bool) -> StagingBeltConfig) -> Setup {
    let mut builder = TestContext::builder();
    if want_ext {
        builder = builder.want_device_extension(EXT);
    }
    let ctx = builder.build();
    let has = ctx.has_extension(EXT);
    assert_eq!(has, want_ext, "lavapipe has VK_EXT_external_memory_host");
    Setup::with_context(ctx, desc(has))
}

fn importing(ext: bool, chunk: u64) -> StagingBeltConfig {
    StagingBeltConfig {
        force_staging: true,
        external_memory_host: ext,
        import_threshold: MIB,
        import_chunk_size: chunk,
        ..StagingBeltConfig::with_ring_size(16 * MIB)
    }
}

/// Uploads each size from a slice starting 5 bytes into a Vec (unaligned),
/// checks the GPU copy, and returns the stats.
fn upload_sizes(s: &mut Setup, sizes: &[u64]) {
    for (i, &size) in sizes.iter().enumerate() {
        let dst = s.device_buffer(size);
        let backing = pattern(size as usize + 5, i as u64 + 7);
        let data = &backing[5..];
        let before = s.belt().stats();
        let t = s.belt().upload_buffer(&dst, 0, data).unwrap();
        let after = s.belt().stats();
        if after.bytes_imported > before.bytes_imported {
            assert!(
                s.belt().is_complete(t).unwrap(),
                "imported uploads are synchronous"
            );
        }
        s.belt().wait(t).unwrap();
        assert!(s.read_buffer(&dst) == data, "size {size}: mismatch");
        s.destroy(dst);
    }
}

#[test]
fn large_unaligned_uploads_import_the_source() {
    let mut s = setup(true, |ext| importing(ext, 256 * MIB));
    upload_sizes(&mut s, &[1, 4096 + 3]);
    assert_eq!(s.belt().stats().bytes_imported, 0, "below the threshold");
    upload_sizes(&mut s, &[100 * MIB + 17]);
    let st = s.belt().stats();
    assert!(st.bytes_imported > 99 * MIB, "{st:?}");
    assert!(st.bytes_staged < MIB, "only head and tail staged: {st:?}");
    assert_eq!(st.import_fallbacks, 0);
    s.finish();
}

#[test]
fn imports_in_pieces_at_a_destination_offset() {
    let mut s = setup(true, |ext| importing(ext, 8 * MIB));
    let size = 40 * MIB + 4099;
    let dst = s.device_buffer(size + 1000);
    let zero = vec![0u8; (size + 1000) as usize];
    let _ = s
        .belt()
        .upload_buffer(&dst, 0, &zero[..2 * MIB as usize])
        .unwrap();
    s.belt().finish().unwrap();
    // Vulkan memory starts undefined: the model starts from what the buffer
    // holds (its first 2 MiB were just zeroed).
    let mut model = s.read_buffer(&dst);
    let backing = pattern(size as usize + 3, 42);
    let data = &backing[3..];
    let batches = s.belt().stats().batches_submitted;
    let t = s.belt().upload_buffer(&dst, 333, data).unwrap();
    assert!(s.belt().is_complete(t).unwrap());
    let st = s.belt().stats();
    // Six 8 MiB pieces (at most), imported in groups of copy_threads / 2,
    // one batch per group.
    let group = (mem_staging::belt::StagingBeltConfig::default().copy_threads / 2).max(1) as u64;
    assert!(
        st.batches_submitted >= batches + 5u64.div_ceil(group),
        "one batch per group of pieces: {st:?}"
    );
    assert!(st.bytes_imported >= 40 * MIB - 8192, "{st:?}");
    model[333..333 + size as usize].copy_from_slice(data);
    assert!(s.read_buffer(&dst) == model);
    s.destroy(dst);
    s.finish();
}

#[test]
fn without_the_extension_flag_nothing_is_imported() {
    let mut s = setup(true, |_| importing(false, 256 * MIB));
    upload_sizes(&mut s, &[1, 4096 + 3, 100 * MIB + 17]);
    let st = s.belt().stats();
    assert_eq!(st.bytes_imported, 0);
    assert_eq!(st.import_fallbacks, 0);
    assert!(st.bytes_staged >= 100 * MIB);
    s.finish();
}

#[test]
fn host_visible_destinations_are_written_directly() {
    let mut s = setup(true, |ext| StagingBeltConfig {
        force_staging: false,
        ..importing(ext, 256 * MIB)
    });
    let dst = s
        .res()
        .create_buffer(&BufferDesc::new(
            8 * MIB,
            vk::BufferUsageFlags::TRANSFER_DST | vk::BufferUsageFlags::TRANSFER_SRC,
            MemoryUsage::Upload,
        ))
        .unwrap();
    let data = pattern(8 * MIB as usize, 3);
    let t = s.belt().upload_buffer(&dst, 0, &data).unwrap();
    s.belt().wait(t).unwrap();
    let st = s.belt().stats();
    assert_eq!(st.bytes_imported, 0);
    assert_eq!(st.bytes_direct, 8 * MIB);
    assert!(s.read_buffer(&dst) == data);
    s.destroy(dst);
    s.finish();
}
