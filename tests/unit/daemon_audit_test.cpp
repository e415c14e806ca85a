// The daemon's audit pieces without a daemon: signing keys on disk, the
// per-job writer fed by a fake supervisor (threads calling record()), and the
// evidence request handlers.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "audit/dsse.hpp"
#include "audit/encoding.hpp"
#include "audit/files.hpp"
#include "audit/summary.hpp"
#include "audit/verify.hpp"
#include "common/sha256.hpp"
#include "common/sys_error.hpp"
#include "daemon/audit_writer.hpp"
#include "daemon/evidence_requests.hpp"
#include "daemon/signing_key.hpp"
#include "protocol/messages.hpp"
#include "sandbox/determinism/wire.hpp"
#include "tests/support/temp_dir.hpp"

namespace hermetic::daemon {
namespace {

using nlohmann::json;
using test::TempDir;

mode_t mode_of(const std::string& p) {
    struct stat st{};
    EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
}

bool exists(const std::string& p) {
    struct stat st{};
    return ::lstat(p.c_str(), &st) == 0;
}

std::string slurp(const std::string& p) { return audit::read_file_if_exists(p, 1 << 30).value(); }

sandbox::Deviation deviation(int64_t t, pid_t vpid, const std::string& syscall, const std::string& cls,
                             sandbox::DeviationAction action, const std::string& value,
                             std::optional<std::string> real = std::nullopt) {
    sandbox::Deviation d;
    d.virtual_time_ns = t;
    d.real_pid = 50000 + vpid;
    d.virtual_pid = vpid;
    d.exe = "/usr/bin/make";
    d.syscall_nr = 1;
    d.syscall = syscall;
    d.args = "args";
    d.action = action;
    d.cls = cls;
    d.value = value;
    d.real_value = std::move(real);
    return d;
}

// A job directory like the job manager makes: <state>/jobs/<id>, 0700.
struct StateDir {
    TempDir tmp{"hermetic-audit"};
    std::string state = tmp / "state";
    StateDir() {
        ::mkdir(state.c_str(), 0700);
        ::mkdir((state + "/jobs").c_str(), 0700);
    }
    std::string job_dir(const std::string& id) const {
        std::string d = state + "/jobs/" + id;
        ::mkdir(d.c_str(), 0700);
        return d;
    }
};

JobEvidence evidence_for(const std::vector<protocol::OutputEntry>& outputs = {}) {
    JobEvidence ev;
    ev.argv = {"make"};
    ev.env = {"PATH=/usr/local/bin:/usr/bin:/bin"};
    ev.seed = 7;
    ev.epoch = 315532800;
    ev.limits = {1ull << 30, 4096, 0, 2, 60};
    ev.policy_name = "build";
    ev.policy_digest = sha256_hex("policy");
    ev.source_digest = tree_digest_of({});
    RootfsIdentityCache cache;
    ev.rootfs = cache.get("/", {});
    ev.outputs = outputs;
    ev.state = "succeeded";
    ev.exit_code = 0;
    ev.started_ms = 1714564800000;
    ev.finished_ms = 1714564801000;
    return ev;
}

audit::Bundle bundle_of(const std::string& dir) {
    audit::Bundle b;
    b.log = slurp(dir + "/audit.log");
    b.summary = audit::read_file_if_exists(dir + "/audit.summary.json", 1 << 30);
    b.attestation = audit::read_file_if_exists(dir + "/attestation.json", 1 << 30);
    return b;
}

// ---------------------------------------------------------------------------
// Signing keys

TEST(DaemonSigningKeys, GeneratedOnFirstStartPrivateAndReloaded) {
    StateDir s;
    std::string id;
    {
        SigningKeys keys(s.state);
        id = keys.current_key_id();
        EXPECT_TRUE(audit::is_sha256_hex(id));
    }
    std::string dir = s.state + "/keys";
    EXPECT_EQ(mode_of(dir), 0700u);
    EXPECT_EQ(mode_of(dir + "/" + id + ".key"), 0600u);
    EXPECT_EQ(mode_of(dir + "/current"), 0600u);
    EXPECT_EQ(mode_of(dir + "/" + id + ".pub"), 0644u);
    EXPECT_EQ(slurp(dir + "/current"), id + "\n");
    EXPECT_EQ(audit::PublicKey::from_pem(slurp(dir + "/" + id + ".pub")).key_id(), id);

    SigningKeys again(s.state);
    EXPECT_EQ(again.current_key_id(), id);
    auto pubs = again.public_keys();
    ASSERT_EQ(pubs.size(), 1u);
    EXPECT_TRUE(pubs[0].current);
}

TEST(DaemonSigningKeys, RotationKeepsOldJobsVerifiable) {
    StateDir s;
    SigningKeys keys(s.state);
    const std::string old_id = keys.current_key_id();

    // A job signed with the old key.
    std::string dir = s.job_dir("job-old");
    AuditWriter w(dir, {"job-old", audit::kDefaultMaxLogBytes, false});
    w.record(deviation(1, 2, "clock_gettime", "time", sandbox::DeviationAction::Virtualized, "0"));
    auto old_key = keys.current();
    w.finish(evidence_for(), *old_key);

    const std::string new_id = keys.rotate();
    EXPECT_NE(new_id, old_id);
    EXPECT_EQ(keys.current_key_id(), new_id);
    EXPECT_FALSE(exists(keys.dir() + "/" + old_id + ".key"));  // retired: can't sign any more
    EXPECT_TRUE(exists(keys.dir() + "/" + old_id + ".pub"));
    EXPECT_EQ(mode_of(keys.dir() + "/" + new_id + ".key"), 0600u);
    EXPECT_EQ(slurp(keys.dir() + "/current"), new_id + "\n");

    auto pubs = keys.public_keys();
    ASSERT_EQ(pubs.size(), 2u);
    audit::Keyring ring = keys.keyring();
    EXPECT_NE(ring.find(old_id), nullptr);
    EXPECT_NE(ring.find(new_id), nullptr);
    audit::VerifyReport r = audit::verify_bundle(bundle_of(dir), ring);
    EXPECT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.summary_key_id, old_id);

