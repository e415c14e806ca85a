#include "sandbox/process_util.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>

#include "common/sys_error.hpp"

namespace hermetic::sandbox {

void close_fds_except(std::vector<int> keep) {
    std::sort(keep.begin(), keep.end());
    unsigned lo = 0;
    for (int fd : keep) {
        if (fd < 0) continue;
        if (static_cast<unsigned>(fd) > lo && ::syscall(SYS_close_range, lo, static_cast<unsigned>(fd) - 1, 0) != 0)
            throw_errno("close_range");
        lo = static_cast<unsigned>(fd) + 1;
    }
    if (::syscall(SYS_close_range, lo, UINT_MAX, 0) != 0) throw_errno("close_range");
}

void ensure_stdio_open() {
    for (int fd = 0; fd <= 2; ++fd) {
        if (::fcntl(fd, F_GETFD) >= 0) continue;
        int n = ::open("/dev/null", O_RDWR);  // takes the lowest free number: fd
        if (n < 0) throw_errno("open /dev/null");
        if (n != fd) throw SysError("stdio repair", EBADF);
    }
}

void harden_child_process() {
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) throw_errno("prctl(PR_SET_PDEATHSIG)");
    if (::prctl(PR_SET_DUMPABLE, 0) != 0) throw_errno("prctl(PR_SET_DUMPABLE)");
}

int wait_for(pid_t pid) {
    int status = 0;
    for (;;) {
        pid_t r = ::waitpid(pid, &status, __WALL);
        if (r == pid) return status;
        if (r < 0 && errno == EINTR) continue;
        throw_errno("waitpid");
    }
}

int exit_status_of(int wait_status) {
    if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
    if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
    return 255;
}

}  // namespace hermetic::sandbox
