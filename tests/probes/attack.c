/* The attack suite's probe (tests/integration/daemon_attack_test.cpp): one
 * binary, one subcommand per group of attacks, run as a build inside a real
 * sandbox. It prints one line per check:
 *
 *   ok NAME DETAIL [audit=SYSCALL]    refused (or harmless) as it must be
 *   FAIL NAME DETAIL                  the boundary did not hold
 *   skip NAME REASON                  not applicable on this machine
 *
 * and exits 1 if any check failed. "audit=SYSCALL" marks a refusal that a named
 * policy rule makes, which the job's supervisor answers and audits: the test
 * then requires a "denied" event for SYSCALL with the errno printed.
 *
 * Subcommands (see usage()): tty abi ns mount escape fds exe ptrace iouring
 * setuid kernel proc sockets seccomp fill files flood stopped race-stat
 * race-utime race-connect race-exit.
 *
 * Everything here is dangerous if the boundary is broken: require_sandbox()
 * first, always. Arguments are harmless where it matters (CAD_OFF for reboot,
 * the current time for clock_settime, a nonexistent swap file). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/netlink.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "probe_guard.h"

#ifndef TIOCLINUX
#define TIOCLINUX 0x541C
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef AF_XDP
#define AF_XDP 44
#endif
#ifndef AF_MCTP
#define AF_MCTP 45
#endif
#define X32_BIT 0x40000000L

static int failures;

static const char *ename(int e) {
    switch (e) {
        case 0: return "0";
        case EPERM: return "EPERM";
        case ENOENT: return "ENOENT";
        case ESRCH: return "ESRCH";
        case EBADF: return "EBADF";
        case EACCES: return "EACCES";
        case EFAULT: return "EFAULT";
        case EEXIST: return "EEXIST";
        case ENOTDIR: return "ENOTDIR";
        case EISDIR: return "EISDIR";
        case EINVAL: return "EINVAL";
        case ETXTBSY: return "ETXTBSY";
        case ENOSPC: return "ENOSPC";
        case EROFS: return "EROFS";
        case ENOSYS: return "ENOSYS";
        case ENXIO: return "ENXIO";
        case EIO: return "EIO";
        case ELOOP: return "ELOOP";
        case ENODEV: return "ENODEV";
        case EAFNOSUPPORT: return "EAFNOSUPPORT";
        case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
        case ENETUNREACH: return "ENETUNREACH";
        case ECONNREFUSED: return "ECONNREFUSED";
        case EDQUOT: return "EDQUOT";
        case ENOTTY: return "ENOTTY";
        case EOPNOTSUPP: return "EOPNOTSUPP";
        case EMFILE: return "EMFILE";
        default: {
            static char buf[4][16];
            static int i;
            i = (i + 1) % 4;
            snprintf(buf[i], sizeof buf[i], "errno%d", e);
            return buf[i];
        }
    }
}

static void line(const char *verdict, const char *name, const char *fmt, ...) {
    va_list ap;
    printf("%s %s ", verdict, name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    if (strcmp(verdict, "FAIL") == 0) failures++;
}
#define OK(name, ...) line("ok", name, __VA_ARGS__)
#define FAIL(name, ...) line("FAIL", name, __VA_ARGS__)
#define SKIP(name, ...) line("skip", name, __VA_ARGS__)

/* A call that must fail with exactly `want`; `audit` names the syscall whose
 * denied event the test must find (NULL: the kernel refuses it, not a rule). */
static void expect(const char *name, long rc, int err, int want, const char *audit) {
    if (rc >= 0) {
        FAIL(name, "succeeded (%ld), want %s", rc, ename(want));
    } else if (err != want) {
        FAIL(name, "%s, want %s", ename(err), ename(want));
    } else if (audit) {
        OK(name, "%s audit=%s", ename(err), audit);
    } else {
        OK(name, "%s", ename(err));
    }
}
#define EXPECT(name, call, want, audit)         \
    do {                                        \
        errno = 0;                              \
        long rc_ = (long)(call);                \
        expect(name, rc_, errno, want, audit);  \
    } while (0)

/* A call that must fail, any errno. */
static void expect_fail(const char *name, long rc, int err) {
    if (rc >= 0) FAIL(name, "succeeded (%ld)", rc);
    else OK(name, "%s", ename(err));
}
#define EXPECT_FAIL(name, call)                 \
    do {                                        \
        errno = 0;                              \
        long rc_ = (long)(call);                \
        expect_fail(name, rc_, errno);          \
        if (rc_ >= 0 && rc_ < 1024) close((int)rc_); \
    } while (0)

static void must(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "attack: setup failed: %s: %s\n", what, strerror(errno));
        exit(2);
    }
}

/* ---- tty: terminal injection ------------------------------------------------ */

static void cmd_tty(void) {
    char c = 'x';
    char name[64];
    for (int fd = 0; fd <= 2; fd++) {
        snprintf(name, sizeof name, "tiocsti-fd%d", fd);
        EXPECT(name, ioctl(fd, TIOCSTI, &c), EPERM, "ioctl");
    }
    /* No controlling terminal (setsid) and no tty device nodes. */
    errno = 0;
    int tty = open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (tty >= 0) {
        FAIL("open-dev-tty", "opened");
        EXPECT("tiocsti-dev-tty", ioctl(tty, TIOCSTI, &c), EPERM, "ioctl");
        close(tty);
    } else {
        OK("open-dev-tty", "%s", ename(errno));
    }
    EXPECT_FAIL("open-dev-ptmx", open("/dev/ptmx", O_RDWR | O_CLOEXEC));
    EXPECT_FAIL("open-dev-console", open("/dev/console", O_RDWR | O_CLOEXEC));
    /* The kernel reads the request as an unsigned int (CVE-2019-10063). */
    EXPECT("tiocsti-high-bits", syscall(SYS_ioctl, 0, 0xffffffff00005412UL, &c), EPERM, "ioctl");
    EXPECT("tiocsti-bit32", syscall(SYS_ioctl, 1, 0x100005412UL, &c), EPERM, "ioctl");
    /* TIOCLINUX subcommands (CVE-2023-28100: TIOCL_SETSEL + TIOCL_PASTESEL). */
    char sub[8] = {2 /* TIOCL_SETSEL */};
    EXPECT("tioclinux-setsel", ioctl(0, TIOCLINUX, sub), EPERM, "ioctl");
    sub[0] = 3; /* TIOCL_PASTESEL */
    EXPECT("tioclinux-pastesel", ioctl(2, TIOCLINUX, sub), EPERM, "ioctl");
    EXPECT("tioclinux-high-bits", syscall(SYS_ioctl, 0, 0xdead00000000541CUL, sub), EPERM, "ioctl");
}

/* ---- abi: x32 and int $0x80 -------------------------------------------------- */

static long raw_i386(long nr, long a, long b, long c) {
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return ret;
}

/* Runs fn in a child; returns its wait status. */
static int in_child(void (*fn)(long), long arg) {
    fflush(stdout);
    pid_t p = fork();
    must(p >= 0, "fork");
    if (p == 0) {
        fn(arg);
        _exit(0);
    }
    int st = 0;
    waitpid(p, &st, 0);
    return st;
}

static void x32_call(long nr) {
    long args[6] = {0};
    if (nr == 272) args[0] = CLONE_NEWUSER;
    syscall(X32_BIT | nr, args[0], args[1], args[2], args[3], args[4], args[5]);
    _exit(errno == ENOSYS ? 38 : 0);
}

static void i386_getpid(long unused) {
    (void)unused;
    _exit(raw_i386(20, 0, 0, 0) > 0 ? 0 : 1);
}

static void cmd_abi(void) {
    /* x32 (nr | 0x40000000 with the x86-64 audit arch): killed, whatever the call. */
    const struct { long nr; const char *name; } x32[] = {
        {39, "x32-getpid"}, {272, "x32-unshare"}, {165, "x32-mount"}, {101, "x32-ptrace"}, {512, "x32-rt_sigaction"},
    };
    for (size_t i = 0; i < sizeof x32 / sizeof x32[0]; i++) {
        int st = in_child(x32_call, x32[i].nr);
        if (WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS) OK(x32[i].name, "SIGSYS");
        else if (WIFSIGNALED(st)) FAIL(x32[i].name, "killed by signal %d, want SIGSYS", WTERMSIG(st));
        else FAIL(x32[i].name, "returned (exit %d), want SIGSYS", WEXITSTATUS(st));
    }

    /* int $0x80. Some kernels (paravirtualized guests) fault on it even for an
     * allowed call: then the entry is closed anyway and there is nothing to compare. */
    int st = in_child(i386_getpid, 0);
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV) {
        SKIP("i386", "int $0x80 faults with SIGSEGV even for getpid on this kernel (no i386 entry to test)");
        return;
    }
    long r = raw_i386(20, 0, 0, 0);
    int closed = r == -ENOSYS; /* the determinism profile closes the i386 entry (ENOSYS for all) */
    if (closed) OK("i386-getpid", "ENOSYS (the i386 entry is closed)");
    else if (r > 0) OK("i386-getpid", "allowed");
    else FAIL("i386-getpid", "%ld", r);
    /* Denied calls: the 64-bit twin's errno, or ENOSYS if the entry is closed. */
    const struct { long nr, a, b, c; long nr64; const char *name; } twins[] = {
        {310, CLONE_NEWUSER, 0, 0, SYS_unshare, "i386-unshare"},
        {21, 1, 1, 1, SYS_mount, "i386-mount"},
        {26, PTRACE_ATTACH, 1, 0, SYS_ptrace, "i386-ptrace"},
        {88, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_CAD_OFF, SYS_reboot, "i386-reboot"},
        {61, (long)"/tmp", 0, 0, SYS_chroot, "i386-chroot"},
    };
    for (size_t i = 0; i < sizeof twins / sizeof twins[0]; i++) {
        long r32 = raw_i386(twins[i].nr, twins[i].a, twins[i].b, twins[i].c);
        errno = 0;
        long r64 = syscall(twins[i].nr64, twins[i].a, twins[i].b, twins[i].c, 0, 0);
        int e64 = r64 < 0 ? errno : 0;
        if (r32 >= 0) FAIL(twins[i].name, "succeeded");
        else if ((int)-r32 == e64 || (closed && r32 == -ENOSYS)) OK(twins[i].name, "%s (64-bit: %s)", ename((int)-r32), ename(e64));
        else FAIL(twins[i].name, "%s, 64-bit twin %s", ename((int)-r32), ename(e64));
    }
}

