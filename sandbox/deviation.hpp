// A deviation: one syscall the sandbox virtualized, denied, reordered or killed.
// The supervisor produces them; the daemon's audit writer chains, bounds, signs
// and stores them. sandbox/ never calls into daemon/: it reports through this sink.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

namespace hermetic::sandbox {

// Logged: allowed, recorded because the policy says "log".
enum class DeviationAction { Virtualized, Denied, Reordered, Killed, Logged };

const char* to_string(DeviationAction a);

struct Deviation {
    int64_t virtual_time_ns = 0;  // the job's logical clock when it happened
    pid_t real_pid = 0;           // as the host sees it
    pid_t virtual_pid = 0;        // as the build sees it
    std::string exe;              // the executable (bounded)
    int syscall_nr = -1;
    std::string syscall;          // name; "rdtsc"/"rdtscp" for instruction traps
    std::string args;             // bounded summary of the register arguments
    DeviationAction action = DeviationAction::Virtualized;
    std::string cls;              // "time", "random", "identity", "cpu", "fs-order",
                                  // "fs-metadata", "network", "policy", ...
    std::string value;            // what the build got (bounded)
    std::optional<std::string> real_value;  // with --trace: what it would have got
    // > 1: a batch of identical calls (clock reads served in-process), one record.
    uint64_t count = 1;
};

// Implementations must be cheap and thread-safe; they never block the build for long.
class DeviationSink {
public:
    virtual ~DeviationSink() = default;
    virtual void record(Deviation d) = 0;
};

}  // namespace hermetic::sandbox
