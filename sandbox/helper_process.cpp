#include "sandbox/helper_process.hpp"

#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/io.hpp"
#include "common/sys_error.hpp"
#include "sandbox/process_util.hpp"
#include "sandbox/tree_stream.hpp"

namespace hermetic::sandbox {

namespace {

constexpr size_t kMaxResult = 256u << 20;  // 100k outputs with hashes fit easily

std::string kind_of(const TreeError& e) {
    switch (e.kind()) {
        case TreeError::Kind::Limit: return "limit";
        case TreeError::Kind::SpecialFile: return "special";
        case TreeError::Kind::Unreadable: return "unreadable";
        case TreeError::Kind::Io: return "io";
        case TreeError::Kind::Stream: return "stream";
    }
    return "error";
}

[[noreturn]] void child_main(int result_fd, pid_t parent, const std::function<void()>& become,
                             const std::function<nlohmann::json()>& body) {
    nlohmann::json out;
    int code = 0;
    try {
        become();
        // Changing credentials cleared the parent-death signal and reset the dumpable
        // flag to fs.suid_dumpable (not 0 on every host): set both again, and leave
        // if the parent already went in between. A dumpable helper could be ptraced
        // by the identity it just became.
        if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) throw_errno("prctl(PR_SET_PDEATHSIG)");
        if (::prctl(PR_SET_DUMPABLE, 0) != 0) throw_errno("prctl(PR_SET_DUMPABLE)");
        if (::getppid() != parent) ::_exit(3);
        out = {{"ok", true}, {"value", body()}};
    } catch (const TreeError& e) {
        out = {{"ok", false}, {"kind", kind_of(e)}, {"message", e.what()}};
        code = 1;
    } catch (const std::exception& e) {
        out = {{"ok", false}, {"kind", "error"}, {"message", e.what()}};
        code = 1;
    }
    try {
        write_all(result_fd, out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    } catch (...) {
        code = 2;
    }
    ::_exit(code);
}

}  // namespace

HelperProcess HelperProcess::spawn(const std::vector<int>& keep_fds, const std::function<void()>& become,
                                   const std::function<nlohmann::json()>& body) {
    FdPair pipe = make_pipe();
    const pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) throw_errno("fork helper");
    if (pid == 0) {
        try {
            std::vector<int> keep = keep_fds;
            keep.push_back(pipe.write.get());
            close_fds_except(keep);
            harden_child_process();
        } catch (...) {
            ::_exit(3);
        }
        child_main(pipe.write.get(), parent, become, body);
    }
    HelperProcess h;
    h.pid_ = pid;
    h.result_ = std::move(pipe.read);
    return h;
}

HelperProcess::HelperProcess(HelperProcess&& o) noexcept : pid_(std::exchange(o.pid_, -1)), result_(std::move(o.result_)) {}

HelperProcess& HelperProcess::operator=(HelperProcess&& o) noexcept {
    if (this != &o) {
        kill();
        pid_ = std::exchange(o.pid_, -1);
        result_ = std::move(o.result_);
    }
    return *this;
}

HelperProcess::~HelperProcess() { kill(); }

void HelperProcess::kill() noexcept {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int st;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
}

HelperResult HelperProcess::wait(std::optional<std::chrono::steady_clock::time_point> deadline) {
    HelperResult r;
    if (pid_ <= 0) {
        r.error_kind = "error";
        r.message = "helper was stopped";
        return r;
    }
    std::string data;
    try {
        char buf[65536];
        for (;;) {
            if (deadline && !wait_readable(result_.get(), *deadline)) {
                kill();
                r.error_kind = "timeout";
                r.message = "helper did not finish in time";
                return r;
            }
            ssize_t n = retry_eintr([&] { return ::read(result_.get(), buf, sizeof buf); });
            if (n < 0) throw_errno("read helper result");
            if (n == 0) break;
            if (data.size() + static_cast<size_t>(n) > kMaxResult) throw SysError("helper result too large", EFBIG);
            data.append(buf, static_cast<size_t>(n));
        }
    } catch (const std::exception& e) {
        kill();
        r.error_kind = "error";
        r.message = e.what();
        return r;
    }
    int status = wait_for(pid_);
    pid_ = -1;
    auto j = nlohmann::json::parse(data, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        r.error_kind = "crashed";
        r.message = WIFSIGNALED(status) ? "helper killed by signal " + std::to_string(WTERMSIG(status))
                                        : "helper exited without a result (status " +
                                              std::to_string(exit_status_of(status)) + ")";
        return r;
    }
    r.ok = j.value("ok", false);
    if (r.ok) {
        r.value = j.value("value", nlohmann::json());
    } else {
        r.error_kind = j.value("kind", "error");
        r.message = j.value("message", "helper failed");
    }
    return r;
}

void become_caller(const Caller& caller) {
    if (::setgroups(caller.groups.size(), caller.groups.data()) != 0) throw_errno("setgroups(caller)");
    if (::setresgid(caller.gid, caller.gid, caller.gid) != 0) throw_errno("setresgid(caller)");
    if (::setresuid(caller.uid, caller.uid, caller.uid) != 0) throw_errno("setresuid(caller)");
    if (caller.uid != 0 && (::setuid(0) == 0 || ::geteuid() == 0)) throw SysError("could not drop root", EPERM);
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) throw_errno("prctl(PR_SET_NO_NEW_PRIVS)");
}

}  // namespace hermetic::sandbox
