//! Seeded traces, generated once and replayed identically through every
//! allocator. A trace is a list of homogeneous batches (all allocations or all
//! frees) over numbered slots; the runner times whole batches.

use crate::peers::Req;

/// xorshift64* (seeded, deterministic).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }
    /// Log-uniform in [lo, hi].
    pub fn log_uniform(&mut self, lo: u64, hi: u64) -> u64 {
        let (a, b) = ((lo as f64).ln(), (hi as f64).ln());
        ((a + self.f64() * (b - a)).exp() as u64).clamp(lo, hi)
    }
}

pub fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

/// A buffer's requirements: 256-byte alignment, size a multiple of 64.
pub fn buffer(raw: u64) -> Req {
    Req {
        size: align_up(raw.max(1), 64),
        align: 256,
        optimal: false,
    }
}

/// An optimal image's requirements: 4 KiB alignment and size granularity.
pub fn image(raw: u64) -> Req {
    Req {
        size: align_up(raw.max(1), 4096),
        align: 4096,
        optimal: true,
    }
}

/// Bytes of a `side`x`side` RGBA8 image with its full mip chain: levels of at
/// least 4 KiB are page-rounded, the smaller ones (the mip tail) are packed
/// together and the tail is rounded to a page.
pub fn texture_bytes(side: u64) -> u64 {
    let (mut body, mut tail) = (0u64, 0u64);
    let mut s = side;
    loop {
        let bytes = s * s * 4;
        if bytes >= 4096 {
            body += align_up(bytes, 4096);
        } else {
            tail += bytes;
        }
        if s == 1 {
            break;
        }
        s /= 2;
    }
    body + align_up(tail, 4096)
}

pub enum Batch {
    Alloc(Vec<(u32, Req)>),
    Free(Vec<u32>),
}

pub struct Trace {
    pub name: String,
    pub description: String,
    /// The first pass, timed as a whole.
    pub warm: Vec<Batch>,
    /// The steady state, timed per batch.
    pub steady: Vec<Batch>,
    pub slots: usize,
    /// Operations in the first pass.
    pub warm_ops: usize,
    pub peak_live_requested: u64,
    pub peak_live_count: usize,
    pub steady_allocs: usize,
    pub steady_frees: usize,
}

/// Simulates the live set while generating batches.
struct Builder {
    rng: Rng,
    live: Vec<u32>,
    /// Position of each slot in `live` (for frees by slot).
    pos: Vec<u32>,
    free_slots: Vec<u32>,
    size: Vec<u64>,
    live_bytes: u64,
    peak_bytes: u64,
    peak_count: usize,
}

impl Builder {
    fn new(seed: u64) -> Self {
        Self {
            rng: Rng::new(seed),
            live: Vec::new(),
            pos: Vec::new(),
            free_slots: Vec::new(),
            size: Vec::new(),
            live_bytes: 0,
            peak_bytes: 0,
            peak_count: 0,
        }
    }

