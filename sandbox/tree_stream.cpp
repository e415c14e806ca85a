// Tree stream, version 1. All integers little-endian.
//
//   header   "HRMTREE\n" u32 version
//   'D'      u16 name_len, u32 mode, name                 directory begins
//   'E'                                                   directory ends
//   'F'      u16 name_len, u32 mode, u64 size, name, data regular file
//   'L'      u16 name_len, u16 target_len, name, target   symlink
//   'A'      u8 kind, u16 msg_len, msg                    sender failed (TreeError::Kind)
//   'Z'      u64 entries, u64 bytes, [32] digest          end of stream
//
// The root directory itself has no record. Entries of a directory come sorted by
// name bytes, which the receiver enforces (so duplicates are caught without
// remembering names). The digest is the SHA-256 of every byte before it except
// file data, so a corrupted header is detected even when it still parses; file
// data is not covered, which keeps sendfile/splice possible (the pipe is local,
// and a hostile sender can write any valid stream anyway).
#include "sandbox/tree_stream.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string_view>

#include "common/sha256.hpp"
#include "common/sys_error.hpp"
#include "common/unique_fd.hpp"

namespace hermetic::sandbox {
namespace {

constexpr std::array<char, 8> kMagic = {'H', 'R', 'M', 'T', 'R', 'E', 'E', '\n'};

enum Record : uint8_t {
    kDirBegin = 'D',
    kDirEnd = 'E',
    kFile = 'F',
    kSymlink = 'L',
    kAbort = 'A',
    kEnd = 'Z',
};

constexpr size_t kBufSize = 1 << 20;      // stream buffer on both sides
constexpr size_t kInlineMax = 64 << 10;   // files up to this size are read into the buffer
constexpr size_t kMaxAbortMsg = 1024;
constexpr size_t kDirentBuf = 64 << 10;
constexpr size_t kMaxChunk = 1 << 30;     // per sendfile/splice call

using Kind = TreeError::Kind;

[[noreturn]] void fail(Kind kind, const std::string& msg) { throw TreeError(kind, msg); }
[[noreturn]] void bad_stream(const std::string& msg) { fail(Kind::Stream, "tree stream: " + msg); }

// Quotes a path for a one-line message: control bytes are escaped, the rest kept.
std::string quote(std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out = "'";
    for (unsigned char c : s) {
        if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c == 0x7f) {
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 0xf];
        } else {
            out += static_cast<char>(c);
        }
    }
    out += "'";
    return out;
}

std::string join(const std::string& dir, std::string_view name) {
    if (dir.empty()) return std::string(name);
    std::string p = dir;
    p += '/';
    p += name;
    return p;
}

std::string display(const std::string& path) { return quote(path.empty() ? "." : path); }

[[noreturn]] void fail_read(int err, const std::string& path) {
    if (err == EACCES || err == EPERM) fail(Kind::Unreadable, "cannot read " + display(path) + ": Permission denied");
    if (err == ENOENT) fail(Kind::Io, display(path) + " vanished while being copied");
    fail(Kind::Io, "cannot read " + display(path) + ": " + errno_string(err));
}

[[noreturn]] void fail_changed(const std::string& path, const char* how) {
    fail(Kind::Io, display(path) + " changed while being copied (" + how + ")");
}

// Blocks a signal for this thread while a call may raise it (SIGPIPE on a pipe
// whose reader died, SIGXFSZ past RLIMIT_FSIZE), so the failure arrives as an
// errno whatever the caller's disposition; a signal we caused is consumed.
class SignalBlock {
public:
    explicit SignalBlock(int sig) : sig_(sig) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        pthread_sigmask(SIG_BLOCK, &set, &old_);
    }
    SignalBlock(const SignalBlock&) = delete;
    SignalBlock& operator=(const SignalBlock&) = delete;
    ~SignalBlock() {
        if (raised_ && !sigismember(&old_, sig_)) {
            sigset_t set;
            sigemptyset(&set);
            sigaddset(&set, sig_);
            sigset_t pending;
            timespec zero{};
            while (sigpending(&pending) == 0 && sigismember(&pending, sig_) == 1 &&
                   sigtimedwait(&set, nullptr, &zero) == sig_) {
            }
        }
        pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
    void raised() { raised_ = true; }

private:
    int sig_;
    sigset_t old_{};
    bool raised_ = false;
};

