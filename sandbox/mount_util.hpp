// Checked mount primitives for building a sandbox root. Every call throws
// SysError naming the step; nothing here warns and continues.
#pragma once

#include <sys/mount.h>

#include <cstdint>
#include <string>

#include "common/unique_fd.hpp"

namespace hermetic::sandbox {

void do_mount(const char* source, const char* target, const char* fstype, unsigned long flags, const char* data);

// A tmpfs with a size quota and mode, owned by the given inner ids; with
// max_inodes != 0 also an inode quota (nr_inodes: the root takes one).
void mount_tmpfs(const std::string& target, uint64_t size_bytes, unsigned mode, unsigned long flags,
                 unsigned uid = 0, unsigned gid = 0, uint64_t max_inodes = 0);

// Binds `source` (recursively) onto `target` and makes the whole subtree
// read-only, nosuid and nodev with mount_setattr(AT_RECURSIVE): a plain
// MS_REMOUNT|MS_RDONLY would leave submounts writable.
void bind_readonly(const std::string& source, const std::string& target);
// The same, with the source given as an O_PATH fd opened earlier.
void bind_readonly_fd(int source_fd, const std::string& target);
// Read-write bind (device nodes).
void bind_fd(int source_fd, const std::string& target);

// Makes the single mount at `target` read-only (not its submounts).
void remount_readonly(const std::string& target, unsigned long extra_flags = 0);

// mkdir -p relative to the current directory; ok if it exists as a directory.
void make_dirs(const std::string& path, unsigned mode = 0755);
// Creates a new file with the given content (fails if it exists).
void write_new_file(const std::string& path, const std::string& content, unsigned mode);
// An empty file or directory to mount over, matching the source's type.
void make_mountpoint(const std::string& path, bool directory);

// O_PATH handle on a host path, taken before the staging mount can hide it.
UniqueFd open_path(const std::string& path);
std::string fd_path(int fd);  // "/proc/self/fd/N"

}  // namespace hermetic::sandbox
