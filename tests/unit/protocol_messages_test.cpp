// Control messages: parsing and versioning, the run request's JSON form, and
// every rule validate() enforces.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <limits>
#include <string>

#include "common/unique_fd.hpp"
#include "protocol/messages.hpp"

namespace {

using namespace hermetic;
using namespace hermetic::protocol;
using nlohmann::json;

// The message of the ProtocolError that f throws ("" if none).
template <typename F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const ProtocolError& e) {
        return e.what();
    }
    return "";
}

std::string parse_error(std::string_view payload) {
    return error_of([&] { (void)parse_message(payload); });
}

std::string validate_error(const RunRequest& r) {
    return error_of([&] { validate(r); });
}

RunRequest minimal() {
    RunRequest r;
    r.argv = {"make", "-j2"};
    return r;
}

// ---- parse_message --------------------------------------------------------

TEST(ProtocolMessages, MakeMessageIsStampedWithTheVersion) {
    json m = make_message("ping");
    EXPECT_EQ(m["proto"], json::array({kProtoMajor, kProtoMinor}));
    EXPECT_EQ(m["type"], "ping");
    EXPECT_EQ(version_string(), std::to_string(kProtoMajor) + "." + std::to_string(kProtoMinor));
}

TEST(ProtocolMessages, MakeErrorCarriesCodeAndMessage) {
    json m = parse_message(make_error(error_code::kBadRequest, "no command").dump());
    EXPECT_EQ(m["type"], "error");
    EXPECT_EQ(m["code"], "bad-request");
    EXPECT_EQ(m["message"], "no command");
}

TEST(ProtocolMessages, OwnMessagesParse) {
    json m = parse_message(make_message("run").dump());
    EXPECT_EQ(m["type"], "run");
}

TEST(ProtocolMessages, NotJsonIsRefused) {
    for (const char* p : {"", "garbage", "{\"proto\":[1,0],", "\xff\xfe", "{'proto':[1,0]}"}) {
        auto e = parse_error(p);
        EXPECT_NE(e.find("not valid JSON"), std::string::npos) << "payload: " << p << " -> " << e;
    }
}

TEST(ProtocolMessages, NotAnObjectIsRefused) {
    for (const char* p : {"[1,0]", "42", "\"run\"", "null", "true"}) {
        auto e = parse_error(p);
        EXPECT_NE(e.find("not a JSON object"), std::string::npos) << "payload: " << p << " -> " << e;
    }
}

TEST(ProtocolMessages, MissingOrMalformedProtoIsRefused) {
    for (const char* p : {R"({"type":"run"})", R"({"proto":1,"type":"run"})", R"({"proto":[1],"type":"run"})",
                          R"({"proto":[1,0,0],"type":"run"})", R"({"proto":["1","0"],"type":"run"})",
                          R"({"proto":[1.5,0],"type":"run"})", R"({"proto":null,"type":"run"})"}) {
        auto e = parse_error(p);
        EXPECT_NE(e.find("missing \"proto\""), std::string::npos) << "payload: " << p << " -> " << e;
    }
}

TEST(ProtocolMessages, MissingOrNonStringTypeIsRefused) {
    for (const char* p : {R"({"proto":[1,0]})", R"({"proto":[1,0],"type":7})", R"({"proto":[1,0],"type":null})"}) {
        auto e = parse_error(p);
        EXPECT_NE(e.find("missing \"type\""), std::string::npos) << "payload: " << p << " -> " << e;
    }
}

