#include "daemon/job_requests.hpp"

#include <poll.h>

#include <sstream>

#include "daemon/output_log.hpp"
#include "protocol/messages.hpp"

namespace hermetic::daemon {

using nlohmann::json;
namespace ec = protocol::error_code;

namespace {

constexpr std::string_view kTypes[] = {"status", "wait", "cancel", "logs", "list", "gc", "metrics"};

std::string job_arg(const json& msg) {
    auto it = msg.find("job");
    if (it == msg.end() || !it->is_string() || it->get_ref<const std::string&>().empty() ||
        it->get_ref<const std::string&>().size() > 64)
        throw SubmitError(ec::kBadRequest, "missing or invalid job id");
    return it->get<std::string>();
}

// The client hung up (EOF) or asked to cancel; true if it went away.
bool client_gone(int fd, Job* active) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    std::optional<protocol::Frame> f;
    try {
        f = protocol::read_frame(fd, std::chrono::steady_clock::now() + std::chrono::seconds(2));
    } catch (const protocol::ProtocolError&) {
        return true;
    }
    if (!f) return true;
    if (active && f->kind == protocol::FrameKind::Control) {
        try {
            if (protocol::parse_message(f->payload)["type"] == "cancel") active->cancel();
        } catch (const protocol::ProtocolError&) {
        }
    }
    return false;
}

json stored_result(const JobRecord& rec) {
    auto j = json::parse(rec.result, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        protocol::JobResult r;
        r.job = rec.id;
        r.state = rec.state;
        r.reason = rec.reason;
        return r;
    }
    return j;
}

}  // namespace

bool is_job_request(std::string_view type) {
    for (auto t : kTypes)
        if (t == type) return true;
    return false;
}

json job_summary(const JobRecord& rec) {
    json j = {{"job", rec.id},          {"uid", rec.uid},           {"state", rec.state},
              {"created_ms", rec.created_ms}, {"started_ms", rec.started_ms}, {"finished_ms", rec.finished_ms},
              {"reason", rec.reason}};
    auto req = json::parse(rec.request, nullptr, false);
    if (!req.is_discarded() && req.contains("argv")) j["argv"] = req["argv"];
    if (!rec.idempotency_key.empty()) j["key"] = rec.idempotency_key;
    auto res = json::parse(rec.result, nullptr, false);
    if (!res.is_discarded() && res.is_object()) {
        j["exit_code"] = res.value("exit_code", json(nullptr));
        j["signal"] = res.value("signal", json(nullptr));
        j["client_exit_status"] = res.value("client_exit_status", 125);
    }
    return j;
}

void follow_stored_job(int fd, JobManager& jobs, const JobView& view, bool with_output) {
    OutputLogTail tail(jobs.job_dir(view.record.id) + "/output.log");
    auto forward = [&](protocol::FrameKind kind, std::string_view data) {
        if (with_output) protocol::write_frame(fd, kind, data);
    };
    std::optional<protocol::JobResult> result;
    if (view.active) {
        uint64_t seen = 0;
        for (;;) {
            bool finished = false;
            seen = view.active->wait_progress(seen, std::chrono::milliseconds(200), finished);
            tail.poll(forward);
            if (finished) break;
            if (client_gone(fd, view.active.get())) return;
        }
        result = view.active->result();
    } else {
        tail.poll(forward);
    }
    json done = protocol::make_message("done");
    if (result) {
        done["result"] = *result;
    } else {
        // Finished before we looked: the journal holds the result (re-read: the
        // view may predate the end).
        done["result"] = stored_result(jobs.view(view.record.id, 0).record);
    }
    protocol::send_message(fd, done);
}

