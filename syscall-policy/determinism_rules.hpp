// The determinism profile: which syscalls the determinism supervisor
// (sandbox/determinism/) virtualizes, and the ABI both sides share.
//
// Re-issued calls. A call whose timeout the supervisor must translate or copy
// (absolute deadlines in virtual time, relative sleeps) is answered by making
// the thread re-issue it with the timeout pointer moved into a scratch region
// the supervisor maps read-only at every exec (kScratchBase). The rules below
// trap timeout pointers only from kTrapPointersFrom up, so the re-issued call
// (and NULL, "no timeout") goes straight to the kernel. libseccomp allows one
// comparison per argument, hence one boundary and not a range.
#pragma once

#include <cstdint>

#include "syscall-policy/policy.hpp"

namespace hermetic::policy {

inline constexpr uint64_t kScratchBase = 0x10000;
inline constexpr uint64_t kScratchSize = 0x10000;
inline constexpr uint64_t kTrapPointersFrom = kScratchBase + kScratchSize;

// Stat calls carrying this value in an argument the kernel ignores (stat,
// fstat, lstat: the third; newfstatat: the fifth; statx: the sixth) are not
// virtualized: the in-process stat path (sandbox/determinism/fast_stat_abi.h)
// makes them and rewrites what they return. A build that sets it itself only
// sees the real metadata, as it could by other means (rdrand is never
// trappable here): a way to be nondeterministic on purpose, not a way out.
inline constexpr uint64_t kStatRealMarker = 0x6c6165722d746d68ULL;

// Declared in policy.hpp too (the text profiles include it as "determinism").
Policy determinism_policy();

}  // namespace hermetic::policy
