// The in-process stat path (fast_stat_abi.h): the job's table and code, and
// the patch of a glibc stat wrapper that sends it there.
//
// Why: a stat trap costs ~55 µs of a compiler's wall time (two switches through
// large address spaces, docs/benchmarks.md), and a C build makes tens of
// thousands, mostly of system headers that don't exist in one include
// directory and exist, unchanged, in another. Those answers are the same every
// time: the process gets them without leaving itself.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "common/unique_fd.hpp"

struct hermetic_fast_entry;  // fast_stat_abi.h

namespace hermetic::sandbox::determinism {

class FastStat {
public:
    // The memfd with the header (epoch_sec: the time published files show),
    // the code and an empty table, mapped writable here only, then sealed:
    // every other mapping of it is read-only. Throws SysError.
    explicit FastStat(int64_t epoch_sec);
    ~FastStat();
    FastStat(const FastStat&) = delete;
    FastStat& operator=(const FastStat&) = delete;

    int fd() const { return fd_.get(); }
    // Real (dev, ino) of a file on a read-only mount -> what its stat shows.
    // False when its probe run is full (the file then keeps trapping).
    bool publish(uint64_t dev, uint64_t ino, uint64_t vdev, uint64_t vino);
    // Takes a file's entry back (its times changed): its next stat traps.
    void unpublish(uint64_t dev, uint64_t ino);
    uint64_t published() const { return published_; }

private:
    ::hermetic_fast_entry* table() const;  // in map_
    UniqueFd fd_;
    void* map_ = nullptr;
    uint64_t published_ = 0;
};

// `code`: the 13 bytes from 7 before a trapped stat call's return address.
// The 7 bytes that replace "mov eax, NR; syscall" there when it is a glibc
// wrapper's (the next instruction compares rax with -4096) for a stat call
// (newfstatat, statx, and the old stat, fstat, lstat of __xstat and friends);
// nothing otherwise. Pure.
using StatSiteCode = std::array<uint8_t, 13>;
std::optional<std::vector<uint8_t>> fast_stat_patch(const StatSiteCode& code);
// The address of the in-process routine's slot for such a site (what the
// patch calls through); nullopt where fast_stat_patch refuses the site.
std::optional<uint32_t> fast_stat_slot(const StatSiteCode& code);

// The exec init stub's request for the memfd (newfstatat(-1, NULL, NULL, 0, HELLO)).
bool is_fast_stat_hello(int nr, const unsigned long long (&args)[6]);

}  // namespace hermetic::sandbox::determinism
