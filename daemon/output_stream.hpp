// A job's output on its way to clients: a per-subscriber bounded queue.
//
// The job thread publishes; each connection that follows the job subscribes.
// A full queue blocks the publisher (backpressure, like a terminal that stops
// scrolling) until the subscriber catches up or goes away; a subscriber that
// can't send within its socket timeout is dropped, so a stuck client can slow
// its own job down but never the daemon or other jobs.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/unique_fd.hpp"
#include "protocol/frame.hpp"

namespace hermetic::daemon {

struct OutputEvent {
    enum class Kind { Stdout, Stderr, Notice, Done } kind;
    std::string data;       // output bytes, or a notice line
    nlohmann::json result;  // Done: the job's JobResult
};

class Subscription {
public:
    static constexpr size_t kMaxQueuedBytes = 1u << 20;

    Subscription();
    // Consumer side. Waits for the next event; nullopt once closed and drained.
    std::optional<OutputEvent> pop();
    // An eventfd that is readable while events are queued (for poll()).
    [[nodiscard]] int wake_fd() const { return wake_.get(); }
    // Either side: no more events will be delivered.
    void close();
    [[nodiscard]] bool closed() const;

    // Producer side: blocks while full; returns false if the subscriber went away.
    bool push(OutputEvent ev);

private:
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<OutputEvent> queue_;
    size_t bytes_ = 0;
    bool closed_ = false;
    UniqueFd wake_;
};

class OutputHub {
public:
    std::shared_ptr<Subscription> subscribe();
    void publish(const OutputEvent& ev);  // to every live subscriber
    void close_all();

private:
    std::mutex mu_;
    std::vector<std::shared_ptr<Subscription>> subs_;
};

}  // namespace hermetic::daemon
