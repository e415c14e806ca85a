#include "sandbox/in_place_root.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "common/sys_error.hpp"

namespace hermetic::sandbox {

UniqueFd clone_input_root(int dirfd) {
    UniqueFd tree(static_cast<int>(
        ::syscall(SYS_open_tree, dirfd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH)));
    if (!tree) throw_errno("clone the input root (open_tree)");
    mount_attr attr{};
    attr.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if (::syscall(SYS_mount_setattr, tree.get(), "", AT_EMPTY_PATH, &attr, sizeof attr) != 0)
        throw_errno("make the input root nosuid, nodev (mount_setattr)");
    return tree;
}

void attach_input_root(int tree, const char* target) {
    if (::syscall(SYS_move_mount, tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) != 0)
        throw_errno(std::string("mount the input root on ") + target);
}

namespace {

void reclaim_dir(int dir, uid_t build_uid, uid_t owner_uid, gid_t owner_gid, int depth) {
    if (depth > 4096) throw SysError("reclaim the input root: too deep", ELOOP);
    UniqueFd dup(::openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dup) throw_errno("reclaim the input root: open a directory");
    DIR* d = ::fdopendir(dup.release());
    if (!d) throw_errno("reclaim the input root: fdopendir");
    std::vector<std::string> subdirs;
    while (dirent* e = ::readdir(d)) {
        if (!std::strcmp(e->d_name, ".") || !std::strcmp(e->d_name, "..")) continue;
        struct stat st{};
        if (::fstatat(dir, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (st.st_uid == build_uid &&
            ::fchownat(dir, e->d_name, owner_uid, owner_gid, AT_SYMLINK_NOFOLLOW) != 0) {
            int err = errno;
            ::closedir(d);
            throw SysError(std::string("reclaim the input root: chown ") + e->d_name, err);
        }
        if (S_ISDIR(st.st_mode)) subdirs.emplace_back(e->d_name);
    }
    ::closedir(d);
    for (const auto& s : subdirs) {
        UniqueFd sub(::openat(dir, s.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub) continue;  // replaced meanwhile by something else: not ours to follow
        reclaim_dir(sub.get(), build_uid, owner_uid, owner_gid, depth + 1);
    }
}

}  // namespace

void reclaim_input_root(int dirfd, uid_t build_uid, uid_t owner_uid, gid_t owner_gid) {
    reclaim_dir(dirfd, build_uid, owner_uid, owner_gid, 0);
}

}  // namespace hermetic::sandbox