void wait_fd(int fd, short events) {
    pollfd p{fd, events, 0};
    while (::poll(&p, 1, -1) < 0) {
        if (errno != EINTR) throw_errno("poll");
    }
}

// A bigger pipe buffer means fewer context switches; best effort (the per-user
// pipe quota may refuse it), and harmless on anything that is not a pipe.
void grow_pipe(int fd) {
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode)) (void)::fcntl(fd, F_SETPIPE_SZ, 1 << 20);
}

template <typename T>
void put_le(char* p, T v) {
    for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<char>(static_cast<uint64_t>(v) >> (8 * i));
}

template <typename T>
T get_le(const char* p) {
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
    return static_cast<T>(v);
}

// Lists a directory (fd at offset 0) without "." and "..", sorted by name bytes.
std::vector<std::string> list_dir(int dirfd, const std::string& path) {
    std::vector<std::string> names;
    auto buf = std::make_unique<char[]>(kDirentBuf);
    for (;;) {
        ssize_t n = retry_eintr([&] { return ::getdents64(dirfd, buf.get(), kDirentBuf); });
        if (n < 0) fail_read(errno, path);
        if (n == 0) break;
        for (ssize_t off = 0; off < n;) {
            auto* d = reinterpret_cast<const dirent64*>(buf.get() + off);
            std::string_view name(d->d_name);
            if (name != "." && name != "..") names.emplace_back(name);
            off += d->d_reclen;
        }
    }
    std::sort(names.begin(), names.end());  // char_traits<char> compares as unsigned bytes
    return names;
}

// ---------------------------------------------------------------------------
// Sending

class Writer {
public:
    Writer(int fd, SignalBlock& sigpipe) : fd_(fd), sigpipe_(sigpipe), buf_(std::make_unique<char[]>(kBufSize)) {}

    // Appends stream metadata (covered by the digest).
    void meta(const void* p, size_t n) {
        digest_.update(p, n);
        raw(p, n);
    }
    template <typename T>
    void meta_le(T v) {
        char b[sizeof(T)];
        put_le(b, v);
        meta(b, sizeof b);
    }
    // Appends bytes outside the digest (file data, the digest itself).
    void raw(const void* p, size_t n) {
        if (kBufSize - len_ < n) flush();
        if (n > kBufSize) {
            write_fd(p, n);
            return;
        }
        std::memcpy(buf_.get() + len_, p, n);
        len_ += n;
    }
    void flush() {
        if (len_ > 0) write_fd(buf_.get(), len_);
        len_ = 0;
    }
    std::array<uint8_t, 32> digest() { return digest_.digest(); }

    // Sends n bytes of file data from in_fd's current offset, zero-copy when the
    // kernel can. Returns how many bytes were sent before the file hit EOF.
    uint64_t send_from(int in_fd, uint64_t n, const std::string& path) {
        flush();
        uint64_t sent = 0;
        if (use_sendfile_) {
            while (sent < n) {
                size_t want = static_cast<size_t>(std::min<uint64_t>(n - sent, kMaxChunk));
                ssize_t r = ::sendfile(fd_, in_fd, nullptr, want);
                if (r > 0) {
                    sent += static_cast<uint64_t>(r);
                    continue;
                }
                if (r == 0) return sent;
                if (errno == EINTR) continue;
                if (errno == EAGAIN) {
                    wait_fd(fd_, POLLOUT);
                    continue;
                }
                if ((errno == EINVAL || errno == ENOSYS) && sent == 0) {
                    use_sendfile_ = false;
                    break;
                }
                if (errno == EPIPE) write_failed(errno);
                fail(Kind::Io, "copying " + display(path) + " into the tree stream: " + errno_string(errno));
            }
            if (use_sendfile_) return sent;
        }
        while (sent < n) {
            size_t want = static_cast<size_t>(std::min<uint64_t>(n - sent, kBufSize));
            ssize_t r = retry_eintr([&] { return ::read(in_fd, buf_.get(), want); });
            if (r < 0) fail_read(errno, path);
            if (r == 0) return sent;
            write_fd(buf_.get(), static_cast<size_t>(r));
            sent += static_cast<uint64_t>(r);
        }
        return sent;
    }

