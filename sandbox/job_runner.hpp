// The job runner: one process per job, forked by the daemon, root in the host's
// namespaces and single-threaded (so it may clone freely). It creates the job's
// cgroup, starts the caller-side copy helpers, clones the sandbox's init into new
// user/mount/pid/uts/ipc namespaces (network: a fresh pooled namespace; cgroup and
// time namespaces are entered by init), writes the id maps, enforces the timeout,
// handles cancellation (SIGTERM), and tears everything down.
#pragma once

#include "sandbox/job_spec.hpp"

namespace hermetic::sandbox {

// Runs the job to the end. Never throws: every failure becomes an outcome with a
// one-line reason. Everything the job created is gone when it returns.
JobOutcome run_job(JobSpec& spec, const SandboxConfig& config) noexcept;

}  // namespace hermetic::sandbox
