#include "sandbox/cgroup.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <set>
#include <string_view>
#include <thread>
#include <utility>

#include "common/io.hpp"
#include "common/sys_error.hpp"

namespace hermetic::sandbox {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kKillTimeout = 5s;
constexpr auto kFreezeTimeout = 1s;
constexpr auto kRmdirTimeout = 2s;
constexpr uint64_t kCpuPeriodUs = 100000;
constexpr uint64_t kCpuMinQuotaUs = 1000;  // the kernel rejects smaller quotas
constexpr size_t kSignalBatch = 64;         // pidfds held open at once

// ---- names and paths -------------------------------------------------------

bool valid_job_name(const std::string& name) {
    if (name.empty() || name.size() > 64) return false;
    return std::all_of(name.begin(), name.end(),
                       [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

void validate_job_name(const std::string& name) {
    if (!valid_job_name(name))
        throw SysError("cgroup: invalid job name '" + name.substr(0, 80) + "' (want [a-z0-9-]{1,64})", EINVAL);
}

// The parent may be nested ("a/b"); every component is checked so that no
// configuration can make us walk out of the hierarchy.
std::vector<std::string> parent_components(const std::string& parent) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos <= parent.size()) {
        size_t end = parent.find('/', pos);
        if (end == std::string::npos) end = parent.size();
        std::string comp = parent.substr(pos, end - pos);
        bool ok = !comp.empty() && comp.size() <= 255 && comp != "." && comp != ".." &&
                  std::all_of(comp.begin(), comp.end(), [](char c) {
                      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                             c == '-' || c == '_' || c == '.';
                  });
        if (!ok)
            throw SysError("cgroup: invalid parent '" + parent + "' (relative path of [A-Za-z0-9._-] components)",
                           EINVAL);
        out.push_back(std::move(comp));
        pos = end + 1;
    }
    return out;
}

std::string normalize_root(const std::string& root) {
    std::string r = root;
    while (r.size() > 1 && r.back() == '/') r.pop_back();
    if (r.empty() || r[0] != '/') throw SysError("cgroup: root must be an absolute path: '" + root + "'", EINVAL);
    return r;
}

bool path_under(const std::string& path, const std::string& root) {
    if (root == "/") return true;
    return path == root || (path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
                            path[root.size()] == '/');
}

// ---- small parsing helpers --------------------------------------------------

std::vector<std::string> split(std::string_view s, std::string_view seps) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < s.size()) {
        size_t end = s.find_first_of(seps, pos);
        if (end == std::string_view::npos) end = s.size();
        if (end > pos) out.emplace_back(s.substr(pos, end - pos));
        pos = end + 1;
    }
    return out;
}

bool contains(const std::vector<std::string>& v, std::string_view x) {
    return std::find(v.begin(), v.end(), x) != v.end();
}

std::optional<uint64_t> parse_u64(std::string_view s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
    if (s.empty() || s.size() > 20) return std::nullopt;
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        uint64_t d = static_cast<uint64_t>(c - '0');
        if (v > (UINT64_MAX - d) / 10) return std::nullopt;
        v = v * 10 + d;
    }
    return v;
}

// "key value" lines, as in memory.events, pids.events, memory.oom_control.
std::optional<uint64_t> keyed_value(const std::string& text, std::string_view key) {
    for (const auto& line : split(text, "\n")) {
        auto words = split(line, " ");
        if (words.size() == 2 && words[0] == key) return parse_u64(words[1]);
    }
    return std::nullopt;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mountinfo(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        bool octal = s[i] == '\\' && s.size() - i >= 4 && s[i + 1] >= '0' && s[i + 1] <= '3' &&
                     s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7';
        if (octal) {
            out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
            i += 3;
        } else {
            out += s[i];
        }
    }
    return out;
}

// ---- cgroupfs file access -----------------------------------------------------

