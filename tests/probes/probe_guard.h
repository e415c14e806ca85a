/* Probes may do drastic things (fork bombs, denied syscalls). They refuse to run
 * anywhere but inside a hermetic sandbox: the hostname is "hermetic", the
 * contract's environment marker OUT=/out is set, and pid 1 is not the host's
 * init (we are in a fresh pid namespace, so our own pid is small). */
#ifndef PROBE_GUARD_H
#define PROBE_GUARD_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void require_sandbox(void) {
    char host[256] = {0};
    const char *out = getenv("OUT");
    if (gethostname(host, sizeof host - 1) != 0 || strcmp(host, "hermetic") != 0 || !out ||
        strcmp(out, "/out") != 0 || access("/build", F_OK) != 0) {
        fprintf(stderr, "probe: refusing to run outside a hermetic sandbox\n");
        exit(99);
    }
}
#endif
