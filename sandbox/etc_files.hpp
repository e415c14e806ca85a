// The generated files a build sees in /etc: who it is, where it is. No secrets,
// no host facts.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace hermetic::sandbox {

// name (relative to /etc) -> content, for passwd, group, hosts, hostname, machine-id.
std::map<std::string, std::string> generated_etc_files();

// /etc entries hidden by default: credentials and keys that must never reach a build.
std::vector<std::string> default_etc_masks();

}  // namespace hermetic::sandbox