// One job cgroup directory (v2: the only one; v1: one per hierarchy).
struct Dir {
    std::string path;  // for messages
    UniqueFd parent;   // the daemon's parent cgroup, for the final rmdir
    UniqueFd fd;       // the job cgroup itself; invalid if mkdir succeeded but open failed
    bool memory = false;
    bool pids = false;
    bool cpu = false;
    bool freezer = false;  // v1 only: the freezer hierarchy
};

bool exists_at(int dirfd, const std::string& path, const char* file) {
    if (::faccessat(dirfd, file, F_OK, 0) == 0) return true;
    if (errno == ENOENT) return false;
    throw_errno("cgroup: access " + path + "/" + file);
}

std::optional<std::string> read_at_if_exists(int dirfd, const std::string& path, const char* file) {
    UniqueFd fd(retry_eintr([&] { return ::openat(dirfd, file, O_RDONLY | O_CLOEXEC | O_NOCTTY); }));
    if (!fd) {
        if (errno == ENOENT) return std::nullopt;
        throw_errno("cgroup: open " + path + "/" + file);
    }
    try {
        return read_to_end(fd.get(), 16 << 20);
    } catch (const SysError& e) {
        throw SysError("cgroup: read " + path + "/" + file, e.code());
    }
}

std::string read_at(int dirfd, const std::string& path, const char* file) {
    auto s = read_at_if_exists(dirfd, path, file);
    if (!s) throw SysError("cgroup: open " + path + "/" + file, ENOENT);
    return *s;
}

void write_at(int dirfd, const std::string& path, const char* file, std::string_view value) {
    try {
        write_file_at(dirfd, file, value);
    } catch (const SysError& e) {
        throw SysError("cgroup: write '" + std::string(value) + "' to " + path + "/" + file, e.code());
    }
}

uint64_t read_u64_at(int dirfd, const std::string& path, const char* file) {
    auto text = read_at(dirfd, path, file);
    auto v = parse_u64(text);
    if (!v) throw SysError("cgroup: unexpected content in " + path + "/" + file, EPROTO);
    return *v;
}

uint64_t read_keyed_at(int dirfd, const std::string& path, const char* file, std::string_view key) {
    auto v = keyed_value(read_at(dirfd, path, file), key);
    if (!v) throw SysError("cgroup: no '" + std::string(key) + "' in " + path + "/" + file, EPROTO);
    return *v;
}

std::vector<pid_t> read_procs(const Dir& d) {
    std::vector<pid_t> out;
    for (const auto& w : split(read_at(d.fd.get(), d.path, "cgroup.procs"), "\n")) {
        auto v = parse_u64(w);
        // 0 is what a pid outside our pid namespace reads as; we can't signal it.
        if (!v || *v > INT32_MAX) throw SysError("cgroup: unexpected line in " + d.path + "/cgroup.procs", EPROTO);
        if (*v != 0) out.push_back(static_cast<pid_t>(*v));
    }
    return out;
}

UniqueFd open_subdir(int dirfd, const char* name) {
    return UniqueFd(
        retry_eintr([&] { return ::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW); }));
}

// Walks <base>/<components>, creating missing levels when asked, and calls
// at_level on every level from base to the final one. Returns an invalid fd if a
// level is missing and create is false.
UniqueFd open_parent(const std::string& base, const std::vector<std::string>& comps, bool create,
                     const std::function<void(int, const std::string&)>& at_level) {
    UniqueFd fd = open_dir(base.c_str(), O_NOFOLLOW);
    std::string path = base;
    if (at_level) at_level(fd.get(), path);
    for (const auto& comp : comps) {
        if (create && ::mkdirat(fd.get(), comp.c_str(), 0755) != 0 && errno != EEXIST)
            throw_errno("cgroup: mkdir " + path + "/" + comp);
        UniqueFd next = open_subdir(fd.get(), comp.c_str());
        if (!next) {
            if (!create && errno == ENOENT) return {};
            throw_errno("cgroup: open " + path + "/" + comp);
        }
        fd = std::move(next);
        path += "/" + comp;
        if (at_level) at_level(fd.get(), path);
    }
    return fd;
}

