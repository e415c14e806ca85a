// What the per-event audit log costs a real build (issue 4: within 3%).
// Two daemons, identical but for audit-events: A records every deviation as an
// event in the job's hash-chained, fsynced audit log ("all", the default); B only
// counts them for the signed summary ("counts"). Both run the same real build
// (a generated 40-file C project, make -j2, under the full determinism
// supervisor), interleaved A B A B so that machine drift hits both alike.
// Prints min/median/max of each, the median pairwise ratio A/B (target <= 1.03)
// and how many events A's logs held.
//
//   bench_audit_overhead [--runs N] [--files N]          (root)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/c_project.hpp"
#include "tests/support/process.hpp"
#include "bench/stats.hpp"
#include "tests/support/test_daemon.hpp"

using namespace hermetic::test;
using hermetic::bench::median;
using hermetic::bench::print_row;
using Clock = std::chrono::steady_clock;

namespace {

struct Run {
    double ms = 0;
    std::string job;
};

Run build(const TestDaemon& d, const std::string& src) {
    auto t0 = Clock::now();
    ProcessResult r = d.run(src, {"/bin/bash", "-c", "cd /build/proj && make -s -j2 CC=gcc && ./prog"}, {"--json"});
    Run out{std::chrono::duration<double, std::milli>(Clock::now() - t0).count(), {}};
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    if (r.status != 0 || j.is_discarded()) {
        std::fprintf(stderr, "a build failed:\n%s\n", r.describe().c_str());
        std::exit(1);
    }
    out.job = j.value("job", "");
    return out;
}

uint64_t events_in(const TestDaemon& d, const std::string& job) {
    ProcessResult r = d.ctl({"audit", job, "--json"});
    uint64_t n = 0;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
        auto e = nlohmann::json::parse(line, nullptr, false);
        if (e.is_discarded() || !e.is_object()) continue;
        n += e.value("kind", "") == "aggregate" ? e.value("count", uint64_t{0}) : 1;
    }
    return n;
}

}  // namespace

int main(int argc, char** argv) {
    int runs = 5, files = 40;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--runs") && i + 1 < argc) runs = std::atoi(argv[++i]);
        else if (!std::strcmp(argv[i], "--files") && i + 1 < argc) files = std::atoi(argv[++i]);
    }
    TestDaemon with_events({.config_lines = {"audit-events = all"}});
    TestDaemon counts_only({.config_lines = {"audit-events = counts"}});
    TempDir src("hermetic-bench-audit");
    write_c_project(src.path(), files);
    // Warm up both (page cache, pools).
    (void)build(with_events, src.path());
    (void)build(counts_only, src.path());
    std::vector<double> ta, tb, ratio;
    uint64_t events = 0;
    for (int i = 0; i < runs; ++i) {
        Run a = build(with_events, src.path());
        Run b = build(counts_only, src.path());
        ta.push_back(a.ms);
        tb.push_back(b.ms);
        ratio.push_back(a.ms / b.ms);
        events = events_in(with_events, a.job);
    }
    std::printf("real build: %d-file C project, make -j2, hermeticctl run end to end; %d runs each, interleaved\n",
                files, runs);
    print_row("A audit-events = all (event log)", ta);
    print_row("B audit-events = counts (summary only)", tb);
    std::printf("%-40s median %.3f (target <= 1.03)\n", "ratio A/B (pairwise)", median(ratio));
    std::printf("%-40s %llu per build\n", "events in A's audit log", static_cast<unsigned long long>(events));
    return 0;
}
