// The supervisor process: event loop, notification dispatch, answers, records.
#include "sandbox/determinism/engine.hpp"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cpuid.h>
#include <cstddef>
#include <cstring>

#include <nlohmann/json.hpp>

#include "common/io.hpp"
#include "common/sha256.hpp"
#include "common/sys_error.hpp"
#include "sandbox/control_channel.hpp"
#include "sandbox/determinism/vdso.hpp"
#include "sandbox/determinism/wire.hpp"
#include "syscall-policy/determinism_rules.hpp"
#include "syscall-policy/parser.hpp"
#include "syscall-policy/policy_json.hpp"

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

namespace hermetic::sandbox::determinism {

void to_json(nlohmann::json& j, const Summary& s);

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kErestartNoIntr = 513;  // the kernel restarts the call on the way out
constexpr size_t kDeviationFlushBytes = 32 << 10;
// <linux/nsfs.h> of Linux 6.9 (Debian 12's headers predate them): a pid of the
// caller's namespace translated into the one the descriptor names.
constexpr unsigned long kNsGetPidInPidns = _IOR(0xb7, 0x8, int);
constexpr unsigned long kNsGetTgidInPidns = _IOR(0xb7, 0x9, int);
constexpr auto kDeviationFlushDelay = std::chrono::milliseconds(20);

const std::string& name_of(int nr, bool i386 = false) {
    static const auto table = [](policy::Arch arch) {
        std::vector<std::string> v(512);
        for (int i = 0; i < 512; ++i) v[i] = policy::syscall_name(i, arch);
        return v;
    };
    static const std::vector<std::string> x86_64 = table(policy::Arch::X86_64);
    static const std::vector<std::string> x86 = table(policy::Arch::I386);
    static const std::string unknown = "?";
    const std::string& name = nr >= 0 && nr < 512 ? (i386 ? x86 : x86_64)[nr] : unknown;
    return name.empty() ? unknown : name;
}

std::string args_text(const seccomp_notif& n) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%llx,%llx,%llx,%llx,%llx,%llx", (unsigned long long)n.data.args[0],
                  (unsigned long long)n.data.args[1], (unsigned long long)n.data.args[2],
                  (unsigned long long)n.data.args[3], (unsigned long long)n.data.args[4],
                  (unsigned long long)n.data.args[5]);
    return buf;
}

}  // namespace

// The class of a syscall the policy logs or denies: what the audit summary groups.
const char* policy_class(std::string_view name) {
    static constexpr std::string_view kNetwork[] = {
        "socket",   "socketpair", "connect",    "bind",       "listen",      "accept",      "accept4",
        "sendto",   "sendmsg",    "sendmmsg",   "recvfrom",   "recvmsg",     "recvmmsg",    "setsockopt",
        "getsockopt", "getsockname", "getpeername", "shutdown", "send",      "recv",        "socketcall"};
    for (std::string_view n : kNetwork)
        if (n == name) return "network";
    return "policy";
}

PolicyAnswer answer_for(const policy::Action& verdict, policy::Arch arch, std::string_view name) {
    PolicyAnswer a;
    a.cls = policy_class(name);
    switch (verdict.kind) {
        case policy::ActionKind::Virtualize:
            if (arch == policy::Arch::X86_64) {
                a.kind = PolicyAnswer::Emulate;
            } else {
                // The i386 calls have other numbers and layouts: nothing here
                // emulates them (the determinism profile closes that entry).
                a.kind = PolicyAnswer::Deny;
                a.error = ENOSYS;
                a.failed_closed = true;
            }
            return a;
        case policy::ActionKind::Allow: a.kind = PolicyAnswer::Continue; return a;
        case policy::ActionKind::Log: a.kind = PolicyAnswer::Log; return a;
        case policy::ActionKind::Errno:
            a.kind = PolicyAnswer::Deny;
            a.error = verdict.errno_value;
            return a;
        case policy::ActionKind::Kill:
            // Kill rules stay in the kernel's filters: one arriving here is a
            // race with a policy we don't know of; fail it closed.
            a.kind = PolicyAnswer::Deny;
            a.error = ENOSYS;
            a.failed_closed = true;
            return a;
    }
    a.kind = PolicyAnswer::Deny;
    a.error = ENOSYS;
    a.failed_closed = true;
    return a;
}

const char* class_of(int nr) {
    switch (nr) {
        case SYS_clock_gettime: case SYS_clock_getres: case SYS_gettimeofday: case SYS_time: case SYS_times:
        case SYS_getrusage: case SYS_nanosleep: case SYS_clock_nanosleep: case SYS_futex: case SYS_futex_waitv:
        case SYS_timerfd_settime: case SYS_timer_settime: case SYS_mq_timedsend: case SYS_mq_timedreceive:
        case SYS_poll: case SYS_epoll_wait: case SYS_epoll_pwait: case SYS_epoll_pwait2: case SYS_ppoll:
        case SYS_pselect6: case SYS_select: case SYS_rt_sigtimedwait: case SYS_semtimedop: case SYS_io_getevents:
        case SYS_recvmmsg:
            return "time";
        case SYS_getrandom: return "random";
        case SYS_uname: case SYS_sysinfo: case SYS_getcpu: return "identity";
        case SYS_sched_getaffinity: case SYS_sched_setaffinity: return "cpu";
        case SYS_getdents: case SYS_getdents64: return "fs-order";
        default: return "fs-metadata";
    }
}

