// The runner's side of the engine (Supervisor, the hand-off) and the build
// process's hooks. The supervisor itself runs in engine.cpp.
#include <setjmp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <linux/futex.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/io.hpp"
#include "common/sys_error.hpp"
#include "sandbox/control_channel.hpp"
#include "sandbox/determinism/determinism.hpp"
#include "sandbox/determinism/engine.hpp"
#include "sandbox/determinism/wire.hpp"
#include "sandbox/process_util.hpp"
#include "sandbox/seccomp_install.hpp"
#include "syscall-policy/determinism_rules.hpp"
#include "syscall-policy/policy_json.hpp"

namespace hermetic::sandbox::determinism {

using nlohmann::json;

policy::Policy with_determinism(policy::Policy base) {
    policy::Policy det = policy::determinism_policy();
    for (auto& r : det.rules) base.rules.push_back(std::move(r));
    if (!base.i386_action || base.i386_action->kind != policy::ActionKind::Kill) {
        base.i386_action = det.i386_action;
        base.i386_origin = det.i386_origin;
    }
    base.name = base.name.empty() ? "determinism" : base.name + "+determinism";
    return base;
}

namespace {

sigjmp_buf g_tsc_probe;
void tsc_probe_handler(int) { siglongjmp(g_tsc_probe, 1); }
bool g_tsc_trapped = false;

// Between PR_SET_TSC and execve this process still runs hermetic's own code
// (the hand-off, its helper thread, a sanitizer runtime), and a vDSO clock read
// on a TSC clocksource executes rdtsc: without a handler that kills the build
// before it starts (seen with ASan on a host that enforces PR_SET_TSC). Emulate
// rdtsc/rdtscp here with a counter, no syscall (the calling thread may be under
// the filters already, before the supervisor serves them); anything else is a
// real fault: default action, and the instruction faults again. execve resets
// the handler, so the build itself only ever sees the supervisor's emulation.
std::atomic<uint64_t> g_pre_exec_tsc{1};
void pre_exec_rdtsc_handler(int sig, siginfo_t*, void* ctx) {
    auto* uc = static_cast<ucontext_t*>(ctx);
    auto& gr = uc->uc_mcontext.gregs;
    const auto* ip = reinterpret_cast<const unsigned char*>(gr[REG_RIP]);
    size_t len = ip[0] == 0x0f && ip[1] == 0x31 ? 2 : ip[0] == 0x0f && ip[1] == 0x01 && ip[2] == 0xf9 ? 3 : 0;
    if (len == 0) {
        ::signal(sig, SIG_DFL);
        return;
    }
    uint64_t t = g_pre_exec_tsc.fetch_add(1000, std::memory_order_relaxed);
    gr[REG_RAX] = static_cast<greg_t>(t & 0xffffffffu);
    gr[REG_RDX] = static_cast<greg_t>(t >> 32);
    if (len == 3) gr[REG_RCX] = 0;  // rdtscp's TSC_AUX
    gr[REG_RIP] += static_cast<greg_t>(len);
}

}  // namespace

void prepare_build_process() {
    // rdtsc/rdtscp raise SIGSEGV; the supervisor (the build's tracer) emulates
    // them. Survives fork and execve; the policy denies PR_SET_TSC afterwards.
    if (::prctl(PR_SET_TSC, PR_TSC_SIGSEGV, 0, 0, 0) != 0) throw_errno("prctl(PR_SET_TSC, PR_TSC_SIGSEGV)");
    // Some (virtual) CPUs accept the setting and ignore it: find out, so that the
    // summary can say rdtsc is not virtualized instead of claiming it is.
    struct sigaction sa{}, old{};
    sa.sa_handler = tsc_probe_handler;
    sigemptyset(&sa.sa_mask);
    if (::sigaction(SIGSEGV, &sa, &old) != 0) throw_errno("sigaction(SIGSEGV)");
    g_tsc_trapped = false;
    if (sigsetjmp(g_tsc_probe, 1) == 0) {
        unsigned lo, hi;
        asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
        (void)lo;
        (void)hi;
    } else {
        g_tsc_trapped = true;
    }
    if (!g_tsc_trapped) {
        if (::sigaction(SIGSEGV, &old, nullptr) != 0) throw_errno("sigaction(SIGSEGV)");
        return;
    }
    struct sigaction emu{};
    emu.sa_sigaction = pre_exec_rdtsc_handler;
    emu.sa_flags = SA_SIGINFO;
    sigemptyset(&emu.sa_mask);
    if (::sigaction(SIGSEGV, &emu, nullptr) != 0) throw_errno("sigaction(SIGSEGV)");
}

namespace {

// Sends the listener and this process's credentials on `sock`.
void send_listener(int sock, int listener) {
    char byte = g_tsc_trapped ? 'L' : 'l';  // 'l': rdtsc does not trap on this CPU
    iovec iov{&byte, 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(ucred))];
    std::memset(control, 0, sizeof control);
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cm), &listener, sizeof listener);
    cm = CMSG_NXTHDR(&msg, cm);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_CREDENTIALS;
    cm->cmsg_len = CMSG_LEN(sizeof(ucred));
    // The kernel translates the pid (our thread group's) into the receiver's pid namespace.
    ucred cred{::getpid(), ::geteuid(), ::getegid()};
    std::memcpy(CMSG_DATA(cm), &cred, sizeof cred);
    if (retry_eintr([&] { return ::sendmsg(sock, &msg, MSG_NOSIGNAL); }) != 1) throw_errno("send seccomp listener");
}

