//! Compiles the GLSL shaders in `shaders/` to SPIR-V with naga (GLSL in,
//! SPIR-V out) into `OUT_DIR`, where `src/render.rs` includes them with
//! `include_bytes!`. No SPIR-V binary is checked in: the GLSL is the source.

use std::path::PathBuf;

fn main() {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for (file, stage) in [
        ("mesh.vert", naga::ShaderStage::Vertex),
        ("mesh.frag", naga::ShaderStage::Fragment),
    ] {
        let path = format!("shaders/{file}");
        println!("cargo::rerun-if-changed={path}");
        let source =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
        let module = naga::front::glsl::Frontend::default()
            .parse(&naga::front::glsl::Options::from(stage), &source)
            .unwrap_or_else(|e| panic!("{}", e.emit_to_string_with_path(&source, &path)));
        let info = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            // Push constants ("immediates" in naga) are the only capability used.
            naga::valid::Capabilities::IMMEDIATES,
        )
        .validate(&module)
        .unwrap_or_else(|e| {
            panic!(
                "{path}: naga validation failed: {}",
                e.emit_to_string(&source)
            )
        });
        let options = naga::back::spv::Options {
            lang_version: (1, 0),
            // The GLSL is written for Vulkan's clip space already: no Y flip
            // (naga's default ADJUST_COORDINATE_SPACE exists for WGSL), and
            // no debug labels so the output does not depend on the profile.
            flags: naga::back::spv::WriterFlags::LABEL_VARYINGS,
            // Without a binding map, "fake" bindings are the GLSL's own
            // `set`/`binding` numbers: exactly what the pipeline layout uses.
            fake_missing_bindings: true,
            ..Default::default()
        };
        let pipeline = naga::back::spv::PipelineOptions {
            shader_stage: stage,
            entry_point: "main".to_owned(),
        };
        let words = naga::back::spv::write_vec(&module, &info, &options, Some(&pipeline))
            .unwrap_or_else(|e| panic!("{path}: SPIR-V generation failed: {e}"));
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        std::fs::write(out_dir.join(format!("{file}.spv")), bytes)
            .unwrap_or_else(|e| panic!("cannot write {file}.spv: {e}"));
    }
}
