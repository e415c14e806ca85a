#include "ctl/run_command.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "common/io.hpp"
#include "common/sys_error.hpp"
#include "ctl/client.hpp"
#include "ctl/source_digest.hpp"

namespace hermetic::ctl {

namespace po = boost::program_options;
using nlohmann::json;

namespace {

uint64_t parse_bytes(const std::string& v) {
    size_t pos = 0;
    unsigned long long n = 0;
    try {
        n = std::stoull(v, &pos);
    } catch (...) {
        throw CtlError("--memory: not a size: " + v);
    }
    std::string suf = v.substr(pos);
    uint64_t mult = suf.empty() ? 1
                    : suf == "K" ? 1ull << 10
                    : suf == "M" ? 1ull << 20
                    : suf == "G" ? 1ull << 30
                    : suf == "T" ? 1ull << 40
                                 : 0;
    if (mult == 0) throw CtlError("--memory: unknown suffix '" + suf + "' (use K, M, G or T)");
    return n * mult;
}

po::options_description run_options(RunOptions& o, std::vector<std::string>& env, std::optional<std::string>& memory,
                                    std::optional<std::string>& policy) {
    po::options_description d("hermeticctl run options");
    d.add_options()
        ("src", po::value(&o.src), "source directory, copied to /build (default: .)")
        ("out", po::value<std::string>()->notifier([&](const std::string& v) { o.out = v; }),
         "receives /out; must be empty or absent")
        ("env", po::value(&env)->composing(), "K=V added to the build's environment (repeatable)")
        ("seed", po::value<uint64_t>()->notifier([&](uint64_t v) { o.request.seed = v; }), "seed of generated randomness")
        ("epoch", po::value<int64_t>()->notifier([&](int64_t v) { o.request.epoch = v; }),
         "clock start (default: $SOURCE_DATE_EPOCH, else the daemon's)")
        ("cpus", po::value<uint32_t>()->notifier([&](uint32_t v) { o.request.cpus = v; }), "CPU count the build sees")
        ("clock-step", po::value<int64_t>()->notifier([&](int64_t v) { o.request.clock_step_ns = v; }),
         "nanoseconds the logical clock advances per read (default: the daemon's)")
        ("timeout", po::value<uint64_t>()->notifier([&](uint64_t v) { o.request.timeout_sec = v; }),
         "seconds before the whole job is killed (exit 124)")
        ("memory", po::value<std::string>()->notifier([&](const std::string& v) { memory = v; }),
         "memory limit in bytes (K/M/G suffixes)")
        ("key", po::value<std::string>()->notifier([&](const std::string& v) { o.request.key = v; }),
         "idempotency key")
        ("policy", po::value<std::string>()->notifier([&](const std::string& v) { policy = v; }),
         "admin policy NAME, or a FILE (contains '/') stacked on the admin's floor")
        ("trace", po::bool_switch(&o.request.trace), "record the real values behind virtualized ones")
        ("verify", po::bool_switch(&o.verify), "build twice under different conditions and compare")
        ("json", po::bool_switch(&o.json), "print a JSON result on stdout (build stdout goes to stderr)");
    return d;
}

// Whether `inner` lies inside (or is) the directory `outer_fd`, by identity.
bool is_inside(int inner_fd, const struct stat& outer) {
    UniqueFd cur(::fcntl(inner_fd, F_DUPFD_CLOEXEC, 0));
    for (int depth = 0; depth < 4096; ++depth) {
        struct stat st{};
        if (::fstat(cur.get(), &st) != 0) return false;
        if (st.st_dev == outer.st_dev && st.st_ino == outer.st_ino) return true;
        UniqueFd parent(::openat(cur.get(), "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!parent) return false;
        struct stat pst{};
        if (::fstat(parent.get(), &pst) != 0) return false;
        if (pst.st_dev == st.st_dev && pst.st_ino == st.st_ino) return false;  // reached /
        cur = std::move(parent);
    }
    return false;
}

UniqueFd open_output_dir(const std::string& path) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) {
        if (errno != ENOENT) throw CtlError("--out " + path + ": " + errno_string(errno));
        if (::mkdir(path.c_str(), 0755) != 0) throw CtlError("--out " + path + ": cannot create: " + errno_string(errno));
    } else if (!S_ISDIR(st.st_mode)) {
        throw CtlError("--out " + path + " exists and is not a directory");
    }
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) throw CtlError("--out " + path + ": " + errno_string(errno));
    UniqueFd probe(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0));
    DIR* d = ::fdopendir(probe.release());
    if (!d) throw CtlError("--out " + path + ": " + errno_string(errno));
    bool empty = true;
    while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") {
            empty = false;
            break;
        }
    }
    ::closedir(d);
    if (!empty) throw CtlError("--out " + path + " is not empty");
    return fd;
}

}  // namespace

