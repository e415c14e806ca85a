// Keys, DSSE, the signed summary, the attestation and whole-bundle verification.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "audit/attestation.hpp"
#include "audit/dsse.hpp"
#include "audit/encoding.hpp"
#include "audit/identity.hpp"
#include "audit/keys.hpp"
#include "audit/summary.hpp"
#include "audit/verify.hpp"
#include "common/sha256.hpp"
#include "tests/unit/audit_test_util.hpp"

namespace hermetic::audit {
namespace {

using nlohmann::json;
using namespace testing;

const std::string kPolicy = sha256_hex("policy text");

TEST(AuditKeys, GenerateSignVerifyAndPemRoundTrip) {
    PrivateKey k = PrivateKey::generate();
    EXPECT_EQ(k.key_id(), sha256_hex(k.public_key().raw()));
    EXPECT_EQ(k.public_key().raw().size(), 32u);
    std::string sig = k.sign("message");
    EXPECT_EQ(sig.size(), 64u);
    EXPECT_TRUE(k.public_key().verify("message", sig));
    EXPECT_FALSE(k.public_key().verify("messagf", sig));
    sig[10] ^= 1;
    EXPECT_FALSE(k.public_key().verify("message", sig));

    PrivateKey again = PrivateKey::from_pem(k.pem());
    EXPECT_EQ(again.key_id(), k.key_id());
    PublicKey pub = PublicKey::from_pem(k.public_key().pem());
    EXPECT_EQ(pub.key_id(), k.key_id());
    EXPECT_TRUE(pub.verify("x", again.sign("x")));
    EXPECT_NE(PrivateKey::generate().key_id(), k.key_id());
    EXPECT_THROW(PublicKey::from_pem("not a key"), KeyError);
    EXPECT_THROW(PrivateKey::from_pem(k.public_key().pem()), KeyError);
}

TEST(AuditKeys, KeyringFromAPemBundle) {
    PrivateKey a = PrivateKey::generate(), b = PrivateKey::generate();
    Keyring ring;
    ring.add_pem_bundle(a.public_key().pem() + "\n" + b.public_key().pem());
    EXPECT_EQ(ring.size(), 2u);
    EXPECT_NE(ring.find(a.key_id()), nullptr);
    EXPECT_NE(ring.find(b.key_id()), nullptr);
    EXPECT_THROW(ring.add_pem_bundle("nothing here"), KeyError);
}

TEST(AuditDsse, PaeMatchesTheSpec) {
    // The example from the DSSE protocol document.
    EXPECT_EQ(pae("http://example.com/HelloWorld", "hello world"), "DSSEv1 29 http://example.com/HelloWorld 11 hello world");
    EXPECT_EQ(pae("", ""), "DSSEv1 0  0 ");
}

TEST(AuditDsse, RoundTripAndTamperDetection) {
    PrivateKey k = PrivateKey::generate();
    Keyring ring;
    ring.add(k.public_key());
    Envelope e = sign_envelope("application/x-test", "{\"a\":1}", k);
    std::string text = serialize_envelope(e);
    json j = json::parse(text);
    EXPECT_EQ(j["payloadType"], "application/x-test");
    EXPECT_EQ(base64_decode(j["payload"].get<std::string>()), "{\"a\":1}");
    EXPECT_EQ(j["signatures"][0]["keyid"], k.key_id());

    Envelope back = parse_envelope(text);
    EnvelopeCheck c = verify_envelope(back, "application/x-test", ring);
    EXPECT_TRUE(c.ok) << c.error;
    EXPECT_EQ(c.key_id, k.key_id());

    Envelope payload = back;
    payload.payload = "{\"a\":2}";
    EXPECT_FALSE(verify_envelope(payload, "application/x-test", ring).ok);
    Envelope type = back;
    type.payload_type = "application/x-other";
    EXPECT_FALSE(verify_envelope(type, "application/x-other", ring).ok);
    EXPECT_FALSE(verify_envelope(back, "application/x-other", ring).ok);
    Envelope sig = back;
    sig.signatures[0].sig[0] ^= 1;
    EXPECT_FALSE(verify_envelope(sig, "application/x-test", ring).ok);

    Keyring other;
    other.add(PrivateKey::generate().public_key());
    EnvelopeCheck wrong = verify_envelope(back, "application/x-test", other);
    EXPECT_FALSE(wrong.ok);
    EXPECT_NE(wrong.error.find("signature does not verify"), std::string::npos);

    // A wrong key id hint still verifies with the right key of the ring.
    Envelope hint = back;
    hint.signatures[0].keyid = "unknown";
    EXPECT_TRUE(verify_envelope(hint, "application/x-test", ring).ok);

    EXPECT_THROW(parse_envelope("{}"), FormatError);
    EXPECT_THROW(parse_envelope("{\"payloadType\":\"t\",\"payload\":\"!!\",\"signatures\":[{\"sig\":\"\"}]}"), FormatError);
}

// A whole bundle: log, signed summary, signed attestation.
struct Evidence {
    Bundle bundle;
    ProvenanceInputs inputs;
    std::string digest;
};

Evidence make_evidence(const PrivateKey& key, const std::string& job = "job-1") {
    ChainResult res;
    Tally tally;
    Evidence ev;
    ev.bundle.log = small_log(job, false, &res, &tally);
    SummaryFacts facts{kPolicy,    1714564800123, "succeeded", 0, std::nullopt, {"rdtsc: CPUID faulting unavailable"},
                       uint64_t{6}, {"vdso patch failed in /usr/bin/x"}};
    Summary s = make_summary(ChainOptions{job, kDefaultMaxLogBytes, false}, res, tally, facts);
    Envelope se = sign_summary(s, key);
    ev.bundle.summary = serialize_envelope(se);
    ev.digest = audit_digest(se);

    ProvenanceInputs& in = ev.inputs;
    in.job = job;
    in.argv = {"make", "-j2"};
    in.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "SOURCE_DATE_EPOCH=315532800"};
    in.seed = 42;
    in.epoch = 315532800;
    in.clock_step_ns = 25000;
    in.limits = {2ull << 30, 4096, 0, 2, 3600};
    in.policy_name = "build";
    in.policy_digest = kPolicy;
    in.source_digest = tree_digest({{"hello.c", "file", 0644, sha256_hex("int main(){}")}, {"", "dir", 0755, {}}});
    in.rootfs = rootfs_identity("/");
    in.subjects = {{"bin/hello", sha256_hex("ELF")}, {"README", sha256_hex("readme")}};
    in.audit_bound = kDefaultMaxLogBytes;
    in.started_ms = 1714564800000;
    in.finished_ms = 1714564800123;
    in.builder_version = "0.1.0";
    in.log_sha256 = res.file_sha256;
    in.chain_head = res.head;
    in.records = res.records;
    in.events = tally.events;
    in.by_action = tally.by_action;
    in.by_class = tally.by_class;
    in.audit_digest = ev.digest;
    ev.bundle.attestation = serialize_envelope(sign_attestation(in, key));
    return ev;
}

Keyring ring_of(const PrivateKey& k) {
    Keyring r;
    r.add(k.public_key());
    return r;
}

TEST(AuditSummary, SignedSummaryDescribesTheLogAndVerifies) {
    PrivateKey k = PrivateKey::generate();
    Evidence ev = make_evidence(k);
    VerifyReport r = verify_bundle(ev.bundle, ring_of(k));
    ASSERT_TRUE(r.ok) << r.error;
    ASSERT_TRUE(r.summary);
    EXPECT_EQ(r.summary_key_id, k.key_id());
    EXPECT_EQ(r.audit_digest, ev.digest);
    EXPECT_EQ(r.summary->job, "job-1");
    EXPECT_EQ(r.summary->key_id, k.key_id());
    EXPECT_EQ(r.summary->events, 5u);
    EXPECT_EQ(r.summary->by_syscall.at("clock_gettime"), 2u);
    EXPECT_EQ(r.summary->by_class.at("fs-order"), 1u);
    EXPECT_EQ(r.summary->by_action.at("denied"), 1u);
    ASSERT_EQ(r.summary->network.size(), 1u);
    EXPECT_EQ(r.summary->network[0].syscall, "socket");
    ASSERT_EQ(r.summary->unvirtualizable.size(), 1u);
    // The supervisor counted 6, the log got 5: said in the signed summary.
    EXPECT_EQ(r.summary->supervisor_events, 6u);
    ASSERT_EQ(r.summary->notes.size(), 2u);
    EXPECT_EQ(r.summary->notes[0], "the supervisor reported 6 deviations, the audit log received 5 (1 lost on the way)");
    EXPECT_EQ(r.summary->notes[1], "vdso patch failed in /usr/bin/x");
    EXPECT_EQ(r.summary->chain_head, r.chain.head);
    EXPECT_TRUE(r.attestation_checked);
    EXPECT_EQ(r.subjects.size(), 2u);

    // Summary JSON round trip.
    json j = json::parse(parse_envelope(*ev.bundle.summary).payload);
    EXPECT_EQ(j["format"], kSummaryFormat);
    EXPECT_EQ(j["chain"]["head"], r.chain.head);
    EXPECT_EQ(to_json(summary_from_json(j)).dump(), j.dump());
}

TEST(AuditSummary, ReplacedSummaryFailsTheSignature) {
    PrivateKey k = PrivateKey::generate();
    Evidence ev = make_evidence(k);
    Keyring ring = ring_of(k);

    // A forged summary signed by someone else's key.
    PrivateKey mallory = PrivateKey::generate();
    Envelope real = parse_envelope(*ev.bundle.summary);
    Summary s = summary_from_json(json::parse(real.payload));
    s.events = 0;
    Bundle forged = ev.bundle;
    forged.summary = serialize_envelope(sign_summary(s, mallory));
    VerifyReport r = verify_bundle(forged, ring);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error.rfind("audit.summary.json: signature does not verify", 0), 0u) << r.error;

