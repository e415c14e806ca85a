#include "daemon/config.hpp"

#include <boost/program_options.hpp>
#include <cctype>
#include <fstream>
#include <sstream>

#include "sandbox/determinism/config.hpp"
#include "sandbox/etc_files.hpp"

namespace hermetic::daemon {

namespace po = boost::program_options;

namespace {

// Sizes accept K/M/G/T suffixes (powers of 1024): "4G".
uint64_t parse_size(const std::string& name, const std::string& v) {
    if (v.empty()) throw ConfigError(name + ": empty size");
    // std::stoull accepts a sign: "-1" would silently become 16 EiB.
    if (!std::isdigit(static_cast<unsigned char>(v[0]))) throw ConfigError(name + ": not a size: '" + v + "'");
    size_t pos = 0;
    unsigned long long n;
    try {
        n = std::stoull(v, &pos);
    } catch (...) {
        throw ConfigError(name + ": not a size: '" + v + "'");
    }
    std::string suf = v.substr(pos);
    uint64_t mult = 1;
    if (suf.empty() || suf == "B") mult = 1;
    else if (suf == "K" || suf == "KiB") mult = 1ull << 10;
    else if (suf == "M" || suf == "MiB") mult = 1ull << 20;
    else if (suf == "G" || suf == "GiB") mult = 1ull << 30;
    else if (suf == "T" || suf == "TiB") mult = 1ull << 40;
    else throw ConfigError(name + ": unknown size suffix '" + suf + "' (use K, M, G or T)");
    if (n > UINT64_MAX / mult) throw ConfigError(name + ": size too large");
    return n * mult;
}

struct RawOptions {
    std::string socket, state_dir, policy_dir, group, log_level, root_dir;
    std::vector<std::string> ro_binds, etc_masks;
    std::string build_size, out_size, tmp_size, source_max_bytes, output_max_bytes, default_memory, max_memory,
        log_cap, max_output;
    uint64_t source_max_files = 0, output_max_files = 0, pids_max = 0, default_timeout = 0, max_timeout = 0,
             nofile = 0;
    uint32_t id_base = 0, id_count = 0, max_jobs = 0, max_queued = 0, max_per_user = 0, max_connections = 0,
             netns_pool = 0, sandbox_pool = 0, cpus_visible = 0, request_timeout_ms = 0, retain_days = 0, retain_jobs = 0,
             gc_interval = 0, shutdown_grace = 0;
    std::string retain_bytes, audit_max_bytes, audit_events;
    double cpu_limit = 0;
    int64_t default_epoch = 0, clock_step = 0;
    std::string cgroup_root, cgroup_parent;
    std::string runner_socket, runner_build_dir;
};

// The single definition of every option that may appear on the command line and
// in the config file.
po::options_description shared_options(RawOptions& r, const DaemonConfig& d) {
    auto size = [](uint64_t v) { return std::to_string(v); };
    po::options_description o("Options (command line or config file)");
    o.add_options()
        ("socket", po::value(&r.socket)->default_value(d.socket_path), "listening socket path")
        ("state-dir", po::value(&r.state_dir)->default_value(d.state_dir), "journal, logs, audit, keys")
        ("policy-dir", po::value(&r.policy_dir)->default_value(d.policy_dir), "admin policy directory")
        ("group", po::value(&r.group)->default_value(d.group), "group whose members may submit jobs")
        ("log-level", po::value(&r.log_level)->default_value(d.log_level), "trace|debug|info|warn|error")
        ("id-base", po::value(&r.id_base)->default_value(d.id_base), "first host uid/gid for sandboxes")
        ("id-count", po::value(&r.id_count)->default_value(d.id_count), "number of host ids (2 per running job)")
        ("max-jobs", po::value(&r.max_jobs)->default_value(d.max_jobs), "jobs running at once")
        ("max-queued", po::value(&r.max_queued)->default_value(d.max_queued), "jobs waiting for a slot")
        ("max-jobs-per-user", po::value(&r.max_per_user)->default_value(d.max_jobs_per_user), "running + queued per user")
        ("max-connections", po::value(&r.max_connections)->default_value(d.max_connections), "client connections at once")
        ("request-timeout-ms", po::value(&r.request_timeout_ms)->default_value(static_cast<uint32_t>(d.request_timeout.count())), "time a client has to send its request")
        ("root-dir", po::value(&r.root_dir), "root directory for sandboxes instead of the host's /usr, /etc, ...")
        ("ro-bind", po::value(&r.ro_binds)->composing(), "host path bound read-only at the same place (repeatable), e.g. /var/lib/dpkg")
        ("etc-mask", po::value(&r.etc_masks)->composing(), "entry under /etc hidden from builds (repeatable; replaces the default list)")
        ("build-size", po::value(&r.build_size)->default_value(size(d.sandbox.build_bytes)), "/build quota")
        ("out-size", po::value(&r.out_size)->default_value(size(d.sandbox.out_bytes)), "/out quota")
        ("tmp-size", po::value(&r.tmp_size)->default_value(size(d.sandbox.tmp_bytes)), "/tmp and /dev/shm quota")
        ("source-max-bytes", po::value(&r.source_max_bytes)->default_value(size(d.sandbox.source_limits.max_bytes)), "largest source copied")
        ("source-max-files", po::value(&r.source_max_files)->default_value(d.sandbox.source_limits.max_entries), "most source entries")
        ("output-max-bytes", po::value(&r.output_max_bytes)->default_value(size(d.sandbox.output_limits.max_bytes)), "largest /out collected")
        ("output-max-files", po::value(&r.output_max_files)->default_value(d.sandbox.output_limits.max_entries), "most /out entries")
        ("default-memory", po::value(&r.default_memory)->default_value(size(d.default_memory)), "memory limit without --memory")
        ("max-memory", po::value(&r.max_memory)->default_value(size(d.max_memory)), "largest --memory accepted")
        ("pids-max", po::value(&r.pids_max)->default_value(d.pids_max), "processes+threads per job")
        ("cpu-limit", po::value(&r.cpu_limit)->default_value(d.cpu_limit), "CPU bandwidth per job in CPUs (0: none)")
        ("cpus-visible", po::value(&r.cpus_visible)->default_value(d.sandbox.default_cpus_visible), "CPU count a build sees without --cpus")
        ("nofile", po::value(&r.nofile)->default_value(d.sandbox.nofile_limit), "RLIMIT_NOFILE of builds")
        ("default-timeout", po::value(&r.default_timeout)->default_value(d.default_timeout_sec), "seconds, without --timeout")
        ("max-timeout", po::value(&r.max_timeout)->default_value(d.max_timeout_sec), "largest --timeout accepted")
        ("log-cap", po::value(&r.log_cap)->default_value(size(d.log_cap_bytes)), "build output stored per job")
        ("max-output", po::value(&r.max_output)->default_value(size(d.max_output_bytes)), "build output per job before it is killed")
        ("default-epoch", po::value(&r.default_epoch)->default_value(d.default_epoch), "clock start without --epoch or SOURCE_DATE_EPOCH")
        ("clock-step", po::value(&r.clock_step)->default_value(d.default_clock_step_ns), "ns the logical clock advances per read, without --clock-step")
        ("netns-pool", po::value(&r.netns_pool)->default_value(d.netns_pool), "network namespaces prepared ahead")
        ("sandbox-pool", po::value(&r.sandbox_pool)->default_value(d.sandbox_pool), "sandboxes prepared ahead of jobs (0: on demand)")
        ("retain-days", po::value(&r.retain_days)->default_value(d.retain_days), "finished jobs kept at most this many days (0: no age limit)")
        ("retain-jobs", po::value(&r.retain_jobs)->default_value(d.retain_jobs), "finished jobs kept at most (0: no count limit)")
        ("retain-bytes", po::value(&r.retain_bytes)->default_value(size(d.retain_bytes)), "logs and evidence kept at most (0: no size limit)")
        ("gc-interval", po::value(&r.gc_interval)->default_value(d.gc_interval_sec), "seconds between automatic collections (0: only hermeticctl gc)")
        ("audit-max-bytes", po::value(&r.audit_max_bytes)->default_value(size(d.audit_max_bytes)), "audit log bound per job (past it, repeated events are aggregated into exact counters)")
        ("audit-events", po::value(&r.audit_events)->default_value(d.audit_every_event ? "all" : "counts"), "all: every deviation is an event in the job's audit chain; counts: only the signed summary's counts")
        ("shutdown-grace", po::value(&r.shutdown_grace)->default_value(d.shutdown_grace_sec), "seconds running jobs get to finish on SIGTERM")
        ("cgroup-root", po::value(&r.cgroup_root)->default_value(d.sandbox.cgroup.root), "where cgroup hierarchies are mounted")
        ("cgroup-parent", po::value(&r.cgroup_parent)->default_value(d.sandbox.cgroup.parent), "this daemon's parent cgroup for jobs")
        ("runner-socket", po::value(&r.runner_socket), "serve the Buildbarn runner gRPC service on this Unix socket (docs/buildbarn.md)")
        ("runner-build-dir", po::value(&r.runner_build_dir)->default_value(d.runner_build_dir), "the build directory shared with bb_worker: every runner path is relative to it");
    return o;
}

bool is_absolute_clean(const std::string& p) {
    return !p.empty() && p[0] == '/' && p.find("/../") == std::string::npos && !p.ends_with("/..") &&
           p.find('\0') == std::string::npos;
}

void apply(const RawOptions& r, DaemonConfig& c, const po::variables_map& vm) {
    c.socket_path = r.socket;
    c.state_dir = r.state_dir;
    c.policy_dir = r.policy_dir;
    c.group = r.group;
    c.log_level = r.log_level;
    c.id_base = r.id_base;
    c.id_count = r.id_count;
    c.max_jobs = r.max_jobs;
    c.max_queued = r.max_queued;
    c.max_jobs_per_user = r.max_per_user;
    c.max_connections = r.max_connections;
    c.request_timeout = std::chrono::milliseconds(r.request_timeout_ms);
    if (vm.count("runner-socket")) c.runner_socket = r.runner_socket;
    c.runner_build_dir = r.runner_build_dir;
    if (vm.count("root-dir")) c.sandbox.root_dir = r.root_dir;
    if (vm.count("ro-bind")) c.sandbox.ro_binds = r.ro_binds;
    if (vm.count("etc-mask")) c.sandbox.etc_masks = r.etc_masks;
    c.sandbox.build_bytes = parse_size("build-size", r.build_size);
    c.sandbox.out_bytes = parse_size("out-size", r.out_size);
    c.sandbox.tmp_bytes = parse_size("tmp-size", r.tmp_size);
    c.sandbox.source_limits = {parse_size("source-max-bytes", r.source_max_bytes), r.source_max_files};
    c.sandbox.output_limits = {parse_size("output-max-bytes", r.output_max_bytes), r.output_max_files};
    c.default_memory = parse_size("default-memory", r.default_memory);
    c.max_memory = parse_size("max-memory", r.max_memory);
    c.pids_max = r.pids_max;
    c.cpu_limit = r.cpu_limit;
    c.sandbox.default_cpus_visible = r.cpus_visible;
    c.sandbox.nofile_limit = r.nofile;
    c.default_timeout_sec = r.default_timeout;
    c.max_timeout_sec = r.max_timeout;
    c.log_cap_bytes = parse_size("log-cap", r.log_cap);
    c.max_output_bytes = parse_size("max-output", r.max_output);
    c.default_epoch = r.default_epoch;
    c.default_clock_step_ns = r.clock_step;
    c.netns_pool = r.netns_pool;
    c.sandbox_pool = r.sandbox_pool;
    c.retain_days = r.retain_days;
    c.retain_jobs = r.retain_jobs;
    c.retain_bytes = parse_size("retain-bytes", r.retain_bytes);
    c.gc_interval_sec = r.gc_interval;
    c.audit_max_bytes = parse_size("audit-max-bytes", r.audit_max_bytes);
    if (r.audit_events != "all" && r.audit_events != "counts")
        throw ConfigError("audit-events: must be \"all\" or \"counts\", not \"" + r.audit_events + "\"");
    c.audit_every_event = r.audit_events == "all";
    c.shutdown_grace_sec = r.shutdown_grace;
    c.sandbox.cgroup.root = r.cgroup_root;
    c.sandbox.cgroup.parent = r.cgroup_parent;
}

void validate(const DaemonConfig& c) {
    auto need = [](bool ok, const std::string& msg) {
        if (!ok) throw ConfigError(msg);
    };
    need(is_absolute_clean(c.socket_path), "socket: must be an absolute path");
    need(is_absolute_clean(c.state_dir) && c.state_dir != "/", "state-dir: must be an absolute path other than /");
    need(is_absolute_clean(c.policy_dir), "policy-dir: must be an absolute path");
    need(!c.group.empty(), "group: must not be empty");
    need(c.id_base >= 65536, "id-base: must be at least 65536 (keep clear of real users)");
    need(c.id_count >= 2 && c.id_count <= (1u << 30), "id-count: must be between 2 and 2^30");
    need(static_cast<uint64_t>(c.id_base) + c.id_count <= 0xFFFFFFFEull, "id-base + id-count: beyond the uid range");
    need(c.max_jobs >= 1, "max-jobs: must be at least 1");
    need(c.max_connections >= 1, "max-connections: must be at least 1");
    need(c.request_timeout.count() >= 100, "request-timeout-ms: must be at least 100");
    need(c.default_memory >= (4u << 20) && c.default_memory <= c.max_memory,
         "default-memory: must be at least 4M and at most max-memory");
    need(c.pids_max >= 16, "pids-max: must be at least 16");
    need(c.cpu_limit >= 0 && c.cpu_limit <= 4096, "cpu-limit: must be between 0 and 4096");
    need(c.sandbox.default_cpus_visible >= 1 && c.sandbox.default_cpus_visible <= 4096, "cpus-visible: 1..4096");
    need(c.sandbox.nofile_limit >= 64 && c.sandbox.nofile_limit <= (1u << 20), "nofile: must be 64..1048576");
    need(c.default_timeout_sec >= 1 && c.default_timeout_sec <= c.max_timeout_sec,
         "default-timeout: must be at least 1 and at most max-timeout");
    need(c.sandbox.build_bytes >= (1u << 20) && c.sandbox.out_bytes >= (1u << 20) && c.sandbox.tmp_bytes >= (1u << 20),
         "build-size, out-size, tmp-size: must each be at least 1M");
    need(c.default_epoch >= 0 && c.default_epoch < 253402300800, "default-epoch: must be between 0 and year 9999");
    need(c.default_clock_step_ns >= 1 && c.default_clock_step_ns <= sandbox::determinism::kMaxClockStepNs,
         "clock-step: 1..1000000000 (ns)");
    need(c.netns_pool <= 64, "netns-pool: at most 64");
    need(c.sandbox_pool <= 64, "sandbox-pool: at most 64");
    need(c.audit_max_bytes >= (16u << 10), "audit-max-bytes: must be at least 16K");
    need(static_cast<uint64_t>(c.max_jobs) + c.sandbox_pool <= c.id_count / 2,
         "max-jobs + sandbox-pool: each needs two ids, and id-count has only " + std::to_string(c.id_count / 2) + " pairs");
    if (c.sandbox.root_dir) need(is_absolute_clean(*c.sandbox.root_dir), "root-dir: must be an absolute path");
    if (c.runner_socket) need(is_absolute_clean(*c.runner_socket), "runner-socket: must be an absolute path");
    need(is_absolute_clean(c.runner_build_dir) && c.runner_build_dir != "/",
         "runner-build-dir: must be an absolute path other than /");
    for (const auto& b : c.sandbox.ro_binds)
        need(is_absolute_clean(b) && b != "/", "ro-bind: must be an absolute path other than /: " + b);
    for (const auto& m : c.sandbox.etc_masks)
        need(!m.empty() && m[0] != '/' && m.find("..") == std::string::npos, "etc-mask: must be relative to /etc: " + m);
    const std::string& p = c.sandbox.cgroup.parent;
    need(!p.empty() && p.find("..") == std::string::npos && p[0] != '/', "cgroup-parent: must be a relative name");
    static const char* levels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
    bool ok = false;
    for (auto* l : levels) ok = ok || c.log_level == l;
    need(ok, "log-level: must be one of trace, debug, info, warn, error, critical, off");
}

// boost::lexical_cast reads "-1" into an unsigned option as its maximum
// (4294967295), so "request-timeout-ms = -1" would mean 49 days. Refuse a sign
// on every unsigned option before the values are stored.
void refuse_negative_unsigned(const po::parsed_options& parsed, const po::options_description& desc) {
    for (const auto& o : parsed.options) {
        const po::option_description* d = desc.find_nothrow(o.string_key, false);
        if (!d) continue;
        const po::value_semantic* sem = d->semantic().get();
        if (!dynamic_cast<const po::typed_value<uint32_t>*>(sem) && !dynamic_cast<const po::typed_value<uint64_t>*>(sem))
            continue;
        for (const auto& v : o.value) {
            auto i = v.find_first_not_of(" \t");
            if (i != std::string::npos && v[i] == '-')
                throw ConfigError(o.string_key + ": must not be negative: '" + v + "'");
        }
    }
}

DaemonConfig defaults() {
    DaemonConfig d;
    d.sandbox.etc_masks = sandbox::default_etc_masks();
    return d;
}

// Boost's error messages substitute placeholders ("%value%", ...) in a loop
// that never ends when the offending text contains one itself (found by
// fuzz/fuzz_config.cpp): a config or argument with '%' is refused before Boost
// sees it. No option's value needs one.
void refuse_percent(std::string_view text, const std::string& where) {
    size_t line = 1;
    bool comment = false;
    for (char c : text) {
        if (c == '\n') {
            ++line;
            comment = false;
        } else if (c == '#') {
            comment = true;
        } else if (c == '%' && !comment) {
            throw ConfigError((where.empty() ? "line " + std::to_string(line) : where) +
                              ": '%' is not allowed in option names or values");
        }
    }
}

}  // namespace

DaemonConfig parse_config_text(const std::string& text, const std::string& origin, DaemonConfig base) {
    RawOptions raw;
    auto desc = shared_options(raw, base);
    po::variables_map vm;
    try {
        refuse_percent(text, "");
        std::istringstream in(text);
        auto parsed = po::parse_config_file(in, desc, /*allow_unregistered=*/false);
        refuse_negative_unsigned(parsed, desc);
        po::store(parsed, vm);
        po::notify(vm);
        apply(raw, base, vm);
        validate(base);
    } catch (const ConfigError& e) {
        throw ConfigError(origin + ": " + e.what());
    } catch (const po::error& e) {
        throw ConfigError(origin + ": " + e.what());
    }
    return base;
}

std::string help_text() {
    RawOptions raw;
    DaemonConfig d = defaults();
    std::ostringstream s;
    s << "Usage: hermeticd [OPTIONS]\n"
         "The hermetic build sandbox daemon: runs build jobs submitted with hermeticctl in fresh\n"
         "namespaces under seccomp filters, and keeps a journal and audit evidence of each.\n\n"
         "Command line only:\n"
         "  --config FILE        config file (default /etc/hermetic/hermeticd.conf; ignored if absent)\n"
         "  --foreground         stay in the foreground (always true under systemd)\n"
         "  --check-config       validate the configuration and exit\n"
         "  --help, --version\n\n";
    s << shared_options(raw, d);
    return s.str();
}

std::map<std::string, std::string> option_values(const DaemonConfig& c) {
    auto u = [](uint64_t v) { return std::to_string(v); };
    auto list = [](const std::vector<std::string>& v) {
        std::string s;
        for (const auto& e : v) s += (s.empty() ? "" : ",") + e;
        return s;
    };
    std::ostringstream cpu;
    cpu << c.cpu_limit;
    const auto& sb = c.sandbox;
    return {
        {"socket", c.socket_path},
        {"state-dir", c.state_dir},
        {"policy-dir", c.policy_dir},
        {"group", c.group},
        {"log-level", c.log_level},
        {"id-base", u(c.id_base)},
        {"id-count", u(c.id_count)},
        {"max-jobs", u(c.max_jobs)},
        {"max-queued", u(c.max_queued)},
        {"max-jobs-per-user", u(c.max_jobs_per_user)},
        {"max-connections", u(c.max_connections)},
        {"request-timeout-ms", u(static_cast<uint64_t>(c.request_timeout.count()))},
        {"root-dir", sb.root_dir.value_or("")},
        {"ro-bind", list(sb.ro_binds)},
        {"etc-mask", list(sb.etc_masks)},
        {"build-size", u(sb.build_bytes)},
        {"out-size", u(sb.out_bytes)},
        {"tmp-size", u(sb.tmp_bytes)},
        {"source-max-bytes", u(sb.source_limits.max_bytes)},
        {"source-max-files", u(sb.source_limits.max_entries)},
        {"output-max-bytes", u(sb.output_limits.max_bytes)},
        {"output-max-files", u(sb.output_limits.max_entries)},
        {"default-memory", u(c.default_memory)},
        {"max-memory", u(c.max_memory)},
        {"pids-max", u(c.pids_max)},
        {"cpu-limit", cpu.str()},
        {"cpus-visible", u(sb.default_cpus_visible)},
        {"nofile", u(sb.nofile_limit)},
        {"default-timeout", u(c.default_timeout_sec)},
        {"max-timeout", u(c.max_timeout_sec)},
        {"log-cap", u(c.log_cap_bytes)},
        {"max-output", u(c.max_output_bytes)},
        {"default-epoch", std::to_string(c.default_epoch)},
        {"clock-step", std::to_string(c.default_clock_step_ns)},
        {"netns-pool", u(c.netns_pool)},
        {"sandbox-pool", u(c.sandbox_pool)},
        {"retain-days", u(c.retain_days)},
        {"retain-jobs", u(c.retain_jobs)},
        {"retain-bytes", u(c.retain_bytes)},
        {"gc-interval", u(c.gc_interval_sec)},
        {"audit-max-bytes", u(c.audit_max_bytes)},
        {"audit-events", c.audit_every_event ? "all" : "counts"},
        {"shutdown-grace", u(c.shutdown_grace_sec)},
        {"cgroup-root", sb.cgroup.root},
        {"cgroup-parent", sb.cgroup.parent},
        {"runner-socket", c.runner_socket.value_or("")},
        {"runner-build-dir", c.runner_build_dir},
    };
}

namespace {
// Keep in step with apply_reloadable() and docs/interface.md.
constexpr const char* kReloadable[] = {"log-level",   "max-jobs",    "max-queued",  "max-jobs-per-user", "retain-days",
                                       "retain-jobs", "retain-bytes", "gc-interval", "shutdown-grace"};
}  // namespace

bool is_reloadable(const std::string& option) {
    for (const char* r : kReloadable)
        if (option == r) return true;
    return false;
}

ReloadPlan plan_reload(const DaemonConfig& in_force, const DaemonConfig& fresh) {
    ReloadPlan plan;
    auto before = option_values(in_force);
    for (const auto& [name, value] : option_values(fresh)) {
        const std::string& old = before[name];
        if (old == value) continue;
        (is_reloadable(name) ? plan.applied : plan.ignored).push_back(name + ": " + old + " -> " + value);
    }
    return plan;
}

void apply_reloadable(DaemonConfig& into, const DaemonConfig& from) {
    into.log_level = from.log_level;
    into.max_jobs = from.max_jobs;
    into.max_queued = from.max_queued;
    into.max_jobs_per_user = from.max_jobs_per_user;
    into.retain_days = from.retain_days;
    into.retain_jobs = from.retain_jobs;
    into.retain_bytes = from.retain_bytes;
    into.gc_interval_sec = from.gc_interval_sec;
    into.shutdown_grace_sec = from.shutdown_grace_sec;
}

ParsedArgs parse_command_line(int argc, const char* const argv[]) {
    ParsedArgs out;
    DaemonConfig base = defaults();
    RawOptions raw;
    auto shared = shared_options(raw, base);
    po::options_description cli_only;
    std::string config_file = base.config_file;
    cli_only.add_options()("config", po::value(&config_file))("foreground", po::bool_switch())(
        "check-config", po::bool_switch())("help", po::bool_switch())("version", po::bool_switch());
    po::options_description all;
    all.add(cli_only).add(shared);
    po::variables_map vm;
    try {
        for (int i = 1; i < argc; ++i) refuse_percent(argv[i], "argument " + std::to_string(i));
        auto parsed = po::command_line_parser(argc, argv).options(all).run();
        refuse_negative_unsigned(parsed, all);
        po::store(parsed, vm);
        po::notify(vm);
    } catch (const ConfigError& e) {
        throw ConfigError(std::string("command line: ") + e.what());
    } catch (const po::error& e) {
        throw ConfigError(std::string("command line: ") + e.what());
    }
    if (vm["help"].as<bool>()) {
        out.print_and_exit = help_text();
        return out;
    }
    if (vm["version"].as<bool>()) {
        out.print_and_exit = "hermeticd " HERMETIC_VERSION "\n";
        return out;
    }
    // The file first, then the command line on top: re-parse the command line
    // into a config seeded with the file's values.
    std::ifstream f(config_file);
    if (f) {
        std::stringstream ss;
        ss << f.rdbuf();
        base = parse_config_text(ss.str(), config_file, base);
    } else if (vm.count("config") != 0) {  // named explicitly: must exist
        throw ConfigError(config_file + ": cannot open config file");
    }
    RawOptions raw2;
    auto shared2 = shared_options(raw2, base);
    po::options_description all2;
    all2.add(cli_only).add(shared2);
    po::variables_map vm2;
    try {
        po::store(po::command_line_parser(argc, argv).options(all2).run(), vm2);
        po::notify(vm2);
        apply(raw2, base, vm2);
        validate(base);
    } catch (const ConfigError& e) {
        throw ConfigError(std::string("command line: ") + e.what());
    } catch (const po::error& e) {
        throw ConfigError(std::string("command line: ") + e.what());
    }
    base.config_file = config_file;
    base.foreground = vm["foreground"].as<bool>();
    base.check_config = vm["check-config"].as<bool>();
    out.config = std::move(base);
    return out;
}

}  // namespace hermetic::daemon
