// Serves the Runner service (runner_service.hpp) on a Unix socket: mode 0660,
// group = hermeticd's group (bb_worker's user must be in it), like the
// daemon's own socket. A stale socket file from an earlier life is replaced.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "daemon/job_manager.hpp"
#include "runner/runner_service.hpp"

namespace hermetic::runner {

class RunnerServer {
public:
    // Throws std::runtime_error / SysError if the socket or the build directory can't be used.
    RunnerServer(daemon::JobManager& jobs, const std::string& socket_path, const std::string& build_dir, gid_t group);
    ~RunnerServer();  // shutdown(0)
    RunnerServer(const RunnerServer&) = delete;
    RunnerServer& operator=(const RunnerServer&) = delete;

    // Stops accepting calls; calls in progress get until `deadline` to end,
    // then are cancelled (and so are their jobs). Removes the socket.
    void shutdown(std::chrono::milliseconds grace);

private:
    std::string socket_path_;
    std::unique_ptr<RunnerService> service_;
    std::unique_ptr<grpc::Server> server_;
};

}  // namespace hermetic::runner