// Between the thread that installs the filters and the one that hands the
// listener over. Static: the helper may still be on its way out when the
// build execs (which ends it).
struct HandOff {
    static constexpr int kNoListener = -1, kInstallFailed = -2;
    enum State : int { Waiting, Sent, Released, Failed };
    std::atomic<int> listener{kNoListener};
    std::atomic<int> state{Waiting};
    int error = 0;
    char what[160] = {};
};
HandOff g_handoff;

long futex(std::atomic<int>* addr, int op, int value) {
    return ::syscall(SYS_futex, reinterpret_cast<int*>(addr), op, value, nullptr, nullptr, 0);
}

}  // namespace

void install_filters_and_hand_off(int sock, const policy::CompiledPolicy& policy) {
    // seccomp filters belong to the thread that installs them (no TSYNC): this
    // helper, created first, stays unfiltered, so no call of the hand-off is
    // subject to the policy (which may log, deny or route sendmsg, read,
    // getpid, close... and nobody could answer those before the supervisor has
    // the listener).
    HandOff& h = g_handoff;
    h.listener.store(HandOff::kNoListener);
    h.state.store(HandOff::Waiting);
    std::thread helper([&h, sock] {
        int fd;
        while ((fd = h.listener.load(std::memory_order_acquire)) == HandOff::kNoListener) {
            timespec ts{0, 20'000};
            ::nanosleep(&ts, nullptr);
        }
        if (fd == HandOff::kInstallFailed) return;
        int next = HandOff::Released;
        try {
            send_listener(sock, fd);
            ::close(fd);  // shared fd table: only the supervisor holds it now
            h.state.store(HandOff::Sent, std::memory_order_release);
            char go = 0;
            ssize_t n = retry_eintr([&] { return ::read(sock, &go, 1); });
            if (n != 1 || go != 'G') throw SysError("the supervisor did not attach", n < 0 ? errno : ECONNRESET);
        } catch (const SysError& e) {
            h.error = e.code();
            std::snprintf(h.what, sizeof h.what, "%s", e.what());
            next = HandOff::Failed;
            // A wait of the other thread that went to the listener fails
            // (ENOSYS) once nobody holds it, instead of waiting for ever.
            if (h.state.load(std::memory_order_acquire) == HandOff::Waiting) ::close(fd);
        }
        h.state.store(next, std::memory_order_release);
        futex(&h.state, FUTEX_WAKE_PRIVATE, 1);
    });
    helper.detach();

    UniqueFd listener;
    try {
        listener = install_filters(policy);
        if (!listener) throw SysError("install_filters_and_hand_off: the policy has no listener", EINVAL);
    } catch (...) {
        h.listener.store(HandOff::kInstallFailed, std::memory_order_release);
        throw;
    }
    // From here this thread is under the policy. It sleeps until the helper is
    // done: a wait the policy lets through sleeps in the kernel; one it sends
    // to the supervisor (logged, or a routed denial) waits for it to attach,
    // which the helper brings about on its own, and is answered then (and we
    // look again). Spinning instead kept the helper off a busy CPU for a
    // scheduler slice (2-3 ms of every job here).
    h.listener.store(listener.release(), std::memory_order_release);
    int st;
    while ((st = h.state.load(std::memory_order_acquire)) == HandOff::Waiting || st == HandOff::Sent)
        futex(&h.state, FUTEX_WAIT_PRIVATE, st);
    if (st == HandOff::Failed) throw std::runtime_error(h.what);
}

Handoff receive_handoff(int sock) {
    int one = 1;
    if (::setsockopt(sock, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0) throw_errno("setsockopt(SO_PASSCRED)");
    char byte = 0;
    iovec iov{&byte, 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4) + CMSG_SPACE(sizeof(ucred))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = retry_eintr([&] { return ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); });
    if (n < 0) throw_errno("receive seccomp listener");
    Handoff h;
    for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET) continue;
        if (cm->cmsg_type == SCM_RIGHTS) {
            size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < count; ++i) {
                int fd;
                std::memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
                if (!h.listener) h.listener.reset(fd);
                else ::close(fd);
            }
        } else if (cm->cmsg_type == SCM_CREDENTIALS) {
            ucred c;
            std::memcpy(&c, CMSG_DATA(cm), sizeof c);
            h.pid = c.pid;
        }
    }
    h.tsc_trapped = byte == 'L';
    if (n != 1 || (byte != 'L' && byte != 'l') || !h.listener || h.pid <= 0 || (msg.msg_flags & MSG_CTRUNC))
        throw SysError("malformed hand-off from the build process", EPROTO);
    return h;
}

