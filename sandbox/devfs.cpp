#include "sandbox/devfs.hpp"

#include <unistd.h>

#include "common/sys_error.hpp"
#include "sandbox/mount_util.hpp"

namespace hermetic::sandbox {

namespace {
constexpr const char* kDevices[] = {"null", "zero", "full", "random", "urandom"};
}

std::map<std::string, UniqueFd> open_host_devices() {
    std::map<std::string, UniqueFd> out;
    for (const char* name : kDevices) out.emplace(name, open_path(std::string("/dev/") + name));
    return out;
}

void setup_dev(const std::map<std::string, UniqueFd>& devices, uint64_t shm_bytes) {
    make_dirs("dev");
    mount_tmpfs("dev", 64 << 10, 0755, MS_NOSUID | MS_NOEXEC);
    for (const auto& [name, fd] : devices) {
        std::string target = "dev/" + name;
        make_mountpoint(target, false);
        bind_fd(fd.get(), target);
    }
    make_dirs("dev/shm");
    mount_tmpfs("dev/shm", shm_bytes, 01777, MS_NOSUID | MS_NODEV);
    const std::pair<const char*, const char*> links[] = {
        {"/proc/self/fd", "dev/fd"},
        {"/proc/self/fd/0", "dev/stdin"},
        {"/proc/self/fd/1", "dev/stdout"},
        {"/proc/self/fd/2", "dev/stderr"},
    };
    for (const auto& [target, path] : links)
        if (::symlink(target, path) != 0) throw_errno(std::string("symlink ") + path);
    // The directory itself is read-only: no new nodes, links or files in /dev.
    remount_readonly("dev", MS_NOSUID | MS_NOEXEC);
}

}  // namespace hermetic::sandbox
