// Per-job control groups: memory, pids and CPU limits, OOM detection, teardown.
//
// cgroup v2 where the host's unified hierarchy offers the controllers (most hosts);
// v1 memory, pids and cpu hierarchies otherwise (this CI machine). Each daemon has
// its own parent ("hermetic" by default, configurable), so two daemons on one host
// never see or remove each other's job cgroups.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.hpp"

namespace hermetic::sandbox {

enum class CgroupVersion { V1, V2 };

struct CgroupConfig {
    std::string root = "/sys/fs/cgroup";  // where the hierarchies are mounted
    std::string parent = "hermetic";      // relative to each hierarchy root (v1) or to `root` (v2)
    // Skips detection when set. V2 then needs `root` to be a cgroup2 directory but
    // not the memory/pids controllers (a job asking for a limit still needs its
    // controller); V1 looks for the hierarchies mounted under `root`.
    std::optional<CgroupVersion> version;
};

struct CgroupLimits {
    uint64_t memory_bytes = 0;  // 0: no limit. Swap is disabled where the kernel allows.
    uint64_t pids_max = 0;      // 0: no limit
    double cpus = 0;            // CPU bandwidth in CPUs (1.5 = 150 ms per 100 ms); 0: no limit
};

// Which hierarchy to use, by looking at what is mounted under config.root.
// Throws SysError if neither v2 with memory+pids nor v1 memory+pids is usable.
CgroupVersion detect_cgroup_version(const CgroupConfig& config);

// One job's cgroup(s). Creating it applies the limits; destroying it kills whatever
// is still inside and removes the directories (RAII: a failed job leaves nothing).
class JobCgroup {
public:
    // `name` is the job id ([a-z0-9-]). Throws SysError naming the failed step.
    static JobCgroup create(const CgroupConfig& config, const std::string& name, const CgroupLimits& limits);

    JobCgroup(JobCgroup&&) noexcept;
    JobCgroup& operator=(JobCgroup&&) noexcept;
    JobCgroup(const JobCgroup&) = delete;
    JobCgroup& operator=(const JobCgroup&) = delete;
    ~JobCgroup();

    // Applies (or changes) the limits: a pooled sandbox's cgroup is created ahead of
    // time with the daemon's defaults and gets the job's own limits when it starts.
    void set_limits(const CgroupLimits& limits);
    [[nodiscard]] CgroupVersion version() const;
    // v2: an O_DIRECTORY fd of the job cgroup, for clone3(CLONE_INTO_CGROUP). v1: -1.
    [[nodiscard]] int v2_dir_fd() const;
    // Moves a process (and, being cgroup.procs, its threads) into every hierarchy.
    void attach(pid_t pid);
    // Whether the memory limit killed something (v2 memory.events oom_kill; v1
    // memory.oom_control oom_kill, falling back to memory.failcnt).
    [[nodiscard]] bool oom_killed() const;
    // Whether fork/clone hit pids.max (pids.events "max").
    [[nodiscard]] bool pids_limit_hit() const;
    // Peak memory in bytes if the kernel reports it (memory.peak / max_usage_in_bytes).
    [[nodiscard]] std::optional<uint64_t> memory_peak() const;
    // SIGKILLs every process inside (cgroup.kill on v2 >= 5.14, else cgroup.procs
    // loop with freezing where available) and waits until the cgroup is empty.
    void kill_all();
    // kill_all() then rmdir of every directory; idempotent. Throws on failure.
    void remove();

private:
    struct Impl;
    explicit JobCgroup(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// Crash recovery: the names of job cgroups left under this daemon's parent.
std::vector<std::string> list_job_cgroups(const CgroupConfig& config);
// Kills and removes a leftover job cgroup by name (crash recovery). Idempotent.
void remove_job_cgroup(const CgroupConfig& config, const std::string& name);

}  // namespace hermetic::sandbox
