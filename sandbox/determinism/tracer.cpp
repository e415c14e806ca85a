// ptrace: who the build's tasks are (a pedigree per task), what each exec needs
// (vDSO patch, AT_RANDOM, scratch region), rdtsc emulation, and the register
// rewrite of re-issued calls.
#include <elf.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/fanotify.h>
#include <sys/ptrace.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "common/io.hpp"
#include "common/sys_error.hpp"
#include "sandbox/determinism/engine.hpp"
#include "sandbox/determinism/fast_stat_abi.h"
#include "sandbox/determinism/rdtsc_patch.hpp"
#include "sandbox/determinism/vdso.hpp"
#include "syscall-policy/determinism_rules.hpp"

namespace hermetic::sandbox::determinism {

namespace {

void cont(pid_t tid, int sig) { (void)::ptrace(PTRACE_CONT, tid, 0, sig); }

UniqueFd open_in_proc(int hostproc, pid_t pid, const char* what, int flags) {
    char path[64];
    std::snprintf(path, sizeof path, "%d/%s", pid, what);
    return UniqueFd(::openat(hostproc, path, flags | O_CLOEXEC));
}

// /proc/PID/mem: as the build's uid (the image is dumpable), or with
// CAP_SYS_PTRACE for one that is not (an exec of an unreadable binary).
UniqueFd open_mem(Engine& e, pid_t pid) {
    UniqueFd fd = open_in_proc(e.hostproc_.get(), pid, "mem", O_RDWR);
    if (!fd && errno == EACCES && e.started_) {
        Engine::WithPtrace cap(e);
        fd = open_in_proc(e.hostproc_.get(), pid, "mem", O_RDWR);
    }
    return fd;
}

std::string readlink_in_proc(int hostproc, pid_t pid, const char* what) {
    char path[64], buf[4096];
    std::snprintf(path, sizeof path, "%d/%s", pid, what);
    ssize_t n = ::readlinkat(hostproc, path, buf, sizeof buf);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

}  // namespace

int Engine::mem_fd(Process& p) {
    if (!p.mem_looked) {
        p.mem_looked = true;
        p.mem = open_mem(*this, p.tgid);
    }
    return p.mem.get();
}

void Engine::attach(pid_t pid) {
    long opts = PTRACE_O_TRACEEXEC | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE |
                PTRACE_O_TRACEEXIT | PTRACE_O_EXITKILL;
    if (::ptrace(PTRACE_SEIZE, pid, 0, opts) != 0) throw_errno("ptrace(PTRACE_SEIZE) of the build process");
    auto proc = std::make_shared<Process>();
    proc->tgid = pid;
    proc->id = "1";
    proc->start_vt = epoch_ns();
    proc->tasks = 1;
    auto t = std::make_unique<Task>();
    t->tid = pid;
    t->proc = proc;
    t->id = "1";
    t->vt = t->start_vt = proc->start_vt;
    t->started = true;  // seized while running: no initial stop
    tasks_[pid] = std::move(t);
    summary_.processes++;
}

void Engine::on_sigchld() {
    signalfd_siginfo si;
    while (::read(sigchld_.get(), &si, sizeof si) == sizeof si) {
    }
    // File events of a task that is about to be forgotten belong to it.
    if (fanotify_) drain_fanotify();
    for (;;) {
        int status = 0;
        pid_t pid = ::waitpid(-1, &status, WNOHANG | __WALL);
        if (pid <= 0) break;
        auto t0 = std::chrono::steady_clock::now();
        handle_stop(pid, status);
        summary_.stops++;
        auto ns = static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
        summary_.stop_ns_total += ns;
    }
}

void Engine::task_gone(pid_t tid) {
    auto it = tasks_.find(tid);
    if (it == tasks_.end()) {
        early_stops_.erase(tid);
        return;
    }
    Task& t = *it->second;
    Process& p = *t.proc;
    if (t.slot >= 0 && static_cast<size_t>(t.slot) < p.slots.size()) p.slots[static_cast<size_t>(t.slot)] = 0;
    p.tasks--;
    tasks_.erase(it);
    if (tasks_.empty() && fanotify_) {
        // The build is over. Take its last file events, then let go of the
        // file-system marks now: the kernel frees them after an SRCU grace
        // period (delayed work), and closing the group at exit waits for any
        // still pending, 7-20 ms of every job's teardown on this VM when the
        // marks went with the group. Started here, it is over by then.
        drain_fanotify();
        (void)::fanotify_mark(fanotify_.get(), FAN_MARK_FLUSH | FAN_MARK_FILESYSTEM, 0, AT_FDCWD, nullptr);
    }
}

void Engine::handle_stop(pid_t tid, int status) {
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
        task_gone(tid);
        return;
    }
    if (!WIFSTOPPED(status)) return;
    const int sig = WSTOPSIG(status);
    const int event = status >> 16;
    Task* t = task(tid);
    if (!t) {
        // A new task stopped before its creator's fork/clone event arrived: it
        // waits until the event gives it an identity.
        early_stops_[tid] = status;
        return;
    }
    switch (event) {
        case PTRACE_EVENT_EXEC: {
            unsigned long former = 0;
            (void)::ptrace(PTRACE_GETEVENTMSG, tid, 0, &former);
            if (former != 0 && static_cast<pid_t>(former) != tid && task(static_cast<pid_t>(former))) {
                // A non-leader thread exec'd: it now has the leader's tid.
                auto moved = std::move(tasks_[static_cast<pid_t>(former)]);
                tasks_.erase(static_cast<pid_t>(former));
                auto old = tasks_.find(tid);
                if (old != tasks_.end()) {
                    old->second->proc->tasks--;
                    tasks_.erase(old);
                }
                moved->tid = tid;
                tasks_[tid] = std::move(moved);
                t = task(tid);
            }
            on_exec(*t);
            cont(tid, 0);
            return;
        }
        case PTRACE_EVENT_FORK: case PTRACE_EVENT_VFORK: case PTRACE_EVENT_CLONE: {
            unsigned long child = 0;
            (void)::ptrace(PTRACE_GETEVENTMSG, tid, 0, &child);
            bool thread = false, shares_mm = event == PTRACE_EVENT_VFORK;
            if (event == PTRACE_EVENT_CLONE) {
                user_regs_struct regs{};
                if (::ptrace(PTRACE_GETREGS, tid, 0, &regs) == 0) {
                    thread = regs.rdi & CLONE_THREAD;
                    shares_mm = regs.rdi & CLONE_VM;
                }
            }
            // Two tasks on one clock page would read it in scheduling order: the
            // page is turned off (a vfork parent gets it back at its next clock trap).
            if (thread || shares_mm) disable_clock_page(*t);
            if (thread) t->proc->multithreaded = true;
            if (child > 0) on_new_task(*t, static_cast<pid_t>(child), thread, shares_mm);
            cont(tid, 0);
            return;
        }
        case PTRACE_EVENT_EXIT:
            fold(*t);  // count the last reads served in-process
            fold_stat_counts(*t);
            fold_rseq_count(*t);
            cont(tid, 0);
            return;
        case PTRACE_EVENT_STOP: {
            if (!t->started) {  // its first stop
                t->started = true;
                cont(tid, 0);
            } else if (sig == SIGTRAP) {  // PTRACE_INTERRUPT
                if (t->reissue) finish_reissue(*t);
                cont(tid, 0);
            } else {
                (void)::ptrace(PTRACE_LISTEN, tid, 0, 0);  // a group stop: stay stopped
            }
            return;
        }
        case 0:
            if (!t->started && sig == SIGSTOP) {
                t->started = true;
                cont(tid, 0);
                return;
            }
            if (sig == SIGSEGV && emulate_rdtsc(*t)) {
                cont(tid, 0);
                return;
            }
            cont(tid, sig);
            return;
        default:
            cont(tid, 0);
    }
}

void Engine::on_new_task(Task& parent, pid_t child, bool thread, bool shares_mm) {
    tick(parent);  // creating a task is an event of its creator
    auto nt = std::make_unique<Task>();
    nt->tid = child;
    nt->id = parent.id + "." + std::to_string(++parent.children);
    nt->affinity = parent.affinity;
    if (thread) {
        nt->proc = parent.proc;
        parent.proc->tasks++;
    } else {
        auto np = std::make_shared<Process>();
        const Process& pp = *parent.proc;
        np->tgid = child;
        np->id = nt->id;
        np->start_vt = parent.vt;
        np->execs = pp.execs;
        np->exe = pp.exe;
        np->scratch = pp.scratch;  // fork copies the mapping, vfork shares it
        np->inproc = pp.inproc;    // and its clock page, with the parent's clock
        np->fast_stat = pp.fast_stat;  // and the stat table's mapping
        np->sites_todo = pp.sites_todo;  // and the patched text
        np->site_tries = pp.site_tries;
        np->interp_base = pp.interp_base;
        np->interp_text_end = pp.interp_text_end;
        np->rdtsc_patched = pp.rdtsc_patched;
        np->rseq_patched = pp.rseq_patched;
        np->loader_stat_patched = pp.loader_stat_patched;
        np->tasks = 1;
        np->shared_mm = shares_mm;
        nt->proc = std::move(np);
        summary_.processes++;
    }
    nt->vt = nt->start_vt = parent.vt;
    nt->pending = parent.pending;
    if (!thread && !shares_mm) adopt_forked_counters(*nt);
    auto early = early_stops_.find(child);
    bool stopped = early != early_stops_.end();
    if (stopped) early_stops_.erase(early);
    Task* raw = nt.get();
    tasks_[child] = std::move(nt);
    if (stopped) {
        raw->started = true;
        cont(child, 0);
    }
}

// A forked child has a copy of its parent's in-process counters, which the
// parent records: the child takes its clock from them without recording them
// again, and records only its own stats. It has not run yet.
void Engine::adopt_forked_counters(Task& child) {
    Process& p = *child.proc;
    if (p.inproc) {
        uint64_t counter = 0, zero = 0;
        if (read_mem(p, policy::kScratchBase, &counter, sizeof counter))
            child.vt = advanced(child.vt, counter, cfg_.clock_step_ns);
        (void)write_mem(p, policy::kScratchBase, &zero, sizeof zero);
        publish(child);  // based on the clock it has now
    }
    if (p.counts_stats() && !read_mem(p, HERMETIC_FAST_COUNT_TABLE, p.stat_counts_seen, sizeof p.stat_counts_seen))
        p.stat_counts_seen[0] = p.stat_counts_seen[1] = 0;
    if (p.rdtsc_patched && !read_mem(p, policy::kScratchBase + kRdtscCountOffset, &p.rdtsc_seen, sizeof p.rdtsc_seen))
        p.rdtsc_seen = 0;
    if (p.rseq_patched && !read_mem(p, policy::kScratchBase + kRseqCountOffset, &p.rseq_seen, sizeof p.rseq_seen))
        p.rseq_seen = 0;
}

Reply Engine::before_exec(Task& t) {
    // The exec's own stop comes after the old address space is gone: reads
    // served there since the last fold would be lost, and the new image's
    // clock would start behind what the old one last read.
    fold(t);
    fold_stat_counts(t);
    fold_rseq_count(t);
    Reply r;
    r.kind = Reply::Continue;  // nothing was read from the call's arguments
    r.quiet = true;
    return r;
}

void Engine::on_exec(Task& t) {
    Process& p = *t.proc;
    p.execs++;
    summary_.execs++;
    p.mem.reset();  // the old image's: the new one is opened below (mem_fd)
    p.mem_looked = false;
    p.pidfd.reset();
    p.exe.clear();  // looked up when first needed (exe_of)
    p.dirs.clear();
    p.anon_inodes.clear();
    p.slots.clear();
    p.scratch = false;
    p.inproc = p.shared_mm = p.multithreaded = false;
    p.fast_stat = 0;
    p.sites_todo.clear();
    p.site_tries = 0;
    p.stat_counts_seen[0] = p.stat_counts_seen[1] = 0;
    p.interp_base = p.interp_text_end = 0;
    p.rdtsc_patched = p.rseq_patched = p.loader_stat_patched = false;
    p.rdtsc_seen = p.rseq_seen = 0;
    t.slot = -1;
    if (mem_fd(p) < 0) {
        note("exec: cannot open the memory of " + exe_of(p));
        return;
    }
    user_regs_struct regs{};
    if (::ptrace(PTRACE_GETREGS, t.tid, 0, &regs) != 0) return;

    // Where the vDSO and the AT_RANDOM bytes are: the auxiliary vector, right
    // above argv and envp on the new stack (/proc/PID/auxv when they are huge).
    uint64_t vdso = 0, at_random = 0;
    {
        std::vector<uint64_t> w(512);  // argc, argv and envp of up to ~450 entries, and the auxv
        ssize_t got = ::pread(mem_fd(p), w.data(), w.size() * 8, static_cast<off_t>(regs.rsp));
        size_t n = got > 0 ? static_cast<size_t>(got) / 8 : 0, i = 1 + (n ? w[0] : 0) + 1;  // argc, argv..., NULL
        while (i < n && w[i] != 0) ++i;                                                    // envp...
        bool found = false;
        for (++i; i + 1 < n; i += 2) {
            if (w[i] == AT_NULL) {
                found = true;
                break;
            }
            if (w[i] == AT_SYSINFO_EHDR) vdso = w[i + 1];
            if (w[i] == AT_RANDOM) at_random = w[i + 1];
            if (w[i] == AT_BASE) p.interp_base = w[i + 1];
        }
        if (!found) {
            vdso = at_random = p.interp_base = 0;
            char path[48];
            std::snprintf(path, sizeof path, "%d/auxv", p.tgid);
            std::string auxv;
            try {
                auxv = read_file_at(hostproc_.get(), path, 1 << 16);
            } catch (...) {
            }
            for (size_t off = 0; off + 16 <= auxv.size(); off += 16) {
                uint64_t k, v;
                std::memcpy(&k, auxv.data() + off, 8);
                std::memcpy(&v, auxv.data() + off + 8, 8);
                if (k == AT_SYSINFO_EHDR) vdso = v;
                if (k == AT_RANDOM) at_random = v;
                if (k == AT_BASE) p.interp_base = v;
            }
        }
    }

    // AT_RANDOM: stack protector, pointer guard, hash seeds of every runtime.
    if (at_random) {
        uint8_t bytes[16];
        stream_bytes(key_, "at_random/" + t.id + "/" + std::to_string(p.execs), bytes, sizeof bytes);
        if (!write_mem(p, at_random, bytes, sizeof bytes)) note("exec: cannot write AT_RANDOM of " + exe_of(p));
    } else {
        note("exec: no AT_RANDOM for " + exe_of(p));
    }

    if (!vdso) {
        note("exec: no vDSO in " + exe_of(p) + ": no scratch region, timed waits fail closed");
        return;
    }
    // The image is the same for every process of this kernel: read and plan once,
    // then write the patched span (and this exec's init stub) in one go.
    if (!vdso_planned_) {
        Elf64_Ehdr eh{};
        if (!read_mem(p, vdso, &eh, sizeof eh)) {
            note("exec: cannot read the vDSO of " + exe_of(p));
            return;
        }
        size_t size = std::min<size_t>(static_cast<size_t>(eh.e_shoff) + size_t{eh.e_shnum} * sizeof(Elf64_Shdr), 1 << 16);
        std::vector<uint8_t> image(size);
        if (!read_mem(p, vdso, image.data(), image.size())) {
            note("exec: cannot read the vDSO of " + exe_of(p));
            return;
        }
        vdso_plan_ = plan_vdso_patch(image, cfg_.in_process_clock && !cfg_.trace);
        vdso_planned_ = true;
        if (vdso_plan_.ok) {
            if (!vdso_plan_.fast_stat_room && fast_stat_) {
                note("exec: no room in the vDSO for the in-process stat set-up: every stat traps");
                fast_stat_.reset();
            }
            uint64_t lo = vdso_plan_.stub_offset, hi = vdso_plan_.stub_offset + init_stub(0, fast_stat_ != nullptr).size();
            for (const auto& [off, bytes] : vdso_plan_.writes) {
                lo = std::min<uint64_t>(lo, off);
                hi = std::max<uint64_t>(hi, off + bytes.size());
            }
            vdso_span_.assign(image.begin() + static_cast<long>(lo), image.begin() + static_cast<long>(hi));
            for (const auto& [off, bytes] : vdso_plan_.writes)
                std::copy(bytes.begin(), bytes.end(), vdso_span_.begin() + static_cast<long>(off - lo));
            vdso_span_offset_ = lo;
        }
    }
    if (!vdso_plan_.ok) {
        // Fail closed: a process that could read the host's clock must not run.
        note("exec: vDSO patch impossible (" + vdso_plan_.error + "): killed " + exe_of(p));
        ::kill(p.tgid, SIGKILL);
        return;
    }
    std::vector<uint8_t> span = vdso_span_;
    std::vector<uint8_t> stub = init_stub(regs.rip, fast_stat_ != nullptr);
    std::copy(stub.begin(), stub.end(), span.begin() + static_cast<long>(vdso_plan_.stub_offset - vdso_span_offset_));
    if (!write_mem(p, vdso + vdso_span_offset_, span.data(), span.size())) {
        note("exec: vDSO write failed: killed " + exe_of(p));
        ::kill(p.tgid, SIGKILL);
        return;
    }
    regs.rip = vdso + vdso_plan_.stub_offset;
    if (::ptrace(PTRACE_SETREGS, t.tid, 0, &regs) != 0) return;
    p.scratch = true;
}

const std::string& Engine::exe_of(Process& p) {
    if (p.exe.empty()) {
        p.exe = readlink_in_proc(hostproc_.get(), p.tgid, "exe");
        if (p.exe.empty()) p.exe = "?";
    }
    return p.exe;
}

// An rdtsc of the dynamic loader that trapped: if it can be patched
// (rdtsc_patch.hpp), the program's next processes get it patched at their
// hello. Only in the loader: its sites run in every dynamic process.
void Engine::learn_rdtsc_site(Process& p, uint64_t rip) {
    // interp_text_end is only set (prepare_loader_sites) with in-process loader sites on.
    if (!p.interp_text_end || rip < p.interp_base || rip >= p.interp_text_end) return;
    if (rdtsc_sites_.size() >= 32 || rdtsc_sites_.count(rip)) return;
    std::vector<uint8_t> window(kRdtscWindow);
    if (!read_mem(p, rip, window.data(), window.size())) return;
    if (plan_rdtsc_patch(window, rip, p.interp_text_end)) rdtsc_sites_.emplace(rip, std::move(window));
}

// Where the `mov eax, NR; syscall` that trapped at `ip` starts, if it is in
// the loader's text (the notification's ip is after the syscall).
std::optional<uint64_t> Engine::loader_syscall_site(const Process& p, uint64_t ip) {
    if (!p.interp_text_end || ip < p.interp_base + kSyscallSiteLen || ip > p.interp_text_end) return std::nullopt;
    return ip - kSyscallSiteLen;
}

// A denied rseq of the dynamic loader: if the policy denies every rseq alike
// and the site is the plain `mov eax, NR; syscall`, the program's next
// processes answer it in place (prepare_loader_sites).
void Engine::learn_rseq_site(Process& p, uint64_t ip, int error) {
    auto at = loader_syscall_site(p, ip);
    if (!cfg_.in_process_rseq || !at) return;
    const uint64_t site = *at;
    if (rseq_sites_.size() >= 4 || rseq_sites_.count(site) ||
        policy_->depends_on_args(policy::Arch::X86_64, SYS_rseq))
        return;
    std::vector<uint8_t> code(kSyscallSiteLen);
    if (!read_mem(p, site, code.data(), code.size())) return;
    if (plan_errno_syscall_patch(code, site, p.interp_text_end, SYS_rseq, error, kRseqCountOffset))
        rseq_sites_[site] = {std::move(code), error};
}

// A stat of the dynamic loader (of each library it opens, before the C
// library's patched wrappers exist): the next processes call the in-process
// table there, through a trampoline that checks the table was mapped.
void Engine::learn_loader_stat_site(Process& p, uint64_t ip) {
    auto at = loader_syscall_site(p, ip);
    if (!cfg_.in_process_loader_stat || !fast_stat_ || !at) return;
    const uint64_t site = *at;
    if (loader_stat_sites_.size() >= 4 || loader_stat_sites_.count(site)) return;
    StatSiteCode code;
    if (!read_mem(p, site, code.data(), code.size()) || !fast_stat_slot(code)) return;
    loader_stat_sites_[site] = code;
}

// At the exec stub's hello, before the loader runs: the clock page on, and
// the known rdtsc and rseq sites of the loader sent to trampolines in the
// slack of its last text page. Every dynamic process comes here: the plan is
// made once per loader (and set of known sites) and each process only checks
// that its loader is that one (headers and the bytes at every site) before
// the writes.
void Engine::prepare_loader_sites(Task& t) {
    Process& p = *t.proc;
    uint64_t probe = 0;
    if (!p.scratch || !p.interp_base || !read_mem(p, policy::kScratchBase, &probe, sizeof probe)) return;
    publish(t);
    if (!p.inproc || !(cfg_.in_process_rdtsc || cfg_.in_process_rseq || cfg_.in_process_loader_stat)) return;
    // The ELF header and program headers, in one read (they sit together at the
    // start of the first page in every loader seen; anything else is not patched).
    std::vector<uint8_t> head(1024);
    if (!read_mem(p, p.interp_base, head.data(), head.size())) return;
    Elf64_Ehdr eh{};
    std::memcpy(&eh, head.data(), sizeof eh);
    if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > 16 ||
        eh.e_phoff + size_t{eh.e_phnum} * sizeof(Elf64_Phdr) > head.size())
        return;
    head.resize(eh.e_phoff + size_t{eh.e_phnum} * sizeof(Elf64_Phdr));
    std::vector<Elf64_Phdr> ph(eh.e_phnum);
    std::memcpy(ph.data(), head.data() + eh.e_phoff, ph.size() * sizeof(Elf64_Phdr));
    uint64_t text_end = 0;
    for (const auto& h : ph)
        if (h.p_type == PT_LOAD && (h.p_flags & PF_X)) text_end = std::max<uint64_t>(text_end, p.interp_base + h.p_vaddr + h.p_memsz);
    if (!text_end) return;
    p.interp_text_end = text_end;  // from here on, its sites can be learned
    if (loader_sites_known() == 0) return;
    LoaderPlan& plan = loader_plan_;
    if (plan.base != p.interp_base || plan.headers != head || plan.sites_known != loader_sites_known())
        plan = plan_loader_sites(p.interp_base, text_end, ph);
    plan.headers = head;
    if (plan.trampolines.empty()) return;
    // The slack the trampolines take must be what the file has there: zeros.
    std::vector<uint8_t> slack(plan.trampolines.size());
    if (!read_mem(p, plan.tramp_at, slack.data(), slack.size()) ||
        std::any_of(slack.begin(), slack.end(), [](uint8_t b) { return b != 0; }))
        return;
    std::vector<uint8_t> now;
    bool written = false;
    for (const auto& site : plan.sites) {
        now.resize(site.original.size());
        if (!read_mem(p, site.addr, now.data(), now.size()) || now != site.original) continue;  // another loader
        // The trampolines before the first jump to one.
        if (!written && !(written = write_mem(p, plan.tramp_at, plan.trampolines.data(), plan.trampolines.size()))) return;
        if (!write_mem(p, site.addr, site.bytes.data(), site.bytes.size())) continue;
        (site.kind == LoaderPlan::Site::Rseq ? p.rseq_patched
         : site.kind == LoaderPlan::Site::Stat ? p.loader_stat_patched
                                               : p.rdtsc_patched) = true;
    }
}

