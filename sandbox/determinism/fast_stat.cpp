#include "sandbox/determinism/fast_stat.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "common/sys_error.hpp"
#include "sandbox/determinism/fast_stat_abi.h"
#include "syscall-policy/determinism_rules.hpp"

// The code image (fast_stat_blob.c, built by sandbox/CMakeLists.txt).
asm(".pushsection .rodata.hermetic_fast_stat, \"a\"\n"
    ".globl hermetic_fast_stat_image, hermetic_fast_stat_image_end\n"
    "hermetic_fast_stat_image:\n"
    ".incbin \"" HERMETIC_FAST_STAT_BIN "\"\n"
    "hermetic_fast_stat_image_end:\n"
    ".popsection\n");
extern "C" const unsigned char hermetic_fast_stat_image[], hermetic_fast_stat_image_end[];

namespace hermetic::sandbox::determinism {

static_assert(HERMETIC_STAT_REAL == policy::kStatRealMarker, "the policy and the code must agree on the marker");
static_assert(HERMETIC_FAST_BASE >= policy::kScratchBase + policy::kScratchSize, "after the scratch region");
static_assert(sizeof(hermetic_fast_entry) == 32 && HERMETIC_FAST_ENTRIES * 32 + 0x2000 == HERMETIC_FAST_SIZE);
static_assert((HERMETIC_FAST_ENTRIES & (HERMETIC_FAST_ENTRIES - 1)) == 0);

FastStat::FastStat(int64_t epoch_sec) {
    fd_.reset(static_cast<int>(::syscall(SYS_memfd_create, "hermetic-fast-stat", MFD_CLOEXEC | MFD_ALLOW_SEALING)));
    if (!fd_) throw_errno("memfd_create (fast stat)");
    if (::ftruncate(fd_.get(), static_cast<off_t>(HERMETIC_FAST_SIZE)) != 0) throw_errno("ftruncate (fast stat)");
    map_ = ::mmap(nullptr, HERMETIC_FAST_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
    if (map_ == MAP_FAILED) {
        map_ = nullptr;
        throw_errno("mmap (fast stat)");
    }
    const size_t code = static_cast<size_t>(hermetic_fast_stat_image_end - hermetic_fast_stat_image);
    if (code == 0 || code > HERMETIC_FAST_CODE_MAX) throw SysError("the in-process stat code does not fit", EINVAL);
    auto* base = static_cast<unsigned char*>(map_);
    std::memcpy(base + (HERMETIC_FAST_CODE - HERMETIC_FAST_BASE), hermetic_fast_stat_image, code);
    hermetic_fast_header h{};
    h.magic = HERMETIC_FAST_MAGIC;
    h.enabled = 1;
    h.mask = static_cast<unsigned>(HERMETIC_FAST_ENTRIES - 1);
    h.epoch_sec = epoch_sec;
    for (unsigned slot = 0; slot < HERMETIC_FAST_SLOTS; ++slot)
        h.entry[slot] = HERMETIC_FAST_CODE + 16 * slot;  // the image starts with its entries (fast_stat_blob.c)
    std::memcpy(base, &h, sizeof h);
    // From here on only this mapping writes: the build's are read-only.
    if (::fcntl(fd_.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) != 0)
        throw_errno("F_ADD_SEALS (fast stat)");
}

FastStat::~FastStat() {
    if (map_) ::munmap(map_, HERMETIC_FAST_SIZE);
}

hermetic_fast_entry* FastStat::table() const {
    return reinterpret_cast<hermetic_fast_entry*>(static_cast<unsigned char*>(map_) + (HERMETIC_FAST_TABLE - HERMETIC_FAST_BASE));
}

bool FastStat::publish(uint64_t dev, uint64_t ino, uint64_t vdev, uint64_t vino) {
    if (vino == 0) return false;
    hermetic_fast_entry* table = this->table();
    unsigned long i = hermetic_fast_hash(dev, ino);
    for (int n = 0; n < HERMETIC_FAST_PROBES; ++n, ++i) {
        hermetic_fast_entry& e = table[i & (HERMETIC_FAST_ENTRIES - 1)];
        uint64_t used = __atomic_load_n(&e.vino, __ATOMIC_RELAXED);
        if (used != 0) {
            if (e.dev == dev && e.ino == ino) return true;  // already there
            continue;
        }
        e.dev = dev;
        e.ino = ino;
        e.vdev = vdev;
        __atomic_store_n(&e.vino, vino, __ATOMIC_RELEASE);  // readers take the slot from here on
        ++published_;
        return true;
    }
    return false;
}

void FastStat::unpublish(uint64_t dev, uint64_t ino) {
    hermetic_fast_entry* table = this->table();
    unsigned long i = hermetic_fast_hash(dev, ino);
    for (int n = 0; n < HERMETIC_FAST_PROBES; ++n, ++i) {
        hermetic_fast_entry& e = table[i & (HERMETIC_FAST_ENTRIES - 1)];
        if (__atomic_load_n(&e.vino, __ATOMIC_RELAXED) == 0) return;
        if (e.dev == dev && e.ino == ino) {
            // A key no file has: readers skip it and go on probing (a slot is never emptied).
            __atomic_store_n(&e.dev, ~uint64_t{0}, __ATOMIC_RELEASE);
            __atomic_store_n(&e.ino, ~uint64_t{0}, __ATOMIC_RELEASE);
            return;
        }
    }
}

std::optional<uint32_t> fast_stat_slot(const StatSiteCode& c) {
    // mov eax, imm32; syscall
    if (c[0] != 0xb8 || c[5] != 0x0f || c[6] != 0x05) return std::nullopt;
    uint32_t nr;
    std::memcpy(&nr, c.data() + 1, 4);
    unsigned slot;
    switch (nr) {
        case SYS_newfstatat: slot = HERMETIC_FAST_SLOT_NEWFSTATAT; break;
        case SYS_statx: slot = HERMETIC_FAST_SLOT_STATX; break;
        case SYS_stat: slot = HERMETIC_FAST_SLOT_STAT; break;
        case SYS_fstat: slot = HERMETIC_FAST_SLOT_FSTAT; break;
        case SYS_lstat: slot = HERMETIC_FAST_SLOT_LSTAT; break;
        default: return std::nullopt;
    }
    // The wrapper's error check right after it: cmp eax/rax, -4096. A wrapper
    // that checks like this returns to its caller without using the stack
    // below its own frame (where the call's return address goes).
    static const uint8_t cmp32[] = {0x3d, 0x00, 0xf0, 0xff, 0xff};
    static const uint8_t cmp64[] = {0x48, 0x3d, 0x00, 0xf0, 0xff, 0xff};
    if (std::memcmp(c.data() + 7, cmp32, sizeof cmp32) != 0 && std::memcmp(c.data() + 7, cmp64, sizeof cmp64) != 0) return std::nullopt;
    return static_cast<uint32_t>(HERMETIC_FAST_BASE + offsetof(hermetic_fast_header, entry) + slot * 8);
}

std::optional<std::vector<uint8_t>> fast_stat_patch(const StatSiteCode& c) {
    auto slot_addr = fast_stat_slot(c);
    if (!slot_addr) return std::nullopt;
    // call qword ptr [disp32]: ff 14 25 disp32 (absolute, sign-extended).
    std::vector<uint8_t> out = {0xff, 0x14, 0x25, 0, 0, 0, 0};
    std::memcpy(out.data() + 3, &*slot_addr, 4);
    return out;
}

bool is_fast_stat_hello(int nr, const unsigned long long (&a)[6]) {
    return nr == SYS_newfstatat && a[4] == HERMETIC_FAST_HELLO && static_cast<int>(a[0]) == -1 && a[1] == 0 && a[2] == 0;
}

}  // namespace hermetic::sandbox::determinism
