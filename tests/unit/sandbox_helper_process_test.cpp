// HelperProcess: the body runs after the identity switch, hardened again (a
// credential change resets the parent-death signal and the dumpable flag), and
// its result or failure comes back on the pipe.
#include "sandbox/helper_process.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>

#include <stdexcept>

namespace hermetic::sandbox {
namespace {

TEST(HelperProcess, BodyRunsNonDumpableWithParentDeathSignalAfterBecome) {
    // What a uid change does on a host with fs.suid_dumpable=1, done directly.
    auto helper = HelperProcess::spawn(
        {},
        [] {
            if (::prctl(PR_SET_DUMPABLE, 1) != 0) throw std::runtime_error("prctl(PR_SET_DUMPABLE, 1)");
        },
        [] {
            int sig = 0;
            (void)::prctl(PR_GET_PDEATHSIG, &sig);
            return nlohmann::json{{"dumpable", ::prctl(PR_GET_DUMPABLE)}, {"pdeathsig", sig}};
        });
    HelperResult r = helper.wait();
    ASSERT_TRUE(r.ok) << r.error_kind << ": " << r.message;
    EXPECT_EQ(r.value.at("dumpable"), 0);
    EXPECT_EQ(r.value.at("pdeathsig"), SIGKILL);
    EXPECT_FALSE(helper.running());
}

TEST(HelperProcess, ReportsTheBodysError) {
    auto helper = HelperProcess::spawn({}, [] {}, []() -> nlohmann::json { throw std::runtime_error("no luck"); });
    HelperResult r = helper.wait();
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error_kind, "error");
    EXPECT_EQ(r.message, "no luck");
}

}  // namespace
}  // namespace hermetic::sandbox
