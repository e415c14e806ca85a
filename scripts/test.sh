#!/usr/bin/env bash
# The README's second command, and what CI runs (.ci/run). On a fresh Debian 12
# machine as root: installs what the tests need, creates the test user and group,
# builds (warnings are errors), runs the unit and integration suites, then an
# ASan+UBSan build of the unit tests and a slice of the integration tests.
#
# Budget (2 cores): deps ~2 min, plain build ~6 min, package ~1 min, suites ~5 min, fuzzing
# ~6 min (clang build + 3 x 60 s), sanitizer build + run ~12 min.
# HERMETIC_SKIP_SANITIZE=1 skips the sanitizer pass; FUZZ_SECONDS sets the fuzzing time.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "test.sh: run as root (the integration tests create namespaces and cgroups)" >&2; exit 1; }
jobs=$(nproc)

scripts/install-deps.sh --with-test-deps
getent group hermetic >/dev/null || groupadd --system hermetic
# hermetic-test2 and -3: other users for the lifecycle tests (visibility, per-user
# limits, crowds of several users).
for u in hermetic-test hermetic-test2 hermetic-test3; do
  id "$u" >/dev/null 2>&1 || useradd --create-home --groups hermetic --shell /bin/sh "$u"
  id -nG "$u" | grep -qw hermetic || usermod -aG hermetic "$u"
done

echo "== plain build =="
cmake -S . -B build-ci -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHERMETIC_WERROR=ON
cmake --build build-ci -j"$jobs"

echo "== Debian package: cpack, contents, lintian, the unpacked install =="
scripts/package-test.sh build-ci

echo "== unit and integration tests =="
(cd build-ci && ctest --output-on-failure -j"$jobs" --timeout 600)

echo "== fuzzing: about a minute per target =="
FUZZ_SECONDS=${FUZZ_SECONDS:-60} scripts/fuzz.sh

if [[ "${HERMETIC_SKIP_SANITIZE:-0}" != 1 ]]; then
  echo "== ASan+UBSan build: unit tests and an integration slice =="
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DHERMETIC_SANITIZE=ON -DHERMETIC_WERROR=ON
  cmake --build build-asan -j"$jobs"
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j"$jobs" --timeout 900 -L unit)
  # A representative slice with real daemons and sandboxes: the run path, the
  # isolation checks and the audit evidence.
  (cd build-asan && ctest --output-on-failure -j"$jobs" --timeout 900 -R '^(RunCommand|Isolation|DaemonAudit)\.')
fi
echo "== all tests passed =="
