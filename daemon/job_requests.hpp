// Requests about jobs after submission: status, wait, cancel, logs, list, gc,
// metrics. Users see and act on their own jobs only; root on all.
#pragma once

#include <sys/types.h>

#include <string_view>

#include <nlohmann/json.hpp>

#include "daemon/job_manager.hpp"

namespace hermetic::daemon {

bool is_job_request(std::string_view type);

// Serves one request on the connection; errors go to the client as error
// messages (not-found for jobs that aren't the requester's).
void serve_job_request(int fd, JobManager& jobs, uid_t requester, const nlohmann::json& msg);

// Streams a job's stored output from the start and follows it while it runs
// (output frames only if `with_output`), then sends {"type":"done","result"}.
// Returns early if the client goes away; a "cancel" from the client cancels the job.
void follow_stored_job(int fd, JobManager& jobs, const JobView& view, bool with_output);

// The Prometheus text exposition of the daemon's state.
std::string metrics_text(JobManager& jobs, Journal& journal);

// One job's record as clients see it (no environment: it may hold secrets).
nlohmann::json job_summary(const JobRecord& rec);

}  // namespace hermetic::daemon
