// Per-action overhead of the Buildbarn runner path (issue 9): a gRPC Run of
// `true` in an empty input root, as bb_worker would call it, against
// `hermeticctl run -- true` from an empty source, interleaved in one run
// (A B A B ...) against one hermeticd. Prints each side's min/median/max wall
// time and the median of the pairwise ratios (runner / hermeticctl).
//
//   bench_runner_overhead [--runs N]
// Starts its own hermeticd (like the integration tests); run as root.
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "runner.grpc.pb.h"
#include "tests/support/process.hpp"
#include "bench/stats.hpp"
#include "tests/support/test_daemon.hpp"

using namespace hermetic::test;
using hermetic::bench::median;
using hermetic::bench::print_row;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

}  // namespace

int main(int argc, char** argv) {
    int runs = 20;
    for (int i = 1; i < argc; ++i)
        if (!std::strcmp(argv[i], "--runs") && i + 1 < argc) runs = std::atoi(argv[++i]);
    TempDir shared("hermetic-bench-bb");
    const std::string build = shared / "build", sock = shared / "runner.sock";
    ::mkdir(build.c_str(), 0755);
    TestDaemon daemon(TestDaemonOptions{{"runner-socket = " + sock, "runner-build-dir = " + build}});
    auto stub = buildbarn::runner::Runner::NewStub(grpc::CreateChannel("unix:" + sock, grpc::InsecureChannelCredentials()));

    TempDir empty("hermetic-bench-src");
    std::vector<std::string> a = {hermeticctl_path(), "--socket", daemon.socket(), "run", "--src", empty.path(),
                                  "--", "true"};
    int n = 0;
    // One action as bb_worker lays it out: ACTION/{root,logs} and stdout/stderr beside.
    auto runner_action = [&]() -> bool {
        std::string name = "a" + std::to_string(n++);
        for (const auto& d : {name, name + "/root", name + "/logs"}) ::mkdir((build + "/" + d).c_str(), 0755);
        buildbarn::runner::RunRequest req;
        req.add_arguments("true");
        (*req.mutable_environment_variables())["PATH"] = "/usr/bin:/bin";
        req.set_input_root_directory(name + "/root");
        req.set_stdout_path(name + "/stdout");
        req.set_stderr_path(name + "/stderr");
        req.set_server_logs_directory(name + "/logs");
        buildbarn::runner::RunResponse resp;
        grpc::ClientContext ctx;
        grpc::Status s = stub->Run(&ctx, req, &resp);
        if (!s.ok() || resp.exit_code() != 0) {
            std::fprintf(stderr, "runner call failed: %d %s (exit %d)\n", s.error_code(), s.error_message().c_str(),
                         resp.exit_code());
            return false;
        }
        return true;
    };
    for (int i = 0; i < 3; ++i) {  // warm up both (page cache, pools)
        run_process(a);
        if (!runner_action()) return 1;
    }
    std::vector<double> ta, tb, ratio;
    for (int i = 0; i < runs; ++i) {
        auto t0 = Clock::now();
        ProcessResult ra = run_process(a);
        double da = ms_since(t0);
        t0 = Clock::now();
        bool ok = runner_action();
        double db = ms_since(t0);
        if (ra.status != 0 || !ok) {
            std::fprintf(stderr, "a run failed:\nhermeticctl: %s\n", ra.describe().c_str());
            return 1;
        }
        ta.push_back(da);
        tb.push_back(db);
        ratio.push_back(db / da);
    }
    std::printf("runs: %d each, interleaved, one hermeticd\n", runs);
    print_row("A hermeticctl run -- true", ta);
    print_row("B runner Run(true) + server logs", tb);
    std::printf("%-40s median %.3f\n", "ratio B/A (pairwise)", median(ratio));
    return 0;
}
