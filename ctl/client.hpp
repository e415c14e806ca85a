// hermeticctl's connection to the daemon.
#pragma once

#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/unique_fd.hpp"
#include "protocol/frame.hpp"

namespace hermetic::ctl {

inline constexpr const char* kDefaultSocket = "/run/hermetic/hermeticd.sock";

// A failure the user must read: one line, exit status 125.
class CtlError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// --socket, else $HERMETIC_SOCKET, else the default.
std::string socket_path(const std::optional<std::string>& flag);

class Client {
public:
    // Connects; explains the usual failures (not running, permission denied).
    explicit Client(const std::string& path);
    void send(const nlohmann::json& msg, std::span<const int> fds = {});
    // The next frame; throws CtlError if the daemon hung up mid-conversation.
    protocol::Frame receive();
    // Parses a control frame; a daemon "error" becomes CtlError with its message.
    nlohmann::json control(const protocol::Frame& f);
    [[nodiscard]] int fd() const { return fd_.get(); }

private:
    UniqueFd fd_;
    std::string path_;
};

// Reads one control payload from hermeticd: a daemon speaking another major
// protocol version is a CtlError naming both versions; an "error" message is a
// CtlError with the daemon's reason. Otherwise the message.
nlohmann::json parse_reply(std::string_view payload);

// One request, one reply (status, list, ...). Throws CtlError.
nlohmann::json request(const std::string& socket, const nlohmann::json& msg);

}  // namespace hermetic::ctl