    fn alloc(&mut self, r: Req, batch: &mut Vec<(u32, Req)>) -> u32 {
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.size.push(0);
            self.pos.push(0);
            (self.size.len() - 1) as u32
        });
        self.size[slot as usize] = r.size;
        self.pos[slot as usize] = self.live.len() as u32;
        self.live.push(slot);
        self.live_bytes += r.size;
        self.peak_bytes = self.peak_bytes.max(self.live_bytes);
        self.peak_count = self.peak_count.max(self.live.len());
        batch.push((slot, r));
        slot
    }

    fn free_slot(&mut self, slot: u32, batch: &mut Vec<u32>) {
        let p = self.pos[slot as usize] as usize;
        let last = *self.live.last().expect("live");
        self.live.swap_remove(p);
        if last != slot {
            self.pos[last as usize] = p as u32;
        }
        self.live_bytes -= self.size[slot as usize];
        self.free_slots.push(slot);
        batch.push(slot);
    }

    fn free_random(&mut self, batch: &mut Vec<u32>) {
        let i = self.rng.below(self.live.len());
        let slot = self.live[i];
        self.free_slot(slot, batch);
    }

    fn finish(
        self,
        name: &str,
        description: String,
        warm: Vec<Batch>,
        steady: Vec<Batch>,
    ) -> Trace {
        let steady_allocs = steady
            .iter()
            .map(|b| if let Batch::Alloc(v) = b { v.len() } else { 0 })
            .sum();
        let steady_frees = steady
            .iter()
            .map(|b| if let Batch::Free(v) = b { v.len() } else { 0 })
            .sum();
        let warm_ops = warm
            .iter()
            .map(|b| match b {
                Batch::Alloc(v) => v.len(),
                Batch::Free(v) => v.len(),
            })
            .sum();
        Trace {
            warm_ops,
            name: name.into(),
            description,
            warm,
            steady,
            slots: self.size.len(),
            peak_live_requested: self.peak_bytes,
            peak_live_count: self.peak_count,
            steady_allocs,
            steady_frees,
        }
    }
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// Count-targeted churn: warm up to `live` allocations, then `rounds` rounds
/// of `k` random frees followed by `k` allocations.
pub fn churn(
    name: &str,
    seed: u64,
    live: usize,
    rounds: usize,
    k: usize,
    mut req: impl FnMut(&mut Rng) -> Req,
    description: String,
) -> Trace {
    let mut b = Builder::new(seed);
    let mut w = Vec::with_capacity(live);
    for _ in 0..live {
        let r = req(&mut b.rng);
        b.alloc(r, &mut w);
    }
    let mut steady = Vec::with_capacity(rounds * 2);
    for _ in 0..rounds {
        let mut f = Vec::with_capacity(k);
        for _ in 0..k {
            b.free_random(&mut f);
        }
        let mut a = Vec::with_capacity(k);
        for _ in 0..k {
            let r = req(&mut b.rng);
            b.alloc(r, &mut a);
        }
        steady.push(Batch::Free(f));
        steady.push(Batch::Alloc(a));
    }
    b.finish(name, description, vec![Batch::Alloc(w)], steady)
}

/// Byte-targeted churn: warm up until `target` bytes are live, then `rounds`
/// rounds of `k` random frees followed by allocations until `target` bytes
/// are live again.
fn byte_churn(
    name: &str,
    seed: u64,
    target: u64,
    rounds: usize,
    k: usize,
    mut req: impl FnMut(&mut Rng) -> Req,
    description: String,
) -> Trace {
    let mut b = Builder::new(seed);
    let mut w = Vec::new();
    while b.live_bytes < target {
        let r = req(&mut b.rng);
        b.alloc(r, &mut w);
    }
    let mut steady = Vec::with_capacity(rounds * 2);
    for _ in 0..rounds {
        let mut f = Vec::with_capacity(k);
        for _ in 0..k.min(b.live.len()) {
            b.free_random(&mut f);
        }
        let mut a = Vec::with_capacity(k);
        while b.live_bytes < target {
            let r = req(&mut b.rng);
            b.alloc(r, &mut a);
        }
        steady.push(Batch::Free(f));
        steady.push(Batch::Alloc(a));
    }
    b.finish(name, description, vec![Batch::Alloc(w)], steady)
}

