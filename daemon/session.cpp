#include "daemon/session.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <spdlog/spdlog.h>

#include "common/sys_error.hpp"
#include "daemon/job_requests.hpp"
#include "daemon/peer.hpp"
#include "daemon/policy_requests.hpp"
#include "protocol/messages.hpp"

namespace hermetic::daemon {

namespace {

using nlohmann::json;
namespace ec = protocol::error_code;

// A client that stops reading its output for this long is dropped (its job goes on).
constexpr int kSendTimeoutSec = 60;

void send_error(int fd, std::string_view code, std::string_view message) noexcept {
    try {
        protocol::send_message(fd, protocol::make_error(code, message));
    } catch (...) {
    }
}

void set_send_timeout(int fd) {
    timeval tv{kSendTimeoutSec, 0};
    if (::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) throw_errno("setsockopt(SO_SNDTIMEO)");
}

// Streams the job's events to the client until it is done; reads "cancel" from it.
void follow_job(int fd, Job& job, Subscription& sub) {
    for (;;) {
        pollfd p[2] = {{fd, POLLIN, 0}, {sub.wake_fd(), POLLIN, 0}};
        if (::poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            throw_errno("poll");
        }
        if (p[0].revents) {
            std::optional<protocol::Frame> f;
            try {
                f = protocol::read_frame(fd, std::chrono::steady_clock::now() + std::chrono::seconds(5));
            } catch (const protocol::ProtocolError&) {
                f.reset();
            }
            if (!f) {  // the client went away; the job carries on
                sub.close();
                return;
            }
            if (f->kind == protocol::FrameKind::Control) {
                auto m = protocol::parse_message(f->payload);
                if (m["type"] == "cancel") job.cancel();
            }
        }
        if (p[1].revents) {
            for (;;) {  // drain what is queued, then poll again
                pollfd q{sub.wake_fd(), POLLIN, 0};
                if (::poll(&q, 1, 0) <= 0) break;
                auto ev = sub.pop();
                if (!ev) return;
                switch (ev->kind) {
                    case OutputEvent::Kind::Stdout:
                        protocol::write_frame(fd, protocol::FrameKind::Stdout, ev->data);
                        break;
                    case OutputEvent::Kind::Stderr:
                        protocol::write_frame(fd, protocol::FrameKind::Stderr, ev->data);
                        break;
                    case OutputEvent::Kind::Notice: {
                        json m = protocol::make_message("notice");
                        m["message"] = ev->data;
                        protocol::send_message(fd, m);
                        break;
                    }
                    case OutputEvent::Kind::Done: {
                        json m = protocol::make_message("done");
                        m["result"] = ev->result;
                        protocol::send_message(fd, m);
                        sub.close();
                        return;
                    }
                }
            }
        }
    }
}

void handle_run(int fd, const Peer& peer, const json& msg, std::vector<UniqueFd> fds, const SessionContext& ctx) {
    protocol::RunRequest req;
    try {
        req = msg.at("request").get<protocol::RunRequest>();
    } catch (const protocol::ProtocolError& e) {
        return send_error(fd, ec::kBadRequest, e.what());
    } catch (const json::exception& e) {
        return send_error(fd, ec::kBadRequest, std::string("malformed run request: ") + e.what());
    }
    Submitted s;
    try {
        s = ctx.jobs->submit(req, peer, std::move(fds));
    } catch (const SubmitError& e) {
        return send_error(fd, e.code(), e.what());
    }
    json accepted = protocol::make_message("accepted");
    accepted["job"] = s.id;
    if (s.existing) accepted["existing"] = true;
    try {
        protocol::send_message(fd, accepted);
        if (s.existing) {
            // The same key and request: the earlier job's output and result, no second run.
            follow_stored_job(fd, *ctx.jobs, ctx.jobs->view(s.id, peer.uid), true);
        } else {
            follow_job(fd, *s.job, *s.subscription);
        }
    } catch (const std::exception& e) {
        spdlog::debug("job {}: client connection: {}", s.id, e.what());
    }
    if (s.subscription) s.subscription->close();
}

}  // namespace

void serve_session(UniqueFd conn, const SessionContext& ctx) noexcept {
    int fd = conn.get();
    try {
        Peer peer = peer_of(fd);
        if (!may_submit(peer, ctx.submit_group))
            return send_error(fd, ec::kUnauthorized,
                              "permission denied: only root and members of group '" + ctx.config->group +
                                  "' may use hermeticd");
        set_send_timeout(fd);
        auto deadline = std::chrono::steady_clock::now() + ctx.config->request_timeout;
        std::optional<protocol::Frame> f;
        try {
            f = protocol::read_frame(fd, deadline);
        } catch (const protocol::FrameTimeout&) {
            return send_error(fd, ec::kBadRequest, "no complete request within the request timeout");
        } catch (const protocol::ProtocolError& e) {
            return send_error(fd, ec::kBadRequest, e.what());
        }
        if (!f) return;
        if (f->kind != protocol::FrameKind::Control) return send_error(fd, ec::kBadRequest, "expected a control frame");
        json msg;
        try {
            msg = protocol::parse_message(f->payload);
        } catch (const protocol::VersionMismatch& e) {
            return send_error(fd, ec::kVersion,
                              "this client speaks protocol version " + std::to_string(e.peer_major) + "." +
                                  std::to_string(e.peer_minor) + ", but hermeticd (hermetic " HERMETIC_VERSION
                                  ") speaks " + protocol::version_string() +
                                  ": use the hermeticctl that comes with the running hermeticd");
        } catch (const protocol::ProtocolError& e) {
            return send_error(fd, ec::kBadRequest, e.what());
        }
        const std::string type = msg["type"].get<std::string>();
        if (type == "run") return handle_run(fd, peer, msg, std::move(f->fds), ctx);
        if (is_job_request(type)) return serve_job_request(fd, *ctx.jobs, peer.uid, msg);
        if (ctx.policies) {
            if (auto r = handle_policy_request(*ctx.policies, msg)) return protocol::send_message(fd, *r);
        }
        if (is_evidence_request(type)) return serve_evidence_request(fd, ctx.evidence, peer.uid, msg);
        if (type == "ping") {
            json pong = protocol::make_message("pong");
            pong["version"] = HERMETIC_VERSION;
            return protocol::send_message(fd, pong);
        }
        send_error(fd, ec::kBadRequest, "unknown request type '" + type.substr(0, 64) + "'");
    } catch (const std::exception& e) {
        spdlog::debug("connection: {}", e.what());
        send_error(fd, ec::kInternal, e.what());
    }
}

}  // namespace hermetic::daemon
