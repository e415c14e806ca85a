// A real hermeticd facing misbehaving clients: garbage, oversize frames, bad
// JSON, another protocol version, silence, requests with the wrong descriptors,
// crowds of idle connections, users outside the group, and no daemon at all.
// Each bad client gets a one-line error (or is dropped) within a bounded time,
// and nobody else's job notices.
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/unique_fd.hpp"
#include "protocol/messages.hpp"
#include "tests/support/test_daemon.hpp"

using namespace hermetic;
using namespace hermetic::test;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kRequestTimeout = std::chrono::milliseconds(1000);

UniqueFd connect_to(const std::string& path) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) throw std::runtime_error("socket");
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        throw std::runtime_error("connect " + path + ": " + std::strerror(errno));
    return fd;
}

void send_raw(int fd, const std::string& bytes) {
    ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
}

std::string be32(uint32_t v) {
    uint32_t n = htonl(v);
    return std::string(reinterpret_cast<const char*>(&n), 4);
}

std::string control_frame(const std::string& payload) {
    return be32(static_cast<uint32_t>(payload.size() + 1)) + "J" + payload;
}

// What the daemon did with a connection: the first control message it sent
// (if any), and whether it then closed the connection.
struct Reply {
    std::optional<json> message;
    bool closed = false;
    bool timed_out = false;
    Clock::duration took{};
    [[nodiscard]] std::string code() const { return message ? message->value("code", "") : ""; }
    [[nodiscard]] std::string text() const { return message ? message->value("message", "") : ""; }
    [[nodiscard]] std::string describe() const {
        return (message ? message->dump() : std::string("(no message)")) + (closed ? " then closed" : "") +
               (timed_out ? " (timed out)" : "");
    }
};

Reply await_reply(int fd, Clock::duration limit) {
    Reply r;
    auto t0 = Clock::now();
    auto deadline = t0 + limit;
    try {
        for (;;) {
            auto f = protocol::read_frame(fd, deadline);
            if (!f) {
                r.closed = true;
                break;
            }
            if (f->kind != protocol::FrameKind::Control) continue;
            if (!r.message) r.message = json::parse(f->payload, nullptr, false);
        }
    } catch (const protocol::FrameTimeout&) {
        r.timed_out = true;
    } catch (const std::exception&) {
        r.closed = true;  // reset by the peer: dropped as well
    }
    r.took = Clock::now() - t0;
    return r;
}

json run_message(const std::vector<std::string>& argv, bool has_out = false) {
    protocol::RunRequest req;
    req.argv = argv;
    req.has_out = has_out;
    json m = protocol::make_message("run");
    m["request"] = req;
    return m;
}

int count_of(const std::string& hay, const std::string& needle) {
    int n = 0;
    for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
    return n;
}

// A source directory the test user owns (empty: the jobs here need nothing).
struct Source {
    TempDir dir{"hermetic-src"};
    Source() { stage_probes(dir.path(), {}); }
};

class DaemonProtocol : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        TestDaemonOptions o;
        o.config_lines = {"request-timeout-ms = " + std::to_string(kRequestTimeout.count())};
        daemon_ = std::make_unique<TestDaemon>(o);
    }
    static void TearDownTestSuite() { daemon_.reset(); }

    // Runs `meanwhile` while a real job of another client is running, then checks
    // that the job finished exactly as it would have alone.
    static void while_a_job_runs(const std::function<void()>& meanwhile) {
        Source src;
        int before = count_of(daemon_->log(), ": running in ");
        ProcessResult r;
        std::thread job([&] {
            r = daemon_->run(src.dir.path(), {"/bin/sh", "-c", "echo started; sleep 3; echo survived; echo err >&2"},
                             {}, as_test_user());
        });
        auto deadline = Clock::now() + std::chrono::seconds(60);
        while (count_of(daemon_->log(), ": running in ") <= before && Clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        meanwhile();
        job.join();
        EXPECT_EQ(r.status, 0) << r.describe();
        EXPECT_EQ(r.out, "started\nsurvived\n");
        EXPECT_NE(r.err.find("\nerr\n"), std::string::npos) << r.err;
    }

    static Reply bad_bytes(const std::string& bytes) {
        UniqueFd c = connect_to(daemon_->socket());
        if (!bytes.empty()) send_raw(c.get(), bytes);
        return await_reply(c.get(), 2 * kRequestTimeout + std::chrono::seconds(1));
    }

    static std::unique_ptr<TestDaemon> daemon_;
};

