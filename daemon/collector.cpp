#include "daemon/collector.hpp"

#include <spdlog/spdlog.h>

namespace hermetic::daemon {

Collector::Collector(JobManager& jobs, std::chrono::seconds interval)
    : jobs_(jobs), interval_(interval), thread_([this] { loop(); }) {}

Collector::~Collector() {
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

void Collector::set_interval(std::chrono::seconds interval) {
    {
        std::lock_guard lock(mu_);
        interval_ = interval;
        ++generation_;
    }
    cv_.notify_all();
}

uint64_t Collector::runs() const {
    std::lock_guard lock(mu_);
    return runs_;
}

void Collector::loop() {
    std::unique_lock lock(mu_);
    while (!stop_) {
        const uint64_t gen = generation_;
        auto changed = [&] { return stop_ || generation_ != gen; };
        if (interval_.count() == 0) {
            cv_.wait(lock, changed);
            continue;
        }
        if (cv_.wait_for(lock, interval_, changed)) continue;
        lock.unlock();
        try {
            jobs_.collect_garbage();
        } catch (const std::exception& e) {
            spdlog::error("automatic gc: {}", e.what());
        }
        lock.lock();
        ++runs_;
    }
}

}  // namespace hermetic::daemon
