//! The procedural default scene and the mip-chain builder: CPU only.

use std::time::Instant;

use ash::vk;
use mem_demo::scene::{mip_extent, mip_level_count};
use mem_demo::{mip_chain, Scene, TextureData};

const MB: f64 = 1e6;

fn check_invariants(scene: &Scene) {
    assert!(!scene.meshes.is_empty() && !scene.textures.is_empty() && !scene.draws.is_empty());
    for m in &scene.meshes {
        assert!(
            !m.indices.is_empty() && m.indices.len() % 3 == 0,
            "{}",
            m.name
        );
        assert!(
            m.indices.iter().all(|&i| (i as usize) < m.vertices.len()),
            "{}: index out of range",
            m.name
        );
        assert!(
            m.vertices.iter().all(|v| v
                .position
                .iter()
                .chain(&v.normal)
                .chain(&v.uv)
                .all(|f| f.is_finite())),
            "{}: non-finite vertex data",
            m.name
        );
    }
    for t in &scene.textures {
        check_chain(t);
    }
    for d in &scene.draws {
        assert!(d.mesh < scene.meshes.len() && d.texture < scene.textures.len());
    }
}

fn check_chain(t: &TextureData) {
    assert_eq!(
        t.mips.len() as u32,
        mip_level_count(t.width, t.height),
        "{}",
        t.name
    );
    for (level, data) in t.mips.iter().enumerate() {
        let (w, h) = t.mip_extent(level as u32);
        assert_eq!(data.len(), (w * h * 4) as usize, "{} level {level}", t.name);
    }
    assert_eq!(t.mip_extent(t.mip_levels() - 1), (1, 1));
}

#[test]
fn default_scene_at_full_scale_is_deterministic_and_a_few_hundred_mb() {
    let start = Instant::now();
    let a = Scene::generate_default(1.0);
    let first = start.elapsed();
    let b = Scene::generate_default(1.0);
    let total = a.total_bytes() as f64;
    let geometry = (a.vertex_bytes() + a.index_bytes()) as f64;
    eprintln!(
        "default scene at 1.0: {:.1} MB ({:.1} MB vertices, {:.1} MB indices, {:.1} MB textures; \
         {} meshes, {} textures, {} draws) generated in {:.2?}",
        total / MB,
        a.vertex_bytes() as f64 / MB,
        a.index_bytes() as f64 / MB,
        a.texture_bytes() as f64 / MB,
        a.meshes.len(),
        a.textures.len(),
        a.draws.len(),
        first
    );
    // Not assert_eq!: a failure would print hundreds of MB.
    assert!(a == b, "two generations at the same scale differ");
    check_invariants(&a);
    assert!(
        (20.0 * MB..100.0 * MB).contains(&geometry),
        "tens of MB of geometry, got {}",
        geometry / MB
    );
    assert!(
        (200.0 * MB..500.0 * MB).contains(&total),
        "a few hundred MB in all, got {}",
        total / MB
    );
    assert!(a.meshes.len() >= 5 && a.textures.len() >= 8);
    assert!(
        a.textures
            .iter()
            .filter(|t| t.width == 2048 && t.height == 2048)
            .count()
            >= 4
    );
    assert!(
        a.textures
            .iter()
            .any(|t| !t.width.is_power_of_two() && t.width != t.height),
        "one NPOT, non-square texture"
    );
    assert!(a
        .textures
        .iter()
        .all(|t| t.format == vk::Format::R8G8B8A8_SRGB));
}

#[test]
fn default_scene_at_small_scale_is_a_few_mb_with_the_same_draws() {
    let start = Instant::now();
    let small = Scene::generate_default(0.05);
    eprintln!(
        "default scene at 0.05: {:.2} MB in {:.2?}",
        small.total_bytes() as f64 / MB,
        start.elapsed()
    );
    check_invariants(&small);
    let total = small.total_bytes() as f64;
    assert!(
        (1.0 * MB..15.0 * MB).contains(&total),
        "a few MB, got {}",
        total / MB
    );
    assert!(small == Scene::generate_default(0.05));
    let tiny = Scene::generate_default(0.0001);
    check_invariants(&tiny);
    assert_eq!(tiny.draws, small.draws);
    // Out-of-range scales are clamped, not a panic.
    check_invariants(
        &Scene::generate_default(f32::NAN)
            .textures
            .first()
            .map(|_| Scene::generate_default(-3.0))
            .unwrap(),
    );
}

