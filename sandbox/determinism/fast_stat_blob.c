/* The in-process stat path (see fast_stat_abi.h): code the supervisor maps
 * into every build process at HERMETIC_FAST_CODE. Freestanding: no libc, no
 * writable data, no thread-local state; it reads the header and the table and
 * writes the caller's stat buffer and two counters in the scratch page. Built with its own flags (see
 * sandbox/CMakeLists.txt): -mgeneral-regs-only (no vector register is touched),
 * no stack protector, no sanitizer, linked at its fixed address.
 *
 * A patched site is "call [entry]" in place of "mov eax, NR; syscall", inside
 * a glibc wrapper: the entry is called with the syscall's arguments in rdi,
 * rsi, rdx, r10, r8 and must, like the syscall, preserve every register but
 * rax, rcx and r11. The stack it runs on is the wrapper's (a leaf with no red
 * zone use), 8 bytes below where the syscall would have left it. */
#include "fast_stat_abi.h"

typedef unsigned long long u64;
typedef unsigned int u32;
typedef long long i64;

#define NR_STAT 4
#define NR_FSTAT 5
#define NR_LSTAT 6
#define NR_NEWFSTATAT 262
#define NR_STATX 332
#define E_NOENT 2
#define E_NOTDIR 20
#define S_IFMT 0170000
#define S_IFDIR 0040000
#define S_IFREG 0100000
#define STATX_BASIC_STATS 0x7ffU
#define STATX_BTIME 0x800U
#define STATX_MNT_ID 0x1000U

/* The kernel's x86-64 struct stat (144 bytes). */
struct kstat {
    u64 dev, ino, nlink;
    u32 mode, uid, gid, pad0;
    u64 rdev;
    i64 size, blksize, blocks;
    i64 atime, atime_ns, mtime, mtime_ns, ctime, ctime_ns;
    i64 unused[3];
};

struct kstatx_ts {
    i64 sec;
    u32 nsec;
    int pad;
};
/* struct statx (256 bytes). */
struct kstatx {
    u32 mask, blksize;
    u64 attributes;
    u32 nlink, uid, gid;
    unsigned short mode, spare0;
    u64 ino, size, blocks, attributes_mask;
    struct kstatx_ts atime, btime, ctime, mtime;
    u32 rdev_major, rdev_minor, dev_major, dev_minor;
    u64 mnt_id;
    u64 spare[13];
};
_Static_assert(sizeof(struct kstat) == 144, "struct stat layout");
_Static_assert(sizeof(struct kstatx) == 256, "struct statx layout");

