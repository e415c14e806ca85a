// The daemon's policy-list / policy-show answers over a real admin directory.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "daemon/policy_requests.hpp"
#include "protocol/messages.hpp"
#include "tests/support/temp_dir.hpp"

namespace hermetic::daemon {
namespace {

using nlohmann::json;

const std::string kPolicies = std::string(HERMETIC_SOURCE_DIR) + "/policies";

void admin_dir(const test::TempDir& dir) {
    for (const char* name : {"build", "strict", "trace"})
        test::write_file(dir / (std::string(name) + ".policy"), test::read_file(kPolicies + "/" + name + ".policy"));
    test::write_file(dir / "broken.policy", "include build\nallow opennat\n");
    test::write_file(dir / "README", "not a profile\n");
    test::write_file(dir / "bad name.policy", "kill ptrace\n");
    ::mkdir((dir / "dir.policy").c_str(), 0755);
}

json request(const char* type) { return protocol::make_message(type); }

TEST(PolicyDir, ListsProfilesOnly) {
    test::TempDir dir("hermetic-policy-dir");
    admin_dir(dir);
    EXPECT_EQ(list_policy_dir(dir.path()), (std::vector<std::string>{"broken", "build", "strict", "trace"}));
    EXPECT_EQ(list_policy_dir(dir / "absent"), std::vector<std::string>{});
    auto load = policy_dir_loader(dir.path());
    EXPECT_EQ(load("build"), test::read_file(kPolicies + "/build.policy"));
    EXPECT_EQ(load("absent"), std::nullopt);
    EXPECT_EQ(load("../etc"), std::nullopt);  // never a path
    EXPECT_THROW((void)load("dir"), policy::PolicyError);
}

TEST(PolicyRequests, List) {
    test::TempDir dir("hermetic-policy-dir");
    admin_dir(dir);
    auto store = make_policy_store(dir.path());
    const auto r = handle_policy_request(*store, request("policy-list"));
    ASSERT_TRUE(r);
    EXPECT_EQ((*r)["type"], "policy-list");
    EXPECT_EQ((*r)["floor"], "build");
    EXPECT_EQ((*r)["builtins"], json({"baseline", "determinism"}));
    const json& p = (*r)["policies"];
    ASSERT_EQ(p.size(), 4u);
    EXPECT_EQ(p[0]["name"], "broken");
    EXPECT_EQ(p[0]["error"],
              "broken.policy:2:7: expected a syscall name or @group, got \"opennat\" (not a syscall libseccomp knows on "
              "x86-64 or i386)");
    EXPECT_EQ(p[1]["name"], "build");
    EXPECT_EQ(p[1]["digest"], store->floor()->digest());
    EXPECT_EQ(p[1]["rules"], store->floor()->policy.rules.size());
    EXPECT_EQ(p[3]["name"], "trace");
}

TEST(PolicyRequests, Show) {
    test::TempDir dir("hermetic-policy-dir");
    admin_dir(dir);
    auto store = make_policy_store(dir.path());
    json m = request("policy-show");
    m["name"] = "strict";
    auto r = handle_policy_request(*store, m);
    ASSERT_TRUE(r);
    EXPECT_EQ((*r)["type"], "policy-show");
    EXPECT_EQ((*r)["name"], "strict");
    EXPECT_EQ((*r)["builtin"], false);
    EXPECT_EQ((*r)["digest"], store->get("strict")->digest());
    const json& lines = (*r)["lines"];
    ASSERT_GT(lines.size(), 5u);
    EXPECT_EQ(lines[0]["text"], "default deny ENOSYS");
    EXPECT_EQ(lines[0]["origin"], "build.policy:15");
    EXPECT_EQ(lines[1]["text"], "abi i386 kill");
    EXPECT_EQ(lines[1]["origin"], "strict.policy:11");
    bool network = false;
    for (const json& l : lines) network = network || (l["text"].get<std::string>().starts_with("deny EPERM @network-io") &&
                                                      l["origin"] == "strict.policy:6");
    EXPECT_TRUE(network);

    m["name"] = "baseline";
    r = handle_policy_request(*store, m);
    EXPECT_EQ((*r)["builtin"], true);
    EXPECT_EQ((*r)["lines"][0]["origin"], "baseline: default");

    m["name"] = "nope";
    r = handle_policy_request(*store, m);
    EXPECT_EQ((*r)["type"], "error");
    EXPECT_EQ((*r)["code"], "not-found");
    m["name"] = "../../etc/shadow";
    EXPECT_EQ((*handle_policy_request(*store, m))["code"], "bad-request");
    m.erase("name");
    EXPECT_EQ((*handle_policy_request(*store, m))["code"], "bad-request");
    m["name"] = "broken";
    r = handle_policy_request(*store, m);
    EXPECT_EQ((*r)["code"], "internal");
    EXPECT_EQ(handle_policy_request(*store, request("ping")), std::nullopt);
}

TEST(PolicyRequests, UserPolicyThroughTheStore) {
    test::TempDir dir("hermetic-policy-dir");
    admin_dir(dir);
    auto store = make_policy_store(dir.path());
    auto u = store->user("include strict\nkill ptrace\n", "mine.policy");
    EXPECT_EQ(u->floor, "build");
    EXPECT_NE(u->digest(), store->get("strict")->digest());
    EXPECT_THROW((void)store->user("allow mount\n", "mine.policy"), policy::PolicyError);
}

}  // namespace
}  // namespace hermetic::daemon
