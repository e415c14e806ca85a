// The build directory hermeticd shares with bb_worker. Every path of a runner
// request is relative to it and is resolved beneath it by the kernel
// (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS): no "..", no absolute path,
// no symlink may lead out of it, whatever the worker (or an action that ran
// before) left there.
#pragma once

#include <sys/types.h>

#include <stdexcept>
#include <string>

#include "common/unique_fd.hpp"

namespace hermetic::runner {

// A refused or failed path: `err` is the errno (EXDEV / ELOOP / EINVAL for a
// path that would leave the directory or is malformed).
class PathError : public std::runtime_error {
public:
    PathError(const std::string& what, int err) : std::runtime_error(what), err_(err) {}
    [[nodiscard]] int err() const { return err_; }
    // The path tried to leave the build directory, or is not a clean relative path.
    [[nodiscard]] bool escapes() const;

private:
    int err_;
};

// Whether `p` is a clean relative path: not absolute, no "." or ".." or empty
// components, no NUL. The empty path is the directory itself.
[[nodiscard]] bool is_clean_relative(const std::string& p);

class BuildDirectory {
public:
    explicit BuildDirectory(const std::string& path);  // throws SysError

    // A directory beneath `base` (the build directory by default), for reading.
    UniqueFd open_dir(const std::string& rel, int base = -1) const;
    // Whether `rel` exists beneath the build directory (any type).
    bool exists(const std::string& rel) const;
    // A new file beneath the build directory, created exclusively (O_EXCL), owned
    // by the build directory's owner.
    UniqueFd create_file(const std::string& rel) const;
    // Removes a file create_file made (a call that failed after creating it).
    void remove_file(const std::string& rel) const noexcept;
    // A new file in the directory `dir`, created exclusively, with `content`.
    void write_new_file(int dir, const std::string& name, const std::string& content) const;

    [[nodiscard]] const std::string& path() const { return path_; }
    [[nodiscard]] int fd() const { return fd_.get(); }
    [[nodiscard]] uid_t owner_uid() const { return uid_; }
    [[nodiscard]] gid_t owner_gid() const { return gid_; }

private:
    UniqueFd open_beneath(int base, const std::string& rel, int flags, mode_t mode, const char* what) const;

    std::string path_;
    UniqueFd fd_;
    uid_t uid_ = 0;
    gid_t gid_ = 0;
};

}  // namespace hermetic::runner