    // The payload edited in place, signature kept.
    Envelope edited = real;
    edited.payload.replace(edited.payload.find("\"total\":5"), 9, "\"total\":4");
    Bundle b2 = ev.bundle;
    b2.summary = serialize_envelope(edited);
    r = verify_bundle(b2, ring);
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.error.find("signature does not verify"), std::string::npos) << r.error;

    // One flipped byte anywhere in the stored summary or attestation file.
    for (size_t i = 0; i < ev.bundle.attestation->size(); i += 5) {
        Bundle b3 = ev.bundle;
        (*b3.attestation)[i] ^= 1;
        EXPECT_FALSE(verify_bundle(b3, ring).ok) << i;
    }
    for (size_t i = 0; i < ev.bundle.summary->size(); ++i) {
        Bundle b3 = ev.bundle;
        (*b3.summary)[i] ^= 1;
        EXPECT_FALSE(verify_bundle(b3, ring).ok) << i << " " << ev.bundle.summary->substr(i > 10 ? i - 10 : 0, 20);
    }

    // A genuine summary of another job (same key) does not fit this log.
    Evidence other = make_evidence(k, "job-2");
    Bundle b4 = ev.bundle;
    b4.summary = other.bundle.summary;
    r = verify_bundle(b4, ring);
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.error.find("job-2"), std::string::npos) << r.error;

    Bundle none = ev.bundle;
    none.summary.reset();
    EXPECT_EQ(verify_bundle(none, ring).error, "audit.summary.json: missing");
}

