#!/usr/bin/env bash
# Runs every libFuzzer target of the `fuzz` preset for a bounded time each, seeded from
# fuzz/corpus/<target>/ (read-only: new inputs go to build/fuzz/corpus/<target>/, which is kept
# between runs). Exits non-zero on the first crash; the crashing input is saved as
# build/fuzz/crash-* and printed by libFuzzer.
# Usage: scripts/fuzz.sh [seconds per target, default 20] [target ...]
# Longer: scripts/fuzz.sh 600 line       (or run build/fuzz/fuzz/line_fuzzer directly)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(tlv_dispatch length_field line flatbuffers)
for t in "${targets[@]}"; do
  bin=build/fuzz/fuzz/${t}_fuzzer
  [ -x "$bin" ] || { echo "missing $bin: cmake --preset fuzz && cmake --build --preset fuzz"; exit 1; }
  work=build/fuzz/corpus/$t
  mkdir -p "$work"
  echo "=== fuzz $t for ${seconds} s"
  rc=0
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix=build/fuzz/ "$work" "fuzz/corpus/$t" \
    >"build/fuzz/$t.log" 2>&1 || rc=$?
  grep -E "^stat::number_of_executed_units|^INFO: seed corpus" "build/fuzz/$t.log" || true
  if [ "$rc" -ne 0 ]; then
    tail -n 60 "build/fuzz/$t.log"
    echo "fuzz target $t failed (exit $rc); log: build/fuzz/$t.log"
    exit 1
  fi
done
