// Time: every clock read returns the calling thread's logical clock (see
// Engine::tick); sleeps and timed waits advance it by their timeout, and
// deadlines given in virtual time are translated to the real clock so that a
// wait of one virtual second lasts one real second.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/times.h>
#include <time.h>

#include <seccomp.h>

#include <cstring>

#include "common/io.hpp"
#include "sandbox/determinism/engine.hpp"
#include "syscall-policy/determinism_rules.hpp"

namespace hermetic::sandbox::determinism {

namespace {

constexpr int64_t kNs = 1'000'000'000;
constexpr int kFutexWait = 0, kFutexLockPi = 6, kFutexWaitBitset = 9, kFutexWaitRequeuePi = 11, kFutexLockPi2 = 13;
constexpr uint64_t kFutexClockRealtime = 256;
constexpr int64_t kTaiOffset = 37 * kNs;
constexpr int64_t kCoarseResolution = 4'000'000;  // what a HZ=250 kernel reports

std::string ts_text(int64_t ns) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%lld.%09lld", (long long)(ns / kNs), (long long)(ns % kNs));
    return buf;
}

int64_t real_now(clockid_t c) {
    timespec ts{};
    ::clock_gettime(c, &ts);
    return ts.tv_sec * kNs + ts.tv_nsec;
}

Reply deferred() {
    Reply r;
    r.kind = Reply::Deferred;  // the caller is gone: nothing to answer
    return r;
}

bool valid_ts(const timespec& ts) { return ts.tv_sec >= 0 && ts.tv_nsec >= 0 && ts.tv_nsec < kNs; }
int64_t ts_ns(const timespec& ts) {
    if (ts.tv_sec > INT64_MAX / kNs - 1) return INT64_MAX / 2;
    return ts.tv_sec * kNs + ts.tv_nsec;
}
timespec ns_ts(int64_t ns) { return {static_cast<time_t>(ns / kNs), static_cast<long>(ns % kNs)}; }

std::vector<uint8_t> bytes_of(const void* p, size_t n) {
    auto* b = static_cast<const uint8_t*>(p);
    return {b, b + n};
}

}  // namespace

bool Engine::virtual_clock(const Task& t, int64_t clk, int64_t& out) const {
    const Process& p = *t.proc;
    if (clk < 0) {
        // Dynamic clocks: CPU clocks of a process/thread, or a posix clock fd.
        if ((clk & 7) == 3) return false;  // CLOCKFD: not virtualized, fails closed
        if ((clk & 3) == 3) return false;  // invalid CPU clock type
        pid_t pid = static_cast<pid_t>(~(clk >> 3));
        bool thread = clk & 4;
        if (pid != 0) {
            // Another task of the build: its own logical CPU time.
            for (const auto& [tid, other] : tasks_) {
                if (other->vtid == pid) {
                    out = other->vt - (thread ? other->start_vt : other->proc->start_vt);
                    return true;
                }
            }
            return false;
        }
        out = t.vt - (thread ? t.start_vt : p.start_vt);
        return true;
    }
    switch (clk) {
        case CLOCK_REALTIME: case CLOCK_REALTIME_COARSE: case CLOCK_REALTIME_ALARM: out = t.vt; return true;
        case CLOCK_TAI: out = t.vt + kTaiOffset; return true;
        case CLOCK_MONOTONIC: case CLOCK_MONOTONIC_RAW: case CLOCK_MONOTONIC_COARSE: case CLOCK_BOOTTIME:
        case CLOCK_BOOTTIME_ALARM:
            out = mono_ns(t);
            return true;
        case CLOCK_PROCESS_CPUTIME_ID: out = t.vt - p.start_vt; return true;
        case CLOCK_THREAD_CPUTIME_ID: out = t.vt - t.start_vt; return true;
        default: return false;
    }
}

namespace {

bool cpu_clock(int64_t clk) { return clk < 0 || clk == CLOCK_PROCESS_CPUTIME_ID || clk == CLOCK_THREAD_CPUTIME_ID; }

}  // namespace

void Engine::charge_cpu_read(Task& t) const {
    // The call already ticked once (DeterminismConfig::kCpuReadSteps).
    t.vt += (DeterminismConfig::kCpuReadSteps - 1) * cfg_.clock_step_ns;
}

