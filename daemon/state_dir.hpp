// The daemon's state directory: journal, job logs, audit evidence, keys.
// Owned by root, mode 0700: unreachable from sandboxes (which never see it
// anyway) and from every other user.
#pragma once

#include <string>

namespace hermetic::daemon {

// Creates (if needed) and checks DIR, DIR/jobs and DIR/runners: a real directory (not a
// symlink), owned by root, mode forced to 0700. Throws SysError.
void prepare_state_dir(const std::string& dir);

}  // namespace hermetic::daemon