std::unique_ptr<TestDaemon> DaemonProtocol::daemon_;

TEST_F(DaemonProtocol, PingAnswers) {
    auto r = daemon_->ctl({"ping"});
    EXPECT_EQ(r.status, 0) << r.describe();
    EXPECT_NE(r.out.find("is running"), std::string::npos) << r.out;
}

TEST_F(DaemonProtocol, GarbageBytesGetABadRequestAndAreDropped) {
    auto r = bad_bytes("GET / HTTP/1.1\r\nHost: hermetic\r\n\r\n");
    EXPECT_EQ(r.code(), "bad-request") << r.describe();
    EXPECT_NE(r.text().find("exceeds the limit"), std::string::npos) << r.describe();
    EXPECT_TRUE(r.closed) << r.describe();
}

TEST_F(DaemonProtocol, HugeLengthPrefixIsRefusedAtOnce) {
    auto r = bad_bytes(be32(0xFFFFFFF0u) + "J{");
    EXPECT_EQ(r.code(), "bad-request") << r.describe();
    EXPECT_NE(r.text().find(std::to_string(0xFFFFFFF0u)), std::string::npos) << r.describe();
    EXPECT_TRUE(r.closed);
    // Not after waiting for 4 GiB that will never come.
    EXPECT_LT(r.took, kRequestTimeout) << r.describe();
}

TEST_F(DaemonProtocol, ValidFrameWithInvalidJsonIsRefused) {
    auto r = bad_bytes(control_frame("{\"proto\":[1,0],\"type\":\"run\""));
    EXPECT_EQ(r.code(), "bad-request") << r.describe();
    EXPECT_NE(r.text().find("not valid JSON"), std::string::npos) << r.describe();
    EXPECT_TRUE(r.closed);
}

TEST_F(DaemonProtocol, JsonThatIsNotAnObjectIsRefused) {
    auto r = bad_bytes(control_frame("[1,0]"));
    EXPECT_EQ(r.code(), "bad-request") << r.describe();
    EXPECT_NE(r.text().find("not a JSON object"), std::string::npos) << r.describe();
}

TEST_F(DaemonProtocol, WrongMajorVersionGetsAVersionErrorNamingBoth) {
    json m = {{"proto", {protocol::kProtoMajor + 1, 4}}, {"type", "run"}};
    auto r = bad_bytes(control_frame(m.dump()));
    EXPECT_EQ(r.code(), "version") << r.describe();
    EXPECT_NE(r.text().find(std::to_string(protocol::kProtoMajor + 1) + ".4"), std::string::npos) << r.describe();
    EXPECT_NE(r.text().find(protocol::version_string()), std::string::npos) << r.describe();
    EXPECT_TRUE(r.closed);
}

TEST_F(DaemonProtocol, NewerMinorVersionIsServed) {
    json m = {{"proto", {protocol::kProtoMajor, protocol::kProtoMinor + 5}}, {"type", "ping"}, {"future", true}};
    auto r = bad_bytes(control_frame(m.dump()));
    ASSERT_TRUE(r.message) << r.describe();
    EXPECT_EQ((*r.message)["type"], "pong") << r.describe();
}

