// The exec-time patch of a process's vDSO: every time, getcpu and getrandom
// entry point becomes a real syscall (so the supervisor answers it), and an init
// stub maps the scratch region before jumping to the program's entry point.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace hermetic::sandbox::determinism {

struct VdsoPlan {
    bool ok = false;
    std::string error;
    // (offset in the vDSO, bytes) to write.
    std::vector<std::pair<uint64_t, std::vector<uint8_t>>> writes;
    uint64_t stub_offset = 0;  // where init_stub() goes
    size_t stub_room = 0;
    bool fast_stat_room = false;  // room for init_stub(entry, true)
    std::vector<std::string> patched;  // symbol names, for the summary
};

// The clock page at policy::kScratchBase that in-process clock reads use (the
// supervisor writes it; the patched vDSO increments `counter`).
struct ClockPage {
    uint64_t counter;   // reads served in-process since the supervisor last folded them
    int64_t base;       // the task's logical CLOCK_REALTIME at that fold
    int64_t step;       // advance per read
    int64_t mono_off;   // CLOCK_MONOTONIC = realtime + mono_off
    uint32_t enabled;   // 0: every read traps (multi-threaded processes, vfork children)
    uint32_t pad;
    uint64_t tsc_hz;    // the virtual TSC's frequency (rdtsc_patch.hpp)
    uint64_t ns_per_s;  // 10^9, a memory operand for the trampolines' div
};
// Past the page's fields, counters only the process writes and the supervisor
// reads as deltas (never resets): rdtsc reads its trampolines served, then the
// stat path's (fast_stat_abi.h: HERMETIC_FAST_COUNT_TABLE, _MISSING).
inline constexpr uint64_t kRdtscCountOffset = 56;
// The loader's rseq calls its trampoline answered (plan_errno_syscall_patch),
// past the stat path's two counters.
inline constexpr uint64_t kRseqCountOffset = 80;
// Non-zero once the exec stub has mapped the in-process stat code at
// HERMETIC_FAST_BASE: the loader's stat trampolines call it only then.
inline constexpr uint64_t kFastMappedOffset = 88;
inline constexpr size_t kClockPageBytes = 4096;  // the scratch slots start after it

// Parses the vDSO image (as read from the process) and plans the patch. With
// `in_process`, clock_gettime/gettimeofday/time read the clock page (falling
// back to the syscall while it is disabled) and getcpu answers CPU 0 itself.
VdsoPlan plan_vdso_patch(const std::vector<uint8_t>& image, bool in_process);

// Code that mmaps the scratch region (fixed, read-write, never replacing
// anything), clears the registers it used, and jumps to `entry`. With
// `fast_stat`, first asks the supervisor for the in-process stat memfd (a
// trapped newfstatat, fast_stat_abi.h) and maps it read-only and executable
// at HERMETIC_FAST_BASE; if either fails the process runs without it (every
// stat traps).
std::vector<uint8_t> init_stub(uint64_t entry, bool fast_stat = false);

}  // namespace hermetic::sandbox::determinism
