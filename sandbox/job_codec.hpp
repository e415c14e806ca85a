// JSON forms of the job types, for the daemon <-> runner <-> init channels.
#pragma once

#include <nlohmann/json.hpp>

#include "sandbox/job_spec.hpp"

namespace hermetic::sandbox {

nlohmann::json filters_to_json(const std::vector<policy::Filter>& filters);
std::vector<policy::Filter> filters_from_json(const nlohmann::json& j);

void to_json(nlohmann::json& j, const SandboxConfig& v);
void from_json(const nlohmann::json& j, SandboxConfig& v);
void to_json(nlohmann::json& j, const PrepareSpec& v);
void from_json(const nlohmann::json& j, PrepareSpec& v);
void to_json(nlohmann::json& j, const RunSpec& v);
void from_json(const nlohmann::json& j, RunSpec& v);
void to_json(nlohmann::json& j, const JobOutcome& v);
void from_json(const nlohmann::json& j, JobOutcome& v);

}  // namespace hermetic::sandbox
