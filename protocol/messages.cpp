#include "protocol/messages.hpp"

#include <algorithm>
#include <limits>
#include <type_traits>
#include <utility>

namespace hermetic::protocol {

using nlohmann::json;

std::string version_string() { return std::to_string(kProtoMajor) + "." + std::to_string(kProtoMinor); }

VersionMismatch::VersionMismatch(int major, int minor)
    : ProtocolError("protocol version " + std::to_string(major) + "." + std::to_string(minor) +
                    " is not supported by this side, which speaks " + version_string() +
                    " (hermetic " HERMETIC_VERSION ")"),
      peer_major(major),
      peer_minor(minor) {}

json make_message(std::string_view type) {
    return json{{"proto", {kProtoMajor, kProtoMinor}}, {"type", type}};
}

json make_error(std::string_view code, std::string_view message) {
    json j = make_message("error");
    j["code"] = code;
    j["message"] = message;
    return j;
}

namespace {

// A JSON integer that fits T exactly. nlohmann's get<T>() converts with a plain
// cast, so 2^32 + 1 would read as 1 and -1 as 4294967295; floats would be
// truncated. Anything but a whole number in T's range is nullopt.
template <typename T>
std::optional<T> exact_integer(const json& v) {
    static_assert(std::is_integral_v<T>);
    if (!v.is_number_integer()) return std::nullopt;
    if (v.is_number_unsigned()) {
        auto u = v.get<uint64_t>();
        if (!std::in_range<T>(u)) return std::nullopt;
        return static_cast<T>(u);
    }
    auto i = v.get<int64_t>();
    if (!std::in_range<T>(i)) return std::nullopt;
    return static_cast<T>(i);
}

}  // namespace

json parse_message(std::string_view payload) {
    json j = json::parse(payload, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) throw ProtocolError("malformed control message: not valid JSON");
    if (!j.is_object()) throw ProtocolError("malformed control message: not a JSON object");
    auto p = j.find("proto");
    // Versions are small non-negative ints: 2^32 + 1 must not pass for major 1.
    if (p == j.end() || !p->is_array() || p->size() != 2 || !exact_integer<int>((*p)[0]) ||
        !exact_integer<int>((*p)[1]) || (*p)[0].get<int>() < 0 || (*p)[1].get<int>() < 0)
        throw ProtocolError("malformed control message: missing \"proto\": [major, minor]");
    int major = (*p)[0].get<int>(), minor = (*p)[1].get<int>();
    if (major != kProtoMajor) throw VersionMismatch(major, minor);
    auto t = j.find("type");
    if (t == j.end() || !t->is_string()) throw ProtocolError("malformed control message: missing \"type\"");
    return j;
}

void send_message(int fd, const json& msg, std::span<const int> fds) {
    write_frame(fd, FrameKind::Control, msg.dump(), fds);
}

namespace {

template <typename T>
void get_opt(const json& j, const char* key, std::optional<T>& out) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
        out.reset();
        return;
    }
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
        // Strictly: a cpus of 2^32 + 2 must not wrap around to 2, nor a memory
        // of -1 to 16 EiB.
        out = exact_integer<T>(*it);
        if (!out)
            throw ProtocolError(std::string("\"") + key + "\" must be a whole number between " +
                                std::to_string(std::numeric_limits<T>::min()) + " and " +
                                std::to_string(std::numeric_limits<T>::max()));
    } else {
        out = it->get<T>();
    }
}

template <typename T>
void put_opt(json& j, const char* key, const std::optional<T>& v) {
    if (v) j[key] = *v;
}

}  // namespace

void to_json(json& j, const FileId& v) { j = json{{"dev", v.dev}, {"ino", v.ino}}; }
void from_json(const json& j, FileId& v) {
    v.dev = j.at("dev").get<uint64_t>();
    v.ino = j.at("ino").get<uint64_t>();
}

void to_json(json& j, const RunRequest& v) {
    j = json::object();
    j["argv"] = v.argv;
    json env = json::array();
    for (const auto& [k, val] : v.env) env.push_back(k + "=" + val);
    j["env"] = env;
    put_opt(j, "seed", v.seed);
    put_opt(j, "epoch", v.epoch);
    put_opt(j, "cpus", v.cpus);
    put_opt(j, "clock_step_ns", v.clock_step_ns);
    put_opt(j, "timeout", v.timeout_sec);
    put_opt(j, "memory", v.memory_bytes);
    put_opt(j, "key", v.key);
    put_opt(j, "policy", v.policy);
    put_opt(j, "policy_text", v.policy_text);
    j["trace"] = v.trace;
    j["has_out"] = v.has_out;
    if (v.out_exclude) j["out_exclude"] = *v.out_exclude;
    if (v.perturb) j["perturb"] = v.perturb;
    put_opt(j, "source_digest", v.source_digest);
}

