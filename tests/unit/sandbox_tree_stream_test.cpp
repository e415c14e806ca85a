#include "sandbox/tree_stream.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/io.hpp"
#include "common/sha256.hpp"
#include "common/sys_error.hpp"
#include "common/unique_fd.hpp"

namespace hermetic::sandbox {
namespace {

using Kind = TreeError::Kind;

// ---------------------------------------------------------------------------
// File system helpers

void make_writable(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return;
    ::chmod(path.c_str(), 0700);
    DIR* d = ::opendir(path.c_str());
    if (!d) return;
    while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") make_writable(path + "/" + n);
    }
    ::closedir(d);
}

std::string default_tmp() {
    const char* base = std::getenv("TMPDIR");
    return base && *base ? base : "/tmp";
}

struct TempDir {
    std::string path;
    explicit TempDir(const std::string& base = default_tmp()) {
        std::string tmpl = base + "/tree_stream_test.XXXXXX";
        if (!::mkdtemp(tmpl.data())) throw_errno("mkdtemp");
        path = tmpl;
    }
    ~TempDir() {
        make_writable(path);
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    [[nodiscard]] std::string operator/(const std::string& rel) const { return path + "/" + rel; }
    [[nodiscard]] UniqueFd fd() const { return open_dir(path.c_str()); }
};

void write_file(const std::string& path, const std::string& content, mode_t mode = 0644) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) throw_errno("open " + path);
    write_all(fd.get(), content);
    check(::fchmod(fd.get(), mode), "fchmod");
}

void make_dir(const std::string& path, mode_t mode = 0755) {
    check(::mkdir(path.c_str(), 0700), "mkdir " + path);
    check(::chmod(path.c_str(), mode), "chmod");
}

void make_link(const std::string& target, const std::string& path) { check(::symlink(target.c_str(), path.c_str()), "symlink"); }

std::string read_file(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) throw_errno("open " + path);
    return read_to_end(fd.get(), size_t{1} << 31);
}

struct Node {
    char type = '?';
    mode_t mode = 0;
    std::string data;  // file content or link target
    bool operator==(const Node&) const = default;
};

// Path -> node for everything below root (root excluded), never following links.
void snapshot_into(const std::string& root, const std::string& rel, std::map<std::string, Node>& out) {
    std::string dir = rel.empty() ? root : root + "/" + rel;
    DIR* d = ::opendir(dir.c_str());
    if (!d) throw_errno("opendir " + dir);
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
    for (auto& n : names) {
        std::string r = rel.empty() ? n : rel + "/" + n;
        std::string full = root + "/" + r;
        struct stat st {};
        check(::lstat(full.c_str(), &st), "lstat");
        Node node;
        node.mode = st.st_mode & 07777;
        if (S_ISDIR(st.st_mode)) {
            node.type = 'd';
            out[r] = node;
            snapshot_into(root, r, out);
            continue;
        }
        if (S_ISREG(st.st_mode)) {
            node.type = 'f';
            node.data = read_file(full);
        } else if (S_ISLNK(st.st_mode)) {
            node.type = 'l';
            node.mode = 0;
            char buf[4096];
            ssize_t len = ::readlink(full.c_str(), buf, sizeof buf);
            node.data.assign(buf, static_cast<size_t>(len));
        } else {
            node.type = 's';
        }
        out[r] = node;
    }
}

std::map<std::string, Node> snapshot(const std::string& root) {
    std::map<std::string, Node> out;
    snapshot_into(root, "", out);
    return out;
}

std::string random_bytes(size_t n, uint32_t seed) {
    std::mt19937_64 rng(seed);
    std::string s(n, '\0');
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = rng();
        std::memcpy(s.data() + i, &v, std::min<size_t>(8, n - i));
    }
    return s;
}

std::string shell_sha256(const std::string& cmd) {
    FILE* f = ::popen(cmd.c_str(), "r");
    if (!f) throw_errno("popen");
    char buf[128] = {};
    size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    ::pclose(f);
    return std::string(buf, n).substr(0, 64);
}

// ---------------------------------------------------------------------------
// Running both sides

struct Transfer {
    SendResult sent;
    ReceiveResult received;
    std::exception_ptr send_error;
    std::exception_ptr receive_error;
};

// Sender on a thread, receiver here, connected by a pipe.
Transfer transfer(int src_fd, int dest_fd, const SendOptions& so, const ReceiveOptions& ro) {
    Transfer t;
    FdPair p = make_pipe();
    std::thread sender([&] {
        try {
            t.sent = send_tree(src_fd, p.write.get(), so);
        } catch (...) {
            t.send_error = std::current_exception();
        }
        p.write.reset();
    });
    try {
        t.received = receive_tree(p.read.get(), dest_fd, ro);
    } catch (...) {
        t.receive_error = std::current_exception();
    }
    p.read.reset();  // a sender still writing gets EPIPE instead of blocking
    sender.join();
    return t;
}

// Returns the TreeError in ep (fails the test when it's something else or absent).
std::optional<TreeError> tree_error(const std::exception_ptr& ep) {
    if (!ep) return std::nullopt;
    try {
        std::rethrow_exception(ep);
    } catch (const TreeError& e) {
        return e;
    } catch (const std::exception& e) {
        ADD_FAILURE() << "not a TreeError: " << e.what();
    }
    return std::nullopt;
}

void rethrow_if(const std::exception_ptr& ep) {
    if (ep) std::rethrow_exception(ep);
}

// Runs fn on a thread; a hang fails the test and ends the process rather than
// wedging the whole run.
template <typename F>
void within(std::chrono::seconds limit, F&& fn) {
    auto fut = std::async(std::launch::async, std::forward<F>(fn));
    if (fut.wait_for(limit) != std::future_status::ready) {
        ADD_FAILURE() << "timed out (blocked?)";
        std::fflush(nullptr);
        ::_exit(1);
    }
    fut.get();
}

std::string capture_stream(int src_fd, const SendOptions& so = {}) {
    FdPair p = make_pipe();
    std::string out;
    std::thread reader([&] { out = read_to_end(p.read.get(), size_t{1} << 30); });
    std::exception_ptr err;
    try {
        send_tree(src_fd, p.write.get(), so);
    } catch (...) {
        err = std::current_exception();
    }
    p.write.reset();
    reader.join();
    rethrow_if(err);
    return out;
}

