// Loads a compiled policy's seccomp filters into the calling thread's process,
// the last step before execve in the sandbox's init.
#pragma once

#include "common/unique_fd.hpp"
#include "syscall-policy/policy.hpp"

namespace hermetic::sandbox {

// Loads compiled.filters in order with seccomp(SECCOMP_SET_MODE_FILTER) (raw
// syscall, no libseccomp at run time). The filter marked needs_listener gets
// SECCOMP_FILTER_FLAG_NEW_LISTENER, plus SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
// where the kernel has it (5.19+; retried without it on EINVAL); its listener
// fd (O_CLOEXEC) is returned, an invalid UniqueFd if no filter needs one.
//
// Preconditions: no_new_privs is already set (prctl(PR_SET_NO_NEW_PRIVS, 1));
// checked, never set here, because it must hold for the whole exec chain and
// is the caller's decision. The caller is single-threaded (no TSYNC).
// After the first filter is loaded, the policy applies to the rest of this
// function and to the caller: it must allow seccomp (compile() guarantees that
// for the filters it emits) and whatever the caller does next (close, sendmsg
// of the listener, execve).
//
// Allocates nothing once the first filter is loaded, except on failure. Every
// failure throws SysError; a failure after the first load leaves the earlier
// filters in place (the process should exit: it is neither sandboxed as asked
// nor free).
[[nodiscard]] UniqueFd install_filters(const policy::CompiledPolicy& compiled);

}  // namespace hermetic::sandbox