Engine::Engine(UniqueFd control, UniqueFd deviations) : control_(std::move(control)), deviations_(std::move(deviations)) {
    hostproc_.reset(::open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!hostproc_) throw_errno("open /proc");
    if (seccomp_notify_alloc(&req_, &resp_) != 0) throw std::runtime_error("seccomp_notify_alloc");
}

Engine::~Engine() { seccomp_notify_free(req_, resp_); }

void Engine::configure(DeterminismConfig cfg) {
    if (configured_) throw std::runtime_error("configured twice");
    if (!cfg.policy && !cfg.policy_prepared) throw std::runtime_error("no policy in the configuration");
    // What the served files need (seed, CPUs, epoch) is ready now: init mounts
    // them as soon as it has the job. The policy is prepared at the first idle
    // moment (prepare_policy()), before the build can make a call.
    cfg_ = std::move(cfg);
    key_ = root_key(cfg_.seed);
    configured_ = true;
}

// The canonical digests of a policy, with and without denials routed (the
// daemon compiles it either way).
static std::set<std::string> policy_digests(const policy::Policy& p) {
    std::set<std::string> d;
    for (bool route : {true, false})
        d.insert(sha256_hex(policy::canonical_text(p, {.route_denials_to_supervisor = route})));
    return d;
}

// Ahead of the job: the policy it will most likely run under, so that its
// configuration need not carry one (parsing, checking and preparing it took
// ~3 ms of the job's start here).
void Engine::prepare_likely_policy(const nlohmann::json& j) {
    auto p = std::make_shared<const policy::Policy>(policy::policy_from_json(j));
    likely_digests_ = policy_digests(*p);
    likely_prepared_ = std::make_shared<const policy::PreparedPolicy>(*p);
    likely_policy_ = std::move(p);
}

void Engine::prepare_policy() {
    if (policy_) return;
    if (cfg_.policy_prepared) {
        if (!likely_policy_ || !likely_digests_.count(cfg_.policy_digest))
            throw std::runtime_error("the job's policy (" + cfg_.policy_digest + ") is not the one prepared ahead");
        cfg_.policy = likely_policy_;
        policy_ = likely_prepared_;
    } else {
        if (!cfg_.policy_digest.empty() && !policy_digests(*cfg_.policy).count(cfg_.policy_digest))
            throw std::runtime_error("the job's policy does not match its digest " + cfg_.policy_digest);
        // Throws policy::PolicyError for a policy decide() can't use: the job then
        // fails its setup with that reason.
        policy_ = std::make_shared<const policy::PreparedPolicy>(*cfg_.policy);
    }
    // The clock page serves clock_gettime, gettimeofday and time without a
    // trap: only if the policy virtualizes them all (a policy that logs one
    // gets it run for real, through the patched vDSO's syscall).
    if (!clock_reads_virtualized()) cfg_.in_process_clock = false;
}

bool Engine::policy_ready() {
    if (refused_) return false;
    try {
        prepare_policy();
    } catch (const std::exception& e) {
        refuse_configuration(e);
        return false;
    }
    return true;
}

void Engine::refuse_configuration(const std::exception& e) {
    // The runner reads this as start()'s answer; nothing to supervise. The
    // supervisor stays until told to stop: init may be mounting the served
    // files, and a FUSE mount whose server left would wait forever.
    send_control(control_.get(), {{"error", std::string("configuration refused: ") + e.what()}});
    refused_ = true;
}

bool Engine::clock_reads_virtualized() const {
    auto virtualized = [&](int nr, std::initializer_list<uint64_t> first_args) {
        for (uint64_t a0 : first_args) {
            const uint64_t args[6] = {a0, 0x7ffd00001000, 0, 0, 0, 0};
            if (policy_->decide(policy::Arch::X86_64, nr, args).action.kind != policy::ActionKind::Virtualize)
                return false;
        }
        return true;
    };
    return virtualized(SYS_clock_gettime, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}) &&
           virtualized(SYS_gettimeofday, {0x7ffd00002000}) && virtualized(SYS_time, {0, 0x7ffd00002000});
}

Task* Engine::task(pid_t tid) {
    auto it = tasks_.find(tid);
    return it == tasks_.end() ? nullptr : it->second.get();
}