/// The six traces of the peer comparison. `scale` = 1 for the full run,
/// 10 for `--quick`.
pub fn peer_traces(scale: usize) -> Vec<Trace> {
    let s = scale as u64;
    let mut v = Vec::new();

    let live = 20_000 / scale;
    let rounds = 60 / scale.min(6);
    v.push(churn(
        "small churn",
        0x5EED_0001,
        live,
        rounds,
        1000.min(live / 10),
        |r| buffer(r.log_uniform(256, 64 * KIB)),
        format!(
            "buffers 256 B-64 KiB log-uniform (align 256, size rounded to 64 B); warm up to {live} live, then \
             {rounds} rounds of {k} random frees + {k} allocations",
            k = 1000.min(live / 10)
        ),
    ));

    let target = 600 * MIB / s;
    let rounds = 1500 / scale;
    v.push(byte_churn(
        "mixed assets",
        0x5EED_0002,
        target,
        rounds,
        32,
        |r| {
            let raw = r.log_uniform(KIB, 32 * MIB);
            if r.below(4) == 0 {
                image(raw)
            } else {
                buffer(raw)
            }
        },
        format!(
            "1 KiB-32 MiB log-uniform, 3/4 buffers (align 256) and 1/4 optimal images (align/size 4 KiB); \
             warm up to {} MiB live, then {rounds} rounds of 32 random frees + allocations back to that level",
            target / MIB
        ),
    ));

    let target = 500 * MIB / s;
    let rounds = 1500 / scale;
    v.push(byte_churn(
        "textures",
        0x5EED_0003,
        target,
        rounds,
        8,
        |r| {
            let side = 64u64 << r.below(7); // 64..4096
            image(texture_bytes(side))
        },
        format!(
            "square RGBA8 images 64..4096 (side uniform over the 7 powers of two) with full mip chains \
             (levels page-rounded, mip tail packed), optimal, align 4 KiB; warm up to {} MiB live, then \
             {rounds} rounds of 8 random frees + allocations back to that level",
            target / MIB
        ),
    ));

    let frames = 500 / scale;
    let per = 200;
    let mut b = Builder::new(0x5EED_0004);
    let frame = |b: &mut Builder| {
        let mut a = Vec::with_capacity(per);
        for _ in 0..per {
            let r = buffer(b.rng.log_uniform(KIB, 256 * KIB));
            b.alloc(r, &mut a);
        }
        let mut f = Vec::with_capacity(per);
        let slots: Vec<u32> = a.iter().map(|&(s, _)| s).collect();
        for s in slots {
            b.free_slot(s, &mut f);
        }
        [Batch::Alloc(a), Batch::Free(f)]
    };
    let warm: Vec<Batch> = frame(&mut b).into();
    let mut steady = Vec::new();
    for _ in 1..frames {
        steady.extend(frame(&mut b));
    }
    v.push(b.finish(
        "per-frame transients",
        format!(
            "{frames} frames, each allocating {per} buffers 1-256 KiB log-uniform then freeing them all in \
             allocation order; first pass = frame 0"
        ),
        warm,
        steady,
    ));

    // A level load, then streaming: textures of 1-64 MiB (page-rounded
    // optimal images) loaded up to the level's budget, then rounds in which
    // the camera moves on: a few random textures leave and new ones stream
    // in until the budget is full again.
    let target = 768 * MIB / s;
    let rounds = 2000 / scale;
    v.push(byte_churn(
        "level + streaming",
        0x5EED_0005,
        target,
        rounds,
        4,
        |r| image(r.log_uniform(MIB, 64 * MIB)),
        format!(
            "level load of optimal images 1-64 MiB log-uniform (align/size 4 KiB) up to {} MiB live, then \
             {rounds} streaming rounds of 4 random frees + loads back to that level",
            target / MIB
        ),
    ));

    // A long random churn of mid-size and large buffers.
    let target = 512 * MIB / s;
    let rounds = 3000 / scale;
    v.push(byte_churn(
        "large churn",
        0x5EED_0006,
        target,
        rounds,
        16,
        |r| buffer(r.log_uniform(64 * KIB, 16 * MIB)),
        format!(
            "buffers 64 KiB-16 MiB log-uniform (align 256); warm up to {} MiB live, then {rounds} rounds of \
             16 random frees + allocations back to that level",
            target / MIB
        ),
    ));
    v
}

/// The scale sweep's trace: `live` allocations of 256 B-1 KiB, then about
/// `ops` steady-state allocations (and as many frees) in rounds of
/// `min(1000, live/10)`.
pub fn scale_trace(live: usize, ops: usize, seed: u64) -> Trace {
    let k = (live / 10).clamp(1, 1000);
    let rounds = (ops / k).max(1);
    churn(
        &format!("{live} live"),
        seed,
        live,
        rounds,
        k,
        |r| buffer(r.log_uniform(256, KIB)),
        format!("buffers 256 B-1 KiB log-uniform; {live} live; {rounds} rounds of {k} frees + {k} allocations"),
    )
}
