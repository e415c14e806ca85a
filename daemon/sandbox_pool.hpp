// Sandboxes prepared ahead of time.
//
// Creating a sandbox (runner process, namespaces, id maps, cgroup, a root file
// system of some 50 mounts) takes ~10 ms here, where a fork alone costs 1-2.5 ms.
// A refill thread keeps a few ready, each waiting for one job; a job takes one
// and only its own steps (limits, source, exec) remain on its critical path.
// Each prepared sandbox holds an id slot and its own network namespace; none is
// ever reused for a second job.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "daemon/config.hpp"
#include "daemon/id_slots.hpp"
#include "daemon/runner_process.hpp"
#include "daemon/runner_registry.hpp"
#include "sandbox/netns_pool.hpp"
#include "syscall-policy/policy_store.hpp"

namespace hermetic::daemon {

struct PreparedSandbox {
    std::string sandbox_id;
    IdLease lease;
    RunnerRecord record;  // before runner: the record goes once the runner is reaped
    RunnerProcess runner;
    std::map<std::string, double> phase_ms;  // how long preparing took, by step
    std::string prepared_policy;  // digest of the policy prepared ahead ("": none)
};

class SandboxPool {
public:
    // `likely_policy`: the policy most jobs will run under (the floor), which a
    // sandbox's supervisor prepares ahead; empty: none.
    using LikelyPolicy = std::function<std::shared_ptr<const policy::ResolvedPolicy>()>;
    SandboxPool(const DaemonConfig& config, IdSlots& ids, sandbox::NetnsPool& netns, std::string runner_path,
                LikelyPolicy likely_policy = {});
    ~SandboxPool();  // stops the refill thread; prepared sandboxes are discarded

    // A prepared sandbox: from the pool, or prepared now when the pool is empty.
    // Throws std::runtime_error with the reason preparation failed.
    PreparedSandbox take();
    [[nodiscard]] size_t ready() const;

private:
    enum class Priority { Job, Background };
    PreparedSandbox prepare(Priority priority);
    void refill_loop();

    const DaemonConfig& config_;
    IdSlots& ids_;
    sandbox::NetnsPool& netns_;
    std::string runner_path_;
    LikelyPolicy likely_policy_;
    size_t target_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<PreparedSandbox> ready_;
    bool stop_ = false;
    std::thread thread_;
};

std::string new_sandbox_id();

}  // namespace hermetic::daemon