/* ---- ns: namespaces ------------------------------------------------------------ */

static const struct { unsigned long flag; const char *name; } kNsFlags[] = {
    {CLONE_NEWNS, "newns"},   {CLONE_NEWCGROUP, "newcgroup"}, {CLONE_NEWUTS, "newuts"}, {CLONE_NEWIPC, "newipc"},
    {CLONE_NEWUSER, "newuser"}, {CLONE_NEWPID, "newpid"},     {CLONE_NEWNET, "newnet"}, {CLONE_NEWTIME, "newtime"},
};

static void cmd_ns(void) {
    char name[64];
    for (size_t i = 0; i < sizeof kNsFlags / sizeof kNsFlags[0]; i++) {
        snprintf(name, sizeof name, "unshare-%s", kNsFlags[i].name);
        EXPECT(name, syscall(SYS_unshare, kNsFlags[i].flag), EPERM, "unshare");
        snprintf(name, sizeof name, "clone-%s", kNsFlags[i].name);
        fflush(stdout);
        errno = 0;
        /* CLONE_NEWTIME lies in clone()'s exit-signal byte: only clone3 could set
         * it, and the filter refuses the bit in clone() too. */
        unsigned long flags = kNsFlags[i].flag | (kNsFlags[i].flag == CLONE_NEWTIME ? 0 : SIGCHLD);
        long rc = syscall(SYS_clone, flags, 0, 0, 0, 0);
        int e = errno;
        if (rc == 0) _exit(0);
        if (rc > 0) waitpid((pid_t)rc, NULL, __WALL);
        expect(name, rc, e, EPERM, "clone");
    }
    /* clone3 takes its flags in memory, out of seccomp's sight: refused whole. */
    struct clone_args ca;
    memset(&ca, 0, sizeof ca);
    ca.flags = CLONE_NEWUSER | CLONE_NEWNS;
    ca.exit_signal = SIGCHLD;
    fflush(stdout);
    errno = 0;
    long rc = syscall(SYS_clone3, &ca, sizeof ca);
    int e = errno;
    if (rc == 0) _exit(0);
    expect("clone3-newuser", rc, e, ENOSYS, "clone3");
    memset(&ca, 0, sizeof ca);
    ca.exit_signal = SIGCHLD;
    errno = 0;
    rc = syscall(SYS_clone3, &ca, sizeof ca);
    e = errno;
    if (rc == 0) _exit(0);
    if (rc > 0) waitpid((pid_t)rc, NULL, 0);
    expect("clone3-plain", rc, e, ENOSYS, "clone3");

    /* setns into our own namespaces, and into init's through a pidfd. */
    const char *nss[] = {"user", "mnt", "pid", "net", "uts", "ipc", "cgroup", "time"};
    for (size_t i = 0; i < sizeof nss / sizeof nss[0]; i++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/ns/%s", nss[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        snprintf(name, sizeof name, "setns-%s", nss[i]);
        if (fd < 0) {
            SKIP(name, "open %s: %s", path, ename(errno));
            continue;
        }
        EXPECT(name, syscall(SYS_setns, fd, 0), EPERM, "setns");
        close(fd);
    }
    int pidfd = (int)syscall(SYS_pidfd_open, 1, 0);
    if (pidfd >= 0) {
        EXPECT("setns-pidfd-init", syscall(SYS_setns, pidfd, CLONE_NEWNS | CLONE_NEWUSER), EPERM, "setns");
        close(pidfd);
    } else {
        SKIP("setns-pidfd-init", "pidfd_open(1): %s", ename(errno));
    }
    /* Init's namespace files are not ours to open. */
    EXPECT_FAIL("open-init-ns-mnt", open("/proc/1/ns/mnt", O_RDONLY | O_CLOEXEC));
}

/* ---- mount: mounts, chroot, pivot_root, the new mount API -------------------- */

static void cmd_mount(void) {
    EXPECT("mount-tmpfs", mount("none", "/tmp", "tmpfs", 0, NULL), EPERM, "mount");
    EXPECT("mount-remount-rw", mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND, NULL), EPERM, "mount");
    EXPECT("mount-bind", mount("/proc", "/tmp", NULL, MS_BIND | MS_REC, NULL), EPERM, "mount");
    EXPECT("mount-proc", mount("proc", "/tmp", "proc", 0, NULL), EPERM, "mount");
    /* CVE-2022-0492: a cgroup v1 hierarchy whose release_agent we could set. */
    EXPECT("mount-cgroup-v1", mount("cgroup", "/tmp", "cgroup", 0, "rdma"), EPERM, "mount");
    EXPECT("mount-cgroup2", mount("cgroup2", "/tmp", "cgroup2", 0, NULL), EPERM, "mount");
    EXPECT("umount2-proc", umount2("/proc", MNT_DETACH), EPERM, "umount2");
    EXPECT("umount2-root", umount2("/", MNT_DETACH), EPERM, "umount2");
    EXPECT("umount2-masked", umount2("/proc/kcore", 0), EPERM, "umount2");
    EXPECT("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"), EPERM, "pivot_root");
    EXPECT("pivot_root-dot", syscall(SYS_pivot_root, ".", "."), EPERM, "pivot_root");
    EXPECT("chroot", chroot("/tmp"), EPERM, "chroot");
    EXPECT("fsopen", syscall(SYS_fsopen, "tmpfs", 0), ENOSYS, "fsopen");
    EXPECT("fsconfig", syscall(SYS_fsconfig, -1, 0, NULL, NULL, 0), ENOSYS, "fsconfig");
    EXPECT("fsmount", syscall(SYS_fsmount, -1, 0, 0), ENOSYS, "fsmount");
    EXPECT("fspick", syscall(SYS_fspick, AT_FDCWD, "/", 0), ENOSYS, "fspick");
    EXPECT("open_tree-clone", syscall(SYS_open_tree, AT_FDCWD, "/", 1 /* OPEN_TREE_CLONE */), ENOSYS, "open_tree");
    EXPECT("move_mount", syscall(SYS_move_mount, AT_FDCWD, "/proc", AT_FDCWD, "/tmp", 0), ENOSYS, "move_mount");
    uint64_t attr[4] = {0};
    EXPECT("mount_setattr", syscall(SYS_mount_setattr, AT_FDCWD, "/", 0, attr, sizeof attr), ENOSYS, "mount_setattr");
}

/* ---- escape: the old root and host inodes --------------------------------------- */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Names in a directory, sorted and joined (the comparison of two listings). */
static void listing(int dirfd, char *out, size_t cap) {
    out[0] = 0;
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    DIR *d = fdopendir(fd);
    if (!d) return;
    char *names[512];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 512) names[n++] = strdup(e->d_name);
    closedir(d);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (strcmp(names[j], names[i]) < 0) {
                char *t = names[i];
                names[i] = names[j];
                names[j] = t;
            }
    for (size_t i = 0; i < n; i++) {
        strncat(out, names[i], cap - strlen(out) - 2);
        strncat(out, " ", cap - strlen(out) - 1);
        free(names[i]);
    }
}

