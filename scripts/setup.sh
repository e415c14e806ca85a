#!/usr/bin/env bash
# The README's first command. On a fresh Debian 12 machine, as root: installs the
# dependencies, builds, installs hermeticd and hermeticctl, creates the 'hermetic'
# group, starts the daemon and runs a real sample build hermetically.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "setup.sh: run as root" >&2; exit 1; }

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHERMETIC_TESTS=OFF
cmake --build build -j"$(nproc)"
cmake --install build

getent group hermetic >/dev/null || groupadd --system hermetic

if [[ -d /run/systemd/system ]]; then
  systemctl daemon-reload
  systemctl enable --now hermeticd.socket
else
  # No systemd as PID 1 (containers, some VMs): start the daemon directly.
  if ! hermeticctl ping >/dev/null 2>&1; then hermeticd; fi
fi
hermeticctl ping

echo
echo "== sample build: examples/hello, built with make inside a hermetic sandbox =="
out=$(mktemp -d /tmp/hermetic-hello.XXXXXX)
rmdir "$out"
hermeticctl run --src examples/hello --out "$out" -- make
echo "outputs in $out:"
ls -l "$out"
"$out/hello"
