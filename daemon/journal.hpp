// The durable job journal: SQLite in WAL mode with synchronous=FULL, so a record
// is on disk (fsynced) when a call returns. The schema carries a version and is
// migrated forward on open, never dropping data.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace hermetic::daemon {

namespace job_state {
inline constexpr const char* kAccepted = "accepted";
inline constexpr const char* kRunning = "running";
inline constexpr const char* kSucceeded = "succeeded";
inline constexpr const char* kFailed = "failed";
inline constexpr const char* kCancelled = "cancelled";
inline constexpr const char* kInterrupted = "interrupted";
bool is_final(const std::string& state);
}  // namespace job_state

struct JobRecord {
    std::string id;
    uid_t uid = 0;
    gid_t gid = 0;
    std::string state;
    int64_t created_ms = 0;
    int64_t started_ms = 0;
    int64_t finished_ms = 0;
    std::string request;  // JSON of the run request as accepted
    std::string result;   // JSON of the JobResult once final
    std::string reason;
    std::string idempotency_key;
    std::string request_digest;
    uint64_t stored_bytes = 0;  // logs and evidence kept for the job (schema 2)
    std::string sandbox_id;     // whose cgroup it ran in (schema 2)
};

class JournalError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class Journal {
public:
    static constexpr int kSchemaVersion = 2;

    explicit Journal(const std::string& path);
    ~Journal();
    Journal(const Journal&) = delete;
    Journal& operator=(const Journal&) = delete;

    void insert(const JobRecord& rec);
    // The job's start and its sandbox. Not synchronous: it promises nothing to a
    // client (recovery treats 'accepted' and 'running' alike); the next durable
    // commit's WAL fsync carries it, a power cut before that may lose it.
    void mark_running(const std::string& id, int64_t now_ms, const std::string& sandbox_id = {});
    void finish(const std::string& id, const std::string& state, const std::string& result, const std::string& reason,
                int64_t now_ms);
    // Durable: it comes after the job's last commit (retention trusts it).
    void set_stored_bytes(const std::string& id, uint64_t bytes);
    // Whether commits wait for the disk now (they do, except inside mark_running).
    [[nodiscard]] bool commits_are_durable();
    void remove(const std::string& id);
    // Finished jobs, oldest first (retention walks them).
    [[nodiscard]] std::vector<JobRecord> finished_oldest_first();
    // Jobs by state, for metrics.
    [[nodiscard]] std::map<std::string, uint64_t> count_by_state();
    [[nodiscard]] std::optional<JobRecord> get(const std::string& id);
    [[nodiscard]] std::vector<JobRecord> list(std::optional<uid_t> owner, size_t limit);
    [[nodiscard]] std::vector<JobRecord> in_states(const std::vector<std::string>& states);
    [[nodiscard]] std::optional<JobRecord> find_by_key(uid_t uid, const std::string& key);
    [[nodiscard]] int schema_version();

private:
    void exec(const char* sql);
    void step_relaxed(sqlite3_stmt* s);
    void migrate();
    sqlite3* db_ = nullptr;
    std::mutex mu_;
};

int64_t now_ms();

}  // namespace hermetic::daemon
