// The job journal on a temporary SQLite file: every call, the schema version,
// durability settings, reopening, and the unique (uid, key) index.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "daemon/journal.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

using namespace hermetic::daemon;
using hermetic::test::TempDir;

// Every SQLite connection this process opens passes through here (an auto
// extension), which lets the test ask the Journal's own connection for its
// pragmas: synchronous is per connection, so another connection can't tell.
sqlite3* g_last_connection = nullptr;
int capture_connection(sqlite3* db, const char**, const struct sqlite3_api_routines*) {
    g_last_connection = db;
    return SQLITE_OK;
}

std::string pragma(sqlite3* db, const char* name) {
    sqlite3_stmt* s = nullptr;
    std::string sql = std::string("PRAGMA ") + name;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) return "prepare failed";
    std::string v;
    if (sqlite3_step(s) == SQLITE_ROW) {
        auto t = sqlite3_column_text(s, 0);
        v = t ? reinterpret_cast<const char*>(t) : "";
    }
    sqlite3_finalize(s);
    return v;
}

// A plain connection of the test's own to the same file.
struct RawDb {
    sqlite3* db = nullptr;
    explicit RawDb(const std::string& path) {
        if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) throw std::runtime_error("open");
    }
    ~RawDb() { sqlite3_close(db); }
    void exec(const std::string& sql) {
        char* err = nullptr;
        if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
            std::string m = err ? err : "?";
            sqlite3_free(err);
            throw std::runtime_error(m);
        }
    }
};

JobRecord record(const std::string& id, uid_t uid, int64_t created, const std::string& key = "") {
    JobRecord r;
    r.id = id;
    r.uid = uid;
    r.gid = uid + 1;
    r.state = job_state::kAccepted;
    r.created_ms = created;
    r.request = R"({"argv":["make"]})";
    r.idempotency_key = key;
    r.request_digest = "digest-" + id;
    return r;
}

std::vector<std::string> ids(const std::vector<JobRecord>& v) {
    std::vector<std::string> out;
    for (const auto& r : v) out.push_back(r.id);
    return out;
}

class JournalTest : public ::testing::Test {
protected:
    TempDir dir_{"hermetic-journal"};
    std::string path_ = dir_ / "journal.db";
};

TEST_F(JournalTest, InsertThenGetReturnsEveryField) {
    Journal j(path_);
    JobRecord r = record("job-1", 1001, 12345, "k1");
    r.request = std::string("{\"argv\":[\"a\\u0000b\"],\"x\":\"") + std::string(100000, 'x') + "\"}";
    j.insert(r);
    auto got = j.get("job-1");
    ASSERT_TRUE(got);
    EXPECT_EQ(got->id, "job-1");
    EXPECT_EQ(got->uid, 1001u);
    EXPECT_EQ(got->gid, 1002u);
    EXPECT_EQ(got->state, "accepted");
    EXPECT_EQ(got->created_ms, 12345);
    EXPECT_EQ(got->started_ms, 0);
    EXPECT_EQ(got->finished_ms, 0);
    EXPECT_EQ(got->request, r.request);
    EXPECT_EQ(got->result, "");
    EXPECT_EQ(got->reason, "");
    EXPECT_EQ(got->idempotency_key, "k1");
    EXPECT_EQ(got->request_digest, "digest-job-1");
    EXPECT_FALSE(j.get("job-2"));
}

TEST_F(JournalTest, DuplicateIdIsRefused) {
    Journal j(path_);
    j.insert(record("job-1", 1, 1));
    EXPECT_THROW(j.insert(record("job-1", 2, 2)), JournalError);
    EXPECT_EQ(j.get("job-1")->uid, 1u);
}

TEST_F(JournalTest, MarkRunningThenFinish) {
    Journal j(path_);
    j.insert(record("job-1", 1, 100));
    j.mark_running("job-1", 200);
    auto r = j.get("job-1");
    EXPECT_EQ(r->state, "running");
    EXPECT_EQ(r->started_ms, 200);
    j.finish("job-1", job_state::kSucceeded, R"({"exit_code":0})", "", 300);
    r = j.get("job-1");
    EXPECT_EQ(r->state, "succeeded");
    EXPECT_EQ(r->started_ms, 200);
    EXPECT_EQ(r->finished_ms, 300);
    EXPECT_EQ(r->result, R"({"exit_code":0})");
    EXPECT_EQ(r->reason, "");
}