    // A restart picks the new key; the old job still verifies.
    SigningKeys restarted(s.state);
    EXPECT_EQ(restarted.current_key_id(), new_id);
    EXPECT_TRUE(audit::verify_bundle(bundle_of(dir), restarted.keyring()).ok);

    // The holder of the old key can still finish what it started; new jobs get the new key.
    EXPECT_EQ(old_key->key_id(), old_id);
}

TEST(DaemonSigningKeys, RefusesAKeyOthersCouldRead) {
    StateDir s;
    std::string id = SigningKeys(s.state).current_key_id();
    std::string key = s.state + "/keys/" + id + ".key";
    ASSERT_EQ(::chmod(key.c_str(), 0644), 0);
    try {
        SigningKeys k(s.state);
        FAIL() << "a 0644 private key was accepted";
    } catch (const std::exception& e) {
        EXPECT_NE(std::string(e.what()).find("must be 0600"), std::string::npos) << e.what();
    }
    ASSERT_EQ(::chmod(key.c_str(), 0600), 0);
    // A key file holding another key than its name says.
    audit::write_file_atomic(s.state + "/keys", id + ".key", audit::PrivateKey::generate().pem(), 0600);
    EXPECT_THROW(SigningKeys k(s.state), std::exception);
}

// ---------------------------------------------------------------------------
// The writer

TEST(DaemonAuditWriter, ConcurrentRecordsAreChainedSignedAndAttested) {
    StateDir s;
    SigningKeys keys(s.state);
    std::string dir = s.job_dir("job-w");
    AuditWriter w(dir, {"job-w", audit::kDefaultMaxLogBytes, true});
    EXPECT_EQ(mode_of(dir + "/audit.log"), 0600u);

    constexpr int kThreads = 4, kPerThread = 5000;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < kPerThread; ++i)
                w.record(deviation(i, 2 + t, t % 2 ? "getrandom" : "clock_gettime", t % 2 ? "random" : "time",
                                   sandbox::DeviationAction::Virtualized, "v" + std::to_string(i), "r"));
        });
    for (auto& th : threads) th.join();
    w.record(deviation(1, 9, "connect", "network", sandbox::DeviationAction::Denied, "-ENETUNREACH"));

    std::vector<protocol::OutputEntry> outputs = {
        {"hello", "file", 0755, 3, sha256_hex("ELF"), {}},
        {"doc", "dir", 0755, 0, {}, {}},
        {"doc/README", "file", 0644, 6, sha256_hex("readme"), {}},
        {"latest", "symlink", 0777, 5, sha256_hex("hello"), "hello"},
    };
    AuditFinish f = w.finish(evidence_for(outputs), *keys.current());
    EXPECT_EQ(f.events, kThreads * kPerThread + 1u);
    EXPECT_EQ(f.key_id, keys.current_key_id());

    for (const char* name : {"audit.log", "audit.summary.json", "attestation.json"}) EXPECT_EQ(mode_of(dir + "/" + name), 0600u) << name;
    audit::Bundle b = bundle_of(dir);
    audit::VerifyReport r = audit::verify_bundle(b, keys.keyring());
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.audit_digest, f.audit_digest);
    EXPECT_EQ(f.audit_digest, sha256_hex(audit::parse_envelope(*b.summary).payload));
    EXPECT_EQ(r.summary->by_syscall.at("clock_gettime"), 2u * kPerThread);
    EXPECT_EQ(r.summary->by_syscall.at("getrandom"), 2u * kPerThread);
    EXPECT_EQ(r.summary->network.size(), 1u);
    EXPECT_TRUE(r.summary->trace);
    EXPECT_EQ(r.summary->state, "succeeded");
    EXPECT_EQ(r.summary->policy_digest, sha256_hex("policy"));

    // Subjects: exactly the regular files, with their sha256.
    ASSERT_EQ(r.subjects.size(), 2u);
    EXPECT_EQ(r.subjects[0].name, "doc/README");
    EXPECT_EQ(r.subjects[0].sha256, sha256_hex("readme"));
    EXPECT_EQ(r.subjects[1].name, "hello");
    EXPECT_EQ(r.subjects[1].sha256, sha256_hex("ELF"));

    EXPECT_THROW(w.finish(evidence_for(), *keys.current()), AuditError);
}