TEST(ProtocolMessages, MajorVersionMismatchNamesBothVersions) {
    json m = {{"proto", {kProtoMajor + 1, 3}}, {"type", "run"}};
    try {
        (void)parse_message(m.dump());
        FAIL() << "a different major version was accepted";
    } catch (const VersionMismatch& e) {
        EXPECT_EQ(e.peer_major, kProtoMajor + 1);
        EXPECT_EQ(e.peer_minor, 3);
        std::string msg = e.what();
        EXPECT_NE(msg.find(std::to_string(kProtoMajor + 1) + ".3"), std::string::npos) << msg;
        EXPECT_NE(msg.find(version_string()), std::string::npos) << msg;
    }
    // An older major too, and version mismatch is a ProtocolError as well.
    json old = {{"proto", {0, 9}}, {"type", "run"}};
    EXPECT_THROW((void)parse_message(old.dump()), VersionMismatch);
    EXPECT_NE(parse_error(old.dump()).find("0.9"), std::string::npos);
}

TEST(ProtocolMessages, MajorVersionIsCheckedBeforeTheRest) {
    // A future major may change anything, "type" included: the answer must be
    // the version error, not "missing type".
    json m = {{"proto", {kProtoMajor + 1, 0}}};
    EXPECT_THROW((void)parse_message(m.dump()), VersionMismatch);
}

TEST(ProtocolMessages, MajorVersionOutsideIntRangeIsNotMistakenForOurs) {
    // 2^32 + kProtoMajor must not wrap around to kProtoMajor.
    json m = {{"proto", {(uint64_t{1} << 32) + kProtoMajor, 0}}, {"type", "run"}};
    EXPECT_THROW((void)parse_message(m.dump()), ProtocolError);
    json neg = {{"proto", {kProtoMajor, -1}}, {"type", "run"}};
    EXPECT_THROW((void)parse_message(neg.dump()), ProtocolError);
}

TEST(ProtocolMessages, MinorVersionDifferencesAreAccepted) {
    for (int minor : {0, 1, 7, 1000}) {
        json m = {{"proto", {kProtoMajor, minor}}, {"type", "ping"}};
        EXPECT_NO_THROW((void)parse_message(m.dump())) << "minor " << minor;
    }
}

TEST(ProtocolMessages, UnknownFieldsAreIgnored) {
    json m = make_message("run");
    m["request"] = minimal();
    m["request"]["added_in_1_7"] = {{"nested", true}};
    m["also_new"] = 42;
    json parsed = parse_message(m.dump());
    EXPECT_EQ(parsed["type"], "run");
    RunRequest r = parsed["request"].get<RunRequest>();
    EXPECT_EQ(r.argv, (std::vector<std::string>{"make", "-j2"}));
}

TEST(ProtocolMessages, SendMessageWritesOneControlFrame) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    UniqueFd a(sv[0]), b(sv[1]);
    send_message(a.get(), make_message("ping"));
    auto f = read_frame(b.get());
    ASSERT_TRUE(f);
    EXPECT_EQ(f->kind, FrameKind::Control);
    EXPECT_EQ(parse_message(f->payload)["type"], "ping");
}

// ---- RunRequest JSON ------------------------------------------------------

TEST(ProtocolMessages, FullRunRequestRoundTrips) {
    RunRequest r;
    r.argv = {"/bin/sh", "-c", "echo \"$X\" > $OUT/x", "", "ünïcode"};
    r.env = {{"X", "a=b=c"}, {"EMPTY", ""}, {"X", "again"}};
    r.seed = std::numeric_limits<uint64_t>::max();
    r.epoch = -5;
    r.cpus = 3;
    r.clock_step_ns = 250000;
    r.timeout_sec = 77;
    r.memory_bytes = uint64_t{5} << 30;
    r.key = "my-key";
    r.policy = "build";
    r.policy_text = "allow foo\n";
    r.trace = true;
    r.has_out = true;
    r.out_exclude = FileId{0xFFFFFFFFFFull, 0x123456789ABCull};

    json j = r;
    RunRequest back = json::parse(j.dump()).get<RunRequest>();
    EXPECT_EQ(back.argv, r.argv);
    EXPECT_EQ(back.env, r.env);  // order and duplicates kept; '=' in values kept
    EXPECT_EQ(back.seed, r.seed);
    EXPECT_EQ(back.epoch, r.epoch);
    EXPECT_EQ(back.cpus, r.cpus);
    EXPECT_EQ(back.clock_step_ns, r.clock_step_ns);
    EXPECT_EQ(back.timeout_sec, r.timeout_sec);
    EXPECT_EQ(back.memory_bytes, r.memory_bytes);
    EXPECT_EQ(back.key, r.key);
    EXPECT_EQ(back.policy, r.policy);
    EXPECT_EQ(back.policy_text, r.policy_text);
    EXPECT_TRUE(back.trace);
    EXPECT_TRUE(back.has_out);
    ASSERT_TRUE(back.out_exclude);
    EXPECT_EQ(back.out_exclude->dev, r.out_exclude->dev);
    EXPECT_EQ(back.out_exclude->ino, r.out_exclude->ino);
}

