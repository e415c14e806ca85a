// The attack suite (issue 7): hostile builds, each run as a real job through a
// real hermeticd and hermeticctl, each attack refused, and each refusal that a
// named policy rule makes found in the job's audit as a "denied" event.
//
// The attacks live in one probe, tests/probes/attack.c, one subcommand per
// group; it prints "ok NAME DETAIL [audit=SYSCALL]", "FAIL NAME DETAIL" or
// "skip NAME REASON" per check. Here every FAIL is a test failure, every
// audit=SYSCALL must match a denied event of the job with the errno printed,
// and each group's must-have checks are named, so a probe that silently stops
// checking something fails too. What daemon_isolation_test.cpp and
// daemon_policy_audit_test.cpp already cover is not repeated. docs/threat-model.md
// maps each claim to its test.
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/test_daemon.hpp"

using namespace hermetic::test;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr long kEpoch = 315532800;  // the test daemon's default epoch (1980-01-01)

struct Check {
    std::string verdict, name, detail, audit;  // audit: the syscall of a routed denial
};

struct Job {
    ProcessResult r;
    std::string id;
    std::vector<Check> checks;
    [[nodiscard]] const Check* find(const std::string& name) const {
        for (const auto& c : checks)
            if (c.name == name) return &c;
        return nullptr;
    }
};

std::vector<Check> parse_checks(const std::string& out) {
    std::vector<Check> v;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
        std::istringstream l(line);
        Check c;
        if (!(l >> c.verdict >> c.name)) continue;
        if (c.verdict != "ok" && c.verdict != "FAIL" && c.verdict != "skip") continue;
        std::getline(l, c.detail);
        if (!c.detail.empty() && c.detail[0] == ' ') c.detail.erase(0, 1);
        auto pos = c.detail.find(" audit=");
        if (pos != std::string::npos) {
            c.audit = c.detail.substr(pos + 7);
            c.detail.erase(pos);
        }
        v.push_back(std::move(c));
    }
    return v;
}

// The host processes of a TestDaemon's sandboxes: any uid of its range (the
// even ids are each sandbox's inner root, the odd ones its build user).
std::vector<pid_t> sandbox_processes(uid_t base, uint32_t count) {
    std::vector<pid_t> out;
    DIR* d = ::opendir("/proc");
    while (dirent* e = ::readdir(d)) {
        pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
        if (pid <= 0) continue;
        struct stat st{};
        if (::stat(("/proc/" + std::string(e->d_name)).c_str(), &st) != 0) continue;
        if (st.st_uid >= base && st.st_uid < base + count) out.push_back(pid);
    }
    ::closedir(d);
    return out;
}

// (pid, start time) of `root` and all its descendants, from /proc/PID/stat.
std::map<pid_t, std::string> process_tree(pid_t root) {
    std::map<pid_t, pid_t> parent;
    std::map<pid_t, std::string> start;
    DIR* d = ::opendir("/proc");
    while (dirent* e = ::readdir(d)) {
        pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
        if (pid <= 0) continue;
        std::string stat;
        try {
            stat = read_file("/proc/" + std::string(e->d_name) + "/stat");
        } catch (...) {
            continue;
        }
        auto close = stat.rfind(')');
        if (close == std::string::npos) continue;
        std::istringstream f(stat.substr(close + 2));
        std::string field;
        std::vector<std::string> fields;
        while (f >> field) fields.push_back(field);
        if (fields.size() < 20) continue;
        parent[pid] = static_cast<pid_t>(std::stol(fields[1]));
        start[pid] = fields[19];  // starttime (field 22)
    }
    ::closedir(d);
    std::map<pid_t, std::string> tree;
    tree[root] = start[root];
    for (bool grew = true; grew;) {
        grew = false;
        for (const auto& [pid, ppid] : parent)
            if (tree.contains(ppid) && !tree.contains(pid)) {
                tree[pid] = start[pid];
                grew = true;
            }
    }
    return tree;
}

