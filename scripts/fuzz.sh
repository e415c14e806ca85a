#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang + ASan + UBSan and runs each
# for FUZZ_SECONDS (default 60) on its seed corpus (fuzz/corpus/NAME; new inputs
# go to a scratch directory, not into the repo). A crash, leak, timeout or
# out-of-memory fails the script and leaves the reproducer in build-fuzz/findings.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DHERMETIC_FUZZ=ON -DHERMETIC_TESTS=OFF -DHERMETIC_WERROR=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz_protocol fuzz_policy fuzz_config
mkdir -p build-fuzz/findings
for t in protocol policy config; do
  scratch=$(mktemp -d)
  echo "== fuzz_$t: ${seconds}s"
  # -rss_limit_mb and -malloc_limit_mb: an input that makes a decoder allocate
  # without bound is a finding, like a crash.
  build-fuzz/fuzz_$t -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -malloc_limit_mb=512 -print_final_stats=1 -artifact_prefix=build-fuzz/findings/ \
    "$scratch" "fuzz/corpus/$t" 2>&1 | grep -E "^(Done|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)" || true
  rm -rf "$scratch"
  if ls build-fuzz/findings/* >/dev/null 2>&1; then
    echo "fuzz_$t: findings in build-fuzz/findings:" >&2
    ls build-fuzz/findings >&2
    exit 1
  fi
done
echo "== fuzzing found nothing"
