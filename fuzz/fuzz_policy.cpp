// The policy language: a user's --policy file is parsed by the root daemon.
// Every input ends in a Policy or a PolicyError; a parsed policy must also
// stack on the shipped floor and produce its canonical text.
#include <cstdint>
#include <string_view>

#include "syscall-policy/floor.hpp"
#include "syscall-policy/parser.hpp"
#include "syscall-policy/policy.hpp"

using namespace hermetic::policy;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    static const Policy floor = parse_policy("include baseline\ninclude determinism\ndefault deny ENOSYS\n", "build.policy");
    try {
        ParseOptions opts;
        opts.max_rules = 2000;  // bounded work per input
        Policy p = parse_policy(text, "fuzz.policy", opts);
        Policy eff = stack(floor, p);
        (void)canonical_text(eff);
    } catch (const PolicyError&) {
    }
    return 0;
}
