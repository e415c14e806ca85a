#include "runner/runner_service.hpp"

#include <signal.h>
#include <string.h>

#include <spdlog/spdlog.h>

#include "resourceusage.pb.h"
#include "runner/server_logs.hpp"

namespace hermetic::runner {

namespace {

using grpc::Status;
using grpc::StatusCode;

Status path_status(const PathError& e) {
    if (e.escapes()) return {StatusCode::INVALID_ARGUMENT, e.what()};
    if (e.err() == ENOENT || e.err() == ENOTDIR) return {StatusCode::NOT_FOUND, e.what()};
    if (e.err() == EEXIST) return {StatusCode::ALREADY_EXISTS, e.what()};
    return {StatusCode::INTERNAL, e.what()};
}

Status submit_status(const daemon::SubmitError& e) {
    namespace ec = protocol::error_code;
    if (e.code() == ec::kBadRequest) return {StatusCode::INVALID_ARGUMENT, e.what()};
    if (e.code() == ec::kRefused || e.code() == ec::kLimit) return {StatusCode::RESOURCE_EXHAUSTED, e.what()};
    return {StatusCode::INTERNAL, e.what()};
}

void set_duration(google::protobuf::Duration* d, int64_t us) {
    d->set_seconds(us / 1000000);
    d->set_nanos(static_cast<int32_t>((us % 1000000) * 1000));
}

std::string signal_name(int sig) {
    const char* abbrev = ::sigabbrev_np(sig);
    return abbrev ? abbrev : std::to_string(sig);
}

buildbarn::resourceusage::POSIXResourceUsage posix_usage(const std::map<std::string, int64_t>& ru, int signal) {
    auto get = [&](const char* k) {
        auto it = ru.find(k);
        return it == ru.end() ? int64_t{0} : it->second;
    };
    buildbarn::resourceusage::POSIXResourceUsage u;
    set_duration(u.mutable_user_time(), get("utime_us"));
    set_duration(u.mutable_system_time(), get("stime_us"));
    u.set_maximum_resident_set_size(get("maxrss_kb") * 1024);
    u.set_page_reclaims(get("minflt"));
    u.set_page_faults(get("majflt"));
    u.set_swaps(get("nswap"));
    u.set_block_input_operations(get("inblock"));
    u.set_block_output_operations(get("oublock"));
    u.set_messages_sent(get("msgsnd"));
    u.set_messages_received(get("msgrcv"));
    u.set_signals_received(get("nsignals"));
    u.set_voluntary_context_switches(get("nvcsw"));
    u.set_involuntary_context_switches(get("nivcsw"));
    if (signal) u.set_termination_signal(signal_name(signal));
    return u;
}

}  // namespace

RunnerService::RunnerService(daemon::JobManager& jobs, const std::string& build_dir) : jobs_(jobs), build_(build_dir) {}

Status RunnerService::CheckReadiness(grpc::ServerContext*, const buildbarn::runner::CheckReadinessRequest* req,
                                     google::protobuf::Empty*) {
    try {
        if (!build_.exists(req->path()))
            return {StatusCode::NOT_FOUND, "'" + req->path() + "' does not exist in the build directory " + build_.path()};
        return Status::OK;
    } catch (const PathError& e) {
        return path_status(e);
    }
}

Status RunnerService::Run(grpc::ServerContext* ctx, const buildbarn::runner::RunRequest* req,
                          buildbarn::runner::RunResponse* resp) {
    if (req->arguments().empty() || req->arguments(0).empty())
        return {StatusCode::INVALID_ARGUMENT, "no arguments: the action has no command"};
    daemon::InPlaceRequest in;
    in.argv.assign(req->arguments().begin(), req->arguments().end());
    // A protobuf map has no order: sorted, so the same action is the same job
    // (and the same evidence) every time.
    std::map<std::string, std::string> env(req->environment_variables().begin(), req->environment_variables().end());
    in.env.assign(env.begin(), env.end());
    // A call refused after creating stdout/stderr leaves nothing behind.
    std::vector<std::string> created;
    auto undo = [&] {
        for (const auto& f : created) build_.remove_file(f);
    };
    try {
        if (req->input_root_directory().empty())
            return {StatusCode::INVALID_ARGUMENT, "input_root_directory is empty"};
        in.input_root = build_.open_dir(req->input_root_directory());
        in.workdir = req->working_directory();
        (void)build_.open_dir(in.workdir, in.input_root.get());  // a directory in the input root
        if (!req->temporary_directory().empty()) (void)build_.open_dir(req->temporary_directory());
        if (!req->server_logs_directory().empty()) (void)build_.open_dir(req->server_logs_directory());
        if (req->stdout_path().empty() || req->stderr_path().empty())
            return {StatusCode::INVALID_ARGUMENT, "stdout_path and stderr_path are required"};
        in.stdout_file = build_.create_file(req->stdout_path());
        created.push_back(req->stdout_path());
        in.stderr_file = build_.create_file(req->stderr_path());
        created.push_back(req->stderr_path());
    } catch (const PathError& e) {
        undo();
        return path_status(e);
    } catch (const std::exception& e) {
        undo();
        return {StatusCode::INTERNAL, e.what()};
    }

    daemon::Submitted s;
    try {
        s = jobs_.submit_in_place(std::move(in), daemon::Peer{});  // the daemon's own (root) job
    } catch (const daemon::SubmitError& e) {
        undo();
        return submit_status(e);
    }
    s.subscription->close();  // followed through the job itself, never blocking its output
    spdlog::info("runner: job {}: {}", s.id, req->arguments(0));

    // Until the job is journaled as finished. A call the worker gives up on (or
    // whose deadline passes) cancels the job; its sandbox is gone before we return.
    bool finished = false, cancelled = false;
    uint64_t seen = 0;
    while (!finished) {
        seen = s.job->wait_progress(seen, std::chrono::milliseconds(100), finished);
        if (!finished && !cancelled && ctx->IsCancelled()) {
            cancelled = true;
            spdlog::info("runner: job {}: the call was cancelled or expired: cancelling the job", s.id);
            try {
                jobs_.cancel(s.id, 0);  // also takes a queued job out of the queue at once
            } catch (const daemon::SubmitError&) {
                // it finished meanwhile
            }
        }
    }
    auto result = s.job->result();
    if (!result) return {StatusCode::INTERNAL, "job " + s.id + " ended without a result"};

    if (!req->server_logs_directory().empty()) {
        try {
            write_server_logs(build_, req->server_logs_directory(), s.id, jobs_.job_dir(s.id));
        } catch (const std::exception& e) {
            spdlog::warn("runner: job {}: server logs: {}", s.id, e.what());
        }
    }
    if (cancelled || result->state == daemon::job_state::kCancelled)
        return {StatusCode::CANCELLED, "job " + s.id + " cancelled"};
    if (result->state == daemon::job_state::kInterrupted)
        return {StatusCode::UNAVAILABLE, "job " + s.id + ": " + result->reason};
    if (result->client_exit_status == 124) return {StatusCode::DEADLINE_EXCEEDED, "job " + s.id + ": " + result->reason};
    int signal = result->signal.value_or(0);
    if (!result->exit_code && !signal)
        return {StatusCode::INTERNAL, "job " + s.id + ": " + (result->reason.empty() ? "failed" : result->reason)};
    resp->set_exit_code(signal ? 128 + signal : *result->exit_code);
    resp->add_resource_usage()->PackFrom(posix_usage(s.job->resource_usage(), signal));
    return Status::OK;
}

}  // namespace hermetic::runner
