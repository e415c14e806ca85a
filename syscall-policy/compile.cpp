// Policy -> two stacked seccomp filters (design: policy.hpp): the syscall table
// is emitted by table_filter.cpp, the argument filter by libseccomp.
//
// libseccomp 2.5.4 facts this file is built around (all verified against the
// installed library, see tests/unit/policy_compile_test.cpp):
//  * an unconditional rule shadows every conditional rule of the same syscall in
//    one filter, hence the table/argument split;
//  * rule action == filter default is refused (-EACCES): such table rules are skipped;
//  * on i386 a rule for a socket call (socket, connect, send, ...) becomes two:
//    the direct syscall (359..373) with the rule's conditions, and
//    socketcall(a0 == SYS_xxx) with a0's condition *replaced* by the call number
//    while conditions on a1..a5 are kept but compared against socketcall's own
//    registers (a1 is the pointer to the real arguments, the rest is garbage).
//    seccomp_rule_add_exact refuses such rules (-EOPNOTSUPP). SysV IPC calls are
//    multiplexed through ipc(2) the same way. A shorter rule already in the tree
//    absorbs longer ones, so we add socketcall(a0 == SYS_xxx) -> action ourselves
//    before the conditional rules: their garbled twins then vanish, and the
//    multiplexed form gets the rule's action whatever its (invisible) arguments.
//    Debian's 32-bit glibc creates sockets through socketcall, so with the
//    baseline a 32-bit program gets EAFNOSUPPORT from socket(); that is the
//    price of the family allowlist meaning anything (int $0x80 is open to 64-bit
//    processes too);
//  * on x86-64 without the x32 arch in the filter, libseccomp kills
//    nr >= 0x40000000 (except -1) as a bad arch; pseudo numbers of names that
//    don't exist on an arch are not emitted as syscall checks.
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <optional>

#include "common/sha256.hpp"
#include "common/sys_error.hpp"
#include "common/unique_fd.hpp"
#include "syscall-policy/expand.hpp"
#include "syscall-policy/policy.hpp"
#include "syscall-policy/table_filter.hpp"

namespace hermetic::policy {

namespace {

using detail::Cond;
using detail::CondRule;
using detail::SyscallEntry;

class ScmpFilter {
public:
    // One arch per context: libseccomp's BPF generation is superlinear in the
    // program size, so two single-arch programs (joined by
    // detail::join_arches) cost about half of one two-arch program.
    ScmpFilter(uint32_t default_action, Arch arch) : ctx_(seccomp_init(default_action)) {
        if (!ctx_) throw PolicyError("seccomp_init failed");
        const uint32_t want = arch == Arch::X86_64 ? SCMP_ARCH_X86_64 : SCMP_ARCH_X86;
        if (seccomp_arch_native() != want) {
            check(seccomp_arch_add(ctx_, want), "seccomp_arch_add");
            check(seccomp_arch_remove(ctx_, seccomp_arch_native()), "seccomp_arch_remove(native)");
        }
        check(seccomp_attr_set(ctx_, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS), "badarch attribute");
        // The sandbox sets no_new_privs itself; the filters are only exported here.
        check(seccomp_attr_set(ctx_, SCMP_FLTATR_CTL_NNP, 0), "nnp attribute");
        // Binary search over syscall numbers instead of a linear chain.
        check(seccomp_attr_set(ctx_, SCMP_FLTATR_CTL_OPTIMIZE, 2), "optimize attribute");
    }
    ~ScmpFilter() { seccomp_release(ctx_); }
    ScmpFilter(const ScmpFilter&) = delete;
    ScmpFilter& operator=(const ScmpFilter&) = delete;

