#include "daemon/server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include <spdlog/spdlog.h>

#include "common/sys_error.hpp"
#include "protocol/messages.hpp"

namespace hermetic::daemon {

UniqueFd open_listening_socket(const DaemonConfig& config, gid_t group, bool* from_systemd) {
    int n = sd_listen_fds(1);
    if (n < 0) throw SysError("sd_listen_fds", -n);
    if (n > 1) throw SysError("systemd passed more than one socket", EINVAL);
    if (n == 1) {
        int fd = SD_LISTEN_FDS_START;
        if (sd_is_socket_unix(fd, SOCK_STREAM, 1, nullptr, 0) <= 0)
            throw SysError("the socket systemd passed is not a listening Unix stream socket", EINVAL);
        if (::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) throw_errno("fcntl(FD_CLOEXEC)");
        *from_systemd = true;
        return UniqueFd(fd);
    }
    *from_systemd = false;
    const std::string& path = config.socket_path;
    sockaddr_un addr{};
    if (path.size() >= sizeof addr.sun_path) throw SysError("socket path too long: " + path, ENAMETOOLONG);
    auto slash = path.rfind('/');
    std::string dir = path.substr(0, slash == 0 ? 1 : slash);
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) throw_errno("create " + dir);
    struct stat st{};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) throw SysError(path + " exists and is not a socket", EEXIST);
        // A live daemon answers on it: don't steal its socket.
        UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
        if (::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
            throw SysError("another hermeticd is listening on " + path, EADDRINUSE);
        if (::unlink(path.c_str()) != 0) throw_errno("remove stale socket " + path);
    }
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) throw_errno("socket");
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    // Created with no access at all, then opened up to exactly root:group 0660.
    mode_t old = ::umask(0777);
    int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::umask(old);
    if (rc != 0) throw_errno("bind " + path);
    if (::chown(path.c_str(), 0, group) != 0) throw_errno("chown " + path);
    if (::chmod(path.c_str(), 0660) != 0) throw_errno("chmod " + path);
    if (::listen(fd.get(), 128) != 0) throw_errno("listen");
    return fd;
}

void Server::serve(int stop_fd) {
    for (;;) {
        pollfd p[2] = {{listener_.get(), POLLIN, 0}, {stop_fd, POLLIN, 0}};
        if (::poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            throw_errno("poll");
        }
        if (p[1].revents) return;
        if (!p[0].revents) continue;
        UniqueFd conn(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!conn) {
            if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE) {
                spdlog::error("accept: out of file descriptors");
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
                continue;
            }
            throw_errno("accept");
        }
        {
            std::lock_guard lock(mu_);
            if (active_ >= ctx_.config->max_connections) {
                try {
                    protocol::send_message(conn.get(), protocol::make_error(protocol::error_code::kRefused,
                                                                            "too many connections; retry later"));
                } catch (...) {
                }
                continue;
            }
            ++active_;
        }
        std::thread([this, c = std::move(conn)]() mutable {
            serve_session(std::move(c), ctx_);
            std::lock_guard lock(mu_);
            --active_;
            cv_.notify_all();
        }).detach();
    }
}

void Server::drain(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return active_ == 0; });
}

}  // namespace hermetic::daemon