void check_cgroup2(int fd, const std::string& root) {
    struct statfs st {};
    check(::fstatfs(fd, &st), "cgroup: statfs " + root);
    if (st.f_type != CGROUP2_SUPER_MAGIC) throw SysError("cgroup: " + root + " is not a cgroup v2 directory", ENOTSUP);
}

// ---- v1 hierarchy discovery -----------------------------------------------------

struct V1Hierarchy {
    std::string mount;
    std::string dev;  // major:minor, one per hierarchy (bind mounts share it)
    bool mount_root_is_slash = false;
    bool memory = false;
    bool pids = false;
    bool cpu = false;
    bool freezer = false;
};

// v1 hierarchies (type "cgroup") mounted under `root` that hold a controller we use.
std::vector<V1Hierarchy> find_v1_hierarchies(const std::string& root) {
    std::string text = read_file_at(AT_FDCWD, "/proc/self/mountinfo", 64 << 20);
    std::vector<V1Hierarchy> out;
    for (const auto& line : split(text, "\n")) {
        auto f = split(line, " ");
        auto sep = std::find(f.begin(), f.end(), "-");
        if (sep == f.end() || sep - f.begin() < 5 || f.end() - sep < 4) continue;
        if (sep[1] != "cgroup") continue;
        V1Hierarchy h;
        h.dev = f[2];
        h.mount_root_is_slash = f[3] == "/";
        h.mount = unescape_mountinfo(f[4]);
        if (!path_under(h.mount, root)) continue;
        for (const auto& opt : split(sep[3], ",")) {
            if (opt == "memory") h.memory = true;
            if (opt == "pids") h.pids = true;
            if (opt == "cpu") h.cpu = true;
            if (opt == "freezer") h.freezer = true;
        }
        if (!h.memory && !h.pids && !h.cpu && !h.freezer) continue;
        auto same = std::find_if(out.begin(), out.end(), [&](const V1Hierarchy& o) { return o.dev == h.dev; });
        if (same == out.end()) {
            out.push_back(std::move(h));
        } else if (h.mount_root_is_slash && !same->mount_root_is_slash) {
            *same = std::move(h);  // prefer the mount that shows the whole hierarchy
        }
    }
    return out;
}

bool has_v1(const std::vector<V1Hierarchy>& hs, bool V1Hierarchy::*role) {
    return std::any_of(hs.begin(), hs.end(), [&](const V1Hierarchy& h) { return h.*role; });
}

std::vector<V1Hierarchy> require_v1(const std::string& root) {
    auto hs = find_v1_hierarchies(root);
    if (!has_v1(hs, &V1Hierarchy::memory) || !has_v1(hs, &V1Hierarchy::pids))
        throw SysError("cgroup: no cgroup v1 memory and pids hierarchies mounted under " + root, ENOTSUP);
    return hs;
}

CgroupVersion resolve_version(const CgroupConfig& config) {
    return config.version ? *config.version : detect_cgroup_version(config);
}

// ---- v2 controller delegation -------------------------------------------------------

// Enables in `fd`'s subtree_control those of `wanted` it offers. A controller not
// offered is left for the job-level check (only a limit that needs it fails).
void enable_controllers(int fd, const std::string& path, const std::vector<std::string>& wanted) {
    auto offered = split(read_at(fd, path, "cgroup.controllers"), " \n");
    auto enabled = split(read_at(fd, path, "cgroup.subtree_control"), " \n");
    std::string cmd;
    for (const auto& c : wanted) {
        if (contains(offered, c) && !contains(enabled, c)) cmd += (cmd.empty() ? "+" : " +") + c;
    }
    if (cmd.empty()) return;
    try {
        write_at(fd, path, "cgroup.subtree_control", cmd);
    } catch (const SysError& e) {
        // EBUSY: "no internal processes" - a non-root cgroup with processes can't delegate.
        throw SysError(std::string(e.what()) + " (a cgroup holding processes can't enable controllers for children)",
                       e.code());
    }
}

