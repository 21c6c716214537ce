//! Placement simulations behind the allocator's design (no Vulkan, no
//! allocator: placement cores and plain models on seeded traces).
//!
//! 1. Small churn (256 B-64 KiB log-uniform, 20k live, 60 rounds of 1000
//!    random frees + allocations): how much memory TLSF needs when the
//!    blocks are tried in turn (one index per block) against one index over
//!    all blocks, and in one region.
//! 2. Mixed assets (1 KiB-32 MiB log-uniform, 1/4 of them 4 KiB-aligned,
//!    600 MiB live, 1500 rounds of 32 random frees + allocations back to
//!    600 MiB): the smallest single region each placement survives in, and
//!    what memory of its own for large requests changes.
//!
//! `cargo run --release -p mem-core --example placement_sim`
use std::collections::{BTreeMap, BTreeSet};

use clap::Parser;
use mem_core::tlsf::Tlsf;

const MIB: u64 = 1 << 20;

/// xorshift64*.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn log_uniform(&mut self, lo: f64, hi: f64) -> u64 {
        (lo.ln() + self.unit() * (hi.ln() - lo.ln())).exp() as u64
    }
}

/// A placement under test: allocate `(size, align)` or fail; free by token.
trait Placer {
    fn alloc(&mut self, size: u64, align: u64) -> Option<u64>;
    fn free(&mut self, token: u64);
    /// Bytes of regions/blocks it holds.
    fn committed(&self) -> u64;
}

/// TLSF over blocks of `block` bytes, added on demand. `pooled`: one index
/// over all blocks; otherwise one index per block, tried in turn from the
/// last one that served.
struct TlsfBlocks {
    block: u64,
    pooled: bool,
    indexes: Vec<Tlsf<()>>,
    hint: usize,
    live: BTreeMap<u64, (usize, u32, u32, u64)>,
    next: u64,
    /// Never add a block (a fixed single region).
    fixed: bool,
}

impl TlsfBlocks {
    fn new(block: u64, pooled: bool, fixed: bool) -> Self {
        let mut t = Self {
            block,
            pooled,
            indexes: Vec::new(),
            hint: 0,
            live: BTreeMap::new(),
            next: 0,
            fixed,
        };
        t.grow();
        t
    }
    fn grow(&mut self) {
        if self.pooled && !self.indexes.is_empty() {
            self.indexes[0].add_region(self.block).unwrap();
        } else {
            let mut t = Tlsf::new(256).unwrap();
            t.add_region(self.block).unwrap();
            self.indexes.push(t);
        }
    }
    fn try_alloc(&mut self, size: u64, align: u64) -> Option<(usize, u32, u32, u64)> {
        let n = self.indexes.len();
        for i in std::iter::once(self.hint).chain((0..n).filter(|&i| i != self.hint)) {
            if let Ok(a) = self.indexes[i].allocate(size, align, ()) {
                self.hint = i;
                return Some((i, a.region, a.handle, a.offset));
            }
        }
        None
    }
}

impl Placer for TlsfBlocks {
    fn alloc(&mut self, size: u64, align: u64) -> Option<u64> {
        let placed = match self.try_alloc(size, align) {
            Some(p) => p,
            None if !self.fixed => {
                self.grow();
                self.try_alloc(size, align).expect("a fresh block fits")
            }
            None => return None,
        };
        self.next += 1;
        self.live.insert(self.next, placed);
        Some(self.next)
    }
    fn free(&mut self, token: u64) {
        let (i, region, handle, offset) = self.live.remove(&token).unwrap();
        self.indexes[i].free(handle, region, offset).unwrap();
    }
    fn committed(&self) -> u64 {
        self.indexes
            .iter()
            .map(|t| t.regions().map(|r| t.region_size(r)).sum::<u64>())
            .sum()
    }
}

/// Best fit (smallest free range that fits) or address-ordered first fit
/// over one region, with coalescing: a plain model, O(log n) or O(n).
struct FreeList {
    size: u64,
    by_size: BTreeSet<(u64, u64)>,
    by_offset: BTreeMap<u64, u64>,
    address_ordered: bool,
    live: BTreeMap<u64, (u64, u64)>,
    next: u64,
}

