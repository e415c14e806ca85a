#include "ctl/client.hpp"

#include <sys/socket.h>
#include <sys/un.h>

#include <cstdlib>
#include <cstring>

#include "common/sys_error.hpp"
#include "protocol/messages.hpp"

namespace hermetic::ctl {

std::string socket_path(const std::optional<std::string>& flag) {
    if (flag) return *flag;
    if (const char* env = std::getenv("HERMETIC_SOCKET"); env && *env) return env;
    return kDefaultSocket;
}

Client::Client(const std::string& path) : path_(path) {
    sockaddr_un addr{};
    if (path.size() >= sizeof addr.sun_path) throw CtlError("socket path too long: " + path);
    fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd_) throw CtlError("socket: " + errno_string(errno));
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        int e = errno;
        if (e == ENOENT || e == ECONNREFUSED)
            throw CtlError("hermeticd is not running (nothing listens on " + path + ")");
        if (e == EACCES)
            throw CtlError("permission denied on " + path + ": only root and members of the 'hermetic' group may use it");
        throw CtlError("cannot connect to " + path + ": " + errno_string(e));
    }
}

void Client::send(const nlohmann::json& msg, std::span<const int> fds) {
    try {
        protocol::send_message(fd_.get(), msg, fds);
    } catch (const std::exception& e) {
        // The daemon may have refused us (unauthorized, too many connections) and
        // hung up before reading: its reason is waiting in our receive buffer.
        try {
            auto f = protocol::read_frame(fd_.get(), std::chrono::steady_clock::now() + std::chrono::seconds(1));
            if (f && f->kind == protocol::FrameKind::Control) (void)control(*f);
        } catch (const CtlError&) {
            throw;
        } catch (...) {
        }
        throw CtlError(std::string("sending to hermeticd: ") + e.what());
    }
}

protocol::Frame Client::receive() {
    std::optional<protocol::Frame> f;
    try {
        f = protocol::read_frame(fd_.get());
    } catch (const std::exception& e) {
        throw CtlError(std::string("reading from hermeticd: ") + e.what());
    }
    if (!f) throw CtlError("hermeticd closed the connection unexpectedly (did it stop or crash?)");
    return std::move(*f);
}

nlohmann::json parse_reply(std::string_view payload) {
    nlohmann::json m;
    try {
        m = protocol::parse_message(payload);
    } catch (const protocol::VersionMismatch& e) {
        throw CtlError("hermeticd answered in protocol version " + std::to_string(e.peer_major) + "." +
                       std::to_string(e.peer_minor) + ", but this hermeticctl (hermetic " HERMETIC_VERSION
                       ") speaks " + protocol::version_string() +
                       ": use the hermeticctl that comes with the running hermeticd");
    } catch (const std::exception& e) {
        throw CtlError(std::string("bad reply from hermeticd: ") + e.what());
    }
    if (m["type"] == "error") throw CtlError(m.value("message", "unknown error"));
    return m;
}

nlohmann::json Client::control(const protocol::Frame& f) { return parse_reply(f.payload); }

nlohmann::json request(const std::string& socket, const nlohmann::json& msg) {
    Client c(socket);
    c.send(msg);
    for (;;) {
        auto f = c.receive();
        if (f.kind == protocol::FrameKind::Control) return c.control(f);
    }
}

}  // namespace hermetic::ctl