/* From `start`, ".." 64 times: we must stop at our own root, never beyond. */
static void walk_up(const char *name, int start, const char *sentinel_rel, const char *root_listing) {
    int fd = openat(start, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        /* Not a directory (pipes, /dev/null): ".." of it is refused. */
        int e = errno;
        int up = openat(start, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (up >= 0) {
            FAIL(name, "\"..\" of a non-directory opened");
            close(up);
        } else {
            OK(name, "not a directory (%s, then %s)", ename(e), ename(errno));
        }
        return;
    }
    for (int i = 0; i < 64; i++) {
        int up = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (up < 0) {
            FAIL(name, "\"..\" failed at step %d: %s", i, ename(errno));
            close(fd);
            return;
        }
        close(fd);
        fd = up;
    }
    char here[8192];
    listing(fd, here, sizeof here);
    int s = openat(fd, sentinel_rel, O_RDONLY | O_CLOEXEC);
    if (s >= 0) FAIL(name, "reached the host sentinel");
    else if (strcmp(here, root_listing) != 0) FAIL(name, "the top is not our root: %s", here);
    else OK(name, "stops at the sandbox root; sentinel %s", ename(errno));
    if (s >= 0) close(s);
    close(fd);
}

static void cmd_escape(const char *sentinel, const char *handle_hex, int handle_type) {
    char path[4096];
    must(sentinel[0] == '/', "sentinel path must be absolute");
    const char *rel = sentinel + 1;
    EXPECT_FAIL("sentinel-by-path", open(sentinel, O_RDONLY | O_CLOEXEC));
    snprintf(path, sizeof path, "/proc/1/root%s", sentinel);
    EXPECT_FAIL("sentinel-by-proc1-root", open(path, O_RDONLY | O_CLOEXEC));
    snprintf(path, sizeof path, "/proc/self/root%s", sentinel);
    EXPECT_FAIL("sentinel-by-proc-self-root", open(path, O_RDONLY | O_CLOEXEC));
    snprintf(path, sizeof path, "/proc/1/cwd%s", sentinel);
    EXPECT_FAIL("sentinel-by-proc1-cwd", open(path, O_RDONLY | O_CLOEXEC));
    char buf[256];
    EXPECT("readlink-proc1-root", readlink("/proc/1/root", buf, sizeof buf), EACCES, NULL);
    EXPECT("opendir-proc1-root", open("/proc/1/root/", O_RDONLY | O_DIRECTORY | O_CLOEXEC), EACCES, NULL);

    /* The old root is gone: no mount but ours, nothing of the sentinel's directory. */
    FILE *mi = fopen("/proc/self/mountinfo", "re");
    if (mi) {
        char l[4096];
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", sentinel);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) *slash = 0;
        int bad = 0;
        while (fgets(l, sizeof l, mi))
            if (strstr(l, dir)) {
                bad = 1;
                FAIL("mountinfo-sentinel-dir", "%s", l);
            }
        fclose(mi);
        if (!bad) OK("mountinfo-sentinel-dir", "absent");
    }

    /* ".." from every descriptor we have and from every directory we can open. */
    int root = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    must(root >= 0, "open /");
    char root_listing[8192];
    listing(root, root_listing, sizeof root_listing);
    int ndirs = 0; /* kept open: they are among the descriptors walked below */
    const char *starts[] = {"/", "/build", "/out", "/tmp", "/dev", "/dev/shm", "/proc", "/proc/self", "/proc/self/fd",
                            "/sys", "/usr", "/etc", "/var", "/usr/lib"};
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++) {
        int fd = open(starts[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) ndirs++;
    }
    DIR *d = opendir("/proc/self/fd");
    must(d != NULL, "opendir /proc/self/fd");
    struct dirent *e;
    int fds[64];
    int nfds = 0;
    while ((e = readdir(d)) && nfds < 64)
        if (e->d_name[0] != '.') fds[nfds++] = atoi(e->d_name);
    closedir(d);
    for (int i = 0; i < nfds; i++) {
        if (fcntl(fds[i], F_GETFD) < 0) continue; /* the listing's own, closed by now */
        char name[64];
        snprintf(name, sizeof name, "dotdot-from-fd%d", fds[i]);
        walk_up(name, fds[i], rel, root_listing);
        /* The same through the magic link. */
        snprintf(path, sizeof path, "/proc/self/fd/%d/../../../../../../../../..%s", fds[i], sentinel);
        snprintf(name, sizeof name, "sentinel-via-proc-fd%d", fds[i]);
        EXPECT_FAIL(name, open(path, O_RDONLY | O_CLOEXEC));
    }
    (void)ndirs;

    /* open_by_handle_at with the host's handle of the sentinel (the "shocker"
     * attack): refused by the policy whatever the mount fd. */
    struct {
        struct file_handle fh;
        unsigned char bytes[128];
    } h;
    size_t len = strlen(handle_hex) / 2;
    must(len <= sizeof h.bytes, "handle too long");
    h.fh.handle_bytes = (unsigned)len;
    h.fh.handle_type = handle_type;
    for (size_t i = 0; i < len; i++)
        h.bytes[i] = (unsigned char)(hexval(handle_hex[2 * i]) << 4 | hexval(handle_hex[2 * i + 1]));
    const char *mounts[] = {"/", "/usr", "/etc", "/build"};
    for (size_t i = 0; i < sizeof mounts / sizeof mounts[0]; i++) {
        int mfd = open(mounts[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (mfd < 0) continue;
        char name[64];
        snprintf(name, sizeof name, "open_by_handle_at-%s", mounts[i]);
        EXPECT(name, syscall(SYS_open_by_handle_at, mfd, &h.fh, O_RDONLY), EPERM, "open_by_handle_at");
        close(mfd);
    }
    struct {
        struct file_handle fh;
        unsigned char bytes[128];
    } mine;
    mine.fh.handle_bytes = 128;
    int mount_id;
    EXPECT("name_to_handle_at", syscall(SYS_name_to_handle_at, AT_FDCWD, "/usr", &mine.fh, &mount_id, 0), EPERM,
           "name_to_handle_at");
    close(root);
}

/* ---- fds: inherited descriptors, CVE-2024-21626 --------------------------------- */

static void cmd_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    must(d != NULL, "opendir /proc/self/fd");
    int listing_fd = dirfd(d);
    char seen[256] = "";
    int fds[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && n < 64) fds[n++] = atoi(e->d_name);
    closedir(d);
    int extra = 0;
    for (int i = 0; i < n; i++) {
        char b[16];
        snprintf(b, sizeof b, "%d ", fds[i]);
        strncat(seen, b, sizeof seen - strlen(seen) - 1);
        if (fds[i] > 2 && fds[i] != listing_fd) extra++;
    }
    if (extra) FAIL("proc-self-fd", "unexpected descriptors: %s(listing: %d)", seen, listing_fd);
    else OK("proc-self-fd", "%s(%d: the listing)", seen, listing_fd);
    int open_high = 0;
    for (int fd = 3; fd < 4096; fd++)
        if (fcntl(fd, F_GETFD) >= 0) open_high++;
    if (open_high) FAIL("fds-above-2", "%d open", open_high);
    else OK("fds-above-2", "none");
    for (int fd = 0; fd <= 2; fd++) {
        char name[64], link[64], target[256] = "";
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t len = readlink(link, target, sizeof target - 1);
        if (len > 0) target[len] = 0;
        struct stat st;
        snprintf(name, sizeof name, "fd%d-kind", fd);
        if (fstat(fd, &st) != 0) FAIL(name, "fstat: %s", ename(errno));
        else if (S_ISDIR(st.st_mode)) FAIL(name, "a directory: %s", target);
        else OK(name, "%s", target);
        /* CVE-2024-21626: a leaked directory fd as the cwd of the next exec. */
        snprintf(name, sizeof name, "chdir-proc-self-fd%d", fd);
        errno = 0;
        if (chdir(link) == 0) {
            char cwd[4096];
            FAIL(name, "chdir succeeded: cwd %s", getcwd(cwd, sizeof cwd) ? cwd : "(unreachable)");
            must(chdir("/build") == 0, "chdir back");
        } else {
            OK(name, "%s", ename(errno));
        }
    }
    /* A directory fd does work as a cwd, and getcwd stays inside our root. */
    int dfd = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    must(dfd >= 0, "open /tmp");
    char link[64], cwd[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", dfd);
    if (chdir(link) != 0) FAIL("chdir-proc-self-fd-dir", "%s", ename(errno));
    else if (!getcwd(cwd, sizeof cwd) || cwd[0] != '/') FAIL("chdir-proc-self-fd-dir", "cwd unreachable");
    else OK("chdir-proc-self-fd-dir", "cwd %s", cwd);
    must(chdir("/build") == 0, "chdir back");
    close(dfd);
    /* Init's descriptors (its control channel, ...) are not ours. */
    EXPECT("opendir-proc1-fd", open("/proc/1/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC), EACCES, NULL);
    EXPECT("chdir-proc1-cwd", chdir("/proc/1/cwd"), EACCES, NULL);
    for (int fd = 0; fd < 8; fd++) {
        char name[64], p[64];
        snprintf(p, sizeof p, "/proc/1/fd/%d", fd);
        snprintf(name, sizeof name, "chdir-proc1-fd%d", fd);
        EXPECT_FAIL(name, chdir(p));
    }
}

/* ---- exe: CVE-2019-5736 ------------------------------------------------------------ */

/* One of the daemon's binaries at `path`: absent, or hidden behind an empty
 * file (when a bind makes its directory visible); never readable or writable. */
static void hidden_binary(const char *name, const char *path) {
    errno = 0;
    if (access(path, F_OK) != 0) {
        if (errno == ENOENT) OK(name, "absent");
        else OK(name, "%s", ename(errno));
        return;
    }
    int w = open(path, O_WRONLY | O_CLOEXEC);
    if (w >= 0) {
        FAIL(name, "%s opens for writing", path);
        close(w);
        return;
    }
    int err = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        OK(name, "present but unreadable (%s)", ename(errno));
        return;
    }
    char buf[64];
    ssize_t n = read(fd, buf, sizeof buf);
    err = errno;
    close(fd);
    if (n > 0) FAIL(name, "%s is readable (%zd bytes)", path, n);
    else if (n == 0) OK(name, "hidden (an empty file)");
    else OK(name, "present but unreadable (%s)", ename(err));
}

static void cmd_exe(int argc, char **argv) {
    EXPECT("write-proc-self-exe", open("/proc/self/exe", O_WRONLY | O_CLOEXEC), ETXTBSY, NULL);
    EXPECT("write-proc1-exe", open("/proc/1/exe", O_WRONLY | O_CLOEXEC), EACCES, NULL);
    EXPECT("read-proc1-exe", open("/proc/1/exe", O_RDONLY | O_CLOEXEC), EACCES, NULL);
    char buf[4096];
    EXPECT("readlink-proc1-exe", readlink("/proc/1/exe", buf, sizeof buf), EACCES, NULL);
    EXPECT("write-proc1-exe-via-self", open("/proc/self/../1/exe", O_WRONLY | O_CLOEXEC), EACCES, NULL);
    /* Every process we can see: its executable is not writable through /proc. */
    DIR *d = opendir("/proc");
    must(d != NULL, "opendir /proc");
    struct dirent *e;
    int checked = 0, writable = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char p[300];
        snprintf(p, sizeof p, "/proc/%s/exe", e->d_name);
        int fd = open(p, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            writable++;
            FAIL("write-proc-exe", "%s opened for writing", p);
            close(fd);
        }
        fd = open(p, O_RDWR | O_CLOEXEC);
        if (fd >= 0) {
            writable++;
            FAIL("write-proc-exe", "%s opened read-write", p);
            close(fd);
        }
        checked++;
    }
    closedir(d);
    if (!writable) OK("write-proc-exe", "%d processes, none writable", checked);
    /* The binaries of our own processes live on read-only mounts. */
    EXPECT_FAIL("write-bin-sh", open("/bin/sh", O_WRONLY | O_CLOEXEC));
    /* The daemon and runner binaries: not at their host paths, nor where an
     * installation would put them (if one is there, it must be read-only). */
    const char *installed[] = {"/usr/bin/hermeticd", "/usr/sbin/hermeticd", "/usr/local/bin/hermeticd",
                               "/usr/local/sbin/hermeticd", "/usr/libexec/hermetic/hermetic-runner",
                               "/usr/local/libexec/hermetic/hermetic-runner", "/usr/lib/hermetic/hermetic-runner"};
    for (int i = 0; i < argc; i++) {
        char name[64];
        snprintf(name, sizeof name, "host-binary-%d", i);
        hidden_binary(name, argv[i]);
    }
    for (size_t i = 0; i < sizeof installed / sizeof installed[0]; i++) {
        char name[128];
        snprintf(name, sizeof name, "installed:%s", installed[i]);
        hidden_binary(name, installed[i]);
    }
}

/* ---- ptrace: other processes ------------------------------------------------------- */

static volatile long secret_word = 0x5ec2e7;

static void cmd_ptrace(void) {
    EXPECT("ptrace-attach-init", ptrace(PTRACE_ATTACH, 1, 0, 0), EPERM, "ptrace");
    EXPECT("ptrace-seize-init", ptrace(PTRACE_SEIZE, 1, 0, 0), EPERM, "ptrace");
    int ready[2];
    must(pipe(ready) == 0, "pipe");
    fflush(stdout);
    pid_t child = fork();
    must(child >= 0, "fork");
    if (child == 0) {
        close(ready[0]);
        (void)!write(ready[1], "x", 1);
        for (;;) pause();
    }
    close(ready[1]);
    char c;
    (void)!read(ready[0], &c, 1);
    close(ready[0]);
    EXPECT("ptrace-attach-child", ptrace(PTRACE_ATTACH, child, 0, 0), EPERM, "ptrace");
    EXPECT("ptrace-seize-child", ptrace(PTRACE_SEIZE, child, 0, 0), EPERM, "ptrace");
    EXPECT("ptrace-peek-child", syscall(SYS_ptrace, PTRACE_PEEKDATA, child, &secret_word, 0), EPERM, "ptrace");
    long word = 0;
    struct iovec local = {&word, sizeof word}, remote = {(void *)&secret_word, sizeof word};
    EXPECT("process_vm_readv-child", process_vm_readv(child, &local, 1, &remote, 1, 0), EPERM, "process_vm_readv");
    EXPECT("process_vm_writev-child", process_vm_writev(child, &local, 1, &remote, 1, 0), EPERM, "process_vm_writev");
    EXPECT("process_vm_readv-init", process_vm_readv(1, &local, 1, &remote, 1, 0), EPERM, "process_vm_readv");
    EXPECT("kcmp", syscall(SYS_kcmp, getpid(), child, 0 /* KCMP_FILE */, 0, 0), EPERM, "kcmp");
    int pidfd = (int)syscall(SYS_pidfd_open, child, 0);
    if (pidfd < 0) {
        FAIL("pidfd_open-child", "%s", ename(errno));
    } else {
        EXPECT("pidfd_getfd-child", syscall(SYS_pidfd_getfd, pidfd, 1, 0), EPERM, "pidfd_getfd");
        close(pidfd);
    }
    pidfd = (int)syscall(SYS_pidfd_open, 1, 0);
    if (pidfd >= 0) {
        EXPECT("pidfd_getfd-init", syscall(SYS_pidfd_getfd, pidfd, 0, 0), EPERM, "pidfd_getfd");
        close(pidfd);
    } else {
        OK("pidfd_getfd-init", "pidfd_open(1): %s", ename(errno));
    }
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);

    /* PTRACE_TRACEME, then the parent would control the child. */
    int res[2];
    must(pipe(res) == 0, "pipe");
    fflush(stdout);
    child = fork();
    must(child >= 0, "fork");
    if (child == 0) {
        errno = 0;
        long rc = ptrace(PTRACE_TRACEME, 0, 0, 0);
        int err[2] = {(int)rc, errno};
        (void)!write(res[1], err, sizeof err);
        _exit(0);
    }
    close(res[1]);
    int err[2] = {0, 0};
    (void)!read(res[0], err, sizeof err);
    close(res[0]);
    waitpid(child, NULL, 0);
    expect("ptrace-traceme", err[0], err[1], EPERM, "ptrace");

    /* Init's memory and secrets. */
    EXPECT("open-proc1-mem", open("/proc/1/mem", O_RDONLY | O_CLOEXEC), EACCES, NULL);
    EXPECT("open-proc1-mem-rw", open("/proc/1/mem", O_RDWR | O_CLOEXEC), EACCES, NULL);
    EXPECT("open-proc1-environ", open("/proc/1/environ", O_RDONLY | O_CLOEXEC), EACCES, NULL);
    EXPECT("open-proc1-auxv", open("/proc/1/auxv", O_RDONLY | O_CLOEXEC), EACCES, NULL);
    /* Init is not ours to kill (another uid, and a pid namespace's init ignores
     * what its own namespace sends it). */
    errno = 0;
    long rc = kill(1, SIGKILL);
    int e = errno;
    usleep(100 * 1000);
    if (kill(1, 0) != 0 && errno == ESRCH) FAIL("kill-init", "init is gone (kill: %ld %s)", rc, ename(e));
    else OK("kill-init", "init survives (kill: %s)", rc == 0 ? "0" : ename(e));
    errno = 0;
    rc = kill(1, SIGTERM);
    e = errno;
    usleep(50 * 1000);
    if (access("/proc/1/stat", F_OK) != 0) FAIL("term-init", "init is gone");
    else OK("term-init", "init survives (kill: %s)", rc == 0 ? "0" : ename(e));
    /* The supervisor and the runner are outside our pid namespace. */
    FILE *f = fopen("/proc/1/status", "re");
    char l[256];
    int ppid = -1;
    while (f && fgets(l, sizeof l, f))
        if (sscanf(l, "PPid: %d", &ppid) == 1) break;
    if (f) fclose(f);
    if (ppid == 0) OK("init-parent-invisible", "PPid 0");
    else FAIL("init-parent-invisible", "PPid %d", ppid);
}

/* ---- io_uring -------------------------------------------------------------------------- */

static void cmd_iouring(void) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    EXPECT("io_uring_setup", syscall(SYS_io_uring_setup, 8, &p), ENOSYS, "io_uring_setup");
    EXPECT("io_uring_enter", syscall(SYS_io_uring_enter, 0, 1, 0, 0, NULL, 0), ENOSYS, "io_uring_enter");
    EXPECT("io_uring_register", syscall(SYS_io_uring_register, 0, 0, NULL, 0), ENOSYS, "io_uring_register");
}

/* ---- setuid binaries ------------------------------------------------------------------- */

/* The effective uid of `pid` as its status says ("Uid: r e s f"), -1 if gone. */
static long euid_of(pid_t pid, char *comm, size_t cap) {
    char p[64], l[256];
    snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
    FILE *f = fopen(p, "re");
    if (!f) return -1;
    long r = -1, eu = -1;
    comm[0] = 0;
    while (fgets(l, sizeof l, f)) {
        if (sscanf(l, "Name: %63s", comm) == 1) continue;
        if (sscanf(l, "Uid: %ld %ld", &r, &eu) == 2) break;
    }
    fclose(f);
    (void)cap;
    return eu;
}

static void cmd_setuid(void) {
    /* su itself, told to run `id -u` as root: no root for us, whatever it is
     * told (started first: PAM delays its refusal by a couple of seconds). */
    int out[2], in[2];
    must(pipe(out) == 0 && pipe(in) == 0, "pipe");
    fflush(stdout);
    pid_t su = fork();
    must(su >= 0, "fork");
    if (su == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(out[1], 2);
        close(in[1]);
        close(out[0]);
        execlp("su", "su", "-c", "id -u", "root", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    (void)!write(in[1], "\n", 1);
    close(in[1]);

    const char *cands[] = {"/usr/bin/su", "/bin/su", "/usr/bin/passwd", "/usr/bin/newgrp", "/usr/bin/chsh",
                           "/usr/bin/chfn", "/usr/bin/gpasswd", "/usr/bin/mount", "/usr/bin/sudo", "/usr/bin/pkexec"};
    int found = 0;
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
        struct stat st;
        if (stat(cands[i], &st) != 0 || !(st.st_mode & S_ISUID)) continue;
        found++;
        /* Run it with stdin a pipe we keep open (su waits for a password) and
         * watch its credentials from outside until it has exec'd. */
        int pin[2];
        must(pipe(pin) == 0, "pipe");
        fflush(stdout);
        pid_t child = fork();
        must(child >= 0, "fork");
        if (child == 0) {
            dup2(pin[0], 0);
            close(pin[1]);
            int null = open("/dev/null", O_WRONLY);
            dup2(null, 1);
            dup2(null, 2);
            execl(cands[i], cands[i], "-c", "id -u", "root", (char *)NULL);
            _exit(127);
        }
        close(pin[0]);
        long max_euid = -1;
        char comm[64] = "";
        const char *base = strrchr(cands[i], '/') + 1;
        int execd = 0;
        for (int t = 0; t < 300; t++) {
            long eu = euid_of(child, comm, sizeof comm);
            if (eu < 0) break;
            if (strcmp(comm, base) == 0) {
                if (eu > max_euid) max_euid = eu;
                if (eu == 0 || ++execd == 5) break; /* its credentials are settled at exec */
            }
            int st2;
            if (waitpid(child, &st2, WNOHANG) == child) {
                child = -1;
                break;
            }
            usleep(2000);
        }
        if (child > 0) {
            kill(child, SIGKILL);
            waitpid(child, NULL, 0);
        }
        close(pin[1]);
        char name[128];
        snprintf(name, sizeof name, "setuid:%s", cands[i]);
        if (max_euid == 0) FAIL(name, "ran with euid 0");
        else if (!execd) OK(name, "exited before it could be observed (euid never 0 while seen)");
        else OK(name, "euid %ld (owner uid %u as seen here)", max_euid, (unsigned)st.st_uid);
    }
    if (!found) SKIP("setuid", "no setuid binary in this root");
    char buf[1024];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof buf - 1 && (r = read(out[0], buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)r;
    buf[got] = 0;
    close(out[0]);
    int st = 0;
    waitpid(su, &st, 0);
    for (char *p = buf; *p; p++)
        if (*p == '\n') *p = ' ';
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127) SKIP("su-c-id", "no su");
    else if ((WIFEXITED(st) && WEXITSTATUS(st) == 0) || strncmp(buf, "0 ", 2) == 0 || strstr(buf, " 0 "))
        FAIL("su-c-id", "became root: %s", buf);
    else OK("su-c-id", "refused (status %d): %.80s", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), buf);
}

/* ---- kernel: global kernel state ------------------------------------------------------ */

static void cmd_kernel(void) {
    EXPECT("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 1, 0, 0), EPERM, "keyctl");
    EXPECT("keyctl-join", syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, "attack", 0, 0, 0), EPERM, "keyctl");
    EXPECT("add_key", syscall(SYS_add_key, "user", "attack", "x", 1, KEY_SPEC_SESSION_KEYRING), EPERM, "add_key");
    EXPECT("request_key", syscall(SYS_request_key, "user", "attack", NULL, 0), EPERM, "request_key");
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.map_type = BPF_MAP_TYPE_ARRAY;
    a.key_size = 4;
    a.value_size = 4;
    a.max_entries = 1;
    EXPECT("bpf-map-create", syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof a), EPERM, "bpf");
    struct bpf_insn prog[] = {{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 0},
                              {.code = BPF_JMP | BPF_EXIT}};
    memset(&a, 0, sizeof a);
    a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
    a.insns = (uint64_t)(uintptr_t)prog;
    a.insn_cnt = 2;
    a.license = (uint64_t)(uintptr_t)"GPL";
    EXPECT("bpf-prog-load", syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof a), EPERM, "bpf");
    struct perf_event_attr pa;
    memset(&pa, 0, sizeof pa);
    pa.size = sizeof pa;
    pa.type = PERF_TYPE_SOFTWARE;
    pa.config = PERF_COUNT_SW_CPU_CLOCK;
    pa.disabled = 1;
    EXPECT("perf_event_open", syscall(SYS_perf_event_open, &pa, 0, -1, -1, 0), EPERM, "perf_event_open");
    EXPECT("userfaultfd", syscall(SYS_userfaultfd, O_CLOEXEC), EPERM, "userfaultfd");
    int devuff = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (devuff >= 0) {
        FAIL("dev-userfaultfd", "opened");
        close(devuff);
    } else {
        OK("dev-userfaultfd", "%s", ename(errno));
    }
    static const char elf[64] = "\177ELF";
    EXPECT("init_module", syscall(SYS_init_module, elf, sizeof elf, ""), EPERM, "init_module");
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    EXPECT("finit_module", syscall(SYS_finit_module, null, "", 0), EPERM, "finit_module");
    close(null);
    EXPECT("delete_module", syscall(SYS_delete_module, "attack_nonexistent", O_NONBLOCK), EPERM, "delete_module");
    EXPECT("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0), EPERM, "kexec_load");
    EXPECT("kexec_file_load", syscall(SYS_kexec_file_load, -1, -1, 1, "", 4 /* KEXEC_FILE_NO_INITRAMFS */), EPERM,
           "kexec_file_load");
    EXPECT("reboot-cad-off",
           syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_CAD_OFF, NULL), EPERM,
           "reboot");
    EXPECT("swapon", syscall(SYS_swapon, "/tmp/attack-no-such-swapfile", 0), EPERM, "swapon");
    EXPECT("swapoff", syscall(SYS_swapoff, "/tmp/attack-no-such-swapfile"), EPERM, "swapoff");
    char buf[256];
    EXPECT("syslog-read-all", syscall(SYS_syslog, 3 /* READ_ALL */, buf, sizeof buf), EPERM, "syslog");
    EXPECT("syslog-size", syscall(SYS_syslog, 10 /* SIZE_BUFFER */, NULL, 0), EPERM, "syslog");
    int kmsg = open("/dev/kmsg", O_RDONLY | O_CLOEXEC);
    if (kmsg >= 0) {
        FAIL("dev-kmsg", "opened");
        close(kmsg);
    } else {
        OK("dev-kmsg", "%s", ename(errno));
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    EXPECT("clock_settime", syscall(SYS_clock_settime, CLOCK_REALTIME, &now), EPERM, "clock_settime");
    struct timeval tv = {now.tv_sec, 0};
    EXPECT("settimeofday", syscall(SYS_settimeofday, &tv, NULL), EPERM, "settimeofday");
    struct timex tx;
    memset(&tx, 0, sizeof tx);
    tx.modes = ADJ_OFFSET;
    EXPECT("adjtimex-offset", syscall(SYS_adjtimex, &tx), EPERM, "adjtimex");
    memset(&tx, 0, sizeof tx);
    EXPECT("adjtimex-read", syscall(SYS_adjtimex, &tx), EPERM, "adjtimex");
    memset(&tx, 0, sizeof tx);
    tx.modes = ADJ_FREQUENCY;
    EXPECT("clock_adjtime", syscall(SYS_clock_adjtime, CLOCK_REALTIME, &tx), EPERM, "clock_adjtime");
    EXPECT("acct", syscall(SYS_acct, "/tmp/attack-acct"), EPERM, "acct");
    EXPECT("iopl", syscall(SYS_iopl, 3), EPERM, "iopl");
    EXPECT("ioperm", syscall(SYS_ioperm, 0x80, 1, 1), EPERM, "ioperm");
    EXPECT("modify_ldt", syscall(SYS_modify_ldt, 1, buf, 16), EPERM, "modify_ldt");
    EXPECT("quotactl", syscall(SYS_quotactl, 0, "/", 0, NULL), EPERM, "quotactl");
    EXPECT("fanotify_init", syscall(SYS_fanotify_init, 0, O_RDONLY), EPERM, "fanotify_init");
    EXPECT("vhangup", syscall(SYS_vhangup), EPERM, "vhangup");
    EXPECT("lookup_dcookie", syscall(SYS_lookup_dcookie, 0, buf, sizeof buf), EPERM, "lookup_dcookie");
    /* Not named by any rule: the policy's default (the kernel's ENOSYS, unaudited). */
    EXPECT("sethostname", syscall(SYS_sethostname, "evil", 4), ENOSYS, NULL);
    EXPECT("setdomainname", syscall(SYS_setdomainname, "evil", 4), ENOSYS, NULL);
}

