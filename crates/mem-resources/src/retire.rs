//! When a retired resource may be destroyed: [`TimelinePoint`]s, and the
//! [`RetirePoint`] that names one or several of them.
//!
//! A resource is retired to the point after which no GPU work uses it
//! ([`crate::ResourceManager::retire_buffer`]); [`crate::ResourceManager::collect`]
//! destroys it once the GPU has passed that point. Work on one queue, or on
//! one timeline, names one [`TimelinePoint`]. A resource that work on
//! several timelines may still use (a mesh the staging belt is uploading
//! and the engine's frames are drawing, say) names every one of them: it
//! is destroyed when all are reached, without a host wait first.

use ash::vk;
use smallvec::SmallVec;

/// A point on a timeline semaphore: the GPU has passed it once the
/// semaphore's counter is at least `value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimelinePoint {
    /// A semaphore of type `VK_SEMAPHORE_TYPE_TIMELINE`.
    pub semaphore: vk::Semaphore,
    /// The counter value after which the resource is unused.
    pub value: u64,
}

impl TimelinePoint {
    /// The point `value` of `semaphore`.
    pub fn new(semaphore: vk::Semaphore, value: u64) -> Self {
        Self { semaphore, value }
    }
}

/// The moment after which a retired resource is unused: every one of its
/// [`TimelinePoint`]s is reached.
///
/// Made from one point (`TimelinePoint` converts into it, so the
/// one-semaphore call stays `retire_buffer(buffer, point)`), from an array
/// or slice of points, or point by point with [`Self::and`]. A semaphore
/// named twice keeps the later of its values. No point at all means no
/// GPU work uses the resource: the next [`crate::ResourceManager::collect`]
/// destroys it.
///
/// ```
/// # use ash::vk::{self, Handle};
/// use mem_resources::{RetirePoint, TimelinePoint};
/// # let (frames, belt) = (vk::Semaphore::from_raw(1), vk::Semaphore::from_raw(2));
/// // Drawn by frame 41, uploaded by the staging belt's batch 7.
/// let after = RetirePoint::from(TimelinePoint::new(frames, 41)).and(TimelinePoint::new(belt, 7));
/// assert_eq!(after, RetirePoint::from([TimelinePoint::new(belt, 7), TimelinePoint::new(frames, 41)]));
/// assert!(after.is_reached(|s| if s == frames { 41 } else { 9 }));
/// assert!(!after.is_reached(|s| if s == frames { 40 } else { 9 }));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RetirePoint {
    /// At most one point per semaphore, ordered by the semaphore's handle
    /// (so equal sets compare equal).
    points: SmallVec<[TimelinePoint; 2]>,
}

impl RetirePoint {
    /// No point: the resource is unused by the GPU already.
    pub fn none() -> Self {
        Self::default()
    }

    /// Adds `point`: the resource is unused only once it is reached too.
    pub fn and(mut self, point: TimelinePoint) -> Self {
        self.add(point);
        self
    }

    fn add(&mut self, point: TimelinePoint) {
        let key = |p: &TimelinePoint| vk::Handle::as_raw(p.semaphore);
        match self.points.binary_search_by_key(&key(&point), key) {
            Ok(i) => self.points[i].value = self.points[i].value.max(point.value),
            Err(i) => self.points.insert(i, point),
        }
    }

    /// The points, one per semaphore, ordered by the semaphore's handle.
    pub fn points(&self) -> &[TimelinePoint] {
        &self.points
    }

    /// True when `counter(semaphore)` (the semaphore's current value) has
    /// reached every point.
    pub fn is_reached(&self, mut counter: impl FnMut(vk::Semaphore) -> u64) -> bool {
        self.points.iter().all(|p| counter(p.semaphore) >= p.value)
    }
}

impl From<TimelinePoint> for RetirePoint {
    fn from(point: TimelinePoint) -> Self {
        Self {
            points: smallvec::smallvec![point],
        }
    }
}

impl<const N: usize> From<[TimelinePoint; N]> for RetirePoint {
    fn from(points: [TimelinePoint; N]) -> Self {
        points.into_iter().collect()
    }
}

impl From<&[TimelinePoint]> for RetirePoint {
    fn from(points: &[TimelinePoint]) -> Self {
        points.iter().copied().collect()
    }
}

impl FromIterator<TimelinePoint> for RetirePoint {
    fn from_iter<I: IntoIterator<Item = TimelinePoint>>(iter: I) -> Self {
        let mut r = Self::default();
        for p in iter {
            r.add(p);
        }
        r
    }
}

impl std::fmt::Display for RetirePoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.points.is_empty() {
            return f.write_str("no timeline point");
        }
        for (i, p) in self.points.iter().enumerate() {
            if i > 0 {
                f.write_str(" and ")?;
            }
            write!(f, "{:?} reaches {}", p.semaphore, p.value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ash::vk::Handle;

    fn at(s: u64, value: u64) -> TimelinePoint {
        TimelinePoint::new(vk::Semaphore::from_raw(s), value)
    }

    #[test]
    fn one_point_per_semaphore_in_handle_order() {
        let r = RetirePoint::from([at(5, 1), at(2, 9), at(5, 4), at(5, 3)]);
        assert_eq!(r.points(), [at(2, 9), at(5, 4)]);
        assert_eq!(r, RetirePoint::from(at(5, 4)).and(at(2, 9)));
        assert_eq!(r, RetirePoint::from(&[at(2, 9), at(5, 4)][..]));
    }

    #[test]
    fn reached_only_when_every_point_is() {
        let r = RetirePoint::from([at(1, 10), at(2, 3)]);
        let counters = |a: u64, b: u64| move |s: vk::Semaphore| if s.as_raw() == 1 { a } else { b };
        assert!(!r.is_reached(counters(9, 3)));
        assert!(!r.is_reached(counters(10, 2)));
        assert!(r.is_reached(counters(10, 3)));
        assert!(r.is_reached(counters(11, 30)));
        assert!(RetirePoint::none().is_reached(|_| 0));
    }

    #[test]
    fn displays_every_point() {
        assert_eq!(RetirePoint::none().to_string(), "no timeline point");
        let s = RetirePoint::from([at(1, 10), at(2, 3)]).to_string();
        assert!(
            s.contains("reaches 10 and ") && s.ends_with("reaches 3"),
            "{s}"
        );
    }
}
