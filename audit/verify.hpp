// Checking a job's evidence as a whole: the log's chain, the signed summary
// against the log, and the attestation against both. Pure: the caller reads the
// files (a daemon's job directory, or an export) and supplies the trusted keys.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "audit/attestation.hpp"
#include "audit/chain.hpp"
#include "audit/keys.hpp"
#include "audit/summary.hpp"

namespace hermetic::audit {

// File names: in the daemon's job directory, and (prefixed "<job>.") in an export.
inline constexpr const char* kLogFile = "audit.log";
inline constexpr const char* kSummaryFile = "audit.summary.json";
inline constexpr const char* kAttestationFile = "attestation.json";

struct Bundle {
    std::string log;
    std::optional<std::string> summary;      // DSSE envelope text
    std::optional<std::string> attestation;  // DSSE envelope text
};

struct VerifyReport {
    bool ok = false;
    // The first problem, one line, naming the file and (for the log) the record:
    //   "audit.log: record 17: content does not match its hash"
    //   "audit.summary.json: signature does not verify with key 3f2a..."
    std::string error;
    std::optional<uint64_t> bad_record;
    ChainReport chain;
    std::optional<Summary> summary;  // decoded, when its signature verified
    std::string summary_key_id;
    std::string audit_digest;
    bool attestation_checked = false;
    std::vector<Subject> subjects;
};

// Without a summary the report fails ("no summary"), but still describes the
// chain. The attestation is optional; when present it must verify too.
VerifyReport verify_bundle(const Bundle& b, const Keyring& keys);

}  // namespace hermetic::audit