TEST(AuditSummary, LogTamperingIsNamedByRecordEvenWithAValidSummary) {
    PrivateKey k = PrivateKey::generate();
    Evidence ev = make_evidence(k);
    Keyring ring = ring_of(k);
    Bundle b = ev.bundle;
    size_t third = 0;
    for (int i = 0; i < 3; ++i) third = b.log.find('\n', third) + 1;  // record 3 starts here
    b.log[third + 100] ^= 0x04;
    VerifyReport r = verify_bundle(b, ring);
    EXPECT_FALSE(r.ok);
    ASSERT_TRUE(r.bad_record);
    EXPECT_EQ(*r.bad_record, 3u);
    EXPECT_EQ(r.error.rfind("audit.log: record 3:", 0), 0u) << r.error;

    // Records cut off the end: the summary says what is missing.
    Bundle cut = ev.bundle;
    size_t last = cut.log.rfind('\n', cut.log.size() - 2) + 1;
    size_t before = cut.log.rfind('\n', last - 2) + 1;
    cut.log.resize(before);
    r = verify_bundle(cut, ring);
    EXPECT_FALSE(r.ok);
    ASSERT_TRUE(r.bad_record);
    EXPECT_EQ(*r.bad_record, 5u) << r.error;
    EXPECT_NE(r.error.find("missing"), std::string::npos) << r.error;
}

