// Messages between the daemon, the job runner and the sandbox's init: one JSON
// object per message, length-prefixed, with file descriptors attached (SCM_RIGHTS).
// All three are our own processes, but each bounds what it reads anyway.
#pragma once

#include <chrono>
#include <optional>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/unique_fd.hpp"

namespace hermetic::sandbox {

struct ControlMessage {
    nlohmann::json body;
    std::vector<UniqueFd> fds;
};

inline constexpr size_t kMaxControlMessage = 256u << 20;  // an outcome with 100k hashed outputs fits

// A connected pair of SOCK_STREAM sockets (CLOEXEC).
struct SocketPair {
    UniqueFd a;
    UniqueFd b;
};
SocketPair make_socketpair();

void send_control(int fd, const nlohmann::json& body, std::span<const int> fds = {});
// nullopt on a clean EOF; throws SysError on a broken or oversized message.
[[nodiscard]] std::optional<ControlMessage> receive_control(int fd, size_t max = kMaxControlMessage);

}  // namespace hermetic::sandbox
