/* Makes the calls named on its command line, each once, with harmless arguments,
 * and prints "name errno" (0: it succeeded) per call, in order:
 *   unshare        unshare(CLONE_NEWUSER)               (build: deny EPERM, @namespaces)
 *   clone_newuser  clone(CLONE_NEWUSER|SIGCHLD)         (build: conditional deny EPERM)
 *   mount          mount(0, "/tmp", 0, MS_REMOUNT, 0)   (deny EPERM, @mount)
 *   keyctl         keyctl(KEYCTL_GET_KEYRING_ID, ...)   (deny EPERM, @keyring)
 *   ptrace         ptrace(PTRACE_ATTACH, 1)             (deny EPERM, @process-tracing)
 *   socket_packet  socket(AF_PACKET, SOCK_RAW, 0)       (conditional deny EAFNOSUPPORT)
 *   socket_unix    socket(AF_UNIX, SOCK_STREAM, 0)      (build: allowed; strict: deny EAFNOSUPPORT)
 *   unnamed        syscall 1000                         (no rule: the policy default, ENOSYS)
 *   getpid         getpid()                             (allowed; a user policy may log it)
 */
#include <errno.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "probe_guard.h"

static void report(const char *name, long rc) {
    printf("%s %d\n", name, rc < 0 ? errno : 0);
    fflush(stdout);
}

int main(int argc, char **argv) {
    require_sandbox();
    for (int i = 1; i < argc; i++) {
        const char *c = argv[i];
        errno = 0;
        if (strcmp(c, "unshare") == 0) {
            report(c, syscall(SYS_unshare, CLONE_NEWUSER));
        } else if (strcmp(c, "clone_newuser") == 0) {
            long rc = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
            if (rc == 0) _exit(0);
            if (rc > 0) waitpid((pid_t)rc, NULL, 0);
            report(c, rc);
        } else if (strcmp(c, "mount") == 0) {
            report(c, syscall(SYS_mount, 0, "/tmp", 0, MS_REMOUNT, 0));
        } else if (strcmp(c, "keyctl") == 0) {
            report(c, syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0, 0, 0));
        } else if (strcmp(c, "ptrace") == 0) {
            report(c, syscall(SYS_ptrace, PTRACE_ATTACH, 1, 0, 0));
        } else if (strcmp(c, "socket_packet") == 0) {
            long fd = syscall(SYS_socket, AF_PACKET, SOCK_RAW, 0);
            report(c, fd);
            if (fd >= 0) close((int)fd);
        } else if (strcmp(c, "socket_unix") == 0) {
            long fd = syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0);
            report(c, fd);
            if (fd >= 0) close((int)fd);
        } else if (strcmp(c, "unnamed") == 0) {
            report(c, syscall(1000));
        } else if (strcmp(c, "getpid") == 0) {
            report(c, syscall(SYS_getpid));
        } else {
            fprintf(stderr, "denied: unknown call %s\n", c);
            return 2;
        }
    }
    return 0;
}
