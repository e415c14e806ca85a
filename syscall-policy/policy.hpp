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
//
// Rule semantics (what compile() emits and decide() computes):
//  * For one syscall the last unconditional rule wins (a profile can override
//    what it includes); conditional rules accumulate.
//  * Verdict = the more restrictive of the table action and the matching
//    conditional rule: Kill > Errno > Virtualize/Log > Allow. Errno against Errno
//    keeps the table's errno (a syscall denied outright stays denied its way);
//    Virtualize against Log takes the conditional rule's.
//  * Conditional rules of one syscall that could match the same call must have
//    the same action (libseccomp merges them into one decision tree whose order we
//    don't control); compile() and decide() reject a policy where they could not.
//  * Virtualize/Log go to the supervisor through the argument filter
//    (SECCOMP_RET_USER_NOTIF). If a syscall has an unconditional Virtualize/Log
//    rule, only that reaches the argument filter: the supervisor applies decide(),
//    conditional rules included. Its conditional errno/kill rules are also put
//    in a guard filter (installed between the table and the argument filter), so
//    the kernel enforces them whatever the supervisor does: errno and kill beat
//    a notification when the kernel combines the filters' verdicts.
//  * With a supervisor, the denials of named rules go to it too (CompileOptions:
//    routed), so it can audit them; it answers with decide()'s errno. The
//    default verdict, kills and the i386 action always stay in the kernel.
//  * i386 socketcall/ipc: the arguments of a multiplexed call are in memory, out of
//    seccomp's sight. A socket or SysV IPC call with conditional rules therefore gets
//    their action unconditionally through its multiplexer (fail closed), and
//    exactly as written through its direct i386 number (socket = 359, ...).
//  * x32 (nr | 0x40000000 with AUDIT_ARCH_X86_64) and every arch other than x86-64
//    and i386 kill the process. No policy can change that. A policy may also close
//    the i386 entry (Policy::i386_action: kill or errno for every i386 call).
//  * The table is generated here as a binary search over syscall number ranges
//    (table_filter.hpp); the guard and argument filters go through libseccomp.
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
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
    // Where default_action was set ("build.policy:2"); empty: never set, the
    // struct's ENOSYS applies. Stacking (floor.hpp) treats an unset default of a
    // user policy as "no opinion".
    std::string default_origin;
    // Set: every i386 syscall (32-bit programs, int $0x80) gets this action (kill
    // or errno), whatever the rules say; only ever a restriction.
    std::optional<Action> i386_action;
    std::string i386_origin;
};

// One compiled seccomp program, ready for seccomp(SECCOMP_SET_MODE_FILTER).
struct Filter {
    std::vector<sock_filter> program;
    bool needs_listener = false;  // contains Virtualize/Log actions
};

struct CompiledPolicy {
    // Install in order: the syscall table, the guard filter (only when needed,
    // see above), the argument filter (absent if it would allow everything; the
    // only one that may need a listener).
    std::vector<Filter> filters;
    std::string digest;  // sha256 over the canonical rule list (for audit/attestation)
};

class PolicyError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Expands rules, resolves groups, checks syscall names (unknown names are errors)
// and compiles for x86-64 and i386 (x32 and other arches are killed; not optional).
// Throws PolicyError for a policy that can't be compiled faithfully.
CompiledPolicy compile(const Policy& policy);

// The foundation's baseline profile.
Policy baseline_policy();

// The determinism supervisor's rules (Virtualize for time, randomness, directory
// order, ...), defined in determinism_rules.cpp; the text profiles include it as
// the built-in "determinism".
Policy determinism_policy();

}  // namespace hermetic::policy

namespace hermetic::policy {

struct CompileOptions {
    // Denials by named rules (a rule's errno, conditional or not) answered by the
    // supervisor (user notification) instead of the kernel, so each one can be
    // audited; a lost supervisor makes them fail with ENOSYS. The policy's
    // default (unnamed syscalls), kills and the i386 action stay the kernel's.
    // Unset (the default): routed exactly when the policy needs the supervisor
    // anyway (needs_supervisor()), so a job with a supervisor has every named
    // denial audited and a job without one is answered by the kernel as before.
    // The resolved value is part of the canonical text, hence of the digest.
    std::optional<bool> route_denials_to_supervisor;
};

// Whether compile() gives the policy a notifying filter (a virtualize or log
// rule some call can reach), i.e. whether a job under it has a supervisor.
bool needs_supervisor(const Policy& policy);

// Results are memoized by canonical text (a few entries, thread-safe): the
// same policy compiles once per process. A cold compile of the default
// profile is ~4 ms of CPU in a Debug build, mostly libseccomp's generation of
// the argument filter.
CompiledPolicy compile(const Policy& policy, const CompileOptions& options);
void clear_compile_cache();  // for benchmarks and tests

// The decision the policy makes for one syscall on one architecture, given its
// register arguments (never pointer contents). For the supervisor and for audit.
enum class Arch { X86_64, I386 };
struct Decision {
    Action action;
    const Rule* rule = nullptr;  // nullptr: the policy default (or the i386 action) applied
};
// Expands the policy on every call; for repeated decisions use PreparedPolicy.
Decision decide(const Policy& policy, Arch arch, int syscall_nr, const uint64_t args[6]);

// A policy expanded once, for the supervisor's per-notification decisions.
// Keeps a pointer to `policy` (Decision::rule points into it): the policy must
// outlive this object and stay unchanged. Throws PolicyError like compile().
class PreparedPolicy {
public:
    explicit PreparedPolicy(const Policy& policy);
    ~PreparedPolicy();
    PreparedPolicy(PreparedPolicy&&) noexcept;
    PreparedPolicy& operator=(PreparedPolicy&&) noexcept;

    Decision decide(Arch arch, int syscall_nr, const uint64_t args[6]) const;
    // Whether decide() for this call can depend on its arguments (a rule with
    // conditions names it): if not, one decision holds for every call of it.
    [[nodiscard]] bool depends_on_args(Arch arch, int syscall_nr) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// The canonical text the digest is computed over: expanded rules, default
// action, arch set and options. Useful to show what exactly a digest attests.
std::string canonical_text(const Policy& policy, const CompileOptions& options = {});

// Name <-> number for the given arch (through libseccomp's tables).
std::optional<int> syscall_number(std::string_view name, Arch arch = Arch::X86_64);
std::string syscall_name(int nr, Arch arch = Arch::X86_64);

}  // namespace hermetic::policy
