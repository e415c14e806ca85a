// The policy text format: every construct, every error (exact
// "file:line:column: expected ..., got ..." text), includes (built-ins, loader,
// cycles, depth, size), `*`, and formatting back to text.
#include <gtest/gtest.h>

#include <cerrno>
#include <map>

#include "syscall-policy/groups.hpp"
#include "syscall-policy/parser.hpp"
#include "syscall-policy/policy.hpp"

namespace hermetic::policy {
namespace {

// In-memory profiles for includes.
struct Profiles {
    std::map<std::string, std::string> texts;
    std::vector<std::string> asked;
    ParseOptions options() {
        ParseOptions o;
        o.loader = [this](const std::string& name) -> std::optional<std::string> {
            asked.push_back(name);
            auto it = texts.find(name);
            if (it == texts.end()) return std::nullopt;
            return it->second;
        };
        return o;
    }
};

Policy parse(std::string_view text, ParseOptions o = {}) { return parse_policy(text, "t.policy", o); }

std::string parse_error(std::string_view text, ParseOptions o = {}, const std::string& file = "t.policy") {
    try {
        (void)parse_policy(text, file, o);
    } catch (const PolicyError& e) {
        return e.what();
    }
    return "(no error)";
}

ArgCondition cond(unsigned index, CompareOp op, uint64_t value, uint64_t mask = ~uint64_t{0}) {
    return {.index = index, .op = op, .value = value, .mask = mask};
}

void expect_rule(const Rule& r, const std::string& target, Action action, const std::string& origin,
                 std::vector<ArgCondition> conds = {}) {
    EXPECT_EQ(r.target, target);
    EXPECT_EQ(r.action, action) << target;
    EXPECT_EQ(r.origin, origin) << target;
    EXPECT_EQ(r.conditions, conds) << target;
}

// ---- constructs -------------------------------------------------------------------

TEST(Parser, ActionsTargetsAndOrigins) {
    const Policy p = parse(
        "# a comment line\n"
        "\n"
        "allow read write @basic-io   # trailing comment\n"
        "deny EPERM mount\n"
        "deny 13 chroot\n"
        "deny ENOTSUP pivot_root\n"
        "kill ptrace\n"
        "virtualize @time-read\n"
        "log getpid\n"
        "\tkill   kill\t\n");
    EXPECT_EQ(p.name, "t");
    ASSERT_EQ(p.rules.size(), 10u);
    expect_rule(p.rules[0], "read", Action::allow(), "t.policy:3");
    expect_rule(p.rules[1], "write", Action::allow(), "t.policy:3");
    expect_rule(p.rules[2], "@basic-io", Action::allow(), "t.policy:3");
    expect_rule(p.rules[3], "mount", Action::error(EPERM), "t.policy:4");
    expect_rule(p.rules[4], "chroot", Action::error(EACCES), "t.policy:5");
    expect_rule(p.rules[5], "pivot_root", Action::error(EOPNOTSUPP), "t.policy:6");
    expect_rule(p.rules[6], "ptrace", Action::kill(), "t.policy:7");
    expect_rule(p.rules[7], "@time-read", Action::virtualize(), "t.policy:8");
    expect_rule(p.rules[8], "getpid", Action::log(), "t.policy:9");
    expect_rule(p.rules[9], "kill", Action::kill(), "t.policy:10");  // the syscall named kill
    // No default statement: the struct's default, marked as not set.
    EXPECT_EQ(p.default_action, Action::error(ENOSYS));
    EXPECT_EQ(p.default_origin, "");
    EXPECT_FALSE(p.i386_action);
}

TEST(Parser, DefaultAndAbi) {
    Policy p = parse("default allow\n");
    EXPECT_EQ(p.default_action, Action::allow());
    EXPECT_EQ(p.default_origin, "t.policy:1");
    p = parse("default kill\n");
    EXPECT_EQ(p.default_action, Action::kill());
    p = parse("default deny EPERM\ndefault deny ENOSYS\n");  // the last one counts
    EXPECT_EQ(p.default_action, Action::error(ENOSYS));
    EXPECT_EQ(p.default_origin, "t.policy:2");
    p = parse("abi i386 kill\n");
    ASSERT_TRUE(p.i386_action);
    EXPECT_EQ(*p.i386_action, Action::kill());
    EXPECT_EQ(p.i386_origin, "t.policy:1");
    p = parse("abi i386 deny ENOSYS\n");
    EXPECT_EQ(*p.i386_action, Action::error(ENOSYS));
}

TEST(Parser, Conditions) {
    const Policy p = parse(
        "deny EPERM ioctl if arg1 &0xffffffff == 0x5412\n"
        "deny EPERM ioctl if arg1 & 0xffffffff == TIOCLINUX\n"
        "deny EPERM clone if arg0 & CLONE_NEWUSER|CLONE_NEWNS == CLONE_NEWUSER\n"
        "deny EAFNOSUPPORT socket if arg0 > 63 and arg1 == SOCK_RAW && arg2 != 0\n"
        "kill personality if arg0 >= 0x10000\n"
        "deny EINVAL write if arg0 < 3\n"
        "deny EINVAL read if arg0 <= 4294967295 and arg2 == 18446744073709551615 && arg3 == 0XFF\n");
    ASSERT_EQ(p.rules.size(), 7u);
    expect_rule(p.rules[0], "ioctl", Action::error(EPERM), "t.policy:1", {cond(1, CompareOp::MaskedEq, 0x5412, 0xffffffff)});
    expect_rule(p.rules[1], "ioctl", Action::error(EPERM), "t.policy:2", {cond(1, CompareOp::MaskedEq, 0x541C, 0xffffffff)});
    expect_rule(p.rules[2], "clone", Action::error(EPERM), "t.policy:3",
                {cond(0, CompareOp::MaskedEq, 0x10000000, 0x10020000)});
    expect_rule(p.rules[3], "socket", Action::error(EAFNOSUPPORT), "t.policy:4",
                {cond(0, CompareOp::Gt, 63), cond(1, CompareOp::Eq, 3), cond(2, CompareOp::Ne, 0)});
    expect_rule(p.rules[4], "personality", Action::kill(), "t.policy:5", {cond(0, CompareOp::Ge, 0x10000)});
    expect_rule(p.rules[5], "write", Action::error(EINVAL), "t.policy:6", {cond(0, CompareOp::Lt, 3)});
    expect_rule(p.rules[6], "read", Action::error(EINVAL), "t.policy:7",
                {cond(0, CompareOp::Le, 0xffffffff), cond(2, CompareOp::Eq, ~uint64_t{0}), cond(3, CompareOp::Eq, 0xff)});
}

TEST(Parser, ConditionalRuleOnSeveralTargets) {
    const Policy p = parse("deny EAFNOSUPPORT socket socketpair if arg0 == AF_PACKET\n");
    ASSERT_EQ(p.rules.size(), 2u);
    expect_rule(p.rules[0], "socket", Action::error(EAFNOSUPPORT), "t.policy:1", {cond(0, CompareOp::Eq, 17)});
    expect_rule(p.rules[1], "socketpair", Action::error(EAFNOSUPPORT), "t.policy:1", {cond(0, CompareOp::Eq, 17)});
}

TEST(Parser, CrLfAndNoFinalNewline) {
    const Policy p = parse("allow read\r\nkill ptrace");
    ASSERT_EQ(p.rules.size(), 2u);
    expect_rule(p.rules[1], "ptrace", Action::kill(), "t.policy:2");
}

TEST(Parser, NameIsTheFileStem) {
    EXPECT_EQ(parse_policy("", "/etc/hermetic/policies/strict.policy").name, "strict");
    EXPECT_EQ(parse_policy("", "my-rules").name, "my-rules");
}

TEST(Parser, ErrnoNamesAndConstants) {
    EXPECT_EQ(errno_from_name("EPERM"), EPERM);
    EXPECT_EQ(errno_from_name("ENOSYS"), ENOSYS);
    EXPECT_EQ(errno_from_name("EWOULDBLOCK"), EAGAIN);
    EXPECT_EQ(errno_from_name("ENOTSUP"), EOPNOTSUPP);
    EXPECT_EQ(errno_from_name("EFOO"), std::nullopt);
    EXPECT_EQ(errno_name(EPERM), "EPERM");
    EXPECT_EQ(errno_name(4000), "4000");
    EXPECT_EQ(constant_value("AF_UNIX"), 1u);
    EXPECT_EQ(constant_value("CLONE_NEWUSER"), 0x10000000u);
    EXPECT_EQ(constant_value("TIOCSTI"), 0x5412u);
    EXPECT_EQ(constant_value("NOPE"), std::nullopt);
}

// ---- `*` ----------------------------------------------------------------------------

TEST(Parser, StarIsEverySyscallAllowedSoFar) {
    const Policy p = parse(
        "allow read write ioctl\n"
        "deny EPERM ioctl if arg1 == 5\n"
        "deny EPERM mount\n"
        "virtualize getrandom\n"
        "log *\n");
    std::vector<std::string> logged;
    for (const Rule& r : p.rules)
        if (r.origin == "t.policy:5") {
            EXPECT_EQ(r.action, Action::log());
            EXPECT_TRUE(r.conditions.empty());
            logged.push_back(r.target);
        }
    // Allowed ones only: a denial stays a denial, a virtualization stays one.
    EXPECT_EQ(logged, (std::vector<std::string>{"ioctl", "read", "write"}));
    const uint64_t args[6] = {0, 5, 0, 0, 0, 0};
    EXPECT_EQ(decide(p, Arch::X86_64, *syscall_number("ioctl"), args).action, Action::error(EPERM));
}

TEST(Parser, StarWithADefaultAllowCoversUnnamedSyscalls) {
    const Policy p = parse("default allow\ndeny EPERM mount\nkill *\n");
    const uint64_t args[6] = {};
    EXPECT_EQ(decide(p, Arch::X86_64, *syscall_number("getpid"), args).action, Action::kill());
    EXPECT_EQ(decide(p, Arch::I386, *syscall_number("chown32", Arch::I386), args).action, Action::kill());
    EXPECT_EQ(decide(p, Arch::X86_64, *syscall_number("mount"), args).action, Action::error(EPERM));
    for (const Rule& r : p.rules) EXPECT_NE(r.target, "socketcall");
}

// ---- includes ---------------------------------------------------------------------

TEST(Include, BuiltinsComeFirstAndCantBeOverridden) {
    Profiles profiles;
    profiles.texts["baseline"] = "allow ptrace\n";  // must be ignored
    const Policy p = parse("include baseline\n", profiles.options());
    EXPECT_TRUE(profiles.asked.empty());
    const Policy b = baseline_policy();
    ASSERT_EQ(p.rules.size(), b.rules.size());
    EXPECT_EQ(canonical_text(p), canonical_text(b));
    EXPECT_EQ(p.default_origin, "baseline: default");
    EXPECT_EQ(p.rules.front().origin, "baseline: allow");
    // determinism is there even without a loader.
    EXPECT_NO_THROW((void)parse("include determinism\n"));
    EXPECT_EQ(builtin_profile_names(), (std::vector<std::string>{"baseline", "determinism"}));
}

TEST(Include, LoaderProfilesKeepTheirOwnOrigins) {
    Profiles profiles;
    profiles.texts["common"] = "# common rules\nallow read\ndefault deny EPERM\nabi i386 deny ENOSYS\n";
    const Policy p = parse("allow write\ninclude common\nkill ptrace\n", profiles.options());
    ASSERT_EQ(p.rules.size(), 3u);
    expect_rule(p.rules[0], "write", Action::allow(), "t.policy:1");
    expect_rule(p.rules[1], "read", Action::allow(), "common.policy:2");
    expect_rule(p.rules[2], "ptrace", Action::kill(), "t.policy:3");
    EXPECT_EQ(p.default_action, Action::error(EPERM));
    EXPECT_EQ(p.default_origin, "common.policy:3");
    EXPECT_EQ(p.i386_origin, "common.policy:4");
    // A later line of the including file overrides the included default.
    EXPECT_EQ(parse("include common\ndefault kill\n", profiles.options()).default_action, Action::kill());
    // An included profile without a default leaves the current one alone.
    profiles.texts["plain"] = "allow read\n";
    EXPECT_EQ(parse("default kill\ninclude plain\n", profiles.options()).default_action, Action::kill());
}

TEST(Include, DiamondsAreFineCyclesAreNot) {
    Profiles profiles;
    profiles.texts["a"] = "include c\n";
    profiles.texts["b"] = "include c\n";
    profiles.texts["c"] = "allow read\n";
    EXPECT_EQ(parse("include a\ninclude b\n", profiles.options()).rules.size(), 2u);

    profiles.texts["x"] = "allow read\ninclude y\n";
    profiles.texts["y"] = "\n\ninclude x\n";
    EXPECT_EQ(parse_error("include x\n", profiles.options()), "y.policy:3:9: include cycle: t -> x -> y -> x");
    profiles.texts["self"] = "include self\n";
    EXPECT_EQ(parse_error("include self\n", profiles.options()), "self.policy:1:9: include cycle: t -> self -> self");
    // The top-level file by its own name.
    EXPECT_EQ(parse_error("include t\n", profiles.options()), "t.policy:1:9: include cycle: t -> t");
}

TEST(Include, DepthIsBounded) {
    Profiles profiles;
    for (int i = 0; i < 12; ++i) profiles.texts["p" + std::to_string(i)] = "include p" + std::to_string(i + 1) + "\n";
    profiles.texts["p12"] = "allow read\n";
    ParseOptions o = profiles.options();
    o.max_include_depth = 8;
    // t -> p0 -> ... -> p7 is depth 8; p7 including p8 would be depth 9.
    EXPECT_EQ(parse_error("include p0\n", o), "p7.policy:1:9: includes nested deeper than 8");
    o.max_include_depth = 13;
    EXPECT_EQ(parse("include p0\n", o).rules.size(), 1u);
}

TEST(Include, MissingAndInvalidNames) {
    Profiles profiles;
    EXPECT_EQ(parse_error("\ninclude nope\n", profiles.options()),
              "t.policy:2:9: expected the name of a profile, got \"nope\" (no such profile)");
    EXPECT_EQ(profiles.asked, std::vector<std::string>{"nope"});
    profiles.asked.clear();
    EXPECT_EQ(parse_error("include build.policy\n", profiles.options()),
              "t.policy:1:9: expected the name of a profile (without .policy), got \"build.policy\"");
    EXPECT_EQ(parse_error("include ../etc/passwd\n", profiles.options()),
              "t.policy:1:11: expected a statement, a name, a number or an operator, got \"/\"");
    EXPECT_EQ(parse_error("include ..\n", profiles.options()),
              "t.policy:1:9: expected the name of a profile ([A-Za-z0-9_.-], at most 64 characters), got \"..\"");
    EXPECT_EQ(parse_error("include\n", profiles.options()),
              "t.policy:1:8: expected the name of a profile after include, got end of line");
    EXPECT_EQ(parse_error("include a b\n", profiles.options()),
              "t.policy:1:11: expected end of line after the profile name, got \"b\"");
    EXPECT_TRUE(profiles.asked.empty());  // nothing invalid reaches the loader
    // No loader at all: only built-ins.
    EXPECT_EQ(parse_error("include build\n"), "t.policy:1:9: expected the name of a profile, got \"build\" (no such profile)");
    EXPECT_TRUE(valid_profile_name("build"));
    EXPECT_TRUE(valid_profile_name("my_rules-2.v1"));
    for (const char* bad : {"", ".", "..", ".hidden", "a/b", "x.policy", "-x"}) EXPECT_FALSE(valid_profile_name(bad)) << bad;
    EXPECT_FALSE(valid_profile_name(std::string(65, 'a')));
}

TEST(Include, ErrorsInIncludedProfilesNameThatProfile) {
    Profiles profiles;
    profiles.texts["broken"] = "allow read\nallow opennat\n";
    EXPECT_EQ(parse_error("include broken\n", profiles.options()),
              "broken.policy:2:7: expected a syscall name or @group, got \"opennat\" (not a syscall libseccomp knows "
              "on x86-64 or i386)");
}

TEST(Include, SizeIsBounded) {
    Profiles profiles;
    profiles.texts["big"] = std::string(300, '#') + "\n";
    ParseOptions o = profiles.options();
    o.max_file_bytes = 256;
    EXPECT_EQ(parse_error("\ninclude big\n", o), "t.policy:2:9: profile \"big\" is 301 bytes (at most 256)");
    EXPECT_EQ(parse_error(std::string(257, '#'), o), "t.policy: profile \"t\" is 257 bytes (at most 256)");
    // Total over repeated includes (a diamond of diamonds can't blow up).
    profiles.texts["m"] = std::string(200, '#') + "\n";
    profiles.texts["two"] = "include m\ninclude m\n";
    o = profiles.options();
    o.max_total_bytes = 1000;
    EXPECT_EQ(parse_error("include two\ninclude two\ninclude two\n", o),
              "two.policy:1:9: the profile and its includes are more than 1000 bytes of text");
    // Rules are bounded too.
    o = profiles.options();
    o.max_rules = 3;
    EXPECT_EQ(parse_error("allow read\nallow write close\nallow dup\n", o), "t.policy:3:1: more than 3 rules");
}

// ---- errors ----------------------------------------------------------------------------

TEST(Errors, ExactMessages) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"alow read\n", "t.policy:1:1: expected a statement (allow, deny, kill, virtualize, log, default, include, abi), got \"alow\""},
        {"allow\n", "t.policy:1:6: expected a syscall name, @group or * after allow, got end of line"},
        {"allow read ==\n", "t.policy:1:12: expected a syscall name, @group or *, got \"==\""},
        {"deny mount\n", "t.policy:1:6: expected an errno (EPERM, ENOSYS, ... or 1..4095) after deny, got \"mount\""},
        {"deny 0 mount\n", "t.policy:1:6: expected an errno (EPERM, ENOSYS, ... or 1..4095) after deny, got \"0\""},
        {"deny 4096 mount\n", "t.policy:1:6: expected an errno (EPERM, ENOSYS, ... or 1..4095) after deny, got \"4096\""},
        {"deny EPERM\n", "t.policy:1:11: expected a syscall name, @group or * after deny, got end of line"},
        {"allow opennat\n",
         "t.policy:1:7: expected a syscall name or @group, got \"opennat\" (not a syscall libseccomp knows on x86-64 or i386)"},
        {"kill @nope\n", "t.policy:1:6: expected a syscall name or @group, got \"@nope\" (no such group)"},
        {"deny EPERM socketcall\n",
         "t.policy:1:12: expected a syscall name or @group, got \"socketcall\" (the i386 multiplexer is derived from the "
         "calls it multiplexes: name those (socket, shmget, ...))"},
        {"allow read if arg0 == 1\n",
         "t.policy:1:12: a conditional allow can't widen the syscall table; allow the syscall and deny the argument "
         "values you don't want instead"},
        {"deny EPERM ioctl if\n", "t.policy:1:20: expected an argument (arg0 .. arg5), got end of line"},
        {"deny EPERM ioctl if arg7 == 1\n", "t.policy:1:21: expected an argument (arg0 .. arg5), got \"arg7\""},
        {"deny EPERM ioctl if arg1\n",
         "t.policy:1:25: expected an operator (==, !=, <, <=, >, >=, or & MASK ==), got end of line"},
        {"deny EPERM ioctl if arg1 = 1\n",
         "t.policy:1:26: expected an operator (==, !=, <, <=, >, >=, or & MASK ==), got \"=\""},
        {"deny EPERM ioctl if arg1 ==\n", "t.policy:1:28: expected a number or a named constant, got end of line"},
        {"deny EPERM ioctl if arg1 == FOO\n",
         "t.policy:1:29: expected a number or a named constant, got \"FOO\" (unknown constant)"},
        {"deny EPERM ioctl if arg1 == 0x\n", "t.policy:1:29: expected a number (decimal or 0x hex, at most 64 bits), got \"0x\""},
        {"deny EPERM ioctl if arg1 == 18446744073709551616\n",
         "t.policy:1:29: expected a number (decimal or 0x hex, at most 64 bits), got \"18446744073709551616\""},
        {"deny EPERM ioctl if arg1 == 12abc\n",
         "t.policy:1:29: expected a number (decimal or 0x hex, at most 64 bits), got \"12abc\""},
        {"deny EPERM ioctl if arg1 & 0xffffffff != 5\n",
         "t.policy:1:39: expected == after the mask, got \"!=\" (seccomp compares masked values for equality only)"},
        {"deny EPERM ioctl if arg1 & 3 == 4\n", "t.policy:1:21: condition on arg1: value has bits outside the mask (never matches)"},
        {"deny EPERM ioctl if arg1 & 0 == 0\n", "t.policy:1:21: condition on arg1: mask 0 always matches"},
        {"deny EPERM ioctl if arg1 > 0x100000000\n",
         "t.policy:1:21: condition on arg1: ordered comparison with a value above 32 bits"},
        {"deny EPERM ioctl if arg1 < 0\n", "t.policy:1:21: condition on arg1: never matches"},
        {"deny EPERM ioctl if arg1 == 1 and arg1 == 2\n",
         "t.policy:1:35: arg1 is already compared in this rule (column 21); use two rules or one masked compare"},
        {"deny EPERM ioctl if arg1 == 1 or arg2 == 2\n", "t.policy:1:31: expected and or end of line after a condition, got \"or\""},
        {"deny EPERM ioctl if arg1 == 1 and\n", "t.policy:1:34: expected an argument (arg0 .. arg5), got end of line"},
        {"default\n", "t.policy:1:8: expected allow, deny ERRNO or kill after default, got end of line"},
        {"default log\n",
         "t.policy:1:9: expected allow, deny ERRNO or kill after default, got \"log\" (the default is answered in the "
         "kernel, never by the supervisor)"},
        {"default allow now\n", "t.policy:1:15: expected end of line after the default action, got \"now\""},
        {"abi x32 kill\n",
         "t.policy:1:5: expected i386 after abi, got \"x32\" (x86-64 is what the rules filter; x32 and other "
         "architectures are always killed)"},
        {"abi i386 allow\n", "t.policy:1:10: expected kill or deny ERRNO after abi i386, got \"allow\""},
        {"abi i386 log\n", "t.policy:1:10: expected kill or deny ERRNO after abi i386, got \"log\""},
        {"allow read $\n", "t.policy:1:12: expected a statement, a name, a number or an operator, got \"$\""},
        {"allow re\xff" "ad\n", "t.policy:1:9: expected a statement, a name, a number or an operator, got \"\\xff\""},
        {"allow *\n", "t.policy:1:7: allow * would change nothing (* stands for every syscall allowed so far)"},
        {"log read *\n", "t.policy:1:10: * stands for every syscall allowed so far; it can't be combined with other targets"},
        {"log * if arg0 == 1\n", "t.policy:1:7: * takes no conditions"},
        {"allow read\n\n   deny EPERM  opennat # typo\n",
         "t.policy:3:16: expected a syscall name or @group, got \"opennat\" (not a syscall libseccomp knows on x86-64 or "
         "i386)"},
    };
    for (const auto& [text, message] : cases) EXPECT_EQ(parse_error(text), message) << text;
}

