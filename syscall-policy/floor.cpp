#include "syscall-policy/floor.hpp"

#include <algorithm>
#include <map>

#include "syscall-policy/expand.hpp"
#include "syscall-policy/parser.hpp"

namespace hermetic::policy {

int restrictiveness(const Action& a) {
    switch (a.kind) {
        case ActionKind::Allow: return 0;
        case ActionKind::Log: return 1;
        case ActionKind::Virtualize: return 2;
        case ActionKind::Errno: return 3;
        case ActionKind::Kill: return 4;
    }
    return 4;
}

namespace {

constexpr const char* kOrder = "a user policy may only add restrictions (allow < log < virtualize < deny < kill)";

std::string quote(const std::string& s) { return "\"" + s + "\""; }

struct Verdict {
    Action action;
    std::string origin;
};

// One refused user rule: the syscalls it would lift, and the floor's verdict
// on the first of them.
struct Refusal {
    std::vector<std::string> names;
    Verdict floor;
};

}  // namespace

Policy stack(const Policy& floor, const Policy& user) {
    const detail::Expanded f = detail::expand(floor);
    const detail::Expanded u = detail::expand(user);
    const std::string floor_default_origin =
        floor.default_origin.empty() ? "the floor's default" : floor.default_origin;

    Policy out = floor;
    out.name = floor.name + "+" + user.name;

    // The default and the i386 action: the stricter one, the floor's on a tie.
    if (!user.default_origin.empty()) {
        const int ru = restrictiveness(user.default_action), rf = restrictiveness(floor.default_action);
        if (ru < rf)
            throw PolicyError(user.default_origin + ": " + quote("default " + format_action(user.default_action)) +
                              " would lift the floor's " + quote("default " + format_action(floor.default_action)) +
                              " (" + floor_default_origin + "); " + kOrder);
        if (ru > rf) {
            out.default_action = user.default_action;
            out.default_origin = user.default_origin;
        }
    }
    if (user.i386_action) {
        const int ru = restrictiveness(*user.i386_action);
        if (floor.i386_action && ru < restrictiveness(*floor.i386_action))
            throw PolicyError(user.i386_origin + ": " + quote("abi i386 " + format_action(*user.i386_action)) +
                              " would lift the floor's " + quote("abi i386 " + format_action(*floor.i386_action)) +
                              " (" + floor.i386_origin + "); " + kOrder);
        if (!floor.i386_action || ru > restrictiveness(*floor.i386_action)) {
            out.i386_action = user.i386_action;
            out.i386_origin = user.i386_origin;
        }
    }

    // The floor's table verdict for a syscall: its last unconditional rule, else its default.
    auto floor_table = [&](const std::string& name) -> Verdict {
        const detail::SyscallEntry* e = f.find(name);
        if (e && e->table_rule)
            return {e->table_action, e->table_rule->origin.empty() ? "a floor rule" : e->table_rule->origin};
        return {floor.default_action, floor_default_origin};
    };
    auto index_of = [&](const Rule* r) { return static_cast<size_t>(r - user.rules.data()); };

    std::map<size_t, Refusal> refused;               // by user rule index
    std::vector<std::pair<size_t, Rule>> additions;  // (user rule index, rule)
    auto refuse = [&](const Rule* r, const std::string& name, const Verdict& fv) {
        Refusal& ref = refused[index_of(r)];
        if (ref.names.empty()) ref.floor = fv;
        ref.names.push_back(name);
    };

    for (const detail::SyscallEntry& ue : u.entries) {
        const Verdict ft = floor_table(ue.name);
        if (ue.table_rule) {
            const int ru = restrictiveness(ue.table_action), rf = restrictiveness(ft.action);
            if (ru < rf)
                refuse(ue.table_rule, ue.name, ft);
            else if (ru > rf)
                additions.push_back({index_of(ue.table_rule), {ue.name, {}, ue.table_action, ue.table_rule->origin}});
        }
        const detail::SyscallEntry* fe = f.find(ue.name);
        for (const detail::CondRule& c : ue.conditional) {
            if (restrictiveness(c.action) < restrictiveness(ft.action)) {
                refuse(c.source, ue.name, ft);
                continue;
            }
            bool same = false;  // the floor already has it
            if (fe)
                for (const detail::CondRule& fc : fe->conditional) same = same || (fc.conds == c.conds && fc.action == c.action);
            if (!same) additions.push_back({index_of(c.source), {ue.name, c.source->conditions, c.action, c.source->origin}});
        }
    }
    // A stricter user default reaches the syscalls only the floor names; the
    // ones neither names get the effective default.
    if (!user.default_origin.empty()) {
        for (const detail::SyscallEntry& fe : f.entries) {
            if (!fe.table_rule) continue;
            if (const detail::SyscallEntry* ue = u.find(fe.name); ue && ue->table_rule) continue;
            if (restrictiveness(user.default_action) > restrictiveness(fe.table_action))
                additions.push_back({user.rules.size(), {fe.name, {}, user.default_action, user.default_origin}});
        }
    }

    if (!refused.empty()) {
        // The first refused rule in the user's file, with what it would lift.
        const auto& [index, ref] = *refused.begin();
        const Rule& r = user.rules[index];
        std::string which = ref.names.front();
        if (ref.names.size() > 1) which += " and " + std::to_string(ref.names.size() - 1) + " more";
        std::string msg = (r.origin.empty() ? "a user rule" : r.origin) + ": " + quote(format_rule(r)) +
                          " would lift the floor's " + quote(format_action(ref.floor.action)) + " of " + which + " (" +
                          ref.floor.origin + "); " + kOrder;
        if (refused.size() > 1) msg += " [" + std::to_string(refused.size() - 1) + " more refused rule(s)]";
        throw PolicyError(msg);
    }

    std::stable_sort(additions.begin(), additions.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [index, rule] : additions) out.rules.push_back(std::move(rule));
    try {
        (void)detail::expand(out);
    } catch (const PolicyError& e) {
        throw PolicyError("stacking " + user.name + " on the floor " + floor.name + ": " + e.what());
    }
    return out;
}

}  // namespace hermetic::policy
