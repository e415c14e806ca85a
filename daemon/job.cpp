#include "daemon/job.hpp"

#include <signal.h>

namespace hermetic::daemon {

void Job::cancel() {
    cancel_ = true;
    std::lock_guard lock(mu_);
    // The runner is our child and not yet reaped, so its pid can't be reused.
    if (runner_pid_ > 0) ::kill(runner_pid_, SIGTERM);
}

void Job::interrupt(std::string reason) {
    {
        std::lock_guard lock(mu_);
        if (!interrupt_reason_) interrupt_reason_ = std::move(reason);
    }
    cancel();
}

std::optional<std::string> Job::interrupt_reason() const {
    std::lock_guard lock(mu_);
    return interrupt_reason_;
}

std::string Job::state() const {
    std::lock_guard lock(mu_);
    return state_;
}

std::optional<protocol::JobResult> Job::result() const {
    std::lock_guard lock(mu_);
    return result_;
}

std::map<std::string, int64_t> Job::resource_usage() const {
    std::lock_guard lock(mu_);
    return rusage_;
}

uint64_t Job::wait_progress(uint64_t seen, std::chrono::milliseconds timeout, bool& finished) const {
    std::unique_lock lock(mu_);
    progress_cv_.wait_for(lock, timeout, [&] { return finished_ || progress_ != seen; });
    finished = finished_;
    return progress_;
}

void Job::note_progress(bool finished) {
    {
        std::lock_guard lock(mu_);
        ++progress_;
        finished_ = finished_ || finished;
    }
    progress_cv_.notify_all();
}

void Job::set_state(std::string s) {
    std::lock_guard lock(mu_);
    state_ = std::move(s);
}

void Job::set_runner_pid(pid_t pid) {
    std::lock_guard lock(mu_);
    runner_pid_ = pid;
    if (pid > 0 && cancel_) ::kill(pid, SIGTERM);
}

}  // namespace hermetic::daemon
