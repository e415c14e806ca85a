// Syscall policies as typed values (in the spirit of Chromium's bpf_dsl).
//
// A Policy is a list of rules; each rule names a syscall or a named group
// ("@mount"), optional argument conditions, and an action. Compilation turns it
// into seccomp BPF through libseccomp. This library is pure: policies in,
// filters and decisions out, no I/O.
//
// Semantics (and why there are two filters). libseccomp lets an unconditional
// rule shadow conditional rules of the same syscall, so "allow ioctl, except
// TIOCSTI" can't be one allowlist filter. A policy therefore compiles to two
// stacked filters and the kernel applies the most restrictive verdict:
//   1. the syscall table: one unconditional action per syscall; syscalls without
//      a rule get the policy's default action (an allowlist: unknown -> ENOSYS);
//   2. the argument filter: default allow, plus every conditional rule.
// So argument rules can only ever restrict what the table allows.
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hermetic::policy {

enum class ActionKind {
    Allow,       // run the syscall
    Errno,       // fail it with `errno_value`
    Kill,        // kill the whole process (SECCOMP_RET_KILL_PROCESS)
    Virtualize,  // hand to the determinism supervisor (user notification)
    Log,         // allow and record (user notification, answered with CONTINUE)
};

struct Action {
    ActionKind kind = ActionKind::Allow;
    int errno_value = 0;  // for Errno

    static Action allow() { return {ActionKind::Allow, 0}; }
    static Action error(int e) { return {ActionKind::Errno, e}; }
    static Action kill() { return {ActionKind::Kill, 0}; }
    static Action virtualize() { return {ActionKind::Virtualize, 0}; }
    static Action log() { return {ActionKind::Log, 0}; }
    friend bool operator==(const Action&, const Action&) = default;
};

enum class CompareOp { Eq, Ne, Lt, Le, Gt, Ge, MaskedEq };

// (arg[index] & mask) OP value for MaskedEq, arg[index] OP value otherwise.
// `width32` compares only the low 32 bits (ioctl request numbers, flags ints),
// which is how the kernel itself reads those arguments (CVE-2019-10063).
struct ArgCondition {
    unsigned index = 0;
    CompareOp op = CompareOp::Eq;
    uint64_t value = 0;
    uint64_t mask = ~uint64_t{0};
    bool width32 = false;
    friend bool operator==(const ArgCondition&, const ArgCondition&) = default;
};

struct Rule {
    std::string target;  // syscall name ("openat") or group ("@mount")
    std::vector<ArgCondition> conditions;  // all must hold (AND)
    Action action;
    std::string origin;  // where the rule came from: "baseline", "file.policy:12"
};

struct Policy {
    std::string name;
    Action default_action = Action::error(38 /*ENOSYS*/);
    std::vector<Rule> rules;
};

// One compiled seccomp program, ready for seccomp(SECCOMP_SET_MODE_FILTER).
struct Filter {
    std::vector<sock_filter> program;
    bool needs_listener = false;  // contains Virtualize/Log actions
};

struct CompiledPolicy {
    // Install in order; filters[0] is the syscall table, [1] the argument filter.
    std::vector<Filter> filters;
    std::string digest;  // sha256 over the canonical rule list (for audit/attestation)
};

class PolicyError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Expands rules, resolves groups, checks syscall names (unknown names are errors)
// and compiles for x86-64 and i386 (x32 and other arches are killed; not optional).
CompiledPolicy compile(const Policy& policy);

// The foundation's baseline profile.
Policy baseline_policy();

}  // namespace hermetic::policy

namespace hermetic::policy {

struct CompileOptions {
    // Denials answered by the supervisor (user notification) instead of the kernel,
    // so each one can be audited; a lost supervisor makes them fail with ENOSYS.
    bool route_denials_to_supervisor = false;
};

CompiledPolicy compile(const Policy& policy, const CompileOptions& options);

// The decision the policy makes for one syscall on one architecture, given its
// register arguments (never pointer contents). For the supervisor and for audit.
enum class Arch { X86_64, I386 };
struct Decision {
    Action action;
    const Rule* rule = nullptr;  // nullptr: the policy default applied
};
Decision decide(const Policy& policy, Arch arch, int syscall_nr, const uint64_t args[6]);

// Name <-> number for the given arch (through libseccomp's tables).
std::optional<int> syscall_number(std::string_view name, Arch arch = Arch::X86_64);
std::string syscall_name(int nr, Arch arch = Arch::X86_64);

}  // namespace hermetic::policy