TEST(ProtocolMessages, MinimalRunRequestRoundTripsWithNothingSet) {
    json j = minimal();
    EXPECT_FALSE(j.contains("seed"));
    EXPECT_FALSE(j.contains("out_exclude"));
    RunRequest back = j.get<RunRequest>();
    EXPECT_EQ(back.argv, minimal().argv);
    EXPECT_TRUE(back.env.empty());
    EXPECT_FALSE(back.seed || back.epoch || back.cpus || back.clock_step_ns || back.timeout_sec || back.memory_bytes || back.key ||
                 back.policy || back.policy_text || back.out_exclude);
    EXPECT_FALSE(back.trace);
    EXPECT_FALSE(back.has_out);
}

TEST(ProtocolMessages, RunRequestNullFieldsMeanUnset) {
    json j = {{"argv", {"true"}}, {"seed", nullptr}, {"cpus", nullptr}, {"out_exclude", nullptr}};
    RunRequest r = j.get<RunRequest>();
    EXPECT_FALSE(r.seed);
    EXPECT_FALSE(r.cpus);
    EXPECT_FALSE(r.out_exclude);
}

TEST(ProtocolMessages, RunRequestWithoutArgvIsMalformed) {
    json j = {{"env", json::array()}};
    EXPECT_THROW((void)j.get<RunRequest>(), json::exception);
}

TEST(ProtocolMessages, RunRequestEnvEntryWithoutEqualsIsRefused) {
    for (const char* e : {"NOEQUALS", "=value"}) {
        json j = {{"argv", {"true"}}, {"env", {e}}};
        try {
            (void)j.get<RunRequest>();
            FAIL() << e << " accepted";
        } catch (const ProtocolError& err) {
            EXPECT_NE(std::string(err.what()).find("K=V"), std::string::npos) << err.what();
        }
    }
}

TEST(ProtocolMessages, RunRequestNumbersOutOfRangeAreMalformed) {
    // cpus is 32-bit: 2^32 + 2 must not wrap around to 2.
    json big = {{"argv", {"true"}}, {"cpus", (uint64_t{1} << 32) + 2}};
    EXPECT_ANY_THROW((void)big.get<RunRequest>());
    // Negative sizes must not wrap around to huge ones.
    json neg = {{"argv", {"true"}}, {"memory", -1}};
    EXPECT_ANY_THROW((void)neg.get<RunRequest>());
    json negt = {{"argv", {"true"}}, {"timeout", -1}};
    EXPECT_ANY_THROW((void)negt.get<RunRequest>());
    json frac = {{"argv", {"true"}}, {"cpus", 2.5}};
    EXPECT_ANY_THROW((void)frac.get<RunRequest>());
    json str = {{"argv", {"true"}}, {"seed", "12"}};
    EXPECT_ANY_THROW((void)str.get<RunRequest>());
}