// Feeds bytes to receive_tree from a memfd (regular file: exercises the paths
// without splice) or through a pipe.
ReceiveResult receive_bytes(const std::string& bytes, int dest_fd, const ReceiveOptions& ro = {}, bool via_pipe = false) {
    if (!via_pipe) {
        UniqueFd m(::memfd_create("stream", MFD_CLOEXEC));
        if (!m) throw_errno("memfd_create");
        write_all(m.get(), bytes);
        check(::lseek(m.get(), 0, SEEK_SET), "lseek");
        return receive_tree(m.get(), dest_fd, ro);
    }
    FdPair p = make_pipe();
    std::thread writer([&] {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &set, nullptr);
        try {
            write_all(p.write.get(), bytes);
        } catch (const SysError&) {
        }
        p.write.reset();
    });
    std::exception_ptr err;
    ReceiveResult r;
    try {
        r = receive_tree(p.read.get(), dest_fd, ro);
    } catch (...) {
        err = std::current_exception();
    }
    p.read.reset();
    writer.join();
    rethrow_if(err);
    return r;
}

TreeError expect_receive_error(const std::string& bytes, int dest_fd = -1, const ReceiveOptions& ro = {}) {
    try {
        receive_bytes(bytes, dest_fd, ro);
    } catch (const TreeError& e) {
        return e;
    }
    ADD_FAILURE() << "no TreeError";
    return TreeError(Kind::Io, "none");
}

// ---------------------------------------------------------------------------
// A test-side encoder of the format, to craft streams (with valid digests, so
// each case exercises the check it names rather than the digest).

class Builder {
public:
    Builder() {
        meta(std::string("HRMTREE\n", 8));
        u32(kTreeStreamVersion);
    }
    explicit Builder(std::string header) { meta(header); }

    Builder& meta(std::string_view b) {
        s_ += b;
        h_.update(b);
        return *this;
    }
    Builder& u8(uint8_t v) { return le(v, 1); }
    Builder& u16(uint16_t v) { return le(v, 2); }
    Builder& u32(uint32_t v) { return le(v, 4); }
    Builder& u64(uint64_t v) { return le(v, 8); }

    Builder& dir(std::string_view name, uint32_t mode = 0755) {
        ++entries_;
        return u8('D').u16(static_cast<uint16_t>(name.size())).u32(mode).meta(name);
    }
    Builder& end_dir() { return u8('E'); }
    Builder& file(std::string_view name, std::string_view data, uint32_t mode = 0644) {
        ++entries_;
        bytes_ += data.size();
        u8('F').u16(static_cast<uint16_t>(name.size())).u32(mode).u64(data.size()).meta(name);
        s_ += data;
        return *this;
    }
    Builder& link(std::string_view name, std::string_view target) {
        ++entries_;
        return u8('L').u16(static_cast<uint16_t>(name.size())).u16(static_cast<uint16_t>(target.size())).meta(name).meta(target);
    }
    std::string finish() { return finish(entries_, bytes_); }
    std::string finish(uint64_t entries, uint64_t bytes) {
        u8('Z').u64(entries).u64(bytes);
        auto d = h_.digest();
        s_.append(reinterpret_cast<const char*>(d.data()), d.size());
        return s_;
    }
    [[nodiscard]] const std::string& bytes() const { return s_; }

private:
    Builder& le(uint64_t v, int n) {
        std::string b;
        for (int i = 0; i < n; ++i) b += static_cast<char>(v >> (8 * i));
        return meta(b);
    }
    std::string s_;
    Sha256 h_;
    uint64_t entries_ = 0, bytes_ = 0;
};

// [begin, end) of every file's data in a valid stream.
std::vector<std::pair<size_t, size_t>> data_ranges(const std::string& s) {
    auto le = [&](size_t at, int n) {
        uint64_t v = 0;
        for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(s[at + i])) << (8 * i);
        return v;
    };
    std::vector<std::pair<size_t, size_t>> out;
    size_t pos = 12;
    for (;;) {
        char t = s.at(pos++);
        if (t == 'D') {
            pos += 6 + le(pos, 2);
        } else if (t == 'E') {
        } else if (t == 'F') {
            size_t name = le(pos, 2);
            uint64_t size = le(pos + 6, 8);
            size_t begin = pos + 14 + name;
            out.emplace_back(begin, begin + size);
            pos = begin + size;
        } else if (t == 'L') {
            pos += 4 + le(pos, 2) + le(pos + 2, 2);
        } else {
            break;
        }
    }
    return out;
}

// A tree with a bit of everything.
void populate(const TempDir& d) {
    make_dir(d / "a");
    make_dir(d / "a/b");
    make_dir(d / "a/b/c");
    write_file(d / "a/b/c/deep.txt", "deep\n");
    write_file(d / "empty", "");
    write_file(d / "a/empty2", "", 0600);
    write_file(d / "exec.sh", "#!/bin/sh\necho hi\n", 0755);
    write_file(d / "private", "secret-ish", 0600);
    write_file(d / "readonly", "ro", 0444);
    write_file(d / "big.bin", random_bytes(3 << 20, 1));
    write_file(d / "medium.bin", random_bytes(100000, 2));
    make_dir(d / "ro_dir");
    write_file(d / "ro_dir/inside", "in a 0555 dir");
    make_dir(d / "ro_dir/sub");
    ::chmod((d / "ro_dir").c_str(), 0555);
    make_link("/etc/passwd", d / "abs_link");
    make_link("../a/b", d / "a/rel_link");
    make_link("does/not/exist", d / "dangling");
    make_link("../../../../../../../etc/shadow", d / "a/b/outside");
    make_link("a", d / "dir_link");
    write_file(d / "with space", "space");
    write_file(d / "new\nline", "newline");
    write_file(d / std::string("\xff\xfe-not-utf8"), "latin");
    write_file(d / "tab\there", "tab");
    make_dir(d / "empty_dir", 0700);
}

// ---------------------------------------------------------------------------

