#!/usr/bin/env bash
# Real software, not probes: fetches Debian source packages, builds each with
# `dpkg-buildpackage -b` inside hermetic once with `hermeticctl run` (timed: what
# a user's build costs) and twice more with `hermeticctl run --verify` (the
# second build perturbed; both traced, so slower), and twice without the
# sandbox (two copies at different paths on a tmpfs, as hermetic's /build is,
# a little later), and compares the .deb files. Prints, per package, identical
# or not under each, the wall time of a run, of a verify build and of a plain
# build, and the totals. Not part of CI (it downloads and builds for a while).
#
#   bench/realworld.sh [PACKAGE...]     default: the issue's corpus
#   VERIFY=0 bench/realworld.sh ...     timing only: one hermetic run and one
#                                       plain build per package, no --verify
#                                       and no second plain build
#
# Runs as root on Debian 12 with hermetic built in ./build. Starts its own
# hermeticd (socket and state under $WORK) with /var/lib/dpkg bound read-only,
# which dpkg-checkbuilddeps needs inside the sandbox. Uses its own apt source
# list (deb + deb-src) and lists under $WORK: the host's apt config is not
# touched, but build dependencies are installed on the host (apt-get build-dep).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
WORK=${WORK:-/var/tmp/hermetic-realworld}
pkgs=("$@")
VERIFY=${VERIFY:-1}
((${#pkgs[@]})) || pkgs=(dash lz4 libyaml lua5.4 pcre2 libsodium xz-utils zlib sqlite3)
ctl="$repo/build/hermeticctl"
daemon="$repo/build/hermeticd"
[[ -x $ctl && -x $daemon ]] || { echo "build hermetic first (cmake -B build && cmake --build build)" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends dpkg-dev fakeroot devscripts >/dev/null

mkdir -p "$WORK/apt/lists/partial" "$WORK/apt/cache/archives/partial" "$WORK/state"
cat > "$WORK/apt/sources.list" <<'EOF'
deb http://deb.debian.org/debian bookworm main
deb-src http://deb.debian.org/debian bookworm main
EOF
apt_opts=(-o "Dir::Etc::SourceList=$WORK/apt/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
          -o "Dir::State::Lists=$WORK/apt/lists" -o "Dir::Cache=$WORK/apt/cache")
apt-get "${apt_opts[@]}" -q update >/dev/null

# Our own daemon: nothing of the system's hermeticd (if any) is touched.
sock="$WORK/hermeticd.sock"
cat > "$WORK/hermeticd.conf" <<EOF
socket = $sock
state-dir = $WORK/state
policy-dir = $repo/policies
ro-bind = /var/lib/dpkg
build-size = 16G
tmp-size = 8G
out-size = 4G
max-jobs = 1
cgroup-parent = hermetic-realworld
id-base = 1912602624
EOF
"$daemon" --config "$WORK/hermeticd.conf" --foreground >"$WORK/hermeticd.log" 2>&1 &
daemon_pid=$!
# Plain builds work in a tmpfs, as hermetic's /build is one: like for like.
plainfs="$WORK/plainfs"
mkdir -p "$plainfs"
mountpoint -q "$plainfs" || mount -t tmpfs -o size=16G,mode=0755 hermetic-realworld "$plainfs"
trap 'kill $daemon_pid 2>/dev/null; wait $daemon_pid 2>/dev/null || true; umount "$plainfs" 2>/dev/null || true' EXIT
for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.1; done

build_cmd='cd */ && dpkg-buildpackage -b -us -uc -j2 >../build.log 2>&1 || { tail -40 ../build.log >&2; exit 1; }; cp ../*.deb "$OUT"/'
now() { date +%s.%N; }
printf '%-12s %-22s %-22s %10s %10s %10s\n' package hermetic plain "run s" "verify s" "plain s" | tee "$WORK/report.txt"
same_h=0 same_p=0 built=0 total_h=0 total_p=0 total_r=0
for pkg in "${pkgs[@]}"; do
  d="$WORK/$pkg"
  rm -rf "$d"
  mkdir -p "$d/src"
  (cd "$d/src" && apt-get "${apt_opts[@]}" -q source "$pkg" >/dev/null 2>&1) || { echo "$pkg: apt-get source failed" | tee -a "$WORK/report.txt"; continue; }
  apt-get "${apt_opts[@]}" -q -y build-dep "$pkg" >/dev/null 2>&1 || { echo "$pkg: build-dep failed" | tee -a "$WORK/report.txt"; continue; }
  # Only the unpacked tree goes in (the .dsc and tarballs stay out of /build).
  find "$d/src" -maxdepth 1 -type f -delete

  # One plain `hermeticctl run`: what a user's build costs. --verify's builds
  # are traced (every deviation with its real value), which keeps every stat
  # call trapped: an upper bound, timed separately below.
  t0=$(now)
  set +e
  "$ctl" --socket "$sock" run --src "$d/src" --out "$d/run" --timeout 7200 -- sh -c "$build_cmd" >"$d/run.log" 2>&1
  rstatus=$?
  set -e
  t1=$(now)
  tr=$(echo "$t1 - $t0" | bc -l)

  if [[ $VERIFY == 1 ]]; then
    t0=$(now)
    set +e
    "$ctl" --socket "$sock" run --src "$d/src" --out "$d/hermetic" --verify --timeout 7200 -- sh -c "$build_cmd" \
      >"$d/hermetic.log" 2>&1
    hstatus=$?
    set -e
    t1=$(now)
    # --verify ran two builds: half its time is one sandboxed build.
    th=$(echo "($t1 - $t0) / 2" | bc -l)
    case $hstatus in
      0) hres=identical ;;
      104) hres=DIFFERENT ;;
      *) hres="failed($hstatus)" ;;
    esac
  else
    th=0 hres="not verified"
  fi

  # Plain: the same tree at two paths (on the tmpfs), built one after the other.
  rm -rf "${plainfs:?}"/*
  for copy in 1 $([[ $VERIFY == 1 ]] && echo 2); do
    mkdir -p "$plainfs/$pkg-$copy"
    cp -a "$d/src/." "$plainfs/$pkg-$copy/"
  done
  t0=$(now)
  (cd "$plainfs/$pkg-1" && export OUT="$d/plain1-out" && mkdir -p "$OUT" && sh -c "$build_cmd") >"$d/plain1.log" 2>&1 || true
  t1=$(now)
  if [[ $VERIFY == 1 ]]; then
    sleep 2
    (cd "$plainfs/$pkg-2" && export OUT="$d/plain2-out" && mkdir -p "$OUT" && sh -c "$build_cmd") >"$d/plain2.log" 2>&1 || true
  fi
  rm -rf "${plainfs:?}"/*
  tp=$(echo "$t1 - $t0" | bc -l)
  if ! ls "$d"/plain1-out/*.deb >/dev/null 2>&1; then
    pres=failed
  elif [[ $VERIFY != 1 ]]; then
    pres="built"
  else
    if (cd "$d/plain1-out" && sha256sum ./*.deb) | diff -q - <(cd "$d/plain2-out" && sha256sum ./*.deb) >/dev/null 2>&1; then
      pres=identical
    else
      pres=DIFFERENT
    fi
  fi
  [[ $hres == identical ]] && same_h=$((same_h + 1))
  [[ $pres == identical ]] && same_p=$((same_p + 1))
  [[ $rstatus -eq 0 ]] || hres="$hres, run failed($rstatus)"
  if [[ $hres != failed* && $pres != failed && $rstatus -eq 0 ]]; then
    built=$((built + 1))
    total_r=$(echo "$total_r + $tr" | bc -l)
    total_h=$(echo "$total_h + $th" | bc -l)
    total_p=$(echo "$total_p + $tp" | bc -l)
  fi
  printf '%-12s %-22s %-22s %10.1f %10.1f %10.1f\n' "$pkg" "$hres" "$pres" "$tr" "$th" "$tp" | tee -a "$WORK/report.txt"
done
ratio() { if [[ $built -gt 0 ]]; then echo "$1 / $total_p" | bc -l; else echo 0; fi; }
[[ $VERIFY == 1 ]] || echo "timing only (VERIFY=0): nothing was compared" | tee -a "$WORK/report.txt"
printf 'identical: hermetic %d/%d, plain %d/%d; corpus wall time run/plain = %.2f (target <= 1.10), verify build/plain = %.2f\n' \
  "$same_h" "${#pkgs[@]}" "$same_p" "${#pkgs[@]}" "$(ratio "$total_r")" "$(ratio "$total_h")" | tee -a "$WORK/report.txt"