TEST_F(DaemonProtocol, SilentClientIsDroppedWithinTwiceTheRequestTimeout) {
    auto r = bad_bytes("");
    EXPECT_FALSE(r.timed_out) << "still connected after 2x the request timeout: " << r.describe();
    EXPECT_TRUE(r.closed) << r.describe();
    EXPECT_EQ(r.code(), "bad-request") << r.describe();
    EXPECT_NE(r.text().find("request timeout"), std::string::npos) << r.describe();
}

TEST_F(DaemonProtocol, ClientStallingMidFrameIsDropped) {
    auto r = bad_bytes(be32(200) + "J{\"proto\":[1,0],");
    EXPECT_FALSE(r.timed_out) << r.describe();
    EXPECT_TRUE(r.closed) << r.describe();
    EXPECT_EQ(r.code(), "bad-request") << r.describe();
}

TEST_F(DaemonProtocol, OutputFrameInsteadOfARequestIsRefused) {
    auto r = bad_bytes(be32(3) + "Ohi");
    EXPECT_EQ(r.code(), "bad-request") << r.describe();
    EXPECT_NE(r.text().find("control frame"), std::string::npos) << r.describe();
}

TEST_F(DaemonProtocol, UnknownFrameKindIsRefused) {
    auto r = bad_bytes(be32(3) + "Zhi");
    EXPECT_EQ(r.code(), "bad-request") << r.describe();
    EXPECT_TRUE(r.closed);
}

TEST_F(DaemonProtocol, UnknownRequestTypeIsRefused) {
    auto r = bad_bytes(control_frame(protocol::make_message("frobnicate").dump()));
    EXPECT_EQ(r.code(), "bad-request") << r.describe();
    EXPECT_NE(r.text().find("unknown request type 'frobnicate'"), std::string::npos) << r.describe();
}

TEST_F(DaemonProtocol, RunWithoutARequestBodyIsRefused) {
    auto r = bad_bytes(control_frame(protocol::make_message("run").dump()));
    EXPECT_EQ(r.code(), "bad-request") << r.describe();
    EXPECT_NE(r.text().find("malformed run request"), std::string::npos) << r.describe();
}

TEST_F(DaemonProtocol, RunRequestFailingValidationIsRefused) {
    auto r = bad_bytes(control_frame(run_message({}).dump()));
    EXPECT_EQ(r.code(), "bad-request") << r.describe();
    EXPECT_NE(r.text().find("no command given"), std::string::npos) << r.describe();
}

TEST_F(DaemonProtocol, RunWithoutFdsIsABadRequest) {
    UniqueFd c = connect_to(daemon_->socket());
    protocol::send_message(c.get(), run_message({"true"}));
    auto r = await_reply(c.get(), std::chrono::seconds(10));
    EXPECT_EQ(r.code(), "bad-request") << r.describe();
    EXPECT_NE(r.text().find("expected 1 directory descriptor(s), got 0"), std::string::npos) << r.describe();
    EXPECT_TRUE(r.closed);
}

