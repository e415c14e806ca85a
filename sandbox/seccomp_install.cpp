#include "sandbox/seccomp_install.hpp"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>

#include "common/sys_error.hpp"

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

namespace hermetic::sandbox {

namespace {

// Two filters today (table + arguments); a little headroom for the future.
constexpr size_t kMaxFilters = 4;

long seccomp_set_filter(unsigned long flags, const sock_fprog* prog) {
    return ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, prog);
}

}  // namespace

UniqueFd install_filters(const policy::CompiledPolicy& compiled) {
    const auto& filters = compiled.filters;
    if (filters.empty() || filters.size() > kMaxFilters)
        throw SysError("install_filters: " + std::to_string(filters.size()) + " filters", EINVAL);
    int nnp = ::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
    if (nnp < 0) throw_errno("prctl(PR_GET_NO_NEW_PRIVS)");
    if (nnp != 1) throw SysError("install_filters: no_new_privs is not set", EPERM);

    // Everything is prepared before the first load, so nothing below allocates
    // unless it fails.
    std::array<sock_fprog, kMaxFilters> progs{};
    size_t listeners = 0;
    for (size_t i = 0; i < filters.size(); ++i) {
        const auto& program = filters[i].program;
        if (program.empty() || program.size() > BPF_MAXINSNS)
            throw SysError("install_filters: filter " + std::to_string(i) + " has " +
                               std::to_string(program.size()) + " instructions",
                           EINVAL);
        progs[i].len = static_cast<unsigned short>(program.size());
        progs[i].filter = const_cast<sock_filter*>(program.data());  // the kernel copies, never writes
        listeners += filters[i].needs_listener ? 1 : 0;
    }
    // The kernel allows one listener per filter stack (EBUSY otherwise).
    if (listeners > 1) throw SysError("install_filters: more than one filter needs a listener", EINVAL);

    UniqueFd listener;
    for (size_t i = 0; i < filters.size(); ++i) {
        if (!filters[i].needs_listener) {
            if (seccomp_set_filter(0, &progs[i]) != 0)
                throw_errno(i == 0 ? "seccomp(SET_MODE_FILTER) of filter 0" : "seccomp(SET_MODE_FILTER) of a later filter");
            continue;
        }
        // WAIT_KILLABLE_RECV keeps non-fatal signals from restarting a call the
        // supervisor is already emulating; kernels before 5.19 reject it (EINVAL).
        long fd = seccomp_set_filter(SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, &progs[i]);
        if (fd < 0 && errno == EINVAL) fd = seccomp_set_filter(SECCOMP_FILTER_FLAG_NEW_LISTENER, &progs[i]);
        if (fd < 0) throw_errno("seccomp(SET_MODE_FILTER, NEW_LISTENER)");
        listener.reset(static_cast<int>(fd));  // the kernel creates it O_CLOEXEC
    }
    return listener;
}

}  // namespace hermetic::sandbox
