// SIGHUP's view of the configuration: which options a running daemon takes from
// a re-read file, and how a change to one it can't take is reported.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "daemon/config.hpp"

namespace {

using namespace hermetic::daemon;

DaemonConfig from(const std::string& text, DaemonConfig base = {}) {
    return parse_config_text(text, "test.conf", base);
}

TEST(DaemonConfigReload, EveryOptionHasAValueToCompare) {
    auto values = option_values(DaemonConfig{});
    for (const char* name : {"socket", "state-dir", "log-level", "max-jobs", "max-queued", "max-jobs-per-user",
                             "retain-days", "retain-jobs", "retain-bytes", "gc-interval", "shutdown-grace",
                             "cgroup-parent", "id-base", "netns-pool", "default-memory"})
        EXPECT_TRUE(values.count(name)) << name;
    // Every option --help lists is compared (a new option must be added there).
    std::string help = help_text();
    for (const auto& [name, value] : values) EXPECT_NE(help.find("--" + name + " "), std::string::npos) << name;
}

TEST(DaemonConfigReload, LimitsRetentionGraceAndLogLevelApply) {
    DaemonConfig running;
    DaemonConfig fresh = from(
        "max-jobs = 2\nmax-queued = 9\nmax-jobs-per-user = 3\nretain-days = 5\nretain-jobs = 6\n"
        "retain-bytes = 1G\ngc-interval = 7\nshutdown-grace = 8\nlog-level = warn\n");
    ReloadPlan plan = plan_reload(running, fresh);
    EXPECT_TRUE(plan.ignored.empty());
    EXPECT_EQ(plan.applied.size(), 9u);
    EXPECT_NE(std::find(plan.applied.begin(), plan.applied.end(), "max-jobs: 4 -> 2"), plan.applied.end());
    apply_reloadable(running, fresh);
    EXPECT_EQ(running.max_jobs, 2u);
    EXPECT_EQ(running.max_queued, 9u);
    EXPECT_EQ(running.max_jobs_per_user, 3u);
    EXPECT_EQ(running.retain_days, 5u);
    EXPECT_EQ(running.retain_jobs, 6u);
    EXPECT_EQ(running.retain_bytes, 1ull << 30);
    EXPECT_EQ(running.gc_interval_sec, 7u);
    EXPECT_EQ(running.shutdown_grace_sec, 8u);
    EXPECT_EQ(running.log_level, "warn");
    EXPECT_TRUE(plan_reload(running, fresh).applied.empty());  // nothing left to change
}

TEST(DaemonConfigReload, SocketStateDirAndSandboxShapeAreIgnoredAndKept) {
    DaemonConfig running;
    DaemonConfig fresh = from(
        "socket = /run/other.sock\nstate-dir = /srv/other\ncgroup-parent = other\ndefault-memory = 1G\n"
        "max-jobs = 3\n");
    ReloadPlan plan = plan_reload(running, fresh);
    ASSERT_EQ(plan.applied.size(), 1u);
    EXPECT_EQ(plan.applied[0], "max-jobs: 4 -> 3");
    std::string ignored;
    for (const auto& s : plan.ignored) ignored += s + "\n";
    EXPECT_NE(ignored.find("socket: /run/hermetic/hermeticd.sock -> /run/other.sock"), std::string::npos) << ignored;
    EXPECT_NE(ignored.find("state-dir: /var/lib/hermetic -> /srv/other"), std::string::npos) << ignored;
    EXPECT_NE(ignored.find("cgroup-parent: hermetic -> other"), std::string::npos) << ignored;
    EXPECT_NE(ignored.find("default-memory: "), std::string::npos) << ignored;
    apply_reloadable(running, fresh);
    EXPECT_EQ(running.socket_path, "/run/hermetic/hermeticd.sock");
    EXPECT_EQ(running.state_dir, "/var/lib/hermetic");
    EXPECT_EQ(running.sandbox.cgroup.parent, "hermetic");
    EXPECT_EQ(running.default_memory, DaemonConfig{}.default_memory);
    EXPECT_EQ(running.max_jobs, 3u);
}

TEST(DaemonConfigReload, OnlyTheDocumentedOptionsAreReloadable) {
    int n = 0;
    for (const auto& [name, value] : option_values(DaemonConfig{})) n += is_reloadable(name);
    EXPECT_EQ(n, 9);
    EXPECT_FALSE(is_reloadable("socket"));
    EXPECT_FALSE(is_reloadable("state-dir"));
    EXPECT_TRUE(is_reloadable("max-jobs-per-user"));
}

}  // namespace
