#include "daemon/journal.hpp"

#include <sqlite3.h>

#include <chrono>
#include <memory>

namespace hermetic::daemon {

bool job_state::is_final(const std::string& s) {
    return s == kSucceeded || s == kFailed || s == kCancelled || s == kInterrupted;
}

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

namespace {

struct StmtFinalize {
    void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtFinalize>;

Stmt prepare(sqlite3* db, const char* sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK)
        throw JournalError(std::string("journal: prepare: ") + sqlite3_errmsg(db));
    return Stmt(s);
}

void bind_text(sqlite3_stmt* s, int i, const std::string& v) {
    sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

void step_done(sqlite3* db, sqlite3_stmt* s) {
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE) throw JournalError(std::string("journal: write: ") + sqlite3_errmsg(db));
}

std::string col_text(sqlite3_stmt* s, int i) {
    auto p = sqlite3_column_text(s, i);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(s, i)))
             : std::string();
}

constexpr const char* kColumns =
    "id, uid, gid, state, created_ms, started_ms, finished_ms, request, result, reason, idem_key, request_digest, "
    "stored_bytes, sandbox_id";

JobRecord read_row(sqlite3_stmt* s) {
    JobRecord r;
    r.id = col_text(s, 0);
    r.uid = static_cast<uid_t>(sqlite3_column_int64(s, 1));
    r.gid = static_cast<gid_t>(sqlite3_column_int64(s, 2));
    r.state = col_text(s, 3);
    r.created_ms = sqlite3_column_int64(s, 4);
    r.started_ms = sqlite3_column_int64(s, 5);
    r.finished_ms = sqlite3_column_int64(s, 6);
    r.request = col_text(s, 7);
    r.result = col_text(s, 8);
    r.reason = col_text(s, 9);
    r.idempotency_key = col_text(s, 10);
    r.request_digest = col_text(s, 11);
    r.stored_bytes = static_cast<uint64_t>(sqlite3_column_int64(s, 12));
    r.sandbox_id = col_text(s, 13);
    return r;
}

std::vector<JobRecord> read_all(sqlite3* db, sqlite3_stmt* s) {
    std::vector<JobRecord> out;
    for (;;) {
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            out.push_back(read_row(s));
        } else if (rc == SQLITE_DONE) {
            return out;
        } else {
            throw JournalError(std::string("journal: read: ") + sqlite3_errmsg(db));
        }
    }
}

}  // namespace

Journal::Journal(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr) !=
        SQLITE_OK) {
        std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
        sqlite3_close(db_);
        db_ = nullptr;
        throw JournalError("journal: open " + path + ": " + msg);
    }
    sqlite3_busy_timeout(db_, 5000);
    try {
        // WAL + FULL: every commit fsyncs the WAL before returning.
        exec("PRAGMA journal_mode=WAL");
        exec("PRAGMA synchronous=FULL");
        exec("PRAGMA foreign_keys=ON");
        migrate();
    } catch (...) {
        // A refused file (not a database, a newer schema): no destructor runs.
        sqlite3_close_v2(db_);
        db_ = nullptr;
        throw;
    }
}

Journal::~Journal() { sqlite3_close_v2(db_); }

void Journal::exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
        std::string msg = err ? err : "unknown error";
        sqlite3_free(err);
        throw JournalError(std::string("journal: ") + msg);
    }
}

int Journal::schema_version() {
    std::lock_guard lock(mu_);
    auto s = prepare(db_, "PRAGMA user_version");
    if (sqlite3_step(s.get()) != SQLITE_ROW) throw JournalError("journal: cannot read schema version");
    return sqlite3_column_int(s.get(), 0);
}

