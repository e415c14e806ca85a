// Internal: the syscall-table filter (filters[0]) as our own BPF.
//
// libseccomp 2.5.4 needs ~10 ms (Debug) to generate the two-arch table of the
// baseline, superlinear in its size; per-arch contexts plus seccomp_merge() only
// move the cost into the export. The table is simple enough to emit directly:
// one unconditional verdict per (arch, number) plus the i386 socketcall/ipc slots,
// as a binary search over runs of equal verdicts (a few microseconds, and ~10
// instructions on any syscall's path instead of libseccomp's per-number tree).
//
// It reproduces exactly what libseccomp emitted for the same table (the
// differential test in tests/unit/policy_compile_test.cpp checks decide()
// against it for every number):
//  * arch: x86-64 and i386 are filtered, anything else is killed;
//  * x86-64: nr >= 0x40000000 (x32 and garbage) is killed, except -1, which a
//    tracer uses to skip a call and which gets the default;
//  * a number gets the verdict of its name (libseccomp's name for it on that arch),
//    numbers without a name or without a rule the default;
//  * i386 socketcall(2)/ipc(2): a rule for a multiplexed call (socket, shmget, ...)
//    also applies to the multiplexer when its first argument (low 32 bits) is that
//    call's number;
//  * i386_action, when set, answers every i386 call.
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace hermetic::policy::detail {

struct TableSpec {
    uint32_t default_ret = 0;                     // SECCOMP_RET_* value
    std::map<std::string, uint32_t> by_name;      // only where != default_ret
    std::optional<uint32_t> i386_ret;             // replaces the whole i386 table
};

std::vector<sock_filter> table_filter(const TableSpec& spec);

// One program from per-arch programs: dispatches on seccomp_data.arch and runs
// `x86_64` or `i386` unchanged (classic BPF jumps are relative and a program
// ends in returns, so a complete program embeds as is; each still checks its
// own arch first). i386 absent: i386 calls get `i386_absent_ret`. Any other
// arch is killed.
std::vector<sock_filter> join_arches(const std::vector<sock_filter>& x86_64,
                                     const std::optional<std::vector<sock_filter>>& i386, uint32_t i386_absent_ret);

}  // namespace hermetic::policy::detail
