// `hermeticctl run --verify` against a real hermeticd: two builds, the second
// perturbed (reversed source directory order, pinned to other CPUs, another
// sandbox); exit 0 when the outputs match, 104 with the differing files and the
// audit diff when they don't.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/support/test_daemon.hpp"

using namespace hermetic::test;
using nlohmann::json;

namespace {

class Verify : public ::testing::Test {
protected:
    static void SetUpTestSuite() { daemon_ = std::make_unique<TestDaemon>(); }
    static void TearDownTestSuite() { daemon_.reset(); }

    ProcessResult sh(const std::string& script, std::vector<std::string> opts) {
        opts.push_back("--verify");
        return daemon_->run(src_.path(), {"/bin/sh", "-c", script}, opts, as_test_user());
    }
    void write_src(const std::string& rel, const std::string& content) {
        std::ofstream(src_ / rel) << content;
        ASSERT_EQ(::chown((src_ / rel).c_str(), test_user().uid, test_user().gid), 0);
    }

    // Directories the test user owns: the source, and the parent of --out.
    struct UserDir : TempDir {
        explicit UserDir(const std::string& prefix) : TempDir(prefix) { stage_probes(path(), {}); }
    };
    static std::unique_ptr<TestDaemon> daemon_;
    UserDir src_{"hermetic-verify-src"};
    UserDir outs_{"hermetic-verify-outs"};
};

std::unique_ptr<TestDaemon> Verify::daemon_;

// Everything the perturbation changes on the host is virtualized: the clock,
// randomness, directory order (the source is copied in reverse order the
// second time), CPU count and numbers.
TEST_F(Verify, AReproducibleBuildExitsZero) {
    for (const char* n : {"zeta", "alpha", "mike", "beta"}) write_src(n, std::string(n) + "\n");
    auto r = sh("date > $OUT/date; ls -f /build > $OUT/order; head -c 32 /dev/urandom | od -x > $OUT/random; "
                "nproc > $OUT/nproc; python3 -c 'import os; print(sorted(os.sched_getaffinity(0)))' > $OUT/aff; "
                "tar --sort=name -cf $OUT/src.tar -C /build .",
                {"--out", outs_ / "o"});
    EXPECT_EQ(r.status, 0) << r.describe();
    EXPECT_NE(r.err.find("reproducible: 6 output entries identical"), std::string::npos) << r.err;
    // Two runs, each announced with its job line.
    EXPECT_NE(r.err.find("first build"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("second build"), std::string::npos) << r.err;
    EXPECT_TRUE(std::ifstream(outs_ / "o/date").good());
}

// /proc/self/status shows the real CPU affinity (not virtualized): the second
// build, pinned to one CPU, writes something else. --verify must catch it.
TEST_F(Verify, ADifferingBuildExits104NamingTheFile) {
    if (::sysconf(_SC_NPROCESSORS_ONLN) < 2) GTEST_SKIP() << "needs 2 CPUs to pin the second build differently";
    auto r = sh("echo same > $OUT/same; grep Cpus_allowed_list /proc/self/status > $OUT/cpus", {"--out", outs_ / "o", "--json"});
    EXPECT_EQ(r.status, 104) << r.describe();
    EXPECT_NE(r.err.find("NOT reproducible: 1 of 2 output entries differ"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("  cpus: content sha256"), std::string::npos) << r.err;
    json j = json::parse(r.out, nullptr, false);
    ASSERT_TRUE(j.is_object()) << r.out;
    EXPECT_EQ(j["verdict"], "differ");
    ASSERT_EQ(j["differences"].size(), 1u) << r.out;
    EXPECT_EQ(j["differences"][0]["path"], "cpus");
    ASSERT_EQ(j["runs"].size(), 2u);
    EXPECT_NE(j["runs"][0]["job"], j["runs"][1]["job"]);
    // The second build's outputs are kept for inspection.
    ASSERT_TRUE(j.contains("second_out")) << r.out;
    EXPECT_TRUE(std::ifstream(j["second_out"].get<std::string>() + "/cpus").good());
}

TEST_F(Verify, AFailingFirstBuildIsReportedWithItsStatus) {
    auto r = sh("exit 3", {});
    EXPECT_EQ(r.status, 3) << r.describe();
    EXPECT_NE(r.err.find("the first build did not succeed (exit 3)"), std::string::npos) << r.err;
}

}  // namespace