TEST(DaemonAuditWriter, FlippedByteInTheStoredLogFailsAtThatRecord) {
    StateDir s;
    SigningKeys keys(s.state);
    std::string dir = s.job_dir("job-f");
    AuditWriter w(dir, {"job-f", audit::kDefaultMaxLogBytes, false});
    for (int i = 0; i < 50; ++i)
        w.record(deviation(i, 2, "clock_gettime", "time", sandbox::DeviationAction::Virtualized, std::to_string(i)));
    w.finish(evidence_for(), *keys.current());

    std::string log = slurp(dir + "/audit.log");
    size_t at = 0;
    for (int i = 0; i < 17; ++i) at = log.find('\n', at) + 1;  // record 17 starts here
    log[at + 90] ^= 0x01;
    audit::write_file_atomic(dir, "audit.log", log, 0600);
    audit::VerifyReport r = audit::verify_bundle(bundle_of(dir), keys.keyring());
    EXPECT_FALSE(r.ok);
    ASSERT_TRUE(r.bad_record);
    EXPECT_EQ(*r.bad_record, 17u) << r.error;
}

TEST(DaemonAuditWriter, EventFloodStaysBoundedWithExactCounts) {
    StateDir s;
    SigningKeys keys(s.state);
    std::string dir = s.job_dir("job-flood");
    constexpr uint64_t kBound = 64 << 10, kReads = 200'000;
    AuditWriter w(dir, {"job-flood", kBound, false});
    for (uint64_t i = 0; i < kReads; ++i)
        w.record(deviation(static_cast<int64_t>(i), 2, "clock_gettime", "time", sandbox::DeviationAction::Virtualized, "t"));
    AuditFinish f = w.finish(evidence_for(), *keys.current());
    struct stat st{};
    ASSERT_EQ(::stat((dir + "/audit.log").c_str(), &st), 0);
    EXPECT_LE(static_cast<uint64_t>(st.st_size), kBound);
    EXPECT_EQ(f.events, kReads);
    EXPECT_EQ(f.recorded + f.aggregated, kReads);
    audit::VerifyReport r = audit::verify_bundle(bundle_of(dir), keys.keyring());
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.summary->by_syscall.at("clock_gettime"), kReads);
}