#[test]
fn every_textured_draw_is_in_front_of_the_camera() {
    let scene = Scene::generate_default(0.01);
    let vp = scene.view_proj(1.0);
    for draw in &scene.draws {
        // The draw's origin projects inside the clip volume.
        let o = [
            draw.transform[3][0],
            draw.transform[3][1],
            draw.transform[3][2],
            1.0,
        ];
        let clip: Vec<f32> = (0..4)
            .map(|r| (0..4).map(|c| vp[c][r] * o[c]).sum())
            .collect();
        assert!(clip[3] > 0.0, "behind the camera");
        let (x, y, z) = (clip[0] / clip[3], clip[1] / clip[3], clip[2] / clip[3]);
        assert!(
            x.abs() <= 1.0 && y.abs() <= 1.0 && (0.0..=1.0).contains(&z),
            "draw at {o:?} is off screen: {x} {y} {z}"
        );
    }
}

#[test]
fn mip_chain_sizes_for_square_npot_and_thin_images() {
    for (w, h, levels) in [
        (1, 1, 1),
        (2, 2, 2),
        (8, 8, 4),
        (5, 3, 3),
        (1366, 768, 11),
        (7, 1, 3),
        (1, 9, 4),
        (4, 16, 5),
    ] {
        let chain = mip_chain(w, h, &vec![0u8; (w * h * 4) as usize]);
        assert_eq!(chain.len() as u32, levels, "{w}x{h}");
        assert_eq!(mip_level_count(w, h), levels);
        for (level, data) in chain.iter().enumerate() {
            let (lw, lh) = mip_extent(w, h, level as u32);
            assert_eq!(data.len() as u32, lw * lh * 4, "{w}x{h} level {level}");
        }
        assert_eq!(chain.last().unwrap().len(), 4, "ends at 1x1");
    }
}

#[test]
fn mip_chain_averages_2x2_blocks_with_rounding() {
    // 4x2 image: left 2x2 block values 0, 10, 20, 31 (avg 15.25 -> 15),
    // right block all 200 except one 201 (avg 200.25 -> 200).
    let texels: [[u8; 4]; 8] = [
        [0, 0, 0, 255],
        [10, 2, 4, 255],
        [200, 100, 50, 0],
        [201, 100, 50, 0],
        [20, 4, 8, 255],
        [31, 6, 13, 255],
        [200, 100, 50, 0],
        [200, 100, 50, 0],
    ];
    let rgba: Vec<u8> = texels.iter().flatten().copied().collect();
    let chain = mip_chain(4, 2, &rgba);
    assert_eq!(chain[0], rgba, "level 0 is the input");
    assert_eq!(chain[1], vec![15, 3, 6, 255, 200, 100, 50, 0]);
    // 2x1 -> 1x1: (15 + 200) / 2 = 107.5 rounds to 108.
    assert_eq!(chain[2], vec![108, 52, 28, 128]);
}

#[test]
fn mip_chain_of_odd_sides_uses_every_texel() {
    // 3x1: texels 0, 90, 255 -> 1x1 averages all three: 115.
    let rgba = [0, 0, 0, 0, 90, 90, 90, 90, 255, 255, 255, 255];
    assert_eq!(mip_chain(3, 1, &rgba)[1], vec![115; 4]);
    // 5x5 constant image stays constant at every level.
    let chain = mip_chain(5, 5, &[77u8; 100]);
    assert!(chain.iter().all(|l| l.iter().all(|&v| v == 77)));
}

#[test]
#[should_panic(expected = "is not a 4x4 RGBA8 image")]
fn mip_chain_rejects_a_wrong_length() {
    let _ = mip_chain(4, 4, &[0u8; 10]);
}

#[test]
fn vertex_bytes_are_the_vertex_layout() {
    let v = mem_demo::Vertex {
        position: [1.0, 2.0, 3.0],
        normal: [0.0, 1.0, 0.0],
        uv: [0.5, 0.25],
    };
    let bytes = v.as_bytes();
    assert_eq!(bytes.len(), 32);
    assert_eq!(&bytes[0..4], &1.0f32.to_ne_bytes());
    assert_eq!(&bytes[24..28], &0.5f32.to_ne_bytes());
    let m = mem_demo::MeshData {
        name: "t".into(),
        vertices: vec![v; 3],
        indices: vec![0, 1, 2],
    };
    assert_eq!(m.vertex_bytes().len(), 96);
    assert_eq!(
        m.index_bytes(),
        &[0u32, 1, 2].map(u32::to_ne_bytes).concat()[..]
    );
    assert_eq!(m.byte_size(), 108);
}
