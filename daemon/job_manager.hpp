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
#include "daemon/audit_writer.hpp"
#include "daemon/signing_key.hpp"
#include "syscall-policy/policy_store.hpp"

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
    std::string id;
    std::shared_ptr<Job> job;                    // null when an existing, finished job is replayed
    std::shared_ptr<Subscription> subscription;  // a new job: subscribed before it starts
    bool existing = false;                       // --key matched an earlier submission
};

// A job that works in place in an input root (the Buildbarn runner,
// runner/): the action's own argv, environment and working directory, with
// descriptors its caller opened beneath its build directory.
struct InPlaceRequest {
    std::vector<std::string> argv;
    std::vector<std::pair<std::string, std::string>> env;  // exactly the build's environment
    std::string workdir;        // below the input root ("" = the root), already checked to be a directory there
    UniqueFd input_root;        // the directory mounted as /build
    UniqueFd stdout_file, stderr_file;  // the build's output goes here too
};

// A job as a client may see it: its journal record, and the live job while it runs.
struct JobView {
    JobRecord record;
    std::shared_ptr<Job> active;
};

// Counters for `hermeticctl metrics`.
struct JobMetrics {
    std::map<std::string, uint64_t> refusals;  // by reason code
    uint64_t finished = 0;
    double duration_sum_s = 0;
    std::vector<uint64_t> duration_buckets;    // cumulative counts per kDurationBuckets bound
    std::map<std::string, uint64_t> deviations;  // audited deviations by class
};
inline constexpr double kDurationBuckets[] = {0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 1800, 3600};

class JobManager {
public:
    // The evidence side: every job's deviations are chained and signed.
    struct Evidence {
        SigningKeys* keys = nullptr;
        RootfsIdentityCache* rootfs = nullptr;
    };
    JobManager(const DaemonConfig& config, Journal& journal, SandboxPool& sandboxes, policy::PolicyStore& policies,
               Evidence evidence);
    ~JobManager();  // cancels what is left and joins every job thread

    // Validates and plans the request, journals the job (fsynced), subscribes the
    // caller and starts it. `fds`: [src] or [src, out]. Throws SubmitError.
    Submitted submit(const protocol::RunRequest& req, const Peer& peer, std::vector<UniqueFd> fds);
    // The same for a job in place (the admin's floor policy, the default limits,
    // epoch and seed): journaled, admitted, audited and signed like any other.
    Submitted submit_in_place(InPlaceRequest req, const Peer& peer);

    // A job still queued or running, or nullptr.
    std::shared_ptr<Job> find(const std::string& id);
    // Any job the requester may see (its own; root: all). Throws SubmitError
    // not-found (also for other users' jobs: their existence is not disclosed).
    JobView view(const std::string& id, uid_t requester);
    // Cancels a queued or running job of the requester's (root: any).
    void cancel(const std::string& id, uid_t requester);
    // Journal records the requester may see, newest first.
    std::vector<JobRecord> list(uid_t requester, size_t limit);

    // Retention: removes finished jobs (journal rows, logs, evidence) beyond the
    // configured age, count and size, oldest first. Never touches queued or running
    // jobs. Returns how many were removed.
    size_t collect_garbage();
    [[nodiscard]] JobMetrics metrics() const;
    [[nodiscard]] size_t queued() const;
    [[nodiscard]] Journal& journal() { return journal_; }


    // SIGTERM: stop admitting; queued jobs end at once as interrupted; running
    // ones get `grace` to finish, then are cancelled, their sandboxes torn down and
    // journaled as interrupted with the reason. Returns once every job is journaled.
    void shutdown(std::chrono::milliseconds grace);
    // A second SIGTERM during shutdown: end the grace period now.
    void interrupt_now();

    // What SIGHUP may change while jobs run: admission and retention.
    struct Limits {
        uint32_t max_jobs = 0;
        uint32_t max_queued = 0;
        uint32_t max_jobs_per_user = 0;
        uint32_t retain_days = 0;
        uint32_t retain_jobs = 0;
        uint64_t retain_bytes = 0;
        static Limits from(const DaemonConfig& c);
    };
    // In force from the next decision on: a higher max-jobs starts queued jobs at
    // once; a lower limit never stops a job already admitted.
    void set_limits(const Limits& limits);
    [[nodiscard]] Limits limits() const;
    [[nodiscard]] uint64_t reloads() const;  // set_limits calls so far

    [[nodiscard]] size_t running() const;

    std::string job_dir(const std::string& id) const;

private:
    JobPlan plan(const protocol::RunRequest& req, std::vector<UniqueFd>& fds);
    // Admission, the journal record, the job's thread: the part every submission shares.
    Submitted enqueue(JobPlan p, const Peer& peer, const std::string& digest);
    // Signs the evidence; returns the audit digest (empty if it could not be written).
    std::string seal_evidence(const std::shared_ptr<Job>& job, AuditWriter& audit, const sandbox::JobOutcome& outcome,
                              const protocol::JobResult& result);
    void run(const std::shared_ptr<Job>& job);
    enum class Slot { Granted, Cancelled, ShuttingDown };
    Slot wait_for_slot(const std::shared_ptr<Job>& job);
    void execute(const std::shared_ptr<Job>& job);
    void complete(const std::shared_ptr<Job>& job, protocol::JobResult result);
    void count_refusal(const std::string& code);
    void start(const std::shared_ptr<Job>& job);

    const DaemonConfig& config_;
    Journal& journal_;
    SandboxPool& sandboxes_;
    policy::PolicyStore& policies_;
    Evidence evidence_;

    mutable std::mutex mu_;
    std::condition_variable slot_cv_;
    std::condition_variable idle_cv_;  // a job left active_, or interrupt_now()
    Limits limits_;
    uint64_t reloads_ = 0;
    bool interrupt_now_ = false;
    std::mutex gc_mu_;
    std::map<std::string, std::shared_ptr<Job>> active_;
    std::map<uid_t, uint32_t> per_user_;
    uint32_t running_ = 0;
    uint32_t queued_ = 0;
    bool stopping_ = false;
    std::map<std::string, std::thread> threads_;  // job threads by job id
    std::vector<std::thread> ended_;               // their job is done; joined by the next start()
    std::mutex key_mu_;  // one submission per (user, key) decides at a time
    JobMetrics metrics_;
};

// At start-up, before any sandbox exists: kill the runners (and their helpers)
// the previous life left (runner_registry.hpp) and wait until they are gone;
// remove every cgroup left under this daemon's parent, killing what is inside
// (sandboxes of the previous life, builds included); then mark every job the
// journal shows as accepted or running interrupted, with the reason.
void recover_after_crash(const DaemonConfig& config, Journal& journal);

// The contract's mapping from a sandbox outcome to what the client sees.
protocol::JobResult make_result(const std::string& job_id, const sandbox::JobOutcome& outcome);

std::string new_job_id();

// What makes two submissions "the same request" for --key: everything but the key.
std::string request_digest(const protocol::RunRequest& req);

}  // namespace hermetic::daemon
