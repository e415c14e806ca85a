// Pure parts of the determinism engine: random streams, the deviation wire
// format, the vDSO patch plan (on this kernel's real vDSO image) and the
// in-process clock routines (run here, on a clock page mapped at the fixed
// scratch address), and the determinism policy's decisions.
#include <gtest/gtest.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/mman.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <set>
#include <tuple>

#include "sandbox/determinism/determinism.hpp"
#include "sandbox/determinism/engine.hpp"
#include "sandbox/determinism/fast_stat.hpp"
#include "sandbox/determinism/fast_stat_abi.h"
#include "sandbox/determinism/prng.hpp"
#include "sandbox/determinism/served.hpp"
#include "sandbox/determinism/vdso.hpp"
#include "sandbox/determinism/wire.hpp"
#include "syscall-policy/determinism_rules.hpp"
#include "syscall-policy/policy.hpp"

#include <nlohmann/json.hpp>

namespace hermetic::sandbox::determinism {
namespace {

std::string bytes_hex(const std::vector<uint8_t>& v) {
    static const char* d = "0123456789abcdef";
    std::string s;
    for (uint8_t b : v) s += {d[b >> 4], d[b & 15]};
    return s;
}

std::vector<uint8_t> take(const StreamKey& k, const std::string& name, size_t n) {
    std::vector<uint8_t> v(n);
    stream_bytes(k, name, v.data(), n);
    return v;
}

TEST(DetPrng, SameSeedSameStreamDifferentOtherwise) {
    auto k1 = root_key(1), k1b = root_key(1), k2 = root_key(2);
    EXPECT_EQ(take(k1, "getrandom/1.2", 64), take(k1b, "getrandom/1.2", 64));
    EXPECT_NE(take(k1, "getrandom/1.2", 64), take(k2, "getrandom/1.2", 64));
    EXPECT_NE(take(k1, "getrandom/1.2", 64), take(k1, "getrandom/1.3", 64));
    // Names are not prefixes of one another's streams.
    EXPECT_NE(take(k1, "a", 32), take(k1, "ab", 32));
    // A stream read in pieces is the stream read at once.
    Prng p(k1, "urandom/1");
    std::vector<uint8_t> a(10), b(1000), whole = take(k1, "urandom/1", 1010);
    p.fill(a.data(), a.size());
    p.fill(b.data(), b.size());
    a.insert(a.end(), b.begin(), b.end());
    EXPECT_EQ(a, whole);
    EXPECT_EQ(p.consumed(), 1010u);
    // Not obviously broken: bytes spread over all values.
    std::set<uint8_t> seen(whole.begin(), whole.end());
    EXPECT_GT(seen.size(), 200u);
    // ChaCha20 keystream, pinned: a change of generator would change every build.
    EXPECT_EQ(bytes_hex(take(root_key(0), "x", 8)), "f529601fde2615b6");
}

// The supervisor learns the sandbox's mounts from init while it waits for a
// job; its start() relies on the kept mountinfo to say whether they changed.
TEST(DetMounts, MountsLearnedAheadAreKeptUntilTheNamespaceChanges) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (a mount namespace)";
    char dir_tmpl[] = "/tmp/hermetic-mounts-XXXXXX";
    ASSERT_NE(::mkdtemp(dir_tmpl), nullptr);
    const std::string dir = dir_tmpl, a = dir + "/a", b = dir + "/b";
    ASSERT_EQ(::mkdir(a.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(b.c_str(), 0755), 0);
    int go[2], ready[2];
    ASSERT_EQ(::pipe(go), 0);
    ASSERT_EQ(::pipe(ready), 0);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        // Its own mount namespace, nothing propagating back to the host.
        char c = 0;
        if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
            ::mount("tmpfs", a.c_str(), "tmpfs", 0, "size=64k") != 0)
            ::_exit(1);
        if (::write(ready[1], "1", 1) != 1 || ::read(go[0], &c, 1) != 1) ::_exit(2);
        if (::mount("tmpfs", b.c_str(), "tmpfs", 0, "size=64k") != 0) ::_exit(3);
        if (::write(ready[1], "2", 1) != 1 || ::read(go[0], &c, 1) != 1) ::_exit(4);
        ::_exit(0);
    }
    char c = 0;
    ASSERT_EQ(::read(ready[0], &c, 1), 1);
    int ctl[2], devs[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl), 0);
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, devs), 0);
    {
        Engine e{UniqueFd(ctl[0]), UniqueFd(devs[0])};
        EXPECT_FALSE(e.mounts_unchanged());  // nothing learned yet
        e.learn_mounts(child);
        auto has = [&](const std::string& point) {
            return std::any_of(e.mounts_.begin(), e.mounts_.end(), [&](const MountPoint& m) { return m.point == point; });
        };
        EXPECT_TRUE(has(a));
        EXPECT_FALSE(has(b));
        EXPECT_TRUE(e.mounts_unchanged());
        EXPECT_TRUE(e.mounts_unchanged());  // asking does not use the answer up
        const auto vdevs = e.vdevs_;
        // A mount in the namespace: what was learned is stale.
        ASSERT_EQ(::write(go[1], "x", 1), 1);
        ASSERT_EQ(::read(ready[0], &c, 1), 1);
        EXPECT_FALSE(e.mounts_unchanged());
        e.learn_mounts(child);
        EXPECT_TRUE(has(a));
        EXPECT_TRUE(has(b));
        EXPECT_TRUE(e.mounts_unchanged());
        EXPECT_GT(e.vdevs_.size(), vdevs.size());
        for (const auto& [dev, vdev] : vdevs) EXPECT_EQ(e.vdevs_.count(dev), 1u);
    }
    ASSERT_EQ(::write(go[1], "x", 1), 1);
    int st = 0;
    ASSERT_EQ(::waitpid(child, &st, 0), child);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
    for (int fd : {go[0], go[1], ready[0], ready[1], ctl[1], devs[1]}) ::close(fd);
    ::rmdir(a.c_str());
    ::rmdir(b.c_str());
    ::rmdir(dir.c_str());
}

