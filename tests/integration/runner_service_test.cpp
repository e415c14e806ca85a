// hermeticd as a Buildbarn runner (issue 9, docs/buildbarn.md): this test plays
// bb_worker. It stages input roots in the build directory it shares with a real
// hermeticd, calls buildbarn.runner.Runner over the runner socket with gRPC, and
// checks what a worker relies on: outputs in the input root, stdout/stderr
// files, exit codes, rusage, cancellation, refused path escapes, concurrent
// calls, the audit in server_logs_directory, and the same bytes as
// `hermeticctl run` of the same command.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "resourceusage.pb.h"
#include "runner.grpc.pb.h"
#include "tests/support/test_daemon.hpp"

using namespace hermetic::test;
using buildbarn::runner::Runner;
using Clock = std::chrono::steady_clock;

namespace {

// The contract's environment, given to both paths of the acceptance check.
const std::vector<std::pair<std::string, std::string>> kHermeticEnv = {
    {"PATH", "/usr/local/bin:/usr/bin:/bin"}, {"HOME", "/build"}, {"TMPDIR", "/tmp"},
    {"LANG", "C.UTF-8"}, {"TZ", "UTC"}, {"SOURCE_DATE_EPOCH", "315532800"}, {"OUT", "/out"}};

class RunnerService : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        shared_ = std::make_unique<TempDir>("hermetic-bb");
        ::chmod(shared_->path().c_str(), 0755);
        build_dir_ = *shared_ / "build";
        ::mkdir(build_dir_.c_str(), 0755);
        // The worker's own user owns the build directory (bb_worker isn't root).
        chown_to_worker(build_dir_);
        socket_ = *shared_ / "runner.sock";
        daemon_ = std::make_unique<TestDaemon>(
            TestDaemonOptions{{"runner-socket = " + socket_, "runner-build-dir = " + build_dir_}});
        channel_ = grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials());
    }
    static void TearDownTestSuite() {
        channel_.reset();
        daemon_.reset();
        shared_.reset();
    }

    static void chown_to_worker(const std::string& p) {
        TestUser u = test_user();
        ASSERT_EQ(::chown(p.c_str(), u.uid, u.gid), 0) << p;
    }
    // A directory under the build directory, as bb_worker makes them: its own,
    // writable for the runner's (here: the sandbox's) other uid.
    static std::string mkdir_w(const std::string& rel) {
        std::string p = build_dir_ + "/" + rel;
        EXPECT_EQ(::mkdir(p.c_str(), 0777), 0) << p;
        ::chmod(p.c_str(), 0777);
        chown_to_worker(p);
        return p;
    }
    static void file_w(const std::string& rel, const std::string& content, unsigned mode = 0644) {
        std::string p = build_dir_ + "/" + rel;
        write_file(p, content, mode);
        chown_to_worker(p);
    }

    // One action's directories, named like bb_worker's: ACTION/{root,tmp,logs}.
    buildbarn::runner::RunRequest action(const std::string& name, std::vector<std::string> argv,
                                         const std::string& workdir = "") {
        mkdir_w(name);
        mkdir_w(name + "/root");
        mkdir_w(name + "/tmp");
        mkdir_w(name + "/logs");
        buildbarn::runner::RunRequest r;
        for (auto& a : argv) r.add_arguments(a);
        for (const auto& [k, v] : kHermeticEnv) (*r.mutable_environment_variables())[k] = v;
        r.set_working_directory(workdir);
        r.set_stdout_path(name + "/stdout");
        r.set_stderr_path(name + "/stderr");
        r.set_input_root_directory(name + "/root");
        r.set_temporary_directory(name + "/tmp");
        r.set_server_logs_directory(name + "/logs");
        return r;
    }

    static grpc::Status call(const buildbarn::runner::RunRequest& req, buildbarn::runner::RunResponse& resp,
                             std::chrono::seconds deadline = std::chrono::seconds(120)) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + deadline);
        return Runner::NewStub(channel_)->Run(&ctx, req, &resp);
    }

    static std::unique_ptr<TempDir> shared_;
    static std::string build_dir_, socket_;
    static std::unique_ptr<TestDaemon> daemon_;
    static std::shared_ptr<grpc::Channel> channel_;
};

