#include "sandbox/job_runner.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "common/io.hpp"
#include "common/sys_error.hpp"
#include "sandbox/helper_process.hpp"
#include "sandbox/process_util.hpp"
#include "sandbox/sandbox_init.hpp"
#include "sandbox/status_channel.hpp"
#include "sandbox/tree_stream.hpp"
#include "sandbox/userns.hpp"

namespace hermetic::sandbox {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

constexpr auto kOutputDeadline = std::chrono::minutes(10);

UniqueFd make_signalfd() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) throw_errno("sigprocmask");
    UniqueFd fd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!fd) throw_errno("signalfd");
    return fd;
}

UniqueFd make_timer(std::optional<std::chrono::milliseconds> timeout) {
    UniqueFd fd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    if (!fd) throw_errno("timerfd_create");
    if (timeout) {
        itimerspec its{};
        its.it_value.tv_sec = timeout->count() / 1000;
        its.it_value.tv_nsec = (timeout->count() % 1000) * 1000000;
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
        if (::timerfd_settime(fd.get(), 0, &its, nullptr) != 0) throw_errno("timerfd_settime");
    }
    return fd;
}

void disarm(int timerfd) {
    itimerspec its{};
    (void)::timerfd_settime(timerfd, 0, &its, nullptr);
}

struct Clone {
    pid_t pid = -1;
    UniqueFd pidfd;
};

// clone3 so the child can be born inside a v2 cgroup and we get a pidfd (no pid
// reuse races when killing it). Returns pid 0 in the child, like fork.
Clone clone_sandbox(int cgroup_fd) {
    clone_args args{};
    int pidfd = -1;
    args.flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_PIDFD;
    if (cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = static_cast<uint64_t>(cgroup_fd);
    }
    args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
    args.exit_signal = SIGCHLD;
    long pid = ::syscall(SYS_clone3, &args, sizeof args);
    if (pid < 0) throw_errno("clone3 (new namespaces)");
    Clone c;
    c.pid = static_cast<pid_t>(pid);
    if (pid > 0) c.pidfd.reset(pidfd);
    return c;
}

void kill_pidfd(int pidfd) { (void)::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0); }

std::string reason_for_helper(const HelperResult& r, const char* what) {
    return std::string(what) + ": " + r.message;
}

bool is_limit(const HelperResult& r) { return r.error_kind == "limit" || r.error_kind == "special"; }

class Runner {
public:
    Runner(JobSpec& spec, const SandboxConfig& config) : spec_(spec), config_(config) {}

    JobOutcome run() {
        auto t_all = Clock::now();
        try {
            prepare();
            start_sandbox();
            supervise();
        } catch (const std::exception& e) {
            if (!failed_) fail(JobStatus::SetupFailed, std::string("sandbox setup failed: ") + e.what());
        }
        finish();
        out_.phase_ms["total"] = ms_since(t_all);
        return std::move(out_);
    }

private:
    void fail(JobStatus status, std::string reason) {
        if (failed_) return;  // the first failure is the one the user needs
        failed_ = true;
        out_.status = status;
        out_.reason = std::move(reason);
    }

    void prepare() {
        auto t = Clock::now();
        // The sandbox must not inherit root's supplementary groups (a 0640 root:root
        // file would be readable through group 0 even with uid 0 unmapped).
        if (::setgroups(0, nullptr) != 0) throw_errno("setgroups");
        if (::signal(SIGPIPE, SIG_IGN) == SIG_ERR) throw_errno("signal(SIGPIPE)");
        signals_ = make_signalfd();
        timer_ = make_timer(std::nullopt);
        cgroup_.emplace(JobCgroup::create(config_.cgroup, spec_.job_id, spec_.limits));
        out_.phase_ms["cgroup"] = ms_since(t);

        t = Clock::now();
        sync_ = make_pipe();
        status_ = make_pipe();
        source_ = make_pipe();
        outputs_ = make_pipe();
        SendOptions send;
        send.limits = config_.source_limits;
        send.special = SpecialFiles::Skip;
        send.exclude = spec_.out_exclude;
        int src = spec_.src_dir.get(), w = source_.write.get();
        Caller caller = spec_.caller;
        reader_ = HelperProcess::spawn({src, w}, [caller] { become_caller(caller); },
                                       [src, w, send] {
                                           auto r = send_tree(src, w, send);
                                           return nlohmann::json{{"skipped", r.skipped}, {"bytes", r.bytes}};
                                       });
        source_.write.reset();
        spec_.src_dir.reset();
        out_.phase_ms["source-reader"] = ms_since(t);
    }

