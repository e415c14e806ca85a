// Every action of the policy language on a real process, and the trace profile
// recording every syscall of a small real build.
//
// A forked child installs a compiled policy with the sandbox's installer and
// runs; this process plays the supervisor: it takes the child's listener
// (pidfd_getfd; the child publishes the fd number in shared memory, no syscall
// needed) and answers each notification as the policy says (decide()):
// virtualize -> a made-up value, log -> record and let the call run.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "common/io.hpp"
#include "syscall-policy/parser.hpp"
#include "syscall-policy/policy.hpp"
#include "tests/support/temp_dir.hpp"
// This executable links hermetic_policy only; the installer is one
// self-contained file (as in tests/integration/policy_install_test.cpp).
#include "sandbox/seccomp_install.cpp"

namespace hermetic::policy {
namespace {

constexpr long kVirtualPpid = 4242;

std::optional<std::string> read_profile(const std::string& name) {
    std::ifstream f(std::string(HERMETIC_SOURCE_DIR) + "/policies/" + name + ".policy");
    if (!f) return std::nullopt;
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

Policy parse(std::string_view text) {
    ParseOptions o;
    o.loader = read_profile;
    return parse_policy(text, "actions.policy", o);
}

// Shared with the child before fork: where it publishes its listener.
struct Shared {
    std::atomic<int> listener{-1};
};

struct Notification {
    pid_t pid;
    int nr;
    uint32_t arch;
};

// The supervisor: answers notifications until every supervised task is gone.
class Supervisor {
public:
    using Answer = std::function<seccomp_notif_resp(const seccomp_notif&)>;

    Supervisor(pid_t child, Shared* shared, Answer answer) : answer_(std::move(answer)) {
        thread_ = std::thread([this, child, shared] { run(child, shared); });
    }
    ~Supervisor() {
        if (thread_.joinable()) thread_.join();
    }
    std::vector<Notification> join() {
        thread_.join();
        return seen_;
    }
    std::string error() const { return error_; }

private:
    void run(pid_t child, Shared* shared) {
        // Wait for the child to publish its listener (its next syscall blocks
        // until we answer, so it stays open).
        int target = -1;
        for (int i = 0; i < 20000 && (target = shared->listener.load()) < 0; ++i) ::usleep(500);
        if (target < 0) {
            error_ = "the child never published a listener";
            return;
        }
        UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, child, 0)));
        if (!pidfd) {
            error_ = std::string("pidfd_open: ") + std::strerror(errno);
            return;
        }
        UniqueFd listener(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), target, 0)));
        if (!listener) {
            error_ = std::string("pidfd_getfd: ") + std::strerror(errno);
            return;
        }
        for (;;) {
            pollfd p{listener.get(), POLLIN, 0};
            int n = ::poll(&p, 1, 10000);
            if (n == 0) {
                error_ = "no notification for 10 s";
                return;
            }
            if (n < 0 && errno == EINTR) continue;
            if (p.revents & POLLIN) {
                seccomp_notif req{};
                if (::ioctl(listener.get(), SECCOMP_IOCTL_NOTIF_RECV, &req) != 0) {
                    if (errno == EINTR || errno == ENOENT) continue;
                    error_ = std::string("NOTIF_RECV: ") + std::strerror(errno);
                    return;
                }
                seen_.push_back({static_cast<pid_t>(req.pid), req.data.nr, req.data.arch});
                seccomp_notif_resp resp = answer_(req);
                resp.id = req.id;
                // ENOENT: the task died (or was interrupted) meanwhile.
                if (::ioctl(listener.get(), SECCOMP_IOCTL_NOTIF_SEND, &resp) != 0 && errno != ENOENT) {
                    error_ = std::string("NOTIF_SEND: ") + std::strerror(errno);
                    return;
                }
                continue;
            }
            if (p.revents & (POLLHUP | POLLERR)) return;  // no supervised task left
        }
    }

    Answer answer_;
    std::thread thread_;
    std::vector<Notification> seen_;
    std::string error_;
};

// Answers as the policy says: virtualize getppid with a made-up value, let
// logged calls run, and refuse anything else decide() doesn't allow.
seccomp_notif_resp answer_by(const PreparedPolicy& prepared, const seccomp_notif& req) {
    seccomp_notif_resp resp{};
    const Arch arch = req.data.arch == AUDIT_ARCH_I386 ? Arch::I386 : Arch::X86_64;
    uint64_t args[6];
    for (int i = 0; i < 6; ++i) args[i] = req.data.args[i];
    const Decision d = prepared.decide(arch, req.data.nr, args);
    switch (d.action.kind) {
        case ActionKind::Log:
        case ActionKind::Allow: resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE; break;
        case ActionKind::Virtualize:
            if (req.data.nr == SYS_getppid) {
                resp.val = kVirtualPpid;
            } else {
                resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
            }
            break;
        case ActionKind::Errno: resp.error = -d.action.errno_value; break;
        case ActionKind::Kill: resp.error = -ENOSYS; break;  // the kernel filters kill; never reached
    }
    return resp;
}

