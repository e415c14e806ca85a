/* Forks until fork fails (the pids limit), holds the children, reports. */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include "probe_guard.h"

int main(void) {
    require_sandbox();
    static pid_t kids[100000];
    long n = 0;
    int err = 0;
    for (; n < 100000; ++n) {
        pid_t p = fork();
        if (p < 0) { err = errno; break; }
        if (p == 0) { pause(); _exit(0); }
        kids[n] = p;
    }
    printf("fork failed after %ld children (errno %d)\n", n, err);
    fflush(stdout);
    for (long i = 0; i < n; ++i) kill(kids[i], SIGKILL);
    while (wait(NULL) > 0) {}
    return 0;
}
