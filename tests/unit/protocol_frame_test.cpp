// The wire framing: round trips of every kind and size, the limits a peer can't
// get past, truncation, fds riding on a frame, and the read deadline.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.hpp"
#include "protocol/frame.hpp"

// Records the largest single allocation while armed, to show that a frame's
// length prefix alone never makes the reader allocate.
namespace {
std::atomic<bool> g_track{false};
std::atomic<size_t> g_largest{0};

void* tracked_alloc(size_t n) {
    if (g_track.load(std::memory_order_relaxed)) {
        size_t cur = g_largest.load(std::memory_order_relaxed);
        while (n > cur && !g_largest.compare_exchange_weak(cur, n)) {
        }
    }
    void* p = std::malloc(n == 0 ? 1 : n);
    if (!p) throw std::bad_alloc();
    return p;
}
}  // namespace

void* operator new(size_t n) { return tracked_alloc(n); }
void* operator new[](size_t n) { return tracked_alloc(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace {

using namespace hermetic;
using namespace hermetic::protocol;
using Clock = std::chrono::steady_clock;

struct SocketPair {
    UniqueFd a, b;
    SocketPair() {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw std::runtime_error("socketpair");
        a.reset(sv[0]);
        b.reset(sv[1]);
    }
};

void raw_write(int fd, const std::string& bytes) {
    ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
}

std::string be32(uint32_t v) {
    uint32_t n = htonl(v);
    return std::string(reinterpret_cast<const char*>(&n), 4);
}

// Writes on a thread so that frames larger than the socket buffer can be read.
Frame round_trip(FrameKind kind, const std::string& payload) {
    SocketPair sp;
    std::thread w([&] { write_frame(sp.a.get(), kind, payload); });
    auto f = read_frame(sp.b.get());
    w.join();
    if (!f) throw std::runtime_error("unexpected EOF");
    return std::move(*f);
}

TEST(ProtocolFrame, RoundTripsEveryKind) {
    for (FrameKind k : {FrameKind::Control, FrameKind::Stdout, FrameKind::Stderr}) {
        auto f = round_trip(k, "hello \x01\xff binary");
        EXPECT_EQ(f.kind, k);
        EXPECT_EQ(f.payload, "hello \x01\xff binary");
        EXPECT_TRUE(f.fds.empty());
    }
}

TEST(ProtocolFrame, EmptyPayloadRoundTrips) {
    auto f = round_trip(FrameKind::Stdout, "");
    EXPECT_EQ(f.kind, FrameKind::Stdout);
    EXPECT_EQ(f.payload, "");
}

TEST(ProtocolFrame, WireFormatIsBigEndianLengthThenKind) {
    SocketPair sp;
    write_frame(sp.a.get(), FrameKind::Control, "{}");
    char buf[16];
    ASSERT_EQ(::read(sp.b.get(), buf, sizeof buf), 7);
    EXPECT_EQ(std::string(buf, 7), be32(3) + "J{}");
}

TEST(ProtocolFrame, LargestPayloadRoundTrips) {
    std::string payload(kMaxFrame - 1, '\0');
    for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 131 + (i >> 9));
    auto f = round_trip(FrameKind::Stderr, payload);
    EXPECT_EQ(f.kind, FrameKind::Stderr);
    ASSERT_EQ(f.payload.size(), payload.size());
    EXPECT_TRUE(f.payload == payload);
}

TEST(ProtocolFrame, WriterRefusesPayloadBeyondTheLimit) {
    SocketPair sp;
    std::string payload(kMaxFrame, 'x');  // + kind byte = kMaxFrame + 1
    EXPECT_THROW(write_frame(sp.a.get(), FrameKind::Stdout, payload), ProtocolError);
    // Nothing half-written: the peer sees a clean EOF.
    sp.a.reset();
    EXPECT_FALSE(read_frame(sp.b.get()).has_value());
}

TEST(ProtocolFrame, WritingToAPeerThatHungUpThrowsInsteadOfRaisingSigpipe) {
    // In a child with SIGPIPE at its default (fatal) disposition, as in a
    // process that never thought about it.
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        ::signal(SIGPIPE, SIG_DFL);
        SocketPair sp;
        sp.b.reset();
        int code = 1;
        try {
            write_frame(sp.a.get(), FrameKind::Control, "{}");
        } catch (const std::exception&) {
            code = 0;
        }
        ::_exit(code);
    }
    int st = 0;
    ASSERT_EQ(::waitpid(pid, &st, 0), pid);
    EXPECT_FALSE(WIFSIGNALED(st)) << "killed by signal " << WTERMSIG(st);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "no exception";
}

TEST(ProtocolFrame, SeveralFramesInARowKeepTheirBoundaries) {
    SocketPair sp;
    write_frame(sp.a.get(), FrameKind::Stdout, "one");
    write_frame(sp.a.get(), FrameKind::Stderr, "");
    write_frame(sp.a.get(), FrameKind::Control, "three");
    sp.a.reset();
    auto f1 = read_frame(sp.b.get());
    auto f2 = read_frame(sp.b.get());
    auto f3 = read_frame(sp.b.get());
    ASSERT_TRUE(f1 && f2 && f3);
    EXPECT_EQ(f1->payload, "one");
    EXPECT_EQ(f2->kind, FrameKind::Stderr);
    EXPECT_EQ(f2->payload, "");
    EXPECT_EQ(f3->payload, "three");
    EXPECT_FALSE(read_frame(sp.b.get()).has_value());  // clean EOF at a boundary
}

TEST(ProtocolFrame, WorksOverAPipeToo) {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd r(p[0]), w(p[1]);
    write_frame(w.get(), FrameKind::Stdout, "through a pipe");
    w.reset();
    auto f = read_frame(r.get());
    ASSERT_TRUE(f);
    EXPECT_EQ(f->payload, "through a pipe");
    EXPECT_FALSE(read_frame(r.get()).has_value());
}

TEST(ProtocolFrame, OversizeLengthPrefixIsRefusedWithoutAllocating) {
    SocketPair sp;
    raw_write(sp.a.get(), be32(0xFFFFFFF0u) + "J");
    g_largest = 0;
    g_track = true;
    try {
        (void)read_frame(sp.b.get(), Clock::now() + std::chrono::seconds(30));
        g_track = false;
        FAIL() << "an oversize frame was accepted";
    } catch (const FrameTimeout&) {
        g_track = false;
        FAIL() << "the reader waited for the payload of an oversize frame";
    } catch (const ProtocolError& e) {
        g_track = false;
        EXPECT_NE(std::string(e.what()).find("exceeds the limit"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(std::to_string(0xFFFFFFF0u)), std::string::npos) << e.what();
    }
    EXPECT_LT(g_largest.load(), size_t{64} << 10) << "the reader allocated for the announced length";
}

TEST(ProtocolFrame, JustOverTheLimitIsRefused) {
    SocketPair sp;
    raw_write(sp.a.get(), be32(kMaxFrame + 1) + "O");
    EXPECT_THROW((void)read_frame(sp.b.get()), ProtocolError);
}

TEST(ProtocolFrame, ExactlyTheLimitIsAccepted) {
    // kMaxFrame counts the kind byte: payload kMaxFrame - 1.
    SocketPair sp;
    std::string payload(kMaxFrame - 1, 'z');
    std::thread w([&] { raw_write(sp.a.get(), be32(kMaxFrame) + "O" + payload); });
    auto f = read_frame(sp.b.get());
    w.join();
    ASSERT_TRUE(f);
    EXPECT_EQ(f->payload.size(), kMaxFrame - 1);
}

TEST(ProtocolFrame, CallerChosenMaximumIsHonoured) {
    SocketPair sp;
    write_frame(sp.a.get(), FrameKind::Control, std::string(100, 'x'));  // length 101
    EXPECT_THROW((void)read_frame(sp.b.get(), std::nullopt, 100), ProtocolError);
    SocketPair ok;
    write_frame(ok.a.get(), FrameKind::Control, std::string(99, 'x'));  // length 100
    auto f = read_frame(ok.b.get(), std::nullopt, 100);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->payload.size(), 99u);
}

TEST(ProtocolFrame, ZeroLengthFrameIsRefused) {
    SocketPair sp;
    raw_write(sp.a.get(), be32(0));
    EXPECT_THROW((void)read_frame(sp.b.get()), ProtocolError);
}

TEST(ProtocolFrame, TruncatedHeaderIsAnError) {
    SocketPair sp;
    raw_write(sp.a.get(), std::string("\0\0", 2));
    sp.a.reset();
    try {
        (void)read_frame(sp.b.get());
        FAIL() << "a truncated header was accepted";
    } catch (const ProtocolError& e) {
        EXPECT_NE(std::string(e.what()).find("middle of a frame"), std::string::npos) << e.what();
    }
}

TEST(ProtocolFrame, EofBeforeTheKindByteIsAnError) {
    SocketPair sp;
    raw_write(sp.a.get(), be32(5));
    sp.a.reset();
    EXPECT_THROW((void)read_frame(sp.b.get()), ProtocolError);
}

TEST(ProtocolFrame, TruncatedPayloadIsAnError) {
    SocketPair sp;
    raw_write(sp.a.get(), be32(11) + "Ohalf");
    sp.a.reset();
    try {
        (void)read_frame(sp.b.get());
        FAIL() << "a truncated payload was accepted";
    } catch (const ProtocolError& e) {
        EXPECT_NE(std::string(e.what()).find("middle of a frame"), std::string::npos) << e.what();
    }
}

TEST(ProtocolFrame, UnknownKindIsRefused) {
    for (char k : {'X', '\0', 'j', 'o'}) {
        SocketPair sp;
        raw_write(sp.a.get(), be32(3) + std::string(1, k) + "ab");
        try {
            (void)read_frame(sp.b.get());
            FAIL() << "kind " << int(k) << " accepted";
        } catch (const ProtocolError& e) {
            EXPECT_NE(std::string(e.what()).find("unknown frame kind"), std::string::npos) << e.what();
        }
    }
}

TEST(ProtocolFrame, CleanEofAtABoundaryIsNotAnError) {
    SocketPair sp;
    sp.a.reset();
    EXPECT_FALSE(read_frame(sp.b.get()).has_value());
    EXPECT_FALSE(read_frame(sp.b.get(), Clock::now() + std::chrono::seconds(5)).has_value());
}

TEST(ProtocolFrame, FdsTravelWithTheFrame) {
    SocketPair sp;
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd pr(p[0]), pw(p[1]);
    int dir = ::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(dir, 0);
    UniqueFd root(dir);
    int fds[2] = {pw.get(), root.get()};
    write_frame(sp.a.get(), FrameKind::Control, "{\"with\":\"fds\"}", fds);
    write_frame(sp.a.get(), FrameKind::Control, "next");  // no fds on this one

    auto f = read_frame(sp.b.get());
    ASSERT_TRUE(f);
    EXPECT_EQ(f->payload, "{\"with\":\"fds\"}");
    ASSERT_EQ(f->fds.size(), 2u);
    // The first is our pipe's write end: what goes in comes out of our read end.
    ASSERT_EQ(::write(f->fds[0].get(), "x", 1), 1);
    char c = 0;
    ASSERT_EQ(::read(pr.get(), &c, 1), 1);
    EXPECT_EQ(c, 'x');
    // The second is the same directory.
    struct stat a{}, b{};
    ASSERT_EQ(::fstat(root.get(), &a), 0);
    ASSERT_EQ(::fstat(f->fds[1].get(), &b), 0);
    EXPECT_EQ(a.st_ino, b.st_ino);
    EXPECT_EQ(a.st_dev, b.st_dev);
    // Received with close-on-exec.
    EXPECT_TRUE(::fcntl(f->fds[0].get(), F_GETFD) & FD_CLOEXEC);
    EXPECT_TRUE(::fcntl(f->fds[1].get(), F_GETFD) & FD_CLOEXEC);

    auto g = read_frame(sp.b.get());
    ASSERT_TRUE(g);
    EXPECT_EQ(g->payload, "next");
    EXPECT_TRUE(g->fds.empty());
}

TEST(ProtocolFrame, TooManyFdsAreAProtocolError) {
    // More than kMaxPassedFds (8), sent by hand since write_frame won't.
    SocketPair sp;
    std::vector<UniqueFd> owned;
    std::vector<int> raw;
    for (int i = 0; i < 12; ++i) {
        owned.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        raw.push_back(owned.back().get());
    }
    std::string bytes = be32(3) + "J{}";
    iovec iov{bytes.data(), bytes.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 12)] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * raw.size());
    std::memcpy(CMSG_DATA(cm), raw.data(), sizeof(int) * raw.size());
    ASSERT_EQ(::sendmsg(sp.a.get(), &msg, 0), static_cast<ssize_t>(bytes.size()));
    EXPECT_THROW((void)read_frame(sp.b.get()), ProtocolError);
}

