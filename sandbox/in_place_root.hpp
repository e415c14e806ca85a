// The in-place input root (the Buildbarn runner's mode, RunSpec::in_place):
// instead of a private copy of a source tree, the build works directly in a
// directory the daemon opened, mounted as the sandbox's /build.
//
// Privilege separation as Buildbarn intends it: the build runs as its own host
// uid, not as the worker, so the worker's files (inputs hardlinked from its
// cache) stay read-only to it; it writes where the worker made directories
// writable (bb_worker's native build directories are 0777). The job runner
// (root, host namespaces) clones the directory into a detached nosuid, nodev
// mount; sandbox init attaches it over /build in its own mount namespace, so
// nothing is ever mounted in the host's namespace and the mount dies with the
// sandbox. After the job, what the build created is handed to the input
// root's owner (the worker can then collect and remove it).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/unique_fd.hpp"
#include "protocol/messages.hpp"

namespace hermetic::sandbox {

// A detached, nosuid, nodev clone of the directory `dirfd`. Throws SysError.
[[nodiscard]] UniqueFd clone_input_root(int dirfd);

// The input root's hermetic-tree/1 digest (audit/identity.hpp) as the build
// gets it: the evidence's source digest. Symlinks are not followed; special
// files are left out. Throws SysError.
std::string input_root_digest(int dirfd);

// Inside the sandbox: attaches the detached mount `tree` at `target`.
void attach_input_root(int tree, const char* target);

// After the sandbox is gone: every entry beneath `dirfd` owned by `build_uid`
// (what the build created) is chowned to owner_uid:owner_gid; symlinks are
// never followed, nor directories the build made unreadable left unvisited
// (root reads them). Returns those entries, hashed: the job's outputs (paths
// relative to the input root). Throws SysError.
[[nodiscard]] std::vector<protocol::OutputEntry> reclaim_input_root(int dirfd, uid_t build_uid, uid_t owner_uid, gid_t owner_gid);

}  // namespace hermetic::sandbox