// Which of `tree` still run (same pid and start time, not a zombie).
std::vector<pid_t> still_running(const std::map<pid_t, std::string>& tree) {
    std::vector<pid_t> out;
    for (const auto& [pid, started] : tree) {
        std::string stat;
        try {
            stat = read_file("/proc/" + std::to_string(pid) + "/stat");
        } catch (...) {
            continue;
        }
        auto close = stat.rfind(')');
        std::istringstream f(stat.substr(close + 2));
        std::vector<std::string> fields;
        for (std::string x; f >> x;) fields.push_back(x);
        if (fields.size() >= 20 && fields[19] == started && fields[0] != "Z") out.push_back(pid);
    }
    return out;
}

std::string describe(const std::vector<pid_t>& pids) {
    std::string out;
    for (pid_t p : pids) {
        std::string cmd;
        try {
            cmd = read_file("/proc/" + std::to_string(p) + "/cmdline");
        } catch (...) {
        }
        std::replace(cmd.begin(), cmd.end(), '\0', ' ');
        out += std::to_string(p) + ": " + cmd + "\n";
    }
    return out;
}

class Attack : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        TestDaemonOptions o;
        // Small limits, so that hitting each one is quick.
        o.config_lines = {"tmp-size = 32M", "out-size = 32M", "output-max-files = 1000", "max-output = 16M"};
        daemon_ = std::make_unique<TestDaemon>(o);
    }
    static void TearDownTestSuite() { daemon_.reset(); }

    void SetUp() override {
        src_ = std::make_unique<TempDir>("hermetic-attack-src");
        stage_probes(src_->path(), {"attack"});
    }

    // ./attack ARGS... as a build; every check printed must hold.
    Job attack(const std::vector<std::string>& args, const std::vector<std::string>& opts = {},
               bool want_success = true) {
        std::vector<std::string> cmd = {"./attack"};
        cmd.insert(cmd.end(), args.begin(), args.end());
        Job j;
        j.r = daemon_->run(src_->path(), cmd, opts, as_test_user());
        j.id = job_id_of(j.r);
        j.checks = parse_checks(j.r.out);
        if (std::getenv("HERMETIC_ATTACK_VERBOSE")) std::cout << j.r.out << j.r.err;
        EXPECT_NE(j.id, "") << j.r.describe();
        if (want_success) {
            EXPECT_EQ(j.r.status, 0) << j.r.describe();
        }
        for (const auto& c : j.checks) {
            if (c.verdict == "FAIL") ADD_FAILURE() << "attack " << args[0] << ": " << c.name << ": " << c.detail;
            if (c.verdict == "skip") std::cout << "[ SKIPPED  ] " << c.name << ": " << c.detail << "\n";
        }
        return j;
    }

    // Every named check ran and held.
    static void expect_held(const Job& j, const std::vector<std::string>& names) {
        for (const auto& n : names) {
            const Check* c = j.find(n);
            ASSERT_NE(c, nullptr) << "check " << n << " did not run\n" << j.r.describe();
            EXPECT_EQ(c->verdict, "ok") << n << ": " << c->detail;
        }
    }

    // The job's events (and aggregates), as hermeticctl audit --json prints them.
    static std::vector<json> records(const std::string& id) {
        auto r = daemon_->ctl({"audit", id, "--json"}, as_test_user());
        EXPECT_EQ(r.status, 0) << r.describe();
        std::vector<json> out;
        std::istringstream in(r.out);
        for (std::string line; std::getline(in, line);)
            if (!line.empty()) out.push_back(json::parse(line));
        return out;
    }

    // Each check marked audit=SYSCALL has its own denied event for SYSCALL with
    // the errno the build saw (aggregated events count for any errno).
    static void expect_audited(const Job& j, size_t at_least) {
        std::map<std::pair<std::string, std::string>, uint64_t> denied;  // (syscall, value)
        std::map<std::string, uint64_t> aggregated;
        for (const json& e : records(j.id)) {
            if (e.value("action", "") != "denied") continue;
            if (e["kind"] == "event") denied[{e["syscall"].get<std::string>(), e["value"].get<std::string>()}]++;
            if (e["kind"] == "aggregate") aggregated[e["syscall"].get<std::string>()] += e["count"].get<uint64_t>();
        }
        std::map<std::pair<std::string, std::string>, uint64_t> want;
        for (const auto& c : j.checks)
            if (c.verdict == "ok" && !c.audit.empty()) want[{c.audit, "-" + c.detail.substr(0, c.detail.find(' '))}]++;
        size_t total = 0;
        for (const auto& [key, n] : want) {
            total += n;
            uint64_t have = denied[key] + aggregated[key.first];
            EXPECT_GE(have, n) << "denied events for " << key.first << " " << key.second << ": " << have << " of "
                               << n;
        }
        EXPECT_GE(total, at_least) << "too few audited refusals:\n" << j.r.out;
    }

    static std::unique_ptr<TestDaemon> daemon_;
    std::unique_ptr<TempDir> src_;
};

