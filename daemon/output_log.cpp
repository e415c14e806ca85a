#include "daemon/output_log.hpp"

#include <fcntl.h>
#include <unistd.h>

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
