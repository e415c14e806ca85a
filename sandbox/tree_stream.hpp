// Copying a directory tree between two processes that trust each other but not
// the tree: the source copy into /build and the collection of /out.
//
// The sender walks a directory fd and writes a stream of records to a pipe; the
// receiver materializes them under another directory fd. Each side runs in its own
// unprivileged process (the sender of --src as the calling user, so the build
// can read only what the caller can). Both walk with *at() calls relative to
// directory fds, never follow symlinks, never leave the tree, and enforce limits.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "protocol/messages.hpp"

namespace hermetic::sandbox {

// Stream format version written by send_tree and the only one receive_tree accepts.
inline constexpr uint32_t kTreeStreamVersion = 1;
inline constexpr size_t kMaxTreeDepth = 256;        // nested directories below the root
inline constexpr size_t kMaxTreeNameLen = 255;      // one path component, bytes
inline constexpr size_t kMaxTreeLinkTarget = 4095;  // symlink target, bytes

struct TreeLimits {
    uint64_t max_bytes = 0;    // total regular-file bytes; 0: unlimited
    uint64_t max_entries = 0;  // files + dirs + symlinks; 0: unlimited
    // Names the tree in limit messages: "<label>: limit of N bytes exceeded".
    std::string label = "tree";
};

// What to do with fifos, sockets and device nodes.
enum class SpecialFiles {
    Skip,    // leave them out and report their paths (source copy)
    Refuse,  // fail the whole transfer (outputs)
};

struct SendOptions {
    TreeLimits limits;
    SpecialFiles special = SpecialFiles::Refuse;
    std::optional<protocol::FileId> exclude;  // a directory (dev, ino) to leave out
};

struct SendResult {
    uint64_t entries = 0;
    uint64_t bytes = 0;
    std::vector<std::string> skipped;  // relative paths of special files left out
};

struct ReceiveOptions {
    TreeLimits limits;
    bool hash = false;        // compute sha256 of files and symlink targets
    bool keep_modes = true;   // chmod to the sent mode (setuid/setgid/sticky bits always dropped)
    // Timestamp (seconds since the epoch) given to every created entry's atime and
    // mtime, symlinks included: a copied tree carries no host time. nullopt: leave
    // the times the creation gave them.
    std::optional<int64_t> set_mtime;
};

struct ReceiveResult {
    std::vector<protocol::OutputEntry> entries;  // in stream order (sorted by name per dir)
    uint64_t bytes = 0;
};

// Failure with a one-line reason fit for the user, e.g.
//   "outputs exceed the limit of 1073741824 bytes", "output 'x/y' is a fifo".
class TreeError : public std::runtime_error {
public:
    enum class Kind { Limit, SpecialFile, Unreadable, Io, Stream };
    TreeError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
    [[nodiscard]] Kind kind() const { return kind_; }

private:
    Kind kind_;
};

// Walks root_dirfd (entries sorted by name) and writes the stream to out_fd.
// Throws TreeError (limits, special files with Refuse, unreadable entries). When it
// fails between records it first writes an abort record, so the receiver throws
// the same kind and message; a failure inside a file's data (it shrank, a read
// error) or on out_fd itself leaves the receiver with a truncated stream instead.
// SIGPIPE is blocked for the calling thread meanwhile: a dead reader is an Io
// error ("Broken pipe") whatever the disposition. Hard links are copied as
// separate files. Best effort: raises out_fd's pipe buffer to 1 MiB.
SendResult send_tree(int root_dirfd, int out_fd, const SendOptions& options);

// Reads a stream from in_fd. With dest_dirfd >= 0 creates everything under it (it
// must be empty); with -1 only hashes and lists (outputs without --out). The
// dest directory itself keeps its mode and times.
// Throws TreeError; what was created before an error is left for the caller's
// cleanup (directories still being filled are 0700; finished ones have their final
// mode, possibly without owner write: chmod before removing as non-root).
// It reads ahead in large chunks, so in_fd must carry nothing after the stream.
// SIGXFSZ is blocked for the calling thread meanwhile (RLIMIT_FSIZE -> Io error).
ReceiveResult receive_tree(int in_fd, int dest_dirfd, const ReceiveOptions& options);

}  // namespace hermetic::sandbox