uint64_t cpu_quota_us(double cpus) {
    if (!std::isfinite(cpus) || cpus < 0) throw SysError("cgroup: invalid cpu limit", EINVAL);
    double q = std::round(cpus * static_cast<double>(kCpuPeriodUs));
    if (q < static_cast<double>(kCpuMinQuotaUs) || q > 1e15)
        throw SysError("cgroup: cpu limit " + std::to_string(cpus) + " out of range (min 0.01)", EINVAL);
    return static_cast<uint64_t>(q);
}

void sleep_backoff(std::chrono::milliseconds& delay) {
    std::this_thread::sleep_for(delay);
    delay = std::min<std::chrono::milliseconds>(delay * 2, 50ms);
}

// rmdir that waits out the short EBUSY window after the last process left.
void rmdir_retry(int parentfd, const std::string& name, const std::string& path) {
    auto deadline = Clock::now() + kRmdirTimeout;
    auto delay = 1ms;
    for (;;) {
        if (::unlinkat(parentfd, name.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) return;
        if (errno != EBUSY || Clock::now() >= deadline) throw_errno("cgroup: rmdir " + path);
        sleep_backoff(delay);
    }
}

}  // namespace

// ---- detection ------------------------------------------------------------------------

CgroupVersion detect_cgroup_version(const CgroupConfig& config) {
    std::string root = normalize_root(config.root);
    std::string v2_note;
    struct statfs st {};
    check(::statfs(root.c_str(), &st), "cgroup: statfs " + root);
    if (st.f_type == CGROUP2_SUPER_MAGIC) {
        auto offered = split(read_file_at(AT_FDCWD, (root + "/cgroup.controllers").c_str()), " \n");
        if (contains(offered, "memory") && contains(offered, "pids")) return CgroupVersion::V2;
        std::string list;
        for (const auto& c : offered) list += (list.empty() ? "" : " ") + c;
        v2_note = "cgroup v2 at " + root + " offers [" + list + "], not memory and pids";
    } else {
        v2_note = root + " is not a cgroup v2 mount";
    }
    auto hs = find_v1_hierarchies(root);
    if (has_v1(hs, &V1Hierarchy::memory) && has_v1(hs, &V1Hierarchy::pids)) return CgroupVersion::V1;
    throw SysError("cgroup: no usable hierarchy: " + v2_note + ", and no cgroup v1 memory and pids hierarchies are "
                   "mounted under " + root,
                   ENOTSUP);
}

// ---- job state ------------------------------------------------------------------------------

namespace {

// Everything a job cgroup is; also used on its own by remove_job_cgroup().
struct JobState {
    CgroupVersion version = CgroupVersion::V2;
    std::string name;
    std::vector<Dir> dirs;
    bool removed = false;

    const Dir& role(bool Dir::*r, const char* what) const {
        if (removed) throw SysError("cgroup: job " + name + " already removed", ENOENT);
        for (const auto& d : dirs)
            if (d.*r && d.fd) return d;
        throw SysError(std::string("cgroup: job ") + name + " has no " + what + " cgroup", ENOENT);
    }
    const Dir* find(bool Dir::*r) const {
        if (removed) throw SysError("cgroup: job " + name + " already removed", ENOENT);
        for (const auto& d : dirs)
            if (d.*r && d.fd) return &d;
        return nullptr;
    }

    std::vector<pid_t> all_procs() const {
        std::set<pid_t> s;
        for (const auto& d : dirs) {
            if (!d.fd) continue;
            for (pid_t p : read_procs(d)) s.insert(p);
        }
        return {s.begin(), s.end()};
    }

