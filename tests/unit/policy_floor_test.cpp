// A user's policy stacked on the admin's floor: refusals name the user's line
// and the floor's rule; stricter user rules take effect; the effective policy is
// never less restrictive than the floor for any syscall (checked on decide()
// and on the compiled filters).
#include <fcntl.h>
#include <gtest/gtest.h>

#include <array>
#include <cerrno>
#include <map>

#include "syscall-policy/floor.hpp"
#include "syscall-policy/groups.hpp"
#include "syscall-policy/parser.hpp"
#include "tests/unit/policy_bpf_interpreter.hpp"

namespace hermetic::policy {
namespace {

using namespace hermetic::policy::testing;

// The floor of these tests: the baseline plus virtualized clocks and randomness
// (what build.policy gets from the determinism rules), and a closed i386 entry
// in a second variant.
const char* kFloorText =
    "include baseline\n"
    "virtualize @time-read getrandom\n";

ParseOptions options() {
    ParseOptions o;
    o.loader = [](const std::string& name) -> std::optional<std::string> {
        if (name == "floor") return std::string(kFloorText);
        return std::nullopt;
    };
    return o;
}

const Policy& floor_policy() {
    static const Policy p = parse_policy(kFloorText, "floor.policy", options());
    return p;
}

Policy user(std::string_view text) { return parse_policy(text, "my.policy", options()); }

std::string refusal(std::string_view text, const Policy& floor = floor_policy()) {
    try {
        (void)stack(floor, user(text));
    } catch (const PolicyError& e) {
        return e.what();
    }
    return "(accepted)";
}

const std::string kOrder = "; a user policy may only add restrictions (allow < log < virtualize < deny < kill)";

Action verdict(const Policy& p, const char* name, std::initializer_list<uint64_t> args = {}, Arch arch = Arch::X86_64) {
    uint64_t a[6] = {};
    size_t i = 0;
    for (uint64_t v : args) a[i++] = v;
    return decide(p, arch, *syscall_number(name, arch), a).action;
}

TEST(Restrictiveness, Order) {
    EXPECT_LT(restrictiveness(Action::allow()), restrictiveness(Action::log()));
    EXPECT_LT(restrictiveness(Action::log()), restrictiveness(Action::virtualize()));
    EXPECT_LT(restrictiveness(Action::virtualize()), restrictiveness(Action::error(EPERM)));
    EXPECT_EQ(restrictiveness(Action::error(EPERM)), restrictiveness(Action::error(ENOSYS)));
    EXPECT_LT(restrictiveness(Action::error(EPERM)), restrictiveness(Action::kill()));
}

// ---- refused ---------------------------------------------------------------------

TEST(Floor, AllowingAFloorDenialIsRefused) {
    EXPECT_EQ(refusal("\nallow ptrace\n"),
              "my.policy:2: \"allow ptrace\" would lift the floor's \"deny EPERM\" of ptrace (baseline: deny)" + kOrder);
    EXPECT_EQ(refusal("virtualize mount\n"),
              "my.policy:1: \"virtualize mount\" would lift the floor's \"deny EPERM\" of mount (baseline: deny)" + kOrder);
    EXPECT_EQ(refusal("log clone3\n"),
              "my.policy:1: \"log clone3\" would lift the floor's \"deny ENOSYS\" of clone3 (baseline: graceful deny)" +
                  kOrder);
    // A syscall the floor leaves to its default.
    EXPECT_EQ(refusal("allow sethostname\n"), "my.policy:1: \"allow sethostname\" would lift the floor's \"deny ENOSYS\" "
                                             "of sethostname (baseline: default)" + kOrder);
    EXPECT_EQ(refusal("allow vm86\n"),
              "my.policy:1: \"allow vm86\" would lift the floor's \"deny EPERM\" of vm86 (baseline: deny)" + kOrder);
    EXPECT_EQ(refusal("allow lookup_dcookie\n"),
              "my.policy:1: \"allow lookup_dcookie\" would lift the floor's \"deny EPERM\" of lookup_dcookie (baseline: "
              "deny)" + kOrder);
}

TEST(Floor, VirtualizedCallsCantBecomeRealOnes) {
    EXPECT_EQ(refusal("allow clock_gettime\n"),
              "my.policy:1: \"allow clock_gettime\" would lift the floor's \"virtualize\" of clock_gettime "
              "(floor.policy:2)" + kOrder);
    EXPECT_EQ(refusal("log getrandom\n"),
              "my.policy:1: \"log getrandom\" would lift the floor's \"virtualize\" of getrandom (floor.policy:2)" + kOrder);
    // Conditionally too.
    EXPECT_EQ(refusal("log clock_gettime if arg0 == 1\n"),
              "my.policy:1: \"log clock_gettime if arg0 == 0x1\" would lift the floor's \"virtualize\" of clock_gettime "
              "(floor.policy:2)" + kOrder);
}

TEST(Floor, AGroupRuleNamesItsFirstLiftedSyscallAndTheCount) {
    const size_t n = expand_syscall_group("@mount").size();
    EXPECT_EQ(refusal("allow @mount\n"), "my.policy:1: \"allow @mount\" would lift the floor's \"deny EPERM\" of chroot and " +
                                             std::to_string(n - 1) + " more (baseline: deny)" + kOrder);
}

TEST(Floor, IncludingAWeakerProfileIsRefusedWithItsOrigin) {
    // The baseline allows the clocks and the randomness the floor virtualizes
    // (the last of its rules naming them are "allow @random" and "allow
    // @time-read"): the user must include the floor itself (or nothing).
    const std::string e = refusal("include baseline\ndeny EPERM connect\n");
    EXPECT_EQ(e, "baseline: allow: \"allow @random\" would lift the floor's \"virtualize\" of getrandom "
                 "(floor.policy:2)" + kOrder + " [1 more refused rule(s)]");
    EXPECT_EQ(refusal("include floor\ndeny EPERM connect\n"), "(accepted)");
}

TEST(Floor, DefaultAndI386AreRankedToo) {
    EXPECT_EQ(refusal("default allow\n"), "my.policy:1: \"default allow\" would lift the floor's \"default deny ENOSYS\" "
                                          "(baseline: default)" + kOrder);
    const Policy closed = parse_policy("include floor\nabi i386 kill\n", "closed.policy", options());
    EXPECT_EQ(refusal("abi i386 deny EPERM\n", closed),
              "my.policy:1: \"abi i386 deny EPERM\" would lift the floor's \"abi i386 kill\" (closed.policy:2)" + kOrder);
    EXPECT_EQ(refusal("abi i386 kill\n", closed), "(accepted)");
}

TEST(Floor, AConditionalRuleThatOverlapsTheFloorsNamesBoth) {
    EXPECT_EQ(refusal("kill ioctl if arg1 == TIOCSTI\n"),
              "stacking my on the floor floor: conditional rules for ioctl (baseline: terminal injection: a1 & "
              "0xffffffff == 0x5412 -> errno 1, my.policy:1: a1 == 0x5412 -> kill) can match the same call with "
              "different actions; make them disjoint or give them one action");
}

// ---- accepted ------------------------------------------------------------------------

TEST(Floor, StricterUserRulesWin) {
    const Policy e = stack(floor_policy(), user("deny EPERM clock_gettime\n"
                                                "kill mount\n"
                                                "log read\n"
                                                "virtualize uname\n"
                                                "deny EACCES connect\n"
                                                "deny EPERM openat if arg2 & O_CREAT == O_CREAT\n"
                                                "abi i386 deny ENOSYS\n"));
    EXPECT_EQ(e.name, "floor+my");
    EXPECT_EQ(verdict(e, "clock_gettime"), Action::error(EPERM));
    EXPECT_EQ(verdict(e, "clock_getres"), Action::virtualize());  // untouched
    EXPECT_EQ(verdict(e, "mount"), Action::kill());
    EXPECT_EQ(verdict(e, "read"), Action::log());
    EXPECT_EQ(verdict(e, "uname"), Action::virtualize());
    EXPECT_EQ(verdict(e, "connect"), Action::error(EACCES));
    EXPECT_EQ(verdict(e, "openat", {0, 0, O_CREAT | O_WRONLY}), Action::error(EPERM));
    EXPECT_EQ(verdict(e, "openat", {0, 0, O_RDONLY}), Action::allow());
    EXPECT_EQ(verdict(e, "read", {}, Arch::I386), Action::error(ENOSYS));
    EXPECT_EQ(e.i386_origin, "my.policy:7");
    // The floor's own argument rules still hold under the user's log.
    EXPECT_EQ(stack(floor_policy(), user("log ioctl\n")).rules.back().origin, "my.policy:1");
    EXPECT_EQ(verdict(stack(floor_policy(), user("log ioctl\n")), "ioctl", {1, 0x5412}), Action::error(EPERM));
    // Origins say who decided.
    const uint64_t args[6] = {};
    const Decision d = decide(e, Arch::X86_64, *syscall_number("mount"), args);
    ASSERT_NE(d.rule, nullptr);
    EXPECT_EQ(d.rule->origin, "my.policy:2");
}

TEST(Floor, OnATieTheFloorsFormStays) {
    const Policy e = stack(floor_policy(), user("deny EACCES mount\nvirtualize clock_gettime\n"));
    EXPECT_EQ(verdict(e, "mount"), Action::error(EPERM));
    EXPECT_EQ(e.rules.size(), floor_policy().rules.size());  // nothing to add
    EXPECT_EQ(compile(e).digest, compile(floor_policy()).digest);
}

TEST(Floor, WithoutADefaultTheUserHasNoOpinionOnTheRest) {
    const Policy e = stack(floor_policy(), user("deny EPERM connect\n"));
    EXPECT_EQ(verdict(e, "connect"), Action::error(EPERM));
    EXPECT_EQ(verdict(e, "read"), Action::allow());
    EXPECT_EQ(verdict(e, "clock_gettime"), Action::virtualize());
    EXPECT_EQ(e.default_action, Action::error(ENOSYS));
    EXPECT_EQ(e.default_origin, "baseline: default");
}

TEST(Floor, AStricterUserDefaultMakesAnAllowlist) {
    const Policy e = stack(floor_policy(), user("default kill\nallow read write exit_group\nvirtualize clock_gettime\n"));
    EXPECT_EQ(verdict(e, "read"), Action::allow());
    EXPECT_EQ(verdict(e, "exit_group"), Action::allow());
    EXPECT_EQ(verdict(e, "clock_gettime"), Action::virtualize());
    EXPECT_EQ(verdict(e, "openat"), Action::kill());  // the floor allows it, the user doesn't
    EXPECT_EQ(verdict(e, "mount"), Action::kill());   // the floor denies it, the user kills
    EXPECT_EQ(verdict(e, "clock_getres"), Action::kill());
    EXPECT_EQ(e.default_action, Action::kill());
    EXPECT_EQ(e.default_origin, "my.policy:1");
    const uint64_t args[6] = {};
    EXPECT_EQ(decide(e, Arch::X86_64, 999, args).action, Action::kill());
    // Shown compactly: the default's rules are one line.
    size_t default_lines = 0;
    for (const PolicyLine& l : format_policy(e)) default_lines += l.origin == "my.policy:1";
    EXPECT_EQ(default_lines, 2u);  // "default kill" and "kill <every floor-allowed syscall>"
}

// ---- never below the floor (decide() and the compiled filters) ----------------------------

int kernel_rank(uint32_t ret) {
    switch (ret & SECCOMP_RET_ACTION_FULL) {
        case SECCOMP_RET_ALLOW: return 0;
        case SECCOMP_RET_USER_NOTIF: return 1;  // log or virtualize
        case SECCOMP_RET_ERRNO: return 3;
        case SECCOMP_RET_KILL_PROCESS: return 4;
    }
    return -1;
}

TEST(Floor, EffectivePolicyIsNeverBelowTheFloor) {
    const std::vector<std::string> users = {
        "deny EPERM connect\n",
        "default kill\nallow read write exit_group brk mmap\n",
        "default deny EPERM\ninclude floor\nlog openat read\n",
        "log *\n",
        "virtualize @file-system\nkill @network-io\nabi i386 kill\n",
        "deny EPERM openat if arg2 & O_CREAT == O_CREAT\ndeny EPERM clone if arg0 & CLONE_PTRACE == CLONE_PTRACE\n",
        "kill @process-tracing @mount\ndeny ENOSYS @aio\n",
    };
    const Policy& f = floor_policy();
    const CompiledPolicy fc = compile(f);
    const PreparedPolicy fp(f);
    for (const std::string& text : users) {
        SCOPED_TRACE(text);
        const Policy u = user(text);
        const Policy e = stack(f, u);
        const CompiledPolicy ec = compile(e);
        const PreparedPolicy ep(e), up(u);
        const std::vector<std::array<uint64_t, 6>> arg_sets = {
            {}, {1, 0x5412, 0x41, 0, 0, 0}, {0x10000000, 1, 0x40, 0, 0, 0}, {17, 3, 0, 0, 0, 0}};
        for (Arch arch : {Arch::X86_64, Arch::I386}) {
            for (int nr = 0; nr < 460; ++nr) {
                for (const auto& args : arg_sets) {
                    const Decision fd = fp.decide(arch, nr, args.data());
                    const Decision ed = ep.decide(arch, nr, args.data());
                    ASSERT_GE(restrictiveness(ed.action), restrictiveness(fd.action))
                        << syscall_name(nr, arch) << ": floor " << format_action(fd.action) << ", effective "
                        << format_action(ed.action);
                    if (!u.default_origin.empty()) {
                        const Decision ud = up.decide(arch, nr, args.data());
                        ASSERT_GE(restrictiveness(ed.action), restrictiveness(ud.action)) << syscall_name(nr, arch);
                    }
                    seccomp_data d{};
                    d.nr = nr;
                    d.arch = audit_arch(arch);
                    for (int i = 0; i < 6; ++i) d.args[i] = args[i];
                    ASSERT_GE(kernel_rank(run_stack(ec, d)), kernel_rank(run_stack(fc, d))) << syscall_name(nr, arch);
                }
            }
        }
    }
}

}  // namespace
}  // namespace hermetic::policy
