#include "sandbox/job_runner.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <dirent.h>

#include "common/io.hpp"
#include "common/sha256.hpp"
#include "common/sys_error.hpp"
#include "audit/identity.hpp"
#include "sandbox/helper_process.hpp"
#include "sandbox/in_place_root.hpp"
#include "sandbox/process_util.hpp"
#include "sandbox/sandbox_init.hpp"
#include "sandbox/control_channel.hpp"
#include "sandbox/determinism/determinism.hpp"
#include "sandbox/deviation_stream.hpp"
#include "sandbox/job_codec.hpp"
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
        const auto ms = std::max<std::chrono::milliseconds::rep>(timeout->count(), 0);  // a negative one is due now
        its.it_value.tv_sec = ms / 1000;
        its.it_value.tv_nsec = (ms % 1000) * 1000000;
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


// Whether the caller's source directory is empty, through the descriptor the
// client opened (so with the client's read permission, checked at open). An
// unreadable descriptor is "not known to be empty": the caller-side helper then
// reports the precise error.
bool source_is_empty(int dirfd) {
    try {
        return directory_is_empty(dirfd, "the source");
    } catch (const SysError&) {
        return false;
    }
}

class Runner {
public:
    Runner(int control, PrepareSpec prep) : control_(control), prep_(std::move(prep)) {}

    // Builds the sandbox up to the point where only the job is missing.
    void prepare(UniqueFd netns) {
        auto t = Clock::now();
        // The sandbox must not inherit root's supplementary groups (a 0640 root:root
        // file would be readable through group 0 even with uid 0 unmapped).
        if (::setgroups(0, nullptr) != 0) throw_errno("setgroups");
        if (::signal(SIGPIPE, SIG_IGN) == SIG_ERR) throw_errno("signal(SIGPIPE)");
        signals_ = make_signalfd();
        timer_ = make_timer(std::nullopt);
        cgroup_.emplace(JobCgroup::create(prep_.config.cgroup, prep_.sandbox_id, prep_.default_limits));
        phase_ms_["cgroup"] = ms_since(t);

        t = Clock::now();
        SocketPair sp = make_socketpair();
        if (::setns(netns.get(), CLONE_NEWNET) != 0) throw_errno("setns(network namespace)");
        netns.reset();
        int cgfd = cgroup_->version() == CgroupVersion::V2 ? cgroup_->v2_dir_fd() : -1;
        Clone c = clone_sandbox(cgfd);
        if (c.pid == 0) {
            int rc = 1;
            try {
                close_fds_except({sp.b.get()});
                ensure_stdio_open();
                InitContext ctx{&prep_.config, sp.b.get()};
                rc = sandbox_init_main(ctx);
            } catch (...) {
            }
            ::_exit(rc);
        }
        init_pid_ = c.pid;
        init_pidfd_ = std::move(c.pidfd);
        init_ = std::move(sp.a);
        sp.b.reset();
        phase_ms_["clone"] = ms_since(t);
        write_id_maps(init_pid_, prep_.ids);
        if (cgroup_->version() == CgroupVersion::V1) cgroup_->attach(init_pid_);
        send_control(init_.get(), {{"go", true}});
        phase_ms_["clone+maps"] = ms_since(t);
        expect_from_init("prepared", "");

        // The determinism supervisor, ready for a job's configuration: forked,
        // in the job's cgroup (its tables grow with what the build does: an
        // entry per file it creates, inside the job's memory and pids limits),
        // and the served files' /dev/fuse opened in init's user namespace.
        // A job whose policy needs no supervisor just lets it go.
        t = Clock::now();
        // OpenSSL's first digest loads its configuration and providers (~2 ms):
        // done here, ahead of the job, it is done once for this runner and the
        // supervisor forked next, instead of on the job's path in each.
        (void)sha256_hex("");
        sup_.emplace();
        cgroup_->attach(sup_->pid());
        if (prep_.likely_policy) {
            try {
                sup_->prepare_policy(*prep_.likely_policy);
                likely_prepared_ = true;
            } catch (const std::exception&) {
                // The job then brings its policy, as without one prepared.
            }
        }
        UniqueFd served = sup_->open_served_files(init_pid_);
        phase_ms_["supervisor"] = ms_since(t);
        // Init mounts them now, ahead of the job: the supervisor answers the
        // mount's requests before it has a job (what the files hold waits for one).
        t = Clock::now();
        const int fuse = served.get();
        send_control(init_.get(), {{"serve", true}}, std::span<const int>(&fuse, 1));
        served.reset();
        expect_from_init("served", "mounting the served files: ");
        t = Clock::now();
        try {
            sup_->learn_mounts(init_pid_);
        } catch (const std::exception&) {
            // The supervisor learns them at the job's start then.
        }
        phase_ms_["mounts-learned"] = ms_since(t);
    }