    void kill_all();
    void kill_listed();
    void remove();
};

// Freezes the job while its processes are signalled, so a fork loop can't add
// processes between listing and killing. Frozen tasks act on SIGKILL once thawed.
class FreezeGuard {
public:
    FreezeGuard(const std::vector<Dir>& dirs, CgroupVersion version) : v1_(version == CgroupVersion::V1) {
        for (const auto& d : dirs) {
            if (!d.fd) continue;
            if (v1_ && d.freezer) dir_ = &d;
            // v2 fallback for kernels without cgroup.kill (5.2 - 5.13).
            if (!v1_ && exists_at(d.fd.get(), d.path, "cgroup.freeze")) dir_ = &d;
        }
    }
    // Not in the constructor: if waiting fails, the destructor must still thaw.
    void freeze() {
        if (!dir_) return;
        active_ = true;
        write_at(dir_->fd.get(), dir_->path, v1_ ? "freezer.state" : "cgroup.freeze", v1_ ? "FROZEN" : "1");
        // Bounded: a task stuck in uninterruptible sleep keeps the cgroup FREEZING.
        // Killing still works then; the caller's loop signals again after the thaw.
        auto deadline = Clock::now() + kFreezeTimeout;
        auto delay = 1ms;
        while (!frozen() && Clock::now() < deadline) sleep_backoff(delay);
    }
    FreezeGuard(const FreezeGuard&) = delete;
    FreezeGuard& operator=(const FreezeGuard&) = delete;
    ~FreezeGuard() {
        if (!active_) return;
        try {
            thaw();
        } catch (...) {  // only on an error path; the outer error is what matters
        }
    }
    void thaw() {
        if (!active_) return;
        write_at(dir_->fd.get(), dir_->path, v1_ ? "freezer.state" : "cgroup.freeze", v1_ ? "THAWED" : "0");
        active_ = false;
    }

private:
    bool frozen() const {
        if (v1_) return read_at(dir_->fd.get(), dir_->path, "freezer.state") == "FROZEN\n";
        return keyed_value(read_at(dir_->fd.get(), dir_->path, "cgroup.events"), "frozen") == 1u;
    }
    bool v1_;
    const Dir* dir_ = nullptr;
    bool active_ = false;
};

int sys_pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }
int sys_pidfd_send_signal(int pidfd, int sig) {
    return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

// Signals every listed process. A pid read from cgroup.procs may exit and be reused
// by an unrelated process before kill(); so we pin each with a pidfd and signal it
// only if its pid is still in the cgroup after pinning.
void JobState::kill_listed() {
    auto pids = all_procs();
    for (size_t i = 0; i < pids.size(); i += kSignalBatch) {
        std::vector<std::pair<pid_t, UniqueFd>> pinned;
        for (size_t j = i; j < std::min(pids.size(), i + kSignalBatch); ++j) {
            UniqueFd pfd(sys_pidfd_open(pids[j]));
            if (pfd) {
                pinned.emplace_back(pids[j], std::move(pfd));
            } else if (errno == ENOSYS) {
                // Kernel < 5.3: no pidfds; plain kill() with its small pid-reuse window.
                if (::kill(pids[j], SIGKILL) != 0 && errno != ESRCH)
                    throw_errno("cgroup: kill " + std::to_string(pids[j]));
            } else if (errno != ESRCH && errno != EINVAL) {  // EINVAL: the number is now a thread
                throw_errno("cgroup: pidfd_open " + std::to_string(pids[j]));
            }
        }
        if (pinned.empty()) continue;
        auto now = all_procs();
        for (const auto& [pid, pfd] : pinned) {
            if (!std::binary_search(now.begin(), now.end(), pid)) continue;
            if (sys_pidfd_send_signal(pfd.get(), SIGKILL) != 0 && errno != ESRCH)
                throw_errno("cgroup: pidfd_send_signal " + std::to_string(pid));
        }
    }
}

void JobState::kill_all() {
    if (removed) return;
    const Dir* v2 = version == CgroupVersion::V2 && !dirs.empty() && dirs[0].fd ? &dirs[0] : nullptr;
    bool use_kill_file = v2 && exists_at(v2->fd.get(), v2->path, "cgroup.kill");
    auto deadline = Clock::now() + kKillTimeout;
    auto delay = 1ms;
    for (;;) {
        auto pids = all_procs();
        if (pids.empty()) return;
        if (Clock::now() >= deadline)
            throw SysError("cgroup: " + std::to_string(pids.size()) + " process(es) still in job " + name +
                               " after 5 s of SIGKILL (first: " + std::to_string(pids[0]) + ")",
                           EBUSY);
        if (use_kill_file) {
            write_at(v2->fd.get(), v2->path, "cgroup.kill", "1");
        } else {
            FreezeGuard freeze(dirs, version);
            freeze.freeze();
            kill_listed();
            freeze.thaw();
        }
        sleep_backoff(delay);
    }
}

void JobState::remove() {
    if (removed) return;
    kill_all();
    // Erase each directory as it goes, so a retry after a failure is idempotent.
    while (!dirs.empty()) {
        Dir& d = dirs.back();
        rmdir_retry(d.parent.get(), name, d.path);
        dirs.pop_back();
    }
    removed = true;
}

}  // namespace

