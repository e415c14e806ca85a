// hermeticd's configuration: one definition of each option, shared by the command
// line and the config file (Boost.Program_options, INI-style "key = value").
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "sandbox/job_spec.hpp"

namespace hermetic::daemon {

struct DaemonConfig {
    std::string socket_path = "/run/hermetic/hermeticd.sock";
    std::string state_dir = "/var/lib/hermetic";
    std::string config_file = "/etc/hermetic/hermeticd.conf";
    std::string policy_dir = "/etc/hermetic/policies";
    bool foreground = false;
    bool check_config = false;
    std::string group = "hermetic";  // who may submit (besides root)
    std::string log_level = "info";

    // Host ids for sandboxes: each concurrent job takes two ids from this range.
    uid_t id_base = 0x70000000;
    uint32_t id_count = 65536;

    uint32_t max_jobs = 4;             // running at once
    uint32_t max_queued = 64;          // waiting for a slot (beyond: refused)
    uint32_t max_jobs_per_user = 4;    // running + queued, per uid (root exempt)
    uint32_t max_connections = 256;
    std::chrono::milliseconds request_timeout{10'000};  // to send a complete request

    uint64_t default_memory = 8ull << 30;
    uint64_t max_memory = 16ull << 30;
    uint64_t pids_max = 4096;
    double cpu_limit = 0;              // CPUs of bandwidth per job; 0: unlimited
    uint64_t default_timeout_sec = 6 * 3600;
    uint64_t max_timeout_sec = 48 * 3600;
    uint64_t log_cap_bytes = 64ull << 20;       // stored per job
    uint64_t max_output_bytes = 4ull << 30;     // streamed per job; beyond: killed
    int64_t default_epoch = 315532800;          // 1980-01-01: zip-safe
    int64_t default_clock_step_ns = sandbox::determinism::kDefaultClockStepNs;  // without --clock-step
    uint32_t netns_pool = 2;
    uint32_t sandbox_pool = 2;  // sandboxes prepared ahead of jobs (0: prepare on demand)
    // Retention of finished jobs (journal rows, logs, evidence); 0 disables a rule.
    uint32_t retain_days = 30;
    uint32_t retain_jobs = 10000;
    uint64_t retain_bytes = 10ull << 30;
    uint32_t gc_interval_sec = 600;
    uint32_t shutdown_grace_sec = 30;
    uint64_t audit_max_bytes = 16ull << 20;  // per job; past it, repeated events are counted
    // audit-events: "all" (every deviation an event in the chain) or "counts"
    // (the signed summary's counts only: what bench/audit_overhead measures against).
    bool audit_every_event = true;

    // The Buildbarn runner (runner/, docs/buildbarn.md): off without a socket.
    std::optional<std::string> runner_socket;
    std::string runner_build_dir = "/worker/build";

    sandbox::SandboxConfig sandbox;
};

class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// What parse_command_line decided besides the config: --help and --version print
// and exit 0.
struct ParsedArgs {
    DaemonConfig config;
    std::optional<std::string> print_and_exit;
};

// Parses the command line, then the config file it names (the default one only if
// it exists; one named explicitly must exist). Command-line values win. Validates
// everything; throws ConfigError with "file:option: reason".
ParsedArgs parse_command_line(int argc, const char* const argv[]);

// Parses a config file's text alone (for --check-config, SIGHUP and fuzzing).
DaemonConfig parse_config_text(const std::string& text, const std::string& origin, DaemonConfig base = {});

std::string help_text();

// ---- SIGHUP ---------------------------------------------------------------------------
//
// On SIGHUP the daemon re-reads its configuration (the file, then its original
// command line on top, exactly as at start). Options that only steer admission,
// retention, shutdown and logging take effect at once; every other option (socket,
// state-dir, ids, cgroups, sandbox shape and limits, ...) needs a restart: a change
// to one is logged as ignored and the running value stays.

// Every option's effective value, by its name in the file ("max-jobs" -> "4").
std::map<std::string, std::string> option_values(const DaemonConfig& c);

// Whether SIGHUP applies a change of this option (names as in the file).
bool is_reloadable(const std::string& option);

struct ReloadPlan {
    std::vector<std::string> applied;  // "max-jobs: 4 -> 8"
    std::vector<std::string> ignored;  // "socket: /a -> /b"
};
// What reloading `fresh` over the configuration in force would change.
ReloadPlan plan_reload(const DaemonConfig& in_force, const DaemonConfig& fresh);

// Copies the reloadable options of `from` into `into` (the rest stays).
void apply_reloadable(DaemonConfig& into, const DaemonConfig& from);

}  // namespace hermetic::daemon
