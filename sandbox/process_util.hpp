// Process plumbing shared by the runner, init and helpers.
#pragma once

#include <sys/types.h>

#include <initializer_list>
#include <string>
#include <vector>

namespace hermetic::sandbox {

// Closes every fd except those listed (which keep their numbers).
void close_fds_except(std::vector<int> keep);

// Opens /dev/null on whichever of fds 0, 1, 2 is closed, so that no descriptor
// opened later lands there (and is then clobbered by a dup2 onto stdio).
void ensure_stdio_open();

// Makes the calling process die with its parent and unreadable through ptrace or
// /proc (its memory holds privileged state). Throws SysError.
void harden_child_process();

// Blocks until `pid` exits and returns its wait status. EINTR-safe.
[[nodiscard]] int wait_for(pid_t pid);

// The status of a process as the contract's exit code: 0..255 or 128+signal.
int exit_status_of(int wait_status);

}  // namespace hermetic::sandbox
