// The baseline on the real kernel: a forked child sets no_new_privs, installs
// the compiled filters and tries syscalls with invalid pointers/fds/flags
// (bubblewrap's try-syscall trick): allowed calls fail in the kernel with
// EFAULT/EBADF/EINVAL, denied ones with the filter's EPERM/ENOSYS/EAFNOSUPPORT.
// Nothing a probe does can change the host even if the filter were missing:
// every call's arguments are invalid, and the child only touches itself.
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <functional>
#include <string>
#include <vector>

#include "common/io.hpp"
#include "syscall-policy/policy.hpp"
// This executable links hermetic_policy only (tests/CMakeLists.txt links by the
// file's prefix); the installer is one self-contained file, so it is compiled in.
#include "sandbox/seccomp_install.cpp"

namespace hermetic::policy {
namespace {

// Result of a probe: 0 for success, else the errno.
struct Probe {
    std::string name;
    std::function<long()> call;
    int expected;  // 0: must succeed
};

int errno_of(long rc) { return rc == -1 ? errno : 0; }

// A 32-bit syscall through int $0x80 from 64-bit code (same ABI as i386 programs).
long int80(long nr, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0) {
    long ret;
    asm volatile("int $0x80"
                 : "=a"(ret)
                 : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e)
                 : "memory", "r8", "r9", "r10", "r11");
    int r = static_cast<int>(ret);
    if (r < 0 && r > -4096) {
        errno = -r;
        return -1;
    }
    return r;
}

// Forks; the child installs `cp` (after `before`), runs the probes and reports
// each errno over a pipe. Returns the child's results and wait status.
struct ChildResult {
    std::vector<int> errnos;
    int status = 0;
};

ChildResult run_in_child(const CompiledPolicy& cp, const std::vector<Probe>& probes,
                         const std::function<void(UniqueFd&)>& after_install = nullptr) {
    FdPair pipe = make_pipe(O_CLOEXEC);
    pid_t pid = ::fork();
    if (pid < 0) throw_errno("fork");
    if (pid == 0) {
        pipe.read.reset();
        // No core file from a SIGSYS kill on the test machine.
        ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ::_exit(100);
        UniqueFd listener;
        try {
            listener = sandbox::install_filters(cp);
        } catch (...) {
            ::_exit(101);
        }
        if (after_install) after_install(listener);
        for (const Probe& p : probes) {
            errno = 0;
            int e = errno_of(p.call());
            if (::write(pipe.write.get(), &e, sizeof e) != sizeof e) ::_exit(102);
        }
        ::_exit(0);
    }
    pipe.write.reset();
    ChildResult r;
    int e;
    while (read_exact(pipe.read.get(), &e, sizeof e)) r.errnos.push_back(e);
    if (::waitpid(pid, &r.status, 0) != pid) throw_errno("waitpid");
    return r;
}

std::string errname(int e) { return e == 0 ? "success" : std::string(strerrorname_np(e) ? strerrorname_np(e) : "?"); }

void expect_probes(const CompiledPolicy& cp, const std::vector<Probe>& probes) {
    ChildResult r = run_in_child(cp, probes);
    ASSERT_TRUE(WIFEXITED(r.status)) << "child status " << r.status << " after " << r.errnos.size() << " probes";
    ASSERT_EQ(WEXITSTATUS(r.status), 0);
    ASSERT_EQ(r.errnos.size(), probes.size());
    for (size_t i = 0; i < probes.size(); ++i)
        EXPECT_EQ(errname(probes[i].expected), errname(r.errnos[i])) << probes[i].name;
}

const CompiledPolicy& baseline() {
    static const CompiledPolicy cp = compile(baseline_policy());
    return cp;
}

void* const kBad = reinterpret_cast<void*>(1);  // never mapped

TEST(BaselineOnKernel, Native64) {
    static char cpath[] = "/";
    std::vector<Probe> probes = {
        {"read(-1)", [] { return ::read(-1, nullptr, 0); }, EBADF},
        {"openat(bad path)", [] { return ::syscall(SYS_openat, AT_FDCWD, kBad, O_RDONLY); }, EFAULT},
        {"execve(bad path)", [] { return ::syscall(SYS_execve, kBad, nullptr, nullptr); }, EFAULT},
        {"getpid", [] { return ::syscall(SYS_getpid) > 0 ? 0L : -1L; }, 0},
        {"clone(CLONE_SIGHAND without VM)", [] { return ::syscall(SYS_clone, CLONE_SIGHAND | SIGCHLD, 0, 0, 0, 0); }, EINVAL},
        {"ioctl(-1, TCGETS)", [] { return ::syscall(SYS_ioctl, -1, TCGETS, 0); }, EBADF},
        {"socket(AF_UNIX, bad type)", [] { return ::syscall(SYS_socket, AF_UNIX, 0xdead, 0); }, EINVAL},
        {"mount(bad)", [] { return ::syscall(SYS_mount, kBad, kBad, kBad, 0, nullptr); }, EPERM},
        {"umount2(bad)", [] { return ::syscall(SYS_umount2, kBad, 0); }, EPERM},
        {"chroot(bad)", [] { return ::syscall(SYS_chroot, kBad); }, EPERM},
        {"pivot_root(bad)", [] { return ::syscall(SYS_pivot_root, kBad, kBad); }, EPERM},
        {"ptrace(ATTACH, -1)", [] { return ::syscall(SYS_ptrace, 16 /*PTRACE_ATTACH*/, -1, 0, 0); }, EPERM},
        {"process_vm_readv(-1)", [] { return ::syscall(SYS_process_vm_readv, -1, nullptr, 0, nullptr, 0, 0); }, EPERM},
        {"keyctl(bad op)", [] { return ::syscall(SYS_keyctl, 0x7fffffff, 0, 0, 0, 0); }, EPERM},
        {"add_key(bad)", [] { return ::syscall(SYS_add_key, kBad, kBad, nullptr, 0, 0); }, EPERM},
        {"bpf(bad cmd)", [] { return ::syscall(SYS_bpf, 0x7fffffff, nullptr, 0); }, EPERM},
        {"reboot(bad magic)", [] { return ::syscall(SYS_reboot, 0, 0, 0, nullptr); }, EPERM},
        {"settimeofday(bad)", [] { return ::syscall(SYS_settimeofday, kBad, kBad); }, EPERM},
        {"clock_settime(bad)", [] { return ::syscall(SYS_clock_settime, CLOCK_REALTIME, kBad); }, EPERM},
        {"init_module(bad)", [] { return ::syscall(SYS_init_module, kBad, 0, kBad); }, EPERM},
        {"swapon(bad)", [] { return ::syscall(SYS_swapon, kBad, 0); }, EPERM},
        {"syslog(bad type)", [] { return ::syscall(SYS_syslog, 0x7fff, nullptr, 0); }, EPERM},
        {"perf_event_open(bad)", [] { return ::syscall(SYS_perf_event_open, kBad, 0, -1, -1, 0); }, EPERM},
        {"userfaultfd(bad flags)", [] { return ::syscall(SYS_userfaultfd, ~0); }, EPERM},
        {"open_by_handle_at(-1)", [] { return ::syscall(SYS_open_by_handle_at, -1, kBad, 0); }, EPERM},
        {"setns(-1)", [] { return ::syscall(SYS_setns, -1, 0); }, EPERM},
        {"unshare(bad flags)", [] { return ::syscall(SYS_unshare, ~0UL); }, EPERM},
        {"unshare(CLONE_NEWUSER|CLONE_FS)",
         [] { return ::syscall(SYS_unshare, CLONE_NEWUSER | CLONE_FS | 0x80000000UL); }, EPERM},
        {"clone(CLONE_NEWUSER|CLONE_FS)", [] { return ::syscall(SYS_clone, CLONE_NEWUSER | CLONE_FS | SIGCHLD, 0, 0, 0, 0); },
         EPERM},
        {"clone3(NULL, 0)", [] { return ::syscall(SYS_clone3, nullptr, 0); }, ENOSYS},
        {"io_uring_setup(0, NULL)", [] { return ::syscall(SYS_io_uring_setup, 0, nullptr); }, ENOSYS},
        {"fsopen(bad)", [] { return ::syscall(SYS_fsopen, kBad, 0); }, ENOSYS},
        {"open_tree(-1)", [] { return ::syscall(SYS_open_tree, -1, kBad, 0); }, ENOSYS},
        {"ioctl(-1, TIOCSTI)", [] { return ::syscall(SYS_ioctl, -1, TIOCSTI, kBad); }, EPERM},
        {"ioctl(-1, 1<<32 | TIOCSTI)", [] { return ::syscall(SYS_ioctl, -1, (1UL << 32) | TIOCSTI, kBad); }, EPERM},
        {"ioctl(-1, TIOCLINUX)", [] { return ::syscall(SYS_ioctl, -1, TIOCLINUX, kBad); }, EPERM},
        {"seccomp(SET_MODE_FILTER, 0, bad)", [] { return ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, kBad); }, EFAULT},
        {"seccomp(SET_MODE_FILTER, NEW_LISTENER, bad)",
         [] { return ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, kBad); }, EPERM},
        {"seccomp(NEW_LISTENER, valid allow-all program)",
         [] {
             static sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
             static sock_fprog prog = {1, allow};
             return ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
         },
         EPERM},
        {"prctl(PR_SET_TSC)", [] { return ::syscall(SYS_prctl, PR_SET_TSC, PR_TSC_SIGSEGV, 0, 0, 0); }, EPERM},
        {"prctl(bad option)", [] { return ::syscall(SYS_prctl, 0x7fffffff, 0, 0, 0, 0); }, EINVAL},
        {"arch_prctl(ARCH_SET_CPUID)", [] { return ::syscall(SYS_arch_prctl, 0x1012, 0); }, EPERM},
        {"personality(query)", [] { return ::syscall(SYS_personality, 0xffffffff) >= 0 ? 0L : -1L; }, 0},
        {"personality(ADDR_NO_RANDOMIZE)", [] { return ::syscall(SYS_personality, ADDR_NO_RANDOMIZE) >= 0 ? 0L : -1L; }, 0},
        {"personality(READ_IMPLIES_EXEC)", [] { return ::syscall(SYS_personality, READ_IMPLIES_EXEC); }, EPERM},
        {"personality(0)", [] { return ::syscall(SYS_personality, 0); }, EPERM},
        {"socket(AF_PACKET, bad type)", [] { return ::syscall(SYS_socket, AF_PACKET, 0xdead, 0); }, EAFNOSUPPORT},
        {"socket(AF_VSOCK, bad type)", [] { return ::syscall(SYS_socket, 40, 0xdead, 0); }, EAFNOSUPPORT},
        {"socket(AF_NETLINK, bad type, NETLINK_AUDIT)", [] { return ::syscall(SYS_socket, AF_NETLINK, 0xdead, 9); },
         EAFNOSUPPORT},
        {"socket(AF_NETLINK, bad type, NETLINK_ROUTE)", [] { return ::syscall(SYS_socket, AF_NETLINK, 0xdead, 0); },
         EINVAL},
        {"socketpair(AF_PACKET)", [] { return ::syscall(SYS_socketpair, AF_PACKET, 0xdead, 0, kBad); }, EAFNOSUPPORT},
        {"syscall 1000", [] { return ::syscall(1000); }, ENOSYS},
        {"mbind(bad)", [] { return ::syscall(SYS_mbind, 0, 0, 0, nullptr, 0, 0); }, EPERM},
        {"modify_ldt(bad)", [] { return ::syscall(SYS_modify_ldt, 0x7f, nullptr, 0); }, EPERM},
        {"chdir(cpath)", [] { return ::syscall(SYS_chdir, cpath); }, 0},
    };
    expect_probes(baseline(), probes);
}

