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

namespace hermetic::sandbox::determinism {
namespace {

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
    return o;
}

// Median wall time of `reps` runs.
double wall(const MiniSandboxOptions& o, int reps, Summary* summary = nullptr) {
    std::vector<double> t;
    for (int i = 0; i < reps; ++i) {
        MiniSandboxResult r = run_mini_sandbox(o);
        EXPECT_EQ(r.status, 0) << r.err << r.out;
        t.push_back(r.wall_ms);
        if (summary) *summary = r.summary;
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

struct Row {
    std::string name;
    double plain_ms, det_ms;
    long ops;
    Summary s;
};

void report(const Row& r, double empty_plain, double empty_det) {
    double p = r.plain_ms - empty_plain, d = r.det_ms - empty_det;
    double per_op_us = r.ops ? (d - p) * 1000.0 / static_cast<double>(r.ops) : 0;
    double handler_us = r.s.traps ? static_cast<double>(r.s.trap_ns_total) / static_cast<double>(r.s.traps) / 1000.0 : 0;
    std::printf("%-34s plain %9.1f ms  engine %9.1f ms  ratio %6.2fx  extra/op %7.2f us  traps %8llu  supervisor/trap %5.2f us  ptrace stops %6llu (%.1f us each)\n",
                r.name.c_str(), p, d, p > 0 ? d / p : 0.0, per_op_us, static_cast<unsigned long long>(r.s.traps), handler_us,
                static_cast<unsigned long long>(r.s.stops), r.s.stops ? static_cast<double>(r.s.stop_ns_total) / static_cast<double>(r.s.stops) / 1000.0 : 0.0);
    if (std::getenv("HERMETIC_DET_VERBOSE")) {
        std::vector<std::pair<uint64_t, std::string>> top;
        for (const auto& [name, count] : r.s.by_syscall) top.push_back({count, name});
        std::sort(top.rbegin(), top.rend());
        for (size_t i = 0; i < top.size() && i < 8; ++i) std::printf("      %s x%llu\n", top[i].second.c_str(), static_cast<unsigned long long>(top[i].first));
    }
}

std::vector<std::pair<std::string, std::string>> c_project(int files) {
    std::vector<std::pair<std::string, std::string>> f = {{"proj/", ""}, {"proj/src/", ""}};
    std::string objs, decls, calls;
    for (int i = 0; i < files; ++i) {
        std::string n = std::to_string(i);
        std::string body = "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include \"common.h\"\n";
        for (int k = 0; k < 20; ++k)
            body += "static int g" + std::to_string(k) + "(int x) { char b[64]; snprintf(b, sizeof b, \"%d\", x * " +
                    std::to_string(k + i) + "); return (int)strlen(b) + COMMON; }\n";
        body += "int f" + n + "(int x) { int s = 0;";
        for (int k = 0; k < 20; ++k) body += " s += g" + std::to_string(k) + "(x + s);";
        body += " return s; }\n";
        f.push_back({"proj/src/m" + n + ".c", body});
        objs += " src/m" + n + ".o";
        decls += "int f" + n + "(int);\n";
        calls += "  s += f" + n + "(s);\n";
    }
    f.push_back({"proj/src/common.h", "#define COMMON 3\n"});
    f.push_back({"proj/src/main.c", "#include <stdio.h>\n" + decls + "int main(void) { int s = 1;\n" + calls + "  printf(\"%d\\n\", s); return 0; }\n"});
    f.push_back({"proj/Makefile", "OBJS =" + objs + " src/main.o\nprog: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\nsrc/%.o: src/%.c src/common.h\n\t$(CC) -O2 -c -o $@ $<\n"});
    return f;
}

TEST(DetBench, Workloads) {
    const bool big = full();
    const int reps = big ? 3 : 1;
    const long clocks = big ? 1'000'000 : 20'000, dents = big ? 100'000 : 2'000, stats = big ? 100'000 : 2'000;
    const int pythons = big ? 100 : 5, cfiles = big ? 40 : 6;
    std::printf("determinism engine benchmarks (median of %d, wall time minus an empty sandbox run)\n", reps);
    std::string probe = "/host/det_bench";
    double empty_p = wall(opts({"/bin/true"}, false), reps), empty_d = wall(opts({"/bin/true"}, true), reps);
    std::printf("%-34s plain %9.1f ms  engine %9.1f ms\n", "empty sandbox (subtracted)", empty_p, empty_d);

    auto row = [&](const std::string& name, std::vector<std::string> argv, long ops,
                   std::vector<std::pair<std::string, std::string>> files = {}) {
        Row r{name, 0, 0, ops, {}};
        auto p = opts(argv, false), d = opts(argv, true);
        p.files = d.files = std::move(files);
        r.plain_ms = wall(p, reps);
        r.det_ms = wall(d, reps, &r.s);
        report(r, empty_p, empty_d);
        return r;
    };
    row("getpid x" + std::to_string(clocks) + " (not trapped)", {probe, "getpid", std::to_string(clocks)}, clocks);
    Row c = row("vDSO clock_gettime x" + std::to_string(clocks), {probe, "clock", std::to_string(clocks)}, clocks);
    EXPECT_GE(c.s.by_syscall["clock_gettime"] + c.s.by_syscall["clock read (in-process vDSO)"], static_cast<uint64_t>(clocks));
    std::vector<std::pair<std::string, std::string>> dir = {{"d/", ""}};
    for (int i = 0; i < 1000; ++i) dir.push_back({"d/entry-" + std::to_string(i * 7919 % 1000), ""});
    row("getdents 1000-entry dir x" + std::to_string(dents), {probe, "getdents", std::to_string(dents), "/build/d"}, dents, dir);
    row("stat x" + std::to_string(stats), {probe, "stat", std::to_string(stats), "/usr/bin/env"}, stats);
    std::string loop = "for i in $(seq " + std::to_string(pythons) + "); do python3 -c pass; done";
    row(std::to_string(pythons) + " python3 start-ups", {"/bin/bash", "-c", loop}, pythons);
    row("C build, " + std::to_string(cfiles) + " files, make -j2",
        {"/bin/bash", "-c", "cd /build/proj && make -s -j2 CC=gcc && ./prog"}, cfiles, c_project(cfiles));
}

}  // namespace
}  // namespace hermetic::sandbox::determinism
