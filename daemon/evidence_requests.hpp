// Requests for a job's audit evidence, served from the state directory:
//
//   {"type":"audit","job":ID}               -> {"type":"audit","job","complete","audit_digest",
//                                               "key_id","summary":{...}|null,"records"}
//   {"type":"audit","job":ID,"json":true}   -> stream: audit.log
//   {"type":"audit-export","job":ID}        -> stream: audit.log, audit.summary.json,
//                                               attestation.json (those that exist); the end
//                                               message carries "public_keys"
//   {"type":"attest","job":ID}              -> stream: attestation.json
//   {"type":"audit-diff","job1":A,"job2":B[,"max":N]} -> {"type":"audit-diff","diff":{...}}
//   {"type":"pubkey"}                       -> {"type":"pubkey","current":ID,
//                                               "keys":[{"key_id","pem","current","created_ms"}]}
//
// A stream is, per file: a control message
//   {"type":"evidence-file","name":NAME,"size":N,"sha256":HEX}
// then data frames (kind Stdout, at most 64 KiB each) carrying exactly N bytes;
// and at the end {"type":"evidence-end","job":ID,...}. Control messages stay small
// (under the 1 MiB frame bound) whatever the size of the evidence.
//
// Who may see what: root sees every job, anyone else only jobs they submitted.
// A job unknown to the journal is "not-found"; another user's job "unauthorized".
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "daemon/journal.hpp"
#include "daemon/signing_key.hpp"

namespace hermetic::daemon {

struct JobOwner {
    uid_t uid = 0;
    std::string state;  // the journal's state
};
using OwnerLookup = std::function<std::optional<JobOwner>(const std::string& job_id)>;

// Looks jobs up in the journal.
OwnerLookup journal_owner_lookup(Journal& journal);

struct EvidenceContext {
    std::string state_dir;
    const SigningKeys* keys = nullptr;
    OwnerLookup owner_of;
};

// A refused request: `code` is a protocol::error_code (not-found, unauthorized,
// bad-request, internal); the message is one line.
class EvidenceError : public std::runtime_error {
public:
    EvidenceError(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
    [[nodiscard]] const std::string& code() const { return code_; }

private:
    std::string code_;
};

// Where a handler's reply goes: control messages (already stamped by
// protocol::make_message) and data chunks (each at most protocol::kMaxOutputChunk).
struct EvidenceReply {
    std::function<void(const nlohmann::json&)> control;
    std::function<void(std::string_view)> data;
};

// "audit", "audit-export", "attest", "audit-diff", "pubkey".
bool is_evidence_request(std::string_view type);

// Serves one request. Throws EvidenceError; the reply may be partly sent when an
// I/O error on the reply itself throws.
void handle_evidence_request(const EvidenceContext& ctx, uid_t requester, const nlohmann::json& msg,
                             const EvidenceReply& reply);

// The session's entry point: serves `msg` on the client socket `fd` and turns
// an EvidenceError into {"type":"error","code","message"}. Never throws.
void serve_evidence_request(int fd, const EvidenceContext& ctx, uid_t requester, const nlohmann::json& msg) noexcept;

}  // namespace hermetic::daemon
