// The supervisor process's state and event loop (internal to sandbox/determinism).
//
// One single-threaded process does everything, so no state needs a lock and the
// order in which it sees events is the order the kernel produced them:
//   * seccomp user notifications (the listener the build installed),
//   * ptrace stops of every build task (exec, fork/clone, rdtsc faults, the
//     interrupt stops of re-issued calls), through signalfd(SIGCHLD),
//   * fanotify events of the build's writable file systems (file times),
//   * FUSE requests for the served files (/dev/urandom, /proc/cpuinfo, ...),
//   * the runner's control socket.
#pragma once

#include <elf.h>
#include <linux/seccomp.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/unique_fd.hpp"
#include "sandbox/determinism/config.hpp"
#include "sandbox/determinism/fast_stat.hpp"
#include "sandbox/determinism/prng.hpp"
#include "sandbox/determinism/vdso.hpp"
#include "sandbox/deviation.hpp"

namespace hermetic::sandbox::determinism {

inline constexpr size_t kSlotSize = 32;  // one itimerspec

// vt + n steps, where n is a count the build kept in its own memory (the
// clock page): saturating far below overflow whatever a hostile build wrote,
// and never below vt (which a file time in the far future may have put past
// the cap).
inline int64_t advanced(int64_t vt, uint64_t n, int64_t step) {
    const __int128 cap = std::max<__int128>(vt, INT64_MAX / 2);
    const __int128 r = static_cast<__int128>(vt) + static_cast<__int128>(n) * step;
    return static_cast<int64_t>(r > cap ? cap : r);
}

// How much a counter the build keeps in its scratch page grew since `seen`
// (one that went back, written by the build, starts over); `seen` catches up.
inline uint64_t grown_since(uint64_t now, uint64_t& seen) {
    const uint64_t d = now >= seen ? now - seen : now;
    seen = now;
    return d;
}

// A directory listing taken once and served sorted (getdents).
struct DirSnapshot {
    dev_t dev = 0;
    ino_t ino = 0;
    struct Entry {
        std::string name;
        uint64_t vino;
        unsigned char type;
    };
    std::shared_ptr<const std::vector<Entry>> entries;
    size_t index = 0;     // next entry to return
    int64_t last_pos = -1;  // the file position we left (to notice seeks)
};

struct MountPoint {  // a line of mountinfo, what the engine uses of it
    uint64_t dev;
    std::string point, fstype, opts;
};

struct Process {
    pid_t tgid = 0;
    std::string id;         // identity of the task that created it (files it creates carry it)
    int64_t start_vt = 0;   // the creating task's clock when the process began
    uint32_t execs = 0;
    std::string exe;
    // /proc/PID/mem of the current image: opened at exec, and at the first use
    // in a forked child (most children exec before anything reads them, and the
    // open's /proc lookup was 6% of the supervisor's work per process).
    UniqueFd mem;
    bool mem_looked = false;  // the open was tried for the current image
    UniqueFd pidfd;
    bool scratch = false;   // the scratch region is mapped (set at exec)
    bool inproc = false;    // its clock page is enabled: clock reads are served in-process
    bool shared_mm = false; // a vfork/CLONE_VM child before its exec (shares the parent's page)
    bool multithreaded = false;
    int fast_stat = 0;      // the in-process stat region: 0 not looked at yet, 1 mapped, -1 not
    // Known stat sites (Engine::known_sites_) not yet patched here, and the
    // traps at which some of them were not mapped yet.
    std::vector<std::pair<uint64_t, StatSiteCode>> sites_todo;
    int site_tries = 0;
    // The in-process stat counts (fast_stat_abi.h) already recorded.
    uint64_t stat_counts_seen[2] = {0, 0};
    // The dynamic loader (AT_BASE) and the end of its text; whether rdtsc
    // sites of it were patched here, and their count already recorded.
    uint64_t interp_base = 0, interp_text_end = 0;
    bool rdtsc_patched = false;
    uint64_t rdtsc_seen = 0;
    // The same for its rseq site (denied in the process, counted at kRseqCountOffset).
    bool rseq_patched = false;
    // Its stat sites sent to the in-process table (counted with the others).
    bool loader_stat_patched = false;
    // Whether the in-process stat counters are in use: the table's code is
    // mapped (a trap checked) or the loader's sites call it.
    [[nodiscard]] bool counts_stats() const { return fast_stat == 1 || loader_stat_patched; }
    uint64_t rseq_seen = 0;
    std::vector<pid_t> slots;  // scratch slot -> owning tid (0: free)
    std::map<int, DirSnapshot> dirs;  // getdents state by fd
    std::unordered_map<uint64_t, uint64_t> anon_inodes;  // pipes/sockets: real ino -> per-process number
    int tasks = 0;
};

struct Reissue {
    int nr = -1;
    std::array<std::optional<uint64_t>, 6> args;  // registers to replace
    int slot_arg = -1;  // this argument becomes the address of the task's scratch slot
};

struct Task {
    pid_t tid = 0;
    std::shared_ptr<Process> proc;
    std::string id;          // pedigree: "1", "1.2", "1.2.1" (k-th task created by its creator)
    uint32_t children = 0;
    // The logical clock (CLOCK_REALTIME, ns). Per thread: what a thread reads
    // depends on its own history only, not on how its siblings were scheduled;
    // a new thread or process starts from its creator's clock.
    int64_t vt = 0;
    int64_t pending = 0;     // data-flow merges (files read), applied at the next trapped call
    int64_t start_vt = 0;
    // Armed absolute timers: once the real deadline has passed, the next
    // virtualized call moves the clock to the virtual one.
    std::vector<std::pair<int64_t, int64_t>> timers;  // (real CLOCK_REALTIME ns, virtual ns)
    pid_t vtid = 0, vtgid = 0;  // in the sandbox's pid namespace (0: not looked up yet)
    std::unique_ptr<Prng> getrandom_stream, urandom_stream;
    uint32_t uuids = 0;
    uint64_t affinity = 0;   // virtual CPU mask set by sched_setaffinity (0: all)
    bool started = false;    // its initial ptrace stop was seen and resumed
    bool initial_stop_pending = false;
    std::optional<Reissue> reissue;
    int slot = -1;
};

// Identity of a file: real (dev, ino).
struct FileKey {
    uint64_t dev = 0, ino = 0;
    friend bool operator==(const FileKey&, const FileKey&) = default;
};
struct FileKeyHash {
    size_t operator()(const FileKey& k) const noexcept { return std::hash<uint64_t>()(k.dev * 0x9e3779b97f4a7c15ULL ^ k.ino); }
};

// What the build did to a file (only files touched during the build).
struct FileTimes {
    int64_t mtime = 0, atime = 0, ctime = 0, btime = 0;
    bool created = false;
    // mtime was set explicitly (utimensat, touch -d, cp -p) and nothing wrote
    // since: the close of the writer's fd must not move it (the kernel doesn't).
    bool explicit_mtime = false;
};

// A call's answer.
struct Reply {
    enum Kind { Value, Error, Continue, Reissue, Deferred } kind = Value;
    int64_t val = 0;
    int error = 0;
    determinism::Reissue reissue;
    std::vector<uint8_t> slot_data;  // copied to the task's scratch slot before re-issuing
    std::string value;               // for the deviation record
    std::string real;                // with --trace
    std::string cls;                 // overrides the syscall's class
    bool quiet = false;              // no deviation record (e.g. CONTINUE of a 0 timeout)
    bool logged = false;             // a policy "log" rule: allowed as is, recorded
    bool denied = false;             // a policy rule's errno (recorded as "denied")
};

// Virtual inode numbers are hashes (FNV-1a) of what a file is; getdents' d_ino
// (dents.cpp) and stat's st_ino (fsmeta.cpp) must agree, so both use these.
constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ULL, kFnvPrime = 0x100000001b3ULL;
inline uint64_t fnv(std::string_view s, uint64_t h = kFnvOffset) {
    for (unsigned char c : s) h = (h ^ c) * kFnvPrime;
    return h;
}
// Inode numbers the build sees: 1 .. 2^62, never 0.
inline uint64_t as_ino(uint64_t h) { return (h & ((uint64_t{1} << 62) - 1)) | 1; }

// The handlers' usual answers: the call returns `v` (`text`: the record's
// value), or fails with errno `e`.
inline Reply value(int64_t v, std::string text = {}) {
    Reply r;
    r.kind = Reply::Value;
    r.val = v;
    r.value = std::move(text);
    return r;
}
inline Reply error(int e) {
    Reply r;
    r.kind = Reply::Error;
    r.error = e;
    return r;
}

// What the supervisor does with a notification, given the policy's verdict
// for it (pure; on_notification() acts on it).
struct PolicyAnswer {
    enum Kind {
        Emulate,   // virtualize: the engine's handler answers (x86-64 only)
        Continue,  // allow (only in races or odd stacking): run it, no record
        Log,       // run it (CONTINUE) and record it as "logged"
        Deny,      // fail it with `error` and record it as "denied"
    } kind = Deny;
    int error = 0;               // Deny
    bool failed_closed = false;  // Deny: not the policy's verdict, the engine can't do better (ENOSYS)
    const char* cls = "policy";  // Log/Deny: the record's class
};
// `name`: the syscall's name on `arch` ("socket", "socketcall", ...).
PolicyAnswer answer_for(const policy::Action& verdict, policy::Arch arch, std::string_view name);

// The supervisor's filesystem identity (setfsuid/setfsgid, checked: throws
// SysError if the id is not in effect afterwards).
void set_fsuid(uint32_t uid);
void set_fsgid(uint32_t gid);

// The configuration as the runner sends it to the supervisor ("configure").
void to_json(nlohmann::json& j, const DeterminismConfig& c);
void from_json(const nlohmann::json& j, DeterminismConfig& c);

class Engine {
public:
    // Waits for the job's configuration on `control` ("configure"); until then
    // it only opens the served files' device.
    Engine(UniqueFd control, UniqueFd deviations);
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;
    int run() noexcept;  // the process's main; returns its exit code

