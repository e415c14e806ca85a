// hermeticctl's evidence commands:
//   audit JOB [--json] [--verify [--key KEY]]
//   audit diff JOB1 JOB2 [--json] [--max N]
//   audit export JOB [--dir D]
//   audit verify FILE --key KEY [--out DIR]     (offline: no daemon)
//   attest JOB [--statement]
//   pubkey [--all]
// Exit status: 0 fine; 1 verification failed, or `audit diff` found differences;
// 2 usage; 125 the daemon refused or could not be reached (one line on stderr).
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/keys.hpp"
#include "audit/verify.hpp"

namespace hermetic::ctl {

// Entry points for main.cpp: `args` is what follows the command word.
int audit_command(const std::vector<std::string>& args, const std::string& socket);
int attest_command(const std::vector<std::string>& args, const std::string& socket);
int pubkey_command(const std::vector<std::string>& args, const std::string& socket);

// --- pieces, exposed for tests -------------------------------------------------

// The human summary of an "audit" reply.
std::string format_audit(const nlohmann::json& reply);
// The human report of an "audit-diff" result.
std::string format_diff(const nlohmann::json& diff);

// The three files of an export: <dir>/<job>.audit.log, .audit.summary.json,
// .attestation.json. `file` may be any of them, or a directory holding exactly
// one export. Throws CtlError.
struct ExportPaths {
    std::string job, log, summary, attestation;
};
ExportPaths export_paths(const std::string& dir, const std::string& job);
ExportPaths locate_export(const std::string& file);

// Offline verification of an export with the keys in key_file (PEM, one or
// more). With out_dir, the attestation's subjects must be exactly the regular
// files under it, with the same sha256. Prints a line to out (fine) or err
// (first problem). Returns the exit status (0 or 1).
int verify_export(const std::string& file, const std::string& key_file, const std::optional<std::string>& out_dir,
                  std::ostream& out, std::ostream& err);

// Compares attestation subjects with the regular files under dir; the first
// mismatch as one line, or nullopt.
std::optional<std::string> compare_subjects(const std::vector<audit::Subject>& subjects, const std::string& dir);

}  // namespace hermetic::ctl
