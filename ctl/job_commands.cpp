#include "ctl/job_commands.hpp"

#include <signal.h>

#include <ctime>
#include <iostream>

#include "common/io.hpp"
#include "common/sys_error.hpp"
#include "ctl/client.hpp"
#include "protocol/messages.hpp"

namespace hermetic::ctl {

using nlohmann::json;

namespace {

std::string when(int64_t ms) {
    if (ms <= 0) return "-";
    time_t t = static_cast<time_t>(ms / 1000);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", std::gmtime(&t));
    return buf;
}

std::string command_line(const json& j) {
    std::string s;
    for (const auto& a : j.value("argv", json::array())) {
        if (!s.empty()) s += ' ';
        s += a.get<std::string>();
    }
    return s;
}

std::string exit_text(const json& j) {
    if (j.contains("signal") && j["signal"].is_number()) return "signal " + std::to_string(j["signal"].get<int>());
    if (j.contains("exit_code") && j["exit_code"].is_number()) return std::to_string(j["exit_code"].get<int>());
    return "-";
}

json job_request(const std::string& type, const std::string& id) {
    json m = protocol::make_message(type);
    m["job"] = id;
    return m;
}

// wait and logs: the daemon streams (optionally) the output, then "done".
int follow(const std::string& socket, const std::string& type, const std::string& id) {
    ::signal(SIGPIPE, SIG_IGN);
    Client c(socket);
    c.send(job_request(type, id));
    for (;;) {
        auto f = c.receive();
        if (f.kind == protocol::FrameKind::Stdout || f.kind == protocol::FrameKind::Stderr) {
            try {
                write_all(f.kind == protocol::FrameKind::Stdout ? 1 : 2, f.payload);
            } catch (const SysError&) {
            }
            continue;
        }
        json m = c.control(f);
        if (m["type"] != "done") continue;
        json r = m.value("result", json::object());
        if (type == "logs") return 0;
        std::cerr << "job " << id << ": " << r.value("state", "?");
        if (!r.value("reason", "").empty()) std::cerr << " (" << r.value("reason", "") << ")";
        std::cerr << "\n";
        return r.value("client_exit_status", 125);
    }
}

}  // namespace

bool is_job_command(const std::string& cmd) {
    return cmd == "status" || cmd == "wait" || cmd == "cancel" || cmd == "logs" || cmd == "list" || cmd == "gc" ||
           cmd == "metrics";
}

std::string job_commands_usage() {
    return "  status JOB [--json]            state, exit status and times of a job\n"
           "  wait JOB                       wait for a job; exit with its status\n"
           "  cancel JOB                     cancel a queued or running job\n"
           "  logs JOB                       its stored output; follows it while it runs\n"
           "  list [--json] [--limit N]      your jobs, newest first (root: everyone's)\n"
           "  gc                             apply the retention policy now (root)\n"
           "  metrics                        the daemon's metrics, Prometheus text format\n";
}

int job_command(const std::string& cmd, const std::vector<std::string>& args, const std::string& socket) {
    bool as_json = false;
    size_t limit = 50;
    std::vector<std::string> pos;
    for (size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--json") as_json = true;
        else if (args[i] == "--limit" && i + 1 < args.size()) limit = std::stoul(args[++i]);
        else if (args[i].starts_with("-")) throw CtlError(cmd + ": unknown option " + args[i]);
        else pos.push_back(args[i]);
    }
    bool needs_job = cmd == "status" || cmd == "wait" || cmd == "cancel" || cmd == "logs";
    if (needs_job != (pos.size() == 1) || pos.size() > 1)
        throw CtlError(needs_job ? cmd + ": expected one job id" : cmd + ": takes no job id");

    if (cmd == "wait" || cmd == "logs") return follow(socket, cmd, pos[0]);
    if (cmd == "status") {
        json r = request(socket, job_request("status", pos[0]));
        json j = r.value("job", json::object());
        if (as_json) {
            std::cout << j.dump() << "\n";
            return 0;
        }
        std::cout << "job:      " << j.value("job", "") << "\nstate:    " << j.value("state", "")
                  << "\nexit:     " << exit_text(j) << "\ncommand:  " << command_line(j)
                  << "\ncreated:  " << when(j.value("created_ms", int64_t{0}))
                  << "\nstarted:  " << when(j.value("started_ms", int64_t{0}))
                  << "\nfinished: " << when(j.value("finished_ms", int64_t{0})) << "\n";
        if (!j.value("reason", "").empty()) std::cout << "reason:   " << j.value("reason", "") << "\n";
        return 0;
    }
    if (cmd == "cancel") {
        request(socket, job_request("cancel", pos[0]));
        std::cout << "cancelled " << pos[0] << "\n";
        return 0;
    }
    if (cmd == "list") {
        json m = protocol::make_message("list");
        m["limit"] = limit;
        json r = request(socket, m);
        if (as_json) {
            std::cout << r.value("jobs", json::array()).dump() << "\n";
            return 0;
        }
        std::printf("%-28s %-11s %-9s %-19s %s\n", "JOB", "STATE", "EXIT", "CREATED (UTC)", "COMMAND");
        for (const auto& j : r.value("jobs", json::array()))
            std::printf("%-28s %-11s %-9s %-19s %s\n", j.value("job", "").c_str(), j.value("state", "").c_str(),
                        exit_text(j).c_str(), when(j.value("created_ms", int64_t{0})).c_str(),
                        command_line(j).substr(0, 60).c_str());
        return 0;
    }
    if (cmd == "gc") {
        json r = request(socket, protocol::make_message("gc"));
        std::cout << "removed " << r.value("removed", 0) << " finished job(s)\n";
        return 0;
    }
    json r = request(socket, protocol::make_message("metrics"));
    std::cout << r.value("text", "");
    return 0;
}

}  // namespace hermetic::ctl