TEST(DetWire, DeviationsRoundTripInPieces) {
    std::string buf;
    std::vector<Deviation> in(3);
    for (size_t i = 0; i < in.size(); ++i) {
        in[i].virtual_time_ns = 1700000000000000000 + static_cast<int64_t>(i);
        in[i].real_pid = 100 + static_cast<int>(i);
        in[i].virtual_pid = 2;
        in[i].exe = "/usr/bin/python3";
        in[i].syscall_nr = 228;
        in[i].syscall = "clock_gettime";
        in[i].args = "1,7ffd";
        in[i].action = i == 1 ? DeviationAction::Denied : DeviationAction::Virtualized;
        in[i].cls = "time";
        in[i].value = std::string(i * 100, 'v');
        if (i == 2) in[i].real_value = "real";
        encode_deviation(in[i], buf);
    }
    // Fed a byte at a time, like a stream socket may deliver it.
    std::string pending;
    std::vector<Deviation> out;
    for (char c : buf) {
        pending.push_back(c);
        std::string_view view(pending);
        Deviation d;
        while (decode_deviation(view, d)) out.push_back(d);
        pending.erase(0, pending.size() - view.size());
    }
    ASSERT_EQ(out.size(), in.size());
    for (size_t i = 0; i < in.size(); ++i) {
        EXPECT_EQ(out[i].virtual_time_ns, in[i].virtual_time_ns);
        EXPECT_EQ(out[i].real_pid, in[i].real_pid);
        EXPECT_EQ(out[i].syscall, in[i].syscall);
        EXPECT_EQ(out[i].action, in[i].action);
        EXPECT_EQ(out[i].value, in[i].value);
        EXPECT_EQ(out[i].real_value, in[i].real_value);
    }
    std::string garbage(8, '\xff');
    std::string_view g(garbage);
    Deviation d;
    EXPECT_THROW(decode_deviation(g, d), std::runtime_error);
}

std::vector<uint8_t> own_vdso() {
    auto* base = reinterpret_cast<const uint8_t*>(getauxval(AT_SYSINFO_EHDR));
    if (!base) return {};
    // The image is readable where it is mapped; its section headers end it.
    auto* eh = reinterpret_cast<const Elf64_Ehdr*>(base);
    size_t size = eh->e_shoff + size_t{eh->e_shnum} * sizeof(Elf64_Shdr);
    return {base, base + size};
}

TEST(DetVdso, PlanCoversEveryClockEntryPoint) {
    std::vector<uint8_t> img = own_vdso();
    if (img.empty()) GTEST_SKIP() << "no vDSO";
    for (bool inproc : {false, true}) {
        VdsoPlan plan = plan_vdso_patch(img, inproc);
        ASSERT_TRUE(plan.ok) << plan.error;
        std::set<std::string> names(plan.patched.begin(), plan.patched.end());
        for (const char* n : {"__vdso_clock_gettime", "__vdso_gettimeofday", "__vdso_time", "__vdso_clock_getres", "__vdso_getcpu"})
            EXPECT_TRUE(names.count(n) || names.count(std::string(n).substr(7))) << n;
        EXPECT_GE(plan.stub_room, init_stub(0).size());
        // Writes stay inside the image and never overlap.
        std::vector<std::pair<uint64_t, uint64_t>> spans;
        for (const auto& [off, bytes] : plan.writes) {
            EXPECT_LE(off + bytes.size(), img.size());
            spans.push_back({off, off + bytes.size()});
        }
        spans.push_back({plan.stub_offset, plan.stub_offset + init_stub(0).size()});
        std::sort(spans.begin(), spans.end());
        for (size_t i = 1; i < spans.size(); ++i) EXPECT_LE(spans[i - 1].second, spans[i].first);
    }
    std::vector<uint8_t> junk(4096, 0);
    EXPECT_FALSE(plan_vdso_patch(junk, true).ok);
}

