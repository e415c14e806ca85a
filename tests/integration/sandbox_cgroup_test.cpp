// Per-job cgroups against the real kernel (needs root). The host tests use whatever
// /sys/fs/cgroup offers (v1 on the CI machine, v2 on most hosts); the V2Unified
// tests drive the v2 code against a controller-less cgroup2 mount where one exists.
#include "sandbox/cgroup.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "common/io.hpp"
#include "common/sys_error.hpp"

namespace hermetic::sandbox {
namespace {

using namespace std::chrono_literals;

constexpr const char* kHostRoot = "/sys/fs/cgroup";
constexpr const char* kUnifiedRoot = "/sys/fs/cgroup/unified";

// ---- helpers ----------------------------------------------------------------

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

bool exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

bool is_cgroup2(const std::string& path) {
    struct statfs st {};
    return ::statfs(path.c_str(), &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC;
}

struct CgroupMount {
    std::string path;
    std::string fstype;  // cgroup or cgroup2
    std::string options;
};

// Every cgroup mount, to prove nothing is left in any hierarchy.
std::vector<CgroupMount> cgroup_mounts() {
    std::vector<CgroupMount> out;
    std::istringstream in(slurp("/proc/self/mountinfo"));
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::vector<std::string> f;
        for (std::string w; ls >> w;) f.push_back(w);
        auto sep = std::find(f.begin(), f.end(), "-");
        if (sep == f.end() || f.end() - sep < 4 || f.size() < 5) continue;
        if (sep[1] == "cgroup" || sep[1] == "cgroup2") out.push_back({f[4], sep[1], sep[3]});
    }
    return out;
}

// v1: controller -> mount point, for the controllers the library uses.
std::map<std::string, std::string> v1_mounts() {
    std::map<std::string, std::string> out;
    for (const auto& m : cgroup_mounts()) {
        if (m.fstype != "cgroup") continue;
        std::istringstream os(m.options);
        for (std::string opt; std::getline(os, opt, ',');)
            if (opt == "memory" || opt == "pids" || opt == "cpu" || opt == "freezer") out[opt] = m.path;
    }
    return out;
}

// The cgroup path of `pid` in the hierarchy holding `controller` ("" = v2 line).
std::string proc_cgroup(pid_t pid, const std::string& controller) {
    std::istringstream in(slurp("/proc/" + std::to_string(pid) + "/cgroup"));
    std::string line;
    while (std::getline(in, line)) {
        auto a = line.find(':');
        auto b = line.find(':', a + 1);
        if (a == std::string::npos || b == std::string::npos) continue;
        std::string ctls = line.substr(a + 1, b - a - 1);
        std::string path = line.substr(b + 1);
        if (controller.empty()) {
            if (line.compare(0, 3, "0::") == 0) return path;
            continue;
        }
        std::istringstream cs(ctls);
        for (std::string c; std::getline(cs, c, ',');)
            if (c == controller) return path;
    }
    return "?";
}

// Waits for a child, killing it if it takes longer than `timeout` (tests never hang).
int wait_exit(pid_t pid, std::chrono::milliseconds timeout = 20s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        int status = 0;
        pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) return status;
        if (r < 0) {
            ADD_FAILURE() << "waitpid " << pid << ": " << std::strerror(errno);
            return -1;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            ADD_FAILURE() << "child " << pid << " did not exit in time; killing it";
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            return -1;
        }
        std::this_thread::sleep_for(2ms);
    }
}

bool killed_by_sigkill(int status) { return status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL; }

// A forked child that blocks until release(), so the test can attach it first.
struct Gated {
    pid_t pid = -1;
    UniqueFd gate;  // write end
    void release() {
        char c = 'g';
        ASSERT_EQ(::write(gate.get(), &c, 1), 1);
        gate.reset();
    }
};

template <typename F>
Gated fork_gated(F&& body) {
    auto p = make_pipe();
    pid_t pid = ::fork();
    if (pid < 0) throw_errno("fork");
    if (pid == 0) {
        p.write.reset();
        char c;
        if (::read(p.read.get(), &c, 1) != 1) ::_exit(99);
        p.read.reset();
        body();
        ::_exit(0);
    }
    return {pid, std::move(p.write)};
}

