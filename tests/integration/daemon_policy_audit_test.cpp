// The policy's denials and "log" rules decided by the job's supervisor and
// audited, through a real hermeticd and the real hermeticctl: a denied call gets
// exactly the policy's errno and a "denied" event naming it; a user policy's
// `log getpid` shows "logged" getpid events; the policy default (unnamed
// syscalls) stays the kernel's and is not recorded; the attested policy digest
// is the routed compilation's.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/dsse.hpp"
#include "syscall-policy/parser.hpp"
#include "syscall-policy/policy.hpp"
#include "tests/support/test_daemon.hpp"

using namespace hermetic::test;
using nlohmann::json;
namespace policy = hermetic::policy;

namespace {

// "name errno" lines of the denied probe.
std::map<std::string, std::string> results(const std::string& out) {
    std::map<std::string, std::string> got;
    std::istringstream in(out);
    std::string name, value;
    while (in >> name >> value) got[name] = value;
    return got;
}

class PolicyAudit : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        daemon_ = std::make_unique<TestDaemon>();
        auto r = daemon_->ctl({"pubkey"});
        if (r.status != 0 && (r.err.find("unknown command") != std::string::npos ||
                              r.err.find("unknown request type") != std::string::npos))
            skip_ = "waiting for wiring: " + r.err.substr(0, r.err.find('\n'));
    }
    static void TearDownTestSuite() { daemon_.reset(); }

    void SetUp() override {
        if (!skip_.empty()) GTEST_SKIP() << skip_;
        src_ = std::make_unique<TempDir>("hermetic-policy-audit-src");
        stage_probes(src_->path(), {"denied"});
    }

    // Runs the probe as the test user; returns (job id, its output).
    std::pair<std::string, std::string> job(const std::vector<std::string>& calls,
                                            const std::vector<std::string>& opts = {}) {
        std::vector<std::string> cmd = {"./denied"};
        cmd.insert(cmd.end(), calls.begin(), calls.end());
        auto r = daemon_->run(src_->path(), cmd, opts, as_test_user());
        EXPECT_EQ(r.status, 0) << r.describe();
        std::string id = job_id_of(r);
        EXPECT_NE(id, "") << r.describe();
        return {id, r.out};
    }
    ProcessResult ctl(const std::vector<std::string>& args) const { return daemon_->ctl(args, as_test_user()); }

    // The job's events (kind "event") as hermeticctl audit --json prints them.
    std::vector<json> events(const std::string& id) const {
        auto r = ctl({"audit", id, "--json"});
        EXPECT_EQ(r.status, 0) << r.describe();
        std::vector<json> out;
        for (json& rec : json_lines(r.out))
            if (rec["kind"] == "event") out.push_back(std::move(rec));
        return out;
    }
    json summary(const std::string& id) const {
        std::string path = daemon_->state_dir() + "/jobs/" + id + "/audit.summary.json";
        return json::parse(hermetic::audit::parse_envelope(read_file(path)).payload);
    }

    static std::unique_ptr<TestDaemon> daemon_;
    static std::string skip_;
    std::unique_ptr<TempDir> src_;
};

std::unique_ptr<TestDaemon> PolicyAudit::daemon_;
std::string PolicyAudit::skip_;

TEST_F(PolicyAudit, NamedDenialsGetThePolicysErrnoAndADeniedEvent) {
    auto [id, out] = job({"unshare", "clone_newuser", "mount", "keyctl", "ptrace", "socket_packet", "unnamed"});
    // Exactly the errnos of the build profile's rules (and its default).
    const std::map<std::string, std::string> want_errno = {
        {"unshare", "1"}, {"clone_newuser", "1"}, {"mount", "1"},        {"keyctl", "1"},
        {"ptrace", "1"},  {"socket_packet", "97"}, {"unnamed", "38"},
    };
    EXPECT_EQ(results(out), want_errno) << out;

    // syscall -> (value, class) of its "denied" events.
    std::map<std::string, std::vector<std::pair<std::string, std::string>>> denied;
    for (const json& e : events(id)) {
        if (e["action"] != "denied") continue;
        denied[e["syscall"].get<std::string>()].emplace_back(e["value"].get<std::string>(),
                                                             e["class"].get<std::string>());
        EXPECT_NE(e.value("nr", -1), 1000) << "the policy default was recorded: " << e.dump();
    }
    const std::map<std::string, std::pair<std::string, std::string>> want = {
        {"unshare", {"-EPERM", "policy"}}, {"clone", {"-EPERM", "policy"}},  {"mount", {"-EPERM", "policy"}},
        {"keyctl", {"-EPERM", "policy"}},  {"ptrace", {"-EPERM", "policy"}}, {"socket", {"-EAFNOSUPPORT", "network"}},
    };
    for (const auto& [name, value_class] : want) {
        ASSERT_TRUE(denied.contains(name)) << "no denied event for " << name;
        EXPECT_EQ(denied[name].size(), 1u) << name;
        EXPECT_EQ(denied[name].front(), value_class) << name;
    }

    auto v = ctl({"audit", id, "--verify"});
    EXPECT_EQ(v.status, 0) << v.describe();
    json s = summary(id);
    EXPECT_GE(s["by_action"].value("denied", uint64_t{0}), want.size()) << s.dump();
    // The supervisor's own count is what the log accounts for.
    EXPECT_EQ(s["supervisor_events"], s["events"]["total"]) << s.dump();
    auto human = ctl({"audit", id});
    ASSERT_EQ(human.status, 0) << human.describe();
    EXPECT_NE(human.out.find("network:"), std::string::npos) << human.out;
    EXPECT_EQ(human.out.find("network:     no attempts"), std::string::npos) << human.out;
}

