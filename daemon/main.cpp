// hermeticd: the privileged daemon. See docs/architecture.md.
#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <thread>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "common/io.hpp"
#include "common/sys_error.hpp"
#include "daemon/collector.hpp"
#include "daemon/config.hpp"
#include "daemon/job_manager.hpp"
#include "daemon/journal.hpp"
#include "daemon/peer.hpp"
#include "daemon/policy_requests.hpp"
#include "daemon/signing_key.hpp"
#include "daemon/runner_process.hpp"
#include "daemon/sandbox_pool.hpp"
#include "daemon/server.hpp"
#include "daemon/state_dir.hpp"
#include "runner/runner_server.hpp"
#include "sandbox/netns_pool.hpp"
#include "syscall-policy/policy.hpp"

using namespace hermetic;
using namespace hermetic::daemon;

namespace {

void setup_logging(const DaemonConfig& config, bool to_file) {
    std::shared_ptr<spdlog::logger> logger;
    if (to_file) {
        logger = spdlog::basic_logger_mt("hermeticd", config.state_dir + "/hermeticd.log");
    } else {
        logger = spdlog::stderr_logger_mt("hermeticd");
        // journald adds its own timestamps
        logger->set_pattern(std::getenv("JOURNAL_STREAM") ? "%l: %v" : "%Y-%m-%d %H:%M:%S.%e %l: %v");
    }
    logger->set_level(spdlog::level::from_str(config.log_level));
    logger->flush_on(spdlog::level::info);
    spdlog::set_default_logger(logger);
}

// Detaches from the terminal; the parent exits once the child is serving (or
// prints the child's error), so "hermeticd && hermeticctl run ..." just works.
int daemonize(UniqueFd& ready_write) {
    FdPair p = make_pipe();
    pid_t pid = ::fork();
    if (pid < 0) throw_errno("fork");
    if (pid > 0) {
        p.write.reset();
        std::string msg = read_to_end(p.read.get(), 4096);
        if (msg == "ok") return 0;
        std::cerr << "hermeticd: " << (msg.empty() ? "failed to start" : msg) << "\n";
        return 1;
    }
    p.read.reset();
    if (::setsid() < 0) throw_errno("setsid");
    UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
    ::dup2(null.get(), 0);
    ::dup2(null.get(), 1);
    ::dup2(null.get(), 2);
    ready_write = std::move(p.write);
    return -1;
}

// SIGHUP: re-reads the configuration as at start (the file, then the command line
// on top) and applies what can change under running jobs (config.hpp).
void reload(int argc, char** argv, DaemonConfig& in_force, JobManager& jobs, Collector& collector,
            std::atomic<uint32_t>& grace) {
    DaemonConfig fresh;
    try {
        ParsedArgs a = parse_command_line(argc, argv);
        if (a.print_and_exit) return;
        fresh = std::move(a.config);
    } catch (const std::exception& e) {
        spdlog::error("SIGHUP: configuration not reloaded, the running one stays: {}", e.what());
        return;
    }
    ReloadPlan plan = plan_reload(in_force, fresh);
    for (const auto& c : plan.ignored)
        spdlog::warn("SIGHUP: {}: this option can't change while hermeticd runs; ignored until a restart", c);
    apply_reloadable(in_force, fresh);
    spdlog::default_logger()->set_level(spdlog::level::from_str(in_force.log_level));
    jobs.set_limits(JobManager::Limits::from(in_force));
    collector.set_interval(std::chrono::seconds(in_force.gc_interval_sec));
    grace = in_force.shutdown_grace_sec;
    std::string applied;
    for (const auto& c : plan.applied) applied += (applied.empty() ? "" : ", ") + c;
    spdlog::info("SIGHUP: configuration reloaded from {}: {}", in_force.config_file,
                 applied.empty() ? "no change" : applied);
}

}  // namespace

