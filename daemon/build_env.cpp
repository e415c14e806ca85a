#include "daemon/build_env.hpp"

#include <algorithm>

namespace hermetic::daemon {

std::vector<std::string> build_environment(const protocol::RunRequest& req, int64_t epoch) {
    const std::vector<std::pair<std::string, std::string>> fixed = {
        {"PATH", "/usr/local/bin:/usr/bin:/bin"},
        {"HOME", "/build"},
        {"TMPDIR", "/tmp"},
        {"LANG", "C.UTF-8"},
        {"TZ", "UTC"},
        {"SOURCE_DATE_EPOCH", std::to_string(epoch)},
        {"OUT", "/out"},
    };
    std::vector<std::pair<std::string, std::string>> extra;
    for (const auto& [k, v] : req.env) {
        if (std::any_of(fixed.begin(), fixed.end(), [&](const auto& f) { return f.first == k; }))
            throw protocol::ProtocolError("--env may not override " + k + " (the sandbox fixes it)");
        auto it = std::find_if(extra.begin(), extra.end(), [&](const auto& e) { return e.first == k; });
        if (it != extra.end()) it->second = v;
        else extra.emplace_back(k, v);
    }
    std::vector<std::string> env;
    for (const auto& [k, v] : fixed) env.push_back(k + "=" + v);
    for (const auto& [k, v] : extra) env.push_back(k + "=" + v);
    return env;
}

}  // namespace hermetic::daemon