TEST_F(JournalTest, TheRunningMarkRecordsTheSandboxAndLeavesLaterCommitsDurable) {
    Journal j(path_);
    EXPECT_TRUE(j.commits_are_durable());
    j.insert(record("job-1", 1, 100));
    j.mark_running("job-1", 200, "sb-7");
    // Not fsynced itself, but the connection is back to synchronous commits:
    // the result that follows is durable before the client hears of it.
    EXPECT_TRUE(j.commits_are_durable());
    j.set_stored_bytes("job-1", 42);
    EXPECT_TRUE(j.commits_are_durable());
    auto r = j.get("job-1");
    EXPECT_EQ(r->state, "running");
    EXPECT_EQ(r->sandbox_id, "sb-7");
    EXPECT_EQ(r->stored_bytes, 42u);
    // Seen by another connection (it is committed, in the WAL).
    Journal other(path_);
    EXPECT_EQ(other.get("job-1")->sandbox_id, "sb-7");
    j.finish("job-1", job_state::kSucceeded, "{}", "", 300);
    EXPECT_EQ(other.get("job-1")->state, "succeeded");
}

TEST_F(JournalTest, MarkRunningOnlyMovesAcceptedJobs) {
    Journal j(path_);
    j.insert(record("job-1", 1, 100));
    j.finish("job-1", job_state::kCancelled, "{}", "cancelled before it started", 150);
    j.mark_running("job-1", 200);  // too late: stays cancelled
    auto r = j.get("job-1");
    EXPECT_EQ(r->state, "cancelled");
    EXPECT_EQ(r->started_ms, 0);
    EXPECT_EQ(r->reason, "cancelled before it started");
    EXPECT_NO_THROW(j.mark_running("no-such-job", 1));
}

TEST_F(JournalTest, ListIsNewestFirstFilteredAndLimited) {
    Journal j(path_);
    j.insert(record("a", 1000, 10));
    j.insert(record("b", 2000, 30));
    j.insert(record("c", 1000, 20));
    j.insert(record("d", 1000, 40));
    EXPECT_EQ(ids(j.list(std::nullopt, 100)), (std::vector<std::string>{"d", "b", "c", "a"}));
    EXPECT_EQ(ids(j.list(1000u, 100)), (std::vector<std::string>{"d", "c", "a"}));
    EXPECT_EQ(ids(j.list(1000u, 2)), (std::vector<std::string>{"d", "c"}));
    EXPECT_EQ(ids(j.list(2000u, 100)), std::vector<std::string>{"b"});
    EXPECT_TRUE(j.list(3000u, 100).empty());
    EXPECT_TRUE(j.list(std::nullopt, 0).empty());
}

TEST_F(JournalTest, ListBreaksTiesById) {
    Journal j(path_);
    j.insert(record("x1", 1, 5));
    j.insert(record("x3", 1, 5));
    j.insert(record("x2", 1, 5));
    EXPECT_EQ(ids(j.list(std::nullopt, 10)), (std::vector<std::string>{"x3", "x2", "x1"}));
}

TEST_F(JournalTest, InStatesReturnsExactlyThoseStates) {
    Journal j(path_);
    for (const char* id : {"acc", "run", "ok", "fail"}) j.insert(record(id, 1, 1));
    j.mark_running("run", 2);
    j.mark_running("ok", 2);
    j.finish("ok", job_state::kSucceeded, "{}", "", 3);
    j.finish("fail", job_state::kFailed, "{}", "boom", 3);
    auto live = ids(j.in_states({job_state::kAccepted, job_state::kRunning}));
    std::sort(live.begin(), live.end());
    EXPECT_EQ(live, (std::vector<std::string>{"acc", "run"}));
    EXPECT_EQ(ids(j.in_states({job_state::kFailed})), std::vector<std::string>{"fail"});
    EXPECT_TRUE(j.in_states({job_state::kInterrupted}).empty());
    EXPECT_TRUE(j.in_states({}).empty());
}

TEST_F(JournalTest, FindByKeyIsPerUser) {
    Journal j(path_);
    j.insert(record("a", 1000, 1, "release-1"));
    j.insert(record("b", 2000, 2, "release-1"));  // same key, other user: fine
    j.insert(record("c", 1000, 3));
    auto a = j.find_by_key(1000, "release-1");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->id, "a");
    auto b = j.find_by_key(2000, "release-1");
    ASSERT_TRUE(b);
    EXPECT_EQ(b->id, "b");
    EXPECT_FALSE(j.find_by_key(3000, "release-1"));
    EXPECT_FALSE(j.find_by_key(1000, "release-2"));
}

