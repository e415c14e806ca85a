// hermeticctl status|wait|cancel|logs|list|gc|metrics: jobs after submission.
#pragma once

#include <string>
#include <vector>

namespace hermetic::ctl {

// `cmd` is one of the names above; returns the process exit status.
int job_command(const std::string& cmd, const std::vector<std::string>& args, const std::string& socket);
bool is_job_command(const std::string& cmd);
std::string job_commands_usage();

}  // namespace hermetic::ctl
