//! The layout each subresource of an image is in after the work recorded so
//! far, so that an update of part of an image transitions from the layout the
//! image is actually in instead of discarding it from `UNDEFINED`.
//!
//! Every [`crate::Image`] carries an [`ImageLayouts`]. gpumem's staging belt
//! reads and writes it as it records uploads; the engine writes it when it
//! transitions the image itself ([`ImageLayouts::set_layout`]), and may read it
//! to know the layout an upload left. A subresource gpumem never wrote and
//! nobody set is `UNDEFINED` (its contents are undefined anyway).
//!
//! Invariant: the tracker holds one entry per (mip level, array layer) once
//! anything is set, level-major; before that it holds none and every
//! subresource reads as `UNDEFINED` with no queue family owning it.

use ash::vk;
use parking_lot::Mutex;

/// A box of an image's subresources: mip levels
/// `base_mip_level..base_mip_level + level_count` of array layers
/// `base_array_layer..base_array_layer + layer_count` (the aspect is the
/// image's own). Counts of [`Self::REMAINING`] reach to the last level or
/// layer, as `VK_REMAINING_MIP_LEVELS` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ImageSubresources {
    /// First mip level.
    pub base_mip_level: u32,
    /// Number of mip levels, or [`Self::REMAINING`].
    pub level_count: u32,
    /// First array layer (for a cube: face + 6 x cube index).
    pub base_array_layer: u32,
    /// Number of array layers, or [`Self::REMAINING`].
    pub layer_count: u32,
}

impl ImageSubresources {
    /// A count that reaches to the last level or layer.
    pub const REMAINING: u32 = u32::MAX;

    /// Every level of every layer.
    pub const fn all() -> Self {
        Self {
            base_mip_level: 0,
            level_count: Self::REMAINING,
            base_array_layer: 0,
            layer_count: Self::REMAINING,
        }
    }

    /// Mip level `level` of every layer.
    pub const fn level(level: u32) -> Self {
        Self {
            base_mip_level: level,
            level_count: 1,
            base_array_layer: 0,
            layer_count: Self::REMAINING,
        }
    }

    /// Every level of array layer `layer`.
    pub const fn layer(layer: u32) -> Self {
        Self {
            base_mip_level: 0,
            level_count: Self::REMAINING,
            base_array_layer: layer,
            layer_count: 1,
        }
    }

    /// The same box with [`Self::REMAINING`] counts made explicit for an
    /// image of `mip_levels` levels and `array_layers` layers; `None` when
    /// the box is empty or reaches past the image.
    pub fn resolve(self, mip_levels: u32, array_layers: u32) -> Option<ResolvedSubresources> {
        let count = |base: u32, count: u32, total: u32| -> Option<u32> {
            let n = if count == Self::REMAINING {
                total.checked_sub(base)?
            } else {
                count
            };
            (n > 0 && base.checked_add(n)? <= total).then_some(n)
        };
        Some(ResolvedSubresources {
            base_mip_level: self.base_mip_level,
            level_count: count(self.base_mip_level, self.level_count, mip_levels)?,
            base_array_layer: self.base_array_layer,
            layer_count: count(self.base_array_layer, self.layer_count, array_layers)?,
        })
    }
}

impl Default for ImageSubresources {
    fn default() -> Self {
        Self::all()
    }
}

/// An [`ImageSubresources`] checked against an image: non-empty, inside it,
/// explicit counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResolvedSubresources {
    /// First mip level.
    pub base_mip_level: u32,
    /// Number of mip levels (at least 1).
    pub level_count: u32,
    /// First array layer.
    pub base_array_layer: u32,
    /// Number of array layers (at least 1).
    pub layer_count: u32,
}

impl ResolvedSubresources {
    /// The mip levels.
    pub fn levels(&self) -> std::ops::Range<u32> {
        self.base_mip_level..self.base_mip_level + self.level_count
    }

    /// The array layers.
    pub fn layers(&self) -> std::ops::Range<u32> {
        self.base_array_layer..self.base_array_layer + self.layer_count
    }

    /// As a Vulkan range of `aspect`.
    pub fn to_vk(&self, aspect: vk::ImageAspectFlags) -> vk::ImageSubresourceRange {
        vk::ImageSubresourceRange {
            aspect_mask: aspect,
            base_mip_level: self.base_mip_level,
            level_count: self.level_count,
            base_array_layer: self.base_array_layer,
            layer_count: self.layer_count,
        }
    }
}

/// What the tracker knows of one subresource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubresourceState {
    /// Its layout after the work recorded so far.
    pub layout: vk::ImageLayout,
    /// The queue family an `EXCLUSIVE` image's contents were released to
    /// (the engine's, after a staging upload that transferred ownership);
    /// `QUEUE_FAMILY_IGNORED` when no transfer is pending or done.
    pub owner_family: u32,
}

impl SubresourceState {
    /// Never written: `UNDEFINED`, no owner.
    pub const UNDEFINED: Self = Self {
        layout: vk::ImageLayout::UNDEFINED,
        owner_family: vk::QUEUE_FAMILY_IGNORED,
    };
}

