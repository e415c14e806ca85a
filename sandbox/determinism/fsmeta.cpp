// File metadata: stable virtual st_dev/st_ino, logical file times, and the stat
// and utime families emulated as the build.
//
// Times. A file that existed when the build started shows the epoch. Changes
// the build makes on its writable file systems (the sandbox's tmpfs mounts) are
// seen through fanotify (create, write, close-after-write, rename, delete,
// attribute change), each attributed to the thread that made it and stamped
// with that thread's logical clock. Reading a file (open, exec) merges its time
// into the reader's clock at its next virtualized call, so whatever a process
// writes after reading its inputs is newer than them (make's order), whatever
// order parallel processes ran in. Explicit times (utimensat, touch -d, tar -x)
// are kept as given.
//
// Identity. st_dev is derived from the mount point's path, st_ino from the
// file's path when first seen (files that existed at the start) or from its
// directory, name and creating process (files the build created), never from
// the order in which the supervisor happened to see them.
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/fanotify.h>
#include <linux/stat.h>
#include <poll.h>
#include <seccomp.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <unistd.h>
#include <utime.h>

#include <algorithm>
#include <cstring>

#include "common/io.hpp"
#include "common/sys_error.hpp"
#include "sandbox/determinism/engine.hpp"
#include "sandbox/determinism/fast_stat_abi.h"
#include "sandbox/determinism/served.hpp"
#include "sandbox/determinism/vdso.hpp"
#include "syscall-policy/determinism_rules.hpp"

namespace hermetic::sandbox::determinism {

namespace {

std::string unescape_mountinfo(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 3 < s.size()) {
            int v = 0;
            bool ok = true;
            for (size_t j = 1; j <= 3; ++j) {
                if (i + j >= s.size() || s[i + j] < '0' || s[i + j] > '7') ok = false;
                else v = v * 8 + (s[i + j] - '0');
            }
            if (ok) {
                out.push_back(static_cast<char>(v));
                i += 3;
                continue;
            }
        }
        out.push_back(s[i]);
    }
    return out;
}

constexpr int64_t kNs = 1'000'000'000;

statx_timestamp stx_ts(int64_t ns) {
    statx_timestamp t{};
    t.tv_sec = ns / kNs;
    t.tv_nsec = static_cast<uint32_t>(ns % kNs);
    return t;
}

}  // namespace

// ---- acting as the build

// From start() on, the supervisor's file-system identity is the build's (fsuid,
// fsgid, groups: no DAC override) and CAP_SYS_PTRACE is not in its effective set,
// so a path the build hands it resolves exactly as for the build: no /proc magic
// link the build could not follow. WithPtrace raises it for the calls that take
// another process's descriptor (pidfd_getfd).
void Engine::set_ptrace_cap(bool on) {
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    data[0].permitted = static_cast<uint32_t>(permitted_caps_[0]);
    data[1].permitted = static_cast<uint32_t>(permitted_caps_[1]);
    data[0].effective = static_cast<uint32_t>(lookup_caps_[0]);
    data[1].effective = static_cast<uint32_t>(lookup_caps_[1]);
    if (on) data[CAP_SYS_PTRACE / 32].effective |= 1u << (CAP_SYS_PTRACE % 32);
    if (::syscall(SYS_capset, &hdr, data) != 0) throw_errno("capset");
}

Engine::WithPtrace::WithPtrace(Engine& eng) : e(eng) { e.set_ptrace_cap(true); }
Engine::WithPtrace::~WithPtrace() {
    try {
        e.set_ptrace_cap(false);
    } catch (...) {
    }
}

std::string Engine::rewrite_proc_self(Task& t, const std::string& path) {
    // "self" in the build's /proc names the reader; the supervisor is outside the
    // build's pid namespace, so it spells the build's pid out.
    auto starts = [&](std::string_view prefix) {
        return path.compare(0, prefix.size(), prefix) == 0 &&
               (path.size() == prefix.size() || path[prefix.size()] == '/');
    };
    if (!starts("/proc/self") && !starts("/proc/thread-self") && !starts("/dev/fd") && path != "/dev/stdin" &&
        path != "/dev/stdout" && path != "/dev/stderr")
        return path;
    resolve_vpid(t);
    std::string self = "/proc/" + std::to_string(t.vtgid);
    if (starts("/proc/self")) return self + path.substr(10);
    if (starts("/proc/thread-self")) return self + "/task/" + std::to_string(t.vtid) + path.substr(17);
    if (starts("/dev/fd")) return self + "/fd" + path.substr(7);
    if (path == "/dev/stdin") return self + "/fd/0";
    if (path == "/dev/stdout") return self + "/fd/1";
    return self + "/fd/2";
}

namespace {

UniqueFd pidfd_getfd_of(Engine& e, Process& p, int fd, int& err) {
    err = 0;
    if (!p.pidfd) {
        p.pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, p.tgid, 0)));
        if (!p.pidfd) {
            err = ESRCH;
            return {};
        }
    }
    Engine::WithPtrace cap(e);
    UniqueFd dup(static_cast<int>(::syscall(SYS_pidfd_getfd, p.pidfd.get(), fd, 0)));
    if (!dup) err = errno == EBADF ? EBADF : errno;
    return dup;
}

}  // namespace

