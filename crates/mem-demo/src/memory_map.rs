//! A picture of memory: one horizontal band per block (`VkDeviceMemory`) of
//! a [`mem_core::Allocator`], so fragmentation can be seen rather than read.
//!
//! Each band spans the block's bytes from left to right (every band has the
//! same width whatever the block's size). A narrow strip at the left names
//! the memory type by colour (white-ish for dedicated allocations).
//! Allocations are coloured by kind: the first word of their name (up to a
//! space, `:`, `/` or `.`; `"texture checker"` and `"texture:bricks"` are
//! both `texture`) hashed to a hue, with a small brightness change per full
//! name so that neighbours of one kind stay apart; unnamed allocations are
//! steel blue. The bytes an allocation holds beyond what was requested
//! (rounding to the minimum block) are drawn darker, each allocation
//! starts with a dark one-pixel separator (when it is at least 3 pixels
//! wide), and free space is dark grey. Bands are separated by the
//! near-black background.

use mem_core::stats::{BlockMap, RangeKind};

/// Height of one block's band, in pixels.
pub const BAND_HEIGHT: u32 = 20;
/// Background rows between bands (and above the first, below the last).
pub const BAND_GAP: u32 = 6;
/// Width of the memory-type strip at the left of each band.
const TYPE_STRIP: u32 = 8;
/// Background columns between the strip and the map.
const STRIP_GAP: u32 = 3;
/// Narrowest picture: the strip, its gap and some map.
const MIN_WIDTH: u32 = 64;

const BACKGROUND: [u8; 3] = [14, 14, 18];
const FREE: [u8; 3] = [62, 62, 66];

/// An RGBA8 picture, tightly packed, top row first.
#[derive(Clone, PartialEq, Eq)]
pub struct BlockMapImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 4` bytes.
    pub rgba: Vec<u8>,
}

impl std::fmt::Debug for BlockMapImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlockMapImage({}x{})", self.width, self.height)
    }
}

impl BlockMapImage {
    /// Writes the picture as PNG (see [`crate::save_png`]).
    ///
    /// # Errors
    ///
    /// [`crate::DemoError::WritePng`] when the file cannot be written.
    pub fn save_png(&self, path: impl AsRef<std::path::Path>) -> Result<(), crate::DemoError> {
        crate::save_png(path, self.width, self.height, &self.rgba)
    }

    /// The pixel at `(x, y)` as RGBA; `None` outside the picture.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 4]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = ((y * self.width + x) * 4) as usize;
        Some([
            self.rgba[i],
            self.rgba[i + 1],
            self.rgba[i + 2],
            self.rgba[i + 3],
        ])
    }

    fn fill(&mut self, x0: u32, x1: u32, y0: u32, y1: u32, rgb: [u8; 3]) {
        for y in y0..y1.min(self.height) {
            for x in x0..x1.min(self.width) {
                let i = ((y * self.width + x) * 4) as usize;
                self.rgba[i..i + 3].copy_from_slice(&rgb);
                self.rgba[i + 3] = 255;
            }
        }
    }
}

/// Draws every block of `maps` (e.g. [`mem_core::Allocator::block_maps`])
/// as a band of a picture `width` pixels wide (at least 64); the height is
/// `BAND_GAP + maps.len() * (BAND_HEIGHT + BAND_GAP)`.
pub fn render_block_map(maps: &[BlockMap], width: u32) -> BlockMapImage {
    let width = width.max(MIN_WIDTH);
    let height = BAND_GAP + maps.len() as u32 * (BAND_HEIGHT + BAND_GAP);
    let mut image = BlockMapImage {
        width,
        height,
        rgba: Vec::new(),
    };
    image.rgba = BACKGROUND
        .iter()
        .copied()
        .chain([255])
        .cycle()
        .take((width * height * 4) as usize)
        .collect();
    let map_x0 = TYPE_STRIP + STRIP_GAP;
    let map_w = u128::from(width - map_x0);
    for (i, block) in maps.iter().enumerate() {
        let y0 = BAND_GAP + i as u32 * (BAND_HEIGHT + BAND_GAP);
        let y1 = y0 + BAND_HEIGHT;
        let strip = if block.own_memory {
            [235, 235, 225]
        } else {
            hue_rgb(block.memory_type_index as f32 * 0.17 + 0.05, 0.35, 0.9)
        };
        image.fill(0, TYPE_STRIP, y0, y1, strip);
        image.fill(map_x0, width, y0, y1, FREE);
        let size = u128::from(block.size.max(1));
        let x_of = |offset: u64| map_x0 + (u128::from(offset).min(size) * map_w / size) as u32;
        for range in block
            .ranges
            .iter()
            .filter(|r| r.kind == RangeKind::Allocated)
        {
            let start = x_of(range.offset);
            let end = x_of(range.offset.saturating_add(range.size)).max(start + 1);
            let used_end = x_of(range.offset.saturating_add(range.requested.min(range.size)))
                .clamp(start + 1, end);
            let color = allocation_color(range.name.as_deref());
            image.fill(start, used_end, y0, y1, color);
            image.fill(used_end, end, y0, y1, scale_rgb(color, 0.5));
            if end - start >= 3 {
                image.fill(start, start + 1, y0, y1, scale_rgb(color, 0.3));
            }
        }
    }
    image
}

/// The colour of an allocation by its name's kind (see the module docs).
pub fn allocation_color(name: Option<&str>) -> [u8; 3] {
    let Some(name) = name else {
        return [70, 110, 160];
    };
    let kind = name.split([' ', ':', '/', '.']).next().unwrap_or(name);
    let hue = (fnv1a(kind.as_bytes()) % 3600) as f32 / 3600.0;
    let jitter = (fnv1a(name.as_bytes()) % 1000) as f32 / 1000.0;
    hue_rgb(hue, 0.65, 0.72 + 0.25 * jitter)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn scale_rgb(c: [u8; 3], k: f32) -> [u8; 3] {
    c.map(|v| (f32::from(v) * k) as u8)
}

/// HSV (hue in turns, wrapping) to RGB.
fn hue_rgb(hue: f32, saturation: f32, value: f32) -> [u8; 3] {
    let h = hue.rem_euclid(1.0) * 6.0;
    let c = value * saturation;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = value - c;
    [r, g, b].map(|v| ((v + m).clamp(0.0, 1.0) * 255.0 + 0.5) as u8)
}
