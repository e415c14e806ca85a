// hermeticctl run: submit a build, stream its output, copy its outputs back,
// exit with its status (see the contract's exit-status table).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "protocol/messages.hpp"

namespace hermetic::ctl {

struct RunOptions {
    std::string socket;
    std::string src = ".";
    std::optional<std::string> out;
    protocol::RunRequest request;
    bool json = false;
    bool verify = false;
};

// Parses `run`'s arguments (everything after "run"). Throws CtlError on misuse.
RunOptions parse_run_args(const std::vector<std::string>& args, const std::string& socket);
std::string run_usage();

// Returns the process exit status.
int run_command(const RunOptions& opts);

}  // namespace hermetic::ctl