TEST(DaemonAuditWriter, AWriteErrorIsReportedNotSwallowed) {
    StateDir s;
    SigningKeys keys(s.state);
    std::string dir = s.job_dir("job-e");
    AuditWriter w(dir, {"job-e", audit::kDefaultMaxLogBytes, false});
    // A full disk: the writer's descriptor of audit.log (found through /proc)
    // is replaced by /dev/full, so the next flush fails with ENOSPC.
    int devfull = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
    ASSERT_GE(devfull, 0);
    int found = -1;
    for (int fd = 3; fd < 1024; ++fd) {
        char link[64], target[4096];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = ::readlink(link, target, sizeof target - 1);
        if (n <= 0) continue;
        target[n] = 0;
        if (std::string(target) == dir + "/audit.log") found = fd;
    }
    ASSERT_GE(found, 0);
    ASSERT_EQ(::dup2(devfull, found), found);
    ::close(devfull);
    for (int i = 0; i < 2000; ++i)
        w.record(deviation(i, 2, "clock_gettime", "time", sandbox::DeviationAction::Virtualized, std::string(400, 'x')));
    try {
        w.finish(evidence_for(), *keys.current());
        FAIL() << "finish succeeded over a failed log";
    } catch (const AuditError& e) {
        EXPECT_NE(std::string(e.what()).find("could not be written"), std::string::npos) << e.what();
    }
}

TEST(DaemonAuditWriter, PumpFeedsTheSupervisorsWireStream) {
    StateDir s;
    SigningKeys keys(s.state);
    std::string dir = s.job_dir("job-p");
    AuditWriter w(dir, {"job-p", audit::kDefaultMaxLogBytes, true});
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd rd(p[0]), wr(p[1]);
    DeviationPump pump(std::move(rd), w);
    std::string wire;
    for (int i = 0; i < 1000; ++i)
        sandbox::determinism::encode_deviation(
            deviation(i, 2, "getrandom", "random", sandbox::DeviationAction::Virtualized, "v", "r"), wire);
    // Written in odd-sized pieces: records straddle reads.
    for (size_t pos = 0; pos < wire.size(); pos += 777)
        ASSERT_TRUE(::write(wr.get(), wire.data() + pos, std::min<size_t>(777, wire.size() - pos)) > 0);
    wr.reset();
    pump.join();
    EXPECT_EQ(pump.records(), 1000u);
    EXPECT_EQ(pump.error(), "");
    JobEvidence ev = evidence_for();
    ev.supervisor_events = 1000;
    AuditFinish f = w.finish(ev, *keys.current());
    EXPECT_EQ(f.events, 1000u);
    audit::VerifyReport r = audit::verify_bundle(bundle_of(dir), keys.keyring());
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_TRUE(r.summary->notes.empty());
    EXPECT_EQ(r.summary->by_class.at("random"), 1000u);

    // A stream cut inside a record is reported.
    std::string dir2 = s.job_dir("job-p2");
    AuditWriter w2(dir2, {"job-p2", audit::kDefaultMaxLogBytes, false});
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd rd2(p[0]), wr2(p[1]);
    DeviationPump pump2(std::move(rd2), w2);
    ASSERT_TRUE(::write(wr2.get(), wire.data(), 100) == 100);
    wr2.reset();
    pump2.join();
    EXPECT_NE(pump2.error(), "");
}

TEST(DaemonAuditWriter, RefusesToReuseAnExistingLog) {
    StateDir s;
    std::string dir = s.job_dir("job-r");
    AuditWriter first(dir, {"job-r", audit::kDefaultMaxLogBytes, false});
    EXPECT_THROW(AuditWriter(dir, {"job-r", audit::kDefaultMaxLogBytes, false}), SysError);
    EXPECT_THROW(AuditWriter(s.job_dir("job-q"), {"job-q", 100, false}), AuditError);
}

// ---------------------------------------------------------------------------
// Evidence requests

struct Replies {
    std::vector<json> controls;
    std::map<std::string, std::string> files;
    std::string current;
    EvidenceReply sink() {
        return {[this](const json& m) {
                    controls.push_back(m);
                    if (m["type"] == "evidence-file") {
                        current = m["name"];
                        files[current];
                    }
                },
                [this](std::string_view d) {
                    EXPECT_LE(d.size(), protocol::kMaxOutputChunk);
                    files[current] += d;
                }};
    }
};

