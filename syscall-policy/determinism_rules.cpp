// The determinism profile (see determinism_rules.hpp). Meant to be stacked on
// the baseline: it only turns allowed syscalls into Virtualize (handed to the
// supervisor), repeats the baseline's guards the supervisor depends on, and
// closes the i386 entry, whose time and stat calls have other numbers and
// layouts the supervisor does not emulate.
#include "syscall-policy/determinism_rules.hpp"

#include <cerrno>
#include <string>
#include <vector>

namespace hermetic::policy {

namespace {

// ABI constants spelled out (the policy must not depend on header versions).
constexpr uint64_t kFutexCmdMask = 0x7f;  // ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME)
constexpr uint64_t kFutexWait = 0, kFutexLockPi = 6, kFutexWaitBitset = 9, kFutexWaitRequeuePi = 11,
                   kFutexLockPi2 = 13;
constexpr uint64_t kTimerAbstime = 1;  // TIMER_ABSTIME == TFD_TIMER_ABSTIME
constexpr uint64_t kPrSetTsc = 26, kArchSetCpuid = 0x1012;
constexpr uint64_t kSeccompSetModeFilter = 1, kSeccompFlagNewListener = 1u << 3;

ArgCondition ptr_trapped(unsigned index) {
    return {.index = index, .op = CompareOp::Ge, .value = kTrapPointersFrom};
}
ArgCondition eq32(unsigned index, uint64_t value) {
    return {.index = index, .op = CompareOp::Eq, .value = value, .width32 = true};
}
ArgCondition has_bits(unsigned index, uint64_t bits) {
    return {.index = index, .op = CompareOp::MaskedEq, .value = bits, .mask = bits, .width32 = true};
}
ArgCondition masked(unsigned index, uint64_t mask, uint64_t value) {
    return {.index = index, .op = CompareOp::MaskedEq, .value = value, .mask = mask, .width32 = true};
}

}  // namespace

Policy determinism_policy() {
    Policy p;
    p.name = "determinism";
    auto virt = [&](const char* name, const char* why, std::vector<ArgCondition> conds = {}) {
        p.rules.push_back({name, std::move(conds), Action::virtualize(), std::string("determinism: ") + why});
    };
    auto deny = [&](const char* name, const char* why, std::vector<ArgCondition> conds) {
        p.rules.push_back({name, std::move(conds), Action::error(EPERM), std::string("determinism: ") + why});
    };

    // Time, every reader (the vDSO is patched to make these syscalls).
    for (const char* n : {"clock_gettime", "clock_getres", "gettimeofday", "time", "times", "getrusage"})
        virt(n, "time");
    // Sleeps and timed waits: the logical clock advances by the timeout, and
    // absolute deadlines in virtual time are translated to the real clock.
    virt("nanosleep", "sleep", {ptr_trapped(0)});
    virt("clock_nanosleep", "sleep", {ptr_trapped(2)});
    for (uint64_t cmd : {kFutexWait, kFutexLockPi, kFutexWaitBitset, kFutexWaitRequeuePi, kFutexLockPi2})
        virt("futex", "timed futex wait", {masked(1, kFutexCmdMask, cmd), ptr_trapped(3)});
    virt("futex_waitv", "timed futex wait", {ptr_trapped(3)});
    virt("timerfd_settime", "absolute timer", {has_bits(1, kTimerAbstime), ptr_trapped(2)});
    virt("timer_settime", "absolute timer", {has_bits(1, kTimerAbstime), ptr_trapped(2)});
    virt("mq_timedsend", "absolute deadline", {ptr_trapped(4)});
    virt("mq_timedreceive", "absolute deadline", {ptr_trapped(4)});
    // Register timeouts (ms): 0 never waits; the supervisor answers the rest
    // with CONTINUE (it reads no memory).
    virt("poll", "timed wait", {{.index = 2, .op = CompareOp::Ne, .value = 0}});
    virt("epoll_wait", "timed wait", {{.index = 3, .op = CompareOp::Ne, .value = 0}});
    virt("epoll_pwait", "timed wait", {{.index = 3, .op = CompareOp::Ne, .value = 0}});
    virt("epoll_pwait2", "timed wait", {ptr_trapped(3)});
    virt("ppoll", "timed wait", {ptr_trapped(2)});
    virt("pselect6", "timed wait", {ptr_trapped(4)});
    virt("select", "timed wait", {ptr_trapped(4)});
    virt("rt_sigtimedwait", "timed wait", {ptr_trapped(2)});
    virt("semtimedop", "timed wait", {ptr_trapped(3)});
    virt("io_getevents", "timed wait", {ptr_trapped(4)});
    virt("recvmmsg", "timed wait", {ptr_trapped(4)});

    virt("getrandom", "random");
    for (const char* n : {"uname", "sysinfo", "getcpu"}) virt(n, "identity");
    for (const char* n : {"sched_getaffinity", "sched_setaffinity"}) virt(n, "cpu");
    for (const char* n : {"getdents", "getdents64"}) virt(n, "directory order");
    // Unless marked as the in-process path's real call (see kStatRealMarker).
    auto unmarked = [](unsigned index) {
        return std::vector<ArgCondition>{{.index = index, .op = CompareOp::Ne, .value = kStatRealMarker}};
    };
    for (const char* n : {"stat", "fstat", "lstat"}) virt(n, "file metadata", unmarked(2));
    virt("newfstatat", "file metadata", unmarked(4));
    virt("statx", "file metadata", unmarked(5));
    for (const char* n : {"utimensat", "utimes", "utime", "futimesat"}) virt(n, "file times");
    // Not changed, only seen first: the supervisor takes in what the old image
    // answered in-process (clock reads, stats) before it is gone.
    for (const char* n : {"execve", "execveat"}) virt(n, "in-process counts before exec");

    // rseq makes the kernel write the current CPU into the build's memory on every
    // switch (glibc's sched_getcpu reads it): refused, glibc falls back to getcpu.
    p.rules.push_back({"rseq", {}, Action::error(ENOSYS), "determinism: rseq exposes the real CPU"});

    // What the supervisor relies on, whatever else is stacked with this profile:
    // rdtsc keeps trapping, CPUID faulting stays as set, and no listener of the
    // build's own sees calls before the supervisor does.
    deny("prctl", "tsc", {eq32(0, kPrSetTsc)});
    deny("arch_prctl", "cpuid", {eq32(0, kArchSetCpuid)});
    deny("seccomp", "nested listener", {eq32(0, kSeccompSetModeFilter), has_bits(1, kSeccompFlagNewListener)});
    p.i386_action = Action::error(ENOSYS);
    p.i386_origin = "determinism: the i386 entry is not virtualized";
    return p;
}

}  // namespace hermetic::policy