TEST(AuditAttestation, StatementShapeAndSubjectsEqualTheOutputs) {
    PrivateKey k = PrivateKey::generate();
    Evidence ev = make_evidence(k);
    Envelope e = parse_envelope(*ev.bundle.attestation);
    EXPECT_EQ(e.payload_type, kInTotoPayloadType);
    EXPECT_TRUE(verify_envelope(e, kInTotoPayloadType, ring_of(k)).ok);
    json st = json::parse(e.payload);
    EXPECT_EQ(st["_type"], "https://in-toto.io/Statement/v1");
    EXPECT_EQ(st["predicateType"], "https://slsa.dev/provenance/v1");
    ASSERT_EQ(st["subject"].size(), 2u);
    EXPECT_EQ(st["subject"][0]["name"], "README");  // sorted
    EXPECT_EQ(st["subject"][0]["digest"]["sha256"], sha256_hex("readme"));
    EXPECT_EQ(st["subject"][1]["name"], "bin/hello");
    EXPECT_EQ(st["subject"][1]["digest"]["sha256"], sha256_hex("ELF"));

    const json& bd = st["predicate"]["buildDefinition"];
    EXPECT_EQ(bd["buildType"], kBuildType);
    EXPECT_EQ(bd["externalParameters"]["command"], json({"make", "-j2"}));
    EXPECT_EQ(bd["externalParameters"]["seed"], 42);
    EXPECT_EQ(bd["externalParameters"]["epoch"], 315532800);
    EXPECT_EQ(bd["externalParameters"]["clock_step_ns"], 25000);
    EXPECT_EQ(bd["externalParameters"]["limits"]["memory_bytes"], 2ull << 30);
    EXPECT_EQ(bd["externalParameters"]["limits"]["timeout_sec"], 3600);
    ASSERT_EQ(bd["resolvedDependencies"].size(), 3u);
    EXPECT_EQ(bd["resolvedDependencies"][0]["name"], "source");
    EXPECT_EQ(bd["resolvedDependencies"][0]["digest"]["sha256"], ev.inputs.source_digest);
    EXPECT_EQ(bd["resolvedDependencies"][1]["digest"]["sha256"], kPolicy);
    EXPECT_EQ(bd["resolvedDependencies"][2]["name"], "rootfs");
    EXPECT_EQ(bd["resolvedDependencies"][2]["digest"]["sha256"], ev.inputs.rootfs.digest);

    const json& rd = st["predicate"]["runDetails"];
    EXPECT_EQ(rd["builder"]["id"], kBuilderId);
    EXPECT_EQ(rd["metadata"]["invocationId"], "job-1");
    EXPECT_EQ(rd["metadata"]["startedOn"], "2024-05-01T12:00:00.000Z");
    EXPECT_EQ(rd["byproducts"][0]["annotations"]["chain_head"], ev.inputs.chain_head);
    EXPECT_EQ(rd["byproducts"][1]["digest"]["sha256"], ev.digest);

    StatementView v = read_statement(e.payload);
    EXPECT_EQ(v.subjects.size(), 2u);
    EXPECT_EQ(v.chain_head, ev.inputs.chain_head);

    // Tampered attestation: the bundle fails naming the file.
    Bundle b = ev.bundle;
    Envelope t = e;
    t.payload.replace(t.payload.find(sha256_hex("ELF")), 64, sha256_hex("EVIL"));
    b.attestation = serialize_envelope(t);
    VerifyReport r = verify_bundle(b, ring_of(k));
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error.rfind("attestation.json: signature does not verify", 0), 0u) << r.error;

    // Digests are validated.
    ProvenanceInputs bad = ev.inputs;
    bad.source_digest = "xyz";
    EXPECT_THROW(build_statement(bad), std::invalid_argument);
}