pid_t read_pid(int fd) {
    pid_t pid = -1;
    if (!read_exact(fd, &pid, sizeof pid)) return -1;
    return pid;
}

// Where the job directories of a config live, for every hierarchy the library uses.
std::vector<std::string> job_dirs(const CgroupConfig& c, CgroupVersion v, const std::string& name) {
    std::vector<std::string> out;
    if (v == CgroupVersion::V2) {
        out.push_back(c.root + "/" + c.parent + "/" + name);
    } else {
        std::set<std::string> mounts;
        for (const auto& [ctl, path] : v1_mounts()) mounts.insert(path);
        for (const auto& m : mounts) out.push_back(m + "/" + c.parent + "/" + name);
    }
    return out;
}

// ---- fixture ----------------------------------------------------------------

class CgroupTestBase : public ::testing::Test {
protected:
    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "needs root";
        // Orphaned grandchildren come back to us (PID 1 here doesn't reap them).
        ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    }

    void TearDown() override {
        if (::geteuid() != 0) return;
        for (auto* c : {&config_, &other_}) {
            if (c->parent.empty()) continue;
            try {
                for (const auto& n : list_job_cgroups(*c)) remove_job_cgroup(*c, n);
            } catch (const std::exception& e) {
                ADD_FAILURE() << "cleanup of " << c->parent << ": " << e.what();
            }
            // The daemon's parent is long-lived by design; the test removes its own.
            for (const auto& m : cgroup_mounts()) {
                std::string p = m.path + "/" + c->parent;
                if (::rmdir(p.c_str()) != 0 && errno != ENOENT) ADD_FAILURE() << "rmdir " << p << ": " << errno;
                EXPECT_FALSE(exists(p)) << p;
            }
        }
        int status;
        while (::waitpid(-1, &status, WNOHANG) > 0) {
        }
        ::prctl(PR_SET_CHILD_SUBREAPER, 0);
    }

    // Creates and attaches a SIGSTOPped child and a double-forked (setsid)
    // grandchild, then checks kill_all() gets both.
    void kill_stopped_and_grandchild(JobCgroup& cg, const std::string& expect_path, const std::string& ctl) {
        Gated stopped = fork_gated([] {
            for (;;) ::pause();
        });
        cg.attach(stopped.pid);
        stopped.release();
        ASSERT_EQ(::kill(stopped.pid, SIGSTOP), 0);
        int status = 0;
        ASSERT_EQ(::waitpid(stopped.pid, &status, WUNTRACED), stopped.pid);
        ASSERT_TRUE(WIFSTOPPED(status));

        auto report = make_pipe();
        Gated forker = fork_gated([&] {
            pid_t g = ::fork();
            if (g < 0) ::_exit(1);
            if (g == 0) {
                ::setsid();
                for (;;) ::pause();
            }
            if (::write(report.write.get(), &g, sizeof g) != sizeof g) ::_exit(2);
            ::_exit(0);
        });
        cg.attach(forker.pid);
        forker.release();
        report.write.reset();
        pid_t grandchild = read_pid(report.read.get());
        ASSERT_GT(grandchild, 0);
        int fs = wait_exit(forker.pid);
        ASSERT_TRUE(WIFEXITED(fs) && WEXITSTATUS(fs) == 0);
        EXPECT_EQ(proc_cgroup(grandchild, ctl), expect_path);
        EXPECT_EQ(proc_cgroup(stopped.pid, ctl), expect_path);

        auto t0 = std::chrono::steady_clock::now();
        cg.kill_all();
        EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
        EXPECT_TRUE(killed_by_sigkill(wait_exit(stopped.pid)));
        EXPECT_TRUE(killed_by_sigkill(wait_exit(grandchild)));  // reparented to us (subreaper)
    }

    // A job left behind by a daemon that was killed with SIGKILL: a child process
    // creates it, puts a sleeper in it and dies without running destructors.
    std::pair<std::string, pid_t> leak_job(const CgroupConfig& c, const std::string& name) {
        auto report = make_pipe();
        pid_t daemon = ::fork();
        if (daemon < 0) throw_errno("fork");
        if (daemon == 0) {
            report.read.reset();
            try {
                auto cg = JobCgroup::create(c, name, {});
                pid_t sleeper = ::fork();
                if (sleeper == 0) {
                    for (;;) ::pause();
                }
                cg.attach(sleeper);
                if (::write(report.write.get(), &sleeper, sizeof sleeper) != sizeof sleeper) ::_exit(2);
                ::kill(::getpid(), SIGKILL);
            } catch (...) {
            }
            ::_exit(1);
        }
        report.write.reset();
        pid_t sleeper = read_pid(report.read.get());
        EXPECT_TRUE(killed_by_sigkill(wait_exit(daemon)));
        return {name, sleeper};
    }

    CgroupConfig config_;
    CgroupConfig other_;  // second daemon's parent, when a test needs one
};

