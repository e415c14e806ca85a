#include "daemon/policy_requests.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "common/io.hpp"
#include "common/sys_error.hpp"
#include "common/unique_fd.hpp"
#include "protocol/messages.hpp"
#include "syscall-policy/parser.hpp"

namespace hermetic::daemon {

namespace {

namespace ec = protocol::error_code;
using nlohmann::json;

constexpr std::string_view kSuffix = ".policy";
constexpr size_t kMaxProfileBytes = 256 * 1024;  // ParseOptions' default per-file limit

json lines_json(const policy::Policy& p) {
    json lines = json::array();
    for (const policy::PolicyLine& l : policy::format_policy(p)) lines.push_back({{"text", l.text}, {"origin", l.origin}});
    return lines;
}

bool is_builtin(const std::string& name) {
    const auto& b = policy::builtin_profile_names();
    return std::find(b.begin(), b.end(), name) != b.end();
}

}  // namespace

json policy_list_response(policy::PolicyStore& store) {
    json out = protocol::make_message("policy-list");
    out["floor"] = store.floor_name();
    json policies = json::array();
    for (const std::string& name : store.list()) {
        // A broken profile is listed with its error: the admin sees what to fix.
        try {
            auto r = store.get(name);
            policies.push_back({{"name", name}, {"digest", r->digest()}, {"rules", r->policy.rules.size()}});
        } catch (const policy::PolicyError& e) {
            policies.push_back({{"name", name}, {"error", e.what()}});
        }
    }
    out["policies"] = std::move(policies);
    out["builtins"] = policy::builtin_profile_names();
    return out;
}

json policy_show_response(policy::PolicyStore& store, const json& msg) {
    auto it = msg.find("name");
    if (it == msg.end() || !it->is_string()) return protocol::make_error(ec::kBadRequest, "policy-show needs a \"name\"");
    const std::string name = it->get<std::string>();
    if (!policy::valid_profile_name(name))
        return protocol::make_error(ec::kBadRequest, "invalid policy name \"" + name.substr(0, 80) + "\"");
    json out = protocol::make_message("policy-show");
    out["name"] = name;
    try {
        if (is_builtin(name)) {
            const policy::Policy p = store.show(name);
            out["builtin"] = true;
            out["digest"] = policy::compile(p).digest;
            out["lines"] = lines_json(p);
            return out;
        }
        const auto names = store.list();
        if (std::find(names.begin(), names.end(), name) == names.end())
            return protocol::make_error(ec::kNotFound, "no policy \"" + name + "\"");
        auto r = store.get(name);
        out["builtin"] = false;
        out["digest"] = r->digest();
        out["lines"] = lines_json(r->policy);
        return out;
    } catch (const policy::PolicyError& e) {
        return protocol::make_error(ec::kInternal, std::string("policy \"") + name + "\": " + e.what());
    }
}

std::optional<json> handle_policy_request(policy::PolicyStore& store, const json& msg) {
    const auto type = msg.find("type");
    if (type == msg.end() || !type->is_string()) return std::nullopt;
    if (*type == "policy-list") return policy_list_response(store);
    if (*type == "policy-show") return policy_show_response(store, msg);
    return std::nullopt;
}

policy::ProfileLoader policy_dir_loader(const std::string& dir) {
    return [dir](const std::string& name) -> std::optional<std::string> {
        if (!policy::valid_profile_name(name)) return std::nullopt;
        const std::string path = dir + "/" + name + std::string(kSuffix);
        UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
        if (!fd) {
            if (errno == ENOENT) return std::nullopt;
            throw policy::PolicyError(path + ": " + std::strerror(errno));
        }
        struct stat st {};
        if (::fstat(fd.get(), &st) != 0) throw policy::PolicyError(path + ": " + std::strerror(errno));
        if (!S_ISREG(st.st_mode)) throw policy::PolicyError(path + ": not a regular file");
        // Admin policies bind every job: only root may be able to change them.
        if (::geteuid() == 0 && (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0))
            throw policy::PolicyError(path + ": must be owned by root and writable by nobody else");
        try {
            return read_to_end(fd.get(), kMaxProfileBytes);
        } catch (const SysError& e) {
            throw policy::PolicyError(path + ": " + e.what());
        }
    };
}

std::vector<std::string> list_policy_dir(const std::string& dir) {
    std::vector<std::string> names;
    struct Closedir {
        void operator()(DIR* d) const { ::closedir(d); }
    };
    std::unique_ptr<DIR, Closedir> d(::opendir(dir.c_str()));
    if (!d) return names;
    while (const dirent* e = ::readdir(d.get())) {
        std::string file = e->d_name;
        if (file.size() <= kSuffix.size() || !file.ends_with(kSuffix)) continue;
        std::string name = file.substr(0, file.size() - kSuffix.size());
        if (!policy::valid_profile_name(name)) continue;
        struct stat st {};
        if (::fstatat(::dirfd(d.get()), e->d_name, &st, 0) != 0 || !S_ISREG(st.st_mode)) continue;
        names.push_back(std::move(name));
    }
    std::sort(names.begin(), names.end());
    return names;
}

std::unique_ptr<policy::PolicyStore> make_policy_store(const std::string& dir, const std::string& floor,
                                                       const policy::CompileOptions& compile) {
    policy::PolicyStoreOptions opts;
    opts.floor = floor;
    opts.compile = compile;
    return std::make_unique<policy::PolicyStore>(policy_dir_loader(dir), [dir] { return list_policy_dir(dir); },
                                                 std::move(opts));
}

}  // namespace hermetic::daemon
