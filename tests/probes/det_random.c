/* Determinism probe: every source of random bytes and host identity a program
 * reads without help (prints hex; two runs with one seed print the same). */
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/random.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "probe_guard.h"

static void hex(const char *what, const unsigned char *b, size_t n) {
    printf("%s ", what);
    for (size_t i = 0; i < n; i++) printf("%02x", b[i]);
    printf("\n");
}

static void file(const char *path, size_t max) {
    char buf[4096];
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("%s: cannot open\n", path);
        return;
    }
    ssize_t n = read(fd, buf, max < sizeof buf ? max : sizeof buf);
    close(fd);
    if (n < 0) n = 0;
    printf("%s: %.*s%s", path, (int)n, buf, n > 0 && buf[n - 1] == '\n' ? "" : "\n");
}

int main(int argc, char **argv) {
    require_sandbox();
    unsigned char b[32];
    hex("at_random", (const unsigned char *)getauxval(AT_RANDOM), 16);
    getrandom(b, sizeof b, 0);
    hex("getrandom", b, sizeof b);
    syscall(SYS_getrandom, b, 16, GRND_NONBLOCK);
    hex("getrandom-raw", b, 16);
    int fd = open("/dev/urandom", O_RDONLY);
    read(fd, b, sizeof b);
    hex("urandom", b, sizeof b);
    read(fd, b, sizeof b);
    hex("urandom2", b, sizeof b);
    close(fd);
    fd = open("/dev/random", O_RDONLY);
    read(fd, b, 16);
    hex("random", b, 16);
    close(fd);
    file("/proc/sys/kernel/random/uuid", 64);
    file("/proc/sys/kernel/random/uuid", 64);
    file("/proc/sys/kernel/random/boot_id", 64);
    printf("rand %d\n", rand());  /* glibc's default seed: deterministic anyway */
    /* A child's randomness must depend on who it is, not on when it ran. */
    for (int i = 0; i < 2; i++) {
        pid_t p = fork();
        if (p == 0) {
            getrandom(b, 8, 0);
            char what[32];
            snprintf(what, sizeof what, "child%d", i);
            hex(what, b, 8);
            fflush(stdout);
            _exit(0);
        }
        waitpid(p, NULL, 0);
    }
    if (argc > 1 && strcmp(argv[1], "identity") == 0) {
        struct utsname u;
        uname(&u);
        printf("uname %s %s %s %s %s\n", u.sysname, u.nodename, u.release, u.version, u.machine);
        struct sysinfo si;
        sysinfo(&si);
        printf("sysinfo uptime %ld ram %lu procs %u\n", si.uptime, si.totalram, si.procs);
        unsigned cpu = 99, node = 99;
        syscall(SYS_getcpu, &cpu, &node, NULL);
        printf("getcpu %u %u sched_getcpu %d\n", cpu, node, sched_getcpu());
        /* The rseq area glibc registered at start-up (0: refused; the kernel
         * would write the real CPU into it). */
        printf("rseq_size %u\n", __rseq_size);
        cpu_set_t set;
        CPU_ZERO(&set);
        sched_getaffinity(0, sizeof set, &set);
        printf("affinity %d nprocs %d conf %ld onln %ld\n", CPU_COUNT(&set), get_nprocs(), sysconf(_SC_NPROCESSORS_CONF),
               sysconf(_SC_NPROCESSORS_ONLN));
        char host[256] = {0};
        gethostname(host, sizeof host);
        printf("hostname %s\n", host);
        file("/proc/version", 4096);
        file("/proc/sys/kernel/osrelease", 4096);
        file("/proc/sys/kernel/version", 4096);
        file("/proc/cmdline", 4096);
        file("/proc/uptime", 4096);
        file("/proc/loadavg", 4096);
        file("/proc/meminfo", 200);
        file("/proc/stat", 4096);
        file("/proc/cpuinfo", 300);
        file("/etc/machine-id", 4096);
        file("/sys/devices/system/cpu/online", 4096);
    }
    return 0;
}