std::unique_ptr<TestDaemon> Attack::daemon_;

// TIOCSTI on every inherited fd, with the high bits set (CVE-2019-10063),
// TIOCLINUX (CVE-2023-28100); no /dev/tty, ptmx or console to open.
TEST_F(Attack, TerminalInjectionIsRefusedAndAudited) {
    Job j = attack({"tty"});
    expect_held(j, {"tiocsti-fd0", "tiocsti-fd1", "tiocsti-fd2", "open-dev-tty", "open-dev-ptmx", "tiocsti-high-bits",
                    "tiocsti-bit32", "tioclinux-setsel", "tioclinux-pastesel", "tioclinux-high-bits"});
    expect_audited(j, 8);
}

// x32 calls kill the caller (SIGSYS); int $0x80 gets the 64-bit twin's answer
// or the closed i386 entry's ENOSYS (skipped where int $0x80 itself faults).
TEST_F(Attack, X32CallsAreKilledAndInt80IsNoWayAround) {
    Job j = attack({"abi"});
    expect_held(j, {"x32-getpid", "x32-unshare", "x32-mount", "x32-ptrace", "x32-rt_sigaction"});
    const Check* i386 = j.find("i386");
    if (i386 == nullptr) expect_held(j, {"i386-getpid", "i386-unshare", "i386-mount", "i386-ptrace", "i386-reboot"});
}

// unshare and clone with each CLONE_NEW* flag, clone3, setns.
TEST_F(Attack, NamespacesCantBeCreatedOrEnteredAndEachRefusalIsAudited) {
    Job j = attack({"ns"});
    std::vector<std::string> names = {"clone3-newuser", "clone3-plain", "setns-user", "setns-mnt", "setns-net",
                                      "setns-pidfd-init"};
    for (const char* f : {"newns", "newcgroup", "newuts", "newipc", "newuser", "newpid", "newnet", "newtime"}) {
        names.push_back(std::string("unshare-") + f);
        names.push_back(std::string("clone-") + f);
    }
    expect_held(j, names);
    expect_audited(j, 20);
}

// mount (including a cgroup v1 hierarchy: CVE-2022-0492), umount2, pivot_root,
// chroot and every call of the new mount API.
TEST_F(Attack, MountsAndTheNewMountApiAreRefusedAndAudited) {
    Job j = attack({"mount"});
    expect_held(j, {"mount-tmpfs", "mount-remount-rw", "mount-bind", "mount-cgroup-v1", "umount2-proc", "umount2-root",
                    "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount", "fspick", "open_tree-clone", "move_mount",
                    "mount_setattr"});
    expect_audited(j, 17);
}

