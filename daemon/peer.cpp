#include "daemon/peer.hpp"

#include <grp.h>
#include <sys/socket.h>

#include <algorithm>
#include <stdexcept>

#include "common/sys_error.hpp"

namespace hermetic::daemon {

Peer peer_of(int sock) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) throw_errno("getsockopt(SO_PEERCRED)");
    Peer p;
    p.pid = cred.pid;
    p.uid = cred.uid;
    p.gid = cred.gid;
    std::vector<gid_t> groups(64);
    for (int attempt = 0; attempt < 4; ++attempt) {
        socklen_t glen = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
        if (::getsockopt(sock, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &glen) == 0) {
            groups.resize(glen / sizeof(gid_t));
            p.groups = std::move(groups);
            return p;
        }
        if (errno != ERANGE) throw_errno("getsockopt(SO_PEERGROUPS)");
        groups.resize(glen / sizeof(gid_t) + 1);
    }
    throw SysError("getsockopt(SO_PEERGROUPS): too many groups", ERANGE);
}

bool may_submit(const Peer& peer, gid_t group) {
    if (peer.uid == 0) return true;
    if (peer.gid == group) return true;
    return std::find(peer.groups.begin(), peer.groups.end(), group) != peer.groups.end();
}

gid_t lookup_group(const std::string& name) {
    std::vector<char> buf(16384);
    group gr{};
    group* res = nullptr;
    int rc = ::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &res);
    if (rc != 0 || !res) throw std::runtime_error("group '" + name + "' does not exist (create it: groupadd --system " + name + ")");
    return gr.gr_gid;
}

}  // namespace hermetic::daemon
