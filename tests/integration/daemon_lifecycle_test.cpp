// The job lifecycle against a real hermeticd (issue 5): a crash (kill -9) in the
// middle of a build and the restart that reconciles it, idempotent submissions
// racing each other, crowds of clients of several users, per-user limits, who may
// see and touch which job, SIGHUP reloads, automatic retention, SIGTERM with its
// grace period, protocol versions both ways, and the systemd units (verified, and
// socket activation through systemd-socket-activate).
//
// Waiting is always for a condition (a job shows up as running, a process is
// gone), bounded only so that a broken daemon fails the test instead of hanging
// it; nothing asserts how long anything took.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/unique_fd.hpp"
#include "protocol/messages.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/test_daemon.hpp"

using namespace hermetic;
using namespace hermetic::test;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// How long a condition may take before the test gives up on the daemon. Generous:
// a loaded 2-core CI machine must never fail a healthy daemon.
constexpr auto kPatience = std::chrono::seconds(60);

bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds limit = kPatience) {
    auto deadline = Clock::now() + limit;
    for (;;) {
        if (cond()) return true;
        if (Clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

// ---- users -------------------------------------------------------------------------

// A user in group "hermetic", created if missing (scripts/test.sh creates the
// same ones for CI). Parallel test processes may race on useradd: retry.
ProcessOptions as_user(const std::string& name) {
    for (int attempt = 0; !::getpwnam(name.c_str()) && attempt < 20; ++attempt) {
        run_process({"useradd", "--create-home", "--groups", "hermetic", "--shell", "/bin/sh", name});
        if (!::getpwnam(name.c_str())) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    passwd* pw = ::getpwnam(name.c_str());
    if (!pw) throw std::runtime_error("cannot create user " + name);
    int n = 64;
    std::vector<gid_t> groups(static_cast<size_t>(n));
    if (::getgrouplist(pw->pw_name, pw->pw_gid, groups.data(), &n) < 0) throw std::runtime_error("getgrouplist");
    groups.resize(static_cast<size_t>(n));
    ProcessOptions o;
    o.uid = pw->pw_uid;
    o.gid = pw->pw_gid;
    o.groups = groups;
    return o;
}

ProcessOptions user_a() { return as_test_user(); }
ProcessOptions user_b() { return as_user("hermetic-test2"); }
ProcessOptions user_c() { return as_user("hermetic-test3"); }

// ---- talking to the daemon ---------------------------------------------------------

// Common to every daemon here: a short grace, so that tearing a test down never
// waits for a build it left running.
TestDaemonOptions with(std::vector<std::string> lines) {
    TestDaemonOptions o;
    o.config_lines = std::move(lines);
    if (std::none_of(o.config_lines.begin(), o.config_lines.end(),
                     [](const std::string& l) { return l.starts_with("shutdown-grace"); }))
        o.config_lines.push_back("shutdown-grace = 1");
    return o;
}

json list_jobs(const TestDaemon& d, const ProcessOptions& as = {}) {
    auto r = d.ctl({"list", "--json", "--limit", "10000"}, as);
    if (r.status != 0) return json::array();
    auto j = json::parse(r.out, nullptr, false);
    return j.is_array() ? j : json::array();
}

std::optional<json> job_with_argv(const TestDaemon& d, const std::vector<std::string>& argv) {
    for (const auto& j : list_jobs(d))
        if (j.value("argv", json::array()) == json(argv)) return j;
    return std::nullopt;
}

// The "job: ID" line wherever it is on stderr (not only the first line).
std::string job_id_in(const ProcessResult& r) {
    auto p = r.err.find("job: ");
    if (p == std::string::npos) return "";
    return r.err.substr(p + 5, r.err.find('\n', p) - p - 5);
}

// The metrics line's value ("" if absent).
std::string metric(const TestDaemon& d, const std::string& name) {
    auto r = d.ctl({"metrics"});
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);)
        if (line.starts_with(name + " ")) return line.substr(name.size() + 1);
    return "";
}

// A run in the background: hermeticctl's result once it ends.
std::future<ProcessResult> run_async(const TestDaemon& d, const std::string& src, std::vector<std::string> cmd,
                                     std::vector<std::string> opts, ProcessOptions as) {
    return std::async(std::launch::async, [&d, src, cmd = std::move(cmd), opts = std::move(opts), as] {
        return d.run(src, cmd, opts, as);
    });
}

ProcessResult get(std::future<ProcessResult>& f) {
    if (f.wait_for(kPatience * 2) != std::future_status::ready) {
        ProcessResult r;
        r.err = "hermeticctl did not end";
        r.timed_out = true;
        return r;
    }
    return f.get();
}

// A unique, recognisable sleep: `sleep 3001.<n>` (GNU sleep takes fractions), so
// the test can find exactly this build among the host's processes.
std::vector<std::string> unique_sleep() {
    static int n = 0;
    return {"sleep", std::to_string(3000 + ::getpid() % 1000) + "." + std::to_string(++n)};
}

// ---- processes, cgroups and mounts on the host ---------------------------------------

std::vector<std::string> cmdline_of(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::vector<std::string> argv;
    std::string cur;
    for (char c : all) {
        if (c == '\0') {
            argv.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    return argv;
}

// state (field 3), pgrp (field 5), CPU time (utime + stime, fields 14 and 15, in
// clock ticks), nice value (field 19) and start time (field 22) of a process.
struct Stat {
    char state = '?';
    pid_t pgrp = 0;
    uint64_t start = 0;
    uint64_t cpu_ticks = 0;
    int nice = 0;
};
std::optional<Stat> stat_of(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(f, line)) return std::nullopt;
    auto close = line.rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream in(line.substr(close + 2));
    std::vector<std::string> w;
    for (std::string s; in >> s;) w.push_back(s);
    if (w.size() < 20) return std::nullopt;
    return Stat{w[0][0], static_cast<pid_t>(std::stol(w[2])), std::stoull(w[19]), std::stoull(w[11]) + std::stoull(w[12]),
                std::stoi(w[16])};
}

std::vector<pid_t> all_pids() {
    std::vector<pid_t> out;
    DIR* d = ::opendir("/proc");
    while (dirent* e = d ? ::readdir(d) : nullptr) {
        char* end = nullptr;
        long p = std::strtol(e->d_name, &end, 10);
        if (*end == '\0' && p > 0) out.push_back(static_cast<pid_t>(p));
    }
    if (d) ::closedir(d);
    return out;
}

// One process as it was when seen: pid plus start time, so a recycled pid is
// never mistaken for it.
struct Seen {
    pid_t pid;
    uint64_t start;
    std::string what;
};

// Whether it still exists and has not exited (a zombie holds no memory, mounts or
// namespaces any more; it only waits for its reaper).
bool still_running(const Seen& s) {
    auto st = stat_of(s.pid);
    return st && st->start == s.start && st->state != 'Z' && st->state != 'X';
}

std::string describe(const std::vector<Seen>& v) {
    std::string s;
    for (const auto& p : v) s += "  " + std::to_string(p.pid) + " " + p.what + "\n";
    return s;
}

std::vector<Seen> running_of(const std::vector<Seen>& v) {
    std::vector<Seen> out;
    for (const auto& p : v)
        if (still_running(p)) out.push_back(p);
    return out;
}

std::optional<Seen> seen(pid_t pid) {
    auto st = stat_of(pid);
    if (!st) return std::nullopt;
    std::string what;
    for (const auto& a : cmdline_of(pid)) what += a + " ";
    return Seen{pid, st->start, what};
}

std::vector<pid_t> pids_with_argv(const std::vector<std::string>& argv) {
    std::vector<pid_t> out;
    for (pid_t p : all_pids())
        if (cmdline_of(p) == argv) out.push_back(p);
    return out;
}

// Every cgroup hierarchy root mounted under /sys/fs/cgroup (v1: one per
// controller set; v2: the unified one, or /sys/fs/cgroup itself).
std::vector<std::string> cgroup_roots() {
    std::vector<std::string> roots = {"/sys/fs/cgroup"};
    DIR* d = ::opendir("/sys/fs/cgroup");
    while (dirent* e = d ? ::readdir(d) : nullptr) {
        if (e->d_name[0] == '.') continue;
        std::string p = std::string("/sys/fs/cgroup/") + e->d_name;
        struct stat st{};
        if (::lstat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) roots.push_back(p);
    }
    if (d) ::closedir(d);
    return roots;
}

bool is_dir(const std::string& p) {
    struct stat st{};
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The directories of a sandbox's cgroup, in every hierarchy it exists in.
std::vector<std::string> cgroup_dirs(const TestDaemon& d, const std::string& sandbox) {
    std::vector<std::string> out;
    for (const auto& r : cgroup_roots()) {
        std::string p = r + "/" + d.cgroup_parent() + "/" + sandbox;
        if (is_dir(p)) out.push_back(p);
    }
    return out;
}

// Which sandbox (cgroup under the daemon's parent) a process is in.
std::string sandbox_of(const TestDaemon& d, pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/cgroup");
    const std::string marker = "/" + d.cgroup_parent() + "/";
    for (std::string line; std::getline(f, line);) {
        auto p = line.find(marker);
        if (p == std::string::npos) continue;
        std::string rest = line.substr(p + marker.size());
        return rest.substr(0, rest.find('/'));
    }
    return "";
}

std::vector<pid_t> cgroup_procs(const std::string& dir) {
    std::vector<pid_t> out;
    std::ifstream f(dir + "/cgroup.procs");
    for (long p; f >> p;) out.push_back(static_cast<pid_t>(p));
    return out;
}

std::string mnt_ns_of(pid_t pid) {
    char buf[64];
    ssize_t n = ::readlink(("/proc/" + std::to_string(pid) + "/ns/mnt").c_str(), buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

// Everything of one running job a test can see from the host: the processes in
// its cgroup, in its mount namespace, and its runner with every process of the
// runner's process group (with `all_runners`, every runner of the daemon: the
// sandboxes prepared ahead too); the sandbox (cgroup) it runs in.
struct JobFootprint {
    std::string sandbox;
    std::string mnt_ns;
    std::vector<std::string> cgroups;
    std::vector<Seen> processes;
};

JobFootprint footprint(const TestDaemon& d, pid_t build, bool all_runners) {
    JobFootprint fp;
    fp.sandbox = sandbox_of(d, build);
    fp.mnt_ns = mnt_ns_of(build);
    fp.cgroups = cgroup_dirs(d, fp.sandbox);
    std::set<pid_t> pids;
    for (const auto& c : fp.cgroups)
        for (pid_t p : cgroup_procs(c)) pids.insert(p);
    std::set<pid_t> runners;
    for (pid_t p : all_pids()) {
        auto argv = cmdline_of(p);
        if (!fp.mnt_ns.empty() && mnt_ns_of(p) == fp.mnt_ns) pids.insert(p);
        if (argv.size() == 2 && argv[0].ends_with("/hermetic-runner") && argv[1] == std::to_string(d.pid()))
            runners.insert(p);
    }
    if (!all_runners) {  // only the one whose group holds the job's sandbox init
        std::set<pid_t> mine;
        for (pid_t p : pids)
            if (auto st = stat_of(p); st && runners.count(st->pgrp)) mine.insert(st->pgrp);
        runners = mine;
    }
    for (pid_t p : all_pids()) {
        auto st = stat_of(p);
        if (runners.count(p) || (st && runners.count(st->pgrp))) pids.insert(p);
    }
    for (pid_t p : pids)
        if (auto s = seen(p)) fp.processes.push_back(*s);
    return fp;
}

std::string read_text(const std::string& path) {
    std::ifstream f(path);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// The daemon's config file (TestDaemon writes it next to its socket); one option
// set to a new value, for SIGHUP or the next start.
std::string config_path(const TestDaemon& d) {
    std::string s = d.socket();
    return s.substr(0, s.rfind('/')) + "/hermeticd.conf";
}

void set_option(const TestDaemon& d, const std::string& key, const std::string& value) {
    std::string text = read_text(config_path(d)), out;
    std::istringstream in(text);
    bool found = false;
    for (std::string line; std::getline(in, line);) {
        if (line.starts_with(key + " ") || line.starts_with(key + "=")) {
            line = key + " = " + value;
            found = true;
        }
        out += line + "\n";
    }
    if (!found) out += key + " = " + value + "\n";
    write_file(config_path(d), out, 0644);
}

// Waits until the build `argv` runs (its process exists) and returns its pid.
pid_t wait_for_build(const std::vector<std::string>& argv) {
    pid_t pid = -1;
    eventually([&] {
        auto v = pids_with_argv(argv);
        if (v.empty()) return false;
        pid = v[0];
        return true;
    });
    return pid;
}

std::string job_state(const TestDaemon& d, const std::string& id, const ProcessOptions& as = {}) {
    auto r = d.ctl({"status", id, "--json"}, as);
    auto j = json::parse(r.out, nullptr, false);
    return j.is_object() ? j.value("state", "") : "";
}

// A source directory anyone may read (the jobs here need nothing from it).
struct Source {
    TempDir dir{"hermetic-src"};
    [[nodiscard]] const std::string& path() const { return dir.path(); }
};

// ---- 1. kill -9 during a build, then a restart ------------------------------------

TEST(DaemonLifecycle, CrashDuringABuildLeavesNothingAndTheJobReadsInterrupted) {
    TestDaemon d(with({}));
    Source src;
    auto sleep = unique_sleep();
    auto client = run_async(d, src.path(), sleep, {}, user_a());
    pid_t build = wait_for_build(sleep);
    ASSERT_GT(build, 0) << "the build never started\n" << d.log();
    std::string id;
    ASSERT_TRUE(eventually([&] {
        auto j = job_with_argv(d, sleep);
        if (!j || j->value("state", "") != "running") return false;
        id = j->value("job", "");
        return true;
    })) << d.log();
    JobFootprint fp = footprint(d, build, true);
    ASSERT_FALSE(fp.sandbox.empty()) << "the build is in no cgroup of the daemon";
    ASSERT_FALSE(fp.cgroups.empty());
    ASSERT_GE(fp.processes.size(), 2u) << describe(fp.processes);  // at least the runner and the build

    d.kill_hard();
    ProcessResult r = get(client);
    EXPECT_EQ(r.status, 125) << r.describe();
    EXPECT_NE(r.err.find("closed the connection"), std::string::npos) << r.describe();

    d.start();  // returns once the restarted daemon answers: recovery is over
    auto left = running_of(fp.processes);
    EXPECT_TRUE(left.empty()) << "processes of the job survived the restart:\n" << describe(left);
    for (const auto& c : fp.cgroups) EXPECT_FALSE(is_dir(c)) << c << " survived the restart";
    std::string mounts = read_text("/proc/self/mountinfo");
    EXPECT_EQ(mounts.find(fp.sandbox), std::string::npos) << mounts;
    EXPECT_EQ(mounts.find(id), std::string::npos) << mounts;
    if (!fp.mnt_ns.empty()) {
        EXPECT_EQ(mounts.find(fp.mnt_ns), std::string::npos) << mounts;
    }

    auto st = d.ctl({"status", id, "--json"}, user_a());
    ASSERT_EQ(st.status, 0) << st.describe();
    json j = json::parse(st.out);
    EXPECT_EQ(j["state"], "interrupted") << j.dump();
    EXPECT_NE(j.value("reason", "").find("interrupted"), std::string::npos) << j.dump();
    EXPECT_NE(j.value("reason", "").find("running"), std::string::npos) << j.dump();
    auto human = d.ctl({"status", id}, user_a());
    EXPECT_NE(human.out.find("reason:"), std::string::npos) << human.describe();

    ProcessOptions quick = user_a();
    quick.timeout = std::chrono::seconds(30);  // a hang guard, not a measurement
    auto w = d.ctl({"wait", id}, quick);
    EXPECT_FALSE(w.timed_out) << "wait on an interrupted job hung";
    EXPECT_EQ(w.status, 125) << w.describe();
    EXPECT_NE(w.err.find("interrupted"), std::string::npos) << w.describe();

    auto again = d.run(src.path(), {"sh", "-c", "echo after the crash"}, {}, user_a());
    EXPECT_EQ(again.status, 0) << again.describe() << d.log();
    EXPECT_EQ(again.out, "after the crash\n") << again.describe();
}

// ---- 2. one key, twenty clients at once -------------------------------------------

TEST(DaemonLifecycle, TwentyConcurrentSubmissionsOfOneKeyRunTheBuildOnce) {
    TestDaemon d(with({}));
    Source src;
    const std::string key = "lifecycle-key-" + std::to_string(::getpid());
    const std::string marker = "built-once-" + std::to_string(::getpid());
    // Long enough that most submissions arrive while it runs, short for the test.
    std::vector<std::string> cmd = {"sh", "-c", "echo " + marker + "; sleep 1; exit 7"};
    std::vector<std::future<ProcessResult>> clients;
    for (int i = 0; i < 20; ++i) clients.push_back(run_async(d, src.path(), cmd, {"--key", key}, user_a()));
    std::vector<ProcessResult> results;
    for (auto& c : clients) results.push_back(get(c));

    std::string id = job_id_in(results[0]);
    ASSERT_FALSE(id.empty()) << results[0].describe();
    for (const auto& r : results) {
        EXPECT_EQ(r.status, 7) << r.describe();
        EXPECT_EQ(job_id_in(r), id) << r.describe();
        EXPECT_EQ(r.out, marker + "\n") << r.describe();
    }
    int with_key = 0;
    for (const auto& j : list_jobs(d, user_a()))
        if (j.value("key", "") == key) ++with_key;
    EXPECT_EQ(with_key, 1) << list_jobs(d).dump();
    std::string log = d.log();
    size_t runs = 0;
    for (size_t p = log.find("job " + id + ": running in"); p != std::string::npos;
         p = log.find("job " + id + ": running in", p + 1))
        ++runs;
    EXPECT_EQ(runs, 1u) << log;
}

// ---- 3. crowds and per-user limits -------------------------------------------------

TEST(DaemonLifecycle, FiftyConcurrentClientsOfThreeUsersAllComplete) {
    // Room for everyone: 8 run at once (TestDaemon's max-jobs), the rest queue; no
    // user exceeds its share.
    TestDaemon d(with({"max-queued = 64", "max-jobs-per-user = 20"}));
    Source src;
    const ProcessOptions users[3] = {user_a(), user_b(), user_c()};
    std::vector<std::future<ProcessResult>> clients;
    for (int i = 0; i < 50; ++i)
        clients.push_back(run_async(d, src.path(), {"echo", "client-" + std::to_string(i)}, {}, users[i % 3]));
    std::set<std::string> ids;
    for (int i = 0; i < 50; ++i) {
        ProcessResult r = get(clients[static_cast<size_t>(i)]);
        EXPECT_EQ(r.status, 0) << "client " << i << ": " << r.describe();
        EXPECT_EQ(r.out, "client-" + std::to_string(i) + "\n") << r.describe();
        ids.insert(job_id_in(r));
    }
    EXPECT_EQ(ids.size(), 50u);
    for (int u = 0; u < 3; ++u) {
        size_t n = 0;
        for (const auto& j : list_jobs(d, users[u])) {
            EXPECT_EQ(j.value("uid", -1), static_cast<int>(*users[u].uid)) << j.dump();
            EXPECT_EQ(j.value("state", ""), "succeeded") << j.dump();
            ++n;
        }
        EXPECT_EQ(n, u < 2 ? 17u : 16u) << "user " << u;
    }
}

TEST(DaemonLifecycle, PerUserLimitRefusesTheExcessWithAReasonWhileAnotherUserIsAdmitted) {
    TestDaemon d(with({"max-jobs-per-user = 1"}));
    Source src;
    auto sleep = unique_sleep();
    auto first = run_async(d, src.path(), sleep, {}, user_a());
    std::string id;
    ASSERT_TRUE(eventually([&] {
        auto j = job_with_argv(d, sleep);
        if (!j) return false;
        id = j->value("job", "");
        return true;
    })) << d.log();

    auto excess = d.run(src.path(), {"echo", "excess"}, {}, user_a());
    EXPECT_EQ(excess.status, 125) << excess.describe();
    EXPECT_NE(excess.err.find("limit 1 per user"), std::string::npos) << excess.describe();
    EXPECT_EQ(excess.out, "") << excess.describe();

    auto other = d.run(src.path(), {"echo", "other user"}, {}, user_b());
    EXPECT_EQ(other.status, 0) << other.describe();
    EXPECT_EQ(other.out, "other user\n") << other.describe();

    EXPECT_NE(metric(d, "hermetic_refusals_total{reason=\"refused\"}"), "");
    auto c = d.ctl({"cancel", id}, user_a());
    EXPECT_EQ(c.status, 0) << c.describe();
    ProcessResult r = get(first);
    EXPECT_EQ(r.status, 130) << r.describe();
}

// ---- 4. other users' jobs ------------------------------------------------------------

TEST(DaemonLifecycle, UsersCannotSeeWaitOnOrCancelAnotherUsersJobButRootCan) {
    TestDaemon d(with({}));
    Source src;
    auto done = d.run(src.path(), {"echo", "private output"}, {}, user_a());
    ASSERT_EQ(done.status, 0) << done.describe();
    const std::string finished_id = job_id_in(done);
    auto sleep = unique_sleep();
    auto running = run_async(d, src.path(), sleep, {}, user_a());
    std::string id;
    ASSERT_TRUE(eventually([&] {
        auto j = job_with_argv(d, sleep);
        if (!j || j->value("state", "") != "running") return false;
        id = j->value("job", "");
        return true;
    })) << d.log();

    for (const auto& job : {finished_id, id}) {
        for (const std::string cmd : {"status", "logs", "wait", "cancel"}) {
            auto r = d.ctl({cmd, job}, user_b());
            EXPECT_EQ(r.status, 125) << cmd << " " << job << ": " << r.describe();
            EXPECT_NE(r.err.find("no job " + job + " (or it isn't yours)"), std::string::npos) << r.describe();
            EXPECT_EQ(r.out.find("private output"), std::string::npos) << r.describe();
        }
    }
    for (const auto& j : list_jobs(d, user_b())) {
        EXPECT_NE(j.value("job", ""), id);
        EXPECT_NE(j.value("job", ""), finished_id);
    }
    EXPECT_EQ(job_state(d, id, user_a()), "running") << "another user's cancel reached the job";

    // The owner and root see both; root may act on them.
    EXPECT_EQ(job_state(d, finished_id, user_a()), "succeeded");
    EXPECT_EQ(job_state(d, finished_id), "succeeded");
    auto logs = d.ctl({"logs", finished_id});
    EXPECT_EQ(logs.status, 0) << logs.describe();
    EXPECT_EQ(logs.out, "private output\n") << logs.describe();
    std::set<std::string> root_sees;
    for (const auto& j : list_jobs(d)) root_sees.insert(j.value("job", ""));
    EXPECT_TRUE(root_sees.count(id) && root_sees.count(finished_id));
    auto c = d.ctl({"cancel", id});
    EXPECT_EQ(c.status, 0) << c.describe();
    ProcessResult r = get(running);
    EXPECT_EQ(r.status, 130) << r.describe();
    EXPECT_EQ(job_state(d, id, user_a()), "cancelled");
}

// ---- 5. SIGHUP -----------------------------------------------------------------------

TEST(DaemonLifecycle, SighupReloadsTheLimitsAndLogsWhatItCannotChange) {
    TestDaemon d(with({"max-jobs-per-user = 1"}));
    Source src;
    EXPECT_EQ(metric(d, "hermetic_config_reloads_total"), "0");
    EXPECT_EQ(metric(d, "hermetic_limit{option=\"max-jobs-per-user\"}"), "1");
    auto s1 = unique_sleep();
    auto first = run_async(d, src.path(), s1, {}, user_a());
    ASSERT_TRUE(eventually([&] { return job_with_argv(d, s1).has_value(); })) << d.log();
    auto refused = d.run(src.path(), {"true"}, {}, user_a());
    EXPECT_EQ(refused.status, 125) << refused.describe();
    EXPECT_NE(refused.err.find("limit 1 per user"), std::string::npos) << refused.describe();

    set_option(d, "max-jobs-per-user", "2");
    set_option(d, "netns-pool", "3");  // not reloadable
    ASSERT_EQ(::kill(d.pid(), SIGHUP), 0);
    ASSERT_TRUE(eventually([&] { return metric(d, "hermetic_config_reloads_total") == "1"; })) << d.log();
    EXPECT_EQ(metric(d, "hermetic_limit{option=\"max-jobs-per-user\"}"), "2");
    std::string log = d.log();
    EXPECT_NE(log.find("max-jobs-per-user: 1 -> 2"), std::string::npos) << log;
    EXPECT_NE(log.find("netns-pool: 2 -> 3: this option can't change while hermeticd runs; ignored"),
              std::string::npos)
        << log;

    auto s2 = unique_sleep();
    auto second = run_async(d, src.path(), s2, {}, user_a());
    ASSERT_TRUE(eventually([&] { return job_with_argv(d, s2).has_value(); })) << d.log();
    auto third = d.run(src.path(), {"true"}, {}, user_a());
    EXPECT_EQ(third.status, 125) << third.describe();
    EXPECT_NE(third.err.find("limit 2 per user"), std::string::npos) << third.describe();

    // A broken file is refused as a whole; the running configuration stays.
    set_option(d, "max-jobs-per-user", "-1");
    ASSERT_EQ(::kill(d.pid(), SIGHUP), 0);
    ASSERT_TRUE(eventually([&] { return d.log().find("configuration not reloaded") != std::string::npos; }))
        << d.log();
    EXPECT_EQ(metric(d, "hermetic_config_reloads_total"), "1");
    EXPECT_EQ(metric(d, "hermetic_limit{option=\"max-jobs-per-user\"}"), "2");
    EXPECT_EQ(d.ctl({"ping"}).status, 0);

    for (const auto& s : {s1, s2})
        if (auto j = job_with_argv(d, s)) d.ctl({"cancel", j->value("job", "")});
    EXPECT_EQ(get(first).status, 130);
    EXPECT_EQ(get(second).status, 130);
}

// ---- 6. automatic retention ----------------------------------------------------------

TEST(DaemonLifecycle, AutomaticCollectionKeepsTheNewestFinishedJobsAndEveryRunningOne) {
    TestDaemon d(with({"gc-interval = 1", "retain-jobs = 1"}));
    Source src;
    auto sleep = unique_sleep();
    auto running = run_async(d, src.path(), sleep, {}, user_a());
    std::string running_id;
    ASSERT_TRUE(eventually([&] {
        auto j = job_with_argv(d, sleep);
        if (!j) return false;
        running_id = j->value("job", "");
        return true;
    })) << d.log();
    std::vector<std::string> finished;
    for (int i = 0; i < 3; ++i) {
        auto r = d.run(src.path(), {"echo", std::to_string(i)}, {}, user_a());
        ASSERT_EQ(r.status, 0) << r.describe();
        finished.push_back(job_id_in(r));
    }
    auto ids = [&] {
        std::set<std::string> s;
        for (const auto& j : list_jobs(d)) s.insert(j.value("job", ""));
        return s;
    };
    ASSERT_TRUE(eventually([&] { return ids().size() == 2; })) << list_jobs(d).dump() << d.log();
    auto kept = ids();
    EXPECT_TRUE(kept.count(running_id)) << "a running job was collected";
    EXPECT_TRUE(kept.count(finished.back())) << "the newest finished job was collected";
    EXPECT_TRUE(is_dir(d.state_dir() + "/jobs/" + running_id));
    EXPECT_TRUE(is_dir(d.state_dir() + "/jobs/" + finished.back()));
    for (size_t i = 0; i + 1 < finished.size(); ++i)
        EXPECT_FALSE(is_dir(d.state_dir() + "/jobs/" + finished[i])) << finished[i];
    d.ctl({"cancel", running_id});
    EXPECT_EQ(get(running).status, 130);
}

// ---- 7. SIGTERM and the grace period -------------------------------------------------

TEST(DaemonLifecycle, SigtermLetsARunningJobFinishWithinTheGrace) {
    TestDaemon d(with({"shutdown-grace = 120"}));
    Source src;
    auto marker = unique_sleep();
    // The sleep is named uniquely so the test sees it run; it then finishes alone.
    std::vector<std::string> cmd = {"sh", "-c", "sleep 2; echo finished in grace", marker[1]};
    auto client = run_async(d, src.path(), cmd, {}, user_a());
    std::string id;
    ASSERT_TRUE(eventually([&] {
        auto j = job_with_argv(d, cmd);
        if (!j || j->value("state", "") != "running") return false;
        id = j->value("job", "");
        return true;
    })) << d.log();
    ASSERT_EQ(::kill(d.pid(), SIGTERM), 0);
    // No new connections once it is shutting down.
    EXPECT_TRUE(eventually([&] { return d.ctl({"ping"}).status != 0; }));
    ProcessResult r = get(client);
    EXPECT_EQ(r.status, 0) << r.describe() << d.log();
    EXPECT_EQ(r.out, "finished in grace\n") << r.describe();
    d.stop();
    d.start();
    EXPECT_EQ(job_state(d, id), "succeeded");
}

TEST(DaemonLifecycle, SigtermInterruptsWhatOutlivesTheGraceAndWhatWasQueued) {
    TestDaemon d(with({"shutdown-grace = 1"}));
    Source src;
    // One job at a time, so that a second one queues.
    d.stop();
    set_option(d, "max-jobs", "1");
    d.start();
    auto sleep = unique_sleep();
    auto client = run_async(d, src.path(), sleep, {}, user_a());
    pid_t build = wait_for_build(sleep);
    ASSERT_GT(build, 0) << d.log();
    std::string id;
    ASSERT_TRUE(eventually([&] {
        auto j = job_with_argv(d, sleep);
        if (!j || j->value("state", "") != "running") return false;
        id = j->value("job", "");
        return true;
    })) << d.log();
    auto queued_cmd = unique_sleep();
    auto queued = run_async(d, src.path(), queued_cmd, {}, user_b());
    std::string queued_id;
    ASSERT_TRUE(eventually([&] {
        auto j = job_with_argv(d, queued_cmd);
        if (!j) return false;
        queued_id = j->value("job", "");
        return true;
    })) << d.log();
    JobFootprint fp = footprint(d, build, false);
    ASSERT_GE(fp.processes.size(), 2u) << describe(fp.processes);

    ASSERT_EQ(::kill(d.pid(), SIGTERM), 0);
    ProcessResult r = get(client);
    EXPECT_EQ(r.status, 125) << r.describe();
    EXPECT_NE(r.err.find("grace period of 1 s"), std::string::npos) << r.describe();
    ProcessResult q = get(queued);
    EXPECT_EQ(q.status, 125) << q.describe();
    EXPECT_NE(q.err.find("before the job started"), std::string::npos) << q.describe();
    d.stop();  // waits for the daemon to exit
    auto left = running_of(fp.processes);
    EXPECT_TRUE(left.empty()) << "processes of the job outlived the daemon:\n" << describe(left);
    for (const auto& c : fp.cgroups) EXPECT_FALSE(is_dir(c)) << c;

    d.start();
    auto st = d.ctl({"status", id, "--json"});
    json j = json::parse(st.out, nullptr, false);
    ASSERT_TRUE(j.is_object()) << st.describe();
    EXPECT_EQ(j["state"], "interrupted") << j.dump();
    EXPECT_NE(j.value("reason", "").find("grace period"), std::string::npos) << j.dump();
    EXPECT_EQ(job_state(d, queued_id), "interrupted");
    EXPECT_EQ(d.ctl({"wait", id}).status, 125);
}

// ---- prepared sandboxes wait without using the CPU ------------------------------

// Every process of the daemon's prepared (or running) sandboxes: the runners
// and the members of their process groups.
std::vector<pid_t> pool_processes(const TestDaemon& d) {
    std::set<pid_t> runners;
    for (pid_t p : all_pids()) {
        auto argv = cmdline_of(p);
        if (argv.size() == 2 && argv[0].ends_with("/hermetic-runner") && argv[1] == std::to_string(d.pid()))
            runners.insert(p);
    }
    std::vector<pid_t> out;
    for (pid_t p : all_pids())
        if (auto st = stat_of(p); runners.count(p) || (st && runners.count(st->pgrp))) out.push_back(p);
    return out;
}

// The pool keeps sandboxes ready ahead of jobs: a runner, its sandbox init and the
// determinism supervisor with its /dev/fuse. They must sleep until a job comes
// (a supervisor once spun on its FUSE device, which polls as an error until init
// mounts it, burning a CPU per prepared sandbox).
TEST(DaemonLifecycle, PreparedSandboxesSleepUntilAJobComes) {
    TestDaemon d(with({"sandbox-pool = 2"}));
    auto pool_processes = [&] { return ::pool_processes(d); };
    // Two sandboxes, each a runner, its init and its supervisor.
    ASSERT_TRUE(eventually([&] { return pool_processes().size() >= 6; })) << pool_processes().size() << "\n" << d.log();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the last steps of preparing
    auto ticks = [&] {
        uint64_t t = 0;
        for (pid_t p : pool_processes())
            if (auto st = stat_of(p)) t += st->cpu_ticks;
        return t;
    };
    const uint64_t before = ticks();
    std::this_thread::sleep_for(std::chrono::seconds(2));
    const uint64_t used = ticks() - before;
    // A spinning process would use ~2 s of CPU here; a sleeping pool none.
    EXPECT_LT(used, static_cast<uint64_t>(::sysconf(_SC_CLK_TCK)) / 5) << "ticks of CPU while waiting: " << used;
}

// The pool prepares sandboxes while jobs run, at the lowest priority: on a
// busy host the next job's preparation takes only what running jobs leave. The
// sandbox a job takes, and so the build, runs at the normal priority.
TEST(DaemonLifecycle, ThePoolPreparesInTheBackgroundAndJobsRunAtNormalPriority) {
    TestDaemon d(with({"sandbox-pool = 2"}));
    ASSERT_TRUE(eventually([&] { return pool_processes(d).size() >= 6; })) << d.log();
    for (pid_t p : pool_processes(d)) {
        auto st = stat_of(p);
        if (st) {
            EXPECT_EQ(st->nice, 19) << p << " " << cmdline_of(p).front();
        }
    }
    Source src;
    // getpriority(2) itself: nice(1) prints it.
    auto r = d.run(src.path(), {"nice"}, {}, user_a());
    ASSERT_EQ(r.status, 0) << r.describe();
    EXPECT_EQ(r.out, "0\n");
}

// ---- 8. protocol versions ------------------------------------------------------------

UniqueFd connect_to(const std::string& path) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        throw std::runtime_error("connect " + path + ": " + std::strerror(errno));
    return fd;
}

TEST(DaemonLifecycle, ANewerMajorProtocolIsRefusedNamingBothVersions) {
    TestDaemon d(with({}));
    for (const std::string type : {"ping", "status", "run"}) {
        UniqueFd c = connect_to(d.socket());
        json m = {{"proto", {2, 0}}, {"type", type}, {"job", "x"}};
        protocol::write_frame(c.get(), protocol::FrameKind::Control, m.dump());
        auto f = protocol::read_frame(c.get(), Clock::now() + kPatience);
        ASSERT_TRUE(f) << type;
        json reply = json::parse(f->payload);
        EXPECT_EQ(reply["type"], "error") << reply.dump();
        EXPECT_EQ(reply["code"], "version") << reply.dump();
        const std::string text = reply.value("message", "");
        EXPECT_NE(text.find("2.0"), std::string::npos) << text;
        EXPECT_NE(text.find(protocol::version_string()), std::string::npos) << text;
        EXPECT_EQ(reply["proto"][0], protocol::kProtoMajor) << "the refusal is in the daemon's own version";
        auto eof = protocol::read_frame(c.get(), Clock::now() + kPatience);
        EXPECT_FALSE(eof) << "the connection stays open after a version refusal";
    }
    EXPECT_EQ(d.ctl({"ping"}).status, 0);
}

// A daemon of protocol 2: answers every request with a version-2 message.
class Protocol2Daemon {
public:
    Protocol2Daemon() {
        path_ = dir_ / "v2.sock";
        listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
        if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
            ::listen(listener_.get(), 8) != 0)
            throw std::runtime_error("bind/listen");
        ::chmod(path_.c_str(), 0666);
        thread_ = std::thread([this] {
            for (;;) {
                UniqueFd c(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
                if (!c) return;
                try {
                    (void)protocol::read_frame(c.get(), Clock::now() + std::chrono::seconds(20));
                    json m = {{"proto", {2, 0}}, {"type", "status"}, {"job", {{"state", "running"}}}};
                    protocol::write_frame(c.get(), protocol::FrameKind::Control, m.dump());
                } catch (...) {
                }
            }
        });
    }
    ~Protocol2Daemon() {
        ::shutdown(listener_.get(), SHUT_RDWR);
        thread_.join();
    }
    [[nodiscard]] const std::string& socket() const { return path_; }

private:
    TempDir dir_{"hermetic-v2"};
    std::string path_;
    UniqueFd listener_;
    std::thread thread_;
};

TEST(DaemonLifecycle, HermeticctlFacingAProtocol2DaemonFailsNamingBothVersions) {
    Protocol2Daemon v2;
    Source src;
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"status", "some-job"}, {"wait", "some-job"}, {"list"}, {"ping"}, {"run", "--src", src.path(), "--", "true"}}) {
        std::vector<std::string> argv = {hermeticctl_path(), "--socket", v2.socket()};
        argv.insert(argv.end(), args.begin(), args.end());
        auto r = run_process(argv, as_test_user());
        EXPECT_EQ(r.status, 125) << args[0] << ": " << r.describe();
        EXPECT_NE(r.err.find("protocol version 2.0"), std::string::npos) << r.describe();
        EXPECT_NE(r.err.find("speaks " + protocol::version_string()), std::string::npos) << r.describe();
        EXPECT_EQ(r.out, "") << r.describe();
    }
}

// ---- 9. systemd ----------------------------------------------------------------------

std::optional<std::string> find_program(const std::string& name) {
    for (const char* dir : {"/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"}) {
        std::string p = std::string(dir) + "/" + name;
        if (::access(p.c_str(), X_OK) == 0) return p;
    }
    return std::nullopt;
}

TEST(DaemonLifecycle, SystemdUnitsVerify) {
    auto analyze = find_program("systemd-analyze");
    if (!analyze) GTEST_SKIP() << "systemd-analyze is not installed (package systemd): units not verified";
    TempDir units("hermetic-units");
    for (const std::string name : {"hermeticd.service", "hermeticd.socket"}) {
        std::string text = read_text(std::string(HERMETIC_SOURCE_DIR) + "/systemd/" + name);
        ASSERT_FALSE(text.empty()) << name;
        // The installed path need not exist here: point at the build's daemon.
        for (size_t p; (p = text.find("/usr/local/sbin/hermeticd")) != std::string::npos;)
            text.replace(p, std::strlen("/usr/local/sbin/hermeticd"), hermeticd_path());
        write_file(units / name, text, 0644);
    }
    ProcessOptions o;
    o.cwd = units.path();
    auto r = run_process({*analyze, "verify", "--man=no", "./hermeticd.service", "./hermeticd.socket"}, o);
    EXPECT_EQ(r.status, 0) << r.describe();
    // Unknown keys and bad values are only warnings: none may name our units.
    std::istringstream err(r.err);
    for (std::string line; std::getline(err, line);)
        EXPECT_EQ(line.find("hermeticd."), std::string::npos) << line << "\n" << r.describe();
    // What the issue asks of them.
    std::string service = read_text(units / "hermeticd.service"), socket = read_text(units / "hermeticd.socket");
    EXPECT_NE(service.find("Type=notify"), std::string::npos);
    EXPECT_NE(service.find("KillMode=mixed"), std::string::npos);
    EXPECT_NE(service.find("ExecReload=/bin/kill -HUP $MAINPID"), std::string::npos);
    EXPECT_NE(socket.find("SocketMode=0660"), std::string::npos);
    EXPECT_NE(socket.find("SocketGroup=hermetic"), std::string::npos);
}

TEST(DaemonLifecycle, SystemdTmpfilesEntryCreatesAPrivateStateDirectory) {
    auto tmpfiles = find_program("systemd-tmpfiles");
    if (!tmpfiles) GTEST_SKIP() << "systemd-tmpfiles is not installed (package systemd): entry not checked";
    TempDir root("hermetic-tmpfiles");
    auto r = run_process(
        {*tmpfiles, "--create", "--root=" + root.path(), std::string(HERMETIC_SOURCE_DIR) + "/systemd/hermetic.tmpfiles"});
    EXPECT_EQ(r.status, 0) << r.describe();
    EXPECT_EQ(r.err, "") << r.describe();
    struct stat st{};
    ASSERT_EQ(::lstat((root / "var/lib/hermetic").c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0700u);
    EXPECT_EQ(st.st_uid, 0u);
}

TEST(DaemonLifecycle, SocketActivationServesAJob) {
    auto activate = find_program("systemd-socket-activate");
    if (!activate) GTEST_SKIP() << "systemd-socket-activate is not installed (package systemd)";
    TempDir dir("hermetic-activated");
    const std::string sock = dir / "activated.sock", state = dir / "state", conf = dir / "hermeticd.conf",
                      log = dir / "hermeticd.log";
    const std::string parent = "hermetic-test-activated-" + std::to_string(::getpid());
    write_file(conf,
               "id-base = " + std::to_string(0x50000000u + static_cast<unsigned>(::getpid() % 4096) * 0x400u) +
                   "\nid-count = 1024\ncgroup-parent = " + parent +
                   "\nnetns-pool = 1\nsandbox-pool = 1\ndefault-memory = 2G\nshutdown-grace = 1\n"
                   "log-level = debug\npolicy-dir = " HERMETIC_SOURCE_DIR "/policies\n",
               0644);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        std::string d = hermeticd_path();
        // No --socket: the daemon must take the one it is given.
        ::execl(activate->c_str(), activate->c_str(), "-l", sock.c_str(), d.c_str(), "--foreground", "--config",
                conf.c_str(), "--state-dir", state.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    struct Reap {
        pid_t pid;
        ~Reap() {
            if (pid <= 0) return;
            ::kill(pid, SIGTERM);
            int st;
            ::waitpid(pid, &st, 0);
        }
    } reap{pid};
    bool up = eventually([&] {
        ProcessOptions q;
        q.timeout = std::chrono::seconds(10);
        return run_process({hermeticctl_path(), "--socket", sock, "ping"}, q).status == 0;
    });
    ASSERT_TRUE(up) << read_text(log);
    EXPECT_NE(read_text(log).find("listening on the socket from systemd"), std::string::npos) << read_text(log);
    Source src;
    auto r = run_process({hermeticctl_path(), "--socket", sock, "run", "--src", src.path(), "--", "echo", "activated"});
    EXPECT_EQ(r.status, 0) << r.describe() << read_text(log);
    EXPECT_EQ(r.out, "activated\n") << r.describe();
    ::kill(pid, SIGTERM);
    int st = 0;
    ASSERT_EQ(::waitpid(pid, &st, 0), pid);
    reap.pid = -1;
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st << "\n" << read_text(log);
    struct stat sst{};
    EXPECT_EQ(::lstat(sock.c_str(), &sst), 0) << "the daemon removed a socket systemd owns";
    for (const auto& r2 : cgroup_roots()) ::rmdir((r2 + "/" + parent).c_str());
}

}  // namespace
