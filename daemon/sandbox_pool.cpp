#include "daemon/sandbox_pool.hpp"

#include <openssl/rand.h>

#include <spdlog/spdlog.h>

#include "common/sha256.hpp"
#include "daemon/journal.hpp"

namespace hermetic::daemon {

namespace {
constexpr auto kPrepareTimeout = std::chrono::seconds(30);
// The pool refills while jobs run: at the lowest priority, so that on a busy
// host (or one with few CPUs) the next job's preparation takes only what the
// running jobs leave. A job's sandbox runs at the normal priority.
constexpr int kBackgroundNice = 19, kJobNice = 0;
}

std::string new_sandbox_id() {
    unsigned char r[4];
    if (RAND_bytes(r, sizeof r) != 1) throw std::runtime_error("RAND_bytes failed");
    char t[32];
    snprintf(t, sizeof t, "sb-%llx-", static_cast<unsigned long long>(now_ms()));
    return t + to_hex(r, sizeof r);
}

SandboxPool::SandboxPool(const DaemonConfig& config, IdSlots& ids, sandbox::NetnsPool& netns, std::string runner_path,
                         LikelyPolicy likely_policy)
    : config_(config),
      ids_(ids),
      netns_(netns),
      runner_path_(std::move(runner_path)),
      likely_policy_(std::move(likely_policy)),
      target_(config.sandbox_pool) {
    if (target_ > 0) thread_ = std::thread([this] { refill_loop(); });
}

SandboxPool::~SandboxPool() {
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

size_t SandboxPool::ready() const {
    std::lock_guard lock(mu_);
    return ready_.size();
}

PreparedSandbox SandboxPool::prepare(Priority priority) {
    PreparedSandbox sb;
    sb.sandbox_id = new_sandbox_id();
    auto lease = ids_.acquire();
    if (!lease) throw std::runtime_error("no free sandbox ids (id-count too small for max-jobs + sandbox-pool)");
    sb.lease = std::move(*lease);
    sandbox::PrepareSpec prep;
    prep.sandbox_id = sb.sandbox_id;
    prep.ids = sb.lease.ids();
    prep.config = config_.sandbox;
    prep.default_limits = {config_.default_memory, config_.pids_max, config_.cpu_limit};
    if (likely_policy_) {
        // What jobs that name no policy run under: prepared with the sandbox.
        try {
            auto p = likely_policy_();
            prep.likely_policy = p->policy;
            prep.likely_digest = p->digest();
        } catch (const std::exception& e) {
            spdlog::warn("sandbox {}: no policy prepared ahead: {}", sb.sandbox_id, e.what());
        }
    }
    sb.runner = RunnerProcess::spawn(runner_path_, prep, netns_.take());
    if (priority == Priority::Background) sb.runner.set_nice(kBackgroundNice);
    sb.record = RunnerRecord::create(config_.state_dir + "/runners", sb.sandbox_id, sb.runner.pid());
    auto ready = sb.runner.wait_ready(kPrepareTimeout);
    sb.phase_ms = std::move(ready.phase_ms);
    sb.prepared_policy = std::move(ready.prepared_policy);
    return sb;
}

PreparedSandbox SandboxPool::take() {
    {
        std::lock_guard lock(mu_);
        while (!ready_.empty()) {
            PreparedSandbox sb = std::move(ready_.front());
            ready_.pop_front();
            cv_.notify_all();
            if (sb.runner.still_ready()) {
                sb.runner.set_nice(kJobNice);
                return sb;
            }
            spdlog::warn("prepared sandbox {} died while waiting; discarding it", sb.sandbox_id);
        }
    }
    cv_.notify_all();
    return prepare(Priority::Job);
}

void SandboxPool::refill_loop() {
    // Runners spawned here die with this thread (PR_SET_PDEATHSIG), i.e. with the pool.
    int failures = 0;
    std::unique_lock lock(mu_);
    while (!stop_) {
        if (ready_.size() >= target_) {
            cv_.wait(lock, [&] { return stop_ || ready_.size() < target_; });
            continue;
        }
        lock.unlock();
        try {
            PreparedSandbox sb = prepare(Priority::Background);
            failures = 0;
            lock.lock();
            ready_.push_back(std::move(sb));
            continue;
        } catch (const std::exception& e) {
            spdlog::error("preparing a sandbox: {}", e.what());
            ++failures;
        }
        lock.lock();
        // Back off instead of spinning on a persistent failure; take() still
        // prepares synchronously and reports the reason to the client.
        cv_.wait_for(lock, std::chrono::milliseconds(std::min(5000, 100 << std::min(failures, 6))),
                     [&] { return stop_; });
    }
    ready_.clear();
}

}  // namespace hermetic::daemon