// A sentinel file on the host, outside everything bound into the sandbox: not
// by its path, not through /proc/1/root or /proc/*/cwd, not by ".." from any
// descriptor the build holds or opens, not by its file handle.
TEST_F(Attack, TheOldRootAndHostOnlyFilesAreUnreachable) {
    char dir[] = "/var/tmp/hermetic-attack-sentinel-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    ASSERT_EQ(::chmod(dir, 0755), 0);
    std::string sentinel = std::string(dir) + "/sentinel";
    write_file(sentinel, "host secret\n", 0644);
    struct {
        file_handle fh;
        unsigned char bytes[128];
    } h{};
    h.fh.handle_bytes = sizeof h.bytes;
    int mount_id = 0;
    ASSERT_EQ(::name_to_handle_at(AT_FDCWD, sentinel.c_str(), &h.fh, &mount_id, 0), 0) << std::strerror(errno);
    std::string hex;
    for (unsigned i = 0; i < h.fh.handle_bytes; ++i) {
        char b[3];
        std::snprintf(b, sizeof b, "%02x", h.bytes[i]);
        hex += b;
    }
    Job j = attack({"escape", sentinel, hex, std::to_string(h.fh.handle_type)});
    ::unlink(sentinel.c_str());
    ::rmdir(dir);
    expect_held(j, {"sentinel-by-path", "sentinel-by-proc1-root", "sentinel-by-proc-self-root", "sentinel-by-proc1-cwd",
                    "readlink-proc1-root", "opendir-proc1-root", "mountinfo-sentinel-dir", "dotdot-from-fd0",
                    "open_by_handle_at-/", "open_by_handle_at-/usr", "name_to_handle_at"});
    size_t walks = 0;
    for (const auto& c : j.checks) walks += c.name.starts_with("dotdot-from-fd") && c.verdict == "ok";
    EXPECT_GE(walks, 10u) << j.r.out;  // stdio plus every directory the probe opened
    expect_audited(j, 5);
    EXPECT_EQ(j.r.out.find("host secret"), std::string::npos);
}

// Only 0-2 inherited; chdir("/proc/self/fd/N") leads nowhere outside
// (CVE-2024-21626); init's descriptors and cwd are not ours.
TEST_F(Attack, OnlyStdioIsInheritedAndProcSelfFdLeadsNowhere) {
    Job j = attack({"fds"});
    expect_held(j, {"proc-self-fd", "fds-above-2", "fd0-kind", "fd1-kind", "fd2-kind", "chdir-proc-self-fd0",
                    "chdir-proc-self-fd1", "chdir-proc-self-fd2", "chdir-proc-self-fd-dir", "opendir-proc1-fd",
                    "chdir-proc1-cwd", "chdir-proc1-fd3"});
}

// CVE-2019-5736: /proc/*/exe never opens for writing, init's exe not even for
// reading, and neither hermeticd nor hermetic-runner is visible inside.
TEST_F(Attack, ExecutablesAreNotWritableAndTheDaemonIsInvisible) {
    Job j = attack({"exe", hermeticd_path(), std::string(HERMETIC_BUILD_DIR) + "/hermetic-runner"});
    expect_held(j, {"write-proc-self-exe", "write-proc1-exe", "read-proc1-exe", "readlink-proc1-exe",
                    "write-proc1-exe-via-self", "write-proc-exe", "write-bin-sh", "host-binary-0", "host-binary-1"});
}

