// `audit diff`: where two jobs' syscall-level evidence first differs.
//
// Alignment. Events are matched per process, not by global order: the k-th
// recorded event of virtual pid P in job 1 is compared with the k-th of P in
// job 2, because concurrent processes interleave differently from run to run
// while each process's own sequence is what the build's logic follows (and the
// sandbox makes virtual pids deterministic). Within a process, once the syscalls
// themselves differ the process has diverged: that pair is reported and the rest
// of that process is not compared. Differences are reported in job 1's order.
//
// What differs, per aligned pair:
//   "syscall"  the process did something else here (diverged)
//   "value"    the build was given different values: a leak in the sandbox's
//              determinism, or different inputs
//   "real"     (--trace on both) same virtual value, different real values: the
//              nondeterminism the sandbox removed, i.e. why plain builds differ
//   "args"     same syscall, different arguments
//   "missing"  the process made fewer recorded deviations in one job
// Aggregated events (past the log's bound) are not individually comparable; the
// result says from which event number on each job aggregated.
#pragma once

#include <cstddef>
#include <string_view>

#include <nlohmann/json.hpp>

namespace hermetic::audit {

struct DiffOptions {
    size_t max_differences = 20;  // reported in detail
    size_t context = 3;           // preceding events of the same process, from job 1
};

// Result (JSON, as sent to the client):
// {"job1","job2","identical":bool,"compared":pairs,"events1","events2",
//  "differences":[{"kind","vpid","index" (k within the process),"n1","n2",
//                  "exe","syscall","class","nr","args1","args2","value1","value2",
//                  "real1","real2","context":[{"n","syscall","args","value"}]}],
//  "total_differences", "by_kind":{kind:count}, "by_syscall":{syscall:count},
//  "processes_only_in_job1":[vpid...], "processes_only_in_job2":[vpid...],
//  "notes":[...]}
// The logs should have been verified first; a malformed record throws FormatError.
nlohmann::json diff_logs(std::string_view log1, std::string_view log2, const DiffOptions& options = {});

}  // namespace hermetic::audit