    [[nodiscard]] const std::map<std::string, double>& phases() const { return phase_ms_; }
    // The digest of the policy the supervisor prepared ahead ("": none).
    [[nodiscard]] std::string prepared_policy() const { return likely_prepared_ ? prep_.likely_digest : ""; }

    // Waits for the job; false if the daemon let go of the sandbox (or it broke).
    bool wait_for_job(RunSpec& spec, RunFds& fds) {
        for (;;) {
            pollfd p[3] = {{control_, POLLIN, 0}, {init_pidfd_.get(), POLLIN, 0}, {signals_.get(), POLLIN, 0}};
            if (::poll(p, 3, -1) < 0) {
                if (errno == EINTR) continue;
                throw_errno("poll");
            }
            if (p[1].revents || p[2].revents) return false;  // init died, or we were told to stop
            auto m = receive_control(control_);
            if (!m) return false;
            if (!m->body.contains("run")) throw std::runtime_error("runner: expected a job");
            spec = m->body["run"].get<RunSpec>();
            size_t want = spec.has_out ? 5 : 4;
            if (m->fds.size() != want) throw std::runtime_error("runner: wrong number of descriptors for the job");
            fds.stdout_w = std::move(m->fds[0]);
            fds.stderr_w = std::move(m->fds[1]);
            fds.deviations_w = std::move(m->fds[2]);
            fds.src_dir = std::move(m->fds[3]);
            if (spec.has_out) fds.out_dir = std::move(m->fds[4]);
            return true;
        }
    }

    JobOutcome run(RunSpec spec, RunFds fds) {
        spec_ = std::move(spec);
        fds_ = std::move(fds);
        auto t_all = Clock::now();
        out_.phase_ms = phase_ms_;
        try {
            start_job();
            supervise();
        } catch (const std::exception& e) {
            if (!failed_) fail(JobStatus::SetupFailed, std::string("sandbox setup failed: ") + e.what());
        }
        finish();
        out_.phase_ms["job-total"] = ms_since(t_all);
        return std::move(out_);
    }

    // Tears down a sandbox that never got a job.
    void discard() noexcept { finish_teardown(); }

private:
    // Init's answer to a preparation step: `key`, with the step's timings.
    void expect_from_init(const char* key, const std::string& context) {
        auto m = receive_control(init_.get());
        if (!m || !m->body.contains(key)) {
            std::string why = m ? m->body.value("message", "unexpected message") : "init ended";
            throw std::runtime_error(context + why);
        }
        auto phases = m->body.value("phase_ms", std::map<std::string, double>{});
        phase_ms_.insert(phases.begin(), phases.end());
    }

    void fail(JobStatus status, std::string reason) {
        if (failed_) return;  // the first failure is the one the user needs
        failed_ = true;
        out_.status = status;
        out_.reason = std::move(reason);
    }