void release_build(int sock) {
    char go = 'G';
    if (retry_eintr([&] { return ::write(sock, &go, 1); }) != 1) throw_errno("release the build process");
}

// ---- Summary <-> JSON (the supervisor sends it at the end)

void to_json(json& j, const Summary& s) {
    j = json{{"by_syscall", s.by_syscall}, {"by_class", s.by_class}, {"denied", s.denied},
             {"unvirtualizable", s.unvirtualizable}, {"notes", s.notes}, {"processes", s.processes},
             {"execs", s.execs}, {"trap_ns_total", s.trap_ns_total}, {"traps", s.traps}, {"stops", s.stops},
             {"stop_ns_total", s.stop_ns_total}};
}
void from_json(const json& j, Summary& s) {
    s.by_syscall = j.value("by_syscall", std::map<std::string, uint64_t>{});
    s.by_class = j.value("by_class", std::map<std::string, uint64_t>{});
    s.denied = j.value("denied", std::map<std::string, uint64_t>{});
    s.unvirtualizable = j.value("unvirtualizable", std::vector<std::string>{});
    s.notes = j.value("notes", std::vector<std::string>{});
    s.processes = j.value("processes", uint64_t{0});
    s.execs = j.value("execs", uint64_t{0});
    s.trap_ns_total = j.value("trap_ns_total", uint64_t{0});
    s.traps = j.value("traps", uint64_t{0});
    s.stops = j.value("stops", uint64_t{0});
    s.stop_ns_total = j.value("stop_ns_total", uint64_t{0});
}

