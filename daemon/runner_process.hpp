// One hermetic-runner process as the daemon sees it. Spawned with posix_spawn
// (vfork + exec: cheap, and safe from a multithreaded daemon), it prepares a
// sandbox, reports "ready", takes one job and reports its outcome. It dies with
// the daemon thread that spawned it (PR_SET_PDEATHSIG), and its sandbox with it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>

#include "common/unique_fd.hpp"
#include "sandbox/job_spec.hpp"

namespace hermetic::daemon {

class RunnerProcess {
public:
    // Spawns `runner_path` and sends it the preparation. Doesn't wait.
    static RunnerProcess spawn(const std::string& runner_path, const sandbox::PrepareSpec& prep, UniqueFd netns);

    RunnerProcess() = default;
    RunnerProcess(RunnerProcess&&) noexcept;
    RunnerProcess& operator=(RunnerProcess&&) noexcept;
    ~RunnerProcess();  // a runner still alive is killed (its sandbox dies with it)

    // Waits for "ready"; throws std::runtime_error with the runner's reason.
    struct Ready {
        std::map<std::string, double> phase_ms;  // how long preparing took, by step
        std::string prepared_policy;  // digest of the policy its supervisor prepared ahead ("": none)
    };
    Ready wait_ready(std::chrono::milliseconds timeout);
    // Whether a prepared runner is still waiting (no EOF, no message on its socket).
    [[nodiscard]] bool still_ready() const;
    // Hands over the job; the fds are sent and closed here.
    void run(const sandbox::RunSpec& spec, sandbox::RunFds fds);
    [[nodiscard]] int control_fd() const { return control_.get(); }
    [[nodiscard]] pid_t pid() const { return pid_; }
    // The scheduling priority (nice value) of the runner and everything of its
    // sandbox (its process group: init, supervisor, helpers). Best effort: a
    // runner that is gone has no priority to set.
    void set_nice(int nice) const noexcept;
    // Asks the runner to cancel (it tears the sandbox down and reports Cancelled).
    void cancel() const noexcept;
    // Reads the outcome (control_fd is readable). Never throws: a runner that
    // died reports as a failed job with the reason (it is reaped for it). One
    // that reported is reaped by reap(): after its outcome it still removes its
    // empty cgroup, which the daemon need not wait for to answer the client.
    sandbox::JobOutcome finish() noexcept;
    int reap() noexcept;  // the wait status (0 if there is no runner to reap)

private:
    pid_t pid_ = -1;
    UniqueFd control_;
};

// The hermetic-runner binary: next to hermeticd, else in libexec/hermetic beside
// hermeticd's directory, else the configured libexec path.
// Throws if it is missing or could be changed by anyone but root.
std::string find_runner_binary();

}  // namespace hermetic::daemon
