// Pid 1 of a job: runs inside the new namespaces, builds the root, copies the
// source in, starts the build, reaps every process, kills what the build left
// behind, and streams /out back. Reports to the runner on the status pipe.
#pragma once

#include "sandbox/job_spec.hpp"

namespace hermetic::sandbox {

struct InitContext {
    const JobSpec* spec = nullptr;
    const SandboxConfig* config = nullptr;
    int sync_fd = -1;        // the runner writes one byte when maps and cgroups are in place
    int status_fd = -1;      // JSON lines to the runner
    int source_fd = -1;      // tree stream of --src, from the caller-side reader
    int outputs_fd = -1;     // tree stream of /out, to the caller-side writer
};

// Status messages (one JSON object each):
//   {"phase": NAME, "ms": N}                        timing of a setup phase
//   {"error": "setup", "message": ...}              a setup step failed
//   {"error": "source", "message": ...}             the copy into /build failed
//   {"build": {"status": WAIT_STATUS}, "exec_error": {"errno": N, "message": ...}?}
//   {"outputs": "sent"} | {"error": "outputs", "kind": ..., "message": ...}
int sandbox_init_main(const InitContext& ctx) noexcept;

}  // namespace hermetic::sandbox
