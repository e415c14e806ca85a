// A time namespace for the build: CLOCK_MONOTONIC and CLOCK_BOOTTIME start near
// zero, so the host's uptime doesn't leak through them.
#pragma once

namespace hermetic::sandbox {

// In init, after /proc is mounted: unshare(CLONE_NEWTIME) (children only) and set
// the offsets before any child exists. Throws SysError.
void enter_time_namespace_for_children();

}  // namespace hermetic::sandbox
