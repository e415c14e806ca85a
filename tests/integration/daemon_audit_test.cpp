// Audit evidence end to end, through a real hermeticd and the real hermeticctl:
// the events of a job, tampering found by --verify, the event flood bound, the
// attestation against --out, audit diff of two --trace jobs, who may see what,
// offline verification and key rotation.
//
// WAITING FOR WIRING: needs AuditWriter in the job flow, serve_evidence_request
// in the session, the audit/attest/pubkey commands in hermeticctl's main.cpp and
// an `audit-max-bytes` daemon option (see the hand-over notes). Until then every
// test skips itself (it asks the daemon for its public key first), so the suite
// stays green; once wired they run.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <set>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/dsse.hpp"
#include "audit/files.hpp"
#include "audit/summary.hpp"
#include "common/sha256.hpp"
#include "daemon/signing_key.hpp"
#include "sandbox/determinism/config.hpp"
#include "tests/support/test_daemon.hpp"

using namespace hermetic::test;
using nlohmann::json;
namespace audit = hermetic::audit;

namespace {

constexpr uint64_t kBound = 256 << 10;

std::map<std::string, std::string> hash_tree(const std::string& dir, const std::string& rel = "") {
    std::map<std::string, std::string> out;
    DIR* d = ::opendir((dir + (rel.empty() ? "" : "/" + rel)).c_str());
    if (!d) return out;
    while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n == "." || n == "..") continue;
        std::string r = rel.empty() ? n : rel + "/" + n;
        struct stat st{};
        ::lstat((dir + "/" + r).c_str(), &st);
        if (S_ISDIR(st.st_mode)) out.merge(hash_tree(dir, r));
        else if (S_ISREG(st.st_mode)) out[r] = hermetic::sha256_hex(read_file(dir + "/" + r));
    }
    ::closedir(d);
    return out;
}

class DaemonAudit : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        try {
            daemon_ = std::make_unique<TestDaemon>(TestDaemonOptions{{"audit-max-bytes = " + std::to_string(kBound)}});
        } catch (const std::exception& e) {
            std::string why = e.what();
            if (why.find("audit-max-bytes") == std::string::npos) throw;
            skip_ = "waiting for wiring: hermeticd has no audit-max-bytes option";
            return;
        }
        auto r = daemon_->ctl({"pubkey"});
        if (r.status != 0 && (r.err.find("unknown command") != std::string::npos ||
                              r.err.find("unknown request type") != std::string::npos))
            skip_ = "waiting for wiring: " + r.err.substr(0, r.err.find('\n'));
    }
    static void TearDownTestSuite() { daemon_.reset(); }

    void SetUp() override {
        if (!skip_.empty()) GTEST_SKIP() << skip_;
        src_ = std::make_unique<TempDir>("hermetic-audit-src");
        stage_probes(src_->path(), {"det_time", "det_random", "det_fs", "connect"});
    }

    // Runs a job as the test user; returns its id.
    std::string job(const std::string& script, const std::vector<std::string>& opts = {}) {
        auto r = daemon_->run(src_->path(), {"/bin/sh", "-c", script}, opts, as_test_user());
        EXPECT_EQ(r.status, 0) << r.describe();
        std::string id = job_id_of(r);
        EXPECT_NE(id, "") << r.describe();
        return id;
    }
    ProcessResult ctl(const std::vector<std::string>& args) const { return daemon_->ctl(args, as_test_user()); }
    std::string job_dir(const std::string& id) const { return daemon_->state_dir() + "/jobs/" + id; }

    static std::unique_ptr<TestDaemon> daemon_;
    static std::string skip_;
    std::unique_ptr<TempDir> src_;
};

std::unique_ptr<TestDaemon> DaemonAudit::daemon_;
std::string DaemonAudit::skip_;

