//! The built-in scene of [`Scene::generate_default`]: procedural meshes and
//! textures, deterministic (integer hashing, no RNG state shared between
//! jobs), generated in parallel.

use std::f32::consts::{PI, TAU};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use ash::vk;

use super::{mip_chain_owned, Draw, MeshData, Scene, TextureData, Vertex};
use crate::math::{self, Vec3};

/// Tessellation at scale 1.0, chosen for tens of MB of geometry.
const TERRAIN_QUADS: u32 = 768;
const SPHERE: (u32, u32) = (384, 192);
const TORUS: (u32, u32) = (384, 128);
const KNOT: (u32, u32) = (1024, 48);
const CUBE_QUADS: u32 = 128;
const CYLINDER: (u32, u32) = (256, 64);
/// Texture sides at scale 1.0.
const BIG: u32 = 2048;
const MEDIUM: u32 = 1024;
const NPOT: (u32, u32) = (1366, 768);

/// Terrain extent in world units (x, z) and its height amplitude.
const TERRAIN_SIZE: (f32, f32) = (19.0, 15.0);
const TERRAIN_Y: f32 = -1.15;
const TERRAIN_AMPLITUDE: f32 = 0.35;

pub(super) fn generate(scale: f32) -> Scene {
    let scale = if scale.is_nan() {
        1.0
    } else {
        scale.clamp(0.0001, 4.0)
    };
    let k = scale.sqrt();
    let seg = |n: u32, min: u32| ((n as f32 * k).round() as u32).max(min);
    let pow2_side = |n: u32| prev_power_of_two(((n as f32 * k).round() as u32).max(8));

    let texture_specs: Vec<TexSpec> = {
        let big = pow2_side(BIG);
        let medium = pow2_side(MEDIUM);
        let npot = (seg(NPOT.0, 3), seg(NPOT.1, 2));
        use Pattern::*;
        vec![
            TexSpec::new(
                "terrain-grass",
                big,
                big,
                Noise { freq: 24 },
                [0.16, 0.34, 0.10],
                [0.45, 0.58, 0.22],
                1,
            ),
            TexSpec::new(
                "checker-red",
                big,
                big,
                Checker { cells: 16 },
                [0.78, 0.12, 0.10],
                [0.95, 0.92, 0.86],
                2,
            ),
            TexSpec::new(
                "bricks",
                big,
                big,
                Bricks { rows: 24 },
                [0.62, 0.25, 0.16],
                [0.80, 0.78, 0.72],
                3,
            ),
            TexSpec::new(
                "marble",
                big,
                big,
                Marble,
                [0.92, 0.92, 0.94],
                [0.25, 0.27, 0.33],
                4,
            ),
            TexSpec::new(
                "tiles-blue",
                big,
                big,
                Tiles { cells: 12 },
                [0.12, 0.35, 0.75],
                [0.90, 0.92, 0.95],
                5,
            ),
            TexSpec::new(
                "rings-orange",
                big,
                big,
                Rings { bands: 14.0 },
                [0.95, 0.55, 0.12],
                [0.35, 0.12, 0.05],
                6,
            ),
            TexSpec::new(
                "dots-purple",
                big,
                big,
                Dots { cells: 20 },
                [0.42, 0.18, 0.60],
                [0.95, 0.85, 0.35],
                7,
            ),
            TexSpec::new(
                "stripes-yellow",
                big,
                big,
                Stripes { count: 12 },
                [0.95, 0.80, 0.15],
                [0.15, 0.15, 0.18],
                8,
            ),
            TexSpec::new(
                "gradient-sunset",
                medium,
                medium,
                Gradient,
                [0.98, 0.45, 0.25],
                [0.20, 0.25, 0.65],
                9,
            ),
            TexSpec::new(
                "checker-teal",
                medium,
                medium,
                Checker { cells: 48 },
                [0.05, 0.50, 0.50],
                [0.90, 0.95, 0.90],
                10,
            ),
            TexSpec::new(
                "sand",
                medium,
                medium,
                Noise { freq: 40 },
                [0.70, 0.58, 0.38],
                [0.92, 0.84, 0.62],
                11,
            ),
            TexSpec::new(
                "bricks-grey",
                medium,
                medium,
                Bricks { rows: 12 },
                [0.45, 0.46, 0.50],
                [0.20, 0.20, 0.22],
                12,
            ),
            TexSpec::new(
                "dots-green",
                medium,
                medium,
                Dots { cells: 8 },
                [0.10, 0.55, 0.25],
                [0.95, 0.95, 0.90],
                13,
            ),
            TexSpec::new(
                "tiles-warm",
                medium,
                medium,
                Tiles { cells: 6 },
                [0.75, 0.40, 0.20],
                [0.98, 0.90, 0.75],
                14,
            ),
            TexSpec::new(
                "gradient-npot",
                npot.0,
                npot.1,
                GradientGrid,
                [0.30, 0.85, 0.95],
                [0.85, 0.20, 0.55],
                15,
            ),
        ]
    };
    let mesh_specs = [
        MeshSpec::Terrain(seg(TERRAIN_QUADS, 8)),
        MeshSpec::Sphere(seg(SPHERE.0, 8), seg(SPHERE.1, 4)),
        MeshSpec::Torus(seg(TORUS.0, 8), seg(TORUS.1, 4)),
        MeshSpec::Knot(seg(KNOT.0, 16), seg(KNOT.1, 4)),
        MeshSpec::Cube(seg(CUBE_QUADS, 1)),
        MeshSpec::Cylinder(seg(CYLINDER.0, 8), seg(CYLINDER.1, 1)),
    ];

    // Textures first (the big jobs), then meshes; each job is a pure function
    // of its spec, so the result does not depend on scheduling.
    let jobs = texture_specs.len() + mesh_specs.len();
    let mut results = parallel_map(jobs, |i| {
        if let Some(spec) = texture_specs.get(i) {
            Item::Texture(spec.generate())
        } else {
            Item::Mesh(mesh_specs[i - texture_specs.len()].generate())
        }
    })
    .into_iter();
    let textures: Vec<TextureData> = results
        .by_ref()
        .take(texture_specs.len())
        .map(|item| match item {
            Item::Texture(t) => t,
            Item::Mesh(_) => unreachable!("texture jobs come first"),
        })
        .collect();
    let meshes: Vec<MeshData> = results
        .map(|item| match item {
            Item::Mesh(m) => m,
            Item::Texture(_) => unreachable!("mesh jobs come last"),
        })
        .collect();

    Scene {
        draws: default_draws(textures.len()),
        meshes,
        textures,
    }
}

