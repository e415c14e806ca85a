// A minimal /sys: only the CPU-count files that build tools read
// (/sys/devices/system/cpu/{online,possible,present}), reporting the CPU count
// the build is meant to see. No host hardware, no cgroupfs.
#pragma once

#include <cstdint>

namespace hermetic::sandbox {

// At sandbox preparation, relative to the staging root: an empty, writable tmpfs.
void mount_sys();
// When the job is known (after pivot_root): the CPU files, then read-only.
void finish_sys(uint32_t cpus_visible);

}  // namespace hermetic::sandbox