class HostCgroup : public CgroupTestBase {
protected:
    void SetUp() override {
        CgroupTestBase::SetUp();
        if (IsSkipped()) return;
        config_.root = kHostRoot;
        config_.parent = "hermetic-test-" + std::to_string(::getpid());
        version_ = detect_cgroup_version(config_);
    }
    // The path /proc/<pid>/cgroup shows for a job, and the hierarchy to look in.
    std::string job_path(const std::string& name) const { return "/" + config_.parent + "/" + name; }
    std::string ctl(const char* v1_controller) const { return version_ == CgroupVersion::V2 ? "" : v1_controller; }
    std::string file(const char* v1_controller, const std::string& name, const char* f) const {
        if (version_ == CgroupVersion::V2) return config_.root + "/" + config_.parent + "/" + name + "/" + f;
        return v1_mounts().at(v1_controller) + "/" + config_.parent + "/" + name + "/" + f;
    }
    CgroupVersion version_ = CgroupVersion::V1;
};

// ---- host tests ---------------------------------------------------------------

TEST_F(HostCgroup, DetectsVersionOfHost) {
    CgroupVersion expected = is_cgroup2(kHostRoot) ? CgroupVersion::V2 : CgroupVersion::V1;
    EXPECT_EQ(version_, expected);
    // Explicit override for the detected version works the same.
    CgroupConfig c = config_;
    c.version = version_;
    auto cg = JobCgroup::create(c, "override", {});
    EXPECT_EQ(cg.version(), version_);
    cg.remove();
}

TEST_F(HostCgroup, RejectsBadNames) {
    for (const std::string& bad : std::vector<std::string>{"", "A", "a/b", "..", ".", "a b", "a_b", std::string(65, 'a')}) {
        try {
            auto cg = JobCgroup::create(config_, bad, {});
            ADD_FAILURE() << "accepted '" << bad << "'";
        } catch (const SysError& e) {
            EXPECT_EQ(e.code(), EINVAL) << bad;
        }
        EXPECT_THROW(remove_job_cgroup(config_, bad), SysError) << bad;
    }
    EXPECT_NO_THROW(JobCgroup::create(config_, std::string(64, 'a'), {}).remove());
    for (const std::string& bad_parent : std::vector<std::string>{"", "/abs", "../x", "a//b", "a/", "x/../y", "a b"}) {
        CgroupConfig c = config_;
        c.parent = bad_parent;
        EXPECT_THROW(JobCgroup::create(c, "job", {}), SysError) << bad_parent;
        EXPECT_THROW(list_job_cgroups(c), SysError) << bad_parent;
    }
    EXPECT_THROW(JobCgroup::create(config_, "job", {.cpus = -1}), SysError);
    EXPECT_THROW(JobCgroup::create(config_, "job", {.cpus = 0.001}), SysError);
    EXPECT_TRUE(list_job_cgroups(config_).empty());
}

