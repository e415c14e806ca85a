// Debian's reprotest judging a build run through hermeticctl (issue 6): a small
// project whose plain build records the time, host name, directory order,
// build path, CPU count and random bytes is found not reproducible by
// reprotest; the same project built by `hermeticctl run` under the same
// variations is. reprotest runs each build in a fresh copy of the tree under
// its variations (faketime, disorderfs, another host name in a UTS namespace,
// another build path, umask, locale, time zone, PATH, HOME, CPU count, ASLR).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>

#include "tests/support/temp_dir.hpp"
#include "tests/support/test_daemon.hpp"

using namespace hermetic::test;

namespace {

// The variations the issue names: all but the kernel (setarch) and the user
// (reprotest's user_group variation needs a second account it manages).
const char* const kVariations = "--variations=+all,-kernel,-user_group";

class Reprotest : public ::testing::Test {
protected:
    static void SetUpTestSuite() { daemon_ = std::make_unique<TestDaemon>(); }
    static void TearDownTestSuite() { daemon_.reset(); }

    void SetUp() override {
        // CI installs it (scripts/install-deps.sh --with-test-deps): a missing
        // reprotest there is a failure, not a skip.
        ASSERT_EQ(::access("/usr/bin/reprotest", X_OK), 0)
            << "reprotest is not installed: scripts/install-deps.sh --with-test-deps";
        const std::string p = proj_.path();
        ASSERT_EQ(::mkdir((p + "/src").c_str(), 0755), 0);
        for (const char* name : {"zeta", "alpha", "mid", "beta"}) std::ofstream(p + "/src/" + name + ".txt") << name << "\n";
        // OUT is /out inside hermetic; art/ in a plain build.
        std::ofstream(p + "/Makefile") << "OUT ?= art\n"
                                          "$(OUT)/facts.txt: $(wildcard src/*.txt)\n"
                                          "\tmkdir -p $(OUT)\n"
                                          "\t{ date +%s.%N; hostname; ls -f src; pwd; nproc; "
                                          "head -c 8 /dev/urandom | od -An -tx1; } > $@\n"
                                          "\tcat src/*.txt > $(OUT)/all.txt\n";
    }

    ProcessResult reprotest(const std::string& build_command) const {
        ProcessOptions o;
        o.cwd = proj_.path();
        o.timeout = std::chrono::seconds(300);
        return run_process({"reprotest", kVariations, build_command, "art/*"}, o);
    }

    static std::unique_ptr<TestDaemon> daemon_;
    TempDir proj_{"hermetic-reprotest"};
};

std::unique_ptr<TestDaemon> Reprotest::daemon_;

TEST_F(Reprotest, FindsThePlainBuildNotReproducible) {
    auto r = reprotest("make");
    EXPECT_EQ(r.status, 1) << r.describe();
    EXPECT_NE(r.out.find("facts.txt"), std::string::npos) << r.describe();
}

TEST_F(Reprotest, FindsTheSameBuildThroughHermeticReproducible) {
    auto r = reprotest(hermeticctl_path() + " --socket " + daemon_->socket() + " run --src . --out art -- make");
    EXPECT_EQ(r.status, 0) << r.describe();
    EXPECT_NE(r.out.find("Reproduction successful"), std::string::npos) << r.describe();
    // Not vacuous: both artifacts were compared.
    EXPECT_NE(r.out.find("art/facts.txt"), std::string::npos) << r.describe();
    EXPECT_NE(r.out.find("art/all.txt"), std::string::npos) << r.describe();
}

}  // namespace
