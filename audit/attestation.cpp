#include "audit/attestation.hpp"

#include <algorithm>
#include <stdexcept>

#include "audit/encoding.hpp"

namespace hermetic::audit {

using nlohmann::json;

namespace {

void require_digest(const std::string& d, const char* what) {
    if (!is_sha256_hex(d)) throw std::invalid_argument(std::string("attestation: ") + what + " is not a sha256 hex digest");
}

json text_list(const std::vector<std::string>& v) {
    json a = json::array();
    for (const auto& s : v) a.push_back(bounded_text(s, 64 * 1024));
    return a;
}

}  // namespace

json build_statement(const ProvenanceInputs& in) {
    require_digest(in.policy_digest, "the policy digest");
    require_digest(in.rootfs.digest, "the root file system digest");
    require_digest(in.log_sha256, "the audit log digest");
    require_digest(in.chain_head, "the audit chain head");
    require_digest(in.audit_digest, "the audit digest");
    std::vector<Subject> subjects = in.subjects;
    std::sort(subjects.begin(), subjects.end(), [](const Subject& a, const Subject& b) { return a.name < b.name; });
    json subject = json::array();
    for (const auto& s : subjects) {
        require_digest(s.sha256, "an output's sha256");
        if (s.name.empty()) throw std::invalid_argument("attestation: an output has an empty name");
        subject.push_back({{"name", bounded_text(s.name, 64 * 1024)}, {"digest", {{"sha256", s.sha256}}}});
    }
    json external{
        {"command", text_list(in.argv)},
        {"env", text_list(in.env)},
        {"seed", in.seed ? json(*in.seed) : json(nullptr)},
        {"epoch", in.epoch},
        {"clock_step_ns", in.clock_step_ns},
        {"limits",
         {{"memory_bytes", in.limits.memory_bytes},
          {"pids_max", in.limits.pids_max},
          {"cpus", in.limits.cpus},
          {"cpus_visible", in.limits.cpus_visible},
          {"timeout_sec", in.limits.timeout_sec}}},
        {"policy", bounded_text(in.policy_name, 256)},
        {"trace", in.trace},
    };
    // Empty: the job failed before its source was read (unreadable, too big,
    // the sandbox not set up): still evidence, saying so.
    json source = {{"name", "source"}, {"uri", "urn:hermetic:source"}};
    if (in.source_digest.empty()) {
        source["annotations"] = {{"format", kTreeDigestFormat}, {"state", "not read: the job failed before its source was copied"}};
    } else {
        require_digest(in.source_digest, "the source digest");
        source["digest"] = {{"sha256", in.source_digest}};
        source["annotations"] = {{"format", kTreeDigestFormat}};
    }
    json deps = json::array({
        source,
        {{"name", "policy"},
         {"uri", "urn:hermetic:policy:" + bounded_ident(in.policy_name, 128)},
         {"digest", {{"sha256", in.policy_digest}}}},
        {{"name", "rootfs"},
         {"uri", "urn:hermetic:rootfs"},
         {"digest", {{"sha256", in.rootfs.digest}}},
         {"annotations", in.rootfs.annotations.is_null() ? json::object() : in.rootfs.annotations}},
    });
    json byproducts = json::array({
        {{"name", "audit.log"},
         {"mediaType", "application/x-ndjson"},
         {"digest", {{"sha256", in.log_sha256}}},
         {"annotations",
          {{"format", "hermetic-audit/1"},
           {"chain_head", in.chain_head},
           {"records", in.records},
           {"events", in.events},
           {"aggregated", in.aggregated},
           {"by_action", in.by_action},
           {"by_class", in.by_class}}}},
        {{"name", "audit.summary.json"},
         {"mediaType", kSummaryPayloadType},
         {"digest", {{"sha256", in.audit_digest}}}},
    });
    return json{
        {"_type", kStatementType},
        {"subject", subject},
        {"predicateType", kProvenanceType},
        {"predicate",
         {{"buildDefinition",
           {{"buildType", kBuildType},
            {"externalParameters", external},
            {"internalParameters", {{"audit_bound", in.audit_bound}}},
            {"resolvedDependencies", deps}}},
          {"runDetails",
           {{"builder", {{"id", kBuilderId}, {"version", {{"hermeticd", bounded_text(in.builder_version, 64)}}}}},
            {"metadata",
             {{"invocationId", in.job},
              {"startedOn", rfc3339_ms(in.started_ms)},
              {"finishedOn", rfc3339_ms(in.finished_ms)}}},
            {"byproducts", byproducts}}}}},
    };
}

Envelope sign_attestation(const ProvenanceInputs& in, const PrivateKey& key) {
    return sign_envelope(kInTotoPayloadType, build_statement(in).dump(), key);
}

StatementView read_statement(std::string_view payload) {
    json j = json::parse(payload, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) throw FormatError("attestation: the statement is not a JSON object");
    try {
        if (j.at("_type") != kStatementType) throw FormatError("attestation: not an in-toto Statement v1");
        if (j.at("predicateType") != kProvenanceType) throw FormatError("attestation: not SLSA Provenance v1");
        StatementView v;
        for (const auto& s : j.at("subject"))
            v.subjects.push_back({s.at("name").get<std::string>(), s.at("digest").at("sha256").get<std::string>()});
        const json& run = j.at("predicate").at("runDetails");
        v.job = run.at("metadata").at("invocationId").get<std::string>();
        for (const auto& b : run.at("byproducts")) {
            const std::string name = b.at("name").get<std::string>();
            if (name == "audit.log") {
                v.log_sha256 = b.at("digest").at("sha256").get<std::string>();
                v.chain_head = b.at("annotations").at("chain_head").get<std::string>();
            } else if (name == "audit.summary.json") {
                v.audit_digest = b.at("digest").at("sha256").get<std::string>();
            }
        }
        return v;
    } catch (const json::exception& e) {
        throw FormatError(std::string("attestation: ") + e.what());
    }
}

}  // namespace hermetic::audit