    void add(const std::string& name, uint32_t action, const std::vector<Cond>& conds, const std::string& what) {
        int nr = seccomp_syscall_resolve_name(name.c_str());
        if (nr == __NR_SCMP_ERROR) throw PolicyError(what + ": libseccomp doesn't know " + name);
        std::vector<scmp_arg_cmp> cmps;
        cmps.reserve(conds.size());
        for (const Cond& c : conds) {
            scmp_arg_cmp cmp{};
            cmp.arg = c.index;
            cmp.datum_a = c.value;
            switch (c.op) {
                case CompareOp::Eq: cmp.op = SCMP_CMP_EQ; break;
                case CompareOp::Ne: cmp.op = SCMP_CMP_NE; break;
                case CompareOp::Lt: cmp.op = SCMP_CMP_LT; break;
                case CompareOp::Le: cmp.op = SCMP_CMP_LE; break;
                case CompareOp::Gt: cmp.op = SCMP_CMP_GT; break;
                case CompareOp::Ge: cmp.op = SCMP_CMP_GE; break;
                case CompareOp::MaskedEq:
                    cmp.op = SCMP_CMP_MASKED_EQ;
                    cmp.datum_a = c.mask;
                    cmp.datum_b = c.value;
                    break;
            }
            cmps.push_back(cmp);
        }
        int rc = seccomp_rule_add_array(ctx_, action, nr, static_cast<unsigned>(cmps.size()), cmps.data());
        if (rc < 0) throw PolicyError(what + ": libseccomp refused the rule for " + name + ": " + std::strerror(-rc));
        rules_++;
    }

    size_t rules() const { return rules_; }

    std::vector<sock_filter> export_bpf() const {
        // seccomp_export_bpf wants an fd; a memfd keeps this free of file-system I/O.
        UniqueFd fd(::memfd_create("hermetic-seccomp-bpf", MFD_CLOEXEC));
        if (!fd) throw_errno("memfd_create");
        int rc = seccomp_export_bpf(ctx_, fd.get());
        if (rc < 0) throw SysError("seccomp_export_bpf", -rc);
        struct stat st {};
        if (::fstat(fd.get(), &st) != 0) throw_errno("fstat(bpf memfd)");
        if (st.st_size <= 0 || st.st_size % sizeof(sock_filter) != 0)
            throw PolicyError("seccomp_export_bpf produced " + std::to_string(st.st_size) + " bytes");
        std::vector<sock_filter> program(static_cast<size_t>(st.st_size) / sizeof(sock_filter));
        size_t want = static_cast<size_t>(st.st_size), got = 0;
        auto* out = reinterpret_cast<char*>(program.data());
        while (got < want) {
            ssize_t n = ::pread(fd.get(), out + got, want - got, static_cast<off_t>(got));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) throw_errno("read(bpf memfd)");
            if (n == 0) throw PolicyError("short read of the exported filter");
            got += static_cast<size_t>(n);
        }
        return program;
    }

private:
    static void check(int rc, const char* what) {
        if (rc < 0) throw PolicyError(std::string("libseccomp: ") + what + ": " + std::strerror(-rc));
    }

    scmp_filter_ctx ctx_;
    size_t rules_ = 0;
};

uint32_t scmp_action(const Action& a) {
    switch (a.kind) {
        case ActionKind::Allow: return SCMP_ACT_ALLOW;
        case ActionKind::Errno: return SCMP_ACT_ERRNO(static_cast<uint16_t>(a.errno_value));
        case ActionKind::Kill: return SCMP_ACT_KILL_PROCESS;
        case ActionKind::Virtualize:
        case ActionKind::Log: return SCMP_ACT_NOTIFY;
    }
    return SCMP_ACT_KILL_PROCESS;
}

struct Rule1 {
    std::string name;
    uint32_t action;
    std::vector<Cond> conds;
    std::string what;
};

struct Plan {
    std::map<std::string, uint32_t> table;  // name -> action, only where != default
    std::map<std::string, std::vector<Rule1>> args;    // name -> rules of the argument filter, in order
    std::map<std::string, std::vector<Rule1>> guards;  // name -> rules of the guard filter, in order
};

std::string describe(const Rule* r) {
    if (!r) return "default action";
    return (r->origin.empty() ? std::string("rule") : r->origin) + " (" + r->target + ")";
}

// Appends the conditional rules `relevant` of `entry` to `out` as libseccomp
// rules with the verdicts `emitted` gives them.
template <typename Emitted>
void emit_conditional(const SyscallEntry& entry, std::vector<const CondRule*> relevant, const Emitted& emitted,
                      std::vector<Rule1>& out) {
    // Canonical order, so the filters are a function of canonical_text()
    // (which the compile cache relies on). Order can't change a verdict:
    // rules that may match together share one action (expand.cpp).
    // (Keys computed once: building them in the comparator was a third of a compile.)
    std::vector<std::pair<std::pair<std::string, std::string>, const CondRule*>> keyed;
    keyed.reserve(relevant.size());
    for (const CondRule* r : relevant) keyed.push_back({{detail::rule_text(*r), detail::action_text(r->action)}, r});
    std::stable_sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t k = 0; k < keyed.size(); ++k) relevant[k] = keyed[k].second;
    if (!relevant.empty() && entry.mux) {
        // i386 multiplexer slot first, so libseccomp's argument-garbling
        // twins of the rules below are absorbed (see the top of this file).
        const char* mux = entry.mux->mux == detail::Multiplexer::Socketcall ? "socketcall" : "ipc";
        out.push_back({mux, emitted(*relevant.front()), {Cond{0, CompareOp::Eq, entry.mux->call, ~uint64_t{0}}},
                       describe(relevant.front()->source) + " via i386 " + mux});
    }
    for (const CondRule* r : relevant) {
        Rule1 rule{entry.name, emitted(*r), r->conds, describe(r->source)};
        bool dup = false;
        for (const Rule1& o : out) dup = dup || (o.name == rule.name && o.action == rule.action && o.conds == rule.conds);
        if (!dup) out.push_back(std::move(rule));
    }
}

