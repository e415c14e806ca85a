#include "ctl/policy_command.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <sstream>

#include "common/io.hpp"
#include "common/sys_error.hpp"
#include "common/unique_fd.hpp"
#include "ctl/client.hpp"
#include "protocol/messages.hpp"
#include "syscall-policy/floor.hpp"
#include "syscall-policy/parser.hpp"

namespace hermetic::ctl {

namespace {

// The daemon refuses larger user policies (protocol::kMaxPolicyText).
constexpr size_t kMaxPolicyFile = protocol::kMaxPolicyText;

// A policy file's text; nullopt if it doesn't exist. Throws PolicyError with
// the path for anything else (not a regular file, unreadable, too large).
std::optional<std::string> read_policy_file(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (!fd) {
        if (errno == ENOENT) return std::nullopt;
        throw policy::PolicyError(path + ": " + std::strerror(errno));
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw policy::PolicyError(path + ": " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) throw policy::PolicyError(path + ": not a regular file");
    if (static_cast<uint64_t>(st.st_size) > kMaxPolicyFile)
        throw policy::PolicyError(path + ": " + std::to_string(st.st_size) + " bytes (at most " +
                                  std::to_string(kMaxPolicyFile) + ")");
    try {
        return read_to_end(fd.get(), kMaxPolicyFile);
    } catch (const SysError& e) {
        throw policy::PolicyError(path + ": " + e.what());
    }
}

std::string dir_of(const std::string& path) {
    auto slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

// NAME -> DIR/NAME.policy (the parser has checked NAME: no '/', no "..").
policy::ProfileLoader dir_loader(const std::string& dir) {
    return [dir](const std::string& name) { return read_policy_file(dir + "/" + name + ".policy"); };
}

}  // namespace

std::string policy_usage() {
    return "Usage: hermeticctl policy list\n"
           "       hermeticctl policy show NAME\n"
           "       hermeticctl policy check FILE [--floor NAME] [--policy-dir DIR]\n\n"
           "  list    the admin's profiles (ask the daemon)\n"
           "  show    a profile's effective rules, each with its origin (ask the daemon)\n"
           "  check   parse, validate and compile FILE offline; includes come from the built-ins\n"
           "          (baseline, determinism) and FILE's directory. --floor NAME also stacks it on\n"
           "          the admin profile NAME from --policy-dir (default /etc/hermetic/policies),\n"
           "          as hermeticd does for `run --policy FILE`. Exit 0 valid, 1 not.\n"
           "The format: docs/policy.md.\n";
}

int policy_check(const PolicyCheckOptions& opts, std::ostream& out, std::ostream& err) {
    try {
        std::optional<std::string> text = read_policy_file(opts.file);
        if (!text) throw policy::PolicyError(opts.file + ": " + std::strerror(ENOENT));
        policy::ParseOptions parse;
        parse.max_file_bytes = kMaxPolicyFile;
        parse.loader = dir_loader(dir_of(opts.file));
        const policy::Policy p = policy::parse_policy(*text, opts.file, parse);
        const policy::CompiledPolicy cp = policy::compile(p);
        out << "OK: " << p.rules.size() << " rules, digest " << cp.digest << "\n";
        if (opts.floor) {
            policy::ParseOptions admin;
            admin.loader = dir_loader(opts.policy_dir);
            const policy::Policy floor = policy::load_profile(*opts.floor, admin);
            const policy::Policy stacked = policy::stack(floor, p);
            const policy::CompiledPolicy scp = policy::compile(stacked);
            out << "OK: stacked on the floor " << *opts.floor << ": " << stacked.rules.size() << " rules, digest "
                << scp.digest << "\n";
        }
        return 0;
    } catch (const policy::PolicyError& e) {
        err << e.what() << "\n";
        return 1;
    }
}

nlohmann::json policy_list_request() { return protocol::make_message("policy-list"); }

nlohmann::json policy_show_request(const std::string& name) {
    nlohmann::json m = protocol::make_message("policy-show");
    m["name"] = name;
    return m;
}

std::string render_policy_list(const nlohmann::json& r) {
    std::ostringstream s;
    const std::string floor = r.value("floor", "");
    size_t width = 4;
    for (const auto& p : r.value("policies", nlohmann::json::array()))
        width = std::max(width, p.value("name", "").size());
    for (const auto& p : r.value("policies", nlohmann::json::array())) {
        const std::string name = p.value("name", "?");
        s << name << std::string(width - name.size() + 2, ' ');
        if (p.contains("error")) {
            s << "ERROR: " << p.value("error", "") << "\n";
            continue;
        }
        s << p.value("rules", 0) << " rules, digest " << p.value("digest", "?");
        if (name == floor) s << "  (floor: the default, and what user policy files stack on)";
        s << "\n";
    }
    const auto builtins = r.value("builtins", nlohmann::json::array());
    if (!builtins.empty()) {
        s << "built-in (for include):";
        for (const auto& b : builtins) s << " " << b.get<std::string>();
        s << "\n";
    }
    return s.str();
}

std::string render_policy_show(const nlohmann::json& r) {
    std::ostringstream s;
    s << "# policy " << r.value("name", "?");
    if (r.contains("digest")) s << ", digest " << r.value("digest", "");
    s << "\n";
    for (const auto& l : r.value("lines", nlohmann::json::array())) {
        s << l.value("text", "");
        const std::string origin = l.value("origin", "");
        if (!origin.empty()) s << "  # " << origin;
        s << "\n";
    }
    return s.str();
}

int policy_command(const std::vector<std::string>& args, const std::string& socket) {
    if (args.empty() || args[0] == "--help" || args[0] == "-h") {
        (args.empty() ? std::cerr : std::cout) << policy_usage();
        return args.empty() ? 2 : 0;
    }
    const std::string& sub = args[0];
    if (sub == "check") {
        PolicyCheckOptions opts;
        bool have_file = false;
        for (size_t i = 1; i < args.size(); ++i) {
            const std::string& a = args[i];
            if (a == "--floor" && i + 1 < args.size()) {
                opts.floor = args[++i];
            } else if (a == "--policy-dir" && i + 1 < args.size()) {
                opts.policy_dir = args[++i];
            } else if (a.starts_with("--floor=")) {
                opts.floor = a.substr(8);
            } else if (a.starts_with("--policy-dir=")) {
                opts.policy_dir = a.substr(13);
            } else if (!a.starts_with("--") && !have_file) {
                opts.file = a;
                have_file = true;
            } else {
                std::cerr << "hermeticctl: policy check: unexpected argument '" << a << "'\n\n" << policy_usage();
                return 2;
            }
        }
        if (!have_file) {
            std::cerr << "hermeticctl: policy check: FILE is missing\n\n" << policy_usage();
            return 2;
        }
        return policy_check(opts, std::cout, std::cerr);
    }
    if (sub == "list" && args.size() == 1) {
        std::cout << render_policy_list(request(socket, policy_list_request()));
        return 0;
    }
    if (sub == "show" && args.size() == 2) {
        std::cout << render_policy_show(request(socket, policy_show_request(args[1])));
        return 0;
    }
    std::cerr << "hermeticctl: policy: unexpected arguments\n\n" << policy_usage();
    return 2;
}

}  // namespace hermetic::ctl