TEST_F(HostCgroup, LimitsAreWritten) {
    CgroupLimits limits{.memory_bytes = 64ull << 20, .pids_max = 32, .cpus = 1.5};
    auto cg = JobCgroup::create(config_, "limits", limits);
    if (version_ == CgroupVersion::V1) {
        EXPECT_EQ(slurp(file("memory", "limits", "memory.limit_in_bytes")), "67108864\n");
        std::string memsw = file("memory", "limits", "memory.memsw.limit_in_bytes");
        if (exists(memsw)) {
            EXPECT_EQ(slurp(memsw), "67108864\n");
        }
        EXPECT_EQ(slurp(file("pids", "limits", "pids.max")), "32\n");
        EXPECT_EQ(slurp(file("cpu", "limits", "cpu.cfs_period_us")), "100000\n");
        EXPECT_EQ(slurp(file("cpu", "limits", "cpu.cfs_quota_us")), "150000\n");
        EXPECT_EQ(cg.v2_dir_fd(), -1);
    } else {
        EXPECT_EQ(slurp(file("", "limits", "memory.max")), "67108864\n");
        std::string swap = file("", "limits", "memory.swap.max");
        if (exists(swap)) {
            EXPECT_EQ(slurp(swap), "0\n");
        }
        EXPECT_EQ(slurp(file("", "limits", "pids.max")), "32\n");
        EXPECT_EQ(slurp(file("", "limits", "cpu.max")), "150000 100000\n");
        EXPECT_GE(cg.v2_dir_fd(), 0);
    }
    EXPECT_FALSE(cg.oom_killed());
    EXPECT_FALSE(cg.pids_limit_hit());
    // Creating the same job twice is refused and leaves the first one alone.
    try {
        auto dup = JobCgroup::create(config_, "limits", {});
        ADD_FAILURE() << "duplicate accepted";
    } catch (const SysError& e) {
        EXPECT_EQ(e.code(), EEXIST);
    }
    EXPECT_TRUE(exists(file("pids", "limits", "pids.max")));
    cg.remove();
}

TEST_F(HostCgroup, AttachMovesProcessIntoEveryHierarchy) {
    auto cg = JobCgroup::create(config_, "attach", {.memory_bytes = 256ull << 20, .pids_max = 64});
    Gated child = fork_gated([] {});
    cg.attach(child.pid);
    EXPECT_EQ(proc_cgroup(child.pid, ctl("memory")), job_path("attach"));
    EXPECT_EQ(proc_cgroup(child.pid, ctl("pids")), job_path("attach"));
    if (version_ == CgroupVersion::V1) {
        for (const auto& [c, path] : v1_mounts()) EXPECT_EQ(proc_cgroup(child.pid, c), job_path("attach")) << c;
    }
    child.release();
    int st = wait_exit(child.pid);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    EXPECT_THROW(cg.attach(0), SysError);
    cg.remove();
    EXPECT_THROW(cg.attach(::getpid()), SysError);
}

TEST_F(HostCgroup, MemoryHogIsOomKilled) {
    auto cg = JobCgroup::create(config_, "hog", {.memory_bytes = 64ull << 20});
    EXPECT_FALSE(cg.oom_killed());
    Gated hog = fork_gated([] {
        constexpr size_t kSize = 512ull << 20;
        void* p = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) ::_exit(3);
        for (size_t i = 0; i < kSize; i += 4096) static_cast<volatile char*>(p)[i] = 1;
        ::_exit(4);  // survived: the limit didn't work
    });
    cg.attach(hog.pid);
    hog.release();
    int st = wait_exit(hog.pid, 60s);
    EXPECT_TRUE(killed_by_sigkill(st)) << "status " << st;
    EXPECT_TRUE(cg.oom_killed());
    auto peak = cg.memory_peak();
    if (peak) {
        EXPECT_GT(*peak, 32ull << 20);
        EXPECT_LE(*peak, 64ull << 20);
    } else {
        EXPECT_EQ(version_, CgroupVersion::V2);  // memory.peak needs 5.19; v1 always has max_usage
    }
    cg.remove();
}

