// The job's audit summary: exact counts, the chain head, what could not be
// virtualized; signed with the daemon's key in a DSSE envelope (dsse.hpp) whose
// payload is this JSON (nlohmann dump: compact, keys sorted). The audit digest a
// client sees for the job is the SHA-256 (hex) of that payload.
//
// Payload fields:
//   format "hermetic-audit-summary/1", job, key_id (the signer, inside the signed
//   bytes), policy_digest, trace, finished_at (RFC 3339),
//   result {state, exit_code, signal},
//   chain {head, records, bytes, bound, log_sha256},
//   events {total, recorded, aggregated, aggregate_records, aggregating_since},
//   by_syscall, by_action, by_class ({name: count}),
//   network [{syscall, action, args, count}], network_other,
//   unvirtualizable [source, ...],
//   supervisor_events (what the supervisor counted, or null), notes [...]
//   (anything a reader must know: events lost between supervisor and log,
//   the supervisor's own notes)
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/chain.hpp"
#include "audit/dsse.hpp"
#include "audit/keys.hpp"

namespace hermetic::audit {

inline constexpr const char* kSummaryFormat = "hermetic-audit-summary/1";

struct Summary {
    std::string job;
    std::string key_id;
    std::string policy_digest;
    bool trace = false;
    int64_t finished_ms = 0;
    std::string state;  // succeeded | failed | cancelled
    std::optional<int> exit_code;
    std::optional<int> signal;
    // chain
    std::string chain_head;
    uint64_t records = 0;
    uint64_t log_bytes = 0;
    uint64_t bound = 0;
    std::string log_sha256;
    // events
    uint64_t events = 0;
    uint64_t recorded = 0;
    uint64_t aggregated = 0;
    uint64_t aggregate_records = 0;
    std::optional<uint64_t> aggregating_since;
    std::map<std::string, uint64_t> by_syscall, by_action, by_class;
    std::vector<NetworkAttempt> network;
    uint64_t network_other = 0;
    std::vector<std::string> unvirtualizable;
    std::optional<uint64_t> supervisor_events;
    std::vector<std::string> notes;
};

inline constexpr size_t kMaxNotes = 64;

// What the chain writer knows plus the job's facts.
struct SummaryFacts {
    std::string policy_digest;
    int64_t finished_ms = 0;
    std::string state;
    std::optional<int> exit_code;
    std::optional<int> signal;
    std::vector<std::string> unvirtualizable;  // sources known to the sandbox (e.g. "rdtsc: no CPUID faulting")
    // The supervisor's own count of deviations; a different total in the log
    // becomes a note, so events lost on the way are stated, never hidden.
    std::optional<uint64_t> supervisor_events;
    std::vector<std::string> notes;
    // audit-events = counts: the supervisor recorded nothing one by one on
    // purpose (a note says so with its counts); the totals then differ, no loss.
    bool counts_only = false;
};
Summary make_summary(const ChainOptions& chain, const ChainResult& result, const Tally& tally, const SummaryFacts& facts);

nlohmann::json to_json(const Summary& s);
// Throws FormatError naming the field.
Summary summary_from_json(const nlohmann::json& j);

// The payload is to_json(s).dump(); key_id is set to the signer's.
Envelope sign_summary(Summary s, const PrivateKey& key);

// The audit digest: sha256 hex of the summary payload bytes.
std::string audit_digest(const Envelope& summary_envelope);

}  // namespace hermetic::audit
