// Who is on the other end of a client connection, from the kernel (SO_PEERCRED,
// SO_PEERGROUPS), and whether they may use the daemon.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace hermetic::daemon {

struct Peer {
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;  // supplementary groups at connect time
};

// Throws SysError if the kernel can't tell.
Peer peer_of(int sock);

// Root, or a member (primary or supplementary) of `group`.
[[nodiscard]] bool may_submit(const Peer& peer, gid_t group);

// The gid of a group name; throws if it doesn't exist.
gid_t lookup_group(const std::string& name);

}  // namespace hermetic::daemon