void Engine::fold(Task& t) {
    Process& p = *t.proc;
    if (!p.inproc) return;
    uint64_t counter = 0;
    if (!read_mem(p, policy::kScratchBase, &counter, sizeof counter) || counter == 0) return;
    t.vt = advanced(t.vt, counter, cfg_.clock_step_ns);
    // Of those, the rdtsc reads of patched loader sites (rdtsc_patch.hpp).
    uint64_t tsc_reads = 0;
    if (p.rdtsc_patched) {
        uint64_t n = 0;
        if (read_mem(p, policy::kScratchBase + kRdtscCountOffset, &n, sizeof n))
            tsc_reads = std::min(counter, grown_since(n, p.rdtsc_seen));  // the build can write it
    }
    // One record per batch (each read was served without a trap).
    if (tsc_reads) {
        summary_.by_syscall["rdtsc (in-process)"] += tsc_reads;
        record_batch(t, "rdtsc", "in-process", "time", std::to_string(tsc_reads) + " reads, up to " + std::to_string(t.vt),
                     tsc_reads);
    }
    if (const uint64_t clock_reads = counter - tsc_reads) {
        summary_.by_syscall["clock read (in-process vDSO)"] += clock_reads;
        record_batch(t, "clock_gettime", "in-process vDSO", "time",
                     std::to_string(clock_reads) + " reads, up to " + std::to_string(t.vt), clock_reads);
    }
    uint64_t zero = 0;
    if (!write_mem(p, policy::kScratchBase, &zero, sizeof zero)) p.inproc = false;
}

// The loader's rseq calls its trampoline denied (prepare_loader_sites), as
// one record of denials: the same verdict a trapped one gets.
void Engine::fold_rseq_count(Task& t) {
    Process& p = *t.proc;
    if (!p.rseq_patched || p.shared_mm) return;
    uint64_t n = 0;
    if (!read_mem(p, policy::kScratchBase + kRseqCountOffset, &n, sizeof n)) return;
    const uint64_t calls = grown_since(n, p.rseq_seen);
    if (calls == 0) return;
    auto known = rseq_sites_.begin();
    const int error = known != rseq_sites_.end() ? known->second.error : ENOSYS;
    summary_.by_syscall["rseq (in-process)"] += calls;
    record_batch(t, "rseq", "in-process", "policy", "-" + policy::errno_name(error), calls, DeviationAction::Denied);
}

// What every record says of the task that caused it.
Deviation Engine::deviation_by(Task& t) {
    Deviation d;
    d.virtual_time_ns = t.vt;
    d.real_pid = t.tid;
    resolve_vpid(t);
    d.virtual_pid = t.vtid;
    d.exe = exe_of(*t.proc).substr(0, 256);
    return d;
}

void Engine::record_batch(Task& t, const char* syscall, const char* args, const char* cls, std::string value,
                          uint64_t count, DeviationAction action) {
    summary_.by_class[cls] += count;
    if (!cfg_.record_deviations) return;
    Deviation d = deviation_by(t);
    d.syscall = syscall;
    d.args = args;
    d.cls = cls;
    d.value = std::move(value);
    d.count = count;
    d.action = action;
    if (dev_buf_.empty()) dev_first_ = Clock::now();
    encode_deviation(d, dev_buf_);
}

