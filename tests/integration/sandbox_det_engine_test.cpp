// The determinism engine on the real kernel: probes run inside mini sandboxes
// (new user, pid, mount, UTS, IPC and time namespaces, the baseline plus the
// determinism policy, uid 1000), each twice under perturbation (real time at
// least a second apart, another CPU, the source tree created in another order),
// and their outputs compared byte for byte.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <iostream>
#include <thread>

#include "common/sha256.hpp"
#include "sandbox/determinism/determinism.hpp"
#include "sandbox/determinism/mini_sandbox.hpp"
#include "tests/support/process.hpp"

namespace hermetic::sandbox::determinism {
namespace {

using namespace std::chrono_literals;

std::string probe(const std::string& name) { return "/host/" + name; }

MiniSandboxOptions options(std::vector<std::string> argv) {
    MiniSandboxOptions o;
    o.argv = std::move(argv);
    o.host_dir_ro = HERMETIC_PROBE_DIR;
    o.config.seed = 42;
    o.config.epoch = 1700000000;
    o.config.cpus = 3;
    return o;
}

MiniSandboxResult run(const MiniSandboxOptions& o) {
    MiniSandboxResult r = run_mini_sandbox(o);
    EXPECT_TRUE(r.err.find("mini sandbox:") == std::string::npos) << r.err;
    return r;
}

int cpus_online() { return static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN)); }

bool rdtsc_virtualized(const Summary& s) {
    for (const auto& u : s.unvirtualizable)
        if (u.rfind("rdtsc", 0) == 0) return false;
    return true;
}

// Lines that report sources the summary declares unvirtualizable on this host.
std::string without_unvirtualizable(std::string out, const Summary& s) {
    if (!rdtsc_virtualized(s)) out = std::regex_replace(out, std::regex("(^|\n)rdtsc [^\n]*"), "$1rdtsc (not virtualized here)");
    return out;
}

std::string first_difference(const std::string& a, const std::string& b) {
    std::istringstream ia(a), ib(b);
    std::string la, lb;
    for (int n = 1;; ++n) {
        bool ga = static_cast<bool>(std::getline(ia, la)), gb = static_cast<bool>(std::getline(ib, lb));
        if (!ga && !gb) return "no difference";
        if (ga != gb || la != lb)
            return "outputs differ at line " + std::to_string(n) + ":\n  first:  " + (ga ? la : "<end>") +
                   "\n  second: " + (gb ? lb : "<end>");
    }
}

// Runs twice: the second time on another CPU, at least 1.1 s later, with the
// source files created in reverse order. Expects the same output.
std::pair<MiniSandboxResult, MiniSandboxResult> twice(MiniSandboxOptions o) {
    o.cpu = 0;
    MiniSandboxResult a = run(o);
    std::this_thread::sleep_for(1100ms);
    o.cpu = cpus_online() > 1 ? 1 : 0;
    std::reverse(o.files.begin(), o.files.end());
    // Directories must still come before what they contain.
    auto dirs_end = std::stable_partition(o.files.begin(), o.files.end(), [](const auto& f) { return f.first.back() == '/'; });
    std::sort(o.files.begin(), dirs_end);  // parents before their children
    MiniSandboxResult b = run(o);
    EXPECT_EQ(a.status, 0) << a.err;
    EXPECT_EQ(b.status, 0) << b.err;
    std::string ao = without_unvirtualizable(a.out, a.summary), bo = without_unvirtualizable(b.out, b.summary);
    EXPECT_TRUE(ao == bo) << first_difference(ao, bo);
    return {std::move(a), std::move(b)};
}

long long field(const std::string& out, const std::string& key) {
    std::smatch m;
    std::regex re("(^|\n)" + key + " (-?[0-9]+)");
    if (!std::regex_search(out, m, re)) return -1;
    return std::stoll(m[2]);
}

class DetTime : public ::testing::TestWithParam<bool> {};