    [[nodiscard]] bool broken() const { return broken_; }

private:
    void write_fd(const void* data, size_t n) {
        auto p = static_cast<const char*>(data);
        while (n > 0) {
            ssize_t r = ::write(fd_, p, n);
            if (r < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN) {
                    wait_fd(fd_, POLLOUT);
                    continue;
                }
                write_failed(errno);
            }
            p += r;
            n -= static_cast<size_t>(r);
        }
    }
    [[noreturn]] void write_failed(int err) {
        broken_ = true;
        len_ = 0;
        if (err == EPIPE) sigpipe_.raised();
        fail(Kind::Io, "writing the tree stream: " + errno_string(err));
    }

    int fd_;
    SignalBlock& sigpipe_;
    std::unique_ptr<char[]> buf_;
    size_t len_ = 0;
    Sha256 digest_;
    bool use_sendfile_ = true;
    bool broken_ = false;
};

class Sender {
public:
    Sender(Writer& w, const SendOptions& options) : w_(w), opt_(options), scratch_(std::make_unique<char[]>(kInlineMax + 1)) {}

    void run(int root_dirfd) {
        w_.meta(kMagic.data(), kMagic.size());
        w_.meta_le<uint32_t>(kTreeStreamVersion);
        UniqueFd root(retry_eintr([&] { return ::openat(root_dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOCTTY); }));
        if (!root) fail_read(errno, "");
        std::string path;
        walk(root.get(), path, 0);
        w_.meta_le<uint8_t>(kEnd);
        w_.meta_le<uint64_t>(result_.entries);
        w_.meta_le<uint64_t>(result_.bytes);
        auto d = w_.digest();
        w_.raw(d.data(), d.size());
        w_.flush();
    }

    // Tells the receiver why the stream stops, when the stream is still in step.
    void abort(const TreeError& e) {
        if (w_.broken() || in_data_) return;
        std::string_view msg(e.what());
        msg = msg.substr(0, kMaxAbortMsg);
        w_.raw("A", 1);
        char b[3];
        b[0] = static_cast<char>(e.kind());
        put_le<uint16_t>(b + 1, static_cast<uint16_t>(msg.size()));
        w_.raw(b, sizeof b);
        w_.raw(msg.data(), msg.size());
        w_.flush();
    }

    SendResult result() && { return std::move(result_); }

private:
    void count_entry() {
        ++result_.entries;
        if (opt_.limits.max_entries != 0 && result_.entries > opt_.limits.max_entries)
            fail(Kind::Limit, opt_.limits.label + ": limit of " + std::to_string(opt_.limits.max_entries) + " entries exceeded");
    }
    void count_bytes(uint64_t n) {
        result_.bytes += n;
        if (opt_.limits.max_bytes != 0 && result_.bytes > opt_.limits.max_bytes)
            fail(Kind::Limit, opt_.limits.label + ": limit of " + std::to_string(opt_.limits.max_bytes) + " bytes exceeded");
    }

    void header(Record type, const std::string& name, uint32_t mode) {
        w_.meta_le<uint8_t>(type);
        w_.meta_le<uint16_t>(static_cast<uint16_t>(name.size()));
        w_.meta_le<uint32_t>(mode);
    }