void Engine::publish(Task& t) {
    Process& p = *t.proc;
    // An armed timer moves the clock when its real deadline passes: only a trap sees that.
    bool eligible = cfg_.in_process_clock && !cfg_.trace && p.scratch && !p.shared_mm && !p.multithreaded &&
                    p.tasks == 1 && t.timers.empty();
    if (!eligible) {
        if (p.inproc) disable_clock_page(t);
        return;
    }
    ClockPage page{0, t.vt, cfg_.clock_step_ns, mono_ns(t) - t.vt, 1, 0, cfg_.tsc_hz, 1'000'000'000};
    p.inproc = write_mem(p, policy::kScratchBase, &page, sizeof page);
}

void Engine::disable_clock_page(Task& t) {
    Process& p = *t.proc;
    if (!p.inproc) return;
    fold(t);
    uint32_t off = 0;
    (void)write_mem(p, policy::kScratchBase + offsetof(ClockPage, enabled), &off, sizeof off);
    p.inproc = false;
}

void Engine::tick(Task& p) {
    if (!p.timers.empty()) {
        timespec now{};
        ::clock_gettime(CLOCK_REALTIME, &now);
        int64_t real = now.tv_sec * 1'000'000'000LL + now.tv_nsec;
        std::erase_if(p.timers, [&](const auto& t) {
            if (real < t.first) return false;
            p.vt = std::max(p.vt, t.second);
            return true;
        });
    }
    p.vt = std::max(p.vt, p.pending) + cfg_.clock_step_ns;
}

bool Engine::read_mem(Process& p, uint64_t addr, void* out, size_t n) {
    int fd = mem_fd(p);
    if (fd < 0) return false;
    ssize_t got = ::pread(fd, out, n, static_cast<off_t>(addr));
    return got == static_cast<ssize_t>(n);
}

bool Engine::write_mem(Process& p, uint64_t addr, const void* in, size_t n) {
    int fd = mem_fd(p);
    if (fd < 0) return false;
    ssize_t put = ::pwrite(fd, in, n, static_cast<off_t>(addr));
    return put == static_cast<ssize_t>(n);
}

std::string Engine::read_string(Process& p, uint64_t addr, size_t max, int& err) {
    std::string s;
    err = 0;
    if (addr == 0) {
        err = EFAULT;
        return s;
    }
    // Page by page: a string may end right before an unmapped page.
    while (s.size() < max) {
        size_t page_left = 4096 - (addr % 4096);
        size_t want = std::min(page_left, max - s.size());
        char buf[4096];
        ssize_t got = ::pread(mem_fd(p), buf, want, static_cast<off_t>(addr));
        if (got <= 0) {
            err = EFAULT;
            return s;
        }
        const char* nul = static_cast<const char*>(std::memchr(buf, 0, static_cast<size_t>(got)));
        if (nul) {
            s.append(buf, static_cast<size_t>(nul - buf));
            return s;
        }
        s.append(buf, static_cast<size_t>(got));
        addr += static_cast<uint64_t>(got);
    }
    err = ENAMETOOLONG;
    return s;
}

void Engine::note(const std::string& s) {
    if (summary_.notes.size() < 200) summary_.notes.push_back(s);
}

void Engine::deny_note(const std::string& what) { summary_.denied[what]++; }

void Engine::resolve_vpid(Task& t) {
    if (t.vtid) return;
    // Linux 6.9+ translates a pid into the build's pid namespace with an ioctl
    // on the namespace; /proc/PID/status (formatted in full for one line, ~20 µs
    // per new task) is the fallback.
    if (pidns_) {
        const int tid = ::ioctl(pidns_.get(), kNsGetPidInPidns, t.tid);
        const int tgid = tid > 0 ? ::ioctl(pidns_.get(), kNsGetTgidInPidns, t.tid) : -1;
        if (tid > 0 && tgid > 0) {
            t.vtid = tid;
            t.vtgid = tgid;
            return;
        }
        if (errno == ENOTTY || errno == EINVAL) pidns_.reset();  // an older kernel: don't ask again
    }
    char path[32];
    std::snprintf(path, sizeof path, "%d/status", t.tid);
    try {
        std::string st = read_file_at(hostproc_.get(), path, 1 << 16);
        auto last_field = [&](const char* key) -> pid_t {
            auto pos = st.find(key);
            if (pos == std::string::npos) return 0;
            auto end = st.find('\n', pos + 1);
            std::string line = st.substr(pos, end - pos);
            auto sp = line.find_last_of(" \t");
            return static_cast<pid_t>(std::atoi(line.c_str() + sp + 1));
        };
        t.vtid = last_field("\nNSpid:");
        t.vtgid = last_field("\nNStgid:");
    } catch (...) {
    }
}

Task* Engine::task_by_vpid(pid_t vtid) {
    for (auto& [tid, t] : tasks_) {
        resolve_vpid(*t);
        if (t->vtid == vtid) return t.get();
    }
    return nullptr;
}

// ---- event loop

int Engine::run() noexcept {
    try {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGCHLD);
        if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) throw_errno("sigprocmask");
        sigchld_.reset(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
        if (!sigchld_) throw_errno("signalfd");
        set_nonblocking(deviations_.get(), false);
        while (!stopping_) {
            pollfd p[5];
            int n = 0;
            p[n++] = {control_.get(), POLLIN, 0};
            p[n++] = {sigchld_.get(), POLLIN, 0};
            p[n++] = {listener_ ? listener_.get() : -1, POLLIN, 0};
            // The served files: init mounts them while the sandbox is prepared
            // (their contents wait for the job's configuration); until it has,
            // the device reads as not mounted, so look again every millisecond.
            const bool serve = fuse_ && !fuse_unmounted_;
            p[n++] = {serve ? fuse_.get() : -1, POLLIN, 0};
            p[n++] = {fanotify_ ? fanotify_.get() : -1, POLLIN, 0};
            int timeout = dev_buf_.empty() ? -1 : static_cast<int>(kDeviationFlushDelay.count());
            if (fuse_unmounted_) {
                timeout = timeout < 0 ? 1 : std::min(timeout, 1);
                fuse_unmounted_ = false;
            }
            const bool policy_pending = configured_ && !policy_ && !refused_;
            if (policy_pending) timeout = 0;
            int rc = ::poll(p, static_cast<nfds_t>(n), timeout);
            if (rc < 0) {
                if (errno == EINTR) continue;
                throw_errno("poll");
            }
            if (rc == 0 && policy_pending) {
                // Nothing to answer (init's FUSE requests came first): now the policy.
                (void)policy_ready();
                continue;
            }
            // Ptrace stops first: a re-issued call's interrupt stop, a new task's
            // first stop, an exec.
            if (p[4].revents) fanotify_ready_ = true;
            if (p[1].revents) on_sigchld();
            if (p[2].revents & POLLIN) on_notification();
            if (p[2].revents & (POLLHUP | POLLERR | POLLNVAL)) listener_.reset();  // every filter user is gone
            if (p[3].revents) on_fuse();
            if (p[0].revents) on_control();
            if (fanotify_ready_) drain_fanotify();  // keep the queue short when nobody traps
            flush_deviations(false);
        }
        return 0;
    } catch (const std::exception& e) {
        try {
            send_control(control_.get(), {{"error", std::string("supervisor failed: ") + e.what()}});
        } catch (...) {
        }
        return 1;
    }
}