TEST(ProtocolFrame, SilentPeerTimesOut) {
    SocketPair sp;
    auto t0 = Clock::now();
    EXPECT_THROW((void)read_frame(sp.b.get(), t0 + std::chrono::milliseconds(200)), FrameTimeout);
    auto took = Clock::now() - t0;
    EXPECT_GE(took, std::chrono::milliseconds(190));
    EXPECT_LT(took, std::chrono::seconds(5));  // bounded
}

TEST(ProtocolFrame, PeerStallingMidHeaderTimesOut) {
    SocketPair sp;
    raw_write(sp.a.get(), std::string("\0\0", 2));
    auto t0 = Clock::now();
    EXPECT_THROW((void)read_frame(sp.b.get(), t0 + std::chrono::milliseconds(200)), FrameTimeout);
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
}

TEST(ProtocolFrame, PeerStallingMidPayloadTimesOut) {
    SocketPair sp;
    raw_write(sp.a.get(), be32(100) + "Jonly a little");
    auto t0 = Clock::now();
    EXPECT_THROW((void)read_frame(sp.b.get(), t0 + std::chrono::milliseconds(200)), FrameTimeout);
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
}

TEST(ProtocolFrame, TrickleFeedingCannotExtendTheDeadline) {
    // A byte every 50 ms never completes a 100-byte frame within 300 ms: the
    // deadline is for the whole frame, not per read.
    SocketPair sp;
    std::atomic<bool> stop{false};
    std::thread w([&] {
        std::string bytes = be32(100) + "J" + std::string(99, 'x');
        for (char c : bytes) {
            if (stop) return;
            if (::write(sp.a.get(), &c, 1) != 1) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    });
    auto t0 = Clock::now();
    EXPECT_THROW((void)read_frame(sp.b.get(), t0 + std::chrono::milliseconds(300)), FrameTimeout);
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(3));
    stop = true;
    w.join();
}

TEST(ProtocolFrame, FrameArrivingBeforeTheDeadlineIsRead) {
    SocketPair sp;
    std::thread w([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        write_frame(sp.a.get(), FrameKind::Stdout, "in time");
    });
    auto f = read_frame(sp.b.get(), Clock::now() + std::chrono::seconds(30));
    w.join();
    ASSERT_TRUE(f);
    EXPECT_EQ(f->payload, "in time");
}

}  // namespace