Reply Engine::time_call(Task& t, const seccomp_notif& n) {
    Process& p = *t.proc;
    const auto* a = n.data.args;
    switch (n.data.nr) {
        case SYS_clock_gettime: {
            int64_t ns;
            const int64_t clk = static_cast<int32_t>(a[0]);
            if (!virtual_clock(t, clk, ns)) return error(EINVAL);
            if (cpu_clock(clk)) {  // a valid CPU-time clock: the read is charged, then read
                charge_cpu_read(t);
                (void)virtual_clock(t, clk, ns);
            }
            timespec ts = ns_ts(ns);
            if (!write_mem(p, a[1], &ts, sizeof ts)) return error(EFAULT);
            Reply r = value(0, ts_text(ns));
            if (cfg_.trace) {
                timespec real{};
                ::clock_gettime(static_cast<clockid_t>(a[0]), &real);
                r.real = ts_text(real.tv_sec * kNs + real.tv_nsec);
            }
            return r;
        }
        case SYS_clock_getres: {
            int64_t ns;
            int32_t clk = static_cast<int32_t>(a[0]);
            if (!virtual_clock(t, clk, ns)) return error(EINVAL);
            int64_t res = (clk == CLOCK_REALTIME_COARSE || clk == CLOCK_MONOTONIC_COARSE) ? kCoarseResolution : 1;
            timespec ts = ns_ts(res);
            if (a[1] && !write_mem(p, a[1], &ts, sizeof ts)) return error(EFAULT);
            return value(0, ts_text(res));
        }
        case SYS_gettimeofday: {
            timeval tv{static_cast<time_t>(t.vt / kNs), static_cast<suseconds_t>((t.vt % kNs) / 1000)};
            if (a[0] && !write_mem(p, a[0], &tv, sizeof tv)) return error(EFAULT);
            struct timezone tz{0, 0};
            if (a[1] && !write_mem(p, a[1], &tz, sizeof tz)) return error(EFAULT);
            Reply r = value(0, ts_text(t.vt));
            if (cfg_.trace) r.real = ts_text(real_now(CLOCK_REALTIME));
            return r;
        }
        case SYS_time: {
            int64_t s = t.vt / kNs;
            if (a[0] && !write_mem(p, a[0], &s, sizeof s)) return error(EFAULT);
            Reply r = value(s);
            if (cfg_.trace) r.real = std::to_string(real_now(CLOCK_REALTIME) / kNs);
            return r;
        }
        case SYS_times: {
            // Clock ticks (USER_HZ = 100): logical CPU time, nothing for children.
            charge_cpu_read(t);
            struct tms tm{};
            tm.tms_utime = static_cast<clock_t>((t.vt - p.start_vt) / (kNs / 100));
            if (a[0] && !write_mem(p, a[0], &tm, sizeof tm)) return error(EFAULT);
            return value(mono_ns(t) / (kNs / 100));
        }
        case SYS_getrusage: {
            int who = static_cast<int>(a[0]);
            if (who != RUSAGE_SELF && who != RUSAGE_CHILDREN && who != RUSAGE_THREAD) return error(EINVAL);
            if (who != RUSAGE_CHILDREN) charge_cpu_read(t);
            struct rusage ru{};
            int64_t cpu = who == RUSAGE_SELF ? t.vt - p.start_vt : who == RUSAGE_THREAD ? t.vt - t.start_vt : 0;
            ru.ru_utime = {static_cast<time_t>(cpu / kNs), static_cast<suseconds_t>((cpu % kNs) / 1000)};
            if (!write_mem(p, a[1], &ru, sizeof ru)) return error(EFAULT);
            return value(0, "utime " + ts_text(cpu));
        }
    }
    return error(ENOSYS);
}

// ---- waits

namespace {

// Offsets of the build's time namespace (its CLOCK_MONOTONIC/BOOTTIME = host + offset).
struct TimensOffsets {
    int64_t mono = 0, boot = 0;
};

TimensOffsets timens_offsets(int hostproc, pid_t pid) {
    TimensOffsets o;
    char path[48];
    std::snprintf(path, sizeof path, "%d/timens_offsets", pid);
    try {
        std::string s = read_file_at(hostproc, path);
        long long sec, nsec;
        char name[32];
        const char* c = s.c_str();
        int used = 0;
        while (std::sscanf(c, "%31s %lld %lld%n", name, &sec, &nsec, &used) == 3) {
            int64_t v = sec * kNs + nsec;
            if (std::strcmp(name, "monotonic") == 0 || std::strcmp(name, "1") == 0) o.mono = v;
            if (std::strcmp(name, "boottime") == 0 || std::strcmp(name, "7") == 0) o.boot = v;
            c += used;
        }
    } catch (...) {
    }
    return o;
}

// The clock a timerfd or posix timer was created with, from /proc.
bool timer_clock(int hostproc, pid_t pid, const char* file, const std::string& key, const char* field, long& clk) {
    char path[64];
    std::snprintf(path, sizeof path, "%d/%s", pid, file);
    std::string s;
    try {
        s = read_file_at(hostproc, path);
    } catch (...) {
        return false;
    }
    size_t start = 0;
    if (!key.empty()) {
        start = s.find(key);
        if (start == std::string::npos) return false;
    }
    auto pos = s.find(field, start);
    if (pos == std::string::npos) return false;
    clk = std::strtol(s.c_str() + pos + std::strlen(field), nullptr, 10);
    return true;
}

}  // namespace

