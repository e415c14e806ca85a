/* memhog MIB: allocates and touches MIB mebibytes, then reports. */
#include <stdlib.h>
#include <string.h>
#include "probe_guard.h"

int main(int argc, char **argv) {
    require_sandbox();
    long mib = argc > 1 ? atol(argv[1]) : 1024;
    for (long i = 0; i < mib; ++i) {
        char *p = malloc(1 << 20);
        if (!p) { printf("malloc failed at %ld MiB\n", i); return 1; }
        memset(p, 1, 1 << 20);
    }
    printf("allocated %ld MiB\n", mib);
    return 0;
}
