// hermeticctl run: submit a build, stream its output, copy its outputs back,
// exit with its status (see the contract's exit-status table).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

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

// One job: submit, follow to the end. `out_path` receives /out (none: hashed
// and discarded). `perturb` > 0 asks the daemon for different host conditions
// (--verify's second run). `status` is the exit status run would have.
struct RunOnce {
    enum class Stream { Live, Quiet };  // relay the build's output, or drop it
    nlohmann::json result;  // the daemon's JobResult (empty if cancelled)
    int status = 125;
};
RunOnce run_once(const RunOptions& opts, const std::optional<std::string>& out_path, RunOnce::Stream stream,
                 int perturb = 0);

// The --json object of one run.
nlohmann::json result_json(const nlohmann::json& result);

// run --verify (verify_command.cpp): two builds, compared.
int verify_command(const RunOptions& opts);

}  // namespace hermetic::ctl
