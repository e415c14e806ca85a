#include "sandbox/sysfs.hpp"

#include <fcntl.h>
#include <sys/mount.h>

#include <string>

#include "common/io.hpp"
#include "common/sys_error.hpp"
#include "common/unique_fd.hpp"

#include "sandbox/mount_util.hpp"

namespace hermetic::sandbox {

void mount_sys() {
    make_dirs("sys");
    mount_tmpfs("sys", 64 << 10, 0755, MS_NOSUID | MS_NODEV | MS_NOEXEC);
    make_dirs("sys/devices/system/cpu");
}

namespace {

constexpr unsigned long kSysFlags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
constexpr const char* kCpuFiles[] = {"online", "possible", "present"};

std::string cpu_range(uint32_t cpus_visible) {
    return cpus_visible <= 1 ? "0\n" : "0-" + std::to_string(cpus_visible - 1) + "\n";
}

}  // namespace

void finish_sys(uint32_t cpus_visible) {
    for (const char* f : kCpuFiles)
        write_new_file(std::string("/sys/devices/system/cpu/") + f, cpu_range(cpus_visible), 0444);
    remount_readonly("/sys", kSysFlags);
}

void set_sys_cpus(uint32_t cpus_visible) {
    do_mount(nullptr, "/sys", nullptr, MS_REMOUNT | MS_BIND | kSysFlags, nullptr);  // writable again
    for (const char* f : kCpuFiles) {
        std::string path = std::string("/sys/devices/system/cpu/") + f;
        UniqueFd fd(::open(path.c_str(), O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC));
        if (!fd) throw_errno("open " + path);
        write_all(fd.get(), cpu_range(cpus_visible));
    }
    remount_readonly("/sys", kSysFlags);
}

}  // namespace hermetic::sandbox