// The patched vDSO, built in this process: the planned bytes applied to a copy
// of the image in executable memory, and the clock page mapped where the
// routines expect it. Then calls through the patched entry points.
class PatchedVdso : public ::testing::Test {
protected:
    void SetUp() override {
        std::vector<uint8_t> img = own_vdso();
        if (img.empty()) GTEST_SKIP() << "no vDSO";
        void* page = ::mmap(reinterpret_cast<void*>(policy::kScratchBase), policy::kScratchSize, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (page == MAP_FAILED) GTEST_SKIP() << "scratch address in use: " << std::strerror(errno);
        clock_ = static_cast<ClockPage*>(page);
        VdsoPlan plan = plan_vdso_patch(img, true);
        ASSERT_TRUE(plan.ok) << plan.error;
        size_ = (img.size() + 4095) & ~size_t{4095};
        code_ = static_cast<uint8_t*>(::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        ASSERT_NE(code_, MAP_FAILED);
        std::memcpy(code_, img.data(), img.size());
        for (const auto& [off, bytes] : plan.writes) std::memcpy(code_ + off, bytes.data(), bytes.size());
        ASSERT_EQ(::mprotect(code_, size_, PROT_READ | PROT_EXEC), 0);
        auto* eh = reinterpret_cast<const Elf64_Ehdr*>(img.data());
        auto* sh = reinterpret_cast<const Elf64_Shdr*>(img.data() + eh->e_shoff);
        for (int i = 0; i < eh->e_shnum; ++i) {
            if (sh[i].sh_type != SHT_DYNSYM) continue;
            auto* sym = reinterpret_cast<const Elf64_Sym*>(img.data() + sh[i].sh_offset);
            auto* str = reinterpret_cast<const char*>(img.data() + sh[sh[i].sh_link].sh_offset);
            for (size_t k = 0; k < sh[i].sh_size / sizeof(Elf64_Sym); ++k) syms_[str + sym[k].st_name] = sym[k].st_value;
        }
    }
    void TearDown() override {
        if (code_ && code_ != MAP_FAILED) ::munmap(code_, size_);
        if (clock_) ::munmap(clock_, policy::kScratchSize);
    }
    template <typename F>
    F fn(const char* name) {
        return reinterpret_cast<F>(code_ + syms_.at(name));
    }
    ClockPage* clock_ = nullptr;
    uint8_t* code_ = nullptr;
    size_t size_ = 0;
    std::map<std::string, uint64_t> syms_;
};

TEST_F(PatchedVdso, InProcessClockReadsThePage) {
    auto cgt = fn<int (*)(clockid_t, timespec*)>("__vdso_clock_gettime");
    auto gtod = fn<int (*)(timeval*, void*)>("__vdso_gettimeofday");
    auto tm = fn<long (*)(long*)>("__vdso_time");
    auto getcpu = fn<int (*)(unsigned*, unsigned*, void*)>("__vdso_getcpu");
    *clock_ = ClockPage{0, 1700000000'000000000, 1000, -1699999900'000000000, 1, 0, 1'000'000'000, 1'000'000'000};
    timespec ts{};
    ASSERT_EQ(cgt(CLOCK_REALTIME, &ts), 0);
    EXPECT_EQ(ts.tv_sec, 1700000000);
    EXPECT_EQ(ts.tv_nsec, 1000);
    ASSERT_EQ(cgt(CLOCK_MONOTONIC, &ts), 0);
    EXPECT_EQ(ts.tv_sec, 100);
    EXPECT_EQ(ts.tv_nsec, 2000);
    ASSERT_EQ(cgt(CLOCK_TAI, &ts), 0);
    EXPECT_EQ(ts.tv_sec, 1700000037);
    ASSERT_EQ(cgt(CLOCK_BOOTTIME, &ts), 0);
    EXPECT_EQ(ts.tv_sec, 100);
    timeval tv{};
    struct { int a, b; } tz{7, 7};
    ASSERT_EQ(gtod(&tv, &tz), 0);
    EXPECT_EQ(tv.tv_sec, 1700000000);
    EXPECT_EQ(tv.tv_usec, 5);  // the fifth read: 5 us
    EXPECT_EQ(tz.a, 0);
    long t = 0;
    EXPECT_EQ(tm(&t), 1700000000);
    EXPECT_EQ(t, 1700000000);
    EXPECT_EQ(clock_->counter, 6u);
    unsigned cpu = 9, node = 9;
    EXPECT_EQ(getcpu(&cpu, &node, nullptr), 0);
    EXPECT_EQ(cpu, 0u);
    EXPECT_EQ(node, 0u);
    // Disabled (or a clock it does not serve): the real syscall answers.
    clock_->enabled = 0;
    ASSERT_EQ(cgt(CLOCK_REALTIME, &ts), 0);
    EXPECT_GT(ts.tv_sec, 1700000000 + 86400 * 300);  // the host's clock, here
    clock_->enabled = 1;
    ASSERT_EQ(cgt(CLOCK_PROCESS_CPUTIME_ID, &ts), 0);
    EXPECT_LT(ts.tv_sec, 1000);
    EXPECT_EQ(clock_->counter, 6u);
}

TEST(DetPolicy, VirtualizesWhatTheEngineEmulatesAndNothingElse) {
    policy::Policy p = with_determinism(policy::baseline_policy());
    policy::CompiledPolicy cp;
    ASSERT_NO_THROW(cp = policy::compile(p));
    ASSERT_EQ(cp.filters.size(), 2u);
    EXPECT_TRUE(cp.filters[1].needs_listener);
    policy::PreparedPolicy pp(p);
    auto kind = [&](int nr, std::array<uint64_t, 6> a = {}) {
        return pp.decide(policy::Arch::X86_64, nr, a.data()).action.kind;
    };
    using K = policy::ActionKind;
    for (int nr : {SYS_clock_gettime, SYS_gettimeofday, SYS_time, SYS_clock_getres, SYS_getrandom, SYS_uname, SYS_sysinfo,
                   SYS_getcpu, SYS_sched_getaffinity, SYS_getdents64, SYS_getdents, SYS_newfstatat, SYS_statx, SYS_fstat,
                   SYS_utimensat, SYS_execve, SYS_execveat})
        EXPECT_EQ(kind(nr), K::Virtualize) << policy::syscall_name(nr);
    for (int nr : {SYS_read, SYS_write, SYS_openat, SYS_mmap, SYS_getpid, SYS_clone})
        EXPECT_EQ(kind(nr), K::Allow) << policy::syscall_name(nr);
    const uint64_t user_ptr = 0x7ffd00001000, scratch = policy::kScratchBase + 64;
    // Timed futex waits go to the supervisor; untimed ones and re-issued ones don't.
    EXPECT_EQ(kind(SYS_futex, {0x1000, 0, 1, user_ptr}), K::Virtualize);           // FUTEX_WAIT, timeout
    EXPECT_EQ(kind(SYS_futex, {0x1000, 128 | 9, 1, user_ptr}), K::Virtualize);     // WAIT_BITSET|PRIVATE
    EXPECT_EQ(kind(SYS_futex, {0x1000, 0, 1, 0}), K::Allow);                       // no timeout
    EXPECT_EQ(kind(SYS_futex, {0x1000, 1, 1, user_ptr}), K::Allow);                // FUTEX_WAKE
    EXPECT_EQ(kind(SYS_futex, {0x1000, 9, 1, scratch}), K::Allow);                 // re-issued
    EXPECT_EQ(kind(SYS_clock_nanosleep, {1, 1, user_ptr}), K::Virtualize);
    EXPECT_EQ(kind(SYS_clock_nanosleep, {1, 1, scratch}), K::Allow);
    EXPECT_EQ(kind(SYS_nanosleep, {user_ptr}), K::Virtualize);
    EXPECT_EQ(kind(SYS_timerfd_settime, {3, 1, user_ptr}), K::Virtualize);         // TFD_TIMER_ABSTIME
    EXPECT_EQ(kind(SYS_timerfd_settime, {3, 0, user_ptr}), K::Allow);              // relative
    EXPECT_EQ(kind(SYS_poll, {0, 0, 100}), K::Virtualize);
    EXPECT_EQ(kind(SYS_poll, {0, 0, 0}), K::Allow);
    EXPECT_EQ(kind(SYS_ppoll, {0, 0, 0}), K::Allow);  // no timeout
    // Guards the supervisor relies on, and the closed doors.
    EXPECT_EQ(kind(SYS_prctl, {26 /*PR_SET_TSC*/, 1}), K::Errno);
    EXPECT_EQ(kind(SYS_seccomp, {1, 8}), K::Errno);
    EXPECT_EQ(kind(SYS_rseq), K::Errno);
    EXPECT_EQ(kind(SYS_ptrace), K::Errno);
    EXPECT_EQ(pp.decide(policy::Arch::I386, 13 /*time*/, std::array<uint64_t, 6>{}.data()).action.kind, K::Errno);
}

// What the supervisor does with each verdict of the policy (engine.cpp's
// on_notification() acts on answer_for(decide(...))), on the build profile
// with a user's `log getpid` and `log clock_gettime`-style overrides.
TEST(DetPolicy, EveryVerdictHasItsAnswer) {
    policy::Policy p = with_determinism(policy::baseline_policy());
    p.rules.push_back({"connect", {}, policy::Action::log(), "build: log"});
    p.rules.push_back({"getpid", {}, policy::Action::log(), "user: log"});
    p.rules.push_back({"uname", {}, policy::Action::log(), "user: log a virtualized call"});
    p.rules.push_back({"sync", {}, policy::Action::kill(), "user: kill"});
    p.rules.push_back({"sendto", {}, policy::Action::error(ENETUNREACH), "user: deny"});
    policy::PreparedPolicy pp(p);
    auto answer = [&](int nr, std::array<uint64_t, 6> a = {}, policy::Arch arch = policy::Arch::X86_64) {
        return answer_for(pp.decide(arch, nr, a.data()).action, arch, policy::syscall_name(nr, arch));
    };
    using A = PolicyAnswer;
    // Virtualized: the engine's handlers (x86-64 only).
    EXPECT_EQ(answer(SYS_clock_gettime, {1, 0x7ffd00001000}).kind, A::Emulate);
    EXPECT_EQ(answer(SYS_getdents64).kind, A::Emulate);
    // Logged: CONTINUE and a "logged" record; network for socket calls.
    A a = answer(SYS_getpid);
    EXPECT_EQ(a.kind, A::Log);
    EXPECT_STREQ(a.cls, "policy");
    a = answer(SYS_connect);
    EXPECT_EQ(a.kind, A::Log);
    EXPECT_STREQ(a.cls, "network");
    a = answer(SYS_uname);  // logged instead of virtualized: runs for real
    EXPECT_EQ(a.kind, A::Log);
    // Denied by a rule: that rule's errno, recorded as "denied".
    for (auto [nr, args, e, cls] : std::vector<std::tuple<int, std::array<uint64_t, 6>, int, const char*>>{
             {SYS_mount, {}, EPERM, "policy"},
             {SYS_ptrace, {16, 1}, EPERM, "policy"},
             {SYS_keyctl, {}, EPERM, "policy"},
             {SYS_unshare, {0x10000000}, EPERM, "policy"},
             {SYS_clone, {0x10000000 | 17}, EPERM, "policy"},
             {SYS_clone3, {}, ENOSYS, "policy"},
             {SYS_rseq, {}, ENOSYS, "policy"},
             {SYS_socket, {17 /*AF_PACKET*/, 3, 0}, EAFNOSUPPORT, "network"},
             {SYS_sendto, {}, ENETUNREACH, "network"},
             {SYS_ioctl, {1, 0x5412}, EPERM, "policy"},
         }) {
        a = answer(nr, args);
        EXPECT_EQ(a.kind, A::Deny) << policy::syscall_name(nr);
        EXPECT_EQ(a.error, e) << policy::syscall_name(nr);
        EXPECT_FALSE(a.failed_closed) << policy::syscall_name(nr);
        EXPECT_STREQ(a.cls, cls) << policy::syscall_name(nr);
    }
    // Allowed (a race, or odd stacking): CONTINUE without a record.
    EXPECT_EQ(answer(SYS_read).kind, A::Continue);
    // Kill rules are never routed; one arriving fails closed.
    a = answer(SYS_sync);
    EXPECT_EQ(a.kind, A::Deny);
    EXPECT_EQ(a.error, ENOSYS);
    EXPECT_TRUE(a.failed_closed);
    // i386: denied by the determinism profile's i386 action; a virtualize
    // verdict there could not be emulated (different numbers and layouts).
    a = answer(13 /*time*/, {}, policy::Arch::I386);
    EXPECT_EQ(a.kind, A::Deny);
    EXPECT_EQ(a.error, ENOSYS);
    EXPECT_FALSE(a.failed_closed);
    a = answer_for(policy::Action::virtualize(), policy::Arch::I386, "time");
    EXPECT_EQ(a.kind, A::Deny);
    EXPECT_TRUE(a.failed_closed);
    EXPECT_STREQ(answer_for(policy::Action::error(EPERM), policy::Arch::I386, "socketcall").cls, "network");
}

// The runner configures a supervisor forked ahead of the job with this JSON:
// every field arrives, the policy included.
TEST(DetConfig, RoundTripsThroughJson) {
    DeterminismConfig c;
    c.policy = std::make_shared<const policy::Policy>(with_determinism(policy::baseline_policy()));
    c.policy_digest = "ab12";
    c.seed = 0xfedcba9876543210ULL;
    c.epoch = -5;
    c.cpus = 7;
    c.trace = true;
    c.clock_step_ns = 3;
    c.uptime_at_epoch_s = 11;
    c.tsc_hz = 2'500'000'000ULL;
    c.uname_sysname = "S";
    c.uname_nodename = "N";
    c.uname_domainname = "D";
    c.uname_release = "R";
    c.uname_version = "V";
    c.uname_machine = "M";
    c.memory_bytes = 12345;
    c.record_deviations = false;
    c.in_process_clock = false;
    nlohmann::json j = c;
    DeterminismConfig back = nlohmann::json::parse(j.dump()).get<DeterminismConfig>();
    nlohmann::json again = back;
    EXPECT_EQ(again, j);
    ASSERT_TRUE(back.policy);
    EXPECT_EQ(policy::canonical_text(*back.policy), policy::canonical_text(*c.policy));
    const nlohmann::json partial = {{"seed", 1}};
    EXPECT_THROW((void)partial.get<DeterminismConfig>(), std::exception);
}

TEST(DetServed, TableIsConsistent) {
    std::set<std::string> names, targets;
    for (const ServedFile& f : served_files()) {
        EXPECT_TRUE(names.insert(f.name).second) << f.name;
        EXPECT_TRUE(targets.insert(f.target).second) << f.target;
        EXPECT_NE(f.target[0], '/') << "targets are relative to the sandbox root";
    }
    EXPECT_EQ(served_file_by_ino(1), nullptr);
    EXPECT_EQ(served_file_by_ino(2)->kind, ServedKind::Urandom);
    EXPECT_EQ(served_file_by_ino(2 + served_files().size()), nullptr);
}

}  // namespace
}  // namespace hermetic::sandbox::determinism

