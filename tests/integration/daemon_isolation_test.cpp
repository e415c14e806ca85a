// Isolation properties of a real sandbox, one assertion each, through a real
// hermeticd on a temporary socket and the real hermeticctl.
#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "tests/support/test_daemon.hpp"

using namespace hermetic::test;

namespace {

class Isolation : public ::testing::Test {
protected:
    static void SetUpTestSuite() { daemon_ = std::make_unique<TestDaemon>(); }
    static void TearDownTestSuite() { daemon_.reset(); }

    void SetUp() override {
        src_ = std::make_unique<TempDir>("hermetic-src");
        stage_probes(src_->path(), {"syscalls", "connect", "abstract_connect", "loopback_server", "memhog", "forkbomb",
                                    "daemonize"});
    }

    ProcessResult sh(const std::string& script, const std::vector<std::string>& opts = {}) {
        return daemon_->run(src_->path(), {"/bin/sh", "-c", script}, opts, as_test_user());
    }

    static std::unique_ptr<TestDaemon> daemon_;
    std::unique_ptr<TempDir> src_;
};

std::unique_ptr<TestDaemon> Isolation::daemon_;

TEST_F(Isolation, HostnameIsHermetic) {
    auto r = sh("uname -n; cat /proc/sys/kernel/hostname");
    ASSERT_EQ(r.status, 0) << r.describe();
    EXPECT_EQ(r.out, "hermetic\nhermetic\n");
}

TEST_F(Isolation, OnlyLoopbackInterfaceExists) {
    auto r = sh("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '");
    ASSERT_EQ(r.status, 0) << r.describe();
    EXPECT_EQ(r.out, "lo\n");
}

TEST_F(Isolation, LoopbackWorksInside) {
    auto r = sh("./loopback_server");
    ASSERT_EQ(r.status, 0) << r.describe();
    EXPECT_EQ(r.out, "loopback OK\n");
}

TEST_F(Isolation, HostLoopbackServerIsUnreachable) {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(::listen(s, 4), 0);
    ASSERT_EQ(::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len), 0);
    auto r = sh("./connect 127.0.0.1 " + std::to_string(ntohs(a.sin_port)));
    ::close(s);
    ASSERT_EQ(r.status, 0) << r.describe();
    EXPECT_EQ(r.out, "connect 111\n");  // ECONNREFUSED: the sandbox's own, empty loopback
}

TEST_F(Isolation, HostAbstractUnixSocketIsUnreachable) {
    int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::string name = "hermetic-test-abstract-" + std::to_string(::getpid());
    std::memcpy(a.sun_path + 1, name.data(), name.size());
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), len), 0);
    ASSERT_EQ(::listen(s, 4), 0);
    auto r = sh("./abstract_connect " + name);
    ::close(s);
    ASSERT_EQ(r.status, 0) << r.describe();
    EXPECT_EQ(r.out, "connect 111\n");
}

TEST_F(Isolation, HomeRootRunAreInvisible) {
    auto r = sh("for p in /home /root /run /mnt /media; do test -e $p && echo visible $p; done; true");
    ASSERT_EQ(r.status, 0) << r.describe();
    EXPECT_EQ(r.out, "");
}

TEST_F(Isolation, VarIsEmptyUnlessConfigured) {
    auto r = sh("ls -A /var");
    ASSERT_EQ(r.status, 0) << r.describe();
    EXPECT_EQ(r.out, "");
}

