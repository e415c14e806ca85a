// File helpers for evidence: the caller names the file; these never follow a
// symlink in the last component and make replacements atomic and durable.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hermetic::audit {

// Writes `content` to dir/name through a temporary file (O_EXCL, `mode`), fsyncs
// it, renames it over name and fsyncs dir: after return the file is complete and
// durable, and a reader never sees a partial one. Throws SysError.
void write_file_atomic(const std::string& dir, const std::string& name, std::string_view content, mode_t mode);

struct NewFile {
    std::string name;
    std::string content;
    mode_t mode = 0600;
};

// Several files at once, as durably as write_file_atomic but cheaper: each goes
// to a temporary, the temporaries and `also_sync` (e.g. a log written through
// its own fd) are fsynced concurrently, which ext4 folds into one journal
// commit instead of one per file, then all are renamed into place and dir is
// fsynced once. Throws SysError; temporaries are removed on failure.
void write_files_durably(const std::string& dir, const std::vector<NewFile>& files, std::span<const int> also_sync = {});

// Reads a whole regular file (O_NOFOLLOW), at most max bytes (EFBIG beyond).
// nullopt if it does not exist. Throws SysError otherwise.
std::optional<std::string> read_file_if_exists(const std::string& path, size_t max);

// fsync of a file or directory by path.
void fsync_path(const std::string& path);

}  // namespace hermetic::audit
