#include "daemon/evidence_requests.hpp"

#include <algorithm>

#include "audit/diff.hpp"
#include "audit/dsse.hpp"
#include "audit/encoding.hpp"
#include "audit/files.hpp"
#include "audit/record.hpp"
#include "audit/verify.hpp"
#include "common/sha256.hpp"
#include "common/sys_error.hpp"
#include "protocol/messages.hpp"

namespace hermetic::daemon {

using nlohmann::json;
namespace ec = protocol::error_code;

namespace {

// Bigger than any log the bound allows (the bound is configured per daemon;
// this only stops a corrupted file from exhausting memory).
constexpr size_t kMaxEvidenceFile = 1ull << 30;

std::string job_field(const json& msg, const char* key) {
    auto it = msg.find(key);
    if (it == msg.end() || !it->is_string()) throw EvidenceError(ec::kBadRequest, std::string("missing \"") + key + "\"");
    std::string id = it->get<std::string>();
    if (!audit::is_valid_job_id(id)) throw EvidenceError(ec::kBadRequest, "invalid job id '" + id.substr(0, 64) + "'");
    return id;
}

// The job's directory, once the requester may see it.
std::string authorize(const EvidenceContext& ctx, uid_t requester, const std::string& id) {
    std::optional<JobOwner> owner = ctx.owner_of(id);
    if (!owner) throw EvidenceError(ec::kNotFound, "no job " + id);
    if (requester != 0 && requester != owner->uid)
        throw EvidenceError(ec::kUnauthorized, "job " + id + " belongs to another user");
    return ctx.state_dir + "/jobs/" + id;
}

std::optional<std::string> read_evidence(const std::string& dir, const char* name) {
    try {
        return audit::read_file_if_exists(dir + "/" + name, kMaxEvidenceFile);
    } catch (const std::exception& e) {
        throw EvidenceError(ec::kInternal, e.what());
    }
}

std::string read_log(const std::string& dir, const std::string& id) {
    auto log = read_evidence(dir, audit::kLogFile);
    if (!log) throw EvidenceError(ec::kNotFound, "job " + id + " has no audit evidence (it never started)");
    // A running job's writer may be mid-line: show only whole records.
    size_t end = log->rfind('\n');
    log->resize(end == std::string::npos ? 0 : end + 1);
    return std::move(*log);
}

void send_file(const EvidenceReply& reply, const std::string& name, std::string_view content) {
    json m = protocol::make_message("evidence-file");
    m["name"] = name;
    m["size"] = content.size();
    m["sha256"] = sha256_hex(content);
    reply.control(m);
    for (size_t pos = 0; pos < content.size(); pos += protocol::kMaxOutputChunk)
        reply.data(content.substr(pos, protocol::kMaxOutputChunk));
}

json decoded_summary(const std::string& text, std::string* digest) {
    audit::Envelope env = audit::parse_envelope(text);
    *digest = audit::audit_digest(env);
    return json::parse(env.payload);
}

json public_keys_json(const EvidenceContext& ctx) {
    json keys = json::array();
    if (!ctx.keys) return keys;
    for (const auto& k : ctx.keys->public_keys())
        keys.push_back({{"key_id", k.key_id}, {"pem", k.pem}, {"current", k.current}, {"created_ms", k.created_ms}});
    return keys;
}

void handle_audit(const EvidenceContext& ctx, uid_t requester, const json& msg, const EvidenceReply& reply) {
    std::string id = job_field(msg, "job");
    std::string dir = authorize(ctx, requester, id);
    std::string log = read_log(dir, id);
    if (msg.value("json", false)) {
        send_file(reply, audit::kLogFile, log);
        json end = protocol::make_message("evidence-end");
        end["job"] = id;
        return reply.control(end);
    }
    json r = protocol::make_message("audit");
    r["job"] = id;
    r["records"] = static_cast<uint64_t>(std::count(log.begin(), log.end(), '\n'));
    r["log_bytes"] = log.size();
    auto summary = read_evidence(dir, audit::kSummaryFile);
    r["complete"] = summary.has_value();
    r["summary"] = nullptr;
    if (summary) {
        try {
            std::string digest;
            r["summary"] = decoded_summary(*summary, &digest);
            r["audit_digest"] = digest;
        } catch (const std::exception& e) {
            // Shown, not hidden: `audit --verify` gives the details.
            r["summary_error"] = std::string("the stored summary is unreadable: ") + e.what();
        }
    }
    if (auto o = ctx.owner_of(id)) r["state"] = o->state;
    reply.control(r);
}

void handle_export(const EvidenceContext& ctx, uid_t requester, const json& msg, const EvidenceReply& reply) {
    std::string id = job_field(msg, "job");
    std::string dir = authorize(ctx, requester, id);
    std::string log = read_log(dir, id);
    // Summary first read, then the log is sent: both as they are now.
    auto summary = read_evidence(dir, audit::kSummaryFile);
    auto att = read_evidence(dir, audit::kAttestationFile);
    send_file(reply, audit::kLogFile, log);
    if (summary) send_file(reply, audit::kSummaryFile, *summary);
    if (att) send_file(reply, audit::kAttestationFile, *att);
    json end = protocol::make_message("evidence-end");
    end["job"] = id;
    end["public_keys"] = public_keys_json(ctx);
    reply.control(end);
}

void handle_attest(const EvidenceContext& ctx, uid_t requester, const json& msg, const EvidenceReply& reply) {
    std::string id = job_field(msg, "job");
    std::string dir = authorize(ctx, requester, id);
    auto att = read_evidence(dir, audit::kAttestationFile);
    if (!att) {
        if (!read_evidence(dir, audit::kLogFile))
            throw EvidenceError(ec::kNotFound, "job " + id + " has no attestation (it never started)");
        throw EvidenceError(ec::kNotFound, "job " + id + " has no attestation yet (it has not finished)");
    }
    send_file(reply, audit::kAttestationFile, *att);
    json end = protocol::make_message("evidence-end");
    end["job"] = id;
    reply.control(end);
}

void handle_diff(const EvidenceContext& ctx, uid_t requester, const json& msg, const EvidenceReply& reply) {
    std::string a = job_field(msg, "job1"), b = job_field(msg, "job2");
    std::string da = authorize(ctx, requester, a), db = authorize(ctx, requester, b);
    std::string la = read_log(da, a), lb = read_log(db, b);
    // Only intact chains are compared: a diff of a tampered log would mislead.
    for (const auto& [id, log] : {std::pair{&a, &la}, std::pair{&b, &lb}}) {
        audit::ChainReport c = audit::verify_chain(*log);
        if (!c.ok && c.bad_record)
            throw EvidenceError(ec::kConflict, "job " + *id + "'s audit log fails verification: " + c.error);
    }
    audit::DiffOptions opt;
    if (auto it = msg.find("max"); it != msg.end() && it->is_number_unsigned())
        opt.max_differences = std::min<size_t>(it->get<size_t>(), 200);
    json r = protocol::make_message("audit-diff");
    try {
        r["diff"] = audit::diff_logs(la, lb, opt);
    } catch (const audit::FormatError& e) {
        throw EvidenceError(ec::kInternal, e.what());
    }
    reply.control(r);
}

void handle_pubkey(const EvidenceContext& ctx, const EvidenceReply& reply) {
    if (!ctx.keys) throw EvidenceError(ec::kInternal, "the daemon has no signing key");
    json r = protocol::make_message("pubkey");
    r["current"] = ctx.keys->current_key_id();
    r["keys"] = public_keys_json(ctx);
    reply.control(r);
}

}  // namespace

OwnerLookup journal_owner_lookup(Journal& journal) {
    return [&journal](const std::string& id) -> std::optional<JobOwner> {
        auto rec = journal.get(id);
        if (!rec) return std::nullopt;
        return JobOwner{rec->uid, rec->state};
    };
}

bool is_evidence_request(std::string_view type) {
    return type == "audit" || type == "audit-export" || type == "attest" || type == "audit-diff" || type == "pubkey";
}

void handle_evidence_request(const EvidenceContext& ctx, uid_t requester, const json& msg, const EvidenceReply& reply) {
    const std::string type = msg.value("type", "");
    if (type == "audit") return handle_audit(ctx, requester, msg, reply);
    if (type == "audit-export") return handle_export(ctx, requester, msg, reply);
    if (type == "attest") return handle_attest(ctx, requester, msg, reply);
    if (type == "audit-diff") return handle_diff(ctx, requester, msg, reply);
    if (type == "pubkey") return handle_pubkey(ctx, reply);
    throw EvidenceError(ec::kBadRequest, "not an evidence request: '" + type.substr(0, 64) + "'");
}

void serve_evidence_request(int fd, const EvidenceContext& ctx, uid_t requester, const json& msg) noexcept {
    EvidenceReply reply{
        [fd](const json& m) { protocol::send_message(fd, m); },
        [fd](std::string_view chunk) { protocol::write_frame(fd, protocol::FrameKind::Stdout, chunk); },
    };
    try {
        handle_evidence_request(ctx, requester, msg, reply);
    } catch (const EvidenceError& e) {
        try {
            protocol::send_message(fd, protocol::make_error(e.code(), e.what()));
        } catch (...) {
        }
    } catch (const std::exception& e) {
        // Also reached when the client went away mid-stream; then this fails too.
        try {
            protocol::send_message(fd, protocol::make_error(ec::kInternal, e.what()));
        } catch (...) {
        }
    }
}

}  // namespace hermetic::daemon
