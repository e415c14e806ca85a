/* Determinism probe: directory order and file metadata.
 *   det_fs list DIR [bufsize]   entries of DIR in getdents order, read with a
 *                               small buffer, plus seekdir/rewinddir checks
 *   det_fs stat PATH...         virtualized stat/lstat/statx of each path
 *   det_fs create               files made in order, their times and inodes */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "probe_guard.h"

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

static int list(const char *dir, size_t bufsize) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        printf("open %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char *buf = malloc(bufsize);
    long total = 0, calls = 0;
    unsigned long long ino_sum = 0;
    int64_t third_off = -1;
    char third[256] = "";
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buf, bufsize);
        if (n < 0) {
            printf("getdents64: %s\n", strerror(errno));
            return 1;
        }
        if (n == 0) break;
        calls++;
        for (long off = 0; off < n;) {
            struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
            printf("%s %llu %u\n", d->d_name, (unsigned long long)d->d_ino, d->d_type);
            if (total == 2) {
                third_off = d->d_off;
                snprintf(third, sizeof third, "%s", d->d_name);
            }
            ino_sum += d->d_ino;
            total++;
            off += d->d_reclen;
        }
    }
    printf("entries %ld\n", total);
    /* The position after the third entry leads to the fourth, on any buffer. */
    if (third_off >= 0) {
        lseek(fd, third_off, SEEK_SET);
        long n = syscall(SYS_getdents64, fd, buf, bufsize);
        if (n > 0) printf("after %s: %s\n", third, ((struct linux_dirent64 *)buf)->d_name);
    }
    /* Rewind: the same first entries again. */
    lseek(fd, 0, SEEK_SET);
    long n = syscall(SYS_getdents64, fd, buf, bufsize);
    if (n > 0) printf("rewound first: %s\n", ((struct linux_dirent64 *)buf)->d_name);
    close(fd);
    /* readdir(3) (libc's own buffer size) agrees. */
    DIR *d = opendir(dir);
    struct dirent *e;
    long k = 0;
    unsigned long long h = 1469598103934665603ULL;
    while ((e = readdir(d))) {
        for (const char *c = e->d_name; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ULL;
        h = (h ^ '/') * 1099511628211ULL;
        k++;
    }
    closedir(d);
    printf("readdir entries %ld order-hash %llx\n", k, h);
    free(buf);
    return 0;
}

static void show_stat(FILE *out, const char *what, const struct stat *st) {
    fprintf(out, "%s dev %llx ino %llu mode %o nlink %lu uid %u gid %u size %lld blocks %lld blksize %ld atime %lld.%09ld mtime %lld.%09ld ctime %lld.%09ld\n",
           what, (unsigned long long)st->st_dev, (unsigned long long)st->st_ino, st->st_mode, (unsigned long)st->st_nlink,
           st->st_uid, st->st_gid, (long long)st->st_size, (long long)st->st_blocks, (long)st->st_blksize,
           (long long)st->st_atim.tv_sec, st->st_atim.tv_nsec, (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
           (long long)st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
}

static void stat_one_to(FILE *out, const char *path) {
    struct stat st;
    if (stat(path, &st) == 0) show_stat(out, "stat", &st);
    else fprintf(out, "stat %s: %s\n", path, strerror(errno));
    if (lstat(path, &st) == 0) show_stat(out, "lstat", &st);
    else fprintf(out, "lstat %s: %s\n", path, strerror(errno));
    struct statx sx;
    if (statx(AT_FDCWD, path, 0, STATX_ALL, &sx) == 0)
        fprintf(out, "statx ino %llu btime %lld.%09u mnt %llu dev %u:%u size %llu nlink %u mask %x\n",
                (unsigned long long)sx.stx_ino, (long long)sx.stx_btime.tv_sec, sx.stx_btime.tv_nsec,
                (unsigned long long)sx.stx_mnt_id, sx.stx_dev_major, sx.stx_dev_minor, (unsigned long long)sx.stx_size,
                sx.stx_nlink, sx.stx_mask);
    else fprintf(out, "statx %s: %s\n", path, strerror(errno));
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        if (fstat(fd, &st) == 0) show_stat(out, "fstat", &st);
        close(fd);
    }
}

static void stat_one(const char *path) { stat_one_to(stdout, path); }

/* Every stat call of stat_one, `n` times: prints the first answers and how many
 * later rounds differed from them (the in-process stat path must answer
 * exactly like the supervisor, whichever of them answers). */
static int repeat(int n, char **paths, int count) {
    for (int i = 0; i < count; i++) {
        char first[4096], again[4096];
        FILE *f = fmemopen(first, sizeof first, "w");
        stat_one_to(f, paths[i]);
        fclose(f);
        int differ = 0;
        for (int k = 1; k < n; k++) {
            f = fmemopen(again, sizeof again, "w");
            stat_one_to(f, paths[i]);
            fclose(f);
            differ += strcmp(first, again) != 0;
        }
        printf("== %s\n%srounds that differ: %d\n", paths[i], first, differ);
    }
    return 0;
}

static void put(const char *path, const char *content) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        printf("create %s: %s\n", path, strerror(errno));
        return;
    }
    write(fd, content, strlen(content));
    close(fd);
}

