/* Determinism probe: every way a program reads time. Prints what it sees; under
 * the determinism engine two runs print the same bytes.
 *   det_time [all|sleep-rel|sleep-abs|cond-wait|timerfd-abs|select|poll|busy] */
#include <elf.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/times.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include "probe_guard.h"

static void show(const char *what, struct timespec ts) { printf("%s %lld.%09ld\n", what, (long long)ts.tv_sec, ts.tv_nsec); }

/* The vDSO's own clock_gettime, found the way Go and other runtimes find it. */
typedef int (*vdso_cgt)(clockid_t, struct timespec *);
static vdso_cgt find_vdso(const char *want) {
    const unsigned char *base = (const unsigned char *)getauxval(AT_SYSINFO_EHDR);
    if (!base) return NULL;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)base;
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(base + eh->e_shoff);
    for (int i = 0; i < eh->e_shnum; i++) {
        if (sh[i].sh_type != SHT_DYNSYM) continue;
        const Elf64_Sym *sym = (const Elf64_Sym *)(base + sh[i].sh_offset);
        const char *str = (const char *)(base + sh[sh[i].sh_link].sh_offset);
        for (size_t k = 0; k < sh[i].sh_size / sizeof(Elf64_Sym); k++)
            if (strcmp(str + sym[k].st_name, want) == 0) return (vdso_cgt)(base + sym[k].st_value);
    }
    return NULL;
}

static struct timespec now(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts;
}

