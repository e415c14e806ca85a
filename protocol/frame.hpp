// The wire framing shared by hermeticctl and hermeticd.
//
// A frame is a 4-byte big-endian length L, then L bytes: one kind byte and the
// payload. Control frames carry one JSON object (see messages.hpp); output frames
// carry raw build output, which need not be UTF-8 and so is never put in JSON.
// Every frame is bounded by kMaxFrame so a peer can't make the other side allocate
// more than that; file descriptors (SCM_RIGHTS) ride on a control frame's header.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/unique_fd.hpp"

namespace hermetic::protocol {

inline constexpr uint32_t kMaxFrame = 1u << 20;        // any frame, control or data
inline constexpr uint32_t kMaxOutputChunk = 64u << 10;  // data frames we produce

enum class FrameKind : uint8_t {
    Control = 'J',
    Stdout = 'O',
    Stderr = 'E',
};

struct Frame {
    FrameKind kind = FrameKind::Control;
    std::string payload;
    std::vector<UniqueFd> fds;
};

// A malformed or oversized frame: the connection is beyond repair.
class ProtocolError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Raised by read_frame when the deadline passes before a whole frame arrived.
class FrameTimeout : public ProtocolError {
public:
    FrameTimeout() : ProtocolError("timed out waiting for a frame") {}
};

void write_frame(int fd, FrameKind kind, std::string_view payload, std::span<const int> fds = {});

// Reads one frame. Returns nullopt on a clean EOF at a frame boundary. With a
// deadline, a peer that stalls mid-frame or sends nothing fails with FrameTimeout.
std::optional<Frame> read_frame(int fd, std::optional<std::chrono::steady_clock::time_point> deadline = {},
                                uint32_t max = kMaxFrame);

}  // namespace hermetic::protocol
