// A job's stored output: frames as on the wire, a cap with one truncation
// notice, replay, and a torn tail from a crash.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "common/sys_error.hpp"
#include "daemon/output_log.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

using namespace hermetic;
using namespace hermetic::daemon;
using protocol::FrameKind;
using hermetic::test::TempDir;

using Entry = std::pair<FrameKind, std::string>;

std::vector<Entry> replay(const std::string& path) {
    std::vector<Entry> out;
    replay_output_log(path, [&](FrameKind k, std::string_view d) { out.emplace_back(k, std::string(d)); });
    return out;
}

std::string joined(const std::vector<Entry>& v, FrameKind kind) {
    std::string s;
    for (const auto& [k, d] : v)
        if (k == kind) s += d;
    return s;
}

off_t file_size(const std::string& path) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) return -1;
    return st.st_size;
}

class OutputLogTest : public ::testing::Test {
protected:
    TempDir dir_{"hermetic-outlog"};
    std::string path_ = dir_ / "output.log";
};

TEST_F(OutputLogTest, FramesAreStoredAndReplayedInOrder) {
    {
        OutputLog log(path_, 1 << 20);
        log.append(FrameKind::Stdout, "out 1\n");
        log.append(FrameKind::Stderr, "err 1\n");
        log.append(FrameKind::Stdout, std::string("bin\0ary\xff", 8));
        log.sync();
        EXPECT_FALSE(log.truncated());
    }
    auto v = replay(path_);
    ASSERT_EQ(v.size(), 3u);
    EXPECT_EQ(v[0], Entry(FrameKind::Stdout, "out 1\n"));
    EXPECT_EQ(v[1], Entry(FrameKind::Stderr, "err 1\n"));
    EXPECT_EQ(v[2], Entry(FrameKind::Stdout, std::string("bin\0ary\xff", 8)));
}

TEST_F(OutputLogTest, FileHoldsExactlyTheWireFrames) {
    {
        OutputLog log(path_, 1 << 20);
        log.append(FrameKind::Stdout, "abc");
    }
    EXPECT_EQ(hermetic::test::read_file(path_), std::string("\0\0\0\4Oabc", 8));
}