TEST_F(PolicyAudit, AUserPolicyThatLogsGetpidShowsLoggedEvents) {
    TempDir dir("hermetic-policy-audit-policy");
    stage_probes(dir.path(), {});
    write_file(dir / "log-getpid.policy", "# every getpid is evidence\nlog getpid\n");
    auto [id, out] = job({"getpid", "getpid", "getpid"}, {"--policy", dir / "log-getpid.policy"});
    EXPECT_EQ(results(out), (std::map<std::string, std::string>{{"getpid", "0"}})) << out;
    size_t logged = 0;
    for (const json& e : events(id)) {
        if (e["syscall"] != "getpid") continue;
        EXPECT_EQ(e["action"], "logged") << e.dump();
        EXPECT_EQ(e["class"], "policy") << e.dump();
        EXPECT_EQ(e["value"], "allowed") << e.dump();
        ++logged;
    }
    EXPECT_GE(logged, 3u);  // the probe's three (the runtime may add its own)

    // Without the user policy getpid runs unrecorded.
    auto [plain, plain_out] = job({"getpid"});
    for (const json& e : events(plain)) EXPECT_NE(e["syscall"], "getpid") << e.dump();
}

// Admin profiles whose rules log or deny what the hand-off of the seccomp
// listener itself uses (trace logs everything, strict denies sendmsg): the
// build still starts, and their verdicts are answered and recorded.
TEST_F(PolicyAudit, StrictDeniesSocketsAndRecordsIt) {
    auto [id, out] = job({"socket_unix", "mount", "getpid"}, {"--policy", "strict"});
    EXPECT_EQ(results(out), (std::map<std::string, std::string>{{"socket_unix", "97"}, {"mount", "1"}, {"getpid", "0"}}))
        << out;
    std::map<std::string, std::string> denied;
    for (const json& e : events(id))
        if (e["action"] == "denied") denied[e["syscall"].get<std::string>()] = e["value"].get<std::string>() + " " +
                                                                               e["class"].get<std::string>();
    EXPECT_EQ(denied["socket"], "-EAFNOSUPPORT network");
    EXPECT_EQ(denied["mount"], "-EPERM policy");
}

TEST_F(PolicyAudit, TraceLogsEveryCallOfTheBuild) {
    auto [id, out] = job({"getpid", "mount"}, {"--policy", "trace"});
    EXPECT_EQ(results(out), (std::map<std::string, std::string>{{"getpid", "0"}, {"mount", "1"}})) << out;
    std::map<std::string, std::set<std::string>> actions;  // syscall -> actions
    for (const json& e : events(id)) actions[e["syscall"].get<std::string>()].insert(e["action"].get<std::string>());
    EXPECT_EQ(actions["getpid"], std::set<std::string>{"logged"});
    EXPECT_EQ(actions["mount"], std::set<std::string>{"denied"});
    EXPECT_TRUE(actions["execve"].contains("logged"));
    EXPECT_TRUE(actions["write"].contains("logged"));
}

TEST_F(PolicyAudit, TheAttestedDigestIsTheRoutedCompilation) {
    auto [id, out] = job({"getpid"});
    policy::ParseOptions o;
    o.loader = [](const std::string& name) -> std::optional<std::string> {
        try {
            return read_file(std::string(HERMETIC_SOURCE_DIR) + "/policies/" + name + ".policy");
        } catch (...) {
            return std::nullopt;
        }
    };
    const policy::Policy build = policy::load_profile("build", o);
    const std::string routed = policy::compile(build, {.route_denials_to_supervisor = true}).digest;
    EXPECT_NE(routed, policy::compile(build, {.route_denials_to_supervisor = false}).digest);
    EXPECT_EQ(policy::compile(build).digest, routed);  // what `hermeticctl policy check` prints
    EXPECT_EQ(summary(id)["policy_digest"], routed);
    auto list = daemon_->ctl({"policy", "list"});
    ASSERT_EQ(list.status, 0) << list.describe();
    EXPECT_NE(list.out.find(routed), std::string::npos) << list.out;
}

}  // namespace