    // --- shared helpers (engine.cpp)
    Task* task(pid_t tid);
    void tick(Task& t);                      // one virtualized call happened in t
    void fold(Task& t);                      // take in the reads served in-process since the last fold
    void fold_stat_counts(Task& t);          // record the stats answered in-process since the last fold
    void fold_rseq_count(Task& t);           // and the loader's rseq calls denied there
    Deviation deviation_by(Task& t);
    // One deviation record for `count` calls answered in-process.
    void record_batch(Task& t, const char* syscall, const char* args, const char* cls, std::string value, uint64_t count,
                      DeviationAction action = DeviationAction::Virtualized);
    void record_served_read(Task* reader, pid_t vpid, const std::string& file, const char* cls, std::string value);
    // Before an exec: what the old image did in-process, while it is still there.
    Reply before_exec(Task& t);
    void publish(Task& t);                   // (re)arm the clock page with the task's clock
    void disable_clock_page(Task& t);
    std::string read_string(Process& p, uint64_t addr, size_t max, int& err);
    bool read_mem(Process& p, uint64_t addr, void* out, size_t n);
    int mem_fd(Process& p);  // p.mem, opened when first needed (-1: cannot be)
    bool write_mem(Process& p, uint64_t addr, const void* in, size_t n);
    void note(const std::string& s);
    void deny_note(const std::string& what);
    void resolve_vpid(Task& t);
    Task* task_by_vpid(pid_t vtid);
    const StreamKey& key() const { return key_; }
    const DeterminismConfig& cfg() const { return cfg_; }