// Forks a child that installs `cp` and then runs `body`, which returns its exit
// status. Returns the wait status.
int run_child(const CompiledPolicy& cp, Shared* shared, const std::function<int()>& body,
              const std::function<void(pid_t)>& parent = nullptr) {
    pid_t pid = ::fork();
    if (pid < 0) throw_errno("fork");
    if (pid == 0) {
        if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ::_exit(100);
        try {
            UniqueFd listener = sandbox::install_filters(cp);
            if (shared) shared->listener.store(listener.release());  // kept open for the supervisor
        } catch (...) {
            ::_exit(101);
        }
        ::_exit(body());
    }
    if (parent) parent(pid);
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid) throw_errno("waitpid");
    return status;
}

Shared* shared_page() {
    void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw_errno("mmap");
    return new (p) Shared();
}

// ---- every action ----------------------------------------------------------------

// Both ways a denial can be answered: by the kernel (denials not routed: the
// guard filter keeps the conditional ones), or by the supervisor (compile()'s
// default for a policy with a supervisor: it answers with decide()'s errno).
class AllActionsOnKernel : public ::testing::TestWithParam<bool> {};

TEST_P(AllActionsOnKernel, AllowDenyVirtualizeLogAndGuardedDenials) {
    const bool routed = GetParam();
    const Policy p = parse("include baseline\n"
                           "deny EACCES getpid\n"
                           "virtualize getppid\n"
                           "log gettid getuid\n"
                           "log ioctl\n");  // TIOCSTI stays denied: the guard filter, or the supervisor
    ASSERT_TRUE(needs_supervisor(p));
    const CompiledPolicy cp = routed ? compile(p) : compile(p, {.route_denials_to_supervisor = false});
    ASSERT_EQ(cp.filters.size(), routed ? 2u : 3u);  // table, (guard,) arguments
    const PreparedPolicy prepared(p);
    Shared* shared = shared_page();
    FdPair results = make_pipe(O_CLOEXEC);
    const uid_t real_uid = ::getuid();

    std::unique_ptr<Supervisor> sup;
    const int status = run_child(
        cp, shared,
        [&]() -> int {
            results.read.reset();
            long r[8];
            r[0] = ::syscall(SYS_getpid);            // deny EACCES
            r[1] = errno;
            r[2] = ::syscall(SYS_getppid);           // virtualize: the supervisor's value
            r[3] = ::syscall(SYS_gettid);            // log: the real value
            r[4] = ::syscall(SYS_getuid);            // log
            r[5] = ::syscall(SYS_ioctl, -1, TIOCSTI, nullptr) == -1 ? errno : 0;  // guard: EPERM
            r[6] = ::syscall(SYS_ioctl, -1, TCGETS, nullptr) == -1 ? errno : 0;   // log: runs, EBADF
            r[7] = ::syscall(SYS_getegid);           // allow: never notified
            write_all(results.write.get(), r, sizeof r);
            return 0;
        },
        [&](pid_t child) {
            results.write.reset();
            sup = std::make_unique<Supervisor>(child, shared, [&](const seccomp_notif& req) { return answer_by(prepared, req); });
        });
    long r[8] = {};
    ASSERT_TRUE(read_exact(results.read.get(), r, sizeof r));
    const std::vector<Notification> seen = sup->join();
    ASSERT_EQ(sup->error(), "");
    ASSERT_TRUE(WIFEXITED(status)) << status;
    EXPECT_EQ(WEXITSTATUS(status), 0);

    EXPECT_EQ(r[0], -1);
    EXPECT_EQ(r[1], EACCES);
    EXPECT_EQ(r[2], kVirtualPpid);
    EXPECT_GT(r[3], 0);
    EXPECT_EQ(r[4], static_cast<long>(real_uid));
    EXPECT_EQ(r[5], EPERM);
    EXPECT_EQ(r[6], EBADF);
    EXPECT_EQ(r[7], static_cast<long>(::getegid()));
    // The supervisor saw exactly the virtualized and logged calls, in order,
    // and (routed) the denials; otherwise the denial and the guarded TIOCSTI
    // never reached it.
    std::vector<int> nrs;
    for (const Notification& n : seen) nrs.push_back(n.nr);
    if (routed)
        EXPECT_EQ(nrs, (std::vector<int>{SYS_getpid, SYS_getppid, SYS_gettid, SYS_getuid, SYS_ioctl, SYS_ioctl}));
    else
        EXPECT_EQ(nrs, (std::vector<int>{SYS_getppid, SYS_gettid, SYS_getuid, SYS_ioctl}));
    ::munmap(shared, 4096);
}

INSTANTIATE_TEST_SUITE_P(Denials, AllActionsOnKernel, ::testing::Values(false, true),
                         [](const auto& param_info) { return param_info.param ? "routed" : "in_kernel"; });

TEST(ActionsOnKernel, KillKillsTheProcess) {
    const CompiledPolicy cp = compile(parse("include baseline\nkill sync\n"));
    const int status = run_child(cp, nullptr, [] {
        ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);  // no core file from the SIGSYS
        ::sync();
        return 0;
    });
    ASSERT_TRUE(WIFSIGNALED(status)) << status;
    EXPECT_EQ(WTERMSIG(status), SIGSYS);
}

