// hermeticctl policy check (offline) on good and bad files, and the rendering
// of the daemon's policy-list / policy-show answers.
#include <gtest/gtest.h>

#include <sstream>

#include "ctl/policy_command.hpp"
#include "protocol/messages.hpp"
#include "tests/support/temp_dir.hpp"

namespace hermetic::ctl {
namespace {

const std::string kPolicies = std::string(HERMETIC_SOURCE_DIR) + "/policies";

struct Result {
    int status;
    std::string out, err;
};

Result check(PolicyCheckOptions opts) {
    std::ostringstream out, err;
    int status = policy_check(opts, out, err);
    return {status, out.str(), err.str()};
}

Result check(const std::string& file) {
    PolicyCheckOptions o;
    o.file = file;
    return check(o);
}

TEST(PolicyCheck, AGoodFileWithIncludesFromItsDirectory) {
    test::TempDir dir("hermetic-ctl-policy");
    test::write_file(dir / "common.policy", "kill ptrace\n");
    test::write_file(dir / "mine.policy", "# mine\ninclude baseline\ninclude common\ndeny EPERM connect\n");
    const Result r = check(dir / "mine.policy");
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err, "");
    ASSERT_TRUE(r.out.starts_with("OK: ")) << r.out;
    // "OK: N rules, digest <64 hex>\n"
    const size_t rules = r.out.find(" rules, digest ");
    ASSERT_NE(rules, std::string::npos) << r.out;
    EXPECT_GT(std::stoul(r.out.substr(4, rules - 4)), 50u);
    EXPECT_EQ(r.out.size(), rules + std::string(" rules, digest ").size() + 64 + 1) << r.out;
}

TEST(PolicyCheck, TheShippedProfilesAreValid) {
    for (const char* name : {"build", "strict", "trace"}) {
        const Result r = check(kPolicies + "/" + name + ".policy");
        EXPECT_EQ(r.status, 0) << name << ": " << r.err;
    }
}

TEST(PolicyCheck, AnErrorIsReportedPreciselyAndExitsOne) {
    test::TempDir dir("hermetic-ctl-policy");
    test::write_file(dir / "bad.policy", "include baseline\n\ndeny EPERM  opennat\n");
    Result r = check(dir / "bad.policy");
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, dir / "bad.policy" +
                         ":3:13: expected a syscall name or @group, got \"opennat\" (not a syscall libseccomp knows on "
                         "x86-64 or i386)\n");
    // In an included file: that file's name and line.
    test::write_file(dir / "inc.policy", "allow read\nlog * if arg0 == 1\n");
    test::write_file(dir / "top.policy", "include inc\n");
    r = check(dir / "top.policy");
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "inc.policy:2:7: * takes no conditions\n");
    // A missing include, a missing file.
    test::write_file(dir / "missing.policy", "include nowhere\n");
    r = check(dir / "missing.policy");
    EXPECT_EQ(r.err, dir / "missing.policy" + ":1:9: expected the name of a profile, got \"nowhere\" (no such profile)\n");
    r = check(dir / "absent.policy");
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, dir / "absent.policy" + ": No such file or directory\n");
    r = check(dir.path());
    EXPECT_EQ(r.err, dir.path() + ": not a regular file\n");
}

TEST(PolicyCheck, StackedOnTheAdminFloor) {
    test::TempDir dir("hermetic-ctl-policy");
    test::write_file(dir / "ok.policy", "deny EPERM connect\n");
    test::write_file(dir / "lifts.policy", "# tries to allow a floor denial\nallow ptrace\n");
    PolicyCheckOptions o;
    o.file = dir / "ok.policy";
    o.floor = "build";
    o.policy_dir = kPolicies;
    Result r = check(o);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("\nOK: stacked on the floor build: "), std::string::npos) << r.out;
    o.file = dir / "lifts.policy";
    r = check(o);
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, dir / "lifts.policy" +
                         ":2: \"allow ptrace\" would lift the floor's \"deny EPERM\" of ptrace (baseline: deny); a user "
                         "policy may only add restrictions (allow < log < virtualize < deny < kill)\n");
    o.floor = "nope";
    o.file = dir / "ok.policy";
    r = check(o);
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "no such profile \"nope\"\n");
}

TEST(PolicyCommand, CheckThroughTheCommandLine) {
    test::TempDir dir("hermetic-ctl-policy");
    test::write_file(dir / "ok.policy", "kill ptrace\n");
    ::testing::internal::CaptureStdout();
    EXPECT_EQ(policy_command({"check", dir / "ok.policy"}, "/nonexistent.sock"), 0);
    EXPECT_TRUE(::testing::internal::GetCapturedStdout().starts_with("OK: 1 rules, digest "));
    ::testing::internal::CaptureStderr();
    EXPECT_EQ(policy_command({"check"}, "/nonexistent.sock"), 2);
    EXPECT_EQ(policy_command({"frob"}, "/nonexistent.sock"), 2);
    (void)::testing::internal::GetCapturedStderr();
}

TEST(PolicyRender, ListAndShow) {
    nlohmann::json list = protocol::make_message("policy-list");
    list["floor"] = "build";
    list["policies"] = {{{"name", "build"}, {"digest", "abc"}, {"rules", 229}},
                        {{"name", "broken"}, {"error", "broken.policy:2:7: expected ..."}},
                        {{"name", "strict"}, {"digest", "def"}, {"rules", 232}}};
    list["builtins"] = {"baseline", "determinism"};
    EXPECT_EQ(render_policy_list(list),
              "build   229 rules, digest abc  (floor: the default, and what user policy files stack on)\n"
              "broken  ERROR: broken.policy:2:7: expected ...\n"
              "strict  232 rules, digest def\n"
              "built-in (for include): baseline determinism\n");
    nlohmann::json show = protocol::make_message("policy-show");
    show["name"] = "strict";
    show["digest"] = "def";
    show["lines"] = {{{"text", "default deny ENOSYS"}, {"origin", "build.policy:11"}},
                     {{"text", "allow read write"}, {"origin", ""}}};
    EXPECT_EQ(render_policy_show(show),
              "# policy strict, digest def\ndefault deny ENOSYS  # build.policy:11\nallow read write\n");
    EXPECT_EQ(policy_list_request()["type"], "policy-list");
    EXPECT_EQ(policy_show_request("x")["name"], "x");
}

}  // namespace
}  // namespace hermetic::ctl
