// Forks the per-job runner (sandbox::run_job) from the daemon and reads its
// outcome back. The runner is a separate process so that whatever a job does to
// it, the daemon stays up; it dies with the job thread that forked it
// (PR_SET_PDEATHSIG), and so does the whole sandbox with it.
#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>

#include "common/unique_fd.hpp"
#include "sandbox/job_spec.hpp"

namespace hermetic::daemon {

class RunnerProcess {
public:
    // Forks; the child runs the job and writes the outcome as JSON on a pipe.
    static RunnerProcess start(sandbox::JobSpec spec, const sandbox::SandboxConfig& config);

    RunnerProcess() = default;
    RunnerProcess(RunnerProcess&&) noexcept;
    RunnerProcess& operator=(RunnerProcess&&) noexcept;
    ~RunnerProcess();  // a runner still alive is killed (its sandbox dies with it)

    [[nodiscard]] int result_fd() const { return result_.get(); }
    [[nodiscard]] pid_t pid() const { return pid_; }
    // Asks the runner to cancel (it tears the sandbox down and reports Cancelled).
    void cancel() const noexcept;
    // After result_fd hit EOF: parse what was read and reap the runner.
    sandbox::JobOutcome finish(const std::string& result_bytes);

private:
    pid_t pid_ = -1;
    UniqueFd result_;
};

nlohmann::json outcome_to_json(const sandbox::JobOutcome& o);
sandbox::JobOutcome outcome_from_json(const nlohmann::json& j);

}  // namespace hermetic::daemon