// In-process (the patched vDSO reads a page the supervisor keeps) and trapped
// (every read is a syscall the supervisor answers): the same clock either way.
TEST_P(DetTime, EveryReaderSeesTheLogicalClock) {
    auto o = options({probe("det_time"), "all"});
    o.config.in_process_clock = GetParam();
    auto [a, b] = twice(o);
    // Seconds of every realtime reader are the epoch (the clock advances by 1 us a read).
    for (const char* k : {"realtime", "gettimeofday", "time", "raw-syscall realtime", "vdso realtime"})
        EXPECT_EQ(field(a.out, k), 1700000000) << k << "\n" << a.out;
    EXPECT_EQ(field(a.out, "monotonic"), 100) << a.out;  // uptime_at_epoch
    EXPECT_NE(a.out.find("date 2023-11-14 22:13:20"), std::string::npos) << a.out;
    EXPECT_GT(a.summary.by_syscall["clock_gettime"] + a.summary.by_syscall["clock read (in-process vDSO)"], 10u);
    if (GetParam()) EXPECT_GT(a.summary.by_syscall["clock read (in-process vDSO)"], 5u);
    else EXPECT_EQ(a.summary.by_syscall["clock read (in-process vDSO)"], 0u);
    if (rdtsc_virtualized(a.summary)) {
        EXPECT_NE(a.out.find("rdtsc 1000"), std::string::npos) << a.out;  // 100 s at 1 GHz
        EXPECT_GE(a.summary.by_syscall["rdtsc"], 1u);
        EXPECT_GE(a.summary.by_syscall["rdtscp"], 1u);
    } else {
        std::cerr << "rdtsc is not virtualizable on this host: " << a.summary.unvirtualizable.size() << " sources listed\n";
    }
    EXPECT_FALSE(a.deviations.empty());
    for (const auto& n : a.summary.notes) ADD_FAILURE() << "note: " << n;
}

INSTANTIATE_TEST_SUITE_P(Clock, DetTime, ::testing::Values(true, false),
                         [](const auto& param_info) { return param_info.param ? "in_process" : "trapped"; });

// A statically linked program (its libc finds the vDSO itself): same clock.
TEST(DetClock, StaticallyLinkedProgram) {
    // Not under /tmp: the mini sandbox stages its root there.
    std::string dir = HERMETIC_BUILD_DIR "/det-static-" + std::to_string(::getpid());
    ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
    std::string cmd = "gcc -static -O2 -I" HERMETIC_SOURCE_DIR "/tests/probes " HERMETIC_SOURCE_DIR
                      "/tests/probes/det_time.c -o " + dir + "/det_time_static 2>&1";
    int rc = std::system(cmd.c_str());
    if (rc != 0) {
        (void)std::filesystem::remove_all(dir);
        GTEST_SKIP() << "no static libc to link with";
    }
    auto o = options({"/host/det_time_static", "all"});
    o.host_dir_ro = dir;
    auto [a, b] = twice(o);
    (void)std::filesystem::remove_all(dir);
    for (const char* k : {"realtime", "gettimeofday", "time", "vdso realtime"}) EXPECT_EQ(field(a.out, k), 1700000000) << k << a.out;
    EXPECT_GT(a.summary.by_syscall["clock read (in-process vDSO)"], 5u);
}

TEST(DetClock, EpochAndStepAreConfigurable) {
    auto o = options({probe("det_time"), "all"});
    o.config.epoch = 315532800;
    auto r = run(o);
    EXPECT_EQ(field(r.out, "time"), 315532800) << r.out;
}

// Waits computed from virtual time last as long in real time: not forever, not zero.
class DetWait : public ::testing::TestWithParam<const char*> {};

TEST_P(DetWait, LastsItsTimeoutAndAdvancesTheClock) {
    auto o = options({probe("det_time"), GetParam()});
    auto r = run(o);
    ASSERT_EQ(r.status, 0) << r.err << r.out;
    double elapsed = std::stod(r.out.substr(r.out.find("elapsed ") + 8));
    std::string mode = GetParam();
    double want = mode == "select" || mode == "poll" ? 0.6 : mode == "cond-wait" ? 1.2 : 1.0;
    // Virtual time moved on by the timeout (plus a few microsecond ticks)...
    EXPECT_GE(elapsed, want) << r.out;
    EXPECT_LT(elapsed, want + 0.01) << r.out;
    // ...and so did real time, about as much.
    EXPECT_GT(r.wall_ms, want * 1000 * 0.9) << r.out;
    EXPECT_LT(r.wall_ms, want * 1000 + 3000) << r.out;
    for (const auto& n : r.summary.notes) ADD_FAILURE() << "note: " << n;
    for (const auto& [what, count] : r.summary.denied) ADD_FAILURE() << "denied: " << what << " x" << count;
}

