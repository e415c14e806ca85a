#include "syscall-policy/groups.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "syscall-policy/policy.hpp"
#include "syscall-policy/syscall_names.hpp"

namespace hermetic::policy {

namespace {

// Contents follow systemd's src/shared/seccomp-util.c where a group of the same
// name exists there, with two deliberate differences: io_uring is its own group
// (@io-uring, not part of @aio), and setns/unshare/clone3 are not in @process
// (they are @namespaces and a plain name), so allowing @process never grants a
// namespace escape by accident.
std::vector<SyscallGroup> make_groups() {
    std::vector<SyscallGroup> g = {
        {"@aio", "Linux asynchronous I/O (io_submit family; io_uring is @io-uring)",
         {"io_cancel", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64",
          "io_setup", "io_submit"}},
        {"@basic-io", "Reading, writing, seeking and closing file descriptors",
         {"_llseek", "close", "close_range", "dup", "dup2", "dup3", "lseek", "pread64", "preadv",
          "preadv2", "pwrite64", "pwritev", "pwritev2", "read", "readv", "write", "writev"}},
        {"@chown", "Changing file ownership",
         {"chown", "chown32", "fchown", "fchown32", "fchownat", "lchown", "lchown32"}},
        {"@clock-set", "Setting the system clock",
         {"adjtimex", "clock_adjtime", "clock_adjtime64", "clock_settime", "clock_settime64",
          "settimeofday", "stime"}},
        {"@cpu-emulation", "Virtual 8086 mode and LDT changes",
         {"modify_ldt", "vm86", "vm86old"}},
        {"@debug", "Debugging, tracing and performance monitoring",
         {"@process-tracing", "lookup_dcookie", "perf_event_open"}},
        {"@default", "What nearly every program uses: memory, threads, identity, time",
         {"@time-read", "arch_prctl", "brk", "execve", "exit", "exit_group", "futex",
          "futex_requeue", "futex_time64", "futex_wait", "futex_waitv", "futex_wake",
          "get_robust_list", "get_thread_area", "getegid", "getegid32", "geteuid", "geteuid32",
          "getgid", "getgid32", "getgroups", "getgroups32", "getpgid", "getpgrp", "getpid",
          "getppid", "getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32",
          "getrlimit", "getsid", "gettid", "getuid", "getuid32", "membarrier", "mmap", "mmap2",
          "munmap", "nanosleep", "clock_nanosleep", "clock_nanosleep_time64", "pause",
          "prlimit64", "restart_syscall", "rseq", "rt_sigreturn", "sched_getaffinity",
          "sched_yield", "set_robust_list", "set_thread_area", "set_tid_address", "sigreturn",
          "ugetrlimit"}},
        {"@directory-read", "Reading directory entries", {"getdents", "getdents64"}},
        {"@file-system", "Paths, file metadata, extended attributes, inotify",
         {"access", "chdir", "chmod", "close", "creat", "faccessat", "faccessat2", "fallocate",
          "fchdir", "fchmod", "fchmodat", "fchmodat2", "fcntl", "fcntl64", "fgetxattr",
          "flistxattr", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs",
          "fstatfs64", "ftruncate", "ftruncate64", "futimesat", "getcwd", "getdents",
          "getdents64", "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1",
          "inotify_rm_watch", "lgetxattr", "link", "linkat", "listxattr", "llistxattr",
          "lremovexattr", "lsetxattr", "lstat", "lstat64", "mkdir", "mkdirat", "mknod",
          "mknodat", "newfstatat", "oldfstat", "oldlstat", "oldstat", "open", "openat",
          "openat2", "readlink", "readlinkat", "removexattr", "rename", "renameat", "renameat2",
          "rmdir", "setxattr", "stat", "stat64", "statfs", "statfs64", "statx", "symlink",
          "symlinkat", "truncate", "truncate64", "unlink", "unlinkat", "utime", "utimensat",
          "utimensat_time64", "utimes"}},
        {"@io-event", "Waiting for events on file descriptors",
         {"_newselect", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old",
          "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2",
          "poll", "ppoll", "ppoll_time64", "pselect6", "pselect6_time64", "select"}},
        {"@io-uring", "io_uring: its operations are invisible to seccomp",
         {"io_uring_enter", "io_uring_register", "io_uring_setup"}},
        {"@ipc", "Pipes, memfd, SysV IPC, POSIX message queues",
         {"memfd_create", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
          "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink",
          "msgctl", "msgget", "msgrcv", "msgsnd", "pipe", "pipe2", "semctl", "semget", "semop",
          "semtimedop", "semtimedop_time64", "shmat", "shmctl", "shmdt", "shmget"}},
        {"@kernel", "Kernel-global state: logs, accounting, kexec, BPF, perf, handles, ...",
         {"_sysctl", "acct", "bpf", "fanotify_init", "fanotify_mark", "kexec_file_load",
          "kexec_load", "lookup_dcookie", "name_to_handle_at", "nfsservctl", "open_by_handle_at",
          "perf_event_open", "quotactl", "quotactl_fd", "syslog", "userfaultfd", "uselib",
          "vhangup"}},
        {"@keyring", "The kernel keyring (not namespaced)", {"add_key", "keyctl", "request_key"}},
        {"@memlock", "Locking memory", {"mlock", "mlock2", "mlockall", "munlock", "munlockall"}},
        {"@module", "Loading and unloading kernel modules",
         {"delete_module", "finit_module", "init_module"}},
        {"@mount", "Mounting, the new mount API, chroot and pivot_root",
         {"@new-mount-api", "chroot", "mount", "pivot_root", "umount", "umount2"}},
        {"@namespaces", "Entering or creating namespaces", {"setns", "unshare"}},
        {"@network-io", "Sockets (on i386 also through socketcall)",
         {"accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt",
          "listen", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "send",
          "sendmmsg", "sendmsg", "sendto", "setsockopt", "shutdown", "socket", "socketpair"}},
        {"@new-mount-api", "fsopen and friends (CVE-2021-41133 class)",
         {"fsconfig", "fsmount", "fsopen", "fspick", "mount_setattr", "move_mount", "open_tree"}},
        {"@numa", "NUMA memory policy", {"get_mempolicy", "mbind", "migrate_pages", "move_pages",
                                         "set_mempolicy", "set_mempolicy_home_node"}},
        {"@obsolete", "Unused or long-removed syscalls",
         {"_sysctl", "afs_syscall", "bdflush", "break", "create_module", "ftime",
          "get_kernel_syms", "getpmsg", "gtty", "idle", "lock", "mpx", "prof", "profil",
          "putpmsg", "query_module", "security", "sgetmask", "ssetmask", "stime", "stty", "sysfs",
          "tuxcall", "ulimit", "uselib", "ustat", "vserver"}},
        {"@pkey", "Memory protection keys", {"pkey_alloc", "pkey_free", "pkey_mprotect"}},
        {"@privileged", "Calls that need privileges a sandboxed build never has",
         {"@chown", "@clock-set", "@module", "@raw-io", "@reboot", "@swap", "_sysctl", "acct",
          "bpf", "capset", "chroot", "fanotify_init", "fanotify_mark", "nfsservctl",
          "open_by_handle_at", "pivot_root", "quotactl", "quotactl_fd", "setdomainname",
          "setfsuid", "setfsuid32", "setgroups", "setgroups32", "sethostname", "setresuid",
          "setresuid32", "setreuid", "setreuid32", "setuid", "setuid32", "vhangup"}},
        {"@process", "Creating, running, signalling and waiting for processes",
         {"capget", "clone", "execve", "execveat", "fork", "getrusage", "kill", "pidfd_open",
          "pidfd_send_signal", "prctl", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "tgkill",
          "times", "tkill", "vfork", "wait4", "waitid", "waitpid"}},
        {"@process-tracing", "Reading or controlling another process",
         {"kcmp", "pidfd_getfd", "process_vm_readv", "process_vm_writev", "ptrace"}},
        {"@random", "Kernel random numbers", {"getrandom"}},
        {"@raw-io", "Raw I/O port access", {"ioperm", "iopl"}},
        {"@reboot", "Rebooting and kexec", {"kexec_file_load", "kexec_load", "reboot"}},
        {"@resources", "Scheduling, priorities, resource limits, NUMA placement",
         {"@numa", "ioprio_set", "nice", "prlimit64", "sched_setaffinity", "sched_setattr",
          "sched_setparam", "sched_setscheduler", "setpriority", "setrlimit"}},
        {"@sandbox", "Self-sandboxing: seccomp and Landlock",
         {"landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "seccomp"}},
        {"@setuid", "Changing user and group ids",
         {"setgid", "setgid32", "setgroups", "setgroups32", "setregid", "setregid32", "setresgid",
          "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32", "setuid",
          "setuid32"}},
        {"@signal", "Signal handlers and masks",
         {"rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigsuspend", "rt_sigtimedwait",
          "rt_sigtimedwait_time64", "sigaction", "sigaltstack", "signal", "signalfd",
          "signalfd4", "sigpending", "sigprocmask", "sigsuspend"}},
        {"@swap", "Enabling and disabling swap", {"swapoff", "swapon"}},
        {"@sync", "Flushing files to storage",
         {"fdatasync", "fsync", "msync", "sync", "sync_file_range", "syncfs"}},
        {"@time-read", "Reading clocks",
         {"clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64",
          "gettimeofday", "time"}},
        {"@timer", "Interval timers and timerfd",
         {"alarm", "getitimer", "setitimer", "timer_create", "timer_delete", "timer_getoverrun",
          "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
          "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
          "timerfd_settime64", "times"}},
    };
    std::sort(g.begin(), g.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return g;
}

void expand_into(std::string_view name, std::set<std::string>& out, std::vector<std::string_view>& stack) {
    const SyscallGroup* group = find_syscall_group(name);
    if (!group) throw PolicyError("unknown syscall group \"" + std::string(name) + "\"");
    if (std::find(stack.begin(), stack.end(), name) != stack.end())
        throw PolicyError("syscall group \"" + std::string(name) + "\" contains itself");
    stack.push_back(name);
    for (std::string_view member : group->members) {
        if (member.starts_with('@'))
            expand_into(member, out, stack);
        else
            out.emplace(member);
    }
    stack.pop_back();
}

}  // namespace

const std::vector<SyscallGroup>& syscall_groups() {
    static const std::vector<SyscallGroup> groups = make_groups();
    return groups;
}

const SyscallGroup* find_syscall_group(std::string_view name) {
    const auto& groups = syscall_groups();
    auto it = std::lower_bound(groups.begin(), groups.end(), name,
                               [](const SyscallGroup& g, std::string_view n) { return g.name < n; });
    return it != groups.end() && it->name == name ? &*it : nullptr;
}

std::vector<std::string> expand_syscall_group(std::string_view name) {
    std::set<std::string> names;
    std::vector<std::string_view> stack;
    expand_into(name, names, stack);
    return {names.begin(), names.end()};
}

}  // namespace hermetic::policy

namespace hermetic::policy::detail {

const std::vector<int>& group_member_ids(std::string_view name) {
    struct Entry {
        std::vector<int> ids;
        std::string error;
    };
    static const std::map<std::string_view, Entry> cache = [] {
        std::map<std::string_view, Entry> out;
        for (const SyscallGroup& g : syscall_groups()) {
            Entry& e = out[g.name];
            for (const std::string& member : expand_syscall_group(g.name)) {
                int id = name_id(member);
                if (id < 0) {
                    e.error = "unknown syscall \"" + member + "\" in " + std::string(g.name);
                    break;
                }
                e.ids.push_back(id);
            }
        }
        return out;
    }();
    auto it = cache.find(name);
    if (it == cache.end()) throw PolicyError("unknown syscall group \"" + std::string(name) + "\"");
    if (!it->second.error.empty()) throw PolicyError(it->second.error);
    return it->second.ids;
}

}  // namespace hermetic::policy::detail
