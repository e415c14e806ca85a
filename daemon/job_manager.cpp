#include "daemon/job_manager.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include <spdlog/spdlog.h>

#include "common/io.hpp"
#include "common/sha256.hpp"
#include "common/sys_error.hpp"
#include "daemon/build_env.hpp"
#include "daemon/output_log.hpp"
#include "daemon/runner_process.hpp"
#include "daemon/runner_registry.hpp"
#include "sandbox/determinism/config.hpp"

namespace hermetic::daemon {

using protocol::error_code::kBadRequest;
using protocol::error_code::kInternal;
using protocol::error_code::kRefused;

std::string new_job_id() {
    unsigned char r[6];
    if (RAND_bytes(r, sizeof r) != 1) throw std::runtime_error("RAND_bytes failed");
    char t[32];
    snprintf(t, sizeof t, "%llx", static_cast<unsigned long long>(now_ms()));
    return std::string(t) + "-" + to_hex(r, sizeof r);
}

std::string request_digest(const protocol::RunRequest& req) {
    protocol::RunRequest r = req;
    r.key.reset();
    nlohmann::json j = r;  // objects dump with sorted keys: a canonical form
    return sha256_hex(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

namespace {

// Cancelled by the daemon's shutdown, not by its owner: say so (in the journal
// and in the sealed evidence alike).
void mark_if_interrupted(const Job& job, protocol::JobResult& result) {
    if (auto why = job.interrupt_reason(); why && result.state == job_state::kCancelled) {
        result.state = job_state::kInterrupted;
        result.reason = *why;
        result.client_exit_status = 125;
    }
}

}  // namespace

protocol::JobResult make_result(const std::string& job_id, const sandbox::JobOutcome& o) {
    protocol::JobResult r;
    r.job = job_id;
    r.reason = o.reason;
    r.outputs = o.outputs;
    r.timings = o.phase_ms;
    using S = sandbox::JobStatus;
    switch (o.status) {
        case S::Exited:
            r.exit_code = o.exit_code;
            r.client_exit_status = o.exit_code;
            r.state = o.exit_code == 0 ? job_state::kSucceeded : job_state::kFailed;
            break;
        case S::Signaled:
            r.signal = o.signal;
            r.client_exit_status = 128 + o.signal;
            r.state = job_state::kFailed;
            break;
        case S::TimedOut:
            r.client_exit_status = 124;
            r.state = job_state::kFailed;
            break;
        case S::Cancelled:
            r.client_exit_status = 130;
            r.state = job_state::kCancelled;
            break;
        case S::SetupFailed:
        case S::LimitExceeded:
            r.client_exit_status = 125;
            r.state = job_state::kFailed;
            break;
    }
    return r;
}

JobManager::Limits JobManager::Limits::from(const DaemonConfig& c) {
    return {c.max_jobs, c.max_queued, c.max_jobs_per_user, c.retain_days, c.retain_jobs, c.retain_bytes};
}

JobManager::JobManager(const DaemonConfig& config, Journal& journal, SandboxPool& sandboxes,
                       policy::PolicyStore& policies, Evidence evidence)
    : config_(config),
      journal_(journal),
      sandboxes_(sandboxes),
      policies_(policies),
      evidence_(evidence),
      limits_(Limits::from(config)) {}

void JobManager::set_limits(const Limits& limits) {
    {
        std::lock_guard lock(mu_);
        limits_ = limits;
        ++reloads_;
    }
    slot_cv_.notify_all();  // a higher max-jobs starts queued jobs now
}

JobManager::Limits JobManager::limits() const {
    std::lock_guard lock(mu_);
    return limits_;
}

uint64_t JobManager::reloads() const {
    std::lock_guard lock(mu_);
    return reloads_;
}

JobManager::~JobManager() {
    shutdown(std::chrono::milliseconds(0));
    std::vector<std::thread> all;
    {
        std::lock_guard lock(mu_);
        for (auto& [id, t] : threads_) all.push_back(std::move(t));
        threads_.clear();
        for (auto& t : ended_) all.push_back(std::move(t));
        ended_.clear();
    }
    for (auto& t : all)
        if (t.joinable()) t.join();
}

std::string JobManager::job_dir(const std::string& id) const { return config_.state_dir + "/jobs/" + id; }

size_t JobManager::running() const {
    std::lock_guard lock(mu_);
    return running_;
}

std::shared_ptr<Job> JobManager::find(const std::string& id) {
    std::lock_guard lock(mu_);
    auto it = active_.find(id);
    return it == active_.end() ? nullptr : it->second;
}

JobPlan JobManager::plan(const protocol::RunRequest& req, std::vector<UniqueFd>& fds) {
    try {
        protocol::validate(req);
    } catch (const protocol::ProtocolError& e) {
        throw SubmitError(kBadRequest, e.what());
    }
    size_t want = req.has_out ? 2 : 1;
    if (fds.size() != want)
        throw SubmitError(kBadRequest, "expected " + std::to_string(want) + " directory descriptor(s), got " +
                                           std::to_string(fds.size()));
    for (size_t i = 0; i < fds.size(); ++i) {
        struct stat st{};
        if (::fstat(fds[i].get(), &st) != 0 || !S_ISDIR(st.st_mode))
            throw SubmitError(kBadRequest, i == 0 ? "the source is not a directory" : "the output is not a directory");
    }
    JobPlan p;
    try {
        // A user's file (its text; --policy then names it) is stacked on the
        // admin's floor; a name picks an admin profile; nothing: the floor.
        if (req.policy_text)
            p.policy = policies_.user(*req.policy_text, req.policy.value_or("user.policy"));
        else if (req.policy)
            p.policy = policies_.get(*req.policy);
        else
            p.policy = policies_.floor();
    } catch (const policy::PolicyError& e) {
        throw SubmitError(kBadRequest, std::string("policy: ") + e.what());
    }
    p.request = req;
    p.epoch = req.epoch.value_or(config_.default_epoch);
    if (p.epoch < 0 || p.epoch >= 253402300800) throw SubmitError(kBadRequest, "--epoch must be between 0 and year 9999");
    try {
        p.env = build_environment(req, p.epoch);
    } catch (const protocol::ProtocolError& e) {
        throw SubmitError(kBadRequest, e.what());
    }
    p.clock_step_ns = req.clock_step_ns.value_or(config_.default_clock_step_ns);
    if (p.clock_step_ns < 1 || p.clock_step_ns > sandbox::determinism::kMaxClockStepNs)
        throw SubmitError(kBadRequest, "--clock-step must be between 1 and 1000000000 ns");
    p.cpus_visible = req.cpus.value_or(config_.sandbox.default_cpus_visible);
    uint64_t mem = req.memory_bytes.value_or(config_.default_memory);
    if (mem > config_.max_memory)
        throw SubmitError(protocol::error_code::kLimit,
                          "--memory " + std::to_string(mem) + " exceeds the limit of " + std::to_string(config_.max_memory));
    p.limits.memory_bytes = mem;
    p.limits.pids_max = config_.pids_max;
    p.limits.cpus = config_.cpu_limit;
    uint64_t timeout = req.timeout_sec.value_or(config_.default_timeout_sec);
    if (timeout > config_.max_timeout_sec)
        throw SubmitError(protocol::error_code::kLimit, "--timeout " + std::to_string(timeout) +
                                                            " exceeds the limit of " +
                                                            std::to_string(config_.max_timeout_sec) + " s");
    p.timeout = std::chrono::milliseconds(timeout * 1000);
    p.src_dir = std::move(fds[0]);
    if (req.has_out) p.out_dir = std::move(fds[1]);
    return p;
}

void JobManager::count_refusal(const std::string& code) {
    std::lock_guard lock(mu_);
    ++metrics_.refusals[code];
}

Submitted JobManager::submit(const protocol::RunRequest& req, const Peer& peer, std::vector<UniqueFd> fds) {
    JobPlan p;
    try {
        p = plan(req, fds);
    } catch (const SubmitError& e) {
        count_refusal(e.code());
        throw;
    }
    // The same request means the same resolved policy too: an edited admin
    // profile makes an old key's request a different one.
    const std::string digest = sha256_hex(request_digest(req) + p.policy->digest());
    // With --key, deciding "new job or the existing one" and recording the new one
    // happen under one lock, so concurrent retries can't both start a job.
    std::unique_lock key_lock(key_mu_, std::defer_lock);
    if (req.key) {
        key_lock.lock();
        if (auto rec = journal_.find_by_key(peer.uid, *req.key)) {
            if (rec->request_digest != digest) {
                count_refusal(protocol::error_code::kConflict);
                throw SubmitError(protocol::error_code::kConflict,
                                  "--key '" + *req.key + "' was already used for a different request (job " + rec->id +
                                      "); use a new key");
            }
            Submitted s;
            s.id = rec->id;
            s.existing = true;
            s.job = find(rec->id);
            return s;
        }
    }
    return enqueue(std::move(p), peer, digest);
}

Submitted JobManager::submit_in_place(InPlaceRequest in, const Peer& peer) {
    JobPlan p;
    try {
        if (in.argv.empty() || in.argv[0].empty()) throw SubmitError(kBadRequest, "no command given");
        auto has_nul = [](const std::string& x) { return x.find('\0') != std::string::npos; };
        for (const auto& a : in.argv)
            if (has_nul(a)) throw SubmitError(kBadRequest, "an argument contains a NUL byte");
        for (const auto& [k, v] : in.env)
            if (k.empty() || k.find('=') != std::string::npos || has_nul(k) || has_nul(v))
                throw SubmitError(kBadRequest, "bad environment variable name '" + k + "'");
        struct stat st{};
        if (!in.input_root || ::fstat(in.input_root.get(), &st) != 0 || !S_ISDIR(st.st_mode))
            throw SubmitError(kBadRequest, "the input root is not a directory");
        p.request.argv = in.argv;
        p.request.env = in.env;
        p.policy = policies_.floor();
        p.epoch = config_.default_epoch;
        p.clock_step_ns = config_.default_clock_step_ns;
        for (const auto& [k, v] : in.env) p.env.push_back(k + "=" + v);
        p.cpus_visible = config_.sandbox.default_cpus_visible;
        p.limits.memory_bytes = config_.default_memory;
        p.limits.pids_max = config_.pids_max;
        p.limits.cpus = config_.cpu_limit;
        p.timeout = std::chrono::milliseconds(config_.default_timeout_sec * 1000);
        p.src_dir = std::move(in.input_root);
        p.in_place = sandbox::InPlaceRoot{st.st_uid, st.st_gid, in.workdir};
        p.stdout_file = std::move(in.stdout_file);
        p.stderr_file = std::move(in.stderr_file);
    } catch (const SubmitError& e) {
        count_refusal(e.code());
        throw;
    } catch (const policy::PolicyError& e) {
        count_refusal(kInternal);
        throw SubmitError(kInternal, std::string("policy: ") + e.what());
    }
    nlohmann::json wd = {{"in_place", {{"workdir", in.workdir}}}};
    const std::string digest = sha256_hex(request_digest(p.request) + wd.dump() + p.policy->digest());
    return enqueue(std::move(p), peer, digest);
}

Submitted JobManager::enqueue(JobPlan p, const Peer& peer, const std::string& digest) {
    const protocol::RunRequest req = p.request;
    std::string id = new_job_id();
    {
        std::lock_guard lock(mu_);
        std::string refusal;
        if (stopping_) refusal = "the daemon is shutting down";
        else if (queued_ + running_ >= limits_.max_jobs + limits_.max_queued)
            refusal = "too many jobs: " + std::to_string(running_) + " running and " + std::to_string(queued_) +
                      " queued (limit " + std::to_string(limits_.max_queued) + " queued)";
        else if (peer.uid != 0 && per_user_[peer.uid] >= limits_.max_jobs_per_user)
            refusal = "you already have " + std::to_string(per_user_[peer.uid]) + " jobs running or queued (limit " +
                      std::to_string(limits_.max_jobs_per_user) + " per user)";
        if (!refusal.empty()) {
            ++metrics_.refusals[kRefused];
            throw SubmitError(kRefused, refusal);
        }
        ++queued_;
        ++per_user_[peer.uid];
    }
    auto undo = [&] {
        std::lock_guard lock(mu_);
        --queued_;
        if (--per_user_[peer.uid] == 0) per_user_.erase(peer.uid);
    };
    std::shared_ptr<Job> job;
    try {
        std::string dir = job_dir(id);
        if (::mkdir(dir.c_str(), 0700) != 0) throw_errno("create " + dir);
        JobRecord rec;
        rec.id = id;
        rec.uid = peer.uid;
        rec.gid = peer.gid;
        rec.state = job_state::kAccepted;
        rec.created_ms = now_ms();
        nlohmann::json rj = req;
        rec.request = rj.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        rec.request_digest = digest;
        if (req.key) rec.idempotency_key = *req.key;
        auto t = std::chrono::steady_clock::now();
        journal_.insert(rec);  // durable (synchronous=FULL) before the client hears "accepted"
        job = std::make_shared<Job>(id, peer, std::move(p));
        job->phase_ms_["journal-accept"] =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
        job->submitted_ = std::chrono::steady_clock::now();
    } catch (const std::exception& e) {
        undo();
        spdlog::error("job {}: could not be accepted: {}", id, e.what());
        count_refusal(kInternal);
        throw SubmitError(kInternal, std::string("could not record the job: ") + e.what());
    }
    Submitted s{id, job, job->subscribe(), false};
    start(job);
    return s;
}

void JobManager::start(const std::shared_ptr<Job>& job) {
    std::vector<std::thread> ended;
    {
        std::lock_guard lock(mu_);
        active_[job->id()] = job;
        threads_.emplace(job->id(), std::thread([this, job] { run(job); }));
        ended.swap(ended_);
    }
    // Threads of finished jobs, joined here so that a daemon running for months
    // doesn't keep one exited thread (and its stack) per job it ever ran.
    for (auto& t : ended) t.join();
}

JobView JobManager::view(const std::string& id, uid_t requester) {
    auto rec = journal_.get(id);
    if (!rec || (requester != 0 && rec->uid != requester))
        throw SubmitError(protocol::error_code::kNotFound, "no job " + id + " (or it isn't yours)");
    return JobView{std::move(*rec), find(id)};
}

void JobManager::cancel(const std::string& id, uid_t requester) {
    JobView v = view(id, requester);
    if (!v.active) throw SubmitError(protocol::error_code::kConflict, "job " + id + " is already " + v.record.state);
    v.active->cancel();
    slot_cv_.notify_all();  // a queued job leaves the queue at once
}

std::vector<JobRecord> JobManager::list(uid_t requester, size_t limit) {
    return journal_.list(requester == 0 ? std::nullopt : std::optional<uid_t>(requester), limit);
}

size_t JobManager::queued() const {
    std::lock_guard lock(mu_);
    return queued_;
}

JobMetrics JobManager::metrics() const {
    std::lock_guard lock(mu_);
    return metrics_;
}

namespace {

uint64_t dir_bytes(const std::string& dir) {
    uint64_t total = 0;
    DIR* d = ::opendir(dir.c_str());
    if (!d) return 0;
    while (dirent* e = ::readdir(d)) {
        struct stat st{};
        if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
            total += static_cast<uint64_t>(st.st_size);
    }
    ::closedir(d);
    return total;
}

void remove_job_dir(const std::string& dir) {
    DIR* d = ::opendir(dir.c_str());
    if (d) {
        std::vector<std::string> names;
        while (dirent* e = ::readdir(d))
            if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.emplace_back(e->d_name);
        ::closedir(d);
        for (const auto& n : names) ::unlink((dir + "/" + n).c_str());  // job dirs hold only files
    }
    if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) throw_errno("remove " + dir);
}

}  // namespace

size_t JobManager::collect_garbage() {
    std::lock_guard gc_lock(gc_mu_);  // hermeticctl gc and the automatic collection take turns
    const Limits lim = limits();
    auto recs = journal_.finished_oldest_first();
    uint64_t total = 0;
    for (const auto& r : recs) total += r.stored_bytes;
    uint64_t count = recs.size();
    const int64_t now = now_ms();
    size_t removed = 0;
    // Oldest first: once a job is kept, every newer one is too.
    for (const auto& r : recs) {
        bool too_old = lim.retain_days && now - r.finished_ms > int64_t{lim.retain_days} * 86'400'000;
        bool too_many = lim.retain_jobs && count > lim.retain_jobs;
        bool too_big = lim.retain_bytes && total > lim.retain_bytes;
        if (!too_old && !too_many && !too_big) break;
        if (find(r.id)) continue;  // still being finished by its thread
        try {
            remove_job_dir(job_dir(r.id));
            journal_.remove(r.id);
        } catch (const std::exception& e) {
            spdlog::error("gc: job {}: {}", r.id, e.what());
            continue;
        }
        --count;
        total -= std::min(total, r.stored_bytes);
        ++removed;
    }
    if (removed) spdlog::info("gc: removed {} finished job(s)", removed);
    return removed;
}

JobManager::Slot JobManager::wait_for_slot(const std::shared_ptr<Job>& job) {
    std::unique_lock lock(mu_);
    slot_cv_.wait(lock, [&] { return stopping_ || job->cancel_requested() || running_ < limits_.max_jobs; });
    --queued_;
    if (job->cancel_requested()) return Slot::Cancelled;
    if (stopping_) return Slot::ShuttingDown;
    ++running_;
    return Slot::Granted;
}

void JobManager::run(const std::shared_ptr<Job>& job) {
    try {
        Slot slot = wait_for_slot(job);
        if (slot == Slot::Cancelled) {
            sandbox::JobOutcome o;
            o.status = sandbox::JobStatus::Cancelled;
            o.reason = "cancelled before it started";
            complete(job, make_result(job->id(), o));
        } else if (slot == Slot::ShuttingDown) {
            // Not the user's doing and nothing ran: interrupted, to be submitted again.
            protocol::JobResult r;
            r.job = job->id();
            r.state = job_state::kInterrupted;
            r.reason = "interrupted: the daemon shut down before the job started; submit it again";
            r.client_exit_status = 125;
            complete(job, std::move(r));
        } else {
            execute(job);
            std::lock_guard lock(mu_);
            --running_;
        }
    } catch (const std::exception& e) {
        spdlog::error("job {}: {}", job->id(), e.what());
    }
    slot_cv_.notify_all();
    {
        std::lock_guard lock(mu_);
        active_.erase(job->id());
        uid_t uid = job->owner().uid;
        if (--per_user_[uid] == 0) per_user_.erase(uid);
        if (auto t = threads_.find(job->id()); t != threads_.end()) {
            ended_.push_back(std::move(t->second));  // only returning is left to do
            threads_.erase(t);
        }
    }
    idle_cv_.notify_all();
}

void JobManager::execute(const std::shared_ptr<Job>& job) {
    const std::string& id = job->id();
    // Every admitted job leaves evidence, failed ones too.
    AuditWriterOptions aopts;
    aopts.job_id = id;
    aopts.max_bytes = config_.audit_max_bytes;
    aopts.trace = job->plan_.request.trace;
    AuditWriter audit(job_dir(id), aopts);
    auto fail_now = [&](const std::string& reason) {
        sandbox::JobOutcome o;
        o.status = sandbox::JobStatus::SetupFailed;
        o.reason = reason;
        auto r = make_result(id, o);
        r.audit_digest = seal_evidence(job, audit, o, r);
        complete(job, std::move(r));
    };
    using Clock = std::chrono::steady_clock;
    auto ms = [](Clock::time_point a) { return std::chrono::duration<double, std::milli>(Clock::now() - a).count(); };
    job->phase_ms_["queued"] = ms(job->submitted_);
    PreparedSandbox sb;
    try {
        sb = sandboxes_.take();
    } catch (const std::exception& e) {
        return fail_now(std::string("sandbox setup failed: ") + e.what());
    }
    job->phase_ms_["take-sandbox"] = ms(job->submitted_) - job->phase_ms_["queued"];
    for (const auto& [k, v] : sb.phase_ms) job->phase_ms_["prepare:" + k] = v;

    FdPair out_pipe = make_pipe(), err_pipe = make_pipe();
    sandbox::RunSpec spec;
    spec.job_id = id;
    spec.argv = job->plan_.request.argv;
    spec.env = job->plan_.env;
    spec.caller = {job->owner().uid, job->owner().gid, job->owner().groups};
    spec.has_out = job->plan_.out_dir.valid();
    spec.out_exclude = job->plan_.request.out_exclude;
    spec.limits = job->plan_.limits;
    spec.timeout = job->plan_.timeout;
    spec.cpus_visible = job->plan_.cpus_visible;
    spec.epoch = job->plan_.epoch;
    spec.clock_step_ns = job->plan_.clock_step_ns;
    spec.filters = job->plan_.policy->compiled.filters;
    spec.policy_digest = job->plan_.policy->digest();
    // The supervisor decides with it: sent unless it prepared this one ahead.
    if (sb.prepared_policy != spec.policy_digest) spec.policy = job->plan_.policy->policy;
    spec.seed = job->plan_.request.seed.value_or(0);
    spec.trace = job->plan_.request.trace;
    spec.record_events = config_.audit_every_event;
    spec.perturb = job->plan_.request.perturb;
    spec.in_place = job->plan_.in_place;
    FdPair deviations = make_pipe();
    sandbox::RunFds fds{std::move(out_pipe.write), std::move(err_pipe.write), std::move(deviations.write),
                        std::move(job->plan_.src_dir), std::move(job->plan_.out_dir)};
    DeviationPump pump(std::move(deviations.read), audit);

    OutputLog log(job_dir(id) + "/output.log", config_.log_cap_bytes);
    auto t = Clock::now();
    RunnerProcess& runner = sb.runner;
    try {
        runner.run(spec, std::move(fds));
    } catch (const std::exception& e) {
        return fail_now(std::string("handing the job to its sandbox: ") + e.what());
    }
    job->set_runner_pid(runner.pid());
    job->phase_ms_["hand-over"] = ms(t);
    // Journaled while the sandbox works: "running" is informational, the durable
    // point that matters ("accepted") came before the client heard of the job.
    t = Clock::now();
    journal_.mark_running(id, now_ms(), sb.sandbox_id);
    job->set_state(job_state::kRunning);
    job->phase_ms_["journal-running"] = ms(t);
    spdlog::info("job {}: running in {} for uid {}: {}", id, sb.sandbox_id, job->owner().uid, spec.argv[0]);
    t = Clock::now();

    // Relay until both output pipes and the result pipe reach EOF. The result can
    // arrive first; output still buffered in the pipes is not lost.
    sandbox::JobOutcome outcome;
    uint64_t streamed = 0;
    bool output_limit = false, result_open = true;
    UniqueFd* streams[2] = {&out_pipe.read, &err_pipe.read};
    std::vector<char> buf(protocol::kMaxOutputChunk);
    while (out_pipe.read || err_pipe.read || result_open) {
        pollfd p[3] = {{out_pipe.read.get(), POLLIN, 0},
                       {err_pipe.read.get(), POLLIN, 0},
                       {result_open ? runner.control_fd() : -1, POLLIN, 0}};
        if (::poll(p, 3, -1) < 0) {
            if (errno == EINTR) continue;
            throw_errno("poll job pipes");
        }
        for (int i = 0; i < 2; ++i) {
            if (!p[i].revents) continue;
            ssize_t n = ::read(streams[i]->get(), buf.data(), buf.size());
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                streams[i]->reset();
                continue;
            }
            auto kind = i == 0 ? protocol::FrameKind::Stdout : protocol::FrameKind::Stderr;
            std::string_view chunk(buf.data(), static_cast<size_t>(n));
            log.append(kind, chunk);
            if (UniqueFd& file = i == 0 ? job->plan_.stdout_file : job->plan_.stderr_file) {
                try {
                    write_all(file.get(), chunk);
                } catch (const std::exception& e) {
                    spdlog::warn("job {}: writing its {} file: {}", id, i == 0 ? "stdout" : "stderr", e.what());
                    file.reset();  // the job's output log still has everything
                }
            }
            job->note_progress();
            streamed += chunk.size();
            if (streamed > config_.max_output_bytes) {
                if (!output_limit) {
                    output_limit = true;
                    runner.cancel();
                }
                continue;  // drained, no longer forwarded
            }
            job->hub_.publish({i == 0 ? OutputEvent::Kind::Stdout : OutputEvent::Kind::Stderr, std::string(chunk), {}});
        }
        if (p[2].revents) {
            outcome = runner.finish();
            result_open = false;
        }
    }
    job->set_runner_pid(-1);
    job->phase_ms_["runner"] = ms(t);
    // The runner removes its (empty) cgroup after its outcome: the client gets
    // its answer meanwhile, and the runner is reaped when this job is done
    // (however it ends). Defence in depth: one that died mid-job can't have
    // removed its cgroup.
    struct ReapAtEnd {
        RunnerProcess& runner;
        const sandbox::CgroupConfig& cgroup;
        const std::string& sandbox_id;
        const std::string& job;
        ~ReapAtEnd() {
            runner.reap();
            try {
                sandbox::remove_job_cgroup(cgroup, sandbox_id);
            } catch (const std::exception& e) {
                spdlog::warn("job {}: removing leftover cgroup: {}", job, e.what());
            }
        }
    } reap_at_end{runner, config_.sandbox.cgroup, sb.sandbox_id, id};
    if (output_limit) {
        outcome.status = sandbox::JobStatus::LimitExceeded;
        outcome.reason = "build output exceeded the limit of " + std::to_string(config_.max_output_bytes) + " bytes";
    }
    for (const auto& n : outcome.notices) job->hub_.publish({OutputEvent::Kind::Notice, n, {}});
    t = Clock::now();
    log.sync();
    job->phase_ms_["log-sync"] = ms(t);
    for (const auto& [k, v] : job->phase_ms_) outcome.phase_ms["daemon:" + k] = v;
    std::string phases;
    for (const auto& [k, v] : outcome.phase_ms) phases += fmt::format(" {}={:.2f}ms", k, v);
    spdlog::info("job {}: done: status {} {}{}", id, static_cast<int>(outcome.status), outcome.reason, phases);
    {
        std::lock_guard lock(job->mu_);
        job->rusage_ = outcome.rusage;
    }
    job->plan_.stdout_file.reset();
    job->plan_.stderr_file.reset();
    auto result = make_result(id, outcome);
    mark_if_interrupted(*job, result);
    pump.join();
    t = Clock::now();
    result.audit_digest = seal_evidence(job, audit, outcome, result);
    result.timings["daemon:evidence"] = ms(t);
    complete(job, std::move(result));
}

std::string JobManager::seal_evidence(const std::shared_ptr<Job>& job, AuditWriter& audit,
                                      const sandbox::JobOutcome& outcome, const protocol::JobResult& result) {
    try {
        const JobPlan& p = job->plan_;
        JobEvidence ev;
        ev.argv = p.request.argv;
        ev.env = p.env;
        ev.seed = p.request.seed;
        ev.epoch = p.epoch;
        ev.clock_step_ns = p.clock_step_ns;
        ev.limits = {p.limits.memory_bytes, p.limits.pids_max, p.limits.cpus, p.cpus_visible,
                     static_cast<uint64_t>(p.timeout.count() / 1000)};
        if (p.policy) {
            ev.policy_name = p.policy->name;
            ev.policy_digest = p.policy->digest();
        }
        ev.source_digest = outcome.source_digest;
        if (evidence_.rootfs)
            ev.rootfs = evidence_.rootfs->get(config_.sandbox.root_dir.value_or("/"), config_.sandbox.ro_binds);
        ev.outputs = outcome.outputs;
        ev.state = result.state;
        ev.exit_code = result.exit_code;
        ev.signal = result.signal;
        if (auto rec = journal_.get(job->id())) {
            ev.started_ms = rec->started_ms ? rec->started_ms : rec->created_ms;
        }
        ev.finished_ms = now_ms();
        if (outcome.supervised) {
            ev.unvirtualizable = outcome.unvirtualizable;
            ev.supervisor_events = outcome.supervisor_events;
        }
        if (outcome.supervised && !config_.audit_every_event) {
            ev.counts_only = true;
            std::string n = "audit-events = counts: the supervisor counted " + std::to_string(outcome.supervisor_events) +
                            " deviations";
            const char* sep = " (";
            for (const auto& [cls, count] : outcome.deviations_by_class) {
                n += sep + cls + " " + std::to_string(count);
                sep = ", ";
            }
            ev.notes.push_back(n + (outcome.deviations_by_class.empty() ? "" : ")") + ", none recorded one by one");
        }
        ev.notes.insert(ev.notes.end(), outcome.supervisor_notes.begin(), outcome.supervisor_notes.end());
        AuditFinish f = audit.finish(ev, *evidence_.keys->current());
        return f.audit_digest;
    } catch (const std::exception& e) {
        spdlog::error("job {}: evidence could not be sealed: {}", job->id(), e.what());
        return {};
    }
}

void JobManager::complete(const std::shared_ptr<Job>& job, protocol::JobResult result) {
    mark_if_interrupted(*job, result);
    nlohmann::json j = result;
    std::string text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    try {
        auto t = std::chrono::steady_clock::now();
        journal_.finish(job->id(), result.state, text, result.reason, now_ms());  // durable before "done"
        result.timings["daemon:journal-done"] =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
        j = result;
    } catch (const std::exception& e) {
        spdlog::error("job {}: journal: {}", job->id(), e.what());
        result.reason = "the job finished but its result could not be recorded: " + std::string(e.what());
        result.client_exit_status = 125;
        j = result;
    }
    {
        std::lock_guard lock(job->mu_);
        job->state_ = result.state;
        job->result_ = result;
    }
    job->note_progress(true);
    job->hub_.publish({OutputEvent::Kind::Done, {}, j});
    job->hub_.close_all();
    try {
        journal_.set_stored_bytes(job->id(), dir_bytes(job_dir(job->id())));
    } catch (const std::exception& e) {
        spdlog::warn("job {}: {}", job->id(), e.what());
    }
    std::lock_guard lock(mu_);
    ++metrics_.finished;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - job->submitted_).count();
    metrics_.duration_sum_s += secs;
    if (metrics_.duration_buckets.empty()) metrics_.duration_buckets.assign(std::size(kDurationBuckets), 0);
    for (size_t i = 0; i < std::size(kDurationBuckets); ++i)
        if (secs <= kDurationBuckets[i]) ++metrics_.duration_buckets[i];
}