impl FreeList {
    fn new(size: u64, address_ordered: bool) -> Self {
        let mut f = Self {
            size,
            by_size: BTreeSet::new(),
            by_offset: BTreeMap::new(),
            address_ordered,
            live: BTreeMap::new(),
            next: 0,
        };
        f.insert(0, size);
        f
    }
    fn insert(&mut self, offset: u64, size: u64) {
        self.by_size.insert((size, offset));
        self.by_offset.insert(offset, size);
    }
    fn remove(&mut self, offset: u64, size: u64) {
        self.by_size.remove(&(size, offset));
        self.by_offset.remove(&offset);
    }
}

impl Placer for FreeList {
    fn alloc(&mut self, size: u64, align: u64) -> Option<u64> {
        let size = size.next_multiple_of(256);
        let fits = |&(s, o): &(u64, u64)| o.next_multiple_of(align) + size <= o + s;
        let (s, o) = if self.address_ordered {
            self.by_offset.iter().map(|(&o, &s)| (s, o)).find(fits)?
        } else {
            self.by_size.range((size, 0)..).copied().find(fits)?
        };
        self.remove(o, s);
        let start = o.next_multiple_of(align);
        if start > o {
            self.insert(o, start - o);
        }
        if start + size < o + s {
            self.insert(start + size, o + s - start - size);
        }
        self.next += 1;
        self.live.insert(self.next, (start, size));
        Some(self.next)
    }
    fn free(&mut self, token: u64) {
        let (start, size) = self.live.remove(&token).unwrap();
        let (mut o, mut s) = (start, size);
        if let Some((&po, &ps)) = self.by_offset.range(..start).next_back() {
            if po + ps == start {
                self.remove(po, ps);
                o = po;
                s += ps;
            }
        }
        if let Some(&ns) = self.by_offset.get(&(start + size)) {
            self.remove(start + size, ns);
            s += ns;
        }
        self.insert(o, s);
    }
    fn committed(&self) -> u64 {
        self.size
    }
}

/// Small churn through `p`; returns (peak live, committed) or None if a
/// fixed placement ran out.
fn small_churn(p: &mut dyn Placer) -> Option<(u64, u64)> {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let mut live: Vec<(u64, u64)> = Vec::new();
    let (mut bytes, mut peak) = (0u64, 0u64);
    let alloc = |p: &mut dyn Placer, live: &mut Vec<(u64, u64)>, r: &mut Rng| {
        let size = r.log_uniform(256.0, 65536.0).next_multiple_of(64);
        let t = p.alloc(size, 256)?;
        live.push((t, size));
        Some(size)
    };
    while live.len() < 20_000 {
        bytes += alloc(p, &mut live, &mut r)?;
    }
    peak = peak.max(bytes);
    for _ in 0..60 {
        for _ in 0..1000 {
            let (t, s) = live.swap_remove((r.next() % live.len() as u64) as usize);
            p.free(t);
            bytes -= s;
        }
        for _ in 0..1000 {
            bytes += alloc(p, &mut live, &mut r)?;
        }
        peak = peak.max(bytes);
    }
    Some((peak, p.committed()))
}

/// Mixed assets through `p`, requests of at least `own` bytes aside (memory
/// of their own). Returns (peak live, peak bytes of own memory) or None.
fn mixed(p: &mut dyn Placer, own: u64) -> Option<(u64, u64)> {
    let mut r = Rng(0x0123_4567);
    let mut live: Vec<(Option<u64>, u64)> = Vec::new();
    let (mut bytes, mut peak, mut own_bytes, mut own_peak) = (0u64, 0u64, 0u64, 0u64);
    let target = 600 * MIB;
    let alloc = |p: &mut dyn Placer, live: &mut Vec<_>, own_bytes: &mut u64, r: &mut Rng| {
        let size = r.log_uniform(1024.0, 32.0 * MIB as f64);
        let (size, align) = if r.next() % 4 == 0 {
            (size.next_multiple_of(4096), 4096)
        } else {
            (size, 256)
        };
        if size >= own {
            *own_bytes += size;
            live.push((None, size));
        } else {
            live.push((Some(p.alloc(size, align)?), size));
        }
        Some(size)
    };
    while bytes < target {
        bytes += alloc(p, &mut live, &mut own_bytes, &mut r)?;
    }
    for _ in 0..1500 {
        for _ in 0..32 {
            let (t, s) = live.swap_remove((r.next() % live.len() as u64) as usize);
            match t {
                Some(t) => p.free(t),
                None => own_bytes -= s,
            }
            bytes -= s;
        }
        while bytes < target {
            bytes += alloc(p, &mut live, &mut own_bytes, &mut r)?;
        }
        peak = peak.max(bytes);
        own_peak = own_peak.max(own_bytes);
    }
    Some((peak, own_peak))
}