std::unique_ptr<TempDir> RunnerService::shared_;
std::string RunnerService::build_dir_, RunnerService::socket_;
std::unique_ptr<TestDaemon> RunnerService::daemon_;
std::shared_ptr<grpc::Channel> RunnerService::channel_;

// A DSSE payload is base64.
std::string a_decode(const std::string& b64) {
    ProcessOptions o;
    o.stdin_data = b64;
    auto r = run_process({"base64", "-d"}, o);
    return r.out;
}

std::string describe(const grpc::Status& s) { return std::to_string(s.error_code()) + ": " + s.error_message(); }

TEST_F(RunnerService, CheckReadinessLooksBeneathTheBuildDirectory) {
    mkdir_w("ready");
    auto check = [](const std::string& path) {
        grpc::ClientContext ctx;
        buildbarn::runner::CheckReadinessRequest req;
        req.set_path(path);
        google::protobuf::Empty e;
        return Runner::NewStub(channel_)->CheckReadiness(&ctx, req, &e);
    };
    EXPECT_TRUE(check("ready").ok());
    EXPECT_EQ(check("not-there").error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(check("../").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(check("/etc").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(RunnerService, RunsInPlaceWithOutputsStreamsExitCodeAndAudit) {
    auto req = action("a1", {"/bin/sh", "-c",
                             "cat input.txt > made.txt && mkdir -p sub && echo deep > sub/new && "
                             "echo to-stdout && echo to-stderr >&2 && pwd > where && exit 3"},
                      "src");
    mkdir_w("a1/root/src");
    file_w("a1/root/src/input.txt", "staged by the worker\n");
    buildbarn::runner::RunResponse resp;
    grpc::Status s = call(req, resp);
    ASSERT_TRUE(s.ok()) << describe(s) << "\n" << daemon_->log();
    EXPECT_EQ(resp.exit_code(), 3);  // a failing action is not an error
    const std::string root = build_dir_ + "/a1/root/src/";
    EXPECT_EQ(read_file(root + "made.txt"), "staged by the worker\n");
    EXPECT_EQ(read_file(root + "sub/new"), "deep\n");
    EXPECT_EQ(read_file(root + "where"), "/build/src\n");
    EXPECT_EQ(read_file(build_dir_ + "/a1/stdout"), "to-stdout\n");
    EXPECT_EQ(read_file(build_dir_ + "/a1/stderr"), "to-stderr\n");
    // The outputs belong to the worker's user, as if it had run the action itself.
    for (const char* f : {"made.txt", "sub", "sub/new"}) {
        struct stat st{};
        ASSERT_EQ(::lstat((root + f).c_str(), &st), 0) << f;
        EXPECT_EQ(st.st_uid, test_user().uid) << f;
        EXPECT_EQ(st.st_gid, test_user().gid) << f;
    }
    // POSIX rusage, in Buildbarn's message.
    ASSERT_EQ(resp.resource_usage_size(), 1);
    buildbarn::resourceusage::POSIXResourceUsage usage;
    ASSERT_TRUE(resp.resource_usage(0).UnpackTo(&usage));
    EXPECT_GT(usage.maximum_resident_set_size(), 0);
    EXPECT_TRUE(usage.termination_signal().empty());
    // The job's evidence, for the Bazel client's server logs.
    const std::string logs = build_dir_ + "/a1/logs/";
    std::string job = read_file(logs + "hermetic-job");
    ASSERT_FALSE(job.empty());
    job.pop_back();
    ASSERT_EQ(::access((logs + "hermetic-audit-summary.json").c_str(), R_OK), 0) << daemon_->log();
    auto summary = nlohmann::json::parse(read_file(logs + "hermetic-audit-summary.json"));
    EXPECT_EQ(summary.value("payloadType", ""), "application/vnd.hermetic.audit-summary+json");
    auto attestation = nlohmann::json::parse(read_file(logs + "hermetic-attestation.json"));
    EXPECT_EQ(attestation.value("payloadType", ""), "application/vnd.in-toto+json");
    // What the action created is the attestation's subject, by path in the input root.
    const std::string payload = nlohmann::json::parse(a_decode(attestation.value("payload", "")))
                                    .at("subject")
                                    .dump();
    EXPECT_NE(payload.find("\"src/made.txt\""), std::string::npos) << payload;
    EXPECT_NE(payload.find("\"src/sub/new\""), std::string::npos) << payload;
    EXPECT_EQ(payload.find("input.txt"), std::string::npos) << payload;  // an input, not an output
    // The same evidence hermeticctl shows and verifies for the job.
    auto v = daemon_->ctl({"audit", job, "--verify"});
    EXPECT_EQ(v.status, 0) << v.describe();
    auto a = daemon_->ctl({"attest", job});
    EXPECT_EQ(a.status, 0) << a.describe();
    EXPECT_EQ(nlohmann::json::parse(a.out), attestation);
}

TEST_F(RunnerService, TheWorkersInputFilesAreReadOnlyToTheBuild) {
    // Inputs bb_worker hardlinks from its cache must not be changed by an action.
    auto req = action("ro", {"/bin/sh", "-c", "chmod 666 input; echo changed > input; rm -f input; exit 0"});
    file_w("ro/root/input", "cached\n", 0444);
    ::chmod((build_dir_ + "/ro/root").c_str(), 01777);  // sticky: others' files can't be removed either
    buildbarn::runner::RunResponse resp;
    grpc::Status s = call(req, resp);
    ASSERT_TRUE(s.ok()) << describe(s);
    EXPECT_EQ(read_file(build_dir_ + "/ro/root/input"), "cached\n");
    struct stat st{};
    ASSERT_EQ(::stat((build_dir_ + "/ro/root/input").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0444u);
}

TEST_F(RunnerService, ResolvesArgv0WithTheActionsPathFromItsWorkingDirectory) {
    auto req = action("a2", {"tool", "arg"}, "pkg");
    (*req.mutable_environment_variables())["PATH"] = "bin:/usr/bin:/bin";
    mkdir_w("a2/root/pkg");
    mkdir_w("a2/root/pkg/bin");
    file_w("a2/root/pkg/bin/tool", "#!/bin/sh\necho \"tool ran with $1 in $(pwd)\"\n", 0755);
    buildbarn::runner::RunResponse resp;
    grpc::Status s = call(req, resp);
    ASSERT_TRUE(s.ok()) << describe(s);
    EXPECT_EQ(resp.exit_code(), 0);
    EXPECT_EQ(read_file(build_dir_ + "/a2/stdout"), "tool ran with arg in /build/pkg\n");
}

TEST_F(RunnerService, KilledBySignalReportsItInTheRusage) {
    auto req = action("a3", {"/bin/sh", "-c", "kill -SEGV $$"});
    buildbarn::runner::RunResponse resp;
    grpc::Status s = call(req, resp);
    ASSERT_TRUE(s.ok()) << describe(s);
    EXPECT_EQ(resp.exit_code(), 128 + SIGSEGV);
    buildbarn::resourceusage::POSIXResourceUsage usage;
    ASSERT_TRUE(resp.resource_usage(0).UnpackTo(&usage));
    EXPECT_EQ(usage.termination_signal(), "SEGV");
}

TEST_F(RunnerService, RefusesPathsThatLeaveTheBuildDirectory) {
    ASSERT_EQ(::symlink("/", (build_dir_ + "/to-root").c_str()), 0);
    auto base = action("a4", {"/bin/true"});
    ASSERT_EQ(::symlink("/etc", (build_dir_ + "/a4/root/etc-link").c_str()), 0);
    struct Case {
        const char* what;
        std::function<void(buildbarn::runner::RunRequest&)> edit;
        grpc::StatusCode code;
    };
    std::vector<Case> cases = {
        {"input root ..", [](auto& r) { r.set_input_root_directory("a4/../.."); }, grpc::StatusCode::INVALID_ARGUMENT},
        {"input root absolute", [](auto& r) { r.set_input_root_directory("/etc"); }, grpc::StatusCode::INVALID_ARGUMENT},
        {"input root symlink", [](auto& r) { r.set_input_root_directory("to-root"); }, grpc::StatusCode::INVALID_ARGUMENT},
        {"workdir ..", [](auto& r) { r.set_working_directory(".."); }, grpc::StatusCode::INVALID_ARGUMENT},
        {"workdir symlink", [](auto& r) { r.set_working_directory("etc-link"); }, grpc::StatusCode::INVALID_ARGUMENT},
        {"stdout absolute", [](auto& r) { r.set_stdout_path("/tmp/hermetic-bb-escape"); }, grpc::StatusCode::INVALID_ARGUMENT},
        {"stderr through symlink", [](auto& r) { r.set_stderr_path("to-root/tmp/hermetic-bb-escape"); },
         grpc::StatusCode::INVALID_ARGUMENT},
        {"logs ..", [](auto& r) { r.set_server_logs_directory("../x"); }, grpc::StatusCode::INVALID_ARGUMENT},
        {"tmp ..", [](auto& r) { r.set_temporary_directory("a4/../../x"); }, grpc::StatusCode::INVALID_ARGUMENT},
        {"workdir missing", [](auto& r) { r.set_working_directory("nope"); }, grpc::StatusCode::NOT_FOUND},
        {"no arguments", [](auto& r) { r.clear_arguments(); }, grpc::StatusCode::INVALID_ARGUMENT},
    };
    for (const auto& c : cases) {
        auto req = base;
        c.edit(req);
        buildbarn::runner::RunResponse resp;
        grpc::Status s = call(req, resp);
        EXPECT_EQ(s.error_code(), c.code) << c.what << ": " << describe(s);
    }
    EXPECT_NE(::access("/tmp/hermetic-bb-escape", F_OK), 0);
    // stdout and stderr are created exclusively: an existing file is not overwritten.
    file_w("a4/stdout", "the worker's\n");
    buildbarn::runner::RunResponse resp;
    EXPECT_EQ(call(base, resp).error_code(), grpc::StatusCode::ALREADY_EXISTS);
    EXPECT_EQ(read_file(build_dir_ + "/a4/stdout"), "the worker's\n");
}

TEST_F(RunnerService, ACancelledCallKillsTheWholeSandbox) {
    auto req = action("a5", {"/bin/sh", "-c", "(sleep 300 &) ; touch started; sleep 300"});
    buildbarn::runner::RunResponse resp;
    grpc::ClientContext ctx;
    auto stub = Runner::NewStub(channel_);
    std::thread canceller([&] {
        // Once the build has started (it wrote its marker), the worker gives up.
        auto until = Clock::now() + std::chrono::seconds(60);
        while (::access((build_dir_ + "/a5/root/started").c_str(), F_OK) != 0 && Clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        ctx.TryCancel();
    });
    grpc::Status s = stub->Run(&ctx, req, &resp);
    canceller.join();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::CANCELLED) << describe(s);
    // Every process of the sandbox goes, the background one included.
    auto until = Clock::now() + std::chrono::seconds(30);
    while (!build_processes(daemon_->id_base(), 1024).empty() && Clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_TRUE(build_processes(daemon_->id_base(), 1024).empty());
    // An expired deadline is the same.
    auto req2 = action("a6", {"/bin/sh", "-c", "sleep 300"});
    EXPECT_EQ(call(req2, resp, std::chrono::seconds(3)).error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
    until = Clock::now() + std::chrono::seconds(30);
    while (!build_processes(daemon_->id_base(), 1024).empty() && Clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_TRUE(build_processes(daemon_->id_base(), 1024).empty());
}

TEST_F(RunnerService, ConcurrentCallsEachGetTheirOwnSandbox) {
    constexpr int kCalls = 3;
    std::vector<buildbarn::runner::RunRequest> reqs;
    for (int i = 0; i < kCalls; ++i) {
        std::string n = "c" + std::to_string(i);
        reqs.push_back(action(n, {"/bin/sh", "-c", "sleep 1; echo " + n + " > result; ls /build > seen"}));
        file_w(n + "/root/only-" + n, "");
    }
    std::vector<grpc::Status> status(kCalls);
    std::vector<buildbarn::runner::RunResponse> resp(kCalls);
    std::vector<std::thread> threads;
    for (int i = 0; i < kCalls; ++i) threads.emplace_back([&, i] { status[i] = call(reqs[i], resp[i]); });
    for (auto& t : threads) t.join();
    for (int i = 0; i < kCalls; ++i) {
        std::string n = "c" + std::to_string(i);
        ASSERT_TRUE(status[i].ok()) << n << ": " << describe(status[i]);
        EXPECT_EQ(resp[i].exit_code(), 0);
        EXPECT_EQ(read_file(build_dir_ + "/" + n + "/root/result"), n + "\n");
        // Each saw its own input root only.
        EXPECT_EQ(read_file(build_dir_ + "/" + n + "/root/seen"), "only-" + n + "\nresult\nseen\n");
    }
}

TEST_F(RunnerService, SameOutputsAsHermeticctlRunByteForByte) {
    const std::string script =
        "set -e\n"
        "o=$1\n"
        "cc -O2 -o \"$o/hello\" hello.c\n"
        "date '+%s %N' > \"$o/clock\"\n"
        "head -c 64 /dev/urandom | od -An -tx1 > \"$o/random\"\n"
        "cat /proc/sys/kernel/random/boot_id > \"$o/boot_id\"\n"
        "nproc > \"$o/nproc\"\n";
    const std::string hello = "#include <stdio.h>\nint main(void){puts(\"hello\");return 0;}\n";
    const std::vector<std::string> files = {"hello", "clock", "random", "boot_id", "nproc"};

    // hermeticctl run, as the test user.
    TempDir src("hermetic-bb-src"), outs("hermetic-bb-out");
    write_file(src / "build.sh", script);
    write_file(src / "hello.c", hello);
    stage_probes(src.path(), {});
    stage_probes(outs.path(), {});
    auto r = daemon_->run(src.path(), {"/bin/sh", "build.sh", "/out"}, {"--out", outs / "o"}, as_test_user());
    ASSERT_EQ(r.status, 0) << r.describe();

    // The runner, with the contract's environment.
    auto req = action("acc", {"/bin/sh", "build.sh", "o"});
    file_w("acc/root/build.sh", script);
    file_w("acc/root/hello.c", hello);
    mkdir_w("acc/root/o");
    buildbarn::runner::RunResponse resp;
    grpc::Status s = call(req, resp);
    ASSERT_TRUE(s.ok()) << describe(s);
    ASSERT_EQ(resp.exit_code(), 0) << read_file(build_dir_ + "/acc/stderr");
    for (const auto& f : files) {
        std::string via_ctl = read_file(outs / ("o/" + f));
        ASSERT_FALSE(via_ctl.empty()) << f;
        EXPECT_EQ(read_file(build_dir_ + "/acc/root/o/" + f), via_ctl) << f << " differs";
    }
    EXPECT_FALSE(read_file(build_dir_ + "/acc/logs/hermetic-audit-summary.json").empty());
}

}  // namespace
