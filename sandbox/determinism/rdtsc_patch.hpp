// rdtsc answered inside the process: a site in the dynamic loader (glibc's
// rtld times its start-up with rdtsc, ~8 reads per process, each otherwise a
// ptrace stop) becomes a jump to a trampoline that computes the virtual TSC
// from the clock page, as a vDSO clock read would, and counts the read for
// the audit. While the page is disabled (multi-threaded processes) the
// trampoline executes a real rdtsc, which traps as before.
//
// rdtsc is 2 bytes and a jump 5: the instructions after it are moved into the
// trampoline (re-based if RIP-relative). Only a small, known set of integer
// instructions is moved, and only where the flags are provably dead after the
// site (the trampoline's arithmetic changes them; rdtsc does not): the next
// instructions must write every flag before anything could read one. Anything
// else is refused and keeps trapping. The trampolines go in the slack at the
// end of the loader's last text page (executable, within rel32 reach).
//
// The same trampolines answer a loader syscall the policy denies outright
// (plan_errno_syscall_patch).
//
// Pure: bytes in, bytes out. sandbox/determinism/tracer.cpp decides where and
// when (at the exec stub's hello, before the loader runs).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace hermetic::sandbox::determinism {

// How many bytes after a site the planner looks at (the displaced
// instructions and the flag-liveness sweep).
inline constexpr size_t kRdtscWindow = 48;

struct RdtscPatch {
    std::vector<uint8_t> site;        // written at the site: jmp rel32, then int3 filler
    std::vector<uint8_t> trampoline;  // written at the trampoline's address
};

// Plans the patch of the rdtsc at `site_addr` whose bytes (from the rdtsc on,
// at least kRdtscWindow of them) are `code`, with its trampoline at
// `tramp_addr`. Addresses are the process's. nullopt: not patchable.
std::optional<RdtscPatch> plan_rdtsc_patch(std::span<const uint8_t> code, uint64_t site_addr, uint64_t tramp_addr);

// The largest trampoline plan_rdtsc_patch() produces (for sizing the slack).
inline constexpr size_t kRdtscTrampolineMax = 128;

// A `mov eax, NR; syscall` of the loader (7 bytes) that the job's policy
// fails with `error` whatever its arguments (rseq, once per process start-up,
// each otherwise a notification round trip) becomes a jump to a trampoline
// that counts the call at `count_offset` in the scratch page (the supervisor
// records the count as denials) and returns -error as the kernel would: rcx
// and r11 clobbered as a syscall clobbers them, the flags untouched (no
// liveness question). nullopt: `code` is not that instruction pair.
inline constexpr size_t kSyscallSiteLen = 7;
inline constexpr size_t kErrnoTrampolineLen = 32;
std::optional<RdtscPatch> plan_errno_syscall_patch(std::span<const uint8_t> code, uint64_t site_addr, uint64_t tramp_addr,
                                                   int nr, int error, uint64_t count_offset);

// A `mov eax, NR; syscall` of the loader that the in-process stat code can
// answer (fast_stat_patch's sites: its wrapper checks the result with a cmp
// right after, so the flags are dead) becomes a jump to a trampoline that
// calls that code through `slot_addr` if the qword at `guard_offset` in the
// scratch page is non-zero (the exec stub mapped it), and otherwise makes the
// call itself, as before the patch. nullopt: `code` is not that pair.
inline constexpr size_t kGuardedCallTrampolineLen = 34;
std::optional<RdtscPatch> plan_guarded_call_patch(std::span<const uint8_t> code, uint64_t site_addr, uint64_t tramp_addr,
                                                  uint64_t guard_offset, uint32_t slot_addr);

}  // namespace hermetic::sandbox::determinism