TEST_F(HostCgroup, ForkBombHitsPidsMax) {
    auto cg = JobCgroup::create(config_, "forkbomb", {.pids_max = 16});
    EXPECT_FALSE(cg.pids_limit_hit());
    Gated bomb = fork_gated([] {
        for (int i = 0; i < 64; ++i) {
            pid_t p = ::fork();
            if (p == 0) {
                for (;;) ::pause();
            }
            if (p < 0) ::_exit(errno == EAGAIN ? 0 : 5);
        }
        ::_exit(6);  // 64 forks succeeded: no limit
    });
    cg.attach(bomb.pid);
    bomb.release();
    int st = wait_exit(bomb.pid);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "status " << st;
    EXPECT_TRUE(cg.pids_limit_hit());

    std::string procs = slurp(file("pids", "forkbomb", "cgroup.procs"));
    EXPECT_EQ(std::count(procs.begin(), procs.end(), '\n'), 15);  // 16 minus the exited bomb

    // The test process itself can still fork.
    pid_t mine = ::fork();
    ASSERT_GE(mine, 0);
    if (mine == 0) ::_exit(0);
    int ms = wait_exit(mine);
    EXPECT_TRUE(WIFEXITED(ms) && WEXITSTATUS(ms) == 0);

    cg.kill_all();
    EXPECT_EQ(slurp(file("pids", "forkbomb", "cgroup.procs")), "");
    cg.remove();
}

TEST_F(HostCgroup, KillAllGetsStoppedAndDoubleForked) {
    auto cg = JobCgroup::create(config_, "killall", {.pids_max = 32});
    kill_stopped_and_grandchild(cg, job_path("killall"), ctl("pids"));
    cg.kill_all();  // empty: returns at once
    cg.remove();
}

// Processes that keep replacing themselves (fork, parent exits) can't be killed
// from a pid list alone; freezing (v1) or cgroup.kill (v2) must get them.
TEST_F(HostCgroup, KillAllStopsSelfReplacingProcesses) {
    auto cg = JobCgroup::create(config_, "churn", {.pids_max = 64});
    std::atomic<bool> stop{false};
    std::thread reaper([&] {  // orphans come back to us; reap them so pids.max doesn't fill
        while (!stop) {
            int s;
            if (::waitpid(-1, &s, WNOHANG) <= 0) std::this_thread::sleep_for(1ms);
        }
    });
    std::vector<Gated> chains;
    for (int i = 0; i < 4; ++i) {
        chains.push_back(fork_gated([] {
            timespec start{};
            ::clock_gettime(CLOCK_MONOTONIC, &start);
            for (;;) {
                timespec now{};
                ::clock_gettime(CLOCK_MONOTONIC, &now);
                if (now.tv_sec - start.tv_sec > 30) ::_exit(7);  // safety bound
                pid_t p = ::fork();
                if (p > 0) ::_exit(0);
                if (p < 0) ::usleep(1000);
            }
        }));
        cg.attach(chains.back().pid);
    }
    for (auto& c : chains) c.release();
    std::this_thread::sleep_for(200ms);
    EXPECT_NE(slurp(file("pids", "churn", "cgroup.procs")), "");
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_NO_THROW(cg.kill_all());
    auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_LT(took, 3s);
    EXPECT_EQ(slurp(file("pids", "churn", "cgroup.procs")), "");
    if (version_ == CgroupVersion::V1 && v1_mounts().count("freezer")) {
        EXPECT_EQ(slurp(file("freezer", "churn", "freezer.state")), "THAWED\n");  // never left frozen
    }
    stop = true;
    reaper.join();
    cg.remove();
}

TEST_F(HostCgroup, RemoveLeavesNothingAndIsIdempotent) {
    auto cg = JobCgroup::create(config_, "gone", {.memory_bytes = 64ull << 20, .pids_max = 8, .cpus = 0.5});
    auto dirs = job_dirs(config_, version_, "gone");
    for (const auto& d : dirs) EXPECT_TRUE(exists(d)) << d;
    Gated sleeper = fork_gated([] {
        for (;;) ::pause();
    });
    cg.attach(sleeper.pid);
    sleeper.release();
    cg.remove();
    EXPECT_TRUE(killed_by_sigkill(wait_exit(sleeper.pid)));
    for (const auto& m : cgroup_mounts()) EXPECT_FALSE(exists(m.path + "/" + config_.parent + "/gone")) << m.path;
    EXPECT_NO_THROW(cg.remove());
    EXPECT_NO_THROW(cg.kill_all());
    EXPECT_THROW((void)cg.oom_killed(), SysError);
    EXPECT_EQ(cg.v2_dir_fd(), -1);
}

