// The client's digest of its source tree, sent with --key so that "the same
// request" covers the source: an edited source under an old key is a conflict,
// not a stale replay.
#pragma once

#include <optional>
#include <string>

#include "protocol/messages.hpp"

namespace hermetic::ctl {

// hermetic-tree/1 (the audit's tree digest) of the directory, never following
// symlinks, leaving out `exclude` (the --out directory when it lies inside).
std::string source_tree_digest(int dirfd, const std::optional<protocol::FileId>& exclude);

}  // namespace hermetic::ctl
