#include "audit/diff.hpp"

#include <gtest/gtest.h>

#include <functional>

#include "tests/unit/audit_test_util.hpp"

namespace hermetic::audit {
namespace {

using nlohmann::json;
using namespace testing;

std::string log_of(const std::string& job, const std::vector<Event>& events, bool trace = true,
                   uint64_t bound = kDefaultMaxLogBytes) {
    MemFile f;
    ChainWriter w(f.fd.get(), ChainOptions{job, bound, trace});
    for (const auto& e : events) w.append(e);
    w.finish();
    return f.contents();
}

// What a build that stamps the time and lists a directory does, with the real
// values a plain build would have seen at the given wall time.
std::vector<Event> build_events(const std::string& wall, const std::string& dir_order) {
    Event ls = dir_read(50, 3);
    ls.real_value = dir_order;
    return {random_read(10, 2), clock_read(20, 2, "1712345678." + wall), clock_read(30, 2, "1712345678." + wall),
            ls, socket_try(60, 4)};
}

TEST(AuditDiff, IdenticalRunsHaveNoDifferences) {
    json d = diff_logs(log_of("job-a", build_events("1", "b a")), log_of("job-b", build_events("1", "b a")));
    EXPECT_TRUE(d["identical"]);
    EXPECT_EQ(d["compared"], 5);
    EXPECT_EQ(d["total_differences"], 0);
    EXPECT_EQ(d["job1"], "job-a");
    EXPECT_EQ(d["job2"], "job-b");
}

TEST(AuditDiff, PointsAtTheSyscallWhoseRealValueDiffered) {
    // Same virtual values (the sandbox did its job); the wall clock differed.
    json d = diff_logs(log_of("job-a", build_events("1", "b a")), log_of("job-b", build_events("9", "b a")));
    EXPECT_FALSE(d["identical"]);
    EXPECT_EQ(d["total_differences"], 2);
    const json& first = d["differences"][0];
    EXPECT_EQ(first["kind"], "real");
    EXPECT_EQ(first["syscall"], "clock_gettime");
    EXPECT_EQ(first["class"], "time");
    EXPECT_EQ(first["vpid"], 2);
    EXPECT_EQ(first["index"], 1);  // the process's second deviation
    EXPECT_EQ(first["n1"], 2);
    EXPECT_EQ(first["real1"], "1712345678.1");
    EXPECT_EQ(first["real2"], "1712345678.9");
    EXPECT_EQ(first["value1"], first["value2"]);
    ASSERT_EQ(first["context"].size(), 1u);
    EXPECT_EQ(first["context"][0]["syscall"], "getrandom");
    EXPECT_EQ(d["by_syscall"]["clock_gettime"], 2);

    // A directory read in another order: the fs-order deviation is named.
    d = diff_logs(log_of("job-a", build_events("1", "b a")), log_of("job-b", build_events("1", "a b")));
    ASSERT_EQ(d["total_differences"], 1);
    EXPECT_EQ(d["differences"][0]["syscall"], "getdents64");
    EXPECT_EQ(d["differences"][0]["kind"], "real");
}

TEST(AuditDiff, AlignsPerProcessWhateverTheInterleaving) {
    std::vector<Event> a = build_events("1", "b a");
    std::vector<Event> b = {a[3], a[4], a[0], a[1], a[2]};  // processes 3 and 4 ran first
    json d = diff_logs(log_of("job-a", a), log_of("job-b", b));
    EXPECT_TRUE(d["identical"]) << d.dump(2);
}

TEST(AuditDiff, VirtualValueLeaksDivergenceAndMissingEvents) {
    std::vector<Event> a = build_events("1", "b a");
    std::vector<Event> b = a;
    b[2].value = "315532801.0";  // the build saw another virtual time: a determinism leak
    json d = diff_logs(log_of("job-a", a), log_of("job-b", b));
    ASSERT_EQ(d["total_differences"], 1);
    EXPECT_EQ(d["differences"][0]["kind"], "value");
    EXPECT_EQ(d["differences"][0]["n1"], 3);

    b = a;
    b[1] = random_read(20, 2);  // process 2 did something else second
    d = diff_logs(log_of("job-a", a), log_of("job-b", b));
    EXPECT_EQ(d["differences"][0]["kind"], "syscall");
    EXPECT_EQ(d["differences"][0]["syscall2"], "getrandom");
    EXPECT_EQ(d["by_kind"]["syscall"], 1);
    EXPECT_EQ(d["by_kind"].size(), 1u);  // the rest of process 2 is not compared

    b = a;
    b.pop_back();  // process 4's socket attempt only in job 1
    Event extra = clock_read(99, 5);
    b.push_back(extra);  // process 5 only in job 2
    d = diff_logs(log_of("job-a", a), log_of("job-b", b));
    EXPECT_EQ(d["by_kind"]["missing"], 2);
    EXPECT_EQ(d["processes_only_in_job1"], json({4}));
    EXPECT_EQ(d["processes_only_in_job2"], json({5}));
}

TEST(AuditDiff, SaysWhenEventsWereAggregatedOrUntraced) {
    std::vector<Event> flood;
    for (int i = 0; i < 5000; ++i) flood.push_back(clock_read(i));
    json d = diff_logs(log_of("job-a", flood, false, kMinMaxLogBytes), log_of("job-b", flood, false, kMinMaxLogBytes));
    EXPECT_TRUE(d["identical"]);
    std::string notes = d["notes"].dump();
    EXPECT_NE(notes.find("reached its audit bound"), std::string::npos) << notes;
    EXPECT_NE(notes.find("--trace"), std::string::npos) << notes;
}

TEST(AuditDiff, LimitsTheDetailButCountsEverything) {
    std::vector<Event> a, b;
    for (int i = 0; i < 100; ++i) {
        a.push_back(clock_read(i, 2, "r" + std::to_string(i)));
        b.push_back(clock_read(i, 2, "s" + std::to_string(i)));
    }
    json d = diff_logs(log_of("job-a", a), log_of("job-b", b), DiffOptions{5, 2});
    EXPECT_EQ(d["differences"].size(), 5u);
    EXPECT_EQ(d["total_differences"], 100);
    EXPECT_EQ(d["differences"][4]["context"].size(), 2u);
}

}  // namespace
}  // namespace hermetic::audit
