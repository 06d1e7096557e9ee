#!/usr/bin/env bash
# The whole test suite: install what is missing, then for each preset build and run ctest.
# Presets: release, asan-ubsan (AddressSanitizer + UBSan), tsan (ThreadSanitizer), and fuzz
# (clang + libFuzzer: each fuzz target runs for TAO_FUZZ_SECONDS, default 20, instead of ctest).
# Usage: scripts/test.sh [preset ...]   (default: all four). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(release asan-ubsan tsan fuzz)
for p in "${presets[@]}"; do
  echo "=== preset $p: configure and build"
  start=$(date +%s)
  cmake --preset "$p" >/dev/null
  cmake --build --preset "$p"
  echo "=== preset $p: test"
  if [ "$p" = fuzz ]; then
    scripts/fuzz.sh "${TAO_FUZZ_SECONDS:-20}"
  else
    ctest --preset "$p"
  fi
  echo "=== preset $p: done in $(( $(date +%s) - start )) s"
done
