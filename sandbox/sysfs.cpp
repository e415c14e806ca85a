#include "sandbox/sysfs.hpp"

#include <string>

#include "sandbox/mount_util.hpp"

namespace hermetic::sandbox {

void mount_sys() {
    make_dirs("sys");
    mount_tmpfs("sys", 64 << 10, 0755, MS_NOSUID | MS_NODEV | MS_NOEXEC);
    make_dirs("sys/devices/system/cpu");
}

void finish_sys(uint32_t cpus_visible) {
    const std::string range = cpus_visible <= 1 ? "0\n" : "0-" + std::to_string(cpus_visible - 1) + "\n";
    for (const char* f : {"online", "possible", "present"})
        write_new_file(std::string("/sys/devices/system/cpu/") + f, range, 0444);
    remount_readonly("/sys", MS_NOSUID | MS_NODEV | MS_NOEXEC);
}

}  // namespace hermetic::sandbox