void Engine::on_control() {
    std::optional<ControlMessage> m;
    try {
        m = receive_control(control_.get());
    } catch (...) {
    }
    if (!m) {  // the runner is gone: so is the build (EXITKILL does the rest)
        stopping_ = true;
        return;
    }
    const auto& b = m->body;
    try {
        if (b.contains("configure")) {
            try {
                configure(b["configure"].get<DeterminismConfig>());
            } catch (const std::exception& e) {
                refuse_configuration(e);
            }
        } else if (b.contains("prepare_policy")) {
            try {
                prepare_likely_policy(b["prepare_policy"]);
                send_control(control_.get(), {{"policy_prepared", true}});
            } catch (const std::exception& e) {
                send_control(control_.get(), {{"error", std::string("the likely policy: ") + e.what()}});
            }
        } else if (b.contains("learn_mounts")) {
            learn_mounts(b["learn_mounts"].get<pid_t>());
            send_control(control_.get(), {{"mounts_learned", true}});
        } else if (b.contains("open_fuse")) {
            UniqueFd fd = open_fuse_device(b["open_fuse"].get<pid_t>());
            int raw = fd.get();
            send_control(control_.get(), {{"fuse", true}}, std::span<const int>(&raw, 1));
        } else if (b.contains("start")) {
            if (m->fds.size() != 1) throw std::runtime_error("start without a listener");
            if (!b.value("tsc_traps", true))
                summary_.unvirtualizable.push_back(
                    "rdtsc/rdtscp: this CPU ignores PR_SET_TSC (the hypervisor does not enforce CR4.TSD): they read the real TSC");
            // If no idle moment came before the hand-off; a refusal is its answer, already queued.
            if (!policy_ready()) return;
            start(b["start"].get<pid_t>(), std::move(m->fds[0]));
            send_control(control_.get(), {{"started", true}});
        } else if (b.contains("stop")) {
            stopping_ = true;
            if (started_) drain_fanotify();
            flush_deviations(true);
            deviations_.reset();
            send_summary();
        }
    } catch (const std::exception& e) {
        send_control(control_.get(), {{"error", e.what()}});
    }
}

void Engine::send_summary() {
    nlohmann::json s;
    to_json(s, summary_);
    send_control(control_.get(), {{"summary", s}});
}