// Where each known site's trampoline goes in this loader's slack, and the bytes.
Engine::LoaderPlan Engine::plan_loader_sites(uint64_t base, uint64_t text_end, const std::vector<Elf64_Phdr>& ph) const {
    LoaderPlan plan;
    plan.base = base;
    plan.sites_known = loader_sites_known();
    const uint64_t start = (text_end + 15) & ~uint64_t{15};
    const uint64_t limit = (text_end + 4095) & ~uint64_t{4095};
    if (start >= limit) return plan;
    // Nothing of the loader's own may live there (a packed layout).
    for (const auto& h : ph)
        if (h.p_type == PT_LOAD && base + h.p_vaddr < limit && base + h.p_vaddr + h.p_memsz > start && !(h.p_flags & PF_X))
            return plan;
    plan.tramp_at = start;
    uint64_t cursor = start;
    auto add = [&](uint64_t site, const std::vector<uint8_t>& original, std::optional<RdtscPatch> patch,
                   LoaderPlan::Site::Kind kind) {
        if (!patch) return;
        plan.trampolines.resize(cursor - start);  // 16-byte aligned: zero padding
        plan.trampolines.insert(plan.trampolines.end(), patch->trampoline.begin(), patch->trampoline.end());
        plan.sites.push_back({site, original, std::move(patch->site), kind});
        cursor += (patch->trampoline.size() + 15) & ~size_t{15};
    };
    if (cfg_.in_process_rdtsc)
        for (const auto& [site, original] : rdtsc_sites_) {
            if (site < base || site + kRdtscWindow > text_end || cursor + kRdtscTrampolineMax > limit) continue;
            add(site, original, plan_rdtsc_patch(original, site, cursor), LoaderPlan::Site::Rdtsc);
        }
    if (cfg_.in_process_rseq)
        for (const auto& [site, known] : rseq_sites_) {
            if (site < base || site + kSyscallSiteLen > text_end || cursor + kErrnoTrampolineLen > limit) continue;
            add(site, known.code, plan_errno_syscall_patch(known.code, site, cursor, SYS_rseq, known.error, kRseqCountOffset),
                LoaderPlan::Site::Rseq);
        }
    if (cfg_.in_process_loader_stat && fast_stat_)
        for (const auto& [site, code] : loader_stat_sites_) {
            auto slot = fast_stat_slot(code);
            if (!slot || site < base || site + code.size() > text_end || cursor + kGuardedCallTrampolineLen > limit) continue;
            // All 13 bytes must be there: the wrapper's cmp after the call is
            // what makes the trampoline's flags harmless.
            std::vector<uint8_t> original(code.begin(), code.end());
            add(site, original, plan_guarded_call_patch(original, site, cursor, kFastMappedOffset, *slot),
                LoaderPlan::Site::Stat);
        }
    return plan;
}

