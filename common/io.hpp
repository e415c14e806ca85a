// Small blocking I/O helpers shared by every process of the project.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/unique_fd.hpp"

namespace hermetic {

// Writes everything (retrying short writes and EINTR). Throws SysError.
void write_all(int fd, const void* data, size_t len);
inline void write_all(int fd, std::string_view s) { write_all(fd, s.data(), s.size()); }

// Reads exactly len bytes. Returns false on EOF before the first byte;
// throws on EOF in the middle or on error.
[[nodiscard]] bool read_exact(int fd, void* data, size_t len);

// Reads until EOF, failing with EFBIG beyond max bytes.
std::string read_to_end(int fd, size_t max);

// Reads a small file (e.g. under /proc or /sys) relative to dirfd.
std::string read_file_at(int dirfd, const char* path, size_t max = 1 << 20);
// Writes a whole small file (O_WRONLY|O_TRUNC, no create), e.g. cgroup knobs.
void write_file_at(int dirfd, const char* path, std::string_view content);

// Waits until fd is readable or the deadline passes. Returns false on timeout.
[[nodiscard]] bool wait_readable(int fd, std::chrono::steady_clock::time_point deadline);

FdPair make_pipe(int flags = 0);
UniqueFd open_dir(const char* path, int extra_flags = 0);

// The entries of the directory open as dirfd (not "." and ".."), in readdir
// order, with their d_type (DT_UNKNOWN where the filesystem does not say).
// dirfd is not consumed. Throws SysError naming `what` on any error: readdir's
// end and its failure differ only by errno, and a failed listing must not pass
// for a short one (an empty /out, a source without its files).
struct DirEntry {
    std::string name;
    unsigned char type;
};
std::vector<DirEntry> list_directory(int dirfd, std::string_view what, size_t max_entries = SIZE_MAX);
// Whether the directory open as dirfd has no entry; throws like list_directory.
[[nodiscard]] bool directory_is_empty(int dirfd, std::string_view what);

// Sets or clears O_NONBLOCK.
void set_nonblocking(int fd, bool on);

}  // namespace hermetic