/* ---- proc: masked and read-only /proc, devices, cgroups ---------------------------- */

static long read_all(const char *path, int *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    char buf[4096];
    long total = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0 && total < (1 << 20)) total += n;
    *err = n < 0 ? errno : 0;
    close(fd);
    return n < 0 && total == 0 ? -1 : total;
}

/* Recursively: any file named `name` under dir (a bounded walk). */
static int find_named(const char *dir, const char *name, int depth, char *hit, size_t cap) {
    if (depth > 12) return 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (strcmp(e->d_name, name) == 0) {
            snprintf(hit, cap, "%s", p);
            found = 1;
        } else if (e->d_type == DT_DIR) {
            found = find_named(p, name, depth + 1, hit, cap);
        }
    }
    closedir(d);
    return found;
}

static void cmd_proc(void) {
    errno = 0;
    int fd = open("/proc/sysrq-trigger", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t w = write(fd, "h", 1); /* 'h' only prints help, were it ever to pass */
        FAIL("sysrq-trigger-write", "opened for writing (write: %zd %s)", w, ename(errno));
        close(fd);
    } else {
        OK("sysrq-trigger-write", "%s", ename(errno));
    }
    const char *masked[] = {"/proc/kcore",  "/proc/keys",        "/proc/key-users", "/proc/kallsyms",
                            "/proc/kmsg",   "/proc/timer_list",  "/proc/sched_debug", "/proc/vmallocinfo",
                            "/proc/kpagecount", "/proc/kpageflags", "/proc/kpagecgroup", "/proc/sysrq-trigger"};
    for (size_t i = 0; i < sizeof masked / sizeof masked[0]; i++) {
        int err = 0;
        long n = read_all(masked[i], &err);
        char name[128];
        snprintf(name, sizeof name, "masked:%s", masked[i]);
        if (n > 0) FAIL(name, "%ld bytes readable", n);
        else if (n == 0) OK(name, "empty");
        else OK(name, "%s", ename(err));
    }
    const char *knobs[] = {"/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe", "/proc/sys/vm/drop_caches",
                           "/proc/sys/kernel/sysrq", "/proc/sys/kernel/ns_last_pid", "/proc/sys/fs/binfmt_misc/register"};
    for (size_t i = 0; i < sizeof knobs / sizeof knobs[0]; i++) {
        char name[128];
        snprintf(name, sizeof name, "write:%s", knobs[i]);
        EXPECT_FAIL(name, open(knobs[i], O_WRONLY | O_CLOEXEC));
    }
    /* The supervisor's served files (FUSE, answered by a root process): read-only. */
    const char *served[] = {"/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/proc/uptime",
                            "/proc/sys/kernel/random/uuid", "/proc/sys/kernel/osrelease"};
    for (size_t i = 0; i < sizeof served / sizeof served[0]; i++) {
        char name[128];
        snprintf(name, sizeof name, "write:%s", served[i]);
        EXPECT_FAIL(name, open(served[i], O_WRONLY | O_CLOEXEC));
    }
    EXPECT_FAIL("chmod-served", chmod("/proc/cpuinfo", 0666));
    EXPECT_FAIL("truncate-served", truncate("/proc/meminfo", 0));
    /* Device nodes: none may be made, anywhere writable. */
    EXPECT("mknod-char-tmp", mknod("/tmp/attack-mem", S_IFCHR | 0666, makedev(1, 1)), EPERM, NULL);
    EXPECT("mknod-block-tmp", mknod("/tmp/attack-sda", S_IFBLK | 0666, makedev(8, 0)), EPERM, NULL);
    EXPECT("mknod-char-build", mknod("/build/attack-kmsg", S_IFCHR | 0666, makedev(1, 11)), EPERM, NULL);
    EXPECT("mknod-char-shm", mknod("/dev/shm/attack-null", S_IFCHR | 0666, makedev(1, 3)), EPERM, NULL);
    EXPECT_FAIL("mknod-dev", mknod("/dev/attack-null", S_IFCHR | 0666, makedev(1, 3)));
    /* cgroups (CVE-2022-0492): no cgroup file system mounted, no release_agent. */
    FILE *mi = fopen("/proc/self/mountinfo", "re");
    must(mi != NULL, "open mountinfo");
    char l[4096];
    int cg = 0, mounts = 0;
    while (fgets(l, sizeof l, mi)) {
        mounts++;
        char *sep = strstr(l, " - ");
        if (sep && (strncmp(sep + 3, "cgroup ", 7) == 0 || strncmp(sep + 3, "cgroup2 ", 8) == 0)) {
            cg++;
            FAIL("no-cgroupfs", "%s", l);
        }
    }
    fclose(mi);
    if (!cg) OK("no-cgroupfs", "%d mounts, none a cgroup file system", mounts);
    char hit[4096];
    if (find_named("/sys", "release_agent", 0, hit, sizeof hit)) FAIL("no-release-agent", "%s", hit);
    else OK("no-release-agent", "none under /sys");
    if (access("/sys/fs/cgroup", F_OK) == 0) FAIL("sys-fs-cgroup", "present");
    else OK("sys-fs-cgroup", "%s", ename(errno));
    /* A cgroup namespace: every hierarchy's path is its root, no host path. */
    FILE *f = fopen("/proc/self/cgroup", "re");
    must(f != NULL, "open /proc/self/cgroup");
    int lines = 0, outside = 0;
    while (fgets(l, sizeof l, f)) {
        l[strcspn(l, "\n")] = 0;
        lines++;
        char *colon = strrchr(l, ':');
        if (!colon || strcmp(colon, ":/") != 0) {
            outside++;
            FAIL("proc-self-cgroup", "%s", l);
        }
    }
    fclose(f);
    if (!outside && lines) OK("proc-self-cgroup", "%d hierarchies, each at its root \"/\"", lines);
    else if (!lines) FAIL("proc-self-cgroup", "empty");
}