Reply Engine::wait_call(Task& t, const seccomp_notif& n) {
    Process& p = *t.proc;
    const auto* a = n.data.args;
    const int nr = n.data.nr;
    auto advance = [&](int64_t d) {
        if (d > 0) t.vt += d;
    };
    // A relative timeout at a[idx]: the clock advances by it; the call is
    // re-issued with our copy of it (the kernel uses exactly what we read).
    // What was read from the caller's memory must still be the caller's.
    auto gone = [&] { return seccomp_notify_id_valid(listener_.get(), n.id) != 0; };
    auto relative_ts = [&](unsigned idx) -> Reply {
        timespec ts{};
        if (!read_mem(p, a[idx], &ts, sizeof ts)) return error(EFAULT);
        if (gone()) return deferred();
        if (!valid_ts(ts)) return error(EINVAL);
        advance(ts_ns(ts));
        Reply r;
        r.kind = Reply::Reissue;
        r.reissue.nr = nr;
        r.slot_data = bytes_of(&ts, sizeof ts);
        r.reissue.slot_arg = static_cast<int>(idx);
        r.value = "wait " + ts_text(ts_ns(ts));
        return r;
    };
    // An absolute deadline in virtual time on clock `clk` at a[idx]: becomes a
    // CLOCK_REALTIME deadline the same distance in the future.
    auto absolute_ts = [&](unsigned idx, int64_t clk, Reply& r, timespec& real) -> bool {
        timespec ts{};
        if (!read_mem(p, a[idx], &ts, sizeof ts)) {
            r = error(EFAULT);
            return false;
        }
        if (gone()) {
            r = deferred();
            return false;
        }
        if (!valid_ts(ts)) {
            r = error(EINVAL);
            return false;
        }
        int64_t now;
        if (!virtual_clock(t, clk, now)) {
            r = error(EINVAL);
            return false;
        }
        int64_t remaining = std::max<int64_t>(0, ts_ns(ts) - now);
        advance(remaining);
        real = ns_ts(real_now(CLOCK_REALTIME) + remaining);
        r.kind = Reply::Reissue;
        r.reissue.nr = nr;
        r.slot_data = bytes_of(&real, sizeof real);
        r.reissue.slot_arg = static_cast<int>(idx);
        r.value = "deadline " + ts_text(ts_ns(ts)) + " (in " + ts_text(remaining) + ")";
        return true;
    };

    switch (nr) {
        case SYS_nanosleep: return relative_ts(0);
        case SYS_clock_nanosleep: {
            auto clk = static_cast<int32_t>(a[0]);
            int64_t probe;
            if (clk == CLOCK_THREAD_CPUTIME_ID || !virtual_clock(t, clk, probe)) return error(EINVAL);
            if (!(a[1] & TIMER_ABSTIME)) return relative_ts(2);
            Reply r;
            timespec real{};
            if (!absolute_ts(2, clk, r, real)) return r;
            r.reissue.args[0] = CLOCK_REALTIME;
            return r;
        }
        case SYS_futex: {
            int cmd = static_cast<int>(a[1] & 0x7f);
            if (cmd == kFutexWait) return relative_ts(3);
            if (cmd != kFutexWaitBitset && cmd != kFutexWaitRequeuePi && cmd != kFutexLockPi2 && cmd != kFutexLockPi)
                return error(ENOSYS);
            int64_t clk = cmd == kFutexLockPi || (a[1] & kFutexClockRealtime) ? CLOCK_REALTIME : CLOCK_MONOTONIC;
            Reply r;
            timespec real{};
            if (!absolute_ts(3, clk, r, real)) return r;
            // FUTEX_LOCK_PI is always CLOCK_REALTIME and refuses the flag.
            if (cmd != kFutexLockPi) r.reissue.args[1] = a[1] | kFutexClockRealtime;
            return r;
        }
        case SYS_mq_timedsend: case SYS_mq_timedreceive: {
            Reply r;
            timespec real{};
            if (!absolute_ts(4, CLOCK_REALTIME, r, real)) return r;
            return r;
        }
        case SYS_timerfd_settime: case SYS_timer_settime: {
            itimerspec its{};
            if (!read_mem(p, a[2], &its, sizeof its)) return error(EFAULT);
            if (gone()) return deferred();
            if (!valid_ts(its.it_value) || !valid_ts(its.it_interval)) return error(EINVAL);
            long clk = -1;
            bool found = nr == SYS_timerfd_settime
                             ? timer_clock(hostproc_.get(), t.tid, ("fdinfo/" + std::to_string(static_cast<int>(a[0]))).c_str(), "", "clockid:", clk)
                             : timer_clock(hostproc_.get(), p.tgid, "timers", "ID: " + std::to_string(static_cast<int>(a[0])) + "\n", "ClockID: ", clk);
            int64_t now;
            if (!found || !virtual_clock(t, clk, now)) {
                deny_note(std::string(nr == SYS_timerfd_settime ? "timerfd_settime" : "timer_settime") + ": clock of the timer unknown");
                return error(ENOSYS);
            }
            if (its.it_value.tv_sec != 0 || its.it_value.tv_nsec != 0) {
                int64_t remaining = std::max<int64_t>(1, ts_ns(its.it_value) - now);
                int64_t real;
                if (clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_ALARM || clk == CLOCK_TAI) {
                    real = real_now(static_cast<clockid_t>(clk)) + remaining;
                } else {
                    // The timer counts on the build's (namespaced) monotonic or boot clock.
                    TimensOffsets off = timens_offsets(hostproc_.get(), t.tid);
                    bool boot = clk == CLOCK_BOOTTIME || clk == CLOCK_BOOTTIME_ALARM;
                    real = real_now(boot ? CLOCK_BOOTTIME : CLOCK_MONOTONIC) + (boot ? off.boot : off.mono) + remaining;
                }
                its.it_value = ns_ts(real);
                // Who waits for the timer and then reads the clock must find it past the deadline.
                if (t.timers.size() < 64) t.timers.emplace_back(real_now(CLOCK_REALTIME) + remaining, t.vt + remaining);
            }
            Reply r;
            r.kind = Reply::Reissue;
            r.reissue.nr = nr;
            r.reissue.slot_arg = 2;
            r.slot_data = bytes_of(&its, sizeof its);
            r.value = "absolute timer translated";
            return r;
        }
        case SYS_poll: case SYS_epoll_wait: case SYS_epoll_pwait: {
            int ms = static_cast<int>(nr == SYS_poll ? a[2] : a[3]);
            Reply r;
            r.kind = Reply::Continue;
            if (ms <= 0) {
                r.quiet = true;  // no timeout (or none to wait): nothing virtualized
                return r;
            }
            advance(static_cast<int64_t>(ms) * 1'000'000);
            r.value = "wait " + std::to_string(ms) + " ms";
            return r;
        }
        case SYS_epoll_pwait2: return relative_ts(3);
        case SYS_ppoll: return relative_ts(2);
        case SYS_pselect6: return relative_ts(4);
        case SYS_rt_sigtimedwait: return relative_ts(2);
        case SYS_semtimedop: return relative_ts(3);
        case SYS_io_getevents: return relative_ts(4);
        case SYS_recvmmsg: return relative_ts(4);
        case SYS_select: {
            timeval tv{};
            if (!read_mem(p, a[4], &tv, sizeof tv)) return error(EFAULT);
            if (gone()) return deferred();
            if (tv.tv_sec < 0 || tv.tv_usec < 0) return error(EINVAL);
            int64_t d = tv.tv_sec * kNs + (tv.tv_usec % 1'000'000) * 1000 + (tv.tv_usec / 1'000'000) * kNs;
            advance(d);
            Reply r;
            r.kind = Reply::Reissue;
            r.reissue.nr = nr;
            r.reissue.slot_arg = 4;
            r.slot_data = bytes_of(&tv, sizeof tv);
            r.value = "wait " + ts_text(d);
            return r;
        }
        case SYS_futex_waitv:
            deny_note("futex_waitv: timed vector waits are not virtualized");
            return error(ENOSYS);
    }
    return error(ENOSYS);
}

}  // namespace hermetic::sandbox::determinism