// ---- JobCgroup ---------------------------------------------------------------------------

struct JobCgroup::Impl : JobState {};

namespace {
// A template, because JobCgroup::Impl is private and can't be named here.
template <typename Ptr>
JobState& state(const Ptr& impl) {
    if (!impl) throw SysError("cgroup: use of a moved-from JobCgroup", EINVAL);
    return *impl;
}
}  // namespace

JobCgroup::JobCgroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
JobCgroup::JobCgroup(JobCgroup&&) noexcept = default;

JobCgroup& JobCgroup::operator=(JobCgroup&& other) noexcept {
    if (this != &other) {
        if (impl_) {
            try {
                impl_->remove();
            } catch (...) {  // same contract as the destructor
            }
        }
        impl_ = std::move(other.impl_);
    }
    return *this;
}

JobCgroup::~JobCgroup() {
    if (!impl_) return;
    try {
        impl_->remove();
    } catch (...) {  // best effort: a destructor must not throw; crash recovery cleans up later
    }
}

JobCgroup JobCgroup::create(const CgroupConfig& config, const std::string& name, const CgroupLimits& limits) {
    validate_job_name(name);
    auto comps = parent_components(config.parent);
    std::string root = normalize_root(config.root);
    uint64_t quota = limits.cpus == 0 ? 0 : cpu_quota_us(limits.cpus);

    auto impl = std::make_unique<Impl>();
    impl->version = resolve_version(config);
    impl->name = name;
    Impl& im = *impl;
    // From here on the destructor removes whatever was created if a step fails.
    JobCgroup cg(std::move(impl));

    auto make_job_dir = [&](UniqueFd parent, const std::string& parent_path) -> Dir& {
        std::string path = parent_path + "/" + name;
        if (::mkdirat(parent.get(), name.c_str(), 0755) != 0) {
            if (errno == EEXIST) throw SysError("cgroup: job cgroup " + path + " already exists", EEXIST);
            throw_errno("cgroup: mkdir " + path);
        }
        Dir& d = im.dirs.emplace_back();
        d.path = path;
        d.parent = std::move(parent);
        d.fd = open_subdir(d.parent.get(), name.c_str());
        if (!d.fd) throw_errno("cgroup: open " + path);
        return d;
    };

    if (im.version == CgroupVersion::V2) {
        {
            UniqueFd rootfd = open_dir(root.c_str(), O_NOFOLLOW);
            check_cgroup2(rootfd.get(), root);
        }
        // cpu only when asked for: enabling it fails on hosts with RT tasks outside the root.
        std::vector<std::string> wanted{"memory", "pids"};
        if (quota) wanted.emplace_back("cpu");
        UniqueFd parent = open_parent(root, comps, true, [&](int fd, const std::string& path) {
            enable_controllers(fd, path, wanted);
        });
        std::string parent_path = root + "/" + config.parent;
        Dir& d = make_job_dir(std::move(parent), parent_path);
        auto have = split(read_at(d.fd.get(), d.path, "cgroup.controllers"), " \n");
        d.memory = contains(have, "memory");
        d.pids = contains(have, "pids");
        d.cpu = contains(have, "cpu");
        cg.set_limits(limits);
        return cg;
    }

    auto hs = require_v1(root);
    if (quota && !has_v1(hs, &V1Hierarchy::cpu))
        throw SysError("cgroup: no cgroup v1 cpu hierarchy mounted under " + root + "; can't set a cpu limit", ENOTSUP);
    for (const auto& h : hs) {
        UniqueFd parent = open_parent(h.mount, comps, true, nullptr);
        Dir& d = make_job_dir(std::move(parent), h.mount + "/" + config.parent);
        d.memory = h.memory;
        d.pids = h.pids;
        d.cpu = h.cpu;
        d.freezer = h.freezer;
    }
    cg.set_limits(limits);
    return cg;
}

