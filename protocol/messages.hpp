// Control messages: one JSON object per control frame.
//
// Every message carries "proto": [major, minor] and "type". A peer refuses a
// different major version with an error naming both versions; unknown fields are
// ignored so that minor versions can add them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "protocol/frame.hpp"

namespace hermetic::protocol {

inline constexpr int kProtoMajor = 1;
inline constexpr int kProtoMinor = 0;

// Limits a request must respect (checked by both sides; the daemon is authoritative).
inline constexpr size_t kMaxArgs = 4096;
inline constexpr size_t kMaxEnv = 1024;
inline constexpr size_t kMaxStringLen = 64 * 1024;
inline constexpr size_t kMaxPolicyText = 256 * 1024;

// Error codes in {"type":"error","code":...}. Stable: clients branch on them.
namespace error_code {
inline constexpr const char* kVersion = "version";
inline constexpr const char* kBadRequest = "bad-request";
inline constexpr const char* kUnauthorized = "unauthorized";
inline constexpr const char* kRefused = "refused";  // admission control, shutting down
inline constexpr const char* kLimit = "limit";      // a configured limit was exceeded
inline constexpr const char* kSetup = "setup";      // a sandbox setup step failed
inline constexpr const char* kNotFound = "not-found";
inline constexpr const char* kConflict = "conflict";
inline constexpr const char* kInternal = "internal";
}  // namespace error_code

// Identity of a directory (st_dev, st_ino) that the copy of --src must leave out.
struct FileId {
    uint64_t dev = 0;
    uint64_t ino = 0;
};

struct RunRequest {
    std::vector<std::string> argv;
    std::vector<std::pair<std::string, std::string>> env;  // --env K=V, in order given
    std::optional<uint64_t> seed;
    std::optional<int64_t> epoch;
    std::optional<uint32_t> cpus;
    // --clock-step: how far the logical clock moves per clock read or
    // virtualized call (ns); absent: the daemon's default.
    std::optional<int64_t> clock_step_ns;
    std::optional<uint64_t> timeout_sec;
    std::optional<uint64_t> memory_bytes;
    std::optional<std::string> key;
    std::optional<std::string> policy;       // admin policy name
    std::optional<std::string> policy_text;  // contents of a user's policy file
    bool trace = false;
    bool has_out = false;                    // second passed fd is the --out directory
    // With --key: the client's digest of its source tree, so that "the same
    // request" covers the source too (an idempotent replay never re-reads it).
    std::optional<std::string> source_digest;
    std::optional<FileId> out_exclude;       // --out lies inside --src
    // --verify's second build: > 0 asks for different host conditions (source
    // copied in reverse order, the build pinned to other CPUs); the build must
    // not be able to tell. 0: none. Part of an idempotent request's identity.
    uint32_t perturb = 0;
};

struct OutputEntry {
    std::string path;  // relative to /out, '/'-separated
    std::string type;  // "file", "dir" or "symlink"
    uint32_t mode = 0;
    uint64_t size = 0;
    std::optional<std::string> sha256;  // file: content; symlink: target; dir: none
    std::optional<std::string> target;  // symlink target
};

struct JobResult {
    std::string job;
    std::string state;  // succeeded | failed | cancelled | interrupted
    std::optional<int> exit_code;
    std::optional<int> signal;
    std::string reason;  // empty when the build simply exited
    std::vector<OutputEntry> outputs;
    std::optional<std::string> audit_digest;
    // Where the time went, in milliseconds by phase (benchmarks; not stable names).
    std::map<std::string, double> timings;
    // hermeticctl's exit status per the contract (0..123 build, 124, 125, 128+N, 137).
    int client_exit_status = 125;
};

void to_json(nlohmann::json& j, const FileId& v);
void from_json(const nlohmann::json& j, FileId& v);
void to_json(nlohmann::json& j, const RunRequest& v);
void from_json(const nlohmann::json& j, RunRequest& v);
void to_json(nlohmann::json& j, const OutputEntry& v);
void from_json(const nlohmann::json& j, OutputEntry& v);
void to_json(nlohmann::json& j, const JobResult& v);
void from_json(const nlohmann::json& j, JobResult& v);

// Validates a request's shape and bounds; throws ProtocolError with a message fit
// for the user.
void validate(const RunRequest& req);

// A version-stamped control message of the given type.
nlohmann::json make_message(std::string_view type);
nlohmann::json make_error(std::string_view code, std::string_view message);

// Parses a control payload: must be a JSON object with "proto" and "type".
// A different major version throws VersionMismatch.
class VersionMismatch : public ProtocolError {
public:
    VersionMismatch(int peer_major, int peer_minor);
    int peer_major, peer_minor;
};
nlohmann::json parse_message(std::string_view payload);

// Convenience: send one control message (with optional fds).
void send_message(int fd, const nlohmann::json& msg, std::span<const int> fds = {});

std::string version_string();  // "1.0"

}  // namespace hermetic::protocol
