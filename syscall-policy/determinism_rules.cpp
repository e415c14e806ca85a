// STUB (created by the policy-language work so `include determinism` links):
// the determinism engineer owns this file and replaces the body with the
// Virtualize rules for time, randomness, directory order, stat, uname, ...
#include "syscall-policy/policy.hpp"

namespace hermetic::policy {

Policy determinism_policy() {
    Policy p;
    p.name = "determinism";
    return p;
}

}  // namespace hermetic::policy
