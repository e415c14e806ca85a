// Loopback configuration over rtnetlink (libmnl).
#pragma once

namespace hermetic::sandbox {

// In the calling thread's network namespace: sets lo (index 1) up, makes sure it
// has 127.0.0.1/8 and ::1/128, waits for every acknowledgement, verifies IFF_UP
// with RTM_GETLINK and that ::1 is no longer tentative. Any failure is fatal:
// throws SysError naming the step. Without IPv6 on the host, lo gets no ::1.
void bring_up_loopback();

}  // namespace hermetic::sandbox