UniqueFd Engine::open_base(Task& t, int dirfd, const std::string& path, int& err) {
    err = 0;
    if (!path.empty() && path[0] == '/') return UniqueFd();  // AT_FDCWD: our root is the build's
    if (dirfd == AT_FDCWD) {
        char where[48];
        std::snprintf(where, sizeof where, "%d/cwd", t.tid);
        UniqueFd cwd(::openat(hostproc_.get(), where, O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!cwd) err = errno == ENOENT ? ENOENT : EACCES;
        return cwd;
    }
    return pidfd_getfd_of(*this, *t.proc, dirfd, err);
}

std::string Engine::fd_path(int fd) {
    char link[32], buf[4096];
    std::snprintf(link, sizeof link, "self/fd/%d", fd);
    ssize_t n = ::readlinkat(hostproc_.get(), link, buf, sizeof buf);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

uint32_t Engine::map_uid(uint32_t host) const {
    for (const auto& m : uid_map_)
        if (host >= m[1] && host - m[1] < m[2]) return m[0] + (host - m[1]);
    return 65534;
}
uint32_t Engine::map_gid(uint32_t host) const {
    for (const auto& m : gid_map_)
        if (host >= m[1] && host - m[1] < m[2]) return m[0] + (host - m[1]);
    return 65534;
}

bool Engine::is_marked_dev(uint64_t dev) const {
    return std::find(marked_devs_.begin(), marked_devs_.end(), dev) != marked_devs_.end();
}

uint64_t Engine::vdev(uint64_t real, const std::string& hint) {
    auto it = vdevs_.find(real);
    if (it != vdevs_.end()) return it->second;
    // Not a mount of the sandbox (pipes, sockets, anonymous inodes): by kind.
    std::string kind = hint.substr(0, hint.find(':'));
    uint64_t v = makedev(0, 0xf00 + (fnv(kind) % 0xff));
    vdevs_[real] = v;
    return v;
}

uint64_t Engine::vino_for(const FileKey& k, const std::string& path) {
    auto it = vinos_.find(k);
    if (it != vinos_.end()) return it->second;
    uint64_t v = as_ino(fnv(path, fnv("path:")));
    vinos_[k] = v;
    return v;
}

const FileTimes* Engine::times_of(const FileKey& k) const {
    auto it = times_.find(k);
    return it == times_.end() ? nullptr : &it->second;
}

FileTimes& Engine::touch_times(const FileKey& k) {
    auto [it, fresh] = times_.try_emplace(k);
    if (fresh) it->second.mtime = it->second.atime = it->second.ctime = it->second.btime = epoch_ns();
    return it->second;
}

// ---- fanotify

namespace {

constexpr uint64_t kFanMask = FAN_CREATE | FAN_DELETE | FAN_MOVED_FROM | FAN_MOVED_TO | FAN_ATTRIB | FAN_MODIFY |
                              FAN_CLOSE_WRITE | FAN_OPEN | FAN_OPEN_EXEC | FAN_DELETE_SELF | FAN_ONDIR;

std::vector<MountPoint> parse_mountinfo(const std::string& s) {
    std::vector<MountPoint> out;
    size_t pos = 0;
    while (pos < s.size()) {
        size_t end = s.find('\n', pos);
        if (end == std::string::npos) end = s.size();
        std::string line = s.substr(pos, end - pos);
        pos = end + 1;
        // id parent major:minor root point opts [optional...] - fstype source superopts
        char root[4096], point[4096], opts[1024];
        unsigned major, minor;
        int id, parent;
        if (std::sscanf(line.c_str(), "%d %d %u:%u %4095s %4095s %1023s", &id, &parent, &major, &minor, root, point, opts) != 7)
            continue;
        auto dash = line.find(" - ");
        if (dash == std::string::npos) continue;
        char fstype[256];
        if (std::sscanf(line.c_str() + dash + 3, "%255s", fstype) != 1) continue;
        out.push_back({makedev(major, minor), unescape_mountinfo(point), fstype, opts});
    }
    return out;
}

}  // namespace

// What the build's file systems are: their virtual devices, which are fixed,
// where the served files stand. Learned while the sandbox waits for a job,
// from init (the build is its child, in its mount namespace and root), and
// kept with the open mountinfo, which poll() flags once the namespace's mounts
// change: start() learns again then. Reading and parsing it was ~0.3 ms of the
// supervisor's start, which the build waits for.
void Engine::learn_mounts(pid_t pid) {
    char path[48];
    std::snprintf(path, sizeof path, "%d/mountinfo", pid);
    UniqueFd fd(::openat(hostproc_.get(), path, O_RDONLY | O_CLOEXEC));
    if (!fd) throw_errno(std::string("open ") + path);
    std::vector<MountPoint> mounts = parse_mountinfo(read_to_end(fd.get(), 1 << 20));
    mounts_watch_.reset();  // kept only once everything below is learned
    fixed_devs_.clear();
    mount_dev_path_.clear();
    vdevs_.clear();
    served_dev_ = 0;
    // Virtual devices from mount points, assigned in mount-point order so that
    // collisions resolve the same way on every run.
    std::sort(mounts.begin(), mounts.end(), [](const MountPoint& a, const MountPoint& b) { return a.point < b.point; });
    std::set<uint64_t> used, rw_devs;
    for (const MountPoint& m : mounts) {
        // Files whose virtual times can only change by utimensat: read-only
        // wherever mounted, or device nodes (/dev/null is a read-write bind).
        const bool fixed = m.opts == "ro" || m.opts.rfind("ro,", 0) == 0 || m.fstype == "devtmpfs";
        const bool fuse = m.fstype == "fuse" || m.fstype.rfind("fuse.", 0) == 0;
        if (fixed && !fuse && !rw_devs.count(m.dev)) fixed_devs_.insert(m.dev);
        if (!fixed || fuse) {
            rw_devs.insert(m.dev);
            fixed_devs_.erase(m.dev);
        }
    }
    for (const MountPoint& m : mounts) {
        if (mount_dev_path_.count(m.dev)) continue;
        mount_dev_path_[m.dev] = m.point;
        uint64_t minor = 1 + fnv(m.point) % 0xeff;
        while (used.count(minor)) minor = minor % 0xeff + 1;
        used.insert(minor);
        vdevs_[m.dev] = makedev(0, minor);
        if (m.fstype == "fuse" || m.fstype.rfind("fuse.", 0) == 0) served_dev_ = m.dev;
    }

    // Served files stand for files of the mount holding their target (/proc, /dev).
    for (ServedFile& f : served_files()) {
        std::string target = std::string("/") + f.target;
        size_t best = 0;
        f.dev_of_target = 0;
        for (const MountPoint& m : mounts) {
            if (m.fstype == "fuse" || m.point == target) continue;
            bool prefix = m.point == "/" || (target.compare(0, m.point.size(), m.point) == 0 && target[m.point.size()] == '/');
            if (prefix && m.point.size() >= best) {
                best = m.point.size();
                f.dev_of_target = m.dev;
            }
        }
    }
    mounts_ = std::move(mounts);
    mounts_watch_ = std::move(fd);
}

bool Engine::mounts_unchanged() const {
    if (!mounts_watch_) return false;
    pollfd p{mounts_watch_.get(), POLLPRI, 0};  // POLLERR|POLLPRI once they changed
    return ::poll(&p, 1, 0) == 0;
}

void Engine::setup_fanotify(pid_t pid) {
    if (!mounts_unchanged()) learn_mounts(pid);
    mounts_watch_.reset();
    const std::vector<MountPoint>& mounts = mounts_;

    // FAN_REPORT_TARGET_FID (5.17+): create/move events also name the new file.
    constexpr unsigned kTargetFid = 0x1000;
    const unsigned flags = FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME | FAN_REPORT_FID | FAN_REPORT_TID |
                           FAN_UNLIMITED_QUEUE | FAN_NONBLOCK | FAN_CLOEXEC;
    fanotify_.reset(::fanotify_init(flags | kTargetFid, O_RDONLY | O_CLOEXEC));
    if (!fanotify_ && errno == EINVAL) fanotify_.reset(::fanotify_init(flags, O_RDONLY | O_CLOEXEC));
    if (!fanotify_) {
        note(std::string("fanotify unavailable (") + errno_string(errno) +
             "): files the build changes keep the epoch as their time");
        return;
    }
    for (const MountPoint& m : mounts) {
        bool rw = m.opts == "rw" || m.opts.rfind("rw,", 0) == 0;
        if (m.fstype != "tmpfs" || !rw || is_marked_dev(m.dev)) continue;
        std::string rel = std::to_string(pid) + "/root" + m.point;
        if (::fanotify_mark(fanotify_.get(), FAN_MARK_ADD | FAN_MARK_FILESYSTEM, kFanMask, hostproc_.get(), rel.c_str()) != 0) {
            note("fanotify_mark " + m.point + ": " + errno_string(errno));
            continue;
        }
        struct statfs sf{};
        UniqueFd mfd(::openat(hostproc_.get(), rel.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!mfd || ::fstatfs(mfd.get(), &sf) != 0) continue;
        std::vector<uint8_t> fsid(sizeof sf.f_fsid);
        std::memcpy(fsid.data(), &sf.f_fsid, fsid.size());
        fsid_dev_[fsid] = m.dev;
        mount_fds_[m.dev] = std::move(mfd);
        marked_devs_.push_back(m.dev);
    }
}

namespace {

// tmpfs file handles: {generation, ino low, ino high} (shmem_encode_fh).
bool handle_ino(const file_handle* fh, uint64_t& ino) {
    if (fh->handle_bytes < 8) return false;
    uint32_t w[3] = {0, 0, 0};
    std::memcpy(w, fh->f_handle, std::min<size_t>(fh->handle_bytes, sizeof w));
    ino = w[1] | (fh->handle_bytes >= 12 ? static_cast<uint64_t>(w[2]) << 32 : 0);
    return true;
}

}  // namespace

void Engine::drain_fanotify() {
    fanotify_ready_ = false;
    if (!fanotify_) return;
    alignas(fanotify_event_metadata) char buf[64 << 10];
    for (;;) {
        ssize_t len = ::read(fanotify_.get(), buf, sizeof buf);
        if (len <= 0) return;
        // Events are packed at 4-byte steps (their info records are), but the
        // metadata holds a u64: read each header through an aligned copy.
        for (size_t off = 0; off + FAN_EVENT_METADATA_LEN <= static_cast<size_t>(len);) {
            fanotify_event_metadata md;
            std::memcpy(&md, buf + off, sizeof md);
            if (md.event_len < FAN_EVENT_METADATA_LEN || off + md.event_len > static_cast<size_t>(len)) break;
            const char* event = buf + off;
            off += md.event_len;
            if (md.vers != FANOTIFY_METADATA_VERSION) continue;
            if (md.mask & FAN_Q_OVERFLOW) {
                note("fanotify queue overflow: some file times are not tracked");
                continue;
            }
            // The thread that caused it (FAN_REPORT_TID).
            Task* p = task(md.pid);
            if (!p) continue;  // the supervisor, init's helpers, a thread already gone
            std::optional<FileKey> obj, dir;
            std::string name;
            std::vector<uint8_t> dir_handle;
            uint64_t dir_dev = 0;
            const char* info = event + md.metadata_len;
            const char* end = event + md.event_len;
            while (info + sizeof(fanotify_event_info_header) <= end) {
                auto* hdr = reinterpret_cast<const fanotify_event_info_header*>(info);
                if (hdr->len == 0 || info + hdr->len > end) break;
                if (hdr->info_type == FAN_EVENT_INFO_TYPE_FID || hdr->info_type == FAN_EVENT_INFO_TYPE_DFID_NAME ||
                    hdr->info_type == FAN_EVENT_INFO_TYPE_DFID) {
                    auto* fid = reinterpret_cast<const fanotify_event_info_fid*>(info);
                    auto* fh = reinterpret_cast<const file_handle*>(fid->handle);
                    std::vector<uint8_t> fsid(sizeof fid->fsid);
                    std::memcpy(fsid.data(), &fid->fsid, fsid.size());
                    auto d = fsid_dev_.find(fsid);
                    uint64_t ino;
                    if (d != fsid_dev_.end() && handle_ino(fh, ino)) {
                        FileKey k{d->second, ino};
                        if (hdr->info_type == FAN_EVENT_INFO_TYPE_FID) {
                            obj = k;
                        } else {
                            dir = k;
                            dir_dev = d->second;
                            const auto* hb = reinterpret_cast<const uint8_t*>(fh);
                            dir_handle.assign(hb, hb + sizeof(file_handle) + fh->handle_bytes);
                            if (hdr->info_type == FAN_EVENT_INFO_TYPE_DFID_NAME) {
                                const char* nm = reinterpret_cast<const char*>(fh->f_handle) + fh->handle_bytes;
                                name.assign(nm, strnlen(nm, static_cast<size_t>(end - nm)));
                            }
                        }
                    }
                }
                info += hdr->len;
            }
            // Stamped with the thread's clock as it is now: every event of the
            // thread before its latest clock move was taken before that move
            // (the supervisor drains before each), so this is its clock when it
            // acted, however fanotify merged the thread's events on one file.
            const int64_t vt = p->vt;
            const uint64_t mask = md.mask;
            // An event on a directory itself comes as (dir, ".") without an object.
            if (!obj && dir && (name.empty() || name == ".")) obj = dir;
            if ((mask & (FAN_CREATE | FAN_MOVED_TO)) && obj) {
                bool known = times_.count(*obj) != 0;
                FileTimes& ft = touch_times(*obj);
                if ((mask & FAN_CREATE) && !known) {
                    ft.created = true;
                    ft.btime = ft.mtime = ft.atime = ft.ctime = vt;
                    // Its identity: the directory's, its name and its creator.
                    uint64_t dv = 0;
                    if (dir) {
                        auto vit = vinos_.find(*dir);
                        if (vit != vinos_.end()) {
                            dv = vit->second;
                        } else {
                            auto mfd = mount_fds_.find(dir_dev);
                            if (mfd != mount_fds_.end() && !dir_handle.empty()) {
                                // Needs CAP_DAC_READ_SEARCH, which only fsuid 0 has.
                                set_fsuid(0);
                                UniqueFd dfd(::open_by_handle_at(mfd->second.get(),
                                                                 reinterpret_cast<file_handle*>(dir_handle.data()),
                                                                 O_PATH | O_CLOEXEC));
                                set_fsuid(build_uid_);
                                if (dfd) dv = vino_for(*dir, fd_path(dfd.get()));
                            }
                        }
                    }
                    vinos_[*obj] = as_ino(fnv(p->proc->id, fnv(name, fnv("created:", dv))));
                } else {
                    ft.ctime = std::max(ft.ctime, vt);
                }
            }
            if ((mask & (FAN_CREATE | FAN_DELETE | FAN_MOVED_FROM | FAN_MOVED_TO)) && dir) {
                FileTimes& dt = touch_times(*dir);
                dt.mtime = std::max(dt.mtime, vt);
                dt.ctime = std::max(dt.ctime, vt);
            }
            // A write moves mtime; a close after writing does too (mmap writes
            // raise no FAN_MODIFY), unless the times were set explicitly after
            // the last write (cp -p: write, futimens, close).
            const FileTimes* had = obj ? times_of(*obj) : nullptr;
            if ((mask & (FAN_MODIFY | FAN_CLOSE_WRITE)) && obj && ((mask & FAN_MODIFY) || !had || !had->explicit_mtime)) {
                FileTimes& ft = touch_times(*obj);
                ft.explicit_mtime = false;
                ft.mtime = std::max(ft.mtime, vt);
                ft.atime = std::max(ft.atime, vt);
                ft.ctime = std::max(ft.ctime, vt);
            }
            if ((mask & FAN_ATTRIB) && obj) {
                FileTimes& ft = touch_times(*obj);
                ft.ctime = std::max(ft.ctime, vt);
            }
            if ((mask & (FAN_OPEN | FAN_OPEN_EXEC)) && obj) {
                // Data flow: what the reader writes from now on is newer than this.
                if (const FileTimes* ft = times_of(*obj)) p->pending = std::max(p->pending, ft->mtime);
            }
            if ((mask & FAN_DELETE_SELF) && obj) {
                times_.erase(*obj);
                vinos_.erase(*obj);
            }
        }
    }
}

// ---- stat family

namespace {

struct StatArgs {
    int dirfd = AT_FDCWD;
    uint64_t path = 0;
    bool has_path = true;
    int flags = 0;
    uint64_t buf = 0;
    bool statx = false;
    unsigned mask = STATX_BASIC_STATS;
};

}  // namespace

Reply Engine::stat_call(Task& t, const seccomp_notif& n) {
    Process& p = *t.proc;
    const auto* a = n.data.args;
    StatArgs s;
    switch (n.data.nr) {
        case SYS_stat: s.path = a[0], s.buf = a[1]; break;
        case SYS_lstat: s.path = a[0], s.buf = a[1], s.flags = AT_SYMLINK_NOFOLLOW; break;
        case SYS_fstat: s.dirfd = static_cast<int>(a[0]), s.has_path = false, s.buf = a[1]; break;
        case SYS_newfstatat: s.dirfd = static_cast<int>(a[0]), s.path = a[1], s.buf = a[2], s.flags = static_cast<int>(a[3]); break;
        case SYS_statx:
            s.dirfd = static_cast<int>(a[0]), s.path = a[1], s.flags = static_cast<int>(a[2]);
            s.mask = static_cast<unsigned>(a[3]), s.buf = a[4], s.statx = true;
            break;
    }
    const int allowed = AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH | (s.statx ? AT_STATX_SYNC_TYPE : 0);
    if (s.flags & ~allowed) return error(EINVAL);
    if (s.statx && (s.mask & STATX__RESERVED)) return error(EINVAL);

    std::string path;
    if (s.has_path) {
        if (s.path == 0 && (s.flags & AT_EMPTY_PATH)) {
            s.has_path = false;  // Linux 6.11+: NULL with AT_EMPTY_PATH is fstat
        } else {
            int err;
            path = read_string(p, s.path, 4096, err);
            if (err) return error(err);
            if (path.empty()) {
                if (!(s.flags & AT_EMPTY_PATH)) return error(ENOENT);
                s.has_path = false;
            }
        }
    }
    // What we read must still be the caller's (it could have died and its pid been reused).
    if (seccomp_notify_id_valid(listener_.get(), n.id) != 0) {
        Reply r;
        r.kind = Reply::Deferred;
        return r;
    }

    struct statx stx{};
    std::string canonical;
    int err = 0;
    if (!s.has_path) {
        // The caller's descriptor, through its /proc magic link: one lookup, no copy.
        char link[48];
        if (s.dirfd == AT_FDCWD) std::snprintf(link, sizeof link, "%d/cwd", t.tid);
        else if (s.dirfd < 0) return error(EBADF);
        else std::snprintf(link, sizeof link, "%d/fd/%d", t.tid, s.dirfd);
        if (::statx(hostproc_.get(), link, AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS, &stx) != 0) {
            int e = errno == ENOENT ? EBADF : errno;
            char buf[4096];
            ssize_t len = ::readlinkat(hostproc_.get(), link, buf, sizeof buf);
            if (len > 0) canonical.assign(buf, static_cast<size_t>(len));
            if (!(e == EACCES && served_stat(hostproc_.get(), link, 0, canonical, stx))) return error(e);
        }
        FileKey k{makedev(stx.stx_dev_major, stx.stx_dev_minor), stx.stx_ino};
        if (canonical.empty() && !vinos_.count(k)) {
            char buf[4096];
            ssize_t len = ::readlinkat(hostproc_.get(), link, buf, sizeof buf);
            if (len > 0) canonical.assign(buf, static_cast<size_t>(len));
        }
    } else {
        path = rewrite_proc_self(t, path);
        UniqueFd base = open_base(t, s.dirfd, path, err);
        if (err) return error(err);
        int dirfd = base ? base.get() : AT_FDCWD;
        int follow = s.flags & (AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT);
        {  // (resolved as the build: see set_ptrace_cap)
            // Basic fields only, never a forced sync: for the served files the
            // kernel then answers from its cache instead of asking us (FUSE).
            if (::statx(dirfd, path.c_str(), follow | AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS, &stx) != 0) {
                int e = errno;
                if (e != EACCES) return error(e);
                // The served files refuse a stat from outside the sandbox's user
                // namespace (FUSE): recognize them by where they are bound.
                UniqueFd o(::openat(dirfd, path.c_str(), O_PATH | O_CLOEXEC | ((s.flags & AT_SYMLINK_NOFOLLOW) ? O_NOFOLLOW : 0)));
                if (!o) return error(e);
                canonical = fd_path(o.get());
                if (!served_stat(o.get(), "", AT_EMPTY_PATH, canonical, stx)) return error(e);
            }
        }
        FileKey k{makedev(stx.stx_dev_major, stx.stx_dev_minor), stx.stx_ino};
        if (canonical.empty() && !vinos_.count(k)) {
            // First sight: its identity comes from its canonical path.
            UniqueFd o(::openat(dirfd, path.c_str(),
                                O_PATH | O_CLOEXEC | ((s.flags & AT_SYMLINK_NOFOLLOW) ? O_NOFOLLOW : 0)));
            if (o) canonical = fd_path(o.get());
        }
    }
    return finish_stat(t, n, s.buf, s.statx, s.mask, stx, canonical);
}

Reply Engine::finish_stat(Task& t, const seccomp_notif& n, uint64_t buf, bool want_statx, unsigned mask,
                          const struct statx& stx, const std::string& canonical) {
    (void)n;
    (void)mask;
    Process& p = *t.proc;
    FileKey k{makedev(stx.stx_dev_major, stx.stx_dev_minor), stx.stx_ino};
    const bool marked = is_marked_dev(k.dev);
    uint32_t mode = stx.stx_mode;
    uint64_t rdev = makedev(stx.stx_rdev_major, stx.stx_rdev_minor);
    uint64_t size = stx.stx_size;
    uint64_t nlink = stx.stx_nlink;
    uint64_t dev;
    uint64_t ino;
    const ServedFile* served = served_dev_ && k.dev == served_dev_ ? served_file_by_ino(stx.stx_ino) : nullptr;
    if (served) {
        // A served file shows what it stands for (a character device, a /proc file).
        mode = served->mode;
        rdev = served->rdev;
        size = 0;
        nlink = 1;
        dev = vdev(served->dev_of_target, "");
        ino = as_ino(fnv(served->target, fnv("path:")));
    } else {
        dev = vdev(k.dev, canonical);
        if (!canonical.empty() && canonical[0] != '/') {
            // Pipes, sockets, anonymous inodes: numbered in the order this process met them.
            auto [it, fresh] = p.anon_inodes.try_emplace(k.ino, p.anon_inodes.size() + 1);
            ino = it->second;
        } else {
            ino = vino_for(k, canonical.empty() ? std::to_string(k.dev) + ":" + std::to_string(k.ino) : canonical);
        }
    }
    if (S_ISDIR(mode) && !marked) {
        // Host directories: their link counts and sizes describe the host.
        nlink = 1;
        size = 4096;
    }
    int64_t epoch = epoch_ns();
    FileTimes ft{epoch, epoch, epoch, epoch, false};
    const FileTimes* known = times_of(k);
    if (known) ft = *known;
    // A file on a read-only mount or a device node shows this until a
    // utimensat (which takes it back): the process can answer its next stat
    // itself (fast_stat.hpp mirrors what is computed here).
    if (fast_stat_ && !served && !known && !marked && fixed_devs_.count(k.dev) &&
        (canonical.empty() ? vinos_.count(k) != 0 : canonical[0] == '/'))
        fast_stat_->publish(k.dev, k.ino, dev, ino);
    // A stat of a file the build can change is an event of the caller's clock
    // (it takes in what the caller read: stdio's fstat between reading an
    // input and writing an output puts the output after it). Those always
    // trap; stats answered in the process, or that could be, never move it.
    if (marked) tick(t);
    uint64_t blocks = S_ISREG(mode) || S_ISDIR(mode) ? (size + 4095) / 4096 * 8 : 0;
    uint32_t uid = map_uid(stx.stx_uid), gid = map_gid(stx.stx_gid);

    if (want_statx) {
        struct statx out{};
        out.stx_mask = STATX_BASIC_STATS | STATX_BTIME | STATX_MNT_ID;
        out.stx_blksize = 4096;
        out.stx_attributes = stx.stx_attributes;
        out.stx_attributes_mask = stx.stx_attributes_mask;
        out.stx_nlink = static_cast<uint32_t>(nlink);
        out.stx_uid = uid;
        out.stx_gid = gid;
        out.stx_mode = static_cast<uint16_t>(mode);
        out.stx_ino = ino;
        out.stx_size = size;
        out.stx_blocks = blocks;
        out.stx_atime = stx_ts(ft.atime);
        out.stx_btime = stx_ts(ft.btime);
        out.stx_ctime = stx_ts(ft.ctime);
        out.stx_mtime = stx_ts(ft.mtime);
        out.stx_rdev_major = major(rdev);
        out.stx_rdev_minor = minor(rdev);
        out.stx_dev_major = major(dev);
        out.stx_dev_minor = minor(dev);
        out.stx_mnt_id = minor(dev);
        if (!write_mem(p, buf, &out, sizeof out)) return error(EFAULT);
    } else {
        struct stat out{};
        out.st_dev = dev;
        out.st_ino = ino;
        out.st_nlink = nlink;
        out.st_mode = mode;
        out.st_uid = uid;
        out.st_gid = gid;
        out.st_rdev = rdev;
        out.st_size = static_cast<off_t>(size);
        out.st_blksize = 4096;
        out.st_blocks = static_cast<blkcnt_t>(blocks);
        out.st_atim = {static_cast<time_t>(ft.atime / kNs), static_cast<long>(ft.atime % kNs)};
        out.st_mtim = {static_cast<time_t>(ft.mtime / kNs), static_cast<long>(ft.mtime % kNs)};
        out.st_ctim = {static_cast<time_t>(ft.ctime / kNs), static_cast<long>(ft.ctime % kNs)};
        if (!write_mem(p, buf, &out, sizeof out)) return error(EFAULT);
    }
    Reply r = value(0);
    char text[96];
    std::snprintf(text, sizeof text, "ino %llu mtime %lld.%09lld", (unsigned long long)ino, (long long)(ft.mtime / kNs),
                  (long long)(ft.mtime % kNs));
    r.value = text;
    if (cfg_.trace) {
        std::snprintf(text, sizeof text, "dev %u:%u ino %llu mtime %lld", stx.stx_dev_major, stx.stx_dev_minor,
                      (unsigned long long)stx.stx_ino, (long long)stx.stx_mtime.tv_sec);
        r.real = text;
    }
    return r;
}

bool Engine::served_stat(int dirfd, const char* path, int flags, const std::string& canonical, struct statx& stx) {
    struct statx sx{};
    // A mask of nothing is what FUSE answers anyone: the device alone.
    if (!served_dev_ || ::statx(dirfd, path, flags | AT_STATX_SYNC_AS_STAT, 0, &sx) != 0 ||
        makedev(sx.stx_dev_major, sx.stx_dev_minor) != served_dev_)
        return false;
    auto& files = served_files();
    for (size_t i = 0; i < files.size(); ++i) {
        if (canonical != std::string("/") + files[i].target) continue;
        stx = sx;
        stx.stx_ino = i + 2;
        stx.stx_mode = static_cast<uint16_t>(files[i].mode);
        stx.stx_nlink = 1;
        return true;
    }
    return false;
}

// ---- the in-process stat path (fast_stat.hpp)

// The exec stub asks for the table: the memfd goes into the process as the
// call's result (the kernel answers the notification).
Reply Engine::fast_stat_hello(Task& t, const seccomp_notif& n) {
    Reply r = error(ENOSYS);
    r.quiet = true;
    t.proc->fast_stat = 0;
    if (!fast_stat_) return r;
    seccomp_notif_addfd add{};
    add.id = n.id;
    add.flags = SECCOMP_ADDFD_FLAG_SEND;
    add.srcfd = static_cast<uint32_t>(fast_stat_->fd());
    add.newfd_flags = O_CLOEXEC;
    prepare_loader_sites(t);  // before the loader runs (and before the answer lets it)
    if (::ioctl(listener_.get(), SECCOMP_IOCTL_NOTIF_ADDFD, &add) < 0) return r;  // it runs without
    r.kind = Reply::Deferred;
    return r;
}

static_assert(HERMETIC_SCRATCH_BASE == policy::kScratchBase && kRdtscCountOffset >= sizeof(ClockPage) &&
                  HERMETIC_FAST_COUNT_TABLE >= HERMETIC_SCRATCH_BASE + kRdtscCountOffset + 8 &&
                  HERMETIC_FAST_COUNT_MISSING == HERMETIC_FAST_COUNT_TABLE + 8 &&
                  policy::kScratchBase + kRseqCountOffset == HERMETIC_FAST_COUNT_MISSING + 8 &&
                  kFastMappedOffset == kRseqCountOffset + 8 && kFastMappedOffset + 8 <= kClockPageBytes,
              "the stat counters live in the scratch page, past the clock page's fields");

// The stats the process answered itself since the last fold: one record for
// the batch, like the clock reads served from the page. Counters only grow
// (other threads may be counting), so what was recorded is remembered.
void Engine::fold_stat_counts(Task& t) {
    Process& p = *t.proc;
    // A vfork child counts into its parent's page: the parent records those.
    if (!p.counts_stats() || !p.scratch || p.shared_mm) return;
    uint64_t c[2];
    if (!read_mem(p, HERMETIC_FAST_COUNT_TABLE, c, sizeof c)) return;
    const uint64_t table = grown_since(c[0], p.stat_counts_seen[0]), missing = grown_since(c[1], p.stat_counts_seen[1]);
    if (table == 0 && missing == 0) return;
    summary_.by_syscall["stat family (in-process)"] += table + missing;
    record_batch(t, "stat_family", "in-process", "fs-metadata",
                 std::to_string(table) + " answered from the table, " + std::to_string(missing) + " missing",
                 table + missing);
}

bool Engine::fast_stat_ready(Process& p) {
    // Only while the process is single-threaded: the 7 bytes are written while
    // the only thread that could run them waits for this answer.
    if (!fast_stat_ || p.fast_stat < 0 || p.multithreaded || p.shared_mm || p.tasks != 1) return false;
    if (p.fast_stat == 0) {
        // The code counts into the scratch page: it must be there too.
        uint64_t magic = 0, counts[2];
        p.fast_stat = p.scratch && read_mem(p, HERMETIC_FAST_COUNT_TABLE, counts, sizeof counts) &&
                              read_mem(p, HERMETIC_FAST_BASE, &magic, sizeof magic) && magic == HERMETIC_FAST_MAGIC
                          ? 1
                          : -1;
        if (p.fast_stat < 0) return false;
        // The sites this program trapped at in earlier processes: patched as
        // soon as their library is mapped (at this or a later trap).
        auto known = known_sites_.find(exe_of(p));
        if (known != known_sites_.end()) p.sites_todo.assign(known->second.begin(), known->second.end());
    }
    return true;
}

// Sends a glibc stat wrapper that just trapped into the process's table from
// now on, and remembers the site for the program's next processes.
void Engine::patch_stat_site(Task& t, const seccomp_notif& n) {
    Process& p = *t.proc;
    const uint64_t ip = n.data.instruction_pointer;
    learn_loader_stat_site(p, ip);
    if (!fast_stat_ready(p)) return;
    // The table's own re-issued calls come from its code: nothing to patch there.
    if (ip >= HERMETIC_FAST_BASE && ip < HERMETIC_FAST_BASE + HERMETIC_FAST_SIZE) return;
    StatSiteCode code;
    if (ip < 7 || !read_mem(p, ip - 7, code.data(), code.size())) return;
    auto patch = fast_stat_patch(code);
    if (!patch || !write_mem(p, ip - 7, patch->data(), patch->size())) return;
    auto& sites = known_sites_[exe_of(p)];
    if (sites.size() < 64) sites.emplace(ip - 7, code);
    if (!p.sites_todo.empty()) patch_known_sites(p);
}

void Engine::patch_known_sites(Process& p) {
    if (!fast_stat_ready(p)) return;
    std::erase_if(p.sites_todo, [&](const auto& site) {
        const auto& [addr, original] = site;
        StatSiteCode code;
        if (!read_mem(p, addr, code.data(), code.size())) return false;  // not mapped yet: at a later trap
        // Patched, or something else lives there in this process: done either way.
        if (code == original)
            if (auto patch = fast_stat_patch(code)) (void)write_mem(p, addr, patch->data(), patch->size());
        return true;
    });
    // A library this process never maps: stop looking after a while.
    if (!p.sites_todo.empty() && ++p.site_tries > 16) p.sites_todo.clear();
}

// ---- utime family

Reply Engine::utime_call(Task& t, const seccomp_notif& n) {
    Process& p = *t.proc;
    const auto* a = n.data.args;
    int dirfd = AT_FDCWD, flags = 0;
    uint64_t path_ptr = 0, times_ptr = 0;
    timespec ts[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
    bool have_times = false;
    switch (n.data.nr) {
        case SYS_utimensat:
            dirfd = static_cast<int>(a[0]), path_ptr = a[1], times_ptr = a[2], flags = static_cast<int>(a[3]);
            if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)) return error(EINVAL);
            if (times_ptr) {
                if (!read_mem(p, times_ptr, ts, sizeof ts)) return error(EFAULT);
                have_times = true;
            }
            break;
        case SYS_utimes: case SYS_futimesat: {
            if (n.data.nr == SYS_futimesat) dirfd = static_cast<int>(a[0]), path_ptr = a[1], times_ptr = a[2];
            else path_ptr = a[0], times_ptr = a[1];
            if (times_ptr) {
                timeval tv[2];
                if (!read_mem(p, times_ptr, tv, sizeof tv)) return error(EFAULT);
                for (int i = 0; i < 2; ++i) {
                    if (tv[i].tv_usec < 0 || tv[i].tv_usec >= 1'000'000) return error(EINVAL);
                    ts[i] = {tv[i].tv_sec, tv[i].tv_usec * 1000};
                }
                have_times = true;
            }
            break;
        }
        case SYS_utime: {
            path_ptr = a[0], times_ptr = a[1];
            if (times_ptr) {
                utimbuf ub{};
                if (!read_mem(p, times_ptr, &ub, sizeof ub)) return error(EFAULT);
                ts[0] = {ub.actime, 0};
                ts[1] = {ub.modtime, 0};
                have_times = true;
            }
            break;
        }
    }
    for (const auto& x : ts)
        if (x.tv_nsec != UTIME_NOW && x.tv_nsec != UTIME_OMIT && (x.tv_nsec < 0 || x.tv_nsec >= kNs)) return error(EINVAL);
    std::string path;
    bool by_fd = path_ptr == 0 && n.data.nr == SYS_utimensat;
    if (!by_fd) {
        int err;
        path = read_string(p, path_ptr, 4096, err);
        if (err) return error(err);
        if (path.empty()) {
            if (!(flags & AT_EMPTY_PATH)) return error(ENOENT);
            by_fd = true;
        }
    }
    if (seccomp_notify_id_valid(listener_.get(), n.id) != 0) {
        Reply r;
        r.kind = Reply::Deferred;
        return r;
    }
    // Do it for real, as the build (the kernel checks ownership and access),
    // then remember the virtual times. The build's earlier writes are queued
    // on fanotify: take them first, so they don't land on top of these times.
    drain_fanotify();
    struct statx stx{};
    int err = 0;
    auto served = [&](int d, const char* rel, int fl) {
        struct statx sx{};
        return served_dev_ && ::statx(d, rel, fl | AT_STATX_SYNC_AS_STAT, 0, &sx) == 0 &&
               makedev(sx.stx_dev_major, sx.stx_dev_minor) == served_dev_;
    };
    if (by_fd) {
        UniqueFd f = pidfd_getfd_of(*this, p, dirfd, err);
        if (!f) return error(err ? err : EBADF);
        if (served(f.get(), "", AT_EMPTY_PATH)) return error(EPERM);  // owned by root, like the real ones
        if (::futimens(f.get(), have_times ? ts : nullptr) != 0) return error(errno);
        if (::statx(f.get(), "", AT_EMPTY_PATH, STATX_INO, &stx) != 0) return error(errno);
    } else {
        path = rewrite_proc_self(t, path);
        UniqueFd base = open_base(t, dirfd, path, err);
        if (err) return error(err);
        int d = base ? base.get() : AT_FDCWD;
        if (served(d, path.c_str(), flags & AT_SYMLINK_NOFOLLOW)) return error(EPERM);
        if (::utimensat(d, path.c_str(), have_times ? ts : nullptr, flags & AT_SYMLINK_NOFOLLOW) != 0) return error(errno);
        if (::statx(d, path.c_str(), flags & AT_SYMLINK_NOFOLLOW, STATX_INO, &stx) != 0) return error(errno);
    }
    FileKey k{makedev(stx.stx_dev_major, stx.stx_dev_minor), stx.stx_ino};
    if (ts[0].tv_nsec == UTIME_OMIT && ts[1].tv_nsec == UTIME_OMIT) return value(0, "no change");
    if (fast_stat_) fast_stat_->unpublish(k.dev, k.ino);  // its times are no longer the epoch
    FileTimes& ft = touch_times(k);
    auto pick = [&](const timespec& x, int64_t& field) {
        if (x.tv_nsec == UTIME_OMIT) return;
        field = x.tv_nsec == UTIME_NOW ? t.vt : x.tv_sec * kNs + x.tv_nsec;
    };
    pick(ts[0], ft.atime);
    pick(ts[1], ft.mtime);
    if (ts[1].tv_nsec != UTIME_OMIT) ft.explicit_mtime = true;
    ft.ctime = std::max(ft.ctime, t.vt);
    return value(0, "mtime " + std::to_string(ft.mtime / kNs));
}

}  // namespace hermetic::sandbox::determinism