TEST_F(HostCgroup, DestructorKillsAndRemoves) {
    pid_t sleeper_pid;
    {
        auto cg = JobCgroup::create(config_, "raii", {.pids_max = 8});
        Gated sleeper = fork_gated([] {
            for (;;) ::pause();
        });
        sleeper_pid = sleeper.pid;
        cg.attach(sleeper.pid);
        sleeper.release();
        JobCgroup moved = std::move(cg);  // the moved-from object must not remove anything
        EXPECT_THROW(cg.attach(sleeper.pid), SysError);
        EXPECT_EQ(cg.v2_dir_fd(), -1);
        EXPECT_EQ(proc_cgroup(sleeper.pid, ctl("pids")), job_path("raii"));
    }
    EXPECT_TRUE(killed_by_sigkill(wait_exit(sleeper_pid)));
    for (const auto& d : job_dirs(config_, version_, "raii")) EXPECT_FALSE(exists(d)) << d;
}

TEST_F(HostCgroup, CrashRecoveryRemovesLeftovers) {
    EXPECT_TRUE(list_job_cgroups(config_).empty());  // parent doesn't exist yet
    auto [name, sleeper] = leak_job(config_, "leftover-1");
    ASSERT_GT(sleeper, 0);
    auto [name2, sleeper2] = leak_job(config_, "leftover-2");
    ASSERT_GT(sleeper2, 0);
    EXPECT_EQ(proc_cgroup(sleeper, ctl("memory")), job_path(name));
    EXPECT_EQ(list_job_cgroups(config_), (std::vector<std::string>{"leftover-1", "leftover-2"}));

    remove_job_cgroup(config_, name);
    EXPECT_TRUE(killed_by_sigkill(wait_exit(sleeper)));
    EXPECT_EQ(list_job_cgroups(config_), std::vector<std::string>{"leftover-2"});
    EXPECT_NO_THROW(remove_job_cgroup(config_, name));             // idempotent
    EXPECT_NO_THROW(remove_job_cgroup(config_, "never-existed"));  // nothing to do
    remove_job_cgroup(config_, name2);
    EXPECT_TRUE(killed_by_sigkill(wait_exit(sleeper2)));
    EXPECT_TRUE(list_job_cgroups(config_).empty());
    for (const auto& m : cgroup_mounts()) {
        EXPECT_FALSE(exists(m.path + "/" + config_.parent + "/leftover-1")) << m.path;
        EXPECT_FALSE(exists(m.path + "/" + config_.parent + "/leftover-2")) << m.path;
    }
}

TEST_F(HostCgroup, TwoParentsDontSeeEachOther) {
    other_ = config_;
    other_.parent = config_.parent + "-other";
    auto mine = JobCgroup::create(config_, "job-a", {});
    auto theirs = JobCgroup::create(other_, "job-b", {});
    EXPECT_EQ(list_job_cgroups(config_), std::vector<std::string>{"job-a"});
    EXPECT_EQ(list_job_cgroups(other_), std::vector<std::string>{"job-b"});
    // Recovering "job-a" under the other parent must not touch ours.
    remove_job_cgroup(other_, "job-a");
    for (const auto& d : job_dirs(config_, version_, "job-a")) EXPECT_TRUE(exists(d)) << d;
    EXPECT_EQ(list_job_cgroups(config_), std::vector<std::string>{"job-a"});
    mine.remove();
    theirs.remove();
}

TEST_F(HostCgroup, NestedParentIsCreated) {
    CgroupConfig c = config_;
    c.parent = config_.parent + "/inner";
    auto cg = JobCgroup::create(c, "nested", {.pids_max = 4});
    EXPECT_EQ(list_job_cgroups(c), std::vector<std::string>{"nested"});
    EXPECT_EQ(proc_cgroup(::getpid(), ctl("pids")).find(c.parent), std::string::npos);
    for (const auto& d : job_dirs(c, version_, "nested")) EXPECT_TRUE(exists(d)) << d;
    cg.remove();
    for (const auto& m : cgroup_mounts()) {
        std::string p = m.path + "/" + c.parent;
        EXPECT_TRUE(::rmdir(p.c_str()) == 0 || errno == ENOENT) << p;
    }
}

