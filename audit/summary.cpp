#include "audit/summary.hpp"

#include <algorithm>

#include "audit/encoding.hpp"
#include "common/sha256.hpp"

namespace hermetic::audit {

using nlohmann::json;

Summary make_summary(const ChainOptions& chain, const ChainResult& result, const Tally& tally, const SummaryFacts& facts) {
    Summary s;
    s.job = chain.job;
    s.policy_digest = facts.policy_digest;
    s.trace = chain.trace;
    s.finished_ms = facts.finished_ms;
    s.state = facts.state;
    s.exit_code = facts.exit_code;
    s.signal = facts.signal;
    s.chain_head = result.head;
    s.records = result.records;
    s.log_bytes = result.bytes;
    s.bound = chain.max_bytes;
    s.log_sha256 = result.file_sha256;
    s.events = tally.events;
    s.recorded = result.recorded;
    s.aggregated = result.aggregated;
    s.aggregate_records = result.aggregate_records;
    s.aggregating_since = result.aggregating_since;
    s.by_syscall = tally.by_syscall;
    s.by_action = tally.by_action;
    s.by_class = tally.by_class;
    s.network = tally.network;
    s.network_other = tally.network_other;
    s.unvirtualizable = tally.unvirtualizable;
    for (const auto& u : facts.unvirtualizable) {
        if (s.unvirtualizable.size() >= kMaxUnvirtualizable) break;
        std::string b = bounded_text(u, 256);
        if (std::find(s.unvirtualizable.begin(), s.unvirtualizable.end(), b) == s.unvirtualizable.end())
            s.unvirtualizable.push_back(b);
    }
    s.supervisor_events = facts.supervisor_events;
    if (facts.supervisor_events && *facts.supervisor_events != tally.events && !facts.counts_only) {
        uint64_t a = *facts.supervisor_events, b = tally.events;
        s.notes.push_back("the supervisor reported " + std::to_string(a) + " deviations, the audit log received " +
                          std::to_string(b) + (a > b ? " (" + std::to_string(a - b) + " lost on the way)" : ""));
    }
    for (const auto& n : facts.notes) {
        if (s.notes.size() >= kMaxNotes) break;
        s.notes.push_back(bounded_text(n, 512));
    }
    return s;
}

json to_json(const Summary& s) {
    json net = json::array();
    for (const auto& n : s.network)
        net.push_back({{"syscall", n.syscall}, {"action", n.action}, {"args", n.args}, {"count", n.count}});
    auto opt = [](const auto& o) { return o ? json(*o) : json(nullptr); };
    return json{
        {"format", kSummaryFormat},
        {"job", s.job},
        {"key_id", s.key_id},
        {"policy_digest", s.policy_digest},
        {"trace", s.trace},
        {"finished_at", rfc3339_ms(s.finished_ms)},
        {"finished_ms", s.finished_ms},
        {"result", {{"state", s.state}, {"exit_code", opt(s.exit_code)}, {"signal", opt(s.signal)}}},
        {"chain",
         {{"head", s.chain_head},
          {"records", s.records},
          {"bytes", s.log_bytes},
          {"bound", s.bound},
          {"log_sha256", s.log_sha256}}},
        {"events",
         {{"total", s.events},
          {"recorded", s.recorded},
          {"aggregated", s.aggregated},
          {"aggregate_records", s.aggregate_records},
          {"aggregating_since", opt(s.aggregating_since)}}},
        {"by_syscall", s.by_syscall},
        {"by_action", s.by_action},
        {"by_class", s.by_class},
        {"network", net},
        {"network_other", s.network_other},
        {"unvirtualizable", s.unvirtualizable},
        {"supervisor_events", opt(s.supervisor_events)},
        {"notes", s.notes},
    };
}

Summary summary_from_json(const json& j) {
    try {
        if (!j.is_object()) throw FormatError("summary: not a JSON object");
        if (j.at("format") != kSummaryFormat) throw FormatError("summary: unknown format");
        Summary s;
        s.job = j.at("job").get<std::string>();
        s.key_id = j.at("key_id").get<std::string>();
        s.policy_digest = j.at("policy_digest").get<std::string>();
        s.trace = j.at("trace").get<bool>();
        s.finished_ms = j.at("finished_ms").get<int64_t>();
        const json& res = j.at("result");
        s.state = res.at("state").get<std::string>();
        if (!res.at("exit_code").is_null()) s.exit_code = res.at("exit_code").get<int>();
        if (!res.at("signal").is_null()) s.signal = res.at("signal").get<int>();
        const json& c = j.at("chain");
        s.chain_head = c.at("head").get<std::string>();
        s.records = c.at("records").get<uint64_t>();
        s.log_bytes = c.at("bytes").get<uint64_t>();
        s.bound = c.at("bound").get<uint64_t>();
        s.log_sha256 = c.at("log_sha256").get<std::string>();
        const json& e = j.at("events");
        s.events = e.at("total").get<uint64_t>();
        s.recorded = e.at("recorded").get<uint64_t>();
        s.aggregated = e.at("aggregated").get<uint64_t>();
        s.aggregate_records = e.at("aggregate_records").get<uint64_t>();
        if (!e.at("aggregating_since").is_null()) s.aggregating_since = e.at("aggregating_since").get<uint64_t>();
        s.by_syscall = j.at("by_syscall").get<std::map<std::string, uint64_t>>();
        s.by_action = j.at("by_action").get<std::map<std::string, uint64_t>>();
        s.by_class = j.at("by_class").get<std::map<std::string, uint64_t>>();
        for (const auto& n : j.at("network"))
            s.network.push_back({n.at("syscall").get<std::string>(), n.at("action").get<std::string>(),
                                 n.at("args").get<std::string>(), n.at("count").get<uint64_t>()});
        s.network_other = j.at("network_other").get<uint64_t>();
        s.unvirtualizable = j.at("unvirtualizable").get<std::vector<std::string>>();
        if (!j.at("supervisor_events").is_null()) s.supervisor_events = j.at("supervisor_events").get<uint64_t>();
        s.notes = j.at("notes").get<std::vector<std::string>>();
        return s;
    } catch (const json::exception& e) {
        throw FormatError(std::string("summary: ") + e.what());
    }
}

Envelope sign_summary(Summary s, const PrivateKey& key) {
    s.key_id = key.key_id();
    return sign_envelope(kSummaryPayloadType, to_json(s).dump(), key);
}

std::string audit_digest(const Envelope& summary_envelope) { return sha256_hex(summary_envelope.payload); }

}  // namespace hermetic::audit