    void start_sandbox() {
        auto t = Clock::now();
        if (::setns(spec_.netns.get(), CLONE_NEWNET) != 0) throw_errno("setns(network namespace)");
        spec_.netns.reset();
        int cgfd = cgroup_->version() == CgroupVersion::V2 ? cgroup_->v2_dir_fd() : -1;
        Clone c = clone_sandbox(cgfd);
        if (c.pid == 0) {
            InitContext ctx;
            ctx.spec = &spec_;
            ctx.config = &config_;
            ctx.sync_fd = sync_.read.get();
            ctx.status_fd = status_.write.get();
            ctx.source_fd = source_.read.get();
            ctx.outputs_fd = outputs_.write.get();
            int rc = 1;
            try {
                close_fds_except({ctx.sync_fd, ctx.status_fd, ctx.source_fd, ctx.outputs_fd, spec_.stdout_fd,
                                  spec_.stderr_fd});
                rc = sandbox_init_main(ctx);
            } catch (...) {
            }
            ::_exit(rc);
        }
        init_pid_ = c.pid;
        init_pidfd_ = std::move(c.pidfd);
        sync_.read.reset();
        status_.write.reset();
        source_.read.reset();
        outputs_.write.reset();
        ::close(spec_.stdout_fd);  // only the build holds the output pipes now
        ::close(spec_.stderr_fd);
        spec_.stdout_fd = spec_.stderr_fd = -1;

        out_.phase_ms["clone"] = ms_since(t);
        write_id_maps(init_pid_, spec_.ids);
        out_.phase_ms["idmap"] = ms_since(t);
        if (cgroup_->version() == CgroupVersion::V1) cgroup_->attach(init_pid_);
        write_all(sync_.write.get(), "g", 1);
        sync_.write.reset();
        out_.phase_ms["clone+maps"] = ms_since(t);
        t_started_ = Clock::now();
    }

    void on_status(const nlohmann::json& m) {
        if (m.contains("phase")) {
            std::string phase = m["phase"].get<std::string>();
            if (phase == "started") {
                t_build_ = Clock::now();
                out_.phase_ms["setup-inside"] = ms_since(t_started_);
                if (spec_.timeout) {
                    timer_ = make_timer(spec_.timeout);
                }
            } else {
                out_.phase_ms[phase] = m.value("ms", 0.0);
            }
        } else if (m.contains("build")) {
            build_status_ = m["build"].value("status", 0);
            have_build_status_ = true;
            out_.phase_ms["build"] = ms_since(t_build_);
            disarm(timer_.get());
            if (m.contains("exec_error")) {
                exec_errno_ = m["exec_error"].value("errno", 0);
                exec_message_ = m["exec_error"].value("message", "");
            }
            start_writer();
        } else if (m.contains("outputs")) {
            outputs_sent_ = true;
        } else if (m.contains("error")) {
            std::string kind = m["error"].get<std::string>();
            std::string msg = m.value("message", "");
            if (kind == "source") {
                source_failed_ = true;
                source_message_ = msg;
            } else if (kind == "outputs") {
                outputs_failed_ = true;
                outputs_message_ = msg;
                outputs_kind_ = m.value("kind", "");
            } else {
                fail(JobStatus::SetupFailed, "sandbox setup failed: " + msg);
            }
        }
    }

