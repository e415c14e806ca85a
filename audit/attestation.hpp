// The build's attestation: an in-toto Statement v1 (https://in-toto.io/Statement/v1)
// whose predicate is SLSA Provenance v1 (https://slsa.dev/provenance/v1), in a DSSE
// envelope (payloadType application/vnd.in-toto+json) signed with the daemon key.
//
//   subject                = the output files (regular files only), name = path
//                            under /out, digest.sha256 = content; sorted by name
//   buildDefinition
//     buildType            = kBuildType
//     externalParameters   = command, env, seed, epoch, clock_step_ns, limits,
//                            policy, trace
//     internalParameters   = audit_bound
//     resolvedDependencies = source (hermetic-tree/1 digest), policy (its digest),
//                            rootfs (hermetic-rootfs/1 digest, annotated)
//   runDetails
//     builder              = {id: kBuilderId, version: {hermeticd}}
//     metadata             = invocationId (job id), startedOn, finishedOn
//     byproducts           = audit.log (sha256 of the file; annotations: chain head,
//                            records, event counts by action and class) and
//                            audit.summary.json (sha256 = the audit digest)
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/dsse.hpp"
#include "audit/identity.hpp"
#include "audit/keys.hpp"

namespace hermetic::audit {

inline constexpr const char* kStatementType = "https://in-toto.io/Statement/v1";
inline constexpr const char* kProvenanceType = "https://slsa.dev/provenance/v1";
inline constexpr const char* kBuildType = "urn:hermetic:build-type:sandboxed-command:v1";
inline constexpr const char* kBuilderId = "urn:hermetic:builder:hermeticd";

struct Subject {
    std::string name;
    std::string sha256;
};

struct BuildLimits {
    uint64_t memory_bytes = 0;
    uint64_t pids_max = 0;
    double cpus = 0;           // CPU bandwidth, 0: unlimited
    uint32_t cpus_visible = 0; // what the build sees
    uint64_t timeout_sec = 0;
};

struct ProvenanceInputs {
    std::string job;
    std::vector<std::string> argv;
    std::vector<std::string> env;  // "K=V", exactly the build's environment
    std::optional<uint64_t> seed;
    int64_t epoch = 0;
    int64_t clock_step_ns = 0;     // the logical clock's step (--clock-step)
    BuildLimits limits;
    std::string policy_name;
    std::string policy_digest;     // sha256 hex
    std::string source_digest;     // sha256 hex, hermetic-tree/1; empty: never read (the job failed first)
    RootfsIdentity rootfs;
    std::vector<Subject> subjects;
    bool trace = false;
    uint64_t audit_bound = 0;
    int64_t started_ms = 0;
    int64_t finished_ms = 0;
    std::string builder_version;   // hermeticd's version
    // Byproducts: the audit evidence this statement vouches for.
    std::string log_sha256;
    std::string chain_head;
    uint64_t records = 0;
    uint64_t events = 0;
    uint64_t aggregated = 0;
    std::map<std::string, uint64_t> by_action;
    std::map<std::string, uint64_t> by_class;
    std::string audit_digest;      // sha256 of the summary payload
};

// Validates digests (64 hex) and subject names; throws std::invalid_argument.
nlohmann::json build_statement(const ProvenanceInputs& in);
Envelope sign_attestation(const ProvenanceInputs& in, const PrivateKey& key);

// What a verifier reads back out of a statement.
struct StatementView {
    std::string job;                  // invocationId
    std::vector<Subject> subjects;
    std::string chain_head;
    std::string log_sha256;
    std::string audit_digest;
};
// Throws FormatError when it is not a statement of this shape.
StatementView read_statement(std::string_view payload);

}  // namespace hermetic::audit