TEST(TreeStream, RoundTrip) {
    TempDir src, dst;
    populate(src);
    auto src_fd = src.fd();
    auto dst_fd = dst.fd();
    Transfer t = transfer(src_fd.get(), dst_fd.get(), {}, {});
    rethrow_if(t.send_error);
    rethrow_if(t.receive_error);

    auto before = snapshot(src.path);
    auto after = snapshot(dst.path);
    EXPECT_EQ(before.size(), after.size());
    EXPECT_TRUE(before == after);
    for (auto& [path, node] : before) {
        auto it = after.find(path);
        ASSERT_NE(it, after.end()) << path;
        EXPECT_EQ(it->second.type, node.type) << path;
        EXPECT_EQ(it->second.mode, node.mode) << path;
        EXPECT_TRUE(it->second.data == node.data) << path;
    }
    EXPECT_EQ(after.at("ro_dir").mode, 0555U);
    EXPECT_EQ(after.at("a/b/outside").data, "../../../../../../../etc/shadow");
    EXPECT_EQ(after.at("dir_link").type, 'l');

    EXPECT_EQ(t.sent.entries, before.size());
    EXPECT_EQ(t.received.entries.size(), before.size());
    uint64_t bytes = 0;
    for (auto& [p, n] : before)
        if (n.type == 'f') bytes += n.data.size();
    EXPECT_EQ(t.sent.bytes, bytes);
    EXPECT_EQ(t.received.bytes, bytes);
    EXPECT_TRUE(t.sent.skipped.empty());

    for (auto& e : t.received.entries) {
        const Node& n = before.at(e.path);
        if (e.type == "file") {
            EXPECT_EQ(n.type, 'f');
            EXPECT_EQ(e.size, n.data.size());
            EXPECT_EQ(e.mode, n.mode);
        } else if (e.type == "dir") {
            EXPECT_EQ(n.type, 'd');
            EXPECT_EQ(e.mode, n.mode);
        } else {
            EXPECT_EQ(e.type, "symlink");
            EXPECT_EQ(e.target, n.data);
            EXPECT_EQ(e.size, n.data.size());
        }
        EXPECT_FALSE(e.sha256) << "no hash asked for";
    }
}

TEST(TreeStream, EmptyTree) {
    TempDir src, dst;
    auto src_fd = src.fd();
    auto dst_fd = dst.fd();
    Transfer t = transfer(src_fd.get(), dst_fd.get(), {}, {});
    rethrow_if(t.send_error);
    rethrow_if(t.receive_error);
    EXPECT_EQ(t.sent.entries, 0U);
    EXPECT_TRUE(t.received.entries.empty());
    EXPECT_TRUE(snapshot(dst.path).empty());
}

TEST(TreeStream, EntriesSortedByNameBytes) {
    TempDir src;
    std::vector<std::string> names = {"b", "B", "a", "\xc3\xa9", "\x80", "_", "a.b", "a-b", "ab", "Z9", "10", "9"};
    for (auto& n : names) write_file(src / n, n);
    make_dir(src / "dir");
    for (auto& n : names) write_file(src / ("dir/" + n), n);
    auto src_fd = src.fd();
    Transfer t = transfer(src_fd.get(), -1, {}, {});
    rethrow_if(t.send_error);
    rethrow_if(t.receive_error);

    std::vector<std::string> top = names;
    top.push_back("dir");
    std::sort(top.begin(), top.end(), [](const std::string& x, const std::string& y) {
        return std::lexicographical_compare(x.begin(), x.end(), y.begin(), y.end(),
                                            [](char p, char q) { return static_cast<unsigned char>(p) < static_cast<unsigned char>(q); });
    });
    std::vector<std::string> expected;
    for (auto& n : top) {
        expected.push_back(n);
        if (n == "dir") {
            for (auto& m : top)
                if (m != "dir") expected.push_back("dir/" + m);
        }
    }
    std::vector<std::string> got;
    for (auto& e : t.received.entries) got.push_back(e.path);
    EXPECT_EQ(got, expected);

    // Deterministic: the same tree gives the same bytes.
    EXPECT_EQ(capture_stream(src_fd.get()), capture_stream(src_fd.get()));
}

TEST(TreeStream, MatchesTheDocumentedFormat) {
    TempDir src;
    write_file(src / "a", "hi", 0644);
    make_dir(src / "d", 0750);
    make_link("x", src / "d/l");
    auto src_fd = src.fd();
    std::string expected = Builder().file("a", "hi", 0644).dir("d", 0750).link("l", "x").end_dir().finish();
    EXPECT_EQ(capture_stream(src_fd.get()), expected);
}

TEST(TreeStream, ExcludeByDevIno) {
    TempDir src;
    make_dir(src / "keep");
    write_file(src / "keep/f", "1");
    make_dir(src / "out");
    write_file(src / "out/f", "2");
    make_dir(src / "keep/out2");
    struct stat st {};
    ASSERT_EQ(::stat((src / "keep/out2").c_str(), &st), 0);
    SendOptions so;
    so.exclude = protocol::FileId{st.st_dev, st.st_ino};
    auto src_fd = src.fd();
    Transfer t = transfer(src_fd.get(), -1, so, {});
    rethrow_if(t.send_error);
    rethrow_if(t.receive_error);
    std::vector<std::string> got;
    for (auto& e : t.received.entries) got.push_back(e.path);
    EXPECT_EQ(got, (std::vector<std::string>{"keep", "keep/f", "out", "out/f"}));
    EXPECT_EQ(t.sent.entries, 4U);
}

