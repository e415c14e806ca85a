// Accepts jobs, journals them durably, admits them to run (concurrency limit,
// bounded queue, per-user limits), runs each on its own thread through a forked
// job runner, relays its output, and records its result.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "daemon/config.hpp"
#include "daemon/id_slots.hpp"
#include "daemon/job.hpp"
#include "daemon/journal.hpp"
#include "daemon/sandbox_pool.hpp"
#include "syscall-policy/policy.hpp"

namespace hermetic::daemon {

// A refused submission: `code` is a protocol::error_code, the message one line.
class SubmitError : public std::runtime_error {
public:
    SubmitError(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
    [[nodiscard]] const std::string& code() const { return code_; }

private:
    std::string code_;
};

struct Submitted {
    std::shared_ptr<Job> job;
    std::shared_ptr<Subscription> subscription;  // subscribed before the job starts
};

class JobManager {
public:
    JobManager(const DaemonConfig& config, Journal& journal, SandboxPool& sandboxes, const policy::CompiledPolicy& policy);
    ~JobManager();  // cancels what is left and joins every job thread

    // Validates and plans the request, journals the job (fsynced), subscribes the
    // caller and starts it. `fds`: [src] or [src, out]. Throws SubmitError.
    Submitted submit(const protocol::RunRequest& req, const Peer& peer, std::vector<UniqueFd> fds);

    // A job still queued or running, or nullptr.
    std::shared_ptr<Job> find(const std::string& id);


    // Stop admitting; cancel everything after `grace`.
    void shutdown(std::chrono::milliseconds grace);

    [[nodiscard]] size_t running() const;

    std::string job_dir(const std::string& id) const;

private:
    JobPlan plan(const protocol::RunRequest& req, std::vector<UniqueFd>& fds) const;
    void run(const std::shared_ptr<Job>& job);
    bool wait_for_slot(const std::shared_ptr<Job>& job);
    void execute(const std::shared_ptr<Job>& job);
    void complete(const std::shared_ptr<Job>& job, protocol::JobResult result);

    const DaemonConfig& config_;
    Journal& journal_;
    SandboxPool& sandboxes_;
    const policy::CompiledPolicy& policy_;

    mutable std::mutex mu_;
    std::condition_variable slot_cv_;
    std::map<std::string, std::shared_ptr<Job>> active_;
    std::map<uid_t, uint32_t> per_user_;
    uint32_t running_ = 0;
    uint32_t queued_ = 0;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

// At start-up, before any sandbox exists: every job the journal shows as accepted
// or running was cut short by a crash: mark it interrupted; remove every cgroup
// left under this daemon's parent (sandboxes of the previous life).
void recover_after_crash(const DaemonConfig& config, Journal& journal);

// The contract's mapping from a sandbox outcome to what the client sees.
protocol::JobResult make_result(const std::string& job_id, const sandbox::JobOutcome& outcome);

std::string new_job_id();

}  // namespace hermetic::daemon
