#[test]
fn probe() {
    let t = std::time::Instant::now();
    let v = vec![7u8; 2048 * 2048 * 4];
    let c = mem_demo::mip_chain(2048, 2048, &v);
    eprintln!("mip chain 2048: {:?} ({})", t.elapsed(), c.len());
    let t = std::time::Instant::now();
    let s = mem_demo::Scene::generate_default(1.0);
    eprintln!("gen 1.0: {:?} {}", t.elapsed(), s.total_bytes());
}
