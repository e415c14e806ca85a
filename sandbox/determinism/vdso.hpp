// The exec-time patch of a process's vDSO: every time, getcpu and getrandom
// entry point becomes a real syscall (so the supervisor answers it), and an init
// stub maps the scratch region before jumping to the program's entry point.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace hermetic::sandbox::determinism {

struct VdsoPlan {
    bool ok = false;
    std::string error;
    // (offset in the vDSO, bytes) to write.
    std::vector<std::pair<uint64_t, std::vector<uint8_t>>> writes;
    uint64_t stub_offset = 0;  // where init_stub() goes
    size_t stub_room = 0;
    std::vector<std::string> patched;  // symbol names, for the summary
};

// Parses the vDSO image (as read from the process) and plans the patch.
VdsoPlan plan_vdso_patch(const std::vector<uint8_t>& image);

// Code that mmaps the scratch region (fixed, read-write, never replacing
// anything), clears the registers it used, and jumps to `entry`.
std::vector<uint8_t> init_stub(uint64_t entry);

}  // namespace hermetic::sandbox::determinism