TEST(ActionsOnKernel, UnknownNumbersGetTheDefault) {
    const CompiledPolicy build = compile(parse("include build\n"));
    const int status = run_child(build, nullptr, [] { return ::syscall(1000) == -1 && errno == ENOSYS ? 0 : 1; });
    ASSERT_TRUE(WIFEXITED(status)) << status;
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

// getpid through int $0x80 (the i386 entry, from 64-bit code).
long int80_getpid() {
    long ret;
    asm volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11");
    return ret;
}

TEST(ActionsOnKernel, TheI386EntryIsClosed) {
    pid_t probe = ::fork();
    ASSERT_GE(probe, 0);
    if (probe == 0) ::_exit(int80_getpid() > 0 ? 0 : 1);
    int st = 0;
    ASSERT_EQ(::waitpid(probe, &st, 0), probe);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) GTEST_SKIP() << "int $0x80 doesn't work here (no IA-32 emulation)";

    // strict: killed; build: ENOSYS (the determinism rules close it).
    ParseOptions o;
    o.loader = read_profile;
    const CompiledPolicy strict = compile(load_profile("strict", o));
    int status = run_child(strict, nullptr, [] {
        ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        (void)int80_getpid();
        return 0;
    });
    ASSERT_TRUE(WIFSIGNALED(status)) << status;
    EXPECT_EQ(WTERMSIG(status), SIGSYS);
    const Policy build = load_profile("build", o);
    if (build.i386_action && *build.i386_action == Action::error(ENOSYS)) {
        status = run_child(compile(build), nullptr, [] { return int80_getpid() == -ENOSYS ? 0 : 1; });
        ASSERT_TRUE(WIFEXITED(status)) << status;
        EXPECT_EQ(WEXITSTATUS(status), 0);
    }
}

// ---- the trace profile records a whole small build --------------------------------------

TEST(TraceOnKernel, RecordsEverySyscallOfASmallBuild) {
    if (::access("/usr/bin/cc", X_OK) != 0) GTEST_SKIP() << "no C compiler";
    ParseOptions o;
    o.loader = read_profile;
    const Policy trace = load_profile("trace", o);
    const CompiledPolicy cp = compile(trace);
    const PreparedPolicy prepared(trace);
    test::TempDir dir("hermetic-trace");
    test::write_file(dir / "hello.c", "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n");
    const std::string script = "cd '" + dir.path() + "' && cc -O0 -o hello hello.c && ./hello > out.txt";

    Shared* shared = shared_page();
    std::unique_ptr<Supervisor> sup;
    // What decide() refused among the notifications: denials by the baseline's
    // rules (routed to the supervisor, as under a job's), never the default.
    std::map<int, int> denied;
    size_t by_default = 0;
    const auto started = std::chrono::steady_clock::now();
    const int status = run_child(
        cp, shared,
        [&]() -> int {
            ::execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
            return 127;
        },
        [&](pid_t child) {
            sup = std::make_unique<Supervisor>(child, shared, [&](const seccomp_notif& req) {
                seccomp_notif_resp resp = answer_by(prepared, req);
                if (resp.error) {
                    denied[req.data.nr]++;
                    uint64_t args[6];
                    for (int i = 0; i < 6; ++i) args[i] = req.data.args[i];
                    if (!prepared.decide(Arch::X86_64, req.data.nr, args).rule) ++by_default;
                }
                return resp;
            });
        });
    const std::vector<Notification> seen = sup->join();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    ASSERT_EQ(sup->error(), "");
    ASSERT_TRUE(WIFEXITED(status)) << status;
    ASSERT_EQ(WEXITSTATUS(status), 0);
    EXPECT_EQ(test::read_file(dir / "out.txt"), "hello\n");

    std::map<std::string, size_t> by_name;
    std::set<pid_t> pids;
    for (const Notification& n : seen) {
        EXPECT_EQ(n.arch, AUDIT_ARCH_X86_64);
        const std::string name = syscall_name(n.nr);
        EXPECT_FALSE(name.empty()) << n.nr;
        by_name[name]++;
        pids.insert(n.pid);
    }
    // The build's processes: sh, cc, cc1, as, collect2, ld, hello.
    EXPECT_GE(pids.size(), 5u);
    for (const char* expected : {"execve", "openat", "read", "write", "mmap", "close", "exit_group", "wait4",
                                 "brk", "newfstatat", "rt_sigaction"})
        EXPECT_GT(by_name[expected], 0u) << expected;
    EXPECT_GT(by_name["clone"] + by_name["vfork"] + by_name["fork"], 0u);
    EXPECT_EQ(by_default, 0u);
    std::string refused;
    for (const auto& [nr, count] : denied) refused += " " + syscall_name(nr) + " x" + std::to_string(count);
    std::printf("trace of `cc hello.c && ./hello`: %zu syscalls recorded (%zu distinct) from %zu processes in %.2f s;"
                " denied by rules:%s\n",
                seen.size(), by_name.size(), pids.size(), secs, refused.empty() ? " none" : refused.c_str());
    ::munmap(shared, 4096);
}

}  // namespace
}  // namespace hermetic::policy