    void start_job() {
        auto t = Clock::now();
        cgroup_->set_limits(spec_.limits);
        outputs_ = make_pipe();
        // In place: the input root itself becomes /build; nothing is copied.
        UniqueFd input_root;
        if (spec_.in_place) {
            input_root = clone_input_root(fds_.src_dir.get());
            auto td = Clock::now();
            out_.source_digest = input_root_digest(fds_.src_dir.get());  // the evidence's source
            out_.phase_ms["input-root-digest"] = ms_since(td);
        }
        bool has_source = !spec_.in_place && !source_is_empty(fds_.src_dir.get());
        if (!has_source && !spec_.in_place) out_.source_digest = audit::tree_digest({});
        FdPair source;
        if (has_source) {
            source = make_pipe();
            SendOptions send;
            send.limits = prep_.config.source_limits;
            send.special = SpecialFiles::Skip;
            send.exclude = spec_.out_exclude;
            int src = fds_.src_dir.get(), w = source.write.get();
            Caller caller = spec_.caller;
            reader_ = HelperProcess::spawn({src, w}, [caller] { become_caller(caller); },
                                           [src, w, send] {
                                               // Re-open as the caller: the client's descriptor
                                               // may be O_PATH or opened with rights we must not use.
                                               UniqueFd dir(::openat(src, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
                                               if (!dir) throw_errno("cannot read the source directory");
                                               auto r = send_tree(dir.get(), w, send);
                                               return nlohmann::json{{"skipped", r.skipped}, {"bytes", r.bytes}};
                                           });
            source.write.reset();
        }
        if (!spec_.in_place) fds_.src_dir.reset();  // in place: kept to reclaim the outputs
        nlohmann::json job = {{"argv", spec_.argv},
                              {"env", spec_.env},
                              {"cpus_visible", spec_.cpus_visible},
                              {"epoch", spec_.epoch},
                              {"filters", filters_to_json(spec_.filters)},
                              {"has_source", has_source},
                              {"perturb", spec_.perturb}};
        std::vector<int> pass = {fds_.stdout_w.get(), fds_.stderr_w.get(), outputs_.write.get()};
        if (has_source) pass.push_back(source.read.get());
        if (input_root) {
            job["in_place"] = {{"workdir", spec_.in_place->workdir}};
            pass.push_back(input_root.get());
        }
        // A policy that virtualizes (or logs) anything needs the supervisor: it
        // answers the filter's notifications. It serves /dev/urandom and /proc
        // files through a FUSE descriptor init mounts, and takes the build's
        // listener over the hand-off socket before the build may exec.
        UniqueFd handoff_b;
        if (needs_supervisor()) {
            if (!sup_) throw std::runtime_error("no determinism supervisor was prepared");
            // Before the job goes to init: init's first step mounts the served
            // files, which the supervisor answers only once configured, and
            // preparing the job's policy is the supervisor's longest step.
            // Sent first, it runs while init gets its job and starts.
            auto ts = Clock::now();
            devsink_.emplace(fds_.deviations_w.get());
            sup_->configure(determinism_config(), *devsink_);
            out_.phase_ms["supervisor"] = ms_since(ts);
            SocketPair handoff = make_socketpair();
            handoff_ = std::move(handoff.a);
            handoff_b = std::move(handoff.b);
            pass.push_back(handoff_b.get());
            job["supervised"] = true;
        } else {
            sup_.reset();  // nothing to answer: the prepared supervisor goes
        }
        send_control(init_.get(), {{"job", job}}, pass);
        input_root.reset();
        handoff_b.reset();
        // Only the build holds the output pipes now: their EOF means it is gone.
        fds_.stdout_w.reset();
        fds_.stderr_w.reset();
        outputs_.write.reset();
        out_.phase_ms["start-job"] = ms_since(t);
        t_started_ = Clock::now();
    }

    [[nodiscard]] bool needs_supervisor() const {
        for (const auto& f : spec_.filters)
            if (f.needs_listener) return true;
        return false;
    }

    [[nodiscard]] determinism::DeterminismConfig determinism_config() const {
        determinism::DeterminismConfig c;
        // The supervisor decides every notification with the job's policy: it
        // checks that what it got is exactly the one the job's evidence names
        // (its digest), while init sets the sandbox up.
        if (spec_.policy) {
            c.policy = std::make_shared<const policy::Policy>(*spec_.policy);
        } else if (likely_prepared_ && spec_.policy_digest == prep_.likely_digest) {
            c.policy_prepared = true;  // the supervisor has it already (prepare())
        } else {
            throw std::runtime_error("the job's policy did not come with it");
        }
        c.policy_digest = spec_.policy_digest;
        c.seed = spec_.seed;
        c.epoch = spec_.epoch;
        c.clock_step_ns = spec_.clock_step_ns;
        c.cpus = spec_.cpus_visible;
        c.trace = spec_.trace;
        c.record_deviations = spec_.record_events;
        if (c.trace) c.in_process_clock = false;  // every read then carries its real value
        return c;
    }

    // The build is waiting on the hand-off socket with its filters installed:
    // the supervisor attaches, then lets it exec.
    void start_supervisor() {
        auto t = Clock::now();
        pollfd p{handoff_.get(), POLLIN, 0};
        char c;
        // EOF without a message: init failed before the build started (it says why).
        if (::poll(&p, 1, 0) > 0 && ::recv(handoff_.get(), &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
            handoff_.reset();
            return;
        }
        sup_->start_from_handoff(handoff_.get());
        handoff_.reset();
        out_.phase_ms["supervisor-attach"] = ms_since(t);
    }

    // After every build process is gone: the supervisor's account of the job.
    void stop_supervisor() noexcept {
        if (!sup_) return;
        try {
            determinism::Summary s = sup_->stop();
            out_.supervised = true;
            out_.unvirtualizable = s.unvirtualizable;
            out_.deviations_by_class = s.by_class;
            for (const auto& [_, n] : s.by_syscall) out_.supervisor_events += n;
            out_.supervisor_notes = s.notes;
            for (const auto& [what, n] : s.denied)
                out_.supervisor_notes.push_back("failed closed (ENOSYS) " + std::to_string(n) + "x: " + what);
            out_.phase_ms["supervisor-cpu"] = static_cast<double>(s.supervisor_cpu_ns) / 1e6;
        } catch (const std::exception& e) {
            out_.supervisor_notes.push_back(std::string("determinism supervisor: ") + e.what());
        }
        sup_.reset();
        if (devsink_) {
            devsink_->flush();
            if (uint64_t n = devsink_->dropped())
                out_.supervisor_notes.push_back(std::to_string(n) + " deviation record(s) could not be delivered");
        }
        fds_.deviations_w.reset();  // EOF for the daemon's pump
    }

    void on_status(const nlohmann::json& m) {
        if (m.contains("source_digest")) out_.source_digest = m["source_digest"].get<std::string>();
        if (m.contains("phase")) {
            std::string phase = m["phase"].get<std::string>();
            out_.phase_ms[phase] = m.value("ms", 0.0);
            if (phase == "started") {
                t_build_ = Clock::now();
                out_.phase_ms["setup-inside"] = ms_since(t_started_);
                if (spec_.timeout) timer_ = make_timer(spec_.timeout);
            }
        } else if (m.contains("build")) {
            build_status_ = m["build"].value("status", 0);
            have_build_status_ = true;
            out_.rusage = m["build"].value("rusage", std::map<std::string, int64_t>{});
            out_.phase_ms["build"] = ms_since(t_build_);
            disarm(timer_.get());
            if (m.contains("exec_error")) {
                exec_errno_ = m["exec_error"].value("errno", 0);
                exec_message_ = m["exec_error"].value("message", "");
            }
        } else if (m.contains("outputs")) {
            if (m["outputs"] == "sending" && !writer_started_) start_writer();
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

    // The caller-side writer starts when init is about to send /out (never for an
    // empty /out: a fork costs milliseconds here).
    void start_writer() {
        ReceiveOptions recv;
        recv.limits = prep_.config.output_limits;
        recv.hash = true;
        recv.set_mtime = spec_.epoch;
        int in = outputs_.read.get();
        int dest = fds_.out_dir.get();  // -1 without --out: hash and discard
        Caller caller = spec_.caller;
        std::vector<int> keep = {in};
        if (dest >= 0) keep.push_back(dest);
        writer_ = HelperProcess::spawn(keep, [caller] { become_caller(caller); },
                                       [in, dest, recv] {
                                           UniqueFd dir;
                                           if (dest >= 0) {
                                               dir.reset(::openat(dest, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
                                               if (!dir) throw_errno("cannot open the output directory");
                                           }
                                           auto r = receive_tree(in, dir ? dir.get() : -1, recv);
                                           return nlohmann::json{{"entries", r.entries}, {"bytes", r.bytes}};
                                       });
        outputs_.read.reset();
        writer_started_ = true;
    }

    void supervise() {
        bool init_alive = true, init_open = true;
        while (init_open || init_alive) {
            pollfd fds[5] = {
                {init_open ? init_.get() : -1, POLLIN, 0},
                {init_alive ? init_pidfd_.get() : -1, POLLIN, 0},
                {timer_.get(), POLLIN, 0},
                {signals_.get(), POLLIN, 0},
                {handoff_ ? handoff_.get() : -1, POLLIN, 0},
            };
            int rc = ::poll(fds, 5, -1);
            if (rc < 0) {
                if (errno == EINTR) continue;
                throw_errno("poll");
            }
            if (fds[0].revents) {
                std::optional<ControlMessage> m;
                try {
                    m = receive_control(init_.get());
                } catch (const std::exception&) {
                    m.reset();
                }
                if (!m) {
                    init_open = false;
                } else {
                    on_status(m->body);
                }
            }
            if (fds[4].revents) {
                try {
                    start_supervisor();
                } catch (const std::exception& e) {
                    handoff_.reset();
                    fail(JobStatus::SetupFailed, std::string("sandbox setup failed: determinism supervisor: ") + e.what());
                    if (init_alive) kill_pidfd(init_pidfd_.get());
                }
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
            // Where teardown's time goes (the round-trip benchmark prints these).
            out_.phase_ms["teardown:init"] = ms_since(t);
            auto ts = Clock::now();
            stop_supervisor();
            out_.phase_ms["teardown:supervisor"] = ms_since(ts);
            if (cgroup_) {
                out_.oom_killed = cgroup_->oom_killed();
                out_.pids_limit_hit = cgroup_->pids_limit_hit();
            }
            if (!failed_) classify();
            if (spec_.in_place && fds_.src_dir) {
                // Every build process is gone: what it created goes to the input root's owner.
                auto outputs = reclaim_input_root(fds_.src_dir.get(), prep_.ids.build_host_id,
                                                  spec_.in_place->owner_uid, spec_.in_place->owner_gid);
                out_.outputs.insert(out_.outputs.end(), outputs.begin(), outputs.end());
                fds_.src_dir.reset();
            }
            if (reader_.running()) {
                HelperResult r = reader_.wait(Clock::now() + std::chrono::seconds(1));
                if (r.ok)
                    for (const auto& sk : r.value.value("skipped", std::vector<std::string>{}))
                        out_.notices.push_back("skipped special file in the source: " + sk);
            }
        } catch (const std::exception& e) {
            fail(JobStatus::SetupFailed, std::string("job teardown: ") + e.what());
        }
        auto tc = Clock::now();
        std::string teardown_error = finish_teardown();
        if (!teardown_error.empty()) fail(JobStatus::SetupFailed, teardown_error);
        out_.phase_ms["teardown:cgroup"] = ms_since(tc);
        out_.phase_ms["teardown"] = ms_since(t);
    }

    // Kills whatever is left and removes the cgroup. Returns an error, if any.
    std::string finish_teardown() noexcept {
        if (init_pid_ > 0) {
            kill_pidfd(init_pidfd_.get());
            try {
                (void)wait_for(init_pid_);
            } catch (...) {
            }
            init_pid_ = -1;
        }
        writer_.kill();
        reader_.kill();
        stop_supervisor();
        // Every process of the job is gone when this returns; the empty cgroup
        // itself goes after the outcome is sent (JobCgroup's destructor, when
        // runner_main returns; the daemon removes a leftover after it reaps us):
        // an rmdir waits for the cgroup mutex, which another sandbox's
        // preparation can hold through an RCU grace period (10-25 ms on cgroup v1).
        try {
            if (cgroup_) cgroup_->kill_all();
        } catch (const std::exception& e) {
            return std::string("emptying the sandbox's cgroup: ") + e.what();
        }
        return {};
    }

    int control_;
    PrepareSpec prep_;
    bool likely_prepared_ = false;  // the supervisor has prep_.likely_policy
    RunSpec spec_;
    RunFds fds_;
    JobOutcome out_;
    std::map<std::string, double> phase_ms_;
    bool failed_ = false;

    std::optional<JobCgroup> cgroup_;
    UniqueFd signals_, timer_, init_;
    FdPair outputs_;
    HelperProcess reader_, writer_;
    // Declared in this order: the supervisor's reader thread writes into the sink.
    std::optional<DeviationStreamWriter> devsink_;
    std::optional<determinism::Supervisor> sup_;  // forked by prepare(), configured by start_job()
    UniqueFd handoff_;  // the runner's end of the build's hand-off socket
    pid_t init_pid_ = -1;
    UniqueFd init_pidfd_;
    int init_wait_status_ = 0;
    Clock::time_point t_started_, t_build_;

    bool have_build_status_ = false;
    int build_status_ = 0;
    int exec_errno_ = 0;
    std::string exec_message_;
    bool writer_started_ = false, outputs_failed_ = false;
    std::string outputs_message_, outputs_kind_;
    bool source_failed_ = false;
    std::string source_message_;
    bool timed_out_ = false, cancelled_ = false;
};

}  // namespace

int runner_main(int control_fd, pid_t parent) noexcept {
    try {
        harden_child_process();
        if (::getppid() != parent) return 3;
        ensure_stdio_open();  // the daemon died before PR_SET_PDEATHSIG took
        auto m = receive_control(control_fd);
        if (!m || !m->body.contains("prepare") || m->fds.size() != 1) return 2;
        Runner r(control_fd, m->body["prepare"].get<PrepareSpec>());
        try {
            r.prepare(std::move(m->fds[0]));
        } catch (const std::exception& e) {
            send_control(control_fd, {{"failed", std::string("sandbox preparation failed: ") + e.what()}});
            r.discard();
            return 1;
        }
        send_control(control_fd, {{"ready", true}, {"phase_ms", r.phases()}, {"prepared_policy", r.prepared_policy()}});
        RunSpec spec;
        RunFds fds;
        if (!r.wait_for_job(spec, fds)) {
            r.discard();
            return 0;
        }
        JobOutcome outcome = r.run(std::move(spec), std::move(fds));
        send_control(control_fd, {{"outcome", outcome}});
        return 0;
    } catch (const std::exception& e) {
        try {
            JobOutcome o;
            o.status = JobStatus::SetupFailed;
            o.reason = std::string("job runner: ") + e.what();
            send_control(control_fd, {{"outcome", o}});
        } catch (...) {
        }
        return 1;
    }
}

}  // namespace hermetic::sandbox
