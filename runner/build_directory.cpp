#include "runner/build_directory.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "common/io.hpp"
#include "common/sys_error.hpp"

namespace hermetic::runner {

bool PathError::escapes() const { return err_ == EXDEV || err_ == ELOOP || err_ == EINVAL; }

bool is_clean_relative(const std::string& p) {
    if (p.empty()) return true;
    if (p[0] == '/' || p.find('\0') != std::string::npos) return false;
    size_t pos = 0;
    while (pos <= p.size()) {
        size_t slash = p.find('/', pos);
        if (slash == std::string::npos) slash = p.size();
        std::string part = p.substr(pos, slash - pos);
        if (part.empty() || part == "." || part == "..") return false;
        pos = slash + 1;
    }
    return true;
}

BuildDirectory::BuildDirectory(const std::string& path) : path_(path) {
    fd_.reset(::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!fd_) throw_errno("open the runner's build directory " + path);
    struct stat st{};
    if (::fstat(fd_.get(), &st) != 0) throw_errno("stat " + path);
    uid_ = st.st_uid;
    gid_ = st.st_gid;
}

UniqueFd BuildDirectory::open_beneath(int base, const std::string& rel, int flags, mode_t mode,
                                      const char* what) const {
    if (!is_clean_relative(rel))
        throw PathError(std::string(what) + " '" + rel + "' is not a clean relative path (no '/' at the start, no '.' or '..')",
                        EINVAL);
    open_how how{};
    how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
    how.mode = (flags & O_CREAT) ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    const char* p = rel.empty() ? "." : rel.c_str();
    long fd = ::syscall(SYS_openat2, base < 0 ? fd_.get() : base, p, &how, sizeof how);
    if (fd < 0) {
        int e = errno;
        std::string why = e == EXDEV ? "leaves the build directory"
                          : e == ELOOP ? "goes through a symbolic link"
                                       : std::strerror(e);
        throw PathError(std::string(what) + " '" + rel + "': " + why, e);
    }
    return UniqueFd(static_cast<int>(fd));
}

UniqueFd BuildDirectory::open_dir(const std::string& rel, int base) const {
    return open_beneath(base, rel, O_RDONLY | O_DIRECTORY, 0, "directory");
}

bool BuildDirectory::exists(const std::string& rel) const {
    try {
        (void)open_beneath(-1, rel, O_PATH, 0, "path");
        return true;
    } catch (const PathError& e) {
        if (e.err() == ENOENT) return false;
        throw;
    }
}

UniqueFd BuildDirectory::create_file(const std::string& rel) const {
    UniqueFd f = open_beneath(-1, rel, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644, "output file");
    if (::fchown(f.get(), uid_, gid_) != 0) throw_errno("chown " + rel);
    return f;
}

void BuildDirectory::remove_file(const std::string& rel) const noexcept {
    try {
        size_t slash = rel.rfind('/');
        UniqueFd dir = slash == std::string::npos ? open_dir("") : open_dir(rel.substr(0, slash));
        (void)::unlinkat(dir.get(), rel.substr(slash == std::string::npos ? 0 : slash + 1).c_str(), 0);
    } catch (...) {
    }
}

void BuildDirectory::write_new_file(int dir, const std::string& name, const std::string& content) const {
    UniqueFd f = open_beneath(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644, "file");
    if (::fchown(f.get(), uid_, gid_) != 0) throw_errno("chown " + name);
    write_all(f.get(), content);
}

}  // namespace hermetic::runner
