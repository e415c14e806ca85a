// Tree copies across users (root only): the permission checks are the kernel's,
// made against the credentials of the process doing each side.
#include "sandbox/tree_stream.hpp"

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <thread>
#include <string>

#include <gtest/gtest.h>

#include "common/io.hpp"
#include "common/sys_error.hpp"
#include "common/unique_fd.hpp"

namespace hermetic::sandbox {
namespace {

constexpr uid_t kNobody = 65534;

struct TempDir {
    std::string path;
    TempDir() {
        const char* base = std::getenv("TMPDIR");
        std::string tmpl = std::string(base && *base ? base : "/tmp") + "/tree_stream_it.XXXXXX";
        if (!::mkdtemp(tmpl.data())) throw_errno("mkdtemp");
        path = tmpl;
        check(::chmod(path.c_str(), 0755), "chmod");
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);  // as root: modes don't get in the way
    }
    [[nodiscard]] std::string operator/(const std::string& rel) const { return path + "/" + rel; }
    [[nodiscard]] UniqueFd fd() const { return open_dir(path.c_str()); }
};

void write_file(const std::string& path, const std::string& content, mode_t mode) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) throw_errno("open " + path);
    write_all(fd.get(), content);
    check(::fchmod(fd.get(), mode), "fchmod");
}

void make_dir(const std::string& path, mode_t mode) {
    check(::mkdir(path.c_str(), 0700), "mkdir " + path);
    check(::chmod(path.c_str(), mode), "chmod");
}

// A forked child that drops to uid/gid 65534 with no supplementary groups, runs
// fn and reports one line: "ok <fn's text>" or "error <kind> <message>".
class NobodyChild {
public:
    explicit NobodyChild(const std::function<std::string()>& fn) {
        FdPair report = make_pipe();
        pid_ = ::fork();
        if (pid_ < 0) throw_errno("fork");
        if (pid_ == 0) {
            report.read.reset();
            std::string out;
            try {
                if (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
                    ::setresuid(kNobody, kNobody, kNobody) != 0) {
                    out = "setup failed: " + errno_string(errno);
                } else {
                    out = "ok " + fn();
                }
            } catch (const TreeError& e) {
                out = "error " + std::to_string(static_cast<int>(e.kind())) + " " + e.what();
            } catch (const std::exception& e) {
                out = std::string("exception ") + e.what();
            }
            try {
                write_all(report.write.get(), out);
            } catch (...) {
            }
            ::_exit(0);
        }
        report_ = std::move(report.read);
    }
    NobodyChild(const NobodyChild&) = delete;
    NobodyChild& operator=(const NobodyChild&) = delete;
    ~NobodyChild() {
        if (pid_ > 0) {
            int st;
            ::waitpid(pid_, &st, 0);
        }
    }

    std::string finish() {
        std::string out = read_to_end(report_.get(), 1 << 20);
        int st = 0;
        check(retry_eintr([&] { return ::waitpid(pid_, &st, 0); }), "waitpid");
        pid_ = -1;
        EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "child status " << st;
        return out;
    }

private:
    pid_t pid_ = -1;
    UniqueFd report_;
};

std::string error_line(const TreeError& e) { return "error " + std::to_string(static_cast<int>(e.kind())) + " " + e.what(); }

const std::string kUnreadable = std::to_string(static_cast<int>(TreeError::Kind::Unreadable));

class TreeStreamAsOtherUser : public ::testing::Test {
protected:
    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "needs root (switches to uid 65534)";
    }

    // Sends src as nobody; receives here (as root). Returns {sender's line, receiver's line}.
    static std::pair<std::string, std::string> send_as_nobody(const TempDir& src) {
        UniqueFd src_fd = src.fd();
        FdPair data = make_pipe();
        NobodyChild child([&] {
            data.read.reset();
            SendResult r = send_tree(src_fd.get(), data.write.get(), {});
            return std::to_string(r.entries);
        });
        data.write.reset();
        std::string received;
        try {
            ReceiveResult r = receive_tree(data.read.get(), -1, {});
            received = "ok " + std::to_string(r.entries.size());
        } catch (const TreeError& e) {
            received = error_line(e);
        }
        data.read.reset();
        return {child.finish(), received};
    }
};

