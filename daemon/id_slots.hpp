// Host uid/gid pairs for running jobs. Every concurrent job gets ids no other job
// has, from this daemon's configured range, so two builds can never touch each
// other's files or processes.
#pragma once

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "sandbox/job_spec.hpp"

namespace hermetic::daemon {

class IdSlots;

// Holds a slot until destroyed.
class IdLease {
public:
    IdLease() = default;
    IdLease(IdSlots* owner, uint32_t slot, sandbox::IdRange ids) : owner_(owner), slot_(slot), ids_(ids) {}
    IdLease(IdLease&& o) noexcept;
    IdLease& operator=(IdLease&& o) noexcept;
    ~IdLease();
    [[nodiscard]] const sandbox::IdRange& ids() const { return ids_; }
    [[nodiscard]] bool valid() const { return owner_ != nullptr; }

private:
    void release() noexcept;
    IdSlots* owner_ = nullptr;
    uint32_t slot_ = 0;
    sandbox::IdRange ids_;
};

class IdSlots {
public:
    IdSlots(uid_t base, uint32_t count);
    // The lowest free slot, or nullopt when every pair is in use.
    std::optional<IdLease> acquire();
    [[nodiscard]] size_t in_use() const;

private:
    friend class IdLease;
    void release(uint32_t slot) noexcept;
    uid_t base_;
    mutable std::mutex mu_;
    std::vector<bool> used_;
};

}  // namespace hermetic::daemon