// ---- v2 against a controller-less cgroup2 mount ---------------------------------

class V2Unified : public CgroupTestBase {
protected:
    void SetUp() override {
        CgroupTestBase::SetUp();
        if (IsSkipped()) return;
        if (is_cgroup2(kHostRoot)) GTEST_SKIP() << "host is cgroup v2: the HostCgroup tests cover v2";
        if (!is_cgroup2(kUnifiedRoot)) GTEST_SKIP() << kUnifiedRoot << " is not a cgroup2 mount";
        config_.root = kUnifiedRoot;
        config_.parent = "hermetic-test-" + std::to_string(::getpid());
        config_.version = CgroupVersion::V2;
        controllers_ = slurp(std::string(kUnifiedRoot) + "/cgroup.controllers");
    }
    bool offers(const std::string& c) const { return (" " + controllers_).find(" " + c) != std::string::npos; }
    std::string job_path(const std::string& name) const { return "/" + config_.parent + "/" + name; }
    std::string controllers_;
};

TEST_F(V2Unified, DetectionRejectsV2WithoutControllers) {
    if (offers("memory") && offers("pids")) GTEST_SKIP() << "this cgroup2 mount offers memory and pids";
    CgroupConfig c = config_;
    c.version.reset();
    try {
        (void)detect_cgroup_version(c);
        ADD_FAILURE() << "detected a usable hierarchy at " << kUnifiedRoot;
    } catch (const SysError& e) {
        EXPECT_EQ(e.code(), ENOTSUP);
        EXPECT_NE(std::string(e.what()).find("not memory and pids"), std::string::npos) << e.what();
    }
}

TEST_F(V2Unified, OverrideRejectsNonCgroup2Root) {
    CgroupConfig c = config_;
    c.root = kHostRoot;  // tmpfs holding v1 hierarchies
    try {
        auto cg = JobCgroup::create(c, "job", {});
        ADD_FAILURE() << "accepted a non-cgroup2 root";
    } catch (const SysError& e) {
        EXPECT_EQ(e.code(), ENOTSUP) << e.what();
    }
}

TEST_F(V2Unified, LimitsNeedTheirController) {
    if (offers("memory") || offers("pids")) GTEST_SKIP() << "controllers are available here";
    for (CgroupLimits l : {CgroupLimits{.memory_bytes = 1 << 26}, CgroupLimits{.pids_max = 8},
                           CgroupLimits{.cpus = 1}}) {
        try {
            auto cg = JobCgroup::create(config_, "limited", l);
            ADD_FAILURE() << "limit accepted without controller";
        } catch (const SysError& e) {
            EXPECT_EQ(e.code(), ENOTSUP) << e.what();
        }
        EXPECT_FALSE(exists(config_.root + "/" + config_.parent + "/limited"));  // failed create cleans up
    }
}

TEST_F(V2Unified, LimitsAreWritten) {
    if (!offers("memory") || !offers("pids"))
        GTEST_SKIP() << kUnifiedRoot << " offers [" << controllers_.substr(0, controllers_.find('\n'))
                     << "], not memory+pids: v2 limits, memory.events and pids.events can't be exercised here";
    auto cg = JobCgroup::create(config_, "limits", {.memory_bytes = 64ull << 20, .pids_max = 32});
    std::string dir = config_.root + "/" + config_.parent + "/limits/";
    EXPECT_EQ(slurp(dir + "memory.max"), "67108864\n");
    EXPECT_EQ(slurp(dir + "pids.max"), "32\n");
    EXPECT_FALSE(cg.oom_killed());
    EXPECT_FALSE(cg.pids_limit_hit());
    cg.remove();
}

