// Files the supervisor serves through FUSE and init binds over their targets:
// the random devices and the /proc files that describe the host. (/etc/machine-id
// is already a fixed generated file: sandbox/etc_files.cpp.)
// Content is generated per read, from the job's configuration and, for the
// random ones and /proc/uptime, from the identity and clock of the reading task
// (FUSE tells which task reads), so nothing but the read itself is trapped.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace hermetic::sandbox::determinism {

enum class ServedKind {
    Urandom, Random, Cpuinfo, Meminfo, Version, Cmdline, Uptime, Loadavg, Stat, Osrelease, KernelVersion, Uuid,
    BootId,
};

struct ServedFile {
    ServedKind kind;
    const char* name;    // in the FUSE root
    const char* target;  // where init binds it
    uint32_t mode;       // what stat shows (a character device for the random devices)
    uint64_t rdev;
    uint64_t dev_of_target = 0;  // real st_dev of the mount holding the target (set by the supervisor)
};

// The table, indexed by FUSE inode - 2 (1 is the root).
std::vector<ServedFile>& served_files();
const ServedFile* served_file_by_ino(uint64_t fuse_ino);

}  // namespace hermetic::sandbox::determinism
