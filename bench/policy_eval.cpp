// policy_eval: what the compiled seccomp policies cost per syscall.
//
// A forked child (pinned to one CPU) installs a policy's filters and times a
// syscall through syscall(2) N times; the same loop without any filter, in the
// same run, is the baseline the ratios are against.
//
// The kernel skips the filters entirely for a syscall every filter allows
// whatever its arguments (the constant-action bitmap, Linux 5.11+): getppid
// under the default profile costs nothing extra. To measure what evaluating
// the filters costs, the "uncached" rows add a one-instruction filter that reads
// an argument (so nothing is cacheable) and compare against that filter alone.
// Reference: a linear-scan table with the same verdicts (what a filter without
// a binary search costs: "a binary tree, not a 300-rule linear scan").
// prctl(PR_GET_DUMPABLE) is a call the kernel can't cache under the default
// profile (prctl has argument rules). The last row is the round trip of a logged
// call (trace: USER_NOTIF, this process answers CONTINUE).
// The BPF path length comes from an interpreter (tests/unit/policy_bpf_interpreter.hpp).
//
//   build/policy_eval [--calls N] [--runs R] [--policy-dir DIR]
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "syscall-policy/parser.hpp"
#include "syscall-policy/policy.hpp"
#include "tests/unit/policy_bpf_interpreter.hpp"

using namespace hermetic::policy;

namespace {

std::string g_dir = HERMETIC_SOURCE_DIR "/policies";

std::optional<std::string> read_profile(const std::string& name) {
    std::ifstream f(g_dir + "/" + name + ".policy");
    if (!f) return std::nullopt;
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

double now_ns() {
    timespec t{};
    ::clock_gettime(CLOCK_MONOTONIC, &t);  // vDSO: no syscall
    return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
}

enum class Call { Getppid, PrctlGetDumpable };

long do_call(Call c) {
    return c == Call::Getppid ? ::syscall(SYS_getppid) : ::syscall(SYS_prctl, PR_GET_DUMPABLE, 0, 0, 0, 0);
}

struct Shared {
    std::atomic<int> listener{-1};
    double ns_per_call = 0;
    int ok = 0;
};

long seccomp_load(unsigned flags, const std::vector<sock_filter>& prog) {
    sock_fprog fprog{static_cast<unsigned short>(prog.size()), const_cast<sock_filter*>(prog.data())};
    return ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog);
}

// One timed run in a child: install `filters`, call getppid `calls` times.
// With `supervise`, this process answers the child's notifications (CONTINUE).
double run_once(const std::vector<Filter>& filters, Call call, long calls, bool supervise) {
    auto* shared = static_cast<Shared*>(
        ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    new (shared) Shared();
    pid_t pid = ::fork();
    if (pid == 0) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(0, &one);
        ::sched_setaffinity(0, sizeof one, &one);
        ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        for (const Filter& f : filters) {
            long fd = seccomp_load(f.needs_listener ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0, f.program);
            if (fd < 0) ::_exit(2);
            if (f.needs_listener) {
                if (supervise)
                    shared->listener.store(static_cast<int>(fd));
                else
                    ::close(static_cast<int>(fd));  // a notification would fail with ENOSYS, never hang
            }
        }
        for (long i = 0; i < 1000; ++i) do_call(call);  // warm up
        const double t = now_ns();
        for (long i = 0; i < calls; ++i) do_call(call);
        shared->ns_per_call = (now_ns() - t) / static_cast<double>(calls);
        shared->ok = do_call(call) >= 0 ? 1 : 0;
        ::_exit(0);
    }
    std::thread supervisor;
    if (supervise) {
        supervisor = std::thread([&] {
            int target = -1;
            while ((target = shared->listener.load()) < 0) ::usleep(100);
            int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
            int fd = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, target, 0));
            ::close(pidfd);
            if (fd < 0) return;
            for (;;) {
                pollfd p{fd, POLLIN, 0};
                if (::poll(&p, 1, -1) < 0) continue;
                if (!(p.revents & POLLIN)) break;  // the child is gone
                seccomp_notif req{};
                if (::ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0) continue;
                seccomp_notif_resp resp{};
                resp.id = req.id;
                resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
                ::ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
            }
            ::close(fd);
        });
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (supervisor.joinable()) supervisor.join();
    const double ns = WIFEXITED(status) && WEXITSTATUS(status) == 0 && shared->ok ? shared->ns_per_call : -1;
    ::munmap(shared, sizeof(Shared));
    return ns;
}

size_t path_length(const std::vector<Filter>& filters, Call call) {
    seccomp_data d{};
    d.nr = call == Call::Getppid ? SYS_getppid : SYS_prctl;
    d.args[0] = call == Call::Getppid ? 0 : PR_GET_DUMPABLE;
    d.arch = AUDIT_ARCH_X86_64;
    size_t total = 0;
    for (const Filter& f : filters) {
        size_t s = 0;
        (void)testing::run_bpf(f.program, d, &s);
        total += s;
    }
    return total;
}

// The same x86-64 verdicts as `table` (filters[0]), as a chain of one
// comparison per syscall number in ascending order; other arches get `table`'s
// program appended unchanged.
std::vector<sock_filter> linear_table(const std::vector<sock_filter>& table) {
    std::vector<std::pair<uint32_t, uint32_t>> verdicts;  // nr, ret
    for (uint32_t nr = 0; nr < 460; ++nr) {
        seccomp_data d{};
        d.nr = static_cast<int>(nr);
        d.arch = AUDIT_ARCH_X86_64;
        verdicts.emplace_back(nr, testing::run_bpf(table, d));
    }
    seccomp_data other{};
    other.nr = 999;
    other.arch = AUDIT_ARCH_X86_64;
    const uint32_t def = testing::run_bpf(table, other);
    std::vector<sock_filter> p;
    p.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)));
    p.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0));
    p.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
    p.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)));
    for (auto [nr, ret] : verdicts) {
        if (ret == def) continue;
        p.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1));
        p.push_back(BPF_STMT(BPF_RET | BPF_K, ret));
    }
    p.push_back(BPF_STMT(BPF_RET | BPF_K, def));
    return p;
}