json result_json(const json& r) {
    json outputs = json::array();
    for (const auto& o : r.value("outputs", json::array())) {
        json e = {{"path", o.value("path", "")}, {"type", o.value("type", "")}, {"mode", o.value("mode", 0)},
                  {"sha256", o.contains("sha256") ? o["sha256"] : json(nullptr)}};
        if (o.contains("size")) e["size"] = o["size"];
        if (o.contains("target")) e["target"] = o["target"];
        outputs.push_back(e);
    }
    return json{{"job", r.value("job", "")},
                {"exit_code", r.contains("exit_code") ? r["exit_code"] : json(nullptr)},
                {"signal", r.contains("signal") ? r["signal"] : json(nullptr)},
                {"outputs", outputs},
                {"audit_digest", r.contains("audit_digest") ? r["audit_digest"] : json(nullptr)},
                {"state", r.value("state", "")},
                {"reason", r.value("reason", "")},
                {"timings", r.value("timings", json::object())}};
}

namespace {

void write_out(int fd, std::string_view data) {
    try {
        write_all(fd, data);
    } catch (const SysError&) {
        // A closed pipe (| head) must not stop the build or lose its result.
    }
}

}  // namespace

std::string run_usage() {
    RunOptions o;
    std::vector<std::string> env;
    std::optional<std::string> m, p;
    std::ostringstream s;
    s << "Usage: hermeticctl run [OPTIONS] -- CMD [ARG...]\n\n" << run_options(o, env, m, p);
    return s.str();
}