// The same when the directory holding hermeticd and hermetic-runner is bound
// into every sandbox (as the host's /usr is, under an installation in
// /usr/local): both are there, but behind empty files of mode 0.
TEST(AttackDaemon, TheDaemonsBinariesAreHiddenEvenWhenBoundIn) {
    // A build directory under /tmp (a checkout there) is covered by the
    // sandbox's private /tmp whatever is bound: nothing to look at then.
    if (std::string(HERMETIC_BUILD_DIR).starts_with("/tmp/"))
        GTEST_SKIP() << "the build directory is under /tmp, which every sandbox replaces with its own";
    TestDaemonOptions o;
    o.config_lines = {std::string("ro-bind = ") + HERMETIC_BUILD_DIR};
    TestDaemon d(o);
    TempDir src("hermetic-attack-src");
    stage_probes(src.path(), {"attack"});
    auto r = d.run(src.path(), {"./attack", "exe", hermeticd_path(), std::string(HERMETIC_BUILD_DIR) + "/hermetic-runner"},
                   {}, as_test_user());
    EXPECT_EQ(r.status, 0) << r.describe();
    auto checks = parse_checks(r.out);
    std::map<std::string, Check> by_name;
    for (const auto& c : checks) by_name[c.name] = c;
    for (const char* n : {"host-binary-0", "host-binary-1"}) {
        ASSERT_TRUE(by_name.contains(n)) << r.out;
        EXPECT_EQ(by_name[n].verdict, "ok") << n << ": " << by_name[n].detail;
        EXPECT_NE(by_name[n].detail, "absent") << n << ": the bind did not happen";
    }
    // The rest of the bound directory is there, as configured.
    auto ls = d.run(src.path(), {"/bin/sh", "-c", std::string("test -s ") + HERMETIC_BUILD_DIR + "/hermeticctl && echo ok"},
                    {}, as_test_user());
    EXPECT_EQ(ls.out, "ok\n") << ls.describe();
}

// ptrace (attach, seize, peek, TRACEME), process_vm_readv/writev, kcmp,
// pidfd_getfd, /proc/1/mem and friends; init survives SIGKILL from the build.
TEST_F(Attack, OtherProcessesCantBeTracedReadOrKilled) {
    Job j = attack({"ptrace"});
    expect_held(j, {"ptrace-attach-init", "ptrace-seize-init", "ptrace-attach-child", "ptrace-seize-child",
                    "ptrace-peek-child", "process_vm_readv-child", "process_vm_writev-child", "process_vm_readv-init",
                    "kcmp", "pidfd_getfd-child", "ptrace-traceme", "open-proc1-mem", "open-proc1-mem-rw",
                    "open-proc1-environ", "kill-init", "term-init", "init-parent-invisible"});
    expect_audited(j, 11);
    // And the job ended as the build did, not as a dead init would have it.
    EXPECT_EQ(j.r.status, 0);
}

TEST_F(Attack, IoUringIsRefusedAndAudited) {
    Job j = attack({"iouring"});
    expect_held(j, {"io_uring_setup", "io_uring_enter", "io_uring_register"});
    expect_audited(j, 3);
}

// no_new_privs and an unmapped host root: a setuid-root program runs with our euid.
TEST_F(Attack, SetuidBinariesDontRaiseTheEffectiveUid) {
    Job j = attack({"setuid"});
    bool any = false;
    for (const auto& c : j.checks) any = any || (c.name.starts_with("setuid:") && c.verdict == "ok");
    if (!any) expect_held(j, {"setuid"});  // reported as skipped: none in this root
    expect_held(j, {"su-c-id"});
}

// Keyrings, bpf, perf, userfaultfd, modules, kexec, reboot, swap, syslog,
// clock setting, I/O ports, LDT, quotas, fanotify, vhangup: each its errno, each audited.
TEST_F(Attack, KernelGlobalStateIsRefusedAndEachRefusalIsAudited) {
    Job j = attack({"kernel"});
    expect_held(j, {"keyctl", "add_key", "request_key", "bpf-map-create", "bpf-prog-load", "perf_event_open",
                    "userfaultfd", "dev-userfaultfd", "init_module", "finit_module", "delete_module", "kexec_load",
                    "kexec_file_load", "reboot-cad-off", "swapon", "swapoff", "syslog-read-all", "dev-kmsg",
                    "clock_settime", "settimeofday", "adjtimex-offset", "adjtimex-read", "clock_adjtime", "acct",
                    "iopl", "ioperm", "modify_ldt", "sethostname"});
    expect_audited(j, 30);
    std::set<std::string> audited;
    for (const json& e : records(j.id))
        if (e.value("action", "") == "denied" && e.contains("syscall")) audited.insert(e["syscall"].get<std::string>());
    for (const char* s : {"keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd", "init_module",
                          "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot", "swapon",
                          "swapoff", "syslog", "clock_settime", "settimeofday", "adjtimex"})
        EXPECT_TRUE(audited.contains(s)) << "no denied event for " << s;
}

