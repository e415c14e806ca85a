// The daemon's side of `hermeticctl policy list|show` (pure: the PolicyStore's
// loader does the I/O), and the admin-directory loader the store is built on.
//
//   {"type":"policy-list"}
//     -> {"type":"policy-list", "floor": "build",
//         "policies": [{"name","digest","rules"} | {"name","error"}, ...],
//         "builtins": ["baseline", "determinism"]}
//   {"type":"policy-show", "name": NAME}      (an admin profile or a built-in)
//     -> {"type":"policy-show", "name", "digest", "builtin": bool,
//         "lines": [{"text": "deny EPERM mount", "origin": "baseline: deny"}, ...]}
//   errors: {"type":"error","code":"bad-request"|"not-found"|"internal","message"}
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "syscall-policy/policy_store.hpp"

namespace hermetic::daemon {

// The answer to a policy request, or nullopt if `msg` is not one
// ("policy-list", "policy-show").
std::optional<nlohmann::json> handle_policy_request(policy::PolicyStore& store, const nlohmann::json& msg);

nlohmann::json policy_list_response(policy::PolicyStore& store);
nlohmann::json policy_show_response(policy::PolicyStore& store, const nlohmann::json& msg);

// NAME -> the text of DIR/NAME.policy (nullopt if absent or NAME invalid);
// throws policy::PolicyError for an unreadable, non-regular or oversized file.
policy::ProfileLoader policy_dir_loader(const std::string& dir);
// The NAMEs of DIR/*.policy (regular files, valid names); empty if DIR is missing.
std::vector<std::string> list_policy_dir(const std::string& dir);

// A store over DIR with floor `floor` (what hermeticd builds at start).
std::unique_ptr<policy::PolicyStore> make_policy_store(const std::string& dir, const std::string& floor = "build",
                                                       const policy::CompileOptions& compile = {});

}  // namespace hermetic::daemon