// Whether this kernel runs int $0x80 from 64-bit code at all: IA-32 emulation
// can be compiled out, disabled at boot (ia32_emulation=0), or missing in some
// paravirtualized guests, where the instruction raises #GP (SIGSEGV).
bool int80_available() {
    pid_t pid = ::fork();
    if (pid < 0) throw_errno("fork");
    if (pid == 0) {
        ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        ::_exit(int80(20) == ::getpid() ? 0 : 1);
    }
    int status;
    if (::waitpid(pid, &status, 0) != pid) throw_errno("waitpid");
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

TEST(BaselineOnKernel, I386ThroughInt80) {
    if (!int80_available())
        GTEST_SKIP() << "int $0x80 faults on this kernel (no IA-32 emulation): the i386 ABI is unreachable here; "
                        "the i386 filter is covered by the unit tests' BPF interpreter";
    std::vector<Probe> probes = {
        {"i386 getpid (20)", [] { return int80(20) == ::getpid() ? 0L : -1L; }, 0},
        {"i386 read(-1) (3)", [] { return int80(3, -1, 0, 0); }, EBADF},
        {"i386 unshare(bad) (310)", [] { return int80(310, 0xffffffff); }, EPERM},
        {"i386 mount(bad) (21)", [] { return int80(21, 1, 1, 1, 0, 0); }, EPERM},
        {"i386 ptrace (26)", [] { return int80(26, 16, -1); }, EPERM},
        {"i386 stime(bad) (25)", [] { return int80(25, 1); }, EPERM},
        {"i386 clone3 (435)", [] { return int80(435, 0, 0); }, ENOSYS},
        {"i386 ioctl(-1, TIOCSTI) (54)", [] { return int80(54, -1, TIOCSTI, 1); }, EPERM},
        {"i386 ioctl(-1, TCGETS) (54)", [] { return int80(54, -1, TCGETS, 1); }, EBADF},
        {"i386 clone(CLONE_NEWUSER|CLONE_FS) (120)", [] { return int80(120, CLONE_NEWUSER | CLONE_FS | SIGCHLD, 0, 0, 0, 0); },
         EPERM},
        {"i386 personality(READ_IMPLIES_EXEC) (136)", [] { return int80(136, READ_IMPLIES_EXEC); }, EPERM},
        {"i386 socket(AF_UNIX, bad type) (359)", [] { return int80(359, AF_UNIX, 0xdead, 0); }, EINVAL},
        {"i386 socket(AF_PACKET, bad type) (359)", [] { return int80(359, AF_PACKET, 0xdead, 0); }, EAFNOSUPPORT},
        // socketcall: the family is in memory, so socket() through it is refused;
        // the other calls are allowed (here: bad pointer -> EFAULT).
        {"i386 socketcall(SYS_SOCKET, bad) (102)", [] { return int80(102, 1, 1); }, EAFNOSUPPORT},
        {"i386 socketcall(SYS_CONNECT, bad) (102)", [] { return int80(102, 3, 1); }, EFAULT},
        {"i386 socketcall(99) (102)", [] { return int80(102, 99, 1); }, ENOSYS},
        {"i386 syscall 1000", [] { return int80(1000); }, ENOSYS},
    };
    expect_probes(baseline(), probes);
}

TEST(BaselineOnKernel, X32IsKilled) {
    for (long nr : {39L /*getpid*/, 272L /*unshare*/, 165L /*mount*/, 512L}) {
        std::vector<Probe> probes = {{"x32", [nr] { return ::syscall(0x40000000L | nr, 0, 0, 0, 0, 0); }, -1}};
        ChildResult r = run_in_child(baseline(), probes);
        ASSERT_TRUE(WIFSIGNALED(r.status)) << "x32 " << nr << " status " << r.status;
        EXPECT_EQ(WTERMSIG(r.status), SIGSYS) << "x32 " << nr;
        EXPECT_TRUE(r.errnos.empty());
    }
}

TEST(Installer, RequiresNoNewPrivs) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        int code = 1;
        try {
            (void)sandbox::install_filters(baseline());
        } catch (const SysError& e) {
            code = e.code() == EPERM ? 0 : 2;
        }
        // Nothing was installed.
        if (code == 0 && ::prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != 0) code = 3;
        ::_exit(code);
    }
    int status;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(Installer, RouteModeReturnsAListenerAndFailsClosedWithoutSupervisor) {
    const CompiledPolicy routed = compile(baseline_policy(), {.route_denials_to_supervisor = true});
    std::vector<Probe> probes = {
        {"listener returned", [] { return 0L; }, 0},
        // No supervisor holds the listener (closed below): the kernel answers ENOSYS.
        {"mount(bad) without supervisor", [] { return ::syscall(SYS_mount, kBad, kBad, kBad, 0, nullptr); }, ENOSYS},
        {"ioctl(-1, TIOCSTI) without supervisor", [] { return ::syscall(SYS_ioctl, -1, TIOCSTI, kBad); }, ENOSYS},
        {"read(-1)", [] { return ::read(-1, nullptr, 0); }, EBADF},
        {"syscall 1000 (default, in kernel)", [] { return ::syscall(1000); }, ENOSYS},
        // A second listener can't be stacked (EBUSY from the kernel, EPERM from the
        // argument rule: the rule is routed too, so ENOSYS here).
        {"seccomp(NEW_LISTENER)",
         [] { return ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, kBad); }, ENOSYS},
    };
    ChildResult r = run_in_child(routed, probes, [](UniqueFd& listener) {
        if (!listener.valid()) ::_exit(103);
        listener.reset();
    });
    ASSERT_TRUE(WIFEXITED(r.status)) << r.status;
    ASSERT_EQ(WEXITSTATUS(r.status), 0);
    ASSERT_EQ(r.errnos.size(), probes.size());
    for (size_t i = 0; i < probes.size(); ++i)
        EXPECT_EQ(errname(probes[i].expected), errname(r.errnos[i])) << probes[i].name;
}

}  // namespace
}  // namespace hermetic::policy
