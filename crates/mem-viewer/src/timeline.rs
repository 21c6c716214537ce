//! [`Timeline`]: committed and live bytes sampled while the application runs,
//! drawn by the report as a chart.

use std::time::Instant;

/// One point of a [`Timeline`].
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct TimelineSample {
    /// Seconds since the timeline started (or the time given to
    /// [`Timeline::push`]).
    pub seconds: f64,
    /// Bytes of `VkDeviceMemory` committed (`TotalStats::committed_bytes`).
    pub committed_bytes: u64,
    /// Bytes held by live allocations (`TotalStats::requested_bytes`, or
    /// `allocated_bytes` to count the rounding as live).
    pub live_bytes: u64,
}

/// Committed and live bytes over time, bounded in memory.
///
/// The application samples its allocator while it runs, once a frame or
/// after each step of a load:
///
/// ```
/// use mem_viewer::Timeline;
/// let mut timeline = Timeline::new();
/// for frame in 0..3u64 {
///     // let s = allocator.stats().total;
///     // timeline.sample(s.committed_bytes, s.requested_bytes);
///     timeline.sample(64 << 20, (frame + 1) << 20);
/// }
/// assert_eq!(timeline.len(), 3);
/// ```
///
/// It keeps at most [`Self::max_samples`] points. When full, neighbouring
/// points are merged in pairs and later samples are merged in twos, fours,
/// ... as they come, so a run of any length keeps an even resolution. A
/// merged point has the time of its first sample and the largest committed
/// and live bytes of its samples: the chart shows every peak.
#[derive(Clone, Debug)]
pub struct Timeline {
    start: Instant,
    max_samples: usize,
    samples: Vec<TimelineSample>,
    /// How many samples each new point merges (a power of two).
    stride: u64,
    /// The point being merged, and how many samples it holds so far.
    pending: Option<(TimelineSample, u64)>,
    marks: Vec<(f64, String)>,
}

impl Default for Timeline {
    fn default() -> Self {
        Self::new()
    }
}

impl Timeline {
    /// Points kept by [`Self::new`]: about one per horizontal pixel of a
    /// 4K screen.
    pub const DEFAULT_MAX_SAMPLES: usize = 4096;

    /// An empty timeline whose clock ([`Self::sample`]) starts now, keeping
    /// at most [`Self::DEFAULT_MAX_SAMPLES`] points.
    pub fn new() -> Self {
        Self::with_max_samples(Self::DEFAULT_MAX_SAMPLES)
    }

    /// An empty timeline keeping at most `max_samples` points (at least 2;
    /// a smaller value is raised to 2).
    pub fn with_max_samples(max_samples: usize) -> Self {
        Self {
            start: Instant::now(),
            max_samples: max_samples.max(2),
            samples: Vec::new(),
            stride: 1,
            pending: None,
            marks: Vec::new(),
        }
    }

    /// Marks: moments the chart labels (a level loaded, a dump taken).
    /// At most this many are kept; later ones are dropped.
    pub const MAX_MARKS: usize = 64;

    /// Labels the time elapsed since the timeline was created (drawn as a
    /// vertical line on the chart).
    pub fn mark(&mut self, label: impl Into<String>) {
        let seconds = self.start.elapsed().as_secs_f64();
        self.mark_at(seconds, label);
    }

    /// Labels `seconds` on [`Self::push`]'s clock.
    pub fn mark_at(&mut self, seconds: f64, label: impl Into<String>) {
        if self.marks.len() < Self::MAX_MARKS {
            self.marks.push((seconds, label.into()));
        }
    }

    /// The marks, in the order made: (seconds, label).
    pub fn marks(&self) -> &[(f64, String)] {
        &self.marks
    }

    /// The most points kept.
    pub fn max_samples(&self) -> usize {
        self.max_samples
    }

    /// Records `committed` and `live` bytes at the time elapsed since the
    /// timeline was created.
    pub fn sample(&mut self, committed: u64, live: u64) {
        let seconds = self.start.elapsed().as_secs_f64();
        self.push(seconds, committed, live);
    }

