#include "audit/identity.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "audit/encoding.hpp"
#include "common/sha256.hpp"
#include "common/sys_error.hpp"
#include "common/unique_fd.hpp"

namespace hermetic::audit {

std::string tree_digest(std::vector<TreeEntry> entries) {
    std::sort(entries.begin(), entries.end(), [](const TreeEntry& a, const TreeEntry& b) { return a.path < b.path; });
    Sha256 h;
    char mode[16];
    for (const auto& e : entries) {
        snprintf(mode, sizeof mode, "%o", e.mode);
        h.update(e.type);
        h.update(" ");
        h.update(mode);
        h.update(" ");
        h.update(e.sha256 ? *e.sha256 : "-");
        h.update(" ");
        h.update(std::to_string(e.path.size()));
        h.update(":");
        h.update(e.path);
        h.update("\n");
    }
    return h.hex_digest();
}

namespace {

void walk_tree(int dirfd, const std::string& prefix, const TreeWalk& w, std::vector<TreeEntry>& out, int depth) {
    const std::string& ctx = w.context;
    if (depth > w.max_depth) throw SysError(ctx + "nested too deep", ELOOP);
    UniqueFd dup(::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    DIR* d = dup ? ::fdopendir(dup.release()) : nullptr;
    if (!d) throw_errno(ctx + "read directory '" + prefix + "'");
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d))
        if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.emplace_back(e->d_name);
    ::closedir(d);
    for (const auto& n : names) {
        const std::string path = prefix.empty() ? n : prefix + "/" + n;
        struct stat st{};
        if (::fstatat(dirfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) throw_errno(ctx + "stat '" + path + "'");
        const uint32_t mode = st.st_mode & 0777;
        if (S_ISDIR(st.st_mode)) {
            if (w.exclude && w.exclude->first == st.st_dev && w.exclude->second == st.st_ino) continue;
            out.push_back({path, "dir", mode, std::nullopt});
            UniqueFd sub(::openat(dirfd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
            if (!sub) throw_errno(ctx + "open '" + path + "'");
            walk_tree(sub.get(), path, w, out, depth + 1);
        } else if (S_ISLNK(st.st_mode)) {
            char buf[4096];
            ssize_t len = ::readlinkat(dirfd, n.c_str(), buf, sizeof buf);
            if (len < 0) throw_errno(ctx + "readlink '" + path + "'");
            out.push_back({path, "symlink", mode, sha256_hex(std::string_view(buf, static_cast<size_t>(len)))});
        } else if (S_ISREG(st.st_mode)) {
            UniqueFd f(::openat(dirfd, n.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
            if (!f) throw_errno(ctx + "open '" + path + "'");
            out.push_back({path, "file", mode, sha256_hex_of_fd(f.get(), ctx + "read '" + path + "'")});
        }
    }
}

}  // namespace

std::string directory_tree_digest(int dirfd, const TreeWalk& walk) {
    std::vector<TreeEntry> entries;
    walk_tree(dirfd, "", walk, entries, 0);
    return tree_digest(std::move(entries));  // sorts by path
}

namespace {

// sha256 and contents (first `keep` bytes) of a file, or nullopt if it is absent.
std::optional<std::string> hash_file(const std::string& path, std::string* head = nullptr, size_t keep = 0) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!fd) {
        if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
        throw_errno("open " + path);
    }
    Sha256 h;
    char buf[65536];
    for (;;) {
        ssize_t n = retry_eintr([&] { return ::read(fd.get(), buf, sizeof buf); });
        if (n < 0) throw_errno("read " + path);
        if (n == 0) break;
        h.update(buf, static_cast<size_t>(n));
        if (head && head->size() < keep) head->append(buf, std::min(static_cast<size_t>(n), keep - head->size()));
    }
    return h.hex_digest();
}

std::string pretty_name(const std::string& os_release) {
    size_t pos = 0;
    while (pos < os_release.size()) {
        size_t nl = os_release.find('\n', pos);
        std::string line = os_release.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        if (line.rfind("PRETTY_NAME=", 0) == 0) {
            std::string v = line.substr(12);
            if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front())
                v = v.substr(1, v.size() - 2);
            return bounded_text(v, 128);
        }
        if (nl == std::string::npos) break;
        pos = nl + 1;
    }
    return "";
}

}  // namespace

RootfsIdentity rootfs_identity(const std::string& root, std::vector<std::string> ro_binds) {
    std::string base = root.empty() || root.back() != '/' ? root + "/" : root;
    std::string os_text;
    std::string os_name = "etc/os-release";
    auto os = hash_file(base + os_name, &os_text, 64 << 10);
    if (!os) {
        os_name = "usr/lib/os-release";
        os = hash_file(base + os_name, &os_text, 64 << 10);
    }
    auto dpkg = hash_file(base + "var/lib/dpkg/status");
    std::sort(ro_binds.begin(), ro_binds.end());
    std::string text = "hermetic-rootfs/1\n";
    text += os_name + " " + os.value_or("absent") + "\n";
    text += "var/lib/dpkg/status " + dpkg.value_or("absent") + "\n";
    for (const auto& b : ro_binds) text += "bind " + b + "\n";
    RootfsIdentity id;
    id.digest = sha256_hex(text);
    id.annotations = {{"format", "hermetic-rootfs/1"},
                      {"root", bounded_text(root, 256)},
                      {"os_release", os ? pretty_name(os_text) : ""},
                      {"os_release_sha256", os.value_or("absent")},
                      {"dpkg_status_sha256", dpkg.value_or("absent")},
                      {"ro_binds", nlohmann::json::array()}};
    for (const auto& b : ro_binds) id.annotations["ro_binds"].push_back(bounded_text(b, 256));
    return id;
}

}  // namespace hermetic::audit
