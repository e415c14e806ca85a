// What a job asks of the determinism engine, and what it reports back.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "syscall-policy/policy.hpp"

namespace hermetic::sandbox::determinism {

// The fixed epoch used when neither --epoch nor SOURCE_DATE_EPOCH is given
// (2000-01-01T00:00:00Z: after zip's 1980 floor, well before any real build).
inline constexpr int64_t kDefaultEpoch = 946684800;

// The logical clock's step (ns per clock read or virtualized call): the
// default, and the largest a job may ask for (--clock-step). 10 µs, not 1: a
// program that times N iterations between two reads divides one step by N, and
// lz4's own test suite asserts that 1 step / 5666 decompressions is > 0 ns.
// A larger step also ends clock-bounded loops (fuzzers run "for 10 s") sooner.
inline constexpr int64_t kDefaultClockStepNs = 10'000;
inline constexpr int64_t kMaxClockStepNs = 1'000'000'000;

struct DeterminismConfig {
    // The job's effective policy (required): the supervisor decides every
    // notification with it (policy::PreparedPolicy): virtualize -> emulated,
    // log -> CONTINUE and a "logged" record, a named rule's errno -> that errno
    // and a "denied" record (the filters route named denials to the supervisor
    // whenever it exists: policy::CompileOptions).
    std::shared_ptr<const policy::Policy> policy;
    // sha256 of the policy's canonical text (either routing of denials), as the
    // job's evidence names it; the supervisor refuses a policy that doesn't
    // match. Empty: not checked (tests, the mini sandbox).
    std::string policy_digest;
    // Instead of `policy`: the one Supervisor::prepare_policy() gave it ahead
    // of the job (the daemon's floor, which most jobs run under); its digest
    // must be policy_digest.
    bool policy_prepared = false;

    uint64_t seed = 0;               // --seed: keys every random byte the build sees
    int64_t epoch = kDefaultEpoch;   // --epoch (seconds): where the logical clock starts
    uint32_t cpus = 2;               // --cpus: what every CPU-count source reports
    bool trace = false;              // --trace: deviations also carry the real value

    // Logical clock: each virtualized call advances the calling thread's clock
    // by this much (ns); a thread or process starts from its creator's clock.
    int64_t clock_step_ns = kDefaultClockStepNs;
    // A read of a CPU-time clock (CLOCK_*_CPUTIME_ID, clock(), times(),
    // getrusage) advances the reader's clock by this many steps instead of one.
    // CPU time measures work, which the supervisor can't count deterministically
    // without a PMU (Hermit counts retired branches; this VM has none). Programs
    // read it around units of work ("fuzz for 90 s of CPU"): at one step per
    // read lz4's fuzzer ran 8x–100x more iterations than on the host (its test
    // suite took hours). 1000 steps = 10 ms at the default step, one USER_HZ
    // tick, the granularity clock() and times() had for decades; lz4's fuzzers
    // then run about as many iterations as on the host.
    static constexpr int64_t kCpuReadSteps = 1000;
    // Uptime the build sees at the epoch (seconds): CLOCK_MONOTONIC/BOOTTIME,
    // /proc/uptime and sysinfo() start here.
    int64_t uptime_at_epoch_s = 100;
    // Virtual TSC frequency for rdtsc/rdtscp (cycles per second).
    uint64_t tsc_hz = 1'000'000'000;

    // Host identity the build sees.
    std::string uname_sysname = "Linux";
    std::string uname_nodename = "hermetic";     // the sandbox's UTS hostname
    std::string uname_domainname = "(none)";
    std::string uname_release = "6.1.0-hermetic";
    std::string uname_version = "#1 SMP PREEMPT_DYNAMIC";
    std::string uname_machine = "x86_64";
    uint64_t memory_bytes = 8ull << 30;          // /proc/meminfo, sysinfo()

    // Record one Deviation per virtualized call (off: counts only, for benchmarks).
    bool record_deviations = true;
    // Serve clock_gettime/gettimeofday/time from a page in the process (the
    // patched vDSO) instead of trapping each read: single-threaded processes
    // only (the reads of a multi-threaded one would depend on its scheduling).
    // Reads served in-process are recorded in batches. Off with `trace`, and
    // when the policy does not virtualize every clock read the page serves
    // (clock_gettime, gettimeofday, time).
    bool in_process_clock = true;
    // Answer stat calls in the process where the answer is fixed (fast_stat.hpp):
    // ENOENT and ENOTDIR, and files on read-only mounts and device nodes the
    // supervisor has answered for once. Off with `trace` (every call is then
    // an event).
    bool in_process_stat = true;
    // The dynamic loader's rdtsc sites answered in the process (rdtsc_patch.hpp;
    // needs the exec stub's hello, so in_process_stat too). Off: they trap.
    bool in_process_rdtsc = true;
    // The dynamic loader's rseq registration, which the policy denies whatever
    // its arguments, answered in the process (rdtsc_patch.hpp: the same
    // trampolines; needs the hello too). Off: one notification per process.
    bool in_process_rseq = true;
    // The dynamic loader's stat of each library it opens answered by the
    // in-process stat table (rdtsc_patch.hpp: a trampoline that calls it once
    // the exec stub has mapped it, else makes the call). Off: one notification
    // per dynamic process (and per library).
    bool in_process_loader_stat = true;
};

// What the supervisor did, for the job's summary.
struct Summary {
    std::map<std::string, uint64_t> by_syscall;  // "clock_gettime" -> count, "rdtsc" -> count, ...
    std::map<std::string, uint64_t> by_class;    // "time", "random", "identity", "cpu", "fs-order", "fs-metadata"
    std::map<std::string, uint64_t> denied;      // failed closed: "syscall: reason" -> count
    // Sources the engine cannot virtualize on this host, e.g.
    // "rdrand (CPUID bit visible: no CPUID faulting on this CPU)".
    std::vector<std::string> unvirtualizable;
    std::vector<std::string> notes;              // e.g. exec-time patch failures
    uint64_t processes = 0;                      // processes seen (execs included)
    uint64_t execs = 0;
    uint64_t trap_ns_total = 0;                  // supervisor time spent in handlers
    uint64_t traps = 0;
    uint64_t stops = 0;                          // ptrace stops (exec, fork, exit, signals, ...)
    uint64_t stop_ns_total = 0;                  // supervisor time spent on them
    uint64_t supervisor_cpu_ns = 0;              // CPU time of the supervisor process (user + system)
};

}  // namespace hermetic::sandbox::determinism
