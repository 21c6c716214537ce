#!/usr/bin/env bash
# Miri over the Vulkan-free tests of mem-core: the TLSF and buddy cores, the
# pool lock (Miri's data-race detector, 8 threads), virtual blocks, the
# tracking host allocator (raw allocation callbacks), the allocator over the
# fake device (mapped pointers, debug margins, memory of its own and its
# cache) and the TLSF property test. Needs a nightly toolchain with miri:
#   rustup toolchain install nightly --component miri && cargo +nightly miri setup
# Miri runs ~100x slower than native: the property test runs 8 cases; the
# long churn tests and the fuzz corpora (CI replays them natively) are left
# out. About 25 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance -Zmiri-disable-isolation}"
export PROPTEST_CASES="${PROPTEST_CASES:-8}"
cargo +nightly miri test -p mem-core --lib -- tlsf lock host virtual_block placement buddy::tests
cargo +nightly miri test -p mem-core --test reliability_margins -- --skip many_allocations
cargo +nightly miri test -p mem-core --test tlsf_props
cargo +nightly miri test -p mem-core --test allocator_fake -- \
  bad_input large_requests cached_memory leak_report mali_readback granularity \
  the_cache_keeps trim_lowers a_cache_past dedicated_when
