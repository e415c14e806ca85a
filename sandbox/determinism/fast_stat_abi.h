/* The in-process stat path: the layout the supervisor (fast_stat.cpp) and the
 * freestanding code it maps into every build process (fast_stat_blob.c) share.
 * Plain C: the blob is compiled without libc or the C++ runtime.
 *
 * One memfd per job, sealed against writes by anyone but the supervisor, mapped
 * read-only (and executable) at HERMETIC_FAST_BASE by the exec init stub:
 *
 *   BASE + 0x0000  header: magic, switches, the epoch, entry pointers
 *   BASE + 0x1000  code (fast_stat_blob.c, linked at this address)
 *   BASE + 0x2000  the table: real (dev, ino) -> virtual (dev, ino), for files
 *                  on read-only mounts and device nodes (their virtual times
 *                  are the epoch unless a utimensat sets them, which takes
 *                  the entry back), filled by the supervisor as it answers.
 *
 * The supervisor patches a glibc stat wrapper's "mov eax, NR; syscall" (7
 * bytes) into "call [BASE + entry slot]" (7 bytes) once the process trapped
 * there; the entry makes the real call with HERMETIC_STAT_REAL in an argument
 * the kernel ignores (the policy lets such calls through), answers ENOENT,
 * ENOTDIR and table hits itself, and re-issues everything else unmarked, which
 * traps to the supervisor as before (and fills the table). */
#ifndef HERMETIC_FAST_STAT_ABI_H
#define HERMETIC_FAST_STAT_ABI_H

#define HERMETIC_FAST_BASE 0x20000UL
#define HERMETIC_FAST_CODE (HERMETIC_FAST_BASE + 0x1000UL)
#define HERMETIC_FAST_CODE_MAX 0x1000UL
#define HERMETIC_FAST_TABLE (HERMETIC_FAST_BASE + 0x2000UL)
#define HERMETIC_FAST_ENTRIES 65536UL /* a power of two */
#define HERMETIC_FAST_PROBES 16
#define HERMETIC_FAST_SIZE (0x2000UL + HERMETIC_FAST_ENTRIES * 32UL)

#define HERMETIC_FAST_MAGIC 0x5453414643524548ULL /* "HERCFAST" */
/* The marker of a real (not virtualized) stat call; must equal
 * policy::kStatRealMarker (checked in fast_stat.cpp). */
#define HERMETIC_STAT_REAL 0x6c6165722d746d68ULL
/* The exec stub's request for the memfd: newfstatat(-1, NULL, NULL, 0, HELLO). */
#define HERMETIC_FAST_HELLO 0x6f6c6c65682d746dULL

/* What the code answered itself, counted per process in the scratch page the
 * exec stub maps at policy::kScratchBase (past the clock page's fields): the
 * supervisor records the counts as audit events (Engine::fold_stat_counts). */
#define HERMETIC_SCRATCH_BASE 0x10000UL
#define HERMETIC_FAST_COUNT_TABLE (HERMETIC_SCRATCH_BASE + 64UL)   /* answered from the table */
#define HERMETIC_FAST_COUNT_MISSING (HERMETIC_SCRATCH_BASE + 72UL) /* ENOENT / ENOTDIR */

/* Entry slots: the patched call reads its target from header.entry[slot]. */
#define HERMETIC_FAST_SLOT_NEWFSTATAT 0
#define HERMETIC_FAST_SLOT_STATX 1
#define HERMETIC_FAST_SLOT_STAT 2 /* the old calls, of glibc's __xstat family */
#define HERMETIC_FAST_SLOT_FSTAT 3
#define HERMETIC_FAST_SLOT_LSTAT 4
#define HERMETIC_FAST_SLOTS 5

struct hermetic_fast_header {
    unsigned long long magic;
    unsigned int enabled;      /* 0: every entry re-issues its call unmarked (--trace) */
    unsigned int mask;         /* HERMETIC_FAST_ENTRIES - 1 */
    long long epoch_sec;       /* the time every published file shows */
    unsigned long long entry[HERMETIC_FAST_SLOTS]; /* 16 bytes apart from HERMETIC_FAST_CODE */
};

/* vino is written last (release) and is never 0 for a used slot. */
struct hermetic_fast_entry {
    unsigned long long dev;   /* real, as struct stat's st_dev (glibc makedev) */
    unsigned long long ino;   /* real */
    unsigned long long vdev;  /* virtual, glibc makedev encoding */
    unsigned long long vino;  /* virtual */
};

/* Slot of (dev, ino); both sides must agree. */
static inline unsigned long hermetic_fast_hash(unsigned long long dev, unsigned long long ino) {
    unsigned long long h = (dev * 0x9e3779b97f4a7c15ULL) ^ ino;
    h *= 0xff51afd7ed558ccdULL;
    return (unsigned long)(h >> 40);
}

#endif