int main(int argc, char** argv) {
    ParsedArgs args;
    try {
        args = parse_command_line(argc, argv);
    } catch (const ConfigError& e) {
        std::cerr << "hermeticd: " << e.what() << "\n";
        return 2;
    }
    if (args.print_and_exit) {
        std::cout << *args.print_and_exit;
        return 0;
    }
    DaemonConfig& config = args.config;
    if (config.check_config) {
        try {
            auto policies = make_policy_store(config.policy_dir, "build", policy::CompileOptions{});
            for (const auto& name : policies->list()) (void)policies->get(name);
            (void)policies->floor();
        } catch (const std::exception& e) {
            std::cerr << "hermeticd: policy: " << e.what() << "\n";
            return 1;
        }
        std::cout << "configuration OK\n";
        return 0;
    }
    if (::geteuid() != 0) {
        std::cerr << "hermeticd: must run as root (it creates namespaces, cgroups and id maps)\n";
        return 1;
    }

    UniqueFd ready;
    bool under_systemd = std::getenv("NOTIFY_SOCKET") != nullptr || std::getenv("LISTEN_FDS") != nullptr;
    try {
        if (!config.foreground && !under_systemd) {
            int rc = daemonize(ready);
            if (rc >= 0) return rc;
        }
        prepare_state_dir(config.state_dir);
        setup_logging(config, ready.valid());
    } catch (const std::exception& e) {
        if (ready) write_all(ready.get(), e.what());
        else std::cerr << "hermeticd: " << e.what() << "\n";
        return 1;
    }

    // Signals are taken synchronously by one thread; every thread inherits the mask.
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, s);
    ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    try {
        Journal journal(config.state_dir + "/journal.db");
        gid_t group = lookup_group(config.group);
        auto policies = make_policy_store(config.policy_dir, "build", policy::CompileOptions{});
        (void)policies->floor();  // a broken admin floor stops the daemon here, not a job later
        SigningKeys keys(config.state_dir);
        RootfsIdentityCache rootfs;
        config.sandbox.cgroup.version = sandbox::detect_cgroup_version(config.sandbox.cgroup);
        const std::string runner = find_runner_binary();
        // Leftovers of a crashed daemon go before any new sandbox is prepared.
        recover_after_crash(config, journal);
        sandbox::NetnsPool netns(config.netns_pool);
        IdSlots ids(config.id_base, config.id_count);
        // The floor is read again for each sandbox: an admin's edit reaches the next one.
        SandboxPool sandboxes(config, ids, netns, runner, [&policies] { return policies->floor(); });
        JobManager jobs(config, journal, sandboxes, *policies, JobManager::Evidence{&keys, &rootfs});
        Collector collector(jobs, std::chrono::seconds(config.gc_interval_sec));
        std::atomic<uint32_t> grace{config.shutdown_grace_sec};
        bool from_systemd = false;
        UniqueFd listener = open_listening_socket(config, group, &from_systemd);
        // bb_worker's runner (docs/buildbarn.md): the same jobs, through gRPC.
        std::unique_ptr<runner::RunnerServer> bb_runner;
        if (config.runner_socket)
            bb_runner = std::make_unique<runner::RunnerServer>(jobs, *config.runner_socket, config.runner_build_dir, group);

        UniqueFd stop(::eventfd(0, EFD_CLOEXEC));
        if (!stop) throw_errno("eventfd");
        UniqueFd sigfd(::signalfd(-1, &set, SFD_CLOEXEC));
        if (!sigfd) throw_errno("signalfd");
        // SIGHUP reloads; the first SIGTERM/SIGINT starts the shutdown (running jobs
        // get shutdown-grace seconds), a second one interrupts them at once.
        std::atomic<bool> stopping{false}, finished{false};
        DaemonConfig in_force = config;
        std::thread signals([&] {
            signalfd_siginfo si;
            while (::read(sigfd.get(), &si, sizeof si) == sizeof si) {
                if (finished) return;
                if (si.ssi_signo == SIGHUP) {
                    if (stopping) spdlog::info("SIGHUP during shutdown: ignored");
                    else reload(argc, argv, in_force, jobs, collector, grace);
                    continue;
                }
                if (stopping.exchange(true)) {
                    spdlog::warn("signal {} again: interrupting running jobs now", si.ssi_signo);
                    jobs.interrupt_now();
                    continue;
                }
                spdlog::info("signal {}: shutting down; running jobs get {} s to finish", si.ssi_signo, grace.load());
                uint64_t one = 1;
                (void)!::write(stop.get(), &one, sizeof one);
            }
        });

        SessionContext session{&config, &jobs, group, policies.get(),
                               EvidenceContext{config.state_dir, &keys, journal_owner_lookup(journal)}};
        Server server(std::move(listener), session);
        spdlog::info("hermeticd {} listening on {} (state {})", HERMETIC_VERSION,
                     from_systemd ? "the socket from systemd" : config.socket_path, config.state_dir);
        sd_notify(0, "READY=1");
        if (ready) {
            write_all(ready.get(), "ok");
            ready.reset();
        }
        server.serve(stop.get());
        sd_notify(0, "STOPPING=1");
        // Stop accepting: new clients find no daemon (under socket activation,
        // systemd holds their connections for the next start).
        server.stop_listening();
        if (!from_systemd) ::unlink(config.socket_path.c_str());
        jobs.shutdown(std::chrono::seconds(grace.load()));
        if (bb_runner) bb_runner->shutdown(std::chrono::seconds(5));  // its calls ended with their jobs
        server.drain(std::chrono::seconds(5));
        finished = true;
        ::kill(::getpid(), SIGTERM);  // wakes the signal thread
        signals.join();
        spdlog::info("stopped");
    } catch (const std::exception& e) {
        spdlog::critical("{}", e.what());
        if (ready) write_all(ready.get(), e.what());
        return 1;
    }
    return 0;
}