// sysrq-trigger, kcore, keys (and the rest of the masked set) give nothing;
// kernel knobs are read-only; no device node can be made; no cgroup file
// system and no release_agent anywhere (CVE-2022-0492).
TEST_F(Attack, ProcIsMaskedDevicesCantBeMadeAndCgroupfsIsUnreachable) {
    Job j = attack({"proc"});
    expect_held(j, {"sysrq-trigger-write", "masked:/proc/kcore", "masked:/proc/keys", "masked:/proc/sysrq-trigger",
                    "masked:/proc/kallsyms", "write:/proc/sys/kernel/core_pattern", "write:/proc/sys/kernel/modprobe",
                    "write:/proc/cpuinfo", "write:/proc/sys/kernel/random/uuid", "chmod-served", "truncate-served",
                    "mknod-char-tmp", "mknod-block-tmp", "mknod-char-build", "mknod-char-shm", "mknod-dev",
                    "no-cgroupfs", "no-release-agent", "sys-fs-cgroup", "proc-self-cgroup"});
}

// Every family but unix, inet, inet6 and netlink-route: EAFNOSUPPORT, audited;
// the daemon's socket can't be reached by its path.
TEST_F(Attack, ExoticSocketFamiliesAndTheDaemonSocketAreRefused) {
    Job j = attack({"sockets", daemon_->socket()});
    expect_held(j, {"socket-packet", "socket-bluetooth", "socket-vsock", "socket-alg", "socket-key", "socket-xdp",
                    "socket-can", "socket-tipc", "socket-unix-high-bits", "socket-af1000", "socketpair-packet",
                    "netlink-sock_diag", "netlink-audit", "netlink-uevent", "netlink-netfilter", "netlink-route-high-bits",
                    "netlink-route", "inet6", "socket-inet-raw", "connect-daemon-socket-0", "connect-daemon-socket-1"});
    expect_audited(j, 40);
}

// The build may add filters of its own, never a listener; and no filter of its
// own makes a virtualized call reach the kernel (USER_NOTIF beats ALLOW, LOG,
// TRACE; a notification without a listener fails).
TEST_F(Attack, ABuildsOwnFiltersCantOverrideTheSupervisor) {
    Job j = attack({"seccomp", std::to_string(kEpoch)});
    expect_held(j, {"seccomp-new-listener", "seccomp-new-listener-tsync", "seccomp-new-listener-high-bits",
                    "seccomp-plain-filter", "clock_gettime-syscall", "clock_gettime-vdso", "time-under-log-filter",
                    "own-user-notif-without-listener", "own-ret-trace"});
    expect_audited(j, 3);
}

// The supervisor emulates stat and utimensat from a path it reads out of the
// build's memory. Another thread rewrites that path all the time, between one
// that doesn't exist and one the build may not reach (init's root; explicit
// times on /tmp, which isn't the build's): whatever the supervisor read, it
// resolved it as the build, so the denied target never succeeded.
TEST_F(Attack, RacingThePathTheSupervisorReadsNeverReachesTheDeniedTarget) {
    Job j = attack({"race-stat", "20000"});
    expect_held(j, {"race-stat"});
    Job u = attack({"race-utime", "20000"});
    expect_held(u, {"race-utime"});
}

