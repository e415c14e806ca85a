#include "sandbox/sandbox_init.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "common/io.hpp"
#include "common/sys_error.hpp"
#include "audit/identity.hpp"
#include "sandbox/build_exec.hpp"
#include "sandbox/capabilities.hpp"
#include "sandbox/control_channel.hpp"
#include "sandbox/determinism/determinism.hpp"
#include "sandbox/helper_process.hpp"
#include "sandbox/in_place_root.hpp"
#include "sandbox/job_codec.hpp"
#include "sandbox/perturb.hpp"
#include "sandbox/process_util.hpp"
#include "sandbox/rootfs.hpp"
#include "sandbox/sysfs.hpp"
#include "sandbox/time_namespace.hpp"
#include "sandbox/tree_stream.hpp"

namespace hermetic::sandbox {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// A failure already reported on the control socket with a more precise message.
struct AlreadyReported : std::exception {};

// What init learns about the job.
struct InitJob {
    std::vector<std::string> argv, env;
    uint32_t cpus_visible = 2;
    int64_t epoch = 0;
    uint32_t perturb = 0;  // run --verify's second build (perturb.hpp)
    policy::CompiledPolicy policy;
    UniqueFd stdout_w, stderr_w, outputs_w, source_r;
    // In place: the detached input root to attach at /build, and the working
    // directory below it.
    UniqueFd input_root;
    std::string workdir;
    // With a supervisor (its served files were mounted ahead): the build's hand-off socket.
    bool supervised = false;
    UniqueFd handoff;
};

void report(int fd, const json& msg) noexcept {
    try {
        send_control(fd, msg);
    } catch (...) {
        // The runner is gone; PR_SET_PDEATHSIG ends us shortly.
    }
}

// The runner blocks and ignores signals for itself; none of that may reach the
// build (ignored dispositions and blocked masks survive execve).
void reset_signals() {
    for (int sig = 1; sig < NSIG; ++sig)
        if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    if (::sigprocmask(SIG_SETMASK, &none, nullptr) != 0) throw_errno("sigprocmask");
}

void become_inner_root() {
    if (::setresgid(0, 0, 0) != 0) throw_errno("setresgid(0) in the user namespace");
    if (::setresuid(0, 0, 0) != 0) throw_errno("setresuid(0) in the user namespace");
}

void set_identity() {
    if (::sethostname(kHostname, std::strlen(kHostname)) != 0) throw_errno("sethostname");
    if (::setdomainname(kDomainname, std::strlen(kDomainname)) != 0) throw_errno("setdomainname");
}

// The next message (any, without `key`).
ControlMessage expect(int fd, const char* key) {
    auto m = receive_control(fd);
    if (!m) throw AlreadyReported();  // the runner let go of this sandbox: just end
    if (key && !m->body.contains(key))
        throw std::runtime_error(std::string("init: expected '") + key + "' from the runner");
    return std::move(*m);
}

InitJob receive_job(ControlMessage m) {
    if (!m.body.contains("job")) throw std::runtime_error("init: expected 'job' from the runner");
    const json& j = m.body["job"];
    InitJob job;
    job.argv = j.at("argv").get<std::vector<std::string>>();
    job.env = j.at("env").get<std::vector<std::string>>();
    job.cpus_visible = j.at("cpus_visible").get<uint32_t>();
    job.epoch = j.at("epoch").get<int64_t>();
    job.perturb = j.value("perturb", uint32_t{0});
    job.policy.filters = filters_from_json(j.at("filters"));
    bool has_source = j.at("has_source").get<bool>();
    bool supervised = j.value("supervised", false);
    bool in_place = j.contains("in_place");
    if (in_place) job.workdir = j["in_place"].at("workdir").get<std::string>();
    job.supervised = supervised;
    size_t want = 3 + (has_source ? 1 : 0) + (in_place ? 1 : 0) + (supervised ? 1 : 0);
    if (m.fds.size() != want) throw std::runtime_error("init: wrong number of descriptors for the job");
    size_t i = 0;
    job.stdout_w = std::move(m.fds[i++]);
    job.stderr_w = std::move(m.fds[i++]);
    job.outputs_w = std::move(m.fds[i++]);
    if (has_source) job.source_r = std::move(m.fds[i++]);
    if (in_place) job.input_root = std::move(m.fds[i++]);
    if (supervised) job.handoff = std::move(m.fds[i++]);
    return job;
}

// Copies the source stream into /build as the build user (files owned by 1000).
std::string receive_source(int control, const SandboxConfig& config, const InitJob& job) {
    UniqueFd build = open_dir("/build", O_NOFOLLOW);
    ReceiveOptions opts;
    opts.limits = config.source_limits;
    opts.set_mtime = job.epoch;
    opts.hash = true;  // the source tree's digest is evidence (attestation)
    int in = job.source_r.get(), dest = build.get();
    auto helper = HelperProcess::spawn({in, dest}, [] { drop_to_build_user(); },
                                       [&] {
                                           auto r = receive_tree(in, dest, opts);
                                           std::vector<audit::TreeEntry> t;
                                           t.reserve(r.entries.size());
                                           for (const auto& e : r.entries) t.push_back({e.path, e.type, e.mode, e.sha256});
                                           return json{{"digest", audit::tree_digest(std::move(t))}};
                                       });
    auto r = helper.wait();
    if (!r.ok) {
        report(control, {{"error", "source"}, {"kind", r.error_kind}, {"message", r.message}});
        throw AlreadyReported();
    }
    return r.value.value("digest", "");
}

bool out_is_empty() {
    UniqueFd out = open_dir("/out", O_NOFOLLOW);
    // An unreadable /out must not pass for an empty one: its outputs would be dropped.
    return directory_is_empty(out.get(), "/out");
}

// Streams /out to the caller-side writer, as the build user; nothing to do for an
// empty /out (the common case of a build that only checks something).
void send_outputs(int control, const SandboxConfig& config, const InitJob& job) {
    if (out_is_empty()) {
        report(control, {{"outputs", "none"}});
        return;
    }
    report(control, {{"outputs", "sending"}});  // the runner starts the caller-side writer
    UniqueFd out = open_dir("/out", O_NOFOLLOW);
    SendOptions opts;
    opts.limits = config.output_limits;
    opts.special = SpecialFiles::Refuse;
    int dst = job.outputs_w.get(), src = out.get();
    auto helper = HelperProcess::spawn({dst, src}, [] { drop_to_build_user(); },
                                       [&] {
                                           send_tree(src, dst, opts);
                                           return json();
                                       });
    auto r = helper.wait();
    if (r.ok) {
        report(control, {{"outputs", "sent"}});
    } else {
        report(control, {{"error", "outputs"}, {"kind", r.error_kind}, {"message", r.message}});
    }
}

// Starts the build and reaps until it exits; then kills everything else in the
// pid namespace (double-forked daemons, stopped processes) and reaps them too.
void run_build(int control, const SandboxConfig& config, InitJob& job) {
    FdPair exec_err = make_pipe();
    auto t = Clock::now();
    pid_t build = ::fork();
    if (build < 0) throw_errno("fork build");
    if (build == 0) {
        exec_err.read.reset();
        BuildExec b;
        b.argv = &job.argv;
        b.env = &job.env;
        b.stdout_fd = job.stdout_w.get();
        b.stderr_fd = job.stderr_w.get();
        b.exec_error_fd = exec_err.write.get();
        b.config = &config;
        b.policy = &job.policy;
        b.handoff_fd = job.handoff ? job.handoff.get() : -1;
        b.workdir = job.workdir;
        exec_build(b);
    }
    exec_err.write.reset();
    // Only the build holds the hand-off socket: if it dies before handing off,
    // the runner sees EOF instead of waiting.
    job.handoff.reset();
    // Init keeps no copy of the output pipes: EOF for the daemon means the build's
    // processes are gone.
    job.stdout_w.reset();
    job.stderr_w.reset();
    report(control, {{"phase", "started"}, {"ms", ms_since(t)}});

    // Empty on success (CLOEXEC closed it), else errno + message.
    std::string err = read_to_end(exec_err.read.get(), 4096);
    report(control, {{"phase", "exec"}, {"ms", ms_since(t)}});
    int status = 0;
    struct rusage ru{};
    for (;;) {
        int st = 0;
        struct rusage r{};
        pid_t p = ::wait4(-1, &st, __WALL, &r);
        if (p < 0) {
            if (errno == EINTR) continue;
            throw_errno("waitpid");
        }
        if (p == build) {
            status = st;
            ru = r;
            break;
        }
    }
    ::kill(-1, SIGKILL);
    while (::waitpid(-1, nullptr, __WALL) > 0 || errno == EINTR) {
    }
    auto us = [](const timeval& tv) { return static_cast<int64_t>(tv.tv_sec) * 1000000 + tv.tv_usec; };
    json usage = {{"utime_us", us(ru.ru_utime)}, {"stime_us", us(ru.ru_stime)}, {"maxrss_kb", ru.ru_maxrss},
                  {"minflt", ru.ru_minflt},      {"majflt", ru.ru_majflt},      {"nswap", ru.ru_nswap},
                  {"inblock", ru.ru_inblock},    {"oublock", ru.ru_oublock},    {"msgsnd", ru.ru_msgsnd},
                  {"msgrcv", ru.ru_msgrcv},      {"nsignals", ru.ru_nsignals},  {"nvcsw", ru.ru_nvcsw},
                  {"nivcsw", ru.ru_nivcsw}};
    json msg = {{"build", {{"status", status}, {"rusage", usage}}}};
    if (err.size() >= sizeof(int)) {
        int e;
        std::memcpy(&e, err.data(), sizeof e);
        msg["exec_error"] = {{"errno", e}, {"message", err.substr(sizeof e)}};
    }
    report(control, msg);
}

void prepare(const InitContext& ctx) {
    expect(ctx.control_fd, "go");
    reset_signals();
    become_inner_root();
    // After the credential change: changing credentials clears the parent-death
    // signal. The runner may have died in between: its end of the socket tells.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) throw_errno("prctl(PR_SET_PDEATHSIG)");
    if (::prctl(PR_SET_DUMPABLE, 0) != 0) throw_errno("prctl(PR_SET_DUMPABLE)");
    pollfd hup{ctx.control_fd, POLLRDHUP, 0};
    if (::poll(&hup, 1, 0) > 0 && (hup.revents & (POLLHUP | POLLRDHUP))) throw AlreadyReported();
    // The runner has placed us in the sandbox's cgroup: make it our root.
    if (::unshare(CLONE_NEWCGROUP) != 0) throw_errno("unshare(CLONE_NEWCGROUP)");
    set_identity();
    auto t = Clock::now();
    assemble_root(*ctx.config);
    // Done ahead: a job with the default count finds /sys as it was when the
    // supervisor learned the mounts (a remount at the job made it learn again).
    finish_sys(ctx.config->default_cpus_visible);
    report(ctx.control_fd, {{"prepared", true}, {"phase_ms", {{"mounts", ms_since(t)}}}});
}

// /dev/{u,}random and the /proc facts, served by the prepared supervisor:
// mounted ahead of the job (27 mount calls, ~2.5 ms here), off its path.
void serve_files(const InitContext& ctx, ControlMessage m) {
    if (m.fds.size() != 1) throw std::runtime_error("init: 'serve' needs the /dev/fuse descriptor");
    auto t = Clock::now();
    determinism::mount_served_files(m.fds[0].get(), "/", "tmp");
    report(ctx.control_fd, {{"served", true}, {"phase_ms", {{"served-files", ms_since(t)}}}});
}

void run(const InitContext& ctx) {
    ControlMessage m = expect(ctx.control_fd, nullptr);
    bool served = false;
    if (m.body.contains("serve")) {
        serve_files(ctx, std::move(m));
        served = true;
        m = expect(ctx.control_fd, nullptr);
    }
    InitJob job = receive_job(std::move(m));
    auto t = Clock::now();
    if (job.cpus_visible != ctx.config->default_cpus_visible) set_sys_cpus(job.cpus_visible);
    // A job whose policy needs no supervisor has none to serve them: the
    // devices and /proc files underneath are what it gets.
    if (served && !job.supervised) {
        determinism::unmount_served_files("/");
        report(ctx.control_fd, {{"phase", "served-files-unmounted"}, {"ms", ms_since(t)}});
    }
    if (job.input_root) {
        attach_input_root(job.input_root.get(), "/build");
        job.input_root.reset();
        report(ctx.control_fd, {{"phase", "input-root"}, {"ms", ms_since(t)}});
    }
    if (job.source_r) {
        std::string digest = receive_source(ctx.control_fd, *ctx.config, job);
        job.source_r.reset();
        report(ctx.control_fd, {{"phase", "source"}, {"ms", ms_since(t)}, {"source_digest", digest}});
    }
    if (job.perturb) {
        UniqueFd build = open_dir("/build", O_NOFOLLOW);
        reverse_directory_order(build.get());
        pin_to_last_cpu();
    }
    enter_time_namespace_for_children();
    run_build(ctx.control_fd, *ctx.config, job);
    send_outputs(ctx.control_fd, *ctx.config, job);
}

}  // namespace

int sandbox_init_main(const InitContext& ctx) noexcept {
    try {
        prepare(ctx);
        run(ctx);
        return 0;
    } catch (const AlreadyReported&) {
        return 1;
    } catch (const std::exception& e) {
        report(ctx.control_fd, {{"error", "setup"}, {"message", e.what()}});
        return 1;
    }
}

}  // namespace hermetic::sandbox