TEST(TreeStream, FifoSkippedWithoutBlocking) {
    TempDir src, dst;
    write_file(src / "a", "a");
    make_dir(src / "d");
    ASSERT_EQ(::mkfifo((src / "d/fifo").c_str(), 0666), 0);
    ASSERT_EQ(::mkfifo((src / "fifo0").c_str(), 0600), 0);
    write_file(src / "z", "z");
    // A bound unix socket too.
    UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string sp = src / "sock";
    ASSERT_LT(sp.size(), sizeof addr.sun_path);
    std::memcpy(addr.sun_path, sp.c_str(), sp.size() + 1);
    ASSERT_EQ(::bind(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    bool device = ::geteuid() == 0 && ::mknod((src / "null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0;

    auto src_fd = src.fd();
    auto dst_fd = dst.fd();
    SendOptions so;
    so.special = SpecialFiles::Skip;
    within(std::chrono::seconds(30), [&] {
        Transfer t = transfer(src_fd.get(), dst_fd.get(), so, {});
        rethrow_if(t.send_error);
        rethrow_if(t.receive_error);
        std::vector<std::string> expected = {"d/fifo", "fifo0"};
        if (device) expected.push_back("null");
        expected.push_back("sock");
        EXPECT_EQ(t.sent.skipped, expected);
        EXPECT_EQ(t.sent.entries, 3U);
    });
    auto after = snapshot(dst.path);
    EXPECT_EQ(after.size(), 3U);
    EXPECT_TRUE(after.count("a") && after.count("d") && after.count("z"));
}

TEST(TreeStream, FifoRefused) {
    TempDir src, dst;
    write_file(src / "a", "a");
    make_dir(src / "d");
    ASSERT_EQ(::mkfifo((src / "d/my fifo").c_str(), 0666), 0);
    auto src_fd = src.fd();
    auto dst_fd = dst.fd();
    within(std::chrono::seconds(30), [&] {
        Transfer t = transfer(src_fd.get(), dst_fd.get(), {}, {});
        auto se = tree_error(t.send_error);
        ASSERT_TRUE(se);
        EXPECT_EQ(se->kind(), Kind::SpecialFile);
        EXPECT_STREQ(se->what(), "'d/my fifo' is a fifo, which can't be copied");
        // The receiver learns the same reason from the stream.
        auto re = tree_error(t.receive_error);
        ASSERT_TRUE(re);
        EXPECT_EQ(re->kind(), Kind::SpecialFile);
        EXPECT_STREQ(re->what(), se->what());
    });
}

TEST(TreeStream, SocketAndDeviceRefused) {
    TempDir src;
    UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string sp = src / "s";
    std::memcpy(addr.sun_path, sp.c_str(), sp.size() + 1);
    ASSERT_EQ(::bind(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    auto src_fd = src.fd();
    Transfer t = transfer(src_fd.get(), -1, {}, {});
    auto se = tree_error(t.send_error);
    ASSERT_TRUE(se);
    EXPECT_STREQ(se->what(), "'s' is a socket, which can't be copied");

    if (::geteuid() != 0) GTEST_SKIP() << "mknod needs root";
    TempDir src2;
    ASSERT_EQ(::mknod((src2 / "zero").c_str(), S_IFCHR | 0666, makedev(1, 5)), 0);
    auto src2_fd = src2.fd();
    t = transfer(src2_fd.get(), -1, {}, {});
    se = tree_error(t.send_error);
    ASSERT_TRUE(se);
    EXPECT_STREQ(se->what(), "'zero' is a device, which can't be copied");
}

TEST(TreeStream, SenderLimits) {
    TempDir src, dst;
    write_file(src / "a", std::string(1000, 'a'));
    write_file(src / "b", std::string(1000, 'b'));
    write_file(src / "c", std::string(1000, 'c'));
    auto src_fd = src.fd();

    SendOptions so;
    so.limits.max_bytes = 3000;  // exactly enough
    Transfer t = transfer(src_fd.get(), -1, so, {});
    rethrow_if(t.send_error);
    rethrow_if(t.receive_error);

    so.limits.max_bytes = 2500;
    so.limits.label = "outputs";
    auto dst_fd = dst.fd();
    t = transfer(src_fd.get(), dst_fd.get(), so, {});
    auto se = tree_error(t.send_error);
    ASSERT_TRUE(se);
    EXPECT_EQ(se->kind(), Kind::Limit);
    EXPECT_STREQ(se->what(), "outputs: limit of 2500 bytes exceeded");
    auto re = tree_error(t.receive_error);
    ASSERT_TRUE(re);
    EXPECT_EQ(re->kind(), Kind::Limit);

    so = {};
    so.limits.max_entries = 2;
    t = transfer(src_fd.get(), -1, so, {});
    se = tree_error(t.send_error);
    ASSERT_TRUE(se);
    EXPECT_EQ(se->kind(), Kind::Limit);
    EXPECT_STREQ(se->what(), "tree: limit of 2 entries exceeded");
}

TEST(TreeStream, ReceiverLimitsAreAuthoritative) {
    TempDir src;
    for (int i = 0; i < 50; ++i) write_file(src / ("f" + std::to_string(i)), std::string(100000, 'x'));
    make_dir(src / "d");
    auto src_fd = src.fd();

    ReceiveOptions ro;
    ro.limits.max_bytes = 1000000;
    ro.limits.label = "outputs";
    within(std::chrono::seconds(60), [&] {
        TempDir dst;
        auto dst_fd = dst.fd();
        Transfer t = transfer(src_fd.get(), dst_fd.get(), {}, ro);
        auto re = tree_error(t.receive_error);
        ASSERT_TRUE(re);
        EXPECT_EQ(re->kind(), Kind::Limit);
        EXPECT_STREQ(re->what(), "outputs: limit of 1000000 bytes exceeded");
        // The sender, whose reader went away, fails rather than hanging.
        auto se = tree_error(t.send_error);
        ASSERT_TRUE(se);
        EXPECT_EQ(se->kind(), Kind::Io);
        EXPECT_NE(std::string(se->what()).find("Broken pipe"), std::string::npos) << se->what();
    });

    ro = {};
    ro.limits.max_entries = 10;
    Transfer t = transfer(src_fd.get(), -1, {}, ro);
    auto re = tree_error(t.receive_error);
    ASSERT_TRUE(re);
    EXPECT_EQ(re->kind(), Kind::Limit);
    EXPECT_STREQ(re->what(), "tree: limit of 10 entries exceeded");

    ro.limits.max_entries = 51;  // exactly enough
    t = transfer(src_fd.get(), -1, {}, ro);
    rethrow_if(t.send_error);
    rethrow_if(t.receive_error);

    // A hostile sender announcing a huge file is stopped at the header.
    ro = {};
    ro.limits.max_bytes = 1 << 20;
    Builder b;
    b.u8('F').u16(1).u32(0644).u64(uint64_t{1} << 40).meta("x");
    TreeError e = expect_receive_error(b.bytes(), -1, ro);
    EXPECT_EQ(e.kind(), Kind::Limit);
}

TEST(TreeStream, DepthLimit) {
    TempDir src;
    std::string p = src.path;
    for (size_t i = 0; i < kMaxTreeDepth; ++i) {
        p += "/d";
        make_dir(p);
    }
    write_file(p + "/leaf", "x");
    auto src_fd = src.fd();
    Transfer t = transfer(src_fd.get(), -1, {}, {});
    rethrow_if(t.send_error);
    rethrow_if(t.receive_error);
    EXPECT_EQ(t.received.entries.size(), kMaxTreeDepth + 1);

    make_dir(p + "/one_more");
    t = transfer(src_fd.get(), -1, {}, {});
    auto se = tree_error(t.send_error);
    ASSERT_TRUE(se);
    EXPECT_EQ(se->kind(), Kind::Limit);

    Builder b;
    for (size_t i = 0; i <= kMaxTreeDepth; ++i) b.dir("d");
    TreeError e = expect_receive_error(b.bytes());
    EXPECT_EQ(e.kind(), Kind::Limit);
    EXPECT_NE(std::string(e.what()).find("nested deeper than 256"), std::string::npos);
}

TEST(TreeStream, SpecialModeBitsDropped) {
    TempDir src, dst;
    write_file(src / "suid", "x", 04755);
    write_file(src / "sgid", "x", 02711);
    make_dir(src / "sticky", 01777);
    make_dir(src / "setgid_dir", 02775);
    auto src_fd = src.fd();
    auto dst_fd = dst.fd();
    Transfer t = transfer(src_fd.get(), dst_fd.get(), {}, {});
    rethrow_if(t.send_error);
    rethrow_if(t.receive_error);
    auto after = snapshot(dst.path);
    EXPECT_EQ(after.at("suid").mode, 0755U);
    EXPECT_EQ(after.at("sgid").mode, 0711U);
    EXPECT_EQ(after.at("sticky").mode, 0777U);
    EXPECT_EQ(after.at("setgid_dir").mode, 0775U);
    for (auto& e : t.received.entries) EXPECT_EQ(e.mode & ~0777U, 0U) << e.path;
}

TEST(TreeStream, SetMtime) {
    TempDir src, dst;
    populate(src);
    auto src_fd = src.fd();
    auto dst_fd = dst.fd();
    ReceiveOptions ro;
    ro.set_mtime = 315532800;  // 1980-01-01
    Transfer t = transfer(src_fd.get(), dst_fd.get(), {}, ro);
    rethrow_if(t.send_error);
    rethrow_if(t.receive_error);
    size_t dirs = 0, links = 0, files = 0;
    for (auto& e : t.received.entries) {
        struct stat st {};
        ASSERT_EQ(::lstat((dst / e.path).c_str(), &st), 0) << e.path;
        EXPECT_EQ(st.st_mtim.tv_sec, 315532800) << e.path;
        EXPECT_EQ(st.st_mtim.tv_nsec, 0) << e.path;
        EXPECT_EQ(st.st_atim.tv_sec, 315532800) << e.path;
        dirs += S_ISDIR(st.st_mode);
        links += S_ISLNK(st.st_mode);
        files += S_ISREG(st.st_mode);
    }
    EXPECT_GT(dirs, 3U);
    EXPECT_GT(links, 3U);
    EXPECT_GT(files, 3U);
}

TEST(TreeStream, KeepModesOff) {
    TempDir src, dst;
    write_file(src / "f", "x", 0700);
    make_dir(src / "d", 0500);
    auto src_fd = src.fd();
    auto dst_fd = dst.fd();
    ReceiveOptions ro;
    ro.keep_modes = false;
    mode_t old = ::umask(022);
    Transfer t = transfer(src_fd.get(), dst_fd.get(), {}, ro);
    ::umask(old);
    rethrow_if(t.send_error);
    rethrow_if(t.receive_error);
    auto after = snapshot(dst.path);
    EXPECT_EQ(after.at("f").mode, 0700U);  // created with the sent mode, umask applied
    EXPECT_EQ(after.at("d").mode, 0755U);  // not chmod'ed
    EXPECT_EQ(t.received.entries.at(0).mode, 0500U);  // the listing reports what was sent
}

TEST(TreeStream, HashesMatchSha256sum) {
    TempDir src, dst;
    write_file(src / "empty", "");
    write_file(src / "small", "hello\n");
    write_file(src / "medium", random_bytes(70000, 3));
    write_file(src / "big", random_bytes(5 << 20, 4));
    make_dir(src / "d");
    write_file(src / "d/x", "nested");
    make_link("../some/target", src / "link");
    auto src_fd = src.fd();
    auto dst_fd = dst.fd();
    ReceiveOptions ro;
    ro.hash = true;
    Transfer t = transfer(src_fd.get(), dst_fd.get(), {}, ro);
    rethrow_if(t.send_error);
    rethrow_if(t.receive_error);

    Transfer listed = transfer(src_fd.get(), -1, {}, ro);
    rethrow_if(listed.send_error);
    rethrow_if(listed.receive_error);
    ASSERT_EQ(listed.received.entries.size(), t.received.entries.size());

    for (size_t i = 0; i < t.received.entries.size(); ++i) {
        const auto& e = t.received.entries[i];
        const auto& l = listed.received.entries[i];
        EXPECT_EQ(e.path, l.path);
        EXPECT_EQ(e.sha256, l.sha256) << e.path;
        EXPECT_EQ(e.size, l.size);
        if (e.type == "file") {
            ASSERT_TRUE(e.sha256);
            EXPECT_EQ(*e.sha256, shell_sha256("sha256sum '" + (src / e.path) + "'")) << e.path;
            EXPECT_EQ(*e.sha256, shell_sha256("sha256sum '" + (dst / e.path) + "'")) << e.path;
        } else if (e.type == "symlink") {
            ASSERT_TRUE(e.sha256);
            EXPECT_EQ(*e.sha256, shell_sha256("printf '%s' '../some/target' | sha256sum"));
        } else {
            EXPECT_FALSE(e.sha256);
        }
    }
    EXPECT_EQ(listed.received.bytes, t.received.bytes);
}

TEST(TreeStream, DiscardCreatesNothing) {
    TempDir src, dst;
    populate(src);
    auto src_fd = src.fd();
    ReceiveOptions ro;
    ro.hash = true;
    ro.set_mtime = 0;
    // The process's cwd must stay untouched too.
    auto before = snapshot(dst.path);
    char cwd[4096];
    ASSERT_TRUE(::getcwd(cwd, sizeof cwd));
    ASSERT_EQ(::chdir(dst.path.c_str()), 0);
    Transfer t = transfer(src_fd.get(), -1, {}, ro);
    ASSERT_EQ(::chdir(cwd), 0);
    rethrow_if(t.send_error);
    rethrow_if(t.receive_error);
    EXPECT_TRUE(snapshot(dst.path).empty());
    EXPECT_EQ(t.received.entries.size(), snapshot(src.path).size());
    for (auto& e : t.received.entries) {
        if (e.type != "dir") {
            EXPECT_TRUE(e.sha256) << e.path;
        }
    }
}

TEST(TreeStream, DestinationMustBeEmpty) {
    TempDir src, dst;
    write_file(src / "a", "a");
    write_file(dst / "already", "here");
    auto src_fd = src.fd();
    auto dst_fd = dst.fd();
    Transfer t = transfer(src_fd.get(), dst_fd.get(), {}, {});
    auto re = tree_error(t.receive_error);
    ASSERT_TRUE(re);
    EXPECT_STREQ(re->what(), "the destination directory is not empty");
}

TEST(TreeStream, NeverFollowsSymlinksOnEitherSide) {
    // Source root whose entries point out of the tree: only links are copied.
    TempDir outside, src, dst;
    write_file(outside / "victim", "do not touch");
    make_link(outside.path, src / "dir_out");
    make_link(outside / "victim", src / "file_out");
    auto src_fd = src.fd();
    auto dst_fd = dst.fd();
    ReceiveOptions ro;
    ro.set_mtime = 0;
    Transfer t = transfer(src_fd.get(), dst_fd.get(), {}, ro);
    rethrow_if(t.send_error);
    rethrow_if(t.receive_error);
    EXPECT_EQ(t.sent.entries, 2U);
    EXPECT_EQ(t.sent.bytes, 0U);
    struct stat st {};
    ASSERT_EQ(::stat((outside / "victim").c_str(), &st), 0);
    EXPECT_NE(st.st_mtim.tv_sec, 0);  // set_mtime touched the link, not its target

    // A stream that makes a link and then a directory or file of the same name
    // through it is refused (order/duplicates), and nothing lands outside.
    TempDir dst2;
    auto dst2_fd = dst2.fd();
    std::string s = Builder().link("x", outside.path).dir("x").file("victim", "pwned").end_dir().finish();
    TreeError e = expect_receive_error(s, dst2_fd.get());
    EXPECT_EQ(e.kind(), Kind::Stream);
    EXPECT_EQ(read_file(outside / "victim"), "do not touch");
}

TEST(TreeStream, FileThatShrinksOrGrowsIsAnError) {
    for (bool grow : {false, true}) {
        TempDir src;
        std::string big = src / "big";
        write_file(big, std::string(8 << 20, 'x'));
        auto src_fd = src.fd();
        FdPair p = make_pipe();
        std::exception_ptr err;
        std::thread sender([&] {
            try {
                send_tree(src_fd.get(), p.write.get(), {});
            } catch (...) {
                err = std::current_exception();
            }
            p.write.reset();
        });
        // The first byte arrives once the sender has sized the file and is sending
        // it; the pipe can't hold much of the rest yet.
        char c;
        ASSERT_EQ(::read(p.read.get(), &c, 1), 1);
        if (grow) {
            UniqueFd fd(::open(big.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
            write_all(fd.get(), std::string(1 << 20, 'y'));
        } else {
            ASSERT_EQ(::truncate(big.c_str(), 0), 0);
        }
        read_to_end(p.read.get(), size_t{1} << 30);
        sender.join();
        auto e = tree_error(err);
        ASSERT_TRUE(e) << "grow=" << grow;
        EXPECT_EQ(e->kind(), Kind::Io);
        EXPECT_STREQ(e->what(), grow ? "'big' changed while being copied (it grew while being read)"
                                     : "'big' changed while being copied (it shrank while being read)");
    }
}

TEST(TreeStream, SenderGetsEpipeNotSignal) {
    TempDir src;
    write_file(src / "small", "x");
    write_file(src / "big", random_bytes(4 << 20, 5));
    auto src_fd = src.fd();
    struct sigaction dfl {}, old {};
    dfl.sa_handler = SIG_DFL;
    ASSERT_EQ(::sigaction(SIGPIPE, &dfl, &old), 0);  // a stray SIGPIPE would kill the test

    // Reader gone before the first byte.
    {
        FdPair p = make_pipe();
        p.read.reset();
        try {
            send_tree(src_fd.get(), p.write.get(), {});
            ADD_FAILURE() << "no error";
        } catch (const TreeError& e) {
            EXPECT_EQ(e.kind(), Kind::Io);
            EXPECT_STREQ(e.what(), "writing the tree stream: Broken pipe");
        }
    }
    // Reader gone in the middle of a large file (the sendfile path).
    {
        FdPair p = make_pipe();
        std::thread reader([&] {
            char buf[1000];
            (void)read_exact(p.read.get(), buf, sizeof buf);  // how much arrived does not matter: only that the reader goes
            p.read.reset();
        });
        try {
            send_tree(src_fd.get(), p.write.get(), {});
            ADD_FAILURE() << "no error";
        } catch (const TreeError& e) {
            EXPECT_EQ(e.kind(), Kind::Io);
            EXPECT_NE(std::string(e.what()).find("Broken pipe"), std::string::npos) << e.what();
        }
        reader.join();
    }
    sigset_t pending, mask;
    sigpending(&pending);
    EXPECT_FALSE(sigismember(&pending, SIGPIPE));
    pthread_sigmask(SIG_SETMASK, nullptr, &mask);
    EXPECT_FALSE(sigismember(&mask, SIGPIPE)) << "signal mask restored";
    ::sigaction(SIGPIPE, &old, nullptr);
}

// --- Malformed streams ------------------------------------------------------

TEST(TreeStreamMalformed, HandCraftedCases) {
    auto expect_stream = [](const std::string& s, const std::string& needle) {
        TreeError e = expect_receive_error(s);
        EXPECT_EQ(e.kind(), Kind::Stream) << e.what();
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "'" << e.what() << "' lacks '" << needle << "'";
        // The same through a pipe and into a real directory.
        TempDir d;
        auto fd = d.fd();
        try {
            receive_bytes(s, fd.get(), {}, true);
            ADD_FAILURE() << "accepted: " << needle;
        } catch (const TreeError& e2) {
            EXPECT_EQ(e2.kind(), Kind::Stream) << e2.what();
        }
    };
    const std::string magic("HRMTREE\n", 8);
    expect_stream("", "truncated");
    expect_stream("HRM", "truncated");
    expect_stream(Builder(std::string("GARBAGE!\1\0\0\0", 12)).finish(), "bad magic");
    expect_stream(Builder(magic + std::string("\2\0\0\0", 4)).finish(), "unsupported version 2 (expected 1)");
    expect_stream(Builder().bytes(), "truncated");
    expect_stream(Builder().u8('Q').finish(), "unknown record type 0x51");
    expect_stream(Builder().u8('F').u16(0).u32(0644).u64(0).finish(), "name length 0");
    expect_stream(Builder().u8('F').u16(256).u32(0644).u64(0).meta(std::string(256, 'a')).finish(), "name length 256");
    EXPECT_NO_THROW(receive_bytes(Builder().file(std::string(255, 'a'), "").finish(), -1));
    expect_stream(Builder().file(".", "").finish(), "invalid name '.'");
    expect_stream(Builder().dir("..").end_dir().finish(), "invalid name '..'");
    expect_stream(Builder().file("a/b", "").finish(), "invalid name 'a/b'");
    expect_stream(Builder().file("/", "").finish(), "invalid name '/'");
    expect_stream(Builder().file(std::string("a\0b", 3), "").finish(), "invalid name 'a\\x00b'");
    expect_stream(Builder().file("a", "1").file("a", "2").finish(), "duplicate name 'a'");
    expect_stream(Builder().dir("d").file("a", "").end_dir().dir("d").end_dir().finish(), "duplicate name 'd'");
    expect_stream(Builder().file("b", "").file("a", "").finish(), "entries out of order at 'a'");
    expect_stream(Builder().dir("d").file("x", "").file("x", "").end_dir().finish(), "duplicate name 'd/x'");
    EXPECT_NO_THROW(receive_bytes(Builder().dir("d").file("x", "").end_dir().file("x", "").finish(), -1));
    expect_stream(Builder().link("l", "").finish(), "symlink target length 0");
    expect_stream(Builder().link("l", std::string(4096, 't')).finish(), "symlink target length 4096");
    EXPECT_NO_THROW(receive_bytes(Builder().link("l", std::string(4095, 't')).finish(), -1));
    expect_stream(Builder().link("l", std::string("a\0b", 3)).finish(), "NUL in its target");
    expect_stream(Builder().end_dir().finish(), "directory end without a beginning");
    expect_stream(Builder().dir("d").finish(), "ends inside directory 'd'");
    expect_stream(Builder().file("a", "xyz").finish(1, 2), "totals do not match");
    expect_stream(Builder().file("a", "xyz").finish(2, 3), "totals do not match");
    expect_stream(Builder().file("a", "xyz", 010644).finish(), "invalid mode");
    expect_stream(Builder().dir("d", 0170000).end_dir().finish(), "invalid mode");
    {
        std::string s = Builder().file("a", "xyz").finish();
        s[s.size() - 1] ^= 1;
        expect_stream(s, "checksum mismatch");
    }
    {
        // Headers changed behind the digest's back: mode 0644 -> 0645.
        std::string s = Builder().file("a", "xyz").finish();
        s[12 + 3] ^= 1;
        expect_stream(s, "checksum mismatch");
    }
    // A file announcing far more data than follows: no huge allocation, just truncation.
    {
        Builder b;
        b.u8('F').u16(1).u32(0644).u64(uint64_t{1} << 62).meta("x").meta("abc");
        expect_stream(b.bytes(), "truncated");
    }
    // Abort records: a well-formed one maps to its kind; a bad one is a stream error.
    {
        Builder b;
        std::string msg = "'x' is a fifo, which can't be copied\n\x1b[31m";
        b.u8('A');
        std::string rec = std::string(1, '\1') + static_cast<char>(msg.size()) + '\0' + msg;
        std::string s = b.bytes() + rec;
        TreeError e = expect_receive_error(s);
        EXPECT_EQ(e.kind(), Kind::SpecialFile);
        EXPECT_STREQ(e.what(), "'x' is a fifo, which can't be copied\\n\\x1b[31m");
        expect_stream(b.bytes() + std::string("\x09\1\0x", 4), "malformed abort record");
        expect_stream(b.bytes() + std::string("\x01\xff\xff", 3), "abort message too long");
        expect_stream(b.bytes() + std::string("\x01\x10\0x", 4), "truncated");
    }
}

TEST(TreeStreamMalformed, EveryTruncationIsAnError) {
    TempDir src;
    populate(src);
    write_file(src / "big.bin", random_bytes(200000, 9));  // keep the stream smallish
    auto src_fd = src.fd();
    std::string s = capture_stream(src_fd.get());
    ASSERT_GT(s.size(), 200000U);
    EXPECT_NO_THROW(receive_bytes(s, -1));
    auto check_prefix = [&](size_t n) {
        try {
            receive_bytes(s.substr(0, n), -1);
            ADD_FAILURE() << "prefix of " << n << " accepted";
        } catch (const TreeError& e) {
            EXPECT_EQ(e.kind(), Kind::Stream) << n << ": " << e.what();
        }
    };
    // Every prefix within the headers-and-small-files part, sampled within large data.
    std::mt19937 rng(7);
    for (size_t n = 0; n < s.size(); ++n) {
        bool in_big_data = false;
        for (auto [b, e] : data_ranges(s))
            if (e - b > 4096 && n > b + 64 && n + 64 < e) in_big_data = true;
        if (!in_big_data || rng() % 512 == 0) check_prefix(n);
        if (::testing::Test::HasFailure()) break;
    }
    // Truncations while creating files (a real destination), some via a pipe.
    for (int i = 0; i < 40; ++i) {
        size_t n = rng() % s.size();
        TempDir d;
        auto fd = d.fd();
        try {
            receive_bytes(s.substr(0, n), fd.get(), {}, i % 2 == 0);
            ADD_FAILURE() << "prefix of " << n << " accepted";
        } catch (const TreeError& e) {
            EXPECT_EQ(e.kind(), Kind::Stream) << e.what();
        }
    }
}

TEST(TreeStreamMalformed, RandomByteFlips) {
    TempDir src;
    make_dir(src / "d");
    make_dir(src / "d/e");
    write_file(src / "d/e/f", "nested file");
    write_file(src / "d/g", random_bytes(100, 10), 0600);
    make_link("../target", src / "d/l");
    write_file(src / "x", random_bytes(2000, 11), 0755);
    write_file(src / "y", "");
    make_dir(src / "z", 0555);
    auto src_fd = src.fd();
    std::string s = capture_stream(src_fd.get());
    auto ranges = data_ranges(s);
    auto in_data = [&](size_t i) {
        for (auto [b, e] : ranges)
            if (i >= b && i < e) return true;
        return false;
    };
    ReceiveOptions ro;
    ro.hash = true;
    ReceiveResult orig = receive_bytes(s, -1, ro);

    std::vector<size_t> header_bytes;  // everything but file data
    for (size_t i = 0; i < s.size(); ++i)
        if (!in_data(i)) header_bytes.push_back(i);

    std::mt19937_64 rng(12345);
    int errors = 0, data_only = 0;
    for (int iter = 0; iter < 4000; ++iter) {
        std::string m = s;
        int flips = 1 + static_cast<int>(rng() % 3);
        for (int k = 0; k < flips; ++k) {
            // Mostly headers, where the parser is; sometimes anywhere.
            size_t i = rng() % 4 != 0 ? header_bytes[rng() % header_bytes.size()] : rng() % m.size();
            m[i] = static_cast<char>(m[i] ^ static_cast<char>(1 + rng() % 255));
        }
        if (m == s) continue;  // two flips of one byte cancelled out
        bool only_data = true;
        for (size_t i = 0; i < m.size(); ++i) only_data = only_data && (m[i] == s[i] || in_data(i));
        bool real_dest = iter % 20 == 0;
        std::optional<TempDir> d;
        UniqueFd fd;
        if (real_dest) {
            d.emplace();
            fd = d->fd();
        }
        try {
            ReceiveResult r = receive_bytes(m, real_dest ? fd.get() : -1, ro, iter % 7 == 0);
            // Only file contents are outside the digest: then it's a changed file.
            EXPECT_TRUE(only_data) << "iteration " << iter << " accepted a corrupted header";
            ASSERT_EQ(r.entries.size(), orig.entries.size());
            bool differs = false;
            for (size_t j = 0; j < r.entries.size(); ++j) {
                EXPECT_EQ(r.entries[j].path, orig.entries[j].path);
                differs = differs || r.entries[j].sha256 != orig.entries[j].sha256;
            }
            EXPECT_TRUE(differs);
            ++data_only;
        } catch (const TreeError& e) {
            EXPECT_FALSE(only_data) << "iteration " << iter << ": data-only change refused: " << e.what();
            ++errors;
        }
        if (::testing::Test::HasFailure()) break;
    }
    std::printf("[ flips    ] %d refused, %d data-only changes accepted (hashes differ)\n", errors, data_only);
}

// --- Throughput (printed, not asserted) -------------------------------------

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Where to measure: HERMETIC_BENCH_DIR, else /dev/shm (tmpfs, like a sandbox's
// /build, and free of the host disk's writeback), else TMPDIR.
std::string bench_dir() {
    const char* env = std::getenv("HERMETIC_BENCH_DIR");
    if (env && *env) return env;
    if (::access("/dev/shm", W_OK) == 0) return "/dev/shm";
    return default_tmp();
}

TEST(TreeStreamThroughput, SingleLargeFile) {
    const std::string base = bench_dir();
    TempDir src(base);
    constexpr size_t kSize = 200u << 20;
    {
        std::string block = random_bytes(1 << 20, 13);
        UniqueFd fd(::open((src / "big").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
        for (size_t i = 0; i < kSize / block.size(); ++i) write_all(fd.get(), block);
    }
    auto src_fd = src.fd();
    for (int mode = 0; mode < 3; ++mode) {
        TempDir dst(base);
        auto dst_fd = dst.fd();
        ::sync();  // writeback of the setup would be charged to the copy otherwise
        ReceiveOptions ro;
        ro.hash = mode != 0;
        int dest = mode == 2 ? -1 : dst_fd.get();
        auto t0 = std::chrono::steady_clock::now();
        Transfer t = transfer(src_fd.get(), dest, {}, ro);
        double secs = seconds_since(t0);
        rethrow_if(t.send_error);
        rethrow_if(t.receive_error);
        ASSERT_EQ(t.received.bytes, kSize);
        const char* what[] = {"copy", "copy+sha256", "sha256 only (dest -1)"};
        std::printf("[ thruput  ] 200 MB file in %s, %-22s %.3f s, %.0f MB/s\n", base.c_str(), what[mode], secs,
                    kSize / 1e6 / secs);
    }
}

TEST(TreeStreamThroughput, ManySmallFiles) {
    const std::string base = bench_dir();
    TempDir src(base);
    constexpr int kFiles = 10000;
    uint64_t total = 0;
    for (int d = 0; d < 100; ++d) {
        std::string dir = src / ("dir" + std::to_string(d));
        make_dir(dir);
        for (int f = 0; f < kFiles / 100; ++f) {
            size_t size = 100 + static_cast<size_t>((d * 7919 + f * 104729) % 8000);
            write_file(dir + "/file" + std::to_string(f) + ".c", std::string(size, static_cast<char>('a' + f % 26)));
            total += size;
        }
    }
    auto src_fd = src.fd();
    for (int mode = 0; mode < 2; ++mode) {
        TempDir dst(base);
        auto dst_fd = dst.fd();
        ::sync();
        ReceiveOptions ro;
        ro.hash = mode == 1;
        ro.set_mtime = 0;
        auto t0 = std::chrono::steady_clock::now();
        Transfer t = transfer(src_fd.get(), dst_fd.get(), {}, ro);
        double secs = seconds_since(t0);
        rethrow_if(t.send_error);
        rethrow_if(t.receive_error);
        ASSERT_EQ(t.received.bytes, total);
        ASSERT_EQ(t.received.entries.size(), static_cast<size_t>(kFiles + 100));
        std::printf("[ thruput  ] %d small files (%.1f MB) in %s, %-12s %.3f s, %.0f files/s, %.1f MB/s\n", kFiles,
                    total / 1e6, base.c_str(),
                    mode ? "copy+sha256" : "copy", secs, kFiles / secs, total / 1e6 / secs);
    }
}

}  // namespace
}  // namespace hermetic::sandbox