/* ---- sockets: families and the daemon's socket ------------------------------------ */

static void cmd_sockets(const char *daemon_socket) {
    const struct { long family; const char *name; } fams[] = {
        {AF_PACKET, "packet"},     {AF_BLUETOOTH, "bluetooth"}, {AF_VSOCK, "vsock"},   {AF_ALG, "alg"},
        {AF_KEY, "key"},           {AF_XDP, "xdp"},             {AF_CAN, "can"},       {AF_TIPC, "tipc"},
        {AF_RDS, "rds"},           {AF_LLC, "llc"},             {AF_X25, "x25"},       {AF_AX25, "ax25"},
        {AF_APPLETALK, "appletalk"}, {AF_IPX, "ipx"},           {AF_NETROM, "netrom"}, {AF_ROSE, "rose"},
        {AF_ATMPVC, "atmpvc"},     {AF_ATMSVC, "atmsvc"},       {AF_PPPOX, "pppox"},   {AF_IEEE802154, "ieee802154"},
        {AF_CAIF, "caif"},         {AF_NFC, "nfc"},             {AF_KCM, "kcm"},       {AF_QIPCRTR, "qipcrtr"},
        {AF_SMC, "smc"},           {AF_MCTP, "mctp"},           {46, "af46"},          {63, "af63"},
        {64, "af64"},              {1000, "af1000"},            {0x100000001L, "unix-high-bits"}, {-1, "af-minus1"},
    };
    char name[64];
    for (size_t i = 0; i < sizeof fams / sizeof fams[0]; i++) {
        snprintf(name, sizeof name, "socket-%s", fams[i].name);
        long rc;
        errno = 0;
        rc = syscall(SYS_socket, fams[i].family, SOCK_RAW, 0);
        int e = errno;
        if (rc >= 0) close((int)rc);
        if (rc < 0 && e != EAFNOSUPPORT) {
            /* Some families want SOCK_DGRAM/SEQPACKET; the filter answers before the type matters. */
            errno = 0;
            rc = syscall(SYS_socket, fams[i].family, SOCK_DGRAM, 0);
            e = errno;
            if (rc >= 0) close((int)rc);
        }
        expect(name, rc, e, EAFNOSUPPORT, "socket");
    }
    int sv[2];
    EXPECT("socketpair-packet", syscall(SYS_socketpair, AF_PACKET, SOCK_RAW, 0, sv), EAFNOSUPPORT, "socketpair");
    EXPECT("socketpair-vsock", syscall(SYS_socketpair, AF_VSOCK, SOCK_STREAM, 0, sv), EAFNOSUPPORT, "socketpair");
    const struct { long proto; const char *name; } nl[] = {
        {NETLINK_SOCK_DIAG, "sock_diag"}, {NETLINK_AUDIT, "audit"},       {NETLINK_KOBJECT_UEVENT, "uevent"},
        {NETLINK_NETFILTER, "netfilter"}, {NETLINK_GENERIC, "generic"},   {NETLINK_XFRM, "xfrm"},
        {NETLINK_SELINUX, "selinux"},     {NETLINK_CONNECTOR, "connector"}, {NETLINK_FIB_LOOKUP, "fib_lookup"},
        {NETLINK_CRYPTO, "crypto"},       {NETLINK_RDMA, "rdma"},         {0x100000000L, "route-high-bits"},
    };
    for (size_t i = 0; i < sizeof nl / sizeof nl[0]; i++) {
        snprintf(name, sizeof name, "netlink-%s", nl[i].name);
        errno = 0;
        long rc = syscall(SYS_socket, AF_NETLINK, SOCK_RAW, nl[i].proto);
        int e = errno;
        if (rc >= 0) close((int)rc);
        expect(name, rc, e, EAFNOSUPPORT, "socket");
    }
    /* What builds may use still works. */
    int ok_fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (ok_fd >= 0) {
        OK("netlink-route", "allowed");
        close(ok_fd);
    } else {
        FAIL("netlink-route", "%s", ename(errno));
    }
    ok_fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (ok_fd >= 0) {
        OK("inet6", "allowed");
        close(ok_fd);
    } else {
        FAIL("inet6", "%s", ename(errno));
    }
    /* Raw IP needs CAP_NET_RAW over the network namespace: the kernel says no. */
    EXPECT("socket-inet-raw", socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW), EPERM, NULL);

    /* The daemon's socket, at its host path and the default one: not there. */
    const char *paths[] = {daemon_socket, "/run/hermetic/hermeticd.sock", "/var/run/hermetic/hermeticd.sock"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        must(s >= 0, "socket");
        struct sockaddr_un a;
        memset(&a, 0, sizeof a);
        a.sun_family = AF_UNIX;
        snprintf(a.sun_path, sizeof a.sun_path, "%s", paths[i]);
        snprintf(name, sizeof name, "connect-daemon-socket-%zu", i);
        EXPECT(name, connect(s, (struct sockaddr *)&a, sizeof a), ENOENT, NULL);
        close(s);
    }
}

