// Running a program from a test and capturing what it printed.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace hermetic::test {

struct ProcessResult {
    int status = -1;      // exit status, or 128+signal
    std::string out;      // stdout
    std::string err;      // stderr
    bool timed_out = false;
    [[nodiscard]] std::string describe() const;  // for assertion messages
};

struct ProcessOptions {
    std::optional<std::string> cwd;
    std::optional<uid_t> uid;  // run as this user (with its groups), for unprivileged clients
    std::optional<gid_t> gid;
    std::vector<gid_t> groups;
    std::map<std::string, std::string> env;  // added to a minimal environment
    std::chrono::seconds timeout{120};
    std::string stdin_data;
};

ProcessResult run_process(const std::vector<std::string>& argv, const ProcessOptions& opts = {});

}  // namespace hermetic::test
