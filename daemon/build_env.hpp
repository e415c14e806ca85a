// The build's environment, exactly as the contract fixes it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "protocol/messages.hpp"

namespace hermetic::daemon {

// PATH, HOME, TMPDIR, LANG, TZ, SOURCE_DATE_EPOCH, OUT, then the caller's --env in
// order (a later K replaces an earlier one). --env may not override a fixed
// variable: throws protocol::ProtocolError naming it.
std::vector<std::string> build_environment(const protocol::RunRequest& req, int64_t epoch);

}  // namespace hermetic::daemon
