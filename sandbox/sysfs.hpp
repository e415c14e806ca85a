// A minimal /sys: only the CPU-count files that build tools read
// (/sys/devices/system/cpu/{online,possible,present}), reporting the CPU count
// the build is meant to see. No host hardware, no cgroupfs.
#pragma once

#include <cstdint>

namespace hermetic::sandbox {

// At sandbox preparation, relative to the staging root: an empty, writable tmpfs.
void mount_sys();
// After pivot_root, ahead of the job: the CPU files with the count most jobs
// see (the daemon's default), then read-only.
void finish_sys(uint32_t cpus_visible);
// At a job that sees another count: the files rewritten (/sys writable for it).
// Its mount changes tell the supervisor to read the mounts again.
void set_sys_cpus(uint32_t cpus_visible);

}  // namespace hermetic::sandbox