struct EvidenceFixture : ::testing::Test {
    StateDir s;
    SigningKeys keys{s.state};
    std::map<std::string, JobOwner> owners;
    EvidenceContext ctx;

    void SetUp() override {
        ctx.state_dir = s.state;
        ctx.keys = &keys;
        ctx.owner_of = [this](const std::string& id) -> std::optional<JobOwner> {
            auto it = owners.find(id);
            if (it == owners.end()) return std::nullopt;
            return it->second;
        };
    }
    void make_job(const std::string& id, uid_t uid, const std::string& real, bool finish = true) {
        owners[id] = {uid, finish ? "succeeded" : "running"};
        AuditWriter w(s.job_dir(id), {id, audit::kDefaultMaxLogBytes, true});
        w.record(deviation(1, 2, "getrandom", "random", sandbox::DeviationAction::Virtualized, "aa", "r1"));
        w.record(deviation(2, 2, "clock_gettime", "time", sandbox::DeviationAction::Virtualized, "0", real));
        if (finish) w.finish(evidence_for({{"out.txt", "file", 0644, 2, sha256_hex("hi"), {}}}), *keys.current());
    }
    json msg(const char* type, const std::string& job = "") {
        json m = protocol::make_message(type);
        if (!job.empty()) m["job"] = job;
        return m;
    }
    std::string code_of(uid_t uid, const json& m) {
        Replies r;
        try {
            handle_evidence_request(ctx, uid, m, r.sink());
        } catch (const EvidenceError& e) {
            return e.code();
        }
        return "ok";
    }
};

TEST_F(EvidenceFixture, UsersSeeOnlyTheirOwnJobsAndRootSeesAll) {
    make_job("job-alice", 1001, "t1");
    for (const char* type : {"audit", "audit-export", "attest"}) {
        EXPECT_EQ(code_of(1001, msg(type, "job-alice")), "ok") << type;
        EXPECT_EQ(code_of(0, msg(type, "job-alice")), "ok") << type;
        EXPECT_EQ(code_of(1002, msg(type, "job-alice")), "unauthorized") << type;
        EXPECT_EQ(code_of(1001, msg(type, "job-nobody")), "not-found") << type;
        EXPECT_EQ(code_of(1001, msg(type, "../../etc")), "bad-request") << type;
        EXPECT_EQ(code_of(1001, msg(type)), "bad-request") << type;
    }
    make_job("job-bob", 1002, "t2");
    json d = msg("audit-diff");
    d["job1"] = "job-alice";
    d["job2"] = "job-bob";
    EXPECT_EQ(code_of(1001, d), "unauthorized");
    EXPECT_EQ(code_of(0, d), "ok");
    EXPECT_EQ(code_of(1002, msg("pubkey")), "ok");
    // Known to the journal but never started: no evidence.
    owners["job-early"] = {1001, "failed"};
    EXPECT_EQ(code_of(1001, msg("audit", "job-early")), "not-found");
}

