#include "common/sys_error.hpp"

#include <cstring>

namespace hermetic {

std::string errno_string(int err) {
    char buf[128];
    return std::string(strerror_r(err, buf, sizeof buf));
}

SysError::SysError(std::string_view what, int err)
    : std::runtime_error(std::string(what) + ": " + errno_string(err)), err_(err) {}

void throw_errno(std::string_view what) { throw SysError(what, errno); }
void throw_errno(std::string_view what, int err) { throw SysError(what, err); }

}  // namespace hermetic