void Engine::start(pid_t pid, UniqueFd listener) {
    if (started_) throw std::runtime_error("already started");
    if (!configured_) throw std::runtime_error("started before it was configured");
    build_pid_ = pid;
    listener_ = std::move(listener);
    // Wake the supervisor on the CPU of the trapping task (Linux 6.6+).
    (void)::ioctl(listener_.get(), SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP);

    // The build's credentials and id maps (host view).
    char path[64];
    std::snprintf(path, sizeof path, "%d/status", pid);
    std::string st = read_file_at(hostproc_.get(), path, 1 << 16);
    auto field = [&](const char* key, int index) -> uint32_t {
        auto pos = st.find(key);
        if (pos == std::string::npos) throw std::runtime_error(std::string("no ") + key + " in status");
        const char* c = st.c_str() + pos + std::strlen(key);
        for (int i = 0; i <= index; ++i) {
            while (*c == ' ' || *c == '\t') ++c;
            if (i == index) return static_cast<uint32_t>(std::strtoul(c, nullptr, 10));
            while (*c && *c != ' ' && *c != '\t') ++c;
        }
        return 0;
    };
    build_uid_ = field("\nUid:", 1);  // effective
    build_gid_ = field("\nGid:", 1);
    for (auto [file, out] : {std::pair{"uid_map", &uid_map_}, std::pair{"gid_map", &gid_map_}}) {
        std::snprintf(path, sizeof path, "%d/%s", pid, file);
        std::string m = read_file_at(hostproc_.get(), path);
        size_t pos = 0;
        while (pos < m.size()) {
            auto end = m.find('\n', pos);
            if (end == std::string::npos) end = m.size();
            unsigned a, b, c;
            if (std::sscanf(m.c_str() + pos, "%u %u %u", &a, &b, &c) == 3) out->push_back({a, b, c});
            pos = end + 1;
        }
    }
    {
        // Lookups made for the build use its supplementary groups.
        std::vector<gid_t> groups;
        auto pos = st.find("\nGroups:");
        if (pos != std::string::npos) {
            const char* c = st.c_str() + pos + 8;
            while (*c && *c != '\n') {
                char* end;
                unsigned long g = std::strtoul(c, &end, 10);
                if (end == c) break;
                groups.push_back(static_cast<gid_t>(g));
                c = end;
                while (*c == ' ' || *c == '\t') ++c;
            }
        }
        if (::syscall(SYS_setgroups, groups.size(), groups.data()) != 0) throw_errno("setgroups (build's groups)");
    }
    setup_fanotify(pid);
    std::snprintf(path, sizeof path, "%d/ns/pid", pid);
    pidns_.reset(::openat(hostproc_.get(), path, O_RDONLY | O_CLOEXEC));  // optional (resolve_vpid)

    // Absolute paths the build hands us resolve in its root: ours from now on.
    std::snprintf(path, sizeof path, "%d/root", pid);
    UniqueFd root(::openat(hostproc_.get(), path, O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root) throw_errno("open the build's root");
    if (::fchdir(root.get()) != 0 || ::chroot(".") != 0 || ::chdir("/") != 0) throw_errno("chroot into the build's root");
    // From now on files are the build's to see: its fsuid/fsgid (no DAC override).
    set_fsgid(build_gid_);
    set_fsuid(build_uid_);
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    if (::syscall(SYS_capget, &hdr, data) != 0) throw_errno("capget");
    permitted_caps_[0] = data[0].permitted;
    permitted_caps_[1] = data[1].permitted;
    lookup_caps_[0] = data[0].effective;
    lookup_caps_[1] = data[1].effective;
    lookup_caps_[CAP_SYS_PTRACE / 32] &= ~(uint64_t{1} << (CAP_SYS_PTRACE % 32));
    set_ptrace_cap(false);

    if (cfg_.in_process_stat && !cfg_.trace) {
        try {
            fast_stat_ = std::make_unique<FastStat>(cfg_.epoch);
        } catch (const std::exception& e) {
            note(std::string("in-process stat unavailable (every stat traps): ") + e.what());
        }
    }
    check_host_sources();
    {
        WithPtrace cap(*this);
        attach(pid);
    }
    started_ = true;
}

// setfsuid/setfsgid report no error (they return the previous id): whether the
// switch took is seen by asking again (an invalid id changes nothing and
// returns the current one). A supervisor left with the wrong filesystem
// identity would look files up with privileges the build does not have.
void set_fsuid(uint32_t uid) {
    (void)::syscall(SYS_setfsuid, uid);
    if (static_cast<uint32_t>(::syscall(SYS_setfsuid, static_cast<uint32_t>(-1))) != uid)
        throw SysError("setfsuid(" + std::to_string(uid) + ")", EPERM);
}
void set_fsgid(uint32_t gid) {
    (void)::syscall(SYS_setfsgid, gid);
    if (static_cast<uint32_t>(::syscall(SYS_setfsgid, static_cast<uint32_t>(-1))) != gid)
        throw SysError("setfsgid(" + std::to_string(gid) + ")", EPERM);
}

void Engine::check_host_sources() {
    unsigned a, b, c, d;
    bool rdrand = false, rdseed = false, rdpid = false;
    if (__get_cpuid(1, &a, &b, &c, &d)) rdrand = c & (1u << 30);
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        rdseed = b & (1u << 18);
        rdpid = c & (1u << 22);
    }
    // CPUID faulting (ARCH_GET_CPUID works everywhere; only SET reveals support,
    // and the build process itself tried it in prepare_build_process()).
    const char* why = "no CPUID faulting on this host, so its CPUID bit stays visible";
    if (rdrand) summary_.unvirtualizable.push_back(std::string("rdrand: executes natively (") + why + ")");
    if (rdseed) summary_.unvirtualizable.push_back(std::string("rdseed: executes natively (") + why + ")");
    if (rdpid) summary_.unvirtualizable.push_back("rdpid: returns the real CPU number (cannot be trapped)");
    summary_.unvirtualizable.push_back("cpuid: the host CPU's identity and features are visible (no CPUID faulting)");
}

void Engine::on_notification() {
    std::memset(req_, 0, sizeof(seccomp_notif));
    if (seccomp_notify_receive(listener_.get(), req_) != 0) return;  // the caller died meanwhile
    auto t0 = Clock::now();
    const seccomp_notif& n = *req_;
    Task* t = task(static_cast<pid_t>(n.pid));
    Reply r;
    if (!t) {
        // Every build task is known before it runs (ptrace): this is a bug.
        r.kind = Reply::Error;
        r.error = ENOSYS;
        deny_note("unknown task " + std::to_string(n.pid));
        respond(n, r, nullptr);
        return;
    }
    if (!t->proc->sites_todo.empty()) patch_known_sites(*t->proc);
    const bool i386 = n.data.arch == AUDIT_ARCH_I386;
    if (!i386 && n.data.arch != AUDIT_ARCH_X86_64) {
        // The filters kill every other architecture before it could get here.
        r.kind = Reply::Error;
        r.error = ENOSYS;
        deny_note("arch " + std::to_string(n.data.arch) + " " + std::to_string(n.data.nr));
        respond(n, r, t);
        return;
    }
    // The policy decides: the filters send virtualized and logged calls, and
    // (routed) the denials of named rules; conditional rules are applied here.
    const policy::Arch arch = i386 ? policy::Arch::I386 : policy::Arch::X86_64;
    const uint64_t args[6] = {n.data.args[0], n.data.args[1], n.data.args[2],
                              n.data.args[3], n.data.args[4], n.data.args[5]};
    const std::string& name = name_of(n.data.nr, i386);
    const PolicyAnswer a = answer_for(policy_->decide(arch, n.data.nr, args).action, arch, name);
    if (a.kind != PolicyAnswer::Emulate) {
        if (n.data.nr == SYS_rseq && !i386 && a.kind == PolicyAnswer::Deny && !a.failed_closed)
            learn_rseq_site(*t->proc, n.data.instruction_pointer, a.error);
        answer_by_policy(*t, n, a, name);
        summary_.traps++;
        summary_.trap_ns_total +=
            static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
        return;
    }
    // The caller's own file events were queued before its call: take them
    // before its clock moves (they are stamped with the clock as it was). Not
    // only when poll saw them: poll may have returned for another notification
    // before they were queued. One non-blocking read when there are none.
    drain_fanotify();
    const int nr = n.data.nr;
    const bool timey = nr == SYS_sysinfo || std::strcmp(class_of(nr), "time") == 0;
    if (timey) fold(*t);
    // Stat calls don't move the clock: most are answered in the process
    // (fast_stat.hpp), and whether one was must not change what time it is.
    const bool stat_family = nr == SYS_stat || nr == SYS_fstat || nr == SYS_lstat || nr == SYS_newfstatat || nr == SYS_statx;
    const bool exec = nr == SYS_execve || nr == SYS_execveat;  // bookkeeping only (before_exec)
    if (!stat_family && !exec) tick(*t);
    try {
        r = handle(*t, n);
        if (timey) publish(*t);
    } catch (const std::exception& e) {
        // An internal error fails the call closed.
        r = Reply{};
        r.kind = Reply::Error;
        r.error = ENOSYS;
        deny_note(name + ": internal error: " + e.what());
    }
    if (!r.quiet) record(*t, n, r, nullptr);
    // The supervisor's own work per call (the answer wakes the caller, which may
    // then run on this CPU first: that is not ours to count).
    summary_.traps++;
    summary_.trap_ns_total += static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
    respond(n, r, t);
}

