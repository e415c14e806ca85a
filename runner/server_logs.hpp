// A runner job's evidence, handed to the worker: its signed audit summary and
// in-toto attestation (the job's files, as hermeticctl audit/attest read them)
// are copied into the action's server_logs_directory, where bb_worker uploads
// them and the Bazel client receives them as server logs.
#pragma once

#include <string>

#include "runner/build_directory.hpp"

namespace hermetic::runner {

// Names of the files written into the server logs directory.
inline constexpr const char* kJobIdLog = "hermetic-job";
inline constexpr const char* kSummaryLog = "hermetic-audit-summary.json";
inline constexpr const char* kAttestationLog = "hermetic-attestation.json";

// Copies the job's evidence from `job_dir` into `logs_rel` (beneath the build
// directory). Throws PathError / SysError.
void write_server_logs(const BuildDirectory& build, const std::string& logs_rel, const std::string& job_id,
                       const std::string& job_dir);

}  // namespace hermetic::runner
