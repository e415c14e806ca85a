#include "sandbox/mount_util.hpp"

#include <fcntl.h>
#include <linux/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/io.hpp"
#include "common/sys_error.hpp"

namespace hermetic::sandbox {

namespace {

int sys_mount_setattr(int dfd, const char* path, unsigned flags, mount_attr* attr) {
    return static_cast<int>(::syscall(SYS_mount_setattr, dfd, path, flags, attr, sizeof *attr));
}

void setattr_readonly_recursive(const std::string& target) {
    mount_attr attr{};
    attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if (sys_mount_setattr(AT_FDCWD, target.c_str(), AT_RECURSIVE | AT_SYMLINK_NOFOLLOW, &attr) != 0)
        throw_errno("make " + target + " read-only");
}

}  // namespace

void do_mount(const char* source, const char* target, const char* fstype, unsigned long flags, const char* data) {
    if (::mount(source, target, fstype, flags, data) != 0) {
        std::string what = "mount ";
        what += fstype ? fstype : (source ? source : "");
        what += " on ";
        what += target;
        throw_errno(what);
    }
}

void mount_tmpfs(const std::string& target, uint64_t size_bytes, unsigned mode, unsigned long flags, unsigned uid,
                 unsigned gid, uint64_t max_inodes) {
    char data[160];
    int n = snprintf(data, sizeof data, "size=%llu,mode=%o,uid=%u,gid=%u", static_cast<unsigned long long>(size_bytes),
                     mode, uid, gid);
    if (max_inodes != 0)
        snprintf(data + n, sizeof data - static_cast<size_t>(n), ",nr_inodes=%llu",
                 static_cast<unsigned long long>(max_inodes));
    do_mount("tmpfs", target.c_str(), "tmpfs", flags, data);
}

void bind_readonly(const std::string& source, const std::string& target) {
    do_mount(source.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr);
    setattr_readonly_recursive(target);
}

void bind_readonly_fd(int source_fd, const std::string& target) { bind_readonly(fd_path(source_fd), target); }

void bind_fd(int source_fd, const std::string& target) {
    do_mount(fd_path(source_fd).c_str(), target.c_str(), nullptr, MS_BIND, nullptr);
}

void remount_readonly(const std::string& target, unsigned long extra_flags) {
    do_mount(nullptr, target.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | extra_flags, nullptr);
}

void make_dirs(const std::string& path, unsigned mode) {
    std::string cur;
    size_t pos = 0;
    while (pos <= path.size()) {
        size_t next = path.find('/', pos);
        if (next == std::string::npos) next = path.size();
        if (next > pos) {
            if (!cur.empty()) cur += '/';
            cur += path.substr(pos, next - pos);
            if (::mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) throw_errno("mkdir " + cur);
        }
        pos = next + 1;
    }
}

void write_new_file(const std::string& path, const std::string& content, unsigned mode) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
    if (!fd) throw_errno("create " + path);
    write_all(fd.get(), content);
    if (::fchmod(fd.get(), mode) != 0) throw_errno("chmod " + path);  // umask-proof
}

void make_mountpoint(const std::string& path, bool directory) {
    if (directory) {
        make_dirs(path);
        return;
    }
    auto slash = path.rfind('/');
    if (slash != std::string::npos && slash > 0) make_dirs(path.substr(0, slash));
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!fd) throw_errno("create mountpoint " + path);
}

UniqueFd open_path(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_PATH | O_CLOEXEC));
    if (!fd) throw_errno("open " + path);
    return fd;
}

std::string fd_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

}  // namespace hermetic::sandbox