void recover_after_crash(const DaemonConfig& config, Journal& journal) {
    // Processes first (they may still be dying of their parent's death), then
    // their cgroups, then the record: nothing of the previous life runs on.
    if (size_t n = kill_recorded_runners(config.state_dir + "/runners"))
        spdlog::warn("killed {} job runner(s) left by the previous daemon", n);
    for (const auto& name : sandbox::list_job_cgroups(config.sandbox.cgroup)) {
        try {
            sandbox::remove_job_cgroup(config.sandbox.cgroup, name);
            spdlog::warn("removed leftover cgroup of sandbox {}", name);
        } catch (const std::exception& e) {
            spdlog::error("leftover cgroup of sandbox {}: {}", name, e.what());
        }
    }
    auto stale = journal.in_states({job_state::kAccepted, job_state::kRunning});
    for (const auto& rec : stale) {
        protocol::JobResult r;
        r.job = rec.id;
        r.state = job_state::kInterrupted;
        r.reason = "interrupted: the daemon stopped while the job was " + rec.state;
        r.client_exit_status = 125;
        nlohmann::json j = r;
        journal.finish(rec.id, r.state, j.dump(), r.reason, now_ms());
        spdlog::warn("job {}: marked interrupted (was {})", rec.id, rec.state);
    }
}