void from_json(const json& j, RunRequest& v) {
    v.argv = j.at("argv").get<std::vector<std::string>>();
    v.env.clear();
    if (auto it = j.find("env"); it != j.end()) {
        for (const auto& e : *it) {
            auto s = e.get<std::string>();
            auto eq = s.find('=');
            if (eq == std::string::npos || eq == 0) throw ProtocolError("--env entry must be K=V: " + s.substr(0, 64));
            v.env.emplace_back(s.substr(0, eq), s.substr(eq + 1));
        }
    }
    get_opt(j, "seed", v.seed);
    get_opt(j, "epoch", v.epoch);
    get_opt(j, "cpus", v.cpus);
    get_opt(j, "clock_step_ns", v.clock_step_ns);
    get_opt(j, "timeout", v.timeout_sec);
    get_opt(j, "memory", v.memory_bytes);
    get_opt(j, "key", v.key);
    get_opt(j, "policy", v.policy);
    get_opt(j, "policy_text", v.policy_text);
    v.trace = j.value("trace", false);
    v.perturb = j.value("perturb", uint32_t{0});
    v.has_out = j.value("has_out", false);
    get_opt(j, "source_digest", v.source_digest);
    if (auto it = j.find("out_exclude"); it != j.end() && !it->is_null()) v.out_exclude = it->get<FileId>();
}

void to_json(json& j, const OutputEntry& v) {
    j = json{{"path", v.path}, {"type", v.type}, {"mode", v.mode}, {"size", v.size}};
    j["sha256"] = v.sha256 ? json(*v.sha256) : json(nullptr);
    if (v.target) j["target"] = *v.target;
}

void from_json(const json& j, OutputEntry& v) {
    v.path = j.at("path").get<std::string>();
    v.type = j.at("type").get<std::string>();
    v.mode = j.at("mode").get<uint32_t>();
    v.size = j.value("size", uint64_t{0});
    get_opt(j, "sha256", v.sha256);
    get_opt(j, "target", v.target);
}

void to_json(json& j, const JobResult& v) {
    j = json::object();
    j["job"] = v.job;
    j["state"] = v.state;
    j["exit_code"] = v.exit_code ? json(*v.exit_code) : json(nullptr);
    j["signal"] = v.signal ? json(*v.signal) : json(nullptr);
    j["reason"] = v.reason;
    j["outputs"] = v.outputs;
    j["audit_digest"] = v.audit_digest ? json(*v.audit_digest) : json(nullptr);
    j["client_exit_status"] = v.client_exit_status;
    if (!v.timings.empty()) j["timings"] = v.timings;
}

void from_json(const json& j, JobResult& v) {
    v.job = j.at("job").get<std::string>();
    v.state = j.value("state", std::string{});
    get_opt(j, "exit_code", v.exit_code);
    get_opt(j, "signal", v.signal);
    v.reason = j.value("reason", std::string{});
    v.outputs = j.value("outputs", std::vector<OutputEntry>{});
    get_opt(j, "audit_digest", v.audit_digest);
    v.client_exit_status = j.value("client_exit_status", 125);
    v.timings = j.value("timings", std::map<std::string, double>{});
}

namespace {

void check_string(const std::string& s, const char* what) {
    if (s.size() > kMaxStringLen) throw ProtocolError(std::string(what) + " is longer than 64 KiB");
    if (s.find('\0') != std::string::npos) throw ProtocolError(std::string(what) + " contains a NUL byte");
}

bool valid_env_name(const std::string& k) {
    if (k.empty() || (k[0] >= '0' && k[0] <= '9')) return false;
    return std::all_of(k.begin(), k.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    });
}

}  // namespace

void validate(const RunRequest& req) {
    if (req.argv.empty()) throw ProtocolError("no command given (use: hermeticctl run -- CMD [ARG...])");
    if (req.argv.size() > kMaxArgs) throw ProtocolError("too many arguments (limit 4096)");
    if (req.argv[0].empty()) throw ProtocolError("the command name is empty");
    for (const auto& a : req.argv) check_string(a, "an argument");
    if (req.env.size() > kMaxEnv) throw ProtocolError("too many --env entries (limit 1024)");
    for (const auto& [k, v] : req.env) {
        if (!valid_env_name(k)) throw ProtocolError("invalid environment variable name: " + k.substr(0, 64));
        check_string(v, "an environment value");
    }
    if (req.cpus && (*req.cpus == 0 || *req.cpus > 4096)) throw ProtocolError("--cpus must be between 1 and 4096");
    if (req.timeout_sec && *req.timeout_sec == 0) throw ProtocolError("--timeout must be positive");
    if (req.memory_bytes && *req.memory_bytes < (4u << 20)) throw ProtocolError("--memory must be at least 4 MiB");
    if (req.key) {
        if (req.key->empty() || req.key->size() > 256) throw ProtocolError("--key must be 1 to 256 bytes");
        check_string(*req.key, "--key");
    }
    if (req.policy) check_string(*req.policy, "--policy");
    if (req.perturb > 16) throw ProtocolError("perturb must be between 0 and 16");
    if (req.policy_text && req.policy_text->size() > kMaxPolicyText)
        throw ProtocolError("the policy file is larger than 256 KiB");
}

}  // namespace hermetic::protocol
