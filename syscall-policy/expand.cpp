#include "syscall-policy/expand.hpp"

#include <algorithm>
#include <cstdio>

#include "syscall-policy/groups.hpp"

namespace hermetic::policy::detail {

namespace {

constexpr uint64_t kLow32 = 0xffffffffu;

std::string where(const Rule& rule, size_t index) {
    return rule.origin.empty() ? "rule #" + std::to_string(index + 1) : rule.origin;
}

std::string hex(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}


std::string cond_text(const Cond& c) {
    std::string s = "a" + std::to_string(c.index);
    if (c.op == CompareOp::MaskedEq) return s + " & " + hex(c.mask) + " == " + hex(c.value);
    return s + " " + op_text(c.op) + " " + hex(c.value);
}

}  // namespace

const char* op_text(CompareOp op) {
    switch (op) {
        case CompareOp::Eq: return "==";
        case CompareOp::Ne: return "!=";
        case CompareOp::Lt: return "<";
        case CompareOp::Le: return "<=";
        case CompareOp::Gt: return ">";
        case CompareOp::Ge: return ">=";
        case CompareOp::MaskedEq: return "&==";
    }
    return "?";
}

std::string rule_text(const CondRule& r) {
    std::string s;
    for (const Cond& c : r.conds) {
        if (!s.empty()) s += " && ";
        s += cond_text(c);
    }
    return s;
}

namespace {

void check_action(const Action& a, const std::string& ctx) {
    if (a.kind == ActionKind::Errno && (a.errno_value <= 0 || a.errno_value > 4095))
        // 0 would make the syscall "succeed" without running; > 4095 isn't an errno.
        throw PolicyError(ctx + ": errno " + std::to_string(a.errno_value) + " is outside 1..4095");
}

Cond normalize(const ArgCondition& in, const std::string& ctx) {
    if (in.index > 5) throw PolicyError(ctx + ": argument index " + std::to_string(in.index) + " (max 5)");
    Cond c{in.index, in.op, in.value, ~uint64_t{0}};
    std::string what = ctx + ": condition on a" + std::to_string(in.index);
    if (in.op != CompareOp::MaskedEq && in.mask != ~uint64_t{0})
        throw PolicyError(what + " has a mask but is not MaskedEq");
    if (in.width32) {
        // libseccomp has no 32-bit comparisons; a mask without the high word gives
        // one for equality, and nothing sound exists for the others.
        if (in.op == CompareOp::Eq) {
            if (in.value > kLow32) throw PolicyError(what + ": 32-bit comparison with a value above 32 bits");
            c.op = CompareOp::MaskedEq;
            c.mask = kLow32;
        } else if (in.op == CompareOp::MaskedEq) {
            c.mask = in.mask & kLow32;
        } else {
            throw PolicyError(what + ": width32 is only supported with Eq and MaskedEq");
        }
    } else if (in.op == CompareOp::MaskedEq) {
        c.mask = in.mask;
    }
    if (c.op == CompareOp::MaskedEq) {
        if (c.mask == 0) throw PolicyError(what + ": mask 0 always matches");
        if ((c.value & ~c.mask) != 0) throw PolicyError(what + ": value has bits outside the mask (never matches)");
    }
    bool ordered = c.op == CompareOp::Lt || c.op == CompareOp::Le || c.op == CompareOp::Gt || c.op == CompareOp::Ge;
    if (ordered && c.value > kLow32)
        // libseccomp truncates the value to 32 bits on i386, which would change
        // the comparison's meaning there.
        throw PolicyError(what + ": ordered comparison with a value above 32 bits");
    if ((c.op == CompareOp::Lt || c.op == CompareOp::Ge) && c.value == 0)
        throw PolicyError(what + (c.op == CompareOp::Lt ? ": never matches" : ": always matches"));
    return c;
}

// The set of argument values a condition accepts on one arch, coarsely: an
// interval hull, and for (masked) equality the exact mask/value, for Ne the point.
struct Shape {
    bool empty = false;
    uint64_t lo = 0, hi = 0;             // hull
    std::optional<std::pair<uint64_t, uint64_t>> masked;  // mask, value
    std::optional<uint64_t> not_point;   // Ne
};

Shape shape(const Cond& c, Arch arch) {
    const uint64_t max = arch == Arch::I386 ? kLow32 : ~uint64_t{0};
    const uint64_t v = c.value & max, m = c.mask & max;
    Shape s;
    s.hi = max;
    switch (c.op) {
        case CompareOp::Eq: s.lo = s.hi = v; s.masked = {{max, v}}; break;
        case CompareOp::MaskedEq:
            s.masked = {{m, v & m}};
            s.lo = v & m;
            s.hi = (v & m) | (max & ~m);
            break;
        case CompareOp::Ne: s.not_point = v; break;
        case CompareOp::Lt: if (v == 0) s.empty = true; else s.hi = v - 1; break;
        case CompareOp::Le: s.hi = v; break;
        case CompareOp::Gt: if (v == max) s.empty = true; else s.lo = v + 1; break;
        case CompareOp::Ge: s.lo = v; break;
    }
    return s;
}

bool shapes_disjoint(const Shape& a, const Shape& b) {
    if (a.empty || b.empty) return true;
    if (a.not_point && b.not_point) return false;
    if (a.not_point || b.not_point) {
        const Shape& ne = a.not_point ? a : b;
        const Shape& other = a.not_point ? b : a;
        return other.lo == other.hi && other.lo == *ne.not_point;
    }
    if (a.masked && b.masked) {
        uint64_t common = a.masked->first & b.masked->first;
        if (((a.masked->second ^ b.masked->second) & common) != 0) return true;
    }
    return a.hi < b.lo || b.hi < a.lo;
}

bool may_overlap(const CondRule& a, const CondRule& b, Arch arch) {
    for (const Cond& ca : a.conds) {
        if (shape(ca, arch).empty) return false;
        for (const Cond& cb : b.conds)
            if (ca.index == cb.index && shapes_disjoint(shape(ca, arch), shape(cb, arch))) return false;
    }
    for (const Cond& cb : b.conds)
        if (shape(cb, arch).empty) return false;
    return true;
}

void check_conditional(const SyscallEntry& e, const Policy& policy) {
    auto origin = [&](const CondRule& r) { return where(*r.source, static_cast<size_t>(r.source - policy.rules.data())); };
    for (size_t i = 0; i < e.conditional.size(); ++i) {
        for (size_t j = i + 1; j < e.conditional.size(); ++j) {
            const CondRule& a = e.conditional[i];
            const CondRule& b = e.conditional[j];
            if (a.action == b.action) continue;
            if (e.mux)
                throw PolicyError("conditional rules for " + e.name + " (" + origin(a) + ", " + origin(b) +
                                  ") have different actions; i386 reaches " + e.name +
                                  " through a multiplexer that can't see arguments, so they must agree");
            if (may_overlap(a, b, Arch::X86_64) || may_overlap(a, b, Arch::I386))
                throw PolicyError("conditional rules for " + e.name + " (" + origin(a) + ": " + rule_text(a) +
                                  " -> " + action_text(a.action) + ", " + origin(b) + ": " + rule_text(b) +
                                  " -> " + action_text(b.action) +
                                  ") can match the same call with different actions; make them disjoint or "
                                  "give them one action");
        }
    }
}

}  // namespace

Cond normalize_condition(const ArgCondition& in, const std::string& ctx) { return normalize(in, ctx); }

const SyscallEntry* Expanded::find(std::string_view name) const {
    auto it = std::lower_bound(entries.begin(), entries.end(), name,
                               [](const SyscallEntry& e, std::string_view n) { return e.name < n; });
    return it != entries.end() && it->name == name ? &*it : nullptr;
}

std::string action_text(const Action& a) {
    switch (a.kind) {
        case ActionKind::Allow: return "allow";
        case ActionKind::Errno: return "errno " + std::to_string(a.errno_value);
        case ActionKind::Kill: return "kill";
        case ActionKind::Virtualize: return "virtualize";
        case ActionKind::Log: return "log";
    }
    return "?";
}

Expanded expand(const Policy& policy) {
    Expanded out;
    out.default_action = policy.default_action;
    check_action(policy.default_action, "default action");
    if (policy.default_action.kind == ActionKind::Virtualize || policy.default_action.kind == ActionKind::Log)
        // The table filter never notifies (one listener per filter stack).
        throw PolicyError("the default action must be allow, errno or kill");
    if (policy.i386_action) {
        const std::string ctx = policy.i386_origin.empty() ? std::string("i386 action") : policy.i386_origin;
        check_action(*policy.i386_action, ctx);
        if (policy.i386_action->kind != ActionKind::Kill && policy.i386_action->kind != ActionKind::Errno)
            // It replaces the whole i386 table in the kernel; anything but a
            // denial would lift the rules.
            throw PolicyError(ctx + ": the i386 action must be kill or errno");
        out.i386_action = policy.i386_action;
    }

    // Entries indexed by name id (known_names() is sorted, so id order is name order).
    const auto& known = known_names();
    std::vector<int> slot(known.size(), -1);
    std::vector<SyscallEntry> entries;
    for (size_t i = 0; i < policy.rules.size(); ++i) {
        const Rule& rule = policy.rules[i];
        const std::string ctx = where(rule, i) + " (" + rule.target + ")";
        check_action(rule.action, ctx);

        const std::vector<int>* ids = nullptr;
        int single = -1;
        if (rule.target.starts_with('@')) {
            try {
                ids = &group_member_ids(rule.target);
            } catch (const PolicyError& e) {
                throw PolicyError(where(rule, i) + ": " + e.what());
            }
        } else {
            single = name_id(rule.target);
            if (single < 0)
                throw PolicyError(where(rule, i) + ": unknown syscall \"" + rule.target +
                                  "\" (not known to libseccomp on x86-64 or i386)");
            if (is_derived_syscall(rule.target))
                throw PolicyError(where(rule, i) + ": \"" + rule.target +
                                  "\" can't be named: compile() derives it from the calls it multiplexes");
        }

        CondRule cr;
        cr.action = rule.action;
        cr.source = &rule;
        for (const ArgCondition& ac : rule.conditions) cr.conds.push_back(normalize(ac, ctx));
        std::sort(cr.conds.begin(), cr.conds.end(), [](const Cond& a, const Cond& b) { return a.index < b.index; });
        for (size_t k = 1; k < cr.conds.size(); ++k)
            if (cr.conds[k].index == cr.conds[k - 1].index)
                // libseccomp rejects two comparisons of one argument in a rule.
                throw PolicyError(ctx + ": two conditions on a" + std::to_string(cr.conds[k].index) +
                                  "; use two rules or one MaskedEq");
        if (!cr.conds.empty() && rule.action.kind == ActionKind::Allow)
            throw PolicyError(ctx + ": a conditional allow can't widen the syscall table; allow the syscall "
                                    "and deny the argument values you don't want instead");

        auto apply = [&](int id) {
            if (slot[id] < 0) {
                slot[id] = static_cast<int>(entries.size());
                SyscallEntry& e = entries.emplace_back();
                e.name = known[id].name;
                e.table_action = policy.default_action;
                e.mux = known[id].mux;
            }
            SyscallEntry& e = entries[slot[id]];
            if (cr.conds.empty()) {
                e.table_rule = &rule;
                e.table_action = rule.action;
            } else {
                e.conditional.push_back(cr);
            }
        };
        if (ids)
            for (int id : *ids) apply(id);
        else
            apply(single);
    }
    out.entries.reserve(entries.size());
    for (int s : slot) {
        if (s < 0) continue;
        check_conditional(entries[s], policy);
        out.entries.push_back(std::move(entries[s]));
    }
    return out;
}

bool cond_matches(const Cond& c, Arch arch, uint64_t arg) {
    uint64_t a = arg, v = c.value, m = c.mask;
    if (arch == Arch::I386) {
        a &= kLow32;
        v &= kLow32;
        m &= kLow32;
    }
    switch (c.op) {
        case CompareOp::Eq: return a == v;
        case CompareOp::Ne: return a != v;
        case CompareOp::Lt: return a < v;
        case CompareOp::Le: return a <= v;
        case CompareOp::Gt: return a > v;
        case CompareOp::Ge: return a >= v;
        case CompareOp::MaskedEq: return (a & m) == v;
    }
    return false;
}

bool rule_matches(const CondRule& r, Arch arch, const uint64_t args[6]) {
    for (const Cond& c : r.conds)
        if (!cond_matches(c, arch, args[c.index])) return false;
    return true;
}

namespace {
int rank(ActionKind k) {
    switch (k) {
        case ActionKind::Kill: return 0;
        case ActionKind::Errno: return 1;
        case ActionKind::Virtualize:
        case ActionKind::Log: return 2;
        case ActionKind::Allow: return 3;
    }
    return 3;
}
}  // namespace

Decision combine(const Action& table, const Rule* table_rule, const CondRule* cond) {
    if (!cond) return {table, table_rule};
    int t = rank(table.kind), c = rank(cond->action.kind);
    if (c < t) return {cond->action, cond->source};
    if (t < c) return {table, table_rule};
    // Equal rank: an outright denial keeps its own errno; among the notify kinds
    // the more specific (conditional) rule says how the supervisor handles it.
    if (table.kind == ActionKind::Errno || table.kind == ActionKind::Kill || table.kind == ActionKind::Allow)
        return {table, table_rule};
    return {cond->action, cond->source};
}

bool needs_supervisor(const Expanded& e) {
    auto notifies = [](const Action& a) { return a.kind == ActionKind::Virtualize || a.kind == ActionKind::Log; };
    for (const SyscallEntry& entry : e.entries) {
        if (notifies(entry.table_action)) return true;
        // A denied or killed syscall keeps its verdict whatever its conditional
        // rules say (only a kill can make it stricter): none of them notifies.
        if (entry.table_action.kind != ActionKind::Allow) continue;
        for (const CondRule& r : entry.conditional)
            if (notifies(r.action)) return true;
    }
    return false;
}

bool routes_denials(const Expanded& e, const CompileOptions& options) {
    return options.route_denials_to_supervisor.value_or(needs_supervisor(e));
}

std::string canonical_text(const Expanded& e, const CompileOptions& options) {
    std::string s = "hermetic-syscall-policy 1\n";
    s += "arches x86_64 i386; x32 kill_process; other kill_process\n";
    // Only when set, so digests of policies without it stay what they were.
    if (e.i386_action) s += "i386 " + action_text(*e.i386_action) + "\n";
    s += std::string("route_denials_to_supervisor ") + (routes_denials(e, options) ? "1" : "0") + "\n";
    s += "default " + action_text(e.default_action) + "\n";
    for (const SyscallEntry& entry : e.entries) {
        if (entry.table_rule) s += "table " + entry.name + " " + action_text(entry.table_action) + "\n";
        // Order-independent (the conditions' verdict doesn't depend on order), deduplicated.
        std::vector<std::string> lines;
        for (const CondRule& r : entry.conditional)
            lines.push_back("cond " + entry.name + " " + rule_text(r) + " -> " + action_text(r.action) + "\n");
        std::sort(lines.begin(), lines.end());
        lines.erase(std::unique(lines.begin(), lines.end()), lines.end());
        for (const std::string& l : lines) s += l;
    }
    return s;
}

}  // namespace hermetic::policy::detail