TEST_F(EvidenceFixture, AuditSummaryJsonStreamAndExport) {
    make_job("job-a", 1001, "t1");
    Replies r;
    handle_evidence_request(ctx, 1001, msg("audit", "job-a"), r.sink());
    ASSERT_EQ(r.controls.size(), 1u);
    const json& a = r.controls[0];
    EXPECT_EQ(a["type"], "audit");
    EXPECT_TRUE(a["complete"]);
    EXPECT_EQ(a["summary"]["events"]["total"], 2);
    EXPECT_EQ(a["summary"]["by_class"]["random"], 1);
    EXPECT_TRUE(audit::is_sha256_hex(a["audit_digest"].get<std::string>()));
    EXPECT_EQ(a["records"], 4);  // start, two events, end

    Replies j;
    json m = msg("audit", "job-a");
    m["json"] = true;
    handle_evidence_request(ctx, 1001, m, j.sink());
    EXPECT_EQ(j.files["audit.log"], slurp(s.state + "/jobs/job-a/audit.log"));
    EXPECT_EQ(j.controls.back()["type"], "evidence-end");
    EXPECT_EQ(j.controls[0]["sha256"], sha256_hex(j.files["audit.log"]));

    Replies e;
    handle_evidence_request(ctx, 1001, msg("audit-export", "job-a"), e.sink());
    ASSERT_EQ(e.files.size(), 3u);
    audit::Bundle b{e.files["audit.log"], e.files["audit.summary.json"], e.files["attestation.json"]};
    audit::Keyring ring;
    for (const auto& k : e.controls.back()["public_keys"]) ring.add(audit::PublicKey::from_pem(k["pem"].get<std::string>()));
    audit::VerifyReport v = audit::verify_bundle(b, ring);
    EXPECT_TRUE(v.ok) << v.error;
    ASSERT_EQ(v.subjects.size(), 1u);
    EXPECT_EQ(v.subjects[0].name, "out.txt");

    Replies t;
    handle_evidence_request(ctx, 1001, msg("attest", "job-a"), t.sink());
    EXPECT_EQ(t.files["attestation.json"], slurp(s.state + "/jobs/job-a/attestation.json"));

    Replies p;
    handle_evidence_request(ctx, 1001, msg("pubkey"), p.sink());
    EXPECT_EQ(p.controls[0]["current"], keys.current_key_id());
    EXPECT_EQ(p.controls[0]["keys"].size(), 1u);
}

TEST_F(EvidenceFixture, RunningJobHasALogButNoSummaryOrAttestation) {
    make_job("job-run", 1001, "t", /*finish=*/false);
    Replies r;
    handle_evidence_request(ctx, 1001, msg("audit", "job-run"), r.sink());
    EXPECT_FALSE(r.controls[0]["complete"]);
    EXPECT_TRUE(r.controls[0]["summary"].is_null());
    EXPECT_EQ(code_of(1001, msg("attest", "job-run")), "not-found");
}

TEST_F(EvidenceFixture, DiffNamesTheDifferingSyscallAndRefusesTamperedLogs) {
    make_job("job-1", 1001, "1712345678.1");
    make_job("job-2", 1001, "1712345679.9");
    Replies r;
    json m = msg("audit-diff");
    m["job1"] = "job-1";
    m["job2"] = "job-2";
    handle_evidence_request(ctx, 1001, m, r.sink());
    const json& d = r.controls[0]["diff"];
    EXPECT_FALSE(d["identical"]);
    EXPECT_EQ(d["differences"][0]["syscall"], "clock_gettime");
    EXPECT_EQ(d["differences"][0]["kind"], "real");

    std::string p = s.state + "/jobs/job-2/audit.log";
    std::string log = slurp(p);
    log[log.find("clock_gettime")] = 'k';
    audit::write_file_atomic(s.state + "/jobs/job-2", "audit.log", log, 0600);
    EXPECT_EQ(code_of(1001, m), "conflict");
}

TEST_F(EvidenceFixture, ServesFramesOnASocket) {
    make_job("job-s", 1001, "t");
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    UniqueFd a(sv[0]), b(sv[1]);
    json m = msg("audit", "job-s");
    m["json"] = true;
    std::thread server([&] { serve_evidence_request(a.get(), ctx, 1001, m); a.reset(); });
    auto f1 = protocol::read_frame(b.get());
    ASSERT_TRUE(f1);
    EXPECT_EQ(protocol::parse_message(f1->payload)["type"], "evidence-file");
    std::string data;
    for (;;) {
        auto f = protocol::read_frame(b.get());
        ASSERT_TRUE(f);
        if (f->kind == protocol::FrameKind::Control) {
            EXPECT_EQ(protocol::parse_message(f->payload)["type"], "evidence-end");
            break;
        }
        data += f->payload;
    }
    server.join();
    EXPECT_EQ(data, slurp(s.state + "/jobs/job-s/audit.log"));

    // Errors arrive as error messages.
    int sv2[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv2), 0);
    UniqueFd c(sv2[0]), d(sv2[1]);
    serve_evidence_request(c.get(), ctx, 4242, msg("audit", "job-s"));
    auto err = protocol::read_frame(d.get());
    ASSERT_TRUE(err);
    json e = protocol::parse_message(err->payload);
    EXPECT_EQ(e["type"], "error");
    EXPECT_EQ(e["code"], "unauthorized");
}

}  // namespace
}  // namespace hermetic::daemon
