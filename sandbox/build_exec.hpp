// The last steps of the build process (pid 2 of the job), in order, each fatal:
// new session (no controlling terminal: TIOCSTI), stdio, every other fd closed,
// /build as cwd, umask 022, rlimits, ASLR off, capabilities and uid dropped,
// no_new_privs, the seccomp filters, then execve with exactly the contract's
// environment.
#pragma once

#include <string>
#include <vector>

#include "sandbox/job_spec.hpp"

namespace hermetic::sandbox {

struct BuildExec {
    const std::vector<std::string>* argv = nullptr;
    const std::vector<std::string>* env = nullptr;  // includes PATH used for the search
    std::string workdir;  // below /build ("" = /build itself); PATH's relative entries start here
    int stdout_fd = -1;
    int stderr_fd = -1;
    // CLOEXEC pipe: on failure the errno (4 bytes) then a message are written here.
    int exec_error_fd = -1;
    const SandboxConfig* config = nullptr;
    const policy::CompiledPolicy* policy = nullptr;
    // With a determinism supervisor: the socket the seccomp listener is handed
    // over on (the build blocks there until the supervisor has attached); -1 without.
    int handoff_fd = -1;
};

// Never returns: execs the build or _exits 126 (not executable), 127 (not
// found), or 125 (a setup step failed).
[[noreturn]] void exec_build(BuildExec b) noexcept;

}  // namespace hermetic::sandbox
