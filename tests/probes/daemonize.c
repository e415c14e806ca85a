/* Leaves a setsid'd, double-forked sleeper and a stopped process behind, writes
 * their pids to /out/pids, and exits at once. Nothing may outlive the job. */
#include <signal.h>
#include <sys/wait.h>
#include "probe_guard.h"

int main(void) {
    require_sandbox();
    int pfd[2];
    if (pipe(pfd)) return 1;
    pid_t a = fork();
    if (a == 0) {
        setsid();
        pid_t b = fork();
        if (b == 0) {
            close(pfd[0]);
            dprintf(pfd[1], "%d\n", getpid());
            close(pfd[1]);
            for (;;) pause();
        }
        _exit(0);
    }
    waitpid(a, NULL, 0);
    pid_t s = fork();
    if (s == 0) { raise(SIGSTOP); for (;;) pause(); }
    close(pfd[1]);
    char buf[64] = {0};
    read(pfd[0], buf, sizeof buf - 1);
    FILE *f = fopen("/out/pids", "w");
    fprintf(f, "%s%d\n", buf, s);
    fclose(f);
    printf("left behind: %s and %d\n", buf, s);
    return 0;
}