INSTANTIATE_TEST_SUITE_P(Modes, DetWait,
                         ::testing::Values("sleep-rel", "sleep-abs", "sleep-abs-realtime", "cond-wait", "timerfd-abs",
                                           "select", "poll"),
                         [](const auto& param_info) {
                             std::string s = param_info.param;
                             std::replace(s.begin(), s.end(), '-', '_');
                             return s;
                         });

TEST(DetClock, BusyWaitOnTheClockFinishes) {
    auto [a, b] = twice(options({probe("det_time"), "busy"}));
    EXPECT_NE(a.out.find("busy reads"), std::string::npos) << a.out;
}

// A CPU-time read counts as 1000 steps of work (10 ms at the default step): a
// loop that works "for 2 s of CPU" ends after 200 reads, the same number every
// run, instead of 200,000 trapped reads at one step each.
TEST(DetClock, ACpuTimeBudgetEndsAfterAHundredReadsPerSecond) {
    auto [a, b] = twice(options({probe("det_time"), "cpu-budget"}));
    EXPECT_NE(a.out.find("cpu-budget reads 200\n"), std::string::npos) << a.out;
}

// Runs `o` with a switch of its configuration on, then off; both must succeed
// without a note from the engine.
std::pair<MiniSandboxResult, MiniSandboxResult> with_and_without(MiniSandboxOptions o, bool DeterminismConfig::* what) {
    auto once = [&](bool on) {
        o.config.*what = on;
        MiniSandboxResult r = run(o);
        EXPECT_EQ(r.status, 0) << r.err;
        for (const auto& n : r.summary.notes) ADD_FAILURE() << "note: " << n;
        return r;
    };
    MiniSandboxResult a = once(true);
    return {std::move(a), once(false)};
}

// The loader's rdtsc (it times its start-up: ~8 reads per dynamic process,
// each a ptrace stop): once a site trapped, the next processes run it through
// a trampoline that reads the clock page (rdtsc_patch.hpp). LD_DEBUG=statistics
// prints what the loader measured with those reads: the same bytes as with
// every read trapped, and every read is still counted.
TEST(DetClock, TheLoadersRdtscIsAnsweredInTheProcessWithTheSameValues) {
    const std::string once = "LD_DEBUG=statistics /bin/true";
    auto o = options({"/bin/sh", "-c", "{ " + once + "; " + once + "; " + once + "; } 2>&1"});
    // Off: no exec stub hello, no patch.
    auto [fast, trapped] = with_and_without(o, &DeterminismConfig::in_process_stat);
    EXPECT_NE(fast.out.find("total startup time in dynamic loader"), std::string::npos) << fast.out;
    EXPECT_EQ(fast.out, trapped.out) << first_difference(fast.out, trapped.out);
    auto& f = fast.summary.by_syscall;
    auto& t = trapped.summary.by_syscall;
    EXPECT_EQ(f["rdtsc"] + f["rdtsc (in-process)"], t["rdtsc"]);
    EXPECT_GE(f["rdtsc (in-process)"], 3 * 6u) << "the three /bin/true start-ups";
    EXPECT_LE(f["rdtsc"], t["rdtsc"] / 3);
}

// glibc's loader registers an rseq area at every start-up; the policy denies
// it (the kernel would write the real CPU there). Once one process trapped
// there, the next ones are answered in the process, with the same errno
// (glibc then reports no rseq area) and a denial in the audit for each.
TEST(DetPolicy, TheLoadersRseqIsDeniedInTheProcessLikeATrappedOne) {
    const std::string twice_identity = probe("det_random") + " identity; " + probe("det_random") + " identity";
    auto [fast, trapped] = with_and_without(options({"/bin/sh", "-c", twice_identity}), &DeterminismConfig::in_process_rseq);
    EXPECT_NE(fast.out.find("rseq_size 0\n"), std::string::npos) << fast.out;
    EXPECT_EQ(fast.out, trapped.out) << first_difference(fast.out, trapped.out);
    auto& f = fast.summary.by_syscall;
    auto& t = trapped.summary.by_syscall;
    EXPECT_EQ(t["rseq"], 3u) << "sh and two probes";
    EXPECT_EQ(f["rseq"] + f["rseq (in-process)"], t["rseq"]);
    EXPECT_EQ(f["rseq (in-process)"], 2u) << "the probes, after sh trapped once";
    EXPECT_EQ(fast.summary.by_class["policy"], trapped.summary.by_class["policy"]);
}

