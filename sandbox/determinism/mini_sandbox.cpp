#include "sandbox/determinism/mini_sandbox.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "common/fd_passing.hpp"
#include "common/io.hpp"
#include "common/sys_error.hpp"
#include "sandbox/control_channel.hpp"
#include "sandbox/determinism/determinism.hpp"
#include "sandbox/etc_files.hpp"
#include "sandbox/process_util.hpp"
#include "sandbox/seccomp_install.hpp"

namespace hermetic::sandbox::determinism {

namespace {

using Clock = std::chrono::steady_clock;
constexpr uid_t kHostIdBase = 2'800'000;  // host ids of the mini sandboxes (never real users)

void must(long rc, const std::string& what) {
    if (rc < 0) throw_errno(what);
}

void bind_ro(const std::string& src, const std::string& dst) {
    must(::mount(src.c_str(), dst.c_str(), nullptr, MS_BIND | MS_REC, nullptr), "bind " + src);
    must(::mount(nullptr, dst.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr),
         "remount read-only " + dst);
}

void tmpfs(const std::string& dst, const std::string& opts, unsigned long flags = MS_NOSUID | MS_NODEV) {
    must(::mount("tmpfs", dst.c_str(), "tmpfs", flags, opts.c_str()), "tmpfs " + dst);
}

void write_file(const std::string& path, const std::string& content, mode_t mode) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
    if (!fd) throw_errno("create " + path);
    write_all(fd.get(), content);
}

std::vector<std::string> contract_env(const MiniSandboxOptions& o) {
    std::vector<std::string> env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/build", "TMPDIR=/tmp", "LANG=C.UTF-8",
                                    "TZ=UTC", "SOURCE_DATE_EPOCH=" + std::to_string(o.config.epoch), "OUT=/out"};
    env.insert(env.end(), o.extra_env.begin(), o.extra_env.end());
    return env;
}

