#include "runner/runner_server.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "common/sys_error.hpp"

namespace hermetic::runner {

RunnerServer::RunnerServer(daemon::JobManager& jobs, const std::string& socket_path, const std::string& build_dir,
                           gid_t group)
    : socket_path_(socket_path), service_(std::make_unique<RunnerService>(jobs, build_dir)) {
    struct stat st{};
    if (::lstat(socket_path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) throw std::runtime_error("runner-socket " + socket_path + " exists and is not a socket");
        ::unlink(socket_path.c_str());
    }
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + socket_path, grpc::InsecureServerCredentials());
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    if (!server_) throw std::runtime_error("cannot serve the Buildbarn runner on " + socket_path);
    if (::chown(socket_path.c_str(), 0, group) != 0 || ::chmod(socket_path.c_str(), 0660) != 0) {
        int e = errno;
        shutdown(std::chrono::milliseconds(0));
        throw SysError("set the owner and mode of " + socket_path, e);
    }
    spdlog::info("Buildbarn runner listening on {} (build directory {})", socket_path, build_dir);
}

RunnerServer::~RunnerServer() { shutdown(std::chrono::milliseconds(0)); }

void RunnerServer::shutdown(std::chrono::milliseconds grace) {
    if (!server_) return;
    server_->Shutdown(std::chrono::system_clock::now() + grace);
    server_->Wait();
    server_.reset();
    ::unlink(socket_path_.c_str());
}

}  // namespace hermetic::runner
