// PolicyStore over an in-memory "admin directory": listing, load + compile by
// name with caching and reload on change, user policies stacked on the floor.
#include <gtest/gtest.h>

#include <cerrno>
#include <map>
#include <mutex>
#include <thread>

#include "syscall-policy/policy_store.hpp"

namespace hermetic::policy {
namespace {

struct AdminDir {
    std::map<std::string, std::string> files;  // NAME -> text of NAME.policy
    std::map<std::string, int> reads;
    std::mutex mu;

    PolicyStore store(PolicyStoreOptions o = {}) {
        return PolicyStore(
            [this](const std::string& name) -> std::optional<std::string> {
                std::lock_guard lock(mu);
                reads[name]++;
                auto it = files.find(name);
                if (it == files.end()) return std::nullopt;
                return it->second;
            },
            [this] {
                std::lock_guard lock(mu);
                std::vector<std::string> names{"../escape", "baseline", "zeta"};  // filtered out / kept
                for (const auto& [n, t] : files) names.push_back(n);
                return names;
            },
            std::move(o));
    }
};

void standard(AdminDir& d) {
    d.files["build"] = "include baseline\ninclude determinism\nvirtualize @time-read\n";
    d.files["strict"] = "include build\ndeny EPERM @network-io\nabi i386 kill\n";
    d.files["common"] = "kill ptrace\n";
    d.files["uses-common"] = "include build\ninclude common\n";
    d.files["broken"] = "include build\nallow opennat\n";
}

PolicyStoreOptions with_floor(std::string floor) {
    PolicyStoreOptions o;
    o.floor = std::move(floor);
    return o;
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const PolicyError& e) {
        return e.what();
    }
    return "(no error)";
}

TEST(PolicyStore, ListsValidAdminNamesOnly) {
    AdminDir d;
    standard(d);
    PolicyStore s = d.store();
    EXPECT_EQ(s.list(), (std::vector<std::string>{"broken", "build", "common", "strict", "uses-common", "zeta"}));
    EXPECT_EQ(s.floor_name(), "build");
}

TEST(PolicyStore, GetCompilesAndCaches) {
    AdminDir d;
    standard(d);
    PolicyStore s = d.store();
    auto a = s.get("strict");
    EXPECT_EQ(a->name, "strict");
    EXPECT_EQ(a->floor, "");
    EXPECT_EQ(a->digest().size(), 64u);
    EXPECT_EQ(a->digest(), compile(a->policy).digest);
    ASSERT_TRUE(a->policy.i386_action);
    auto b = s.get("strict");
    EXPECT_EQ(a.get(), b.get());  // cached: the same object
    EXPECT_NE(s.floor()->digest(), a->digest());
    EXPECT_EQ(s.floor().get(), s.get("build").get());
}

TEST(PolicyStore, AnEditTakesEffectWithoutRestart) {
    AdminDir d;
    standard(d);
    PolicyStore s = d.store();
    auto before = s.get("uses-common");
    // An include changes: the including profile is rebuilt.
    {
        std::lock_guard lock(d.mu);
        d.files["common"] = "kill ptrace\nkill process_vm_readv\n";
    }
    auto after = s.get("uses-common");
    EXPECT_NE(before.get(), after.get());
    EXPECT_NE(before->digest(), after->digest());
    // The old result stays valid for whoever holds it.
    EXPECT_EQ(before->policy.rules.size() + 1, after->policy.rules.size());
    // Unchanged again: cached.
    EXPECT_EQ(after.get(), s.get("uses-common").get());
    // A profile that disappears is gone.
    {
        std::lock_guard lock(d.mu);
        d.files.erase("uses-common");
    }
    EXPECT_EQ(error_of([&] { (void)s.get("uses-common"); }), "no such profile \"uses-common\"");
}

TEST(PolicyStore, Errors) {
    AdminDir d;
    standard(d);
    PolicyStore s = d.store();
    EXPECT_EQ(error_of([&] { (void)s.get("broken"); }),
              "broken.policy:2:7: expected a syscall name or @group, got \"opennat\" (not a syscall libseccomp knows on "
              "x86-64 or i386)");
    EXPECT_EQ(error_of([&] { (void)s.get("nope"); }), "no such profile \"nope\"");
    EXPECT_EQ(error_of([&] { (void)s.get("../etc/shadow"); }), "invalid policy name \"../etc/shadow\"");
    EXPECT_EQ(error_of([&] { (void)s.get("baseline"); }),
              "\"baseline\" is a built-in building block for profiles, not a profile to run under");
    EXPECT_EQ(d.reads.count("../etc/shadow"), 0u);
    EXPECT_EQ(error_of([&] { (void)d.store(with_floor("../x")); }), "invalid floor profile name \"../x\"");
}

TEST(PolicyStore, ShowIncludesBuiltins) {
    AdminDir d;
    standard(d);
    PolicyStore s = d.store();
    EXPECT_EQ(canonical_text(s.show("baseline")), canonical_text(baseline_policy()));
    EXPECT_EQ(s.show("strict").rules.size(), s.get("strict")->policy.rules.size());
    EXPECT_THROW((void)s.show("nope"), PolicyError);
}

TEST(PolicyStore, UserPoliciesAreStackedOnTheFloor) {
    AdminDir d;
    standard(d);
    PolicyStore s = d.store();
    auto u = s.user("deny EPERM connect\n", "mine.policy");
    EXPECT_EQ(u->name, "build+mine");
    EXPECT_EQ(u->floor, "build");
    const uint64_t args[6] = {};
    EXPECT_EQ(decide(u->policy, Arch::X86_64, *syscall_number("connect"), args).action, Action::error(EPERM));
    EXPECT_EQ(decide(u->policy, Arch::X86_64, *syscall_number("clock_gettime"), args).action, Action::virtualize());
    EXPECT_NE(u->digest(), s.floor()->digest());
    // Includes resolve to admin profiles and built-ins.
    auto v = s.user("include strict\n", "mine.policy");
    EXPECT_EQ(v->digest(), compile(v->policy).digest);
    EXPECT_TRUE(v->policy.i386_action);
    // Refused, with the user's line and the floor's rule.
    EXPECT_EQ(error_of([&] { (void)s.user("\n\nlog clock_gettime\n", "mine.policy"); }),
              "mine.policy:3: \"log clock_gettime\" would lift the floor's \"virtualize\" of clock_gettime "
              "(build.policy:3); a user policy may only add restrictions (allow < log < virtualize < deny < kill)");
    EXPECT_EQ(error_of([&] { (void)s.user("allow mount\n", "mine.policy"); }),
              "mine.policy:1: \"allow mount\" would lift the floor's \"deny EPERM\" of mount (baseline: deny); a user "
              "policy may only add restrictions (allow < log < virtualize < deny < kill)");
    EXPECT_EQ(error_of([&] { (void)s.user("deny EPERM opennat\n", "mine.policy"); }),
              "mine.policy:1:12: expected a syscall name or @group, got \"opennat\" (not a syscall libseccomp knows on "
              "x86-64 or i386)");
    // The floor is configurable.
    PolicyStore t = d.store(with_floor("strict"));
    EXPECT_EQ(t.user("deny EPERM mount\n", "x")->floor, "strict");
    EXPECT_EQ(error_of([&] { (void)d.store(with_floor("nope")).user("", "x"); }), "no such profile \"nope\"");
}

TEST(PolicyStore, ConcurrentUse) {
    AdminDir d;
    standard(d);
    PolicyStore s = d.store();
    std::vector<std::thread> threads;
    std::vector<std::string> digests(8);
    for (int i = 0; i < 8; ++i)
        threads.emplace_back([&, i] {
            digests[i] = (i % 2 ? s.get("strict") : s.user("kill mount\n", "u"))->digest();
        });
    for (auto& t : threads) t.join();
    for (int i = 2; i < 8; ++i) EXPECT_EQ(digests[i], digests[i % 2]);
}

}  // namespace
}  // namespace hermetic::policy
