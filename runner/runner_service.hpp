// The buildbarn.runner.Runner gRPC service (runner/proto/runner.proto): each
// Run is one hermeticd job in place in the action's input root, submitted to
// the same JobManager as hermeticctl's jobs, so it is admitted, journaled,
// supervised, audited and signed the same way.
//
//   CheckReadiness(path)  OK when `path` exists beneath the build directory
//   Run(request)          the action's exit code and POSIX rusage; an action that
//                         fails is not an error. Errors: INVALID_ARGUMENT (a path
//                         leaving the build directory, a malformed request),
//                         NOT_FOUND, ALREADY_EXISTS (stdout/stderr), RESOURCE_EXHAUSTED
//                         (admission), DEADLINE_EXCEEDED (the daemon's timeout),
//                         CANCELLED, UNAVAILABLE (interrupted by a shutdown),
//                         INTERNAL (a sandbox failure, with its reason).
// A call the worker cancels, or whose deadline passes, cancels the job: its
// whole sandbox is torn down before the call returns.
#pragma once

#include <grpcpp/grpcpp.h>

#include "daemon/job_manager.hpp"
#include "runner.grpc.pb.h"
#include "runner/build_directory.hpp"

namespace hermetic::runner {

class RunnerService final : public buildbarn::runner::Runner::Service {
public:
    RunnerService(daemon::JobManager& jobs, const std::string& build_dir);

    grpc::Status CheckReadiness(grpc::ServerContext* ctx, const buildbarn::runner::CheckReadinessRequest* req,
                                google::protobuf::Empty* resp) override;
    grpc::Status Run(grpc::ServerContext* ctx, const buildbarn::runner::RunRequest* req,
                     buildbarn::runner::RunResponse* resp) override;

private:
    daemon::JobManager& jobs_;
    BuildDirectory build_;
};

}  // namespace hermetic::runner
