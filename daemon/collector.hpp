// Automatic retention: a thread that applies JobManager::collect_garbage() every
// gc-interval seconds (0: never; hermeticctl gc still works). The interval can
// change while it runs (SIGHUP).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "daemon/job_manager.hpp"

namespace hermetic::daemon {

class Collector {
public:
    Collector(JobManager& jobs, std::chrono::seconds interval);
    ~Collector();  // stops and joins
    Collector(const Collector&) = delete;
    Collector& operator=(const Collector&) = delete;

    // The next collection is `interval` after this call (0: none until changed).
    void set_interval(std::chrono::seconds interval);
    [[nodiscard]] uint64_t runs() const;  // collections done so far

private:
    void loop();

    JobManager& jobs_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::chrono::seconds interval_;
    uint64_t generation_ = 0;  // bumped by set_interval: restarts the wait
    uint64_t runs_ = 0;
    bool stop_ = false;
    std::thread thread_;  // last: starts once everything it uses exists
};

}  // namespace hermetic::daemon