TEST_F(TreeStreamAsOtherUser, SenderCannotReadWhatItsUserCannot) {
    TempDir src;
    write_file(src / "public", "anyone", 0644);
    write_file(src / "secret", "root only", 0600);

    // Root reads it: the file itself is fine, only the credentials differ.
    {
        UniqueFd fd = src.fd();
        FdPair data = make_pipe();
        std::thread t([&] {
            send_tree(fd.get(), data.write.get(), {});
            data.write.reset();
        });
        ReceiveResult r = receive_tree(data.read.get(), -1, {});
        t.join();
        EXPECT_EQ(r.entries.size(), 2U);
    }

    auto [sent, received] = send_as_nobody(src);
    EXPECT_EQ(sent, "error " + kUnreadable + " cannot read 'secret': Permission denied");
    EXPECT_EQ(received, sent) << "the receiver learns the reason from the stream";

    // Same user and mode, but readable: copied.
    ASSERT_EQ(::chmod((src / "secret").c_str(), 0604), 0);
    std::tie(sent, received) = send_as_nobody(src);
    EXPECT_EQ(sent, "ok 2");
    EXPECT_EQ(received, "ok 2");
}

TEST_F(TreeStreamAsOtherUser, SupplementaryGroupsAreDropped) {
    TempDir src;
    write_file(src / "group_readable", "gid 0", 0640);  // root's group
    ASSERT_EQ(::chown((src / "group_readable").c_str(), 0, 0), 0);
    auto [sent, received] = send_as_nobody(src);
    EXPECT_EQ(sent, "error " + kUnreadable + " cannot read 'group_readable': Permission denied");
}

TEST_F(TreeStreamAsOtherUser, UnreadableAndUnsearchableDirectories) {
    {
        TempDir src;
        make_dir(src / "private", 0700);
        write_file(src / "private/f", "x", 0644);
        auto [sent, received] = send_as_nobody(src);
        EXPECT_EQ(sent, "error " + kUnreadable + " cannot read 'private': Permission denied");
        EXPECT_EQ(received, sent);
    }
    {
        // Listable but not searchable: the entries can't even be stat'ed.
        TempDir src;
        make_dir(src / "noexec", 0744);
        write_file(src / "noexec/f", "x", 0644);
        auto [sent, received] = send_as_nobody(src);
        EXPECT_EQ(sent, "error " + kUnreadable + " cannot read 'noexec/f': Permission denied");
    }
}

TEST_F(TreeStreamAsOtherUser, ReceiverCreatesFilesOwnedByItsUser) {
    TempDir src, dst;
    make_dir(src / "d", 0755);
    write_file(src / "d/f", "content", 0644);
    write_file(src / "exec", "#!/bin/sh\n", 04755);
    make_dir(src / "ro", 0555);
    write_file(src / "ro/inside", "x", 0444);
    ASSERT_EQ(::symlink("d/f", (src / "link").c_str()), 0);
    ASSERT_EQ(::chown(dst.path.c_str(), kNobody, kNobody), 0);

    UniqueFd src_fd = src.fd();
    UniqueFd dst_fd = dst.fd();
    FdPair data = make_pipe();
    NobodyChild child([&] {
        data.write.reset();
        ReceiveOptions ro;
        ro.set_mtime = 0;
        ReceiveResult r = receive_tree(data.read.get(), dst_fd.get(), ro);
        return std::to_string(r.entries.size());
    });
    data.read.reset();
    SendResult sent = send_tree(src_fd.get(), data.write.get(), {});
    data.write.reset();
    EXPECT_EQ(child.finish(), "ok 6");
    EXPECT_EQ(sent.entries, 6U);

    for (const char* rel : {"d", "d/f", "exec", "ro", "ro/inside", "link"}) {
        struct stat st {};
        ASSERT_EQ(::lstat((dst / rel).c_str(), &st), 0) << rel;
        EXPECT_EQ(st.st_uid, kNobody) << rel;
        EXPECT_EQ(st.st_gid, kNobody) << rel;
        EXPECT_EQ(st.st_mtim.tv_sec, 0) << rel;
    }
    struct stat st {};
    ASSERT_EQ(::stat((dst / "exec").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0755U);
    ASSERT_EQ(::stat((dst / "ro").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0555U);
}

TEST_F(TreeStreamAsOtherUser, ReceiverCannotWriteWhereItsUserCannot) {
    TempDir src, dst;  // dst stays root's, 0755
    write_file(src / "f", "x", 0644);
    UniqueFd src_fd = src.fd();
    UniqueFd dst_fd = dst.fd();
    FdPair data = make_pipe();
    NobodyChild child([&] {
        data.write.reset();
        receive_tree(data.read.get(), dst_fd.get(), {});
        return std::string("created");
    });
    data.read.reset();
    try {
        send_tree(src_fd.get(), data.write.get(), {});
    } catch (const TreeError&) {
        // The receiver may be gone before the end: EPIPE.
    }
    data.write.reset();
    EXPECT_EQ(child.finish(), "error " + std::to_string(static_cast<int>(TreeError::Kind::Io)) +
                                  " cannot write 'f': Permission denied");
    EXPECT_TRUE(std::filesystem::is_empty(dst.path));
}

}  // namespace
}  // namespace hermetic::sandbox
