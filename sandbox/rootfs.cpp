#include "sandbox/rootfs.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/io.hpp"
#include "common/sys_error.hpp"
#include "sandbox/devfs.hpp"
#include "sandbox/etc_files.hpp"
#include "sandbox/mount_util.hpp"
#include "sandbox/procfs.hpp"
#include "sandbox/sysfs.hpp"

namespace hermetic::sandbox {

namespace {

// The host directories a build sees (read-only), when no root is configured.
constexpr const char* kHostSystemEntries[] = {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc"};
// Names the sandbox provides itself; a configured root's versions are not used.
const std::set<std::string> kProvided = {"build", "out", "tmp", "dev", "proc", "sys", "var", "home",
                                         "root",  "run", "mnt", "media", "boot", "lost+found"};
constexpr const char* kStage = ".hermetic-stage";

// One top-level entry of the new root, taken from the host or the configured root.
struct SystemEntry {
    std::string name;
    bool is_symlink = false;
    std::string link_target;
    bool is_dir = false;
    UniqueFd fd;  // O_PATH, opened before the staging mount could hide it
};

std::vector<SystemEntry> collect_system_entries(const SandboxConfig& config) {
    std::vector<SystemEntry> out;
    std::string base = config.root_dir ? *config.root_dir : "";
    std::vector<std::string> names;
    if (config.root_dir) {
        UniqueFd dir = open_dir(base.c_str());
        for (auto& e : list_directory(dir.get(), "configured root " + base))
            if (!kProvided.count(e.name)) names.push_back(std::move(e.name));
        std::sort(names.begin(), names.end());
    } else {
        for (const char* n : kHostSystemEntries) names.emplace_back(n);
    }
    for (const auto& n : names) {
        std::string path = base + "/" + n;
        struct stat st{};
        if (::lstat(path.c_str(), &st) != 0) {
            if (errno == ENOENT) continue;
            throw_errno("stat " + path);
        }
        SystemEntry e;
        e.name = n;
        if (S_ISLNK(st.st_mode)) {
            char buf[4096];
            ssize_t len = ::readlink(path.c_str(), buf, sizeof buf - 1);
            if (len < 0) throw_errno("readlink " + path);
            e.is_symlink = true;
            e.link_target.assign(buf, static_cast<size_t>(len));
        } else if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) {
            e.is_dir = S_ISDIR(st.st_mode);
            e.fd = open_path(path);
        } else {
            continue;  // sockets, fifos, devices at the top of a root: not part of a system
        }
        out.push_back(std::move(e));
    }
    return out;
}

struct ExtraBind {
    std::string target;  // relative to the new root
    bool is_dir = true;
    UniqueFd fd;
};

std::vector<ExtraBind> open_extra_binds(const std::vector<std::string>& paths) {
    std::vector<ExtraBind> out;
    for (const auto& p : paths) {
        if (p.empty() || p[0] != '/' || p.find("/../") != std::string::npos || p.ends_with("/.."))
            throw SysError("read-only bind must be an absolute path without '..': " + p, EINVAL);
        // Opened first, then asked what it is: the type is the opened object's.
        ExtraBind b;
        b.fd.reset(::open(p.c_str(), O_PATH | O_CLOEXEC));
        struct stat st{};
        if (!b.fd || ::fstat(b.fd.get(), &st) != 0) throw_errno("configured read-only bind " + p);
        b.target = p.substr(p.find_first_not_of('/'));
        b.is_dir = S_ISDIR(st.st_mode);
        out.push_back(std::move(b));
    }
    return out;
}

// Our own executables, which a bind can make visible to builds (the host's
// /usr holds an installation, an ro-bind may hold a build tree):
// hermetic-runner, which this process still is (init is a fork of the runner,
// never exec'd), and hermeticd, next to it (a build tree) or in sbin or bin
// beside libexec/hermetic (an installation). Taken before the staging mount
// can hide them, by path and inode.
struct OwnBinary {
    std::string path;
    dev_t dev = 0;
    ino_t ino = 0;
};

std::vector<OwnBinary> own_binaries() {
    std::vector<OwnBinary> out;
    char buf[4096];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0 || buf[0] != '/') return out;
    std::string runner(buf, static_cast<size_t>(n));
    std::string dir = runner.substr(0, runner.rfind('/'));
    std::string prefix = dir.substr(0, dir.rfind('/'));
    prefix = prefix.substr(0, prefix.rfind('/'));
    for (const std::string& p : {runner, dir + "/hermeticd", prefix + "/sbin/hermeticd", prefix + "/bin/hermeticd"}) {
        struct stat st{};
        if (p.size() > 1 && ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode)) out.push_back({p, st.st_dev, st.st_ino});
    }
    return out;
}