TEST_F(OutputLogTest, LogFileIsPrivate) {
    OutputLog log(path_, 100);
    struct stat st{};
    ASSERT_EQ(::stat(path_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(OutputLogTest, CreatingTruncatesAnOldLog) {
    {
        OutputLog log(path_, 100);
        log.append(FrameKind::Stdout, "old");
    }
    {
        OutputLog log(path_, 100);
        log.append(FrameKind::Stdout, "new");
    }
    auto v = replay(path_);
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].second, "new");
}

TEST_F(OutputLogTest, RefusesToFollowASymlink) {
    ASSERT_EQ(::symlink((dir_ / "elsewhere").c_str(), path_.c_str()), 0);
    EXPECT_THROW(OutputLog(path_, 100), SysError);
    EXPECT_NE(::access((dir_ / "elsewhere").c_str(), F_OK), 0);
}

TEST_F(OutputLogTest, CapStoresWhatFitsThenOneNotice) {
    {
        OutputLog log(path_, 10);
        log.append(FrameKind::Stdout, "12345");
        log.append(FrameKind::Stderr, "678");
        EXPECT_FALSE(log.truncated());
        log.append(FrameKind::Stdout, "90abc");  // only "90" fits
        EXPECT_TRUE(log.truncated());
        log.append(FrameKind::Stdout, "more");  // dropped
        log.append(FrameKind::Stderr, "more");  // dropped
        log.sync();
    }
    auto v = replay(path_);
    ASSERT_EQ(v.size(), 4u);
    EXPECT_EQ(v[0], Entry(FrameKind::Stdout, "12345"));
    EXPECT_EQ(v[1], Entry(FrameKind::Stderr, "678"));
    EXPECT_EQ(v[2], Entry(FrameKind::Stdout, "90"));
    EXPECT_EQ(v[3].first, FrameKind::Stderr);
    EXPECT_NE(v[3].second.find("stored log truncated at 10 bytes"), std::string::npos) << v[3].second;
    // The build's own bytes stored never exceed the cap.
    EXPECT_EQ(joined({v.begin(), v.begin() + 3}, FrameKind::Stdout).size() +
                  joined({v.begin(), v.begin() + 3}, FrameKind::Stderr).size(),
              10u);
}

TEST_F(OutputLogTest, ChunkExactlyFillingTheCapIsNotTruncated) {
    {
        OutputLog log(path_, 6);
        log.append(FrameKind::Stdout, "abcdef");
        EXPECT_FALSE(log.truncated());
        log.append(FrameKind::Stdout, "g");
        EXPECT_TRUE(log.truncated());
    }
    auto v = replay(path_);
    ASSERT_EQ(v.size(), 2u);  // no empty frame for the part that fit: nothing did
    EXPECT_EQ(v[0].second, "abcdef");
    EXPECT_NE(v[1].second.find("truncated"), std::string::npos);
}

TEST_F(OutputLogTest, ZeroCapStoresOnlyTheNotice) {
    {
        OutputLog log(path_, 0);
        log.append(FrameKind::Stdout, "x");
        log.append(FrameKind::Stdout, "y");
        EXPECT_TRUE(log.truncated());
    }
    auto v = replay(path_);
    ASSERT_EQ(v.size(), 1u);
    EXPECT_NE(v[0].second.find("truncated at 0 bytes"), std::string::npos);
}

TEST_F(OutputLogTest, FileSizeStaysBoundedByTheCap) {
    {
        OutputLog log(path_, 64 << 10);
        std::string chunk(64 << 10, 'z');
        for (int i = 0; i < 64; ++i) log.append(FrameKind::Stdout, chunk);  // 4 MiB offered
    }
    EXPECT_LT(file_size(path_), (64 << 10) + 1024);
}

TEST_F(OutputLogTest, ChunkLargerThanAFrameIsStoredWhole) {
    // The relay reads at most kMaxOutputChunk, but append() itself must not
    // fail on a bigger piece: it is split into frames a reader accepts.
    std::string big(protocol::kMaxFrame + 12345, 'q');
    for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>('a' + (i / 4096) % 26);
    {
        OutputLog log(path_, 8ull << 20);
        ASSERT_NO_THROW(log.append(FrameKind::Stdout, big));
        log.append(FrameKind::Stderr, "after");
    }
    auto v = replay(path_);
    EXPECT_EQ(joined(v, FrameKind::Stdout), big);
    ASSERT_FALSE(v.empty());
    EXPECT_EQ(v.back(), Entry(FrameKind::Stderr, "after"));
}

TEST_F(OutputLogTest, ManySmallChunksReplayInOrder) {
    std::string want_out, want_err;
    {
        OutputLog log(path_, 1 << 20);
        for (int i = 0; i < 1000; ++i) {
            std::string s = std::to_string(i) + "\n";
            if (i % 3 == 0) {
                log.append(FrameKind::Stderr, s);
                want_err += s;
            } else {
                log.append(FrameKind::Stdout, s);
                want_out += s;
            }
        }
    }
    auto v = replay(path_);
    EXPECT_EQ(v.size(), 1000u);
    EXPECT_EQ(joined(v, FrameKind::Stdout), want_out);
    EXPECT_EQ(joined(v, FrameKind::Stderr), want_err);
}

TEST_F(OutputLogTest, TornTailIsTolerated) {
    {
        OutputLog log(path_, 1 << 20);
        log.append(FrameKind::Stdout, "whole one\n");
        log.append(FrameKind::Stderr, "whole two\n");
        log.append(FrameKind::Stdout, "cut short by a crash\n");
    }
    off_t full = file_size(path_);
    // Every possible cut inside the last frame: the two whole frames survive.
    const off_t last_start = 2 * (5 + 10);
    for (off_t cut = last_start + 1; cut < full; ++cut) {
        ASSERT_EQ(::truncate(path_.c_str(), cut), 0);
        std::vector<Entry> v;
        ASSERT_NO_THROW(v = replay(path_)) << "cut at " << cut;
        ASSERT_EQ(v.size(), 2u) << "cut at " << cut;
        EXPECT_EQ(v[1].second, "whole two\n");
    }
}

TEST_F(OutputLogTest, GarbageTailIsTolerated) {
    {
        OutputLog log(path_, 1 << 20);
        log.append(FrameKind::Stdout, "good\n");
    }
    int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "\xff\xff\xff\xffZgarbage", 12), 12);  // an absurd length
    ::close(fd);
    auto v = replay(path_);
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].second, "good\n");
}

TEST_F(OutputLogTest, EmptyLogReplaysNothing) {
    { OutputLog log(path_, 100); }
    EXPECT_TRUE(replay(path_).empty());
}

TEST_F(OutputLogTest, ReplayOfAMissingLogThrows) {
    EXPECT_THROW(replay(dir_ / "absent.log"), SysError);
}

}  // namespace