/* ---- seccomp: the build's own filters ----------------------------------------------- */

static void cmd_seccomp(long epoch) {
    struct sock_filter allow_all[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    struct sock_fprog prog = {1, allow_all};
    /* A listener of our own would see (and answer) calls before the supervisor. */
    EXPECT("seccomp-new-listener", syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog),
           EPERM, "seccomp");
    EXPECT("seccomp-new-listener-tsync",
           syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                   SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_TSYNC_ESRCH | SECCOMP_FILTER_FLAG_TSYNC, &prog),
           EPERM, "seccomp");
    EXPECT("seccomp-new-listener-high-bits",
           syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER | 0xff00000000UL, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog), EPERM,
           "seccomp");
    /* A plain filter that allows clock_gettime (everything) is accepted... */
    struct sock_filter allow_time[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clock_gettime, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog p2 = {4, allow_time};
    errno = 0;
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &p2) != 0) {
        FAIL("seccomp-plain-filter", "refused: %s", ename(errno));
        return;
    }
    OK("seccomp-plain-filter", "installed");
    /* ...and overrides nothing: the supervisor's notification beats ALLOW. */
    struct timespec ts = {0, 0};
    syscall(SYS_clock_gettime, CLOCK_REALTIME, &ts);
    if (ts.tv_sec >= epoch && ts.tv_sec < epoch + 86400) OK("clock_gettime-syscall", "%ld (virtual)", (long)ts.tv_sec);
    else FAIL("clock_gettime-syscall", "%ld: the host's clock, not the epoch %ld", (long)ts.tv_sec, epoch);
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec >= epoch && ts.tv_sec < epoch + 86400) OK("clock_gettime-vdso", "%ld (virtual)", (long)ts.tv_sec);
    else FAIL("clock_gettime-vdso", "%ld", (long)ts.tv_sec);
    /* A filter returning TRACE or LOG (below USER_NOTIF) changes nothing either. */
    struct sock_filter log_all[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_LOG)};
    struct sock_fprog p3 = {1, log_all};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &p3) == 0) {
        long t = syscall(SYS_time, NULL);
        if (t >= epoch && t < epoch + 86400) OK("time-under-log-filter", "%ld (virtual)", t);
        else FAIL("time-under-log-filter", "%ld", t);
    } else {
        SKIP("time-under-log-filter", "SECCOMP_RET_LOG filter refused: %s", ename(errno));
    }
    /* A USER_NOTIF of our own without a listener: the call fails, it does not pass. */
    struct sock_filter notif_conn[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog p4 = {4, notif_conn};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &p4) == 0) {
        EXPECT("own-user-notif-without-listener", syscall(SYS_getppid), ENOSYS, NULL);
    } else {
        OK("own-user-notif-without-listener", "refused: %s", ename(errno));
    }
    /* RET_TRACE of our own: the supervisor traces us, but without
     * PTRACE_O_TRACESECCOMP, so the kernel fails the call (ENOSYS). */
    struct sock_filter trace_gettid[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getpgrp, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog p5 = {4, trace_gettid};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &p5) == 0) {
        EXPECT("own-ret-trace", syscall(SYS_getpgrp), ENOSYS, NULL);
    } else {
        OK("own-ret-trace", "refused: %s", ename(errno));
    }
}