TEST_F(JournalTest, UniqueIndexOnUidAndKey) {
    Journal j(path_);
    j.insert(record("a", 1000, 1, "k"));
    EXPECT_THROW(j.insert(record("a2", 1000, 2, "k")), JournalError);
    EXPECT_FALSE(j.get("a2"));
    // Jobs without a key never collide.
    j.insert(record("n1", 1000, 3));
    j.insert(record("n2", 1000, 4));
    EXPECT_TRUE(j.get("n2"));
    // The index exists in the schema as a unique one.
    RawDb raw(path_);
    sqlite3_stmt* s = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(raw.db, "SELECT group_concat(name, ',') FROM pragma_index_info('jobs_key')", -1, &s,
                                 nullptr),
              SQLITE_OK);
    ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
    EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)), "uid,idem_key");
    sqlite3_finalize(s);
    ASSERT_EQ(sqlite3_prepare_v2(raw.db, "SELECT \"unique\" FROM pragma_index_list('jobs') WHERE name = 'jobs_key'",
                                 -1, &s, nullptr),
              SQLITE_OK);
    ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
    EXPECT_EQ(sqlite3_column_int(s, 0), 1);
    sqlite3_finalize(s);
}

TEST_F(JournalTest, NewJournalHasTheCurrentSchemaVersion) {
    Journal j(path_);
    EXPECT_GE(Journal::kSchemaVersion, 1);
    EXPECT_EQ(j.schema_version(), Journal::kSchemaVersion);
    RawDb raw(path_);
    EXPECT_EQ(pragma(raw.db, "user_version"), std::to_string(Journal::kSchemaVersion));
}

// A journal exactly as schema version 1 created it: opening it with this build
// migrates it forward (if there is anything to do) and loses nothing.
TEST_F(JournalTest, AVersionOneJournalOpensWithItsData) {
    {
        RawDb raw(path_);
        raw.exec("CREATE TABLE jobs ("
                 " id TEXT PRIMARY KEY, uid INTEGER NOT NULL, gid INTEGER NOT NULL, state TEXT NOT NULL,"
                 " created_ms INTEGER NOT NULL, started_ms INTEGER NOT NULL DEFAULT 0,"
                 " finished_ms INTEGER NOT NULL DEFAULT 0, request TEXT NOT NULL, result TEXT NOT NULL DEFAULT '',"
                 " reason TEXT NOT NULL DEFAULT '', idem_key TEXT NOT NULL DEFAULT '',"
                 " request_digest TEXT NOT NULL DEFAULT '')");
        raw.exec("CREATE INDEX jobs_state ON jobs(state)");
        raw.exec("CREATE UNIQUE INDEX jobs_key ON jobs(uid, idem_key) WHERE idem_key != ''");
        raw.exec("INSERT INTO jobs (id, uid, gid, state, created_ms, started_ms, finished_ms, request, result, reason,"
                 " idem_key, request_digest) VALUES ('old-1', 1000, 1000, 'succeeded', 5, 6, 7, '{\"argv\":[\"make\"]}',"
                 " '{\"exit_code\":0}', '', 'key-1', 'dig')");
        raw.exec("INSERT INTO jobs (id, uid, gid, state, created_ms, request) VALUES ('old-2', 1000, 1000,"
                 " 'running', 8, '{}')");
        raw.exec("PRAGMA user_version = 1");
    }
    Journal j(path_);
    EXPECT_EQ(j.schema_version(), Journal::kSchemaVersion);
    auto a = j.get("old-1");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->state, "succeeded");
    EXPECT_EQ(a->created_ms, 5);
    EXPECT_EQ(a->started_ms, 6);
    EXPECT_EQ(a->finished_ms, 7);
    EXPECT_EQ(a->request, R"({"argv":["make"]})");
    EXPECT_EQ(a->result, R"({"exit_code":0})");
    EXPECT_EQ(a->idempotency_key, "key-1");
    EXPECT_EQ(a->request_digest, "dig");
    EXPECT_EQ(ids(j.in_states({job_state::kRunning})), std::vector<std::string>{"old-2"});
    EXPECT_EQ(j.find_by_key(1000, "key-1")->id, "old-1");
    // And it is fully usable afterwards.
    j.insert(record("new-1", 1000, 9));
    j.mark_running("old-2", 10);
    j.finish("old-2", job_state::kInterrupted, "{}", "interrupted", 11);
    EXPECT_EQ(j.get("old-2")->state, "interrupted");
    EXPECT_EQ(j.list(std::nullopt, 10).size(), 3u);
}