// A call the policy logs, denies, or that the engine can't emulate: no logical
// time passes (only virtualized calls advance the caller's clock).
void Engine::answer_by_policy(Task& t, const seccomp_notif& n, const PolicyAnswer& a, const std::string& name) {
    Reply r;
    r.cls = a.cls;
    switch (a.kind) {
        case PolicyAnswer::Emulate:  // not here
        case PolicyAnswer::Continue:
            // CONTINUE is safe: no decision here depends on the caller's memory.
            r.kind = Reply::Continue;
            r.quiet = true;
            break;
        case PolicyAnswer::Log:
            r.kind = Reply::Continue;
            r.logged = true;
            break;
        case PolicyAnswer::Deny:
            r.kind = Reply::Error;
            r.error = a.error;
            r.denied = !a.failed_closed;
            if (a.failed_closed)
                deny_note((n.data.arch == AUDIT_ARCH_I386 ? "i386 " : "") + name +
                          ": the policy's verdict can't be carried out by the supervisor");
            break;
    }
    if (!r.quiet) record(t, n, r, nullptr);
    respond(n, r, &t);
}

void Engine::respond(const seccomp_notif& n, const Reply& r, Task* t) {
    std::memset(resp_, 0, sizeof(seccomp_notif_resp));
    resp_->id = n.id;
    switch (r.kind) {
        case Reply::Value: resp_->val = r.val; break;
        case Reply::Error: resp_->error = -r.error; break;
        case Reply::Continue: resp_->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE; break;
        case Reply::Deferred: return;
        case Reply::Reissue: {
            // The call comes back through the kernel's restart path: stop the thread
            // on its way out (PTRACE_INTERRUPT), fail the call with ERESTARTNOINTR,
            // and rewrite its registers at the stop (finish_reissue).
            determinism::Reissue re = r.reissue;
            if (!t || !place_in_slot(*t, r.slot_data, re) || ::ptrace(PTRACE_INTERRUPT, t->tid, 0, 0) != 0) {
                resp_->error = -ENOSYS;
                deny_note(name_of(n.data.nr) + ": could not re-issue the call");
                break;
            }
            t->reissue = re;
            resp_->error = -kErestartNoIntr;
            break;
        }
    }
    if (seccomp_notify_respond(listener_.get(), resp_) != 0 && t) t->reissue.reset();
}

bool Engine::place_in_slot(Task& t, const std::vector<uint8_t>& data, determinism::Reissue& re) {
    if (re.slot_arg < 0) return true;
    Process& p = *t.proc;
    if (!p.scratch || data.size() > kSlotSize) return false;
    if (t.slot < 0) {
        if (p.slots.empty()) p.slots.assign((policy::kScratchSize - kClockPageBytes) / kSlotSize, 0);
        auto it = std::find(p.slots.begin(), p.slots.end(), 0);
        if (it == p.slots.end()) return false;
        *it = t.tid;
        t.slot = static_cast<int>(it - p.slots.begin());
    }
    uint64_t addr = policy::kScratchBase + kClockPageBytes + static_cast<uint64_t>(t.slot) * kSlotSize;
    if (!write_mem(p, addr, data.data(), data.size())) return false;
    re.args[static_cast<size_t>(re.slot_arg)] = addr;
    return true;
}