TEST_F(V2Unified, CreateAttachKillRemove) {
    auto cg = JobCgroup::create(config_, "mech", {});
    EXPECT_EQ(cg.version(), CgroupVersion::V2);
    ASSERT_GE(cg.v2_dir_fd(), 0);
    EXPECT_TRUE(exists(config_.root + "/" + config_.parent + "/mech/cgroup.kill"));  // kill_all uses it
    Gated child = fork_gated([] {});
    cg.attach(child.pid);
    EXPECT_EQ(proc_cgroup(child.pid, ""), job_path("mech"));
    child.release();
    wait_exit(child.pid);
    if (!offers("memory")) {
        EXPECT_FALSE(cg.oom_killed());
        EXPECT_EQ(cg.memory_peak(), std::nullopt);
    }
    if (!offers("pids")) {
        EXPECT_FALSE(cg.pids_limit_hit());
    }

    kill_stopped_and_grandchild(cg, job_path("mech"), "");
    cg.remove();
    EXPECT_FALSE(exists(config_.root + "/" + config_.parent + "/mech"));
    EXPECT_NO_THROW(cg.remove());
}

TEST_F(V2Unified, Clone3IntoCgroup) {
    auto cg = JobCgroup::create(config_, "clone3", {});
    clone_args args{};
    args.flags = CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = static_cast<uint64_t>(cg.v2_dir_fd());
    long pid = ::syscall(SYS_clone3, &args, sizeof args);
    ASSERT_GE(pid, 0) << std::strerror(errno);
    if (pid == 0) {
        for (;;) ::pause();
    }
    EXPECT_EQ(proc_cgroup(static_cast<pid_t>(pid), ""), job_path("clone3"));
    cg.kill_all();
    EXPECT_TRUE(killed_by_sigkill(wait_exit(static_cast<pid_t>(pid))));
    cg.remove();
}

TEST_F(V2Unified, SelfReplacingProcessesAreKilled) {
    auto cg = JobCgroup::create(config_, "churn", {});
    std::atomic<bool> stop{false};
    std::thread reaper([&] {
        while (!stop) {
            int s;
            if (::waitpid(-1, &s, WNOHANG) <= 0) std::this_thread::sleep_for(1ms);
        }
    });
    std::vector<Gated> chains;
    for (int i = 0; i < 4; ++i) {
        chains.push_back(fork_gated([] {
            timespec start{};
            ::clock_gettime(CLOCK_MONOTONIC, &start);
            for (;;) {
                timespec now{};
                ::clock_gettime(CLOCK_MONOTONIC, &now);
                if (now.tv_sec - start.tv_sec > 30) ::_exit(7);
                pid_t p = ::fork();
                if (p > 0) ::_exit(0);
                if (p < 0) ::usleep(1000);
            }
        }));
        cg.attach(chains.back().pid);
    }
    for (auto& c : chains) c.release();
    std::this_thread::sleep_for(200ms);
    std::string procs = config_.root + "/" + config_.parent + "/churn/cgroup.procs";
    EXPECT_NE(slurp(procs), "");
    EXPECT_NO_THROW(cg.kill_all());
    EXPECT_EQ(slurp(procs), "");
    stop = true;
    reaper.join();
    cg.remove();
}

TEST_F(V2Unified, CrashRecovery) {
    auto [name, sleeper] = leak_job(config_, "leftover");
    ASSERT_GT(sleeper, 0);
    EXPECT_EQ(proc_cgroup(sleeper, ""), job_path(name));
    other_ = config_;
    other_.parent = config_.parent + "-other";
    auto theirs = JobCgroup::create(other_, "theirs", {});
    EXPECT_EQ(list_job_cgroups(config_), std::vector<std::string>{"leftover"});
    EXPECT_EQ(list_job_cgroups(other_), std::vector<std::string>{"theirs"});
    remove_job_cgroup(other_, name);  // not under the other parent: untouched
    EXPECT_TRUE(exists(config_.root + "/" + config_.parent + "/" + name));
    remove_job_cgroup(config_, name);
    EXPECT_TRUE(killed_by_sigkill(wait_exit(sleeper)));
    EXPECT_TRUE(list_job_cgroups(config_).empty());
    theirs.remove();
}

}  // namespace
}  // namespace hermetic::sandbox
