#include "daemon/runner_process.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/io.hpp"
#include "common/sys_error.hpp"
#include "sandbox/job_runner.hpp"
#include "sandbox/process_util.hpp"

namespace hermetic::daemon {

using nlohmann::json;

json outcome_to_json(const sandbox::JobOutcome& o) {
    return json{{"status", static_cast<int>(o.status)},
                {"exit_code", o.exit_code},
                {"signal", o.signal},
                {"reason", o.reason},
                {"oom_killed", o.oom_killed},
                {"pids_limit_hit", o.pids_limit_hit},
                {"outputs", o.outputs},
                {"notices", o.notices},
                {"phase_ms", o.phase_ms}};
}

sandbox::JobOutcome outcome_from_json(const json& j) {
    sandbox::JobOutcome o;
    int st = j.at("status").get<int>();
    if (st < 0 || st > static_cast<int>(sandbox::JobStatus::LimitExceeded)) throw std::runtime_error("bad status");
    o.status = static_cast<sandbox::JobStatus>(st);
    o.exit_code = j.value("exit_code", 0);
    o.signal = j.value("signal", 0);
    o.reason = j.value("reason", "");
    o.oom_killed = j.value("oom_killed", false);
    o.pids_limit_hit = j.value("pids_limit_hit", false);
    o.outputs = j.value("outputs", std::vector<protocol::OutputEntry>{});
    o.notices = j.value("notices", std::vector<std::string>{});
    o.phase_ms = j.value("phase_ms", std::map<std::string, double>{});
    return o;
}

RunnerProcess RunnerProcess::start(sandbox::JobSpec spec, const sandbox::SandboxConfig& config) {
    FdPair pipe = make_pipe();
    pid_t pid = ::fork();
    if (pid < 0) throw_errno("fork job runner");
    if (pid == 0) {
        // Single-threaded copy of the daemon from here on: drop every fd that isn't
        // this job's (other clients' sockets, the journal, other jobs' pipes).
        int code = 0;
        try {
            sandbox::close_fds_except({spec.src_dir.get(), spec.out_dir.get(), spec.netns.get(), spec.stdout_fd,
                                       spec.stderr_fd, pipe.write.get()});
            sandbox::harden_child_process();
            // Cancellation (SIGTERM) stays blocked until the runner's signalfd takes
            // it; everything else the daemon's threads blocked is unblocked.
            sigset_t mask;
            sigemptyset(&mask);
            sigaddset(&mask, SIGTERM);
            sigaddset(&mask, SIGINT);
            ::sigprocmask(SIG_SETMASK, &mask, nullptr);
            auto outcome = sandbox::run_job(spec, config);
            write_all(pipe.write.get(),
                      outcome_to_json(outcome).dump(-1, ' ', false, json::error_handler_t::replace));
        } catch (...) {
            code = 1;
        }
        ::_exit(code);
    }
    RunnerProcess r;
    r.pid_ = pid;
    r.result_ = std::move(pipe.read);
    return r;
}

RunnerProcess::RunnerProcess(RunnerProcess&& o) noexcept : pid_(std::exchange(o.pid_, -1)), result_(std::move(o.result_)) {}

RunnerProcess& RunnerProcess::operator=(RunnerProcess&& o) noexcept {
    if (this != &o) {
        pid_ = std::exchange(o.pid_, -1);
        result_ = std::move(o.result_);
    }
    return *this;
}

RunnerProcess::~RunnerProcess() {
    if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
        }
    }
}

void RunnerProcess::cancel() const noexcept {
    if (pid_ > 0) ::kill(pid_, SIGTERM);
}

sandbox::JobOutcome RunnerProcess::finish(const std::string& bytes) {
    int status = sandbox::wait_for(pid_);
    pid_ = -1;
    result_.reset();
    auto j = json::parse(bytes, nullptr, false);
    if (!j.is_discarded() && j.is_object()) {
        try {
            return outcome_from_json(j);
        } catch (const std::exception&) {
        }
    }
    sandbox::JobOutcome o;
    o.status = sandbox::JobStatus::SetupFailed;
    o.reason = "job runner died (" +
               (WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status))
                                    : "status " + std::to_string(sandbox::exit_status_of(status))) +
               ")";
    return o;
}

}  // namespace hermetic::daemon
