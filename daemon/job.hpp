// One job as the daemon tracks it while it is queued or running.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.hpp"
#include "daemon/output_stream.hpp"
#include "daemon/peer.hpp"
#include "protocol/messages.hpp"
#include "sandbox/job_spec.hpp"
#include "syscall-policy/policy_store.hpp"

namespace hermetic::daemon {

// Everything decided at submission, before the job is journaled.
struct JobPlan {
    protocol::RunRequest request;
    std::vector<std::string> env;
    int64_t epoch = 0;
    int64_t clock_step_ns = sandbox::determinism::kDefaultClockStepNs;
    uint32_t cpus_visible = 2;
    sandbox::CgroupLimits limits;
    std::chrono::milliseconds timeout{0};
    UniqueFd src_dir;
    UniqueFd out_dir;
    std::shared_ptr<const policy::ResolvedPolicy> policy;  // kept for the job's whole life
    // In place (the Buildbarn runner): src_dir is the input root the build works
    // in; its output also goes to these files (besides the job's output log).
    std::optional<sandbox::InPlaceRoot> in_place;
    UniqueFd stdout_file, stderr_file;
};

class Job {
public:
    Job(std::string id, Peer owner, JobPlan plan) : id_(std::move(id)), owner_(std::move(owner)), plan_(std::move(plan)) {}

    [[nodiscard]] const std::string& id() const { return id_; }
    [[nodiscard]] const Peer& owner() const { return owner_; }
    [[nodiscard]] std::shared_ptr<Subscription> subscribe() { return hub_.subscribe(); }

    // Queued: the job never starts. Running: the runner tears the sandbox down.
    void cancel();
    [[nodiscard]] bool cancel_requested() const { return cancel_.load(); }
    // cancel() on the daemon's behalf (shutdown): the job ends "interrupted" with
    // this reason instead of "cancelled".
    void interrupt(std::string reason);
    [[nodiscard]] std::optional<std::string> interrupt_reason() const;

    [[nodiscard]] std::string state() const;
    [[nodiscard]] std::optional<protocol::JobResult> result() const;
    // The build's rusage (JobOutcome::rusage), once the job is finished.
    [[nodiscard]] std::map<std::string, int64_t> resource_usage() const;

    // For late followers (logs --follow, wait, an idempotent replay), who tail the
    // stored log: waits until the log grew past `seen` or the job finished, at most
    // `timeout`. Returns the new version; `finished` tells whether more can come.
    uint64_t wait_progress(uint64_t seen, std::chrono::milliseconds timeout, bool& finished) const;

private:
    friend class JobManager;
    void set_state(std::string s);
    void set_runner_pid(pid_t pid);
    void note_progress(bool finished = false);

    std::string id_;
    Peer owner_;
    JobPlan plan_;
    OutputHub hub_;
    std::atomic<bool> cancel_{false};
    mutable std::mutex mu_;
    std::string state_ = "accepted";
    pid_t runner_pid_ = -1;
    std::optional<std::string> interrupt_reason_;
    std::optional<protocol::JobResult> result_;
    std::map<std::string, int64_t> rusage_;
    mutable std::condition_variable progress_cv_;
    uint64_t progress_ = 0;
    bool finished_ = false;
    // Where the time went, for the benchmark breakdown (job thread only).
    std::map<std::string, double> phase_ms_;
    std::chrono::steady_clock::time_point submitted_;
};

}  // namespace hermetic::daemon