// A job that failed before its source was read (unreadable file, too big)
// still gets its attestation: the source is named, without a digest.
TEST(AuditAttestation, AJobWhoseSourceWasNeverReadIsStillAttested) {
    PrivateKey k = PrivateKey::generate();
    Evidence ev = make_evidence(k);
    ProvenanceInputs in = ev.inputs;
    in.source_digest.clear();
    json st = build_statement(in);
    const json& src = st["predicate"]["buildDefinition"]["resolvedDependencies"][0];
    EXPECT_EQ(src["name"], "source");
    EXPECT_FALSE(src.contains("digest"));
    EXPECT_NE(src["annotations"]["state"].get<std::string>().find("not read"), std::string::npos);
}

TEST(AuditIdentity, TreeDigestIsOrderIndependentAndSeesEveryField) {
    std::vector<TreeEntry> t = {{"a", "file", 0644, sha256_hex("a")}, {"d", "dir", 0755, {}},
                                {"d/l", "symlink", 0777, sha256_hex("../a")}};
    std::string d = tree_digest(t);
    EXPECT_TRUE(is_sha256_hex(d));
    EXPECT_EQ(tree_digest({t[2], t[0], t[1]}), d);
    auto changed = [&](auto f) {
        auto c = t;
        f(c);
        return tree_digest(c);
    };
    EXPECT_NE(changed([](auto& c) { c[0].mode = 0755; }), d);
    EXPECT_NE(changed([](auto& c) { c[0].sha256 = sha256_hex("b"); }), d);
    EXPECT_NE(changed([](auto& c) { c[0].path = "b"; }), d);
    EXPECT_NE(changed([](auto& c) { c[2].type = "file"; }), d);
    // Length-prefixed paths: a newline in a name can't forge another entry.
    EXPECT_NE(tree_digest({{"x\nfile 644 - 1:y", "file", 0644, {}}}),
              tree_digest({{"x", "file", 0644, {}}, {"y", "file", 0644, {}}}));
}

TEST(AuditIdentity, RootfsIdentityOfThisHost) {
    RootfsIdentity a = rootfs_identity("/");
    EXPECT_TRUE(is_sha256_hex(a.digest));
    EXPECT_EQ(a.annotations["format"], "hermetic-rootfs/1");
    EXPECT_NE(a.annotations["os_release"].get<std::string>(), "");
    EXPECT_EQ(rootfs_identity("/").digest, a.digest);
    EXPECT_NE(rootfs_identity("/", {"/var/lib/dpkg"}).digest, a.digest);
    EXPECT_NE(rootfs_identity("/nonexistent").digest, a.digest);
}

}  // namespace
}  // namespace hermetic::audit
