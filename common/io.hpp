// Small blocking I/O helpers shared by every process of the project.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

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

// Sets or clears O_NONBLOCK.
void set_nonblocking(int fd, bool on);

}  // namespace hermetic
