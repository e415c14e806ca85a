#include "sandbox/job_codec.hpp"

#include <cstring>

#include "syscall-policy/policy_json.hpp"

namespace hermetic::sandbox {

using nlohmann::json;

namespace {

json filter_to_json(const policy::Filter& f) {
    std::string bytes(f.program.size() * sizeof(sock_filter), '\0');
    std::memcpy(bytes.data(), f.program.data(), bytes.size());
    // Base64 through json's binary type would need CBOR; hex is simple and small enough.
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) {
        hex += kHex[c >> 4];
        hex += kHex[c & 15];
    }
    return json{{"bpf", hex}, {"needs_listener", f.needs_listener}};
}

policy::Filter filter_from_json(const json& j) {
    policy::Filter f;
    const std::string& hex = j.at("bpf").get_ref<const std::string&>();
    if (hex.size() % (2 * sizeof(sock_filter)) != 0 || hex.size() > 2 * sizeof(sock_filter) * 65536)
        throw std::runtime_error("bad filter length");
    auto nib = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        throw std::runtime_error("bad filter hex");
    };
    std::string bytes(hex.size() / 2, '\0');
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(nib(hex[2 * i]) << 4 | nib(hex[2 * i + 1]));
    f.program.resize(bytes.size() / sizeof(sock_filter));
    std::memcpy(f.program.data(), bytes.data(), bytes.size());
    f.needs_listener = j.value("needs_listener", false);
    return f;
}

}  // namespace

json filters_to_json(const std::vector<policy::Filter>& filters) {
    json out = json::array();
    for (const auto& f : filters) out.push_back(filter_to_json(f));
    return out;
}

std::vector<policy::Filter> filters_from_json(const json& j) {
    std::vector<policy::Filter> out;
    if (!j.is_array() || j.size() > 8) throw std::runtime_error("bad filter list");
    for (const auto& f : j) out.push_back(filter_from_json(f));
    return out;
}

void to_json(json& j, const SandboxConfig& v) {
    j = json{{"ro_binds", v.ro_binds},
             {"etc_masks", v.etc_masks},
             {"build_bytes", v.build_bytes},
             {"out_bytes", v.out_bytes},
             {"tmp_bytes", v.tmp_bytes},
             {"source_limits", {v.source_limits.max_bytes, v.source_limits.max_entries}},
             {"output_limits", {v.output_limits.max_bytes, v.output_limits.max_entries}},
             {"cgroup_root", v.cgroup.root},
             {"cgroup_parent", v.cgroup.parent},
             {"nofile_limit", v.nofile_limit},
             {"fsize_limit", v.fsize_limit},
             {"default_cpus_visible", v.default_cpus_visible}};
    if (v.root_dir) j["root_dir"] = *v.root_dir;
    if (v.cgroup.version) j["cgroup_version"] = *v.cgroup.version == CgroupVersion::V2 ? 2 : 1;
}

void from_json(const json& j, SandboxConfig& v) {
    if (j.contains("root_dir")) v.root_dir = j["root_dir"].get<std::string>();
    v.ro_binds = j.at("ro_binds").get<std::vector<std::string>>();
    v.etc_masks = j.at("etc_masks").get<std::vector<std::string>>();
    v.build_bytes = j.at("build_bytes").get<uint64_t>();
    v.out_bytes = j.at("out_bytes").get<uint64_t>();
    v.tmp_bytes = j.at("tmp_bytes").get<uint64_t>();
    v.source_limits.max_bytes = j.at("source_limits").at(0).get<uint64_t>();
    v.source_limits.max_entries = j.at("source_limits").at(1).get<uint64_t>();
    v.source_limits.label = "source";
    v.output_limits.max_bytes = j.at("output_limits").at(0).get<uint64_t>();
    v.output_limits.max_entries = j.at("output_limits").at(1).get<uint64_t>();
    v.output_limits.label = "outputs";
    v.cgroup.root = j.at("cgroup_root").get<std::string>();
    v.cgroup.parent = j.at("cgroup_parent").get<std::string>();
    if (j.contains("cgroup_version")) v.cgroup.version = j["cgroup_version"] == 2 ? CgroupVersion::V2 : CgroupVersion::V1;
    v.nofile_limit = j.at("nofile_limit").get<uint64_t>();
    v.fsize_limit = j.at("fsize_limit").get<uint64_t>();
    v.default_cpus_visible = j.at("default_cpus_visible").get<uint32_t>();
}

namespace {
json limits_json(const CgroupLimits& l) { return json{{"memory", l.memory_bytes}, {"pids", l.pids_max}, {"cpus", l.cpus}}; }
CgroupLimits limits_from(const json& j) {
    return CgroupLimits{j.at("memory").get<uint64_t>(), j.at("pids").get<uint64_t>(), j.at("cpus").get<double>()};
}
}  // namespace

void to_json(json& j, const PrepareSpec& v) {
    j = json{{"sandbox_id", v.sandbox_id},
             {"ids", {v.ids.root_host_id, v.ids.build_host_id}},
             {"config", v.config},
             {"default_limits", limits_json(v.default_limits)}};
    if (v.likely_policy) {
        j["likely_policy"] = policy::policy_to_json(*v.likely_policy);
        j["likely_digest"] = v.likely_digest;
    }
}