/// The terrain (mesh 0, texture 0), then a 5x4 grid of the other meshes
/// above it, each turned a little and textured in turn.
fn default_draws(texture_count: usize) -> Vec<Draw> {
    let mut draws = vec![Draw {
        mesh: 0,
        texture: 0,
        transform: math::translation([0.0, TERRAIN_Y, 0.0]),
    }];
    for row in 0..4u32 {
        for col in 0..5u32 {
            let n = (row * 5 + col) as usize;
            let mesh = 1 + col as usize;
            let x = (col as f32 - 2.0) * 3.3;
            let z = (row as f32 - 1.5) * 3.1;
            let spin = math::rotation_y(0.35 + 0.9 * row as f32 + 0.55 * col as f32);
            // Tori and knots lie too flat seen from above: stand them up a bit.
            let tilt = match mesh {
                2 | 3 => math::rotation_x(0.9),
                _ => math::IDENTITY,
            };
            let transform = math::mul(&math::translation([x, 0.15, z]), &math::mul(&spin, &tilt));
            draws.push(Draw {
                mesh,
                texture: 1 + (n * 3 + row as usize) % (texture_count - 1),
                transform,
            });
        }
    }
    draws
}

enum Item {
    Texture(TextureData),
    Mesh(MeshData),
}

/// `f(0..n)` on up to `available_parallelism` threads, results in order.
fn parallel_map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .min(n)
        .max(1);
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<T>>> = (0..n).map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let value = f(i);
                *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
            });
        }
    });
    slots
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every job ran")
        })
        .collect()
}

