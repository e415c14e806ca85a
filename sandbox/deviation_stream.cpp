#include "sandbox/deviation_stream.hpp"

#include "common/io.hpp"
#include "sandbox/determinism/wire.hpp"

namespace hermetic::sandbox {

namespace {
constexpr size_t kBatchBytes = 64 * 1024;
}

void DeviationStreamWriter::record(Deviation d) {
    std::lock_guard lock(mu_);
    if (broken_ || fd_ < 0) {
        ++dropped_;
        return;
    }
    determinism::encode_deviation(d, buf_);
    if (buf_.size() >= kBatchBytes) write_locked();
}

void DeviationStreamWriter::flush() {
    std::lock_guard lock(mu_);
    if (!broken_ && fd_ >= 0 && !buf_.empty()) write_locked();
}

uint64_t DeviationStreamWriter::dropped() const {
    std::lock_guard lock(mu_);
    return dropped_;
}

void DeviationStreamWriter::write_locked() {
    try {
        write_all(fd_, buf_);
    } catch (...) {
        broken_ = true;  // EPIPE: the daemon is gone or gave up on this job
        ++dropped_;
    }
    buf_.clear();
}

}  // namespace hermetic::sandbox