    void start_writer() {
        ReceiveOptions recv;
        recv.limits = config_.output_limits;
        recv.hash = true;
        recv.set_mtime = spec_.epoch;
        int in = outputs_.read.get();
        int dest = spec_.out_dir.get();  // -1 without --out: hash and discard
        Caller caller = spec_.caller;
        std::vector<int> keep = {in};
        if (dest >= 0) keep.push_back(dest);
        writer_ = HelperProcess::spawn(keep, [caller] { become_caller(caller); },
                                       [in, dest, recv] {
                                           auto r = receive_tree(in, dest, recv);
                                           return nlohmann::json{{"entries", r.entries}, {"bytes", r.bytes}};
                                       });
        outputs_.read.reset();
        spec_.out_dir.reset();
        writer_started_ = true;
    }

    void supervise() {
        StatusReader reader(status_.read.get());
        bool status_open = true, init_alive = true;
        while (status_open || init_alive) {
            pollfd fds[4] = {
                {status_open ? status_.read.get() : -1, POLLIN, 0},
                {init_alive ? init_pidfd_.get() : -1, POLLIN, 0},
                {timer_.get(), POLLIN, 0},
                {signals_.get(), POLLIN, 0},
            };
            int rc = ::poll(fds, 4, -1);
            if (rc < 0) {
                if (errno == EINTR) continue;
                throw_errno("poll");
            }
            if (fds[0].revents) {
                status_open = reader.fill();
                while (auto m = reader.next()) on_status(*m);
            }
            if (fds[1].revents & POLLIN) {
                init_alive = false;
                init_wait_status_ = wait_for(init_pid_);
                init_pid_ = -1;
            }
            if (fds[2].revents & POLLIN) {
                uint64_t ticks;
                (void)!::read(timer_.get(), &ticks, sizeof ticks);
                if (!have_build_status_ && !timed_out_) {
                    timed_out_ = true;
                    kill_pidfd(init_pidfd_.get());
                }
            }
            if (fds[3].revents & POLLIN) {
                signalfd_siginfo si;
                while (::read(signals_.get(), &si, sizeof si) == sizeof si) {
                }
                if (!cancelled_) {
                    cancelled_ = true;
                    if (init_alive) kill_pidfd(init_pidfd_.get());
                    if (writer_.running()) writer_.kill();
                }
            }
        }
    }

    void collect_outputs() {
        if (!writer_started_) return;
        auto t = Clock::now();
        HelperResult r = writer_.wait(Clock::now() + kOutputDeadline);
        out_.phase_ms["outputs"] = ms_since(t);
        if (!r.ok) {
            // The writer's view (the caller's side) is authoritative; the packer's
            // error is only a fallback.
            std::string msg = r.message.empty() ? outputs_message_ : r.message;
            fail(is_limit(r) || outputs_kind_ == "limit" || outputs_kind_ == "special" ? JobStatus::LimitExceeded
                                                                                      : JobStatus::SetupFailed,
                 "collecting outputs failed: " + msg);
            return;
        }
        if (outputs_failed_) {
            fail(outputs_kind_ == "limit" || outputs_kind_ == "special" ? JobStatus::LimitExceeded
                                                                        : JobStatus::SetupFailed,
                 "collecting outputs failed: " + outputs_message_);
            return;
        }
        try {
            out_.outputs = r.value.at("entries").get<std::vector<protocol::OutputEntry>>();
        } catch (const std::exception& e) {
            fail(JobStatus::SetupFailed, std::string("collecting outputs failed: ") + e.what());
        }
    }

