#include "sandbox/sandbox_init.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "common/io.hpp"
#include "common/sys_error.hpp"
#include "sandbox/build_exec.hpp"
#include "sandbox/capabilities.hpp"
#include "sandbox/helper_process.hpp"
#include "sandbox/process_util.hpp"
#include "sandbox/rootfs.hpp"
#include "sandbox/status_channel.hpp"
#include "sandbox/time_namespace.hpp"
#include "sandbox/tree_stream.hpp"

namespace hermetic::sandbox {

namespace {

using Clock = std::chrono::steady_clock;

// A failure already reported on the status pipe with a more precise message.
struct AlreadyReported : std::exception {};

// The runner blocks and ignores signals for itself; none of that may reach the
// build (ignored dispositions and blocked masks survive execve).
void reset_signals() {
    for (int sig = 1; sig < NSIG; ++sig)
        if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    if (::sigprocmask(SIG_SETMASK, &none, nullptr) != 0) throw_errno("sigprocmask");
}

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

void become_inner_root() {
    if (::setresgid(0, 0, 0) != 0) throw_errno("setresgid(0) in the user namespace");
    if (::setresuid(0, 0, 0) != 0) throw_errno("setresuid(0) in the user namespace");
}

void set_identity() {
    if (::sethostname(kHostname, std::strlen(kHostname)) != 0) throw_errno("sethostname");
    if (::setdomainname(kDomainname, std::strlen(kDomainname)) != 0) throw_errno("setdomainname");
}

// Copies the source stream into /build as the build user (files owned by 1000).
void receive_source(const InitContext& ctx) {
    UniqueFd build = open_dir("/build", O_NOFOLLOW);
    ReceiveOptions opts;
    opts.limits = ctx.config->source_limits;
    opts.set_mtime = ctx.spec->epoch;
    int in = ctx.source_fd, dest = build.get();
    auto helper = HelperProcess::spawn({in, dest}, [] { drop_to_build_user(); },
                                       [&] {
                                           receive_tree(in, dest, opts);
                                           return nlohmann::json();
                                       });
    auto r = helper.wait();
    if (!r.ok) {
        send_status(ctx.status_fd, {{"error", "source"}, {"kind", r.error_kind}, {"message", r.message}});
        throw AlreadyReported();
    }
}

// Streams /out to the caller-side writer, as the build user.
void send_outputs(const InitContext& ctx) {
    UniqueFd out = open_dir("/out", O_NOFOLLOW);
    SendOptions opts;
    opts.limits = ctx.config->output_limits;
    opts.special = SpecialFiles::Refuse;
    int dst = ctx.outputs_fd, src = out.get();
    auto helper = HelperProcess::spawn({dst, src}, [] { drop_to_build_user(); },
                                       [&] {
                                           send_tree(src, dst, opts);
                                           return nlohmann::json();
                                       });
    auto r = helper.wait();
    if (r.ok) {
        send_status(ctx.status_fd, {{"outputs", "sent"}});
    } else {
        send_status(ctx.status_fd, {{"error", "outputs"}, {"kind", r.error_kind}, {"message", r.message}});
    }
}

// Starts the build and reaps until it exits; then kills everything else in the
// pid namespace (double-forked daemons, stopped processes) and reaps them too.
void run_build(const InitContext& ctx) {
    FdPair exec_err = make_pipe();
    pid_t build = ::fork();
    if (build < 0) throw_errno("fork build");
    if (build == 0) {
        exec_err.read.reset();
        BuildExec b;
        b.argv = &ctx.spec->argv;
        b.env = &ctx.spec->env;
        b.stdout_fd = ctx.spec->stdout_fd;
        b.stderr_fd = ctx.spec->stderr_fd;
        b.exec_error_fd = exec_err.write.get();
        b.config = ctx.config;
        b.policy = ctx.spec->policy;
        exec_build(b);
    }
    exec_err.write.reset();
    // Init keeps no copy of the output pipes: EOF for the daemon means the build's
    // processes are gone.
    ::close(ctx.spec->stdout_fd);
    ::close(ctx.spec->stderr_fd);
    send_status(ctx.status_fd, {{"phase", "started"}, {"ms", 0}});

    // Empty on success (CLOEXEC closed it), else errno + message.
    std::string err = read_to_end(exec_err.read.get(), 4096);
    int status = 0;
    for (;;) {
        int st = 0;
        pid_t p = ::waitpid(-1, &st, __WALL);
        if (p < 0) {
            if (errno == EINTR) continue;
            throw_errno("waitpid");
        }
        if (p == build) {
            status = st;
            break;
        }
    }
    ::kill(-1, SIGKILL);
    while (::waitpid(-1, nullptr, __WALL) > 0 || errno == EINTR) {
    }
    nlohmann::json msg = {{"build", {{"status", status}}}};
    if (err.size() >= sizeof(int)) {
        int e;
        std::memcpy(&e, err.data(), sizeof e);
        msg["exec_error"] = {{"errno", e}, {"message", err.substr(sizeof e)}};
    }
    send_status(ctx.status_fd, msg);
}

}  // namespace

int sandbox_init_main(const InitContext& ctx) noexcept {
    try {
        char go;
        if (!read_exact(ctx.sync_fd, &go, 1)) return 1;  // the runner gave up before releasing us
        ::close(ctx.sync_fd);
        reset_signals();
        if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) throw_errno("prctl(PR_SET_PDEATHSIG)");
        if (::prctl(PR_SET_DUMPABLE, 0) != 0) throw_errno("prctl(PR_SET_DUMPABLE)");
        become_inner_root();
        // Now that the runner has placed us in the job's cgroup, make it our root.
        if (::unshare(CLONE_NEWCGROUP) != 0) throw_errno("unshare(CLONE_NEWCGROUP)");
        set_identity();

        auto t = Clock::now();
        assemble_root(*ctx.config, ctx.spec->cpus_visible);
        send_status(ctx.status_fd, {{"phase", "mounts"}, {"ms", ms_since(t)}});

        t = Clock::now();
        receive_source(ctx);
        ::close(ctx.source_fd);
        send_status(ctx.status_fd, {{"phase", "source"}, {"ms", ms_since(t)}});

        enter_time_namespace_for_children();
        run_build(ctx);
        send_outputs(ctx);
        return 0;
    } catch (const AlreadyReported&) {
        return 1;
    } catch (const std::exception& e) {
        send_status(ctx.status_fd, {{"error", "setup"}, {"message", e.what()}});
        return 1;
    }
}

}  // namespace hermetic::sandbox