TEST_F(DaemonAudit, ClocksRandomADirectoryAndASocketProduceTheExpectedEvents) {
    std::string id = job("./det_time all; ./det_random; ./det_fs list /build; ./connect 192.0.2.1 80");
    auto r = ctl({"audit", id, "--json"});
    ASSERT_EQ(r.status, 0) << r.describe();
    std::map<std::string, uint64_t> by_class;
    std::set<std::string> syscalls, served_reads;
    for (const auto& rec : json_lines(r.out)) {
        if (rec["kind"] != "event") continue;
        ++by_class[rec["class"].get<std::string>()];
        syscalls.insert(rec["syscall"].get<std::string>());
        if (rec["syscall"] == "read") served_reads.insert(rec["args"].get<std::string>());
        EXPECT_EQ(rec["job"], id);
    }
    EXPECT_GT(by_class["time"], 0u) << r.out.substr(0, 2000);
    EXPECT_TRUE(syscalls.count("clock_gettime")) << r.out.substr(0, 2000);
    EXPECT_TRUE(syscalls.count("getrandom"));
    EXPECT_TRUE(syscalls.count("getdents64"));
    EXPECT_TRUE(syscalls.count("socket") || syscalls.count("connect")) << "no network attempt recorded";
    // Reads of the served files (det_random reads /dev/urandom, the uuid and
    // boot_id files) are events too, not only counts in the summary.
    EXPECT_TRUE(served_reads.count("/dev/urandom")) << r.out.substr(0, 2000);
    EXPECT_TRUE(served_reads.count("/proc/sys/kernel/random/uuid")) << r.out.substr(0, 2000);

    auto human = ctl({"audit", id});
    ASSERT_EQ(human.status, 0) << human.describe();
    EXPECT_NE(human.out.find("deviations"), std::string::npos) << human.out;
    // Everything the supervisor counted reached the log.
    EXPECT_EQ(human.out.find("lost on the way"), std::string::npos) << human.out;
    EXPECT_NE(human.out.find("network:"), std::string::npos) << human.out;
    EXPECT_EQ(human.out.find("network:     no attempts"), std::string::npos) << human.out;
    auto v = ctl({"audit", id, "--verify"});
    EXPECT_EQ(v.status, 0) << v.describe();

    // Never reachable from a sandbox: the job's own state dir is not mounted.
    struct stat st{};
    ASSERT_EQ(::stat((job_dir(id) + "/audit.log").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(DaemonAudit, FlippingOneByteOfTheStoredLogFailsVerifyAtThatRecord) {
    std::string id = job("./det_time all; ./det_random");
    std::string path = job_dir(id) + "/audit.log";
    std::string log = read_file(path);
    size_t at = 0;
    for (int i = 0; i < 3; ++i) at = log.find('\n', at) + 1;  // record 3
    ASSERT_LT(at + 100, log.size());
    log[at + 100] ^= 0x01;
    audit::write_file_atomic(job_dir(id), "audit.log", log, 0600);
    auto v = ctl({"audit", id, "--verify"});
    EXPECT_EQ(v.status, 1) << v.describe();
    EXPECT_NE(v.err.find("audit.log: record 3:"), std::string::npos) << v.err;
}

TEST_F(DaemonAudit, ReplacingTheSummaryFailsTheSignature) {
    std::string id = job("./det_time all");
    std::string dir = job_dir(id);
    audit::Envelope env = audit::parse_envelope(read_file(dir + "/audit.summary.json"));
    audit::Summary s = audit::summary_from_json(json::parse(env.payload));
    s.events += 1;  // a "better" summary, signed by someone else
    audit::write_file_atomic(dir, "audit.summary.json",
                             audit::serialize_envelope(audit::sign_summary(s, audit::PrivateKey::generate())), 0600);
    auto v = ctl({"audit", id, "--verify"});
    EXPECT_EQ(v.status, 1) << v.describe();
    EXPECT_NE(v.err.find("audit.summary.json: signature does not verify"), std::string::npos) << v.err;
}

TEST_F(DaemonAudit, AMillionClockReadsStayWithinTheBoundWithExactCounts) {
    std::string id = job("python3 -c 'import time\nfor _ in range(1000000): time.time()'", {"--timeout", "600"});
    struct stat st{};
    ASSERT_EQ(::stat((job_dir(id) + "/audit.log").c_str(), &st), 0);
    EXPECT_LE(static_cast<uint64_t>(st.st_size), kBound);
    auto v = ctl({"audit", id, "--verify"});
    ASSERT_EQ(v.status, 0) << v.describe();
    json s = json::parse(audit::parse_envelope(read_file(job_dir(id) + "/audit.summary.json")).payload);
    uint64_t clock_reads = s["by_syscall"].value("clock_gettime", uint64_t{0}) + s["by_syscall"].value("gettimeofday", uint64_t{0}) +
                           s["by_syscall"].value("time", uint64_t{0});
    EXPECT_GE(clock_reads, 1000000u) << s.dump();
    EXPECT_EQ(s["events"]["total"], s["events"]["recorded"].get<uint64_t>() + s["events"]["aggregated"].get<uint64_t>());
    EXPECT_GT(s["events"]["aggregated"].get<uint64_t>(), 900000u);
    // Exact: the supervisor's own count is what the log accounts for.
    EXPECT_EQ(s["supervisor_events"], s["events"]["total"]) << s.dump();
    EXPECT_TRUE(s["notes"].empty()) << s.dump();
}

// The nanoseconds between two back-to-back realtime reads det_time makes (the raw
// syscall, then the vDSO), as the build saw them.
static int64_t realtime_gap_ns(const std::string& det_time_out) {
    auto value = [&](const std::string& label) -> int64_t {
        size_t at = det_time_out.find("\n" + label + " ");
        if (at == std::string::npos) return int64_t{-1};
        size_t sec_end = det_time_out.find('.', at);
        int64_t sec = std::stoll(det_time_out.substr(at + label.size() + 2, sec_end - at - label.size() - 2));
        return sec * 1'000'000'000 + std::stoll(det_time_out.substr(sec_end + 1, 9));
    };
    int64_t a = value("raw-syscall realtime"), b = value("vdso realtime");
    return a < 0 || b < 0 ? -1 : b - a;
}

// A job that fails before its source is read (a file the caller can't read)
// still leaves sealed evidence: the log verifies, the attestation names the
// source as not read.
TEST_F(DaemonAudit, AJobThatFailedBeforeReadingItsSourceIsStillSealed) {
    TempDir src("hermetic-audit-unreadable");
    ASSERT_EQ(::chmod(src.path().c_str(), 0755), 0);
    std::string secret = src.path() + "/secret";
    { std::ofstream(secret) << "root only"; }
    ASSERT_EQ(::chmod(secret.c_str(), 0600), 0);  // owned by root: the test user can't read it
    auto r = daemon_->run(src.path(), {"/bin/true"}, {}, as_test_user());
    ASSERT_NE(r.status, 0) << r.describe();
    EXPECT_NE(r.err.find("copying the source failed"), std::string::npos) << r.describe();
    std::string id = job_id_of(r);
    ASSERT_NE(id, "") << r.describe();
    auto v = ctl({"audit", id, "--verify"});
    EXPECT_EQ(v.status, 0) << v.describe();
    auto a = ctl({"attest", id});
    ASSERT_EQ(a.status, 0) << a.describe();
    json st = json::parse(audit::parse_envelope(a.out).payload);
    const json& source = st["predicate"]["buildDefinition"]["resolvedDependencies"][0];
    EXPECT_EQ(source["name"], "source") << st.dump();
    EXPECT_FALSE(source.contains("digest")) << st.dump();
}

TEST_F(DaemonAudit, ClockStepSetsHowFarTheClockMovesPerReadAndTheAttestationSaysSo) {
    auto plain = daemon_->run(src_->path(), {"./det_time", "all"}, {}, as_test_user());
    ASSERT_EQ(plain.status, 0) << plain.describe();
    int64_t base_gap = realtime_gap_ns(plain.out);
    ASSERT_GT(base_gap, 0) << plain.out;

    // A step 100 times the default: the same reads, 100 times the gap.
    auto big = daemon_->run(src_->path(), {"./det_time", "all"}, {"--clock-step", "1000000"}, as_test_user());
    ASSERT_EQ(big.status, 0) << big.describe();
    EXPECT_EQ(realtime_gap_ns(big.out), base_gap * (1000000 / hermetic::sandbox::determinism::kDefaultClockStepNs)) << plain.out << "\n---\n" << big.out;

    auto a = ctl({"attest", job_id_of(big)});
    ASSERT_EQ(a.status, 0) << a.describe();
    json st = json::parse(audit::parse_envelope(a.out).payload);
    EXPECT_EQ(st["predicate"]["buildDefinition"]["externalParameters"]["clock_step_ns"], 1000000) << st.dump();

    for (const char* bad : {"0", "-1", "1000000001"}) {
        auto r = daemon_->run(src_->path(), {"/bin/true"}, {"--clock-step", bad}, as_test_user());
        EXPECT_EQ(r.status, 125) << bad << "\n" << r.describe();
        EXPECT_NE(r.err.find("--clock-step must be between 1 and 1000000000 ns"), std::string::npos) << r.describe();
    }
}

TEST_F(DaemonAudit, AttestationVerifiesWithThePublicKeyAndItsSubjectsAreTheOutFiles) {
    TempDir parent("hermetic-audit-out");
    stage_probes(parent.path(), {});
    std::string out = parent / "out";
    std::string id = job("mkdir -p /out/sub && echo hello > /out/hello && echo notes > /out/sub/notes && ln -s hello /out/link",
                         {"--out", out});
    auto a = ctl({"attest", id});
    ASSERT_EQ(a.status, 0) << a.describe();
    auto k = ctl({"pubkey"});
    ASSERT_EQ(k.status, 0) << k.describe();
    audit::Keyring ring;
    ring.add_pem_bundle(k.out);
    audit::Envelope env = audit::parse_envelope(a.out);
    ASSERT_TRUE(audit::verify_envelope(env, audit::kInTotoPayloadType, ring).ok);
    json st = json::parse(env.payload);
    std::map<std::string, std::string> subjects;
    for (const auto& s : st["subject"]) subjects[s["name"]] = s["digest"]["sha256"];
    EXPECT_EQ(subjects, hash_tree(out));
    EXPECT_EQ(st["predicate"]["runDetails"]["metadata"]["invocationId"], id);

    // The same offline, with no daemon.
    TempDir ev("hermetic-audit-export");
    stage_probes(ev.path(), {});
    write_file(ev / "hermeticd.pub", k.out);
    ::chmod((ev / "hermeticd.pub").c_str(), 0644);
    auto x = ctl({"audit", "export", id, "--dir", ev.path()});
    ASSERT_EQ(x.status, 0) << x.describe();
    auto off = run_process({hermeticctl_path(), "--socket", "/nonexistent", "audit", "verify", ev / (id + ".audit.log"),
                            "--key", ev / "hermeticd.pub", "--out", out},
                           as_test_user());
    EXPECT_EQ(off.status, 0) << off.describe();
    write_file(out + "/hello", "changed\n");
    off = run_process({hermeticctl_path(), "audit", "verify", ev.path(), "--key", ev / "hermeticd.pub", "--out", out},
                      as_test_user());
    EXPECT_EQ(off.status, 1) << off.describe();
    EXPECT_NE(off.err.find("subject hello: sha256 differs"), std::string::npos) << off.err;
}

TEST_F(DaemonAudit, DiffOfTwoTracedJobsPointsAtTheSyscallThatDiffered) {
    // det_time prints the clock: a plain build's output would differ run to run.
    std::string a = job("sleep 1; ./det_time all", {"--trace"});
    std::string b = job("sleep 1; ./det_time all", {"--trace"});
    auto d = ctl({"audit", "diff", a, b});
    EXPECT_EQ(d.status, 1) << d.describe();
    EXPECT_NE(d.out.find("first difference"), std::string::npos) << d.out;
    EXPECT_NE(d.out.find("real values differ"), std::string::npos) << d.out;
    auto j = ctl({"audit", "diff", a, b, "--json"});
    json diff = json::parse(j.out);
    ASSERT_FALSE(diff["differences"].empty());
    const json& first = diff["differences"][0];
    EXPECT_EQ(first["kind"], "real") << first.dump();
    EXPECT_EQ(first["class"], "time") << first.dump();
    std::string sc = first["syscall"];
    EXPECT_TRUE(sc == "clock_gettime" || sc == "gettimeofday" || sc == "time" || sc == "rdtsc") << sc;
    EXPECT_EQ(first["value1"], first["value2"]);  // the builds themselves saw the same
}

TEST_F(DaemonAudit, UsersSeeOnlyTheirOwnJobsRootSeesAll) {
    auto r = daemon_->run(src_->path(), {"/bin/true"});  // root's job
    ASSERT_EQ(r.status, 0) << r.describe();
    std::string root_job = job_id_of(r);
    auto mine = ctl({"audit", root_job});
    EXPECT_EQ(mine.status, 125) << mine.describe();
    EXPECT_NE(mine.err.find("belongs to another user"), std::string::npos) << mine.err;
    std::string user_job = job("true");
    auto as_root = daemon_->ctl({"audit", user_job, "--verify"});
    EXPECT_EQ(as_root.status, 0) << as_root.describe();
    EXPECT_EQ(ctl({"audit", "no-such-job"}).status, 125);
}

TEST_F(DaemonAudit, KeyRotationKeepsOldJobsVerifiable) {
    std::string old_job = job("./det_random");
    std::string old_key = ctl({"pubkey"}).out;
    daemon_->stop();
    {
        hermetic::daemon::SigningKeys keys(daemon_->state_dir());
        keys.rotate();
    }
    daemon_->start();
    std::string new_key = ctl({"pubkey"}).out;
    EXPECT_NE(new_key, old_key);
    auto all = ctl({"pubkey", "--all"});
    EXPECT_NE(all.out.find(old_key), std::string::npos);
    EXPECT_EQ(ctl({"audit", old_job, "--verify"}).status, 0);
    std::string new_job = job("./det_random");
    EXPECT_EQ(ctl({"audit", new_job, "--verify"}).status, 0);
}

// audit-events = counts (what bench/audit_overhead measures the event log
// against): nothing in the chain, and the signed summary says so with the
// supervisor's counts instead of calling the difference a loss; it verifies.
TEST(DaemonAuditCounts, CountsOnlyRecordsNoEventsAndTheSignedSummarySaysSo) {
    TestDaemon d({.config_lines = {"audit-events = counts"}});
    TempDir src("hermetic-audit-counts");
    stage_probes(src.path(), {"det_time", "det_random"});
    auto r = d.run(src.path(), {"/bin/sh", "-c", "./det_time all; ./det_random"}, {}, as_test_user());
    ASSERT_EQ(r.status, 0) << r.describe();
    std::string id = job_id_of(r);
    auto events = d.ctl({"audit", id, "--json"}, as_test_user());
    ASSERT_EQ(events.status, 0) << events.describe();
    for (const auto& rec : json_lines(events.out)) EXPECT_NE(rec["kind"], "event") << rec.dump();
    auto human = d.ctl({"audit", id}, as_test_user());
    ASSERT_EQ(human.status, 0) << human.describe();
    EXPECT_NE(human.out.find("audit-events = counts: the supervisor counted"), std::string::npos) << human.out;
    EXPECT_NE(human.out.find("time "), std::string::npos) << human.out;
    EXPECT_NE(human.out.find("random "), std::string::npos) << human.out;
    EXPECT_EQ(human.out.find("lost on the way"), std::string::npos) << human.out;
    EXPECT_EQ(d.ctl({"audit", id, "--verify"}, as_test_user()).status, 0);
}

}  // namespace
