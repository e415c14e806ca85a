// Messages from the sandbox's processes to the job runner: one JSON object per
// line on a pipe. Each message is written with a single write() of at most
// PIPE_BUF bytes, so messages never interleave; the reader bounds line length.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace hermetic::sandbox {

inline constexpr size_t kMaxStatusLine = 4096;

// Sends one message; truncates string fields rather than exceeding PIPE_BUF.
// Never throws (used on error paths just before _exit).
void send_status(int fd, const nlohmann::json& msg) noexcept;

class StatusReader {
public:
    explicit StatusReader(int fd) : fd_(fd) {}
    // Reads what is available (blocking once) and returns false at EOF.
    bool fill();
    // The next complete message, if any. Malformed lines are reported as
    // {"error":"protocol", ...} rather than thrown.
    std::optional<nlohmann::json> next();

private:
    int fd_;
    std::string buf_;
};

}  // namespace hermetic::sandbox