void to_json(json& j, const DeterminismConfig& c) {
    j = json{{"seed", c.seed},
             {"epoch", c.epoch},
             {"cpus", c.cpus},
             {"trace", c.trace},
             {"clock_step_ns", c.clock_step_ns},
             {"uptime_at_epoch_s", c.uptime_at_epoch_s},
             {"tsc_hz", c.tsc_hz},
             {"uname", {c.uname_sysname, c.uname_nodename, c.uname_domainname, c.uname_release, c.uname_version,
                        c.uname_machine}},
             {"memory_bytes", c.memory_bytes},
             {"record_deviations", c.record_deviations},
             {"in_process_clock", c.in_process_clock},
             {"in_process_stat", c.in_process_stat},
             {"in_process_rdtsc", c.in_process_rdtsc},
             {"in_process_rseq", c.in_process_rseq},
             {"in_process_loader_stat", c.in_process_loader_stat},
             {"policy_digest", c.policy_digest},
             {"policy_prepared", c.policy_prepared}};
    if (c.policy) j["policy"] = policy::policy_to_json(*c.policy);
}
void from_json(const json& j, DeterminismConfig& c) {
    c.seed = j.at("seed").get<uint64_t>();
    c.epoch = j.at("epoch").get<int64_t>();
    c.cpus = j.at("cpus").get<uint32_t>();
    c.trace = j.at("trace").get<bool>();
    c.clock_step_ns = j.at("clock_step_ns").get<int64_t>();
    c.uptime_at_epoch_s = j.at("uptime_at_epoch_s").get<int64_t>();
    c.tsc_hz = j.at("tsc_hz").get<uint64_t>();
    const auto& u = j.at("uname");
    if (!u.is_array() || u.size() != 6) throw std::runtime_error("determinism config: uname needs 6 fields");
    c.uname_sysname = u[0].get<std::string>();
    c.uname_nodename = u[1].get<std::string>();
    c.uname_domainname = u[2].get<std::string>();
    c.uname_release = u[3].get<std::string>();
    c.uname_version = u[4].get<std::string>();
    c.uname_machine = u[5].get<std::string>();
    c.memory_bytes = j.at("memory_bytes").get<uint64_t>();
    c.record_deviations = j.at("record_deviations").get<bool>();
    c.in_process_clock = j.at("in_process_clock").get<bool>();
    c.in_process_stat = j.value("in_process_stat", true);
    c.in_process_rdtsc = j.value("in_process_rdtsc", true);
    c.in_process_rseq = j.value("in_process_rseq", true);
    c.in_process_loader_stat = j.value("in_process_loader_stat", true);
    c.policy_digest = j.value("policy_digest", "");
    c.policy_prepared = j.value("policy_prepared", false);
    c.policy.reset();
    if (j.contains("policy")) c.policy = std::make_shared<const policy::Policy>(policy::policy_from_json(j["policy"]));
}

// ---- Supervisor (runner side)

// Reads deviation records from the supervisor and hands them to the sink.
struct Supervisor::Reader {
    UniqueFd fd;
    DeviationSink& sink;
    std::thread thread;
    Reader(UniqueFd f, DeviationSink& s) : fd(std::move(f)), sink(s) {
        thread = std::thread([this] { loop(); });
    }
    ~Reader() {
        if (thread.joinable()) thread.join();
    }
    void loop() noexcept {
        std::string buf;
        char chunk[1 << 16];
        for (;;) {
            ssize_t n = ::read(fd.get(), chunk, sizeof chunk);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return;  // the supervisor closed its end (stop) or died
            buf.append(chunk, static_cast<size_t>(n));
            std::string_view in(buf);
            try {
                Deviation d;
                while (decode_deviation(in, d)) sink.record(std::move(d));
            } catch (...) {
                return;  // a corrupt stream: stop reading; the summary still arrives
            }
            buf.erase(0, buf.size() - in.size());
        }
    }
};

Supervisor::Supervisor() {
    SocketPair control = make_socketpair();
    SocketPair devs = make_socketpair();
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) throw_errno("fork the determinism supervisor");
    if (pid == 0) {
        int rc = 1;
        try {
            if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) ::_exit(1);
            // It holds the build's memory and listener: nobody may ptrace or dump it.
            if (::prctl(PR_SET_DUMPABLE, 0) != 0) ::_exit(1);
            close_fds_except({0, 1, 2, control.b.get(), devs.b.get()});
            // While the sandbox waits for a job (at the pool's low priority),
            // not at the build's first exec (AT_RANDOM): ~1.5 ms.
            warm_up_crypto();
            Engine engine(std::move(control.b), std::move(devs.b));
            rc = engine.run();
        } catch (...) {
        }
        ::_exit(rc);
    }
    pid_ = pid;
    control_ = std::move(control.a);
    control.b.reset();
    devs.b.reset();
    deviations_ = std::move(devs.a);
}

Supervisor::Supervisor(const DeterminismConfig& config, DeviationSink& sink) : Supervisor() { configure(config, sink); }

