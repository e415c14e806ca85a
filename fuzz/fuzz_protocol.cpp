// The daemon's first contact with a client: frames off a socket, then the JSON
// control message, then a run request's shape and bounds. Any input must end in
// a value or a ProtocolError/json error: no crash, no unbounded allocation.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>

#include "protocol/frame.hpp"
#include "protocol/messages.hpp"

using namespace hermetic;

namespace {

void inspect(const nlohmann::json& m) {
    const std::string type = m.value("type", "");
    if (type == "run") {
        protocol::RunRequest req = m.get<protocol::RunRequest>();
        protocol::validate(req);
        nlohmann::json back = req;  // and it must serialize again
        (void)back.dump();
    } else if (type == "result" || type == "done") {
        (void)m.get<protocol::JobResult>();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > (1u << 20)) return 0;
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 0;
    int big = 4 << 20;
    ::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    ::setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    size_t off = 0;
    while (off < size) {
        ssize_t n = ::write(sv[0], data + off, size - off);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
    }
    ::shutdown(sv[0], SHUT_WR);
    UniqueFd a(sv[0]), b(sv[1]);
    // Small frame bound: the same code paths, without megabyte allocations per input.
    for (int frames = 0; frames < 64; ++frames) {
        try {
            auto f = protocol::read_frame(b.get(), std::nullopt, 64u << 10);
            if (!f) break;
            if (f->kind != protocol::FrameKind::Control) continue;
            inspect(protocol::parse_message(f->payload));
        } catch (const protocol::ProtocolError&) {
            break;
        } catch (const nlohmann::json::exception&) {
            continue;
        } catch (const std::runtime_error&) {
            continue;
        }
    }
    return 0;
}