void JobCgroup::set_limits(const CgroupLimits& limits) {
    JobState& s = state(impl_);
    if (s.removed) throw SysError("cgroup: set limits on removed job " + s.name, ENOENT);
    uint64_t quota = limits.cpus == 0 ? 0 : cpu_quota_us(limits.cpus);
    if (s.version == CgroupVersion::V2) {
        const Dir& d = s.dirs.at(0);
        auto need = [&](bool ok, const char* ctl, const char* limit) {
            if (!ok)
                throw SysError(std::string("cgroup: the ") + ctl + " controller isn't available under " + d.path +
                                   "; can't set a " + limit + " limit",
                               ENOTSUP);
        };
        if (limits.memory_bytes) {
            need(d.memory, "memory", "memory");
            write_at(d.fd.get(), d.path, "memory.max", std::to_string(limits.memory_bytes));
            // No swap escape: absent when swap accounting is off.
            if (exists_at(d.fd.get(), d.path, "memory.swap.max")) write_at(d.fd.get(), d.path, "memory.swap.max", "0");
        }
        if (limits.pids_max) {
            need(d.pids, "pids", "pids");
            write_at(d.fd.get(), d.path, "pids.max", std::to_string(limits.pids_max));
        }
        if (quota) {
            need(d.cpu, "cpu", "cpu");
            write_at(d.fd.get(), d.path, "cpu.max", std::to_string(quota) + " " + std::to_string(kCpuPeriodUs));
        }
        return;
    }
    if (limits.memory_bytes) {
        const Dir& d = s.role(&Dir::memory, "memory");
        std::string v = std::to_string(limits.memory_bytes);
        // memory+swap, so swapping out doesn't escape the limit; absent without swap
        // accounting. memsw must stay >= memory, so order the writes by direction.
        bool memsw = exists_at(d.fd.get(), d.path, "memory.memsw.limit_in_bytes");
        uint64_t cur = read_u64_at(d.fd.get(), d.path, "memory.limit_in_bytes");
        if (memsw && limits.memory_bytes > cur) write_at(d.fd.get(), d.path, "memory.memsw.limit_in_bytes", v);
        write_at(d.fd.get(), d.path, "memory.limit_in_bytes", v);
        if (memsw && limits.memory_bytes <= cur) write_at(d.fd.get(), d.path, "memory.memsw.limit_in_bytes", v);
    }
    if (limits.pids_max) {
        const Dir& d = s.role(&Dir::pids, "pids");
        write_at(d.fd.get(), d.path, "pids.max", std::to_string(limits.pids_max));
    }
    if (quota) {
        const Dir& d = s.role(&Dir::cpu, "cpu");
        write_at(d.fd.get(), d.path, "cpu.cfs_period_us", std::to_string(kCpuPeriodUs));
        write_at(d.fd.get(), d.path, "cpu.cfs_quota_us", std::to_string(quota));
    }
}

CgroupVersion JobCgroup::version() const { return state(impl_).version; }

int JobCgroup::v2_dir_fd() const {
    if (!impl_ || impl_->version != CgroupVersion::V2 || impl_->removed || impl_->dirs.empty()) return -1;
    return impl_->dirs[0].fd.get();
}

void JobCgroup::attach(pid_t pid) {
    JobState& s = state(impl_);
    if (s.removed) throw SysError("cgroup: attach to removed job " + s.name, ENOENT);
    if (pid <= 0) throw SysError("cgroup: attach: invalid pid", EINVAL);
    for (const auto& d : s.dirs) write_at(d.fd.get(), d.path, "cgroup.procs", std::to_string(pid));
}

