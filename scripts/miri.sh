#!/usr/bin/env bash
# Miri over the Vulkan-free unit and property tests of mem-core (buddy core,
# virtual blocks, host allocator) and the corpus replay. Needs a nightly
# toolchain with the miri component:
#   rustup toolchain install nightly --component miri
# Blocked in the founding environment (stable 1.95 only, rustup cannot fetch).
set -euo pipefail
cd "$(dirname "$0")/.."
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance}"
cargo +nightly miri test -p mem-core --lib buddy
cargo +nightly miri test -p mem-core --lib virtual_block
cargo +nightly miri test -p mem-core --lib host
cargo +nightly miri test -p mem-core --test buddy_props
cargo +nightly miri test -p mem-core --test reliability_corpus buddy_corpus
cargo +nightly miri test -p mem-core --test reliability_margins
