// One audit log record per line (JSON lines), hash-chained.
//
// A line is exactly
//     {"h":"<H>",<BODY without its leading '{'>\n
// where BODY is a JSON object (written with nlohmann's dump: compact, keys sorted)
// and H is the lowercase hex SHA-256 of BODY's bytes. So the whole line is one
// JSON object whose "h" member is the hash of the rest, and a verifier hashes
// the bytes it read: it never re-serializes JSON and depends on no key order.
// Every BODY carries "seq" (0, 1, 2, ... by position) and "prev" (the previous
// record's H; 64 zeros for record 0). The chain head is the last record's H.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "audit/hasher.hpp"

namespace hermetic::audit {

inline constexpr const char* kLogFormat = "hermetic-audit/1";
inline constexpr std::string_view kGenesis = "0000000000000000000000000000000000000000000000000000000000000000";

// What the sandbox did with one syscall (mirrors sandbox::DeviationAction).
enum class Action { Virtualized, Denied, Reordered, Killed, Logged };
inline constexpr int kActionCount = 5;
const char* to_string(Action a);
std::optional<Action> parse_action(std::string_view s);

// Bounds on what one event carries (bytes, before JSON escaping).
inline constexpr size_t kMaxExe = 256;
inline constexpr size_t kMaxArgs = 512;
inline constexpr size_t kMaxValue = 512;
inline constexpr size_t kMaxSyscallName = 64;
inline constexpr size_t kMaxClass = 32;

// One deviation as the audit library sees it (no dependency on sandbox/).
struct Event {
    int64_t vtime_ns = 0;  // the job's virtual clock
    int64_t pid = 0;       // host pid
    int64_t vpid = 0;      // pid inside the sandbox
    std::string exe;
    int syscall_nr = -1;
    std::string syscall;   // "rdtsc"/"rdtscp" for instruction traps
    std::string args;      // bounded summary of the register arguments
    Action action = Action::Virtualized;
    std::string cls;       // "time", "random", "fs-order", "network", ...
    std::string value;     // what the build got
    std::optional<std::string> real_value;  // with --trace: what it would have got
    // > 1: this event stands for `count` identical calls (a batch the supervisor
    // counted without a trap each); the first is the record, the rest aggregate.
    uint64_t count = 1;
};

// The line for BODY's text (a dump of a non-empty object), appended to `out`;
// `hasher` is reused between calls (it keeps its OpenSSL context). Returns H.
inline constexpr size_t kLineOverhead = 72;  // line size = body size + 72
std::string append_line(std::string& out, std::string_view body_text, Hasher& hasher);

struct ParsedLine {
    std::string h;
    nlohmann::json body;
};

// Checks the framing and that H matches BODY; throws FormatError saying which.
// `line` excludes the newline.
ParsedLine parse_line(std::string_view line);

// Job ids as the daemon makes them: [a-z0-9-]{1,64}. Every path built from a job
// id is checked with this first.
bool is_valid_job_id(std::string_view id);

}  // namespace hermetic::audit