TEST_F(Isolation, DaemonSocketAndStateAreInvisible) {
    auto r = sh("ls -d '" + daemon_->socket() + "' '" + daemon_->state_dir() + "' 2>&1; true");
    ASSERT_EQ(r.status, 0) << r.describe();
    EXPECT_EQ(r.out.find(daemon_->socket() + "\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("No such file"), std::string::npos) << r.out;
}

TEST_F(Isolation, RootFilesystemIsReadOnly) {
    auto r = sh("touch /newfile 2>&1; touch /usr/newfile 2>&1; touch /etc/newfile 2>&1; echo x > /bin/sh 2>&1; true");
    ASSERT_EQ(r.status, 0) << r.describe();
    EXPECT_NE(r.out.find("'/newfile': Read-only file system"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("'/usr/newfile': Read-only file system"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("'/etc/newfile': Read-only file system"), std::string::npos) << r.out;
}

TEST_F(Isolation, WritableAreasAreBuildOutTmp) {
    auto r = sh("touch /build/a /out/b /tmp/c /dev/shm/d && echo ok");
    ASSERT_EQ(r.status, 0) << r.describe();
    EXPECT_EQ(r.out, "ok\n");
}

TEST_F(Isolation, CallersSourceIsUnchanged) {
    write_file(src_->path() + "/data.txt", "original\n");
    auto r = sh("echo changed > data.txt && rm -f syscalls && cat data.txt");
    ASSERT_EQ(r.status, 0) << r.describe();
    EXPECT_EQ(r.out, "changed\n");
    EXPECT_EQ(read_file(src_->path() + "/data.txt"), "original\n");
    EXPECT_EQ(::access((src_->path() + "/syscalls").c_str(), F_OK), 0);
}

TEST_F(Isolation, RunsAsBuildUserWithFixedEnvironment) {
    auto r = sh("id -u; id -g; pwd; env | sort");
    ASSERT_EQ(r.status, 0) << r.describe();
    EXPECT_EQ(r.out,
              "1000\n1000\n/build\nHOME=/build\nLANG=C.UTF-8\nOUT=/out\nPATH=/usr/local/bin:/usr/bin:/bin\n"
              "PWD=/build\nSOURCE_DATE_EPOCH=315532800\nTMPDIR=/tmp\nTZ=UTC\n");
}

TEST_F(Isolation, ExitStatusPropagates) {
    EXPECT_EQ(sh("exit 7").status, 7);
    EXPECT_EQ(sh("exit 0").status, 0);
}

TEST_F(Isolation, SignalPropagatesAs128PlusN) {
    auto r = sh("kill -TERM $$");
    EXPECT_EQ(r.status, 128 + 15) << r.describe();
}

TEST_F(Isolation, TimeoutKillsTheJobWith124) {
    auto t0 = std::chrono::steady_clock::now();
    auto r = sh("sleep 60", {"--timeout", "1"});
    EXPECT_EQ(r.status, 124) << r.describe();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
    EXPECT_NE(r.err.find("timed out"), std::string::npos) << r.err;
}

TEST_F(Isolation, MemoryLimitKillsWithAReason) {
    auto r = sh("./memhog 512", {"--memory", "64M"});
    EXPECT_EQ(r.status, 137) << r.describe();
    EXPECT_NE(r.err.find("memory limit exceeded"), std::string::npos) << r.err;
}

TEST_F(Isolation, ForkBombIsContained) {
    auto r = sh("./forkbomb");
    EXPECT_EQ(r.status, 0) << r.describe();
    EXPECT_NE(r.out.find("fork failed after"), std::string::npos) << r.out;
    EXPECT_EQ(daemon_->ctl({"ping"}).status, 0);
    EXPECT_EQ(sh("echo still fine").out, "still fine\n");
}

TEST_F(Isolation, BackgroundProcessesDieWithTheJob) {
    TempDir out("hermetic-out");
    ::rmdir(out.path().c_str());
    auto r = daemon_->run(src_->path(), {"./daemonize"}, {"--out", out.path()}, as_test_user());
    ASSERT_EQ(r.status, 0) << r.describe();
    EXPECT_NE(r.out.find("left behind"), std::string::npos);
    EXPECT_TRUE(build_processes(daemon_->id_base(), 1024).empty());
}

TEST_F(Isolation, OutputSymlinkArrivesAsALink) {
    TempDir out("hermetic-out");
    ::rmdir(out.path().c_str());
    auto r = daemon_->run(src_->path(), {"/bin/sh", "-c", "ln -s /etc/passwd $OUT/link; echo hi > $OUT/file"},
                          {"--out", out.path()}, as_test_user());
    ASSERT_EQ(r.status, 0) << r.describe();
    char buf[256] = {0};
    ASSERT_EQ(::readlink((out.path() + "/link").c_str(), buf, sizeof buf - 1), 11);
    EXPECT_STREQ(buf, "/etc/passwd");
    struct stat st{};
    ASSERT_EQ(::lstat((out.path() + "/file").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, test_user().uid);  // outputs belong to the caller
    EXPECT_EQ(read_file(out.path() + "/file"), "hi\n");
}

TEST_F(Isolation, BaselineDenialsReturnTheirErrno) {
    auto r = daemon_->run(src_->path(), {"./syscalls"}, {}, as_test_user());
    // The probe ends with an x32 call that the filter answers by killing it.
    ASSERT_TRUE(r.status == 0 || r.status == 128 + 31) << r.describe();
    std::map<std::string, std::string> got;
    std::istringstream in(r.out);
    std::string name, value;
    while (in >> name >> value) got[name] = value;
    const std::map<std::string, std::string> want = {
        {"read", "9"},           {"mount", "1"},          {"umount2", "1"},          {"pivot_root", "1"},
        {"chroot", "1"},         {"unshare", "1"},        {"setns", "1"},            {"clone_newuser", "1"},
        {"clone_newns", "1"},    {"clone3", "38"},        {"io_uring_setup", "38"},  {"fsopen", "38"},
        {"open_tree", "38"},     {"move_mount", "38"},    {"mount_setattr", "38"},   {"ptrace", "1"},
        {"process_vm_readv", "1"}, {"process_vm_writev", "1"}, {"pidfd_getfd", "1"}, {"keyctl", "1"},
        {"add_key", "1"},        {"request_key", "1"},    {"bpf", "1"},              {"perf_event_open", "1"},
        {"userfaultfd", "1"},    {"open_by_handle_at", "1"}, {"init_module", "1"},   {"finit_module", "1"},
        {"delete_module", "1"},  {"kexec_load", "1"},     {"reboot", "1"},           {"swapon", "1"},
        {"swapoff", "1"},        {"syslog", "1"},         {"acct", "1"},             {"settimeofday", "1"},
        {"clock_settime", "1"},  {"adjtimex", "1"},       {"ioctl_tiocsti", "1"},    {"ioctl_tiocsti_high", "1"},
        {"ioctl_tioclinux", "1"}, {"ioctl_tcgets", "9"},  {"seccomp_listener", "1"}, {"prctl_set_tsc", "1"},
        {"arch_prctl_set_cpuid", "1"}, {"personality_change", "1"}, {"socket_packet", "97"},
    };
    for (const auto& [k, v] : want) EXPECT_EQ(got[k], v) << "syscall " << k << "\n" << r.out;
    // int $0x80: the build profile closes the whole i386 entry (ENOSYS: the
    // supervisor can't emulate that ABI, so nothing there may escape it), unless
    // this kernel has no i386 entry at all (it faults, which blocks just as well).
    // The baseline's own i386 rules are checked in policy_install_test.
    if (got["i386"] != "unavailable") {
        EXPECT_EQ(got["i386_unshare"], "38") << r.out;
        EXPECT_EQ(got["i386_mount"], "38") << r.out;
    }
    // x32: killed (no line) or ENOSYS, never success.
    if (got.count("x32_unshare")) {
        EXPECT_NE(got["x32_unshare"], "0");
    }
}

TEST_F(Isolation, ConcurrentJobsCantSeeEachOther) {
    std::thread a([&] { sh("echo secret > /tmp/marker-a; sleep 3"); });
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    auto r = sh("test -e /tmp/marker-a && echo sees-tmp; ls /proc | grep -c '^[0-9]'");
    a.join();
    ASSERT_EQ(r.status, 0) << r.describe();
    // Its own processes only: init, sh and ls (grep may be another).
    EXPECT_EQ(r.out.find("sees-tmp"), std::string::npos);
    EXPECT_LE(std::stoi(r.out), 4) << r.out;
}

TEST_F(Isolation, SecretsInEtcAreMasked) {
    auto r = sh("cat /etc/shadow 2>&1 | head -c 100; test -s /etc/shadow && echo nonempty; cat /etc/passwd");
    ASSERT_EQ(r.status, 0) << r.describe();
    EXPECT_EQ(r.out.find("nonempty"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("build:x:1000:1000"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("root:x:0:0:root:/root"), std::string::npos) << r.out;
}

// A mask below a symlinked directory (as /etc/ssl is a link into /usr on some
// systems): resolved in the sandbox's root, it covers the file the build sees.
// It once resolved in the host's root, masked the host's path and left the
// sandbox's own bind of /usr showing the secret.
TEST(IsolationMasks, AMaskBelowASymlinkedDirectoryHidesTheFile) {
    const std::string name = "hermetic-test-mask-" + std::to_string(::getpid());
    const std::string dir = "/usr/share/" + name, link = "/etc/" + name;
    struct Cleanup {
        std::string dir, link;
        ~Cleanup() {
            ::unlink(link.c_str());
            ::unlink((dir + "/key").c_str());
            ::unlink((dir + "/other").c_str());
            ::rmdir(dir.c_str());
        }
    } cleanup{dir, link};
    ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0) << std::strerror(errno);
    std::ofstream(dir + "/key") << "SECRET\n";
    std::ofstream(dir + "/other") << "visible\n";
    ASSERT_EQ(::chmod((dir + "/key").c_str(), 0644), 0);
    ASSERT_EQ(::chmod((dir + "/other").c_str(), 0644), 0);
    ASSERT_EQ(::symlink(dir.c_str(), link.c_str()), 0) << std::strerror(errno);

    TestDaemonOptions o;
    o.config_lines = {"etc-mask = " + name + "/key"};
    TestDaemon d(o);
    TempDir src("hermetic-src");
    // The mask is an unreadable empty file, like the other masks.
    auto r = d.run(src.path(),
                   {"/bin/sh", "-c",
                    "cat /etc/" + name + "/other; cat /etc/" + name + "/key " + dir + "/key 2>&1; test -s " + dir +
                        "/key && echo nonempty; true"},
                   {}, as_test_user());
    ASSERT_EQ(r.status, 0) << r.describe();
    EXPECT_EQ(r.out.rfind("visible\n", 0), 0u) << r.describe();
    EXPECT_EQ(r.out.find("SECRET"), std::string::npos) << r.describe();
    EXPECT_EQ(r.out.find("nonempty"), std::string::npos) << r.describe();
}

TEST_F(Isolation, DevContainsExactlyTheAgreedEntries) {
    auto r = sh("ls -A /dev | tr '\\n' ' '");
    ASSERT_EQ(r.status, 0) << r.describe();
    EXPECT_EQ(r.out, "fd full null random shm stderr stdin stdout urandom zero ");
}

TEST_F(Isolation, ProcSysIsReadOnly) {
    auto r = sh("{ echo 1 > /proc/sys/kernel/hostname; } 2>&1; cat /proc/sys/kernel/hostname");
    EXPECT_NE(r.out.find("Read-only file system"), std::string::npos) << r.out;
}

TEST_F(Isolation, SourceUnreadableByCallerIsNotCopied) {
    write_file(src_->path() + "/secret", "root only\n", 0600);  // owned by root
    auto r = sh("cat secret");
    EXPECT_EQ(r.status, 125) << r.describe();
    EXPECT_NE(r.err.find("Permission denied"), std::string::npos) << r.err;
}

TEST_F(Isolation, CapabilitiesAreAllZeroAndNoNewPrivs) {
    auto r = sh("grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status");
    ASSERT_EQ(r.status, 0) << r.describe();
    EXPECT_EQ(r.out,
              "CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"
              "CapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n");
}

TEST_F(Isolation, OnlyStdioFdsAreOpen) {
    auto r = daemon_->run(src_->path(), {"/bin/ls", "/proc/self/fd"}, {}, as_test_user());
    ASSERT_EQ(r.status, 0) << r.describe();
    // ls may hold the directory it lists open as fd 3.
    EXPECT_TRUE(r.out == "0\n1\n2\n" || r.out == "0\n1\n2\n3\n") << r.out;
}

}  // namespace
