// A minimal /dev: null zero full random urandom (bound from the host), shm, and the
// fd/stdin/stdout/stderr links. Nothing else: no tty, no pts, no block devices.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "common/unique_fd.hpp"

namespace hermetic::sandbox {

// Host device nodes, opened (O_PATH) before the staging mount.
std::map<std::string, UniqueFd> open_host_devices();
// Populates "dev" relative to the current directory (the staging root).
void setup_dev(const std::map<std::string, UniqueFd>& devices, uint64_t shm_bytes);

}  // namespace hermetic::sandbox
