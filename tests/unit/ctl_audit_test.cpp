// hermeticctl's evidence commands without a daemon: offline verification of an
// export, the formatting, and the client side of the evidence stream against a
// stand-in server speaking the daemon's stream format.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <iostream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "audit/attestation.hpp"
#include "audit/chain.hpp"
#include "audit/dsse.hpp"
#include "audit/summary.hpp"
#include "common/sha256.hpp"
#include "ctl/audit_command.hpp"
#include "ctl/client.hpp"
#include "protocol/messages.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/unit/audit_test_util.hpp"

namespace hermetic::ctl {
namespace {

using nlohmann::json;
using test::read_file;
using test::TempDir;
using test::write_file;

struct Export {
    std::string log, summary, attestation;
};

// The evidence the daemon would store for a job with two output files.
Export make_export(const audit::PrivateKey& key, const std::string& job) {
    audit::ChainResult res;
    audit::Tally tally;
    Export e;
    e.log = audit::testing::small_log(job, true, &res, &tally);
    audit::Summary s = audit::make_summary(audit::ChainOptions{job, audit::kDefaultMaxLogBytes, true}, res, tally,
                                           audit::SummaryFacts{sha256_hex("p"), 1714564800000, "succeeded", 0, {}, {}, {}, {}});
    audit::Envelope se = audit::sign_summary(s, key);
    e.summary = audit::serialize_envelope(se);
    audit::ProvenanceInputs in;
    in.job = job;
    in.argv = {"make"};
    in.policy_name = "build";
    in.policy_digest = sha256_hex("p");
    in.source_digest = sha256_hex("src");
    in.rootfs.digest = sha256_hex("root");
    in.subjects = {{"hello", sha256_hex("ELF\n")}, {"sub/notes.txt", sha256_hex("notes\n")}};
    in.log_sha256 = res.file_sha256;
    in.chain_head = res.head;
    in.audit_digest = audit::audit_digest(se);
    e.attestation = audit::serialize_envelope(audit::sign_attestation(in, key));
    return e;
}

void write_export(const std::string& dir, const std::string& job, const Export& e) {
    ExportPaths p = export_paths(dir, job);
    write_file(p.log, e.log);
    write_file(p.summary, e.summary);
    write_file(p.attestation, e.attestation);
}

struct Files {
    TempDir tmp{"hermetic-ctl-audit"};
    audit::PrivateKey key = audit::PrivateKey::generate();
    std::string key_file = tmp / "hermeticd.pub";
    Files() { write_file(key_file, key.public_key().pem()); }
};

int verify(const std::string& file, const std::string& key, std::optional<std::string> out, std::string* err_out = nullptr) {
    std::ostringstream out_s, err_s;
    int rc = verify_export(file, key, out, out_s, err_s);
    if (err_out) *err_out = err_s.str();
    return rc;
}

TEST(CtlAuditVerify, OfflineExportVerifiesFromAnyOfItsFilesOrItsDirectory) {
    Files f;
    write_export(f.tmp.path(), "job-1", make_export(f.key, "job-1"));
    ExportPaths p = export_paths(f.tmp.path(), "job-1");
    std::ostringstream out, err;
    EXPECT_EQ(verify_export(p.log, f.key_file, {}, out, err), 0) << err.str();
    EXPECT_NE(out.str().find("job job-1: verified: 7 records"), std::string::npos) << out.str();
    EXPECT_EQ(verify(p.summary, f.key_file, {}), 0);
    EXPECT_EQ(verify(p.attestation, f.key_file, {}), 0);
    EXPECT_EQ(verify(f.tmp.path(), f.key_file, {}), 0);
    EXPECT_EQ(locate_export(p.summary).job, "job-1");
    EXPECT_THROW(locate_export(f.key_file), CtlError);
}

TEST(CtlAuditVerify, FlippedLogByteFailsNamingTheRecord) {
    Files f;
    Export e = make_export(f.key, "job-1");
    size_t at = 0;
    for (int i = 0; i < 4; ++i) at = e.log.find('\n', at) + 1;
    e.log[at + 77] ^= 0x10;
    write_export(f.tmp.path(), "job-1", e);
    std::string err;
    EXPECT_EQ(verify(export_paths(f.tmp.path(), "job-1").log, f.key_file, {}, &err), 1);
    EXPECT_NE(err.find("audit.log: record 4:"), std::string::npos) << err;
}

TEST(CtlAuditVerify, ReplacedSummaryOrWrongKeyFailsTheSignature) {
    Files f;
    Export e = make_export(f.key, "job-1");
    Export forged = make_export(audit::PrivateKey::generate(), "job-1");
    e.summary = forged.summary;
    write_export(f.tmp.path(), "job-1", e);
    std::string err;
    EXPECT_EQ(verify(f.tmp.path(), f.key_file, {}, &err), 1);
    EXPECT_NE(err.find("audit.summary.json: signature does not verify"), std::string::npos) << err;

    TempDir other;
    write_export(other.path(), "job-2", make_export(f.key, "job-2"));
    write_file(other / "wrong.pub", audit::PrivateKey::generate().public_key().pem());
    EXPECT_EQ(verify(other.path(), other / "wrong.pub", {}, &err), 1);
    // Rotation: a key file holding old and new keys verifies jobs of both.
    write_file(other / "both.pub", audit::PrivateKey::generate().public_key().pem() + f.key.public_key().pem());
    EXPECT_EQ(verify(other.path(), other / "both.pub", {}, &err), 0) << err;
}

TEST(CtlAuditVerify, SubjectsMustBeExactlyTheOutputFiles) {
    Files f;
    write_export(f.tmp.path(), "job-1", make_export(f.key, "job-1"));
    TempDir out;
    write_file(out / "hello", "ELF\n");
    ::mkdir((out / "sub").c_str(), 0755);
    write_file(out / "sub/notes.txt", "notes\n");
    ASSERT_EQ(::symlink("hello", (out / "latest").c_str()), 0);  // not a subject: symlinks aren't files
    std::string err;
    EXPECT_EQ(verify(f.tmp.path(), f.key_file, out.path(), &err), 0) << err;

    write_file(out / "sub/notes.txt", "changed\n");
    EXPECT_EQ(verify(f.tmp.path(), f.key_file, out.path(), &err), 1);
    EXPECT_NE(err.find("subject sub/notes.txt: sha256 differs"), std::string::npos) << err;
    write_file(out / "sub/notes.txt", "notes\n");
    write_file(out / "extra", "x");
    EXPECT_EQ(verify(f.tmp.path(), f.key_file, out.path(), &err), 1);
    EXPECT_NE(err.find("extra: not a subject"), std::string::npos) << err;
}

TEST(CtlAuditFormat, HumanSummaryAndDiff) {
    json summary = json::parse(audit::parse_envelope(make_export(audit::PrivateKey::generate(), "job-1").summary).payload);
    json reply{{"type", "audit"}, {"job", "job-1"}, {"complete", true}, {"summary", summary}, {"audit_digest", "abc"}};
    std::string text = format_audit(reply);
    EXPECT_NE(text.find("job job-1: 5 deviations (succeeded, exit 0), traced"), std::string::npos) << text;
    EXPECT_NE(text.find("by syscall:  clock_gettime 2"), std::string::npos) << text;
    EXPECT_NE(text.find("socket(AF_INET, SOCK_STREAM, 0) denied x1"), std::string::npos) << text;
    EXPECT_NE(text.find("audit digest: abc"), std::string::npos) << text;

    json incomplete{{"type", "audit"}, {"job", "job-2"}, {"complete", false}, {"summary", nullptr}, {"records", 12},
                    {"state", "running"}};
    EXPECT_NE(format_audit(incomplete).find("12 audit records so far, no summary yet (job running)"), std::string::npos);

    json diff{{"job1", "a"},
              {"job2", "b"},
              {"identical", false},
              {"compared", 5},
              {"total_differences", 1},
              {"by_kind", {{"real", 1}}},
              {"by_syscall", {{"clock_gettime", 1}}},
              {"differences",
               {{{"kind", "real"}, {"vpid", 2}, {"index", 1}, {"n1", 2}, {"n2", 2}, {"exe", "/usr/bin/date"},
                 {"syscall", "clock_gettime"}, {"nr", 228}, {"args1", "CLOCK_REALTIME"}, {"args2", "CLOCK_REALTIME"},
                 {"value1", "315532800.0"}, {"value2", "315532800.0"}, {"real1", "1712345678.1"},
                 {"real2", "1712345699.9"}, {"context", {{{"n", 1}, {"syscall", "getrandom"}, {"args", "16"}, {"value", "aa"}}}}}}},
              {"processes_only_in_job1", json::array()},
              {"processes_only_in_job2", json::array()},
              {"notes", json::array()}};
    std::string d = format_diff(diff);
    EXPECT_NE(d.find("first difference: process 2 (/usr/bin/date), its deviation #2"), std::string::npos) << d;
    EXPECT_NE(d.find("clock_gettime(CLOCK_REALTIME)"), std::string::npos) << d;
    EXPECT_NE(d.find("real values differ: \"1712345678.1\" vs \"1712345699.9\""), std::string::npos) << d;
    EXPECT_NE(d.find("getrandom(16) = aa"), std::string::npos) << d;
}

// ---------------------------------------------------------------------------
// A stand-in daemon: answers one request per connection from `reply`.

class FakeDaemon {
public:
    using Reply = std::function<void(int fd, const json& request)>;
    explicit FakeDaemon(Reply reply) : reply_(std::move(reply)) {
        path_ = dir_ / "d.sock";
        listen_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, path_.c_str(), sizeof a.sun_path - 1);
        if (::bind(listen_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_.get(), 8) != 0)
            throw std::runtime_error("bind");
        thread_ = std::thread([this] {
            for (;;) {
                UniqueFd c(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
                if (!c || stop_) return;
                auto f = protocol::read_frame(c.get());
                if (f) reply_(c.get(), protocol::parse_message(f->payload));
            }
        });
    }
    ~FakeDaemon() {
        stop_ = true;
        ::shutdown(listen_.get(), SHUT_RDWR);
        thread_.join();
    }
    const std::string& socket() const { return path_; }

private:
    TempDir dir_{"hermetic-fake-daemon"};
    std::string path_;
    UniqueFd listen_;
    Reply reply_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

// The daemon's stream format (daemon/evidence_requests.hpp).
void send_file(int fd, const std::string& name, const std::string& content) {
    json m = protocol::make_message("evidence-file");
    m["name"] = name;
    m["size"] = content.size();
    m["sha256"] = sha256_hex(content);
    protocol::send_message(fd, m);
    for (size_t pos = 0; pos < content.size(); pos += 1000)
        protocol::write_frame(fd, protocol::FrameKind::Stdout, std::string_view(content).substr(pos, 1000));
}

struct Captured {
    std::ostringstream out, err;
    std::streambuf* old_out = std::cout.rdbuf(out.rdbuf());
    std::streambuf* old_err = std::cerr.rdbuf(err.rdbuf());
    ~Captured() {
        std::cout.rdbuf(old_out);
        std::cerr.rdbuf(old_err);
    }
};

TEST(CtlAuditClient, VerifyExportJsonAttestAndPubkeyOverTheStream) {
    Files f;
    Export e = make_export(f.key, "job-1");
    std::string tampered = e.log;
    tampered[tampered.find("getrandom")] = 'G';
    bool tamper = false;
    FakeDaemon d([&](int fd, const json& req) {
        const std::string type = req["type"];
        if (type == "pubkey") {
            json r = protocol::make_message("pubkey");
            r["current"] = f.key.key_id();
            r["keys"] = {{{"key_id", f.key.key_id()}, {"pem", f.key.public_key().pem()}, {"current", true}}};
            protocol::send_message(fd, r);
            return;
        }
        if (req.value("job", "") != "job-1") {
            protocol::send_message(fd, protocol::make_error("not-found", "no job " + req.value("job", "")));
            return;
        }
        send_file(fd, "audit.log", tamper ? tampered : e.log);
        if (type == "audit-export") {
            send_file(fd, "audit.summary.json", e.summary);
            send_file(fd, "attestation.json", e.attestation);
        }
        json end = protocol::make_message("evidence-end");
        end["job"] = "job-1";
        end["public_keys"] = {{{"key_id", f.key.key_id()}, {"pem", f.key.public_key().pem()}}};
        protocol::send_message(fd, end);
    });
    {
        Captured c;
        EXPECT_EQ(audit_command({"job-1", "--verify"}, d.socket()), 0) << c.err.str();
        EXPECT_NE(c.out.str().find("verified: 7 records"), std::string::npos) << c.out.str();
    }
    {
        Captured c;
        EXPECT_EQ(audit_command({"job-1", "--verify", "--key", f.key_file}, d.socket()), 0) << c.err.str();
    }
    {
        Captured c;
        EXPECT_EQ(audit_command({"job-1", "--json"}, d.socket()), 0);
        EXPECT_EQ(c.out.str(), e.log);
    }
    {
        Captured c;
        TempDir out;
        EXPECT_EQ(audit_command({"export", "job-1", "--dir", out.path()}, d.socket()), 0) << c.err.str();
        EXPECT_EQ(read_file(out / "job-1.audit.log"), e.log);
        EXPECT_EQ(read_file(out / "job-1.audit.summary.json"), e.summary);
        EXPECT_EQ(verify(out.path(), f.key_file, {}), 0);
    }
    {
        Captured c;
        EXPECT_EQ(pubkey_command({}, d.socket()), 0);
        EXPECT_EQ(c.out.str(), f.key.public_key().pem());
    }
    {
        Captured c;
        EXPECT_THROW(audit_command({"job-9", "--verify"}, d.socket()), CtlError);
        EXPECT_EQ(audit_command({}, d.socket()), 2);
        EXPECT_EQ(audit_command({"diff", "job-1"}, d.socket()), 2);
        EXPECT_EQ(audit_command({"verify", "x"}, d.socket()), 2);  // --key required
    }
    tamper = true;
    {
        Captured c;
        EXPECT_EQ(audit_command({"job-1", "--verify"}, d.socket()), 1);
        EXPECT_NE(c.err.str().find("audit.log: record 3:"), std::string::npos) << c.err.str();
    }
}

}  // namespace
}  // namespace hermetic::ctl