Reply Engine::handle(Task& t, const seccomp_notif& n) {
    switch (n.data.nr) {
        case SYS_clock_gettime: case SYS_clock_getres: case SYS_gettimeofday: case SYS_time: case SYS_times:
        case SYS_getrusage:
            return time_call(t, n);
        case SYS_nanosleep: case SYS_clock_nanosleep: case SYS_futex: case SYS_futex_waitv: case SYS_timerfd_settime:
        case SYS_timer_settime: case SYS_mq_timedsend: case SYS_mq_timedreceive: case SYS_poll: case SYS_epoll_wait:
        case SYS_epoll_pwait: case SYS_epoll_pwait2: case SYS_ppoll: case SYS_pselect6: case SYS_select:
        case SYS_rt_sigtimedwait: case SYS_semtimedop: case SYS_io_getevents: case SYS_recvmmsg:
            return wait_call(t, n);
        case SYS_getrandom: return random_call(t, n);
        case SYS_uname: case SYS_sysinfo: case SYS_getcpu: case SYS_sched_getaffinity: case SYS_sched_setaffinity:
            return identity_call(t, n);
        case SYS_getdents: case SYS_getdents64: return dents_call(t, n);
        case SYS_stat: case SYS_fstat: case SYS_lstat: case SYS_newfstatat: case SYS_statx: {
            if (is_fast_stat_hello(n.data.nr, n.data.args)) return fast_stat_hello(t, n);
            Reply r = stat_call(t, n);
            patch_stat_site(t, n);
            return r;
        }
        case SYS_utimensat: case SYS_utimes: case SYS_utime: case SYS_futimesat: return utime_call(t, n);
        case SYS_execve: case SYS_execveat: return before_exec(t);
        default: {
            // The policy says virtualize, but nothing here emulates this call:
            // fail it closed (the real call must not run).
            Reply r;
            r.kind = Reply::Error;
            r.error = ENOSYS;
            r.cls = "policy";
            deny_note(name_of(n.data.nr) + ": virtualized by the policy, but the engine has no emulation for it");
            return r;
        }
    }
}

// ---- deviations

void Engine::record(Task& t, const seccomp_notif& n, const Reply& r, const char* cls) {
    const std::string& name = name_of(n.data.nr, n.data.arch == AUDIT_ARCH_I386);
    const char* c = cls ? cls : (!r.cls.empty() ? r.cls.c_str() : class_of(n.data.nr));
    summary_.by_syscall[name]++;
    summary_.by_class[c]++;
    if (!cfg_.record_deviations) return;
    Deviation d = deviation_by(t);
    d.syscall_nr = n.data.nr;
    d.syscall = name;
    d.args = args_text(n);
    bool failed_closed = r.kind == Reply::Error && r.error == ENOSYS;
    d.action = r.logged                    ? DeviationAction::Logged
               : r.denied || failed_closed ? DeviationAction::Denied
                                           : DeviationAction::Virtualized;
    d.cls = c;
    if (r.kind == Reply::Error) d.value = "-" + policy::errno_name(r.error);
    else if (r.logged) d.value = "allowed";
    else if (r.kind == Reply::Continue) d.value = r.value.empty() ? "continue" : r.value + "; continue";
    else if (r.kind == Reply::Reissue) d.value = r.value + "; re-issued";
    else d.value = r.value.empty() ? std::to_string(r.val) : r.value;
    if (d.value.size() > 256) d.value.resize(256);
    if (cfg_.trace && !r.real.empty()) d.real_value = r.real.substr(0, 256);
    if (dev_buf_.empty()) dev_first_ = Clock::now();
    encode_deviation(d, dev_buf_);
}

// A read of a served file (served.cpp): answered by the FUSE server, not a
// trap, but a deviation all the same: syscall "read", the file as its
// argument. The reader may be unknown (a task the tracer has not seen yet):
// then only its pid is known.
void Engine::record_served_read(Task* reader, pid_t vpid, const std::string& file, const char* cls, std::string value) {
    summary_.by_syscall["read " + file]++;
    summary_.by_class[cls]++;
    if (!cfg_.record_deviations) return;
    Deviation d = reader ? deviation_by(*reader) : Deviation{};
    if (!reader) {
        d.virtual_pid = vpid;
        d.exe = "?";
    }
    d.syscall_nr = SYS_read;
    d.syscall = "read";
    d.args = file;
    d.cls = cls;
    d.value = std::move(value);
    if (dev_buf_.empty()) dev_first_ = Clock::now();
    encode_deviation(d, dev_buf_);
}

void Engine::record_insn(Task& t, const char* what, const std::string& value) {
    summary_.by_syscall[what]++;
    record_batch(t, what, "", "time", value, 1);
}

void Engine::flush_deviations(bool force) {
    if (dev_buf_.empty() || !deviations_) return;
    if (!force && dev_buf_.size() < kDeviationFlushBytes && Clock::now() - dev_first_ < kDeviationFlushDelay) return;
    try {
        write_all(deviations_.get(), dev_buf_);
    } catch (...) {
        deviations_.reset();  // the runner stopped reading; keep counting
    }
    dev_buf_.clear();
}

}  // namespace hermetic::sandbox::determinism
