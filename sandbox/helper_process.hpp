// A short-lived child process that does one job (copy a tree in or out) under an
// unprivileged identity and reports a JSON result, or a one-line error, on a pipe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/unique_fd.hpp"
#include "sandbox/job_spec.hpp"

namespace hermetic::sandbox {

struct HelperResult {
    bool ok = false;
    nlohmann::json value;     // what the body returned
    std::string error_kind;   // "limit", "special", "unreadable", "io", "stream", "error", "crashed"
    std::string message;      // one line
};

class HelperProcess {
public:
    // Forks. In the child: closes every fd but `keep_fds`, dies with its parent, is
    // non-dumpable, runs `become` (identity switch) and then `body`.
    static HelperProcess spawn(const std::vector<int>& keep_fds, const std::function<void()>& become,
                               const std::function<nlohmann::json()>& body);

    HelperProcess() = default;
    HelperProcess(HelperProcess&&) noexcept;
    HelperProcess& operator=(HelperProcess&&) noexcept;
    ~HelperProcess();  // kills and reaps a helper still running

    // Reads the result and reaps the child. Past the deadline the helper is killed.
    [[nodiscard]] HelperResult wait(std::optional<std::chrono::steady_clock::time_point> deadline = {});
    void kill() noexcept;
    [[nodiscard]] pid_t pid() const { return pid_; }
    [[nodiscard]] bool running() const { return pid_ > 0; }

private:
    pid_t pid_ = -1;
    UniqueFd result_;
};

// Switches a host-side helper to the calling user's uid, gid and groups, with
// no_new_privs: what it can read is exactly what the caller can.
void become_caller(const Caller& caller);

}  // namespace hermetic::sandbox
