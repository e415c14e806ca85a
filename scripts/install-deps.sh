#!/usr/bin/env bash
# Installs the Debian 12 packages hermetic needs to build and test.
# Idempotent and quick when everything is already there (no apt-get update then).
set -euo pipefail

BUILD_DEPS=(
  build-essential cmake pkg-config
  libseccomp-dev libcap-dev libmnl-dev libboost-program-options-dev libspdlog-dev
  nlohmann-json3-dev libssl-dev libsqlite3-dev libsystemd-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  googletest libgtest-dev libgmock-dev
  file dpkg-dev  # cpack -G DEB: shlibdeps reads the binaries' dependencies
)
# For the test suites: clang/libFuzzer and sanitizer runtimes, 32-bit probes,
# bubblewrap for the benchmark baseline, real tools the probes run.
TEST_DEPS=(
  clang libclang-rt-14-dev gcc-multilib
  bubblewrap iproute2 python3 perl zip unzip systemd
  # reprotest judging a build through hermeticctl (tests/integration/reprotest_test.cpp),
  # with what its variations run: disorderfs (file order), faketime (time).
  reprotest disorderfs faketime
  # The Debian package's test (scripts/package-test.sh): lintian, devscripts
  # for hardening-check, and pandoc for the manual pages.
  lintian devscripts pandoc
)

want=("${BUILD_DEPS[@]}")
if [[ "${1:-}" == "--with-test-deps" ]]; then want+=("${TEST_DEPS[@]}"); fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