TEST(Errors, ConflictsFoundAfterParsingNameBothLines) {
    EXPECT_EQ(parse_error("allow ioctl\n"
                          "deny EPERM ioctl if arg1 == 1\n"
                          "kill ioctl if arg1 & 1 == 1\n"),
              "conditional rules for ioctl (t.policy:2: a1 == 0x1 -> errno 1, t.policy:3: a1 & 0x1 == 0x1 -> kill) "
              "can match the same call with different actions; make them disjoint or give them one action");
}

TEST(Errors, TheFileLabelIsWhatTheCallerSays) {
    EXPECT_EQ(parse_error("kill nope\n", {}, "/home/u/my.policy"),
              "/home/u/my.policy:1:6: expected a syscall name or @group, got \"nope\" (not a syscall libseccomp knows "
              "on x86-64 or i386)");
}

// ---- back to text -------------------------------------------------------------------------

TEST(Format, RulesAndActions) {
    EXPECT_EQ(format_action(Action::error(EPERM)), "deny EPERM");
    EXPECT_EQ(format_action(Action::virtualize()), "virtualize");
    EXPECT_EQ(format_rule({"ioctl", {{.index = 1, .op = CompareOp::Eq, .value = 0x5412, .width32 = true}}, Action::error(EPERM), ""}),
              "deny EPERM ioctl if arg1 & 0xffffffff == 0x5412");
    EXPECT_EQ(format_rule({"socket", {cond(0, CompareOp::Gt, 63), cond(2, CompareOp::Ne, 0)}, Action::kill(), ""}),
              "kill socket if arg0 > 0x3f and arg2 != 0x0");
    EXPECT_EQ(format_condition(cond(3, CompareOp::MaskedEq, 0x10, 0x30)), "arg3 & 0x30 == 0x10");
}

