// SCM_RIGHTS: how directory fds travel from the client to the daemon and
// how listener/pipe fds travel between the daemon's own processes.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "common/unique_fd.hpp"

namespace hermetic {

inline constexpr size_t kMaxPassedFds = 8;

// Sends all of `data` on a stream or seqpacket socket, with `fds` attached to the
// first byte. Throws SysError.
void send_with_fds(int sock, std::string_view data, std::span<const int> fds);

// Receives up to `max` bytes (at least one unless EOF). Received fds are
// returned with O_CLOEXEC; more than kMaxPassedFds, or a truncated control
// message, is an error (the extra fds are closed). Returns 0 bytes on EOF.
size_t recv_with_fds(int sock, char* buf, size_t max, std::vector<UniqueFd>& fds);

}  // namespace hermetic
