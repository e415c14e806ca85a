#include "sandbox/procfs.hpp"

#include <sys/stat.h>

#include <string>

#include "common/sys_error.hpp"
#include "sandbox/mount_util.hpp"

namespace hermetic::sandbox {

namespace {

// Writable knobs of the kernel: visible, but read-only.
constexpr const char* kReadOnly[] = {"sys", "sysrq-trigger", "irq", "bus", "fs"};
// Kernel memory, keys and timing side channels: replaced by /dev/null or an
// empty directory (the docker/runc "masked paths" set, plus a few).
constexpr const char* kMasked[] = {"kcore",         "keys",       "key-users", "timer_list", "timer_stats",
                                   "sched_debug",   "latency_stats", "kallsyms", "kmsg",     "kpagecount",
                                   "kpageflags",    "kpagecgroup", "vmallocinfo", "config.gz", "acpi",
                                   "scsi",          "asound",     "driver",    "dynamic_debug", "pressure"};

// False only if the kernel has no such file; any other failure is not a reason
// to leave a knob writable or a file unmasked.
bool present(const std::string& path, struct stat& st) {
    if (::lstat(path.c_str(), &st) == 0) return true;
    if (errno == ENOENT) return false;
    throw_errno("stat " + path);
}

}  // namespace

void setup_proc(int null_fd) {
    make_dirs("proc");
    do_mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
    for (const char* name : kReadOnly) {
        std::string p = std::string("proc/") + name;
        struct stat st{};
        if (!present(p, st)) continue;
        bind_readonly(p, p);
    }
    for (const char* name : kMasked) {
        std::string p = std::string("proc/") + name;
        struct stat st{};
        if (!present(p, st)) continue;
        if (S_ISDIR(st.st_mode)) {
            mount_tmpfs(p, 4096, 0555, MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY);
        } else {
            bind_fd(null_fd, p);
            remount_readonly(p, MS_NOSUID | MS_NODEV | MS_NOEXEC);
        }
    }
}

}  // namespace hermetic::sandbox