RunOptions parse_run_args(const std::vector<std::string>& args, const std::string& socket) {
    RunOptions o;
    o.socket = socket;
    std::vector<std::string> opts, cmd;
    bool after = false;
    for (const auto& a : args) {
        if (!after && a == "--") {
            after = true;
            continue;
        }
        (after ? cmd : opts).push_back(a);
    }
    if (!after) throw CtlError("missing '--' before the command (hermeticctl run [OPTIONS] -- CMD [ARG...])");
    if (cmd.empty()) throw CtlError("no command given after '--'");
    std::vector<std::string> env;
    std::optional<std::string> memory, policy;
    auto desc = run_options(o, env, memory, policy);
    try {
        po::variables_map vm;
        po::store(po::command_line_parser(opts).options(desc).run(), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        throw CtlError(std::string("run: ") + e.what());
    }
    o.request.argv = cmd;
    for (const auto& e : env) {
        auto eq = e.find('=');
        if (eq == std::string::npos || eq == 0) throw CtlError("--env must be K=V: " + e);
        o.request.env.emplace_back(e.substr(0, eq), e.substr(eq + 1));
    }
    if (memory) o.request.memory_bytes = parse_bytes(*memory);
    if (!o.request.epoch) {
        if (const char* sde = std::getenv("SOURCE_DATE_EPOCH"); sde && *sde) {
            char* end = nullptr;
            long long v = std::strtoll(sde, &end, 10);
            if (*end != '\0' || v < 0) throw CtlError("SOURCE_DATE_EPOCH is not a valid number: " + std::string(sde));
            o.request.epoch = v;
        }
    }
    if (policy) {
        if (policy->find('/') != std::string::npos) {
            std::ifstream f(*policy);
            if (!f) throw CtlError("--policy " + *policy + ": cannot read the file");
            std::stringstream ss;
            ss << f.rdbuf();
            o.request.policy_text = ss.str();
            o.request.policy = *policy;  // names the file in the daemon's messages
        } else {
            o.request.policy = *policy;
        }
    }
    try {
        protocol::validate(o.request);
    } catch (const protocol::ProtocolError& e) {
        throw CtlError(e.what());
    }
    return o;
}

int run_command(const RunOptions& opts) {
    if (opts.verify) return verify_command(opts);
    RunOnce once = run_once(opts, opts.out, RunOnce::Stream::Live);
    if (opts.json) std::cout << result_json(once.result).dump() << std::endl;
    return once.status;
}

RunOnce run_once(const RunOptions& opts, const std::optional<std::string>& out_path, RunOnce::Stream stream,
                 int perturb) {
    UniqueFd src(::open(opts.src.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!src) {
        if (errno == ENOTDIR) throw CtlError("--src " + opts.src + " is not a directory");
        throw CtlError("--src " + opts.src + ": " + errno_string(errno));
    }
    protocol::RunRequest req = opts.request;
    if (perturb) req.perturb = perturb;
    UniqueFd out;
    if (out_path) {
        out = open_output_dir(*out_path);
        req.has_out = true;
        struct stat sst{}, ost{};
        if (::fstat(src.get(), &sst) == 0 && ::fstat(out.get(), &ost) == 0 && is_inside(out.get(), sst))
            req.out_exclude = protocol::FileId{static_cast<uint64_t>(ost.st_dev), static_cast<uint64_t>(ost.st_ino)};
    }

    if (req.key) req.source_digest = source_tree_digest(src.get(), req.out_exclude);

    // Ctrl-C cancels the job (exit 130); a second one leaves at once.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    ::sigprocmask(SIG_BLOCK, &set, nullptr);
    UniqueFd sigfd(::signalfd(-1, &set, SFD_CLOEXEC));
    ::signal(SIGPIPE, SIG_IGN);

    auto t0 = std::chrono::steady_clock::now();
    auto since = [&] { return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(); };
    Client c(opts.socket);
    double t_connect = since(), t_accepted = 0;
    json msg = protocol::make_message("run");
    msg["request"] = req;
    std::vector<int> fds = {src.get()};
    if (out) fds.push_back(out.get());
    c.send(msg, fds);
    src.reset();
    out.reset();

    const int build_stdout = opts.json ? 2 : 1;
    const bool live = stream == RunOnce::Stream::Live;
    bool cancelled = false;
    for (;;) {
        pollfd p[2] = {{c.fd(), POLLIN, 0}, {sigfd.get(), POLLIN, 0}};
        if (::poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            throw CtlError("poll: " + errno_string(errno));
        }
        if (p[1].revents) {
            signalfd_siginfo si;
            (void)!::read(sigfd.get(), &si, sizeof si);
            if (cancelled) return {json::object(), 130};
            cancelled = true;
            std::cerr << "hermetic: cancelling the job (press Ctrl-C again to leave now)\n";
            c.send(protocol::make_message("cancel"));
            continue;
        }
        auto f = c.receive();
        if (f.kind == protocol::FrameKind::Stdout) {
            if (live) write_out(build_stdout, f.payload);
            continue;
        }
        if (f.kind == protocol::FrameKind::Stderr) {
            if (live) write_out(2, f.payload);
            continue;
        }
        json m = c.control(f);
        const std::string type = m["type"];
        if (type == "accepted") {
            t_accepted = since();
            std::cerr << "job: " << m.value("job", "") << std::endl;
        } else if (type == "notice") {
            std::cerr << "hermetic: " << m.value("message", "") << "\n";
        } else if (type == "done") {
            json r = m.value("result", json::object());
            if (!r.contains("timings") || !r["timings"].is_object()) r["timings"] = json::object();
            r["timings"]["client:connect"] = t_connect;
            r["timings"]["client:accepted"] = t_accepted;
            r["timings"]["client:done"] = since();
            std::string reason = r.value("reason", "");
            if (!reason.empty()) std::cerr << "hermetic: " << reason << "\n";
            int status = r.value("client_exit_status", 125);
            return {std::move(r), status};
        }
    }
}

}  // namespace hermetic::ctl
