#include "daemon/runner_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <stdexcept>

#include "common/sys_error.hpp"
#include "sandbox/control_channel.hpp"
#include "sandbox/job_codec.hpp"
#include "sandbox/process_util.hpp"

#ifndef HERMETIC_LIBEXEC_DIR
#define HERMETIC_LIBEXEC_DIR "/usr/local/libexec/hermetic"
#endif

extern char** environ;

namespace hermetic::daemon {

using nlohmann::json;

std::string find_runner_binary() {
    // Next to hermeticd (a build tree); PREFIX/libexec/hermetic beside PREFIX/sbin
    // (an installation under any prefix: a package built from a /usr/local
    // configuration still finds its own runner); the configured libexec path.
    std::string candidates[3];
    char self[PATH_MAX];
    ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0 && self[0] == '/') {
        std::string exe(self, static_cast<size_t>(n));
        std::string dir = exe.substr(0, exe.rfind('/'));
        candidates[0] = dir + "/hermetic-runner";
        if (!dir.empty()) candidates[1] = dir.substr(0, dir.rfind('/')) + "/libexec/hermetic/hermetic-runner";
    }
    candidates[2] = std::string(HERMETIC_LIBEXEC_DIR) + "/hermetic-runner";
    for (const auto& c : candidates) {
        struct stat st{};
        if (c.empty() || ::stat(c.c_str(), &st) != 0) continue;
        // Run as root for every job: only root may be able to change it.
        if (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
            throw std::runtime_error(c + " must be owned by root and writable by nobody else");
        return c;
    }
    throw std::runtime_error("hermetic-runner not found (looked next to hermeticd, in ../libexec/hermetic beside it and in " HERMETIC_LIBEXEC_DIR ")");
}

RunnerProcess RunnerProcess::spawn(const std::string& runner_path, const sandbox::PrepareSpec& prep, UniqueFd netns) {
    sandbox::SocketPair sp = sandbox::make_socketpair();
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    // These actions and attributes are what keeps the daemon's fds, terminal and
    // signal state from the root runner: if one cannot be recorded (ENOMEM), the
    // runner is not spawned without it. Each returns an errno value.
    int setup_err = 0;
    auto step = [&setup_err](int err) {
        if (err != 0 && setup_err == 0) setup_err = err;
    };
    // fd 3 is the control socket; nothing else of the daemon's reaches the runner.
    step(posix_spawn_file_actions_adddup2(&fa, sp.b.get(), 3));
    // Its stdio is /dev/null: the daemon's terminal or journal is none of its business.
    step(posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0));
    step(posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0));
    step(posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0));
    step(posix_spawn_file_actions_addclosefrom_np(&fa, 4));
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    step(posix_spawnattr_setsigmask(&attr, &none));
    step(posix_spawnattr_setsigdefault(&attr, &all));
    // Its own process group, which its helpers, supervisor and sandbox init inherit:
    // crash recovery finds them by it (runner_registry.hpp), and a terminal's
    // Ctrl-C reaches only hermeticd, which cancels jobs in order.
    step(posix_spawnattr_setpgroup(&attr, 0));
    step(posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP));
    std::string parent = std::to_string(::getpid());
    char* argv[] = {const_cast<char*>(runner_path.c_str()), parent.data(), nullptr};
    char* envp[] = {nullptr};
    pid_t pid = -1;
    int rc = setup_err != 0 ? setup_err : posix_spawn(&pid, runner_path.c_str(), &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) throw SysError((setup_err != 0 ? "prepare to spawn " : "spawn ") + runner_path, rc);
    RunnerProcess r;
    r.pid_ = pid;
    r.control_ = std::move(sp.a);
    int nfd = netns.get();
    sandbox::send_control(r.control_.get(), json{{"prepare", prep}}, std::span<const int>(&nfd, 1));
    return r;
}

RunnerProcess::RunnerProcess(RunnerProcess&& o) noexcept : pid_(std::exchange(o.pid_, -1)), control_(std::move(o.control_)) {}