// A build process killed while the supervisor handles its call: the
// notification is no longer valid when the answer is ready, and the answer
// goes to nobody else (the survivor's calls get their own). Pid reuse can't
// redirect the supervisor: it reads memory through the /proc/PID/mem it opened
// when it saw the process start, and a dead tracee keeps its pid until the
// supervisor itself reaps it (docs/threat-model.md).
TEST_F(Attack, ABuildProcessKilledMidCallIsNeverConfusedWithAnother) {
    Job j = attack({"race-exit", "1000", std::to_string(kEpoch)});
    expect_held(j, {"race-exit"});
}

// connect is logged: the supervisor reads the address for the record, the
// kernel connects with its own copy. A flipping sockaddr can make the record
// differ from the call, but never reaches anything but the sandbox's loopback.
TEST_F(Attack, RacingALoggedConnectNeverLeavesTheLoopback) {
    Job j = attack({"race-connect", "3000"});
    expect_held(j, {"race-connect"});
    uint64_t logged = 0;
    for (const json& e : records(j.id))
        if (e.value("syscall", "") == "connect" && e.value("action", "") == "logged")
            logged += e["kind"] == "aggregate" ? e["count"].get<uint64_t>() : 1;
    EXPECT_GE(logged, 3000u);
}

// /tmp, /dev/shm and /out stop at their quotas (32M here) with ENOSPC; the
// daemon and the next job carry on.
TEST_F(Attack, FillingTmpShmAndOutStopsAtTheQuota) {
    Job t = attack({"fill", "/tmp"});
    expect_held(t, {"fill:/tmp", "fallocate:/tmp"});
    Job s = attack({"fill", "/dev/shm"});
    expect_held(s, {"fill:/dev/shm", "fallocate:/dev/shm"});
    Job o = attack({"fill", "/out"});
    expect_held(o, {"fill:/out", "fallocate:/out"});
    for (const Job* x : {&t, &s, &o}) {
        const Check* c = x->checks.empty() ? nullptr : &x->checks.front();
        ASSERT_NE(c, nullptr);
        EXPECT_NE(c->detail.find("ENOSPC after 3"), std::string::npos) << c->detail;  // 31-32 MiB
    }
    EXPECT_EQ(daemon_->ctl({"ping"}).status, 0);
}

// A build that tries to leave a million files in /out: /out holds one entry
// more than output-max-files (1000 here), then ENOSPC; the collection refuses
// the 1001 with a reason. Quickly, and without a million inodes in kernel
// memory (nor a million file events for the supervisor to keep).
TEST_F(Attack, AMillionFilesInOutAreRefusedAtTheLimitWithAReason) {
    auto t0 = Clock::now();
    Job j = attack({"files", "/out", "1000000"}, {}, false);
    expect_held(j, {"files"});
    ASSERT_NE(j.find("files"), nullptr);
    EXPECT_EQ(j.find("files")->detail, "1001 made, then ENOSPC");
    EXPECT_EQ(j.r.status, 125) << j.r.describe();
    EXPECT_NE(j.r.err.find("limit of 1000 entries"), std::string::npos) << j.r.describe();
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(10));
    EXPECT_EQ(daemon_->ctl({"ping"}).status, 0);
}

// An endless stdout: cut at max-output (16M here), the job ends with a reason.
TEST_F(Attack, AStdoutFloodIsCutAtMaxOutputWithAReason) {
    auto t0 = Clock::now();
    // Another job, meanwhile, is not disturbed.
    ProcessResult other;
    std::thread neighbour([&] {
        other = daemon_->run(src_->path(), {"/bin/sh", "-c", "sleep 0.5; echo neighbour"}, {}, as_test_user());
    });
    Job j = attack({"flood"}, {}, false);
    neighbour.join();
    EXPECT_EQ(other.status, 0) << other.describe();
    EXPECT_EQ(other.out, "neighbour\n");
    EXPECT_EQ(j.r.status, 125) << j.r.err;
    EXPECT_NE(j.r.err.find("build output exceeded the limit of 16777216 bytes"), std::string::npos) << j.r.err;
    EXPECT_LE(j.r.out.size(), 17u << 20);
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(30));
    EXPECT_EQ(daemon_->run(src_->path(), {"/bin/echo", "after"}, {}, as_test_user()).out, "after\n");
}

