#include "audit/diff.hpp"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "audit/chain.hpp"
#include "audit/encoding.hpp"

namespace hermetic::audit {

using nlohmann::json;

namespace {

struct Ev {
    uint64_t n = 0;
    int64_t vpid = 0;
    int64_t nr = 0;
    std::string exe, syscall, cls, args, value;
    std::optional<std::string> real;
};

struct Parsed {
    std::string job;
    std::vector<Ev> events;                       // in log order
    std::map<int64_t, std::vector<size_t>> by_pid;  // vpid -> indexes into events
    std::optional<uint64_t> aggregating_since;
    uint64_t aggregated = 0;
};

Parsed parse(std::string_view log) {
    Parsed p;
    for_each_record(log, [&](uint64_t, const ParsedLine& l) {
        const json& b = l.body;
        const std::string kind = b.value("kind", "");
        if (kind == "start") {
            p.job = b.value("job", "");
        } else if (kind == "event") {
            Ev e;
            e.n = b.at("n").get<uint64_t>();
            e.vpid = b.at("vpid").get<int64_t>();
            e.nr = b.at("nr").get<int64_t>();
            e.exe = b.at("exe").get<std::string>();
            e.syscall = b.at("syscall").get<std::string>();
            e.cls = b.at("class").get<std::string>();
            e.args = b.at("args").get<std::string>();
            e.value = b.at("value").get<std::string>();
            if (auto it = b.find("real"); it != b.end()) e.real = it->get<std::string>();
            p.by_pid[e.vpid].push_back(p.events.size());
            p.events.push_back(std::move(e));
        } else if (kind == "end") {
            if (auto it = b.find("aggregating_since"); it != b.end() && !it->is_null())
                p.aggregating_since = it->get<uint64_t>();
            p.aggregated = b.value("aggregated", uint64_t{0});
        }
    });
    return p;
}

json brief(const Ev& e) { return {{"n", e.n}, {"syscall", e.syscall}, {"args", e.args}, {"value", e.value}}; }

}  // namespace

json diff_logs(std::string_view log1, std::string_view log2, const DiffOptions& opt) {
    Parsed a, b;
    try {
        a = parse(log1);
    } catch (const json::exception& e) {
        throw FormatError(std::string("job 1's log: ") + e.what());
    }
    try {
        b = parse(log2);
    } catch (const json::exception& e) {
        throw FormatError(std::string("job 2's log: ") + e.what());
    }

    struct Found {
        uint64_t order;  // position in job 1's stream (or past it, for job-2-only events)
        json detail;
        std::string kind, syscall;
    };
    std::vector<Found> found;
    uint64_t compared = 0;
    std::map<int64_t, size_t> seen_in_a;  // vpid -> events of it seen so far in job 1
    std::map<int64_t, bool> diverged;

    auto make = [&](const char* kind, const Ev* x, const Ev* y, size_t index) {
        const Ev& any = x ? *x : *y;
        json d{{"kind", kind},          {"vpid", any.vpid},       {"index", index}, {"exe", any.exe},
               {"syscall", any.syscall}, {"class", any.cls}, {"nr", any.nr}};
        d["n1"] = x ? json(x->n) : json(nullptr);
        d["n2"] = y ? json(y->n) : json(nullptr);
        d["args1"] = x ? json(x->args) : json(nullptr);
        d["args2"] = y ? json(y->args) : json(nullptr);
        d["value1"] = x ? json(x->value) : json(nullptr);
        d["value2"] = y ? json(y->value) : json(nullptr);
        d["real1"] = x && x->real ? json(*x->real) : json(nullptr);
        d["real2"] = y && y->real ? json(*y->real) : json(nullptr);
        if (y && x && y->syscall != x->syscall) d["syscall2"] = y->syscall;
        json ctx = json::array();
        if (x) {
            const auto& idx = a.by_pid[x->vpid];
            size_t from = index >= opt.context ? index - opt.context : 0;
            for (size_t k = from; k < index && k < idx.size(); ++k) ctx.push_back(brief(a.events[idx[k]]));
        }
        d["context"] = ctx;
        return d;
    };

    for (size_t i = 0; i < a.events.size(); ++i) {
        const Ev& x = a.events[i];
        size_t k = seen_in_a[x.vpid]++;
        if (diverged[x.vpid]) continue;
        auto it = b.by_pid.find(x.vpid);
        if (it == b.by_pid.end() || k >= it->second.size()) {
            // Only the first missing event of a process is interesting.
            diverged[x.vpid] = true;
            found.push_back({i, make("missing", &x, nullptr, k), "missing", x.syscall});
            continue;
        }
        const Ev& y = b.events[it->second[k]];
        ++compared;
        const char* kind = nullptr;
        if (x.syscall != y.syscall) {
            kind = "syscall";
            diverged[x.vpid] = true;
        } else if (x.value != y.value) {
            kind = "value";
        } else if (x.real && y.real && *x.real != *y.real) {
            kind = "real";
        } else if (x.args != y.args) {
            kind = "args";
        }
        if (kind) found.push_back({i, make(kind, &x, &y, k), kind, x.syscall});
    }
    // Processes (or tails of them) that only job 2 has.
    json only2 = json::array(), only1 = json::array();
    for (const auto& [pid, idx] : b.by_pid) {
        if (!a.by_pid.count(pid)) only2.push_back(pid);
        size_t have = seen_in_a.count(pid) ? seen_in_a[pid] : 0;
        if (diverged[pid] || have >= idx.size()) continue;
        const Ev& y = b.events[idx[have]];
        found.push_back({a.events.size() + idx[have], make("missing", nullptr, &y, have), "missing", y.syscall});
    }
    for (const auto& [pid, idx] : a.by_pid)
        if (!b.by_pid.count(pid)) only1.push_back(pid);
    std::stable_sort(found.begin(), found.end(), [](const Found& l, const Found& r) { return l.order < r.order; });

    json diffs = json::array();
    std::map<std::string, uint64_t> by_kind, by_syscall;
    for (const auto& f : found) {
        if (diffs.size() < opt.max_differences) diffs.push_back(f.detail);
        ++by_kind[f.kind];
        ++by_syscall[f.syscall];
    }
    json notes = json::array();
    auto agg_note = [&](const char* which, const Parsed& p) {
        if (p.aggregating_since)
            notes.push_back(std::string(which) + " reached its audit bound: from event " +
                            std::to_string(*p.aggregating_since) + " on, " + std::to_string(p.aggregated) +
                            " repeated events were only counted and are not compared");
    };
    agg_note("job 1", a);
    agg_note("job 2", b);
    bool trace1 = std::any_of(a.events.begin(), a.events.end(), [](const Ev& e) { return e.real.has_value(); });
    bool trace2 = std::any_of(b.events.begin(), b.events.end(), [](const Ev& e) { return e.real.has_value(); });
    if (!trace1 || !trace2)
        notes.push_back("real values are compared only when both jobs ran with --trace");
    return json{{"job1", a.job},
                {"job2", b.job},
                {"identical", found.empty()},
                {"compared", compared},
                {"events1", a.events.size()},
                {"events2", b.events.size()},
                {"differences", diffs},
                {"total_differences", found.size()},
                {"by_kind", by_kind},
                {"by_syscall", by_syscall},
                {"processes_only_in_job1", only1},
                {"processes_only_in_job2", only2},
                {"notes", notes}};
}

}  // namespace hermetic::audit
