// The FUSE server (raw /dev/fuse protocol: a read-only directory of generated
// files) and init's side of it (mount_served_files).
#include "sandbox/determinism/served.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "common/fd_passing.hpp"
#include "common/io.hpp"
#include "common/sys_error.hpp"
#include "sandbox/determinism/determinism.hpp"
#include "sandbox/determinism/engine.hpp"

namespace hermetic::sandbox::determinism {

std::vector<ServedFile>& served_files() {
    static std::vector<ServedFile> files = {
        {ServedKind::Urandom, "urandom", "dev/urandom", S_IFCHR | 0666, makedev(1, 9)},
        {ServedKind::Random, "random", "dev/random", S_IFCHR | 0666, makedev(1, 8)},
        {ServedKind::Cpuinfo, "cpuinfo", "proc/cpuinfo", S_IFREG | 0444, 0},
        {ServedKind::Meminfo, "meminfo", "proc/meminfo", S_IFREG | 0444, 0},
        {ServedKind::Version, "version", "proc/version", S_IFREG | 0444, 0},
        {ServedKind::Cmdline, "cmdline", "proc/cmdline", S_IFREG | 0444, 0},
        {ServedKind::Uptime, "uptime", "proc/uptime", S_IFREG | 0444, 0},
        {ServedKind::Loadavg, "loadavg", "proc/loadavg", S_IFREG | 0444, 0},
        {ServedKind::Stat, "stat", "proc/stat", S_IFREG | 0444, 0},
        {ServedKind::Osrelease, "osrelease", "proc/sys/kernel/osrelease", S_IFREG | 0444, 0},
        {ServedKind::KernelVersion, "kversion", "proc/sys/kernel/version", S_IFREG | 0444, 0},
        {ServedKind::Uuid, "uuid", "proc/sys/kernel/random/uuid", S_IFREG | 0444, 0},
        {ServedKind::BootId, "boot_id", "proc/sys/kernel/random/boot_id", S_IFREG | 0444, 0},
    };
    return files;
}

const ServedFile* served_file_by_ino(uint64_t ino) {
    auto& f = served_files();
    return ino >= 2 && ino - 2 < f.size() ? &f[ino - 2] : nullptr;
}

// ---- init's side

namespace {

std::string join(const std::string& root, const std::string& rel) {
    if (root.empty() || root == ".") return rel;
    return root.back() == '/' ? root + rel : root + "/" + rel;
}

}  // namespace

void mount_served_files(int fuse_fd, const std::string& root, const std::string& staging) {
    const std::string stage = join(root, staging);
    std::string opts = "fd=" + std::to_string(fuse_fd) +
                       ",rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions,max_read=131072";
    if (::mount("hermetic", stage.c_str(), "fuse", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts.c_str()) != 0)
        throw_errno("mount the served files (fuse) on " + stage);
    try {
        for (const ServedFile& f : served_files()) {
            std::string target = join(root, f.target);
            struct stat st{};
            if (::lstat(target.c_str(), &st) != 0 || S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode)) continue;
            std::string source = stage + "/" + f.name;
            if (::mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0)
                throw_errno("bind the served " + std::string(f.name) + " over " + target);
            unsigned long ro = (f.kind == ServedKind::Urandom || f.kind == ServedKind::Random) ? 0 : MS_RDONLY;
            if (::mount(nullptr, target.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC | ro,
                        nullptr) != 0)
                throw_errno("remount the served " + std::string(f.name));
        }
    } catch (...) {
        (void)::umount2(stage.c_str(), MNT_DETACH);
        throw;
    }
    // The binds keep the FUSE file system alive; the staging directory is itself again.
    if (::umount2(stage.c_str(), MNT_DETACH) != 0) throw_errno("unmount the served files' staging mount");
}

