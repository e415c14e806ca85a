// The daemon's audit writer for one job: receives the supervisor's deviations
// (sandbox::DeviationSink), chains them into <job-dir>/audit.log (audit/chain.hpp),
// and at the end writes the signed summary and the attestation.
//
// Files in the job directory (the state directory is 0700 root; never mounted
// into any sandbox):
//   audit.log            hash-chained JSON lines, 0600, bounded (audit_max_bytes)
//   audit.summary.json   DSSE envelope of the summary, 0600
//   attestation.json     DSSE envelope of the in-toto/SLSA statement, 0600
// All three are fsynced (and the directory) before finish() returns.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <optional>
#include <string>
#include <vector>

#include "audit/attestation.hpp"
#include "audit/chain.hpp"
#include "audit/identity.hpp"
#include "audit/keys.hpp"
#include "audit/verify.hpp"
#include "common/unique_fd.hpp"
#include "protocol/messages.hpp"
#include "sandbox/deviation.hpp"

namespace hermetic::daemon {

struct AuditWriterOptions {
    std::string job_id;
    uint64_t max_bytes = audit::kDefaultMaxLogBytes;  // config: audit-max-bytes (>= 16 KiB)
    bool trace = false;                                // the run request's --trace
};

// What finish() needs to know about the job besides its deviations.
struct JobEvidence {
    std::vector<std::string> argv;
    std::vector<std::string> env;        // the build's whole environment, "K=V"
    std::optional<uint64_t> seed;        // the effective seed (nullopt: none given and none derived)
    int64_t epoch = 0;
    int64_t clock_step_ns = 0;
    audit::BuildLimits limits;
    std::string policy_name;             // e.g. "build"
    std::string policy_digest;           // sha256 hex (RunSpec::policy_digest)
    std::string source_digest;           // sha256 hex, hermetic-tree/1: see tree_digest_of()
    audit::RootfsIdentity rootfs;        // see RootfsIdentityCache
    std::vector<protocol::OutputEntry> outputs;  // JobOutcome::outputs
    std::string state;                   // JobResult::state
    std::optional<int> exit_code;
    std::optional<int> signal;
    int64_t started_ms = 0;              // wall clock (daemon), for the attestation's metadata
    int64_t finished_ms = 0;
    std::vector<std::string> unvirtualizable;  // determinism::Summary::unvirtualizable
    std::optional<uint64_t> supervisor_events; // determinism::Summary: sum of by_syscall (cross-check)
    bool counts_only = false;                  // config audit-events = counts (audit::SummaryFacts)
    std::vector<std::string> notes;            // e.g. determinism::Summary::notes, a pump's error()
    std::string builder_version = HERMETIC_VERSION;
};

struct AuditFinish {
    std::string audit_digest;  // sha256 hex of the signed summary payload: JobResult::audit_digest
    std::string chain_head;
    std::string key_id;
    uint64_t events = 0;
    uint64_t recorded = 0;
    uint64_t aggregated = 0;
};

class AuditError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class AuditWriter final : public sandbox::DeviationSink {
public:
    // Creates <job_dir>/audit.log (O_EXCL, 0600) and writes its start record.
    AuditWriter(const std::string& job_dir, AuditWriterOptions options);
    ~AuditWriter() override;
    AuditWriter(const AuditWriter&) = delete;
    AuditWriter& operator=(const AuditWriter&) = delete;

    // Thread-safe, never throws, cheap: the deviation is queued and encoded,
    // hashed and written by the writer's own thread, off the supervisor's path.
    // It waits only while kMaxQueued events are pending (the writer takes
    // ~1-2 us per event, much less once the bound is reached). A write error
    // stops the log (finish() then fails, naming it); every event is still
    // counted.
    void record(sandbox::Deviation d) override;

    // Once, after the supervisor is done (calls to record() after this are
    // ignored and counted in late_events()): drains the queue, writes the
    // aggregate and end records, the summary and the attestation, and fsyncs
    // them and the directory. Throws AuditError.
    AuditFinish finish(const JobEvidence& job, const audit::PrivateKey& key);

    [[nodiscard]] uint64_t late_events() const;

    static constexpr size_t kMaxQueued = 16384;
    static constexpr size_t kWakeBatch = 256;
    static constexpr std::chrono::milliseconds kIdleWait{20};

    [[nodiscard]] std::string path() const { return dir_ + "/" + audit::kLogFile; }

private:
    void run();   // the writer thread
    void stop();  // drains the queue and joins the thread

    std::string dir_;
    AuditWriterOptions opt_;
    UniqueFd fd_;
    std::optional<audit::ChainWriter> chain_;  // the writer thread's until stop()
    std::string error_;                        // the first write error (writer thread)
    uint64_t unwritten_ = 0;                   // events after it (writer thread)

    mutable std::mutex mu_;
    std::condition_variable work_cv_, space_cv_;
    std::vector<audit::Event> queue_;
    bool stopping_ = false;
    bool finished_ = false;
    uint64_t late_ = 0;
    std::thread thread_;
};

// Reads a deviation stream in the supervisor's wire format
// (sandbox::determinism::encode_deviation records) from `fd` on a thread of its
// own and records each in `writer`, until EOF. For a runner that forwards the
// supervisor's stream to the daemon instead of recording in its own process.
class DeviationPump {
public:
    DeviationPump(UniqueFd fd, AuditWriter& writer);
    ~DeviationPump();  // join()
    DeviationPump(const DeviationPump&) = delete;
    DeviationPump& operator=(const DeviationPump&) = delete;
    // Waits for EOF (the sender closed its end). Idempotent.
    void join();
    [[nodiscard]] uint64_t records() const { return records_; }  // after join()
    // After join(): empty, or why the stream stopped early (a note for JobEvidence).
    [[nodiscard]] const std::string& error() const { return error_; }

private:
    UniqueFd fd_;
    AuditWriter& writer_;
    uint64_t records_ = 0;
    std::string error_;
    std::thread thread_;
};

// hermetic-tree/1 digest (audit::tree_digest) of a tree listed by the tree
// stream: path, type, mode, sha256 (files: content; symlinks: target).
std::string tree_digest_of(const std::vector<protocol::OutputEntry>& entries);

// audit::rootfs_identity, recomputed only when os-release or the dpkg status
// file changed (by dev, inode, size, mtime). Thread-safe.
class RootfsIdentityCache {
public:
    // root: the configured root directory, or "/" for the host's system dirs.
    audit::RootfsIdentity get(const std::string& root, const std::vector<std::string>& ro_binds);

private:
    std::mutex mu_;
    std::string stamp_;
    audit::RootfsIdentity cached_;
};

}  // namespace hermetic::daemon