// The build process: what build_exec.cpp does, with the engine's two hooks.
[[noreturn]] void build_main(const MiniSandboxOptions& o, const policy::CompiledPolicy& policy, int out_w, int err_w,
                             int handoff) noexcept {
    try {
        must(::setsid(), "setsid");
        UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        int out = ::fcntl(out_w, F_DUPFD_CLOEXEC, 3), err = ::fcntl(err_w, F_DUPFD_CLOEXEC, 3);
        handoff = ::fcntl(handoff, F_DUPFD_CLOEXEC, 3);
        if (!null || ::dup2(null.get(), 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) throw_errno("stdio");
        close_fds_except({0, 1, 2, handoff});
        must(::chdir("/build"), "chdir /build");
        ::umask(022);
        must(::personality(static_cast<unsigned long>(PER_LINUX) | ADDR_NO_RANDOMIZE), "personality");
        must(::setresgid(1000, 1000, 1000), "setresgid");
        must(::setresuid(1000, 1000, 1000), "setresuid");
        must(::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs");
        if (o.determinism) {
            prepare_build_process();                       // hook 1: before the filters
            install_filters_and_hand_off(handoff, policy);  // hook 2: the filters, the listener to the supervisor
        } else {
            install_filters(policy).reset();
        }
        std::vector<std::string> env = contract_env(o);
        std::vector<char*> argv, envp;
        for (const auto& a : o.argv) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
        envp.push_back(nullptr);
        ::execve(argv[0], argv.data(), envp.data());
        std::string msg = "mini sandbox: execve " + o.argv[0] + ": " + errno_string(errno) + "\n";
        (void)!::write(2, msg.data(), msg.size());
        ::_exit(127);
    } catch (const std::exception& e) {
        std::string msg = std::string("mini sandbox: build setup: ") + e.what() + "\n";
        (void)!::write(2, msg.data(), msg.size());
        ::_exit(125);
    }
}

void make_root(const MiniSandboxOptions& o, int fuse) {
    must(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), "make / private");
    // Held before /tmp is covered: the directory may live under /tmp (a checkout there).
    UniqueFd host_dir;
    if (!o.host_dir_ro.empty()) {
        host_dir.reset(::open(o.host_dir_ro.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!host_dir) throw_errno("open " + o.host_dir_ro);
    }
    tmpfs("/tmp", "size=16m,mode=755");
    must(::chdir("/tmp"), "chdir new root");
    for (const char* name : {"usr", "etc", "bin", "sbin", "lib", "lib32", "lib64", "libx32"}) {
        std::string host = std::string("/") + name;
        struct stat st{};
        if (::lstat(host.c_str(), &st) != 0) continue;
        if (S_ISLNK(st.st_mode)) {
            char target[256];
            ssize_t n = ::readlink(host.c_str(), target, sizeof target - 1);
            if (n < 0) throw_errno("readlink " + host);
            target[n] = 0;
            must(::symlink(target, name), std::string("symlink ") + name);
        } else if (S_ISDIR(st.st_mode)) {
            must(::mkdir(name, 0755), std::string("mkdir ") + name);
            bind_ro(host, name);
        }
    }
    if (!o.host_dir_ro.empty()) {
        must(::mkdir("host", 0755), "mkdir host");
        bind_ro("/proc/self/fd/" + std::to_string(host_dir.get()), "host");
    }
    must(::mkdir(".stage", 0700), "mkdir stage");
    for (const auto& [name, content] : generated_etc_files()) {
        std::string target = "etc/" + name;
        struct stat st{};
        if (::lstat(target.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
        std::string staged = ".stage/" + name;
        write_file(staged, content, 0644);
        bind_ro(staged, target);
    }
    for (const char* d : {"build", "out"}) {
        must(::mkdir(d, 0755), std::string("mkdir ") + d);
        tmpfs(d, "size=2g,mode=755,uid=1000,gid=1000");
    }
    must(::mkdir("tmp", 0755), "mkdir tmp");
    tmpfs("tmp", "size=2g,mode=1777");
    must(::mkdir("dev", 0755), "mkdir dev");
    tmpfs("dev", "size=64k,mode=755", MS_NOSUID | MS_NOEXEC);
    for (const char* d : {"null", "zero", "full", "random", "urandom"}) {
        std::string target = std::string("dev/") + d;
        write_file(target, "", 0644);
        must(::mount((std::string("/dev/") + d).c_str(), target.c_str(), nullptr, MS_BIND, nullptr), "bind " + target);
    }
    for (auto [to, from] : {std::pair{"/proc/self/fd", "dev/fd"}, {"/proc/self/fd/0", "dev/stdin"},
                            {"/proc/self/fd/1", "dev/stdout"}, {"/proc/self/fd/2", "dev/stderr"}})
        must(::symlink(to, from), std::string("symlink ") + from);
    must(::mkdir("dev/shm", 01777), "mkdir dev/shm");
    tmpfs("dev/shm", "size=1g,mode=1777");
    must(::mount(nullptr, "dev", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC, nullptr), "dev ro");
    must(::mkdir("proc", 0555), "mkdir proc");
    must(::mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr), "mount proc");
    must(::mkdir("sys", 0755), "mkdir sys");
    tmpfs("sys", "size=64k,mode=755", MS_NOSUID | MS_NODEV | MS_NOEXEC);
    for (const char* d : {"sys/devices", "sys/devices/system", "sys/devices/system/cpu"}) must(::mkdir(d, 0755), d);
    uint32_t cpus = std::max<uint32_t>(1, o.config.cpus);
    std::string range = cpus == 1 ? "0\n" : "0-" + std::to_string(cpus - 1) + "\n";
    for (const char* f : {"online", "possible", "present"})
        write_file(std::string("sys/devices/system/cpu/") + f, range, 0444);
    must(::mount(nullptr, "sys", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr),
         "sys ro");

    // The source tree, in the order given (directory order on disk follows it).
    for (const auto& [rel, content] : o.files) {
        std::string path = "build/" + rel;
        if (!rel.empty() && rel.back() == '/') {
            must(::mkdir(path.c_str(), 0755), "mkdir " + path);
        } else {
            write_file(path, content, 0644);
        }
        must(::lchown(path.c_str(), 1000, 1000), "chown " + path);
        timespec times[2] = {{o.config.epoch, 0}, {o.config.epoch, 0}};
        must(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), "utimensat " + path);
    }

    // Hook 3: the served files, over /dev/{u,}random and the /proc files.
    if (fuse >= 0) mount_served_files(fuse, ".", "tmp");

    for (const auto& [name, content] : generated_etc_files()) (void)::unlink((".stage/" + name).c_str());
    (void)::rmdir(".stage");
    must(::syscall(SYS_pivot_root, ".", "."), "pivot_root");
    must(::umount2(".", MNT_DETACH), "detach old root");
    must(::chdir("/"), "chdir /");
    must(::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr), "root ro");
}

void enter_time_namespace() {
    must(::unshare(CLONE_NEWTIME), "unshare(CLONE_NEWTIME)");
    std::string offsets;
    for (auto [name, clk] : {std::pair{"monotonic", CLOCK_MONOTONIC}, {"boottime", CLOCK_BOOTTIME}}) {
        timespec now{};
        ::clock_gettime(clk, &now);
        offsets += std::string(name) + " " + std::to_string(1 - static_cast<long long>(now.tv_sec)) + " 0\n";
    }
    must(::prctl(PR_SET_DUMPABLE, 1), "dumpable");
    write_file_at(AT_FDCWD, "/proc/self/timens_offsets", offsets);
    must(::prctl(PR_SET_DUMPABLE, 0), "not dumpable");
}

[[noreturn]] void init_main(const MiniSandboxOptions& o, const policy::CompiledPolicy& policy, int control, int out_w,
                            int err_w, int handoff) noexcept {
    try {
        if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) ::_exit(125);
        std::vector<UniqueFd> fds;
        char go = 0;
        if (recv_with_fds(control, &go, 1, fds) != 1 || go != 'G') ::_exit(125);
        must(::setresgid(0, 0, 0), "setresgid 0");
        must(::setgroups(0, nullptr), "setgroups");  // the test process's groups stay outside
        must(::setresuid(0, 0, 0), "setresuid 0");
        must(::sethostname("hermetic", 8), "sethostname");
        must(::setdomainname("(none)", 6), "setdomainname");
        make_root(o, fds.empty() ? -1 : fds[0].get());
        fds.clear();
        enter_time_namespace();
        if (o.cpu) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(*o.cpu, &set);
            must(::sched_setaffinity(0, sizeof set, &set), "sched_setaffinity");
        }
        pid_t build = ::fork();
        if (build < 0) throw_errno("fork build");
        if (build == 0) build_main(o, policy, out_w, err_w, handoff);
        ::close(handoff);
        ::close(out_w);
        ::close(err_w);
        int status = 0;
        for (;;) {
            int st;
            pid_t p = ::waitpid(-1, &st, __WALL);
            if (p < 0 && errno == EINTR) continue;
            if (p < 0) break;
            if (p == build) {
                status = st;
                break;
            }
        }
        ::kill(-1, SIGKILL);
        while (::waitpid(-1, nullptr, __WALL) > 0 || errno == EINTR) {
        }
        ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    } catch (const std::exception& e) {
        std::string msg = std::string("mini sandbox: init: ") + e.what() + "\n";
        (void)!::write(err_w, msg.data(), msg.size());
        ::_exit(125);
    }
}

