// Capabilities: the build keeps none.
#pragma once

namespace hermetic::sandbox {

// In the build process, while it is still inner root with full capabilities in its
// user namespace: empties the bounding and ambient sets, locks the securebits
// (no root privilege semantics, no ambient raise, no setuid fixups), switches to
// the build uid/gid, clears every remaining set and verifies that all of them are
// zero. Uses libcap. Throws SysError naming the step.
void drop_to_build_user();

}  // namespace hermetic::sandbox
