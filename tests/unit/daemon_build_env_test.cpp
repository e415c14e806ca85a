// The build's environment: exactly the contract's fixed variables, then --env in
// order with the last value of a name winning; the fixed ones can't be overridden.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "daemon/build_env.hpp"

namespace {

using namespace hermetic;
using namespace hermetic::daemon;
using Env = std::vector<std::string>;

const Env kFixed = {
    "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/build", "TMPDIR=/tmp", "LANG=C.UTF-8", "TZ=UTC",
    "SOURCE_DATE_EPOCH=315532800",       "OUT=/out",
};

protocol::RunRequest with_env(std::vector<std::pair<std::string, std::string>> env) {
    protocol::RunRequest r;
    r.argv = {"true"};
    r.env = std::move(env);
    return r;
}

TEST(BuildEnv, ExactlyTheFixedVariablesWithoutEnv) {
    EXPECT_EQ(build_environment(with_env({}), 315532800), kFixed);
}

TEST(BuildEnv, EpochBecomesSourceDateEpoch) {
    auto env = build_environment(with_env({}), 0);
    EXPECT_EQ(env[5], "SOURCE_DATE_EPOCH=0");
    env = build_environment(with_env({}), 1700000000);
    EXPECT_EQ(env[5], "SOURCE_DATE_EPOCH=1700000000");
}

TEST(BuildEnv, CallerEnvFollowsInOrder) {
    auto env = build_environment(with_env({{"ZED", "1"}, {"ALPHA", "2"}, {"MID", ""}}), 315532800);
    Env want = kFixed;
    want.insert(want.end(), {"ZED=1", "ALPHA=2", "MID="});
    EXPECT_EQ(env, want);
}

TEST(BuildEnv, LastValueOfANameWinsAndItAppearsOnce) {
    auto env = build_environment(with_env({{"A", "first"}, {"B", "b"}, {"A", "second"}, {"A", "third"}}), 315532800);
    Env want = kFixed;
    // The name keeps the place of its first appearance; the value is the last one.
    want.insert(want.end(), {"A=third", "B=b"});
    EXPECT_EQ(env, want);
}

TEST(BuildEnv, ValuesAreCopiedVerbatim) {
    auto env = build_environment(with_env({{"X", "a=b c\t$HOME 'q' \"d\" \xc3\xa4"}}), 315532800);
    EXPECT_EQ(env.back(), "X=a=b c\t$HOME 'q' \"d\" \xc3\xa4");
}

TEST(BuildEnv, OverridingAFixedVariableIsRefusedWithItsName) {
    for (const char* name : {"PATH", "HOME", "TMPDIR", "LANG", "TZ", "SOURCE_DATE_EPOCH", "OUT"}) {
        try {
            (void)build_environment(with_env({{"OK", "1"}, {name, "x"}}), 315532800);
            ADD_FAILURE() << name << " could be overridden";
        } catch (const protocol::ProtocolError& e) {
            std::string m = e.what();
            EXPECT_NE(m.find(std::string("override ") + name), std::string::npos) << m;
        }
    }
}

TEST(BuildEnv, NamesAreCaseSensitive) {
    // "path" is not "PATH": allowed, and PATH stays fixed.
    auto env = build_environment(with_env({{"path", "/evil"}, {"Home", "/x"}}), 315532800);
    Env want = kFixed;
    want.insert(want.end(), {"path=/evil", "Home=/x"});
    EXPECT_EQ(env, want);
}

TEST(BuildEnv, NothingFromTheDaemonsOwnEnvironmentLeaks) {
    ::setenv("HERMETIC_LEAK_CHECK", "1", 1);
    auto env = build_environment(with_env({}), 315532800);
    for (const auto& e : env) EXPECT_EQ(e.find("HERMETIC_LEAK_CHECK"), std::string::npos);
    ::unsetenv("HERMETIC_LEAK_CHECK");
}

}  // namespace