// The loader's stat of each library it opens (before the C library's stat
// wrappers, patched to the in-process table, exist): once it trapped, the next
// processes call the table there, through a trampoline that first checks the
// exec stub mapped it. The same output and stat answers (file metadata is
// printed), every stat still counted, one notification fewer per process.
TEST(DetStat, TheLoadersStatIsAnsweredInTheProcessLikeATrappedOne) {
    const std::string body = probe("det_random") + " identity; stat -c '%d %i %s %Y %Z' /usr/lib/x86_64-linux-gnu/libc.so.6 /bin/true; /bin/true; /bin/true";
    auto [fast, trapped] = with_and_without(options({"/bin/sh", "-c", body}), &DeterminismConfig::in_process_loader_stat);
    EXPECT_EQ(fast.out, trapped.out) << first_difference(fast.out, trapped.out);
    auto& f = fast.summary.by_syscall;
    auto& t = trapped.summary.by_syscall;
    EXPECT_GE(std::count(fast.out.begin(), fast.out.end(), '\n'), 3) << fast.out;
    EXPECT_EQ(f["newfstatat"] + f["stat family (in-process)"], t["newfstatat"] + t["stat family (in-process)"]);
    EXPECT_EQ(t["newfstatat"] - f["newfstatat"], 4u) << "the loader's stat of libc in the four processes after sh";
    EXPECT_EQ(fast.summary.by_class, trapped.summary.by_class);
}

// The sandbox pool gives the supervisor the likely policy ahead of the job;
// a job under it comes without its own and is decided exactly the same. A job
// whose digest names another policy is refused, not run under the wrong one.
TEST(DetPolicy, APolicyPreparedAheadDecidesLikeOneThatCameWithTheJob) {
    auto o = options({probe("det_random"), "identity"});
    MiniSandboxResult with = run(o);
    o.policy_ahead = true;
    MiniSandboxResult ahead = run(o);
    ASSERT_EQ(with.status, 0) << with.err;
    ASSERT_EQ(ahead.status, 0) << ahead.err;
    EXPECT_EQ(ahead.out, with.out) << first_difference(ahead.out, with.out);
    EXPECT_EQ(ahead.summary.by_class, with.summary.by_class);

    o.config.policy_digest = std::string(64, '0');
    MiniSandboxResult other = run_mini_sandbox(o);
    EXPECT_NE(other.status, 0);
    EXPECT_NE(other.err.find("is not the one prepared ahead"), std::string::npos) << other.err;
}

// A thousand reads served in the process, then an exec: the clock the new image
// reads continues from the last of them (the supervisor counts them before the
// old address space is gone), it does not go back.
TEST(DetClock, AnExecDoesNotTakeTheClockBack) {
    auto [a, b] = twice(options({probe("det_time"), "exec-order"}));
    auto secs = [&](const std::string& key) {
        std::smatch m;
        EXPECT_TRUE(std::regex_search(a.out, m, std::regex(key + " ([0-9]+)\\.([0-9]{9})"))) << a.out;
        return m.size() == 3 ? std::stoll(m[1]) * 1'000'000'000 + std::stoll(m[2]) : 0;
    };
    int64_t before = secs("before-exec"), after = secs("after-exec");
    EXPECT_GT(after, before) << a.out;
}

