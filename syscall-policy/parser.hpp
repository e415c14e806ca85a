// The policy text format (docs/policy.md): one statement per line, `#` comments.
//
//     include baseline                        # a built-in or another profile, by name
//     default deny ENOSYS                     # allow | deny ERRNO | kill
//     abi i386 kill                           # close the 32-bit entry (kill | deny ERRNO)
//     allow read write @basic-io              # targets: syscalls, @groups
//     deny EPERM mount @mount
//     kill ptrace
//     virtualize @time-read                   # handled by the determinism supervisor
//     log *                                   # `*`: every syscall allowed so far
//     deny EPERM ioctl if arg1 & 0xffffffff == TIOCSTI
//     deny EAFNOSUPPORT socket if arg0 > 63 and arg1 == SOCK_RAW
//
// Statements apply in order with the rule semantics of policy.hpp (the last
// unconditional rule of a syscall wins, conditional rules accumulate); an
// include is as if the profile's text stood there. Errors are PolicyError
// "file:line:column: expected ..., got ...".
//
// Pure: includes come through a loader (the daemon reads the admin directory,
// hermeticctl the file's own directory). The built-in profiles "baseline" and
// "determinism" (C++ functions) are resolved first; no loader can replace them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "syscall-policy/policy.hpp"

namespace hermetic::policy {

// `include NAME` -> the profile's text, or nullopt if there is no such profile.
using ProfileLoader = std::function<std::optional<std::string>(const std::string& name)>;

struct ParseOptions {
    ProfileLoader loader;  // empty: only the built-ins can be included
    size_t max_file_bytes = 256 * 1024;       // per profile text
    size_t max_total_bytes = 1024 * 1024;     // all texts of one parse, repeats included
    unsigned max_include_depth = 8;
    size_t max_rules = 100000;
};

// Parses one profile's text. `file` names it in rule origins ("file:line") and
// errors; Policy::name is its last path component without ".policy". The
// result is checked as compile() would (names, conditions, conflicting rules).
Policy parse_policy(std::string_view text, const std::string& file, const ParseOptions& options = {});

// A profile by name: a built-in, else the loader's text parsed as "NAME.policy".
// Throws PolicyError for an invalid or unknown name.
Policy load_profile(const std::string& name, const ParseOptions& options = {});

// Profile names are [A-Za-z0-9_][A-Za-z0-9_.-]{0,63}, never "." or ".." and never
// ending in ".policy"; loaders may map them to files without further checks.
[[nodiscard]] bool valid_profile_name(std::string_view name);

const std::vector<std::string>& builtin_profile_names();  // {"baseline", "determinism"}
std::optional<Policy> builtin_profile(std::string_view name);

// Errno names as the format spells them (EPERM, ...; glibc's names plus the
// aliases EWOULDBLOCK, EDEADLOCK, ENOTSUP), and the named constants a condition
// may use (AF_UNIX, CLONE_NEWUSER, TIOCSTI, ...).
std::optional<int> errno_from_name(std::string_view name);
std::string errno_name(int e);  // "EPERM", or the number
std::optional<uint64_t> constant_value(std::string_view name);

// Back to text, in the format parse_policy() reads.
std::string format_action(const Action& a);            // "deny EPERM"
std::string format_condition(const ArgCondition& c);   // "arg1 & 0xffffffff == 0x5412"
std::string format_rule(const Rule& r);                // "deny EPERM ioctl if arg1 & ..."

// A policy as statements with their origins: the default, the i386 action, then
// the rules, consecutive rules with the same action, conditions and origin
// merged into one line ("allow read write close").
struct PolicyLine {
    std::string text;
    std::string origin;
};
std::vector<PolicyLine> format_policy(const Policy& p);
// The same as one text, each line followed by "  # origin"; parses back to the
// same policy (same canonical text).
std::string format_policy_text(const Policy& p);

}  // namespace hermetic::policy
