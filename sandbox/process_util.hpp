// Process plumbing shared by the runner, init and helpers.
#pragma once

#include <sys/types.h>

#include <initializer_list>
#include <string>
#include <vector>

namespace hermetic::sandbox {

// Closes every fd except those listed (which keep their numbers).
void close_fds_except(std::vector<int> keep);

// Makes the calling process die with its parent and unreadable through ptrace or
// /proc (its memory holds privileged state). Throws SysError.
void harden_child_process();

// Blocks until `pid` exits and returns its wait status. EINTR-safe.
int wait_for(pid_t pid);

// The status of a process as the contract's exit code: 0..255 or 128+signal.
int exit_status_of(int wait_status);

}  // namespace hermetic::sandbox
