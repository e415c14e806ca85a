// A Policy as JSON, exactly: every rule in order with its target, conditions,
// action and origin, the default and i386 actions with their origins, the name.
// The daemon sends a job's effective policy this way to the runner, whose
// determinism supervisor decides each notification with it (decide()); the
// result has the same canonical text, hence the same digest and decisions.
//
//   {"format":"hermetic-policy/1","name":"build","default":"errno 38","default_origin":"build.policy:17",
//    "i386":"errno 38","i386_origin":"determinism: ...",
//    "rules":[{"target":"@mount","action":"errno 1","origin":"baseline: ...",
//              "if":[{"arg":1,"op":"&==","value":5394,"mask":4294967295,"width32":true}]}, ...]}
//
// Actions are "allow", "kill", "virtualize", "log" or "errno N"; comparison ops
// "==", "!=", "<", "<=", ">", ">=", "&==" (masked equality); values and masks are
// JSON numbers (64-bit unsigned). "mask" and "width32" are omitted at their
// defaults, "if" when empty, "i386" when unset. Pure (no I/O).
#pragma once

#include <nlohmann/json.hpp>

#include "syscall-policy/policy.hpp"

namespace hermetic::policy {

nlohmann::json policy_to_json(const Policy& policy);

// Throws PolicyError for anything malformed (missing or mistyped fields,
// unknown actions or ops, an argument index above 5, an errno outside
// 1..4095). It does not check syscall names: PreparedPolicy and compile() do.
Policy policy_from_json(const nlohmann::json& j);

}  // namespace hermetic::policy