void Journal::migrate() {
    int version = 0;
    {
        auto s = prepare(db_, "PRAGMA user_version");
        if (sqlite3_step(s.get()) == SQLITE_ROW) version = sqlite3_column_int(s.get(), 0);
    }
    if (version > kSchemaVersion)
        throw JournalError("journal: schema version " + std::to_string(version) +
                           " is newer than this hermeticd understands (" + std::to_string(kSchemaVersion) + ")");
    // Each step moves the schema forward by one version inside a transaction.
    if (version < 1) {
        exec("BEGIN IMMEDIATE");
        try {
            exec("CREATE TABLE jobs ("
                 " id TEXT PRIMARY KEY, uid INTEGER NOT NULL, gid INTEGER NOT NULL, state TEXT NOT NULL,"
                 " created_ms INTEGER NOT NULL, started_ms INTEGER NOT NULL DEFAULT 0,"
                 " finished_ms INTEGER NOT NULL DEFAULT 0, request TEXT NOT NULL, result TEXT NOT NULL DEFAULT '',"
                 " reason TEXT NOT NULL DEFAULT '', idem_key TEXT NOT NULL DEFAULT '',"
                 " request_digest TEXT NOT NULL DEFAULT '')");
            exec("CREATE INDEX jobs_state ON jobs(state)");
            exec("CREATE UNIQUE INDEX jobs_key ON jobs(uid, idem_key) WHERE idem_key != ''");
            exec("PRAGMA user_version = 1");
            exec("COMMIT");
        } catch (...) {
            exec("ROLLBACK");
            throw;
        }
        version = 1;
    }
    if (version < 2) {  // retention accounting and the sandbox a job ran in
        exec("BEGIN IMMEDIATE");
        try {
            exec("ALTER TABLE jobs ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0");
            exec("ALTER TABLE jobs ADD COLUMN sandbox_id TEXT NOT NULL DEFAULT ''");
            exec("CREATE INDEX jobs_finished ON jobs(finished_ms)");
            exec("PRAGMA user_version = 2");
            exec("COMMIT");
        } catch (...) {
            exec("ROLLBACK");
            throw;
        }
    }
}