static inline long sys6(long nr, long a, long b, long c, long d, long e, long f) {
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

/* Atomic: a process may start threads after its sites were patched. */
static inline void count(unsigned long counter) { __atomic_fetch_add((u64*)counter, 1, __ATOMIC_RELAXED); }

static inline long missing(long r) {
    count(HERMETIC_FAST_COUNT_MISSING);
    return r;
}

static inline const struct hermetic_fast_header* header(void) {
    return (const struct hermetic_fast_header*)HERMETIC_FAST_BASE;
}

static inline const struct hermetic_fast_entry* lookup(u64 dev, u64 ino) {
    const struct hermetic_fast_entry* table = (const struct hermetic_fast_entry*)HERMETIC_FAST_TABLE;
    u32 mask = header()->mask;
    unsigned long i = hermetic_fast_hash(dev, ino);
    for (int n = 0; n < HERMETIC_FAST_PROBES; ++n, ++i) {
        const struct hermetic_fast_entry* e = &table[i & mask];
        u64 vino = __atomic_load_n(&e->vino, __ATOMIC_ACQUIRE);
        if (vino == 0) return 0;
        if (e->dev == dev && e->ino == ino) return e;
    }
    return 0;
}

static inline u64 mkdev(u64 major, u64 minor) {
    return ((major & 0xfffULL) << 8) | ((major & ~0xfffULL) << 32) | (minor & 0xffULL) | ((minor & ~0xffULL) << 12);
}
static inline u32 dev_major(u64 d) { return (u32)(((d >> 8) & 0xfffULL) | ((d >> 32) & ~0xfffULL)); }
static inline u32 dev_minor(u64 d) { return (u32)((d & 0xffULL) | ((d >> 12) & ~0xffULL)); }

/* What the supervisor answers for a file on a read-only mount (finish_stat):
 * its virtual identity, directories with one link and 4096 bytes, the epoch
 * for every time, 4096-byte blocks. */
static inline void shape(u32 mode, u64* nlink, i64* size, i64* blocks) {
    u32 type = mode & S_IFMT;
    if (type == S_IFDIR) {
        *nlink = 1;
        *size = 4096;
    }
    *blocks = (type == S_IFREG || type == S_IFDIR) ? (*size + 4095) / 4096 * 8 : 0;
}

/* Rewrites a real answer for a published file; 0 if it is not published. */
static inline int rewrite_kstat(volatile struct kstat* st, const struct hermetic_fast_header* h) {
    const struct hermetic_fast_entry* e = lookup(st->dev, st->ino);
    if (!e) return 0;
    u64 nlink = st->nlink;
    u32 mode = st->mode, uid = st->uid, gid = st->gid;
    u64 rdev = st->rdev;
    i64 size = st->size, blocks = 0;
    shape(mode, &nlink, &size, &blocks);
    st->dev = e->vdev;
    st->ino = e->vino;
    st->nlink = nlink;
    st->mode = mode;
    st->uid = uid;
    st->gid = gid;
    st->pad0 = 0;
    st->rdev = rdev;
    st->size = size;
    st->blksize = 4096;
    st->blocks = blocks;
    st->atime = st->mtime = st->ctime = h->epoch_sec;
    st->atime_ns = st->mtime_ns = st->ctime_ns = 0;
    st->unused[0] = st->unused[1] = st->unused[2] = 0;
    return 1;
}

/* A call of the struct stat family: the real call marked in argument
 * `marker`, then in-process answers, else the call re-issued unmarked. */
static inline long fast_kstat(long nr, long a0, long a1, long a2, long a3, int marker, long buf) {
    const struct hermetic_fast_header* h = header();
    long m[4] = {a0, a1, a2, a3};
    if (!h->enabled) return sys6(nr, m[0], m[1], m[2], m[3], 0, 0);
    long r = marker == 4 ? sys6(nr, m[0], m[1], m[2], m[3], (long)HERMETIC_STAT_REAL, 0)
                         : sys6(nr, m[0], m[1], (long)HERMETIC_STAT_REAL, 0, 0, 0);
    if (r == -E_NOENT || r == -E_NOTDIR) return missing(r);
    if (r == 0 && rewrite_kstat((volatile struct kstat*)buf, h)) {
        count(HERMETIC_FAST_COUNT_TABLE);
        return 0;
    }
    return sys6(nr, m[0], m[1], m[2], m[3], 0, 0);
}

long hermetic_fast_newfstatat(long dirfd, long path, long buf, long flags) {
    return fast_kstat(NR_NEWFSTATAT, dirfd, path, buf, flags, 4, buf);
}
long hermetic_fast_stat(long path, long buf) { return fast_kstat(NR_STAT, path, buf, 0, 0, 2, buf); }
long hermetic_fast_fstat(long fd, long buf) { return fast_kstat(NR_FSTAT, fd, buf, 0, 0, 2, buf); }
long hermetic_fast_lstat(long path, long buf) { return fast_kstat(NR_LSTAT, path, buf, 0, 0, 2, buf); }

long hermetic_fast_statx(long dirfd, long path, long flags, long mask, long buf) {
    const struct hermetic_fast_header* h = header();
    if (!h->enabled) return sys6(NR_STATX, dirfd, path, flags, mask, buf, 0);
    long r = sys6(NR_STATX, dirfd, path, flags, (long)((u32)mask | STATX_BASIC_STATS), buf, (long)HERMETIC_STAT_REAL);
    if (r == -E_NOENT || r == -E_NOTDIR) return missing(r);
    if (r != 0) return sys6(NR_STATX, dirfd, path, flags, mask, buf, 0);
    volatile struct kstatx* sx = (volatile struct kstatx*)buf;
    const struct hermetic_fast_entry* e = lookup(mkdev(sx->dev_major, sx->dev_minor), sx->ino);
    if (!e) return sys6(NR_STATX, dirfd, path, flags, mask, buf, 0);
    u64 nlink = sx->nlink;
    u32 mode = sx->mode, uid = sx->uid, gid = sx->gid;
    u64 attributes = sx->attributes, attributes_mask = sx->attributes_mask;
    u32 rdev_major = sx->rdev_major, rdev_minor = sx->rdev_minor;
    i64 size = (i64)sx->size, blocks = 0;
    shape(mode, &nlink, &size, &blocks);
    volatile u64* words = (volatile u64*)buf;
    for (int i = 0; i < 32; ++i) words[i] = 0;
    sx->mask = STATX_BASIC_STATS | STATX_BTIME | STATX_MNT_ID;
    sx->blksize = 4096;
    sx->attributes = attributes;
    sx->nlink = (u32)nlink;
    sx->uid = uid;
    sx->gid = gid;
    sx->mode = (unsigned short)mode;
    sx->ino = e->vino;
    sx->size = (u64)size;
    sx->blocks = (u64)blocks;
    sx->attributes_mask = attributes_mask;
    sx->atime.sec = sx->btime.sec = sx->ctime.sec = sx->mtime.sec = h->epoch_sec;
    sx->rdev_major = rdev_major;
    sx->rdev_minor = rdev_minor;
    sx->dev_major = dev_major(e->vdev);
    sx->dev_minor = dev_minor(e->vdev);
    sx->mnt_id = dev_minor(e->vdev);
    count(HERMETIC_FAST_COUNT_TABLE);
    return 0;
}

/* The entries, first in the image (the linker script puts this section
 * first), 16 bytes apart in slot order. They save what the syscall would have
 * preserved and move r10 into the fourth C argument. */
#define ENTRY(name, fn)                                                    \
    #name ":\n"                                                           \
    "    push %rdi; push %rsi; push %rdx; push %r8; push %r9; push %r10\n" \
    "    mov %r10, %rcx\n"                                                \
    "    call " #fn "\n"                                                  \
    "    pop %r10; pop %r9; pop %r8; pop %rdx; pop %rsi; pop %rdi\n"       \
    "    ret\n"
__asm__(
    ".pushsection .text.hermetic_entry, \"ax\"\n"
    ".globl hermetic_fast_entries\n"
    "hermetic_fast_entries:\n"
    "    jmp entry_newfstatat\n"
    "    .balign 16, 0xcc\n"
    "    jmp entry_statx\n"
    "    .balign 16, 0xcc\n"
    "    jmp entry_stat\n"
    "    .balign 16, 0xcc\n"
    "    jmp entry_fstat\n"
    "    .balign 16, 0xcc\n"
    "    jmp entry_lstat\n"
    "    .balign 16, 0xcc\n"
    ENTRY(entry_newfstatat, hermetic_fast_newfstatat)
    ENTRY(entry_statx, hermetic_fast_statx)
    ENTRY(entry_stat, hermetic_fast_stat)
    ENTRY(entry_fstat, hermetic_fast_fstat)
    ENTRY(entry_lstat, hermetic_fast_lstat)
    ".popsection\n");