Plan plan(const detail::Expanded& e, bool route) {
    Plan p;
    const uint32_t def = scmp_action(e.default_action);
    auto emitted = [&](const CondRule& r) {
        if (r.action.kind == ActionKind::Errno && route) return uint32_t{SCMP_ACT_NOTIFY};
        return scmp_action(r.action);
    };
    for (const SyscallEntry& entry : e.entries) {
        const Action& t = entry.table_action;
        uint32_t table = scmp_action(t);
        bool notify = false;
        if (t.kind == ActionKind::Virtualize || t.kind == ActionKind::Log ||
            (route && t.kind == ActionKind::Errno && entry.table_rule)) {
            table = SCMP_ACT_ALLOW;
            notify = true;
        }
        if (table != def) p.table[entry.name] = table;

        std::vector<Rule1>& out = p.args[entry.name];
        if (notify) {
            // One unconditional NOTIFY (libseccomp lets it shadow every
            // conditional rule of the syscall in the same filter); the
            // supervisor applies decide(), which includes the conditional rules.
            out.push_back({entry.name, SCMP_ACT_NOTIFY, {}, describe(entry.table_rule)});
            // The conditional denials and kills still hold in the kernel,
            // through the guard filter: the kernel takes the most restrictive
            // verdict of all filters, and errno or kill beats a notification.
            // seccomp's stay with the notification: the installer loads the
            // argument filter (with its listener) after the guard filter.
            if (entry.name == "seccomp") continue;
            std::vector<const CondRule*> denials;
            for (const CondRule& r : entry.conditional)
                if (r.action.kind == ActionKind::Kill || (r.action.kind == ActionKind::Errno && !route))
                    denials.push_back(&r);
            if (!denials.empty()) emit_conditional(entry, denials, emitted, p.guards[entry.name]);
            continue;
        }
        std::vector<const CondRule*> relevant;
        for (const CondRule& r : entry.conditional) {
            // A denied syscall stays denied with its own errno; only a kill can
            // make it more restrictive (policy.hpp).
            if (t.kind == ActionKind::Kill) break;
            if (t.kind == ActionKind::Errno && r.action.kind != ActionKind::Kill) continue;
            relevant.push_back(&r);
        }
        emit_conditional(entry, relevant, emitted, out);
        if (out.empty()) p.args.erase(entry.name);
    }

    // The installer loads filters[1] with seccomp(2) while filters[0] is already
    // active, so the table must let seccomp through; a denial of seccomp moves to
    // filters[1], as an unconditional rule with the same verdict.
    if (!p.args.empty()) {
        const SyscallEntry* s = e.find("seccomp");
        const Action t = s ? s->table_action : e.default_action;
        uint32_t table = p.table.contains("seccomp") ? p.table["seccomp"] : def;
        if (table != SCMP_ACT_ALLOW) {
            if (s) {
                for (const CondRule& r : s->conditional)
                    if (r.action.kind == ActionKind::Kill && t.kind != ActionKind::Kill)
                        throw PolicyError("a policy that denies seccomp can't also kill on some of its arguments "
                                          "(the installer needs seccomp to load the second filter)");
            }
            if (def == SCMP_ACT_ALLOW)
                p.table.erase("seccomp");
            else
                p.table["seccomp"] = SCMP_ACT_ALLOW;
            p.args["seccomp"] = {{"seccomp", table, {}, describe(s ? s->table_rule : nullptr) + " (moved to filters[1])"}};
        }
    }
    return p;
}