void unmount_served_files(const std::string& root) {
    for (const ServedFile& f : served_files()) {
        const std::string target = join(root, f.target);
        // EINVAL: not a mount point (the target did not exist, nothing was bound);
        // a symlink was skipped when mounting, and must not lead elsewhere now.
        if (::umount2(target.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0 && errno != EINVAL && errno != ENOENT)
            throw_errno("unmount the served " + std::string(f.name));
    }
}

// ---- the supervisor's side

UniqueFd Engine::open_fuse_device(pid_t init_pid) {
    if (fuse_) throw std::runtime_error("served files already open");
    // FUSE accepts a /dev/fuse descriptor only from the mounter's user namespace:
    // a helper joins init's, opens the device (as the host's root, its owner) and
    // passes it back.
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw_errno("socketpair");
    UniqueFd ours(sv[0]), theirs(sv[1]);
    char ns[64];
    std::snprintf(ns, sizeof ns, "%d/ns/user", init_pid);
    UniqueFd userns(::openat(hostproc_.get(), ns, O_RDONLY | O_CLOEXEC));
    if (!userns) throw_errno("open the sandbox's user namespace");
    pid_t helper = ::fork();
    if (helper < 0) throw_errno("fork");
    if (helper == 0) {
        if (::setns(userns.get(), CLONE_NEWUSER) != 0) ::_exit(1);
        int dev = ::open("/dev/fuse", O_RDWR | O_CLOEXEC);
        if (dev < 0) ::_exit(2);
        try {
            send_with_fds(theirs.get(), "F", std::span<const int>(&dev, 1));
        } catch (...) {
            ::_exit(3);
        }
        ::_exit(0);
    }
    theirs.reset();
    std::vector<UniqueFd> fds;
    char byte;
    size_t n = 0;
    try {
        n = recv_with_fds(ours.get(), &byte, 1, fds);
    } catch (...) {
    }
    int status = 0;
    while (::waitpid(helper, &status, 0) < 0 && errno == EINTR) {
    }
    if (n != 1 || fds.size() != 1)
        throw std::runtime_error("could not open /dev/fuse in the sandbox's user namespace (helper status " +
                                 std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")");
    fuse_ = std::move(fds[0]);
    set_nonblocking(fuse_.get(), true);
    UniqueFd copy(::fcntl(fuse_.get(), F_DUPFD_CLOEXEC, 3));
    if (!copy) throw_errno("dup /dev/fuse");
    return copy;
}

namespace {

constexpr int64_t kNs = 1'000'000'000;
constexpr uint64_t kForever = 10ull * 365 * 86400;  // seconds

std::string fixed(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.2f", v);
    return b;
}

std::string uuid_from(const uint8_t* b) {
    uint8_t u[16];
    std::memcpy(u, b, 16);
    u[6] = static_cast<uint8_t>((u[6] & 0x0f) | 0x40);  // version 4
    u[8] = static_cast<uint8_t>((u[8] & 0x3f) | 0x80);  // RFC 4122 variant
    char s[40];
    std::snprintf(s, sizeof s, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2],
                  u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
    return s;
}

// Conservative x86-64-v2 feature list: what the build learns from /proc/cpuinfo
// does not depend on the host (CPUID itself is another matter: see the summary).
constexpr const char* kCpuFlags =
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 syscall nx lm "
    "constant_tsc rep_good nopl cpuid pni ssse3 cx16 sse4_1 sse4_2 popcnt hypervisor lahf_lm";

}  // namespace

std::string served_content(const Engine& e, ServedKind kind, Task* reader) {
    const DeterminismConfig& c = e.cfg();
    const uint32_t cpus = std::max<uint32_t>(1, c.cpus);
    const int64_t uptime_ns = reader ? e.mono_ns(*reader) : c.uptime_at_epoch_s * kNs;
    switch (kind) {
        case ServedKind::Cpuinfo: {
            std::string s;
            for (uint32_t i = 0; i < cpus; ++i) {
                s += "processor\t: " + std::to_string(i) +
                     "\nvendor_id\t: HermeticCPU\ncpu family\t: 6\nmodel\t\t: 0\nmodel name\t: Hermetic virtual CPU\n"
                     "stepping\t: 0\ncpu MHz\t\t: 1000.000\ncache size\t: 1024 KB\nphysical id\t: 0\nsiblings\t: " +
                     std::to_string(cpus) + "\ncore id\t\t: " + std::to_string(i) + "\ncpu cores\t: " + std::to_string(cpus) +
                     "\napicid\t\t: " + std::to_string(i) + "\nfpu\t\t: yes\nfpu_exception\t: yes\ncpuid level\t: 13\nwp\t\t: yes\nflags\t\t: " +
                     kCpuFlags + "\nbogomips\t: 2000.00\nclflush size\t: 64\ncache_alignment\t: 64\naddress sizes\t: 48 bits physical, 48 bits virtual\npower management:\n\n";
            }
            return s;
        }
        case ServedKind::Meminfo: {
            uint64_t kb = c.memory_bytes / 1024;
            auto line = [](const char* k, uint64_t v) {
                char b[64];
                std::snprintf(b, sizeof b, "%-16s%8llu kB\n", k, (unsigned long long)v);
                return std::string(b);
            };
            return line("MemTotal:", kb) + line("MemFree:", kb / 2) + line("MemAvailable:", kb / 2) + line("Buffers:", 0) +
                   line("Cached:", 0) + line("SwapCached:", 0) + line("Active:", kb / 4) + line("Inactive:", kb / 4) +
                   line("SwapTotal:", 0) + line("SwapFree:", 0) + line("Dirty:", 0) + line("Shmem:", 0) +
                   line("Slab:", 0) + line("CommitLimit:", kb / 2) + line("Committed_AS:", kb / 4) +
                   line("VmallocTotal:", 34359738367ULL) + line("Hugepagesize:", 2048);
        }
        case ServedKind::Version:
            return "Linux version " + c.uname_release + " (hermetic@hermetic) (gcc) " + c.uname_version + "\n";
        case ServedKind::Cmdline: return "BOOT_IMAGE=/boot/vmlinuz ro quiet\n";
        case ServedKind::Uptime: return fixed(double(uptime_ns) / kNs) + " " + fixed(0) + "\n";
        case ServedKind::Loadavg: return "0.00 0.00 0.00 1/1 1\n";
        case ServedKind::Stat: {
            std::string s = "cpu  0 0 0 0 0 0 0 0 0 0\n";
            for (uint32_t i = 0; i < cpus; ++i) s += "cpu" + std::to_string(i) + " 0 0 0 0 0 0 0 0 0 0\n";
            s += "intr 0\nctxt 0\nbtime " + std::to_string(c.epoch - c.uptime_at_epoch_s) +
                 "\nprocesses 1\nprocs_running 1\nprocs_blocked 0\nsoftirq 0 0 0 0 0 0 0 0 0 0 0\n";
            return s;
        }
        case ServedKind::Osrelease: return c.uname_release + "\n";
        case ServedKind::KernelVersion: return c.uname_version + "\n";
        case ServedKind::BootId: {
            uint8_t b[16];
            stream_bytes(e.key(), "boot_id", b, sizeof b);
            return uuid_from(b) + "\n";
        }
        case ServedKind::Urandom: case ServedKind::Random: case ServedKind::Uuid: break;
    }
    return {};
}

namespace {

struct FuseReply {
    int fd;
    uint64_t unique;
    void send(int error, const void* payload = nullptr, size_t len = 0) const {
        fuse_out_header h{};
        h.unique = unique;
        h.error = error ? -error : 0;
        h.len = static_cast<uint32_t>(sizeof h + (error ? 0 : len));
        iovec iov[2] = {{&h, sizeof h}, {const_cast<void*>(payload), error ? 0 : len}};
        // A failed reply needs no handling: ENOENT means the request was
        // interrupted (the reader got EINTR); anything else ends the mount.
        if (::writev(fd, iov, error || len == 0 ? 1 : 2) < 0) return;
    }
};

fuse_attr attr_of(uint64_t ino) {
    fuse_attr a{};
    a.ino = ino;
    a.nlink = 1;
    if (ino == FUSE_ROOT_ID) {
        a.mode = S_IFDIR | 0555;
        a.nlink = 2;
        return a;
    }
    const ServedFile* f = served_file_by_ino(ino);
    bool random = f->kind == ServedKind::Urandom || f->kind == ServedKind::Random;
    a.mode = S_IFREG | (random ? 0666 : 0444);
    a.blksize = 4096;
    return a;
}

}  // namespace

void Engine::on_fuse() {
    static std::vector<char> buf(FUSE_MIN_READ_BUFFER + (128 << 10));
    for (;;) {
        ssize_t n = ::read(fuse_.get(), buf.data(), buf.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == ENODEV) fuse_.reset();  // unmounted for good
            // Not mounted yet: the device polls as an error until init mounts
            // it; the loop looks again shortly instead of spinning on it.
            if (errno == EPERM) fuse_unmounted_ = true;
            return;
        }
        if (static_cast<size_t>(n) < sizeof(fuse_in_header)) return;
        fuse_in_header in;
        std::memcpy(&in, buf.data(), sizeof in);
        const char* arg = buf.data() + sizeof in;
        FuseReply reply{fuse_.get(), in.unique};
        switch (in.opcode) {
            case FUSE_INIT: {
                fuse_init_in ii;
                std::memcpy(&ii, arg, sizeof ii);
                fuse_init_out out{};
                out.major = FUSE_KERNEL_VERSION;
                out.minor = std::min<uint32_t>(ii.minor, FUSE_KERNEL_MINOR_VERSION);
                out.max_readahead = 0;
                out.max_write = 4096;
                out.time_gran = 1;
                out.max_background = 16;
                out.congestion_threshold = 12;
                reply.send(0, &out, out.minor < 23 ? 24 : sizeof out);
                break;
            }
            case FUSE_LOOKUP: {
                std::string name(arg);
                fuse_entry_out out{};
                if (in.nodeid != FUSE_ROOT_ID) {
                    reply.send(ENOENT);
                    break;
                }
                uint64_t ino = 0;
                auto& files = served_files();
                for (size_t i = 0; i < files.size(); ++i)
                    if (name == files[i].name) ino = i + 2;
                if (!ino) {
                    reply.send(ENOENT);
                    break;
                }
                out.nodeid = ino;
                out.generation = 1;
                // Cached for good: the supervisor's own stat of a served file (for the
                // build) must never need an answer from itself.
                out.entry_valid = out.attr_valid = kForever;
                out.attr = attr_of(ino);
                reply.send(0, &out, sizeof out);
                break;
            }
            case FUSE_GETATTR: {
                if (in.nodeid != FUSE_ROOT_ID && !served_file_by_ino(in.nodeid)) {
                    reply.send(ENOENT);
                    break;
                }
                fuse_attr_out out{};
                out.attr = attr_of(in.nodeid);
                out.attr_valid = kForever;
                reply.send(0, &out, sizeof out);
                break;
            }
            case FUSE_OPEN: case FUSE_OPENDIR: {
                fuse_open_out out{};
                // No FLUSH on close: the supervisor closes its copies of build fds that
                // may be served files, and must not wait for itself.
                out.open_flags = FOPEN_DIRECT_IO | FOPEN_NOFLUSH;
                reply.send(0, &out, sizeof out);
                break;
            }
            case FUSE_READ: {
                fuse_read_in ri;
                std::memcpy(&ri, arg, sizeof ri);
                const ServedFile* f = served_file_by_ino(in.nodeid);
                if (!f) {
                    reply.send(ENOENT);
                    break;
                }
                // What a file holds depends on the job's configuration (init
                // only mounts and binds before it; the build reads after it).
                if (!configured_) {
                    reply.send(EIO);
                    break;
                }
                Task* reader = started_ ? task_by_vpid(static_cast<pid_t>(in.pid)) : nullptr;
                if (started_ && !reader) note("fuse: no task for pid " + std::to_string(in.pid));
                std::string who = reader ? reader->id : "other/" + std::to_string(in.pid);
                size_t size = std::min<size_t>(ri.size, 128 << 10);
                std::string data;
                if (f->kind == ServedKind::Urandom || f->kind == ServedKind::Random) {
                    data.resize(size);
                    if (reader) {
                        if (!reader->urandom_stream) reader->urandom_stream = std::make_unique<Prng>(key_, "urandom/" + who);
                        reader->urandom_stream->fill(data.data(), size);
                    } else {
                        stream_bytes(key_, "urandom/" + who, data.data(), size);
                    }
                    record_served_read(reader, static_cast<pid_t>(in.pid), "/dev/urandom", "random",
                                       std::to_string(size) + " bytes");
                } else {
                    std::string content;
                    if (f->kind == ServedKind::Uuid) {
                        // A new one per read from the start, like the kernel's.
                        uint32_t k = reader ? ++reader->uuids : 0;
                        uint8_t b[16];
                        stream_bytes(key_, "uuid/" + who + "/" + std::to_string(k), b, sizeof b);
                        content = uuid_from(b) + "\n";
                    } else {
                        if (reader && f->kind == ServedKind::Uptime) {
                            drain_fanotify();  // its file events before its clock moves
                            fold(*reader);
                            publish(*reader);
                        }
                        content = served_content(*this, f->kind, reader);
                    }
                    if (ri.offset < content.size()) data = content.substr(ri.offset, size);
                    record_served_read(reader, static_cast<pid_t>(in.pid), std::string("/") + f->target,
                                       f->kind == ServedKind::Uuid ? "random" : "identity",
                                       std::to_string(data.size()) + " bytes at " + std::to_string(ri.offset));
                }
                reply.send(0, data.data(), data.size());
                break;
            }
            case FUSE_WRITE: {
                // Writing to the random devices adds "entropy": accepted, ignored.
                fuse_write_in wi;
                std::memcpy(&wi, arg, sizeof wi);
                fuse_write_out out{};
                out.size = wi.size;
                reply.send(0, &out, sizeof out);
                break;
            }
            case FUSE_READDIR: {
                fuse_read_in ri;
                std::memcpy(&ri, arg, sizeof ri);
                std::string out;
                auto& files = served_files();
                for (size_t i = ri.offset; i < files.size(); ++i) {
                    size_t namelen = std::strlen(files[i].name);
                    size_t len = FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + namelen);
                    if (out.size() + len > ri.size) break;
                    std::string rec(len, '\0');
                    fuse_dirent d{};
                    d.ino = i + 2;
                    d.off = i + 1;
                    d.namelen = static_cast<uint32_t>(namelen);
                    d.type = DT_REG;
                    std::memcpy(rec.data(), &d, FUSE_NAME_OFFSET);
                    std::memcpy(rec.data() + FUSE_NAME_OFFSET, files[i].name, namelen);
                    out += rec;
                }
                reply.send(0, out.data(), out.size());
                break;
            }
            case FUSE_STATFS: {
                fuse_statfs_out out{};
                out.st.bsize = 4096;
                out.st.namelen = 255;
                out.st.frsize = 4096;
                reply.send(0, &out, sizeof out);
                break;
            }
            case FUSE_RELEASE: case FUSE_RELEASEDIR: case FUSE_FLUSH: case FUSE_FSYNC: case FUSE_ACCESS:
                reply.send(0);
                break;
            case FUSE_FORGET: case FUSE_BATCH_FORGET: case FUSE_INTERRUPT: break;  // no reply
            case FUSE_DESTROY: reply.send(0); break;
            default: reply.send(ENOSYS);
        }
    }
}

}  // namespace hermetic::sandbox::determinism
