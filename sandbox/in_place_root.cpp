#include "sandbox/in_place_root.hpp"

#include <fcntl.h>
#include <linux/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "audit/identity.hpp"
#include "common/io.hpp"
#include "common/sha256.hpp"
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

void reclaim_dir(int dir, const std::string& prefix, uid_t build_uid, uid_t owner_uid, gid_t owner_gid, int depth,
                 std::vector<protocol::OutputEntry>& out) {
    if (depth > 4096) throw SysError("reclaim the input root: too deep", ELOOP);
    // A short listing would leave entries the build created unreclaimed: list_directory throws instead.
    std::vector<std::string> names;
    for (auto& e : list_directory(dir, "reclaim the input root: '" + prefix + "'")) names.push_back(std::move(e.name));
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
        const std::string path = prefix.empty() ? n : prefix + "/" + n;
        // Pinned, then examined and changed through the descriptor only: the input
        // root's owner may rename entries while we (root) work, and a chown by name
        // would then change whatever it put there instead (a hard link to a file of
        // the host).
        UniqueFd ent(::openat(dir, n.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
        if (!ent) {
            if (errno == ENOENT) continue;  // removed meanwhile: nothing to hand over
            throw_errno("reclaim the input root: open '" + path + "'");
        }
        struct stat st{};
        if (::fstat(ent.get(), &st) != 0) throw_errno("reclaim the input root: stat '" + path + "'");
        if (st.st_uid == build_uid) {
            if (::fchownat(ent.get(), "", owner_uid, owner_gid, AT_EMPTY_PATH) != 0)
                throw_errno("reclaim the input root: chown '" + path + "'");
            protocol::OutputEntry e;
            e.path = path;
            e.mode = st.st_mode & 0777;
            if (S_ISDIR(st.st_mode)) {
                e.type = "dir";
            } else if (S_ISLNK(st.st_mode)) {
                char buf[4096];
                ssize_t len = ::readlinkat(ent.get(), "", buf, sizeof buf);
                if (len < 0) throw_errno("reclaim the input root: readlink '" + path + "'");
                e.type = "symlink";
                e.target = std::string(buf, static_cast<size_t>(len));
                e.sha256 = sha256_hex(*e.target);
                e.size = e.target->size();
            } else if (S_ISREG(st.st_mode)) {
                e.type = "file";
                e.size = static_cast<uint64_t>(st.st_size);
                // An O_PATH descriptor can't be read: reopened by name, and then it
                // must still be the file just chowned. O_NONBLOCK: a fifo swapped in
                // meanwhile must not block the runner in open().
                UniqueFd f(::openat(dir, n.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
                if (!f) throw_errno("input root: open '" + path + "'");
                struct stat now{};
                if (::fstat(f.get(), &now) != 0) throw_errno("input root: stat '" + path + "'");
                if (now.st_dev != st.st_dev || now.st_ino != st.st_ino)
                    throw SysError("input root: '" + path + "' was replaced while being reclaimed", EAGAIN);
                e.sha256 = sha256_hex_of_fd(f.get(), "input root: read '" + path + "'");
            }
            if (!e.type.empty()) out.push_back(std::move(e));  // fifos, sockets: chowned, not outputs
        }
        if (S_ISDIR(st.st_mode)) {
            // Through the pinned directory, never its name: a symlink swapped in
            // meanwhile can't take us out of the input root.
            UniqueFd sub(::openat(ent.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
            if (!sub) throw_errno("reclaim the input root: open '" + path + "'");
            ent.reset();  // one descriptor per level while descending
            reclaim_dir(sub.get(), path, build_uid, owner_uid, owner_gid, depth + 1, out);
        }
    }
}

}  // namespace

std::string input_root_digest(int dirfd) {
    audit::TreeWalk walk;
    walk.context = "input root: ";
    walk.max_depth = 4096;
    return audit::directory_tree_digest(dirfd, walk);
}

std::vector<protocol::OutputEntry> reclaim_input_root(int dirfd, uid_t build_uid, uid_t owner_uid, gid_t owner_gid) {
    std::vector<protocol::OutputEntry> out;
    reclaim_dir(dirfd, "", build_uid, owner_uid, owner_gid, 0, out);
    return out;
}

}  // namespace hermetic::sandbox
