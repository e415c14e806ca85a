// One client connection: authenticate by SO_PEERCRED, read one request within
// the request timeout, serve it. A malformed, oversized or silent client is
// dropped with a one-line error and affects nobody else.
#pragma once

#include <sys/types.h>

#include "common/unique_fd.hpp"
#include "daemon/config.hpp"
#include "daemon/evidence_requests.hpp"
#include "daemon/job_manager.hpp"
#include "syscall-policy/policy_store.hpp"

namespace hermetic::daemon {

struct SessionContext {
    const DaemonConfig* config = nullptr;
    JobManager* jobs = nullptr;
    gid_t submit_group = 0;
    policy::PolicyStore* policies = nullptr;
    EvidenceContext evidence;
};

void serve_session(UniqueFd conn, const SessionContext& ctx) noexcept;

}  // namespace hermetic::daemon
