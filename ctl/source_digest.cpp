#include "ctl/source_digest.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "audit/identity.hpp"
#include "common/sha256.hpp"
#include "common/sys_error.hpp"
#include "ctl/client.hpp"

namespace hermetic::ctl {

namespace {

void walk(int dirfd, const std::string& prefix, const std::optional<protocol::FileId>& exclude,
          std::vector<audit::TreeEntry>& out, int depth) {
    if (depth > 256) throw CtlError("source tree nested too deep");
    UniqueFd dup(::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    DIR* d = dup ? ::fdopendir(dup.release()) : nullptr;
    if (!d) throw CtlError("cannot read source directory '" + prefix + "': " + errno_string(errno));
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
        const std::string path = prefix.empty() ? n : prefix + "/" + n;
        struct stat st{};
        if (::fstatat(dirfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
            throw CtlError("cannot stat source '" + path + "': " + errno_string(errno));
        const uint32_t mode = st.st_mode & 0777;
        if (S_ISDIR(st.st_mode)) {
            if (exclude && exclude->dev == st.st_dev && exclude->ino == st.st_ino) continue;
            out.push_back({path, "dir", mode, std::nullopt});
            UniqueFd sub(::openat(dirfd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
            if (!sub) throw CtlError("cannot open source '" + path + "': " + errno_string(errno));
            walk(sub.get(), path, exclude, out, depth + 1);
        } else if (S_ISLNK(st.st_mode)) {
            char buf[4096];
            ssize_t len = ::readlinkat(dirfd, n.c_str(), buf, sizeof buf);
            if (len < 0) throw CtlError("cannot read link '" + path + "': " + errno_string(errno));
            out.push_back({path, "symlink", mode, sha256_hex(std::string_view(buf, static_cast<size_t>(len)))});
        } else if (S_ISREG(st.st_mode)) {
            UniqueFd f(::openat(dirfd, n.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
            if (!f) throw CtlError("cannot read source '" + path + "': " + errno_string(errno));
            Sha256 h;
            char buf[65536];
            for (;;) {
                ssize_t r = ::read(f.get(), buf, sizeof buf);
                if (r < 0) throw CtlError("cannot read source '" + path + "': " + errno_string(errno));
                if (r == 0) break;
                h.update(buf, static_cast<size_t>(r));
            }
            out.push_back({path, "file", mode, h.hex_digest()});
        }
        // Special files are left out of /build too.
    }
}

}  // namespace

std::string source_tree_digest(int dirfd, const std::optional<protocol::FileId>& exclude) {
    std::vector<audit::TreeEntry> entries;
    walk(dirfd, "", exclude, entries, 0);
    return audit::tree_digest(std::move(entries));
}

}  // namespace hermetic::ctl
