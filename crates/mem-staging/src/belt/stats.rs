//! [`StagingStats`]: the belt's counters, for insight and benchmarks.

use super::*;

/// Counters of a belt, for insight.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StagingStats {
    /// Bytes copied through the ring.
    pub bytes_staged: u64,
    /// Bytes copied back from buffers and images through the ring.
    pub bytes_read_back: u64,
    /// Bytes written into images from host memory
    /// ([`super::StagingBelt::copy_image_on_host`]).
    pub bytes_host_copied: u64,
    /// Bytes written directly into host-visible destinations.
    pub bytes_direct: u64,
    /// Upload calls that succeeded.
    pub uploads: u64,
    /// Batches submitted.
    pub batches_submitted: u64,
    /// Batches submitted and not yet known complete.
    pub batches_in_flight: usize,
    /// Ring bytes in use now.
    pub ring_used: u64,
    /// Highest ring occupancy seen, in bytes.
    pub ring_high_water: u64,
    /// Ring size.
    pub ring_size: u64,
    /// Time spent waiting for ring space or tickets.
    pub wait_time: Duration,
    /// Time spent copying upload data into the ring or into host-visible
    /// destinations, and readbacks out of the ring (wall clock of the
    /// parallel copies, including a submit overlapped with them).
    pub copy_time: Duration,
    /// Time spent in `vkQueueSubmit` (on whichever thread made the call).
    pub submit_time: Duration,
    /// Copy commands recorded.
    pub copy_commands: u64,
    /// Bytes copied by the GPU straight from imported host memory.
    pub bytes_imported: u64,
    /// Imports that failed (rejected pointer, out of memory); their bytes
    /// went through the ring instead.
    pub import_fallbacks: u64,
}
