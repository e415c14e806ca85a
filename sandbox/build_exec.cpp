#include "sandbox/build_exec.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "common/io.hpp"
#include "common/sys_error.hpp"
#include "sandbox/capabilities.hpp"
#include "sandbox/determinism/determinism.hpp"
#include "sandbox/process_util.hpp"
#include "sandbox/seccomp_install.hpp"

namespace hermetic::sandbox {

namespace {

[[noreturn]] void fail(int fd, int err, const std::string& msg, int code) noexcept {
    std::string rec(reinterpret_cast<const char*>(&err), sizeof err);
    rec += msg.substr(0, 1024);
    (void)!::write(fd, rec.data(), rec.size());
    ::_exit(code);
}

// Sets soft = hard = value, clamped to the current hard limit (raising it needs
// CAP_SYS_RESOURCE in the host's namespace, which a sandbox never has).
void set_rlimit(int resource, rlim_t value, const char* name) {
    rlimit cur{};
    if (::getrlimit(resource, &cur) != 0) throw_errno(std::string("getrlimit ") + name);
    if (cur.rlim_max != RLIM_INFINITY && value > cur.rlim_max) value = cur.rlim_max;
    rlimit rl{value, value};
    if (::setrlimit(resource, &rl) != 0) throw_errno(std::string("setrlimit ") + name);
}

std::string env_value(const std::vector<std::string>& env, const std::string& key) {
    for (const auto& e : env)
        if (e.size() > key.size() && e.compare(0, key.size(), key) == 0 && e[key.size()] == '=')
            return e.substr(key.size() + 1);
    return {};
}

// The working directory (in place: a path in the input root the runner
// checked) is resolved beneath /build and through no symlink, as the runner
// resolved it: the input root's owner may have swapped a component for a
// symlink since, and this process is still inner root.
void chdir_beneath_build(const std::string& workdir) {
    UniqueFd build(::open("/build", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!build) throw_errno("open /build");
    open_how how{};
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    const char* rel = workdir.empty() ? "." : workdir.c_str();
    const std::string shown = workdir.empty() ? std::string("/build") : "/build/" + workdir;
    UniqueFd dir(static_cast<int>(::syscall(SYS_openat2, build.get(), rel, &how, sizeof how)));
    if (!dir) throw_errno("working directory " + shown);
    if (::fchdir(dir.get()) != 0) throw_errno("chdir " + shown);
}

void setup_process(BuildExec& b) {
    if (::setsid() < 0) throw_errno("setsid");
    // Lift every descriptor we still need above 2 first, so that filling 0..2 can't
    // clobber one that happened to land there.
    auto above_stdio = [](int fd) {
        int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (moved < 0) throw_errno("fcntl(F_DUPFD_CLOEXEC)");
        return moved;
    };
    int out = above_stdio(b.stdout_fd), err = above_stdio(b.stderr_fd);
    b.exec_error_fd = above_stdio(b.exec_error_fd);
    if (b.handoff_fd >= 0) b.handoff_fd = above_stdio(b.handoff_fd);
    UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!null) throw_errno("open /dev/null");
    if (::dup2(null.get(), 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) throw_errno("dup2 stdio");
    // Exactly 0, 1, 2 (and the CLOEXEC error pipe and hand-off socket, gone at
    // exec) survive.
    std::vector<int> keep = {0, 1, 2, b.exec_error_fd};
    if (b.handoff_fd >= 0) keep.push_back(b.handoff_fd);
    close_fds_except(keep);
    chdir_beneath_build(b.workdir);
    ::umask(022);
    set_rlimit(RLIMIT_CORE, 0, "RLIMIT_CORE");
    set_rlimit(RLIMIT_NOFILE, b.config->nofile_limit, "RLIMIT_NOFILE");
    if (b.config->fsize_limit) set_rlimit(RLIMIT_FSIZE, b.config->fsize_limit, "RLIMIT_FSIZE");
    // A fixed address layout: pointers that leak into outputs are the same each run.
    if (::personality(static_cast<unsigned long>(PER_LINUX) | ADDR_NO_RANDOMIZE) < 0) throw_errno("personality(ADDR_NO_RANDOMIZE)");
    drop_to_build_user();
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) throw_errno("prctl(PR_SET_NO_NEW_PRIVS)");
}

}  // namespace

void exec_build(BuildExec b) noexcept {
    std::vector<char*> argv, envp;
    try {
        setup_process(b);
        for (const auto& a : *b.argv) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        for (const auto& e : *b.env) envp.push_back(const_cast<char*>(e.c_str()));
        envp.push_back(nullptr);
        // Candidates computed before the filter goes on: nothing after it allocates.
        std::vector<std::string> candidates;
        const std::string& name = (*b.argv)[0];
        if (name.find('/') != std::string::npos) {
            candidates.push_back(name);
        } else {
            std::string path = env_value(*b.env, "PATH");
            size_t pos = 0;
            while (pos <= path.size()) {
                size_t colon = path.find(':', pos);
                if (colon == std::string::npos) colon = path.size();
                std::string dir = path.substr(pos, colon - pos);
                candidates.push_back((dir.empty() ? "." : dir) + "/" + name);
                pos = colon + 1;
            }
        }
        if (b.handoff_fd >= 0) {
            // rdtsc must fault (PR_SET_TSC) before the filters deny prctl's use.
            determinism::prepare_build_process();
            determinism::install_filters_and_hand_off(b.handoff_fd, *b.policy);  // until attached
        } else {
            // A policy without notify actions has no listener to hand over.
            install_filters(*b.policy).reset();
        }
        int first_error = ENOENT;
        for (const auto& c : candidates) {
            ::execve(c.c_str(), argv.data(), envp.data());
            // Like execvp: a permission error is remembered, other errors keep searching.
            if (errno == EACCES) first_error = EACCES;
            else if (errno != ENOENT && errno != ENOTDIR) {
                first_error = errno;
                break;
            }
        }
        fail(b.exec_error_fd, first_error, name + ": " + errno_string(first_error), first_error == ENOENT ? 127 : 126);
    } catch (const std::exception& e) {
        fail(b.exec_error_fd, 0, e.what(), 125);
    }
}

}  // namespace hermetic::sandbox
