// Pid 1 of a job. Prepared ahead of time: it waits for its id maps and cgroup,
// builds the root file system and pivots into it, then waits for a job. For the
// job it copies the source in, starts the build, reaps every process, kills what
// the build left behind, and streams /out back.
//
// Messages on the control socket (sandbox/control_channel.hpp), runner -> init:
//   {"go": true}                               maps and cgroup are in place
//   {"serve": true}  fds: [/dev/fuse]          mount the supervisor's served files (ahead of the job)
//   {"job": {argv, env, cpus_visible, epoch, filters, has_source, supervised}}
//       fds: [stdout_w, stderr_w, outputs_w, source_r (if has_source), input root (in place),
//             hand-off socket (if supervised)]
// init -> runner:
//   {"prepared": true, "phase_ms": {...}}      the root is ready
//   {"served": true, "phase_ms": {...}}        the served files are mounted
//   {"phase": NAME, "ms": N}                   timing of a job phase ("started": the build runs)
//   {"error": "setup"|"source"|"outputs", "kind": ..., "message": ...}
//   {"build": {"status": WAIT_STATUS}, "exec_error": {"errno": N, "message": ...}?}
//   {"outputs": "sent"|"none"}
#pragma once

#include "sandbox/job_spec.hpp"

namespace hermetic::sandbox {

struct InitContext {
    const SandboxConfig* config = nullptr;
    int control_fd = -1;
};

int sandbox_init_main(const InitContext& ctx) noexcept;

}  // namespace hermetic::sandbox