    void walk(int dirfd, const std::string& dir, size_t depth) {
        for (const std::string& name : list_dir(dirfd, dir)) {
            std::string path = join(dir, name);
            if (name.size() > kMaxTreeNameLen) fail(Kind::Io, display(path) + ": name longer than 255 bytes");
            struct stat st {};
            if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) fail_read(errno, path);
            if (S_ISDIR(st.st_mode)) {
                if (opt_.exclude && st.st_dev == opt_.exclude->dev && st.st_ino == opt_.exclude->ino) continue;
                send_dir(dirfd, name, path, st, depth + 1);
            } else if (S_ISREG(st.st_mode)) {
                send_file(dirfd, name, path, st);
            } else if (S_ISLNK(st.st_mode)) {
                send_symlink(dirfd, name, path);
            } else {
                const char* what = S_ISFIFO(st.st_mode) ? "fifo" : S_ISSOCK(st.st_mode) ? "socket" : "device";
                if (opt_.special == SpecialFiles::Skip) {
                    result_.skipped.push_back(path);
                    continue;
                }
                fail(Kind::SpecialFile, display(path) + " is a " + what + ", which can't be copied");
            }
        }
    }

    void send_dir(int parent, const std::string& name, const std::string& path, const struct stat& st, size_t depth) {
        count_entry();
        if (depth > kMaxTreeDepth)
            fail(Kind::Limit, display(path) + ": directories nested deeper than " + std::to_string(kMaxTreeDepth) + " levels");
        UniqueFd fd(retry_eintr([&] {
            return ::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
        }));
        if (!fd) {
            if (errno == ELOOP || errno == ENOTDIR) fail_changed(path, "no longer a directory");
            fail_read(errno, path);
        }
        struct stat now {};
        if (::fstat(fd.get(), &now) != 0) fail_read(errno, path);
        if (!S_ISDIR(now.st_mode) || now.st_dev != st.st_dev || now.st_ino != st.st_ino) fail_changed(path, "replaced");
        header(kDirBegin, name, static_cast<uint32_t>(now.st_mode & 07777));
        w_.meta(name.data(), name.size());
        walk(fd.get(), path, depth);
        w_.meta_le<uint8_t>(kDirEnd);
    }

    void send_file(int parent, const std::string& name, const std::string& path, const struct stat& st) {
        count_entry();
        // O_NONBLOCK: should a fifo be swapped in after fstatat, open must not wait for a writer.
        UniqueFd fd(retry_eintr([&] {
            return ::openat(parent, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        }));
        if (!fd) {
            if (errno == ELOOP) fail_changed(path, "replaced by a symlink");
            fail_read(errno, path);
        }
        struct stat now {};
        if (::fstat(fd.get(), &now) != 0) fail_read(errno, path);
        if (!S_ISREG(now.st_mode) || now.st_dev != st.st_dev || now.st_ino != st.st_ino) fail_changed(path, "replaced");
        auto size = static_cast<uint64_t>(now.st_size);
        count_bytes(size);

        if (size <= kInlineMax) {
            // Small files go through the buffer so that many of them share one write.
            // Asking for one byte more than the size tells whether the file grew; a
            // short read that reaches the size is the end of a regular file (saves
            // a read per file).
            size_t got = 0;
            for (;;) {
                size_t want = size + 1 - got;
                ssize_t r = retry_eintr([&] { return ::read(fd.get(), scratch_.get() + got, want); });
                if (r < 0) fail_read(errno, path);
                if (r == 0) break;
                got += static_cast<size_t>(r);
                if (got == size + 1 || (got == size && static_cast<size_t>(r) < want)) break;
            }
            if (got < size) fail_changed(path, "it shrank while being read");
            if (got > size) fail_changed(path, "it grew while being read");
            header(kFile, name, static_cast<uint32_t>(now.st_mode & 07777));
            w_.meta_le<uint64_t>(size);
            w_.meta(name.data(), name.size());
            w_.raw(scratch_.get(), got);
            return;
        }
        header(kFile, name, static_cast<uint32_t>(now.st_mode & 07777));
        w_.meta_le<uint64_t>(size);
        w_.meta(name.data(), name.size());
        in_data_ = true;  // from here until all data is out, the stream can't carry an abort record
        uint64_t sent = w_.send_from(fd.get(), size, path);
        if (sent < size) fail_changed(path, "it shrank while being read");
        in_data_ = false;
        char extra;
        ssize_t r = retry_eintr([&] { return ::read(fd.get(), &extra, 1); });
        if (r < 0) fail_read(errno, path);
        if (r > 0) fail_changed(path, "it grew while being read");
    }

    void send_symlink(int parent, const std::string& name, const std::string& path) {
        count_entry();
        char target[kMaxTreeLinkTarget + 1];
        ssize_t n = ::readlinkat(parent, name.c_str(), target, sizeof target);
        if (n < 0) {
            if (errno == EINVAL) fail_changed(path, "no longer a symlink");
            fail_read(errno, path);
        }
        if (n == 0) fail_changed(path, "empty symlink target");
        if (static_cast<size_t>(n) > kMaxTreeLinkTarget)
            fail(Kind::Io, "symlink " + display(path) + " has a target longer than " + std::to_string(kMaxTreeLinkTarget) + " bytes");
        w_.meta_le<uint8_t>(kSymlink);
        w_.meta_le<uint16_t>(static_cast<uint16_t>(name.size()));
        w_.meta_le<uint16_t>(static_cast<uint16_t>(n));
        w_.meta(name.data(), name.size());
        w_.meta(target, static_cast<size_t>(n));
    }

    Writer& w_;
    const SendOptions& opt_;
    SendResult result_;
    std::unique_ptr<char[]> scratch_;
    bool in_data_ = false;
};