void Supervisor::configure(const DeterminismConfig& config, DeviationSink& sink) {
    if (configured_) throw std::logic_error("determinism supervisor: configured twice");
    if (!config.policy && !(config.policy_prepared && policy_prepared_))
        throw std::invalid_argument("determinism supervisor: no policy in the configuration");
    configured_ = true;
    reader_ = std::make_unique<Reader>(std::move(deviations_), sink);
    // Not waiting for an answer: the supervisor prepares the policy while init
    // sets the sandbox up; its verdict comes back as start()'s reply.
    send_control(control_.get(), {{"configure", config}});
}

Supervisor::~Supervisor() {
    try {
        (void)stop();
    } catch (...) {
    }
}

namespace {

ControlMessage expect_reply(int fd, const char* key) {
    auto m = receive_control(fd);
    if (!m) throw std::runtime_error("determinism supervisor ended unexpectedly");
    if (m->body.contains("error")) throw std::runtime_error("determinism supervisor: " + m->body["error"].get<std::string>());
    if (!m->body.contains(key)) throw std::runtime_error(std::string("determinism supervisor: expected ") + key);
    return std::move(*m);
}

}  // namespace

void Supervisor::prepare_policy(const policy::Policy& policy) {
    if (configured_) throw std::logic_error("determinism supervisor: prepare_policy() after configure()");
    send_control(control_.get(), {{"prepare_policy", policy::policy_to_json(policy)}});
    (void)expect_reply(control_.get(), "policy_prepared");
    policy_prepared_ = true;
}

void Supervisor::learn_mounts(pid_t init_pid) {
    send_control(control_.get(), {{"learn_mounts", init_pid}});
    (void)expect_reply(control_.get(), "mounts_learned");
}

UniqueFd Supervisor::open_served_files(pid_t init_pid) {
    send_control(control_.get(), {{"open_fuse", init_pid}});
    auto m = expect_reply(control_.get(), "fuse");
    if (m.fds.size() != 1) throw std::runtime_error("determinism supervisor: no /dev/fuse descriptor");
    return std::move(m.fds[0]);
}

void Supervisor::start(pid_t build_pid, UniqueFd listener, bool tsc_traps) {
    if (!configured_) throw std::logic_error("determinism supervisor: start() before configure()");
    int fd = listener.get();
    // A supervisor that refused the configuration has said why and left: the
    // send fails (EPIPE) but its reason is queued for expect_reply.
    try {
        send_control(control_.get(), {{"start", build_pid}, {"tsc_traps", tsc_traps}}, std::span<const int>(&fd, 1));
    } catch (const SysError&) {
    }
    listener.reset();
    (void)expect_reply(control_.get(), "started");
}

void Supervisor::start_from_handoff(int sock) {
    Handoff h = receive_handoff(sock);
    start(h.pid, std::move(h.listener), h.tsc_trapped);
    release_build(sock);
}

Summary Supervisor::stop() {
    if (stopped_) return summary_;
    stopped_ = true;
    bool lost = false;
    try {
        // A supervisor that failed has said why and left: the send fails
        // (EPIPE) but its parting message is still queued; report that, not EPIPE.
        try {
            send_control(control_.get(), {{"stop", true}});
        } catch (const SysError&) {
        }
        auto m = expect_reply(control_.get(), "summary");
        summary_ = m.body["summary"].get<Summary>();
    } catch (const std::exception& e) {
        summary_.notes.push_back(std::string("supervisor: ") + e.what());
        lost = true;
    }
    control_.reset();
    if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        struct rusage ru{};
        while (::wait4(pid_, &status, __WALL, &ru) < 0 && errno == EINTR) {
        }
        // How it ended, when it ended on its own (a sanitizer's report exits 1).
        if (lost && WIFEXITED(status))
            summary_.notes.push_back("supervisor: exited with status " + std::to_string(WEXITSTATUS(status)));
        else if (lost && WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL)
            summary_.notes.push_back(std::string("supervisor: killed by ") + strsignal(WTERMSIG(status)));
        summary_.supervisor_cpu_ns = static_cast<uint64_t>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1'000'000'000ULL +
                                     static_cast<uint64_t>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ULL;
        pid_ = -1;
    }
    reader_.reset();  // joins: every record was delivered
    return summary_;
}

}  // namespace hermetic::sandbox::determinism
