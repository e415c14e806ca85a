// The job runner: the hermetic-runner process, one per sandbox, spawned by the
// daemon ahead of time (root, host namespaces, single-threaded). It prepares a
// sandbox before any job exists: the cgroup, the sandbox's init cloned into new
// user/mount/pid/uts/ipc namespaces inside a fresh network namespace, its id
// maps, and (through init) the whole root file system. When a job arrives it
// applies the job's limits, starts the caller-side copy helpers, hands the job
// to init, enforces the timeout, handles cancellation (SIGTERM), collects the
// outputs and tears everything down.
//
// Control socket messages, daemon -> runner:
//   {"prepare": PrepareSpec}              fds: [network namespace]
//   {"run": RunSpec}                      fds: [stdout_w, stderr_w, src_dir, out_dir?]
// runner -> daemon:
//   {"ready": true, "phase_ms": {...}}    the sandbox waits for a job
//   {"failed": REASON}                    it could not be prepared
//   {"outcome": JobOutcome}               the job is over and everything is gone
// The daemon closing the socket before "run" discards the prepared sandbox.
#pragma once

#include <sys/types.h>

namespace hermetic::sandbox {

// Runs one sandbox's whole life on the given control socket; `parent` is the
// daemon, whose death ends us (and so the sandbox). Returns the exit code.
int runner_main(int control_fd, pid_t parent) noexcept;

}  // namespace hermetic::sandbox