// ---------------------------------------------------------------------------
// Receiving

class Reader {
public:
    explicit Reader(int fd) : fd_(fd), buf_(std::make_unique<char[]>(kBufSize)) {}

    // Reads metadata (at most a few KiB at a time) into out, adding it to the digest.
    void meta(void* out, size_t n) {
        ensure(n);
        std::memcpy(out, buf_.get() + pos_, n);
        digest_.update(buf_.get() + pos_, n);
        pos_ += n;
    }
    template <typename T>
    T meta_le() {
        char b[sizeof(T)];
        meta(b, sizeof b);
        return get_le<T>(b);
    }
    std::string meta_str(size_t n) {
        std::string s(n, '\0');
        meta(s.data(), n);
        return s;
    }
    void raw(void* out, size_t n) {
        ensure(n);
        std::memcpy(out, buf_.get() + pos_, n);
        pos_ += n;
    }
    std::array<uint8_t, 32> digest() { return digest_.digest(); }

    // File data: whatever is buffered, then more from the fd.
    [[nodiscard]] size_t buffered() const { return end_ - pos_; }
    const char* peek() const { return buf_.get() + pos_; }
    void consume(size_t n) { pos_ += n; }
    void fill_some() {
        if (pos_ == end_) pos_ = end_ = 0;
        read_more();
    }
    [[nodiscard]] int fd() const { return fd_; }

private:
    void ensure(size_t n) {
        if (end_ - pos_ >= n) return;
        if (kBufSize - pos_ < n) {
            std::memmove(buf_.get(), buf_.get() + pos_, end_ - pos_);
            end_ -= pos_;
            pos_ = 0;
        }
        while (end_ - pos_ < n) read_more();
    }
    void read_more() {
        for (;;) {
            ssize_t r = ::read(fd_, buf_.get() + end_, kBufSize - end_);
            if (r > 0) {
                end_ += static_cast<size_t>(r);
                return;
            }
            if (r == 0) bad_stream("truncated (unexpected end of data)");
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                wait_fd(fd_, POLLIN);
                continue;
            }
            fail(Kind::Io, "reading the tree stream: " + errno_string(errno));
        }
    }

    int fd_;
    std::unique_ptr<char[]> buf_;
    size_t pos_ = 0, end_ = 0;
    Sha256 digest_;
};

void require_empty(int dirfd) {
    UniqueFd d(retry_eintr([&] { return ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); }));
    if (!d) fail(Kind::Io, "cannot open the destination directory: " + errno_string(errno));
    std::vector<std::string> names;
    try {
        names = list_dir(d.get(), "");
    } catch (const TreeError& e) {
        fail(Kind::Io, std::string("cannot list the destination directory: ") + e.what());
    }
    if (!names.empty()) fail(Kind::Io, "the destination directory is not empty");
}