fn prev_power_of_two(x: u32) -> u32 {
    1 << (31 - x.max(1).leading_zeros())
}

// ---------------------------------------------------------------- noise

/// lowbias32 (Chris Wellons): a cheap integer hash with good avalanche.
fn hash(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

fn hash2(x: u32, y: u32, seed: u32) -> u32 {
    hash(x ^ hash(y ^ hash(seed)))
}

/// Value noise on a 256x256 lattice of hashed values, smoothly
/// interpolated, wrapping with a chosen period so that a texture can repeat
/// seamlessly; fbm sums octaves.
struct Lattice {
    values: Vec<f32>,
}

impl Lattice {
    const SIZE: usize = 256;

    fn new(seed: u32) -> Self {
        let values = (0..Self::SIZE * Self::SIZE)
            .map(|i| {
                (hash2((i % Self::SIZE) as u32, (i / Self::SIZE) as u32, seed) >> 8) as f32
                    / (1 << 24) as f32
            })
            .collect();
        Self { values }
    }

    /// Noise at `(x, y)` in lattice units, periodic with `period` units.
    fn sample(&self, x: f32, y: f32, period: u32) -> f32 {
        let (xf, yf) = (x.floor(), y.floor());
        let (tx, ty) = (x - xf, y - yf);
        let (tx, ty) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
        let p = i64::from(period.max(1));
        let x0 = (xf as i64).rem_euclid(p);
        let y0 = (yf as i64).rem_euclid(p);
        let (x1, y1) = ((x0 + 1) % p, (y0 + 1) % p);
        let mask = Self::SIZE as i64 - 1;
        let v =
            |x: i64, y: i64| self.values[((y & mask) as usize) * Self::SIZE + (x & mask) as usize];
        let top = v(x0, y0) + (v(x1, y0) - v(x0, y0)) * tx;
        let bottom = v(x0, y1) + (v(x1, y1) - v(x0, y1)) * tx;
        top + (bottom - top) * ty
    }

    /// Octaves of noise, result in 0..1, periodic with `period` units.
    fn fbm(&self, x: f32, y: f32, octaves: u32, period: u32) -> f32 {
        let (mut sum, mut amp, mut norm) = (0.0, 1.0, 0.0);
        for o in 0..octaves {
            let f = (1u32 << o) as f32;
            // Integer offsets per octave keep the lattice origins apart
            // without breaking the period.
            let off = (o * 17) as f32;
            sum += amp * self.sample(x * f + off, y * f + off, period << o);
            norm += amp;
            amp *= 0.5;
        }
        sum / norm
    }
}

// ---------------------------------------------------------------- textures

#[derive(Clone, Copy, Debug)]
enum Pattern {
    Noise { freq: u32 },
    Checker { cells: u32 },
    Bricks { rows: u32 },
    Marble,
    Tiles { cells: u32 },
    Rings { bands: f32 },
    Dots { cells: u32 },
    Stripes { count: u32 },
    Gradient,
    GradientGrid,
}

impl Pattern {
    /// `(k, cap)`: the pattern repeats `t` times across the texture when
    /// `t` divides `k`; `cap` is the largest `t` that still looks right.
    fn periodicity(self) -> (u32, u32) {
        match self {
            Pattern::Noise { freq } => (freq, 4),
            Pattern::Checker { cells } => (cells / 2, 8),
            Pattern::Bricks { rows } => (rows / 2, 4),
            Pattern::Marble => (2, 2),
            Pattern::Tiles { cells } => (cells, 4),
            Pattern::Dots { cells } => (cells, 8),
            Pattern::Stripes { count } => (count, 4),
            Pattern::Rings { .. } | Pattern::Gradient | Pattern::GradientGrid => (1, 1),
        }
    }
}

/// How many times a pattern repeats across a `w` x `h` texture: the largest
/// power of two allowed by the pattern that divides both sides and leaves
/// tiles of at least 16 texels.
fn repeat_count(pattern: Pattern, w: u32, h: u32) -> u32 {
    let (k, cap) = pattern.periodicity();
    let mut t = 1;
    while t * 2 <= cap
        && k % (t * 2) == 0
        && w.is_multiple_of(t * 2)
        && h.is_multiple_of(t * 2)
        && w / (t * 2) >= 16
        && h / (t * 2) >= 16
    {
        t *= 2;
    }
    t
}

struct TexSpec {
    name: &'static str,
    width: u32,
    height: u32,
    pattern: Pattern,
    a: Vec3,
    b: Vec3,
    seed: u32,
}

impl TexSpec {
    fn new(
        name: &'static str,
        width: u32,
        height: u32,
        pattern: Pattern,
        a: Vec3,
        b: Vec3,
        seed: u32,
    ) -> Self {
        Self {
            name,
            width,
            height,
            pattern,
            a,
            b,
            seed,
        }
    }

    /// The pattern is evaluated on one tile only (1/t of each side; the
    /// patterns are periodic by construction) and the tile is repeated:
    /// per-texel evaluation dominated the generation time, 20x slower in
    /// debug builds, where the tests run. Then every texel's low two bits
    /// per colour channel are XORed with a row hash ^ column hash, invisible
    /// (at most 3/255) but making every region of the texture distinct, so
    /// that an upload that puts rows or tiles in the wrong place cannot pass
    /// a byte comparison by luck.
    fn generate(&self) -> TextureData {
        let (w, h) = (self.width as usize, self.height as usize);
        let t = repeat_count(self.pattern, self.width, self.height);
        let (tw, th) = (w / t as usize, h / t as usize);
        let tile = self.tile(tw, th, t);
        let mut pixels = vec![0u8; w * h * 4];
        for (y, row) in pixels.chunks_exact_mut(w * 4).enumerate() {
            let src = &tile[(y % th) * tw * 4..(y % th + 1) * tw * 4];
            for chunk in row.chunks_exact_mut(tw * 4) {
                chunk.copy_from_slice(src);
            }
        }
        let columns: Vec<u32> = (0..w as u32)
            .map(|x| hash(x ^ 0x5bd1_e995 ^ self.seed.wrapping_mul(0x9e37_79b9)))
            .collect();
        for (y, row) in pixels.chunks_exact_mut(w * 4).enumerate() {
            let row_hash = hash2(y as u32, 0x27d4_eb2f, self.seed);
            for (x, texel) in row.chunks_exact_mut(4).enumerate() {
                let s = row_hash ^ columns[x];
                texel[0] ^= (s & 3) as u8;
                texel[1] ^= ((s >> 2) & 3) as u8;
                texel[2] ^= ((s >> 4) & 3) as u8;
            }
        }
        TextureData {
            name: self.name.to_owned(),
            width: self.width,
            height: self.height,
            format: vk::Format::R8G8B8A8_SRGB,
            mips: mip_chain_owned(self.width, self.height, pixels),
        }
    }

    /// The top-left `tw` x `th` texels of the texture, with every hash and
    /// noise made periodic so that the tile repeats `t` times seamlessly.
    fn tile(&self, tw: usize, th: usize, t: u32) -> Vec<u8> {
        let lattice = Lattice::new(self.seed);
        let mut pixels = vec![0u8; tw * th * 4];
        let (a, b) = (self.a, self.b);
        let mix = |k: f32| -> Vec3 {
            [
                a[0] + (b[0] - a[0]) * k,
                a[1] + (b[1] - a[1]) * k,
                a[2] + (b[2] - a[2]) * k,
            ]
        };
        let (inv_w, inv_h) = (1.0 / self.width as f32, 1.0 / self.height as f32);
        for (y, row) in pixels.chunks_exact_mut(tw * 4).enumerate() {
            let v = (y as f32 + 0.5) * inv_h;
            for (x, texel) in row.chunks_exact_mut(4).enumerate() {
                let u = (x as f32 + 0.5) * inv_w;
                let color = match self.pattern {
                    Pattern::Noise { freq } => {
                        let f = freq as f32;
                        let n = lattice.fbm(u * f, v * f, 4, freq / t);
                        let (px, py) = (self.width / t, self.height / t);
                        let speck =
                            (hash2(x as u32 % px, y as u32 % py, self.seed) & 0xff) as f32 / 255.0;
                        shade(mix(n), 0.85 + 0.3 * speck)
                    }
                    Pattern::Checker { cells } => {
                        let c = ((u * cells as f32) as u32 + (v * cells as f32) as u32) & 1;
                        shade(
                            mix(c as f32),
                            0.92 + 0.08 * lattice.sample(u * 64.0, v * 64.0, 64 / t),
                        )
                    }
                    Pattern::Bricks { rows } => {
                        let fy = v * rows as f32;
                        let row_i = fy as u32;
                        let fx = u * (rows / 2) as f32 + if row_i & 1 == 1 { 0.5 } else { 0.0 };
                        let (bx, by) = (fx.fract(), fy.fract());
                        if bx < 0.04 || by < 0.08 {
                            b
                        } else {
                            let per_tile = (rows / 2 / t).max(1);
                            let tone =
                                (hash2(fx as u32 % per_tile, row_i % (rows / t).max(1), self.seed)
                                    & 0xff) as f32
                                    / 255.0;
                            shade(
                                a,
                                0.75 + 0.4 * tone
                                    + 0.1 * lattice.sample(u * 128.0, v * 128.0, 128 / t),
                            )
                        }
                    }
                    Pattern::Marble => {
                        let n = lattice.fbm(u * 6.0, v * 6.0, 4, 6 / t);
                        let k = 0.5 + 0.5 * ((u * 4.0 + v * 4.0 + n * 5.0) * PI).sin();
                        mix(k.powi(3))
                    }
                    Pattern::Tiles { cells } => {
                        let (fx, fy) = (u * cells as f32, v * cells as f32);
                        let (gx, gy) = (fx.fract(), fy.fract());
                        if gx < 0.05 || gy < 0.05 {
                            b
                        } else {
                            let per_tile = (cells / t).max(1);
                            let tone =
                                (hash2(fx as u32 % per_tile, fy as u32 % per_tile, self.seed)
                                    & 0xff) as f32
                                    / 255.0;
                            let edge = (gx.min(1.0 - gx).min(gy.min(1.0 - gy)) * 8.0).min(1.0);
                            shade(a, (0.7 + 0.5 * tone) * (0.75 + 0.25 * edge))
                        }
                    }
                    Pattern::Rings { bands } => {
                        let (dx, dy) = (u - 0.5, v - 0.5);
                        let d = (dx * dx + dy * dy).sqrt() * bands * 2.0;
                        let k = (d.fract() * 2.0 - 1.0).abs();
                        mix(k * k * (3.0 - 2.0 * k))
                    }
                    Pattern::Dots { cells } => {
                        let (fx, fy) = (u * cells as f32, v * cells as f32);
                        let (dx, dy) = (fx.fract() - 0.5, fy.fract() - 0.5);
                        if dx * dx + dy * dy < 0.32 * 0.32 {
                            shade(b, 1.0 - (dx * dx + dy * dy) * 2.5)
                        } else {
                            a
                        }
                    }
                    Pattern::Stripes { count } => {
                        let k = ((u + v) * count as f32).fract();
                        let n = lattice.sample(u * 32.0, v * 32.0, 32 / t);
                        shade(mix(if k < 0.5 { 0.0 } else { 1.0 }), 0.85 + 0.2 * n)
                    }
                    Pattern::Gradient => {
                        let c = mix(v);
                        let glow =
                            (1.0 - ((u - 0.5) * (u - 0.5) + (v - 0.8) * (v - 0.8)) * 4.0).max(0.0);
                        [c[0] + glow * 0.3, c[1] + glow * 0.25, c[2] + glow * 0.1]
                    }
                    Pattern::GradientGrid => {
                        let line = ((u * 16.0).fract() < 0.03) || ((v * 9.0).fract() < 0.05);
                        if line {
                            [0.08, 0.08, 0.1]
                        } else {
                            mix(u * 0.7 + v * 0.3)
                        }
                    }
                };
                texel[0] = to_u8(color[0]);
                texel[1] = to_u8(color[1]);
                texel[2] = to_u8(color[2]);
                texel[3] = 255;
            }
        }
        pixels
    }
}

fn to_u8(c: f32) -> u8 {
    (c.clamp(0.0, 1.0) * 255.0 + 0.5) as u8
}

fn shade(c: Vec3, k: f32) -> Vec3 {
    [c[0] * k, c[1] * k, c[2] * k]
}

// ---------------------------------------------------------------- meshes

enum MeshSpec {
    Terrain(u32),
    Sphere(u32, u32),
    Torus(u32, u32),
    Knot(u32, u32),
    Cube(u32),
    Cylinder(u32, u32),
}

impl MeshSpec {
    fn generate(&self) -> MeshData {
        let mut m = MeshData {
            name: String::new(),
            vertices: Vec::new(),
            indices: Vec::new(),
        };
        match *self {
            MeshSpec::Terrain(n) => {
                m.name = "terrain".into();
                terrain(&mut m, n);
            }
            MeshSpec::Sphere(segs, rings) => {
                m.name = "sphere".into();
                parametric(&mut m, segs, rings, |s, t| {
                    let (theta, phi) = (t * PI, s * TAU);
                    let n = [
                        theta.sin() * phi.cos(),
                        theta.cos(),
                        theta.sin() * phi.sin(),
                    ];
                    (math::scale(n, 1.0), n, [s * 2.0, t])
                });
            }
            MeshSpec::Torus(segs, sides) => {
                m.name = "torus".into();
                let (big, small) = (0.85, 0.35);
                parametric(&mut m, segs, sides, |s, t| {
                    let (u, v) = (s * TAU, t * TAU);
                    let n = [v.cos() * u.cos(), v.sin(), v.cos() * u.sin()];
                    let p = [
                        (big + small * v.cos()) * u.cos(),
                        small * v.sin(),
                        (big + small * v.cos()) * u.sin(),
                    ];
                    (p, n, [s * 4.0, t])
                });
            }
            MeshSpec::Knot(segs, sides) => {
                m.name = "torus-knot".into();
                knot(&mut m, segs, sides);
            }
            MeshSpec::Cube(n) => {
                m.name = "cube".into();
                cube(&mut m, n);
            }
            MeshSpec::Cylinder(segs, rows) => {
                m.name = "cylinder".into();
                cylinder(&mut m, segs, rows);
            }
        }
        m
    }
}

/// Triangles of a `(cols + 1) x (rows + 1)` vertex grid starting at `base`,
/// vertex (i, j) at `base + j * (cols + 1) + i`.
fn grid_indices(indices: &mut Vec<u32>, base: u32, cols: u32, rows: u32) {
    indices.reserve((cols * rows * 6) as usize);
    for j in 0..rows {
        for i in 0..cols {
            let a = base + j * (cols + 1) + i;
            let (b, c) = (a + 1, a + cols + 1);
            let d = c + 1;
            indices.extend_from_slice(&[a, c, b, b, c, d]);
        }
    }
}

/// A surface `f(s, t) -> (position, normal, uv)` over `s, t` in 0..=1.
fn parametric(
    m: &mut MeshData,
    cols: u32,
    rows: u32,
    f: impl Fn(f32, f32) -> (Vec3, Vec3, [f32; 2]),
) {
    let base = m.vertices.len() as u32;
    m.vertices.reserve(((cols + 1) * (rows + 1)) as usize);
    for j in 0..=rows {
        let t = j as f32 / rows as f32;
        for i in 0..=cols {
            let (position, normal, uv) = f(i as f32 / cols as f32, t);
            m.vertices.push(Vertex {
                position,
                normal,
                uv,
            });
        }
    }
    grid_indices(&mut m.indices, base, cols, rows);
}

fn terrain(m: &mut MeshData, n: u32) {
    let lattice = Lattice::new(0x7e55);
    let (sx, sz) = TERRAIN_SIZE;
    let stride = (n + 1) as usize;
    let heights: Vec<f32> = (0..stride * stride)
        .map(|k| {
            let (i, j) = (
                (k % stride) as f32 / n as f32,
                (k / stride) as f32 / n as f32,
            );
            (lattice.fbm(i * 5.0, j * 4.0, 4, 256) * 2.0 - 1.0) * TERRAIN_AMPLITUDE
        })
        .collect();
    let (dx, dz) = (sx / n as f32, sz / n as f32);
    let h = |i: usize, j: usize| heights[j.min(n as usize) * stride + i.min(n as usize)];
    m.vertices.reserve(stride * stride);
    for j in 0..stride {
        for i in 0..stride {
            let hx = (h(i + 1, j) - h(i.saturating_sub(1), j))
                / (dx * if i == 0 || i == n as usize { 1.0 } else { 2.0 });
            let hz = (h(i, j + 1) - h(i, j.saturating_sub(1)))
                / (dz * if j == 0 || j == n as usize { 1.0 } else { 2.0 });
            let (s, t) = (i as f32 / n as f32, j as f32 / n as f32);
            m.vertices.push(Vertex {
                position: [(s - 0.5) * sx, h(i, j), (t - 0.5) * sz],
                normal: math::normalize_or([-hx, 1.0, -hz], [0.0, 1.0, 0.0]),
                uv: [s * 6.0, t * 6.0],
            });
        }
    }
    grid_indices(&mut m.indices, 0, n, n);
}

fn knot(m: &mut MeshData, segs: u32, sides: u32) {
    // A (2, 3) torus knot.
    let curve = |t: f32| {
        let (p, q) = (2.0 * t, 3.0 * t);
        math::scale(
            [
                (2.0 + q.cos()) * p.cos(),
                q.sin(),
                (2.0 + q.cos()) * p.sin(),
            ],
            0.33,
        )
    };
    let radius = 0.16;
    parametric(m, segs, sides, |s, t| {
        let a = s * TAU;
        let e = 1e-3;
        let (c, c0, c1) = (curve(a), curve(a - e), curve(a + e));
        let tangent = math::normalize_or(math::sub(c1, c0), [1.0, 0.0, 0.0]);
        let bend = math::sub(math::add(c0, c1), math::scale(c, 2.0));
        let normal = math::normalize_or(
            math::sub(bend, math::scale(tangent, math::dot(bend, tangent))),
            math::normalize_or(math::cross(tangent, [0.0, 1.0, 0.0]), [0.0, 0.0, 1.0]),
        );
        let binormal = math::cross(tangent, normal);
        let (sv, cv) = (t * TAU).sin_cos();
        let n = math::add(math::scale(normal, cv), math::scale(binormal, sv));
        (math::add(c, math::scale(n, radius)), n, [s * 8.0, t])
    });
}

fn cube(m: &mut MeshData, n: u32) {
    let half = 0.8;
    // (normal, u axis, v axis), u x v = normal so each face winds outward.
    let faces: [(Vec3, Vec3, Vec3); 6] = [
        ([1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]),
        ([-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]),
        ([0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]),
        ([0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]),
        ([0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]),
        ([0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]),
    ];
    for (normal, u_axis, v_axis) in faces {
        parametric(m, n, n, |s, t| {
            let p = math::add(
                math::scale(normal, half),
                math::add(
                    math::scale(u_axis, (s * 2.0 - 1.0) * half),
                    math::scale(v_axis, (t * 2.0 - 1.0) * half),
                ),
            );
            (p, normal, [s, t])
        });
    }
}

fn cylinder(m: &mut MeshData, segs: u32, rows: u32) {
    let (radius, half_height) = (0.7, 0.9);
    parametric(m, segs, rows, |s, t| {
        let (sin, cos) = (s * TAU).sin_cos();
        (
            [radius * cos, (t * 2.0 - 1.0) * half_height, radius * sin],
            [cos, 0.0, sin],
            [s * 3.0, t],
        )
    });
    for (y, ny) in [(half_height, 1.0f32), (-half_height, -1.0)] {
        let center = m.vertices.len() as u32;
        m.vertices.push(Vertex {
            position: [0.0, y, 0.0],
            normal: [0.0, ny, 0.0],
            uv: [0.5, 0.5],
        });
        for i in 0..=segs {
            let (sin, cos) = (i as f32 / segs as f32 * TAU).sin_cos();
            m.vertices.push(Vertex {
                position: [radius * cos, y, radius * sin],
                normal: [0.0, ny, 0.0],
                uv: [0.5 + 0.5 * cos, 0.5 + 0.5 * sin],
            });
        }
        for i in 0..segs {
            let (a, b) = (center + 1 + i, center + 2 + i);
            if ny > 0.0 {
                m.indices.extend_from_slice(&[center, b, a]);
            } else {
                m.indices.extend_from_slice(&[center, a, b]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_map_keeps_order() {
        let v = parallel_map(100, |i| i * 2);
        assert_eq!(v, (0..100).map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn tiled_patterns_repeat_seamlessly() {
        // Evaluating the whole texture as one tile equals the repeated tile
        // (before the signature), for every periodic pattern.
        for (pattern, side) in [
            (Pattern::Noise { freq: 24 }, 256),
            (Pattern::Checker { cells: 16 }, 256),
            (Pattern::Bricks { rows: 24 }, 256),
            (Pattern::Marble, 128),
            (Pattern::Tiles { cells: 12 }, 256),
            (Pattern::Dots { cells: 20 }, 320),
            (Pattern::Stripes { count: 12 }, 256),
        ] {
            let spec = TexSpec::new(
                "t",
                side,
                side,
                pattern,
                [0.1, 0.2, 0.3],
                [0.9, 0.8, 0.7],
                5,
            );
            let t = repeat_count(pattern, side, side);
            assert!(t > 1, "{pattern:?} should repeat at {side}");
            let s = side as usize;
            let full = spec.tile(s, s, t);
            let tile = spec.tile(s / t as usize, s / t as usize, t);
            let ts = s / t as usize;
            for y in 0..s {
                for x in 0..s {
                    let (i, j) = ((y * s + x) * 4, ((y % ts) * ts + x % ts) * 4);
                    let (p, q) = (&full[i..i + 4], &tile[j..j + 4]);
                    // f32 rounding may move a channel by one step.
                    assert!(
                        p.iter().zip(q).all(|(a, b)| a.abs_diff(*b) <= 1),
                        "{pattern:?} at ({x},{y}): {p:?} vs {q:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn prev_power_of_two_rounds_down() {
        assert_eq!(prev_power_of_two(458), 256);
        assert_eq!(prev_power_of_two(2048), 2048);
        assert_eq!(prev_power_of_two(1), 1);
    }

    #[test]
    fn every_mesh_index_is_in_range() {
        let scene = generate(0.01);
        for m in &scene.meshes {
            assert!(
                !m.indices.is_empty() && m.indices.len() % 3 == 0,
                "{}",
                m.name
            );
            assert!(
                m.indices.iter().all(|&i| (i as usize) < m.vertices.len()),
                "{}",
                m.name
            );
        }
    }
}
