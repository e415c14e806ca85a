// What the audit writer costs per deviation: events/s and bytes/event while
// events are written one by one, once the bound is reached (aggregation), with
// --trace, and with several supervisor threads; and what finish() costs (two
// signatures, three fsyncs). Prints numbers; asserts nothing about time.
// For real figures run a Release build: build-rel/unit_daemon_audit_bench_test.
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include <gtest/gtest.h>

#include "daemon/audit_writer.hpp"
#include "daemon/signing_key.hpp"
#include "tests/support/temp_dir.hpp"

namespace hermetic::daemon {
namespace {

using Clock = std::chrono::steady_clock;

// A mix like a compiler's: mostly clock reads, some random bytes and
// directory listings, the occasional denied socket.
sandbox::Deviation typical(uint64_t i, bool trace) {
    sandbox::Deviation d;
    d.virtual_time_ns = static_cast<int64_t>(315532800'000000000 + i * 1000);
    d.real_pid = 123456;
    d.virtual_pid = static_cast<pid_t>(2 + i % 8);
    d.exe = "/usr/lib/gcc/x86_64-linux-gnu/12/cc1";
    switch (i % 16) {
        case 0:
            d.syscall = "getrandom", d.syscall_nr = 318, d.cls = "random", d.args = "buf, 16, 0";
            d.value = "0x3f9a1c0e6a9b7d44e1a0b3c2d1e0f9a8";
            break;
        case 1:
            d.syscall = "getdents64", d.syscall_nr = 217, d.cls = "fs-order", d.args = "fd 3 (/build/src)";
            d.action = sandbox::DeviationAction::Reordered;
            d.value = "12 entries, sorted";
            break;
        case 2:
            d.syscall = "socket", d.syscall_nr = 41, d.cls = "network", d.args = "AF_INET, SOCK_STREAM, 0";
            d.action = sandbox::DeviationAction::Denied;
            d.value = "-EACCES";
            break;
        default:
            d.syscall = "clock_gettime", d.syscall_nr = 228, d.cls = "time", d.args = "CLOCK_REALTIME";
            d.value = "315532800.000" + std::to_string(i % 1000000);
    }
    if (trace) d.real_value = "1712345678." + std::to_string(i);
    return d;
}

struct Run {
    double record_us;        // what record() costs the supervisor, per event
    double events_per_s;     // end to end: every event encoded, hashed, written
    double bytes_per_record; // audit.log bytes per event record
    double finish_ms;        // drain + aggregates + sign twice + fsync
    uint64_t aggregated;
};

// What a supervisor pays per record() when events come at the pace of trapped
// syscalls (one per `gap`, a seccomp user-notification round trip), so the
// writer thread keeps up: the time inside record() alone.
double paced_record_us(uint64_t events, std::chrono::nanoseconds gap) {
    test::TempDir tmp("hermetic-audit-bench");
    std::string dir = tmp / "job";
    ::mkdir(dir.c_str(), 0700);
    AuditWriter w(dir, {"bench-job", 256ull << 20, false});
    std::chrono::nanoseconds inside{0};
    for (uint64_t i = 0; i < events; ++i) {
        sandbox::Deviation d = typical(i, false);
        auto a = Clock::now();
        w.record(std::move(d));
        auto b = Clock::now();
        inside += b - a;
        while (Clock::now() - b < gap) {
        }
    }
    return std::chrono::duration<double, std::micro>(inside).count() / static_cast<double>(events);
}

Run measure(uint64_t events, uint64_t bound, bool trace, int threads) {
    test::TempDir tmp("hermetic-audit-bench");
    std::string state = tmp / "state";
    ::mkdir(state.c_str(), 0700);
    SigningKeys keys(state);
    std::string dir = tmp / "job";
    ::mkdir(dir.c_str(), 0700);
    AuditWriter w(dir, {"bench-job", bound, trace});
    // Events are built before the clock starts: only the writer is measured.
    std::vector<std::vector<sandbox::Deviation>> per(static_cast<size_t>(threads));
    for (uint64_t i = 0; i < events; ++i) per[i % static_cast<uint64_t>(threads)].push_back(typical(i, trace));
    auto t0 = Clock::now();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&, t] {
            for (auto& d : per[static_cast<size_t>(t)]) w.record(std::move(d));
        });
    for (auto& t : ts) t.join();
    double record_secs = std::chrono::duration<double>(Clock::now() - t0).count();
    JobEvidence ev;
    ev.argv = {"make"};
    ev.policy_digest = ev.source_digest = std::string(64, 'a');
    ev.rootfs.digest = std::string(64, 'b');
    ev.state = "succeeded";
    auto t1 = Clock::now();
    AuditFinish f = w.finish(ev, *keys.current());
    double finish_ms = std::chrono::duration<double, std::milli>(Clock::now() - t1).count();
    double total = std::chrono::duration<double>(Clock::now() - t0).count();
    struct stat st{};
    ::stat((dir + "/audit.log").c_str(), &st);
    double count = static_cast<double>(events);
    return {record_secs * 1e6 / count * threads, count / total,
            static_cast<double>(st.st_size) / static_cast<double>(f.recorded ? f.recorded : 1), finish_ms, f.aggregated};
}

void report(const char* what, uint64_t n, const Run& r) {
    std::printf("[ audit ] %-40s %8llu events: record() %5.2f us/event; end to end %9.0f events/s (%5.2f us/event); "
                "%5.1f bytes/record; finish %6.2f ms; aggregated %llu\n",
                what, static_cast<unsigned long long>(n), r.record_us, r.events_per_s, 1e6 / r.events_per_s,
                r.bytes_per_record, r.finish_ms, static_cast<unsigned long long>(r.aggregated));
}

TEST(DaemonAuditBench, WriterCostPerEvent) {
#ifdef NDEBUG
    const uint64_t n = 200'000, flood = 1'000'000;
#else
    const uint64_t n = 20'000, flood = 100'000;  // Debug and sanitizer builds: keep CI quick
#endif
    // Bounds large enough that every event is a record (~420 bytes each).
    report("one by one", n, measure(n, 256ull << 20, false, 1));
    report("one by one, --trace", n, measure(n, 256ull << 20, true, 1));
    report("one by one, 4 supervisor threads", n, measure(n, 256ull << 20, false, 4));
    report("flood past a 64 KiB bound (aggregated)", flood, measure(flood, 64 << 10, false, 1));
    report("small job: finish() cost", 100, measure(100, 16 << 20, false, 1));
    std::printf("[ audit ] record() paced at one event per 10 us: %.3f us/event inside record()\n",
                paced_record_us(n / 4, std::chrono::microseconds(10)));
}

}  // namespace
}  // namespace hermetic::daemon
