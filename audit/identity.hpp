// Digests that name a build's inputs in its attestation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hermetic::audit {

inline constexpr const char* kTreeDigestFormat = "hermetic-tree/1";

// One entry of a directory tree, as the tree stream lists it (the same fields as
// protocol::OutputEntry).
struct TreeEntry {
    std::string path;  // relative, '/'-separated
    std::string type;  // "file", "dir", "symlink"
    uint32_t mode = 0;
    std::optional<std::string> sha256;  // file: content; symlink: target bytes
};

// hermetic-tree/1: SHA-256 (hex) over the entries sorted by path (bytewise), each
// contributing
//     <type> SP <mode, octal> SP <sha256 or "-"> SP <len(path)> ":" <path> "\n"
// The length prefix keeps paths with newlines unambiguous. Times, owners and
// sizes are left out: the sandbox gives copies fixed times and owners, and the
// content digest covers the size.
std::string tree_digest(std::vector<TreeEntry> entries);

// What directory_tree_digest leaves out, and its messages.
struct TreeWalk {
    std::string context;  // prefixes every error, e.g. "input root: "
    int max_depth = 256;
    // A directory left out with its contents (e.g. an --out inside the source).
    std::optional<std::pair<uint64_t, uint64_t>> exclude;  // (st_dev, st_ino)
};
// tree_digest of the directory `dirfd` as found on disk: directories, regular
// files and symlinks (their targets, never followed), walked by descriptor;
// special files are left out, as the sandbox's copy leaves them out. Throws
// SysError naming the step and the path.
std::string directory_tree_digest(int dirfd, const TreeWalk& walk);

// The identity of the root file system builds see, "hermetic-rootfs/1": SHA-256
// (hex) over "hermetic-rootfs/1\n" then, for each of these files under `root` in
// this order, "<name> <sha256 or 'absent'>\n":
//     etc/os-release (else usr/lib/os-release), var/lib/dpkg/status
// then "bind <path>\n" for each extra read-only bind, sorted. On Debian the dpkg
// status names every installed package and version, so two hosts with the same
// identity offer the same system files (as far as the package manager knows).
struct RootfsIdentity {
    std::string digest;
    nlohmann::json annotations;  // root, os_release (PRETTY_NAME), file digests, binds
};
// Reads the files by path (as root in the daemon). Throws SysError on I/O errors
// other than absence.
RootfsIdentity rootfs_identity(const std::string& root, std::vector<std::string> ro_binds = {});

}  // namespace hermetic::audit
