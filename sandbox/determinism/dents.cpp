// Directory order: getdents/getdents64 return each directory's entries sorted by
// name bytes, however the file system stores them and whatever buffer size the
// caller uses. The listing is taken whole when the caller starts at position 0
// (opendir, rewinddir) and served in order from there; the directory's file
// position holds the index of the next entry, so telldir/seekdir and lseek work.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "sandbox/determinism/engine.hpp"

namespace hermetic::sandbox::determinism {

namespace {

struct RawDirent64 {
    uint64_t d_ino;
    int64_t d_off;
    uint16_t d_reclen;
    uint8_t d_type;
};

std::string parent_of(const std::string& path) {
    auto slash = path.find_last_of('/');
    if (slash == std::string::npos || slash == 0) return "/";
    return path.substr(0, slash);
}

}  // namespace

Reply Engine::dents_call(Task& t, const seccomp_notif& n) {
    Process& p = *t.proc;
    const auto* a = n.data.args;
    const bool is64 = n.data.nr == SYS_getdents64;
    const int fd = static_cast<int>(a[0]);
    const uint64_t buf = a[1];
    const size_t count = std::min<size_t>(static_cast<unsigned>(a[2]), 1 << 20);

    if (!p.pidfd) p.pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, p.tgid, 0)));
    UniqueFd dir;
    {
        WithPtrace cap(*this);
        dir.reset(static_cast<int>(::syscall(SYS_pidfd_getfd, p.pidfd.get(), fd, 0)));
    }
    if (!dir) return error(EBADF);
    struct stat st{};
    if (::fstat(dir.get(), &st) != 0) return error(errno);
    if (!S_ISDIR(st.st_mode)) return error(ENOTDIR);
    int fl = ::fcntl(dir.get(), F_GETFL);
    if (fl >= 0 && (fl & O_PATH)) return error(EBADF);

    off_t pos = ::lseek(dir.get(), 0, SEEK_CUR);
    DirSnapshot& snap = p.dirs[fd];
    bool same_dir = snap.dev == st.st_dev && snap.ino == st.st_ino && snap.entries;
    auto key = std::make_pair(static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino));
    const int64_t mt = st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec;
    const int64_t ct = st.st_ctim.tv_sec * 1'000'000'000LL + st.st_ctim.tv_nsec;
    auto cached = listings_.find(key);
    if ((pos == 0 || !same_dir) && cached != listings_.end() && cached->second.mtime == mt && cached->second.ctime == ct &&
        cached->second.size == static_cast<uint64_t>(st.st_size)) {
        // Unchanged since it was last listed: the same sorted entries.
        snap = DirSnapshot{};
        snap.dev = st.st_dev;
        snap.ino = st.st_ino;
        snap.entries = cached->second.entries;
    } else if (pos == 0 || !same_dir) {
        // A fresh listing: read it whole through a private descriptor (its own position).
        char link[32];
        std::snprintf(link, sizeof link, "self/fd/%d", dir.get());
        UniqueFd priv(::openat(hostproc_.get(), link, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!priv) return error(errno == EACCES ? EACCES : EIO);
        std::string dpath = fd_path(dir.get());
        snap = DirSnapshot{};
        snap.dev = st.st_dev;
        snap.ino = st.st_ino;
        auto entries = std::make_shared<std::vector<DirSnapshot::Entry>>();
        std::vector<char> raw(1 << 16);
        for (;;) {
            long got = ::syscall(SYS_getdents64, priv.get(), raw.data(), raw.size());
            if (got < 0) return error(errno);
            if (got == 0) break;
            for (long off = 0; off < got;) {
                RawDirent64 d;
                std::memcpy(&d, raw.data() + off, sizeof d);
                const char* name = raw.data() + off + offsetof(struct dirent64, d_name);
                std::string nm(name);
                uint64_t vino;
                if (nm == ".") {
                    vino = vino_for(FileKey{st.st_dev, st.st_ino}, dpath);
                } else if (nm == "..") {
                    vino = as_ino(fnv(parent_of(dpath), fnv("path:")));
                } else {
                    FileKey k{st.st_dev, d.d_ino};
                    auto it = vinos_.find(k);
                    std::string child = dpath == "/" ? "/" + nm : dpath + "/" + nm;
                    vino = it != vinos_.end() ? it->second : as_ino(fnv(child, fnv("path:")));
                }
                entries->push_back({std::move(nm), vino, d.d_type});
                off += d.d_reclen;
            }
        }
        std::sort(entries->begin(), entries->end(),
                  [](const DirSnapshot::Entry& x, const DirSnapshot::Entry& y) { return x.name < y.name; });
        snap.entries = entries;
        if (listings_.size() > 4096) listings_.clear();
        listings_[key] = Listing{mt, ct, static_cast<uint64_t>(st.st_size), entries};
        snap.index = 0;
    } else if (pos != snap.last_pos && pos >= 0) {
        // The caller moved (seekdir/lseek): positions are our indices.
        snap.index = std::min<size_t>(static_cast<size_t>(pos), snap.entries->size());
    }
    // A stream this process did not start (inherited across fork, or a
    // position it sought to): positions are our indices too.
    if (!same_dir && pos > 0) snap.index = std::min<size_t>(static_cast<size_t>(pos), snap.entries->size());
    const auto& entries = *snap.entries;

    std::vector<char> out;
    out.reserve(count);
    size_t i = snap.index;
    for (; i < entries.size(); ++i) {
        const auto& e = entries[i];
        size_t namelen = e.name.size();
        size_t reclen;
        if (is64) reclen = (offsetof(struct dirent64, d_name) + namelen + 1 + 7) & ~size_t{7};
        else reclen = (sizeof(unsigned long) * 2 + sizeof(unsigned short) + namelen + 2 + 7) & ~size_t{7};
        if (out.size() + reclen > count) break;
        size_t at = out.size();
        out.resize(at + reclen, 0);
        char* r = out.data() + at;
        if (is64) {
            RawDirent64 d{e.vino, static_cast<int64_t>(i + 1), static_cast<uint16_t>(reclen), e.type};
            std::memcpy(r, &d, offsetof(struct dirent64, d_name));  // not the struct's tail padding
            std::memcpy(r + offsetof(struct dirent64, d_name), e.name.data(), namelen);
        } else {
            // struct linux_dirent: ino, off, reclen, name, NUL, ..., type in the last byte.
            unsigned long ino = e.vino, off = i + 1;
            unsigned short rl = static_cast<unsigned short>(reclen);
            std::memcpy(r, &ino, sizeof ino);
            std::memcpy(r + sizeof ino, &off, sizeof off);
            std::memcpy(r + 2 * sizeof ino, &rl, sizeof rl);
            std::memcpy(r + 2 * sizeof ino + sizeof rl, e.name.data(), namelen);
            r[reclen - 1] = static_cast<char>(e.type);
        }
    }
    if (out.empty() && i < entries.size()) return error(EINVAL);  // buffer too small for one entry
    if (!out.empty() && !write_mem(p, buf, out.data(), out.size())) return error(EFAULT);
    snap.index = i;
    snap.last_pos = ::lseek(dir.get(), static_cast<off_t>(i), SEEK_SET);
    Reply r;
    r.kind = Reply::Value;
    r.val = static_cast<int64_t>(out.size());
    r.value = std::to_string(out.size()) + " bytes, entries " + std::to_string(i) + "/" + std::to_string(entries.size());
    return r;
}

}  // namespace hermetic::sandbox::determinism
