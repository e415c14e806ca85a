// A small self-contained sandbox for the engine's own tests and benchmarks, and
// the reference for integrating the hooks (each hook is called exactly where the
// job runner, init and build_exec must call it).
//
// The test process (root) clones an init into new user, pid, mount, UTS, IPC and
// network namespaces; init builds a tmpfs root with the host's /usr (read-only), /etc
// (read-only, generated passwd/group/hosts/machine-id), private /build, /out,
// /tmp, a minimal /dev, /proc and /sys, mounts the served files, pivots, enters
// a time namespace and forks the build as uid 1000 with no_new_privs and the
// baseline (+ determinism) seccomp policy. Without `determinism` the same
// sandbox runs with the baseline alone (the comparison runs of the benchmarks).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sandbox/determinism/config.hpp"
#include "sandbox/deviation.hpp"

namespace hermetic::sandbox::determinism {

struct MiniSandboxOptions {
    std::vector<std::string> argv;             // argv[0]: an absolute path inside the sandbox
    std::vector<std::string> extra_env;        // "K=V", after the contract's environment
    // Created in /build before the build starts, in this order: "dir/" makes a
    // directory, anything else a file with the given content.
    std::vector<std::pair<std::string, std::string>> files;
    std::string host_dir_ro;                   // bound read-only at /host (probe binaries)
    std::optional<int> cpu;                    // run the whole sandbox on this CPU only
    bool determinism = true;
    // config.policy: the build's policy; unset: the baseline plus the
    // determinism rules (the baseline alone without `determinism`).
    DeterminismConfig config;
    // The policy given to the supervisor ahead (Supervisor::prepare_policy), as
    // the sandbox pool does, and the configuration without it (its digest:
    // config.policy_digest if set, else the compiled policy's).
    bool policy_ahead = false;
    std::chrono::seconds timeout{300};
};

struct MiniSandboxResult {
    int status = -1;         // the build's exit code, 128+N for signal N, 125 for a setup failure
    std::string out, err;
    Summary summary;
    std::vector<Deviation> deviations;
    double wall_ms = 0;      // from clone to the build's end
    double build_cpu_ms = 0; // CPU time of init and everything it reaped (the build)
};

MiniSandboxResult run_mini_sandbox(const MiniSandboxOptions& options);

// A sink that keeps everything (tests).
class CollectingSink : public DeviationSink {
public:
    void record(Deviation d) override {
        std::lock_guard lock(mu_);
        all_.push_back(std::move(d));
    }
    std::vector<Deviation> take() {
        std::lock_guard lock(mu_);
        return std::move(all_);
    }

private:
    std::mutex mu_;
    std::vector<Deviation> all_;
};

}  // namespace hermetic::sandbox::determinism
