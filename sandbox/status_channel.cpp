#include "sandbox/status_channel.hpp"

#include <unistd.h>

#include "common/sys_error.hpp"

namespace hermetic::sandbox {

void send_status(int fd, const nlohmann::json& msg) noexcept {
    try {
        std::string line = msg.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        if (line.size() + 1 > kMaxStatusLine) {
            nlohmann::json cut = msg;
            for (auto& [k, v] : cut.items())
                if (v.is_string() && v.get_ref<const std::string&>().size() > 512)
                    v = v.get<std::string>().substr(0, 512) + "...";
            line = cut.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
            if (line.size() + 1 > kMaxStatusLine) line = R"({"error":"internal","message":"status message too large"})";
        }
        line += '\n';
        (void)retry_eintr([&] { return ::write(fd, line.data(), line.size()); });
    } catch (...) {
    }
}

bool StatusReader::fill() {
    char tmp[4096];
    ssize_t n = retry_eintr([&] { return ::read(fd_, tmp, sizeof tmp); });
    if (n < 0) {
        if (errno == EAGAIN) return true;
        throw_errno("read status pipe");
    }
    if (n == 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
}

std::optional<nlohmann::json> StatusReader::next() {
    auto nl = buf_.find('\n');
    if (nl == std::string::npos) {
        if (buf_.size() > kMaxStatusLine) {
            buf_.clear();
            return nlohmann::json{{"error", "protocol"}, {"message", "oversized status line"}};
        }
        return std::nullopt;
    }
    std::string line = buf_.substr(0, nl);
    buf_.erase(0, nl + 1);
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object())
        return nlohmann::json{{"error", "protocol"}, {"message", "malformed status line"}};
    return j;
}

}  // namespace hermetic::sandbox
