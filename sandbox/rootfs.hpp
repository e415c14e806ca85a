// The sandbox's root file system.
//
// Built by the sandbox's init (root in its own user and mount namespaces) in a
// fresh tmpfs: read-only binds of the host's system directories (or a configured
// root), an /etc with generated passwd/group/hosts and secrets masked, the
// configured read-only /var entries, /build /out /tmp as size-limited tmpfs, a
// minimal /dev, a fresh /proc with sensitive files masked, a minimal /sys; then
// pivot_root and detach the old root so no host path stays reachable.
#pragma once

#include <cstdint>

#include "sandbox/job_spec.hpp"

namespace hermetic::sandbox {

// On return the current root and directory are the new "/", which is read-only
// (but /sys, which finish_sys() completes when the job's CPU count is known).
void assemble_root(const SandboxConfig& config);

}  // namespace hermetic::sandbox
