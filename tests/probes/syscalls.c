/* try-syscall style checks (bubblewrap/flatpak): each call gets invalid
 * pointers or fds, so an allowed call fails harmlessly with EFAULT/EBADF/EINVAL
 * and a denied one with the filter's errno. Prints "name errno" per line. */
#include <errno.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <asm/prctl.h>
#include <linux/seccomp.h>
#include "probe_guard.h"

#define BAD ((void *)1)

static void report(const char *name, long rc) { printf("%s %d\n", name, rc < 0 ? errno : 0); }

static long raw_i386(long nr, long a, long b, long c) {
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return ret;
}

int main(void) {
    require_sandbox();
    errno = 0;
    report("read", syscall(SYS_read, -1, BAD, 1));                             /* EBADF: allowed */
    report("mount", syscall(SYS_mount, BAD, BAD, BAD, 0, BAD));                /* EPERM */
    report("umount2", syscall(SYS_umount2, BAD, 0));
    report("pivot_root", syscall(SYS_pivot_root, BAD, BAD));
    report("chroot", syscall(SYS_chroot, BAD));
    report("unshare", syscall(SYS_unshare, CLONE_NEWUSER));
    report("setns", syscall(SYS_setns, -1, 0));
    report("clone_newuser", syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, BAD, BAD, BAD, BAD));
    report("clone_newns", syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, BAD, BAD, BAD, BAD));
    report("clone3", syscall(SYS_clone3, BAD, 88));                            /* ENOSYS */
    report("io_uring_setup", syscall(SYS_io_uring_setup, 1, BAD));
    report("fsopen", syscall(SYS_fsopen, BAD, 0));
    report("open_tree", syscall(SYS_open_tree, -1, BAD, 0));
    report("move_mount", syscall(SYS_move_mount, -1, BAD, -1, BAD, 0));
    report("mount_setattr", syscall(SYS_mount_setattr, -1, BAD, 0, BAD, 0));
    report("ptrace", syscall(SYS_ptrace, 16 /* ATTACH */, 1, 0, 0));
    report("process_vm_readv", syscall(SYS_process_vm_readv, 1, BAD, 1, BAD, 1, 0));
    report("process_vm_writev", syscall(SYS_process_vm_writev, 1, BAD, 1, BAD, 1, 0));
    report("pidfd_getfd", syscall(SYS_pidfd_getfd, -1, 0, 0));
    report("keyctl", syscall(SYS_keyctl, 0, 0, 0, 0, 0));
    report("add_key", syscall(SYS_add_key, BAD, BAD, BAD, 0, 0));
    report("request_key", syscall(SYS_request_key, BAD, BAD, BAD, 0));
    report("bpf", syscall(SYS_bpf, 0, BAD, 0));
    report("perf_event_open", syscall(SYS_perf_event_open, BAD, 0, -1, -1, 0));
    report("userfaultfd", syscall(SYS_userfaultfd, 0));
    report("open_by_handle_at", syscall(SYS_open_by_handle_at, -1, BAD, 0));
    report("init_module", syscall(SYS_init_module, BAD, 0, BAD));
    report("finit_module", syscall(SYS_finit_module, -1, BAD, 0));
    report("delete_module", syscall(SYS_delete_module, BAD, 0));
    report("kexec_load", syscall(SYS_kexec_load, 0, 0, BAD, 0));
    report("reboot", syscall(SYS_reboot, 0, 0, 0, BAD));
    report("swapon", syscall(SYS_swapon, BAD, 0));
    report("swapoff", syscall(SYS_swapoff, BAD));
    report("syslog", syscall(SYS_syslog, 3, BAD, 10));
    report("acct", syscall(SYS_acct, BAD));
    report("settimeofday", syscall(SYS_settimeofday, BAD, BAD));
    report("clock_settime", syscall(SYS_clock_settime, 0, BAD));
    report("adjtimex", syscall(SYS_adjtimex, BAD));
    report("ioctl_tiocsti", syscall(SYS_ioctl, 0, TIOCSTI, BAD));
    report("ioctl_tiocsti_high", syscall(SYS_ioctl, 0, (1UL << 32) | TIOCSTI, BAD));
    report("ioctl_tioclinux", syscall(SYS_ioctl, 0, TIOCLINUX, BAD));
    report("ioctl_tcgets", syscall(SYS_ioctl, -1, TCGETS, BAD));                /* EBADF: allowed */
    report("seccomp_listener", syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, BAD));
    report("prctl_set_tsc", syscall(SYS_prctl, PR_SET_TSC, PR_TSC_ENABLE, 0, 0, 0));
    report("arch_prctl_set_cpuid", syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1));
    report("personality_change", syscall(SYS_personality, READ_IMPLIES_EXEC));
    report("socket_packet", syscall(SYS_socket, AF_PACKET, SOCK_RAW, 0));
    report("socket_unix", syscall(SYS_socket, AF_UNIX, SOCK_STREAM, -1));   /* allowed: EINVAL/EPROTONOSUPPORT */
    /* The i386 entry point gets the same rules: unshare = 310, mount = 21, getpid = 20.
     * Some kernels (e.g. paravirtualized guests) fault on int $0x80 altogether: a
     * child tries first, and "i386 unavailable" is reported if it dies of SIGSEGV. */
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        long r = raw_i386(20, 0, 0, 0);
        printf("i386_getpid %s\n", r > 0 ? "ok" : "fail");
        r = raw_i386(310, CLONE_NEWUSER, 0, 0);
        printf("i386_unshare %ld\n", r < 0 ? -r : 0);
        r = raw_i386(21, 1, 1, 1);
        printf("i386_mount %ld\n", r < 0 ? -r : 0);
        fflush(stdout);
        _exit(0);
    }
    int st = 0;
    waitpid(child, &st, 0);
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV) printf("i386 unavailable\n");
    fflush(stdout);
    long r;
    /* Last: an x32 call must never succeed. unshare is 272 in the x32 table too.
     * The filter kills the process (SIGSYS), or the kernel lacks x32 (ENOSYS). */
    r = syscall(0x40000000 | 272, CLONE_NEWUSER);
    printf("x32_unshare %d\n", r < 0 ? errno : 0);
    return 0;
}
