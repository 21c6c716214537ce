//! Tracking host allocator (in progress).
