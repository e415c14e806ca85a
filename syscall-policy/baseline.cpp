// The foundation's baseline profile: an allowlist (everything else ENOSYS) of
// what ordinary builds use, plus the explicit denials of
// shared/research/sandbox-anchors.md §2.4. Later rules override earlier
// unconditional ones, so the order is: allow groups, deny (EPERM), graceful
// deny (ENOSYS), argument rules.
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <vector>

#include "syscall-policy/policy.hpp"

namespace hermetic::policy {

namespace {

// ABI constants, spelled out so the policy doesn't depend on header versions.
constexpr uint64_t kTiocsti = 0x5412, kTioclinux = 0x541C;
constexpr uint64_t kSeccompSetModeFilter = 1, kSeccompFlagNewListener = 1u << 3;
constexpr uint64_t kArchSetCpuid = 0x1012;
constexpr uint64_t kNetlinkRoute = 0;
constexpr uint64_t kPersonalityQuery = 0xffffffff;
constexpr uint64_t kCloneNew[] = {
    0x00020000,  // CLONE_NEWNS
    0x02000000,  // CLONE_NEWCGROUP
    0x04000000,  // CLONE_NEWUTS
    0x08000000,  // CLONE_NEWIPC
    0x10000000,  // CLONE_NEWUSER
    0x20000000,  // CLONE_NEWPID
    0x40000000,  // CLONE_NEWNET
    0x00000080,  // CLONE_NEWTIME (inside CSIGNAL for clone(); only an invalid exit signal sets it)
};

ArgCondition eq32(unsigned index, uint64_t value) {
    return {.index = index, .op = CompareOp::Eq, .value = value, .width32 = true};
}
ArgCondition has_bits(unsigned index, uint64_t bits) {
    return {.index = index, .op = CompareOp::MaskedEq, .value = bits, .mask = bits, .width32 = true};
}

// Aligned blocks (mask, value) covering exactly the 32-bit values in
// [0, 2^bits) that are not in `allowed`. seccomp rules can only OR conditions
// that each look at an argument once, so "anything but these values" becomes a
// handful of "a & mask == value" rules (a prefix trie of the complement).
void complement_blocks(const std::vector<uint64_t>& allowed, uint64_t base, unsigned level,
                       std::vector<std::pair<uint64_t, uint64_t>>& out) {
    const uint64_t size = uint64_t{1} << level;
    bool any = false;
    for (uint64_t a : allowed) any = any || (a >= base && a < base + size);
    if (!any) {
        out.emplace_back(0xffffffffu & ~(size - 1), base);
        return;
    }
    if (level == 0) return;  // exactly an allowed value
    complement_blocks(allowed, base, level - 1, out);
    complement_blocks(allowed, base + size / 2, level - 1, out);
}

}  // namespace

Policy baseline_policy() {
    Policy p;
    p.name = "baseline";
    p.default_action = Action::error(ENOSYS);
    p.default_origin = "baseline: default";
    auto add = [&](std::string target, Action action, const char* origin, std::vector<ArgCondition> conds = {}) {
        p.rules.push_back({std::move(target), std::move(conds), action, origin});
    };

    // What builds use: compilers, make, interpreters, JVMs, dpkg-buildpackage,
    // fakeroot (LD_PRELOAD: ordinary chown/stat calls), sanitizers (seccomp,
    // sigaltstack, personality query), threads, loopback sockets.
    for (const char* group : {"@default", "@aio", "@basic-io", "@chown", "@directory-read", "@file-system", "@io-event",
                              "@ipc", "@memlock", "@network-io", "@pkey", "@process", "@random", "@resources",
                              "@sandbox", "@setuid", "@signal", "@sync", "@time-read", "@timer"})
        add(group, Action::allow(), "baseline: allow");
    for (const char* name :
         {"mprotect", "mremap", "madvise", "mincore", "remap_file_pages", "ioctl", "umask", "uname", "olduname",
          "oldolduname", "sysinfo", "getcpu", "sched_getparam", "sched_getscheduler", "sched_get_priority_max",
          "sched_get_priority_min", "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_getattr",
          "getpriority", "ioprio_get", "fadvise64", "fadvise64_64", "readahead", "flock", "sendfile", "sendfile64",
          "splice", "tee", "vmsplice", "copy_file_range", "capset", "setpgid", "setsid", "setfsuid", "setfsuid32",
          "setfsgid", "setfsgid32", "personality", "cachestat", "map_shadow_stack"})
        add(name, Action::allow(), "baseline: allow");

    // Kernel-global state, other processes, namespaces, mounts, clocks.
    for (const char* group : {"@kernel", "@module", "@reboot", "@swap", "@raw-io", "@keyring", "@clock-set",
                              "@process-tracing", "@debug", "@mount", "@namespaces", "@cpu-emulation", "@numa",
                              "@obsolete"})
        add(group, Action::error(EPERM), "baseline: deny");

    // Graceful denials: libc and runtimes fall back on ENOSYS. clone3's flags
    // live in a struct seccomp can't read, so glibc must fall back to clone.
    add("clone3", Action::error(ENOSYS), "baseline: graceful deny");
    add("@io-uring", Action::error(ENOSYS), "baseline: graceful deny");
    add("@new-mount-api", Action::error(ENOSYS), "baseline: graceful deny");

    // Argument rules.
    for (uint64_t flag : kCloneNew) add("clone", Action::error(EPERM), "baseline: clone namespaces", {has_bits(0, flag)});
    // The kernel reads the request as 32 bits (CVE-2019-10063).
    add("ioctl", Action::error(EPERM), "baseline: terminal injection", {eq32(1, kTiocsti)});
    add("ioctl", Action::error(EPERM), "baseline: terminal injection", {eq32(1, kTioclinux)});
    // A listener of the sandboxee's own would see (and could CONTINUE) calls
    // before the supervisor does.
    add("seccomp", Action::error(EPERM), "baseline: nested listener",
        {eq32(0, kSeccompSetModeFilter), has_bits(1, kSeccompFlagNewListener)});
    add("prctl", Action::error(EPERM), "baseline: tsc", {eq32(0, PR_SET_TSC)});
    add("arch_prctl", Action::error(EPERM), "baseline: cpuid", {eq32(0, kArchSetCpuid)});

    // personality: only the query and what the sandbox sets (no ASLR); anything
    // else (READ_IMPLIES_EXEC, re-enabling ASLR) is refused. The kernel reads an
    // unsigned int; set high bits are refused outright.
    {
        std::vector<std::pair<uint64_t, uint64_t>> blocks;
        complement_blocks({uint64_t{PER_LINUX} | uint64_t{ADDR_NO_RANDOMIZE}, kPersonalityQuery}, 0, 32, blocks);
        for (auto [mask, value] : blocks)
            add("personality", Action::error(EPERM), "baseline: personality",
                {{.index = 0, .op = CompareOp::MaskedEq, .value = value, .mask = mask}});
        add("personality", Action::error(EPERM), "baseline: personality",
            {{.index = 0, .op = CompareOp::Gt, .value = 0xffffffff}});
    }

    // Socket families: AF_UNIX, AF_INET, AF_INET6, and AF_NETLINK for
    // NETLINK_ROUTE only. Families are below 64 (AF_MAX is 46 in 6.18); the
    // blocks cover [0, 64) exactly and "> 63" the rest, high bits included.
    for (const char* call : {"socket", "socketpair"}) {
        std::vector<std::pair<uint64_t, uint64_t>> blocks;
        complement_blocks({AF_UNIX, AF_INET, AF_INET6, AF_NETLINK}, 0, 6, blocks);
        for (auto [mask, value] : blocks)
            add(call, Action::error(EAFNOSUPPORT), "baseline: socket families",
                {{.index = 0, .op = CompareOp::MaskedEq, .value = value, .mask = mask}});
        add(call, Action::error(EAFNOSUPPORT), "baseline: socket families",
            {{.index = 0, .op = CompareOp::Gt, .value = 63}});
        add(call, Action::error(EAFNOSUPPORT), "baseline: netlink protocols",
            {eq32(0, AF_NETLINK), {.index = 2, .op = CompareOp::Ne, .value = kNetlinkRoute}});
    }
    return p;
}

}  // namespace hermetic::policy
