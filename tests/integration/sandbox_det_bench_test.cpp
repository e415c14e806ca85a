// Benchmarks of the determinism engine (run by bench/det_bench.sh; as tests
// they only check that each workload completes, unless HERMETIC_DET_BENCH=1).
// Every workload runs in the same mini sandbox twice: with the engine and with
// the baseline policy alone (no supervisor); the difference is the engine's cost.
// An empty run of each kind is subtracted (sandbox set-up).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "sandbox/determinism/mini_sandbox.hpp"
#include "tests/support/c_project.hpp"

namespace hermetic::sandbox::determinism {
namespace {

using test::c_project;

bool full() {
    const char* e = std::getenv("HERMETIC_DET_BENCH");
    return e && std::string(e) == "1";
}

MiniSandboxOptions opts(std::vector<std::string> argv, bool det) {
    MiniSandboxOptions o;
    o.argv = std::move(argv);
    o.host_dir_ro = HERMETIC_PROBE_DIR;
    o.determinism = det;
    o.config.seed = 1;
    o.config.cpus = 2;
    o.config.record_deviations = std::getenv("HERMETIC_DET_NO_RECORDS") == nullptr;
    // HERMETIC_DET_NO_FAST_STAT=1: every stat traps (the in-process stat path off), for A/B runs.
    o.config.in_process_stat = std::getenv("HERMETIC_DET_NO_FAST_STAT") == nullptr;
    // HERMETIC_DET_NO_RDTSC_PATCH=1: the loader's rdtsc traps (rdtsc_patch.hpp), for A/B runs.
    o.config.in_process_rdtsc = std::getenv("HERMETIC_DET_NO_RDTSC_PATCH") == nullptr;
    // HERMETIC_DET_NO_RSEQ_PATCH=1: the loader's rseq denial traps, for A/B runs.
    o.config.in_process_rseq = std::getenv("HERMETIC_DET_NO_RSEQ_PATCH") == nullptr;
    // HERMETIC_DET_NO_LOADER_STAT_PATCH=1: the loader's stat of each library traps.
    o.config.in_process_loader_stat = std::getenv("HERMETIC_DET_NO_LOADER_STAT_PATCH") == nullptr;
    return o;
}

struct Sample {
    double wall_ms = 0, cpu_ms = 0;
    Summary s;
};

// Plain and engine runs alternate (the machine's other load then hits both
// alike); medians of `reps` each.
std::pair<Sample, Sample> measure(const MiniSandboxOptions& plain, const MiniSandboxOptions& det, int reps) {
    std::vector<double> pw, pc, dw, dc;
    Summary last;
    for (int i = 0; i < reps; ++i) {
        for (const MiniSandboxOptions* o : {&plain, &det}) {
            MiniSandboxResult r = run_mini_sandbox(*o);
            EXPECT_EQ(r.status, 0) << r.err << r.out;
            bool d = o == &det;
            (d ? dw : pw).push_back(r.wall_ms);
            (d ? dc : pc).push_back(r.build_cpu_ms + (d ? static_cast<double>(r.summary.supervisor_cpu_ns) / 1e6 : 0));
            if (d) last = r.summary;
        }
    }
    auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    };
    return {Sample{median(pw), median(pc), {}}, Sample{median(dw), median(dc), last}};
}

void report(const std::string& name, long ops, const Sample& p0, const Sample& d0, const Sample& ep, const Sample& ed) {
    double p = p0.wall_ms - ep.wall_ms, d = d0.wall_ms - ed.wall_ms;
    double pc = p0.cpu_ms - ep.cpu_ms, dc = d0.cpu_ms - ed.cpu_ms;
    const Summary& s = d0.s;
    double per_op_us = ops ? (d - p) * 1000.0 / static_cast<double>(ops) : 0;
    double handler_us = s.traps ? static_cast<double>(s.trap_ns_total) / static_cast<double>(s.traps) / 1000.0 : 0;
    std::printf("%-34s wall plain %9.1f ms engine %9.1f ms ratio %5.2fx | cpu plain %9.1f ms engine %9.1f ms ratio %5.2fx | extra/op %7.2f us | traps %7llu (supervisor %5.2f us each) | ptrace stops %5llu (%6.1f us each)\n",
                name.c_str(), p, d, p > 0 ? d / p : 0.0, pc, dc, pc > 0 ? dc / pc : 0.0, per_op_us,
                static_cast<unsigned long long>(s.traps), handler_us, static_cast<unsigned long long>(s.stops),
                s.stops ? static_cast<double>(s.stop_ns_total) / static_cast<double>(s.stops) / 1000.0 : 0.0);
    if (std::getenv("HERMETIC_DET_VERBOSE")) {
        std::vector<std::pair<uint64_t, std::string>> top;
        for (const auto& [nm, count] : s.by_syscall) top.push_back({count, nm});
        std::sort(top.rbegin(), top.rend());
        for (size_t i = 0; i < top.size() && i < 8; ++i) std::printf("      %s x%llu\n", top[i].second.c_str(), static_cast<unsigned long long>(top[i].first));
    }
    std::fflush(stdout);
}

TEST(DetBench, Workloads) {
    const bool big = full();
    // HERMETIC_DET_REPS=n: more alternating runs per row on a noisy host.
    const char* reps_env = std::getenv("HERMETIC_DET_REPS");
    const int reps = reps_env ? std::max(1, std::atoi(reps_env)) : big ? 3 : 1;
    const long clocks = big ? 1'000'000 : 20'000, dents = big ? 100'000 : 2'000, stats = big ? 100'000 : 2'000;
    const int pythons = big ? 100 : 5, cfiles = big ? 40 : 6;
    std::printf("determinism engine benchmarks (plain and engine runs alternate, median of %d; an empty sandbox run is subtracted)\n", reps);
    std::string probe = "/host/det_bench";
    auto [ep, ed] = measure(opts({"/bin/true"}, false), opts({"/bin/true"}, true), reps);
    std::printf("%-34s wall plain %9.1f ms engine %9.1f ms\n", "empty sandbox (subtracted)", ep.wall_ms, ed.wall_ms);

    // HERMETIC_DET_ONLY=text: only the workloads whose name contains it.
    const char* only = std::getenv("HERMETIC_DET_ONLY");
    auto row = [&, ep = ep, ed = ed](const std::string& name, std::vector<std::string> argv, long ops,
                                     std::vector<std::pair<std::string, std::string>> files = {}) {
        if (only && name.find(only) == std::string::npos) return Summary{};
        auto p = opts(argv, false), d = opts(argv, true);
        p.files = d.files = std::move(files);
        auto [sp, sd] = measure(p, d, reps);
        report(name, ops, sp, sd, ep, ed);
        return sd.s;
    };
    row("getpid x" + std::to_string(clocks) + " (not trapped)", {probe, "getpid", std::to_string(clocks)}, clocks);
    Summary c = row("vDSO clock_gettime x" + std::to_string(clocks), {probe, "clock", std::to_string(clocks)}, clocks);
    if (!only || c.traps) {  // a row HERMETIC_DET_ONLY skipped has nothing to check
        EXPECT_GE(c.by_syscall["clock_gettime"] + c.by_syscall["clock read (in-process vDSO)"],
                  static_cast<uint64_t>(clocks));
    }
    std::vector<std::pair<std::string, std::string>> dir = {{"d/", ""}};
    for (int i = 0; i < 1000; ++i) dir.push_back({"d/entry-" + std::to_string(i * 7919 % 1000), ""});
    row("getdents 1000-entry dir x" + std::to_string(dents), {probe, "getdents", std::to_string(dents), "/build/d"}, dents, dir);
    row("stat x" + std::to_string(stats), {probe, "stat", std::to_string(stats), "/usr/bin/env"}, stats);
    // What a configure script or a test suite does most: start small processes.
    const int trues = big ? 1000 : 50;
    row(std::to_string(trues) + " /bin/true start-ups", {"/bin/sh", "-c", "for i in $(seq " + std::to_string(trues) + "); do /bin/true; done"},
        trues);
    std::string loop = "for i in $(seq " + std::to_string(pythons) + "); do python3 -c pass; done";
    row(std::to_string(pythons) + " python3 start-ups", {"/bin/bash", "-c", loop}, pythons);
    row("C build, " + std::to_string(cfiles) + " files, make -j2",
        {"/bin/bash", "-c", "cd /build/proj && make -s -j2 CC=gcc && ./prog"}, cfiles, c_project(cfiles));
}

}  // namespace
}  // namespace hermetic::sandbox::determinism