std::string metrics_text(JobManager& jobs, Journal& journal) {
    std::ostringstream o;
    o << "# HELP hermetic_jobs Jobs in the journal by state.\n# TYPE hermetic_jobs gauge\n";
    for (const auto& [state, n] : journal.count_by_state()) o << "hermetic_jobs{state=\"" << state << "\"} " << n << "\n";
    o << "# HELP hermetic_queue_depth Jobs waiting for a slot.\n# TYPE hermetic_queue_depth gauge\n";
    o << "hermetic_queue_depth " << jobs.queued() << "\n";
    o << "# HELP hermetic_jobs_running Jobs running now.\n# TYPE hermetic_jobs_running gauge\n";
    o << "hermetic_jobs_running " << jobs.running() << "\n";
    JobManager::Limits lim = jobs.limits();
    o << "# HELP hermetic_limit Admission and retention limits in force (reloadable with SIGHUP).\n"
         "# TYPE hermetic_limit gauge\n";
    for (const auto& [name, v] : {std::pair<const char*, uint64_t>{"max-jobs", lim.max_jobs},
                                  {"max-queued", lim.max_queued},
                                  {"max-jobs-per-user", lim.max_jobs_per_user},
                                  {"retain-days", lim.retain_days},
                                  {"retain-jobs", lim.retain_jobs},
                                  {"retain-bytes", lim.retain_bytes}})
        o << "hermetic_limit{option=\"" << name << "\"} " << v << "\n";
    o << "# HELP hermetic_config_reloads_total Configuration reloads (SIGHUP) applied.\n"
         "# TYPE hermetic_config_reloads_total counter\n";
    o << "hermetic_config_reloads_total " << jobs.reloads() << "\n";
    JobMetrics m = jobs.metrics();
    o << "# HELP hermetic_refusals_total Submissions refused, by reason.\n# TYPE hermetic_refusals_total counter\n";
    for (const auto& [code, n] : m.refusals) o << "hermetic_refusals_total{reason=\"" << code << "\"} " << n << "\n";
    o << "# HELP hermetic_deviations_total Audited syscall deviations, by class.\n"
         "# TYPE hermetic_deviations_total counter\n";
    for (const auto& [cls, n] : m.deviations) o << "hermetic_deviations_total{class=\"" << cls << "\"} " << n << "\n";
    o << "# HELP hermetic_job_duration_seconds Time from submission to result.\n"
         "# TYPE hermetic_job_duration_seconds histogram\n";
    for (size_t i = 0; i < std::size(kDurationBuckets); ++i)
        o << "hermetic_job_duration_seconds_bucket{le=\"" << kDurationBuckets[i] << "\"} "
          << (i < m.duration_buckets.size() ? m.duration_buckets[i] : 0) << "\n";
    o << "hermetic_job_duration_seconds_bucket{le=\"+Inf\"} " << m.finished << "\n";
    o << "hermetic_job_duration_seconds_sum " << m.duration_sum_s << "\n";
    o << "hermetic_job_duration_seconds_count " << m.finished << "\n";
    return o.str();
}

void serve_job_request(int fd, JobManager& jobs, uid_t requester, const json& msg) {
    const std::string type = msg["type"].get<std::string>();
    try {
        if (type == "status") {
            JobView v = jobs.view(job_arg(msg), requester);
            json r = protocol::make_message("status");
            r["job"] = job_summary(v.record);
            if (v.active) r["job"]["state"] = v.active->state();  // queued/running: the live state
            return protocol::send_message(fd, r);
        }
        if (type == "wait" || type == "logs") {
            JobView v = jobs.view(job_arg(msg), requester);
            json ack = protocol::make_message("accepted");
            ack["job"] = v.record.id;
            ack["existing"] = true;
            protocol::send_message(fd, ack);
            return follow_stored_job(fd, jobs, v, type == "logs");
        }
        if (type == "cancel") {
            std::string id = job_arg(msg);
            jobs.cancel(id, requester);
            json r = protocol::make_message("cancelled");
            r["job"] = id;
            return protocol::send_message(fd, r);
        }
        if (type == "list") {
            size_t limit = std::min<size_t>(msg.value("limit", size_t{100}), 10000);
            json r = protocol::make_message("list");
            r["jobs"] = json::array();
            for (const auto& rec : jobs.list(requester, limit)) {
                json j = job_summary(rec);
                if (auto live = jobs.find(rec.id)) j["state"] = live->state();
                r["jobs"].push_back(j);
            }
            return protocol::send_message(fd, r);
        }
        if (type == "gc") {
            if (requester != 0) throw SubmitError(ec::kUnauthorized, "only root may collect garbage");
            json r = protocol::make_message("gc");
            r["removed"] = jobs.collect_garbage();
            return protocol::send_message(fd, r);
        }
        if (type == "metrics") {
            json r = protocol::make_message("metrics");
            r["text"] = metrics_text(jobs, jobs.journal());
            return protocol::send_message(fd, r);
        }
    } catch (const SubmitError& e) {
        protocol::send_message(fd, protocol::make_error(e.code(), e.what()));
    }
}

}  // namespace hermetic::daemon