    // --- clocks (time.cpp)
    int64_t mono_ns(const Task& t) const { return t.vt - epoch_ns() + cfg_.uptime_at_epoch_s * 1'000'000'000LL; }
    int64_t epoch_ns() const { return cfg_.epoch * 1'000'000'000LL; }
    bool virtual_clock(const Task& t, int64_t clk, int64_t& out_ns) const;
    // A CPU-time read counts as DeterminismConfig::kCpuReadSteps steps of work.
    void charge_cpu_read(Task& t) const;

    // --- handlers
    Reply handle(Task& t, const seccomp_notif& n);
    Reply time_call(Task& t, const seccomp_notif& n);
    Reply wait_call(Task& t, const seccomp_notif& n);
    Reply identity_call(Task& t, const seccomp_notif& n);
    Reply random_call(Task& t, const seccomp_notif& n);
    Reply dents_call(Task& t, const seccomp_notif& n);
    Reply stat_call(Task& t, const seccomp_notif& n);
    Reply utime_call(Task& t, const seccomp_notif& n);
    void patch_stat_site(Task& t, const seccomp_notif& n);
    bool fast_stat_ready(Process& p);     // the region is mapped and the process may be patched now
    void patch_known_sites(Process& p);  // the sites other processes of this program trapped at
    Reply fast_stat_hello(Task& t, const seccomp_notif& n);
    bool served_stat(int dirfd, const char* path, int flags, const std::string& canonical, struct statx& stx);
    Reply finish_stat(Task& t, const seccomp_notif& n, uint64_t buf, bool want_statx, unsigned mask,
                      const struct statx& stx, const std::string& canonical);

    // --- file identity and times (fsmeta.cpp)
    void setup_fanotify(pid_t build);
    void learn_mounts(pid_t pid);  // init's at preparation, the build's at start if they changed
    [[nodiscard]] bool mounts_unchanged() const;
    std::vector<MountPoint> mounts_;
    UniqueFd mounts_watch_;  // the mountinfo they were read from (pollable)
    void drain_fanotify();
    uint64_t vdev(uint64_t real_dev, const std::string& path_hint);
    uint64_t vino_for(const FileKey& k, const std::string& canonical_path);
    const FileTimes* times_of(const FileKey& k) const;
    FileTimes& touch_times(const FileKey& k);
    std::string fd_path(int fd);
    uint32_t map_uid(uint32_t host) const;
    uint32_t map_gid(uint32_t host) const;
    bool is_marked_dev(uint64_t dev) const;

    // --- acting as the build for path lookups (fsmeta.cpp)
    void set_ptrace_cap(bool on);
    struct WithPtrace {
        explicit WithPtrace(Engine& e);
        ~WithPtrace();
        Engine& e;
    };
    UniqueFd open_base(Task& t, int dirfd, const std::string& path, int& err);
    std::string rewrite_proc_self(Task& t, const std::string& path);

    // --- tracer (tracer.cpp)
    void attach(pid_t pid);
    void on_sigchld();
    void handle_stop(pid_t tid, int status);
    void on_exec(Task& t);
    const std::string& exe_of(Process& p);
    void on_new_task(Task& parent, pid_t child, bool thread, bool shares_mm);
    void adopt_forked_counters(Task& child);
    bool emulate_rdtsc(Task& t);
    void learn_rdtsc_site(Process& p, uint64_t rip);
    void prepare_loader_sites(Task& t);
    void finish_reissue(Task& t);
    void task_gone(pid_t tid);

    // --- served files (served.cpp)
    UniqueFd open_fuse_device(pid_t init_pid);
    void on_fuse();

    // --- deviations (engine.cpp)
    void record(Task& t, const seccomp_notif& n, const Reply& r, const char* cls);
    void record_insn(Task& t, const char* what, const std::string& value);
    void flush_deviations(bool force);

private:
    void configure(DeterminismConfig cfg);
    void prepare_policy();  // checks the attested digest, prepares policy_; throws
    void prepare_likely_policy(const nlohmann::json& policy);  // ahead of the job (Supervisor::prepare_policy)
    // prepare_policy(), a refusal (sent to the runner) if it throws: false once refused.
    bool policy_ready();
    void refuse_configuration(const std::exception& e);
    void start(pid_t pid, UniqueFd listener);
    void on_control();
    void on_notification();
    void answer_by_policy(Task& t, const seccomp_notif& n, const PolicyAnswer& a, const std::string& name);
    bool clock_reads_virtualized() const;
    void respond(const seccomp_notif& n, const Reply& r, Task* t);
    bool place_in_slot(Task& t, const std::vector<uint8_t>& data, determinism::Reissue& re);
    void send_summary();
    void check_host_sources();

public:
    DeterminismConfig cfg_;
    std::shared_ptr<const policy::PreparedPolicy> policy_;  // decides every notification
    // The policy prepared ahead of the job, and its canonical digests.
    std::shared_ptr<const policy::Policy> likely_policy_;
    std::shared_ptr<const policy::PreparedPolicy> likely_prepared_;
    std::set<std::string> likely_digests_;
    StreamKey key_{};
    UniqueFd control_, deviations_, listener_, sigchld_, fanotify_, fuse_, hostproc_;
    UniqueFd pidns_;  // the build's pid namespace (resolve_vpid)
    std::unordered_map<pid_t, std::unique_ptr<Task>> tasks_;
    std::map<pid_t, int> early_stops_;  // new tasks that stopped before their creator's event
    pid_t build_pid_ = 0;
    bool configured_ = false, started_ = false, stopping_ = false;
    bool refused_ = false;  // the configuration was refused (and the runner told)
    Summary summary_;

    // Build credentials (host ids) and the id maps, for lookups as the build.
    uint32_t build_uid_ = 0, build_gid_ = 0;
    std::vector<std::array<uint32_t, 3>> uid_map_, gid_map_;
    uint64_t permitted_caps_[2] = {0, 0};
    uint64_t lookup_caps_[2] = {0, 0};     // effective set after start(): no CAP_SYS_PTRACE, no DAC caps
    bool fanotify_ready_ = false;          // poll saw events: drain before the next call
    bool fuse_unmounted_ = false;          // /dev/fuse not mounted yet (EPERM): look again in 1 ms

    // Files.
    std::unordered_map<FileKey, FileTimes, FileKeyHash> times_;
    std::unordered_map<FileKey, uint64_t, FileKeyHash> vinos_;
    std::map<uint64_t, std::string> mount_dev_path_;   // real dev -> mount point (first in order)
    std::map<uint64_t, uint64_t> vdevs_;               // real dev -> virtual dev
    std::vector<uint64_t> marked_devs_;
    std::map<std::vector<uint8_t>, uint64_t> fsid_dev_; // fanotify fsid -> real dev
    std::map<uint64_t, UniqueFd> mount_fds_;           // marked file systems (open_by_handle_at)
    // Sorted listings, reused while the directory is unchanged (same ctime/mtime/size).
    struct Listing {
        int64_t mtime = 0, ctime = 0;
        uint64_t size = 0;
        std::shared_ptr<const std::vector<DirSnapshot::Entry>> entries;
    };
    std::map<std::pair<uint64_t, uint64_t>, Listing> listings_;
    uint64_t served_dev_ = 0;                           // the served files' FUSE file system
    std::set<uint64_t> fixed_devs_;                     // read-only wherever mounted, or device nodes

    // The in-process stat path (fast_stat.hpp): null with --trace or when off.
    std::unique_ptr<FastStat> fast_stat_;
    // Sites patched in a process, by program: another process of the same
    // program has them at the same addresses (ASLR is off), patched before
    // they trap once more. Checked byte for byte before each write.
    std::map<std::string, std::map<uint64_t, StatSiteCode>> known_sites_;
    // The loader's rdtsc sites that trapped and can be patched: address -> the
    // bytes there (kRdtscWindow), checked before patching another process.
    std::map<uint64_t, std::vector<uint8_t>> rdtsc_sites_;
    // The loader's rseq sites (`mov eax, NR; syscall`) the policy denied
    // whatever the arguments: address -> the 7 bytes there, and the errno.
    struct ErrnoSite {
        std::vector<uint8_t> code;
        int error = 0;
    };
    std::map<uint64_t, ErrnoSite> rseq_sites_;
    // The loader's stat sites (the `mov eax, NR; syscall` of fast_stat_patch's
    // shape) that trapped: later processes call the in-process table there.
    std::map<uint64_t, StatSiteCode> loader_stat_sites_;
    void learn_loader_stat_site(Process& p, uint64_t ip);
    static std::optional<uint64_t> loader_syscall_site(const Process& p, uint64_t ip);
    [[nodiscard]] size_t loader_sites_known() const {
        return rdtsc_sites_.size() + rseq_sites_.size() + loader_stat_sites_.size();
    }
    void learn_rseq_site(Process& p, uint64_t ip, int error);
    // Those sites planned for the loader last seen (prepare_loader_sites).
    struct LoaderPlan {
        uint64_t base = 0;
        std::vector<uint8_t> headers;  // its ELF and program headers
        size_t sites_known = 0;        // rdtsc_sites_.size() + rseq_sites_.size() when planned
        uint64_t tramp_at = 0;
        std::vector<uint8_t> trampolines;  // all of them, from tramp_at
        struct Site {
            uint64_t addr;
            std::vector<uint8_t> original;  // what must be there
            std::vector<uint8_t> bytes;     // the jump to its trampoline
            enum Kind { Rdtsc, Rseq, Stat } kind = Rdtsc;
        };
        std::vector<Site> sites;
    };
    LoaderPlan loader_plan_;
    [[nodiscard]] LoaderPlan plan_loader_sites(uint64_t base, uint64_t text_end, const std::vector<Elf64_Phdr>& ph) const;

    // Notification buffers (libseccomp's, sized for this kernel).
    seccomp_notif* req_ = nullptr;
    seccomp_notif_resp* resp_ = nullptr;

    // Deviation batch.
    std::string dev_buf_;
    std::chrono::steady_clock::time_point dev_first_{};

    // The vDSO patch (planned at the first exec): the patched span of the image.
    bool vdso_planned_ = false;
    VdsoPlan vdso_plan_;
    std::vector<uint8_t> vdso_span_;
    uint64_t vdso_span_offset_ = 0;

    // Host facts the engine checks once.
    bool cpuid_faulting_ = false;
};

enum class ServedKind;
std::string served_content(const Engine& e, ServedKind kind, Task* reader);

// Classes of the virtualized syscalls, by name.
const char* class_of(int nr);
// The class of a record for a call the policy logs or denies: "network" for the
// socket calls (either ABI's names, socketcall included), else "policy".
const char* policy_class(std::string_view name);

}  // namespace hermetic::sandbox::determinism
