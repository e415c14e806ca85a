// Network namespaces made ahead of time.
//
// Creating a network namespace costs 0.5-0.9 ms here, the largest single cost of
// starting a sandbox. The pool keeps a few ready, each with lo up, owned by the
// initial user namespace (so a build can't reconfigure it: it has no CAP_NET_ADMIN
// there). Each namespace is handed out once and never reused.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "common/unique_fd.hpp"

namespace hermetic::sandbox {

// Creates one fresh network namespace with loopback up, without changing the
// caller's namespaces (it works in a short-lived thread). Returns an nsfs fd.
UniqueFd create_netns_with_loopback();

class NetnsPool {
public:
    // target: how many to keep ready; 0 disables the pool (take() creates on demand).
    explicit NetnsPool(size_t target);
    ~NetnsPool();  // stops the refill thread, closes unused namespaces
    NetnsPool(const NetnsPool&) = delete;
    NetnsPool& operator=(const NetnsPool&) = delete;

    // A namespace nobody has used. Never blocks on the refill thread: an empty pool
    // creates one synchronously. Throws SysError if creation fails. Once the refill
    // thread has failed, every take() rethrows that failure (the pool does not retry).
    UniqueFd take();
    [[nodiscard]] size_t ready() const;

private:
    void refill_loop();
    size_t target_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<UniqueFd> ready_;
    bool stop_ = false;
    std::exception_ptr refill_error_;  // the refill thread's failure; it has exited
    std::thread thread_;  // last: started once everything it touches exists
};

}  // namespace hermetic::sandbox
