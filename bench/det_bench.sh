#!/usr/bin/env bash
# Determinism engine benchmarks: each workload in the same mini sandbox with the
# engine and with the baseline policy alone; prints both wall times, the ratio,
# the extra cost per operation, and the supervisor's own time per trapped call.
#   bench/det_bench.sh [BUILD_DIR]        (root; builds the test target first)
# Workloads: 10^6 vDSO clock reads, 10^5 getdents of a 1000-entry directory,
# 10^5 stat, 100 python3 start-ups, a 40-file C build with make -j2.
# HERMETIC_DET_NO_RECORDS=1 measures without deviation records (counts only);
# HERMETIC_DET_ONLY=TEXT runs only the workloads whose name contains TEXT.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build-det}
if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" --target integration_sandbox_det_bench_test probes -j"$(nproc)" >/dev/null
HERMETIC_DET_BENCH=1 "$build/integration_sandbox_det_bench_test" --gtest_brief=1 | grep -v '^\[\|^Running\|^$'