// Stopped processes (one a double-forked orphan in its own session, both
// ignoring SIGTERM/SIGHUP) die with the job.
TEST_F(Attack, StoppedAndOrphanedProcessesDieWithTheJob) {
    Job j = attack({"stopped"});
    expect_held(j, {"stopped"});
    auto deadline = Clock::now() + std::chrono::seconds(10);
    std::vector<pid_t> left;
    do {
        left.clear();
        for (pid_t p : sandbox_processes(daemon_->id_base(), 1024)) {
            // Prepared sandboxes waiting for a job hold only their init (an even id).
            struct stat st{};
            if (::stat(("/proc/" + std::to_string(p)).c_str(), &st) == 0 && (st.st_uid - daemon_->id_base()) % 2 == 1)
                left.push_back(p);
        }
        if (left.empty()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    } while (Clock::now() < deadline);
    EXPECT_TRUE(left.empty()) << describe(left);
}

// kill -9 of the daemon with two builds running and sandboxes prepared: every
// process it started (runners, supervisors, helpers, every sandbox's init and
// build) dies with it, not at the next daemon start.
TEST(AttackDaemon, KillingTheDaemonKillsEverySandbox) {
    TestDaemon d;
    TempDir src("hermetic-attack-src");
    stage_probes(src.path(), {});
    std::vector<pid_t> clients;
    for (int i = 0; i < 2; ++i) {
        pid_t c = ::fork();
        ASSERT_GE(c, 0);
        if (c == 0) {
            TestUser u = test_user();
            ::setgroups(u.groups.size(), u.groups.data());
            if (::setgid(u.gid) != 0 || ::setuid(u.uid) != 0) ::_exit(126);
            int null = ::open("/dev/null", O_RDWR);
            ::dup2(null, 0), ::dup2(null, 1), ::dup2(null, 2);
            std::string ctl = hermeticctl_path();
            ::execl(ctl.c_str(), ctl.c_str(), "--socket", d.socket().c_str(), "run", "--src", src.path().c_str(), "--",
                    "/bin/sh", "-c", "sleep 60 & sleep 60", static_cast<char*>(nullptr));
            ::_exit(127);
        }
        clients.push_back(c);
    }
    // Both builds running: their build users' processes exist.
    auto deadline = Clock::now() + std::chrono::seconds(30);
    auto builds = [&] {
        std::set<uid_t> uids;
        for (pid_t p : sandbox_processes(d.id_base(), 1024)) {
            struct stat st{};
            std::string comm;
            try {
                comm = read_file("/proc/" + std::to_string(p) + "/comm");
            } catch (...) {
            }
            if (::stat(("/proc/" + std::to_string(p)).c_str(), &st) == 0 && comm == "sleep\n") uids.insert(st.st_uid);
        }
        return uids.size();
    };
    while (Clock::now() < deadline && builds() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_EQ(builds(), 2u) << d.log();
    auto tree = process_tree(d.pid());
    ASSERT_GT(tree.size(), 4u);  // the daemon, runners, supervisors, inits, builds
    d.kill_hard();
    deadline = Clock::now() + std::chrono::seconds(20);
    std::vector<pid_t> left;
    do {
        left = still_running(tree);
        auto sb = sandbox_processes(d.id_base(), 1024);
        left.insert(left.end(), sb.begin(), sb.end());
        if (left.empty()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    } while (Clock::now() < deadline);
    EXPECT_TRUE(left.empty()) << "left running after the daemon died:\n" << describe(left);
    for (pid_t c : clients) {
        int st = 0;
        ::kill(c, SIGKILL);
        ::waitpid(c, &st, 0);
    }
    d.start();  // clears whatever a failure left
}

}  // namespace
