// What the daemon asks of one sandboxed job, and what it gets back.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.hpp"
#include "protocol/messages.hpp"
#include "sandbox/cgroup.hpp"
#include "sandbox/determinism/config.hpp"
#include "sandbox/tree_stream.hpp"
#include "syscall-policy/policy.hpp"

namespace hermetic::sandbox {

// Fixed facts of the sandbox's inside (the contract).
inline constexpr uid_t kBuildUid = 1000;
inline constexpr gid_t kBuildGid = 1000;
inline constexpr const char* kHostname = "hermetic";
inline constexpr const char* kDomainname = "(none)";

// Daemon-wide sandbox settings, from the config file.
struct SandboxConfig {
    std::optional<std::string> root_dir;   // a configured root instead of the host's system dirs
    std::vector<std::string> ro_binds;     // extra host paths bound read-only (e.g. /var/lib/dpkg)
    std::vector<std::string> etc_masks;    // /etc entries hidden from builds (secrets)
    uint64_t build_bytes = 4ull << 30;     // /build tmpfs quota
    uint64_t out_bytes = 1ull << 30;       // /out tmpfs quota
    uint64_t tmp_bytes = 1ull << 30;       // /tmp (and /dev/shm) tmpfs quota
    TreeLimits source_limits{2ull << 30, 200000};
    TreeLimits output_limits{1ull << 30, 100000};
    CgroupConfig cgroup;
    uint64_t nofile_limit = 65536;         // RLIMIT_NOFILE (soft = hard)
    uint64_t fsize_limit = 0;              // RLIMIT_FSIZE, 0: unlimited (tmpfs quotas bound files)
    uint32_t default_cpus_visible = 2;     // what the build sees without --cpus
};

// The host ids one job's sandbox maps: inner 0 (setup only) and inner 1000 (the build).
struct IdRange {
    uid_t root_host_id = 0;   // inner uid/gid 0 maps here
    uid_t build_host_id = 0;  // inner uid/gid 1000 maps here
};

struct Caller {
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;
};

// What a pooled runner is told when it is spawned: enough to build a sandbox
// before any job exists (namespaces, id maps, cgroup, root file system).
struct PrepareSpec {
    std::string sandbox_id;   // names the cgroup; [a-z0-9-]
    IdRange ids;
    SandboxConfig config;
    CgroupLimits default_limits;  // until a job sets its own
    // The policy jobs most likely run under (the daemon's floor) and its
    // digest: the supervisor prepares it ahead; a job under it comes without
    // its own copy (RunSpec::policy absent, same policy_digest).
    std::optional<policy::Policy> likely_policy;
    std::string likely_digest;
};

// The input root a job works in directly instead of a copy (RunSpec::in_place).
struct InPlaceRoot {
    uid_t owner_uid = 0;   // the input root's owner: gets what the build created
    gid_t owner_gid = 0;
    std::string workdir;   // the build's working directory, relative to /build ("" = /build)
};

// One job, handed to a prepared sandbox. The descriptors travel beside it:
// stdout and stderr pipe write ends, the caller's --src, and --out if any.
struct RunSpec {
    std::string job_id;
    std::vector<std::string> argv;
    std::vector<std::string> env;  // exactly the build's environment, "K=V"
    Caller caller;
    bool has_out = false;          // without --out outputs are hashed and discarded
    std::optional<protocol::FileId> out_exclude;
    CgroupLimits limits;
    std::optional<std::chrono::milliseconds> timeout;
    uint32_t cpus_visible = 2;
    int64_t epoch = 0;             // SOURCE_DATE_EPOCH: times given to copied files
    int64_t clock_step_ns = determinism::kDefaultClockStepNs;  // the logical clock's step (--clock-step)
    std::vector<policy::Filter> filters;  // the compiled seccomp policy, in install order
    std::string policy_digest;
    // The effective policy the filters were compiled from (its canonical text is
    // what policy_digest hashes): the determinism supervisor decides every
    // notification with it. Required when a filter needs a listener.
    std::optional<policy::Policy> policy;
    uint64_t seed = 0;             // --seed: keys every random byte the build sees
    bool trace = false;            // --trace: deviations also carry the real value
    bool record_events = true;     // false (config audit-events = counts): the supervisor only counts
    uint32_t perturb = 0;          // --verify's second build: other host conditions (messages.hpp)
    // In place (the Buildbarn runner): the source descriptor is the input root
    // itself, mounted as /build (sandbox/in_place_root.hpp). Nothing is copied in;
    // the outputs are what the build leaves there, handed to the root's owner.
    std::optional<InPlaceRoot> in_place;
};

struct RunFds {
    UniqueFd stdout_w;
    UniqueFd stderr_w;
    UniqueFd deviations_w;  // the supervisor's deviation stream, to the daemon's audit writer
    UniqueFd src_dir;  // the caller's --src, opened by the client
    UniqueFd out_dir;  // the caller's --out, or invalid
};

enum class JobStatus {
    Exited,        // the build exited on its own (exit_code)
    Signaled,      // killed by a signal (signal); memory limit shows as SIGKILL + reason
    TimedOut,      // --timeout
    Cancelled,     // the daemon asked
    SetupFailed,   // a sandbox step failed (reason names it)
    LimitExceeded, // source or outputs over a limit, or an output the contract refuses
};

struct JobOutcome {
    JobStatus status = JobStatus::SetupFailed;
    int exit_code = 0;
    int signal = 0;
    std::string reason;  // one line for the user; empty when the build just exited
    bool oom_killed = false;
    bool pids_limit_hit = false;
    std::vector<protocol::OutputEntry> outputs;
    std::vector<std::string> notices;              // e.g. special files skipped in --src
    std::string source_digest;                     // hermetic-tree/1 digest of /build as copied in
    std::map<std::string, double> phase_ms;        // where the time went (benchmarks)
    // From the determinism supervisor (absent when the policy virtualizes nothing).
    bool supervised = false;
    std::vector<std::string> unvirtualizable;      // sources this host can't virtualize
    uint64_t supervisor_events = 0;                // deviations the supervisor counted (audit cross-check)
    std::vector<std::string> supervisor_notes;     // calls failed closed, exec-time patch failures
    std::map<std::string, uint64_t> deviations_by_class;
    // The build's rusage from wait4 (its own and its waited-for descendants'):
    // utime_us, stime_us, maxrss_kb, minflt, majflt, nswap, inblock, oublock,
    // msgsnd, msgrcv, nsignals, nvcsw, nivcsw. Empty when the build never ran.
    std::map<std::string, int64_t> rusage;
};

}  // namespace hermetic::sandbox
