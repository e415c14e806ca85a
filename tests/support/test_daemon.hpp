// A real hermeticd for integration tests: its own socket, state directory, config,
// uid range and cgroup parent, so it never touches the system daemon or another
// test's daemon. Stopped (SIGTERM) and cleaned up when the test ends.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

namespace hermetic::test {

struct TestDaemonOptions {
    std::vector<std::string> config_lines;  // extra "key = value" lines
};

class TestDaemon {
public:
    explicit TestDaemon(TestDaemonOptions opts = {});
    ~TestDaemon();
    TestDaemon(const TestDaemon&) = delete;
    TestDaemon& operator=(const TestDaemon&) = delete;

    [[nodiscard]] const std::string& socket() const { return socket_; }
    [[nodiscard]] const std::string& state_dir() const { return state_; }
    [[nodiscard]] const std::string& cgroup_parent() const { return cgroup_parent_; }
    [[nodiscard]] uid_t id_base() const { return id_base_; }
    [[nodiscard]] pid_t pid() const { return pid_; }

    // hermeticctl --socket S ARGS...
    ProcessResult ctl(const std::vector<std::string>& args, ProcessOptions opts = {}) const;
    // hermeticctl run --src SRC OPTS... -- CMD...
    ProcessResult run(const std::string& src, const std::vector<std::string>& cmd,
                      const std::vector<std::string>& run_opts = {}, ProcessOptions opts = {}) const;

    void start();
    void stop();            // SIGTERM and wait
    void kill_hard();       // SIGKILL, as in a crash
    [[nodiscard]] std::string log() const;  // the daemon's stderr so far

private:
    TestDaemonOptions opts_;
    TempDir dir_;
    std::string socket_, state_, config_, cgroup_parent_, log_path_;
    uid_t id_base_ = 0;
    pid_t pid_ = -1;
};

// The unprivileged user the test setup creates (member of group "hermetic").
struct TestUser {
    uid_t uid;
    gid_t gid;
    std::vector<gid_t> groups;
};
TestUser test_user();
ProcessOptions as_test_user(ProcessOptions opts = {});

std::string probe_path(const std::string& name);     // a built probe program
std::string hermeticctl_path();
std::string hermeticd_path();
// A source directory holding copies of the named probes, owned by the test user.
void stage_probes(const std::string& dir, const std::vector<std::string>& probes);

// The job id from hermeticctl's first stderr line ("job: ID"), or "" if that
// line is not one.
std::string job_id_of(const ProcessResult& r);
// One JSON value per non-empty line (hermeticctl audit --json).
std::vector<nlohmann::json> json_lines(const std::string& s);
// Host processes running as a build user of a daemon's id range (the odd ids:
// prepared sandboxes waiting for a job hold only their init, as the even one).
std::vector<pid_t> build_processes(uid_t base, uint32_t count);

}  // namespace hermetic::test
