// Errors from system calls carry the step that failed and errno, so every
// failure reaches the user as one line naming what went wrong.
#pragma once

#include <cerrno>
#include <stdexcept>
#include <string>
#include <string_view>

namespace hermetic {

class SysError : public std::runtime_error {
public:
    SysError(std::string_view what, int err);
    [[nodiscard]] int code() const noexcept { return err_; }

private:
    int err_;
};

[[noreturn]] void throw_errno(std::string_view what);
[[noreturn]] void throw_errno(std::string_view what, int err);

// Returns rc, or throws SysError(what, errno) when rc == -1.
inline long check(long rc, std::string_view what) {
    if (rc == -1) throw_errno(what);
    return rc;
}

// Retries a call interrupted by a signal.
template <typename F>
auto retry_eintr(F&& f) {
    for (;;) {
        auto rc = f();
        if (rc != -1 || errno != EINTR) return rc;
    }
}

std::string errno_string(int err);

}  // namespace hermetic