/* ---- limits ------------------------------------------------------------------------------ */

static void cmd_fill(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/attack-fill", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    must(fd >= 0, "create fill file");
    static char block[1 << 20];
    memset(block, 'x', sizeof block);
    long long total = 0;
    int err = 0;
    for (;;) {
        ssize_t n = write(fd, block, sizeof block);
        if (n < 0) {
            err = errno;
            break;
        }
        total += n;
        if (total > (64LL << 30)) break;
    }
    close(fd);
    char name[128];
    snprintf(name, sizeof name, "fill:%s", dir);
    if (err == ENOSPC) OK(name, "ENOSPC after %lld MiB", total >> 20);
    else FAIL(name, "%s after %lld MiB", ename(err), total >> 20);
    /* A second file can't get past the quota either (fallocate). */
    snprintf(path, sizeof path, "%s/attack-fill-2", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        snprintf(name, sizeof name, "fallocate:%s", dir);
        int rc = posix_fallocate(fd, 0, 1 << 20);
        if (rc == ENOSPC) OK(name, "ENOSPC");
        else FAIL(name, "%s", ename(rc));
        close(fd);
    }
    if (getenv("ATTACK_KEEP") == NULL) {
        unlink(path);
        snprintf(path, sizeof path, "%s/attack-fill", dir);
        unlink(path);
    }
}

static void cmd_files(const char *dir, long count) {
    char path[4096];
    long made = 0;
    int err = 0;
    for (; made < count; made++) {
        snprintf(path, sizeof path, "%s/f%ld", dir, made);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0) {
            err = errno;
            break;
        }
        close(fd);
    }
    OK("files", "%ld made%s%s", made, err ? ", then " : "", err ? ename(err) : "");
}

static void cmd_flood(void) {
    static char block[1 << 16];
    memset(block, 'f', sizeof block);
    block[sizeof block - 1] = '\n';
    for (;;)
        if (write(1, block, sizeof block) < 0) return;
}

