#include "tests/support/test_daemon.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <cstdlib>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace hermetic::test {

namespace {
std::atomic<int> g_counter{0};
}

std::string hermeticctl_path() { return std::string(HERMETIC_BUILD_DIR) + "/hermeticctl"; }
std::string hermeticd_path() { return std::string(HERMETIC_BUILD_DIR) + "/hermeticd"; }
std::string probe_path(const std::string& name) { return std::string(HERMETIC_PROBE_DIR) + "/" + name; }

TestUser test_user() {
    passwd* pw = ::getpwnam("hermetic-test");
    if (!pw) throw std::runtime_error("user 'hermetic-test' is missing: run scripts/test.sh (it creates it)");
    TestUser u{pw->pw_uid, pw->pw_gid, {}};
    int n = 64;
    std::vector<gid_t> groups(static_cast<size_t>(n));
    if (::getgrouplist(pw->pw_name, pw->pw_gid, groups.data(), &n) < 0) throw std::runtime_error("getgrouplist");
    groups.resize(static_cast<size_t>(n));
    u.groups = groups;
    return u;
}

ProcessOptions as_test_user(ProcessOptions opts) {
    TestUser u = test_user();
    opts.uid = u.uid;
    opts.gid = u.gid;
    opts.groups = u.groups;
    return opts;
}

void stage_probes(const std::string& dir, const std::vector<std::string>& probes) {
    TestUser u = test_user();
    // The test user runs the probes: a failed chown would fail the test later, less clearly.
    auto give_to_test_user = [&](const std::string& path) {
        if (::chown(path.c_str(), u.uid, u.gid) != 0)
            throw std::runtime_error("chown " + path + ": " + std::strerror(errno));
    };
    for (const auto& p : probes) {
        std::string dst = dir + "/" + p;
        write_file(dst, read_file(probe_path(p)), 0755);
        give_to_test_user(dst);
    }
    give_to_test_user(dir);
}

TestDaemon::TestDaemon(TestDaemonOptions opts) : opts_(std::move(opts)), dir_("hermetic-daemon") {
    int n = g_counter++;
    socket_ = dir_ / "hermeticd.sock";
    state_ = dir_ / "state";
    config_ = dir_ / "hermeticd.conf";
    log_path_ = dir_ / "hermeticd.log";
    cgroup_parent_ = "hermetic-test-" + std::to_string(::getpid()) + "-" + std::to_string(n);
    // A range of its own, far from the system daemon's default.
    id_base_ = 0x40000000u + static_cast<uid_t>((::getpid() % 4096) * 0x10000 + n * 0x400);
    std::string conf = "id-base = " + std::to_string(id_base_) +
                       "\n"
                       "id-count = 1024\n"
                       "cgroup-parent = " +
                       cgroup_parent_ +
                       "\n"
                       "netns-pool = 2\n"
                       "max-jobs = 8\n"
                       "default-memory = 2G\n"
                       "log-level = debug\n"
                       "policy-dir = " HERMETIC_SOURCE_DIR "/policies\n";
    for (const auto& l : opts_.config_lines) conf += l + "\n";
    write_file(config_, conf, 0644);
    start();
}

TestDaemon::~TestDaemon() { stop(); }

void TestDaemon::start() {
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork");
    if (pid_ == 0) {
        int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        ::dup2(log, 2);
        ::dup2(log, 1);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        std::string d = hermeticd_path();
        ::execl(d.c_str(), d.c_str(), "--foreground", "--config", config_.c_str(), "--socket", socket_.c_str(),
                "--state-dir", state_.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    for (int i = 0; i < 500; ++i) {
        ProcessOptions quick;
        quick.timeout = std::chrono::seconds(5);
        auto r = run_process({hermeticctl_path(), "--socket", socket_, "ping"}, quick);
        if (r.status == 0) return;
        int st;
        if (::waitpid(pid_, &st, WNOHANG) == pid_) {
            pid_ = -1;
            throw std::runtime_error("hermeticd exited at start:\n" + log());
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw std::runtime_error("hermeticd did not answer within 10 s:\n" + log());
}

void TestDaemon::stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int st;
    for (int i = 0; i < 600; ++i) {
        if (::waitpid(pid_, &st, WNOHANG) == pid_) {
            pid_ = -1;
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
}

void TestDaemon::kill_hard() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int st;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
}

std::string TestDaemon::log() const {
    try {
        return read_file(log_path_);
    } catch (...) {
        return {};
    }
}

ProcessResult TestDaemon::ctl(const std::vector<std::string>& args, ProcessOptions opts) const {
    std::vector<std::string> argv = {hermeticctl_path(), "--socket", socket_};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv, opts);
}

ProcessResult TestDaemon::run(const std::string& src, const std::vector<std::string>& cmd,
                              const std::vector<std::string>& run_opts, ProcessOptions opts) const {
    std::vector<std::string> args = {"run", "--src", src};
    args.insert(args.end(), run_opts.begin(), run_opts.end());
    args.push_back("--");
    args.insert(args.end(), cmd.begin(), cmd.end());
    return ctl(args, opts);
}

std::string job_id_of(const ProcessResult& r) {
    std::smatch m;
    std::string line = r.err.substr(0, r.err.find('\n'));
    static const std::regex re("^job: ([a-z0-9-]{1,64})$");
    return std::regex_match(line, m, re) ? m[1].str() : "";
}

std::vector<nlohmann::json> json_lines(const std::string& s) {
    std::vector<nlohmann::json> v;
    std::istringstream in(s);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) v.push_back(nlohmann::json::parse(line));
    return v;
}

std::vector<pid_t> build_processes(uid_t base, uint32_t count) {
    std::vector<pid_t> out;
    DIR* d = ::opendir("/proc");
    if (!d) return out;
    while (dirent* e = ::readdir(d)) {
        pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
        if (pid <= 0) continue;
        struct stat st{};
        if (::stat(("/proc/" + std::string(e->d_name)).c_str(), &st) != 0) continue;
        if (st.st_uid >= base && st.st_uid < base + count && (st.st_uid - base) % 2 == 1) out.push_back(pid);
    }
    ::closedir(d);
    return out;
}

}  // namespace hermetic::test
