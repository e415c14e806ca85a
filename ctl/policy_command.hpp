// hermeticctl policy list | show NAME | check FILE
//
// `check` works offline: the file is parsed, validated and compiled by the pure
// policy library, its includes resolved from the built-ins and then the file's
// own directory (NAME -> DIR/NAME.policy). With --floor NAME it is also stacked
// on the admin profile NAME (from --policy-dir, default /etc/hermetic/policies),
// as the daemon does for `run --policy FILE`.
// `list` and `show` ask the daemon (messages in docs/policy.md):
//   {"type":"policy-list"}              -> {"type":"policy-list","floor",...,"policies":[...],"builtins":[...]}
//   {"type":"policy-show","name":NAME}  -> {"type":"policy-show","name","digest","lines":[{"text","origin"}]}
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hermetic::ctl {

std::string policy_usage();

// Everything after "policy"; returns the exit status (0 ok, 1 check failed,
// 2 misuse, 125 daemon/request failure).
int policy_command(const std::vector<std::string>& args, const std::string& socket);

struct PolicyCheckOptions {
    std::string file;
    std::optional<std::string> floor;  // stack on this admin profile too
    std::string policy_dir = "/etc/hermetic/policies";
};
// Prints "OK: N rules, digest D" (and, with a floor, the stacked result) to
// `out`, or the precise error to `err`. Returns 0 or 1.
int policy_check(const PolicyCheckOptions& opts, std::ostream& out, std::ostream& err);

// Requests and the rendering of the daemon's answers (pure, for tests).
nlohmann::json policy_list_request();
nlohmann::json policy_show_request(const std::string& name);
std::string render_policy_list(const nlohmann::json& response);
std::string render_policy_show(const nlohmann::json& response);

}  // namespace hermetic::ctl
