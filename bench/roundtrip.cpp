// Round trip of `hermeticctl run -- true` against bubblewrap running `true` with
// every namespace, interleaved in one run (A B A B ...), so that machine drift
// hits both alike. Prints each side's min/median/max wall time, the median of
// the pairwise ratios, and where hermetic's time goes (from --json timings).
//
//   bench_roundtrip [--runs N] [--socket PATH]
// Without --socket it starts its own hermeticd (like the integration tests).
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/process.hpp"
#include "bench/stats.hpp"
#include "tests/support/test_daemon.hpp"

using namespace hermetic::test;
using hermetic::bench::median;
using hermetic::bench::print_row;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
    int runs = 30;
    std::string socket;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--runs") && i + 1 < argc) runs = std::atoi(argv[++i]);
        else if (!std::strcmp(argv[i], "--socket") && i + 1 < argc) socket = argv[++i];
    }
    std::unique_ptr<TestDaemon> daemon;
    if (socket.empty()) {
        daemon = std::make_unique<TestDaemon>();
        socket = daemon->socket();
    }
    TempDir empty("hermetic-bench-src");
    std::vector<std::string> a = {hermeticctl_path(), "--socket", socket, "run", "--json", "--src", empty.path(),
                                  "--", "true"};
    std::vector<std::string> b = {"bwrap", "--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev",
                                  "--proc", "/proc", "true"};
    // Warm up both (page cache, pools).
    for (int i = 0; i < 3; ++i) {
        run_process(a);
        run_process(b);
    }
    std::vector<double> ta, tb, ratio;
    std::map<std::string, std::vector<double>> phases;
    for (int i = 0; i < runs; ++i) {
        auto t0 = Clock::now();
        ProcessResult ra = run_process(a);
        double da = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        t0 = Clock::now();
        ProcessResult rb = run_process(b);
        double db = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        if (ra.status != 0 || rb.status != 0) {
            std::fprintf(stderr, "a run failed:\nhermetic: %s\nbwrap: %s\n", ra.describe().c_str(), rb.describe().c_str());
            return 1;
        }
        ta.push_back(da);
        tb.push_back(db);
        ratio.push_back(da / db);
        auto j = nlohmann::json::parse(ra.out, nullptr, false);
        if (!j.is_discarded() && j.contains("timings") && j["timings"].is_object()) {
            const nlohmann::json& timings = j["timings"];
            for (auto it = timings.begin(); it != timings.end(); ++it)
                if (it->is_number()) phases[it.key()].push_back(it->get<double>());
        }
    }
    std::printf("runs: %d each, interleaved\n", runs);
    print_row("A hermeticctl run -- true", ta, 34);
    print_row("B bwrap --unshare-all ... true", tb, 34);
    std::printf("%-34s median %.3f (target <= 1.0)\n\n", "ratio A/B (pairwise)", median(ratio));
    std::printf("where hermetic's time goes (median ms; 'prepare:' happens ahead of the job, off its path):\n");
    for (auto& [k, v] : phases) std::printf("  %-32s %8.2f\n", k.c_str(), median(v));
    return 0;
}
