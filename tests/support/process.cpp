#include "tests/support/process.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

namespace hermetic::test {

std::string ProcessResult::describe() const {
    return "status " + std::to_string(status) + (timed_out ? " (timed out)" : "") + "\n--- stdout ---\n" + out +
           "\n--- stderr ---\n" + err;
}

ProcessResult run_process(const std::vector<std::string>& argv, const ProcessOptions& opts) {
    int out[2], err[2], in[2];
    if (::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC) || ::pipe2(in, O_CLOEXEC))
        throw std::runtime_error("pipe2 failed");
    std::vector<std::string> env = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"};
    for (const auto& [k, v] : opts.env) env.push_back(k + "=" + v);
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        ::dup2(in[0], 0);
        ::dup2(out[1], 1);
        ::dup2(err[1], 2);
        ::setpgid(0, 0);
        if (opts.cwd && ::chdir(opts.cwd->c_str()) != 0) ::_exit(126);
        if (opts.uid) {
            if (::setgroups(opts.groups.size(), opts.groups.data()) != 0) ::_exit(126);
            if (::setresgid(opts.gid.value_or(*opts.uid), opts.gid.value_or(*opts.uid), opts.gid.value_or(*opts.uid)))
                ::_exit(126);
            if (::setresuid(*opts.uid, *opts.uid, *opts.uid) != 0) ::_exit(126);
        }
        std::vector<char*> a, e;
        for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
        a.push_back(nullptr);
        for (const auto& s : env) e.push_back(const_cast<char*>(s.c_str()));
        e.push_back(nullptr);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::execvpe(a[0], a.data(), e.data());
        ::_exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    ::close(in[0]);
    if (!opts.stdin_data.empty()) (void)!::write(in[1], opts.stdin_data.data(), opts.stdin_data.size());
    ::close(in[1]);
    ProcessResult r;
    auto deadline = std::chrono::steady_clock::now() + opts.timeout;
    int fds[2] = {out[0], err[0]};
    std::string* bufs[2] = {&r.out, &r.err};
    int open_count = 2;
    while (open_count > 0) {
        pollfd p[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            r.timed_out = true;
            ::kill(-pid, SIGKILL);
            ::kill(pid, SIGKILL);
            break;
        }
        int rc = ::poll(p, 2, static_cast<int>(left.count()));
        if (rc < 0 && errno == EINTR) continue;
        for (int i = 0; i < 2; ++i) {
            if (fds[i] < 0 || !p[i].revents) continue;
            char buf[65536];
            ssize_t n = ::read(fds[i], buf, sizeof buf);
            if (n <= 0) {
                ::close(fds[i]);
                fds[i] = -1;
                --open_count;
            } else if (bufs[i]->size() < (64u << 20)) {
                bufs[i]->append(buf, static_cast<size_t>(n));
            }
        }
    }
    for (int fd : fds)
        if (fd >= 0) ::close(fd);
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return r;
}

}  // namespace hermetic::test