class Receiver {
public:
    Receiver(Reader& r, int dest, const ReceiveOptions& options, SignalBlock& sigxfsz)
        : r_(r), opt_(options), sigxfsz_(sigxfsz) {
        stack_.push_back(Frame{UniqueFd(), dest, "", 0, "", false});
    }

    ReceiveResult run() {
        std::array<char, kMagic.size()> magic{};
        r_.meta(magic.data(), magic.size());
        if (magic != kMagic) bad_stream("bad magic (not a hermetic tree stream)");
        auto version = r_.meta_le<uint32_t>();
        if (version != kTreeStreamVersion)
            bad_stream("unsupported version " + std::to_string(version) + " (expected " + std::to_string(kTreeStreamVersion) + ")");
        for (;;) {
            auto type = r_.meta_le<uint8_t>();
            switch (type) {
                case kDirBegin: dir_begin(); break;
                case kDirEnd: dir_end(); break;
                case kFile: file(); break;
                case kSymlink: symlink(); break;
                case kAbort: abort(); break;
                case kEnd: end(); return std::move(result_);
                default: {
                    char hex[8];
                    std::snprintf(hex, sizeof hex, "0x%02x", type);
                    bad_stream(std::string("unknown record type ") + hex);
                }
            }
        }
    }

private:
    struct Frame {
        UniqueFd owned;
        int fd;  // -1: discarding
        std::string path;
        uint32_t mode;
        std::string last;  // previous name, for order and duplicates
        bool has_last;
    };

    std::string name(uint16_t len) {
        if (len == 0 || len > kMaxTreeNameLen) bad_stream("name length " + std::to_string(len) + " out of range");
        std::string n = r_.meta_str(len);
        if (n == "." || n == ".." || n.find('/') != std::string::npos || n.find('\0') != std::string::npos)
            bad_stream("invalid name " + quote(n));
        Frame& f = stack_.back();
        if (f.has_last && n <= f.last) {
            if (n == f.last) bad_stream("duplicate name " + display(join(f.path, n)));
            bad_stream("entries out of order at " + display(join(f.path, n)));
        }
        f.last = n;
        f.has_last = true;
        return n;
    }
    static uint32_t mode(uint32_t m) {
        if ((m & ~07777U) != 0) bad_stream("invalid mode " + std::to_string(m));
        return m & 0777;  // setuid, setgid and sticky are never carried over
    }
    void count_entry() {
        ++result_entries_;
        if (opt_.limits.max_entries != 0 && result_entries_ > opt_.limits.max_entries)
            fail(Kind::Limit, opt_.limits.label + ": limit of " + std::to_string(opt_.limits.max_entries) + " entries exceeded");
    }
    void count_bytes(uint64_t n) {
        if (opt_.limits.max_bytes != 0 && n > opt_.limits.max_bytes - std::min(result_.bytes, opt_.limits.max_bytes))
            fail(Kind::Limit, opt_.limits.label + ": limit of " + std::to_string(opt_.limits.max_bytes) + " bytes exceeded");
        if (n > UINT64_MAX - result_.bytes) bad_stream("byte count overflows");
        result_.bytes += n;
    }
    [[noreturn]] void fail_write(int err, const std::string& path) {
        if (err == EFBIG) sigxfsz_.raised();
        fail(Kind::Io, "cannot write " + display(path) + ": " + errno_string(err));
    }
    void set_times_fd(int fd, const std::string& path) {
        if (!opt_.set_mtime) return;
        timespec ts[2] = {{static_cast<time_t>(*opt_.set_mtime), 0}, {static_cast<time_t>(*opt_.set_mtime), 0}};
        if (::futimens(fd, ts) != 0) fail_write(errno, path);
    }