TEST_F(DaemonProtocol, RunWithANonDirectoryFdIsABadRequest) {
    UniqueFd file(::open("/etc/hostname", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(file);
    UniqueFd c = connect_to(daemon_->socket());
    int fds[1] = {file.get()};
    protocol::send_message(c.get(), run_message({"true"}), fds);
    auto r = await_reply(c.get(), std::chrono::seconds(10));
    EXPECT_EQ(r.code(), "bad-request") << r.describe();
    EXPECT_NE(r.text().find("the source is not a directory"), std::string::npos) << r.describe();
}

TEST_F(DaemonProtocol, RunWithAPipeAsSourceIsABadRequest) {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd pr(p[0]), pw(p[1]);
    UniqueFd c = connect_to(daemon_->socket());
    int fds[1] = {pr.get()};
    protocol::send_message(c.get(), run_message({"true"}), fds);
    auto r = await_reply(c.get(), std::chrono::seconds(10));
    EXPECT_EQ(r.code(), "bad-request") << r.describe();
    EXPECT_NE(r.text().find("not a directory"), std::string::npos) << r.describe();
}

TEST_F(DaemonProtocol, TwoFdsWithoutHasOutIsABadRequest) {
    Source src;
    UniqueFd a(::open(src.dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    UniqueFd b(::open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    UniqueFd c = connect_to(daemon_->socket());
    int fds[2] = {a.get(), b.get()};
    protocol::send_message(c.get(), run_message({"true"}, /*has_out=*/false), fds);
    auto r = await_reply(c.get(), std::chrono::seconds(10));
    EXPECT_EQ(r.code(), "bad-request") << r.describe();
    EXPECT_NE(r.text().find("expected 1 directory descriptor(s), got 2"), std::string::npos) << r.describe();
}

TEST_F(DaemonProtocol, HasOutWithOneFdIsABadRequest) {
    Source src;
    UniqueFd a(::open(src.dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    UniqueFd c = connect_to(daemon_->socket());
    int fds[1] = {a.get()};
    protocol::send_message(c.get(), run_message({"true"}, /*has_out=*/true), fds);
    auto r = await_reply(c.get(), std::chrono::seconds(10));
    EXPECT_EQ(r.code(), "bad-request") << r.describe();
    EXPECT_NE(r.text().find("expected 2 directory descriptor(s), got 1"), std::string::npos) << r.describe();
}

TEST_F(DaemonProtocol, OutputFdThatIsNotADirectoryIsABadRequest) {
    Source src;
    UniqueFd a(::open(src.dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    UniqueFd b(::open("/etc/hostname", O_RDONLY | O_CLOEXEC));
    UniqueFd c = connect_to(daemon_->socket());
    int fds[2] = {a.get(), b.get()};
    protocol::send_message(c.get(), run_message({"true"}, /*has_out=*/true), fds);
    auto r = await_reply(c.get(), std::chrono::seconds(10));
    EXPECT_EQ(r.code(), "bad-request") << r.describe();
    EXPECT_NE(r.text().find("the output is not a directory"), std::string::npos) << r.describe();
}

TEST_F(DaemonProtocol, TooManyFdsAreABadRequest) {
    std::vector<UniqueFd> owned;
    std::vector<int> raw;
    for (int i = 0; i < 12; ++i) {
        owned.emplace_back(::open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        raw.push_back(owned.back().get());
    }
    std::string bytes = control_frame(run_message({"true"}).dump());
    UniqueFd c = connect_to(daemon_->socket());
    iovec iov{bytes.data(), bytes.size()};
    std::vector<char> control(CMSG_SPACE(sizeof(int) * raw.size()));
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * raw.size());
    std::memcpy(CMSG_DATA(cm), raw.data(), sizeof(int) * raw.size());
    ASSERT_EQ(::sendmsg(c.get(), &msg, MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
    auto r = await_reply(c.get(), std::chrono::seconds(10));
    EXPECT_EQ(r.code(), "bad-request") << r.describe();
    EXPECT_TRUE(r.closed);
}

TEST_F(DaemonProtocol, BadClientsDoNotDisturbAnotherClientsJob) {
    while_a_job_runs([&] {
        std::vector<std::thread> bad;
        std::vector<Reply> replies(6);
        const std::vector<std::string> payloads = {
            "garbage garbage garbage garbage\n",
            be32(0xFFFFFFF0u) + "J",
            control_frame("this is not json"),
            control_frame(json({{"proto", {protocol::kProtoMajor + 1, 0}}, {"type", "run"}}).dump()),
            "",  // silent
            be32(100) + "J{",  // stalls mid-frame
        };
        for (size_t i = 0; i < payloads.size(); ++i)
            bad.emplace_back([&, i] { replies[i] = bad_bytes(payloads[i]); });
        for (auto& t : bad) t.join();
        EXPECT_EQ(replies[0].code(), "bad-request") << replies[0].describe();
        EXPECT_EQ(replies[1].code(), "bad-request") << replies[1].describe();
        EXPECT_EQ(replies[2].code(), "bad-request") << replies[2].describe();
        EXPECT_EQ(replies[3].code(), "version") << replies[3].describe();
        for (const auto& r : replies) {
            EXPECT_TRUE(r.closed) << r.describe();
            EXPECT_FALSE(r.timed_out) << r.describe();
        }
    });
    EXPECT_EQ(daemon_->ctl({"ping"}).status, 0);
}

TEST_F(DaemonProtocol, AClientThatVanishesMidRequestDoesNotDisturbTheDaemon) {
    while_a_job_runs([&] {
        for (int i = 0; i < 20; ++i) {
            UniqueFd c = connect_to(daemon_->socket());
            send_raw(c.get(), be32(50) + "J{\"pro");
        }  // closed at once
    });
    EXPECT_EQ(daemon_->ctl({"ping"}).status, 0);
}

// A daemon whose request timeout outlasts the job: the idle connections stay
// open for the whole run.
TEST(DaemonProtocolCrowd, FiftySilentConnectionsDoNotStopARealJob) {
    TestDaemon d;  // the default 10 s request timeout
    Source src;
    std::vector<UniqueFd> idle;
    for (int i = 0; i < 50; ++i) idle.push_back(connect_to(d.socket()));
    auto r = d.run(src.dir.path(), {"/bin/sh", "-c", "echo fine"}, {}, as_test_user());
    EXPECT_EQ(r.status, 0) << r.describe();
    EXPECT_EQ(r.out, "fine\n");
    // The idle ones are all still waiting, yet ping works.
    EXPECT_EQ(d.ctl({"ping"}).status, 0);
    // Each of them is dropped in the end (bounded: 2x the request timeout).
    auto deadline = Clock::now() + std::chrono::seconds(20);
    for (auto& c : idle) {
        auto left = deadline - Clock::now();
        auto rep = await_reply(c.get(), left > Clock::duration::zero() ? left : Clock::duration::zero());
        EXPECT_TRUE(rep.closed) << rep.describe();
        EXPECT_EQ(rep.code(), "bad-request") << rep.describe();
    }
}

// Opens silent connections until the daemon refuses one, and returns that
// refusal. Three would do if the daemon's count were exact at every instant,
// but a session whose client already left (the start-up ping) counts until its
// thread ends: under load, a silent connection can be refused in its place and
// the next one accepted. Each connection that was not refused within 3 s is a
// session and stays open; a few tries are enough.
Reply fill_to_the_limit(const TestDaemon& d, std::vector<UniqueFd>& idle) {
    for (int i = 0; i < 3; ++i) idle.push_back(connect_to(d.socket()));
    Reply r;
    for (int attempt = 0; attempt < 6; ++attempt) {
        UniqueFd extra = connect_to(d.socket());
        r = await_reply(extra.get(), std::chrono::seconds(3));
        if (!r.timed_out) break;
        idle.push_back(std::move(extra));
    }
    return r;
}

TEST(DaemonProtocolCrowd, BeyondMaxConnectionsANewClientIsToldToRetry) {
    TestDaemonOptions o;
    o.config_lines = {"max-connections = 3"};
    TestDaemon d(o);
    std::vector<UniqueFd> idle;
    auto r = fill_to_the_limit(d, idle);
    EXPECT_EQ(r.code(), "refused") << r.describe();
    EXPECT_NE(r.text().find("too many connections"), std::string::npos) << r.describe();
    EXPECT_TRUE(r.closed) << r.describe();
    // Once the crowd leaves, service resumes.
    idle.clear();
    auto deadline = Clock::now() + std::chrono::seconds(20);
    int status = -1;
    while (Clock::now() < deadline && (status = d.ctl({"ping"}).status) != 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_EQ(status, 0);
}

// BUG (daemon/server.cpp Server::serve + ctl/client.cpp Client::send): as with
// "unauthorized", the refusal is sent and the socket closed before the
// request is read; hermeticctl's send fails with EPIPE and the user sees
// "sending to hermeticd: ... Broken pipe" instead of "too many connections;
// retry later".
TEST(DaemonProtocolCrowd, HermeticctlShowsTooManyConnections) {
    TestDaemonOptions o;
    o.config_lines = {"max-connections = 3"};
    TestDaemon d(o);
    std::vector<UniqueFd> idle;
    ASSERT_EQ(fill_to_the_limit(d, idle).code(), "refused");
    for (int i = 0; i < 10; ++i) {
        auto p = d.ctl({"ping"});
        EXPECT_EQ(p.status, 125) << p.describe();
        EXPECT_NE(p.err.find("too many connections"), std::string::npos) << p.describe();
    }
}

// ---- who may connect -------------------------------------------------------

constexpr const char* kOutsider = "hermetic-outsider";

class Outsider : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        if (!::getpwnam(kOutsider)) {
            auto r = run_process({"useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", kOutsider});
            ASSERT_EQ(r.status, 0) << r.describe();
            created_ = true;
        }
        daemon_ = std::make_unique<TestDaemon>();
    }
    static void TearDownTestSuite() {
        daemon_.reset();
        if (created_) run_process({"userdel", kOutsider});
        created_ = false;
    }
    static ProcessOptions as_outsider() {
        passwd* pw = ::getpwnam(kOutsider);
        ProcessOptions o;
        o.uid = pw->pw_uid;
        o.gid = pw->pw_gid;
        o.groups = {pw->pw_gid};
        return o;
    }
    static bool created_;
    static std::unique_ptr<TestDaemon> daemon_;
};

bool Outsider::created_ = false;
std::unique_ptr<TestDaemon> Outsider::daemon_;

TEST_F(Outsider, IsNotInTheGroup) {
    group* gr = ::getgrnam("hermetic");
    ASSERT_TRUE(gr);
    for (char** m = gr->gr_mem; *m; ++m) EXPECT_STRNE(*m, kOutsider);
    EXPECT_NE(::getpwnam(kOutsider)->pw_gid, gr->gr_gid);
}

TEST_F(Outsider, SocketPermissionsKeepThemOut) {
    struct stat st{};
    ASSERT_EQ(::stat(daemon_->socket().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0660u);
    EXPECT_EQ(st.st_uid, 0u);
    EXPECT_EQ(st.st_gid, ::getgrnam("hermetic")->gr_gid);
    TempDir src("hermetic-src");
    auto r = daemon_->run(src.path(), {"true"}, {}, as_outsider());
    EXPECT_EQ(r.status, 125) << r.describe();
    EXPECT_NE(r.err.find("permission denied"), std::string::npos) << r.describe();
    EXPECT_NE(r.err.find("'hermetic' group"), std::string::npos) << r.describe();
    EXPECT_EQ(r.err.find("job:"), std::string::npos) << r.describe();
    auto p = daemon_->ctl({"ping"}, as_outsider());
    EXPECT_EQ(p.status, 125) << p.describe();
    EXPECT_NE(p.err.find("permission denied"), std::string::npos) << p.describe();
}

// Should the socket's mode ever be wrong, the daemon itself still refuses by
// SO_PEERCRED. (The test opens up its own daemon's socket to get that far.)
// The daemon answers an unauthorized peer at once, before any request.
TEST_F(Outsider, DaemonRefusesThemAsUnauthorized) {
    ASSERT_EQ(::chmod(daemon_->socket().c_str(), 0666), 0);
    int pipefd[2];
    ASSERT_EQ(::pipe2(pipefd, O_CLOEXEC), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::signal(SIGPIPE, SIG_IGN);
        auto o = as_outsider();
        if (::setgroups(o.groups.size(), o.groups.data()) != 0 || ::setresgid(*o.gid, *o.gid, *o.gid) != 0 ||
            ::setresuid(*o.uid, *o.uid, *o.uid) != 0)
            ::_exit(3);
        std::string answer = "no reply";
        try {
            UniqueFd c = connect_to(daemon_->socket());
            auto rep = await_reply(c.get(), std::chrono::seconds(10));
            answer = rep.code() + "\n" + rep.text() + (rep.closed ? "\nclosed" : "");
        } catch (...) {
        }
        (void)!::write(pipefd[1], answer.data(), answer.size());
        ::_exit(0);
    }
    ::close(pipefd[1]);
    std::string got;
    char buf[512];
    ssize_t n;
    while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
    ::close(pipefd[0]);
    int st = 0;
    ::waitpid(pid, &st, 0);
    ::chmod(daemon_->socket().c_str(), 0660);
    EXPECT_EQ(got,
              "unauthorized\npermission denied: only root and members of group 'hermetic' may use hermeticd\nclosed");
}

// BUG (daemon/session.cpp serve_session + ctl/client.cpp Client::send): the
// daemon sends "unauthorized" and closes as soon as it has accepted, without
// reading the request; hermeticctl connects, then sends its request into the
// closed socket, fails with EPIPE ("sending to hermeticd: ... Broken pipe")
// and never reads the error waiting in its receive queue. The user sees a
// broken pipe instead of the reason. (Before protocol::write_frame used
// MSG_NOSIGNAL, `hermeticctl ping` even died of SIGPIPE: exit 141, no message.)
// The same race hits server.cpp's "too many connections; retry later".
TEST_F(Outsider, HermeticctlShowsTheDaemonsUnauthorizedReason) {
    ASSERT_EQ(::chmod(daemon_->socket().c_str(), 0666), 0);
    TempDir src("hermetic-src");
    // A race, lost about half of the time: ten tries each.
    for (int i = 0; i < 10; ++i) {
        auto r = daemon_->run(src.path(), {"true"}, {}, as_outsider());
        EXPECT_EQ(r.status, 125) << r.describe();
        EXPECT_NE(r.err.find("permission denied: only root and members of group 'hermetic'"), std::string::npos)
            << r.describe();
        EXPECT_EQ(r.err.find("job:"), std::string::npos) << r.describe();
        auto p = daemon_->ctl({"ping"}, as_outsider());
        EXPECT_EQ(p.status, 125) << p.describe();
        EXPECT_NE(p.err.find("permission denied: only root and members of group 'hermetic'"), std::string::npos)
            << p.describe();
    }
    ::chmod(daemon_->socket().c_str(), 0660);
}

TEST_F(Outsider, GroupMemberIsServed) {
    Source src;
    auto r = daemon_->run(src.dir.path(), {"/bin/sh", "-c", "echo member"}, {}, as_test_user());
    EXPECT_EQ(r.status, 0) << r.describe();
    EXPECT_EQ(r.out, "member\n");
}

// ---- no daemon ---------------------------------------------------------------

TEST(NoDaemon, NothingAtTheSocketPath) {
    TempDir dir("hermetic-nodaemon");
    std::string sock = dir / "absent.sock";
    auto r = run_process({hermeticctl_path(), "--socket", sock, "run", "--src", dir.path(), "--", "true"});
    EXPECT_EQ(r.status, 125) << r.describe();
    EXPECT_NE(r.err.find("hermeticd is not running"), std::string::npos) << r.describe();
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
    auto p = run_process({hermeticctl_path(), "--socket", sock, "ping"});
    EXPECT_EQ(p.status, 125) << p.describe();
    EXPECT_NE(p.err.find("hermeticd is not running"), std::string::npos) << p.describe();
}

TEST(NoDaemon, StaleSocketFileNobodyListensOn) {
    TempDir dir("hermetic-nodaemon");
    std::string sock = dir / "stale.sock";
    {
        UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, sock.c_str(), sock.size() + 1);
        ASSERT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    }  // closed without listening: connect() gets ECONNREFUSED
    auto r = run_process({hermeticctl_path(), "--socket", sock, "run", "--src", dir.path(), "--", "true"});
    EXPECT_EQ(r.status, 125) << r.describe();
    EXPECT_NE(r.err.find("hermeticd is not running"), std::string::npos) << r.describe();
}

TEST(NoDaemon, HermeticSocketEnvironmentVariableIsUsed) {
    TempDir dir("hermetic-nodaemon");
    ProcessOptions o;
    o.env["HERMETIC_SOCKET"] = dir / "via-env.sock";
    auto r = run_process({hermeticctl_path(), "ping"}, o);
    EXPECT_EQ(r.status, 125) << r.describe();
    EXPECT_NE(r.err.find(dir / "via-env.sock"), std::string::npos) << r.describe();
}

// ---- hermeticctl facing a daemon that misbehaves ------------------------------

// Listens on a socket of its own and answers the first request with `reply`
// (raw bytes), then closes.
class FakeDaemon {
public:
    explicit FakeDaemon(std::string reply) : reply_(std::move(reply)) {
        path_ = dir_ / "fake.sock";
        listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
        if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
            ::listen(listener_.get(), 4) != 0)
            throw std::runtime_error("fake daemon: bind/listen");
        ::chmod(path_.c_str(), 0666);
        thread_ = std::thread([this] {
            UniqueFd c(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (!c) return;
            try {
                (void)protocol::read_frame(c.get(), Clock::now() + std::chrono::seconds(20));
            } catch (...) {
            }
            (void)!::send(c.get(), reply_.data(), reply_.size(), MSG_NOSIGNAL);
        });
    }
    ~FakeDaemon() {
        ::shutdown(listener_.get(), SHUT_RDWR);
        thread_.join();
    }
    [[nodiscard]] const std::string& socket() const { return path_; }

private:
    TempDir dir_{"hermetic-fake"};
    std::string path_, reply_;
    UniqueFd listener_;
    std::thread thread_;
};

ProcessResult ctl_run_against(const std::string& socket) {
    TempDir src("hermetic-src");
    return run_process({hermeticctl_path(), "--socket", socket, "run", "--src", src.path(), "--", "true"});
}

TEST(ClientFacingABadDaemon, OtherMajorVersionIsNamed) {
    FakeDaemon fake(control_frame(json({{"proto", {protocol::kProtoMajor + 1, 2}}, {"type", "accepted"}}).dump()));
    auto r = ctl_run_against(fake.socket());
    EXPECT_EQ(r.status, 125) << r.describe();
    EXPECT_NE(r.err.find(std::to_string(protocol::kProtoMajor + 1) + ".2"), std::string::npos) << r.describe();
    EXPECT_NE(r.err.find(protocol::version_string()), std::string::npos) << r.describe();
}

TEST(ClientFacingABadDaemon, HangUpMidConversationIs125WithAReason) {
    FakeDaemon fake("");
    auto r = ctl_run_against(fake.socket());
    EXPECT_EQ(r.status, 125) << r.describe();
    EXPECT_NE(r.err.find("closed the connection"), std::string::npos) << r.describe();
}

TEST(ClientFacingABadDaemon, GarbageReplyIs125WithAReason) {
    FakeDaemon fake("this is not a frame at all");
    auto r = ctl_run_against(fake.socket());
    EXPECT_EQ(r.status, 125) << r.describe();
    EXPECT_NE(r.err.find("hermeticctl: "), std::string::npos) << r.describe();
}

TEST(ClientFacingABadDaemon, ErrorReplyIsPrintedAsOneLine) {
    FakeDaemon fake(control_frame(protocol::make_error("refused", "the daemon is shutting down").dump()));
    auto r = ctl_run_against(fake.socket());
    EXPECT_EQ(r.status, 125) << r.describe();
    EXPECT_EQ(r.err, "hermeticctl: the daemon is shutting down\n");
}

}  // namespace