    void classify() {
        if (cancelled_) {
            fail(JobStatus::Cancelled, "cancelled");
            return;
        }
        if (timed_out_) {
            fail(JobStatus::TimedOut, "timed out after " + std::to_string(spec_.timeout->count() / 1000.0) + " s");
            return;
        }
        if (source_failed_) {
            HelperResult r = reader_.wait(Clock::now() + std::chrono::seconds(5));
            if (!r.ok)
                fail(is_limit(r) ? JobStatus::LimitExceeded : JobStatus::SetupFailed,
                     reason_for_helper(r, "copying the source failed"));
            else
                fail(JobStatus::SetupFailed, "copying the source failed: " + source_message_);
            return;
        }
        if (!have_build_status_ && out_.oom_killed) {
            // The OOM killer chose init itself (it is tiny, so only when nothing
            // else was left to kill): still the memory limit.
            out_.status = JobStatus::Signaled;
            out_.signal = SIGKILL;
            out_.reason = "memory limit exceeded (" + std::to_string(spec_.limits.memory_bytes) + " bytes)";
            return;
        }
        if (!have_build_status_) {
            fail(JobStatus::SetupFailed, "sandbox init ended unexpectedly (status " +
                                             std::to_string(exit_status_of(init_wait_status_)) + ")");
            return;
        }
        collect_outputs();
        if (failed_) return;
        if (exec_errno_ != 0 || !exec_message_.empty()) {
            out_.status = JobStatus::Exited;
            out_.exit_code = exit_status_of(build_status_);
            out_.reason = exec_errno_ == ENOENT ? "command not found: " + exec_message_
                                                : "could not start the command: " + exec_message_;
            return;
        }
        if (WIFSIGNALED(build_status_)) {
            out_.status = JobStatus::Signaled;
            out_.signal = WTERMSIG(build_status_);
        } else {
            out_.status = JobStatus::Exited;
            out_.exit_code = WEXITSTATUS(build_status_);
        }
        // The OOM killer may have hit a child (a shell then exits 137): either way
        // the user must learn that the memory limit was the cause.
        if (out_.oom_killed)
            out_.reason = "memory limit exceeded (" + std::to_string(spec_.limits.memory_bytes) + " bytes)";
        else if (out_.pids_limit_hit)
            out_.reason = "the process limit (pids.max) was reached during the build";
    }

    void finish() noexcept {
        auto t = Clock::now();
        try {
            if (init_pid_ > 0) {
                kill_pidfd(init_pidfd_.get());
                init_wait_status_ = wait_for(init_pid_);
                init_pid_ = -1;
            }
            if (cgroup_) {
                out_.oom_killed = cgroup_->oom_killed();
                out_.pids_limit_hit = cgroup_->pids_limit_hit();
            }
            if (!failed_) classify();
            if (reader_.running()) {
                HelperResult r = reader_.wait(Clock::now() + std::chrono::seconds(1));
                if (r.ok)
                    for (const auto& s : r.value.value("skipped", std::vector<std::string>{}))
                        out_.notices.push_back("skipped special file in the source: " + s);
            }
        } catch (const std::exception& e) {
            fail(JobStatus::SetupFailed, std::string("job teardown: ") + e.what());
        }
        writer_.kill();
        reader_.kill();
        try {
            if (cgroup_) cgroup_->remove();
        } catch (const std::exception& e) {
            fail(JobStatus::SetupFailed, std::string("removing the job's cgroup: ") + e.what());
        }
        out_.phase_ms["teardown"] = ms_since(t);
    }

    JobSpec& spec_;
    const SandboxConfig& config_;
    JobOutcome out_;
    bool failed_ = false;

    std::optional<JobCgroup> cgroup_;
    UniqueFd signals_, timer_;
    FdPair sync_, status_, source_, outputs_;
    HelperProcess reader_, writer_;
    pid_t init_pid_ = -1;
    UniqueFd init_pidfd_;
    int init_wait_status_ = 0;
    Clock::time_point t_started_, t_build_;

    bool have_build_status_ = false;
    int build_status_ = 0;
    int exec_errno_ = 0;
    std::string exec_message_;
    bool writer_started_ = false, outputs_sent_ = false, outputs_failed_ = false;
    std::string outputs_message_, outputs_kind_;
    bool source_failed_ = false;
    std::string source_message_;
    bool timed_out_ = false, cancelled_ = false;
};

}  // namespace

JobOutcome run_job(JobSpec& spec, const SandboxConfig& config) noexcept {
    try {
        Runner r(spec, config);
        return r.run();
    } catch (const std::exception& e) {
        JobOutcome o;
        o.status = JobStatus::SetupFailed;
        o.reason = std::string("job runner: ") + e.what();
        return o;
    }
}

}  // namespace hermetic::sandbox