// Compiled results by canonical text. A daemon compiles the same few policies
// for every job, and libseccomp's BPF generation of the argument filter is most
// of a cold compile (a few ms in Debug). The filters
// are a function of the canonical text (plan() orders everything by it), so a
// hit returns exactly what compiling would.
class CompileCache {
public:
    std::optional<CompiledPolicy> get(const std::string& key) {
        std::lock_guard lock(mu_);
        for (auto it = entries_.begin(); it != entries_.end(); ++it) {
            if (it->first != key) continue;
            entries_.splice(entries_.begin(), entries_, it);
            return entries_.front().second;
        }
        return std::nullopt;
    }
    void put(std::string key, const CompiledPolicy& value) {
        std::lock_guard lock(mu_);
        for (const auto& e : entries_)
            if (e.first == key) return;
        entries_.emplace_front(std::move(key), value);
        if (entries_.size() > kMaxEntries) entries_.pop_back();
    }
    void clear() {
        std::lock_guard lock(mu_);
        entries_.clear();
    }

private:
    static constexpr size_t kMaxEntries = 8;
    std::mutex mu_;
    std::list<std::pair<std::string, CompiledPolicy>> entries_;
};

CompileCache& cache() {
    static CompileCache c;
    return c;
}

}  // namespace

void clear_compile_cache() { cache().clear(); }

CompiledPolicy compile(const Policy& policy) { return compile(policy, CompileOptions{}); }

CompiledPolicy compile(const Policy& policy, const CompileOptions& options) {
    const detail::Expanded e = detail::expand(policy);
    std::string text = detail::canonical_text(e, options);
    if (auto hit = cache().get(text)) return std::move(*hit);
    const bool route = detail::routes_denials(e, options);
    const Plan p = plan(e, route);

    CompiledPolicy out;
    {
        detail::TableSpec spec;
        spec.default_ret = scmp_action(e.default_action);
        spec.by_name = p.table;
        if (e.i386_action) spec.i386_ret = scmp_action(*e.i386_action);
        out.filters.push_back({detail::table_filter(spec), false});
    }
    // Per arch through libseccomp, joined (table_filter.hpp). With an i386
    // action the table answers every i386 call on its own.
    auto build = [&](const std::map<std::string, std::vector<Rule1>>& rules, bool& notify) {
        auto one = [&](Arch arch) {
            ScmpFilter f(SCMP_ACT_ALLOW, arch);
            for (const auto& [name, list] : rules) {
                for (const Rule1& r : list) {
                    // Names the arch doesn't have are skipped by libseccomp.
                    f.add(r.name, r.action, r.conds, r.what);
                    notify = notify || r.action == SCMP_ACT_NOTIFY;
                }
            }
            return f.export_bpf();
        };
        std::optional<std::vector<sock_filter>> i386;
        if (!e.i386_action) i386 = one(Arch::I386);
        return detail::join_arches(one(Arch::X86_64), i386, SCMP_ACT_ALLOW);
    };
    // The guard filter goes before the argument filter: the installer loads
    // the one with the listener last (seccomp itself never notifies before).
    if (!p.guards.empty()) {
        bool notify = false;
        out.filters.push_back({build(p.guards, notify), false});
    }
    if (!p.args.empty()) {
        bool notify = false;
        std::vector<sock_filter> program = build(p.args, notify);
        out.filters.push_back({std::move(program), notify});
    }
    out.digest = sha256_hex(text);
    cache().put(std::move(text), out);
    return out;
}

bool needs_supervisor(const Policy& policy) { return detail::needs_supervisor(detail::expand(policy)); }

std::string canonical_text(const Policy& policy, const CompileOptions& options) {
    return detail::canonical_text(detail::expand(policy), options);
}

}  // namespace hermetic::policy
