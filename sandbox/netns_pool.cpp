#include "sandbox/netns_pool.hpp"

#include <fcntl.h>
#include <sched.h>

#include <utility>

#include "common/sys_error.hpp"
#include "sandbox/loopback.hpp"

namespace hermetic::sandbox {

UniqueFd create_netns_with_loopback() {
    UniqueFd ns;
    std::exception_ptr error;
    // A network namespace belongs to a thread, not the process: unshare() moves
    // only this thread, and it exits right after, so none of the caller's threads
    // (and no long-lived one of ours) ever runs in the new namespace. A fresh
    // std::thread, never a pooled one (std::async may reuse), for that reason.
    std::thread worker([&] {
        try {
            check(unshare(CLONE_NEWNET), "netns: unshare(CLONE_NEWNET)");
            bring_up_loopback();
            // thread-self, not self: /proc/self/ns/net is the main thread's.
            ns = UniqueFd(static_cast<int>(check(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC),
                                                 "netns: open /proc/thread-self/ns/net")));
        } catch (...) {
            error = std::current_exception();
        }
    });
    worker.join();
    if (error) std::rethrow_exception(error);
    return ns;
}

NetnsPool::NetnsPool(size_t target) : target_(target) {
    if (target_ > 0) thread_ = std::thread(&NetnsPool::refill_loop, this);
}

NetnsPool::~NetnsPool() {
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    // Waits for at most one creation in flight; ready_ then closes what is left.
    if (thread_.joinable()) thread_.join();
}

UniqueFd NetnsPool::take() {
    {
        std::lock_guard lock(mu_);
        if (refill_error_) std::rethrow_exception(refill_error_);
        if (!ready_.empty()) {
            UniqueFd ns = std::move(ready_.front());
            ready_.pop_front();
            cv_.notify_all();
            return ns;
        }
    }
    // Empty (or disabled): create here rather than wait for the refill thread.
    return create_netns_with_loopback();
}

size_t NetnsPool::ready() const {
    std::lock_guard lock(mu_);
    return ready_.size();
}

void NetnsPool::refill_loop() {
    try {
        std::unique_lock lock(mu_);
        for (;;) {
            cv_.wait(lock, [this] { return stop_ || ready_.size() < target_; });
            if (stop_) return;
            // Unlocked while creating, so take() never waits for a creation.
            lock.unlock();
            UniqueFd ns = create_netns_with_loopback();
            lock.lock();
            ready_.push_back(std::move(ns));
        }
    } catch (...) {
        // Nothing to report to from here: take() rethrows it.
        std::lock_guard lock(mu_);
        refill_error_ = std::current_exception();
    }
}

}  // namespace hermetic::sandbox