namespace hermetic::sandbox::determinism {
namespace {

// After PR_SET_TSC the build process still runs hermetic's own code until
// execve (the hand-off, a helper thread, a sanitizer runtime); a vDSO clock
// read there executes rdtsc. It must be emulated, not kill the build before it
// starts (it did, with ASan, on a host that enforces PR_SET_TSC). Also a
// vDSO clock read: on a TSC clocksource it is an rdtsc too.
TEST(DetBuildProcess, RdtscBetweenPrepareAndExecIsEmulatedNotFatal) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        prepare_build_process();
        unsigned lo1, hi1, lo2, hi2, aux;
        asm volatile("rdtsc" : "=a"(lo1), "=d"(hi1));
        asm volatile("rdtscp" : "=a"(lo2), "=d"(hi2), "=c"(aux));
        timespec ts{};
        ::clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t a = (uint64_t{hi1} << 32) | lo1, b = (uint64_t{hi2} << 32) | lo2;
        ::_exit(b > a ? 0 : 3);  // still counts forwards
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

// ---- the in-process stat path (fast_stat.hpp) ---------------------------------------

// The glibc wrappers of this machine are what the supervisor patches: if a
// libc update changed them, the fast path would silently stop engaging.
TEST(DetFastStat, ThisGlibcsWrappersArePatchable) {
    for (const char* fn : {"fstatat", "statx"}) {
        auto* code = reinterpret_cast<const uint8_t*>(dlsym(RTLD_DEFAULT, fn));
        ASSERT_NE(code, nullptr) << fn;
        bool found = false;
        for (size_t i = 0; i + 13 <= 64 && !found; ++i) {
            StatSiteCode window;
            std::memcpy(window.data(), code + i, window.size());
            if (auto patch = fast_stat_patch(window)) {
                found = true;
                ASSERT_EQ(patch->size(), 7u);
                EXPECT_EQ((*patch)[0], 0xff);  // call qword ptr [disp32]
                EXPECT_EQ((*patch)[1], 0x14);
                EXPECT_EQ((*patch)[2], 0x25);
                uint32_t slot;
                std::memcpy(&slot, patch->data() + 3, 4);
                EXPECT_EQ(slot, HERMETIC_FAST_BASE + offsetof(hermetic_fast_header, entry) +
                                    8 * (std::string(fn) == "statx" ? HERMETIC_FAST_SLOT_STATX : HERMETIC_FAST_SLOT_NEWFSTATAT));
            }
        }
        EXPECT_TRUE(found) << fn << ": no \"mov eax, NR; syscall; cmp rax, -4096\" in its first 64 bytes";
    }
}

// Counts of calls answered in the process come from the build's memory: the
// clock they advance saturates instead of overflowing.
TEST(DetClockPage, AdvancingByAHostileCountSaturates) {
    EXPECT_EQ(advanced(10, 3, 5), 25);
    EXPECT_EQ(advanced(1'700'000'000'000'000'000, UINT64_MAX, 1'000'000'000), INT64_MAX / 2);
    EXPECT_EQ(advanced(-5, 0, 10), -5);
    // A clock already past the cap (a file time in 2200 set it) stays, never goes back.
    const int64_t far = 7'258'118'400'000'000'000;
    EXPECT_EQ(advanced(far, 5, 1'000'000'000), far);
}

TEST(DetFastStat, OnlyAWrappersSyscallOfTheStatFamilyIsPatched) {
    // newfstatat with the 32-bit and the 64-bit error check; then what is not one.
    const StatSiteCode fstatat = {0xb8, 0x06, 0x01, 0, 0, 0x0f, 0x05, 0x3d, 0x00, 0xf0, 0xff, 0xff, 0x77};
    const StatSiteCode statx = {0xb8, 0x4c, 0x01, 0, 0, 0x0f, 0x05, 0x48, 0x3d, 0x00, 0xf0, 0xff, 0xff};
    EXPECT_TRUE(fast_stat_patch(fstatat));
    EXPECT_TRUE(fast_stat_patch(statx));
    const StatSiteCode xstat = {0xb8, 0x04, 0, 0, 0, 0x0f, 0x05, 0x48, 0x3d, 0x00, 0xf0, 0xff, 0xff};  // __xstat
    auto old = fast_stat_patch(xstat);
    ASSERT_TRUE(old);
    uint32_t slot;
    std::memcpy(&slot, old->data() + 3, 4);
    EXPECT_EQ(slot, HERMETIC_FAST_BASE + offsetof(hermetic_fast_header, entry) + 8 * HERMETIC_FAST_SLOT_STAT);
    const StatSiteCode openat = {0xb8, 0x01, 0x01, 0, 0, 0x0f, 0x05, 0x3d, 0x00, 0xf0, 0xff, 0xff, 0x77};
    const StatSiteCode no_check = {0xb8, 0x06, 0x01, 0, 0, 0x0f, 0x05, 0x48, 0x89, 0xc7, 0x90, 0x90, 0x90};
    const StatSiteCode not_syscall = {0xb8, 0x06, 0x01, 0, 0, 0x90, 0x90, 0x3d, 0x00, 0xf0, 0xff, 0xff, 0x77};
    EXPECT_FALSE(fast_stat_patch(openat));
    EXPECT_FALSE(fast_stat_patch(no_check));
    EXPECT_FALSE(fast_stat_patch(not_syscall));
}

// Calls an entry the way a patched wrapper does: syscall arguments in rdi,
// rsi, rdx, r10, r8; below the red zone.
long call_fast_entry(uint64_t entry, long a0, long a1, long a2, long a3, long a4) {
    register long r10 __asm__("r10") = a3;
    register long r8 __asm__("r8") = a4;
    long ret;
    __asm__ volatile("sub $128, %%rsp\n\tcall *%[e]\n\tadd $128, %%rsp"
                     : "=a"(ret), "+r"(r10), "+r"(r8)
                     : [e] "r"(entry), "D"(a0), "S"(a1), "d"(a2)
                     : "rcx", "r11", "memory", "cc");
    return ret;
}

// The code the build runs, run here on the job's real table: published files
// come back with their virtual identity and the epoch, missing ones with
// ENOENT/ENOTDIR, the rest as the (here unfiltered) kernel answers.
TEST(DetFastStat, TheInProcessCodeAnswersFromTheTable) {
    FastStat fast(1700000000);
    void* at = ::mmap(reinterpret_cast<void*>(HERMETIC_FAST_BASE), HERMETIC_FAST_SIZE, PROT_READ | PROT_EXEC,
                      MAP_SHARED | MAP_FIXED_NOREPLACE, fast.fd(), 0);
    if (at == MAP_FAILED) GTEST_SKIP() << "the fixed address is taken in this process: " << std::strerror(errno);
    // The scratch page the exec stub maps, where the code counts its answers.
    void* scratch = ::mmap(reinterpret_cast<void*>(HERMETIC_SCRATCH_BASE), 4096, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (scratch == MAP_FAILED) {
        ::munmap(at, HERMETIC_FAST_SIZE);
        GTEST_SKIP() << "the scratch address is taken in this process: " << std::strerror(errno);
    }
    const auto* answered = reinterpret_cast<const uint64_t*>(HERMETIC_FAST_COUNT_TABLE);
    const auto* missing = reinterpret_cast<const uint64_t*>(HERMETIC_FAST_COUNT_MISSING);
    // Sealed: nobody maps it writable again.
    EXPECT_EQ(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fast.fd(), 0), MAP_FAILED);
    const auto* h = reinterpret_cast<const hermetic_fast_header*>(HERMETIC_FAST_BASE);
    ASSERT_EQ(h->magic, HERMETIC_FAST_MAGIC);

    struct stat real{};
    ASSERT_EQ(::stat("/usr/bin/env", &real), 0);
    const uint64_t vdev = makedev(0, 0x123), vino = 4242;
    ASSERT_TRUE(fast.publish(real.st_dev, real.st_ino, vdev, vino));
    EXPECT_EQ(fast.published(), 1u);

    struct stat st{};
    EXPECT_EQ(call_fast_entry(h->entry[HERMETIC_FAST_SLOT_NEWFSTATAT], AT_FDCWD, (long)"/usr/bin/env", (long)&st, 0, 0), 0);
    EXPECT_EQ(st.st_dev, vdev);
    EXPECT_EQ(st.st_ino, vino);
    EXPECT_EQ(st.st_mtim.tv_sec, 1700000000);
    EXPECT_EQ(st.st_mtim.tv_nsec, 0);
    EXPECT_EQ(st.st_ctim.tv_sec, 1700000000);
    EXPECT_EQ(st.st_size, real.st_size);
    EXPECT_EQ(st.st_mode, real.st_mode);
    EXPECT_EQ(st.st_blksize, 4096);
    EXPECT_EQ(st.st_blocks, (real.st_size + 4095) / 4096 * 8);

    struct statx sx{};
    EXPECT_EQ(call_fast_entry(h->entry[HERMETIC_FAST_SLOT_STATX], AT_FDCWD, (long)"/usr/bin/env", 0, STATX_INO, (long)&sx), 0);
    EXPECT_EQ(sx.stx_ino, vino);
    EXPECT_EQ(sx.stx_dev_major, 0u);
    EXPECT_EQ(sx.stx_dev_minor, 0x123u);
    EXPECT_EQ(sx.stx_mnt_id, 0x123u);
    EXPECT_EQ(sx.stx_btime.tv_sec, 1700000000);
    EXPECT_EQ(sx.stx_mask, STATX_BASIC_STATS | STATX_BTIME | STATX_MNT_ID);
    EXPECT_EQ(sx.stx_size, static_cast<uint64_t>(real.st_size));

    // The old calls (__xstat, __fxstat, __lxstat) alike.
    for (unsigned slot : {HERMETIC_FAST_SLOT_STAT, HERMETIC_FAST_SLOT_LSTAT}) {
        struct stat o{};
        EXPECT_EQ(call_fast_entry(h->entry[slot], (long)"/usr/bin/env", (long)&o, 0, 0, 0), 0);
        EXPECT_EQ(o.st_ino, vino);
        EXPECT_EQ(o.st_dev, vdev);
    }
    {
        int fd = ::open("/usr/bin/env", O_RDONLY | O_CLOEXEC);
        ASSERT_GE(fd, 0);
        struct stat o{};
        EXPECT_EQ(call_fast_entry(h->entry[HERMETIC_FAST_SLOT_FSTAT], fd, (long)&o, 0, 0, 0), 0);
        EXPECT_EQ(o.st_ino, vino);
        EXPECT_EQ(o.st_mtim.tv_sec, 1700000000);
        ::close(fd);
    }
    EXPECT_EQ(call_fast_entry(h->entry[HERMETIC_FAST_SLOT_STAT], (long)"/no/such/file", (long)&st, 0, 0, 0), -ENOENT);
    EXPECT_EQ(call_fast_entry(h->entry[HERMETIC_FAST_SLOT_NEWFSTATAT], AT_FDCWD, (long)"/no/such/file", (long)&st, 0, 0), -ENOENT);
    EXPECT_EQ(call_fast_entry(h->entry[HERMETIC_FAST_SLOT_NEWFSTATAT], AT_FDCWD, (long)"/usr/bin/env/x", (long)&st, 0, 0), -ENOTDIR);
    // Each answer counted: newfstatat, statx, stat, lstat, fstat; three missing.
    EXPECT_EQ(*answered, 5u);
    EXPECT_EQ(*missing, 3u);
    // Not in the table: re-issued as it was (unfiltered here: the real answer).
    struct stat sh{};
    ASSERT_EQ(::stat("/bin/sh", &sh), 0);
    EXPECT_EQ(call_fast_entry(h->entry[HERMETIC_FAST_SLOT_NEWFSTATAT], AT_FDCWD, (long)"/bin/sh", (long)&st, 0, 0), 0);
    EXPECT_EQ(st.st_ino, sh.st_ino);
    // Taken back (a utimensat changed its times): the kernel's answer again.
    fast.unpublish(real.st_dev, real.st_ino);
    EXPECT_EQ(call_fast_entry(h->entry[HERMETIC_FAST_SLOT_NEWFSTATAT], AT_FDCWD, (long)"/usr/bin/env", (long)&st, 0, 0), 0);
    EXPECT_EQ(st.st_ino, real.st_ino);
    // A bad buffer fails like the syscall, it does not crash.
    EXPECT_EQ(call_fast_entry(h->entry[HERMETIC_FAST_SLOT_NEWFSTATAT], AT_FDCWD, (long)"/usr/bin/env", 8, 0, 0), -EFAULT);
    // What was re-issued is the supervisor's to count.
    EXPECT_EQ(*answered, 5u);
    EXPECT_EQ(*missing, 3u);
    ::munmap(scratch, 4096);
    ::munmap(at, HERMETIC_FAST_SIZE);
}

}  // namespace
}  // namespace hermetic::sandbox::determinism
