#include "sandbox/time_namespace.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <time.h>

#include <string>

#include "common/io.hpp"
#include "common/sys_error.hpp"

namespace hermetic::sandbox {

namespace {
// The kernel refuses offsets that make a clock negative; start one second in.
std::string offset_line(const char* name, clockid_t clock) {
    timespec now{};
    if (::clock_gettime(clock, &now) != 0) throw_errno("clock_gettime");
    return std::string(name) + " " + std::to_string(1 - static_cast<long long>(now.tv_sec)) + " 0\n";
}
}  // namespace

void enter_time_namespace_for_children() {
    if (::unshare(CLONE_NEWTIME) != 0) throw_errno("unshare(CLONE_NEWTIME)");
    std::string offsets = offset_line("monotonic", CLOCK_MONOTONIC) + offset_line("boottime", CLOCK_BOOTTIME);
    // A non-dumpable process's /proc files belong to the host's root, so init
    // can't open its own timens_offsets. Only init exists in the namespace now.
    if (::prctl(PR_SET_DUMPABLE, 1) != 0) throw_errno("prctl(PR_SET_DUMPABLE, 1)");
    try {
        write_file_at(AT_FDCWD, "/proc/self/timens_offsets", offsets);
    } catch (...) {
        (void)::prctl(PR_SET_DUMPABLE, 0);
        throw;
    }
    if (::prctl(PR_SET_DUMPABLE, 0) != 0) throw_errno("prctl(PR_SET_DUMPABLE, 0)");
}

}  // namespace hermetic::sandbox