/* Stopped and double-forked processes left behind. */
static void cmd_stopped(void) {
    fflush(stdout);
    pid_t a = fork();
    must(a >= 0, "fork");
    if (a == 0) {
        signal(SIGTERM, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        raise(SIGSTOP);
        for (;;) pause();
    }
    pid_t b = fork();
    must(b >= 0, "fork");
    if (b == 0) {
        setsid();
        if (fork() == 0) {
            signal(SIGTERM, SIG_IGN);
            signal(SIGHUP, SIG_IGN);
            raise(SIGSTOP);
            for (;;) pause();
        }
        _exit(0);
    }
    waitpid(b, NULL, 0);
    int st;
    waitpid(a, &st, WUNTRACED);
    OK("stopped", "left a stopped child (%d) and a stopped orphan behind", (int)a);
}

/* ---- races: the supervisor reads memory the build can change ----------------------- */

struct flip {
    char *buf;
    const char *a, *b;
    size_t len;
    volatile int stop;
};

static void *flipper(void *arg) {
    struct flip *f = arg;
    while (!f->stop) {
        memcpy(f->buf, f->a, f->len);
        memcpy(f->buf, f->b, f->len);
    }
    return NULL;
}

/* stat-family and utimensat calls are emulated by the supervisor from a path it
 * reads out of our memory while the other thread rewrites it. Whatever it
 * reads, it must resolve the path as we would: the "denied" target (one we
 * can't reach ourselves) must never succeed. */
static void race_paths(const char *what, long iterations) {
    /* The denied target is one a more privileged resolver would reach: init's
     * root (ptrace access to pid 1), or explicit times on /tmp, which is not
     * ours (CAP_FOWNER). The allowed one does not exist. Both have the same
     * length, and every mixture of their bytes (a torn read) names either the
     * denied target or nothing that exists. */
    const char *denied = strcmp(what, "stat") == 0 ? "/proc/1/root/build" /* EACCES */
                                                   : "/tmp/./././.";       /* EPERM */
    char allowed[64];
    memset(allowed, 'z', strlen(denied));
    allowed[0] = '/';
    allowed[strlen(denied)] = 0; /* ENOENT */
    char *buf = aligned_alloc(64, 64);
    must(buf != NULL, "alloc");
    memset(buf, 0, 64);
    size_t len = strlen(allowed) + 1;
    must(strlen(denied) + 1 == len, "race strings differ in length");
    memcpy(buf, allowed, len);
    struct flip f = {buf, allowed, denied, len, 0};
    pthread_t t;
    must(pthread_create(&t, NULL, flipper, &f) == 0, "pthread_create");
    long ok = 0, counts[256] = {0};
    struct timespec times[2] = {{1, 0}, {1, 0}};
    for (long i = 0; i < iterations; i++) {
        long rc;
        errno = 0;
        if (strcmp(what, "stat") == 0) {
            struct stat st;
            rc = stat(buf, &st);
        } else {
            rc = utimensat(AT_FDCWD, buf, times, 0);
        }
        if (rc == 0) ok++;
        else counts[errno & 255]++;
    }
    f.stop = 1;
    pthread_join(t, NULL);
    char detail[512] = "";
    for (int e = 0; e < 256; e++)
        if (counts[e]) {
            char b[64];
            snprintf(b, sizeof b, "%s%s=%ld", detail[0] ? " " : "", ename(e), counts[e]);
            strncat(detail, b, sizeof detail - strlen(detail) - 1);
        }
    char name[64];
    snprintf(name, sizeof name, "race-%s", what);
    int want_denied = strcmp(what, "stat") == 0 ? EACCES : EPERM;
    if (ok) FAIL(name, "%ld of %ld calls succeeded (%s)", ok, iterations, detail);
    else if (!counts[ENOENT] || !counts[want_denied])
        FAIL(name, "the race never showed both targets: %s", detail);
    else OK(name, "%ld calls, none reached the denied target: %s", iterations, detail);
    free(buf);
}

/* Processes killed while the supervisor handles their trapped call. The
 * notification outlives its sender for a moment (and, on a long enough run, its
 * pid could name another process): the supervisor must notice (the id is no
 * longer valid, the task is gone) and answer nobody else with it. Each child
 * stats in a loop; the parent kills it after a varying spin, then checks that
 * its own trapped calls still get their own, correct answers. */
static void race_exit(long iterations, long epoch) {
    long wrong = 0, reaped = 0;
    struct stat st;
    for (long i = 0; i < iterations; i++) {
        pid_t c = fork();
        if (c < 0) {
            FAIL("race-exit", "fork: %s", strerror(errno));
            return;
        }
        if (c == 0) {
            for (;;) stat("/build", &st);
        }
        for (volatile long k = 0; k < (i % 64) * 200; k++) {
        }
        kill(c, SIGKILL);
        int ws = 0;
        if (waitpid(c, &ws, 0) == c && WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL) reaped++;
        memset(&st, 0, sizeof st);
        if (stat("/build", &st) != 0 || st.st_mtim.tv_sec != epoch || !S_ISDIR(st.st_mode)) wrong++;
    }
    if (wrong || reaped != iterations)
        FAIL("race-exit", "%ld wrong answers to the survivor, %ld of %ld children died of SIGKILL", wrong, reaped,
             iterations);
    else OK("race-exit", "%ld children killed mid-call; every answer to the survivor was its own", iterations);
}

/* connect() is logged: the supervisor records it, then the kernel performs the
 * call with its own copy of the address. A flipped sockaddr can change what is
 * recorded, never where the kernel connects: only our loopback exists. */
static void race_connect(long iterations) {
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in la;
    memset(&la, 0, sizeof la);
    la.sin_family = AF_INET;
    la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t ll = sizeof la;
    must(l >= 0 && bind(l, (struct sockaddr *)&la, sizeof la) == 0 && listen(l, 4096) == 0 &&
             getsockname(l, (struct sockaddr *)&la, &ll) == 0,
         "listen on loopback");
    struct sockaddr_in far = la;
    far.sin_addr.s_addr = htonl(0x0a0b0c0d); /* 10.11.12.13: not routable here */
    struct sockaddr_in *buf = aligned_alloc(64, 64);
    memcpy(buf, &la, sizeof la);
    struct flip f = {(char *)buf, (const char *)&la, (const char *)&far, sizeof la, 0};
    pthread_t t;
    must(pthread_create(&t, NULL, flipper, &f) == 0, "pthread_create");
    long connected = 0, far_peer = 0, counts[256] = {0};
    for (long i = 0; i < iterations; i++) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0) {
            counts[errno & 255]++;
            continue;
        }
        if (connect(s, (struct sockaddr *)buf, sizeof *buf) == 0) {
            connected++;
            struct sockaddr_in peer;
            socklen_t pl = sizeof peer;
            if (getpeername(s, (struct sockaddr *)&peer, &pl) == 0 && peer.sin_addr.s_addr != htonl(INADDR_LOOPBACK))
                far_peer++;
            int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
            if (c >= 0) close(c);
        } else {
            counts[errno & 255]++;
        }
        close(s);
    }
    f.stop = 1;
    pthread_join(t, NULL);
    close(l);
    char detail[256] = "";
    for (int e = 0; e < 256; e++)
        if (counts[e]) {
            char b[64];
            snprintf(b, sizeof b, " %s=%ld", ename(e), counts[e]);
            strncat(detail, b, sizeof detail - strlen(detail) - 1);
        }
    if (far_peer) FAIL("race-connect", "%ld connections to a non-loopback peer", far_peer);
    else if (!connected || !counts[ENETUNREACH]) FAIL("race-connect", "the race never showed both targets: connected=%ld%s", connected, detail);
    else OK("race-connect", "%ld calls: connected=%ld (all loopback)%s", iterations, connected, detail);
}

static void usage(void) {
    fprintf(stderr,
            "usage: attack tty|abi|ns|mount|fds|ptrace|iouring|setuid|kernel|proc|stopped|flood\n"
            "       attack escape SENTINEL HANDLE_HEX HANDLE_TYPE | exe [HOST_BINARY...] | sockets DAEMON_SOCKET\n"
            "       attack seccomp EPOCH | fill DIR | files DIR COUNT | race-stat|race-utime|race-connect N | race-exit N EPOCH\n");
    exit(2);
}

int main(int argc, char **argv) {
    require_sandbox();
    if (argc < 2) usage();
    const char *c = argv[1];
    if (strcmp(c, "tty") == 0) cmd_tty();
    else if (strcmp(c, "abi") == 0) cmd_abi();
    else if (strcmp(c, "ns") == 0) cmd_ns();
    else if (strcmp(c, "mount") == 0) cmd_mount();
    else if (strcmp(c, "escape") == 0 && argc == 5) cmd_escape(argv[2], argv[3], atoi(argv[4]));
    else if (strcmp(c, "fds") == 0) cmd_fds();
    else if (strcmp(c, "exe") == 0) cmd_exe(argc - 2, argv + 2);
    else if (strcmp(c, "ptrace") == 0) cmd_ptrace();
    else if (strcmp(c, "iouring") == 0) cmd_iouring();
    else if (strcmp(c, "setuid") == 0) cmd_setuid();
    else if (strcmp(c, "kernel") == 0) cmd_kernel();
    else if (strcmp(c, "proc") == 0) cmd_proc();
    else if (strcmp(c, "sockets") == 0 && argc == 3) cmd_sockets(argv[2]);
    else if (strcmp(c, "seccomp") == 0 && argc == 3) cmd_seccomp(atol(argv[2]));
    else if (strcmp(c, "fill") == 0 && argc == 3) cmd_fill(argv[2]);
    else if (strcmp(c, "files") == 0 && argc == 4) cmd_files(argv[2], atol(argv[3]));
    else if (strcmp(c, "flood") == 0) cmd_flood();
    else if (strcmp(c, "stopped") == 0) cmd_stopped();
    else if (strcmp(c, "race-stat") == 0 && argc == 3) race_paths("stat", atol(argv[2]));
    else if (strcmp(c, "race-utime") == 0 && argc == 3) race_paths("utime", atol(argv[2]));
    else if (strcmp(c, "race-connect") == 0 && argc == 3) race_connect(atol(argv[2]));
    else if (strcmp(c, "race-exit") == 0 && argc == 4) race_exit(atol(argv[2]), atol(argv[3]));
    else usage();
    return failures ? 1 : 0;
}
