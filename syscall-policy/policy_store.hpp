// The admin's policy profiles, as the daemon uses them, without any I/O: the
// daemon supplies a loader (NAME -> the text of NAME.policy in the admin
// directory, /etc/hermetic/policies) and a lister (the NAMEs there).
//
//  * get(NAME): an admin profile, compiled; cached, and reloaded when the text of
//    the profile or of anything it includes changes (each get() asks the loader
//    for those texts again and compares their digests, so an admin's edit takes
//    effect for the next job without a restart).
//  * floor(): get() of the floor profile (configurable, default "build"), the
//    profile jobs run under when they don't name one.
//  * user(TEXT, LABEL): a user's policy file, stacked on the floor (floor.hpp);
//    its includes resolve to the built-ins and the admin profiles.
//
// Thread-safe. Results are shared and immutable; a ResolvedPolicy keeps its
// Policy alive for PreparedPolicy/decide().
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "syscall-policy/parser.hpp"
#include "syscall-policy/policy.hpp"

namespace hermetic::policy {

struct ResolvedPolicy {
    std::string name;         // "build", or "build+LABEL" for a stacked user policy
    Policy policy;            // the effective policy (for decide() and `policy show`)
    CompiledPolicy compiled;  // the filters to install and the digest
    std::string floor;        // the floor's name when stacked on it, else ""
    const std::string& digest() const { return compiled.digest; }
};

struct PolicyStoreOptions {
    std::string floor = "build";
    CompileOptions compile;  // default: denials routed exactly when a profile needs the supervisor
    ParseOptions parse;  // its loader is replaced by the store's
};

class PolicyStore {
public:
    using Lister = std::function<std::vector<std::string>()>;

    PolicyStore(ProfileLoader loader, Lister lister, PolicyStoreOptions options = {});

    // The admin's profile names (valid names only, sorted, unique).
    std::vector<std::string> list() const;
    const std::string& floor_name() const { return options_.floor; }

    // Throws PolicyError: invalid name, no such profile, or a profile that
    // doesn't parse or compile (the message says where).
    std::shared_ptr<const ResolvedPolicy> get(const std::string& name);
    std::shared_ptr<const ResolvedPolicy> floor() { return get(options_.floor); }

    // A user's policy file (the client sends its text; `label` is how errors and
    // origins name it, e.g. "my.policy"), stacked on the floor. Throws
    // PolicyError with the precise reason (file:line:column, or the refused
    // rule and the floor rule it would lift).
    std::shared_ptr<const ResolvedPolicy> user(std::string_view text, const std::string& label);

    // A profile as `policy show` prints it: admin profiles and the built-ins.
    Policy show(const std::string& name);

    void clear();  // forget cached profiles

private:
    struct Entry {
        std::shared_ptr<const ResolvedPolicy> resolved;
        std::vector<std::pair<std::string, std::string>> texts;  // (name, sha256 of the text) it was built from
    };

    // A parse through the loader that records which texts it read.
    Policy parse_recording(const std::string& name, std::vector<std::pair<std::string, std::string>>& texts);
    bool fresh(const Entry& e) const;

    ProfileLoader loader_;
    Lister lister_;
    PolicyStoreOptions options_;
    std::mutex mu_;
    std::vector<std::pair<std::string, Entry>> cache_;
};

}  // namespace hermetic::policy
