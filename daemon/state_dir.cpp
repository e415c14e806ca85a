#include "daemon/state_dir.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/sys_error.hpp"

namespace hermetic::daemon {

namespace {

void ensure_private_dir(const std::string& path) {
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) throw_errno("create " + path);
    struct stat st{};
    if (::lstat(path.c_str(), &st) != 0) throw_errno("stat " + path);
    if (!S_ISDIR(st.st_mode)) throw SysError(path + " is not a directory", ENOTDIR);
    if (st.st_uid != 0) throw SysError(path + " is not owned by root", EPERM);
    if ((st.st_mode & 07777) != 0700 && ::chmod(path.c_str(), 0700) != 0) throw_errno("chmod 0700 " + path);
}

}  // namespace

void prepare_state_dir(const std::string& dir) {
    // Parents (e.g. /var/lib) are created 0755 like mkdir -p would.
    for (size_t pos = 1; (pos = dir.find('/', pos)) != std::string::npos; ++pos) {
        std::string parent = dir.substr(0, pos);
        if (::mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST) throw_errno("create " + parent);
    }
    ensure_private_dir(dir);
    ensure_private_dir(dir + "/jobs");
    ensure_private_dir(dir + "/runners");  // see runner_registry.hpp
}

}  // namespace hermetic::daemon
