// hermeticctl: the unprivileged client of hermeticd. See the README.
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "ctl/audit_command.hpp"
#include "ctl/client.hpp"
#include "ctl/job_commands.hpp"
#include "ctl/policy_command.hpp"
#include "ctl/run_command.hpp"

using namespace hermetic::ctl;

namespace {

std::string usage() {
    return "Usage: hermeticctl [--socket PATH] COMMAND [ARGS]\n\n"
           "Commands:\n"
           "  run [OPTIONS] -- CMD [ARG...]  run CMD in a fresh hermetic sandbox (see: hermeticctl run --help)\n" +
           job_commands_usage() +
           "  audit JOB [--json] [--verify]  the job's deviation evidence (see: hermeticctl audit --help)\n"
           "  attest JOB [--statement]       the job's signed SLSA provenance\n"
           "  pubkey [--all]                 the daemon's signing keys\n"
           "  policy list|show NAME|check FILE  syscall policies\n"
           "  ping                           check that hermeticd answers\n\n"
           "Global options:\n"
           "  --socket PATH   daemon socket (default: $HERMETIC_SOCKET, else /run/hermetic/hermeticd.sock)\n"
           "  --help, --version\n";
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    std::optional<std::string> socket_flag;
    size_t i = 0;
    for (; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "--socket" && i + 1 < args.size()) {
            socket_flag = args[++i];
        } else if (a.starts_with("--socket=")) {
            socket_flag = a.substr(9);
        } else if (a == "--help" || a == "-h") {
            std::cout << usage();
            return 0;
        } else if (a == "--version") {
            std::cout << "hermeticctl " HERMETIC_VERSION " (protocol " << hermetic::protocol::version_string() << ")\n";
            return 0;
        } else {
            break;
        }
    }
    if (i >= args.size()) {
        std::cerr << usage();
        return 2;
    }
    const std::string cmd = args[i];
    std::vector<std::string> rest(args.begin() + static_cast<long>(i) + 1, args.end());
    const std::string socket = socket_path(socket_flag);
    try {
        if (cmd == "run") {
            if (!rest.empty() && (rest[0] == "--help" || rest[0] == "-h")) {
                std::cout << run_usage();
                return 0;
            }
            return run_command(parse_run_args(rest, socket));
        }
        if (is_job_command(cmd) || cmd == "ping") {
            // These take no options of their own beyond the usage's: --help shows it.
            if (!rest.empty() && (rest[0] == "--help" || rest[0] == "-h")) {
                std::cout << usage();
                return 0;
            }
        }
        if (is_job_command(cmd)) return job_command(cmd, rest, socket);
        if (cmd == "policy") return policy_command(rest, socket);
        if (cmd == "audit") return audit_command(rest, socket);
        if (cmd == "attest") return attest_command(rest, socket);
        if (cmd == "pubkey") return pubkey_command(rest, socket);
        if (cmd == "ping") {
            auto r = request(socket, hermetic::protocol::make_message("ping"));
            std::cout << "hermeticd " << r.value("version", "?") << " is running\n";
            return 0;
        }
        std::cerr << "hermeticctl: unknown command '" << cmd << "'\n\n" << usage();
        return 2;
    } catch (const CtlError& e) {
        std::cerr << "hermeticctl: " << e.what() << "\n";
        return 125;
    } catch (const std::exception& e) {
        std::cerr << "hermeticctl: " << e.what() << "\n";
        return 125;
    }
}