bool Engine::emulate_rdtsc(Task& t) {
    siginfo_t si{};
    if (::ptrace(PTRACE_GETSIGINFO, t.tid, 0, &si) != 0 || si.si_code != SI_KERNEL) return false;
    user_regs_struct regs{};
    if (::ptrace(PTRACE_GETREGS, t.tid, 0, &regs) != 0) return false;
    uint8_t insn[3] = {0, 0, 0};
    if (!read_mem(*t.proc, regs.rip, insn, sizeof insn)) return false;
    bool rdtsc = insn[0] == 0x0f && insn[1] == 0x31;
    bool rdtscp = insn[0] == 0x0f && insn[1] == 0x01 && insn[2] == 0xf9;
    if (!rdtsc && !rdtscp) return false;
    Process& p = *t.proc;
    if (rdtsc) learn_rdtsc_site(p, regs.rip);
    uint64_t tsc = 0;
    ClockPage page{};
    if (p.inproc && read_mem(p, policy::kScratchBase, &page, sizeof page) && page.enabled) {
        // While the clock page is on, a trapped read is served exactly as a
        // patched site serves it (rdtsc_patch.cpp): whether a process has a
        // site patched depends on which process trapped there first, which
        // must not change what it reads or how its clock moves.
        const uint64_t n = page.counter + 1;
        if (!write_mem(p, policy::kScratchBase, &n, sizeof n)) return false;
        const uint64_t mono = n * static_cast<uint64_t>(page.step) + static_cast<uint64_t>(page.base) +
                              static_cast<uint64_t>(page.mono_off);  // the trampoline's wrapping arithmetic
        tsc = page.ns_per_s ? static_cast<uint64_t>(static_cast<unsigned __int128>(mono) * page.tsc_hz / page.ns_per_s) : 0;
    } else {
        drain_fanotify();
        fold(t);
        tick(t);
        publish(t);
        // A virtual TSC counting at tsc_hz since the virtual boot.
        unsigned __int128 cycles = static_cast<unsigned __int128>(mono_ns(t)) * cfg_.tsc_hz / 1'000'000'000u;
        tsc = static_cast<uint64_t>(cycles);
    }
    regs.rax = tsc & 0xffffffffu;
    regs.rdx = tsc >> 32;
    if (rdtscp) regs.rcx = 0;  // TSC_AUX: cpu 0, node 0
    regs.rip += rdtsc ? 2 : 3;
    if (::ptrace(PTRACE_SETREGS, t.tid, 0, &regs) != 0) return false;
    record_insn(t, rdtsc ? "rdtsc" : "rdtscp", std::to_string(tsc));
    return true;
}

void Engine::finish_reissue(Task& t) {
    Reissue re = *t.reissue;
    t.reissue.reset();
    user_regs_struct regs{};
    if (::ptrace(PTRACE_GETREGS, t.tid, 0, &regs) != 0) return;
    if (static_cast<long>(regs.orig_rax) != re.nr) {
        note("re-issue: task " + std::to_string(t.tid) + " stopped in another call");
        return;
    }
    unsigned long long* arg[6] = {&regs.rdi, &regs.rsi, &regs.rdx, &regs.r10, &regs.r8, &regs.r9};
    for (size_t i = 0; i < 6; ++i)
        if (re.args[i]) *arg[i] = *re.args[i];
    // rax still holds -ERESTARTNOINTR: on resuming, the kernel steps back over the
    // syscall instruction and runs the call again with these arguments.
    (void)::ptrace(PTRACE_SETREGS, t.tid, 0, &regs);
}

}  // namespace hermetic::sandbox::determinism
