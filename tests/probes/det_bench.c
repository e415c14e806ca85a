/* Workloads for bench/det_bench.sh (timed from outside: inside, time is virtual).
 *   det_bench clock N          N clock_gettime(CLOCK_MONOTONIC) through the vDSO
 *   det_bench getdents N DIR   N times: rewind DIR and read it whole (getdents64)
 *   det_bench stat N PATH      N stat(PATH)
 *   det_bench getpid N         N getpid (not virtualized: the filter's own cost) */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "probe_guard.h"

int main(int argc, char **argv) {
    require_sandbox();
    if (argc < 3) return 2;
    long n = atol(argv[2]);
    unsigned long long sink = 0;
    if (strcmp(argv[1], "clock") == 0) {
        struct timespec ts;
        for (long i = 0; i < n; i++) {
            clock_gettime(CLOCK_MONOTONIC, &ts);
            sink += (unsigned long long)ts.tv_nsec;
        }
    } else if (strcmp(argv[1], "getdents") == 0 && argc > 3) {
        int fd = open(argv[3], O_RDONLY | O_DIRECTORY);
        if (fd < 0) return 3;
        static char buf[1 << 17];
        for (long i = 0; i < n; i++) {
            lseek(fd, 0, SEEK_SET);
            long got;
            while ((got = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) sink += (unsigned long long)got;
        }
    } else if (strcmp(argv[1], "stat") == 0 && argc > 3) {
        struct stat st;
        for (long i = 0; i < n; i++) {
            stat(argv[3], &st);
            sink += (unsigned long long)st.st_size;
        }
    } else if (strcmp(argv[1], "getpid") == 0) {
        for (long i = 0; i < n; i++) sink += (unsigned long long)syscall(SYS_getpid);
    } else {
        return 2;
    }
    printf("%s %ld done %llu\n", argv[1], n, sink & 1);
    return 0;
}
