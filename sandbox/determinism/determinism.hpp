// The determinism engine: what a job runner needs to make a build's view of
// time, randomness, host identity, CPU count, directory order and file
// metadata a function of (inputs, --seed, --epoch, --cpus) only.
//
// How it works. A supervisor process (forked from the runner by Supervisor; root,
// host namespaces, single-threaded event loop) serves
//   * the build's seccomp user notifications (the Virtualize rules of
//     syscall-policy/determinism_rules.cpp), emulating each call and answering
//     with the result (never CONTINUE after reading the build's memory);
//   * ptrace (it attaches to the first build process before its execve and
//     follows every fork/clone): at each exec it patches the vDSO's clock,
//     getcpu and getrandom entry points into syscalls, writes the 16 AT_RANDOM
//     bytes and maps a read-only scratch page; it emulates rdtsc/rdtscp (the
//     build runs with PR_SET_TSC = SIGSEGV); it re-issues timed waits with
//     translated timeouts;
//   * fanotify on the build's writable file systems: the order of file changes
//     becomes logical file times;
//   * a FUSE file system init mounts over /dev/{u,}random, /proc/{cpuinfo,...},
//     /proc/sys/kernel/... .
//
// Call sequence (exactly; README.md says where in job_runner/sandbox_init/
// build_exec; mini_sandbox.cpp is a complete, tested example, "hook 1..5"):
//
//   runner, while it prepares the sandbox (init exists, no job yet):
//     Supervisor sup;                               // forks the supervisor
//     UniqueFd fuse = sup.open_served_files(init_pid);  // pass to init (it answers already)
//   runner, per job, before sending the job to init:
//     sup.configure(config, sink);                  // the job's seed, epoch, policy...
//     SocketPair handoff = make_socketpair();       // .b to init (for the build), .a kept
//   init (root in the sandbox's user+mount namespaces), any time before forking the build:
//     mount_served_files(fuse.get());               // then close it
//   build process (pid 2), after its uid drop and no_new_privs, in this order:
//     prepare_build_process();                      // before the filters
//     install_filters_and_hand_off(handoff_b, compiled);  // blocks until attached
//     execve(...)
//   runner, when handoff.a becomes readable (poll it with init's status socket):
//     sup.start_from_handoff(handoff.a.get());
//   runner, after every build process is gone (init has reaped them all):
//     Summary s = sup.stop();
//
// Clocks are per thread (what a thread reads depends on its own history, not on
// how its siblings were scheduled); a new thread or process starts from its
// creator's clock. The runner must not call waitpid(-1, ...) while a Supervisor
// exists (it never does: it waits on pids and pidfds); tracees are the
// supervisor's, not the runner's.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <thread>

#include "common/unique_fd.hpp"
#include "sandbox/determinism/config.hpp"
#include "sandbox/deviation.hpp"
#include "syscall-policy/policy.hpp"