    /// Records `committed` and `live` bytes at `seconds` (any clock the
    /// application keeps: frame time, simulated time). Times should not
    /// decrease; the chart draws points in the order given.
    pub fn push(&mut self, seconds: f64, committed: u64, live: u64) {
        let sample = TimelineSample {
            seconds,
            committed_bytes: committed,
            live_bytes: live,
        };
        let (merged, count) = match self.pending.take() {
            Some((p, n)) => (merge(p, sample), n + 1),
            None => (sample, 1),
        };
        if count < self.stride {
            self.pending = Some((merged, count));
            return;
        }
        if self.samples.len() == self.max_samples {
            self.samples = self
                .samples
                .chunks(2)
                .map(|pair| pair.iter().copied().reduce(merge).expect("chunk"))
                .collect();
            self.stride *= 2;
        }
        self.samples.push(merged);
    }

    /// The points kept, oldest first, including the one still merging.
    pub fn samples(&self) -> impl Iterator<Item = TimelineSample> + '_ {
        self.samples
            .iter()
            .copied()
            .chain(self.pending.map(|(p, _)| p))
    }

    /// Number of points [`Self::samples`] yields.
    pub fn len(&self) -> usize {
        self.samples.len() + usize::from(self.pending.is_some())
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The JSON the page reads: `{"samples": [[seconds, committed, live],
    /// ...], "marks": [[seconds, label], ...]}`.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let finite = |s: f64| if s.is_finite() { s } else { 0.0 };
        let samples: Vec<serde_json::Value> = self
            .samples()
            .map(|s| serde_json::json!([finite(s.seconds), s.committed_bytes, s.live_bytes]))
            .collect();
        let marks: Vec<serde_json::Value> = self
            .marks
            .iter()
            .map(|(s, label)| serde_json::json!([finite(*s), label]))
            .collect();
        serde_json::json!({ "samples": samples, "marks": marks })
    }
}

fn merge(a: TimelineSample, b: TimelineSample) -> TimelineSample {
    TimelineSample {
        seconds: a.seconds,
        committed_bytes: a.committed_bytes.max(b.committed_bytes),
        live_bytes: a.live_bytes.max(b.live_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_sample_until_full() {
        let mut t = Timeline::with_max_samples(8);
        for i in 0..8u64 {
            t.push(i as f64, i * 10, i);
        }
        let s: Vec<_> = t.samples().collect();
        assert_eq!(s.len(), 8);
        assert_eq!(s[3].committed_bytes, 30);
    }

    #[test]
    fn stays_bounded_and_keeps_peaks() {
        let mut t = Timeline::with_max_samples(16);
        for i in 0..10_000u64 {
            // One spike in the middle of the run.
            let committed = if i == 5_001 { 1 << 40 } else { i };
            t.push(i as f64, committed, i / 2);
        }
        assert!(t.len() <= 17, "{}", t.len());
        assert!(t.len() >= 8, "{}", t.len());
        let s: Vec<_> = t.samples().collect();
        assert!(s.iter().any(|p| p.committed_bytes == 1 << 40), "peak kept");
        assert!(s.windows(2).all(|w| w[0].seconds <= w[1].seconds));
        assert_eq!(s[0].seconds, 0.0);
        // The last point covers the last sample.
        assert_eq!(s.last().unwrap().live_bytes, 9_999 / 2);
    }

    #[test]
    fn at_least_two_points() {
        let mut t = Timeline::with_max_samples(0);
        assert_eq!(t.max_samples(), 2);
        for i in 0..5 {
            t.push(f64::from(i), 1, 1);
        }
        assert!(t.len() <= 3);
    }

    #[test]
    fn json_shape() {
        let mut t = Timeline::new();
        t.push(0.5, 2, 1);
        t.push(f64::NAN, 3, 2);
        t.mark_at(0.5, "loaded </script>");
        assert_eq!(
            t.to_json(),
            serde_json::json!({
                "samples": [[0.5, 2, 1], [0.0, 3, 2]],
                "marks": [[0.5, "loaded </script>"]]
            })
        );
    }

    #[test]
    fn marks_are_bounded() {
        let mut t = Timeline::new();
        for i in 0..100 {
            t.mark(format!("m{i}"));
        }
        assert_eq!(t.marks().len(), Timeline::MAX_MARKS);
        assert_eq!(t.marks()[0].1, "m0");
    }
}