TEST(ProtocolMessages, JobResultRoundTrips) {
    JobResult r;
    r.job = "19ab-cd";
    r.state = "failed";
    r.exit_code = 3;
    r.reason = "why";
    r.outputs.push_back({"a/b", "file", 0644, 5, std::string(64, 'a'), std::nullopt});
    r.outputs.push_back({"l", "symlink", 0777, 0, std::string(64, 'b'), std::string("target")});
    r.outputs.push_back({"d", "dir", 0755, 0, std::nullopt, std::nullopt});
    r.audit_digest = "sha256:abc";
    r.client_exit_status = 3;
    json j = r;
    EXPECT_TRUE(j["signal"].is_null());
    EXPECT_TRUE(j["outputs"][2]["sha256"].is_null());
    JobResult back = json::parse(j.dump()).get<JobResult>();
    EXPECT_EQ(back.job, r.job);
    EXPECT_EQ(back.state, r.state);
    EXPECT_EQ(back.exit_code, 3);
    EXPECT_FALSE(back.signal);
    EXPECT_EQ(back.reason, "why");
    ASSERT_EQ(back.outputs.size(), 3u);
    EXPECT_EQ(back.outputs[0].path, "a/b");
    EXPECT_EQ(back.outputs[0].mode, 0644u);
    EXPECT_EQ(back.outputs[0].size, 5u);
    EXPECT_EQ(back.outputs[0].sha256, r.outputs[0].sha256);
    EXPECT_EQ(back.outputs[1].target, "target");
    EXPECT_FALSE(back.outputs[2].sha256);
    EXPECT_EQ(back.audit_digest, r.audit_digest);
    EXPECT_EQ(back.client_exit_status, 3);
}

// ---- validate -------------------------------------------------------------

TEST(ProtocolValidate, MinimalRequestIsValid) { EXPECT_EQ(validate_error(minimal()), ""); }

TEST(ProtocolValidate, EmptyArgvIsRefused) {
    RunRequest r;
    EXPECT_NE(validate_error(r).find("no command given"), std::string::npos);
}

TEST(ProtocolValidate, EmptyCommandNameIsRefused) {
    RunRequest r;
    r.argv = {"", "x"};
    EXPECT_NE(validate_error(r).find("command name is empty"), std::string::npos);
    r.argv = {"x", ""};  // an empty later argument is fine
    EXPECT_EQ(validate_error(r), "");
}

TEST(ProtocolValidate, ArgumentCountIsBounded) {
    RunRequest r;
    r.argv.assign(kMaxArgs, "a");
    EXPECT_EQ(validate_error(r), "");
    r.argv.push_back("a");
    EXPECT_NE(validate_error(r).find("too many arguments"), std::string::npos);
}

TEST(ProtocolValidate, ArgumentLengthIsBounded) {
    RunRequest r = minimal();
    r.argv.push_back(std::string(kMaxStringLen, 'a'));
    EXPECT_EQ(validate_error(r), "");
    r.argv.back().push_back('a');
    EXPECT_NE(validate_error(r).find("longer than 64 KiB"), std::string::npos);
}

TEST(ProtocolValidate, NulBytesAreRefusedEverywhere) {
    const std::string nul("a\0b", 3);
    RunRequest r = minimal();
    r.argv[0] = nul;
    EXPECT_NE(validate_error(r).find("NUL"), std::string::npos);
    r = minimal();
    r.argv.push_back(nul);
    EXPECT_NE(validate_error(r).find("NUL"), std::string::npos);
    r = minimal();
    r.env = {{"K", nul}};
    EXPECT_NE(validate_error(r).find("NUL"), std::string::npos);
    r = minimal();
    r.env = {{nul, "v"}};
    EXPECT_NE(validate_error(r), "");
    r = minimal();
    r.key = nul;
    EXPECT_NE(validate_error(r).find("NUL"), std::string::npos);
    r = minimal();
    r.policy = nul;
    EXPECT_NE(validate_error(r).find("NUL"), std::string::npos);
}