namespace hermetic::sandbox::determinism {

// `base` (normally the baseline) with the determinism rules appended: later
// unconditional rules win, so the virtualized syscalls become Virtualize, and
// the i386 entry is closed.
policy::Policy with_determinism(policy::Policy base);

// ---- In the build process ------------------------------------------------

// Before seccomp: rdtsc/rdtscp fault (SIGSEGV) so the supervisor can emulate
// them (and checks that this CPU really enforces it). Throws SysError.
void prepare_build_process();

// After prepare_build_process(), instead of install_filters(): installs the
// policy's filters and sends the listener and this process's credentials on
// `sock` (a Unix stream socket whose other end the runner holds), then blocks
// until the supervisor has attached; the listener is closed here. The sending
// is done by a helper thread created before the filters (they apply to the
// installing thread only), so no call of the hand-off depends on the policy: a
// policy may log, deny or route to the supervisor any syscall (trace logs
// sendmsg; strict denies it), and none could be answered before the supervisor
// has the listener. Throws SysError (install) or std::runtime_error (hand-off).
void install_filters_and_hand_off(int sock, const policy::CompiledPolicy& policy);

// ---- In the sandbox's init ------------------------------------------------

// Mounts the served files over their targets (those that exist): /dev/urandom,
// /dev/random, /proc/{cpuinfo,meminfo,version,cmdline,uptime,loadavg,stat},
// /proc/sys/kernel/{osrelease,version}, /proc/sys/kernel/random/{uuid,boot_id}.
// `root` is the sandbox's root as seen now ("/" after
// pivot_root, "." before it with the new root as cwd); `staging` an existing
// directory under it that may be covered for a moment (its contents are hidden
// only while this runs). Needs CAP_SYS_ADMIN in the sandbox's user namespace.
void mount_served_files(int fuse_fd, const std::string& root = "/", const std::string& staging = "tmp");
// Takes them off again (a job without a supervisor in a sandbox prepared with one).
void unmount_served_files(const std::string& root = "/");

// ---- In the runner ----------------------------------------------------------

struct Handoff {
    pid_t pid = -1;      // the build process, in the caller's pid namespace
    UniqueFd listener;
    bool tsc_trapped = false;  // rdtsc faults under PR_SET_TSC on this CPU (tested by the build process)
};
// Receives what install_filters_and_hand_off sent (sets SO_PASSCRED on `sock` first).
Handoff receive_handoff(int sock);
// Lets the build process continue to its execve.
void release_build(int sock);

class Supervisor {
public:
    // Forks the supervisor process, which waits for configure(). The sandbox
    // pool forks it (and opens the served files) while it prepares a sandbox,
    // so a job's start pays only for configure(): ~15 ms off every job here.
    Supervisor();
    // Supervisor() + configure(config, sink).
    Supervisor(const DeterminismConfig& config, DeviationSink& sink);
    ~Supervisor();  // stop() if not done; kills the supervisor
    Supervisor(const Supervisor&) = delete;
    Supervisor& operator=(const Supervisor&) = delete;

    // The job's configuration; once only, before start(). `sink` gets every
    // deviation (from a thread of this process) until stop() returns; it must
    // outlive the Supervisor. config.policy is required (the build's effective
    // policy: it decides every notification); throws std::invalid_argument
    // without it. It does not wait: a policy the supervisor can't decide with
    // fails start() with the reason (policy::PolicyError's message).
    void configure(const DeterminismConfig& config, DeviationSink& sink);

    // Ahead of any job (the sandbox pool): the policy most jobs will run under,
    // parsed, checked and prepared now; a configuration with policy_prepared
    // (and its digest) then uses it instead of carrying its own. Waits for the
    // supervisor's answer; throws with its reason.
    void prepare_policy(const policy::Policy& policy);

    // A /dev/fuse descriptor opened in init's user namespace and already served:
    // hand it to init for mount_served_files(). Call before init mounts.
    UniqueFd open_served_files(pid_t init_pid);

    // The sandbox's mounts, read from init while it waits for a job (its
    // mount table is complete once the served files are mounted): the
    // supervisor's start() then only checks they did not change.
    void learn_mounts(pid_t init_pid);

    // Attaches to the build process (ptrace), marks the build's file systems and
    // starts answering notifications. Returns when the build may continue.
    // `tsc_traps`: whether rdtsc faults here (Handoff::tsc_trapped); if not, the
    // summary lists rdtsc/rdtscp as unvirtualizable.
    void start(pid_t build_pid, UniqueFd listener, bool tsc_traps = true);
    // receive_handoff + start + release_build.
    void start_from_handoff(int sock);

    // Ends the supervisor once every build process is gone (any left are killed)
    // and returns its summary. Idempotent.
    Summary stop();

    [[nodiscard]] pid_t pid() const { return pid_; }

private:
    struct Reader;
    pid_t pid_ = -1;
    UniqueFd control_;
    UniqueFd deviations_;  // the supervisor's records, until configure() starts the reader
    bool configured_ = false;
    bool policy_prepared_ = false;
    std::unique_ptr<Reader> reader_;
    bool stopped_ = false;
    Summary summary_;
};

}  // namespace hermetic::sandbox::determinism
