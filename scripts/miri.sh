#!/usr/bin/env bash
# Miri over the Vulkan-free tests of mem-core: the TLSF and buddy cores, the
# pool lock, virtual blocks, the tracking host allocator (raw allocation
# callbacks), the allocator over the fake device (mapped pointers, debug
# margins, threads) and a slice of the fuzz corpus. Needs a nightly
# toolchain with the miri component:
#   rustup toolchain install nightly --component miri && cargo +nightly miri setup
# Miri runs ~100x slower than native: property tests run 8 cases, the random
# fuzz inputs are skipped. About 30 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance -Zmiri-disable-isolation}"
export PROPTEST_CASES="${PROPTEST_CASES:-8}"
cargo +nightly miri test -p mem-core --lib -- tlsf lock host virtual_block placement buddy::tests
cargo +nightly miri test -p mem-core --test reliability_margins
cargo +nightly miri test -p mem-core --test tlsf_props
cargo +nightly miri test -p mem-core --test allocator_fake -- \
  bad_input eight_threads large_requests cached_memory leak_report mali_readback
cargo +nightly miri test -p mem-core --test reliability_corpus -- tlsf_corpus
