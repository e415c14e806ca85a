// A job's stored output: the same frames as on the wire (stream kind + bytes), so
// a later `hermeticctl logs` can replay stdout and stderr apart. Capped: beyond
// the configured size one notice is stored and the rest is streamed only.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/unique_fd.hpp"
#include "protocol/frame.hpp"

namespace hermetic::daemon {

class OutputLog {
public:
    OutputLog(const std::string& path, uint64_t cap);
    void append(protocol::FrameKind kind, std::string_view data);
    // Durable before the job is reported done.
    void sync();
    [[nodiscard]] bool truncated() const { return truncated_; }

private:
    UniqueFd fd_;
    uint64_t cap_;
    uint64_t written_ = 0;
    bool truncated_ = false;
};

// Follows a log that may still be growing: each poll() delivers the frames
// completed since the last one (a frame being written is left for later).
class OutputLogTail {
public:
    explicit OutputLogTail(std::string path) : path_(std::move(path)) {}
    // Returns false if the log doesn't exist (yet).
    bool poll(const std::function<void(protocol::FrameKind, std::string_view)>& sink);

private:
    std::string path_;
    UniqueFd fd_;
    std::string buf_;
};

// Reads a stored log back frame by frame (bounded frames; stops at a torn tail).
void replay_output_log(const std::string& path,
                       const std::function<void(protocol::FrameKind, std::string_view)>& sink);

}  // namespace hermetic::daemon
