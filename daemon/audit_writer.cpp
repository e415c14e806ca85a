#include "daemon/audit_writer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include "audit/files.hpp"
#include "audit/summary.hpp"
#include "common/sys_error.hpp"
#include "sandbox/determinism/wire.hpp"

namespace hermetic::daemon {

namespace {

audit::Action to_audit(sandbox::DeviationAction a) {
    switch (a) {
        case sandbox::DeviationAction::Virtualized: return audit::Action::Virtualized;
        case sandbox::DeviationAction::Denied: return audit::Action::Denied;
        case sandbox::DeviationAction::Reordered: return audit::Action::Reordered;
        case sandbox::DeviationAction::Killed: return audit::Action::Killed;
        case sandbox::DeviationAction::Logged: return audit::Action::Logged;
    }
    return audit::Action::Denied;
}

}  // namespace

AuditWriter::AuditWriter(const std::string& job_dir, AuditWriterOptions options) : dir_(job_dir), opt_(std::move(options)) {
    const std::string p = path();
    fd_.reset(::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd_) throw_errno("create " + p);
    if (::fchmod(fd_.get(), 0600) != 0) throw_errno("chmod " + p);
    try {
        chain_.emplace(fd_.get(), audit::ChainOptions{opt_.job_id, opt_.max_bytes, opt_.trace});
    } catch (const std::invalid_argument& e) {
        throw AuditError(std::string("audit log: ") + e.what());
    }
    queue_.reserve(1024);
    thread_ = std::thread([this] { run(); });
}

AuditWriter::~AuditWriter() {
    stop();
    // Not finished (the daemon is going down mid-job): keep what is buffered, so
    // the log shows how far the job got; it stays "incomplete" on verification.
    if (!finished_ && chain_ && error_.empty()) {
        try {
            chain_->flush();
        } catch (...) {
        }
    }
}

void AuditWriter::run() {
    std::vector<audit::Event> batch;
    for (;;) {
        {
            std::unique_lock lock(mu_);
            // Woken per batch, not per event (a wake-up costs the supervisor more
            // than queueing); what trickles in is picked up within kIdleWait.
            work_cv_.wait_for(lock, kIdleWait, [&] { return queue_.size() >= kWakeBatch || stopping_; });
            if (queue_.empty()) {
                if (stopping_) return;  // everything is written
                continue;
            }
            batch.swap(queue_);
        }
        space_cv_.notify_all();
        for (const auto& e : batch) {
            if (!error_.empty()) {
                ++unwritten_;
                continue;
            }
            try {
                chain_->append(e);
            } catch (const std::exception& ex) {
                error_ = ex.what();
            }
        }
        batch.clear();
    }
}

void AuditWriter::stop() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    work_cv_.notify_all();
    space_cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void AuditWriter::record(sandbox::Deviation d) {
    audit::Event e;
    e.vtime_ns = d.virtual_time_ns;
    e.pid = d.real_pid;
    e.vpid = d.virtual_pid;
    e.exe = std::move(d.exe);
    e.syscall_nr = d.syscall_nr;
    e.syscall = std::move(d.syscall);
    e.args = std::move(d.args);
    e.action = to_audit(d.action);
    e.cls = std::move(d.cls);
    e.value = std::move(d.value);
    e.count = d.count;
    if (opt_.trace) e.real_value = std::move(d.real_value);
    std::unique_lock lock(mu_);
    space_cv_.wait(lock, [&] { return queue_.size() < kMaxQueued || stopping_; });
    if (stopping_) {
        ++late_;
        return;
    }
    queue_.push_back(std::move(e));
    if (queue_.size() == kWakeBatch) work_cv_.notify_one();
}

uint64_t AuditWriter::late_events() const {
    std::lock_guard lock(mu_);
    return late_;
}

AuditFinish AuditWriter::finish(const JobEvidence& job, const audit::PrivateKey& key) {
    stop();
    if (finished_) throw AuditError("audit evidence: finished twice");
    finished_ = true;
    if (!error_.empty())
        throw AuditError("audit log could not be written (" + error_ + "); " + std::to_string(unwritten_) +
                         " later events were counted but not recorded");
    try {
        audit::ChainResult chain = chain_->finish();  // written, fsynced below with the rest

        audit::SummaryFacts facts;
        facts.policy_digest = job.policy_digest;
        facts.finished_ms = job.finished_ms;
        facts.state = job.state;
        facts.exit_code = job.exit_code;
        facts.signal = job.signal;
        facts.unvirtualizable = job.unvirtualizable;
        facts.supervisor_events = job.supervisor_events;
        facts.counts_only = job.counts_only;
        facts.notes = job.notes;
        if (late_) facts.notes.push_back(std::to_string(late_) + " deviations arrived after the job's evidence was closed");
        audit::ChainOptions copt{opt_.job_id, opt_.max_bytes, opt_.trace};
        audit::Summary summary = audit::make_summary(copt, chain, chain_->tally(), facts);
        audit::Envelope summary_env = audit::sign_summary(summary, key);
        std::string digest = audit::audit_digest(summary_env);

        audit::ProvenanceInputs in;
        in.job = opt_.job_id;
        in.argv = job.argv;
        in.env = job.env;
        in.seed = job.seed;
        in.epoch = job.epoch;
        in.clock_step_ns = job.clock_step_ns;
        in.limits = job.limits;
        in.policy_name = job.policy_name;
        in.policy_digest = job.policy_digest;
        in.source_digest = job.source_digest;
        in.rootfs = job.rootfs;
        for (const auto& o : job.outputs)
            if (o.type == "file" && o.sha256) in.subjects.push_back({o.path, *o.sha256});
        in.trace = opt_.trace;
        in.audit_bound = opt_.max_bytes;
        in.started_ms = job.started_ms;
        in.finished_ms = job.finished_ms;
        in.builder_version = job.builder_version;
        in.log_sha256 = chain.file_sha256;
        in.chain_head = chain.head;
        in.records = chain.records;
        in.events = chain_->tally().events;
        in.aggregated = chain.aggregated;
        in.by_action = chain_->tally().by_action;
        in.by_class = chain_->tally().by_class;
        in.audit_digest = digest;
        audit::Envelope att = audit::sign_attestation(in, key);
        // The log, the summary and the attestation reach the disk together, then
        // their directory: one batched journal commit plus one, not five.
        const int log_fd = fd_.get();
        audit::write_files_durably(dir_,
                                   {{audit::kSummaryFile, audit::serialize_envelope(summary_env), 0600},
                                    {audit::kAttestationFile, audit::serialize_envelope(att), 0600}},
                                   std::span<const int>(&log_fd, 1));

        AuditFinish r;
        r.audit_digest = digest;
        r.chain_head = chain.head;
        r.key_id = key.key_id();
        r.events = chain_->tally().events;
        r.recorded = chain.recorded;
        r.aggregated = chain.aggregated;
        return r;
    } catch (const AuditError&) {
        throw;
    } catch (const std::exception& e) {
        throw AuditError(std::string("audit evidence: ") + e.what());
    }
}

DeviationPump::DeviationPump(UniqueFd fd, AuditWriter& writer) : fd_(std::move(fd)), writer_(writer) {
    thread_ = std::thread([this] {
        std::string buf;
        std::vector<char> chunk(1 << 16);
        for (;;) {
            ssize_t n = ::read(fd_.get(), chunk.data(), chunk.size());
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                error_ = "reading the deviation stream: " + errno_string(errno);
                return;
            }
            if (n == 0) {
                if (!buf.empty()) error_ = "the deviation stream ended inside a record";
                return;
            }
            buf.append(chunk.data(), static_cast<size_t>(n));
            std::string_view in(buf);
            try {
                sandbox::Deviation d;
                while (sandbox::determinism::decode_deviation(in, d)) {
                    writer_.record(std::move(d));
                    ++records_;
                    d = {};
                }
            } catch (const std::exception& e) {
                error_ = std::string("the deviation stream is corrupt after ") + std::to_string(records_) +
                         " records: " + e.what();
                return;
            }
            buf.erase(0, buf.size() - in.size());
        }
    });
}

