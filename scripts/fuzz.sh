#!/usr/bin/env bash
# Runs every fuzz target for N seconds (default 60) with cargo-fuzz.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags;
# `-s none` because AddressSanitizer needs a nightly-built std. On nightly,
# drop `-s none` (and RUSTC_BOOTSTRAP) to fuzz with ASan.
# New interesting inputs go to fuzz/corpus/TARGET (minimise before committing:
# `cargo fuzz cmin TARGET`); crashes to fuzz/artifacts/TARGET.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(buddy tlsf allocator_fake image_plan)
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
cargo fuzz build -s none
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  echo "== $t: ${secs}s"
  cargo fuzz run -s none "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=4096 \
    -max_len=4096 -print_final_stats=1 2>&1 | tee "/tmp/fuzz-$t.log" | grep -E "^(#[0-9]+.*DONE|stat::|==|INFO: -max_total_time)|ERROR|panicked" || true
  grep -q "Done [0-9]* runs" "/tmp/fuzz-$t.log" && grep "Done [0-9]* runs" "/tmp/fuzz-$t.log"
done
