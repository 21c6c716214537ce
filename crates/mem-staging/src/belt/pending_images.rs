//! What the open batch knows of the images it writes: which subresources
//! it holds in `TRANSFER_DST_OPTIMAL` and the layout (and queue family) each
//! goes to when the batch ends.
//!
//! Invariants:
//! - a subresource is pending in at most one place, the open batch, and only
//!   from the end of the upload that wrote it until the batch closes; an
//!   upload that starts on a pending subresource takes it out (it is in
//!   `TRANSFER_DST_OPTIMAL` already, so the upload needs a write-after-write
//!   barrier and no transition) and puts it back with its own final layout
//!   when its copies are recorded;
//! - the batch's end transitions each pending subresource exactly once, so
//!   an image uploaded several times in one batch is transitioned once, from
//!   the layout it is in.

use ash::vk;
use mem_resources::ResolvedSubresources;

/// Where a subresource goes at the end of the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Final {
    /// The layout the upload asked for.
    pub layout: vk::ImageLayout,
    /// Release to the destination queue family (exclusive sharing, two
    /// families).
    pub release: bool,
}

/// The pending subresources of one image in the open batch.
pub(super) struct PendingImage {
    pub aspect: vk::ImageAspectFlags,
    array_layers: u32,
    /// Level-major, one entry per subresource of the image.
    finals: Vec<Option<Final>>,
}

impl PendingImage {
    pub fn new(aspect: vk::ImageAspectFlags, mip_levels: u32, array_layers: u32) -> Self {
        Self {
            aspect,
            array_layers,
            finals: vec![None; mip_levels as usize * array_layers as usize],
        }
    }

    fn index(&self, level: u32, layer: u32) -> usize {
        level as usize * self.array_layers as usize + layer as usize
    }

    /// Whether (level, layer) is pending.
    pub fn is_pending(&self, level: u32, layer: u32) -> bool {
        self.finals[self.index(level, layer)].is_some()
    }

    /// Takes (level, layer) out of the pending set; whether it was pending.
    pub fn take(&mut self, level: u32, layer: u32) -> bool {
        let i = self.index(level, layer);
        self.finals[i].take().is_some()
    }

    /// Marks every subresource of `range` pending with `f`.
    pub fn put(&mut self, range: &ResolvedSubresources, f: Final) {
        for level in range.levels() {
            for layer in range.layers() {
                let i = self.index(level, layer);
                self.finals[i] = Some(f);
            }
        }
    }

    /// The end-of-batch transitions, grouped into boxes.
    pub fn finals(&self) -> Vec<(ResolvedSubresources, Final)> {
        let levels = (self.finals.len() / self.array_layers.max(1) as usize) as u32;
        group_boxes(levels, self.array_layers, |level, layer| {
            self.finals[self.index(level, layer)]
        })
    }
}

/// Groups the subresources of a `levels` x `layers` image for which `f`
/// returns `Some(k)` into boxes of equal `k`: runs of consecutive layers per
/// level, extended over consecutive levels with the same runs. A whole image
/// with one value is one box.
pub(super) fn group_boxes<K: Copy + PartialEq>(
    levels: u32,
    layers: u32,
    f: impl Fn(u32, u32) -> Option<K>,
) -> Vec<(ResolvedSubresources, K)> {
    let mut out: Vec<(ResolvedSubresources, K)> = Vec::new();
    // The boxes that the previous level's runs opened, as indices into `out`.
    let mut open: Vec<usize> = Vec::new();
    let mut runs: Vec<(u32, u32, K)> = Vec::new();
    for level in 0..levels {
        runs.clear();
        let mut layer = 0;
        while layer < layers {
            let Some(k) = f(level, layer) else {
                layer += 1;
                continue;
            };
            let start = layer;
            while layer < layers && f(level, layer) == Some(k) {
                layer += 1;
            }
            runs.push((start, layer - start, k));
        }
        let continues = !open.is_empty()
            && open.len() == runs.len()
            && open.iter().zip(&runs).all(|(&i, &(base, count, k))| {
                let (b, v) = &out[i];
                b.base_mip_level + b.level_count == level
                    && b.base_array_layer == base
                    && b.layer_count == count
                    && *v == k
            });
        if continues {
            for &i in &open {
                out[i].0.level_count += 1;
            }
            continue;
        }
        open.clear();
        for &(base, count, k) in &runs {
            open.push(out.len());
            out.push((
                ResolvedSubresources {
                    base_mip_level: level,
                    level_count: 1,
                    base_array_layer: base,
                    layer_count: count,
                },
                k,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_image_is_one_box() {
        let boxes = group_boxes(10, 6, |_, _| Some(1));
        assert_eq!(boxes.len(), 1);
        let (b, _) = boxes[0];
        assert_eq!((b.levels(), b.layers()), (0..10, 0..6));
    }

    #[test]
    fn runs_split_by_value_and_gaps_and_merge_over_levels() {
        // Levels 0-1: layers 0-1 -> A, layer 3 -> B; level 2: layer 0 -> A.
        let f = |level: u32, layer: u32| match (level, layer) {
            (0..=1, 0..=1) => Some('A'),
            (0..=1, 3) => Some('B'),
            (2, 0) => Some('A'),
            _ => None,
        };
        let boxes = group_boxes(4, 4, f);
        let got: Vec<_> = boxes
            .iter()
            .map(|(b, k)| (b.levels(), b.layers(), *k))
            .collect();
        assert_eq!(
            got,
            vec![(0..2, 0..2, 'A'), (0..2, 3..4, 'B'), (2..3, 0..1, 'A')]
        );
        // Every marked subresource is in exactly one box.
        for level in 0..4 {
            for layer in 0..4 {
                let n = boxes
                    .iter()
                    .filter(|(b, _)| b.levels().contains(&level) && b.layers().contains(&layer))
                    .count();
                assert_eq!(n, usize::from(f(level, layer).is_some()));
            }
        }
    }

    #[test]
    fn pending_take_and_put() {
        let mut p = PendingImage::new(vk::ImageAspectFlags::COLOR, 3, 2);
        let f = Final {
            layout: vk::ImageLayout::GENERAL,
            release: false,
        };
        let all = ResolvedSubresources {
            base_mip_level: 0,
            level_count: 3,
            base_array_layer: 0,
            layer_count: 2,
        };
        p.put(&all, f);
        assert!(p.take(1, 1));
        assert!(!p.take(1, 1));
        assert_eq!(
            p.finals().len(),
            3,
            "level 0 whole, level 1 layer 0, level 2 whole"
        );
    }
}
