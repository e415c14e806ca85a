// Loopback configuration over rtnetlink (libmnl).
#pragma once

namespace hermetic::sandbox {

// In the calling thread's network namespace: adds 127.0.0.1/8 and ::1/128 to lo
// (index 1), sets it up, waits for every acknowledgement and verifies IFF_UP with
// RTM_GETLINK. Any failure is fatal: throws SysError naming the step.
void bring_up_loopback();

}  // namespace hermetic::sandbox