    void dir_begin() {
        auto len = r_.meta_le<uint16_t>();
        uint32_t m = mode(r_.meta_le<uint32_t>());
        std::string n = name(len);
        std::string path = join(stack_.back().path, n);
        count_entry();
        if (stack_.size() > kMaxTreeDepth)
            fail(Kind::Limit, display(path) + ": directories nested deeper than " + std::to_string(kMaxTreeDepth) + " levels");
        Frame f{UniqueFd(), -1, path, m, "", false};
        int parent = stack_.back().fd;
        if (parent >= 0) {
            // Owner-writable while filling; the final mode comes at the directory's end.
            if (::mkdirat(parent, n.c_str(), opt_.keep_modes ? 0700 : 0777) != 0) fail_write(errno, path);
            f.owned.reset(retry_eintr([&] {
                return ::openat(parent, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            }));
            if (!f.owned) fail_write(errno, path);
            f.fd = f.owned.get();
        }
        result_.entries.push_back(protocol::OutputEntry{path, "dir", m, 0, std::nullopt, std::nullopt});
        stack_.push_back(std::move(f));
    }

    void dir_end() {
        if (stack_.size() == 1) bad_stream("directory end without a beginning");
        Frame& f = stack_.back();
        if (f.fd >= 0) {
            if (opt_.keep_modes && ::fchmod(f.fd, f.mode) != 0) fail_write(errno, f.path);
            set_times_fd(f.fd, f.path);
        }
        stack_.pop_back();
    }

    void file() {
        auto len = r_.meta_le<uint16_t>();
        uint32_t m = mode(r_.meta_le<uint32_t>());
        auto size = r_.meta_le<uint64_t>();
        std::string n = name(len);
        std::string path = join(stack_.back().path, n);
        count_entry();
        count_bytes(size);
        UniqueFd fd;
        int parent = stack_.back().fd;
        if (parent >= 0) {
            fd.reset(retry_eintr([&] {
                return ::openat(parent, n.c_str(), O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY | O_CLOEXEC | O_NOCTTY,
                                opt_.keep_modes ? 0600 : m);
            }));
            if (!fd) fail_write(errno, path);
        }
        std::optional<Sha256> hash;
        if (opt_.hash) hash.emplace();
        data(fd.get(), size, hash ? &*hash : nullptr, path);
        if (fd) {
            if (opt_.keep_modes && ::fchmod(fd.get(), m) != 0) fail_write(errno, path);
            set_times_fd(fd.get(), path);
        }
        protocol::OutputEntry e{path, "file", m, size, std::nullopt, std::nullopt};
        if (hash) e.sha256 = hash->hex_digest();
        result_.entries.push_back(std::move(e));
    }

    void write_out(int fd, const char* p, size_t n, const std::string& path) {
        while (n > 0) {
            ssize_t w = retry_eintr([&] { return ::write(fd, p, n); });
            if (w < 0) fail_write(errno, path);
            p += w;
            n -= static_cast<size_t>(w);
        }
    }

    void data(int fd, uint64_t size, Sha256* hash, const std::string& path) {
        uint64_t left = size;
        while (left > 0) {
            if (r_.buffered() == 0) {
                if (fd >= 0 && hash == nullptr && use_splice_ && left >= kInlineMax) {
                    left -= splice_in(fd, left, path);
                    continue;
                }
                r_.fill_some();
            }
            size_t n = static_cast<size_t>(std::min<uint64_t>(left, r_.buffered()));
            if (hash) hash->update(r_.peek(), n);
            if (fd >= 0) write_out(fd, r_.peek(), n, path);
            r_.consume(n);
            left -= n;
        }
    }

    // Moves data from the stream pipe straight into the file. Returns bytes moved;
    // 0 only after switching splice off (not a pipe, or a file system without it).
    uint64_t splice_in(int fd, uint64_t left, const std::string& path) {
        for (;;) {
            size_t want = static_cast<size_t>(std::min<uint64_t>(left, kMaxChunk));
            ssize_t n = ::splice(r_.fd(), nullptr, fd, nullptr, want, SPLICE_F_MOVE);
            if (n > 0) return static_cast<uint64_t>(n);
            if (n == 0) bad_stream("truncated (unexpected end of data)");
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                wait_fd(r_.fd(), POLLIN);
                continue;
            }
            if (errno == EINVAL || errno == ENOSYS) {
                use_splice_ = false;
                return 0;
            }
            fail_write(errno, path);
        }
    }