void from_json(const json& j, PrepareSpec& v) {
    v.sandbox_id = j.at("sandbox_id").get<std::string>();
    v.ids.root_host_id = j.at("ids").at(0).get<uid_t>();
    v.ids.build_host_id = j.at("ids").at(1).get<uid_t>();
    v.config = j.at("config").get<SandboxConfig>();
    v.default_limits = limits_from(j.at("default_limits"));
    if (j.contains("likely_policy")) {
        v.likely_policy = policy::policy_from_json(j["likely_policy"]);
        v.likely_digest = j.at("likely_digest").get<std::string>();
    }
}

void to_json(json& j, const RunSpec& v) {
    json filters = filters_to_json(v.filters);
    j = json{{"job_id", v.job_id},
             {"argv", v.argv},
             {"env", v.env},
             {"caller", {{"uid", v.caller.uid}, {"gid", v.caller.gid}, {"groups", v.caller.groups}}},
             {"has_out", v.has_out},
             {"limits", limits_json(v.limits)},
             {"cpus_visible", v.cpus_visible},
             {"epoch", v.epoch},
             {"clock_step_ns", v.clock_step_ns},
             {"filters", filters},
             {"policy_digest", v.policy_digest},
             {"seed", v.seed},
             {"trace", v.trace},
             {"record_events", v.record_events},
             {"perturb", v.perturb}};
    if (v.out_exclude) j["out_exclude"] = *v.out_exclude;
    if (v.timeout) j["timeout_ms"] = v.timeout->count();
    if (v.policy) j["policy"] = policy::policy_to_json(*v.policy);
    if (v.in_place)
        j["in_place"] = {{"owner_uid", v.in_place->owner_uid},
                         {"owner_gid", v.in_place->owner_gid},
                         {"workdir", v.in_place->workdir}};
}

void from_json(const json& j, RunSpec& v) {
    v.job_id = j.at("job_id").get<std::string>();
    v.argv = j.at("argv").get<std::vector<std::string>>();
    v.env = j.at("env").get<std::vector<std::string>>();
    v.caller.uid = j.at("caller").at("uid").get<uid_t>();
    v.caller.gid = j.at("caller").at("gid").get<gid_t>();
    v.caller.groups = j.at("caller").at("groups").get<std::vector<gid_t>>();
    v.has_out = j.at("has_out").get<bool>();
    if (j.contains("out_exclude")) v.out_exclude = j["out_exclude"].get<protocol::FileId>();
    v.limits = limits_from(j.at("limits"));
    if (j.contains("timeout_ms")) v.timeout = std::chrono::milliseconds(j["timeout_ms"].get<int64_t>());
    v.cpus_visible = j.at("cpus_visible").get<uint32_t>();
    v.epoch = j.at("epoch").get<int64_t>();
    v.clock_step_ns = j.at("clock_step_ns").get<int64_t>();
    v.filters = filters_from_json(j.at("filters"));
    v.policy_digest = j.value("policy_digest", "");
    v.seed = j.value("seed", uint64_t{0});
    v.trace = j.value("trace", false);
    v.record_events = j.value("record_events", true);
    v.perturb = j.value("perturb", uint32_t{0});
    if (j.contains("policy")) v.policy = policy::policy_from_json(j["policy"]);
    if (j.contains("in_place")) {
        const json& p = j["in_place"];
        v.in_place = InPlaceRoot{p.at("owner_uid").get<uid_t>(), p.at("owner_gid").get<gid_t>(),
                                 p.at("workdir").get<std::string>()};
    }
}

void to_json(json& j, const JobOutcome& o) {
    j = json{{"status", static_cast<int>(o.status)},
             {"exit_code", o.exit_code},
             {"signal", o.signal},
             {"reason", o.reason},
             {"oom_killed", o.oom_killed},
             {"pids_limit_hit", o.pids_limit_hit},
             {"outputs", o.outputs},
             {"notices", o.notices},
             {"source_digest", o.source_digest},
             {"phase_ms", o.phase_ms},
             {"supervised", o.supervised},
             {"unvirtualizable", o.unvirtualizable},
             {"supervisor_events", o.supervisor_events},
             {"supervisor_notes", o.supervisor_notes},
             {"deviations_by_class", o.deviations_by_class},
             {"rusage", o.rusage}};
}

void from_json(const json& j, JobOutcome& o) {
    int st = j.at("status").get<int>();
    if (st < 0 || st > static_cast<int>(JobStatus::LimitExceeded)) throw std::runtime_error("bad job status");
    o.status = static_cast<JobStatus>(st);
    o.exit_code = j.value("exit_code", 0);
    o.signal = j.value("signal", 0);
    o.reason = j.value("reason", "");
    o.oom_killed = j.value("oom_killed", false);
    o.pids_limit_hit = j.value("pids_limit_hit", false);
    o.outputs = j.value("outputs", std::vector<protocol::OutputEntry>{});
    o.notices = j.value("notices", std::vector<std::string>{});
    o.source_digest = j.value("source_digest", "");
    o.phase_ms = j.value("phase_ms", std::map<std::string, double>{});
    o.supervised = j.value("supervised", false);
    o.unvirtualizable = j.value("unvirtualizable", std::vector<std::string>{});
    o.supervisor_events = j.value("supervisor_events", uint64_t{0});
    o.supervisor_notes = j.value("supervisor_notes", std::vector<std::string>{});
    o.deviations_by_class = j.value("deviations_by_class", std::map<std::string, uint64_t>{});
    o.rusage = j.value("rusage", std::map<std::string, int64_t>{});
}

}  // namespace hermetic::sandbox