DeviationPump::~DeviationPump() { join(); }

void DeviationPump::join() {
    if (thread_.joinable()) thread_.join();
}

std::string tree_digest_of(const std::vector<protocol::OutputEntry>& entries) {
    std::vector<audit::TreeEntry> t;
    t.reserve(entries.size());
    for (const auto& e : entries) t.push_back({e.path, e.type, e.mode, e.sha256});
    return audit::tree_digest(std::move(t));
}

audit::RootfsIdentity RootfsIdentityCache::get(const std::string& root, const std::vector<std::string>& ro_binds) {
    std::string base = root.empty() || root.back() != '/' ? root + "/" : root;
    std::string stamp = root + "\n";
    for (const char* f : {"etc/os-release", "usr/lib/os-release", "var/lib/dpkg/status"}) {
        struct stat st{};
        if (::stat((base + f).c_str(), &st) == 0)
            stamp += std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
                     std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + "\n";
        else
            stamp += "-\n";
    }
    for (const auto& b : ro_binds) stamp += "bind " + b + "\n";
    std::lock_guard lock(mu_);
    if (stamp != stamp_) {
        cached_ = audit::rootfs_identity(root, ro_binds);
        stamp_ = stamp;
    }
    return cached_;
}

}  // namespace hermetic::daemon