    void symlink() {
        auto len = r_.meta_le<uint16_t>();
        auto tlen = r_.meta_le<uint16_t>();
        std::string n = name(len);
        std::string path = join(stack_.back().path, n);
        if (tlen == 0 || tlen > kMaxTreeLinkTarget) bad_stream("symlink target length " + std::to_string(tlen) + " out of range");
        std::string target = r_.meta_str(tlen);
        if (target.find('\0') != std::string::npos) bad_stream("symlink " + display(path) + " has a NUL in its target");
        count_entry();
        int parent = stack_.back().fd;
        if (parent >= 0) {
            if (::symlinkat(target.c_str(), parent, n.c_str()) != 0) fail_write(errno, path);
            if (opt_.set_mtime) {
                timespec ts[2] = {{static_cast<time_t>(*opt_.set_mtime), 0}, {static_cast<time_t>(*opt_.set_mtime), 0}};
                if (::utimensat(parent, n.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) fail_write(errno, path);
            }
        }
        protocol::OutputEntry e{path, "symlink", 0777, target.size(), std::nullopt, target};
        if (opt_.hash) e.sha256 = sha256_hex(target);
        result_.entries.push_back(std::move(e));
    }

    [[noreturn]] void abort() {
        char b[3];
        r_.raw(b, sizeof b);
        auto kind = static_cast<uint8_t>(b[0]);
        auto len = get_le<uint16_t>(b + 1);
        if (len > kMaxAbortMsg) bad_stream("abort message too long");
        std::string msg(len, '\0');
        r_.raw(msg.data(), len);
        if (kind > static_cast<uint8_t>(Kind::Stream) || len == 0) bad_stream("malformed abort record");
        // Same kind and text as the sender's error; control bytes can't reach the user.
        std::string clean = quote(msg);
        fail(static_cast<Kind>(kind), clean.substr(1, clean.size() - 2));
    }

    void end() {
        auto entries = r_.meta_le<uint64_t>();
        auto bytes = r_.meta_le<uint64_t>();
        std::array<uint8_t, 32> expected = r_.digest();
        std::array<uint8_t, 32> got{};
        r_.raw(got.data(), got.size());
        if (stack_.size() != 1) bad_stream("ends inside directory " + display(stack_.back().path));
        if (entries != result_entries_ || bytes != result_.bytes)
            bad_stream("totals do not match (" + std::to_string(entries) + " entries, " + std::to_string(bytes) +
                       " bytes announced; " + std::to_string(result_entries_) + " entries, " +
                       std::to_string(result_.bytes) + " bytes received)");
        if (got != expected) bad_stream("checksum mismatch (corrupted record headers)");
    }

    Reader& r_;
    const ReceiveOptions& opt_;
    SignalBlock& sigxfsz_;
    std::vector<Frame> stack_;
    ReceiveResult result_;
    uint64_t result_entries_ = 0;
    bool use_splice_ = true;
};

}  // namespace

SendResult send_tree(int root_dirfd, int out_fd, const SendOptions& options) {
    SignalBlock sigpipe(SIGPIPE);
    grow_pipe(out_fd);
    Writer w(out_fd, sigpipe);
    Sender s(w, options);
    try {
        s.run(root_dirfd);
    } catch (const TreeError& e) {
        try {
            s.abort(e);
        } catch (const TreeError&) {
            // The stream is gone too; the first error is the one to report.
        }
        throw;
    } catch (const SysError& e) {
        fail(Kind::Io, std::string("sending the tree: ") + e.what());
    }
    return std::move(s).result();
}

ReceiveResult receive_tree(int in_fd, int dest_dirfd, const ReceiveOptions& options) {
    SignalBlock sigxfsz(SIGXFSZ);
    if (dest_dirfd >= 0) require_empty(dest_dirfd);
    grow_pipe(in_fd);
    Reader r(in_fd);
    Receiver rec(r, dest_dirfd, options, sigxfsz);
    try {
        return rec.run();
    } catch (const SysError& e) {
        fail(Kind::Io, std::string("receiving the tree: ") + e.what());
    }
}

}  // namespace hermetic::sandbox