// Reads an argument and allows: makes every syscall uncacheable for the kernel.
Filter uncacheable() {
    return {{BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[0])), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)},
            false};
}

std::vector<Filter> plus(std::vector<Filter> filters, const Filter& f) {
    // Before a listener filter: the installer's order (the last one may notify).
    filters.insert(filters.begin(), f);
    return filters;
}

double thread_cpu_ms() {
    timespec t{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
    long calls = 200000;
    int runs = 10;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--calls" && i + 1 < argc) calls = std::stol(argv[++i]);
        else if (a == "--runs" && i + 1 < argc) runs = std::stoi(argv[++i]);
        else if (a == "--policy-dir" && i + 1 < argc) g_dir = argv[++i];
        else {
            std::fprintf(stderr, "usage: policy_eval [--calls N] [--runs R] [--policy-dir DIR]\n");
            return 2;
        }
    }
    ParseOptions o;
    o.loader = read_profile;
    try {
        const Policy build = load_profile("build", o);
        (void)compile(build);  // warm the name tables
        clear_compile_cache();
        const double c0 = thread_cpu_ms();
        const CompiledPolicy build_cp = compile(build);
        const double compile_ms = thread_cpu_ms() - c0;
        const CompiledPolicy baseline_cp = compile(baseline_policy());
        const CompiledPolicy strict_cp = compile(load_profile("strict", o));
        const CompiledPolicy trace_cp = compile(load_profile("trace", o));
        const uint64_t no_args[6] = {};
        if (PreparedPolicy(build).decide(Arch::X86_64, SYS_getppid, no_args).action.kind != ActionKind::Allow)
            std::printf("note: build doesn't allow getppid; its row measures the notification path\n");

        struct Row {
            std::string name;
            std::vector<Filter> filters;
            Call call;
            long calls;
            bool supervise;
        };
        const long notify_calls = std::max(1000L, calls / 50);
        const Filter defeat = uncacheable();
        const Filter linear{linear_table(build_cp.filters[0].program), false};
        const std::vector<Row> rows = {
            {"getppid, no filter", {}, Call::Getppid, calls, false},
            {"getppid, build (the kernel's cache applies)", build_cp.filters, Call::Getppid, calls, false},
            {"getppid, strict (the kernel's cache applies)", strict_cp.filters, Call::Getppid, calls, false},
            {"getppid, uncached: 1-insn filter only", {defeat}, Call::Getppid, calls, false},
            {"getppid, uncached: + linear-scan table", {defeat, linear}, Call::Getppid, calls, false},
            {"getppid, uncached: + binary-search table", {defeat, build_cp.filters[0]}, Call::Getppid, calls, false},
            {"getppid, uncached: + build (all filters)", plus(build_cp.filters, defeat), Call::Getppid, calls, false},
            {"getppid, uncached: + baseline (all filters)", plus(baseline_cp.filters, defeat), Call::Getppid, calls, false},
            {"prctl(PR_GET_DUMPABLE), no filter", {}, Call::PrctlGetDumpable, calls, false},
            {"prctl(PR_GET_DUMPABLE), build", build_cp.filters, Call::PrctlGetDumpable, calls, false},
            {"getppid, trace: logged (notify + CONTINUE)", trace_cp.filters, Call::Getppid, notify_calls, true},
        };
        std::printf("policy_eval: syscalls through syscall(2), best of %d interleaved rounds, pinned to CPU 0\n", runs);
        std::printf("build compiles in %.2f ms (thread CPU, cold); filters:", compile_ms);
        for (const Filter& f : build_cp.filters) std::printf(" %zu", f.program.size());
        std::printf(" instructions; digest %s\n\n", build_cp.digest.c_str());
        std::printf("%-46s %9s %9s %9s %8s\n", "configuration", "calls", "ns/call", "ratio", "BPF path");
        // Interleaved (every row once per round, best per row), so a burst of
        // load elsewhere hits every row alike.
        std::vector<double> best(rows.size(), -1);
        for (int round = 0; round < runs; ++round)
            for (size_t i = 0; i < rows.size(); ++i) {
                const double ns = run_once(rows[i].filters, rows[i].call, rows[i].calls, rows[i].supervise);
                if (ns > 0 && (best[i] < 0 || ns < best[i])) best[i] = ns;
            }
        double reference = 0;
        for (size_t i = 0; i < rows.size(); ++i) {
            const Row& r = rows[i];
            // Ratios against the row's own baseline: no filter, or the 1-insn filter.
            if (r.filters.empty() || (r.filters.size() == 1 && r.filters[0].program.size() == 2)) reference = best[i];
            std::printf("%-46s %9ld %9.1f %8.2fx %8zu\n", r.name.c_str(), r.calls, best[i],
                        reference > 0 ? best[i] / reference : 0.0, path_length(r.filters, r.call));
        }
        std::printf("\nratio: against the row's baseline above it (no filter, or the 1-insn filter for the uncached rows)\n");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "policy_eval: %s\n", e.what());
        return 1;
    }
    return 0;
}