static void all(void) {
    static const struct { clockid_t id; const char *name; } clocks[] = {
        {CLOCK_REALTIME, "realtime"}, {CLOCK_MONOTONIC, "monotonic"}, {CLOCK_PROCESS_CPUTIME_ID, "process"},
        {CLOCK_THREAD_CPUTIME_ID, "thread"}, {CLOCK_MONOTONIC_RAW, "raw"}, {CLOCK_REALTIME_COARSE, "realtime_coarse"},
        {CLOCK_MONOTONIC_COARSE, "monotonic_coarse"}, {CLOCK_BOOTTIME, "boottime"}, {CLOCK_TAI, "tai"},
    };
    for (size_t i = 0; i < sizeof clocks / sizeof clocks[0]; i++) {
        show(clocks[i].name, now(clocks[i].id));
        struct timespec res;
        clock_getres(clocks[i].id, &res);
        show("  res", res);
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    printf("gettimeofday %lld.%06ld\n", (long long)tv.tv_sec, (long)tv.tv_usec);
    printf("time %lld\n", (long long)time(NULL));
    struct timespec ts;
    syscall(SYS_clock_gettime, CLOCK_REALTIME, &ts);
    show("raw-syscall realtime", ts);
    vdso_cgt v = find_vdso("__vdso_clock_gettime");
    if (v) {
        v(CLOCK_REALTIME, &ts);
        show("vdso realtime", ts);
        v(CLOCK_MONOTONIC, &ts);
        show("vdso monotonic", ts);
    } else {
        printf("vdso none\n");
    }
    unsigned aux = 7;
    unsigned long long a = __rdtsc(), b = __rdtscp(&aux);
    printf("rdtsc %llu rdtscp %llu aux %u\n", a, b, aux);
    struct tms t;
    clock_t c = times(&t);
    printf("times %ld utime %ld\n", (long)c, (long)t.tms_utime);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("rusage utime %ld.%06ld\n", (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec);
    printf("clock %ld\n", (long)clock());
    struct tm tm;
    time_t tt = time(NULL);
    gmtime_r(&tt, &tm);
    char buf[64];
    strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    printf("date %s\n", buf);
}

static double vsec(struct timespec a, struct timespec b) { return (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9; }

int main(int argc, char **argv) {
    require_sandbox();
    const char *mode = argc > 1 ? argv[1] : "all";
    if (strcmp(mode, "all") == 0) {
        all();
        return 0;
    }
    if (strcmp(mode, "exec-order") == 0) {
        /* Clock reads (served in the process), then an exec: the new image's
         * first read must come after the last one of the old. */
        struct timespec ts = now(CLOCK_REALTIME);
        for (int i = 0; i < 1000; i++) ts = now(CLOCK_REALTIME);
        show("before-exec", ts);
        fflush(stdout);
        execl("/proc/self/exe", argv[0], "exec-after", (char *)NULL);
        perror("exec");
        return 1;
    }
    if (strcmp(mode, "exec-after") == 0) {
        show("after-exec", now(CLOCK_REALTIME));
        return 0;
    }
    struct timespec m0 = now(CLOCK_MONOTONIC), r0 = now(CLOCK_REALTIME);
    if (strcmp(mode, "sleep-rel") == 0) {
        struct timespec d = {0, 500000000};
        nanosleep(&d, NULL);
        nanosleep(&d, NULL);
    } else if (strcmp(mode, "sleep-abs") == 0) {
        struct timespec dl = m0;
        dl.tv_sec += 1;
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &dl, NULL) == EINTR) {
        }
    } else if (strcmp(mode, "sleep-abs-realtime") == 0) {
        struct timespec dl = r0;
        dl.tv_sec += 1;
        while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &dl, NULL) == EINTR) {
        }
    } else if (strcmp(mode, "cond-wait") == 0) {
        /* What a JVM or python does: wait on a condition with a deadline 1 s ahead. */
        pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_t cv;
        pthread_cond_init(&cv, &ca);
        struct timespec dl = m0;
        dl.tv_sec += 1;
        pthread_mutex_lock(&mu);
        int rc;
        do rc = pthread_cond_timedwait(&cv, &mu, &dl); while (rc == 0);
        pthread_mutex_unlock(&mu);
        printf("cond rc %s\n", rc == ETIMEDOUT ? "ETIMEDOUT" : strerror(rc));
        /* And the CLOCK_REALTIME flavour (FUTEX_CLOCK_REALTIME). */
        pthread_cond_t cv2 = PTHREAD_COND_INITIALIZER;
        struct timespec dl2 = now(CLOCK_REALTIME);
        dl2.tv_nsec += 200000000;
        if (dl2.tv_nsec >= 1000000000) dl2.tv_sec++, dl2.tv_nsec -= 1000000000;
        pthread_mutex_lock(&mu);
        rc = pthread_cond_timedwait(&cv2, &mu, &dl2);
        pthread_mutex_unlock(&mu);
        printf("cond2 rc %s\n", rc == ETIMEDOUT ? "ETIMEDOUT" : strerror(rc));
    } else if (strcmp(mode, "timerfd-abs") == 0) {
        int fd = timerfd_create(CLOCK_MONOTONIC, 0);
        struct itimerspec its = {{0, 0}, m0};
        its.it_value.tv_sec += 1;
        if (timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL) != 0) printf("timerfd_settime: %s\n", strerror(errno));
        uint64_t ticks = 0;
        if (read(fd, &ticks, sizeof ticks) != sizeof ticks) printf("timerfd read: %s\n", strerror(errno));
        printf("timerfd ticks %llu\n", (unsigned long long)ticks);
    } else if (strcmp(mode, "select") == 0) {
        struct timeval tv = {0, 300000};
        select(0, NULL, NULL, NULL, &tv);
        struct timespec ts = {0, 300000000};
        pselect(0, NULL, NULL, NULL, &ts, NULL);
    } else if (strcmp(mode, "poll") == 0) {
        poll(NULL, 0, 300);
        struct timespec ts = {0, 300000000};
        ppoll(NULL, 0, &ts, NULL);
    } else if (strcmp(mode, "busy") == 0) {
        /* A loop that waits for the clock itself to move on. */
        struct timespec t;
        long n = 0;
        do {
            t = now(CLOCK_MONOTONIC);
            n++;
        } while (vsec(m0, t) < 0.01);
        printf("busy reads %ld\n", n);
    } else if (strcmp(mode, "cpu-budget") == 0) {
        /* What lz4's fuzzers do: work until 2 s of CPU time have been used. */
        clock_t c0 = clock();
        long n = 0;
        do n++; while (clock() - c0 < 2 * CLOCKS_PER_SEC);
        printf("cpu-budget reads %ld\n", n);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    struct timespec m1 = now(CLOCK_MONOTONIC), r1 = now(CLOCK_REALTIME);
    show("start", r0);
    show("end", r1);
    printf("elapsed %.6f monotonic %.6f\n", vsec(r0, r1), vsec(m0, m1));
    return 0;
}
