// A minimal /sys: only the CPU-count files that build tools read
// (/sys/devices/system/cpu/{online,possible,present}), reporting the CPU count
// the build is meant to see. No host hardware, no cgroupfs.
#pragma once

#include <cstdint>

namespace hermetic::sandbox {

void setup_sys(uint32_t cpus_visible);

}  // namespace hermetic::sandbox