TEST_F(JournalTest, ReopeningPreservesData) {
    {
        Journal j(path_);
        j.insert(record("keep-1", 1000, 10, "k"));
        j.insert(record("keep-2", 1000, 20));
        j.mark_running("keep-2", 21);
        j.finish("keep-2", job_state::kFailed, R"({"exit_code":2})", "exit 2", 22);
    }
    Journal j(path_);
    EXPECT_EQ(j.schema_version(), Journal::kSchemaVersion);
    auto a = j.get("keep-1");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->state, "accepted");
    EXPECT_EQ(a->idempotency_key, "k");
    auto b = j.get("keep-2");
    ASSERT_TRUE(b);
    EXPECT_EQ(b->state, "failed");
    EXPECT_EQ(b->result, R"({"exit_code":2})");
    EXPECT_EQ(b->reason, "exit 2");
    EXPECT_EQ(b->finished_ms, 22);
    EXPECT_EQ(j.list(std::nullopt, 10).size(), 2u);
    // The unique index survived the reopen too.
    EXPECT_THROW(j.insert(record("again", 1000, 30, "k")), JournalError);
}

TEST_F(JournalTest, ANewerSchemaIsRefusedClearly) {
    {
        Journal j(path_);
        j.insert(record("x", 1, 1));
    }
    const int newer = Journal::kSchemaVersion + 1;
    {
        RawDb raw(path_);
        raw.exec("PRAGMA user_version = " + std::to_string(newer));
    }
    try {
        Journal j(path_);
        FAIL() << "a newer schema was opened";
    } catch (const JournalError& e) {
        std::string m = e.what();
        EXPECT_NE(m.find("schema version " + std::to_string(newer)), std::string::npos) << m;
        EXPECT_NE(m.find("newer"), std::string::npos) << m;
        EXPECT_NE(m.find("(" + std::to_string(Journal::kSchemaVersion) + ")"), std::string::npos) << m;
    }
    // Refusing left the data alone.
    RawDb raw(path_);
    EXPECT_EQ(pragma(raw.db, "user_version"), std::to_string(newer));
    sqlite3_stmt* s = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(raw.db, "SELECT count(*) FROM jobs", -1, &s, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
    EXPECT_EQ(sqlite3_column_int(s, 0), 1);
    sqlite3_finalize(s);
}

TEST_F(JournalTest, NotADatabaseIsRefused) {
    hermetic::test::write_file(path_, std::string(4096, 'x'));
    EXPECT_THROW(Journal j(path_), JournalError);
}

TEST_F(JournalTest, UnopenablePathIsRefusedWithThePath) {
    std::string bad = dir_ / "no/such/dir/journal.db";
    try {
        Journal j(bad);
        FAIL();
    } catch (const JournalError& e) {
        EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
}

TEST_F(JournalTest, WalAndSynchronousFullAreSet) {
    ASSERT_EQ(sqlite3_auto_extension(reinterpret_cast<void (*)()>(capture_connection)), SQLITE_OK);
    g_last_connection = nullptr;
    auto j = std::make_unique<Journal>(path_);
    sqlite3* db = g_last_connection;
    sqlite3_cancel_auto_extension(reinterpret_cast<void (*)()>(capture_connection));
    ASSERT_NE(db, nullptr);
    // The Journal's own connection.
    EXPECT_EQ(pragma(db, "journal_mode"), "wal");
    EXPECT_EQ(pragma(db, "synchronous"), "2");  // FULL
    EXPECT_EQ(pragma(db, "foreign_keys"), "1");
    // WAL is a property of the file: another connection sees it too.
    RawDb raw(path_);
    EXPECT_EQ(pragma(raw.db, "journal_mode"), "wal");
}

TEST_F(JournalTest, WritesAreVisibleToAnotherConnectionAtOnce) {
    Journal j(path_);
    j.insert(record("seen", 1, 1));
    RawDb raw(path_);
    sqlite3_stmt* s = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(raw.db, "SELECT state FROM jobs WHERE id = 'seen'", -1, &s, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
    EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)), "accepted");
    sqlite3_finalize(s);
}

TEST(JobState, FinalStates) {
    for (const char* s : {"succeeded", "failed", "cancelled", "interrupted"}) EXPECT_TRUE(job_state::is_final(s)) << s;
    for (const char* s : {"accepted", "running", "", "bogus"}) EXPECT_FALSE(job_state::is_final(s)) << s;
}

}  // namespace