/// The layouts of one image's subresources (see the module docs).
#[derive(Debug)]
pub struct ImageLayouts {
    mip_levels: u32,
    array_layers: u32,
    /// Level-major; empty while every subresource is `UNDEFINED`.
    states: Mutex<Vec<SubresourceState>>,
}

impl ImageLayouts {
    /// A tracker for an image of `mip_levels` x `array_layers`
    /// subresources, all `UNDEFINED`.
    pub fn new(mip_levels: u32, array_layers: u32) -> Self {
        Self {
            mip_levels,
            array_layers,
            states: Mutex::new(Vec::new()),
        }
    }

    fn index(&self, level: u32, layer: u32) -> usize {
        level as usize * self.array_layers as usize + layer as usize
    }

    /// The state of (`level`, `layer`); `UNDEFINED` outside the image.
    pub fn state(&self, level: u32, layer: u32) -> SubresourceState {
        if level >= self.mip_levels || layer >= self.array_layers {
            return SubresourceState::UNDEFINED;
        }
        let states = self.states.lock();
        states
            .get(self.index(level, layer))
            .copied()
            .unwrap_or(SubresourceState::UNDEFINED)
    }

    /// The layout of (`level`, `layer`).
    pub fn layout(&self, level: u32, layer: u32) -> vk::ImageLayout {
        self.state(level, layer).layout
    }

    /// Records that `subresources` are now in `layout`: what the engine calls
    /// after it transitions the image itself, so that the next partial
    /// upload transitions from there. Which queue family owns them is left
    /// as it is. Parts of the box outside the image are ignored.
    pub fn set_layout(&self, subresources: ImageSubresources, layout: vk::ImageLayout) {
        self.update(subresources, |s| s.layout = layout);
    }

    /// Records `state` for `subresources` (parts outside the image ignored):
    /// what the staging belt calls as it records uploads. An engine that
    /// moves an image between queue families itself records the family
    /// that owns it here.
    pub fn set_state(&self, subresources: ImageSubresources, state: SubresourceState) {
        self.update(subresources, |s| *s = state);
    }

    fn update(&self, subresources: ImageSubresources, f: impl Fn(&mut SubresourceState)) {
        let clamp = |base: u32, count: u32, total: u32| {
            let start = base.min(total);
            let end = if count == ImageSubresources::REMAINING {
                total
            } else {
                base.saturating_add(count).min(total)
            };
            start..end
        };
        let levels = clamp(
            subresources.base_mip_level,
            subresources.level_count,
            self.mip_levels,
        );
        let layers = clamp(
            subresources.base_array_layer,
            subresources.layer_count,
            self.array_layers,
        );
        if levels.is_empty() || layers.is_empty() {
            return;
        }
        let mut states = self.states.lock();
        if states.is_empty() {
            states.resize(
                self.mip_levels as usize * self.array_layers as usize,
                SubresourceState::UNDEFINED,
            );
        }
        for level in levels {
            for layer in layers.clone() {
                let i = self.index(level, layer);
                f(&mut states[i]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_checks_the_box() {
        let all = ImageSubresources::all().resolve(7, 3).unwrap();
        assert_eq!((all.levels(), all.layers()), (0..7, 0..3));
        let l = ImageSubresources::level(6).resolve(7, 3).unwrap();
        assert_eq!((l.levels(), l.layers()), (6..7, 0..3));
        assert!(ImageSubresources::level(7).resolve(7, 3).is_none());
        assert!(ImageSubresources::layer(3).resolve(7, 3).is_none());
        let zero = ImageSubresources {
            level_count: 0,
            ..ImageSubresources::all()
        };
        assert!(zero.resolve(7, 3).is_none());
        let wrap = ImageSubresources {
            base_mip_level: u32::MAX - 1,
            level_count: 5,
            ..ImageSubresources::all()
        };
        assert!(wrap.resolve(7, 3).is_none());
    }

    #[test]
    fn set_and_read_back() {
        let t = ImageLayouts::new(4, 2);
        assert_eq!(t.layout(1, 1), vk::ImageLayout::UNDEFINED);
        t.set_layout(ImageSubresources::level(1), vk::ImageLayout::GENERAL);
        assert_eq!(t.layout(1, 0), vk::ImageLayout::GENERAL);
        assert_eq!(t.layout(1, 1), vk::ImageLayout::GENERAL);
        assert_eq!(t.layout(0, 0), vk::ImageLayout::UNDEFINED);
        t.set_layout(
            ImageSubresources::layer(0),
            vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
        );
        assert_eq!(t.layout(1, 0), vk::ImageLayout::TRANSFER_SRC_OPTIMAL);
        assert_eq!(t.layout(1, 1), vk::ImageLayout::GENERAL);
        assert_eq!(t.layout(9, 9), vk::ImageLayout::UNDEFINED);
        // The layout changes, the owner stays.
        t.set_state(
            ImageSubresources::level(3),
            SubresourceState {
                layout: vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                owner_family: 2,
            },
        );
        t.set_layout(ImageSubresources::all(), vk::ImageLayout::GENERAL);
        assert_eq!(
            t.state(3, 1),
            SubresourceState {
                layout: vk::ImageLayout::GENERAL,
                owner_family: 2
            }
        );
        assert_eq!(t.state(2, 1).owner_family, vk::QUEUE_FAMILY_IGNORED);
    }
}
