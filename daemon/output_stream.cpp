#include "daemon/output_stream.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include "common/sys_error.hpp"

namespace hermetic::daemon {

Subscription::Subscription() : wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (!wake_) throw_errno("eventfd");
}

bool Subscription::push(OutputEvent ev) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return closed_ || bytes_ < kMaxQueuedBytes; });
    if (closed_) return false;
    bytes_ += ev.data.size();
    queue_.push_back(std::move(ev));
    uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof one);
    cv_.notify_all();
    return true;
}

std::optional<OutputEvent> Subscription::pop() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return closed_ || !queue_.empty(); });
    if (queue_.empty()) return std::nullopt;
    OutputEvent ev = std::move(queue_.front());
    queue_.pop_front();
    bytes_ -= ev.data.size();
    if (queue_.empty()) {
        uint64_t v;
        (void)!::read(wake_.get(), &v, sizeof v);
    }
    cv_.notify_all();
    return ev;
}

void Subscription::close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof one);
    cv_.notify_all();
}

bool Subscription::closed() const {
    std::lock_guard lock(mu_);
    return closed_;
}

std::shared_ptr<Subscription> OutputHub::subscribe() {
    auto s = std::make_shared<Subscription>();
    std::lock_guard lock(mu_);
    subs_.push_back(s);
    return s;
}

void OutputHub::publish(const OutputEvent& ev) {
    std::vector<std::shared_ptr<Subscription>> subs;
    {
        std::lock_guard lock(mu_);
        std::erase_if(subs_, [](const auto& s) { return s->closed(); });
        subs = subs_;
    }
    for (auto& s : subs) s->push(ev);
}

void OutputHub::close_all() {
    std::lock_guard lock(mu_);
    for (auto& s : subs_) s->close();
    subs_.clear();
}

}  // namespace hermetic::daemon
