//! Which queue family the belt copies on, and when an upload needs a
//! queue-family ownership transfer. Pure functions over queue family
//! properties, so they are tested against every device table.

#![deny(unsafe_code)]

use ash::vk;

/// The family a staging belt should copy on: a dedicated transfer family
/// (TRANSFER without GRAPHICS or COMPUTE) when the device has one, preferring
/// the finest `minImageTransferGranularity` (1x1x1 over 16x16x8) and then the
/// lowest index; otherwise the first family with GRAPHICS (which implies
/// transfer). Video and optical-flow families qualify only when nothing
/// plainer exists. `None` when no family can transfer.
pub fn pick_transfer_family(families: &[vk::QueueFamilyProperties]) -> Option<u32> {
    let special = vk::QueueFlags::VIDEO_DECODE_KHR
        | vk::QueueFlags::VIDEO_ENCODE_KHR
        | vk::QueueFlags::OPTICAL_FLOW_NV;
    let dedicated = |f: &vk::QueueFamilyProperties| {
        f.queue_count > 0
            && f.queue_flags.contains(vk::QueueFlags::TRANSFER)
            && !f
                .queue_flags
                .intersects(vk::QueueFlags::GRAPHICS | vk::QueueFlags::COMPUTE)
    };
    let granularity = |f: &vk::QueueFamilyProperties| {
        let g = f.min_image_transfer_granularity;
        // (0,0,0) means whole mips only: the coarsest.
        if g.width == 0 {
            u64::MAX
        } else {
            u64::from(g.width) * u64::from(g.height) * u64::from(g.depth)
        }
    };
    let best = families
        .iter()
        .enumerate()
        .filter(|(_, f)| dedicated(f))
        .min_by_key(|(i, f)| (f.queue_flags.intersects(special), granularity(f), *i));
    if let Some((i, _)) = best {
        return Some(i as u32);
    }
    pick_graphics_family(families)
}

/// The first family with GRAPHICS (the engine's usual destination family).
pub fn pick_graphics_family(families: &[vk::QueueFamilyProperties]) -> Option<u32> {
    families
        .iter()
        .position(|f| f.queue_count > 0 && f.queue_flags.contains(vk::QueueFlags::GRAPHICS))
        .map(|i| i as u32)
}

/// `(src, dst)` queue families of the release/acquire pair an upload needs,
/// or `None` when no ownership transfer is needed: same family, or
/// `CONCURRENT` sharing.
pub fn ownership_transfer(
    belt_family: u32,
    destination_family: u32,
    exclusive: bool,
) -> Option<(u32, u32)> {
    (exclusive && belt_family != destination_family).then_some((belt_family, destination_family))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mem_core::fake::DeviceTable;

    fn families(name: &str) -> Vec<vk::QueueFamilyProperties> {
        DeviceTable::builtin(name)
            .unwrap()
            .queue_families
            .iter()
            .map(|q| vk::QueueFamilyProperties {
                queue_flags: q.flags,
                queue_count: q.count,
                timestamp_valid_bits: q.timestamp_valid_bits,
                min_image_transfer_granularity: q.min_image_transfer_granularity,
            })
            .collect()
    }

    #[test]
    fn transfer_family_on_every_table() {
        // Expected values read off each table by hand.
        let expected = [
            ("adreno-750-android", 0, 0),
            ("amd-rx6600-no-rebar", 2, 0),
            ("amd-rx7800xt-radv-rebar", 0, 0),
            ("apple-m2-moltenvk", 0, 0),
            ("intel-adl-gt2-mesa-uma", 0, 0),
            ("intel-arc-a770-mesa", 0, 0),
            ("lavapipe-mesa-22.3", 0, 0),
            ("mali-g715-android", 0, 0),
            ("nvidia-h100", 1, 0),
            ("nvidia-rtx3060ti-linux-no-rebar", 1, 0),
        ];
        assert_eq!(expected.len(), mem_core::fake::DEVICE_TABLES.len());
        for (name, transfer, graphics) in expected {
            let f = families(name);
            assert_eq!(pick_transfer_family(&f), Some(transfer), "{name}");
            assert_eq!(pick_graphics_family(&f), Some(graphics), "{name}");
            let needs = ownership_transfer(transfer, graphics, true);
            assert_eq!(needs.is_some(), transfer != graphics, "{name}");
            assert_eq!(
                ownership_transfer(transfer, graphics, false),
                None,
                "{name}: concurrent"
            );
        }
    }

    #[test]
    fn no_family_no_choice() {
        assert_eq!(pick_transfer_family(&[]), None);
    }
}
