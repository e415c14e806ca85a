#include "sandbox/capabilities.hpp"

#include <linux/securebits.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <memory>

#include "common/sys_error.hpp"
#include "sandbox/job_spec.hpp"

namespace hermetic::sandbox {

namespace {

struct CapFree {
    void operator()(cap_t c) const { cap_free(c); }
};
using CapPtr = std::unique_ptr<std::remove_pointer_t<cap_t>, CapFree>;

// Every capability number the kernel's 64-bit sets can hold, not just those up
// to this build's CAP_LAST_CAP: a newer kernel's own must go too. Numbers the
// running kernel doesn't have answer EINVAL (drop) or -1 (query).
constexpr cap_value_t kCapBits = 64;

void verify_all_clear() {
    CapPtr now(cap_get_proc());
    if (!now) throw_errno("capabilities: cap_get_proc");
    CapPtr empty(cap_init());
    if (!empty) throw_errno("capabilities: cap_init");
    if (cap_compare(now.get(), empty.get()) != 0) throw SysError("capabilities: a set is not empty after dropping", EPERM);
    for (cap_value_t c = 0; c < kCapBits; ++c) {
        if (cap_get_bound(c) > 0) throw SysError("capabilities: bounding set not empty", EPERM);
        if (cap_get_ambient(c) > 0) throw SysError("capabilities: ambient set not empty", EPERM);
    }
}

}  // namespace

void drop_to_build_user() {
    // The bounding set can only shrink while we still hold CAP_SETPCAP.
    for (cap_value_t c = 0; c < kCapBits; ++c) {
        if (cap_drop_bound(c) != 0 && errno != EINVAL) throw_errno("capabilities: drop bounding set");
    }
    if (cap_reset_ambient() != 0) throw_errno("capabilities: reset ambient set");
    // Locked securebits: uid 0 gets no implicit capabilities, ambient can't be
    // raised, and nothing the build execs (setuid or not) can change that.
    const unsigned bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                          SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
                          SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    if (cap_set_secbits(bits) != 0) throw_errno("capabilities: lock securebits");
    if (setresgid(kBuildGid, kBuildGid, kBuildGid) != 0) throw_errno("setresgid(build)");
    if (setresuid(kBuildUid, kBuildUid, kBuildUid) != 0) throw_errno("setresuid(build)");
    CapPtr none(cap_init());
    if (!none) throw_errno("capabilities: cap_init");
    if (cap_set_proc(none.get()) != 0) throw_errno("capabilities: clear all sets");
    verify_all_clear();
}

}  // namespace hermetic::sandbox
