#include "sandbox/control_channel.hpp"

#include <sys/socket.h>

#include <cstring>

#include "common/fd_passing.hpp"
#include "common/io.hpp"
#include "common/sys_error.hpp"

namespace hermetic::sandbox {

SocketPair make_socketpair() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw_errno("socketpair");
    return {UniqueFd(sv[0]), UniqueFd(sv[1])};
}

void send_control(int fd, const nlohmann::json& body, std::span<const int> fds) {
    std::string payload = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (payload.size() > kMaxControlMessage) throw SysError("control message too large", EMSGSIZE);
    uint32_t len = static_cast<uint32_t>(payload.size());
    std::string frame(sizeof len, '\0');
    std::memcpy(frame.data(), &len, sizeof len);
    frame += payload;
    send_with_fds(fd, frame, fds);
}

std::optional<ControlMessage> receive_control(int fd, size_t max) {
    ControlMessage m;
    uint32_t len = 0;
    char* p = reinterpret_cast<char*>(&len);
    size_t got = 0;
    while (got < sizeof len) {
        size_t n = recv_with_fds(fd, p + got, sizeof len - got, m.fds);
        if (n == 0) {
            if (got == 0) return std::nullopt;
            throw SysError("control channel closed mid-message", EPIPE);
        }
        got += n;
    }
    if (len > max) throw SysError("control message too large", EMSGSIZE);
    std::string payload(len, '\0');
    got = 0;
    while (got < len) {
        size_t n = recv_with_fds(fd, payload.data() + got, len - got, m.fds);
        if (n == 0) throw SysError("control channel closed mid-message", EPIPE);
        got += n;
    }
    m.body = nlohmann::json::parse(payload, nullptr, false);
    if (m.body.is_discarded() || !m.body.is_object()) throw SysError("malformed control message", EBADMSG);
    return m;
}

}  // namespace hermetic::sandbox