// Each of them that the new root shows (the same inode at the same path) is
// covered by an empty, unreadable file: no build reads, maps or (through a
// kernel bug in the read-only bind) writes the daemon's or the runner's code.
void hide_own_binaries(const std::vector<OwnBinary>& binaries) {
    const std::string empty = std::string(kStage) + "/hidden";
    for (const auto& b : binaries) {
        std::string target = b.path.substr(b.path.find_first_not_of('/'));
        struct stat st{};
        if (::lstat(target.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_dev != b.dev || st.st_ino != b.ino)
            continue;
        if (::access(empty.c_str(), F_OK) != 0) {
            make_dirs(kStage, 0700);
            write_new_file(empty, "", 0);
        }
        bind_readonly(empty, target);
    }
}

void setup_etc(const SandboxConfig& config) {
    struct stat st{};
    if (::lstat("etc", &st) != 0 || !S_ISDIR(st.st_mode)) return;  // a root without /etc
    make_dirs(kStage, 0700);
    for (const auto& [name, content] : generated_etc_files()) {
        std::string target = "etc/" + name;
        if (::lstat(target.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;  // can't add to a read-only /etc
        std::string staged = std::string(kStage) + "/" + name;
        write_new_file(staged, content, 0644);
        bind_readonly(staged, target);
    }
    std::string empty_file = std::string(kStage) + "/empty";
    write_new_file(empty_file, "", 0);
    // The new root is our working directory: each mask is resolved in it, so a
    // symlinked directory on the way (etc/ssl -> /usr/lib/ssl) leads to the
    // new root's copy of its target, where the build will look, not to the
    // host's (a mount there would miss the new root's own bind of /usr).
    UniqueFd root(::open(".", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root) throw_errno("open the new root");
    for (const auto& name : config.etc_masks) {
        std::string target = "etc/" + name;
        open_how how{};
        how.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;
        how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
        UniqueFd fd(static_cast<int>(::syscall(SYS_openat2, root.get(), target.c_str(), &how, sizeof how)));
        if (!fd) {
            // Absent, below a non-directory, or below a directory we can't search
            // (inner root searches whatever the build can): nothing the build could
            // reach. Any other failure must not leave a secret visible.
            if (errno == ENOENT || errno == ENOTDIR || errno == EACCES) continue;
            throw_errno("open /" + target + " (to mask it)");
        }
        if (::fstat(fd.get(), &st) != 0) throw_errno("stat /" + target + " (to mask it)");
        if (S_ISLNK(st.st_mode)) continue;  // its own target is masked by name, if at all
        if (S_ISDIR(st.st_mode)) {
            // mount(2) follows /proc/self/fd/N to the very directory we opened.
            mount_tmpfs(fd_path(fd.get()), 4096, 0755, MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY);
        } else {
            // Read-only before it is attached: no path-based remount to aim.
            UniqueFd tree(static_cast<int>(
                ::syscall(SYS_open_tree, AT_FDCWD, empty_file.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)));
            if (!tree) throw_errno("open_tree " + empty_file);
            mount_attr attr{};
            attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
            if (::syscall(SYS_mount_setattr, tree.get(), "", AT_EMPTY_PATH, &attr, sizeof attr) != 0)
                throw_errno("mount_setattr (mask of /" + target + ")");
            if (::syscall(SYS_move_mount, tree.get(), "", fd.get(), "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0)
                throw_errno("mask /" + target);
        }
    }
}

void remove_stage() {
    UniqueFd stage(::open(kStage, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!stage) {
        if (errno == ENOENT) return;
        throw_errno("open staging dir");
    }
    // The binds keep their inodes; the names go so the build sees no staging dir.
    for (const auto& e : list_directory(stage.get(), "staging dir"))
        if (::unlinkat(stage.get(), e.name.c_str(), 0) != 0) throw_errno("remove staged " + e.name);
    if (::rmdir(kStage) != 0) throw_errno("remove staging dir");
}

void pivot_into_cwd() {
    // pivot_root(".", ".") stacks the old root on top of the new one; detaching it
    // then leaves only the new root (the runc/LXC idiom, no temporary directory).
    if (::syscall(SYS_pivot_root, ".", ".") != 0) throw_errno("pivot_root");
    if (::umount2(".", MNT_DETACH) != 0) throw_errno("detach old root");
    if (::chdir("/") != 0) throw_errno("chdir /");
}

}  // namespace

void assemble_root(const SandboxConfig& config) {
    // Nothing we mount may propagate back to the host, nor host mounts in.
    do_mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr);

    // Take handles on everything we bind before the staging tmpfs covers /tmp,
    // in case a configured root or bind lives below it.
    auto system = collect_system_entries(config);
    auto extra = open_extra_binds(config.ro_binds);
    auto devices = open_host_devices();
    auto own = own_binaries();

    mount_tmpfs("/tmp", 16 << 20, 0755, MS_NOSUID | MS_NODEV);
    if (::chdir("/tmp") != 0) throw_errno("chdir to staging root");

    for (auto& e : system) {
        if (e.is_symlink) {
            if (::symlink(e.link_target.c_str(), e.name.c_str()) != 0) throw_errno("symlink /" + e.name);
            continue;
        }
        make_mountpoint(e.name, e.is_dir);
        bind_readonly_fd(e.fd.get(), e.name);
    }
    setup_etc(config);

    make_dirs("var");
    for (auto& b : extra) {
        make_mountpoint(b.target, b.is_dir);
        bind_readonly_fd(b.fd.get(), b.target);
    }

    hide_own_binaries(own);

    make_dirs("build");
    mount_tmpfs("build", config.build_bytes, 0755, MS_NOSUID | MS_NODEV, kBuildUid, kBuildGid);
    make_dirs("out");
    // /out holds at most one entry more than the output limit collects (the
    // root takes an inode too): a build that makes more gets ENOSPC there, and
    // the collection still names the limit, instead of a million inodes in
    // kernel memory and as many file events for the supervisor to record.
    const uint64_t max_out = config.output_limits.max_entries;
    mount_tmpfs("out", config.out_bytes, 0755, MS_NOSUID | MS_NODEV, kBuildUid, kBuildGid, max_out ? max_out + 2 : 0);
    make_dirs("tmp");
    mount_tmpfs("tmp", config.tmp_bytes, 01777, MS_NOSUID | MS_NODEV);

    setup_dev(devices, config.tmp_bytes);
    setup_proc(devices.at("null").get());
    mount_sys();
    remove_stage();

    pivot_into_cwd();
    remount_readonly("/", MS_NOSUID | MS_NODEV);
}

}  // namespace hermetic::sandbox
