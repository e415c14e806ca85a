#include "audit/verify.hpp"

#include "audit/encoding.hpp"

namespace hermetic::audit {

namespace {

// DSSE leaves keyid unsigned; our envelopes always name the signing key, so a
// different one means the stored file was altered.
std::optional<std::string> hint_mismatch(const EnvelopeCheck& c) {
    if (c.hint == c.key_id) return std::nullopt;
    return "the signature's keyid '" + c.hint.substr(0, 64) + "' is not the key that signed it (" + c.key_id + ")";
}

uint64_t sum(const std::map<std::string, uint64_t>& m) {
    uint64_t s = 0;
    for (const auto& [k, v] : m) s += v;
    return s;
}

// The summary must describe exactly this log: same job, head, size and totals.
std::optional<std::string> compare(const Summary& s, const ChainReport& c) {
    auto num = [](const char* what, uint64_t in_summary, uint64_t in_log) -> std::optional<std::string> {
        if (in_summary == in_log) return std::nullopt;
        return std::string(what) + ": the summary says " + std::to_string(in_summary) + ", the log has " +
               std::to_string(in_log);
    };
    if (s.job != c.job) return "the summary is for job '" + s.job.substr(0, 64) + "', the log for job '" + c.job + "'";
    if (s.records != c.records) {
        if (s.records > c.records) return "record " + std::to_string(c.records) + ": missing (the summary says the log has " + std::to_string(s.records) + " records)";
        return "record " + std::to_string(s.records) + ": not covered by the summary (" + std::to_string(s.records) + " records)";
    }
    if (s.chain_head != c.head) return "the chain head does not match the summary's (record " + std::to_string(c.records - 1) + ")";
    if (s.log_sha256 != c.file_sha256) return "the log's sha256 does not match the summary's";
    for (auto m : {num("bytes", s.log_bytes, c.bytes), num("bound", s.bound, c.bound), num("events", s.events, c.events),
                   num("recorded events", s.recorded, c.recorded), num("aggregated events", s.aggregated, c.aggregated),
                   num("aggregate records", s.aggregate_records, c.aggregate_records)})
        if (m) return m;
    if (s.trace != c.trace) return std::string("trace: the summary and the log disagree");
    if (s.aggregating_since != c.aggregating_since) return std::string("aggregating_since: the summary and the log disagree");
    if (s.by_action != c.by_action) return std::string("counts by action differ between the summary and the log");
    if (sum(s.by_syscall) != s.events || sum(s.by_class) != s.events)
        return std::string("the summary's counts by syscall or class do not add up to its event total");
    return std::nullopt;
}

}  // namespace

VerifyReport verify_bundle(const Bundle& b, const Keyring& keys) {
    VerifyReport r;
    r.chain = verify_chain(b.log);
    auto chain_failure = [&] {
        r.error = std::string(kLogFile) + ": " + r.chain.error;
        r.bad_record = r.chain.bad_record;
        return r;
    };
    // A bad record is the answer; an intact but short log is better explained by
    // the summary ("record N: missing"), so that case goes on.
    if (!r.chain.ok && (r.chain.bad_record || r.chain.complete)) return chain_failure();
    if (!b.summary) {
        if (!r.chain.ok) return chain_failure();
        r.error = std::string(kSummaryFile) + ": missing";
        return r;
    }
    Envelope env;
    try {
        env = parse_envelope(*b.summary);
    } catch (const FormatError& e) {
        r.error = std::string(kSummaryFile) + ": " + e.what();
        return r;
    }
    EnvelopeCheck check = verify_envelope(env, kSummaryPayloadType, keys);
    if (!check.ok) {
        r.error = std::string(kSummaryFile) + ": " + check.error;
        return r;
    }
    if (auto m = hint_mismatch(check)) {
        r.error = std::string(kSummaryFile) + ": " + *m;
        return r;
    }
    r.summary_key_id = check.key_id;
    r.audit_digest = audit_digest(env);
    Summary s;
    try {
        s = summary_from_json(nlohmann::json::parse(env.payload));
    } catch (const std::exception& e) {
        r.error = std::string(kSummaryFile) + ": " + e.what();
        return r;
    }
    if (s.key_id != check.key_id) {
        r.error = std::string(kSummaryFile) + ": signed by key " + check.key_id + " but names key " + s.key_id.substr(0, 64);
        return r;
    }
    r.summary = s;
    if (auto m = compare(s, r.chain)) {
        r.error = std::string(kLogFile) + ": " + *m;
        if (m->rfind("record ", 0) == 0) r.bad_record = std::stoull(m->substr(7));
        return r;
    }
    if (!r.chain.ok) return chain_failure();
    if (b.attestation) {
        try {
            Envelope a = parse_envelope(*b.attestation);
            EnvelopeCheck ac = verify_envelope(a, kInTotoPayloadType, keys);
            if (!ac.ok) {
                r.error = std::string(kAttestationFile) + ": " + ac.error;
                return r;
            }
            if (auto m = hint_mismatch(ac)) {
                r.error = std::string(kAttestationFile) + ": " + *m;
                return r;
            }
            StatementView v = read_statement(a.payload);
            if (v.job != s.job) {
                r.error = std::string(kAttestationFile) + ": for job '" + v.job.substr(0, 64) + "', not '" + s.job + "'";
                return r;
            }
            if (v.chain_head != r.chain.head || v.log_sha256 != r.chain.file_sha256) {
                r.error = std::string(kAttestationFile) + ": its audit log byproduct does not match the log";
                return r;
            }
            if (v.audit_digest != r.audit_digest) {
                r.error = std::string(kAttestationFile) + ": its summary byproduct does not match the summary";
                return r;
            }
            r.subjects = std::move(v.subjects);
            r.attestation_checked = true;
        } catch (const FormatError& e) {
            r.error = std::string(kAttestationFile) + ": " + e.what();
            return r;
        }
    }
    r.ok = true;
    return r;
}

}  // namespace hermetic::audit
