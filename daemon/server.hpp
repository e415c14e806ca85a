// The listening socket and the accept loop.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "common/unique_fd.hpp"
#include "daemon/session.hpp"

namespace hermetic::daemon {

// The socket systemd passed (socket activation), or a new one at config.socket_path:
// mode 0660, group `group`, parent directory created 0755. A stale socket file
// is replaced; anything else at the path is an error.
UniqueFd open_listening_socket(const DaemonConfig& config, gid_t group, bool* from_systemd);

class Server {
public:
    Server(UniqueFd listener, SessionContext ctx) : listener_(std::move(listener)), ctx_(ctx) {}
    // Accepts until stop_fd becomes readable. Each connection gets its own thread;
    // beyond max_connections new ones are told to retry and closed.
    void serve(int stop_fd);
    // Closes the listening socket (after serve() returned): no new connections.
    void stop_listening() { listener_.reset(); }
    // Waits (bounded) for connection threads to finish.
    void drain(std::chrono::milliseconds timeout);

private:
    UniqueFd listener_;
    SessionContext ctx_;
    std::mutex mu_;
    std::condition_variable cv_;
    uint32_t active_ = 0;
};

}  // namespace hermetic::daemon