TEST(Format, ConsecutiveRulesOfOneStatementAreOneLine) {
    const Policy p = parse("default deny EPERM\nabi i386 kill\nallow read write\nallow close\n"
                           "deny EPERM socket socketpair if arg0 == 17\n");
    const auto lines = format_policy(p);
    ASSERT_EQ(lines.size(), 5u);
    EXPECT_EQ(lines[0].text, "default deny EPERM");
    EXPECT_EQ(lines[0].origin, "t.policy:1");
    EXPECT_EQ(lines[1].text, "abi i386 kill");
    EXPECT_EQ(lines[2].text, "allow read write");
    EXPECT_EQ(lines[2].origin, "t.policy:3");
    EXPECT_EQ(lines[3].text, "allow close");
    EXPECT_EQ(lines[4].text, "deny EPERM socket socketpair if arg0 == 0x11");
}

TEST(Format, TextParsesBackToTheSamePolicy) {
    Profiles profiles;
    profiles.texts["t2"] = "include baseline\nvirtualize @time-read getrandom\nabi i386 deny ENOSYS\nlog *\n";
    for (const Policy& original : {baseline_policy(), parse("include t2\n", profiles.options())}) {
        const std::string text = format_policy_text(original);
        const Policy back = parse_policy(text, "back.policy");
        EXPECT_EQ(canonical_text(back), canonical_text(original)) << text;
        EXPECT_EQ(compile(back).digest, compile(original).digest);
    }
}

}  // namespace
}  // namespace hermetic::policy