void JobManager::shutdown(std::chrono::milliseconds grace) {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    slot_cv_.notify_all();  // queued jobs leave the queue, interrupted
    std::unique_lock lock(mu_);
    auto deadline = std::chrono::steady_clock::now() + grace;
    if (!idle_cv_.wait_until(lock, deadline, [&] { return active_.empty() || interrupt_now_; })) {
        // the grace period ran out
    }
    if (!active_.empty()) {
        const std::string why = interrupt_now_
                                    ? "interrupted: the daemon was told to stop at once while the job ran"
                                    : "interrupted: the daemon shut down and the job did not finish within the "
                                      "grace period of " +
                                          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(grace).count()) +
                                          " s";
        spdlog::warn("shutdown: interrupting {} job(s) still running", active_.size());
        for (auto& [id, job] : active_) job->interrupt(why);
        // Each job's thread tears its sandbox down and journals it; wait for all.
        while (!idle_cv_.wait_for(lock, std::chrono::seconds(10), [&] { return active_.empty(); }))
            spdlog::warn("shutdown: still waiting for {} job(s) to be torn down", active_.size());
    }
}

void JobManager::interrupt_now() {
    {
        std::lock_guard lock(mu_);
        interrupt_now_ = true;
    }
    idle_cv_.notify_all();
}

}  // namespace hermetic::daemon
