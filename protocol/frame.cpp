#include "protocol/frame.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstring>

#include "common/fd_passing.hpp"
#include "common/io.hpp"
#include "common/sys_error.hpp"

namespace hermetic::protocol {

namespace {

// write_all, but with MSG_NOSIGNAL on a socket: a peer that hung up becomes an
// exception the caller handles (as send_with_fds does), not a SIGPIPE that
// kills a process that didn't think to ignore it.
void send_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = retry_eintr([&] { return ::send(fd, data.data(), data.size(), MSG_NOSIGNAL); });
        if (n < 0) {
            if (errno == ENOTSOCK) return write_all(fd, data);  // a pipe or a file (stored output logs)
            throw_errno("send");
        }
        data.remove_prefix(static_cast<size_t>(n));
    }
}

}  // namespace

void write_frame(int fd, FrameKind kind, std::string_view payload, std::span<const int> fds) {
    if (payload.size() + 1 > kMaxFrame) throw ProtocolError("frame too large to send");
    std::string buf;
    buf.resize(5 + payload.size());
    uint32_t len = htonl(static_cast<uint32_t>(payload.size() + 1));
    std::memcpy(buf.data(), &len, 4);
    buf[4] = static_cast<char>(kind);
    std::memcpy(buf.data() + 5, payload.data(), payload.size());
    if (fds.empty()) {
        send_all(fd, buf);
    } else {
        send_with_fds(fd, buf, fds);
    }
}

namespace {

// Reads exactly len bytes, collecting any fds, honouring the deadline.
// Returns false on EOF before the first byte.
bool read_exact_fds(int fd, char* p, size_t len, std::vector<UniqueFd>& fds,
                    std::optional<std::chrono::steady_clock::time_point> deadline) {
    size_t got = 0;
    while (got < len) {
        if (deadline && !wait_readable(fd, *deadline)) throw FrameTimeout();
        size_t n;
        try {
            n = recv_with_fds(fd, p + got, len - got, fds);
        } catch (const SysError& e) {
            if (e.code() == ENOTSOCK) {  // a pipe in tests: no fds possible
                ssize_t r = retry_eintr([&] { return ::read(fd, p + got, len - got); });
                if (r < 0) throw ProtocolError(std::string("read: ") + errno_string(errno));
                n = static_cast<size_t>(r);
            } else {
                throw ProtocolError(e.what());
            }
        }
        if (n == 0) {
            if (got == 0) return false;
            throw ProtocolError("connection closed in the middle of a frame");
        }
        got += n;
    }
    return true;
}

}  // namespace

std::optional<Frame> read_frame(int fd, std::optional<std::chrono::steady_clock::time_point> deadline,
                                uint32_t max) {
    Frame frame;
    char header[5];
    if (!read_exact_fds(fd, header, 4, frame.fds, deadline)) return std::nullopt;
    uint32_t len;
    std::memcpy(&len, header, 4);
    len = ntohl(len);
    if (len == 0) throw ProtocolError("empty frame");
    if (len > max) throw ProtocolError("frame of " + std::to_string(len) + " bytes exceeds the limit of " +
                                       std::to_string(max));
    if (!read_exact_fds(fd, header + 4, 1, frame.fds, deadline))
        throw ProtocolError("connection closed in the middle of a frame");
    auto kind = static_cast<FrameKind>(header[4]);
    if (kind != FrameKind::Control && kind != FrameKind::Stdout && kind != FrameKind::Stderr)
        throw ProtocolError("unknown frame kind");
    frame.kind = kind;
    frame.payload.resize(len - 1);
    if (len > 1 && !read_exact_fds(fd, frame.payload.data(), len - 1, frame.fds, deadline))
        throw ProtocolError("connection closed in the middle of a frame");
    return frame;
}

}  // namespace hermetic::protocol