void Journal::insert(const JobRecord& r) {
    std::lock_guard lock(mu_);
    auto s = prepare(db_, "INSERT INTO jobs (id, uid, gid, state, created_ms, request, idem_key, request_digest)"
                          " VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    bind_text(s.get(), 1, r.id);
    sqlite3_bind_int64(s.get(), 2, r.uid);
    sqlite3_bind_int64(s.get(), 3, r.gid);
    bind_text(s.get(), 4, r.state);
    sqlite3_bind_int64(s.get(), 5, r.created_ms);
    bind_text(s.get(), 6, r.request);
    bind_text(s.get(), 7, r.idempotency_key);
    bind_text(s.get(), 8, r.request_digest);
    step_done(db_, s.get());
}

// One statement committed without fsync (WAL, synchronous=NORMAL): the WAL is
// appended in order, so the next FULL commit's fsync makes it durable too.
// Every fsync on a job's path is ~0.3 ms here, several under I/O load.
void Journal::step_relaxed(sqlite3_stmt* s) {
    exec("PRAGMA synchronous=NORMAL");
    struct Restore {
        Journal& j;
        ~Restore() {
            try {
                j.exec("PRAGMA synchronous=FULL");
            } catch (...) {
                std::terminate();  // a journal left non-durable must not go on acknowledging jobs
            }
        }
    } restore{*this};
    step_done(db_, s);
}

bool Journal::commits_are_durable() {
    std::lock_guard lock(mu_);
    auto s = prepare(db_, "PRAGMA synchronous");
    return sqlite3_step(s.get()) == SQLITE_ROW && sqlite3_column_int(s.get(), 0) >= 2;  // FULL or EXTRA
}

void Journal::mark_running(const std::string& id, int64_t now, const std::string& sandbox_id) {
    std::lock_guard lock(mu_);
    auto s = prepare(db_,
                     "UPDATE jobs SET state = 'running', started_ms = ?, sandbox_id = COALESCE(?, sandbox_id) "
                     "WHERE id = ? AND state = 'accepted'");
    sqlite3_bind_int64(s.get(), 1, now);
    if (sandbox_id.empty()) sqlite3_bind_null(s.get(), 2);
    else bind_text(s.get(), 2, sandbox_id);
    bind_text(s.get(), 3, id);
    step_relaxed(s.get());
}

void Journal::finish(const std::string& id, const std::string& state, const std::string& result,
                     const std::string& reason, int64_t now) {
    std::lock_guard lock(mu_);
    auto s = prepare(db_, "UPDATE jobs SET state = ?, result = ?, reason = ?, finished_ms = ? WHERE id = ?");
    bind_text(s.get(), 1, state);
    bind_text(s.get(), 2, result);
    bind_text(s.get(), 3, reason);
    sqlite3_bind_int64(s.get(), 4, now);
    bind_text(s.get(), 5, id);
    step_done(db_, s.get());
}

void Journal::set_stored_bytes(const std::string& id, uint64_t bytes) {
    std::lock_guard lock(mu_);
    auto s = prepare(db_, "UPDATE jobs SET stored_bytes = ? WHERE id = ?");
    sqlite3_bind_int64(s.get(), 1, static_cast<sqlite3_int64>(bytes));
    bind_text(s.get(), 2, id);
    step_done(db_, s.get());
}

void Journal::remove(const std::string& id) {
    std::lock_guard lock(mu_);
    auto s = prepare(db_, "DELETE FROM jobs WHERE id = ?");
    bind_text(s.get(), 1, id);
    step_done(db_, s.get());
}

std::vector<JobRecord> Journal::finished_oldest_first() {
    std::lock_guard lock(mu_);
    auto s = prepare(db_, (std::string("SELECT ") + kColumns +
                           " FROM jobs WHERE state IN ('succeeded','failed','cancelled','interrupted')"
                           " ORDER BY finished_ms ASC, id ASC")
                              .c_str());
    return read_all(db_, s.get());
}

std::map<std::string, uint64_t> Journal::count_by_state() {
    std::lock_guard lock(mu_);
    auto s = prepare(db_, "SELECT state, COUNT(*) FROM jobs GROUP BY state");
    std::map<std::string, uint64_t> out;
    for (;;) {
        int rc = sqlite3_step(s.get());
        if (rc == SQLITE_ROW) {
            out[col_text(s.get(), 0)] = static_cast<uint64_t>(sqlite3_column_int64(s.get(), 1));
        } else if (rc == SQLITE_DONE) {
            return out;
        } else {
            throw JournalError(std::string("journal: read: ") + sqlite3_errmsg(db_));
        }
    }
}

std::optional<JobRecord> Journal::get(const std::string& id) {
    std::lock_guard lock(mu_);
    auto s = prepare(db_, (std::string("SELECT ") + kColumns + " FROM jobs WHERE id = ?").c_str());
    bind_text(s.get(), 1, id);
    auto rows = read_all(db_, s.get());
    if (rows.empty()) return std::nullopt;
    return rows.front();
}

std::vector<JobRecord> Journal::list(std::optional<uid_t> owner, size_t limit) {
    std::lock_guard lock(mu_);
    std::string sql = std::string("SELECT ") + kColumns + " FROM jobs" + (owner ? " WHERE uid = ?" : "") +
                      " ORDER BY created_ms DESC, id DESC LIMIT ?";
    auto s = prepare(db_, sql.c_str());
    int i = 1;
    if (owner) sqlite3_bind_int64(s.get(), i++, *owner);
    sqlite3_bind_int64(s.get(), i, static_cast<sqlite3_int64>(limit));
    return read_all(db_, s.get());
}

std::vector<JobRecord> Journal::in_states(const std::vector<std::string>& states) {
    std::lock_guard lock(mu_);
    std::vector<JobRecord> out;
    for (const auto& st : states) {
        auto s = prepare(db_, (std::string("SELECT ") + kColumns + " FROM jobs WHERE state = ?").c_str());
        bind_text(s.get(), 1, st);
        auto rows = read_all(db_, s.get());
        out.insert(out.end(), rows.begin(), rows.end());
    }
    return out;
}

std::optional<JobRecord> Journal::find_by_key(uid_t uid, const std::string& key) {
    std::lock_guard lock(mu_);
    auto s = prepare(db_, (std::string("SELECT ") + kColumns + " FROM jobs WHERE uid = ? AND idem_key = ?").c_str());
    sqlite3_bind_int64(s.get(), 1, uid);
    bind_text(s.get(), 2, key);
    auto rows = read_all(db_, s.get());
    if (rows.empty()) return std::nullopt;
    return rows.front();
}

}  // namespace hermetic::daemon