TEST(DetRandom, SeededPerReaderAndDifferentPerSeed) {
    auto o = options({probe("det_random"), "identity"});
    auto [a, b] = twice(o);
    o.config.seed = 43;
    auto c = run(o);
    ASSERT_EQ(c.status, 0) << c.err;
    for (const char* k : {"at_random", "getrandom", "getrandom-raw", "urandom", "urandom2", "random", "child0", "child1",
                          "/proc/sys/kernel/random/uuid:", "/proc/sys/kernel/random/boot_id:"}) {
        std::regex re(std::string("(^|\n)") + k + " ([^\n]+)");
        std::smatch ma, mc;
        ASSERT_TRUE(std::regex_search(a.out, ma, re)) << k << "\n" << a.out;
        ASSERT_TRUE(std::regex_search(c.out, mc, re)) << k << "\n" << c.out;
        EXPECT_NE(ma[2].str(), mc[2].str()) << k;
    }
    // Two reads, two children: different bytes (streams, not repeats).
    EXPECT_NE(field(a.out, "urandom"), field(a.out, "urandom2"));
    EXPECT_EQ(a.out.find("cannot open"), std::string::npos) << a.out;
}

TEST(DetIdentity, HostFactsAreFixed) {
    auto o = options({probe("det_random"), "identity"});
    o.config.uname_release = "9.9.9-test";
    auto r = run(o);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("uname Linux hermetic 9.9.9-test #1 SMP PREEMPT_DYNAMIC x86_64"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("affinity 3 nprocs 3 conf 3 onln 3"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("getcpu 0 0 sched_getcpu 0"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("sysinfo uptime 100 ram 8589934592 procs 1"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("/proc/sys/kernel/osrelease: 9.9.9-test"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("/proc/uptime: 100.00 0.00"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("/proc/cpuinfo: processor\t: 0\nvendor_id\t: HermeticCPU"), std::string::npos) << r.out;
    // Nothing of the host: its kernel release, its hostname.
    struct utsname u{};
    ::uname(&u);
    EXPECT_EQ(r.out.find(u.release), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("hostname hermetic\n"), std::string::npos) << r.out;
    for (const auto& n : r.summary.notes) ADD_FAILURE() << "note: " << n;
}

std::vector<std::pair<std::string, std::string>> many_files(int n) {
    std::vector<std::pair<std::string, std::string>> files = {{"big/", ""}};
    for (int i = 0; i < n; ++i) {
        char name[64];
        // Names that sort differently from creation order and from hash order.
        std::snprintf(name, sizeof name, "big/f%05d-%x", (i * 7919) % n, i * 2654435761u);
        files.push_back({name, std::to_string(i)});
    }
    return files;
}

TEST(DetDirs, ThreeThousandEntriesSortedOnAnyBufferSize) {
    for (const char* bufsize : {"100", "4096", "65536"}) {
        auto o = options({probe("det_fs"), "list", "/build/big", bufsize});
        o.files = many_files(3000);
        auto [a, b] = twice(o);
        EXPECT_NE(a.out.find("entries 3002\n"), std::string::npos) << a.out.substr(0, 400);
        EXPECT_NE(a.out.find("readdir entries 3002"), std::string::npos);
        EXPECT_NE(a.out.find("rewound first: .\n"), std::string::npos);
        EXPECT_NE(a.out.find("after f00000-0: f00001-"), std::string::npos);  // ., .., f00000, then the fourth
        // Sorted by name bytes.
        std::vector<std::string> names;
        std::istringstream in(a.out);
        std::string line;
        while (std::getline(in, line) && names.size() < 3002) names.push_back(line.substr(0, line.find(' ')));
        EXPECT_TRUE(std::is_sorted(names.begin(), names.end())) << bufsize;
        EXPECT_EQ(a.summary.denied.size(), 0u);
    }
}

TEST(DetFiles, MetadataIsVirtualAndOrdered) {
    auto o = options({probe("det_fs"), "create"});
    o.files = {{"src.txt", "hello"}};
    auto [a, b] = twice(o);
    EXPECT_NE(a.out.find("c newer than b: yes"), std::string::npos) << a.out;
    // Files of the source tree, the system and /dev show the epoch.
    auto section = [&](const std::string& path) {
        auto p = a.out.find("== " + path + "\n");
        return p == std::string::npos ? std::string() : a.out.substr(p, a.out.find("\n==", p + 1) - p);
    };
    for (const char* path : {"/build/src.txt", "/usr/bin/env", "/dev/null"})
        EXPECT_NE(section(path).find("mtime 1700000000.000000000"), std::string::npos) << section(path);
    // Explicit times are kept.
    EXPECT_NE(section("/build/made/a").find("mtime 1234567890.000000500"), std::string::npos) << section("/build/made/a");
    // ... also when set on the open file after writing it, before its close (cp -p).
    EXPECT_NE(section("/build/made/d").find("mtime 1234567890.000000700"), std::string::npos) << section("/build/made/d");
    // Build-created files carry logical times after the epoch.
    EXPECT_EQ(section("/build/made/b").find("mtime 1700000000.000000000"), std::string::npos) << section("/build/made/b");
    EXPECT_NE(section("/build/made/b").find("mtime 1700000000.00"), std::string::npos) << section("/build/made/b");
    // Created files: born during the build.
    EXPECT_EQ(section("/build/made/c").find("btime 1700000000.000000000"), std::string::npos) << section("/build/made/c");
    // The served random device still looks like one.
    EXPECT_NE(section("/dev/urandom").find("mode 20666"), std::string::npos) << section("/dev/urandom");
    // No host uid/gid, inode or device numbers from the host's file systems.
    struct stat st{};
    ASSERT_EQ(::stat("/usr/bin/env", &st), 0);
    EXPECT_EQ(section("/usr/bin/env").find("ino " + std::to_string(st.st_ino) + " "), std::string::npos);
    EXPECT_NE(section("/build/src.txt").find("uid 1000 gid 1000"), std::string::npos) << section("/build/src.txt");
    for (const auto& n : a.summary.notes) ADD_FAILURE() << "note: " << n;
    for (const auto& [what, count] : a.summary.denied) ADD_FAILURE() << "denied: " << what << " x" << count;
}

// The in-process stat path (fast_stat.hpp) answers exactly what the supervisor
// answers (the same run with it off), every round alike, and most calls never
// reach the supervisor: system files, missing files, a path through a file.
// Files the build can change (/build) and the served ones (/dev/urandom) still
// trap, and their answers don't change either.
TEST(DetFiles, InProcessStatAnswersLikeTheSupervisorWithoutTrapping) {
    const int rounds = 200;
    const std::vector<std::string> paths = {"/usr/bin/env", "/usr/include", "/usr", "/no/such/file",
                                            "/usr/bin/env/x", "/build/src.txt", "/dev/null", "/dev/urandom"};
    auto run_with = [&](bool in_process) {
        std::vector<std::string> argv = {probe("det_fs"), "repeat", std::to_string(rounds)};
        argv.insert(argv.end(), paths.begin(), paths.end());
        auto o = options(argv);
        o.files = {{"src.txt", "hello"}};
        o.config.in_process_stat = in_process;
        MiniSandboxResult r = run(o);
        EXPECT_EQ(r.status, 0) << r.err;
        for (const auto& n : r.summary.notes) ADD_FAILURE() << "note: " << n;
        return r;
    };
    MiniSandboxResult fast = run_with(true), trapped = run_with(false);
    EXPECT_EQ(fast.out, trapped.out) << first_difference(fast.out, trapped.out);
    size_t steady = 0;
    for (size_t at = 0; (at = fast.out.find("rounds that differ: 0\n", at)) != std::string::npos; ++at) ++steady;
    EXPECT_EQ(steady, paths.size()) << fast.out;
    for (const std::string& p : paths) EXPECT_NE(fast.out.find("== " + p + "\n"), std::string::npos) << p;
    EXPECT_NE(fast.out.find("stat /no/such/file: No such file or directory"), std::string::npos) << fast.out;
    EXPECT_NE(fast.out.find("stat /usr/bin/env/x: Not a directory"), std::string::npos) << fast.out;
    auto stat_traps = [](MiniSandboxResult& r) {
        return r.summary.by_syscall["newfstatat"] + r.summary.by_syscall["statx"] + r.summary.by_syscall["stat"] +
               r.summary.by_syscall["lstat"] + r.summary.by_syscall["fstat"];
    };
    // 8 paths x 4 calls (no fstat of the two that don't open) x 200 rounds.
    // With the path on, only /build/src.txt (the build can change it) and
    // /dev/urandom (served) trap, besides each call site's first call and each
    // file's first answer (/dev/null, a device node, is answered in the process).
    const uint64_t calls = (paths.size() * 4 - 2) * rounds;
    EXPECT_GE(stat_traps(trapped), calls);
    EXPECT_LT(stat_traps(fast), 2 * 4 * rounds + 100u) << "of " << calls;
    // Every call is a deviation either way: those answered in the process are
    // counted there and recorded in batches (per process, before it exits).
    const uint64_t in_process = fast.summary.by_syscall["stat family (in-process)"];
    EXPECT_GT(in_process, calls / 2);
    EXPECT_EQ(stat_traps(fast) + in_process, stat_traps(trapped));
    uint64_t batched = 0;
    for (const Deviation& d : fast.deviations)
        if (d.syscall == "stat_family" && d.args == "in-process") batched += d.count;
    EXPECT_EQ(batched, in_process);
}

// Counted once: a forked child starts with a copy of its parent's counters (the
// parent records those), and an exec takes in the old image's counts before
// they are gone. A program stats, forks, its child stats, it stats again, three
// times from a shell: as many stat deviations as with every stat trapped.
TEST(DetFiles, InProcessStatsAreCountedOnceAcrossForkAndExec) {
    const std::string det_fs = probe("det_fs");
    const std::string once = det_fs + " fork-repeat 20 /usr/bin/env /no/such/file /usr >/dev/null";
    auto count = [&](bool in_process) {
        auto o = options({"/bin/sh", "-c", once + "; " + once + "; " + once});
        o.config.in_process_stat = in_process;
        MiniSandboxResult r = run(o);
        EXPECT_EQ(r.status, 0) << r.err;
        auto& s = r.summary.by_syscall;
        return std::pair{s["newfstatat"] + s["statx"] + s["stat"] + s["lstat"] + s["fstat"],
                         s["stat family (in-process)"]};
    };
    auto [fast_traps, fast_in_process] = count(true);
    auto [traps, none] = count(false);
    EXPECT_EQ(none, 0u);
    EXPECT_GT(fast_in_process, 3 * 3 * 20 * 3u);
    EXPECT_EQ(fast_traps + fast_in_process, traps) << fast_traps << " in-process " << fast_in_process;
}

// A program's next processes find its stat wrappers already sent to the table
// (the sites its first process trapped at: same addresses, ASLR is off): the
// third run of the same program traps only at the loader's own first stat
// (before the C library is mapped). Without the patching it would also trap at
// the first call of both wrappers, fstatat and statx.
TEST(DetFiles, LaterProcessesOfAProgramStartWithItsStatSitesPatched) {
    const std::string det_fs = probe("det_fs");
    const std::string once = det_fs + " repeat 1 /usr/bin/env /usr /no/such/file >/dev/null";
    auto o = options({"/bin/sh", "-c", once + "; " + once + "; " + once});
    MiniSandboxResult r = run(o);
    ASSERT_EQ(r.status, 0) << r.err;
    std::map<pid_t, int> stat_traps;  // per det_fs process, in order of pids
    for (const Deviation& d : r.deviations)
        if (d.exe.find("det_fs") != std::string::npos && d.cls == "fs-metadata" && d.args != "in-process")
            stat_traps[d.real_pid] += 1;
    ASSERT_EQ(stat_traps.size(), 3u);
    auto first = stat_traps.begin()->second, last = stat_traps.rbegin()->second;
    EXPECT_GE(first, 3) << "the loader's, the fstatat and the statx wrappers' first calls";
    std::string last_calls;
    for (const Deviation& d : r.deviations)
        if (d.real_pid == stat_traps.rbegin()->first && d.cls == "fs-metadata") last_calls += d.syscall + "(" + d.args + ") " + d.value + "\n";
    EXPECT_LE(last, 1) << "only the loader's first stat:\n" << last_calls;
}

// ---- the policy decides every notification ---------------------------------------

// Denials by named rules reach the supervisor (the filters route them when it
// exists): it answers with the rule's errno and records a "denied" deviation;
// the policy default (unnamed numbers) stays the kernel's, unrecorded.
TEST(DetPolicy, NamedDenialsAreAnsweredWithTheRulesErrnoAndRecorded) {
    auto o = options({probe("denied"), "unshare", "clone_newuser", "mount", "keyctl", "ptrace", "socket_packet", "unnamed"});
    MiniSandboxResult r = run(o);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "unshare 1\nclone_newuser 1\nmount 1\nkeyctl 1\nptrace 1\nsocket_packet 97\nunnamed 38\n");
    std::map<std::string, std::vector<std::string>> denied;  // syscall -> "value class"
    for (const Deviation& d : r.deviations) {
        EXPECT_NE(d.syscall_nr, 1000) << "the policy default was recorded";
        if (d.action == DeviationAction::Denied) denied[d.syscall].push_back(d.value + " " + d.cls);
    }
    const std::map<std::string, std::string> want = {
        {"unshare", "-EPERM policy"}, {"clone", "-EPERM policy"},  {"mount", "-EPERM policy"},
        {"keyctl", "-EPERM policy"},  {"ptrace", "-EPERM policy"}, {"socket", "-EAFNOSUPPORT network"},
    };
    for (const auto& [name, v] : want) EXPECT_EQ(denied[name], std::vector<std::string>{v}) << name;
    EXPECT_GE(r.summary.by_class["network"], 1u);
    // Policy denials are verdicts, not failures of the engine.
    for (const auto& [what, count] : r.summary.denied) ADD_FAILURE() << "failed closed: " << what << " x" << count;
}

// The supervisor decides with the policy the job's evidence names, or not at
// all: a configuration whose policy doesn't match the attested digest is
// refused with that reason, and the build never runs (its listener has no one
// to answer it: the build is killed, not let through).
TEST(DetPolicy, ThePolicyMustBeTheAttestedOne) {
    auto o = options({"/bin/sh", "-c", "echo ran"});
    o.config.policy = std::make_shared<const policy::Policy>(with_determinism(policy::baseline_policy()));
    o.config.policy_digest = std::string(64, '0');
    MiniSandboxResult r = run_mini_sandbox(o);
    EXPECT_NE(r.status, 0);
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find("does not match its digest"), std::string::npos) << r.err;

    // The right digest (either routing of denials): it runs.
    o.config.policy_digest = sha256_hex(policy::canonical_text(*o.config.policy, {.route_denials_to_supervisor = true}));
    r = run(o);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "ran\n");
}

// A policy that logs clock_gettime instead of virtualizing it: the call runs
// for real (the patched vDSO makes it a syscall; no clock page serves it) and
// is recorded as "logged"; gettimeofday stays virtualized.
TEST(DetPolicy, ALoggedClockReadRunsForRealAndIsRecorded) {
    policy::Policy p = with_determinism(policy::baseline_policy());
    p.rules.push_back({"clock_gettime", {}, policy::Action::log(), "test: log clock_gettime"});
    auto o = options({probe("det_time"), "all"});
    o.config.policy = std::make_shared<const policy::Policy>(p);
    MiniSandboxResult r = run(o);
    ASSERT_EQ(r.status, 0) << r.err;
    const long long now = static_cast<long long>(::time(nullptr));
    EXPECT_NEAR(static_cast<double>(field(r.out, "realtime")), static_cast<double>(now), 300.0) << r.out;
    EXPECT_NEAR(static_cast<double>(field(r.out, "vdso realtime")), static_cast<double>(now), 300.0) << r.out;
    EXPECT_EQ(field(r.out, "gettimeofday"), 1700000000) << r.out;
    size_t logged = 0;
    for (const Deviation& d : r.deviations) {
        if (d.syscall != "clock_gettime") continue;
        EXPECT_EQ(d.action, DeviationAction::Logged) << d.value;
        EXPECT_EQ(d.cls, "policy");
        EXPECT_EQ(d.value, "allowed");
        ++logged;
    }
    EXPECT_GE(logged, 9u);  // one per clock the probe reads, at least
    EXPECT_EQ(r.summary.by_syscall["clock read (in-process vDSO)"], 0u);
    for (const auto& [what, count] : r.summary.denied) ADD_FAILURE() << "failed closed: " << what << " x" << count;

    // The same probe under the default policy: the logical clock.
    MiniSandboxResult d = run(options({probe("det_time"), "all"}));
    ASSERT_EQ(d.status, 0) << d.err;
    EXPECT_EQ(field(d.out, "realtime"), 1700000000) << d.out;
}

}  // namespace
}  // namespace hermetic::sandbox::determinism