/// Smallest region (MiB) in which `run` never fails.
fn smallest(mut run: impl FnMut(u64) -> bool) -> u64 {
    let (mut lo, mut hi) = (1u64, 4096u64);
    while lo < hi {
        let m = (lo + hi) / 2;
        if run(m * MIB) {
            hi = m;
        } else {
            lo = m + 1;
        }
    }
    lo
}

fn pct(a: u64, b: u64) -> f64 {
    100.0 * a as f64 / b as f64
}

/// Replay the small-churn and mixed-assets traces through placement models
/// and print how much memory each placement needs.
#[derive(Parser)]
struct Args {}

fn main() {
    Args::parse();
    println!("## Small churn: committed for the peak live bytes\n");
    println!("| placement | block | committed MiB | peak live MiB | efficiency |");
    println!("|---|---:|---:|---:|---:|");
    for (name, pooled) in [
        ("TLSF per block, blocks tried in turn", false),
        ("one TLSF over all blocks", true),
    ] {
        for block in [4, 16, 64, 256] {
            let (peak, committed) =
                small_churn(&mut TlsfBlocks::new(block * MIB, pooled, false)).unwrap();
            println!(
                "| {name} | {block} MiB | {} | {:.1} | {:.1}% |",
                committed / MIB,
                peak as f64 / MIB as f64,
                pct(peak, committed)
            );
        }
    }
    let region = smallest(|size| small_churn(&mut TlsfBlocks::new(size, true, true)).is_some());
    let (peak, _) = small_churn(&mut TlsfBlocks::new(region * MIB, true, true)).unwrap();
    println!(
        "| TLSF, one region (smallest that never fails) | - | {region} | {:.1} | {:.1}% |",
        peak as f64 / MIB as f64,
        pct(peak, region * MIB)
    );

    println!("\n## Mixed assets: smallest single region that never fails\n");
    println!("| placement | memory of its own from | region MiB | own memory peak MiB | peak live MiB | efficiency |");
    println!("|---|---:|---:|---:|---:|---:|");
    let report = |name: &str, own: u64, mut make: Box<dyn FnMut(u64) -> Box<dyn Placer>>| {
        let region = smallest(|size| mixed(make(size).as_mut(), own).is_some());
        let (peak, own_peak) = mixed(make(region * MIB).as_mut(), own).unwrap();
        println!(
            "| {name} | {} | {region} | {} | {:.1} | {:.1}% |",
            if own == u64::MAX {
                "-".to_string()
            } else {
                format!("{} MiB", own / MIB)
            },
            own_peak / MIB,
            peak as f64 / MIB as f64,
            pct(peak, region * MIB + own_peak)
        );
    };
    report(
        "TLSF (good fit)",
        u64::MAX,
        Box::new(|s| Box::new(TlsfBlocks::new(s, true, true))),
    );
    report(
        "best fit",
        u64::MAX,
        Box::new(|s| Box::new(FreeList::new(s, false))),
    );
    report(
        "address-ordered first fit",
        u64::MAX,
        Box::new(|s| Box::new(FreeList::new(s, true))),
    );
    for own in [8, 4, 2, 1] {
        report(
            "TLSF",
            own * MIB,
            Box::new(|s| Box::new(TlsfBlocks::new(s, true, true))),
        );
    }
    println!("\n(efficiency = peak live / (region + peak of own memory); the two peaks need not coincide, so it is a lower bound)");
}