RunnerProcess& RunnerProcess::operator=(RunnerProcess&& o) noexcept {
    if (this != &o) {
        this->~RunnerProcess();
        pid_ = std::exchange(o.pid_, -1);
        control_ = std::move(o.control_);
    }
    return *this;
}

RunnerProcess::~RunnerProcess() {
    control_.reset();  // a waiting runner discards its sandbox on EOF
    if (pid_ > 0) {
        // A prepared runner that sees EOF removes its cgroup and exits within
        // milliseconds; give it that chance (else its cgroup waits for the next
        // start's recovery), then make sure.
        for (int i = 0; i < 100; ++i) {
            pid_t r = ::waitpid(pid_, nullptr, WNOHANG);
            if (r == pid_ || (r < 0 && errno != EINTR)) {
                pid_ = -1;
                return;
            }
            ::usleep(10'000);
        }
        ::kill(pid_, SIGKILL);
        while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
        }
        pid_ = -1;
    }
}

RunnerProcess::Ready RunnerProcess::wait_ready(std::chrono::milliseconds timeout) {
    pollfd p{control_.get(), POLLIN, 0};
    int rc;
    do {
        rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
    } while (rc < 0 && errno == EINTR);
    if (rc == 0) throw std::runtime_error("sandbox preparation timed out");
    auto m = sandbox::receive_control(control_.get());
    if (!m) throw std::runtime_error("the sandbox runner exited while preparing");
    if (m->body.contains("failed")) throw std::runtime_error(m->body["failed"].get<std::string>());
    if (!m->body.contains("ready")) throw std::runtime_error("unexpected message from the sandbox runner");
    return {m->body.value("phase_ms", std::map<std::string, double>{}), m->body.value("prepared_policy", "")};
}

bool RunnerProcess::still_ready() const {
    if (pid_ <= 0 || !control_) return false;
    pollfd p{control_.get(), POLLIN, 0};
    return ::poll(&p, 1, 0) == 0;  // anything to read now (EOF, failure) means it's gone
}

void RunnerProcess::run(const sandbox::RunSpec& spec, sandbox::RunFds fds) {
    std::vector<int> pass = {fds.stdout_w.get(), fds.stderr_w.get(), fds.deviations_w.get(), fds.src_dir.get()};
    if (spec.has_out) pass.push_back(fds.out_dir.get());
    sandbox::send_control(control_.get(), json{{"run", spec}}, pass);
}

void RunnerProcess::set_nice(int nice) const noexcept {
    // PRIO_PGRP: the runner leads its own group (POSIX_SPAWN_SETPGROUP), and all
    // of its sandbox's processes are in it; processes forked later inherit it.
    if (pid_ > 0) (void)::setpriority(PRIO_PGRP, static_cast<id_t>(pid_), nice);
}

void RunnerProcess::cancel() const noexcept {
    if (pid_ > 0) ::kill(pid_, SIGTERM);
}

sandbox::JobOutcome RunnerProcess::finish() noexcept {
    sandbox::JobOutcome o;
    std::string why;
    try {
        auto m = sandbox::receive_control(control_.get());
        if (m && m->body.contains("outcome")) o = m->body["outcome"].get<sandbox::JobOutcome>();
        else why = "the job runner ended without an outcome";
    } catch (const std::exception& e) {
        why = std::string("the job runner's report was unreadable: ") + e.what();
    }
    control_.reset();
    if (!why.empty()) {
        const int status = reap();
        o = {};
        o.status = sandbox::JobStatus::SetupFailed;
        o.reason = why + (WIFSIGNALED(status) ? " (signal " + std::to_string(WTERMSIG(status)) + ")" : "");
    }
    return o;
}

int RunnerProcess::reap() noexcept {
    int status = 0;
    if (pid_ <= 0) return status;
    try {
        status = sandbox::wait_for(pid_);
    } catch (...) {
    }
    pid_ = -1;
    return status;
}

}  // namespace hermetic::daemon