TEST(ProtocolValidate, EnvNamesMustBeIdentifiers) {
    for (const char* good : {"A", "_", "a_b", "CFLAGS", "X1", "_9"}) {
        RunRequest r = minimal();
        r.env = {{good, "v"}};
        EXPECT_EQ(validate_error(r), "") << good;
    }
    for (const char* bad : {"", "1A", "A-B", "A B", "A.B", "Ä", "A=B", "$X"}) {
        RunRequest r = minimal();
        r.env = {{bad, "v"}};
        auto e = validate_error(r);
        EXPECT_NE(e.find("invalid environment variable name"), std::string::npos) << "'" << bad << "': " << e;
    }
}

TEST(ProtocolValidate, EnvValueLengthIsBounded) {
    RunRequest r = minimal();
    r.env = {{"K", std::string(kMaxStringLen, 'v')}};
    EXPECT_EQ(validate_error(r), "");
    r.env[0].second.push_back('v');
    EXPECT_NE(validate_error(r).find("longer than 64 KiB"), std::string::npos);
}

TEST(ProtocolValidate, EnvCountIsBounded) {
    RunRequest r = minimal();
    for (size_t i = 0; i < kMaxEnv; ++i) r.env.emplace_back("V" + std::to_string(i), "x");
    EXPECT_EQ(validate_error(r), "");
    r.env.emplace_back("ONE_MORE", "x");
    EXPECT_NE(validate_error(r).find("too many --env"), std::string::npos);
}

TEST(ProtocolValidate, CpusBounds) {
    RunRequest r = minimal();
    for (uint32_t ok : {1u, 2u, 4096u}) {
        r.cpus = ok;
        EXPECT_EQ(validate_error(r), "") << ok;
    }
    for (uint32_t bad : {0u, 4097u, std::numeric_limits<uint32_t>::max()}) {
        r.cpus = bad;
        EXPECT_NE(validate_error(r).find("--cpus must be between 1 and 4096"), std::string::npos) << bad;
    }
}

TEST(ProtocolValidate, TimeoutMustBePositive) {
    RunRequest r = minimal();
    r.timeout_sec = 0;
    EXPECT_NE(validate_error(r).find("--timeout must be positive"), std::string::npos);
    r.timeout_sec = 1;
    EXPECT_EQ(validate_error(r), "");
}

TEST(ProtocolValidate, MemoryHasAFloorOf4MiB) {
    RunRequest r = minimal();
    r.memory_bytes = (4u << 20) - 1;
    EXPECT_NE(validate_error(r).find("--memory must be at least 4 MiB"), std::string::npos);
    r.memory_bytes = 0;
    EXPECT_NE(validate_error(r).find("--memory"), std::string::npos);
    r.memory_bytes = 4u << 20;
    EXPECT_EQ(validate_error(r), "");
}

TEST(ProtocolValidate, KeyLengthIsBounded) {
    RunRequest r = minimal();
    r.key = "";
    EXPECT_NE(validate_error(r).find("--key must be 1 to 256 bytes"), std::string::npos);
    r.key = std::string(256, 'k');
    EXPECT_EQ(validate_error(r), "");
    r.key = std::string(257, 'k');
    EXPECT_NE(validate_error(r).find("--key must be 1 to 256 bytes"), std::string::npos);
    r.key = "k";
    EXPECT_EQ(validate_error(r), "");
}

TEST(ProtocolValidate, PolicyTextIsBounded) {
    RunRequest r = minimal();
    r.policy_text = std::string(kMaxPolicyText, 'p');
    EXPECT_EQ(validate_error(r), "");
    r.policy_text->push_back('p');
    EXPECT_NE(validate_error(r).find("larger than 256 KiB"), std::string::npos);
}

TEST(ProtocolValidate, PolicyNameLengthIsBounded) {
    RunRequest r = minimal();
    r.policy = std::string(kMaxStringLen + 1, 'p');
    EXPECT_NE(validate_error(r).find("longer than 64 KiB"), std::string::npos);
}

}  // namespace