int main(int argc, char **argv) {
    require_sandbox();
    if (argc >= 3 && strcmp(argv[1], "list") == 0) return list(argv[2], argc > 3 ? (size_t)atol(argv[3]) : 4096);
    if (argc >= 2 && strcmp(argv[1], "stat") == 0) {
        for (int i = 2; i < argc; i++) {
            printf("== %s\n", argv[i]);
            stat_one(argv[i]);
        }
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "repeat") == 0) return repeat(atoi(argv[2]), argv + 3, argc - 3);
    if (argc >= 3 && strcmp(argv[1], "fork-repeat") == 0) {
        /* Stats before a fork, in the child, and in the parent after it. */
        int n = atoi(argv[2]);
        repeat(n, argv + 3, argc - 3);
        fflush(stdout);
        pid_t child = fork();
        if (child == 0) _exit(repeat(n, argv + 3, argc - 3) == 0 && fflush(stdout) == 0 ? 0 : 1);
        int status = 0;
        waitpid(child, &status, 0);
        repeat(n, argv + 3, argc - 3);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    }
    if (argc >= 2 && strcmp(argv[1], "create") == 0) {
        mkdir("/build/made", 0755);
        put("/build/made/a", "first");
        put("/build/made/b", "second");
        /* b is read, then c written from it: c must be newer than b. */
        char buf[64] = {0};
        int fd = open("/build/made/b", O_RDONLY);
        read(fd, buf, sizeof buf - 1);
        struct stat rs;
        fstat(fd, &rs); /* what stdio does: a virtualized call between reading and writing */
        close(fd);
        put("/build/made/c", buf);
        put("/tmp/t1", "tmp");
        struct timespec times[2] = {{1234567890, 0}, {1234567890, 500}};
        utimensat(AT_FDCWD, "/build/made/a", times, 0);
        /* cp -p: write, set the times on the open fd, then close. */
        int dfd = open("/build/made/d", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        write(dfd, "copied", 6);
        struct timespec dtimes[2] = {{1234567890, 0}, {1234567890, 700}};
        futimens(dfd, dtimes);
        close(dfd);
        const char *files[] = {"/build/made", "/build/made/a", "/build/made/b", "/build/made/c", "/build/made/d", "/tmp/t1",
                               "/build/src.txt", "/usr/bin/env", "/", "/dev/null", "/dev/urandom", "/proc/cpuinfo"};
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            printf("== %s\n", files[i]);
            stat_one(files[i]);
        }
        struct stat b, c;
        stat("/build/made/b", &b);
        stat("/build/made/c", &c);
        printf("c newer than b: %s\n",
               (c.st_mtim.tv_sec > b.st_mtim.tv_sec || (c.st_mtim.tv_sec == b.st_mtim.tv_sec && c.st_mtim.tv_nsec > b.st_mtim.tv_nsec)) ? "yes" : "no");
        int p[2];
        pipe(p);
        struct stat ps;
        fstat(p[0], &ps);
        show_stat(stdout, "pipe", &ps);
        return 0;
    }
    fprintf(stderr, "usage: det_fs list DIR [bufsize] | stat PATH... | create\n");
    return 2;
}
