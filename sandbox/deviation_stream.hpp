// The runner's end of the deviation stream: what the determinism supervisor
// reports is re-encoded (sandbox/determinism/wire.hpp) into the pipe the daemon
// gave with the job, where its audit writer reads it (daemon/audit_writer.hpp,
// DeviationPump). Batched: one write per 64 KiB or per flush().
#pragma once

#include <mutex>
#include <string>

#include "common/unique_fd.hpp"
#include "sandbox/deviation.hpp"

namespace hermetic::sandbox {

class DeviationStreamWriter final : public DeviationSink {
public:
    explicit DeviationStreamWriter(int fd) : fd_(fd) {}
    void record(Deviation d) override;  // thread-safe
    void flush();                       // writes what is buffered
    // Records lost because the daemon stopped reading (it then seals what it has
    // and notes the pump's error).
    [[nodiscard]] uint64_t dropped() const;

private:
    void write_locked();
    mutable std::mutex mu_;
    int fd_;
    std::string buf_;
    uint64_t dropped_ = 0;
    bool broken_ = false;
};

}  // namespace hermetic::sandbox
