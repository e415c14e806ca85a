#include "daemon/output_log.hpp"

#include <fcntl.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <cstring>

#include "common/io.hpp"
#include "common/sys_error.hpp"

namespace hermetic::daemon {

OutputLog::OutputLog(const std::string& path, uint64_t cap)
    : fd_(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600)), cap_(cap) {
    if (!fd_) throw_errno("create " + path);
}

namespace {

// One piece of output as frames no bigger than a reader accepts (write_frame
// refuses more than kMaxFrame, which would fail the whole job).
void write_frames(int fd, protocol::FrameKind kind, std::string_view data) {
    do {
        std::string_view piece = data.substr(0, protocol::kMaxOutputChunk);
        protocol::write_frame(fd, kind, piece);
        data.remove_prefix(piece.size());
    } while (!data.empty());
}

}  // namespace

void OutputLog::append(protocol::FrameKind kind, std::string_view data) {
    if (truncated_) return;
    if (written_ + data.size() > cap_) {
        size_t room = cap_ > written_ ? static_cast<size_t>(cap_ - written_) : 0;
        if (room > 0) write_frames(fd_.get(), kind, data.substr(0, room));
        std::string notice = "\n[hermetic: stored log truncated at " + std::to_string(cap_) + " bytes]\n";
        protocol::write_frame(fd_.get(), protocol::FrameKind::Stderr, notice);
        truncated_ = true;
        return;
    }
    write_frames(fd_.get(), kind, data);
    written_ += data.size();
}

void OutputLog::sync() {
    if (::fsync(fd_.get()) != 0) throw_errno("fsync output log");
}

bool OutputLogTail::poll(const std::function<void(protocol::FrameKind, std::string_view)>& sink) {
    if (!fd_) {
        fd_.reset(::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
        if (!fd_) {
            if (errno == ENOENT) return false;
            throw_errno("open " + path_);
        }
    }
    char chunk[65536];
    for (;;) {
        ssize_t n = ::read(fd_.get(), chunk, sizeof chunk);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw_errno("read " + path_);
        }
        if (n == 0) break;
        buf_.append(chunk, static_cast<size_t>(n));
    }
    size_t pos = 0;
    while (buf_.size() - pos >= 5) {
        uint32_t len;
        std::memcpy(&len, buf_.data() + pos, 4);
        len = ntohl(len);
        if (len == 0 || len > protocol::kMaxFrame) throw SysError("corrupt output log " + path_, EBADMSG);
        if (buf_.size() - pos - 4 < len) break;  // still being written
        auto kind = static_cast<protocol::FrameKind>(buf_[pos + 4]);
        sink(kind, std::string_view(buf_.data() + pos + 5, len - 1));
        pos += 4 + len;
    }
    buf_.erase(0, pos);
    return true;
}

void replay_output_log(const std::string& path,
                       const std::function<void(protocol::FrameKind, std::string_view)>& sink) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) throw_errno("open " + path);
    for (;;) {
        std::optional<protocol::Frame> f;
        try {
            f = protocol::read_frame(fd.get());
        } catch (const protocol::ProtocolError&) {
            return;  // a torn tail from a crash: what came before is still good
        }
        if (!f) return;
        sink(f->kind, f->payload);
    }
}

}  // namespace hermetic::daemon