bool JobCgroup::oom_killed() const {
    const JobState& s = state(impl_);
    if (s.version == CgroupVersion::V2) {
        const Dir* d = s.find(&Dir::memory);
        if (!d) return false;  // no memory controller: no memory limit could have killed
        return read_keyed_at(d->fd.get(), d->path, "memory.events", "oom_kill") > 0;
    }
    const Dir& d = s.role(&Dir::memory, "memory");
    // "oom_kill N" since 4.13; older kernels only count hitting the limit.
    if (auto n = keyed_value(read_at(d.fd.get(), d.path, "memory.oom_control"), "oom_kill")) return *n > 0;
    return read_u64_at(d.fd.get(), d.path, "memory.failcnt") > 0;
}

bool JobCgroup::pids_limit_hit() const {
    const JobState& s = state(impl_);
    const Dir* d = s.find(&Dir::pids);
    if (!d) {
        if (s.version == CgroupVersion::V2) return false;  // no pids controller, no pids limit
        throw SysError("cgroup: job " + s.name + " has no pids cgroup", ENOENT);
    }
    return read_keyed_at(d->fd.get(), d->path, "pids.events", "max") > 0;
}

std::optional<uint64_t> JobCgroup::memory_peak() const {
    const JobState& s = state(impl_);
    const Dir* d = s.find(&Dir::memory);
    if (!d) return std::nullopt;
    const char* file = s.version == CgroupVersion::V2 ? "memory.peak" : "memory.max_usage_in_bytes";
    if (!exists_at(d->fd.get(), d->path, file)) return std::nullopt;  // memory.peak: kernel >= 5.19
    return read_u64_at(d->fd.get(), d->path, file);
}

void JobCgroup::kill_all() { state(impl_).kill_all(); }
void JobCgroup::remove() { state(impl_).remove(); }

// ---- crash recovery -----------------------------------------------------------------------

namespace {

// Calls fn(parent fd, parent path) for each existing parent directory of this daemon.
CgroupVersion for_each_parent(const CgroupConfig& config,
                              const std::function<void(UniqueFd, const std::string&)>& fn) {
    auto comps = parent_components(config.parent);
    std::string root = normalize_root(config.root);
    CgroupVersion version = resolve_version(config);
    if (version == CgroupVersion::V2) {
        {
            UniqueFd rootfd = open_dir(root.c_str(), O_NOFOLLOW);
            check_cgroup2(rootfd.get(), root);
        }
        UniqueFd parent = open_parent(root, comps, false, nullptr);
        if (parent) fn(std::move(parent), root + "/" + config.parent);
        return version;
    }
    for (const auto& h : require_v1(root)) {
        UniqueFd parent = open_parent(h.mount, comps, false, nullptr);
        if (parent) fn(std::move(parent), h.mount + "/" + config.parent);
    }
    return version;
}

}  // namespace

std::vector<std::string> list_job_cgroups(const CgroupConfig& config) {
    std::set<std::string> names;
    for_each_parent(config, [&](UniqueFd parent, const std::string& path) {
            // Only what a job could be named; anything else isn't ours to recover.
            for (auto& e : list_directory(parent.get(), "cgroup " + path))
                if (e.type == DT_DIR && valid_job_name(e.name)) names.insert(std::move(e.name));
    });
    return {names.begin(), names.end()};
}

void remove_job_cgroup(const CgroupConfig& config, const std::string& name) {
    validate_job_name(name);
    auto impl = std::make_unique<JobState>();
    impl->name = name;
    impl->version = for_each_parent(config, [&](UniqueFd parent, const std::string& path) {
            UniqueFd fd = open_subdir(parent.get(), name.c_str());
            if (!fd) {
                if (errno == ENOENT) return;
                throw_errno("cgroup: open " + path + "/" + name);
            }
            Dir& d = impl->dirs.emplace_back();
            d.path = path + "/" + name;
            d.parent = std::move(parent);
            d.fd = std::move(fd);
            d.freezer = exists_at(d.fd.get(), d.path, "freezer.state");
    });
    impl->remove();
}

}  // namespace hermetic::sandbox
