// Internal: a policy with groups expanded, names checked, conditions normalized
// and per-syscall rules gathered. compile() and decide() both start here, so
// they cannot disagree about what a policy says.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "syscall-policy/policy.hpp"
#include "syscall-policy/syscall_names.hpp"

namespace hermetic::policy::detail {

// A normalized condition: `width32` is folded into the mask (as MaskedEq), so
// evaluation and code generation have one meaning for it.
struct Cond {
    unsigned index = 0;
    CompareOp op = CompareOp::Eq;
    uint64_t value = 0;
    uint64_t mask = ~uint64_t{0};  // MaskedEq only
    friend bool operator==(const Cond&, const Cond&) = default;
};

struct CondRule {
    std::vector<Cond> conds;  // sorted by index, at most one per index
    Action action;
    const Rule* source = nullptr;
};

struct SyscallEntry {
    std::string name;
    const Rule* table_rule = nullptr;  // the last unconditional rule; nullptr: default
    Action table_action;
    std::vector<CondRule> conditional;  // policy order
    std::optional<MuxSlot> mux;         // set if i386 reaches it through socketcall/ipc
};

struct Expanded {
    Action default_action;
    std::optional<Action> i386_action;  // Policy::i386_action, checked
    std::vector<SyscallEntry> entries;  // sorted by name
    const SyscallEntry* find(std::string_view name) const;
};

Expanded expand(const Policy& policy);

// One condition checked and normalized as expand() does it; errors start with
// `ctx` (the parser uses this to point at the condition's column).
Cond normalize_condition(const ArgCondition& in, const std::string& ctx);

// Condition semantics exactly as libseccomp 2.5.4 compiles them: 64-bit on
// x86-64; on i386 argument, value and mask are all cut to 32 bits.
bool cond_matches(const Cond& c, Arch arch, uint64_t arg);
bool rule_matches(const CondRule& r, Arch arch, const uint64_t args[6]);

// Table action + (optional) matching conditional rule -> verdict (policy.hpp).
Decision combine(const Action& table, const Rule* table_rule, const CondRule* cond);

// needs_supervisor() of the expanded policy (mirrors plan() in compile.cpp).
bool needs_supervisor(const Expanded& e);
// CompileOptions::route_denials_to_supervisor resolved for `e`.
bool routes_denials(const Expanded& e, const CompileOptions& options);

std::string action_text(const Action& a);
const char* op_text(CompareOp op);                // "==", ..., "&==" (masked)
std::string rule_text(const CondRule& r);  // "a0 == 0x1 && a2 & 0x3 == 0x1"
std::string canonical_text(const Expanded& e, const CompileOptions& options);

}  // namespace hermetic::policy::detail