// The build's policy: config.policy if set, else the baseline (+ determinism).
std::shared_ptr<const policy::Policy> policy_of(const MiniSandboxOptions& o) {
    if (o.config.policy) return o.config.policy;
    static const auto with = std::make_shared<const policy::Policy>(with_determinism(policy::baseline_policy()));
    static const auto without = std::make_shared<const policy::Policy>(policy::baseline_policy());
    return o.determinism ? with : without;
}

void write_proc(pid_t pid, const char* file, const std::string& s) {
    write_file_at(AT_FDCWD, ("/proc/" + std::to_string(pid) + "/" + file).c_str(), s);
}

}  // namespace

MiniSandboxResult run_mini_sandbox(const MiniSandboxOptions& o) {
    // Compiled as the daemon compiles a job's (policy::CompileOptions' default:
    // denials routed to the supervisor when there is one; cached by its text).
    DeterminismConfig config = o.config;
    config.policy = policy_of(o);
    const policy::CompiledPolicy policy = policy::compile(*config.policy);
    bool listener = false;
    for (const auto& f : policy.filters) listener = listener || f.needs_listener;
    if (listener != o.determinism)
        throw std::invalid_argument(listener ? "mini sandbox: the policy needs the determinism supervisor"
                                             : "mini sandbox: the policy gives the supervisor nothing to do");
    FdPair out = make_pipe(O_CLOEXEC), err = make_pipe(O_CLOEXEC);
    SocketPair control = make_socketpair(), handoff = make_socketpair();
    MiniSandboxResult result;
    auto t0 = Clock::now();
    long pid = ::syscall(SYS_clone,
                         CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | SIGCHLD,
                         0, 0, 0, 0);
    if (pid < 0) throw_errno("clone the mini sandbox");
    if (pid == 0) {
        control.a.reset();
        handoff.a.reset();
        init_main(o, policy, control.b.get(), out.write.get(), err.write.get(), handoff.b.get());
    }
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    control.b.reset();
    handoff.b.reset();
    out.write.reset();
    err.write.reset();
    std::string out_s, err_s;
    std::thread rd_out([&] { out_s = read_to_end(out.read.get(), 1 << 30); });
    std::thread rd_err([&] { err_s = read_to_end(err.read.get(), 1 << 30); });
    std::string harness;  // our own messages (err_s belongs to its reader thread)
    CollectingSink sink;
    std::optional<Supervisor> sup;
    auto kill_init = [&] {
        ::kill(static_cast<pid_t>(pid), SIGKILL);
    };
    try {
        const uid_t root_host = kHostIdBase + static_cast<uid_t>(::getpid() % 50000) * 2;
        write_proc(static_cast<pid_t>(pid), "uid_map", "0 " + std::to_string(root_host) + " 1\n1000 " + std::to_string(root_host + 1) + " 1\n");
        write_proc(static_cast<pid_t>(pid), "gid_map", "0 " + std::to_string(root_host) + " 1\n1000 " + std::to_string(root_host + 1) + " 1\n");
        UniqueFd fuse;
        if (o.determinism && o.policy_ahead) {
            sup.emplace();
            sup->prepare_policy(*config.policy);
            DeterminismConfig c = config;
            c.policy.reset();
            c.policy_prepared = true;
            if (c.policy_digest.empty()) c.policy_digest = policy.digest;
            sup->configure(c, sink);
            fuse = sup->open_served_files(static_cast<pid_t>(pid));
        } else if (o.determinism) {
            sup.emplace(config, sink);
            fuse = sup->open_served_files(static_cast<pid_t>(pid));  // for hook 3
        }
        int f = fuse.get();
        send_with_fds(control.a.get(), "G", fuse ? std::span<const int>(&f, 1) : std::span<const int>());
        fuse.reset();
        if (o.determinism) {
            // Hook 4: wait for the build's hand-off (or init's end), then attach.
            pollfd p[2] = {{handoff.a.get(), POLLIN, 0}, {pidfd.get(), POLLIN, 0}};
            if (::poll(p, 2, static_cast<int>(std::chrono::milliseconds(o.timeout).count())) <= 0 || !(p[0].revents & POLLIN))
                throw std::runtime_error("the build never handed off its listener");
            sup->start_from_handoff(handoff.a.get());
        }
    } catch (const std::exception& e) {
        harness += std::string("mini sandbox: ") + e.what() + "\n";
        kill_init();
    }
    pollfd p{pidfd.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(o.timeout).count())) <= 0) {
        harness += "mini sandbox: timed out\n";
        kill_init();
    }
    int status = 0;
    struct rusage ru{};
    while (::wait4(static_cast<pid_t>(pid), &status, __WALL, &ru) < 0 && errno == EINTR) {
    }
    result.wall_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    result.build_cpu_ms = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0;
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (sup) result.summary = sup->stop();  // hook 5: after every build process is gone
    sup.reset();
    rd_out.join();
    rd_err.join();
    result.out = std::move(out_s);
    result.err = std::move(err_s) + harness;
    result.deviations = sink.take();
    return result;
}

}  // namespace hermetic::sandbox::determinism
