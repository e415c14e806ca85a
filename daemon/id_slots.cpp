#include "daemon/id_slots.hpp"

#include <utility>

namespace hermetic::daemon {

IdLease::IdLease(IdLease&& o) noexcept
    : owner_(std::exchange(o.owner_, nullptr)), slot_(o.slot_), ids_(o.ids_) {}

IdLease& IdLease::operator=(IdLease&& o) noexcept {
    if (this != &o) {
        release();
        owner_ = std::exchange(o.owner_, nullptr);
        slot_ = o.slot_;
        ids_ = o.ids_;
    }
    return *this;
}

IdLease::~IdLease() { release(); }

void IdLease::release() noexcept {
    if (owner_) owner_->release(slot_);
    owner_ = nullptr;
}

IdSlots::IdSlots(uid_t base, uint32_t count) : base_(base), used_(count / 2, false) {}

std::optional<IdLease> IdSlots::acquire() {
    std::lock_guard lock(mu_);
    for (uint32_t i = 0; i < used_.size(); ++i) {
        if (used_[i]) continue;
        used_[i] = true;
        sandbox::IdRange ids{base_ + 2 * i, base_ + 2 * i + 1};
        return IdLease(this, i, ids);
    }
    return std::nullopt;
}

size_t IdSlots::in_use() const {
    std::lock_guard lock(mu_);
    size_t n = 0;
    for (bool b : used_) n += b;
    return n;
}

void IdSlots::release(uint32_t slot) noexcept {
    std::lock_guard lock(mu_);
    if (slot < used_.size()) used_[slot] = false;
}

}  // namespace hermetic::daemon
