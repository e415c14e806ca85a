// Groups, name checking, rule validation, digest and name<->number lookups.
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include "common/sha256.hpp"

#include "syscall-policy/groups.hpp"
#include "syscall-policy/policy.hpp"

namespace hermetic::policy {
namespace {

bool contains(const std::vector<std::string>& v, std::string_view s) { return std::find(v.begin(), v.end(), s) != v.end(); }

std::string compile_error(const Policy& p) {
    try {
        (void)compile(p);
    } catch (const PolicyError& e) {
        return e.what();
    }
    return "";
}

Policy with(std::vector<Rule> rules) {
    Policy p;
    p.rules = {{"@default", {}, Action::allow(), "base"}};
    for (Rule& r : rules) p.rules.push_back(std::move(r));
    return p;
}

TEST(Groups, ListedSortedAndEveryMemberKnownToLibseccomp) {
    const auto& groups = syscall_groups();
    ASSERT_GE(groups.size(), 30u);
    EXPECT_TRUE(std::is_sorted(groups.begin(), groups.end(), [](auto& a, auto& b) { return a.name < b.name; }));
    for (const SyscallGroup& g : groups) {
        EXPECT_TRUE(g.name.starts_with('@'));
        EXPECT_FALSE(g.description.empty()) << g.name;
        EXPECT_FALSE(g.members.empty()) << g.name;
        for (const std::string& name : expand_syscall_group(g.name))
            EXPECT_TRUE(syscall_number(name, Arch::X86_64) || syscall_number(name, Arch::I386) || name == "send" ||
                        name == "recv")
                << g.name << ": " << name;
        // ... and the compiler accepts it, which checks every name through libseccomp.
        Policy p;
        p.rules = {{std::string(g.name), {}, Action::error(EPERM), "groups test"}};
        EXPECT_NO_THROW((void)compile(p)) << g.name;
    }
}

TEST(Groups, RequiredGroupsHaveTheirMembers) {
    const std::vector<std::pair<const char*, std::vector<const char*>>> required = {
        {"@aio", {"io_setup", "io_submit"}},
        {"@basic-io", {"read", "write", "close"}},
        {"@chown", {"chown", "fchownat"}},
        {"@clock-set", {"settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "stime"}},
        {"@time-read", {"clock_gettime", "gettimeofday"}},
        {"@cpu-emulation", {"modify_ldt", "vm86"}},
        {"@debug", {"ptrace", "perf_event_open"}},
        {"@process-tracing", {"ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp"}},
        {"@file-system", {"openat", "statx", "unlinkat"}},
        {"@io-event", {"epoll_wait", "poll", "eventfd2"}},
        {"@ipc", {"pipe2", "shmget", "memfd_create"}},
        {"@keyring", {"add_key", "keyctl", "request_key"}},
        {"@memlock", {"mlock", "mlockall"}},
        {"@module", {"init_module", "finit_module", "delete_module"}},
        {"@mount",
         {"mount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount", "fspick", "open_tree", "move_mount",
          "mount_setattr"}},
        {"@namespaces", {"unshare", "setns"}},
        {"@network-io", {"socket", "connect", "sendmsg"}},
        {"@obsolete", {"uselib", "_sysctl"}},
        {"@privileged", {"acct", "sethostname", "chroot"}},
        {"@process", {"clone", "execve", "wait4", "kill"}},
        {"@random", {"getrandom"}},
        {"@directory-read", {"getdents", "getdents64"}},
        {"@raw-io", {"iopl", "ioperm"}},
        {"@reboot", {"reboot", "kexec_load"}},
        {"@resources", {"setrlimit", "sched_setaffinity"}},
        {"@setuid", {"setuid", "setresgid"}},
        {"@signal", {"rt_sigaction", "sigaltstack"}},
        {"@swap", {"swapon", "swapoff"}},
        {"@sync", {"fsync", "sync"}},
        {"@timer", {"timerfd_create", "setitimer"}},
        {"@io-uring", {"io_uring_setup", "io_uring_enter", "io_uring_register"}},
        {"@kernel",
         {"syslog", "acct", "kexec_load", "kexec_file_load", "bpf", "perf_event_open", "userfaultfd", "lookup_dcookie",
          "quotactl", "quotactl_fd", "nfsservctl", "uselib", "vhangup", "open_by_handle_at", "fanotify_init",
          "fanotify_mark"}},
    };
    for (const auto& [group, members] : required) {
        ASSERT_NE(find_syscall_group(group), nullptr) << group;
        auto names = expand_syscall_group(group);
        for (const char* m : members) EXPECT_TRUE(contains(names, m)) << group << " lacks " << m;
    }
    EXPECT_FALSE(contains(expand_syscall_group("@process"), "unshare"));
    EXPECT_FALSE(contains(expand_syscall_group("@network-io"), "socketcall"));
    EXPECT_EQ(find_syscall_group("@nonsense"), nullptr);
    EXPECT_THROW(expand_syscall_group("@nonsense"), PolicyError);
}

TEST(Names, UnknownSyscallIsAnErrorNamingIt) {
    std::string e = compile_error(with({{"frobnicate", {}, Action::allow(), "my.policy:7"}}));
    EXPECT_NE(e.find("frobnicate"), std::string::npos) << e;
    EXPECT_NE(e.find("my.policy:7"), std::string::npos) << e;
    e = compile_error(with({{"@frobnicate", {}, Action::allow(), "my.policy:8"}}));
    EXPECT_NE(e.find("@frobnicate"), std::string::npos) << e;
    EXPECT_NE(e.find("my.policy:8"), std::string::npos) << e;
    // A syscall of another architecture isn't one of ours.
    EXPECT_NE(compile_error(with({{"sync_file_range2", {}, Action::allow(), "x"}})), "");
    EXPECT_NE(compile_error(with({{"", {}, Action::allow(), "x"}})), "");
    // Existing on one of our two ABIs is enough.
    EXPECT_EQ(compile_error(with({{"chown32", {}, Action::allow(), "x"}})), "");
    EXPECT_EQ(compile_error(with({{"newfstatat", {}, Action::allow(), "x"}})), "");
    EXPECT_EQ(compile_error(with({{"send", {}, Action::allow(), "x"}})), "");  // i386: socketcall only
    // The multiplexers are derived from the calls they carry.
    EXPECT_NE(compile_error(with({{"socketcall", {}, Action::allow(), "x"}})).find("socketcall"), std::string::npos);
    EXPECT_NE(compile_error(with({{"ipc", {}, Action::allow(), "x"}})), "");
}

TEST(Names, NumbersAndNames) {
    EXPECT_EQ(syscall_number("read"), 0);
    EXPECT_EQ(syscall_number("read", Arch::I386), 3);
    EXPECT_EQ(syscall_number("socket", Arch::X86_64), 41);
    EXPECT_EQ(syscall_number("socket", Arch::I386), 359);
    EXPECT_EQ(syscall_number("unshare", Arch::I386), 310);
    EXPECT_EQ(syscall_number("chown32", Arch::X86_64), std::nullopt);
    EXPECT_EQ(syscall_number("newfstatat", Arch::I386), std::nullopt);
    EXPECT_EQ(syscall_number("nonsense"), std::nullopt);
    EXPECT_EQ(syscall_name(0), "read");
    EXPECT_EQ(syscall_name(359, Arch::I386), "socket");
    EXPECT_EQ(syscall_name(102, Arch::I386), "socketcall");
    EXPECT_EQ(syscall_name(5000), "");
    EXPECT_EQ(syscall_name(-1), "");
}

TEST(Validation, RejectsRulesThatCantBeCompiledFaithfully) {
    auto rule = [](std::vector<ArgCondition> c, Action a = Action::error(EPERM)) {
        return with({{"ioctl", {}, Action::allow(), "x"}, {"ioctl", std::move(c), a, "bad"}});
    };
    // Two comparisons on one argument (libseccomp: -EINVAL).
    EXPECT_NE(compile_error(rule({{.index = 1, .op = CompareOp::Gt, .value = 1},
                                  {.index = 1, .op = CompareOp::Lt, .value = 9}})),
              "");
    EXPECT_NE(compile_error(rule({{.index = 6, .op = CompareOp::Eq, .value = 1}})), "");
    EXPECT_NE(compile_error(rule({{.index = 1, .op = CompareOp::Lt, .value = 5, .width32 = true}})), "");
    EXPECT_NE(compile_error(rule({{.index = 1, .op = CompareOp::Eq, .value = uint64_t{1} << 32, .width32 = true}})), "");
    EXPECT_NE(compile_error(rule({{.index = 1, .op = CompareOp::MaskedEq, .value = 3, .mask = 1}})), "");
    EXPECT_NE(compile_error(rule({{.index = 1, .op = CompareOp::MaskedEq, .value = 0, .mask = 0}})), "");
    EXPECT_NE(compile_error(rule({{.index = 1, .op = CompareOp::Eq, .value = 1, .mask = 1}})), "");
    EXPECT_NE(compile_error(rule({{.index = 1, .op = CompareOp::Gt, .value = uint64_t{1} << 33}})), "");
    EXPECT_NE(compile_error(rule({{.index = 1, .op = CompareOp::Lt, .value = 0}})), "");
    // A conditional allow can't widen the table.
    EXPECT_NE(compile_error(rule({{.index = 1, .op = CompareOp::Eq, .value = 1}}, Action::allow())), "");
    // Errno outside 1..4095.
    EXPECT_NE(compile_error(with({{"mount", {}, Action::error(0), "x"}})), "");
    EXPECT_NE(compile_error(with({{"mount", {}, Action::error(5000), "x"}})), "");
    Policy p = with({});
    p.default_action = Action::virtualize();
    EXPECT_NE(compile_error(p), "");
    p.default_action = Action::error(0);
    EXPECT_NE(compile_error(p), "");
    // Fine: the same in valid form.
    EXPECT_EQ(compile_error(rule({{.index = 1, .op = CompareOp::Eq, .value = 0x5412, .width32 = true}})), "");
    EXPECT_EQ(compile_error(rule({{.index = 1, .op = CompareOp::Gt, .value = 0xffffffff}})), "");
}

TEST(Validation, OverlappingConditionalRulesNeedOneAction) {
    auto two = [](ArgCondition a, Action aa, ArgCondition b, Action ba) {
        return with({{"ioctl", {}, Action::allow(), "x"}, {"ioctl", {a}, aa, "first.policy:1"}, {"ioctl", {b}, ba, "second.policy:2"}});
    };
    const ArgCondition is5{.index = 1, .op = CompareOp::Eq, .value = 5};
    const ArgCondition is6{.index = 1, .op = CompareOp::Eq, .value = 6};
    const ArgCondition low_bit{.index = 1, .op = CompareOp::MaskedEq, .value = 1, .mask = 1};
    const ArgCondition above4{.index = 1, .op = CompareOp::Gt, .value = 4};
    const ArgCondition fd0{.index = 0, .op = CompareOp::Eq, .value = 0};
    EXPECT_EQ(compile_error(two(is5, Action::error(EPERM), is6, Action::kill())), "");      // disjoint
    EXPECT_EQ(compile_error(two(is6, Action::error(EPERM), low_bit, Action::kill())), "");  // 6 is even
    EXPECT_EQ(compile_error(two(is5, Action::error(EPERM), above4, Action::error(EPERM))), "");  // same action
    std::string e = compile_error(two(is5, Action::error(EPERM), low_bit, Action::kill()));
    EXPECT_NE(e.find("first.policy:1"), std::string::npos) << e;
    EXPECT_NE(e.find("second.policy:2"), std::string::npos) << e;
    EXPECT_NE(compile_error(two(is5, Action::error(EPERM), above4, Action::error(EACCES))), "");
    EXPECT_NE(compile_error(two(is5, Action::error(EPERM), fd0, Action::kill())), "");  // different arguments
    // On i386 only the low 32 bits exist: 5 and 1<<32|5 are the same value there.
    EXPECT_NE(compile_error(two(is5, Action::error(EPERM),
                                {.index = 1, .op = CompareOp::Eq, .value = (uint64_t{1} << 32) | 5}, Action::kill())),
              "");
    // Socket calls: i386 socketcall can't tell rules apart, so actions must agree.
    EXPECT_NE(compile_error(with({{"socket", {{.index = 0, .op = CompareOp::Eq, .value = 17}}, Action::error(EPERM), "a"},
                                  {"socket", {{.index = 0, .op = CompareOp::Eq, .value = 5}}, Action::kill(), "b"}})),
              "");
}

TEST(Semantics, DecisionNamesTheRule) {
    const Policy p = baseline_policy();
    const PreparedPolicy prepared(p);
    const uint64_t tiocsti[6] = {1, 0x5412};
    Decision d = prepared.decide(Arch::X86_64, 16, tiocsti);
    EXPECT_EQ(d.action, Action::error(EPERM));
    ASSERT_NE(d.rule, nullptr);
    EXPECT_EQ(d.rule->origin, "baseline: terminal injection");
    const uint64_t none[6] = {};
    d = prepared.decide(Arch::X86_64, 1000, none);
    EXPECT_EQ(d.action, Action::error(ENOSYS));
    EXPECT_EQ(d.rule, nullptr);
    d = prepared.decide(Arch::I386, 21 /*mount*/, none);
    EXPECT_EQ(d.action, Action::error(EPERM));
    ASSERT_NE(d.rule, nullptr);
    EXPECT_EQ(d.rule->target, "@mount");
    d = prepared.decide(Arch::X86_64, 0x40000000 | 39, none);
    EXPECT_EQ(d.action, Action::kill());
    EXPECT_EQ(decide(p, Arch::X86_64, 0, none).action, Action::allow());
}

TEST(Digest, StableAndSensitive) {
    const Policy base = baseline_policy();
    const std::string d0 = compile(base).digest;
    EXPECT_EQ(d0, compile(baseline_policy()).digest);
    EXPECT_EQ(d0, compile(base).digest);

    // Origins and the name don't change behaviour, so not the digest either.
    Policy renamed = base;
    renamed.name = "other";
    for (Rule& r : renamed.rules) r.origin = "elsewhere";
    EXPECT_EQ(compile(renamed).digest, d0);

    std::set<std::string> seen = {d0};
    auto differs = [&](const Policy& p, const char* what, CompileOptions o = {}) {
        std::string d = compile(p, o).digest;
        EXPECT_TRUE(seen.insert(d).second) << what;
    };
    Policy p = base;
    p.default_action = Action::error(EPERM);
    differs(p, "default");
    p = base;
    p.rules.push_back({"getpid", {}, Action::error(EPERM), "x"});
    differs(p, "one more table rule");
    p = base;
    p.rules.push_back({"ioctl", {{.index = 1, .op = CompareOp::Eq, .value = 0x5413, .width32 = true}},
                       Action::error(EPERM), "x"});
    differs(p, "one more conditional rule");
    p = base;
    for (Rule& r : p.rules)
        if (r.action == Action::error(EAFNOSUPPORT)) r.action = Action::error(EACCES);
    differs(p, "errno of conditional rules");
    differs(base, "route option", {.route_denials_to_supervisor = true});

    const std::string text = canonical_text(base);
    EXPECT_NE(text.find("default errno 38"), std::string::npos);
    EXPECT_NE(text.find("arches x86_64 i386"), std::string::npos);
    EXPECT_NE(text.find("table mount errno 1"), std::string::npos);
    EXPECT_NE(text.find("cond ioctl a1 & 0xffffffff == 0x5412 -> errno 1"), std::string::npos);
    EXPECT_EQ(sha256_hex(text), d0);
}

}  // namespace
}  // namespace hermetic::policy
